"""Load the one threshold config (data/config.libsonnet) with environment overrides.

Everything that needs a threshold (rule rendering, dashboards, reports, the watch console) calls
load_config(); jsonnet entry points receive the same object as their `config` top-level argument.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import _jsonnet

from deletion_monitor.common.durations import parse_duration
from deletion_monitor.data import default_config_path

# The shipped config (package data); an SRE's own copy comes in by `--config` or CONFIG_ENV.
CONFIG_PATH = default_config_path()
CONFIG_ENV = "DELETION_MONITOR_CONFIG"


class ConfigError(ValueError):
    """A config value or an environment override is invalid; the message names the field."""


class ConfigFileNotFound(ConfigError):
    """The config file named by --config or DELETION_MONITOR_CONFIG does not exist."""


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
        if interval < 1:  # the rule evaluation interval is whole seconds: 0.5 would render 0s
            raise ConfigError(f"CHECK_INTERVAL: at least 1 second, got {interval:g}")
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
    """Return the evaluated `_config` object with environment overrides applied.

    The file is `path`, else $DELETION_MONITOR_CONFIG (`deletion-monitor --config` sets it), else
    the config shipped in the package (deletion_monitor/data/config.libsonnet). Raises ConfigError
    with a one-line message naming the field (or file:line of a jsonnet error) when the file
    does not evaluate, an override is invalid, or a value breaks the schema (validate_config):
    the file's own values with every check, the overridden result again without the ladder
    order (an override moves one level; see validate_config).
    """
    path = Path(path or os.environ.get(CONFIG_ENV) or CONFIG_PATH)
    if not path.is_file():
        raise ConfigFileNotFound(f"config: file not found: {path}")
    patch = env_overrides(env)
    evaluated = _evaluate(path)
    outside = [f for f in evaluated["visible"] if f not in MIXIN_OUTPUTS]
    if outside:
        # `(import 'config.libsonnet') + { errorRate+: ... }` adds a field next to `_config`,
        # which nothing reads: the override would be lost without a word.
        raise ConfigError(
            f"config: {outside[0]}: outside _config (nothing reads it; write "
            f"{{ _config+:: {{ {outside[0]}: ... }} }})"
        )
    raw = evaluated["config"]
    validate_config(raw)
    if path.resolve() != CONFIG_PATH.resolve():
        _check_known_fields("", raw, json.loads(_shipped_fields()))
    if not patch:
        return raw
    merged = _merge_patch(raw, patch)
    validate_config(merged, ladders=False)
    return merged


# What a config file may hold beside `_config`: the mixin's outputs, so that the mixin itself with
# an SRE's overrides (docs/mixin.md) is a valid --config too.
MIXIN_OUTPUTS = frozenset({"prometheusAlerts", "prometheusRules", "grafanaDashboards"})

# Objects of the shipped config whose keys are data, not field names: an SRE may add an entry
# (a confirm window for a new evidence window). Every other object is closed to unknown keys.
OPEN_MAPS = frozenset({"errorRate.confirmWindows", "latency.confirmWindows"})


def _evaluate(path: Path) -> dict[str, Any]:
    """The file's `_config` and its visible top-level fields, evaluated afresh (an imported file
    may have changed since the last call)."""
    snippet = (
        f"local c = import {json.dumps(str(path.resolve()))}; "
        "{ config: c._config, visible: std.objectFields(c) }"
    )
    try:
        text = _jsonnet.evaluate_snippet("load_config", snippet)
    except RuntimeError as exc:
        raise ConfigError(f"config: {jsonnet_error_line(str(exc))}") from None
    result: dict[str, Any] = json.loads(text)
    return result


@functools.lru_cache(maxsize=1)
def _shipped_fields() -> str:
    """The shipped config (package data, unchanging in a process) as JSON text, for
    _check_known_fields; a copy is parsed per call, so no caller can alter the cached one."""
    return json.dumps(_evaluate(CONFIG_PATH)["config"])


def _check_known_fields(prefix: str, cfg: Any, shipped: Any) -> None:
    """Refuse a field the shipped config does not have (a misspelt override is otherwise a new
    field nothing reads, and the default stays in force without a word)."""
    if not isinstance(cfg, dict) or not isinstance(shipped, dict) or prefix in OPEN_MAPS:
        return
    for key, value in cfg.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in shipped:
            close = difflib.get_close_matches(key, list(shipped), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"config: {path}: unknown field{hint}")
        _check_known_fields(path, value, shipped[key])


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch (std.mergePatch) of plain JSON values."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


_STATIC = re.compile(r"^(?P<file>.+?):\(?(?P<line>\d+):\d+\)?(?:-\(?[\d:]+\)?)?: (?P<msg>.*)$")
_FRAME = re.compile(r"^\s*(?P<file>.+?):\(?(?P<line>\d+):\d+")


def jsonnet_error_line(message: str) -> str:
    """One line for a jsonnet error: `file:line: first line of the message`.

    STATIC ERROR: /x.libsonnet:64:19-23: expected a comma  ->  /x.libsonnet:64: expected a comma
    RUNTIME ERROR: field does not exist: nope  (frames below)  ->  the innermost frame's file:line
    """
    lines = [line for line in message.splitlines() if line.strip()]
    if not lines:
        return "jsonnet error"
    first = re.sub(r"^(STATIC|RUNTIME) ERROR: ", "", lines[0].strip())
    if m := _STATIC.match(first):
        return f"{m['file']}:{m['line']}: {m['msg']}"
    for frame in lines[1:]:
        m = _FRAME.match(frame)
        if m and m["file"] not in ("std.jsonnet", "load_config"):
            return f"{m['file']}:{m['line']}: {first}"
    return first


# --- Schema ----------------------------------------------------------------------------------
# Only the fields that matter to the rules, the Alertmanager tree, dashboards and the commands.
# An object listed in _CLOSED rejects keys it does not know (with the closest known key); other
# objects may carry more keys than the schema names. Every listed field is required.

_RATIO = "ratio"  # a number in (0, 1)
_POSITIVE = "positive"  # a number > 0 (durations in seconds, counts, factors)
_NON_NEGATIVE = "non-negative"  # a number >= 0 (`for` durations, tolerances)
_WINDOW = "window"  # a Prometheus duration string > 0 ("5m")
_WINDOWS = "windows"  # a non-empty list of them
_WINDOW_MAP = "window map"  # {window: window}
_STRING = "string"
_STRINGS = "strings"  # a list of strings
_NUMBERS = "numbers"  # a non-empty list of positive numbers, strictly increasing
_BOOL = "bool"

Schema = Mapping[str, Any]  # field -> kind (str) or nested Schema

_LEVELS3 = {"info": _POSITIVE, "warning": _POSITIVE, "critical": _POSITIVE}

SCHEMA: Schema = {
    "errorRate": {
        "info": _RATIO,
        "warning": _RATIO,
        "critical": _RATIO,
        "duration": _LEVELS3,
        "excludedErrorTypes": _STRINGS,
        "minFailures": {"fast": _POSITIVE, "significant": _POSITIVE, "majority": _POSITIVE},
        "majorityRatio": _RATIO,
        "evidenceWindows": _WINDOWS,
        "confirmWindows": _WINDOW_MAP,
        "significanceZ": _POSITIVE,
        "hysteresisWindow": _WINDOW,
        "keepFiringFor": _NON_NEGATIVE,
    },
    "postDeploy": {
        "window": _POSITIVE,
        "markerMetrics": _STRINGS,
        "errorRateCritical": _RATIO,
        "errorRateCriticalFor": _POSITIVE,
        "errorRateWarning": _RATIO,
        "errorRateWarningFor": _POSITIVE,
    },
    "errorRateWindow": _WINDOW,
    "minRequestRate": _NON_NEGATIVE,
    "minRequestsPerWindow": _NON_NEGATIVE,
    "timeoutsPerHour": {"warning": _NON_NEGATIVE, "window": _WINDOW, "for": _NON_NEGATIVE},
    "authorizationFailuresPerHour": {
        "warning": _NON_NEGATIVE,
        "window": _WINDOW,
        "for": _NON_NEGATIVE,
    },
    "latency": {
        "averageTarget": _POSITIVE,
        "p95Target": _POSITIVE,
        "info": _POSITIVE,
        "warning": _POSITIVE,
        "critical": _POSITIVE,
        "duration": _LEVELS3,
        "averageFor": _POSITIVE,
        "window": _WINDOW,
        "minRequestsPerWindow": _NON_NEGATIVE,
        "minSlow": _POSITIVE,
        "evidenceWindows": _WINDOWS,
        "confirmWindows": _WINDOW_MAP,
        "minSlowEvidence": _POSITIVE,
        "hysteresisWindow": _WINDOW,
        "keepFiringFor": _NON_NEGATIVE,
    },
    "durationBuckets": _NUMBERS,
    "memory": {
        "warning": _RATIO,
        "critical": _RATIO,
        "for": {"warning": _POSITIVE, "critical": _POSITIVE},
        "baselineIncrease": _POSITIVE,
        "baselineWindow": _WINDOW,
        "baselineFor": _POSITIVE,
        "baselineIncreaseTarget": _POSITIVE,
        "predictHorizon": _POSITIVE,
        "predictWindow": _WINDOW,
        "predictFor": _POSITIVE,
    },
    "pool": {"warning": _RATIO, "for": _NON_NEGATIVE},
    "latencyP99": {
        "warning": _POSITIVE,
        "for": _NON_NEGATIVE,
        "window": _WINDOW,
        "minRequestsPerWindow": _NON_NEGATIVE,
    },
    "cpu": {"warning": _RATIO, "for": _NON_NEGATIVE, "window": _WINDOW},
    "integrity": {
        "orphanTolerance": _NON_NEGATIVE,
        "orphanCategories": _STRINGS,
        "warning": _NON_NEGATIVE,
        "critical": _NON_NEGATIVE,
        "maxResultAge": _POSITIVE,
        "for": _NON_NEGATIVE,
        "checkFailingFor": _POSITIVE,
        "completenessWindow": _WINDOW,
        "forbiddenWindow": _WINDOW,
        "violationTolerance": _NON_NEGATIVE,
        "resolutionTarget": _POSITIVE,
        "notApplicableWindow": _WINDOW,
    },
    "slo": {"target": _RATIO, "period": _WINDOW},
    "escalation": {"senior": _POSITIVE, "manager": _POSITIVE, "maxLag": _NON_NEGATIVE},
    "evaluationInterval": _POSITIVE,
    "timeCompression": _POSITIVE,
    "report": {"warningIssues": _NON_NEGATIVE, "criticalIssues": _NON_NEGATIVE},
}

# Objects that reject unknown keys: the ladders and their duration objects.
_CLOSED = frozenset(
    {
        "errorRate",
        "errorRate.duration",
        "errorRate.minFailures",
        "postDeploy",
        "timeoutsPerHour",
        "authorizationFailuresPerHour",
        "latency",
        "latency.duration",
        "memory",
        "memory.for",
        "pool",
        "latencyP99",
        "cpu",
        "integrity",
        "escalation",
        "report",
    }
)

# Ladders: each level strictly above the one before it (levels absent are skipped).
LADDERS: tuple[tuple[str, ...], ...] = (
    ("errorRate.info", "errorRate.warning", "errorRate.critical"),
    ("postDeploy.errorRateWarning", "postDeploy.errorRateCritical"),
    ("latency.info", "latency.warning", "latency.critical"),
    ("memory.warning", "memory.critical"),
    ("integrity.warning", "integrity.critical"),
    ("escalation.senior", "escalation.manager"),
    ("report.warningIssues", "report.criticalIssues"),
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    names = {str: "string", bool: "boolean", list: "list", dict: "object", type(None): "null"}
    return names.get(type(value), "number" if _is_number(value) else type(value).__name__)


def _got(value: Any) -> str:
    shown = json.dumps(value) if not isinstance(value, (dict, list)) else _type_name(value)
    return f"got {_type_name(value)} {shown}" if not _is_number(value) else f"got {value:g}"


def _check_window(where: str, value: Any) -> float:
    if not isinstance(value, str):
        raise ConfigError(f"config: {where}: expected a duration such as '5m', {_got(value)}")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"config: {where}: {exc}") from None
    if seconds <= 0:
        raise ConfigError(f"config: {where}: must be longer than 0, got {value!r}")
    return seconds


def _check_value(where: str, kind: str, value: Any) -> None:
    if kind in (_RATIO, _POSITIVE, _NON_NEGATIVE):
        if not _is_number(value):
            raise ConfigError(f"config: {where}: expected a number, {_got(value)}")
        if kind == _RATIO and not 0 < value < 1:
            raise ConfigError(f"config: {where}: a ratio in (0, 1), got {value:g}")
        if kind == _POSITIVE and value <= 0:
            raise ConfigError(f"config: {where}: must be greater than 0, got {value:g}")
        if kind == _NON_NEGATIVE and value < 0:
            raise ConfigError(f"config: {where}: must be 0 or more, got {value:g}")
    elif kind == _WINDOW:
        _check_window(where, value)
    elif kind == _WINDOWS:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"config: {where}: expected a non-empty list of durations")
        for i, item in enumerate(value):
            _check_window(f"{where}[{i}]", item)
    elif kind == _WINDOW_MAP:
        if not isinstance(value, dict):
            raise ConfigError(f"config: {where}: expected an object of window: window")
        for key, item in value.items():
            _check_window(f"{where} key {key!r}", key)
            _check_window(f"{where}.{key}", item)
    elif kind == _STRING:
        if not isinstance(value, str):
            raise ConfigError(f"config: {where}: expected a string, {_got(value)}")
    elif kind == _STRINGS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config: {where}: expected a list of strings")
    elif kind == _NUMBERS:
        if not isinstance(value, list) or not value or not all(map(_is_number, value)):
            raise ConfigError(f"config: {where}: expected a non-empty list of numbers")
        if value[0] <= 0 or any(b <= a for a, b in itertools.pairwise(value)):
            raise ConfigError(f"config: {where}: must be positive and strictly increasing")
    elif kind == _BOOL:
        if not isinstance(value, bool):
            raise ConfigError(f"config: {where}: expected true or false, {_got(value)}")
    else:  # pragma: no cover - a schema typo
        raise AssertionError(f"unknown schema kind {kind!r} for {where}")


def _check_object(prefix: str, schema: Schema, obj: Any) -> None:
    where = prefix or "config"
    if not isinstance(obj, dict):
        raise ConfigError(f"config: {where}: expected an object, {_got(obj)}")
    if prefix in _CLOSED:
        for key in obj:
            if key not in schema:
                close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(schema)})"
                raise ConfigError(f"config: {prefix}.{key}: unknown field{hint}")
    for key, kind in schema.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in obj:
            raise ConfigError(f"config: {path}: required field missing")
        if isinstance(kind, Mapping):
            _check_object(path, kind, obj[key])
        else:
            _check_value(path, kind, obj[key])


def _lookup(cfg: Mapping[str, Any], path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def validate_config(cfg: Mapping[str, Any], ladders: bool = True) -> None:
    """Check the evaluated config against SCHEMA; raise ConfigError naming the first bad field.

    Checks: every SCHEMA field present and of its kind (ratios in (0, 1), durations and counts
    positive, windows Prometheus durations, lists and objects their shape), no unknown key in a
    ladder object (with "did you mean" of the closest known key), each evidence window with its
    confirm window, and (ladders=True) each level of LADDERS strictly above the one before.
    load_config() checks the overridden config with ladders=False: the spec's overrides move one
    level (ERROR_RATE_THRESHOLD=0.5 puts the warning level on the info level), on purpose.
    """
    _check_object("", SCHEMA, cfg)
    for section in ("errorRate", "latency"):
        confirm = cfg[section]["confirmWindows"]
        for window in cfg[section]["evidenceWindows"]:
            if window not in confirm:
                raise ConfigError(
                    f"config: {section}.confirmWindows: no entry for evidence window {window!r}"
                )
    if not ladders:
        return
    for ladder in LADDERS:
        present = [(p, v) for p in ladder if (v := _lookup(cfg, p)) is not None]
        for (low_path, low), (high_path, high) in itertools.pairwise(present):
            if not high > low:
                raise ConfigError(
                    f"config: {high_path} ({high:g}) must be above {low_path} ({low:g})"
                )
