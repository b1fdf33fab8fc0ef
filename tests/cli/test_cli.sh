#!/usr/bin/env bash
# test_cli.sh - the idprime command as a user runs it: output, exit codes
# (0 success, 1 failure of the work, 2 bad usage), messages that name the
# fault, and --metrics. Every store is mem://, the in-process store: each
# command is a new process, so every counter starts at 0 in every run.
#
# usage: test_cli.sh PATH/TO/idprime
# environment: IDPRIME_PLUGIN_PATH, the folder holding idprime-mem.so.
set -u

CLI=${1:?usage: test_cli.sh PATH/TO/idprime}
PLUGINS=${IDPRIME_PLUGIN_PATH:?set IDPRIME_PLUGIN_PATH to the plugin folder}
# shellcheck source-path=SCRIPTDIR source=check.sh
. "$(dirname "$0")/check.sh"

# Nothing here may reach a real store or the user's files: no default URI,
# and the default SQLite file, should a command fall back to it, lands in
# the scratch folder.
unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home
ONE_TO_FIVE=$(printf '1\n2\n3\n4\n5')

# ---- version, help, plugins ----------------------------------------------

begin "--version prints the version"
run "$CLI" --version
want_rc 0
want_out_match '^idprime [0-9]+\.[0-9]+\.[0-9]+$'
end

begin "--help prints the commands on stdout"
run "$CLI" --help
want_rc 0
for c in plugins next incr get migrate; do
    want_out_match "^  $c "
done
end

begin "next --help lists the engine's URI parameters"
run "$CLI" next --help
want_rc 0
want_out_match '^usage: idprime next'
for k in metaprime batch low_watermark NAME_batch timeout_ms prefix; do
    want_out_match "^ +$k +"
done
want_out_match '^ +batch +1\.\.1073741824 '
end

begin "plugins lists mem with ABI 2 and its path"
run "$CLI" plugins
want_rc 0
want_out_match '^NAME +SCHEMES +ABI +PATH$'
want="mem mem 2 ${PLUGINS%/}/idprime-mem.so"
[ "$(grep '^mem ' <<<"$out" | tr -s ' ')" = "$want" ] ||
    why "no single line 'mem mem 2 PATH' (columns apart) with PATH ${PLUGINS%/}/idprime-mem.so"
end

# ---- next, incr, get -------------------------------------------------------

begin "next -n 5 prints 1..5 one a line"
run "$CLI" next mem:// c -n 5
want_rc 0
want_out "$ONE_TO_FIVE"
want_err_empty
end

begin "next without -n prints one ID"
run "$CLI" next mem:// c
want_rc 0
want_out 1
end

begin "next --count 3 is -n 3"
run "$CLI" next mem:// c --count 3
want_rc 0
want_out "$(printf '1\n2\n3')"
end

begin "incr 10 on a fresh counter prints 10"
run "$CLI" incr mem:// c 10
want_rc 0
want_out 10
want_err_empty
end

begin "incr takes the largest DELTA, 2^63-1"
run "$CLI" incr mem:// c 9223372036854775807
want_rc 0
want_out 9223372036854775807
end

begin "get of a counter never seen prints 0"
run "$CLI" get mem:// c
want_rc 0
want_out 0
want_err_empty
end

begin "without a URI the store is \$IDPRIME_URI"
run env IDPRIME_URI=mem:// "$CLI" next c -n 3
want_rc 0
want_out "$(printf '1\n2\n3')"
end

begin "a URI on the command line wins over \$IDPRIME_URI"
run env IDPRIME_URI=nope://x "$CLI" next mem:// c
want_rc 0
want_out 1
end

# ---- bad usage: exit 2, a message naming the fault -------------------------

begin "unknown command: exit 2, named"
run "$CLI" frobnicate
want_rc 2
want_out_empty
want_err_has frobnicate
end

begin "no command at all: exit 2"
run "$CLI"
want_rc 2
want_out_empty
want_err_has usage:
end

begin "next without COUNTER: exit 2, says COUNTER is missing"
run "$CLI" next mem://
want_rc 2
want_out_empty
want_err_match 'missing.*COUNTER'
end

begin "next with an extra argument: exit 2, names it"
run "$CLI" next mem:// c extra
want_rc 2
want_out_empty
want_err_has extra
end

begin "next -n 0: exit 2, names -n and its range"
run "$CLI" next mem:// c -n 0
want_rc 2
want_out_empty
want_err_has -n 1..
end

begin "next -n abc: exit 2, names -n and the value"
run "$CLI" next mem:// c -n abc
want_rc 2
want_out_empty
want_err_has -n abc
end

begin "unknown URI parameter: exit 2, names the key"
run "$CLI" next 'mem://?bogus=1' c
want_rc 2
want_out_empty
want_err_has bogus
end

begin "URI value out of range: exit 2, names the key and the range"
run "$CLI" next 'mem://?batch=0' c
want_rc 2
want_out_empty
want_err_has batch 1..1073741824
end

begin "URI value not a number: exit 2, names the key"
run "$CLI" next 'mem://?timeout_ms=soon' c
want_rc 2
want_out_empty
want_err_has timeout_ms soon
end

begin "malformed URI mem:/x: exit 2, names the URI"
run "$CLI" next mem:/x c
want_rc 2
want_out_empty
want_err_has mem:/x
end

begin "bad counter name: exit 2, names the counter"
run "$CLI" next mem:// 'bad name'
want_rc 2
want_out_empty
want_err_has 'bad name'
end

begin "get of a bad counter name: exit 2"
run "$CLI" get mem:// 'bad name'
want_rc 2
want_out_empty
want_err_has 'bad name'
end

begin "incr DELTA 0: exit 2, names DELTA"
run "$CLI" incr mem:// c 0
want_rc 2
want_out_empty
want_err_has DELTA 1..
end

begin "incr DELTA 2^63: exit 2 (counters stay below 2^63)"
run "$CLI" incr mem:// c 9223372036854775808
want_rc 2
want_out_empty
want_err_has DELTA
end

begin "incr without DELTA: exit 2, says DELTA is missing"
run "$CLI" incr mem:// c
want_rc 2
want_out_empty
want_err_match 'missing.*DELTA'
end

begin "get without COUNTER: exit 2, says COUNTER is missing"
run "$CLI" get mem://
want_rc 2
want_out_empty
want_err_match 'missing.*COUNTER'
end

begin "unknown option: exit 2"
run "$CLI" next mem:// c --frobnicate
want_rc 2
want_out_empty
want_err_has frobnicate
end

begin "plugins takes no argument: exit 2"
run "$CLI" plugins extra
want_rc 2
want_out_empty
end

# ---- failure of the work: exit 1, a clear message ---------------------------

begin "unknown scheme: exit 1, names the scheme"
run "$CLI" next nope://x c
want_rc 1
want_out_empty
want_err_has "'nope'"
end

begin "a store slower than timeout_ms: exit 1, says it timed out"
run "$CLI" next 'mem://?delay_ms=50&timeout_ms=10' c
want_rc 1
want_out_empty
want_err_match 'time(d)? ?out|within 10 ms'
end

begin "--metrics to a folder that does not exist: exit 1, names the file"
run "$CLI" next mem:// c --metrics "$TMP/no/such/dir/m.prom"
want_rc 1
want_err_has "$TMP/no/such/dir/m.prom"
end

# run_to FILE CMD [ARGS...]: like run, with stdout going to FILE (a device
# such as /dev/full), so only the exit code and stderr are seen.
run_to() {
    local to=$1
    shift
    cmd="$* >$to"
    timeout "$RUN_TIMEOUT" "$@" </dev/null >"$to" 2>"$TMP/err"
    rc=$?
    out=
    err=$(cat "$TMP/err")
}

for args in "next mem:// c" "next mem:// c -n 100000" "incr mem:// c 7" \
            "get mem:// c"; do
    begin "${args%% *} to a full disk (/dev/full): exit 1, says why ($args)"
    # shellcheck disable=SC2086 # the words of $args are the arguments
    run_to /dev/full "$CLI" $args
    want_rc 1
    want_err_has "cannot write the output: No space left on device"
    end
done

begin "next into a closed pipe with SIGPIPE ignored: exit 1, no message"
cmd="trap '' PIPE; $CLI next mem:// c -n 100000 | head -1"
out=$(bash -c "trap '' PIPE; \"\$1\" next mem:// c -n 100000 2>\"\$2\" | head -1; exit \${PIPESTATUS[0]}" \
          _ "$CLI" "$TMP/err")
rc=$?
err=$(cat "$TMP/err")
want_rc 1
want_out 1
want_err_empty
end

# ---- metrics ---------------------------------------------------------------

have_promtool=1
command -v promtool >/dev/null 2>&1 || have_promtool=0

# promtool_ok FILE: promtool accepts FILE as Prometheus text exposition.
promtool_ok() {
    if [ "$have_promtool" = 0 ]; then
        why "promtool not found (Debian: apt-get install prometheus)"
        return
    fi
    local msg
    if ! msg=$(promtool check metrics <"$1" 2>&1); then
        why "promtool check metrics refused it: $(head -3 <<<"$msg")"
    fi
}

M=$TMP/metrics.prom
begin "--metrics FILE after next -n 5: 5 IDs served by 1 fetch, 0 errors"
rm -f "$M"
run "$CLI" next mem:// c -n 5 --metrics "$M"
want_rc 0
want_out "$ONE_TO_FIVE"
want_file_line "$M" 'meta_c_ids_served_total 5'
want_file_line "$M" 'meta_c_prime_calls_total 1'
want_file_line "$M" 'meta_prime_errors_total 0'
want_file_line "$M" 'meta_c_prefetch_async_total 0'
want_file_line "$M" 'idprime_batch_size{counter="c"} 256'
end

begin "promtool check metrics accepts the --metrics file"
if [ -f "$M" ]; then
    promtool_ok "$M"
else
    why "no metrics file from the previous check"
fi
end

begin "--metrics - prints the metrics on stdout after the IDs"
run "$CLI" next mem:// c -n 5 --metrics -
want_rc 0
[ "$(head -5 <<<"$out")" = "$ONE_TO_FIVE" ] || why "the first 5 lines are not 1..5"
tail -n +6 <<<"$out" >"$TMP/stdout.prom"
grep -qxF 'meta_c_ids_served_total 5' "$TMP/stdout.prom" ||
    why "no 'meta_c_ids_served_total 5' after the IDs"
promtool_ok "$TMP/stdout.prom"
end

begin "metaprime=0: one store round trip per ID"
run "$CLI" next 'mem://?metaprime=0' c -n 5 --metrics -
want_rc 0
want_out_line 'meta_c_prime_calls_total 5'
want_out_line 'meta_c_ids_served_total 5'
end

begin "c_batch=8 sets the batch of counter c only"
run "$CLI" next 'mem://?c_batch=8' c --metrics -
want_rc 0
want_out_line 'idprime_batch_size{counter="c"} 8'
end

begin "a timed-out fetch is counted in meta_prime_errors_total"
run "$CLI" next 'mem://?delay_ms=50&timeout_ms=10' c --metrics -
want_rc 1
want_out_line 'meta_prime_errors_total 1'
want_out_line 'meta_c_ids_served_total 0'
end

summary
