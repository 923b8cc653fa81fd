"""`deletion-monitor watch` and `report` against a real Prometheus holding known data.

Two weeks of exporter series with every increment known (tests/support/report_data.py),
backfilled with `promtool tsdb create-blocks-from openmetrics` and served by a real `prometheus`
(module-scoped). Week A ("troubled", ends at END - 7d) is built so that every recommendation
rule's condition holds; week B ("calm", ends at END) so that none does; BRIEF_JOB has six minutes
of data in which every deletion took 6.5 s. Expected figures are recomputed from the generator's
own increments, never copied from the code under test.

The recommendation rules' boundaries on synthetic figures, the docs table and the error paths that
need no Prometheus (bad arguments, unreachable or silent server) are
tests/unit/test_report_figures.py and tests/unit/test_report_watch_offline.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.report_data import (
    A_AT,
    B_AT,
    BRIEF_HOUR,
    BRIEF_INTEGRITY_JOB,
    BRIEF_JOB,
    BRIEF_ORPHANS,
    BRIEF_SECONDS,
    BRIEF_START,
    BRIEF_TOTAL,
    BRIEF_WEEKDAY,
    DAY,
    END,
    FRESH_JOB,
    LATE_JOB,
    PEAK_HOUR,
    REFUSED_JOB,
    RESET_JOB,
    START,
    STEP,
    STEPS,
    WEEK,
    all_obs,
    errors,
    in_window,
    quantile_bounds,
    serve_backfill,
    totals,
    within,
)
from support.reports import parse, run_watch

from deletion_monitor.common.config import CONFIG_PATH, load_config
from deletion_monitor.common.promapi import PrometheusClient, PrometheusError
from deletion_monitor.reports import figures, recommendations, report, watch
from deletion_monitor.reports import render as report_render
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http

# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return load_config(env={})


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, cfg: dict[str, Any]) -> Iterator[str]:
    with serve_backfill(tmp_path_factory.mktemp("prom"), cfg) as url:
        yield url


def build(prom: str, cfg: dict[str, Any], kind: str, window: str, at: int) -> dict[str, Any]:
    return report.build_report(PrometheusClient(prom), cfg, kind, window, at)


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
        prefix = rule.text(troubled, cfg) + " (evidence: "
        assert sum(t.startswith(prefix) for t in recs[rule.category]) == 1, rule.id
    # Every one cites its evidence, and the evidence met its minimum: nothing was withheld.
    assert troubled["recommendation_rules_withheld"] == []
    assert "complex deletions 168 (minimum 20)" in " ".join(recs["performance_optimization"])
    # The summary repeats the first three, each with the evidence behind it.
    top = troubled["summary"]["top_recommendations"]
    assert [r["rule"] for r in top] == every_rule[: report.TOP_RECOMMENDATIONS]
    assert all(r["evidence"] and r["text"] for r in top)
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


def test_formats_and_output_file(prom: str, tmp_path: Path, cfg: dict[str, Any]) -> None:
    out = tmp_path / "r" / "usage.html"
    argv = ["usage-patterns", "--prometheus", prom, "--format", "html", "--output", str(out)]
    args = parse(report, [*argv, "--at", str(A_AT), "--mkdir"])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert report.run(args) == 0
    # Written where asked, and it says so (one line naming the file).
    assert err.getvalue().strip() == (
        f"deletion-monitor report: wrote the usage-patterns report (html, "
        f"{len(out.read_bytes())} bytes) to {out}"
    )
    page = out.read_text()
    assert page.count("<svg") == 3  # latency percentiles, by hour, failure mix
    assert "Deletion time percentiles" in page and "Failure mix" in page
    # A manager reads top-down: coverage, summary (with the recommendations), charts, details.
    order = [page.index(x) for x in ("Covers ", "<h2>Summary</h2>", "<h2>Charts</h2>")]
    order += [page.index("<h2>Details</h2>"), page.index("Optimization recommendations")]
    assert order == sorted(order)
    assert page.index("Recommendation 1") < page.index("<h2>Charts</h2>")
    # The latency chart carries the config's p95 target as a line, and units on its axes.
    p95 = cfg["latency"]["p95Target"]
    assert re.search(rf'<line class="threshold" data-value="{p95:g}"', page)
    assert "deletion time (s)</text>" in page and "time (UTC)</text>" in page
    assert "deletions</text>" in page and "hour of day (UTC)" in page
    data = json.loads(report_text(prom, "usage-patterns", "json", A_AT))
    assert data["optimization_recommendations"]["failure_reduction"]
    assert "_plots" not in data
    assert list(data)[:8] == [
        "report",
        "range",
        "start",
        "end",
        "prometheus",
        "data",
        "data_coverage",
        "summary",
    ]
    trends_page = report_text(prom, "trends", "html", B_AT)
    # Deletions, error rate and p95 per day, each with the previous week drawn over it.
    assert trends_page.count("<svg") == 3 and trends_page.count('data-name="previous 1w"') == 3
    assert trends_page.count('stroke-dasharray="5 3" points=') == 3
    warning = cfg["errorRate"]["warning"] * 100
    assert f'<line class="threshold" data-value="{warning:g}"' in trends_page
    assert f'<line class="threshold" data-value="{p95:g}"' in trends_page
    assert "error rate (%)</text>" in trends_page
    compliance_page = report_text(prom, "compliance", "html", B_AT, "14d")
    assert (
        compliance_page.count("<svg") == 1 and "Integrity violations by category" in compliance_page
    )
    tolerance = cfg["integrity"]["orphanTolerance"]
    assert f'<line class="threshold" data-value="{tolerance:g}"' in compliance_page
    md = report_text(prom, "health", "markdown", A_AT)
    assert "### SLA targets" in md and "MISSED" in md
    assert md.index("## Summary") < md.index("## Details") < md.index("### SLA targets")
    assert "- **Status:** ATTENTION" in md and "p95 latency missed its target" in md


def brief_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**cfg, "auditExporterSelector": BRIEF_JOB}


def test_six_minutes_of_data_are_not_a_week(prom: str, cfg: dict[str, Any]) -> None:
    # Issue 17: 676 deletions in 6 minutes, every one 6.5 s. No per-day average, no peak hour
    # against 23 empty hours, no recommendation without its evidence; the report says how
    # little it stands on and why p95 is above every measured duration.
    # Evaluated as a new user would: half a minute after the sixth minute, exporter still up.
    at = BRIEF_START + 360 + 30
    rep = build(prom, brief_cfg(cfg), "usage-patterns", "7d", at)
    assert rep["totals"]["requests"] == BRIEF_TOTAL
    cov = rep["data_coverage"]
    assert cov["covered_seconds"] == 360 and cov["ratio"] == pytest.approx(360 / WEEK)
    assert cov["first_sample"] == figures.iso_time(BRIEF_START)
    assert "data for 6 min of 7 days (0.06 %)" in cov["text"]
    assert rep["per_period"]["per_day"] is None and rep["per_period"]["per_month"] is None
    assert "needs at least 1 day of data, have 6 min" in rep["per_period"]["basis"]
    # Hours of day without data are n/a, not 0: there is no peak against them.
    assert rep["by_hour"] == {h: BRIEF_TOTAL if h == BRIEF_HOUR else None for h in figures.HOURS}
    assert rep["peak_hour"] is None and rep["peak_hour_factor"] is None
    assert rep["hourly_pattern_days"] == 0
    # Weekdays too: the one with data has all 676, the six others are n/a, not 0.
    assert rep["by_weekday"] == {
        d: BRIEF_TOTAL if d == BRIEF_WEEKDAY else None for d in figures.WEEKDAYS
    }
    assert rep["peak_weekday"] is None
    fired = rep["recommendation_rules_fired"]
    assert "peak_hour_batching" not in fired and "peak_hour_alerting" not in fired
    assert "capacity_growth" not in fired and rep["capacity_projection"]["days_used"] == 0
    # Days without data are n/a; the one day with data has all 676.
    assert [d["requests"] for d in rep["daily"]].count(None) == 6
    assert BRIEF_TOTAL in [d["requests"] for d in rep["daily"]]
    # The one rule with its evidence met: 676 deletions, p95 above the target.
    assert fired == ["latency_above_target"]
    [text] = rep["optimization_recommendations"]["performance_optimization"]
    assert "evidence: deletions 676 (minimum 100); p95 interpolated within the 5–7.5 s" in text
    lat = rep["latency"]
    assert lat["average_seconds"] == pytest.approx(BRIEF_SECONDS)
    assert lat["p95_seconds"] == pytest.approx(5 + 2.5 * 0.95)
    assert lat["p95_bucket"] == {"lower": 5, "upper": 7.5, "in_bucket": 676, "observations": 676}
    summary = rep["summary"]
    assert summary["status"] == "insufficient data"
    assert "covers only 0.06 % of the range" in summary["reasons"][0]
    md = report_render.render(rep, "markdown")
    assert md.index("Covers ") < md.index("## Summary") < md.index("## Details")
    assert "| per day | n/a |" in md
    assert "p95 7.38 s (interpolated within the 5–7.5 s histogram bucket; 676 of 676" in md
    assert "all 676 deletions lie in the 5–7.5 s bucket" in md
    assert "the exact average is 6.50 s" in md
    # The latency chart spans the six minutes the data covers, a point a minute, instead of
    # one dot per series at the 7-day range's 210-minute step.
    page = report.build_report(
        PrometheusClient(prom), brief_cfg(cfg), "usage-patterns", "7d", at, with_plots=True
    )
    [chart] = [c for c in page["_plots"] if c["title"].startswith("Deletion time percentiles")]
    assert chart["title"] == "Deletion time percentiles (each point over 5m)"
    p95 = next(s["points"] for s in chart["series"] if s["name"] == "p95")
    assert len(p95) >= 5, p95
    assert [t for t, _ in p95] == list(range(int(p95[0][0]), int(p95[-1][0]) + 1, 60))
    assert BRIEF_START < p95[0][0] and p95[-1][0] <= at
    assert [float(v) for _, v in p95] == pytest.approx([7.375] * len(p95))
    html_page = report_render.render(page, "html")
    assert "Too little data for a line" not in html_page


def test_compliance_chart_spans_the_minutes_its_data_covers(prom: str, cfg: dict[str, Any]) -> None:
    # Six minutes of integrity data in a 30-day compliance report: the chart draws those minutes,
    # a point a minute, each the peak over the 5 minutes before it. At the 30-day range's step
    # (15 h) it was one dot.
    at = BRIEF_START + 360 + 30
    brief = {**brief_cfg(cfg), "integrityExporterSelector": BRIEF_INTEGRITY_JOB}
    page = report.build_report(
        PrometheusClient(prom), brief, "compliance", "30d", at, with_plots=True
    )
    [chart] = [c for c in page["_plots"] if c["title"].startswith("Integrity violations")]
    assert chart["title"] == "Integrity violations by category (peak over each 5m)"
    [series] = chart["series"]
    assert series["name"] == "foreign_key"
    times = [int(t) for t, _ in series["points"]]
    assert times == list(range(BRIEF_START + 60, BRIEF_START + 361, 60))
    # The peak of the samples in the 5 minutes up to each point (one sample a minute).
    peaks = [max(BRIEF_ORPHANS[max(0, k - 5) : k + 1]) for k in range(1, 7)]
    assert [float(v) for _, v in series["points"]] == peaks
    html_page = report_render.render(page, "html")
    assert "Too little data for a line" not in html_page


def test_watch_explains_an_interpolated_p95(
    prom: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ERROR_RATE_THRESHOLD", "RESPONSE_TIME_THRESHOLD", "CHECK_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    override = tmp_path / "brief.libsonnet"
    override.write_text(
        f"(import {json.dumps(str(CONFIG_PATH))}) + "
        f"{{ _config+:: {{ auditExporterSelector: {json.dumps(BRIEF_JOB)} }} }}\n"
    )
    monkeypatch.setenv("DELETION_MONITOR_CONFIG", str(override))
    at = BRIEF_START + 360 + 30
    _, [snap] = run_watch(["--once", "--prometheus", prom, "--at", str(at)])
    assert snap["deletions_1h"] == BRIEF_TOTAL
    assert snap["average_seconds"] == pytest.approx(BRIEF_SECONDS)
    assert snap["p95_seconds"] == pytest.approx(7.375)
    assert snap["p95_bucket"] == [5, 7.5, 676, 676]
    tty = _Tty()
    watch.run(parse(watch, ["--once", "--prometheus", prom, "--at", str(at)]), out=tty)
    text = tty.getvalue()
    assert "p95 7375 ms: interpolated within the 5–7.5 s histogram bucket (676 of 676" in text
    assert "the exact average is 6500 ms" in text


def test_trends_compare_only_ranges_with_enough_data(prom: str, cfg: dict[str, Any]) -> None:
    # The late job's previous 18 h hold 6 h of data: no change is computed against them.
    rep = build(prom, {**cfg, "auditExporterSelector": LATE_JOB}, "trends", "18h", B_AT)
    assert rep["previous"] is not None
    assert rep["previous_coverage"]["covered_seconds"] == pytest.approx(6 * 3600, abs=STEP)
    assert rep["change"]["requests"] is None and rep["change"]["error_rate"] is None
    assert rep["change"]["basis"].startswith("n/a: each range needs 50 % of it covered")


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
