# The project's images, built from wheels (needs BuildKit: the default builder of Docker 23+ and
# of `docker compose build`):
#   --target product  what an SRE deploys: the `deletion-monitoring` wheel and its dependencies,
#                     nothing else (`deletion-monitor audit-exporter`, `integrity-exporter`, ...)
#   --target demo     the product plus the build-time tools and the demo (`deletion-monitor-demo`
#                     app / load), for docker-compose.yml's demo application and load generator
# docker build --target product -t deletion-monitoring:0.1.0 .
#
# Base image: pinned by exact tag. Pin it by digest too where you build
# (FROM python:3.11.11-slim-bookworm@sha256:...); the digest could not be looked up from the
# machine this file was written on (no registry access), and a guessed one would fail the build.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: wheels of the three projects and of every dependency ------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the three builds read: the product (metadata, README, LICENSE, src/), tools/, demo/.
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
COPY tools/ tools/
COPY demo/ demo/
# One resolver run for all three: the tools' and the demo's requirement `deletion-monitoring` is
# then satisfied by the local `.`, never by a package of that name on an index.
RUN pip wheel --wheel-dir /wheels . ./tools ./demo

# --- product: only the product wheel (and its dependencies) -----------------------------------
FROM ${PYTHON_IMAGE} AS product
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are mounted for this one step, not copied: no wheel (the tools' and the demo's
# included) and no source stays in a layer. --no-index: nothing is fetched at this point.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/deletion_monitoring-*.whl \
    && deletion-monitor --help > /dev/null
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh
# Never root at run time; no home, no login shell. The config and schema SQL are package data.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin deletion \
    && chmod 0755 /usr/local/bin/entrypoint.sh
USER 10001
# entrypoint.sh turns every VAR_FILE (a Docker secret) into VAR, then runs the command.
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["deletion-monitor", "--help"]

# --- demo: the product image plus the tools and the demo app / load generator -----------------
FROM product AS demo
USER root
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels \
        /wheels/deletion_monitoring_tools-*.whl /wheels/deletion_monitoring_demo-*.whl \
    && deletion-monitor-demo --help > /dev/null
USER 10001
CMD ["deletion-monitor-demo", "--help"]
