#!/usr/bin/env bash
# Flake hunt (not part of `cargo test`): the catalogue repeated while another process keeps a
# core busy, on each target; every run must pass.
#
#   ci/stress.sh                     # reference --repeat 30, apache --repeat 10
#   STRESS_REFERENCE=5 STRESS_APACHE=0 ci/stress.sh
#   STRESS_FILTER=shared ci/stress.sh   # only the tests whose name contains it
#
# Prints each target's counts and wall time; exits 1 if any run failed or was an error.
set -euo pipefail
cd "$(dirname "$0")/.."

REFERENCE=${STRESS_REFERENCE:-30}
APACHE=${STRESS_APACHE:-10}
FILTER=${STRESS_FILTER:-}
OUT=$(mktemp -d /tmp/mpm-harness-stress.XXXXXX)

cargo build --release -q -p mpm-harness
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# One core busy for the whole run; stopped on any exit.
bash -c 'while :; do :; done' &
SPINNER=$!
trap 'kill "$SPINNER" 2>/dev/null || true' EXIT

status=0
run() { # $1: target, $2: repeat
    local target=$1 repeat=$2 start end rc=0
    [ "$repeat" -gt 0 ] || return 0
    if [ "$target" = apache ] && ! ci/install-apache.sh >/dev/null 2>&1; then
        echo "== apache: not available, skipped"
        return 0
    fi
    start=$(date +%s)
    timeout 5400 target/release/mpm-harness run ${FILTER:+"$FILTER"} --target "$target" --repeat "$repeat" \
        --junit "$OUT/$target.xml" >"$OUT/$target.log" 2>&1 || rc=$?
    end=$(date +%s)
    echo "== $target --repeat $repeat ($(( end - start )) s, exit $rc):"
    grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ errors' "$OUT/$target.log" || tail -5 "$OUT/$target.log"
    grep -E '^\[ *[0-9]+/[0-9]+\] (FAIL|ERROR)' "$OUT/$target.log" || true
    [ "$rc" -eq 0 ] || status=1
}

run reference "$REFERENCE"
run apache "$APACHE"
echo "logs and JUnit reports: $OUT"
exit "$status"
