#!/usr/bin/env bash
# The load driver's figures (issue 10; not part of `cargo test`), all in one run on this machine:
#   A. the driver's closed-model keep-alive throughput against nginx vs `wrk -t1 -c50`
#                                                               (goal: driver >= 0.9x wrk)
#   B. driver memory per open keep-alive connection, 10,000 of them against nginx
#                                                               (goal: <= 2 KB each)
#   C. refhttpd event keep-alive throughput vs that nginx, `wrk -t1 -c50`, tiny response
#                                                               (goal: >= 0.8x nginx)
#   D. every refhttpd MPM vs Apache httpd 2.4 of the same MPM serving a static file, `wrk -t1
#      -c50`                                                    (goal: >= 3x Apache)
#
# nginx: Debian's nginx-light, 2 workers, a static file, access log off. Installs nginx-light,
# wrk and apache2 (apt-get) when missing. Leaves no server behind.
# Environment: LOAD_DURATION (default 10s), LOAD_MPMS (default "prefork worker event").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${LOAD_DURATION:-10s}
MPMS=${LOAD_MPMS:-prefork worker event}
WORK=$(mktemp -d /tmp/load-figures.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=ci/servers.sh
. ci/servers.sh
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------------------------
ci/install-apache.sh wrk
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || ci/install-apache.sh nginx-light
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
APACHE=$(command -v apache2 || echo /usr/sbin/apache2)
MODULES=/usr/lib/apache2/modules
ulimit -n "$(ulimit -Hn)"

echo "== building"
cargo build --release -p mpm-harness -p refhttpd
HARNESS=$ROOT/target/release/mpm-harness
REFHTTPD=$ROOT/target/release/refhttpd

nginx_config() { # $1 port
    local dir=$WORK/nginx
    cat >"$dir/nginx.conf" <<EOF
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
    client_body_temp_path $dir/tmp;
    server {
        listen 127.0.0.1:$1 backlog=4096;
        root $dir/htdocs;
    }
}
EOF
}

start_nginx() { # sets SERVER_PID and SERVER_URL
    local dir=$WORK/nginx
    mkdir -p "$dir/htdocs"
    printf 'refhttpd: it works\n' >"$dir/htdocs/index.html" # 19 bytes, as refhttpd's /
    chmod -R a+rX "$dir"
    start_on_free_port nginx nginx_config /index.html "$dir" "$NGINX" -p "$dir" -c "$dir/nginx.conf"
}

# The driver, closed model, against a URL; prints "rps failed".
run_driver() {
    local out rps failed
    out=$("$HARNESS" load "$1" --connections 50 --duration "$DURATION" 2>/dev/null)
    echo "$out" >&2
    rps=$(awk '/requests\/s:/ {print $2}' <<<"$out")
    failed=$(sed -n 's/.* \([0-9]*\) failed (.*/\1/p' <<<"$out" | head -n1)
    echo "${rps:-0} ${failed:-0}"
}

# The driver's peak RSS (KiB) holding N keep-alive connections open (open model, one request
# per connection every ten seconds: mostly idle), and how many of its requests failed.
driver_rss() { # $1 url, $2 connections, $3 rate
    local out
    out=$("$HARNESS" load "$1" --connections "$2" --rate "$3" --duration 5s 2>/dev/null)
    echo "$out" >&2
    echo "$(awk '/driver peak RSS:/ {print $4}' <<<"$out") $(sed -n 's/.* \([0-9]*\) failed (.*/\1/p' <<<"$out" | head -n1)"
}

echo "== nginx ($("$NGINX" -v 2>&1))"
start_nginx
NGINX_URL=$SERVER_URL
sleep 1
echo "== A: wrk -t1 -c50 -d$DURATION against nginx"
read -r WRK_NGINX WRK_NGINX_ERR < <(run_wrk "$NGINX_URL")
echo "== A: mpm-harness load --connections 50 --duration $DURATION against nginx"
read -r DRV_NGINX DRV_NGINX_ERR < <(run_driver "$NGINX_URL")
echo "== B: the driver holding 1, then 10,000 keep-alive connections"
read -r RSS_ONE _ < <(driver_rss "$NGINX_URL" 1 1)
read -r RSS_MANY RSS_MANY_ERR < <(driver_rss "$NGINX_URL" 10000 1000)
stop_server

declare -A REF_RPS REF_ERR AP_RPS AP_ERR
for mpm in $MPMS; do
    echo "== wrk -t1 -c50 -d$DURATION: refhttpd --mpm $mpm"
    start_refhttpd "$mpm"
    sleep 1
    read -r REF_RPS[$mpm] REF_ERR[$mpm] < <(run_wrk "$SERVER_URL")
    stop_server
    echo "== wrk -t1 -c50 -d$DURATION: apache2 mpm_$mpm ($("$APACHE" -v | head -n1)), a static file"
    start_apache "$mpm"
    sleep 1
    read -r AP_RPS[$mpm] AP_ERR[$mpm] < <(run_wrk "$SERVER_URL")
    stop_server
done

verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r >= g) ? "met" : "MISS" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

echo
echo "================================ summary ================================"
R=$(ratio "$DRV_NGINX" "$WRK_NGINX")
echo "A. closed-model keep-alive throughput against nginx, 50 connections, $DURATION (goal >= 0.9x wrk)"
printf '   mpm-harness load: %.0f requests/s (%s failed); wrk -t1 -c50: %.0f requests/s (%s errors): %sx %s\n' \
    "$DRV_NGINX" "$DRV_NGINX_ERR" "$WRK_NGINX" "$WRK_NGINX_ERR" "$R" "$(verdict "$R" 0.9)"
PER=$(awk -v a="$RSS_MANY" -v b="$RSS_ONE" 'BEGIN { printf "%.0f", (a - b) * 1024 / 10000 }')
echo "B. driver memory per open keep-alive connection, 10,000 of them (goal <= 2048 bytes)"
printf '   peak RSS %s KiB with 10,000 (%s failed) vs %s KiB with 1: %s bytes each %s\n' \
    "$RSS_MANY" "$RSS_MANY_ERR" "$RSS_ONE" "$PER" \
    "$(awk -v p="$PER" 'BEGIN { print (p <= 2048) ? "met" : "MISS" }')"
if [[ " $MPMS " == *" event "* ]]; then
    R=$(ratio "${REF_RPS[event]}" "$WRK_NGINX")
    echo "C. refhttpd event vs nginx, wrk -t1 -c50 -d$DURATION, a 19-byte body (goal >= 0.8x)"
    printf '   refhttpd event %.0f requests/s, nginx %.0f: %sx %s\n' \
        "${REF_RPS[event]}" "$WRK_NGINX" "$R" "$(verdict "$R" 0.8)"
fi
echo "D. refhttpd vs Apache httpd of the same MPM serving a static file, wrk -t1 -c50 (goal >= 3x)"
printf '   %-8s %14s %8s %14s %8s %7s %5s\n' mpm "refhttpd rps" errors "apache2 rps" errors ratio goal
for mpm in $MPMS; do
    R=$(ratio "${REF_RPS[$mpm]}" "${AP_RPS[$mpm]}")
    printf '   %-8s %14.0f %8d %14.0f %8d %6sx %5s\n' "$mpm" "${REF_RPS[$mpm]}" "${REF_ERR[$mpm]}" \
        "${AP_RPS[$mpm]}" "${AP_ERR[$mpm]}" "$R" "$(verdict "$R" 3)"
done
echo "   sizes as ci/bench.sh: prefork 64 children (50 started), worker/event 2 x 25 threads;"
echo "   KeepAliveTimeout 5 s, MaxKeepAliveRequests 0; no access log."
