"""The product wheel works outside the checkout (issue 15, "a self-contained package").

One module-scoped fixture builds the wheel once, from a copy of the working tree in a temporary
directory (an in-tree build writes build/ and *.egg-info into the checkout, and setuptools packs
whatever a stale build/lib still holds), and installs it into ONE fresh venv, also outside the
checkout. Every command then runs that venv's `deletion-monitor` with its working directory
outside the checkout and an environment without PYTHONPATH, VIRTUAL_ENV or
DELETION_MONITOR_CONFIG, so nothing of the checkout (its src/, its .venv, the build-time tools,
the demo) can stand in for what the wheel lacks.

Against a real PostgreSQL (the session cluster of tests/conftest.py, schema applied from the
installed package's own `deletion-monitor schema` output through psql) and a real Prometheus
scraping the installed exporters, figures are compared with what was inserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deletion_monitor.cli import COMMANDS
from deletion_monitor_demo.pgcluster import PgCluster
from deletion_monitor_demo.services import free_port, require_binary, wait_http

REPO_ROOT = Path(__file__).resolve().parents[2]
# Names of the checkout's other projects and folders: none of them may reach the wheel.
FOREIGN = ("tests", "tools", "demo", "deletion_monitor_tools", "deletion_monitor_demo", "bench")
# Requirements the runtime install must never pull in (build-time tools, the demo, test deps).
FOREIGN_REQUIREMENTS = (
    "grafanalib",
    "deletion-monitoring-tools",
    "deletion-monitoring-demo",
    "aiosmtpd",
    "pytest",
)
# What the environment of every command keeps from ours: the locale and this machine's pip
# settings (its package index). Everything else, PYTHONPATH and VIRTUAL_ENV first, stays out.
KEEP_ENV_PREFIXES = ("LANG", "LC_", "PIP_", "TZ")

# The deletions the live tests insert: NINE successes and ONE business-logic failure (10 %
# errors), and orphaned sessions of TWO of the deleted users.
SUCCESSES = 9
FAILURES = 1
ORPHANED = 2


@dataclass
class Installed:
    """The built wheel and the fresh venv it is installed in."""

    wheel: Path
    venv: Path
    work: Path  # cwd of every command: outside the checkout
    env: dict[str, str]

    @property
    def command(self) -> str:
        return str(self.venv / "bin" / "deletion-monitor")

    def run(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.command, *argv],
            cwd=self.work,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str) -> str:
        out = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return out.stdout.strip()


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(KEEP_ENV_PREFIXES)}
    # No .venv/bin of the checkout on PATH: the installed command is called by its full path,
    # psql and prometheus come from the system.
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(home))
    return env


def _copy_working_tree(dest: Path) -> None:
    """The checkout's tracked and untracked-but-not-ignored files (what a clone plus the
    colleagues' uncommitted work holds), without build/, .venv or egg-info."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO_ROOT / rel
        if not src.is_file():  # deleted in the working tree, not yet committed
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel-install")
    assert not base.resolve().is_relative_to(REPO_ROOT), "the venv must live outside the checkout"
    work = base / "work"
    work.mkdir()
    env = _clean_env(base)
    source = base / "source"
    _copy_working_tree(source)
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("deletion_monitoring-*.whl")
    venv = base / "venv"
    # The interpreter behind our .venv, not the .venv itself: the new venv shares nothing of it.
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], cwd=work, env=env, check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return Installed(wheel=wheel, venv=venv, work=work, env=env)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


# --------------------------------------------------------------------------------------------
# The wheel itself


@pytest.mark.slow
def test_wheel_holds_the_package_data_and_nothing_of_the_other_projects(
    installed: Installed,
) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for data in (
        "deletion_monitor/data/config.libsonnet",
        "deletion_monitor/integrity/default_checks.yml",
    ):
        assert data in names
    shipped_sql = sorted(
        p.name for p in (REPO_ROOT / "src/deletion_monitor/data/schema").glob("*.sql")
    )
    assert shipped_sql, "the checkout has no schema files to compare with"
    assert (
        sorted(Path(n).name for n in names if n.startswith("deletion_monitor/data/schema/"))
        == shipped_sql
    )
    top_levels = {n.split("/")[0] for n in names}
    dist_info = {t for t in top_levels if t.endswith(".dist-info")}
    assert top_levels - dist_info == {"deletion_monitor"}
    assert not [n for n in names if any(part in FOREIGN for part in Path(n).parts)]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    [info] = dist_info
    assert f"{info}/licenses/LICENSE" in names or f"{info}/LICENSE" in names
    license_name = next(n for n in names if n.startswith(info) and n.endswith("/LICENSE"))
    text = zipfile.ZipFile(installed.wheel).read(license_name).decode()
    assert "Apache License" in text and "Version 2.0" in text


@pytest.mark.slow
def test_wheel_metadata_requires_only_the_runtime(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as zf:
        [meta_name] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(meta_name).decode())
    runtime = [r for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r]
    names = {
        r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].strip().lower() for r in runtime
    }
    assert names == {"prometheus-client", "psycopg", "psycopg-pool", "pyyaml", "jsonnet"}
    every = " ".join(meta.get_all("Requires-Dist", [])).lower()
    for foreign in FOREIGN_REQUIREMENTS[:4]:
        assert foreign not in every
    assert meta["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (meta.get_all("License-File") or [])


@pytest.mark.slow
def test_the_venv_runs_the_installed_copy_not_the_checkout(installed: Installed) -> None:
    where = json.loads(
        installed.python(
            "import json, deletion_monitor, deletion_monitor.data as d; "
            "print(json.dumps([deletion_monitor.__file__, str(d.default_config_path())]))"
        )
    )
    for path in where:
        assert Path(path).is_relative_to(installed.venv), path
        assert not Path(path).is_relative_to(REPO_ROOT), path
    # Nothing of the other projects (or the test dependencies) was installed with it.
    listed = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packages = {p["name"].lower() for p in json.loads(listed)}
    assert "deletion-monitoring" in packages
    assert not packages & set(FOREIGN_REQUIREMENTS)
    for module in ("deletion_monitor_tools", "deletion_monitor_demo", "grafanalib"):
        found = installed.python(
            f"import importlib.util; print(importlib.util.find_spec({module!r}) is None)"
        )
        assert found == "True", module


# --------------------------------------------------------------------------------------------
# Commands that need no service


@pytest.mark.slow
def test_help_of_the_command_and_of_every_subcommand(installed: Installed) -> None:
    top = installed.run("--help")
    assert top.returncode == 0, top.stderr
    for name in COMMANDS:
        assert name in top.stdout
        sub = installed.run(name, "--help")
        assert sub.returncode == 0, (name, sub.stderr)
        assert sub.stdout.startswith("usage: deletion-monitor " + name), name
        assert "--config" in sub.stdout, name


@pytest.mark.slow
def test_schema_lists_and_prints_the_shipped_files(installed: Installed) -> None:
    listed = installed.run("schema")
    assert listed.returncode == 0, listed.stderr
    shipped = sorted(p.stem for p in (REPO_ROOT / "src/deletion_monitor/data/schema").glob("*.sql"))
    assert listed.stdout.split() == shipped
    printed = installed.run("schema", "deletion_audit")
    assert printed.returncode == 0
    assert printed.stdout == (
        REPO_ROOT / "src/deletion_monitor/data/schema/deletion_audit.sql"
    ).read_text(encoding="utf-8")
    missing = installed.run("schema", "no_such_schema")
    assert missing.returncode == 2
    assert "no_such_schema" in _one_line(missing.stderr)


@pytest.mark.slow
def test_a_missing_config_file_is_exit_2_and_one_line(installed: Installed) -> None:
    for argv in (
        ["watch", "--once", "--prometheus", f"http://127.0.0.1:{free_port()}"],
        ["report", "health", "--prometheus", f"http://127.0.0.1:{free_port()}"],
        ["check-integrity", "--dsn", f"postgresql://postgres@127.0.0.1:{free_port()}/x"],
    ):
        done = installed.run(*argv, "--config", "/missing/config.libsonnet")
        assert done.returncode == 2, argv
        line = _one_line(done.stderr)
        assert "--config" in line and "/missing/config.libsonnet" in line, line
    # The same file through the environment: the loader names it, in one line.
    done = installed.run(
        "watch",
        "--once",
        "--prometheus",
        f"http://127.0.0.1:{free_port()}",
        env={"DELETION_MONITOR_CONFIG": "/missing/config.libsonnet"},
    )
    assert done.returncode == 2
    assert "/missing/config.libsonnet" in _one_line(done.stderr)


@pytest.mark.slow
def test_check_only_against_a_closed_port_is_one_line_and_non_zero(installed: Installed) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    for command in ("audit-exporter", "integrity-exporter"):
        done = installed.run(command, "--check-only", "--dsn", dsn)
        assert done.returncode != 0, command
        line = _one_line(done.stderr)
        assert "cannot connect" in line, line


# --------------------------------------------------------------------------------------------
# Against a real PostgreSQL and a real Prometheus


class Proc:
    """An installed command running in the background with the clean environment; its output
    goes to a log file, shown when a wait fails."""

    def __init__(self, installed: Installed, argv: Sequence[str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            list(argv),
            cwd=installed.work,
            env=installed.env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


def _wait(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if cond():
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _prom_value(url: str, expr: str) -> float | None:
    query = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _psql(installed: Installed, dsn: str, schema: str) -> None:
    """`deletion-monitor schema NAME | psql DSN`, as docs/install.md tells the app's owners."""
    printed = installed.run("schema", schema)
    assert printed.returncode == 0, printed.stderr
    applied = subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-q", dsn],
        input=printed.stdout,
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr


@dataclass
class Live:
    installed: Installed
    dsn: str
    prometheus: str
    audit_port: int
    integrity_port: int
    sre_config: Path
    shipped_config: Path


def _insert_deletions(dsn: str) -> list[str]:
    """SUCCESSES successful deletions and FAILURES business-logic failures, every field an
    auditor needs filled in; returns the deleted users' ids."""
    admin = str(uuid.uuid4())
    deleted = [str(uuid.uuid4()) for _ in range(SUCCESSES)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, user in enumerate(deleted):
            conn.execute(
                "INSERT INTO deletion_audit (outcome, duration_seconds, target_user_id,"
                " target_user_type, performed_by, performed_by_type, rows_deleted, http_status)"
                " VALUES ('success', %s, %s, 'CLIENT', %s, 'ADMIN', '{\"sessions\": 1}', 200)",
                (0.1 + i / 100, user, admin),
            )
        for _ in range(FAILURES):
            conn.execute(
                "INSERT INTO deletion_audit (outcome, error_type, duration_seconds,"
                " target_user_id, target_user_type, performed_by, performed_by_type, http_status)"
                " VALUES ('failure', 'business_logic', 0.3, %s, 'CLIENT', %s, 'ADMIN', 409)",
                (str(uuid.uuid4()), admin),
            )
    return deleted


def _orphan_sessions(dsn: str, users: list[str]) -> None:
    """Sessions left behind by the deletion of `users` (no profile row any more)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The reference schema's foreign key would refuse them: a broken cascade is the point.
        conn.execute("SET session_replication_role = replica")
        for user in users:
            conn.execute(
                'INSERT INTO sessions ("sessionToken", "userId", expires)'
                " VALUES (%s, %s, now() + interval '1 day')",
                (str(uuid.uuid4()), user),
            )


@pytest.fixture(scope="module")
def live(
    installed: Installed, pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("wheel-live")
    dsn = pg_cluster.create_database("wheel_install")
    _psql(installed, dsn, "reference_app")
    _psql(installed, dsn, "deletion_audit")
    # An SRE's own config: the shipped file copied out of the installed package, with the
    # error-rate ladder and the SLO target changed. An SRE edits the values in place; the test
    # appends the change as a jsonnet patch, so it does not depend on how the lines read today.
    shipped = Path(
        installed.python("import deletion_monitor.data as d; print(d.default_config_path())")
    )
    text = shipped.read_text().rstrip() + (
        "\n+ { _config+:: { errorRate+: { info: 0.15, warning: 0.2, critical: 0.3 },"
        " slo+: { target: 0.85 } } }\n"
    )
    sre_config = work / "sre" / "config.libsonnet"
    sre_config.parent.mkdir()
    sre_config.write_text(text)

    audit_port, integrity_port, prom_port = free_port(), free_port(), free_port()
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        f"  - job_name: deletion-audit-exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{audit_port}']}}]\n"
        f"  - job_name: deletion-integrity-exporter\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{integrity_port}']}}]\n"
    )
    procs: list[Proc] = []
    try:
        audit = Proc(
            installed,
            [
                installed.command,
                "audit-exporter",
                "--dsn",
                dsn,
                "--listen",
                f"127.0.0.1:{audit_port}",
                "--poll-interval",
                "0.2",
            ],
            work / "audit-exporter.log",
        )
        procs.append(audit)
        prometheus = Proc(
            installed,
            [
                require_binary("prometheus"),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            work / "prometheus.log",
        )
        procs.append(prometheus)
        url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{url}/-/ready", timeout=60)
        # The audit exporter's counters (0 for every user type) scraped before the first row:
        # the console and the reports count from the first sample, so the rows below are "new".
        _wait(
            lambda: (
                _prom_value(url, 'count(deletion_requests_total{job="deletion-audit-exporter"})')
                is not None
            ),
            "a first scrape of the audit exporter",
        )
        deleted = _insert_deletions(dsn)
        _orphan_sessions(dsn, deleted[:ORPHANED])
        # Started after the rows: its completeness audit runs at start-up, then every 5 min.
        integrity = Proc(
            installed,
            [
                installed.command,
                "integrity-exporter",
                "--dsn",
                dsn,
                "--listen",
                f"127.0.0.1:{integrity_port}",
            ],
            work / "integrity-exporter.log",
        )
        procs.append(integrity)
        total = SUCCESSES + FAILURES
        try:
            _wait(
                lambda: (
                    _prom_value(url, 'sum(deletion_requests_total{job="deletion-audit-exporter"})')
                    == total
                ),
                "Prometheus to scrape every inserted deletion",
            )
            _wait(
                lambda: (
                    _prom_value(
                        url,
                        'sum(deletion_integrity_violations{job="deletion-integrity-exporter",'
                        'check="orphaned_sessions"})',
                    )
                    == ORPHANED
                ),
                "Prometheus to scrape the orphaned sessions",
            )
        except AssertionError:
            raise AssertionError("\n\n".join(p.tail() for p in procs)) from None
        yield Live(
            installed=installed,
            dsn=dsn,
            prometheus=url,
            audit_port=audit_port,
            integrity_port=integrity_port,
            sre_config=sre_config,
            shipped_config=shipped,
        )
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.mark.slow
def test_check_only_against_the_shipped_schema_is_exit_0(live: Live) -> None:
    for command in ("audit-exporter", "integrity-exporter"):
        done = live.installed.run(command, "--check-only", "--dsn", live.dsn)
        assert done.returncode == 0, (command, done.stderr)
    # The integrity exporter had the database plan every shipped check.
    assert "accepted every one" in done.stdout


@pytest.mark.slow
def test_check_integrity_runs_the_shipped_checks_against_the_reference_schema(live: Live) -> None:
    done = live.installed.run("check-integrity", "--dsn", live.dsn, "--format", "json")
    assert done.returncode == 1, done.stderr  # 1: violations found, not 2: could not run
    report = json.loads(done.stdout)
    text = json.dumps(report)
    assert "orphaned_sessions" in text
    # Database truth: the orphans inserted, counted by the database itself.
    with psycopg.connect(live.dsn) as conn:
        truth = conn.execute(
            "SELECT count(*) FROM sessions c WHERE NOT EXISTS "
            '(SELECT 1 FROM profiles p WHERE p.id = c."userId")'
        ).fetchone()
    assert truth is not None and truth[0] == ORPHANED
    text_report = live.installed.run("check-integrity", "--dsn", live.dsn)
    assert text_report.returncode == 1
    assert "orphaned_sessions" in text_report.stdout
    assert "Traceback" not in text_report.stderr


@pytest.mark.slow
def test_installed_exporters_serve_the_database_truth(live: Live) -> None:
    with psycopg.connect(live.dsn) as conn:
        by_outcome = dict(
            conn.execute("SELECT outcome, count(*) FROM deletion_audit GROUP BY outcome").fetchall()
        )
        distinct_deleted = conn.execute(
            "SELECT count(DISTINCT target_user_id) FROM deletion_audit WHERE outcome = 'success'"
        ).fetchone()
    assert by_outcome == {"success": SUCCESSES, "failure": FAILURES}
    audit = _metrics(live.audit_port)
    assert sum(_samples(audit, "deletion_requests_total")) == SUCCESSES + FAILURES
    # Every user type is exported from the start (at 0): the rows are all CLIENT deletions.
    assert sum(_samples(audit, "deletion_requests_total", user_type="CLIENT")) == (
        SUCCESSES + FAILURES
    )
    assert sum(_samples(audit, "deletion_failures_total")) == FAILURES
    assert sum(_samples(audit, "deletion_failures_total", error_type="business_logic")) == FAILURES
    assert sum(_samples(audit, "deletion_duration_seconds_count", outcome="success")) == SUCCESSES
    integrity = _metrics(live.integrity_port)
    assert _samples(integrity, "deletion_integrity_violations", check="orphaned_sessions") == [
        ORPHANED
    ]
    # The completeness audit samples up to 10 users, so all nine deleted users were audited and
    # the two with sessions left behind failed it.
    assert distinct_deleted is not None
    assert _samples(integrity, "deletion_completeness_audited_total") == [distinct_deleted[0]]
    assert _samples(integrity, "deletion_completeness_failures_total") == [ORPHANED]
    assert _samples(integrity, "deletion_integrity_up") == [1]
    # Every shipped check ran (no check broken by the install).
    assert sum(_samples(integrity, "deletion_integrity_check_errors_total")) == 0


def _watch(live: Live, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = live.installed.run(
        "watch", "--once", "--json", "--prometheus", live.prometheus, *extra, env=env
    )
    assert done.returncode in (0, 1, 2), done.stderr
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(done.stdout)


def _health(live: Live, *extra: str) -> dict[str, Any]:
    done = live.installed.run(
        "report", "health", "--range", "1h", "--prometheus", live.prometheus, *extra
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_report_against_the_live_prometheus(live: Live) -> None:
    health = _health(live)
    assert health["data"] is True
    assert health["totals"]["requests"] == SUCCESSES + FAILURES
    assert health["totals"]["failures"] == FAILURES
    assert health["totals"]["success_rate"] == pytest.approx(SUCCESSES / (SUCCESSES + FAILURES))
    for fmt, marker in (("markdown", "#"), ("html", "<html")):
        done = live.installed.run(
            "report", "health", "--range", "1h", "--format", fmt, "--prometheus", live.prometheus
        )
        assert done.returncode == 0, (fmt, done.stderr)
        assert marker in done.stdout.lower(), fmt
    usage = live.installed.run(
        "report", "usage-patterns", "--range", "1h", "--prometheus", live.prometheus
    )
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout)["totals"]["requests"] == SUCCESSES + FAILURES


@pytest.mark.slow
def test_an_sre_config_changes_what_watch_and_report_show(live: Live) -> None:
    # Shipped config: 10 % errors breach the 1 % warning level; 90 % success misses 99 %.
    code, shipped = _watch(live)
    assert shipped["deletions_1h"] == SUCCESSES + FAILURES
    assert shipped["error_rate"] == pytest.approx(0.1)
    assert shipped["thresholds"]["error_rate"] == pytest.approx(0.01)
    assert code == 1 and "error rate 10.00 % > 1.00 %" in shipped["breaches"]
    [success] = [t for t in _health(live)["targets"] if t["target"] == "success rate"]
    assert success["goal"] == "> 99 %" and success["met"] is False

    # The SRE's copy (warning 20 %, SLO 85 %), by flag and by environment variable alike.
    for extra, env in (
        (["--config", str(live.sre_config)], None),
        ([], {"DELETION_MONITOR_CONFIG": str(live.sre_config)}),
    ):
        code, own = _watch(live, *extra, env=env)
        assert own["thresholds"]["error_rate"] == pytest.approx(0.2)
        assert own["error_rate"] == pytest.approx(0.1)
        assert not [b for b in own["breaches"] if b.startswith("error rate")]
        # No application is scraped here, so its memory and pool figures are unknown (2).
        assert code == 2 and own["status"] == "unknown"
    [success] = [
        t
        for t in _health(live, "--config", str(live.sre_config))["targets"]
        if t["target"] == "success rate"
    ]
    assert success["goal"] == "> 85 %" and success["met"] is True
