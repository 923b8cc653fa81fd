"""`make demo`: the whole stack on this machine, a live summary, and an incident on request.

    deletion-monitor-demo run                          # healthy traffic until Ctrl-C
    deletion-monitor-demo run --scenario error-spike   # fault after a healthy warm-up
    deletion-monitor-demo run --scenario orphans --fault-for 60 --duration 120

Starts PostgreSQL, the demo app, both exporters, Prometheus (rules rendered with
--time-compression, default 60: a 15-minute escalation takes 15 s), Alertmanager (a demo copy
of alertmanager/alertmanager.yml whose receivers post to local sinks) and the load generator, all
on 127.0.0.1; prints the URLs, then what fires and who is notified. Ctrl-C or SIGTERM stops
everything it started. Scenarios: see deletion_monitor_demo.load.SCENARIOS and docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deletion_monitor.common.config import ConfigError, load_config
from deletion_monitor.common.promapi import PrometheusClient
from deletion_monitor.reports import watch
from deletion_monitor_demo.load import SCENARIOS
from deletion_monitor_demo.stack import Stack, StackError, StackOptions, remove_workdir

# What each scenario pages, per receiver, when its fault is held for at least the compressed 30
# minutes of the manager escalation (then cleared): PagerDuty incidents opened (distinct dedup
# keys; docs/alerting.md "Incidents and grouping") and, for Slack, the incidents the channel is
# told about. One fault is one incident: one page per escalation level, never one per alert.
# A fault cleared earlier stops at the level it reached (on-call only, if cleared within 15).
# tests/e2e/ asserts these figures against the real stack; docs/demo.md lists them.
PAGE_RECEIVERS = ("pagerduty-oncall", "pagerduty-senior", "pagerduty-manager")
SLACK_RECEIVERS = ("slack-ops", "slack-security")
_CRITICAL = {"pagerduty-oncall": 1, "pagerduty-senior": 1, "pagerduty-manager": 1}
EXPECTED_PAGES: dict[str, dict[str, int]] = {
    "healthy": {},
    # The error ratio, the post-deploy ladder and the burn rates: one availability incident.
    "error-spike": {**_CRITICAL, "slack-ops": 1},
    # Slow deletions are the availability incident too (its latency SLI); warnings only.
    "latency": {"slack-ops": 1},
    # Timed-out deletions fail: the error ratio pages, with the latency and timeout alerts, as
    # one availability incident.
    "timeouts": {**_CRITICAL, "slack-ops": 1},
    # Refusals are no availability errors: a security warning, nobody is paged.
    "auth-attack": {"slack-ops": 1, "slack-security": 1},
    "auth-bypass": {**_CRITICAL, "slack-ops": 1, "slack-security": 1},
    "memory-leak": {**_CRITICAL, "slack-ops": 1},
    # Every deletion leaves rows behind: the violations pass 10 (critical) within seconds and the
    # completeness audit finds incompletely deleted users (critical): one integrity incident.
    "orphans": {**_CRITICAL, "slack-ops": 1},
    "exporter-down": {**_CRITICAL, "slack-ops": 1},
    "database-down": {**_CRITICAL, "slack-ops": 1},
}


def expectation(name: str) -> str:
    """The demo's expectation line for a scenario: pages and Slack incidents per receiver."""
    expected = EXPECTED_PAGES.get(name, {})
    pages = ", ".join(f"{r}={expected.get(r, 0)}" for r in PAGE_RECEIVERS)
    slack = ", ".join(f"{r}={expected.get(r, 0)}" for r in SLACK_RECEIVERS)
    return f"PagerDuty incidents {pages}; Slack incidents {slack}"


HELP = "the whole stack on this machine, a live summary, and an incident on request (make demo)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        default="healthy",
        choices=list(SCENARIOS),
        help="incident to inject after the warm-up (default healthy)",
    )
    parser.add_argument(
        "--time-compression",
        type=float,
        default=60.0,
        help="divide every rule/routing duration by this (1 = production)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of healthy traffic before the fault (default 20)",
    )
    parser.add_argument(
        "--fault-for",
        type=float,
        default=0,
        help="seconds the fault lasts, then it is cleared (0 = until the end)",
    )
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (0 = until Ctrl-C)"
    )
    parser.add_argument("--rate", type=float, default=5.0, help="deletions per second")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where logs, configs and data go (default: a temp dir, removed)",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="always use free ports instead of 9090/9093/8080/…",
    )


def _fmt_alerts(stack: Stack) -> list[str]:
    rows: dict[tuple[str, str], int] = {}
    for alert in stack.firing():
        labels = alert.get("labels", {})
        name = labels.get("alertname", "?")
        if labels.get("escalation"):
            name += f"({labels.get('incident', '?')} incident)"
        rows[(name, labels.get("severity", ""))] = (
            rows.get((name, labels.get("severity", "")), 0) + 1
        )
    return [
        f"{sev:<8} {name}" + (f" ×{n}" if n > 1 else "") for (name, sev), n in sorted(rows.items())
    ]


def summary(stack: Stack, since: float, tty: bool) -> str:
    """The live summary: load, firing alerts, notifications per receiver."""
    load = stack.load.stats.snapshot() if stack.load else {}
    alerts = _fmt_alerts(stack)
    counts = stack.notifications.counts(since)
    pages = stack.notifications.pages(since)
    elapsed = time.time() - since
    if not tty:
        return (
            f"[{elapsed:5.0f}s] sent={load.get('sent', 0)} status={load.get('by_status', {})} "
            f"firing={len(alerts)} {'; '.join(a.split(maxsplit=1)[1] for a in alerts)} "
            f"notified={counts} pages={pages}"
        )
    lines = [f"deletion-monitoring demo — {elapsed:.0f}s — Ctrl-C stops everything", ""]
    lines.append(f"load: {load.get('sent', 0)} calls, by status {load.get('by_status', {})}")
    lines.append("")
    lines.append(f"firing alerts ({len(alerts)}):")
    lines += [f"  {a}" for a in alerts] or ["  (none)"]
    lines.append("")
    lines.append(
        "notifications per receiver: "
        + (", ".join(f"{k}={v}" for k, v in counts.items()) or "none")
    )
    lines.append(
        "PagerDuty incidents opened: " + (", ".join(f"{k}={v}" for k, v in pages.items()) or "none")
    )
    recent = [n for n in stack.notifications.all() if n.receiver != "heartbeat"][-10:]
    lines += [f"  {n.line()}" for n in recent]
    return "\n".join(lines)


def console(stack: Stack, time_compression: float, tty: bool) -> str:
    """The `deletion-monitor watch` frame for this stack: deletions, error rate, p95, alerts.

    The same figures an operator gets from `deletion-monitor watch --prometheus URL`, with the
    stack's time compression so that "the last hour" is the compressed hour the rules see.
    """
    cfg = load_config(env={"TIME_COMPRESSION": str(time_compression)})
    thr = watch.thresholds(
        argparse.Namespace(error_rate_threshold=None, response_time_threshold=None), cfg
    )
    snap = watch.snapshot(PrometheusClient(stack.url("prometheus"), timeout=10), cfg, thr, None)
    return watch.frame(snap, thr, None) if tty else json.dumps(snap, sort_keys=True)


def urls(stack: Stack) -> str:
    return "\n".join(
        [
            f"  Prometheus    {stack.url('prometheus')}   (alerts: /alerts, rules: /rules)",
            f"  Alertmanager  {stack.url('alertmanager')}",
            f"  demo app      {stack.url('app')}   (DELETE /api/users/{{id}}, /metrics, "
            "/admin/faults)",
            f"  audit exp.    {stack.url('audit')}/metrics",
            f"  integrity     {stack.url('integrity')}/metrics",
            f"  sinks         {stack.url('sink')} (Slack/PagerDuty/webhook), "
            f"smtp 127.0.0.1:{stack.ports['smtp']}",
            f"  PostgreSQL    {stack.dsn}",
            f"  work dir      {stack.opts.workdir} (logs/, prometheus.yml, alertmanager.yml)",
        ]
    )


def run(args: argparse.Namespace) -> int:
    if args.time_compression <= 0 or args.rate <= 0:
        print("demo: --time-compression and --rate must be positive", file=sys.stderr)
        return 2
    warmup = 20.0 if args.warmup is None else args.warmup
    own_dir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="deletion-demo-"))
    tty = sys.stdout.isatty()
    scenario = SCENARIOS[args.scenario]

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    stack = Stack(
        StackOptions(
            workdir=workdir,
            time_compression=args.time_compression,
            rate=args.rate,
            fixed_ports=not args.free_ports,
            echo=not tty,
        )
    )
    start = time.time()
    try:
        print(
            f"demo: starting the stack (time compression {args.time_compression:g}) …", flush=True
        )
        try:
            stack.start()
        except (StackError, ConfigError, OSError, subprocess.SubprocessError) as exc:
            print(f"demo: could not start: {exc}", file=sys.stderr)
            return 2
        print(f"demo: up in {time.time() - start:.1f}s\n{urls(stack)}", flush=True)
        print(f"demo: scenario {scenario.name}: {scenario.description}", flush=True)
        fault_at = time.time() + warmup if scenario.name != "healthy" else None
        fault_on = False
        cleared = False
        began = time.time()
        while not args.duration or time.time() - began < args.duration:
            now = time.time()
            if fault_at is not None and not fault_on and now >= fault_at:
                stack.apply(scenario)
                fault_on = True
                print(
                    f"demo: fault injected: {scenario.description}; expect "
                    f"{', '.join(scenario.expected_alerts) or '-'}: {expectation(scenario.name)}"
                    " (escalations if it lasts 15/30 compressed minutes)",
                    flush=True,
                )
            if fault_on and not cleared and args.fault_for and now >= fault_at + args.fault_for:
                stack.clear(scenario)
                cleared = True
                print("demo: fault cleared; the alerts resolve next", flush=True)
            text = summary(stack, began, tty)
            if tty:
                sys.stdout.write("\033[H\033[J" + text + "\n")
                sys.stdout.flush()
            else:
                print(text, flush=True)
            time.sleep(2 if tty else 5)
        print(summary(stack, began, False), flush=True)
        told = stack.notifications.incidents(began)
        print(
            f"demo: PagerDuty incidents opened {stack.notifications.pages(began)}; Slack "
            f"incidents { {r: sorted(told.get(r, ())) for r in SLACK_RECEIVERS} }; expected "
            f"{expectation(scenario.name)}",
            flush=True,
        )
        print("\n" + console(stack, args.time_compression, tty), flush=True)
    except KeyboardInterrupt:
        print("\ndemo: stopping …", flush=True)
    finally:
        stack.stop()
        if own_dir:
            remove_workdir(workdir)
    print("demo: everything stopped", flush=True)
    return 0


if __name__ == "__main__":
    from deletion_monitor_demo.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
