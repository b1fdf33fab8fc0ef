/*
 * workload.c - files, burst, steady and the profiles (bursty, ramp,
 * trace: profile.c) on worker threads. Each worker
 * times its own calls into its own histogram; the histograms are merged
 * once the workers are joined.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "profile.h"
#include "workload.h"

typedef struct worker {
    const bench_config *cfg;
    idp_counter *const *ctr;
    monitor *m;
    _Atomic int *failed;          /* shared: the first failure stops all */
    uint64_t quota;               /* files or IDs for this worker */
    uint64_t rate;                /* steady: this worker's IDs/s */
    const profile *prof;          /* bursty, ramp, trace: every nt-th ID
                                     of the profile, from the index: */
    unsigned index, nt;
    uint64_t ids, calls;
    uint64_t last[2];             /* the highest ID of each counter */
    histogram *hist;
    int rc;
    idp_error err;
} worker;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t workload_units(const bench_config *cfg)
{
    if (cfg->workload == BENCH_BURSTY || cfg->workload == BENCH_RAMP ||
        cfg->workload == BENCH_TRACE) {
        profile p;
        char msg[8];
        uint64_t n = profile_build(cfg, &p, msg, sizeof msg) == 0 ? p.total : 0;
        profile_free(&p);
        return n;
    }
    uint64_t n = cfg->count != 0 ? cfg->count : bench_default_count(cfg->workload);
    if (cfg->workload == BENCH_STEADY)
        return cfg->rate * cfg->seconds;
    return n;
}

/* 1 when the worker should stop: a failure elsewhere or the time limit. */
static int halted(const worker *w)
{
    return atomic_load_explicit(w->failed, memory_order_relaxed) ||
           atomic_load_explicit(&w->m->stop, memory_order_relaxed);
}

/* One timed next() on counter c (k: which of the workload's counters). */
static int timed_next(worker *w, idp_counter *c, int k)
{
    uint64_t id = 0, t0 = now_ns();
    int rc = idp_next(c, &id, &w->err);
    hist_add(w->hist, now_ns() - t0);
    w->calls++;
    if (rc != IDP_OK) {
        w->rc = rc;
        atomic_store(w->failed, 1);
        return -1;
    }
    w->ids++;
    if (id > w->last[k])
        w->last[k] = id;
    return 0;
}

static void *run_files(void *arg)
{
    worker *w = arg;
    for (uint64_t f = 0; f < w->quota && !halted(w); f++) {
        if (timed_next(w, w->ctr[0], 0) != 0)
            return NULL;
        for (uint64_t k = 0; k < w->cfg->chunks; k++)
            if (timed_next(w, w->ctr[1], 1) != 0)
                return NULL;
        atomic_fetch_add_explicit(&w->m->done, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *run_burst(void *arg)
{
    worker *w = arg;
    for (uint64_t i = 0; i < w->quota && !halted(w); i++) {
        if (timed_next(w, w->ctr[0], 0) != 0)
            return NULL;
        if ((i & 255) == 255)
            atomic_fetch_add_explicit(&w->m->done, 256, memory_order_relaxed);
    }
    return NULL;
}

/* Sleeps until `when` (CLOCK_MONOTONIC ns). */
static void sleep_until(uint64_t when)
{
    struct timespec ts = {(time_t)(when / 1000000000u),
                          (long)(when % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* The i-th ID is due at start + i/rate; a worker behind schedule does not
 * sleep until it has caught up (the IDs/s then falls short of the rate). */
static void *run_steady(void *arg)
{
    worker *w = arg;
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < w->quota && !halted(w); i++) {
        uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)w->rate);
        if (now_ns() < due)
            sleep_until(due);
        if (timed_next(w, w->ctr[0], 0) != 0)
            return NULL;
        atomic_fetch_add_explicit(&w->m->done, 1, memory_order_relaxed);
    }
    return NULL;
}

/* bursty, ramp, trace: this worker's IDs (every nt-th from its index) at
 * the times the profile gives them; behind schedule, no sleep until it
 * has caught up. */
static void *run_profile(void *arg)
{
    worker *w = arg;
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < w->quota && !halted(w); i++) {
        uint64_t g = i * w->nt + w->index;
        uint64_t due = start + (uint64_t)(profile_due(w->prof, g) * 1e9);
        if (now_ns() < due)
            sleep_until(due);
        if (timed_next(w, w->ctr[0], 0) != 0)
            return NULL;
        atomic_fetch_add_explicit(&w->m->done, 1, memory_order_relaxed);
    }
    return NULL;
}

int workload_run(const bench_config *cfg, idp_counter *const ctr[2],
                 monitor *m, wl_out *out, char *msg, size_t len)
{
    memset(out, 0, sizeof *out);
    unsigned nt = cfg->threads;
    worker *w = calloc(nt, sizeof *w);
    pthread_t *th = calloc(nt, sizeof *th);
    out->hist = calloc(1, sizeof *out->hist);
    if (w == NULL || th == NULL || out->hist == NULL) {
        free(w);
        free(th);
        free(out->hist);
        out->hist = NULL;
        snprintf(msg, len, "out of memory");
        return BENCH_EWORK;
    }
    _Atomic int failed = 0;
    void *(*fn)(void *) = cfg->workload == BENCH_FILES    ? run_files
                          : cfg->workload == BENCH_BURST  ? run_burst
                          : cfg->workload == BENCH_STEADY ? run_steady
                                                          : run_profile;
    profile prof;
    memset(&prof, 0, sizeof prof);
    if (fn == run_profile && profile_build(cfg, &prof, msg, len) != 0) {
        free(w);
        free(th);
        free(out->hist);
        out->hist = NULL;
        return BENCH_EUSAGE;
    }
    uint64_t units = fn == run_profile ? prof.total : workload_units(cfg);
    int rc = BENCH_OK;
    unsigned started = 0;
    for (unsigned i = 0; i < nt; i++) {
        w[i] = (worker){.cfg = cfg, .ctr = ctr, .m = m, .failed = &failed};
        /* split evenly; the first threads take the remainder */
        w[i].quota = units / nt + (i < units % nt);
        if (cfg->workload == BENCH_STEADY) {
            w[i].rate = cfg->rate / nt + (i < cfg->rate % nt);
            w[i].quota = w[i].rate * cfg->seconds;
        }
        w[i].prof = &prof;
        w[i].index = i;
        w[i].nt = nt;
        if ((w[i].hist = calloc(1, sizeof *w[i].hist)) == NULL) {
            snprintf(msg, len, "out of memory");
            rc = BENCH_EWORK;
            break;
        }
    }
    double t0 = bench_now();
    for (unsigned i = 0; rc == BENCH_OK && i < nt; i++) {
        int e = pthread_create(&th[i], NULL, fn, &w[i]);
        if (e != 0) {
            snprintf(msg, len, "cannot start worker thread %u: %s", i + 1,
                     strerror(e));
            atomic_store(&failed, 1);
            rc = BENCH_EWORK;
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    out->wall_s = bench_now() - t0;
    out->stopped = atomic_load(&m->stop) ? (bench_interrupted() ? 2 : 1) : 0;
    for (unsigned i = 0; i < nt; i++) {
        out->ids += w[i].ids;
        out->calls += w[i].calls;
        for (int k = 0; k < 2; k++)
            if (w[i].last[k] > out->last[k])
                out->last[k] = w[i].last[k];
        if (w[i].hist != NULL)
            hist_merge(out->hist, w[i].hist);
        if (w[i].rc != IDP_OK && rc == BENCH_OK) {
            snprintf(msg, len, "%s", w[i].err.msg);
            rc = BENCH_EWORK;
        }
        free(w[i].hist);
    }
    free(w);
    free(th);
    profile_free(&prof);
    return rc;
}
