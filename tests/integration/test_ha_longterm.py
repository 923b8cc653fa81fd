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
import datetime as dt
import io
import json
import math
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


def _prom_query(
    topo: HaTopology, name: str, expr: str, at: float | None = None
) -> list[dict[str, Any]]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    data = urllib.parse.urlencode(params)
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


def _moment_both_hold_every_row(topo: HaTopology) -> float:
    """A moment (5 s before the store's now) at which the replica and the store both show every
    row ingested, and did a few scrapes before: a report there has the real figures on both, and
    no figure depends on which of the two saw the last change first."""
    settled = 3 * topo.scrape_interval()

    def holds(name: str, at: float) -> bool:
        return _value(_prom_query(topo, name, INGESTED, at)) == ROWS

    def probe() -> float | None:
        at = float(topo.vm_query("time()")[0]["value"][0]) - 5
        both = all(holds(n, t) for n in ("prom-a", "vm") for t in (at, at - settled))
        return at if both else None

    return float(wait_until(probe, 90, "every row in the replica and in the store"))


# Figures that come from the ALERTS series. The store holds both replicas' ALERTS (one sample
# per dedup interval, from either): a warning one replica raised and the other did not (their
# evaluations are offset by up to an interval, and the rules here are compressed 60x) is in the
# store's view and not in that replica's. These are compared as "the store knows at least what
# the replica knows"; every other figure must be equal.
ALERT_FIGURES = ("alerts_by_severity", "alerts_fired")
ALERT_SUMMARY = ("incidents", "reasons", "status")


def _split(report_json: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures without coverage and alerts, the alert-derived figures)."""
    figures = json.loads(report_json)
    figures.pop("data_coverage")
    summary = figures["summary"]
    summary.pop("coverage")
    alerts = {k: figures.pop(k) for k in ALERT_FIGURES}
    alerts.update({f"summary.{k}": summary.pop(k) for k in ALERT_SUMMARY})
    return figures, alerts


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (the engines round a sum differently: 1.521786 and
    1.5217859999999999)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b)
    return bool(a == b)


def test_report_and_watch_run_unchanged_against_the_store(ha: HaTopology) -> None:
    at = _moment_both_hold_every_row(ha)
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
    # The same figures and the same console from the store as from a replica, and real figures
    # (not two equal "no data" answers): the rows written while scraped.
    replica, replica_alerts = _split(outputs["prom-a"][0])
    store, store_alerts = _split(outputs["vm"][0])
    differ = {k for k in replica.keys() | store.keys() if not _close(replica.get(k), store.get(k))}
    assert not differ, {k: (replica.get(k), store.get(k)) for k in differ}
    assert store["data"] is True, store
    assert store["totals"]["requests"] == pytest.approx(NEW, abs=1), store["totals"]
    fired = {n: {(a["alertname"], a["severity"]) for a in al["summary.incidents"]["alerts"]}
             for n, al in (("prom-a", replica_alerts), ("vm", store_alerts))}  # fmt: skip
    assert fired["prom-a"] <= fired["vm"], fired
    assert set(replica_alerts["summary.reasons"]) <= set(store_alerts["summary.reasons"])
    assert outputs["vm"][1] == outputs["prom-a"][1]  # watch's exit code
    assert "no data" not in outputs["vm"][2].lower(), outputs["vm"][2]
    # Coverage: the store holds both replicas' scrapes (one per dedup interval), so its first
    # sample may be the other replica's, up to a scrape interval earlier than this replica's.
    covered = {n: json.loads(outputs[n][0])["data_coverage"] for n in ("prom-a", "vm")}
    first = {n: dt.datetime.fromisoformat(c["first_sample"]) for n, c in covered.items()}
    assert 0 <= (first["prom-a"] - first["vm"]).total_seconds() <= ha.scrape_interval(), covered
    assert covered["vm"]["last_sample"] == covered["prom-a"]["last_sample"], covered


def test_compliance_report_shows_the_store_retention(ha: HaTopology) -> None:
    """Against the store, the retention row is VictoriaMetrics' own -retentionPeriod (its
    /api/v1/status/flags answers 400; the flag comes from its /metrics); against a replica,
    Prometheus' --storage.tsdb.retention.time."""
    at = _moment_both_hold_every_row(ha)
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
