"""Executive / SLA dashboard: the spec's "Executive Dashboards" and "Success Metrics and KPIs".

Rendered by deletion_monitor_tools.render_dashboards (`python -m deletion_monitor_tools.generate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grafanalib.core import Dashboard

from deletion_monitor_tools import dashboards_lib as lib
from deletion_monitor_tools.dashboards_lib import CRITICAL, WARNING, Layout

SEVERITY_COLOURS = {"critical": CRITICAL, "warning": WARNING, "info": lib.INFO}

YES_NO = lib.binary_mappings("NO", "yes")


def exact_increase(series: str, probe: str, window: str = "$__range") -> str:
    """The increase of a counter over `window` counted as the reports count it
    (deletion_monitor.reports.figures.Source.inc), so that the compliance report and this
    dashboard show the same numbers (tests/integration/test_report_dashboard.py):

    - a series present at the start of the window: the value at the end minus the value then;
    - a series that appeared inside the window while the exporter was scraped at its start
      (`probe`, a series the exporter always serves, was there): its whole value (a first
      failure of a class; increase() would miss that first increment);
    - the exporter itself first scraped inside the window: the increase since its first sample
      (`x - min_over_time(x[w])`): the audit history it loaded is not this window's;
    - a series whose counter reset in the window: increase().

    increase() alone extrapolates to the window's edges (32340 deletions shown as 32341.8). The
    start value is `last_over_time(x[5m] offset w)`, `x offset w` with the same 5-minute
    lookback, written as a function so the replica collapse (dashboards_lib.
    dedup_exporter_series) can wrap it.
    """
    start = f"last_over_time({series}[5m] offset {window})"
    scraped_at_start = f"count(last_over_time({probe}[5m] offset {window})) > 0"
    exact = (
        f"({series} - {start})"
        f" or (({series} unless {start}) and on () ({scraped_at_start}))"
        f" or ({series} - min_over_time({series}[{window}]))"
    )
    return f"(({exact}) unless resets({series}[{window}]) > 0) or increase({series}[{window}])"


def build(config: Mapping[str, Any]) -> Dashboard:
    audit = lib.selector(config, "auditExporterSelector")
    # Served for every user type from the audit exporter's first scrape: "it was scraped".
    requests = f"deletion_requests_total{audit}"
    # Failures that count against the SLO (config errorRate.excludedErrorTypes left out).
    errors = lib.counted_failures(config)
    failures = f"deletion_failures_total{errors}"
    integ = lib.selector(config, "integrityExporterSelector")
    app = lib.selector(config, "appSelector")
    orphans = lib.orphans(config)
    service = config["serviceName"]
    slo = config["slo"]
    target = slo["target"]
    budget = 1 - target
    period = lib.window(config, slo["period"])
    lat = config["latency"]
    mem = config["memory"]
    alerts = f'ALERTS{{alertstate="firing", service="{service}", alertname!="Watchdog"}}'
    rb = lib.runbook_links
    layout = Layout()

    layout.row("SLA: the spec's KPIs against their targets (selected range)")
    layout.add(
        lib.stat(
            "Deletion success rate",
            "Successful / attempted deletions over the selected range (exact increase of "
            "deletion_requests_total and deletion_failures_total, audit exporter, counted as "
            "the reports count). Target: "
            f"> {target:.0%} (config slo.target); red below it." + lib.errors_note(config),
            lib.targets(
                # The failure series exist only after a first failure: no failures is 0.
                f"1 - (sum({exact_increase(failures, requests)}) or vector(0))"
                f" / sum({exact_increase(requests, requests)})"
            ),
            "percentunit",
            lib.steps_below([(target, CRITICAL)]),
            links=rb(config, "DeletionErrorBudgetBurn"),
            no_value="no deletions",
            decimals=3,
        ),
        w=4,
        h=6,
    )
    layout.add(
        lib.stat(
            "P95 deletion time",
            "95th percentile deletion duration over the selected range (deletion_duration_seconds "
            f"histogram). Target: < {lat['p95Target']} s (config latency.p95Target).",
            lib.targets(
                "histogram_quantile(0.95, sum by (le) "
                f"(increase(deletion_duration_seconds_bucket{audit}[$__range])))"
            ),
            "s",
            lib.steps_above([(lat["p95Target"], CRITICAL)]),
            links=rb(config, "DeletionLatencyP95High"),
            no_value="no deletions",
            decimals=2,
        ),
        w=4,
        h=6,
    )
    layout.add(
        lib.stat(
            "Average deletion time",
            "Mean deletion duration over the selected range (deletion_duration_seconds sum / "
            f"count). Target: < {lat['averageTarget']} s (config latency.averageTarget).",
            lib.targets(
                f"sum(increase(deletion_duration_seconds_sum{audit}[$__range])) / "
                f"sum(increase(deletion_duration_seconds_count{audit}[$__range]))"
            ),
            "s",
            lib.steps_above([(lat["averageTarget"], CRITICAL)]),
            links=rb(config, "DeletionLatencyAverageHigh"),
            no_value="no deletions",
            decimals=2,
        ),
        w=4,
        h=6,
    )
    layout.add(
        lib.stat(
            f"Error budget remaining ({slo['period']})",
            f"Share of the {slo['period']} error budget ({budget:.2%} of deletions may fail, "
            "config slo.target) still unspent: 1 - error ratio over the SLO period / budget. "
            "Fixed to the SLO period, not the selected range. Red when exhausted."
            + lib.errors_note(config),
            lib.targets(
                f"1 - ((sum({exact_increase(failures, requests, period)})"
                " or vector(0)) / "
                f"sum({exact_increase(requests, requests, period)})) / {budget:g}"
            ),
            "percentunit",
            lib.steps_below([(0, CRITICAL)]),
            links=rb(config, "DeletionErrorBudgetBurn"),
            no_value="no deletions",
            decimals=1,
        ),
        w=4,
        h=6,
    )
    layout.add(
        lib.stat(
            "Orphaned records",
            "Rows still pointing at a deleted user now ("
            f"{lib.orphan_categories_text(config)} integrity checks, integrity exporter). "
            "Target: 0 (config integrity.orphanTolerance = "
            f"{config['integrity']['orphanTolerance']}).",
            lib.targets(f"sum(deletion_integrity_violations{orphans})"),
            "short",
            lib.steps_above([(lib.more_than(config["integrity"]["orphanTolerance"]), CRITICAL)]),
            links=[*rb(config, "DeletionOrphanedRecords"), lib.dashboard_link(config, "integrity")],
        ),
        w=4,
        h=6,
    )
    layout.add(
        lib.stat(
            "Monitoring coverage",
            "Share of the monitoring that works now: audit and integrity exporters scraped "
            "(up) and every integrity check's last run ok (deletion_integrity_check_up). "
            "Spec: 100 % operation monitoring; amber below.",
            lib.targets(
                f"(sum(up{audit}) + sum(up{integ}) + sum(deletion_integrity_check_up{integ})) / "
                f"(count(up{audit}) + count(up{integ}) + count(deletion_integrity_check_up{integ}))"
            ),
            "percentunit",
            lib.steps_below([(1, WARNING)]),
            links=rb(config, "DeletionAuditExporterDown", "DeletionIntegrityExporterDown"),
            no_value="not scraped",
            decimals=1,
        ),
        w=4,
        h=6,
    )

    layout.row("Trends")
    layout.add(
        lib.timeseries(
            "Daily success rate vs target",
            "Successful / attempted deletions over a sliding day "
            "(1 - deletion:deletion_error_ratio:rate1d). The line is the SLO target "
            f"({target:.0%}, config slo.target)." + lib.errors_note(config),
            lib.targets(("1 - deletion:deletion_error_ratio:rate1d", "success rate (1 day)")),
            "percentunit",
            lib.steps_below([(target, CRITICAL)]),
            threshold_style="line+area",
            min_value=None,
        ),
        w=12,
    )
    burn_levels = sorted(
        (float(b["factor"]), SEVERITY_COLOURS[b["severity"]]) for b in slo["burnRates"]
    )
    layout.add(
        lib.timeseries(
            "Error budget burn rate",
            "How fast the error budget is spent: error ratio / budget over the long windows of "
            "the multi-window burn-rate alerts (deletion:deletion_error_ratio:rate<W>; 1 = "
            "exactly the budget over the SLO period). Lines: the burn factors of config "
            "slo.burnRates.",
            lib.targets(
                *[
                    (f"deletion:deletion_error_ratio:rate{b['long']} / {budget:g}", b["long"])
                    for b in slo["burnRates"]
                ]
            ),
            "none",
            lib.steps_above(burn_levels),
            threshold_style="line",
            links=rb(config, "DeletionErrorBudgetBurn"),
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Deletion time vs targets (1 hour window)",
            "p95 and average deletion time over a sliding hour "
            "(deletion:deletion_duration_seconds:p95_rate1h, :avg_rate1h). Lines: the average "
            f"target ({lat['averageTarget']} s, amber) and the p95 target ({lat['p95Target']} s, "
            "red).",
            lib.targets(
                ("deletion:deletion_duration_seconds:p95_rate1h", "p95"),
                ("deletion:deletion_duration_seconds:avg_rate1h", "average"),
            ),
            "s",
            lib.steps_above([(lat["averageTarget"], WARNING), (lat["p95Target"], CRITICAL)]),
            threshold_style="line",
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Integrity violations and orphaned records",
            "Violations of all integrity checks (deletion:deletion_integrity_violations:sum) and "
            "the orphaned-record part of them. Spec: 0 tolerance.",
            lib.targets(
                ("deletion:deletion_integrity_violations:sum", "all violations"),
                (f"sum(deletion_integrity_violations{orphans})", "orphaned records"),
            ),
            "short",
            lib.steps_above([(lib.more_than(config["integrity"]["orphanTolerance"]), CRITICAL)]),
            threshold_style="line",
            links=[lib.dashboard_link(config, "integrity")],
        ),
        w=12,
    )

    layout.row("Alerts and risk")
    layout.add(
        lib.stat(
            "Alerts fired by severity (selected range)",
            f'Distinct alerts of service="{service}" that fired in the selected range, by '
            "severity (Prometheus ALERTS; Watchdog excluded). Critical alerts page, warnings go "
            "to Slack, info to the email digest.",
            lib.targets(
                (f"count by (severity) (max_over_time({alerts}[$__range]))", "{{severity}}"),
                instant=True,
            ),
            "short",
            lib.steps_above([(1, WARNING)]),
            no_value="none",
            text_mode="value_and_name",
        ),
        w=8,
    )
    layout.add(
        lib.timeseries(
            "Firing alerts by severity",
            f'Alerts of service="{service}" firing at each moment, by severity (Prometheus '
            "ALERTS, Watchdog excluded).",
            lib.targets((f"count by (severity) ({alerts})", "{{severity}}")),
            "short",
            stack=True,
            bars=True,
            no_value="no alerts firing",
            links=[lib.dashboard_link(config, "postDeploy")],
        ),
        w=8,
    )
    layout.add(
        lib.stat(
            "Forbidden deletions (selected range)",
            "Successful deletions the business rules forbid (self-deletion, deleting a "
            "SUPER_ADMIN), from deletion_forbidden_successes_total. Any is a security incident.",
            lib.targets(
                f"sum({exact_increase(f'deletion_forbidden_successes_total{audit}', requests)})"
            ),
            "short",
            lib.steps_above([(1, CRITICAL)]),
            links=rb(config, "DeletionForbiddenDeletion"),
            no_value="0",
        ),
        w=4,
    )
    layout.add(
        lib.stat(
            "Endpoint rejects bogus tokens",
            "The blackbox probe (job deletion-auth-probe) calls the endpoint with an invalid "
            "token; probe_success is 1 when it answered 401/403. NO means anyone may delete.",
            lib.targets('min(probe_success{job="deletion-auth-probe"})'),
            "none",
            lib.steps_below([(1, CRITICAL)]),
            links=rb(config, "DeletionEndpointAuthProbeFailed"),
            mappings=YES_NO,
            no_value="not probed",
        ),
        w=4,
    )

    mem_metric = f"{config['appMemoryMetric']}{app}"
    layout.row("Resources (selected range)")
    layout.add(
        lib.stat(
            "Peak DB connection pool usage",
            "Highest connections-in-use / pool size in the selected range "
            "(deletion:deletion_app_pool_usage:ratio). Target: < "
            f"{config['pool']['warning']:.0%} (config pool.warning).",
            lib.targets("max(max_over_time(deletion:deletion_app_pool_usage:ratio[$__range]))"),
            "percentunit",
            lib.steps_above([(config["pool"]["warning"], CRITICAL)]),
            links=rb(config, "DeletionDbPoolSaturated"),
        ),
        w=6,
        h=5,
    )
    layout.add(
        lib.stat(
            "Peak memory used of limit",
            "Highest resident memory / memory limit in the selected range "
            "(deletion:deletion_app_memory:ratio). Amber above config memory.warning "
            f"({mem['warning']:.0%}), red above memory.critical ({mem['critical']:.0%}).",
            lib.targets("max(max_over_time(deletion:deletion_app_memory:ratio[$__range]))"),
            "percentunit",
            lib.steps_above([(mem["warning"], WARNING), (mem["critical"], CRITICAL)]),
            links=rb(config, "DeletionAppMemoryHigh"),
        ),
        w=6,
        h=5,
    )
    layout.add(
        lib.stat(
            "Memory increase from baseline",
            "Resident memory now against its baseline "
            "(instance:deletion_app_memory_bytes:baseline, the recording rule behind "
            "DeletionAppMemoryAboveBaseline: the median of the 1-hour "
            f"average over {mem['baselineWindow']}). Target: < "
            f"{mem['baselineIncreaseTarget']:.0%} (config memory.baselineIncreaseTarget, amber); "
            f"the investigation alert fires above {mem['baselineIncrease']:.0%} "
            "(memory.baselineIncrease, red).",
            lib.targets(
                f"max(sum by (instance) ({mem_metric}) / "
                "instance:deletion_app_memory_bytes:baseline) - 1"
            ),
            "percentunit",
            lib.steps_above(
                [(mem["baselineIncreaseTarget"], WARNING), (mem["baselineIncrease"], CRITICAL)]
            ),
            links=rb(config, "DeletionAppMemoryAboveBaseline"),
        ),
        w=6,
        h=5,
    )
    layout.add(
        lib.stat(
            "Deletions (selected range)",
            "Deletions attempted in the selected range (exact increase of "
            "deletion_requests_total, as the reports count): the volume behind every rate above.",
            lib.targets(f"sum({exact_increase(requests, requests)})"),
            "short",
            no_value="0",
            links=[lib.dashboard_link(config, "usage")],
        ),
        w=6,
        h=5,
    )

    return lib.dashboard(
        config,
        "executive",
        "The spec's KPIs against their targets for the selected range (default: the SLO "
        "period): success rate, p95 and average deletion time, error budget, orphaned records, "
        "monitoring coverage, alerts by severity, security signals and resource peaks. Every "
        "target comes from src/deletion_monitor/data/config.libsonnet.",
        layout,
        time_from=slo["period"],
        refresh="5m",
        runbooks=("DeletionErrorBudgetBurn",),
    )


def __getattr__(name: str) -> Any:
    # `generate-dashboard` reads the module-level `dashboard`; built lazily (see post_deploy).
    if name == "dashboard":
        from deletion_monitor.common.config import load_config

        return build(load_config())
    raise AttributeError(name)
