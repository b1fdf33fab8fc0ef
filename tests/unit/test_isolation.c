/*
 * test_isolation.c - what one call of a client never waits for, on the mem
 * store: a cold fetch of one counter never delays another counter's warm
 * path, and a listing (on a store handle of its own, no lock held) blocks
 * no fetch, not even one from its own callback.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "idprime/idprime.h"
#include "testutil.h"

static idp_error err;

/* ---- counters do not wait for each other ------------------------------- */

static void *take_one(void *arg)
{
    uint64_t *id = arg;
    idp_error e;
    idp_counter *k = *(idp_counter **)(void *)(id + 1);
    if (idp_next(k, id, &e) != IDP_OK)
        *id = 0;
    return NULL;
}

START_TEST(test_a_cold_fetch_never_delays_another_counters_warm_path)
{
    /* b is warm (4,095 IDs in its pool); a's first fetch takes 3 s in the
     * store; b serves 1,000 IDs while a's fetch is still in flight */
    idp_client *c = tu_open("mem://cold?batch=4096&adaptive=0&low_watermark=0&timeout_ms=10000", NULL);
    idp_counter *a = tu_counter(c, "a"), *b = tu_counter(c, "b");
    ck_assert_uint_eq(tu_next(b), 1);
    ck_assert_int_eq(idp_control(c, "delay 3000", &err), IDP_OK);
    uint64_t slot[2] = {0, 0};
    memcpy(&slot[1], &a, sizeof a);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, take_one, slot), 0);
    idp_counter_stats sa = {.size = sizeof sa};
    do { /* a state, not a guess: a's fetch has started */
        tu_sleep_ms(1);
        idp_counter_stats_get(a, &sa);
    } while (!sa.in_flight);
    for (uint64_t want = 2; want <= 1001; want++)
        ck_assert_uint_eq(tu_next(b), want);
    idp_counter_stats_get(a, &sa);
    ck_assert_msg(sa.in_flight && sa.prime_calls == 0,
                  "b's 1,000 IDs waited for a's fetch");
    idp_counter_stats sb = {.size = sizeof sb};
    idp_counter_stats_get(b, &sb);
    ck_assert_uint_eq(sb.waited_calls, 1); /* its own first fetch only */
    pthread_join(th, NULL);
    ck_assert_uint_eq(slot[0], 1);
    idp_close(c);
}
END_TEST

/* A list callback that fetches from the same client: one cold counter per
 * name listed, each a store call while the listing runs. */
typedef struct fetch_in_list {
    idp_client *c;
    int listed, fetched;
} fetch_in_list;

static int fetch_while_listing(void *ud, const char *name, uint64_t value)
{
    (void)value;
    fetch_in_list *f = ud;
    char fresh[64];
    snprintf(fresh, sizeof fresh, "fresh-%s", name);
    idp_counter *k = idp_counter_get(f->c, fresh, NULL);
    uint64_t id = 0;
    f->listed++;
    f->fetched += k != NULL && idp_next(k, &id, NULL) == IDP_OK && id == 1;
    return 0;
}

START_TEST(test_a_listing_blocks_no_fetch)
{
    /* the listing runs on a store handle of its own with no lock held, so
     * fetches (here: from its own callback) go on meanwhile; a listing
     * holding the client's store would deadlock here (the alarm ends it) */
    idp_client *c = tu_open("mem://listfetch?prefix=p.", NULL);
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "c%d", i);
        tu_next(tu_counter(c, name));
    }
    fetch_in_list f = {c, 0, 0};
    alarm(20);
    ck_assert_int_eq(idp_list(c, fetch_while_listing, &f, &err), IDP_OK);
    alarm(0);
    ck_assert_int_eq(f.listed, 3);
    ck_assert_int_eq(f.fetched, 3);
    idp_close(c);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_a_cold_fetch_never_delays_another_counters_warm_path,
        test_a_listing_blocks_no_fetch, NULL};
    const tu_case cases[] = {
        {.name = "isolation", .tests = tests},
        {.name = NULL}};
    return tu_run(tu_suite("isolation", 60, cases));
}
