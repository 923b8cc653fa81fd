"""Data integrity dashboard: the spec's "Data Integrity Validation" (long-term monitoring).

Rendered by deletion_monitor_tools.render_dashboards (`python -m deletion_monitor_tools.generate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grafanalib.core import Dashboard

from deletion_monitor.integrity.checks import CATEGORIES as CHECK_CATEGORIES
from deletion_monitor_tools import dashboards_lib as lib
from deletion_monitor_tools.dashboards_lib import CRITICAL, INFO, WARNING, Layout

UP_MAPPINGS = lib.binary_mappings("down", "up")


def build(config: Mapping[str, Any]) -> Dashboard:
    audit = lib.selector(config, "auditExporterSelector")
    integ = lib.selector(config, "integrityExporterSelector")
    orphans = lib.orphans(config)
    ig = config["integrity"]
    max_age = lib.seconds(config, ig["maxResultAge"])
    violation_steps = lib.steps_above(
        [
            (1, INFO),
            (lib.more_than(ig["warning"]), WARNING),
            (lib.more_than(ig["critical"]), CRITICAL),
        ]
    )
    rb = lib.runbook_links
    layout = Layout()

    layout.row("Integrity now")
    layout.add(
        lib.stat(
            "Integrity violations (all checks)",
            "Rows that violate any integrity check, summed over checks "
            "(deletion:deletion_integrity_violations:sum from the integrity exporter, which runs "
            "the checks in src/deletion_monitor/integrity/ against the application database). "
            "Spec: 0 tolerance; amber above config integrity.warning "
            f"({ig['warning']}), red above integrity.critical ({ig['critical']}).",
            lib.targets("deletion:deletion_integrity_violations:sum"),
            "short",
            violation_steps,
            links=rb(config, "DeletionIntegrityViolations"),
        ),
        w=5,
        h=5,
    )
    layout.add(
        lib.stat(
            "Orphaned records",
            "Rows still pointing at a deleted user: violations of the "
            f"{lib.orphan_categories_text(config)} checks (accounts, sessions, addresses, "
            "requests, dispatches, file uploads), as DeletionOrphanedRecords counts them. Spec: 0 "
            f"tolerance (config integrity.orphanTolerance = {ig['orphanTolerance']}).",
            lib.targets(f"sum(deletion_integrity_violations{orphans})"),
            "short",
            lib.steps_above([(lib.more_than(ig["orphanTolerance"]), CRITICAL)]),
            links=rb(config, "DeletionOrphanedRecords"),
        ),
        w=5,
        h=5,
    )
    layout.add(
        lib.stat(
            "Checks failing",
            "Integrity checks whose last run failed (deletion_integrity_check_up == 0): their "
            "violation counts are stale. See the check errors panel below.",
            lib.targets(f"count(deletion_integrity_check_up{integ} == 0) or vector(0)"),
            "short",
            lib.steps_above([(1, WARNING)]),
            links=rb(config, "DeletionIntegrityCheckFailing"),
        ),
        w=4,
        h=5,
    )
    layout.add(
        lib.stat(
            "Oldest check result",
            "Age of the stalest check result (time() - "
            "deletion_integrity_check_last_success_timestamp_seconds, max over checks). Red at "
            f"config integrity.maxResultAge ({max_age:g} s): the spec's 15-minute detection time "
            "is then missed.",
            lib.targets(
                f"max(time() - deletion_integrity_check_last_success_timestamp_seconds{integ})"
            ),
            "s",
            lib.steps_above([(max_age, CRITICAL)]),
            links=rb(config, "DeletionIntegrityChecksStale"),
        ),
        w=5,
        h=5,
    )
    layout.add(
        lib.stat(
            "Integrity database reachable",
            "deletion_integrity_up: 1 when the integrity exporter can reach the application "
            "database. While it is down the violation counts above are not refreshed.",
            lib.targets(f"min(deletion_integrity_up{integ})"),
            "none",
            lib.steps_below([(1, CRITICAL)]),
            links=rb(config, "DeletionIntegrityDatabaseDown"),
            mappings=UP_MAPPINGS,
            no_value="exporter down",
        ),
        w=5,
        h=5,
    )

    layout.row("Violations")
    layout.add(
        lib.table(
            "Violations per check",
            "Current violation count of every check with its category and severity "
            "(deletion_integrity_violations). Each check's description and remediation are in "
            "src/deletion_monitor/integrity/default_checks.yml and the check-integrity report.",
            lib.targets(
                f"sum by (check, category, severity) (deletion_integrity_violations{integ})",
                instant=True,
                table=True,
            ),
            "short",
            lib.steps_above([(1, CRITICAL)]),
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "violations"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "violations", "desc": True}]}},
            ],
            color_cells=True,
        ),
        w=12,
        h=10,
    )
    layout.add(
        lib.timeseries(
            "Violations by category",
            "Violations per check category (category:deletion_integrity_violations:sum): "
            f"{', '.join(CHECK_CATEGORIES)}. "
            "Lines: config integrity.warning and integrity.critical for the total.",
            lib.targets(
                ("category:deletion_integrity_violations:sum", "{{category}}"),
                ("deletion:deletion_integrity_violations:sum", "total"),
            ),
            "short",
            violation_steps,
            threshold_style="line",
            links=rb(config, "DeletionIntegrityViolations", "DeletionOrphanedRecords"),
        ),
        w=12,
        h=10,
    )

    layout.row("Check health")
    layout.add(
        lib.bar_chart(
            "Age of each check's last success",
            "Seconds since each check last ran successfully (time() - "
            "deletion_integrity_check_last_success_timestamp_seconds). Red at config "
            f"integrity.maxResultAge ({max_age:g} s).",
            lib.targets(
                (
                    f"time() - deletion_integrity_check_last_success_timestamp_seconds{integ}",
                    "{{check}}",
                ),
                instant=True,
            ),
            "s",
            lib.steps_above([(max_age, CRITICAL)]),
            sort_by_name=True,
            links=rb(config, "DeletionIntegrityChecksStale"),
        ),
        w=12,
        h=9,
    )
    layout.add(
        lib.timeseries(
            "Check duration",
            "How long each check's query took on its last run "
            "(deletion_integrity_check_duration_seconds): a slow check is a candidate for an "
            "index or a longer interval.",
            lib.targets((f"deletion_integrity_check_duration_seconds{integ}", "{{check}}")),
            "s",
        ),
        w=12,
        h=9,
    )
    layout.add(
        lib.timeseries(
            "Check errors",
            "Failed check runs per check (increase of deletion_integrity_check_errors_total per "
            "interval): timeouts, SQL errors, lost connections.",
            lib.targets(
                (
                    "sum by (check) (increase(deletion_integrity_check_errors_total"
                    f"{integ}[$__rate_interval]))",
                    "{{check}}",
                )
            ),
            "short",
            bars=True,
            links=rb(config, "DeletionIntegrityCheckFailing"),
        ),
        w=24,
        h=7,
    )

    layout.row("Completeness audit, audit trail and security")
    layout.add(
        lib.stat(
            "Deletions re-audited (selected range)",
            "Successful deletions the completeness audit re-checked in the selected time range "
            "(increase of deletion_completeness_audited_total).",
            lib.targets(f"sum(increase(deletion_completeness_audited_total{integ}[$__range]))"),
            "short",
            no_value="0",
        ),
        w=4,
        h=8,
    )
    layout.add(
        lib.stat(
            "Incomplete deletions (selected range)",
            "Re-audited deletions that left rows behind (increase of "
            "deletion_completeness_failures_total). Spec: 100 % complete; any is critical.",
            lib.targets(f"sum(increase(deletion_completeness_failures_total{integ}[$__range]))"),
            "short",
            lib.steps_above([(1, CRITICAL)]),
            links=rb(config, "DeletionCompletenessAuditFailed"),
            no_value="0",
        ),
        w=4,
        h=8,
    )
    hour = lib.window(config, "1h")
    layout.add(
        lib.timeseries(
            "Completeness audit results per hour",
            "Recent successful deletions re-audited by the completeness check (profile gone, "
            "cascades run, manual cleanup done) and those that left data behind "
            "(deletion_completeness_audited_total, deletion_completeness_failures_total).",
            lib.targets(
                (f"sum(increase(deletion_completeness_audited_total{integ}[{hour}]))", "audited"),
                (
                    f"sum(increase(deletion_completeness_failures_total{integ}[{hour}]))",
                    "incomplete",
                ),
            ),
            "short",
            links=rb(config, "DeletionCompletenessAuditFailed"),
        ),
        w=16,
        h=8,
    )

    layout.add(
        lib.timeseries(
            "Audit log ingestion",
            "Audit rows read per second by the audit exporter, rows it rejected by reason, and "
            "failed polls (deletion_audit_rows_ingested_total, deletion_audit_invalid_rows_total, "
            "deletion_audit_poll_errors_total). Rejected rows mean the audit trail is not "
            "complete.",
            lib.targets(
                (
                    f"sum(rate(deletion_audit_rows_ingested_total{audit}[$__rate_interval]))",
                    "ingested",
                ),
                (
                    "sum by (reason) (rate(deletion_audit_invalid_rows_total"
                    f"{audit}[$__rate_interval]))",
                    "invalid: {{reason}}",
                ),
                (
                    f"sum(rate(deletion_audit_poll_errors_total{audit}[$__rate_interval]))",
                    "poll errors",
                ),
            ),
            "cps",
            links=rb(config, "DeletionAuditInvalidRows"),
        ),
        w=8,
        h=8,
    )
    layout.add(
        lib.timeseries(
            "Audit cursor lag and newest row age",
            "How long an open transaction has held audit rows back from the exporter "
            "(deletion_audit_cursor_lag_seconds) and the age of the newest audit row read "
            "(time() - deletion_audit_last_row_timestamp_seconds; grows when nobody deletes).",
            lib.targets(
                (f"deletion_audit_cursor_lag_seconds{audit}", "cursor held back"),
                (f"time() - deletion_audit_last_row_timestamp_seconds{audit}", "newest row age"),
            ),
            "s",
            links=rb(config, "DeletionAuditCursorHeldBack"),
        ),
        w=8,
        h=8,
    )
    layout.add(
        lib.timeseries(
            "Audit exporter initial load",
            "Share of the audit log the exporter's start-up aggregate has read "
            "(deletion_audit_initial_load_rows_done / deletion_audit_initial_load_rows_estimated) "
            "per exporter, and whether it serves counters yet (deletion_audit_ready: 0 while "
            f"loading). Longer than config auditLoadMaxDuration ({config['auditLoadMaxDuration']}"
            " s) raises DeletionAuditLoadSlow.",
            lib.targets(
                (
                    f"deletion_audit_initial_load_rows_done{audit}"
                    f" / deletion_audit_initial_load_rows_estimated{audit}",
                    "loaded {{instance}}",
                ),
                (f"deletion_audit_ready{audit}", "ready {{instance}}"),
            ),
            "percentunit",
            links=rb(config, "DeletionAuditLoadSlow"),
        ),
        w=12,
        h=8,
    )
    layout.add(
        lib.timeseries(
            "Audit rows from another cluster",
            "Committed audit rows whose tx is ahead of this cluster's transaction ids "
            "(deletion_audit_foreign_tx_rows): the exporter never ingests them. Any is "
            "DeletionAuditForeignTransactionIds.",
            lib.targets((f"deletion_audit_foreign_tx_rows{audit}", "foreign tx rows")),
            "short",
            links=rb(config, "DeletionAuditForeignTransactionIds"),
        ),
        w=12,
        h=8,
    )

    layout.add(
        lib.timeseries(
            "Forbidden deletions that succeeded",
            "Successful deletions the business rules forbid, by kind: self_deletion, "
            "super_admin (increase of deletion_forbidden_successes_total per interval). Any is "
            "a security incident.",
            lib.targets(
                (
                    "sum by (kind) (increase(deletion_forbidden_successes_total"
                    f"{audit}[$__rate_interval]))",
                    "{{kind}}",
                )
            ),
            "short",
            lib.steps_above([(1, CRITICAL)]),
            threshold_style="line",
            bars=True,
            links=rb(config, "DeletionForbiddenDeletion"),
        ),
        w=8,
        h=8,
    )

    day = lib.window(config, "1d")
    layout.row("Trend over weeks")
    layout.add(
        lib.timeseries(
            "Integrity trend: daily maximum over 4 weeks",
            "Highest violation count of each day per category "
            "(max_over_time of category:deletion_integrity_violations:sum over 1 day) and "
            "incomplete deletions found per day, over the last 4 weeks regardless of the "
            "dashboard's time range: is integrity getting better or worse?",
            [
                lib.target(
                    f"max_over_time(category:deletion_integrity_violations:sum[{day}])",
                    "{{category}}",
                    "A",
                    interval=day,
                ),
                lib.target(
                    f"sum(increase(deletion_completeness_failures_total{integ}[{day}]))",
                    "incomplete deletions",
                    "B",
                    interval=day,
                ),
            ],
            "short",
            violation_steps,
            threshold_style="line",
            bars=True,
            time_from=lib.window(config, "4w"),
            interval=day,
        ),
        w=24,
        h=9,
    )

    return lib.dashboard(
        config,
        "integrity",
        "Are deletions complete and is the data consistent? Orphaned records, violations per "
        "integrity check and category, the completeness audit of recent deletions, check health "
        "and freshness, the audit trail's own health, forbidden deletions, and the trend over "
        "weeks. Data: the integrity exporter (checks in src/deletion_monitor/integrity/) and "
        "the audit exporter.",
        layout,
        time_from="7d",
        refresh="1m",
        runbooks=("DeletionIntegrityViolations", "DeletionOrphanedRecords"),
    )


def __getattr__(name: str) -> Any:
    # `generate-dashboard` reads the module-level `dashboard`; built lazily (see post_deploy).
    if name == "dashboard":
        from deletion_monitor.common.config import load_config

        return build(load_config())
    raise AttributeError(name)
