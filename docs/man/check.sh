#!/usr/bin/env bash
# check.sh - the man pages' tests (registered in docs/CMakeLists.txt).
#
#   check.sh lint PAGE...
#       mandoc -Tlint -W warning, and groff -ww (what man(1) runs) when it
#       is there, say nothing about any page; no @VAR@ is left unfilled.
#   check.sh cli IDPRIME CLI_SRC_DIR idprime.1
#       Every subcommand `idprime --help` lists has its subsection; every
#       long option of `idprime CMD --help` is in that subsection or in
#       COMMON OPTIONS; every long option of the getopt tables in the CLI's
#       source is in the page; and the page names no subcommand or option
#       (outside EXAMPLES) that the command does not have. Every engine
#       parameter of `idprime next --help` is in ENGINE PARAMETERS, and in
#       libidprime.3 when that page is given too.
#   check.sh api libidprime.3 idprime-lua.7 module.c HEADER...
#       Every function the headers declare is in the synopsis and the text
#       of libidprime.3, every idp_*() the pages name is declared, and the
#       Lua module's functions and methods (module.c's luaL_Reg tables) are
#       in idprime-lua.7 and the other way round.
#
# Prints one line per problem and exits 1 when there is any.
set -u

fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# The page as plain text, one paragraph a line as far as possible (a wide
# page: no option is ever broken across lines), overstrikes removed.
render() {
    mandoc -Tascii -O width=1000 "$1" | sed 's/.\x08//g'
}

# The text of section $2 (a line at column 0) of rendered page $1.
section() {
    awk -v s="$2" '/^[^ ]/ { on = ($0 == s); next } on' <<<"$1"
}

# The text of subsection $2 (a line indented by 3) of rendered page $1.
subsection() {
    awk -v s="   $2" '/^[^ ]/ || /^   [^ ]/ { on = ($0 == s); next } on' <<<"$1"
}

# Long options in text on stdin, one a line, sorted, unique.
long_opts() {
    grep -oE -- '(^|[^A-Za-z0-9-])--[a-z][a-z0-9-]*' | sed 's/^[^-]*//' |
        sort -u
}

# 0 when text $1 holds option $2 as a whole word.
has_opt() {
    grep -qE -- "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)" <<<"$1"
}

lint() {
    command -v mandoc >/dev/null ||
        { fail "mandoc not found (scripts/deps.sh installs it)"; return; }
    local page out rc
    for page in "$@"; do
        out=$(mandoc -Tlint -W warning "$page" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] || [ -n "$out" ]; then
            fail "mandoc -Tlint -W warning $page (exit $rc):"$'\n'"$out"
        fi
        if command -v groff >/dev/null; then
            out=$(groff -man -ww -z "$page" 2>&1)
            rc=$?
            if [ $rc -ne 0 ] || [ -n "$out" ]; then
                fail "groff -man -ww -z $page (exit $rc):"$'\n'"$out"
            fi
        fi
        out=$(grep -nE '@[A-Za-z_]+@' "$page") &&
            fail "$page: unfilled variables:"$'\n'"$out"
    done
    echo "linted: $*"
}

cli() {
    local exe=$1 src=$2 page=$3 page3=${4:-} text top cmds cmd help opt sub common
    text=$(render "$page") || { fail "cannot render $page"; return; }
    top=$("$exe" --help) || { fail "$exe --help failed"; return; }
    # "  next  [URI] COUNTER ...": the commands are the words at column 2
    cmds=$(grep -oE '^  [a-z][a-z0-9-]*' <<<"$top" | sed 's/^  //' | sort -u)
    [ -n "$cmds" ] || { fail "no command found in '$exe --help'"; return; }
    common=$(section "$text" "COMMON OPTIONS")
    local known
    known=$(long_opts <<<"$top")
    for cmd in $cmds; do
        sub=$(subsection "$text" "idprime $cmd")
        if [ -z "$sub" ]; then
            fail "idprime.1 has no subsection 'idprime $cmd' (COMMANDS)"
            continue
        fi
        help=$("$exe" "$cmd" --help </dev/null) ||
            { fail "$exe $cmd --help failed"; continue; }
        for opt in $(long_opts <<<"$help"); do
            known+=$'\n'$opt
            has_opt "$sub" "$opt" || has_opt "$common" "$opt" ||
                fail "idprime.1: '$cmd --help' shows $opt, missing from 'idprime $cmd' and COMMON OPTIONS"
        done
    done
    # the getopt tables: {"name", required_argument, ...}
    local table
    table=$(cat "$src"/*.c "$src"/*.h |
        grep -oE '\{"[a-z][a-z0-9-]*", *(no|required|optional)_argument' |
        sed -E 's/^\{"([^"]*)".*/--\1/' | sort -u)
    [ -n "$table" ] || fail "no getopt table found in $src"
    for opt in $table; do
        known+=$'\n'$opt
        has_opt "$text" "$opt" ||
            fail "idprime.1: $opt (a long option in $src) is not documented"
    done
    # and the other way round: what the page documents exists
    local subs
    subs=$(section "$text" COMMANDS | sed -n 's/^   idprime \([^ ]*\)$/\1/p')
    for cmd in $subs; do
        grep -qx -- "$cmd" <<<"$cmds" ||
            fail "idprime.1 documents 'idprime $cmd', which '$exe --help' does not list"
    done
    local documented
    documented=$(awk '/^[^ ]/ { skip = ($0 == "EXAMPLES") } !skip' <<<"$text" |
        long_opts)
    for opt in $documented; do
        grep -qx -- "$opt" <<<"$known" ||
            fail "idprime.1 documents $opt, which the command does not know"
    done
    # the engine's parameters: "  batch   1..1073741824 default ..."
    local keys key params text3=
    keys=$("$exe" next --help | sed -n '/^URI parameters/,$p' |
        grep -oE '^  [A-Za-z_]+' | sed 's/^  //')
    [ -n "$keys" ] || fail "no URI parameter in '$exe next --help'"
    params=$(section "$text" "ENGINE PARAMETERS")
    [ -n "$page3" ] && text3=$(render "$page3")
    for key in $keys; do
        grep -qE "(^|[^a-z_])$key([^a-z_]|\$)" <<<"$params" ||
            fail "idprime.1: parameter $key is not in ENGINE PARAMETERS"
        [ -z "$page3" ] || grep -qE "(^|[^a-z_])$key([^a-z_]|\$)" <<<"$text3" ||
            fail "libidprime.3: parameter $key is not documented"
    done
    echo "checked $(wc -w <<<"$cmds") commands, $(sort -u <<<"$known" | wc -l) long options, $(wc -w <<<"$keys") parameters"
}

api() {
    local page3=$1 page7=$2 module=$3
    shift 3
    local text3 text7 syn body fns fn named
    if ! text3=$(render "$page3") || ! text7=$(render "$page7"); then
        fail "cannot render the pages"
        return
    fi
    syn=$(section "$text3" SYNOPSIS)
    body=$(awk '/^[^ ]/ { skip = ($0 == "SYNOPSIS") } !skip' <<<"$text3")
    fns=$(cat "$@" | grep -E '^[a-z].*[ *]idp_[a-z_]+\(' |
        sed -E 's/^.*[ *](idp_[a-z_]+)\(.*$/\1/' | sort -u)
    [ -n "$fns" ] || { fail "no function found in $*"; return; }
    for fn in $fns; do
        grep -q -- "$fn(" <<<"$syn" ||
            fail "libidprime.3: $fn is not in the SYNOPSIS"
        grep -qE -- "(^|[^a-z_])$fn([^a-z_]|\$)" <<<"$body" ||
            fail "libidprime.3: $fn is not described (only in the SYNOPSIS)"
    done
    named=$(printf '%s\n%s\n' "$text3" "$text7" |
        grep -oE '(^|[^a-z_.:])idp_[a-z_]+\(' | sed -E 's/^[^i]*//; s/\($//' |
        sort -u)
    for fn in $named; do
        grep -qx -- "$fn" <<<"$fns" ||
            fail "the pages name $fn(), which no header declares"
    done

    # module.c: static const luaL_Reg client_methods[] = {{"counter", ...
    local regs kind name
    regs=$(awk '
        /luaL_Reg (client_methods|counter_methods|funcs)\[\]/ {
            t = $0; sub(/.*luaL_Reg /, "", t); sub(/\[.*/, "", t) }
        t != "" {
            line = $0
            while (match(line, /\{"[a-z_]+",/)) {
                print t, substr(line, RSTART + 2, RLENGTH - 4)
                line = substr(line, RSTART + RLENGTH)
            }
        }
        t != "" && /};/ { t = "" }' "$module")
    [ -n "$regs" ] || { fail "no luaL_Reg table found in $module"; return; }
    local lua_known=
    while read -r kind name; do
        case $kind in
            client_methods) name="client:$name" ;;
            counter_methods) name="counter:$name" ;;
            funcs) name="idp.$name" ;;
        esac
        lua_known+="$name"$'\n'
        grep -qF -- "$name(" <<<"$text7" ||
            fail "idprime-lua.7: $name() is not documented"
    done <<<"$regs"
    if grep -q 'setfield(L, -2, "version")' "$module"; then
        grep -qF 'idp.version' <<<"$text7" ||
            fail "idprime-lua.7: idp.version is not documented"
    fi
    for name in $(grep -oE '(client:|counter:|idp\.)[a-z_]+\(' <<<"$text7" |
                  sed 's/($//' | sort -u); do
        grep -qx -- "$name" <<<"$lua_known" ||
            fail "idprime-lua.7 documents $name(), which module.c does not register"
    done
    echo "checked $(wc -w <<<"$fns") C functions, $(wc -l <<<"$regs") Lua functions"
}

mode=${1:-}
shift || true
case $mode in
    lint) lint "$@" ;;
    cli) cli "$@" ;;
    api) api "$@" ;;
    *) echo "usage: check.sh lint|cli|api ARGS..." >&2; exit 2 ;;
esac
[ $fails -eq 0 ] || { echo "$fails problem(s)"; exit 1; }
echo ok
