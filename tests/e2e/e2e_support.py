"""What every end-to-end scenario module shares: one real stack per module, the waits, and the
page accounting (exact pages per PagerDuty receiver and Slack channel, nothing after the clear).

The stack (deletion_monitor_demo.stack) is PostgreSQL, the demo app, both exporters, Prometheus with
the rules rendered at COMPRESSION, Alertmanager with a demo copy of the routing tree, the local
Slack/PagerDuty sink and SMTP server and the load generator. Only Slack, PagerDuty and email are
stand-ins; every other part is the real process. The scenario modules (test_*.py here) each get
their own stack, so they can run side by side (`pytest -n 2`, Makefile `test`): their waits are
the compressed alert windows, not CPU.

Detection times are merged into bench/out/e2e-detection.json (docs/benchmarks.md, "End-to-end
detection times").
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deletion_monitor_demo.run import EXPECTED_PAGES, PAGE_RECEIVERS, SLACK_RECEIVERS
from deletion_monitor_demo.stack import Stack, StackOptions, remove_workdir

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPRESSION = 60.0
# Spec windows (production seconds) the detections must meet, played at COMPRESSION. Each is
# the alert's own `for` plus its measurement window plus a margin for scrape, evaluation and
# group_wait, all compressed, with a floor of real seconds for a 2-core machine under load.
PAGER_WINDOW = 15 * 60  # error rate above 2 % must page within the critical ladder
INTEGRITY_WINDOW = 15 * 60  # R43: integrity issues detected within 15 min

Results = dict[str, dict[str, float]]  # scenario -> measure -> seconds


def module_stack(results: Results) -> Iterator[Stack]:
    """A started stack after a healthy warm-up; stopped (and its detection times written) when
    the module is done. Set KEEP_E2E_WORKDIR=1 to keep its logs and data."""
    workdir = Path(tempfile.mkdtemp(prefix="dm-e2e-"))
    s = Stack(StackOptions(workdir=workdir, time_compression=COMPRESSION, rate=5.0))
    try:
        s.start()
    except Exception:
        remove_workdir(workdir)
        raise
    try:
        # Healthy warm-up: every rate window (5m compressed = 5 s) holds healthy traffic.
        time.sleep(8)
        yield s
    finally:
        s.stop()
        write_results(results)
        if not os.environ.get("KEEP_E2E_WORKDIR"):
            remove_workdir(workdir)


def write_results(results: Results) -> None:
    """Merge this module's detection times into bench/out/e2e-detection.json (under a lock: the
    modules may finish at the same time in two pytest workers)."""
    if not results:
        return
    out = REPO_ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "e2e-detection.json"
    with open(out / ".e2e-detection.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            scenarios = json.loads(path.read_text()).get("scenarios", {})
        except (OSError, ValueError):
            scenarios = {}
        doc = {
            "time_compression": COMPRESSION,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            "scenarios": scenarios | results,
        }
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print("\nend-to-end detection times (seconds, compression x60):")
    for name, times in results.items():
        print(f"  {name:<16} " + "  ".join(f"{k}={v:.1f}" for k, v in times.items()))


def budget(production_seconds: float, floor: float = 30.0) -> float:
    return max(floor, production_seconds / COMPRESSION * 2)


def firing(stack: Stack, alertname: str, severity: str | None = None) -> bool:
    return any(
        a["labels"].get("alertname") == alertname
        and (severity is None or a["labels"].get("severity") == severity)
        for a in stack.firing()
    )


def incident_firing(stack: Stack, incident: str, severity: str = "critical") -> bool:
    return any(
        a["labels"].get("incident") == incident
        and a["labels"].get("severity") == severity
        and "escalation" not in a["labels"]
        for a in stack.firing()
    )


def notified(
    stack: Stack, receiver: str, alertname: str, since: float, status: str | None = "firing"
):
    return stack.notifications.find(receiver, alertname, status, since)


def last_status(stack: Stack, receiver: str, alertname: str, since: float) -> str | None:
    """Status ("firing"/"resolved") of the latest notification of `alertname` to `receiver`."""
    found = notified(stack, receiver, alertname, since, status=None)
    return found[-1].status if found else None


def wait(stack: Stack, predicate: Any, timeout: float, what: str) -> float:
    try:
        return stack.wait_for(predicate, timeout, what=what)
    except TimeoutError as exc:
        now_firing = sorted(
            {(a["labels"]["alertname"], a["labels"].get("severity")) for a in stack.firing()}
        )
        notes = [n.line() for n in stack.notifications.all() if n.receiver != "heartbeat"][-15:]
        pytest.fail(f"{exc}\nfiring now: {now_firing}\nlast notifications:\n" + "\n".join(notes))


def page_counts(
    stack: Stack, since: float, until: float | None = None, follows: tuple[str, ...] = ()
) -> dict[str, int]:
    """PagerDuty incidents opened per receiver (trigger of a dedup key not open) and incidents
    each Slack channel was told about, since `since`, leaving out the incidents in `follows`."""
    opened = [n for n in stack.notifications.opened(since, until) if n.incident not in follows]
    told = stack.notifications.incidents(since, until)
    return {r: sum(n.receiver == r for n in opened) for r in PAGE_RECEIVERS} | {
        r: len(told.get(r, set()) - set(follows)) for r in SLACK_RECEIVERS
    }


def assert_pages(
    stack: Stack, scenario: str, t0: float, cleared: float, follows: tuple[str, ...] = ()
) -> dict[str, int]:
    """The exact pages of `scenario` until the clear (deletion_monitor_demo.run.EXPECTED_PAGES, what
    the demo prints and docs/demo.md lists), one dedup key per PagerDuty receiver, and after the
    clear no PagerDuty incident opened (a trigger of an open key is an update, not a page) and no
    Slack channel told about an incident it had not heard of, except the incidents in `follows`:
    consequences of the fault that are incidents of their own, left out of the counts (documented
    per scenario in docs/demo.md)."""
    got = page_counts(stack, t0, cleared, follows)
    want = {r: EXPECTED_PAGES[scenario].get(r, 0) for r in (*PAGE_RECEIVERS, *SLACK_RECEIVERS)}
    notes = [
        n.line() for n in stack.notifications.all() if n.at >= t0 and n.receiver != "heartbeat"
    ]
    assert got == want, f"{scenario}: {got} != {want}\n" + "\n".join(notes)
    for receiver in PAGE_RECEIVERS:
        keys = {
            n.key
            for n in stack.notifications.opened(t0, cleared)
            if n.receiver == receiver and n.incident not in follows
        }
        assert len(keys) == want[receiver], (receiver, keys)
    late = [n.line() for n in stack.notifications.opened(cleared) if n.incident not in follows]
    assert not late, "paged after the clear:\n" + "\n".join(late)
    before = stack.notifications.incidents(t0, cleared)
    after = stack.notifications.incidents(cleared)
    new = {
        r: i - before.get(r, set()) - set(follows)
        for r, i in after.items()
        if i - before.get(r, set()) - set(follows)
    }
    assert not new, f"new incidents after the clear: {new}"
    return got


def all_resolved(
    stack: Stack, t0: float, until: float | None = None, follows: tuple[str, ...] = ()
) -> bool:
    """Every PagerDuty incident opened between t0 and `until` (but those of `follows`) is
    resolved again (the last event of its key a resolve)."""
    keys = {
        (n.receiver, n.key)
        for n in stack.notifications.opened(t0, until)
        if n.incident not in follows
    }
    last: dict[tuple[str, str], str] = {}
    for n in stack.notifications.all():
        if n.channel == "pagerduty" and (n.receiver, n.key) in keys:
            last[(n.receiver, n.key)] = n.status
    return bool(last) and set(last.values()) == {"resolved"}


def quiet(stack: Stack, timeout: float = 120, ignore: tuple[str, ...] = ()) -> None:
    """Wait until nothing above info fires (the previous scenario's incident has ended), so that
    each scenario's pages are its own; incidents in `ignore` may stay open."""

    def loud() -> list[Any]:
        return [
            a
            for a in stack.firing()
            if a["labels"].get("severity") in ("warning", "critical")
            and a["labels"].get("incident") not in ignore
        ]

    try:
        stack.wait_for(lambda: not loud(), 20, what="the previous scenario's alerts resolved")
    except TimeoutError:
        # The slow windows (the 6h and 3d burn rates: 6 and 72 min of real time at compression
        # 60) keep the previous fault's warnings firing long after its incident resolved: start
        # this scenario on fresh monitoring rather than count them as its own; orphans a fault
        # left in the database (deletions in flight at its clear) are cleaned up too.
        stack.clean_up_orphans()
        stack.reset_monitoring()
        time.sleep(8)  # every compressed 5m window holds healthy traffic again
        wait(stack, lambda: not loud(), timeout, "quiet on fresh monitoring")


def hold_until_escalated(
    stack: Stack, scenario: str, t0: float, follows: tuple[str, ...] = ()
) -> None:
    """Keep the fault on until its incident has paged every level EXPECTED_PAGES lists (the
    compressed 15 and 30 minutes after the first page)."""
    for receiver in ("pagerduty-senior", "pagerduty-manager"):
        if EXPECTED_PAGES[scenario].get(receiver):
            wait(
                stack,
                lambda r=receiver: [
                    n
                    for n in stack.notifications.find(r, status="firing", since=t0)
                    if n.incident not in follows
                ],
                budget(30 * 60) + 30,
                f"{receiver} page",
            )


def settle_and_assert(
    stack: Stack, scenario: str, t0: float, cleared: float, follows: tuple[str, ...] = ()
) -> dict[str, int]:
    """After the clear: every PagerDuty incident the scenario opened resolves, then nothing
    follows for a compressed group interval and repeat; the pages are exactly the expected
    ones (see _assert_pages for `follows`)."""
    paging = any(EXPECTED_PAGES[scenario].get(r) for r in PAGE_RECEIVERS)
    if paging:
        wait(
            stack,
            lambda: all_resolved(stack, t0, cleared, follows),
            120,
            "the PagerDuty incidents resolved",
        )
    time.sleep(8)
    got = assert_pages(stack, scenario, t0, cleared, follows)
    if paging:
        assert all_resolved(stack, t0, cleared, follows), "a trigger followed the resolve"
    return got
