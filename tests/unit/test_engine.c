/*
 * test_engine.c - the batching/prefetch engine on the in-process mem store:
 * uniqueness and order across threads, the number of fetches, prefetch
 * timing and waits, failures, the regression guard, metaprime=0, the 2^63
 * limit, incr, timeouts and close, adaptive batches and priming (the
 * leases are in test_leases.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idprime/idprime.h"
#include "testutil.h"

static idp_error err;

START_TEST(test_first_ids_are_1_2_3)
{
    idp_client *c = tu_open("mem://first", NULL);
    idp_counter *k = tu_counter(c, "inode");
    for (uint64_t want = 1; want <= 600; want++)
        ck_assert_uint_eq(tu_next(k), want);
    ck_assert_ptr_eq(idp_counter_get(c, "inode", NULL), k);
    idp_close(c);
}
END_TEST

/* ---- 8 threads x 100,000 IDs ---------------------------------------- */

#define THREADS 8
#define PER_THREAD 100000

static void run_threads(const char *uri)
{
    idp_client *c = tu_open(uri, NULL);
    idp_counter *k = tu_counter(c, "inode");
    uint64_t *all = tu_thread_ids(k, THREADS, PER_THREAD, 0);
    tu_assert_distinct(all, THREADS * PER_THREAD);
    idp_counter_stats s = tu_settle(k);
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
    idp_client *a = tu_open("mem://shared?batch=10&adaptive=0", NULL);
    idp_client *b = tu_open("mem://shared?batch=10&adaptive=0", NULL);
    idp_counter *ka = tu_counter(a, "x"), *kb = tu_counter(b, "x");
    ck_assert_uint_eq(tu_next(ka), 1);
    ck_assert_uint_eq(tu_next(kb), 11);
    ck_assert_uint_eq(tu_next(ka), 2);
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
    {256, 256, 0, 1},
    {257, 256, 0, 2},
    {255, 256, 0, 1},
};

START_TEST(test_fetches_are_ceil_n_over_batch)
{
    char uri[128];
    /* adaptive=0: every batch is exactly `batch` (a 20 ms round trip would
     * otherwise grow it) */
    snprintf(uri, sizeof uri, "mem://fetches%d?adaptive=0&delay_ms=20&batch=%llu"
             "&low_watermark=%llu", _i,
             (unsigned long long)fetch_cases[_i].batch,
             (unsigned long long)fetch_cases[_i].wm);
    idp_client *c = tu_open(uri, NULL);
    idp_counter *k = tu_counter(c, "c");
    for (uint64_t i = 1; i <= fetch_cases[_i].n; i++)
        ck_assert_uint_eq(tu_next(k), i);
    idp_counter_stats s = tu_settle(k);
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
    idp_client *c = tu_open("mem://legacy?metaprime=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    for (uint64_t i = 1; i <= 50; i++)
        ck_assert_uint_eq(tu_next(k), i);
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(k, 10, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 60);
    idp_counter_stats s = {.size = sizeof s};
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


/* ---- adaptive batches ------------------------------------------------ */

/* Takes n IDs, sleeping `pause_us` between them; checks they run on. */
static uint64_t take(idp_counter *k, uint64_t after, uint64_t n,
                     unsigned pause_us)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t id = tu_next(k);
        ck_assert_uint_gt(id, after);
        after = id;
        if (pause_us > 0)
            tu_sleep_us(pause_us);
    }
    return after;
}

START_TEST(test_adaptive_batch_grows_to_max_batch_and_shrinks_back)
{
    /* a 10 ms round trip, floor 8, ceiling 256 */
    idp_client *c = tu_open("mem://grow?delay_ms=10&batch=8&max_batch=256", NULL);
    idp_counter *k = tu_counter(c, "c");
    /* as fast as one thread goes: 2 x rate x 10 ms is far above 256 */
    uint64_t last = take(k, 0, 3000, 0);
    idp_counter_stats fast = tu_settle(k);
    ck_assert_uint_eq(fast.batch, 256);              /* capped, not more */
    ck_assert_uint_lt(fast.prime_calls, 3000 / 8 / 4); /* it grew */
    ck_assert_uint_eq(fast.ids_served, 3000);
    /* about 800 IDs/s: 2 x 800/s x 10 ms = 16, so back near the floor
     * once the big batches fetched before are used up */
    last = take(k, last, 800, 1000);
    idp_counter_stats slow = tu_settle(k);
    ck_assert_uint_le(slow.batch, 64);
    ck_assert_uint_ge(slow.batch, 8);
    ck_assert_uint_eq(slow.ids_served, 3800);
    ck_assert_uint_eq(slow.ids_served + slow.unused_ids, slow.high);
    idp_close(c);
}
END_TEST

START_TEST(test_adaptive_batch_never_below_the_floor)
{
    /* 2 x ~1000/s x 5 ms = 10, below the floor of 64: every batch is 64;
     * the 16 IDs left at the watermark last 16 ms, a fetch 5 ms */
    idp_client *c = tu_open("mem://floor?delay_ms=5&batch=64", NULL);
    idp_counter *k = tu_counter(c, "c");
    take(k, 0, 300, 1000);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.batch, 64);
    ck_assert_uint_eq(s.high, s.prime_calls * 64);
    ck_assert_uint_eq(s.waited_calls, 1); /* the first fetch only */
    idp_close(c);
}
END_TEST

START_TEST(test_adaptive_steady_consumer_stops_waiting)
{
    /* 5,000 IDs/s against a 20 ms round trip. Fixed batches of 16 would
     * wait for every fetch (16 IDs last 3 ms): about 125 waits in 2,000
     * IDs. Adaptive: the first fetch and the one started before the rate
     * was known wait; from then on the watermark covers a fetch (1.5 x
     * 5000/s x 20 ms = 150 IDs) and a loaded machine may cost one more. */
    idp_client *c = tu_open("mem://steady?delay_ms=20&batch=16", NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t last = take(k, 0, 500, 200);
    idp_counter_stats warm = tu_settle(k);
    ck_assert_uint_le(warm.waited_calls, 3);
    take(k, last, 2000, 200);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_le(s.waited_calls - warm.waited_calls, 1);
    ck_assert_uint_gt(s.batch, 16);
    /* what is left is bounded by the rule: at most 3.5 x rate x latency
     * (350 here), with room for a slower or faster machine */
    ck_assert_uint_lt(s.unused_ids, 4 * 5000 * 20 / 1000 + 2 * 16);
    idp_close(c);
}
END_TEST

START_TEST(test_prime_on_open_fetches_together_and_first_next_does_not_wait)
{
    /* three counters primed at open in one store call: one 200 ms round
     * trip, not three */
    long long t0 = tu_now_ms();
    idp_client *c = tu_open("mem://prime?delay_ms=200&prime=a,b,a,inode"
                            "&inode_batch=50", NULL);
    long long opened = tu_now_ms() - t0;
    ck_assert_int_ge(opened, 200);
    ck_assert_int_lt(opened, 400);
    uint64_t store = 0;
    ck_assert_int_eq(idp_store_roundtrips(c, &store, &err), IDP_OK);
    ck_assert_uint_eq(store, 3); /* a, b, inode: one increment each */
    const char *names[] = {"a", "b", "inode"};
    for (int i = 0; i < 3; i++) {
        idp_counter *k = tu_counter(c, names[i]);
        t0 = tu_now_ms();
        ck_assert_uint_eq(tu_next(k), 1);
        ck_assert_int_lt(tu_now_ms() - t0, 100);
        idp_counter_stats s = {.size = sizeof s};
        idp_counter_stats_get(k, &s);
        ck_assert_uint_eq(s.waited_calls, 0);
        ck_assert_uint_eq(s.prime_calls, 1);
        ck_assert_uint_eq(s.prefetch_async, 0);
    }
    ck_assert_uint_eq(tu_get(c, "inode", NULL), 50);
    idp_close(c);
    /* metaprime=0 has no pool to fill: nothing is fetched */
    c = tu_open("mem://prime0?metaprime=0&prime=a", NULL);
    ck_assert_int_eq(idp_store_roundtrips(c, &store, &err), IDP_OK);
    ck_assert_uint_eq(store, 0);
    idp_close(c);
}
END_TEST

START_TEST(test_prime_failure_fails_the_open)
{
    idp_client *c = tu_open("mem://primefail", NULL);
    ck_assert_int_eq(idp_control(c, "set c 9223372036854775800", &err), IDP_OK);
    /* c is near 2^63: priming 256 more must fail the open, naming c */
    idp_client *bad = idp_open("mem://primefail?prime=c", NULL, &err);
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(err.code, IDP_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "prime"));
    ck_assert_ptr_nonnull(strstr(err.msg, "'c'"));
    idp_close(c);
}
END_TEST

START_TEST(test_counters_due_together_are_fetched_in_one_round_trip)
{
    /* The worker is busy with x's fetch (300 ms) while a and b cross their
     * watermarks: their fetches then go to the store together, one round
     * trip. */
    idp_client *c = tu_open("mem://together?delay_ms=300&batch=10"
                            "&adaptive=0&prime=x,a,b", NULL);
    idp_counter *x = tu_counter(c, "x"), *a = tu_counter(c, "a"),
                *b = tu_counter(c, "b");
    take(x, 0, 8, 0);  /* x crosses its watermark: the worker fetches */
    tu_sleep_ms(50);
    take(a, 0, 8, 0);
    take(b, 0, 8, 0);
    long long t0 = tu_now_ms();
    idp_counter_stats sa = {.size = sizeof sa}, sb = {.size = sizeof sb};
    do {
        tu_sleep_ms(5);
        idp_counter_stats_get(a, &sa);
        idp_counter_stats_get(b, &sb);
    } while ((sa.prime_calls < 2 || sb.prime_calls < 2) &&
             tu_now_ms() - t0 < 3000);
    long long both = tu_now_ms() - t0;
    ck_assert_uint_eq(sa.prime_calls, 2);
    ck_assert_uint_eq(sb.prime_calls, 2);
    /* x's 250 ms left, then one round trip for a and b; two in a row
     * would take 850 ms */
    ck_assert_int_lt(both, 750);
    idp_close(c);
}
END_TEST

/* ---- prefetch timing ------------------------------------------------ */

START_TEST(test_slow_consumer_never_waits)
{
    /* round trip 10 ms; the 100 IDs left at the watermark take >= 100 ms */
    idp_client *c = tu_open(
        "mem://slow?delay_ms=10&batch=200&low_watermark=50&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    for (uint64_t i = 1; i <= 700; i++) {
        ck_assert_uint_eq(tu_next(k), i);
        tu_sleep_ms(1);
    }
    idp_counter_stats s = tu_settle(k);
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
    idp_client *c = tu_open(
        "mem://fast?delay_ms=5&batch=100&low_watermark=25&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    for (uint64_t i = 1; i <= 1000; i++)
        ck_assert_uint_eq(tu_next(k), i);
    idp_counter_stats s = tu_settle(k);
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
    idp_client *c = tu_open(
        "mem://offthread?delay_ms=200&batch=100&low_watermark=50", NULL);
    idp_counter *k = tu_counter(c, "c");
    tu_next(k); /* first fetch: waits 200 ms */
    double worst = 0;
    for (int i = 2; i <= 100; i++) {
        double t0 = tu_now_s();
        tu_next(k);
        double dt = tu_now_s() - t0;
        if (dt > worst)
            worst = dt;
    }
    ck_assert_msg(worst < 0.1, "a call took %.3f s on a warm pool", worst);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.prefetch_async, 1);
    ck_assert_uint_eq(s.waited_calls, 1);
    idp_close(c);
}
END_TEST

/* ---- failures ------------------------------------------------------- */

START_TEST(test_failed_fetch_is_counted_and_retried)
{
    idp_client *c = tu_open("mem://fail?batch=10&low_watermark=0&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    ck_assert_uint_eq(tu_next(k), 1);
    for (int i = 2; i <= 10; i++)
        tu_next(k);
    ck_assert_int_eq(idp_control(c, "fail 2", &err), IDP_OK);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ESTORE);
    ck_assert_uint_eq(id, 0);
    ck_assert_msg(strstr(err.msg, "counter 'c'") && strstr(err.msg, "mem plugin: "
                  "injected failure"), "message: %s", err.msg);
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ESTORE);
    /* the store is back: the next call fetches again */
    ck_assert_uint_eq(tu_next(k), 11);
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.errors, 2);
    ck_assert_uint_eq(s.prime_calls, 2);
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(strstr(m, "\nmeta_prime_errors_total 2\n"));
    ck_assert_ptr_nonnull(strstr(m, "\nidprime_fetch_errors_total{counter=\"c\"} 2\n"));
    idp_free(m);
    idp_close(c);
}
END_TEST

START_TEST(test_failed_background_fetch_loses_nothing)
{
    idp_client *c = tu_open("mem://bgfail?batch=100&low_watermark=50&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t prev = tu_next(k); /* the first fetch */
    ck_assert_int_eq(idp_control(c, "fail 1", &err), IDP_OK);
    /* by ID 50, 50 are left = the watermark: the background fetch fails */
    for (int i = 0; i < 49; i++) {
        uint64_t got = tu_next(k);
        ck_assert_uint_eq(got, prev + 1);
        prev = got;
    }
    idp_counter_stats s = tu_settle(k);
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
    idp_client *c = tu_open("mem://regress?batch=10&low_watermark=0&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    for (int i = 1; i <= 10; i++)
        ck_assert_uint_eq(tu_next(k), (uint64_t)i);
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
    idp_counter_stats s = {.size = sizeof s};
    idp_counter_stats_get(k, &s);
    ck_assert_uint_eq(s.regressions, 2);
    /* raised above what was held (as migrate does), the client continues */
    uint64_t now = 0;
    ck_assert_int_eq(idp_raise(c, "c", 10, &now, &err), IDP_OK);
    ck_assert_uint_eq(now, 10);
    ck_assert_uint_eq(tu_next(k), 11);
    idp_close(c);
}
END_TEST

START_TEST(test_store_nonsense_is_refused)
{
    idp_client *c = tu_open("mem://garbage?batch=10&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    ck_assert_int_eq(idp_control(c, "garbage 1", &err), IDP_OK);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ESTORE);
    ck_assert_ptr_nonnull(strstr(err.msg, "nonsense"));
    ck_assert_uint_eq(tu_next(k), 11); /* 1..10 went with the bad answer */
    idp_close(c);
}
END_TEST

START_TEST(test_2_pow_63_is_an_error_not_a_wrap)
{
    idp_client *c = tu_open("mem://limit?batch=10&low_watermark=0&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t top = IDP_MAX_VALUE - 10;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "set c %llu", (unsigned long long)top);
    ck_assert_int_eq(idp_control(c, cmd, &err), IDP_OK);
    ck_assert_uint_eq(tu_next(k), top + 1);
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

START_TEST(test_near_2_pow_63_the_last_ids_are_served)
{
    /* 300 IDs are left below 2^63 when this client fetches 256; the next
     * batch of 256 does not fit, what is left (44) does, to the last one */
    idp_client *c = tu_open("mem://last?batch=256&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    ck_assert_int_eq(idp_control(c, "set c 9223372036854775507", &err), IDP_OK);
    for (uint64_t want = IDP_MAX_VALUE - 299; want <= IDP_MAX_VALUE; want++)
        ck_assert_uint_eq(tu_next(k), want);
    /* and no background fetch beyond the last ID failed */
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.prime_calls, 2);
    ck_assert_uint_eq(s.errors, 0);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "2^63"));
    ck_assert_uint_eq(id, 0);
    idp_close(c);
}
END_TEST

START_TEST(test_incr_is_incrby)
{
    idp_client *c = tu_open("mem://incr?batch=100&low_watermark=0&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(k, 5, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 5);                 /* owns 1..5 */
    ck_assert_uint_eq(tu_next(k), 6);
    ck_assert_int_eq(idp_incr(k, 94, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 100);               /* the pool exactly */
    /* larger than the rest of the pool: a fresh range above it */
    ck_assert_int_eq(idp_incr(k, 150, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 250);
    ck_assert_uint_eq(tu_next(k), 251);
    /* larger than the pool can take: fetched on its own, pool dropped */
    ck_assert_int_eq(idp_incr(k, (1u << 20) + 1, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 350 + (1u << 20) + 1);
    ck_assert_uint_eq(tu_next(k), last + 1);
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
    idp_client *c = tu_open("mem://slowstore?timeout_ms=100", NULL);
    idp_counter *k = tu_counter(c, "c");
    ck_assert_uint_eq(tu_next(k), 1);
    ck_assert_int_eq(idp_control(c, "delay 5000", &err), IDP_OK);
    for (int i = 2; i <= 192; i++) /* drain to the watermark and beyond */
        tu_next(k);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.errors, 1); /* the background fetch timed out */
    for (int i = 193; i <= 256; i++)
        ck_assert_uint_eq(tu_next(k), (uint64_t)i);
    double t0 = tu_now_s();
    uint64_t id;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_ETIMEOUT);
    double dt = tu_now_s() - t0;
    ck_assert_msg(dt >= 0.09 && dt < 1.0, "failed after %.3f s", dt);
    ck_assert_ptr_nonnull(strstr(err.msg, "100 ms"));
    /* the store is fast again: the client recovers */
    ck_assert_int_eq(idp_control(c, "delay 0", &err), IDP_OK);
    ck_assert_uint_gt(tu_next(k), 256);
    idp_close(c);
}
END_TEST

START_TEST(test_close_with_fetch_in_flight)
{
    idp_client *c = tu_open(
        "mem://closing?delay_ms=300&batch=10&low_watermark=100", NULL);
    idp_counter *k = tu_counter(c, "c");
    tu_next(k); /* installs, and at once queues the next fetch */
    double t0 = tu_now_s();
    idp_close(c); /* waits for the fetch in flight (bounded), frees it all */
    ck_assert_msg(tu_now_s() - t0 < 2.0, "close took %.3f s", tu_now_s() - t0);
}
END_TEST

START_TEST(test_bad_arguments)
{
    idp_client *c = tu_open("mem://args", NULL);
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
    idp_client *c = tu_open("mem://list?prefix=vol1.&batch=5", NULL);
    idp_counter *a = tu_counter(c, "x"), *b = tu_counter(c, "chunk");
    tu_next(a);
    tu_next(b);
    uint64_t v = 0;
    ck_assert_int_eq(idp_get(c, "x", &v, NULL, &err), IDP_OK);
    ck_assert_uint_eq(v, 5);
    idp_client *raw = tu_open("mem://list", NULL);
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
    idp_client *c = tu_open("mem://metrics?batch=10&low_watermark=0&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "my.ctr");
    for (int i = 0; i < 25; i++)
        tu_next(k);
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(m);
    /* my_ctr has the seed's names; my.ctr (not a valid metric-name part)
     * only the labelled families */
    idp_counter *plain = tu_counter(c, "my_ctr");
    for (int i = 0; i < 7; i++)
        tu_next(plain);
    idp_free(m);
    m = idp_metrics(c);
    ck_assert_ptr_nonnull(m);
    const char *want[] = {
        "# TYPE meta_my_ctr_prime_calls_total counter\nmeta_my_ctr_prime_calls_total 1\n",
        "meta_my_ctr_ids_served_total 7\n",
        "meta_my_ctr_prefetch_async_total 0\n",
        "idprime_prime_calls_total{counter=\"my.ctr\"} 3\n",
        "idprime_ids_served_total{counter=\"my.ctr\"} 25\n",
        "idprime_ids_served_total{counter=\"my_ctr\"} 7\n",
        "idprime_prefetch_async_total{counter=\"my.ctr\"} 0\n",
        "idprime_waited_calls_total{counter=\"my.ctr\"} 3\n",
        "idprime_batch_size{counter=\"my.ctr\"} 10\n",
        "idprime_unused_ids{counter=\"my.ctr\"} 5\n",
        "idprime_unused_ids{counter=\"my_ctr\"} 3\n",
        "idprime_fetch_seconds_bucket{le=\"+Inf\"} 4\n",
        "idprime_fetch_seconds_count 4\n",
        "meta_prime_errors_total 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(m, want[i]) != NULL, "missing '%s' in:\n%s", want[i], m);
    ck_assert_msg(strstr(m, "meta_my.ctr") == NULL && strstr(m, "meta_my_ctr_waited") == NULL,
                  "meta_ names only for plain names, only the seed's three:\n%s", m);
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
    idp_counter *k = tu_counter(c, "c");
    /* fetches of 10, 20, 40, then 40 again: the nonsense is refused */
    for (uint64_t i = 1; i <= 110; i++)
        ck_assert_uint_eq(tu_next(k), i);
    idp_counter_stats s = {.size = sizeof s};
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
    const TTest *tests[] = {
        test_first_ids_are_1_2_3, test_8_threads_unique_and_increasing,
        test_8_threads_tiny_batches, test_two_clients_share_a_counter,
        test_metaprime_0_fetches_once_per_id, test_slow_consumer_never_waits,
        test_fast_consumer_waits_are_counted,
        test_prefetch_runs_off_the_callers_thread,
        test_failed_fetch_is_counted_and_retried,
        test_failed_background_fetch_loses_nothing,
        test_store_regression_is_refused, test_store_nonsense_is_refused,
        test_2_pow_63_is_an_error_not_a_wrap, test_incr_is_incrby,
        test_slow_store_times_out, test_close_with_fetch_in_flight,
        test_bad_arguments, test_prefix_and_list, test_metrics_text,
        test_policy_chooses_the_next_batch,
        test_adaptive_batch_grows_to_max_batch_and_shrinks_back,
        test_adaptive_batch_never_below_the_floor,
        test_adaptive_steady_consumer_stops_waiting,
        test_prime_on_open_fetches_together_and_first_next_does_not_wait,
        test_prime_failure_fails_the_open,
        test_counters_due_together_are_fetched_in_one_round_trip,
        test_near_2_pow_63_the_last_ids_are_served, NULL};
    const TTest *loops[] = {test_fetches_are_ceil_n_over_batch, NULL};
    const tu_case cases[] = {
        {.name = "engine", .tests = tests, .loops = loops,
         .rows = TU_ROWS(fetch_cases)},
        {.name = NULL}};
    return tu_run(tu_suite("engine", 300, cases));
}
