/*
 * test_giveback.c - a clean idp_close gives back the unserved rest of the
 * last batches (DESIGN: Semantics 7), on the mem store: the store's value
 * ends at the last ID handed out when nobody else fetched, it is left
 * alone when somebody did, it never goes below an ID a thread, a run or a
 * caller cache took, and nothing handed out is ever handed out again.
 * The stores' own compare-and-set is tested in each store's suite.
 */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idprime/idprime.h"
#include "testutil.h"

/* A namespace of its own per test: mem://NAME is shared in the process. */
static idp_client *open_ns(const char *ns, const char *query)
{
    char uri[256];
    snprintf(uri, sizeof uri, "mem://%s%s", ns, query != NULL ? query : "");
    return tu_open(uri, NULL);
}

/* A namespace lives while a client has it open: each test keeps one, the
 * reader, which fetches nothing (so gives nothing back). */
static idp_client *reader;

static void hold(const char *ns)
{
    reader = open_ns(ns, NULL);
}

static void release(void)
{
    idp_close(reader);
}

/* The value of counter `name` in the namespace held. */
static uint64_t value_in(const char *ns, const char *name)
{
    (void)ns;
    return tu_get(reader, name, NULL);
}

START_TEST(test_next_1000_then_close_leaves_the_counter_at_1000)
{
    /* What `idprime next -n 1000` does, for several batch settings: the
     * pool prefetches ahead (the default watermark), batches grow. */
    const char *queries[] = {"", "?batch=7&adaptive=0", "?batch=4096",
                             "?batch=1000&adaptive=0&low_watermark=0",
                             "?batch=10&low_watermark=90"};
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
        char ns[32];
        snprintf(ns, sizeof ns, "next1000-%zu", q);
        hold(ns);
        idp_client *c = open_ns(ns, queries[q]);
        idp_counter *k = tu_counter(c, "inode");
        for (uint64_t i = 1; i <= 1000; i++)
            ck_assert_uint_eq(tu_next(k), i);
        ck_assert_uint_gt(tu_stats(k).high, 1000); /* fetched ahead */
        idp_close(c);
        ck_assert_msg(value_in(ns, "inode") == 1000, "%s: the counter is at "
                      "%" PRIu64 " after a clean close, not 1000", queries[q],
                      value_in(ns, "inode"));
        release();
    }
}
END_TEST

START_TEST(test_incr_then_close_leaves_the_counter_at_the_last_id)
{
    hold("incr");
    idp_client *c = open_ns("incr", "?batch=64");
    idp_counter *k = tu_counter(c, "chunk");
    idp_error e = {0, ""};
    uint64_t last = 0;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(idp_incr(k, 10, &last, &e), IDP_OK);
    ck_assert_uint_eq(last, 1000);
    idp_close(c);
    ck_assert_uint_eq(value_in("incr", "chunk"), 1000);
    release();
}
END_TEST

START_TEST(test_a_second_client_that_fetched_after_us_makes_us_give_back_nothing)
{
    hold("second");
    idp_client *a = open_ns("second", "?batch=100&adaptive=0&low_watermark=0");
    idp_client *b = open_ns("second", "?batch=100&adaptive=0&low_watermark=0");
    idp_counter *ka = tu_counter(a, "x"), *kb = tu_counter(b, "x");
    for (uint64_t i = 1; i <= 5; i++)
        ck_assert_uint_eq(tu_next(ka), i);      /* a holds 1..100 */
    ck_assert_uint_eq(tu_next(kb), 101);        /* b holds 101..200 */
    idp_close(a);                               /* the store is at b's end */
    ck_assert_uint_eq(value_in("second", "x"), 200);
    idp_close(b);                               /* b handed out 101 */
    ck_assert_uint_eq(value_in("second", "x"), 101);
    /* and whoever comes next starts above everything handed out */
    idp_client *c = open_ns("second", NULL);
    ck_assert_uint_eq(tu_next(tu_counter(c, "x")), 102);
    idp_close(c);
    release();
}
END_TEST

START_TEST(test_give_back_0_keeps_the_rest_as_a_gap)
{
    hold("off");
    idp_client *c = open_ns("off", "?batch=100&adaptive=0&give_back=0");
    idp_counter *k = tu_counter(c, "x");
    ck_assert_uint_eq(tu_next(k), 1);
    idp_close(c);
    ck_assert_uint_eq(value_in("off", "x"), 100);
    release();
}
END_TEST

START_TEST(test_a_caller_cache_counts_as_handed_out)
{
    hold("cache");
    idp_client *c = open_ns("cache", "?batch=1000&adaptive=0&low_watermark=0");
    idp_counter *k = tu_counter(c, "x");
    ck_assert_uint_eq(tu_next(k), 1);   /* this thread's run: 1..n */
    idp_error e = {0, ""};
    idp_cache cache;
    ck_assert_int_eq(idp_cache_init(&cache, sizeof cache, k, 100, &e), IDP_OK);
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_next(&cache, &id, &e), IDP_OK);
    uint64_t cache_end = cache.end; /* [id, cache_end) went to the cache */
    ck_assert_uint_gt(cache_end, id + 1);
    idp_cache_release(&cache);
    idp_close(c);
    /* the cache served one ID; the library cannot know, so its whole fill
     * is kept: the value is at least its last ID */
    uint64_t v = value_in("cache", "x");
    ck_assert_msg(v >= cache_end - 1 && v < 1000, "value %" PRIu64 ", cache "
                  "ended at %" PRIu64, v, cache_end - 1);
    release();
}
END_TEST

START_TEST(test_a_direct_fetch_after_the_pool_gives_back_nothing)
{
    hold("direct");
    /* an incr too large for the pool goes to the store directly; the pool
     * below it is then not at the store's top */
    idp_client *c = open_ns("direct", "?batch=100&adaptive=0");
    idp_counter *k = tu_counter(c, "x");
    ck_assert_uint_eq(tu_next(k), 1);
    idp_error e = {0, ""};
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(k, (1u << 20) + 1, &last, &e), IDP_OK);
    idp_close(c);
    ck_assert_uint_eq(value_in("direct", "x"), last);
    release();
}
END_TEST

/* Threads that take IDs, then a close: no ID at or below the value is
 * handed out again, across many cycles; the value never falls below an ID
 * handed out. */
typedef struct taker {
    idp_counter *k;
    size_t want;
    uint64_t *ids;
} taker;

static void *take(void *arg)
{
    taker *t = arg;
    idp_error e = {0, ""};
    for (size_t i = 0; i < t->want; i++) {
        uint64_t last = 0;
        int rc = i % 3 == 2 ? idp_incr(t->k, 1, &last, &e)
                            : idp_next(t->k, &last, &e);
        if (rc != IDP_OK) {
            t->want = i;
            break;
        }
        t->ids[i] = last;
    }
    return NULL;
}

START_TEST(test_cycles_of_threads_and_clean_closes_never_hand_out_an_id_twice)
{
    hold("cycles");
    enum { CYCLES = 200, THREADS = 4, MAXPER = 300 };
    size_t cap = (size_t)CYCLES * THREADS * MAXPER, n = 0;
    uint64_t *all = malloc(cap * sizeof *all);
    ck_assert_ptr_nonnull(all);
    unsigned seed = 12345;
    uint64_t given_back_cycles = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        char query[96];
        snprintf(query, sizeof query, "?batch=%u&low_watermark=%u",
                 1 + rand_r(&seed) % 200, rand_r(&seed) % 100);
        idp_client *c = open_ns("cycles", query);
        idp_counter *k = tu_counter(c, "x");
        pthread_t th[THREADS];
        taker t[THREADS];
        int threads = 1 + rand_r(&seed) % THREADS;
        for (int i = 0; i < threads; i++) {
            t[i] = (taker){k, (size_t)(rand_r(&seed) % MAXPER), all + n};
            n += t[i].want;
            ck_assert_int_eq(pthread_create(&th[i], NULL, take, &t[i]), 0);
        }
        uint64_t top = 0;
        for (int i = 0; i < threads; i++) {
            pthread_join(th[i], NULL);
            for (size_t j = 0; j < t[i].want; j++)
                top = t[i].ids[j] > top ? t[i].ids[j] : top;
        }
        uint64_t high = tu_stats(k).high;
        idp_close(c);
        uint64_t v = value_in("cycles", "x");
        ck_assert_msg(v >= top, "cycle %d: the counter went down to %" PRIu64
                      ", below %" PRIu64 " handed out", cycle, v, top);
        given_back_cycles += v < high;
    }
    tu_assert_distinct(all, n);
    /* the feature is not idle: most cycles gave something back */
    ck_assert_uint_gt(given_back_cycles, CYCLES / 2);
    free(all);
    release();
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_next_1000_then_close_leaves_the_counter_at_1000,
        test_incr_then_close_leaves_the_counter_at_the_last_id,
        test_a_second_client_that_fetched_after_us_makes_us_give_back_nothing,
        test_give_back_0_keeps_the_rest_as_a_gap,
        test_a_caller_cache_counts_as_handed_out,
        test_a_direct_fetch_after_the_pool_gives_back_nothing,
        test_cycles_of_threads_and_clean_closes_never_hand_out_an_id_twice,
        NULL};
    const tu_case cases[] = {{.name = "giveback", .tests = tests},
                             {.name = NULL}};
    return tu_run(tu_suite("giveback", 300, cases));
}
