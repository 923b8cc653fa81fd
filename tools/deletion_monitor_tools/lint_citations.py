"""Lint: the repository cites its requirements by docs/requirements.md IDs, never by a path
outside the repository, and every ID it cites exists.

- no tracked file names the strategy's files or a relative path that climbs out of the
  repository: the strategy is not in it, docs/requirements.md states its requirements in the
  project's words;
- a citation of a requirement is `R12: ...`, `R12 "Section"` (comments, YAML) or a link to
  `requirements.md#r12` (Markdown); each ID must have its anchor (`<a id="r12">`) there;
- the old forms `spec "Section"` / `spec: ...` are gone (they named the strategy directly).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from deletion_monitor_tools.paths import REPO_ROOT

REQUIREMENTS = "docs/requirements.md"
OUTSIDE_FILES = re.compile(
    r"monitoring-strategy\.md|design-card\.md|original-application\.md"
    r"|toolchain-facts\.md|exemplars\.md"
)
# A relative path: one or more `../` and a name after them.
RELATIVE = re.compile(r"(?<![\w./])((?:\.\./)+)[\w-]")
CITATION = re.compile(r'(?<![\w#\[/])R(\d{1,3})(?=: | ")|requirements\.md#([rd]\d{1,3})\b')
OLD_FORM = re.compile(r'\bspec(?: 6\.1)? "|\bspec: (?!\{)')
# The lint itself, and text where "spec" is promtool's or Kubernetes' word, not the strategy's.
SKIP = {"tools/deletion_monitor_tools/lint_citations.py", "tests/unit/test_lint_citations.py"}
TEXT = (".py", ".md", ".libsonnet", ".jsonnet", ".yml", ".yaml", ".sql", ".sh", ".tmpl", ".toml")


def tracked_files(root: Path = REPO_ROOT) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    return [f for f in out.split() if f.endswith(TEXT) and f not in SKIP]


def anchors(text: str) -> set[str]:
    return set(re.findall(r'<a id="([rd]\d{1,3})"></a>', text))


def escapes(name: str, line: str) -> bool:
    """Whether a relative path on `line` of tracked file `name` climbs above the repository."""
    depth = len(Path(name).parent.parts)
    return any(len(m.group(1)) // 3 > depth for m in RELATIVE.finditer(line))


def lint_text(name: str, text: str, known: set[str]) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        if OUTSIDE_FILES.search(line) or escapes(name, line):
            problems.append(f"{name}:{number}: names a file outside the repository")
        if OLD_FORM.search(line) and "behaviour spec" not in line:
            problems.append(
                f"{name}:{number}: cites the strategy directly; cite {REQUIREMENTS} (R<n>)"
            )
        for match in CITATION.finditer(line):
            anchor = match.group(2) or f"r{match.group(1)}"
            if anchor not in known:
                problems.append(f"{name}:{number}: {anchor} is not in {REQUIREMENTS}")
    return problems


def lint(root: Path = REPO_ROOT) -> list[str]:
    known = anchors((root / REQUIREMENTS).read_text(encoding="utf-8"))
    if not known:
        return [f'{REQUIREMENTS}: no <a id="rN"></a> anchors']
    problems = []
    for name in tracked_files(root):
        path = root / name
        if not path.is_file():
            continue
        problems += lint_text(name, path.read_text(encoding="utf-8", errors="replace"), known)
    return problems
