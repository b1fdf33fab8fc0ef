/*
 * store.h - an open store: the plugin, the host struct handed to it, and one
 * thin wrapper per plugin method, so no other file touches the table. Every
 * wrapper holds the store's lock for the call (plugins need no locking) and
 * prefixes errors with "<plugin> plugin: ".
 */
#ifndef IDP_STORE_H
#define IDP_STORE_H

#include <pthread.h>

#include "dispatcher.h"
#include "options.h"

typedef struct store {
    plugin_lib lib;
    idp_host host;
    void *handle;
    const engine_cfg *cfg;
    idp_log_fn log;
    void *log_ud;
    pthread_mutex_t lock;
} store;

/* Opens the plugin's store for the parsed URI and validated cfg (both must
 * outlive the store). Takes ownership of `lib` on success. */
IDP_HIDDEN int store_open(store *s, plugin_lib *lib, const uri_parsed *u,
                          const engine_cfg *cfg, idp_log_fn log, void *log_ud,
                          idp_error *err);
IDP_HIDDEN void store_close(store *s);

IDP_HIDDEN int store_incr(store *s, const char *key, uint64_t n,
                          uint64_t *value, idp_error *err);
/* Several increments; falls back to incr per op when the plugin has no
 * incr_many. Every op gets its own status. */
IDP_HIDDEN void store_incr_many(store *s, idp_incr_op *ops, size_t nops,
                                idp_error *errs);
IDP_HIDDEN int store_get(store *s, const char *key, uint64_t *value,
                         int *exists, idp_error *err);
IDP_HIDDEN int store_raise(store *s, const char *key, uint64_t value,
                           uint64_t *result, idp_error *err);
IDP_HIDDEN int store_list(store *s, const char *prefix, idp_list_cb cb,
                          void *ud, idp_error *err);
IDP_HIDDEN int store_roundtrips(store *s, uint64_t *count, idp_error *err);
IDP_HIDDEN int store_control(store *s, const char *command, idp_error *err);

/* Logs through the application's callback. */
IDP_HIDDEN void store_log(const store *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
