/*
 * test_config.c - config scripts (libidprime-config): what a good script
 * gives the engine, every way a script can be wrong or hostile refused
 * with FILE:LINE, and the batch policy: it sets the batch as its script
 * says, and one that fails or answers nonsense leaves the last good batch.
 * On the in-process mem store.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "idprime/config.h"
#include "testutil.h"

static idp_error err;
static char dir[] = "/tmp/idprime-config.XXXXXX";

/* ---- helpers ------------------------------------------------------------- */

/* Writes `text` to DIR/name and returns the path (static buffer ring). */
static const char *script(const char *name, const char *text)
{
    static char paths[8][300];
    static int at;
    char *path = paths[at++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* What the config logged, for the policy tests (any thread); the
 * library's debug lines (a plugin loaded, ...) are not the config's. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logged[8192];
static int nlogged;

static void capture(void *ud, int level, const char *msg)
{
    (void)ud;
    if (level == IDP_LOG_DEBUG)
        return;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "[%d] %s\n", level, msg);
    nlogged++;
    pthread_mutex_unlock(&log_mu);
}

static idp_config *load(const char *path)
{
    idp_config_opts o = {.size = sizeof o, .log = capture};
    return idp_config_load(path, &o, &err);
}

static idp_config *load_ok(const char *path)
{
    idp_config *cfg = load(path);
    ck_assert_msg(cfg != NULL, "load %s: %s", path, err.msg);
    return cfg;
}

/* Loading fails with IDP_EINVAL and a message holding each of `want`. */
static void refused(const char *name, const char *text, const char *want1,
                    const char *want2)
{
    idp_config *cfg = load(script(name, text));
    ck_assert_msg(cfg == NULL, "%s was accepted", name);
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, want1) != NULL, "%s: '%s' lacks '%s'", name,
                  err.msg, want1);
    ck_assert_msg(want2 == NULL || strstr(err.msg, want2) != NULL,
                  "%s: '%s' lacks '%s'", name, err.msg, want2);
}

static idp_client *open_with(idp_config *cfg, const char *uri)
{
    idp_options opt = {.size = sizeof opt, .log = capture};
    idp_config_apply(cfg, &opt);
    if (uri == NULL)
        uri = idp_config_uri(cfg);
    idp_client *c = idp_open(uri, &opt, &err);
    ck_assert_msg(c != NULL, "open: %s", err.msg);
    return c;
}

static uint64_t batch_of(idp_counter *k)
{
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(k, &s);
    return s.batch;
}

static void setup(void)
{
    logged[0] = '\0';
    nlogged = 0;
}

/* ---- loading ------------------------------------------------------------- */

START_TEST(test_good_config_gives_uri_params_and_policy)
{
    idp_config *cfg = load_ok(script("good.lua",
        "\xEF\xBB\xBF#!/usr/bin/env idprime\n"
        "-- a comment\n"
        "local base = 50\n"
        "return {\n"
        "  uri = 'mem://good',\n"
        "  defaults = { batch = base * 2, timeout_ms = 500, prefix = 't:',\n"
        "               metaprime = true, delay_ms = 0 },\n"
        "  counters = { inode = { batch = 8, low_watermark = 50.0 } },\n"
        "  policy = function(s) return s.batch end,\n"
        "}\n"));
    ck_assert_str_eq(idp_config_uri(cfg), "mem://good");
    static const char *const want[] = {
        "batch=100", "delay_ms=0", "inode_batch=8", "inode_low_watermark=50",
        "metaprime=1", "prefix=t:", "timeout_ms=500", NULL};
    const char *const *p = idp_config_params(cfg);
    for (int i = 0; want[i] != NULL; i++) {
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_str_eq(p[i], want[i]);
    }
    ck_assert_ptr_null(p[7]);
    idp_options opt = {.size = sizeof opt};
    idp_config_apply(cfg, &opt);
    ck_assert_ptr_eq(opt.params, p);
    ck_assert_ptr_nonnull(opt.policy);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_config_settings_reach_the_engine)
{
    idp_config *cfg = load_ok(script("engine.lua",
        "return { uri = 'mem://engine', defaults = { batch = 100 },\n"
        "         counters = { inode = { batch = 8 } } }\n"));
    idp_options opt = {.size = sizeof opt};
    idp_config_apply(cfg, &opt);
    ck_assert_ptr_null(opt.policy);
    idp_client *c = open_with(cfg, NULL);
    idp_counter *inode = tu_counter(c, "inode");
    idp_counter *other = tu_counter(c, "other");
    ck_assert_uint_eq(batch_of(inode), 8);
    ck_assert_uint_eq(batch_of(other), 100);
    ck_assert_uint_eq(tu_next(inode), 1);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_uri_parameters_override_the_config)
{
    idp_config *cfg = load_ok(script("override.lua",
        "return { uri = 'mem://cfg?batch=7', defaults = { batch = 100 },\n"
        "         counters = { inode = { batch = 8 } } }\n"));
    idp_client *c = open_with(cfg, "mem://other?inode_batch=16");
    ck_assert_uint_eq(batch_of(tu_counter(c, "inode")), 16);
    ck_assert_uint_eq(batch_of(tu_counter(c, "chunk")), 2048);
    ck_assert_uint_eq(batch_of(tu_counter(c, "x")), 100);
    idp_close(c);
    /* the config's own URI query wins over its defaults too */
    c = open_with(cfg, NULL);
    ck_assert_uint_eq(batch_of(tu_counter(c, "x")), 7);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_counters_lists_the_counters_table_sorted)
{
    idp_config *cfg = load_ok(script("counters.lua",
        "return { defaults = { batch = 100 },\n"
        "         counters = { inode = { batch = 8 },\n"
        "                      ['chunk.id'] = { low_watermark = 10 } } }\n"));
    const char *const *names = idp_config_counters(cfg);
    ck_assert_ptr_nonnull(names);
    ck_assert_str_eq(names[0], "chunk.id");
    ck_assert_str_eq(names[1], "inode");
    ck_assert_ptr_null(names[2]);
    idp_config_free(cfg);
    /* no counters table, or an empty one: an empty list, not NULL */
    static const char *const none[] = {
        "return { defaults = { batch = 100 } }\n",
        "return { counters = {} }\n"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        cfg = load_ok(script("nocounters.lua", none[i]));
        names = idp_config_counters(cfg);
        ck_assert_ptr_nonnull(names);
        ck_assert_ptr_null(names[0]);
        idp_config_free(cfg);
    }
    ck_assert_ptr_null(idp_config_counters(NULL));
}
END_TEST

START_TEST(test_syntax_error_names_file_line)
{
    refused("syntax.lua", "return {\n  uri = 'mem://'\n  defaults = {},\n}\n",
            "syntax.lua:3:", "'}' expected");
}
END_TEST

START_TEST(test_runtime_error_names_file_line)
{
    refused("runtime.lua", "local t\n\nreturn { uri = t.x }\n",
            "runtime.lua:3:", "attempt to index a nil value");
    refused("error0.lua", "\nerror('no position', 0)\n", "error0.lua:2: ",
            "no position");
    refused("errtable.lua", "error({})\n", "errtable.lua:1:",
            "error object is a table value");
}
END_TEST

START_TEST(test_long_calls_into_c_are_stopped)
{
    /* One instruction that would run for hours inside C, where the count
     * hook never runs: each is refused (or cut short) within seconds. */
    long long t0 = tu_now_ms();
    refused("backtrack.lua",
            "local s = ('a'):rep(30000)\n"
            "local x = s:find(('a*'):rep(20) .. 'b')\n", "backtrack.lua:2:",
            "instruction limit");
    refused("move.lua", "table.move({}, 1, 2^62, 1)\n", "move.lua:1:",
            "instruction limit");
    refused("len.lua",
            "local t = setmetatable({}, {__len = function() return 1e15 end})\n"
            "table.insert(t, 1, 'x')\n", "len.lua:2:", NULL);
    refused("cmp.lua",
            "local a, b = ('x'):rep(2^21), ('x'):rep(2^21)\n"
            "while a == b do end\n", "cmp.lua:2:", "instruction limit");
    ck_assert_int_lt(tu_now_ms() - t0, 30000);
    /* an empty piece repeated endlessly is the empty string, at once */
    idp_config *cfg = load_ok(script("rep.lua",
        "local e = string.rep('', math.maxinteger)\n"
        "return {uri = 'mem://' .. e}\n"));
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_endless_loop_is_stopped)
{
    refused("loop.lua", "local n = 0\nwhile true do n = n + 1 end\n",
            "loop.lua:2:", "instruction limit");
    /* catching the error does not buy more instructions */
    refused("pcall_loop.lua",
            "while true do\n  pcall(function() while true do end end)\nend\n",
            "pcall_loop.lua:2:", "instruction limit");
    refused("coroutine_loop.lua",
            "local co = coroutine.wrap(function() while true do end end)\n"
            "while true do pcall(co) end\n",
            "coroutine_loop.lua:", "instruction limit");
}
END_TEST

START_TEST(test_memory_bomb_is_stopped)
{
    refused("bomb.lua",
            "local t = {}\nfor i = 1, 1e9 do\n"
            "  t[i] = ('x'):rep(100) .. i\nend\n",
            "bomb.lua:3:", "memory limit");
    refused("rep.lua", "local s = string.rep('x', 1 << 30)\n", "rep.lua:1:",
            "memory limit");
    /* catching the memory error does not make the script acceptable */
    refused("pcall_bomb.lua",
            "local ok = pcall(string.rep, 'x', 1 << 30)\nreturn {}\n",
            "pcall_bomb.lua:1:", "memory limit");
}
END_TEST

static int writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    return fwrite(p, 1, n, ud) == n ? 0 : 1;
}

START_TEST(test_bytecode_is_refused)
{
    /* real bytecode of a valid config, as luac would write it */
    lua_State *L = luaL_newstate();
    ck_assert_int_eq(luaL_loadstring(L, "return { uri = 'mem://' }"), LUA_OK);
    char path[300];
    snprintf(path, sizeof path, "%s/bytecode.lua", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(lua_dump(L, writer, f, 0), 0);
    fclose(f);
    lua_close(L);
    idp_config *cfg = load(path);
    ck_assert_ptr_null(cfg);
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bytecode.lua:1:"));
    ck_assert_ptr_nonnull(strstr(err.msg, "bytecode) is refused"));
}
END_TEST

static const struct {
    const char *code, *name;
} escapes[] = {
    {"local f = io.open('/etc/passwd')", "io"},
    {"local v = os.getenv('HOME')", "os"},
    {"os.exit(3)", "os"},
    {"local m = require('io')", "require"},
    {"local p = package.loaded", "package"},
    {"local f = load('return 1')", "load"},
    {"local f = loadfile('/etc/passwd')", "loadfile"},
    {"dofile('/etc/passwd')", "dofile"},
    {"local d = debug.getinfo(1)", "debug"},
    {"collectgarbage('stop')", "collectgarbage"},
    {"local b = string.dump(function() end)", "string.dump"},
    {"local b = ('x').dump(print)", "string.dump"},
    {"local b = _G.io", "io"},
    {"local b = _ENV['load']", "load"},
};

START_TEST(test_sandbox_refuses_every_way_out)
{
    char text[200], want[64];
    snprintf(text, sizeof text, "local x = 1\n%s\nreturn {}\n",
             escapes[_i].code);
    snprintf(want, sizeof want, "%s is not available in a config script",
             escapes[_i].name);
    refused("escape.lua", text, "escape.lua:2:", want);
}
END_TEST

START_TEST(test_metatable_tricks_are_refused)
{
    refused("mt1.lua", "local s = getmetatable('').__index\nreturn {}\n",
            "mt1.lua:1:", "the metatable of strings is protected");
    refused("mt2.lua", "\ngetmetatable('').__index = {}\n", "mt2.lua:2:",
            "the metatable of strings is protected");
    refused("mt3.lua", "setmetatable(_G, nil)\nreturn { uri = io }\n",
            "mt3.lua:1:", "cannot change a protected metatable");
    refused("mt4.lua", "local i = getmetatable(_G).__index\n", "mt4.lua:1:",
            "the metatable of _G is protected");
    refused("mt5.lua", "setmetatable(string, {})\n", "mt5.lua:1:",
            "cannot change a protected metatable");
    refused("mt6.lua",
            "setmetatable({}, {__gc = function() while true do end end})\n",
            "mt6.lua:1:", "__gc metamethods are not available");
    /* the rawget way round the refusal finds nothing to call */
    refused("mt7.lua", "local f = rawget(_G, 'load')\nf('return 1')\n",
            "mt7.lua:2:", "attempt to call a nil value");
}
END_TEST

START_TEST(test_bad_settings_name_their_field_and_line)
{
    refused("range.lua",
            "return {\n  counters = {\n    inode = {\n      batch = 0,\n"
            "    },\n  },\n}\n",
            "range.lua:4: counters.inode.batch: 0 is out of range",
            "1..1073741824");
    refused("float.lua", "return {\n defaults = { low_watermark = 2.5 } }\n",
            "float.lua:2: defaults.low_watermark: '2.5' is not a whole number (allowed 0..100)",
            NULL);
    /* the engine's own rule, as for a URI's text: '12' is 12 */
    refused("text.lua", "return { defaults = { batch = 'lots' } }\n",
            "text.lua:1: defaults.batch: 'lots' is not a whole number "
            "(allowed 1..1073741824)", NULL);
    refused("nul.lua", "return { counters = { inode = { ['batch\\0x'] = 5 } } }\n",
            "nul.lua:1: counters.inode.?: not a per-counter setting", NULL);
    refused("nulname.lua", "return { counters = { ['ino\\0de'] = { batch = 5 } } }\n",
            "nulname.lua:1: counters: every key must be a counter name", NULL);
    refused("field.lua", "return {\n\n  batch = 5 }\n",
            "field.lua:3: batch: unknown field", "defaults");
    refused("percounter.lua",
            "return { counters = {\n inode = { timeout_ms = 5 } } }\n",
            "percounter.lua:2: counters.inode.timeout_ms: not a per-counter",
            "batch, low_watermark");
    refused("name.lua", "return { counters = { ['a b'] = { batch = 1 } } }\n",
            "name.lua:1: counters", "counter name");
    refused("twice.lua",
            "return { defaults = { inode_batch = 3 },\n"
            "         counters = { inode = { batch = 4 } } }\n",
            "twice.lua:", "'inode_batch' is set twice");
    refused("notable.lua", "\nreturn 42\n", "notable.lua:2:",
            "returned a number, not a table");
    refused("uri.lua", "return { uri = 42 }\n", "uri.lua:1: uri:",
            "store URI");
    refused("policy.lua", "return { policy = 5 }\n", "policy.lua:1: policy:",
            "function");
    refused("value.lua", "return { defaults = { prefix = {} } }\n",
            "value.lua:1: defaults.prefix:", "got a table");
}
END_TEST

START_TEST(test_missing_file_is_named)
{
    char path[300];
    snprintf(path, sizeof path, "%s/missing.lua", dir);
    ck_assert_ptr_null(load(path));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing.lua: cannot read"));
    ck_assert_ptr_null(load(dir));
    ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
}
END_TEST

START_TEST(test_print_and_warn_go_to_the_log)
{
    idp_config *cfg = load_ok(script("print.lua",
        "print('hello', 1, nil)\nwarn('careful', '!')\nwarn('@on')\n"
        "return {}\n"));
    ck_assert_ptr_nonnull(strstr(logged, "[2] "));
    ck_assert_ptr_nonnull(strstr(logged, "print.lua: hello\t1\tnil"));
    ck_assert_ptr_nonnull(strstr(logged, "[1] "));
    ck_assert_ptr_nonnull(strstr(logged, "print.lua: warning: careful!"));
    ck_assert_int_eq(nlogged, 2);
    ck_assert_ptr_null(idp_config_uri(cfg));
    ck_assert_ptr_null(idp_config_params(cfg)[0]);
    idp_config_free(cfg);
}
END_TEST

/* ---- the batch policy ---------------------------------------------------- */

START_TEST(test_policy_sets_the_batch_as_its_script_says)
{
    /* fetches of 10, 20, 40, then nil: 40 again */
    idp_config *cfg = load_ok(script("doubling.lua",
        "return {\n"
        "  uri = 'mem://doubling',\n"
        "  defaults = { batch = 10, low_watermark = 0 },\n"
        "  policy = function(s)\n"
        "    assert(s.counter == 'c' and s.rate >= 0 and s.waits >= 0)\n"
        "    assert(s.fetch_seconds >= 0)\n"
        "    if s.fetches < 3 then return s.batch * 2 end\n"
        "  end,\n"
        "}\n"));
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "c");
    for (uint64_t i = 1; i <= 110; i++)
        ck_assert_uint_eq(tu_next(k), i);
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.prime_calls, 4);
    ck_assert_uint_eq(s.batch, 40);
    ck_assert_int_eq(nlogged, 0);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_policy_sees_each_counter_by_name)
{
    idp_config *cfg = load_ok(script("byname.lua",
        "return {\n"
        "  uri = 'mem://byname',\n"
        "  defaults = { batch = 10, low_watermark = 0 },\n"
        "  policy = function(s)\n"
        "    if s.counter == 'inode' then return 3 end\n"
        "  end,\n"
        "}\n"));
    idp_client *c = open_with(cfg, NULL);
    idp_counter *inode = tu_counter(c, "inode"), *x = tu_counter(c, "x");
    tu_next(inode);
    tu_next(x);
    ck_assert_uint_eq(batch_of(inode), 3);
    ck_assert_uint_eq(batch_of(x), 10);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_failing_policy_leaves_the_last_good_batch)
{
    idp_config *cfg = load_ok(script("failing.lua",
        "local calls = 0\n"
        "return {\n"
        "  uri = 'mem://failing',\n"
        "  defaults = { batch = 10, low_watermark = 0 },\n"
        "  policy = function(s)\n"
        "    calls = calls + 1\n"
        "    if calls == 1 then return 20 end\n"
        "    error('boom ' .. calls)\n"
        "  end,\n"
        "}\n"));
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "c");
    /* fetches of 10, then 20 (good), then 20 and 20: the failures keep it */
    for (uint64_t i = 1; i <= 50; i++)
        ck_assert_uint_eq(tu_next(k), i);
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.prime_calls, 3);
    ck_assert_uint_eq(s.batch, 20);
    ck_assert_int_eq(nlogged, 2);
    ck_assert_ptr_nonnull(strstr(logged, "[1] config policy for counter 'c' "
                                         "failed (failure 1"));
    ck_assert_ptr_nonnull(strstr(logged, "failing.lua:8: boom 2"));
    ck_assert_ptr_nonnull(strstr(logged, "failing.lua:8: boom 3"));
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

static const struct {
    const char *answer, *logged;
} nonsense[] = {
    {"0", "policy returned 0;"},
    {"-5", "policy returned -5;"},
    {"1.5", "policy returned 1.5;"},
    {"0/0", "policy returned "},
    {"1 << 31", "policy returned 2147483648;"},
    {"'many'", "policy returned the string \"many\";"},
    {"{}", "policy returned a table;"},
    {"true", "policy returned a boolean;"},
};

START_TEST(test_policy_nonsense_leaves_the_last_good_batch)
{
    char text[400];
    snprintf(text, sizeof text,
             "local calls = 0\n"
             "return {\n"
             "  uri = 'mem://nonsense',\n"
             "  defaults = { batch = 10, low_watermark = 0 },\n"
             "  policy = function(s)\n"
             "    calls = calls + 1\n"
             "    if calls == 1 then return 20.0 end\n"
             "    return %s\n"
             "  end,\n"
             "}\n", nonsense[_i].answer);
    idp_config *cfg = load_ok(script("nonsense.lua", text));
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "c");
    /* fetches of 10, then 20 (good), then 20: the nonsense keeps it */
    for (uint64_t i = 1; i <= 30; i++)
        ck_assert_uint_eq(tu_next(k), i);
    ck_assert_uint_eq(batch_of(k), 20);
    ck_assert_int_eq(nlogged, 1);
    ck_assert_msg(strstr(logged, nonsense[_i].logged) != NULL, "%s", logged);
    ck_assert_ptr_nonnull(strstr(logged, "nonsense.lua:5: policy returned"));
    ck_assert_ptr_nonnull(strstr(logged, "1..1073741824, or nil"));
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_policy_loops_and_bombs_are_capped_per_call)
{
    /* odd calls run away, even calls answer: each call gets its own budget
     * and the state stays usable after a capped call */
    idp_config_opts o = {.size = sizeof o, .log = capture,
                         .policy_instructions = 100000};
    idp_config *cfg = idp_config_load(script("runaway.lua",
        "local calls, keep = 0, {}\n"
        "return {\n"
        "  uri = 'mem://runaway',\n"
        "  defaults = { batch = 10, low_watermark = 0 },\n"
        "  policy = function(s)\n"
        "    calls = calls + 1\n"
        "    if calls == 2 then while true do end end\n"
        "    if calls == 4 then keep[1] = ('x'):rep(1 << 30) end\n"
        "    return 10 + calls\n"
        "  end,\n"
        "}\n"), &o, &err);
    ck_assert_msg(cfg != NULL, "%s", err.msg);
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "c");
    /* fetch 1 (10) -> 11; 2 (11) loops: 11; 3 (11) -> 13; 4 (13) bombs: 13;
     * 5 (13) -> 15 */
    uint64_t want_batch[] = {11, 11, 13, 13, 15};
    uint64_t id = 0;
    for (int f = 0; f < 5; f++) {
        uint64_t size = batch_of(k);
        for (uint64_t i = 0; i < size; i++)
            ck_assert_uint_eq(tu_next(k), ++id);
        ck_assert_uint_eq(batch_of(k), want_batch[f]);
    }
    ck_assert_int_eq(nlogged, 2);
    ck_assert_ptr_nonnull(strstr(logged, "runaway.lua:7: instruction limit of "
                                         "100000 exceeded"));
    ck_assert_ptr_nonnull(strstr(logged, "runaway.lua:8: memory limit"));
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

/* Threads on two counters of one client, with background fetches: the
 * policy is called from callers and the worker at once. */
typedef struct worker {
    idp_counter *k;
    uint64_t *ids;
    int n;
} worker;

static void *take(void *ud)
{
    worker *w = ud;
    for (int i = 0; i < w->n; i++) {
        idp_error e;
        if (idp_next(w->k, &w->ids[i], &e) != IDP_OK ||
            (i > 0 && w->ids[i] <= w->ids[i - 1]))
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_policy_is_serialised_across_threads)
{
    idp_config *cfg = load_ok(script("threads.lua",
        "local calls = 0\n"
        "return {\n"
        "  uri = 'mem://threads',\n"
        "  defaults = { batch = 16, low_watermark = 50 },\n"
        "  policy = function(s)\n"
        "    calls = calls + 1\n"
        "    return 8 + (calls * 7 + #s.counter) % 57\n"
        "  end,\n"
        "}\n"));
    idp_client *c = open_with(cfg, NULL);
    enum { T = 4, N = 20000 };
    worker w[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        w[t] = (worker){tu_counter(c, t % 2 ? "odd" : "even"),
                        malloc(N * sizeof(uint64_t)), N};
        ck_assert_ptr_nonnull(w[t].ids);
        pthread_create(&th[t], NULL, take, &w[t]);
    }
    for (int t = 0; t < T; t++) {
        void *rc;
        pthread_join(th[t], &rc);
        ck_assert_ptr_null(rc);
    }
    for (int parity = 0; parity < 2; parity++) {
        uint64_t *all = malloc(2 * N * sizeof *all);
        ck_assert_ptr_nonnull(all);
        memcpy(all, w[parity].ids, N * sizeof *all);
        memcpy(all + N, w[parity + 2].ids, N * sizeof *all);
        tu_assert_distinct(all, 2 * N);
        free(all);
    }
    for (int t = 0; t < T; t++)
        free(w[t].ids);
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(tu_counter(c, "odd"), &s);
    ck_assert_uint_gt(s.prime_calls, 100);
    ck_assert_int_eq(nlogged, 0);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

/* ---- the shipped examples ------------------------------------------------ */

/* Takes IDs 1..n one claim at a time (a cache of fill 1), settling after
 * each: fetches[k] is the fetch count once ID k's claim is done. */
static void take_one_by_one(idp_counter *k, uint64_t n, uint64_t *fetches)
{
    idp_cache c;
    idp_error e = {0, ""};
    ck_assert_int_eq(idp_cache_init(&c, sizeof c, k, 1, &e), IDP_OK);
    for (uint64_t i = 1; i <= n; i++) {
        uint64_t id = 0;
        ck_assert_msg(idp_cache_next(&c, &id, &e) == IDP_OK, "%s", e.msg);
        ck_assert_uint_eq(id, i);
        fetches[i] = tu_settle(k).prime_calls;
    }
    idp_cache_release(&c);
}

/* The first ID whose claim made the fetch count reach f; 0 if none. */
static uint64_t fetch_started_at(const uint64_t *fetches, uint64_t n, uint64_t f)
{
    for (uint64_t k = 1; k <= n; k++)
        if (fetches[k] >= f)
            return k;
    return 0;
}

START_TEST(test_policy_chooses_the_watermark_too)
{
    /* batch, watermark: 37 left of 1..100, then -1 (never) for 101..200:
     * the fetch ahead starts at ID 63; then only the claim that finds
     * the pool empty (ID 201) fetches */
    idp_config *cfg = load_ok(script("wm.lua",
        "local calls = 0\n"
        "return {\n"
        "  uri = 'mem://wm',\n"
        "  defaults = { batch = 100, adaptive = 0 },\n"
        "  policy = function(s)\n"
        "    calls = calls + 1\n"
        "    print(string.format('fetch %d left %d watermark %d async %s '\n"
        "                        .. 'since %s', s.fetches, s.left,\n"
        "                        s.watermark, tostring(s.async),\n"
        "                        tostring(s.since_fetch > 0)))\n"
        "    if calls == 1 then return 100, 37 end\n"
        "    return 100, -1\n"
        "  end,\n"
        "}\n"));
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t fetches[211];
    take_one_by_one(k, 210, fetches);
    ck_assert_uint_eq(fetch_started_at(fetches, 210, 2), 63);
    ck_assert_uint_eq(fetch_started_at(fetches, 210, 3), 201);
    /* what the policy was told: the first fetch by a caller, with the
     * engine's 25% of 100; the second ahead, 37 left, its own 37 */
    ck_assert_msg(strstr(logged, "fetch 1 left 0 watermark 25 async false "
                                 "since false") != NULL, "%s", logged);
    ck_assert_msg(strstr(logged, "fetch 2 left 37 watermark 37 async true "
                                 "since true") != NULL, "%s", logged);
    ck_assert_msg(strstr(logged, "fetch 3 left 0 watermark -1 async false")
                  != NULL, "%s", logged);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_a_nonsense_watermark_keeps_batch_and_watermark)
{
    /* the second answer's watermark is 1.5: logged, nothing of it kept
     * (the batch stays 100, the watermark 10) */
    idp_config *cfg = load_ok(script("wmbad.lua",
        "local calls = 0\n"
        "return {\n"
        "  uri = 'mem://wmbad',\n"
        "  defaults = { batch = 100, adaptive = 0 },\n"
        "  policy = function(s)\n"
        "    calls = calls + 1\n"
        "    if calls == 1 then return 100, 10 end\n"
        "    return 50, 1.5\n"
        "  end,\n"
        "}\n"));
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t fetches[201];
    take_one_by_one(k, 200, fetches);
    ck_assert_uint_eq(fetch_started_at(fetches, 200, 2), 90);
    ck_assert_uint_eq(fetch_started_at(fetches, 200, 3), 190);
    ck_assert_uint_eq(batch_of(k), 100);
    ck_assert_msg(strstr(logged, "wmbad.lua:5: policy returned 1.5 as the "
                                 "watermark; expected") != NULL, "%s", logged);
    ck_assert_ptr_nonnull(strstr(logged, "-1: never fetch ahead"));
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_script_arguments_arrive_as_dots)
{
    const char *args[] = {"seconds=7", "x", NULL};
    idp_config_opts o = {.size = sizeof o, .log = capture, .args = args};
    idp_config *cfg = idp_config_load(script("dots.lua",
        "local a, b = ...\n"
        "print(a .. '|' .. b .. '|' .. select('#', ...))\n"
        "return { uri = 'mem://dots' }\n"), &o, &err);
    ck_assert_msg(cfg != NULL, "%s", err.msg);
    ck_assert_msg(strstr(logged, "seconds=7|x|2") != NULL, "%s", logged);
    idp_config_free(cfg);
}
END_TEST

/* The bench's strategies (bench/strategies): each loads, and its policy
 * runs without a failure while a counter hands out IDs. */
static const char *const strategy_files[] = {
    "cosid", "fixed-1000", "idprime", "juicefs", "leaf", "metaprime0",
    "tidb", "tinyid"};

START_TEST(test_every_strategy_runs_its_policy_cleanly)
{
    char path[400];
    snprintf(path, sizeof path, "%s/../../bench/strategies/%s.lua",
             IDP_EXAMPLES_DIR, strategy_files[_i]);
    const char *args[] = {"seconds=2", NULL};
    idp_config_opts o = {.size = sizeof o, .log = capture, .args = args};
    idp_config *cfg = idp_config_load(path, &o, &err);
    ck_assert_msg(cfg != NULL, "%s", err.msg);
    idp_client *c = open_with(cfg, "mem://strategy");
    idp_counter *ks[] = {tu_counter(c, "inode"), tu_counter(c, "chunk")};
    for (int j = 0; j < 2; j++) {
        uint64_t last = 0;
        for (int i = 0; i < 3000; i++) {
            uint64_t id = tu_next(ks[j]);
            ck_assert_uint_gt(id, last);
            last = id;
        }
    }
    ck_assert_msg(nlogged == 0, "%s: %s", strategy_files[_i], logged);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

static const char *const examples[] = {"mem", "redis", "memcached", "sqlite"};

START_TEST(test_every_example_loads)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.lua", IDP_EXAMPLES_DIR, examples[_i]);
    idp_config *cfg = load_ok(path);
    char scheme[32];
    snprintf(scheme, sizeof scheme, "%s://", examples[_i]);
    ck_assert_ptr_nonnull(idp_config_uri(cfg));
    ck_assert_msg(strncmp(idp_config_uri(cfg), scheme, strlen(scheme)) == 0,
                  "%s", idp_config_uri(cfg));
    ck_assert_ptr_nonnull(idp_config_params(cfg)[0]);
    idp_config_free(cfg);
}
END_TEST

START_TEST(test_mem_example_hands_out_ids)
{
    idp_config *cfg = load_ok(IDP_EXAMPLES_DIR "/mem.lua");
    idp_client *c = open_with(cfg, NULL);
    idp_counter *k = tu_counter(c, "inode");
    for (uint64_t i = 1; i <= 1000; i++)
        ck_assert_uint_eq(tu_next(k), i);
    idp_close(c);
    idp_config_free(cfg);
}
END_TEST

int main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    const TTest *const tests[] = {
        test_good_config_gives_uri_params_and_policy,
        test_config_settings_reach_the_engine,
        test_uri_parameters_override_the_config,
        test_counters_lists_the_counters_table_sorted,
        test_syntax_error_names_file_line,
        test_runtime_error_names_file_line,
        test_endless_loop_is_stopped, test_long_calls_into_c_are_stopped,
        test_memory_bomb_is_stopped,
        test_bytecode_is_refused,
        test_metatable_tricks_are_refused,
        test_bad_settings_name_their_field_and_line,
        test_missing_file_is_named,
        test_print_and_warn_go_to_the_log,
        test_policy_sets_the_batch_as_its_script_says,
        test_policy_sees_each_counter_by_name,
        test_failing_policy_leaves_the_last_good_batch,
        test_policy_loops_and_bombs_are_capped_per_call,
        test_policy_is_serialised_across_threads,
        test_mem_example_hands_out_ids,
        test_policy_chooses_the_watermark_too,
        test_a_nonsense_watermark_keeps_batch_and_watermark,
        test_script_arguments_arrive_as_dots,
        NULL};
    Suite *s = suite_create("config");
    TCase *tc = tu_add_tcase(s, "config", 300, tests);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, test_sandbox_refuses_every_way_out, 0,
                        (int)(sizeof escapes / sizeof escapes[0]));
    tcase_add_loop_test(tc, test_policy_nonsense_leaves_the_last_good_batch, 0,
                        (int)(sizeof nonsense / sizeof nonsense[0]));
    tcase_add_loop_test(tc, test_every_example_loads, 0,
                        (int)(sizeof examples / sizeof examples[0]));
    tcase_add_loop_test(tc, test_every_strategy_runs_its_policy_cleanly, 0,
                        (int)(sizeof strategy_files / sizeof strategy_files[0]));
    int rc = tu_run(s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
