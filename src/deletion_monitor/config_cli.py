"""`deletion-monitor config`: get the shipped config out of the package, check a copy, show
what the commands would use.

  deletion-monitor config default > thresholds.libsonnet   # start an SRE's own copy
  deletion-monitor watch --config thresholds.libsonnet      # or DELETION_MONITOR_CONFIG
  deletion-monitor config check [FILE]                      # exit 0, or 2 with one line
  deletion-monitor config show                              # effective values, as JSON

`show` and `check` apply the environment overrides (ERROR_RATE_THRESHOLD, ...) as every command
does, so what they print is what `watch`, `report` and the exporters would read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from deletion_monitor.common.config import CONFIG_ENV, CONFIG_PATH, ConfigError, load_config

HELP = "print the shipped threshold config, check a copy, or show the effective values"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("default", "check", "show"),
        help="default: print the shipped config.libsonnet; check: validate a config (FILE, "
        f"--config, ${CONFIG_ENV} or the shipped one); show: the effective config as JSON",
    )
    parser.add_argument("file", nargs="?", help="config file for check/show")


def run(args: argparse.Namespace) -> int:
    if args.action == "default":
        if args.file:
            sys.stderr.write("config: error: default takes no FILE\n")
            return 2
        sys.stdout.write(CONFIG_PATH.read_text(encoding="utf-8"))
        return 0
    path = args.file or os.environ.get(CONFIG_ENV) or str(CONFIG_PATH)
    try:
        cfg = load_config(path=path)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")  # one line naming the field: "config: errorRate.x: ..."
        return 2
    if args.action == "show":
        json.dump(cfg, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(f"config: {path}: valid")
    return 0
