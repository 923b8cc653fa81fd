"""Detection benchmark: how often healthy weeks page, and how fast real incidents do.

A small emulator of the error-rate, post-deploy, burn-rate and p95 rules (the numbers come from
config.libsonnet through load_config) runs over weeks drawn by tests/rules/simulate.py at
1-minute resolution, as Prometheus evaluates them: counts over [t - w, t] of counters sampled every
minute (no rate() extrapolation then), `for`, `keep_firing_for`. tests/rules/test_simulation.py
checks the emulator against promtool on the same series (the firing minutes of every alert level
must agree), so the figures here are the rules' figures.

    .venv/bin/python bench/bench_detection.py              # 200 healthy weeks + incident table
    .venv/bin/python bench/bench_detection.py --weeks 50 --runs 10

Prints two tables (docs/alerting.md "Detection" records them).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "rules"))
sys.path.insert(0, str(REPO / "exporters"))

import simulate as sim  # noqa: E402

from deletion_monitor.common.config import load_config  # noqa: E402

MIN = {"5m": 5, "30m": 30, "1h": 60, "2h": 120, "6h": 360, "1d": 1440, "3d": 4320}


def _g(x: float) -> float:
    """A constant as the rules render it (%.12g)."""
    return float(f"{x:.12g}")


def wilson_lower(f: float, n: float, z: float) -> float:
    z2 = _g(z * z)
    return (f + _g(z2 / 2) - z * math.sqrt(f * max(n - f, 0) / n + _g(z2 / 4))) / (n + z2)


@dataclass
class Rule:
    name: str
    severity: str
    for_min: int
    keep_min: int
    cond: Any  # function(t, firing at the previous evaluation) -> bool


class Alert:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.state = "inactive"
        self.active_at = 0
        self.keep_since: int | None = None

    def step(self, t: int) -> bool:
        """Evaluate at minute t; True if firing afterwards."""
        r = self.rule
        if r.cond(t, self.state == "firing"):
            self.keep_since = None
            if self.state == "inactive":
                self.state, self.active_at = "pending", t
            if self.state == "pending" and t - self.active_at >= r.for_min:
                self.state = "firing"
        elif self.state == "firing" and r.keep_min > 0:
            if self.keep_since is None:
                self.keep_since = t
            if t - self.keep_since >= r.keep_min:
                self.state = "inactive"
        else:
            self.state = "inactive"
        return self.state == "firing"


class Emulator:
    """The rules over one simulated Week."""

    def __init__(self, w: sim.Week, config: dict[str, Any]) -> None:
        self.w, self.c = w, config
        counted = [t for t in sim.ERROR_TYPES if t not in config["errorRate"]["excludedErrorTypes"]]
        self.req = self._cum(w.requests)
        self.fail = self._cum([sum(w.failures[t][m] for t in counted) for m in range(w.minutes)])
        self.obs = self.req
        lat = config["latency"]
        self.levels = sorted({lat["info"], lat["warning"], lat["critical"]})
        self.slow = {
            t: self._cum([sum(b[sim.bucket_index(t) + 1 :]) for b in w.buckets])
            for t in self.levels
        }
        self.rules = self._rules()

    @staticmethod
    def _cum(xs: list[float]) -> list[float]:
        out, acc = [], 0.0
        for x in xs:
            acc += x
            out.append(acc)
        return out

    @staticmethod
    def _inc(cum: list[float], t: int, w: int) -> float:
        return cum[t] - cum[t - w] if t >= w else cum[t]

    def post_deploy(self, t: int) -> bool:
        d = self.w.deploy_minute
        return d is not None and d <= t and (t - d) * 60 < self.c["postDeploy"]["window"]

    def _proven_ratio(self, t: int, thr: float, firing: bool) -> bool:
        er = self.c["errorRate"]
        mf = er["minFailures"]
        n5, f5 = self._inc(self.req, t, 5), self._inc(self.fail, t, 5)
        if n5 > 0 and f5 / n5 > thr and f5 >= mf["fast"] - 0.5:
            return True
        if n5 >= _g(mf["fast"] / thr - 0.5) and f5 / n5 <= thr:
            return False  # the 5m window decides
        for w in er["evidenceWindows"]:
            n, f = self._inc(self.req, t, MIN[w]), self._inc(self.fail, t, MIN[w])
            if n == 0:
                continue
            sw = MIN[er["confirmWindows"][w]]
            ns, fs = self._inc(self.req, t, sw), self._inc(self.fail, t, sw)
            if ns > 0 and fs / ns <= thr:
                continue  # the confirming window contradicts
            if f >= mf["significant"] - 0.5 and wilson_lower(f, n, er["significanceZ"]) > _g(thr):
                return True
            if f >= mf["majority"] - 0.5 and f / n > max(thr, er["majorityRatio"]):
                return True
        if firing:
            n, f = (
                self._inc(self.req, t, MIN[er["hysteresisWindow"]]),
                self._inc(self.fail, t, MIN[er["hysteresisWindow"]]),
            )
            if n > 0 and f / n > thr and f >= mf["majority"] - 0.5:
                return True
        return False

    def _proven_slow(self, t: int, level: float, firing: bool) -> bool:
        lat, z = self.c["latency"], self.c["errorRate"]["significanceZ"]
        n, s = self._inc(self.obs, t, 5), self._inc(self.slow[level], t, 5)
        if n > 0 and s > 0.05 * n and s >= lat["minSlow"] - 0.5:
            return True
        for w in lat["evidenceWindows"]:
            n, s = self._inc(self.obs, t, MIN[w]), self._inc(self.slow[level], t, MIN[w])
            sw = MIN[lat["confirmWindows"][w]]
            ns, ss = self._inc(self.obs, t, sw), self._inc(self.slow[level], t, sw)
            if ns > 0 and ss <= 0.05 * ns:
                continue  # the confirming window's p95 is at or below the level
            if n > 0 and s >= lat["minSlowEvidence"] - 0.5 and wilson_lower(s, n, z) > 0.05:
                return True
        if firing:
            hw = MIN[lat["hysteresisWindow"]]
            n, s = self._inc(self.obs, t, hw), self._inc(self.slow[level], t, hw)
            if n > 0 and s > 0.05 * n and s >= lat["minSlowEvidence"] - 0.5:
                return True
        return False

    def _burn(self, t: int, br: dict[str, Any]) -> bool:
        c, er = self.c, self.c["errorRate"]
        thr = _g(br["factor"] * (1 - c["slo"]["target"]))
        lw, sw = MIN[br["long"]], MIN[br["short"]]
        n, f = self._inc(self.req, t, lw), self._inc(self.fail, t, lw)
        ns, fs = self._inc(self.req, t, sw), self._inc(self.fail, t, sw)
        guard = _g(max(c["minRequestRate"], c["minRequestsPerWindow"] / (lw * 60)))
        if not (n > 0 and ns > 0 and f / n > thr and fs / ns > thr and n / (lw * 60) >= guard):
            return False
        mf = er["minFailures"]
        return (
            f >= mf["fast"] - 0.5
            or (f >= mf["significant"] - 0.5 and wilson_lower(f, n, er["significanceZ"]) > thr)
            or (f >= mf["majority"] - 0.5 and f / n > max(thr, er["majorityRatio"]))
        )

    def _rules(self) -> list[Rule]:
        c, er, pd, lat = self.c, self.c["errorRate"], self.c["postDeploy"], self.c["latency"]
        keep, lkeep = er["keepFiringFor"] // 60, lat["keepFiringFor"] // 60
        rules = [
            Rule(
                "DeletionErrorRateHigh",
                s,
                er["duration"][s] // 60 - 5,
                keep,
                lambda t, f, thr=er[s]: self._proven_ratio(t, thr, f) and not self.post_deploy(t),
            )
            for s in ("info", "warning", "critical")
        ]
        rules += [
            Rule(
                "DeletionErrorRatePostDeploy",
                s,
                dur // 60 - 5,
                keep,
                lambda t, f, thr=thr: self._proven_ratio(t, thr, f) and self.post_deploy(t),
            )
            for s, thr, dur in (
                ("warning", pd["errorRateWarning"], pd["errorRateWarningFor"]),
                ("critical", pd["errorRateCritical"], pd["errorRateCriticalFor"]),
            )
        ]
        rules += [
            Rule(
                f"DeletionErrorBudgetBurn/{br['long']}",
                br["severity"],
                br["for"] // 60,
                0,
                lambda t, f, br=br: self._burn(t, br),
            )
            for br in c["slo"]["burnRates"]
            if MIN[br["long"]] <= 360
        ]
        rules += [
            Rule(
                "DeletionLatencyP95High",
                s,
                lat["duration"][s] // 60 - 5,
                lkeep,
                lambda t, f, lv=lat[s]: self._proven_slow(t, lv, f),
            )
            for s in ("info", "warning", "critical")
        ]
        return rules

    def run(self, start: int, end: int) -> dict[str, list[int]]:
        """Firing minutes of every rule ('name/severity') over [start, end); evaluation starts
        at max(0, start - 360) so that every window is warm."""
        alerts = [Alert(r) for r in self.rules]
        out: dict[str, list[int]] = {f"{r.name}/{r.severity}": [] for r in self.rules}
        for t in range(max(0, start - 360), end):
            for a in alerts:
                if a.step(t) and t >= start:
                    out[f"{a.rule.name}/{a.rule.severity}"].append(t)
        return out


def pages(firing: dict[str, list[int]], config: dict[str, Any]) -> list[int]:
    return sorted({t for k, ts in firing.items() if k.endswith("/critical") for t in ts})


def healthy(
    weeks: int, profile: sim.Profile, config: dict[str, Any], seed0: int = 1000
) -> tuple[int, dict[str, int]]:
    paged, by_alert = 0, {}
    for i in range(weeks):
        w = sim.healthy_week(seed0 + i, profile)
        firing = Emulator(w, config).run(360, w.minutes)
        crit = {k for k, ts in firing.items() if ts and k.endswith("/critical")}
        for k in {k for k, ts in firing.items() if ts}:
            by_alert[k] = by_alert.get(k, 0) + 1
        paged += bool(crit)
    return paged, by_alert


@dataclass
class Case:
    name: str
    fault: dict[str, Any]
    traffic: float | None  # deletions/min (None: the diurnal week)
    onset: int  # minute of the week (diurnal) or of the stretch
    severity: str = "critical"
    deploy: bool = False


def incident(case: Case, runs: int, config: dict[str, Any]) -> dict[str, Any]:
    times, held = [], 0
    length = case.fault.get("length", 600)
    for r in range(runs):
        seed = 5000 + r
        if case.traffic is None:
            w = sim.healthy_week(seed, deploy=False)
        else:
            w = sim.constant_traffic(seed, case.traffic, case.onset + length + 60)
        onset = case.onset + (r % 4) * 7  # vary the phase against the minute grid
        f = sim.Fault(start=onset, traffic=case.traffic, **{**case.fault, "length": length})
        sim.inject(w, f, seed)
        firing = Emulator(w, config).run(onset - 1, onset + length)
        keys = [k for k in firing if k.split("/")[-1] == case.severity]
        first = min((ts[0] for k in keys if (ts := firing[k])), default=None)
        if first is None:
            continue
        times.append(first - onset + 1)  # minutes from the fault's first minute to the alert
        fired = sorted({t for k in keys for t in firing[k]})
        if fired and fired[-1] - fired[0] + 1 == len(fired) and fired[-1] == onset + length - 1:
            held += 1
    return {
        "case": case.name,
        "detected": f"{len(times)}/{runs}",
        "median_min": statistics.median(times) if times else None,
        "p90_min": sorted(times)[int(0.9 * (len(times) - 1))] if times else None,
        "held": f"{held}/{len(times)}" if times else "-",
    }


def cases() -> list[Case]:
    day, night = 2 * sim.DAY + 13 * 60, 2 * sim.DAY + 60  # Wednesday 13:00 / 01:00
    out = []
    for per_min, label in ((3, "3/min"), (60, "1/s"), (300, "5/s")):
        out.append(
            Case(f"5 % errors at {label}", {"error_ratio": 0.05, "length": 720}, per_min, 400)
        )
    out += [
        Case(
            "1.1 % errors at 5/s (warning, >1 % for 10 min)",
            {"error_ratio": 0.011, "length": 60},
            300,
            400,
            "warning",
        ),
        Case(
            "2.5 % errors at 5/s (critical, >2 % for 5 min)",
            {"error_ratio": 0.025, "length": 60},
            300,
            400,
        ),
        Case("50 % errors at 5/s", {"error_ratio": 0.5, "length": 60}, 300, 400),
        Case("total outage by day (diurnal, 13:00)", {"error_ratio": 1.0, "length": 60}, None, day),
        Case(
            "total outage by night (diurnal, 01:00)",
            {"error_ratio": 1.0, "length": 60},
            None,
            night,
        ),
        Case(
            "total outage at 1 deletion / 20 min (Poisson)",
            {"error_ratio": 1.0, "length": 60},
            0.05,
            400,
        ),
        Case(
            "total outage, exactly 1 deletion / 20 min",
            {"error_ratio": 1.0, "length": 60, "regular": True},
            0.05,
            400,
        ),
        Case(
            "p95 at 7 s by day (warning)",
            {"latency_scale": 7 / 0.9, "length": 240},
            None,
            day,
            "warning",
        ),
        Case("p95 at 12 s by day", {"latency_scale": 12 / 0.9, "length": 240}, None, day),
        Case("p95 at 12 s at 5/s", {"latency_scale": 12 / 0.9, "length": 60}, 300, 400),
        Case("p95 at 25 s at 5/s", {"latency_scale": 25 / 0.9, "length": 60}, 300, 400),
        Case(
            "10 % timeouts (30 s) by day",
            {
                "error_ratio": 0.10,
                "error_type": "timeout",
                "slow_ratio": 0.10,
                "slow_seconds": 29.5,
                "length": 240,
            },
            None,
            day,
        ),
    ]
    return out


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = [" | ".join(k.ljust(widths[k]) for k in keys)]
    lines.append("-+-".join("-" * widths[k] for k in keys))
    lines += [" | ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=200, help="healthy weeks per profile")
    parser.add_argument("--runs", type=int, default=20, help="runs per incident case")
    args = parser.parse_args(argv)
    config = load_config(env={})
    rows = []
    for label, profile in (
        ("production (peak 3/min, one deploy)", sim.PRODUCTION),
        ("tiny product (5/day)", sim.TINY),
    ):
        paged, by_alert = healthy(args.weeks, profile, config)
        rows.append(
            {
                "healthy weeks": label,
                "weeks paged": f"{paged}/{args.weeks}",
                "alerts fired (weeks)": ", ".join(f"{k}:{v}" for k, v in sorted(by_alert.items()))
                or "none",
            }
        )
    print(table(rows), flush=True)
    print()
    print("Detection, minutes from the fault's first minute to the first alert of the severity:")
    print(table([incident(c, args.runs, config) | {"severity": c.severity} for c in cases()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
