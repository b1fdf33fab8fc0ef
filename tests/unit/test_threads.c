/*
 * test_threads.c - the per-thread layer and what surrounds it, on the mem
 * store: runs of threads that come and go (never inherited, even when the
 * batch shrinks), a randomized stress of next/incr with a batch policy,
 * ids_served exact and monotonic, idp_close while threads wait for a
 * fetch, callbacks that call back into the library, and NULL handles. The
 * caller-owned idp_cache is in test_caches.c.
 *
 * Every ID a test collects is checked for duplicates (sorted, all of them).
 * Threads never assert: they record what went wrong and the test asserts
 * after joining them. No sleep decides an outcome: tests wait on joins,
 * barriers, pipes or the counter's own state.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "idprime/idprime.h"
#include "testutil.h"

/* ---- Helpers ------------------------------------------------------------ */

/* A range of IDs one call handed out: first..last. */
typedef struct range {
    uint64_t first, last;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

/* Sorts the ranges and fails the test when two overlap (an ID handed out
 * twice) or one holds ID 0; `ctx` goes into the message (a seed). */
static void assert_ranges_distinct(range *r, size_t n, const char *ctx)
{
    if (n == 0)
        return;
    qsort(r, n, sizeof *r, cmp_range);
    ck_assert_msg(r[0].first >= 1, "%s: ID 0 handed out", ctx);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(r[i].last >= r[i].first, "%s: bad range %" PRIu64
                      "..%" PRIu64, ctx, r[i].first, r[i].last);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(r[i].first > r[i - 1].last,
                      "%s: %" PRIu64 "..%" PRIu64 " and %" PRIu64 "..%" PRIu64
                      " overlap: IDs handed out twice", ctx, r[i - 1].first,
                      r[i - 1].last, r[i].first, r[i].last);
}

/* splitmix64: a small seeded PRNG, one state per thread. */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The test's seed: $IDP_TEST_SEED, else the time and pid. Printed, so a
 * failure can be replayed (the schedule aside). */
static uint64_t test_seed(const char *test)
{
    const char *env = getenv("IDP_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0)
                                : (uint64_t)time(NULL) * 1000003u ^
                                      (uint64_t)getpid();
    fprintf(stderr, "%s: seed %" PRIu64 " (IDP_TEST_SEED=%" PRIu64
            " replays it)\n", test, seed, seed);
    return seed;
}

/* A deadlock must fail the test, not hang it: SIGALRM ends the process
 * with a message. */
static const char *alarm_why = "timed out";

static void on_alarm(int sig)
{
    (void)sig;
    static const char head[] = "watchdog: ";
    (void)!write(2, head, sizeof head - 1);
    (void)!write(2, alarm_why, strlen(alarm_why));
    (void)!write(2, "\n", 1);
    _exit(3);
}

static void watchdog(unsigned seconds, const char *why)
{
    alarm_why = why;
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

/* ---- 1. A dead thread's run is never inherited -------------------------- */

static uint64_t policy_260(void *ud, const idp_policy_input *in)
{
    (void)in;
    atomic_fetch_add((_Atomic unsigned *)ud, 1);
    return 260;
}

/* A thread that takes `want` IDs with idp_next and ends. */
typedef struct taker {
    idp_counter *ctr;
    size_t want, got;
    uint64_t *ids;
    int rc;
    char msg[256];
} taker;

static void *take_ids(void *arg)
{
    taker *t = arg;
    idp_error e = {0, ""};
    for (t->got = 0; t->got < t->want; t->got++) {
        if ((t->rc = idp_next(t->ctr, &t->ids[t->got], &e)) != IDP_OK) {
            snprintf(t->msg, sizeof t->msg, "%s", e.msg);
            break;
        }
    }
    return NULL;
}

#define DEAD_THREADS 208

START_TEST(test_a_dead_threads_run_is_never_inherited_with_a_shrinking_batch)
{
    /* The first batch is 4096 (runs up to 256), every later one 260 (runs
     * up to 16). 208 threads each take 1..300 IDs and end: 80 one after
     * the other, 80 in a sliding window of 4, 48 in waves of 8; each new
     * thread finds runs that ended threads left, with rests of the old,
     * larger size. */
    _Atomic unsigned policy_calls = 0;
    idp_options opt = {.size = sizeof opt, .policy = policy_260,
                       .policy_ud = &policy_calls};
    idp_client *c = tu_open("mem://dead?batch=4096&adaptive=0&low_watermark=0",
                            &opt);
    idp_counter *k = tu_counter(c, "x");
    taker *t = calloc(DEAD_THREADS, sizeof *t);
    pthread_t *th = calloc(DEAD_THREADS, sizeof *th);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(th);
    size_t total = 0;
    for (int i = 0; i < DEAD_THREADS; i++) {
        t[i].ctr = k;
        t[i].want = (size_t)(i * 97 + 13) % 300 + 1;
        t[i].ids = malloc(t[i].want * sizeof(uint64_t));
        ck_assert_ptr_nonnull(t[i].ids);
        total += t[i].want;
    }
    int i = 0;
    for (; i < 80; i++) { /* one after the other */
        ck_assert_int_eq(pthread_create(&th[i], NULL, take_ids, &t[i]), 0);
        pthread_join(th[i], NULL);
    }
    for (; i < 160; i++) { /* overlapping: at most 4 alive */
        ck_assert_int_eq(pthread_create(&th[i], NULL, take_ids, &t[i]), 0);
        if (i - 3 >= 80)
            pthread_join(th[i - 3], NULL);
    }
    for (int j = 157; j < 160; j++)
        pthread_join(th[j], NULL);
    for (; i < DEAD_THREADS; i += 8) { /* waves of 8 */
        for (int j = i; j < i + 8; j++)
            ck_assert_int_eq(pthread_create(&th[j], NULL, take_ids, &t[j]), 0);
        for (int j = i; j < i + 8; j++)
            pthread_join(th[j], NULL);
    }
    uint64_t *all = malloc(total * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    for (int j = 0; j < DEAD_THREADS; j++) {
        ck_assert_msg(t[j].rc == IDP_OK && t[j].got == t[j].want,
                      "thread %d: %zu of %zu IDs: %s", j, t[j].got, t[j].want,
                      t[j].msg);
        for (size_t m = 1; m < t[j].got; m++)
            ck_assert_msg(t[j].ids[m] > t[j].ids[m - 1], "thread %d: ID %"
                          PRIu64 " after %" PRIu64 ": not increasing", j,
                          t[j].ids[m], t[j].ids[m - 1]);
        memcpy(all + n, t[j].ids, t[j].got * sizeof *all);
        n += t[j].got;
        free(t[j].ids);
    }
    tu_assert_distinct(all, n);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.ids_served, total);
    /* the batch did shrink after the first fetch */
    ck_assert_uint_eq(s.batch, 260);
    ck_assert_uint_ge(s.prime_calls, 2);
    ck_assert_uint_eq(policy_calls, s.prime_calls);
    free(all);
    free(t);
    free(th);
    idp_close(c);
}
END_TEST

/* ---- 2. Randomized stress ----------------------------------------------- */

static uint64_t policy_cycle(void *ud, const idp_policy_input *in)
{
    static const uint64_t sizes[] = {1, 7, 260, 4096, 3};
    (void)in;
    unsigned i = atomic_fetch_add((_Atomic unsigned *)ud, 1);
    return sizes[i % 5];
}

typedef struct life {
    idp_counter *ctr;
    uint64_t seed;
    size_t nops, done;
    range *r;
    uint64_t ids; /* IDs taken */
    int rc;
    char msg[256];
} life;

static void *live(void *arg)
{
    life *l = arg;
    idp_error e = {0, ""};
    uint64_t s = l->seed;
    for (l->done = 0; l->done < l->nops; l->done++) {
        uint64_t v = 0, n = 1;
        if (rnd(&s) % 2 == 0) {
            l->rc = idp_next(l->ctr, &v, &e);
        } else {
            n = 1 + rnd(&s) % 600;
            l->rc = idp_incr(l->ctr, n, &v, &e);
        }
        if (l->rc != IDP_OK) {
            snprintf(l->msg, sizeof l->msg, "%s", e.msg);
            return NULL;
        }
        l->r[l->done] = (range){v - n + 1, v};
        l->ids += n;
        if (rnd(&s) % 16 == 0)
            sched_yield(); /* variety only */
    }
    return NULL;
}

START_TEST(test_randomized_stress_threads_come_and_go_policy_changes_batch)
{
    uint64_t seed = test_seed("stress");
    char ctx[64];
    snprintf(ctx, sizeof ctx, "seed %" PRIu64, seed);
    _Atomic unsigned cyc = 0;
    idp_options opt = {.size = sizeof opt, .policy = policy_cycle,
                       .policy_ud = &cyc};
    /* a watermark, so the background worker fetches too */
    idp_client *c = tu_open("mem://stress?batch=64&low_watermark=50", &opt);
    idp_counter *k = tu_counter(c, "s");
    const size_t lives = 3000, max_ops = 40;
    life *l = calloc(lives, sizeof *l);
    pthread_t *th = calloc(lives, sizeof *th);
    ck_assert_ptr_nonnull(l);
    ck_assert_ptr_nonnull(th);
    uint64_t s = seed;
    size_t oldest = 0, window = 4;
    for (size_t i = 0; i < lives; i++) {
        if (i % 100 == 0)
            window = 1 + rnd(&s) % 8; /* 1..8 alive at once */
        while (i - oldest >= window)
            pthread_join(th[oldest++], NULL);
        uint64_t lseed = rnd(&s);
        size_t nops = 1 + (size_t)(rnd(&s) % max_ops);
        l[i] = (life){.ctr = k, .seed = lseed, .nops = nops};
        l[i].r = malloc(l[i].nops * sizeof(range));
        ck_assert_ptr_nonnull(l[i].r);
        ck_assert_int_eq(pthread_create(&th[i], NULL, live, &l[i]), 0);
    }
    while (oldest < lives)
        pthread_join(th[oldest++], NULL);
    size_t nr = 0;
    uint64_t ids = 0;
    for (size_t i = 0; i < lives; i++) {
        ck_assert_msg(l[i].rc == IDP_OK, "%s: thread %zu, op %zu: %s", ctx, i,
                      l[i].done, l[i].msg);
        for (size_t j = 1; j < l[i].done; j++)
            ck_assert_msg(l[i].r[j].first > l[i].r[j - 1].last,
                          "%s: thread %zu: %" PRIu64 "..%" PRIu64 " after %"
                          PRIu64 "..%" PRIu64 ": not increasing", ctx, i,
                          l[i].r[j].first, l[i].r[j].last,
                          l[i].r[j - 1].first, l[i].r[j - 1].last);
        nr += l[i].done;
        ids += l[i].ids;
    }
    range *all = malloc(nr * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    for (size_t i = 0; i < lives; i++) {
        memcpy(all + n, l[i].r, l[i].done * sizeof *all);
        n += l[i].done;
        free(l[i].r);
    }
    assert_ranges_distinct(all, n, ctx);
    idp_counter_stats st = tu_settle(k);
    ck_assert_msg(st.ids_served == ids, "%s: ids_served %" PRIu64 ", taken %"
                  PRIu64, ctx, st.ids_served, ids);
    ck_assert_msg(cyc >= 5, "%s: the policy ran %u times, not through its "
                  "cycle", ctx, (unsigned)cyc);
    free(all);
    free(l);
    free(th);
    idp_close(c);
}
END_TEST

/* ---- 3. ids_served exact and monotonic ---------------------------------- */

START_TEST(test_ids_served_is_exact_under_16_threads)
{
    idp_client *c = tu_open("mem://exact16?batch=100", NULL);
    idp_counter *k = tu_counter(c, "e");
    const size_t per = 20000;
    /* every third through idp_incr(1); each thread's IDs increase */
    uint64_t *ids = tu_thread_ids(k, 16, per, 3);
    tu_assert_distinct(ids, 16 * per);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.ids_served, 16 * per);
    free(ids);
    idp_close(c);
}
END_TEST

typedef struct mono {
    idp_counter *ctr;
    _Atomic int stop;
    _Atomic uint64_t snapshots;
    int failed;
    char why[256];
} mono;

/* Snapshots the counter until told to stop; every count must only grow. */
static void *snapshotter(void *arg)
{
    mono *m = arg;
    idp_counter_stats prev = {.size = sizeof prev};
    for (;;) {
        int last = atomic_load(&m->stop);
        idp_counter_stats s = {.size = sizeof s};
        if (idp_counter_stats_get(m->ctr, &s) != IDP_OK) {
            snprintf(m->why, sizeof m->why, "idp_counter_stats_get failed");
            m->failed = 1;
            return NULL;
        }
        const char *what = s.ids_served < prev.ids_served ? "ids_served"
            : s.prime_calls < prev.prime_calls ? "prime_calls"
            : s.prefetch_async < prev.prefetch_async ? "prefetch_async"
            : s.waited_calls < prev.waited_calls ? "waited_calls"
            : s.errors < prev.errors ? "errors"
            : s.high < prev.high ? "high" : NULL;
        if (what != NULL && !m->failed) {
            snprintf(m->why, sizeof m->why, "snapshot %" PRIu64 ": %s went "
                     "backwards (ids_served %" PRIu64 " -> %" PRIu64 ")",
                     atomic_load(&m->snapshots), what, prev.ids_served,
                     s.ids_served);
            m->failed = 1;
        }
        prev = s;
        atomic_fetch_add(&m->snapshots, 1);
        if (last)
            return NULL;
    }
}

typedef struct mono_taker {
    mono *m;
    int idx;
    size_t per;
    range *r;
    size_t done;
    uint64_t ids;
    int rc;
    char msg[256];
} mono_taker;

static void *mono_take(void *arg)
{
    mono_taker *t = arg;
    idp_error e = {0, ""};
    for (t->done = 0; t->done < t->per; t->done++) {
        if (t->done == t->per / 2) {
            /* half way: until the reader has snapshot 20 times, so its
             * snapshots surely overlap the allocations */
            while (atomic_load(&t->m->snapshots) < 20)
                sched_yield();
        }
        uint64_t v = 0, n = 1;
        if (t->idx % 2 == 1 && t->done % 5 == 0) {
            n = 1 + t->done % 37;
            t->rc = idp_incr(t->m->ctr, n, &v, &e);
        } else {
            t->rc = idp_next(t->m->ctr, &v, &e);
        }
        if (t->rc != IDP_OK) {
            snprintf(t->msg, sizeof t->msg, "%s", e.msg);
            return NULL;
        }
        t->r[t->done] = (range){v - n + 1, v};
        t->ids += n;
    }
    return NULL;
}

START_TEST(test_ids_served_never_goes_backwards_under_8_threads)
{
    /* small batches, a watermark: runs are made, refilled and given up all
     * the time while the reader snapshots */
    idp_client *c = tu_open("mem://mono?batch=50&low_watermark=30", NULL);
    mono m = {.ctr = tu_counter(c, "m")};
    const size_t per = 30000;
    mono_taker t[8];
    pthread_t th[8], reader;
    ck_assert_int_eq(pthread_create(&reader, NULL, snapshotter, &m), 0);
    for (int i = 0; i < 8; i++) {
        t[i] = (mono_taker){.m = &m, .idx = i, .per = per,
                            .r = malloc(per * sizeof(range))};
        ck_assert_ptr_nonnull(t[i].r);
        ck_assert_int_eq(pthread_create(&th[i], NULL, mono_take, &t[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    atomic_store(&m.stop, 1);
    pthread_join(reader, NULL);
    ck_assert_msg(!m.failed, "%s", m.why);
    ck_assert_uint_ge(m.snapshots, 21);
    range *all = malloc(8 * per * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    uint64_t ids = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(t[i].rc == IDP_OK, "thread %d: %s", i, t[i].msg);
        for (size_t j = 1; j < t[i].done; j++)
            ck_assert_msg(t[i].r[j].first > t[i].r[j - 1].last,
                          "thread %d: not increasing", i);
        memcpy(all + n, t[i].r, t[i].done * sizeof *all);
        n += t[i].done;
        ids += t[i].ids;
        free(t[i].r);
    }
    assert_ranges_distinct(all, n, "8 threads");
    idp_counter_stats s = tu_settle(m.ctr);
    ck_assert_uint_eq(s.ids_served, ids);
    free(all);
    idp_close(c);
}
END_TEST

/* ---- 4. idp_close while threads wait for a fetch ------------------------ */

typedef struct blocked {
    idp_counter *ctr;
    pthread_barrier_t *go;
    int rc;
    uint64_t id;
    idp_error e;
} blocked;

static void *block_on_next(void *arg)
{
    blocked *b = arg;
    pthread_barrier_wait(b->go);
    b->rc = idp_next(b->ctr, &b->id, &b->e);
    return NULL;
}

#define BLOCKED 6

START_TEST(test_close_while_threads_are_blocked_in_a_fetch_returns_errors)
{
    /* A fresh counter, a store that takes 3 s: the first caller fetches,
     * the others wait for its fetch. Once all of them are inside (waited
     * == BLOCKED, the fetch in flight), close. The waiters must get an
     * error at once; the fetcher's fetch finishes (close waits for it,
     * bounded by timeout_ms) and serves it; nobody hangs. */
    idp_client *c = tu_open("mem://closeblk?delay_ms=3000&timeout_ms=10000",
                            NULL);
    idp_counter *k = tu_counter(c, "b");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, BLOCKED + 1);
    blocked b[BLOCKED];
    pthread_t th[BLOCKED];
    for (int i = 0; i < BLOCKED; i++) {
        b[i] = (blocked){.ctr = k, .go = &go, .rc = -1};
        ck_assert_int_eq(pthread_create(&th[i], NULL, block_on_next, &b[i]), 0);
    }
    pthread_barrier_wait(&go);
    /* the counter's state says when every caller is inside, waiting */
    long long deadline = tu_now_ms() + 60000;
    idp_counter_stats s = tu_stats(k);
    while (!(s.waited_calls == BLOCKED && s.in_flight == 1)) {
        ck_assert_msg(tu_now_ms() < deadline, "the callers never all "
                      "waited: waited_calls %" PRIu64 ", in_flight %d",
                      s.waited_calls, s.in_flight);
        tu_sleep_ms(1);
        s = tu_stats(k);
    }
    ck_assert_uint_eq(s.prime_calls, 0); /* the fetch has not ended */
    double t0 = tu_now_s();
    idp_close(c);
    double dt = tu_now_s() - t0;
    for (int i = 0; i < BLOCKED; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    /* at most the fetch in flight (3 s), far below 2 x timeout_ms + 1 s */
    ck_assert_msg(dt < 10.0, "idp_close took %.3f s", dt);
    int ok = 0;
    for (int i = 0; i < BLOCKED; i++) {
        if (b[i].rc == IDP_OK) {
            ok++;
            ck_assert_uint_eq(b[i].id, 1); /* the fetcher's first ID */
            continue;
        }
        ck_assert_msg(b[i].rc > 0 && b[i].e.code == b[i].rc &&
                      b[i].e.msg[0] != '\0', "thread %d: rc %d, no message",
                      i, b[i].rc);
        ck_assert_msg(strstr(b[i].e.msg, "closed") != NULL,
                      "thread %d: '%s' does not say the client is closed", i,
                      b[i].e.msg);
    }
    /* exactly one caller did the fetch; the others were waiting */
    ck_assert_int_eq(ok, 1);
}
END_TEST

/* ---- 5. Callbacks with no engine lock held ------------------------------ */

typedef struct reentry {
    idp_client *_Atomic client;
    idp_counter *_Atomic ctr;
    _Atomic unsigned policy_calls, policy_ok;
    _Atomic unsigned logs, log_metrics_ok;
    _Atomic int answer_nonsense;
    char bad[256];
    _Atomic int failed;
} reentry;

static void reentry_fail(reentry *r, const char *why)
{
    if (atomic_exchange(&r->failed, 1) == 0)
        snprintf(r->bad, sizeof r->bad, "%s", why);
}

/* Calls back into its own counter and client: deadlocks if the engine
 * held the counter's or the client's lock. */
static uint64_t reentrant_policy(void *ud, const idp_policy_input *in)
{
    reentry *r = ud;
    atomic_fetch_add(&r->policy_calls, 1);
    idp_client *c = atomic_load(&r->client);
    idp_counter *k = atomic_load(&r->ctr);
    if (c == NULL || k == NULL) {
        reentry_fail(r, "the policy ran before the counter was made");
        return 0;
    }
    idp_counter_stats s = {.size = sizeof s};
    if (idp_counter_stats_get(k, &s) != IDP_OK)
        reentry_fail(r, "idp_counter_stats_get failed in the policy");
    else if (s.prime_calls != in->fetches)
        reentry_fail(r, "the policy's stats do not count its own fetch");
    char *m = idp_metrics(c);
    if (m == NULL || strstr(m, "idprime_prime_calls_total{counter=\"p\"}") == NULL)
        reentry_fail(r, "idp_metrics in the policy: no text for counter p");
    idp_free(m);
    atomic_fetch_add(&r->policy_ok, 1);
    return atomic_load(&r->answer_nonsense) ? UINT64_MAX : 16;
}

static void reentrant_log(void *ud, int level, const char *msg)
{
    (void)level;
    (void)msg;
    reentry *r = ud;
    idp_client *c = atomic_load(&r->client);
    if (c == NULL)
        return; /* during idp_open: nothing to ask yet */
    char *m = idp_metrics(c);
    if (m == NULL || strstr(m, "meta_prime_errors_total") == NULL)
        reentry_fail(r, "idp_metrics in the log callback gave no text");
    idp_free(m);
    atomic_fetch_add(&r->log_metrics_ok, 1);
    atomic_fetch_add(&r->logs, 1);
}

START_TEST(test_the_batch_policy_runs_with_no_engine_lock_held)
{
    watchdog(30, "the batch policy deadlocked calling back into the library");
    reentry r = {.client = NULL};
    idp_options opt = {.size = sizeof opt, .policy = reentrant_policy,
                       .policy_ud = &r};
    idp_client *c = tu_open("mem://reenter?batch=16&low_watermark=50", &opt);
    atomic_store(&r.client, c);
    atomic_store(&r.ctr, tu_counter(c, "p"));
    idp_counter *k = atomic_load(&r.ctr);
    /* 200 IDs on batches of 16 at a watermark: the first fetch on this
     * thread, the others on the background worker (waited for, so that it
     * surely fetches), each followed by the policy */
    uint64_t ids[200];
    for (int i = 0; i < 200; i++) {
        ids[i] = tu_next(k);
        tu_settle(k);
    }
    tu_assert_distinct(ids, 200);
    idp_counter_stats s = tu_settle(k);
    ck_assert_msg(!r.failed, "%s", r.bad);
    ck_assert_uint_ge(s.prime_calls, 12);
    ck_assert_uint_eq(s.prefetch_async, s.prime_calls - 1); /* the worker's */
    ck_assert_uint_eq(r.policy_calls, s.prime_calls);
    ck_assert_uint_eq(r.policy_ok, s.prime_calls);
    ck_assert_uint_eq(s.ids_served, 200);
    idp_close(c);
    alarm(0);
}
END_TEST

START_TEST(test_the_log_callback_may_call_idp_metrics)
{
    watchdog(30, "the log callback deadlocked calling idp_metrics");
    reentry r = {.client = NULL};
    idp_options opt = {.size = sizeof opt, .log = reentrant_log, .log_ud = &r,
                       .policy = reentrant_policy, .policy_ud = &r};
    idp_client *c = tu_open("mem://relog?batch=16&low_watermark=0", &opt);
    atomic_store(&r.client, c);
    atomic_store(&r.ctr, tu_counter(c, "p"));
    idp_counter *k = atomic_load(&r.ctr);
    /* a policy answering out of range is reported through the log, from
     * the fetch that asked it (here, this thread's) */
    atomic_store(&r.answer_nonsense, 1);
    uint64_t first = tu_next(k);
    ck_assert_uint_eq(first, 1);
    ck_assert_msg(!r.failed, "%s", r.bad);
    ck_assert_uint_ge(r.logs, 1);
    ck_assert_uint_eq(r.log_metrics_ok, r.logs);
    idp_counter_stats s = tu_stats(k);
    ck_assert_uint_eq(s.batch, 16); /* the last good batch kept */
    /* a background fetch that fails is logged from the worker */
    atomic_store(&r.answer_nonsense, 0);
    unsigned before = r.logs;
    idp_client *c2 = tu_open("mem://relog2?batch=16&low_watermark=50", &opt);
    atomic_store(&r.client, c2);
    atomic_store(&r.ctr, tu_counter(c2, "p"));
    idp_counter *k2 = atomic_load(&r.ctr);
    ck_assert_uint_eq(tu_next(k2), 1);
    idp_error e;
    ck_assert_int_eq(idp_control(c2, "fail 1", &e), IDP_OK);
    /* take IDs until the watermark queues the fetch that will fail */
    for (int i = 0; i < 8; i++)
        tu_next(k2);
    idp_counter_stats s2 = tu_settle(k2);
    /* the failed fetch is counted before its log line is written: wait for
     * the line (state, not time) */
    long long deadline = tu_now_ms() + 30000;
    while (s2.errors >= 1 && r.logs == before && tu_now_ms() < deadline)
        tu_sleep_ms(1);
    ck_assert_uint_eq(s2.errors, 1);
    ck_assert_uint_eq(s2.prefetch_async, 0);
    ck_assert_uint_gt(r.logs, before);
    ck_assert_uint_eq(r.log_metrics_ok, r.logs);
    ck_assert_msg(!r.failed, "%s", r.bad);
    idp_close(c2);
    atomic_store(&r.client, c);
    idp_close(c);
    alarm(0);
}
END_TEST

/* ---- 6. NULL handles ---------------------------------------------------- */

/* Fails unless rc is IDP_EINVAL and e says, in its message, `what`. */
#define EXPECT_EINVAL(call, what)                                            \
    do {                                                                     \
        idp_error e_ = {0, ""};                                              \
        idp_error *err = &e_;                                                \
        int rc_ = (call);                                                    \
        ck_assert_msg(rc_ == IDP_EINVAL, "%s: rc %d, not IDP_EINVAL", #call, \
                      rc_);                                                  \
        ck_assert_int_eq(e_.code, IDP_EINVAL);                               \
        ck_assert_msg(strstr(e_.msg, what) != NULL,                          \
                      "%s: message '%s' does not name '%s'", #call, e_.msg,  \
                      what);                                                 \
    } while (0)

static int list_nothing(void *ud, const char *name, uint64_t value)
{
    (void)ud;
    (void)name;
    (void)value;
    return 0;
}

START_TEST(test_a_null_handle_is_einval_not_a_crash)
{
    idp_client *c = tu_open("mem://nulls", NULL);
    idp_counter *k = tu_counter(c, "n");
    uint64_t v = 0;
    int exists = 0;
    idp_error e = {0, ""};

    ck_assert_ptr_null(idp_open(NULL, NULL, &e));
    ck_assert_int_eq(e.code, IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "URI is NULL"));
    ck_assert_ptr_null(idp_open(NULL, NULL, NULL)); /* err may be NULL */

    memset(&e, 0, sizeof e);
    ck_assert_ptr_null(idp_counter_get(NULL, "n", &e));
    ck_assert_int_eq(e.code, IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "client is NULL"));
    memset(&e, 0, sizeof e);
    ck_assert_ptr_null(idp_counter_get(c, NULL, &e));
    ck_assert_int_eq(e.code, IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "(null)"));

    EXPECT_EINVAL(idp_get(NULL, "n", &v, &exists, err), "client is NULL");
    EXPECT_EINVAL(idp_get(c, "n", NULL, &exists, err), "value pointer is NULL");
    EXPECT_EINVAL(idp_get(c, NULL, &v, &exists, err), "(null)");
    EXPECT_EINVAL(idp_raise(NULL, "n", 5, &v, err), "client is NULL");
    EXPECT_EINVAL(idp_raise(c, NULL, 5, &v, err), "(null)");
    EXPECT_EINVAL(idp_list(NULL, list_nothing, NULL, err), "client is NULL");
    EXPECT_EINVAL(idp_list(c, NULL, NULL, err), "callback is NULL");
    EXPECT_EINVAL(idp_control(NULL, "fail 1", err), "client is NULL");
    EXPECT_EINVAL(idp_control(c, NULL, err), "command is NULL");
    EXPECT_EINVAL(idp_store_roundtrips(NULL, &v, err), "client is NULL");
    EXPECT_EINVAL(idp_store_roundtrips(c, NULL, err), "count pointer is NULL");
    idp_cache kc;
    EXPECT_EINVAL(idp_cache_init(NULL, sizeof kc, k, 0, err), "cache is NULL");
    EXPECT_EINVAL(idp_cache_init(&kc, sizeof kc, NULL, 0, err),
                  "counter is NULL");
    /* and with err NULL too: a code, no crash */
    ck_assert_int_eq(idp_get(NULL, "n", &v, NULL, NULL), IDP_EINVAL);
    ck_assert_int_eq(idp_cache_init(NULL, sizeof kc, k, 0, NULL), IDP_EINVAL);
    /* a cache never initialised (zeroed) refuses, it does not crash */
    idp_cache zero;
    memset(&zero, 0, sizeof zero);
    EXPECT_EINVAL(idp_cache_next(&zero, &v, err), "never initialised");

    /* idp_counter_stats_get returns a code only */
    idp_counter_stats s = {.size = sizeof s};
    ck_assert_int_eq(idp_counter_stats_get(NULL, &s), IDP_EINVAL);
    ck_assert_int_eq(idp_counter_stats_get(k, NULL), IDP_EINVAL);
    s.size = 0;
    ck_assert_int_eq(idp_counter_stats_get(k, &s), IDP_EINVAL);
    s.size = sizeof(size_t);
    ck_assert_int_eq(idp_counter_stats_get(k, &s), IDP_EINVAL);
    /* a caller that knows only the first field: filled up to there, not a
     * byte further */
    tu_next(k);
    _Alignas(idp_counter_stats) unsigned char buf[sizeof(idp_counter_stats) + 16];
    memset(buf, 0xA5, sizeof buf);
    size_t small = offsetof(idp_counter_stats, ids_served) + sizeof(uint64_t);
    memcpy(buf, &small, sizeof small);
    ck_assert_int_eq(idp_counter_stats_get(k, (idp_counter_stats *)(void *)buf),
                     IDP_OK);
    uint64_t served;
    memcpy(&served, buf + offsetof(idp_counter_stats, ids_served), sizeof served);
    ck_assert_uint_eq(served, 1);
    for (size_t i = small; i < sizeof buf; i++)
        ck_assert_msg(buf[i] == 0xA5, "byte %zu written past size %zu", i, small);

    ck_assert_ptr_null(idp_metrics(NULL));
    ck_assert_ptr_null(idp_client_store(NULL));
    idp_close(NULL);
    idp_cache_release(NULL);
    idp_free(NULL);
    idp_close(c);
}
END_TEST

int main(void)
{
    const TTest *runs[] = {
        test_a_dead_threads_run_is_never_inherited_with_a_shrinking_batch,
        test_randomized_stress_threads_come_and_go_policy_changes_batch,
        test_ids_served_is_exact_under_16_threads,
        test_ids_served_never_goes_backwards_under_8_threads, NULL};
    const TTest *closing[] = {
        test_close_while_threads_are_blocked_in_a_fetch_returns_errors, NULL};
    const TTest *callbacks[] = {
        test_the_batch_policy_runs_with_no_engine_lock_held,
        test_the_log_callback_may_call_idp_metrics, NULL};
    const TTest *nulls[] = {
        test_a_null_handle_is_einval_not_a_crash,
        NULL};
    const tu_case cases[] = {
        {.name = "runs", .tests = runs},
        {.name = "close", .tests = closing},
        {.name = "callbacks", .tests = callbacks},
        {.name = "nulls", .tests = nulls},
        {.name = NULL}};
    return tu_run(tu_suite("threads", 120, cases));
}
