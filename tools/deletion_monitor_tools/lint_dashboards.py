"""Lint the generated Grafana dashboards (dashboards/generated/*.json): structure and dead panels.

Structure: every dashboard has its config uid and a title and the `datasource` variable; panel
ids are unique; gridPos boxes lie inside the 24 columns and do not overlap; every non-row panel
has a title, a description, a unit and at least one query, all through `${datasource}`;
threshold steps rise; links point at existing dashboards and runbooks.

Dead panels: every metric name any query reads must be produced by this project's exporters
(deletion_monitor_tools.metric_catalog), recorded by a rule in alert_rules/*.yml, or come from a
named external exporter in the catalog whose selector the config sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from deletion_monitor.common.config import load_config
from deletion_monitor_tools import metric_catalog
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_dashboards import OUTPUT_DIR, iter_panels, replace_macros

DATASOURCE_UID = "${datasource}"


def metric_resolver(
    config: Mapping[str, Any], rule_files: Iterable[Path]
) -> Callable[[str], str | None]:
    """A function naming the producer of a metric name, or returning None for an unknown one."""
    project = metric_catalog.project_names()
    recorded = metric_catalog.recorded_names(rule_files)

    def resolve(name: str) -> str | None:
        if name in project:
            return f"exporter job {project[name].job}"
        if name in recorded:
            return "recording rule"
        return metric_catalog.external_source(name, config)

    return resolve


def _overlap(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _ds_uid(ds: Any) -> Any:
    return ds.get("uid") if isinstance(ds, dict) else ds


def check_dashboard(
    board: Mapping[str, Any],
    resolve: Callable[[str], str | None],
    config: Mapping[str, Any],
    runbook_dir: Path | None = None,
) -> list[str]:
    """Problems of one dashboard JSON object, each prefixed with its uid and panel."""
    uid = board.get("uid") or "<no uid>"
    problems: list[str] = []

    def problem(where: str, text: str) -> None:
        problems.append(f"{uid}: {where}: {text}")

    if not board.get("uid"):
        problem("dashboard", "no uid")
    elif board["uid"] not in config["dashboardUids"].values():
        problem("dashboard", "uid is not one of the config dashboardUids")
    if not board.get("title"):
        problem("dashboard", "no title")
    variables = (board.get("templating") or {}).get("list") or []
    if not any(
        v.get("name") == "datasource"
        and v.get("type") == "datasource"
        and v.get("query") == "prometheus"
        for v in variables
    ):
        problem("dashboard", "no `datasource` template variable of type datasource (prometheus)")

    queries: list[tuple[str, str]] = []
    for annotation in (board.get("annotations") or {}).get("list") or []:
        if annotation.get("expr"):
            queries.append((f"annotation {annotation.get('name')!r}", annotation["expr"]))
            if _ds_uid(annotation.get("datasource")) != DATASOURCE_UID:
                problem(f"annotation {annotation.get('name')!r}", "not using ${datasource}")

    panels = list(iter_panels(board))
    seen_ids: dict[Any, str] = {}
    seen_titles: set[str] = set()
    boxes: list[tuple[str, Mapping[str, int]]] = []
    for panel in panels:
        title = panel.get("title") or ""
        where = f"panel {title or panel.get('id')!r}"
        pid = panel.get("id")
        if pid is None:
            problem(where, "no id")
        elif pid in seen_ids:
            problem(where, f"id {pid} already used by panel {seen_ids[pid]!r}")
        else:
            seen_ids[pid] = title
        if not title:
            problem(where, "no title")
        elif title in seen_titles:
            problem(where, "title used twice in this dashboard")
        seen_titles.add(title)

        pos = panel.get("gridPos")
        if not isinstance(pos, dict) or not all(isinstance(pos.get(k), int) for k in "xywh"):
            problem(where, "no explicit gridPos {x, y, w, h}")
        else:
            if pos["x"] < 0 or pos["y"] < 0 or pos["w"] < 1 or pos["h"] < 1:
                problem(where, f"gridPos out of range: {pos}")
            if pos["x"] + pos["w"] > 24:
                problem(where, f"gridPos wider than 24 columns: {pos}")
            for other_title, other in boxes:
                if _overlap(pos, other):
                    problem(where, f"gridPos {pos} overlaps panel {other_title!r} {other}")
            boxes.append((title, pos))

        if panel.get("type") == "row":
            continue
        if not (panel.get("description") or "").strip():
            problem(where, "no description")
        defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
        if not defaults.get("unit"):
            problem(where, "no unit (fieldConfig.defaults.unit)")
        if _ds_uid(panel.get("datasource")) != DATASOURCE_UID:
            problem(where, "panel datasource is not ${datasource}")
        steps = (defaults.get("thresholds") or {}).get("steps") or []
        values = [s.get("value") for s in steps]
        if values and (
            values[0] is not None or any(not isinstance(v, int | float) for v in values[1:])
        ):
            problem(where, f"threshold steps must start with null then numbers: {values}")
        elif values[1:] != sorted(values[1:]) or len(set(values[1:])) != len(values[1:]):
            problem(where, f"threshold steps must rise: {values}")
        targets = [t for t in panel.get("targets") or [] if (t.get("expr") or "").strip()]
        if not targets:
            problem(where, "no query")
        for tgt in targets:
            if _ds_uid(tgt.get("datasource")) != DATASOURCE_UID:
                problem(where, f"target {tgt.get('refId')} datasource is not ${{datasource}}")
            queries.append((where, tgt["expr"]))
        for link in panel.get("links") or []:
            problems.extend(_check_link(uid, where, link.get("url", ""), config, runbook_dir))

    for link in board.get("links") or []:
        problems.extend(
            _check_link(uid, "dashboard link", link.get("url", ""), config, runbook_dir)
        )

    for where, expr in queries:
        try:
            names = metric_catalog.metric_names(replace_macros(expr))
        except ValueError as exc:
            problem(where, str(exc))
            continue
        for name in sorted(names):
            if resolve(name) is None:
                problem(
                    where,
                    f"reads {name}, which no exporter of this project, recording rule in "
                    "alert_rules/ or configured external exporter produces (dead panel)",
                )
    return problems


def _check_link(
    uid: str, where: str, url: str, config: Mapping[str, Any], runbook_dir: Path | None
) -> list[str]:
    base = config["runbookBaseUrl"]
    if url.startswith("/d/"):
        target = url[3:].split("?")[0].split("/")[0]
        if target not in config["dashboardUids"].values():
            return [f"{uid}: {where}: link to unknown dashboard uid {target!r}"]
    elif url.startswith(base) and url != base and runbook_dir is not None:
        page = url[len(base) :]
        if not (runbook_dir / page).is_file():
            return [f"{uid}: {where}: runbook link to missing docs/runbooks/{page}"]
    return []


def load_generated(root: Path = REPO_ROOT) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / OUTPUT_DIR).glob("*.json"))]


def lint(root: Path = REPO_ROOT) -> list[str]:
    config = load_config(env={})
    boards = load_generated(root)
    if not boards:
        return [f"{OUTPUT_DIR}: no generated dashboards (run `make generate`)"]
    rule_files = sorted((root / "alert_rules").rglob("*.yml")) + sorted(
        (root / "alert_rules").rglob("*.yaml")
    )
    resolve = metric_resolver(config, rule_files)
    problems: list[str] = []
    uids = [b.get("uid") for b in boards]
    for missing in sorted(set(config["dashboardUids"].values()) - set(uids)):
        problems.append(f"{OUTPUT_DIR}: no dashboard with config uid {missing!r}")
    for board in boards:
        problems += check_dashboard(board, resolve, config, root / "docs" / "runbooks")
    return problems
