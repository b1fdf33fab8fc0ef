#!/usr/bin/env bash
# test_interrupts.sh - the idprime command stopped by a signal, as a user
# stops it: real processes, real signals. SIGINT and SIGTERM finish the line
# being written, close the client (which gives back what it did not serve),
# write --metrics, and end the process by that signal (a shell sees 130 or
# 143); a closed pipe ends it quietly by SIGPIPE (141). Stores: SQLite files
# in a scratch folder (their value outlives the process, so `get` shows what
# the interrupted client gave back), and mem://.
#
# usage: test_interrupts.sh PATH/TO/idprime
# environment: IDPRIME_PLUGIN_PATH, the folder holding the plugins.
set -u

CLI=${1:?usage: test_interrupts.sh PATH/TO/idprime}
: "${IDPRIME_PLUGIN_PATH:?set IDPRIME_PLUGIN_PATH to the plugin folder}"
# shellcheck source-path=SCRIPTDIR source=check.sh
. "$(dirname "$0")/check.sh"

unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home

# ---- helpers ---------------------------------------------------------------

# start_bg CMD [ARGS...]: starts CMD in the background as an interactive
# shell would start it in the foreground: SIGINT, SIGTERM and SIGPIPE at
# their defaults (a script's background job would have SIGINT ignored).
# stdout goes to $TMP/bg.out, stderr to $TMP/bg.err; sets BG to its pid.
start_bg() {
    cmd=$*
    : >"$TMP/bg.out"
    : >"$TMP/bg.err"
    env --default-signal=INT,TERM,PIPE "$@" </dev/null >"$TMP/bg.out" \
        2>"$TMP/bg.err" &
    BG=$!
}

# wait_until WHAT CMD [ARGS...]: polls CMD every 20 ms until it succeeds
# (up to 30 s, else a reason "WHAT never happened"); returns its status.
wait_until() {
    local what=$1 i
    shift
    for ((i = 0; i < 1500; i++)); do
        "$@" && return 0
        kill -0 "$BG" 2>/dev/null || break # ended by itself: nothing to wait for
        sleep 0.02
    done
    "$@" && return 0
    why "$what never happened"
    return 1
}

has_output() { [ -s "$TMP/bg.out" ]; }

# sleeping_in_store: a thread of BG sleeps in the store's simulated round
# trip (delay_ms: nanosleep), so a signal now lands in the middle of it.
sleeping_in_store() {
    grep -qs nanosleep /proc/"$BG"/task/*/wchan
}

# finish_bg: waits for BG (killed after 30 s) and sets rc, out and err.
finish_bg() {
    local i
    for ((i = 0; i < 1500; i++)); do
        kill -0 "$BG" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$BG" 2>/dev/null; then
        why "did not end within 30 s of the signal"
        kill -KILL "$BG"
    fi
    wait "$BG"
    rc=$?
    out=$(cat "$TMP/bg.out")
    err=$(cat "$TMP/bg.err")
}

# want_whole_lines FILE: FILE is only lines of digits, each ending in a
# newline, with no number twice, strictly increasing (one client, one
# counter, one thread).
want_whole_lines() {
    local f=$1
    if [ ! -s "$f" ]; then
        why "no output"
        return
    fi
    [ "$(tail -c 1 "$f" | od -An -tx1 | tr -d ' ')" = 0a ] ||
        why "the last line is cut off (no newline at the end)"
    grep -qvxE '[1-9][0-9]*' "$f" &&
        why "a line is not a whole number: $(grep -vxE '[1-9][0-9]*' "$f" | head -1)"
    [ -z "$(sort -n "$f" | uniq -d | head -1)" ] ||
        why "an ID is printed twice: $(sort -n "$f" | uniq -d | head -1)"
    sort -nc "$f" 2>/dev/null || why "the IDs do not increase line by line"
}

# metric FILE NAME: the value of the unlabelled sample NAME in FILE.
metric() {
    awk -v n="$2" '$1 == n { print $2 }' "$1" 2>/dev/null
}

# store_value URI COUNTER: what `idprime get` says (the store's value).
store_value() {
    "$CLI" get "$1" "$2" 2>&1
}

# ---- next ------------------------------------------------------------------

# An interrupted `next`: whole lines, the metrics file, and the store's
# value given back to the last ID printed. SIG is INT or TERM.
next_interrupted() {
    local sig=$1 want=$2 db=$TMP/next-$1.db
    begin "next stopped by SIG$sig: whole lines, no duplicate, exit $want, metrics written, the rest given back"
    rm -f "$TMP/m.prom"
    start_bg "$CLI" next "sqlite://$db" c -n 100000000 --metrics "$TMP/m.prom"
    wait_until "output from next" has_output
    kill -"$sig" "$BG"
    finish_bg
    want_rc "$want"
    want_err_empty
    want_whole_lines "$TMP/bg.out"
    local lines last served
    lines=$(wc -l <"$TMP/bg.out")
    last=$(tail -n 1 "$TMP/bg.out")
    [ "$lines" -lt 100000000 ] || why "next was not stopped: all $lines IDs printed"
    if [ ! -f "$TMP/m.prom" ]; then
        why "no --metrics file"
    else
        served=$(metric "$TMP/m.prom" meta_c_ids_served_total)
        [ "$served" = "$lines" ] ||
            why "the metrics say ${served:-nothing} IDs served, $lines lines were printed"
    fi
    # one client on a new store: the IDs are 1..lines, and closing gave
    # back everything after the last one printed
    [ "$last" = "$lines" ] || why "the last ID is $last after $lines lines"
    local v
    v=$(store_value "sqlite://$db" c)
    [ "$v" = "$last" ] ||
        why "the store holds $v after the close, not the last ID printed ($last)"
    end
}

next_interrupted INT 130
next_interrupted TERM 143

begin "next into a closed pipe (| head -1): exit 141, nothing on stderr, metrics written, the rest given back"
db=$TMP/pipe.db
rm -f "$TMP/m.prom"
cmd="$CLI next sqlite://$db c -n 1000000 --metrics $TMP/m.prom | head -1"
# shellcheck disable=SC2016 # expanded by the inner bash
out=$(env --default-signal=PIPE bash -c \
    '"$1" next "sqlite://$2" c -n 1000000 --metrics "$3" 2>"$4" | head -1
     exit "${PIPESTATUS[0]}"' _ "$CLI" "$db" "$TMP/m.prom" "$TMP/err")
rc=$?
err=$(cat "$TMP/err")
want_rc 141
want_out 1
want_err_empty
served=$(metric "$TMP/m.prom" meta_c_ids_served_total)
if [ -z "$served" ]; then
    why "no ids_served in the --metrics file"
else
    [ "$served" -lt 1000000 ] || why "all 1000000 IDs were taken: the closed pipe did not stop next"
    # the IDs taken are 1..served (some were never read); none above
    [ "$(store_value "sqlite://$db" c)" = "$served" ] ||
        why "the store holds $(store_value "sqlite://$db" c), not the $served IDs served"
fi
end

begin "SIGINT that the parent ignores stays ignored: next runs to its end"
# a background job of a script: SIGINT ignored, as the shell intends
cmd="$CLI next 'mem://?delay_ms=100&metaprime=0' c -n 8 (SIGINT ignored)"
bash -c 'trap "" INT; exec "$@"' _ "$CLI" next 'mem://?delay_ms=100&metaprime=0' \
    c -n 8 </dev/null >"$TMP/bg.out" 2>"$TMP/bg.err" &
BG=$!
if wait_until "a store call of next" sleeping_in_store; then
    kill -INT "$BG"
fi
finish_bg
want_rc 0
want_out "$(seq 1 8)"
end

# ---- incr, get: one store call, then the line --------------------------------

db=$TMP/one.db
begin "incr interrupted during its store call: prints its line, exit 130"
start_bg "$CLI" incr "sqlite://$db?delay_ms=300" c 7
if wait_until "a store call of incr" sleeping_in_store; then
    kill -INT "$BG"
fi
finish_bg
want_rc 130
want_out 7
want_err_empty
[ "$(store_value "sqlite://$db" c)" = 7 ] || why "the store does not hold 7"
end

begin "get interrupted by SIGTERM during its store call: prints its line, exit 143"
start_bg "$CLI" get "sqlite://$db?delay_ms=300" c
if wait_until "a store call of get" sleeping_in_store; then
    kill -TERM "$BG"
fi
finish_bg
want_rc 143
want_out 7
want_err_empty
end

# ---- migrate: between two counters ---------------------------------------------

begin "migrate interrupted: stops between counters, names those left, exit 130"
from=$TMP/from.db to=$TMP/to.db
for k in a b c d e f; do
    "$CLI" incr "sqlite://$from" "$k" 10 >/dev/null || why "cannot fill FROM"
done
start_bg "$CLI" migrate "sqlite://$from?delay_ms=300" "sqlite://$to" a b c d e f
wait_until "a first migrated counter" has_output
kill -INT "$BG"
finish_bg
want_rc 130
grep -qvxE '[a-f]: raised TO from 0 to 10' "$TMP/bg.out" &&
    why "a line of stdout is not a whole 'raised' line"
[ "$(tail -c 1 "$TMP/bg.out" | od -An -tx1 | tr -d ' ')" = 0a ] ||
    why "the last line is cut off"
done_n=$(grep -c . "$TMP/bg.out")
left=$(sed -n 's/.*interrupted: \([0-9]*\) of 6 counters not looked at.*/\1/p' \
           "$TMP/bg.err")
if [ -z "$left" ]; then
    why "stderr does not say how many counters were not looked at"
else
    [ $((done_n + left)) = 6 ] ||
        why "$done_n migrated and $left not looked at: not the 6 named"
    [ "$left" -gt 0 ] || why "all 6 were migrated: the interrupt did not stop it"
fi
# each counter is migrated whole or untouched
for k in a b c d e f; do
    v=$(store_value "sqlite://$to" "$k")
    if grep -qx "$k: raised TO from 0 to 10" "$TMP/bg.out"; then
        [ "$v" = 10 ] || why "$k said raised, but TO holds $v"
    else
        [ "$v" = 0 ] || why "$k was not said raised, but TO holds $v"
    fi
done
end

# ---- bench: the run going on stops, what was measured is written ----------

begin "bench stopped by SIGTERM mid-run: the run ends early, no other starts, the table, JSON and metrics written, exit 143"
rm -f "$TMP/b.json" "$TMP/b.prom"
start_bg "$CLI" bench --workload steady --rate 1000 --seconds 60 --no-progress \
    --json "$TMP/b.json" --metrics "$TMP/b.prom" mem://
# the steady workload sleeps between IDs (clock_nanosleep): it is running
wait_until "the steady run" sleeping_in_store
kill -TERM "$BG"
finish_bg
want_rc 143
grep -q "mem:// steady: interrupted after [0-9]* IDs" "$TMP/bg.err" ||
    why "stderr does not say the run was interrupted: $err"
grep -q "(interrupted)" "$TMP/bg.out" || why "the table does not mark the run interrupted"
[ -s "$TMP/b.prom" ] || why "no --metrics file"
runs=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))["runs"]
print(len(d), d[0]["ids"], d[0]["stopped"])' "$TMP/b.json" 2>&1)
read -r nruns ids stopped <<<"$runs"
[ "$nruns" = 1 ] || why "the JSON holds '$runs', not the one interrupted run (no baseline after it)"
[ "${stopped:-}" = True ] || why "the run is not marked stopped in the JSON: $runs"
[ "${ids:-60000}" -lt 60000 ] 2>/dev/null || why "the run was not cut short: $runs"
end

# ---- run: the script stops, its clients close ----------------------------------

cat >"$TMP/forever.lua" <<'EOF'
local idp = require "idprime"
local c <close> = assert(idp.open(arg[1]))
local k = assert(c:counter("c"))
while true do print(assert(k:next())) end
EOF

begin "run interrupted: the script stops, its client gives back, exit 130"
db=$TMP/run.db
start_bg "$CLI" run "$TMP/forever.lua" "sqlite://$db"
wait_until "output from the script" has_output
kill -INT "$BG"
finish_bg
want_rc 130
want_err_empty
want_whole_lines "$TMP/bg.out"
last=$(tail -n 1 "$TMP/bg.out")
v=$(store_value "sqlite://$db" c)
# the interrupt may fall between k:next() and print(): one ID taken, not
# printed; nothing beyond it is kept from the batch
[ "$v" = "$last" ] || [ "$v" = $((last + 1)) ] ||
    why "the store holds $v after the script's last ID $last: not given back"
end

begin "run into a closed pipe (| head -1): the script stops, exit 141, nothing on stderr"
cmd="$CLI run forever.lua mem:// | head -1"
# shellcheck disable=SC2016 # expanded by the inner bash
out=$(env --default-signal=PIPE timeout "$RUN_TIMEOUT" bash -c \
    '"$1" run "$2" mem:// 2>"$3" | head -1; exit "${PIPESTATUS[0]}"' \
    _ "$CLI" "$TMP/forever.lua" "$TMP/err")
rc=$?
err=$(cat "$TMP/err")
want_rc 141
want_out 1
want_err_empty
end

summary
