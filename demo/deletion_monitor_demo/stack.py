"""The whole monitoring stack on 127.0.0.1, started and stopped as one object.

Used by `make demo` (deletion_monitor_demo.run) and the end-to-end tests (tests/e2e/):

    PostgreSQL (pgcluster) with reference_app.sql + deletion_audit.sql
    demo app  ->  audit exporter, integrity exporter  ->  Prometheus (rules, time-compressed)
    ->  Alertmanager (a demo copy of alertmanager.yml)  ->  local Slack/PagerDuty/webhook sink
    and SMTP server (deletion_monitor_demo.sinks);  the load generator drives the app.

Every child process is a ManagedProcess in its own process group with its log in the work
directory; stop() stops all of them, whatever state start() reached. Nothing here knows the
internals of the exporters, the rules or the routing tree: it uses their command lines, their
rendered files and their documented formats, and fails with a message naming what is missing.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from deletion_monitor.common.config import load_config
from deletion_monitor.common.durations import parse_duration
from deletion_monitor.common.promapi import PrometheusClient, PrometheusError
from deletion_monitor.data import schema_path
from deletion_monitor.integrity.checks import DEFAULT_CHECKS_PATH
from deletion_monitor_demo.app.service import PROBE_USER_ID
from deletion_monitor_demo.load import SCENARIOS, LoadGenerator, Scenario, set_app_faults
from deletion_monitor_demo.pgcluster import REPO_ROOT, PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http
from deletion_monitor_demo.sinks import HttpSink, NotificationLog, SmtpSink

log = logging.getLogger("deletion_monitor_demo.stack")

# Shipped with the product (deletion_monitor/data/schema), applied in this order.
SCHEMA_FILES = ("reference_app", "deletion_audit")
# Ports `make demo` prefers (the usual ones, so the URLs are familiar); a taken port falls back
# to a free one. Tests always use free ports.
DEFAULT_PORTS = {
    "prometheus": 9090,
    "alertmanager": 9093,
    "app": 8080,
    "audit": 9817,
    "integrity": 9818,
    "sink": 9099,
    "smtp": 2525,
    "blackbox": 9115,
}
# The probe's target: a well-formed id that belongs to nobody (as in prometheus/prometheus.yml).
PROBE_PATH = f"/api/users/{PROBE_USER_ID}"
BLACKBOX_BINARY = "prometheus-blackbox-exporter"
# Secret-file keys of Alertmanager 0.25 (its 0.25 configuration reference; docs/alertmanager.md).
_SECRET_FILE_KEYS = {
    "api_url_file", "slack_api_url_file", "routing_key_file", "service_key_file",
    "auth_password_file", "smtp_auth_password_file", "credentials_file", "password_file",
}  # fmt: skip


# The manual clean-up of the endpoint, done after the fact (the recommendations of the
# manual_cleanup checks in deletion_monitor/checks/default.yml): what a skipped clean-up left.
_GONE = 'NOT EXISTS (SELECT 1 FROM profiles p WHERE p.id = {col} AND p."deletedAt" IS NULL)'
ORPHAN_CLEANUP = (
    'UPDATE dispatches d SET "driverId" = NULL WHERE d."driverId" IS NOT NULL AND '
    + _GONE.format(col='d."driverId"'),
    'UPDATE dispatches d SET "userId" = NULL WHERE d."userId" IS NOT NULL AND '
    + _GONE.format(col='d."userId"'),
    'UPDATE file_uploads f SET "userId" = NULL WHERE f."userId" IS NOT NULL AND '
    + _GONE.format(col='f."userId"'),
    'DELETE FROM addresses a WHERE a."createdBy" IS NOT NULL AND '
    + _GONE.format(col='a."createdBy"')
    + ' AND NOT EXISTS (SELECT 1 FROM user_addresses ua WHERE ua."addressId" = a.id)'
    ' AND NOT EXISTS (SELECT 1 FROM catering_requests r WHERE r."pickupAddressId" = a.id)'
    ' AND NOT EXISTS (SELECT 1 FROM catering_requests r WHERE r."deliveryAddressId" = a.id)'
    ' AND NOT EXISTS (SELECT 1 FROM on_demand_requests r WHERE r."pickupAddressId" = a.id)'
    ' AND NOT EXISTS (SELECT 1 FROM on_demand_requests r WHERE r."deliveryAddressId" = a.id)',
)


class StackError(RuntimeError):
    """The stack could not start: the message names the missing piece or the failing process."""


@dataclass
class StackOptions:
    workdir: Path
    time_compression: float = 60.0
    rate: float = 5.0  # deletions per second of the load generator
    concurrency: int = 16
    fixed_ports: bool = False
    load: bool = True  # start the load generator
    echo: bool = False  # print every notification as it arrives
    token_secret: str = "demo-token-secret"
    memory_limit: int = 256 * 1024 * 1024
    base_latency: float = 0.15  # median seconds of a healthy deletion
    app_version: str = "demo-1.0.0"


@dataclass
class Stack:
    """start() brings everything up; stop() tears it down; the attributes are for inspection."""

    opts: StackOptions
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    notifications: NotificationLog = field(default_factory=NotificationLog)
    pg: PgCluster | None = None
    dsn: str = ""
    load: LoadGenerator | None = None
    rule_files: list[Path] = field(default_factory=list)
    started_at: float = 0.0
    _sink: HttpSink | None = None
    _smtp: SmtpSink | None = None

    # --- addresses ----------------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def prom(self) -> PrometheusClient:
        return PrometheusClient(self.url("prometheus"), timeout=10)

    @property
    def compression(self) -> float:
        return self.opts.time_compression

    def seconds(self, real_seconds: float) -> float:
        """A production duration as it plays out in this stack."""
        return real_seconds / self.compression

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> Stack:
        self.started_at = time.time()
        work = self.opts.workdir
        work.mkdir(parents=True, exist_ok=True)
        # PostgreSQL runs as the `postgres` user when we are root: it must reach pg/ inside.
        work.chmod(0o755)
        try:
            self._pick_ports()
            self._start_sinks()
            self._start_database()
            rendered = self._render()
            self._start_app()
            self._start_exporters()
            self._start_blackbox()
            self._start_alertmanager(rendered)
            self._start_prometheus()
            if self.opts.load:
                self.start_load()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything this stack started (safe to call twice, and after a failed start)."""
        if self.load is not None:
            with contextlib.suppress(Exception):
                self.load.stop()
            self.load = None
        for name in ("prometheus", "alertmanager", "blackbox", "integrity", "audit", "app"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop()
        if self.pg is not None:
            self.pg.stop("immediate")
            self.pg = None
        for sink in (self._smtp, self._sink):
            if sink is not None:
                with contextlib.suppress(Exception):
                    sink.stop()
        self._smtp = self._sink = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- pieces -------------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        taken: set[int] = set()
        for name, preferred in DEFAULT_PORTS.items():
            port = preferred if self.opts.fixed_ports and _port_free(preferred) else free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            self.ports[name] = port
            if self.opts.fixed_ports and port != preferred:
                # Said out loud: someone opening the usual URL would otherwise reach whatever
                # holds the port (another Prometheus, a colleague's demo), not this stack.
                print(f"demo: port {preferred} ({name}) is taken: using {port}", flush=True)
        self.ports["pg"] = free_port()

    def _start_sinks(self) -> None:
        if self.opts.echo:
            self.notifications.echo = lambda line: print(f"  notification  {line}", flush=True)
        self._sink = HttpSink(self.notifications, self.ports["sink"]).start()
        self._smtp = SmtpSink(self.notifications, self.ports["smtp"]).start()

    def _start_database(self) -> None:
        self.pg = PgCluster(base_dir=self.opts.workdir / "pg", port=self.ports["pg"])
        self.pg.start()
        self.dsn = self.pg.create_database("deletion_demo")
        for name in SCHEMA_FILES:
            apply_sql_file(self.dsn, schema_path(name))

    def reset_monitoring(self) -> None:
        """A fresh Prometheus and Alertmanager (empty TSDB, no open alert groups) on the same
        ports; app, exporters, database and sinks untouched. Between end-to-end scenarios: a
        compressed 3d burn-rate window still holds the previous fault for an hour of real time,
        and its warnings would be counted as the next scenario's pages."""
        for name in ("prometheus", "alertmanager"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop()
        for data in ("prometheus-data", "alertmanager-data"):
            shutil.rmtree(self.opts.workdir / data, ignore_errors=True)
        self._start_alertmanager(self._render())
        self._start_prometheus()

    def _render(self) -> dict[str, str]:
        """Rules and the Alertmanager config rendered with TIME_COMPRESSION, into the workdir."""
        from deletion_monitor_tools.generate import render_all

        env = {"TIME_COMPRESSION": f"{self.compression:g}"} if self.compression != 1 else {}
        files = render_all(env=env)
        out = self.opts.workdir / "generated"
        for rel, text in files.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.rule_files = sorted(
            out / rel
            for rel, text in files.items()
            if rel.startswith("alert_rules/")
            and rel.endswith((".yml", ".yaml"))
            and isinstance(yaml.safe_load(text), dict)
            and "groups" in yaml.safe_load(text)
        )
        if not self.rule_files:
            raise StackError(
                "no alert rules rendered: `python -m deletion_monitor_tools.generate` produced "
                "no alert_rules/*.yml (is deletion_monitor_tools.render_rules registered in "
                "RENDERERS?)"
            )
        return files

    def _command(self, name: str, *argv: str) -> list[str]:
        """The command line of a `deletion-monitor NAME` subcommand (see run_subcommand)."""
        return [sys.executable, "-m", "deletion_monitor_demo.stack", name, *argv]

    def _spawn(self, key: str, argv: list[str], ready_url: str, timeout: float = 30) -> None:
        proc = ManagedProcess(argv, self.opts.workdir / "logs" / f"{key}.log", cwd=REPO_ROOT)
        self.procs[key] = proc
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_http(ready_url, timeout=0.5)
                return
            except TimeoutError:
                if not proc.alive():
                    raise StackError(
                        f"{key} exited with code {proc.proc.returncode}:\n{proc.log_tail(15)}"
                    ) from None
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{key} not ready at {ready_url} after {timeout:.0f}s:\n{proc.log_tail(15)}"
                    ) from None

    def _start_app(self) -> None:
        self._spawn(
            "app",
            self._command(
                "app",
                "--listen",
                f"127.0.0.1:{self.ports['app']}",
                "--dsn",
                self.dsn,
                "--token-secret",
                self.opts.token_secret,
                "--pool-max",
                str(max(10, self.opts.concurrency + 4)),
                "--memory-limit",
                str(self.opts.memory_limit),
                "--base-latency",
                f"{self.opts.base_latency:g}",
                "--app-version",
                self.opts.app_version,
            ),
            f"{self.url('app')}/healthz",
        )

    def start_audit_exporter(self) -> None:
        poll = max(0.5, 5.0 / self.compression)
        self._spawn(
            "audit",
            self._command(
                "audit-exporter",
                "--dsn",
                self.dsn,
                "--listen",
                f"127.0.0.1:{self.ports['audit']}",
                "--poll-interval",
                f"{poll:g}",
            ),
            f"{self.url('audit')}/metrics",
        )

    def start_integrity_exporter(self) -> None:
        self._spawn(
            "integrity",
            self._command(
                "integrity-exporter",
                "--dsn",
                self.dsn,
                "--listen",
                f"127.0.0.1:{self.ports['integrity']}",
                "--checks",
                str(self._compressed_checks()),
                "--health-interval",
                f"{max(1.0, 15.0 / self.compression):g}",
            ),
            f"{self.url('integrity')}/metrics",
        )

    def _start_exporters(self) -> None:
        self.start_audit_exporter()
        self.start_integrity_exporter()

    def _start_blackbox(self) -> None:
        """The real blackbox exporter with blackbox/blackbox.yml, when Debian's package is
        installed (it is optional: without it the auth-probe alert and panel have no data)."""
        binary = shutil.which(BLACKBOX_BINARY)
        if binary is None:
            log.warning(
                "%s not installed: the deletion-auth-probe job is left out", BLACKBOX_BINARY
            )
            return
        self._spawn(
            "blackbox",
            [
                binary,
                f"--config.file={REPO_ROOT / 'blackbox' / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{self.ports['blackbox']}",
            ],
            f"{self.url('blackbox')}/metrics",
        )

    def _compressed_checks(self) -> Path:
        """The packaged checks with every `interval` divided by the time compression."""
        source = DEFAULT_CHECKS_PATH
        if not source.is_file():
            raise StackError(f"{source} is missing: the integrity exporter needs its checks")
        data = yaml.safe_load(source.read_text())
        for check in data.get("checks", []):
            if "interval" in check:
                check["interval"] = max(1, round(float(check["interval"]) / self.compression))
                if "timeout" in check:  # a check's timeout may not exceed its interval
                    check["timeout"] = min(float(check["timeout"]), check["interval"])
        path = self.opts.workdir / "integrity-checks.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def _start_alertmanager(self, rendered: dict[str, str]) -> None:
        binary = require_binary("prometheus-alertmanager")
        text = rendered.get("alertmanager/alertmanager.yml")
        if text is None:
            src = REPO_ROOT / "alertmanager" / "alertmanager.yml"
            if not src.is_file():
                raise StackError("alertmanager/alertmanager.yml is missing (and not rendered)")
            text = src.read_text()
        config = demo_alertmanager_config(
            yaml.safe_load(text),
            secrets_dir=self.opts.workdir / "secrets",
            sink_url=self._sink.url if self._sink else "",
            smtp_port=self.ports["smtp"],
            templates_dir=REPO_ROOT / "alertmanager",
            time_compression=self.compression,
        )
        path = self.opts.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._spawn(
            "alertmanager",
            [
                binary,
                f"--config.file={path}",
                f"--storage.path={self.opts.workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            f"{self.url('alertmanager')}/-/ready",
        )

    def _start_prometheus(self) -> None:
        binary = require_binary("prometheus")
        path = self.opts.workdir / "prometheus.yml"
        # First without rules: Prometheus applies its scrape targets a few seconds after start,
        # and a compressed `absent(up)` rule would page "exporter down" in that gap. The rules
        # are loaded (reload) once every target has been scraped.
        config = self.prometheus_config()
        path.write_text(yaml.safe_dump({**config, "rule_files": []}, sort_keys=False))
        self._spawn(
            "prometheus",
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={self.opts.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                # Alerts sent before the Alertmanager is discovered are otherwise re-sent only
                # after a minute (seen with Prometheus 2.42).
                "--rules.alert.resend-delay=1s",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
            ],
            f"{self.url('prometheus')}/-/ready",
            timeout=60,
        )
        try:
            self.wait_for(self._all_targets_up, 30, what="every scrape target up")
        except TimeoutError as exc:
            raise StackError(f"prometheus: {exc}; see {self.opts.workdir / 'logs'}") from None
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        req = urllib.request.Request(f"{self.url('prometheus')}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def _all_targets_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url('prometheus')}/api/v1/targets", timeout=5) as r:
                targets = json.loads(r.read())["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return False
        expected = len(self.prometheus_config()["scrape_configs"])
        return len(targets) >= expected and all(t.get("health") == "up" for t in targets)

    def prometheus_config(self) -> dict[str, Any]:
        scrape = max(1, round(15 / self.compression))
        evaluation = max(1, round(float(load_config(env={}).get("evaluationInterval", 60))
                                  / self.compression))  # fmt: skip
        jobs = {
            "deletion-api": self.ports["app"],
            "deletion-audit-exporter": self.ports["audit"],
            "deletion-integrity-exporter": self.ports["integrity"],
            "prometheus": self.ports["prometheus"],
            "alertmanager": self.ports["alertmanager"],
        }
        scrape_configs: list[dict[str, Any]] = [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in jobs.items()
        ]
        if "blackbox" in self.procs:
            # As in prometheus/prometheus.yml: the blackbox exporter probes the app's endpoint.
            scrape_configs.append(
                {
                    "job_name": "deletion-auth-probe",
                    "metrics_path": "/probe",
                    "params": {"module": ["deletion_invalid_token"]},
                    "static_configs": [{"targets": [f"{self.url('app')}{PROBE_PATH}"]}],
                    "relabel_configs": [
                        {"source_labels": ["__address__"], "target_label": "__param_target"},
                        {"source_labels": ["__param_target"], "target_label": "instance"},
                        {
                            "target_label": "__address__",
                            "replacement": f"127.0.0.1:{self.ports['blackbox']}",
                        },
                    ],
                }
            )
        return {
            "global": {
                "scrape_interval": f"{scrape}s",
                "scrape_timeout": f"{scrape}s",
                "evaluation_interval": f"{evaluation}s",
                "external_labels": {"environment": "demo"},
            },
            "rule_files": [str(p) for p in self.rule_files],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.ports['alertmanager']}"]}]}
                ]
            },
            "scrape_configs": scrape_configs,
        }

    # --- load and scenarios -------------------------------------------------------------------

    def start_load(self) -> None:
        self.load = LoadGenerator(
            self.url("app"),
            self.dsn,
            self.opts.token_secret,
            rate=self.opts.rate,
            concurrency=self.opts.concurrency,
            # One ordinary failure fills a compressed 5-minute window: noise only in real time.
            noise=0.0 if self.compression > 1 else 0.002,
        ).start()

    def apply(self, scenario: Scenario | str) -> Scenario:
        """Inject a scenario's fault."""
        sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
        if sc.app_faults:
            set_app_faults(self.url("app"), sc.app_faults)
        if sc.attack_rate and self.load is not None:
            self.load.attack_rate = sc.attack_rate
        if sc.stack_action == "stop-audit-exporter":
            self.procs.pop("audit").stop()
        elif sc.stack_action == "stop-database":
            assert self.pg is not None
            self.pg.stop("fast")
        return sc

    def clear(self, scenario: Scenario | str | None = None) -> None:
        """Stop a scenario's fault (all app faults, the attack, and restart what was stopped)."""
        sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
        if self.load is not None:
            self.load.attack_rate = 0.0
        if sc is not None and sc.stack_action == "stop-database" and self.pg is not None:
            self.pg.start()
        if "audit" not in self.procs:
            self.start_audit_exporter()
        with contextlib.suppress(OSError):
            set_app_faults(self.url("app"), None)
        if sc is not None and sc.app_faults.get("skip_cleanup"):
            # Switching the fault off leaves the orphans in place: the fix is the clean-up the
            # runbooks describe (DeletionOrphanedRecords), done here so that the incident ends.
            # Twice: deletions already past their clean-up step when the fault went off commit
            # their orphans after the first pass (healthy work is at most 4 x base latency, plus
            # a wait for a pooled connection); seen once keeping the incident open after a clear.
            self.clean_up_orphans()
            time.sleep(max(2.0, 8 * self.opts.base_latency))
            self.clean_up_orphans()

    def clean_up_orphans(self) -> None:
        """Detach or remove what deletions without their manual clean-up left behind."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for statement in ORPHAN_CLEANUP:
                conn.execute(statement)

    # --- what happened ------------------------------------------------------------------------

    def firing(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds in state firing now."""
        try:
            return [a for a in self.prom.alerts() if a.get("state") == "firing"]
        except PrometheusError:
            return []

    def wait_for(
        self, predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition"
    ) -> float:
        """Poll `predicate()` until truthy; returns the unix time it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.time()
            time.sleep(interval)
        raise TimeoutError(f"{what} not reached within {timeout:.0f}s")

    def logs(self) -> Iterator[tuple[str, str]]:
        for name, proc in self.procs.items():
            yield name, proc.log_tail(20)


def _port_free(port: int) -> bool:
    import socket

    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def demo_alertmanager_config(
    config: dict[str, Any],
    *,
    secrets_dir: Path,
    sink_url: str,
    smtp_port: int,
    templates_dir: Path,
    time_compression: float = 1.0,
) -> dict[str, Any]:
    """A copy of the Alertmanager config whose notifications all stay on this machine.

    Every receiver keeps its routing, templates and send_resolved; only where it sends changes:
    Slack and webhooks to `<sink>/slack|webhook/<receiver>`, PagerDuty to
    `<sink>/pagerduty/<receiver>`, email to the local SMTP server with an `X-Demo-Receiver`
    header. Secrets come from files written in `secrets_dir` (the sink URLs, dummy keys), as in
    production where they come from Docker secrets. The daily-digest time window is dropped so
    that the email receiver can be seen working within a demo.
    """
    cfg = copy.deepcopy(config)
    secrets_dir.mkdir(parents=True, exist_ok=True)

    def secret(name: str, value: str) -> str:
        path = secrets_dir / name
        path.write_text(value)
        path.chmod(0o600)
        return str(path)

    glob = cfg.setdefault("global", {})
    for key in list(glob):
        if key in _SECRET_FILE_KEYS:
            glob[key] = secret(f"global_{key}", "demo-secret")
    glob["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    glob["smtp_require_tls"] = False
    glob["pagerduty_url"] = f"{sink_url}/pagerduty/default"
    cfg["templates"] = [
        str(templates_dir / t) if not Path(t).is_absolute() else t for t in cfg.get("templates", [])
    ]
    for receiver in cfg.get("receivers", []):
        name = receiver["name"]
        for slack in receiver.get("slack_configs", []):
            slack.pop("api_url", None)
            slack["api_url_file"] = secret(f"slack-{name}.url", f"{sink_url}/slack/{name}")
        for pd in receiver.get("pagerduty_configs", []):
            key_field = "service_key_file" if "service_key_file" in pd else "routing_key_file"
            pd.pop("routing_key", None)
            pd.pop("service_key", None)
            pd[key_field] = secret(f"pagerduty-{name}.key", f"demo-{name}")
            pd["url"] = f"{sink_url}/pagerduty/{name}"
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{sink_url}/webhook/{name}"
            _redirect_secret_files(hook, secret, name)
        for mail in receiver.get("email_configs", []):
            mail["smarthost"] = f"127.0.0.1:{smtp_port}"
            mail["require_tls"] = False
            mail.setdefault("headers", {})["X-Demo-Receiver"] = name
            _redirect_secret_files(mail, secret, name)
    _drop_time_windows(cfg.get("route", {}), time_compression)
    return cfg


def _redirect_secret_files(node: Any, secret: Any, receiver: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SECRET_FILE_KEYS and isinstance(value, str):
                node[key] = secret(f"{receiver}-{key}", "demo-secret")
            else:
                _redirect_secret_files(value, secret, receiver)
    elif isinstance(node, list):
        for item in node:
            _redirect_secret_files(item, secret, receiver)


def _drop_time_windows(route: dict[str, Any], compression: float) -> None:
    """Remove active_time_intervals; such a route's wall-clock timings (the digest's 1 min wait
    and 15 min interval, left uncompressed by the renderer because they match the window) are
    compressed here, now that no window constrains them."""
    if route.pop("active_time_intervals", None) is not None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            try:
                seconds = parse_duration(str(route.get(key, ""))) / compression
            except ValueError:
                continue
            route[key] = f"{max(1, round(seconds))}s"
    for child in route.get("routes", []):
        _drop_time_windows(child, compression)


def run_subcommand(argv: list[str]) -> int:
    """`python -m deletion_monitor_demo.stack NAME ARGS…` = `deletion-monitor NAME ARGS…` (or
    `deletion-monitor-demo NAME ARGS…` for the demo's own app and load), importing only that
    subcommand's module, so one half-finished module cannot stop the whole demo."""
    import argparse
    import importlib

    from deletion_monitor.cli import COMMANDS as PRODUCT
    from deletion_monitor_demo.cli import COMMANDS as DEMO

    commands = {**PRODUCT, **DEMO}
    if not argv or argv[0] not in commands:
        print(f"stack: unknown subcommand {argv[:1]} (known: {', '.join(commands)})")
        return 2
    prog = ("deletion-monitor-demo " if argv[0] in DEMO else "deletion-monitor ") + argv[0]
    try:
        module = importlib.import_module(commands[argv[0]])
    except ImportError as exc:
        print(f"stack: `{prog}` is not available: {exc}")
        return 2
    parser = argparse.ArgumentParser(prog=prog)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv[1:])) or 0)


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_subcommand(sys.argv[1:]))
