"""Lint: Python code must read config.libsonnet, not repeat what it defines.

config.libsonnet is the one source of every threshold, window and list (its header). A copy
typed into Python silently disagrees with the rules and the dashboards after the next config edit,
so this lint reads every Python file of the product (src/deletion_monitor/), the build tools
(tools/), the demo (demo/) and the dashboard sources (dashboards/*.dashboard.py) and reports:

- a list, tuple or set literal of strings with the same members as a config list of at least two
  strings (integrity.orphanCategories, replicaLabels, errorRate.evidenceWindows, ...);
- a string literal that spells such a list out, in any order: `a|b|c` (a regex alternation),
  `a,b,c`, `a, b, c`, `a, b and c`, `a, b or c` (docstrings are documentation and not checked);
- a literal of at least three numbers equal to a config number list (durationBuckets,
  dbQueryBuckets), except the SANCTIONED copies below, which must stay equal to the config;
- a literal bound to a name that names a config value: an assignment, a function default, a
  keyword argument or an argparse option whose name, without `_`, `-` and case, is
  the config path's last key (`orphanTolerance`, `excludedErrorTypes`, `auditMaxPollAge`) or
  its last keys joined (`integrity.warning` -> INTEGRITY_WARNING, `slo.target` -> slo_target).
  A last key that is one lowercase word (`warning`, `target`, `window`), or a key of an object
  of names (NAME_MAPS), counts only with its parent: alone it names too many things. The value
  does not matter: an equal copy is a repetition, a different one a contradiction.

Not detected (by design, to stay free of false positives): a bare number or string used inline
(`> 0.01`, `"authorization"`), dict keys (they name config keys to look up), and
`.get(key, default)` fallbacks.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from deletion_monitor.common.config import load_config
from deletion_monitor_tools.paths import REPO_ROOT

SOURCES = (
    "src/deletion_monitor/**/*.py",
    "tools/deletion_monitor_tools/**/*.py",
    "demo/deletion_monitor_demo/**/*.py",
    "dashboards/*.dashboard.py",
)

# Copies of a config list that are kept on purpose: (file, name) -> (config path, why). The lint
# checks each one still equals the config.
SANCTIONED: dict[tuple[str, str], tuple[str, str]] = {
    ("src/deletion_monitor/audit/state.py", "DEFAULT_DURATION_BUCKETS"): (
        "durationBuckets",
        "the audit exporter's fallback when the config cannot be loaded (the CLI passes the "
        "config's list); also the default of AuditState",
    ),
    ("demo/deletion_monitor_demo/app/runtime.py", "DB_QUERY_BUCKETS"): (
        "dbQueryBuckets",
        "the demo application stands for the monitored application, which exports its own "
        "histogram and does not read this project's config",
    ),
}
# Config keys that are run parameters rather than values code must read: the demo and the local
# stack choose their own time compression (60) on purpose; production's is 1.
NOT_VALUES = frozenset({"timeCompression"})
# Objects whose keys name things (dashboards, incidents, secret files, windows) rather than
# values: their leaves count only together with the object's name (dashboardUids.postDeploy ->
# DASHBOARD_UIDS_POST_DEPLOY, not POST_DEPLOY).
NAME_MAPS = frozenset({"dashboardUids", "incidents", "secretFiles", "confirmWindows"})
MIN_NUMBER_LIST = 3
MAX_PERMUTED = 5


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, node


def _generic(key: str) -> bool:
    """A single lowercase word (`warning`, `for`, `window`): no name by itself."""
    return re.fullmatch(r"[a-z]+", key) is not None


def value_names(config: Mapping[str, Any]) -> dict[str, str]:
    """Normalised identifier -> config path, for every config value's name (see module doc)."""
    names: dict[str, str] = {}
    for path, _ in _leaves(config):
        if not path or path[0] in NOT_VALUES:
            continue
        for start in range(len(path)):
            suffix = path[start:]
            in_map = start > 0 and path[start - 1] in NAME_MAPS
            if len(suffix) == 1 and (_generic(suffix[0]) or in_map):
                continue
            names.setdefault(_norm("".join(suffix)), ".".join(path))
    return names


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def string_lists(config: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {
        ".".join(path): tuple(value)
        for path, value in _leaves(config)
        if isinstance(value, list) and len(value) >= 2 and all(isinstance(v, str) for v in value)
    }


def number_lists(config: Mapping[str, Any]) -> dict[str, tuple[float, ...]]:
    return {
        ".".join(path): tuple(float(v) for v in value)
        for path, value in _leaves(config)
        if isinstance(value, list)
        and len(value) >= MIN_NUMBER_LIST
        and all(_is_number(v) for v in value)
    }


def _spellings(items: tuple[str, ...]) -> re.Pattern[str]:
    """Every way a string literal spells `items` out, in any order (see module doc); a list
    longer than MAX_PERMUTED only in its own and in sorted order."""
    orders = itertools.permutations(items) if len(items) <= MAX_PERMUTED else (items, sorted(items))
    forms = set()
    for order in orders:
        for sep in ("|", ",", ", "):
            forms.add(sep.join(order))
        for word in (" and ", " or "):
            forms.add(", ".join(order[:-1]) + word + order[-1])
    alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![\w.]){alternation}(?![\w])")


def _literal(node: ast.AST) -> tuple[bool, Any]:
    """(True, value) for a constant or a list/tuple/set of constants, else (False, None)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        ok, value = _literal(node.operand)
        return (ok, -value) if ok and _is_number(value) else (False, None)
    if isinstance(node, ast.Constant) and node.value is not None:
        return True, node.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        values = []
        for elt in node.elts:
            ok, value = _literal(elt)
            if not ok:
                return False, None
            values.append(value)
        return True, values
    return False, None


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _named_literals(tree: ast.AST) -> Iterator[tuple[int, str, ast.AST]]:
    """(line, name, value node) of every literal bound to a name (see module doc)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name | ast.Attribute):
                    name = target.id if isinstance(target, ast.Name) else target.attr
                    yield node.lineno, name, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
            if isinstance(target, ast.Name | ast.Attribute):
                name = target.id if isinstance(target, ast.Name) else target.attr
                yield node.lineno, name, node.value
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = args.posonlyargs + args.args
            with_default = positional[len(positional) - len(args.defaults) :]
            pairs = list(zip(with_default, args.defaults, strict=True))
            kw_pairs = zip(args.kwonlyargs, args.kw_defaults, strict=True)
            pairs += [(a, d) for a, d in kw_pairs if d is not None]
            for arg, default in pairs:
                yield default.lineno, arg.arg, default
        elif isinstance(node, ast.Call):
            options = [a.value for a in node.args if isinstance(a, ast.Constant)]
            is_option = isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
            for kw in node.keywords:
                if kw.arg == "default" and is_option:
                    for option in options:
                        if isinstance(option, str):
                            yield kw.value.lineno, option, kw.value
                elif kw.arg is not None:
                    yield kw.value.lineno, kw.arg, kw.value


def check_source(rel: str, text: str, config: Mapping[str, Any]) -> list[str]:
    """Problems of one Python file (`rel` is its path from the repository root), by line."""
    tree = ast.parse(text, filename=rel)
    names = value_names(config)
    strs = {path: (set(items), _spellings(items)) for path, items in string_lists(config).items()}
    nums = number_lists(config)
    sanctioned = {name for (file, name) in SANCTIONED if file == rel}
    skip: set[int] = _docstrings(tree)
    found: list[tuple[int, str]] = []

    for line, name, value in _named_literals(tree):
        if name.lstrip("-_") in sanctioned:
            skip.add(id(value))
            continue
        ok, literal = _literal(value)
        if not ok:
            continue
        key = _norm(re.sub(r"^(?:default_|_+|-+)", "", name, flags=re.IGNORECASE))
        if key in names:
            found.append((line, f"{name} = {literal!r} names config {names[key]}"))
            skip.add(id(value))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            ok, values = _literal(node)
            if not ok or not values:
                continue
            if all(isinstance(v, str) for v in values):
                for path, (members, _) in strs.items():
                    if set(values) == members:
                        found.append((line, f"{values!r} repeats config {path}"))
            elif len(values) >= MIN_NUMBER_LIST and all(_is_number(v) for v in values):
                for path, numbers in nums.items():
                    if tuple(float(v) for v in values) == numbers:
                        found.append(
                            (line, f"a list of {len(values)} numbers repeats config {path}")
                        )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for path, (_, spelled) in strs.items():
                if match := spelled.search(node.value):
                    found.append((line, f"{match.group(0)!r} spells out config {path}"))
    return [f"{rel}:{line}: {what}: read it from load_config()" for line, what in sorted(found)]


def check_sanctioned(root: Path, config: Mapping[str, Any]) -> list[str]:
    """Each sanctioned copy exists and still equals its config list."""
    problems = []
    for (rel, name), (path, _why) in sorted(SANCTIONED.items()):
        file = root / rel
        expected = tuple(float(v) for v in _value_at(config, path))
        found: tuple[bool, Any] | None = None
        if file.is_file():
            for node in ast.walk(ast.parse(file.read_text(), filename=rel)):
                if isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                        found = _literal(node.value) if node.value is not None else (False, None)
        if found is None:
            problems.append(f"{rel}: sanctioned copy {name} of config {path} not found")
        elif not found[0] or tuple(float(v) for v in found[1]) != expected:
            problems.append(f"{rel}: {name} is no longer equal to config {path}")
    return problems


def _value_at(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        node = node[key]
    return node


def source_files(root: Path = REPO_ROOT) -> list[Path]:
    return sorted({p for pattern in SOURCES for p in root.glob(pattern)})


def lint(root: Path = REPO_ROOT, config: Mapping[str, Any] | None = None) -> list[str]:
    cfg = load_config(env={}) if config is None else config
    problems: list[str] = []
    for path in source_files(root):
        problems += check_source(path.relative_to(root).as_posix(), path.read_text(), cfg)
    return problems + check_sanctioned(root, cfg)
