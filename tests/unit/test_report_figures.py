"""The report's recommendation rules on synthetic figures, and the docs that list them.

Each rule fires exactly past its boundary on a calm set of figures changed in one place; the
figures of real data served by a real Prometheus are tests/integration/test_watch_report.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deletion_monitor.common.config import load_config
from deletion_monitor.reports import recommendations
from deletion_monitor.reports.figures import LIMITS

USER_TYPES = ("CLIENT", "VENDOR", "DRIVER")  # the user types the calm figures carry


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return load_config(env={})


def _calm_figures() -> dict[str, Any]:
    ut = [
        {"user_type": t, "requests": 100, "failures": 0, "error_rate": 0.0, "p95_seconds": 0.4}
        for t in USER_TYPES
    ]
    return {
        "data": True,
        "totals": {"requests": 300, "failures": 0, "error_rate": 0.0},
        "latency": {"p95_seconds": 0.4, "average_seconds": 0.3},
        "complex_deletions": {"count": 5, "p95_seconds": 1.0},
        "peak_hour": "10",
        "peak_hour_requests": 10.0,
        "mean_hourly_requests": 10.0,
        "capacity_projection": {"growth_factor_30d": 1.0, "projected_daily_in_30d": 40.0},
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
    {"error_type": "timeout", "failures": 1, "share": 0.25},
    {"error_type": "authorization", "failures": 1, "share": 0.25},
    {"error_type": "business_logic", "failures": 2, "share": 0.5},
]


# Each case: a change to calm figures, the rules that must fire then (and only those).
# Values sit exactly at or just beyond each boundary, so an off-by-one comparison fails.
RULE_CASES = [
    ("complex p95 at target", _set("complex_deletions.p95_seconds", 5.0), []),
    ("complex p95 above", _set("complex_deletions.p95_seconds", 5.01), ["complex_deletions_slow"]),
    ("p95 at target", _set("latency.p95_seconds", 5.0), []),
    ("p95 above", _set("latency.p95_seconds", 5.01), ["latency_above_target"]),
    ("average above", _set("latency.average_seconds", 2.01), ["latency_above_target"]),
    ("peak 1.99x", _set("peak_hour_requests", 19.9), []),
    ("peak 2x", _set("peak_hour_requests", 20.0), ["peak_hour_alerting"]),
    ("peak 3x", _set("peak_hour_requests", 30.0), ["peak_hour_batching", "peak_hour_alerting"]),
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


def test_docs_list_every_rule_and_limit() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reports.md").read_text()
    for rule in recommendations.RULES:
        assert f"| `{rule.id}` | {rule.category} | {rule.condition} |" in doc, rule.id
    for name, value in LIMITS.items():
        assert f"| `{name}` | {value:g} |" in doc or f"| `{name}` | {value} |" in doc, name
    assert "0 9 * * 1" in doc
