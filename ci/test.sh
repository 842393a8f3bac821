#!/usr/bin/env bash
# The project's test command, as README.md gives it. CI runs it through .ci/run on a fresh
# machine, so everything the tests need is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests open thousands of sockets (event MPM holding idle keep-alive connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo test --workspace
