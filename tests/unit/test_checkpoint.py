"""Checkpoint documents without a database: exact round trips, and every refusal of validate().

A restored state must render the very same exposition as the state that was saved (floats at
their edges included), and a checkpoint that does not describe this table, this cluster, this
classification or a cursor this database could have produced is refused with its reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from deletion_monitor.audit import checkpoint as ckpt
from deletion_monitor.audit.state import (
    DEFAULT_DURATION_BUCKETS,
    NANOSECONDS,
    AuditCollector,
    AuditState,
    AuditStateStore,
    Hist,
)

IDENTITY = ckpt.Identity(
    table_oid=16401,
    table_name="public.deletion_audit",
    database="app",
    system_id="7301234567890123456",
    fingerprint="f" * 64,
)


def busy_state() -> AuditState:
    s = AuditState()
    nb = len(DEFAULT_DURATION_BUCKETS) + 1
    s.cursor = (2**63 + 5, 10**15)  # xid8 beyond int64, ids of 16 digits
    s.requests = {"CLIENT": 10**12, "VENDOR": 3, "other": 1}
    s.failures = {("CLIENT", "timeout"): 7, ("VENDOR", "database"): 1}
    h = Hist.empty(nb - 1, NANOSECONDS)
    h.counts[0], h.counts[-1] = 5, 2
    h.total = 10**6 * 10**9 * 3 + 1  # 3e15 ns + 1: exact only as an int
    s.duration = {("success", "CLIENT"): h}
    assert s.large is not None
    s.large.counts[3] = 1
    s.large.total = 123_456_789
    s.cascade.counts[2] = 4
    s.cascade.total = 37
    s.rows_deleted = {"sessions": 99, "other": 5}
    s.by_hour = {"00": 1, "23": 2}
    s.by_weekday = {"mon": 3}
    s.forbidden = {"super_admin": 1}
    s.app_versions = {"2.4.0": 1.7e9 + 0.123456789, 'v\u00e9rsion "quoted"': 0.0}
    s.invalid = {"bad_occurred_at": 2}
    s.ingested = 10**12 + 9
    s.first_row_ts = 0.0  # the epoch is a real first row, not "unknown"
    s.first_any_row_ts = -62135596800.0  # year 1
    s.last_row_ts = 253402300799.999  # the last second of year 9999
    s.loaded = True
    return s


def exposition(s: AuditState) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuditCollector(AuditStateStore(s)))
    lines = generate_latest(registry).decode().splitlines()
    # Process-local self-metrics legitimately differ between two processes.
    return "\n".join(line for line in lines if "poll_" not in line).encode()


def roundtrip(s: AuditState) -> AuditState:
    doc = json.loads(ckpt.encode(ckpt.build_checkpoint(s, IDENTITY)))
    restored = ckpt.state_from_dict(doc["state"], AuditState())
    restored.loaded = True
    restored.process_start = s.process_start
    return restored


def test_a_restored_state_renders_the_same_exposition() -> None:
    s = busy_state()
    restored = roundtrip(s)
    assert exposition(restored) == exposition(s)
    assert restored.cursor == s.cursor
    assert restored.duration[("success", "CLIENT")].total == s.duration[("success", "CLIENT")].total
    assert restored.first_row_ts == 0.0  # not None


def test_an_empty_state_round_trips() -> None:
    s = AuditState(cursor=(0, 0), loaded=True)
    assert exposition(roundtrip(s)) == exposition(s)


def doc_for(s: AuditState | None = None) -> dict:
    return json.loads(ckpt.encode(ckpt.build_checkpoint(s or busy_state(), IDENTITY)))


NEXT_TX = 2**63 + 100


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(format=ckpt.FORMAT + 1), "format_changed"),
        (lambda d: d.update(format=None), "format_changed"),
        (lambda d: d["identity"].update(fingerprint="0" * 64), "config_changed"),
        (lambda d: d["identity"].update(table_name="public.other"), "other_table"),
        (lambda d: d["identity"].update(database="staging"), "other_table"),
        (lambda d: d["identity"].update(table_oid=1), "other_table"),
        (lambda d: d["identity"].update(system_id="1"), "other_cluster"),
        (lambda d: d["state"]["cursor"].__setitem__(0, str(NEXT_TX)), "cursor_ahead"),
        (lambda d: d["state"]["cursor"].__setitem__(0, str(NEXT_TX + 10**9)), "cursor_ahead"),
    ],
)
def test_validate_refuses(mutate, reason: str) -> None:
    doc = doc_for()
    mutate(doc)
    refusal = ckpt.validate(doc, IDENTITY, NEXT_TX, None)
    assert refusal is not None and refusal.reason == reason
    assert refusal.detail and "\n" not in refusal.detail
    assert reason in ckpt.STARTUP_REASONS


def test_validate_accepts_a_matching_checkpoint_and_a_purged_cursor_row() -> None:
    doc = doc_for()
    tx = int(doc["state"]["cursor"][0])
    assert ckpt.validate(doc, IDENTITY, NEXT_TX, tx) is None
    assert ckpt.validate(doc, IDENTITY, tx + 1, None) is None  # row purged by retention: fine
    rewritten = ckpt.validate(doc, IDENTITY, NEXT_TX, tx - 1)
    assert rewritten is not None and rewritten.reason == "cursor_row_rewritten"


def test_unknown_cluster_identity_on_either_side_is_not_a_refusal() -> None:
    """A role without EXECUTE on pg_control_system() reads no system identifier: the other
    checks still apply, the cluster check cannot (said in docs/audit-log.md)."""
    doc = doc_for()
    doc["identity"]["system_id"] = None
    assert ckpt.validate(doc, IDENTITY, NEXT_TX, None) is None
    here = ckpt.Identity(**{**IDENTITY.to_dict(), "system_id": None})
    assert ckpt.validate(doc_for(), here, NEXT_TX, None) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda st: st.update(requests={"CLIENT": -1}),
        lambda st: st.update(ingested=-1),
        lambda st: st["duration"][0][2].update(counts=[1, 2]),  # other bucket layout
        lambda st: st["large"].update(counts=[1]),
        lambda st: st.update(cursor=None),
        lambda st: st.pop("invalid"),
        lambda st: st.update(failures=[["CLIENT", "timeout", -3]]),
    ],
)
def test_malformed_states_raise(mutate) -> None:
    state = doc_for()["state"]
    mutate(state)
    with pytest.raises((KeyError, ValueError, TypeError, IndexError)):
        ckpt.state_from_dict(state, AuditState())


def test_fingerprint_moves_with_any_bucket_or_sql_change() -> None:
    base = ckpt.classification_fingerprint({"neg_dur": [-1.0]}, {"agg": "SELECT 1"})
    assert base == ckpt.classification_fingerprint({"neg_dur": [-1.0]}, {"agg": "SELECT 1"})
    assert base != ckpt.classification_fingerprint({"neg_dur": [-2.0]}, {"agg": "SELECT 1"})
    assert base != ckpt.classification_fingerprint({"neg_dur": [-1.0]}, {"agg": "SELECT 2"})


def test_file_store_replaces_atomically_and_reads_back(tmp_path: Path) -> None:
    store = ckpt.FileCheckpointStore(tmp_path / "state.json")
    assert store.load() is None  # nothing written yet
    size = store.save(doc_for())
    assert size == (tmp_path / "state.json").stat().st_size
    assert store.load() == doc_for() | {"written_at": store.load()["written_at"]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    (tmp_path / "state.json").write_text("[1, 2]")
    with pytest.raises(ckpt.CheckpointError):
        store.load()


def test_file_store_checks_its_directory(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.FileCheckpointStore(tmp_path / "nope" / "s.json").check_writable()
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="not a regular file"):
        ckpt.FileCheckpointStore(tmp_path / "dir.json").check_writable()
    ckpt.FileCheckpointStore(tmp_path / "ok.json").check_writable()


def test_floats_survive_json_exactly() -> None:
    for value in (0.1, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3):
        assert json.loads(json.dumps(value)) == value
        assert math.copysign(1, json.loads(json.dumps(value))) == math.copysign(1, value)
