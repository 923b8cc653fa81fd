"""Post-deployment (live) dashboard: the spec's "Real-time Dashboard" for the first 24-48 h.

Rendered by deletion_monitor_tools.render_dashboards (`python -m deletion_monitor_tools.generate`);
also works with grafanalib's `generate-dashboard -o out.json dashboards/post_deploy.dashboard.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grafanalib.core import Dashboard
from prometheus_client.utils import floatToGoString

from deletion_monitor_tools import dashboards_lib as lib
from deletion_monitor_tools.dashboards_lib import CRITICAL, WARNING, Layout


def build(config: Mapping[str, Any]) -> Dashboard:
    audit = lib.selector(config, "auditExporterSelector")
    app = lib.selector(config, "appSelector")
    service = config["serviceName"]
    pd = config["postDeploy"]
    er = config["errorRate"]
    lat = config["latency"]
    rb = lib.runbook_links
    layout = Layout()

    layout.row("Now: last 5 minutes")
    layout.add(
        lib.stat(
            "Success rate (5m)",
            "Share of DELETE /api/users/{id} calls that succeeded over the last 5 minutes "
            "(1 - deletion:deletion_error_ratio:rate5m, from the audit log via the audit "
            "exporter). Colours follow the steady-state error-rate ladder (config errorRate): "
            f"yellow below {1 - er['info']:.2%}, amber below {1 - er['warning']:.2%}, red below "
            f"{1 - er['critical']:.2%}." + lib.errors_note(config),
            lib.targets("1 - deletion:deletion_error_ratio:rate5m"),
            "percentunit",
            lib.success_rate_steps(config),
            links=rb(config, "DeletionErrorRateHigh"),
            no_value="no deletions",
            decimals=2,
        ),
        w=4,
        h=5,
    )
    layout.add(
        lib.stat(
            "Error rate (5m)",
            "Failed / attempted deletions over the last 5 minutes "
            "(deletion:deletion_error_ratio:rate5m). Colours: the DeletionErrorRateHigh ladder "
            "(info, warning, critical) from config errorRate." + lib.errors_note(config),
            lib.targets("deletion:deletion_error_ratio:rate5m"),
            "percentunit",
            lib.error_rate_steps(config),
            links=rb(config, "DeletionErrorRateHigh"),
            no_value="no deletions",
            decimals=2,
        ),
        w=4,
        h=5,
    )
    layout.add(
        lib.stat(
            "Error rate vs post-deploy ladder",
            "The 5-minute error rate while the newest app version is inside the post-deployment "
            "window (deletion:post_deploy:active), coloured by the tighter post-deploy ladder "
            "(config postDeploy; ERROR_RATE_THRESHOLD moves its critical level). Empty outside "
            "the window.",
            lib.targets(
                "deletion:deletion_error_ratio:rate5m and on () deletion:post_deploy:active"
            ),
            "percentunit",
            lib.steps_above(
                [(pd["errorRateWarning"], WARNING), (pd["errorRateCritical"], CRITICAL)]
            ),
            links=rb(config, "DeletionErrorRatePostDeploy"),
            no_value="outside post-deploy window",
            decimals=2,
        ),
        w=4,
        h=5,
    )
    layout.add(
        lib.stat(
            "Deletions per minute",
            "Deletions attempted per minute, averaged over 5 minutes "
            "(60 * deletion:deletion_requests:rate5m, audit exporter).",
            lib.targets("60 * deletion:deletion_requests:rate5m"),
            "opm",
            no_value="0",
            decimals=1,
            graph=True,
        ),
        w=3,
        h=5,
    )
    layout.add(
        lib.stat(
            "p95 latency (5m)",
            "95th percentile deletion duration over 5 minutes "
            "(deletion:deletion_duration_seconds:p95_rate5m from the deletion_duration_seconds "
            "histogram). Colours: the DeletionLatencyP95High ladder from config latency "
            "(RESPONSE_TIME_THRESHOLD moves the warning level).",
            lib.targets("deletion:deletion_duration_seconds:p95_rate5m"),
            "s",
            lib.latency_steps(config),
            links=rb(config, "DeletionLatencyP95High"),
            no_value="no deletions",
            decimals=2,
        ),
        w=3,
        h=5,
    )
    layout.add(
        lib.stat(
            "Average latency (5m)",
            "Mean deletion duration over 5 minutes "
            "(deletion:deletion_duration_seconds:avg_rate5m). Amber at the spec's average "
            f"target (config latency.averageTarget = {lat['averageTarget']} s).",
            lib.targets("deletion:deletion_duration_seconds:avg_rate5m"),
            "s",
            lib.steps_above([(lat["averageTarget"], WARNING)]),
            links=rb(config, "DeletionLatencyAverageHigh"),
            no_value="no deletions",
            decimals=2,
        ),
        w=3,
        h=5,
    )
    layout.add(
        lib.stat(
            "Firing alerts",
            "Alerts of this service firing now (Prometheus ALERTS series with "
            f'service="{service}"; the always-firing Watchdog excluded). The table below lists '
            "them (panel 'Firing alerts: list').",
            lib.targets(
                f'count(ALERTS{{alertstate="firing", service="{service}", '
                f'alertname!="Watchdog"}}) or vector(0)'
            ),
            "short",
            lib.steps_above([(1, CRITICAL)]),
            no_value="0",
        ),
        w=3,
        h=5,
    )

    layout.row("Errors")
    layout.add(
        lib.timeseries(
            "Error rate (5m) against the alert ladder",
            "Failed / attempted deletions over a sliding 5-minute window "
            "(deletion:deletion_error_ratio:rate5m), with the steady-state ladder drawn as "
            "coloured bands. Deploy markers show when a new app version served its first "
            "deletion." + lib.errors_note(config),
            lib.targets(("deletion:deletion_error_ratio:rate5m", "error rate")),
            "percentunit",
            lib.error_rate_steps(config),
            threshold_style="line+area",
            links=rb(config, "DeletionErrorRateHigh", "DeletionErrorRatePostDeploy"),
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Success rate (5m) over time",
            "Successful / attempted deletions over a sliding 5-minute window "
            "(1 - deletion:deletion_error_ratio:rate5m). Lines mark 1 - each error-rate level.",
            lib.targets(("1 - deletion:deletion_error_ratio:rate5m", "success rate")),
            "percentunit",
            lib.success_rate_steps(config),
            threshold_style="line",
            min_value=None,
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Failures by class (per minute)",
            "Failed deletions per minute by failure class (timeout, authorization, not_found, "
            "business_logic, constraint, database, unknown), from "
            "error_type:deletion_failures:rate5m.",
            lib.targets(("60 * error_type:deletion_failures:rate5m", "{{error_type}}")),
            "opm",
            stack=True,
            bars=True,
            links=[lib.dashboard_link(config, "usage", "Failure mix over weeks")],
            no_value="no failures",
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Error rate by user type (1h)",
            "Failed / attempted deletions per type of deleted user over the last hour "
            "(user_type:deletion_error_ratio:rate1h). Lines: the steady-state ladder."
            + lib.errors_note(config),
            lib.targets(("user_type:deletion_error_ratio:rate1h", "{{user_type}}")),
            "percentunit",
            lib.error_rate_steps(config),
            threshold_style="line",
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Timeouts in the last hour",
            "Deletions that failed with error_type=timeout over a sliding hour "
            "(error_type:deletion_failures:increase1h). The line is the spec's performance-alert "
            f"level (config timeoutsPerHour.warning = {config['timeoutsPerHour']['warning']}).",
            lib.targets(
                (
                    # No series until the first timeout: draw 0 rather than "No data".
                    'error_type:deletion_failures:increase1h{error_type="timeout"} '
                    "or on () vector(0)",
                    "timeouts",
                )
            ),
            "short",
            lib.steps_above([(config["timeoutsPerHour"]["warning"], WARNING)]),
            threshold_style="line+area",
            links=rb(config, "DeletionTimeoutsHigh"),
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Authorization failures in the last hour",
            "Deletions refused with error_type=authorization over a sliding hour "
            "(error_type:deletion_failures:increase1h). The line is the spec's security-alert "
            "level (config authorizationFailuresPerHour.warning = "
            f"{config['authorizationFailuresPerHour']['warning']}).",
            lib.targets(
                (
                    'error_type:deletion_failures:increase1h{error_type="authorization"} '
                    "or on () vector(0)",
                    "authorization failures",
                )
            ),
            "short",
            lib.steps_above([(config["authorizationFailuresPerHour"]["warning"], WARNING)]),
            threshold_style="line+area",
            links=rb(config, "DeletionAuthorizationFailuresHigh"),
        ),
        w=12,
    )

    layout.row("Latency")
    layout.add(
        lib.timeseries(
            "Latency: average, p95, p99 (5m)",
            "Deletion duration over a sliding 5-minute window from the deletion_duration_seconds "
            "histogram (deletion:deletion_duration_seconds:{avg,p95,p99}_rate5m). Lines: the p95 "
            f"ladder (info {lat['info']} s, warning {lat['warning']} s, critical "
            f"{lat['critical']} s); the average target is {lat['averageTarget']} s.",
            lib.targets(
                ("deletion:deletion_duration_seconds:avg_rate5m", "average"),
                ("deletion:deletion_duration_seconds:p95_rate5m", "p95"),
                ("deletion:deletion_duration_seconds:p99_rate5m", "p99"),
            ),
            "s",
            lib.latency_steps(config),
            threshold_style="line",
            links=rb(config, "DeletionLatencyP95High", "DeletionLatencyAverageHigh"),
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "p95 latency by user type (1h)",
            "95th percentile deletion duration per type of deleted user over the last hour "
            "(user_type:deletion_duration_seconds:p95_rate1h): which kind of account is slow "
            "to delete.",
            lib.targets(("user_type:deletion_duration_seconds:p95_rate1h", "{{user_type}}")),
            "s",
            lib.latency_steps(config),
            threshold_style="line",
        ),
        w=12,
    )
    audit_le = lib.selector(
        config, "auditExporterSelector", f'le="{floatToGoString(lat["p95Target"])}"'
    )
    layout.add(
        lib.timeseries(
            "Share of deletions slower than the p95 target",
            "Fraction of deletions that took longer than the p95 target "
            f"(config latency.p95Target = {lat['p95Target']} s, a histogram bucket boundary, so "
            "this is exact). Above 5 % the p95 itself is over target.",
            lib.targets(
                (
                    f"1 - sum(rate(deletion_duration_seconds_bucket{audit_le}[$__rate_interval]))"
                    " / "
                    f"sum(rate(deletion_duration_seconds_count{audit}[$__rate_interval]))",
                    f"slower than {lat['p95Target']} s",
                )
            ),
            "percentunit",
            lib.steps_above([(0.05, WARNING)]),
            threshold_style="line",
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Complex deletions: p95 latency",
            "95th percentile duration of deletions that removed at least the large-cascade "
            "number of rows (deletion_large_cascade_duration_seconds histogram, audit exporter), "
            "next to the p95 of all deletions.",
            lib.targets(
                (
                    "histogram_quantile(0.95, sum by (le) (rate("
                    f"deletion_large_cascade_duration_seconds_bucket{audit}[$__rate_interval])))",
                    "complex deletions p95",
                ),
                ("deletion:deletion_duration_seconds:p95_rate5m", "all deletions p95"),
            ),
            "s",
            lib.latency_steps(config),
            threshold_style="line",
        ),
        w=12,
    )

    mem = config["memory"]
    layout.row("Application resources")
    layout.add(
        lib.timeseries(
            "Application memory",
            f"Resident memory of the application ({config['appMemoryMetric']}, prometheus-client "
            f"process collector, {config['appSelector']}) and the limit it may use "
            f"({config['appMemoryLimitMetric']}).",
            lib.targets(
                (f"{config['appMemoryMetric']}{app}", "resident {{instance}}"),
                (f"{config['appMemoryLimitMetric']}{app}", "limit {{instance}}"),
            ),
            "bytes",
        ),
        w=8,
    )
    layout.add(
        lib.timeseries(
            "Memory used of limit",
            "Resident memory / memory limit (deletion:deletion_app_memory:ratio). Bands: config "
            f"memory.warning ({mem['warning']:.0%}) and memory.critical ({mem['critical']:.0%}).",
            lib.targets(("deletion:deletion_app_memory:ratio", "{{instance}}")),
            "percentunit",
            lib.steps_above([(mem["warning"], WARNING), (mem["critical"], CRITICAL)]),
            threshold_style="line+area",
            links=rb(
                config,
                "DeletionAppMemoryHigh",
                "DeletionAppMemoryAboveBaseline",
                "DeletionAppMemoryFillingUp",
            ),
        ),
        w=8,
    )
    layout.add(
        lib.timeseries(
            "Garbage collections per second",
            "Python garbage collections per second by generation "
            f"({config['appGcCollectionsMetric']}, prometheus-client GC collector): GC pressure "
            "during complex deletions.",
            lib.targets(
                (
                    f"sum by (generation) (rate({config['appGcCollectionsMetric']}{app}"
                    "[$__rate_interval]))",
                    "generation {{generation}}",
                )
            ),
            "cps",
        ),
        w=8,
    )
    layout.add(
        lib.timeseries(
            "DB connection pool usage",
            "Connections in use / pool size (deletion:deletion_app_pool_usage:ratio). The line is "
            f"the spec's target, config pool.warning ({config['pool']['warning']:.0%}).",
            lib.targets(("deletion:deletion_app_pool_usage:ratio", "{{instance}}")),
            "percentunit",
            lib.steps_above([(config["pool"]["warning"], WARNING)]),
            threshold_style="line+area",
            links=rb(config, "DeletionDbPoolSaturated"),
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "DB connection pool: in use and size",
            f"Connections the application holds ({config['appPoolInUseMetric']}) and the pool "
            f"size ({config['appPoolMaxMetric']}).",
            lib.targets(
                (f"{config['appPoolInUseMetric']}{app}", "in use {{instance}}"),
                (f"{config['appPoolMaxMetric']}{app}", "max {{instance}}"),
            ),
            "short",
        ),
        w=12,
    )
    cpu, gc, q = config["cpu"], config["gc"], config["dbQuery"]
    layout.add(
        lib.timeseries(
            "Application CPU used of limit",
            f"CPU seconds per second ({config['appCpuMetric']}, prometheus-client process "
            f"collector) / the cores the app may use ({config['appCpuLimitMetric']}). Line: "
            f"config cpu.warning ({cpu['warning']:.0%}); the spec's 70 % average target is "
            "DeletionAppResourceUtilisationHigh.",
            lib.targets(
                (
                    f"sum by (instance) (rate({config['appCpuMetric']}{app}[$__rate_interval]))"
                    f" / sum by (instance) ({config['appCpuLimitMetric']}{app})",
                    "{{instance}}",
                )
            ),
            "percentunit",
            lib.steps_above([(cpu["warning"], WARNING)]),
            threshold_style="line+area",
            links=rb(config, "DeletionAppCpuHigh", "DeletionAppResourceUtilisationHigh"),
        ),
        w=8,
    )
    layout.add(
        lib.timeseries(
            "Time in garbage collection",
            "Share of wall time the application spends in garbage collection, by generation "
            f"(rate of {config['appGcDurationMetric']}_sum). Line: config gc.timeRatioWarning "
            f"({gc['timeRatioWarning']:.0%}).",
            lib.targets(
                (
                    f"sum by (instance, generation) (rate({config['appGcDurationMetric']}_sum"
                    f"{app}[$__rate_interval]))",
                    "{{instance}} gen {{generation}}",
                )
            ),
            "percentunit",
            lib.steps_above([(gc["timeRatioWarning"], WARNING)]),
            threshold_style="line",
            links=rb(config, "DeletionAppGcTimeHigh", "DeletionAppFullGcFrequent"),
        ),
        w=8,
    )
    layout.add(
        lib.timeseries(
            "Database statement time (p95)",
            "95th percentile execution time of the application's database statements "
            f"({config['appDbQueryDurationMetric']} histogram). Line: config dbQuery.p95Warning "
            f"({q['p95Warning']:g} s).",
            lib.targets(
                (
                    "histogram_quantile(0.95, sum by (le) (rate("
                    f"{config['appDbQueryDurationMetric']}_bucket{app}[$__rate_interval])))",
                    "p95",
                )
            ),
            "s",
            lib.steps_above([(q["p95Warning"], WARNING)]),
            threshold_style="line",
            links=rb(config, "DeletionDbQueryLatencyHigh"),
        ),
        w=8,
    )

    layout.row("Alerts, deploys and monitoring health")
    layout.add(
        lib.table(
            "Firing alerts: list",
            f'Every alert of service="{service}" firing now (Prometheus ALERTS series), with its '
            "severity and category. Follow the runbook links in the dashboard header.",
            lib.targets(
                f'ALERTS{{alertstate="firing", service="{service}"}}', instant=True, table=True
            ),
            "none",
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "Value": True,
                            "__name__": True,
                            "alertstate": True,
                            "service": True,
                        },
                        "indexByName": {"alertname": 0, "severity": 1, "category": 2},
                    },
                }
            ],
        ),
        w=9,
    )
    layout.add(
        lib.table(
            "Recent app versions",
            "The last app versions by first appearance in the audit log "
            "(deletion_app_version_first_seen_timestamp_seconds): the same times as the Deploys "
            "annotation markers.",
            lib.targets(
                f"max by (app_version) (deletion_app_version_first_seen_timestamp_seconds{audit})"
                " * 1000",
                instant=True,
                table=True,
            ),
            "dateTimeAsIso",
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "first deletion served"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "first deletion served"}]}},
            ],
        ),
        w=5,
    )
    layout.add(
        lib.stat(
            "Audit data age",
            "Seconds since the audit exporter last read the audit log successfully "
            "(time() - deletion_audit_last_poll_success_timestamp_seconds). Red at config "
            "auditMaxPollAge: every panel above is then stale.",
            lib.targets(f"time() - deletion_audit_last_poll_success_timestamp_seconds{audit}"),
            "s",
            lib.steps_above([(lib.seconds(config, config["auditMaxPollAge"]), CRITICAL)]),
            links=rb(config, "DeletionAuditDataStale"),
        ),
        w=5,
    )
    layout.add(
        lib.stat(
            "Scrape targets up",
            "Prometheus `up` of the jobs this dashboard reads: audit exporter, integrity "
            "exporter, application. 0 (red) means the panels fed by that job are empty.",
            lib.targets(
                (f"min(up{{{config['auditExporterSelector']}}})", "audit"),
                (f"min(up{{{config['integrityExporterSelector']}}})", "integrity"),
                (f"min(up{{{config['appSelector']}}})", "app"),
            ),
            "none",
            lib.steps_below([(1, CRITICAL)]),
            links=rb(config, "DeletionAuditExporterDown", "DeletionIntegrityExporterDown"),
            no_value="not scraped",
            text_mode="value_and_name",
        ),
        w=5,
    )

    return lib.dashboard(
        config,
        "postDeploy",
        "Live view of DELETE /api/users/{id} for the first 24-48 h after a deploy: error and "
        "success rate against the spec's ladders, failure classes, latency, application "
        "resources, firing alerts and deploy markers. Thresholds come from "
        "src/deletion_monitor/data/config.libsonnet.",
        layout,
        time_from="6h",
        refresh="30s",
        runbooks=("DeletionErrorRatePostDeploy", "DeletionErrorRateHigh"),
    )


def __getattr__(name: str) -> Any:
    # `generate-dashboard` reads the module-level `dashboard`; build it lazily so that importing
    # this module for `build(config)` does not evaluate the config twice.
    if name == "dashboard":
        from deletion_monitor.common.config import load_config

        return build(load_config())
    raise AttributeError(name)
