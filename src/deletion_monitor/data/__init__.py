"""The files the product ships as package data: the threshold config and the schema SQL.

They are read with importlib.resources, so an installed wheel finds them as a checkout does;
`deletion-monitor schema NAME` prints a schema file for the application's owners to apply.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

_ROOT = files(__name__)


def default_config_path() -> Path:
    """The shipped config.libsonnet, as a file path jsonnet can import (wheels are unzipped)."""
    with as_file(_ROOT / "config.libsonnet") as path:
        return Path(path)


def schema_names() -> list[str]:
    """Names of the shipped schema files, without `.sql`."""
    return sorted(
        entry.name.removesuffix(".sql")
        for entry in (_ROOT / "schema").iterdir()
        if entry.name.endswith(".sql")
    )


def schema_file(name: str) -> Traversable:
    """The shipped schema file `name` (`deletion_audit` or `deletion_audit.sql`)."""
    stem = name.removesuffix(".sql")
    if stem not in schema_names():
        raise KeyError(f"no schema file {stem!r}; shipped: {', '.join(schema_names())}")
    return _ROOT / "schema" / f"{stem}.sql"


def schema_sql(name: str) -> str:
    """The text of the shipped schema file `name`."""
    return schema_file(name).read_text(encoding="utf-8")


def schema_path(name: str) -> Path:
    """The shipped schema file `name` as a path (for psql -f and file-based helpers)."""
    with as_file(schema_file(name)) as path:
        return Path(path)
