/*
 * config.h - Lua config scripts for libidprime (libidprime-config).
 *
 * A config script returns a table:
 *
 *   return {
 *     uri = "redis://127.0.0.1:6379/0",          -- optional
 *     defaults = { batch = 512, timeout_ms = 500, prefix = "fs:" },
 *     counters = { inode = { batch = 256, low_watermark = 50 } },
 *     policy = function(s)                       -- optional, once per fetch
 *       -- s.counter, s.batch, s.rate, s.fetch_seconds, s.waits, s.fetches,
 *       -- s.left, s.watermark (-1: none), s.since_fetch, s.async
 *       if s.waits > 0 then return s.batch * 2 end  -- nil keeps the batch
 *       -- return batch, watermark: also the IDs left at which the fetch
 *       -- ahead starts (-1: never), see idp_policy_set_watermark()
 *     end,
 *   }
 *
 * It is loaded as text only (never bytecode) in a sandbox: no io, os,
 * package/require, load/loadfile/dofile, debug, collectgarbage, string.dump;
 * print() and warn() go to the log callback; instructions and memory are
 * capped. Time spent in C counts against the instruction cap (250 ns of
 * CPU an instruction, so a loop over megabyte strings stops like any
 * loop), a string pattern or table.move that could outrun what is left is
 * refused before it starts, and table.insert/remove/sort refuse a table
 * with a __len metamethod. Every error names FILE:LINE.
 *
 *   idp_config *cfg = idp_config_load("redis.lua", NULL, &err);
 *   idp_options opt = {.size = sizeof opt};
 *   idp_config_apply(cfg, &opt);               // params + policy
 *   idp_client *c = idp_open(uri_arg ? uri_arg : idp_config_uri(cfg),
 *                            &opt, &err);      // the URI's query wins
 *   ...
 *   idp_close(c);
 *   idp_config_free(cfg);                      // after every such client
 */
#ifndef IDPRIME_CONFIG_H
#define IDPRIME_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "idprime/idprime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default caps (0 in idp_config_opts means these). */
#define IDP_CONFIG_MEMORY (16u << 20)           /* bytes, the script's heap */
#define IDP_CONFIG_INSTRUCTIONS 20000000u       /* running the script */
#define IDP_CONFIG_POLICY_INSTRUCTIONS 1000000u /* one policy call */

/* Options for idp_config_load(). Zero-initialise and set `size`; fields are
 * only ever appended. NULL options mean all defaults. */
typedef struct idp_config_opts {
    size_t size;                  /* sizeof(idp_config_opts) */
    idp_log_fn log;               /* policy failures, print(), warn(); NULL */
    void *log_ud;
    size_t max_memory;            /* 0: IDP_CONFIG_MEMORY */
    uint64_t max_instructions;    /* 0: IDP_CONFIG_INSTRUCTIONS */
    uint64_t policy_instructions; /* 0: IDP_CONFIG_POLICY_INSTRUCTIONS */
    /* NULL-terminated strings the script receives as `...` (the bench
     * passes "seconds=N", the length of its runs); may be NULL. */
    const char *const *args;
} idp_config_opts;

typedef struct idp_config idp_config;

/*
 * Runs the script at `path` in the sandbox and keeps what it returned.
 * Returns the config, or NULL with `err` filled (IDP_EINVAL and a message
 * starting "FILE:LINE:" for a bad script, IDP_ENOMEM); nothing is left
 * allocated on error.
 */
idp_config *idp_config_load(const char *path, const idp_config_opts *o,
                            idp_error *err);

/* The script's `uri`, or NULL when it gave none. Owned by the config. */
const char *idp_config_uri(const idp_config *cfg);

/* The settings as NULL-terminated "key=value" strings, sorted by key
 * ("batch=512", "inode_batch=256", ...). Owned by the config. */
const char *const *idp_config_params(const idp_config *cfg);

/* The names in the script's `counters` table as NULL-terminated strings,
 * sorted ({"chunk", "inode", NULL}); an empty list when it has none (a
 * proxy's intercepted keys, `idprime serve --upstream`). Owned by the
 * config. */
const char *const *idp_config_counters(const idp_config *cfg);

/*
 * Points opt->params at the config's settings and opt->policy/policy_ud at
 * its policy (NULL when the script has none). The policy may be called from
 * any thread: calls are serialised on the config, each one capped in
 * instructions and memory; one that fails or answers nonsense is logged and
 * answers 0, so the engine keeps its batch.
 */
void idp_config_apply(const idp_config *cfg, idp_options *opt);

/* Frees the config; call it after closing every client opened with it.
 * NULL is a no-op. */
void idp_config_free(idp_config *cfg);

/* ---- The Lua module ---------------------------------------------------- */

struct lua_State;

/* Opens the `idprime` module (what `require "idprime"` returns) on the
 * stack; for programs that embed Lua, as in package.preload.idprime. */
int idp_lua_open(struct lua_State *L);

/* A registry field a host may set to a config path: idp.open() then loads
 * that config when its options name none (`idprime run --config`). */
#define IDP_LUA_CONFIG_KEY "idprime.config"

#ifdef __cplusplus
}
#endif
#endif /* IDPRIME_CONFIG_H */
