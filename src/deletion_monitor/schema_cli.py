"""`deletion-monitor schema`: print a schema file shipped with the package.

The application's owners apply these (psql -f): the audit-log contract, the monitoring role's
grants, the adapter and migration for a legacy `audit_logs` table. Printing them from the
installed package means an SRE never needs the repository to get the DDL that matches the
exporter version they run.
"""

from __future__ import annotations

import argparse
import sys

from deletion_monitor.data import schema_names, schema_sql

HELP = "print a shipped schema file (the audit-log contract, grants, legacy adapter)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        nargs="?",
        help="schema file to print, without .sql (no name: list them)",
    )


def run(args: argparse.Namespace) -> int:
    if not args.name:
        for name in schema_names():
            print(name)
        return 0
    try:
        sys.stdout.write(schema_sql(args.name))
    except KeyError as exc:
        sys.stderr.write(f"schema: error: {exc.args[0]}\n")
        return 2
    return 0
