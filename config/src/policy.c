/*
 * policy.c - the bridge from the engine's batch-policy hook to a config
 * script's policy(stats) function.
 *
 * The engine calls it once per fetch, with that counter's lock held, from
 * whichever thread finished the fetch (a caller or the background worker),
 * for any number of counters and clients sharing the config. One mutex per
 * config serialises the calls on its lua_State; each call has its own
 * instruction budget and the state's memory cap. A call that fails or
 * answers nonsense is logged and answers 0: the engine keeps its batch (and
 * watermark). The script answers `batch[, watermark]`: the watermark, in
 * IDs left (-1: never fetch ahead), goes to idp_policy_set_watermark().
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "internal.h"

typedef struct policy_call {
    idp_config *cfg;
    const idp_policy_input *in;
    uint64_t batch;        /* the answer; 0 keeps the batch */
    int wm_set;            /* a watermark was answered too: */
    uint64_t watermark;    /* IDs left, or IDP_WATERMARK_NEVER */
    char bad[160];         /* what was wrong with the answer, if anything */
} policy_call;

/* The largest watermark a script may give in IDs; -1 is "never". */
#define CONFIG_MAX_WATERMARK ((lua_Integer)1 << 62)

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

/* Judges the answer at `idx`: nil (keep), or a whole number in lo..hi
 * (512.0 is 512; 1.5 is not). Returns 1 with *v set, 0 for nil, -1 with
 * pc->bad describing it (and naming `what`, unless NULL: the batch). */
static int answer(lua_State *L, int idx, lua_Integer lo, lua_Integer hi,
                  policy_call *pc, const char *what, lua_Integer *v)
{
    if (lua_isnil(L, idx))
        return 0;
    int isint = 0;
    if (lua_type(L, idx) == LUA_TNUMBER)
        *v = lua_tointegerx(L, idx, &isint);
    if (isint && *v >= lo && *v <= hi)
        return 1;
    char d[120];
    describe(L, idx, d, sizeof d);
    snprintf(pc->bad, sizeof pc->bad, "%s%s%s", d, what ? " as the " : "",
             what ? what : "");
    return -1;
}

/* Called through sandbox_call: policy(stats), then judges the answer:
 * batch[, watermark]. */
static int policy_run(lua_State *L)
{
    policy_call *pc = lua_touserdata(L, 1);
    const idp_policy_input *in = pc->in;
    lua_rawgeti(L, LUA_REGISTRYINDEX, pc->cfg->policy_ref);
    lua_createtable(L, 0, 10);
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
    lua_pushinteger(L, (lua_Integer)in->left);
    lua_setfield(L, -2, "left");
    lua_pushinteger(L, in->watermark == IDP_WATERMARK_NEVER
                           ? -1 : (lua_Integer)in->watermark);
    lua_setfield(L, -2, "watermark");
    lua_pushnumber(L, in->since_fetch);
    lua_setfield(L, -2, "since_fetch");
    lua_pushboolean(L, in->async);
    lua_setfield(L, -2, "async");
    lua_call(L, 1, 2);

    lua_Integer v = 0;
    int r = answer(L, -2, 1, (lua_Integer)CONFIG_MAX_BATCH, pc, NULL, &v);
    if (r < 0)
        return 0;
    pc->batch = r > 0 ? (uint64_t)v : 0; /* nil keeps the batch, by choice */
    r = answer(L, -1, -1, CONFIG_MAX_WATERMARK, pc, "watermark", &v);
    if (r > 0) {
        pc->wm_set = 1;
        pc->watermark = v < 0 ? IDP_WATERMARK_NEVER : (uint64_t)v;
    } else if (r < 0) {
        pc->batch = 0;
    }
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
    char text[640];
    snprintf(text, sizeof text, "config policy for counter '%s' failed "
             "(failure %llu; the batch is unchanged): %s", in->counter,
             (unsigned long long)n, what);
    cfg->log(cfg->log_ud, IDP_LOG_WARN, text);
}

uint64_t config_policy(void *ud, const idp_policy_input *in)
{
    idp_config *cfg = ud;
    policy_call pc = {cfg, in, 0, 0, 0, ""};
    char msg[480];
    pthread_mutex_lock(&cfg->mu);
    int rc = sandbox_call(&cfg->sb, policy_run, &pc, cfg->policy_instructions,
                          msg, sizeof msg);
    if (rc != 0) {
        report(cfg, in, msg);
        pc.batch = 0;
        pc.wm_set = 0;
    } else if (pc.bad[0] != '\0') {
        snprintf(msg, sizeof msg, "%s:%d: policy returned %s; expected a "
                 "whole number in 1..%llu, or nil to keep the batch, then "
                 "optionally a watermark in IDs left, 0..%lld (-1: never "
                 "fetch ahead; nil keeps it)", cfg->path, cfg->policy_line,
                 pc.bad,
                 (unsigned long long)CONFIG_MAX_BATCH,
                 (long long)CONFIG_MAX_WATERMARK);
        report(cfg, in, msg);
        pc.batch = 0;
        pc.wm_set = 0;
    }
    pthread_mutex_unlock(&cfg->mu);
    if (pc.wm_set)
        idp_policy_set_watermark(in, pc.watermark);
    return pc.batch;
}
