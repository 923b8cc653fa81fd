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

from deletion_monitor.reports.figures import NO_DATA

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


def _latency(lat: dict[str, Any], title: str = "Latency (all deletions)") -> Section:
    return Section(
        title,
        ["statistic", "value"],
        [
            ["average", secs(lat["average_seconds"])],
            ["p50", secs(lat["p50_seconds"])],
            ["p95", secs(lat["p95_seconds"])],
            ["p99", secs(lat["p99_seconds"])],
        ],
        note="Percentiles are exact to the histogram bucket boundaries.",
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
                ["period", "deletions (average)"],
                [
                    ["per day", num(p["per_day"])],
                    ["per week", num(p["per_week"])],
                    ["per month (30 d)", num(p["per_month"])],
                ],
            )
        )
        out.append(
            Section(
                "Daily deletions",
                ["24 h ending", "deletions"],
                [[d["day_end"], num(d["requests"])] for d in report["daily"]],
            )
        )
        out.append(
            Section(
                "Peak times",
                ["figure", "value"],
                [
                    [
                        "peak hour (UTC)",
                        f"{report['peak_hour']}:00" if report["peak_hour"] else "n/a",
                    ],
                    ["deletions in peak hour", num(report["peak_hour_requests"])],
                    ["mean per hour of day", num(report["mean_hourly_requests"])],
                    ["peak weekday", report["peak_weekday"] or "n/a"],
                ]
                + [[f"{d}", num(v)] for d, v in report["by_weekday"].items()],
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
        out.append(
            Section(
                "Optimization recommendations",
                ["area", "recommendation"],
                rows,
                note="" if rows else "no rule's condition holds on this data",
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
                note="" if report["previous"] else "no data in the previous range",
            )
        )
        out.append(
            Section(
                "Per day",
                ["24 h ending", "deletions", "failed", "error rate", "p95", "average"],
                [
                    [
                        d["day_end"],
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
    rows.append(["Prometheus running with", ret["prometheus_running_retention"] or "unknown"])
    return Section("Retention settings", ["data", "retention"], rows, note=ret["audit_log_note"])


def _header(report: dict[str, Any]) -> tuple[str, str]:
    title = TITLES[report["report"]]
    sub = f"{report['start']} to {report['end']} ({report['range']}), from {report['prometheus']}"
    return title, sub


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
    """GitHub-flavoured Markdown."""
    title, sub = _header(report)
    lines = [f"# {title}", "", sub, ""]
    for note in _notes(report):
        lines += [f"_{note}_", ""]
    if not report["data"]:
        lines += [
            f"**{NO_DATA.capitalize()}**: no deletion data between {report['start']} "
            f"and {report['end']}.",
            "",
        ]
    for s in sections(report):
        lines += [f"## {s.title}", ""]
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

_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 640, 240, 56, 36, 24, 16
_COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def _nice_max(value: float) -> float:
    """The smallest 1/1.5/2/2.5/3/4/5/6/8 x 10^n at or above value (the y-axis top)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude * (1 + 1e-12):
            return step * magnitude
    return 10 * magnitude


def svg_line_chart(title: str, series: list[dict[str, Any]]) -> str:
    """A line chart of [{"name", "points": [(unix time, value)]}] with time on the x axis."""
    pts = [p for s in series for p in s["points"]]
    head = f"<figure><figcaption>{html.escape(title)}</figcaption>"
    if not pts:
        return head + "<p>no data in range</p></figure>"
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    ymax = _nice_max(max(p[1] for p in pts))
    iw, ih = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def x(t: float) -> float:
        return _PAD_L + (iw * (t - t0) / (t1 - t0) if t1 > t0 else iw / 2)

    def y(v: float) -> float:
        return _PAD_T + ih - ih * v / ymax

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{html.escape(title)}">'
    ]
    for i in range(5):
        v = ymax * i / 4
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{_PAD_L - 4}" y="{y(v) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{v:g}</text>'
        )
    ticks = [(t0, "start"), ((t0 + t1) / 2, "middle"), (t1, "end")] if t1 > t0 else [(t0, "middle")]
    for t, anchor in ticks:
        label = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%m-%d %H:%M")
        parts.append(
            f'<text x="{x(t):.1f}" y="{_H - 12}" font-size="11" '
            f'text-anchor="{anchor}">{label}</text>'
        )
    legend_x = _PAD_L + 8
    for i, s in enumerate(series):
        if not s["points"]:
            continue
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s["points"])
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>'
        )
        if len(s["points"]) < 3:  # too few points for a visible line: mark them
            parts.extend(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
                for t, v in s["points"]
            )
        parts.append(
            f'<text x="{legend_x}" y="{_PAD_T - 8}" font-size="12" '
            f'fill="{colour}">{html.escape(s["name"])}</text>'
        )
        legend_x += 7 * len(s["name"]) + 16  # ~7 px per character at font-size 12
    parts.append("</svg>")
    return head + "".join(parts) + "</figure>"


def svg_bar_chart(title: str, bars: list[tuple[str, float]], empty: str = "no data") -> str:
    """A vertical bar chart of (label, value)."""
    head = f"<figure><figcaption>{html.escape(title)}</figcaption>"
    if not bars or not any(v for _, v in bars):
        return head + f"<p>{html.escape(empty)}</p></figure>"
    ymax = _nice_max(max(v for _, v in bars))
    iw, ih = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    slot = iw / len(bars)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{html.escape(title)}">'
    ]
    for i in range(5):
        v = ymax * i / 4
        yy = _PAD_T + ih - ih * v / ymax
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{_PAD_L - 4}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>'
        )
    for i, (label, v) in enumerate(bars):
        h = ih * v / ymax
        bx = _PAD_L + i * slot + slot * 0.1
        parts.append(
            f'<rect x="{bx:.1f}" y="{_PAD_T + ih - h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{h:.1f}" fill="{_COLOURS[0]}"><title>{html.escape(str(label))}: '
            f"{v:g}</title></rect>"
        )
        parts.append(
            f'<text x="{bx + slot * 0.4:.1f}" y="{_H - 12}" font-size="10" '
            f'text-anchor="middle">{html.escape(str(label))}</text>'
        )
    parts.append("</svg>")
    return head + "".join(parts) + "</figure>"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#f3f3f3}.nodata{color:#a00;font-weight:bold}"
    "figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}"
)


def html_report(report: dict[str, Any]) -> str:
    """A self-contained HTML page with the tables and inline SVG charts."""
    title, sub = _header(report)
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", f"<p>{e(sub)}</p>"]
    for note in _notes(report):
        body.append(f"<p><em>{e(note)}</em></p>")
    if not report["data"]:
        body.append(
            f'<p class="nodata">{e(NO_DATA.capitalize())}: no deletion data between '
            f"{e(report['start'])} and {e(report['end'])}.</p>"
        )
    for plot in report.get("_plots", []):
        if plot["type"] == "line":
            body.append(svg_line_chart(plot["title"], plot["series"]))
        else:
            body.append(svg_bar_chart(plot["title"], plot["bars"], plot.get("empty", "no data")))
    for s in sections(report):
        body.append(f"<h2>{e(s.title)}</h2>")
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
