/*
 * thread.c - the per-ID calls: idp_next and idp_incr serve a warm thread
 * from a run of IDs it took from the counter's pool (a tlease), found
 * through a one-entry cache in initial-exec TLS and a small per-thread map
 * behind it; and the caller-owned idp_cache.
 *
 * A run belongs to one counter and one thread for its whole life. It is
 * found by the counter's uid, which is never reused, so a closed counter's
 * run can never be matched again; it is never handed to another thread,
 * so a thread that ends leaves its rest as a gap for nobody to inherit.
 * A thread's IDs of one counter strictly increase: the pool only moves up,
 * and a run is used up (or given up) before the thread claims past it.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

pthread_mutex_t lease_mu = PTHREAD_MUTEX_INITIALIZER;

#define MAP_SIZE 64 /* a power of two */

typedef struct map_entry {
    uint64_t uid;
    tlease *l;
} map_entry;

struct tstate {
    map_entry map[MAP_SIZE];  /* uid -> this thread's run; a miss searches
                                 the counter's list */
    tlease *leases;           /* this thread's runs, under lease_mu */
};

/* The hot path reads only these, with plain %fs-relative loads (initial
 * exec; 24 bytes, well inside the static TLS a dlopen may use). */
static __thread map_entry t_mru __attribute__((tls_model("initial-exec")));
static __thread tstate *t_ts __attribute__((tls_model("initial-exec")));

static pthread_once_t ts_once = PTHREAD_ONCE_INIT;
static pthread_key_t ts_key;
static int ts_key_ok;

/* A thread ends: its runs lose their owner (their rests are gaps, folded
 * into the counter's count when the counter next looks). */
static void ts_destroy(void *v)
{
    tstate *ts = v;
    pthread_mutex_lock(&lease_mu);
    for (tlease *l = ts->leases; l != NULL; l = l->tnext)
        l->owner = NULL;
    pthread_mutex_unlock(&lease_mu);
    t_mru = (map_entry){0, NULL};
    t_ts = NULL;
    free(ts);
}

static void ts_init(void)
{
    ts_key_ok = pthread_key_create(&ts_key, ts_destroy) == 0;
}

/* The calling thread's state, made on its first slow call; NULL when out of
 * memory (the thread then claims every ID from the pool). */
static tstate *my_state(void)
{
    if (likely(t_ts != NULL))
        return t_ts;
    pthread_once(&ts_once, ts_init);
    if (!ts_key_ok)
        return NULL;
    tstate *ts = calloc(1, sizeof *ts);
    if (ts == NULL)
        return NULL;
    if (pthread_setspecific(ts_key, ts) != 0) {
        free(ts);
        return NULL;
    }
    t_ts = ts;
    return ts;
}

/* IDs a run has served. */
static uint64_t run_served(const tlease *l)
{
    return l->taken - l->gapped -
           (atomic_load_explicit(&l->end, memory_order_relaxed) -
            atomic_load_explicit(&l->next, memory_order_relaxed));
}

/* Unlinks and frees a run, its served IDs kept in the counter's count.
 * Called with lease_mu held, and c->mu held or c no longer shared. */
static void run_free(idp_counter *c, tlease *l)
{
    c->served_done += run_served(l);
    if (l->owner != NULL) {
        *l->tprev = l->tnext;
        if (l->tnext != NULL)
            l->tnext->tprev = l->tprev;
    }
    free(l);
}

void leases_drop_all(idp_counter *c)
{
    pthread_mutex_lock(&lease_mu);
    for (tlease *l = c->leases, *next; l != NULL; l = next) {
        next = l->cnext;
        run_free(c, l);
    }
    c->leases = NULL;
    pthread_mutex_unlock(&lease_mu);
}

/* The calling thread's run of counter c, made on first use; runs of ended
 * threads are folded away on the way. NULL when out of memory. */
static tlease *run_find(idp_counter *c, tstate *ts)
{
    tlease *found = NULL;
    pthread_mutex_lock(&c->mu);
    pthread_mutex_lock(&lease_mu);
    for (tlease **p = &c->leases; *p != NULL;) {
        tlease *l = *p;
        if (l->owner == NULL) {
            *p = l->cnext;
            run_free(c, l);
            continue;
        }
        if (l->owner == ts)
            found = l;
        p = &l->cnext;
    }
    if (found == NULL) {
        void *mem = NULL;
        if (posix_memalign(&mem, _Alignof(tlease), sizeof(tlease)) == 0) {
            found = memset(mem, 0, sizeof(tlease));
            found->size = 1;
            found->owner = ts;
            found->cnext = c->leases;
            c->leases = found;
            found->tnext = ts->leases;
            found->tprev = &ts->leases;
            if (ts->leases != NULL)
                ts->leases->tprev = &found->tnext;
            ts->leases = found;
        }
    }
    pthread_mutex_unlock(&lease_mu);
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* The calling thread's run of c, through the map; also made the MRU. */
static tlease *my_run(idp_counter *c)
{
    tstate *ts = my_state();
    if (ts == NULL)
        return NULL;
    map_entry *e = &ts->map[c->uid & (MAP_SIZE - 1)];
    if (e->uid != c->uid) {
        tlease *l = run_find(c, ts);
        if (l == NULL)
            return NULL;
        *e = (map_entry){c->uid, l};
    }
    t_mru = *e;
    return e->l;
}

void thread_after_fork(void)
{
    /* The child's only thread: its runs belong to the parent's pools (the
     * client's reset frees them); forget where they were. */
    t_mru = (map_entry){0, NULL};
    if (t_ts != NULL)
        memset(t_ts->map, 0, sizeof t_ts->map);
}

/* The size of the next run taken with a claim of n: a multiple of n, so
 * that later incr(n) use it up. */
static uint64_t run_extra(const tlease *l, uint64_t n)
{
    return l->size < n ? n : l->size / n * n;
}

/* Allocates n IDs for the calling thread, whose MRU run could not serve
 * them. On success *first is the first of the n. */
static int alloc(idp_counter *c, uint64_t n, uint64_t *first, idp_error *e)
{
    fork_check(c->client);
    run none = {0, 0, 0, 0};
    tlease *l = c->legacy ? NULL : my_run(c);
    if (l == NULL)
        return engine_claim(c, NULL, &none, n, 0, first, e);
    uint64_t v = atomic_load_explicit(&l->next, memory_order_relaxed);
    uint64_t end = atomic_load_explicit(&l->end, memory_order_relaxed);
    if (n <= end - v) { /* the map had it */
        atomic_store_explicit(&l->next, v + n, memory_order_relaxed);
        *first = v;
        return IDP_OK;
    }
    return engine_claim(c, l, NULL, n, run_extra(l, n), first, e);
}

/* The slow paths, apart, so that the hot ones need no stack frame. */
static __attribute__((noinline)) int next_slow(idp_counter *c, uint64_t *id,
                                               idp_error *err)
{
    idp_error e;
    int rc = alloc(c, 1, id, &e);
    if (rc != IDP_OK && err != NULL)
        *err = e;
    return rc;
}

static __attribute__((noinline)) int incr_slow(idp_counter *c, uint64_t n,
                                               uint64_t *last, idp_error *err);

/* Hot: the per-ID path. One TLS compare, two loads and a store on the
 * thread's own run; everything else is next_slow(). */
API int idp_next(idp_counter *c, uint64_t *id, idp_error *err)
{
    if (likely(t_mru.uid == c->uid)) {
        tlease *l = t_mru.l;
        uint64_t v = atomic_load_explicit(&l->next, memory_order_relaxed);
        if (likely(v < atomic_load_explicit(&l->end, memory_order_relaxed))) {
            atomic_store_explicit(&l->next, v + 1, memory_order_relaxed);
            *id = v;
            return IDP_OK;
        }
    }
    return next_slow(c, id, err);
}

/* Hot, as idp_next. */
API int idp_incr(idp_counter *c, uint64_t n, uint64_t *last, idp_error *err)
{
    if (likely(t_mru.uid == c->uid)) {
        tlease *l = t_mru.l;
        uint64_t v = atomic_load_explicit(&l->next, memory_order_relaxed);
        uint64_t end = atomic_load_explicit(&l->end, memory_order_relaxed);
        if (likely(n - 1 < end - v)) { /* 1 <= n <= what the run holds */
            atomic_store_explicit(&l->next, v + n, memory_order_relaxed);
            *last = v + n - 1;
            return IDP_OK;
        }
    }
    return incr_slow(c, n, last, err);
}

static int incr_slow(idp_counter *c, uint64_t n, uint64_t *last,
                     idp_error *err)
{
    if (n == 0)
        return idp_seterr(err, IDP_EINVAL, "counter '%s': incr needs n >= 1",
                          c->name);
    if (n > IDP_MAX_VALUE)
        return idp_seterr(err, IDP_ERANGE, "counter '%s': incr of %llu "
                          "would pass 2^63", c->name, (unsigned long long)n);
    idp_error e;
    uint64_t first = 0;
    int rc = alloc(c, n, &first, &e);
    if (rc != IDP_OK) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    *last = first + n - 1;
    return IDP_OK;
}

/* ---- Caller-owned caches ---------------------------------------------- */

#define CACHE_DEFAULT_FILL 256

static gen_cell *cell_of(const idp_cache *k)
{
    return (gen_cell *)(void *)((char *)(uintptr_t)k->live_ -
                                offsetof(gen_cell, gen));
}

API int idp_cache_init(idp_cache *k, size_t size, idp_counter *ctr,
                       uint64_t fill, idp_error *err)
{
    if (k == NULL || ctr == NULL)
        return idp_seterr(err, IDP_EINVAL, "idp_cache_init: %s is NULL",
                          k == NULL ? "the cache" : "the counter");
    if (size < sizeof(idp_cache))
        return idp_seterr(err, IDP_EINVAL, "idp_cache_init: size %zu, but "
                          "an idp_cache is at least %zu bytes", size,
                          sizeof(idp_cache));
    if (fill > IDP_CACHE_MAX_FILL)
        return idp_seterr(err, IDP_EINVAL, "idp_cache_init: fill %llu out "
                          "of range (0 for the default, or 1..%d)",
                          (unsigned long long)fill, IDP_CACHE_MAX_FILL);
    idp_client *cl = ctr->client;
    fork_check(cl);
    memset(k, 0, sizeof *k);
    k->size = size;
    k->ctr_ = ctr;
    k->owner_ = cl->uid;
    k->live_ = (const volatile uint64_t *)(void *)&cl->cell->gen;
    k->gen_ = atomic_load(&cl->cell->gen);
    k->fill_ = fill == 0 ? CACHE_DEFAULT_FILL : fill;
    return IDP_OK;
}

API int idp_cache_refill_(idp_cache *k, uint64_t *id, idp_error *err)
{
    if (k == NULL || k->live_ == NULL || id == NULL)
        return idp_seterr(err, IDP_EINVAL, "idp_cache_next: %s",
                          k == NULL || id == NULL ? "NULL argument"
                                                  : "the cache was never "
                                                    "initialised");
    gen_cell *cell = cell_of(k);
    if (atomic_load(&cell->owner) != k->owner_)
        return idp_seterr(err, IDP_EINVAL, "idp_cache_next: the cache was "
                          "revoked: its client was closed");
    idp_counter *c = k->ctr_;
    fork_check(c->client);
    uint64_t g = atomic_load(&cell->gen);
    if (k->gen_ != g) { /* forked: what it held was the parent's */
        k->next = k->end = 0;
        k->gen_ = g;
    }
    run r = {0, 0, 0, 0};
    uint64_t first = 0;
    idp_error e;
    int rc = engine_claim(c, NULL, &r, 1, k->fill_ - 1, &first, &e);
    if (rc != IDP_OK) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    k->next = r.next;
    k->end = r.end;
    *id = first;
    return IDP_OK;
}

API void idp_cache_release(idp_cache *k)
{
    if (k != NULL)
        k->next = k->end;
}
