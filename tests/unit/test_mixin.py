"""The jsonnet mixin (mixin.libsonnet) as a user vendors and overrides it, and the PrometheusRule.

jsonnet-bundler (`jb`) is not packaged for Debian, so the test lays out what `jb install` leaves
behind by hand: the mixin's files under vendor/github.com/<org>/<repo>/ and the legacy symlink
vendor/<repo> to it. Only the files the mixin imports are copied, into a scratch directory
outside the checkout, so an import reaching for a file outside that set fails here. The user's
main.jsonnet is evaluated with go-jsonnet (`_gojsonnet`, what jsonnet-bundler users run), as the
`jsonnet -J vendor` command would.

Each evaluation of the rules costs seconds of CPU (the rules renderer's cost), so the evaluated
mixins are module fixtures, and the tests reading them are marked slow. promtool on the
PrometheusRule's groups is tests/integration/test_mixin_promtool.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import _gojsonnet  # type: ignore[import-not-found]  # no stubs (tools/pyproject.toml)
import pytest
import yaml

from deletion_monitor.common.config import load_config
from deletion_monitor_tools import render_rules
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_prometheusrule import OUT_PATH

# What the mixin imports, relative to the repository root (jb would vendor the whole repository;
# the test copies only these, so the mixin is proven to need nothing else).
MIXIN_FILES = [
    "jsonnetfile.json",
    "mixin.libsonnet",
    "lib/*.libsonnet",
    "alert_rules/*.libsonnet",
    "alert_rules/alerts/*.libsonnet",
    "src/deletion_monitor/data/config.libsonnet",
    "dashboards/generated/*.json",
]
REPO_PATH = "github.com/deletion-monitoring/deletion-monitoring"
RECORDING_FILE = REPO_ROOT / "alert_rules" / "deletion-recording.rules.yml"
ALERTS_FILE = REPO_ROOT / "alert_rules" / "deletion-alerts.rules.yml"
DASHBOARDS = sorted((REPO_ROOT / "dashboards" / "generated").glob("*.json"))

# The user's override: one threshold and every selector. 0.015 lies between the defaults' info
# (0.005) and critical (0.02), so the ladder stays valid for load_config too.
WARNING = 0.015
DEFAULT_WARNING = 0.01
SELECTOR_FIELDS = [
    "auditExporterSelector",
    "integrityExporterSelector",
    "appSelector",
    "postgresExporterSelector",
    "prometheusSelector",
    "alertmanagerSelector",
    "authProbeSelector",
]
CUSTOM = {f: f'job="custom-{f.lower()}"' for f in SELECTOR_FIELDS}

MAIN = """
local mixin = (import 'deletion-monitoring/mixin.libsonnet') + (import 'overrides.libsonnet');
{
  rules: mixin.prometheusRules,
  alerts: mixin.prometheusAlerts,
  dashboards: mixin.grafanaDashboards,
}
"""


def _overrides() -> str:
    selectors = "\n".join(f"    {f}: {json.dumps(v)}," for f, v in CUSTOM.items())
    return (
        f"{{\n  _config+:: {{\n{selectors}\n    errorRate+: {{ warning: {WARNING} }},\n  }},\n}}\n"
    )


def _vendor(root: Path) -> Path:
    """Lay out root/vendor as `jb install` does; returns the vendor directory."""
    vendor = root / "vendor"
    package = vendor / REPO_PATH
    for pattern in MIXIN_FILES:
        matches = sorted(REPO_ROOT.glob(pattern))
        assert matches, f"nothing to vendor for {pattern}"
        for src in matches:
            dest = package / src.relative_to(REPO_ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    (vendor / "deletion-monitoring").symlink_to(package.relative_to(vendor))
    return vendor


def _evaluate(main: Path, vendor: Path) -> dict[str, Any]:
    return json.loads(_gojsonnet.evaluate_file(str(main), jpathdir=[str(vendor)]))


def _rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in doc["groups"] for r in group["rules"]]


def _number_in(value: float, expr: str) -> bool:
    """Whether `value` (as the rules format it) appears in expr as a number of its own."""
    return re.search(rf"(?<![\d.]){re.escape(f'{value:.12g}')}(?![\d.])", expr) is not None


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixin-user")
    _vendor(root)
    (root / "overrides.libsonnet").write_text(_overrides())
    (root / "main.jsonnet").write_text(MAIN)
    (root / "defaults.jsonnet").write_text(MAIN.replace(" + (import 'overrides.libsonnet')", ""))
    return root


@pytest.fixture(scope="module")
def defaults(user_dir: Path) -> dict[str, Any]:
    return _evaluate(user_dir / "defaults.jsonnet", user_dir / "vendor")


@pytest.fixture(scope="module")
def overridden(user_dir: Path) -> dict[str, Any]:
    return _evaluate(user_dir / "main.jsonnet", user_dir / "vendor")


# --- the package ---------------------------------------------------------------------------------
def test_jsonnetfile_declares_no_dependencies() -> None:
    # The vendoring above copies this repository's files only: a dependency added to the
    # manifest would have to be vendored too (and the mixin to import it from vendor/).
    manifest = json.loads((REPO_ROOT / "jsonnetfile.json").read_text())
    assert manifest["version"] == 1
    assert manifest["dependencies"] == []


# --- without overrides: the committed files ------------------------------------------------------
@pytest.mark.slow
def test_defaults_render_the_committed_rule_files_exactly(defaults: dict[str, Any]) -> None:
    # Byte for byte through the rules renderer: the mixin is the same rules, not a similar set.
    assert render_rules.to_yaml(defaults["rules"]) == RECORDING_FILE.read_text()
    assert render_rules.to_yaml(defaults["alerts"]) == ALERTS_FILE.read_text()


@pytest.mark.slow
def test_rules_hold_records_only_and_alerts_every_alert(defaults: dict[str, Any]) -> None:
    recording = _rules(defaults["rules"])
    assert recording and all("record" in r and "alert" not in r for r in recording)
    # The alerting group begins with the records its alerts read (same evaluation, see
    # mixin.libsonnet) and holds nothing but alerts after its first alert.
    (group,) = defaults["alerts"]["groups"]
    kinds = ["alert" if "alert" in r else "record" for r in group["rules"]]
    first_alert = kinds.index("alert")
    assert set(kinds[first_alert:]) == {"alert"}
    committed = [
        r["alert"] for r in _rules(yaml.safe_load(ALERTS_FILE.read_text())) if "alert" in r
    ]
    assert [r["alert"] for r in group["rules"][first_alert:]] == committed


@pytest.mark.slow
def test_dashboards_are_the_generated_json(defaults: dict[str, Any]) -> None:
    assert DASHBOARDS
    assert defaults["dashboards"] == {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


# --- a user's override ---------------------------------------------------------------------------
@pytest.mark.slow
def test_threshold_override_moves_the_warning_alert(
    defaults: dict[str, Any], overridden: dict[str, Any]
) -> None:
    def warning_exprs(doc: dict[str, Any]) -> list[str]:
        return [
            r["expr"]
            for r in _rules(doc)
            if r.get("alert") == "DeletionErrorRateHigh" and r["labels"]["severity"] == "warning"
        ]

    (before,) = warning_exprs(defaults["alerts"])
    (after,) = warning_exprs(overridden["alerts"])
    assert _number_in(DEFAULT_WARNING, before) and not _number_in(WARNING, before)
    assert _number_in(WARNING, after)
    assert not _number_in(DEFAULT_WARNING, after)


@pytest.mark.slow
def test_selector_override_reaches_every_expression(
    defaults: dict[str, Any], overridden: dict[str, Any]
) -> None:
    config = load_config(env={})
    before = _rules(defaults["rules"]) + _rules(defaults["alerts"])
    after = _rules(overridden["rules"]) + _rules(overridden["alerts"])
    assert [r.get("alert") or r.get("record") for r in after] == [
        r.get("alert") or r.get("record") for r in before
    ]
    used: set[str] = set()
    for old, new in zip(before, after, strict=True):
        name = old.get("alert") or old.get("record")
        for field in SELECTOR_FIELDS:
            assert config[field] not in new["expr"], f"{name}: still reads {config[field]}"
            if config[field] in old["expr"]:
                used.add(field)
                assert CUSTOM[field] in new["expr"], f"{name}: {field} override missing"
    # Not vacuous: the exporters' and the application's selectors feed many rules (the deploy
    # marker of deletion:post_deploy:active included, through postDeploy.markerMetrics).
    assert {"auditExporterSelector", "integrityExporterSelector", "appSelector"} <= used
    (active,) = [r for r in after if r.get("record") == "deletion:post_deploy:active"]
    assert CUSTOM["auditExporterSelector"] in active["expr"]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.slow
def test_selector_override_reaches_the_dashboards(
    defaults: dict[str, Any], overridden: dict[str, Any]
) -> None:
    # A relabelled job must not leave the panels empty: every shipped selector in a dashboard
    # (queries, variables) is the override's, and nothing else of the dashboard changes.
    config = load_config(env={})
    assert overridden["dashboards"].keys() == defaults["dashboards"].keys()
    used: set[str] = set()
    for name, before in defaults["dashboards"].items():
        old, new = _strings(before), _strings(overridden["dashboards"][name])
        assert len(old) == len(new), name
        for a, b in zip(old, new, strict=True):
            expected = a
            for field in SELECTOR_FIELDS:
                if config[field] in a:
                    used.add(field)
                expected = expected.replace(config[field], CUSTOM[field])
            assert b == expected, f"{name}: {a!r} became {b!r}"
            assert not any(config[f] in b for f in SELECTOR_FIELDS), f"{name}: {b!r}"
    # Not vacuous: the dashboards query the exporters, the application and the auth probe.
    assert {"auditExporterSelector", "integrityExporterSelector", "appSelector"} <= used


@pytest.mark.slow
def test_one_override_file_for_the_mixin_and_the_python_commands(
    user_dir: Path, overridden: dict[str, Any]
) -> None:
    # docs/mixin.md: the same overrides.libsonnet on the shipped config is a `--config FILE`
    # for deletion-monitor (reports, watch, exporters), which must see the rules' numbers.
    config_file = user_dir / "deletion-config.libsonnet"
    config_file.write_text(
        "(import 'vendor/deletion-monitoring/src/deletion_monitor/data/config.libsonnet')\n"
        "+ (import 'overrides.libsonnet')\n"
    )
    config = load_config(env={}, path=config_file)
    assert config["errorRate"]["warning"] == WARNING
    assert config["auditExporterSelector"] == CUSTOM["auditExporterSelector"]
    rendered = render_rules.render(config)
    assert rendered["alert_rules/deletion-recording.rules.yml"] == render_rules.to_yaml(
        overridden["rules"]
    )
    assert rendered["alert_rules/deletion-alerts.rules.yml"] == render_rules.to_yaml(
        overridden["alerts"]
    )


# --- the PrometheusRule --------------------------------------------------------------------------
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def test_prometheusrule_file_wraps_the_rule_files() -> None:
    obj = yaml.safe_load((REPO_ROOT / OUT_PATH).read_text())
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["kind"] == "PrometheusRule"
    name = obj["metadata"]["name"]
    assert DNS1123_SUBDOMAIN.fullmatch(name) and len(name) <= 253
    assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "deletion-monitoring"
    assert all(isinstance(v, str) for v in obj["metadata"]["labels"].values())
    expected = (
        yaml.safe_load(RECORDING_FILE.read_text())["groups"]
        + yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    )
    assert obj["spec"]["groups"] == expected
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}


def _prometheusrule(args: str) -> dict[str, Any]:
    """lib/prometheusrule.libsonnet applied to a two-group stand-in mixin (no rule rendering)."""
    snippet = f"""
    local mixin = {{
      prometheusRules: {{ groups: [{{ name: 'r', rules: [{{ record: 'a:b:c', expr: '1' }}] }}] }},
      prometheusAlerts: {{ groups: [{{ name: 'a', rules: [{{ alert: 'X', expr: '1' }}] }}] }},
    }};
    (import 'lib/prometheusrule.libsonnet')(mixin, {args})
    """
    return json.loads(_gojsonnet.evaluate_snippet("test", snippet, jpathdir=[str(REPO_ROOT)]))


def test_prometheusrule_lib_takes_name_namespace_and_labels() -> None:
    obj = _prometheusrule(
        "name='deletion.rules-1', namespace='monitoring', labels={release: 'kps'}"
    )
    assert obj["metadata"] == {
        "name": "deletion.rules-1",
        "namespace": "monitoring",
        "labels": {
            "app.kubernetes.io/name": "deletion-monitoring",
            "app.kubernetes.io/component": "prometheus-rules",
            "release": "kps",
        },
    }
    # Recording groups first, then the alerting group, unchanged.
    assert [g["name"] for g in obj["spec"]["groups"]] == ["r", "a"]


@pytest.mark.parametrize(
    "name", ["Deletion", "deletion_rules", "-deletion", "deletion.", "", "a" * 254]
)
def test_prometheusrule_lib_rejects_a_name_kubernetes_rejects(name: str) -> None:
    with pytest.raises(RuntimeError, match="not a DNS-1123 subdomain"):
        _prometheusrule(f"name={json.dumps(name)}")
