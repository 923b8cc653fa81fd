"""Integrity checks as data: load a checks YAML file and validate it strictly.

A mistake in the file (a typo in a key, a negative timeout, a %(param)s the check does not
define, a `tables` entry the SQL never names) is reported as one line naming the field, before
anything touches the database, so that `integrity-exporter --check-only` in CI catches it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deletion_monitor.integrity.sqltext import SqlShapeError, single_query

DEFAULT_CHECKS_PATH = Path(__file__).resolve().parent / "default_checks.yml"

CATEGORIES = (
    "foreign_key",
    "cascade",
    "manual_cleanup",
    "audit_trail",
    "consistency",
    "security",
    "schema",
)
SEVERITIES = ("critical", "warning", "info")
KINDS = ("count", "completeness")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# `tables` is required too, but checked last: a file written before it existed then reports its
# other mistakes first, and the missing `tables` once they are fixed.
_REQUIRED = ("name", "category", "severity", "sql", "interval", "timeout")
_OPTIONAL = ("tables", "kind", "sample_sql", "params", "description", "recommendation", "max_rows")
_TOP_LEVEL = ("checks",)

# Upper bounds, so that a typo (or .inf / 1e309) fails at load instead of a check that never
# runs. An hour is already far longer than a check may hold its snapshot (it holds back vacuum),
# and a day between runs is far beyond integrity.maxResultAge (the stale alert fires first).
MAX_TIMEOUT = 3600.0
MAX_INTERVAL = 86400.0
# kind completeness: rows read per run at most (the rest is counted as truncated, never loaded).
DEFAULT_MAX_ROWS = 10_000
MAX_MAX_ROWS = 1_000_000
ParamValue = str | int | float | bool | list[str | int | float | bool]
# A `tables` entry: a relation name as the catalog spells it (case-sensitive, never quoted),
# optionally schema-qualified. Resolved like an identifier in the check's SQL: on the search_path.
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class CheckConfigError(ValueError):
    """The checks file is invalid; the message is one line naming the file and the field."""


@dataclass(frozen=True)
class Check:
    """One integrity check. `params` are sent as bind parameters, never formatted into SQL."""

    name: str
    category: str
    severity: str
    sql: str
    interval: float
    timeout: float
    kind: str = "count"
    sample_sql: str | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    description: str = ""
    recommendation: str = ""
    max_rows: int = DEFAULT_MAX_ROWS
    # The application tables the check reads. When one does not exist the check is not
    # applicable (its own state, neither a finding nor an error). Empty: always applicable.
    tables: tuple[str, ...] = ()

    def query_params(self) -> dict[str, ParamValue] | None:
        # None when the check has no params: then psycopg leaves a literal % alone, so checks
        # without params may use LIKE 'x%' without doubling the %.
        return dict(self.params) if self.params else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_check(raw: object, where: str, seen: set[str]) -> Check:
    if not isinstance(raw, dict):
        raise CheckConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name})"
    for key in raw:
        if key not in _REQUIRED and key not in _OPTIONAL:
            allowed = ", ".join(_REQUIRED + _OPTIONAL)
            raise CheckConfigError(f"{where}.{key}: unknown field (allowed: {allowed})")
    for key in _REQUIRED:
        if key not in raw or raw[key] is None:
            raise CheckConfigError(f"{where}.{key}: required field missing")

    if not isinstance(name, str) or not _NAME.match(name):
        raise CheckConfigError(f"{where}.name: must be snake_case ([a-z][a-z0-9_]*), got {name!r}")
    if name in seen:
        raise CheckConfigError(f"{where}.name: duplicate check name {name!r}")
    for key, choices in (("category", CATEGORIES), ("severity", SEVERITIES)):
        if raw[key] not in choices:
            raise CheckConfigError(
                f"{where}.{key}: must be one of {', '.join(choices)}, got {raw[key]!r}"
            )
    kind = raw.get("kind", "count")
    if kind not in KINDS:
        raise CheckConfigError(f"{where}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    for key, most in (("interval", MAX_INTERVAL), ("timeout", MAX_TIMEOUT)):
        # `not 0 < x` rather than `x <= 0`: NaN compares false with everything and would pass.
        value = raw[key]
        if not _is_number(value) or not math.isfinite(value) or not 0 < value <= most:
            raise CheckConfigError(
                f"{where}.{key}: must be a finite number of seconds, greater than 0 and at most "
                f"{most:g}, got {value!r}"
            )
    # A run longer than the interval would make runs queue up behind each other.
    if raw["timeout"] > raw["interval"]:
        raise CheckConfigError(
            f"{where}.timeout: must not exceed interval ({raw['interval']}), got {raw['timeout']}"
        )
    for key in ("sql", "sample_sql", "description", "recommendation"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise CheckConfigError(f"{where}.{key}: must be a non-empty string")
    for key in ("sql", "sample_sql"):
        if key in raw:
            try:
                single_query(raw[key])
            except SqlShapeError as exc:
                raise CheckConfigError(f"{where}.{key}: {exc}") from None
    max_rows = raw.get("max_rows", DEFAULT_MAX_ROWS)
    if "max_rows" in raw and kind != "completeness":
        raise CheckConfigError(f"{where}.max_rows: only used by kind completeness")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int):
        raise CheckConfigError(f"{where}.max_rows: must be a whole number, got {max_rows!r}")
    if not 1 <= max_rows <= MAX_MAX_ROWS:
        raise CheckConfigError(
            f"{where}.max_rows: must be between 1 and {MAX_MAX_ROWS}, got {max_rows!r}"
        )

    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise CheckConfigError(f"{where}.params: expected a mapping of name to value")
    for pname, value in params.items():
        if not isinstance(pname, str) or not re.match(r"^\w+$", pname):
            raise CheckConfigError(f"{where}.params.{pname}: parameter names must be identifiers")
        scalar = (str, int, float, bool)
        ok = isinstance(value, scalar) or (
            isinstance(value, list) and value and all(isinstance(v, scalar) for v in value)
        )
        if not ok:
            raise CheckConfigError(
                f"{where}.params.{pname}: must be a scalar or a non-empty list of scalars"
            )
    for key in ("sql", "sample_sql"):
        for placeholder in _PLACEHOLDER.findall(raw.get(key) or ""):
            if placeholder not in params:
                raise CheckConfigError(
                    f"{where}.{key}: uses %({placeholder})s but params has no {placeholder!r}"
                )
    if kind == "completeness" and "sample_sql" in raw:
        raise CheckConfigError(
            f"{where}.sample_sql: not used by kind completeness (its rows are the samples)"
        )
    tables = _validate_tables(raw, where, params)
    seen.add(name)
    return Check(
        name=name,
        category=raw["category"],
        severity=raw["severity"],
        sql=raw["sql"],
        interval=float(raw["interval"]),
        timeout=float(raw["timeout"]),
        kind=kind,
        sample_sql=raw.get("sample_sql"),
        params=dict(params),
        description=" ".join(str(raw.get("description", "")).split()),
        recommendation=" ".join(str(raw.get("recommendation", "")).split()),
        max_rows=max_rows,
        tables=tables,
    )


def _named_in(table: str, text: str) -> bool:
    """Whether `text` names `table` as an identifier: "Name" quoted, or unquoted in any letter
    case when the name is lower case (PostgreSQL folds unquoted names to lower case)."""
    if f'"{table}"' in text:
        return True
    return table == table.lower() and bool(
        re.search(rf"(?<![\w$\"]){re.escape(table)}(?![\w$\"])", text, re.IGNORECASE)
    )


def _validate_tables(raw: dict[str, Any], where: str, params: dict[str, Any]) -> tuple[str, ...]:
    if "tables" not in raw or raw["tables"] is None:
        raise CheckConfigError(
            f"{where}.tables: required field missing (the tables the check reads, [] for none)"
        )
    tables = raw["tables"]
    if not isinstance(tables, list):
        raise CheckConfigError(f"{where}.tables: expected a list of table names, [] for none")
    values = [v for p in params.values() for v in (p if isinstance(p, list) else [p])]
    texts = [raw["sql"], raw.get("sample_sql") or "", *map(str, values)]
    for i, table in enumerate(tables):
        if not isinstance(table, str) or not _TABLE.match(table):
            raise CheckConfigError(
                f"{where}.tables[{i}]: must be a table name, optionally schema-qualified "
                f"(letters, digits, _ and $; unquoted), got {table!r}"
            )
        if table in tables[:i]:
            raise CheckConfigError(f"{where}.tables[{i}]: duplicate table {table!r}")
        # A typo here would make the check "not applicable" forever instead of failing: every
        # listed table must be named by the SQL (or by a parameter, as missing_foreign_keys'
        # expected keys name theirs).
        bare = table.rpartition(".")[2]
        if not any(_named_in(bare, text) for text in texts):
            raise CheckConfigError(
                f"{where}.tables[{i}]: {table!r} is not named in sql, sample_sql or params"
            )
    return tuple(tables)


def parse_checks(data: object, source: str = "checks") -> list[Check]:
    """Validate an already-parsed YAML document; raise CheckConfigError on the first problem."""
    if not isinstance(data, dict):
        raise CheckConfigError(f"{source}: expected a mapping with a 'checks' list")
    for key in data:
        if key not in _TOP_LEVEL:
            raise CheckConfigError(f"{source}: {key}: unknown top-level field (allowed: checks)")
    checks_raw = data.get("checks")
    if not isinstance(checks_raw, list) or not checks_raw:
        raise CheckConfigError(f"{source}: checks: must be a non-empty list")
    seen: set[str] = set()
    return [
        _validate_check(raw, f"{source}: checks[{i}]", seen) for i, raw in enumerate(checks_raw)
    ]


def load_checks(path: Path | str | None = None) -> list[Check]:
    """Read and validate a checks file (default: the packaged checks/default.yml)."""
    path = Path(path) if path else DEFAULT_CHECKS_PATH
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CheckConfigError(f"{path}:{at} invalid YAML: {problem}") from None
    return parse_checks(data, str(path))
