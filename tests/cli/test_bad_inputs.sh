#!/usr/bin/env bash
# test_bad_inputs.sh - keeps docs/bad-inputs.md honest. Every row of its
# tables is rerun here as written: the command in the second column, in a
# fresh folder holding the files of the page's "files the examples use"
# section, with `idprime` on PATH. The exit code must be the one the row
# shows, and each `line` the row shows must be a whole line of stderr
# ("…" in a line stands for machine-specific text; "no stderr" means none).
# The rows and the files come from the page itself, so a message that
# changes fails here until the page shows what users now see.
#
# usage: test_bad_inputs.sh [PATH/TO/idprime [PATH/TO/bad-inputs.md]]
#        test_bad_inputs.sh --show PATH/TO/idprime 'COMMAND'
#          runs one command in the same setting and prints its exit code,
#          stdout and stderr: how to refresh a row after a message changed.
# environment: IDPRIME_CLI (when no path is given), IDPRIME_PLUGIN_PATH
# (the build's plugin folder), IDPRIME_TEST_PLUGIN_DIR (build/tests/plugins;
# default: beside the plugin folder).
set -u

show=
if [ "${1:-}" = --show ]; then
    show=${3:?usage: test_bad_inputs.sh --show PATH/TO/idprime COMMAND}
    shift
fi
CLI=${1:-${IDPRIME_CLI:-}}
[ -n "$CLI" ] || { echo "usage: test_bad_inputs.sh PATH/TO/idprime (or set IDPRIME_CLI)" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
DOC=${2:-$HERE/../../docs/bad-inputs.md}
[ -n "$show" ] && DOC=$HERE/../../docs/bad-inputs.md
: "${IDPRIME_PLUGIN_PATH:?set IDPRIME_PLUGIN_PATH to the plugin folder}"
TEST_PLUGINS=${IDPRIME_TEST_PLUGIN_DIR:-$(dirname "${IDPRIME_PLUGIN_PATH%%:*}")/tests/plugins}
# The rows run in folders of their own: every folder given must be absolute.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
abs_path=
IFS=: read -ra dirs <<<"$IDPRIME_PLUGIN_PATH"
for d in "${dirs[@]}"; do
    [ -n "$d" ] && abs_path=${abs_path:+$abs_path:}$(absolute "$d")
done
export IDPRIME_PLUGIN_PATH=$abs_path
TEST_PLUGINS=$(absolute "$TEST_PLUGINS")
export TEST_PLUGINS
# shellcheck source-path=SCRIPTDIR source=check.sh
. "$HERE/check.sh"

# The setting the page states: no default URI, the default SQLite file in
# the scratch folder, and `idprime` meaning the binary under test.
unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home
mkdir -p "$TMP/bin" "$XDG_DATA_HOME" "$HOME"
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
if [ ! -x "$CLI" ]; then
    echo "FAIL - $CLI is not an executable: build idprime-cli first"
    exit 1
fi
ln -s "$CLI" "$TMP/bin/idprime"
export PATH=$TMP/bin:$PATH

# ---- the files: "**`NAME`**" followed by a fenced block ---------------------

FIX=$TMP/fixtures
mkdir -p "$FIX"
if [ ! -f "$DOC" ]; then
    echo "FAIL - no page $DOC"
    exit 1
fi
awk -v dir="$FIX" '
    name != "" && infence == 0 && /^```/ { infence = 1; next }
    infence && /^```$/ { close(dir "/" name); infence = 0; name = ""; next }
    infence { print > (dir "/" name); next }
    /^\*\*`[A-Za-z0-9._-]+`\*\*$/ { name = substr($0, 4, length($0) - 6); next }
    { name = "" }
' "$DOC"
if [ -f "$FIX/setup.sh" ]; then
    if ! msg=$(cd "$FIX" && bash -eu setup.sh 2>&1); then
        echo "FAIL - setup.sh from the page failed (TEST_PLUGINS=$TEST_PLUGINS): $msg"
        exit 1
    fi
fi

# in_row_dir CMD: runs CMD (a bash command line) in a fresh copy of the
# files, like check.sh's run.
in_row_dir() {
    rm -rf "$TMP/row"
    cp -a "$FIX" "$TMP/row"
    local here=$PWD
    cd "$TMP/row" || return
    run bash -c "$1"
    cd "$here" || return
    rm -rf "$TMP/row"
}

if [ -n "$show" ]; then
    in_row_dir "$show"
    echo "exit $rc"
    # shellcheck disable=SC2001
    [ -z "$out" ] || sed 's/^/stdout| /' <<<"$out"
    # shellcheck disable=SC2001
    [ -z "$err" ] || sed 's/^/stderr| /' <<<"$err"
    exit 0
fi

# ---- the rows ----------------------------------------------------------------

# line_matches PATTERN LINE: LINE is PATTERN, where each "…" in PATTERN
# stands for any text.
line_matches() {
    local pat=$1 s=$2 piece
    if [[ $pat != *…* ]]; then
        [[ $s == "$pat" ]]
        return
    fi
    piece=${pat%%…*}
    [[ $s == "$piece"* ]] || return 1
    s=${s#"$piece"}
    pat=${pat#*…}
    while [[ $pat == *…* ]]; do
        piece=${pat%%…*}
        [[ $s == *"$piece"* ]] || return 1
        s=${s#*"$piece"}
        pat=${pat#*…}
    done
    [[ $s == *"$pat" ]]
}

# want_err_line PATTERN: some line of stderr matches PATTERN.
want_err_line() {
    local l
    while IFS= read -r l; do
        line_matches "$1" "$l" && return
    done <<<"$err"
    reasons+=("stderr has no line '$1'")
}

# The plugins this build has: a row that needs a store the build lacks is
# skipped, not failed.
have_plugins=$("$CLI" plugins 2>/dev/null | awk 'NR > 1 { print $1 }')
needs_missing_plugin() {
    local s
    for s in redis memcached sqlite; do
        if [[ $1 == *"$s://"* || $1 == *"${s}3://"* ]] &&
            ! grep -qx "$s" <<<"$have_plugins"; then
            echo "$s"
            return 0
        fi
    done
    return 1
}

# The closed port the "store is down" rows use: nothing may listen there.
port1_open=0
if (exec 3<>/dev/tcp/127.0.0.1/1) 2>/dev/null; then
    port1_open=1
fi

n_rows=0
n_skip=0
SEP=$'\x01'
# shellcheck disable=SC2016 # backquotes, not expansions
re_cmd='^ *`(.*)` *$'
re_exit='exit \*\*([0-9]+)\*\*'
# shellcheck disable=SC2016
re_span='`([^`]*)`'
while IFS= read -r line; do
    # | kind | `command` | exit **N**: `line` ... |, with \| for | inside
    [[ $line == '| '* ]] || continue
    line=${line//\\|/$SEP}
    IFS='|' read -r _ kind cmdcell seen _ <<<"$line"
    [[ $cmdcell =~ $re_cmd ]] || continue
    row_cmd=${BASH_REMATCH[1]//$SEP/|}
    [[ $seen =~ $re_exit ]] || continue
    want=${BASH_REMATCH[1]}
    seen=${seen//$SEP/|}
    kind=$(sed 's/^ *//; s/ *$//' <<<"$kind")
    n_rows=$((n_rows + 1))

    if missing=$(needs_missing_plugin "$row_cmd"); then
        echo "skip - $kind: $row_cmd (this build has no $missing plugin)"
        n_skip=$((n_skip + 1))
        continue
    fi
    begin "$kind: $row_cmd"
    if [[ $row_cmd == *127.0.0.1:1[!0-9]* || $row_cmd == *127.0.0.1:1 ]] && [ "$port1_open" = 1 ]; then
        why "something listens on 127.0.0.1:1, the page's closed port"
        end
        continue
    fi
    in_row_dir "$row_cmd"
    want_rc "$want"
    if [[ $seen == *'no stderr'* ]]; then
        want_err_empty
    fi
    rest=$seen
    while [[ $rest =~ $re_span ]]; do
        want_err_line "${BASH_REMATCH[1]}"
        rest=${rest#*"${BASH_REMATCH[0]}"}
    done
    # a crash or a sanitizer report is never what the page shows
    grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer|Segmentation' <<<"$err" &&
        why "stderr reports a crash or a sanitizer finding"
    end
done <"$DOC"

begin "the page has rows to check"
[ "$n_rows" -ge 50 ] || why "only $n_rows rows found in $DOC (is the table format intact?)"
end
echo "$n_rows rows, $n_skip skipped"
summary
