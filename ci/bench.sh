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
STARTED_GROUPS=()

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

stop_group() { # $1: pid of a process-group leader we started
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${STARTED_GROUPS[@]}"; do stop_group "$pid"; done
    STARTED_GROUPS=()
    rm -rf "$WORK"
}
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
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

wait_port() { # $1 port, $2 pid: true once something accepts on the port
    local i
    for i in $(seq 1 200); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# Server sizes, the same for both servers.
sizes() { # $1 mpm -> "Directive value" lines
    if [ "$1" = prefork ]; then
        printf '%s\n' "ServerLimit 64" "StartServers 50" "MinSpareServers 50" \
            "MaxSpareServers 64" "MaxRequestWorkers 64"
    else
        printf '%s\n' "ServerLimit 2" "StartServers 2" "ThreadsPerChild 25" \
            "MaxRequestWorkers 50" "MinSpareThreads 25" "MaxSpareThreads 75"
    fi
    printf '%s\n' "KeepAlive On" "KeepAliveTimeout 5" "MaxKeepAliveRequests 0"
}

# wrk against a URL; prints "rps errors"
run_wrk() {
    local out rps errs
    out=$(wrk -t1 -c50 -d"$DURATION" "$1")
    echo "$out" >&2
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' <<<"$out")
    echo "${rps:-0} $errs"
}

start_refhttpd() { # $1 mpm; sets SERVER_PID and SERVER_URL
    local mpm=$1 sets=() line
    while read -r d v; do
        [ "$d" = KeepAliveTimeout ] && v=${v}s
        sets+=(--set "$d=$v")
    done < <(sizes "$mpm")
    setsid "$REFHTTPD" --mpm "$mpm" --listen 127.0.0.1:0 "${sets[@]}" \
        >"$WORK/refhttpd-$mpm.out" 2>"$WORK/refhttpd-$mpm.err" &
    SERVER_PID=$!
    STARTED_GROUPS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        line=$(head -n1 "$WORK/refhttpd-$mpm.out" 2>/dev/null || true)
        [ -n "$line" ] && break
        sleep 0.05
    done
    [[ $line == ready* ]] || { cat "$WORK/refhttpd-$mpm.err" >&2; echo "refhttpd did not start" >&2; exit 1; }
    SERVER_URL="http://$(awk '{print $2}' <<<"$line")/"
}

start_apache() { # $1 mpm; sets SERVER_PID and SERVER_URL
    local mpm=$1 dir=$WORK/apache-$1 port attempt
    mkdir -p "$dir/htdocs"
    chmod 755 "$dir" "$dir/htdocs"
    printf 'refhttpd: it works\n' >"$dir/htdocs/index.html" # the same 19 bytes as refhttpd's /
    chmod 644 "$dir/htdocs/index.html"
    for attempt in 1 2 3; do
        port=$(free_port)
        {
            echo "ServerRoot $dir"
            echo "LoadModule mpm_${mpm}_module $MODULES/mod_mpm_${mpm}.so"
            echo "LoadModule authz_core_module $MODULES/mod_authz_core.so"
            if [ -e /etc/mime.types ]; then
                echo "LoadModule mime_module $MODULES/mod_mime.so"
                echo "TypesConfig /etc/mime.types"
            fi
            if [ "$(id -u)" -eq 0 ]; then
                echo "User www-data"
                echo "Group www-data"
            fi
            echo "ServerName localhost"
            echo "Listen 127.0.0.1:$port"
            echo "PidFile $dir/httpd.pid"
            echo "ErrorLog $dir/error.log"
            echo "DefaultRuntimeDir $dir"
            echo "LogLevel warn"
            echo "DocumentRoot $dir/htdocs"
            echo "<Directory $dir/htdocs>"
            echo "  Require all granted"
            echo "</Directory>"
            sizes "$mpm"
        } >"$dir/httpd.conf"
        setsid "$APACHE" -f "$dir/httpd.conf" -DFOREGROUND >"$dir/stdout" 2>&1 &
        SERVER_PID=$!
        STARTED_GROUPS+=("$SERVER_PID")
        if wait_port "$port" "$SERVER_PID"; then
            SERVER_URL="http://127.0.0.1:$port/index.html"
            return 0
        fi
        stop_group "$SERVER_PID"
        cat "$dir/stdout" "$dir/error.log" >&2 2>/dev/null || true
    done
    echo "apache2 did not start" >&2
    exit 1
}

stop_server() {
    stop_group "$SERVER_PID"
    local kept=() pid
    for pid in "${STARTED_GROUPS[@]}"; do [ "$pid" != "$SERVER_PID" ] && kept+=("$pid"); done
    STARTED_GROUPS=("${kept[@]+"${kept[@]}"}")
}

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
