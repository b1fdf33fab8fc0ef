/*
 * mem.c - the in-process store, for engine tests and zero-latency
 * baselines. `mem://NAME` is a namespace shared by every client of the
 * process that opens the same NAME (`mem://` is the unnamed one); it lives
 * while a client has it open.
 *
 * Parameters: delay_ms, a simulated round trip added to every store call
 * (a call slower than timeout_ms fails with a timeout after timeout_ms).
 * Control commands (idp_control) inject faults at run time:
 *   "fail N"          the next N store calls fail
 *   "set NAME VALUE"  force a counter's value, lower or higher (data loss)
 *   "delay MS"        change the simulated round trip
 *   "garbage N"       the next N increments answer a value below n
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idprime/plugin.h"

typedef struct entry {
    char *key;
    uint64_t value;
} entry;

typedef struct space {
    char *name;
    int refs;
    entry *entries;
    size_t n, cap;
    uint64_t increments;       /* the store's own count */
    unsigned delay_ms;
    uint64_t fail_next, garbage_next;
    struct space *next;
} space;

typedef struct mem {
    space *sp;
    unsigned timeout_ms;
} mem;

/* Every namespace of the process, under one lock. */
static pthread_mutex_t spaces_mu = PTHREAD_MUTEX_INITIALIZER;
static space *spaces;

static const idp_param_spec mem_params[] = {
    {"delay_ms", IDP_PARAM_INT, "0", 0, 600000, NULL,
     "simulated round trip added to every store call"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The simulated round trip, and an injected failure; called unlocked. */
static int round_trip(mem *m, idp_error *err)
{
    pthread_mutex_lock(&spaces_mu);
    unsigned delay = m->sp->delay_ms;
    int fail = m->sp->fail_next > 0;
    if (fail)
        m->sp->fail_next--;
    pthread_mutex_unlock(&spaces_mu);
    if (delay > m->timeout_ms) {
        sleep_ms(m->timeout_ms);
        return idp_plugin_error(err, IDP_ETIMEOUT, "no answer within %u ms "
                                "(delay_ms=%u)", m->timeout_ms, delay);
    }
    if (delay > 0)
        sleep_ms(delay);
    if (fail)
        return idp_plugin_error(err, IDP_ESTORE, "injected failure");
    return IDP_OK;
}

static entry *find(space *sp, const char *key, int create)
{
    for (size_t i = 0; i < sp->n; i++)
        if (strcmp(sp->entries[i].key, key) == 0)
            return &sp->entries[i];
    if (!create)
        return NULL;
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 8;
        entry *grown = realloc(sp->entries, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        sp->entries = grown;
        sp->cap = cap;
    }
    char *copy = strdup(key);
    if (copy == NULL)
        return NULL;
    sp->entries[sp->n] = (entry){copy, 0};
    return &sp->entries[sp->n++];
}

static int mem_open(const idp_host *host, void **store, idp_error *err)
{
    const idp_uri *u = host->uri;
    if (u->nhosts > 1 || (u->nhosts == 1 && u->hosts[0].port != 0) ||
        u->user[0] || u->has_password || u->path[0])
        return idp_plugin_error(err, IDP_EINVAL, "mem URIs are mem:// or "
                                    "mem://NAME (no port, user, password or "
                                    "path)");
    const char *name = u->nhosts == 1 ? u->hosts[0].host : "";
    mem *m = calloc(1, sizeof *m);
    if (m == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    m->timeout_ms = host->timeout_ms;
    pthread_mutex_lock(&spaces_mu);
    space *sp;
    for (sp = spaces; sp != NULL && strcmp(sp->name, name) != 0; sp = sp->next)
        ;
    if (sp == NULL) {
        sp = calloc(1, sizeof *sp);
        if (sp == NULL || (sp->name = strdup(name)) == NULL) {
            free(sp);
            pthread_mutex_unlock(&spaces_mu);
            free(m);
            return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
        }
        sp->next = spaces;
        spaces = sp;
    }
    sp->refs++;
    /* The newest client's delay applies to the namespace. */
    sp->delay_ms = (unsigned)host->param_int(host, "delay_ms");
    m->sp = sp;
    pthread_mutex_unlock(&spaces_mu);
    *store = m;
    return IDP_OK;
}

static void mem_close(void *store)
{
    mem *m = store;
    pthread_mutex_lock(&spaces_mu);
    space *sp = m->sp;
    if (--sp->refs == 0) {
        for (space **p = &spaces; *p != NULL; p = &(*p)->next) {
            if (*p == sp) {
                *p = sp->next;
                break;
            }
        }
        for (size_t i = 0; i < sp->n; i++)
            free(sp->entries[i].key);
        free(sp->entries);
        free(sp->name);
        free(sp);
    }
    pthread_mutex_unlock(&spaces_mu);
    free(m);
}

/* One increment with the namespace locked. */
static int incr_locked(space *sp, const char *key, uint64_t n, uint64_t *value,
                       idp_error *err)
{
    entry *e = find(sp, key, 1);
    if (e == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    if (n > (uint64_t)INT64_MAX - e->value)
        return idp_plugin_error(err, IDP_ERANGE, "'%s' at %llu cannot grow by "
                                "%llu: counters stay below 2^63", key,
                                (unsigned long long)e->value,
                                (unsigned long long)n);
    e->value += n;
    sp->increments++;
    *value = e->value;
    if (sp->garbage_next > 0) {
        sp->garbage_next--;
        *value = n - 1; /* nonsense: below the increment itself */
    }
    return IDP_OK;
}

static int mem_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                    idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    pthread_mutex_lock(&spaces_mu);
    rc = incr_locked(m->sp, key, n, value, err);
    pthread_mutex_unlock(&spaces_mu);
    return rc;
}

static int mem_incr_many(void *store, idp_incr_op *ops, size_t nops,
                         idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    pthread_mutex_lock(&spaces_mu);
    for (size_t i = 0; i < nops; i++)
        ops[i].status = incr_locked(m->sp, ops[i].key, ops[i].n, &ops[i].value,
                                    NULL);
    pthread_mutex_unlock(&spaces_mu);
    return IDP_OK;
}

static int mem_get(void *store, const char *key, uint64_t *value, int *exists,
                   idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    pthread_mutex_lock(&spaces_mu);
    entry *e = find(m->sp, key, 0);
    *exists = e != NULL;
    *value = e ? e->value : 0;
    pthread_mutex_unlock(&spaces_mu);
    return IDP_OK;
}

static int mem_raise(void *store, const char *key, uint64_t value,
                     uint64_t *result, idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    pthread_mutex_lock(&spaces_mu);
    entry *e = find(m->sp, key, 1);
    if (e != NULL && e->value < value)
        e->value = value;
    if (e != NULL)
        *result = e->value;
    pthread_mutex_unlock(&spaces_mu);
    return e ? IDP_OK : idp_plugin_error(err, IDP_ENOMEM, "out of memory");
}

static int mem_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                    idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    size_t plen = strlen(prefix);
    pthread_mutex_lock(&spaces_mu);
    for (size_t i = 0; i < m->sp->n && rc == 0; i++)
        if (strncmp(m->sp->entries[i].key, prefix, plen) == 0)
            rc = cb(ud, m->sp->entries[i].key, m->sp->entries[i].value);
    pthread_mutex_unlock(&spaces_mu);
    return rc;
}

static int mem_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    (void)err;
    mem *m = store;
    pthread_mutex_lock(&spaces_mu);
    *count = m->sp->increments;
    pthread_mutex_unlock(&spaces_mu);
    return IDP_OK;
}

static int mem_control(void *store, const char *command, idp_error *err)
{
    mem *m = store;
    char key[256];
    unsigned long long v;
    int rc = IDP_OK;
    pthread_mutex_lock(&spaces_mu);
    if (sscanf(command, "fail %llu", &v) == 1) {
        m->sp->fail_next = v;
    } else if (sscanf(command, "garbage %llu", &v) == 1) {
        m->sp->garbage_next = v;
    } else if (sscanf(command, "delay %llu", &v) == 1 && v <= 600000) {
        m->sp->delay_ms = (unsigned)v;
    } else if (sscanf(command, "set %255s %llu", key, &v) == 2 &&
               v <= (unsigned long long)INT64_MAX) {
        entry *e = find(m->sp, key, 1);
        if (e != NULL)
            e->value = v;
        else
            rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    } else {
        rc = idp_plugin_error(err, IDP_EINVAL, "unknown control command '%s' "
                              "(expected: fail N, garbage N, delay MS, "
                              "set KEY VALUE)", command);
    }
    pthread_mutex_unlock(&spaces_mu);
    return rc;
}

static const char *const mem_schemes[] = {"mem", NULL};

static const idp_plugin mem_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "mem",
    .schemes = mem_schemes,
    .params = mem_params,
    .open = mem_open,
    .close = mem_close,
    .incr = mem_incr,
    .get = mem_get,
    .incr_many = mem_incr_many,
    .raise_to = mem_raise,
    .list = mem_list,
    .roundtrips = mem_roundtrips,
    .control = mem_control,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &mem_plugin;
}
