"""Fault switches of the demo application, changed at run time through POST /admin/faults.

Each switch reproduces one incident the monitoring must catch, through the real code path (a
real failing SQL statement, a real statement timeout, real resident memory), never by writing a
fake audit row.
"""

from __future__ import annotations

import dataclasses
import mmap
import random
import threading
from typing import Any

PAGE = 4096


@dataclasses.dataclass
class FaultState:
    """The switches; all off by default."""

    # Fraction of deletions that hit a database error inside their transaction (500, database).
    error_rate: float = 0.0
    # Extra seconds every deletion spends in the database (a latency regression).
    latency_seconds: float = 0.0
    # Fraction of deletions whose query outlives the statement timeout (504, timeout).
    timeout_rate: float = 0.0
    # Bytes kept forever per deletion (a leak in the deletion path), up to leak_max_ratio of the
    # memory limit so that the demo itself is never OOM-killed.
    leak_bytes_per_request: int = 0
    leak_max_ratio: float = 0.97
    # Skip the manual clean-up of dispatches, file_uploads and addresses, with the schema's
    # constraints bypassed: what a code path that forgot them leaves behind (orphans).
    skip_cleanup: bool = False
    # The endpoint skips authentication (a regression): anyone may delete, and the blackbox
    # probe's bogus token gets 404 instead of 401/403.
    auth_bypass: bool = False
    # Median of the normal work time of a deletion (log-normal); 0 = as fast as the DB allows.
    base_latency_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(FaultState)}


def parse_faults(payload: Any, base: FaultState | None = None) -> FaultState:
    """A new FaultState from a JSON object; raises ValueError naming the bad field."""
    if not isinstance(payload, dict):
        raise ValueError("faults: expected a JSON object")
    values = dataclasses.asdict(base or FaultState())
    for key, raw in payload.items():
        field = _FIELDS.get(key)
        if field is None:
            raise ValueError(f"faults: unknown field {key!r}")
        default = getattr(FaultState(), key)
        try:
            if isinstance(default, bool):
                if not isinstance(raw, bool):
                    raise TypeError
                value: Any = raw
            elif isinstance(default, int):
                value = int(raw)
            else:
                value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"faults: {key}: expected {type(default).__name__}") from None
        if not isinstance(value, bool) and value < 0:
            raise ValueError(f"faults: {key}: must not be negative")
        if key.endswith(("_rate", "_ratio")) and value > 1:
            raise ValueError(f"faults: {key}: a fraction between 0 and 1")
        values[key] = value
    return FaultState(**values)


class Faults:
    """Thread-safe holder of the current FaultState and of the leaked memory."""

    def __init__(self, memory_limit_bytes: int) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()
        self._leaked: list[mmap.mmap] = []
        self._leaked_bytes = 0
        self.memory_limit_bytes = memory_limit_bytes

    @property
    def state(self) -> FaultState:
        with self._lock:
            return self._state

    def update(self, payload: Any) -> FaultState:
        """Merge `payload` into the current switches (ValueError on a bad field)."""
        with self._lock:
            self._state = parse_faults(payload, self._state)
            if self._state.leak_bytes_per_request == 0:
                self._release()
            return self._state

    def reset(self) -> FaultState:
        """All switches off and leaked memory returned; the base latency is kept."""
        with self._lock:
            base = self._state.base_latency_seconds
            self._state = FaultState(base_latency_seconds=base)
            self._release()
            return self._state

    def _release(self) -> None:
        for block in self._leaked:
            block.close()
        self._leaked.clear()
        self._leaked_bytes = 0

    @property
    def leaked_bytes(self) -> int:
        return self._leaked_bytes

    def leak(self, current_rss: int) -> None:
        """Keep leak_bytes_per_request of resident memory, unless near the limit."""
        state = self.state
        size = state.leak_bytes_per_request
        if size <= 0 or current_rss + size > state.leak_max_ratio * self.memory_limit_bytes:
            return
        # An anonymous mapping, every page written: resident for sure, and munmap gives it back
        # on reset (a bytes object could stay in the allocator's heap after it is freed).
        block = mmap.mmap(-1, size)
        for offset in range(0, size, PAGE):
            block[offset] = 1
        with self._lock:
            self._leaked.append(block)
            self._leaked_bytes += size

    def work_seconds(self, rng: random.Random) -> float:
        """Time this deletion spends in the database: normal work plus the latency fault."""
        state = self.state
        base = state.base_latency_seconds
        normal = rng.lognormvariate(0, 0.6) * base if base > 0 else 0.0
        return min(normal, 4 * base) + state.latency_seconds
