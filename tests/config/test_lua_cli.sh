#!/usr/bin/env bash
# test_lua_cli.sh - the Lua layer as a user drives it from the shell:
# bench/sweep.lua under the stock interpreter, `idprime run`, and
# --config FILE.lua on the counter commands. Every store is mem:// (each
# command is a new process, so every counter starts at 0).
#
# usage: test_lua_cli.sh LUA5.4 PATH/TO/idprime SOURCE_DIR
# environment: LUA_CPATH at the built module, IDPRIME_PLUGIN_PATH, and
# LUA_PRELOAD, a sanitizer runtime lua5.4 needs first (sanitizer builds).
set -u

LUA=${1:?usage: test_lua_cli.sh LUA5.4 PATH/TO/idprime SOURCE_DIR}
CLI=${2:?usage: test_lua_cli.sh LUA5.4 PATH/TO/idprime SOURCE_DIR}
SRC=${3:?usage: test_lua_cli.sh LUA5.4 PATH/TO/idprime SOURCE_DIR}
SWEEP=$SRC/bench/sweep.lua
LUA_RUN=(env "LD_PRELOAD=${LUA_PRELOAD:-}" "$LUA")
# shellcheck source-path=SCRIPTDIR source=../cli/check.sh
. "$SRC/tests/cli/check.sh"

unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home
cd "$TMP" || exit 1

CSV_HEAD=uri,store,batch,low_watermark,ids,wall_s,ids_per_s,roundtrips_engine,roundtrips_store,prefetch_async,waited_calls,unused_ids

# ---- bench/sweep.lua under lua5.4 ---------------------------------------------

begin "sweep.lua runs every batch x watermark and writes the CSV"
run "${LUA_RUN[@]}" "$SWEEP" -n 500 --batches 8,64 --watermarks 0,50 \
    --csv "$TMP/sweep.csv" 'mem://sweep?delay_ms=0'
want_rc 0
want_out_match '^uri +batch +wm +wall_s +ids/s'
[ "$(grep -c '^mem://sweep' <<<"$out")" = 4 ] || why "the table has not 4 rows"
want_file_line "$TMP/sweep.csv" "$CSV_HEAD"
[ "$(wc -l <"$TMP/sweep.csv" 2>/dev/null)" = 5 ] || why "the CSV has not 5 lines"
# batch 8 over 500 IDs: 63 round trips; batch 64: 8 (with low_watermark=0:
# at 50 a 9th may be prefetched, depending on when the stats are read)
grep -q '^mem://sweep?delay_ms=0,mem,8,0,500,[0-9.]*,[0-9.]*,63,63,' "$TMP/sweep.csv" ||
    why "no CSV row with batch 8 and 63 round trips"
grep -q '^mem://sweep?delay_ms=0,mem,64,0,500,[0-9.]*,[0-9.]*,8,8,' "$TMP/sweep.csv" ||
    why "no CSV row with batch 64 and 8 round trips"
end

begin "sweep.lua refuses a bad option with exit 2"
run "${LUA_RUN[@]}" "$SWEEP" --batches x
want_rc 2
want_err_has "--batches: 'x' is not a whole number" "usage:"
end

begin "sweep.lua reports a store it cannot open with exit 1"
run "${LUA_RUN[@]}" "$SWEEP" -n 10 --csv - 'nosuch://x'
want_rc 1
want_err_has "no plugin for scheme 'nosuch'"
end

# ---- idprime run --------------------------------------------------------------


cat >"$TMP/args.lua" <<'EOF'
local idp = require "idprime"
local n = select("#", ...)
print(n, ...)
print(arg[0], arg[1], arg[n])
local c <close> = assert(idp.open("mem://run"))
local k = assert(c:counter("c"))
print(k:next(), k:next(), k:next())
EOF
cat >"$TMP/fails.lua" <<'EOF'
local x = 1
error("it went wrong")
EOF
printf 'local x = \n' >"$TMP/syntax.lua"
cat >"$TMP/cfg.lua" <<'EOF'
return {
  uri = "mem://fromconfig",
  defaults = { batch = 10, low_watermark = 0 },
  counters = { inode = { batch = 8 } },
  policy = function(s) if s.fetches < 3 then return s.batch * 2 end end,
}
EOF
cat >"$TMP/usecfg.lua" <<'EOF'
local idp = require "idprime"
local c <close> = assert(idp.open())
local k = assert(c:counter("c"))
for _ = 1, 110 do assert(k:next()) end
print(c:store(), k:stats().batch, k:stats().prime_calls)
EOF

    begin "run passes ARGS and preloads the module"
    run "$CLI" run "$TMP/args.lua" a -n 3
    want_rc 0
    want_out "$(printf '3\ta\t-n\t3\n%s\ta\t3\n1\t2\t3' "$TMP/args.lua")"
    want_err_empty
    end

    begin "run --config: idp.open() takes the config's uri, settings, policy"
    run "$CLI" run --config "$TMP/cfg.lua" "$TMP/usecfg.lua"
    want_rc 0
    want_out "$(printf 'mem\t40\t4')"
    end

    begin "run: a script error is exit 1 with FILE:LINE and a traceback"
    run "$CLI" run "$TMP/fails.lua"
    want_rc 1
    want_err_has "idprime run: " "fails.lua:2: it went wrong" "stack traceback"
    end

    begin "run: a script that does not load is exit 2 with FILE:LINE"
    run "$CLI" run "$TMP/syntax.lua"
    want_rc 2
    want_err_has "syntax.lua:2:"
    run "$CLI" run "$TMP/missing.lua"
    want_rc 2
    want_err_has "cannot open" "missing.lua"
    run "$CLI" run
    want_rc 2
    want_err_has "missing SCRIPT.lua"
    end

    begin "run bench/sweep.lua writes the CSV to stdout with --csv -"
    run "$CLI" run "$SWEEP" -n 200 --batches 50 --watermarks 25 --csv - mem://
    want_rc 0
    want_out_line "$CSV_HEAD"
    want_out_match '^mem://,mem,50,25,200,'
    end

# ---- --config on the counter commands ------------------------------------------


cat >"$TMP/escape.lua" <<'EOF'
return {
  uri = io.read("a"),
}
EOF
cat >"$TMP/range.lua" <<'EOF'
return {
  counters = {
    inode = { batch = 0 },
  },
}
EOF
printf 'return { defaults = { frobnicate = 1 } }\n' >"$TMP/unknown.lua"

    begin "next --config takes the store and settings from the script"
    run "$CLI" next --config "$TMP/cfg.lua" inode -n 3 --metrics -
    want_rc 0
    want_out_line 1
    want_out_line 3
    want_out_line "idprime_batch_size{counter=\"inode\"} 16"
    want_out_line "meta_inode_prime_calls_total 1"
    end

    begin "a URI beside --config wins, and so do its parameters"
    run "$CLI" next --config "$TMP/cfg.lua" 'mem://other?inode_batch=5' inode --metrics -
    want_rc 0
    want_out_line 1
    want_out_line "idprime_batch_size{counter=\"inode\"} 10"
    want_out_match "^idprime_fetch_seconds_count 1$"
    end

    begin "the policy of --config sets the batch (10, 20, 40, then 40)"
    run "$CLI" next --config "$TMP/cfg.lua" c -n 110 --metrics -
    want_rc 0
    want_out_line 110
    want_out_line "idprime_batch_size{counter=\"c\"} 40"
    want_out_line "meta_c_prime_calls_total 4"
    end

    begin "incr and get take --config too"
    run "$CLI" incr --config "$TMP/cfg.lua" c 7
    want_rc 0
    want_out 7
    run "$CLI" get --config "$TMP/cfg.lua" c
    want_rc 0
    want_out 0
    end

    begin "a bad config is exit 2 naming FILE:LINE"
    run "$CLI" next --config "$TMP/range.lua" mem:// inode
    want_rc 2
    want_err_has "idprime next: " "range.lua:3: counters.inode.batch: 0 is out of range"
    want_out_empty
    run "$CLI" next --config "$TMP/syntax.lua" mem:// inode
    want_rc 2
    want_err_has "syntax.lua:2:"
    run "$CLI" next --config "$TMP/missing.lua" mem:// inode
    want_rc 2
    want_err_has "missing.lua: cannot read"
    end

    begin "a config that reaches for io is refused, exit 2"
    run "$CLI" incr --config "$TMP/escape.lua" mem:// c 1
    want_rc 2
    want_err_has "escape.lua:2: io is not available in a config script"
    end

    begin "a plugin key the store does not know is exit 2, naming the config"
    run "$CLI" next --config "$TMP/unknown.lua" mem:// c
    want_rc 2
    want_err_has "unknown parameter 'frobnicate'" "(with --config $TMP/unknown.lua)"
    end

summary
