# The project's Python image: both exporters (`deletion-monitor`), and the demo application and
# load generator (`deletion-monitor-demo`); docker-compose.yml runs each with its own command.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
COPY tools/ tools/
COPY demo/ demo/
# Editable, from /app (the config and schema SQL are package data under src/).
RUN pip install -e . -e ./tools -e ./demo
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh

# Never root at run time.
RUN useradd --system --uid 10001 --no-create-home deletion \
    && chmod 0755 /usr/local/bin/entrypoint.sh
USER 10001

# entrypoint.sh turns every VAR_FILE (a Docker secret) into VAR, then runs the command.
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["deletion-monitor", "--help"]
