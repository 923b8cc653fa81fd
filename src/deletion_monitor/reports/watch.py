"""`deletion-monitor watch`: the spec's `monitor:immediate` live console, over Prometheus.

Every --interval seconds it reads the last hour from the Prometheus HTTP API and shows deletions,
success and error rate, failures by class, average/p95/p99 latency, timeouts and authorization
failures per hour, memory and pool usage, integrity violations and the alerts firing now,
coloured against the thresholds of config.libsonnet (ERROR_RATE_THRESHOLD and
RESPONSE_TIME_THRESHOLD override them, as do the flags). On a terminal it redraws one frame; piped
(cron, CI) it prints one JSON line per interval. An unreachable Prometheus is shown and retried.

Exit codes with --once: 0 all within thresholds, 1 a threshold is breached, 2 could not query
or no data: a series some figure needs has no sample now (a wrong job label in the selectors, an
exporter never scraped or down, an audit exporter still in its initial load) is "unknown", not
"ok", and the frame names the missing series. A breach of a figure that has data still wins (1),
with the missing series listed beside it.
Queries read the exporters' raw series, so no recording rule needs to be loaded; replicas of an
exporter (config replicaLabels) are collapsed before any sum, so two exporters on one table do
not double a figure. The error
and success rates count errors only, as the alerts do: refusals of unauthorised callers (config
errorRate.excludedErrorTypes) are shown under their class and the authorization check instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from deletion_monitor.common.cliargs import add_prometheus_url
from deletion_monitor.common.config import ConfigError, load_config
from deletion_monitor.common.promapi import (
    PrometheusClient,
    PrometheusError,
    dedup,
    format_duration,
)
from deletion_monitor.reports.figures import Source, excluded_error_types, selector
from deletion_monitor.reports.report import parse_time

HELP = "Live console of deletion health from Prometheus (the spec's monitor:immediate)."
WINDOW_SECONDS = 3600  # "deletions in the last hour" and every per-hour figure below


def window(cfg: dict[str, Any]) -> str:
    """The last hour, divided by the demo's timeCompression like the rendered rules."""
    return format_duration(WINDOW_SECONDS / float(cfg.get("timeCompression", 1)))


OK, BREACHED, UNKNOWN, UNREACHABLE = "ok", "breached", "unknown", "unreachable"
EXIT = {OK: 0, BREACHED: 1, UNKNOWN: 2, UNREACHABLE: 2}

GREEN, YELLOW, RED, BOLD, DIM, RESET = (
    "\x1b[32m",
    "\x1b[33m",
    "\x1b[31m",
    "\x1b[1m",
    "\x1b[2m",
    "\x1b[0m",
)
CLEAR = "\x1b[2J\x1b[H"


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_prometheus_url(parser)
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between refreshes (default: $CHECK_INTERVAL or 60)",
    )
    parser.add_argument(
        "--error-rate-threshold",
        type=float,
        default=None,
        metavar="PERCENT",
        help="error rate breach level in percent (default: $ERROR_RATE_THRESHOLD, else the "
        "config's errorRate.warning)",
    )
    parser.add_argument(
        "--response-time-threshold",
        type=float,
        default=None,
        metavar="MS",
        help="p95 latency breach level in ms (default: $RESPONSE_TIME_THRESHOLD, else the "
        "config's latency.warning)",
    )
    parser.add_argument("--once", action="store_true", help="print one frame and exit 0/1/2")
    parser.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    parser.add_argument(
        "--at",
        default=None,
        help="evaluate at this time instead of now (unix or ISO 8601): replay a past incident",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-query timeout, seconds")


def thresholds(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, float]:
    """Breach levels: flag, else environment (already applied by load_config), else config."""
    err = cfg["errorRate"]["warning"]
    if args.error_rate_threshold is not None:
        err = args.error_rate_threshold / 100
    lat = cfg["latency"]["warning"]
    if args.response_time_threshold is not None:
        lat = args.response_time_threshold / 1000
    if err <= 0 or err >= 1:
        raise ConfigError(f"--error-rate-threshold: a percentage in (0, 100), got {err * 100:g}")
    if lat <= 0:
        raise ConfigError("--response-time-threshold: must be greater than 0")
    return {
        "error_rate": err,
        "error_rate_info": min(cfg["errorRate"]["info"], err),
        "p95_seconds": lat,
        "p95_seconds_info": min(cfg["latency"]["info"], lat),
        "timeouts_per_hour": cfg["timeoutsPerHour"]["warning"],
        "authorization_failures_per_hour": cfg["authorizationFailuresPerHour"]["warning"],
        "memory_ratio": cfg["memory"]["warning"],
        "memory_ratio_critical": cfg["memory"]["critical"],
        "pool_ratio": cfg["pool"]["warning"],
        "integrity_violations": cfg["integrity"]["warning"],
    }


def required_series(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """(series selector, the figures it feeds) for every series a figure of the console needs.

    A selector with no sample now (Prometheus' 5-minute lookback at the evaluation time) leaves
    its figures unknown. The audit counters exist from the exporter's first served scrape (every
    user type pre-initialised), the integrity gauges once a check has succeeded.
    """
    audit, integrity, app = (
        cfg["auditExporterSelector"],
        cfg["integrityExporterSelector"],
        cfg["appSelector"],
    )
    return [
        (selector("deletion_requests_total", audit), "deletions, error rate, failure classes"),
        (selector("deletion_duration_seconds_bucket", audit), "latency"),
        (selector(cfg["appMemoryMetric"], app), "memory usage"),
        (selector(cfg["appMemoryLimitMetric"], app), "memory usage"),
        (selector(cfg["appPoolInUseMetric"], app), "db pool usage"),
        (selector(cfg["appPoolMaxMetric"], app), "db pool usage"),
        (selector("deletion_integrity_violations", integrity), "integrity violations"),
    ]


def missing_series(
    client: PrometheusClient, cfg: dict[str, Any], when: float
) -> list[dict[str, str]]:
    """The required series that have no sample at `when`."""
    return [
        {"series": sel, "figures": figures}
        for sel, figures in required_series(cfg)
        if not client.query(f"count({sel})", when)
    ]


def measure(client: PrometheusClient, cfg: dict[str, Any], at: float | None) -> dict[str, Any]:
    """One snapshot of the last hour; raises PrometheusError when Prometheus cannot answer."""
    integrity, app = cfg["integrityExporterSelector"], cfg["appSelector"]
    w = window(cfg)
    when = time.time() if at is None else at
    # The reports' exact counting (figures.Source): no extrapolation, counter resets and a
    # monitoring start inside the hour handled, so the first hour after deploying the exporter
    # on an existing audit log does not show the whole history as "the last hour".
    src = Source(client, cfg, when)

    def val(expr: str) -> float | None:
        return client.query_value(expr, when)

    requests = src.total(src.req(), w)
    failures = src.total(src.fail(), w)
    # Errors: the failures the availability SLI counts. Refusals of unauthorised callers
    # (config errorRate.excludedErrorTypes) are not errors; they show under their own class and
    # the authorization-failures check instead.
    errors = src.total(src.errors(), w) if src.excludes else failures
    by_class = {k: round(v) for k, v in src.total_by(src.fail(), w, "error_type").items() if v > 0}
    metric = "deletion_duration_seconds"
    avg = src.average(metric, w)

    def quantile(q: float) -> float | None:
        return src.quantile(q, metric, src.audit, w)

    def bucket(q: float) -> list[float] | None:
        # The bucket bounds the percentile lies between: all the histogram knows about it.
        b = src.quantile_bucket(q, metric, src.audit, w)
        return None if b is None else [b["lower"], b["upper"], b["in_bucket"], b["observations"]]

    memory = val(
        f"sum({selector(cfg['appMemoryMetric'], app)})"
        f" / sum({selector(cfg['appMemoryLimitMetric'], app)})"
    )
    pool = val(
        f"sum({selector(cfg['appPoolInUseMetric'], app)})"
        f" / sum({selector(cfg['appPoolMaxMetric'], app)})"
    )
    # One figure per check however many integrity exporters report it (config replicaLabels).
    replicas = cfg.get("replicaLabels", ())
    violations = val(
        f"sum({dedup(selector('deletion_integrity_violations', integrity), replicas)})"
    )
    alert_sel = f'alertstate="firing",service="{cfg["serviceName"]}",alertname!="Watchdog"'
    alerts = sorted(
        {
            (s.labels.get("alertname", ""), s.labels.get("severity", ""))
            for s in client.query(f"ALERTS{{{alert_sel}}}", when)
        }
    )
    n = None if requests is None else round(requests)
    f = 0 if failures is None else round(failures)
    e = 0 if errors is None else min(round(errors), f)
    return {
        "deletions_1h": n,
        "failures_1h": f if n is not None else None,
        "errors_1h": e if n is not None else None,
        "success_rate": (n - e) / n if n else None,
        "error_rate": e / n if n else None,
        "failures_by_class": dict(sorted(by_class.items(), key=lambda kv: (-kv[1], kv[0]))),
        "timeouts_1h": by_class.get("timeout", 0),
        "authorization_failures_1h": by_class.get("authorization", 0),
        "average_seconds": avg,
        "p95_seconds": quantile(0.95),
        "p99_seconds": quantile(0.99),
        # [lower, upper, deletions in that bucket, deletions in all]: a p95 of 7.38 s when
        # every deletion took 6.5 s is 95 % of the way through the 5-7.5 s bucket.
        "p95_bucket": bucket(0.95),
        "p99_bucket": bucket(0.99),
        "memory_ratio": memory,
        "pool_ratio": pool,
        "integrity_violations": violations,
        "alerts_firing": [{"alertname": a, "severity": s} for a, s in alerts],
        "coverage": "partial" if src.partial else "full",
        "counts_exact": not src.reset_metrics,
        "missing": missing_series(client, cfg, when),
    }


# (figure, threshold key, how to describe it) — every comparison that can breach.
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("error_rate", "error_rate", "error rate"),
    ("p95_seconds", "p95_seconds", "p95 latency"),
    ("timeouts_1h", "timeouts_per_hour", "timeouts per hour"),
    (
        "authorization_failures_1h",
        "authorization_failures_per_hour",
        "authorization failures per hour",
    ),
    ("memory_ratio", "memory_ratio", "memory usage"),
    ("pool_ratio", "pool_ratio", "db pool usage"),
    ("integrity_violations", "integrity_violations", "integrity violations"),
)


def breaches(snap: dict[str, Any], thr: dict[str, float]) -> list[str]:
    """Human-readable list of figures above their threshold (strictly above, as the alerts)."""
    out = []
    for key, tkey, label in CHECKS:
        value = snap.get(key)
        if value is not None and value > thr[tkey]:
            out.append(f"{label} {_fmt(key, value)} > {_fmt(key, thr[tkey])}")
    return out


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if key.endswith("rate") or key.endswith("ratio"):
        return f"{value * 100:.2f} %"
    if key.endswith("seconds"):
        return f"{value * 1000:.0f} ms"
    return f"{value:g}"


def snapshot(
    client: PrometheusClient, cfg: dict[str, Any], thr: dict[str, float], at: float | None
) -> dict[str, Any]:
    """The record one frame shows and one JSON line carries."""
    when = time.time() if at is None else at
    base = {
        "ts": dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prometheus": client.base_url,
        "window": window(cfg),
        "thresholds": {"error_rate": thr["error_rate"], "p95_seconds": thr["p95_seconds"]},
    }
    try:
        snap = measure(client, cfg, at)
    except PrometheusError as exc:
        return {**base, "status": UNREACHABLE, "error": str(exc)}
    found = breaches(snap, thr)
    return {
        **base,
        "status": BREACHED if found else UNKNOWN if snap["missing"] else OK,
        "breaches": found,
        "excluded_error_types": list(excluded_error_types(cfg)),
        **snap,
    }


def quantile_explanation(snap: dict[str, Any], name: str) -> str:
    """`p95 7375 ms: interpolated within the 5-7.5 s histogram bucket (20 of 20 deletions)`,
    plus the exact average when every deletion lies in that one bucket."""
    value, b = snap.get(f"{name}_seconds"), snap.get(f"{name}_bucket")
    if value is None or not b:
        return ""
    lo, hi, inside, total = b
    if hi == float("inf"):
        return (
            f"{name}: beyond the highest histogram bucket ({lo:g} s); "
            f"{inside} of {total} deletions took longer"
        )
    text = (
        f"{name} {_fmt('p_seconds', value)}: interpolated within the {lo:g}–{hi:g} s histogram "
        f"bucket ({inside} of {total} deletions lie in it)"
    )
    if inside == total and snap.get("average_seconds") is not None:
        text += (
            f"; every deletion of the hour is in that bucket, so {name} is not a measured "
            f"duration: the exact average is {_fmt('p_seconds', snap['average_seconds'])}"
        )
    return text


def _colour(value: float | None, warn: float, info: float | None = None) -> str:
    if value is None:
        return DIM
    if value > warn:
        return RED
    if info is not None and value > info:
        return YELLOW
    return GREEN


def frame(snap: dict[str, Any], thr: dict[str, float], interval: float | None) -> str:
    """ANSI colour frame of one snapshot (for a terminal)."""
    lines = [
        f"{BOLD}Deletion monitor{RESET}  {snap['ts']}  {DIM}{snap['prometheus']}"
        f"  last {snap['window']}{RESET}"
    ]
    if snap["status"] == UNREACHABLE:
        lines += [
            "",
            f"{RED}{BOLD}PROMETHEUS UNREACHABLE{RESET}  {snap['error']}",
            f"{DIM}retrying" + (f" in {interval:g}s" if interval else "") + RESET,
        ]
        return "\n".join(lines) + "\n"
    status_colour = {BREACHED: RED, UNKNOWN: YELLOW}.get(snap["status"], GREEN)
    lines.append(f"status: {status_colour}{BOLD}{snap['status'].upper()}{RESET}")
    for b in snap["breaches"]:
        lines.append(f"  {RED}! {b}{RESET}")
    for m in snap["missing"]:
        lines.append(f"  {YELLOW}? no data: {m['series']} ({m['figures']} unknown){RESET}")
    lines.append("")
    if not snap["deletions_1h"]:
        lines.append(f"{DIM}no deletions in the last hour{RESET}")
    if snap["coverage"] == "partial":
        lines.append(f"{DIM}monitoring began within the hour: counts since the first sample{RESET}")
    if not snap["counts_exact"]:
        lines.append(f"{DIM}a counter reset within the hour: counts are approximate{RESET}")

    def row(label: str, key: str, warn: float | None = None, info: float | None = None) -> None:
        value = snap.get(key)
        colour = _colour(value, warn, info) if warn is not None else ""
        lines.append(f"  {label:<34}{colour}{_fmt(key, value)}{RESET if colour else ''}")

    row("deletions", "deletions_1h")
    row("failed", "failures_1h")
    excluded = snap.get("excluded_error_types") or []
    if excluded:
        row(f"errors (excl. {', '.join(excluded)})", "errors_1h")
    row("success rate", "success_rate")
    row("error rate", "error_rate", thr["error_rate"], thr["error_rate_info"])
    row("average latency", "average_seconds")
    row("p95 latency", "p95_seconds", thr["p95_seconds"], thr["p95_seconds_info"])
    row("p99 latency", "p99_seconds")
    for name in ("p95", "p99"):
        explained = quantile_explanation(snap, name)
        if explained:
            lines.append(f"  {DIM}{explained}{RESET}")
    row("timeouts per hour", "timeouts_1h", thr["timeouts_per_hour"], 0)
    row(
        "authorization failures per hour",
        "authorization_failures_1h",
        thr["authorization_failures_per_hour"],
        0,
    )
    row("memory usage", "memory_ratio", thr["memory_ratio"])
    row("db pool usage", "pool_ratio", thr["pool_ratio"])
    row("integrity violations", "integrity_violations", thr["integrity_violations"], 0)
    if snap["failures_by_class"]:
        lines.append("")
        lines.append(
            "  failures by class: "
            + ", ".join(f"{k} {v}" for k, v in snap["failures_by_class"].items())
        )
    lines.append("")
    if snap["alerts_firing"]:
        lines.append(f"  {BOLD}alerts firing:{RESET}")
        for a in snap["alerts_firing"]:
            c = RED if a["severity"] == "critical" else YELLOW
            lines.append(f"    {c}{a['alertname']} ({a['severity']}){RESET}")
    else:
        lines.append(f"  {GREEN}no alerts firing{RESET}")
    lines.append(
        f"\n{DIM}thresholds: error rate {_fmt('error_rate', thr['error_rate'])}, "
        f"p95 {_fmt('p95_seconds', thr['p95_seconds'])}"
        + (f"; refresh every {interval:g}s, Ctrl-C to quit" if interval else "")
        + RESET
    )
    return "\n".join(lines) + "\n"


def run(
    args: argparse.Namespace,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    out = out or sys.stdout
    try:
        cfg = load_config()
        thr = thresholds(args, cfg)
        excluded_error_types(cfg)  # a bad errorRate.excludedErrorTypes is exit 2, not a crash
        interval = args.interval
        if interval is None:
            env_interval = _env_float("CHECK_INTERVAL")
            interval = env_interval if env_interval is not None else 60.0
        if interval <= 0:
            raise ConfigError("--interval: must be greater than 0")
        try:
            at = parse_time(args.at) if args.at else None
        except ValueError as exc:
            raise ConfigError(f"--at: {exc}") from None
        client = PrometheusClient(args.prometheus, timeout=args.timeout)
    except (ConfigError, PrometheusError) as exc:
        sys.stderr.write(f"deletion-monitor watch: {exc}\n")
        return 2
    as_json = args.json or not out.isatty()
    while True:
        snap = snapshot(client, cfg, thr, at)
        if as_json:
            out.write(json.dumps(snap, sort_keys=True) + "\n")
        else:
            out.write(CLEAR + frame(snap, thr, None if args.once else interval))
        out.flush()
        if args.once:
            if snap["status"] == UNREACHABLE:
                sys.stderr.write(f"deletion-monitor watch: {snap['error']}\n")
            elif snap["status"] == UNKNOWN:
                names = ", ".join(m["series"] for m in snap["missing"])
                sys.stderr.write(f"deletion-monitor watch: no data for {names}\n")
            return EXIT[snap["status"]]
        sleep(interval)
