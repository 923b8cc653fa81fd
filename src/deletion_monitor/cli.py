"""The `deletion-monitor` command: one entry point, one module per subcommand.

Each subcommand module defines HELP (one line), add_arguments(parser) and run(args) -> int.
Exit codes follow one convention everywhere: 0 ok, 1 a finding (violations, breached threshold),
2 could not run (bad flag, bad config, unreachable dependency at start-up).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from deletion_monitor import __version__

# subcommand name -> module. Add new subcommands here.
COMMANDS: dict[str, str] = {
    "audit-exporter": "deletion_monitor.audit.cli",
    "integrity-exporter": "deletion_monitor.integrity.exporter",
    "check-integrity": "deletion_monitor.integrity.report",
    "watch": "deletion_monitor.reports.watch",
    "report": "deletion_monitor.reports.report",
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
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse arguments and run the chosen subcommand; returns the exit code."""
    args = (parser or build_parser()).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
