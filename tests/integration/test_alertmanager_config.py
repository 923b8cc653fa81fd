"""The committed Alertmanager config: amtool accepts it and routes every case as designed, and its
jsonnet is jsonnetfmt-clean. Offline and fast (real amtool, no server). What needs no binary (the
render, the receivers and timings, no secret) is tests/unit/test_alertmanager_render.py."""

from __future__ import annotations

import subprocess

import pytest

from deletion_monitor.common.config import load_config
from deletion_monitor_demo.services import require_binary
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_alertmanager import OUTPUT

AM_YML = REPO_ROOT / OUTPUT
AM_DIR = REPO_ROOT / "alertmanager"

# Common labels of a real alert from the rules (see the brief's alert contract; alert() derives
# incident from category, config.incidents).
BASE = {
    "service": "user-deletion",
    "source": "audit",
    "category": "availability",
    "incident": "availability",
}
# An escalation alert as the rules raise it: per incident, no category/source/alert name of its own.
ESCALATION = {"service": "user-deletion", "severity": "critical", "incident": "availability"}

# (case id, labels, expected receivers in tree order). amtool's check is order-sensitive, so the
# expected lists also pin the order in which `continue` routes fire.
ROUTING_CASES: list[tuple[str, dict[str, str], list[str]]] = [
    (
        "critical pages on-call and copies to slack",
        {**BASE, "alertname": "DeletionErrorRateHigh", "severity": "critical"},
        ["pagerduty-oncall", "slack-ops"],
    ),
    (
        "warning goes to the ops channel",
        {**BASE, "alertname": "DeletionErrorRateHigh", "severity": "warning"},
        ["slack-ops"],
    ),
    (
        "critical of another incident pages on-call the same way",
        {
            **BASE,
            "alertname": "DeletionCompletenessAuditFailed",
            "severity": "critical",
            "category": "integrity",
            "incident": "integrity",
            "source": "integrity",
        },
        ["pagerduty-oncall", "slack-ops"],
    ),
    (
        "critical burn rate of the availability incident: the same routes as the error ratio",
        {
            **BASE,
            "alertname": "DeletionErrorBudgetBurn",
            "severity": "critical",
            "category": "slo",
            "long_window": "1h",
            "short_window": "5m",
        },
        ["pagerduty-oncall", "slack-ops"],
    ),
    (
        "info goes to the daily digest",
        {
            **BASE,
            "alertname": "DeletionLatencyAnomaly",
            "severity": "info",
            "category": "anomaly",
            "incident": "anomaly",
        },
        ["email-digest"],
    ),
    (
        "senior escalation pages the senior engineer, not on-call again",
        {**ESCALATION, "alertname": "DeletionEscalationSenior", "escalation": "senior"},
        ["pagerduty-senior", "slack-ops"],
    ),
    (
        "manager escalation pages the manager",
        {**ESCALATION, "alertname": "DeletionEscalationManager", "escalation": "manager"},
        ["pagerduty-manager", "slack-ops"],
    ),
    (
        "critical security alert: security channel, then its severity route",
        {
            **BASE,
            "alertname": "DeletionForbiddenDeletion",
            "severity": "critical",
            "category": "security",
            "incident": "security",
        },
        ["slack-security", "pagerduty-oncall", "slack-ops"],
    ),
    (
        "warning security alert: security channel and the ops channel",
        {
            **BASE,
            "alertname": "DeletionAuthorizationFailuresHigh",
            "severity": "warning",
            "category": "security",
            "incident": "security",
        },
        ["slack-security", "slack-ops"],
    ),
    (
        "escalated security incident: senior, security channel, slack copy",
        {
            **ESCALATION,
            "alertname": "DeletionEscalationSenior",
            "escalation": "senior",
            "incident": "security",
        },
        ["pagerduty-senior", "slack-security", "slack-ops"],
    ),
    (
        "manager escalation of the security incident: manager, security channel, slack copy",
        {
            **ESCALATION,
            "alertname": "DeletionEscalationManager",
            "escalation": "manager",
            "incident": "security",
        },
        ["pagerduty-manager", "slack-security", "slack-ops"],
    ),
    (
        "watchdog reaches only the heartbeat",
        {"alertname": "Watchdog", "severity": "info", "category": "meta", "source": "prometheus"},
        ["heartbeat"],
    ),
    (
        "watchdog is never mixed into other routes, whatever its labels",
        {"alertname": "Watchdog", "severity": "critical", "category": "security"},
        ["heartbeat"],
    ),
    (
        "unknown label set falls to the default",
        {"alertname": "SomethingElse", "team": "x"},
        ["default"],
    ),
    (
        "unknown severity falls to the default",
        {**BASE, "alertname": "DeletionErrorRateHigh", "severity": "page-me"},
        ["default"],
    ),
]


def amtool_routes(labels: dict[str, str], expected: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            require_binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={AM_YML}",
            f"--verify.receivers={','.join(expected)}",
            *(f"{k}={v}" for k, v in sorted(labels.items())),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_amtool_check_config_accepts_the_committed_config() -> None:
    proc = subprocess.run(
        [require_binary("amtool"), "check-config", str(AM_YML)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 receivers" in proc.stdout
    # The templates glob is relative to the config file: it must find our template file.
    assert "1 templates" in proc.stdout


@pytest.mark.parametrize(
    ("labels", "expected"), [c[1:] for c in ROUTING_CASES], ids=[c[0] for c in ROUTING_CASES]
)
def test_routing_table(labels: dict[str, str], expected: list[str]) -> None:
    proc = amtool_routes(labels, expected)
    assert proc.returncode == 0, f"{labels} -> {proc.stdout.strip()} (expected {expected})"


def test_routing_check_is_order_sensitive() -> None:
    # The security receiver comes first: the same receivers in another order must fail, which is
    # what makes the table above pin the tree order and not just the set of receivers.
    labels = {**BASE, "alertname": "DeletionForbiddenDeletion", "severity": "critical"}
    labels.update(category="security", incident="security")
    assert amtool_routes(labels, ["pagerduty-oncall", "slack-ops", "slack-security"]).returncode
    assert (
        amtool_routes(labels, ["slack-security", "pagerduty-oncall", "slack-ops"]).returncode == 0
    )


def test_every_incident_of_the_config_routes_its_criticals_to_oncall() -> None:
    """Each incident name of config.incidents reaches on-call when critical (no incident falls
    to the default receiver) and escalates to the senior engineer."""
    for incident in sorted(set(load_config({})["incidents"].values())):
        labels = {**BASE, "alertname": "X", "severity": "critical", "incident": incident}
        expected = ["pagerduty-oncall", "slack-ops"]
        if incident == "security":
            expected = ["slack-security", *expected]
        assert amtool_routes(labels, expected).returncode == 0, incident
        esc = {**ESCALATION, "alertname": "DeletionEscalationSenior", "escalation": "senior"}
        esc["incident"] = incident
        expected = ["pagerduty-senior", "slack-ops"]
        if incident == "security":
            expected = ["pagerduty-senior", "slack-security", "slack-ops"]
        assert amtool_routes(esc, expected).returncode == 0, incident


def test_jsonnet_is_formatted() -> None:
    for path in AM_DIR.glob("*.*sonnet"):
        proc = subprocess.run(
            [require_binary("jsonnetfmt"), "--test", str(path)], capture_output=True, timeout=30
        )
        assert proc.returncode == 0, f"{path} is not jsonnetfmt-clean"
