"""`deletion-monitor check-integrity`: run every check once and print a report (for cron).

Exit codes: 0 every check ran and found nothing; 1 violations found; 2 could not run (bad
checks file, database unreachable, or a check failed so the report is incomplete while nothing
was found). Never the number of issues: the old script's exit code wrapped at 256.
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
from deletion_monitor.integrity.runner import CheckResult, connect, run_check

HELP = "Run every integrity check once and print a report; exit 0 clean, 1 violations, 2 error."


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
        summary[category] = {
            "issues": sum(r.violations or 0 for r in members),
            "checks": [
                {
                    "name": r.check.name,
                    "severity": r.check.severity,
                    "violations": r.violations,
                    "samples": r.samples,
                }
                for r in members
                if r.violations or not r.ok
            ],
        }
    checks = []
    for r in results:
        entry: dict[str, Any] = {
            "name": r.check.name,
            "category": r.check.category,
            "severity": r.check.severity,
            "status": "error" if not r.ok else ("violations" if r.violations else "ok"),
            "violations": r.violations,
            "duration_seconds": round(r.duration, 4),
            "samples": r.samples,
            "error": r.error,
        }
        if r.check.kind == "completeness":
            entry["audited"] = r.audited
            # More rows than the check's max_rows: only max_rows were read and audited.
            entry["truncated"] = r.truncated
        checks.append(entry)
    recommendations = [
        f"{r.check.name} ({r.violations} {r.check.severity}): {r.check.recommendation}"
        for r in sorted(results, key=_priority)
        if r.ok and r.violations and r.check.recommendation
    ]
    if errors:
        recommendations.append(
            "Some checks could not run (see errors): fix them or the database access first, "
            "this report is incomplete."
        )
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "status": "PASSED" if total == 0 and not errors else "FAILED",
        "severity": severity_level(total, warning_issues, critical_issues),
        "total_issues": total,
        "thresholds": {"warning_issues": warning_issues, "critical_issues": critical_issues},
        "summary": summary,
        "checks": checks,
        "errors": errors,
        "recommendations": recommendations,
    }


def _priority(r: CheckResult) -> tuple[int, str]:
    order = {"critical": 0, "warning": 1, "info": 2}
    return order.get(r.check.severity, 3), r.check.name


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"Data integrity report {report['timestamp']}",
        f"Status: {report['status']}  Severity: {report['severity']}  "
        f"Total issues: {report['total_issues']}",
        "",
    ]
    for category, info in report["summary"].items():
        lines.append(f"{category}: {info['issues']} issue(s)")
        for chk in info["checks"]:
            shown = "error" if chk["violations"] is None else chk["violations"]
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
    if report["total_issues"]:
        return 1
    return 2 if report["errors"] else 0
