#!/usr/bin/env bash
# One command from a fresh machine to a running local clusterset: installs everything, then
# `meridian up`. Arguments are passed to `meridian up` (e.g. --members 5, --state-dir DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install.sh
exec node bin/meridian.js up "$@"
