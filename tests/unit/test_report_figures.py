"""The report's recommendation rules on synthetic figures, and the docs that list them.

Each rule fires exactly past its boundary on a calm set of figures changed in one place, and only
with its minimum evidence; coverage, per-period averages, quantile buckets and the SVG charts on
made-up values. The figures of real data served by a real Prometheus are
tests/integration/test_watch_report.py.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from deletion_monitor.common.config import load_config
from deletion_monitor.reports import recommendations, render
from deletion_monitor.reports.figures import (
    LIMITS,
    Coverage,
    per_period,
    quantile_bucket,
    quantile_text,
)

USER_TYPES = ("CLIENT", "VENDOR", "DRIVER")  # the user types the calm figures carry


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return load_config(env={})


def _calm_figures() -> dict[str, Any]:
    """Figures on which no rule's condition holds, each rule's evidence at its minimum."""
    ut = [
        {"user_type": t, "requests": 100, "failures": 0, "error_rate": 0.0, "p95_seconds": 0.4}
        for t in USER_TYPES
    ]
    return {
        "data": True,
        "totals": {"requests": 300, "failures": 0, "error_rate": 0.0},
        "latency": {"p95_seconds": 0.4, "average_seconds": 0.3},
        "complex_deletions": {"count": 20, "p95_seconds": 1.0},
        "peak_hour": "10",
        "peak_hour_rate": 10.0,
        "mean_hourly_requests": 10.0,
        "peak_hour_factor": 1.0,
        "hourly_pattern_days": 3.0,
        "capacity_projection": {
            "growth_factor_30d": 1.0,
            "projected_daily_in_30d": 40.0,
            "days_used": 3,
        },
        "failure_classes": [],
        "user_types": ut,
    }


def _set(path: str, value: Any) -> Any:
    def apply(f: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = f
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value

    return apply


_FAILS = [
    {"error_type": "timeout", "failures": 3, "share": 0.25},
    {"error_type": "authorization", "failures": 3, "share": 0.25},
    {"error_type": "business_logic", "failures": 6, "share": 0.5},
]


# Each case: a change to calm figures, the rules that must fire then (and only those).
# Values sit exactly at or just beyond each boundary, so an off-by-one comparison fails.
RULE_CASES = [
    ("complex p95 at target", _set("complex_deletions.p95_seconds", 5.0), []),
    ("complex p95 above", _set("complex_deletions.p95_seconds", 5.01), ["complex_deletions_slow"]),
    ("p95 at target", _set("latency.p95_seconds", 5.0), []),
    ("p95 above", _set("latency.p95_seconds", 5.01), ["latency_above_target"]),
    ("average above", _set("latency.average_seconds", 2.01), ["latency_above_target"]),
    ("peak 1.99x", _set("peak_hour_factor", 1.99), []),
    ("peak 2x", _set("peak_hour_factor", 2.0), ["peak_hour_alerting"]),
    ("peak 3x", _set("peak_hour_factor", 3.0), ["peak_hour_batching", "peak_hour_alerting"]),
    ("growth 1.49", _set("capacity_projection.growth_factor_30d", 1.49), []),
    ("growth 1.5", _set("capacity_projection.growth_factor_30d", 1.5), ["capacity_growth"]),
    ("shares 25 %", _set("failure_classes", _FAILS), ["timeouts_share", "authorization_share"]),
    ("share 24 %", _set("failure_classes", [{**_FAILS[0], "share": 0.24}]), []),
    ("error rate 1 %", _set("totals.error_rate", 0.01), []),
    ("error rate 1.01 %", _set("totals.error_rate", 0.0101), ["error_rate_above_slo"]),
    ("type 1.01 %", _set("user_types.0.error_rate", 0.0101), ["user_type_error_rate"]),
    ("type too small", lambda f: f["user_types"][0].update(requests=19, error_rate=0.5), []),
    (
        "unknown failure",
        _set("failure_classes", [{"error_type": "unknown", "failures": 1, "share": 1.0}]),
        ["unknown_failures"],
    ),
    ("spread 1.99x", _set("user_types.0.p95_seconds", 0.796), []),
    ("spread 2x", _set("user_types.0.p95_seconds", 0.8), ["user_type_latency_spread"]),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_each_rule_fires_only_past_its_boundary(
    cfg: dict[str, Any], case: str, mutate: Any, expected: list[str]
) -> None:
    figures = _calm_figures()
    assert recommendations.recommend(figures, cfg)[1] == []
    mutate(figures)
    recs, fired = recommendations.recommend(figures, cfg)
    assert sorted(fired) == sorted(expected), case
    assert sum(len(v) for v in recs.values()) == len(expected)


def _both(*changes: Any) -> Any:
    def apply(f: dict[str, Any]) -> None:
        for change in changes:
            change(f)

    return apply


# Each case: a change that makes one rule's condition hold, and the evidence just below that
# rule's minimum: the rule is withheld (not emitted), and emitted once the evidence is met.
_UNKNOWN = [{"error_type": "unknown", "failures": 1, "share": 1.0}]
_SHARES_9 = [
    {"error_type": "timeout", "failures": 3, "share": 1 / 3},
    {"error_type": "authorization", "failures": 3, "share": 1 / 3},
    {"error_type": "business_logic", "failures": 3, "share": 1 / 3},
]
EVIDENCE_CASES = [
    (
        "complex_deletions_slow",
        _set("complex_deletions.p95_seconds", 9.0),
        _set("complex_deletions.count", 19),
    ),
    ("latency_above_target", _set("latency.p95_seconds", 9.0), _set("totals.requests", 99)),
    ("peak_hour_batching", _set("peak_hour_factor", 3.5), _set("hourly_pattern_days", 2.99)),
    ("peak_hour_alerting", _set("peak_hour_factor", 2.5), _set("hourly_pattern_days", 2.99)),
    (
        "capacity_growth",
        _set("capacity_projection.growth_factor_30d", 2.0),
        _set("capacity_projection.days_used", 2),
    ),
    ("timeouts_share", _set("failure_classes", _FAILS), _set("failure_classes", _SHARES_9)),
    ("error_rate_above_slo", _set("totals.error_rate", 0.05), _set("totals.requests", 99)),
]


@pytest.mark.parametrize(
    ("rule_id", "condition", "too_little"), EVIDENCE_CASES, ids=[c[0] for c in EVIDENCE_CASES]
)
def test_each_rule_needs_its_minimum_evidence(
    cfg: dict[str, Any], rule_id: str, condition: Any, too_little: Any
) -> None:
    figures = _calm_figures()
    condition(figures)
    rows = {r["rule"]: r for r in recommendations.evaluate(figures, cfg)}
    assert rows[rule_id]["status"] == "fired"
    recs, fired = recommendations.recommend(figures, cfg)
    emitted = [t for texts in recs.values() for t in texts if "(evidence: " in t]
    assert rule_id in fired and len(emitted) == len(fired)
    too_little(figures)
    rows = {r["rule"]: r for r in recommendations.evaluate(figures, cfg)}
    if rule_id in rows:  # its condition may still hold on the thinner data: then withheld
        assert rows[rule_id]["status"] == "withheld" and rows[rule_id]["text"] is None
        assert "minimum" in rows[rule_id]["evidence"]
    assert rule_id not in recommendations.recommend(figures, cfg)[1]


def test_fired_text_ends_with_its_evidence(cfg: dict[str, Any]) -> None:
    figures = _calm_figures()
    figures["failure_classes"] = _UNKNOWN
    recs, fired = recommendations.recommend(figures, cfg)
    assert fired == ["unknown_failures"]
    assert recs["monitoring_improvements"] == [
        "Classify the 1 failures of unknown type in the application's error mapping so they "
        "can be alerted on (evidence: 1 failures of type unknown)"
    ]


def test_docs_list_every_rule_and_limit() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reports.md").read_text()
    for rule in recommendations.RULES:
        row = f"| `{rule.id}` | {rule.category} | {rule.condition} | {rule.minimum} |"
        assert row in doc, rule.id
    for name, value in LIMITS.items():
        assert f"| `{name}` | {value:g} |" in doc or f"| `{name}` | {value} |" in doc, name
    assert "0 9 * * 1" in doc


# --------------------------------------------------------------------------------------------
# Data sufficiency, quantile buckets and the charts, on figures made up here (issue 17)


def test_coverage_is_the_span_the_counts_stand_on() -> None:
    end = 1_800_000_000.0  # an hour boundary
    week = 7 * 86400
    brief = Coverage(end - week, end, end - 360, end)
    assert brief.covered_seconds == 360 and brief.ratio == pytest.approx(360 / week)
    assert brief.text().endswith(
        "data for 6 min of 7 days (0.06 %), from 2027-01-15 07:54 to 2027-01-15 08:00"
    )
    hours = brief.hour_of_day_seconds()
    assert hours["07"] == 360 and sum(hours.values()) == 360
    # 2027-01-15 is a Friday; a span across midnight splits between its two weekdays.
    days = brief.weekday_seconds()
    assert days["fri"] == 360 and sum(days.values()) == 360
    midnight = 1_799_971_200.0  # 2027-01-15 00:00 UTC
    across = Coverage(midnight - 86400, midnight + 600, midnight - 900, midnight + 600)
    assert {d: s for d, s in across.weekday_seconds().items() if s} == {"thu": 900, "fri": 600}
    assert Coverage(0.0, 86400.0, 0.0, 86400.0).weekday_seconds()["thu"] == 86400  # the epoch
    # The sample the range's counts start from may precede the range; coverage is capped.
    full = Coverage(end - week, end, end - week - 150, end - 150)
    assert full.covered_seconds == week and full.ratio == 1
    assert (
        full.text()
        == "covers 2027-01-08 08:00 – 2027-01-15 08:00 UTC; data for 7 days of 7 days (100.00 %)"
    )
    assert full.within(end - 86400, end) == 86400 - 150
    assert Coverage(end - week, end, None, None).text().endswith("no data in this range")


def test_averages_need_a_covered_day() -> None:
    end = 1_800_000_000.0
    brief = per_period(676, Coverage(end - 7 * 86400, end, end - 360, end))
    assert brief["per_day"] is None and brief["per_month"] is None
    assert brief["basis"] == "n/a: needs at least 1 day of data, have 6 min"
    two_days = per_period(676, Coverage(end - 7 * 86400, end, end - 2 * 86400, end))
    assert two_days["per_day"] == 338 and two_days["per_week"] == 338 * 7
    assert two_days["per_month"] == 338 * 30


def test_quantile_bucket_says_what_the_histogram_knows() -> None:
    # 676 deletions of exactly 6.5 s: all in the 5-7.5 s bucket; histogram_quantile gives 7.375.
    cumulative = {2.5: 0, 5.0: 0, 7.5: 676, 10.0: 676, math.inf: 676}
    assert quantile_bucket(cumulative, 0.95) == {
        "lower": 5.0,
        "upper": 7.5,
        "in_bucket": 676,
        "observations": 676,
    }
    assert quantile_text(7.375, quantile_bucket(cumulative, 0.95), "p95") == (
        "p95 7.38 s (interpolated within the 5–7.5 s histogram bucket; 676 of 676 deletions lie "
        "in it)"
    )
    spread = {1.0: 90, 2.0: 94, 5.0: 99, math.inf: 100}
    assert quantile_bucket(spread, 0.95)["lower"] == 2.0
    assert quantile_bucket(spread, 0.99)["upper"] == 5.0
    assert quantile_bucket(spread, 0.999)["upper"] == math.inf
    assert quantile_bucket({1.0: 0, math.inf: 0}, 0.95) is None


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0, 7.375, [0, 2, 4, 6, 8]),
        (0, 0.83, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 676, [0, 200, 400, 600, 800]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_ticks_are_1_2_5_steps(lo: float, hi: float, ticks: list[float]) -> None:
    assert render.nice_ticks(lo, hi) == pytest.approx(ticks)


def test_time_ticks_fall_on_round_hours_and_days() -> None:
    day = 86400
    t0 = 1_800_000_000 + 1234  # not round
    ticks, fmt = render.time_ticks(t0, t0 + 7 * day)
    assert all(t % day == 0 for t in ticks) and fmt == "%m-%d" and len(ticks) == 7
    ticks, fmt = render.time_ticks(t0, t0 + 6 * 3600)
    assert all(t % 3600 == 0 for t in ticks) and 3 <= len(ticks) <= 7


def test_line_chart_has_threshold_units_padding_and_a_visible_lone_point() -> None:
    t = 1_800_000_000.0
    series = [
        {"name": "p95", "points": [(t + 600 * i, 0.5 + 0.1 * i) for i in range(10)]},
        {"name": "p99", "points": [(t, 7.375)]},
    ]
    svg = render.svg_line_chart(
        "latency",
        series,
        [{"value": 5, "label": "p95 target (latency.p95Target)"}],
        "deletion time",
        "s",
    )
    assert '<line class="threshold" data-value="5"' in svg
    assert "p95 target (latency.p95Target): 5 s" in svg
    assert "deletion time (s)</text>" in svg and "time (UTC)</text>" in svg
    frame = re.search(r'<rect class="frame" x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', svg)
    assert frame
    left, top, width, height = map(int, frame.groups())
    coords = [tuple(map(float, p.split(","))) for p in re.findall(r"[\d.]+,[\d.]+", svg)]
    assert coords and all(left < x < left + width and top < y < top + height for x, y in coords)
    assert svg.count('<circle class="point"') == 1  # the lone p99 point, drawn as a dot
    assert "p99: one measurement (7.375 at" in svg


def test_bar_chart_shows_hours_without_data_as_na() -> None:
    svg = render.svg_bar_chart(
        "by hour", [("18", None), ("19", 676.0), ("20", None)], y_label="deletions"
    )
    assert svg.count('<rect class="bar"') == 1 and svg.count(">n/a</text>") == 2


def test_subqueries_stay_within_the_long_term_store_point_limit() -> None:
    """VictoriaMetrics refuses a subquery of more than 30 000 points per series: the 30-day
    compliance range at 1-minute steps (43 200) was an HTTP 422 from the store."""
    from deletion_monitor.common.durations import parse_duration
    from deletion_monitor.reports.figures import MAX_SUBQUERY_POINTS, subquery_step

    assert subquery_step("1h") == 60 and subquery_step("7d") == 120  # 10 080 min > 10 000
    assert subquery_step("6d") == 60 and subquery_step("1h", 300) == 300
    for span in ("1h", "1d", "6d", "7d", "30d", "90d", "365d", "3650d"):
        for floor in (60, 300):
            step = subquery_step(span, floor)
            assert step % 60 == 0 and step >= floor
            assert parse_duration(span) / step <= MAX_SUBQUERY_POINTS < 30_000
