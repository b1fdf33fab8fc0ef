/*
 * test_raw_sql.c - the SQL stores' raw clients (idprime-raw-postgresql.so,
 * idprime-raw-mysql.so, loaded by bench/raw.c from raw/ beside the
 * plugin) on real servers started by the harness: they open, name their
 * client library, and increment the very row the plugin increments, so
 * the values they return and the engine's interleave as one counter; the
 * hot-path bench runs them beside the engine. A store without a module
 * is reported as unsupported, not as a failure.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "harness.h"
#include "raw.h"

/* The store's value of `name`, read through the plugin. */
static uint64_t store_value(idp_client *c, const char *name)
{
    uint64_t v = 0;
    int exists = 0;
    idp_error err;
    ck_assert_msg(idp_get(c, name, &v, &exists, &err) == IDP_OK, "%s", err.msg);
    ck_assert_int_eq(exists, 1);
    return v;
}

static uint64_t raw_next(raw_client *r, const char *key)
{
    char msg[512] = "";
    uint64_t v = 0;
    ck_assert_msg(raw_incr(r, key, &v, msg, sizeof msg) == 0, "%s", msg);
    return v;
}

/* Raw and engine increments of one counter on a server of `kind`. */
static void raw_increments_the_plugins_row(const char *kind, const char *client)
{
    server s;
    ck_assert_int_eq(server_start(&s, kind, NULL), 0);
    /* the engine's open makes the table, as in the bench */
    idp_client *c = server_open(&s, "?batch=1&low_watermark=0", NULL);
    idp_error err;
    idp_counter *ctr = idp_counter_get(c, "raw_sql", &err);
    ck_assert_msg(ctr != NULL, "%s", err.msg);

    char uri[256], msg[512] = "";
    server_uri(&s, NULL, uri, sizeof uri);
    bench_target t;
    ck_assert_msg(target_parse(uri, &t, msg, sizeof msg) == 0, "%s", msg);
    int unsupported = -1;
    raw_client *r = raw_open(&t, 2000, &unsupported, msg, sizeof msg);
    ck_assert_msg(r != NULL, "%s", msg);
    ck_assert_int_eq(unsupported, 0);
    ck_assert_str_eq(raw_name(r), client);

    ck_assert_msg(raw_prepare(r, "raw_sql", msg, sizeof msg) == 0, "%s", msg);
    ck_assert_uint_eq(store_value(c, "raw_sql"), 0);
    ck_assert_uint_eq(raw_next(r, "raw_sql"), 1);
    ck_assert_uint_eq(raw_next(r, "raw_sql"), 2);
    ck_assert_uint_eq(raw_next(r, "raw_sql"), 3);
    ck_assert_uint_eq(store_value(c, "raw_sql"), 3);
    /* the engine at batch=1 takes the next value of the same row */
    uint64_t id = 0;
    ck_assert_msg(idp_next(ctr, &id, &err) == IDP_OK, "%s", err.msg);
    ck_assert_uint_eq(id, 4);
    ck_assert_uint_eq(raw_next(r, "raw_sql"), 5);
    ck_assert_uint_eq(store_value(c, "raw_sql"), 5);
    /* preparing a row that exists leaves its value */
    ck_assert_msg(raw_prepare(r, "raw_sql", msg, sizeof msg) == 0, "%s", msg);
    ck_assert_uint_eq(store_value(c, "raw_sql"), 5);
    /* a row the raw client makes is one the engine sees */
    ck_assert_msg(raw_prepare(r, "raw_new", msg, sizeof msg) == 0, "%s", msg);
    ck_assert_uint_eq(raw_next(r, "raw_new"), 1);
    ck_assert_uint_eq(store_value(c, "raw_new"), 1);

    raw_close(r);
    target_free(&t);
    idp_close(c);
    server_stop(&s, 0);
}

/* `idprime bench --workload hotpath` compares the engine with the module. */
static void hotpath_runs_the_module(const char *kind, const char *client)
{
    server s;
    ck_assert_int_eq(server_start(&s, kind, NULL), 0);
    char uri[256];
    server_uri(&s, NULL, uri, sizeof uri);
    bench_config c;
    bench_config_defaults(&c);
    c.workload = BENCH_HOTPATH;
    c.count = 1000;
    c.roundtrips = 100;
    char msg[512] = "";
    bench_results rs = {0};
    ck_assert_msg(bench_run(&c, uri, &rs, msg, sizeof msg) == BENCH_OK, "%s", msg);
    ck_assert_uint_eq(rs.n, 1);
    const bench_result *r = &rs.v[0];
    ck_assert_int_eq(r->has_raw, 1);
    ck_assert_str_eq(r->raw_client, client);
    ck_assert_uint_eq(r->raw_roundtrips, 100);
    ck_assert(r->engine_rt_ns > 0 && r->raw_rt_ns > 0);
    bench_results_free(&rs);
    server_stop(&s, 0);
}

START_TEST(postgresql_raw_client_increments_the_plugins_row)
{
    raw_increments_the_plugins_row("postgresql", "libpq");
}
END_TEST

START_TEST(mysql_raw_client_increments_the_plugins_row)
{
    raw_increments_the_plugins_row("mysql", "libmariadb");
}
END_TEST

START_TEST(postgresql_hotpath_runs_libpq_beside_the_engine)
{
    hotpath_runs_the_module("postgresql", "libpq");
}
END_TEST

START_TEST(mysql_hotpath_runs_libmariadb_beside_the_engine)
{
    hotpath_runs_the_module("mysql", "libmariadb");
}
END_TEST

/* A store with no raw client is unsupported (the comparison is skipped),
 * with a message naming it. */
START_TEST(a_store_without_a_raw_client_is_unsupported)
{
    bench_target t;
    char msg[512] = "";
    ck_assert_msg(target_parse("mem://", &t, msg, sizeof msg) == 0, "%s", msg);
    int unsupported = 0;
    ck_assert_ptr_null(raw_open(&t, 2000, &unsupported, msg, sizeof msg));
    ck_assert_int_eq(unsupported, 1);
    ck_assert_msg(strstr(msg, "mem") != NULL, "%s", msg);
    target_free(&t);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("raw-sql");
    TCase *t = tcase_create("raw-sql");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, a_store_without_a_raw_client_is_unsupported);
#ifdef HAVE_POSTGRESQL
    tcase_add_test(t, postgresql_raw_client_increments_the_plugins_row);
    tcase_add_test(t, postgresql_hotpath_runs_libpq_beside_the_engine);
#endif
#ifdef HAVE_MYSQL
    tcase_add_test(t, mysql_raw_client_increments_the_plugins_row);
    tcase_add_test(t, mysql_hotpath_runs_libmariadb_beside_the_engine);
#endif
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
