#!/usr/bin/env bash
# Renders the plain manifests in deploy/{controller,dashboard,dns,gateway} from the Helm chart
# deploy/helm/meridian, the one source of both: `kubectl apply -f deploy/<component>/` installs
# exactly what the chart installs with the values below. Never edit the rendered files; change the
# chart and run this script. CRDs are not rendered: deploy/crds is their source, and the chart reads
# it through the link files/crds.
#
#   scripts/render-manifests.sh                  (re)write the rendered files
#   scripts/render-manifests.sh --check          exit 1, naming the files, if any differs from the chart
#   scripts/render-manifests.sh --root DIR ...   compare with or write DIR/deploy instead of this repo's
#
# helm is the pinned one (scripts/versions.env), built by `scripts/build-binaries.sh helm`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="$repo/deploy/helm/meridian"
log() { printf '[render-manifests] %s\n' "$*" >&2; }

check=0 root="$repo"
while (($# > 0)); do
  case "$1" in
    --check) check=1 ;;
    --root) root="$2"; shift ;;
    *) log "unknown argument $1 (expected --check or --root DIR)"; exit 2 ;;
  esac
  shift
done

helm="$("$repo/scripts/build-binaries.sh" --print-helm-dir)/helm"
[[ -x "$helm" ]] || { log "no helm at $helm: build it once with 'scripts/build-binaries.sh helm'"; exit 1; }

# file (relative to deploy/) | helm arguments. Every file renders the Namespace too, so each applies
# on its own; the member's placeholders CLUSTER_ID and CLUSTERSET are replaced at install time
# (docs/install.md).
renders=(
  "controller/controller.yaml|--set role=hub --set crds.install=false --set dashboard.enabled=false --show-only templates/namespace.yaml --show-only templates/controller.yaml"
  "dashboard/dashboard.yaml|--set role=hub --set crds.install=false --show-only templates/namespace.yaml --show-only templates/dashboard.yaml"
  "dns/rbac.yaml|--set role=member --set crds.install=false --set gateway.enabled=false --show-only templates/namespace.yaml --show-only templates/dns-rbac.yaml"
  "dns/deployment.yaml|--set role=member --set crds.install=false --set gateway.enabled=false --show-only templates/dns.yaml"
  "gateway/gateway.yaml|--set role=member --set crds.install=false --set dns.enabled=false --set clusterID=CLUSTER_ID --set clusterset=CLUSTERSET --show-only templates/namespace.yaml --show-only templates/gateway.yaml"
)

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for entry in "${renders[@]}"; do
  file="${entry%%|*}"
  read -r -a args <<<"${entry#*|}"
  mkdir -p "$out/$(dirname "$file")"
  {
    printf '# Rendered from the Helm chart deploy/helm/meridian by scripts/render-manifests.sh: do not edit;\n'
    printf '# change the chart and re-run the script. Chart values: %s\n' "$(printf '%s ' "${args[@]}" | sed 's/--show-only [^ ]* //g; s/ *$//')"
    # helm logs that it follows the files/crds link; that is expected, the rest of stderr is not.
    # (cat -s: one blank line at most between objects.)
    "$helm" template meridian "$chart" --namespace meridian-system --set namespace.create=true "${args[@]}" \
      2> >(grep -v 'found symbolic link in path' >&2) | cat -s
  } >"$out/$file"
done

if ((check)); then
  stale=()
  for entry in "${renders[@]}"; do
    file="${entry%%|*}"
    cmp -s "$out/$file" "$root/deploy/$file" || stale+=("deploy/$file")
  done
  if ((${#stale[@]} > 0)); then
    log "out of date with the chart: ${stale[*]}"
    for f in "${stale[@]}"; do diff -u "$root/$f" "$out/${f#deploy/}" >&2 || true; done
    log "edit deploy/helm/meridian (not the rendered files), then run scripts/render-manifests.sh"
    exit 1
  fi
  log "ok: the plain manifests match the chart"
  exit 0
fi

for entry in "${renders[@]}"; do
  file="${entry%%|*}"
  mkdir -p "$root/deploy/$(dirname "$file")"
  cp "$out/$file" "$root/deploy/$file"
  log "wrote deploy/$file"
done
