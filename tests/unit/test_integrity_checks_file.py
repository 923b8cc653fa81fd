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
from deletion_monitor.integrity.checks import Check, CheckConfigError, load_checks, parse_checks
from deletion_monitor.integrity.report import build_report, exit_code, render_text, severity_level
from deletion_monitor.integrity.runner import CheckResult
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
        ({"tables": None}, "checks[0] (ok_check).tables: required field missing"),
        ({"tables": "profiles"}, "checks[0] (ok_check).tables: expected a list"),
        ({"tables": ['"profiles"']}, "checks[0] (ok_check).tables[0]: must be a table name"),
        ({"tables": ["a.b.c"]}, "checks[0] (ok_check).tables[0]: must be a table name"),
        ({"tables": [3]}, "checks[0] (ok_check).tables[0]: must be a table name"),
        (
            {"sql": "SELECT count(*) FROM profiles", "tables": ["profiles", "profiles"]},
            "checks[0] (ok_check).tables[1]: duplicate table 'profiles'",
        ),
        # A typo would make the check "not applicable" forever instead of failing loudly.
        (
            {"sql": "SELECT count(*) FROM sessions", "tables": ["sesions"]},
            "checks[0] (ok_check).tables[0]: 'sesions' is not named in sql, sample_sql or params",
        ),
        # An upper-case name is only that table when quoted; unquoted it folds to lower case.
        (
            {"sql": "SELECT count(*) FROM Users", "tables": ["Users"]},
            "checks[0] (ok_check).tables[0]: 'Users' is not named",
        ),
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


def test_tables_are_required_even_when_empty() -> None:
    no_tables = {k: v for k, v in _GOOD.items() if k != "tables"}
    with pytest.raises(CheckConfigError, match=r"\(ok_check\)\.tables: required field missing"):
        parse_checks({"checks": [no_tables]})
    (check,) = parse_checks({"checks": [_GOOD]})
    assert check.tables == ()


@pytest.mark.parametrize(
    ("sql", "tables", "params"),
    [
        ('SELECT count(*) FROM "Users"', ["Users"], {}),
        ("SELECT count(*) FROM PROFILES p", ["profiles"], {}),
        ("SELECT count(*) FROM app.profiles", ["app.profiles"], {}),
        ('SELECT count(*) FROM "profiles"', ["profiles"], {}),
        # The table is named by a parameter, as missing_foreign_keys names its keys' tables.
        ("SELECT count(*) FROM unnest(%(fks)s::text[])", ["profiles"], {"fks": ["a -> profiles"]}),
    ],
)
def test_tables_named_in_sql_or_params_are_accepted(
    sql: str, tables: list[str], params: dict
) -> None:
    (check,) = parse_checks({"checks": [{**_GOOD, "sql": sql, "tables": tables, "params": params}]})
    assert check.tables == tuple(tables)


def test_default_checks_list_their_tables() -> None:
    checks = {c.name: c for c in load_checks()}
    assert all(c.tables for c in checks.values())
    assert checks["orphaned_sessions"].tables == ("sessions", "profiles")
    assert checks["successful_self_deletions"].tables == ("deletion_audit",)
    # The catalog check needs the users table; keys on other missing tables are skipped in SQL.
    assert checks["missing_foreign_keys"].tables == ("profiles",)


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
    dead = f"postgresql://postgres:Sup3rSecretPw@127.0.0.1:{free_port()}/app"
    rc, out, err = _check_only(tmp_path, capsys, BASE, argv=("--dsn", dead))
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--dsn: cannot connect" in err
    assert "Sup3rSecretPw" not in err


def test_check_only_without_a_database_is_exit_2_unless_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's "20 checks valid" for a database nobody contacted: now only on request."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    rc, out, err = _check_only(tmp_path, capsys, BASE)
    assert rc == 2 and out == ""
    assert err.strip() == (
        "integrity-exporter: --dsn: required with --check-only (or set DATABASE_URL; "
        "--file-only validates the file alone)"
    )
    rc, out, err = _check_only(tmp_path, capsys, BASE, argv=("--file-only",))
    assert rc == 0 and err == ""
    assert "1 checks valid (file only" in out and "the database was not contacted" in out


def test_check_integrity_unreachable_db_exit_2_without_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = f"postgresql://postgres:Sup3rSecretPw@127.0.0.1:{free_port()}/app"
    rc, out, err = _check_integrity(capsys, "--dsn", dsn, "--format", "json")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err
    assert "Sup3rSecretPw" not in err


# --- the report: states, counts, status, severity, exit code (pure) ----------------------------
def _check(name: str, category: str = "foreign_key", severity: str = "critical") -> Check:
    return Check(name, category, severity, "SELECT 0", 60.0, 10.0, tables=("t",))


def _result(check: Check, state: str, violations: int = 0) -> CheckResult:
    result = CheckResult(check=check, ok=state != "error", duration=0.01, finished_at=0.0)
    if state == "violations":
        result.violations = violations
    elif state == "ok":
        result.violations = 0
    elif state == "not_applicable":
        result.missing_tables = ["t"]
    else:
        result.error, result.error_kind = "SyntaxError [42601]: boom", "sql"
    return result


def _report(*results: CheckResult) -> dict:
    return build_report(list(results), warning_issues=5, critical_issues=10)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        # 3 critical orphans, below the ladder's warning level: still CRITICAL (was "OK").
        ([("violations", "critical", 3), ("ok", "warning", 0)], ("FAILED", "CRITICAL", 1)),
        ([("violations", "warning", 1)], ("FAILED", "WARNING", 1)),
        ([("violations", "info", 2)], ("FAILED", "INFO", 1)),
        # The ladder raises, never lowers: 6 info issues are a WARNING, 10 a CRITICAL.
        ([("violations", "info", 6)], ("FAILED", "WARNING", 1)),
        ([("violations", "info", 10)], ("FAILED", "CRITICAL", 1)),
        # A finding wins over a check that failed to run (exit 1; the errors are listed).
        ([("violations", "warning", 1), ("error", "critical", 0)], ("FAILED", "WARNING", 1)),
        ([("ok", "critical", 0), ("error", "info", 0)], ("INCOMPLETE", "UNKNOWN", 2)),
        ([("not_applicable", "critical", 0)], ("INCOMPLETE", "UNKNOWN", 2)),
        ([("ok", "critical", 0), ("not_applicable", "critical", 0)], ("PASSED", "OK", 0)),
        ([("ok", "critical", 0)], ("PASSED", "OK", 0)),
    ],
)
def test_status_severity_and_exit_code_come_from_the_same_findings(
    results: list[tuple[str, str, int]], expected: tuple[str, str, int]
) -> None:
    report = _report(
        *(_result(_check(f"c{i}", severity=sev), st, n) for i, (st, sev, n) in enumerate(results))
    )
    assert (report["status"], report["severity"], exit_code(report)) == expected


def test_counts_per_category_include_the_checks_that_did_not_run() -> None:
    report = _report(
        _result(_check("a"), "ok"),
        _result(_check("b"), "ok"),
        _result(_check("c"), "ok"),
        _result(_check("d"), "not_applicable"),
        _result(_check("e"), "error"),
        _result(_check("f", "schema"), "not_applicable"),
        _result(_check("g", "schema"), "error"),
    )
    assert report["counts"] == {"ok": 3, "violations": 0, "not_applicable": 2, "error": 2}
    assert report["summary"]["foreign_key"]["issues"] == 0
    assert report["summary"]["schema"]["issues"] is None  # nothing ran: no count at all
    text = render_text(report)
    assert "Checks: 7: 3 checks ok, 2 not applicable, 2 failed to run\n" in text
    assert "foreign_key: 0 issue(s), 3 checks ok, 1 not applicable, 1 failed to run\n" in text
    assert "schema: no check ran, 0 checks ok, 1 not applicable, 1 failed to run\n" in text
    assert "  - d [critical]: not applicable (no table t)" in text
    assert "  - e [critical]: failed to run" in text
    assert "  - e: SyntaxError [42601]: boom" in text
