"""Where the build-time tools find the checkout: they run from it (an editable install)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import _jsonnet

from deletion_monitor.common.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def evaluate_jsonnet(entry: Path | str, config: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a jsonnet entry point `function(config) ...` with the loaded config."""
    cfg = load_config() if config is None else config
    text = _jsonnet.evaluate_file(
        str(entry),
        tla_codes={"config": json.dumps(cfg)},
        jpathdir=[str(REPO_ROOT)],
    )
    return json.loads(text)
