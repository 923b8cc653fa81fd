"""Render a report dict (deletion_monitor.reports.report.build_report) as JSON, Markdown or HTML.

The HTML carries its charts as inline SVG drawn here (a line chart and a bar chart are all the
reports need), so a report is one self-contained file with no plotting dependency.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

from deletion_monitor.reports.figures import NO_DATA, quantile_text

TITLES = {
    "usage-patterns": "Deletion usage-pattern analysis",
    "health": "Deletion daily health report",
    "trends": "Deletion weekly trend report",
    "compliance": "Deletion monthly compliance report",
}


@dataclass
class Section:
    """A titled table: `headers` over `rows` (cells already formatted as text)."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f} %"


def secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}" if value != int(value) else f"{int(value)}"
    return str(value)


def change(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f} %"


def _measured(t: dict[str, Any]) -> str:
    if t["unit"] == "ratio":
        return pct(t["measured"])
    if t["unit"] == " s":
        return secs(t["measured"])
    return num(t["measured"])


def _totals(report: dict[str, Any]) -> Section:
    t = report["totals"]
    return Section(
        "Totals",
        ["figure", "value"],
        [
            ["deletions", num(t["requests"])],
            ["failed", num(t["failures"])],
            ["errors (the rates' basis; refusals excluded)", num(t["errors"])],
            ["succeeded", num(t["successes"])],
            ["success rate", pct(t["success_rate"])],
            ["error rate", pct(t["error_rate"])],
        ],
    )


def bucket_text(bucket: dict[str, Any] | None) -> str:
    """What the histogram knows about a percentile: the bucket it lies in."""
    if not bucket:
        return "n/a"
    lo, hi = bucket["lower"], bucket["upper"]
    where = f"above {lo:g} s (overflow bucket)" if math.isinf(hi) else f"{lo:g}–{hi:g} s"
    return f"within the {where} bucket ({bucket['in_bucket']} of {bucket['observations']})"


def latency_note(lat: dict[str, Any]) -> str:
    """Why a p95 can be above every measured duration, in the report's words."""
    note = (
        "The average is exact (sum / count of the histogram). Percentiles come from the "
        "histogram buckets: Prometheus interpolates linearly inside the bucket that holds the "
        "rank, so a percentile is only known to lie within its bucket's bounds."
    )
    b = lat.get("p95_bucket")
    if b and b["in_bucket"] == b["observations"] and not math.isinf(b["upper"]):
        avg = lat.get("average_seconds")
        note += (
            f" Here all {b['observations']} deletions lie in the {b['lower']:g}–{b['upper']:g} s "
            f"bucket: p95 {lat['p95_seconds']:.2f} s is 95 % of the way through that bucket, "
            "not a measured duration"
            + (f"; the exact average is {avg:.2f} s." if avg is not None else ".")
        )
    return note


def _latency(lat: dict[str, Any], title: str = "Latency (all deletions)") -> Section:
    return Section(
        title,
        ["statistic", "value", "what the histogram knows"],
        [
            ["average", secs(lat["average_seconds"]), "exact (sum / count)"],
            ["p50", secs(lat["p50_seconds"]), bucket_text(lat.get("p50_bucket"))],
            ["p95", secs(lat["p95_seconds"]), bucket_text(lat.get("p95_bucket"))],
            ["p99", secs(lat["p99_seconds"]), bucket_text(lat.get("p99_bucket"))],
        ],
        note=latency_note(lat),
    )


def _failures(report: dict[str, Any]) -> Section:
    rows = [
        [r["error_type"], num(r["failures"]), pct(r["share"], 1)] for r in report["failure_classes"]
    ]
    return Section(
        "Failure classes",
        ["class", "failures", "share of failures"],
        rows,
        note="" if rows else "no failures in range",
    )


def sections(report: dict[str, Any]) -> list[Section]:
    """The report's content as tables, shared by the Markdown and HTML renderers."""
    kind = report["report"]
    out: list[Section] = []
    if not report["data"]:
        if kind == "compliance":
            out.append(_retention(report["retention"]))
        return out
    if kind == "usage-patterns":
        p = report["per_period"]
        out.append(_totals(report))
        out.append(
            Section(
                "Volume",
                ["period", "deletions (average over the covered days)"],
                [
                    ["per day", num(p["per_day"])],
                    ["per week", num(p["per_week"])],
                    ["per month (30 d)", num(p["per_month"])],
                ],
                note=p["basis"],
            )
        )
        out.append(
            Section(
                "Daily deletions",
                ["24 h ending", "deletions", "hours with data"],
                [
                    [d["day_end"], num(d["requests"]), f"{d['covered_hours']:.1f}"]
                    for d in report["daily"]
                ],
                note="n/a: no data in that day (not 0 deletions).",
            )
        )
        peak = report["peak_hour"]
        out.append(
            Section(
                "Peak times",
                ["figure", "value"],
                [
                    ["peak hour (UTC)", f"{peak}:00" if peak else "n/a"],
                    ["deletions in the peak hour (all days)", num(report["peak_hour_requests"])],
                    ["deletions per hour at the peak hour", num(report["peak_hour_rate"])],
                    ["deletions per covered hour (mean)", num(report["mean_hourly_requests"])],
                    ["peak factor", num(report["peak_hour_factor"])],
                    [
                        "times each hour of day is covered (least)",
                        f"{report['hourly_pattern_days']:.1f}",
                    ],
                    ["peak weekday", report["peak_weekday"] or "n/a (needs a whole week)"],
                ]
                + [[f"{d}", num(v)] for d, v in report["by_weekday"].items()],
                note="Hours of day and weekdays without data are n/a (hours are left out of "
                "the mean), not counted as 0.",
            )
        )
        out.append(
            Section(
                "By user type",
                ["user type", "deletions", "failed", "error rate", "p95"],
                [
                    [
                        r["user_type"],
                        num(r["requests"]),
                        num(r["failures"]),
                        pct(r["error_rate"]),
                        secs(r["p95_seconds"]),
                    ]
                    for r in report["user_types"]
                ],
            )
        )
        out.append(_failures(report))
        out.append(_latency(report["latency"]))
        cd = report["complex_deletions"]
        out.append(
            Section(
                "Slowest categories",
                ["category", "p95"],
                [["complex deletions (large cascades)", secs(cd["p95_seconds"])]]
                + [[r["user_type"], secs(r["p95_seconds"])] for r in report["slowest_user_types"]],
                note=f"complex deletions in range: {num(cd['count'])}",
            )
        )
        cp = report["capacity_projection"]
        out.append(
            Section(
                "Capacity projection",
                ["figure", "value"],
                [
                    [k.replace("_", " "), num(v) if not isinstance(v, str) else v]
                    for k, v in cp.items()
                ],
            )
        )
        recs = report["optimization_recommendations"]
        rows = [[cat.replace("_", " "), text] for cat, texts in recs.items() for text in texts]
        withheld = report.get("recommendation_rules_withheld") or []
        out.append(
            Section(
                "Optimization recommendations",
                ["area", "recommendation (and the evidence behind it)"],
                rows,
                note="" if rows else "no rule's condition holds on this data with enough evidence",
            )
        )
        if withheld:
            out.append(
                Section(
                    "Recommendations withheld for lack of evidence",
                    ["rule", "evidence"],
                    [[w["rule"], w["evidence"]] for w in withheld],
                    note="Their condition holds, but on too little data to act on.",
                )
            )
    elif kind == "health":
        out.append(
            Section(
                "SLA targets",
                ["target", "measured", "goal", "status"],
                [
                    [
                        t["target"],
                        _measured(t),
                        t["goal"],
                        "n/a" if t["met"] is None else "met" if t["met"] else "MISSED",
                    ]
                    for t in report["targets"]
                ],
            )
        )
        out.append(_totals(report))
        out.append(_latency(report["latency"]))
        out.append(_failures(report))
        out.append(
            Section(
                "Alerts fired",
                ["alert", "severity"],
                [[a["alertname"], a["severity"]] for a in report["alerts_fired"]],
                note="" if report["alerts_fired"] else "no alert fired in range",
            )
        )
    elif kind == "trends":
        cur, prev, ch = report["current"], report["previous"], report["change"]
        prev = prev or {}
        rows = []
        for key, label, fmt in (
            ("requests", "deletions", num),
            ("error_rate", "error rate", pct),
            ("p95_seconds", "p95", secs),
            ("average_seconds", "average", secs),
        ):
            rows.append([label, fmt(cur.get(key)), fmt(prev.get(key)), change(ch.get(key))])
        out.append(
            Section(
                "This range against the previous one",
                ["figure", "this range", "previous range", "change"],
                rows,
                note=ch.get("basis", ""),
            )
        )
        out.append(
            Section(
                "Per day",
                [
                    "24 h ending",
                    "hours with data",
                    "deletions",
                    "failed",
                    "error rate",
                    "p95",
                    "average",
                ],
                [
                    [
                        d["day_end"],
                        f"{d['covered_hours']:.1f}",
                        num(d["requests"]),
                        num(d["failures"]),
                        pct(d["error_rate"]),
                        secs(d["p95_seconds"]),
                        secs(d["average_seconds"]),
                    ]
                    for d in report["daily"]
                ],
            )
        )
    elif kind == "compliance":
        ca = report["completeness_audit"]
        out.append(
            Section(
                "Completeness audits",
                ["figure", "value"],
                [
                    ["deletions audited", num(ca["audited"])],
                    ["audit failures", num(ca["failures"])],
                    ["pass rate", pct(ca["pass_rate"])],
                ],
            )
        )
        orp, gaps = report["orphaned_records"], report["audit_trail_gaps"]
        out.append(
            Section(
                "Orphaned records and audit trail",
                ["figure", "value"],
                [
                    ["orphaned records now", num(orp["now"])],
                    ["orphaned records peak in range", num(orp["peak"])],
                    ["tolerance", num(orp["tolerance"])],
                    ["audit-trail gaps now", num(gaps["now"])],
                    ["audit-trail gaps peak in range", num(gaps["peak"])],
                    ["invalid audit rows ingested", num(gaps["invalid_audit_rows"])],
                ],
            )
        )
        out.append(
            Section(
                "Violations by category",
                ["category", "now", "peak in range"],
                [
                    [
                        c,
                        num(report["violations_by_category_now"].get(c)),
                        num(report["violations_by_category_peak"].get(c)),
                    ]
                    for c in sorted(
                        set(report["violations_by_category_now"])
                        | set(report["violations_by_category_peak"])
                    )
                ],
            )
        )
        out.append(
            Section(
                "Forbidden deletions that succeeded",
                ["kind", "count"],
                [[k, num(v)] for k, v in report["forbidden_successes"].items()],
                note="" if report["forbidden_successes"] else "none recorded",
            )
        )
        failing = report["integrity_checks_failing_now"]
        out.append(
            Section(
                "Integrity checks failing now",
                ["check"],
                [[c] for c in failing],
                note="" if failing else "none",
            )
        )
        out.append(_retention(report["retention"]))
    return out


def _retention(ret: dict[str, Any]) -> Section:
    rows = [[k, str(v)] for k, v in ret["configured"].items()]
    source = ret.get("running_retention_source")
    running = ret["prometheus_running_retention"]
    rows.append(
        [
            "queried store running with",
            f"{running} ({source})" if running else "unknown (the store does not publish it)",
        ]
    )
    return Section("Retention settings", ["data", "retention"], rows, note=ret["audit_log_note"])


def _header(report: dict[str, Any]) -> tuple[str, str]:
    title = TITLES[report["report"]]
    sub = f"{report['start']} to {report['end']} ({report['range']}), from {report['prometheus']}"
    return title, sub


def coverage_line(report: dict[str, Any]) -> str:
    """The report's first sentence: the range it covers and how complete the data is."""
    cov = report.get("data_coverage")
    if cov:
        return cov["text"][:1].upper() + cov["text"][1:]
    return f"Covers {report['start']} – {report['end']}; no data in this range"


def summary_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) lines of the summary every format opens with."""
    s = report.get("summary") or {}
    lines = [("Status", s.get("status", "no data").upper())]
    for reason in s.get("reasons", []):
        lines.append(("", reason))
    if not report.get("data"):
        lines.append(("Data", coverage_line(report)))
        return lines
    slo = s["slo"]
    if slo["success_rate"] is None:
        lines.append(("SLO", f"n/a (target {slo['target'] * 100:g} %; no deletions measured)"))
    else:
        verdict = "met" if slo["met"] else "MISSED"
        lines.append(
            (
                "SLO",
                f"success rate {pct(slo['success_rate'], 3)} against a target of "
                f"{slo['target'] * 100:g} %: {verdict} ({slo['errors']} errors in "
                f"{slo['requests']} deletions)",
            )
        )
    eb = s["error_budget"]
    lines.append(
        (
            "Error budget left",
            "n/a (no deletions in the SLO period)"
            if eb["remaining"] is None
            else f"{eb['remaining'] * 100:.1f} % of the {eb['period']} budget "
            f"({eb['errors']} errors in {eb['requests']} deletions over the SLO period ending "
            f"{report['end']})",
        )
    )
    inc = s["incidents"]
    if inc["alerts_fired"]:
        by = ", ".join(f"{n} {sev}" for sev, n in inc["by_severity"].items())
        names = ", ".join(f"{a['alertname']} ({a['severity']})" for a in inc["alerts"])
        fired = inc["alerts_fired"]
        alerts = "alert" if fired == 1 else "alerts"
        lines.append(("Incidents", f"{fired} {alerts} fired ({by}): {names}"))
    else:
        lines.append(("Incidents", "no alert fired in the range"))
    if "orphaned_records_now" in s:
        lines.append(("Orphaned records now", num(s["orphaned_records_now"])))
        lines.append(("Forbidden deletions", num(s["forbidden_successes"])))
    for i, rec in enumerate(s.get("top_recommendations", []), 1):
        lines.append((f"Recommendation {i}", f"{rec['text']} — evidence: {rec['evidence']}"))
    if report["report"] == "usage-patterns" and not s.get("top_recommendations"):
        lines.append(("Recommendations", "none: no rule holds with enough evidence"))
    lat = report.get("latency") or report.get("current")
    if lat and lat.get("p95_bucket"):
        lines.append(
            (
                "Latency",
                f"{quantile_text(lat['p95_seconds'], lat['p95_bucket'], 'p95')}; average "
                f"{secs(lat['average_seconds'])} (exact)",
            )
        )
    return lines


def _notes(report: dict[str, Any]) -> list[str]:
    """Caveats on the figures: a counter reset, a range that starts before the data."""
    notes = []
    if report.get("counter_resets"):
        names = ", ".join(report["counter_resets"])
        notes.append(
            f"A counter reset (exporter restart) happened in this range for {names}: those "
            "figures come from increase() and are approximate, not exact counts."
        )
    if report.get("coverage") == "partial" and report.get("data"):
        notes.append(
            "Partial coverage: monitoring data begins inside this range, so counts cover only "
            "the time since the first sample (history before it is not counted)."
        )
    return notes


def markdown(report: dict[str, Any]) -> str:
    """GitHub-flavoured Markdown: the summary first, the details after."""
    title, sub = _header(report)
    lines = [f"# {title}", "", sub, "", f"**{coverage_line(report)}.**", "", "## Summary", ""]
    for label, text in summary_lines(report):
        lines.append(f"- **{label}:** {text}" if label else f"  - {text}")
    lines.append("")
    for note in _notes(report):
        lines += [f"_{note}_", ""]
    if not report["data"]:
        lines += [
            f"**{NO_DATA.capitalize()}**: no deletion data between {report['start']} "
            f"and {report['end']}.",
            "",
        ]
    elif sections(report):
        lines += ["## Details", ""]
    for s in sections(report):
        lines += [f"### {s.title}", ""]
        if s.rows:
            lines.append("| " + " | ".join(s.headers) + " |")
            lines.append("|" + "---|" * len(s.headers))
            for row in s.rows:
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
            lines.append("")
        if s.note:
            lines += [f"_{s.note}_", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# SVG charts

_W, _H = 720, 300
# Frame margins (axis labels and ticks live there) and the inset of the data area inside the
# frame, so a series at 0 or at the top never sits on the frame.
_PAD_L, _PAD_R, _PAD_T, _PAD_B, _INSET = 70, 24, 40, 58, 10
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_THRESHOLD_COLOUR = "#d62728"
# Time tick steps, seconds: round minutes, hours and days (UTC).
_TIME_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def nice_step(span: float, max_ticks: int = 6) -> float:
    """The 1-2-5 x 10^n step that puts at most `max_ticks` intervals on `span`."""
    if span <= 0:
        return 1.0
    raw = span / max_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw * (1 - 1e-9):
            return m * magnitude
    return 10 * magnitude


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Ticks at multiples of a 1-2-5 step covering [lo, hi], first <= lo and last >= hi."""
    if hi <= lo:
        hi = lo + 1
    step = nice_step(hi - lo, max_ticks)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    k = 0
    while True:
        v = first + k * step
        ticks.append(round(v, 12))
        if v >= hi - 1e-9 * step:
            break
        k += 1
    return ticks


def _nice_max(value: float) -> float:
    """The top of a y axis that starts at 0 and holds `value` (the last nice tick)."""
    return nice_ticks(0.0, value if value > 0 else 1.0)[-1]


def time_ticks(t0: float, t1: float, max_ticks: int = 7) -> tuple[list[float], str]:
    """Ticks at round UTC minutes, hours or days inside [t0, t1], and their strftime format."""
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    ticks = []
    t = first
    while t <= t1 + 1e-6:
        ticks.append(float(t))
        t += step
    if step >= 86400:
        fmt = "%m-%d"
    elif (
        dt.datetime.fromtimestamp(t0, dt.UTC).date() != dt.datetime.fromtimestamp(t1, dt.UTC).date()
    ):
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%H:%M"
    return ticks, fmt


def _tick(v: float) -> str:
    return f"{v:.6g}"


def _axis_label(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit else text


class _Frame:
    """The plot area: value and time scales, gridlines, ticks, axis labels, thresholds."""

    def __init__(self, title: str, y_hi: float, x_lo: float, x_hi: float) -> None:
        self.ticks = nice_ticks(0.0, y_hi if y_hi > 0 else 1.0)
        self.y_top = self.ticks[-1]
        self.x_lo, self.x_hi = x_lo, x_hi
        self.left, self.right = _PAD_L, _W - _PAD_R
        self.top, self.bottom = _PAD_T, _H - _PAD_B
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
            f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(title)}">',
            f'<rect class="frame" x="{self.left}" y="{self.top}" width="{self.right - self.left}"'
            f' height="{self.bottom - self.top}" fill="#fff" stroke="#999"/>',
        ]

    def x(self, t: float) -> float:
        lo, hi = self.left + _INSET, self.right - _INSET
        if self.x_hi <= self.x_lo:
            return (lo + hi) / 2
        return lo + (hi - lo) * (t - self.x_lo) / (self.x_hi - self.x_lo)

    def y(self, v: float) -> float:
        lo, hi = self.bottom - _INSET, self.top + _INSET
        return lo + (hi - lo) * v / self.y_top

    def y_axis(self, label: str, unit: str) -> None:
        for v in self.ticks:
            yy = self.y(v)
            self.parts.append(
                f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{yy:.1f}" '
                f'y2="{yy:.1f}" stroke="#e5e5e5"/>'
                f'<text class="tick y" x="{self.left - 6}" y="{yy + 4:.1f}" font-size="11" '
                f'text-anchor="end">{_tick(v)}</text>'
            )
        cy = (self.top + self.bottom) / 2
        self.parts.append(
            f'<text class="axis-label y" x="16" y="{cy:.1f}" font-size="12" '
            f'text-anchor="middle" transform="rotate(-90 16 {cy:.1f})">'
            f"{html.escape(_axis_label(label, unit))}</text>"
        )

    def time_axis(self, label: str) -> None:
        ticks, fmt = time_ticks(self.x_lo, self.x_hi)
        for t in ticks:
            xx = self.x(t)
            text = dt.datetime.fromtimestamp(t, dt.UTC).strftime(fmt)
            self.parts.append(
                f'<line class="tick x" x1="{xx:.1f}" x2="{xx:.1f}" y1="{self.bottom}" '
                f'y2="{self.bottom + 4}" stroke="#999"/>'
                f'<text class="tick x" x="{xx:.1f}" y="{self.bottom + 17}" font-size="11" '
                f'text-anchor="middle">{text}</text>'
            )
        self.x_axis_label(label)

    def x_axis_label(self, label: str) -> None:
        self.parts.append(
            f'<text class="axis-label x" x="{(self.left + self.right) / 2:.1f}" y="{_H - 10}" '
            f'font-size="12" text-anchor="middle">{html.escape(label)}</text>'
        )

    def thresholds(self, thresholds: list[dict[str, Any]], unit: str) -> None:
        for th in thresholds:
            yy = self.y(th["value"])
            text = f"{th['label']}: {_tick(th['value'])}{' ' + unit if unit else ''}"
            self.parts.append(
                f'<line class="threshold" data-value="{_tick(th["value"])}" x1="{self.left}" '
                f'x2="{self.right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{_THRESHOLD_COLOUR}" '
                'stroke-width="1.5" stroke-dasharray="6 4"/>'
                f'<text class="threshold-label" x="{self.right - 4}" y="{yy - 4:.1f}" '
                f'font-size="11" text-anchor="end" fill="{_THRESHOLD_COLOUR}">'
                f"{html.escape(text)}</text>"
            )

    def svg(self) -> str:
        return "".join(self.parts) + "</svg>"


def _note(text: str) -> str:
    return f'<p class="chart-note">{html.escape(text)}</p>'


def svg_line_chart(
    title: str,
    series: list[dict[str, Any]],
    thresholds: list[dict[str, Any]] | None = None,
    y_label: str = "value",
    y_unit: str = "",
    x_label: str = "time (UTC)",
    note: str = "",
) -> str:
    """A line chart of [{"name", "points": [(unix time, value)], "dashed"?}], time on the x
    axis, config thresholds as labelled dashed lines. A series of one point is a visible
    marker with a note saying so, not a line."""
    thresholds = thresholds or []
    pts = [p for s in series for p in s["points"]]
    head = f"<figure><figcaption>{html.escape(title)}</figcaption>"
    if not pts:
        return head + "<p>no data in range</p></figure>"
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    if t1 - t0 < 60:  # one moment: a window around it so the time axis has ticks
        t0, t1 = t0 - 1800, t1 + 1800
    y_hi = max([p[1] for p in pts] + [th["value"] for th in thresholds])
    # Headroom above the highest value or threshold, so neither touches the top of the frame.
    frame = _Frame(title, y_hi * 1.08 if y_hi > 0 else 1.0, t0, t1)
    frame.y_axis(y_label, y_unit)
    frame.time_axis(x_label)
    frame.thresholds(thresholds, y_unit)
    notes = []
    legend_x = _PAD_L
    for i, s in enumerate(series):
        colour = "#7f7f7f" if s.get("dashed") else _COLOURS[i % len(_COLOURS)]
        dash = ' stroke-dasharray="5 3"' if s.get("dashed") else ""
        points = s["points"]
        if len(points) >= 2:
            path = " ".join(f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in points)
            frame.parts.append(
                f'<polyline class="series" data-name="{html.escape(s["name"])}" fill="none" '
                f'stroke="{colour}" stroke-width="2"{dash} points="{path}"/>'
            )
        if 0 < len(points) < 4:  # too few points for a line to show them: mark each one
            frame.parts.extend(
                f'<circle class="point" cx="{frame.x(t):.1f}" cy="{frame.y(v):.1f}" r="5" '
                f'fill="{colour}" stroke="#fff" stroke-width="1.5"/>'
                for t, v in points
            )
        if len(points) == 1:
            t, v = points[0]
            when = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%m-%d %H:%M")
            notes.append(f"{s['name']}: one measurement ({_tick(round(v, 4))} at {when} UTC)")
        label = s["name"] + ("" if points else " (no data)")
        frame.parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{_PAD_T - 14}" y2="{_PAD_T - 14}" '
            f'stroke="{colour}" stroke-width="3"{dash}/>'
            f'<text class="legend" x="{legend_x + 22}" y="{_PAD_T - 10}" font-size="12">'
            f"{html.escape(label)}</text>"
        )
        legend_x += 7 * len(label) + 40  # ~7 px per character at font-size 12
    out = head + frame.svg()
    if notes:
        out += _note(
            "Too little data for a line: " + "; ".join(notes) + ". Each dot is one measurement."
        )
    if note:
        out += _note(note)
    return out + "</figure>"


def svg_bar_chart(
    title: str,
    bars: list[tuple[str, float | None]],
    empty: str = "no data",
    thresholds: list[dict[str, Any]] | None = None,
    y_label: str = "value",
    y_unit: str = "",
    x_label: str = "",
) -> str:
    """A vertical bar chart of (label, value); a value of None is shown as n/a, not as 0."""
    thresholds = thresholds or []
    head = f"<figure><figcaption>{html.escape(title)}</figcaption>"
    values = [v for _, v in bars if v is not None]
    if not bars or not any(values):
        return head + f"<p>{html.escape(empty)}</p></figure>"
    y_hi = max(values + [th["value"] for th in thresholds])
    frame = _Frame(title, y_hi * 1.08, 0, 1)
    frame.y_axis(y_label, y_unit)
    frame.x_axis_label(x_label)
    iw = frame.right - frame.left - 2 * _INSET
    slot = iw / len(bars)
    base = frame.y(0)
    for i, (label, v) in enumerate(bars):
        bx = frame.left + _INSET + i * slot + slot * 0.1
        cx = bx + slot * 0.4
        if v is None:
            frame.parts.append(
                f'<text class="na" x="{cx:.1f}" y="{base - 4:.1f}" font-size="9" fill="#999" '
                f'text-anchor="middle">n/a</text>'
            )
        else:
            top = frame.y(v)
            frame.parts.append(
                f'<rect class="bar" x="{bx:.1f}" y="{top:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{base - top:.1f}" fill="{_COLOURS[0]}"><title>'
                f"{html.escape(str(label))}: {_tick(v)}</title></rect>"
            )
        frame.parts.append(
            f'<text class="tick x" x="{cx:.1f}" y="{frame.bottom + 17}" font-size="10" '
            f'text-anchor="middle">{html.escape(str(label))}</text>'
        )
    frame.thresholds(thresholds, y_unit)
    return head + frame.svg() + "</figure>"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#f3f3f3}.nodata{color:#a00;font-weight:bold}"
    "figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}"
    ".summary table{min-width:70%}.summary th{width:12em}.status{font-weight:bold}"
    ".status.attention{background:#fdd;color:#900}.status.ok{background:#dfd;color:#060}"
    ".status.insufficient-data,.status.no-data{background:#ffd;color:#750}"
    ".chart-note,.coverage{color:#444}"
)


def html_report(report: dict[str, Any]) -> str:
    """A self-contained HTML page: the summary first, then the charts (inline SVG) and the
    detail tables."""
    title, sub = _header(report)
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", f"<p>{e(sub)}</p>"]
    body.append(f'<p class="coverage"><strong>{e(coverage_line(report))}.</strong></p>')
    status = (report.get("summary") or {}).get("status", "no data")
    body.append('<section class="summary"><h2>Summary</h2><table>')
    for label, text in summary_lines(report):
        cls = f' class="status {e(status.replace(" ", "-"))}"' if label == "Status" else ""
        body.append(f"<tr><th>{e(label)}</th><td{cls}>{e(text)}</td></tr>")
    body.append("</table></section>")
    for note in _notes(report):
        body.append(f"<p><em>{e(note)}</em></p>")
    if not report["data"]:
        body.append(
            f'<p class="nodata">{e(NO_DATA.capitalize())}: no deletion data between '
            f"{e(report['start'])} and {e(report['end'])}.</p>"
        )
    if report.get("_plots"):
        body.append("<h2>Charts</h2>")
    for plot in report.get("_plots", []):
        if plot["type"] == "line":
            body.append(
                svg_line_chart(
                    plot["title"],
                    plot["series"],
                    plot.get("thresholds"),
                    plot.get("y_label", "value"),
                    plot.get("y_unit", ""),
                    plot.get("x_label", "time (UTC)"),
                    plot.get("note", ""),
                )
            )
        else:
            body.append(
                svg_bar_chart(
                    plot["title"],
                    plot["bars"],
                    plot.get("empty", "no data"),
                    plot.get("thresholds"),
                    plot.get("y_label", "value"),
                    plot.get("y_unit", ""),
                    plot.get("x_label", ""),
                )
            )
    if report["data"] and sections(report):
        body.append("<h2>Details</h2>")
    for s in sections(report):
        body.append(f"<h3>{e(s.title)}</h3>")
        if s.rows:
            body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in s.headers) + "</tr>")
            for row in s.rows:
                body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
            body.append("</table>")
        if s.note:
            body.append(f"<p><em>{e(s.note)}</em></p>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def to_json(report: dict[str, Any]) -> str:
    """Stable JSON of a report without the plot data."""
    clean = {k: v for k, v in report.items() if not k.startswith("_")}
    return json.dumps(clean, indent=2, sort_keys=False) + "\n"


def render(report: dict[str, Any], fmt: str) -> str:
    """Text of the report in `fmt` (json, markdown or html)."""
    if fmt == "json":
        return to_json(report)
    if fmt == "markdown":
        return markdown(report)
    if fmt == "html":
        return html_report(report)
    raise ValueError(f"unknown format {fmt!r}")
