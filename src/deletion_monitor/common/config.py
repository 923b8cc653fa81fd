"""Load the one threshold config (config/config.libsonnet) with the spec's environment overrides.

Everything that needs a threshold (rule rendering, dashboards, reports, the watch console) calls
load_config(); jsonnet entry points receive the same object as their `config` top-level argument.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import _jsonnet

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_PATH = REPO_ROOT / "config" / "config.libsonnet"


class ConfigError(ValueError):
    """A config value or an environment override is invalid; the message names the field."""


def _positive_number(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {raw!r}")
    return value


def env_overrides(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Translate the spec's environment variables into a merge patch for `_config`.

    ERROR_RATE_THRESHOLD  percent; moves the 1 % error-rate level: the post-deployment critical
                          threshold and the steady-state warning threshold.
    RESPONSE_TIME_THRESHOLD  milliseconds; moves the p95 latency warning level (default 5 s).
    CHECK_INTERVAL        seconds; the rule evaluation interval and the watch refresh.
    TIME_COMPRESSION      divide every rendered duration by this factor (demo and e2e only).
    ALERT_EMAIL           address of the Alertmanager email digest (not a secret).
    ALERTMANAGER_SECRETS_DIR  directory of the Alertmanager secret files (/run/secrets in Docker).
    """
    env = os.environ if env is None else env
    patch: dict[str, Any] = {}
    if (pct := _positive_number(env, "ERROR_RATE_THRESHOLD")) is not None:
        if pct >= 100:
            raise ConfigError(f"ERROR_RATE_THRESHOLD: a percentage below 100, got {pct:g}")
        ratio = pct / 100
        patch["errorRate"] = {"warning": ratio}
        patch["postDeploy"] = {"errorRateCritical": ratio}
    if (ms := _positive_number(env, "RESPONSE_TIME_THRESHOLD")) is not None:
        patch["latency"] = {"warning": ms / 1000}
    if (interval := _positive_number(env, "CHECK_INTERVAL")) is not None:
        patch["evaluationInterval"] = int(interval)
    if (factor := _positive_number(env, "TIME_COMPRESSION")) is not None:
        patch["timeCompression"] = factor
    # Alertmanager settings (addresses and paths, never secrets: those stay in *_file files).
    if email := env.get("ALERT_EMAIL"):
        if "@" not in email or any(c.isspace() for c in email):
            raise ConfigError(f"ALERT_EMAIL: expected an email address, got {email!r}")
        patch.setdefault("alertmanager", {})["email"] = {"to": email}
    if secrets_dir := env.get("ALERTMANAGER_SECRETS_DIR"):
        if not secrets_dir.startswith("/"):
            raise ConfigError(
                f"ALERTMANAGER_SECRETS_DIR: expected an absolute path, got {secrets_dir!r}"
            )
        patch.setdefault("alertmanager", {})["secretsDir"] = secrets_dir.rstrip("/") or "/"
    return patch


def load_config(
    env: Mapping[str, str] | None = None, path: Path | str | None = None
) -> dict[str, Any]:
    """Return the evaluated `_config` object with environment overrides applied."""
    path = Path(path or os.environ.get("DELETION_MONITOR_CONFIG") or CONFIG_PATH)
    if not path.is_file():
        raise ConfigError(f"config: file not found: {path}")
    patch = env_overrides(env)
    snippet = (
        f"std.mergePatch((import {json.dumps(str(path.resolve()))})._config, "
        f"std.parseJson(std.extVar('overrides')))"
    )
    try:
        text = _jsonnet.evaluate_snippet(
            "load_config", snippet, ext_vars={"overrides": json.dumps(patch)}
        )
    except RuntimeError as exc:
        raise ConfigError(f"config: {str(exc).splitlines()[0]}") from None
    return json.loads(text)


def evaluate_jsonnet(entry: Path | str, config: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a jsonnet entry point `function(config) ...` with the loaded config."""
    cfg = load_config() if config is None else config
    text = _jsonnet.evaluate_file(
        str(entry),
        tla_codes={"config": json.dumps(cfg)},
        jpathdir=[str(REPO_ROOT)],
    )
    return json.loads(text)
