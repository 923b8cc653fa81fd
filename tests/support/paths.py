"""Where the repository's sources are, for tests that read them (schema SQL, config, docs)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "src" / "deletion_monitor" / "data" / "schema"
