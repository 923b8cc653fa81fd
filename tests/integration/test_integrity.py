"""Integrity checks against a real PostgreSQL: exact violation counts, the completeness audit,
the check-integrity report and its exit codes, and the default checks against the reference schema.
The checks-file schema and the unreachable database need no server:
tests/unit/test_integrity_checks_file.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from support.checks import _GOOD, _check_integrity

from deletion_monitor.cli import main
from deletion_monitor.data import schema_path
from deletion_monitor.integrity.checks import (
    CATEGORIES,
    DEFAULT_CHECKS_PATH,
    load_checks,
    parse_checks,
)
from deletion_monitor.integrity.runner import connect, run_check
from deletion_monitor_demo.pgcluster import apply_sql_file


def _uid() -> str:
    return str(uuid.uuid4())


def _profile(cur: psycopg.Cursor, email: str, type_: str = "CLIENT", deleted: bool = False) -> str:
    pid = _uid()
    cur.execute(
        'INSERT INTO profiles (id, email, type, "deletedAt") '
        "VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)",
        (pid, email, type_, deleted),
    )
    return pid


def _address(cur: psycopg.Cursor, created_by: str | None) -> str:
    aid = _uid()
    cur.execute(
        'INSERT INTO addresses (id, street1, city, "createdBy") VALUES (%s, %s, %s, %s)',
        (aid, "1 Main St", "Austin", created_by),
    )
    return aid


def _full_user(cur: psycopg.Cursor, email: str, type_: str = "CLIENT") -> str:
    """A live user with one row in every child table: a clean database has plenty of these."""
    pid = _profile(cur, email, type_)
    addr = _address(cur, pid)
    cur.execute(
        'INSERT INTO accounts ("userId", provider, "providerAccountId") VALUES (%s, %s, %s)',
        (pid, "google", email),
    )
    cur.execute(
        'INSERT INTO sessions ("sessionToken", "userId", expires) '
        "VALUES (%s, %s, now() + interval '1 day')",
        (_uid(), pid),
    )
    cur.execute('INSERT INTO user_addresses ("userId", "addressId") VALUES (%s, %s)', (pid, addr))
    cur.execute(
        'INSERT INTO catering_requests ("userId", "pickupAddressId", "deliveryAddressId") '
        "VALUES (%s, %s, %s)",
        (pid, addr, addr),
    )
    cur.execute(
        'INSERT INTO on_demand_requests ("userId", "pickupAddressId") VALUES (%s, %s)', (pid, addr)
    )
    cur.execute(
        'INSERT INTO user_audits ("userId", "performedBy", action) VALUES (%s, %s, %s)',
        (pid, pid, "LOGIN"),
    )
    cur.execute('INSERT INTO dispatches ("userId") VALUES (%s)', (pid,))
    cur.execute(
        'INSERT INTO file_uploads ("userId", "fileName", "fileUrl") VALUES (%s, %s, %s)',
        (pid, "a.pdf", "s3://bucket/a.pdf"),
    )
    return pid


def _audit(
    cur: psycopg.Cursor,
    outcome: str,
    target: str | None,
    target_type: str | None = "CLIENT",
    performed_by: str | None = "admin-1",
    error_type: str | None = None,
    age: str = "1 hour",
) -> None:
    cur.execute(
        "INSERT INTO deletion_audit (occurred_at, outcome, error_type, duration_seconds, "
        "target_user_id, target_user_type, performed_by, performed_by_type) "
        "VALUES (now() - %s::interval, %s, %s, 0.4, %s, %s, %s, 'ADMIN')",
        (age, outcome, error_type, target, target_type, performed_by),
    )


def seed_clean(dsn: str) -> None:
    """Live users, proper hard deletions and their audit rows: no violation anywhere."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        for i in range(3):
            _full_user(cur, f"user{i}@example.com")
        _full_user(cur, "driver@example.com", "DRIVER")
        # A deletion done right: every child cascades away, the audit row says success.
        gone = _full_user(cur, "gone@example.com")
        cur.execute('UPDATE dispatches SET "userId" = NULL WHERE "userId" = %s', (gone,))
        cur.execute('DELETE FROM file_uploads WHERE "userId" = %s', (gone,))
        cur.execute('UPDATE addresses SET "createdBy" = NULL WHERE "createdBy" = %s', (gone,))
        cur.execute("DELETE FROM profiles WHERE id = %s", (gone,))
        _audit(cur, "success", gone)
        _audit(cur, "failure", _uid(), error_type="not_found")
        # A soft-deleted profile whose clean-up was done: no accounts, no sessions.
        _profile(cur, "soft-clean@example.com", deleted=True)


# Expected count for every default check after seed_violations(); keeping the full list here
# means a new default check fails this test until someone seeds and counts its violation.
EXPECTED = {
    "orphaned_accounts": 3,  # 2 ghosts + 1 leftover of the deletion 2 days ago
    "orphaned_sessions": 3,  # 2 ghosts + 1 leftover of the incomplete recent deletion
    "orphaned_user_addresses": 1,
    "orphaned_catering_requests": 4,
    "orphaned_on_demand_requests": 1,
    "orphaned_user_audits": 2,
    "orphaned_user_audit_performers": 1,
    "dispatches_of_deleted_drivers": 3,  # 2 of a soft-deleted driver + 1 of a vanished one
    "dispatches_of_deleted_users": 1,
    "file_uploads_of_deleted_users": 2,
    "unused_addresses_of_deleted_users": 2,  # 3 created by the soft-deleted user, 1 still used
    "accounts_of_soft_deleted_users": 2,
    "deletion_completeness_audit": 1,
    "live_sessions_of_soft_deleted_users": 1,  # the expired one does not count
    "successful_self_deletions": 1,
    "successful_super_admin_deletions": 2,
    "audit_rows_missing_fields": 3,
    "duplicate_profile_emails": 2,
    "invalid_user_types": 2,
    "missing_foreign_keys": 2,
}


def seed_violations(dsn: str) -> dict[str, Any]:
    """seed_clean() plus each kind of violation in the numbers of EXPECTED."""
    seed_clean(dsn)
    ghost = _uid  # ids of profiles that never existed
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        live = _full_user(cur, "live@example.com")
        # Orphans need the foreign-key triggers off, as after a restore with
        # session_replication_role = replica or under a schema that lacks the key.
        cur.execute("SET session_replication_role = replica")
        for _ in range(2):
            cur.execute(
                'INSERT INTO accounts ("userId", provider, "providerAccountId") '
                "VALUES (%s, 'google', 'x')",
                (ghost(),),
            )
            cur.execute(
                'INSERT INTO sessions ("sessionToken", "userId", expires) '
                "VALUES (%s, %s, now() + interval '1 day')",
                (_uid(), ghost()),
            )
            cur.execute(
                'INSERT INTO user_audits ("userId", action) VALUES (%s, %s)', (ghost(), "X")
            )
        cur.execute(
            'INSERT INTO user_addresses ("userId", "addressId") VALUES (%s, %s)',
            (ghost(), _address(cur, live)),
        )
        for _ in range(4):
            cur.execute('INSERT INTO catering_requests ("userId") VALUES (%s)', (ghost(),))
        cur.execute('INSERT INTO on_demand_requests ("userId") VALUES (%s)', (ghost(),))
        cur.execute(
            'INSERT INTO user_audits ("userId", "performedBy", action) VALUES (%s, %s, %s)',
            (live, ghost(), "UPDATE"),
        )
        cur.execute('INSERT INTO dispatches ("driverId") VALUES (%s)', (ghost(),))

        # Completeness audit: a recent "successful" deletion that left a session behind, and
        # an old one (outside the 24 h window) that left an account: only the first is sampled.
        incomplete = _uid()
        cur.execute(
            'INSERT INTO sessions ("sessionToken", "userId", expires) '
            "VALUES (%s, %s, now() + interval '1 day')",
            (_uid(), incomplete),
        )
        _audit(cur, "success", incomplete)
        old = _uid()
        cur.execute(
            'INSERT INTO accounts ("userId", provider, "providerAccountId") '
            "VALUES (%s, 'github', 'y')",
            (old,),
        )
        _audit(cur, "success", old, age="2 days")
        cur.execute("SET session_replication_role = DEFAULT")

        # Soft-deleted users whose clean-up did not happen.
        soft = _profile(cur, "soft@example.com", deleted=True)
        driver = _profile(cur, "soft-driver@example.com", "DRIVER", deleted=True)
        for pid in (soft, driver):
            cur.execute(
                'INSERT INTO accounts ("userId", provider, "providerAccountId") '
                "VALUES (%s, 'google', 'z')",
                (pid,),
            )
        cur.execute(
            'INSERT INTO sessions ("sessionToken", "userId", expires) VALUES '
            "(%s, %s, now() + interval '1 hour'), (%s, %s, now() - interval '1 hour')",
            (_uid(), soft, _uid(), soft),
        )
        cur.execute('INSERT INTO dispatches ("driverId") VALUES (%s), (%s)', (driver, driver))
        cur.execute('INSERT INTO dispatches ("userId") VALUES (%s)', (soft,))
        for _ in range(2):
            cur.execute(
                'INSERT INTO file_uploads ("userId", "fileName", "fileUrl") '
                "VALUES (%s, 'b.pdf', 's3://bucket/b.pdf')",
                (soft,),
            )
        used = _address(cur, soft)
        _address(cur, soft)
        _address(cur, soft)
        cur.execute(
            'INSERT INTO catering_requests ("userId", "pickupAddressId") VALUES (%s, %s)',
            (live, used),
        )
        _address(cur, live)  # unused, but its creator is alive: not a leftover

        # Audit trail: forbidden successes, and rows missing required fields.
        self_id = _uid()
        _audit(cur, "success", self_id, performed_by=self_id)
        _audit(cur, "failure", self_id, performed_by=self_id, error_type="business_logic")
        _audit(cur, "success", _uid(), target_type="SUPER_ADMIN")
        _audit(cur, "success", _uid(), target_type="SUPER_ADMIN")
        _audit(cur, "failure", _uid(), target_type="SUPER_ADMIN", error_type="authorization")
        _audit(cur, "failure", _uid(), performed_by=None, error_type="database")
        # a constraint failure comes after the target lookup: its type is known
        _audit(cur, "failure", _uid(), target_type=None, error_type="constraint")
        _audit(cur, "failure", _uid(), error_type=None)
        # Legitimate refusals that lack fields: not violations.
        _audit(cur, "failure", _uid(), performed_by=None, error_type="authorization")
        _audit(cur, "failure", _uid(), target_type=None, error_type="authorization")
        _audit(cur, "failure", _uid(), target_type=None, error_type="not_found")
        # The database did not answer the target's or the caller's lookup (an outage): no
        # types to record (the caller's id is known from the token).
        _audit(cur, "failure", _uid(), target_type=None, error_type="database")
        # No pooled connection in time (the database unreachable, or just back): the lookups
        # never ran, so neither type is known; seen after the e2e database outage.
        cur.execute(
            "INSERT INTO deletion_audit (occurred_at, outcome, error_type, duration_seconds, "
            "target_user_id, performed_by) VALUES (now(), 'failure', 'timeout', 5.0, %s, %s)",
            (_uid(), "admin-1"),
        )
        cur.execute(
            "INSERT INTO deletion_audit (occurred_at, outcome, error_type, duration_seconds, "
            "target_user_id, performed_by) VALUES (now(), 'failure', 'database', 0.4, %s, %s)",
            (_uid(), "admin-1"),
        )
        _audit(cur, "failure", None, error_type="unknown", age="40 days")  # outside the window
        _audit(cur, "success", "not-a-uuid")  # never sampled: not a user id

        # Consistency.
        for email in ("Dup@example.com", "dup@example.com", "DUP@example.com"):
            _profile(cur, email)
        _profile(cur, "dup@EXAMPLE.com", deleted=True)  # soft-deleted: not a live duplicate
        _profile(cur, "manager@example.com", "MANAGER")
        _profile(cur, "lower@example.com", "client")

        # Schema: one foreign key missing, one NOT VALID.
        cur.execute('ALTER TABLE file_uploads DROP CONSTRAINT "file_uploads_userId_fkey"')
        cur.execute('ALTER TABLE dispatches DROP CONSTRAINT "dispatches_driverId_fkey"')
        cur.execute(
            'ALTER TABLE dispatches ADD CONSTRAINT "dispatches_driverId_fkey" '
            'FOREIGN KEY ("driverId") REFERENCES profiles (id) NOT VALID'
        )
    # sampled by the completeness audit: seed_clean's proper deletion, 2 super admins, the
    # self-deletion and the incomplete one (not the old one, not the malformed id)
    return {"incomplete": incomplete, "audited": 5}


def _run_all(dsn: str, checks: list | None = None) -> dict[str, Any]:
    checks = checks or load_checks()
    results = {}
    conn = connect(dsn)
    try:
        for check in checks:
            results[check.name] = run_check(conn, check, with_samples=True)
    finally:
        conn.close()
    return results


def test_default_checks_cover_every_category_and_kind() -> None:
    checks = load_checks()
    assert {c.name for c in checks} == set(EXPECTED)
    assert {c.category for c in checks} == set(CATEGORIES)
    assert {c.kind for c in checks} == {"count", "completeness"}
    # Orphan checks are anti-joins, never NOT IN (wrong with NULLs, per-row subquery).
    assert not [c.name for c in checks if "NOT IN (SELECT" in " ".join(c.sql.upper().split())]
    # The completeness audit's sample size and window are bind parameters, not SQL text.
    audit = next(c for c in checks if c.kind == "completeness")
    assert audit.params == {"sample_size": 10, "window": "24 hours"}
    assert "%(sample_size)s" in audit.sql and "%(window)s" in audit.sql


def test_clean_database_reports_zero_everywhere(app_dsn: str) -> None:
    seed_clean(app_dsn)
    results = _run_all(app_dsn)
    assert {name: (r.ok, r.violations) for name, r in results.items()} == {
        name: (True, 0) for name in EXPECTED
    }
    # the proper deletion was audited and found complete
    assert results["deletion_completeness_audit"].audited == 1


def test_seeded_violations_exact_count_per_check(app_dsn: str) -> None:
    seeded = seed_violations(app_dsn)
    results = _run_all(app_dsn)
    errors = {n: r.error for n, r in results.items() if not r.ok}
    assert errors == {}
    assert {n: r.violations for n, r in results.items()} == EXPECTED
    audit = results["deletion_completeness_audit"]
    assert (audit.audited, audit.failures) == (seeded["audited"], 1)
    assert audit.samples == [f"{seeded['incomplete']}: sessions"]
    # Samples are only a handful of keys, for the report.
    assert len(results["orphaned_catering_requests"].samples) == 4
    assert sorted(results["missing_foreign_keys"].samples) == [
        "dispatches.driverId -> profiles (NOT VALID)",
        "file_uploads.userId -> profiles (missing)",
    ]


def test_completeness_audit_catches_cascade_that_left_a_session(app_dsn: str) -> None:
    """A real DELETE under a schema that lost the sessions cascade: the audit log says success,
    the session row survives, and the audit names the user and the table."""
    with psycopg.connect(app_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute('ALTER TABLE sessions DROP CONSTRAINT "sessions_userId_fkey"')
        victims = [_full_user(cur, f"v{i}@example.com") for i in range(3)]
        for pid in victims:
            cur.execute('UPDATE dispatches SET "userId" = NULL WHERE "userId" = %s', (pid,))
            cur.execute('DELETE FROM file_uploads WHERE "userId" = %s', (pid,))
            cur.execute('UPDATE addresses SET "createdBy" = NULL WHERE "createdBy" = %s', (pid,))
            # Only the first user's sessions stay behind: the others were logged out first.
            if pid != victims[0]:
                cur.execute('DELETE FROM sessions WHERE "userId" = %s', (pid,))
            cur.execute("DELETE FROM profiles WHERE id = %s", (pid,))
            _audit(cur, "success", pid)
    check = next(c for c in load_checks() if c.name == "deletion_completeness_audit")
    conn = connect(app_dsn)
    try:
        result = run_check(conn, check)
    finally:
        conn.close()
    assert (result.ok, result.audited, result.failures) == (True, 3, 1)
    assert result.samples == [f"{victims[0]}: sessions"]


def test_completeness_sample_size_is_a_parameter(app_dsn: str) -> None:
    seed_violations(app_dsn)
    raw = yaml.safe_load(DEFAULT_CHECKS_PATH.read_text())
    entry = next(c for c in raw["checks"] if c["name"] == "deletion_completeness_audit")
    entry["params"]["sample_size"] = 2
    (check,) = parse_checks({"checks": [entry]})
    conn = connect(app_dsn)
    try:
        results = [run_check(conn, check) for _ in range(3)]
    finally:
        conn.close()
    assert [r.audited for r in results] == [2, 2, 2]


def test_check_integrity_json_report_and_exit_1(
    app_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_violations(app_dsn)
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn, "--format", "json")
    report = json.loads(out)
    assert rc == 1
    assert set(report) == {
        "timestamp",
        "status",
        "severity",
        "total_issues",
        "counts",
        "thresholds",
        "summary",
        "checks",
        "errors",
        "recommendations",
    }
    assert report["status"] == "FAILED"
    assert report["total_issues"] == sum(EXPECTED.values())
    assert report["severity"] == "CRITICAL"
    assert report["thresholds"] == {"warning_issues": 5, "critical_issues": 10}  # from config
    assert report["errors"] == []
    assert report["counts"] == {
        "ok": 0,
        "violations": len(EXPECTED),
        "not_applicable": 0,
        "error": 0,
    }
    assert set(report["summary"]) == set(CATEGORIES)
    fk = report["summary"]["foreign_key"]
    assert fk["issues"] == sum(v for k, v in EXPECTED.items() if k.startswith("orphaned_"))
    sessions = next(c for c in fk["checks"] if c["name"] == "orphaned_sessions")
    assert sessions["violations"] == 3 and len(sessions["samples"]) == 3
    by_name = {c["name"]: c for c in report["checks"]}
    assert {n: c["violations"] for n, c in by_name.items()} == EXPECTED
    assert by_name["deletion_completeness_audit"]["audited"] == 5
    # critical findings come first, one recommendation per failing check
    assert len(report["recommendations"]) == len(EXPECTED)
    n_critical = sum(c.severity == "critical" for c in load_checks())
    assert all(" critical): " in r for r in report["recommendations"][:n_critical])
    assert not any(" critical): " in r for r in report["recommendations"][n_critical:])


def test_check_integrity_text_report_and_thresholds(
    app_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_clean(app_dsn)
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        for i in range(6):  # 6 issues: above the warning level (5), below critical (10)
            conn.execute("INSERT INTO profiles (email, type) VALUES (%s, 'BOSS')", (f"b{i}@x",))
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn)
    assert rc == 1
    assert "Status: FAILED  Severity: WARNING  Total issues: 6" in out
    assert "invalid_user_types [warning]: 6" in out
    rc, out, _ = _check_integrity(
        capsys, "--dsn", app_dsn, "--format", "json", "--critical-issues", "6"
    )
    assert (rc, json.loads(out)["severity"]) == (1, "CRITICAL")


def test_check_integrity_clean_exit_0(app_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed_clean(app_dsn)
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn, "--format", "json")
    report = json.loads(out)
    assert rc == 0
    assert (report["status"], report["severity"], report["total_issues"]) == ("PASSED", "OK", 0)
    assert report["counts"] == {"ok": 20, "violations": 0, "not_applicable": 0, "error": 0}
    assert report["recommendations"] == []
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn)
    assert rc == 0
    assert "Status: PASSED  Severity: OK  Total issues: 0\nChecks: 20: 20 checks ok\n" in out
    assert "foreign_key: 0 issue(s), 7 checks ok\n" in out


def test_check_integrity_broken_check_exit_2_when_nothing_found(
    app_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "checks.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "checks": [
                    {
                        "name": "fine",
                        "category": "consistency",
                        "severity": "info",
                        "tables": ["profiles"],
                        "sql": "SELECT count(*) FROM profiles",
                        "interval": 60,
                        "timeout": 5,
                    },
                    {
                        "name": "broken",
                        "category": "consistency",
                        "severity": "info",
                        "tables": [],
                        "sql": "SELECT count(*) FROM no_such_table",
                        "interval": 60,
                        "timeout": 5,
                    },
                ]
            }
        )
    )
    rc, out, _ = _check_integrity(
        capsys, "--dsn", app_dsn, "--checks", str(path), "--format", "json"
    )
    report = json.loads(out)
    assert rc == 2
    # Nothing found, but not everything looked at: neither PASSED nor an "OK" severity.
    assert (report["status"], report["severity"]) == ("INCOMPLETE", "UNKNOWN")
    assert report["total_issues"] == 0
    assert report["counts"] == {"ok": 1, "violations": 0, "not_applicable": 0, "error": 1}
    assert report["summary"]["consistency"]["counts"]["error"] == 1
    assert [e["check"] for e in report["errors"]] == ["broken"]
    assert "no_such_table" in report["errors"][0]["error"]
    assert "`tables` list" in report["errors"][0]["error"]  # the hint for an unlisted table
    rc, out, _ = _check_integrity(capsys, "--dsn", app_dsn, "--checks", str(path))
    assert rc == 2
    assert "Status: INCOMPLETE  Severity: UNKNOWN  Total issues: 0" in out
    assert "consistency: 0 issue(s), 1 checks ok, 1 failed to run\n" in out
    assert "  - broken [info]: failed to run" in out


def test_check_only_default_file_is_valid(
    app_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Against the reference schema, every default check is also accepted by PostgreSQL.
    assert main(["integrity-exporter", "--check-only", "--dsn", app_dsn]) == 0
    out = capsys.readouterr().out
    assert f"{len(EXPECTED)} checks valid" in out and "database accepted" in out
    # No DSN: never "N checks valid" for a database nobody looked at; --file-only says so.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["integrity-exporter", "--check-only"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "--dsn: required" in err
    assert main(["integrity-exporter", "--check-only", "--file-only"]) == 0
    assert "database was not contacted" in capsys.readouterr().out
    assert main(["integrity-exporter", "--file-only"]) == 2
    assert "--file-only: only with --check-only" in capsys.readouterr().err


def test_checks_run_read_only(app_dsn: str) -> None:
    """A check that tries to write fails as an SQL error and changes nothing."""
    seed_clean(app_dsn)
    (check,) = parse_checks(
        {
            "checks": [
                {
                    **_GOOD,
                    "sql": "WITH d AS (DELETE FROM profiles RETURNING 1) SELECT count(*) FROM d",
                }
            ]
        }
    )
    conn = connect(app_dsn)
    try:
        result = run_check(conn, check)
    finally:
        conn.close()
    assert (result.ok, result.error_kind) == (False, "sql")
    # Refused either by READ ONLY or, inside the runner's LIMIT wrapper, by the parser.
    assert "ReadOnlySqlTransaction" in (result.error or "") or "data-modifying" in (
        result.error or ""
    )
    with psycopg.connect(app_dsn) as check_conn:
        assert check_conn.execute("SELECT count(*) FROM profiles").fetchone()[0] == 5


def test_reference_schema_is_idempotent_and_indexes_every_foreign_key(app_dsn: str) -> None:
    apply_sql_file(app_dsn, schema_path("reference_app.sql"))  # second time: no error
    with psycopg.connect(app_dsn) as conn:
        fks = conn.execute(
            "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, "
            "c.confdeltype, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid "
            "AND i.indkey[0] = c.conkey[1]) FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] WHERE c.contype = 'f'"
        ).fetchall()
    # Every foreign key the default missing_foreign_keys check expects exists, with the delete
    # action of the original application, and has an index led by its column.
    actions = {f"{t}.{col} -> {ref}": act for t, col, ref, act, _ in fks}
    expected = next(c for c in load_checks() if c.name == "missing_foreign_keys")
    assert set(expected.params["expected"]) <= set(actions)
    assert actions["sessions.userId -> profiles"] == "c"  # cascade
    assert actions["user_audits.performedBy -> profiles"] == "n"  # set null
    assert actions["dispatches.driverId -> profiles"] == "a"  # no action: manual clean-up
    assert actions["file_uploads.userId -> profiles"] == "a"
    assert actions["addresses.createdBy -> profiles"] == "a"
    assert [f"{t}.{col}" for t, col, _, _, indexed in fks if not indexed] == []
