#!/usr/bin/env bash
# Takes the upstream MCS CRDs (ServiceExport, ServiceImport) from the sigs.k8s.io/mcs-api Go module
# at the pinned version, through the Go module proxy, into the cache outside the repo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
CACHE="${MERIDIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian}"
OUT="$CACHE/crds/mcs-api-$MCS_API_VERSION"
files=(multicluster.x-k8s.io_serviceexports.yaml multicluster.x-k8s.io_serviceimports.yaml)
if [[ -f "$OUT/${files[0]}" && -f "$OUT/${files[1]}" ]]; then
  echo "[fetch-crds] mcs-api $MCS_API_VERSION CRDs are cached in $OUT" >&2; exit 0
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
dir=$(cd / && go mod download -json "sigs.k8s.io/mcs-api@$MCS_API_VERSION" | sed -n 's/.*"Dir": "\([^"]*\)".*/\1/p')
[[ -d "$dir/config/crd" ]] || { echo "[fetch-crds] sigs.k8s.io/mcs-api@$MCS_API_VERSION has no config/crd" >&2; exit 1; }
tmp="$OUT.tmp.$$"; rm -rf "$tmp"; mkdir -p "$tmp"
for f in "${files[@]}"; do
  install -m 0644 "$dir/config/crd/$f" "$tmp/$f"
  grep -Eq "release-version: \"?$MCS_API_VERSION\"?" "$tmp/$f" || { echo "[fetch-crds] $f is not labelled release $MCS_API_VERSION" >&2; rm -rf "$tmp"; exit 1; }
done
rm -rf "$OUT"; mkdir -p "$(dirname "$OUT")"; mv "$tmp" "$OUT"
echo "[fetch-crds] ok: $OUT" >&2
