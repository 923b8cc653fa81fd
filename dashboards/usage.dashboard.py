"""Usage patterns dashboard: the spec's "Usage Pattern Analysis" (long-term monitoring).

Rendered by deletion_monitor_tools.render_dashboards (`python -m deletion_monitor_tools.generate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grafanalib.core import Dashboard

from deletion_monitor_tools import dashboards_lib as lib
from deletion_monitor_tools.dashboards_lib import OK, WARNING, Layout

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def build(config: Mapping[str, Any]) -> Dashboard:
    audit = lib.selector(config, "auditExporterSelector")
    rb = lib.runbook_links
    hour = lib.window(config, "1h")
    anomaly = config["anomaly"]
    z = float(anomaly["zScore"])
    layout = Layout()

    layout.row("When deletions happen")
    layout.add(
        lib.bar_chart(
            "Deletions by hour of day (UTC, selected range)",
            "Deletions attempted in each hour of the day over the selected range, from the "
            "audit log's occurred_at (deletion_requests_by_hour_total): peak times and load "
            "distribution.",
            lib.targets(
                (
                    f"sum by (hour) (increase(deletion_requests_by_hour_total{audit}[$__range]))",
                    "{{hour}}",
                ),
                instant=True,
            ),
            "short",
            sort_by_name=True,
        ),
        w=12,
        h=9,
    )
    layout.add(
        lib.bar_chart(
            "Deletions by day of week (selected range)",
            "Deletions attempted on each weekday over the selected range "
            "(deletion_requests_by_weekday_total): business-cycle patterns. One query per day "
            "keeps Monday to Sunday in order.",
            [
                lib.target(
                    "sum(increase(deletion_requests_by_weekday_total"
                    + lib.selector(config, "auditExporterSelector", f'weekday="{d}"')
                    + "[$__range]))",
                    d.capitalize(),
                    chr(ord("A") + i),
                    instant=True,
                )
                for i, d in enumerate(WEEKDAYS)
            ],
            "short",
        ),
        w=12,
        h=9,
    )
    layout.add(
        lib.timeseries(
            "Deletions per hour, this week and last week",
            "Deletions attempted over a sliding hour (deletion:deletion_requests:increase1h) and "
            "the same series a week earlier: daily and weekly trends at a glance.",
            lib.targets(
                ("deletion:deletion_requests:increase1h", "this week"),
                ("deletion:deletion_requests:increase1h offset 1w", "a week earlier"),
            ),
            "short",
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Week-over-week ratio",
            "The hourly deletion rate divided by the rate of the same hour a week earlier "
            "(deletion:deletion_requests:rate1h_week_over_week; 100 % = unchanged): a "
            "significant trend change shows as a sustained departure from 100 %. The z-score "
            "panel beside it is what DeletionRateAnomaly alerts on.",
            lib.targets(("deletion:deletion_requests:rate1h_week_over_week", "this week / last")),
            "percentunit",
            links=rb(config, "DeletionRateAnomaly"),
        ),
        w=6,
    )
    layout.add(
        lib.timeseries(
            "Rate and latency anomaly (z-score)",
            "How unusual the hourly deletion rate and average deletion time are: (value - its "
            f"mean over {anomaly['window']}) / its standard deviation "
            "(deletion:deletion_requests:rate1h_zscore1w, "
            "deletion:deletion_duration_seconds:avg_rate1h_zscore1w: the recording rules behind "
            f"DeletionRateAnomaly and DeletionLatencyAnomaly). Beyond ±{z:g} (config "
            "anomaly.zScore) the pattern is unusual.",
            lib.targets(
                ("deletion:deletion_requests:rate1h_zscore1w", "deletion rate"),
                ("deletion:deletion_duration_seconds:avg_rate1h_zscore1w", "average latency"),
            ),
            "none",
            [
                {"color": WARNING, "value": None},
                {"color": OK, "value": -z},
                {"color": WARNING, "value": z},
            ],
            threshold_style="line+area",
            min_value=None,
            links=rb(config, "DeletionRateAnomaly", "DeletionLatencyAnomaly"),
        ),
        w=6,
    )

    layout.row("Who is deleted")
    layout.add(
        lib.timeseries(
            "Deletions per hour by user type",
            "Deletions attempted per hour by the type of the deleted user (3600 * "
            "user_type:deletion_requests:rate1h): VENDOR, CLIENT, DRIVER, ADMIN, HELPDESK, "
            "SUPER_ADMIN, other.",
            lib.targets(("3600 * user_type:deletion_requests:rate1h", "{{user_type}}")),
            "short",
            stack=True,
        ),
        w=12,
    )
    layout.add(
        lib.pie(
            "Share by user type (selected range)",
            "Share of deletions per user type over the selected range "
            "(increase of deletion_requests_total by user_type).",
            lib.targets(
                (
                    f"sum by (user_type) (increase(deletion_requests_total{audit}[$__range]))",
                    "{{user_type}}",
                ),
                instant=True,
            ),
            "short",
        ),
        w=6,
    )
    layout.add(
        lib.bar_chart(
            "Slowest user types (p95, last hour)",
            "95th percentile deletion time per user type over the last hour "
            "(user_type:deletion_duration_seconds:p95_rate1h), slowest first: where to look "
            "for slow cascades. Colours: the latency ladder.",
            lib.targets(
                ("sort_desc(user_type:deletion_duration_seconds:p95_rate1h)", "{{user_type}}"),
                instant=True,
            ),
            "s",
            lib.latency_steps(config),
        ),
        w=6,
    )

    layout.row("How deletions fail")
    layout.add(
        lib.timeseries(
            "Failure mix over time (per hour)",
            "Failed deletions per hour by failure class "
            "(error_type:deletion_failures:increase1h): the most common failure scenarios and "
            "how they change.",
            [
                lib.target(
                    "error_type:deletion_failures:increase1h", "{{error_type}}", interval=hour
                )
            ],
            "short",
            stack=True,
            bars=True,
            interval=hour,
            no_value="no failures",
        ),
        w=12,
    )
    layout.add(
        lib.table(
            "Failures by user type and class (selected range)",
            "Failed deletions per user type and failure class over the selected range "
            "(increase of deletion_failures_total): which users hit which failures.",
            lib.targets(
                "sum by (user_type, error_type) "
                f"(increase(deletion_failures_total{audit}[$__range])) > 0",
                instant=True,
                table=True,
            ),
            "short",
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "failures"},
                    },
                },
                {"id": "sortBy", "options": {"sort": [{"field": "failures", "desc": True}]}},
            ],
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Error rate trend (1 day and 3 day windows)",
            "Failed / attempted deletions over sliding 1-day and 3-day windows "
            "(deletion:deletion_error_ratio:rate1d, :rate3d): the slow trend behind the 5-minute "
            "alerts. Lines: the steady-state ladder." + lib.errors_note(config),
            lib.targets(
                ("deletion:deletion_error_ratio:rate1d", "1 day"),
                ("deletion:deletion_error_ratio:rate3d", "3 days"),
            ),
            "percentunit",
            lib.error_rate_steps(config),
            threshold_style="line",
        ),
        w=12,
    )
    layout.add(
        lib.timeseries(
            "Latency trend (1 hour window)",
            "Average, p95 and p99 deletion time over a sliding hour "
            "(deletion:deletion_duration_seconds:{avg,p95,p99}_rate1h). Lines: the p95 ladder.",
            lib.targets(
                ("deletion:deletion_duration_seconds:avg_rate1h", "average"),
                ("deletion:deletion_duration_seconds:p95_rate1h", "p95"),
                ("deletion:deletion_duration_seconds:p99_rate1h", "p99"),
            ),
            "s",
            lib.latency_steps(config),
            threshold_style="line",
        ),
        w=12,
    )

    layout.row("Deletion complexity")
    layout.add(
        lib.timeseries(
            "Rows removed per deletion",
            "Rows a successful deletion removed across all tables (deletion_cascade_rows "
            "histogram: median, p95, p99 and mean over a sliding hour): how heavy the cascades "
            "are, a capacity-planning input.",
            lib.targets(
                *[
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(deletion_cascade_rows_bucket"
                        f"{audit}[{hour}])))",
                        name,
                    )
                    for q, name in (("0.5", "median"), ("0.95", "p95"), ("0.99", "p99"))
                ],
                (
                    f"sum(rate(deletion_cascade_rows_sum{audit}[{hour}])) / "
                    f"sum(rate(deletion_cascade_rows_count{audit}[{hour}]))",
                    "mean",
                ),
            ),
            "short",
        ),
        w=12,
    )
    layout.add(
        lib.bar_chart(
            "Rows removed by table (selected range)",
            "Rows removed per table over the selected range (increase of "
            "deletion_rows_deleted_total by table; rare tables are grouped as `other`).",
            lib.targets(
                (
                    "sort_desc(sum by (table) (increase(deletion_rows_deleted_total"
                    f"{audit}[$__range])))",
                    "{{table}}",
                ),
                instant=True,
            ),
            "short",
        ),
        w=6,
    )
    layout.add(
        lib.timeseries(
            "Share of complex deletions",
            "Successful deletions that removed at least the large-cascade number of rows, as a "
            "share of all successful deletions over a sliding hour "
            "(deletion_large_cascade_duration_seconds_count / "
            'deletion_duration_seconds_count{outcome="success"}).',
            lib.targets(
                (
                    f"sum(rate(deletion_large_cascade_duration_seconds_count{audit}[{hour}])) / "
                    "sum(rate(deletion_duration_seconds_count"
                    + lib.selector(config, "auditExporterSelector", 'outcome="success"')
                    + f"[{hour}]))",
                    "complex share",
                )
            ),
            "percentunit",
        ),
        w=6,
    )

    return lib.dashboard(
        config,
        "usage",
        "When, for whom and how deletions happen over weeks: hour-of-day and weekday patterns, "
        "week-over-week trend and anomalies, user types, the failure mix, the slowest user "
        "types and how many rows a deletion removes. Data: the audit exporter (audit log) and "
        "the recording rules in alert_rules/.",
        layout,
        time_from="7d",
        refresh="5m",
        runbooks=("DeletionRateAnomaly",),
    )


def __getattr__(name: str) -> Any:
    # `generate-dashboard` reads the module-level `dashboard`; built lazily (see post_deploy).
    if name == "dashboard":
        from deletion_monitor.common.config import load_config

        return build(load_config())
    raise AttributeError(name)
