"""Render dashboards/*.dashboard.py into dashboards/generated/<uid>.json and docs/dashboards.md.

Each dashboard module defines `build(config) -> grafanalib Dashboard`; it is built here in-process
with the config `generate` passes in (so an override such as ERROR_RATE_THRESHOLD reaches the
panel colours) and encoded with grafanalib's DashboardEncoder, sorted keys, indent 2.

`all_panel_queries()` gives every panel's and annotation's PromQL with Grafana's macros replaced
by concrete values, for running them against a live Prometheus (tests/e2e/).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from grafanalib._gen import DashboardEncoder

from deletion_monitor.common.config import load_config
from deletion_monitor.common.durations import parse_duration
from deletion_monitor_tools.dashboards_lib import TITLES, collapse_replicas
from deletion_monitor_tools.paths import REPO_ROOT

DASHBOARD_DIR = REPO_ROOT / "dashboards"
OUTPUT_DIR = "dashboards/generated"
DOC_PATH = "docs/dashboards.md"


def dashboard_sources() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.dashboard.py"))


def load_module(path: Path) -> ModuleType:
    """Import a `*.dashboard.py` file (its name is not a valid module name)."""
    name = "deletion_dashboards_" + path.name.removesuffix(".dashboard.py").replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_all(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every dashboard as the JSON object Grafana receives, in source-file order."""
    out = []
    for path in dashboard_sources():
        board = load_module(path).build(config)
        data = json.loads(json.dumps(board.to_json_data(), cls=DashboardEncoder))
        # Exporter replicas collapsed in every query (config replicaLabels): no figure doubles.
        out.append(collapse_replicas(data, config))
    return out


def to_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def iter_panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in board.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def render(config: Mapping[str, Any]) -> dict[str, str]:
    boards = build_all(config)
    files = {f"{OUTPUT_DIR}/{board['uid']}.json": to_text(board) for board in boards}
    files[DOC_PATH] = render_doc(boards, config)
    return files


# --- Grafana macros -----------------------------------------------------------------------------
def replace_macros(
    expr: str, range_: str = "1h", rate_interval: str = "1m", interval: str = "1m"
) -> str:
    """`expr` with Grafana's macros replaced by concrete Prometheus values."""
    range_ms = round(parse_duration(range_) * 1000)
    interval_ms = round(parse_duration(interval) * 1000)
    values = {
        "__rate_interval": rate_interval,
        "__range_s": str(range_ms // 1000),
        "__range_ms": str(range_ms),
        "__range": range_,
        "__interval_ms": str(interval_ms),
        "__interval": interval,
    }

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


def raw_queries(boards: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr as in the JSON) of every target and annotation."""
    out = []
    for board in boards:
        for annotation in board.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                out.append((board["uid"], f"annotation: {annotation['name']}", annotation["expr"]))
        for panel in iter_panels(board):
            for tgt in panel.get("targets") or []:
                if tgt.get("expr"):
                    out.append((board["uid"], panel["title"], tgt["expr"]))
    return out


def all_panel_queries(
    config: Mapping[str, Any] | None = None,
    range_: str = "1h",
    rate_interval: str = "1m",
    interval: str = "1m",
) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every query, macros replaced, ready to run."""
    boards = build_all(load_config(env={}) if config is None else config)
    return [
        (uid, title, replace_macros(expr, range_, rate_interval, interval))
        for uid, title, expr in raw_queries(boards)
    ]


# --- docs/dashboards.md -------------------------------------------------------------------------
_DOC_HEAD = """\
# Dashboards

<!-- Generated by `python -m deletion_monitor_tools.generate` from dashboards/*.dashboard.py:
     edit the panel descriptions there, not this file. -->

Four Grafana dashboards, built with grafanalib from `dashboards/*.dashboard.py` and committed as
JSON in `dashboards/generated/`. Grafana loads them through the provisioning files in
`dashboards/provisioning/` (a Prometheus datasource with uid `prometheus` and a file provider
reading `/var/lib/grafana/dashboards`, where docker-compose mounts `dashboards/generated`).

Common to all four:

- **Thresholds come from `config.libsonnet`.** Colours and threshold lines are computed
  from the same `_config` the alert rules are rendered from; a render with
  `ERROR_RATE_THRESHOLD=0.7` (or an edit of the config) moves the alert and the colour together.
  After editing the config run `make generate`.
- **Data source variable** `datasource` (type Prometheus); every query uses it.
- **Deploy markers**: the `Deploys` annotation puts a marker at the first deletion served by each
  app version (`deletion_app_version_first_seen_timestamp_seconds` from the audit exporter).
- **Links**: the header links to the other three dashboards (keeping the time range), the
  runbooks (`docs/runbooks/`) and this page; panels tied to an alert link to its runbook.
- **Sources**: `deletion_*` series come from the audit exporter (job `deletion-audit-exporter`,
  reading the `deletion_audit` table) and the integrity exporter (job
  `deletion-integrity-exporter`, running the integrity checks against the application database);
  `level:metric:operations` names are recording rules in `alert_rules/`; application memory, GC
  and pool series come from the application (`appSelector` in the config); `ALERTS` and `up` from
  Prometheus itself.
- `make lint` (deletion_monitor_tools.lint_dashboards) rejects a panel without a unit,
  description or query, overlapping panels, and any query reading a metric no exporter or rule
  produces.

Changing a dashboard: edit `dashboards/<name>.dashboard.py` (shared builders and the threshold
ladders are in `tools/deletion_monitor_tools/dashboards_lib.py`), run `make generate`, then
`.venv/bin/pytest -q tests/integration/test_dashboards.py` and `make lint`. A new metric must first
be listed in `tools/deletion_monitor_tools/metric_catalog.py` (or be recorded by a rule) or the lint
calls the panel dead. `deletion_monitor_tools.render_dashboards.all_panel_queries()` lists every
query with the Grafana macros replaced, for running them against a live Prometheus.

Panels below: title (visualisation, unit): what it answers and where the data comes from, then
its queries (`$__range` is the dashboard's time range, `$__rate_interval` Grafana's rate window).
"""


def render_doc(boards: list[dict[str, Any]], config: Mapping[str, Any]) -> str:
    lines = [_DOC_HEAD]
    # The order of the issue: live view first, executive summary last.
    order = [config["dashboardUids"][key] for key in TITLES]
    for board in sorted(boards, key=lambda b: order.index(b["uid"]) if b["uid"] in order else 99):
        url = f"{config['grafanaBaseUrl']}/d/{board['uid']}"
        lines.append(f"## {board['title']}\n")
        lines.append(f"uid `{board['uid']}` ({url}), default range `{board['time']['from']}`.\n")
        lines.append(f"{board['description']}\n")
        for panel in iter_panels(board):
            if panel.get("type") == "row":
                lines.append(f"### {panel['title']}\n")
                continue
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
            lines.append(f"- **{panel['title']}** (`{panel['type']}`, unit `{unit}`): ")
            lines[-1] += panel.get("description", "").replace("\n", " ")
            for tgt in panel.get("targets") or []:
                lines.append(f"  - `{tgt['expr']}`")
            lines.append("")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
