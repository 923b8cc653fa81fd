# deletion-monitoring: every entry point a developer or CI needs.
# `make demo` and `make test` each run `setup` first, so a fresh Debian machine needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps lint fmt generate check-generated test test-fast test-unit test-weeks demo bench dist clean

setup: system-deps $(STAMP)

# Debian packages the suite runs for real: PostgreSQL server binaries, Prometheus/promtool,
# Alertmanager/amtool, jsonnetfmt. Installed only when a binary is missing.
system-deps:
	@bash scripts/ensure-system-deps.sh

$(STAMP): pyproject.toml tools/pyproject.toml demo/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e ./tools -e ./demo
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PY) -m deletion_monitor_tools.lint

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	find src/deletion_monitor/data alert_rules alertmanager lib mixin.libsonnet -name '*.*sonnet' -print0 2>/dev/null | xargs -0 -r jsonnetfmt -i

# Render every generated artefact (rules YAML, Alertmanager config, dashboards JSON) from its source.
generate: setup
	$(PY) -m deletion_monitor_tools.generate

# CI guard: regenerate into a temp tree and fail on any difference from what is committed.
check-generated: setup
	$(PY) -m deletion_monitor_tools.generate --check

# Three workers on two cores: the two end-to-end modules (tests/e2e/) each wait on their own
# stack's compressed alert windows, not on CPU, while the third runs the rest; whole files per
# worker (--dist loadfile), so a module's fixtures (a stack, a Prometheus) start once.
test: setup lint check-generated
	$(BIN)/pytest -q -n 3 --dist loadfile -m 'not weeks'

test-fast: setup
	$(BIN)/pytest -q -m 'not slow and not weeks'

# The pure-Python tests (tests/unit/) in seconds: no binary, no database, so only the venv
# (not system-deps) is a prerequisite.
test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Whole simulated healthy weeks through promtool (about 5 min); .ci/run runs it after `test`.
test-weeks: setup
	$(BIN)/pytest -q -m weeks

demo: setup
	$(BIN)/deletion-monitor-demo run $(if $(SCENARIO),--scenario $(SCENARIO),)

bench: setup
	$(PY) bench/run.py

# The three wheels into dist/: the product (deletion-monitoring, what an SRE installs: see
# docs/install.md), the build-time tools and the demo. The build folders go first because
# setuptools packs whatever a stale build/lib still holds, such as a module deleted since.
dist: $(STAMP)
	rm -rf dist build tools/build demo/build
	$(BIN)/pip wheel -q --no-deps -w dist . ./tools ./demo
	@ls -l dist

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info src/*.egg-info tools/*.egg-info demo/*.egg-info
