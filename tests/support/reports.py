"""`deletion-monitor report` and `watch` in-process: argv to a Namespace, watch's JSON lines."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

from deletion_monitor.reports import watch


def parse(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def run_watch(argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()  # not a TTY: JSON lines
    code = watch.run(parse(watch, argv), out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]
