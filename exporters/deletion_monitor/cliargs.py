"""Argument types and flags shared by every long-running `deletion-monitor` command.

argparse types raise ArgumentTypeError, so a bad value ends in the CLI's one-line error naming
the flag (`argument --listen: expected [HOST]:PORT, got 'x'`) and exit code 2.
"""

from __future__ import annotations

import argparse
import os

from deletion_monitor.promapi import DEFAULT_URL

LOG_LEVELS = ("debug", "info", "warning", "error")


def listen_address(value: str) -> tuple[str, int]:
    """'[HOST]:PORT' -> (host, port); an empty host means every interface, as exporters do."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected [HOST]:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def add_log_level(parser: argparse.ArgumentParser, default: str = "info") -> None:
    """--log-level for the JSON log lines (deletion_monitor.log.setup_logging)."""
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
