"""deletion_monitor_demo.workload's generator: the synthetic audit rows the demo, benchmarks and
tests rely on, without a database (writing them: tests/integration/test_audit_exporter_workload.py).
"""

from __future__ import annotations

import statistics
from collections import Counter

from deletion_monitor.audit.state import ERROR_TYPES, USER_TYPES
from deletion_monitor_demo import workload


def test_generated_mix_is_realistic_and_deterministic() -> None:
    rows = list(workload.generate(20_000, seed=3))
    assert [r.duration_seconds for r in rows[:50]] == [
        r.duration_seconds for r in workload.generate(50, seed=3)
    ]
    failures = [r for r in rows if r.outcome == "failure"]
    successes = [r for r in rows if r.outcome == "success"]
    assert 0.025 < len(failures) / len(rows) < 0.06  # mostly successes
    types = Counter(r.target_user_type for r in rows)
    assert set(types) == set(USER_TYPES) and types.most_common(1)[0][0] == "CLIENT"
    errors = Counter(r.error_type for r in failures)
    assert set(errors) <= set(ERROR_TYPES)
    assert {"timeout", "authorization", "business_logic", "not_found"} <= set(errors)
    durations = sorted(r.duration_seconds for r in successes)
    assert 0.8 < statistics.median(durations) < 1.6
    assert sum(0.2 <= d <= 8 for d in durations) / len(durations) > 0.9
    assert any(d > 10 for d in durations)  # a few pathological cascades
    assert all(10 <= r.duration_seconds <= 30 for r in failures if r.error_type == "timeout")
    # Cascades on success only; a few large ones; no forbidden successes by default.
    assert all(r.rows_deleted is None for r in failures)
    assert all(r.rows_deleted["profiles"] == 1 for r in successes)
    assert any(sum(r.rows_deleted.values()) >= 100 for r in successes)
    assert not any(r.target_user_type == "SUPER_ADMIN" for r in successes)
    assert not any(r.performed_by == r.target_user_id for r in successes)
    # App versions follow time: a deploy marker that moves forward.
    firsts = [next(r.occurred_at for r in rows if r.app_version == v) for v in ("2.3.0", "2.4.0")]
    assert firsts[0] < firsts[1]
    odd = list(workload.generate(2_000, seed=4, invalid_rate=0.05, forbidden_rate=0.05))
    assert any(r.outcome not in ("success", "failure") for r in odd)
    assert any(r.duration_seconds < 0 for r in odd)
    assert any(r.outcome == "success" and r.target_user_type == "SUPER_ADMIN" for r in odd)
