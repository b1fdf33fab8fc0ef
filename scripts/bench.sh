#!/usr/bin/env bash
# The main job's bench: the original case, 1,000 files (1 inode + 1 chunk
# ID each) at a 30 ms round trip, on the embedded SQLite store and on Redis,
# Memcached, PostgreSQL and MariaDB where their servers are installed, each
# beside its metaprime=0 baseline; then the hot path (next() against an atomic
# fetch-add, and one round trip through the engine against the raw client);
# then, on Redis, what durable batches cost: the same 1,000 files with
# wait_replicas=1 (each batch WAITs for a replica) beside the same without,
# and the price of one WAIT per round trip (metaprime=0, no delay).
#
# Redis (and a replica of it), Memcached, PostgreSQL (initdb + postgres)
# and MariaDB (mariadb-install-db + mariadbd) are started here on free
# ports of 127.0.0.1, in a temp folder, and stopped at the end; as root,
# PostgreSQL and MariaDB run as user nobody (postgres refuses root); the SQLite file is a fresh one under build/bench-out
# (the user's default store is left alone). Writes the table to stdout and
# build/bench-out/{files,hotpath}.{json,csv,svg}, hotpath-2t.json and
# durable{,-rt}.{json,csv}.
#
#   scripts/bench.sh [extra idprime bench options, e.g. --rtt-ms 10]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
out=$build/bench-out
idprime=$build/cli/idprime
if [ ! -x "$idprime" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" >/dev/null
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/idprime-bench.XXXXXX")
pids=()
dirs=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work" "${dirs[@]}"
}
trap cleanup EXIT

# 0 when something answers on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port of 127.0.0.1 nobody listens on, below the kernel's range for
# outgoing connections: a port in that range can be taken by any
# process's connection between this check and the server's bind (MariaDB
# binds late, after InnoDB starts, and met that on a busy machine).
free_port() {
  local p low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 11000 ] || low=32768
  for _ in $(seq 1 50); do
    p=$((10000 + RANDOM % (low - 10000)))
    listening "$p" || { echo "$p"; return 0; }
  done
  return 1
}

# start NAME CMD...: runs a server in the background on $port (set by the
# caller) and waits up to 5 s for it to listen. 0 when it does.
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
  echo "bench.sh: $name did not start on 127.0.0.1:$port:" >&2
  tail -5 "$work/$name.log" >&2 || true
  return 1
}

# redis_query PORT COMMAND: prints the reply of the Redis on
# 127.0.0.1:PORT to one inline command (a bulk string's text, or the line).
redis_query() {
  local fd line len
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
  printf '%s\r\n' "$2" >&"$fd"
  if IFS= read -r -t 2 line <&"$fd" && [[ $line == \$* ]]; then
    len=${line#\$}
    len=${len%$'\r'}
    IFS= read -r -d '' -N "$len" -t 2 line <&"$fd" || true
  fi
  exec {fd}>&-
  printf '%s\n' "$line"
}

# as_server CMD...: runs CMD as the servers' user: nobody when we are
# root (postgres refuses root; mariadbd would need --user), else us. exec,
# so that the pid start() records is the server's own.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
  fi
  exec "$@"
}

# server_dir NAME: a fresh folder for a server, its own user's (a temp
# folder of root's is not theirs to enter).
server_dir() {
  local d
  d=$(mktemp -d "${TMPDIR:-/tmp}/idprime-bench-$1.XXXXXX")
  [ "$(id -u)" -ne 0 ] || chown nobody:nogroup "$d"
  echo "$d"
}

uris=(default)
redis_port=
if command -v redis-server >/dev/null; then
  port=$(free_port)
  mkdir -p "$work/redis"
  # appendonly: the plugin warns about a Redis that would lose counters.
  # repl-diskless-sync no: a diskless sync streams no writes to the replica
  # of the last section (so it acknowledges no WAIT) until the replica's
  # first periodic ACK, up to a second after it shows as online.
  if start redis redis-server --port "$port" --bind 127.0.0.1 \
      --dir "$work/redis" --save '' --appendonly yes --appendfsync everysec \
      --repl-diskless-sync no --daemonize no; then
    uris+=("redis://127.0.0.1:$port")
    redis_port=$port
  fi
else
  echo "bench.sh: redis-server is not installed: Redis skipped" >&2
fi
if command -v memcached >/dev/null; then
  port=$(free_port)
  user=()
  [ "$(id -u)" -ne 0 ] || user=(-u root)
  # -M: return errors instead of evicting (the plugin warns otherwise).
  # -t 1: one worker thread, so the engine's connection and the raw
  # client's are served alike in the hot-path comparison (with several,
  # each connection lands on its own thread, and on a small VM one thread
  # may answer in 20 us and another in 60 us, which is no one's framework).
  if start memcached memcached -l 127.0.0.1 -p "$port" -U 0 -M -m 64 -t 1 \
      "${user[@]}"; then
    uris+=("memcached://127.0.0.1:$port")
  fi
else
  echo "bench.sh: memcached is not installed: Memcached skipped" >&2
fi

# PostgreSQL and MariaDB go behind the delay proxy once bench/target.c
# counts their schemes as network stores; until then `idprime bench` warns
# that it runs them without the delay asked for (and says so in the table).
#
# PostgreSQL: Debian keeps initdb and postgres in /usr/lib/postgresql/V/bin
pg_bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -1 || true)
if [ -z "$pg_bin" ] && command -v postgres >/dev/null; then
  pg_bin=$(dirname "$(command -v postgres)")
fi
if [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  port=$(free_port)
  d=$(server_dir pg)
  dirs+=("$d")
  if (as_server "$pg_bin/initdb" -D "$d/data" --auth=trust -U postgres         --no-sync -E UTF8 --locale=C) >"$work/pg-initdb.log" 2>&1; then
    # fsync and synchronous_commit stay on: a durable server, as the
    # plugin would warn otherwise
    if start postgresql as_server "$pg_bin/postgres" -D "$d/data" -p "$port"         -c listen_addresses=127.0.0.1 -k "$d" -c shared_buffers=32MB; then
      uris+=("postgresql://postgres@127.0.0.1:$port/postgres")
    fi
  else
    echo "bench.sh: initdb failed: PostgreSQL skipped" >&2
    tail -5 "$work/pg-initdb.log" >&2 || true
  fi
else
  echo "bench.sh: PostgreSQL (initdb, postgres) is not installed: skipped" >&2
fi

# MariaDB: a data folder of its own with a database `idprime`; root logs
# in over TCP without a password; innodb_flush_log_at_trx_commit=1 (the
# default: durable)
if command -v mariadb-install-db >/dev/null && command -v mariadbd >/dev/null; then
  port=$(free_port)
  d=$(server_dir mariadb)
  dirs+=("$d")
  echo "CREATE DATABASE IF NOT EXISTS idprime;" >"$d/init.sql"
  chmod 644 "$d/init.sql"
  if (as_server mariadb-install-db --no-defaults --datadir="$d/data"         --auth-root-authentication-method=normal --skip-test-db         --skip-name-resolve --extra-file="$d/init.sql")         >"$work/mariadb-install.log" 2>&1; then
    if start mariadb as_server mariadbd --no-defaults --datadir="$d/data"         --port="$port" --bind-address=127.0.0.1 --socket="$d/mysqld.sock"         --pid-file="$d/mysqld.pid" --skip-name-resolve         --innodb-buffer-pool-size=64M; then
      uris+=("mysql://root@127.0.0.1:$port/idprime")
    fi
  else
    echo "bench.sh: mariadb-install-db failed: MariaDB skipped" >&2
    tail -5 "$work/mariadb-install.log" >&2 || true
  fi
else
  echo "bench.sh: mariadb-server is not installed: MariaDB skipped" >&2
fi

# The embedded SQLite store, as a fresh file of its own.
export XDG_DATA_HOME=$out/data
rm -f "$XDG_DATA_HOME/idprime/idprime.db"*
unset IDPRIME_URI

echo "== 1,000 files at a 30 ms round trip, fixed batch (low_watermark=0 adaptive=0), each beside its baseline"
"$idprime" bench --workload files --count 1000 --chunks 1 --rtt-ms 30 \
  --param low_watermark=0 --param adaptive=0 \
  --json "$out/files.json" --csv "$out/files.csv" --plot "$out/files.svg" \
  "$@" "${uris[@]}"

# The zero-wait targets, on Redis at 30 ms with the default settings
# (adaptive batches): the original case (inode IDs only), the same with a
# chunk per file and both counters primed at open, and a steady 100,000
# IDs/s for 10 s without and with the counter primed.
if [ -n "$redis_port" ]; then
  r="redis://127.0.0.1:$redis_port"
  echo "== default settings on Redis at 30 ms: 1,000 files (inode only); 1,000 files + chunks, primed; steady 100,000 IDs/s for 10 s, then primed"
  "$idprime" bench --workload files --count 1000 --chunks 0 --rtt-ms 30 \
    --no-baseline --json "$out/adaptive-files.json" "$@" "$r"
  "$idprime" bench --workload files --count 1000 --chunks 1 --rtt-ms 30 \
    --no-baseline --param prime=inode,chunk --json "$out/adaptive-files-primed.json" "$@" "$r"
  "$idprime" bench --workload steady --rate 100000 --seconds 10 --rtt-ms 30 \
    --no-baseline --no-progress --json "$out/adaptive-steady.json" "$@" "$r"
  "$idprime" bench --workload steady --rate 100000 --seconds 10 --rtt-ms 30 \
    --no-baseline --no-progress --param prime=steady --json "$out/adaptive-steady-primed.json" "$@" "$r"
fi

echo "== hot path: next() on a warm pool vs an atomic fetch-add; one round trip through the engine vs the raw client"
"$idprime" bench --workload hotpath --threads 1 \
  --json "$out/hotpath.json" --csv "$out/hotpath.csv" --plot "$out/hotpath.svg" \
  "${uris[@]}"
echo "== hot path on 2 threads (the in-process store)"
"$idprime" bench --workload hotpath --threads 2 --json "$out/hotpath-2t.json" mem://

echo "== counters at scale: 10,000 and 100,000 counters in one client, one ID each; idp_open + idp_close"
"$idprime" bench --workload counters --count 10000 --json "$out/counters-10k.json" mem://
"$idprime" bench --workload counters --count 100000 --json "$out/counters-100k.json" mem://

# Durable batches: a replica of the bench's Redis, then the same 1,000
# files with wait_replicas=1 and without (the metaprime=0 baselines are in
# the first table). The WAIT rides in the same round trip as its INCRBY,
# so what it adds is the replica's acknowledgement on loopback, once per
# batch; the second run prices that per round trip.
rm -f "$out"/durable.{json,csv} "$out"/durable-rt.{json,csv}
if [ -n "$redis_port" ]; then
  primary=$redis_port
  port=$(free_port)
  mkdir -p "$work/replica"
  if start replica redis-server --port "$port" --bind 127.0.0.1 \
      --dir "$work/replica" --save '' --appendonly no \
      --replicaof 127.0.0.1 "$primary" --daemonize no; then
    online=
    for _ in $(seq 1 100); do
      if redis_query "$port" "INFO replication" | grep -q '^master_link_status:up' &&
         redis_query "$primary" "INFO replication" | grep -q ",port=$port,state=online,"; then
        online=1
        break
      fi
      sleep 0.1
    done
    if [ -n "$online" ]; then
      echo "== durable batches on Redis: 1,000 files at a 30 ms round trip with wait_replicas=1 (1 replica) and without"
      "$idprime" bench --workload files --count 1000 --chunks 1 --rtt-ms 30 \
        --no-baseline --json "$out/durable.json" --csv "$out/durable.csv" \
        "$@" "redis://127.0.0.1:$primary" \
        "redis://127.0.0.1:$primary?wait_replicas=1"
      # 30 ms hides what one WAIT costs; with no delay injected, the
      # baselines (one round trip per ID) show its price per round trip
      echo "== durable batches on Redis: the same with no delay injected, where the baselines price one WAIT per round trip"
      "$idprime" bench --workload files --count 1000 --chunks 1 \
        --json "$out/durable-rt.json" --csv "$out/durable-rt.csv" \
        "redis://127.0.0.1:$primary" \
        "redis://127.0.0.1:$primary?wait_replicas=1"
    else
      echo "bench.sh: the replica on 127.0.0.1:$port did not come online: durable batches skipped" >&2
    fi
  fi
fi
# The strategies' shoot-out, short: the embedded SQLite store only (about
# 2 minutes; scripts/shootout.sh alone runs every installed store)
echo "== the strategies' shoot-out on SQLite (scripts/shootout.sh, short)"
SHOOTOUT_STORES=sqlite SHOOTOUT_OUT="$out/shootout" BUILD_DIR="$build" \
  scripts/shootout.sh
written="$out/files.{json,csv,svg} $out/hotpath.{json,csv,svg} $out/hotpath-2t.json $out/counters-{10k,100k}.json $out/shootout/"
[ ! -f "$out/adaptive-steady.json" ] || written+=" $out/adaptive-*.json"
[ ! -f "$out/durable.json" ] || written+=" $out/durable{,-rt}.{json,csv}"
echo "== written: $written"
