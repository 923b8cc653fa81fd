"""The notification sinks' page counting (deletion_monitor_demo.sinks): what the demo prints and the
end-to-end tests assert. Fast, no processes."""

from __future__ import annotations

from deletion_monitor_demo.sinks import Notification, NotificationLog, parse_pagerduty, parse_slack


def _pd(receiver: str, action: str, key: str, incident: str = "availability") -> dict:
    return {
        "event_action": action,
        "dedup_key": key,
        "routing_key": f"demo-{receiver}",
        "payload": {
            "summary": "[FIRING:2] Incident · critical · user-deletion · availability incident",
            "component": incident,
            "custom_details": {
                "incident": incident,
                "alertname": "",
                "firing": "x [alertname=DeletionErrorRateHigh ]\n"
                "y [alertname=DeletionErrorBudgetBurn ]",
            },
        },
    }


def _log(*events: tuple[str, str, str]) -> NotificationLog:
    log = NotificationLog()
    for i, (receiver, action, key) in enumerate(events):
        note = parse_pagerduty(receiver, _pd(receiver, action, key))
        log.add(Notification(**{**note.__dict__, "at": float(i)}))
    return log


def test_pagerduty_event_carries_key_incident_and_every_alert() -> None:
    note = parse_pagerduty("pagerduty-oncall", _pd("pagerduty-oncall", "trigger", "k1"))
    assert (note.key, note.incident, note.status) == ("k1", "availability", "firing")
    assert note.alertnames == ("DeletionErrorRateHigh", "DeletionErrorBudgetBurn")


def test_a_page_is_a_trigger_of_a_key_that_is_not_open() -> None:
    log = _log(
        ("pagerduty-oncall", "trigger", "a"),  # opens a
        ("pagerduty-oncall", "trigger", "a"),  # update of the open incident
        ("pagerduty-senior", "trigger", "s"),  # another receiver, its own incident
        ("pagerduty-oncall", "resolve", "a"),
        ("pagerduty-oncall", "trigger", "a"),  # after the resolve: a new incident
        ("pagerduty-oncall", "trigger", "b"),  # another key
    )
    assert log.pages() == {"pagerduty-oncall": 3, "pagerduty-senior": 1}
    # Keys opened before `since` are open: their updates are no pages.
    assert log.pages(since=1) == {"pagerduty-oncall": 2, "pagerduty-senior": 1}
    assert log.pages(since=1, until=4) == {"pagerduty-senior": 1}
    assert [n.key for n in log.opened(since=4)] == ["a", "b"]


def test_slack_group_message_names_its_incident_and_alerts() -> None:
    body = {
        "channel": "#ops-alerts",
        "attachments": [
            {
                "title": "[FIRING:2] Incident · critical · user-deletion · availability incident",
                "text": "*x*\n*Labels:* `alertname=DeletionErrorRateHigh` \n"
                "*y*\n*Labels:* `alertname=DeletionErrorRatePostDeploy` ",
                "footer": "group: incident=availability service=user-deletion ",
            }
        ],
    }
    note = parse_slack("slack-ops", body)
    assert note.incident == "availability"
    assert note.key == "group: incident=availability service=user-deletion"
    assert note.alertnames == ("DeletionErrorRateHigh", "DeletionErrorRatePostDeploy")
    log = NotificationLog()
    log.add(note)
    assert log.incidents() == {"slack-ops": {"availability"}}
