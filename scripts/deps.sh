#!/usr/bin/env bash
# Installs what idprime needs to build and test, from Debian's packages,
# skipping what is already there. Needs root (or sudo).
set -euo pipefail

# libssl-dev: bookworm's libmemcached.pc has 'Requires.private: libcrypto'
# and libmemcached-dev does not depend on it, so without it
# 'pkg-config libmemcached' fails.
pkgs=(build-essential cmake pkg-config
      libhiredis-dev libmemcached-dev libssl-dev libsqlite3-dev liblua5.4-dev lua5.4
      check libsubunit-dev
      libpq-dev libmariadb-dev libevent-dev libmicrohttpd-dev python3-redis
      redis-server redis-sentinel memcached sqlite3 postgresql mariadb-server
      prometheus python3 mandoc
      debhelper dpkg-dev lintian)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}"
# No package may start its service (prometheus would listen on every
# interface): the tests start their own servers on 127.0.0.1.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  made_policy=1
fi
cleanup() {
  if [ "$made_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
