"""Prometheus rules: promtool unit tests (tests/rules/*.yml are the behaviour spec), promtool check,
render determinism, threshold overrides, time compression and the rules lint.

The promtool unit-test files run in parallel once per session (they dominate the run time); each
file is still reported as its own test case.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from deletion_monitor.common.config import load_config
from deletion_monitor.common.durations import parse_duration
from deletion_monitor_tools import generate, lint_rules, render_rules

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_FILES = sorted((REPO_ROOT / "tests" / "rules").glob("*.yml"))
RULE_FILES = ["alert_rules/deletion-alerts.rules.yml", "alert_rules/deletion-recording.rules.yml"]

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


# A test group whose evaluation runs longer than this (in minutes of rule time) is handed to
# promtool on its own: promtool evaluates every rule at every step of a group, so the day-long
# groups (1-day averages, 1h/1d ratios) cost ~30 s of CPU each, and left in their file they made
# one file (performance.test.yml, 127 s) the fixture's critical path.
LONG_GROUP_MINUTES = 6 * 60


def _minutes(duration: str) -> float:
    return parse_duration(duration) / 60


def _group_minutes(group: Mapping[str, Any]) -> float:
    times = [
        _minutes(str(t["eval_time"]))
        for key in ("alert_rule_test", "promql_expr_test")
        for t in group.get(key) or []
    ]
    return max(times, default=0.0)


def _promtool_jobs(tmp: Path) -> list[tuple[str, Path, float]]:
    """(test file name, file to run, estimated cost) per promtool run: each file with its
    short groups, and each long group in a file of its own, longest first."""
    jobs: list[tuple[str, Path, float]] = []
    for path in TEST_FILES:
        spec = yaml.safe_load(path.read_text())
        rule_files = [str((path.parent / r).resolve()) for r in spec.get("rule_files", [])]
        groups = spec.get("tests") or []
        short = [g for g in groups if _group_minutes(g) <= LONG_GROUP_MINUTES]
        parts = [[g] for g in groups if _group_minutes(g) > LONG_GROUP_MINUTES]
        if short or not parts:
            parts.insert(0, short)
        for n, part in enumerate(parts):
            out = tmp / f"{path.stem}.{n}.yml"
            out.write_text(yaml.safe_dump({**spec, "rule_files": rule_files, "tests": part}))
            jobs.append((path.name, out, sum(_group_minutes(g) for g in part)))
    return sorted(jobs, key=lambda job: -job[2])


@pytest.fixture(scope="session")
def unit_results(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """promtool test rules over every spec file, as parallel runs of whole files and of their
    long groups (see LONG_GROUP_MINUTES); one result per spec file, failing if any part fails."""
    jobs = _promtool_jobs(tmp_path_factory.mktemp("promtool-specs"))
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(lambda job: _promtool("test", "rules", str(job[1])), jobs))
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    for (name, _path, _cost), run in zip(jobs, runs, strict=True):
        prev = results.get(name)
        if prev is None or (prev.returncode == 0 and run.returncode != 0):
            results[name] = run
    return results


def test_long_groups_are_split_and_nothing_is_lost(tmp_path: Path) -> None:
    jobs = _promtool_jobs(tmp_path)
    assert {name for name, _p, _c in jobs} == {p.name for p in TEST_FILES}
    ran = [g["name"] for _n, path, _c in jobs for g in yaml.safe_load(path.read_text())["tests"]]
    every = [g["name"] for p in TEST_FILES for g in yaml.safe_load(p.read_text()).get("tests", [])]
    assert sorted(ran) == sorted(every)
    assert _minutes("1560m") == 1560 and _minutes("1d2h") == 1560 and _minutes("90s") == 1.5


@pytest.mark.parametrize("test_file", [p.name for p in TEST_FILES])
def test_promtool_unit_tests(
    unit_results: dict[str, subprocess.CompletedProcess[str]], test_file: str
) -> None:
    result = unit_results[test_file]
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", *RULE_FILES, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_committed_rules_match_the_render() -> None:
    rendered = render_rules.render(load_config(env={}))
    assert sorted(rendered) == sorted(RULE_FILES)
    for rel, text in rendered.items():
        assert (REPO_ROOT / rel).read_text() == text, f"{rel} drifted: run `make generate`"
        assert text.startswith("# Generated by"), "generated header missing"
    # Deterministic: a second render is byte-identical.
    assert render_rules.render(load_config(env={})) == rendered


def _render_into(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, via_cli: bool = False, **env: str
) -> dict[str, Any]:
    """Render the rules with env overrides into tmp; return the groups and rules.

    via_cli runs `python -m deletion_monitor_tools.generate --env --out tmp` (all renderers, as
    the demo does); otherwise only this renderer runs, which is faster.
    """
    for key in ("ERROR_RATE_THRESHOLD", "RESPONSE_TIME_THRESHOLD", "CHECK_INTERVAL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("TIME_COMPRESSION", raising=False)
    if via_cli:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert generate.main(["--env", "--out", str(tmp)]) == 0
    else:
        for rel, text in render_rules.render(load_config(env=env)).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)
    docs = [yaml.safe_load((tmp / rel).read_text()) for rel in RULE_FILES]
    return {
        "groups": [g for d in docs for g in d["groups"]],
        "rules": list(lint_rules.iter_rules(docs)),
    }


def _alert(rules: list[Mapping[str, Any]], name: str, severity: str) -> Mapping[str, Any]:
    (rule,) = [r for r in rules if r.get("alert") == name and r["labels"]["severity"] == severity]
    return rule


def test_error_rate_threshold_override_moves_the_rule_and_breaks_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ERROR_RATE_THRESHOLD=1.5 (percent) moves the warning level; the promtool spec then fails."""
    out = _render_into(tmp_path, monkeypatch, ERROR_RATE_THRESHOLD="1.5")
    warning = _alert(out["rules"], "DeletionErrorRateHigh", "warning")
    assert "deletion:deletion_error_ratio:rate5m > 0.015" in warning["expr"]
    assert "above 1.5%" in warning["annotations"]["description"]
    post = _alert(out["rules"], "DeletionErrorRatePostDeploy", "critical")
    assert "> 0.015" in post["expr"]
    # The same spec file against the moved threshold must fail: the tests can fail.
    spec_dir = tmp_path / "tests" / "rules"
    spec_dir.mkdir(parents=True)
    # The groups of the warning level only (the whole file costs ~40 s of promtool CPU): its
    # 1.1 % must now stay silent, and the spec says it warns.
    spec = yaml.safe_load((REPO_ROOT / "tests" / "rules" / "error_rate.test.yml").read_text())
    spec["tests"] = [g for g in spec["tests"] if "warning at 20m" in g["name"]]
    assert spec["tests"], "error_rate.test.yml has no group of the warning level"
    (spec_dir / "error_rate.test.yml").write_text(yaml.safe_dump(spec))
    result = _promtool("test", "rules", str(spec_dir / "error_rate.test.yml"))
    assert result.returncode != 0
    assert "DeletionErrorRateHigh" in result.stdout + result.stderr


def test_response_time_and_check_interval_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _render_into(tmp_path, monkeypatch, RESPONSE_TIME_THRESHOLD="7500", CHECK_INTERVAL="30")
    warning = _alert(out["rules"], "DeletionLatencyP95High", "warning")
    assert "deletion:deletion_duration_seconds:p95_rate5m > 7.5" in warning["expr"]
    assert {g["interval"] for g in out["groups"]} == {"30s"}


def test_time_compression_divides_every_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _render_into(tmp_path, monkeypatch, via_cli=True, TIME_COMPRESSION="60")
    rules = out["rules"]
    assert {g["interval"] for g in out["groups"]} == {"1s"}
    warn = _alert(rules, "DeletionErrorRateHigh", "warning")
    assert warn["for"] == "5s"  # 10m duration minus the 5m window
    assert warn["keep_firing_for"] == "10s"  # 10m
    senior = _alert(rules, "DeletionEscalationSenior", "critical")
    manager = _alert(rules, "DeletionEscalationManager", "critical")
    assert (senior["for"], manager["for"]) == ("15s", "30s")  # 15m, 30m
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    # Names keep the nominal window; the expression uses the compressed one.
    assert "[5s]" in records["deletion:deletion_requests:rate5m"]
    assert "[1h12m]" in records["deletion:deletion_requests:rate3d"]  # 3d / 60
    assert "< 2880" in records["deletion:post_deploy:active"]  # 48h / 60, in seconds
    stale = next(r for r in rules if r.get("alert") == "DeletionIntegrityChecksStale")
    assert "> 15" in stale["expr"]  # 15 min / 60
    result = _promtool("check", "rules", *(str(tmp_path / rel) for rel in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_time_compression_one_is_the_plain_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _render_into(tmp_path, monkeypatch, TIME_COMPRESSION="1")
    for rel in RULE_FILES:
        assert (tmp_path / rel).read_text() == (REPO_ROOT / rel).read_text()


def test_rules_lint_is_clean() -> None:
    assert lint_rules.lint() == []


def test_rules_lint_finds_bad_alerts(tmp_path: Path) -> None:
    config = load_config(env={})
    bad = {
        "alert": "deletion_error_rate",
        "expr": "vector(1)",
        "labels": {"severity": "page", "service": "user-deletion", "category": "x"},
        "annotations": {
            "summary": "error rate is {{ $value }}",
            "description": "static",
            "runbook_url": "https://example.invalid/x.md",
        },
    }
    problems = lint_rules.check_alert(bad, config, runbook_dir=tmp_path)
    text = "\n".join(problems)
    for expected in (
        "not CamelCase",
        "severity 'page'",
        "category 'x'",
        "source None",
        "summary must be static",
        "capital letter",
        "end with a period",
        "description must be templated",
        "runbook_url must be",
        "does not exist",
        "dashboard_url must be",
    ):
        assert expected in text
    bad_record = {"groups": [{"name": "g", "rules": [{"record": "deletion_rate5m", "expr": "1"}]}]}
    assert any("level:metric:operations" in p for p in lint_rules.check_rules([bad_record], config))


@pytest.mark.skipif(shutil.which("jsonnetfmt") is None, reason="jsonnetfmt not installed")
def test_jsonnetfmt_lint_reads_every_jsonnet_folder(tmp_path: Path) -> None:
    """Nested folders (alert_rules/alerts/) and alertmanager/ are checked, not only the top."""
    unformatted = "{a:1}\n"
    for rel in (
        "config/c.libsonnet",
        "alert_rules/alerts/x.libsonnet",
        "alertmanager/alertmanager.jsonnet",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(unformatted)
    (tmp_path / "alert_rules" / "ok.jsonnet").write_text("{ a: 1 }\n")
    (tmp_path / "alert_rules" / "notes.txt").write_text(unformatted)
    problems = lint_rules.check_jsonnetfmt(tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "jsonnetfmt --test alert_rules/alerts/x.libsonnet",
        "jsonnetfmt --test alertmanager/alertmanager.jsonnet",
        "jsonnetfmt --test config/c.libsonnet",
    ]
    assert lint_rules.check_jsonnetfmt() == []


def test_rules_lint_requires_firing_and_silent_cases() -> None:
    tests = {
        "a.yml": {
            "tests": [
                {
                    "alert_rule_test": [
                        {"alertname": "OnlyFires", "exp_alerts": [{"exp_labels": {}}]},
                        {"alertname": "BothWays", "exp_alerts": [{"exp_labels": {}}]},
                        {"alertname": "BothWays", "exp_alerts": []},
                    ]
                }
            ]
        }
    }
    problems = lint_rules.check_test_coverage(["OnlyFires", "BothWays", "Untested"], tests)
    assert problems == [
        "alert OnlyFires: no promtool case in tests/rules/ where it stays silent",
        "alert Untested: no promtool case in tests/rules/ where it fires",
        "alert Untested: no promtool case in tests/rules/ where it stays silent",
    ]


COMPRESSED_SPEC = REPO_ROOT / "tests" / "rules" / "time_compressed" / "escalation.tc60.yml"


def test_time_compressed_rules_behave_like_the_real_ones_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TIME_COMPRESSION=60 the 5m/15m/30m ladder of the escalation spec plays out in seconds
    (and the descriptions name the compressed durations)."""
    _render_into(tmp_path, monkeypatch, TIME_COMPRESSION="60")
    shutil.copy(COMPRESSED_SPEC, tmp_path)
    result = _promtool("test", "rules", str(tmp_path / COMPRESSED_SPEC.name))
    assert result.returncode == 0, result.stdout + result.stderr


ERROR_RATE_COMPRESSED_SPEC = COMPRESSED_SPEC.parent / "error_rate.tc60.yml"


def test_time_compressed_error_rate_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TIME_COMPRESSION=60 the error-rate edges play out in seconds: 2.1 % fires 5 s after it
    starts, and the demo's 25 % spike at 5 deletions/s pages and resolves within the e2e budget."""
    _render_into(tmp_path, monkeypatch, TIME_COMPRESSION="60")
    shutil.copy(ERROR_RATE_COMPRESSED_SPEC, tmp_path)
    result = _promtool("test", "rules", str(tmp_path / ERROR_RATE_COMPRESSED_SPEC.name))
    assert result.returncode == 0, result.stdout + result.stderr
