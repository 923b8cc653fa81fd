"""The audit exporter's reconnect backoff is bounded for any number of consecutive failures (the
poller that lives through them on a real PostgreSQL: tests/integration/test_audit_startup.py)."""

from __future__ import annotations


def test_backoff_is_bounded_for_any_number_of_failures() -> None:
    from deletion_monitor.audit.poller import backoff_delay

    assert backoff_delay(1, 5.0, 30.0) == 5.0
    assert backoff_delay(2, 5.0, 30.0) == 10.0
    for failures in (1025, 10**6, 10**18):
        assert backoff_delay(failures, 5.0, 30.0) == 30.0
        assert backoff_delay(failures, 3600.0, 30.0) == 30.0
