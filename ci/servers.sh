# Shared by ci/bench.sh and ci/load-figures.sh (sourced, not run): servers started in process
# groups of their own and stopped by a signal to the group, a grace period, then SIGKILL; free
# ports; wrk; refhttpd and Apache httpd started with the same sizes. The sourcing script sets
# WORK (a temp dir), REFHTTPD, APACHE and MODULES, and calls `cleanup` on exit.
# shellcheck shell=bash

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
    for pid in "${STARTED_GROUPS[@]+"${STARTED_GROUPS[@]}"}"; do stop_group "$pid"; done
    STARTED_GROUPS=()
    rm -rf "$WORK"
}

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

# Starts a server on a free port (three tries, as another process may take the port first):
# $1 its name, $2 a function that writes its configuration for the port given to it, $3 the
# URL's path, $4 its directory (for stdout and error.log); the rest is the command. Sets
# SERVER_PID and SERVER_URL.
start_on_free_port() {
    local name=$1 write_config=$2 path=$3 dir=$4 port attempt
    shift 4
    for attempt in 1 2 3; do
        port=$(free_port)
        "$write_config" "$port"
        setsid "$@" >"$dir/stdout" 2>&1 &
        SERVER_PID=$!
        STARTED_GROUPS+=("$SERVER_PID")
        if wait_port "$port" "$SERVER_PID"; then
            SERVER_URL="http://127.0.0.1:$port$path"
            return 0
        fi
        stop_group "$SERVER_PID"
        cat "$dir/stdout" "$dir/error.log" >&2 2>/dev/null || true
    done
    echo "$name did not start" >&2
    exit 1
}

apache_config() { # $1 port; APACHE_DIR, APACHE_MPM
    local dir=$APACHE_DIR mpm=$APACHE_MPM
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
        echo "Listen 127.0.0.1:$1"
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
}

start_apache() { # $1 mpm; sets SERVER_PID and SERVER_URL
    APACHE_MPM=$1
    APACHE_DIR=$WORK/apache-$1
    mkdir -p "$APACHE_DIR/htdocs"
    chmod 755 "$APACHE_DIR" "$APACHE_DIR/htdocs"
    printf 'refhttpd: it works\n' >"$APACHE_DIR/htdocs/index.html" # the same 19 bytes as refhttpd's /
    chmod 644 "$APACHE_DIR/htdocs/index.html"
    start_on_free_port apache2 apache_config /index.html "$APACHE_DIR" \
        "$APACHE" -f "$APACHE_DIR/httpd.conf" -DFOREGROUND
}

stop_server() {
    stop_group "$SERVER_PID"
    local kept=() pid
    for pid in "${STARTED_GROUPS[@]}"; do [ "$pid" != "$SERVER_PID" ] && kept+=("$pid"); done
    STARTED_GROUPS=("${kept[@]+"${kept[@]}"}")
}

