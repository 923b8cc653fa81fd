"""Lint the Prometheus rules: mixtool's rules in Python, plus this project's contracts.

Per alert: CamelCase name; `severity` in {critical, warning, info}; the brief's labels (service,
category, source; escalations carry `escalation` and count per (service, incident)); `summary`
static, capitalised, ending with a period; `description` templated;
`runbook_url` = runbookBaseUrl + <AlertName>.md and docs/runbooks/<AlertName>.md exists;
`dashboard_url` points at a dashboard uid from the config.
Per recording rule: `level:metric:operations`.
Coverage: every alert in the brief is defined, every contract recording rule is defined, and every
alert name has a firing case (exp_alerts listed) and a silent case (exp_alerts: []) in
tests/rules/*.yml (Watchdog cannot be silent). Sources: jsonnetfmt --test on every jsonnet file
under config/, alert_rules/ (alert_rules/alerts/ included) and alertmanager/; promtool check rules
on the rendered files; latency thresholds are histogram bucket boundaries (so "above 5 s" is exact,
not interpolated).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from deletion_monitor.common.config import load_config
from deletion_monitor_tools.paths import REPO_ROOT

RULE_DIR = REPO_ROOT / "alert_rules"
RUNBOOK_DIR = REPO_ROOT / "docs" / "runbooks"
TEST_DIR = REPO_ROOT / "tests" / "rules"

SEVERITIES = {"critical", "warning", "info"}
CATEGORIES = {
    "availability", "latency", "resources", "integrity", "security", "slo", "meta", "anomaly",
}  # fmt: skip
SOURCES = {"audit", "integrity", "app", "prometheus", "alertmanager", "probe"}
ESCALATION_LEVELS = {"senior", "manager"}
# Alerts that by design never stop firing: no silent test case can exist.
ALWAYS_FIRING = {"Watchdog"}

# The team brief's alert list (contract: routing, dashboards and runbooks are built on it).
BRIEF_ALERTS = {
    "DeletionErrorRateHigh", "DeletionErrorRatePostDeploy", "DeletionTimeoutsHigh",
    "DeletionAuthorizationFailuresHigh", "DeletionLatencyP95High", "DeletionLatencyAverageHigh",
    "DeletionAppMemoryHigh", "DeletionAppMemoryAboveBaseline", "DeletionAppMemoryFillingUp",
    "DeletionDbPoolSaturated", "DeletionOrphanedRecords", "DeletionIntegrityViolations",
    "DeletionForbiddenDeletion", "DeletionCompletenessAuditFailed", "DeletionErrorBudgetBurn",
    "DeletionEscalationSenior", "DeletionEscalationManager", "Watchdog",
    "DeletionAuditExporterDown", "DeletionIntegrityExporterDown", "DeletionAuditDatabaseDown",
    "DeletionIntegrityDatabaseDown", "DeletionAuditDataStale", "DeletionIntegrityChecksStale",
    "DeletionIntegrityCheckFailing", "DeletionAuditInvalidRows", "DeletionAuditCursorHeldBack",
    "PrometheusRuleEvaluationFailures", "AlertmanagerNotificationsFailing",
    "DeletionEndpointAuthProbeFailed", "DeletionRateAnomaly", "DeletionLatencyAnomaly",
}  # fmt: skip

_WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
# The team brief's recording-rule names (dashboards, reports and the watch console read them).
BRIEF_RECORDS = (
    {
        f"deletion:deletion_{m}:rate{w}"
        for m in ("requests", "failures", "error_ratio")
        for w in _WINDOWS
    }
    | {
        "user_type:deletion_requests:rate1h", "user_type:deletion_error_ratio:rate1h",
        "user_type:deletion_duration_seconds:p95_rate1h", "error_type:deletion_failures:rate5m",
        "error_type:deletion_failures:increase1h", "deletion:deletion_requests:increase1h",
        "deletion:deletion_requests:rate1h_week_over_week",
        "category:deletion_integrity_violations:sum", "deletion:deletion_integrity_violations:sum",
        "deletion:deletion_app_memory:ratio", "deletion:deletion_app_pool_usage:ratio",
        "deletion:post_deploy:active",
    }
    | {
        f"deletion:deletion_duration_seconds:{op}_rate{w}"
        for op in ("avg", "p95", "p99")
        for w in ("5m", "1h")
    }
)  # fmt: skip

_CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")
_RECORD = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9][a-z0-9_]*$")


def rule_files(rule_dir: Path = RULE_DIR) -> list[Path]:
    """The rendered rule files, sorted."""
    return sorted(rule_dir.glob("*.rules.yml"))


def iter_rules(docs: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    """Every rule of every group of the documents."""
    for doc in docs:
        for group in doc.get("groups") or []:
            yield from group.get("rules") or []


def check_alert(
    rule: Mapping[str, Any], config: Mapping[str, Any], runbook_dir: Path = RUNBOOK_DIR
) -> list[str]:
    """Problems of one alerting rule (mixtool's rules plus the brief's labels and links)."""
    name = str(rule.get("alert", ""))
    problems: list[str] = []
    where = f"alert {name}"
    if not _CAMEL.match(name):
        problems.append(f"{where}: name is not CamelCase")
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    if labels.get("severity") not in SEVERITIES:
        problems.append(f"{where}: severity {labels.get('severity')!r} not in {sorted(SEVERITIES)}")
    if labels.get("service") != config["serviceName"]:
        problems.append(f"{where}: label service must be {config['serviceName']!r}")
    if "escalation" in labels:
        # Escalations keep the escalated alert's category and source (routing by team).
        if labels["escalation"] not in ESCALATION_LEVELS:
            problems.append(
                f"{where}: escalation {labels['escalation']!r} not in {ESCALATION_LEVELS}"
            )
        if not re.search(r"\bby \(service, incident\)", str(rule.get("expr", ""))):
            problems.append(f"{where}: escalation must count per incident (by (service, incident))")
    else:
        if labels.get("category") not in CATEGORIES:
            problems.append(
                f"{where}: category {labels.get('category')!r} not in {sorted(CATEGORIES)}"
            )
        if labels.get("source") not in SOURCES:
            problems.append(f"{where}: source {labels.get('source')!r} not in {sorted(SOURCES)}")
    summary = str(annotations.get("summary", ""))
    if not summary:
        problems.append(f"{where}: summary missing")
    else:
        if "{{" in summary or "$labels" in summary or "$value" in summary:
            problems.append(f"{where}: summary must be static (no template)")
        if not summary[0].isupper():
            problems.append(f"{where}: summary must start with a capital letter")
        if not summary.endswith("."):
            problems.append(f"{where}: summary must end with a period")
    description = str(annotations.get("description", ""))
    if "{{" not in description:
        problems.append(f"{where}: description must be templated (measured value or labels)")
    runbook = str(annotations.get("runbook_url", ""))
    if runbook != f"{config['runbookBaseUrl']}{name}.md":
        problems.append(f"{where}: runbook_url must be runbookBaseUrl + {name}.md, got {runbook!r}")
    if not (runbook_dir / f"{name}.md").is_file():
        problems.append(f"{where}: docs/runbooks/{name}.md does not exist")
    dashboard = str(annotations.get("dashboard_url", ""))
    uids = set(config["dashboardUids"].values())
    prefix = f"{config['grafanaBaseUrl']}/d/"
    if not dashboard.startswith(prefix) or dashboard[len(prefix) :] not in uids:
        problems.append(f"{where}: dashboard_url must be {prefix}<uid of dashboardUids>")
    return problems


def check_rules(docs: Iterable[Mapping[str, Any]], config: Mapping[str, Any]) -> list[str]:
    """Problems of the rule documents: per rule, and the brief's alert and record lists."""
    problems: list[str] = []
    alerts: set[str] = set()
    records: set[str] = set()
    for rule in iter_rules(docs):
        if "alert" in rule:
            alerts.add(rule["alert"])
            problems += check_alert(rule, config)
        else:
            record = str(rule.get("record", ""))
            if record in records:
                problems.append(f"record {record}: defined twice")
            records.add(record)
            if not _RECORD.match(record):
                problems.append(f"record {record}: name is not level:metric:operations")
    problems += [f"alert {a}: in the brief but not defined" for a in sorted(BRIEF_ALERTS - alerts)]
    problems += [
        f"record {r}: in the brief but not defined" for r in sorted(BRIEF_RECORDS - records)
    ]
    return problems


def coverage_of(test_docs: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    """{alertname: {"firing": bool, "silent": bool}} over promtool test documents."""
    cover: dict[str, dict[str, bool]] = {}
    for doc in test_docs.values():
        for test in (doc or {}).get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                seen = cover.setdefault(
                    str(case.get("alertname")), {"firing": False, "silent": False}
                )
                seen["firing" if case.get("exp_alerts") else "silent"] = True
    return cover


def check_test_coverage(alerts: Iterable[str], test_docs: Mapping[str, Any]) -> list[str]:
    """Every alert needs a firing and a silent promtool case (always-firing ones only firing)."""
    cover = coverage_of(test_docs)
    problems = []
    for alert in sorted(set(alerts)):
        seen = cover.get(alert, {"firing": False, "silent": False})
        if not seen["firing"]:
            problems.append(f"alert {alert}: no promtool case in tests/rules/ where it fires")
        if not seen["silent"] and alert not in ALWAYS_FIRING:
            problems.append(
                f"alert {alert}: no promtool case in tests/rules/ where it stays silent"
            )
    return problems


def check_latency_buckets(config: Mapping[str, Any]) -> list[str]:
    """p95 thresholds must be bucket boundaries: above 5 s is then exact, not interpolated."""
    buckets = set(config["durationBuckets"])
    latency = config["latency"]
    # The average is sum/count, exact at any value; quantiles are interpolated inside a bucket.
    return [
        f"config latency.{key} = {latency[key]} is not a durationBuckets boundary"
        for key in ("info", "warning", "critical", "p95Target")
        if latency[key] not in buckets
    ]


def _run(argv: list[str]) -> str | None:
    """Output of a failed command, or None when it succeeded."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        return f"{argv[0]} not found (Debian package: run `make setup`)"
    if proc.returncode == 0:
        return None
    return (proc.stdout + proc.stderr).strip()


# Every folder of jsonnet sources (`make fmt` formats the same ones), searched recursively.
JSONNET_DIRS = ("config", "alert_rules", "alertmanager")


def check_jsonnetfmt(root: Path = REPO_ROOT) -> list[str]:
    """jsonnetfmt --test on every jsonnet source: the config, the rules, the Alertmanager config."""
    files = sorted(
        str(p)
        for d in JSONNET_DIRS
        for p in (root / d).rglob("*")
        if p.suffix in (".jsonnet", ".libsonnet")
    )
    problems = []
    for path in files:
        if (out := _run(["jsonnetfmt", "--test", path])) is not None:
            problems.append(
                f"jsonnetfmt --test {Path(path).relative_to(root)}: not formatted {out}"
            )
    return problems


def check_promtool(files: list[Path]) -> list[str]:
    """promtool check rules on the rendered files."""
    if not files:
        return ["no rendered rule files in alert_rules/ (run `make generate`)"]
    out = _run(["promtool", "check", "rules", *map(str, files)])
    return [] if out is None else [f"promtool check rules: {out}"]


def lint() -> list[str]:
    """All rule problems, one string each."""
    config = load_config(env={})
    files = rule_files()
    docs = [yaml.safe_load(p.read_text()) or {} for p in files]
    tests = {p.name: yaml.safe_load(p.read_text()) for p in sorted(TEST_DIR.glob("*.yml"))}
    alerts = [r["alert"] for r in iter_rules(docs) if "alert" in r]
    return (
        check_rules(docs, config)
        + check_test_coverage(alerts, tests)
        + check_latency_buckets(config)
        + check_jsonnetfmt()
        + check_promtool(files)
    )
