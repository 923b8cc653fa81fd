"""Property: the audit exporter never lies, whatever the writers do and however it is killed.

Concurrent writer threads (one connection each) write a random mix of valid and hostile rows;
some transactions are held open, some rolled back. Meanwhile the exporter runs as a real
subprocess (`deletion-monitor audit-exporter ... --poll-interval 0.2`) and is stopped with
SIGKILL or SIGTERM at random moments and started again. Scrapes run continually, and after each
one: no counter series ever went down, across restarts too (an absent series is a gap, not a
decrease). At the end, the totals equal the table's GROUP BY over the valid rows.

Seeded: the seed is printed on failure; rerun one with AUDIT_PROPERTY_SEED=<seed>.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from test_audit_exporter import Key, assert_exact, k, truth

from deletion_monitor.audit.exporter import scrape_values
from deletion_monitor_demo import workload
from deletion_monitor_demo.services import ManagedProcess, free_port

_BIN = Path(sys.executable).parent / "deletion-monitor"
CLI = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "deletion_monitor"]
# Counters that describe the table (restart-stable); per-process ones may restart from 0.
STABLE_COUNTER_PREFIXES = ("deletion_", "deletion_audit_rows_ingested", "deletion_audit_invalid")
PROCESS_LOCAL = ("deletion_audit_poll_", "deletion_audit_initial_load", "process_")
# Hostile values (SQL literals by column); each must end up in invalid_rows_total.
HOSTILE: list[dict[str, str]] = [
    {"occurred_at": "infinity"},
    {"occurred_at": "-infinity"},
    {"occurred_at": "10000-01-01 00:00:00+00"},
    {"occurred_at": "0044-03-15 12:00:00+00 BC"},
    {"duration_seconds": "1e308"},
    {"duration_seconds": "NaN"},
    {"duration_seconds": "-Infinity"},
    {"duration_seconds": "-1"},
    {"rows_deleted": '{"profiles": 1e400}'},
    {"rows_deleted": '{"profiles": 1.5}'},
    {"rows_deleted": "[1, 2]"},
    {"outcome": "partial"},
]
# Odd but valid: must be counted like any row.
ODD_VALID: list[dict[str, str]] = [
    {"occurred_at": "1970-01-01 00:00:00+00"},
    {"occurred_at": "9999-12-31 23:59:59+00"},
    {"duration_seconds": "0"},
    {"duration_seconds": "1e6"},
    {"rows_deleted": '{"profiles": 999999999999999}'},
]
COLUMN_TYPES = {
    "occurred_at": "timestamptz",
    "outcome": "text",
    "error_type": "text",
    "duration_seconds": "float8",
    "target_user_id": "text",
    "target_user_type": "text",
    "performed_by": "text",
    "rows_deleted": "jsonb",
    "app_version": "text",
}


def _is_counter(name: str) -> bool:
    if name.startswith(PROCESS_LOCAL) or name.endswith("_created"):
        return False
    if not name.startswith(STABLE_COUNTER_PREFIXES):
        return False
    return name.endswith(("_total", "_bucket", "_count", "_sum"))


def _random_row(rng: random.Random, valid: workload.AuditRow) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "outcome": valid.outcome,
        "error_type": valid.error_type,
        "duration_seconds": repr(valid.duration_seconds),
        "target_user_id": valid.target_user_id,
        "target_user_type": valid.target_user_type,
        "performed_by": valid.performed_by,
        "rows_deleted": json.dumps(valid.rows_deleted) if valid.rows_deleted else None,
        "app_version": valid.app_version,
    }
    draw = rng.random()
    if draw < 0.15:
        row.update(rng.choice(HOSTILE))
    elif draw < 0.22:
        row.update(rng.choice(ODD_VALID))
    return row


class Writer(threading.Thread):
    """Writes transactions of 1-4 rows: committed, rolled back, or held open for a while."""

    def __init__(self, dsn: str, seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rng, self.stop = dsn, random.Random(seed), stop
        self.rows = workload.generate(10**9, seed=seed)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                while not self.stop.is_set():
                    for _ in range(self.rng.randint(1, 4)):
                        row = _random_row(self.rng, next(self.rows))
                        marks = ", ".join(f"%s::{COLUMN_TYPES[c]}" for c in row)
                        conn.execute(
                            f"INSERT INTO deletion_audit ({', '.join(row)}) VALUES ({marks})",
                            list(row.values()),
                        )
                    fate = self.rng.random()
                    if fate < 0.15:
                        conn.rollback()
                        continue
                    if fate < 0.3:
                        self.stop.wait(self.rng.uniform(0.3, 1.5))  # a long transaction
                    conn.commit()
                    self.stop.wait(self.rng.uniform(0.0, 0.05))
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc


class Exporter:
    """The exporter subprocess, restartable; scrape() returns None while it cannot answer."""

    def __init__(self, dsn: str, tmp_path: Path) -> None:
        self.dsn, self.tmp_path = dsn, tmp_path
        self.proc: ManagedProcess | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> None:
        self.port = free_port()
        self.starts += 1
        self.proc = ManagedProcess(
            [
                *CLI,
                "audit-exporter",
                "--dsn",
                self.dsn,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--poll-interval",
                "0.2",
                "--initial-chunk-rows",
                "200",  # several chunks per start-up, so kills land mid-load too
                "--batch-size",
                "150",
            ],
            self.tmp_path / f"exporter-{self.starts}.log",
        )

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.signal(sig)
        self.proc.proc.wait(15)
        self.proc.stop()

    def scrape(self) -> dict[Key, float] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                return dict(scrape_values(r.read().decode()))
        except OSError:
            return None


def check_monotonic(values: dict[Key, float], high: dict[Key, float], context: str) -> None:
    """No counter (histogram sums included, exactly) below its highest value so far."""
    for key, value in values.items():
        if not _is_counter(key[0]):
            continue
        prev = high.get(key)
        if prev is not None:
            assert value >= prev, f"{context}: {key} went down {prev} -> {value}"
        high[key] = value if prev is None else max(prev, value)


# What a run must have seen to have tested anything: restarts and scrapes between them.
MIN_KILLS = 2
MIN_SCRAPES = 10


def run_property(dsn: str, tmp_path: Path, seed: int, duration: float, writers: int) -> dict:
    rng = random.Random(seed)
    workload.insert_rows(dsn, rng.randint(0, 3000), seed=seed, invalid_rate=0.02)
    stop = threading.Event()
    threads = [Writer(dsn, seed * 100 + i, stop) for i in range(writers)]
    for thread in threads:
        thread.start()
    exporter = Exporter(dsn, tmp_path)
    exporter.start()
    high: dict[Key, float] = {}
    scrapes = kills = 0
    next_kill = time.monotonic() + rng.uniform(0.5, 2.5)
    end = time.monotonic() + duration
    # On a loaded machine the duration may hold too few scrapes (each restart costs a start-up):
    # the run goes on until it has seen enough of both, up to 4x its duration.
    cap = time.monotonic() + 4 * duration
    try:
        while time.monotonic() < end or (
            (scrapes < MIN_SCRAPES or kills < MIN_KILLS) and time.monotonic() < cap
        ):
            values = exporter.scrape()
            if values is not None:
                scrapes += 1
                check_monotonic(values, high, f"seed={seed} start={exporter.starts}")
            if time.monotonic() >= next_kill:
                exporter.kill(rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM]))
                kills += 1
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0.1, 1.0))  # down for a while; writers go on
                exporter.start()
                next_kill = time.monotonic() + rng.uniform(0.5, 2.5)
            time.sleep(rng.uniform(0.02, 0.15))
        stop.set()
        for thread in threads:
            thread.join(30)
            assert thread.error is None, f"seed={seed}: writer failed: {thread.error!r}"
        with psycopg.connect(dsn) as conn:
            (total,) = conn.execute("SELECT count(*) FROM deletion_audit").fetchone()
        deadline = time.monotonic() + 60
        while True:
            values = exporter.scrape()
            if values is not None:
                check_monotonic(values, high, f"seed={seed} final")
                if values.get(k("deletion_audit_rows_ingested_total")) == total:
                    break
            assert time.monotonic() < deadline, (
                f"seed={seed}: not caught up: {exporter.proc.log_tail() if exporter.proc else ''}"
            )
            time.sleep(0.1)
        assert_exact(values, truth(dsn))
        assert values[k("deletion_audit_up")] == 1 and values[k("deletion_audit_ready")] == 1
        assert values[k("deletion_audit_foreign_tx_rows")] == 0
        invalid = sum(v for (n, _), v in values.items() if n == "deletion_audit_invalid_rows_total")
        assert math.isfinite(invalid)
        return {"scrapes": scrapes, "kills": kills, "rows": total, "invalid": invalid}
    finally:
        stop.set()
        if exporter.proc is not None:
            exporter.proc.stop()


def _seed() -> int:
    env = os.environ.get("AUDIT_PROPERTY_SEED")
    return int(env) if env else random.SystemRandom().randrange(10**9)


def _run(dsn: str, tmp_path: Path, duration: float, writers: int) -> None:
    seed = _seed()
    print(f"audit property seed={seed}")  # shown by pytest when the test fails
    try:
        stats = run_property(dsn, tmp_path, seed, duration, writers)
    except AssertionError as exc:
        raise AssertionError(f"seed={seed} (AUDIT_PROPERTY_SEED={seed} to rerun): {exc}") from exc
    print(f"audit property seed={seed} {stats}")
    assert stats["kills"] >= MIN_KILLS and stats["scrapes"] >= MIN_SCRAPES, stats


def test_counters_never_go_down_and_end_exact_short(audit_dsn: str, tmp_path: Path) -> None:
    _run(audit_dsn, tmp_path, duration=8.0, writers=3)


@pytest.mark.slow
def test_counters_never_go_down_and_end_exact_long(audit_dsn: str, tmp_path: Path) -> None:
    _run(audit_dsn, tmp_path, duration=60.0, writers=4)
