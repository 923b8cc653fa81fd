"""End to end, integrity, security and the monitoring itself: a token attack, skipped clean-ups
(orphans), the audit exporter down, the database down and an authentication bypass go in one end
of a real stack (tests/e2e/e2e_support.py), the right people get paged at the other, exactly
once per level, and nothing after the clear."""

from __future__ import annotations

import time

import pytest
from e2e_support import (
    INTEGRITY_WINDOW,
    Results,
    budget,
    firing,
    hold_until_escalated,
    notified,
    quiet,
    settle_and_assert,
    wait,
)

from deletion_monitor_demo.stack import Stack

pytestmark = pytest.mark.slow


def test_authorization_attack_reaches_security_channel(stack: Stack, results: Results) -> None:
    """Forged and non-admin tokens: DeletionAuthorizationFailuresHigh (category security) goes
    to the security receiver."""
    quiet(stack)
    assert stack.load is not None
    load = stack.load.stats

    def refused() -> int:  # the load generator's view: calls the endpoint answered 401/403
        return load.by_status.get("401", 0) + load.by_status.get("403", 0)

    def audited() -> float:  # the audit exporter's view, through Prometheus
        value = stack.prom.query_value(
            'sum(deletion_failures_total{job="deletion-audit-exporter",error_type="authorization"})'
        )
        return value or 0.0

    refused0, audited0 = refused(), audited()
    t0 = time.time()
    stack.apply("auth-attack")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionAuthorizationFailuresHigh"),
            budget(3600),
            "DeletionAuthorizationFailuresHigh firing",
        )
        sent = wait(
            stack,
            lambda: notified(stack, "slack-security", "DeletionAuthorizationFailuresHigh", t0),
            30,
            "slack-security notification",
        )
        note = notified(stack, "slack-security", "DeletionAuthorizationFailuresHigh", t0)[0]
        assert note.payload.get("channel") == "#security-alerts"
        # Refusals are not errors (config errorRate.excludedErrorTypes): the attack is the
        # security channel's, it must not page on-call through the error rate.
        assert not firing(stack, "DeletionErrorRateHigh")
        assert not notified(stack, "pagerduty-oncall", "DeletionErrorRateHigh", t0)
    finally:
        stack.clear("auth-attack")
    t1 = time.time()
    # The endpoint refused the attack (healthy traffic gets only 200), and every refusal became
    # one counted audit row: once scraped, the exporter's count grew by exactly the refusals.
    assert refused() > refused0, load.snapshot()
    wait(
        stack,
        lambda: audited() - audited0 == refused() - refused0,
        30,
        "the exporter counting every refusal the load generator saw",
    )
    got = settle_and_assert(stack, "auth-attack", t0, t1)
    results["auth-attack"] = {
        "alert_firing": fired - t0,
        "slack_security": sent - t0,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_skipped_cleanup_raises_integrity_alert(stack: Stack, results: Results) -> None:
    """Deletions that skip the manual clean-up leave orphaned dispatches/uploads/addresses: the
    integrity exporter counts them, DeletionOrphanedRecords (warning) reaches the ops channel, and
    as every deletion adds orphans the violations pass 10 (critical) and the completeness audit
    finds incompletely deleted users (critical): ONE integrity incident pages on-call, then the
    senior engineer and the manager while it lasts. Cleared and cleaned up, it resolves; nothing
    pages after."""
    quiet(stack)
    t0 = time.time()
    stack.apply("orphans")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionOrphanedRecords"),
            budget(INTEGRITY_WINDOW),
            "DeletionOrphanedRecords firing",
        )
        sent = wait(
            stack,
            lambda: notified(stack, "slack-ops", "DeletionOrphanedRecords", t0),
            30,
            "slack-ops notification",
        )
        paged = wait(
            stack,
            lambda: [
                n
                for n in stack.notifications.find("pagerduty-oncall", status="firing", since=t0)
                if n.incident == "integrity"
            ],
            budget(INTEGRITY_WINDOW),
            "the integrity incident paging on-call",
        )
        categories = {
            s.labels.get("check")
            for s in stack.prom.query(
                'deletion_integrity_violations{job="deletion-integrity-exporter",'
                'category="manual_cleanup"} > 0'
            )
        }
        assert categories, "no manual_cleanup check reports the orphans"
        hold_until_escalated(stack, "orphans", t0)
    finally:
        stack.clear("orphans")  # also removes the orphans (the runbook's clean-up)
    t1 = time.time()
    got = settle_and_assert(stack, "orphans", t0, t1)
    results["orphans"] = {
        "alert_firing": fired - t0,
        "slack_ops": sent - t0,
        "pagerduty_oncall": paged - t0,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_exporter_down_raises_meta_alert_and_resolves(stack: Stack, results: Results) -> None:
    """The audit exporter stops: DeletionAuditExporterDown (meta, critical) pages; restarted, it
    resolves."""
    quiet(stack)
    t0 = time.time()
    stack.apply("exporter-down")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionAuditExporterDown"),
            budget(300),
            "DeletionAuditExporterDown firing",
        )
        paged = wait(
            stack,
            lambda: notified(stack, "pagerduty-oncall", "DeletionAuditExporterDown", t0),
            30,
            "on-call page for the exporter",
        )
        hold_until_escalated(stack, "exporter-down", t0)
    finally:
        stack.clear("exporter-down")
    t1 = time.time()
    resolved = wait(
        stack,
        lambda: notified(stack, "pagerduty-oncall", "DeletionAuditExporterDown", t1, "resolved"),
        60,
        "DeletionAuditExporterDown resolved",
    )
    got = settle_and_assert(stack, "exporter-down", t0, t1)
    results["exporter-down"] = {
        "alert_firing": fired - t0,
        "pagerduty_oncall": paged - t0,
        "resolved_after_fix": resolved - t1,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_database_down_pages_and_everything_recovers(stack: Stack, results: Results) -> None:
    """PostgreSQL stops: both exporters stay up and report it (DeletionAuditDatabaseDown,
    DeletionIntegrityDatabaseDown page on-call), the app answers 503; PostgreSQL back, the
    alerts resolve and deletions succeed again without restarting anything else."""
    quiet(stack)
    t0 = time.time()
    stack.apply("database-down")
    try:
        fired = wait(
            stack,
            lambda: (
                firing(stack, "DeletionAuditDatabaseDown")
                and firing(stack, "DeletionIntegrityDatabaseDown")
            ),
            budget(300) + 20,
            "both database-down alerts firing",
        )
        paged = wait(
            stack,
            lambda: notified(stack, "pagerduty-oncall", "DeletionAuditDatabaseDown", t0),
            30,
            "on-call page for the database",
        )
        # The exporters themselves are still scraped: the outage is reported, not blind.
        assert not firing(stack, "DeletionAuditExporterDown")
        hold_until_escalated(stack, "database-down", t0)
    finally:
        stack.clear("database-down")
    t1 = time.time()
    resolved = wait(
        stack,
        lambda: (
            not firing(stack, "DeletionAuditDatabaseDown")
            and not firing(stack, "DeletionIntegrityDatabaseDown")
        ),
        60,
        "database-down alerts resolved",
    )
    assert stack.load is not None
    ok_before = stack.load.stats.by_status.get("200", 0)
    wait(
        stack,
        lambda: stack.load.stats.by_status.get("200", 0) > ok_before + 10,
        30,
        "deletions succeeding again",
    )
    # No integrity incident follows: the failures written while the database could not answer,
    # or just after (pool timeouts of the calls queued during the outage), carry no target or
    # caller type, and audit_rows_missing_fields accepts that for `database` and `timeout`.
    got = settle_and_assert(stack, "database-down", t0, t1)
    results["database-down"] = {
        "alert_firing": fired - t0,
        "pagerduty_oncall": paged - t0,
        "resolved_after_fix": resolved - t1,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }


def test_auth_bypass_fails_the_blackbox_probe(stack: Stack, results: Results) -> None:
    """The endpoint stops checking tokens: the real blackbox exporter's bogus-token DELETE gets
    404 instead of 401/403, DeletionEndpointAuthProbeFailed (critical, security) pages on-call
    and reaches the security channel; fixed, the probe succeeds again."""
    if "blackbox" not in stack.procs:
        pytest.skip("prometheus-blackbox-exporter is not installed (Debian package)")
    quiet(stack)
    assert stack.prom.query_value('min(probe_success{job="deletion-auth-probe"})') == 1
    t0 = time.time()
    stack.apply("auth-bypass")
    try:
        fired = wait(
            stack,
            lambda: firing(stack, "DeletionEndpointAuthProbeFailed"),
            budget(120),
            "DeletionEndpointAuthProbeFailed firing",
        )
        paged = wait(
            stack,
            lambda: (
                notified(stack, "pagerduty-oncall", "DeletionEndpointAuthProbeFailed", t0)
                and notified(stack, "slack-security", "DeletionEndpointAuthProbeFailed", t0)
            ),
            30,
            "on-call page and security channel",
        )
        status = stack.prom.query_value('max(probe_http_status_code{job="deletion-auth-probe"})')
        assert status == 404
        hold_until_escalated(stack, "auth-bypass", t0, follows=("integrity",))
    finally:
        stack.clear("auth-bypass")
    t1 = time.time()
    resolved = wait(
        stack,
        lambda: stack.prom.query_value('min(probe_success{job="deletion-auth-probe"})') == 1,
        30,
        "the probe succeeding again",
    )
    # The deletions made without authentication have no performer in the audit log: the
    # audit-trail check finds them, an integrity incident of its own (docs/demo.md).
    got = settle_and_assert(stack, "auth-bypass", t0, t1, follows=("integrity",))
    results["auth-bypass"] = {
        "alert_firing": fired - t0,
        "pagerduty_and_security": paged - t0,
        "probe_ok_after_fix": resolved - t1,
        **{f"pages_{k}": float(v) for k, v in got.items()},
    }
