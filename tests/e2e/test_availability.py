"""End to end, availability and resources: healthy traffic, an error spike, a timeout storm,
slow deletions and a memory leak go in one end of a real stack (tests/e2e/e2e_support.py), the
right people get paged at the other, exactly once per level, and nothing after the clear; then
every dashboard query returns data from the same stack."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from e2e_support import (
    PAGER_WINDOW,
    Results,
    all_resolved,
    assert_pages,
    budget,
    firing,
    hold_until_escalated,
    incident_firing,
    notified,
    page_counts,
    quiet,
    settle_and_assert,
    wait,
)

from deletion_monitor_demo.run import PAGE_RECEIVERS, SLACK_RECEIVERS
from deletion_monitor_demo.stack import Stack

pytestmark = pytest.mark.slow


def test_healthy_traffic_pages_nobody(stack: Stack) -> None:
    """Healthy traffic: deletions succeed, nothing above info fires, only the heartbeat is sent."""
    since = stack.started_at
    time.sleep(10)
    assert stack.load is not None
    statuses = stack.load.stats.snapshot()["by_status"]
    assert statuses.get("200", 0) >= 50, statuses
    assert set(statuses) == {"200"}, f"healthy traffic had failures: {statuses}"
    loud = [
        (a["labels"]["alertname"], a["labels"].get("severity"))
        for a in stack.firing()
        if a["labels"].get("severity") in ("warning", "critical")
    ]
    assert loud == [], f"healthy traffic fired {loud}"
    paged = [
        n.line() for n in stack.notifications.all() if n.at >= since and n.receiver != "heartbeat"
    ]
    assert paged == [], "healthy traffic notified:\n" + "\n".join(paged)
    assert page_counts(stack, since) == {r: 0 for r in (*PAGE_RECEIVERS, *SLACK_RECEIVERS)}
    # The dead man's switch works: Watchdog reaches the heartbeat receiver, and only it.
    assert stack.notifications.find("heartbeat", "Watchdog", since=since)
    # The exporter's view equals the app's: every request became a counted audit row.
    total = stack.prom.query_value('sum(deletion_requests_total{job="deletion-audit-exporter"})')
    assert total is not None and total > 0


def test_error_spike_pages_oncall_escalates_and_resolves(stack: Stack, results: Results) -> None:
    """25 % failures: the error ratio, the post-deploy ladder and the burn rates are ONE
    availability incident: one on-call page (with a Slack copy), the compressed 15 minutes later
    one senior page, at 30 one manager page; cleared, all three PagerDuty incidents resolve and
    nothing pages again."""
    quiet(stack)
    t0 = time.time()
    stack.apply("error-spike")

    def level(receiver: str) -> list[Any]:
        return [
            n
            for n in stack.notifications.find(receiver, status="firing", since=t0)
            if n.incident == "availability"
        ]

    # Which alert of the incident fires first depends on the phase (steady or post-deploy: the
    # demo app is a fresh deploy); the incident's clock starts with the first.
    fired = wait(
        stack,
        lambda: incident_firing(stack, "availability"),
        budget(PAGER_WINDOW),
        "a critical alert of the availability incident firing",
    )
    paged = wait(stack, lambda: level("pagerduty-oncall"), budget(PAGER_WINDOW), "on-call page")
    wait(stack, lambda: level("slack-ops"), 20, "Slack copy of the page")
    page = level("pagerduty-oncall")[0]
    assert page.payload["payload"]["severity"] == "critical"
    assert page.payload["routing_key"] == "demo-pagerduty-oncall"  # read from the secret file
    assert page.alertnames and all(n.startswith("DeletionError") for n in page.alertnames)

    escalated = wait(stack, lambda: level("pagerduty-senior"), budget(15 * 60) + 30, "senior page")
    # Not before the compressed 15 minutes of firing (one evaluation of slack).
    assert escalated - fired >= stack.seconds(15 * 60) - 2, (fired, escalated)
    manager = wait(stack, lambda: level("pagerduty-manager"), budget(15 * 60) + 30, "manager page")
    assert manager - fired >= stack.seconds(30 * 60) - 2, (fired, manager)
    # Escalations never page on-call again: on-call only got the original alerts.
    assert not notified(stack, "pagerduty-oncall", "DeletionEscalationSenior", t0)

    stack.clear("error-spike")
    t1 = time.time()
    # Every PagerDuty incident of the fault ends resolved. The lagging alerts (keep_firing_for,
    # the 6h/30m burn rate) resolve last; until then the on-call incident may get updates.
    wait(stack, lambda: all_resolved(stack, t0, t1), 120, "all PagerDuty incidents resolved")
    resolved = max(n.at for n in stack.notifications.find(status="resolved", since=t1))
    time.sleep(8)  # more than a compressed group_interval + repeat: nothing may follow
    got = assert_pages(stack, "error-spike", t0, t1)
    assert all_resolved(stack, t0, t1), "a trigger followed the resolve"
    results["error-spike"] = {
        "alert_firing": fired - t0,
        "pagerduty_oncall": paged - t0,
        "pagerduty_senior": escalated - t0,
        "pagerduty_manager": manager - t0,
        "senior_after_firing": escalated - fired,
        "resolved_after_fix": max(0.0, resolved - t1),
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_timeout_storm_raises_performance_alert(stack: Stack, results: Results) -> None:
    """30 % of deletions outlive the statement timeout: more than 5 timeouts in the (compressed)
    hour fire DeletionTimeoutsHigh (warning) to the ops channel; the timed-out deletions fail, so
    the error ratio and the p95 page too, all ONE availability incident (with its escalations
    while it lasts). The long transactions also hold the audit cursor back (a monitoring warning,
    an incident of its own)."""
    quiet(stack)
    t0 = time.time()
    stack.apply("timeouts")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionTimeoutsHigh", "warning"),
            budget(3600) + 20,
            "DeletionTimeoutsHigh firing",
        )
        sent = wait(
            stack,
            lambda: notified(stack, "slack-ops", "DeletionTimeoutsHigh", t0),
            30,
            "slack-ops notification",
        )
        hold_until_escalated(stack, "timeouts", t0, follows=("monitoring",))
    finally:
        stack.clear("timeouts")
    t1 = time.time()
    timeouts = stack.prom.query_value(
        'sum(deletion_failures_total{job="deletion-audit-exporter",error_type="timeout"})'
    )
    assert timeouts is not None and timeouts > 5
    got = settle_and_assert(stack, "timeouts", t0, t1, follows=("monitoring",))
    results["timeouts"] = {
        "alert_firing": fired - t0,
        "slack_ops": sent - t0,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_slow_deletions_raise_latency_warnings_without_paging(
    stack: Stack, results: Results
) -> None:
    """Every deletion 6 s slower: the p95 passes 5 s (warning, below the 10 s critical level) and
    the average 2 s: the availability incident's latency SLI in the ops channel, nobody paged.
    The slow deletions hold their pooled connections: pool saturation (resources) is a
    consequence of its own."""
    quiet(stack)
    t0 = time.time()
    stack.apply("latency")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionLatencyP95High", "warning"),
            budget(600) + 30,
            "DeletionLatencyP95High warning firing",
        )
        sent = wait(
            stack,
            lambda: notified(stack, "slack-ops", "DeletionLatencyP95High", t0),
            30,
            "slack-ops notification",
        )
        time.sleep(stack.seconds(30 * 60))  # long enough for any escalation: there is none
    finally:
        stack.clear("latency")
    t1 = time.time()
    got = settle_and_assert(stack, "latency", t0, t1, follows=("resources",))
    results["latency"] = {
        "alert_firing": fired - t0,
        "slack_ops": sent - t0,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_memory_leak_raises_resource_alert_and_resolves(stack: Stack, results: Results) -> None:
    """Every deletion keeps 2 MiB: resident memory passes 80 % of the app's limit and
    DeletionAppMemoryHigh (warning) reaches the ops channel; released, it resolves."""
    quiet(stack)
    t0 = time.time()
    stack.apply("memory-leak")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionAppMemoryHigh", "warning"),
            budget(300) + 30,
            "DeletionAppMemoryHigh firing",
        )
        sent = wait(
            stack,
            lambda: notified(stack, "slack-ops", "DeletionAppMemoryHigh", t0),
            30,
            "slack-ops notification",
        )
        ratio = stack.prom.query_value("max(deletion:deletion_app_memory:ratio)")
        assert ratio is not None and ratio > 0.8
        hold_until_escalated(stack, "memory-leak", t0)
    finally:
        stack.clear("memory-leak")
    t1 = time.time()
    resolved = wait(
        stack,
        lambda: not firing(stack, "DeletionAppMemoryHigh"),
        60,
        "DeletionAppMemoryHigh resolved after the memory was released",
    )
    got = settle_and_assert(stack, "memory-leak", t0, t1)
    results["memory-leak"] = {
        "alert_firing": fired - t0,
        "slack_ops": sent - t0,
        "resolved_after_fix": resolved - t1,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


# Panels whose data this stack cannot produce, with the reason. Matched against the query.
NO_DATA_HERE = {
    r"\bprobe_": "prometheus-blackbox-exporter is not installed here",
    r"\bpg_": "postgres_exporter runs in docker-compose only",
    r"week_over_week|offset 1w|\[1w\]|\[7d\]": "needs a week of history",
}


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """Every panel query of the generated dashboards returns data from the live stack, except
    the listed ones whose source this stack does not run (reported as skipped with why)."""
    render = pytest.importorskip("deletion_monitor_tools.render_dashboards")
    if not hasattr(render, "all_panel_queries"):
        pytest.skip("render_dashboards.all_panel_queries() does not exist yet")
    # The scenarios before may have run on fresh monitoring (reset_monitoring), so this test
    # makes what its panels show itself: the error spike, held until an alert of it fires (the
    # "firing alerts" panels read ALERTS), queried while it lasts.
    stack.apply("error-spike")
    try:
        wait(
            stack,
            lambda: (
                incident_firing(stack, "availability", "warning")
                or incident_firing(stack, "availability")
            ),
            budget(PAGER_WINDOW),
            "an alert of the error spike firing",
        )
        empty, excused, total = _panel_queries_without_data(stack, render)
    finally:
        stack.clear("error-spike")
    assert total, "the dashboards have no queries"
    assert not empty, f"{len(empty)} of {total} panel queries return nothing:\n" + "\n".join(empty)
    if excused:
        pytest.skip(
            f"{len(excused)} of {total} queries need data this stack cannot "
            "produce:\n" + "\n".join(excused)
        )


def _panel_queries_without_data(stack: Stack, render: Any) -> tuple[list[str], list[str], int]:
    """(queries with no data and no excuse, those excused by NO_DATA_HERE, number of queries)."""
    queries = render.all_panel_queries(range_="1h", rate_interval="1m", interval="1m")
    excuses = {
        p: w for p, w in NO_DATA_HERE.items() if "probe" not in p or "blackbox" not in stack.procs
    }
    empty, excused = [], []
    for uid, title, expr in queries:
        if stack.prom.query(expr):
            continue
        reason = next((why for pat, why in excuses.items() if re.search(pat, expr)), None)
        (excused if reason else empty).append(f"{uid} / {title}: {expr} ({reason or 'no data'})")
    return empty, excused, len(queries)
