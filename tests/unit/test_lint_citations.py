"""The citation lint finds what it exists to find (a lint that cannot fail is a defect)."""

from __future__ import annotations

from deletion_monitor_tools.lint_citations import anchors, lint_text

KNOWN = anchors('<a id="r12"></a>\n### R12\n<a id="d3"></a>')


def test_known_citations_pass() -> None:
    text = (
        '// R12: > 1 % critical\n# R12 "Alert Severity Levels"\n'
        "see [R12](requirements.md#r12) and [D3](requirements.md#d3)\n"
    )
    assert lint_text("x", text, KNOWN) == []


def test_unknown_ids_paths_outside_and_old_forms_are_problems() -> None:
    text = (
        "// R99: nothing there\n"
        "[R7](../requirements.md#r7)\n"
        "see ../shared/mission/monitoring-strategy.md\n"
        '# spec "Alert Severity Levels"\n'
        "x: 1  // spec: > 80 % warning\n"
    )
    problems = lint_text("f", text, KNOWN)
    assert [p.split(": ", 1)[0] for p in problems] == ["f:1", "f:2", "f:3", "f:4", "f:5"]
    assert "r99 is not in" in problems[0] and "r7 is not in" in problems[1]


def test_kubernetes_and_promtool_spec_keys_are_not_citations() -> None:
    assert lint_text("k", "  spec: {\nspec:\n  groups: []\n", KNOWN) == []
