#!/usr/bin/env bash
# test_completion.sh COMPLETION_FILE IDPRIME - the bash completion of
# idprime(1).
#
# Part 1 calls the completion function as bash does (COMP_LINE, COMP_POINT,
# COMP_WORDS split at COMP_WORDBREAKS, COMP_CWORD) and checks COMPREPLY:
# what readline puts in place of the text after the word's last break
# character. It also checks the completion against the built command: the
# commands of `idprime --help`, every long option of `idprime CMD --help`,
# every engine key of the URI parameter table, and the schemes of
# `idprime plugins`.
#
# Part 2 types into a real interactive bash on a pseudo-terminal and reads
# back the command line that TAB made, so bash's own word splitting and
# readline's insertion are what is tested.
set -u

COMPLETION=$1
CLI=$2
fails=0
checks=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/idprime-completion.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT

# shellcheck source=idprime.bash
source "$COMPLETION"
COMP_WORDBREAKS=$' \t\n"\'><=;|&(:'

# complete LINE [CMD]: COMPREPLY for the cursor at the end of LINE, as one
# string of sorted lines. CMD is what the user typed as the command
# (default: a path where no idprime is, so the fixed scheme list is used).
complete_line() {
    local line=$1 cmd=${2:-$TMP/no/idprime}
    COMP_LINE="$cmd ${line#idprime }"
    COMP_POINT=${#COMP_LINE}
    # COMP_WORDS split at blanks only: the function takes the word whole
    # from COMP_LINE (part 2 has bash split the words itself)
    read -ra COMP_WORDS <<<"$COMP_LINE"
    [[ $COMP_LINE == *[[:blank:]] ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _idprime
    printf '%s\n' "${COMPREPLY[@]}" | sort
}

# want LINE EXPECTED...: COMPREPLY is exactly the EXPECTED words.
want() {
    local line=$1 got expect
    shift
    checks=$((checks + 1))
    got=$(complete_line "$line")
    expect=$(printf '%s\n' "$@" | sort)
    [[ $got == "$expect" ]] ||
        fail "'$line<TAB>': got [${got//$'\n'/ }], want [${expect//$'\n'/ }]"
}

# want_has LINE WORD...: COMPREPLY holds every WORD (and maybe more).
want_has() {
    local line=$1 got w
    shift
    checks=$((checks + 1))
    got=$(complete_line "$line")
    for w in "$@"; do
        grep -qxF -- "$w" <<<"$got" ||
            fail "'$line<TAB>': [${got//$'\n'/ }] lacks '$w'"
    done
}

want_lacks() {
    local line=$1 got w
    shift
    checks=$((checks + 1))
    got=$(complete_line "$line")
    for w in "$@"; do
        grep -qxF -- "$w" <<<"$got" &&
            fail "'$line<TAB>': [${got//$'\n'/ }] should not hold '$w'"
    done
}

# ---- Part 1: the function ------------------------------------------------

# commands
want "idprime ne" next
want "idprime mi" migrate
want "idprime --v" --version
want "idprime nope --" # an unknown command gets nothing

# options of each command
want_has "idprime next --" --count --config --metrics --verbose --help
want_lacks "idprime next --" --dry-run --workload
want "idprime migrate --d" --dry-run
want_has "idprime bench --" --workload --rtt-ms --param --json --csv --plot \
    --no-baseline --no-progress --roundtrips --time-limit --threads
want_lacks "idprime run --" --metrics
want "idprime next --count 5 --co" --count --config

# option values
want "idprime bench --workload st" steady
want "idprime bench --param low_w" low_watermark=
want "idprime bench --threads " # a number: nothing to offer

# schemes (the fixed list: no idprime where the command word points)
want "idprime next red" redis:// redis-sentinel:// redis-cluster://
want "idprime next mem" mem:// memcached://
# "mem:" is split at ':' by bash: readline replaces what follows it
want "idprime next mem:" //
want "idprime bench def" default
want "idprime incr mem:// inode " # DELTA: nothing
want "idprime migrate mem:// sq" sqlite:// sqlite3://
want "idprime migrate mem:// mem:// " # COUNTER...: nothing

# parameter keys after '?' or '&'; the text after the last ':', '=' or
# '&' is what readline replaces
want "idprime next mem://?ba" //?batch=
want "idprime next mem://?batch=8&low_" low_watermark=
want "idprime next mem://?inode_ma" //?inode_max_batch=
want "idprime next mem://?inode_b" //?inode_batch=
want "idprime next mem://?de" //?delay_ms=
want "idprime next redis://127.0.0.1:6379/0?wa" 6379/0?wait_replicas=
want "idprime next sqlite:///x.db?synchronous=N" NORMAL
want "idprime next mem://?adaptive=" 0 1
want_lacks "idprime next memcached://h?" //h?delay_ms= //h?db=
# inside an open quote nothing splits the word: the whole URI comes back
want "idprime next 'mem://?ba" mem://?batch=
want "idprime next 'mem://?batch=8&low_" mem://?batch=8\&low_watermark=

# files: run's SCRIPT.lua, --config FILE.lua
mkdir -p "$TMP/files/sub"
touch "$TMP/files/exp.lua" "$TMP/files/notes.txt"
(
    cd "$TMP/files" || exit 1
    fails=0
    want "idprime run e" exp.lua
    want "idprime run " exp.lua sub
    want "idprime next --config " exp.lua sub
    want "idprime run exp.lua n" notes.txt # the script's own arguments
    want "idprime run exp.lua --c" # not idprime's options
    exit "$fails"
) || fails=$((fails + $?))
checks=$((checks + 5))

# Without COMP_LINE (as some callers do): COMP_WORDS alone
COMP_WORDS=(idprime next 'mem://?ba')
COMP_CWORD=2
unset COMP_LINE COMP_POINT
COMPREPLY=()
_idprime
checks=$((checks + 1))
[[ ${COMPREPLY[*]} == //\?batch= ]] ||
    fail "COMP_WORDS=(idprime next 'mem://?ba'): got [${COMPREPLY[*]}], want [//?batch=]"

# ---- Part 1b: against the built command -----------------------------------

help=$("$CLI" --help) || fail "$CLI --help failed"
cmds=$(grep -oE '^  [a-z][a-z0-9-]*' <<<"$help" | sed 's/^  //' | sort -u)
got=$(complete_line "idprime " | grep -v '^-')
checks=$((checks + 1))
[[ $got == "$cmds" ]] ||
    fail "commands: completion offers [${got//$'\n'/ }], '$CLI --help' lists [${cmds//$'\n'/ }]"
for cmd in $cmds; do
    opts=$("$CLI" "$cmd" --help </dev/null |
        grep -oE -- '(^|[^A-Za-z0-9-])--[a-z][a-z0-9-]*' | sed 's/^[^-]*//' |
        sort -u)
    # run refuses --metrics: its help names it only to say so
    [[ $cmd == run ]] && opts=$(grep -vx -- --metrics <<<"$opts")
    # shellcheck disable=SC2086
    [[ -n $opts ]] && want_has "idprime $cmd --" $opts
done

# the engine keys: "  batch   1..1073741824 default ..." after "URI parameters"
keys=$("$CLI" next --help | sed -n '/^URI parameters/,$p' |
    grep -oE '^  [A-Za-z_]+' | sed 's/^  //')
[[ -n $keys ]] || fail "no URI parameter in '$CLI next --help'"
for k in $keys; do
    if [[ $k == NAME_* ]]; then
        want_has "idprime next mem://?inode_${k#NAME_}" "//?inode_${k#NAME_}="
    else
        want_has "idprime next mem://?" "//?$k="
    fi
done

# the schemes: those `idprime plugins` lists, once the command is found
unset _idprime_scheme_cache
schemes=$("$CLI" plugins | tail -n +2 | awk '{ print $2 }' | tr ',' '\n' |
    sed 's|$|://|' | sort -u)
checks=$((checks + 1))
got=$(complete_line "idprime next " "$CLI")
[[ -n $schemes && $got == "$schemes" ]] ||
    fail "schemes from '$CLI plugins': got [${got//$'\n'/ }], want [${schemes//$'\n'/ }]"
unset _idprime_scheme_cache

echo "part 1: $checks checks, $fails failed"

# ---- Part 2: a real bash on a pseudo-terminal ------------------------------

# Each case is typed with a TAB, then the line is turned into a printf of
# its words; the output is read until a marker line, with a deadline (no
# sleeps: readline handles the keys in the order they come).
mkdir -p "$TMP/bin" "$TMP/empty"
ln -s "$(realpath "$CLI")" "$TMP/bin/idprime"
if ! command -v python3 >/dev/null; then
    fail "python3 not found (scripts/deps.sh installs it)"
else
    PATH="$TMP/bin:$PATH" COMPLETION="$COMPLETION" WORKDIR="$TMP/empty" \
        python3 - <<'EOF' || fails=$((fails + 1))
import os, pty, select, sys, time

cases = [
    ("idprime ne", "[idprime][next]"),
    ("idprime next mem:", "[idprime][next][mem://]"),
    ("idprime next mem://?ba", "[idprime][next][mem://?batch=]"),
    ("idprime next mem://?inode_low", "[idprime][next][mem://?inode_low_watermark=]"),
    ("idprime next sqlite:///x.db?synchronous=N",
     "[idprime][next][sqlite:///x.db?synchronous=NORMAL]"),
    ("idprime migrate --dr", "[idprime][migrate][--dry-run]"),
    ("idprime bench --workload hot", "[idprime][bench][--workload][hotpath]"),
]
try:
    pid, fd = pty.fork()
except OSError as e:
    print("FAIL: no pseudo-terminal: %s" % e)
    sys.exit(1)
if pid == 0:
    os.chdir(os.environ["WORKDIR"])
    env = dict(os.environ, PS1="$ ", TERM="dumb", INPUTRC="/dev/null")
    os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)

buf = b""
def read_until(marker, seconds=10):
    """Reads until a line equal to marker; returns the lines before it."""
    global buf
    deadline = time.monotonic() + seconds
    while True:
        lines = buf.replace(b"\r", b"").split(b"\n")
        if marker.encode() in lines:
            i = lines.index(marker.encode())
            buf = b"\n".join(lines[i + 1:])
            return [l.decode(errors="replace") for l in lines[:i]]
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                return None

def send(text):
    os.write(fd, text.encode())

bad = 0
send("source '%s'; echo @@READY@@\n" % os.environ["COMPLETION"])
if read_until("@@READY@@") is None:
    print("FAIL: bash did not start; output: %r" % buf)
    sys.exit(1)
for n, (typed, want) in enumerate(cases):
    marker = "@@DONE%d@@" % n
    # TAB; then ^A, "printf ..." before the words, ^E, the marker after
    send(typed + "\t\x01printf '[%s]' \x05; echo; echo " + marker + "\n")
    lines = read_until(marker)
    got = [l for l in (lines or []) if l.startswith("[")]
    if lines is None or got != [want]:
        print("FAIL: pty: %r<TAB> gave %r, want %r" %
              (typed, got if lines is not None else "no answer", want))
        bad += 1
send("exit\n")
os.waitpid(pid, 0)
print("part 2: %d cases, %d failed" % (len(cases), bad))
sys.exit(1 if bad else 0)
EOF
fi

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo ok
