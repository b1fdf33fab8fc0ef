/*
 * test_postgresql.c - the postgresql store against a real postgres (a
 * fresh initdb per test, harness_postgresql.c), through the public API:
 * one test per promise of docs/design.md, asserting values.
 *
 * What the server itself holds (a counter's value, the table's types, the
 * increments it executed, its backends) is read with libpq directly, on a
 * connection of the test's own, so the test checks the server, not what
 * the plugin says about it. Faults hit every process of the server: a
 * postmaster alone stopped or killed would leave its backends serving.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "sql_helpers.h"
#include "testutil.h"

/* ---- Messages (the log is in sql_helpers.c) ----------------------------- */

static void msg_has(const idp_error *err, const char *want)
{
    ck_assert_msg(strstr(err->msg, want) != NULL,
                  "message '%s' does not contain '%s'", err->msg, want);
}

/* ---- The server --------------------------------------------------------- */

static void start_pg(server *s, const char *extra)
{
    ck_assert_msg(server_start(s, "postgresql", extra) == 0,
                  "postgres did not start (extra \"%s\")",
                  extra != NULL ? extra : "");
}

static const char *pg_uri(const server *s, const char *query)
{
    static char uri[512];
    return server_uri(s, query, uri, sizeof uri);
}

/* ---- The server, read with libpq directly ------------------------------- */

static PGconn *raw_open(const server *s)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *kw[] = {"host", "port", "user", "dbname", "sslmode",
                        "application_name", NULL};
    const char *val[] = {"127.0.0.1", port, "postgres", "postgres",
                         "disable", "idprime-test", NULL};
    PGconn *c = PQconnectdbParams(kw, val, 0);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "libpq: %s",
                  PQerrorMessage(c));
    return c;
}

/* Runs sql; fails the test unless it succeeds. Returns the first column
 * of the first row ("" when none) in a static buffer. */
static const char *raw_text(PGconn *c, const char *sql)
{
    static char out[256];
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK,
                  "%s: %s", sql, PQresultErrorMessage(r));
    snprintf(out, sizeof out, "%s", st == PGRES_TUPLES_OK &&
             PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

static uint64_t raw_u64(PGconn *c, const char *sql)
{
    return strtoull(raw_text(c, sql), NULL, 10);
}

/* The SQLSTATE sql fails with ("" when it succeeds), in a static buffer. */
static const char *raw_state(PGconn *c, const char *sql)
{
    static char out[8];
    PGresult *r = PQexec(c, sql);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(out, sizeof out, "%s", st != NULL ? st : "");
    PQclear(r);
    return out;
}

/* One query on a connection of its own. */
static uint64_t server_u64(const server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static uint64_t server_u64(const server *s, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGconn *c = raw_open(s);
    uint64_t v = raw_u64(c, sql);
    PQfinish(c);
    return v;
}

/* The counter's value as the server holds it (0 when missing). */
static uint64_t value_on(const server *s, const char *key)
{
    return server_u64(s, "SELECT coalesce((SELECT value FROM idprime_counters"
                      " WHERE name = '%s'), 0)", key);
}

/* The increments the server executed (the sequence the plugin reads). */
static uint64_t increments_on(const server *s)
{
    return server_u64(s, "SELECT CASE WHEN is_called THEN last_value ELSE 0 "
                      "END FROM idprime_increments");
}

/* The backend pids of idprime's connections, in pids (at most 8). */
static int idprime_backends(const server *s, int *pids)
{
    PGconn *c = raw_open(s);
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE "
                         "application_name = 'idprime' ORDER BY pid");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    int n = PQntuples(r) < 8 ? PQntuples(r) : 8;
    for (int i = 0; i < n; i++)
        pids[i] = atoi(PQgetvalue(r, i, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

/* ---- IDs ---------------------------------------------------------------- */

START_TEST(test_ids_are_contiguous_per_batch)
{
    server s;
    start_pg(&s, NULL);
    const char *q = "?batch=100&low_watermark=0&adaptive=0";
    idp_client *a = server_open(&s, q, &with_log);
    idp_client *b = server_open(&s, q, &with_log);
    idp_counter *ca = tu_counter(a, "ids"), *cb = tu_counter(b, "ids");
    /* a takes 1..100 in one batch, b the next batch 101..200, then a the
     * one after: each batch whole and in order */
    for (uint64_t want = 1; want <= 100; want++)
        ck_assert_uint_eq(tu_next(ca), want);
    ck_assert_uint_eq(value_on(&s, "ids"), 100);
    for (uint64_t want = 101; want <= 150; want++)
        ck_assert_uint_eq(tu_next(cb), want);
    ck_assert_uint_eq(value_on(&s, "ids"), 200);
    ck_assert_uint_eq(tu_next(ca), 201);
    ck_assert_uint_eq(tu_get(a, "ids", NULL), 300);

    /* incr: INCRBY through the engine, the last of n contiguous IDs */
    uint64_t last = 0;
    idp_error err;
    ck_assert_int_eq(idp_incr(cb, 10, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 160);
    idp_close(a);
    idp_close(b);

    /* without batching every ID is one increment, the store at the ID */
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *cc = tu_counter(c, "legacy");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(tu_next(cc), want);
        ck_assert_uint_eq(value_on(&s, "legacy"), want);
    }
    ck_assert_int_eq(idp_incr(cc, 10, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, 15);
    int exists = 0;
    ck_assert_uint_eq(tu_get(c, "missing", &exists), 0);
    ck_assert_int_eq(exists, 0);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_postgres_scheme_is_the_same_store)
{
    server s;
    start_pg(&s, NULL);
    char uri[256];
    snprintf(uri, sizeof uri, "postgres://postgres@127.0.0.1:%d/postgres",
             s.port);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_str_eq(idp_client_store(c), "postgresql");
    ck_assert_uint_eq(tu_next(tu_counter(c, "inode")), 1);
    idp_close(c);
    /* in the server's table, at 1: the close gave back 2..256 */
    ck_assert_uint_eq(value_on(&s, "inode"), 1);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_table_holds_only_counter_values)
{
    server s;
    start_pg(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    tu_next(tu_counter(c, "t"));
    idp_close(c);
    PGconn *p = raw_open(&s);
    ck_assert_str_eq(raw_text(p, "SELECT string_agg(column_name || ' ' || "
                              "data_type || ' ' || is_nullable, ', ' ORDER BY "
                              "ordinal_position) FROM information_schema."
                              "columns WHERE table_name = 'idprime_counters'"),
                     "name text NO, value bigint NO");
    ck_assert_str_eq(raw_text(p, "SELECT string_agg(pg_get_constraintdef(oid),"
                              " ', ' ORDER BY contype) FROM pg_constraint "
                              "WHERE conrelid = 'idprime_counters'::regclass"),
                     "CHECK ((value >= 0)), PRIMARY KEY (name)");
    /* nothing but a counter value gets in: negative, text, 2^63 */
    ck_assert_str_eq(raw_state(p, "UPDATE idprime_counters SET value = -1"),
                     "23514");
    ck_assert_str_eq(raw_state(p, "UPDATE idprime_counters SET value = 'x'"),
                     "22P02");
    ck_assert_str_eq(raw_state(p, "UPDATE idprime_counters SET value = "
                               "9223372036854775808"), "22003");
    /* still the 1 the close left (it gave back 2..256) */
    ck_assert_str_eq(raw_text(p, "SELECT value FROM idprime_counters"), "1");
    PQfinish(p);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    server s;
    start_pg(&s, NULL);
    char uri[512];
    /* give_back=0: the closes keep every batch whole, so the server's
     * value below counts the batches */
    server_uri(&s, "?batch=64&adaptive=0&give_back=0", uri, sizeof uri);
    /* the children fork before this process opens any client, and all
     * four create the table at once on the fresh server */
    const tu_fanout f = {.uri = uri, .counter = "shared", .procs = 4,
                         .threads = 2, .per_thread = 25000};
    size_t n = 0;
    uint64_t calls = 0;
    uint64_t *all = tu_fanout_ids(&f, &n, &calls);   /* all distinct */
    ck_assert_uint_eq(n, 200000);
    /* the server is past every ID handed out, and counted every fetch of
     * every process: each added one batch of 64 */
    uint64_t value = value_on(&s, "shared"), inc = increments_on(&s);
    ck_assert_uint_ge(value, all[n - 1]);
    ck_assert_uint_eq(value, inc * 64);
    /* the engines counted the same fetches, but for one per process that
     * may still have been in flight when a child read its stats */
    ck_assert_uint_ge(inc, calls);
    ck_assert_uint_le(inc, calls + (uint64_t)f.procs);
    ck_assert_uint_ge(calls, (200000 + 63) / 64);
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* ---- Round trips -------------------------------------------------------- */

START_TEST(test_store_counts_one_increment_per_batch)
{
    server s;
    start_pg(&s, NULL);
    /* low_watermark=0: a fetch only when the pool is empty, so N IDs take
     * exactly ceil(N / batch) fetches; give_back=0: the closes leave the
     * store at the end of the last batch, where the legacy client goes on */
    idp_client *a = server_open(&s, "?batch=100&low_watermark=0&adaptive=0"
                                "&give_back=0", &with_log);
    idp_client *b = server_open(&s, "?batch=64&low_watermark=0&adaptive=0"
                                "&give_back=0", &with_log);
    idp_counter *ca = tu_counter(a, "files"), *cb = tu_counter(b, "files");
    for (int i = 0; i < 1001; i++)
        tu_next(ca);
    for (int i = 0; i < 200; i++)
        tu_next(cb);
    ck_assert_uint_eq(prime_calls(ca), 11);   /* ceil(1001 / 100) */
    ck_assert_uint_eq(prime_calls(cb), 4);    /* ceil(200 / 64) */
    uint64_t rt = 0;
    idp_error err;
    ck_assert_int_eq(idp_store_roundtrips(b, &rt, &err), IDP_OK);
    ck_assert_uint_eq(rt, 11 + 4);
    ck_assert_uint_eq(increments_on(&s), 11 + 4);
    ck_assert_uint_eq(value_on(&s, "files"), 11 * 100 + 4 * 64);
    /* a raise and a read are no increments */
    ck_assert_int_eq(idp_raise(a, "other", 5, NULL, &err), IDP_OK);
    tu_get(a, "files", NULL);
    idp_close(a);
    idp_close(b);

    idp_client *legacy = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *cl = tu_counter(legacy, "files");
    for (int i = 0; i < 7; i++)
        ck_assert_uint_eq(tu_next(cl), 11 * 100 + 4 * 64 + (uint64_t)i + 1);
    ck_assert_uint_eq(prime_calls(cl), 7);
    ck_assert_int_eq(idp_store_roundtrips(legacy, &rt, &err), IDP_OK);
    ck_assert_uint_eq(rt, 11 + 4 + 7);
    idp_close(legacy);
    server_stop(&s, 0);
}
END_TEST

/* Polls until the backend of idprime's client waits for a lock. */
static void wait_for_lock_wait(const server *s)
{
    long long deadline = tu_now_ms() + 10000;
    while (server_u64(s, "SELECT count(*) FROM pg_stat_activity WHERE "
                      "application_name = 'idprime' AND wait_event_type = "
                      "'Lock'") == 0) {
        ck_assert_msg(tu_now_ms() < deadline, "idprime's statement never "
                      "waited for the row lock");
        tu_sleep_ms(10);
    }
}

START_TEST(test_several_counters_fetched_in_one_statement)
{
    server s;
    /* pg_stat_statements: the server's own count of each statement's
     * executions and of the rows they touched */
    start_pg(&s, "-c shared_preload_libraries=pg_stat_statements");
    PGconn *p = raw_open(&s);
    raw_text(p, "CREATE EXTENSION pg_stat_statements");
    enum { NCTR = 8 };
    idp_client *c = server_open(&s, "?batch=10&low_watermark=50&adaptive=0"
                                "&timeout_ms=20000", &with_log);
    idp_counter *ctr[NCTR];
    char name[NCTR][8];
    for (int k = 0; k < NCTR; k++) {
        snprintf(name[k], sizeof name[k], "c%d", k);
        ctr[k] = tu_counter(c, name[k]);
        ck_assert_uint_eq(tu_next(ctr[k]), 1);   /* one fetch each: 1..10 */
    }
    raw_text(p, "SELECT pg_stat_statements_reset()");

    /* The test holds c0's row: the background fetch c0's watermark starts
     * waits on the server, and meanwhile the other seven counters reach
     * theirs and queue. When the row is let go, the worker fetches the
     * seven together. IDs 2..7 leave 3 of 10, below the watermark of 5,
     * without emptying a pool: no caller waits. */
    raw_text(p, "BEGIN");
    raw_text(p, "SELECT value FROM idprime_counters WHERE name = 'c0' "
             "FOR UPDATE");
    for (uint64_t want = 2; want <= 7; want++)
        ck_assert_uint_eq(tu_next(ctr[0]), want);
    wait_for_lock_wait(&s);
    for (int k = 1; k < NCTR; k++)
        for (uint64_t want = 2; want <= 7; want++)
            ck_assert_uint_eq(tu_next(ctr[k]), want);
    raw_text(p, "COMMIT");

    long long deadline = tu_now_ms() + 10000;
    while (increments_on(&s) < 2 * NCTR && tu_now_ms() < deadline)
        tu_sleep_ms(10);
    ck_assert_uint_eq(increments_on(&s), 2 * NCTR);
    /* c0 alone, then the seven in one statement of seven rows */
    ck_assert_str_eq(raw_text(p, "SELECT string_agg(calls || ' call, ' || rows"
                              " || ' rows', '; ') FROM pg_stat_statements "
                              "WHERE query LIKE '%unnest%' AND query LIKE "
                              "'%INSERT%'"), "1 call, 7 rows");
    ck_assert_str_eq(raw_text(p, "SELECT sum(calls) FROM pg_stat_statements "
                              "WHERE query LIKE '%INSERT%'"), "2");
    uint64_t calls = 0, rt = 0;
    for (int k = 0; k < NCTR; k++) {
        ck_assert_uint_eq(prime_calls(ctr[k]), 2);
        calls += prime_calls(ctr[k]);
        ck_assert_uint_eq(value_on(&s, name[k]), 20);
    }
    ck_assert_int_eq(idp_store_roundtrips(c, &rt, NULL), IDP_OK);
    ck_assert_uint_eq(rt, calls);
    /* and every ID still comes in order, the second batch after the first */
    for (int k = 0; k < NCTR; k++)
        for (uint64_t want = 8; want <= 20; want++)
            ck_assert_uint_eq(tu_next(ctr[k]), want);
    idp_close(c);
    PQfinish(p);
    server_stop(&s, 0);
}
END_TEST

/* ---- Failures ----------------------------------------------------------- */

START_TEST(test_killed_client_never_repeats_an_id)
{
    server s;
    start_pg(&s, NULL);
    char uri[512];
    server_uri(&s, "?batch=50", uri, sizeof uri);
    uint64_t *all = NULL, highest = 0;
    size_t n = 0;
    for (int round = 0; round < 3; round++) {
        size_t start = n;
        ck_assert_uint_gt(tu_take_then_kill(uri, "crash", 301, &all, &n), 300);
        ck_assert_msg(all[start] > highest, "round %d began at %" PRIu64
                      ", at or below %" PRIu64, round, all[start], highest);
        for (size_t i = start; i < n; i++)
            highest = all[i] > highest ? all[i] : highest;
    }
    idp_client *c = server_open(&s, NULL, &with_log);
    ck_assert_uint_gt(tu_next(tu_counter(c, "crash")), highest);
    idp_close(c);
    tu_assert_distinct(all, n);
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* What the taker thread of the crash test saw. */
typedef struct taker {
    idp_counter *ctr;
    pthread_mutex_t mu;
    int stop;
    uint64_t *ids;
    size_t n, cap;
    int errors, regressions, other_codes;
    long long slowest_error_ms;
    char last_error[256];
} taker;

static size_t taker_count(taker *t, int *errors)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    if (errors != NULL)
        *errors = t->errors;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void *take_loop(void *arg)
{
    taker *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int stop = t->stop || t->n == t->cap;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            return NULL;
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(t->ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        pthread_mutex_lock(&t->mu);
        if (rc == IDP_OK) {
            t->ids[t->n++] = id;
        } else {
            t->errors++;
            t->regressions += rc == IDP_EREGRESS;
            t->other_codes += rc != IDP_ESTORE && rc != IDP_ETIMEOUT;
            if (dt > t->slowest_error_ms)
                t->slowest_error_ms = dt;
            snprintf(t->last_error, sizeof t->last_error, "%s", err.msg);
        }
        pthread_mutex_unlock(&t->mu);
        if (rc != IDP_OK)
            tu_sleep_ms(5);   /* a down server: do not spin */
    }
}

/* Waits until pred(t) holds, at most ms. */
static void wait_taker(taker *t, size_t ids, int errors, int ms)
{
    long long deadline = tu_now_ms() + ms;
    for (;;) {
        int e;
        size_t n = taker_count(t, &e);
        if (n >= ids && e >= errors)
            return;
        ck_assert_msg(tu_now_ms() < deadline, "the taker has %zu IDs and %d "
                      "errors, waited for %zu and %d: %s", n, e, ids, errors,
                      t->last_error);
        tu_sleep_ms(5);
    }
}

START_TEST(test_server_crash_mid_run_then_restart)
{
    server s;
    start_pg(&s, NULL);
    /* every ID one commit, so the crash hits increments in flight */
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=1000",
                                &with_log);
    taker t = {.ctr = tu_counter(c, "crash"), .cap = 1000000};
    pthread_mutex_init(&t.mu, NULL);
    t.ids = malloc(t.cap * sizeof *t.ids);
    ck_assert_ptr_nonnull(t.ids);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, take_loop, &t), 0);

    wait_taker(&t, 300, 0, 20000);
    crash_all(&s);
    int e0;
    size_t before = taker_count(&t, &e0);
    wait_taker(&t, 0, e0 + 5, 20000);   /* calls fail while it is down */
    size_t down = taker_count(&t, NULL);
    ck_assert_int_eq(server_restart(&s), 0);
    wait_taker(&t, down + 300, 0, 20000);   /* and work again after */
    pthread_mutex_lock(&t.mu);
    t.stop = 1;
    pthread_mutex_unlock(&t.mu);
    pthread_join(th, NULL);

    /* a lost increment is a gap, never retried: no ID twice, none lower
     * than one before it, none refused as a regression */
    ck_assert_int_eq(t.regressions, 0);
    ck_assert_msg(t.other_codes == 0, "unexpected error: %s", t.last_error);
    ck_assert_msg(t.slowest_error_ms <= 5 * 1000, "a failing call took %lld "
                  "ms", t.slowest_error_ms);
    ck_assert_uint_eq(down, before);   /* nothing served while down */
    for (size_t i = 1; i < t.n; i++)
        ck_assert_msg(t.ids[i] > t.ids[i - 1], "ID %" PRIu64 " after %"
                      PRIu64, t.ids[i], t.ids[i - 1]);
    /* the crash lost no committed increment, and the one in flight, if
     * any, was not sent again: the first ID after the restart is the next
     * one, or the one after a lost increment */
    ck_assert_uint_ge(t.ids[down] - t.ids[down - 1], 1);
    ck_assert_uint_le(t.ids[down] - t.ids[down - 1], 2);
    ck_assert_uint_eq(value_on(&s, "crash"), t.ids[t.n - 1]);
    idp_close(c);
    tu_assert_distinct(t.ids, t.n);
    free(t.ids);
    pthread_mutex_destroy(&t.mu);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_hung_server_times_out_and_recovers)
{
    server s;
    start_pg(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=500", &with_log);
    idp_counter *ctr = tu_counter(c, "hung");
    ck_assert_uint_eq(tu_next(ctr), 1);

    hang_all(&s);
    for (int i = 0; i < 3; i++) {   /* the old connection, then new ones */
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        ck_assert_msg(rc == IDP_ETIMEOUT, "call %d on a hung server gave %d: "
                      "%s", i, rc, err.msg);
        ck_assert_msg(dt >= 450 && dt <= 5 * 500, "call %d took %lld ms", i,
                      dt);
        msg_has(&err, "timeout_ms=500");
        ck_assert_uint_eq(id, 0);
    }
    /* so does an open */
    idp_error err;
    long long t0 = tu_now_ms();
    ck_assert_ptr_null(try_open(pg_uri(&s, "?timeout_ms=500"), &err));
    long long dt = tu_now_ms() - t0;
    ck_assert_int_eq(err.code, IDP_ETIMEOUT);
    ck_assert_msg(dt <= 5 * 500, "the open took %lld ms", dt);
    msg_has(&err, "timeout_ms=500");
    resume_all(&s);

    /* the first timed-out increment (the only one sent) may still run
     * once the server wakes, before or after the next call's: a gap,
     * never handed out; the IDs after it are never below what was held */
    uint64_t id = tu_next(ctr);
    ck_assert_uint_ge(id, 2);
    ck_assert_uint_le(id, 3);
    uint64_t v = value_on(&s, "hung");
    ck_assert_uint_ge(v, id);
    ck_assert_uint_le(v, 3);
    ck_assert_uint_gt(tu_next(ctr), id);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

typedef struct one_call {
    idp_counter *ctr;
    int rc;
    uint64_t id;
    idp_error err;
} one_call;

static void *call_next(void *arg)
{
    one_call *o = arg;
    o->rc = idp_next(o->ctr, &o->id, &o->err);
    return NULL;
}

START_TEST(test_dropped_connection_reconnects_without_retrying)
{
    server s;
    start_pg(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=10000",
                                &with_log);
    idp_counter *ctr = tu_counter(c, "drop");
    ck_assert_uint_eq(tu_next(ctr), 1);
    int pids[8], again[8];
    ck_assert_int_eq(idprime_backends(&s, pids), 1);

    /* closed while idle: reopened before anything is sent, no error */
    /* (the timeout: it returns once the backend is gone) */
    ck_assert_uint_eq(server_u64(&s, "SELECT pg_terminate_backend(%d, "
                                 "5000)::int", pids[0]), 1);
    ck_assert_uint_eq(tu_next(ctr), 2);
    ck_assert_int_eq(idprime_backends(&s, again), 1);
    ck_assert_int_ne(again[0], pids[0]);

    /* closed while an increment waits on the server: an error, and the
     * increment is not sent again */
    PGconn *p = raw_open(&s);
    raw_text(p, "BEGIN");
    raw_text(p, "SELECT value FROM idprime_counters WHERE name = 'drop' "
             "FOR UPDATE");
    one_call o = {.ctr = ctr};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, call_next, &o), 0);
    wait_for_lock_wait(&s);
    ck_assert_uint_eq(server_u64(&s, "SELECT pg_terminate_backend(%d, "
                                 "5000)::int", again[0]), 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(o.rc, IDP_ESTORE);
    msg_has(&o.err, "reopened on the next call");
    raw_text(p, "COMMIT");
    PQfinish(p);
    ck_assert_uint_eq(value_on(&s, "drop"), 2);
    ck_assert_uint_eq(tu_next(ctr), 3);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_reaching_2_63_is_an_error_never_a_wrap)
{
    server s;
    start_pg(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_error err;
    /* the table exists once a client opened */
    PGconn *p = raw_open(&s);
    raw_text(p, "INSERT INTO idprime_counters VALUES "
             "('big', 9223372036854775797), ('big2', 9223372036854775797),"
             " ('big3', 9223372036854775797)");
    PQfinish(p);
    idp_counter *ctr = tu_counter(c, "big");
    for (uint64_t want = 9223372036854775798u; want <= IDP_MAX_VALUE; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    uint64_t id = 0;
    int rc = idp_next(ctr, &id, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    msg_has(&err, "2^63");
    ck_assert_uint_eq(value_on(&s, "big"), IDP_MAX_VALUE);

    /* an incr past it: refused, the value as it was */
    uint64_t last = 0;
    rc = idp_incr(tu_counter(c, "big2"), 20, &last, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    ck_assert_uint_eq(value_on(&s, "big2"), 9223372036854775797u);
    rc = idp_raise(c, "big2", IDP_MAX_VALUE + 1, &last, &err);
    ck_assert_msg(rc == IDP_ERANGE || rc == IDP_EINVAL, "%d: %s", rc,
                  err.msg);
    ck_assert_uint_eq(value_on(&s, "big2"), 9223372036854775797u);
    idp_close(c);

    /* a batch past it, fetched alone and several at once */
    c = server_open(&s, "?batch=256", &with_log);
    rc = idp_next(tu_counter(c, "big3"), &id, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    msg_has(&err, "'big3'");
    ck_assert_uint_eq(value_on(&s, "big3"), 9223372036854775797u);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- URIs --------------------------------------------------------------- */

START_TEST(test_bad_uris_are_named)
{
    server s;
    start_pg(&s, NULL);
    idp_error err;
    ck_assert_ptr_null(try_open(pg_uri(&s, "?bogus=1"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "bogus");

    ck_assert_ptr_null(try_open(pg_uri(&s, "?synchronous_commit=sometimes"),
                                &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "synchronous_commit");
    msg_has(&err, "remote_apply");

    char uri[256], want[128];
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/nosuchdb",
             s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    msg_has(&err, "\"nosuchdb\" does not exist");

    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/a/b",
             s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "'/a/b'");

    ck_assert_ptr_null(try_open("postgresql:///postgres", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "no host");

    int port = harness_free_port();
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/postgres",
             port);
    snprintf(want, sizeof want, "postgresql plugin: unable to connect to "
             "127.0.0.1:%d/postgres: Connection refused", port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    msg_has(&err, want);

    /* a password is never shown */
    snprintf(uri, sizeof uri, "postgresql://nobody_here:s3cret@127.0.0.1:%d/"
             "postgres", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    msg_has(&err, "nobody_here");
    ck_assert_msg(strstr(err.msg, "s3cret") == NULL, "password shown: %s",
                  err.msg);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_hosts_in_order_and_unix_socket)
{
    server s;
    start_pg(&s, NULL);
    /* the first host refuses: the second serves */
    char uri[PATH_MAX + 128];
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d,"
             "127.0.0.1:%d/postgres?batch=10", harness_free_port(), s.port);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "multi")), 1);
    idp_close(c);
    ck_assert_uint_eq(value_on(&s, "multi"), 1);   /* 2..10 given back */

    /* the socket directory as a percent-encoded host */
    char enc[PATH_MAX * 3];
    size_t at = 0;
    for (const char *p = s.dir; *p != '\0'; p++)
        at += (size_t)snprintf(enc + at, sizeof enc - at, *p == '/' ? "%%2F"
                               : "%c", *p);
    snprintf(uri, sizeof uri, "postgresql://postgres@%s:%d/postgres?batch=10",
             enc, s.port);
    c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "multi")), 2);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Durability warnings ------------------------------------------------ */

/* Opens a client with `query` on a fresh server started with `extra`,
 * asserts that the log has `want` (NULL: no warning at all), and that the
 * client works. */
static void check_open_log(const char *extra, const char *query,
                           const char *want)
{
    server s;
    start_pg(&s, extra);
    log_clear();
    idp_client *c = server_open(&s, query, &with_log);
    if (want != NULL)
        ck_assert_msg(log_has(want), "no '%s' in the log:%s", want, log_text);
    else
        ck_assert_msg(!log_has("\n1:"), "a warning:%s", log_text);
    ck_assert_uint_eq(tu_next(tu_counter(c, "w")), 1);
    idp_close(c);
    server_stop(&s, 0);
}

START_TEST(test_durable_server_gives_no_warning)
{
    check_open_log(NULL, NULL, NULL);
    check_open_log(NULL, "?synchronous_commit=remote_apply", NULL);
}
END_TEST

START_TEST(test_fsync_off_is_warned)
{
    check_open_log("-c fsync=off", NULL, "runs with fsync=off");
}
END_TEST

START_TEST(test_synchronous_commit_of_the_uri_is_applied)
{
    /* the URI's setting is the session's, over the server's */
    check_open_log(NULL, "?synchronous_commit=off",
                   "commits with synchronous_commit=off (set by the URI)");
    check_open_log("-c synchronous_commit=off", NULL,
                   "commits with synchronous_commit=off (the server's "
                   "setting)");
    check_open_log("-c synchronous_commit=off", "?synchronous_commit=on",
                   NULL);
}
END_TEST

/* ---- Operations --------------------------------------------------------- */

START_TEST(test_raise_never_lowers)
{
    server s;
    start_pg(&s, NULL);
    idp_client *c = server_open(&s, "?batch=10", &with_log);
    idp_error err;
    uint64_t r = 0;
    ck_assert_int_eq(idp_raise(c, "r", 100, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_int_eq(idp_raise(c, "r", 50, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_uint_eq(value_on(&s, "r"), 100);
    ck_assert_uint_eq(tu_next(tu_counter(c, "r")), 101);
    ck_assert_int_eq(idp_raise(c, "r", 105, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 110);
    ck_assert_int_eq(idp_raise(c, "p", IDP_MAX_VALUE, &r, &err), IDP_OK);
    ck_assert_uint_eq(value_on(&s, "p"), IDP_MAX_VALUE);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_list_finds_counters_by_prefix)
{
    server s;
    start_pg(&s, NULL);
    /* "a_" and "a%" must not act as LIKE wildcards matching "ab" */
    idp_client *u = server_open(&s, "?prefix=a_&batch=10", &with_log);
    idp_client *p = server_open(&s, "?prefix=a%25&batch=20", &with_log);
    idp_client *o = server_open(&s, "?prefix=ab&batch=30", &with_log);
    tu_next(tu_counter(u, "files"));
    tu_next(tu_counter(u, "dirs"));
    tu_next(tu_counter(p, "files"));
    tu_next(tu_counter(o, "files"));
    idp_error err;
    tu_listed l = {0};
    ck_assert_int_eq(idp_list(u, tu_listed_cb, &l, &err), IDP_OK);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.names[0], "dirs");
    ck_assert_uint_eq(l.values[0], 10);
    ck_assert_str_eq(l.names[1], "files");
    ck_assert_uint_eq(l.values[1], 10);
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(idp_list(p, tu_listed_cb, &l, &err), IDP_OK);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.names[0], "files");
    ck_assert_uint_eq(l.values[0], 20);
    idp_close(u);
    idp_close(p);
    idp_close(o);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_foreign_table_values_are_refused)
{
    server s;
    start_pg(&s, NULL);
    PGconn *p = raw_open(&s);
    /* a table of the same name made without the CHECK, holding -5 */
    raw_text(p, "CREATE TABLE idprime_counters (name text PRIMARY KEY, "
             "value bigint NOT NULL)");
    raw_text(p, "INSERT INTO idprime_counters VALUES ('neg', -5)");
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_error err;
    uint64_t v = 0;
    int exists = 0;
    ck_assert_int_eq(idp_get(c, "neg", &v, &exists, &err), IDP_ESTORE);
    msg_has(&err, "'neg'");
    msg_has(&err, "not a counter value");
    ck_assert_int_eq(idp_next(tu_counter(c, "neg"), &v, &err), IDP_ESTORE);
    msg_has(&err, "'neg'");
    ck_assert_uint_eq(tu_next(tu_counter(c, "fine")), 1);
    idp_close(c);

    /* a table of the same name with other types is not used at all */
    raw_text(p, "DROP TABLE idprime_counters");
    raw_text(p, "CREATE TABLE idprime_counters (name text PRIMARY KEY, "
             "value numeric)");
    ck_assert_ptr_null(try_open(pg_uri(&s, NULL), &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    msg_has(&err, "value numeric");
    PQfinish(p);
    server_stop(&s, 0);
}
END_TEST

/* ---- fork --------------------------------------------------------------- */

START_TEST(test_fork_child_never_repeats_and_leaves_the_parent_session)
{
    server s;
    start_pg(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "fork");
    ck_assert_uint_eq(tu_next(ctr), 1);
    int before[8], after[8];
    ck_assert_int_eq(idprime_backends(&s, before), 1);

    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        uint64_t id = 0;
        int rc = idp_next(ctr, &id, NULL);
        idp_close(c);
        tu_write_all(fd[1], &id, sizeof id);
        _exit(rc == IDP_OK ? 0 : 1);
    }
    close(fd[1]);
    uint64_t child = 0;
    ck_assert_int_eq(read(fd[0], &child, sizeof child), (int)sizeof child);
    close(fd[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(child, 2);

    /* the child's connection is gone; the parent's is the one it had,
     * and serves on without reconnecting */
    long long deadline = tu_now_ms() + 5000;
    while (idprime_backends(&s, after) != 1 && tu_now_ms() < deadline)
        tu_sleep_ms(10);
    ck_assert_int_eq(idprime_backends(&s, after), 1);
    ck_assert_int_eq(after[0], before[0]);
    ck_assert_uint_eq(tu_next(ctr), 3);
    ck_assert_int_eq(idprime_backends(&s, after), 1);
    ck_assert_int_eq(after[0], before[0]);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Giving back ------------------------------------------------------- */

typedef struct {
    idp_client *c;
} one_close;

static void *call_close(void *arg)
{
    idp_close(((one_close *)arg)->c);
    return NULL;
}

START_TEST(test_give_back_locks_rows_in_key_order)
{
    server s;
    start_pg(&s, NULL);
    /* 16 counters, fetched from the last key to the first: the table holds
     * them in the reverse of key order (and 16 are enough for the planner
     * to join by scanning the table, in its order) */
    enum { NCTR = 16 };
    log_clear();
    idp_client *c = server_open(&s, "?batch=100&low_watermark=0&adaptive=0"
                                "&timeout_ms=20000", &with_log);
    char name[NCTR][8];
    for (int k = NCTR - 1; k >= 0; k--) {
        snprintf(name[k], sizeof name[k], "g%02d", k);
        ck_assert_uint_eq(tu_next(tu_counter(c, name[k])), 1);
        ck_assert_uint_eq(value_on(&s, name[k]), 100);
    }
    PGconn *p = raw_open(&s);
    ck_assert_str_eq(raw_text(p, "SELECT string_agg(name, ',' ORDER BY ctid) "
                              "FROM idprime_counters WHERE name IN ('g00', "
                              "'g15')"), "g15,g00");

    /* The test holds the first key's row (its value unchanged), so the
     * close's give-back waits for it. Locking in key order, it holds no
     * other row meanwhile, and the test's update of the last key goes
     * through; locking in the table's order, it would hold that row
     * already, and the server would break the deadlock by failing one. */
    raw_text(p, "BEGIN");
    raw_text(p, "UPDATE idprime_counters SET value = value WHERE name = "
             "'g00'");
    one_close o = {.c = c};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, call_close, &o), 0);
    wait_for_lock_wait(&s);
    ck_assert_str_eq(raw_state(p, "UPDATE idprime_counters SET value = value"
                               " WHERE name = 'g15'"), "");
    raw_text(p, "COMMIT");
    pthread_join(th, NULL);
    PQfinish(p);
    ck_assert_msg(!log_has("giving back"), "the give-back failed:%s",
                  log_text);
    /* every counter given back down to the one ID handed out */
    for (int k = 0; k < NCTR; k++)
        ck_assert_msg(value_on(&s, name[k]) == 1, "'%s' holds %" PRIu64
                      " after the close, not 1 (not given back)", name[k],
                      value_on(&s, name[k]));
    server_stop(&s, 0);
}
END_TEST

int main(void)
{
    const TTest *ids[] = {
        test_ids_are_contiguous_per_batch,
        test_postgres_scheme_is_the_same_store,
        test_table_holds_only_counter_values,
        test_no_duplicate_across_4_processes_x_2_threads,
        test_store_counts_one_increment_per_batch,
        test_several_counters_fetched_in_one_statement, NULL};
    const TTest *failures[] = {
        test_killed_client_never_repeats_an_id,
        test_server_crash_mid_run_then_restart,
        test_hung_server_times_out_and_recovers,
        test_dropped_connection_reconnects_without_retrying,
        test_reaching_2_63_is_an_error_never_a_wrap, NULL};
    const TTest *uris[] = {
        test_bad_uris_are_named, test_hosts_in_order_and_unix_socket, NULL};
    const TTest *warnings[] = {
        test_durable_server_gives_no_warning, test_fsync_off_is_warned,
        test_synchronous_commit_of_the_uri_is_applied, NULL};
    const TTest *operations[] = {
        test_raise_never_lowers, test_list_finds_counters_by_prefix,
        test_foreign_table_values_are_refused, NULL};
    const TTest *giveback[] = {test_give_back_locks_rows_in_key_order, NULL};
    const TTest *forks[] = {
        test_fork_child_never_repeats_and_leaves_the_parent_session, NULL};
    const tu_case cases[] = {
        {.name = "ids", .tests = ids}, {.name = "failures", .tests = failures},
        {.name = "uris", .tests = uris},
        {.name = "warnings", .tests = warnings},
        {.name = "operations", .tests = operations},
        {.name = "giveback", .tests = giveback},
        {.name = "fork", .tests = forks}, {.name = NULL}};
    return tu_run(tu_suite("postgresql", 180, cases));
}
