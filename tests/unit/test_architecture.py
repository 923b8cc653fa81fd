"""The import rules of docs/architecture.md, read from the source (ast), nothing imported:

- the product (src/deletion_monitor) imports nothing of the tools or the demo;
- its common/ imports no other part of the product but data/ (the package data), which imports
  nothing of it;
- the tools (tools/deletion_monitor_tools, and the dashboard sources they load) import nothing of
  the demo.

Every import counts, also one inside a function, a relative one, and a module named in a string
(the subcommand tables are imported by name with importlib).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "src" / "deletion_monitor"
TOOLS = ROOT / "tools" / "deletion_monitor_tools"
DEMO = ROOT / "demo" / "deletion_monitor_demo"
DASHBOARD_SOURCES = ROOT / "dashboards"
MODULE_NAME = re.compile(r"deletion_monitor(_tools|_demo)?(\.[a-z_][a-z0-9_]*)*")


def names_a_module(text: str) -> bool:
    """True when a string is the dotted name of one of the project's modules or packages (what
    importlib is given), not a logger name that merely looks like one."""
    if not MODULE_NAME.fullmatch(text):
        return False
    path = Path(*text.split("."))
    return any(
        (base / path).with_suffix(".py").is_file() or (base / path / "__init__.py").is_file()
        for base in (PRODUCT.parent, TOOLS.parent, DEMO.parent)
    )


def module_of(path: Path) -> str:
    """Dotted name of a package file (dashboard sources are loaded by path: their stem)."""
    for base in (PRODUCT.parent, TOOLS.parent):
        if path.is_relative_to(base):
            parts = list(path.relative_to(base).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.name.removesuffix(".py").replace(".", "_")


def imported(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, module name) of every import in `source`, relative ones resolved; for `from X
    import a` both X and X.a (a may be a submodule)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            parts = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*parts, *([node.module] if node.module else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if names_a_module(node.value):
                yield node.lineno, node.value


def _top(name: str) -> str:
    return name.split(".")[0]


def product_problems(source: str, module: str, is_package: bool = False) -> list[str]:
    problems = []
    in_common = module == "deletion_monitor.common" or module.startswith("deletion_monitor.common.")
    for line, name in imported(source, module, is_package):
        if _top(name) in ("deletion_monitor_tools", "deletion_monitor_demo"):
            problems.append(f"{module}:{line}: the product imports {name}")
        parts = name.split(".")
        if (
            in_common
            and parts[0] == "deletion_monitor"
            and len(parts) > 1
            and parts[1] not in ("common", "data")  # data/: the package data, a leaf
            and not parts[1].startswith("__")  # deletion_monitor.__version__
        ):
            problems.append(f"{module}:{line}: common/ imports {name}")
        if module.startswith("deletion_monitor.data") and parts[0] == "deletion_monitor":
            problems.append(f"{module}:{line}: data/ imports {name}")
    return problems


def tools_problems(source: str, module: str, is_package: bool = False) -> list[str]:
    return [
        f"{module}:{line}: the tools import {name}"
        for line, name in imported(source, module, is_package)
        if _top(name) == "deletion_monitor_demo"
    ]


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if "__pycache__" not in p.parts)


def _check(paths: list[Path], rule) -> list[str]:
    return [
        problem
        for path in paths
        for problem in rule(path.read_text(), module_of(path), path.name == "__init__.py")
    ]


def test_the_product_imports_neither_tools_nor_demo_and_common_nothing_else() -> None:
    paths = _files(PRODUCT, "**/*.py")
    packages = {p.parent.name for p in paths if p.name == "__init__.py"}
    assert {"common", "audit", "integrity", "reports"} <= packages  # the scan sees the tree
    assert _check(paths, product_problems) == []


def test_the_tools_and_the_dashboard_sources_import_nothing_of_the_demo() -> None:
    paths = _files(TOOLS, "**/*.py") + _files(DASHBOARD_SOURCES, "*.dashboard.py")
    assert len(paths) > 10 and any(p.name == "generate.py" for p in paths)
    assert _check(paths, tools_problems) == []


@pytest.mark.parametrize(
    ("module", "source", "problem"),
    [
        (
            "deletion_monitor.audit.exporter",
            "def f():\n    from deletion_monitor_demo.stack import Stack\n",
            "deletion_monitor.audit.exporter:2: the product imports deletion_monitor_demo.stack",
        ),
        (
            "deletion_monitor.cli",
            "import deletion_monitor_tools.generate as g\n",
            "the product imports deletion_monitor_tools.generate",
        ),
        (
            "deletion_monitor.cli",
            'COMMANDS = {"demo": "deletion_monitor_demo.run"}\n',
            "the product imports deletion_monitor_demo.run",
        ),
        (
            "deletion_monitor.common.config",
            "from ..audit import state\n",
            "deletion_monitor.common.config:1: common/ imports deletion_monitor.audit",
        ),
        (
            "deletion_monitor.common.promapi",
            "from deletion_monitor import reports\n",
            "common/ imports deletion_monitor.reports",
        ),
        (
            "deletion_monitor.common.log",
            "from deletion_monitor.integrity.checks import Check\n",
            "common/ imports deletion_monitor.integrity.checks",
        ),
    ],
)
def test_a_planted_import_is_caught(module: str, source: str, problem: str) -> None:
    assert any(problem in p for p in product_problems(source, module)), problem


def test_allowed_imports_are_not_reported() -> None:
    common = "from deletion_monitor.common.durations import parse\nfrom . import log\n"
    assert product_problems(common, "deletion_monitor.common.config") == []
    assert (
        product_problems("from deletion_monitor import __version__\n", "deletion_monitor.common.x")
        == []
    )
    product = "from deletion_monitor.common import config\nfrom ..common import log\n"
    assert product_problems(product, "deletion_monitor.audit.exporter") == []
    tools = "from deletion_monitor.reports import report\nfrom deletion_monitor_tools import lib\n"
    assert tools_problems(tools, "deletion_monitor_tools.render_dashboards") == []
    planted = "def f():\n    import deletion_monitor_demo.stack\n"
    assert tools_problems(planted, "deletion_monitor_tools.generate") == [
        "deletion_monitor_tools.generate:2: the tools import deletion_monitor_demo.stack"
    ]
