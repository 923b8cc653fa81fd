"""Rules on a second engine: vmalert over VictoriaMetrics raises the alerts Prometheus raises.

Two pipelines watch the same exporters: a Prometheus with the rendered rules (time-compressed),
and vmagent -> VictoriaMetrics <- vmalert with the same rendered files minus keep_firing_for
(prometheus/ha/vmalert/, vmalert 1.79 refuses the field). vmalert writes its records and
ALERTS / ALERTS_FOR_STATE back into the store (-remoteWrite.url), so the alerts that read records
and the escalation rules that read ALERTS work there too. The fault (the audit exporter gone)
must give the same firing alerts, with the same labels, on both engines, escalations included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ha import HaTopology, wait_until

from deletion_monitor_demo.pgcluster import PgCluster

pytestmark = pytest.mark.slow  # ~1 min: an incident played out to the manager escalation

EXPECTED = {"Watchdog", "DeletionAuditExporterDown", "DeletionEscalationSenior"}
EXPECTED |= {"DeletionEscalationManager"}


@pytest.fixture(scope="module")
def engines(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HaTopology]:
    topo = HaTopology(pg_cluster, Path(tmp_path_factory.mktemp("ha-vm")))
    try:
        topo.start_database()
        topo.start_exporters()
        topo.start_victoria_metrics()
        topo.start_vmagent()
        # The Prometheus side: one replica is enough to compare with.
        topo.nodes["prom-a"] = topo.prometheus_node("prom-a", ["prom-a"], [], False).start()
        wait_until(lambda: topo.all_targets_up("prom-a"), 30, "prom-a targets up")
        topo.load_rules("prom-a")
        # vmalert notifies a plain Alertmanager: enough for vmalert to run; pages are compared
        # in test_ha_failover.
        topo.start_sinks()
        topo.nodes["am-solo"] = topo.alertmanager_node("am-solo", None).start()
        wait_until(lambda: topo.vm_query('up{job="deletion-audit-exporter"}'), 30, "data in VM")
        topo.start_vmalert("am-solo")
        yield topo
    finally:
        topo.stop()


def _comparable(alerts: list[dict[str, str]]) -> set[tuple[tuple[str, str], ...]]:
    # vmalert adds the group name as `alertgroup`, and its series carry the external labels
    # vmagent adds at scrape time (Prometheus adds them only when it sends): the rest is equal.
    skip = {"alertgroup", "environment"}
    return {tuple(sorted((k, v) for k, v in a.items() if k not in skip)) for a in alerts}


def test_vmalert_loads_the_rendered_rules(engines: HaTopology) -> None:
    wait_until(lambda: {a["alertname"] for a in engines.firing("vmalert")} == {"Watchdog"}, 30,
               "vmalert evaluating (Watchdog only)")  # fmt: skip
    # The replica too, by its own first evaluation after the rules were loaded (asserting it
    # at once failed once in a clean-clone run: no alert evaluated yet).
    wait_until(lambda: {a["alertname"] for a in engines.firing("prom-a")} == {"Watchdog"}, 30,
               "prom-a evaluating (Watchdog only)")  # fmt: skip


def test_same_fault_same_alerts_escalations_included(engines: HaTopology) -> None:
    engines.stop_audit_exporter()
    try:
        for name in ("prom-a", "vmalert"):
            wait_until(
                lambda n=name: EXPECTED <= {a["alertname"] for a in engines.firing(n)},
                90,
                f"{name}: the incident escalated to the manager",
            )
        prom = _comparable(engines.firing("prom-a"))
        vm = _comparable(engines.firing("vmalert"))
        assert vm == prom, (sorted(vm - prom), sorted(prom - vm))
    finally:
        engines.start_audit_exporter()
    for name in ("prom-a", "vmalert"):
        wait_until(
            lambda n=name: {a["alertname"] for a in engines.firing(n)} == {"Watchdog"},
            90,
            f"{name}: the incident resolved",
        )
