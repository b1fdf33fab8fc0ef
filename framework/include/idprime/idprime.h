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
 *   the same counter; they are ordinary calls that serve a warm thread from
 *   per-thread state private to the library (no layout here is frozen).
 *   idp_close() must not race with any other call on the same client.
 * - A handle given as NULL by mistake (client, counter, out-pointer) gets
 *   IDP_EINVAL with a message, except on the per-ID calls idp_next() and
 *   idp_incr(), which do not check their counter.
 * - fork(): a client may be used in the child. The child discards what it
 *   inherited (pools, per-thread runs, caches, the store connection, the
 *   background worker: a gap, never a duplicate), reconnects on its first
 *   call, and closes with idp_close() as usual; the parent carries on.
 */
#ifndef IDPRIME_H
#define IDPRIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IDP_VERSION "0.2.0"

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
 * counters, ...) through this callback, if one is given. It is called with
 * no engine lock held, so it may call into the library (idp_metrics, ...). */
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
    /* Appended (the libraries that export idp_policy_set_watermark
     * fill them; a policy built against an older header never reads them): */
    uint64_t left;           /* IDs left in the segment being served when
                                the fetch finished (0 when a caller waited) */
    uint64_t watermark;      /* IDs left at which the fetch ahead of the
                                batch just fetched would start if the policy
                                chose none: its own last choice, else the
                                engine's rule; IDP_WATERMARK_NEVER for none */
    double since_fetch;      /* seconds since the previous fetch finished;
                                0 for the first */
    int async;               /* 1: fetched ahead in the background; 0: a
                                caller fetched it (and waited) */
} idp_policy_input;

/* Chooses the batch of the next fetch: 1..1073741824, or 0 to keep the
 * current one. Called with no engine lock held, from the thread that did the
 * fetch (a caller's or the background worker); the counter's next fetch
 * waits for it, so it must not allocate from that counter itself. It may
 * also choose the watermark, with idp_policy_set_watermark(). */
typedef uint64_t (*idp_policy_fn)(void *ud, const idp_policy_input *in);

/* A watermark meaning "never fetch ahead": the caller that finds the pool
 * empty fetches, and waits. */
#define IDP_WATERMARK_NEVER UINT64_MAX

/*
 * Called by a batch policy, during its call, on the thread it was called on
 * and with the `in` it was given:
 * the fetch ahead of the batch just fetched (and of every later one, until
 * the policy chooses again) starts as soon as a claim leaves at most
 * `left` IDs in that segment: `left` = 0 when the segment is used up, a
 * `left` at or above the batch at its first claim (always one batch
 * ahead), IDP_WATERMARK_NEVER for no fetch ahead. Until a policy chooses,
 * the engine's rule (low_watermark percent) holds. Returns IDP_OK, or
 * IDP_EINVAL when `in` is not the input of a policy call in progress.
 */
int idp_policy_set_watermark(const idp_policy_input *in, uint64_t left);

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
 * Closes the client: an in-flight fetch is finished (it is bounded by
 * timeout_ms), calls blocked waiting for a fetch return an error, and the
 * IDs left in the pools, the threads' runs and the caches are abandoned, a
 * gap that is never reused. Frees every counter of the client and revokes
 * its caches. NULL is a no-op.
 */
void idp_close(idp_client *c);

/*
 * The counter called `name` ([A-Za-z0-9_.:-], 1 to 200 bytes), created on
 * first use; the same handle on every later call. Nothing is fetched here.
 * Returns NULL with `err` filled on a bad name or out of memory.
 */
idp_counter *idp_counter_get(idp_client *c, const char *name, idp_error *err);

/*
 * The per-ID calls are marked so that, where the compiler can (GCC's
 * noplt), a program calls them through the GOT directly instead of the
 * PLT: one jump less per ID. It changes the call's code, not the ABI.
 */
#if defined(__has_attribute)
#if __has_attribute(noplt)
#define IDP_HOT_CALL __attribute__((noplt))
#endif
#endif
#ifndef IDP_HOT_CALL
#define IDP_HOT_CALL
#endif

/*
 * One ID: never handed out by anyone else, greater than every ID this
 * thread had from this counter before. A warm thread is served from a run
 * of IDs it took from the counter's pool (up to 1,024, at most a sixteenth of
 * the batch); it blocks only when the pool is empty, for at most about
 * timeout_ms. On error *id is left unchanged. Hot: neither `ctr` nor `id`
 * is checked.
 */
int idp_next(idp_counter *ctr, uint64_t *id, idp_error *err) IDP_HOT_CALL;

/*
 * INCRBY through the engine: allocates `n` (>= 1) consecutive IDs and stores
 * the last one in *last; the caller owns *last - n + 1 .. *last. Hot, as
 * idp_next: neither `ctr` nor `last` is checked.
 */
int idp_incr(idp_counter *ctr, uint64_t n, uint64_t *last,
             idp_error *err) IDP_HOT_CALL;

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
 * `fn` stops the listing and is returned. The listing runs on a store
 * connection of its own, with no engine lock held: `fn` may call into the
 * client (fetches go on meanwhile), but must not fork(). IDP_EUNSUPPORTED
 * where the store cannot enumerate its keys.
 */
typedef int (*idp_list_fn)(void *ud, const char *name, uint64_t value);
int idp_list(idp_client *c, idp_list_fn fn, void *ud, idp_error *err);

/* A snapshot of one counter's engine state and metrics. Set `size` to
 * sizeof(idp_counter_stats) before the call: fields are only ever appended,
 * and the library fills only what `size` covers. */
typedef struct idp_counter_stats {
    size_t size;              /* sizeof(idp_counter_stats) as the caller knows it */
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

/* Fills `out` (whose `size` the caller set). Exact once the threads are
 * quiet; every count only grows between snapshots. IDP_EINVAL on NULL or a
 * size too small. */
int idp_counter_stats_get(idp_counter *ctr, idp_counter_stats *out);

/*
 * The client's metrics as Prometheus text exposition. Returns a string to
 * free with idp_free(), or NULL when out of memory.
 */
char *idp_metrics(idp_client *c);

/*
 * Sends a store-specific test command to the plugin's optional testing
 * extension. The mem store uses it to inject faults ("fail N", "set NAME
 * VALUE", "delay MS"); stores without one answer IDP_EUNSUPPORTED.
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
 * IDPRIME_PLUGIN_PATH, idprime/ beside the running libidprime.so, the
 * configured install directory) and calls `fn` for each one accepted. Refused files are reported through the log
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

/*
 * Checks one engine parameter as idp_open() would, so that a config
 * loader says what is wrong before any store is opened: IDP_OK when `key`
 * is an engine key ("batch", or "NAME_batch" for counter NAME) and `value`
 * is allowed for it (`value` NULL: the key only); IDP_EINVAL with the
 * engine's message naming the key and its range otherwise;
 * IDP_EUNSUPPORTED when `key` is no engine key (a store's own key, checked
 * when the store is opened).
 */
int idp_check_param(const char *key, const char *value, idp_error *err);

/* 1 when `name` (`len` bytes, which may hold a NUL: then 0) is a valid
 * counter name: [A-Za-z0-9_.:-], 1 to 200 bytes. */
int idp_valid_name(const char *name, size_t len);

/* ---- A caller-owned cache for the hottest loops (opt-in) ------------- */

/*
 * idp_next() is an ordinary call that serves a warm thread from the
 * library's own per-thread state. A loop that wants the call gone too may
 * own a cache: a run of IDs taken from a counter in one go and served
 * inline by idp_cache_next(), with a check of the client's generation so
 * that idp_close() and fork() revoke it.
 *
 *   idp_cache k;
 *   idp_cache_init(&k, sizeof k, inode, 0, &err);   // 0: the default fill
 *   for (...) { if (idp_cache_next(&k, &id, &err) != IDP_OK) ...; }
 *   idp_cache_release(&k);
 *
 * Rules:
 * - A cache belongs to one thread at a time; it holds no lock and no
 *   reference the library must free. Only `size` is the caller's to set
 *   (idp_cache_init does); the other fields are the library's.
 * - The IDs a cache takes count as served when it takes them (the library
 *   cannot see an inline call). What it has not handed out when it is
 *   released, revoked or dropped is a gap: never handed out again.
 * - IDs from one cache strictly increase; across the cache and idp_next()
 *   on the same thread they are unique but need not increase.
 * - After idp_close() of its client, or in a child after fork(), the cache
 *   is revoked: idp_cache_next() fails with IDP_EINVAL ("revoked") after a
 *   close; after fork it refills in the child from the child's own fetch.
 */
typedef struct idp_cache {
    size_t size;          /* sizeof(idp_cache), as the caller knows it */
    uint64_t next;        /* the next ID to hand out */
    uint64_t end;         /* one past the last ID the cache holds */
    uint64_t gen_;        /* the generation it was filled under */
    const volatile uint64_t *live_; /* the client's current generation */
    idp_counter *ctr_;
    uint64_t owner_;      /* the client it belongs to */
    uint64_t fill_;       /* IDs taken per refill */
} idp_cache;

/* The largest fill of a cache, in IDs. */
#define IDP_CACHE_MAX_FILL 65536

/*
 * Binds `k` (of `size` bytes, sizeof(idp_cache)) to a counter, empty. `fill`
 * is the number of IDs each refill takes, 1..IDP_CACHE_MAX_FILL, or 0 for
 * the default (256). Fails with IDP_EINVAL on a NULL cache or counter, a
 * size too small, or a fill out of range.
 */
int idp_cache_init(idp_cache *k, size_t size, idp_counter *ctr, uint64_t fill,
                   idp_error *err);

/* The slow path behind idp_cache_next(); not for direct use. */
int idp_cache_refill_(idp_cache *k, uint64_t *id, idp_error *err);

/*
 * One ID from the cache, inline; refills from the counter when the cache is
 * empty or revoked. On error *id is left unchanged.
 */
static inline int idp_cache_next(idp_cache *k, uint64_t *id, idp_error *err)
{
    uint64_t v = k->next;
    if (__builtin_expect(v < k->end && k->gen_ == *k->live_, 1)) {
        k->next = v + 1;
        *id = v;
        return IDP_OK;
    }
    return idp_cache_refill_(k, id, err);
}

/* Drops what the cache holds (a gap) and leaves it empty and bound to its
 * counter. NULL is a no-op. */
void idp_cache_release(idp_cache *k);

#ifdef __cplusplus
}
#endif
#endif /* IDPRIME_H */
