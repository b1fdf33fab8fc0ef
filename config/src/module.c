/*
 * module.c - the Lua module: require "idprime".
 *
 *   local idp = require "idprime"
 *   local c <close> = assert(idp.open("mem://", {batch = 64}))
 *   local inode = assert(c:counter("inode"))
 *   print(inode:next(), inode:incr(10), inode:stats().prime_calls)
 *
 * Handles are userdata whose metatable maps __gc and __close to one
 * function. A client is born closed and marked open only once idp_open
 * succeeded; closing twice is a no-op. A counter keeps its client alive
 * (user value 1) and refuses use once that client is closed. Runtime
 * failures return nil and a message; misuse (wrong types, closed handles)
 * raises an error.
 *
 * The engine may log from its background thread, so the log callback
 * writes to stderr and never touches the lua_State. A batch policy comes
 * only from a config script, whose own sandboxed state the engine may call
 * from any thread; a function of this state could not be called safely.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "internal.h"

#define CLIENT_MT "idprime.client"
#define COUNTER_MT "idprime.counter"

typedef struct lclient {
    idp_client *c;       /* NULL until open, and again once closed */
    idp_config *cfg;     /* the config it was opened with, freed after it */
} lclient;

typedef struct lcounter {
    idp_counter *ctr;    /* NULL once closed */
    lclient *cl;         /* kept alive through user value 1 */
} lcounter;

/* log_ud is the verbosity itself, never a pointer into Lua memory. */
static void module_log(void *ud, int level, const char *msg)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= IDP_LOG_WARN || (ud != NULL && level <= IDP_LOG_INFO))
        fprintf(stderr, "idprime: %s: %s\n", names[level & 3], msg);
}

/* nil, message: a runtime failure. */
static int fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- Text from Lua -------------------------------------------------------- */

/* Lua strings may hold NUL bytes; C strings end at the first. A name, URI
 * or value that would be cut there is misuse: it raises, naming `what`. */
static const char *no_nul(lua_State *L, int idx, const char *what)
{
    size_t len = 0;
    const char *s = lua_tolstring(L, idx, &len);
    if (s != NULL && strlen(s) != len)
        luaL_error(L, "%s holds a NUL byte (at byte %d)", what,
                   (int)strlen(s) + 1);
    return s;
}

/* luaL_checkstring for a C string: a NUL byte inside is an argument error. */
static const char *check_text(lua_State *L, int arg, const char *what)
{
    luaL_checkstring(L, arg);
    return no_nul(L, arg, what);
}

/* ---- idp.open ------------------------------------------------------------ */

/* An option value as parameter text; raises on a type that has none. */
static const char *option_text(lua_State *L, const char *key)
{
    int isint = 0;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        int at = lua_absindex(L, -1);
        return no_nul(L, at, lua_pushfstring(L, "idp.open: option '%s'", key));
    }
    case LUA_TBOOLEAN:
        return lua_toboolean(L, -1) ? "1" : "0";
    case LUA_TNUMBER: {
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint)
            luaL_error(L, "idp.open: option '%s' must be a whole number",
                       key);
        return lua_pushfstring(L, "%I", v);
    }
    default:
        luaL_error(L, "idp.open: option '%s' must be a number, string or "
                   "boolean, not a %s", key, luaL_typename(L, -1));
        return NULL;
    }
}

/*
 * idp.open(uri [, options]) -> client | nil, message
 * options: engine and plugin parameters (batch = 64, inode_batch = 8,
 * delay_ms = 1, ...), config = "FILE.lua", plugin_path = "DIR",
 * verbose = true. Settings apply in order: config, options, the URI's
 * query (which wins). uri may be nil when the config names one.
 */
static int l_open(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TSTRING);  /* not a number made text */
    const char *uri = no_nul(L, 1, "idp.open: the URI");
    int has_opts = !lua_isnoneornil(L, 2);
    if (has_opts)
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);

    lclient *cl = lua_newuserdatauv(L, sizeof *cl, 0);   /* index 3 */
    cl->c = NULL;
    cl->cfg = NULL;
    luaL_setmetatable(L, CLIENT_MT);

    idp_options opt = {.size = sizeof opt, .log = module_log};
    const char *config = NULL;
    lua_newtable(L);                                     /* 4: params */
    int nparams = 0;
    for (lua_pushnil(L); has_opts && lua_next(L, 2); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "idp.open: option names must be strings");
        const char *key = no_nul(L, lua_absindex(L, -2), "idp.open: an option name");
        int is_config = strcmp(key, "config") == 0;
        if (is_config || strcmp(key, "plugin_path") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "idp.open: option '%s' must be a "
                                  "string", key);
            int at = lua_absindex(L, -1);
            *(is_config ? &config : &opt.plugin_path) =
                no_nul(L, at, lua_pushfstring(L, "idp.open: option '%s'", key));
            lua_pop(L, 1);
        } else if (strcmp(key, "verbose") == 0) {
            opt.log_ud = lua_toboolean(L, -1) ? (void *)1 : NULL;
        } else {
            int top = lua_gettop(L);
            const char *value = option_text(L, key);
            lua_pushfstring(L, "%s=%s", key, value);
            lua_rawseti(L, 4, ++nparams);
            lua_settop(L, top);
        }
    }
    /* strings referenced from the options table (2) and params (4) stay
     * alive until this function returns */
    if (config == NULL && lua_getfield(L, LUA_REGISTRYINDEX,
                                       IDP_LUA_CONFIG_KEY) == LUA_TSTRING)
        config = lua_tostring(L, -1);
    if (config != NULL) {
        idp_config_opts co = {.size = sizeof co, .log = module_log,
                              .log_ud = opt.log_ud};
        idp_error e;
        if ((cl->cfg = idp_config_load(config, &co, &e)) == NULL)
            return fail(L, e.msg);
        idp_config_apply(cl->cfg, &opt);
        if (uri == NULL && (uri = idp_config_uri(cl->cfg)) == NULL)
            return fail(L, lua_pushfstring(L, "%s: the config names no uri "
                                           "and idp.open was given none",
                                           config));
    }
    if (uri == NULL)
        return luaL_argerror(L, 1, "a store URI expected (or a config "
                                   "that names one)");

    const char *const *from_cfg = opt.params;
    size_t ncfg = 0;
    while (from_cfg != NULL && from_cfg[ncfg] != NULL)
        ncfg++;
    const char **all = lua_newuserdatauv(L, (ncfg + (size_t)nparams + 1) *
                                                sizeof *all, 0);
    for (size_t i = 0; i < ncfg; i++)
        all[i] = from_cfg[i];
    for (int i = 1; i <= nparams; i++) {
        lua_rawgeti(L, 4, i);
        all[ncfg + (size_t)i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    all[ncfg + (size_t)nparams] = NULL;
    opt.params = all;

    idp_error e;
    if ((cl->c = idp_open(uri, &opt, &e)) == NULL)
        return fail(L, e.msg);
    lua_pushvalue(L, 3);
    return 1;
}

/* ---- client -------------------------------------------------------------- */

static lclient *open_client(lua_State *L)
{
    lclient *cl = luaL_checkudata(L, 1, CLIENT_MT);
    if (cl->c == NULL)
        luaL_argerror(L, 1, "the client is closed");
    return cl;
}

/* __gc, __close and client:close(): safe to call any number of times. */
static int l_client_close(lua_State *L)
{
    lclient *cl = luaL_checkudata(L, 1, CLIENT_MT);
    idp_close(cl->c);
    cl->c = NULL;
    idp_config_free(cl->cfg);   /* only once no client can call its policy */
    cl->cfg = NULL;
    return 0;
}

static int l_client_tostring(lua_State *L)
{
    lclient *cl = luaL_checkudata(L, 1, CLIENT_MT);
    if (cl->c == NULL)
        lua_pushfstring(L, "idprime.client (closed): %p", (void *)cl);
    else
        lua_pushfstring(L, "idprime.client (%s): %p", idp_client_store(cl->c),
                        (void *)cl);
    return 1;
}

/* client:counter(name) -> counter | nil, message */
static int l_counter(lua_State *L)
{
    lclient *cl = open_client(L);
    const char *name = check_text(L, 2, "client:counter: the name");
    idp_error e;
    idp_counter *ctr = idp_counter_get(cl->c, name, &e);
    if (ctr == NULL)
        return fail(L, e.msg);
    lcounter *k = lua_newuserdatauv(L, sizeof *k, 1);
    k->ctr = ctr;
    k->cl = cl;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, COUNTER_MT);
    return 1;
}

/* client:metrics() -> Prometheus text | nil, message */
static int l_metrics(lua_State *L)
{
    lclient *cl = open_client(L);
    char *text = idp_metrics(cl->c);
    if (text == NULL)
        return fail(L, "metrics: out of memory");
    lua_pushstring(L, text);
    idp_free(text);
    return 1;
}

/* client:get(name) -> value, exists | nil, message */
static int l_get(lua_State *L)
{
    lclient *cl = open_client(L);
    const char *name = check_text(L, 2, "client:get: the name");
    uint64_t v;
    int exists;
    idp_error e;
    if (idp_get(cl->c, name, &v, &exists, &e) != IDP_OK)
        return fail(L, e.msg);
    lua_pushinteger(L, (lua_Integer)v);
    lua_pushboolean(L, exists);
    return 2;
}

/* client:control(command) -> true | nil, message (mem: "delay 5", ...) */
static int l_control(lua_State *L)
{
    lclient *cl = open_client(L);
    idp_error e;
    if (idp_control(cl->c, check_text(L, 2, "client:control: the command"), &e) != IDP_OK)
        return fail(L, e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:roundtrips() -> the store's own count of increments | nil, msg */
static int l_roundtrips(lua_State *L)
{
    lclient *cl = open_client(L);
    uint64_t n;
    idp_error e;
    if (idp_store_roundtrips(cl->c, &n, &e) != IDP_OK)
        return fail(L, e.msg);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* client:store() -> the plugin's name ("mem", "redis", ...) */
static int l_store(lua_State *L)
{
    lua_pushstring(L, idp_client_store(open_client(L)->c));
    return 1;
}

/* ---- counter ------------------------------------------------------------- */

static lcounter *usable_counter(lua_State *L)
{
    lcounter *k = luaL_checkudata(L, 1, COUNTER_MT);
    if (k->ctr == NULL)
        luaL_argerror(L, 1, "the counter is closed");
    if (k->cl->c == NULL)
        luaL_argerror(L, 1, "the counter's client is closed");
    return k;
}

/* __gc and __close: the client owns the engine's counter; this only
 * forgets it. */
static int l_counter_close(lua_State *L)
{
    lcounter *k = luaL_checkudata(L, 1, COUNTER_MT);
    k->ctr = NULL;
    return 0;
}

static int l_counter_tostring(lua_State *L)
{
    lcounter *k = luaL_checkudata(L, 1, COUNTER_MT);
    lua_pushfstring(L, "idprime.counter (%s): %p",
                    k->ctr == NULL || k->cl->c == NULL ? "closed" : "open",
                    (void *)k);
    return 1;
}

/* counter:next() -> id | nil, message */
static int l_next(lua_State *L)
{
    lcounter *k = usable_counter(L);
    uint64_t id;
    idp_error e;
    if (idp_next(k->ctr, &id, &e) != IDP_OK)
        return fail(L, e.msg);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* counter:incr(n) -> last | nil, message: the caller owns last-n+1..last */
static int l_incr(lua_State *L)
{
    lcounter *k = usable_counter(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1, 2, "must be at least 1");
    uint64_t last;
    idp_error e;
    if (idp_incr(k->ctr, (uint64_t)n, &last, &e) != IDP_OK)
        return fail(L, e.msg);
    lua_pushinteger(L, (lua_Integer)last);
    return 1;
}

/* counter:bench(n) -> seconds | nil, message: n next() calls in C, for
 * timing the engine without the interpreter's cost per ID. */
static int l_bench(lua_State *L)
{
    lcounter *k = usable_counter(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1, 2, "must be at least 1");
    uint64_t id, prev = 0;
    idp_error e;
    double t0 = now_s();
    for (lua_Integer i = 0; i < n; i++) {
        if (idp_next(k->ctr, &id, &e) != IDP_OK)
            return fail(L, e.msg);
        if (id <= prev)
            return fail(L, "bench: IDs did not increase (engine bug)");
        prev = id;
    }
    lua_pushnumber(L, now_s() - t0);
    return 1;
}

/* counter:stats() -> table of the engine's counters for this counter */
static int l_stats(lua_State *L)
{
    lcounter *k = usable_counter(L);
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(k->ctr, &s);
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"ids_served", offsetof(idp_counter_stats, ids_served)},
        {"prime_calls", offsetof(idp_counter_stats, prime_calls)},
        {"prefetch_async", offsetof(idp_counter_stats, prefetch_async)},
        {"waited_calls", offsetof(idp_counter_stats, waited_calls)},
        {"errors", offsetof(idp_counter_stats, errors)},
        {"regressions", offsetof(idp_counter_stats, regressions)},
        {"unused_ids", offsetof(idp_counter_stats, unused_ids)},
        {"batch", offsetof(idp_counter_stats, batch)},
        {"high", offsetof(idp_counter_stats, high)},
    };
    size_t nf = sizeof fields / sizeof fields[0];
    lua_createtable(L, 0, (int)nf + 2);
    for (size_t i = 0; i < nf; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&s + fields[i].off, sizeof v);
        lua_pushinteger(L, (lua_Integer)v);
        lua_setfield(L, -2, fields[i].name);
    }
    lua_pushnumber(L, s.fetch_seconds);
    lua_setfield(L, -2, "fetch_seconds");
    lua_pushboolean(L, s.in_flight);
    lua_setfield(L, -2, "in_flight");
    return 1;
}

/* ---- module functions ---------------------------------------------------- */

static void add_plugin(void *ud, const idp_plugin_info *p)
{
    lua_State *L = ud;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, p->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, p->schemes);
    lua_setfield(L, -2, "schemes");
    lua_pushinteger(L, (lua_Integer)p->abi_version);
    lua_setfield(L, -2, "abi");
    lua_pushstring(L, p->path);
    lua_setfield(L, -2, "path");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* idp.plugins() -> { {name, schemes, abi, path}, ... } | nil, message */
static int l_plugins(lua_State *L)
{
    idp_options opt = {.size = sizeof opt, .log = module_log};
    idp_error e;
    lua_newtable(L);
    if (idp_plugins(&opt, add_plugin, L, &e) != IDP_OK)
        return fail(L, e.msg);
    return 1;
}

/* idp.clock() -> seconds on a monotonic clock, for timing experiments */
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, now_s());
    return 1;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

API int idp_lua_open(lua_State *L)
{
    static const luaL_Reg client_methods[] = {
        {"counter", l_counter}, {"metrics", l_metrics},
        {"get", l_get},         {"control", l_control},
        {"roundtrips", l_roundtrips}, {"store", l_store},
        {"close", l_client_close}, {NULL, NULL}};
    static const luaL_Reg counter_methods[] = {
        {"next", l_next},   {"incr", l_incr}, {"stats", l_stats},
        {"bench", l_bench}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"open", l_open}, {"plugins", l_plugins}, {"clock", l_clock},
        {NULL, NULL}};
    new_class(L, CLIENT_MT, client_methods, l_client_close, l_client_tostring);
    new_class(L, COUNTER_MT, counter_methods, l_counter_close,
              l_counter_tostring);
    luaL_newlib(L, funcs);
    lua_pushliteral(L, IDP_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
