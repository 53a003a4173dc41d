#!/usr/bin/env bash
# Builds the upstream binaries Meridian's local clusterset runs (kube-apiserver,
# kube-controller-manager, kubectl, etcd) and the helm that renders and lints Meridian's chart, from
# the Go module proxy, into a cache outside the repo keyed by version. Idempotent: a binary that
# already reports the wanted version is not rebuilt.
#
#   scripts/build-binaries.sh                  build what is missing
#   scripts/build-binaries.sh helm             build only helm (or: kube, etcd; any combination)
#   scripts/build-binaries.sh --print-dir      print the directory the Kubernetes and etcd binaries live in
#   scripts/build-binaries.sh --print-helm-dir print the directory helm lives in
#
# Environment: MERIDIAN_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/meridian).
set -euo pipefail

# shellcheck source=versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
CACHE="${MERIDIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian}"
BIN_DIR="$CACHE/bin/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
HELM_DIR="$CACHE/bin/helm-${HELM_VERSION}"

if [[ "${1:-}" == "--print-dir" ]]; then echo "$BIN_DIR"; exit 0; fi
if [[ "${1:-}" == "--print-helm-dir" ]]; then echo "$HELM_DIR"; exit 0; fi
want_kube=1 want_etcd=1 want_helm=1
if (($# > 0)); then
  want_kube=0 want_etcd=0 want_helm=0
  for arg in "$@"; do
    case "$arg" in
      kube) want_kube=1 ;; etcd) want_etcd=1 ;; helm) want_helm=1 ;;
      *) printf '[build-binaries] unknown argument %q (expected kube, etcd, helm, --print-dir or --print-helm-dir)\n' "$arg" >&2; exit 2 ;;
    esac
  done
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[build-binaries] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed; Meridian needs Go >= 1.26 to build upstream Kubernetes and Helm"; exit 1; }
mkdir -p "$BIN_DIR" "$HELM_DIR"

# Output is captured before matching: with pipefail, `grep -q` closing the pipe early would make
# the binary die of SIGPIPE and the check fail.
has_version() { # binary, expected substring of its --version output
  local out
  [[ -x "$1" ]] && out=$("$1" --version 2>/dev/null) && [[ "$out" == *"$2"* ]]
}
has_kubectl_version() {
  local out
  [[ -x "$1" ]] && out=$("$1" version --client 2>/dev/null) && [[ "$out" == *"$2"* ]]
}

heartbeat() {
  local start=$SECONDS
  while sleep 30; do log "still compiling $1 ($((SECONDS - start))s)"; done
}

build_kube() {
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${KUBE_VERSION#v1.}"
  local work="$CACHE/build/kube-$KUBE_VERSION"
  mkdir -p "$work"
  log "building Kubernetes $KUBE_VERSION (kube-apiserver, kube-controller-manager, kubectl) in $work"
  log "a cold build downloads about 1 GB of modules and takes 10-20 minutes on 2 cores"
  (
    cd "$work"
    if [[ ! -f go.mod ]]; then
      local gomod
      gomod=$(cd / && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\([^"]*\)".*/\1/p')
      [[ -f "$gomod" ]] || { log "could not fetch k8s.io/kubernetes@$KUBE_VERSION from the Go module proxy"; exit 1; }
      local go_line godebug_line
      go_line=$(awk '$1 == "go" {print $2; exit}' "$gomod")
      godebug_line=$(awk '$1 == "godebug" {print; exit}' "$gomod")
      { echo "module meridian.local/kubebins"; echo; echo "go $go_line"; echo; [[ -n "$godebug_line" ]] && echo "$godebug_line"; } > go.mod
      cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
      # Upstream requires its staging modules at v0.0.0 and replaces them with local folders; a
      # consumer must replace each with the published version of the same release.
      awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | while read -r m; do
        go mod edit -replace="$m=$m@$staging"
      done
      go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
      log "resolving modules (go mod tidy)"
      go mod tidy
    fi
    local date ld p
    date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=$date"
    done
    log "compiling; this prints a line every 30 seconds until it is done"
    heartbeat "Kubernetes" &
    local beat=$!
    go build -trimpath -tags=selinux,notest -ldflags="$ld" -o "$BIN_DIR/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
    kill "$beat" 2>/dev/null || true
  )
}

build_etcd() {
  local work="$CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$work"
  log "building etcd $ETCD_VERSION in $work"
  (
    cd "$work"
    if [[ ! -f go.mod ]]; then
      printf 'module meridian.local/etcdbin\n\ngo 1.24.0\n' > go.mod
      printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
      go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
      go mod tidy
    fi
    go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3
  )
}

# helm version --template prints exactly the version given to the linker below.
has_helm_version() {
  local out
  [[ -x "$1" ]] && out=$("$1" version --template '{{.Version}}' 2>/dev/null) && [[ "$out" == "$2" ]]
}

# Only helm's command is compiled (not its test helpers or other tools): about 4 minutes cold on
# 2 cores (module downloads included), measured with empty Go module and build caches.
build_helm() {
  local major="${HELM_VERSION%%.*}"
  local work="$CACHE/build/helm-$HELM_VERSION"
  mkdir -p "$work"
  log "building helm $HELM_VERSION in $work"
  (
    cd "$work"
    # go.sum is written last, by a successful tidy: without it the set-up is (re)done.
    if [[ ! -f go.sum ]]; then
      local gomod go_line
      gomod=$(cd / && go mod download -json "helm.sh/helm/$major@$HELM_VERSION" | sed -n 's/.*"GoMod": "\([^"]*\)".*/\1/p')
      [[ -f "$gomod" ]] || { log "could not fetch helm.sh/helm/$major@$HELM_VERSION from the Go module proxy"; exit 1; }
      go_line=$(awk '$1 == "go" {print $2; exit}' "$gomod")
      printf 'module meridian.local/helmbin\n\ngo %s\n' "$go_line" > go.mod
      printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/%s/cmd/helm"\n' "$major" > tools.go
      go mod edit -require="helm.sh/helm/$major@$HELM_VERSION"
      log "resolving modules (go mod tidy)"
      go mod tidy
    fi
    heartbeat "helm" &
    local beat=$!
    trap 'kill $beat 2>/dev/null || true' EXIT
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION -X helm.sh/helm/$major/internal/version.gitTreeState=clean" \
      -o "$HELM_DIR/helm" "helm.sh/helm/$major/cmd/helm"
  )
}

if ((!want_kube)); then
  :
elif has_version "$BIN_DIR/kube-apiserver" "$KUBE_VERSION" && has_version "$BIN_DIR/kube-controller-manager" "$KUBE_VERSION" \
  && has_kubectl_version "$BIN_DIR/kubectl" "$KUBE_VERSION"; then
  log "Kubernetes $KUBE_VERSION binaries are cached in $BIN_DIR"
else
  build_kube
fi
if ((!want_etcd)); then
  :
elif has_version "$BIN_DIR/etcd" "etcd Version: ${ETCD_VERSION#v}"; then
  log "etcd $ETCD_VERSION is cached in $BIN_DIR"
else
  build_etcd
fi
if ((!want_helm)); then
  :
elif has_helm_version "$HELM_DIR/helm" "$HELM_VERSION"; then
  log "helm $HELM_VERSION is cached in $HELM_DIR"
else
  build_helm
fi

# Verify every binary reports the pinned version; a mismatch means a broken cache.
if ((want_kube)); then
  for b in kube-apiserver kube-controller-manager; do
    has_version "$BIN_DIR/$b" "$KUBE_VERSION" || { log "$b does not report $KUBE_VERSION"; exit 1; }
  done
  has_kubectl_version "$BIN_DIR/kubectl" "$KUBE_VERSION" || { log "kubectl does not report $KUBE_VERSION"; exit 1; }
fi
if ((want_etcd)); then
  has_version "$BIN_DIR/etcd" "etcd Version: ${ETCD_VERSION#v}" || { log "etcd does not report $ETCD_VERSION"; exit 1; }
fi
if ((want_helm)); then
  has_helm_version "$HELM_DIR/helm" "$HELM_VERSION" || { log "helm does not report $HELM_VERSION"; exit 1; }
fi
((want_kube || want_etcd)) && log "ok: $BIN_DIR"
((want_helm)) && log "ok: $HELM_DIR/helm"
exit 0
