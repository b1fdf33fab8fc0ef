/*
 * policy.c - the bridge from the engine's batch-policy hook to a config
 * script's policy(stats) function.
 *
 * The engine calls it once per fetch, with that counter's lock held, from
 * whichever thread finished the fetch (a caller or the background worker),
 * for any number of counters and clients sharing the config. One mutex per
 * config serialises the calls on its lua_State; each call has its own
 * instruction budget and the state's memory cap. A call that fails or
 * answers nonsense is logged and answers 0: the engine keeps its batch.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

typedef struct policy_call {
    idp_config *cfg;
    const idp_policy_input *in;
    uint64_t batch;        /* the answer; 0 keeps the batch */
    char bad[160];         /* what was wrong with the answer, if anything */
} policy_call;

static void describe(lua_State *L, int idx, char *buf, size_t len)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, len, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, len, "%.14g", (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING:
        snprintf(buf, len, "the string \"%.40s\"", lua_tostring(L, idx));
        break;
    default:
        snprintf(buf, len, "a %s", luaL_typename(L, idx));
    }
}

/* Called through sandbox_call: policy(stats), then judges the answer. */
static int policy_run(lua_State *L)
{
    policy_call *pc = lua_touserdata(L, 1);
    const idp_policy_input *in = pc->in;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pc->cfg->policy_ref);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, in->counter);
    lua_setfield(L, -2, "counter");
    lua_pushinteger(L, (lua_Integer)in->batch);
    lua_setfield(L, -2, "batch");
    lua_pushnumber(L, in->rate);
    lua_setfield(L, -2, "rate");
    lua_pushnumber(L, in->fetch_seconds);
    lua_setfield(L, -2, "fetch_seconds");
    lua_pushinteger(L, (lua_Integer)in->waits);
    lua_setfield(L, -2, "waits");
    lua_pushinteger(L, (lua_Integer)in->fetches);
    lua_setfield(L, -2, "fetches");
    lua_call(L, 1, 1);

    if (lua_isnil(L, -1))
        return 0; /* keep the batch, by choice */
    int isint = 0;
    lua_Integer v = 0;
    if (lua_type(L, -1) == LUA_TNUMBER)
        v = lua_tointegerx(L, -1, &isint); /* 512.0 is 512; 1.5 is not */
    if (isint && v >= 1 && (uint64_t)v <= CONFIG_MAX_BATCH) {
        pc->batch = (uint64_t)v;
        return 0;
    }
    describe(L, -1, pc->bad, sizeof pc->bad);
    return 0;
}

/* Logs a failure: every one of the first ten, then at powers of two, so a
 * policy that always fails cannot flood the log. */
static void report(idp_config *cfg, const idp_policy_input *in,
                   const char *what)
{
    uint64_t n = ++cfg->failures;
    if (cfg->log == NULL || (n > 10 && (n & (n - 1)) != 0))
        return;
    char text[512];
    snprintf(text, sizeof text, "config policy for counter '%s' failed "
             "(failure %llu; the batch is unchanged): %s", in->counter,
             (unsigned long long)n, what);
    cfg->log(cfg->log_ud, IDP_LOG_WARN, text);
}

uint64_t config_policy(void *ud, const idp_policy_input *in)
{
    idp_config *cfg = ud;
    policy_call pc = {cfg, in, 0, ""};
    char msg[300];
    pthread_mutex_lock(&cfg->mu);
    int rc = sandbox_call(&cfg->sb, policy_run, &pc, cfg->policy_instructions,
                          msg, sizeof msg);
    if (rc != 0) {
        report(cfg, in, msg);
        pc.batch = 0;
    } else if (pc.bad[0] != '\0') {
        snprintf(msg, sizeof msg, "%s:%d: policy returned %s; expected a "
                 "whole number in 1..%llu, or nil to keep the batch",
                 cfg->path, cfg->policy_line, pc.bad,
                 (unsigned long long)CONFIG_MAX_BATCH);
        report(cfg, in, msg);
        pc.batch = 0;
    }
    pthread_mutex_unlock(&cfg->mu);
    return pc.batch;
}
