/*
 * test_engine.c - the batching/prefetch engine on the in-process mem store:
 * uniqueness and order across threads, the number of fetches, prefetch
 * timing and waits, failures, the regression guard, metaprime=0, the 2^63
 * limit, incr, timeouts and close.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idprime/idprime.h"

static idp_error err;

static idp_client *open_ok(const char *uri)
{
    idp_client *c = idp_open(uri, NULL, &err);
    ck_assert_msg(c != NULL, "open %s: %s", uri, err.msg);
    return c;
}

static idp_counter *ctr_ok(idp_client *c, const char *name)
{
    idp_counter *k = idp_counter_get(c, name, &err);
    ck_assert_msg(k != NULL, "counter %s: %s", name, err.msg);
    return k;
}

static uint64_t next_ok(idp_counter *k)
{
    uint64_t id = 0;
    int rc = idp_next(k, &id, &err);
    ck_assert_msg(rc == IDP_OK, "next: %s", err.msg);
    return id;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits until no fetch of the counter is queued or running. */
static idp_counter_stats settle(idp_counter *k)
{
    idp_counter_stats s;
    for (idp_counter_stats_get(k, &s); s.in_flight; idp_counter_stats_get(k, &s))
        sleep_ms(5);
    return s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(test_first_ids_are_1_2_3)
{
    idp_client *c = open_ok("mem://first");
    idp_counter *k = ctr_ok(c, "inode");
    for (uint64_t want = 1; want <= 600; want++)
        ck_assert_uint_eq(next_ok(k), want);
    ck_assert_ptr_eq(idp_counter_get(c, "inode", NULL), k);
    idp_close(c);
}
END_TEST

/* ---- 8 threads x 100,000 IDs ---------------------------------------- */

#define THREADS 8
#define PER_THREAD 100000

typedef struct worker {
    idp_counter *k;
    uint64_t *ids;
    int ok;
} worker;

static void *take_ids(void *arg)
{
    worker *w = arg;
    w->ok = 1;
    for (size_t i = 0; i < PER_THREAD; i++) {
        if (idp_next(w->k, &w->ids[i], NULL) != IDP_OK ||
            (i > 0 && w->ids[i] <= w->ids[i - 1])) {
            w->ok = 0;
            break;
        }
    }
    return NULL;
}

static void run_threads(const char *uri)
{
    idp_client *c = open_ok(uri);
    idp_counter *k = ctr_ok(c, "inode");
    pthread_t t[THREADS];
    worker w[THREADS];
    uint64_t *all = malloc(sizeof(uint64_t) * THREADS * PER_THREAD);
    ck_assert_ptr_nonnull(all);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){k, all + (size_t)i * PER_THREAD, 0};
        pthread_create(&t[i], NULL, take_ids, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(w[i].ok, "thread %d: an error or a non-increasing ID", i);
    }
    qsort(all, THREADS * PER_THREAD, sizeof *all, cmp_u64);
    for (size_t i = 1; i < THREADS * PER_THREAD; i++)
        ck_assert_msg(all[i] != all[i - 1], "ID %llu handed out twice",
                      (unsigned long long)all[i]);
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.ids_served, THREADS * PER_THREAD);
    ck_assert_uint_eq(s.ids_served + s.unused_ids, s.high);
    free(all);
    idp_close(c);
}

START_TEST(test_8_threads_unique_and_increasing)
{
    run_threads("mem://threads?batch=256");
}
END_TEST

START_TEST(test_8_threads_tiny_batches)
{
    /* batch 1 and 3: segments turn over constantly under contention */
    run_threads("mem://tiny?batch=1");
    run_threads("mem://tiny3?batch=3&low_watermark=100");
}
END_TEST

START_TEST(test_two_clients_share_a_counter)
{
    idp_client *a = open_ok("mem://shared?batch=10");
    idp_client *b = open_ok("mem://shared?batch=10");
    idp_counter *ka = ctr_ok(a, "x"), *kb = ctr_ok(b, "x");
    ck_assert_uint_eq(next_ok(ka), 1);
    ck_assert_uint_eq(next_ok(kb), 11);
    ck_assert_uint_eq(next_ok(ka), 2);
    idp_close(a);
    idp_close(b);
}
END_TEST

/* ---- number of fetches ---------------------------------------------- */

static const struct {
    uint64_t n, batch, wm, fetches;
} fetch_cases[] = {
    {1000, 256, 0, 4},     /* the original case: 4 INCRs */
    {1000, 100, 0, 10},
    {1001, 100, 0, 11},
    {1, 2048, 0, 1},
    /* with prefetch: one more when what is left falls to the watermark */
    {1000, 256, 25, 5},    /* 24 left <= 64 */
    {900, 256, 25, 4},     /* 124 left > 64 */
    {950, 100, 50, 11},    /* 50 left <= 50 */
};

START_TEST(test_fetches_are_ceil_n_over_batch)
{
    char uri[128];
    snprintf(uri, sizeof uri, "mem://fetches%d?batch=%llu&low_watermark=%llu", _i,
             (unsigned long long)fetch_cases[_i].batch,
             (unsigned long long)fetch_cases[_i].wm);
    idp_client *c = open_ok(uri);
    idp_counter *k = ctr_ok(c, "c");
    for (uint64_t i = 1; i <= fetch_cases[_i].n; i++)
        ck_assert_uint_eq(next_ok(k), i);
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.prime_calls, fetch_cases[_i].fetches);
    uint64_t store = 0;
    ck_assert_int_eq(idp_store_roundtrips(c, &store, &err), IDP_OK);
    ck_assert_uint_eq(store, fetch_cases[_i].fetches);
    ck_assert_uint_eq(s.ids_served, fetch_cases[_i].n);
    ck_assert_uint_eq(s.unused_ids, fetch_cases[_i].fetches * fetch_cases[_i].batch -
                                        fetch_cases[_i].n);
    idp_close(c);
}
END_TEST

START_TEST(test_metaprime_0_fetches_once_per_id)
{
    idp_client *c = open_ok("mem://legacy?metaprime=0");
    idp_counter *k = ctr_ok(c, "c");
    for (uint64_t i = 1; i <= 50; i++)
        ck_assert_uint_eq(next_ok(k), i);
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(k, 10, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 60);
    idp_counter_stats s;
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.prime_calls, 51);
    ck_assert_uint_eq(s.ids_served, 60);
    ck_assert_uint_eq(s.prefetch_async, 0);
    ck_assert_uint_eq(s.unused_ids, 0);
    uint64_t store = 0;
    ck_assert_int_eq(idp_store_roundtrips(c, &store, &err), IDP_OK);
    ck_assert_uint_eq(store, 51);
    idp_close(c);
}
END_TEST

/* ---- prefetch timing ------------------------------------------------ */

START_TEST(test_slow_consumer_never_waits)
{
    /* round trip 10 ms; the 100 IDs left at the watermark take >= 100 ms */
    idp_client *c = open_ok("mem://slow?delay_ms=10&batch=200&low_watermark=50");
    idp_counter *k = ctr_ok(c, "c");
    for (uint64_t i = 1; i <= 700; i++) {
        ck_assert_uint_eq(next_ok(k), i);
        sleep_ms(1);
    }
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.waited_calls, 1); /* the very first fetch only */
    /* 1..800 fetched; at 700, 100 left <= 100 asked for 801..1000 */
    ck_assert_uint_eq(s.prime_calls, 5);
    ck_assert_uint_eq(s.prefetch_async, 4);
    idp_close(c);
}
END_TEST

START_TEST(test_fast_consumer_waits_are_counted)
{
    /* 25 IDs after the watermark go in microseconds; the fetch takes 5 ms */
    idp_client *c = open_ok("mem://fast?delay_ms=5&batch=100&low_watermark=25");
    idp_counter *k = ctr_ok(c, "c");
    for (uint64_t i = 1; i <= 1000; i++)
        ck_assert_uint_eq(next_ok(k), i);
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.waited_calls, 10);
    /* one fetch per batch and one ahead: never two for the same need
     * (whether the worker or the waiting caller ran it) */
    ck_assert_uint_eq(s.prime_calls, 11);
    ck_assert_uint_ge(s.prefetch_async, 1);
    idp_close(c);
}
END_TEST

START_TEST(test_prefetch_runs_off_the_callers_thread)
{
    /* the call that crosses the watermark returns at once: no store I/O */
    idp_client *c = open_ok("mem://offthread?delay_ms=200&batch=100&low_watermark=50");
    idp_counter *k = ctr_ok(c, "c");
    next_ok(k); /* first fetch: waits 200 ms */
    double worst = 0;
    for (int i = 2; i <= 100; i++) {
        double t0 = now_s();
        next_ok(k);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
    }
    ck_assert_msg(worst < 0.1, "a call took %.3f s on a warm pool", worst);
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.prefetch_async, 1);
    ck_assert_uint_eq(s.waited_calls, 1);
    idp_close(c);
}
END_TEST

/* ---- failures ------------------------------------------------------- */

START_TEST(test_failed_fetch_is_counted_and_retried)
{
    idp_client *c = open_ok("mem://fail?batch=10&low_watermark=0");
    idp_counter *k = ctr_ok(c, "c");
    ck_assert_uint_eq(next_ok(k), 1);
    for (int i = 2; i <= 10; i++)
        next_ok(k);
    ck_assert_int_eq(idp_control(c, "fail 2", &err), IDP_OK);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ESTORE);
    ck_assert_uint_eq(id, 0);
    ck_assert_msg(strstr(err.msg, "counter 'c'") && strstr(err.msg, "mem plugin: "
                  "injected failure"), "message: %s", err.msg);
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ESTORE);
    /* the store is back: the next call fetches again */
    ck_assert_uint_eq(next_ok(k), 11);
    idp_counter_stats s;
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.errors, 2);
    ck_assert_uint_eq(s.prime_calls, 2);
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(strstr(m, "\nmeta_prime_errors_total 2\n"));
    ck_assert_ptr_nonnull(strstr(m, "\nmeta_c_fetch_errors_total 2\n"));
    idp_free(m);
    idp_close(c);
}
END_TEST

START_TEST(test_failed_background_fetch_loses_nothing)
{
    idp_client *c = open_ok("mem://bgfail?batch=100&low_watermark=50");
    idp_counter *k = ctr_ok(c, "c");
    uint64_t prev = 0;
    for (int i = 0; i < 49; i++)
        prev = next_ok(k);
    ck_assert_int_eq(idp_control(c, "fail 1", &err), IDP_OK);
    /* ID 50 leaves 50 = the watermark: the background fetch fails */
    uint64_t got = next_ok(k);
    ck_assert_uint_eq(got, prev + 1);
    prev = got;
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.errors, 1);
    /* the pool still serves, then the next need fetches again */
    int errors = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t id;
        if (idp_next(k, &id, &err) != IDP_OK) {
            errors++;
            continue;
        }
        ck_assert_uint_gt(id, prev);
        prev = id;
    }
    ck_assert_int_eq(errors, 0); /* the caller that needed it fetched again */
    ck_assert_uint_eq(prev, 250);
    idp_close(c);
}
END_TEST

START_TEST(test_store_regression_is_refused)
{
    idp_client *c = open_ok("mem://regress?batch=10&low_watermark=0");
    idp_counter *k = ctr_ok(c, "c");
    for (int i = 1; i <= 10; i++)
        ck_assert_uint_eq(next_ok(k), (uint64_t)i);
    /* the store loses its data: the counter goes back to 3 */
    ck_assert_int_eq(idp_control(c, "set c 3", &err), IDP_OK);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_EREGRESS);
    ck_assert_msg(strstr(err.msg, "4..13") && strstr(err.msg, "below 10"),
                  "message: %s", err.msg);
    ck_assert_uint_eq(id, 0);
    /* still refused while the store stays at or below what was held */
    ck_assert_int_eq(idp_control(c, "set c 0", &err), IDP_OK);
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_EREGRESS);
    idp_counter_stats s;
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.regressions, 2);
    /* raised above what was held (as migrate does), the client continues */
    uint64_t now = 0;
    ck_assert_int_eq(idp_raise(c, "c", 10, &now, &err), IDP_OK);
    ck_assert_uint_eq(now, 10);
    ck_assert_uint_eq(next_ok(k), 11);
    idp_close(c);
}
END_TEST

START_TEST(test_store_nonsense_is_refused)
{
    idp_client *c = open_ok("mem://garbage?batch=10");
    idp_counter *k = ctr_ok(c, "c");
    ck_assert_int_eq(idp_control(c, "garbage 1", &err), IDP_OK);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ESTORE);
    ck_assert_ptr_nonnull(strstr(err.msg, "nonsense"));
    ck_assert_uint_eq(next_ok(k), 11); /* 1..10 went with the bad answer */
    idp_close(c);
}
END_TEST

START_TEST(test_2_pow_63_is_an_error_not_a_wrap)
{
    idp_client *c = open_ok("mem://limit?batch=10&low_watermark=0");
    idp_counter *k = ctr_ok(c, "c");
    uint64_t top = IDP_MAX_VALUE - 10;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "set c %llu", (unsigned long long)top);
    ck_assert_int_eq(idp_control(c, cmd, &err), IDP_OK);
    ck_assert_uint_eq(next_ok(k), top + 1);
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(k, 9, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, IDP_MAX_VALUE);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "2^63"));
    ck_assert_uint_eq(id, 0);
    ck_assert_int_eq(idp_incr(k, 1, &last, &err), IDP_ERANGE);
    ck_assert_int_eq(idp_incr(k, UINT64_MAX, &last, &err), IDP_ERANGE);
    ck_assert_int_eq(idp_raise(c, "c", UINT64_MAX, NULL, &err), IDP_ERANGE);
    idp_close(c);
}
END_TEST

START_TEST(test_incr_is_incrby)
{
    idp_client *c = open_ok("mem://incr?batch=100&low_watermark=0");
    idp_counter *k = ctr_ok(c, "c");
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(k, 5, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 5);                 /* owns 1..5 */
    ck_assert_uint_eq(next_ok(k), 6);
    ck_assert_int_eq(idp_incr(k, 94, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 100);               /* the pool exactly */
    /* larger than the rest of the pool: a fresh range above it */
    ck_assert_int_eq(idp_incr(k, 150, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 250);
    ck_assert_uint_eq(next_ok(k), 251);
    /* larger than the pool can take: fetched on its own, pool dropped */
    ck_assert_int_eq(idp_incr(k, (1u << 20) + 1, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 350 + (1u << 20) + 1);
    ck_assert_uint_eq(next_ok(k), last + 1);
    ck_assert_int_eq(idp_incr(k, 0, &last, &err), IDP_EINVAL);
    uint64_t v = 0;
    int exists = -1;
    ck_assert_int_eq(idp_get(c, "c", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 1);
    ck_assert_uint_eq(v, 350 + (1u << 20) + 1 + 100);
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 0);
    ck_assert_uint_eq(v, 0);
    idp_close(c);
}
END_TEST

START_TEST(test_slow_store_times_out)
{
    idp_client *c = open_ok("mem://slowstore?timeout_ms=100");
    idp_counter *k = ctr_ok(c, "c");
    ck_assert_uint_eq(next_ok(k), 1);
    ck_assert_int_eq(idp_control(c, "delay 5000", &err), IDP_OK);
    for (int i = 2; i <= 192; i++) /* drain to the watermark and beyond */
        next_ok(k);
    idp_counter_stats s = settle(k);
    ck_assert_uint_eq(s.errors, 1); /* the background fetch timed out */
    for (int i = 193; i <= 256; i++)
        ck_assert_uint_eq(next_ok(k), (uint64_t)i);
    double t0 = now_s();
    uint64_t id;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ETIMEOUT);
    double dt = now_s() - t0;
    ck_assert_msg(dt >= 0.09 && dt < 1.0, "failed after %.3f s", dt);
    ck_assert_ptr_nonnull(strstr(err.msg, "100 ms"));
    /* the store is fast again: the client recovers */
    ck_assert_int_eq(idp_control(c, "delay 0", &err), IDP_OK);
    ck_assert_uint_gt(next_ok(k), 256);
    idp_close(c);
}
END_TEST

START_TEST(test_close_with_fetch_in_flight)
{
    idp_client *c = open_ok("mem://closing?delay_ms=300&batch=10&low_watermark=100");
    idp_counter *k = ctr_ok(c, "c");
    next_ok(k); /* installs, and at once queues the next fetch */
    double t0 = now_s();
    idp_close(c); /* waits for the fetch in flight (bounded), frees it all */
    ck_assert_msg(now_s() - t0 < 2.0, "close took %.3f s", now_s() - t0);
}
END_TEST

START_TEST(test_bad_arguments)
{
    idp_client *c = open_ok("mem://args");
    ck_assert_ptr_null(idp_counter_get(c, "bad name", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad counter name 'bad name'"));
    ck_assert_ptr_null(idp_counter_get(c, "", &err));
    uint64_t v;
    ck_assert_int_eq(idp_get(c, "x/y", &v, NULL, &err), IDP_EINVAL);
    ck_assert_int_eq(idp_control(c, "explode", &err), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown control command 'explode'"));
    idp_close(c);
    idp_close(NULL);
    ck_assert_ptr_null(idp_open("mem://x?delay_ms=600001", NULL, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "'delay_ms'"));
    ck_assert_ptr_null(idp_open("mem://x:5", NULL, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "mem plugin: mem URIs are"));
}
END_TEST

typedef struct listed {
    int count;
    uint64_t sum;
} listed;

static int collect(void *ud, const char *name, uint64_t value)
{
    listed *l = ud;
    ck_assert_msg(strcmp(name, "x") == 0 || strcmp(name, "chunk") == 0,
                  "listed '%s'", name);
    l->count++;
    l->sum += value;
    return 0;
}

START_TEST(test_prefix_and_list)
{
    idp_client *c = open_ok("mem://list?prefix=vol1.&batch=5");
    idp_counter *a = ctr_ok(c, "x"), *b = ctr_ok(c, "chunk");
    next_ok(a);
    next_ok(b);
    uint64_t v = 0;
    ck_assert_int_eq(idp_get(c, "x", &v, NULL, &err), IDP_OK);
    ck_assert_uint_eq(v, 5);
    idp_client *raw = open_ok("mem://list");
    ck_assert_int_eq(idp_get(raw, "vol1.x", &v, NULL, &err), IDP_OK);
    ck_assert_uint_eq(v, 5); /* the store key is prefix + name */
    ck_assert_int_eq(idp_get(raw, "vol1.chunk", &v, NULL, &err), IDP_OK);
    ck_assert_uint_eq(v, 2048); /* chunk_batch=2048 by default */
    ck_assert_int_eq(idp_control(raw, "set other 7", &err), IDP_OK);
    idp_close(raw);
    listed n = {0};
    ck_assert_int_eq(idp_list(c, collect, &n, &err), IDP_OK);
    ck_assert_int_eq(n.count, 2); /* "other" has no prefix: not ours */
    ck_assert_uint_eq(n.sum, 5 + 2048);
    idp_close(c);
}
END_TEST

START_TEST(test_metrics_text)
{
    idp_client *c = open_ok("mem://metrics?batch=10&low_watermark=0");
    idp_counter *k = ctr_ok(c, "my.ctr");
    for (int i = 0; i < 25; i++)
        next_ok(k);
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(m);
    const char *want[] = {
        "# TYPE meta_my_ctr_prime_calls_total counter\nmeta_my_ctr_prime_calls_total 3\n",
        "meta_my_ctr_ids_served_total 25\n",
        "meta_my_ctr_prefetch_async_total 0\n",
        "meta_my_ctr_waited_calls_total 3\n",
        "meta_my_ctr_batch_size 10\n",
        "meta_my_ctr_unused_ids 5\n",
        "meta_my_ctr_fetch_seconds_bucket{le=\"+Inf\"} 3\n",
        "meta_my_ctr_fetch_seconds_count 3\n",
        "meta_prime_errors_total 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(m, want[i]) != NULL, "missing '%s' in:\n%s", want[i], m);
    idp_free(m);
    idp_close(c);
}
END_TEST

/* A policy that doubles the batch, then answers nonsense after 3 fetches. */
static uint64_t doubling(void *ud, const idp_policy_input *in)
{
    int *calls = ud;
    (*calls)++;
    ck_assert_str_eq(in->counter, "c");
    ck_assert_uint_eq(in->fetches, (uint64_t)*calls);
    return in->fetches < 3 ? in->batch * 2 : UINT64_MAX;
}

START_TEST(test_policy_chooses_the_next_batch)
{
    int calls = 0;
    idp_options opt = {.size = sizeof opt, .policy = doubling, .policy_ud = &calls};
    idp_client *c = idp_open("mem://policy?batch=10&low_watermark=0", &opt, &err);
    ck_assert_ptr_nonnull(c);
    idp_counter *k = ctr_ok(c, "c");
    /* fetches of 10, 20, 40, then 40 again: the nonsense is refused */
    for (uint64_t i = 1; i <= 110; i++)
        ck_assert_uint_eq(next_ok(k), i);
    idp_counter_stats s;
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.prime_calls, 4);
    ck_assert_int_eq(calls, 4);
    ck_assert_uint_eq(s.batch, 40);
    ck_assert_uint_eq(s.high, 110);
    idp_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_first_ids_are_1_2_3);
    tcase_add_test(tc, test_8_threads_unique_and_increasing);
    tcase_add_test(tc, test_8_threads_tiny_batches);
    tcase_add_test(tc, test_two_clients_share_a_counter);
    tcase_add_loop_test(tc, test_fetches_are_ceil_n_over_batch, 0,
                        (int)(sizeof fetch_cases / sizeof fetch_cases[0]));
    tcase_add_test(tc, test_metaprime_0_fetches_once_per_id);
    tcase_add_test(tc, test_slow_consumer_never_waits);
    tcase_add_test(tc, test_fast_consumer_waits_are_counted);
    tcase_add_test(tc, test_prefetch_runs_off_the_callers_thread);
    tcase_add_test(tc, test_failed_fetch_is_counted_and_retried);
    tcase_add_test(tc, test_failed_background_fetch_loses_nothing);
    tcase_add_test(tc, test_store_regression_is_refused);
    tcase_add_test(tc, test_store_nonsense_is_refused);
    tcase_add_test(tc, test_2_pow_63_is_an_error_not_a_wrap);
    tcase_add_test(tc, test_incr_is_incrby);
    tcase_add_test(tc, test_slow_store_times_out);
    tcase_add_test(tc, test_close_with_fetch_in_flight);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_prefix_and_list);
    tcase_add_test(tc, test_metrics_text);
    tcase_add_test(tc, test_policy_chooses_the_next_batch);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
