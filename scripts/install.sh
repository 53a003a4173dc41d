#!/usr/bin/env bash
# Installs everything Meridian needs on a fresh Debian machine: system packages, npm dependencies,
# upstream Kubernetes and etcd binaries (built from the Go module proxy, cached outside the repo),
# and the upstream MCS CRDs. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[install] %s\n' "$*" >&2; }

# Debian packages: ip (network namespaces), openssl (certificates), dig (DNS checks), curl, and
# Chromium for the dashboard's browser tests (driven by playwright-core, which downloads nothing).
declare -A need=([ip]=iproute2 [openssl]=openssl [dig]=bind9-dnsutils [curl]=curl [chromium]=chromium)
missing=()
for cmd in "${!need[@]}"; do command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}"); done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then log "missing packages: ${missing[*]}; run as root (or apt-get install them)"; exit 1; fi
  log "installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v node >/dev/null || { log "Node.js 20 is required"; exit 1; }
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

npm run --silent build
scripts/build-binaries.sh
scripts/fetch-crds.sh
