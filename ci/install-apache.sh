#!/usr/bin/env bash
# Installs Apache httpd 2.4 (Debian package apache2, with mod_lua, mod_status, and mod_ssl with
# mod_socache_shmcb for the TLS cases) when it is missing, without starting the apache2 service: the harness starts its own Apache per case.
# Usage: ci/install-apache.sh [extra Debian packages...]
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

need=("$@")
if ! command -v apache2 >/dev/null 2>&1 && [ ! -x /usr/sbin/apache2 ]; then
    need+=(apache2)
else
    for module in mod_lua.so mod_ssl.so mod_socache_shmcb.so; do
        [ -e "/usr/lib/apache2/modules/$module" ] || { need+=(apache2); break; }
    done
fi
missing=()
for p in "${need[@]}"; do
    if [ "$p" = apache2 ] || ! command -v "$p" >/dev/null 2>&1; then missing+=("$p"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "== installing ${missing[*]}"
policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
fi
trap '[ -n "$policy" ] && as_root rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
as_root apt-get install -y --no-install-recommends "${missing[@]}" ||
    { as_root apt-get update && as_root apt-get install -y --no-install-recommends "${missing[@]}"; }
