#!/usr/bin/env bash
# Renders the HTML report of `crash/segv-isolation` under each MPM in a real headless browser
# (Debian's chromium) to PNG, so that a person can look at it; not part of `cargo test` (the
# browser is a large install). Installs chromium (apt-get) when missing.
#
#   ci/render-report.sh                 # PNGs into docs/
#   RENDER_OUT=/tmp/pngs RENDER_TARGET=apache RENDER_CASE=load/crash-under-load ci/render-report.sh
#
# Leaves no browser or server behind: each step has a timeout and its own temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${RENDER_OUT:-docs}
TARGET=${RENDER_TARGET:-reference}
CASE=${RENDER_CASE:-crash/segv-isolation}
WORK=$(mktemp -d /tmp/render-report.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

command -v chromium >/dev/null 2>&1 || ci/install-apache.sh chromium
cargo build --release -q -p mpm-harness
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$OUT"

name=${CASE//\//-}
for mpm in prefork worker event; do
    html=$WORK/$name-$mpm.html
    png=$OUT/$name-$mpm.png
    timeout 120 target/release/mpm-harness repro "$CASE" --mpm "$mpm" --target "$TARGET" \
        --html "$html" >/dev/null || true # a failing run is drawn too
    [ -s "$html" ] || { echo "no report for $CASE under $mpm" >&2; exit 1; }
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$WORK/profile" --window-size=1200,1700 \
        --screenshot="$png" "file://$html" >/dev/null 2>&1
    [ -s "$png" ] || { echo "chromium wrote no $png" >&2; exit 1; }
    echo "$png"
done
