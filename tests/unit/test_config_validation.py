"""Bad config: exit 2 with one line naming the field, never a traceback (issue 15).

Each mistake is made in a copy of config.libsonnet in tmp_path, pointed at with
DELETION_MONITOR_CONFIG, and run through `generate --check` and `deletion-monitor watch --once`
(against a closed port: the config error must come first).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deletion_monitor.common.config import (
    CONFIG_PATH,
    ConfigError,
    jsonnet_error_line,
    load_config,
    validate_config,
)
from deletion_monitor_tools import generate
from deletion_monitor_tools.paths import REPO_ROOT

OVERRIDES = (
    "ERROR_RATE_THRESHOLD",
    "RESPONSE_TIME_THRESHOLD",
    "CHECK_INTERVAL",
    "TIME_COMPRESSION",
    "ALERT_EMAIL",
    "ALERTMANAGER_SECRETS_DIR",
    "DELETION_MONITOR_CONFIG",
)

# (name, text in config.libsonnet, its replacement, the one stderr line after "<prog>: ")
MISTAKES = [
    (
        "typo",
        "      warning: 0.01,  // ERROR_RATE_THRESHOLD",
        "      warnign: 0.01,  // ERROR_RATE_THRESHOLD",
        "config: errorRate.warnign: unknown field (did you mean warning?)",
    ),
    (
        "string",
        "      warning: 0.01,  // ERROR_RATE_THRESHOLD",
        "      warning: '0.01',  // ERROR_RATE_THRESHOLD",
        'config: errorRate.warning: expected a number, got string "0.01"',
    ),
    (
        "inverted",
        "      critical: 0.02,\n",
        "      critical: 0.002,\n",
        "config: errorRate.critical (0.002) must be above errorRate.warning (0.01)",
    ),
    (
        "above-one",
        "      warning: 0.01,  // ERROR_RATE_THRESHOLD",
        "      warning: 1.5,  // ERROR_RATE_THRESHOLD",
        "config: errorRate.warning: a ratio in (0, 1), got 1.5",
    ),
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bad_copy(tmp_path: Path, old: str, new: str, name: str = "config") -> Path:
    text = CONFIG_PATH.read_text()
    assert text.count(old) == 1, f"{old!r} is not unique in {CONFIG_PATH}"
    path = tmp_path / f"{name}.libsonnet"
    path.write_text(text.replace(old, new))
    return path


def _run(config: Path | None, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    if config is not None:
        env["DELETION_MONITOR_CONFIG"] = str(config)
    env.update(extra)
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _generate(config: Path | None, **extra: str) -> subprocess.CompletedProcess[str]:
    return _run(config, "-m", "deletion_monitor_tools.generate", "--check", **extra)


def _watch(config: Path | None, **extra: str) -> subprocess.CompletedProcess[str]:
    url = f"http://127.0.0.1:{_closed_port()}"
    return _run(config, "-m", "deletion_monitor", "watch", "--once", "--prometheus", url, **extra)


def _one_line(proc: subprocess.CompletedProcess[str], prog: str, message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"{prog}: {message}"], proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(("name", "old", "new", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_generate_check_names_the_field(
    tmp_path: Path, name: str, old: str, new: str, message: str
) -> None:
    _one_line(_generate(_bad_copy(tmp_path, old, new)), "generate", message)


@pytest.mark.parametrize(("name", "old", "new", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_watch_once_names_the_field_before_querying(
    tmp_path: Path, name: str, old: str, new: str, message: str
) -> None:
    _one_line(_watch(_bad_copy(tmp_path, old, new)), "deletion-monitor watch", message)


@pytest.mark.parametrize(("name", "old", "new", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_load_config_raises_the_same_line(
    tmp_path: Path, name: str, old: str, new: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, path=_bad_copy(tmp_path, old, new))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "      info: 0.005,\n",
            "      info: 0.005 oops,\n",
            "expected a comma before next field.",
        ),
        ("      info: 0.005,\n", "      info: undefinedVar,\n", "Unknown variable: undefinedVar"),
        ("      info: 0.005,\n", "      info: self.nope,\n", "field does not exist: nope"),
    ],
    ids=["syntax", "unknown-variable", "runtime"],
)
def test_jsonnet_error_is_one_line_with_file_and_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = _bad_copy(tmp_path, old, new)
    line = CONFIG_PATH.read_text().split(old)[0].count("\n") + 1
    message = f"config: {path}:{line}: {expected}"
    _one_line(_generate(path), "generate", message)
    _one_line(_watch(path), "deletion-monitor watch", message)


def test_jsonnet_error_line_formats() -> None:
    assert jsonnet_error_line("STATIC ERROR: /x.libsonnet:64:19-23: expected a comma\n") == (
        "/x.libsonnet:64: expected a comma"
    )
    assert jsonnet_error_line("STATIC ERROR: /x.libsonnet:(3:1)-(5:2): bad\n") == (
        "/x.libsonnet:3: bad"
    )
    runtime = (
        "RUNTIME ERROR: boom\n\t/x.libsonnet:(28:5)-(32:6)\tthunk\n"
        "\tstd.jsonnet:(1553:7)-(1562:8)\tobject <anonymous>\n\tDuring manifestation\t\n"
    )
    assert jsonnet_error_line(runtime) == "/x.libsonnet:28: boom"
    assert jsonnet_error_line("RUNTIME ERROR: no frames\n") == "no frames"


def test_committed_config_passes_validation() -> None:
    # `make check-generated` (before the suite in `make test`) runs `generate --check` on the
    # committed config in full; rendering every file again here would only cost a minute.
    validate_config(load_config(env={}))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "      warning: 5,\n      critical: 10,\n      // Held",
            "      warning: 12,\n      critical: 10,\n      // Held",
            "config: latency.critical (10) must be above latency.warning (12)",
        ),
        (
            "      info: 3,\n",
            "      info: -3,\n",
            "config: latency.info: must be greater than 0, got -3",
        ),
        (
            "duration: { info: 900, warning: 600, critical: 300 },\n      // Failure",
            "duration: { info: 900, warning: 600, critcal: 300 },\n      // Failure",
            "config: errorRate.duration.critcal: unknown field (did you mean critical?)",
        ),
        (
            "      keepFiringFor: 600,\n    },\n    // Post-deployment",
            "      keepFiringFor: 600,\n      colour: 'red',\n    },\n    // Post-deployment",
            "config: errorRate.colour: unknown field (known: info, warning, critical, duration, "
            "excludedErrorTypes, minFailures, majorityRatio, evidenceWindows, confirmWindows, "
            "significanceZ, hysteresisWindow, keepFiringFor)",
        ),
        (
            "    evaluationInterval: 60,",
            "    evaluationInterval: 0,",
            "config: evaluationInterval: must be greater than 0, got 0",
        ),
        (
            "    errorRateWindow: '5m',",
            "    errorRateWindow: '5 minutes',",
            "config: errorRateWindow: ",  # the duration parser's own message follows
        ),
        (
            "      warning: 0.80,  // R19: > 80 % warning",
            "      warning: true,  // R19: > 80 % warning",
            "config: memory.warning: expected a number, got boolean true",
        ),
        (
            "confirmWindows: { '1h': '5m', '6h': '30m' },",
            "confirmWindows: { '1h': '5m' },",
            "config: errorRate.confirmWindows: no entry for evidence window '6h'",
        ),
    ],
    ids=[
        "latency-inverted",
        "latency-negative",
        "duration-typo",
        "unknown-no-close-match",
        "interval-zero",
        "window-not-a-duration",
        "bool-is-no-number",
        "confirm-window-missing",
    ],
)
def test_other_mistakes_name_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, path=_bad_copy(tmp_path, old, new))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


# An SRE's override file, as docs/mixin.md and docs/install.md write it, with one mistake each
# that jsonnet accepts and that would leave the default in force without a word.
SHIPPED = f"(import {json.dumps(str(CONFIG_PATH))})"
OVERRIDE_MISTAKES = [
    (
        "misspelt-top-level-field",
        SHIPPED + " + { _config+:: { auditExporterSelectr: 'job=\"x\"' } }",
        "config: auditExporterSelectr: unknown field (did you mean auditExporterSelector?)",
    ),
    (
        "misspelt-nested-field",
        SHIPPED + " + { _config+:: { retention+: { prometheusMetric: '30d' } } }",
        "config: retention.prometheusMetric: unknown field (did you mean prometheusMetrics?)",
    ),
    (
        "field-outside-_config",
        SHIPPED + " + { auditExporterSelector: 'job=\"x\"' }",
        "config: auditExporterSelector: outside _config (nothing reads it; write "
        "{ _config+:: { auditExporterSelector: ... } })",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [m[1:] for m in OVERRIDE_MISTAKES],
    ids=[m[0] for m in OVERRIDE_MISTAKES],
)
def test_an_override_nothing_reads_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "overrides.libsonnet"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(env={}, path=path)
    assert str(info.value) == message
    _one_line(_watch(path), "deletion-monitor watch", message)


def test_valid_overrides_and_the_mixin_itself_are_accepted(tmp_path: Path) -> None:
    """What the docs tell an SRE to write passes: a known field changed, a confirm window added
    (its keys are data), and the mixin with overrides (its outputs beside _config)."""
    path = tmp_path / "overrides.libsonnet"
    path.write_text(
        SHIPPED + " + { _config+:: { auditExporterSelector: 'job=\"x\"', "
        "errorRate+: { confirmWindows+: { '3h': '15m' } } } }\n"
    )
    cfg = load_config(env={}, path=path)
    assert cfg["auditExporterSelector"] == 'job="x"'
    assert cfg["errorRate"]["confirmWindows"]["3h"] == "15m"
    mixin = tmp_path / "mixin-config.libsonnet"
    mixin.write_text(
        f"(import {json.dumps(str(REPO_ROOT / 'mixin.libsonnet'))}) + "
        "{ _config+:: { errorRate+: { warning: 0.015 } } }\n"
    )
    assert load_config(env={}, path=mixin)["errorRate"]["warning"] == 0.015


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = _bad_copy(tmp_path, "      significanceZ: 3.1,\n", "")
    with pytest.raises(ConfigError, match=r"^config: errorRate\.significanceZ: required field"):
        load_config(env={}, path=path)


def test_overrides_are_validated_and_may_move_one_level() -> None:
    # The spec's overrides move one level, onto or past its neighbours (README, test_core,
    # test_dashboards_structure): the ladder order is checked on the file, not on the override.
    assert load_config(env={"ERROR_RATE_THRESHOLD": "5"})["errorRate"]["warning"] == 0.05
    assert load_config(env={"RESPONSE_TIME_THRESHOLD": "3000"})["latency"]["warning"] == 3
    # ...but a bad override names its variable, and the overridden config is checked again.
    for env, field in [
        ({"ERROR_RATE_THRESHOLD": "abc"}, "ERROR_RATE_THRESHOLD"),
        ({"ERROR_RATE_THRESHOLD": "100"}, "ERROR_RATE_THRESHOLD"),
        ({"CHECK_INTERVAL": "0.5"}, "CHECK_INTERVAL"),
        ({"TIME_COMPRESSION": "-2"}, "TIME_COMPRESSION"),
    ]:
        with pytest.raises(ConfigError, match=f"^{field}: "):
            load_config(env=env)


def test_generate_ignores_overrides_without_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate renders the committed files without overrides unless --env is given: a bad
    override in the environment changes nothing (the renderers are replaced by the env they
    would get: the committed files are checked in full by `make check-generated`)."""
    seen: list[dict[str, str] | None] = []

    def render_all(env: dict[str, str] | None = None) -> dict[str, str]:
        seen.append(env)
        load_config(env=env)  # raises ConfigError on a bad override that reaches it
        return {}

    monkeypatch.setattr(generate, "render_all", render_all)
    monkeypatch.setenv("ERROR_RATE_THRESHOLD", "150")
    assert generate.main(["--check"]) == 0
    assert seen == [{}]
    assert generate.main(["--check", "--env"]) == 2
    assert seen[-1] is None
    assert capsys.readouterr().err.splitlines()[-1].startswith("generate: ERROR_RATE_THRESHOLD: ")


def test_bad_override_is_one_line_exit_2() -> None:
    proc = _run(
        None, "-m", "deletion_monitor_tools.generate", "--env", "--check", CHECK_INTERVAL="0"
    )
    _one_line(proc, "generate", "CHECK_INTERVAL: must be greater than 0, got '0'")
    _one_line(
        _watch(None, ERROR_RATE_THRESHOLD="abc"),
        "deletion-monitor watch",
        "ERROR_RATE_THRESHOLD: expected a number, got 'abc'",
    )


def test_other_subcommands_report_a_bad_config_in_one_line(tmp_path: Path) -> None:
    _name, old, new, message = MISTAKES[0]
    path = _bad_copy(tmp_path, old, new)
    dsn = f"postgresql://mon@127.0.0.1:{_closed_port()}/app"
    url = f"http://127.0.0.1:{_closed_port()}"
    cases = [
        (["check-integrity", "--dsn", dsn], "check-integrity"),
        (["audit-exporter", "--dsn", dsn], "deletion-monitor audit-exporter: error"),
        (["report", "health", "--prometheus", url], "deletion-monitor report"),
    ]
    for argv, prog in cases:
        _one_line(_run(path, "-m", "deletion_monitor", *argv), prog, message)


# --- `deletion-monitor config`: the SRE's way to get, check and inspect a config ---------------


def _config_cmd(*argv: str, config: Path | None = None, **extra: str):
    return _run(config, "-m", "deletion_monitor", "config", *argv, **extra)


def test_config_default_prints_the_shipped_file_and_it_checks_valid(tmp_path: Path) -> None:
    shipped = _config_cmd("default")
    assert shipped.returncode == 0 and shipped.stdout == CONFIG_PATH.read_text()
    copy = tmp_path / "mine.libsonnet"
    copy.write_text(shipped.stdout)
    ok = _config_cmd("check", str(copy))
    assert ok.returncode == 0 and ok.stdout.strip() == f"config: {copy}: valid"


@pytest.mark.parametrize(
    ("name", "old", "new", "message"), MISTAKES[:3], ids=[m[0] for m in MISTAKES[:3]]
)
def test_config_check_names_the_field_by_argument_flag_or_environment(
    tmp_path: Path, name: str, old: str, new: str, message: str
) -> None:
    bad = _bad_copy(tmp_path, old, new)
    for proc in (
        _config_cmd("check", str(bad)),
        _config_cmd("check", "--config", str(bad)),
        _config_cmd("check", config=bad),
    ):
        assert proc.returncode == 2 and proc.stderr.splitlines() == [message], proc.stderr
        assert proc.stdout == ""


def test_config_show_is_the_effective_config_with_overrides() -> None:
    import json

    plain = _config_cmd("show")
    assert plain.returncode == 0 and json.loads(plain.stdout) == load_config(env={})
    moved = _config_cmd("show", ERROR_RATE_THRESHOLD="2")
    assert json.loads(moved.stdout)["errorRate"]["warning"] == 0.02
    missing = _config_cmd("show", "--config", "/nonexistent/c.libsonnet")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "config: error: --config: file not found: /nonexistent/c.libsonnet"
    ]
