/*
 * test_sqlite.c - the sqlite store on real SQLite files in temp directories,
 * through the public API: one test per promise of docs/design.md, asserting
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "testutil.h"

/* ---- Helpers ------------------------------------------------------------ */

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

static uint64_t prime_calls(idp_counter *ctr)
{
    idp_counter_stats st = {.size = sizeof st};
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

/* ---- Tests: IDs --------------------------------------------------------- */

START_TEST(test_first_ids_are_1_2_3)
{
    const char *dir = tmpdir();
    idp_client *c = tu_open(db_uri(dir, "ids.db", NULL), NULL);
    idp_counter *ctr = tu_counter(c, "inode");
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
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
    idp_client *c = tu_open(db_uri(dir, "ids.db", "?metaprime=0"), NULL);
    idp_counter *ctr = tu_counter(c, "inode");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
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
    idp_client *c = tu_open(uri, NULL);
    ck_assert_str_eq(idp_client_store(c), "sqlite");
    ck_assert_uint_eq(tu_next(tu_counter(c, "inode")), 1);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    const char *dir = tmpdir();
    char uri[PATH_MAX + 64];
    /* give_back=0: the closes keep every batch whole, so the file's value
     * below counts the batches */
    snprintf(uri, sizeof uri, "%s",
             db_uri(dir, "shared.db", "?adaptive=0&give_back=0"));
    /* The children fork before this process opens any client. */
    const tu_fanout f = {.uri = uri, .counter = "inode", .procs = 4,
                         .threads = 2, .per_thread = 50000};
    size_t n = 0;
    uint64_t calls = 0;
    uint64_t *all = tu_fanout_ids(&f, &n, &calls);   /* all distinct */
    ck_assert_uint_eq(n, 400000);
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
    ck_assert_uint_le(inc, calls + (uint64_t)f.procs);
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
     * exactly ceil(N / batch) fetches; give_back=0: the closes leave the
     * file at the end of the last batch, where the legacy client goes on */
    snprintf(uri, sizeof uri, "%s", db_uri(dir, "count.db", "?batch=100&"
             "low_watermark=0&adaptive=0&give_back=0"));
    idp_client *a = tu_open(uri, NULL);
    snprintf(uri, sizeof uri, "%s", db_uri(dir, "count.db", "?batch=64&"
             "low_watermark=0&adaptive=0&give_back=0"));
    idp_client *b = tu_open(uri, NULL);
    idp_counter *ca = tu_counter(a, "files"), *cb = tu_counter(b, "files");
    for (int i = 0; i < 1001; i++)
        tu_next(ca);
    for (int i = 0; i < 200; i++)
        tu_next(cb);
    ck_assert_uint_eq(prime_calls(ca), 11);   /* ceil(1001 / 100) */
    ck_assert_uint_eq(prime_calls(cb), 4);    /* ceil(200 / 64) */
    ck_assert_uint_eq(file_increments(path), 11 + 4);
    ck_assert_uint_eq(file_counter(path, "files", NULL, 0), 11 * 100 + 4 * 64);
    idp_close(a);
    idp_close(b);

    idp_client *legacy = tu_open(db_uri(dir, "count.db", "?metaprime=0"), NULL);
    idp_counter *cl = tu_counter(legacy, "files");
    for (int i = 0; i < 7; i++)
        ck_assert_uint_eq(tu_next(cl), 11 * 100 + 4 * 64 + (uint64_t)i + 1);
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
     * increment and lands in its own row. give_back=0: the close leaves
     * every row a whole number of batches. */
    idp_client *c = tu_open(db_uri(dir, "many.db", "?batch=10&low_watermark=50"
                                   "&adaptive=0&give_back=0"), NULL);
    enum { NCTR = 8, ROUNDS = 400 };
    idp_counter *ctrs[NCTR];
    uint64_t last[NCTR] = {0}, calls[NCTR], total = 0;
    char name[NCTR][16];
    for (int k = 0; k < NCTR; k++) {
        snprintf(name[k], sizeof name[k], "c%d", k);
        ctrs[k] = tu_counter(c, name[k]);
    }
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < NCTR; k++) {
            uint64_t id = tu_next(ctrs[k]);
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

START_TEST(test_killed_client_never_repeats_an_id)
{
    const char *dir = tmpdir();
    uint64_t *ids = NULL;
    const char *queries[] = {"?batch=50", "?metaprime=0", "?batch=50",
                             "?metaprime=0"};
    char uri[PATH_MAX + 64];
    size_t n = 0;
    uint64_t high = 0;
    for (size_t r = 0; r < sizeof queries / sizeof *queries; r++) {
        snprintf(uri, sizeof uri, "%s", db_uri(dir, "kill.db", queries[r]));
        /* 300 IDs, then SIGKILL (mid-transaction, often, without
         * batching), then what was still in the pipe */
        size_t start = n;
        tu_take_then_kill(uri, "files", 300, &ids, &n);
        /* a restarted client starts above everything handed out before */
        for (size_t i = start; i < n; i++)
            ck_assert_msg(ids[i] > high, "round %zu: ID %llu not above %llu",
                          r, (unsigned long long)ids[i],
                          (unsigned long long)high);
        for (size_t i = start; i < n; i++)
            if (ids[i] > high)
                high = ids[i];
    }
    ids = realloc(ids, (n + 100) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    /* and a client of this process, after them all */
    idp_client *c = tu_open(db_uri(dir, "kill.db", NULL), NULL);
    idp_counter *ctr = tu_counter(c, "files");
    for (int i = 0; i < 100; i++) {
        ids[n] = tu_next(ctr);
        ck_assert_uint_gt(ids[n], high);
        n++;
    }
    idp_close(c);
    tu_assert_distinct(ids, n);
    free(ids);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_locked_file_fails_within_timeout_and_recovers)
{
    const char *dir = tmpdir();
    const char *path = db_path(dir, "lock.db");
    const char *q = "?batch=10&low_watermark=0&timeout_ms=500";
    idp_client *c = tu_open(db_uri(dir, "lock.db", q), NULL);
    idp_counter *ctr = tu_counter(c, "files");
    ck_assert_uint_eq(tu_next(ctr), 1);

    sqlite3 *other = raw_open(path);
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, &msg) ==
                  SQLITE_OK, "BEGIN EXCLUSIVE: %s", msg);
    /* the pool still serves without the store */
    for (uint64_t want = 2; want <= 10; want++)
        ck_assert_uint_eq(tu_next(ctr), want);

    idp_error err;
    uint64_t id = 0;
    long long t0 = tu_now_ms();
    int rc = idp_next(ctr, &id, &err);
    long long took = tu_now_ms() - t0;
    ck_assert_int_eq(rc, IDP_ETIMEOUT);
    msg_has(&err, "lock.db");
    msg_has(&err, "locked");
    ck_assert_int_ge(took, 450);
    ck_assert_int_le(took, 500 + 1500);

    ck_assert_int_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(other);
    /* the failed increment was rolled back: the next batch is 11..20 */
    ck_assert_uint_eq(tu_next(ctr), 11);
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
    idp_client *c = tu_open(db_uri(dir, "big.db", "?metaprime=0"), NULL);
    idp_error err;
    uint64_t v = 0, last = 0;
    ck_assert_int_eq(idp_raise(c, "big", max - 5, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, max - 5);
    idp_counter *ctr = tu_counter(c, "big");
    ck_assert_int_eq(idp_incr(ctr, 5, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, max);
    ck_assert_int_eq(idp_next(ctr, &v, &err), IDP_ERANGE);
    msg_has(&err, "2^63");

    /* batching: a whole batch past the limit is refused too */
    ck_assert_int_eq(idp_raise(c, "near", max - 100, NULL, &err), IDP_OK);
    idp_client *b = tu_open(db_uri(dir, "big.db", "?batch=256"), NULL);
    ck_assert_int_eq(idp_next(tu_counter(b, "near"), &v, &err), IDP_ERANGE);
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

/* A TEXT value another tool wrote into a table that allows one is named
 * as what it is, not as a counter at 2^63. */
START_TEST(test_text_value_is_named_not_2_63)
{
    const char *dir = tmpdir();
    const char *path = db_path(dir, "text.db");
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE idprime_counters("
                                  "name TEXT PRIMARY KEY, value ANY) STRICT;"
                                  "INSERT INTO idprime_counters VALUES "
                                  "('t', 'abc')", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    idp_client *c = tu_open(db_uri(dir, "text.db", "?metaprime=0"), NULL);
    idp_error err;
    uint64_t v = 0;
    ck_assert_int_eq(idp_next(tu_counter(c, "t"), &v, &err), IDP_ESTORE);
    msg_has(&err, "'t'");
    msg_has(&err, "holds a text value ('abc'), not a counter");
    ck_assert_ptr_null(strstr(err.msg, "2^63"));
    idp_close(c);
    char type[16];
    file_counter(path, "t", type, sizeof type);
    ck_assert_str_eq(type, "text"); /* nothing was changed */
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

    /* a directory this user cannot write (as root, checked by a child that
     * becomes nobody: root writes anywhere) */
    char ro[PATH_MAX + 32];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    ck_assert_int_eq(mkdir(ro, 0555), 0);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    snprintf(uri, sizeof uri, "sqlite://%s/x.db", ro);
    int as_child = geteuid() == 0;
    pid_t pid = as_child ? fork() : 0;
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (as_child && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        int ok = open_or_fail(uri, &err) == NULL &&
                 strstr(err.msg, ro) != NULL &&
                 strstr(err.msg, strerror(EACCES)) != NULL &&
                 strstr(err.msg, "make it writable for this user") != NULL &&
                 strstr(err.msg, "not created") == NULL;
        if (!ok)
            fprintf(stderr, "read-only directory: %s\n", err.msg);
        if (as_child)
            _exit(ok ? 0 : 1);
        ck_assert(ok);
    } else {
        int st = 0;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "the child as nobody: status %d", st);
    }
    rm_tmpdir(dir);
}
END_TEST

/*
 * What a user who may read the file but not write its directory sees
 * (checked in a child that becomes nobody when run as root): get and list
 * answer with the store's value, next fails naming the read-only
 * directory and changes nothing. Returns 0, or 1 after printing why.
 */
static int read_only_user_reads(const char *uri, const char *dir,
                                uint64_t want)
{
    idp_error err;
    idp_client *c = open_or_fail(uri, &err);
    if (c == NULL) {
        fprintf(stderr, "read-only open: %s\n", err.msg);
        return 1;
    }
    uint64_t v = 0, after = 0;
    int exists = 0, ok = 1;
    if (idp_get(c, "inode", &v, &exists, &err) != IDP_OK || !exists ||
        v != want) {
        fprintf(stderr, "read-only get: %llu (exists %d, want %llu): %s\n",
                (unsigned long long)v, exists, (unsigned long long)want,
                err.msg);
        ok = 0;
    }
    idp_counter *ctr = idp_counter_get(c, "inode", &err);
    uint64_t id = 0;
    if (ctr == NULL || idp_next(ctr, &id, &err) == IDP_OK ||
        strstr(err.msg, "read-only") == NULL || strstr(err.msg, dir) == NULL ||
        strstr(err.msg, strerror(EACCES)) == NULL) {
        fprintf(stderr, "read-only next: id %llu: %s\n",
                (unsigned long long)id, err.msg);
        ok = 0;
    }
    if (idp_get(c, "inode", &after, &exists, &err) != IDP_OK ||
        after != want) {
        fprintf(stderr, "read-only get after next: %llu: %s\n",
                (unsigned long long)after, err.msg);
        ok = 0;
    }
    idp_close(c);
    return ok ? 0 : 1;
}

/* Runs read_only_user_reads as nobody (root writes anywhere) or, not
 * root, as this user, and asserts it passed. */
static void assert_read_only_user_reads(const char *uri, const char *dir,
                                        uint64_t want)
{
    if (geteuid() != 0) {
        ck_assert_int_eq(read_only_user_reads(uri, dir, want), 0);
        return;
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        _exit(read_only_user_reads(uri, dir, want));
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the child as nobody: status %d", st);
}

START_TEST(test_read_only_directory_still_answers_get)
{
    const char *dir = tmpdir();
    ck_assert_int_eq(chmod(dir, 0755), 0);
    char ro[PATH_MAX + 32], uri[PATH_MAX + 64], wal[PATH_MAX + 64];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    ck_assert_int_eq(mkdir(ro, 0755), 0);
    snprintf(uri, sizeof uri, "sqlite://%s/x.db", ro);
    snprintf(wal, sizeof wal, "%s/x.db-wal", ro);

    /* 3 IDs handed out; the clean close gave back the rest of the batch */
    idp_client *c = tu_open(uri, NULL);
    idp_counter *ctr = tu_counter(c, "inode");
    for (uint64_t i = 1; i <= 3; i++)
        ck_assert_uint_eq(tu_next(ctr), i);
    idp_close(c);
    ck_assert_uint_eq(file_counter(db_path(ro, "x.db"), "inode", NULL, 0), 3);
    ck_assert_int_eq(chmod(db_path(ro, "x.db"), 0644), 0);
    ck_assert_int_eq(chmod(ro, 0555), 0);

    /* no writer: no -wal file, the file is read as it is */
    ck_assert_int_ne(access(wal, F_OK), 0);
    assert_read_only_user_reads(uri, ro, 3);

    /* a writer (root, or the owner) has it open: -wal and -shm exist */
    c = tu_open(uri, NULL);
    ctr = tu_counter(c, "inode");
    ck_assert_uint_eq(tu_next(ctr), 4);
    uint64_t held = file_counter(db_path(ro, "x.db"), "inode", NULL, 0);
    ck_assert_uint_gt(held, 4);
    ck_assert_int_eq(access(wal, F_OK), 0);
    char shm[PATH_MAX + 64];
    snprintf(shm, sizeof shm, "%s/x.db-shm", ro);
    ck_assert_int_eq(chmod(wal, 0644), 0);
    ck_assert_int_eq(chmod(shm, 0644), 0);
    assert_read_only_user_reads(uri, ro, held);
    ck_assert_uint_eq(tu_next(ctr), 5);
    idp_close(c);

    ck_assert_int_eq(chmod(ro, 0755), 0);
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
    idp_client *c = tu_open(db_uri(dir, "s.db", "?synchronous=NORMAL"), NULL);
    ck_assert_uint_eq(tu_next(tu_counter(c, "inode")), 1);
    idp_close(c);
    c = tu_open(db_uri(dir, "s.db", "?synchronous=FULL"), NULL);
    /* the first close gave back the unserved 2..256 */
    ck_assert_uint_eq(tu_next(tu_counter(c, "inode")), 2);
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
    idp_client *c = tu_open("sqlite://rel/path.db?batch=7", NULL);
    ck_assert_uint_eq(tu_next(tu_counter(c, "files")), 1);
    idp_close(c);
    ck_assert_int_eq(chdir(cwd), 0);
    /* the counter is in that file, at 1: the close gave back 2..7 */
    ck_assert_uint_eq(file_counter(db_path(dir, "rel/path.db"), "files",
                                   NULL, 0), 1);
    rm_tmpdir(dir);
}
END_TEST

/* ---- Tests: operations -------------------------------------------------- */

START_TEST(test_raise_never_lowers)
{
    const char *dir = tmpdir();
    idp_client *c = tu_open(db_uri(dir, "r.db", NULL), NULL);
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
    ck_assert_uint_eq(tu_next(tu_counter(c, "mig")), 151);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_list_finds_counters_by_prefix)
{
    const char *dir = tmpdir();
    /* "a_" and "a%" must not act as LIKE wildcards matching "ab" */
    idp_client *u = tu_open(db_uri(dir, "l.db", "?prefix=a_&batch=10"), NULL);
    idp_client *p = tu_open(db_uri(dir, "l.db", "?prefix=a%25&batch=20"), NULL);
    idp_client *o = tu_open(db_uri(dir, "l.db", "?prefix=ab&batch=30"), NULL);
    tu_next(tu_counter(u, "files"));
    tu_next(tu_counter(u, "dirs"));
    tu_next(tu_counter(p, "files"));
    tu_next(tu_counter(o, "files"));

    idp_error err;
    tu_listed s = {0};
    ck_assert_int_eq(idp_list(u, tu_listed_cb, &s, &err), IDP_OK);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.names[0], "dirs");
    ck_assert_uint_eq(s.values[0], 10);
    ck_assert_str_eq(s.names[1], "files");
    ck_assert_uint_eq(s.values[1], 10);

    memset(&s, 0, sizeof s);
    ck_assert_int_eq(idp_list(p, tu_listed_cb, &s, &err), IDP_OK);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.names[0], "files");
    ck_assert_uint_eq(s.values[0], 20);
    idp_close(u);
    idp_close(p);
    idp_close(o);

    /* no prefix: every counter in the file whose whole key is a valid
     * counter name ("a%files" is not one) */
    idp_client *all = tu_open(db_uri(dir, "l.db", NULL), NULL);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(idp_list(all, tu_listed_cb, &s, &err), IDP_OK);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.names[0], "a_dirs");
    ck_assert_str_eq(s.names[1], "a_files");
    ck_assert_str_eq(s.names[2], "abfiles");
    ck_assert_uint_eq(s.values[2], 1);   /* o's close gave back 2..30 */
    idp_close(all);
    rm_tmpdir(dir);
}
END_TEST

START_TEST(test_get_missing_counter_gives_exists_0)
{
    const char *dir = tmpdir();
    idp_client *c = tu_open(db_uri(dir, "g.db", "?batch=16"), NULL);
    idp_error err;
    uint64_t v = 99;
    int exists = 99;
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 0);
    ck_assert_uint_eq(v, 0);
    tu_next(tu_counter(c, "never"));
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 1);
    ck_assert_uint_eq(v, 16);
    idp_close(c);
    rm_tmpdir(dir);
}
END_TEST

/* ---- Suite -------------------------------------------------------------- */

int main(void)
{
    const TTest *ids[] = {
        test_first_ids_are_1_2_3, test_first_ids_are_1_2_3_without_batching,
        test_sqlite3_scheme_is_the_same_store,
        test_no_duplicate_across_4_processes_x_2_threads,
        test_store_counts_one_increment_per_batch,
        test_store_counts_every_increment_of_a_pipelined_fetch, NULL};
    const TTest *failures[] = {
        test_killed_client_never_repeats_an_id,
        test_locked_file_fails_within_timeout_and_recovers,
        test_reaching_2_63_is_an_error_and_stays_integer, test_text_value_is_named_not_2_63, NULL};
    const TTest *uris[] = {
        test_missing_directory_is_named_not_created,
        test_unusable_directory_is_named,
        test_read_only_directory_still_answers_get,
        test_bad_synchronous_value_is_named,
        test_port_password_and_hosts_are_refused,
        test_relative_path_is_relative_to_the_current_directory, NULL};
    const TTest *operations[] = {
        test_raise_never_lowers, test_list_finds_counters_by_prefix,
        test_get_missing_counter_gives_exists_0, NULL};
    const tu_case cases[] = {
        {.name = "ids", .tests = ids}, {.name = "failures", .tests = failures},
        {.name = "uris", .tests = uris},
        {.name = "operations", .tests = operations}, {.name = NULL}};
    return tu_run(tu_suite("sqlite", 120, cases));
}
