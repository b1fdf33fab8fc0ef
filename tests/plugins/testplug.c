/*
 * testplug.c - one small working store, compiled once per dispatcher test
 * case with -D flags that make it good in an old way or bad in one precise
 * way (see tests/plugins/CMakeLists.txt and tests/unit/test_dispatcher.c).
 *
 *   TP_NAME="x"       the name in the table (the file is idprime-<file>.so)
 *   TP_SCHEME="x"     the one scheme it claims (default: TP_NAME)
 *   TP_ABI=n          the ABI version it declares (default: the current one)
 *   TP_SIZE=n         the table size it declares (default: the version-1
 *                     methods only, as a plugin built against the first
 *                     header would declare)
 *   TP_SPARSE         declare the full size with every optional method NULL
 *   TP_NO_INCR        leave the required incr NULL
 *   TP_NO_ENTRY       export another symbol instead of idprime_plugin_entry
 *   TP_PARAMS_MINMAX  an INT parameter whose min is above its max
 *   TP_PARAMS_ENGKEY  a parameter named like the engine's "batch"
 *
 * The store: counters live in the handle (the host never calls two methods
 * on one handle at once, so no lock). Every incr is logged at DEBUG as
 * "incr 'KEY' by N" so a test can count round trips, and waits delay_ms
 * first so a test can make background fetches pile up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idprime/plugin.h"

#ifndef TP_SCHEME
#define TP_SCHEME TP_NAME
#endif
#ifndef TP_ABI
#define TP_ABI IDP_PLUGIN_ABI_VERSION
#endif
#ifdef TP_SPARSE
#define TP_SIZE sizeof(idp_plugin)
#endif
#ifndef TP_SIZE
#define TP_SIZE offsetof(idp_plugin, incr_many)
#endif

typedef struct tp_counter {
    char *key;
    uint64_t value;
    struct tp_counter *next;
} tp_counter;

typedef struct tp_store {
    const idp_host *host;
    unsigned delay_ms;
    tp_counter *counters;
} tp_store;

#if defined(TP_PARAMS_MINMAX)
static const idp_param_spec tp_params[] = {
    {"level", IDP_PARAM_INT, NULL, 10, 1, NULL, "min above max"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
#elif defined(TP_PARAMS_ENGKEY)
static const idp_param_spec tp_params[] = {
    {"batch", IDP_PARAM_INT, "1", 1, 100, NULL, "collides with the engine"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
#else
static const idp_param_spec tp_params[] = {
    {"delay_ms", IDP_PARAM_INT, "0", 0, 10000, NULL,
     "wait before every increment"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
#endif

static tp_counter *find(tp_store *s, const char *key, int create)
{
    for (tp_counter *c = s->counters; c != NULL; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c;
    if (!create)
        return NULL;
    tp_counter *c = calloc(1, sizeof *c);
    if (c == NULL || (c->key = strdup(key)) == NULL) {
        free(c);
        return NULL;
    }
    c->next = s->counters;
    s->counters = c;
    return c;
}

static int tp_open(const idp_host *host, void **store, idp_error *err)
{
    tp_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
#if !defined(TP_PARAMS_MINMAX) && !defined(TP_PARAMS_ENGKEY)
    s->delay_ms = (unsigned)host->param_int(host, "delay_ms");
#endif
    *store = s;
    return IDP_OK;
}

static void tp_close(void *store)
{
    tp_store *s = store;
    for (tp_counter *c = s->counters, *next; c != NULL; c = next) {
        next = c->next;
        free(c->key);
        free(c);
    }
    free(s);
}

#ifndef TP_NO_INCR
static int tp_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    tp_store *s = store;
    if (s->delay_ms > 0) {
        struct timespec ts = {s->delay_ms / 1000,
                              (long)(s->delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    tp_counter *c = find(s, key, 1);
    if (c == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    if (n > IDP_MAX_VALUE - c->value)
        return idp_plugin_error(err, IDP_ERANGE, "'%s' would pass 2^63", key);
    c->value += n;
    *value = c->value;
    s->host->log(s->host, IDP_LOG_DEBUG, "incr '%s' by %llu", key,
                 (unsigned long long)n);
    return IDP_OK;
}
#endif

static int tp_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    (void)err;
    tp_counter *c = find(store, key, 0);
    *exists = c != NULL;
    *value = c != NULL ? c->value : 0;
    return IDP_OK;
}

#if !defined(TP_SPARSE)
/*
 * The optional slots of a table whose declared size ends before them. A
 * plugin built against the first header has whatever the linker put next
 * in these bytes; here they are traps that say so loudly, so a host that
 * reads past the declared size fails the test instead of passing by luck.
 */
static int trap(void *store, const char *method, idp_error *err)
{
    tp_store *s = store;
    s->host->log(s->host, IDP_LOG_ERROR, "trap: %s called beyond the "
                 "table's size", method);
    return idp_plugin_error(err, IDP_ESTORE, "trap: %s called beyond the "
                            "table's size", method);
}

static int trap_incr_many(void *store, idp_incr_op *ops, size_t nops,
                          idp_error *err)
{
    (void)ops, (void)nops;
    return trap(store, "incr_many", err);
}

static int trap_raise_to(void *store, const char *key, uint64_t value,
                         uint64_t *result, idp_error *err)
{
    (void)key, (void)value, (void)result;
    return trap(store, "raise_to", err);
}

static int trap_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                     idp_error *err)
{
    (void)prefix, (void)cb, (void)ud;
    return trap(store, "list", err);
}

static int trap_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    (void)count;
    return trap(store, "roundtrips", err);
}

static int trap_control(void *store, const char *command, idp_error *err)
{
    (void)command;
    return trap(store, "control", err);
}
#endif

static const char *const tp_schemes[] = {TP_SCHEME, NULL};

static const idp_plugin tp_plugin = {
    .abi_version = TP_ABI,
    .size = (uint32_t)(TP_SIZE),
    .name = TP_NAME,
    .schemes = tp_schemes,
    .params = tp_params,
    .open = tp_open,
    .close = tp_close,
#ifndef TP_NO_INCR
    .incr = tp_incr,
#endif
    .get = tp_get,
#ifndef TP_SPARSE
    .incr_many = trap_incr_many,
    .raise_to = trap_raise_to,
    .list = trap_list,
    .roundtrips = trap_roundtrips,
    .control = trap_control,
#endif
};

#ifdef TP_NO_ENTRY
/* Looks like a plugin, but under the wrong name. */
IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry_v0(void)
#else
IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
#endif
{
    return &tp_plugin;
}
