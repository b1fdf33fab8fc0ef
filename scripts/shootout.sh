#!/usr/bin/env bash
# The strategies' shoot-out, short: every batching strategy of
# bench/strategies (JuiceFS, Leaf, Tinyid, TiDB, CosId, fixed batches,
# metaprime=0 and idprime's own adaptive rule) on the embedded SQLite store
# and on each server that is installed (Redis, Memcached, PostgreSQL,
# MariaDB: started here on free ports of 127.0.0.1, in temp folders, and
# stopped at the end), on the workloads steady, bursty, ramp and the
# synthetic trace of bench/traces, at injected round trips of 1 and 30 ms.
# About 2 minutes per store.
#
# Writes bench/results/shootout.{json,csv,svg} (the plot: calls that waited
# against IDs wasted at a clean close, a panel per workload and round
# trip), the table to bench/results/shootout.txt, and a verdict per store
# and workload to bench/results/shootout-frontier.txt: whether idprime's
# default is on the lower-left frontier at 30 ms (no other strategy both
# waits less and wastes less; and likewise against the IDs at risk on a
# crash).
#
#   scripts/shootout.sh [extra idprime bench options]
# environment: BUILD_DIR (build), SHOOTOUT_SECONDS (1: each steady, bursty
# and ramp run; the trace is cut at SHOOTOUT_LIMIT, 3 s), SHOOTOUT_RATE
# (5000 IDs/s), SHOOTOUT_STORES (e.g. "sqlite redis": only these),
# SHOOTOUT_OUT (bench/results: where the files go).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
idprime=$build/cli/idprime
seconds=${SHOOTOUT_SECONDS:-1}
limit=${SHOOTOUT_LIMIT:-3}
rate=${SHOOTOUT_RATE:-5000}
stores=${SHOOTOUT_STORES:-sqlite redis memcached postgresql mariadb}
if [ ! -x "$idprime" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" >/dev/null
fi
out=${SHOOTOUT_OUT:-bench/results}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/idprime-shootout.XXXXXX")
pids=()
dirs=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work" "${dirs[@]}"
}
trap cleanup EXIT

wanted() { [[ " $stores " == *" $1 "* ]]; }

# 0 when something answers on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port of 127.0.0.1 nobody listens on.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    listening "$p" || { echo "$p"; return 0; }
  done
  return 1
}

# start NAME CMD...: runs a server in the background on $port and waits up
# to 5 s for it to listen. 0 when it does.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do
    if listening "$port"; then
      pids+=("$pid")
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  echo "shootout.sh: $name did not start on 127.0.0.1:$port:" >&2
  tail -5 "$work/$name.log" >&2 || true
  return 1
}

# as_server CMD...: as user nobody when we are root (postgres refuses root)
as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
  fi
  exec "$@"
}

server_dir() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/idprime-shootout-$1.XXXXXX")
  [ "$(id -u)" -ne 0 ] || chown nobody:nogroup "$d"
  echo "$d"
}

# start_on NAME CMD...: start on a free $port, three tries (a port free a
# moment ago may be taken when the server binds it). Words PORT in CMD are
# replaced by the port.
start_on() {
  local name=$1 try a
  shift
  for try in 1 2 3; do
    port=$(free_port)
    local cmd=()
    for a in "$@"; do cmd+=("${a//PORT/$port}"); done
    start "$name" "${cmd[@]}" && return 0
  done
  return 1
}

uris=()
wanted sqlite && uris+=("sqlite://$work/shootout.db")
if wanted redis && command -v redis-server >/dev/null; then
  mkdir -p "$work/redis"
  if start_on redis redis-server --port PORT --bind 127.0.0.1 \
      --dir "$work/redis" --save '' --appendonly yes --appendfsync everysec \
      --daemonize no; then
    uris+=("redis://127.0.0.1:$port")
  fi
fi
if wanted memcached && command -v memcached >/dev/null; then
  user=()
  [ "$(id -u)" -ne 0 ] || user=(-u root)
  if start_on memcached memcached -l 127.0.0.1 -p PORT -U 0 -M -m 64 -t 1 \
      "${user[@]}"; then
    uris+=("memcached://127.0.0.1:$port")
  fi
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$pg_bin" ] && command -v postgres >/dev/null; then
  pg_bin=$(dirname "$(command -v postgres)")
fi
if wanted postgresql && [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  d=$(server_dir pg)
  dirs+=("$d")
  if (as_server "$pg_bin/initdb" -D "$d/data" --auth=trust -U postgres \
      --no-sync -E UTF8 --locale=C) >"$work/pg-initdb.log" 2>&1 &&
     start_on postgresql as_server "$pg_bin/postgres" -D "$d/data" -p PORT \
      -c listen_addresses=127.0.0.1 -k "$d" -c shared_buffers=32MB; then
    uris+=("postgresql://postgres@127.0.0.1:$port/postgres")
  fi
fi
if wanted mariadb && command -v mariadb-install-db >/dev/null &&
   command -v mariadbd >/dev/null; then
  d=$(server_dir mariadb)
  dirs+=("$d")
  echo "CREATE DATABASE IF NOT EXISTS idprime;" >"$d/init.sql"
  chmod 644 "$d/init.sql"
  if (as_server mariadb-install-db --no-defaults --datadir="$d/data" \
      --auth-root-authentication-method=normal --skip-test-db \
      --skip-name-resolve --extra-file="$d/init.sql") \
      >"$work/mariadb-install.log" 2>&1 &&
     start_on mariadb as_server mariadbd --no-defaults --datadir="$d/data" \
      --port=PORT --bind-address=127.0.0.1 --socket="$d/mysqld.sock" \
      --pid-file="$d/mysqld.pid" --skip-name-resolve \
      --innodb-buffer-pool-size=64M; then
    uris+=("mysql://root@127.0.0.1:$port/idprime")
  fi
fi
[ "${#uris[@]}" -gt 0 ] || { echo "shootout.sh: no store to run" >&2; exit 1; }

echo "== the shoot-out: ${uris[*]}"
cmd=("$idprime" bench --strategies bench/strategies/*.lua
     --workload steady,bursty,ramp,trace --trace bench/traces/synthetic.csv
     --rtt-ms 1,30 --rate "$rate" --seconds "$seconds" --time-limit "$limit"
     --no-progress --json "$out/shootout.json" --csv "$out/shootout.csv"
     --plot "$out/shootout.svg" "$@" "${uris[@]}")
echo "${cmd[*]}" >"$out/shootout.txt"
"${cmd[@]}" 2> >(grep -v 'stopped at the time limit' >&2) | tee -a "$out/shootout.txt"

# The verdict: for each store and workload at 30 ms, the strategies that
# both wait less and waste less (or hold less at risk) than idprime's.
python3 - "$out/shootout.json" <<'PY' | tee "$out/shootout-frontier.txt"
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
print("idprime's default against the field at 30 ms: the strategies that do")
print("at least as well on both counts and better on one (FRONTIER: none)")
for axis, name in (("wasted_ids", "IDs wasted at a clean close"),
                   ("at_risk_ids", "IDs at risk on a crash")):
    print(f"\n-- calls that waited against {name}")
    for uri in dict.fromkeys(r["uri"] for r in runs):
        for w in ("steady", "bursty", "ramp", "trace"):
            cell = [r for r in runs if r["uri"] == uri and r["workload"] == w
                    and r["rtt_ms_asked"] == 30 and r[axis] is not None]
            me = [r for r in cell if r["strategy"] == "idprime"]
            if not me:
                continue
            me = me[0]
            better = [r["strategy"] for r in cell if r is not me
                      and r["waited_calls"] <= me["waited_calls"]
                      and r[axis] <= me[axis]
                      and (r["waited_calls"] < me["waited_calls"]
                           or r[axis] < me[axis])]
            print(f"{me['store']:10} {w:7} idprime waits {me['waited_calls']:5} "
                  f"{axis.split('_')[0]} {me[axis]:7}  "
                  f"{'FRONTIER' if not better else 'beaten by ' + ', '.join(better)}")
PY
echo "wrote $out/shootout.{txt,json,csv,svg} and $out/shootout-frontier.txt"
