/*
 * test_redis_durable.c - wait_replicas against a real redis-server and a
 * replica of it (harness.h starts both on free loopback ports): no ID of a
 * batch is served before the replica holds the counter past it. The
 * replica's own copy of a counter is read straight from the replica
 * ("GET key" on its port, redis_helpers.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "redis_helpers.h"
#include "testutil.h"

/* ---- Durable batches: wait_replicas ------------------------------------- */

/* Fixed batches of 10, fetched only when the pool is empty, so that every
 * 10th ID is a fetch boundary (adaptive sizing would move them). */
#define DURABLE "batch=10&low_watermark=0&adaptive=0"

START_TEST(test_wait_replicas_1_replica_holds_every_served_id)
{
    server p, r;
    char out[64];
    start_redis(&p, NULL);
    start_replica(&r, &p);
    log_clear();
    idp_client *c = server_open(&p, "?wait_replicas=1&" DURABLE, &with_log);
    ck_assert_msg(!log_has("fewer than wait_replicas"), "%s", log_text);
    raw(&p, NULL, "CONFIG RESETSTAT", out, sizeof out);
    idp_counter *ctr = tu_counter(c, "durable");
    /* each fetch is acknowledged by the replica before its first ID is
     * served: right after each boundary (IDs 1, 11, 21, ...) the
     * replica's own value already covers the whole batch */
    for (uint64_t want = 1; want <= 100; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        uint64_t held = value_on(&r, "durable");
        ck_assert_msg(held >= want, "ID %llu served while the replica "
                      "holds %llu", (unsigned long long)want,
                      (unsigned long long)held);
        if (want % 10 == 1)
            ck_assert_uint_eq(held, want + 9);
    }
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.prime_calls, 10);
    /* one WAIT per INCRBY, behind it in the same round trip */
    ck_assert_uint_eq(server_incrbys(&p), 10);
    ck_assert_uint_eq(server_calls(&p, "wait"), 10);

    /* INCRBY through the engine, and raise (migrate's): acknowledged too */
    uint64_t last = 0, got = 0;
    ck_assert_int_eq(idp_incr(ctr, 25, &last, NULL), IDP_OK);
    ck_assert_uint_ge(value_on(&r, "durable"), last);
    idp_error err;
    ck_assert_int_eq(idp_raise(c, "raised", 5000, &got, &err), IDP_OK);
    ck_assert_uint_eq(got, 5000);
    ck_assert_uint_eq(value_on(&r, "raised"), 5000);
    idp_close(c);

    /* prime= fetches several counters in one pipeline: one WAIT for all */
    raw(&p, NULL, "CONFIG RESETSTAT", out, sizeof out);
    c = server_open(&p, "?wait_replicas=1&prime=pa,pb,pc&" DURABLE,
                    &with_log);
    ck_assert_uint_eq(server_incrbys(&p), 3);
    ck_assert_uint_eq(server_calls(&p, "wait"), 1);
    ck_assert_uint_eq(value_on(&r, "pa"), 10);
    ck_assert_uint_eq(value_on(&r, "pb"), 10);
    ck_assert_uint_eq(value_on(&r, "pc"), 10);
    ck_assert_uint_eq(tu_next(tu_counter(c, "pb")), 1);
    idp_close(c);

    /* metaprime=0: every ID its own INCRBY, each acknowledged */
    c = server_open(&p, "?wait_replicas=1&metaprime=0", &with_log);
    ctr = tu_counter(c, "legacy");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        ck_assert_uint_eq(value_on(&r, "legacy"), want);
    }
    idp_close(c);

    /* wait_replicas=0, the default, sends no WAIT at all */
    raw(&p, NULL, "CONFIG RESETSTAT", out, sizeof out);
    c = server_open(&p, "?" DURABLE, &with_log);
    for (int i = 0; i < 25; i++)
        tu_next(tu_counter(c, "plain"));
    ck_assert_uint_eq(server_incrbys(&p), 3);
    ck_assert_uint_eq(server_calls(&p, "wait"), 0);
    idp_close(c);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST

/* Asserts that err is the failed WAIT of `acked` of `want` replicas. */
static void assert_short_wait(int rc, const idp_error *err, int acked,
                              int want)
{
    char count[64];
    snprintf(count, sizeof count, "only %d of %d replicas acknowledged",
             acked, want);
    ck_assert_msg(rc == IDP_ETIMEOUT, "gave %d: %s", rc, err->msg);
    ck_assert_msg(strstr(err->msg, count) != NULL, "no '%s' in: %s", count,
                  err->msg);
}

START_TEST(test_wait_replicas_2_with_1_replica_fails_serving_nothing)
{
    server p, r;
    start_redis(&p, NULL);
    start_replica(&r, &p);
    log_clear();
    idp_client *c = server_open(&p, "?wait_replicas=2&timeout_ms=500&"
                                DURABLE, &with_log);
    char line[160];
    snprintf(line, sizeof line, "\n1:redis plugin: 127.0.0.1:%d has 1 "
             "connected replica, fewer than wait_replicas=2", p.port);
    ck_assert_msg(log_has(line), "no '%s' in the log:%s", line, log_text);
    idp_counter *ctr = tu_counter(c, "short");
    for (int i = 0; i < 2; i++) {
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        assert_short_wait(rc, &err, 1, 2);
        ck_assert_msg(strstr(err.msg, "wait_replicas=2") != NULL, "%s",
                      err.msg);
        /* WAIT waited its timeout_ms - 200 = 300 ms, then gave up */
        ck_assert_msg(strstr(err.msg, "within 300 ms") != NULL, "%s",
                      err.msg);
        ck_assert_msg(dt >= 250 && dt <= 500 + 1000, "call %d took %lld ms",
                      i, dt);
        ck_assert_uint_eq(id, 0);
    }
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.ids_served, 0);
    ck_assert_uint_eq(st.prime_calls, 0);
    /* the increments were applied on both servers: gaps, not served */
    ck_assert_uint_eq(tu_get(c, "short", NULL), 20);
    ck_assert_uint_eq(value_on(&r, "short"), 20);
    uint64_t last = 0;
    idp_error err;
    assert_short_wait(idp_incr(ctr, 3, &last, &err), &err, 1, 2);
    ck_assert_uint_eq(last, 0);
    uint64_t got = 0;
    assert_short_wait(idp_raise(c, "raised", 100, &got, &err), &err, 1, 2);
    idp_close(c);

    /* a pipeline of several counters (prime=) fails as a whole: the
     * client does not open */
    idp_client *bad = try_open(redis_uri(&p, "?wait_replicas=2&timeout_ms="
                                         "500&prime=qa,qb&" DURABLE), &err);
    ck_assert_ptr_null(bad);
    assert_short_wait(err.code, &err, 1, 2);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST

START_TEST(test_wait_replicas_stopped_replica_fails_then_recovers)
{
    server p, r;
    start_redis(&p, NULL);
    start_replica(&r, &p);
    idp_client *c = server_open(&p, "?wait_replicas=1&timeout_ms=500&"
                                DURABLE, &with_log);
    idp_counter *ctr = tu_counter(c, "outage");
    for (uint64_t want = 1; want <= 10; want++)
        ck_assert_uint_eq(tu_next(ctr), want);

    server_stop(&r, 1);
    for (int i = 0; i < 2; i++) {
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        assert_short_wait(rc, &err, 0, 1);
        ck_assert_msg(dt <= 500 + 1000, "call %d took %lld ms", i, dt);
        ck_assert_uint_eq(id, 0);
    }
    /* the two batches were taken on the primary and never served */
    ck_assert_uint_eq(tu_get(c, "outage", NULL), 30);

    ck_assert_int_eq(server_restart(&r), 0);
    ck_assert_int_eq(server_replica_wait_up(&r, 10000), 0);
    /* the next fetch (31..40) is acknowledged and served */
    for (uint64_t want = 31; want <= 45; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        ck_assert_uint_ge(value_on(&r, "outage"), want);
    }
    idp_close(c);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST

START_TEST(test_wait_replicas_bad_values_are_refused)
{
    server s;
    start_redis(&s, NULL);
    static const char *const bad[] = {"-1", "101", "x", "1.5", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char query[64];
        idp_error err;
        snprintf(query, sizeof query, "?wait_replicas=%s", bad[i]);
        ck_assert_ptr_null(try_open(redis_uri(&s, query), &err));
        ck_assert_msg(err.code == IDP_EINVAL, "'%s' gave %d: %s", bad[i],
                      err.code, err.msg);
        ck_assert_msg(strstr(err.msg, "'wait_replicas'") != NULL &&
                      strstr(err.msg, "0..100") != NULL, "'%s': %s", bad[i],
                      err.msg);
    }
    /* without a replica, wait_replicas=1 opens (replicas may come later)
     * with a warning, and its fetches fail naming 0 of 1 */
    log_clear();
    idp_client *c = server_open(&s, "?wait_replicas=1&timeout_ms=200",
                                &with_log);
    ck_assert_msg(log_has("0 connected replicas, fewer than "
                          "wait_replicas=1"), "%s", log_text);
    idp_error err;
    uint64_t id = 0;
    assert_short_wait(idp_next(tu_counter(c, "none"), &id, &err), &err, 0,
                      1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

int main(void)
{
    const TTest *durable[] = {
        test_wait_replicas_1_replica_holds_every_served_id,
        test_wait_replicas_2_with_1_replica_fails_serving_nothing,
        test_wait_replicas_stopped_replica_fails_then_recovers,
        test_wait_replicas_bad_values_are_refused, NULL};
    const tu_case cases[] = {{.name = "durable", .tests = durable},
                             {.name = NULL}};
    return tu_run(tu_suite("redis_durable", 120, cases));
}
