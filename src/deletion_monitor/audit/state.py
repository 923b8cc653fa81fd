"""In-memory state of the audit exporter and the collector that renders it.

Only the poller thread changes the state (under its lock); a scrape copies it under the same lock
and builds fresh metric families, so a scrape never touches the database and always sees whole
batches. Every counter here is a pure function of the rows ingested so far, and the rows are the
ones in the audit table: restarting the exporter rebuilds exactly the same values from the table.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from deletion_monitor import __version__

USER_TYPES: tuple[str, ...] = ("VENDOR", "CLIENT", "DRIVER", "ADMIN", "HELPDESK", "SUPER_ADMIN")
ERROR_TYPES: tuple[str, ...] = (
    "timeout",
    "authorization",
    "not_found",
    "business_logic",
    "constraint",
    "database",
    "unknown",
)
OUTCOMES: tuple[str, ...] = ("success", "failure")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
INVALID_REASONS: tuple[str, ...] = (
    "unknown_outcome",
    "non_finite_duration",
    "negative_duration",
    "bad_rows_deleted",
    "duration_too_large",
    "bad_occurred_at",
    "rows_deleted_too_large",
)
# A duration above this is not a real request (11.6 days): it is counted as invalid, which also
# keeps every float sum finite (two rows of 1e308 would overflow SQL's sum() and stop ingestion).
MAX_DURATION_SECONDS = 1e6
# rows_deleted counts with more digits than this are invalid: sums of such values stay exact in a
# float64 (2**53 ~ 9.007e15) and no numeric -> float8 cast can overflow.
MAX_ROWS_DELETED_DIGITS = 15
# occurred_at must lie in [MIN_OCCURRED_AT, MAX_OCCURRED_AT) (UTC): the years Python's datetime and
# the epoch math handle. 'infinity', '-infinity', BC dates and years >= 10000 are invalid.
MIN_OCCURRED_AT = "0001-01-01 00:00:00+00"
MAX_OCCURRED_AT = "10000-01-01 00:00:00+00"
FORBIDDEN_KINDS: tuple[str, ...] = ("self_deletion", "super_admin")
# The contract's buckets (config durationBuckets); the CLI passes the config's list.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    2.5,
    3,
    4,
    5,
    7.5,
    10,
    15,
    20,
    30,
)
CASCADE_BUCKETS: tuple[float, ...] = (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
POLL_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
OTHER = "other"
# Deletion durations are summed in whole nanoseconds (Hist.scale): exact, batch-independent.
NANOSECONDS = 1e9
# App versions remembered for first-seen ordering; old ones beyond this are forgotten (bounded RAM).
_APP_VERSION_MEMORY = 1000


def _le(bound: float) -> str:
    """Prometheus `le` label text, the same as prometheus_client's own histograms."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass
class Hist:
    """Non-cumulative bucket counts (last one is +Inf) plus the sum of observations.

    `total` is kept in units of 1/`scale`: the deletion histograms keep whole nanoseconds (an
    exact int, scale 1e9) so that the served _sum is the same float however the rows were
    batched; the exporter's own poll timings are plain float seconds (scale 1).
    """

    counts: list[int]
    total: float = 0.0
    scale: float = 1.0

    @classmethod
    def empty(cls, n_bounds: int, scale: float = 1.0) -> Hist:
        return cls([0] * (n_bounds + 1), 0, scale)

    def cumulative(self, bounds: Sequence[float]) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, count in zip([*bounds, math.inf], self.counts, strict=True):
            acc += count
            out.append((_le(bound), float(acc)))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def sum(self) -> float:
        """The sum of observations in base units, as served."""
        return self.total / self.scale if self.scale != 1 else float(self.total)


@dataclass
class AuditState:
    """Everything the exporter serves. Mutated only through AuditStateStore.apply()."""

    duration_bounds: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    max_tables: int = 50
    max_app_versions: int = 5
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    duration: dict[tuple[str, str], Hist] = field(default_factory=dict)
    large: Hist | None = None
    cascade: Hist = field(default_factory=lambda: Hist.empty(len(CASCADE_BUCKETS)))
    rows_deleted: dict[str, int] = field(default_factory=dict)
    by_hour: dict[str, int] = field(default_factory=dict)
    by_weekday: dict[str, int] = field(default_factory=dict)
    forbidden: dict[str, int] = field(default_factory=dict)
    app_versions: dict[str, float] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    ingested: int = 0
    first_row_ts: float | None = None  # occurred_at of the first valid row: the `_created` time
    first_any_row_ts: float | None = None
    last_row_ts: float | None = None
    # (tx, id) of the last row the aggregates include: set in the same step as the rows they
    # describe (AuditStateStore.apply), so a checkpoint of one snapshot is always consistent.
    cursor: tuple[int, int] | None = None
    # Self-metrics of this process (they reset on restart, as process metrics do).
    loaded: bool = False  # deletion_audit_ready: the start-up aggregate is published
    up: int = 0  # the database answers (1 while a start-up load progresses)
    last_poll_success_ts: float | None = None
    poll_errors: int = 0
    poll_hist: Hist = field(default_factory=lambda: Hist.empty(len(POLL_BUCKETS)))
    cursor_lag: float = 0.0
    initial_load_seconds: float | None = None
    load_rows_done: int = 0
    load_rows_estimated: int | None = None
    foreign_tx_rows: int | None = None
    rows_unaccounted: int | None = None
    # How this process started (deletion_audit_startup_info) and its checkpoint writes.
    startup_source: str | None = None  # "checkpoint" | "full_aggregation", once known
    startup_reason: str | None = None  # checkpoint.STARTUP_REASONS
    checkpoint_writes: int = 0
    checkpoint_write_errors: int = 0
    checkpoint_last_write_ts: float | None = None
    checkpoint_bytes: int | None = None
    process_start: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.large is None:
            self.large = Hist.empty(len(self.duration_bounds), NANOSECONDS)


@dataclass
class Delta:
    """What one aggregate query (start-up or one tail batch) adds to the state."""

    groups: list[Mapping[str, Any]]
    tables: list[tuple[str, int]]  # (table, rows) in first-appearance order of new tables


def _add(d: dict[Any, int], key: Any, n: int) -> None:
    d[key] = d.get(key, 0) + n


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    # Not max(filter(None, ...)): that drops a timestamp of 0.0 (a row at the epoch) and raises
    # on an empty sequence.
    if a is None:
        return b
    return a if b is None else max(a, b)


def _ts(value: Any) -> float | None:
    """Epoch seconds from the aggregate (float8 from SQL), or None."""
    if value is None:
        return None
    ts = value.timestamp() if hasattr(value, "timestamp") else float(value)
    return ts if math.isfinite(ts) else None


# The fields that are a function of the rows ingested (the rest are this process's self-metrics).
ROW_FIELDS: tuple[str, ...] = (
    "requests",
    "failures",
    "duration",
    "large",
    "cascade",
    "rows_deleted",
    "by_hour",
    "by_weekday",
    "forbidden",
    "app_versions",
    "invalid",
    "ingested",
    "first_row_ts",
    "first_any_row_ts",
    "last_row_ts",
    "cursor",
)
_DICT_FIELDS: tuple[str, ...] = (
    "requests",
    "failures",
    "rows_deleted",
    "by_hour",
    "by_weekday",
    "forbidden",
    "app_versions",
    "invalid",
)


def clone_state(s: AuditState) -> AuditState:
    """A copy that shares nothing mutable with `s` (containers and Hist objects copied)."""
    copy = AuditState(**{k: getattr(s, k) for k in s.__dataclass_fields__})
    for name in _DICT_FIELDS:
        setattr(copy, name, dict(getattr(s, name)))
    copy.duration = {k: Hist(list(h.counts), h.total, h.scale) for k, h in s.duration.items()}
    assert s.large is not None
    copy.large = Hist(list(s.large.counts), s.large.total, s.large.scale)
    copy.cascade = Hist(list(s.cascade.counts), s.cascade.total, s.cascade.scale)
    copy.poll_hist = Hist(list(s.poll_hist.counts), s.poll_hist.total)
    return copy


def merge(s: AuditState, delta: Delta) -> None:
    """Add the aggregate groups of one query (see audit/sql.py, AGGREGATE_SQL) to `s` in place.

    May raise halfway (a malformed group): callers merge into a copy (AuditStateStore.apply).
    """
    nb = len(s.duration_bounds)
    for g in delta.groups:
        kind, n, reason = g["kind"], int(g["n"]), g["invalid"]
        if kind == "rows":
            s.ingested += n
            s.last_row_ts = _max(s.last_row_ts, _ts(g["max_at"]))
            s.first_any_row_ts = _min(s.first_any_row_ts, _ts(g["min_at"]))
            if reason is None:
                s.first_row_ts = _min(s.first_row_ts, _ts(g["min_at"]))
            else:
                _add(s.invalid, reason, n)
            continue
        if kind == "app_version":
            seen = _ts(g["min_at"])
            # A version seen only on rows whose occurred_at is unusable has no first-seen time.
            if g["app_version"] is not None and seen is not None:
                old = s.app_versions.get(g["app_version"])
                s.app_versions[g["app_version"]] = seen if old is None else min(old, seen)
            continue
        if reason is not None:
            continue  # malformed rows count only in invalid_rows_total
        if kind == "main":
            outcome, ut = g["outcome"], g["user_type"]
            _add(s.requests, ut, n)
            if outcome == "failure":
                _add(s.failures, (ut, g["error_type"]), n)
            # bucket None: no duration recorded (the legacy log), a call without a latency to
            # observe; deletion_requests_without_duration_total is derived from these counts.
            if g["bucket"] is not None:
                db = int(g["bucket"])
                hist = s.duration.setdefault((outcome, ut), Hist.empty(nb, NANOSECONDS))
                hist.counts[db] += n
                hist.total += int(g["dsum_ns"])
                if g["large"]:
                    assert s.large is not None
                    s.large.counts[db] += n
                    s.large.total += int(g["dsum_ns"])
            if outcome == "success" and ut == "SUPER_ADMIN":
                _add(s.forbidden, "super_admin", n)
            if outcome == "success" and g["self_del"]:
                _add(s.forbidden, "self_deletion", n)
        elif kind == "hour":
            _add(s.by_hour, f"{int(g['hour']):02d}", n)
        elif kind == "weekday":
            _add(s.by_weekday, WEEKDAYS[int(g["weekday"]) - 1], n)
        elif kind == "cascade" and g["cbucket"] is not None:
            s.cascade.counts[int(g["cbucket"])] += n
            s.cascade.total += int(g["tsum"])  # whole rows: exact
    for table, rows in delta.tables:
        if table not in s.rows_deleted and len(s.rows_deleted) >= s.max_tables:
            table = OTHER  # first max_tables tables keep their name, the rest share one
        _add(s.rows_deleted, table, int(rows))
    if len(s.app_versions) > _APP_VERSION_MEMORY:
        keep = sorted(s.app_versions.items(), key=lambda kv: (kv[1], kv[0]))
        s.app_versions = dict(keep[-_APP_VERSION_MEMORY:])


def delta_rows(delta: Delta) -> int:
    """Rows (valid and invalid) one Delta covers."""
    return sum(int(g["n"]) for g in delta.groups if g["kind"] == "rows")


class AuditStateStore:
    """The state plus its lock; apply() merges a Delta, snapshot() copies for a scrape."""

    def __init__(self, state: AuditState) -> None:
        self._state = state
        self._lock = threading.Lock()

    def apply(self, delta: Delta, **fields: Any) -> None:
        """Merge one Delta all-or-nothing: on a copy, swapped in only when the merge completed.

        A merge that raised halfway and was swapped in anyway would be merged again when the
        poll is retried (the cursor did not move): rows counted twice, for good. `fields`
        (self-metric fields that describe the new cursor, such as cursor_lag) are set in the
        same step, so no scrape sees the rows counted with the lag of their being held back.
        """
        with self._lock:
            new = clone_state(self._state)
            merge(new, delta)
            for key, value in fields.items():
                setattr(new, key, value)
            self._state = new

    def publish_rows(self, source: AuditState, *, loaded: bool = True, **fields: Any) -> None:
        """Adopt the row-derived fields of `source` (a private start-up state), set the given
        self-metric fields and mark loaded, in one step: no scrape sees a half-published load.

        loaded=False adopts a restored checkpoint without serving it yet: its values may be
        older than what this exporter served before it restarted (a counter that went down),
        so they are served only once the tail has caught up to the head of the table."""
        copy = clone_state(source)
        with self._lock:
            new = clone_state(self._state)
            for name in ROW_FIELDS:
                setattr(new, name, getattr(copy, name))
            for key, value in fields.items():
                setattr(new, key, value)
            new.loaded = loaded
            self._state = new

    def table_names(self) -> set[str]:
        with self._lock:
            return set(self._state.rows_deleted)

    def update(self, **fields: Any) -> None:
        """Set self-metric fields (up, cursor_lag, ...) atomically."""
        with self._lock:
            for key, value in fields.items():
                setattr(self._state, key, value)

    def poll_finished(self, seconds: float, ok: bool) -> None:
        with self._lock:
            s = self._state
            s.poll_hist.counts[_bucket_index(POLL_BUCKETS, seconds)] += 1
            s.poll_hist.total += seconds
            if ok:
                s.up, s.last_poll_success_ts = 1, time.time()
            else:
                s.up = 0
                s.poll_errors += 1

    def snapshot(self) -> AuditState:
        """A copy for rendering (containers copied; Hist objects copied)."""
        with self._lock:
            return clone_state(self._state)


def _bucket_index(bounds: Sequence[float], value: float) -> int:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


def _counter_by(
    name: str,
    doc: str,
    label: str,
    keys: Iterable[str],
    counts: Mapping[str, float],
    created: float | None,
) -> CounterMetricFamily:
    """One counter per value of a bounded label, every known value published (from 0)."""
    fam = CounterMetricFamily(name, doc, labels=[label])
    for key in keys:
        fam.add_metric([key], counts.get(key, 0), created=created)
    return fam


def _optional_gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    """A gauge with no sample while its value is unknown (absent, not a misleading 0)."""
    fam = GaugeMetricFamily(name, doc)
    if value is not None:
        fam.add_metric([], value)
    return fam


def _histogram(
    name: str,
    doc: str,
    labelnames: Sequence[str],
    items: Iterable[tuple[Sequence[str], Hist]],
    bounds: Sequence[float],
    created: float | None,
) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=labelnames)
    for labels, hist in items:
        fam.add_metric(list(labels), hist.cumulative(bounds), hist.sum)
        if created is not None:
            # HistogramMetricFamily.add_metric has no `created`; add the sample the same way
            # CounterMetricFamily does, so histograms get the same stable created time.
            fam.samples.append(
                Sample(f"{name}_created", dict(zip(labelnames, labels, strict=True)), created)
            )
    return fam


class AuditCollector:
    """prometheus_client custom collector: fresh families from a state snapshot per scrape."""

    def __init__(self, store: AuditStateStore) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        # An empty describe() keeps register() from calling collect() (which needs no DB anyway).
        return []

    def collect(self) -> Iterable[Metric]:
        s = self.store.snapshot()
        yield from self._self_metrics(s)
        if not s.loaded:
            # Before the start-up aggregate has run, publish no deletion counters at all: a
            # counter that went 0 -> all-time total would look like a burst of deletions.
            return
        created = s.first_row_ts
        bounds = s.duration_bounds

        fam = CounterMetricFamily(
            "deletion_requests",
            "DELETE /api/users/{id} calls recorded in the audit log, by deleted user's type.",
            labels=["user_type"],
        )
        for ut in (*USER_TYPES, OTHER):
            if ut in s.requests or ut != OTHER:
                fam.add_metric([ut], s.requests.get(ut, 0), created=created)
        yield fam

        fam = CounterMetricFamily(
            "deletion_failures",
            "Failed deletion calls by deleted user's type and error class.",
            labels=["user_type", "error_type"],
        )
        # Every known (user_type, error_type) pair is published from 0: a series born at its
        # first failure would hide that failure from rate()/increase() (no earlier sample), so
        # the first timeouts of the hour would not count towards "> 5 per hour".
        failures = {(ut, et): 0.0 for ut in USER_TYPES for et in ERROR_TYPES}
        failures.update(s.failures)
        for (ut, et), n in sorted(failures.items()):
            fam.add_metric([ut, et], n, created=created)
        yield fam

        yield _histogram(
            "deletion_duration_seconds",
            "Wall time of deletion calls (audit duration_seconds).",
            ["outcome", "user_type"],
            sorted(s.duration.items()),
            bounds,
            created,
        )
        yield self._without_duration(s, created)
        assert s.large is not None
        yield _histogram(
            "deletion_large_cascade_duration_seconds",
            "Wall time of successful deletions whose cascade removed at least the "
            "large-cascade threshold of rows (complex deletions).",
            [],
            [((), s.large)],
            bounds,
            created,
        )
        fam = CounterMetricFamily(
            "deletion_rows_deleted",
            "Rows removed by successful deletions, per table (rows_deleted); capped tables.",
            labels=["table"],
        )
        for table, n in sorted(s.rows_deleted.items()):
            fam.add_metric([table], n, created=created)
        yield fam
        yield _histogram(
            "deletion_cascade_rows",
            "Total rows removed per successful deletion (sum of rows_deleted).",
            [],
            [((), s.cascade)],
            CASCADE_BUCKETS,
            created,
        )
        yield _counter_by(
            "deletion_requests_by_hour",
            "Deletion calls by UTC hour of occurred_at (usage pattern).",
            "hour",
            (f"{hour:02d}" for hour in range(24)),
            s.by_hour,
            created,
        )
        yield _counter_by(
            "deletion_requests_by_weekday",
            "Deletion calls by UTC weekday of occurred_at (usage pattern).",
            "weekday",
            WEEKDAYS,
            s.by_weekday,
            created,
        )
        yield _counter_by(
            "deletion_forbidden_successes",
            "Successful deletions the business rules forbid (self-deletion, SUPER_ADMIN target).",
            "kind",
            FORBIDDEN_KINDS,
            s.forbidden,
            created,
        )

        recent = sorted(s.app_versions.items(), key=lambda kv: (kv[1], kv[0]))[
            -s.max_app_versions :
        ]
        gauge = GaugeMetricFamily(
            "deletion_app_version_first_seen_timestamp_seconds",
            "occurred_at of the first audit row of each recent app_version (deploy marker).",
            labels=["app_version"],
        )
        for version, seen in recent:
            gauge.add_metric([version], seen)
        yield gauge
        gauge = GaugeMetricFamily(
            "deletion_app_version_info",
            "1 for the newest app_version by first appearance.",
            labels=["app_version"],
        )
        if recent:
            gauge.add_metric([recent[-1][0]], 1)
        yield gauge

    @staticmethod
    def _without_duration(s: AuditState, created: float | None) -> CounterMetricFamily:
        """Calls counted in deletion_requests_total but absent from deletion_duration_seconds.

        Derived, not stored: calls of an (outcome, user_type) minus the observations of its
        histogram. Every counter it reads is already kept (and checkpointed), so it is exact
        wherever they are, and duration_count + this = the calls of each label pair.
        """
        fam = CounterMetricFamily(
            "deletion_requests_without_duration",
            "Deletion calls whose audit row has no duration (legacy log: latency never "
            "recorded); counted in deletion_requests_total, not in deletion_duration_seconds.",
            labels=["outcome", "user_type"],
        )
        failed: dict[str, int] = {}
        for (ut, _et), n in s.failures.items():
            failed[ut] = failed.get(ut, 0) + n
        for outcome in OUTCOMES:
            # The six types from 0 (increase() must see the first such call); `other` when seen.
            for ut in (*USER_TYPES, OTHER):
                if ut == OTHER and ut not in s.requests:
                    continue
                calls = failed.get(ut, 0)
                if outcome == "success":
                    calls = s.requests.get(ut, 0) - calls
                hist = s.duration.get((outcome, ut))
                observed = hist.count if hist is not None else 0
                fam.add_metric([outcome, ut], calls - observed, created=created)
        return fam

    def _self_metrics(self, s: AuditState) -> Iterable[Metric]:
        rows_created = s.first_any_row_ts
        yield GaugeMetricFamily(
            "deletion_audit_up",
            "1 if the database answers: the last poll succeeded, or the start-up load is "
            "progressing.",
            value=s.up,
        )
        yield GaugeMetricFamily(
            "deletion_audit_ready",
            "1 once the start-up aggregate has finished and deletion counters are served.",
            value=1 if s.loaded else 0,
        )
        yield GaugeMetricFamily(
            "deletion_audit_initial_load_rows_done",
            "Audit rows the start-up aggregate has read so far (all of them once ready).",
            value=s.load_rows_done,
        )
        yield _optional_gauge(
            "deletion_audit_initial_load_rows_estimated",
            "Estimated rows of the start-up aggregate (pg_class.reltuples); equals rows_done "
            "once ready.",
            s.load_rows_estimated,
        )
        yield _optional_gauge(
            "deletion_audit_foreign_tx_rows",
            "Committed audit rows whose tx is ahead of this cluster's transaction ids (written "
            "by another cluster): the cursor can never reach them.",
            s.foreign_tx_rows,
        )
        yield _optional_gauge(
            "deletion_audit_rows_behind_cursor_unaccounted",
            "Rows at or below the cursor in the table minus rows ingested (periodic count): "
            "> 0 rows inserted behind the cursor (never ingested), < 0 rows deleted.",
            s.rows_unaccounted,
        )
        yield _optional_gauge(
            "deletion_audit_last_row_timestamp_seconds",
            "Largest occurred_at of the audit rows ingested so far.",
            s.last_row_ts,
        )
        yield _optional_gauge(
            "deletion_audit_last_poll_success_timestamp_seconds",
            "Unix time of the last successful database poll.",
            s.last_poll_success_ts,
        )
        if s.loaded:
            fam = CounterMetricFamily(
                "deletion_audit_rows_ingested",
                "Audit rows read (valid and invalid); equals the table's row count once caught up.",
            )
            fam.add_metric([], s.ingested, created=rows_created)
            yield fam
            yield _counter_by(
                "deletion_audit_invalid_rows",
                "Malformed audit rows skipped, by reason.",
                "reason",
                INVALID_REASONS,
                s.invalid,
                rows_created,
            )
        fam = CounterMetricFamily(
            "deletion_audit_poll_errors",
            "Database polls (or connection attempts) that failed since the exporter started.",
        )
        fam.add_metric([], s.poll_errors, created=s.process_start)
        yield fam
        yield _histogram(
            "deletion_audit_poll_duration_seconds",
            "Duration of database polls.",
            [],
            [((), s.poll_hist)],
            POLL_BUCKETS,
            s.process_start,
        )
        yield GaugeMetricFamily(
            "deletion_audit_cursor_lag_seconds",
            "Age of the oldest committed audit row the cursor cannot pass yet (an older "
            "transaction is still open): now minus the poll that first saw it; 0 if none.",
            value=s.cursor_lag,
        )
        yield _optional_gauge(
            "deletion_audit_initial_load_duration_seconds",
            "Seconds the start-up aggregate over the audit table took.",
            s.initial_load_seconds,
        )
        if s.startup_source is not None:
            gauge = GaugeMetricFamily(
                "deletion_audit_startup_info",
                "1: how this process got its counters: source checkpoint (resumed from a "
                "validated checkpoint) or full_aggregation (read the whole table), and why.",
                labels=["source", "reason"],
            )
            gauge.add_metric([s.startup_source, s.startup_reason or ""], 1)
            yield gauge
        fam = CounterMetricFamily(
            "deletion_audit_checkpoint_writes",
            "Checkpoints (cursor and aggregates) written since the exporter started.",
        )
        fam.add_metric([], s.checkpoint_writes, created=s.process_start)
        yield fam
        fam = CounterMetricFamily(
            "deletion_audit_checkpoint_write_errors",
            "Checkpoint writes that failed since the exporter started (the next one retries).",
        )
        fam.add_metric([], s.checkpoint_write_errors, created=s.process_start)
        yield fam
        yield _optional_gauge(
            "deletion_audit_checkpoint_last_write_timestamp_seconds",
            "Unix time of the last checkpoint written.",
            s.checkpoint_last_write_ts,
        )
        yield _optional_gauge(
            "deletion_audit_checkpoint_size_bytes",
            "Size of the last checkpoint written.",
            s.checkpoint_bytes,
        )
        gauge = GaugeMetricFamily(
            "deletion_audit_exporter_info", "Exporter version.", labels=["version"]
        )
        gauge.add_metric([__version__], 1)
        yield gauge
