"""deletion_monitor_tools.lint_config_literals: config values repeated in Python are caught, the
tree is clean."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from deletion_monitor.common.config import load_config
from deletion_monitor_tools import lint, lint_config_literals
from deletion_monitor_tools.paths import REPO_ROOT

PLANTED_REL = "src/deletion_monitor/planted.py"
# Each line repeats something config.libsonnet defines; the comment names what the lint says.
PLANTED = '''\
"""Docstrings may name foreign_key, cascade and manual_cleanup: documentation is not checked."""
import argparse

ORPHANS = ("cascade", "foreign_key", "manual_cleanup")  # integrity.orphanCategories
MATCHER = 'category=~"manual_cleanup|foreign_key|cascade"'  # integrity.orphanCategories
TEXT = "violations of the foreign_key, cascade and manual_cleanup checks"  # orphanCategories
LABELS = ["instance", "pod"]  # replicaLabels
BY = "max without (pod, instance)"  # replicaLabels
ORPHAN_TOLERANCE = 0  # integrity.orphanTolerance
INTEGRITY_WARNING = 7  # integrity.warning (a different value: a contradiction)
slo_target: float = 0.99  # slo.target
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # dbQueryBuckets
DASHBOARD_UIDS_POST_DEPLOY = "deletion-post-deploy"  # dashboardUids.postDeploy


def counted(excluded_error_types=("authorization",)):  # errorRate.excludedErrorTypes
    return poll(audit_max_poll_age=300)  # auditMaxPollAge


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warning-issues", type=int, default=5)  # report.warningIssues


def poll(**kwargs):
    return kwargs
'''
EXPECTED = [
    ("planted.py:4:", "integrity.orphanCategories"),
    ("planted.py:5:", "integrity.orphanCategories"),
    ("planted.py:6:", "integrity.orphanCategories"),
    ("planted.py:7:", "replicaLabels"),
    ("planted.py:8:", "replicaLabels"),
    ("planted.py:9:", "integrity.orphanTolerance"),
    ("planted.py:10:", "integrity.warning"),
    ("planted.py:11:", "slo.target"),
    ("planted.py:12:", "dbQueryBuckets"),
    ("planted.py:13:", "dashboardUids.postDeploy"),
    ("planted.py:16:", "errorRate.excludedErrorTypes"),
    ("planted.py:17:", "auditMaxPollAge"),
    ("planted.py:21:", "report.warningIssues"),
]
# Look-alikes that are not repetitions: the lint must stay quiet on every line.
INNOCENT = """\
WARNING = 5
window = "5m"
REFUSED = ("authorization",)
TITLES = {"postDeploy": "Deletion: post-deployment (live)", "slack-ops": 1}
time_compression = 60.0
post_deploy = "Deletion: post-deployment (live)"
slack_ops = "slack-ops"
NODES = ("instance", "pod", "node")
NAMES = "foreign_keys|cascade|manual_cleanup_x"
CASCADE_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
PAIR = (0.05, 0.1)
orphan_tolerance = config["integrity"]["orphanTolerance"]


def f(warning=5, target=0.99, categories=("foreign_key", "cascade")):
    return g(window="1h", evidence=("1h", "2h"))
"""


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_config(env={})


def _copy_sources(dest: Path) -> None:
    """The packages and the dashboard sources, as lint() reads them, under `dest`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in (
        "src/deletion_monitor",
        "tools/deletion_monitor_tools",
        "demo/deletion_monitor_demo",
    ):
        shutil.copytree(REPO_ROOT / package, dest / package, ignore=ignore)
    (dest / "dashboards").mkdir()
    for source in (REPO_ROOT / "dashboards").glob("*.dashboard.py"):
        shutil.copy(source, dest / "dashboards" / source.name)


def test_the_tree_repeats_no_config_value() -> None:
    assert lint_config_literals.lint() == []


def test_make_lint_runs_it() -> None:
    assert "deletion_monitor_tools.lint_config_literals" in lint.LINTERS


def test_a_planted_file_is_caught_line_by_line(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    (tmp_path / PLANTED_REL).write_text(PLANTED)
    problems = lint_config_literals.lint(root=tmp_path)
    assert all(p.startswith(PLANTED_REL + ":") for p in problems), problems
    found = [(p.split(" ", 1)[0].removeprefix("src/deletion_monitor/"), p) for p in problems]
    for where, path in EXPECTED:
        assert any(w == where and f"config {path}" in p for w, p in found), (where, problems)
    assert len(problems) == len(EXPECTED), problems


def test_look_alikes_are_not_repetitions(config: dict[str, Any]) -> None:
    assert lint_config_literals.check_source("innocent.py", INNOCENT, config) == []


def test_the_lint_reads_the_config_it_is_given(config: dict[str, Any]) -> None:
    edited = dict(config, replicaLabels=["host", "zone"])
    source = 'LABELS = ("zone", "host")\nBY = "max without (instance, pod)"\n'
    problems = lint_config_literals.check_source("x.py", source, edited)
    assert problems == [
        "x.py:1: ['zone', 'host'] repeats config replicaLabels: read it from load_config()"
    ]


def test_sanctioned_copies_must_stay_equal_to_the_config(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    runtime = tmp_path / "demo" / "deletion_monitor_demo" / "app" / "runtime.py"
    text = runtime.read_text()
    assert "DB_QUERY_BUCKETS = (0.005, 0.01," in text
    runtime.write_text(
        text.replace("DB_QUERY_BUCKETS = (0.005, 0.01,", "DB_QUERY_BUCKETS = (0.01,")
    )
    assert lint_config_literals.lint(root=tmp_path) == [
        "demo/deletion_monitor_demo/app/runtime.py: DB_QUERY_BUCKETS is no longer equal to "
        "config dbQueryBuckets"
    ]
    runtime.write_text(text.replace("DB_QUERY_BUCKETS", "QUERY_BUCKETS"))
    problems = lint_config_literals.lint(root=tmp_path)
    assert any(
        "sanctioned copy DB_QUERY_BUCKETS of config dbQueryBuckets not found" in p for p in problems
    )
    # Under another name the same list is an ordinary repetition.
    assert any("runtime.py:" in p and "repeats config dbQueryBuckets" in p for p in problems)
