"""Project lint beyond ruff: rule naming and annotations, dashboards, runbooks, test coverage,
config values repeated in Python instead of read from config.libsonnet, and citations of the
requirements (docs/requirements.md IDs, nothing outside the repository).

Each lint module defines `lint() -> list[str]` returning one problem per string. Add new lint
modules here; `make lint` fails when any returns a problem.
"""

from __future__ import annotations

import importlib
import sys

LINTERS: list[str] = [
    "deletion_monitor_tools.lint_rules",
    "deletion_monitor_tools.lint_dashboards",
    "deletion_monitor_tools.lint_config_literals",
    "deletion_monitor_tools.lint_citations",
]


def main() -> int:
    problems: list[str] = []
    for module_name in LINTERS:
        problems += [f"{module_name}: {p}" for p in importlib.import_module(module_name).lint()]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"lint: {len(LINTERS)} linters, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
