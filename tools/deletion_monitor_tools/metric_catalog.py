"""Every metric name this project produces, and the external exporters it may read.

One table, written from the brief's contracts, so that dashboards, reports and lints agree on
what exists. A query that reads a name which is neither here, nor recorded by a rule in
alert_rules/*.yml, nor produced by a named external exporter is a dead panel waiting to happen.

Histograms are listed by their base name; `_bucket`, `_sum`, `_count` (and prometheus-client's
`_created`) are derived. Counters are listed with their `_total` name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    job: str  # Prometheus job that exposes it
    help: str


AUDIT = "deletion-audit-exporter"
INTEGRITY = "deletion-integrity-exporter"
APP = "deletion-api"

PROJECT_METRICS: tuple[Metric, ...] = (
    # --- audit exporter (exporters/deletion_monitor, `deletion-monitor audit-exporter`) ---------
    Metric("deletion_requests_total", "counter", ("user_type",), AUDIT, "deletions attempted"),
    Metric(
        "deletion_failures_total",
        "counter",
        ("user_type", "error_type"),
        AUDIT,
        "failed deletions by failure class",
    ),
    Metric(
        "deletion_duration_seconds",
        "histogram",
        ("outcome", "user_type"),
        AUDIT,
        "deletion duration",
    ),
    Metric(
        "deletion_requests_without_duration_total",
        "counter",
        ("outcome", "user_type"),
        AUDIT,
        "deletions whose audit row has no duration (legacy log): in no latency histogram",
    ),
    Metric(
        "deletion_large_cascade_duration_seconds",
        "histogram",
        (),
        AUDIT,
        "duration of deletions that removed at least the large-cascade threshold of rows",
    ),
    Metric("deletion_rows_deleted_total", "counter", ("table",), AUDIT, "rows removed per table"),
    Metric("deletion_cascade_rows", "histogram", (), AUDIT, "rows removed per deletion"),
    Metric("deletion_requests_by_hour_total", "counter", ("hour",), AUDIT, "deletions by UTC hour"),
    Metric(
        "deletion_requests_by_weekday_total", "counter", ("weekday",), AUDIT, "deletions by weekday"
    ),
    Metric(
        "deletion_forbidden_successes_total",
        "counter",
        ("kind",),
        AUDIT,
        "successful deletions the business rules forbid",
    ),
    Metric(
        "deletion_app_version_first_seen_timestamp_seconds",
        "gauge",
        ("app_version",),
        AUDIT,
        "first appearance of each recent app version (deploy marker)",
    ),
    Metric("deletion_app_version_info", "gauge", ("app_version",), AUDIT, "newest app version"),
    Metric(
        "deletion_audit_up",
        "gauge",
        (),
        AUDIT,
        "1 if the audit DB answers (last poll succeeded, or the start-up load is progressing)",
    ),
    Metric(
        "deletion_audit_ready",
        "gauge",
        (),
        AUDIT,
        "1 once the start-up aggregate is done and deletion counters are served",
    ),
    Metric(
        "deletion_audit_initial_load_rows_done",
        "gauge",
        (),
        AUDIT,
        "rows the start-up aggregate has read so far",
    ),
    Metric(
        "deletion_audit_initial_load_rows_estimated",
        "gauge",
        (),
        AUDIT,
        "estimated rows of the start-up aggregate (pg_class.reltuples)",
    ),
    Metric(
        "deletion_audit_foreign_tx_rows",
        "gauge",
        (),
        AUDIT,
        "audit rows whose tx is ahead of this cluster's transaction ids (never ingested)",
    ),
    Metric(
        "deletion_audit_rows_behind_cursor_unaccounted",
        "gauge",
        (),
        AUDIT,
        "rows at or below the cursor minus rows ingested (> 0: rows never read)",
    ),
    Metric("deletion_audit_last_row_timestamp_seconds", "gauge", (), AUDIT, "newest row seen"),
    Metric(
        "deletion_audit_last_poll_success_timestamp_seconds", "gauge", (), AUDIT, "last good poll"
    ),
    Metric("deletion_audit_rows_ingested_total", "counter", (), AUDIT, "audit rows ingested"),
    Metric(
        "deletion_audit_invalid_rows_total", "counter", ("reason",), AUDIT, "audit rows rejected"
    ),
    Metric("deletion_audit_poll_errors_total", "counter", (), AUDIT, "failed polls"),
    Metric("deletion_audit_poll_duration_seconds", "histogram", (), AUDIT, "poll duration"),
    Metric(
        "deletion_audit_cursor_lag_seconds",
        "gauge",
        (),
        AUDIT,
        "age of the oldest committed row the cursor cannot pass yet (open transaction)",
    ),
    Metric("deletion_audit_exporter_info", "gauge", ("version",), AUDIT, "exporter version"),
    Metric(
        "deletion_audit_initial_load_duration_seconds",
        "gauge",
        (),
        AUDIT,
        "seconds the start-up aggregate over the audit table took",
    ),
    Metric(
        "deletion_audit_startup_info",
        "gauge",
        ("source", "reason"),
        AUDIT,
        "how this process got its counters: checkpoint or full_aggregation, and why",
    ),
    Metric("deletion_audit_checkpoint_writes_total", "counter", (), AUDIT, "checkpoints written"),
    Metric(
        "deletion_audit_checkpoint_write_errors_total",
        "counter",
        (),
        AUDIT,
        "checkpoint writes that failed",
    ),
    Metric(
        "deletion_audit_checkpoint_last_write_timestamp_seconds",
        "gauge",
        (),
        AUDIT,
        "when the last checkpoint was written",
    ),
    Metric(
        "deletion_audit_checkpoint_size_bytes", "gauge", (), AUDIT, "size of the last checkpoint"
    ),
    # --- integrity exporter ----------------------------------------------------------------------
    Metric(
        "deletion_integrity_violations",
        "gauge",
        ("check", "category", "severity"),
        INTEGRITY,
        "rows violating each integrity check",
    ),
    Metric(
        "deletion_integrity_check_duration_seconds", "gauge", ("check",), INTEGRITY, "check runtime"
    ),
    Metric(
        "deletion_integrity_check_last_success_timestamp_seconds",
        "gauge",
        ("check",),
        INTEGRITY,
        "last successful run of each check",
    ),
    Metric(
        "deletion_integrity_check_errors_total", "counter", ("check",), INTEGRITY, "check errors"
    ),
    Metric("deletion_integrity_check_up", "gauge", ("check",), INTEGRITY, "1 = last run ok"),
    Metric("deletion_integrity_check_applicable", "gauge", ("check",), INTEGRITY, "0 = no table"),
    Metric(
        "deletion_integrity_check_rows_truncated_total",
        "counter",
        ("check",),
        INTEGRITY,
        "runs whose result had more rows than the check's max_rows",
    ),
    Metric(
        "deletion_integrity_check_rows_fetched",
        "gauge",
        ("check",),
        INTEGRITY,
        "rows the last successful run read (bounded)",
    ),
    Metric(
        "deletion_integrity_check_queue_wait_seconds",
        "gauge",
        ("check",),
        INTEGRITY,
        "wait of the last run for a pool connection",
    ),
    Metric("deletion_integrity_pool_size", "gauge", (), INTEGRITY, "connections the checks share"),
    Metric("deletion_completeness_audited_total", "counter", (), INTEGRITY, "deletions re-audited"),
    Metric(
        "deletion_completeness_failures_total",
        "counter",
        (),
        INTEGRITY,
        "re-audited deletions that left data behind",
    ),
    Metric("deletion_integrity_up", "gauge", (), INTEGRITY, "1 if the DB is reachable"),
    Metric("deletion_integrity_exporter_info", "gauge", ("version",), INTEGRITY, "version"),
    # --- demo application (demo/); a real application exports the names set in the config -----
    Metric("deletion_app_memory_limit_bytes", "gauge", (), APP, "memory the app may use"),
    Metric("deletion_app_cpu_limit_cores", "gauge", (), APP, "CPU cores the app may use"),
    Metric(
        "deletion_app_db_query_duration_seconds",
        "histogram",
        (),
        APP,
        "execution time of the app's database statements",
    ),
    Metric(
        "deletion_app_gc_duration_seconds",
        "histogram",
        ("generation",),
        APP,
        "wall time of each garbage collection",
    ),
    Metric("deletion_app_db_pool_connections_in_use", "gauge", (), APP, "pool connections busy"),
    Metric("deletion_app_db_pool_connections_max", "gauge", (), APP, "pool size"),
    Metric("http_requests_total", "counter", ("method", "route", "status"), APP, "HTTP requests"),
    Metric(
        "deletion_app_db_pool_requests_waiting", "gauge", (), APP, "requests waiting for the pool"
    ),
    Metric("deletion_app_info", "gauge", ("app_version",), APP, "running application version"),
    Metric(
        "deletion_app_fault_active",
        "gauge",
        ("fault",),
        APP,
        "1 while a demo fault switch is on (demo only)",
    ),
    Metric(
        "deletion_app_probe_requests_total",
        "counter",
        ("status",),
        APP,
        "blackbox probe calls on the reserved probe id, kept out of the audit log",
    ),
)

# Names produced by exporters this project does not own. A key ending in "_" is a prefix. The
# second element is the config key whose selector names that exporter's job (None: the job is a
# fixed contract of the brief, e.g. the blackbox probe, or Prometheus itself). Config keys that
# end in "Metric" (appMemoryMetric, ...) are accepted as exact names too, see external_names().
EXTERNAL_SOURCES: dict[str, tuple[str, str | None]] = {
    "process_": ("prometheus-client process collector of the application", "appSelector"),
    "python_gc_": ("prometheus-client GC collector of the application", "appSelector"),
    "python_info": ("prometheus-client platform collector of the application", "appSelector"),
    "pg_": ("postgres_exporter (prometheus-community)", "postgresExporterSelector"),
    "probe_": ("blackbox_exporter, job deletion-auth-probe", None),
    "up": ("Prometheus scrape health of every job", None),
    "scrape_": ("Prometheus synthetic scrape series", None),
    "ALERTS": ("Prometheus rule evaluation: active alerts", None),
    "ALERTS_FOR_STATE": ("Prometheus rule evaluation: pending-since time of alerts", None),
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def project_names() -> dict[str, Metric]:
    """Every series name the project's exporters expose, derived names included."""
    names: dict[str, Metric] = {}
    for metric in PROJECT_METRICS:
        names[metric.name] = metric
        if metric.type == "histogram":
            for suffix in HISTOGRAM_SUFFIXES:
                names[metric.name + suffix] = metric
        elif metric.type == "counter":
            names[metric.name.removesuffix("_total") + "_created"] = metric
    return names


def external_source(name: str, config: Mapping[str, Any]) -> str | None:
    """The external exporter that produces `name`, or None if no configured one does."""
    for key, value in config.items():
        if key.endswith("Metric") and value == name:
            return f"config {key}"
    for pattern, (source, config_key) in EXTERNAL_SOURCES.items():
        matches = name.startswith(pattern) if pattern.endswith("_") else name == pattern
        if matches and (config_key is None or config.get(config_key)):
            return source
    return None


def recorded_names(rule_files: Iterable[Path]) -> set[str]:
    """Names recorded by the recording rules in rendered Prometheus rule files."""
    names: set[str] = set()
    for path in rule_files:
        doc = yaml.safe_load(path.read_text()) or {}
        if not isinstance(doc, dict):
            continue
        for group in doc.get("groups") or []:
            for rule in group.get("rules") or []:
                if "record" in rule:
                    names.add(rule["record"])
    return names


# --- PromQL name extraction ---------------------------------------------------------------------
# Not a full parser (promtool parses; see tests/integration/test_dashboards.py): it strips what
# cannot hold a metric name (strings, label matchers, ranges, grouping label lists) and keeps
# identifiers that are not function calls or keywords.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (selectors `name{...}` and bare `name`)."""
    text = _STRING.sub('""', expr)
    names: set[str] = set()
    # A selector with only matchers, e.g. {__name__="x"}: take the name from the matcher.
    for match in re.finditer(r'__name__\s*=\s*"([^"]*)"', expr):
        names.add(match.group(1))
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\boffset\s+-?[\w.]+", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"@\s*[\w.()]+", " ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENT.finditer(text):
        ident, call = match.group(1), match.group(2)
        if call or ident.lower() in _KEYWORDS:
            continue
        names.add(ident)
    return names
