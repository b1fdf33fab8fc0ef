/*
 * store.h - an open store: the plugin, the host struct handed to it, and one
 * thin wrapper per plugin method, so no other file touches the table. Every
 * wrapper holds the store's lock for the call (plugins need no locking) and
 * prefixes errors with "<plugin> plugin: ". What a plugin logs during a call
 * reaches the application's callback after the lock is released. After
 * fork() a child drops the handle it inherited without a byte sent
 * (store_after_fork) and opens a new one on its next call.
 */
#ifndef IDP_STORE_H
#define IDP_STORE_H

#include <pthread.h>

#include "dispatcher.h"
#include "options.h"

#define STORE_PENDING 8        /* log lines held while the lock is */

typedef struct store {
    const plugin_lib *lib;    /* process-wide, never unloaded */
    idp_host host;
    void *handle;             /* NULL in a child until its first call */
    const engine_cfg *cfg;
    idp_log_fn log;
    void *log_ud;
    pthread_mutex_t lock;
    /* Under lock: what the plugin logged during the call in progress. */
    size_t npending;
    struct {
        int level;
        char msg[256];
    } pending[STORE_PENDING];
} store;

/* Opens the plugin's store for the parsed URI and validated cfg (both must
 * outlive the store). */
IDP_HIDDEN int store_open(store *s, const plugin_lib *lib, const uri_parsed *u,
                          const engine_cfg *cfg, idp_log_fn log, void *log_ud,
                          idp_error *err);
IDP_HIDDEN void store_close(store *s);
/* In a child after fork(): the inherited handle is dropped (the plugin's
 * drop, or kept unused), the lock made anew; the next call reconnects. */
IDP_HIDDEN void store_after_fork(store *s);

IDP_HIDDEN int store_incr(store *s, const char *key, uint64_t n,
                          uint64_t *value, idp_error *err);
/* Several increments; falls back to incr per op when the plugin has no
 * incr_many. Every op gets its own status and message. */
IDP_HIDDEN void store_incr_many(store *s, idp_incr_op *ops, size_t nops,
                                idp_error *errs);
IDP_HIDDEN int store_get(store *s, const char *key, uint64_t *value,
                         int *exists, idp_error *err);
IDP_HIDDEN int store_raise(store *s, const char *key, uint64_t value,
                           uint64_t *result, idp_error *err);
/* Lists on a handle of its own, opened for the call, so a long listing
 * blocks no fetch; cb runs with no lock held. */
IDP_HIDDEN int store_list(store *s, const char *prefix, idp_list_cb cb,
                          void *ud, idp_error *err);
/* The plugin's lower (give-back), IDP_EUNSUPPORTED without one. */
IDP_HIDDEN int store_lower(store *s, idp_lower_op *ops, size_t nops,
                           idp_error *err);
IDP_HIDDEN int store_can_lower(const store *s);
IDP_HIDDEN int store_roundtrips(store *s, uint64_t *count, idp_error *err);
IDP_HIDDEN int store_control(store *s, const char *command, idp_error *err);

/* The fork handlers: prepare waits until no store call is in progress and
 * holds calls off; parent and child let them go. */
IDP_HIDDEN void store_fork_prepare(void);
IDP_HIDDEN void store_fork_parent(void);
IDP_HIDDEN void store_fork_child(void);

/* Logs through the application's callback. */
IDP_HIDDEN void store_log(const store *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
