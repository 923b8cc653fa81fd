"""The figures of every report: PromQL built from the config, the queries, the numbers.

Every figure is computed here from the exporters' raw series (deletion_requests_total,
deletion_duration_seconds_bucket, deletion_integrity_violations, ...) with PromQL built from the
thresholds in config.libsonnet, so a report works on any Prometheus that scrapes the
exporters, with or without this project's recording rules loaded.

Counts are exact: `exact_increase()` takes the difference between the counter at the end and at
the start of the range instead of `increase()`, which extrapolates to the range boundaries and
would turn 120 deletions into 120.7. Percentiles come from the histogram buckets, so they are exact
to the bucket boundaries (`histogram_quantile` interpolates inside the bucket).

Success and error rates count errors only, as the alerts do: failures of config
errorRate.excludedErrorTypes (refusals of unauthorised callers) count as failures and per class,
but not as errors.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from deletion_monitor.common.config import ConfigError
from deletion_monitor.common.durations import parse_duration
from deletion_monitor.common.promapi import (
    PrometheusClient,
    dedup,
    format_duration,
)

NO_DATA = "no data in range"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS = tuple(f"{h:02d}" for h in range(24))

# Report-only limits of the recommendation rules. They are not alert thresholds (those live in
# config.libsonnet and are read from there); they decide when a pattern is strong enough to be
# worth a recommendation. docs/reports.md documents each one next to its rule.
LIMITS = {
    # A failure class this large a share of all failures deserves its own remediation.
    "failure_class_share": 0.25,
    # Peak hour carrying this many times the mean hourly volume: batch bulk deletions.
    "peak_hour_batching_factor": 3.0,
    # Peak hour at this many times the mean: alert ahead of the daily peak.
    "peak_hour_alerting_factor": 2.0,
    # Per-user-type figures need this many deletions in range to mean anything.
    "min_requests_per_user_type": 20,
    # Slowest user type's p95 this many times the fastest one's: correlate type and latency.
    "user_type_p95_spread": 2.0,
    # Fitted daily volume 30 days ahead this many times today's: plan capacity.
    "capacity_growth_factor": 1.5,
    # Days of data the capacity projection needs before it is shown.
    "min_days_for_projection": 3,
    # --- Minimum evidence (issue 17): below these a figure is n/a and a rule stays silent. ---
    # Averages per day, week and month need the data to cover at least this many days.
    "min_covered_days_for_averages": 1,
    # A 24 h window enters a fit (capacity projection, trend per day) only this well covered.
    "min_day_coverage": 0.9,
    # Hour-of-day comparisons (the peak-hour rules) need every hour of the day covered this
    # many times (3: three whole days of data).
    "min_days_for_hourly_pattern": 3,
    # Failure-class shares need this many failures behind them.
    "min_failures_for_shares": 10,
    # Range-wide error rates and latency statistics need this many deletions behind them.
    "min_requests_for_rates": 100,
    # The complex-deletion p95 needs this many complex deletions behind it.
    "min_complex_deletions": 20,
    # A comparison with the previous range needs both ranges covered to this share.
    "min_coverage_for_comparison": 0.5,
    # Below this share of the range covered, a report with nothing wrong says "insufficient
    # data" instead of "ok".
    "min_coverage_for_status": 0.5,
}


# --------------------------------------------------------------------------------------------
# PromQL builders


def selector(metric: str, sel: str, extra: str = "") -> str:
    """`metric{sel,extra}` with empty parts dropped."""
    inner = ",".join(p for p in (sel, extra) if p)
    return f"{metric}{{{inner}}}"


def excluded_error_types(cfg: dict[str, Any]) -> tuple[str, ...]:
    """Failure classes the error rate leaves out (config errorRate.excludedErrorTypes).

    Refusals of unauthorised callers are the endpoint working as intended: they are counted
    per class and alerted on by DeletionAuthorizationFailuresHigh, but they are not errors of the
    availability SLI (the recording rules leave out the same classes).
    """
    names = tuple(cfg["errorRate"].get("excludedErrorTypes", ()))
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise ConfigError(
                f"errorRate.excludedErrorTypes: error_type names (a-z, 0-9, _), got {name!r}"
            )
    return names


def orphan_categories(cfg: dict[str, Any]) -> tuple[str, ...]:
    """deletion_integrity_violations categories that mean "rows left behind by a deletion"
    (config integrity.orphanCategories, the set DeletionOrphanedRecords alerts on)."""
    names = tuple(cfg["integrity"]["orphanCategories"])
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise ConfigError(
                f"integrity.orphanCategories: category names (a-z, 0-9, _), got {name!r}"
            )
    return names


def orphan_matcher(cfg: dict[str, Any]) -> str:
    """The label matcher of the orphan categories: `category=~"a|b"`."""
    return 'category=~"' + "|".join(orphan_categories(cfg)) + '"'


def counted_failures_matcher(cfg: dict[str, Any]) -> str:
    """The label matcher of failures that count as errors: `error_type!~"a|b"`, or "" (no
    matcher at all) when nothing is excluded: `error_type!~""` would drop series without the
    label instead of nothing."""
    names = excluded_error_types(cfg)
    return f'error_type!~"{"|".join(names)}"' if names else ""


def with_matcher(series: str, matcher: str) -> str:
    """`metric{a="b"}` -> `metric{a="b",matcher}` (or `metric{matcher}`)."""
    if series.endswith("}"):
        inner = series[series.index("{") + 1 : -1]
        return f"{series[: series.index('{')]}{{{inner + ',' if inner else ''}{matcher}}}"
    return f"{series}{{{matcher}}}"


def exact_increase(series: str, window: str) -> str:
    """Per-series counter increase over `window`, without increase()'s extrapolation.

    end - start for series present at both ends; the full value for series that appeared inside
    the window (a counter starts at 0). Valid only when no counter reset inside the window and
    the exporter was being scraped at its start: Source.inc checks both and picks another form
    otherwise.
    """
    return f"({series} - {series} offset {window}) or ({series} unless {series} offset {window})"


def _num(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return num / den


def _count(value: float | None) -> int | None:
    # Exact increases of integer counters are integers; round off float noise.
    return None if value is None else round(value)


def iso_time(t: float) -> str:
    """Unix time `t` as ISO 8601 UTC to the second, as reports print it."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds: float) -> str:
    """A covered time as a sentence says it: 40 s, 6 min, 3.5 h, 7 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}".rstrip("0").rstrip(".") + " h"
    return f"{seconds / 86400:.1f}".rstrip("0").rstrip(".") + " days"


def _minute(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@dataclass(frozen=True)
class Coverage:
    """How much of a range the exporter's samples cover.

    A count is the difference of a counter between two samples, so the time it stands on is the
    span from the sample it starts from (the one at the start of the range, or the exporter's
    first sample inside it) to the last sample: `first` .. `last`. A scrape gap inside that span
    loses nothing (a counter keeps counting while nobody scrapes it), so the span is the
    coverage. `first` may lie up to one scrape interval before `start`: the sample the range's
    counts start from; the covered time is capped at the range.
    """

    start: float
    end: float
    first: float | None
    last: float | None

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def covered_seconds(self) -> float:
        if self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return min(self.seconds, self.last - self.first)

    @property
    def ratio(self) -> float:
        return min(1.0, self.covered_seconds / self.seconds) if self.seconds > 0 else 0.0

    def within(self, t0: float, t1: float) -> float:
        """Covered seconds inside (t0, t1]."""
        if not self.covered_seconds or self.first is None or self.last is None:
            return 0.0
        return min(t1 - t0, _overlap(self.first, self.last, t0, t1))

    def _seconds_by_slot(
        self, slot: int, names: tuple[str, ...], offset: int = 0
    ) -> dict[str, float]:
        """Covered seconds of each recurring UTC slot of `slot` seconds; slot k since the epoch
        is names[(k + offset) % len(names)]."""
        out = dict.fromkeys(names, 0.0)
        if not self.covered_seconds or self.first is None or self.last is None:
            return out
        t = math.floor(self.first / slot) * slot
        while t < self.last:
            out[names[(int(t // slot) + offset) % len(names)]] += _overlap(
                self.first, self.last, t, t + slot
            )
            t += slot
        return out

    def hour_of_day_seconds(self) -> dict[str, float]:
        """Covered seconds of each UTC hour of day (00..23) over the span."""
        return self._seconds_by_slot(3600, HOURS)

    def weekday_seconds(self) -> dict[str, float]:
        """Covered seconds of each UTC day of the week (mon..sun) over the span."""
        # Day 0 of the epoch, 1970-01-01, was a Thursday (index 3 of WEEKDAYS).
        return self._seconds_by_slot(86400, WEEKDAYS, offset=3)

    def text(self) -> str:
        """The report's opening line: the range and how much of it the data covers."""
        head = f"covers {_minute(self.start)} – {_minute(self.end)} UTC; "
        if not self.covered_seconds:
            return head + "no data in this range"
        cover = (
            f"data for {human_duration(self.covered_seconds)} of {human_duration(self.seconds)}"
            f" ({self.ratio * 100:.2f} %)"
        )
        if self.first is not None and self.last is not None:
            lo, hi = max(self.first, self.start), self.last
            if lo > self.start + 600 or hi < self.end - 600:
                cover += f", from {_minute(lo)} to {_minute(hi)}"
        return head + cover

    def to_json(self) -> dict[str, Any]:
        return {
            "start": iso_time(self.start),
            "end": iso_time(self.end),
            "first_sample": None if self.first is None else iso_time(self.first),
            "last_sample": None if self.last is None else iso_time(self.last),
            "range_seconds": self.seconds,
            "covered_seconds": self.covered_seconds,
            "ratio": self.ratio,
            "text": self.text(),
        }


def quantile_bucket(cumulative: dict[float, float], q: float) -> dict[str, Any] | None:
    """The histogram bucket a quantile lies in, from cumulative bucket counts {le: count}.

    histogram_quantile() finds the bucket holding rank q x total and interpolates linearly
    inside it, so all a p95 really says is "between these two bucket bounds": 20 deletions of
    exactly 6.5 s give p95 = 7.375 s because 7.375 is 95 % of the way through the 5-7.5 s
    bucket. Returns the bounds (upper +Inf for the overflow bucket, where Prometheus answers
    the highest finite bound), the observations in that bucket and the total; None without
    observations.
    """
    bounds = sorted(cumulative)
    if not bounds or not cumulative[bounds[-1]]:
        return None
    total = cumulative[bounds[-1]]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le in bounds:
        count = cumulative[le]
        if count >= rank and count > prev_count:
            return {
                "lower": prev_le,
                "upper": le,
                "in_bucket": round(count - prev_count),
                "observations": round(total),
            }
        prev_le, prev_count = le, count
    return None


def quantile_text(value: float | None, bucket: dict[str, Any] | None, name: str) -> str:
    """`p95 7.38 s (interpolated within the 5–7.5 s bucket, 20 of 20 deletions in it)`."""
    if value is None or bucket is None:
        return f"{name} n/a"
    lo, hi = bucket["lower"], bucket["upper"]
    if math.isinf(hi):
        return (
            f"{name} above {lo:g} s (beyond the highest histogram bucket bound: at least "
            f"{lo:g} s, {bucket['in_bucket']} of {bucket['observations']} deletions there)"
        )
    return (
        f"{name} {value:.2f} s (interpolated within the {lo:g}–{hi:g} s histogram bucket; "
        f"{bucket['in_bucket']} of {bucket['observations']} deletions lie in it)"
    )


# Points one subquery may produce per series. VictoriaMetrics refuses more than 30 000
# (-search.maxPointsPerTimeseries): a 30-day span at 1-minute steps is 43 200, so the long-term
# store answered the compliance report's coverage probe with HTTP 422. 10 000 keeps a margin and
# 1-minute steps up to ~7 days.
MAX_SUBQUERY_POINTS = 10_000


def subquery_step(span: str, at_least: int = 60) -> int:
    """The step, in seconds, of a subquery over `span`: `at_least`, or a whole number of
    minutes that keeps the subquery within MAX_SUBQUERY_POINTS."""
    minutes = math.ceil(parse_duration(span) / 60 / MAX_SUBQUERY_POINTS)
    return max(at_least, 60 * minutes)


class Source:
    """The queries of one report: a client, the config, and the evaluation time."""

    def __init__(self, client: PrometheusClient, cfg: dict[str, Any], at: float) -> None:
        self.client = client
        self.cfg = cfg
        self.at = at
        self.audit = cfg["auditExporterSelector"]
        self.integrity = cfg["integrityExporterSelector"]
        self.app = cfg["appSelector"]
        # Target labels of exporter replicas (config replicaLabels): every figure collapses them
        # before it sums, so two exporters on one table do not double any count.
        self.replicas: tuple[str, ...] = tuple(cfg.get("replicaLabels", ()))
        self._cache: dict[str, bool] = {}
        self._first: dict[str, float | None] = {}
        self._targets: dict[str, list[str]] = {}
        # Metric names whose counters reset inside a queried range: their figures come from
        # increase() (extrapolated, approximate) and the report says so.
        self.reset_metrics: set[str] = set()
        # True once a queried range starts before the exporter was first scraped.
        self.partial = False
        self._buckets: dict[str, dict[float, float]] = {}

    def _check(self, expr: str, when: float) -> bool:
        """True when the (filtering) expression returns anything at `when`; cached."""
        key = f"{when}|{expr}"
        if key not in self._cache:
            self._cache[key] = bool(self.client.query(expr, when))
        return self._cache[key]

    @staticmethod
    def _covered_expr(cover: str, span: str) -> str:
        # Covered: the exporter was scraped at the start of the range, or its counters held no
        # history when it was first scraped inside the range (all of it happened in range).
        return f"(count({cover} offset {span}) > 0) or (sum(min_over_time({cover}[{span}])) == 0)"

    def _coverage_probe(self, series: str) -> str:
        # A series the exporter always publishes (all user types are pre-initialised), so its
        # presence at the start of a range means the exporter was being scraped then.
        if self.integrity and self.integrity in series:
            return selector("deletion_completeness_audited_total", self.integrity)
        return self.req()

    def inc(
        self, series: str, window: str, at: float | None = None, span: str | None = None
    ) -> str:
        """The increase of `series` over `window` (see _inc), replicas collapsed: one series per
        label set however many exporter replicas serve it, ready for sum()."""
        return self.dedup(self._inc(series, window, at, span))

    def dedup(self, expr: str) -> str:
        """`expr` with the exporter replicas (config replicaLabels) collapsed."""
        return dedup(expr, self.replicas)

    def _inc(
        self, series: str, window: str, at: float | None = None, span: str | None = None
    ) -> str:
        """The increase expression for `series` over `window`, as exact as the data allows.

        Checked once over `span` (default: the window) ending at `at`:
        - a counter reset (exporter lost its totals): increase(), flagged as approximate. Checked
          on a histogram's _count rather than every bucket: resets() over a month of every
          bucket would be millions of samples;
        - the exporter was scraped at the start of the range: exact_increase(); a series that
          appears later is new (a first failure of a class) and counts in full;
        - the exporter was first scraped inside the range with counters at 0: the same (nothing
          happened before it);
        - first scraped inside the range with history in its counters (an existing audit log):
          series present at that first scrape count their increase since it; series that
          appeared later count in full; the report is flagged partial.
        """
        when = self.at if at is None else at
        span = span or window
        probe = series.replace("_bucket{", "_count{", 1)
        if self._check(f"sum(resets({probe}[{span}])) > 0", when):
            self.reset_metrics.add(probe.split("{", 1)[0])
            return f"increase({series}[{window}])"
        cover = self._coverage_probe(series)
        instances = self._instances(cover, span, when)
        if len(instances) <= 1:
            return self._inc_one(series, cover, window, span, when)
        # Replicas (several exporter targets): each one's own coverage and first scrape. A
        # replica started inside the range with the audit history in its counters must count
        # from its own first scrape, not from the other replica's.
        parts = []
        for instance in instances:
            m = f'instance="{instance}"'
            one = self._inc_one(with_matcher(series, m), with_matcher(cover, m), window, span, when)
            parts.append(f"({one})")
        return " or ".join(parts)

    def _instances(self, cover: str, span: str, when: float) -> list[str]:
        """The `instance` labels of the coverage probe's targets seen in the span."""
        key = f"{when}|{cover}|{span}"
        if key not in self._targets:
            expr = f"count by (instance) (last_over_time({cover}[{span}]))"
            samples = self.client.query(expr, when)
            self._targets[key] = sorted(x.labels.get("instance", "") for x in samples)
        return self._targets[key]

    def _inc_one(self, series: str, cover: str, window: str, span: str, when: float) -> str:
        """_inc for the series of one exporter target (or of all, when there is one)."""
        if self._check(self._covered_expr(cover, span), when):
            return exact_increase(series, window)
        t0 = self._first_scrape(cover, span, when)
        if t0 is None:  # the exporter has no sample in range: any figure here is empty anyway
            since_first = f"({series} - min_over_time({series}[{window}]))"
            return f"({series} - {series} offset {window}) or {since_first}"
        self.partial = True
        # Series present at the first scrape carry history: subtract their value then. Series
        # that appeared later (a first failure of a class) are new: their full value counts.
        return (
            f"({series} - {series} offset {window})"
            f" or (({series} unless {series} offset {window}) - {series} @ {t0:.3f})"
            f" or {series}"
        )

    def _first_scrape(self, cover: str, span: str, when: float) -> float | None:
        """Exact time of the coverage probe's first sample in the span.

        A subquery step picks the latest sample at or before it, so with coarse steps (1 min,
        longer over long spans: subquery_step) timestamp() finds a sample at most a step after
        the first; a second pass with 1-second steps over the step before that lands on the
        first sample itself.
        """
        key = f"first|{when}|{cover}|{span}"
        if key not in self._first:
            step = subquery_step(span)
            coarse = self.value(f"min(min_over_time(timestamp({cover})[{span}:{step}s]))", when)
            # No coarse step after the first sample yet (it is younger than a step): search
            # the last step before `when` instead.
            fine_at = when if coarse is None else coarse
            exact = self.value(f"min(min_over_time(timestamp({cover})[{step + 1}s:1s]))", fine_at)
            self._first[key] = exact if exact is not None else coarse
        return self._first[key]

    def req(self, extra: str = "") -> str:
        return selector("deletion_requests_total", self.audit, extra)

    def fail(self, extra: str = "") -> str:
        return selector("deletion_failures_total", self.audit, extra)

    def errors(self) -> str:
        """Failures that count as errors (every class but errorRate.excludedErrorTypes)."""
        return self.fail(counted_failures_matcher(self.cfg))

    @property
    def excludes(self) -> bool:
        """True when some failure class is left out of the error rate."""
        return bool(excluded_error_types(self.cfg))

    def value(self, expr: str, at: float | None = None) -> float | None:
        return _num(self.client.query_value(expr, self.at if at is None else at))

    def by(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        samples = self.client.query(expr, self.at if at is None else at)
        out: dict[str, float] = {}
        for s in samples:
            v = _num(s.value)
            if v is not None:
                out[s.labels.get(label, "")] = v
        return out

    def total(self, series: str, window: str, at: float | None = None) -> float | None:
        return self.value(f"sum({self.inc(series, window, at)})", at)

    def total_by(self, series: str, window: str, label: str) -> dict[str, float]:
        return self.by(f"sum by ({label}) ({self.inc(series, window)})", label)

    def quantile(
        self, q: float, metric: str, sel: str, window: str, at: float | None = None
    ) -> float | None:
        buckets = selector(f"{metric}_bucket", sel)
        return self.value(
            f"histogram_quantile({q}, sum by (le) ({self.inc(buckets, window, at)}))", at
        )

    def buckets(
        self, metric: str, sel: str, window: str, at: float | None = None
    ) -> dict[float, float]:
        """Cumulative bucket counts {le: count} of a histogram over the window (exact)."""
        key = f"buckets|{at}|{metric}|{sel}|{window}"
        if key not in self._buckets:
            series = selector(f"{metric}_bucket", sel)
            raw = self.by(f"sum by (le) ({self.inc(series, window, at)})", "le", at)
            self._buckets[key] = {float(le): v for le, v in raw.items()}
        return self._buckets[key]

    def quantile_bucket(
        self, q: float, metric: str, sel: str, window: str, at: float | None = None
    ) -> dict[str, Any] | None:
        """The bucket bounds quantile q lies between (see quantile_bucket())."""
        return quantile_bucket(self.buckets(metric, sel, window, at), q)

    def last_sample(self, probe: str, span: str, when: float) -> float | None:
        """Time of the probe's last sample at or before `when` inside the span."""
        recent = self.value(f"max(timestamp({probe}))", when)
        if recent is not None:
            return recent
        step = subquery_step(span)
        return self.value(f"max(max_over_time(timestamp({probe})[{span}:{step}s]))", when)

    def coverage(self, window: str, at: float | None = None, probe: str | None = None) -> Coverage:
        """How much of the range ending at `at` the probe's samples cover (see Coverage)."""
        when = self.at if at is None else at
        seconds = parse_duration(window)
        start = when - seconds
        probe = probe or self.req()
        # The sample the range's counts start from when the exporter was scraped at its start
        # (what `x offset <range>` picks), else the exporter's first sample inside the range.
        first = self.value(f"min(timestamp({probe} @ {start:.3f}))", when)
        if first is None:
            first = self._first_scrape(probe, window, when)
        last = self.last_sample(probe, window, when) if first is not None else None
        return Coverage(start, when, first, last)

    def quantile_by(self, q: float, metric: str, label: str, window: str) -> dict[str, float]:
        buckets = selector(f"{metric}_bucket", self.audit)
        return self.by(
            f"histogram_quantile({q}, sum by ({label}, le) ({self.inc(buckets, window)}))",
            label,
        )

    def average(self, metric: str, window: str, at: float | None = None) -> float | None:
        s = self.inc(selector(f"{metric}_sum", self.audit), window, at)
        c = self.inc(selector(f"{metric}_count", self.audit), window, at)
        return self.value(f"sum({s}) / sum({c})", at)

    def series_present(self, series: str, window: str, at: float | None = None) -> bool:
        """True when some series has two samples inside the window: one sample (the exporter
        came up at the very end) measures no interval, so it is no data, not zero deletions."""
        expr = f"max(count_over_time({series}[{window}])) >= 2"
        return bool(self.client.query(expr, self.at if at is None else at))

    def daily(
        self, expr_for_1d: str, days: int, at: float | None = None
    ) -> list[tuple[float, float | None]]:
        """Evaluate a 1-day expression at each day end (at - (days-1)d ... at)."""
        if days < 1:
            return []
        end = self.at if at is None else at
        start = end - (days - 1) * 86400
        series = self.client.query_range(expr_for_1d, start, end, 86400)
        points = {round(t): _num(v) for t, v in series[0].points} if series else {}
        return [(start + i * 86400, points.get(round(start + i * 86400))) for i in range(days)]


# --------------------------------------------------------------------------------------------
# Figures


def _latency(src: Source, window: str, at: float | None = None) -> dict[str, Any]:
    """Average (exact: sum / count) and p50/p95/p99 (interpolated within histogram buckets),
    each percentile with the bucket it lies in (`p95_bucket`: lower, upper, in_bucket,
    observations) so the report can say what the histogram actually knows."""
    m = "deletion_duration_seconds"
    out: dict[str, Any] = {"average_seconds": src.average(m, window, at)}
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        out[f"{name}_seconds"] = src.quantile(q, m, src.audit, window, at)
        out[f"{name}_bucket"] = src.quantile_bucket(q, m, src.audit, window, at)
    return out


def _volume(src: Source, window: str, at: float | None = None) -> dict[str, Any]:
    requests = None
    if src.series_present(src.req(), window, at):
        requests = _count(src.total(src.req(), window, at))
    if requests is None:
        return {
            "requests": None,
            "failures": None,
            "errors": None,
            "successes": None,
            "success_rate": None,
            "error_rate": None,
        }
    # failures: every failed deletion; errors: those the availability SLI counts (refusals of
    # unauthorised callers excluded, config errorRate.excludedErrorTypes). The rates are over
    # errors, as in the recording rules and alerts.
    failures = min(_count(src.total(src.fail(), window, at)) or 0, requests)
    errors = failures
    if src.excludes:
        errors = min(_count(src.total(src.errors(), window, at)) or 0, failures)
    return {
        "requests": requests,
        "failures": failures,
        "errors": errors,
        "successes": requests - failures,
        "success_rate": _ratio(requests - errors, requests),
        "error_rate": _ratio(errors, requests),
    }


def _failure_classes(src: Source, window: str) -> list[dict[str, Any]]:
    counts = {k: _count(v) or 0 for k, v in src.total_by(src.fail(), window, "error_type").items()}
    total = sum(counts.values())
    rows = [
        {"error_type": k, "failures": v, "share": _ratio(v, total)}
        for k, v in counts.items()
        if v > 0
    ]
    return sorted(rows, key=lambda r: (-r["failures"], r["error_type"]))


def _linear_fit(ys: list[float], xs: list[float] | None = None) -> tuple[float, float] | None:
    """Least-squares (intercept, slope) of ys against xs (default 0..n-1); None under two
    points. Days left out of a fit (too little data) keep their place on the x axis."""
    n = len(ys)
    xs = list(range(n)) if xs is None else xs
    if n < 2 or len(set(xs)) < 2:
        return None
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return mean_y - slope * mean_x, slope


def _daily_rows(
    src: Source, cov: Coverage, expr_for_1d: str, days: int, at: float | None = None
) -> list[dict[str, Any]]:
    """Deletions per 24 h window, each with the hours of it the data covers; a window with no
    covered time is n/a (None), not 0."""
    rows = []
    for t, v in src.daily(expr_for_1d, days, at):
        covered = cov.within(t - 86400, t)
        rows.append(
            {
                "day_end": iso_time(t),
                "requests": _count(v) if covered > 0 else None,
                "covered_hours": covered / 3600,
            }
        )
    return rows


def _fit_days(daily: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(x positions, counts) of the days covered well enough to enter a fit."""
    xs, ys = [], []
    for i, d in enumerate(daily):
        if d["requests"] is not None and d["covered_hours"] >= 24 * LIMITS["min_day_coverage"]:
            xs.append(float(i))
            ys.append(float(d["requests"]))
    return xs, ys


def per_period(total: int, cov: Coverage) -> dict[str, Any]:
    """Average deletions per day / week / month over the covered days, or n/a below
    min_covered_days_for_averages (676 deletions in 6 minutes are not 96.57 a day)."""
    covered_days = cov.covered_seconds / 86400
    need = LIMITS["min_covered_days_for_averages"]
    out: dict[str, Any] = {"covered_days": covered_days}
    if covered_days >= need and covered_days > 0:
        per_day = total / covered_days
        out.update(per_day=per_day, per_week=per_day * 7, per_month=per_day * 30)
        out["basis"] = f"{total} deletions over {human_duration(cov.covered_seconds)} of data"
    else:
        out.update(per_day=None, per_week=None, per_month=None)
        out["basis"] = (
            f"n/a: needs at least {need:g} day of data, have {human_duration(cov.covered_seconds)}"
        )
    return out


def usage_patterns(src: Source, window: str) -> dict[str, Any]:
    """Figures of the weekly usage-pattern analysis."""
    seconds = parse_duration(window)
    volume = _volume(src, window)
    if volume["requests"] is None:
        return {"data": False}
    cov = src.coverage(window)
    total = volume["requests"]
    by_hour_raw = src.total_by(
        selector("deletion_requests_by_hour_total", src.audit), window, "hour"
    )
    hour_cov = cov.hour_of_day_seconds()
    # An hour of day the data never covered is n/a, not 0 deletions: counting it as 0 is what
    # made 6 minutes of data look like a peak hour 24 times the mean.
    by_hour: dict[str, int | None] = {}
    for h in HOURS:
        n = _count(by_hour_raw.get(h)) or 0
        by_hour[h] = n if (n or hour_cov[h] > 0) else None
    # Mean deletions per covered hour of each hour of day (needs a whole hour covered).
    hourly_rates = {
        h: (by_hour[h] or 0) / (hour_cov[h] / 3600) if hour_cov[h] >= 3600 else None for h in HOURS
    }
    covered_hours = cov.covered_seconds / 3600
    hour_total = sum(v or 0 for v in by_hour.values())
    mean_hour = hour_total / covered_hours if covered_hours >= 1 else None
    rated = [h for h in HOURS if hourly_rates[h] is not None]
    peak_hour = (
        max(rated, key=lambda h: (hourly_rates[h] or 0.0, -int(h)))
        if rated and hour_total
        else None
    )
    peak_rate = hourly_rates[peak_hour] if peak_hour else None
    by_wd_raw = src.total_by(
        selector("deletion_requests_by_weekday_total", src.audit), window, "weekday"
    )
    # As for hours: a weekday the data never covered is n/a, not 0 deletions.
    weekday_cov = cov.weekday_seconds()
    by_weekday: dict[str, int | None] = {}
    for d in WEEKDAYS:
        n = _count(by_wd_raw.get(d)) or 0
        by_weekday[d] = n if (n or weekday_cov[d] > 0) else None
    peak_day = (
        max(WEEKDAYS, key=lambda d: (by_weekday[d] or 0, -WEEKDAYS.index(d)))
        if sum(v or 0 for v in by_weekday.values())
        and cov.covered_seconds >= 7 * 86400 * LIMITS["min_day_coverage"]
        else None
    )

    req_by_type = src.total_by(src.req(), window, "user_type")
    fail_by_type = src.total_by(src.fail(), window, "user_type")
    err_by_type = src.total_by(src.errors(), window, "user_type") if src.excludes else fail_by_type
    p95_by_type = src.quantile_by(0.95, "deletion_duration_seconds", "user_type", window)
    user_types: list[dict[str, Any]] = []
    for ut in sorted(req_by_type):
        n = _count(req_by_type[ut]) or 0
        f = min(_count(fail_by_type.get(ut)) or 0, n)
        e = min(_count(err_by_type.get(ut)) or 0, f)
        user_types.append(
            {
                "user_type": ut,
                "requests": n,
                "failures": f,
                "errors": e,
                "error_rate": _ratio(e, n),
                "p95_seconds": p95_by_type.get(ut),
            }
        )
    user_types.sort(key=lambda r: (-r["requests"], r["user_type"]))
    slowest = sorted(
        (r for r in user_types if r["p95_seconds"] is not None),
        key=lambda r: (-r["p95_seconds"], r["user_type"]),
    )

    complex_sel = src.audit
    complex_count = _count(
        src.total(selector("deletion_large_cascade_duration_seconds_count", complex_sel), window)
    )
    cx = "deletion_large_cascade_duration_seconds"
    complex_p95 = src.quantile(0.95, cx, complex_sel, window)

    days = int(seconds // 86400)
    daily_expr = f"sum({src.inc(src.req(), '1d', span=window)})"
    daily = _daily_rows(src, cov, daily_expr, days)
    xs, counts = _fit_days(daily)
    need_days = LIMITS["min_days_for_projection"]
    projection: dict[str, Any] = {"days_used": len(counts)}
    fit = _linear_fit(counts, xs)
    if fit and len(counts) >= need_days:
        intercept, slope = fit
        current = intercept + slope * (days - 1)
        ahead = max(0.0, current + slope * 30)
        projection.update(
            {
                "trend_per_day": slope,
                "fitted_daily_now": current,
                "projected_daily_in_30d": ahead,
                "growth_factor_30d": _ratio(ahead, current) if current > 0 else None,
                "peak_hour_per_day": peak_rate,
            }
        )
    else:
        projection["note"] = (
            f"needs at least {need_days} whole days of data "
            f"(days {LIMITS['min_day_coverage'] * 100:g} % covered), have {len(counts)}"
        )

    return {
        "data": True,
        "data_coverage": cov.to_json(),
        "totals": volume,
        "per_period": per_period(total, cov),
        "daily": daily,
        "by_hour": by_hour,
        "hourly_rates": hourly_rates,
        "hour_of_day_covered_hours": {h: v / 3600 for h, v in hour_cov.items()},
        # How many times the least covered hour of day is covered: the peak-hour rules' evidence.
        "hourly_pattern_days": min(hour_cov.values()) / 3600,
        "peak_hour": peak_hour,
        "peak_hour_requests": by_hour[peak_hour] if peak_hour else None,
        "peak_hour_rate": peak_rate,
        "mean_hourly_requests": mean_hour,
        "peak_hour_factor": _ratio(peak_rate, mean_hour),
        "by_weekday": by_weekday,
        "peak_weekday": peak_day,
        "user_types": user_types,
        "failure_classes": _failure_classes(src, window),
        "latency": _latency(src, window),
        "slowest_user_types": [
            {"user_type": r["user_type"], "p95_seconds": r["p95_seconds"]} for r in slowest
        ],
        "complex_deletions": {
            "count": complex_count,
            "p95_seconds": complex_p95,
            "p95_bucket": src.quantile_bucket(0.95, cx, complex_sel, window),
        },
        "capacity_projection": projection,
    }


def _alerts_fired(src: Source, window: str) -> list[dict[str, Any]]:
    sel = f'alertstate="firing",service="{src.cfg["serviceName"]}",alertname!="Watchdog"'
    samples = src.client.query(
        f"count by (alertname, severity) (max_over_time(ALERTS{{{sel}}}[{window}]))", src.at
    )
    rows = [
        {"alertname": s.labels.get("alertname", ""), "severity": s.labels.get("severity", "")}
        for s in samples
    ]
    return sorted(rows, key=lambda r: (r["severity"], r["alertname"]))


def _peak(src: Source, expr: str, window: str) -> float | None:
    return src.value(f"max_over_time(({expr})[{window}:{subquery_step(window, 300)}s])")


def health(src: Source, window: str) -> dict[str, Any]:
    """Figures of the daily health report: SLA targets of the spec against measured values."""
    cfg = src.cfg
    volume = _volume(src, window)
    if volume["requests"] is None:
        return {"data": False}
    latency = _latency(src, window)
    viol = f"sum({src.dedup(selector('deletion_integrity_violations', src.integrity))})"
    integrity_now = src.value(viol)
    integrity_peak = _peak(src, viol, window)
    mem = (
        f"sum({selector(cfg['appMemoryMetric'], src.app)})"
        f" / sum({selector(cfg['appMemoryLimitMetric'], src.app)})"
    )
    pool = (
        f"sum({selector(cfg['appPoolInUseMetric'], src.app)})"
        f" / sum({selector(cfg['appPoolMaxMetric'], src.app)})"
    )
    memory_peak = _peak(src, mem, window)
    pool_peak = _peak(src, pool, window)
    alerts = _alerts_fired(src, window)
    by_sev: dict[str, int] = {}
    for a in alerts:
        by_sev[a["severity"]] = by_sev.get(a["severity"], 0) + 1

    def target(name: str, measured: Any, op: str, goal: float, unit: str) -> dict[str, Any]:
        met = None
        if measured is not None:
            met = {">": measured > goal, "<": measured < goal, "<=": measured <= goal}[op]
        shown = f"{goal * 100:g} %" if unit == "ratio" else f"{goal:g}{unit}"
        return {
            "target": name,
            "measured": measured,
            "unit": unit,
            "goal": f"{op} {shown}",
            "met": met,
        }

    lat_cfg = cfg["latency"]
    targets = [
        target("success rate", volume["success_rate"], ">", cfg["slo"]["target"], "ratio"),
        target("average latency", latency["average_seconds"], "<", lat_cfg["averageTarget"], " s"),
        target("p95 latency", latency["p95_seconds"], "<", lat_cfg["p95Target"], " s"),
        target(
            "integrity violations (peak)",
            integrity_peak,
            "<=",
            cfg["integrity"]["orphanTolerance"],
            "",
        ),
        target("db pool usage (peak)", pool_peak, "<", cfg["pool"]["warning"], "ratio"),
        target("memory usage (peak)", memory_peak, "<", cfg["memory"]["warning"], "ratio"),
    ]
    return {
        "data": True,
        "data_coverage": src.coverage(window).to_json(),
        "totals": volume,
        "latency": latency,
        "failure_classes": _failure_classes(src, window),
        "integrity_violations": {"now": integrity_now, "peak": integrity_peak},
        "memory_usage_peak": memory_peak,
        "pool_usage_peak": pool_peak,
        "alerts_fired": alerts,
        "alerts_by_severity": dict(sorted(by_sev.items())),
        "targets": targets,
        "targets_missed": sum(1 for t in targets if t["met"] is False),
    }


def _trend_columns(
    src: Source, window: str, days: int, at: float | None = None
) -> dict[str, list[tuple[float, float | None]]]:
    """The per-day columns of the trend report for the range ending at `at`."""
    one_day = {
        "requests": f"sum({src.inc(src.req(), '1d', at, span=window)})",
        "failures": f"sum({src.inc(src.fail(), '1d', at, span=window)})",
        # Counted failures only (the error rate); the same series when nothing is excluded.
        "errors": f"sum({src.inc(src.errors(), '1d', at, span=window)})",
        "p95_seconds": "histogram_quantile(0.95, sum by (le) ("
        + src.inc(selector("deletion_duration_seconds_bucket", src.audit), "1d", at, span=window)
        + "))",
        "average_seconds": "sum("
        + src.inc(selector("deletion_duration_seconds_sum", src.audit), "1d", at, span=window)
        + ") / sum("
        + src.inc(selector("deletion_duration_seconds_count", src.audit), "1d", at, span=window)
        + ")",
    }
    if not src.excludes:
        del one_day["errors"]
    columns = {k: src.daily(expr, days, at) for k, expr in one_day.items()}
    columns.setdefault("errors", columns["failures"])
    return columns


def _trend_daily(
    columns: dict[str, list[tuple[float, float | None]]], cov: Coverage, days: int
) -> list[dict[str, Any]]:
    daily = []
    for i in range(days):
        t = columns["requests"][i][0]
        covered = cov.within(t - 86400, t)
        req = _count(columns["requests"][i][1]) if covered > 0 else None
        fails = _count(columns["failures"][i][1])
        errs = _count(columns["errors"][i][1])
        daily.append(
            {
                "day_end": iso_time(t),
                "covered_hours": covered / 3600,
                "requests": req,
                "failures": fails if req is not None else None,
                "errors": errs if req is not None else None,
                "error_rate": _ratio(errs or 0, req) if req is not None else None,
                "p95_seconds": columns["p95_seconds"][i][1] if req is not None else None,
                "average_seconds": columns["average_seconds"][i][1] if req is not None else None,
            }
        )
    return daily


def trends(src: Source, window: str) -> dict[str, Any]:
    """Figures of the weekly trend report: per-day series and the change against the last range.

    The change is computed only when both ranges are covered to min_coverage_for_comparison,
    and the volume change compares deletions per covered day, so a range the exporter saw for
    half of it is not "-50 %".
    """
    seconds = parse_duration(window)
    current = _volume(src, window)
    if current["requests"] is None:
        return {"data": False}
    prev_at = src.at - seconds
    cov = src.coverage(window)
    previous = _volume(src, window, prev_at)
    prev_cov = src.coverage(window, prev_at) if previous["requests"] is not None else None
    cur_lat = _latency(src, window)
    prev_lat = _latency(src, window, prev_at) if previous["requests"] is not None else {}
    days = int(seconds // 86400)
    daily = _trend_daily(_trend_columns(src, window, days), cov, days)
    previous_daily = (
        _trend_daily(_trend_columns(src, window, days, prev_at), prev_cov, days)
        if prev_cov is not None
        else []
    )
    need = LIMITS["min_coverage_for_comparison"]
    comparable = prev_cov is not None and min(cov.ratio, prev_cov.ratio) >= need

    def change(now: float | None, before: float | None) -> float | None:
        if not comparable or now is None or before is None or before == 0:
            return None
        return (now - before) / before

    def per_day(n: int | None, c: Coverage | None) -> float | None:
        if n is None or c is None or not c.covered_seconds:
            return None
        return n / (c.covered_seconds / 86400)

    if comparable:
        basis = "both ranges covered; deletions compared per covered day"
    elif prev_cov is None:
        basis = "no data in the previous range"
    else:
        basis = (
            f"n/a: each range needs {need * 100:g} % of it covered (this range "
            f"{cov.ratio * 100:.0f} %, previous {prev_cov.ratio * 100:.0f} %)"
        )
    xs, counts = _fit_days(daily)
    fit = _linear_fit(counts, xs) if len(counts) >= LIMITS["min_days_for_projection"] else None
    return {
        "data": True,
        "data_coverage": cov.to_json(),
        "previous_coverage": prev_cov.to_json() if prev_cov else None,
        "current": {**current, **cur_lat},
        "previous": ({**previous, **prev_lat} if previous["requests"] is not None else None),
        "change": {
            "requests": change(
                per_day(current["requests"], cov), per_day(previous["requests"], prev_cov)
            ),
            "error_rate": change(current["error_rate"], previous["error_rate"]),
            "p95_seconds": change(cur_lat["p95_seconds"], prev_lat.get("p95_seconds")),
            "average_seconds": change(cur_lat["average_seconds"], prev_lat.get("average_seconds")),
            "basis": basis,
        },
        "daily": daily,
        "previous_daily": previous_daily,
        "requests_trend_per_day": fit[1] if fit else None,
        "trend_days_used": len(counts),
    }


def compliance(src: Source, window: str) -> dict[str, Any]:
    """Figures of the monthly compliance report, with the retention settings in force."""
    cfg = src.cfg
    audited_s = selector("deletion_completeness_audited_total", src.integrity)
    failed_s = selector("deletion_completeness_failures_total", src.integrity)
    raw_viol_s = selector("deletion_integrity_violations", src.integrity)
    # One figure per check and category however many integrity exporters report it.
    viol_s = src.dedup(raw_viol_s)
    has = any(src.series_present(s, window) for s in (audited_s, raw_viol_s))
    retention = _retention(src)
    if not has:
        return {"data": False, "retention": retention}
    audited = _count(src.total(audited_s, window))
    failed = _count(src.total(failed_s, window)) or 0
    by_cat_now = {k: v for k, v in src.by(f"sum by (category) ({viol_s})", "category").items()}
    step = subquery_step(window, 300)
    by_cat_peak = src.by(
        f"max_over_time((sum by (category) ({viol_s}))[{window}:{step}s])", "category"
    )
    orphans_now = sum(by_cat_now.get(c, 0) for c in orphan_categories(cfg))
    orphans_peak = _peak(
        src,
        "sum("
        + src.dedup(selector("deletion_integrity_violations", src.integrity, orphan_matcher(cfg)))
        + ")",
        window,
    )
    forbidden = {
        k: _count(v) or 0
        for k, v in src.total_by(
            selector("deletion_forbidden_successes_total", src.audit), window, "kind"
        ).items()
    }
    invalid_rows = _count(
        src.total(selector("deletion_audit_invalid_rows_total", src.audit), window)
    )
    checks_failing = sorted(
        src.by(f"{selector('deletion_integrity_check_up', src.integrity)} == 0", "check")
    )
    cov = src.coverage(window, probe=audited_s)
    return {
        "data": True,
        "data_coverage": cov.to_json(),
        "completeness_audit": {
            "audited": audited,
            "failures": failed,
            "pass_rate": _ratio((audited or 0) - failed, audited),
        },
        "orphaned_records": {
            "now": orphans_now,
            "peak": orphans_peak,
            "tolerance": cfg["integrity"]["orphanTolerance"],
        },
        "audit_trail_gaps": {
            "now": by_cat_now.get("audit_trail", 0),
            "peak": by_cat_peak.get("audit_trail"),
            "invalid_audit_rows": invalid_rows,
        },
        "violations_by_category_now": dict(sorted(by_cat_now.items())),
        "violations_by_category_peak": dict(sorted(by_cat_peak.items())),
        "forbidden_successes": dict(sorted(forbidden.items())),
        "integrity_checks_failing_now": checks_failing,
        "retention": retention,
    }


def _retention(src: Source) -> dict[str, Any]:
    """Configured retention, plus what the queried store (Prometheus or the long-term
    VictoriaMetrics) actually runs with, and the flag that says so."""
    configured = dict(src.cfg["retention"])
    running = src.client.retention()
    return {
        "configured": configured,
        "prometheus_running_retention": running[0] if running else None,
        "running_retention_source": running[1] if running else None,
        "audit_log_note": "The deletion audit log is the application's table; its 7-year "
        "retention is enforced by the application, not by this monitoring.",
    }


# --------------------------------------------------------------------------------------------
# The summary every report opens with (issue 17: a manager reads top-down)


def slo_period(cfg: dict[str, Any]) -> str:
    """config slo.period, divided by the demo's timeCompression like the dashboards' budget."""
    seconds = parse_duration(cfg["slo"]["period"]) / float(cfg.get("timeCompression", 1))
    return format_duration(max(1, round(seconds)))


def summary(src: Source, kind: str, window: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Status, coverage, SLO, error budget left, incidents and what needs attention.

    The numbers are the ones the executive dashboard shows for the same range (success rate,
    error budget over the SLO period, alerts fired by severity, deletions, orphaned records,
    forbidden deletions): tests/integration/test_report_dashboard.py compares them.
    """
    cfg = src.cfg
    if not figures.get("data"):
        return {"status": "no data", "reasons": [], "coverage": None, "top_recommendations": []}
    cov = figures["data_coverage"]
    volume = figures.get("totals") or figures.get("current") or _volume(src, window)
    target = cfg["slo"]["target"]
    rate = volume.get("success_rate")
    period = slo_period(cfg)
    budget_partial = src.partial
    if parse_duration(period) == parse_duration(window):
        budget_vol = volume
    else:
        # The budget's own period: its coverage flag is its own, not the report range's.
        flags = (src.partial, set(src.reset_metrics))
        src.partial = False
        budget_vol = _volume(src, period)
        budget_partial = src.partial
        src.partial, src.reset_metrics = flags
    budget = 1 - target
    remaining = (
        1 - budget_vol["error_rate"] / budget if budget_vol.get("error_rate") is not None else None
    )
    alerts = figures.get("alerts_fired")
    if alerts is None:
        alerts = _alerts_fired(src, window)
    by_sev: dict[str, int] = {}
    for a in alerts:
        by_sev[a["severity"]] = by_sev.get(a["severity"], 0) + 1
    reasons: list[str] = []
    if rate is not None and rate < target:
        reasons.append(
            f"success rate {rate * 100:.2f} % is below the SLO target {target * 100:g} % "
            f"(over {volume['requests']} deletions)"
        )
    if remaining is not None and remaining < 0:
        reasons.append(f"the {period} error budget is exhausted ({remaining * 100:.0f} % left)")
    if by_sev.get("critical"):
        names = ", ".join(a["alertname"] for a in alerts if a["severity"] == "critical")
        reasons.append(f"critical alerts fired: {names}")
    if kind == "health":
        for t in figures["targets"]:
            if t["met"] is False:
                reasons.append(f"{t['target']} missed its target ({t['goal']})")
    if kind == "compliance":
        orp = figures["orphaned_records"]
        if (orp["peak"] or 0) > orp["tolerance"]:
            reasons.append(
                f"orphaned records peaked at {orp['peak']:g} (tolerance {orp['tolerance']:g})"
            )
        forbidden = sum(figures["forbidden_successes"].values())
        if forbidden:
            reasons.append(f"{forbidden} forbidden deletions succeeded")
        if figures["completeness_audit"]["failures"]:
            reasons.append(
                f"{figures['completeness_audit']['failures']} completeness audits failed"
            )
        if figures["integrity_checks_failing_now"]:
            reasons.append(
                "integrity checks failing now: "
                + ", ".join(figures["integrity_checks_failing_now"])
            )
    if reasons:
        status = "attention"
    elif cov["ratio"] < LIMITS["min_coverage_for_status"]:
        status = "insufficient data"
        reasons.append(
            f"nothing wrong seen, but the data covers only {cov['ratio'] * 100:.2f} % of the "
            f"range (needs {LIMITS['min_coverage_for_status'] * 100:g} % for an ok)"
        )
    else:
        status = "ok"
    out: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "coverage": cov["text"],
        "deletions": volume.get("requests"),
        "slo": {
            "target": target,
            "success_rate": rate,
            "met": None if rate is None else rate >= target,
            "requests": volume.get("requests"),
            "errors": volume.get("errors"),
        },
        "error_budget": {
            "period": period,
            "remaining": remaining,
            "requests": budget_vol.get("requests"),
            "errors": budget_vol.get("errors"),
            # partial: monitoring began inside the SLO period (counts since its first sample).
            "coverage": "partial" if budget_partial else "full",
        },
        "incidents": {
            "alerts_fired": len(alerts),
            "by_severity": dict(sorted(by_sev.items())),
            "alerts": alerts,
        },
        "top_recommendations": [],
    }
    if kind == "compliance":
        out["orphaned_records_now"] = figures["orphaned_records"]["now"]
        out["forbidden_successes"] = sum(figures["forbidden_successes"].values())
    return out


# --------------------------------------------------------------------------------------------
# Plots (data for render.py's SVG charts, HTML only)


def _unix(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _threshold(value: float, label: str) -> dict[str, Any]:
    return {"value": float(value), "label": label}


def _trend_plots(cfg: dict[str, Any], window: str, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-day charts of the trend report, the previous range drawn over this one (shifted by
    the range, dashed) so a week reads against the week before."""
    shift = parse_duration(window)
    lat = cfg["latency"]
    charts = (
        ("requests", "Deletions per day, this range against the previous one", "deletions", "", 1),
        ("error_rate", "Error rate per day", "error rate", "%", 100),
        ("p95_seconds", "p95 deletion time per day", "p95 deletion time", "s", 1),
    )
    thresholds = {
        "requests": [],
        "error_rate": [
            _threshold(cfg["errorRate"]["warning"] * 100, "error-rate warning (errorRate.warning)")
        ],
        "p95_seconds": [_threshold(lat["p95Target"], "p95 target (latency.p95Target)")],
    }
    out = []
    for key, title, label, unit, scale in charts:

        def points(
            rows: list[dict[str, Any]], offset: float, k: str = key, m: int = scale
        ) -> list[tuple[float, float]]:
            return [(_unix(d["day_end"]) + offset, d[k] * m) for d in rows if d.get(k) is not None]

        series: list[dict[str, Any]] = [
            {"name": f"this {window}", "points": points(figures["daily"], 0)}
        ]
        if figures.get("previous_daily"):
            series.append(
                {
                    "name": f"previous {window}",
                    "points": points(figures["previous_daily"], shift),
                    "dashed": True,
                }
            )
        out.append(
            {
                "type": "line",
                "title": title,
                "series": series,
                "y_label": label,
                "y_unit": unit,
                "x_label": "24 h ending (UTC)",
                "thresholds": thresholds[key],
            }
        )
    return out


def _covered_step(src: Source, window: str, probe: str | None = None) -> tuple[float, int, str]:
    """The span a time chart draws, its step and the range each point is computed over.

    The span is the part of the range the probe's data covers (Source.coverage): 48 minutes of
    data in a 7-day report are ~48 points a minute apart, not one dot at the range's 210-minute
    step. ~48 points per chart, a whole number of minutes apart; each point covers its own step
    (nothing skipped between points) and at least 5 minutes, so it holds several scrapes.
    """
    seconds = parse_duration(window)
    first = src.coverage(window, probe=probe).first
    span = min(seconds, max(60.0, src.at - first)) if first is not None else seconds
    step = max(60, int(span / 48) // 60 * 60)
    return span, step, format_duration(max(step, 300))


def plot_data(src: Source, kind: str, window: str, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Series for the HTML charts; empty when the report has no data.

    Each chart carries its axis labels and units and the config thresholds drawn on it
    (render.py draws them as labelled lines).
    """
    if not figures.get("data"):
        return []
    cfg = src.cfg
    if kind == "compliance":
        viol = selector("deletion_integrity_violations", src.integrity)
        span, step, step_s = _covered_step(src, window, viol)
        res = src.client.query_range(
            f"sum by (category) ({src.dedup(f'max_over_time({viol}[{step_s}])')})",
            src.at - span + step,
            src.at,
            step,
        )
        series = [{"name": r.labels.get("category", ""), "points": r.points} for r in res]
        tolerance = cfg["integrity"]["orphanTolerance"]
        return [
            {
                "type": "line",
                "title": f"Integrity violations by category (peak over each {step_s})",
                "series": sorted(series, key=lambda x: x["name"]),
                "y_label": "violations",
                "y_unit": "rows",
                "x_label": "time (UTC)",
                "thresholds": [
                    _threshold(tolerance, "orphaned-record tolerance (integrity.orphanTolerance)")
                ],
            }
        ]
    if kind == "trends":
        return _trend_plots(cfg, window, figures)
    span, lat_step, lat_step_s = _covered_step(src, window)
    buckets = selector("deletion_duration_seconds_bucket", src.audit)
    lines = []
    for q in (0.5, 0.95, 0.99):
        rate = src.dedup(f"rate({buckets}[{lat_step_s}])")
        res = src.client.query_range(
            f"histogram_quantile({q}, sum by (le) ({rate}))",
            src.at - span + lat_step,
            src.at,
            lat_step,
        )
        pts = [(t, v) for t, v in res[0].points if _num(v) is not None] if res else []
        lines.append({"name": f"p{int(q * 100)}", "points": pts})
    plots: list[dict[str, Any]] = [
        {
            "type": "line",
            "title": f"Deletion time percentiles (each point over {lat_step_s})",
            "series": lines,
            "y_label": "deletion time",
            "y_unit": "s",
            "x_label": "time (UTC)",
            "thresholds": [
                _threshold(cfg["latency"]["p95Target"], "p95 target (latency.p95Target)")
            ],
            "note": "Percentiles are interpolated within the histogram buckets "
            f"({', '.join(f'{b:g}' for b in cfg.get('durationBuckets', []))} s).",
        },
    ]
    by_hour = figures.get("by_hour")
    if by_hour is None:
        raw = src.total_by(selector("deletion_requests_by_hour_total", src.audit), window, "hour")
        cov = src.coverage(window).hour_of_day_seconds()
        by_hour = {
            h: (_count(raw.get(h)) or 0) if (raw.get(h) or cov[h] > 0) else None for h in HOURS
        }
    plots.append(
        {
            "type": "bars",
            "title": "Deletions by hour of day (UTC)",
            "bars": list(by_hour.items()),
            "y_label": "deletions",
            "y_unit": "",
            "x_label": "hour of day (UTC); n/a: no data for that hour",
        }
    )
    classes = figures.get("failure_classes")
    if classes is None:
        classes = _failure_classes(src, window)
    plots.append(
        {
            "type": "bars",
            "title": "Failure mix (failures by class)",
            "bars": [(r["error_type"], r["failures"]) for r in classes],
            "empty": "no failures in range",
            "y_label": "failures",
            "y_unit": "",
            "x_label": "failure class",
        }
    )
    return plots
