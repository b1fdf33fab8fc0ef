/*
 * engine.c - the batching/prefetch engine: a pool per counter filled in
 * batches (sized by the adaptive rule), the pool's slow path, waiting for a
 * fetch, the background worker that fetches the next batch at the low
 * watermark, priming. The per-thread leases served from the pool are in
 * lease.c.
 *
 * Invariants:
 * - At most one fetch per counter is in flight (`inflight`, under mu), so a
 *   counter's store answers arrive in the order they were asked for, and
 *   the regression guard can compare each with the highest value held.
 * - A segment is installed only once the previous one is exhausted (or
 *   abandoned), and every segment lies above the one before, so the IDs of
 *   one counter strictly increase within the client.
 * - An ID is handed out only from a claim whose whole range lies inside
 *   the segment of the claim's generation; claims are unique because they
 *   come from one fetch-add. Anything else (a claim across a segment's end,
 *   a ready batch too small for a large incr) becomes a gap, never a reuse.
 *   A lease claim may take just the part inside the segment: the fetch-add
 *   gives that part to one claimer only.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"

#define GEN_MASK ((UINT64_C(1) << (64 - OFF_BITS)) - 1)

const double idp_buckets[NBUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- Adaptive batches ------------------------------------------------- */

/*
 * The rule (documented in the README): with r the demand measured in IDs/s
 * and T the fetch time (a moving average), a fetch starts when fewer than
 * max(low_watermark% of the batch, 1.5rT) IDs are left, so what is left
 * covers the fetch with half a fetch time to spare; the batch is 2rT plus
 * what the callers will lack before it lands (rT beyond the IDs left, when
 * a fetch starts late), never below the configured batch nor above
 * max_batch. A counter at a steady rate then has a fetch in flight half
 * the time, never waits, and holds at most 3.5rT unused IDs.
 */
#define RATE_MIN_IDS 4  /* fewer IDs than this do not measure a rate */

static int sizing(const idp_counter *c)
{
    return c->adaptive && c->client->policy == NULL && !c->legacy;
}

static uint64_t sized_batch(idp_counter *c);

/* The batch of the fetch being set up now: near 2^63, no more than is left
 * above the highest value held, so the last IDs are served. Called with
 * c->mu held. */
static uint64_t next_batch(idp_counter *c)
{
    uint64_t b = sizing(c) ? sized_batch(c) : c->batch;
    uint64_t left = IDP_MAX_VALUE - c->high;
    return c->high > 0 && left > 0 && b > left ? left : b;
}

static uint64_t sized_batch(idp_counter *c)
{
    uint64_t t = atomic_load_explicit(&c->ticket, memory_order_relaxed);
    uint64_t off = t >> OFF_BITS == c->gen ? t & OFF_MASK : c->cur_len;
    double left = off < c->cur_len ? (double)(c->cur_len - off) : 0;
    double need = c->rate * c->lat; /* IDs asked for during one fetch */
    double want = 2 * need + (need > left ? need - left : 0);
    uint64_t b = want >= (double)c->max_batch ? c->max_batch
                                              : (uint64_t)want + 1;
    c->batch = b < c->floor ? c->floor : b;
    return c->batch;
}

/* The offset of a new segment of `len` IDs at which the next fetch starts;
 * UINT64_MAX for none (low_watermark=0). Called with c->mu held. */
static uint64_t trigger_for(const idp_counter *c, uint64_t len)
{
    if (c->low_watermark == 0 || len == 0)
        return UINT64_MAX;
    uint64_t w = len * c->low_watermark / 100;
    if (sizing(c)) {
        double cover = 1.5 * c->rate * c->lat;
        if (cover > (double)w)
            w = cover >= (double)len ? len : (uint64_t)cover + 1;
    }
    return len - w;
}

/* Measures the demand over the current segment so far: from its install to
 * now, `used` IDs. Called with c->mu held. */
static void sample_rate(idp_counter *c, uint64_t used, double now)
{
    if (used >= RATE_MIN_IDS && c->installed_at > 0 && now > c->installed_at)
        c->rate = (double)used / (now - c->installed_at);
}

/* Queues a background fetch for the counter, unless one is in flight or
 * ready already. Called with c->mu held. */
static void request_async(idp_counter *c)
{
    /* at 2^63 - 1 nothing is left to fetch: the caller that needs an ID
     * gets the error */
    if (c->inflight || c->has_ready || c->legacy || c->high == IDP_MAX_VALUE)
        return;
    c->want_gen = c->gen;
    if (c->queued)
        return;
    idp_client *cl = c->client;
    c->queued = 1;
    pthread_mutex_lock(&cl->qmu);
    c->qnext = cl->queue;
    cl->queue = c;
    pthread_cond_signal(&cl->qcv);
    pthread_mutex_unlock(&cl->qmu);
}

/* The claim `cl` crossed the low watermark: measure the demand until it
 * (the IDs claimed before it; a lease's IDs are not handed out yet), then
 * ask for the next batch. */
void prefetch_trigger(idp_counter *c, const claim *cl)
{
    pthread_mutex_lock(&c->mu);
    if (c->gen == cl->gen)
        sample_rate(c, cl->off, now_s());
    request_async(c);
    pthread_mutex_unlock(&c->mu);
}

/*
 * Publishes [base, base+len) as the new segment with `claimed` offsets
 * already taken by the caller, retiring the current one. Called with c->mu
 * held.
 */
static void install(idp_counter *c, uint64_t base, uint64_t len,
                    uint64_t claimed)
{
    uint64_t g = (c->gen + 1) & GEN_MASK;
    segment *s = &c->seg[g & (SEG_RING - 1)];
    double now = now_s();
    /* The whole segment measures the demand, unless a caller waited in it:
     * then it ran dry and the time says nothing of the demand. */
    if (c->waited == c->waited_at_install) {
        uint64_t off = atomic_load_explicit(&c->ticket, memory_order_relaxed) &
                       OFF_MASK;
        sample_rate(c, off < c->cur_len ? off : c->cur_len, now);
    }
    c->waited_at_install = c->waited;
    /* low_watermark=0: no background fetch; the caller that finds the
     * pool empty fetches. */
    uint64_t trigger = trigger_for(c, len);

    /* seqlock write: odd generation while the slot changes; a reader that
     * sees any new field also sees the odd generation */
    atomic_store_explicit(&s->gen, g * 2 + 1, memory_order_relaxed);
    atomic_store_explicit(&s->base, base, memory_order_release);
    atomic_store_explicit(&s->len, len, memory_order_release);
    atomic_store_explicit(&s->trigger, trigger, memory_order_release);
    atomic_store_explicit(&s->gen, g * 2, memory_order_release);

    uint64_t old = atomic_exchange_explicit(&c->ticket, g << OFF_BITS | claimed,
                                            memory_order_acq_rel);
    uint64_t old_off = old & OFF_MASK;
    uint64_t used = old_off < c->cur_len ? old_off : c->cur_len;
    c->claimed_retired += used;
    c->installed_at = now;
    c->gen = g;
    c->cur_len = len;
    if (len > 0 && claimed >= trigger)
        request_async(c);
}

/* Asks the batch policy, if any, for the next batch. Called with c->mu
 * held after every successful fetch. */
static void apply_policy(idp_counter *c, uint64_t n, double dt)
{
    idp_client *cl = c->client;
    if (cl->policy == NULL || c->legacy)
        return;
    idp_policy_input in = {c->name, n, c->rate, dt, c->waited - c->waited_at_fetch,
                           c->prime_calls};
    c->waited_at_fetch = c->waited;
    uint64_t next = cl->policy(cl->policy_ud, &in);
    if (next == 0)
        return;
    if (next > (uint64_t)IDP_MAX_BATCH) {
        store_log(&cl->st, IDP_LOG_WARN, "counter '%s': the batch policy "
                  "answered %llu, outside 1..%lld; keeping %llu", c->name,
                  (unsigned long long)next, (long long)IDP_MAX_BATCH,
                  (unsigned long long)c->batch);
        return;
    }
    c->batch = next;
}

/*
 * Takes the result of a fetch of op->n IDs: checks the answer, applies the
 * regression guard, and on success leaves the batch ready for the pool
 * (to_pool) or to the caller (metaprime=0). Called with c->mu held; wakes
 * every waiter. On error fills e and remembers it for the waiters.
 */
static int fetch_done(idp_counter *c, const idp_incr_op *op, double dt,
                      int async, int to_pool, idp_error *e)
{
    int rc = op->status;
    c->inflight = 0;
    c->fetch_seq++;
    if (rc == IDP_OK && op->value > IDP_MAX_VALUE)
        rc = idp_seterr(e, IDP_ERANGE, "the store answered %llu: counters "
                        "stay below 2^63", (unsigned long long)op->value);
    else if (rc == IDP_OK && op->value < op->n)
        rc = idp_seterr(e, IDP_ESTORE, "the store answered %llu to an "
                        "increment of %llu (nonsense)",
                        (unsigned long long)op->value,
                        (unsigned long long)op->n);
    else if (rc == IDP_OK && op->value - op->n + 1 <= c->high) {
        c->regressions++;
        rc = idp_seterr(e, IDP_EREGRESS, "the store answered %llu..%llu, at "
                        "or below %llu already held: it lost data; refused "
                        "(raise the counter above %llu to continue)",
                        (unsigned long long)(op->value - op->n + 1),
                        (unsigned long long)op->value,
                        (unsigned long long)c->high,
                        (unsigned long long)c->high);
    }
    if (rc != IDP_OK) {
        idp_prefixerr(e, "counter '%s'", c->name);
        c->errors++;
        atomic_fetch_add_explicit(&c->client->errors, 1, memory_order_relaxed);
        c->fail_seq = c->fetch_seq;
        c->last_err = *e;
        pthread_cond_broadcast(&c->cv);
        return rc;
    }
    c->high = op->value;
    c->lat = c->lat == 0 ? dt : (c->lat + dt) / 2;
    c->prime_calls++;
    c->prefetch_async += async != 0;
    c->fetched += op->n;
    c->fetch_seconds += dt;
    size_t b = 0;
    while (b < NBUCKETS && dt > idp_buckets[b])
        b++;
    c->buckets[b]++;
    apply_policy(c, op->n, dt);
    if (to_pool) {
        c->has_ready = 1;
        c->ready_base = op->value - op->n + 1;
        c->ready_len = op->n;
    }
    pthread_cond_broadcast(&c->cv);
    return IDP_OK;
}

/* A fetch of n IDs on the caller's thread. Called with c->mu held and no
 * fetch in flight; mu is released during the store call. */
static int fetch_sync(idp_counter *c, uint64_t n, int to_pool, uint64_t *last,
                      idp_error *e)
{
    c->inflight = 1;
    pthread_mutex_unlock(&c->mu);
    idp_incr_op op = {c->key, n, 0, IDP_OK};
    double t0 = now_s();
    op.status = store_incr(&c->client->st, c->key, n, &op.value, e);
    double dt = now_s() - t0;
    pthread_mutex_lock(&c->mu);
    int rc = fetch_done(c, &op, dt, 0, to_pool, e);
    if (rc == IDP_OK && last != NULL)
        *last = op.value;
    return rc;
}


/* Waits for the fetch in flight to finish, bounded well beyond the store's
 * own timeout. Called with c->mu held. */
static int wait_fetch(idp_counter *c, idp_error *e)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    uint64_t ms = (uint64_t)c->client->cfg.timeout_ms * 2 + 1000;
    dl.tv_sec += (time_t)(ms / 1000);
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    uint64_t seq = c->fetch_seq;
    while (c->inflight && c->fetch_seq == seq)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) != 0)
            return idp_seterr(e, IDP_ETIMEOUT, "counter '%s': a fetch in "
                              "flight did not finish within %llu ms",
                              c->name, (unsigned long long)ms);
    return IDP_OK;
}

/* metaprime=0: every allocation is one store round trip, one at a time per
 * counter so the regression guard sees answers in order. */
static int alloc_legacy(idp_counter *c, uint64_t n, uint64_t *first,
                        idp_error *e)
{
    pthread_mutex_lock(&c->mu);
    int rc = IDP_OK;
    while (c->inflight && rc == IDP_OK)
        rc = wait_fetch(c, e);
    uint64_t last = 0;
    if (rc == IDP_OK)
        rc = fetch_sync(c, n, 0, &last, e);
    c->waited++;
    if (rc == IDP_OK) {
        c->direct_served += n;
        *first = last - n + 1;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/*
 * An incr too large for the pool: fetched on its own. The pool is dropped
 * first (a gap), so every later ID stays above this range. Called with
 * c->mu held.
 */
static int alloc_direct(idp_counter *c, uint64_t n, uint64_t *first,
                        idp_error *e)
{
    int rc = IDP_OK;
    while (c->inflight && rc == IDP_OK)
        rc = wait_fetch(c, e);
    c->waited++;
    if (rc != IDP_OK)
        return rc;
    if (c->has_ready) {
        c->has_ready = 0;
        c->skipped += c->ready_len;
    }
    install(c, 0, 0, 0);
    uint64_t last = 0;
    if ((rc = fetch_sync(c, n, 0, &last, e)) == IDP_OK) {
        c->direct_served += n;
        *first = last - n + 1;
    }
    return rc;
}

/*
 * The pool could not serve the claim: install a ready batch, wait for the
 * one in flight, or fetch on the caller's thread. `missed` is the failed
 * fast claim.
 */
int alloc_slow(idp_counter *c, uint64_t n, const claim *missed,
               uint64_t *first, idp_error *e)
{
    if (c->legacy)
        return alloc_legacy(c, n, first, e);
    pthread_mutex_lock(&c->mu);
    c->straddled += missed->straddled;
    c->lost += missed->lost;
    if (n > FAST_MAX) {
        int rc = alloc_direct(c, n, first, e);
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    int rc = IDP_OK, waited = 0;
    uint64_t waited_seq = 0;
    for (;;) {
        claim cl = {0};
        enum claim_result r = claim_fast(c, n, 0, &cl);
        c->straddled += cl.straddled;
        c->lost += cl.lost;
        if (r != CLAIM_MISS) {
            *first = cl.first;
            if (r == CLAIM_OK_TRIGGER)
                request_async(c);
            break;
        }
        if (c->has_ready) {
            c->has_ready = 0;
            if (c->ready_len >= n) {
                *first = c->ready_base;
                install(c, c->ready_base, c->ready_len, n);
                break;
            }
            /* Too small for this incr: skipped, so IDs keep increasing. */
            c->skipped += c->ready_len;
            continue;
        }
        if (waited && c->fail_seq > waited_seq) {
            /* the fetch this call waited for failed */
            *e = c->last_err;
            rc = e->code;
            break;
        }
        if (!waited) {
            /* The segment ran dry: its IDs went in the time since it was
             * installed, the best measure of the demand there is. Counted
             * before the install, which then takes no second sample. */
            if (atomic_load_explicit(&c->ticket, memory_order_relaxed) >> OFF_BITS ==
                c->gen)
                sample_rate(c, c->cur_len, now_s());
            c->waited++;
        }
        waited = 1;
        waited_seq = c->fetch_seq;
        if (c->inflight) {
            if ((rc = wait_fetch(c, e)) != IDP_OK)
                break;
            continue;
        }
        uint64_t size = next_batch(c);
        if ((rc = fetch_sync(c, n > size ? n : size, 1, NULL, e)) != IDP_OK)
            break;
    }
    /* Keep the offset bits far from overflowing into the generation. */
    if ((atomic_load_explicit(&c->ticket, memory_order_relaxed) & OFF_MASK) >
        OFF_MASK / 2)
        install(c, 0, 0, 0);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- Background worker ------------------------------------------------ */

#define WORK_CHUNK 32

/* Counters fetched together: one store call (one round trip where the store
 * pipelines). */
typedef struct fetch_set {
    idp_counter *c[WORK_CHUNK];
    idp_incr_op ops[WORK_CHUNK];
    size_t k;
} fetch_set;

/* Adds c, in flight from now on, with the batch sized now. Called with
 * c->mu held and fs not full. */
static void set_add(fetch_set *fs, idp_counter *c)
{
    c->inflight = 1;
    fs->ops[fs->k] = (idp_incr_op){c->key, next_batch(c), 0, IDP_OK};
    fs->c[fs->k++] = c;
}

/* Fetches the set and empties it. Returns IDP_OK, or the first failure's
 * code with err (may be NULL) filled; a failed background fetch is logged. */
static int set_fetch(idp_client *cl, fetch_set *fs, int async, idp_error *err)
{
    idp_error errs[WORK_CHUNK];
    int rc = IDP_OK;
    double t0 = now_s();
    store_incr_many(&cl->st, fs->ops, fs->k, errs);
    double dt = now_s() - t0;
    for (size_t i = 0; i < fs->k; i++) {
        idp_counter *c = fs->c[i];
        pthread_mutex_lock(&c->mu);
        if (fetch_done(c, &fs->ops[i], dt, async, 1, &errs[i]) != IDP_OK) {
            if (async)
                store_log(&cl->st, IDP_LOG_DEBUG, "background fetch "
                          "failed: %s", errs[i].msg);
            if (rc == IDP_OK) {
                rc = errs[i].code;
                if (err != NULL)
                    *err = errs[i];
            }
        }
        pthread_mutex_unlock(&c->mu);
    }
    fs->k = 0;
    return rc;
}

/* Fetches the next batch of every queued counter, several in one round trip
 * where the store allows. */
static void run_fetches(idp_client *cl, idp_counter *list)
{
    fetch_set fs = {.k = 0};
    while (list != NULL) {
        while (list != NULL && fs.k < WORK_CHUNK) {
            idp_counter *c = list;
            list = c->qnext;
            pthread_mutex_lock(&c->mu);
            c->queued = 0;
            /* Stale when a caller fetched and installed meanwhile. */
            if (!c->inflight && !c->has_ready && c->want_gen == c->gen)
                set_add(&fs, c);
            pthread_mutex_unlock(&c->mu);
        }
        if (fs.k > 0)
            set_fetch(cl, &fs, 1, NULL);
    }
}

static void *worker_main(void *arg)
{
    idp_client *cl = arg;
    pthread_mutex_lock(&cl->qmu);
    for (;;) {
        while (!cl->stopping && cl->queue == NULL)
            pthread_cond_wait(&cl->qcv, &cl->qmu);
        if (cl->stopping)
            break;
        idp_counter *list = cl->queue;
        cl->queue = NULL;
        pthread_mutex_unlock(&cl->qmu);
        run_fetches(cl, list);
        pthread_mutex_lock(&cl->qmu);
    }
    pthread_mutex_unlock(&cl->qmu);
    return NULL;
}

int engine_start(idp_client *cl, idp_error *err)
{
    pthread_mutex_init(&cl->qmu, NULL);
    pthread_cond_init(&cl->qcv, NULL);
    if (cl->cfg.metaprime == 0)
        return IDP_OK;
    if (pthread_create(&cl->worker, NULL, worker_main, cl) != 0)
        return idp_seterr(err, IDP_ENOMEM, "cannot start the fetch thread");
    cl->worker_running = 1;
    return IDP_OK;
}

void engine_stop(idp_client *cl)
{
    if (cl->worker_running) {
        pthread_mutex_lock(&cl->qmu);
        cl->stopping = 1;
        pthread_cond_broadcast(&cl->qcv);
        pthread_mutex_unlock(&cl->qmu);
        pthread_join(cl->worker, NULL);
        cl->worker_running = 0;
    }
    pthread_cond_destroy(&cl->qcv);
    pthread_mutex_destroy(&cl->qmu);
}

/* ---- Priming ---------------------------------------------------------- */

int engine_prime(idp_client *cl, idp_counter *const *cs, size_t n,
                 idp_error *err)
{
    fetch_set fs = {.k = 0};
    int rc = IDP_OK;
    for (size_t done = 0; done < n && rc == IDP_OK;) {
        for (; done < n && fs.k < WORK_CHUNK; done++) {
            pthread_mutex_lock(&cs[done]->mu);
            if (!cs[done]->inflight && !cs[done]->has_ready && cs[done]->gen == 0)
                set_add(&fs, cs[done]);
            pthread_mutex_unlock(&cs[done]->mu);
        }
        if (fs.k > 0)
            rc = set_fetch(cl, &fs, 0, err);
    }
    return rc;
}

/* ---- Counters --------------------------------------------------------- */

int engine_counter_init(idp_counter *c, idp_client *cl, const counter_cfg *cfg)
{
    c->client = cl;
    c->legacy = cl->cfg.metaprime == 0;
    c->batch = c->floor = (uint64_t)cfg->batch;
    c->max_batch = cfg->max_batch > cfg->batch ? (uint64_t)cfg->max_batch
                                               : c->floor;
    c->adaptive = cfg->adaptive != 0;
    c->low_watermark = (uint64_t)cfg->low_watermark;
    /* generation 0 is an empty segment: the first claim takes the slow path */
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    return IDP_OK;
}

void engine_counter_destroy(idp_counter *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

void engine_stats(idp_counter *c, idp_counter_stats *out,
                  uint64_t buckets[NBUCKETS + 1])
{
    pthread_mutex_lock(&c->mu);
    uint64_t off = atomic_load_explicit(&c->ticket, memory_order_relaxed) & OFF_MASK;
    uint64_t claimed = c->claimed_retired + (off < c->cur_len ? off : c->cur_len);
    /* IDs still in the threads' leases are not served yet; exact once the
     * threads are quiet, a close estimate while they run. */
    uint64_t leased = atomic_load_explicit(&c->lease_dropped, memory_order_relaxed);
    for (size_t i = 1; i < LEASE_SLOTS; i++) {
        uint64_t next = atomic_load_explicit(&c->leases[i].next, memory_order_relaxed);
        uint64_t end = atomic_load_explicit(&c->leases[i].end, memory_order_relaxed);
        leased += end > next ? end - next : 0;
    }
    /* A lost claim is taken as one inside its segment: a claim past the
     * end that then stalled through SEG_RING fetches would count twice. */
    uint64_t served = claimed - c->straddled - c->lost - leased + c->direct_served;
    memset(out, 0, sizeof *out);
    out->ids_served = served;
    out->prime_calls = c->prime_calls;
    out->prefetch_async = c->prefetch_async;
    out->waited_calls = c->waited;
    out->errors = c->errors;
    out->regressions = c->regressions;
    out->unused_ids = c->fetched - served;
    out->batch = c->batch;
    out->high = c->high;
    out->fetch_seconds = c->fetch_seconds;
    out->in_flight = c->inflight || c->queued;
    if (buckets != NULL)
        memcpy(buckets, c->buckets, sizeof c->buckets);
    pthread_mutex_unlock(&c->mu);
}
