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
        "see ../../outside/plan.md\n"
        '# spec "Alert Severity Levels"\n'
        "x: 1  // spec: > 80 % warning\n"
    )
    problems = lint_text("docs/f.md", text, KNOWN)
    assert [p.split(": ", 1)[0] for p in problems] == [f"docs/f.md:{n}" for n in range(1, 6)]
    assert "r99 is not in" in problems[0] and "r7 is not in" in problems[1]


def test_relative_paths_are_problems_only_when_they_leave_the_repository() -> None:
    inside = "see ../requirements.md and ../../README.md\n"
    assert lint_text("docs/runbooks/X.md", inside, KNOWN) == []
    outside = "see ../../../plan.md\n"
    assert lint_text("docs/runbooks/X.md", outside, KNOWN) == [
        "docs/runbooks/X.md:1: names a file outside the repository"
    ]
    assert lint_text("README.md", "[spec](design-card.md)\n", KNOWN) != []


def test_kubernetes_and_promtool_spec_keys_are_not_citations() -> None:
    assert lint_text("k", "  spec: {\nspec:\n  groups: []\n", KNOWN) == []
