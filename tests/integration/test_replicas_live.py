"""Two audit exporters on one table and two integrity exporters on one database, scraped by a
real Prometheus: no figure doubles.

Two `deletion-monitor audit-exporter` processes tail the same PostgreSQL `deletion_audit` table
and two `deletion-monitor integrity-exporter` processes run the same orphan check on the same
database (replicas: same series, different `instance`). A real Prometheus scrapes them every
second and evaluates the rendered rule files (rendered with CHECK_INTERVAL=1, the spec's
override, so the groups run every second). The recorded rates and violation sum, dashboard
queries, the health and compliance reports and the watch console must all equal the one-replica
truth, while the raw sum over both replicas is 2x (the check that the setup really has two
replicas and the assertions could fail).
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_integrity_exporter import ORPHAN_CHECK, ORPHAN_SQL, _checks_file, _seed_orphan_sessions

from deletion_monitor.common.config import load_config
from deletion_monitor.common.promapi import PrometheusClient
from deletion_monitor.data import schema_path
from deletion_monitor.reports import report, watch
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster, apply_sql_file
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http
from deletion_monitor_tools import render_rules
from deletion_monitor_tools.render_dashboards import all_panel_queries

pytestmark = pytest.mark.slow  # ~30 s: two exporters and a Prometheus, waited on in real time

CLI = [sys.executable, "-m", "deletion_monitor", "audit-exporter"]
INTEGRITY_CLI = [sys.executable, "-m", "deletion_monitor", "integrity-exporter"]
ORPHANS = 4  # orphaned sessions both integrity exporters find
HISTORY, NEW = 300, 240  # rows before the exporters start, rows written while they run


def _wait(cond: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def two_replicas(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("replicas")
    audit_dsn = pg_cluster.create_database("replicas")
    apply_sql_file(audit_dsn, schema_path("reference_app.sql"))
    apply_sql_file(audit_dsn, schema_path("deletion_audit.sql"))
    _seed_orphan_sessions(audit_dsn, ORPHANS)
    cfg = load_config(env={})
    audit = cfg["auditExporterSelector"]
    job = audit.split('"')[1]
    workload.insert_rows(audit_dsn, HISTORY, seed=21)
    picked: set[int] = set()
    while len(picked) < 4:  # a port picked but not yet bound can be handed out twice
        picked.add(free_port())
    ports, iports = sorted(picked)[:2], sorted(picked)[2:]
    checks = _checks_file(tmp_path, ORPHAN_CHECK)
    exporters = [
        ManagedProcess(
            [*CLI, "--dsn", audit_dsn, "--listen", f"127.0.0.1:{p}", "--poll-interval", "0.2"],
            tmp_path / f"audit-{i}.log",
        )
        for i, p in enumerate(ports)
    ] + [
        ManagedProcess(
            [
                *INTEGRITY_CLI,
                *("--dsn", audit_dsn, "--checks", str(checks)),
                *("--listen", f"127.0.0.1:{p}", "--health-interval", "0.2"),
            ],
            tmp_path / f"integrity-{i}.log",
        )
        for i, p in enumerate(iports)
    ]
    rules = render_rules.render(load_config(env={"CHECK_INTERVAL": "1"}))
    rule_files = []
    for rel, text in rules.items():
        path = tmp_path / Path(rel).name
        path.write_text(text)
        rule_files.append(str(path))
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in ports)
    itargets = ", ".join(f"'127.0.0.1:{p}'" for p in iports)
    ijob = cfg["integrityExporterSelector"].split('"')[1]
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: {json.dumps(rule_files)}\n"
        f"scrape_configs:\n  - job_name: {job}\n    static_configs: [{{targets: [{targets}]}}]\n"
        f"  - job_name: {ijob}\n    static_configs: [{{targets: [{itargets}]}}]\n"
    )
    port = free_port()
    prom = ManagedProcess(
        [
            require_binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60)
        client = PrometheusClient(url)
        total = f"deletion_audit_rows_ingested_total{{{audit}}}"

        def ingested(n: int) -> bool:
            got = client.query(f"{total} == {n}")
            return len(got) == 2  # both replicas, as scraped by Prometheus

        # Both replicas served and scraped with their history, then new rows while they run.
        _wait(lambda: ingested(HISTORY), f"both replicas scraped with {HISTORY} rows")
        time.sleep(2)
        workload.insert_rows(audit_dsn, NEW, seed=22)
        _wait(lambda: ingested(HISTORY + NEW), "both replicas scraped with the new rows")
        viol = f"deletion_integrity_violations{{{cfg['integrityExporterSelector']}}}"
        _wait(
            lambda: len(client.query(f"{viol} == {ORPHANS}")) == 2,
            "both integrity replicas scraped with the orphans",
        )
        time.sleep(3)  # a few rule evaluations after the last increase
        with psycopg.connect(audit_dsn) as conn:
            (rows,) = conn.execute("SELECT count(*) FROM deletion_audit").fetchone()
            (orphans,) = conn.execute(ORPHAN_SQL).fetchone()
        assert rows == HISTORY + NEW and orphans == ORPHANS
        yield {
            "cfg": cfg,
            "client": client,
            "url": url,
            "audit": audit,
            "instances": [f"127.0.0.1:{p}" for p in ports],
            "integ": cfg["integrityExporterSelector"],
            "at": time.time(),
        }
    finally:
        prom.stop()
        for e in exporters:
            e.stop()


def _per_replica(r: dict[str, Any], expr: str, at: float) -> dict[str, float]:
    """{instance: value} of `sum by (instance) (expr % selector)` for the two replicas."""
    samples = r["client"].query(f"sum by (instance) ({expr % r['audit']})", at)
    values = {s.labels["instance"]: s.value for s in samples}
    assert sorted(values) == sorted(r["instances"]), values
    return values


def test_report_watch_and_dashboard_count_each_deletion_once(two_replicas: dict[str, Any]) -> None:
    r = two_replicas
    client, cfg, at = r["client"], r["cfg"], r["at"]
    # Each replica's own figure (increase() extrapolates to the window edge from each replica's
    # first sample, so the two differ by a few percent); a plain sum over both is their total.
    per = _per_replica(r, "increase(deletion_requests_total{%s}[1h])", at)
    low, high = min(per.values()), max(per.values())
    # (a precondition of the setup, not the behaviour under test: a loaded machine scrapes the
    # second replica's first sample later, hence the margin)
    assert 0 < low and high < 1.25 * low
    both_raw = client.query_value(f"sum(increase(deletion_requests_total{{{r['audit']}}}[1h]))", at)
    assert both_raw == pytest.approx(low + high)  # two replicas: a plain sum doubles

    # A dashboard panel (executive "Deletions (selected range)") is one replica's figure.
    [expr] = [
        e
        for uid, title, e in all_panel_queries(cfg, range_="1h")
        if title == "Deletions (selected range)"
    ]
    assert client.query_value(expr, at) == NEW  # exact: counted as the reports count

    # The health report and the watch console count exactly the rows written while both ran.
    rep = report.build_report(client, cfg, "health", "1h", at)
    assert rep["totals"]["requests"] == NEW
    out = io.StringIO()
    watch.run(
        watch_args(["--once", "--prometheus", r["url"], "--at", str(at)]),
        out=out,
    )
    snap = json.loads(out.getvalue())
    assert snap["deletions_1h"] == NEW


def test_recorded_rates_equal_the_one_replica_truth(two_replicas: dict[str, Any]) -> None:
    r = two_replicas
    client = r["client"]
    for record, raw in [
        ("deletion:deletion_requests:rate5m", "rate(deletion_requests_total{%s}[5m])"),
        ("deletion:deletion_requests:increase1h", "increase(deletion_requests_total{%s}[1h])"),
    ]:
        [sample] = client.query(f"timestamp({record})", r["at"])
        evaluated_at = sample.value  # compare with the truth at the rule's own evaluation time
        recorded = client.query_value(record, evaluated_at)
        per = _per_replica(r, raw, evaluated_at)
        assert min(per.values()) > 0
        # One replica's figure, not the sum of both. The rule keeps, per series, the larger of
        # the two replicas' values (max without the target labels), and the replicas'
        # extrapolations differ by a few percent per series, so the recorded total can exceed
        # both replicas' totals (measured: 1.040 against 0.910 and 0.867): the upper bound is
        # well below a double count (the sum of both), not the larger replica.
        assert min(per.values()) * 0.98 <= recorded <= sum(per.values()) * 0.6, (record, per)


def test_integrity_violations_of_two_replicas_count_once(two_replicas: dict[str, Any]) -> None:
    r = two_replicas
    client, cfg, at = r["client"], r["cfg"], r["at"]
    viol = f"deletion_integrity_violations{{{r['integ']}}}"
    assert client.query_value(f"sum({viol})", at) == 2 * ORPHANS  # a plain sum doubles
    # The recorded sum the violation ladder reads, the dashboards' orphan panel, the compliance
    # report and the watch console: each the one-replica count.
    assert client.query_value("deletion:deletion_integrity_violations:sum", at) == ORPHANS
    panels = [
        (uid, e)
        for uid, title, e in all_panel_queries(cfg, range_="1h")
        if title == "Orphaned records"
    ]
    assert {uid for uid, _ in panels} == {"deletion-executive", "deletion-integrity"}
    for _, expr in panels:
        assert client.query_value(expr, at) == ORPHANS
    rep = report.build_report(client, cfg, "compliance", "1h", at)
    assert rep["orphaned_records"]["now"] == ORPHANS
    out = io.StringIO()
    watch.run(watch_args(["--once", "--prometheus", r["url"], "--at", str(at)]), out=out)
    assert json.loads(out.getvalue())["integrity_violations"] == ORPHANS
    # Both replicas are up: no replica-down warning, no critical exporter alert.
    alerts = client.query('ALERTS{alertname=~"Deletion(Audit|Integrity)Exporter.*"}', at)
    assert alerts == []


def watch_args(argv: list[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    watch.add_arguments(parser)
    return parser.parse_args(argv)
