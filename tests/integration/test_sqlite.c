/*
 * test_sqlite.c - the sqlite store on real SQLite files in temp directories,
 * through the public API: one test per promise of DESIGN.md, asserting
 * values.
 *
 * What the store itself holds (a counter's value and type, the count of
 * increments it applied) is read with the sqlite3 library directly, so the
 * test checks the file, not what the plugin says about it.
 */
#define _GNU_SOURCE  /* nftw */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "idprime/idprime.h"

/* ---- Helpers ------------------------------------------------------------ */

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A fresh temp directory for this test's files. */
static const char *tmpdir(void)
{
    static char dir[PATH_MAX];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    return dir;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a test's directory and its files (kept when a test fails). */
static void rm_tmpdir(const char *dir)
{
    ck_assert_int_eq(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* "sqlite://" + dir + "/" + file + query, in a static buffer. */
static const char *db_uri(const char *dir, const char *file,
                          const char *query)
{
    static char uri[PATH_MAX + 256];
    snprintf(uri, sizeof uri, "sqlite://%s/%s%s", dir, file,
             query != NULL ? query : "");
    return uri;
}

static const char *db_path(const char *dir, const char *file)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return path;
}

static idp_client *open_or_fail(const char *uri, idp_error *err)
{
    idp_options o = {.size = sizeof o};
    memset(err, 0, sizeof *err);
    return idp_open(uri, &o, err);
}

static idp_client *open_ok(const char *uri)
{
    idp_error err;
    idp_client *c = open_or_fail(uri, &err);
    ck_assert_msg(c != NULL, "idp_open(%s): %s", uri, err.msg);
    return c;
}

static idp_counter *counter(idp_client *c, const char *name)
{
    idp_error err;
    idp_counter *ctr = idp_counter_get(c, name, &err);
    ck_assert_msg(ctr != NULL, "idp_counter_get(%s): %s", name, err.msg);
    return ctr;
}

static uint64_t next_ok(idp_counter *ctr)
{
    idp_error err;
    uint64_t id = 0;
    int rc = idp_next(ctr, &id, &err);
    ck_assert_msg(rc == IDP_OK, "idp_next: %d %s", rc, err.msg);
    return id;
}

static uint64_t prime_calls(idp_counter *ctr)
{
    idp_counter_stats st;
    idp_counter_stats_get(ctr, &st);
    return st.prime_calls;
}

/* Asserts that the error message contains `want`. */
static void msg_has(const idp_error *err, const char *want)
{
    ck_assert_msg(strstr(err->msg, want) != NULL,
                  "message '%s' does not contain '%s'", err->msg, want);
}

/* ---- The file, read with sqlite3 directly ------------------------------ */

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    ck_assert_msg(rc == SQLITE_OK, "sqlite3_open_v2(%s): %s", path,
                  db != NULL ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/*
 * Runs a one-row, one-column query on the file at `path` and returns the
 * integer; stores typeof() of it in `type` when not NULL. A missing row
 * gives 0 and type "none".
 */
static uint64_t raw_value(const char *path, const char *sql, char *type,
                          size_t tlen)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    uint64_t v = 0;
    const char *t = "none";
    if (rc == SQLITE_ROW) {
        v = (uint64_t)sqlite3_column_int64(st, 0);
        int ty = sqlite3_column_type(st, 0);
        t = ty == SQLITE_INTEGER ? "integer" : ty == SQLITE_FLOAT ? "real"
          : ty == SQLITE_TEXT ? "text" : ty == SQLITE_NULL ? "null" : "blob";
    } else {
        ck_assert_msg(rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    }
    if (type != NULL)
        snprintf(type, tlen, "%s", t);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The counter's value as the file holds it (type in `type`). */
static uint64_t file_counter(const char *path, const char *key, char *type,
                             size_t tlen)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT value FROM idprime_counters "
             "WHERE name = '%s'", key);
    return raw_value(path, sql, type, tlen);
}

/* Every increment the store applied, for anyone. */
static uint64_t file_increments(const char *path)
{
    return raw_value(path, "SELECT value FROM idprime_stats "
                     "WHERE name = 'increments'", NULL, 0);
}

/* ---- IDs from many processes -------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts the IDs and asserts every one is >= 1 and none repeats. */
static void assert_all_distinct(uint64_t *ids, size_t n)
{
    qsort(ids, n, sizeof *ids, cmp_id);
    ck_assert_uint_ge(ids[0], 1);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(ids[i] != ids[i - 1], "ID %llu handed out twice",
                      (unsigned long long)ids[i]);
}

#define PROCS 4
#define THREADS 2
#define PER_THREAD 50000

typedef struct taker {
    idp_counter *ctr;
    uint64_t *ids;
    int bad;   /* 0 ok, 1 an error, 2 IDs did not increase */
    idp_error err;
} taker;

static void *take_ids(void *arg)
{
    taker *t = arg;
    for (size_t i = 0; i < PER_THREAD; i++) {
        if (idp_next(t->ctr, &t->ids[i], &t->err) != IDP_OK) {
            t->bad = 1;
            return NULL;
        }
        if (i > 0 && t->ids[i] <= t->ids[i - 1]) {
            t->bad = 2;
            return NULL;
        }
    }
    return NULL;
}

/*
 * A child process: one client, THREADS threads taking PER_THREAD IDs each,
 * written to `ids_path` followed by the engine's prime_calls. Exits 0 on
 * success; never returns.
 */
static void child_take(const char *uri, const char *ids_path)
{
    idp_error err;
    idp_client *c = open_or_fail(uri, &err);
    if (c == NULL) {
        fprintf(stderr, "child %d: %s\n", (int)getpid(), err.msg);
        _exit(10);
    }
    idp_counter *ctr = idp_counter_get(c, "inode", &err);
    if (ctr == NULL)
        _exit(11);
    static uint64_t ids[THREADS * PER_THREAD];
    taker t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (taker){.ctr = ctr, .ids = ids + (size_t)i * PER_THREAD};
        pthread_create(&th[i], NULL, take_ids, &t[i]);
    }
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        bad |= t[i].bad;
        if (t[i].bad == 1)
            fprintf(stderr, "child %d: %s\n", (int)getpid(), t[i].err.msg);
    }
    uint64_t calls = prime_calls(ctr);
    idp_close(c);
    FILE *f = fopen(ids_path, "wb");
    if (bad || f == NULL ||
        fwrite(ids, sizeof ids[0], THREADS * PER_THREAD, f) !=
            THREADS * PER_THREAD ||
        fwrite(&calls, sizeof calls, 1, f) != 1 || fclose(f) != 0)
        _exit(20 + bad);
    _exit(0);
}

/* ---- Tests: IDs --------------------------------------------------------- */

START_TEST(test_first_ids_are_1_2_3)
{
    const char *dir = tmpdir();
    idp_client *c = open_ok(db_uri(dir, "ids.db", NULL));
    idp_counter *ctr = counter(c, "inode");
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(next_ok(ctr), want);
    /* one batch of inode's default 256, read back from the file */
    char type[16];
    ck_assert_uint_eq(file_counter(db_path(dir, "ids.db"), "inode", type,
                                   sizeof type), 256);
    ck_assert_str_eq(type, "integer");
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_first_ids_are_1_2_3_without_batching)
{
    const char *dir = tmpdir();
    idp_client *c = open_ok(db_uri(dir, "ids.db", "?metaprime=0"));
    idp_counter *ctr = counter(c, "inode");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(next_ok(ctr), want);
        /* one store increment per ID: the file always holds the last one */
        ck_assert_uint_eq(file_counter(db_path(dir, "ids.db"), "inode",
                                       NULL, 0), want);
    }
    ck_assert_uint_eq(file_increments(db_path(dir, "ids.db")), 5);
    ck_assert_uint_eq(prime_calls(ctr), 5);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_sqlite3_scheme_is_the_same_store)
{
    const char *dir = tmpdir();
    char uri[PATH_MAX + 64];
    snprintf(uri, sizeof uri, "sqlite3://%s/s.db", dir);
    idp_client *c = open_ok(uri);
    ck_assert_str_eq(idp_client_store(c), "sqlite");
    ck_assert_uint_eq(next_ok(counter(c, "inode")), 1);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    const char *dir = tmpdir();
    char uri[PATH_MAX + 64], paths[PROCS][PATH_MAX + 32];
    snprintf(uri, sizeof uri, "%s", db_uri(dir, "shared.db", NULL));
    /* The children fork before this process opens any client. */
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        snprintf(paths[p], sizeof paths[p], "%s/ids.%d", dir, p);
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0)
            child_take(uri, paths[p]);
    }
    for (int p = 0; p < PROCS; p++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[p], &st, 0), pids[p]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "child %d failed (status 0x%x)", p, st);
    }
    size_t per = (size_t)THREADS * PER_THREAD, n = 0;
    uint64_t *all = malloc(PROCS * per * sizeof *all), calls = 0;
    ck_assert_ptr_nonnull(all);
    for (int p = 0; p < PROCS; p++) {
        FILE *f = fopen(paths[p], "rb");
        ck_assert_msg(f != NULL, "%s: %s", paths[p], strerror(errno));
        uint64_t c = 0;
        ck_assert_uint_eq(fread(all + n, sizeof *all, per, f), per);
        ck_assert_uint_eq(fread(&c, sizeof c, 1, f), 1);
        fclose(f);
        n += per;
        calls += c;
    }
    ck_assert_uint_eq(n, 400000);
    assert_all_distinct(all, n);
    /* the file is past every ID handed out and counted every fetch of
     * every process: each added one batch of 256 */
    const char *path = db_path(dir, "shared.db");
    uint64_t value = file_counter(path, "inode", NULL, 0);
    uint64_t inc = file_increments(path);
    ck_assert_uint_ge(value, all[n - 1]);
    ck_assert_uint_eq(value, inc * 256);
    /* the engines counted the same fetches, but for one per process that
     * may still have been in flight when a child read its stats */
    ck_assert_uint_ge(inc, calls);
    ck_assert_uint_le(inc, calls + PROCS);
    ck_assert_uint_ge(calls, (400000 + 255) / 256);
    free(all);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_store_counts_one_increment_per_batch)
{
    const char *dir = tmpdir();
    const char *path = db_path(dir, "count.db");
    char uri[PATH_MAX + 128];
    /* low_watermark=0: a fetch only when the pool is empty, so N IDs take
     * exactly ceil(N / batch) fetches */
    snprintf(uri, sizeof uri, "%s",
             db_uri(dir, "count.db", "?batch=100&low_watermark=0"));
    idp_client *a = open_ok(uri);
    snprintf(uri, sizeof uri, "%s",
             db_uri(dir, "count.db", "?batch=64&low_watermark=0"));
    idp_client *b = open_ok(uri);
    idp_counter *ca = counter(a, "files"), *cb = counter(b, "files");
    for (int i = 0; i < 1001; i++)
        next_ok(ca);
    for (int i = 0; i < 200; i++)
        next_ok(cb);
    ck_assert_uint_eq(prime_calls(ca), 11);   /* ceil(1001 / 100) */
    ck_assert_uint_eq(prime_calls(cb), 4);    /* ceil(200 / 64) */
    ck_assert_uint_eq(file_increments(path), 11 + 4);
    ck_assert_uint_eq(file_counter(path, "files", NULL, 0), 11 * 100 + 4 * 64);
    idp_close(a);
    idp_close(b);

    idp_client *legacy = open_ok(db_uri(dir, "count.db", "?metaprime=0"));
    idp_counter *cl = counter(legacy, "files");
    for (int i = 0; i < 7; i++)
        ck_assert_uint_eq(next_ok(cl), 11 * 100 + 4 * 64 + (uint64_t)i + 1);
    ck_assert_uint_eq(prime_calls(cl), 7);
    ck_assert_uint_eq(file_increments(path), 11 + 4 + 7);
    idp_close(legacy);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_store_counts_every_increment_of_a_pipelined_fetch)
{
    const char *dir = tmpdir();
    const char *path = db_path(dir, "many.db");
    /* Background fetches of counters that reach their watermark together go
     * to the store in one transaction (incr_many): each still counts as one
     * increment and lands in its own row. */
    idp_client *c = open_ok(db_uri(dir, "many.db",
                                   "?batch=10&low_watermark=50"));
    enum { NCTR = 8, ROUNDS = 400 };
    idp_counter *ctrs[NCTR];
    uint64_t last[NCTR] = {0}, calls[NCTR], total = 0;
    char name[NCTR][16];
    for (int k = 0; k < NCTR; k++) {
        snprintf(name[k], sizeof name[k], "c%d", k);
        ctrs[k] = counter(c, name[k]);
    }
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < NCTR; k++) {
            uint64_t id = next_ok(ctrs[k]);
            ck_assert_uint_gt(id, last[k]);
            last[k] = id;
        }
    for (int k = 0; k < NCTR; k++) {
        ck_assert_uint_ge(last[k], ROUNDS);
        calls[k] = prime_calls(ctrs[k]);
        total += calls[k];
    }
    idp_close(c);   /* finishes a fetch still in flight */
    /* every fetch added one batch of 10 to its own row and counted once */
    uint64_t inc = file_increments(path), batches = 0;
    for (int k = 0; k < NCTR; k++) {
        uint64_t v = file_counter(path, name[k], NULL, 0);
        ck_assert_uint_eq(v % 10, 0);
        ck_assert_uint_ge(v, calls[k] * 10);
        batches += v / 10;
    }
    ck_assert_uint_eq(inc, batches);
    /* and the engine counted them all, but for fetches in flight at close */
    ck_assert_uint_ge(inc, total);
    ck_assert_uint_le(inc, total + NCTR);
    rm_tmpdir(dir);
}
END_TEST

/* ---- Tests: failures ---------------------------------------------------- */

/* A child that hands IDs down a pipe until it is killed. */
static void child_stream(const char *uri, int fd)
{
    idp_error err;
    idp_client *c = open_or_fail(uri, &err);
    if (c == NULL)
        _exit(10);
    idp_counter *ctr = idp_counter_get(c, "files", &err);
    for (;;) {
        uint64_t id;
        if (idp_next(ctr, &id, &err) != IDP_OK)
            _exit(11);
        if (write(fd, &id, sizeof id) != (ssize_t)sizeof id)
            _exit(12);
    }
}

/*
 * Starts a child streaming IDs from `uri`, reads `take` of them, kills the
 * child with SIGKILL (mid-transaction, often, without batching), then
 * collects what was still in the pipe. Appends to ids; returns the count.
 */
static size_t stream_and_kill(const char *uri, size_t take, uint64_t *ids)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_stream(uri, fds[1]);
    }
    close(fds[1]);
    size_t n = 0;
    for (; n < take; n++)
        ck_assert_int_eq(read(fds[0], &ids[n], sizeof ids[n]),
                         (ssize_t)sizeof ids[n]);
    kill(pid, SIGKILL);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "the child ended by itself (status 0x%x)", st);
    while (read(fds[0], &ids[n], sizeof ids[n]) == (ssize_t)sizeof ids[n])
        n++;
    close(fds[0]);
    return n;
}

START_TEST(test_killed_client_never_repeats_an_id)
{
    const char *dir = tmpdir();
    /* enough room for what a pipe can hold on top of each take */
    size_t cap = 64 * 1024;
    uint64_t *ids = malloc(cap * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    const char *queries[] = {"?batch=50", "?metaprime=0", "?batch=50",
                             "?metaprime=0"};
    char uri[PATH_MAX + 64];
    size_t n = 0;
    uint64_t high = 0;
    for (size_t r = 0; r < sizeof queries / sizeof *queries; r++) {
        snprintf(uri, sizeof uri, "%s", db_uri(dir, "kill.db", queries[r]));
        size_t got = stream_and_kill(uri, 300, ids + n);
        /* a restarted client starts above everything handed out before */
        for (size_t i = n; i < n + got; i++)
            ck_assert_msg(ids[i] > high, "round %zu: ID %llu not above %llu",
                          r, (unsigned long long)ids[i],
                          (unsigned long long)high);
        for (size_t i = n; i < n + got; i++)
            if (ids[i] > high)
                high = ids[i];
        n += got;
        ck_assert_uint_lt(n + 20000, cap);
    }
    /* and a client of this process, after them all */
    idp_client *c = open_ok(db_uri(dir, "kill.db", NULL));
    idp_counter *ctr = counter(c, "files");
    for (int i = 0; i < 100; i++) {
        ids[n] = next_ok(ctr);
        ck_assert_uint_gt(ids[n], high);
        n++;
    }
    idp_close(c);
    assert_all_distinct(ids, n);
    free(ids);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_locked_file_fails_within_timeout_and_recovers)
{
    const char *dir = tmpdir();
    const char *path = db_path(dir, "lock.db");
    const char *q = "?batch=10&low_watermark=0&timeout_ms=500";
    idp_client *c = open_ok(db_uri(dir, "lock.db", q));
    idp_counter *ctr = counter(c, "files");
    ck_assert_uint_eq(next_ok(ctr), 1);

    sqlite3 *other = raw_open(path);
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, &msg) ==
                  SQLITE_OK, "BEGIN EXCLUSIVE: %s", msg);
    /* the pool still serves without the store */
    for (uint64_t want = 2; want <= 10; want++)
        ck_assert_uint_eq(next_ok(ctr), want);

    idp_error err;
    uint64_t id = 0;
    long long t0 = ms_now();
    int rc = idp_next(ctr, &id, &err);
    long long took = ms_now() - t0;
    ck_assert_int_eq(rc, IDP_ETIMEOUT);
    msg_has(&err, "lock.db");
    msg_has(&err, "locked");
    ck_assert_int_ge(took, 450);
    ck_assert_int_le(took, 500 + 1500);

    ck_assert_int_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    /* the failed increment was rolled back: the next batch is 11..20 */
    ck_assert_uint_eq(next_ok(ctr), 11);
    ck_assert_uint_eq(file_counter(path, "files", NULL, 0), 20);
    ck_assert_uint_eq(file_increments(path), 2);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_reaching_2_63_is_an_error_and_stays_integer)
{
    const char *dir = tmpdir();
    const char *path = db_path(dir, "big.db");
    const uint64_t max = (uint64_t)INT64_MAX;
    idp_client *c = open_ok(db_uri(dir, "big.db", "?metaprime=0"));
    idp_error err;
    uint64_t v = 0, last = 0;
    ck_assert_int_eq(idp_raise(c, "big", max - 5, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, max - 5);
    idp_counter *ctr = counter(c, "big");
    ck_assert_int_eq(idp_incr(ctr, 5, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, max);
    ck_assert_int_eq(idp_next(ctr, &v, &err), IDP_ERANGE);
    msg_has(&err, "2^63");

    /* batching: a whole batch past the limit is refused too */
    ck_assert_int_eq(idp_raise(c, "near", max - 100, NULL, &err), IDP_OK);
    idp_client *b = open_ok(db_uri(dir, "big.db", "?batch=256"));
    ck_assert_int_eq(idp_next(counter(b, "near"), &v, &err), IDP_ERANGE);
    idp_close(b);
    idp_close(c);

    char type[16];
    ck_assert_uint_eq(file_counter(path, "big", type, sizeof type), max);
    ck_assert_str_eq(type, "integer");
    ck_assert_uint_eq(file_counter(path, "near", type, sizeof type),
                      max - 100);
    ck_assert_str_eq(type, "integer");
    rm_tmpdir(dir);
}
END_TEST

/* ---- Tests: URIs -------------------------------------------------------- */

START_TEST(test_missing_directory_is_named_not_created)
{
    const char *dir = tmpdir();
    char uri[PATH_MAX + 64], sub[PATH_MAX + 32];
    snprintf(sub, sizeof sub, "%s/no/such", dir);
    snprintf(uri, sizeof uri, "sqlite://%s/x.db", sub);
    idp_error err;
    ck_assert_ptr_null(open_or_fail(uri, &err));
    ck_assert_int_ne(err.code, IDP_OK);
    msg_has(&err, sub);
    msg_has(&err, strerror(ENOENT));
    struct stat st;
    ck_assert_int_ne(stat(sub, &st), 0);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_unusable_directory_is_named)
{
    const char *dir = tmpdir();
    char file[PATH_MAX + 32], uri[PATH_MAX + 64];
    /* a regular file where the directory should be */
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(uri, sizeof uri, "sqlite://%s/x.db", file);
    idp_error err;
    ck_assert_ptr_null(open_or_fail(uri, &err));
    msg_has(&err, file);
    msg_has(&err, strerror(ENOTDIR));

    /* a read-only directory (root writes anywhere: nothing to test) */
    if (geteuid() != 0) {
        char ro[PATH_MAX + 32];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        snprintf(uri, sizeof uri, "sqlite://%s/x.db", ro);
        ck_assert_ptr_null(open_or_fail(uri, &err));
        msg_has(&err, ro);
        msg_has(&err, strerror(EACCES));
    }
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_bad_synchronous_value_is_named)
{
    const char *dir = tmpdir();
    idp_error err;
    ck_assert_ptr_null(open_or_fail(db_uri(dir, "s.db",
                                           "?synchronous=SOMETIMES"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "synchronous");
    msg_has(&err, "FULL");
    msg_has(&err, "NORMAL");
    /* the allowed values open */
    idp_client *c = open_ok(db_uri(dir, "s.db", "?synchronous=NORMAL"));
    ck_assert_uint_eq(next_ok(counter(c, "inode")), 1);
    idp_close(c);
    c = open_ok(db_uri(dir, "s.db", "?synchronous=FULL"));
    ck_assert_uint_eq(next_ok(counter(c, "inode")), 257);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_port_password_and_hosts_are_refused)
{
    idp_error err;
    ck_assert_ptr_null(open_or_fail("sqlite://localhost:6000/x.db", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "port");

    ck_assert_ptr_null(open_or_fail("sqlite://me:s3cret@/tmp/x.db", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "password");
    ck_assert_msg(strstr(err.msg, "s3cret") == NULL, "password shown: %s",
                  err.msg);

    ck_assert_ptr_null(open_or_fail("sqlite://me@/tmp/x.db", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "user");

    ck_assert_ptr_null(open_or_fail("sqlite://a,b/x.db", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    msg_has(&err, "several hosts");
}
END_TEST

START_TEST(test_relative_path_is_relative_to_the_current_directory)
{
    const char *dir = tmpdir();
    char cwd[PATH_MAX], rel[PATH_MAX + 16];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(dir), 0);
    snprintf(rel, sizeof rel, "%s/rel", dir);
    ck_assert_int_eq(mkdir(rel, 0700), 0);
    idp_client *c = open_ok("sqlite://rel/path.db?batch=7");
    ck_assert_uint_eq(next_ok(counter(c, "files")), 1);
    idp_close(c);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_uint_eq(file_counter(db_path(dir, "rel/path.db"), "files",
                                   NULL, 0), 7);
    rm_tmpdir(dir);
}
END_TEST

/* ---- Tests: operations -------------------------------------------------- */

START_TEST(test_raise_never_lowers)
{
    const char *dir = tmpdir();
    idp_client *c = open_ok(db_uri(dir, "r.db", NULL));
    idp_error err;
    uint64_t v = 0;
    ck_assert_int_eq(idp_raise(c, "mig", 100, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 100);
    ck_assert_int_eq(idp_raise(c, "mig", 50, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 100);
    ck_assert_uint_eq(file_counter(db_path(dir, "r.db"), "mig", NULL, 0), 100);
    ck_assert_int_eq(idp_raise(c, "mig", 150, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 150);
    /* the next ID follows the raised value */
    ck_assert_uint_eq(next_ok(counter(c, "mig")), 151);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

typedef struct seen {
    char names[8][64];
    uint64_t values[8];
    int n;
} seen;

static int remember(void *ud, const char *name, uint64_t value)
{
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
        s->values[s->n] = value;
    }
    s->n++;
    return 0;
}

START_TEST(test_list_finds_counters_by_prefix)
{
    const char *dir = tmpdir();
    /* "a_" and "a%" must not act as LIKE wildcards matching "ab" */
    idp_client *u = open_ok(db_uri(dir, "l.db", "?prefix=a_&batch=10"));
    idp_client *p = open_ok(db_uri(dir, "l.db", "?prefix=a%25&batch=20"));
    idp_client *o = open_ok(db_uri(dir, "l.db", "?prefix=ab&batch=30"));
    next_ok(counter(u, "files"));
    next_ok(counter(u, "dirs"));
    next_ok(counter(p, "files"));
    next_ok(counter(o, "files"));

    idp_error err;
    seen s = {0};
    ck_assert_int_eq(idp_list(u, remember, &s, &err), IDP_OK);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.names[0], "dirs");
    ck_assert_uint_eq(s.values[0], 10);
    ck_assert_str_eq(s.names[1], "files");
    ck_assert_uint_eq(s.values[1], 10);

    memset(&s, 0, sizeof s);
    ck_assert_int_eq(idp_list(p, remember, &s, &err), IDP_OK);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.names[0], "files");
    ck_assert_uint_eq(s.values[0], 20);
    idp_close(u);
    idp_close(p);
    idp_close(o);

    /* no prefix: every counter in the file whose whole key is a valid
     * counter name ("a%files" is not one) */
    idp_client *all = open_ok(db_uri(dir, "l.db", NULL));
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(idp_list(all, remember, &s, &err), IDP_OK);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.names[0], "a_dirs");
    ck_assert_str_eq(s.names[1], "a_files");
    ck_assert_str_eq(s.names[2], "abfiles");
    ck_assert_uint_eq(s.values[2], 30);
    idp_close(all);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_get_missing_counter_gives_exists_0)
{
    const char *dir = tmpdir();
    idp_client *c = open_ok(db_uri(dir, "g.db", "?batch=16"));
    idp_error err;
    uint64_t v = 99;
    int exists = 99;
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 0);
    ck_assert_uint_eq(v, 0);
    next_ok(counter(c, "never"));
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 1);
    ck_assert_uint_eq(v, 16);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

/* ---- Suite -------------------------------------------------------------- */

static Suite *sqlite_suite(void)
{
    Suite *s = suite_create("sqlite");
    struct {
        const char *name;
        const TTest *tests[8];
    } groups[] = {
        {"ids", {test_first_ids_are_1_2_3,
                 test_first_ids_are_1_2_3_without_batching,
                 test_sqlite3_scheme_is_the_same_store,
                 test_no_duplicate_across_4_processes_x_2_threads,
                 test_store_counts_one_increment_per_batch,
                 test_store_counts_every_increment_of_a_pipelined_fetch}},
        {"failures", {test_killed_client_never_repeats_an_id,
                      test_locked_file_fails_within_timeout_and_recovers,
                      test_reaching_2_63_is_an_error_and_stays_integer}},
        {"uris", {test_missing_directory_is_named_not_created,
                  test_unusable_directory_is_named,
                  test_bad_synchronous_value_is_named,
                  test_port_password_and_hosts_are_refused,
                  test_relative_path_is_relative_to_the_current_directory}},
        {"operations", {test_raise_never_lowers,
                        test_list_finds_counters_by_prefix,
                        test_get_missing_counter_gives_exists_0}},
    };
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
        TCase *tc = tcase_create(groups[g].name);
        /* Check's default is 4 s; CI runs these under ASan too */
        tcase_set_timeout(tc, 120);
        for (size_t i = 0; i < 8 && groups[g].tests[i] != NULL; i++)
            tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sqlite_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
