#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: install, lint, unit tests, then integration tests
# against real local control planes (one shared clusterset, torn down at the end even on failure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install.sh

echo "== lint"
npx tsc -p tsconfig.json --noEmit
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }

echo "== unit tests"
node --import tsx --test --test-reporter=spec $(find src bench -name '*.test.ts' | sort)

echo "== integration tests"
node --import tsx test/run-integration.ts
