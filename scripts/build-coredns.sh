#!/usr/bin/env bash
# Builds CoreDNS (the peer Meridian's DNS is compared against) from the Go module proxy, with only
# the plugins the comparison needs (kubernetes with its multicluster option, bind, errors, ready,
# log), into a cache outside the repo keyed by version. A main that imports just these plugins
# compiles far less than `go install github.com/coredns/coredns`, which pulls in every plugin and
# its cloud SDKs. Idempotent: a cached binary that reports the wanted version is not rebuilt.
#
#   scripts/build-coredns.sh              build if missing, print the binary's path on stdout
#   scripts/build-coredns.sh --print-path print the binary's path without building
#
# Environment: MERIDIAN_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/meridian),
# COREDNS_VERSION (default v1.14.7, the release the peer comparison was written against).
set -euo pipefail

VERSION="${COREDNS_VERSION:-v1.14.7}"
CACHE="${MERIDIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian}"
BIN="$CACHE/bin/coredns-$VERSION/coredns"
log() { printf '[build-coredns] %s\n' "$*" >&2; }

if [[ "${1:-}" == "--print-path" ]]; then echo "$BIN"; exit 0; fi

has_version() {
  local out
  [[ -x "$BIN" ]] && out=$("$BIN" -version 2>/dev/null) && [[ "$out" == *"CoreDNS-${VERSION#v}"* ]]
}

if has_version; then
  log "CoreDNS $VERSION is cached at $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed; building CoreDNS needs Go >= 1.25"; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
work="$CACHE/build/coredns-$VERSION"
mkdir -p "$work" "$(dirname "$BIN")"
log "building CoreDNS $VERSION (kubernetes+multicluster, bind, errors, ready, log) in $work"
(
  cd "$work"
  if [[ ! -f go.mod ]]; then
    printf 'module meridian.local/corednsbin\n\ngo 1.25.0\n' > go.mod
    # coremain registers the server type; each blank import registers one plugin's directive.
    # Directives the Corefile uses but that are not compiled in fail at start-up with
    # "no action found for directive", so a missing plugin is noticed immediately.
    cat > main.go <<'GO'
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
GO
    go mod edit -require="github.com/coredns/coredns@$VERSION"
    log "resolving modules (go mod tidy)"
    go mod tidy
  fi
  start=$SECONDS
  (while sleep 30; do log "still compiling ($((SECONDS - start))s)"; done) &
  beat=$!
  trap 'kill $beat 2>/dev/null || true' EXIT
  go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$VERSION" -o "$BIN" .
)
has_version || { log "built $BIN but it does not report CoreDNS ${VERSION#v}"; exit 1; }
log "ok: $BIN"
echo "$BIN"
