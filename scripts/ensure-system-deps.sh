#!/usr/bin/env bash
# Install the Debian packages the project runs for real, only when one of their binaries is missing.
set -euo pipefail

missing=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[[ -n "$pg_bin" && -x "$pg_bin/initdb" && -x "$pg_bin/pg_ctl" ]] || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
# pg_partman, for the partitioned audit table's partman path (docs/partitioning.md)
pg_major=$(basename "$(dirname "${pg_bin:-/x/15/bin}")")
[[ -f /usr/share/postgresql/$pg_major/extension/pg_partman.control ]] \
  || missing+=("postgresql-$pg_major-partman")
command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
  || missing+=(prometheus-alertmanager)
command -v jsonnetfmt >/dev/null || missing+=(jsonnet)
# the demo's and the end-to-end tests' probe of the endpoint with a bogus token
command -v prometheus-blackbox-exporter >/dev/null || missing+=(prometheus-blackbox-exporter)
# headless rendering of the HTML reports (tests/integration/test_report_chromium.py)
command -v chromium >/dev/null || missing+=(chromium)
# the HA topology's long-term store and second rule engine (docs/scaling.md)
command -v victoria-metrics >/dev/null && command -v vmalert >/dev/null || missing+=(victoria-metrics)

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's packages enable services; the project starts its own processes on 127.0.0.1 instead.
for svc in postgresql prometheus prometheus-alertmanager prometheus-node-exporter \
  prometheus-blackbox-exporter victoria-metrics; do
  if command -v systemctl >/dev/null; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done
