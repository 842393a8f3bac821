#!/usr/bin/env bash
# refhttpd's figures (not part of `cargo test`):
#   1. crash -> replacement child accepting, per MPM          (goal <= 20 ms)
#   2. event MPM: PSS per idle keep-alive connection, 10,000   (goal <= 2 KB)
#      (1 and 2: `cargo bench -p mpm-harness --bench figures`, harness/benches/figures.rs)
#   3. keep-alive throughput, `wrk -t1 -c50 -d10s`, refhttpd vs Apache httpd 2.4 with the same
#      MPM and the same sizes, in this run                    (goal: refhttpd >= 1.5x Apache)
#
# Installs apache2 and wrk (apt-get) when missing. Leaves no refhttpd or apache2 process behind.
# Environment: BENCH_DURATION (wrk -d, default 10s), BENCH_MPMS (default "prefork worker event"),
# FIGURES_CRASHES / FIGURES_CONNS (passed to the bench).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10s}
MPMS=${BENCH_MPMS:-prefork worker event}
WORK=$(mktemp -d /tmp/refhttpd-bench.XXXXXX)
chmod 755 "$WORK" # Apache's children (www-data when we are root) read the DocumentRoot
# shellcheck source=ci/servers.sh
. ci/servers.sh
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------------------------
ci/install-apache.sh wrk
APACHE=$(command -v apache2)
MODULES=/usr/lib/apache2/modules

# 10,000 client sockets in the bench process; the server raises its own limit.
ulimit -n "$(ulimit -Hn)"

# --- figures 1 and 2 -------------------------------------------------------------------------
echo "== building"
cargo build --release -p refhttpd
REFHTTPD=$ROOT/target/release/refhttpd

echo "== figures 1 and 2 (cargo bench -p mpm-harness --bench figures)"
FIGURES_SUMMARY=$WORK/figures.txt cargo bench -p mpm-harness --bench figures

# --- figure 3: wrk, refhttpd vs Apache -------------------------------------------------------
declare -A REF_RPS REF_ERR AP_RPS AP_ERR
for mpm in $MPMS; do
    echo "== wrk -t1 -c50 -d$DURATION: refhttpd --mpm $mpm"
    start_refhttpd "$mpm"
    sleep 1 # let every child of the pool come up
    read -r REF_RPS[$mpm] REF_ERR[$mpm] < <(run_wrk "$SERVER_URL")
    stop_server

    echo "== wrk -t1 -c50 -d$DURATION: apache2 mpm_$mpm ($("$APACHE" -v | head -n1))"
    start_apache "$mpm"
    sleep 1
    read -r AP_RPS[$mpm] AP_ERR[$mpm] < <(run_wrk "$SERVER_URL")
    stop_server
done

echo
echo "================================ summary ================================"
cat "$WORK/figures.txt"
echo
echo "Figure 3: keep-alive throughput, wrk -t1 -c50 -d$DURATION (goal: refhttpd >= 1.5x Apache)"
printf '%-8s %14s %8s %14s %8s %7s %5s\n' mpm "refhttpd rps" errors "apache2 rps" errors ratio goal
for mpm in $MPMS; do
    awk -v m="$mpm" -v r="${REF_RPS[$mpm]}" -v re="${REF_ERR[$mpm]}" \
        -v a="${AP_RPS[$mpm]}" -v ae="${AP_ERR[$mpm]}" 'BEGIN {
        ratio = (a > 0) ? r / a : 0
        printf "%-8s %14.0f %8d %14.0f %8d %6.2fx %5s\n", m, r, re, a, ae, ratio, (ratio >= 1.5) ? "met" : "MISS"
    }'
done
echo "  sizes: prefork ServerLimit/MaxRequestWorkers 64, StartServers/MinSpareServers 50;"
echo "         worker/event ServerLimit 2, StartServers 2, ThreadsPerChild 25, MaxRequestWorkers 50;"
echo "         KeepAlive On, KeepAliveTimeout 5 s, MaxKeepAliveRequests 0 (unlimited); no access log."
echo "  refhttpd GET /, apache2 GET /index.html: both a 19-byte body."
