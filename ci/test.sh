#!/usr/bin/env bash
# The project's test command, as README.md gives it. CI runs it through .ci/run on a fresh
# machine, so everything the tests need is installed here: Apache httpd 2.4 for the `apache`
# target (without it those tests are listed as ignored, with the reason).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ci/install-apache.sh; then
    echo "warning: could not install apache2; the apache column will be reported as ignored" >&2
fi

# Tests open thousands of sockets (event MPM holding idle keep-alive connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo test --workspace
