"""Prometheus durations ("5m", "1h30m", "2d", "500ms"): the one parser and formatter.

Dashboards, reports, the watch console and the local stack read the config's windows
("evidenceWindows: ['1h', '6h']", "slo.period: '30d'") and command-line ranges with
parse_duration(), and write ranges back into PromQL with format_duration().

The grammar is Prometheus' own (model.ParseDuration): one or more `<digits><unit>` parts with the
units y (365 days), w, d, h, m, s, ms, each at most once and largest first; "0" alone is zero.
Fractions ("1.5h"), signs, spaces between parts and other units are not durations.
"""

from __future__ import annotations

import math
import re

# Milliseconds per unit, largest first (the order the grammar requires): integer arithmetic keeps
# every sum exact.
_UNIT_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_DURATION = re.compile("".join(rf"(?:(\d+){u})?" for u in _UNIT_MS))
# format_duration's units above ms: no years (a year is no whole number of weeks; "365d" stays
# days, as the config writes it).
_FORMAT_UNITS = ("w", "d", "h", "m", "s")
_EXPECTED = "expected e.g. 30s, 5m, 1h30m, 7d or 500ms: units y w d h m s ms, largest first"


def parse_duration(text: str) -> float:
    """Seconds in the Prometheus duration `text`: an int when they are whole, else a float.

    Surrounding whitespace is ignored. Raises ValueError naming `text` for anything else than a
    duration (empty, negative, fractional, unknown or repeated units, units out of order).
    """
    if not isinstance(text, str):
        raise TypeError(f"a Prometheus duration is a string, got {type(text).__name__}")
    stripped = text.strip()
    if stripped == "0":
        return 0
    match = _DURATION.fullmatch(stripped)
    if not stripped or match is None:
        why = "a duration is never negative" if stripped.startswith("-") else _EXPECTED
        raise ValueError(f"not a Prometheus duration: {text!r}; {why}")
    ms = sum(
        int(n) * size
        for n, size in zip(match.groups(), _UNIT_MS.values(), strict=True)
        if n is not None
    )
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def format_duration(seconds: float) -> str:
    """The shortest single-unit Prometheus duration of `seconds`, exact to the millisecond.

    The largest of w, d, h, m, s, ms that divides the duration: 5400 -> "90m", 1.5 -> "1500ms",
    0 -> "0s". `seconds` is rounded to whole milliseconds; callers that need whole seconds (a
    query range, a compressed window of at least 1s) round before. Raises ValueError for a
    negative, infinite or NaN value.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration is a finite number of seconds >= 0, got {seconds!r}")
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    for unit in _FORMAT_UNITS:
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
