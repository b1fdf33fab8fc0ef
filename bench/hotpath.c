/*
 * hotpath.c - `idprime bench --workload hotpath`: next() (an ordinary call
 * into the library, served from the thread's run) and idp_cache_next (a
 * caller-owned cache, inline) against a bare atomic fetch-add, all in the
 * same rounds, and the engine's cost per round trip against the raw client
 * library.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hotpath.h"

/* The bare atomic the pool is measured against, alone on its cache line. */
static struct {
    _Alignas(64) _Atomic uint64_t v;
    char pad[64 - sizeof(uint64_t)];
} shared_counter;

#define TIMED_PASS_MAX 1000000u   /* timed next() calls per thread */

/* Releases the workers of a round together (or cancels them). */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, cancel;
} gate;

/* Waits for the gate; returns 1 when the round was cancelled. */
static int gate_wait(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    int cancel = g->cancel;
    pthread_mutex_unlock(&g->mu);
    return cancel;
}

static void gate_open(gate *g, int cancel)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    g->cancel = cancel;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct hp_worker {
    idp_counter *ctr;
    uint64_t n;
    gate *go;
    histogram *hist;              /* the timed pass only */
    uint64_t sink;                /* keeps the loops from being optimised out */
    int rc;
    idp_error err;
} hp_worker;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *loop_atomic(void *arg)
{
    hp_worker *w = arg;
    uint64_t sink = 0;
    if (gate_wait(w->go))
        return NULL;
    for (uint64_t i = 0; i < w->n; i++)
        sink += atomic_fetch_add_explicit(&shared_counter.v, 1,
                                          memory_order_relaxed);
    w->sink = sink;
    return NULL;
}

static void *loop_next(void *arg)
{
    hp_worker *w = arg;
    uint64_t sink = 0, id;
    if (gate_wait(w->go))
        return NULL;
    for (uint64_t i = 0; i < w->n; i++) {
        if (idp_next(w->ctr, &id, &w->err) != IDP_OK) {
            w->rc = w->err.code;
            break;
        }
        sink += id;
    }
    w->sink = sink;
    return NULL;
}

/* The caller-owned cache: each worker fills its own. */
static void *loop_cache(void *arg)
{
    hp_worker *w = arg;
    uint64_t sink = 0, id;
    idp_cache k;
    if (idp_cache_init(&k, sizeof k, w->ctr, IDP_CACHE_MAX_FILL, &w->err) != IDP_OK) {
        w->rc = w->err.code;
        gate_wait(w->go);
        return NULL;
    }
    if (gate_wait(w->go))
        return NULL;
    for (uint64_t i = 0; i < w->n; i++) {
        if (idp_cache_next(&k, &id, &w->err) != IDP_OK) {
            w->rc = w->err.code;
            break;
        }
        sink += id;
    }
    idp_cache_release(&k);
    w->sink = sink;
    return NULL;
}

static void *loop_timed(void *arg)
{
    hp_worker *w = arg;
    uint64_t id;
    if (gate_wait(w->go))
        return NULL;
    for (uint64_t i = 0; i < w->n; i++) {
        uint64_t t0 = now_ns();
        if (idp_next(w->ctr, &id, &w->err) != IDP_OK) {
            w->rc = w->err.code;
            break;
        }
        hist_add(w->hist, now_ns() - t0);
    }
    return NULL;
}

/*
 * Runs fn on `threads` workers released together; returns the seconds from
 * the release to the last join, or -1 with msg filled on a failure.
 */
static double timed_round(void *(*fn)(void *), hp_worker *w, unsigned threads,
                          char *msg, size_t len)
{
    pthread_t th[BENCH_MAX_THREADS];
    gate go = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    unsigned started = 0;
    for (unsigned i = 0; i < threads; i++) {
        w[i].go = &go;
        w[i].rc = IDP_OK;
        if (pthread_create(&th[i], NULL, fn, &w[i]) != 0)
            break;
        started++;
    }
    gate_open(&go, started < threads);
    double t0 = bench_now();
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double dt = bench_now() - t0;
    pthread_cond_destroy(&go.cv);
    pthread_mutex_destroy(&go.mu);
    if (started < threads) {
        snprintf(msg, len, "cannot start %u worker threads", threads);
        return -1;
    }
    for (unsigned i = 0; i < threads; i++) {
        if (w[i].rc != IDP_OK) {
            snprintf(msg, len, "%s", w[i].err.msg);
            return -1;
        }
    }
    return dt;
}

int hotpath_pool(const bench_config *cfg, idp_counter *ctr, monitor *m,
                 hp_pool *out, char *msg, size_t len)
{
    memset(out, 0, sizeof *out);
    unsigned nt = cfg->threads;
    uint64_t n = cfg->count != 0 ? cfg->count : bench_default_count(BENCH_HOTPATH);
    hp_worker w[BENCH_MAX_THREADS];
    memset(w, 0, sizeof w);
    out->ids = n * nt;
    uint64_t id;
    idp_error err;
    if (idp_next(ctr, &id, &err) != IDP_OK) { /* warm the pool */
        snprintf(msg, len, "%s", err.msg);
        return BENCH_EWORK;
    }
    for (int round = 0; round < HOTPATH_ROUNDS; round++) {
        if (atomic_load(&m->stop))
            break;
        for (unsigned i = 0; i < nt; i++)
            w[i] = (hp_worker){.ctr = ctr, .n = n};
        double ta = timed_round(loop_atomic, w, nt, msg, len);
        if (ta < 0)
            return BENCH_EWORK;
        if (nt > 1) { /* one thread, in the same round: the scaling */
            w[0] = (hp_worker){.ctr = ctr, .n = n};
            double t1 = timed_round(loop_next, w, 1, msg, len);
            if (t1 < 0)
                return BENCH_EWORK;
            out->calls += n;
            if ((double)n / t1 > out->next1_ids_per_s)
                out->next1_ids_per_s = (double)n / t1;
        }
        for (unsigned i = 0; i < nt; i++)
            w[i] = (hp_worker){.ctr = ctr, .n = n};
        double tn = timed_round(loop_next, w, nt, msg, len);
        if (tn < 0)
            return BENCH_EWORK;
        out->calls += n * nt;
        for (unsigned i = 0; i < nt; i++)
            w[i] = (hp_worker){.ctr = ctr, .n = n};
        double tc = timed_round(loop_cache, w, nt, msg, len);
        if (tc < 0)
            return BENCH_EWORK;
        if ((double)(n * nt) / tc > out->cache_ids_per_s)
            out->cache_ids_per_s = (double)(n * nt) / tc;
        double ra = (double)(n * nt) / ta, rn = (double)(n * nt) / tn;
        if (ra > out->atomic_ids_per_s)
            out->atomic_ids_per_s = ra;
        if (rn > out->next_ids_per_s) {
            out->next_ids_per_s = rn;
            out->wall_s = tn;
        }
        atomic_fetch_add(&m->done, 1);
    }
    /* The latencies, apart: timing every call would slow the rounds. */
    if ((out->hist = calloc(1, sizeof *out->hist)) == NULL) {
        snprintf(msg, len, "out of memory");
        return BENCH_EWORK;
    }
    histogram *h = calloc(nt, sizeof *h);
    if (h == NULL) {
        snprintf(msg, len, "out of memory");
        return BENCH_EWORK;
    }
    for (unsigned i = 0; i < nt; i++)
        w[i] = (hp_worker){.ctr = ctr, .hist = &h[i],
                           .n = n < TIMED_PASS_MAX ? n : TIMED_PASS_MAX};
    double tt = timed_round(loop_timed, w, nt, msg, len);
    for (unsigned i = 0; i < nt; i++)
        hist_merge(out->hist, &h[i]);
    free(h);
    if (tt < 0)
        return BENCH_EWORK;
    out->calls += out->hist->count;
    atomic_fetch_add(&m->done, 1);
    return BENCH_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* `per` engine round trips; returns ns per round trip, or -1. */
static double engine_block(idp_counter *ctr, uint64_t per, char *msg,
                           size_t len)
{
    uint64_t id;
    idp_error err;
    double t0 = bench_now();
    for (uint64_t i = 0; i < per; i++) {
        if (idp_next(ctr, &id, &err) != IDP_OK) {
            snprintf(msg, len, "%s", err.msg);
            return -1;
        }
    }
    return (bench_now() - t0) * 1e9 / (double)per;
}

/* `per` raw round trips; returns ns per round trip, or -1. */
static double raw_block(raw_client *raw, const char *key, uint64_t per,
                        char *msg, size_t len)
{
    uint64_t v;
    double t0 = bench_now();
    for (uint64_t i = 0; i < per; i++)
        if (raw_incr(raw, key, &v, msg, len) != 0)
            return -1;
    return (bench_now() - t0) * 1e9 / (double)per;
}

int hotpath_roundtrip(idp_counter *ctr, raw_client *raw, const char *raw_key,
                      uint64_t n, monitor *m, hp_roundtrip *out, char *msg,
                      size_t len)
{
    memset(out, 0, sizeof *out);
    uint64_t per = n / HOTPATH_RT_ROUNDS > 0 ? n / HOTPATH_RT_ROUNDS : 1;
    double eng[HOTPATH_RT_ROUNDS], rawt[HOTPATH_RT_ROUNDS],
        ratio[HOTPATH_RT_ROUNDS];
    if (raw_prepare(raw, raw_key, msg, len) != 0)
        return BENCH_EWORK;
    /* one of each first: connections made, keys created */
    if (engine_block(ctr, 1, msg, len) < 0 || raw_block(raw, raw_key, 1, msg, len) < 0)
        return BENCH_EWORK;
    int rounds = 0;
    for (; rounds < HOTPATH_RT_ROUNDS && !atomic_load(&m->stop); rounds++) {
        double e, r;
        if (rounds % 2 == 0) {
            e = engine_block(ctr, per, msg, len);
            r = e < 0 ? -1 : raw_block(raw, raw_key, per, msg, len);
        } else {
            r = raw_block(raw, raw_key, per, msg, len);
            e = r < 0 ? -1 : engine_block(ctr, per, msg, len);
        }
        if (e < 0 || r < 0)
            return BENCH_EWORK;
        eng[rounds] = e;
        rawt[rounds] = r;
        ratio[rounds] = e / r;
        atomic_fetch_add(&m->done, 1);
    }
    if (rounds == 0) {
        snprintf(msg, len, "stopped at the time limit before a round");
        return BENCH_EWORK;
    }
    qsort(eng, (size_t)rounds, sizeof *eng, cmp_double);
    qsort(rawt, (size_t)rounds, sizeof *rawt, cmp_double);
    qsort(ratio, (size_t)rounds, sizeof *ratio, cmp_double);
    out->n = per * (uint64_t)rounds;
    out->engine_ns = eng[rounds / 2];
    out->raw_ns = rawt[rounds / 2];
    out->ratio = ratio[rounds / 2];
    return BENCH_OK;
}
