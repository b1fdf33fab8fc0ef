/*
 * histogram.c - merging and quantiles of the latency histograms.
 */
#include <math.h>

#include "histogram.h"

void hist_merge(histogram *into, const histogram *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    if (from->max > into->max)
        into->max = from->max;
}

/* The smallest value and the width of bucket i. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width)
{
    if (i < HIST_SUB) {
        *low = i;
        *width = 1;
        return;
    }
    unsigned shift = i / HIST_SUB - 1;
    *low = (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
    *width = (uint64_t)1 << shift;
}

uint64_t hist_quantile(const histogram *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t low, width;
            bucket_range(i, &low, &width);
            uint64_t mid = low + width / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
