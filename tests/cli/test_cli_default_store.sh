#!/usr/bin/env bash
# test_cli_default_store.sh - a command given no URI and no $IDPRIME_URI
# uses the embedded SQLite file $XDG_DATA_HOME/idprime/idprime.db (else
# $HOME/.local/share/idprime/idprime.db), creating its folder. Needs the
# sqlite plugin: CMake registers this suite only where it is built.
#
# usage: test_cli_default_store.sh PATH/TO/idprime
# environment: IDPRIME_PLUGIN_PATH, the folder holding idprime-sqlite.so.
set -u

CLI=${1:?usage: test_cli_default_store.sh PATH/TO/idprime}
: "${IDPRIME_PLUGIN_PATH:?set IDPRIME_PLUGIN_PATH to the plugin folder}"
# shellcheck source-path=SCRIPTDIR source=check.sh
. "$(dirname "$0")/check.sh"

unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home
DB=$XDG_DATA_HOME/idprime/idprime.db

begin "next without a URI uses \$XDG_DATA_HOME/idprime/idprime.db"
run "$CLI" next c
want_rc 0
want_out 1
[ -f "$DB" ] || why "no file $DB"
end

first=${out:-0}
begin "a second process on the default store never repeats an ID"
run "$CLI" next c
want_rc 0
want_out_match '^[0-9]+$'
[ "${out:-0}" -gt "$first" ] 2>/dev/null || why "got '$out', not above $first"
end

second=${out:-0}
begin "get without a URI reads the default store, at least the last ID"
run "$CLI" get c
want_rc 0
want_out_match '^[0-9]+$'
[ "${out:-0}" -ge "$second" ] 2>/dev/null || why "got '$out', below $second"
end

begin "without XDG_DATA_HOME the file is \$HOME/.local/share/idprime/idprime.db"
run env -u XDG_DATA_HOME "$CLI" next c
want_rc 0
want_out 1
[ -f "$HOME/.local/share/idprime/idprime.db" ] ||
    why "no file $HOME/.local/share/idprime/idprime.db"
end

summary
