#!/usr/bin/env bash
# The main job's bench: the original case, 1,000 files (1 inode + 1 chunk
# ID each) at a 30 ms round trip, on the embedded SQLite store and on Redis
# and Memcached where their servers are installed, each beside its
# metaprime=0 baseline; then the hot path (next() against an atomic
# fetch-add, and one round trip through the engine against the raw client).
#
# Redis and Memcached are started here on free ports of 127.0.0.1 and
# stopped at the end; the SQLite file is a fresh one under build/bench-out
# (the user's default store is left alone). Writes the table to stdout and
# build/bench-out/{files,hotpath}.{json,csv,svg} and hotpath-2t.json.
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
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

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

uris=(default)
if command -v redis-server >/dev/null; then
  port=$(free_port)
  mkdir -p "$work/redis"
  # appendonly: the plugin warns about a Redis that would lose counters
  if start redis redis-server --port "$port" --bind 127.0.0.1 \
      --dir "$work/redis" --save '' --appendonly yes --appendfsync everysec \
      --daemonize no; then
    uris+=("redis://127.0.0.1:$port")
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

# The embedded SQLite store, as a fresh file of its own.
export XDG_DATA_HOME=$out/data
rm -f "$XDG_DATA_HOME/idprime/idprime.db"*
unset IDPRIME_URI

echo "== 1,000 files at a 30 ms round trip, fixed batch (low_watermark=0), each beside its baseline"
"$idprime" bench --workload files --count 1000 --chunks 1 --rtt-ms 30 \
  --param low_watermark=0 \
  --json "$out/files.json" --csv "$out/files.csv" --plot "$out/files.svg" \
  "$@" "${uris[@]}"

echo "== hot path: next() on a warm pool vs an atomic fetch-add; one round trip through the engine vs the raw client"
"$idprime" bench --workload hotpath --threads 1 \
  --json "$out/hotpath.json" --csv "$out/hotpath.csv" --plot "$out/hotpath.svg" \
  "${uris[@]}"
echo "== hot path on 2 threads (the in-process store)"
"$idprime" bench --workload hotpath --threads 2 --json "$out/hotpath-2t.json" mem://
echo "== written: $out/files.{json,csv,svg} $out/hotpath.{json,csv,svg} $out/hotpath-2t.json"
