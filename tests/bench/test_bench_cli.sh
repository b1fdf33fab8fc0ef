#!/usr/bin/env bash
# test_bench_cli.sh - `idprime bench` as a user runs it: bad options are
# refused with a message naming the option and exit code 2; the JSON is
# valid, has the names of docs/design.md and agrees with the table and the CSV; the plot
# is an SVG. Stores: mem:// (and the default SQLite file where the plugin is
# built). No timings are asserted here: they belong to the bench itself.
#
# usage: test_bench_cli.sh PATH/TO/idprime
# environment: IDPRIME_PLUGIN_PATH, the folder holding idprime-mem.so.
set -u

CLI=${1:?usage: test_bench_cli.sh PATH/TO/idprime}
: "${IDPRIME_PLUGIN_PATH:?set IDPRIME_PLUGIN_PATH to the plugin folder}"
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cli/check.sh
. "$HERE/../cli/check.sh"
CHECK="python3 $HERE/check_report.py"

unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home
SMALL=(--count 300 --param low_watermark=0 --no-progress)

# Two small strategies for the shoot-out: a fixed batch fetched when the
# pool is empty, and a policy choosing its batch and watermark.
mkdir -p "$TMP/strat"
cat >"$TMP/fixed.lua" <<'LUA'
return { defaults = { batch = 100, adaptive = 0, low_watermark = 0 } }
LUA
cp "$TMP/fixed.lua" "$TMP/strat/fixed.lua"
cat >"$TMP/strat/ahead.lua" <<'LUA'
return {
  defaults = { batch = 50, adaptive = 0 },
  policy = function(s) return 50, 25 end,
}
LUA
printf '0,400\n0.5,0\n1.0,0\n' >"$TMP/trace.csv"

# ---- bad usage: exit 2, a message naming what was wrong ------------------

# refused "WHAT" "TEXT THE MESSAGE MUST HOLD" ARGS...
refused() {
    local what=$1 text=$2
    shift 2
    begin "refused: $what"
    run "$CLI" bench "$@"
    want_rc 2
    want_err_has "$text"
    want_out_empty
    end
}

refused "an unknown workload" "--workload 'nope': expected files, burst, steady, hotpath, counters, bursty, ramp or trace" \
    --workload nope mem://
refused "--threads 0" "--threads '0': expected a whole number in 1..64" --threads 0 mem://
refused "--threads 65" "--threads '65': expected a whole number in 1..64" --threads 65 mem://
refused "a count that is not a number" "--count '1k': expected a whole number" --count 1k mem://
refused "--count 0" "--count '0'" -n 0 mem://
refused "--rtt-ms out of range" "--rtt-ms '60001': expected a whole number in 0..60000" \
    --rtt-ms 60001 mem://
refused "--rate with files" "--rate applies to --workload steady, bursty and ramp only" --rate 10 mem://
refused "--trace with steady" "--trace applies to --workload trace only" \
    --workload steady --trace x.csv mem://
refused "trace without --trace" "--workload trace needs --trace FILE.csv" \
    --workload trace mem://
refused "a list of workloads without --strategies" "--workload: a list needs --strategies" \
    --workload steady,ramp mem://
refused "a list of round trips without --strategies" "--rtt-ms: a list needs --strategies" \
    --rtt-ms 1,30 mem://
refused "--strategies with --config" "--config and --strategies" \
    --strategies "$TMP/fixed.lua" --config "$TMP/fixed.lua" mem://
refused "--strategies with hotpath" "--workload hotpath measures no batching strategy" \
    --strategies "$TMP/fixed.lua" --workload hotpath mem://
refused "a strategy that is not a script" "--strategies: $TMP/nope.lua" \
    --strategies "$TMP/nope.lua" mem://
refused "--chunks with burst" "--chunks applies to --workload files only" \
    --workload burst --chunks 2 mem://
refused "--roundtrips with files" "--roundtrips applies to --workload hotpath only" \
    --roundtrips 100 mem://
refused "--count with steady" "--count applies to --workload files, burst, hotpath and counters only" \
    --workload steady --count 5 mem://
refused "a steady rate below the threads" "--rate 2 is below --threads 4" \
    --workload steady --rate 2 --threads 4 mem://
refused "a plot that is not SVG" "--plot 'out.png': the plot is an SVG" --plot out.png mem://
refused "--param without =" "--param 'batch': expected KEY=VALUE" --param batch mem://
refused "--param with &" "one KEY=VALUE per --param" --param 'a=1&b=2' mem://
refused "an unknown option" "unknown option '--frobnicate'" --frobnicate mem://
refused "an option without its value" "option '--json' needs a value" mem:// --json
refused "an argument that is not a URI" "unexpected argument 'inode' (expected a store URI" \
    mem:// inode
refused "an unknown URI parameter, before any run" "bogus" "mem://?bogus=1"
refused "a --param out of range" "batch" --param batch=0 mem://
refused "a round trip asked of a store not on 127.0.0.1" \
    "the delay proxy forwards to 127.0.0.1 only" --rtt-ms 5 redis://10.255.255.1:6379

begin "--help prints the options on stdout"
run "$CLI" bench --help
want_rc 0
for o in --workload --count --chunks --rate --seconds --threads --rtt-ms \
         --no-baseline --param --json --csv --plot --trace --strategies; do
    want_out_match "^  (-[a-z], )?$o"
done
end

begin "an output file that cannot be written fails before any run (exit 1)"
run "$CLI" bench "${SMALL[@]}" --json "$TMP/no/such/dir/o.json" mem://
want_rc 1
want_err_has "--json: cannot write $TMP/no/such/dir/o.json"
want_out_empty
end

# ---- the reports ----------------------------------------------------------

begin "files on mem: JSON valid, docs/design.md's names, agrees with the table and CSV; SVG plot"
run "$CLI" bench "${SMALL[@]}" --json "$TMP/f.json" --csv "$TMP/f.csv" \
    --plot "$TMP/f.svg" mem://
want_rc 0
printf '%s\n' "$out" >"$TMP/f.txt"
check=$($CHECK "$TMP/f.json" "$TMP/f.txt" "$TMP/f.csv" "$TMP/f.svg" 2>&1) ||
    why "reports disagree: $check"
# 300 files at low_watermark=0: inode 2 fetches of 256, chunk 1 of 2048;
# the baseline one round trip per ID; the store's count agrees.
want_out_match '^mem +files +batched +256 +1 .* 600 .* 3 +3 +3 '
want_out_match '^mem +files +baseline +1 +1 .* 600 .* 600 +600 +600 '
want_out_match '^mem files: .* store round trips 600 -> 3 \(inode 2 \+ chunk 1\)$'
end

begin "JSON on stdout with --json -: the table goes to stderr"
run "$CLI" bench "${SMALL[@]}" --no-baseline --json - mem://
want_rc 0
printf '%s\n' "$out" >"$TMP/s.json"
printf '%s\n' "$err" >"$TMP/s.txt"
check=$($CHECK "$TMP/s.json" "$TMP/s.txt" 2>&1) || why "reports disagree: $check"
end

for w in burst steady hotpath counters; do
    case $w in
    burst) args=(--count 20000 --threads 2) ;;
    steady) args=(--rate 2000 --seconds 1 --threads 2) ;;
    hotpath) args=(--count 20000 --threads 2) ;;
    counters) args=(--count 3000) ;;
    esac
    begin "$w on mem: JSON valid and agrees with the table"
    run "$CLI" bench --workload $w "${args[@]}" --no-progress \
        --json "$TMP/$w.json" --csv "$TMP/$w.csv" --plot "$TMP/$w.svg" mem://
    want_rc 0
    printf '%s\n' "$out" >"$TMP/$w.txt"
    check=$($CHECK "$TMP/$w.json" "$TMP/$w.txt" "$TMP/$w.csv" "$TMP/$w.svg" 2>&1) ||
        why "reports disagree: $check"
    end
done

begin "counters on mem: every counter served its one ID, and the JSON says so"
run "$CLI" bench --workload counters --count 3000 --no-progress --json "$TMP/cn.json" mem://
want_rc 0
want_out_match '^mem counters: 3000 counters, one ID each, in [0-9.]+ s .*idp_open \+ idp_close [0-9.]+ us$'
python3 - "$TMP/cn.json" <<'PY' || why "counters JSON: $(python3 - "$TMP/cn.json" <<<'' 2>&1)"
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
assert r["workload"] == "counters" and r["ids"] == 3000, r
assert r["rss_growth_bytes"] >= 0 and r["metrics_bytes"] > 0 and r["open_close_us"] > 0, r
PY
end

begin "hotpath reports next() beside the atomic fetch-add"
run "$CLI" bench --workload hotpath --count 20000 --no-progress --json - mem://
want_rc 0
want_out_match '"atomic_ids_per_s":[0-9]'
want_err_has "next/atomic"
end

begin "--metrics writes the last batched run's Prometheus text"
run "$CLI" bench "${SMALL[@]}" --metrics "$TMP/m.prom" mem://
want_rc 0
want_file_line "$TMP/m.prom" "meta_inode_prime_calls_total 2"
end

# ---- the shoot-out ----------------------------------------------------------

# shootout NAME URI...: two strategies, steady and trace at 0 and 1 ms
shootout() {
    local name=$1
    shift
    run "$CLI" bench --strategies "$TMP"/strat/*.lua --no-progress \
        --workload steady,trace --trace "$TMP/trace.csv" --rate 400 \
        --seconds 1 --rtt-ms 0,1 --json "$TMP/$name.json" \
        --csv "$TMP/$name.csv" --plot "$TMP/$name.svg" "$@"
}

begin "--strategies on mem: every strategy x workload x round trip, in the reports"
shootout so mem://so
want_rc 0
printf '%s\n' "$out" >"$TMP/so.txt"
check=$($CHECK "$TMP/so.json" "$TMP/so.txt" "$TMP/so.csv" "$TMP/so.svg" 2>&1) ||
    why "reports disagree: $check"
python3 - "$TMP/so.json" <<'PY' || why "shoot-out JSON: $(python3 - "$TMP/so.json" 2>&1 <<<'')"
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
seen = {(r["strategy"], r["workload"], r["rtt_ms_asked"]) for r in runs}
want = {(s, w, t) for s in ("ahead", "fixed") for w in ("steady", "trace")
        for t in (0, 1)}
assert seen == want and len(runs) == 8, seen
for r in runs:
    # steady: 400 IDs/s for 1 s; the trace: 400 IDs/s for 0.5 s; give-back
    # leaves nothing wasted; the pool is at risk
    n = 400 if r["workload"] == "steady" else 200
    assert r["ids"] == n and r["metaprime"] == 1, r
    assert r["wasted_ids"] == 0, r
    assert r["roundtrips_store"] == r["roundtrips_engine"], r
    if r["strategy"] == "fixed":
        # fetches of 100, used up: nothing held at the end
        assert r["roundtrips_engine"] == n // 100 and r["at_risk_ids"] == 0, r
    else:
        # fetches of 50, the next at 25 left: one batch ahead at the end
        assert r["at_risk_ids"] == 50, r
PY
want_out_match ' ahead$'
want_out_match ' fixed$'
end

if "$CLI" plugins 2>/dev/null | grep -q '^sqlite '; then
    begin "--strategies on sqlite: the store's own count, the fields in the JSON"
    shootout sq "sqlite://$TMP/so.db"
    want_rc 0
    printf '%s\n' "$out" >"$TMP/sq.txt"
    check=$($CHECK "$TMP/sq.json" "$TMP/sq.txt" "$TMP/sq.csv" "$TMP/sq.svg" 2>&1) ||
        why "reports disagree: $check"
    python3 - "$TMP/sq.json" <<'PY' || why "sqlite shoot-out JSON"
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
assert len(runs) == 8 and all(r["store"] == "sqlite" for r in runs), runs
assert all(r["wasted_ids"] == 0 and r["ids"] in (200, 400) for r in runs), runs
assert all(r["roundtrips_store"] == r["roundtrips_engine"] for r in runs), runs
PY
    end
fi

if "$CLI" plugins 2>/dev/null | grep -q '^sqlite '; then
    begin "no URI: the embedded SQLite default store, counted by the store"
    run "$CLI" bench "${SMALL[@]}" --json "$TMP/d.json"
    want_rc 0
    want_out_match '^# sqlite://'
    want_out_match '^sqlite +files +batched +256 .* 3 +3 +3 '
    printf '%s\n' "$out" >"$TMP/d.txt"
    check=$($CHECK "$TMP/d.json" "$TMP/d.txt" 2>&1) || why "reports disagree: $check"
    end
fi

summary
