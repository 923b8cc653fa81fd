"""`deletion-monitor check-integrity`: run every check once and print a report (for cron).

Each check ends in one of four states: ok, violations, not_applicable (a table it reads does not
exist here: neither a finding nor an error) or error (it could not run). The report counts all
four, overall and per category, so that "0 issues" never stands for checks that did not run.

Status, severity and exit code come from the same counts:
- FAILED, exit 1: violations found (also when some checks failed to run: the report says so).
  Severity: the highest severity of a check that found violations, raised to WARNING or
  CRITICAL by the issue ladder (report.warningIssues / report.criticalIssues).
- INCOMPLETE, exit 2: nothing found, but a check failed to run or no check applied at all.
  Severity UNKNOWN: what the missing checks would have found is not known.
- PASSED, exit 0: every applicable check ran and found nothing. Severity OK.
Never the number of issues as exit code: the old script's exit code wrapped at 256.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from deletion_monitor.common.cliargs import add_log_level
from deletion_monitor.common.config import ConfigError, load_config
from deletion_monitor.common.log import setup_logging
from deletion_monitor.common.redaction import (
    dsn_problem,
    error_line,
    password_on_command_line,
    register_dsn,
)
from deletion_monitor.integrity.checks import (
    CATEGORIES,
    DEFAULT_CHECKS_PATH,
    Check,
    CheckConfigError,
    load_checks,
)
from deletion_monitor.integrity.runner import STATES, CheckResult, connect, run_check

HELP = (
    "Run every integrity check once and print a report; exit 0 clean, 1 violations, 2 a check "
    "could not run (or none applies)."
)
# Report severities, lowest first: a check's severity upper-cased, and the issue ladder's.
SEVERITY_ORDER = ("OK", "INFO", "WARNING", "CRITICAL")
STATE_WORDS = {
    "ok": "checks ok",
    "violations": "with violations",
    "not_applicable": "not applicable",
    "error": "failed to run",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL connection string (default: $DATABASE_URL; prefer the variable: "
        "arguments are visible to every local user in ps)",
    )
    parser.add_argument("--checks", type=Path, default=DEFAULT_CHECKS_PATH, help="checks YAML file")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--warning-issues",
        type=int,
        default=None,
        help="WARNING above this many issues (default: config report.warningIssues)",
    )
    parser.add_argument(
        "--critical-issues",
        type=int,
        default=None,
        help="CRITICAL at this many issues or more (default: config report.criticalIssues)",
    )
    add_log_level(parser, default="warning")


def severity_level(total: int, warning_issues: int, critical_issues: int) -> str:
    """The spec's ladder: WARNING above `warning_issues`, CRITICAL at `critical_issues` or more."""
    if total >= critical_issues:
        return "CRITICAL"
    if total > warning_issues:
        return "WARNING"
    return "OK"


def run_all(dsn: str, checks: list[Check]) -> list[CheckResult]:
    """Each check once, in file order, with samples. Raises psycopg.OperationalError if the
    database cannot be reached at all; a connection lost mid-way is re-opened for the next check."""
    results: list[CheckResult] = []
    conn = connect(dsn, application_name="deletion-check-integrity")
    try:
        for check in checks:
            if conn.closed:
                conn = connect(dsn, application_name="deletion-check-integrity")
            results.append(run_check(conn, check, with_samples=True))
    finally:
        conn.close()
    return results


def count_states(results: list[CheckResult]) -> dict[str, int]:
    """How many results are in each of STATES (every state present, 0 included)."""
    counts = dict.fromkeys(STATES, 0)
    for r in results:
        counts[r.state] += 1
    return counts


def status_and_severity(
    results: list[CheckResult], warning_issues: int, critical_issues: int
) -> tuple[str, str]:
    """(status, severity), both from the same findings; see the module docstring."""
    counts = count_states(results)
    total = sum(r.violations or 0 for r in results)
    if counts["violations"]:
        found = max(
            SEVERITY_ORDER.index(r.check.severity.upper())
            for r in results
            if r.state == "violations"
        )
        ladder = SEVERITY_ORDER.index(severity_level(total, warning_issues, critical_issues))
        return "FAILED", SEVERITY_ORDER[max(found, ladder)]
    ran = counts["ok"]
    if counts["error"] or not ran:
        return "INCOMPLETE", "UNKNOWN"
    return "PASSED", "OK"


def exit_code(report: dict[str, Any]) -> int:
    """0 PASSED, 1 FAILED (violations), 2 INCOMPLETE (a check could not run, or none applied)."""
    return {"PASSED": 0, "FAILED": 1}.get(report["status"], 2)


def _entry(r: CheckResult) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.check.name,
        "category": r.check.category,
        "severity": r.check.severity,
        "status": r.state,
        "violations": r.violations,
        "duration_seconds": round(r.duration, 4),
        "samples": r.samples,
        "error": r.error,
        "missing_tables": r.missing_tables,
    }
    if r.check.kind == "completeness":
        entry["audited"] = r.audited
        # More rows than the check's max_rows: only max_rows were read and audited.
        entry["truncated"] = r.truncated
    return entry


def build_report(
    results: list[CheckResult], warning_issues: int, critical_issues: int
) -> dict[str, Any]:
    """The JSON report; the text format is rendered from the same dict."""
    total = sum(r.violations or 0 for r in results)
    errors = [{"check": r.check.name, "error": r.error} for r in results if not r.ok]
    summary: dict[str, Any] = {}
    for category in CATEGORIES:
        members = [r for r in results if r.check.category == category]
        if not members:
            continue
        counts = count_states(members)
        ran = counts["ok"] + counts["violations"]
        summary[category] = {
            # None, not 0, when no check of the category ran: nothing was looked at.
            "issues": sum(r.violations or 0 for r in members) if ran else None,
            "counts": counts,
            "checks": [
                {
                    "name": r.check.name,
                    "severity": r.check.severity,
                    "status": r.state,
                    "violations": r.violations,
                    "samples": r.samples,
                    "missing_tables": r.missing_tables,
                }
                for r in members
                if r.state != "ok"
            ],
        }
    counts = count_states(results)
    status, severity = status_and_severity(results, warning_issues, critical_issues)
    recommendations = [
        f"{r.check.name} ({r.violations} {r.check.severity}): {r.check.recommendation}"
        for r in sorted(results, key=_priority)
        if r.state == "violations" and r.check.recommendation
    ]
    if errors:
        recommendations.append(
            "Some checks could not run (see errors): fix them or the database access first, "
            "this report is incomplete."
        )
    if counts["not_applicable"] and not (counts["ok"] + counts["violations"] + counts["error"]):
        recommendations.append(
            "No check applies to this database (none of their tables exists): is the DSN "
            "the application's database, with its schema on the search_path?"
        )
    elif counts["not_applicable"]:
        recommendations.append(
            f"{counts['not_applicable']} check(s) do not apply here (tables missing): if the "
            "application has those tables under other names, adapt the checks file; if not, "
            "remove the checks from it."
        )
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "status": status,
        "severity": severity,
        "total_issues": total,
        "counts": counts,
        "thresholds": {"warning_issues": warning_issues, "critical_issues": critical_issues},
        "summary": summary,
        "checks": [_entry(r) for r in results],
        "errors": errors,
        "recommendations": recommendations,
    }


def _priority(r: CheckResult) -> tuple[int, str]:
    order = {"critical": 0, "warning": 1, "info": 2}
    return order.get(r.check.severity, 3), r.check.name


def _counts_text(counts: dict[str, int]) -> str:
    """'3 checks ok, 1 not applicable': ok always, the other states only when present."""
    parts = [f"{counts['ok']} checks ok"]
    parts += [f"{counts[s]} {STATE_WORDS[s]}" for s in STATES[1:] if counts[s]]
    return ", ".join(parts)


def render_text(report: dict[str, Any]) -> str:
    counts = report["counts"]
    lines = [
        f"Data integrity report {report['timestamp']}",
        f"Status: {report['status']}  Severity: {report['severity']}  "
        f"Total issues: {report['total_issues']}",
        f"Checks: {sum(counts.values())}: {_counts_text(counts)}",
        "",
    ]
    for category, info in report["summary"].items():
        issues = "no check ran" if info["issues"] is None else f"{info['issues']} issue(s)"
        lines.append(f"{category}: {issues}, {_counts_text(info['counts'])}")
        for chk in info["checks"]:
            if chk["status"] == "not_applicable":
                shown = f"not applicable (no table {', '.join(chk['missing_tables'])})"
            elif chk["status"] == "error":
                shown = "failed to run"
            else:
                shown = chk["violations"]
            lines.append(f"  - {chk['name']} [{chk['severity']}]: {shown}")
            lines += [f"      {sample}" for sample in chk["samples"]]
    if report["errors"]:
        lines += ["", "Checks that could not run:"]
        lines += [f"  - {e['check']}: {e['error']}" for e in report["errors"]]
    if report["recommendations"]:
        lines += ["", "Recommendations:"]
        lines += [f"  * {rec}" for rec in report["recommendations"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    dsn = args.dsn or os.environ.get("DATABASE_URL")
    register_dsn(dsn)  # every output line from here on masks its password, parseable or not
    try:
        checks = load_checks(args.checks)
    except CheckConfigError as exc:
        print(f"check-integrity: {exc}", file=sys.stderr)
        return 2
    warning_issues, critical_issues = args.warning_issues, args.critical_issues
    if warning_issues is None or critical_issues is None:
        try:
            report_cfg = load_config()["report"]
        except ConfigError as exc:  # one line naming the field, e.g. "config: report.x: ..."
            print(f"check-integrity: {exc}", file=sys.stderr)
            return 2
        warning_issues = report_cfg["warningIssues"] if warning_issues is None else warning_issues
        if critical_issues is None:
            critical_issues = report_cfg["criticalIssues"]
    if not dsn:
        print("check-integrity: --dsn: required (or set DATABASE_URL)", file=sys.stderr)
        return 2
    problem = dsn_problem(dsn)
    if problem:
        print(f"check-integrity: --dsn: {problem}", file=sys.stderr)
        return 2
    try:
        results = run_all(dsn, checks)
    except psycopg.Error as exc:
        print(f"check-integrity: --dsn: cannot connect: {error_line(exc, dsn)}", file=sys.stderr)
        return 2
    # After connecting, so that a failed run keeps its one-line error.
    argv_warning = password_on_command_line(dsn)
    if argv_warning:
        print(f"check-integrity: warning: {argv_warning}", file=sys.stderr)
    report = build_report(results, warning_issues, critical_issues)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(render_text(report))
    return exit_code(report)
