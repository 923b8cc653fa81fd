"""The PrometheusRule's groups pass the real promtool; the mixin's jsonnet is jsonnetfmt-clean.

prometheus-operator hands spec.groups to Prometheus as a rule file, so promtool checking them as
one is the check the operator's Prometheus makes. The mixin's shape and overrides (no binary)
are tests/unit/test_mixin.py.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deletion_monitor_demo.services import require_binary
from deletion_monitor_tools.paths import REPO_ROOT
from deletion_monitor_tools.render_prometheusrule import OUT_PATH


def _promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess:
    rule_file = tmp_path / "spec-groups.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return subprocess.run(
        [require_binary("promtool"), "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _groups() -> list[dict[str, Any]]:
    return yaml.safe_load((REPO_ROOT / OUT_PATH).read_text())["spec"]["groups"]


def test_promtool_accepts_the_prometheusrule_groups(tmp_path: Path) -> None:
    groups = _groups()
    proc = _promtool_check(groups, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total = sum(len(g["rules"]) for g in groups)
    assert f"SUCCESS: {total} rules found" in proc.stdout + proc.stderr


def test_promtool_rejects_a_broken_group(tmp_path: Path) -> None:
    # The check above reads what it is given: one unparsable expression fails it.
    groups = copy.deepcopy(_groups())
    groups[-1]["rules"][-1]["expr"] = "sum(rate(deletion_requests_total[5m])"
    proc = _promtool_check(groups, tmp_path)
    assert proc.returncode != 0


@pytest.mark.parametrize(
    "path",
    ["mixin.libsonnet", *sorted(f"lib/{p.name}" for p in (REPO_ROOT / "lib").glob("*.libsonnet"))],
)
def test_mixin_jsonnet_is_jsonnetfmt_clean(path: str) -> None:
    # lint_rules' jsonnetfmt check reads config/, alert_rules/ and alertmanager/ only.
    proc = subprocess.run(
        [require_binary("jsonnetfmt"), "--test", str(REPO_ROOT / path)],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"{path} is not jsonnetfmt-clean"
