"""A small client for the Prometheus HTTP API (urllib only): instant and range queries, alerts.

Used by `deletion-monitor watch` and `deletion-monitor report`. Every failure (unreachable server,
HTTP error, a query Prometheus rejects, a malformed answer) raises PrometheusError with a one-line
message that names the URL or the query, so commands can print it and exit 2.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from deletion_monitor.common import durations

DEFAULT_URL = "http://127.0.0.1:9090"
# VictoriaMetrics' flags on its /metrics page: flag{name="retentionPeriod", value="365d", ...} 1
_VM_RETENTION_FLAG = re.compile(r'^flag\{name="retentionPeriod", value="([^"]+)"', re.MULTILINE)


def dedup(expr: str, replica_labels: list[str] | tuple[str, ...]) -> str:
    """Collapse the replicas of one exporter (config replicaLabels) in an instant-vector `expr`.

    Two audit exporters on one table (or two integrity exporters) serve identical series that
    differ only in their target labels; `max without (...)` keeps one, so a sum() over the result
    counts each deletion once. The same form as util.dedup() in the rules.
    """
    if not replica_labels:
        return expr
    return f"max without ({', '.join(replica_labels)}) ({expr})"


class PrometheusError(RuntimeError):
    """Prometheus could not be queried; the message is one line and says why."""


def format_duration(seconds: float) -> str:
    """A query range or step: `seconds` rounded to whole seconds, which must be more than 0,
    as the shortest Prometheus duration (durations.format_duration)."""
    secs = round(seconds)
    if secs <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    return durations.format_duration(secs)


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query result: its labels and value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range-query result: its labels and (unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def _float(raw: str) -> float:
    # Prometheus encodes values as strings, including "NaN", "+Inf" and "-Inf".
    return float(raw)


class PrometheusClient:
    """Synchronous Prometheus HTTP API client with a per-request timeout."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PrometheusError(f"prometheus: not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        body = urllib.parse.urlencode(params or {}).encode() if params else None
        # POST form-encoded: long PromQL expressions would not fit in a GET URL everywhere.
        req = urllib.request.Request(url, data=body, method="POST" if body else "GET")
        if body:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                detail = json.loads(exc.read() or b"{}").get("error", "")
            except (ValueError, AttributeError):
                pass
            query = (params or {}).get("query", "")
            where = f" for query {query!r}" if query else ""
            msg = f"prometheus at {self.base_url}: HTTP {exc.code}{where}"
            raise PrometheusError(f"{msg}: {detail}" if detail else msg) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                reason = f"no answer within {self.timeout:g}s"
            raise PrometheusError(f"prometheus at {self.base_url} unreachable: {reason}") from None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise PrometheusError(f"prometheus at {self.base_url}: answer is not JSON") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            err = payload.get("error", "unknown error") if isinstance(payload, dict) else "?"
            raise PrometheusError(f"prometheus at {self.base_url}: {err}")
        return payload.get("data")

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Instant query; returns one Sample per series (a scalar becomes one unlabeled Sample)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        rtype = data.get("resultType")
        result = data.get("result")
        if rtype == "vector":
            return [Sample(dict(r["metric"]), _float(r["value"][1])) for r in result]
        if rtype == "scalar":
            return [Sample({}, _float(result[1]))]
        raise PrometheusError(f"prometheus: query {expr!r} returned a {rtype}, expected a vector")

    def query_value(self, expr: str, at: float | None = None) -> float | None:
        """The value of a single-series instant query; None when the result is empty or NaN."""
        samples = self.query(expr, at)
        if not samples:
            return None
        value = samples[0].value
        return None if math.isnan(value) else value

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """Range query evaluated every `step` seconds from `start` to `end`."""
        params = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step:g}",
        }
        data = self._get("/api/v1/query_range", params)
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"prometheus: range query {expr!r} did not return a matrix")
        return [
            Series(dict(r["metric"]), [(float(t), _float(v)) for t, v in r["values"]])
            for r in data["result"]
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts the server's rule manager holds now (pending and firing)."""
        data = self._get("/api/v1/alerts")
        return list(data.get("alerts", []))

    def flags(self) -> dict[str, str]:
        """The server's command-line flags (/api/v1/status/flags)."""
        data = self._get("/api/v1/status/flags")
        return dict(data) if isinstance(data, dict) else {}

    def retention(self) -> tuple[str, str] | None:
        """The retention the queried store runs with, and which flag says so; None when unknown.

        Prometheus lists its flags at /api/v1/status/flags. VictoriaMetrics (the long-term store
        of docs/scaling.md) answers that endpoint 400, but exports every flag on /metrics as
        `flag{name="retentionPeriod", value="365d"} 1`. Never raises: a proxy that hides both
        endpoints leaves the report with the configured retention only.
        """
        try:
            running = self.flags().get("storage.tsdb.retention.time")
            if running:
                return running, "Prometheus --storage.tsdb.retention.time"
        except PrometheusError:
            pass
        try:
            with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=self.timeout) as r:
                text = r.read(4_000_000).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            return None
        match = _VM_RETENTION_FLAG.search(text)
        return (match.group(1), "VictoriaMetrics -retentionPeriod") if match else None

    def ready(self) -> bool:
        """True when /-/ready answers 200; never raises."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=self.timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False
