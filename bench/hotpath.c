/*
 * hotpath.c - next() on a warm pool against a bare shared atomic fetch-add,
 * measured in the same run with the same threads. Until `idprime bench
 * --workload hotpath` exists, this is how the hot path is measured:
 *
 *   build/bench/idprime-hotpath [THREADS] [IDS_PER_THREAD]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "idprime/idprime.h"

static _Atomic uint64_t shared_counter;
static idp_counter *ctr;
static uint64_t per_thread;
static _Atomic int failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run_atomic(void *arg)
{
    uint64_t sink = 0;
    for (uint64_t i = 0; i < per_thread; i++)
        sink += atomic_fetch_add_explicit(&shared_counter, 1, memory_order_relaxed);
    *(uint64_t *)arg = sink;
    return NULL;
}

static void *run_next(void *arg)
{
    uint64_t sink = 0, id;
    for (uint64_t i = 0; i < per_thread; i++) {
        if (idp_next(ctr, &id, NULL) != IDP_OK) {
            failed = 1;
            break;
        }
        sink += id;
    }
    *(uint64_t *)arg = sink;
    return NULL;
}

static double timed(void *(*fn)(void *), int threads)
{
    pthread_t t[64];
    uint64_t sink[64];
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, fn, &sink[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (double)per_thread * threads / (now_s() - t0);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    per_thread = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000;
    if (threads < 1 || threads > 64 || per_thread == 0) {
        fprintf(stderr, "usage: idprime-hotpath [THREADS 1..64] [IDS_PER_THREAD]\n");
        return 2;
    }
    idp_error err;
    /* one batch holds every ID: the pool stays warm throughout */
    char uri[128];
    snprintf(uri, sizeof uri, "mem://hot?batch=%d&low_watermark=0", 1 << 30);
    idp_client *c = idp_open(uri, NULL, &err);
    if (c == NULL || (ctr = idp_counter_get(c, "hot", &err)) == NULL) {
        fprintf(stderr, "idprime-hotpath: %s\n", err.msg);
        return 1;
    }
    uint64_t id;
    idp_next(ctr, &id, NULL); /* warm */
    double best_a = 0, best_n = 0;
    for (int round = 0; round < 5; round++) { /* interleaved, best of 5 */
        double a = timed(run_atomic, threads), n = timed(run_next, threads);
        best_a = a > best_a ? a : best_a;
        best_n = n > best_n ? n : best_n;
    }
    printf("threads=%d atomic_ids_per_s=%.0f next_ids_per_s=%.0f "
           "next/atomic=%.2f\n", threads, best_a, best_n, best_n / best_a);
    idp_close(c);
    return failed ? 1 : 0;
}
