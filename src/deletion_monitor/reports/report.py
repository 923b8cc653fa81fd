"""`deletion-monitor report KIND`: the command that builds one report from Prometheus."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from deletion_monitor.common.cliargs import add_prometheus_url
from deletion_monitor.common.config import ConfigError, load_config
from deletion_monitor.common.durations import parse_duration
from deletion_monitor.common.promapi import PrometheusClient, PrometheusError, format_duration
from deletion_monitor.reports import render as report_render
from deletion_monitor.reports.figures import (
    NO_DATA,
    Source,
    compliance,
    health,
    iso_time,
    plot_data,
    trends,
    usage_patterns,
)
from deletion_monitor.reports.recommendations import recommend

HELP = "Usage-pattern, health, trend and compliance reports computed from Prometheus data."

KINDS = ("usage-patterns", "health", "trends", "compliance")
# The spec's cadence: weekly usage analysis and trends, daily health, monthly compliance.
DEFAULT_RANGES = {"usage-patterns": "7d", "health": "1d", "trends": "7d", "compliance": "30d"}


def parse_time(text: str) -> float:
    """`now`, a unix timestamp, or an ISO 8601 time (UTC unless it carries an offset)."""
    if text == "now":
        return dt.datetime.now(dt.UTC).timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected now, a unix time or ISO 8601, got {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


GATHER = {
    "usage-patterns": usage_patterns,
    "health": health,
    "trends": trends,
    "compliance": compliance,
}


def build_report(
    client: PrometheusClient,
    cfg: dict[str, Any],
    kind: str,
    window: str,
    at: float,
    with_plots: bool = False,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (plots under `_plots` when asked for)."""
    seconds = parse_duration(window)
    src = Source(client, cfg, at)
    figures = GATHER[kind](src, window)
    report: dict[str, Any] = {
        "report": kind,
        "range": window,
        "start": iso_time(at - seconds),
        "end": iso_time(at),
        "prometheus": client.base_url,
        "data": bool(figures.get("data")),
    }
    if not figures.get("data"):
        report["message"] = NO_DATA
    report.update({k: v for k, v in figures.items() if k != "data"})
    if kind == "usage-patterns":
        recs, fired = recommend(figures, cfg)
        report["optimization_recommendations"] = recs
        report["recommendation_rules_fired"] = fired
    report["counter_resets"] = sorted(src.reset_metrics)
    report["counts_exact"] = not src.reset_metrics
    # Monitoring began inside the range: counts cover the time since the first sample only.
    report["coverage"] = "partial" if src.partial else "full"
    if with_plots:
        report["_plots"] = plot_data(src, kind, window, figures)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="which report")
    add_prometheus_url(parser)
    parser.add_argument(
        "--range",
        dest="window",
        default=None,
        help="how far back the report looks, e.g. 1d, 7d, 30d (default: health 1d, "
        "usage-patterns 7d, trends 7d, compliance 30d)",
    )
    parser.add_argument("--format", choices=("json", "markdown", "html"), default="json")
    parser.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    parser.add_argument(
        "--at",
        default="now",
        help="end of the range: now, unix time or ISO 8601 (default: now)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-query timeout, seconds")


def run(args: argparse.Namespace) -> int:
    window = args.window or DEFAULT_RANGES[args.kind]
    try:
        seconds = parse_duration(window)
        window = format_duration(seconds)
    except ValueError as exc:
        sys.stderr.write(f"deletion-monitor report: --range: {exc}\n")
        return 2
    try:
        at = parse_time(args.at)
    except ValueError as exc:
        sys.stderr.write(f"deletion-monitor report: --at: {exc}\n")
        return 2
    try:
        cfg = load_config()
        client = PrometheusClient(args.prometheus, timeout=args.timeout)
        report = build_report(client, cfg, args.kind, window, at, with_plots=args.format == "html")
    except (ConfigError, PrometheusError) as exc:
        sys.stderr.write(f"deletion-monitor report: {exc}\n")
        return 2
    text = report_render.render(report, args.format)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
