/*
 * store.c - the host side of the plugin ABI: the idp_host struct, parameter
 * lookup, logging, and the wrappers that call plugin methods only where the
 * table's version and size cover them, falling back otherwise.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define TAB(s) ((s)->lib.tab)

static const char *host_param_str(const idp_host *h, const char *key)
{
    const store *s = h->host_data;
    return options_plugin_value(s->cfg, TAB(s)->params, key);
}

static int64_t host_param_int(const idp_host *h, const char *key)
{
    const char *v = host_param_str(h, key);
    return v != NULL ? strtoll(v, NULL, 10) : 0;
}

static void vlog(const store *s, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vlog(const store *s, int level, const char *fmt, va_list ap)
{
    if (s->log == NULL)
        return;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s plugin: ", TAB(s)->name);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    s->log(s->log_ud, level, msg);
}

void store_log(const store *s, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(s, level, fmt, ap);
    va_end(ap);
}

static void host_log(const idp_host *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(const idp_host *h, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(h->host_data, level, fmt, ap);
    va_end(ap);
}

/* A plugin that failed without saying why still gets a message. */
static int plugin_failed(const store *s, int rc, idp_error *err)
{
    if (err == NULL)
        return rc;
    if (rc < IDP_EINVAL || rc > IDP_EUNSUPPORTED)
        rc = IDP_ESTORE;
    if (err->msg[0] == '\0')
        snprintf(err->msg, sizeof err->msg, "%s", idp_strerror(rc));
    err->code = rc;
    return idp_prefixerr(err, "%s plugin", TAB(s)->name);
}

#define CALL(s, err, expr)                                              \
    do {                                                                \
        if ((err) != NULL)                                              \
            (err)->msg[0] = '\0';                                       \
        pthread_mutex_lock(&(s)->lock);                                 \
        int rc_ = (expr);                                               \
        pthread_mutex_unlock(&(s)->lock);                               \
        return rc_ == IDP_OK ? IDP_OK : plugin_failed((s), rc_, (err)); \
    } while (0)

int store_open(store *s, plugin_lib *lib, const uri_parsed *u,
               const engine_cfg *cfg, idp_log_fn log, void *log_ud,
               idp_error *err)
{
    memset(s, 0, sizeof *s);
    s->lib = *lib;
    s->cfg = cfg;
    s->log = log;
    s->log_ud = log_ud;
    s->host = (idp_host){
        .abi_version = IDP_PLUGIN_ABI_VERSION,
        .size = sizeof(idp_host),
        .uri = &u->pub,
        .timeout_ms = (unsigned)cfg->timeout_ms,
        .param_str = host_param_str,
        .param_int = host_param_int,
        .log = host_log,
        .host_data = s,
    };
    pthread_mutex_init(&s->lock, NULL);
    if (err != NULL)
        err->msg[0] = '\0';
    int rc = TAB(s)->open(&s->host, &s->handle, err);
    if (rc != IDP_OK) {
        plugin_failed(s, rc, err);
        pthread_mutex_destroy(&s->lock);
        memset(s, 0, sizeof *s);
        return rc < IDP_EINVAL || rc > IDP_EUNSUPPORTED ? IDP_ESTORE : rc;
    }
    memset(lib, 0, sizeof *lib);
    return IDP_OK;
}

void store_close(store *s)
{
    if (TAB(s) == NULL)
        return;
    TAB(s)->close(s->handle);
    dispatcher_unload(&s->lib);
    pthread_mutex_destroy(&s->lock);
}

int store_incr(store *s, const char *key, uint64_t n, uint64_t *value,
               idp_error *err)
{
    CALL(s, err, TAB(s)->incr(s->handle, key, n, value, err));
}

void store_incr_many(store *s, idp_incr_op *ops, size_t nops, idp_error *errs)
{
    for (size_t i = 0; i < nops; i++)
        errs[i].msg[0] = '\0';
    pthread_mutex_lock(&s->lock);
    if (nops > 1 && PLUGIN_HAS(TAB(s), incr_many)) {
        int rc = TAB(s)->incr_many(s->handle, ops, nops, &errs[0]);
        for (size_t i = 0; i < nops; i++) {
            if (rc != IDP_OK) {
                ops[i].status = rc;
                if (i > 0)
                    errs[i] = errs[0];
            } else if (ops[i].status != IDP_OK) {
                snprintf(errs[i].msg, sizeof errs[i].msg, "increment of '%s' "
                         "failed in a pipelined batch", ops[i].key);
            }
        }
    } else {
        for (size_t i = 0; i < nops; i++)
            ops[i].status = TAB(s)->incr(s->handle, ops[i].key, ops[i].n,
                                         &ops[i].value, &errs[i]);
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < nops; i++)
        if (ops[i].status != IDP_OK)
            ops[i].status = plugin_failed(s, ops[i].status, &errs[i]);
}

int store_get(store *s, const char *key, uint64_t *value, int *exists,
              idp_error *err)
{
    CALL(s, err, TAB(s)->get(s->handle, key, value, exists, err));
}

int store_raise(store *s, const char *key, uint64_t value, uint64_t *result,
                idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), raise_to))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store cannot "
                          "raise a counter", TAB(s)->name);
    CALL(s, err, TAB(s)->raise_to(s->handle, key, value, result, err));
}

int store_list(store *s, const char *prefix, idp_list_cb cb, void *ud,
               idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), list))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store cannot "
                          "list its counters (name them)", TAB(s)->name);
    CALL(s, err, TAB(s)->list(s->handle, prefix, cb, ud, err));
}

int store_roundtrips(store *s, uint64_t *count, idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), roundtrips))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store does "
                          "not count its increments", TAB(s)->name);
    CALL(s, err, TAB(s)->roundtrips(s->handle, count, err));
}

int store_control(store *s, const char *command, idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), control))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store takes "
                          "no control commands", TAB(s)->name);
    CALL(s, err, TAB(s)->control(s->handle, command, err));
}
