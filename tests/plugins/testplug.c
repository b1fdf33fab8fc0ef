/*
 * testplug.c - one small working store, compiled once per dispatcher test
 * case with -D flags that make it good in one way or bad in one precise
 * way (see tests/plugins/CMakeLists.txt and tests/unit/test_dispatcher.c).
 *
 *   TP_NAME="x"       the name in the table (the file is idprime-<file>.so)
 *   TP_SCHEME="x"     the one scheme it claims (default: TP_NAME)
 *   TP_ABI=n          the ABI version it declares (default: the current one)
 *   TP_SIZE=n         the table size it declares (default: the required
 *                     methods only; the optional slots after them are traps)
 *   TP_SPARSE         declare the full size with every optional method NULL
 *   TP_FULL           declare the full size with every optional method
 *                     working (incr_many, raise_to, list, drop, and the
 *                     testing table: roundtrips, control, delay_ms as a
 *                     test-only key beside the plugin's own "level")
 *   TP_BIG            as TP_FULL, in a table larger than this header's
 *                     idp_plugin (and a testing table larger than its
 *                     idp_plugin_testing), as a newer plugin of the same
 *                     ABI version has: the extra slots are traps
 *   TP_LAYOUT_V1      the table laid out as ABI version 1 had it
 *                     (roundtrips and control where drop and testing are
 *                     now), every slot a trap; use with TP_ABI=1
 *   TP_NO_INCR        leave the required incr NULL
 *   TP_NO_ENTRY       export another symbol instead of idprime_plugin_entry
 *   TP_PARAMS_MINMAX  an INT parameter whose min is above its max
 *   TP_PARAMS_ENGKEY  a parameter named like the engine's "batch"
 *
 * The store: counters live in the handle (the host never calls two methods
 * on one handle at once, so no lock). Every increment is logged at DEBUG
 * as "incr 'KEY' by N" (incr_many logs "incr_many of N" first, then each
 * op) so a test can count round trips, and each call waits delay_ms first
 * so a test can make background fetches pile up. A key containing
 * "wrongtype" refuses every increment with IDP_ESTORE and a Redis-like
 * reason ("WRONGTYPE ..."), for per-op errors of incr_many. drop logs
 * "drop" at DEBUG.
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
#if defined(TP_BIG) && !defined(TP_FULL)
#define TP_FULL
#endif
#if defined(TP_SPARSE) || defined(TP_FULL)
#define TP_SIZE sizeof(idp_plugin)
#endif
#ifndef TP_SIZE
#define TP_SIZE offsetof(idp_plugin, incr_many)
#endif
/* The slots beyond the declared size are traps, except in these. */
#if !defined(TP_SPARSE) && !defined(TP_FULL) && !defined(TP_LAYOUT_V1)
#define TP_TRAPS
#endif

#define TP_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong " \
                     "kind of value"

typedef struct tp_counter {
    char *key;
    uint64_t value;
    struct tp_counter *next;
} tp_counter;

typedef struct tp_store {
    const idp_host *host;
    unsigned delay_ms;
    tp_counter *counters;
    uint64_t increments;  /* the store's own count (roundtrips) */
    uint64_t fail_next;   /* control "fail N": the next N calls fail */
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
#elif defined(TP_FULL)
/* delay_ms is test-only here, as in the real stores. */
static const idp_param_spec tp_params[] = {
    {"level", IDP_PARAM_INT, "0", 0, 9, NULL, "a key of the plugin's own "
     "(unused)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
static const idp_param_spec tp_test_params[] = {
    {"delay_ms", IDP_PARAM_INT, "0", 0, 10000, NULL,
     "wait before every store call"},
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

static void tp_free(tp_store *s)
{
    for (tp_counter *c = s->counters, *next; c != NULL; c = next) {
        next = c->next;
        free(c->key);
        free(c);
    }
    free(s);
}

static void tp_close(void *store)
{
    tp_free(store);
}

#if !defined(TP_NO_INCR) || defined(TP_FULL)
/* The simulated round trip. */
static void tp_wait(const tp_store *s)
{
    if (s->delay_ms > 0) {
        struct timespec ts = {s->delay_ms / 1000,
                              (long)(s->delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

/* One increment, after the round trip. */
static int tp_add(tp_store *s, const char *key, uint64_t n, uint64_t *value,
                  idp_error *err)
{
    if (s->fail_next > 0) {
        s->fail_next--;
        return idp_plugin_error(err, IDP_ESTORE, "injected failure");
    }
    if (strstr(key, "wrongtype") != NULL)
        return idp_plugin_error(err, IDP_ESTORE, "INCRBY '%s' failed: %s",
                                key, TP_WRONGTYPE);
    tp_counter *c = find(s, key, 1);
    if (c == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    if (n > IDP_MAX_VALUE - c->value)
        return idp_plugin_error(err, IDP_ERANGE, "'%s' would pass 2^63", key);
    c->value += n;
    s->increments++;
    *value = c->value;
    s->host->log(s->host, IDP_LOG_DEBUG, "incr '%s' by %llu", key,
                 (unsigned long long)n);
    return IDP_OK;
}
#endif

#ifndef TP_NO_INCR
static int tp_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    tp_store *s = store;
    tp_wait(s);
    return tp_add(s, key, n, value, err);
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

/* ---- TP_FULL: every optional method, working ------------------------- */

#ifdef TP_FULL
/* All ops in one round trip; a failed op's reason in err_ops[i]. */
static int tp_incr_many(void *store, idp_incr_op *ops, size_t nops,
                        idp_error *err_ops)
{
    tp_store *s = store;
    tp_wait(s);
    s->host->log(s->host, IDP_LOG_DEBUG, "incr_many of %zu", nops);
    for (size_t i = 0; i < nops; i++)
        ops[i].status = tp_add(s, ops[i].key, ops[i].n, &ops[i].value,
                               err_ops != NULL ? &err_ops[i] : NULL);
    return IDP_OK;
}

static int tp_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    tp_store *s = store;
    tp_wait(s);
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%s' past "
                                "2^63", key);
    tp_counter *c = find(s, key, 1);
    if (c == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    if (c->value < value)
        c->value = value;
    *result = c->value;
    return IDP_OK;
}

static int tp_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                   idp_error *err)
{
    (void)err;
    tp_store *s = store;
    size_t plen = strlen(prefix);
    tp_wait(s);
    for (tp_counter *c = s->counters; c != NULL; c = c->next)
        if (strncmp(c->key, prefix, plen) == 0) {
            int rc = cb(ud, c->key, c->value);
            if (rc != 0)
                return rc;
        }
    return IDP_OK;
}

/* In a child after fork: no connection to spare, so drop is close. */
static void tp_drop(void *store)
{
    tp_store *s = store;
    s->host->log(s->host, IDP_LOG_DEBUG, "drop");
    tp_free(s);
}

static int tp_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    (void)err;
    *count = ((tp_store *)store)->increments;
    return IDP_OK;
}

static int tp_control(void *store, const char *command, idp_error *err)
{
    unsigned long long n;
    if (sscanf(command, "fail %llu", &n) != 1)
        return idp_plugin_error(err, IDP_EINVAL, "unknown control command "
                                "'%s' (expected: fail N)", command);
    ((tp_store *)store)->fail_next = n;
    return IDP_OK;
}
#endif

/* ---- Traps ------------------------------------------------------------ */

#if defined(TP_TRAPS) || defined(TP_BIG) || defined(TP_LAYOUT_V1)
/*
 * The slots a host must never call: beyond the table's declared size (a
 * plugin built against an older header has whatever the linker put next
 * in these bytes), beyond this host's own table (a newer plugin's
 * methods), or in a table of another ABI version. They say so loudly, so a
 * host that calls them fails the test instead of passing by luck.
 */
static int trap(void *store, const char *method, idp_error *err)
{
    tp_store *s = store;
    s->host->log(s->host, IDP_LOG_ERROR, "trap: %s called beyond the "
                 "table's size", method);
    return idp_plugin_error(err, IDP_ESTORE, "trap: %s called beyond the "
                            "table's size", method);
}
#endif

#if defined(TP_TRAPS) || defined(TP_LAYOUT_V1)
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

#ifdef TP_TRAPS
static void trap_drop(void *store)
{
    trap(store, "drop", NULL);
}

/* Where `testing` points beyond the declared size. */
static const idp_param_spec trap_test_params[] = {
    {"trap_key", IDP_PARAM_INT, "0", 0, 1, NULL,
     "a testing key beyond the table's size: never accepted"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const idp_plugin_testing trap_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = trap_test_params,
    .roundtrips = trap_roundtrips,
    .control = trap_control,
};
#endif

#ifdef TP_BIG
static int trap_future(void *store, idp_error *err)
{
    return trap(store, "a method newer than this host", err);
}
#endif

/* ---- The table -------------------------------------------------------- */

static const char *const tp_schemes[] = {TP_SCHEME, NULL};

#ifdef TP_FULL
#ifdef TP_BIG
/* A testing table grown by a later header of the same ABI version. */
typedef struct tp_testing_big {
    idp_plugin_testing base;
    int (*future_hook)(void *store, idp_error *err);
} tp_testing_big;

static const tp_testing_big tp_testing = {
    .base = {
        .size = sizeof(tp_testing_big),
        .params = tp_test_params,
        .roundtrips = tp_roundtrips,
        .control = tp_control,
    },
    .future_hook = trap_future,
};
#define TP_TESTING (&tp_testing.base)
#else
static const idp_plugin_testing tp_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = tp_test_params,
    .roundtrips = tp_roundtrips,
    .control = tp_control,
};
#define TP_TESTING (&tp_testing)
#endif
#endif

#define TP_TABLE_FIELDS                                                 \
    .abi_version = TP_ABI,                                              \
    .name = TP_NAME,                                                    \
    .schemes = tp_schemes,                                              \
    .params = tp_params,                                                \
    .open = tp_open,                                                    \
    .close = tp_close,                                                  \
    .get = tp_get

#if defined(TP_LAYOUT_V1)
/* idp_plugin as ABI version 1 had it: a host of version 2 reading this as
 * its own table would take `control` for the testing table's address. */
typedef struct tp_plugin_v1 {
    uint32_t abi_version;
    uint32_t size;
    const char *name;
    const char *const *schemes;
    const idp_param_spec *params;
    int (*open)(const idp_host *host, void **store, idp_error *err);
    void (*close)(void *store);
    int (*incr)(void *store, const char *key, uint64_t n, uint64_t *value,
                idp_error *err);
    int (*get)(void *store, const char *key, uint64_t *value, int *exists,
               idp_error *err);
    int (*incr_many)(void *store, idp_incr_op *ops, size_t nops,
                     idp_error *err);
    int (*raise_to)(void *store, const char *key, uint64_t value,
                    uint64_t *result, idp_error *err);
    int (*list)(void *store, const char *prefix, idp_list_cb cb, void *ud,
                idp_error *err);
    int (*roundtrips)(void *store, uint64_t *count, idp_error *err);
    int (*control)(void *store, const char *command, idp_error *err);
} tp_plugin_v1;

static const tp_plugin_v1 tp_plugin = {
    TP_TABLE_FIELDS,
    .size = (uint32_t)sizeof(tp_plugin_v1),
    .incr = tp_incr,
    .incr_many = trap_incr_many,
    .raise_to = trap_raise_to,
    .list = trap_list,
    .roundtrips = trap_roundtrips,
    .control = trap_control,
};
#define TP_ENTRY ((const idp_plugin *)(const void *)&tp_plugin)

#elif defined(TP_BIG)
/* The table a plugin built against a later header of the same ABI version
 * hands over: this host's idp_plugin, then methods this host does not know
 * (traps: it must never call them) and a field it must not read. */
typedef struct tp_plugin_big {
    idp_plugin base;
    int (*future_method)(void *store, idp_error *err);
    int (*future_method2)(void *store, idp_error *err);
    uint64_t future_flags;
} tp_plugin_big;

static const tp_plugin_big tp_plugin = {
    .base = {
        TP_TABLE_FIELDS,
        .size = (uint32_t)sizeof(tp_plugin_big),
        .incr = tp_incr,
        .incr_many = tp_incr_many,
        .raise_to = tp_raise_to,
        .list = tp_list,
        .drop = tp_drop,
        .testing = TP_TESTING,
    },
    .future_method = trap_future,
    .future_method2 = trap_future,
    .future_flags = UINT64_MAX,
};
#define TP_ENTRY (&tp_plugin.base)

#else
static const idp_plugin tp_plugin = {
    TP_TABLE_FIELDS,
    .size = (uint32_t)(TP_SIZE),
#ifndef TP_NO_INCR
    .incr = tp_incr,
#endif
#if defined(TP_FULL)
    .incr_many = tp_incr_many,
    .raise_to = tp_raise_to,
    .list = tp_list,
    .drop = tp_drop,
    .testing = TP_TESTING,
#elif defined(TP_TRAPS)
    .incr_many = trap_incr_many,
    .raise_to = trap_raise_to,
    .list = trap_list,
    .drop = trap_drop,
    .testing = &trap_testing,
#endif
};
#define TP_ENTRY (&tp_plugin)
#endif

#ifdef TP_NO_ENTRY
/* Looks like a plugin, but under the wrong name. */
IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry_v0(void)
#else
IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
#endif
{
    return TP_ENTRY;
}
