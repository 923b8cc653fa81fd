"""The executive dashboard and the monthly compliance report agree (issue 17, requirement 6).

The stat panels of dashboards/generated/deletion-executive.json are evaluated as Grafana would
(an instant query at the end of the range, `$__range` replaced by the range) against the same
real Prometheus the compliance report reads (the backfilled weeks of
tests/support/report_data.py), and every number the two share must be the same: deletions,
success rate, error budget left over the SLO period, alerts fired by severity, orphaned records
now, forbidden deletions. Counts must be equal exactly (both sides count without increase()'s
extrapolation), ratios to float precision.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.report_data import A_AT, B_AT, DAY, START, serve_backfill
from support.reports import parse

from deletion_monitor.common.config import load_config
from deletion_monitor.common.promapi import PrometheusClient
from deletion_monitor.reports import report

BOARD = Path(__file__).resolve().parents[2] / "dashboards" / "generated" / "deletion-executive.json"


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return load_config(env={})


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, cfg: dict[str, Any]) -> Iterator[str]:
    with serve_backfill(tmp_path_factory.mktemp("prom"), cfg) as url:
        yield url


def panels() -> dict[str, dict[str, Any]]:
    board = json.loads(BOARD.read_text())
    out = {}
    for panel in board["panels"]:
        for p in [panel, *(panel.get("panels") or [])]:
            out[p["title"]] = p
    return out


def grafana(prom: str, panel: dict[str, Any], window: str, at: float) -> dict[str, float]:
    """A stat panel's values as Grafana shows them: its instant queries at the range's end,
    `$__range` replaced by the range; {legend or "": value}."""
    out: dict[str, float] = {}
    client = PrometheusClient(prom)
    for target in panel["targets"]:
        assert target.get("instant"), panel["title"]  # a stat is one number: instant
        expr = target["expr"].replace("$__range", window)
        assert "$" not in expr, expr
        for sample in client.query(expr, at):
            legend = target.get("legendFormat") or ""
            for key, value in sample.labels.items():
                legend = legend.replace("{{" + key + "}}", value)
            out[legend] = sample.value
    return out


def compliance_json(prom: str, window: str, at: float) -> dict[str, Any]:
    out = io.StringIO()
    argv = ["compliance", "--prometheus", prom, "--range", window, "--at", str(at)]
    with contextlib.redirect_stdout(out):
        assert report.run(parse(report, argv)) == 0
    return json.loads(out.getvalue())


CASES = [
    ("the calm fortnight", "14d", B_AT),
    ("the troubled week", "7d", A_AT),
    ("the day the orphans were there", "1d", START + 2 * DAY + 12 * 3600),
]


@pytest.mark.parametrize(("case", "window", "at"), CASES, ids=[c[0] for c in CASES])
def test_dashboard_and_compliance_report_show_the_same_numbers(
    prom: str, cfg: dict[str, Any], case: str, window: str, at: float
) -> None:
    rep = compliance_json(prom, window, at)
    s = rep["summary"]
    board = panels()

    def one(title: str) -> float | None:
        values = grafana(prom, board[title], window, at)
        assert len(values) <= 1, (title, values)
        return next(iter(values.values()), None)

    assert s["deletions"] and one("Deletions (selected range)") == s["deletions"]
    assert one("Deletion success rate") == pytest.approx(s["slo"]["success_rate"], rel=1e-12)
    budget = one(f"Error budget remaining ({cfg['slo']['period']})")
    assert budget == pytest.approx(s["error_budget"]["remaining"], rel=1e-12)
    assert s["error_budget"]["period"] == cfg["slo"]["period"]
    assert one("Orphaned records") == s["orphaned_records_now"]
    assert s["orphaned_records_now"] == rep["orphaned_records"]["now"]
    forbidden = one("Forbidden deletions (selected range)")
    assert (forbidden or 0) == s["forbidden_successes"]
    assert s["forbidden_successes"] == sum(rep["forbidden_successes"].values())
    alerts = grafana(prom, board["Alerts fired by severity (selected range)"], window, at)
    assert alerts == s["incidents"]["by_severity"]
    # The cases are not all zeros: each side has something to disagree about.
    if case == "the troubled week":
        assert s["forbidden_successes"] == 1 and s["incidents"]["by_severity"] == {"warning": 1}
    if case == "the day the orphans were there":
        assert s["orphaned_records_now"] == 3
