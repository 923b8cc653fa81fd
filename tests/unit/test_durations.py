"""deletion_monitor.common.durations: the one Prometheus-duration parser and formatter, and its
users."""

from __future__ import annotations

import math

import pytest

from deletion_monitor.common import promapi
from deletion_monitor.common.config import load_config
from deletion_monitor.common.durations import format_duration, parse_duration
from deletion_monitor_tools import dashboards_lib
from deletion_monitor_tools.render_dashboards import replace_macros

DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("0ms", 0),
        ("1ms", 0.001),
        ("500ms", 0.5),
        ("1000ms", 1),
        ("1500ms", 1.5),
        ("1s", 1),
        ("59s", 59),
        ("5m", 300),
        ("90m", 5400),
        ("1h30m", 5400),
        ("1m30s500ms", 90.5),
        ("2d", 2 * DAY),
        ("1w", 7 * DAY),
        ("1y", 365 * DAY),
        ("1y2w3d4h5m6s7ms", 365 * DAY + 17 * DAY + 4 * 3600 + 5 * 60 + 6.007),
        ("30d", 30 * DAY),
        ("365d", 365 * DAY),
        (" 7d ", 7 * DAY),  # surrounding whitespace (a command-line --range)
        ("007m", 420),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_gives_int_seconds_when_whole() -> None:
    assert type(parse_duration("5m")) is int
    assert type(parse_duration("2000ms")) is int
    assert type(parse_duration("0")) is int
    assert type(parse_duration("1ms")) is float
    assert parse_duration("1ms") == 0.001  # exact, not 1 * 0.001 = 0.0010000000000000002


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "5",  # no unit
        "m",  # no number
        "-5m",
        "+5m",
        "1.5h",
        "5M",
        "5x",
        "5 m",
        "1h 30m",
        "30m1h",  # units out of order
        "5m5m",  # a unit twice
        "1ms1s",
        "5mss",
        "0x10s",
        "1h-30m",
    ],
)
def test_parse_rejects_what_prometheus_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration") as exc:
        parse_duration(text)
    assert repr(text) in str(exc.value)


def test_parse_names_the_problem_of_a_negative_duration() -> None:
    with pytest.raises(ValueError, match="never negative"):
        parse_duration("-1h")
    with pytest.raises(TypeError):
        parse_duration(300)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0, "0s"),
        (0.0004, "0s"),  # below half a millisecond
        (0.001, "1ms"),
        (0.5, "500ms"),
        (1.5, "1500ms"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "90s"),
        (3600, "1h"),
        (5400, "90m"),  # single unit: shorter than 1h30m
        (DAY, "1d"),
        (7 * DAY, "1w"),
        (8 * DAY, "8d"),
        (14 * DAY, "2w"),
        (30 * DAY, "30d"),
        (365 * DAY, "365d"),  # never years: the config writes days
        (86399.9996, "1d"),  # rounded to the millisecond
        (3600.0, "1h"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, -0.001, math.inf, -math.inf, math.nan])
def test_format_rejects_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number of seconds >= 0"):
        format_duration(bad)


def test_format_rejects_non_numbers() -> None:
    for bad in ("5m", None, True):
        with pytest.raises(TypeError):
            format_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["0s", "1ms", "999ms", "1s", "5m", "90m", "1h", "1d", "1w", "8d", "365d", "52w"]
)
def test_format_of_parse_is_the_text_in_its_shortest_unit(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_every_duration_in_the_config_parses() -> None:
    def strings(node: object) -> list[str]:
        if isinstance(node, dict):
            return [s for key, v in node.items() for s in strings(key) + strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    windows = [s for s in strings(load_config(env={})) if s[:1].isdigit() and s[-1:].isalpha()]
    assert "30d" in windows and "5m" in windows
    for text in windows:
        assert parse_duration(text) > 0, text


# --- the places that used to carry their own parser -------------------------------------------
def test_dashboard_windows_are_whole_seconds_of_at_least_1s() -> None:
    assert dashboards_lib.window({"timeCompression": 1}, "1h30m") == "90m"
    assert dashboards_lib.window({"timeCompression": 60}, "5m") == "5s"
    assert dashboards_lib.window({"timeCompression": 60}, "30s") == "1s"  # 0.5 s: at least 1s
    assert dashboards_lib.window({"timeCompression": 7}, "1h") == "514s"
    assert dashboards_lib.window({"timeCompression": 1}, 300.4) == "5m"
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        dashboards_lib.window({}, "5 minutes")


def test_query_ranges_are_positive_whole_seconds() -> None:
    assert promapi.format_duration(300) == "5m"
    assert promapi.format_duration(1.6) == "2s"
    with pytest.raises(ValueError, match="must be positive"):
        promapi.format_duration(0.4)


def test_grafana_range_macros_accept_any_prometheus_duration() -> None:
    expr = "$__range_s $__range_ms $__interval_ms"
    assert replace_macros(expr, range_="1h30m", interval="30s") == "5400 5400000 30000"
    assert replace_macros(expr, range_="2d", interval="500ms") == "172800 172800000 500"


def test_stack_compresses_the_digest_route_timings() -> None:
    from deletion_monitor_demo.stack import _drop_time_windows

    route = {
        "routes": [
            {
                "active_time_intervals": ["daily-digest"],
                "group_wait": "1m",
                "group_interval": "15m",
                "repeat_interval": "20h",
            },
            {"group_wait": "30s"},  # no time window: left to the renderer's compression
        ]
    }
    _drop_time_windows(route, 60)
    digest, other = route["routes"]
    assert digest == {"group_wait": "1s", "group_interval": "15s", "repeat_interval": "1200s"}
    assert other == {"group_wait": "30s"}
    odd = {"active_time_intervals": ["x"], "group_wait": "soon"}
    _drop_time_windows(odd, 60)
    assert odd == {"group_wait": "soon"}  # not a duration: left alone, as before
