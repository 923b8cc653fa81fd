"""Builders shared by dashboards/*.dashboard.py (grafanalib 0.7.1).

Every threshold a dashboard shows is computed here from the loaded config (never typed into a
dashboard), every panel gets an explicit id and gridPos from `Layout`, and every query goes to
the `${datasource}` template variable so one JSON works against any Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attr
from grafanalib.core import (
    GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    Annotations,
    BarChart,
    Dashboard,
    DashboardLink,
    DataLink,
    GridPos,
    PieChartv2,
    RowPanel,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

from deletion_monitor.common.config import load_config
from deletion_monitor.common.durations import format_duration, parse_duration
from deletion_monitor.common.promapi import dedup as promapi_dedup
from deletion_monitor.reports.figures import (
    counted_failures_matcher,
    excluded_error_types,
    orphan_categories,
    orphan_matcher,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TAG = "deletion-monitoring"

# Colours of the spec's ladders: ok, info, warning (amber), critical.
OK, INFO, WARNING, CRITICAL = "green", "yellow", "orange", "red"

# Dashboard keys (config dashboardUids) and the titles other dashboards link to them by.
TITLES = {
    "postDeploy": "Deletion: post-deployment (live)",
    "integrity": "Deletion: data integrity",
    "usage": "Deletion: usage patterns",
    "executive": "Deletion: executive / SLA",
}


# --- config helpers ---------------------------------------------------------------------------
def window(config: Mapping[str, Any], duration: str | float) -> str:
    """A range for a raw query, divided by the demo's timeCompression like the rendered rules
    (whole seconds, at least 1s)."""
    seconds = parse_duration(duration) if isinstance(duration, str) else duration
    return format_duration(max(1, round(seconds / float(config.get("timeCompression", 1)))))


def seconds(config: Mapping[str, Any], value: float) -> float:
    """A duration threshold in seconds after time compression."""
    return value / float(config.get("timeCompression", 1))


def selector(config: Mapping[str, Any], key: str, extra: str = "") -> str:
    """`{job="..."}` from a config selector key (auditExporterSelector, appSelector, ...)."""
    matchers = [config[key]] + ([extra] if extra else [])
    return "{" + ", ".join(matchers) + "}"


# --- exporter replicas ------------------------------------------------------------------------
# Per-target series: one per replica on purpose (how many targets are up, how far each one's
# start-up load is), never collapsed.
PER_TARGET_SERIES = frozenset(
    {
        "up",
        "deletion_audit_up",
        "deletion_integrity_up",
        "deletion_audit_ready",
        "deletion_audit_initial_load_rows_done",
        "deletion_audit_initial_load_rows_estimated",
    }
)
_SERIES = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\{([^{}]*)\}")
_RANGE = re.compile(r"\s*\[[^\]]+\]")


def replica_labels(config: Mapping[str, Any] | None = None) -> list[str]:
    """config replicaLabels (the loaded config when none is given)."""
    cfg = load_config() if config is None else config
    return list(cfg.get("replicaLabels", []))


def dedup(expr: str, config: Mapping[str, Any] | None = None) -> str:
    """`expr` (an instant vector) with the replicas of an exporter collapsed: the rules'
    util.dedup(), `max without (<replicaLabels>) (expr)`."""
    return promapi_dedup(expr, replica_labels(config))


def dedup_exporter_series(expr: str, config: Mapping[str, Any]) -> str:
    """`expr` with every raw series of this project's exporters collapsed across replicas.

    Two audit exporters on one table (or two integrity exporters on one database) serve the same
    series, told apart only by config replicaLabels: every `sum(...)` over them would count each
    deletion twice. Each raw series selected by the audit or integrity exporter selector is
    wrapped in dedup(): an instant selector by itself, a range selector together with the
    function it feeds (`increase(x[1h])` -> `max without (instance, pod) (increase(x[1h]))`).
    Recording rules (their names have a colon) and the per-target health series
    (PER_TARGET_SERIES) are left alone. Applied to every query by render_dashboards.build_all.
    """
    labels = replica_labels(config)
    if not labels:
        return expr
    jobs = (config["auditExporterSelector"], config["integrityExporterSelector"])
    wrap = promapi_dedup("", labels)[:-2]  # "max without (...) "
    spans: list[tuple[int, int]] = []
    for m in _SERIES.finditer(expr):
        name, matchers = m.group(1), m.group(2)
        if name in PER_TARGET_SERIES or not any(j in matchers for j in jobs):
            continue
        start, end = m.start(), m.end()
        rng = _RANGE.match(expr, end)
        if rng:
            # Range selector: wrap the function call around it, `func(` ... `)`.
            i = start - 1
            while i >= 0 and expr[i].isspace():
                i -= 1
            if i < 0 or expr[i] != "(":
                raise ValueError(f"range selector outside a function call in {expr!r}")
            j = i - 1
            while j >= 0 and (expr[j].isalnum() or expr[j] == "_"):
                j -= 1
            start, depth, k = j + 1, 0, i
            for k in range(i, len(expr)):
                depth += {"(": 1, ")": -1}.get(expr[k], 0)
                if depth == 0:
                    break
            end = k + 1
        if spans and spans[-1][1] > start:  # already inside the previous span
            continue
        spans.append((start, end))
    for start, end in reversed(spans):
        expr = f"{expr[:start]}{wrap}({expr[start:end]}){expr[end:]}"
    return expr


def collapse_replicas(board: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard JSON with dedup_exporter_series() applied to every target and annotation."""
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            annotation["expr"] = dedup_exporter_series(annotation["expr"], config)
    for panel in board.get("panels") or []:
        for p in [panel, *(panel.get("panels") or [])]:
            for tgt in p.get("targets") or []:
                if tgt.get("expr"):
                    tgt["expr"] = dedup_exporter_series(tgt["expr"], config)
    return board


def orphans(config: Mapping[str, Any]) -> str:
    """Selector of the integrity violations that are rows a deletion left behind: the spec's
    "orphaned records", config integrity.orphanCategories (as DeletionOrphanedRecords)."""
    return selector(config, "integrityExporterSelector", orphan_matcher(dict(config)))


def orphan_categories_text(config: Mapping[str, Any]) -> str:
    """config integrity.orphanCategories for a description: `a, b and c`."""
    return prose_list(orphan_categories(dict(config)))


def prose_list(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def counted_failures(config: Mapping[str, Any]) -> str:
    """Selector of the failures an error ratio counts: every class but config
    errorRate.excludedErrorTypes (as the recording rules). No matcher when nothing is excluded."""
    return selector(config, "auditExporterSelector", counted_failures_matcher(dict(config)))


def errors_note(config: Mapping[str, Any]) -> str:
    """Sentence for the description of a success/error-rate panel: which failures are no error."""
    excluded = excluded_error_types(dict(config))
    if not excluded:
        return ""
    note = (
        f" Failures of class {', '.join(excluded)} (config errorRate.excludedErrorTypes) are not "
        "errors: they still count per failure class"
    )
    if "authorization" in excluded:
        # A refused unauthorised caller is the endpoint working; the security alert covers it.
        note += ", and refusals alert through DeletionAuthorizationFailuresHigh (security)"
    return note + "."


def runbook_url(config: Mapping[str, Any], alert: str) -> str:
    return f"{config['runbookBaseUrl']}{alert}.md"


def docs_url(config: Mapping[str, Any], page: str) -> str:
    """A page in docs/, next to the runbooks directory the config points at."""
    base = config["runbookBaseUrl"].rstrip("/")
    return f"{base.rsplit('/', 1)[0]}/{page}"


def runbook_links(config: Mapping[str, Any], *alerts: str) -> list[DataLink]:
    return [
        DataLink(title=f"Runbook: {a}", linkUrl=runbook_url(config, a), isNewTab=True)
        for a in alerts
    ]


def dashboard_link(config: Mapping[str, Any], key: str, title: str | None = None) -> DataLink:
    uid = config["dashboardUids"][key]
    return DataLink(title=title or TITLES[key], linkUrl=f"/d/{uid}?${{__url_time_range}}")


# --- thresholds -------------------------------------------------------------------------------
def _round(value: float) -> float:
    # 1 - 0.99 is 0.010000000000000009: keep the rendered JSON readable and stable.
    return round(float(value), 10)


def steps_above(levels: Sequence[tuple[float, str]], base: str = OK) -> list[dict[str, Any]]:
    """Threshold steps where a value at or above a level takes its colour.

    `levels` is ordered from least to most severe, e.g. [(info, INFO), (warning, WARNING)].
    When an override puts a severe level below a milder one (ERROR_RATE_THRESHOLD=0.3 moves the
    warning below info), the severer colour wins from its own threshold up.
    """
    return _steps(levels, base, above=True)


def steps_below(levels: Sequence[tuple[float, str]], base: str = OK) -> list[dict[str, Any]]:
    """Threshold steps where a value below a level takes its colour (success rates, budgets)."""
    return _steps(levels, base, above=False)


def _steps(levels: Sequence[tuple[float, str]], base: str, above: bool) -> list[dict[str, Any]]:
    ranked = [(_round(v), rank, colour) for rank, (v, colour) in enumerate(levels, start=1)]
    breaks = sorted({v for v, _, _ in ranked})

    def colour_at(point: float | None) -> str:
        if above:
            hit = [(r, c) for v, r, c in ranked if point is not None and v <= point]
        else:
            hit = [(r, c) for v, r, c in ranked if point is None or v > point]
        return max(hit)[1] if hit else base

    steps: list[dict[str, Any]] = [{"color": colour_at(None), "value": None}]
    for point in breaks:
        colour = colour_at(point)
        if colour != steps[-1]["color"]:
            steps.append({"color": colour, "value": point})
    return steps


def error_rate_steps(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    er = config["errorRate"]
    return steps_above([(er["info"], INFO), (er["warning"], WARNING), (er["critical"], CRITICAL)])


def success_rate_steps(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The error-rate ladder seen from the success side: 1 - threshold, colour below it."""
    er = config["errorRate"]
    return steps_below(
        [(1 - er["info"], INFO), (1 - er["warning"], WARNING), (1 - er["critical"], CRITICAL)]
    )


def latency_steps(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    lat = config["latency"]
    return steps_above(
        [(lat["info"], INFO), (lat["warning"], WARNING), (lat["critical"], CRITICAL)]
    )


# Counts are integers; "more than N" starts at N + 1.
def more_than(count: float) -> float:
    return float(count) + 1


# --- targets and panels -----------------------------------------------------------------------
def target(
    expr: str,
    legend: str = "",
    ref: str = "A",
    instant: bool = False,
    table: bool = False,
    interval: str = "",
) -> Target:
    return Target(
        expr=expr,
        legendFormat=legend,
        refId=ref,
        instant=instant,
        format="table" if table else "time_series",
        interval=interval,
        intervalFactor=1,
        datasource=DATASOURCE,
    )


def targets(*queries: tuple[str, str] | str, instant: bool = False, table: bool = False):
    """Targets with refIds A, B, ... from (expr, legend) pairs or bare exprs."""
    out = []
    for i, query in enumerate(queries):
        expr, legend = (query, "") if isinstance(query, str) else query
        out.append(target(expr, legend, chr(ord("A") + i), instant=instant, table=table))
    return out


def _common(title: str, description: str, tgts: list[Target], links: Iterable[DataLink]):
    if not description:
        raise ValueError(f"panel {title!r}: a description is required")
    return {
        "title": title,
        "description": description,
        "targets": tgts,
        "dataSource": DATASOURCE,
        "links": list(links),
        # null: Grafana sizes the query step to the panel width instead of grafanalib's 100.
        "maxDataPoints": None,
    }


def binary_mappings(zero: str, one: str) -> list[dict[str, Any]]:
    """Grafana value mappings for a 0/1 gauge: 0 shown red as `zero`, 1 green as `one`."""
    return [
        {
            "type": "value",
            "options": {
                "0": {"text": zero, "color": CRITICAL, "index": 0},
                "1": {"text": one, "color": "green", "index": 1},
            },
        }
    ]


def stat(
    title: str,
    description: str,
    tgts: list[Target],
    unit: str,
    steps: list[dict[str, Any]] | None = None,
    links: Iterable[DataLink] = (),
    no_value: str = "no data",
    decimals: int | None = None,
    mappings: list[dict[str, Any]] | None = None,
    graph: bool = False,
    text_mode: str = "auto",
) -> Stat:
    if not graph:
        # A stat shows one number: an instant query is exact and cheap even for $__range.
        tgts = [attr.evolve(t, instant=True) for t in tgts]
    return Stat(
        **_common(title, description, tgts, links),
        format=unit,
        thresholds=steps or [{"color": OK, "value": None}],
        reduceCalc="lastNotNull",
        color={"mode": "thresholds"},
        colorMode="background",
        graphMode="area" if graph else "none",
        noValue=no_value,
        decimals=decimals,
        mappings=mappings or [],
        textMode=text_mode,
    )


def timeseries(
    title: str,
    description: str,
    tgts: list[Target],
    unit: str,
    steps: list[dict[str, Any]] | None = None,
    threshold_style: str = "off",
    stack: bool = False,
    bars: bool = False,
    links: Iterable[DataLink] = (),
    min_value: int | None = 0,
    interval: str | None = None,
    time_from: str | None = None,
    legend_calcs: list[str] | None = None,
    no_value: str | None = None,
) -> TimeSeries:
    return TimeSeries(
        **_common(title, description, tgts, links),
        unit=unit,
        thresholds=steps or [{"color": OK, "value": None}],
        thresholdsStyleMode=threshold_style if steps else "off",
        stacking={"mode": "normal", "group": "A"} if stack else {},
        drawStyle="bars" if bars else "line",
        fillOpacity=60 if bars else (20 if stack else 10),
        valueMin=min_value,
        interval=interval,
        timeFrom=time_from,
        legendDisplayMode="table" if legend_calcs else "list",
        legendCalcs=legend_calcs or [],
        tooltipMode="multi",
        tooltipSort="desc",
        extraJson={"fieldConfig": {"defaults": {"noValue": no_value}}} if no_value else None,
    )


def table(
    title: str,
    description: str,
    tgts: list[Target],
    unit: str,
    steps: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
    links: Iterable[DataLink] = (),
    color_cells: bool = False,
) -> Table:
    return Table(
        **_common(title, description, tgts, links),
        unit=unit,
        thresholds=steps or [{"color": OK, "value": None}],
        transformations=transformations or [],
        displayMode="color-background" if color_cells else "auto",
    )


def bar_chart(
    title: str,
    description: str,
    tgts: list[Target],
    unit: str,
    steps: list[dict[str, Any]] | None = None,
    sort_by_name: bool = False,
    links: Iterable[DataLink] = (),
) -> BarChart:
    """Bars of instant values, one per series, in query order (or sorted by series name).

    A `reduce` transformation turns the instant series into rows (Field, Last) so that the bar
    chart has a string x axis; hour-of-day labels "00".."23" sort correctly as text.
    """
    transformations: list[dict[str, Any]] = [
        {"id": "reduce", "options": {"reducers": ["lastNotNull"], "mode": "seriesToRows"}}
    ]
    if sort_by_name:
        transformations.append({"id": "sortBy", "options": {"sort": [{"field": "Field"}]}})
    colour_mode = "thresholds" if steps else "palette-classic"
    return BarChart(
        **_common(title, description, tgts, links),
        transformations=transformations,
        thresholdSteps=steps or [{"color": OK, "value": None}],
        colorMode=colour_mode,
        showValue="auto",
        showLegend=False,
        extraJson={
            "fieldConfig": {"defaults": {"unit": unit}},
            "options": {"xField": "Field"},
        },
    )


def pie(title: str, description: str, tgts: list[Target], unit: str) -> PieChartv2:
    return PieChartv2(
        **_common(title, description, tgts, ()),
        unit=unit,
        legendDisplayMode="table",
        legendPlacement="right",
        legendValues=["value", "percent"],
    )


# --- layout -----------------------------------------------------------------------------------
class Layout:
    """Flows panels left to right in 24 columns, rows of RowPanels, explicit ids and gridPos."""

    def __init__(self) -> None:
        self.panels: list[Any] = []
        self._x = 0
        self._y = 0
        self._line_height = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            RowPanel(title=title, id=self._next_id(), gridPos=GridPos(h=1, w=24, x=0, y=self._y))
        )
        self._y += 1

    def add(self, panel: Any, w: int, h: int = 8) -> None:
        if self._x + w > 24:
            self._newline()
        pos = GridPos(h=h, w=w, x=self._x, y=self._y)
        self.panels.append(attr.evolve(panel, id=self._next_id(), gridPos=pos))
        self._x += w
        self._line_height = max(self._line_height, h)


# --- dashboard --------------------------------------------------------------------------------
def deploy_annotation(config: Mapping[str, Any]) -> dict[str, Any]:
    """A marker at each app version's first appearance in the audit log.

    useValueForTime places the event at the gauge's value (the first-seen time, in ms), so the
    marker is exact even when the exporter noticed the version later (e.g. after a restart).
    """
    sel = selector(config, "auditExporterSelector")
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "expr": f"max by (app_version) (deletion_app_version_first_seen_timestamp_seconds{sel})"
        " * 1000",
        "iconColor": "purple",
        "name": "Deploys",
        "step": "60s",
        "tagKeys": "app_version",
        "textFormat": "first deletion served by {{app_version}}",
        "titleFormat": "Deploy {{app_version}}",
        "useValueForTime": True,
    }


def datasource_variable() -> Template:
    return Template(
        name="datasource",
        label="Data source",
        query="prometheus",
        type="datasource",
        default="Prometheus",
        hide=0,
    )


def dashboard(
    config: Mapping[str, Any],
    key: str,
    description: str,
    layout: Layout,
    time_from: str,
    refresh: str = "1m",
    runbooks: Sequence[str] = (),
) -> Dashboard:
    uids = config["dashboardUids"]
    links = [
        DashboardLink(
            type="link",
            title=TITLES[other],
            uri=f"/d/{uids[other]}",
            icon="dashboard",
            keepTime=True,
            includeVars=True,
        )
        for other in TITLES
        if other != key
    ]
    links.append(
        DashboardLink(
            type="link",
            title="Runbooks",
            uri=config["runbookBaseUrl"],
            icon="doc",
            keepTime=False,
            targetBlank=True,
            tooltip="docs/runbooks: one page per alert",
        )
    )
    links.append(
        DashboardLink(
            type="link",
            title="Dashboard guide",
            uri=docs_url(config, "dashboards.md"),
            icon="info",
            keepTime=False,
            targetBlank=True,
            tooltip="docs/dashboards.md: what each panel answers and where its data comes from",
        )
    )
    for alert in runbooks:
        links.append(
            DashboardLink(
                type="link",
                title=f"Runbook: {alert}",
                uri=runbook_url(config, alert),
                icon="doc",
                keepTime=False,
                targetBlank=True,
            )
        )
    return Dashboard(
        title=TITLES[key],
        uid=uids[key],
        description=description,
        tags=[TAG],
        timezone="utc",
        refresh=refresh,
        time=Time(f"now-{time_from}", "now"),
        graphTooltip=GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        editable=False,
        templating=Templating(list=[datasource_variable()]),
        annotations=Annotations(list=[deploy_annotation(config)]),
        links=links,
        panels=layout.panels,
    )
