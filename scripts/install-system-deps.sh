#!/usr/bin/env bash
# Installs the Debian packages backout's tests and demo run for real: Prometheus and
# Alertmanager (with promtool and amtool), and PostgreSQL (initdb/pg_ctl under
# /usr/lib/postgresql/<version>/bin) for Temporal on PostgreSQL (`backout temporal up`). etcd,
# the Kubernetes binaries, helm and the Temporal server are built from Go modules by
# `backout cluster build --with helm,temporal` (Debian's etcd 3.4 is too old). Package scripts
# may start system services; backout never uses those, it starts its own on its own ports.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# Argo CD's controller and repo-server keep their caches in Redis (the GitOps tests run them).
command -v redis-server >/dev/null || need+=(redis-server)
# Headless Chromium screenshots the incident report in a test (tests/report); DejaVu gives it a font.
command -v chromium >/dev/null || need+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "backout needs these Debian packages: ${need[*]} (run as root or install them: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Stop any system instances the package scripts started; they would hold the default ports.
for svc in prometheus prometheus-alertmanager postgresql redis-server; do
  (command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1) || true
done
