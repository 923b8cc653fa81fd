"""Argument types and flags shared by every long-running `deletion-monitor` command.

argparse types raise ArgumentTypeError, so a bad value ends in the CLI's one-line error naming
the flag (`argument --listen: expected [HOST]:PORT, got 'x'`) and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from deletion_monitor.common.promapi import DEFAULT_URL

LOG_LEVELS = ("debug", "info", "warning", "error")


def listen_address(value: str) -> tuple[str, int]:
    """'[HOST]:PORT' -> (host, port); an empty host means every interface, as exporters do."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected [HOST]:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def seconds(most: float) -> Callable[[str], float]:
    """argparse type: a finite number of seconds, > 0 and <= `most`.

    float() accepts 'nan', 'inf' and '1e999': a NaN interval compares false with everything
    (`wait(nan)` returns at once: a busy loop) and an infinite one never comes round.
    """

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {value!r}"
            ) from None
        if not math.isfinite(number) or not 0 < number <= most:
            raise argparse.ArgumentTypeError(
                f"must be a finite number of seconds, greater than 0 and at most {most:g}, "
                f"got {value!r}"
            )
        return number

    return parse


def int_between(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: a whole number in [lo, hi]."""

    def parse(value: str) -> int:
        text = value.strip()
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {lo} to {hi}, got {value!r}"
            )
        return int(text)

    return parse


def add_log_level(parser: argparse.ArgumentParser, default: str = "info") -> None:
    """--log-level for the JSON log lines (deletion_monitor.common.log.setup_logging)."""
    parser.add_argument(
        "--log-level", default=default, choices=LOG_LEVELS, help=f"(default {default})"
    )


def add_prometheus_url(parser: argparse.ArgumentParser) -> None:
    """--prometheus for the commands that read the Prometheus HTTP API (watch, report)."""
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("PROMETHEUS_URL", DEFAULT_URL),
        help="Prometheus base URL (default: $PROMETHEUS_URL or %(default)s)",
    )
