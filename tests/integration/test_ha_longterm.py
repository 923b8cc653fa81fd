"""The long-term store: both Prometheus replicas remote_write to a real VictoriaMetrics.

The replicas' config comes from ha_prometheus_config() (the one that renders
prometheus/ha/prometheus-{a,b}.yml): the replica label is dropped on the way to the store, and
the store's deduplication (-dedup.minScrapeInterval) keeps one sample per scrape interval, so
the store holds one series per target, not one per replica. Its -retentionPeriod comes from
config.retention.prometheusMetrics. `deletion-monitor report` and `watch` run unchanged against
its Prometheus-compatible API and give the figures they give against a replica. With the store
gone, the remote-write meta-alerts fire on the replicas (time-compressed as the e2e tests).
"""

from __future__ import annotations

import argparse
import io
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.ha import HaTopology, get_json, wait_until

from deletion_monitor.common.promapi import PrometheusClient
from deletion_monitor.reports import report, watch
from deletion_monitor_demo import workload
from deletion_monitor_demo.pgcluster import PgCluster

pytestmark = pytest.mark.slow  # ~1 min: the store catching up and the meta-alerts' `for`

HISTORY, NEW = 50, 400  # rows before the exporters start, rows written while they are scraped
ROWS = HISTORY + NEW
INGESTED = 'deletion_audit_rows_ingested_total{job="deletion-audit-exporter"}'


@pytest.fixture(scope="module")
def ha(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaTopology]:
    topo = HaTopology(pg_cluster, Path(tmp_path_factory.mktemp("ha-lt")))
    try:
        topo.start_database()
        workload.insert_rows(topo.dsn, HISTORY, seed=14)
        topo.start_exporters()
        topo.start_victoria_metrics()
        topo.start_prometheus_pair(alertmanagers=(), long_term=True)
        # Written while scraped: increase() over the report's range sees them.
        workload.insert_rows(topo.dsn, NEW, seed=15)
        yield topo
    finally:
        topo.stop()


def _prom_query(topo: HaTopology, name: str, expr: str) -> list[dict[str, Any]]:
    data = urllib.parse.urlencode({"query": expr})
    return get_json(f"{topo.url(name)}/api/v1/query?{data}")["data"]["result"]


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_store_holds_one_series_per_target_with_the_configured_retention(ha: HaTopology) -> None:
    wait_until(lambda: _value(ha.vm_query(INGESTED)) == ROWS, 60, "the rows in the store")
    for expr in ("up", INGESTED, 'prometheus_build_info{job="prometheus"}'):
        in_replica = _prom_query(ha, "prom-a", expr)
        in_store = ha.vm_query(expr)
        # Both replicas wrote every series; the store keeps one of each, without `replica`.
        assert len(in_store) == len(in_replica) > 0, (expr, in_store)
        assert all(ha.cfg["ha"]["replicaLabel"] not in s["metric"] for s in in_store)
    with urllib.request.urlopen(ha.url("vm") + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    retention = ha.cfg["retention"]["prometheusMetrics"]
    assert f'flag{{name="retentionPeriod", value="{retention}", is_set="true"}} 1' in metrics


def test_report_and_watch_run_unchanged_against_the_store(ha: HaTopology) -> None:
    wait_until(lambda: _value(ha.vm_query(INGESTED)) == ROWS, 60, "the rows in the store")
    at = float(ha.vm_query("time()")[0]["value"][0]) - 5  # a moment both hold completely
    outputs = {}
    for name in ("prom-a", "vm"):
        client = PrometheusClient(ha.url(name))
        health = report.build_report(client, ha.cfg, "health", "1h", at)
        out = io.StringIO()
        parser = argparse.ArgumentParser()
        watch.add_arguments(parser)
        code = watch.run(
            parser.parse_args(["--once", "--prometheus", ha.url(name), "--at", str(at)]), out=out
        )
        health.pop("prometheus", None)  # the URL asked
        text = out.getvalue().replace(ha.url(name), "<url>")
        outputs[name] = (json.dumps(health, sort_keys=True, default=str), code, text)
    # The same report and the same console from the store as from a replica, and a report with
    # real figures (not two equal "no data" answers): the rows written while scraped.
    assert outputs["vm"] == outputs["prom-a"]
    health = json.loads(outputs["vm"][0])
    assert health["data"] is True, health
    assert health["totals"]["requests"] == pytest.approx(NEW, abs=1), health["totals"]
    assert "no data" not in outputs["vm"][2].lower(), outputs["vm"][2]


def test_compliance_report_shows_the_store_retention(ha: HaTopology) -> None:
    """Against the store, the retention row is VictoriaMetrics' own -retentionPeriod (its
    /api/v1/status/flags answers 400; the flag comes from its /metrics); against a replica,
    Prometheus' --storage.tsdb.retention.time."""
    at = float(ha.vm_query("time()")[0]["value"][0]) - 5
    expected = {
        "vm": (str(ha.cfg["retention"]["prometheusMetrics"]), "VictoriaMetrics -retentionPeriod"),
        "prom-a": ("1d", "Prometheus --storage.tsdb.retention.time"),
    }
    for name, (value, source) in expected.items():
        built = report.build_report(PrometheusClient(ha.url(name)), ha.cfg, "compliance", "1h", at)
        ret = built["retention"]
        assert (ret["prometheus_running_retention"], ret["running_retention_source"]) == (
            value,
            source,
        ), (name, ret)


def test_store_down_fires_the_remote_write_alerts(ha: HaTopology) -> None:
    ha.nodes["vm"].stop()
    try:
        wanted = {"PrometheusRemoteWriteFailing", "PrometheusRemoteWriteBehind"}
        fired = wait_until(
            lambda: wanted <= {a["alertname"] for a in ha.firing("prom-b")} and ha.firing("prom-b"),
            90,
            "both remote-write alerts on the replica",
        )
        mine = [a for a in fired if a["alertname"] in wanted]
        assert {a["remote_name"] for a in mine} == {"long-term"}
        assert {a["instance"] for a in mine} == {ha.url("prom-a")[7:], ha.url("prom-b")[7:]}
    finally:
        ha.nodes["vm"].start()
    # The backlog drains from the WAL: the store catches up and both alerts resolve.
    wait_until(
        lambda: (
            not {"PrometheusRemoteWriteFailing", "PrometheusRemoteWriteBehind"}
            & {a["alertname"] for a in ha.firing("prom-b")}
        ),
        90,
        "the remote-write alerts resolved",
    )
