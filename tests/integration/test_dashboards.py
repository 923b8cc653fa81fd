"""Grafana dashboards: every panel query parses with the real promtool.

Structure, dead panels and thresholds need no binary: tests/unit/test_dashboards_structure.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deletion_monitor_tools.render_dashboards import all_panel_queries


def _promtool_check(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = [{"record": f"dashboard:query:q{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    return subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_every_query_parses_with_promtool(tmp_path):
    queries = all_panel_queries()
    assert len(queries) > 50
    assert not [q for q in queries if "$" in q[2]], "a Grafana macro was left unreplaced"
    result = _promtool_check([e for _, _, e in queries], tmp_path)
    index = "\n".join(f"q{i}: {u} / {t}" for i, (u, t, _) in enumerate(queries))
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + index
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_check_rejects_a_broken_query(tmp_path):
    result = _promtool_check(["sum(rate(deletion_requests_total[5m])"], tmp_path)
    assert result.returncode != 0
