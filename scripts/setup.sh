#!/usr/bin/env bash
# One command from a fresh machine to a running local clusterset: installs everything, then
# `meridian up`. Arguments are passed to `meridian up` (e.g. --members 5, --state-dir DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install.sh
# `meridian` on the PATH (a link to this checkout's bin/meridian.js), as the README uses it; pods
# started with `meridian run` find it there too.
npm link --silent --no-audit --no-fund >/dev/null 2>&1 || echo "[setup] could not link 'meridian' into the PATH; use bin/meridian.js" >&2
exec node bin/meridian.js up "$@"
