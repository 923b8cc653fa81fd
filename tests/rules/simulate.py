"""Seeded traffic simulator: raw audit-exporter series at 1-minute resolution, as promtool input.

A week is a list of per-minute event counts (deletions, failures per error_type, a duration
histogram, the deploy marker) drawn from a seeded generator:

- diurnal traffic peaking at ``peak`` deletions/min in the afternoon (UTC), quiet nights
  (``night`` deletions/min), weekends at 40 %;
- sporadic ordinary failures (``failure_ratio``, 0.3 %: database, business_logic, timeout);
- a few forged tokens a day (authorization failures: excluded from the error ratio);
- deletion times log-normal around 0.4 s (p95 ~ 1 s) with rare outliers (8-30 s; an outlier
  beyond 25 s is a timeout failure);
- one deploy a week (a new ``app_version`` first seen), which starts the 48 h post-deploy phase.

``Week.inject(...)`` adds an incident (error ratio, total outage, slow deletions) from a minute on.
``promtool_test(week, start, end, warmup)`` writes a promtool test of the raw series over
[start - warmup, end) that asserts no critical alert fired in [start, end): promtool's engine
refuses a query over ~10 000 samples, so a week is checked in parts (one day each, six hours of
warm-up for the 6 h windows; the 1 w anomaly records are info only).

Used by tests/rules/test_simulation.py (promtool, several seeds) and bench/bench_detection.py (an
emulator of the rules over hundreds of weeks). ``python tests/rules/simulate.py --seed 3 --out DIR``
writes one week's files for a look by hand.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

WEEK = 7 * 24 * 60
DAY = 24 * 60
BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30]
ERROR_TYPES = ["database", "business_logic", "timeout", "authorization"]
JOB = 'job="deletion-audit-exporter"'


def bucket_index(seconds: float) -> int:
    """Index of the first bucket whose upper bound holds `seconds` (len(BUCKETS) = +Inf)."""
    for i, le in enumerate(BUCKETS):
        if seconds <= le:
            return i
    return len(BUCKETS)


@dataclass
class Profile:
    peak: float = 3.0  # deletions/min at the afternoon peak (weekdays)
    night: float = 0.05  # deletions/min at night (1 per 20 min)
    weekend: float = 0.4  # weekend traffic relative to weekdays
    failure_ratio: float = 0.003  # ordinary failures (database, business_logic, timeout)
    forged_per_day: float = 4.0  # authorization refusals (forged tokens)
    median_seconds: float = 0.4
    sigma: float = 0.5
    outlier_ratio: float = 0.002  # deletions that take 8-30 s
    daily: float | None = None  # a tiny product: this many deletions a day, uniform


PRODUCTION = Profile()
TINY = Profile(daily=5.0)


def rate_per_minute(p: Profile, minute: int) -> float:
    if p.daily is not None:
        return p.daily / DAY
    day, m = divmod(minute % WEEK, DAY)
    hour = m / 60
    # 0 at 05:00 and 23:00, 1 at 14:00 (sin^2 bump), night floor under it.
    x = (hour - 5) / 18
    bump = math.sin(math.pi * x) ** 2 if 0 <= x <= 1 else 0.0
    scale = p.weekend if day >= 5 else 1.0
    return max(p.night, scale * p.peak * bump)


@dataclass
class Week:
    """Per-minute counts of one simulated stretch (minute 0 = Monday 00:00)."""

    minutes: int
    requests: list[int] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    buckets: list[list[int]] = field(default_factory=list)  # [minute][bucket] (non-cumulative)
    dur_sum: list[float] = field(default_factory=list)
    deploy_minute: int | None = None

    @classmethod
    def empty(cls, minutes: int) -> Week:
        return cls(
            minutes=minutes,
            requests=[0] * minutes,
            failures={t: [0] * minutes for t in ERROR_TYPES},
            buckets=[[0] * (len(BUCKETS) + 1) for _ in range(minutes)],
            dur_sum=[0.0] * minutes,
        )

    def add(self, minute: int, seconds: float, error_type: str | None) -> None:
        self.requests[minute] += 1
        if error_type is not None:
            self.failures[error_type][minute] += 1
        self.buckets[minute][bucket_index(seconds)] += 1
        self.dur_sum[minute] += seconds


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _duration(rng: random.Random, p: Profile) -> float:
    if rng.random() < p.outlier_ratio:
        return rng.uniform(8, 30)
    return rng.lognormvariate(math.log(p.median_seconds), p.sigma)


def healthy_week(
    seed: int, profile: Profile = PRODUCTION, minutes: int = WEEK, deploy: bool = True
) -> Week:
    rng = random.Random(seed)
    w = Week.empty(minutes)
    for m in range(minutes):
        for _ in range(_poisson(rng, rate_per_minute(profile, m))):
            seconds = _duration(rng, profile)
            if seconds > 25:
                w.add(m, seconds, "timeout")
            elif rng.random() < profile.failure_ratio:
                w.add(m, seconds, rng.choice(["database", "business_logic", "timeout"]))
            else:
                w.add(m, seconds, None)
        if rng.random() < profile.forged_per_day / DAY:
            w.add(m, 0.02, "authorization")
    if deploy:
        # A weekday deploy between 10:00 and 16:00.
        w.deploy_minute = rng.randrange(5) * DAY + rng.randrange(600, 960)
    return w


@dataclass
class Fault:
    """An incident from `start` (minute) for `length` minutes.

    error_ratio: share of deletions failing (error_type `error_type`); slow_ratio: share of
    deletions taking `slow_seconds`; traffic: deletions/min during the fault (None: the week's).
    """

    start: int
    length: int
    error_ratio: float = 0.0
    error_type: str = "database"
    slow_ratio: float = 0.0
    slow_seconds: float = 12.0
    traffic: float | None = None
    latency_scale: float = 1.0  # multiplies every duration (a p95 shift)
    regular: bool = False  # deletions exactly every 1/traffic minutes instead of Poisson


def inject(w: Week, fault: Fault, seed: int, profile: Profile = PRODUCTION) -> None:
    """Re-draw the minutes of `fault` with the fault applied."""
    rng = random.Random(seed * 7919 + fault.start)
    for m in range(fault.start, min(w.minutes, fault.start + fault.length)):
        w.requests[m] = 0
        for t in ERROR_TYPES:
            w.failures[t][m] = 0
        w.buckets[m] = [0] * (len(BUCKETS) + 1)
        w.dur_sum[m] = 0.0
        lam = fault.traffic if fault.traffic is not None else rate_per_minute(profile, m)
        if fault.regular and fault.traffic:
            every = max(1, round(1 / fault.traffic))
            count = 1 if (m - fault.start) % every == every - 1 else 0
        else:
            count = _poisson(rng, lam)
        for _ in range(count):
            seconds = _duration(rng, profile) * fault.latency_scale
            if rng.random() < fault.slow_ratio:
                seconds = fault.slow_seconds
            error = None
            if rng.random() < fault.error_ratio:
                error = fault.error_type
            elif rng.random() < profile.failure_ratio:
                error = "database"
            if error is None and seconds > 25:
                error = "timeout"
            w.add(m, min(seconds, 29.9), error)


def constant_traffic(
    seed: int, per_minute: float, minutes: int, profile: Profile = PRODUCTION
) -> Week:
    """A stretch of steady traffic (for detection times at 3/min, 1/s, 5/s)."""
    p = Profile(**{**profile.__dict__, "daily": per_minute * DAY})
    return healthy_week(seed, p, minutes=minutes, deploy=False)


# --- promtool files ---------------------------------------------------------------------------


def _cumulative(values: list[float]) -> list[float]:
    out, acc = [], 0.0
    for v in values:
        acc += v
        out.append(acc)
    return out


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.0f}" if float(v).is_integer() else f"{v:.6f}" for v in values)


def _le(i: int) -> str:
    return (
        "+Inf"
        if i == len(BUCKETS)
        else (f"{BUCKETS[i]:g}" if BUCKETS[i] % 1 else f"{BUCKETS[i]:.1f}")
    )


def input_series(
    w: Week, lo: int, hi: int, replicas: tuple[str, ...] = ("audit-0:9817",)
) -> list[dict[str, str]]:
    """Raw exporter series of minutes [lo, hi) as promtool input (time 0 = minute lo).

    Counters are cumulative from the week's start (their absolute value does not matter to
    rate()); the deploy marker is in seconds relative to minute lo.
    """
    series: list[dict[str, str]] = []

    def counter(name: str, labels: str, per_minute: list[float]) -> None:
        cum = _cumulative(per_minute)[lo:hi]
        for inst in replicas:
            series.append(
                {"series": f'{name}{{{JOB},instance="{inst}",{labels}}}', "values": _fmt(cum)}
            )

    counter("deletion_requests_total", 'user_type="CLIENT"', w.requests)
    for t in ERROR_TYPES:
        counter("deletion_failures_total", f'user_type="CLIENT",error_type="{t}"', w.failures[t])
    cum_buckets = [0.0] * w.minutes
    per_bucket = []
    for i in range(len(BUCKETS) + 1):
        col = [w.buckets[m][i] for m in range(w.minutes)]
        cum_buckets = [a + b for a, b in zip(cum_buckets, col, strict=True)]
        per_bucket.append(list(cum_buckets))
    for i in range(len(BUCKETS) + 1):
        counter(
            "deletion_duration_seconds_bucket",
            f'outcome="success",user_type="CLIENT",le="{_le(i)}"',
            per_bucket[i],  # deletions per minute at or below this bound
        )
    counter("deletion_duration_seconds_count", 'outcome="success",user_type="CLIENT"', w.requests)
    counter("deletion_duration_seconds_sum", 'outcome="success",user_type="CLIENT"', w.dur_sum)
    n = hi - lo
    marker = f'deletion_app_version_first_seen_timestamp_seconds{{{JOB},instance="{replicas[0]}"'
    series.append({"series": marker + ',app_version="1.0.0"}', "values": f"-9000000x{n - 1}"})
    if w.deploy_minute is not None and w.deploy_minute < hi:
        at = (w.deploy_minute - lo) * 60
        first = max(0, w.deploy_minute - lo)
        values = " ".join(["_"] * first + [str(at)] * (n - first))
        series.append({"series": marker + ',app_version="1.1.0"}', "values": values})
    return series


def promtool_test(w: Week, start: int, end: int, warmup: int, name: str) -> dict:
    """One promtool test case: raw series over [start - warmup, end), no critical alert fired
    at any evaluation in [start, end) (ALERTS series of the run, queried over the range)."""
    lo = max(0, start - warmup)
    span = end - 1 - lo
    checked = end - start
    return {
        "name": name,
        "interval": "1m",
        "input_series": input_series(w, lo, end),
        "promql_expr_test": [
            {
                "expr": f'count_over_time(ALERTS{{severity="critical"}}[{checked - 1}m])',
                "eval_time": f"{span}m",
                "exp_samples": [],
            }
        ],
    }


def week_test_file(
    w: Week, seed: int, rule_files: list[str], part: int = DAY, warmup: int = 360
) -> dict:
    tests = [
        promtool_test(
            w,
            s,
            min(s + part, w.minutes),
            warmup,
            f"seed {seed}: minutes {s}-{min(s + part, w.minutes)}",
        )
        for s in range(0, w.minutes, part)
    ]
    return {"rule_files": rule_files, "evaluation_interval": "1m", "tests": tests}


def main() -> int:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="a tiny product: 5 deletions a day")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    w = healthy_week(args.seed, TINY if args.tiny else PRODUCTION)
    repo = Path(__file__).resolve().parents[2]
    rules = [
        str(repo / "alert_rules" / f)
        for f in ("deletion-recording.rules.yml", "deletion-alerts.rules.yml")
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"week-{args.seed}{'-tiny' if args.tiny else ''}.test.yml"
    path.write_text(
        yaml.safe_dump(week_test_file(w, args.seed, rules), sort_keys=False, width=10**9)
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
