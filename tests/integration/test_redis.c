/*
 * test_redis.c - the redis store against a real redis-server, through the
 * public API only: one test per promise of docs/design.md, asserting values.
 *
 * Every test starts its own server (harness.h) on a free loopback port.
 * The store's own counts are read over a raw socket with hand-written
 * inline commands ("INFO commandstats"), so the test links no Redis client;
 * redis_helpers.c has those helpers; test_redis_durable.c the
 * wait_replicas suite.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "redis_helpers.h"
#include "testutil.h"

/* ---- IDs ---------------------------------------------------------------- */

START_TEST(test_first_ids_are_1_2_3)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    /* one batch of the default 256 taken, none in the background yet */
    int exists = 0;
    ck_assert_uint_eq(tu_get(c, "ids", &exists), 256);
    ck_assert_int_eq(exists, 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_first_ids_are_1_2_3_without_batching)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        /* every allocation is its own INCRBY: the store holds the last ID */
        ck_assert_uint_eq(tu_get(c, "ids", NULL), want);
    }
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(ctr, 10, &last, NULL), IDP_OK);
    ck_assert_uint_eq(last, 15);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    server s;
    start_redis(&s, NULL);
    char uri[512];
    server_uri(&s, "?batch=64", uri, sizeof uri);
    /* the children fork before the parent opens any client */
    const tu_fanout f = {.uri = uri, .counter = "shared", .procs = 4,
                         .threads = 2, .per_thread = 50000};
    size_t n = 0;
    uint64_t *all = tu_fanout_ids(&f, &n, NULL);   /* all distinct */
    ck_assert_uint_eq(n, 400000);
    /* nobody was handed an ID the store has not passed */
    idp_client *c = server_open(&s, NULL, &with_log);
    ck_assert_uint_ge(tu_get(c, "shared", NULL), all[n - 1]);
    idp_close(c);
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* ---- Round trips ------------------------------------------------------ */

START_TEST(test_store_counts_one_incrby_per_batch)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    /* a fixed batch=100 (adaptive=0: adaptive sizing would grow it),
     * fetched only when the pool is empty: 1,000 IDs take exactly
     * ceil(1000/100) = 10 INCRBY per client. ("inode" would take its own
     * inode_batch=256.) */
    idp_client *a = server_open(&s, "?batch=100&low_watermark=0&adaptive=0",
                                &with_log);
    idp_client *b = server_open(&s, "?batch=100&low_watermark=0&adaptive=0",
                                &with_log);
    raw(&s, NULL, "CONFIG RESETSTAT", out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    ck_assert_uint_eq(server_incrbys(&s), 0);
    idp_counter *ca = tu_counter(a, "files"), *cb = tu_counter(b, "files");
    for (int i = 0; i < 1000; i++) {
        tu_next(ca);
        tu_next(cb);
    }
    idp_counter_stats sa = {.size = sizeof sa}, sb = {.size = sizeof sb};
    idp_counter_stats_get(ca, &sa);
    idp_counter_stats_get(cb, &sb);
    ck_assert_uint_eq(sa.prime_calls, 10);
    ck_assert_uint_eq(sb.prime_calls, 10);
    ck_assert_uint_eq(sa.ids_served, 1000);
    ck_assert_uint_eq(server_incrbys(&s), sa.prime_calls + sb.prime_calls);
    /* the plugin reads the same server-wide count */
    uint64_t rt = 0;
    idp_error err;
    ck_assert_int_eq(idp_store_roundtrips(a, &rt, &err), IDP_OK);
    ck_assert_uint_eq(rt, 20);
    ck_assert_uint_eq(tu_get(a, "files", NULL), 2000);
    idp_close(a);
    idp_close(b);

    /* with the default watermark (25%) the next batch is fetched in the
     * background at 75 of 100 used: 950 IDs need 10 batches, and the 10th
     * leaves 50 > 25, so no 11th is started */
    a = server_open(&s, "?batch=100&adaptive=0", &with_log);
    raw(&s, NULL, "CONFIG RESETSTAT", out, sizeof out);
    ca = tu_counter(a, "chunk2");
    for (int i = 0; i < 950; i++)
        tu_next(ca);
    idp_counter_stats_get(ca, &sa);
    ck_assert_uint_eq(sa.prime_calls, 10);
    /* how many of them ran in the background depends on timing */
    ck_assert_uint_le(sa.prefetch_async, 9);
    ck_assert_uint_eq(server_incrbys(&s), sa.prime_calls);
    idp_close(a);

    /* metaprime=0: one INCRBY per ID */
    a = server_open(&s, "?metaprime=0", &with_log);
    raw(&s, NULL, "CONFIG RESETSTAT", out, sizeof out);
    ca = tu_counter(a, "legacy");
    for (int i = 0; i < 50; i++)
        tu_next(ca);
    idp_counter_stats_get(ca, &sa);
    ck_assert_uint_eq(sa.prime_calls, 50);
    ck_assert_uint_eq(server_incrbys(&s), 50);
    idp_close(a);
    server_stop(&s, 0);
}
END_TEST

/* ---- Crashes, outages, lost data ---------------------------------------- */

START_TEST(test_killed_client_never_repeats_an_id)
{
    server s;
    start_redis(&s, NULL);
    char uri[512];
    server_uri(&s, NULL, uri, sizeof uri);
    uint64_t *all = NULL;
    size_t n = 0;
    uint64_t highest = 0;
    for (int round = 0; round < 3; round++) {
        /* a child killed mid-run once it has handed out over 1,000 */
        size_t start = n;
        size_t k = tu_take_then_kill(uri, "crash", 1001, &all, &n);
        ck_assert_uint_gt(k, 1000);
        /* a client started after a crash begins above all it handed out */
        ck_assert_msg(all[start] > highest, "round %d began at %llu, at or "
                      "below %llu handed out before the crash", round,
                      (unsigned long long)all[start],
                      (unsigned long long)highest);
        for (size_t i = start; i < n; i++)
            highest = all[i] > highest ? all[i] : highest;
    }
    idp_client *c = server_open(&s, NULL, &with_log);
    uint64_t after = tu_next(tu_counter(c, "crash"));
    ck_assert_uint_gt(after, highest);
    idp_close(c);
    tu_assert_distinct(all, n);
    free(all);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_stopped_server_fails_within_timeout_and_recovers)
{
    server s;
    /* persistence on, so the counter survives the restart */
    start_redis(&s, "--appendonly yes");
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=500", &with_log);
    idp_counter *ctr = tu_counter(c, "outage");
    for (uint64_t want = 1; want <= 3; want++)
        ck_assert_uint_eq(tu_next(ctr), want);

    server_stop(&s, 1);
    char want[128];
    snprintf(want, sizeof want, "redis plugin: unable to connect to "
             "127.0.0.1:%d: Connection refused", s.port);
    for (int i = 0; i < 2; i++) {
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        ck_assert_msg(rc == IDP_ESTORE || rc == IDP_ETIMEOUT,
                      "call %d with the server down gave %d: %s", i, rc,
                      err.msg);
        ck_assert_msg(dt <= 500 + 1500, "call %d took %lld ms", i, dt);
        ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
        ck_assert_uint_eq(id, 0);
    }

    ck_assert_int_eq(server_restart(&s), 0);
    /* the failed INCRBYs never reached the server: nothing was skipped */
    ck_assert_uint_eq(tu_next(ctr), 4);
    ck_assert_uint_eq(tu_get(c, "outage", NULL), 4);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_hung_server_times_out_and_recovers)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=500", &with_log);
    idp_counter *ctr = tu_counter(c, "hung");
    ck_assert_uint_eq(tu_next(ctr), 1);

    kill(s.pid, SIGSTOP);
    for (int i = 0; i < 2; i++) {   /* the old connection, then a new one */
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        ck_assert_msg(rc == IDP_ETIMEOUT, "call %d on a hung server gave %d: "
                      "%s", i, rc, err.msg);
        ck_assert_msg(dt >= 400 && dt <= 500 + 1500, "call %d took %lld ms",
                      i, dt);
        ck_assert_msg(strstr(err.msg, "timeout_ms=500") != NULL, "%s",
                      err.msg);
    }
    kill(s.pid, SIGCONT);

    /* the timed-out INCRBYs may still run once the server wakes: they are
     * gaps, never handed out, and the next ID lies above them */
    uint64_t id = tu_next(ctr);
    ck_assert_uint_gt(id, 1);
    ck_assert_uint_eq(tu_get(c, "hung", NULL), id);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_store_regression_is_refused)
{
    server s;
    start_redis(&s, NULL);   /* no persistence: a restart loses everything */
    idp_client *c = server_open(&s, "?batch=10&low_watermark=0&adaptive=0",
                                &with_log);
    idp_counter *ctr = tu_counter(c, "lost");
    uint64_t last = 0;
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(last = tu_next(ctr), want);
    server_kill(&s);
    ck_assert_int_eq(server_restart(&s), 0);
    /* the closed connection is reopened before anything is sent */
    ck_assert_uint_eq(tu_get(c, "lost", NULL), 0);

    /* 6..10 are still in the pool; then the empty store answers 10 (IDs
     * 1..10, at or below the 10 already held): refused; then 20 (11..20)
     * and 30 (21..30), above it: served */
    int regressions = 0;
    for (int i = 0; i < 20; i++) {
        idp_error err;
        uint64_t id = 0;
        int rc = idp_next(ctr, &id, &err);
        if (rc == IDP_EREGRESS) {
            regressions++;
            ck_assert_msg(strstr(err.msg, "at or below") != NULL, "%s",
                          err.msg);
            continue;
        }
        ck_assert_msg(rc == IDP_OK, "%d: %s", rc, err.msg);
        ck_assert_uint_gt(id, last);
        last = id;
    }
    ck_assert_int_eq(regressions, 1);
    ck_assert_uint_eq(last, 24);
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.regressions, 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_reconnect_reapplies_auth_and_select)
{
    server s;
    char out[64];
    start_redis(&s, "--requirepass s3cret");
    char uri[512];
    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d/3?metaprime=0",
             s.port);
    idp_client *c = tu_open(uri, &with_log);
    idp_counter *ctr = tu_counter(c, "re");
    ck_assert_uint_eq(tu_next(ctr), 1);

    /* the server closes the connection (as its idle timeout would): the
     * next call reopens it, authenticated and on db 3, before sending */
    raw(&s, "s3cret", "CLIENT KILL TYPE normal", out, sizeof out);
    ck_assert_str_eq(out, ":1");
    ck_assert_uint_eq(tu_next(ctr), 2);
    raw(&s, "s3cret", "CLIENT KILL TYPE normal", out, sizeof out);
    ck_assert_str_eq(out, ":1");
    ck_assert_uint_eq(tu_next(ctr), 3);
    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d?db=3", s.port);
    idp_client *d3 = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_get(d3, "re", NULL), 3);
    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d/0", s.port);
    idp_client *d0 = tu_open(uri, &with_log);
    int exists = 1;
    ck_assert_uint_eq(tu_get(d0, "re", &exists), 0);
    ck_assert_int_eq(exists, 0);
    idp_close(d0);
    idp_close(d3);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_reaching_2_63_is_an_error_never_a_wrap)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    raw(&s, NULL, "SET big 9223372036854775800", out, sizeof out);
    raw(&s, NULL, "SET big2 9223372036854775800", out, sizeof out);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "big");
    for (uint64_t want = 9223372036854775801u; want <= IDP_MAX_VALUE; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    idp_error err;
    uint64_t id = 0;
    int rc = idp_next(ctr, &id, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    ck_assert_uint_eq(tu_get(c, "big", NULL), IDP_MAX_VALUE);
    idp_close(c);

    c = server_open(&s, "?batch=10", &with_log);
    rc = idp_next(tu_counter(c, "big2"), &id, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    ck_assert_msg(strstr(err.msg, "'big2'") != NULL, "%s", err.msg);
    ck_assert_uint_eq(tu_get(c, "big2", NULL), 9223372036854775800u);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- URIs ----------------------------------------------------------- */

START_TEST(test_closed_port_is_named)
{
    int port = harness_free_port();
    ck_assert_int_gt(port, 0);
    char uri[128], want[128];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", port);
    snprintf(want, sizeof want, "redis plugin: unable to connect to "
             "127.0.0.1:%d: Connection refused", port);
    idp_error err;
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_bad_db_number_is_named)
{
    server s;
    start_redis(&s, NULL);   /* 16 databases */
    idp_error err;
    ck_assert_ptr_null(try_open(redis_uri(&s, "/99999"), &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "db 99999") != NULL &&
                  strstr(err.msg, "out of range") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "?db=16"), &err));
    ck_assert_msg(strstr(err.msg, "db 16") != NULL, "%s", err.msg);
    /* the last one there is fine */
    idp_client *c = server_open(&s, "/15", &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "x")), 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_non_numeric_db_path_is_refused)
{
    server s;
    start_redis(&s, NULL);
    idp_error err;
    ck_assert_ptr_null(try_open(redis_uri(&s, "/abc"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "'/abc'") != NULL &&
                  strstr(err.msg, "database number") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "/-1"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_ptr_null(try_open(redis_uri(&s, "/2?db=3"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "given twice") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "?db=-1"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "db") != NULL, "%s", err.msg);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_several_hosts_are_refused)
{
    server s;
    start_redis(&s, NULL);
    char uri[128];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d,127.0.0.1:%d/0", s.port,
             s.port);
    idp_error err;
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "several hosts") != NULL, "%s", err.msg);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_password_is_checked)
{
    server s;
    start_redis(&s, "--requirepass s3cret");
    char uri[128];
    idp_error err;

    snprintf(uri, sizeof uri, "redis://:Wr0ngPw@127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "authentication to 127.0.0.1:") != NULL,
                  "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "Wr0ngPw") == NULL, "password shown: %s",
                  err.msg);

    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "NOAUTH") != NULL, "%s", err.msg);

    snprintf(uri, sizeof uri, "redis://someone@127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "no password") != NULL, "%s", err.msg);

    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d", s.port);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "pw")), 1);
    idp_close(c);
    /* Redis 6 ACL form, as the default user */
    snprintf(uri, sizeof uri, "redis://default:s3cret@127.0.0.1:%d", s.port);
    c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_get(c, "pw", NULL), 1);   /* 2..256 given back */
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_unix_socket_takes_db_parameter)
{
    server s;
    char dir[PATH_MAX], sock[PATH_MAX + 16], extra[PATH_MAX + 64];
    char uri[PATH_MAX + 64];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    snprintf(sock, sizeof sock, "%s/r.sock", dir);
    snprintf(extra, sizeof extra, "--unixsocket %s --unixsocketperm 700", sock);
    start_redis(&s, extra);

    snprintf(uri, sizeof uri, "redis://%s?db=2", sock);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "sock")), 1);
    idp_close(c);
    /* the same counter seen over TCP in db 2 (at 1: the close gave back
     * 2..256), absent from db 0 */
    c = server_open(&s, "/2", &with_log);
    ck_assert_uint_eq(tu_get(c, "sock", NULL), 1);
    idp_close(c);
    c = server_open(&s, NULL, &with_log);
    int exists = 1;
    tu_get(c, "sock", &exists);
    ck_assert_int_eq(exists, 0);
    idp_close(c);

    idp_error err;
    snprintf(uri, sizeof uri, "redis://%s.missing", sock);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "unix socket") != NULL &&
                  strstr(err.msg, "r.sock.missing") != NULL, "%s", err.msg);
    server_stop(&s, 0);
    unlink(sock);
    rmdir(dir);
}
END_TEST

/* ---- Operations ---------------------------------------------------------- */

START_TEST(test_raise_never_lowers)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?batch=10", &with_log);
    idp_error err;
    uint64_t r = 0;
    ck_assert_int_eq(idp_raise(c, "r", 100, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_int_eq(idp_raise(c, "r", 50, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_uint_eq(tu_get(c, "r", NULL), 100);
    ck_assert_uint_eq(tu_next(tu_counter(c, "r")), 101);
    ck_assert_int_eq(idp_raise(c, "r", 105, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 110);

    /* exact above 2^53, where Lua's doubles are not */
    ck_assert_int_eq(idp_raise(c, "p", 9007199254740993u, &r, &err), IDP_OK);
    ck_assert_int_eq(idp_raise(c, "p", 9007199254740992u, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 9007199254740993u);
    ck_assert_int_eq(idp_raise(c, "p", IDP_MAX_VALUE, &r, &err), IDP_OK);
    ck_assert_uint_eq(tu_get(c, "p", NULL), IDP_MAX_VALUE);
    int rc = idp_raise(c, "p", IDP_MAX_VALUE + 1, &r, &err);
    ck_assert_msg(rc == IDP_ERANGE || rc == IDP_EINVAL, "%d: %s", rc, err.msg);
    ck_assert_uint_eq(tu_get(c, "p", NULL), IDP_MAX_VALUE);

    raw(&s, NULL, "SET junk abc", out, sizeof out);
    rc = idp_raise(c, "junk", 5, &r, &err);
    ck_assert_msg(rc == IDP_ESTORE && strstr(err.msg, "junk") != NULL,
                  "%d: %s", rc, err.msg);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_list_finds_counters_under_prefix)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    /* '*' must match itself only: "g*:" must not list "gX:c" */
    idp_client *g = server_open(&s, "?prefix=g*:&batch=10", &with_log);
    idp_client *x = server_open(&s, "?prefix=gX:&batch=10", &with_log);
    uint64_t last;
    ck_assert_int_eq(idp_incr(tu_counter(g, "a"), 3, &last, NULL), IDP_OK);
    tu_next(tu_counter(g, "b"));
    tu_next(tu_counter(x, "c"));
    raw(&s, NULL, "SET g*:junk abc", out, sizeof out);
    log_clear();

    tu_listed got = {0};
    idp_error err;
    ck_assert_int_eq(idp_list(g, tu_listed_cb, &got, &err), IDP_OK);
    ck_assert_int_eq(got.n, 2);
    ck_assert_int_ge(tu_listed_find(&got, "a"), 0);
    ck_assert_int_ge(tu_listed_find(&got, "b"), 0);
    ck_assert_uint_eq(got.values[tu_listed_find(&got, "a")], 10);
    ck_assert_uint_eq(got.values[tu_listed_find(&got, "b")], 10);
    ck_assert_msg(log_has("1:redis plugin: 'g*:junk'"), "%s", log_text);

    memset(&got, 0, sizeof got);
    ck_assert_int_eq(idp_list(x, tu_listed_cb, &got, &err), IDP_OK);
    ck_assert_int_eq(got.n, 1);
    ck_assert_str_eq(got.names[0], "c");
    idp_close(g);
    idp_close(x);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_get_missing_counter_gives_exists_0)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    uint64_t v = 77;
    int exists = 1;
    idp_error err;
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(exists, 0);

    raw(&s, NULL, "SET junk abc", out, sizeof out);
    int rc = idp_get(c, "junk", &v, &exists, &err);
    ck_assert_int_eq(rc, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "'junk'") != NULL, "%s", err.msg);
    rc = idp_next(tu_counter(c, "junk"), &v, &err);
    ck_assert_int_eq(rc, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "'junk'") != NULL, "%s", err.msg);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Warnings ------------------------------------------------------------ */

/* Opens a client on a fresh server started with `extra`, asserts that the
 * log holds head + "127.0.0.1:PORT" + tail and not `unwanted`, and that the
 * client works. */
static void check_open_log(const char *extra, const char *head,
                           const char *tail, const char *unwanted)
{
    server s;
    char line[256];
    start_redis(&s, extra);
    log_clear();
    idp_client *c = server_open(&s, NULL, &with_log);
    snprintf(line, sizeof line, "%s127.0.0.1:%d%s", head, s.port, tail);
    ck_assert_msg(log_has(line), "no '%s' in the log:%s", line, log_text);
    ck_assert_msg(!log_has(unwanted), "'%s' in the log:%s", unwanted,
                  log_text);
    ck_assert_uint_eq(tu_next(tu_counter(c, "w")), 1);
    idp_close(c);
    server_stop(&s, 0);
}

START_TEST(test_persistence_off_is_warned)
{
    /* the harness's default: --save '' --appendonly no */
    check_open_log(NULL, "\n1:redis plugin: ", " has persistence off (save "
                   "\"\" and appendonly no)", "maxmemory-policy");
}
END_TEST

START_TEST(test_eviction_policy_is_warned)
{
    check_open_log("--maxmemory-policy allkeys-lru --appendonly yes",
                   "\n1:redis plugin: ", " has maxmemory-policy allkeys-lru",
                   "persistence off");
}
END_TEST

START_TEST(test_disabled_config_is_logged_not_fatal)
{
    check_open_log("--rename-command CONFIG ''",
                   "\n2:redis plugin: could not check the eviction policy "
                   "and persistence of ", ": CONFIG GET answered", "\n1:");
}
END_TEST

/* ---- What a failure says ------------------------------------------------ */

/*
 * wait_replicas with timeout_ms=300 gives WAIT 100 ms of it (the rest is
 * kept for the answer, which Redis sends at its next tick, up to 100 ms
 * late): the message says so, and how long the answer really took, rather
 * than a bare "within 100 ms" that contradicts the timeout_ms the user set.
 */
START_TEST(test_short_wait_tells_its_timeout_and_the_time_taken)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?wait_replicas=1&timeout_ms=300",
                                &with_log);
    idp_error err;
    uint64_t id = 0;
    long long t0 = tu_now_ms();
    ck_assert_int_eq(idp_next(tu_counter(c, "w"), &id, &err), IDP_ETIMEOUT);
    long long took = tu_now_ms() - t0;
    ck_assert_msg(strstr(err.msg, "only 0 of 1 replicas acknowledged") &&
                  strstr(err.msg, "within 100 ms, WAIT's timeout "
                         "(timeout_ms=300 less 200; answered in "), "%s",
                  err.msg);
    long long answered = atoll(strstr(err.msg, "answered in ") + 12);
    ck_assert_msg(answered >= 100 && answered <= took, "answered in %lld "
                  "ms, the call took %lld ms: %s", answered, took, err.msg);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* A prime= of several counters is one pipeline; the one that fails is
 * named with Redis's own reason. */
START_TEST(test_failed_prime_names_the_store_reason)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    raw(&s, NULL, "HSET hashed f 1", out, sizeof out);
    ck_assert_str_eq(out, ":1");
    raw(&s, NULL, "SET texted abc", out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    idp_error err;
    ck_assert_ptr_null(try_open(redis_uri(&s, "?prime=ok1,hashed,ok2"),
                                &err));
    ck_assert_msg(strstr(err.msg, "counter 'hashed'") != NULL &&
                  strstr(err.msg, "WRONGTYPE Operation against a key") !=
                      NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "?prime=ok1,texted"), &err));
    ck_assert_msg(strstr(err.msg, "counter 'texted'") != NULL &&
                  strstr(err.msg, "not an integer") != NULL, "%s", err.msg);
    server_stop(&s, 0);
}
END_TEST

int main(void)
{
    const TTest *ids[] = {
        test_first_ids_are_1_2_3, test_first_ids_are_1_2_3_without_batching,
        test_no_duplicate_across_4_processes_x_2_threads,
        test_store_counts_one_incrby_per_batch, NULL};
    const TTest *failures[] = {
        test_killed_client_never_repeats_an_id,
        test_stopped_server_fails_within_timeout_and_recovers,
        test_hung_server_times_out_and_recovers,
        test_store_regression_is_refused,
        test_reconnect_reapplies_auth_and_select,
        test_reaching_2_63_is_an_error_never_a_wrap, NULL};
    const TTest *uris[] = {
        test_closed_port_is_named, test_bad_db_number_is_named,
        test_non_numeric_db_path_is_refused, test_several_hosts_are_refused,
        test_password_is_checked, test_unix_socket_takes_db_parameter, NULL};
    const TTest *operations[] = {
        test_raise_never_lowers, test_list_finds_counters_under_prefix,
        test_get_missing_counter_gives_exists_0, NULL};
    const TTest *warnings[] = {
        test_persistence_off_is_warned, test_eviction_policy_is_warned,
        test_disabled_config_is_logged_not_fatal, NULL};
    const TTest *messages[] = {
        test_short_wait_tells_its_timeout_and_the_time_taken,
        test_failed_prime_names_the_store_reason, NULL};
    const tu_case cases[] = {
        {.name = "ids", .tests = ids}, {.name = "failures", .tests = failures},
        {.name = "uris", .tests = uris},
        {.name = "operations", .tests = operations},
        {.name = "warnings", .tests = warnings},
        {.name = "messages", .tests = messages}, {.name = NULL}};
    return tu_run(tu_suite("redis", 120, cases));
}
