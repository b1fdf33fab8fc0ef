/*
 * test_mysql.c - the mysql store against a real mariadbd, through the
 * public API: one test per promise of docs/design.md, asserting values.
 *
 * Every test starts its own server (harness_mysql.c) on a free loopback
 * port. What the server itself holds (a counter's row, the table's types,
 * its own statement counts, its general log, its connections) is read
 * with libmariadb directly, so the test checks the server, not what the
 * plugin says about it.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mysql.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "sql_helpers.h"
#include "testutil.h"

#define TABLE "idprime_counters"

/* ---- The server, read directly ---------------------------------------- */

static void start_mysql(server *s, const char *extra)
{
    ck_assert_msg(server_start(s, "mysql", extra) == 0,
                  "mariadbd did not start (extra \"%s\")",
                  extra != NULL ? extra : "");
}

static char *uri_of(const server *s, const char *query)
{
    static char uri[512];
    return server_uri(s, query, uri, sizeof uri);
}

/* A connection of the test's own to database idprime. */
static MYSQL *raw_open(const server *s)
{
    MYSQL *m = mysql_init(NULL);
    ck_assert_ptr_nonnull(m);
    unsigned secs = 10, tcp = MYSQL_PROTOCOL_TCP;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &tcp);
    ck_assert_msg(mysql_real_connect(m, "127.0.0.1", "root", NULL, "idprime",
                                     (unsigned)s->port, NULL, 0) != NULL,
                  "connect to 127.0.0.1:%d: %s", s->port, mysql_error(m));
    return m;
}

/* Runs sql; returns 0 or the server's error code (its result dropped). */
static unsigned raw_try(MYSQL *m, const char *sql)
{
    if (mysql_query(m, sql) != 0)
        return mysql_errno(m);
    MYSQL_RES *r = mysql_store_result(m);
    if (r != NULL)
        mysql_free_result(r);
    return 0;
}

static void raw_exec(MYSQL *m, const char *sql)
{
    ck_assert_msg(raw_try(m, sql) == 0, "%s: %s", sql, mysql_error(m));
}

/* The first column of the first row as text in buf ("" and *found = 0
 * without a row; "NULL" for NULL). */
static char *raw_text(MYSQL *m, const char *sql, char *buf, size_t len,
                      int *found)
{
    ck_assert_msg(mysql_query(m, sql) == 0, "%s: %s", sql, mysql_error(m));
    MYSQL_RES *r = mysql_store_result(m);
    ck_assert_msg(r != NULL, "%s: no result: %s", sql, mysql_error(m));
    MYSQL_ROW row = mysql_fetch_row(r);
    snprintf(buf, len, "%s", row == NULL ? "" : row[0] ? row[0] : "NULL");
    if (found != NULL)
        *found = row != NULL;
    mysql_free_result(r);
    return buf;
}

static uint64_t raw_u64(MYSQL *m, const char *sql, int *found)
{
    char buf[64];
    raw_text(m, sql, buf, sizeof buf, found);
    return strtoull(buf, NULL, 10);
}

/* The counter's value as the table holds it; 0 (and *exists = 0) when it
 * has no row. */
static uint64_t value_of(const server *s, const char *key, int *exists)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT value FROM " TABLE " WHERE name = '%s'",
             key);
    MYSQL *m = raw_open(s);
    uint64_t v = raw_u64(m, sql, exists);
    mysql_close(m);
    return v;
}

/* The server's own count of INSERT statements, for anyone. */
static uint64_t com_insert(const server *s)
{
    MYSQL *m = raw_open(s);
    char buf[64];
    ck_assert_int_eq(mysql_query(m, "SHOW GLOBAL STATUS WHERE Variable_name "
                                    "= 'Com_insert'"), 0);
    MYSQL_RES *r = mysql_store_result(m);
    MYSQL_ROW row = mysql_fetch_row(r);
    ck_assert_ptr_nonnull(row);
    snprintf(buf, sizeof buf, "%s", row[1]);
    mysql_free_result(r);
    mysql_close(m);
    return strtoull(buf, NULL, 10);
}

/* From the general log (a server started with GENERAL_LOG): how many
 * queries (round trips) carried increments of the table, and how many
 * INSERT statements they held in all; *most is the most in one query. */
#define GENERAL_LOG "--general-log=1 --log-output=TABLE"
static size_t logged_inserts(const server *s, size_t *statements,
                             size_t *most)
{
    MYSQL *m = raw_open(s);
    ck_assert_int_eq(mysql_query(m, "SELECT argument FROM mysql.general_log "
                                    "WHERE command_type = 'Query' AND "
                                    "argument LIKE 'INSERT INTO `" TABLE
                                    "` (name, value) VALUES%'"), 0);
    MYSQL_RES *r = mysql_store_result(m);
    ck_assert_ptr_nonnull(r);
    size_t queries = 0;
    *statements = *most = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r)) != NULL) {
        size_t k = 0;
        for (const char *p = row[0]; (p = strstr(p, "INSERT INTO")) != NULL;
             p++)
            k++;
        queries++;
        *statements += k;
        if (k > *most)
            *most = k;
    }
    mysql_free_result(r);
    mysql_close(m);
    return queries;
}

/* The ids of the server's client connections to database idprime, but
 * the asking one, ascending; returns how many. */
static size_t plugin_connections(const server *s, unsigned long *ids,
                                 size_t max)
{
    MYSQL *m = raw_open(s);
    ck_assert_int_eq(mysql_query(m, "SELECT ID FROM information_schema."
                                    "PROCESSLIST WHERE DB = 'idprime' AND "
                                    "ID <> CONNECTION_ID() ORDER BY ID"), 0);
    MYSQL_RES *r = mysql_store_result(m);
    MYSQL_ROW row;
    size_t n = 0;
    while ((row = mysql_fetch_row(r)) != NULL && n < max)
        ids[n++] = strtoul(row[0], NULL, 10);
    mysql_free_result(r);
    mysql_close(m);
    return n;
}

#define MSG_HAS(err, text)                                                 \
    ck_assert_msg(strstr((err).msg, (text)) != NULL,                       \
                  "message '%s' does not contain '%s'", (err).msg, (text))

/* ---- IDs ---------------------------------------------------------------- */

START_TEST(test_first_ids_are_1_2_3)
{
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    ck_assert_str_eq(idp_client_store(c), "mysql");
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    /* one batch of the default 256, in the table */
    int exists = 0;
    ck_assert_uint_eq(value_of(&s, "ids", &exists), 256);
    ck_assert_int_eq(exists, 1);
    ck_assert_uint_eq(tu_get(c, "ids", NULL), 256);
    idp_close(c);

    /* mariadb:// is the same store, on the same table */
    char uri[512];
    snprintf(uri, sizeof uri, "mariadb://root@127.0.0.1:%d/idprime?batch=10",
             s.port);
    c = tu_open(uri, &with_log);
    ck_assert_str_eq(idp_client_store(c), "mysql");
    /* the close gave back 6..256 */
    ck_assert_uint_eq(tu_next(tu_counter(c, "ids")), 6);
    ck_assert_uint_eq(value_of(&s, "ids", NULL), 15);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_fresh_counter_starts_at_1)
{
    /* LAST_INSERT_ID(expr) is not evaluated when the row is new: the OK
     * packet must still give n, so a fresh counter's first IDs are 1..n */
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    uint64_t last = 0;
    idp_error err;
    ck_assert_int_eq(idp_incr(tu_counter(c, "fresh"), 10, &last, &err),
                     IDP_OK);
    ck_assert_uint_eq(last, 10);
    ck_assert_int_eq(idp_incr(tu_counter(c, "fresh"), 5, &last, &err),
                     IDP_OK);
    ck_assert_uint_eq(last, 15);
    for (uint64_t want = 16; want <= 18; want++) {
        ck_assert_uint_eq(tu_next(tu_counter(c, "fresh")), want);
        ck_assert_uint_eq(value_of(&s, "fresh", NULL), want);
    }
    ck_assert_uint_eq(tu_next(tu_counter(c, "other")), 1);
    idp_close(c);

    /* batching: the first batch of a fresh counter is 1..batch */
    c = server_open(&s, "?batch=100&low_watermark=0&adaptive=0", &with_log);
    idp_counter *ctr = tu_counter(c, "batched");
    for (uint64_t want = 1; want <= 100; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    ck_assert_uint_eq(value_of(&s, "batched", NULL), 100);
    ck_assert_uint_eq(tu_next(ctr), 101);
    ck_assert_uint_eq(value_of(&s, "batched", NULL), 200);
    ck_assert_uint_eq(prime_calls(ctr), 2);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_table_is_strictly_typed)
{
    server s;
    char buf[256];
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    tu_next(tu_counter(c, "t"));
    MYSQL *m = raw_open(&s);
    const char *cols =
        "SELECT GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, "
        "IS_NULLABLE, COLUMN_KEY) ORDER BY ORDINAL_POSITION SEPARATOR ', ') "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'idprime' AND "
        "TABLE_NAME = '" TABLE "'";
    ck_assert_str_eq(raw_text(m, cols, buf, sizeof buf, NULL),
                     "name varbinary(1024) NO PRI, value bigint(20) NO ");
    ck_assert_str_eq(raw_text(m, "SELECT ENGINE FROM information_schema."
                              "TABLES WHERE TABLE_SCHEMA = 'idprime' AND "
                              "TABLE_NAME = '" TABLE "'", buf, sizeof buf,
                              NULL), "InnoDB");
    ck_assert_str_eq(raw_text(m, "SELECT CHECK_CLAUSE FROM information_schema"
                              ".CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = "
                              "'idprime' AND TABLE_NAME = '" TABLE "'", buf,
                              sizeof buf, NULL), "`value` >= 0");
    /* the store itself refuses what is no counter value */
    ck_assert_uint_eq(raw_try(m, "INSERT INTO " TABLE " VALUES ('neg', -1)"),
                      4025); /* ER_CONSTRAINT_FAILED */
    ck_assert_uint_eq(raw_try(m, "INSERT INTO " TABLE " VALUES ('big', "
                              "9223372036854775808)"), 1264);
    ck_assert_uint_ne(raw_try(m, "UPDATE " TABLE " SET value = 'abc' WHERE "
                              "name = 't'"), 0);
    ck_assert_uint_ne(raw_try(m, "UPDATE " TABLE " SET value = NULL WHERE "
                              "name = 't'"), 0);
    mysql_close(m);
    ck_assert_uint_eq(value_of(&s, "t", NULL), 256);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    server s;
    start_mysql(&s, NULL);
    uint64_t before = com_insert(&s);
    char uri[512];
    /* give_back=0: the closes keep every batch whole, so the table's
     * value below counts the batches */
    server_uri(&s, "?batch=64&adaptive=0&give_back=0", uri, sizeof uri);
    /* the children fork before this process opens any client */
    const tu_fanout f = {.uri = uri, .counter = "shared", .procs = 4,
                         .threads = 2, .per_thread = 20000};
    size_t n = 0;
    uint64_t calls = 0;
    uint64_t *all = tu_fanout_ids(&f, &n, &calls);   /* all distinct */
    ck_assert_uint_eq(n, 160000);
    /* the table is past every ID handed out, and the server ran one
     * INSERT per fetch of every process, each adding 64 */
    uint64_t value = value_of(&s, "shared", NULL);
    uint64_t inserts = com_insert(&s) - before;
    ck_assert_uint_ge(value, all[n - 1]);
    ck_assert_uint_eq(value, inserts * 64);
    /* the engines counted the same fetches, but for one per process that
     * may still have been in flight when a child read its stats */
    ck_assert_uint_ge(inserts, calls);
    ck_assert_uint_le(inserts, calls + (uint64_t)f.procs);
    ck_assert_uint_ge(calls, 160000 / 64);
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* ---- Round trips ------------------------------------------------------ */

START_TEST(test_store_counts_one_insert_per_batch)
{
    server s;
    start_mysql(&s, NULL);
    /* a fixed batch=100 fetched only when the pool is empty: 1,000 IDs
     * take exactly 10 fetches per client */
    idp_client *a = server_open(&s, "?batch=100&low_watermark=0&adaptive=0",
                                &with_log);
    idp_client *b = server_open(&s, "?batch=100&low_watermark=0&adaptive=0",
                                &with_log);
    idp_error err;
    uint64_t rt0 = 0, rt = 0;
    ck_assert_int_eq(idp_store_roundtrips(a, &rt0, &err), IDP_OK);
    uint64_t raw0 = com_insert(&s);
    ck_assert_uint_eq(rt0, raw0);
    idp_counter *ca = tu_counter(a, "files"), *cb = tu_counter(b, "files");
    for (int i = 0; i < 1000; i++) {
        tu_next(ca);
        tu_next(cb);
    }
    ck_assert_uint_eq(prime_calls(ca), 10);
    ck_assert_uint_eq(prime_calls(cb), 10);
    ck_assert_int_eq(idp_store_roundtrips(b, &rt, &err), IDP_OK);
    ck_assert_uint_eq(rt - rt0, 20);
    ck_assert_uint_eq(com_insert(&s) - raw0, 20);
    ck_assert_uint_eq(value_of(&s, "files", NULL), 2000);

    /* raising is no increment: it is not counted */
    ck_assert_int_eq(idp_raise(a, "files", 5000, NULL, &err), IDP_OK);
    ck_assert_int_eq(idp_store_roundtrips(a, &rt0, &err), IDP_OK);
    ck_assert_uint_eq(rt0, rt);
    idp_close(a);
    idp_close(b);

    /* metaprime=0: one INSERT per ID */
    a = server_open(&s, "?metaprime=0", &with_log);
    ca = tu_counter(a, "legacy");
    for (int i = 0; i < 50; i++)
        tu_next(ca);
    ck_assert_uint_eq(prime_calls(ca), 50);
    ck_assert_int_eq(idp_store_roundtrips(a, &rt, &err), IDP_OK);
    ck_assert_uint_eq(rt - rt0, 50);
    idp_close(a);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_several_fresh_counters_in_one_round_trip)
{
    server s;
    start_mysql(&s, GENERAL_LOG);
    /* "b" exists already at 100; the others are new rows */
    idp_client *c = server_open(&s, NULL, &with_log);
    ck_assert_int_eq(idp_raise(c, "b", 100, NULL, NULL), IDP_OK);
    idp_close(c);
    uint64_t before = com_insert(&s);
    /* prime=: the first batch of each fetched together at open */
    c = server_open(&s, "?prime=a,b,c,d&batch=50&adaptive=0", &with_log);
    size_t stmts = 0, most = 0;
    ck_assert_uint_eq(logged_inserts(&s, &stmts, &most), 1);
    ck_assert_uint_eq(stmts, 4);
    ck_assert_uint_eq(com_insert(&s) - before, 4);
    const char *names[] = {"a", "b", "c", "d"};
    const uint64_t first[] = {1, 101, 1, 1};
    for (int i = 0; i < 4; i++) {
        idp_counter *ctr = tu_counter(c, names[i]);
        ck_assert_uint_eq(prime_calls(ctr), 1);
        ck_assert_uint_eq(tu_next(ctr), first[i]);
        ck_assert_uint_eq(value_of(&s, names[i], NULL), first[i] + 49);
    }
    ck_assert_uint_eq(com_insert(&s) - before, 4);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_background_fetches_share_a_round_trip)
{
    server s;
    start_mysql(&s, GENERAL_LOG);
    enum { NCTR = 8 };
    idp_client *c = server_open(&s, "?batch=10&low_watermark=50&adaptive=0",
                                &with_log);
    idp_counter *ctrs[NCTR];
    char name[NCTR][8];
    for (int k = 0; k < NCTR; k++) {
        snprintf(name[k], sizeof name[k], "c%d", k);
        ctrs[k] = tu_counter(c, name[k]);
        ck_assert_uint_eq(tu_next(ctrs[k]), 1);   /* a row each */
    }
    /* c0's row locked by another transaction: the worker's fetch of c0
     * waits, while the other counters reach their watermark and queue;
     * then they go to the server together */
    MYSQL *m = raw_open(&s);
    raw_exec(m, "BEGIN");
    raw_exec(m, "SELECT * FROM " TABLE " WHERE name = 'c0' FOR UPDATE");
    for (uint64_t want = 2; want <= 6; want++)
        for (int k = 0; k < NCTR; k++)
            ck_assert_uint_eq(tu_next(ctrs[k]), want);
    raw_exec(m, "COMMIT");
    mysql_close(m);
    uint64_t calls = 0;
    for (int k = 0; k < NCTR; k++) {
        idp_counter_stats st = tu_settle(ctrs[k]);
        ck_assert_uint_eq(st.prime_calls, 2);
        ck_assert_uint_eq(st.errors, 0);
        calls += st.prime_calls;
        ck_assert_uint_eq(value_of(&s, name[k], NULL), 20);
    }
    size_t stmts = 0, most = 0;
    size_t queries = logged_inserts(&s, &stmts, &most);
    ck_assert_uint_eq(stmts, calls);
    ck_assert_msg(most >= 2 && queries < stmts, "%zu INSERTs in %zu "
                  "queries, at most %zu in one", stmts, queries, most);
    /* and the IDs go on from the second batches */
    for (int k = 0; k < NCTR; k++)
        ck_assert_uint_eq(tu_next(ctrs[k]), 7);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Crashes, outages, limits ----------------------------------------- */

START_TEST(test_killed_client_never_repeats_an_id)
{
    server s;
    start_mysql(&s, NULL);
    char uri[512];
    uint64_t *all = NULL, highest = 0;
    size_t n = 0;
    const char *queries[] = {"?batch=50", "?metaprime=0", "?batch=50"};
    for (int round = 0; round < 3; round++) {
        server_uri(&s, queries[round], uri, sizeof uri);
        size_t start = n;
        ck_assert_uint_gt(tu_take_then_kill(uri, "crash", 300, &all, &n),
                          299);
        ck_assert_msg(all[start] > highest, "round %d began at %llu, at or "
                      "below %llu", round, (unsigned long long)all[start],
                      (unsigned long long)highest);
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

/* A thread taking IDs until told to stop, keeping them and its errors. */
typedef struct taker {
    idp_counter *ctr;
    pthread_mutex_t mu;
    uint64_t *ids;
    size_t n, cap;
    int errors, bad;       /* failed calls; calls that failed wrongly */
    long long slowest_ms;  /* the longest failed call */
    int stop;
    char why[300];
} taker;

static void *taker_main(void *arg)
{
    taker *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int stop = t->stop;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            return NULL;
        uint64_t id = 0;
        idp_error err;
        long long t0 = tu_now_ms();
        int rc = idp_next(t->ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        pthread_mutex_lock(&t->mu);
        if (rc == IDP_OK) {
            if (t->n == t->cap) {
                t->cap = t->cap ? t->cap * 2 : 1024;
                t->ids = realloc(t->ids, t->cap * sizeof *t->ids);
            }
            if (t->ids != NULL)
                t->ids[t->n++] = id;
        } else {
            t->errors++;
            if (dt > t->slowest_ms)
                t->slowest_ms = dt;
            if (rc != IDP_ESTORE && rc != IDP_ETIMEOUT && !t->bad++)
                snprintf(t->why, sizeof t->why, "%d: %s", rc, err.msg);
        }
        pthread_mutex_unlock(&t->mu);
        if (rc != IDP_OK)
            tu_sleep_ms(2);   /* pacing, not synchronisation */
    }
}

/* Waits (up to 20 s) until the taker has `ids` IDs and `errors` errors. */
static void taker_wait(taker *t, size_t ids, int errors)
{
    long long deadline = tu_now_ms() + 20000;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int done = t->n >= ids && t->errors >= errors;
        size_t have = t->n;
        int errs = t->errors;
        pthread_mutex_unlock(&t->mu);
        if (done)
            return;
        ck_assert_msg(tu_now_ms() < deadline, "taker stuck at %zu IDs and "
                      "%d errors (waiting for %zu and %d)", have, errs, ids,
                      errors);
        tu_sleep_ms(5);
    }
}

START_TEST(test_killed_server_fails_then_recovers_without_repeats)
{
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, "?batch=20&adaptive=0&timeout_ms=500",
                                &with_log);
    taker t = {.ctr = tu_counter(c, "outage")};
    pthread_mutex_init(&t.mu, NULL);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, taker_main, &t), 0);
    taker_wait(&t, 500, 0);
    server_kill(&s);              /* SIGKILL mid-run */
    taker_wait(&t, 0, 3);         /* calls fail while it is down */
    pthread_mutex_lock(&t.mu);
    size_t at_restart = t.n;
    pthread_mutex_unlock(&t.mu);
    ck_assert_int_eq(server_restart(&s), 0);
    taker_wait(&t, at_restart + 500, 3);
    pthread_mutex_lock(&t.mu);
    t.stop = 1;
    pthread_mutex_unlock(&t.mu);
    pthread_join(th, NULL);

    ck_assert_msg(t.bad == 0, "a call failed with the wrong code: %s", t.why);
    ck_assert_msg(t.slowest_ms <= 500 + 1500, "a failed call took %lld ms",
                  t.slowest_ms);
    /* one thread: strictly increasing, so no regression after the
     * restart; the committed counter survived the SIGKILL */
    for (size_t i = 1; i < t.n; i++)
        ck_assert_msg(t.ids[i] > t.ids[i - 1], "ID %llu after %llu",
                      (unsigned long long)t.ids[i],
                      (unsigned long long)t.ids[i - 1]);
    ck_assert_uint_eq(tu_stats(t.ctr).regressions, 0);
    ck_assert_uint_ge(value_of(&s, "outage", NULL), t.ids[t.n - 1]);
    tu_assert_distinct(t.ids, t.n);
    free(t.ids);
    pthread_mutex_destroy(&t.mu);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_hung_server_times_out_and_recovers)
{
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=500", &with_log);
    idp_counter *ctr = tu_counter(c, "hung");
    ck_assert_uint_eq(tu_next(ctr), 1);
    uint64_t before = com_insert(&s);

    ck_assert_int_eq(server_pause(&s), 0);
    for (int i = 0; i < 2; i++) {   /* the old connection, then a new one */
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        ck_assert_msg(rc == IDP_ETIMEOUT, "call %d on a hung server gave %d: "
                      "%s", i, rc, err.msg);
        ck_assert_msg(dt >= 450 && dt <= 500 + 500, "call %d took %lld ms",
                      i, dt);
        MSG_HAS(err, "timeout_ms=500");
        ck_assert_uint_eq(id, 0);
    }
    kill(s.pid, SIGCONT);

    /* the first INSERT reached the server before it hung: it runs when
     * the server wakes, a gap never served and never sent again; the
     * second call never got past the handshake */
    uint64_t id = tu_next(ctr);
    ck_assert_msg(id == 2 || id == 3, "ID %llu after a hang",
                  (unsigned long long)id);
    long long deadline = tu_now_ms() + 5000;
    while (value_of(&s, "hung", NULL) < 3 && tu_now_ms() < deadline)
        tu_sleep_ms(20);
    ck_assert_uint_eq(value_of(&s, "hung", NULL), 3);
    ck_assert_uint_eq(com_insert(&s) - before, 2);
    ck_assert_uint_eq(tu_next(ctr), 4);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_dropped_connection_is_reopened_before_sending)
{
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "re");
    ck_assert_uint_eq(tu_next(ctr), 1);
    unsigned long ids[8];
    ck_assert_uint_eq(plugin_connections(&s, ids, 8), 1);
    /* the server ends the idle connection (KILL, wait_timeout, ...): the
     * next call opens a new one before sending, and costs no error */
    char sql[64];
    snprintf(sql, sizeof sql, "KILL CONNECTION %lu", ids[0]);
    MYSQL *m = raw_open(&s);
    raw_exec(m, sql);
    mysql_close(m);
    ck_assert_uint_eq(tu_next(ctr), 2);
    /* the killed thread leaves the process list when the server has torn
     * it down, which may be after KILL returned: wait for that, then the
     * plugin's one connection is a new one */
    unsigned long now[8];
    size_t n;
    long long deadline = tu_now_ms() + 5000;
    while ((n = plugin_connections(&s, now, 8)) > 1 && now[0] == ids[0] &&
           tu_now_ms() < deadline)
        tu_sleep_ms(20);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_ne(now[0], ids[0]);
    ck_assert_uint_eq(value_of(&s, "re", NULL), 2);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_reaching_2_63_is_an_error_never_a_wrap)
{
    server s;
    start_mysql(&s, NULL);
    const uint64_t max = IDP_MAX_VALUE;
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_error err;
    uint64_t v = 0;
    ck_assert_int_eq(idp_raise(c, "big", max - 10, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, max - 10);
    idp_counter *ctr = tu_counter(c, "big");
    ck_assert_int_eq(idp_incr(ctr, 10, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, max);
    int rc = idp_next(ctr, &v, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    MSG_HAS(err, "2^63");
    MSG_HAS(err, "'big'");
    ck_assert_uint_eq(value_of(&s, "big", NULL), max);

    /* a whole batch past the limit: refused, the value unchanged */
    ck_assert_int_eq(idp_raise(c, "near", max - 10, NULL, &err), IDP_OK);
    idp_client *b = server_open(&s, "?batch=256", &with_log);
    rc = idp_next(tu_counter(b, "near"), &v, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    MSG_HAS(err, "nothing was changed");
    ck_assert_uint_eq(value_of(&s, "near", NULL), max - 10);
    /* and the counters beside it still work */
    ck_assert_uint_eq(tu_next(tu_counter(b, "small")), 1);
    idp_close(b);

    rc = idp_raise(c, "big", max + 1, &v, &err);
    ck_assert_msg(rc == IDP_ERANGE || rc == IDP_EINVAL, "%d: %s", rc,
                  err.msg);
    ck_assert_uint_eq(value_of(&s, "big", NULL), max);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_value_that_is_no_counter_is_refused)
{
    server s;
    start_mysql(&s, NULL);
    MYSQL *m = raw_open(&s);
    /* tables idprime did not make: one that allows negative values, one
     * whose value is text */
    raw_exec(m, "CREATE TABLE neg (name VARBINARY(255) PRIMARY KEY, value "
                "BIGINT NOT NULL) ENGINE=InnoDB");
    raw_exec(m, "INSERT INTO neg VALUES ('x', -5), ('y', -300)");
    raw_exec(m, "CREATE TABLE strs (name VARBINARY(255) PRIMARY KEY, value "
                "VARCHAR(20) NOT NULL) ENGINE=InnoDB");
    mysql_close(m);

    idp_client *c = server_open(&s, "?table=neg&metaprime=0", &with_log);
    idp_error err;
    uint64_t v = 0;
    int exists = 0;
    int rc = idp_get(c, "x", &v, &exists, &err);
    ck_assert_msg(rc == IDP_ESTORE, "%d: %s", rc, err.msg);
    MSG_HAS(err, "'x'");
    MSG_HAS(err, "negative");
    rc = idp_next(tu_counter(c, "y"), &v, &err);
    ck_assert_msg(rc == IDP_ESTORE, "%d: %s", rc, err.msg);
    MSG_HAS(err, "'y'");
    MSG_HAS(err, "negative");
    idp_close(c);

    ck_assert_ptr_null(try_open(uri_of(&s, "?table=strs"), &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    MSG_HAS(err, "column `value` is varchar(20), expected bigint");

    /* a trigger on the table hides LAST_INSERT_ID from the OK packet: the
     * increment ran (a gap), nothing is served, and the message says why */
    c = server_open(&s, "?metaprime=0", &with_log);
    ck_assert_int_eq(idp_next(tu_counter(c, "t"), &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 1);
    m = raw_open(&s);
    raw_exec(m, "CREATE TRIGGER audit BEFORE UPDATE ON idprime_counters "
                "FOR EACH ROW SET @seen = 1");
    rc = idp_next(tu_counter(c, "t"), &v, &err);
    ck_assert_msg(rc == IDP_ESTORE, "%d: %s", rc, err.msg);
    MSG_HAS(err, "'t'");
    MSG_HAS(err, "a trigger on table idprime_counters hides LAST_INSERT_ID");
    raw_exec(m, "DROP TRIGGER audit");
    mysql_close(m);
    ck_assert_int_eq(idp_next(tu_counter(c, "t"), &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 3); /* 2 went to the hidden increment: a gap */
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- URIs ---------------------------------------------------------------- */

START_TEST(test_closed_port_is_named)
{
    int port = harness_free_port();
    ck_assert_int_gt(port, 0);
    char uri[128], want[128];
    snprintf(uri, sizeof uri, "mysql://root@127.0.0.1:%d/idprime", port);
    snprintf(want, sizeof want, "mysql plugin: unable to connect to "
             "127.0.0.1:%d: Connection refused", port);
    idp_error err;
    long long t0 = tu_now_ms();
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_lt(tu_now_ms() - t0, 2000);
    ck_assert_int_eq(err.code, IDP_ESTORE);
    MSG_HAS(err, want);
}
END_TEST

START_TEST(test_bad_uris_are_named)
{
    server s;
    start_mysql(&s, NULL);
    idp_error err;
    char uri[512];
    ck_assert_ptr_null(try_open(uri_of(&s, "?bogus=1"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "bogus");

    ck_assert_ptr_null(try_open(uri_of(&s, "?durability=maybe"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "durability");
    MSG_HAS(err, "require");

    ck_assert_ptr_null(try_open(uri_of(&s, "?table=no-such;table"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "table=no-such;table");

    ck_assert_ptr_null(try_open(uri_of(&s, "?timeout_ms=soon"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "timeout_ms");

    snprintf(uri, sizeof uri, "mysql://root@127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "names no database");

    snprintf(uri, sizeof uri, "mysql://root@127.0.0.1:%d/nosuchdb", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    MSG_HAS(err, "database 'nosuchdb' does not exist");

    snprintf(uri, sizeof uri, "mysql://root@127.0.0.1:%d,127.0.0.1:%d/idprime",
             s.port, s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "several hosts");

    snprintf(uri, sizeof uri, "mysql://root@127.0.0.1:%d/idprime?socket=%s/"
             "mysqld.sock", s.port, s.dir);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    MSG_HAS(err, "unix socket");

    snprintf(uri, sizeof uri, "mysql://root:Wr0ngPw@127.0.0.1:%d/idprime",
             s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    MSG_HAS(err, "refused user 'root'");
    MSG_HAS(err, "Access denied");
    ck_assert_msg(strstr(err.msg, "Wr0ngPw") == NULL, "password shown: %s",
                  err.msg);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_unix_socket_is_the_same_store)
{
    server s;
    start_mysql(&s, NULL);
    char uri[PATH_MAX + 128];
    snprintf(uri, sizeof uri, "mysql://root@localhost/idprime?socket=%s/"
             "mysqld.sock&batch=10", s.dir);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "sock")), 1);
    idp_close(c);
    snprintf(uri, sizeof uri, "mysql://root@/idprime?socket=%s/mysqld.sock",
             s.dir);
    c = tu_open(uri, &with_log);
    /* the ID served over the socket, over TCP: the close gave back 2..10 */
    ck_assert_uint_eq(tu_get(c, "sock", NULL), 1);
    idp_close(c);
    ck_assert_uint_eq(value_of(&s, "sock", NULL), 1);
    idp_error err;
    snprintf(uri, sizeof uri, "mysql://root@/idprime?socket=%s/none.sock",
             s.dir);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    MSG_HAS(err, "none.sock");
    MSG_HAS(err, "No such file or directory");
    server_stop(&s, 0);
}
END_TEST

/* ---- Operations ---------------------------------------------------------- */

START_TEST(test_raise_never_lowers)
{
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, "?batch=10", &with_log);
    idp_error err;
    uint64_t r = 0;
    ck_assert_int_eq(idp_raise(c, "r", 100, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_int_eq(idp_raise(c, "r", 50, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_uint_eq(value_of(&s, "r", NULL), 100);
    ck_assert_uint_eq(tu_next(tu_counter(c, "r")), 101);
    ck_assert_int_eq(idp_raise(c, "r", 105, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 110);
    ck_assert_int_eq(idp_raise(c, "r", 111, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 111);
    /* exact far above 2^53 */
    ck_assert_int_eq(idp_raise(c, "p", 9007199254740993u, &r, &err), IDP_OK);
    ck_assert_int_eq(idp_raise(c, "p", 9007199254740992u, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 9007199254740993u);
    ck_assert_int_eq(idp_raise(c, "p", IDP_MAX_VALUE, &r, &err), IDP_OK);
    ck_assert_uint_eq(value_of(&s, "p", NULL), IDP_MAX_VALUE);
    /* a raise to 0 makes the row, at 0 */
    ck_assert_int_eq(idp_raise(c, "zero", 0, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 0);
    int exists = 0;
    ck_assert_uint_eq(tu_get(c, "zero", &exists), 0);
    ck_assert_int_eq(exists, 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_get_and_list)
{
    server s;
    start_mysql(&s, NULL);
    /* '_' and '%' are plain bytes of a prefix, no wildcards */
    idp_client *u = server_open(&s, "?prefix=a_&batch=10", &with_log);
    idp_client *p = server_open(&s, "?prefix=a%25&batch=20", &with_log);
    idp_client *o = server_open(&s, "?prefix=ab&batch=30", &with_log);
    idp_error err;
    uint64_t v = 7;
    int exists = 1;
    ck_assert_int_eq(idp_get(u, "files", &v, &exists, &err), IDP_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(exists, 0);
    tu_next(tu_counter(u, "files"));
    tu_next(tu_counter(u, "dirs"));
    tu_next(tu_counter(p, "files"));
    tu_next(tu_counter(o, "files"));
    ck_assert_uint_eq(tu_get(u, "files", &exists), 10);
    ck_assert_int_eq(exists, 1);

    tu_listed l = {0};
    ck_assert_int_eq(idp_list(u, tu_listed_cb, &l, &err), IDP_OK);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.names[0], "dirs");
    ck_assert_str_eq(l.names[1], "files");
    ck_assert_uint_eq(l.values[1], 10);
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(idp_list(p, tu_listed_cb, &l, &err), IDP_OK);
    ck_assert_int_eq(l.n, 1);
    ck_assert_uint_eq(l.values[0], 20);
    idp_close(u);
    idp_close(p);
    idp_close(o);

    /* more than one page (1,000 rows) of a listing, in key order */
    MYSQL *m = raw_open(&s);
    raw_exec(m, "INSERT INTO " TABLE " (name, value) SELECT CONCAT('n', "
                "LPAD(seq, 4, '0')), seq FROM seq_1_to_2500");
    mysql_close(m);
    idp_client *all = server_open(&s, "?prefix=n", &with_log);
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(idp_list(all, tu_listed_cb, &l, &err), IDP_OK);
    ck_assert_int_eq(l.n, 2500);
    ck_assert_str_eq(l.names[0], "0001");
    ck_assert_uint_eq(l.values[15], 16);
    idp_close(all);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_fork_child_never_repeats_and_parent_keeps_its_session)
{
    server s;
    start_mysql(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "forked");
    ck_assert_uint_eq(tu_next(ctr), 1);
    unsigned long before[8];
    ck_assert_uint_eq(plugin_connections(&s, before, 8), 1);

    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        uint64_t got[3] = {0};
        idp_error err;
        for (int i = 0; i < 3; i++)
            if (idp_next(ctr, &got[i], &err) != IDP_OK)
                _exit(2);
        idp_close(c);
        _exit(tu_write_all(fds[1], got, sizeof got) == 0 ? 0 : 3);
    }
    close(fds[1]);
    uint64_t child[3] = {0};
    ck_assert_int_eq(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child "
                  "status %d", status);

    /* the parent's session was untouched: same connection, still good */
    uint64_t ids[5] = {1, child[0], child[1], child[2], tu_next(ctr)};
    unsigned long after[8];
    ck_assert_uint_eq(plugin_connections(&s, after, 8), 1);
    ck_assert_uint_eq(after[0], before[0]);
    ck_assert_uint_eq(ids[4], 5);
    tu_assert_distinct(ids, 5);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Warnings ------------------------------------------------------------ */

START_TEST(test_durable_server_gets_no_warning)
{
    server s;
    start_mysql(&s, NULL);
    log_clear();
    idp_client *c = server_open(&s, "?durability=require", &with_log);
    ck_assert_msg(!log_has("\n1:"), "warned:%s", log_text);
    ck_assert_uint_eq(tu_next(tu_counter(c, "w")), 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* Starts a server with `extra`, checks that a client warns `warning` at
 * open and still works, and that durability=require refuses it. */
static void check_risky_server(const char *extra, const char *warning)
{
    server s;
    char line[256];
    start_mysql(&s, extra);
    log_clear();
    idp_client *c = server_open(&s, NULL, &with_log);
    snprintf(line, sizeof line, "\n1:mysql plugin: 127.0.0.1:%d has %s",
             s.port, warning);
    ck_assert_msg(log_has(line), "no '%s' in the log:%s", line + 1,
                  log_text);
    ck_assert_uint_eq(tu_next(tu_counter(c, "w")), 1);
    idp_close(c);
    idp_error err;
    ck_assert_ptr_null(try_open(uri_of(&s, "?durability=require"), &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    MSG_HAS(err, warning);
    MSG_HAS(err, "durability=require");
    server_stop(&s, 0);
}

START_TEST(test_lazy_redo_log_is_warned)
{
    check_risky_server("--innodb-flush-log-at-trx-commit=2",
                       "innodb_flush_log_at_trx_commit=2");
}
END_TEST

START_TEST(test_unsynced_binary_log_is_warned)
{
    check_risky_server("--log-bin=binlog --sync-binlog=0",
                       "the binary log on with sync_binlog=0");
}
END_TEST

int main(void)
{
    const TTest *ids[] = {
        test_first_ids_are_1_2_3, test_fresh_counter_starts_at_1,
        test_table_is_strictly_typed,
        test_no_duplicate_across_4_processes_x_2_threads, NULL};
    const TTest *roundtrips[] = {
        test_store_counts_one_insert_per_batch,
        test_several_fresh_counters_in_one_round_trip,
        test_background_fetches_share_a_round_trip, NULL};
    const TTest *failures[] = {
        test_killed_client_never_repeats_an_id,
        test_killed_server_fails_then_recovers_without_repeats,
        test_hung_server_times_out_and_recovers,
        test_dropped_connection_is_reopened_before_sending,
        test_reaching_2_63_is_an_error_never_a_wrap,
        test_value_that_is_no_counter_is_refused, NULL};
    const TTest *uris[] = {
        test_closed_port_is_named, test_bad_uris_are_named,
        test_unix_socket_is_the_same_store, NULL};
    const TTest *operations[] = {
        test_raise_never_lowers, test_get_and_list,
        test_fork_child_never_repeats_and_parent_keeps_its_session, NULL};
    const TTest *warnings[] = {
        test_durable_server_gets_no_warning, test_lazy_redo_log_is_warned,
        test_unsynced_binary_log_is_warned, NULL};
    const tu_case cases[] = {
        {.name = "ids", .tests = ids},
        {.name = "roundtrips", .tests = roundtrips},
        {.name = "failures", .tests = failures},
        {.name = "uris", .tests = uris},
        {.name = "operations", .tests = operations},
        {.name = "warnings", .tests = warnings}, {.name = NULL}};
    return tu_run(tu_suite("mysql", 120, cases));
}
