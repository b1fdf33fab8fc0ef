# check.sh - the small harness the shell suites share (sourced, not run).
#
# One check is one promise of the contract:
#
#   begin "next -n 5 prints 1..5"
#   run "$CLI" next mem:// c -n 5
#   want_rc 0
#   want_out "$(printf '1\n2\n3\n4\n5')"
#   end
#
# begin names the check; run captures exit code, stdout and stderr (each
# command is bounded by RUN_TIMEOUT seconds so a hang fails one check instead
# of the whole suite); want_* add a reason to the current check when the
# result differs; end prints one line, "ok" or "FAIL", with the reasons and
# the command's output under a failure. summary prints "N passed, M failed"
# and returns non-zero when any check failed.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/idprime-test.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

RUN_TIMEOUT=${RUN_TIMEOUT:-30}
n_pass=0
n_fail=0
check_name=
reasons=()
cmd=
rc=
out=
err=

begin() {
    check_name=$1
    reasons=()
    cmd=
    rc=
    out=
    err=
}

# run CMD [ARGS...]: runs it with stdin from /dev/null.
run() {
    cmd=$*
    timeout "$RUN_TIMEOUT" "$@" </dev/null >"$TMP/out" 2>"$TMP/err"
    rc=$?
    out=$(cat "$TMP/out")
    err=$(cat "$TMP/err")
    if [ "$rc" -eq 124 ]; then
        reasons+=("did not finish within ${RUN_TIMEOUT}s")
    fi
}

# why TEXT: adds a reason of the test's own.
why() { reasons+=("$1"); }

want_rc() {
    [ "$rc" = "$1" ] || reasons+=("exit code $rc, want $1")
}

# want_out TEXT: stdout is exactly TEXT (trailing newlines ignored).
want_out() {
    [ "$out" = "$1" ] || reasons+=("stdout is not exactly: $(printf '%q' "$1")")
}

want_out_empty() {
    [ -z "$out" ] || reasons+=("stdout is not empty")
}

# want_out_line TEXT: stdout holds a line exactly TEXT.
want_out_line() {
    grep -qxF -- "$1" <<<"$out" || reasons+=("stdout has no line '$1'")
}

# want_out_match ERE: stdout has a line matching the extended regex.
want_out_match() {
    grep -qE -- "$1" <<<"$out" || reasons+=("stdout has no line matching /$1/")
}

want_err_empty() {
    [ -z "$err" ] || reasons+=("stderr is not empty")
}

# want_err_has TEXT...: stderr holds each TEXT (fixed strings).
want_err_has() {
    local s
    for s in "$@"; do
        grep -qF -- "$s" <<<"$err" || reasons+=("stderr does not mention '$s'")
    done
}

# want_err_match ERE: stderr matches the extended regex (case-insensitive).
want_err_match() {
    grep -qiE -- "$1" <<<"$err" || reasons+=("stderr does not match /$1/i")
}

# want_file_line FILE TEXT: FILE holds a line exactly TEXT.
want_file_line() {
    if [ ! -f "$1" ]; then
        reasons+=("no file $1")
    elif ! grep -qxF -- "$2" "$1"; then
        reasons+=("$1 has no line '$2'")
    fi
}

end() {
    if [ ${#reasons[@]} -eq 0 ]; then
        n_pass=$((n_pass + 1))
        echo "ok   - $check_name"
        return
    fi
    n_fail=$((n_fail + 1))
    echo "FAIL - $check_name"
    local r
    for r in "${reasons[@]}"; do
        echo "         $r"
    done
    if [ -n "$cmd" ]; then
        echo "         command: $cmd"
        echo "         exit code: $rc"
        [ -z "$out" ] || sed -n '1,15s/^/         stdout| /p' <<<"$out"
        [ -z "$err" ] || sed -n '1,15s/^/         stderr| /p' <<<"$err"
    fi
}

summary() {
    echo "$n_pass passed, $n_fail failed"
    [ "$n_fail" -eq 0 ]
}
