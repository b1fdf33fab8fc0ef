/*
 * mem.c - the in-process store, for engine tests and zero-latency
 * baselines. `mem://NAME` is a namespace shared by every client of the
 * process that opens the same NAME (`mem://` is the unnamed one); it lives
 * while a client has it open. A namespace is per process: a child made by
 * fork() has its own copy of the parent's, and the two diverge (mem is not
 * shared across processes).
 *
 * Test parameter (in the testing table): delay_ms, a simulated round trip
 * added to every store call (a call slower than timeout_ms fails with a
 * timeout after timeout_ms).
 * Control commands (idp_control, a test hook) inject faults at run time:
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

/* A slot of a namespace's hash table; key NULL: free. Counters are never
 * removed one by one, so the table needs no tombstones. */
typedef struct entry {
    char *key;                 /* strdup'd; never moves once made */
    uint64_t hash;
    uint64_t value;
} entry;

typedef struct space {
    char *name;
    int refs;
    entry *slots;              /* open addressing, linear probing */
    size_t n, cap;             /* cap: 0 or a power of two */
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

/*
 * fork(): spaces_mu is taken only inside plugin methods, and the host's
 * fork handler waits until no plugin method runs (and holds new ones off),
 * so a child never inherits it locked; its namespaces are a consistent
 * copy of the parent's.
 */

/* Test-only keys: the host accepts them beside the (no) plugin keys. */
static const idp_param_spec mem_test_params[] = {
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

/* FNV-1a, then a 64-bit finalizer so the low bits (the slot) depend on
 * every byte. */
static uint64_t hash_key(const char *key)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

/* The free slot where a key of hash h goes (the table has one). */
static entry *free_slot(entry *slots, size_t cap, uint64_t h)
{
    size_t mask = cap - 1, i = (size_t)h & mask;
    while (slots[i].key != NULL)
        i = (i + 1) & mask;
    return &slots[i];
}

/* Doubles the table (8 slots at first). Returns -1 out of memory. */
static int grow(space *sp)
{
    size_t cap = sp->cap ? sp->cap * 2 : 8;
    if (cap < sp->cap || cap > SIZE_MAX / sizeof(entry))
        return -1;
    entry *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < sp->cap; i++)
        if (sp->slots[i].key != NULL)
            *free_slot(slots, cap, sp->slots[i].hash) = sp->slots[i];
    free(sp->slots);
    sp->slots = slots;
    sp->cap = cap;
    return 0;
}

/* The counter `key`, made at 0 when missing and `create` is set; NULL when
 * missing, or out of memory. Namespace locked. */
static entry *find(space *sp, const char *key, int create)
{
    uint64_t h = hash_key(key);
    if (sp->cap > 0) {
        size_t mask = sp->cap - 1;
        for (size_t i = (size_t)h & mask; sp->slots[i].key != NULL;
             i = (i + 1) & mask)
            if (sp->slots[i].hash == h && strcmp(sp->slots[i].key, key) == 0)
                return &sp->slots[i];
    }
    if (!create)
        return NULL;
    /* at most 3/4 full, so a probe always ends */
    if ((sp->n + 1) * 4 > sp->cap * 3 && grow(sp) != 0)
        return NULL;
    char *copy = strdup(key);
    if (copy == NULL)
        return NULL;
    entry *e = free_slot(sp->slots, sp->cap, h);
    *e = (entry){copy, h, 0};
    sp->n++;
    return e;
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
        for (size_t i = 0; i < sp->cap; i++)
            free(sp->slots[i].key);
        free(sp->slots);
        free(sp->name);
        free(sp);
    }
    pthread_mutex_unlock(&spaces_mu);
    free(m);
}

/*
 * In a child after fork(): the handle is the child's own copy of the
 * parent's (a mem namespace is per process). Dropping frees the handle but
 * keeps its reference on the namespace, so the child's copy of it (values
 * held, raised or fetched before the fork) is what the child's next open of
 * the same handle finds; it does no I/O. (The host forks only while no
 * mem method runs, so spaces_mu is unlocked in the child.)
 */
static void mem_drop(void *store)
{
    free(store); /* the namespace stays: the child's copy goes on */
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

/* A failed op's reason goes to err_ops[i]; the whole call's to err_ops[0]. */
static int mem_incr_many(void *store, idp_incr_op *ops, size_t nops,
                         idp_error *err_ops)
{
    mem *m = store;
    int rc = round_trip(m, err_ops);
    if (rc != IDP_OK)
        return rc;
    pthread_mutex_lock(&spaces_mu);
    for (size_t i = 0; i < nops; i++)
        ops[i].status = incr_locked(m->sp, ops[i].key, ops[i].n, &ops[i].value,
                                    err_ops != NULL ? &err_ops[i] : NULL);
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

/* Give-back: compare-and-set of each key, all under one lock. */
static int mem_lower(void *store, idp_lower_op *ops, size_t nops,
                     idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    pthread_mutex_lock(&spaces_mu);
    for (size_t i = 0; i < nops; i++) {
        entry *e = find(m->sp, ops[i].key, 0);
        ops[i].done = e != NULL && e->value == ops[i].expect &&
                      ops[i].value < ops[i].expect;
        if (ops[i].done)
            e->value = ops[i].value;
        ops[i].status = IDP_OK;
    }
    pthread_mutex_unlock(&spaces_mu);
    return IDP_OK;
}

/* The counters under `prefix`, as they were when listed: copied with the
 * lock held, then handed to cb without it, so cb may take its time (or
 * call into mem) while other clients go on. The key strings stay valid:
 * our reference keeps the namespace, and counters are never removed. */
typedef struct snap {
    const char *key;
    uint64_t value;
} snap;

static int mem_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                    idp_error *err)
{
    mem *m = store;
    int rc = round_trip(m, err);
    if (rc != IDP_OK)
        return rc;
    size_t plen = strlen(prefix), n = 0;
    pthread_mutex_lock(&spaces_mu);
    space *sp = m->sp;
    snap *v = sp->n > 0 ? malloc(sp->n * sizeof *v) : NULL;
    if (sp->n > 0 && v == NULL) {
        pthread_mutex_unlock(&spaces_mu);
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory listing %zu "
                                "counters", sp->n);
    }
    for (size_t i = 0; i < sp->cap; i++)
        if (sp->slots[i].key != NULL &&
            strncmp(sp->slots[i].key, prefix, plen) == 0)
            v[n++] = (snap){sp->slots[i].key, sp->slots[i].value};
    pthread_mutex_unlock(&spaces_mu);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cb(ud, v[i].key, v[i].value);
    free(v);
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

static const idp_plugin_testing mem_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = mem_test_params,
    .roundtrips = mem_roundtrips,
    .control = mem_control,
};

static const idp_plugin mem_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "mem",
    .schemes = mem_schemes,
    .params = NULL,
    .open = mem_open,
    .close = mem_close,
    .incr = mem_incr,
    .get = mem_get,
    .incr_many = mem_incr_many,
    .raise_to = mem_raise,
    .list = mem_list,
    .drop = mem_drop,
    .testing = &mem_testing,
    .lower = mem_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &mem_plugin;
}
