#!/usr/bin/env bash
# TLS figures (not part of `cargo test`), all in one run on this machine, side by side:
#   1. refhttpd event over TLS vs nginx over TLS, the same certificate and a body of the same
#      size (refhttpd's `GET /`, "refhttpd: it works\n", 19 bytes; nginx a static file of it):
#        a. keep-alive requests/s, `wrk -t1 -c50 -d10s https://…/`           (goal >= 0.8x nginx)
#        b. new TLS handshakes/s, the load driver with a connection per request,
#           `mpm-harness load https://… --keepalive off -c 50 -d 10s --cacert …`
#                                                                              (goal >= 0.8x nginx)
#   2. the load driver over TLS vs wrk over TLS, both keep-alive against that nginx,
#      `mpm-harness load https://… -c 50 -d 10s` vs `wrk -t1 -c50 -d10s`      (goal >= 0.9x wrk)
#
# Servers, sized for a 2-core machine and fixed: refhttpd --mpm event with ServerLimit 2,
# StartServers 2, ThreadsPerChild 50 (MaxRequestWorkers 100), KeepAliveTimeout 5 s,
# MaxKeepAliveRequests 0; nginx (Debian's) with worker_processes 2, ssl_protocols TLSv1.2
# TLSv1.3, keep-alive on, access log off, in the foreground (daemon off) as the current user,
# every path (-p prefix, pid, logs, temp) in the run's temp dir. The certificate: EC P-256,
# self-signed, for IP:127.0.0.1 and DNS:localhost (openssl). Ports are picked free at run time.
# Clients and servers share the machine: on 2 cores the driver's own side of each handshake
# (one thread, rustls on ring, X25519 and two P-256 verifications) takes most of a core, so 1b
# is the servers' rate under the same client, not either server's ceiling.
# Installs nginx and wrk (apt-get) when missing, without starting Debian's nginx service.
# Leaves no server and no file behind.
#
# Run from anywhere in a checkout:   ci/tls-figures.sh
# Environment: TLS_FIGURES_SECONDS (default 10): the length of each measurement, in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_EACH=${TLS_FIGURES_SECONDS:-10}
DURATION=${SECONDS_EACH}s
# A measurement gets its duration and this much more before `timeout` ends it.
SLACK=60
WORK=$(mktemp -d /tmp/tls-figures.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=ci/servers.sh
. ci/servers.sh
MEASURING= # the measurement under way (its timeout's pid): ended with the script, as the servers
trap '[ -n "$MEASURING" ] && kill "$MEASURING" 2>/dev/null; cleanup' EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------------------------
install_missing() { # Debian packages whose command of the same name is missing
    local missing=() p policy= ok=true
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then # no service started by the install
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get)
    as_root "${apt[@]}" install -y "${missing[@]}" ||
        { as_root "${apt[@]}" update && as_root "${apt[@]}" install -y "${missing[@]}"; } ||
        ok=false
    [ -n "$policy" ] && as_root rm -f "$policy"
    $ok
}
install_missing nginx wrk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v openssl >/dev/null || { echo "openssl is needed for the certificate" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

echo "== building"
timeout 3600 cargo build --release -p mpm-harness -p refhttpd
HARNESS=$ROOT/target/release/mpm-harness
REFHTTPD=$ROOT/target/release/refhttpd

# --- the certificate -------------------------------------------------------------------------
CERT=$WORK/server.crt
KEY=$WORK/server.key
cat >"$WORK/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = localhost
[ext]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
EOF
timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$KEY" -out "$CERT" -days 2 -config "$WORK/openssl.cnf" 2>/dev/null
chmod 644 "$CERT" "$KEY"

# --- servers ---------------------------------------------------------------------------------
nginx_config() { # $1 port
    local dir=$WORK/nginx user=
    [ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 2;
worker_rlimit_nofile 40000;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$1 ssl backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $dir/htdocs;
    }
}
EOF
}

start_nginx() { # sets SERVER_PID and SERVER_URL (https)
    local dir=$WORK/nginx
    mkdir -p "$dir/htdocs" "$dir/tmp"
    printf 'refhttpd: it works\n' >"$dir/htdocs/index.html" # 19 bytes, as refhttpd's /
    chmod -R a+rX "$dir"
    start_on_free_port nginx nginx_config / "$dir" \
        "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    SERVER_URL=https://${SERVER_URL#http://}
}

start_refhttpd_tls() { # sets SERVER_PID and SERVER_URL (https)
    local out=$WORK/refhttpd.out line= d
    local sets=(ServerLimit=2 StartServers=2 ThreadsPerChild=50 MaxRequestWorkers=100
        MinSpareThreads=50 MaxSpareThreads=100 KeepAlive=On KeepAliveTimeout=5s
        MaxKeepAliveRequests=0 ListenBacklog=4096
        SSLEngine=on "SSLCertificateFile=$CERT" "SSLCertificateKeyFile=$KEY")
    local args=()
    for d in "${sets[@]}"; do args+=(--set "$d"); done
    setsid "$REFHTTPD" --mpm event --listen 127.0.0.1:0 "${args[@]}" \
        >"$out" 2>"$WORK/refhttpd.err" &
    SERVER_PID=$!
    STARTED_GROUPS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        line=$(head -n1 "$out" 2>/dev/null || true)
        [ -n "$line" ] && break
        sleep 0.05
    done
    [[ $line == ready* ]] || { cat "$WORK/refhttpd.err" >&2; echo "refhttpd did not start" >&2; exit 1; }
    SERVER_URL="https://$(awk '{print $2}' <<<"$line")/"
}

# --- measurements ----------------------------------------------------------------------------
measure() { # runs "$@" under timeout in the background, its output in $OUT; shows it
    OUT=$WORK/measure.out
    timeout $((SECONDS_EACH + SLACK)) "$@" >"$OUT" 2>/dev/null &
    MEASURING=$!
    wait "$MEASURING" || true
    MEASURING=
    cat "$OUT"
}

# wrk, keep-alive: sets RPS and ERRORS (socket errors and non-2xx).
wrk_rps() { # $1 url
    measure wrk -t1 -c50 -d"$DURATION" "$1"
    RPS=$(awk '/^Requests\/sec:/ {print $2}' "$OUT")
    ERRORS=$(awk '/Socket errors:/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' "$OUT")
    RPS=${RPS:-0}
}

# The load driver over TLS, closed model, 50 connections, trusting the certificate: sets RPS,
# HPS (handshakes/s) and FAILED. $1 url, then more options (--keepalive off).
driver() {
    local url=$1
    shift
    measure "$HARNESS" load "$url" --cacert "$CERT" --connections 50 --duration "$DURATION" "$@"
    RPS=$(awk '/requests\/s:/ {print $2}' "$OUT")
    HPS=$(sed -n 's/.*TLS handshakes: [0-9]* completed, \([0-9.]*\)\/s.*/\1/p' "$OUT")
    FAILED=$(sed -n 's/.* \([0-9]*\) failed (.*/\1/p' "$OUT" | head -n1)
    RPS=${RPS:-0} HPS=${HPS:-0} FAILED=${FAILED:-?}
}

echo "== nginx ($("$NGINX" -v 2>&1 | sed 's/^nginx version: //')) over TLS"
start_nginx
sleep 1
echo "== wrk -t1 -c50 -d$DURATION $SERVER_URL (nginx, keep-alive)"
wrk_rps "$SERVER_URL"
NGINX_RPS=$RPS NGINX_ERR=$ERRORS
echo "== mpm-harness load $SERVER_URL -c 50 -d $DURATION (nginx, keep-alive)"
driver "$SERVER_URL"
DRV_RPS=$RPS DRV_FAILED=$FAILED
echo "== mpm-harness load $SERVER_URL --keepalive off -c 50 -d $DURATION (nginx, handshakes)"
driver "$SERVER_URL" --keepalive off
NGINX_HPS=$HPS NGINX_HS_FAILED=$FAILED
stop_server

echo "== refhttpd --mpm event over TLS"
start_refhttpd_tls
sleep 1
echo "== wrk -t1 -c50 -d$DURATION $SERVER_URL (refhttpd event, keep-alive)"
wrk_rps "$SERVER_URL"
REF_RPS=$RPS REF_ERR=$ERRORS
echo "== mpm-harness load $SERVER_URL --keepalive off -c 50 -d $DURATION (refhttpd event, handshakes)"
driver "$SERVER_URL" --keepalive off
REF_HPS=$HPS REF_HS_FAILED=$FAILED
stop_server

verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r >= g) ? "met" : "MISS" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
row() { # $1 what, $2 a, $3 a's failures, $4 b, $5 b's failures, $6 goal
    local r
    r=$(ratio "$2" "$4")
    printf '%-40s %10.0f %6s %10.0f %6s %6sx  >= %-4s %s\n' "$1" "$2" "$3" "$4" "$5" "$r" "$6" \
        "$(verdict "$r" "$6")"
}

echo
echo "=============================== TLS figures, $DURATION each ==============================="
printf '%-40s %10s %6s %10s %6s %7s  %-7s %s\n' "" refhttpd fail nginx fail ratio goal ""
row "1a. keep-alive requests/s (wrk -t1 -c50)" "$REF_RPS" "$REF_ERR" "$NGINX_RPS" "$NGINX_ERR" 0.8
row "1b. new TLS handshakes/s (driver, -c 50)" "$REF_HPS" "$REF_HS_FAILED" "$NGINX_HPS" "$NGINX_HS_FAILED" 0.8
printf '%-40s %10s %6s %10s %6s\n' "" driver fail wrk fail
row "2.  keep-alive requests/s against nginx" "$DRV_RPS" "$DRV_FAILED" "$NGINX_RPS" "$NGINX_ERR" 0.9
echo "refhttpd event: 2 x 50 threads; nginx: 2 workers; both TLSv1.2/1.3, one EC P-256 certificate;"
echo "fail: requests without a response (driver), socket errors and non-2xx (wrk)."
