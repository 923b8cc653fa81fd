"""Grafana dashboards: structure, no dead panels, thresholds from the config (no binary).

The committed JSON's drift from its source is `python -m deletion_monitor_tools.generate
--check`'s job; that every query parses is promtool's (tests/integration/test_dashboards.py);
running each query against a live Prometheus is the end-to-end suite's (all_panel_queries()).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import yaml

from deletion_monitor.common.config import CONFIG_PATH, load_config
from deletion_monitor_tools import dashboards_lib as lib
from deletion_monitor_tools import lint_dashboards, metric_catalog
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_dashboards import (
    all_panel_queries,
    build_all,
    iter_panels,
    raw_queries,
    render,
    replace_macros,
)

RULE_FILES = sorted((REPO_ROOT / "alert_rules").glob("*.yml"))
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_config(env={})


@pytest.fixture(scope="module")
def boards(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["uid"]: b for b in build_all(config)}


def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    matches = [p for p in iter_panels(board) if p.get("title") == title]
    assert len(matches) == 1, f"{board['uid']}: {len(matches)} panels titled {title!r}"
    return matches[0]


def steps(p: dict[str, Any]) -> list[Any]:
    return [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def colours(p: dict[str, Any]) -> list[str]:
    return [s["color"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]


# --- structure and dead panels -------------------------------------------------------------------
def test_four_dashboards_with_the_config_uids(config, boards):
    assert set(boards) == set(config["dashboardUids"].values())
    for board in boards.values():
        assert board["title"] and board["uid"]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        linked = {link["url"] for link in board["links"]}
        others = set(config["dashboardUids"].values()) - {board["uid"]}
        assert {f"/d/{uid}" for uid in others} <= linked, "links to the other dashboards"
        assert config["runbookBaseUrl"] in linked
        (deploys,) = [a for a in board["annotations"]["list"] if a["name"] == "Deploys"]
        assert "deletion_app_version_first_seen_timestamp_seconds" in deploys["expr"]
        assert deploys["useValueForTime"] is True
        rows = [p for p in board["panels"] if p["type"] == "row"]
        assert rows and all(p["gridPos"]["w"] == 24 for p in rows)


def test_rendered_dashboards_pass_every_structure_and_dead_panel_check(config, boards):
    resolve = lint_dashboards.metric_resolver(config, RULE_FILES)
    problems = [
        p
        for board in boards.values()
        for p in lint_dashboards.check_dashboard(board, resolve, config, RUNBOOKS)
    ]
    assert problems == []


def test_committed_dashboards_pass_the_project_lint():
    assert lint_dashboards.lint() == []


def _break(board: dict[str, Any], how: str) -> dict[str, Any]:
    board = copy.deepcopy(board)
    panels = [p for p in board["panels"] if p["type"] != "row"]
    first, second = panels[0], panels[1]
    if how == "duplicate id":
        second["id"] = first["id"]
    elif how == "overlap":
        second["gridPos"] = dict(first["gridPos"], x=first["gridPos"]["x"] + 1)
    elif how == "wider than 24":
        first["gridPos"] = dict(first["gridPos"], x=20, w=8)
    elif how == "no target":
        first["targets"] = []
    elif how == "empty expr":
        first["targets"] = [dict(first["targets"][0], expr="")]
    elif how == "no unit":
        first["fieldConfig"]["defaults"]["unit"] = ""
    elif how == "no description":
        first["description"] = None
    elif how == "no title":
        first["title"] = ""
    elif how == "no uid":
        board["uid"] = None
    elif how == "no dashboard title":
        board["title"] = ""
    elif how == "unknown metric":
        first["targets"][0]["expr"] = "sum(rate(deletion_made_up_total[$__rate_interval]))"
    elif how == "unknown recording rule":
        first["targets"][0]["expr"] = "deletion:deletion_requests:rate7m"
    elif how == "hard-coded datasource":
        first["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prod"}
    elif how == "no datasource variable":
        board["templating"]["list"] = []
    elif how == "falling thresholds":
        first["fieldConfig"]["defaults"]["thresholds"]["steps"] = [
            {"color": "green", "value": None},
            {"color": "red", "value": 2},
            {"color": "orange", "value": 1},
        ]
    elif how == "missing runbook":
        first["links"] = [
            {
                "url": "https://github.com/deletion-monitoring/deletion-monitoring/"
                "blob/main/docs/runbooks/NoSuchAlert.md"
            }
        ]
    elif how == "unknown dashboard link":
        board["links"].append({"url": "/d/no-such-dashboard"})
    else:
        raise AssertionError(how)
    return board


BREAKAGES = {
    "duplicate id": "already used by panel",
    "overlap": "overlaps panel",
    "wider than 24": "wider than 24 columns",
    "no target": "no query",
    "empty expr": "no query",
    "no unit": "no unit",
    "no description": "no description",
    "no title": "no title",
    "no uid": "no uid",
    "no dashboard title": "no title",
    "unknown metric": "reads deletion_made_up_total",
    "unknown recording rule": "reads deletion:deletion_requests:rate7m",
    "hard-coded datasource": "datasource is not ${datasource}",
    "no datasource variable": "no `datasource` template variable",
    "falling thresholds": "threshold steps must rise",
    "missing runbook": "missing docs/runbooks/NoSuchAlert.md",
    "unknown dashboard link": "unknown dashboard uid 'no-such-dashboard'",
}


@pytest.mark.parametrize("how", sorted(BREAKAGES))
def test_lint_catches_a_broken_dashboard(config, boards, how):
    resolve = lint_dashboards.metric_resolver(config, RULE_FILES)
    board = boards[config["dashboardUids"]["postDeploy"]]
    assert lint_dashboards.check_dashboard(board, resolve, config, RUNBOOKS) == []
    problems = lint_dashboards.check_dashboard(_break(board, how), resolve, config, RUNBOOKS)
    assert any(BREAKAGES[how] in p for p in problems), problems


def test_recording_rule_names_are_known_only_through_the_rendered_rules(config, boards):
    # Without alert_rules/*.yml the recording-rule names the dashboards read are dead: the lint
    # really consults the rule files rather than trusting the names.
    assert RULE_FILES, "alert_rules/*.yml not rendered"
    resolve = lint_dashboards.metric_resolver(config, [])
    problems = [
        p for b in boards.values() for p in lint_dashboards.check_dashboard(b, resolve, config)
    ]
    assert any("reads deletion:deletion_error_ratio:rate5m" in p for p in problems)


def test_external_names_need_their_exporter_in_the_config(config):
    assert metric_catalog.external_source("pg_up", config)
    assert metric_catalog.external_source("process_resident_memory_bytes", config)
    assert metric_catalog.external_source(config["appPoolInUseMetric"], config)
    assert metric_catalog.external_source("node_load1", config) is None
    without_pg = {k: v for k, v in config.items() if k != "postgresExporterSelector"}
    assert metric_catalog.external_source("pg_up", without_pg) is None


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (le) (rate(deletion_duration_seconds_bucket{job="a", le=~"1|2"}[5m]))',
            {"deletion_duration_seconds_bucket"},
        ),
        (
            "x:y:rate5m and on () deletion:post_deploy:active",
            {"x:y:rate5m", "deletion:post_deploy:active"},
        ),
        ('count(ALERTS{alertstate="firing"}) or vector(0)', {"ALERTS"}),
        ('label_replace(up, "a", "$1", "b", "(.*)") * 5e-3 offset 1h', {"up"}),
        ("histogram_quantile(0.9, sum(rate(h_bucket[5m])) by (le)) > bool 3", {"h_bucket"}),
        ("max_over_time(foo[1d:1h]) / ignoring (a) group_left (b) bar", {"foo", "bar"}),
        ('{__name__="hidden_metric", job="x"}', {"hidden_metric"}),
    ],
)
def test_metric_names_read_by_an_expression(expr, names):
    assert metric_catalog.metric_names(expr) == names


# --- queries: macros replaced, every target listed -----------------------------------------------
def test_macros_are_replaced_with_concrete_values():
    expr = "increase(x[$__range]) / $__range_s + rate(y[$__rate_interval]) + z[${__interval}]"
    assert replace_macros(expr, range_="2h", rate_interval="1m", interval="30s") == (
        "increase(x[2h]) / 7200 + rate(y[1m]) + z[30s]"
    )
    with pytest.raises(ValueError, match="unknown Grafana variable"):
        replace_macros('x{job=~"$job"}')


def test_all_panel_queries_cover_every_target_and_annotation(config, boards):
    queries = all_panel_queries(config)
    assert len(queries) == len(raw_queries(list(boards.values())))
    for board in boards.values():
        titles = {t for u, t, _ in queries if u == board["uid"]}
        expected = {p["title"] for p in iter_panels(board) if p["type"] != "row"}
        assert expected <= titles
        assert "annotation: Deploys" in titles


# --- thresholds follow the config ---------------------------------------------------------------
def test_error_rate_override_moves_the_colours(config, boards):
    moved = {b["uid"]: b for b in build_all(load_config({"ERROR_RATE_THRESHOLD": "0.7"}))}
    uid = config["dashboardUids"]["postDeploy"]
    er = config["errorRate"]
    before, after = boards[uid], moved[uid]

    assert steps(panel(before, "Error rate (5m)")) == [None, er["info"], er["warning"], 0.02]
    assert steps(panel(after, "Error rate (5m)")) == [None, er["info"], 0.007, er["critical"]]
    assert colours(panel(after, "Error rate (5m)")) == ["green", "yellow", "orange", "red"]
    # Success rate is the same ladder seen from the other side.
    assert steps(panel(after, "Success rate (5m)")) == [None, 0.98, 0.993, 0.995]
    assert colours(panel(after, "Success rate (5m)")) == ["red", "orange", "yellow", "green"]
    # The post-deploy critical level is the one ERROR_RATE_THRESHOLD names in the spec.
    post = "Error rate vs post-deploy ladder"
    assert steps(panel(before, post)) == [None, 0.005, 0.01]
    assert steps(panel(after, post)) == [None, 0.005, 0.007]
    # And the same number reaches the threshold lines of the time series.
    assert 0.007 in steps(panel(after, "Error rate (5m) against the alert ladder"))


def test_response_time_override_merges_with_the_info_level(boards, config):
    # RESPONSE_TIME_THRESHOLD=3000 puts the warning level on the info level: the severer colour
    # wins from 3 s up instead of two steps at the same value.
    moved = {b["uid"]: b for b in build_all(load_config({"RESPONSE_TIME_THRESHOLD": "3000"}))}
    uid = config["dashboardUids"]["postDeploy"]
    p95 = panel(moved[uid], "p95 latency (5m)")
    assert steps(p95) == [None, 3, config["latency"]["critical"]]
    assert colours(p95) == ["green", "orange", "red"]
    assert steps(panel(boards[uid], "p95 latency (5m)")) == [None, 3, 5, 10]


def test_editing_the_config_file_moves_the_colours(tmp_path, config, boards):
    text = CONFIG_PATH.read_text()
    assert "warning: 5,  // R24: violations > 5 warning" in text
    edited = tmp_path / "config.libsonnet"
    edited.write_text(text.replace("warning: 5,  // R24: violations > 5", "warning: 7,  //"))
    moved = {b["uid"]: b for b in build_all(load_config(env={}, path=edited))}
    uid = config["dashboardUids"]["integrity"]
    title = "Integrity violations (all checks)"
    assert steps(panel(boards[uid], title)) == [None, 1, 6, 11]
    assert steps(panel(moved[uid], title)) == [None, 1, 8, 11]


def test_orphan_categories_come_from_the_config(tmp_path, config, boards):
    text = CONFIG_PATH.read_text()
    line = "orphanCategories: ['foreign_key', 'cascade', 'manual_cleanup'],"
    assert line in text
    edited = tmp_path / "config.libsonnet"
    edited.write_text(text.replace(line, "orphanCategories: ['audit_trail', 'consistency'],"))
    moved = {b["uid"]: b for b in build_all(load_config(env={}, path=edited))}
    default = 'category=~"' + "|".join(config["integrity"]["orphanCategories"]) + '"'
    for key in ("integrity", "executive"):
        uid = config["dashboardUids"][key]
        before = panel(boards[uid], "Orphaned records")
        after = panel(moved[uid], "Orphaned records")
        (old_expr,), (new_expr,) = ([t["expr"] for t in p["targets"]] for p in (before, after))
        assert default in old_expr
        assert 'category=~"audit_trail|consistency"' in new_expr
        assert "foreign_key" not in new_expr and "cascade" not in new_expr
        assert "foreign_key, cascade and manual_cleanup" in before["description"]
        assert "audit_trail and consistency" in after["description"]
        assert "foreign_key" not in after["description"]


def test_render_is_deterministic_json_with_a_trailing_newline(config):
    first, second = render(config), render(config)
    assert first == second
    for path, text in first.items():
        if path.endswith(".json"):
            assert text.endswith("}\n")
            assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert "docs/dashboards.md" in first


def test_threshold_steps_helpers():
    assert lib.steps_above([(1, "yellow"), (2, "orange"), (3, "red")]) == [
        {"color": "green", "value": None},
        {"color": "yellow", "value": 1.0},
        {"color": "orange", "value": 2.0},
        {"color": "red", "value": 3.0},
    ]
    # A severe level below a milder one: the severe colour covers both.
    assert [s["color"] for s in lib.steps_above([(2, "yellow"), (1, "orange")])] == [
        "green",
        "orange",
    ]
    assert lib.steps_below([(0.99, "red")]) == [
        {"color": "red", "value": None},
        {"color": "green", "value": 0.99},
    ]


def test_time_compression_shrinks_raw_windows(config):
    compressed = dict(config, timeCompression=60)
    assert lib.window(compressed, "1h") == "1m"
    assert lib.window(compressed, "30d") == "12h"
    exprs = [e for _, _, e in raw_queries(build_all(compressed))]
    assert any("[12h]" in e for e in exprs), "the SLO-period budget window is compressed"


# --- provisioning --------------------------------------------------------------------------------
def test_provisioning_files_point_at_prometheus_and_the_generated_json():
    prov = REPO_ROOT / "dashboards" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())
    (prometheus,) = ds["datasources"]
    assert prometheus["uid"] == "prometheus" and prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((prov / "dashboards" / "deletion.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
    # Each dashboard's default datasource variable value names the provisioned datasource.
    for path in (REPO_ROOT / "dashboards" / "generated").glob("*.json"):
        variables = json.loads(path.read_text())["templating"]["list"]
        (var,) = [v for v in variables if v["name"] == "datasource"]
        assert var["current"]["value"] == prometheus["name"]


# --- exporter replicas ---------------------------------------------------------------------------
def _enclosed_in(expr: str, wrap: str, pos: int) -> bool:
    """True when the character at `pos` lies inside the parentheses of some `wrap(`."""
    start = 0
    while (i := expr.find(wrap, start)) >= 0 and i < pos:
        depth = 0
        for k in range(i + len(wrap) - 1, len(expr)):
            depth += {"(": 1, ")": -1}.get(expr[k], 0)
            if depth == 0:
                break
        if k > pos:
            return True
        start = i + 1
    return False


def test_every_raw_exporter_series_is_collapsed_across_replicas(config):
    """Two audit (or integrity) exporters serve the same series: every query must collapse
    them (max without replicaLabels) before summing, or each deletion counts twice."""
    wrap = f"max without ({', '.join(config['replicaLabels'])}) ("
    jobs = (config["auditExporterSelector"], config["integrityExporterSelector"])
    raw = re.compile(r"\b([a-z_][a-z0-9_]*)\{([^{}]*)\}")
    seen, offenders = 0, []
    for uid, title, expr in all_panel_queries(config):
        for m in raw.finditer(expr):
            if m.group(1) in lib.PER_TARGET_SERIES or not any(j in m.group(2) for j in jobs):
                continue
            seen += 1
            if not _enclosed_in(expr, wrap, m.start()):
                offenders.append(f"{uid} / {title}: {m.group(1)}")
    assert seen > 40  # the check looks at the real panels, not an empty list
    assert offenders == []


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum(increase(deletion_requests_total{job="deletion-audit-exporter"}[$__range]))',
            "sum(max without (instance, pod) "
            '(increase(deletion_requests_total{job="deletion-audit-exporter"}[$__range])))',
        ),
        (
            'count(deletion_integrity_check_up{job="deletion-integrity-exporter"} == 0)',
            "count(max without (instance, pod) "
            '(deletion_integrity_check_up{job="deletion-integrity-exporter"}) == 0)',
        ),
        (  # recording rules, per-target health and the app's own series stay as they are
            'deletion:deletion_requests:rate5m / sum(up{job="deletion-audit-exporter"})'
            ' + sum(process_resident_memory_bytes{job="deletion-api"})',
            'deletion:deletion_requests:rate5m / sum(up{job="deletion-audit-exporter"})'
            ' + sum(process_resident_memory_bytes{job="deletion-api"})',
        ),
    ],
)
def test_dedup_exporter_series_wraps_the_function_of_a_range(config, expr, expected):
    assert lib.dedup_exporter_series(expr, config) == expected
    assert lib.dedup("x", config) == "max without (instance, pod) (x)"
    assert lib.replica_labels() == config["replicaLabels"]  # read through load_config()
