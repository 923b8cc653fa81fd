"""Histogram _sum series are the same float whether the rows were tailed or loaded at start-up.

A float sum depends on how the rows were grouped: tailing 40 batches adds the durations in one
order, the start-up aggregate of the same rows in another, and the two results can differ in
their last bits. A restart that serves a _sum one ulp lower is, for rate(), a counter reset
followed by a burst of the whole history (average latency over the window: absurd). The exporter
sums durations exactly (whole nanoseconds), so the value cannot depend on the batching.
"""

# ruff: noqa: F811  (run_exporter is a fixture imported from test_audit_exporter)
from __future__ import annotations

import random
from decimal import Decimal

from test_audit_exporter import (  # noqa: F401
    ingested,
    insert,
    k,
    run_exporter,
    scrape,
    wait_for,
)


def test_duration_sum_is_identical_after_a_restart(audit_dsn: str, run_exporter) -> None:
    rng = random.Random(7)
    # Durations with many significant digits, all in one label set and one bucket group mix.
    durations = [round(rng.uniform(0.001, 9.999), 6) for _ in range(400)]
    exporter, port = run_exporter(audit_dsn)
    wait_for(port, ingested(0))
    for i in range(0, len(durations), 10):
        batch = durations[i : i + 10]
        insert(audit_dsn, [{"duration_seconds": d, "target_user_type": "CLIENT"} for d in batch])
        wait_for(port, ingested(i + len(batch)))
    key = k("deletion_duration_seconds_sum", outcome="success", user_type="CLIENT")
    tailed = scrape(port)[key]
    exporter.stop()

    _, port2 = run_exporter(audit_dsn)
    restarted = wait_for(port2, ingested(len(durations)))[key]
    assert restarted == tailed  # exactly: no tolerance, a lower value is a counter reset
    exact = sum(Decimal(repr(d)) for d in durations)
    assert tailed == float(exact)
