#!/usr/bin/env bash
# idprime serve against a real redis-server on the same machine, in one
# run (issue 13's bench): redis-benchmark's pipelined INCR against Redis
# and against `idprime serve` (on SQLite, default batch and a big one, and
# on that same Redis as its store), then GET/SET through the passthrough
# proxy (--upstream) against the same Redis direct. Prints each INCR/s and
# GET/SET/s with its ratio to Redis, the p99 latency the proxy adds, and
# the store's own count of increments for each whole serve run: SQLite's
# idprime_stats 'increments' row (the plugin counts every increment it
# commits), Redis's INFO commandstats cmdstat_incrby calls (the engine's
# batches are INCRBYs).
#
# Redis runs on a free port of 127.0.0.1 in a temp folder, with
# appendonly everysec (what a Redis that keeps counters needs; the redis
# plugin warns otherwise): the store and the proxy's upstream; a second
# one without persistence is the INCR baseline (Redis at its fastest).
# All are stopped at the end, as are the serves. Ratios are to the Redis
# without persistence (INCR) and to the same Redis direct (GET/SET).
# Each comparison runs ROUNDS times, alternating, and the median is shown
# (the machine may be shared: a single run can be off by 30%).
#
#   scripts/bench-serve.sh                 # build/, 3 rounds
#   BUILD_DIR=/tmp/b ROUNDS=5 N_INCR=2000000 N_GETSET=1000000 \
#     BIG_BATCH=65536 scripts/bench-serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
idprime=$build/cli/idprime
rounds=${ROUNDS:-3}
n_incr=${N_INCR:-2000000}
n_getset=${N_GETSET:-1000000}
big_batch=${BIG_BATCH:-65536}
for cmd in redis-server redis-benchmark redis-cli sqlite3; do
  command -v "$cmd" >/dev/null ||
    { echo "bench-serve.sh: $cmd is not installed" >&2; exit 1; }
done
if [ ! -x "$idprime" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target idprime-cli idprime-sqlite \
    idprime-redis >/dev/null
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/idprime-bench-serve.XXXXXX")
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

# A port of 127.0.0.1 nobody listens on, below the kernel's range for
# outgoing connections (as scripts/bench.sh).
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

# start NAME PORT CMD...: a server in the background, waited for (5 s).
start() {
  local name=$1 port=$2
  shift 2
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
  echo "bench-serve.sh: $name did not start on 127.0.0.1:$port:" >&2
  tail -5 "$work/$name.log" >&2 || true
  exit 1
}

rport=$(free_port)
mkdir -p "$work/redis"
start redis "$rport" redis-server --port "$rport" --bind 127.0.0.1 \
  --dir "$work/redis" --save '' --appendonly yes --appendfsync everysec \
  --daemonize no
redis="redis://127.0.0.1:$rport"
# and one that keeps nothing (no AOF, no RDB): Redis at its fastest, the
# INCR baseline the issue names, though its counters die with it
nport=$(free_port)
mkdir -p "$work/redis-mem"
start redis-mem "$nport" redis-server --port "$nport" --bind 127.0.0.1 \
  --dir "$work/redis-mem" --save '' --appendonly no --daemonize no

sport=$(free_port)
start serve-sqlite "$sport" "$idprime" serve --listen "127.0.0.1:$sport" \
  "sqlite://$work/ids.db"
bport=$(free_port)
start serve-sqlite-big "$bport" "$idprime" serve --listen \
  "127.0.0.1:$bport" "sqlite://$work/ids-big.db?batch=$big_batch"
eport=$(free_port)
start serve-redis "$eport" "$idprime" serve --listen "127.0.0.1:$eport" \
  "$redis?batch=$big_batch"
pport=$(free_port)
start proxy "$pport" "$idprime" serve --listen "127.0.0.1:$pport" \
  --upstream "$redis" --counter counter:__rand_int__

# bench PORT TESTS N: redis-benchmark's CSV rows, "TEST RPS P99" a line.
bench() {
  redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -P 16 -c 50 -n "$3" --csv \
    2>/dev/null | awk -F, '{ gsub(/"/, "") } $2 ~ /^[0-9]/ { print $1, $2, $7 }'
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

sqlite_increments() {
  sqlite3 "$1" "SELECT value FROM idprime_stats WHERE name = 'increments'" \
    2>/dev/null || echo 0
}
redis_incrby_calls() {
  redis-cli -p "$rport" info commandstats |
    awk -F'[:=,]' '/^cmdstat_incrby:/ { print $3; f = 1 } END { if (!f) print 0 }'
}
served() {
  redis-cli -p "$1" info idprime | awk -F: '/^ids_served:/ { print $2 + 0 }'
}

declare -A rps p99 stc ids
add() { rps[$1]+="${2} "; p99[$1]+="${3} "; }

echo "bench-serve.sh: redis-benchmark -t incr -P 16 -c 50 -n $n_incr" \
  "and -t set,get -P 16 -c 50 -n $n_getset, $rounds rounds (medians)"
echo "  redis-server $(redis-server --version | awk '{print $3}') on" \
  "127.0.0.1:$rport (appendonly everysec); $(nproc) cores"
for r in $(seq 1 "$rounds"); do
  read -r _ a b < <(bench "$nport" incr "$n_incr"); add redis-incr "$a" "$b"
  read -r _ a b < <(bench "$rport" incr "$n_incr"); add redis-aof "$a" "$b"
  before=$(sqlite_increments "$work/ids.db"); ids0=$(served "$sport")
  read -r _ a b < <(bench "$sport" incr "$n_incr"); add serve-sqlite "$a" "$b"
  stc[serve-sqlite]+="$(( $(sqlite_increments "$work/ids.db") - before )) "
  ids[serve-sqlite]+="$(( $(served "$sport") - ids0 )) "
  before=$(sqlite_increments "$work/ids-big.db"); ids0=$(served "$bport")
  read -r _ a b < <(bench "$bport" incr "$n_incr")
  add serve-sqlite-big "$a" "$b"
  stc[serve-sqlite-big]+="$(( $(sqlite_increments "$work/ids-big.db") - before )) "
  ids[serve-sqlite-big]+="$(( $(served "$bport") - ids0 )) "
  before=$(redis_incrby_calls); ids0=$(served "$eport")
  read -r _ a b < <(bench "$eport" incr "$n_incr"); add serve-redis "$a" "$b"
  stc[serve-redis]+="$(( $(redis_incrby_calls) - before )) "
  ids[serve-redis]+="$(( $(served "$eport") - ids0 )) "
  while read -r t a b; do add "redis-$t" "$a" "$b"; done \
    < <(bench "$rport" set,get "$n_getset")
  while read -r t a b; do add "proxy-$t" "$a" "$b"; done \
    < <(bench "$pport" set,get "$n_getset")
  echo "  round $r done" >&2
done

med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo
printf '%-34s %12s %8s %9s %14s %12s\n' "INCR (-P 16 -c 50)" "req/s" \
  "ratio" "p99 ms" "store incrs" "IDs served"
ri=$(med "${rps[redis-incr]}")
printf '%-34s %12.0f %8s %9s %14s %12s\n' "redis-server (no persistence)" \
  "$ri" "1.00x" "$(med "${p99[redis-incr]}")" "$n_incr" "-"
v=$(med "${rps[redis-aof]}")
printf '%-34s %12.0f %8s %9s %14s %12s\n' "redis-server (appendonly everysec)" \
  "$v" "$(ratio "$v" "$ri")" "$(med "${p99[redis-aof]}")" "$n_incr" "-"
for k in serve-sqlite serve-sqlite-big serve-redis; do
  case $k in
    serve-sqlite) label="serve sqlite (batch 256)" ;;
    serve-sqlite-big) label="serve sqlite (batch $big_batch)" ;;
    serve-redis) label="serve on that redis (batch $big_batch)" ;;
  esac
  v=$(med "${rps[$k]}")
  printf '%-34s %12.0f %8s %9s %14s %12s\n' "$label" "$v" \
    "$(ratio "$v" "$ri")" "$(med "${p99[$k]}")" "$(med "${stc[$k]}")" \
    "$(med "${ids[$k]}")"
done
echo
printf '%-34s %12s %8s %9s %12s\n' "GET/SET (-P 16 -c 50)" "req/s" "ratio" \
  "p99 ms" "p99 added"
for t in SET GET; do
  d=$(med "${rps[redis-$t]}"); dp=$(med "${p99[redis-$t]}")
  v=$(med "${rps[proxy-$t]}"); vp=$(med "${p99[proxy-$t]}")
  printf '%-34s %12.0f %8s %9s %12s\n' "$t redis-server direct" "$d" "1.00x" \
    "$dp" "-"
  printf '%-34s %12.0f %8s %9s %12s\n' "$t through serve --upstream" "$v" \
    "$(ratio "$v" "$d")" "$vp" \
    "$(awk -v a="$vp" -v b="$dp" 'BEGIN { printf "%+.3f", a - b }')"
done
echo
echo "store incrs: the store's own count of increments during each whole" \
  "INCR run (SQLite: idprime_stats 'increments'; Redis: INFO commandstats" \
  "cmdstat_incrby calls); IDs served: serve's INFO ids_served (the engine's" \
  "ranges taken); both medians over the rounds."
