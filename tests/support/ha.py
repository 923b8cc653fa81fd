"""The HA monitoring topology (docs/scaling.md) with the real binaries on 127.0.0.1, for tests.

    PostgreSQL  ->  audit exporter, integrity exporter (real `deletion-monitor` processes)
    ->  Prometheus replicas (the rendered rules, time-compressed; ha_prometheus_config())
    ->  Alertmanager gossip cluster (the demo copy of alertmanager.yml)  ->  local sinks
    and, on demand, VictoriaMetrics (long-term store, remote_write target), vmagent + vmalert
    (the second rule engine).

Time compression as in the e2e stack: every duration of the rules and of the Alertmanager
routes is divided by `compression` (60: a 15 min escalation plays out in 15 s). Two timings the
renderer does not own are compressed here in the same spirit: the Alertmanager cluster's
--cluster.peer-timeout (15 s in production: the wait of the second peer before it sends) and
VictoriaMetrics' -search.latencyOffset (30 s: how old a sample must be before queries see it).

The fault every scenario uses is the audit exporter going away (its scrape fails): the critical
DeletionAuditExporterDown of the monitoring incident, which pages on-call and escalates.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deletion_monitor.common.config import load_config
from deletion_monitor.data import schema_path
from deletion_monitor.integrity.checks import DEFAULT_CHECKS_PATH
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http
from deletion_monitor_demo.sinks import HttpSink, NotificationLog, SmtpSink
from deletion_monitor_demo.stack import demo_alertmanager_config
from deletion_monitor_tools.generate import render_all
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_ha import ha_prometheus_config, job_of, vmalert_rule_text

CLI = [sys.executable, "-m", "deletion_monitor"]


def wait_until(probe: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def unique_ports(n: int) -> list[int]:
    """n distinct free ports (a port picked but not yet bound can be handed out twice)."""
    picked: set[int] = set()
    while len(picked) < n:
        picked.add(free_port())
    return sorted(picked)


@dataclass
class Node:
    """One server process of the topology, restartable with the same argv and data."""

    name: str
    argv: list[str]
    log: Path
    url: str
    ready_path: str
    proc: ManagedProcess | None = None

    def start(self, timeout: float = 60) -> Node:
        self.proc = ManagedProcess(self.argv, self.log, cwd=REPO_ROOT)
        try:
            wait_http(self.url + self.ready_path, timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name} did not start:\n{self.proc.log_tail()}") from None
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no snapshot, as a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.signal(signal.SIGKILL)
        self.proc.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()


@dataclass
class HaTopology:
    pg: PgCluster
    workdir: Path
    compression: float = 60.0
    notifications: NotificationLog = field(default_factory=NotificationLog)
    nodes: dict[str, Node] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    rule_files: list[Path] = field(default_factory=list)
    rendered: dict[str, str] = field(default_factory=dict)
    dsn: str = ""
    _sinks: list[Any] = field(default_factory=list)
    _configs: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)

    # --- life cycle ---------------------------------------------------------------------------

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg = load_config(env={})
        names = ["audit", "integrity", "prom-a", "prom-b", "am-1", "am-2", "am-1-gossip"]
        names += ["am-2-gossip", "vm", "vmalert", "vmagent", "am-solo", "smtp"]
        self.ports = dict(zip(names, unique_ports(len(names)), strict=True))
        env = {"TIME_COMPRESSION": f"{self.compression:g}"}
        self.rendered = render_all(env=env)
        out = self.workdir / "rules"
        out.mkdir(exist_ok=True)
        for rel, text in self.rendered.items():
            if rel.startswith("alert_rules/") and rel.endswith(".rules.yml"):
                path = out / rel.rsplit("/", 1)[-1]
                path.write_text(text)
                self.rule_files.append(path)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.stop()
        for sink in self._sinks:
            sink.stop()

    def start_sinks(self) -> None:
        self.sink = HttpSink(self.notifications).start()
        self._sinks.append(self.sink)
        self._sinks.append(SmtpSink(self.notifications, self.ports["smtp"]).start())

    def start_database(self) -> None:
        self.dsn = self.pg.create_database(f"ha_{self.ports['audit']}")
        for name in ("reference_app", "deletion_audit"):
            apply_sql_file(self.dsn, schema_path(name))

    # --- exporters ----------------------------------------------------------------------------

    def _compressed_checks(self) -> Path:
        data = yaml.safe_load(DEFAULT_CHECKS_PATH.read_text())
        for check in data.get("checks", []):
            if "interval" in check:
                check["interval"] = max(1, round(float(check["interval"]) / self.compression))
                if "timeout" in check:
                    check["timeout"] = min(float(check["timeout"]), check["interval"])
        path = self.workdir / "integrity-checks.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def start_exporters(self) -> None:
        poll = f"{max(0.5, 5.0 / self.compression):g}"
        self.nodes["audit"] = Node(
            "audit",
            [*CLI, "audit-exporter", "--dsn", self.dsn, "--listen",
             f"127.0.0.1:{self.ports['audit']}", "--poll-interval", poll],
            self.workdir / "logs" / "audit.log",
            self.url("audit"),
            "/metrics",
        ).start()  # fmt: skip
        health = f"{max(1.0, 15.0 / self.compression):g}"
        self.nodes["integrity"] = Node(
            "integrity",
            [*CLI, "integrity-exporter", "--dsn", self.dsn, "--listen",
             f"127.0.0.1:{self.ports['integrity']}", "--checks", str(self._compressed_checks()),
             "--health-interval", health],
            self.workdir / "logs" / "integrity.log",
            self.url("integrity"),
            "/metrics",
        ).start()  # fmt: skip

    # --- Alertmanager cluster -----------------------------------------------------------------

    def _alertmanager_config(self, name: str) -> Path:
        cfg = demo_alertmanager_config(
            yaml.safe_load(self.rendered["alertmanager/alertmanager.yml"]),
            secrets_dir=self.workdir / "secrets",
            sink_url=self.sink.url,
            smtp_port=self.ports["smtp"],
            templates_dir=REPO_ROOT / "alertmanager",
            time_compression=self.compression,
        )
        path = self.workdir / f"{name}.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def alertmanager_node(self, name: str, peers: list[str] | None) -> Node:
        binary = require_binary("prometheus-alertmanager")
        argv = [
            binary,
            f"--config.file={self._alertmanager_config(name)}",
            f"--storage.path={self.workdir / name}",
            f"--web.listen-address=127.0.0.1:{self.ports[name]}",
            # Each peer names itself in the PagerDuty client_url: the test sees who sent a page.
            f"--web.external-url={self.url(name)}",
        ]
        if peers is None:
            argv.append("--cluster.listen-address=")
        else:
            argv += [
                f"--cluster.listen-address=127.0.0.1:{self.ports[name + '-gossip']}",
                *(f"--cluster.peer=127.0.0.1:{self.ports[p + '-gossip']}" for p in peers),
                # 15 s in production (a peer's wait per position before it sends): compressed, but
                # not below 10 gossip intervals (200 ms), or the second peer sends before the
                # first one's notification log reaches it.
                f"--cluster.peer-timeout={max(2, round(15 / self.compression))}s",
            ]
        return Node(name, argv, self.workdir / "logs" / f"{name}.log", self.url(name), "/-/ready")

    def start_alertmanager_cluster(self) -> None:
        for name, other in (("am-1", "am-2"), ("am-2", "am-1")):
            self.nodes[name] = self.alertmanager_node(name, [other]).start()
        wait_until(
            lambda: all(self.cluster_members(n) == 2 for n in ("am-1", "am-2")),
            30,
            "both Alertmanagers in one cluster",
        )

    def cluster_members(self, name: str) -> int:
        status = get_json(self.url(name) + "/api/v2/status")
        return len((status.get("cluster") or {}).get("peers") or [])

    # --- Prometheus replicas ------------------------------------------------------------------

    def scrape_interval(self) -> int:
        return max(1, round(15 / self.compression))

    def base_prometheus_config(self, alertmanagers: list[str]) -> dict[str, Any]:
        cfg = self.cfg
        every = f"{self.scrape_interval()}s"
        ams = [f"127.0.0.1:{self.ports[a]}" for a in alertmanagers]
        jobs = {
            job_of(cfg["auditExporterSelector"]): [f"127.0.0.1:{self.ports['audit']}"],
            job_of(cfg["integrityExporterSelector"]): [f"127.0.0.1:{self.ports['integrity']}"],
            job_of(cfg["alertmanagerSelector"]): ams,
        }  # fmt: skip
        return {
            "global": {
                "scrape_interval": every,
                "scrape_timeout": every,
                "evaluation_interval": every,
                "external_labels": {"environment": "ha-test"},
            },
            "rule_files": [str(p) for p in self.rule_files],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": ams}]}
                ]
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }  # fmt: skip

    def prometheus_node(
        self, name: str, replicas: list[str], alertmanagers: list[str], long_term: bool
    ) -> Node:
        config = ha_prometheus_config(
            self.base_prometheus_config(alertmanagers),
            self.cfg,
            replica=name,
            prometheus_targets=[f"127.0.0.1:{self.ports[r]}" for r in replicas],
            remote_write_url=f"{self.url('vm')}/api/v1/write" if long_term else None,
        )
        if long_term:
            # Compressed like the rules: a batch at least every second, and retries at most
            # 500 ms apart (5 s by default). With the default, a store that is down sees one
            # retry per 5 s, and the compressed 5 s rate window of PrometheusRemoteWriteFailing
            # is empty (0/0) between two retries: its `for` would restart each time.
            config["remote_write"][0]["queue_config"] = {
                "batch_send_deadline": "1s",
                "max_backoff": "500ms",
            }
        path = self.workdir / f"{name}.yml"
        # First without rules, as the e2e stack does: a compressed `absent(up)` would page
        # "exporter down" before the first scrape. load_rules() adds them once targets are up.
        path.write_text(yaml.safe_dump({**config, "rule_files": []}, sort_keys=False))
        self._configs[name] = (path, config)
        argv = [
            require_binary("prometheus"),
            "--web.enable-lifecycle",
            f"--config.file={path}",
            f"--storage.tsdb.path={self.workdir / (name + '-data')}",
            f"--web.listen-address=127.0.0.1:{self.ports[name]}",
            # Alerts sent before the Alertmanagers are discovered are otherwise re-sent only after
            # a minute (the e2e stack does the same).
            "--rules.alert.resend-delay=1s",
            "--storage.tsdb.retention.time=1d",
        ]
        return Node(name, argv, self.workdir / "logs" / f"{name}.log", self.url(name), "/-/ready")

    def start_prometheus_pair(
        self, alertmanagers: tuple[str, ...] = ("am-1", "am-2"), long_term: bool = False
    ) -> None:
        replicas = ["prom-a", "prom-b"]
        for name in replicas:
            self.nodes[name] = self.prometheus_node(
                name, replicas, list(alertmanagers), long_term
            ).start()
        for name in replicas:
            wait_until(lambda n=name: self.all_targets_up(n), 30, f"{name}: every target up")
            self.load_rules(name)

    def load_rules(self, name: str) -> None:
        """Write the replica's config with its rule files and reload it. A restarted replica
        starts with them (its peer holds the incident meanwhile)."""
        path, config = self._configs[name]
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        req = urllib.request.Request(self.url(name) + "/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        wait_until(lambda: self.rule_groups(name), 30, f"{name}: rules loaded")

    def rule_groups(self, name: str) -> int:
        try:
            return len(get_json(self.url(name) + "/api/v1/rules")["data"]["groups"])
        except (OSError, ValueError, KeyError):
            return 0

    def all_targets_up(self, name: str) -> bool:
        try:
            targets = get_json(self.url(name) + "/api/v1/targets")["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return False
        return bool(targets) and all(t.get("health") == "up" for t in targets)

    def firing(self, name: str, api: str = "/api/v1/alerts") -> list[dict[str, str]]:
        """Labels of the alerts a Prometheus (or vmalert) holds as firing now."""
        try:
            alerts = get_json(self.url(name) + api)["data"]["alerts"] or []
        except (OSError, ValueError, KeyError):
            return []
        return [a["labels"] for a in alerts if a.get("state") == "firing"]

    # --- long-term store and the second engine ------------------------------------------------

    def start_victoria_metrics(self) -> None:
        retention = str(self.cfg["retention"]["prometheusMetrics"])
        self.nodes["vm"] = Node(
            "vm",
            [
                require_binary("victoria-metrics"),
                f"-storageDataPath={self.workdir / 'vm-data'}",
                f"-httpListenAddr=127.0.0.1:{self.ports['vm']}",
                # From config.retention.prometheusMetrics (the spec's 1 year), as in compose.
                f"-retentionPeriod={retention}",
                # The replicas write the same series (replica label dropped): one sample per
                # scrape interval survives.
                f"-dedup.minScrapeInterval={self.scrape_interval()}s",
                # 30 s in production: compressed, or the compressed rules read stale data.
                "-search.latencyOffset=1s",
                # 5 min in production (how far back an instant query looks for a sample).
                f"-search.maxStalenessInterval={max(2, round(300 / self.compression))}s",
            ],
            self.workdir / "logs" / "vm.log",
            self.url("vm"),
            "/health",
        ).start()

    def start_vmagent(self) -> None:
        """vmagent scrapes the exporters into the store (no Prometheus engine in this path)."""
        config = self.base_prometheus_config([])
        scrape = {k: v for k, v in config.items() if k in ("global", "scrape_configs")}
        scrape["global"].pop("evaluation_interval", None)
        path = self.workdir / "vmagent.yml"
        path.write_text(yaml.safe_dump(scrape, sort_keys=False))
        self.nodes["vmagent"] = Node(
            "vmagent",
            [
                require_binary("vmagent"),
                f"-promscrape.config={path}",
                f"-remoteWrite.url={self.url('vm')}/api/v1/write",
                f"-remoteWrite.tmpDataPath={self.workdir / 'vmagent-data'}",
                f"-httpListenAddr=127.0.0.1:{self.ports['vmagent']}",
                "-remoteWrite.flushInterval=200ms",
            ],
            self.workdir / "logs" / "vmagent.log",
            self.url("vmagent"),
            "/health",
        ).start()

    def vmalert_rule_files(self) -> list[Path]:
        out = self.workdir / "vmalert-rules"
        out.mkdir(exist_ok=True)
        paths = []
        for path in self.rule_files:
            copy = out / path.name
            copy.write_text(vmalert_rule_text(path.read_text(), path.name))
            paths.append(copy)
        return paths

    def start_vmalert(self, notifier: str) -> None:
        every = f"{self.scrape_interval()}s"
        self.nodes["vmalert"] = Node(
            "vmalert",
            [
                require_binary("vmalert"),
                *(f"-rule={p}" for p in self.vmalert_rule_files()),
                f"-datasource.url={self.url('vm')}",
                # Records and ALERTS/ALERTS_FOR_STATE go back into the store: the alerts read the
                # records, the escalation rules read ALERTS, as on Prometheus.
                f"-remoteWrite.url={self.url('vm')}",
                "-remoteWrite.flushInterval=200ms",
                f"-remoteRead.url={self.url('vm')}",
                f"-notifier.url={self.url(notifier)}",
                f"-httpListenAddr=127.0.0.1:{self.ports['vmalert']}",
                f"-evaluationInterval={every}",
                "-rule.resendDelay=1s",
                # The step of the instant queries; 5 min by default, far longer than the test.
                f"-datasource.queryStep={every}",
            ],
            self.workdir / "logs" / "vmalert.log",
            self.url("vmalert"),
            "/health",
        ).start()

    def vm_query(self, expr: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"query": expr})
        return get_json(f"{self.url('vm')}/api/v1/query?{data}")["data"]["result"]

    # --- faults -------------------------------------------------------------------------------

    def stop_audit_exporter(self) -> None:
        self.nodes["audit"].stop()

    def start_audit_exporter(self) -> None:
        self.nodes["audit"].start()
