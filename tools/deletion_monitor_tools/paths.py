"""Where the build-time tools find the checkout: they run from it (an editable install)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# go-jsonnet (package gojsonnet, no type stubs): the renders are jsonnet's hot path (see
# tools/pyproject.toml). The product keeps the C++ binding: its config errors are parsed in the
# C++ message format (deletion_monitor.common.config.jsonnet_error_line).
import _gojsonnet  # type: ignore[import-not-found]

from deletion_monitor.common.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def evaluate_jsonnet(entry: Path | str, config: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a jsonnet entry point `function(config) ...` with the loaded config."""
    cfg = load_config() if config is None else config
    text = _gojsonnet.evaluate_file(
        str(entry),
        tla_codes={"config": json.dumps(cfg)},
        jpathdir=[str(REPO_ROOT)],
    )
    return json.loads(text)
