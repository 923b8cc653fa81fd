"""Healthy-week simulation against the real rules (promtool), and the detection emulator checked
against promtool (bench/bench_detection.py measures hundreds of weeks with the emulator).

- Healthy traffic (tests/rules/simulate.py: diurnal peaks of 3 deletions/min, quiet nights,
  sporadic 0.3 % failures, forged tokens, latency outliers, a deploy) fed as raw exporter series
  at 1-minute resolution: no critical alert fires. The most sensitive stretch of a week is
  checked per seed: the 48 h post-deploy phase starts there (the 1 % ladder).
- A tiny product (5 deletions a day) over the same stretch: nothing critical.
- Whole weeks (marker `weeks`, `make test-weeks`): one production and one tiny week, Monday to
  Sunday, in seven day parts: nothing critical.
- The emulator's firing minutes of every error-rate, post-deploy, burn-rate and p95 level agree
  with promtool's ALERTS on a stretch with incidents (a night outage, 5 % at the afternoon
  peak, slow deletions).

promtool refuses queries over ~10 000 samples, so a stretch is a part of a week with six hours
of warm-up for the 6 h windows. Each part is one promtool run (parallel, 2 workers).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "rules"))
sys.path.insert(0, str(REPO / "bench"))

import bench_detection as bench  # noqa: E402
import simulate as sim  # noqa: E402

from deletion_monitor.common.config import load_config  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")

RULES = [
    str(REPO / "alert_rules" / f)
    for f in ("deletion-recording.rules.yml", "deletion-alerts.rules.yml")
]
WARMUP = 360
PART = 12 * 60
EMULATED = 'alertname=~"{}"'.format(
    "|".join(
        [
            "DeletionErrorRateHigh",
            "DeletionErrorRatePostDeploy",
            "DeletionErrorBudgetBurn",
            "DeletionLatencyP95High",
        ]
    )
)


def _write(path: Path, tests: list[dict[str, Any]]) -> Path:
    doc = {"rule_files": RULES, "evaluation_interval": "1m", "tests": tests}
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=10**9))
    return path


def _promtool(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _no_critical(case: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """Assert no critical of any incident but the monitoring's own fired in [start, end) (the
    simulation feeds no `up` series: the exporter-down alerts and their escalations fire)."""
    selector = 'severity="critical",alertstate="firing",incident!="monitoring"'
    case["promql_expr_test"][0]["expr"] = (
        f"count_over_time(ALERTS{{{selector}}}[{end - start - 1}m])"
    )
    return case


def _deploy_stretch(w: sim.Week) -> tuple[int, int]:
    assert w.deploy_minute is not None
    start = max(WARMUP, w.deploy_minute - 60)
    return start, min(w.minutes, start + PART)


def _healthy_case(seed: int, profile: sim.Profile, label: str) -> tuple[str, dict[str, Any]]:
    w = sim.healthy_week(seed, profile)
    start, end = _deploy_stretch(w)
    case = sim.promtool_test(w, start, end, WARMUP, f"{label} seed {seed}: minutes {start}-{end}")
    return f"{label}-{seed}", _no_critical(case, start, end)


def _incident_week() -> tuple[sim.Week, int, int]:
    """Seed 7's week with a night outage (Wed 01:00-02:00), 5 % errors at the Wednesday peak
    (13:00-15:00) and 8 % of the deletions at 12 s (16:00-18:00); checked Wed 00:00-19:00."""
    w = sim.healthy_week(7, deploy=False)
    wed = 2 * sim.DAY
    sim.inject(w, sim.Fault(start=wed + 60, length=60, error_ratio=1.0), 7)
    sim.inject(w, sim.Fault(start=wed + 13 * 60, length=120, error_ratio=0.05), 7)
    sim.inject(w, sim.Fault(start=wed + 16 * 60, length=120, slow_ratio=0.08, slow_seconds=12.0), 7)
    return w, wed, wed + 19 * 60


def _agreement_case() -> tuple[dict[str, Any], dict[str, int]]:
    w, start, end = _incident_week()
    firing = bench.Emulator(w, load_config(env={})).run(start, end)
    expected: dict[str, int] = {}
    for key, minutes in firing.items():
        if not minutes:
            continue
        name, severity = key.split("/")[0], key.split("/")[-1]
        if name.startswith("DeletionErrorBudgetBurn"):
            window = key.split("/")[1]
            labels = (
                f'{{alertname="DeletionErrorBudgetBurn",long_window="{window}",'
                f'severity="{severity}"}}'
            )
        else:
            labels = f'{{alertname="{name}",severity="{severity}"}}'
        expected[labels] = len(minutes)
    case = sim.promtool_test(w, start, end, WARMUP, "emulator agrees with promtool")
    case["promql_expr_test"] = [
        {
            "expr": (
                "sum by (alertname, severity, long_window) (count_over_time("
                f'ALERTS{{alertstate="firing",{EMULATED},long_window!~"1d|3d"}}'
                f"[{end - start - 1}m]))"
            ),
            "eval_time": f"{end - 1 - (start - WARMUP)}m",
            "exp_samples": [{"labels": k, "value": v} for k, v in sorted(expected.items())],
        }
    ]
    return case, expected


def test_the_incident_stretch_pages() -> None:
    """The agreement stretch is not trivially quiet: the emulator pages for every incident."""
    _, expected = _agreement_case()
    assert any("critical" in k and "DeletionErrorRateHigh" in k for k in expected), expected
    assert any("critical" in k and "DeletionLatencyP95High" in k for k in expected), expected


def _run_all(files: list[Path]) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_promtool, files))
    failures = [
        f"{f.name}:\n{r.stdout}{r.stderr}"
        for f, r in zip(files, results, strict=True)
        if r.returncode
    ]
    assert not failures, "\n".join(failures)


def test_simulated_weeks_with_promtool(tmp_path: Path) -> None:
    """The most sensitive stretch (the deploy: the 48 h post-deploy ladder starts) of two seeds
    and of a tiny product, and the emulator's agreement with promtool."""
    cases = [_healthy_case(seed, sim.PRODUCTION, "healthy") for seed in (1, 2)]
    cases.append(_healthy_case(1, sim.TINY, "tiny"))
    agreement, _ = _agreement_case()
    files = [_write(tmp_path / f"{name}.test.yml", [case]) for name, case in cases]
    files.append(_write(tmp_path / "agreement.test.yml", [agreement]))
    _run_all(files)


@pytest.mark.weeks
@pytest.mark.parametrize(
    ("seed", "profile"), [(3, sim.PRODUCTION), (3, sim.TINY)], ids=["production", "tiny"]
)
def test_a_whole_healthy_week_with_promtool(tmp_path: Path, seed: int, profile: Any) -> None:
    """A whole healthy week (Monday to Sunday: peaks, nights, the weekend, the deploy and its
    48 h) at 1-minute resolution through the real rules: no critical alert fires. promtool's
    engine refuses a query over ~10 000 samples (the 3 d burn-rate windows of 1-minute samples
    would pass it), so the week is checked in seven day parts, each with six hours of warm-up
    for the 6 h windows: about 4 min of CPU, hence its own marker (`make test-weeks`)."""
    w = sim.healthy_week(seed, profile)
    files = []
    for start in range(0, w.minutes, sim.DAY):
        end = min(start + sim.DAY, w.minutes)
        case = sim.promtool_test(w, start, end, WARMUP, f"seed {seed}: minutes {start}-{end}")
        files.append(
            _write(tmp_path / f"day-{start // sim.DAY}.test.yml", [_no_critical(case, start, end)])
        )
    _run_all(files)


def test_emulated_healthy_weeks_page_nobody() -> None:
    """A few dozen emulated healthy weeks (the bench runs 200): no page, production or tiny."""
    config = load_config(env={})
    paged, by_alert = bench.healthy(12, sim.PRODUCTION, config, seed0=2000)
    assert paged == 0, by_alert
    paged, by_alert = bench.healthy(6, sim.TINY, config, seed0=2000)
    assert paged == 0, by_alert
