"""deletion_monitor_demo.workload: the synthetic audit rows the demo, benchmarks and tests rely
on."""

from __future__ import annotations

import psycopg

from deletion_monitor_demo import workload


def test_copy_and_stream_write_rows(audit_dsn: str) -> None:
    assert workload.insert_rows(audit_dsn, 500, seed=5) == 500
    written = workload.stream_rows(audit_dsn, rate=100, duration=0.3, seed=6)
    assert 5 <= written <= 32  # at most rate x duration (+1); fewer only on a starved box
    with psycopg.connect(audit_dsn) as conn:
        total, txs = conn.execute(
            "SELECT count(*), count(DISTINCT tx) FROM deletion_audit"
        ).fetchone()
    assert total == 500 + written
    assert txs == 1 + written  # COPY is one transaction; each streamed row its own
