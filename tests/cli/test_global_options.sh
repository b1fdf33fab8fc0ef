#!/usr/bin/env bash
# test_global_options.sh - the common options before the command, as in
# git: `idprime --config FILE next inode` works as `idprime next --config
# FILE inode`, one given after the command wins, and anything else before
# the command is refused with a message naming it. Every store is mem://
# (each command is a new process, so every counter starts at 0).
#
# usage: test_global_options.sh PATH/TO/idprime
# environment: IDPRIME_PLUGIN_PATH, the folder holding idprime-mem.so.
set -u

CLI=${1:?usage: test_global_options.sh PATH/TO/idprime}
: "${IDPRIME_PLUGIN_PATH:?set IDPRIME_PLUGIN_PATH to the plugin folder}"
# shellcheck source-path=SCRIPTDIR source=check.sh
. "$(dirname "$0")/check.sh"

unset IDPRIME_URI
export XDG_DATA_HOME=$TMP/xdg HOME=$TMP/home

cat >"$TMP/cfg.lua" <<'EOF'
return {
  uri = "mem://fromconfig",
  counters = { inode = { batch = 8 } },
}
EOF
cat >"$TMP/store.lua" <<'EOF'
local idp = require "idprime"
local c <close> = assert(idp.open())
local k = assert(c:counter("inode"))
assert(k:next())
print(c:store(), k:stats().batch)
EOF

# ---- accepted ----------------------------------------------------------------

begin "--config FILE before the command: its uri and settings"
run "$CLI" --config "$TMP/cfg.lua" next inode --metrics -
want_rc 0
want_out_line 1
want_out_line 'idprime_batch_size{counter="inode"} 8'
want_err_empty
end

begin "--config=FILE before the command"
run "$CLI" --config="$TMP/cfg.lua" next inode --metrics -
want_rc 0
want_out_line 'idprime_batch_size{counter="inode"} 8'
end

begin "--metrics FILE before the command writes FILE"
run "$CLI" --metrics "$TMP/m.prom" next mem:// c -n 3
want_rc 0
want_out "$(seq 1 3)"
want_file_line "$TMP/m.prom" 'meta_c_ids_served_total 3'
end

begin "an option after the command wins over the same one before it"
rm -f "$TMP/before.prom" "$TMP/after.prom"
run "$CLI" --metrics "$TMP/before.prom" next mem:// c --metrics "$TMP/after.prom"
want_rc 0
want_file_line "$TMP/after.prom" 'meta_c_ids_served_total 1'
[ ! -e "$TMP/before.prom" ] || why "the --metrics given before the command was written too"
end

begin "-v and --verbose before the command are taken (and -vh = -v -h)"
run "$CLI" -v next mem:// c
want_rc 0
want_out 1
run "$CLI" --verbose incr mem:// c 5
want_rc 0
want_out 5
run "$CLI" -vh next
want_rc 0
want_out_match '^usage: idprime next'
end

begin "--help before a command is that command's help"
run "$CLI" --help next
want_rc 0
want_out_match '^usage: idprime next'
run "$CLI" --help
want_rc 0
want_out_match '^usage: idprime COMMAND'
end

begin "--version before a command prints the version"
run "$CLI" --version next mem:// c
want_rc 0
want_out_match '^idprime [0-9]+\.[0-9]+\.[0-9]+$'
end

begin "-- ends the options before the command"
run "$CLI" -v -- get mem:// c
want_rc 0
want_out 0
end

begin "run: --config before the command reaches the script's idp.open()"
run "$CLI" --config "$TMP/cfg.lua" run "$TMP/store.lua"
want_rc 0
want_out "$(printf 'mem\t8')"
want_err_empty
end

# ---- refused -------------------------------------------------------------------

begin "an unknown long option before the command: exit 2, named"
run "$CLI" --bogus next mem:// c
want_rc 2
want_out_empty
want_err_has "unknown option '--bogus'" "--config FILE"
end

begin "a command's own option before the command: exit 2, named"
run "$CLI" -n 5 next mem:// c
want_rc 2
want_out_empty
want_err_has "unknown option '-n'"
run "$CLI" --count 5 next mem:// c
want_rc 2
want_err_has "unknown option '--count'"
end

begin "an abbreviation before the command is refused, as git does: exit 2, named"
run "$CLI" --versio
want_rc 2
want_out_empty
want_err_has "unknown option '--versio'" "usage:"
run "$CLI" --conf "$TMP/cfg.lua" next inode
want_rc 2
want_err_has "unknown option '--conf'"
end

begin "--config without its FILE: exit 2, named"
run "$CLI" --config
want_rc 2
want_err_has "option '--config' needs a FILE"
run "$CLI" --verbose=yes next mem:// c
want_rc 2
want_err_has "option '--verbose' takes no value"
end

begin "options but no command: exit 2"
run "$CLI" -v
want_rc 2
want_out_empty
want_err_has "missing the command" "usage:"
end

begin "--config before the command names a broken config file"
run "$CLI" --config "$TMP/nope.lua" next inode
want_rc 2
want_err_has "nope.lua"
end

summary
