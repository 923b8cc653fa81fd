"""The committed Alertmanager config without amtool: every receiver of the contract exists and is
used, pages group by incident, every timing says why, no secret and no placeholder is committed,
and the file is what the jsonnet renders. amtool's own check and the routing table are
tests/integration/test_alertmanager_config.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from deletion_monitor.common.config import CONFIG_PATH, ConfigError, load_config
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_alertmanager import OUTPUT, render

AM_YML = REPO_ROOT / OUTPUT
AM_DIR = REPO_ROOT / "alertmanager"
SECRETS_DIR = "/etc/alertmanager/secrets"


def committed() -> dict[str, Any]:
    return yaml.safe_load(AM_YML.read_text())


def test_every_receiver_of_the_contract_exists_and_is_used() -> None:
    cfg = committed()
    names = [r["name"] for r in cfg["receivers"]]
    assert sorted(names) == sorted(
        [
            "pagerduty-oncall",
            "pagerduty-senior",
            "pagerduty-manager",
            "slack-ops",
            "slack-security",
            "email-digest",
            "heartbeat",
            "default",
        ]
    )
    used = {cfg["route"]["receiver"]} | {r["receiver"] for r in cfg["route"]["routes"]}
    assert used == set(names)


def test_pages_and_their_copies_group_by_incident() -> None:
    """One incident = one group per receiver: every PagerDuty route, the Slack copies and the
    ops/security channels group by (service, incident), never by alert name (which would split
    one fault into one page per alert). Only the escalation copies add the alert name, which is
    the level (senior/manager), so each level has its own thread."""
    routes = committed()["route"]["routes"]
    by_receiver: dict[str, list[list[str]]] = {}
    for route in routes:
        by_receiver.setdefault(route["receiver"], []).append(route["group_by"])
    for receiver in ("pagerduty-oncall", "pagerduty-senior", "pagerduty-manager", "slack-security"):
        assert by_receiver[receiver] == [["service", "incident"]], receiver
    assert sorted(by_receiver["slack-ops"]) == sorted(
        [["alertname", "service", "incident"], ["service", "incident"], ["service", "incident"]]
    )
    # The inhibition no longer refers to a per-alert escalation label.
    assert "escalated_alert" not in AM_YML.read_text()


def test_watchdog_route_is_first_and_stops() -> None:
    first = committed()["route"]["routes"][0]
    assert first["matchers"] == ['alertname="Watchdog"']
    assert first["receiver"] == "heartbeat"
    assert first["continue"] is False
    assert first["group_wait"] == "0s"
    # A ping every minute: the repeat fires at the first 10 s tick after 55 s, i.e. at 60 s
    # (a 1m repeat would fire at 70 s; see the route's comment and the live heartbeat test).
    assert (first["group_interval"], first["repeat_interval"]) == ("10s", "55s")


def test_every_timing_carries_a_comment_saying_why() -> None:
    lines = AM_YML.read_text().splitlines()
    timing = re.compile(r"^\s*-?\s*(group_by|group_wait|group_interval|repeat_interval):")
    missing = [
        f"line {i + 1}: {line.strip()}"
        for i, line in enumerate(lines)
        if timing.match(line) and not lines[i - 1].lstrip().startswith("#")
    ]
    assert not missing, missing


def test_digest_window_equals_its_group_interval() -> None:
    # The invariant that makes the digest never missed and never doubled (see the jsonnet).
    cfg = committed()
    (route,) = [r for r in cfg["route"]["routes"] if r["receiver"] == "email-digest"]
    assert route["active_time_intervals"] == ["daily-digest"]
    (interval,) = [t for t in cfg["time_intervals"] if t["name"] == "daily-digest"]
    (spec,) = interval["time_intervals"]
    (times,) = spec["times"]

    def minutes(hhmm: str) -> int:
        hours, mins = hhmm.split(":")
        return int(hours) * 60 + int(mins)

    window = minutes(times["end_time"]) - minutes(times["start_time"])
    assert route["group_interval"] == f"{window}m"
    assert spec["location"] == load_config({})["alertmanager"]["digest"]["location"]


# --- Secrets ---------------------------------------------------------------------------------

SECRET_KEYS = {
    "api_url",
    "slack_api_url",
    "routing_key",
    "service_key",
    "auth_password",
    "smtp_auth_password",
    "auth_secret",
    "smtp_auth_secret",
    "credentials",
    "password",
    "bearer_token",
    "url_file",
}


def _walk(value: Any, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def test_no_secret_and_no_placeholder_in_committed_files() -> None:
    files = [
        AM_YML,
        *AM_DIR.glob("*.*sonnet"),
        *AM_DIR.glob("templates/*"),
        CONFIG_PATH,
    ]
    for path in files:
        text = path.read_text()
        assert "${" not in text, f"{path}: ${{...}} placeholder (Alertmanager does not expand it)"
        assert not re.search(r"hooks\.slack\.com/services/\w", text), f"{path}: Slack webhook"
    secret_paths = []
    for where, key, value in _walk(committed()):
        assert key not in SECRET_KEYS, f"{where}: inline secret field (use {key}_file)"
        if key.endswith("_file"):
            secret_paths.append(value)
            assert value.startswith(SECRETS_DIR + "/"), f"{where}: {value} outside {SECRETS_DIR}"
    # Slack, three PagerDuty services, SMTP and the heartbeat token: all by file.
    assert len(set(secret_paths)) == 6, sorted(set(secret_paths))


def test_render_uses_env_settings_and_never_secret_env() -> None:
    env = {
        # The spec's secret variables must not reach the config even when they are set...
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/very-secret-token",
        "PAGERDUTY_KEY": "pd-secret-routing-key-0123456789ab",
        # ...while the non-secret ones are rendered in.
        "ALERT_EMAIL": "dev-team@example.org",
        "ALERTMANAGER_SECRETS_DIR": "/run/secrets",
    }
    text = render(load_config(env))[OUTPUT]
    assert "very-secret-token" not in text and "pd-secret-routing-key" not in text
    cfg = yaml.safe_load(text)
    (email,) = [r for r in cfg["receivers"] if r["name"] == "email-digest"]
    assert email["email_configs"][0]["to"] == "dev-team@example.org"
    assert cfg["global"]["smtp_auth_password_file"] == "/run/secrets/smtp_auth_password"
    assert SECRETS_DIR not in text


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"ALERT_EMAIL": "not-an-address"}, "ALERT_EMAIL"),
        ({"ALERTMANAGER_SECRETS_DIR": "relative/dir"}, "ALERTMANAGER_SECRETS_DIR"),
    ],
)
def test_bad_settings_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_config(env)


def test_committed_config_is_the_render_of_the_sources() -> None:
    assert render(load_config({}))[OUTPUT] == AM_YML.read_text(), "run `make generate`"


def test_time_compression_shortens_routes_but_not_the_digest() -> None:
    cfg = yaml.safe_load(render(load_config({"TIME_COMPRESSION": "60"}))[OUTPUT])
    routes = {r["receiver"] + str(r.get("matchers")): r for r in cfg["route"]["routes"]}
    critical = routes["pagerduty-oncall['severity=\"critical\"']"]
    assert critical["repeat_interval"] == "1m"  # 1 h / 60
    digest = routes["email-digest['severity=\"info\"']"]
    assert digest["group_interval"] == "15m" and digest["repeat_interval"] == "20h"


def test_templates_carry_the_required_fields() -> None:
    # The live tests check what arrives; this names the template block that lost a field.
    text = (AM_DIR / "templates" / "deletion.tmpl").read_text()
    blocks = {b.split('"', 1)[0]: b for b in text.split('{{ define "')[1:]}
    for name in ("deletion.slack.text", "deletion.email.html", "deletion.email.text"):
        for field in ("summary", "description", "severity", "runbook_url", "dashboard_url"):
            assert field in blocks[name], f"{name} lacks {field}"
