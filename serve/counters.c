/*
 * counters.c - the counters the server serves from, and the worker
 * threads that make the engine calls which may wait for the store.
 *
 * Each counter holds a range of IDs taken from the engine in one go (an
 * idp_cache fill, made on a worker thread): a warm INCR is answered
 * inline on the event loop from that range, with no lock and no thread
 * hop. When half of the range is used, a worker fetches the next one
 * ahead (the spare), as the engine fetches its batches ahead; a
 * connection waits only when both ran dry, queued on the counter in
 * arrival order. The fill starts at a sixteenth of the engine's batch,
 * as the engine's own per-thread runs, and doubles each time connections
 * had to wait for one, up to the batch: the demand, not a constant, sets
 * how many thread hops an INCR costs. The store's round trip, if the
 * engine's pool is empty too, stalls nobody else. A cache fill comes
 * straight from the engine's pool, which only moves up, and the spare is
 * fetched after the range it follows, so every INCR reply of a counter is
 * above the one before, across all connections, as with Redis.
 *
 * An INCRBY that the range cannot hold, and every GET, is a job of its
 * own on a worker (idp_incr, idp_get): its connection waits, the others
 * go on. An INCRBY's IDs are unique and consecutive, but may lie below an
 * earlier INCR reply (a worker's own run of the pool).
 *
 * A range and a spare not handed out when the server stops are a gap
 * (at most two fills, each at most a batch), as the engine's per-thread
 * runs are: never handed out again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- The table -------------------------------------------------------- */

static size_t hash(const char *p)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)h;
}

static int tab_grow(srv *s)
{
    size_t size = s->tab_size == 0 ? 64 : s->tab_size * 2;
    cent **tab = calloc(size, sizeof *tab);
    if (tab == NULL)
        return -1;
    for (size_t i = 0; i < s->tab_size; i++) {
        for (cent *e = s->tab[i], *next; e != NULL; e = next) {
            next = e->hnext;
            size_t h = hash(e->name) & (size - 1);
            e->hnext = tab[h];
            tab[h] = e;
        }
    }
    free(s->tab);
    s->tab = tab;
    s->tab_size = size;
    return 0;
}

/* The counter `name` (valid), made on first use. NULL with a reply
 * written when it cannot be. */
static cent *find(conn *c, const char *name)
{
    srv *s = c->s;
    if (s->tab_size > 0) {
        for (cent *e = s->tab[hash(name) & (s->tab_size - 1)]; e != NULL;
             e = e->hnext)
            if (strcmp(e->name, name) == 0)
                return e;
    }
    if (s->ncounters >= s->o.max_counters) {
        resp_error(c, "too many counters: this server serves at most %u "
                   "(--max-counters)", s->o.max_counters);
        return NULL;
    }
    if (s->ncounters >= s->tab_size && tab_grow(s) != 0) {
        resp_error(c, "out of memory");
        return NULL;
    }
    idp_error err;
    idp_counter *ctr = idp_counter_get(s->client, name, &err);
    if (ctr == NULL) {
        ctrs_reply_error(c, &err);
        return NULL;
    }
    cent *e = calloc(1, sizeof *e);
    if (e == NULL || (e->name = strdup(name)) == NULL) {
        free(e);
        resp_error(c, "out of memory");
        return NULL;
    }
    e->ctr = ctr;
    e->nlen = strlen(name);
    size_t h = hash(name) & (s->tab_size - 1);
    e->hnext = s->tab[h];
    s->tab[h] = e;
    s->ncounters++;
    atomic_store_explicit(&s->st.counters, s->ncounters, memory_order_relaxed);
    return e;
}

void ctrs_each(srv *s, void (*fn)(void *, cent *), void *ud)
{
    for (size_t i = 0; i < s->tab_size; i++)
        for (cent *e = s->tab[i]; e != NULL; e = e->hnext)
            fn(ud, e);
}

void ctrs_reply_error(conn *c, const idp_error *e)
{
    if (e->code == IDP_ERANGE)
        resp_error(c, "increment or decrement would overflow");
    else
        resp_error(c, "%s", e->msg);
}

/* A key that is no counter name gets the rule, as an error. */
static int check_name(conn *c, const char *name, size_t len)
{
    if (idp_valid_name(name, len))
        return 0;
    char shown[80];
    resp_quote(shown, sizeof shown, name, len, 40);
    resp_error(c, "invalid counter name '%s': an idprime counter name is "
               "1 to 200 bytes of A-Z a-z 0-9 _ . : -", shown);
    return -1;
}

/* ---- Jobs ------------------------------------------------------------- */

/* Runs on a worker (or inline without workers): the engine call. */
static void job_run(srv *s, job *j)
{
    switch (j->kind) {
    case JOB_REFILL: {
        /* j->n: the fill the loop asked for, up to the engine's batch
         * (measured here, where a stats call may take the counter's
         * lock) */
        idp_counter_stats st = {.size = sizeof st};
        j->batch = idp_counter_stats_get(j->ce->ctr, &st) == IDP_OK
                       ? st.batch : 256;
        uint64_t fill = j->n != 0 ? j->n : j->batch / 16;
        if (fill > j->batch / 4)
            fill = j->batch / 4;
        fill = fill < 1 ? 1 : fill > IDP_CACHE_MAX_FILL ? IDP_CACHE_MAX_FILL
                                                         : fill;
        j->n = fill; /* what was asked, for the next one's size */
        idp_cache k;
        uint64_t id = 0;
        j->rc = idp_cache_init(&k, sizeof k, j->ce->ctr, fill, &j->err);
        if (j->rc == IDP_OK)
            j->rc = idp_cache_next(&k, &id, &j->err);
        if (j->rc == IDP_OK) {
            /* the fill is one run: the first ID, then [k.next, k.end) */
            j->lo = id;
            j->hi = k.next == id + 1 && k.end > k.next ? k.end : id + 1;
        }
        break;
    }
    case JOB_INCRBY:
        j->rc = idp_incr(j->ce->ctr, j->n, &j->value, &j->err);
        break;
    case JOB_GET:
        j->rc = idp_get(s->client, j->name, &j->value, &j->exists, &j->err);
        break;
    }
}

static void push_done(srv *s, job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->done_tail != NULL)
        s->done_tail->next = j;
    else
        s->done = j;
    s->done_tail = j;
    pthread_mutex_unlock(&s->mu);
}

static void *worker(void *arg)
{
    srv *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->queue == NULL && !s->quit_workers)
            pthread_cond_wait(&s->cv, &s->mu);
        job *j = s->queue;
        if (j == NULL) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        s->queue = j->next;
        if (s->queue == NULL)
            s->queue_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        job_run(s, j);
        push_done(s, j);
        event_active(s->done_ev, EV_READ, 0); /* thread-safe: evthread */
    }
}

/* Hands a job to the workers; without workers it runs now and waits in
 * the done list (so the caller's stack never recurses into replies). */
static int submit(srv *s, job *j)
{
    s->jobs_out++;
    if (s->nthreads == 0) {
        job_run(s, j);
        push_done(s, j);
        return 0;
    }
    j->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->queue_tail != NULL)
        s->queue_tail->next = j;
    else
        s->queue = j;
    s->queue_tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Starts the refill of ce's range. Returns 0, or -1 when out of memory. */
static int start_refill(srv *s, cent *ce)
{
    job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->kind = JOB_REFILL;
    j->ce = ce;
    j->n = ce->fill;
    ce->refilling = 1;
    return submit(s, j);
}

/* ---- INCR, INCRBY, GET ------------------------------------------------ */

/* Hands the next n IDs of the range to c, the spare taking over when the
 * range is used up; once half the range is gone, fetches the next spare
 * ahead. Hot: the warm INCR. */
static void serve_range(conn *c, cent *ce, uint64_t n)
{
    uint64_t last = ce->next + n - 1;
    ce->next += n;
    resp_uint(c, last);
    atomic_fetch_add_explicit(&c->s->st.ids_replied, n, memory_order_relaxed);
    if (ce->next == ce->end && ce->spare_lo != ce->spare_hi) {
        ce->next = ce->spare_lo;
        ce->end = ce->spare_hi;
        ce->spare_lo = ce->spare_hi = 0;
    }
    if (!ce->refilling && ce->spare_lo == ce->spare_hi &&
        ce->end - ce->next <= ce->fill / 2)
        (void)start_refill(c->s, ce); /* out of memory: the next INCR
                                         that finds it empty says so */
}

int ctrs_incr(conn *c, const char *name, size_t len, uint64_t n)
{
    cent *ce = c->last_ce;
    /* a pipeline's INCRs mostly name the counter of the one before: a
     * name equal to a counter's is valid, and that counter is it */
    if (ce == NULL || ce->nlen != len || memcmp(ce->name, name, len) != 0) {
        if (check_name(c, name, len) != 0)
            return EXEC_DONE;
        ce = find(c, name);
        if (ce == NULL)
            return EXEC_DONE;
        c->last_ce = ce;
    }
    if (ce->wq_head == NULL && ce->end - ce->next >= n) {
        serve_range(c, ce, n);
        return EXEC_DONE;
    }
    if (n > 1) { /* more than the range holds: the engine's own incr */
        job *j = calloc(1, sizeof *j);
        if (j == NULL) {
            resp_error(c, "out of memory");
            return EXEC_DONE;
        }
        j->kind = JOB_INCRBY;
        j->ce = ce;
        j->c = c;
        j->n = n;
        c->wait = WAIT_JOB;
        submit(c->s, j);
        return EXEC_WAIT;
    }
    if (!ce->refilling && start_refill(c->s, ce) != 0) {
        resp_error(c, "out of memory");
        return EXEC_DONE;
    }
    c->wait = WAIT_RANGE;
    c->wait_ce = ce;
    c->wait_n = n;
    c->wnext = NULL;
    if (ce->wq_tail != NULL)
        ce->wq_tail->wnext = c;
    else
        ce->wq_head = c;
    ce->wq_tail = c;
    return EXEC_WAIT;
}

int ctrs_get(conn *c, const char *name, size_t len)
{
    if (check_name(c, name, len) != 0)
        return EXEC_DONE;
    job *j = calloc(1, sizeof *j);
    if (j == NULL || (j->name = strdup(name)) == NULL) {
        free(j);
        resp_error(c, "out of memory");
        return EXEC_DONE;
    }
    j->kind = JOB_GET;
    j->c = c;
    c->wait = WAIT_JOB;
    submit(c->s, j);
    return EXEC_WAIT;
}

void ctrs_unwait(conn *c)
{
    cent *ce = c->wait_ce;
    if (ce == NULL)
        return;
    conn *prev = NULL;
    for (conn *w = ce->wq_head; w != NULL; prev = w, w = w->wnext) {
        if (w != c)
            continue;
        if (prev != NULL)
            prev->wnext = w->wnext;
        else
            ce->wq_head = w->wnext;
        if (ce->wq_tail == w)
            ce->wq_tail = prev;
        break;
    }
    c->wait_ce = NULL;
    c->wnext = NULL;
}

/* ---- Finished jobs, on the loop --------------------------------------- */

/* A refill is back: it becomes the range, or the spare when the range
 * still holds IDs. The queued connections are answered in order; those it
 * cannot serve go back to the queue's front, and the next refill starts.
 * Connections that waited for it mean the demand outran a fill: the next
 * fill is twice as big, up to the batch. A failed refill answers every
 * one of them with the error (each may try again). */
static void refill_done(srv *s, job *j)
{
    cent *ce = j->ce;
    ce->refilling = 0;
    if (j->rc == IDP_OK) {
        uint64_t cap = j->batch / 4 > 0 ? j->batch / 4 : 1;
        uint64_t grown = j->n * 2 > cap ? cap : j->n * 2;
        ce->fill = ce->wq_head != NULL && grown > j->n ? grown : j->n;
        if (ce->next == ce->end) {
            ce->next = j->lo;
            ce->end = j->hi;
        } else {
            ce->spare_lo = j->lo;
            ce->spare_hi = j->hi;
        }
    }
    conn *list = ce->wq_head;
    ce->wq_head = ce->wq_tail = NULL;
    while (list != NULL) {
        if (j->rc == IDP_OK && ce->next == ce->end) {
            /* used up (the spare too): back to the front, before any that
             * queued meanwhile */
            conn *tail = list;
            while (tail->wnext != NULL)
                tail = tail->wnext;
            tail->wnext = ce->wq_head;
            if (ce->wq_head == NULL)
                ce->wq_tail = tail;
            ce->wq_head = list;
            if (ce->refilling || start_refill(s, ce) == 0)
                return;
            list = ce->wq_head; /* out of memory: each is told */
            ce->wq_head = ce->wq_tail = NULL;
            j->rc = IDP_ENOMEM;
            snprintf(j->err.msg, sizeof j->err.msg, "out of memory");
        }
        conn *c = list;
        list = c->wnext;
        c->wnext = NULL;
        c->wait_ce = NULL;
        if (j->rc == IDP_OK)
            serve_range(c, ce, c->wait_n);
        else
            ctrs_reply_error(c, &j->err);
        conn_resume(c);
    }
}

/* An INCRBY or GET is back: its connection gets the reply (unless it
 * closed meanwhile) and goes on. */
static void call_done(job *j)
{
    conn *c = j->c;
    if (!c->dead) {
        if (j->rc != IDP_OK) {
            ctrs_reply_error(c, &j->err);
        } else if (j->kind == JOB_INCRBY) {
            resp_uint(c, j->value);
            atomic_fetch_add_explicit(&c->s->st.ids_replied, j->n,
                                      memory_order_relaxed);
        } else if (j->exists) {
            char text[24];
            int n = snprintf(text, sizeof text, "%llu",
                             (unsigned long long)j->value);
            resp_bulk(c, text, (size_t)n);
        } else {
            resp_null(c);
        }
    }
    conn_resume(c);
}

void ctrs_drain_done(srv *s)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        job *list = s->done;
        s->done = s->done_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        if (list == NULL)
            break;
        while (list != NULL) {
            job *j = list;
            list = j->next;
            s->jobs_out--;
            if (j->kind == JOB_REFILL)
                refill_done(s, j);
            else
                call_done(j);
            free(j->name);
            free(j);
        }
    }
    srv_maybe_exit(s);
}

/* ---- Workers ---------------------------------------------------------- */

int ctrs_start(srv *s, char *err, size_t errlen)
{
    if (s->o.workers == 0)
        return 0;
    s->threads = calloc(s->o.workers, sizeof *s->threads);
    if (s->threads == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < s->o.workers; i++) {
        int rc = pthread_create(&s->threads[i], NULL, worker, s);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start a worker thread: %s",
                     strerror(rc));
            ctrs_stop(s);
            return -1;
        }
        s->nthreads++;
    }
    return 0;
}

void ctrs_stop(srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->quit_workers = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
    free(s->threads);
    s->threads = NULL;
}

void ctrs_free(srv *s)
{
    for (job *j = s->done, *next; j != NULL; j = next) {
        next = j->next;
        free(j->name);
        free(j);
    }
    s->done = s->done_tail = NULL;
    for (size_t i = 0; i < s->tab_size; i++) {
        for (cent *e = s->tab[i], *next; e != NULL; e = next) {
            next = e->hnext;
            free(e->name);
            free(e);
        }
    }
    free(s->tab);
    s->tab = NULL;
    s->tab_size = s->ncounters = 0;
}
