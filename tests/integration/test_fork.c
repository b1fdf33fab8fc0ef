/*
 * test_fork.c - guarantee 6 (docs/design.md, "fork") against real stores:
 * redis-server, memcached, PostgreSQL and MariaDB (started by the harness
 * on free loopback ports) and SQLite files in a temp folder, each test a
 * loop over the five.
 *
 * A client used in a child after fork() never serves an ID the parent held
 * or fetched: every child ID is above the store's value read just before
 * the fork, and every ID of everyone (parent, its threads, every child) is
 * collected and checked for duplicates. The child discards what it
 * inherited and reconnects on its first call; idp_close works in both
 * processes and never hangs; the child never writes on the parent's
 * connection; pre-fork servers (open once, fork workers) just work, with
 * metaprime=1 and metaprime=0.
 *
 * Children never assert: they take their IDs, send them down a pipe
 * followed by a trailer (TRAILER, then how long their idp_close took), and
 * _exit; what went wrong goes to their stderr, a temp file the test shows
 * when the child fails. Every wait for a child is bounded (poll on its
 * pipe, waitpid WNOHANG, a deadline): a child that hangs is killed and the
 * test fails naming it. No sleep decides an outcome.
 *
 * Sanitizer builds (GCC 12's runtimes, which have no fork support of their
 * own): the tests start the parent's threads, the library's worker
 * included, before they fork (worker_up: ASan), and children ask for
 * thread stacks of a new size (fresh_thread_stacks: TSan).
 *
 * The machinery (the stores, the threads that take IDs, the children and
 * the set of everyone's IDs) is in fork_rig.c; this file holds the tests.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libpq-fe.h>
#include <mysql.h>
#include <sqlite3.h>

#include "fork_rig.h"
#include "harness.h"
#include "idprime/idprime.h"
#include "redis_helpers.h"
#include "sql_helpers.h"
#include "testutil.h"

#ifdef UNDER_TSAN
/*
 * ThreadSanitizer kills a child forked from a multi-threaded process as
 * soon as it starts a thread, unless die_after_fork=0; these children do
 * (the library's worker, the tests' takers), as pre-fork servers do. TSan
 * still reports in the child, and a report makes the child's exit status
 * 66 (and shows in its stderr), which fails the test. (TSAN_OPTIONS in the
 * environment is applied on top of this.)
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

/* ---- 1. take one ID, fork, both allocate -------------------------------- */

/* batch 16: the pool holds 15 IDs at the fork; batch 4096: the forking
 * thread's run holds 255 more (a run is at most 256 IDs, batch/16) */
static void fork_both_allocate(int kind, int child_threads, int batch)
{
    const size_t per = 2000;
    char what[96], q[64];
    snprintf(what, sizeof what, "%s, batch %d, child on %d thread(s)",
             store_name[kind], batch, child_threads);
    env e;
    env_up(&e, kind);
    snprintf(q, sizeof q, "?batch=%d&adaptive=0", batch);
    idp_client *c = env_open(&e, q);
    idp_counter *ctr = tu_counter(c, "one");
    uint64_t first = tu_next(ctr);
    ck_assert_uint_eq(first, 1);
    /* everything the parent fetched: the child serves none of it */
    uint64_t fetched = store_value(c, "one");
    ck_assert_uint_ge(fetched, (uint64_t)batch);

    job j = {.c = c, .ctr = ctr, .threads = child_threads,
             .per_thread = per / (size_t)child_threads, .close_it = 1,
             .go_rd = -1, .go_wr = -1};
    kid k;
    kid_start(&k, run_job, &j);
    /* both allocate at once */
    uint64_t *mine = malloc(per * sizeof *mine);
    ck_assert_ptr_nonnull(mine);
    take_here(ctr, mine, per, 0, what);
    /* the parent carries on with the pool it held */
    ck_assert_msg(mine[0] > first && mine[0] <= fetched, "%s: the parent's "
                  "first ID after the fork is %" PRIu64 ", not from the "
                  "batch it held (%" PRIu64 "..%" PRIu64 ")", what, mine[0],
                  first + 1, fetched);
    kids_wait(&k, 1, KID_MS, what);
    uint64_t close_ms = 0;
    const uint64_t *theirs = kid_ids(&k, per, fetched, &close_ms, what, 0);
    ck_assert_msg(close_ms < CHILD_CLOSE_MS, "%s: idp_close in the child "
                  "took %" PRIu64 " ms", what, close_ms);

    idset all = {0};
    ids_add(&all, &first, 1, -1);
    ids_add(&all, mine, per, -1);
    ids_add(&all, theirs, per, 0);
    uint64_t highest = ids_check(&all, what);
    idp_close(c);
    assert_store_covers(&e, "one", highest);
    free(all.e);
    free(mine);
    kid_free(&k);
    env_down(&e);
}

START_TEST(test_take_one_fork_both_allocate)
{
    fork_both_allocate(_i, 1, 16);
}
END_TEST

START_TEST(test_take_one_fork_both_allocate_child_threads)
{
    fork_both_allocate(_i, 4, 16);
}
END_TEST

START_TEST(test_take_one_fork_both_allocate_run_held)
{
    fork_both_allocate(_i, 1, 4096);
}
END_TEST

/* ---- 2. pre-fork: open once, 8 workers allocate ------------------------- */

#define WORKERS 8

static void prefork(int kind, int metaprime, int parent_busy)
{
    const size_t per = 1000;
    char what[128];
    snprintf(what, sizeof what, "%s, metaprime=%d, parent %s", store_name[kind],
             metaprime, parent_busy ? "allocating" : "idle");
    env e;
    env_up(&e, kind);
    /* metaprime=0: every allocation is one round trip on the client's
     * connection, opened by idp_open (the old bug: the workers shared it) */
    idp_client *c = env_open(&e, metaprime ? "?batch=64&adaptive=0"
                                           : "?metaprime=0");
    idp_counter *ctr = tu_counter(c, "req");
    idset all = {0};
    uint64_t before[10];
    if (parent_busy) {
        take_here(ctr, before, 10, !metaprime, what);
        ids_add(&all, before, 10, -1);
    }
    uint64_t fetched = store_value(c, "req");

    job j = {.c = c, .ctr = ctr, .threads = 1, .per_thread = per,
             .incr = !metaprime, .close_it = 1, .go_rd = -1, .go_wr = -1};
    kid ks[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        kid_start(&ks[i], run_job, &j);
    uint64_t *mine = NULL;
    if (parent_busy) {
        mine = malloc(per * sizeof *mine);
        ck_assert_ptr_nonnull(mine);
        take_here(ctr, mine, per, !metaprime, what);
        ids_add(&all, mine, per, -1);
    }
    kids_wait(ks, WORKERS, KID_MS, what);
    for (int i = 0; i < WORKERS; i++) {
        uint64_t close_ms = 0;
        ids_add(&all, kid_ids(&ks[i], per, fetched, &close_ms, what, i), per,
                i);
        ck_assert_msg(close_ms < CHILD_CLOSE_MS, "%s: idp_close in worker %d "
                      "took %" PRIu64 " ms", what, i, close_ms);
        kid_free(&ks[i]);
    }
    uint64_t highest = ids_check(&all, what);
    ck_assert_uint_eq(all.n, (parent_busy ? 10 + per : 0) + WORKERS * per);
    /* the parent's client still works after its workers are gone */
    uint64_t after = tu_next(ctr);
    ck_assert_msg(after > fetched && after != highest, "%s", what);
    ids_add(&all, &after, 1, -1);
    highest = ids_check(&all, what);
    idp_close(c);
    assert_store_covers(&e, "req", highest);
    free(all.e);
    free(mine);
    env_down(&e);
}

START_TEST(test_prefork_8_workers_metaprime1_idle_parent)
{
    prefork(_i, 1, 0);
}
END_TEST

START_TEST(test_prefork_8_workers_metaprime1_busy_parent)
{
    prefork(_i, 1, 1);
}
END_TEST

START_TEST(test_prefork_8_workers_metaprime0_incr_idle_parent)
{
    prefork(_i, 0, 0);
}
END_TEST

START_TEST(test_prefork_8_workers_metaprime0_incr_busy_parent)
{
    prefork(_i, 0, 1);
}
END_TEST

/* ---- 3. fork while the background worker is fetching ------------------- */

#define BUSY_THREADS 3
#define BUSY_FORKS 20
#define BUSY_CAP 400000   /* IDs a parent thread may take at most */

START_TEST(test_fork_while_worker_fetches)
{
    int kind = _i;
    const size_t per = 300;
    char what[96];
    snprintf(what, sizeof what, "%s, forks during background fetches",
             store_name[kind]);
    env e;
    env_up(&e, kind);
    /* a fetch every few IDs: the worker is nearly always at it */
    idp_client *c = env_open(&e, "?batch=16&adaptive=0&low_watermark=90");
    idp_counter *ctr = tu_counter(c, "busy");
    atomic_int stop = 0;
    taker t[BUSY_THREADS];
    pthread_t th[BUSY_THREADS];
    for (int i = 0; i < BUSY_THREADS; i++) {
        t[i] = (taker){.ctr = ctr, .cap = BUSY_CAP, .stop = &stop};
        t[i].ids = malloc(BUSY_CAP * sizeof *t[i].ids);
        ck_assert_ptr_nonnull(t[i].ids);
        ck_assert_int_eq(pthread_create(&th[i], NULL, taker_main, &t[i]), 0);
    }
    /* every thread (and the worker) has started before the first fork
     * (see worker_up) */
    long long up = tu_now_ms() + 10000;
    for (int i = 0; i < BUSY_THREADS; i++)
        while (atomic_load(&t[i].got) == 0 && !t[i].failed) {
            if (tu_now_ms() > up) {
                atomic_store(&stop, 1);
                ck_abort_msg("%s: parent thread %d took no ID in 10 s", what,
                             i);
            }
            sched_yield();
        }
    for (idp_counter_stats st = {.size = sizeof st};;) {
        idp_counter_stats_get(ctr, &st);
        if (st.prefetch_async > 0)
            break;
        if (tu_now_ms() > up) {
            atomic_store(&stop, 1);
            ck_abort_msg("%s: no background fetch in 10 s", what);
        }
        sched_yield();
    }
    kid ks[BUSY_FORKS];
    job jobs[BUSY_FORKS];
    uint64_t floors[BUSY_FORKS];
    for (int f = 0; f < BUSY_FORKS; f++) {
        /* let the parent's threads take 64 IDs (4 fetches) between forks:
         * each fork lands among fetches, and the parent is not stalled */
        size_t base = 0;
        for (int i = 0; i < BUSY_THREADS; i++)
            base += atomic_load(&t[i].got);
        long long deadline = tu_now_ms() + 10000;
        for (;;) {
            size_t now = 0;
            int failed = 0;
            for (int i = 0; i < BUSY_THREADS; i++) {
                now += atomic_load(&t[i].got);
                failed |= t[i].failed;
            }
            if (now >= base + 64 || failed)
                break;
            if (tu_now_ms() > deadline) {
                atomic_store(&stop, 1);
                ck_abort_msg("%s: the parent's threads took %zu IDs in 10 s "
                             "after fork %d", what, now - base, f);
            }
            sched_yield();
        }
        floors[f] = store_value(c, "busy");
        jobs[f] = (job){.c = c, .ctr = ctr, .threads = 1 + f % 2,
                        .per_thread = per, .close_it = 1, .go_rd = -1,
                        .go_wr = -1};
        kid_start(&ks[f], run_job, &jobs[f]);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < BUSY_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < BUSY_THREADS; i++)
        ck_assert_msg(!t[i].failed, "%s: parent thread %d: %s", what, i,
                      t[i].why);
    kids_wait(ks, BUSY_FORKS, KID_MS, what);
    idset all = {0};
    for (int i = 0; i < BUSY_THREADS; i++)
        ids_add(&all, t[i].ids, atomic_load(&t[i].got), -1);
    for (int f = 0; f < BUSY_FORKS; f++) {
        size_t want = (size_t)jobs[f].threads * per;
        uint64_t close_ms = 0;
        ids_add(&all, kid_ids(&ks[f], want, floors[f], &close_ms, what, f),
                want, f);
        ck_assert_msg(close_ms < CHILD_CLOSE_MS, "%s: idp_close in child %d "
                      "took %" PRIu64 " ms", what, f, close_ms);
        kid_free(&ks[f]);
    }
    uint64_t highest = ids_check(&all, what);
    idp_close(c);
    assert_store_covers(&e, "busy", highest);
    for (int i = 0; i < BUSY_THREADS; i++)
        free(t[i].ids);
    free(all.e);
    env_down(&e);
}
END_TEST

/* ---- 4. the child never writes on the parent's connection -------------- */

/* The server's own list of its clients, without the one asking: Redis'
 * CLIENT LIST, PostgreSQL's client backends (pg_stat_activity), MariaDB's
 * PROCESSLIST. */
typedef struct conns {
    int n;
    long long id[32];
    char cmd[32][40];
} conns;

static void redis_conns(const server *s, conns *out)
{
    static char list[1 << 16];
    raw(s, NULL, "CLIENT LIST", list, sizeof list);
    memset(out, 0, sizeof *out);
    for (char *line = list; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        const char *id = strstr(line, "id="), *cmd = strstr(line, " cmd=");
        if (id == line && cmd != NULL && strncmp(cmd, " cmd=client", 11) != 0 &&
            out->n < 32) {
            out->id[out->n] = atoll(id + 3);
            snprintf(out->cmd[out->n], sizeof out->cmd[0], "%.*s",
                     (int)strcspn(cmd + 5, " \r"), cmd + 5);
            out->n++;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
}

/* A connection of the test to the PostgreSQL server of e. */
static PGconn *pg_probe(const env *e)
{
    char port[16];
    snprintf(port, sizeof port, "%d", e->srv.port);
    const char *kw[] = {"host", "port", "user", "dbname", "connect_timeout",
                        "sslmode", "application_name", NULL};
    const char *val[] = {"127.0.0.1", port, "postgres", "postgres", "10",
                         "disable", "fork-probe", NULL};
    PGconn *c = PQconnectdbParams(kw, val, 0);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect to postgresql: %s",
                  PQerrorMessage(c));
    return c;
}

/* A connection of the test to the MariaDB server of e. */
static MYSQL *my_probe(const env *e)
{
    MYSQL *m = mysql_init(NULL);
    ck_assert_ptr_nonnull(m);
    unsigned secs = 10, tcp = MYSQL_PROTOCOL_TCP;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &tcp);
    ck_assert_msg(mysql_real_connect(m, "127.0.0.1", "root", NULL, NULL,
                                     (unsigned)e->srv.port, NULL, 0) != NULL,
                  "connect to mysql: %s", mysql_error(m));
    return m;
}

/* The connection ids of the test's own MariaDB probes: one that closed
 * leaves PROCESSLIST a little later, and is never taken for a client's. */
static long long probe_ids[1024];
static size_t nprobe_ids;

static int is_probe(long long id)
{
    for (size_t i = 0; i < nprobe_ids; i++)
        if (probe_ids[i] == id)
            return 1;
    return 0;
}

/* Rows of (id, text) that `sql` answers on a MariaDB probe, into out,
 * without the probes' own connections. */
static void my_rows(const env *e, const char *sql, conns *out)
{
    MYSQL *m = my_probe(e);
    if (nprobe_ids < sizeof probe_ids / sizeof *probe_ids)
        probe_ids[nprobe_ids++] = (long long)mysql_thread_id(m);
    ck_assert_msg(mysql_query(m, sql) == 0, "%s: %s", sql, mysql_error(m));
    MYSQL_RES *r = mysql_store_result(m);
    ck_assert_ptr_nonnull(r);
    memset(out, 0, sizeof *out);
    for (MYSQL_ROW row; (row = mysql_fetch_row(r)) != NULL && out->n < 32;) {
        if (is_probe(atoll(row[0])))
            continue;
        out->id[out->n] = atoll(row[0]);
        snprintf(out->cmd[out->n], sizeof out->cmd[0], "%s",
                 row[1] != NULL ? row[1] : "");
        out->n++;
    }
    mysql_free_result(r);
    mysql_close(m);
}

static void pg_conns(const env *e, conns *out)
{
    PGconn *c = pg_probe(e);
    PGresult *r = PQexec(c, "SELECT pid, coalesce(left(query, 30), '') "
                         "FROM pg_stat_activity WHERE backend_type = "
                         "'client backend' AND application_name <> "
                         "'fork-probe'");
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "pg_stat_activity: "
                  "%s", PQerrorMessage(c));
    memset(out, 0, sizeof *out);
    for (int i = 0; i < PQntuples(r) && out->n < 32; i++, out->n++) {
        out->id[out->n] = atoll(PQgetvalue(r, i, 0));
        snprintf(out->cmd[out->n], sizeof out->cmd[0], "%s",
                 PQgetvalue(r, i, 1));
    }
    PQclear(r);
    PQfinish(c);
}

/* 1 when the test can list the store's client connections. */
static int has_conn_list(int kind)
{
    return kind == REDIS || kind == POSTGRESQL || kind == MARIADB;
}

/* 1 when the store counts the connections it accepted. PostgreSQL does
 * not (pg_stat_database.sessions is flushed late). */
static int has_conn_total(int kind)
{
    return kind == REDIS || kind == MEMCACHED || kind == MARIADB;
}

static void store_conns(const env *e, conns *out)
{
    if (e->kind == REDIS)
        redis_conns(&e->srv, out);
    else if (e->kind == POSTGRESQL)
        pg_conns(e, out);
    else
        my_rows(e, "SELECT ID, COMMAND FROM information_schema.PROCESSLIST "
                "WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon' AND "
                "USER <> 'system user'", out);
}

/* Waits (at most 10 s) until the server lists n client connections: a
 * closed one leaves the list a little after its client is gone. */
static void conns_settle(const env *e, int n, conns *out)
{
    long long deadline = tu_now_ms() + 10000;
    for (store_conns(e, out); out->n != n; store_conns(e, out)) {
        ck_assert_msg(tu_now_ms() < deadline, "%s lists %d client "
                      "connections after 10 s, %d expected",
                      store_name[e->kind], out->n, n);
        tu_sleep_ms(5); /* polling the server's state, not a guess */
    }
}

static int conns_has(const conns *c, long long id)
{
    for (int i = 0; i < c->n; i++)
        if (c->id[i] == id)
            return 1;
    return 0;
}

static uint64_t info_field(const char *text, const char *field)
{
    const char *p = strstr(text, field);
    ck_assert_msg(p != NULL, "no '%s' in the server's answer", field);
    return strtoull(p + strlen(field), NULL, 10);
}

/* Connections the server accepted since it started (each probe of the
 * test is one too). */
static uint64_t total_connections(const env *e)
{
    static char buf[1 << 16];
    if (e->kind == REDIS) {
        raw(&e->srv, NULL, "INFO stats", buf, sizeof buf);
        return info_field(buf, "total_connections_received:");
    }
    if (e->kind == MARIADB) {
        /* Connections: every attempt since the start, this one included */
        conns c;
        my_rows(e, "SELECT 0, VARIABLE_VALUE FROM information_schema."
                "GLOBAL_STATUS WHERE VARIABLE_NAME = 'CONNECTIONS'", &c);
        ck_assert_int_eq(c.n, 1);
        return strtoull(c.cmd[0], NULL, 10);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)e->srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect to memcached: %s", strerror(errno));
    ck_assert_int_eq(tu_write_all(fd, "stats\r\n", 7), 0);
    size_t have = 0;
    buf[0] = '\0';
    while (strstr(buf, "END\r\n") == NULL) {
        ck_assert_uint_lt(have + 1, sizeof buf);
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        ck_assert_msg(n > 0, "memcached stats: no answer");
        have += (size_t)n;
        buf[have] = '\0';
    }
    close(fd);
    return info_field(buf, "STAT total_connections ");
}

/* PRAGMA integrity_check of the file, read with sqlite3 directly. */
static void assert_sqlite_intact(const char *path)
{
    sqlite3 *db = NULL;
    ck_assert_msg(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
                  SQLITE_OK, "sqlite3_open_v2(%s)", path);
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
                                        NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    char got[256];
    snprintf(got, sizeof got, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    ck_assert_msg(strcmp(got, "ok") == 0, "PRAGMA integrity_check of %s: %s",
                  path, got);
}

START_TEST(test_child_never_writes_on_parent_connection)
{
    int kind = _i;
    const size_t per = 200;
    char what[96];
    snprintf(what, sizeof what, "%s, the parent's connection",
             store_name[kind]);
    env e;
    env_up(&e, kind);
    /* the network stores: metaprime=0, every allocation a round trip on
     * the one connection; sqlite: batches fetched in the background too */
    idp_client *c = env_open(&e, kind == SQLITE
                                     ? "?batch=16&adaptive=0&low_watermark=50"
                                     : "?metaprime=0");
    idp_counter *ctr = tu_counter(c, "conn");
    idset all = {0};
    uint64_t mine[200];
    take_here(ctr, mine, 10, 0, what);
    ids_add(&all, mine, 10, -1);
    if (kind == SQLITE)
        worker_up(ctr, &all, what);
    uint64_t fetched = store_value(c, "conn");

    conns before = {0}, during = {0}, after = {0};
    uint64_t t0 = 0, t1 = 0, t2 = 0;
    if (has_conn_list(kind)) {
        /* a shared server: the earlier tests' clients leave the list */
        if (is_shared(kind))
            conns_settle(&e, 1, &before);
        store_conns(&e, &before);
        ck_assert_msg(before.n == 1, "%s: %d client connections before the "
                      "fork, 1 expected", what, before.n);
    }
    uint64_t per_open = 0;   /* connections a client opens (memcached:
                                the open's settings check, then its own) */
    if (has_conn_total(kind)) {
        uint64_t ta = total_connections(&e);
        idp_client *other = env_open(&e, "?metaprime=0");
        tu_next(tu_counter(other, "calibrate"));
        idp_close(other);
        per_open = total_connections(&e) - ta - 1;
        ck_assert_uint_ge(per_open, 1);
        if (kind == MARIADB) /* the calibrating client gone from the list */
            conns_settle(&e, 1, &during);
        t0 = total_connections(&e);
    }

    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    job j = {.c = c, .ctr = ctr, .threads = 1, .per_thread = per,
             .close_it = 1, .go_when = GO_BEFORE_CLOSE, .go_rd = go[0],
             .go_wr = go[1]};
    kid k;
    kid_start(&k, run_job, &j);
    close(go[0]);
    /* the parent works on its connection while the child has its own */
    take_here(ctr, mine + 10, 90, 0, what);
    ids_add(&all, mine + 10, 90, -1);
    kid_wait_bytes(&k, per * sizeof(uint64_t), KID_MS, what);
    if (has_conn_list(kind)) {
        store_conns(&e, &during);
        ck_assert_msg(during.n == 2 && conns_has(&during, before.id[0]),
                      "%s: with the child's client open the server has %d "
                      "client connections (id=%lld cmd=%s, id=%lld cmd=%s, "
                      "...); 2 expected: the parent's id=%lld and the "
                      "child's own", what, during.n, during.id[0],
                      during.cmd[0], during.id[1], during.cmd[1],
                      before.id[0]);
    }
    if (has_conn_total(kind)) {
        t1 = total_connections(&e);
        /* the child's connection, and the probes since t0 */
        uint64_t probes = has_conn_list(kind) ? 2 : 1;
        ck_assert_msg(t1 - t0 == per_open + probes, "%s: %" PRIu64
                      " connections accepted while the child ran, %" PRIu64
                      " (the child's own, as any new client) + %" PRIu64
                      " probes expected", what, t1 - t0, per_open, probes);
    }
    /* the child closes its client and exits */
    ck_assert_int_eq(tu_write_all(go[1], "g", 1), 0);
    kids_wait(&k, 1, KID_MS, what);
    close(go[1]);
    uint64_t close_ms = 0;
    ids_add(&all, kid_ids(&k, per, fetched, &close_ms, what, 0), per, 0);
    ck_assert_msg(close_ms < CHILD_CLOSE_MS, "%s: idp_close in the child "
                  "took %" PRIu64 " ms", what, close_ms);

    /* the parent's next allocations all succeed, on the same connection */
    take_here(ctr, mine + 100, 100, 0, what);
    ids_add(&all, mine + 100, 100, -1);
    if (has_conn_list(kind)) {
        store_conns(&e, &after);
        ck_assert_msg(conns_has(&after, before.id[0]), "%s: the parent's "
                      "connection id=%lld is gone after the child exited",
                      what, before.id[0]);
        for (int i = 0; i < after.n; i++)
            ck_assert_msg(after.id[i] == before.id[0] ||
                          conns_has(&during, after.id[i]), "%s: a new "
                          "connection id=%lld (cmd=%s) after the child "
                          "exited: the parent reconnected", what,
                          after.id[i], after.cmd[i]);
    }
    if (has_conn_total(kind)) {
        t2 = total_connections(&e);
        uint64_t probes = has_conn_list(kind) ? 2 : 1;
        ck_assert_msg(t2 - t1 == probes, "%s: %" PRIu64 " connections "
                      "accepted after the child exited while the parent "
                      "allocated, %" PRIu64 " probes expected: the parent "
                      "reconnected (its connection was disturbed)", what,
                      t2 - t1, probes);
    }
    uint64_t highest = ids_check(&all, what);
    idp_counter_stats st = tu_settle(ctr);
    ck_assert_uint_eq(st.errors, 0);
    idp_close(c);
    if (kind == SQLITE) {
        assert_sqlite_intact(e.path);
        /* no lost increment: the file is at or above every ID */
        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open_v2(e.path, &db, SQLITE_OPEN_READONLY,
                                         NULL), SQLITE_OK);
        sqlite3_stmt *q = NULL;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value FROM "
                                            "idprime_counters WHERE name = "
                                            "'conn'", -1, &q, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
        uint64_t v = (uint64_t)sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        sqlite3_close(db);
        ck_assert_msg(v >= highest, "%s: the file holds %" PRIu64 ", below "
                      "ID %" PRIu64 " handed out", what, v, highest);
    }
    assert_store_covers(&e, "conn", highest);
    free(all.e);
    kid_free(&k);
    env_down(&e);
}
END_TEST

/* ---- 5. idp_close in a child that never used the client ---------------- */

/* The store hangs: the server stopped (SIGSTOP; PostgreSQL with its
 * backends), the SQLite file locked by another connection. Returns that
 * connection (sqlite). */
static sqlite3 *hang_store(env *e)
{
    if (e->kind != SQLITE) {
        hang_all(&e->srv);
        return NULL;
    }
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(e->path, &db, SQLITE_OPEN_READWRITE,
                                     NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static void unhang_store(env *e, sqlite3 *db)
{
    if (e->kind != SQLITE) {
        resume_all(&e->srv);
        return;
    }
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

START_TEST(test_close_in_child_that_never_used_client)
{
    int kind = _i;
    const long timeout_ms = 1000;
    char what[96], q[128];
    snprintf(what, sizeof what, "%s, close in an idle child",
             store_name[kind]);
    env e;
    env_up(&e, kind);
    snprintf(q, sizeof q, "?batch=16&adaptive=0&low_watermark=90"
             "&timeout_ms=%ld", timeout_ms);
    idp_client *c = env_open(&e, q);
    idp_counter *ctr = tu_counter(c, "idle");
    idset all = {0};
    uint64_t mine[400];
    take_here(ctr, mine, 40, 0, what);   /* the worker is started */
    ids_add(&all, mine, 40, -1);
    worker_up(ctr, &all, what);

    /* the store hangs while a background fetch is queued, and a thread of
     * the parent drains the pool and waits for that fetch */
    sqlite3 *lock = hang_store(&e);
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    uint64_t waited = st.waited_calls;
    atomic_int stop = 0;
    taker t = {.ctr = ctr, .ids = mine + 40, .cap = 300, .stop = &stop,
               .tolerate = 1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, taker_main, &t), 0);
    long long deadline = tu_now_ms() + 5000;
    do {
        idp_counter_stats_get(ctr, &st);
        if (st.in_flight && st.waited_calls > waited)
            break;
        sched_yield();
    } while (tu_now_ms() < deadline);

    /* fork() waits for the store call in progress (up to timeout_ms) */
    job j = {.c = c, .threads = 0, .close_it = 1, .go_rd = -1, .go_wr = -1};
    kid k;
    long long f0 = tu_now_ms();
    kid_start(&k, run_job, &j);
    long long fork_ms = tu_now_ms() - f0;
    kids_wait(&k, 1, KID_MS, what);
    uint64_t close_ms = 0;
    kid_ids(&k, 0, 0, &close_ms, what, 0);
    /* with the store still hung: the child's idp_close neither waits for
     * the parent's fetch or thread nor talks to the store */
    ck_assert_msg(close_ms < (uint64_t)timeout_ms / 2, "%s: idp_close in a "
                  "child that never used the client took %" PRIu64 " ms "
                  "(timeout_ms=%ld; fork took %lld ms)", what, close_ms,
                  timeout_ms, fork_ms);

    unhang_store(&e, lock);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    ids_add(&all, t.ids, atomic_load(&t.got), -1);
    /* the parent's client keeps working */
    size_t n = 40 + atomic_load(&t.got);
    take_here(ctr, mine + n, 50, 0, what);
    ids_add(&all, mine + n, 50, -1);
    uint64_t highest = ids_check(&all, what);
    idp_close(c);
    assert_store_covers(&e, "idle", highest);
    free(all.e);
    kid_free(&k);
    env_down(&e);
}
END_TEST

/* ---- 6. the parent closes before the child's first call ----------------- */

START_TEST(test_parent_closes_before_child_first_call)
{
    int kind = _i;
    const size_t per = 1000;
    char what[96];
    snprintf(what, sizeof what, "%s, parent closed first", store_name[kind]);
    env e;
    env_up(&e, kind);
    idp_client *c = env_open(&e, "?batch=32&adaptive=0&low_watermark=50");
    idp_counter *ctr = tu_counter(c, "late");
    idset all = {0};
    uint64_t mine[500];
    take_here(ctr, mine, 100, 0, what);
    ids_add(&all, mine, 100, -1);
    worker_up(ctr, &all, what);
    uint64_t fetched = store_value(c, "late");

    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    job j = {.c = c, .ctr = ctr, .name = "late", .threads = 2,
             .per_thread = per / 2, .close_it = 1,
             .go_when = GO_BEFORE_FIRST_CALL, .go_rd = go[0],
             .go_wr = go[1]};
    kid k;
    kid_start(&k, run_job, &j);
    close(go[0]);
    take_here(ctr, mine + 100, 400, 0, what);
    ids_add(&all, mine + 100, 400, -1);
    idp_close(c);
    ck_assert_int_eq(tu_write_all(go[1], "g", 1), 0);
    kids_wait(&k, 1, KID_MS, what);
    close(go[1]);
    uint64_t close_ms = 0;
    ids_add(&all, kid_ids(&k, per, fetched, &close_ms, what, 0), per, 0);
    ck_assert_msg(close_ms < CHILD_CLOSE_MS, "%s: idp_close in the child "
                  "took %" PRIu64 " ms", what, close_ms);
    uint64_t highest = ids_check(&all, what);
    if (kind == SQLITE)
        assert_sqlite_intact(e.path);
    assert_store_covers(&e, "late", highest);
    free(all.e);
    kid_free(&k);
    env_down(&e);
}
END_TEST

/* ---- Suite -------------------------------------------------------------- */

int main(void)
{
    /* a child of a test is gone with it; a write to a dead child's pipe is
     * an error, not a signal */
    signal(SIGPIPE, SIG_IGN);
    const TTest *none[] = {NULL};
    const TTest *both[] = {test_take_one_fork_both_allocate,
                           test_take_one_fork_both_allocate_child_threads,
                           test_take_one_fork_both_allocate_run_held, NULL};
    const TTest *prefork_tests[] = {
        test_prefork_8_workers_metaprime1_idle_parent,
        test_prefork_8_workers_metaprime1_busy_parent,
        test_prefork_8_workers_metaprime0_incr_idle_parent,
        test_prefork_8_workers_metaprime0_incr_busy_parent, NULL};
    const TTest *busy[] = {test_fork_while_worker_fetches, NULL};
    const TTest *conn[] = {test_child_never_writes_on_parent_connection,
                           NULL};
    const TTest *close_tests[] = {test_close_in_child_that_never_used_client,
                                  test_parent_closes_before_child_first_call,
                                  NULL};
    /* each loop test runs for _i = REDIS, MEMCACHED, SQLITE, POSTGRESQL,
     * MARIADB */
    const tu_case cases[] = {
        {.name = "both_allocate", .tests = none, .loops = both,
         .rows = NSTORES},
        {.name = "prefork", .tests = none, .loops = prefork_tests,
         .rows = NSTORES},
        {.name = "worker_fetching", .tests = none, .loops = busy,
         .rows = NSTORES},
        {.name = "connection", .tests = none, .loops = conn, .rows = NSTORES},
        {.name = "close", .tests = none, .loops = close_tests,
         .rows = NSTORES},
        {.name = NULL}};
    for (int k = 0; k < NSTORES; k++)
        if (is_shared(k) && server_start(&shared[k], store_name[k], NULL))
            fprintf(stderr, "test_fork: %s did not start\n", store_name[k]);
    int rc = tu_run(tu_suite("fork", 120, cases));
    for (int k = 0; k < NSTORES; k++)
        if (shared[k].pid != 0)
            server_stop(&shared[k], 0);
    return rc;
}
