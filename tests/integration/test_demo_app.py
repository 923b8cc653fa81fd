"""The demo application on a real PostgreSQL: business rules, cascade and clean-up, audit rows.

The end-to-end tests use the app as a black box; these pin down what it promises: one audit row
per call in the contract's format (success in the deletion's transaction, failure in its own),
the authorization rules, a deletion that leaves no orphans (and a skipped clean-up that does),
real timeouts and real database errors classified as the audit contract says.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from deletion_monitor_demo.app.faults import Faults
from deletion_monitor_demo.app.server import DemoApp
from deletion_monitor_demo.app.service import DeletionService
from deletion_monitor_demo.load import Seeder

SECRET = "test-secret"
ORPHANS = {
    "dispatches": "SELECT count(*) FROM dispatches d WHERE NOT EXISTS (SELECT 1 FROM profiles p "
    'WHERE p.id = d."driverId") AND d."driverId" IS NOT NULL OR NOT EXISTS (SELECT 1 FROM '
    'profiles p WHERE p.id = d."userId") AND d."userId" IS NOT NULL',
    "file_uploads": 'SELECT count(*) FROM file_uploads f WHERE f."userId" IS NOT NULL AND NOT '
    'EXISTS (SELECT 1 FROM profiles p WHERE p.id = f."userId")',
    "addresses": 'SELECT count(*) FROM addresses a WHERE a."createdBy" IS NOT NULL AND NOT '
    'EXISTS (SELECT 1 FROM profiles p WHERE p.id = a."createdBy")',
}


@pytest.fixture
def service(app_dsn: str) -> Iterator[DeletionService]:
    svc = DeletionService(
        app_dsn, SECRET, Faults(256 * 1024 * 1024), statement_timeout=1.0, pool_min=1, pool_max=4
    )
    svc.open()
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def people(app_dsn: str) -> dict[str, list]:
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        seeder = Seeder(app_dsn, SECRET)
        actors = seeder.actors(conn)
        users = seeder.users(conn, 6)
    return {"actors": actors, "users": users}


def _bearer(actor) -> str:
    return f"Bearer {actor.token}"


def _audit(dsn: str) -> list[dict]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("SELECT * FROM deletion_audit ORDER BY id").fetchall()


def _count(dsn: str, sql: str, *params: object) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params or None).fetchone()[0]


def test_admin_deletion_cascades_cleans_up_and_audits(service, people, app_dsn) -> None:
    admin = people["actors"]["ADMIN"][0]
    for target, _kind in people["users"]:
        before = {
            t: _count(app_dsn, f'SELECT count(*) FROM {t} WHERE "userId" = %s', target)
            for t in ("accounts", "sessions", "user_audits", "catering_requests")
        }
        outcome = service.delete_user(_bearer(admin), target)
        assert outcome.status == 200, outcome.body
        assert _count(app_dsn, "SELECT count(*) FROM profiles WHERE id = %s", target) == 0
        # rows_deleted reports what the cascade really removed.
        for table, n in before.items():
            assert outcome.rows_deleted.get(table, 0) == n, (table, outcome.rows_deleted)
        assert outcome.rows_deleted["profiles"] == 1
    for table, sql in ORPHANS.items():
        assert _count(app_dsn, sql) == 0, f"orphaned {table} after a normal deletion"
    rows = _audit(app_dsn)
    assert len(rows) == len(people["users"])
    for row, (target, kind) in zip(rows, people["users"], strict=True):
        assert row["outcome"] == "success" and row["error_type"] is None
        assert row["http_status"] == 200
        assert row["target_user_id"] == target and row["target_user_type"] == kind
        assert row["performed_by"] == admin.id and row["performed_by_type"] == "ADMIN"
        assert row["duration_seconds"] > 0 and row["app_version"] == "demo-1.0.0"
        assert isinstance(row["rows_deleted"], dict) and row["rows_deleted"]["profiles"] == 1


@pytest.mark.parametrize(
    ("case", "status", "error_type"),
    [
        ("no token", 401, "authorization"),
        ("forged token", 401, "authorization"),
        ("client token", 403, "authorization"),
        ("helpdesk token", 403, "authorization"),
        ("self deletion", 400, "business_logic"),
        ("super admin target", 403, "business_logic"),
        ("unknown user", 404, "not_found"),
    ],
)
def test_refusals_are_audited_in_their_own_transaction(
    service, people, app_dsn, case, status, error_type
) -> None:
    actors = people["actors"]
    admin = actors["ADMIN"][0]
    target = people["users"][0][0]
    header, victim = {
        "no token": (None, target),
        "forged token": (f"Bearer {uuid.uuid4()}.{'0' * 40}", target),
        "client token": (_bearer(actors["CLIENT"][0]), target),
        "helpdesk token": (_bearer(actors["HELPDESK"][0]), target),
        "self deletion": (_bearer(admin), admin.id),
        "super admin target": (_bearer(admin), actors["SUPER_ADMIN"][0].id),
        "unknown user": (_bearer(admin), str(uuid.uuid4())),
    }[case]
    outcome = service.delete_user(header, victim)
    assert (outcome.status, outcome.error_type) == (status, error_type)
    (row,) = _audit(app_dsn)
    assert (row["outcome"], row["error_type"], row["http_status"]) == (
        "failure",
        error_type,
        status,
    )
    assert row["rows_deleted"] is None
    # Nothing was deleted.
    assert _count(app_dsn, "SELECT count(*) FROM profiles WHERE id = %s", victim) == (
        0 if case == "unknown user" else 1
    )
    if case == "super admin target":
        assert row["target_user_type"] == "SUPER_ADMIN"


def test_database_error_rolls_back_and_is_audited(service, people, app_dsn) -> None:
    service.faults.update({"error_rate": 1.0})
    target, kind = people["users"][0]
    outcome = service.delete_user(_bearer(people["actors"]["ADMIN"][0]), target)
    assert (outcome.status, outcome.error_type) == (500, "database")
    assert _count(app_dsn, "SELECT count(*) FROM profiles WHERE id = %s", target) == 1
    (row,) = _audit(app_dsn)
    assert (row["outcome"], row["error_type"], row["target_user_type"]) == (
        "failure",
        "database",
        kind,
    )


def test_statement_timeout_is_a_timeout(service, people, app_dsn) -> None:
    service.faults.update({"timeout_rate": 1.0})
    target = people["users"][0][0]
    outcome = service.delete_user(_bearer(people["actors"]["ADMIN"][0]), target)
    assert (outcome.status, outcome.error_type) == (504, "timeout")
    assert 1.0 <= outcome.duration_seconds < 3.0  # the 1 s statement_timeout cut it
    assert _count(app_dsn, "SELECT count(*) FROM profiles WHERE id = %s", target) == 1
    assert _audit(app_dsn)[0]["error_type"] == "timeout"


def test_skipped_cleanup_leaves_the_orphans_the_integrity_checks_look_for(
    service, people, app_dsn
) -> None:
    service.faults.update({"skip_cleanup": True})
    admin = people["actors"]["ADMIN"][0]
    for target, _ in people["users"]:
        assert service.delete_user(_bearer(admin), target).status == 200
    orphans = {table: _count(app_dsn, sql) for table, sql in ORPHANS.items()}
    assert sum(orphans.values()) > 0, orphans
    # The cascading tables are still cleaned (only the manual clean-up was skipped).
    assert (
        _count(
            app_dsn,
            "SELECT count(*) FROM accounts a WHERE NOT EXISTS "
            '(SELECT 1 FROM profiles p WHERE p.id = a."userId")',
        )
        == 0
    )


def test_memory_leak_is_resident_and_released(service) -> None:
    faults = service.faults
    faults.update({"leak_bytes_per_request": 4 * 1024 * 1024})
    faults.leak(current_rss=0)
    faults.leak(current_rss=0)
    assert faults.leaked_bytes == 8 * 1024 * 1024
    # Never past the configured share of the limit.
    faults.leak(current_rss=faults.memory_limit_bytes)
    assert faults.leaked_bytes == 8 * 1024 * 1024
    faults.reset()
    assert faults.leaked_bytes == 0


def test_http_endpoint_metrics_and_admin(service, people) -> None:
    app = DemoApp(service, service.faults, admin_token="adm")
    httpd = app.make_server("127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def call(method: str, path: str, body: dict | None = None, headers: dict | None = None):
        req = urllib.request.Request(
            base + path,
            method=method,
            data=json.dumps(body).encode() if body else None,
            headers=headers or {},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    try:
        target = people["users"][0][0]
        admin = people["actors"]["ADMIN"][0]
        assert call("DELETE", f"/api/users/{target}")[0] == 401
        assert (
            call("DELETE", f"/api/users/{target}", headers={"Authorization": _bearer(admin)})[0]
            == 200
        )
        assert call("POST", "/admin/faults", {"error_rate": 1})[0] == 403  # no admin token
        status, body = call("POST", "/admin/faults", {"error_rate": 1}, {"X-Admin-Token": "adm"})
        assert status == 200 and json.loads(body)["error_rate"] == 1
        assert call("POST", "/admin/faults", {"bogus": 1}, {"X-Admin-Token": "adm"})[0] == 400
        status, metrics = call("GET", "/metrics")
        assert status == 200
        for name in (
            "process_resident_memory_bytes",
            "python_gc_collections_total",
            "deletion_app_memory_limit_bytes 2.68435456e+08",
            "deletion_app_db_pool_connections_in_use",
            "deletion_app_db_pool_connections_max 4.0",
            'http_requests_total{method="DELETE",route="/api/users/{id}",status="401"} 1.0',
            'http_requests_total{method="DELETE",route="/api/users/{id}",status="200"} 1.0',
        ):
            assert name in metrics, name
        # Bounded labels: no user id ever becomes a label value.
        assert target not in metrics and admin.id not in metrics
        assert call("GET", "/healthz")[0] == 200
    finally:
        httpd.shutdown()
        httpd.server_close()
        from prometheus_client import REGISTRY

        # The app registers on the default registry (process/GC collectors live there).
        REGISTRY.unregister(app.http_requests)
        for collector in list(REGISTRY._collector_to_names):
            if type(collector).__name__ == "_AppCollector":
                REGISTRY.unregister(collector)


def test_auth_bypass_fault_lets_anyone_delete(service, people, app_dsn) -> None:
    """The regression the blackbox probe exists for: without authentication an anonymous call
    deletes a user, and an unknown id answers 404 instead of 401."""
    service.faults.update({"auth_bypass": True})
    target, kind = people["users"][0]
    assert service.delete_user(None, target).status == 200
    assert service.delete_user("Bearer bogus", str(uuid.uuid4())).status == 404
    row = _audit(app_dsn)[0]
    assert (row["outcome"], row["performed_by"], row["target_user_type"]) == ("success", None, kind)


def test_probe_calls_on_the_reserved_id_stay_out_of_the_audit_log(service, app_dsn) -> None:
    """The blackbox probe's bogus-token DELETE is refused like any other (401) but is not a
    deletion attempt: no audit row (it would trip the security alert by itself), a counter."""
    from deletion_monitor_demo.app.service import PROBE_USER_ID

    outcome = service.delete_user("Bearer invalid-token-from-blackbox-probe", PROBE_USER_ID)
    assert outcome.status == 401
    assert _audit(app_dsn) == []
    assert service.probe_calls == {"401": 1}
    # Any other id is audited as usual.
    service.delete_user("Bearer invalid", str(uuid.uuid4()))
    assert len(_audit(app_dsn)) == 1
