"""`deletion-monitor watch` and `report` against a real Prometheus holding known data.

Two weeks of exporter series are generated here with every increment known, backfilled with
`promtool tsdb create-blocks-from openmetrics`, and served by a real `prometheus` (module-scoped).
Week A ("troubled", ends at END - 7d) is built so that every recommendation rule's condition
holds; week B ("calm", ends at END) so that none does. Expected figures are recomputed from the
generator's own increments, never copied from the code under test.

The recommendation rules' boundaries on synthetic figures, the docs table and the error paths that
need no Prometheus (bad arguments, unreachable or silent server) are
tests/unit/test_report_figures.py and tests/unit/test_report_watch_offline.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.reports import parse, run_watch

from deletion_monitor.common.config import CONFIG_PATH, load_config
from deletion_monitor.common.promapi import PrometheusClient, PrometheusError
from deletion_monitor.reports import figures, recommendations, report, watch
from deletion_monitor.reports import render as report_render
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http

STEP = 300
WEEK = 7 * 86400
DAY = 86400
# An hour boundary in the past: the data ends here and starts 14 days earlier.
END = (int(time.time()) // 3600) * 3600 - 3600
START = END - 2 * WEEK
A_END = END - WEEK  # end of the troubled week
# Reports are evaluated half a step after the last sample, as on a real server where scrapes
# never line up with the query time: increase() would extrapolate there, exact counts must not.
A_AT = A_END + STEP // 2
B_AT = END + STEP // 2
PEAK_HOUR = 14  # UTC hour that carries the troubled week's extra load
USER_TYPES = ("CLIENT", "VENDOR", "DRIVER")
BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30]
RESET_JOB = 'job="restarted-exporter"'
LATE_JOB = 'job="late-exporter"'
FRESH_JOB = 'job="fresh-exporter"'
# A job whose only failures are refused unauthorised callers (3 of 10 deletions a step).
REFUSED_JOB = 'job="refused-exporter"'
LATE_HISTORY = 1000
RESET_AT_STEP = 144  # the restarted job's counter drops to 0 after this step of the last day
FAIL_SECONDS = {"authorization": 0.08, "timeout": 10.0, "unknown": 0.2, "business_logic": 0.15}


@dataclass
class Step:
    """What happened in (t - STEP, t]."""

    t: int
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    # (outcome, user_type, seconds, count)
    observations: list[tuple[str, str, float, int]] = field(default_factory=list)
    complex_obs: list[tuple[float, int]] = field(default_factory=list)
    audited: int = 0
    audit_failures: int = 0
    forbidden: int = 0
    gauges: dict[str, float] = field(default_factory=dict)
    alert_firing: bool = False

    @property
    def hour(self) -> str:
        return f"{dt.datetime.fromtimestamp(self.t - STEP, dt.UTC).hour:02d}"

    @property
    def weekday(self) -> str:
        return figures.WEEKDAYS[dt.datetime.fromtimestamp(self.t - STEP, dt.UTC).weekday()]

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def make_step(t: int) -> Step:
    s = Step(t)
    troubled = t <= A_END
    seg_start = START if troubled else A_END
    i = (t - seg_start) // STEP  # 1-based index inside the week
    day = (t - seg_start - STEP) // DAY  # 0..6, aligned with the report's 24 h windows
    hour = int(s.hour)
    s.gauges = {
        "memory": 400e6,
        "limit": 1e9,
        "pool_in_use": 4,
        "pool_max": 20,
        "orphans": 0,
        "audit_gaps": 0,
    }
    if troubled:
        driver = 1 + day  # growing volume: the capacity-growth rule
        client = 3 + (25 if hour == PEAK_HOUR else 0)  # the peak-hour rules
        s.requests = {"CLIENT": client, "VENDOR": 2, "DRIVER": driver}
        fails: dict[tuple[str, str], int] = {}
        # Five failures an hour: 2 timeouts, 2 authorization, 1 unknown (shares 40/40/20 %).
        phase = i % 12
        if phase in (1, 7):
            fails[("VENDOR", "timeout")] = 1
        if phase in (3, 9):
            fails[("CLIENT", "authorization")] = 1
        if phase == 5:
            fails[("DRIVER", "unknown")] = 1
        s.failures = fails
        vendor_seconds = 7.0 if day <= 2 else 0.3  # slow vendors early: p95 above target
        speeds = {"CLIENT": 0.3, "VENDOR": vendor_seconds, "DRIVER": 2.2}
        if phase == 0:
            s.complex_obs = [(9.0, 1)]  # complex deletions far above the p95 target
        if day == 1:
            s.gauges["memory"] = 850e6
            s.alert_firing = True
        if day == 2:
            s.gauges["orphans"] = 3
        if day == 4:
            s.gauges["audit_gaps"] = 1
        if day == 3 and i % 288 == 10:
            s.audit_failures = 1
        if day == 5 and i % 288 == 20:
            s.forbidden = 1
    else:
        s.requests = {"CLIENT": 3, "VENDOR": 2, "DRIVER": 1}
        # One business-logic failure every 20 h, never in the last hour of the week.
        s.failures = {("CLIENT", "business_logic"): 1} if i % 240 == 120 else {}
        speeds = {"CLIENT": 0.3, "VENDOR": 0.3, "DRIVER": 0.3}
        if i % 12 == 0:
            s.complex_obs = [(1.2, 1)]
    if i % 12 == 0:
        s.audited = 1
    failed_by_type: dict[str, int] = defaultdict(int)
    for (ut, et), n in s.failures.items():
        failed_by_type[ut] += n
        s.observations.append(("failure", ut, FAIL_SECONDS[et], n))
    for ut, n in s.requests.items():
        ok = n - failed_by_type[ut]
        if ok:
            s.observations.append(("success", ut, speeds[ut], ok))
    return s


STEPS = [make_step(t) for t in range(START + STEP, END + 1, STEP)]


def in_window(at: int, seconds: int) -> list[Step]:
    return [s for s in STEPS if at - seconds < s.t <= at]


def bucket_index(seconds: float) -> int:
    for idx, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return idx
    return len(BUCKETS)


def quantile_bounds(obs: list[tuple[float, int]], q: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] that holds quantile q of the observations."""
    counts = [0] * (len(BUCKETS) + 1)
    for seconds, n in obs:
        counts[bucket_index(seconds)] += n
    rank = q * sum(counts)
    cum = 0
    for idx, c in enumerate(counts):
        cum += c
        if cum >= rank and c:
            lower = BUCKETS[idx - 1] if idx else 0.0
            return lower, BUCKETS[idx] if idx < len(BUCKETS) else math.inf
    raise AssertionError("no observations")


# --------------------------------------------------------------------------------------------
# OpenMetrics file


def openmetrics(cfg: dict[str, Any]) -> str:
    audit, integ, app = (
        cfg["auditExporterSelector"],
        cfg["integrityExporterSelector"],
        cfg["appSelector"],
    )
    families: dict[str, tuple[str, dict[str, list[tuple[int, float]]]]] = {}

    def add(family: str, kind: str, series: str, t: int, value: float) -> None:
        families.setdefault(family, (kind, defaultdict(list)))[1][series].append((t, value))

    cum: dict[str, float] = defaultdict(float)
    hist: dict[tuple[str, str], list[int]] = {
        (o, ut): [0] * (len(BUCKETS) + 1) for o in ("success", "failure") for ut in USER_TYPES
    }
    hist_sum: dict[tuple[str, str], float] = defaultdict(float)
    cx = [0] * (len(BUCKETS) + 1)
    cx_sum = 0.0
    fail_keys = sorted({k for s in STEPS for k in s.failures})
    first = Step(START)
    for s in [first, *STEPS]:
        t = s.t
        for ut in USER_TYPES:
            cum[f"req{ut}"] += s.requests.get(ut, 0)
            add(
                "deletion_requests",
                "counter",
                f'deletion_requests_total{{{audit},user_type="{ut}"}}',
                t,
                cum[f"req{ut}"],
            )
        for ut, et in fail_keys:
            cum[f"f{ut}{et}"] += s.failures.get((ut, et), 0)
            add(
                "deletion_failures",
                "counter",
                f'deletion_failures_total{{{audit},user_type="{ut}",error_type="{et}"}}',
                t,
                cum[f"f{ut}{et}"],
            )
        for outcome, ut, seconds, n in s.observations:
            hist[(outcome, ut)][bucket_index(seconds)] += n
            hist_sum[(outcome, ut)] += seconds * n
        for (outcome, ut), counts in hist.items():
            labels = f'{audit},outcome="{outcome}",user_type="{ut}"'
            running = 0
            for idx, c in enumerate(counts):
                running += c
                le = f"{BUCKETS[idx]}" if idx < len(BUCKETS) else "+Inf"
                add(
                    "deletion_duration_seconds",
                    "histogram",
                    f'deletion_duration_seconds_bucket{{{labels},le="{le}"}}',
                    t,
                    running,
                )
            add(
                "deletion_duration_seconds",
                "histogram",
                f"deletion_duration_seconds_sum{{{labels}}}",
                t,
                hist_sum[(outcome, ut)],
            )
            add(
                "deletion_duration_seconds",
                "histogram",
                f"deletion_duration_seconds_count{{{labels}}}",
                t,
                running,
            )
        for seconds, n in s.complex_obs:
            cx[bucket_index(seconds)] += n
            cx_sum += seconds * n
        running = 0
        name = "deletion_large_cascade_duration_seconds"
        for idx, c in enumerate(cx):
            running += c
            le = f"{BUCKETS[idx]}" if idx < len(BUCKETS) else "+Inf"
            add(name, "histogram", f'{name}_bucket{{{audit},le="{le}"}}', t, running)
        add(name, "histogram", f"{name}_sum{{{audit}}}", t, cx_sum)
        add(name, "histogram", f"{name}_count{{{audit}}}", t, running)
        if s is not first:
            cum[f"h{s.hour}"] += s.total
            cum[f"w{s.weekday}"] += s.total
        for h in figures.HOURS:
            add(
                "deletion_requests_by_hour",
                "counter",
                f'deletion_requests_by_hour_total{{{audit},hour="{h}"}}',
                t,
                cum[f"h{h}"],
            )
        for d in figures.WEEKDAYS:
            add(
                "deletion_requests_by_weekday",
                "counter",
                f'deletion_requests_by_weekday_total{{{audit},weekday="{d}"}}',
                t,
                cum[f"w{d}"],
            )
        cum["forbidden"] += s.forbidden
        add(
            "deletion_forbidden_successes",
            "counter",
            f'deletion_forbidden_successes_total{{{audit},kind="self_deletion"}}',
            t,
            cum["forbidden"],
        )
        cum["audited"] += s.audited
        cum["audit_failures"] += s.audit_failures
        add(
            "deletion_completeness_audited",
            "counter",
            f"deletion_completeness_audited_total{{{integ}}}",
            t,
            cum["audited"],
        )
        add(
            "deletion_completeness_failures",
            "counter",
            f"deletion_completeness_failures_total{{{integ}}}",
            t,
            cum["audit_failures"],
        )
        g = s.gauges or make_step(START + STEP).gauges
        viol = "deletion_integrity_violations"
        add(
            viol,
            "gauge",
            f'{viol}{{{integ},check="orphaned_sessions",category="foreign_key",'
            f'severity="warning"}}',
            t,
            g["orphans"],
        )
        add(
            viol,
            "gauge",
            f'{viol}{{{integ},check="audit_trail_gaps",category="audit_trail",severity="warning"}}',
            t,
            g["audit_gaps"],
        )
        add(
            "deletion_integrity_check_up",
            "gauge",
            f'deletion_integrity_check_up{{{integ},check="orphaned_sessions"}}',
            t,
            1,
        )
        for metric, key in (
            (cfg["appMemoryMetric"], "memory"),
            (cfg["appMemoryLimitMetric"], "limit"),
            (cfg["appPoolInUseMetric"], "pool_in_use"),
            (cfg["appPoolMaxMetric"], "pool_max"),
        ):
            add(metric, "gauge", f"{metric}{{{app}}}", t, g[key])
        service = cfg["serviceName"]
        add(
            "ALERTS",
            "gauge",
            f'ALERTS{{alertname="Watchdog",alertstate="firing",severity="info",'
            f'service="{service}"}}',
            t,
            1,
        )
        if s.alert_firing:
            add(
                "ALERTS",
                "gauge",
                f'ALERTS{{alertname="DeletionErrorRateHigh",alertstate="firing",'
                f'severity="warning",service="{service}"}}',
                t,
                1,
            )
    # A separate job whose exporter restarted half-way through the last day (counter reset).
    reset_series = f'deletion_requests_total{{{RESET_JOB},user_type="CLIENT"}}'
    for k in range(DAY // STEP + 1):
        value = 2 * k if k <= RESET_AT_STEP else 2 * (k - RESET_AT_STEP)
        add("deletion_requests", "counter", reset_series, END - DAY + k * STEP, value)
    # Two jobs first scraped one day before END: one whose counter already held 1000
    # deletions of history, one that started from 0. Each has its first timeout ever 12 h
    # before END.
    for job, history in ((LATE_JOB, LATE_HISTORY), (FRESH_JOB, 0)):
        late_req = f'deletion_requests_total{{{job},user_type="CLIENT"}}'
        late_fail = f'deletion_failures_total{{{job},user_type="CLIENT",error_type="timeout"}}'
        for k in range(DAY // STEP + 1):
            t = END - DAY + k * STEP
            add("deletion_requests", "counter", late_req, t, history + 2 * k)
            if t >= END - DAY // 2:
                add("deletion_failures", "counter", late_fail, t, 1)
    refused_req = f'deletion_requests_total{{{REFUSED_JOB},user_type="CLIENT"}}'
    refused_fail = (
        f'deletion_failures_total{{{REFUSED_JOB},user_type="CLIENT",error_type="authorization"}}'
    )
    for k in range(DAY // STEP + 1):
        t = END - DAY + k * STEP
        add("deletion_requests", "counter", refused_req, t, 10 * k)
        add("deletion_failures", "counter", refused_fail, t, 3 * k)
    lines = []
    for family, (kind, series) in families.items():
        lines.append(f"# TYPE {family} {kind}")
        for name, points in series.items():
            lines.extend(f"{name} {v!r} {t}" for t, v in points)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return load_config(env={})


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, cfg: dict[str, Any]) -> Iterator[str]:
    promtool = require_binary("promtool")
    binary = require_binary("prometheus")
    work = tmp_path_factory.mktemp("prom")
    om = work / "data.om"
    om.write_text(openmetrics(cfg))
    data = work / "tsdb"
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            "--max-block-duration=400h",
            str(om),
            str(data),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    om.unlink()
    (work / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    port = free_port()
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            # The data is at most 15 days old; retention must keep it (and the compliance
            # report shows this running value).
            "--storage.tsdb.retention.time=400d",
        ],
        work / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60)
        yield url
    finally:
        proc.stop()


def build(prom: str, cfg: dict[str, Any], kind: str, window: str, at: int) -> dict[str, Any]:
    return report.build_report(PrometheusClient(prom), cfg, kind, window, at)


def totals(steps: list[Step]) -> tuple[int, int]:
    return sum(s.total for s in steps), sum(sum(s.failures.values()) for s in steps)


def errors(steps: list[Step], user_type: str | None = None) -> int:
    """Failures that count as errors: refused unauthorised callers do not (config
    errorRate.excludedErrorTypes)."""
    return sum(
        n
        for s in steps
        for (ut, et), n in s.failures.items()
        if et != "authorization" and user_type in (None, ut)
    )


def all_obs(steps: list[Step], user_type: str | None = None) -> list[tuple[float, int]]:
    return [
        (sec, n)
        for s in steps
        for _, ut, sec, n in s.observations
        if user_type is None or ut == user_type
    ]


def within(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


# --------------------------------------------------------------------------------------------
# usage-patterns


def test_usage_patterns_figures_equal_loaded_data(prom: str, cfg: dict[str, Any]) -> None:
    rep = build(prom, cfg, "usage-patterns", "7d", A_AT)
    steps = in_window(A_AT, WEEK)
    req, fails = totals(steps)
    assert rep["data"] is True
    assert rep["totals"]["requests"] == req
    assert rep["totals"]["failures"] == fails
    assert rep["totals"]["successes"] == req - fails
    # The rates count errors only: the week's authorization refusals are failures, not errors.
    errs = errors(steps)
    assert 0 < errs < fails
    assert rep["totals"]["errors"] == errs
    assert rep["totals"]["error_rate"] == pytest.approx(errs / req)
    assert rep["totals"]["success_rate"] == pytest.approx(1 - errs / req)
    assert rep["per_period"]["per_day"] == pytest.approx(req / 7)
    assert rep["per_period"]["per_month"] == pytest.approx(req / 7 * 30)

    by_hour: dict[str, int] = defaultdict(int)
    by_day: dict[str, int] = defaultdict(int)
    for s in steps:
        by_hour[s.hour] += s.total
        by_day[s.weekday] += s.total
    assert rep["by_hour"] == {h: by_hour[h] for h in figures.HOURS}
    assert rep["by_weekday"] == {d: by_day[d] for d in figures.WEEKDAYS}
    assert rep["peak_hour"] == f"{PEAK_HOUR:02d}"

    daily = [sum(s.total for s in in_window(A_AT - k * DAY, DAY)) for k in range(6, -1, -1)]
    assert [d["requests"] for d in rep["daily"]] == daily

    for row in rep["user_types"]:
        ut = row["user_type"]
        assert row["requests"] == sum(s.requests[ut] for s in steps)
        assert row["failures"] == sum(
            n for s in steps for (u, _), n in s.failures.items() if u == ut
        )
        assert row["error_rate"] == pytest.approx(errors(steps, ut) / row["requests"])
        assert within(row["p95_seconds"], quantile_bounds(all_obs(steps, ut), 0.95))
    classes = defaultdict(int)
    for s in steps:
        for (_, et), n in s.failures.items():
            classes[et] += n
    assert {r["error_type"]: r["failures"] for r in rep["failure_classes"]} == classes
    assert sum(r["share"] for r in rep["failure_classes"]) == pytest.approx(1)

    obs = all_obs(steps)
    lat = rep["latency"]
    for q, key in ((0.5, "p50_seconds"), (0.95, "p95_seconds"), (0.99, "p99_seconds")):
        assert within(lat[key], quantile_bounds(obs, q)), key
    assert lat["average_seconds"] == pytest.approx(
        sum(sec * n for sec, n in obs) / sum(n for _, n in obs)
    )
    cx = [o for s in steps for o in s.complex_obs]
    assert rep["complex_deletions"]["count"] == sum(n for _, n in cx)
    assert within(rep["complex_deletions"]["p95_seconds"], quantile_bounds(cx, 0.95))
    slope = rep["capacity_projection"]["trend_per_day"]
    assert slope == pytest.approx((daily[-1] - daily[0]) / 6, rel=0.05)


def test_counter_reset_falls_back_to_increase_and_says_so(prom: str, cfg: dict[str, Any]) -> None:
    exact = build(prom, cfg, "usage-patterns", "1d", B_AT)
    assert exact["counts_exact"] is True and exact["counter_resets"] == []
    restarted = {**cfg, "auditExporterSelector": RESET_JOB}
    rep = build(prom, restarted, "usage-patterns", "1d", B_AT)
    assert rep["counts_exact"] is False
    assert rep["counter_resets"] == ["deletion_requests_total"]
    # 2 per step for a day; end - start would give 2 * (288 - 2 * 144) = 0.
    assert rep["totals"]["requests"] == pytest.approx(2 * DAY // STEP, rel=0.02)
    md = report_text_cfg(prom, restarted)
    assert "counter reset" in md


def test_range_starting_before_the_data_counts_since_first_sample(
    prom: str, cfg: dict[str, Any]
) -> None:
    late = {**cfg, "auditExporterSelector": LATE_JOB}
    # The job was scraped at the start of an 18 h range: exact, and the timeout series that
    # first appeared inside the range counts in full.
    rep = build(prom, late, "usage-patterns", "18h", B_AT)
    assert rep["coverage"] == "full"
    assert rep["totals"]["requests"] == 2 * (18 * 3600 // STEP)
    assert rep["totals"]["failures"] == 1
    # A 2-day range starts before the first scrape: the 1000 deletions of history are not
    # this range's; only the increase since the first sample counts, and the report says so.
    rep = build(prom, late, "usage-patterns", "2d", B_AT)
    assert rep["coverage"] == "partial"
    assert rep["totals"]["requests"] == 2 * (DAY // STEP)
    assert rep["totals"]["failures"] == 1  # appeared after the first scrape: new, in full
    assert [d["requests"] for d in rep["daily"]] == [0, 2 * (DAY // STEP)]
    assert "Partial coverage" in report_render.render(rep, "markdown")
    # The same without history: everything happened in range, so the count is exact again and
    # the timeout that first appeared inside it counts in full.
    fresh = build(prom, {**cfg, "auditExporterSelector": FRESH_JOB}, "usage-patterns", "2d", B_AT)
    assert fresh["coverage"] == "full"
    assert fresh["totals"]["requests"] == 2 * (DAY // STEP)
    assert fresh["totals"]["failures"] == 1
    assert [d["requests"] for d in fresh["daily"]] == [0, 2 * (DAY // STEP)]
    full = build(prom, cfg, "usage-patterns", "7d", B_AT)
    assert full["coverage"] == "full"


def report_text_cfg(prom: str, cfg: dict[str, Any]) -> str:
    rep = build(prom, cfg, "usage-patterns", "1d", B_AT)
    return report_render.render(rep, "markdown")


def test_recommendations_fire_exactly_when_conditions_hold(prom: str, cfg: dict[str, Any]) -> None:
    troubled = build(prom, cfg, "usage-patterns", "7d", A_AT)
    calm = build(prom, cfg, "usage-patterns", "7d", B_AT)
    every_rule = [r.id for r in recommendations.RULES]
    assert troubled["recommendation_rules_fired"] == every_rule
    recs = troubled["optimization_recommendations"]
    assert set(recs) == {
        "performance_optimization",
        "failure_reduction",
        "monitoring_improvements",
    }
    for rule in recommendations.RULES:  # each rule's text is in its category, once
        assert sum(rule.text(troubled, cfg) == t for t in recs[rule.category]) == 1
    assert any("complex deletions" in t for t in recs["performance_optimization"])
    assert calm["data"] is True
    assert calm["recommendation_rules_fired"] == []
    assert calm["optimization_recommendations"] == {
        "performance_optimization": [],
        "failure_reduction": [],
        "monitoring_improvements": [],
    }


# --------------------------------------------------------------------------------------------
# health, trends, compliance


def test_health_targets_against_loaded_data(prom: str, cfg: dict[str, Any]) -> None:
    troubled = build(prom, cfg, "health", "7d", A_AT)
    steps = in_window(A_AT, WEEK)
    req, fails = totals(steps)
    assert troubled["totals"]["requests"] == req
    assert troubled["totals"]["failures"] == fails
    assert troubled["memory_usage_peak"] == pytest.approx(0.85)
    assert troubled["pool_usage_peak"] == pytest.approx(0.2)
    assert troubled["integrity_violations"] == {"now": 0, "peak": 3}
    assert troubled["alerts_fired"] == [
        {"alertname": "DeletionErrorRateHigh", "severity": "warning"}
    ]  # Watchdog is not counted
    met = {t["target"]: t["met"] for t in troubled["targets"]}
    assert met == {
        "success rate": False,
        "average latency": True,
        "p95 latency": False,
        "integrity violations (peak)": False,
        "db pool usage (peak)": True,
        "memory usage (peak)": False,
    }
    calm = build(prom, cfg, "health", "1d", B_AT)
    assert calm["totals"]["requests"] == totals(in_window(B_AT, DAY))[0]
    assert calm["alerts_fired"] == []
    assert all(t["met"] for t in calm["targets"] if t["target"] != "success rate")
    assert calm["targets_missed"] == sum(1 for t in calm["targets"] if t["met"] is False)


def test_trends_compare_with_previous_range(prom: str, cfg: dict[str, Any]) -> None:
    rep = build(prom, cfg, "trends", "7d", B_AT)
    cur, prev = totals(in_window(B_AT, WEEK))[0], totals(in_window(A_AT, WEEK))[0]
    assert rep["current"]["requests"] == cur
    assert rep["previous"]["requests"] == prev
    assert rep["change"]["requests"] == pytest.approx((cur - prev) / prev)
    daily = [totals(in_window(B_AT - k * DAY, DAY)) for k in range(6, -1, -1)]
    assert [(d["requests"], d["failures"]) for d in rep["daily"]] == daily
    for k, d in zip(range(6, -1, -1), rep["daily"], strict=True):
        assert within(
            d["p95_seconds"], quantile_bounds(all_obs(in_window(B_AT - k * DAY, DAY)), 0.95)
        )
    # The first week has nothing before it: the comparison says so instead of inventing zeros.
    first = build(prom, cfg, "trends", "7d", A_AT)
    assert first["previous"] is None
    assert first["change"]["requests"] is None
    # Daily error rates count errors only (the troubled week's refusals are not errors).
    for k, d in zip(range(6, -1, -1), first["daily"], strict=True):
        day = in_window(A_AT - k * DAY, DAY)
        assert d["failures"] == totals(day)[1] and d["errors"] == errors(day)
        assert d["error_rate"] == pytest.approx(errors(day) / totals(day)[0])


def test_compliance_reports_audits_orphans_and_retention(prom: str, cfg: dict[str, Any]) -> None:
    rep = build(prom, cfg, "compliance", "14d", B_AT)
    assert rep["completeness_audit"]["audited"] == sum(s.audited for s in STEPS)
    assert rep["completeness_audit"]["failures"] == 1
    assert rep["orphaned_records"] == {"now": 0, "peak": 3, "tolerance": 0}
    assert rep["audit_trail_gaps"]["peak"] == 1
    assert rep["forbidden_successes"] == {"self_deletion": 1}
    ret = rep["retention"]
    assert ret["configured"] == cfg["retention"]
    assert ret["prometheus_running_retention"] == "400d"
    assert "application" in ret["audit_log_note"]
    calm_month = build(prom, cfg, "compliance", "7d", B_AT)
    assert calm_month["completeness_audit"]["failures"] == 0
    assert calm_month["forbidden_successes"] == {"self_deletion": 0}


def test_compliance_orphans_are_the_configured_categories(
    prom: str, cfg: dict[str, Any], tmp_path: Path
) -> None:
    # The loaded data has 3 foreign_key orphans on day 2 and 1 audit_trail gap on day 4: with
    # integrity.orphanCategories moved to audit_trail, the report counts the gap, not the orphans.
    text = CONFIG_PATH.read_text()
    line = "orphanCategories: ['foreign_key', 'cascade', 'manual_cleanup'],"
    assert line in text
    edited = tmp_path / "config.libsonnet"
    edited.write_text(text.replace(line, "orphanCategories: ['audit_trail', 'consistency'],"))
    moved = load_config(env={}, path=edited)
    assert moved["integrity"]["orphanCategories"] == ["audit_trail", "consistency"]
    assert build(prom, cfg, "compliance", "14d", B_AT)["orphaned_records"]["peak"] == 3
    rep = build(prom, moved, "compliance", "14d", B_AT)
    assert rep["orphaned_records"] == {"now": 0, "peak": 1, "tolerance": 0}
    assert rep["audit_trail_gaps"]["peak"] == 1


# --------------------------------------------------------------------------------------------
# empty ranges and rendering


@pytest.mark.parametrize("kind", report.KINDS)
def test_empty_range_says_no_data(prom: str, cfg: dict[str, Any], kind: str) -> None:
    before = START - 2 * DAY
    rep = build(prom, cfg, kind, "1d", before)
    assert rep["data"] is False
    assert rep["message"] == "no data in range"
    assert "totals" not in rep  # no zeros presented as facts
    md = report_text(prom, kind, "markdown", before, "1d")
    assert "No data in range" in md
    assert "| deletions |" not in md


def report_text(prom: str, kind: str, fmt: str, at: int, window: str = "7d") -> str:
    out = io.StringIO()
    args = parse(
        report, [kind, "--prometheus", prom, "--format", fmt, "--at", str(at), "--range", window]
    )
    args.output = None
    with contextlib.redirect_stdout(out):
        assert report.run(args) == 0
    return out.getvalue()


def test_formats_and_output_file(prom: str, tmp_path: Path) -> None:
    out = tmp_path / "r" / "usage.html"
    args = parse(
        report,
        [
            "usage-patterns",
            "--prometheus",
            prom,
            "--format",
            "html",
            "--output",
            str(out),
            "--at",
            str(A_AT),
        ],
    )
    assert report.run(args) == 0
    page = out.read_text()
    assert page.count("<svg") == 3  # latency percentiles, by hour, failure mix
    assert "Deletion latency percentiles" in page and "Failure mix" in page
    assert "Optimization recommendations" in page
    data = json.loads(report_text(prom, "usage-patterns", "json", A_AT))
    assert data["optimization_recommendations"]["failure_reduction"]
    assert "_plots" not in data
    trends_page = report_text(prom, "trends", "html", A_AT)
    assert trends_page.count("<svg") == 3 and "no failures in range" not in trends_page
    compliance_page = report_text(prom, "compliance", "html", B_AT, "14d")
    assert (
        compliance_page.count("<svg") == 1 and "Integrity violations by category" in compliance_page
    )
    md = report_text(prom, "health", "markdown", A_AT)
    assert "## SLA targets" in md and "MISSED" in md


def test_bad_query_is_a_clear_error(prom: str) -> None:
    with pytest.raises(PrometheusError, match=r"HTTP 400.*sum by"):
        PrometheusClient(prom).query("sum by (")


# --------------------------------------------------------------------------------------------
# watch


def test_watch_once_exit_codes_follow_thresholds(
    prom: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ERROR_RATE_THRESHOLD", "RESPONSE_TIME_THRESHOLD", "CHECK_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    last_hour = in_window(A_AT, 3600)
    req, fails = totals(last_hour)
    errs = errors(last_hour)  # the 2 authorization refusals are failures, not errors
    assert 0.01 < errs / req < 0.05  # the data is built for these thresholds

    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(A_AT)])
    assert code == 1 and snap["status"] == "breached"
    assert snap["deletions_1h"] == req and snap["failures_1h"] == fails
    assert snap["errors_1h"] == errs and snap["error_rate"] == pytest.approx(errs / req)
    assert snap["success_rate"] == pytest.approx(1 - errs / req)
    assert snap["excluded_error_types"] == ["authorization"]
    assert snap["failures_by_class"] == {"authorization": 2, "timeout": 2, "unknown": 1}
    assert snap["timeouts_1h"] == 2 and snap["authorization_failures_1h"] == 2
    assert [b.split(" ")[0] for b in snap["breaches"]] == ["error"]
    assert within(snap["p95_seconds"], quantile_bounds(all_obs(last_hour), 0.95))
    assert snap["memory_ratio"] == pytest.approx(0.4)
    assert snap["pool_ratio"] == pytest.approx(0.2)
    assert snap["alerts_firing"] == []

    # The same data with the spec's environment override: 5 % is not breached.
    monkeypatch.setenv("ERROR_RATE_THRESHOLD", "5")
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(A_AT)])
    assert code == 0 and snap["status"] == "ok"
    assert snap["thresholds"]["error_rate"] == pytest.approx(0.05)
    # A flag beats the environment.
    code, _ = run_watch(
        ["--once", "--prometheus", prom, "--at", str(A_AT), "--error-rate-threshold", "1"]
    )
    assert code == 1

    # Calm hour: ok; RESPONSE_TIME_THRESHOLD below its p95 (0.25-0.5 s) breaches.
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(B_AT)])
    assert code == 0 and snap["failures_1h"] == 0 and snap["breaches"] == []
    monkeypatch.setenv("RESPONSE_TIME_THRESHOLD", "200")
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(B_AT)])
    assert code == 1 and snap["breaches"][0].startswith("p95 latency")


def test_watch_shows_firing_alerts(prom: str) -> None:
    at = START + DAY + 12 * 3600  # the troubled week's day 1, when the alert fired
    _, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(at)])
    assert snap["alerts_firing"] == [{"alertname": "DeletionErrorRateHigh", "severity": "warning"}]
    assert any(b.startswith("memory usage") for b in snap["breaches"])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_terminal_frames_keep_going_when_unreachable(prom: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out, sleeps = _Tty(), []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does; the cli turns it into exit 130

    with pytest.raises(KeyboardInterrupt):
        watch.run(parse(watch, ["--prometheus", dead, "--interval", "7"]), out=out, sleep=sleep)
    text = out.getvalue()
    assert text.count(watch.CLEAR) == 2  # kept refreshing after the failure
    assert "PROMETHEUS UNREACHABLE" in text and sleeps == [7, 7]

    tty = _Tty()
    assert (
        watch.run(parse(watch, ["--once", "--prometheus", prom, "--at", str(A_AT)]), out=tty) == 1
    )
    frame = tty.getvalue()
    assert watch.RED in frame and "BREACHED" in frame and "error rate" in frame


def test_watch_first_hour_on_existing_audit_log(
    prom: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The late job was first scraped 30 min before `at` with 1000 deletions of history: the
    # console shows the 12 of the last half hour, not 1012, and says coverage is partial.
    override = tmp_path / "late.libsonnet"
    real = CONFIG_PATH
    override.write_text(
        f"(import {json.dumps(str(real))}) + "
        f"{{ _config+:: {{ auditExporterSelector: {json.dumps(LATE_JOB)} }} }}\n"
    )
    monkeypatch.setenv("DELETION_MONITOR_CONFIG", str(override))
    at = END - DAY + 1800 + STEP // 2
    _, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(at)])
    assert snap["deletions_1h"] == 2 * (1800 // STEP)
    assert snap["coverage"] == "partial"
    tty = _Tty()
    watch.run(parse(watch, ["--once", "--prometheus", prom, "--at", str(at)]), out=tty)
    assert "monitoring began within the hour" in tty.getvalue()


def test_refusals_of_unauthorised_callers_are_not_errors(
    prom: str, cfg: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour whose only failures are authorization refusals (30 %): the authorization check
    # breaches (security), the error rate does not; with nothing excluded it would.
    for var in ("ERROR_RATE_THRESHOLD", "RESPONSE_TIME_THRESHOLD", "CHECK_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    real = CONFIG_PATH

    def use_config(excluded: str) -> None:
        override = tmp_path / f"refused{len(excluded)}.libsonnet"
        override.write_text(
            f"(import {json.dumps(str(real))}) + {{ _config+:: {{ "
            f"auditExporterSelector: {json.dumps(REFUSED_JOB)}, "
            f"errorRate+: {{ excludedErrorTypes: {excluded} }} }} }}\n"
        )
        monkeypatch.setenv("DELETION_MONITOR_CONFIG", str(override))

    use_config('["authorization"]')
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(B_AT)])
    assert snap["deletions_1h"] == 120 and snap["failures_1h"] == 36
    assert snap["authorization_failures_1h"] == 36 and snap["errors_1h"] == 0
    assert snap["error_rate"] == 0 and snap["success_rate"] == 1
    assert code == 1 and snap["breaches"] == ["authorization failures per hour 36 > 10"]
    assert not any(b.startswith("error rate") for b in snap["breaches"])

    use_config("[]")
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(B_AT)])
    assert snap["errors_1h"] == 36 and snap["error_rate"] == pytest.approx(0.3)
    assert [b.split(" ")[0] for b in snap["breaches"]] == ["error", "authorization"]

    # The reports count the same way: every refusal is a failure, none is an error.
    rep = build(prom, {**cfg, "auditExporterSelector": REFUSED_JOB}, "health", "1d", B_AT)
    assert rep["totals"]["failures"] == 3 * (DAY // STEP)
    assert rep["totals"]["errors"] == 0 and rep["totals"]["success_rate"] == 1
    assert {t["target"]: t["met"] for t in rep["targets"]}["success rate"] is True


# --------------------------------------------------------------------------------------------
# No data is unknown, not ok (issue 12, requirement 7)


@pytest.fixture(scope="module")
def empty_prom(tmp_path_factory: pytest.TempPathFactory, cfg: dict[str, Any]) -> Iterator[str]:
    """A real Prometheus with no deletion data: it scrapes an audit exporter that never
    answers (a dead port), so `up{job="deletion-audit-exporter"}` is 0 and nothing else exists."""
    binary = require_binary("prometheus")
    work = tmp_path_factory.mktemp("empty-prom")
    job = cfg["auditExporterSelector"].split('"')[1]
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        f"scrape_configs:\n  - job_name: {job}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{free_port()}']}}]\n"
    )
    port = free_port()
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        work / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60)
        client = PrometheusClient(url)
        deadline = time.monotonic() + 30
        while not client.query(f"up{{{cfg['auditExporterSelector']}}} == 0"):
            assert time.monotonic() < deadline, "the dead target was never scraped"
            time.sleep(0.5)
        yield url
    finally:
        proc.stop()


def test_watch_without_any_data_is_unknown_and_names_the_missing_series(
    empty_prom: str, cfg: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, [snap] = run_watch(["--once", "--prometheus", empty_prom])
    assert code == 2 and snap["status"] == "unknown"
    assert snap["breaches"] == []
    missing = [m["series"] for m in snap["missing"]]
    audit = cfg["auditExporterSelector"]
    assert missing == [s for s, _ in watch.required_series(cfg)]  # every one, in order
    assert f"deletion_requests_total{{{audit}}}" in missing
    assert "deletion_integrity_violations" in " ".join(missing)
    assert snap["deletions_1h"] is None and snap["error_rate"] is None
    err = capsys.readouterr().err
    assert f"no data for deletion_requests_total{{{audit}}}" in err

    # The terminal frame says UNKNOWN and lists the series, never OK.
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    assert watch.run(parse(watch, ["--once", "--prometheus", empty_prom]), out=tty) == 2
    text = tty.getvalue()
    assert "UNKNOWN" in text and "OK" not in text.replace("UNKNOWN", "")
    assert f"no data: deletion_requests_total{{{audit}}}" in text


def test_watch_with_a_wrong_job_label_is_unknown_and_with_the_right_one_ok(
    prom: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ERROR_RATE_THRESHOLD", "RESPONSE_TIME_THRESHOLD", "CHECK_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    # The calm hour with the real selectors: every series present, ok, exit 0.
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(B_AT)])
    assert code == 0 and snap["status"] == "ok" and snap["missing"] == []

    # The same hour with a typo in the audit job: its two series are missing, exit 2; the figures
    # from the other exporters are still measured.
    real = CONFIG_PATH
    override = tmp_path / "wrong-job.libsonnet"
    wrong = 'job="deletion-audit-exporte"'
    override.write_text(
        f"(import {json.dumps(str(real))}) + {{ _config+:: {{ "
        f"auditExporterSelector: {json.dumps(wrong)} }} }}\n"
    )
    monkeypatch.setenv("DELETION_MONITOR_CONFIG", str(override))
    code, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(B_AT)])
    assert code == 2 and snap["status"] == "unknown"
    assert [m["series"] for m in snap["missing"]] == [
        f"deletion_requests_total{{{wrong}}}",
        f"deletion_duration_seconds_bucket{{{wrong}}}",
    ]
    assert snap["deletions_1h"] is None
    assert snap["memory_ratio"] == pytest.approx(0.4)  # the app's series are there
