"""Render every generated artefact from its source, or check that the committed copies match.

    python -m deletion_monitor_tools.generate          # write files
    python -m deletion_monitor_tools.generate --check  # exit 1 and list files that drifted

Each renderer module defines `render(config) -> dict[relative_path, text]`. Renderers must be
deterministic (sorted keys, no timestamps) so that the drift check is exact. The committed files
are rendered from config.libsonnet with no environment overrides; overrides (for example
ERROR_RATE_THRESHOLD) are for a local render into --out DIR.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from pathlib import Path

from deletion_monitor.common.config import ConfigError, load_config
from deletion_monitor_tools.paths import REPO_ROOT

# Renderer modules, in the order their output is written. Add new renderers here.
RENDERERS: list[str] = [
    "deletion_monitor_tools.render_rules",
    "deletion_monitor_tools.render_prometheusrule",
    "deletion_monitor_tools.render_alertmanager",
    "deletion_monitor_tools.render_dashboards",
    "deletion_monitor_tools.render_ha",
]


def render_all(env: dict[str, str] | None = None) -> dict[str, str]:
    """Every generated file as {path relative to the repo: content}."""
    config = load_config(env=env)
    files: dict[str, str] = {}
    for module_name in RENDERERS:
        for path, text in importlib.import_module(module_name).render(config).items():
            if path in files:
                raise RuntimeError(f"{module_name} renders {path}, already rendered")
            files[path] = text
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail on drift, write nothing")
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="root to write into")
    parser.add_argument(
        "--env", action="store_true", help="apply environment overrides (never for committed files)"
    )
    args = parser.parse_args(argv)
    try:
        files = render_all(env=None if args.env else {})
    except ConfigError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    if args.check:
        drifted = []
        for rel, text in files.items():
            path = REPO_ROOT / rel
            current = path.read_text() if path.exists() else ""
            if current != text:
                drifted.append(rel)
                diff = difflib.unified_diff(
                    current.splitlines(), text.splitlines(), f"a/{rel}", f"b/{rel}", lineterm=""
                )
                print("\n".join(list(diff)[:40]), file=sys.stderr)
        if drifted:
            print(
                "generated files drifted from their sources (run `make generate`): "
                + ", ".join(drifted),
                file=sys.stderr,
            )
            return 1
        print(f"generate: {len(files)} generated files match their sources")
        return 0
    for rel, text in files.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"generate: wrote {len(files)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
