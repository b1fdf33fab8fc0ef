/*
 * pool.h - a counter's pool as engine.c and lease.c share it: the claim of
 * offsets with one fetch-add (the only way IDs leave the pool), and the
 * slow path behind a claim that missed.
 */
#ifndef IDP_POOL_H
#define IDP_POOL_H

#include "internal.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

enum claim_result { CLAIM_OK, CLAIM_OK_TRIGGER, CLAIM_MISS };

typedef struct claim {
    uint64_t first;     /* the first ID of a good claim */
    uint64_t got;       /* IDs it holds: n, or fewer for a partial claim */
    uint64_t len;       /* the length of the claim's segment */
    uint64_t off;       /* the claim's offset in it */
    uint64_t gen;       /* the segment's generation */
    uint64_t straddled; /* on a miss: offsets claimed inside the segment */
    uint64_t lost;      /* on a miss: the claim's slot had been reused */
} claim;

/*
 * Claims n offsets of the pool with one fetch-add and a seqlock read of the
 * segment; no lock, no allocation, no syscall. A lease refill or a thread
 * without a lease comes here. With `partial`, a claim across the segment's
 * end is good for the part inside it (out->got < n).
 */
static inline enum claim_result claim_fast(idp_counter *c, uint64_t n,
                                           int partial, claim *out)
{
    uint64_t t = atomic_fetch_add_explicit(&c->ticket, n, memory_order_acquire);
    uint64_t g = t >> OFF_BITS, off = t & OFF_MASK;
    segment *s = &c->seg[g & (SEG_RING - 1)];
    /* seqlock read; acquire loads keep the second read of gen after the
     * data (plain moves on x86, and visible to ThreadSanitizer) */
    uint64_t g1 = atomic_load_explicit(&s->gen, memory_order_acquire);
    uint64_t base = atomic_load_explicit(&s->base, memory_order_acquire);
    uint64_t len = atomic_load_explicit(&s->len, memory_order_acquire);
    uint64_t trig = atomic_load_explicit(&s->trigger, memory_order_acquire);
    uint64_t g2 = atomic_load_explicit(&s->gen, memory_order_relaxed);
    out->straddled = 0;
    out->len = len;
    out->off = off;
    out->gen = g;
    if (unlikely(g1 != g * 2 || g2 != g1)) {
        /* The thread stalled while SEG_RING segments went by and the slot
         * was reused: this claim is a gap. */
        out->lost = n;
        return CLAIM_MISS;
    }
    if (likely(off + n <= len) || (partial && off < len)) {
        out->first = base + off;
        out->got = off + n <= len ? n : len - off;
        return off < trig && off + n >= trig ? CLAIM_OK_TRIGGER : CLAIM_OK;
    }
    if (off < len)
        out->straddled = len - off;
    return CLAIM_MISS;
}

/* A claim crossed the low watermark: measure the demand, ask for the next
 * batch. */
IDP_HIDDEN void prefetch_trigger(idp_counter *c, const claim *cl);

/* The pool could not serve a claim of n (`missed`, its accounting): install
 * a ready batch, wait for the one in flight or fetch; *first is the first
 * of the n IDs. */
IDP_HIDDEN int alloc_slow(idp_counter *c, uint64_t n, const claim *missed,
                          uint64_t *first, idp_error *e);

#endif
