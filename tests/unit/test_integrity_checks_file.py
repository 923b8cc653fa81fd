"""Checks files refused before any database is contacted, and the severity ladder: unknown or
bad fields name the field, absurd numbers and flags exit 2 with one line, SQL must be exactly one
query, max_rows is bounded; a DSN nothing listens on is a one-line `cannot connect`. The same
checks against a real PostgreSQL are tests/integration/test_integrity.py and
test_integrity_guards.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.checks import _GOOD, BASE, TWO_MILLION, _check_integrity, _check_only

from deletion_monitor.cli import main
from deletion_monitor.integrity.checks import CheckConfigError, load_checks, parse_checks
from deletion_monitor.integrity.report import severity_level
from deletion_monitor_demo.services import free_port


# --- the checks file and the severity ladder ---------------------------------------------------
def test_severity_ladder() -> None:
    assert [severity_level(n, 5, 10) for n in (0, 5, 6, 9, 10, 300)] == [
        "OK",
        "OK",
        "WARNING",
        "WARNING",
        "CRITICAL",
        "CRITICAL",
    ]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"intervall": 5}, "checks[0] (ok_check).intervall: unknown field"),
        ({"category": "orphans"}, "checks[0] (ok_check).category: must be one of"),
        ({"severity": "high"}, "checks[0] (ok_check).severity: must be one of"),
        ({"name": "Bad-Name"}, "checks[0] (Bad-Name).name: must be snake_case"),
        ({"timeout": -1}, "checks[0] (ok_check).timeout: must be a finite number"),
        ({"timeout": 120}, "checks[0] (ok_check).timeout: must not exceed interval"),
        ({"interval": "5m"}, "checks[0] (ok_check).interval: must be a finite number"),
        ({"sql": None}, "checks[0] (ok_check).sql: required field missing"),
        ({"sql": "SELECT %(n)s"}, "checks[0] (ok_check).sql: uses %(n)s but params has no 'n'"),
        ({"kind": "list"}, "checks[0] (ok_check).kind: must be one of"),
        ({"params": {"n": {"a": 1}}}, "checks[0] (ok_check).params.n: must be a scalar"),
    ],
)
def test_check_only_bad_file_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], patch: dict, expected: str
) -> None:
    # A bad file fails before any database is contacted, with or without a DSN.
    path = tmp_path / "checks.yml"
    path.write_text(yaml.safe_dump({"checks": [{**_GOOD, **patch}]}))
    rc = main(["integrity-exporter", "--check-only", "--checks", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert expected in err and str(path) in err


def test_check_only_duplicate_names_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(CheckConfigError, match=r"checks\[1\] \(ok_check\)\.name: duplicate"):
        parse_checks({"checks": [_GOOD, _GOOD]})
    with pytest.raises(CheckConfigError, match="unknown top-level field"):
        parse_checks({"checks": [_GOOD], "check": []})
    bad = tmp_path / "bad.yml"
    bad.write_text("checks:\n  - name: x\n   category: [\n")
    with pytest.raises(CheckConfigError, match="invalid YAML") as info:
        load_checks(bad)
    assert "\n" not in str(info.value)


# --- absurd numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["interval", "timeout"])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e309", "0", "1e9", "-5"])
def test_non_finite_or_absurd_seconds_in_yaml_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, field: str, value: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    path = tmp_path / "checks.yml"
    other = "interval: 86400" if field == "timeout" else "timeout: 1"
    path.write_text(
        "checks:\n  - {name: ok_check, category: consistency, severity: info, sql: SELECT 0, "
        f"{field}: {value}, {other}}}\n"
    )
    rc = main(["integrity-exporter", "--check-only", "--checks", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert f"checks[0] (ok_check).{field}: must be a finite number of seconds" in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--health-interval", "nan"),
        ("--health-interval", "inf"),
        ("--health-interval", "0"),
        ("--health-interval", "-1"),
        ("--health-interval", "1e9"),
        ("--pool-size", "0"),
        ("--pool-size", "1000"),
        ("--pool-size", "two"),
    ],
)
def test_absurd_flags_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, flag: str, value: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, _, err = _check_only(tmp_path, capsys, BASE, argv=(flag, value))
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and flag in err and "Traceback" not in err


# --- exactly one statement ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT; DELETE FROM profiles; SELECT 0",
        "SELECT 0; SELECT 1",
        "COMMIT; SELECT pg_sleep(30)",
        "SELECT 1 /* ; */ ; SET statement_timeout = 0",
        "DELETE FROM profiles",
        "-- only a comment",
    ],
)
def test_multi_statement_or_non_query_sql_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, sql: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, out, err = _check_only(tmp_path, capsys, {**BASE, "sql": sql})
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "checks[0] (ok_check).sql: " in err


def test_semicolons_inside_literals_comments_and_dollar_quotes_are_one_statement() -> None:
    for sql in (
        "SELECT count(*) FROM pg_class WHERE relname <> ';';",
        "SELECT length($$a;b$$) - 3 -- trailing; comment",
        'SELECT 0 AS ";" /* ; */',
        "WITH x AS (SELECT E'\\';' AS v) SELECT count(*) - 1 FROM x",
    ):
        (check,) = parse_checks({"checks": [{**BASE, "sql": sql}]})
        assert check.sql == sql


# --- millions of rows: max_rows ----------------------------------------------------------------
def test_max_rows_is_validated(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for extra, word in (
        ({"max_rows": 0}, "between 1 and"),
        ({"max_rows": 10**9}, "between 1 and"),
        ({"max_rows": "lots"}, "whole number"),
    ):
        check = {**BASE, "kind": "completeness", "sql": TWO_MILLION, **extra}
        rc, _, err = _check_only(tmp_path, capsys, check)
        assert rc == 2 and "(ok_check).max_rows: " in err and word in err
    rc, _, err = _check_only(tmp_path, capsys, {**BASE, "max_rows": 5})
    assert rc == 2 and "only used by kind completeness" in err


# --- a database nothing listens for ------------------------------------------------------------
def test_check_only_connects_and_fails_on_a_dead_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    rc, out, err = _check_only(tmp_path, capsys, BASE, argv=("--dsn", dead))
    assert rc == 2 and "valid" not in out
    assert len(err.strip().splitlines()) == 1 and "--dsn: cannot connect" in err


def test_check_integrity_unreachable_db_exit_2_without_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = f"postgresql://postgres:Sup3rSecretPw@127.0.0.1:{free_port()}/app"
    rc, out, err = _check_integrity(capsys, "--dsn", dsn, "--format", "json")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err
    assert "Sup3rSecretPw" not in err
