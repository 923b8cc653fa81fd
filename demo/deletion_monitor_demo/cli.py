"""The `deletion-monitor-demo` command: the demo, its application and its load generator.

The demo's own entry point, apart from the product's `deletion-monitor` (same conventions: one
module per subcommand, exit 2 when it cannot run)."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

from deletion_monitor import cli

# subcommand name -> module (HELP, add_arguments(parser), run(args) -> int).
COMMANDS: dict[str, str] = {
    "run": "deletion_monitor_demo.run",
    "app": "deletion_monitor_demo.app.server",
    "load": "deletion_monitor_demo.load",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen demo subcommand; returns the exit code."""
    # The demo runs for hours and reports as it goes: a line is useful when it happens, also in
    # a log file (`make demo > demo.log`), where Python would otherwise buffer it by the block.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    parser = cli.build_parser(
        prog="deletion-monitor-demo", commands=COMMANDS, description=__doc__.splitlines()[0]
    )
    return cli.main(argv, parser)


if __name__ == "__main__":
    sys.exit(main())
