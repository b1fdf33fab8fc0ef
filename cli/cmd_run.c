/*
 * cmd_run.c - idprime run [--config FILE.lua] SCRIPT.lua [ARGS...]: an
 * experiment script, run with Lua's full standard library and the idprime
 * module preloaded, as lua5.4 would run it with the module installed.
 */
#include <getopt.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "idprime/config.h"
#include "cli.h"

static const char usage[] =
    "usage: idprime run [--config FILE.lua] SCRIPT.lua [ARGS...]\n"
    "Runs SCRIPT.lua with the full Lua standard library and the idprime\n"
    "module preloaded (local idp = require \"idprime\"). ARGS are the\n"
    "script's `...` and arg[1..] (arg[0] is SCRIPT). With --config,\n"
    "idp.open() loads that config when its options name none; a URI given\n"
    "to idp.open wins over the config's, and its parameters over the\n"
    "config's settings. Exit status: 0, 1 when the script raises an error,\n"
    "2 when it cannot be loaded; os.exit(n) ends with n. SIGINT/SIGTERM\n"
    "stop the script (its clients are closed) and end idprime by that\n"
    "signal (130/143).\n"
    "Example: idprime run bench/sweep.lua mem:// sqlite:///tmp/ids.db\n";

/* The message handler: the error with a traceback. */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)",
                                  luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/*
 * Every STOP_EVERY instructions: an interrupt (SIGINT, SIGTERM), or a stdout
 * whose reader is gone, raises an error that unwinds the script like any
 * other, closing its to-be-closed variables; lua_close() then collects the
 * clients it still holds, and each close gives back what it did not serve.
 * A count hook, not lua_sethook() from the signal handler as lua.c does: the
 * handler only sets a flag. Its cost (Lua 5.4 traps every instruction while
 * a count hook is set) is about a fifth of a pure-Lua loop's speed; scripts
 * spend their time in the idprime calls. A C function that runs long (a
 * bench run) is stopped when it returns.
 */
enum { STOP_EVERY = 1000 };

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (cli_interrupted())
        luaL_error(L, "interrupted");
    /* print() and io.write() ignore a failed write: without this a script
     * printing into a closed pipe would run on */
    if (ferror(stdout) && cli_stdout_broken())
        luaL_error(L, "the output was closed");
}

/* Loads and runs the script; returns the exit code. */
static int run(lua_State *L, const char *cfg, int argc, char **argv)
{
    luaL_openlibs(L);
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, STOP_EVERY);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, idp_lua_open);
    lua_setfield(L, -2, "idprime");
    lua_pop(L, 1);
    if (cfg != NULL) {
        lua_pushstring(L, cfg);
        lua_setfield(L, LUA_REGISTRYINDEX, IDP_LUA_CONFIG_KEY);
    }
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, argv[0]) != LUA_OK) {
        cli_error("run", "%s", lua_tostring(L, -1));
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc - 1, 0, 1) != LUA_OK) {
        /* a stop asked for is no failure to report: main() ends the
         * process by the signal */
        if (!cli_interrupted() && !(ferror(stdout) && cli_stdout_broken()))
            cli_error("run", "%s", lua_tostring(L, -1));
        return EXIT_WORK;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    static const struct option longs[] = {CLI_COMMON_LONGOPTS, {0}};
    cli_common co = {0};
    int opt;
    optind = 1;
    /* "+": the options end at SCRIPT, so the script's own reach it */
    while ((opt = getopt_long(argc, argv, "+" CLI_COMMON_SHORTOPTS, longs,
                              NULL)) != -1) {
        int r = cli_common_opt(opt, &co, usage);
        if (r < 0)
            return 0;
        if (r == 0) {
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (co.metrics != NULL) {
        cli_error("run", "--metrics does not apply to run: write "
                  "client:metrics() from the script");
        return EXIT_USAGE;
    }
    if (optind >= argc) {
        cli_error("run", "missing SCRIPT.lua");
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        cli_error("run", "cannot create a Lua state: out of memory");
        return EXIT_WORK;
    }
    int rc = run(L, co.config, argc - optind, argv + optind);
    lua_sethook(L, NULL, 0, 0); /* the collection of what is left runs whole */
    lua_close(L);
    int orc = cli_flush_output("run", 0);
    if (rc == 0)
        rc = orc;
    return rc;
}
