/*
 * test_threads.c - the per-thread layer and what surrounds it, on the mem
 * store: runs of threads that come and go (never inherited, even when the
 * batch shrinks), a randomized stress of next/incr with a batch policy,
 * ids_served exact and monotonic, idp_close while threads wait for a
 * fetch, callbacks that call back into the library, NULL handles, and the
 * caller-owned idp_cache (uniqueness, fill sizes, accounting, revocation by
 * close and by fork).
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

static idp_counter_stats stats_of(idp_counter *k)
{
    idp_counter_stats s = {.size = sizeof s};
    ck_assert_int_eq(idp_counter_stats_get(k, &s), IDP_OK);
    return s;
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
    idp_counter_stats s = stats_of(k);
    while (!(s.waited_calls == BLOCKED && s.in_flight == 1)) {
        ck_assert_msg(tu_now_ms() < deadline, "the callers never all "
                      "waited: waited_calls %" PRIu64 ", in_flight %d",
                      s.waited_calls, s.in_flight);
        tu_sleep_ms(1);
        s = stats_of(k);
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
    idp_counter_stats s = stats_of(k);
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

/* ---- 7. idp_cache ------------------------------------------------------- */

typedef struct cache_user {
    idp_counter *ctr;
    uint64_t fill;     /* 0: this thread uses idp_next/idp_incr */
    size_t want;
    uint64_t *ids;
    size_t got;
    uint64_t taken;    /* IDs taken: the caches' whole refills */
    int rc;
    char msg[256];
} cache_user;

static void *use_cache(void *arg)
{
    cache_user *u = arg;
    idp_error e = {0, ""};
    idp_cache k;
    if (u->fill != 0 &&
        (u->rc = idp_cache_init(&k, sizeof k, u->ctr, u->fill, &e)) != IDP_OK) {
        snprintf(u->msg, sizeof u->msg, "init: %s", e.msg);
        return NULL;
    }
    for (u->got = 0; u->got < u->want; u->got++) {
        uint64_t id = 0;
        if (u->fill == 0) {
            u->rc = u->got % 4 == 3 ? idp_incr(u->ctr, 1, &id, &e)
                                    : idp_next(u->ctr, &id, &e);
            u->taken += u->rc == IDP_OK;
        } else {
            if (u->got == u->want / 2)
                idp_cache_release(&k); /* its rest: a gap */
            int empty = k.next >= k.end;
            u->rc = idp_cache_next(&k, &id, &e);
            if (u->rc == IDP_OK && empty)
                u->taken += k.end - id; /* a refill: all it took */
            if (u->rc == IDP_OK && !empty && id != k.next - 1)
                u->rc = -1;
        }
        if (u->rc != IDP_OK) {
            snprintf(u->msg, sizeof u->msg, "%s", u->rc == -1 ? "served "
                     "off the cache's own range" : e.msg);
            return NULL;
        }
        u->ids[u->got] = id;
    }
    if (u->fill != 0)
        idp_cache_release(&k);
    return NULL;
}

START_TEST(test_a_cache_hands_out_increasing_ids_no_one_else_gets)
{
    idp_client *c = tu_open("mem://cacheuniq?batch=500&low_watermark=25", NULL);
    idp_counter *k = tu_counter(c, "k");
    const uint64_t fills[8] = {1, 7, 0, 1000, 0, 256, 0, 0};
    /* caches: fills 1, 7, 1000, 256; threads on idp_next/incr: 4 */
    const size_t per = 20000;
    cache_user u[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        u[i] = (cache_user){.ctr = k, .fill = fills[i], .want = per,
                            .ids = malloc(per * sizeof(uint64_t))};
        ck_assert_ptr_nonnull(u[i].ids);
        ck_assert_int_eq(pthread_create(&th[i], NULL, use_cache, &u[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    uint64_t *all = malloc(8 * per * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    uint64_t taken = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(u[i].rc == IDP_OK, "thread %d (fill %" PRIu64 "): %s",
                      i, u[i].fill, u[i].msg);
        for (size_t j = 1; j < u[i].got; j++)
            ck_assert_msg(u[i].ids[j] > u[i].ids[j - 1], "thread %d (fill %"
                          PRIu64 "): %" PRIu64 " after %" PRIu64, i,
                          u[i].fill, u[i].ids[j], u[i].ids[j - 1]);
        memcpy(all + n, u[i].ids, u[i].got * sizeof *all);
        n += u[i].got;
        taken += u[i].taken;
        free(u[i].ids);
    }
    tu_assert_distinct(all, n);
    /* what the caches took counts as served, whether handed out or not */
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.ids_served, taken);
    free(all);
    idp_close(c);
}
END_TEST

START_TEST(test_cache_fill_sizes)
{
    idp_client *c = tu_open("mem://fills?batch=65536&adaptive=0&low_watermark=0",
                            NULL);
    idp_counter *a = tu_counter(c, "a"), *b = tu_counter(c, "b");
    idp_error e = {0, ""};
    idp_cache k1, kd, kmax;
    uint64_t id = 0, id2 = 0;
    /* fill 1: one ID per refill */
    ck_assert_int_eq(idp_cache_init(&k1, sizeof k1, a, 1, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&k1, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    ck_assert_uint_eq(k1.end - k1.next, 0);
    ck_assert_int_eq(idp_cache_next(&k1, &id2, &e), IDP_OK);
    ck_assert_uint_eq(id2, 2);
    ck_assert_uint_eq(k1.end - k1.next, 0);
    /* 0: the default, 256 */
    ck_assert_int_eq(idp_cache_init(&kd, sizeof kd, a, 0, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kd, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 3);
    ck_assert_uint_eq(kd.end - id, 256);
    /* the largest: 65536 from a fresh batch of 65536 */
    ck_assert_int_eq(idp_cache_init(&kmax, sizeof kmax, b, IDP_CACHE_MAX_FILL,
                                     &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kmax, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    ck_assert_uint_eq(kmax.end - id, 65536);
    for (uint64_t i = 2; i <= 65536; i++) {
        ck_assert_int_eq(idp_cache_next(&kmax, &id, &e), IDP_OK);
        if (id != i)
            ck_assert_uint_eq(id, i);
    }
    idp_counter_stats s = stats_of(b);
    ck_assert_uint_eq(s.prime_calls, 1); /* all of it from one fetch */
    /* refused: a fill over the largest, a size too small */
    idp_cache bad;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_init(&bad, sizeof bad, a, IDP_CACHE_MAX_FILL + 1,
                                    &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "65537"));
    ck_assert_ptr_nonnull(strstr(e.msg, "1..65536"));
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_init(&bad, sizeof bad - 1, a, 0, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "size"));
    ck_assert_int_eq(idp_cache_init(&bad, 0, a, 0, &e), IDP_EINVAL);
    idp_close(c);
}
END_TEST

START_TEST(test_a_cache_is_revoked_by_idp_close)
{
    idp_client *c = tu_open("mem://revoke?batch=1000", NULL);
    idp_counter *k = tu_counter(c, "r");
    idp_error e = {0, ""};
    idp_cache kc;
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_init(&kc, sizeof kc, k, 100, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    ck_assert_uint_gt(kc.end, kc.next); /* it still holds IDs */
    idp_close(c);
    /* the cache's memory is the caller's, the client is gone: revoked */
    uint64_t after = 12345;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_next(&kc, &after, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "revoked"));
    ck_assert_uint_eq(after, 12345); /* untouched */
    /* a new client (which may reuse what the old one had) does not bring
     * the old cache back */
    idp_client *c2 = tu_open("mem://revoke2?batch=1000", NULL);
    idp_counter *k2 = tu_counter(c2, "r");
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_next(&kc, &after, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "revoked"));
    ck_assert_uint_eq(after, 12345);
    idp_cache k2c;
    ck_assert_int_eq(idp_cache_init(&k2c, sizeof k2c, k2, 10, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&k2c, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    idp_close(c2);
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_next(&k2c, &after, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "revoked"));
}
END_TEST

START_TEST(test_ids_a_cache_takes_count_as_served)
{
    idp_client *c = tu_open("mem://cserved?batch=4096&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "s");
    idp_error e = {0, ""};
    idp_cache kc;
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_init(&kc, sizeof kc, k, 100, &e), IDP_OK);
    ck_assert_uint_eq(stats_of(k).ids_served, 0);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(stats_of(k).ids_served, 100); /* the whole fill */
    for (int i = 0; i < 99; i++)
        ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 100);
    ck_assert_uint_eq(stats_of(k).ids_served, 100);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK); /* a refill */
    ck_assert_uint_eq(id, 101);
    ck_assert_uint_eq(stats_of(k).ids_served, 200);
    idp_cache_release(&kc); /* 99 unused: a gap, already counted */
    ck_assert_uint_eq(stats_of(k).ids_served, 200);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 201); /* after the released rest, increasing */
    ck_assert_uint_eq(stats_of(k).ids_served, 300);
    uint64_t v = tu_next(k); /* this thread's own run: counts per ID */
    ck_assert_uint_gt(v, 300);
    idp_counter_stats s = stats_of(k);
    ck_assert_uint_eq(s.ids_served, 301);
    ck_assert_uint_eq(s.ids_served + s.unused_ids, s.high);
    idp_close(c);
}
END_TEST

/* What a child reports about its cache after fork. */
typedef struct child_report {
    int rc, rc_next;
    uint64_t id, next, end, gen, id_next;
    char msg[256];
} child_report;

/* Reads a whole report from fd within `ms`; 0 on success. */
static int read_report(int fd, child_report *r, int ms)
{
    size_t got = 0;
    long long deadline = tu_now_ms() + ms;
    while (got < sizeof *r) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        ssize_t k = read(fd, (char *)r + got, sizeof *r - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

/* Waits for pid within `ms`, killing it after; returns its status, or -1
 * when it had to be killed. */
static int reap(pid_t pid, int ms)
{
    long long deadline = tu_now_ms() + ms;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        if (w < 0 && errno != EINTR)
            return -1;
        if (tu_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        tu_sleep_ms(2); /* polling a child's state, not a timing guess */
    }
}

/* Runs `child` in a forked child, which reports through a pipe and
 * _exits; the parent reads the report and reaps the child, both bounded in
 * time. Fails the test when the child does not report or exit cleanly. */
static void in_child(void (*child)(void *ud, child_report *r), void *ud,
                     child_report *out)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_report r;
        memset(&r, 0, sizeof r);
        child(ud, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    int got = read_report(fds[0], out, 30000);
    close(fds[0]);
    int st = reap(pid, 30000);
    char how[64];
    if (st < 0)
        snprintf(how, sizeof how, "killed after 30 s");
    else if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "ended by signal %d", WTERMSIG(st));
    else
        snprintf(how, sizeof how, "exited with %d%s", WEXITSTATUS(st),
                 WEXITSTATUS(st) == 66 ? " (a sanitizer's report: see its "
                 "output above)" : "");
    ck_assert_msg(got == 0, "no report from the child: it %s", how);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the child %s", how);
}

typedef struct fork_cache {
    idp_client *c;
    idp_counter *k;
    idp_cache *kc;
} fork_cache;

static void child_cache(void *ud, child_report *r)
{
    fork_cache *f = ud;
    idp_error ce = {0, ""};
    r->rc = idp_cache_next(f->kc, &r->id, &ce);
    r->next = f->kc->next;
    r->end = f->kc->end;
    r->gen = f->kc->gen_;
    if (r->rc != IDP_OK)
        snprintf(r->msg, sizeof r->msg, "cache: %s", ce.msg);
    r->rc_next = idp_next(f->k, &r->id_next, &ce);
    if (r->rc_next != IDP_OK && r->rc == IDP_OK)
        snprintf(r->msg, sizeof r->msg, "next: %s", ce.msg);
    idp_close(f->c);
}

START_TEST(test_a_cache_in_a_child_after_fork_never_serves_the_parents_ids)
{
    /* no watermark: no worker thread, the parent is single-threaded at
     * fork. A second client keeps the mem namespace open in the child (it
     * is never used there), so that the child's own fetch continues the
     * parent's values. */
    const char *uri = "mem://forkcache?batch=1024&adaptive=0&low_watermark=0";
    idp_client *c = tu_open(uri, NULL), *keep = tu_open(uri, NULL);
    idp_counter *k = tu_counter(c, "f");
    idp_error e = {0, ""};
    idp_cache kc;
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_init(&kc, sizeof kc, k, 100, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    uint64_t mine = tu_next(k); /* and a run of this thread */
    const uint64_t next0 = kc.next, end0 = kc.end, gen0 = kc.gen_;
    const uint64_t high0 = stats_of(k).high;
    ck_assert_uint_lt(next0, end0); /* the cache holds IDs at fork */
    fork_cache f = {c, k, &kc};
    child_report r;
    in_child(child_cache, &f, &r);
    ck_assert_msg(r.rc == IDP_OK && r.rc_next == IDP_OK, "child: %s", r.msg);
    /* the child refilled under a new generation, above what the parent
     * held: none of [next0, end0) nor the parent's run */
    ck_assert_uint_ne(r.gen, gen0);
    ck_assert_msg(r.id >= end0 || r.id < next0, "child's cache served %" PRIu64
                  ", inside the parent's cache [%" PRIu64 ", %" PRIu64 ")",
                  r.id, next0, end0);
    ck_assert_uint_gt(r.id, high0);
    ck_assert_uint_eq(r.next, r.id + 1);
    ck_assert_uint_gt(r.id_next, high0);
    ck_assert_uint_ne(r.id_next, mine + 1);
    /* the parent's cache carries on with what it held */
    uint64_t pid_id = 0;
    ck_assert_int_eq(idp_cache_next(&kc, &pid_id, &e), IDP_OK);
    ck_assert_uint_eq(pid_id, next0);
    ck_assert_uint_eq(kc.gen_, gen0);
    idp_close(keep);
    idp_close(c);
}
END_TEST

typedef struct fork_ns {
    idp_client *c;
    idp_counter *k;
} fork_ns;

static void child_ns(void *ud, child_report *r)
{
    fork_ns *f = ud;
    idp_error ce = {0, ""};
    r->rc_next = idp_next(f->k, &r->id_next, &ce);
    if (r->rc_next != IDP_OK)
        snprintf(r->msg, sizeof r->msg, "next: %s", ce.msg);
    int exists = 0;
    r->rc = idp_get(f->c, "raised", &r->id, &exists, &ce);
    if (r->rc != IDP_OK && r->rc_next == IDP_OK)
        snprintf(r->msg, sizeof r->msg, "get: %s", ce.msg);
    idp_close(f->c);
}

START_TEST(test_a_client_alone_on_a_mem_namespace_works_in_a_child_after_fork)
{
    /* mem: "a child made by fork() has its own copy of the parent's
     * namespace". The one client of the namespace is used in the child: its
     * fetch continues above the parent's values, and the values the parent
     * raised are there. */
    idp_client *c = tu_open("mem://forkalone?batch=100&adaptive=0&low_watermark=0",
                            NULL);
    idp_counter *k = tu_counter(c, "a");
    ck_assert_uint_eq(tu_next(k), 1);
    idp_error e = {0, ""};
    uint64_t v = 0;
    ck_assert_int_eq(idp_raise(c, "raised", 1000, &v, &e), IDP_OK);
    ck_assert_uint_eq(v, 1000);
    fork_ns f = {c, k};
    child_report r;
    in_child(child_ns, &f, &r);
    ck_assert_msg(r.rc_next == IDP_OK, "child: %s", r.msg);
    ck_assert_uint_gt(r.id_next, 100);
    ck_assert_msg(r.rc == IDP_OK, "child: %s", r.msg);
    ck_assert_uint_eq(r.id, 1000); /* the parent's copy of 'raised' */
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
    const TTest *caches[] = {
        test_a_cache_hands_out_increasing_ids_no_one_else_gets,
        test_cache_fill_sizes, test_a_cache_is_revoked_by_idp_close,
        test_ids_a_cache_takes_count_as_served,
        test_a_cache_in_a_child_after_fork_never_serves_the_parents_ids,
        test_a_client_alone_on_a_mem_namespace_works_in_a_child_after_fork,
        NULL};
    const tu_case cases[] = {
        {.name = "runs", .tests = runs},
        {.name = "close", .tests = closing},
        {.name = "callbacks", .tests = callbacks},
        {.name = "nulls", .tests = nulls},
        {.name = "caches", .tests = caches},
        {.name = NULL}};
    return tu_run(tu_suite("threads", 120, cases));
}
