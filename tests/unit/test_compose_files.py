"""docker-compose.yml and the Dockerfile read as text: every COPY source exists and the compose
file holds no secret value. What needs the Docker Compose binary (the resolved model, mounts,
pinned images) is tests/integration/test_compose.py."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def test_dockerfile_copies_only_existing_paths() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    sources = [
        src
        for line in text.splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
        if not src.startswith("--")
    ]
    assert sources
    missing = [s for s in sources if not (REPO_ROOT / s).exists()]
    assert not missing, f"Dockerfile COPYs missing paths: {missing}"


def test_no_secret_value_in_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"(?i)(password|token|secret|key)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{8,}", text)
    assert "hooks.slack.com" not in text
