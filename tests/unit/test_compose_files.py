"""docker-compose.yml and the Dockerfile read as text: every COPY source exists, the images are
built from wheels (never an editable install of the checkout), the product image runs as a
non-root user, and the compose file holds no secret value. What needs the Docker Compose binary
(the resolved model, mounts, ports, healthchecks, pinned images) is
tests/integration/test_compose.py; building the wheels from what the Dockerfile copies is there
too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, `\\` continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        word, _, rest = whole.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (from its FROM on); the preamble (ARGs) is stage ''."""
    result: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for word, rest in instructions(text):
        if word == "FROM":
            match = re.search(r"(?i)\s+AS\s+(\S+)$", rest)
            current = match.group(1) if match else rest
            result[current] = []
        result[current].append((word, rest))
    return result


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, list[tuple[str, str]]]:
    return stages(DOCKERFILE.read_text())


def test_instruction_parser_joins_continuations_and_names_stages() -> None:
    text = "ARG X=1\nFROM a:1 AS one\n# c\nRUN a \\\n    b\nFROM one AS two\nUSER 5\n"
    parsed = stages(text)
    assert parsed["one"] == [("FROM", "a:1 AS one"), ("RUN", "a      b")]
    assert parsed["two"][-1] == ("USER", "5")


def test_dockerfile_copies_only_existing_paths(dockerfile) -> None:
    sources = [
        src
        for stage in dockerfile.values()
        for word, rest in stage
        if word == "COPY" and "--from=" not in rest
        for src in rest.split()[:-1]
        if not src.startswith("--")
    ]
    assert sources
    missing = [s for s in sources if not (REPO_ROOT / s).exists()]
    assert not missing, f"Dockerfile COPYs missing paths: {missing}"


def test_no_editable_install_anywhere() -> None:
    runs = [rest for word, rest in instructions(DOCKERFILE.read_text()) if word == "RUN"]
    for run in runs:
        assert not re.search(r"pip\s+install\b.*(\s-e\s|--editable)", run), run


def test_the_build_stage_makes_wheels_of_the_three_projects(dockerfile) -> None:
    runs = " ".join(rest for word, rest in dockerfile["build"] if word == "RUN")
    assert re.search(r"pip wheel\b.*\s\.\s.*\./tools\b.*\./demo\b", runs), runs


def test_the_product_stage_installs_only_the_product_wheel(dockerfile) -> None:
    product = dockerfile["product"]
    installs = [rest for word, rest in product if word == "RUN" and "pip install" in rest]
    assert len(installs) == 1, installs
    wheels = re.findall(r"\S+\.whl", installs[0])
    assert wheels == ["/wheels/deletion_monitoring-*.whl"], wheels
    # Nothing fetched at image build time: only the build stage's wheels.
    assert "--no-index" in installs[0]
    # No source tree: the product stage copies nothing but the entrypoint.
    copies = [rest for word, rest in product if word == "COPY"]
    assert copies == ["docker/entrypoint.sh /usr/local/bin/entrypoint.sh"], copies


def test_images_run_as_the_non_root_user(dockerfile) -> None:
    for name in ("product", "demo"):
        users = [rest for word, rest in dockerfile[name] if word == "USER"]
        assert users and users[-1] == "10001", f"{name}: last USER is {users}"
    product = dict(dockerfile["product"])
    assert product["ENTRYPOINT"] == '["/usr/local/bin/entrypoint.sh"]'
    assert product["CMD"] == '["deletion-monitor", "--help"]'


def test_demo_builds_on_the_product_and_adds_tools_and_demo(dockerfile) -> None:
    demo = dockerfile["demo"]
    assert demo[0] == ("FROM", "product AS demo")
    installs = " ".join(rest for word, rest in demo if word == "RUN")
    assert set(re.findall(r"\S+\.whl", installs)) == {
        "/wheels/deletion_monitoring_tools-*.whl",
        "/wheels/deletion_monitoring_demo-*.whl",
    }


def test_base_image_is_pinned_to_an_exact_tag(dockerfile) -> None:
    args = dict(
        rest.split("=", 1) for word, rest in dockerfile[""] if word == "ARG" and "=" in rest
    )
    known = set(dockerfile) - {""}
    for name, stage in dockerfile.items():
        if not name:
            continue
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        if image in known:
            continue
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), image


def test_no_secret_value_in_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"(?i)(password|token|secret|key)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{8,}", text)
    assert "hooks.slack.com" not in text
