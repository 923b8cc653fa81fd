"""Fixtures of the end-to-end modules: each module gets its own real stack (module scope), so
the modules can run side by side in two pytest workers, and its own detection-times record,
merged into bench/out/e2e-detection.json when the module's stack stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import Results, module_stack

from deletion_monitor_demo.stack import Stack


@pytest.fixture(scope="module")
def results() -> Results:
    """Detection times of this module's scenarios (scenario -> measure -> seconds)."""
    return {}


@pytest.fixture(scope="module")
def stack(results: Results) -> Iterator[Stack]:
    yield from module_stack(results)
