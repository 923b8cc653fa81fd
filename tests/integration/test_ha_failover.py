"""Two Prometheus replicas and a 2-node Alertmanager cluster page exactly once, through failover.

The real `prometheus` (x2, external label `replica`, dropped by alert_relabel_configs) and
`prometheus-alertmanager` (x2, gossip on 127.0.0.1) with the rendered, time-compressed rules
(tests/support/ha.py: 60x, so the 15 and 30 min escalations come after 15 and 30 s) and the demo
copy of alertmanager.yml (PagerDuty and Slack are local sinks). The fault is the audit exporter
going away: DeletionAuditExporterDown (critical, incident monitoring) pages on-call and escalates.

"Once" is counted at the PagerDuty sink: per receiver (on-call, senior, manager) one trigger and
one resolve, all with one dedup key. The compressed repeat interval (1 h -> 60 s) is longer than
each incident here, so a second trigger can only be a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ha import HaTopology, wait_until

from deletion_monitor_demo.pgcluster import PgCluster
from deletion_monitor_demo.sinks import Notification

pytestmark = pytest.mark.slow  # ~3 min: two stacks, one incident each in compressed real time

PAGERS = ("pagerduty-oncall", "pagerduty-senior", "pagerduty-manager")
FAULT_ALERT = "DeletionAuditExporterDown"


# One stack per test, not per module: an incident that starts soon after another of the same
# group resolved can be paged by both Alertmanagers (docs/scaling.md: the resolved group lingers
# in one peer and not the other, so their flushes fall out of step). A clean-clone CI run, with
# a module-wide stack, had both peers send the second test's page at the same instant. Each test
# here is about one incident on a stack that has had none.
@pytest.fixture()
def ha(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaTopology]:
    topo = HaTopology(pg_cluster, Path(tmp_path_factory.mktemp("ha")))
    try:
        topo.start_sinks()
        topo.start_database()
        topo.start_exporters()
        topo.start_alertmanager_cluster()
        topo.start_prometheus_pair()
        # The pipeline works end to end before any fault: the Watchdog heartbeat arrives.
        wait_until(lambda: topo.notifications.find(receiver="heartbeat"), 60, "a heartbeat")
        yield topo
    finally:
        topo.stop()


def _events(topo: HaTopology, receiver: str, since: float) -> list[Notification]:
    return [n for n in topo.notifications.find(receiver=receiver, since=since)]


def _triggers(topo: HaTopology, receiver: str, since: float) -> list[Notification]:
    return [n for n in _events(topo, receiver, since) if n.status == "firing"]


def _resolves(topo: HaTopology, receiver: str, since: float) -> list[Notification]:
    return [n for n in _events(topo, receiver, since) if n.status == "resolved"]


def _wait_trigger(topo: HaTopology, receiver: str, since: float, timeout: float) -> Notification:
    return wait_until(
        lambda: (_triggers(topo, receiver, since) or [None])[0], timeout, f"{receiver} page"
    )


def _sender(note: Notification) -> str:
    """The Alertmanager that sent a page: its --web.external-url starts the event's client_url
    (`<external url>/#/alerts?receiver=...`)."""
    return str(note.payload.get("client_url", "")).split("/#/", 1)[0]


def _trace(events: list[Notification], since: float) -> list[tuple[str, str, str, str]]:
    return [(f"+{n.at - since:.1f}s", n.status, _sender(n), ",".join(n.alertnames)) for n in events]


def _assert_paged_once(topo: HaTopology, since: float, restarted: bool = False) -> None:
    """One trigger and one resolve per level, all with one dedup key. After a restart
    (`restarted`), the resolve may come from both Alertmanagers: the restarted one's group
    timers start afresh, so the two flush at different moments and the second one's wait can
    end before the first one's log entry reaches it. Same dedup key: PagerDuty resolves the one
    incident and ignores the copy (docs/scaling.md). The trigger must still be single."""
    for receiver in PAGERS:
        events = _events(topo, receiver, since)
        kinds = [n.status for n in events]
        if restarted and kinds[:2] == ["firing", "resolved"]:
            resolves = len(kinds) - 1
            assert resolves <= 2 and kinds[1:] == ["resolved"] * resolves, (
                receiver,
                _trace(events, since),
            )
            assert len({_sender(n) for n in events[1:]}) == resolves, "a copy from one sender"
        else:
            assert kinds == ["firing", "resolved"], (receiver, _trace(events, since))
        assert len({n.key for n in events}) == 1, f"{receiver}: several dedup keys"
        assert FAULT_ALERT in events[0].alertnames or receiver != "pagerduty-oncall"


def _end_incident(topo: HaTopology, since: float) -> None:
    topo.start_audit_exporter()
    for receiver in PAGERS:
        wait_until(lambda r=receiver: _resolves(topo, r, since), 40, f"{receiver} resolve")
    # A group_interval (5 min -> 5 s) and more: a late duplicate would arrive in this time.
    time.sleep(8)


def test_both_replicas_and_both_alertmanagers_page_once(ha: HaTopology) -> None:
    for name in ("prom-a", "prom-b"):
        assert {a["alertname"] for a in ha.firing(name)} == {"Watchdog"}, ha.firing(name)
    start = time.time()
    ha.stop_audit_exporter()
    oncall = _wait_trigger(ha, "pagerduty-oncall", start, 40)
    senior = _wait_trigger(ha, "pagerduty-senior", start, 60)
    manager = _wait_trigger(ha, "pagerduty-manager", start, 60)
    # Both replicas evaluate the same alert; the Alertmanager sees it once (no replica label).
    for name in ("prom-a", "prom-b"):
        fired = [a for a in ha.firing(name) if a["alertname"] == FAULT_ALERT]
        assert fired and all("replica" not in a for a in fired)
    # Escalations at 15 and 30 compressed minutes of the alert firing, never earlier.
    assert senior.at - oncall.at >= ha.cfg["escalation"]["senior"] / ha.compression - 2
    assert manager.at - senior.at >= (
        (ha.cfg["escalation"]["manager"] - ha.cfg["escalation"]["senior"]) / ha.compression - 2
    )
    _end_incident(ha, start)
    _assert_paged_once(ha, start)


def test_failover_mid_incident_pages_once_escalates_and_resolves(ha: HaTopology) -> None:
    start = time.time()
    ha.stop_audit_exporter()
    oncall = _wait_trigger(ha, "pagerduty-oncall", start, 40)
    # Kill the Alertmanager that sent the page (the first in the cluster's order, the one the
    # other waits for) and one Prometheus replica, with SIGKILL: no shutdown, no state saved.
    senders = [n for n in ("am-1", "am-2") if _sender(oncall) == ha.url(n)]
    assert len(senders) == 1, oncall.payload.get("client_url")
    sender = senders[0]
    survivor = "am-2" if sender == "am-1" else "am-1"
    # Mid-incident means after the sender gossiped "sent" to its peer. A crash inside that
    # window (within a gossip interval, 200 ms, of the send) makes the peer send the page again
    # after its peer-timeout: Alertmanager delivers at least once, with the same dedup key, which
    # PagerDuty folds into the open incident (docs/scaling.md). This test is about the failover
    # after that window. Alertmanager does not expose which log entries a peer holds (the
    # gossip counters also count the heartbeat's entries: waiting on them let the race through
    # once), so the kill comes 1 s after the page: five gossip intervals, and still before the
    # peer's check at its peer-timeout (2 s here).
    time.sleep(1.0)
    ha.nodes[sender].kill()
    ha.nodes["prom-a"].kill()
    killed_at = time.time()

    senior = _wait_trigger(ha, "pagerduty-senior", start, 60)
    manager = _wait_trigger(ha, "pagerduty-manager", start, 60)
    assert senior.at > killed_at and manager.at > senior.at
    assert _sender(senior) == _sender(manager) == ha.url(survivor)
    # The survivors saw what was lost (meta-monitoring, live): warnings to the ops channel.
    for alert in ("PrometheusReplicaDown", "AlertmanagerReplicaDown"):
        wait_until(
            lambda a=alert: ha.notifications.find(receiver="slack-ops", alertname=a, since=start),
            30,
            f"{alert} in slack-ops",
        )

    # Both come back mid-incident, with the data they had: no second page.
    ha.nodes[sender].start()
    ha.nodes["prom-a"].start()
    wait_until(
        lambda: ha.cluster_members("am-1") == ha.cluster_members("am-2") == 2,
        30,
        "the cluster whole again",
    )
    wait_until(
        lambda: any(a["alertname"] == FAULT_ALERT for a in ha.firing("prom-a")),
        30,
        "the restarted replica firing the incident again",
    )
    time.sleep(8)  # a group_interval and the restarted peer's settle: room for a duplicate
    for receiver in PAGERS:
        sent = _triggers(ha, receiver, start)
        assert len(sent) == 1, (receiver, _trace(_events(ha, receiver, start), start))

    _end_incident(ha, start)
    _assert_paged_once(ha, start, restarted=True)
