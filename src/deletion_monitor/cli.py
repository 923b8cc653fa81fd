"""The `deletion-monitor` command: one entry point, one module per subcommand.

Each subcommand module defines HELP (one line), add_arguments(parser) and run(args) -> int.
Exit codes follow one convention everywhere: 0 ok, 1 a finding (violations, breached threshold),
2 could not run (bad flag, bad config, unreachable dependency at start-up).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from deletion_monitor import __version__
from deletion_monitor.common.config import CONFIG_ENV

# subcommand name -> module. Add new subcommands here.
COMMANDS: dict[str, str] = {
    "audit-exporter": "deletion_monitor.audit.cli",
    "integrity-exporter": "deletion_monitor.integrity.exporter",
    "check-integrity": "deletion_monitor.integrity.report",
    "watch": "deletion_monitor.reports.watch",
    "report": "deletion_monitor.reports.report",
    "schema": "deletion_monitor.schema_cli",
    "config": "deletion_monitor.config_cli",
}


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we want one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser(
    prog: str = "deletion-monitor",
    commands: dict[str, str] = COMMANDS,
    description: str = __doc__.splitlines()[0],
) -> argparse.ArgumentParser:
    """The full parser with every subcommand of `commands` (the demo's own command reuses it
    with its subcommands)."""
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module_name in commands.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        _add_config_flag(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _add_config_flag(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help=f"the threshold config (a copy of the shipped config.libsonnet; default: ${CONFIG_ENV}"
        " or the shipped one)",
    )


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse arguments and run the chosen subcommand; returns the exit code."""
    args = (parser or build_parser()).parse_args(argv)
    if config_file := getattr(args, "config_file", None):
        if not os.path.isfile(config_file):
            sys.stderr.write(f"{args.command}: error: --config: file not found: {config_file}\n")
            return 2
        # Through the environment, so every load_config() of the command (and any child
        # process it starts) reads the same file as $DELETION_MONITOR_CONFIG would make it.
        os.environ[CONFIG_ENV] = os.path.abspath(config_file)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
