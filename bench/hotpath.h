/*
 * hotpath.h - the hot path, two ways:
 *  - next() on a warm pool against a bare shared atomic fetch-add, with the
 *    same threads in the same run (interleaved rounds, best of each);
 *  - one store round trip through the engine (batch=1, no prefetch)
 *    against the store's raw client library doing the same INCRBY loop:
 *    the framework's cost per round trip.
 */
#ifndef IDPRIME_BENCH_HOTPATH_H
#define IDPRIME_BENCH_HOTPATH_H

#include "bench.h"
#include "histogram.h"
#include "progress.h"
#include "raw.h"

#define HOTPATH_ROUNDS 5
#define HOTPATH_RT_ROUNDS 50  /* engine and raw alternate this many times */

typedef struct hp_pool {
    uint64_t ids;             /* IDs of one round (threads x count) */
    double wall_s;            /* the best next() round */
    double next_ids_per_s;    /* best round */
    double atomic_ids_per_s;  /* best round */
    double next1_ids_per_s;   /* best round of next() on one thread, when
                                 the run has several (the scaling) */
    double cache_ids_per_s;   /* best round of idp_cache_next, each thread
                                 with a cache of its own */
    uint64_t calls;           /* next() calls in all rounds */
    histogram *hist;          /* a timed pass after the rounds; caller frees */
} hp_pool;

/* Runs the pool comparison on `ctr` (opened with a batch large enough to
 * stay warm). m->done counts rounds (HOTPATH_ROUNDS + 1 with the timed
 * pass). Returns BENCH_OK or BENCH_EWORK with msg. */
int hotpath_pool(const bench_config *cfg, idp_counter *ctr, monitor *m,
                 hp_pool *out, char *msg, size_t len);

typedef struct hp_roundtrip {
    uint64_t n;               /* round trips per side */
    double engine_ns;         /* per round trip: median of the rounds */
    double raw_ns;
    double ratio;             /* engine/raw: median of the rounds' ratios */
} hp_roundtrip;

/* Alternates HOTPATH_RT_ROUNDS rounds of n/HOTPATH_RT_ROUNDS next() calls
 * on `ctr` (a client at batch=1, low_watermark=0) and as many raw_incr on
 * raw_key, each side first in every other round; a round's ratio compares
 * two blocks next to each other in time, so drift in the machine's speed
 * cancels out. Returns BENCH_OK or BENCH_EWORK with msg. */
int hotpath_roundtrip(idp_counter *ctr, raw_client *raw, const char *raw_key,
                      uint64_t n, monitor *m, hp_roundtrip *out, char *msg,
                      size_t len);

#endif
