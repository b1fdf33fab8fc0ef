/*
 * idprime.h - the public API of libidprime.
 *
 * idprime hands out unique 64-bit IDs from named counters kept in a shared
 * store, paying one store round trip per batch of IDs instead of one per ID.
 *
 *   idp_error err;
 *   idp_client *c = idp_open("redis://127.0.0.1:6379/0?inode_batch=512",
 *                            NULL, &err);
 *   if (c == NULL) { fprintf(stderr, "%s\n", err.msg); ... }
 *   idp_counter *inode = idp_counter_get(c, "inode", &err);
 *   uint64_t id;
 *   if (idp_next(inode, &id, &err) != IDP_OK) ...
 *   idp_close(c);
 *
 * Conventions:
 * - Every call that can fail returns an idp_status (IDP_OK is 0) and, when
 *   `err` is not NULL, fills it with the same code and a message that names
 *   what was wrong. `err` may be NULL wherever it appears.
 * - Handles are opaque. A client owns its counters: idp_close() frees both.
 *   Strings the library allocates for the caller are freed with idp_free().
 * - idp_next() and idp_incr() may be called from any number of threads on
 *   the same counter. idp_close() must not race with any other call on the
 *   same client.
 */
#ifndef IDPRIME_H
#define IDPRIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IDP_VERSION "0.1.0"

/* The largest value a counter may reach: values stay below 2^63. */
#define IDP_MAX_VALUE ((uint64_t)INT64_MAX)

typedef enum idp_status {
    IDP_OK = 0,
    IDP_EINVAL,       /* bad argument, URI, parameter or counter name */
    IDP_ENOMEM,       /* out of memory */
    IDP_EPLUGIN,      /* no plugin for the scheme, or a plugin was refused */
    IDP_ESTORE,       /* the store failed or answered nonsense */
    IDP_ETIMEOUT,     /* the store did not answer within timeout_ms */
    IDP_EREGRESS,     /* the store answered at or below a value already held */
    IDP_ERANGE,       /* the counter would reach 2^63 */
    IDP_EUNSUPPORTED  /* the store does not offer this operation */
} idp_status;

/* An error: the status code and a message naming what was wrong. */
typedef struct idp_error {
    int code;
    char msg[256];
} idp_error;

/* A short constant description of a status code ("store error", ...). */
const char *idp_strerror(int code);

/* Log levels handed to the log callback. */
enum { IDP_LOG_ERROR = 0, IDP_LOG_WARN = 1, IDP_LOG_INFO = 2, IDP_LOG_DEBUG = 3 };

/* The library never prints; it reports warnings (a store that may lose
 * counters, ...) through this callback, if one is given. */
typedef void (*idp_log_fn)(void *ud, int level, const char *msg);

/*
 * Options for idp_open(). Zero-initialise, set `size` to
 * sizeof(idp_options), and fill what you need; fields are only ever
 * appended, so a program built against an older header keeps working.
 */
/* What the engine tells a batch policy, once per fetch (never per ID). */
typedef struct idp_policy_input {
    const char *counter;     /* the counter's name */
    uint64_t batch;          /* the batch of the fetch that just finished */
    double rate;             /* IDs/s handed out while the previous batch
                                was served; 0 until known */
    double fetch_seconds;    /* latency of the fetch that just finished */
    uint64_t waits;          /* calls that waited since the previous fetch */
    uint64_t fetches;        /* successful fetches so far, this one included */
} idp_policy_input;

/* Chooses the batch of the next fetch: 1..1073741824, or 0 to keep the
 * current one. Called with the counter's lock held: it must not call back
 * into the library for the same counter. */
typedef uint64_t (*idp_policy_fn)(void *ud, const idp_policy_input *in);

typedef struct idp_options {
    size_t size;             /* sizeof(idp_options) as the caller knows it */
    idp_log_fn log;          /* may be NULL: no logging */
    void *log_ud;
    const char *plugin_path; /* searched before IDPRIME_PLUGIN_PATH; may be NULL */
    /* NULL-terminated "key=value" parameters applied before the URI's own
     * query, so the URI overrides them (a config file uses this). */
    const char *const *params;
    /* Optional batch policy (a config script's policy function). A policy
     * that answers out of range is reported and the last good batch kept. */
    idp_policy_fn policy;
    void *policy_ud;
} idp_options;

typedef struct idp_client idp_client;
typedef struct idp_counter idp_counter;

/*
 * Opens a client on the store the URI names, loading its plugin. Every
 * query parameter is validated: an unknown key or a value out of range fails
 * with IDP_EINVAL and a message naming the key and its range.
 * Returns the client, or NULL with `err` filled; nothing is left open on
 * error.
 */
idp_client *idp_open(const char *uri, const idp_options *opt, idp_error *err);

/*
 * Closes the client: an in-flight background fetch is finished (it is bounded
 * by timeout_ms) and the IDs left in the pools are abandoned, a gap that is
 * never reused. Frees every counter of the client. NULL is a no-op.
 */
void idp_close(idp_client *c);

/*
 * The counter called `name` ([A-Za-z0-9_.:-], 1 to 200 bytes), created on
 * first use; the same handle on every later call. Nothing is fetched here.
 * Returns NULL with `err` filled on a bad name or out of memory.
 */
idp_counter *idp_counter_get(idp_client *c, const char *name, idp_error *err);

/*
 * One ID from the counter's pool: greater than every ID this client handed
 * out before on this counter, never handed out by anyone else. Blocks only
 * when the pool is empty, for at most about timeout_ms.
 * On error *id is left unchanged.
 */
int idp_next(idp_counter *ctr, uint64_t *id, idp_error *err);

/*
 * INCRBY through the engine: allocates `n` (>= 1) consecutive IDs and stores
 * the last one in *last; the caller owns *last - n + 1 .. *last.
 */
int idp_incr(idp_counter *ctr, uint64_t n, uint64_t *last, idp_error *err);

/*
 * The store's current value of the counter called `name` (the last ID
 * handed out by anyone), bypassing the pool and allocating nothing.
 * *exists is set to 0 (and *value to 0) for a counter the store has never
 * seen; `exists` may be NULL.
 */
int idp_get(idp_client *c, const char *name, uint64_t *value, int *exists,
            idp_error *err);

/*
 * Raises the store's counter to at least `value`, never lowering it, and
 * stores the resulting value in *result (may be NULL). Used by migrate.
 */
int idp_raise(idp_client *c, const char *name, uint64_t value,
              uint64_t *result, idp_error *err);

/*
 * Calls `fn` once for every counter the store holds under the client's
 * prefix, with the name (prefix removed) and value; a non-zero return from
 * `fn` stops the listing and is returned. `fn` runs while the client's
 * store is busy: it must not call into the same client. IDP_EUNSUPPORTED
 * where the store cannot enumerate its keys.
 */
typedef int (*idp_list_fn)(void *ud, const char *name, uint64_t value);
int idp_list(idp_client *c, idp_list_fn fn, void *ud, idp_error *err);

/* A snapshot of one counter's engine state and metrics. */
typedef struct idp_counter_stats {
    uint64_t ids_served;      /* IDs handed out by next/incr */
    uint64_t prime_calls;     /* successful store fetches (round trips) */
    uint64_t prefetch_async;  /* of those, fetched in the background */
    uint64_t waited_calls;    /* next/incr calls that had to wait for a fetch */
    uint64_t errors;          /* failed fetches */
    uint64_t regressions;     /* store answers refused as going backwards */
    uint64_t unused_ids;      /* fetched, not served: in the pool or skipped */
    uint64_t batch;           /* the batch size of the next fetch */
    uint64_t high;            /* the highest value fetched from the store */
    double fetch_seconds;     /* total time spent in successful fetches */
    int in_flight;            /* 1 while a fetch is queued or running */
} idp_counter_stats;

void idp_counter_stats_get(idp_counter *ctr, idp_counter_stats *out);

/*
 * The client's metrics as Prometheus text exposition. Returns a string to
 * free with idp_free(), or NULL when out of memory.
 */
char *idp_metrics(idp_client *c);

/*
 * Sends a store-specific command to the plugin. The mem store uses it to
 * inject faults ("fail N", "set NAME VALUE", "delay MS"); other stores
 * answer IDP_EUNSUPPORTED.
 */
int idp_control(idp_client *c, const char *command, idp_error *err);

/*
 * The store's own count of increments served to anyone (Redis INFO
 * commandstats, memcached stats, ...), for comparing with prime_calls.
 * IDP_EUNSUPPORTED where the store keeps no such count.
 */
int idp_store_roundtrips(idp_client *c, uint64_t *count, idp_error *err);

/* The plugin behind an open client: its name ("redis", "mem", ...). */
const char *idp_client_store(const idp_client *c);

/* Frees what the library allocated for the caller. NULL is a no-op. */
void idp_free(void *p);

/* ---- Plugins ---------------------------------------------------------- */

/* One loadable plugin as the dispatcher sees it. */
typedef struct idp_plugin_info {
    const char *name;     /* "redis" */
    const char *schemes;  /* "redis" or "sqlite,sqlite3" */
    unsigned abi_version;
    const char *path;     /* the file it was loaded from */
} idp_plugin_info;

typedef void (*idp_plugin_fn)(void *ud, const idp_plugin_info *info);

/*
 * Loads every plugin on the search path (opt->plugin_path,
 * IDPRIME_PLUGIN_PATH, the build tree, idprime/ beside the running
 * libidprime.so, the configured install directory) and calls
 * `fn` for each one accepted. Refused files are reported through the log
 * callback in `opt` (may be NULL). Returns IDP_OK when at least one plugin
 * was found.
 */
int idp_plugins(const idp_options *opt, idp_plugin_fn fn, void *ud,
                idp_error *err);

/* ---- Parameters -------------------------------------------------------- */

/* One URI parameter as documented by the engine or a plugin. */
typedef struct idp_param_doc {
    const char *owner;   /* "engine" or the plugin name */
    const char *key;     /* "batch", "NAME_batch", "db", ... */
    const char *def;     /* default value as text ("" for none) */
    const char *range;   /* "1..1073741824", "NORMAL|FULL", "text" */
    const char *help;
} idp_param_doc;

typedef void (*idp_param_fn)(void *ud, const idp_param_doc *doc);

/* Lists the engine's URI parameters (for --help and the README). */
void idp_engine_params(idp_param_fn fn, void *ud);

/* ---- The inline hot path ---------------------------------------------- */

/*
 * Each thread that allocates from a counter holds a lease: a run of IDs
 * carved from the counter's pool that only it hands out. idp_next() and
 * idp_incr() serve a warm lease inline, with two loads and a store and no
 * call; anything else (an empty lease, a first call, metaprime=0) goes to
 * the library. The layout below is part of the ABI: every counter begins
 * with its leases, one per thread slot, IDP_LEASE_STRIDE bytes apart, and
 * idp_lease_offset_ is the calling thread's slot times the stride (0, an
 * always-empty lease, until the thread's first call).
 * Define IDP_NO_INLINE before including this header to call the library
 * instead (the same functions, exported under the same names).
 */
#define IDP_LEASE_STRIDE 128

typedef struct idp_lease_ {
    uint64_t next;   /* the next ID to hand out */
    uint64_t end;    /* one past the lease's last ID */
} idp_lease_;

/* The slow paths behind the inline ones; not for direct use. */
int idp_next_refill_(idp_counter *ctr, uint64_t *id, idp_error *err);
int idp_incr_refill_(idp_counter *ctr, uint64_t n, uint64_t *last,
                     idp_error *err);

#if !defined(IDP_NO_INLINE) && !defined(IDP_BUILDING_LIBRARY) && \
    (defined(__GNUC__) || defined(__clang__))
extern __thread size_t idp_lease_offset_;

static inline idp_lease_ *idp_lease_of_(idp_counter *ctr)
{
    return (idp_lease_ *)(void *)((char *)ctr + idp_lease_offset_);
}

static inline int idp_next_inline_(idp_counter *ctr, uint64_t *id,
                                   idp_error *err)
{
    idp_lease_ *l = idp_lease_of_(ctr);
    uint64_t v = __atomic_load_n(&l->next, __ATOMIC_RELAXED);
    if (__builtin_expect(v < __atomic_load_n(&l->end, __ATOMIC_RELAXED), 1)) {
        __atomic_store_n(&l->next, v + 1, __ATOMIC_RELAXED);
        *id = v;
        return IDP_OK;
    }
    return idp_next_refill_(ctr, id, err);
}

static inline int idp_incr_inline_(idp_counter *ctr, uint64_t n,
                                   uint64_t *last, idp_error *err)
{
    idp_lease_ *l = idp_lease_of_(ctr);
    uint64_t v = __atomic_load_n(&l->next, __ATOMIC_RELAXED);
    uint64_t end = __atomic_load_n(&l->end, __ATOMIC_RELAXED);
    if (__builtin_expect(n - 1 < end - v, 1)) { /* 1 <= n <= what is left */
        __atomic_store_n(&l->next, v + n, __ATOMIC_RELAXED);
        *last = v + n - 1;
        return IDP_OK;
    }
    return idp_incr_refill_(ctr, n, last, err);
}

#define idp_next idp_next_inline_
#define idp_incr idp_incr_inline_
#endif

#ifdef __cplusplus
}
#endif
#endif /* IDPRIME_H */
