/*
 * lease.c - per-thread leases: each thread that allocates takes a run of
 * IDs from a counter's pool with one claim and hands them out itself (the
 * inline hot path of idprime.h; idp_next/idp_incr here are the same for
 * callers built with IDP_NO_INLINE). A lease belongs to one thread; the IDs
 * a thread takes from its leases and from the pool increase, because the
 * pool only moves up and a lease is used up (or given up) before the
 * thread takes from the pool again.
 */
#include <stddef.h>

#include "pool.h"

static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t slot_used = 1;          /* bit i: slot i taken; 0: nobody's */
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static int slot_key_ok;
/* initial-exec: a plain %fs-relative load on the hot path (libidprime is
 * linked -z nodelete, and 8 bytes fit any static TLS surplus) */
static __thread unsigned tslot __attribute__((tls_model("initial-exec")));
/* tslot * sizeof(lease): the offset of this thread's lease in a counter,
 * read by the inline hot path of idprime.h */
API __thread size_t idp_lease_offset_ __attribute__((tls_model("initial-exec")));
static __thread int tslot_tried __attribute__((tls_model("initial-exec")));

_Static_assert(LEASE_SLOTS == 64, "slot_used is one 64-bit mask");
_Static_assert(offsetof(idp_counter, leases) == 0 &&
               sizeof(lease) == IDP_LEASE_STRIDE &&
               offsetof(lease, next) == offsetof(idp_lease_, next) &&
               offsetof(lease, end) == offsetof(idp_lease_, end),
               "the layout the inline hot path of idprime.h reads");

/* A thread ends: its slot (and the leases in it) go to the next thread. */
static void slot_release(void *v)
{
    pthread_mutex_lock(&slot_mu);
    slot_used &= ~(UINT64_C(1) << (uintptr_t)v);
    pthread_mutex_unlock(&slot_mu);
}

static void slot_init(void)
{
    slot_key_ok = pthread_key_create(&slot_key, slot_release) == 0;
}

/* The calling thread's slot, taken on its first allocation; 0 (no lease,
 * every ID claimed from the pool) when all are taken. */
static unsigned my_slot(void)
{
    if (likely(tslot != 0 || tslot_tried))
        return tslot;
    tslot_tried = 1;
    pthread_once(&slot_once, slot_init);
    if (!slot_key_ok)
        return 0;
    unsigned s = 0;
    pthread_mutex_lock(&slot_mu);
    if (~slot_used != 0) {
        s = (unsigned)__builtin_ctzll(~slot_used);
        slot_used |= UINT64_C(1) << s;
    }
    pthread_mutex_unlock(&slot_mu);
    if (s != 0 && pthread_setspecific(slot_key, (void *)(uintptr_t)s) != 0) {
        slot_release((void *)(uintptr_t)s);
        s = 0;
    }
    tslot = s;
    idp_lease_offset_ = s * sizeof(lease);
    return s;
}

static void lease_set(lease *l, uint64_t next, uint64_t end)
{
    atomic_store_explicit(&l->next, next, memory_order_relaxed);
    atomic_store_explicit(&l->end, end, memory_order_relaxed);
}

/* The next refill of a lease that just got `got` IDs from a segment of
 * `len`: doubles up to LEASE_MAX and a sixteenth of the segment, so small
 * batches are not emptied into a few threads' leases. */
static void lease_grow(lease *l, uint64_t len)
{
    uint64_t cap = len / 16;
    cap = cap > LEASE_MAX ? LEASE_MAX : cap < 1 ? 1 : cap;
    uint64_t next = l->size * 2;
    l->size = next > cap ? cap : next < 1 ? 1 : next;
}

/* Counts n IDs this thread held as given up: a gap. */
static void lease_gap(idp_counter *c, uint64_t n)
{
    if (n > 0)
        atomic_fetch_add_explicit(&c->lease_dropped, n, memory_order_relaxed);
}

/* Gives up what is left of the lease (a gap), before the thread takes IDs
 * from the pool, so that its IDs keep increasing. */
static void lease_drop(idp_counter *c, lease *l)
{
    uint64_t next = atomic_load_explicit(&l->next, memory_order_relaxed);
    uint64_t end = atomic_load_explicit(&l->end, memory_order_relaxed);
    atomic_store_explicit(&l->next, end, memory_order_relaxed);
    lease_gap(c, end - next);
}

/*
 * Allocates n IDs for the calling thread, whose lease could not serve them:
 * claims what the lease lacks plus a new lease in one fetch-add. When the
 * claim starts right where the lease ends (one thread alone, usually), the
 * n IDs run on from the lease; otherwise the lease's rest is given up. A
 * thread without a slot, metaprime=0 and huge incr take the pool's paths.
 * On success *first is the first of the n IDs.
 */
static int refill(idp_counter *c, uint64_t n, uint64_t *first, idp_error *e)
{
    claim cl = {0};
    unsigned slot = c->legacy ? 0 : my_slot();
    lease *l = &c->leases[slot];
    if (slot == 0 || n > FAST_MAX) {
        if (slot != 0)
            lease_drop(c, l); /* the huge incr drops the pool too */
        enum claim_result r = c->legacy || n > FAST_MAX
                                  ? CLAIM_MISS : claim_fast(c, n, 0, &cl);
        if (r == CLAIM_MISS)
            return alloc_slow(c, n, &cl, first, e);
        if (r == CLAIM_OK_TRIGGER)
            prefetch_trigger(c, &cl);
        *first = cl.first;
        return IDP_OK;
    }
    /* [own, own_end): a run this thread holds, the lease's rest first */
    uint64_t own = atomic_load_explicit(&l->next, memory_order_relaxed);
    uint64_t own_end = atomic_load_explicit(&l->end, memory_order_relaxed);
    /* the new lease: a multiple of n, so that later incr(n) use it up */
    uint64_t size = l->size < n ? n : l->size / n * n;
    enum claim_result r = claim_fast(c, n - (own_end - own) + size, 1, &cl);
    if (r == CLAIM_OK_TRIGGER)
        prefetch_trigger(c, &cl);
    if (r != CLAIM_MISS) {
        if (cl.first != own_end) { /* it does not run on: a gap */
            lease_gap(c, own_end - own);
            own = cl.first;
        }
        own_end = cl.first + cl.got;
        l->size = size;
        lease_grow(l, cl.len);
    }
    if (own_end - own >= n) {
        *first = own;
        lease_set(l, own + n, own_end);
        return IDP_OK;
    }
    /* The pool is empty: what is held serves only if the next batch runs
     * on from it (one client alone, usually). */
    uint64_t more = n - (own_end - own), got = 0;
    lease_set(l, own_end, own_end);
    claim missed = r == CLAIM_MISS ? cl : (claim){0};
    if (more == n)
        return alloc_slow(c, n, &missed, first, e);
    int rc = alloc_slow(c, more, &missed, &got, e);
    if (rc == IDP_OK && got == own_end) {
        *first = own;
        return IDP_OK;
    }
    lease_gap(c, own_end - own);
    if (rc != IDP_OK)
        return rc;
    lease_gap(c, more); /* too late: taken, but not a run of n */
    claim none = {0};
    return alloc_slow(c, n, &none, first, e);
}

API int idp_next_refill_(idp_counter *c, uint64_t *id, idp_error *err)
{
    idp_error e;
    int rc = refill(c, 1, id, &e);
    if (rc != IDP_OK && err != NULL)
        *err = e;
    return rc;
}

API int idp_incr_refill_(idp_counter *c, uint64_t n, uint64_t *last,
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
    int rc = refill(c, n, &first, &e);
    if (rc != IDP_OK) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    *last = first + n - 1;
    return IDP_OK;
}

/* The same as the inline hot path of idprime.h, for callers built with
 * IDP_NO_INLINE (and FFI). A thread without a lease reads slot 0, always
 * empty. */
API int idp_next(idp_counter *c, uint64_t *id, idp_error *err)
{
    lease *l = (lease *)((char *)c + idp_lease_offset_); /* leases[tslot] */
    uint64_t v = atomic_load_explicit(&l->next, memory_order_relaxed);
    if (likely(v < atomic_load_explicit(&l->end, memory_order_relaxed))) {
        atomic_store_explicit(&l->next, v + 1, memory_order_relaxed);
        *id = v;
        return IDP_OK;
    }
    return idp_next_refill_(c, id, err);
}

API int idp_incr(idp_counter *c, uint64_t n, uint64_t *last, idp_error *err)
{
    lease *l = (lease *)((char *)c + idp_lease_offset_); /* leases[tslot] */
    uint64_t v = atomic_load_explicit(&l->next, memory_order_relaxed);
    uint64_t end = atomic_load_explicit(&l->end, memory_order_relaxed);
    if (likely(n - 1 < end - v)) { /* 1 <= n <= what the lease holds */
        atomic_store_explicit(&l->next, v + n, memory_order_relaxed);
        *last = v + n - 1;
        return IDP_OK;
    }
    return idp_incr_refill_(c, n, last, err);
}

