"""Checks files for `integrity-exporter --check-only` and `check-integrity`, run in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deletion_monitor.cli import main

# A valid check of each of two categories: the guards' cases patch BASE, the schema cases _GOOD.
BASE: dict[str, Any] = {
    "name": "ok_check",
    "category": "consistency",
    "severity": "warning",
    "tables": [],
    "sql": "SELECT 0",
    "interval": 60,
    "timeout": 10,
}
_GOOD = {
    "name": "ok_check",
    "category": "foreign_key",
    "severity": "warning",
    "tables": [],
    "sql": "SELECT 0",
    "interval": 60,
    "timeout": 10,
}
TWO_MILLION = "SELECT g::text, ARRAY['sessions'] FROM generate_series(1, 2000000) g"


def _file(tmp_path: Path, *checks: dict[str, Any]) -> Path:
    path = tmp_path / "checks.yml"
    path.write_text(yaml.safe_dump({"checks": list(checks)}))
    return path


def _check_only(tmp_path: Path, capsys, *checks: dict[str, Any], argv=()) -> tuple[int, str, str]:
    path = _file(tmp_path, *checks)
    try:
        rc = main(["integrity-exporter", "--check-only", "--checks", str(path), *argv])
    except SystemExit as exc:  # argparse errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def _check_integrity(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["check-integrity", *argv])
    out, err = capsys.readouterr()
    return rc, out, err
