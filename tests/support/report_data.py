"""Two weeks of exporter series with every increment known, for the report and watch tests.

Generated here, backfilled with `promtool tsdb create-blocks-from openmetrics` and served by a
real `prometheus` (serve_backfill). Week A ("troubled", ends at END - 7d) is built so that every
recommendation rule's condition holds; week B ("calm", ends at END) so that none does. Expected
figures are recomputed from the generator's own increments, never copied from the code under
test. Smaller jobs next to them: an exporter restarted on the last day (a counter reset), two
first scraped a day before END (with and without history), one whose only failures are refused
callers, and BRIEF_JOB: six minutes of data in which every deletion took exactly 6.5 s (the
case of issue 17: "per day 96.57", "19:00 carries 24x the mean", "p95 7.34 s").
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deletion_monitor.reports import figures
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http

STEP = 300
WEEK = 7 * 86400
DAY = 86400
# The data ends at END_HOUR:00 UTC, at least an hour in the past, and starts 14 days earlier.
# A fixed hour of the day, not "the last hour boundary": the figures the tests build on (the last
# hour of a week, a day's peak) depend on which hours of the daily profile fall in the range, so
# a moving END made the suite pass or fail by the time of day it ran (it failed when the last
# hour of the troubled week was PEAK_HOUR, at 16:xx UTC).
END_HOUR = 13


def _end(now: float) -> int:
    day = int(now) // 86400 * 86400
    end = day + END_HOUR * 3600
    return end if end <= now - 3600 else end - 86400


END = _end(time.time())
START = END - 2 * WEEK
A_END = END - WEEK  # end of the troubled week
# Reports are evaluated half a step after the last sample, as on a real server where scrapes
# never line up with the query time: increase() would extrapolate there, exact counts must not.
A_AT = A_END + STEP // 2
B_AT = END + STEP // 2
PEAK_HOUR = 14  # UTC hour that carries the troubled week's extra load
USER_TYPES = ("CLIENT", "VENDOR", "DRIVER")
BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30]
RESET_JOB = 'job="restarted-exporter"'
LATE_JOB = 'job="late-exporter"'
FRESH_JOB = 'job="fresh-exporter"'
# A job whose only failures are refused unauthorised callers (3 of 10 deletions a step).
REFUSED_JOB = 'job="refused-exporter"'
LATE_HISTORY = 1000
RESET_AT_STEP = 144  # the restarted job's counter drops to 0 after this step of the last day
# Six minutes of data from BRIEF_START, one sample a minute, every deletion exactly 6.5 s.
BRIEF_JOB = 'job="brief-exporter"'
BRIEF_START = END - 5 * 3600
BRIEF_TOTAL = 676
BRIEF_SECONDS = 6.5
BRIEF_HOUR = f"{dt.datetime.fromtimestamp(BRIEF_START, dt.UTC).hour:02d}"
BRIEF_WEEKDAY = figures.WEEKDAYS[dt.datetime.fromtimestamp(BRIEF_START, dt.UTC).weekday()]


# The brief job's integrity exporter: orphaned sessions over the same six minutes, one sample a
# minute (the compliance chart's points over a range the data barely covers).
BRIEF_INTEGRITY_JOB = 'job="brief-integrity"'
BRIEF_ORPHANS = [0, 0, 2, 3, 3, 1, 0]


def brief_samples() -> list[tuple[int, int]]:
    """(time, cumulative deletions) of the brief job: 0 at BRIEF_START, 676 six minutes on."""
    per_minute = [113, 113, 113, 113, 112, 112]
    out, total = [(BRIEF_START, 0)], 0
    for k, n in enumerate(per_minute, 1):
        total += n
        out.append((BRIEF_START + 60 * k, total))
    return out


FAIL_SECONDS = {"authorization": 0.08, "timeout": 10.0, "unknown": 0.2, "business_logic": 0.15}


@dataclass
class Step:
    """What happened in (t - STEP, t]."""

    t: int
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    # (outcome, user_type, seconds, count)
    observations: list[tuple[str, str, float, int]] = field(default_factory=list)
    complex_obs: list[tuple[float, int]] = field(default_factory=list)
    audited: int = 0
    audit_failures: int = 0
    forbidden: int = 0
    gauges: dict[str, float] = field(default_factory=dict)
    alert_firing: bool = False

    @property
    def hour(self) -> str:
        return f"{dt.datetime.fromtimestamp(self.t - STEP, dt.UTC).hour:02d}"

    @property
    def weekday(self) -> str:
        return figures.WEEKDAYS[dt.datetime.fromtimestamp(self.t - STEP, dt.UTC).weekday()]

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def make_step(t: int) -> Step:
    s = Step(t)
    troubled = t <= A_END
    seg_start = START if troubled else A_END
    i = (t - seg_start) // STEP  # 1-based index inside the week
    day = (t - seg_start - STEP) // DAY  # 0..6, aligned with the report's 24 h windows
    hour = int(s.hour)
    s.gauges = {
        "memory": 400e6,
        "limit": 1e9,
        "pool_in_use": 4,
        "pool_max": 20,
        "orphans": 0,
        "audit_gaps": 0,
    }
    if troubled:
        driver = 1 + day  # growing volume: the capacity-growth rule
        client = 3 + (25 if hour == PEAK_HOUR else 0)  # the peak-hour rules
        s.requests = {"CLIENT": client, "VENDOR": 2, "DRIVER": driver}
        fails: dict[tuple[str, str], int] = {}
        # Five failures an hour: 2 timeouts, 2 authorization, 1 unknown (shares 40/40/20 %).
        phase = i % 12
        if phase in (1, 7):
            fails[("VENDOR", "timeout")] = 1
        if phase in (3, 9):
            fails[("CLIENT", "authorization")] = 1
        if phase == 5:
            fails[("DRIVER", "unknown")] = 1
        s.failures = fails
        vendor_seconds = 7.0 if day <= 2 else 0.3  # slow vendors early: p95 above target
        speeds = {"CLIENT": 0.3, "VENDOR": vendor_seconds, "DRIVER": 2.2}
        if phase == 0:
            s.complex_obs = [(9.0, 1)]  # complex deletions far above the p95 target
        if day == 1:
            s.gauges["memory"] = 850e6
            s.alert_firing = True
        if day == 2:
            s.gauges["orphans"] = 3
        if day == 4:
            s.gauges["audit_gaps"] = 1
        if day == 3 and i % 288 == 10:
            s.audit_failures = 1
        if day == 5 and i % 288 == 20:
            s.forbidden = 1
    else:
        s.requests = {"CLIENT": 3, "VENDOR": 2, "DRIVER": 1}
        # One business-logic failure every 20 h, never in the last hour of the week.
        s.failures = {("CLIENT", "business_logic"): 1} if i % 240 == 120 else {}
        speeds = {"CLIENT": 0.3, "VENDOR": 0.3, "DRIVER": 0.3}
        if i % 12 == 0:
            s.complex_obs = [(1.2, 1)]
    if i % 12 == 0:
        s.audited = 1
    failed_by_type: dict[str, int] = defaultdict(int)
    for (ut, et), n in s.failures.items():
        failed_by_type[ut] += n
        s.observations.append(("failure", ut, FAIL_SECONDS[et], n))
    for ut, n in s.requests.items():
        ok = n - failed_by_type[ut]
        if ok:
            s.observations.append(("success", ut, speeds[ut], ok))
    return s


STEPS = [make_step(t) for t in range(START + STEP, END + 1, STEP)]


def in_window(at: int, seconds: int) -> list[Step]:
    return [s for s in STEPS if at - seconds < s.t <= at]


def bucket_index(seconds: float) -> int:
    for idx, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return idx
    return len(BUCKETS)


def quantile_bounds(obs: list[tuple[float, int]], q: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] that holds quantile q of the observations."""
    counts = [0] * (len(BUCKETS) + 1)
    for seconds, n in obs:
        counts[bucket_index(seconds)] += n
    rank = q * sum(counts)
    cum = 0
    for idx, c in enumerate(counts):
        cum += c
        if cum >= rank and c:
            lower = BUCKETS[idx - 1] if idx else 0.0
            return lower, BUCKETS[idx] if idx < len(BUCKETS) else math.inf
    raise AssertionError("no observations")


# --------------------------------------------------------------------------------------------
# OpenMetrics file


def openmetrics(cfg: dict[str, Any]) -> str:
    audit, integ, app = (
        cfg["auditExporterSelector"],
        cfg["integrityExporterSelector"],
        cfg["appSelector"],
    )
    families: dict[str, tuple[str, dict[str, list[tuple[int, float]]]]] = {}

    def add(family: str, kind: str, series: str, t: int, value: float) -> None:
        families.setdefault(family, (kind, defaultdict(list)))[1][series].append((t, value))

    cum: dict[str, float] = defaultdict(float)
    hist: dict[tuple[str, str], list[int]] = {
        (o, ut): [0] * (len(BUCKETS) + 1) for o in ("success", "failure") for ut in USER_TYPES
    }
    hist_sum: dict[tuple[str, str], float] = defaultdict(float)
    cx = [0] * (len(BUCKETS) + 1)
    cx_sum = 0.0
    fail_keys = sorted({k for s in STEPS for k in s.failures})
    first = Step(START)
    for s in [first, *STEPS]:
        t = s.t
        for ut in USER_TYPES:
            cum[f"req{ut}"] += s.requests.get(ut, 0)
            add(
                "deletion_requests",
                "counter",
                f'deletion_requests_total{{{audit},user_type="{ut}"}}',
                t,
                cum[f"req{ut}"],
            )
        for ut, et in fail_keys:
            cum[f"f{ut}{et}"] += s.failures.get((ut, et), 0)
            add(
                "deletion_failures",
                "counter",
                f'deletion_failures_total{{{audit},user_type="{ut}",error_type="{et}"}}',
                t,
                cum[f"f{ut}{et}"],
            )
        for outcome, ut, seconds, n in s.observations:
            hist[(outcome, ut)][bucket_index(seconds)] += n
            hist_sum[(outcome, ut)] += seconds * n
        for (outcome, ut), counts in hist.items():
            labels = f'{audit},outcome="{outcome}",user_type="{ut}"'
            running = 0
            for idx, c in enumerate(counts):
                running += c
                le = f"{BUCKETS[idx]}" if idx < len(BUCKETS) else "+Inf"
                add(
                    "deletion_duration_seconds",
                    "histogram",
                    f'deletion_duration_seconds_bucket{{{labels},le="{le}"}}',
                    t,
                    running,
                )
            add(
                "deletion_duration_seconds",
                "histogram",
                f"deletion_duration_seconds_sum{{{labels}}}",
                t,
                hist_sum[(outcome, ut)],
            )
            add(
                "deletion_duration_seconds",
                "histogram",
                f"deletion_duration_seconds_count{{{labels}}}",
                t,
                running,
            )
        for seconds, n in s.complex_obs:
            cx[bucket_index(seconds)] += n
            cx_sum += seconds * n
        running = 0
        name = "deletion_large_cascade_duration_seconds"
        for idx, c in enumerate(cx):
            running += c
            le = f"{BUCKETS[idx]}" if idx < len(BUCKETS) else "+Inf"
            add(name, "histogram", f'{name}_bucket{{{audit},le="{le}"}}', t, running)
        add(name, "histogram", f"{name}_sum{{{audit}}}", t, cx_sum)
        add(name, "histogram", f"{name}_count{{{audit}}}", t, running)
        if s is not first:
            cum[f"h{s.hour}"] += s.total
            cum[f"w{s.weekday}"] += s.total
        for h in figures.HOURS:
            add(
                "deletion_requests_by_hour",
                "counter",
                f'deletion_requests_by_hour_total{{{audit},hour="{h}"}}',
                t,
                cum[f"h{h}"],
            )
        for d in figures.WEEKDAYS:
            add(
                "deletion_requests_by_weekday",
                "counter",
                f'deletion_requests_by_weekday_total{{{audit},weekday="{d}"}}',
                t,
                cum[f"w{d}"],
            )
        cum["forbidden"] += s.forbidden
        add(
            "deletion_forbidden_successes",
            "counter",
            f'deletion_forbidden_successes_total{{{audit},kind="self_deletion"}}',
            t,
            cum["forbidden"],
        )
        cum["audited"] += s.audited
        cum["audit_failures"] += s.audit_failures
        add(
            "deletion_completeness_audited",
            "counter",
            f"deletion_completeness_audited_total{{{integ}}}",
            t,
            cum["audited"],
        )
        add(
            "deletion_completeness_failures",
            "counter",
            f"deletion_completeness_failures_total{{{integ}}}",
            t,
            cum["audit_failures"],
        )
        g = s.gauges or make_step(START + STEP).gauges
        viol = "deletion_integrity_violations"
        add(
            viol,
            "gauge",
            f'{viol}{{{integ},check="orphaned_sessions",category="foreign_key",'
            f'severity="warning"}}',
            t,
            g["orphans"],
        )
        add(
            viol,
            "gauge",
            f'{viol}{{{integ},check="audit_trail_gaps",category="audit_trail",severity="warning"}}',
            t,
            g["audit_gaps"],
        )
        add(
            "deletion_integrity_check_up",
            "gauge",
            f'deletion_integrity_check_up{{{integ},check="orphaned_sessions"}}',
            t,
            1,
        )
        for metric, key in (
            (cfg["appMemoryMetric"], "memory"),
            (cfg["appMemoryLimitMetric"], "limit"),
            (cfg["appPoolInUseMetric"], "pool_in_use"),
            (cfg["appPoolMaxMetric"], "pool_max"),
        ):
            add(metric, "gauge", f"{metric}{{{app}}}", t, g[key])
        service = cfg["serviceName"]
        add(
            "ALERTS",
            "gauge",
            f'ALERTS{{alertname="Watchdog",alertstate="firing",severity="info",'
            f'service="{service}"}}',
            t,
            1,
        )
        if s.alert_firing:
            add(
                "ALERTS",
                "gauge",
                f'ALERTS{{alertname="DeletionErrorRateHigh",alertstate="firing",'
                f'severity="warning",service="{service}"}}',
                t,
                1,
            )
    # A separate job whose exporter restarted half-way through the last day (counter reset).
    reset_series = f'deletion_requests_total{{{RESET_JOB},user_type="CLIENT"}}'
    for k in range(DAY // STEP + 1):
        value = 2 * k if k <= RESET_AT_STEP else 2 * (k - RESET_AT_STEP)
        add("deletion_requests", "counter", reset_series, END - DAY + k * STEP, value)
    # Two jobs first scraped one day before END: one whose counter already held 1000
    # deletions of history, one that started from 0. Each has its first timeout ever 12 h
    # before END.
    for job, history in ((LATE_JOB, LATE_HISTORY), (FRESH_JOB, 0)):
        late_req = f'deletion_requests_total{{{job},user_type="CLIENT"}}'
        late_fail = f'deletion_failures_total{{{job},user_type="CLIENT",error_type="timeout"}}'
        for k in range(DAY // STEP + 1):
            t = END - DAY + k * STEP
            add("deletion_requests", "counter", late_req, t, history + 2 * k)
            if t >= END - DAY // 2:
                add("deletion_failures", "counter", late_fail, t, 1)
    refused_req = f'deletion_requests_total{{{REFUSED_JOB},user_type="CLIENT"}}'
    refused_fail = (
        f'deletion_failures_total{{{REFUSED_JOB},user_type="CLIENT",error_type="authorization"}}'
    )
    for k in range(DAY // STEP + 1):
        t = END - DAY + k * STEP
        add("deletion_requests", "counter", refused_req, t, 10 * k)
        add("deletion_failures", "counter", refused_fail, t, 3 * k)

    # Six minutes of data, 5 h before END: 676 deletions, every one a success of exactly
    # BRIEF_SECONDS (one histogram bucket), all in one hour of day; the brief integrity job's
    # orphan counts over the same minutes.
    for (t, n), orphans in zip(brief_samples(), BRIEF_ORPHANS, strict=True):
        add(
            "deletion_integrity_violations",
            "gauge",
            f'deletion_integrity_violations{{{BRIEF_INTEGRITY_JOB},check="orphaned_sessions",'
            f'category="foreign_key",severity="warning"}}',
            t,
            orphans,
        )
        b = f'{BRIEF_JOB},user_type="CLIENT"'
        add("deletion_requests", "counter", f"deletion_requests_total{{{b}}}", t, n)
        add(
            "deletion_requests_by_hour",
            "counter",
            f'deletion_requests_by_hour_total{{{BRIEF_JOB},hour="{BRIEF_HOUR}"}}',
            t,
            n,
        )
        add(
            "deletion_requests_by_weekday",
            "counter",
            f'deletion_requests_by_weekday_total{{{BRIEF_JOB},weekday="{BRIEF_WEEKDAY}"}}',
            t,
            n,
        )
        labels = f'{BRIEF_JOB},outcome="success",user_type="CLIENT"'
        for idx in range(len(BUCKETS) + 1):
            le = f"{BUCKETS[idx]}" if idx < len(BUCKETS) else "+Inf"
            value = n if idx >= bucket_index(BRIEF_SECONDS) else 0
            add(
                "deletion_duration_seconds",
                "histogram",
                f'deletion_duration_seconds_bucket{{{labels},le="{le}"}}',
                t,
                value,
            )
        add(
            "deletion_duration_seconds",
            "histogram",
            f"deletion_duration_seconds_sum{{{labels}}}",
            t,
            BRIEF_SECONDS * n,
        )
        add(
            "deletion_duration_seconds",
            "histogram",
            f"deletion_duration_seconds_count{{{labels}}}",
            t,
            n,
        )
    lines = []
    for family, (kind, series) in families.items():
        lines.append(f"# TYPE {family} {kind}")
        for name, points in series.items():
            lines.extend(f"{name} {v!r} {t}" for t, v in points)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@contextmanager
def serve_backfill(work: Path, cfg: dict[str, Any]) -> Iterator[str]:
    """Backfill the generated data into a TSDB under `work` and serve it with a real
    prometheus on 127.0.0.1; yields its URL."""
    promtool = require_binary("promtool")
    binary = require_binary("prometheus")
    om = work / "data.om"
    om.write_text(openmetrics(cfg))
    data = work / "tsdb"
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            "--max-block-duration=400h",
            str(om),
            str(data),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    om.unlink()
    (work / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    port = free_port()
    proc = ManagedProcess(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            # The data is at most 15 days old; retention must keep it (and the compliance
            # report shows this running value).
            "--storage.tsdb.retention.time=400d",
        ],
        work / "prometheus.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60)
        yield url
    finally:
        proc.stop()


def totals(steps: list[Step]) -> tuple[int, int]:
    return sum(s.total for s in steps), sum(sum(s.failures.values()) for s in steps)


def errors(steps: list[Step], user_type: str | None = None) -> int:
    """Failures that count as errors: refused unauthorised callers do not (config
    errorRate.excludedErrorTypes)."""
    return sum(
        n
        for s in steps
        for (ut, et), n in s.failures.items()
        if et != "authorization" and user_type in (None, ut)
    )


def all_obs(steps: list[Step], user_type: str | None = None) -> list[tuple[float, int]]:
    return [
        (sec, n)
        for s in steps
        for _, ut, sec, n in s.observations
        if user_type is None or ut == user_type
    ]


def within(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]
