/*
 * engine.c - the batching/prefetch engine: a pool per counter filled in
 * batches (sized by the adaptive rule), claims from it, waiting for a
 * fetch, the background worker that fetches the next batch at the low
 * watermark, priming. The per-thread runs served from the pool are in
 * thread.c.
 *
 * Invariants:
 * - At most one fetch per counter is in flight (`inflight`, under mu), so a
 *   counter's store answers arrive in the order they were asked for, and
 *   the regression guard can compare each with the highest value held.
 * - A segment is installed only once the previous one is used up (or
 *   abandoned), and every segment lies above the one before, so the pool
 *   only moves up: a thread's run lies below everything it claims later.
 * - IDs leave the pool only through claims under mu; each is claimed once.
 *   Whatever is not handed out (a run's rest that the pool does not
 *   continue, a segment's rest too short for an incr) is a gap, never
 *   served again.
 * - mu is never held across a store call or a callback.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char *const idp_bucket_text[NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
};
const double idp_buckets[NBUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

/* An incr larger than this is fetched on its own, not through the pool. */
#define DIRECT_MIN (UINT64_C(1) << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int closing(const idp_counter *c)
{
    return atomic_load_explicit(&c->client->closing, memory_order_relaxed);
}

static int closed_err(const idp_counter *c, idp_error *e)
{
    return idp_seterr(e, IDP_EINVAL, "counter '%s': the client is being "
                      "closed", c->name);
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
#define RATE_MIN_SHARE 8 /* the shortest interval measured: lat / this */

static int sizing(const idp_counter *c)
{
    return c->adaptive && c->client->policy == NULL && !c->legacy;
}

/* The batch of the fetch being set up now: near 2^63, no more than is left
 * above the highest value held, so the last IDs are served. */
static uint64_t next_batch(idp_counter *c)
{
    if (sizing(c)) {
        double left = (double)(c->cur_end - c->cur);
        double need = c->rate * c->lat; /* IDs asked for during one fetch */
        double want = 2 * need + (need > left ? need - left : 0);
        uint64_t b = want >= (double)c->max_batch ? c->max_batch
                                                  : (uint64_t)want + 1;
        c->batch = b < c->floor ? c->floor : b;
    }
    uint64_t b = c->batch;
    uint64_t left = IDP_MAX_VALUE - c->high;
    return c->high > 0 && left > 0 && b > left ? left : b;
}

/* How many IDs may be left in a new segment of `len` when the next fetch
 * starts; UINT64_MAX for never (low_watermark=0: the caller that finds the
 * pool empty fetches). */
static uint64_t trigger_for(const idp_counter *c, uint64_t len)
{
    if (len == 0 || c->legacy)
        return UINT64_MAX;
    if (c->policy_wm_set) /* the policy's choice, in IDs, as it gave it */
        return c->policy_wm;
    if (c->low_watermark == 0)
        return UINT64_MAX;
    uint64_t w = len * c->low_watermark / 100;
    if (sizing(c)) {
        double cover = 1.5 * c->rate * c->lat;
        if (cover > (double)w)
            w = cover >= (double)len ? len : (uint64_t)cover + 1;
    }
    return w;
}

/* Measures the demand over the current segment so far: `used` IDs since
 * it was installed. */
static void sample_rate(idp_counter *c, uint64_t used, double now)
{
    if (used >= RATE_MIN_IDS && c->installed_at > 0 && now > c->installed_at) {
        /* After a wait the callers' backlog drains a segment in
         * microseconds, which says only that the demand outran it: read
         * an interval under an eighth of a fetch as that eighth (the
         * batch then grows at most about 16-fold a fetch), or it would
         * read as millions of IDs/s and size the next batches at
         * max_batch. */
        double dt = now - c->installed_at;
        if (dt < c->lat / RATE_MIN_SHARE)
            dt = c->lat / RATE_MIN_SHARE;
        c->rate = (double)used / dt;
    }
}

/* ---- The background worker's queue ------------------------------------ */

static void *worker_main(void *arg);

/* Queues a background fetch for the counter, unless one is in flight or
 * ready already; starts the worker on first use (and again in a child
 * after fork). Called with c->mu held. */
static void request_async(idp_counter *c)
{
    /* at 2^63 - 1 nothing is left to fetch: the caller that needs an ID
     * gets the error */
    if (c->inflight || c->has_ready || c->legacy || c->high == IDP_MAX_VALUE)
        return;
    c->want_seg = c->seg_id;
    if (c->queued)
        return;
    idp_client *cl = c->client;
    pthread_mutex_lock(&cl->qmu);
    if (!cl->worker_running && !cl->stopping &&
        pthread_create(&cl->worker, NULL, worker_main, cl) == 0)
        cl->worker_running = 1;
    if (cl->worker_running) {
        /* without a worker (no thread could start) the caller that finds
         * the pool empty fetches */
        c->queued = 1;
        c->qnext = cl->queue;
        cl->queue = c;
        pthread_cond_signal(&cl->qcv);
    }
    pthread_mutex_unlock(&cl->qmu);
}

/* After a claim that started at `from`: at the watermark, measure the
 * demand until the claim (what it took itself may be a thread's run, not
 * handed out yet) and ask for the next batch, once per segment. Called
 * with c->mu held. */
static void check_trigger(idp_counter *c, uint64_t from)
{
    uint64_t left = c->cur_end - c->cur;
    if (c->trigger_left == UINT64_MAX || left > c->trigger_left ||
        c->trig_seg == c->seg_id)
        return;
    c->trig_seg = c->seg_id; /* once per segment */
    sample_rate(c, from - (c->cur_end - c->seg_len), now_s());
    request_async(c);
}

/* The largest run a thread takes from a segment of `len`: up to LEASE_MAX
 * and a sixteenth of the segment, so small batches are not emptied into a
 * few threads' runs. */
static uint64_t run_cap(uint64_t len)
{
    uint64_t cap = len / 16;
    return cap > LEASE_MAX ? LEASE_MAX : cap < 1 ? 1 : cap;
}

/* Makes [base, base+len) the segment being served; what was left of the
 * current one is a gap. Called with c->mu held. */
static void install(idp_counter *c, uint64_t base, uint64_t len)
{
    double now = now_s();
    /* The whole segment measures the demand, unless a caller waited in it:
     * then it ran dry and the time says nothing of the demand. */
    if (c->waited == c->waited_at_install && c->seg_len > 0)
        sample_rate(c, c->seg_len - (c->cur_end - c->cur), now);
    c->waited_at_install = c->waited;
    c->cur = base;
    c->cur_end = base + len;
    c->seg_len = len;
    c->seg_id++;
    c->installed_at = now;
    c->trigger_left = trigger_for(c, len);
}

/* ---- Fetches ---------------------------------------------------------- */

/* Checks the store's answer to op: a value below 2^63, not below the
 * increment, above everything held (the regression guard). */
static int check_answer(idp_counter *c, const idp_incr_op *op, idp_error *e)
{
    int rc = op->status;
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
    return rc;
}

/* One policy call: the input the policy sees, and what it chose through
 * idp_policy_set_watermark(). */
typedef struct policy_call {
    idp_policy_input in;
    uint64_t watermark;
    int wm_set;
} policy_call;

/* The call this thread is in, so that the setter knows an input of a call
 * in progress from any other pointer without reading through it. */
static __thread policy_call *t_policy_call
    __attribute__((tls_model("initial-exec")));

API int idp_policy_set_watermark(const idp_policy_input *in, uint64_t left)
{
    policy_call *pc = t_policy_call;
    if (in == NULL || pc == NULL || in != &pc->in)
        return IDP_EINVAL;
    pc->watermark = left;
    pc->wm_set = 1;
    return IDP_OK;
}

/* Asks the batch policy for the next batch (and maybe the watermark of the
 * batch just fetched, `n` IDs, on), with c->mu released for the call (the
 * fetch stays in flight, so the counter's next fetch waits). */
static void apply_policy(idp_counter *c, uint64_t n, double dt, int async)
{
    idp_client *cl = c->client;
    if (cl->policy == NULL || c->legacy)
        return;
    double now = now_s();
    policy_call pc = {
        .in = {c->name, n, c->rate, dt, c->waited - c->waited_at_fetch,
               c->prime_calls, c->cur_end - c->cur, trigger_for(c, n),
               c->fetched_at > 0 ? now - c->fetched_at : 0, async != 0}};
    c->fetched_at = now;
    c->waited_at_fetch = c->waited;
    pthread_mutex_unlock(&c->mu);
    policy_call *outer = t_policy_call; /* a policy may open a client */
    t_policy_call = &pc;
    uint64_t next = cl->policy(cl->policy_ud, &pc.in);
    t_policy_call = outer; /* the setter refuses this input from now on */
    if (next > (uint64_t)IDP_MAX_BATCH)
        store_log(&cl->st, IDP_LOG_WARN, "counter '%s': the batch policy "
                  "answered %llu, outside 1..%lld; keeping the last good "
                  "batch", c->name, (unsigned long long)next,
                  (long long)IDP_MAX_BATCH);
    pthread_mutex_lock(&c->mu);
    if (next != 0 && next <= (uint64_t)IDP_MAX_BATCH)
        c->batch = next;
    if (pc.wm_set) {
        c->policy_wm = pc.watermark;
        c->policy_wm_set = 1;
    }
}

/*
 * Takes the result of a fetch of op->n IDs: checks the answer and on
 * success leaves the batch ready for the pool (to_pool) or for the caller
 * (metaprime=0, a large incr). Called with c->mu held (released only
 * around the policy); ends the fetch and wakes every waiter. On error
 * fills e and remembers it for the waiters.
 */
static int fetch_done(idp_counter *c, const idp_incr_op *op, double dt,
                      int async, int to_pool, idp_error *e)
{
    idp_client *cl = c->client;
    int rc = check_answer(c, op, e);
    if (rc != IDP_OK) {
        idp_prefixerr(e, "counter '%s'", c->name);
        c->errors++;
        atomic_fetch_add_explicit(&cl->errors, 1, memory_order_relaxed);
        c->inflight = 0;
        c->fetch_seq++;
        c->fail_seq = c->fetch_seq;
        if (c->last_err == NULL)
            c->last_err = malloc(sizeof *c->last_err);
        if (c->last_err != NULL)
            *c->last_err = *e;
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
    atomic_fetch_add_explicit(&cl->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cl->fetch_ns, (uint64_t)(dt * 1e9),
                              memory_order_relaxed);
    apply_policy(c, op->n, dt, async);
    c->pool_top = to_pool ? op->value : 0;
    if (to_pool) {
        c->has_ready = 1;
        c->ready_base = op->value - op->n + 1;
        c->ready_len = op->n;
    }
    c->inflight = 0;
    c->fetch_seq++;
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
 * own timeout; gives up when the client is being closed. Called with
 * c->mu held. */
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
    while (c->inflight && c->fetch_seq == seq) {
        if (closing(c))
            return closed_err(c, e);
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) != 0)
            return idp_seterr(e, IDP_ETIMEOUT, "counter '%s': a fetch in "
                              "flight did not finish within %llu ms",
                              c->name, (unsigned long long)ms);
    }
    return IDP_OK;
}

/* A fetch of exactly n IDs for the caller, outside the pool (metaprime=0,
 * or an incr too large for a batch), after the fetch in flight. The pool
 * is dropped first unless `keep_pool` (a gap), so that every later ID of
 * the counter lies above the range. Called with c->mu held. */
static int fetch_direct(idp_counter *c, uint64_t n, int keep_pool,
                        uint64_t *first, idp_error *e)
{
    int rc = IDP_OK;
    while (c->inflight && rc == IDP_OK)
        rc = wait_fetch(c, e);
    c->waited++;
    if (rc != IDP_OK)
        return rc;
    if (!keep_pool) {
        c->has_ready = 0;
        install(c, 0, 0);
    }
    uint64_t last = 0;
    if ((rc = fetch_sync(c, n, 0, &last, e)) == IDP_OK) {
        c->served_pool += n;
        *first = last - n + 1;
    }
    return rc;
}

/* ---- Claims ----------------------------------------------------------- */

/* A call enters or leaves a slow path that may block: idp_close waits until
 * none is inside. */
static void enter(idp_client *cl)
{
    atomic_fetch_add_explicit(&cl->active, 1, memory_order_acquire);
}

/* Once closing, the count drops under qmu, so that idp_close, which frees
 * the client as soon as it sees none inside, cannot do so before this
 * thread is done with qmu. */
static void leave(idp_client *cl)
{
    if (!atomic_load_explicit(&cl->closing, memory_order_acquire)) {
        atomic_fetch_sub_explicit(&cl->active, 1, memory_order_release);
        return;
    }
    pthread_mutex_lock(&cl->qmu);
    atomic_fetch_sub_explicit(&cl->active, 1, memory_order_release);
    pthread_cond_broadcast(&cl->qcv);
    pthread_mutex_unlock(&cl->qmu);
}

/* The pool is empty: install the ready batch, wait for the fetch in flight,
 * or fetch (at least n) on the caller's thread. *waited tells whether this
 * call waited already (and since which fetch). Called with c->mu held. */
static int refill_pool(idp_counter *c, uint64_t n, int *waited,
                       uint64_t *waited_seq, idp_error *e)
{
    if (c->has_ready) {
        c->has_ready = 0;
        install(c, c->ready_base, c->ready_len);
        return IDP_OK;
    }
    if (closing(c))
        return closed_err(c, e);
    if (*waited && c->fail_seq > *waited_seq) {
        /* the fetch this call waited for failed */
        if (c->last_err != NULL)
            *e = *c->last_err;
        else
            idp_seterr(e, IDP_ESTORE, "counter '%s': the fetch this call "
                       "waited for failed", c->name);
        return e->code;
    }
    if (!*waited) {
        /* The segment ran dry: its IDs went in the time since it was
         * installed, the best measure of the demand there is. */
        sample_rate(c, c->seg_len, now_s());
        c->waited++; /* install then takes no second sample */
    }
    *waited = 1;
    *waited_seq = c->fetch_seq;
    if (c->inflight)
        return wait_fetch(c, e);
    uint64_t size = next_batch(c);
    return fetch_sync(c, n > size ? n : size, 1, NULL, e);
}

int engine_claim(idp_counter *c, tlease *l, run *r, uint64_t n,
                 uint64_t extra, uint64_t *first, idp_error *e)
{
    idp_client *cl = c->client;
    enter(cl);
    pthread_mutex_lock(&c->mu);
    int rc = IDP_OK;
    if (c->legacy) {
        rc = fetch_direct(c, n, 1, first, e);
        goto out;
    }
    if (n > DIRECT_MIN) {
        if (l != NULL) { /* the run's rest: below the pool, a gap */
            l->gapped += atomic_load_explicit(&l->end, memory_order_relaxed) -
                         atomic_load_explicit(&l->next, memory_order_relaxed);
            atomic_store_explicit(&l->next, atomic_load_explicit(
                &l->end, memory_order_relaxed), memory_order_relaxed);
        }
        rc = fetch_direct(c, n, 0, first, e);
        goto out;
    }
    run mine = {0, 0, 0, 0};
    if (l != NULL)
        mine = (run){atomic_load_explicit(&l->next, memory_order_relaxed),
                     atomic_load_explicit(&l->end, memory_order_relaxed),
                     l->taken, l->gapped};
    else
        mine = *r;
    int waited = 0;
    uint64_t waited_seq = 0;
    for (;;) {
        uint64_t rest = mine.end - mine.next;
        /* the pool continues the run: its rest serves first */
        int runs_on = rest > 0 && c->cur == mine.end;
        uint64_t need = runs_on ? n - rest : n;
        uint64_t avail = c->cur_end - c->cur;
        if (avail >= need) {
            uint64_t more = l != NULL && extra > run_cap(c->seg_len)
                                ? run_cap(c->seg_len) : extra;
            uint64_t k = need + more > avail ? avail : need + more;
            uint64_t from = c->cur;
            if (!runs_on) {
                mine.gapped += rest;
                mine.next = c->cur;
            }
            c->cur += k;
            mine.taken += k;
            mine.end = c->cur;
            *first = mine.next;
            mine.next += n;
            check_trigger(c, from);
            break;
        }
        if (avail > 0) {
            /* Too short for the claim: the run takes it, and the next batch
             * serves the claim on from it where it continues it (one client
             * alone, usually); otherwise it is a gap. */
            if (!runs_on) {
                mine.gapped += rest;
                mine.next = c->cur;
            }
            mine.taken += avail;
            mine.end = c->cur = c->cur_end;
            continue;
        }
        if ((rc = refill_pool(c, n, &waited, &waited_seq, e)) != IDP_OK)
            break;
    }
    if (l != NULL) {
        uint64_t cap = run_cap(c->seg_len); /* the next run: doubled */
        l->size = l->size * 2 > cap ? cap : l->size * 2;
        atomic_store_explicit(&l->end, mine.end, memory_order_relaxed);
        atomic_store_explicit(&l->next, mine.next, memory_order_relaxed);
        l->taken = mine.taken;
        l->gapped = mine.gapped;
    } else {
        *r = mine;
        if (rc == IDP_OK) /* a caller cache takes them all: served */
            c->served_pool += n + (mine.end - mine.next);
    }
out:
    pthread_mutex_unlock(&c->mu);
    leave(cl);
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
        int r = fetch_done(c, &fs->ops[i], dt, async, 1, &errs[i]);
        pthread_mutex_unlock(&c->mu);
        if (r == IDP_OK)
            continue;
        if (async)
            store_log(&cl->st, IDP_LOG_DEBUG, "background fetch failed: %s",
                      errs[i].msg);
        if (rc == IDP_OK) {
            rc = errs[i].code;
            if (err != NULL)
                *err = errs[i];
        }
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
            if (!c->inflight && !c->has_ready && c->want_seg == c->seg_id &&
                c->high < IDP_MAX_VALUE && !closing(c))
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

void engine_start(idp_client *cl)
{
    pthread_mutex_init(&cl->qmu, NULL);
    pthread_cond_init(&cl->qcv, NULL);
}

/* Stops the worker and waits until no call is inside a slow path: those
 * that wait for a fetch give up with an error. */
void engine_stop(idp_client *cl)
{
    atomic_store(&cl->closing, 1);
    pthread_mutex_lock(&cl->mu);
    for (size_t b = 0; b < cl->nbuckets; b++)
        for (idp_counter *c = cl->table[b]; c != NULL; c = c->hnext) {
            pthread_mutex_lock(&c->mu);
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
        }
    pthread_mutex_unlock(&cl->mu);
    pthread_mutex_lock(&cl->qmu);
    cl->stopping = 1;
    pthread_cond_broadcast(&cl->qcv);
    int joined = cl->worker_running;
    pthread_mutex_unlock(&cl->qmu);
    if (joined)
        pthread_join(cl->worker, NULL);
    pthread_mutex_lock(&cl->qmu);
    cl->worker_running = 0;
    /* a call that left just before it saw `closing` dropped the count
     * without a signal: look again every 10 ms */
    while (atomic_load(&cl->active) > 0) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 10000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cl->qcv, &cl->qmu, &t);
    }
    pthread_mutex_unlock(&cl->qmu);
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
            if (!cs[done]->inflight && !cs[done]->has_ready &&
                cs[done]->seg_id == 0)
                set_add(&fs, cs[done]);
            pthread_mutex_unlock(&cs[done]->mu);
        }
        if (fs.k > 0)
            rc = set_fetch(cl, &fs, 0, err);
    }
    return rc;
}

/* ---- Counters --------------------------------------------------------- */

void engine_counter_init(idp_counter *c, idp_client *cl, const counter_cfg *cfg)
{
    c->client = cl;
    c->legacy = cl->cfg.metaprime == 0;
    c->batch = c->floor = (uint64_t)cfg->batch;
    c->max_batch = cfg->max_batch > cfg->batch ? (uint64_t)cfg->max_batch
                                               : c->floor;
    c->adaptive = cfg->adaptive != 0;
    c->low_watermark = (uint64_t)cfg->low_watermark;
    c->trigger_left = UINT64_MAX;
    engine_counter_locks(c);
}

void engine_counter_locks(idp_counter *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits are bounded */
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void engine_counter_destroy(idp_counter *c)
{
    leases_drop_all(c);
    free(c->last_err);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

void engine_stats(idp_counter *c, idp_counter_stats *out)
{
    idp_counter_stats s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&c->mu);
    /* Each run's served count only grows (its owner moves `next` up; end,
     * taken and gapped change under mu), and a dropped run's count moves
     * into served_done under mu: the total never goes backwards. */
    uint64_t served = c->served_done + c->served_pool;
    for (tlease *l = c->leases; l != NULL; l = l->cnext) {
        uint64_t end = atomic_load_explicit(&l->end, memory_order_relaxed);
        uint64_t next = atomic_load_explicit(&l->next, memory_order_relaxed);
        served += l->taken - l->gapped - (end - next);
    }
    s.ids_served = served;
    s.prime_calls = c->prime_calls;
    s.prefetch_async = c->prefetch_async;
    s.waited_calls = c->waited;
    s.errors = c->errors;
    s.regressions = c->regressions;
    s.unused_ids = c->fetched > served ? c->fetched - served : 0;
    s.batch = c->batch;
    s.high = c->high;
    s.fetch_seconds = c->fetch_seconds;
    s.in_flight = c->inflight || c->queued;
    pthread_mutex_unlock(&c->mu);
    size_t n = out->size < sizeof s ? out->size : sizeof s;
    s.size = out->size;
    memcpy(out, &s, n);
}
