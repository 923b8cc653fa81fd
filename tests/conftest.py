"""Shared fixtures: one throwaway PostgreSQL cluster per test session, a fresh database per test.

Nothing here depends on a system-wide PostgreSQL service: the cluster is initdb'd into a temp dir,
started on a free port on 127.0.0.1, and stopped when the session ends.

Every test is also marked with the folder it lives in (unit, integration, rules, e2e), so that
`-m unit` or `-m 'not e2e'` selects by kind wherever the files are given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO_ROOT / "src" / "deletion_monitor" / "data" / "schema"
TESTS_DIR = Path(__file__).resolve().parent
# Folder under tests/ -> marker (registered in pyproject.toml).
FOLDER_MARKERS = {"unit", "integration", "rules", "e2e"}
_db_counter = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS_DIR).parts[0]
        except ValueError:  # a test outside tests/
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    # Its own temp dir under /tmp: pytest's tmp_path parent is mode 0700 and owned by root, which
    # the `postgres` user (whom initdb needs when we run as root) could not enter.
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """DSN of a fresh, empty database for this test."""
    return pg_cluster.create_database(f"t{next(_db_counter)}")


@pytest.fixture
def audit_dsn(pg_dsn: str) -> str:
    """A fresh database holding the audit-log contract (deletion_audit.sql)."""
    apply_sql_file(pg_dsn, SCHEMA_DIR / "deletion_audit.sql")
    return pg_dsn


@pytest.fixture
def app_dsn(pg_dsn: str) -> str:
    """A fresh database holding the reference application and the audit log."""
    apply_sql_file(pg_dsn, SCHEMA_DIR / "reference_app.sql")
    apply_sql_file(pg_dsn, SCHEMA_DIR / "deletion_audit.sql")
    return pg_dsn
