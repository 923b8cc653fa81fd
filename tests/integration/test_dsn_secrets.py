"""No password reaches any output line, for DSNs libpq cannot parse and for DSNs the server
rejects, in every command that takes --dsn; and a password on the command line is warned about.
(What redaction makes of each malformed DSN, in-process: tests/unit/test_dsn_redaction.py.)

Each case runs the real `deletion-monitor` script as a subprocess and looks at everything it
printed. The password is built so that every piece libpq might cut out of it (after a stray %,
a space, an unencoded @ or /) is itself a distinctive string that must not appear either.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from support.dsn import HEAD, TAIL, _malformed

from deletion_monitor_demo.pgcluster import REPO_ROOT, PgCluster

CLI = str(REPO_ROOT / ".venv" / "bin" / "deletion-monitor")
FRAGMENTS = (HEAD, TAIL)


def _rejected(cluster: PgCluster) -> list[tuple[str, str]]:
    """Parseable DSNs that the server, or libpq when connecting, refuses."""
    port = cluster.port
    return [
        ("no such database", f"postgresql://postgres:{HEAD}{TAIL}@127.0.0.1:{port}/no_such_db"),
        ("bad sslmode value", f"postgresql://postgres:{HEAD}{TAIL}@127.0.0.1:{port}/x?sslmode=on"),
        ("encoded %, no host", f"postgresql://postgres:{HEAD}%25{TAIL}@no-such-host.invalid/app"),
        ("unencoded /", f"postgresql://postgres:{HEAD}/{TAIL}@127.0.0.1:{port}/app"),
        ("kv quoted, no db", f"host=127.0.0.1 port={port} dbname=nope password='{HEAD} {TAIL}'"),
        ("dead port", f"postgresql://postgres:{HEAD}{TAIL}@127.0.0.1:1/app"),
    ]


# The three commands that take --dsn, one-shot: a malformed or rejected DSN is exit 2, one line.
COMMANDS = {
    "audit-exporter --check-only": ["audit-exporter", "--check-only"],
    "integrity-exporter --check-only": ["integrity-exporter", "--check-only"],
    "check-integrity": ["check-integrity"],
}
# The serving modes validate the DSN on the same lines before they branch; a few DSNs show
# they refuse it too instead of starting. Port 0: nothing is left listening if one starts.
SERVING = {
    "audit-exporter": ["audit-exporter", "--listen", "127.0.0.1:0"],
    "integrity-exporter": ["integrity-exporter", "--listen", "127.0.0.1:0"],
}


def _run(argv: list[str], dsn: str, via: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    if "PYTHONPATH" in os.environ:  # lets the same test run against another checkout
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if via == "env":
        env["DATABASE_URL"] = dsn
    else:
        argv = [*argv, "--dsn", dsn]
    return subprocess.run(
        [CLI, *argv], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def _assert_no_secret(proc: subprocess.CompletedProcess[str], what: str) -> None:
    output = proc.stdout + proc.stderr
    for fragment in FRAGMENTS:
        assert fragment not in output, f"{what}: {fragment} leaked: {output!r}"


def _matrix(dsns: list[tuple[str, str]], commands: dict[str, list[str]]) -> list[tuple]:
    cases = []
    for i, (label, dsn) in enumerate(dsns):
        for j, (name, argv) in enumerate(commands.items()):
            # --dsn or DATABASE_URL, alternating: every DSN and every command meets both.
            via = ("flag", "env")[(i + j) % 2]
            cases.append((f"{name} / {label} / {via}", argv, dsn, via))
    # The machine is shared: a few at a time, each a short-lived process.
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = list(pool.map(lambda c: _run(c[1], c[2], c[3]), cases))
    return [(c[0], p) for c, p in zip(cases, procs, strict=True)]


def test_malformed_dsns_exit_2_with_one_line_and_no_password() -> None:
    problems = []
    runs = _matrix(_malformed(), COMMANDS) + _matrix(_malformed()[:4], SERVING)
    for what, proc in runs:
        _assert_no_secret(proc, what)
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != 2 or len(lines) != 1 or "--dsn" not in proc.stderr:
            problems.append(f"{what}: rc={proc.returncode} stderr={proc.stderr!r}")
        if "Traceback" in proc.stderr:
            problems.append(f"{what}: traceback")
    assert not problems, "\n".join(problems)


def test_rejected_dsns_exit_2_with_one_line_and_no_password(pg_cluster: PgCluster) -> None:
    problems = []
    # A server that does not answer is an outage for the serving modes (they start, up=0);
    # every other rejection is a configuration error for them too.
    refused = [(label, dsn) for label, dsn in _rejected(pg_cluster) if label != "dead port"]
    runs = _matrix(_rejected(pg_cluster), COMMANDS) + _matrix(refused, SERVING)
    for what, proc in runs:
        _assert_no_secret(proc, what)
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != 2 or len(lines) != 1 or "--dsn" not in proc.stderr:
            problems.append(f"{what}: rc={proc.returncode} stderr={proc.stderr!r}")
    assert not problems, "\n".join(problems)


def _checks_file(tmp_path: Path) -> Path:
    path = tmp_path / "checks.yml"
    check = {
        "name": "zero",
        "category": "consistency",
        "severity": "info",
        "tables": [],
        "sql": "SELECT 0",
        "interval": 60,
        "timeout": 5,
    }
    path.write_text(yaml.safe_dump({"checks": [check]}))
    return path


def test_password_in_dsn_flag_is_warned_about_without_the_password(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    # Trust authentication accepts any password, so this DSN connects.
    dsn = f"postgresql://postgres:{HEAD}{TAIL}@127.0.0.1:{pg_cluster.port}/postgres"
    checks = ["--checks", str(_checks_file(tmp_path))]
    for argv in (["integrity-exporter", "--check-only", *checks], ["check-integrity", *checks]):
        flagged = _run(argv, dsn, "flag")
        assert flagged.returncode == 0, flagged.stderr
        _assert_no_secret(flagged, argv[0])
        warnings = [line for line in flagged.stderr.splitlines() if "ps" in line]
        assert len(warnings) == 1 and "DATABASE_URL" in warnings[0] and "pgpass" in warnings[0]
        from_env = _run(argv, dsn, "env")
        assert from_env.returncode == 0, from_env.stderr
        assert "DATABASE_URL" not in from_env.stderr  # no warning: nothing to see in ps
        # Without a password there is nothing to warn about either.
        bare = _run(argv, pg_cluster.dsn(), "flag")
        assert bare.returncode == 0 and "pgpass" not in bare.stderr


def test_audit_check_only_warns_about_a_password_in_the_dsn_flag(audit_dsn: str) -> None:
    dsn = audit_dsn.replace("postgres@", f"postgres:{HEAD}{TAIL}@")
    argv = ["audit-exporter", "--check-only"]
    flagged = _run(argv, dsn, "flag")
    assert flagged.returncode == 0, flagged.stderr
    _assert_no_secret(flagged, argv[0])
    warnings = [line for line in flagged.stderr.splitlines() if "ps" in line]
    assert len(warnings) == 1 and "DATABASE_URL" in warnings[0] and "pgpass" in warnings[0]
    from_env = _run(argv, dsn, "env")
    assert from_env.returncode == 0 and from_env.stderr == "", from_env.stderr


def test_serving_exporters_warn_once_about_a_password_in_the_dsn_flag(
    audit_dsn: str, tmp_path: Path
) -> None:
    from deletion_monitor_demo.services import ManagedProcess, free_port, wait_http

    dsn = audit_dsn.replace("postgres@", f"postgres:{HEAD}{TAIL}@")
    for name, extra in (
        ("audit-exporter", []),
        ("integrity-exporter", ["--checks", str(_checks_file(tmp_path))]),
    ):
        port = free_port()
        log = tmp_path / f"{name}.log"
        argv = [CLI, name, "--dsn", dsn, "--listen", f"127.0.0.1:{port}", *extra]
        with ManagedProcess(argv, log):
            wait_http(f"http://127.0.0.1:{port}/metrics")
        text = log.read_text()
        assert HEAD not in text and TAIL not in text
        assert sum("DATABASE_URL" in line and "pgpass" in line for line in text.splitlines()) == 1
