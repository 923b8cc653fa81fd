"""`deletion-monitor report KIND`: the command that builds one report from Prometheus."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
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
    summary,
    trends,
    usage_patterns,
)
from deletion_monitor.reports.recommendations import evaluate, recommend

HELP = "Usage-pattern, health, trend and compliance reports computed from Prometheus data."

KINDS = ("usage-patterns", "health", "trends", "compliance")
# The spec's cadence: weekly usage analysis and trends, daily health, monthly compliance.
DEFAULT_RANGES = {"usage-patterns": "7d", "health": "1d", "trends": "7d", "compliance": "30d"}
# How many fired recommendations the summary repeats (all of them are in the details).
TOP_RECOMMENDATIONS = 3


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
    """The report as a JSON-ready dict (plots under `_plots` when asked for).

    Keys in reading order: what the report is and the range it actually covers, the summary
    (status, SLO, error budget, incidents, top recommendations with their evidence), then the
    details.
    """
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
    report["data_coverage"] = figures.pop("data_coverage", None)
    head = summary(src, kind, window, {**figures, "data_coverage": report["data_coverage"]})
    report["summary"] = head
    report.update({k: v for k, v in figures.items() if k != "data"})
    if kind == "usage-patterns":
        rows = evaluate(figures, cfg)
        recs, fired = recommend(figures, cfg)
        report["optimization_recommendations"] = recs
        report["recommendation_rules_fired"] = fired
        report["recommendation_rules_withheld"] = [
            {"rule": r["rule"], "evidence": r["evidence"]} for r in rows if r["status"] != "fired"
        ]
        head["top_recommendations"] = [
            {"rule": r["rule"], "text": r["text"], "evidence": r["evidence"]}
            for r in rows
            if r["status"] == "fired"
        ][:TOP_RECOMMENDATIONS]
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
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="write here instead of stdout; its directory must exist (see --mkdir)",
    )
    parser.add_argument(
        "--mkdir",
        action="store_true",
        help="create the --output file's directory (and its parents) when missing",
    )
    parser.add_argument(
        "--at",
        default="now",
        help="end of the range: now, unix time or ISO 8601 (default: now)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-query timeout, seconds")


def check_output(path: Path, mkdir: bool) -> str | None:
    """Why `path` cannot be written (one line), or None. Checked before any query, so a typo in
    a cron line fails at once instead of after a month of data was read."""
    parent = path.parent
    if path.is_dir():
        return f"--output: {path} is a directory"
    if not parent.exists():
        if not mkdir:
            return f"--output: directory {parent} does not exist (pass --mkdir to create it)"
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--output: cannot create directory {parent}: {exc.strerror or exc}"
    elif not parent.is_dir():
        return f"--output: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"--output: {path} is not writable"
    return None


def write_output(path: Path, text: str) -> str | None:
    """Write `text` to `path` whole or not at all (a temporary file renamed over it); the
    reason it failed, in one line, or None."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return f"--output: cannot write {path}: {exc.strerror or exc}"
    return None


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
    if args.output is not None:
        problem = check_output(args.output, getattr(args, "mkdir", False))
        if problem:
            sys.stderr.write(f"deletion-monitor report: {problem}\n")
            return 2
    try:
        cfg = load_config()
        client = PrometheusClient(args.prometheus, timeout=args.timeout)
        report = build_report(client, cfg, args.kind, window, at, with_plots=args.format == "html")
    except (ConfigError, PrometheusError) as exc:
        sys.stderr.write(f"deletion-monitor report: {exc}\n")
        return 2
    text = report_render.render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    problem = write_output(args.output, text)
    if problem:
        sys.stderr.write(f"deletion-monitor report: {problem}\n")
        return 2
    # Say where it went: a report written silently looks like one that was never written.
    sys.stderr.write(
        f"deletion-monitor report: wrote the {args.kind} report ({args.format}, "
        f"{len(text.encode())} bytes) to {args.output}\n"
    )
    return 0
