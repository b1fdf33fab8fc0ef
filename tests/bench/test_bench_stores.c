/*
 * test_bench_stores.c - the bench on real servers (started by the harness
 * on free loopback ports): behind the delay proxy, the store's own count
 * (Redis INFO commandstats, memcached incr stats) agrees with the engine's
 * and with what a fixed batch promises; the round trip reported is the
 * one measured through the proxy; the hot path compares the engine at
 * batch=1 with the raw client library on the same path.
 *
 * PostgreSQL and MariaDB: the same files run, counted by the servers
 * themselves (the plugins' increment counts: a sequence taken by every
 * increment, the server's statement counters), with no delay injected:
 * the bench's delay proxy does not yet take their schemes (bench/target.c
 * lists redis and memcached as the network stores), so a --rtt-ms run on
 * them is a run without delay, which the result says (rtt_injected 0).
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "harness.h"

static const char *const fixed_batch[] = {"low_watermark=0", NULL};

/* 300 files at rtt_ms (0: no delay) on a server of `kind`. */
static void files_on(const char *kind, const char *extra, unsigned rtt_ms)
{
    server s;
    ck_assert_int_eq(server_start(&s, kind, extra), 0);
    char uri[128];
    server_uri(&s, NULL, uri, sizeof uri);
    bench_config c;
    bench_config_defaults(&c);
    c.count = 300;
    c.rtt_ms = rtt_ms;
    c.params = fixed_batch;
    char msg[512] = "";
    bench_results rs = {0};
    ck_assert_msg(bench_check_uri(&c, uri, msg, sizeof msg) == BENCH_OK, "%s", msg);
    ck_assert_msg(bench_run(&c, uri, &rs, msg, sizeof msg) == BENCH_OK, "%s", msg);
    ck_assert_uint_eq(rs.n, 2);
    const bench_result *r = &rs.v[0], *b = &rs.v[1];
    ck_assert_str_eq(r->store, kind);
    ck_assert_int_eq(r->rtt_injected, rtt_ms > 0);
    /* the proxy's delay is in the path: measured, never below what it holds */
    ck_assert_msg(r->rtt_ms >= rtt_ms, "measured %.3f ms", r->rtt_ms);
    /* 300 files: inode 2 x 256, chunk 1 x 2048, by the server's own count */
    ck_assert_int_eq(r->has_store_count, 1);
    ck_assert_uint_eq(r->roundtrips_store, 3);
    ck_assert_uint_eq(r->roundtrips_engine, 3);
    ck_assert_uint_eq(r->ids, 600);
    ck_assert_int_eq(b->has_store_count, 1);
    ck_assert_uint_eq(b->roundtrips_store, 600);
    ck_assert_uint_eq(b->roundtrips_engine, 600);
    /* the baseline pays a round trip per ID, the batched run a few */
    ck_assert(b->wall_s > r->wall_s);
    bench_results_free(&rs);
    server_stop(&s, 0);
}

static void files_behind_the_proxy(const char *kind, const char *extra)
{
    files_on(kind, extra, 2);
}

START_TEST(redis_counts_what_a_fixed_batch_promises_behind_the_proxy)
{
    files_behind_the_proxy("redis", NULL);
}
END_TEST

START_TEST(memcached_counts_what_a_fixed_batch_promises_behind_the_proxy)
{
    files_behind_the_proxy("memcached", "-M");
}
END_TEST

START_TEST(postgresql_counts_what_a_fixed_batch_promises)
{
    files_on("postgresql", NULL, 0);
}
END_TEST

START_TEST(mysql_counts_what_a_fixed_batch_promises)
{
    files_on("mysql", NULL, 0);
}
END_TEST

static void hotpath_against_the_raw_client(const char *kind, const char *extra,
                                           const char *client)
{
    server s;
    ck_assert_int_eq(server_start(&s, kind, extra), 0);
    char uri[128];
    server_uri(&s, NULL, uri, sizeof uri);
    bench_config c;
    bench_config_defaults(&c);
    c.workload = BENCH_HOTPATH;
    c.count = 10000;
    c.roundtrips = 100;
    char msg[512] = "";
    bench_results rs = {0};
    ck_assert_msg(bench_run(&c, uri, &rs, msg, sizeof msg) == BENCH_OK, "%s", msg);
    ck_assert_uint_eq(rs.n, 1);
    const bench_result *r = &rs.v[0];
    ck_assert_int_eq(r->has_raw, 1);
    ck_assert_str_eq(r->raw_client, client);
    ck_assert_uint_eq(r->raw_roundtrips, 100); /* 50 rounds of 2 */
    ck_assert(r->engine_rt_ns > 0 && r->raw_rt_ns > 0);
    ck_assert(r->atomic_ids_per_s > 0);
    bench_results_free(&rs);
    server_stop(&s, 0);
}

START_TEST(redis_hotpath_runs_hiredis_beside_the_engine)
{
    hotpath_against_the_raw_client("redis", NULL, "hiredis");
}
END_TEST

START_TEST(memcached_hotpath_runs_libmemcached_beside_the_engine)
{
    hotpath_against_the_raw_client("memcached", "-M", "libmemcached");
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("bench-stores");
    TCase *t = tcase_create("stores");
    tcase_set_timeout(t, 120);
#ifdef HAVE_REDIS
    tcase_add_test(t, redis_counts_what_a_fixed_batch_promises_behind_the_proxy);
    tcase_add_test(t, redis_hotpath_runs_hiredis_beside_the_engine);
#endif
#ifdef HAVE_MEMCACHED
    tcase_add_test(t, memcached_counts_what_a_fixed_batch_promises_behind_the_proxy);
    tcase_add_test(t, memcached_hotpath_runs_libmemcached_beside_the_engine);
#endif
#ifdef HAVE_POSTGRESQL
    tcase_add_test(t, postgresql_counts_what_a_fixed_batch_promises);
#endif
#ifdef HAVE_MYSQL
    tcase_add_test(t, mysql_counts_what_a_fixed_batch_promises);
#endif
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
