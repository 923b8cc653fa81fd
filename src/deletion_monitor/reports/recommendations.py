"""The usage-pattern report's optimization_recommendations: RULES and recommend().

Each rule is a condition over measured figures, a minimum evidence and a text; docs/reports.md
lists the same table. A recommendation is emitted only when its rule's condition holds on the
data in the report AND the data behind it meets the rule's minimum evidence; its text ends with
that evidence. A rule whose condition holds on too little data is listed as withheld, never
emitted (6 minutes of data are no reason to batch deletions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deletion_monitor.reports.figures import LIMITS, excluded_error_types


@dataclass(frozen=True)
class Rule:
    """One documented recommendation: emitted exactly when `applies(figures, cfg)` holds."""

    id: str
    category: str  # performance_optimization | failure_reduction | monitoring_improvements
    condition: str  # the condition in words, as docs/reports.md shows it
    applies: Callable[[dict[str, Any], dict[str, Any]], bool]
    text: Callable[[dict[str, Any], dict[str, Any]], str]
    minimum: str  # the minimum evidence in words, as docs/reports.md shows it
    # (met, the evidence in words): what the figures behind the condition stand on.
    evidence: Callable[[dict[str, Any], dict[str, Any]], tuple[bool, str]]


def _share(f: dict[str, Any], error_type: str) -> float:
    for row in f.get("failure_classes", []):
        if row["error_type"] == error_type:
            return row["share"] or 0.0
    return 0.0


def _top_error_class(f: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The most common failure class that counts as an error (excluded classes skipped)."""
    excluded = excluded_error_types(cfg)
    for row in f.get("failure_classes", []):
        if row["error_type"] not in excluded:
            return row["error_type"]
    return "n/a"


def _class_count(f: dict[str, Any], error_type: str) -> int:
    for row in f.get("failure_classes", []):
        if row["error_type"] == error_type:
            return row["failures"]
    return 0


def _peak_factor(f: dict[str, Any]) -> float:
    """Deletions per hour in the peak hour of day over the mean per covered hour (hours of day
    without data are left out, not counted as 0)."""
    return f.get("peak_hour_factor") or 0.0


def _requests(f: dict[str, Any]) -> int:
    return (f.get("totals") or {}).get("requests") or 0


def _failures(f: dict[str, Any]) -> int:
    return sum(r["failures"] for r in f.get("failure_classes", []))


def _at_least(have: float, need: float, what: str, unit: str = "") -> tuple[bool, str]:
    return have >= need, f"{what} {have:g}{unit} (minimum {need:g}{unit})"


def _hourly_evidence(f: dict[str, Any], c: dict[str, Any]) -> tuple[bool, str]:
    days = f.get("hourly_pattern_days") or 0.0
    need = LIMITS["min_days_for_hourly_pattern"]
    rate, mean = f.get("peak_hour_rate"), f.get("mean_hourly_requests")
    detail = (
        f"; {rate:.1f} deletions per hour at {f['peak_hour']}:00 against {mean:.1f} in the mean "
        "covered hour"
        if rate is not None and mean
        else ""
    )
    return days >= need, (f"every hour of day covered {days:.1f} times (minimum {need:g}){detail}")


def _bucket_note(f: dict[str, Any]) -> str:
    b = (f.get("latency") or {}).get("p95_bucket")
    if not b:
        return ""
    return f"; p95 interpolated within the {b['lower']:g}–{b['upper']:g} s bucket"


def _typed(f: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r for r in f.get("user_types", []) if r["requests"] >= LIMITS["min_requests_per_user_type"]
    ]


def _p95_spread(f: dict[str, Any]) -> tuple[float, dict[str, Any], dict[str, Any]] | None:
    rows = [r for r in _typed(f) if r["p95_seconds"]]
    if len(rows) < 2:
        return None
    slow = max(rows, key=lambda r: r["p95_seconds"])
    fast = min(rows, key=lambda r: r["p95_seconds"])
    return slow["p95_seconds"] / fast["p95_seconds"], slow, fast


def _p95_spread_text(f: dict[str, Any]) -> str:
    """The latency-spread recommendation, emitted only when its rule applies (a spread exists)."""
    spread = _p95_spread(f)
    if spread is None:
        raise ValueError("user_type_latency_spread: fewer than two user types with a p95")
    _, slow, fast = spread
    return (
        "Add correlation analysis between user types and performance: "
        f"{slow['user_type']} p95 {slow['p95_seconds']:.2f} s vs "
        f"{fast['user_type']} {fast['p95_seconds']:.2f} s"
    )


def _spread_evidence(f: dict[str, Any]) -> tuple[bool, str]:
    spread = _p95_spread(f)
    if spread is None:
        return False, "fewer than two user types with enough deletions"
    _, slow, fast = spread
    return True, (
        f"{slow['user_type']} over {slow['requests']} deletions, {fast['user_type']} over "
        f"{fast['requests']} (minimum {LIMITS['min_requests_per_user_type']:g} a type)"
    )


def _latency_evidence(f: dict[str, Any], c: dict[str, Any]) -> tuple[bool, str]:
    met, text = _at_least(_requests(f), LIMITS["min_requests_for_rates"], "deletions")
    return met, text + _bucket_note(f)


def _type_error_evidence(f: dict[str, Any], c: dict[str, Any]) -> tuple[bool, str]:
    rows = "; ".join(
        f"{r['user_type']}: {r.get('errors', r['failures'])} errors of {r['requests']} deletions"
        for r in _bad_types(f, c)
    )
    return True, f"{rows} (minimum {LIMITS['min_requests_per_user_type']:g} deletions a type)"


def _bad_types(f: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in _typed(f)
        if r["error_rate"] is not None and r["error_rate"] > cfg["errorRate"]["warning"]
    ]


def _complex_p95(f: dict[str, Any]) -> float | None:
    return (f.get("complex_deletions") or {}).get("p95_seconds")


def _growth(f: dict[str, Any]) -> float | None:
    return (f.get("capacity_projection") or {}).get("growth_factor_30d")


RULES: tuple[Rule, ...] = (
    Rule(
        "complex_deletions_slow",
        "performance_optimization",
        "p95 of complex deletions (deletion_large_cascade_duration_seconds) > latency.p95Target",
        lambda f, c: (_complex_p95(f) or 0) > c["latency"]["p95Target"],
        lambda f, c: (
            "Consider database query optimization for complex deletions: p95 of deletions "
            f"removing many rows is {_complex_p95(f):.2f} s "
            f"(target < {c['latency']['p95Target']:g} s)"
        ),
        ">= min_complex_deletions complex deletions in range",
        lambda f, c: _at_least(
            (f.get("complex_deletions") or {}).get("count") or 0,
            LIMITS["min_complex_deletions"],
            "complex deletions",
        ),
    ),
    Rule(
        "latency_above_target",
        "performance_optimization",
        "p95 > latency.p95Target or average > latency.averageTarget (all deletions)",
        lambda f, c: (
            (f["latency"]["p95_seconds"] or 0) > c["latency"]["p95Target"]
            or (f["latency"]["average_seconds"] or 0) > c["latency"]["averageTarget"]
        ),
        lambda f, c: (
            "Profile slow deletion operations: p95 "
            f"{f['latency']['p95_seconds'] or 0:.2f} s, average "
            f"{f['latency']['average_seconds'] or 0:.2f} s (targets < "
            f"{c['latency']['p95Target']:g} s and < {c['latency']['averageTarget']:g} s)"
        ),
        ">= min_requests_for_rates deletions in range",
        _latency_evidence,
    ),
    Rule(
        "peak_hour_batching",
        "performance_optimization",
        "peak hour volume >= peak_hour_batching_factor x mean hourly volume",
        lambda f, c: _peak_factor(f) >= LIMITS["peak_hour_batching_factor"],
        lambda f, c: (
            "Implement deletion operation batching for bulk operations: "
            f"{f['peak_hour']}:00 UTC carries {_peak_factor(f):.1f}x the mean hourly volume"
        ),
        "every hour of day covered >= min_days_for_hourly_pattern times",
        _hourly_evidence,
    ),
    Rule(
        "capacity_growth",
        "performance_optimization",
        "fitted daily volume 30 days ahead >= capacity_growth_factor x today's",
        lambda f, c: (_growth(f) or 0) >= LIMITS["capacity_growth_factor"],
        lambda f, c: (
            "Plan capacity for growth: daily deletions trend to "
            f"{f['capacity_projection']['projected_daily_in_30d']:.0f} in 30 days "
            f"({_growth(f):.1f}x today)"
        ),
        ">= min_days_for_projection days covered >= min_day_coverage each",
        lambda f, c: _at_least(
            (f.get("capacity_projection") or {}).get("days_used") or 0,
            LIMITS["min_days_for_projection"],
            "whole days fitted",
        ),
    ),
    Rule(
        "timeouts_share",
        "failure_reduction",
        "timeout failures >= failure_class_share of all failures",
        lambda f, c: _share(f, "timeout") >= LIMITS["failure_class_share"],
        lambda f, c: (
            "Improve error handling for timeout scenarios: "
            f"{_class_count(f, 'timeout')} timeouts, {_share(f, 'timeout'):.0%} of failures"
        ),
        ">= min_failures_for_shares failures in range",
        lambda f, c: _at_least(_failures(f), LIMITS["min_failures_for_shares"], "failures"),
    ),
    Rule(
        "authorization_share",
        "failure_reduction",
        "authorization failures >= failure_class_share of all failures",
        lambda f, c: _share(f, "authorization") >= LIMITS["failure_class_share"],
        lambda f, c: (
            "Enhance user feedback for authorization failures: "
            f"{_class_count(f, 'authorization')} rejected, "
            f"{_share(f, 'authorization'):.0%} of failures"
        ),
        ">= min_failures_for_shares failures in range",
        lambda f, c: _at_least(_failures(f), LIMITS["min_failures_for_shares"], "failures"),
    ),
    Rule(
        "error_rate_above_slo",
        "failure_reduction",
        "error rate over the range > 1 - slo.target",
        lambda f, c: (f["totals"]["error_rate"] or 0) > 1 - c["slo"]["target"],
        lambda f, c: (
            f"Reduce the overall failure rate: {f['totals']['error_rate']:.2%} of deletions "
            f"failed (target < {1 - c['slo']['target']:.2%}); most common class: "
            f"{_top_error_class(f, c)}"
        ),
        ">= min_requests_for_rates deletions in range",
        lambda f, c: _at_least(_requests(f), LIMITS["min_requests_for_rates"], "deletions"),
    ),
    Rule(
        "user_type_error_rate",
        "failure_reduction",
        "a user type with >= min_requests_per_user_type deletions has error rate > "
        "errorRate.warning",
        lambda f, c: bool(_bad_types(f, c)),
        lambda f, c: (
            "Investigate failing deletions of "
            + ", ".join(
                f"{r['user_type']} ({r['error_rate']:.1%} of {r['requests']})"
                for r in _bad_types(f, c)
            )
        ),
        ">= min_requests_per_user_type deletions of that type (in the condition)",
        _type_error_evidence,
    ),
    Rule(
        "unknown_failures",
        "monitoring_improvements",
        "failures classified as error_type=unknown > 0",
        lambda f, c: _class_count(f, "unknown") > 0,
        lambda f, c: (
            f"Classify the {_class_count(f, 'unknown')} failures of unknown type in the "
            "application's error mapping so they can be alerted on"
        ),
        "one failure of type unknown (each one is a gap in the error mapping)",
        lambda f, c: (True, f"{_class_count(f, 'unknown')} failures of type unknown"),
    ),
    Rule(
        "peak_hour_alerting",
        "monitoring_improvements",
        "peak hour volume >= peak_hour_alerting_factor x mean hourly volume",
        lambda f, c: _peak_factor(f) >= LIMITS["peak_hour_alerting_factor"],
        lambda f, c: (
            f"Implement predictive alerting for peak usage times ({f['peak_hour']}:00 UTC, "
            f"{_peak_factor(f):.1f}x the mean hour)"
        ),
        "every hour of day covered >= min_days_for_hourly_pattern times",
        _hourly_evidence,
    ),
    Rule(
        "user_type_latency_spread",
        "monitoring_improvements",
        "slowest user type's p95 >= user_type_p95_spread x fastest's "
        "(types with >= min_requests_per_user_type deletions)",
        lambda f, c: (_p95_spread(f) or (0,))[0] >= LIMITS["user_type_p95_spread"],
        lambda f, c: _p95_spread_text(f),
        ">= min_requests_per_user_type deletions of each type compared (in the condition)",
        lambda f, c: _spread_evidence(f),
    ),
)

REC_CATEGORIES = ("performance_optimization", "failure_reduction", "monitoring_improvements")


def evaluate(figures: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rule whose condition holds: fired (evidence met) or withheld (too little data)."""
    out: list[dict[str, Any]] = []
    if not figures.get("data"):
        return out
    for rule in RULES:
        if not rule.applies(figures, cfg):
            continue
        met, evidence = rule.evidence(figures, cfg)
        out.append(
            {
                "rule": rule.id,
                "category": rule.category,
                "status": "fired" if met else "withheld",
                "text": rule.text(figures, cfg) if met else None,
                "evidence": evidence,
            }
        )
    return out


def emitted_text(row: dict[str, Any]) -> str:
    """A fired recommendation as the report prints it: its text, then its evidence."""
    return f"{row['text']} (evidence: {row['evidence']})"


def recommend(
    figures: dict[str, Any], cfg: dict[str, Any]
) -> tuple[dict[str, list[str]], list[str]]:
    """Apply RULES to usage-pattern figures: (the spec's JSON shape, ids of rules that fired)."""
    out: dict[str, list[str]] = {c: [] for c in REC_CATEGORIES}
    fired: list[str] = []
    for row in evaluate(figures, cfg):
        if row["status"] == "fired":
            out[row["category"]].append(emitted_text(row))
            fired.append(row["rule"])
    return out, fired
