"""Every series the exporters serve is in the metric catalogue (the lints, the docs and the
dashboards' "is this metric real" check read it), and nothing is catalogued that no exporter
serves. Scraped from real exporters on a real PostgreSQL, after real rows and real check runs."""

from __future__ import annotations

from test_audit_exporter import ingested, run_exporter, wait_for  # noqa: F401
from test_integrity_exporter import ORPHAN_SQL, _checks, _scrape, _status, _wait

from deletion_monitor.integrity.scheduler import Scheduler
from deletion_monitor_demo import workload
from deletion_monitor_tools import metric_catalog


def _check_catalogue(sample_names: set[str], job: str) -> None:
    catalogue = metric_catalog.project_names()
    served = {n for n in sample_names if n.startswith("deletion_")}
    missing = sorted(n for n in served if n not in catalogue)
    assert not missing, f"served but not in metric_catalog.py: {missing}"
    # A histogram is catalogued under its family name and served as _bucket/_sum/_count.
    families = served | {n.removesuffix(s) for n in served for s in ("_bucket", "_count")}
    never = sorted(
        m.name for m in metric_catalog.PROJECT_METRICS if m.job == job and m.name not in families
    )
    assert not never, f"catalogued for {job} but never served: {never}"


def test_audit_exporter_series_are_catalogued(audit_dsn: str, tmp_path) -> None:
    from deletion_monitor.audit.checkpoint import FileCheckpointStore
    from deletion_monitor.audit.exporter import ExporterConfig
    from deletion_monitor.audit.poller import AuditExporter

    workload.insert_rows(audit_dsn, 200, seed=3, invalid_rate=0.05)
    # With a checkpoint store: its gauges exist only once a checkpoint was written.
    exporter = AuditExporter(
        ExporterConfig(dsn=audit_dsn, poll_interval=0.1),
        checkpoints=FileCheckpointStore(tmp_path / "state.json"),
    )
    port = exporter.serve("127.0.0.1", 0)
    try:
        values = wait_for(
            port,
            lambda v: ingested(200)(v) and ("deletion_audit_checkpoint_size_bytes", ()) in v,
        )
    finally:
        exporter.stop()
    _check_catalogue({name for name, _ in values}, metric_catalog.AUDIT)


def test_integrity_exporter_series_are_catalogued(app_dsn: str) -> None:
    checks = _checks({"name": "orphans", "sql": ORPHAN_SQL})
    scheduler = Scheduler(app_dsn, checks, health_interval=0.2).start()
    try:
        _wait(lambda: _status(scheduler, "orphans").last_success is not None, what="one run")
        metrics = _scrape(scheduler)
    finally:
        scheduler.stop()
    _check_catalogue({name for name, _ in metrics}, metric_catalog.INTEGRITY)
