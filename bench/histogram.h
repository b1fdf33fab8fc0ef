/*
 * histogram.h - latencies in nanoseconds, log-linear buckets: exact below
 * 64 ns, then 64 buckets per power of two (under 1.6% error), from 1 ns to
 * 2^64 ns in 30 KB. One per thread, merged at the end: adding is one
 * increment, no lock.
 */
#ifndef IDPRIME_BENCH_HISTOGRAM_H
#define IDPRIME_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct histogram {
    uint64_t count;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
} histogram;

/* HOT: called once per timed call. */
static inline unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) & (HIST_SUB - 1));
}

static inline void hist_add(histogram *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

/* Adds every sample of `from` to `into`. */
void hist_merge(histogram *into, const histogram *from);

/* The value at quantile q (0..1): the middle of the bucket holding the
 * ceil(q * count)-th smallest sample, never above the largest sample.
 * 0 for an empty histogram. */
uint64_t hist_quantile(const histogram *h, double q);

#endif
