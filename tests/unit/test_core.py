"""The shared pieces every command relies on: config overrides, redaction, JSON logs, the CLI."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from deletion_monitor.common.config import ConfigError, env_overrides, load_config
from deletion_monitor.common.log import JsonFormatter
from deletion_monitor.common.redaction import redact


def test_config_defaults_match_the_spec() -> None:
    cfg = load_config(env={})
    assert cfg["errorRate"]["critical"] == 0.02
    assert cfg["postDeploy"]["errorRateCritical"] == 0.01
    assert cfg["latency"]["p95Target"] == 5
    assert (cfg["escalation"]["senior"], cfg["escalation"]["manager"]) == (900, 1800)
    assert cfg["slo"]["target"] == 0.99
    # every latency threshold is a histogram bucket boundary, so "above N s" is exact
    for level in ("info", "warning", "critical", "averageTarget", "p95Target"):
        assert cfg["latency"][level] in cfg["durationBuckets"]


def test_environment_overrides_move_thresholds() -> None:
    cfg = load_config(
        env={
            "ERROR_RATE_THRESHOLD": "0.5",
            "RESPONSE_TIME_THRESHOLD": "3000",
            "CHECK_INTERVAL": "30",
        }
    )
    assert cfg["errorRate"]["warning"] == 0.005
    assert cfg["postDeploy"]["errorRateCritical"] == 0.005
    assert cfg["errorRate"]["critical"] == 0.02  # untouched siblings survive the merge
    assert cfg["latency"]["warning"] == 3
    assert cfg["evaluationInterval"] == 30


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"ERROR_RATE_THRESHOLD": "abc"}, "ERROR_RATE_THRESHOLD"),
        ({"ERROR_RATE_THRESHOLD": "150"}, "ERROR_RATE_THRESHOLD"),
        ({"RESPONSE_TIME_THRESHOLD": "-1"}, "RESPONSE_TIME_THRESHOLD"),
        ({"CHECK_INTERVAL": "0"}, "CHECK_INTERVAL"),
    ],
)
def test_bad_override_names_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        env_overrides(env)


def test_missing_config_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config: file not found"):
        load_config(env={}, path=tmp_path / "nope.libsonnet")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://mon:s3cret@db:5432/app", "postgresql://mon:***@db:5432/app"),
        ("host=db password=s3cret user=mon", "host=db password=*** user=mon"),
        ("host=db password='s 3cret' user=mon", "host=db password=*** user=mon"),
        ("postgresql://mon@db/app", "postgresql://mon@db/app"),
        # An unencoded @ in the password: masked up to the last @, not cut in half.
        ("postgresql://mon:p@ss@db/app", "postgresql://mon:***@db/app"),
        (
            "postgresql://mon@db/app?sslmode=require&password=s3cret&x=1",
            "postgresql://mon@db/app?sslmode=require&password=***&x=1",
        ),
        ("host=db password='unterminated quote", "host=db password=***"),
        # Prose is not a password field.
        ('password authentication failed for user "mon"', None),
    ],
)
def test_redact_removes_passwords(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_json_log_line_is_redacted_and_carries_extras() -> None:
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "cannot connect to %s", ("postgresql://u:pw@h/d",), None
    )
    record.dsn_host = "h"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "cannot connect to postgresql://u:***@h/d"
    assert line["level"] == "error"
    assert line["dsn_host"] == "h"
    assert "pw" not in json.dumps(line)


@pytest.mark.parametrize(
    "command",
    [
        ["audit-exporter"],
        ["integrity-exporter"],
        ["check-integrity"],
        ["watch"],
        ["report", "health"],
    ],
)
def test_unknown_flag_exits_2_with_one_line(command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deletion_monitor", *command, "--no-such-flag"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--no-such-flag" in proc.stderr
