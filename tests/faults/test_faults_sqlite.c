/*
 * test_faults_sqlite.c - a SQLite file held locked by another process
 * beyond the busy timeout.
 *
 * The locker is a child process forked before the test opens anything; on
 * command it opens the same file with sqlite3 and runs BEGIN EXCLUSIVE plus
 * an uncommitted UPDATE of every counter (+1,000,000), which holds the
 * file's write lock until it rolls back or is killed. Checked:
 * - the pool keeps serving while the store is locked;
 * - a fetch fails with IDP_ETIMEOUT after the busy timeout (timeout_ms),
 *   not before it and within the engine's bound, with a message naming
 *   the store, the file and timeout_ms; nothing is served;
 * - readers are not blocked (WAL): idp_get sees the last commit, not the
 *   locker's uncommitted update;
 * - once the lock is released (ROLLBACK, or the locker SIGKILLed in the
 *   middle of its transaction) the next fetch succeeds and continues
 *   exactly where the store was: the failed attempts applied nothing;
 * - with four threads and background prefetch, every failing call returns
 *   within the bound, the clients recover, and no ID is served twice.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "faults.h"
#include "harness.h"
#include "idprime/idprime.h"
#include "testutil.h"

#define T_MS 200

/* ---- The locker ------------------------------------------------------- */

typedef struct locker {
    pid_t pid;
    int cmd;   /* commands to it: 'L' lock, 'R' roll back */
    int ack;   /* its answers: 'k' done, 'e' failed (reason on stderr) */
} locker;

static void locker_main(const char *path, int cmd, int ack)
{
    sqlite3 *db = NULL;
    char c;
    while (read(cmd, &c, 1) == 1) {
        const char *sql = c == 'L' ? "BEGIN EXCLUSIVE; UPDATE idprime_counters "
                                     "SET value = value + 1000000;"
                                   : "ROLLBACK;";
        int rc = SQLITE_OK;
        if (db == NULL) {
            rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
            if (rc == SQLITE_OK)
                sqlite3_busy_timeout(db, 10000);
        }
        char *msg = NULL;
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK)
            fprintf(stderr, "locker: '%s' on %s: %s\n", sql, path,
                    msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        char a = rc == SQLITE_OK ? 'k' : 'e';
        if (write(ack, &a, 1) != 1)
            break;
    }
    _exit(0);
}

/* Forks the locker; call it before the test opens any client. */
static void locker_start(locker *l, const char *path)
{
    int cmd[2], ack[2];
    ck_assert_int_eq(pipe(cmd), 0);
    ck_assert_int_eq(pipe(ack), 0);
    l->pid = fork();
    ck_assert_int_ge(l->pid, 0);
    if (l->pid == 0) {
        close(cmd[1]);
        close(ack[0]);
        locker_main(path, cmd[0], ack[1]);
    }
    close(cmd[0]);
    close(ack[1]);
    l->cmd = cmd[1];
    l->ack = ack[0];
}

/* Sends a command and waits (10 s at most) for it to be done. */
static void locker_do(locker *l, char c)
{
    ck_assert_int_eq(write(l->cmd, &c, 1), 1);
    struct pollfd p = {.fd = l->ack, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, 10000) == 1, "the locker did not answer '%c'",
                  c);
    char a = 0;
    ck_assert_int_eq(read(l->ack, &a, 1), 1);
    ck_assert_msg(a == 'k', "the locker failed '%c' (see its stderr)", c);
}

/* Ends the locker: SIGKILL (kill != 0), mid-transaction if it holds one,
 * or EOF on its commands. */
static void locker_end(locker *l, int kill_it)
{
    if (kill_it)
        ck_assert_int_eq(kill(l->pid, SIGKILL), 0);
    close(l->cmd);
    close(l->ack);
    int st = 0;
    ck_assert_int_eq(waitpid(l->pid, &st, 0), l->pid);
    if (kill_it)
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    else
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- Helpers ---------------------------------------------------------- */

static void remove_db(const char *dir, const char *path)
{
    static const char *const ext[] = {"", "-wal", "-shm", "-idprime",
                                      "-journal"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        char f[PATH_MAX + 48];
        snprintf(f, sizeof f, "%s%s", path, ext[i]);
        unlink(f);
    }
    rmdir(dir);
}

/* One call on the locked store: IDP_ETIMEOUT after the busy timeout. */
static void assert_locked_call(idp_counter *ctr, const char *path)
{
    idp_error err = {0, ""};
    uint64_t id = 0;
    long long t0 = tu_now_ms();
    int rc = idp_next(ctr, &id, &err);
    long long dt = tu_now_ms() - t0;
    ck_assert_msg(rc == IDP_ETIMEOUT, "a locked store gave %d: %s", rc,
                  err.msg);
    ck_assert_msg(dt >= T_MS - 10 && dt <= FA_CALL_LIMIT_MS(T_MS),
                  "the call failed after %lld ms (timeout_ms=%d, bound %lld)",
                  dt, T_MS, FA_CALL_LIMIT_MS(T_MS));
    ck_assert_msg(strstr(err.msg, "sqlite plugin") != NULL &&
                  strstr(err.msg, path) != NULL &&
                  strstr(err.msg, "timeout_ms=200") != NULL &&
                  strstr(err.msg, "locked") != NULL &&
                  strstr(err.msg, "'lk'") != NULL, "%s", err.msg);
    ck_assert_uint_eq(id, 0);
}

/* ---- Tests ------------------------------------------------------------ */

START_TEST(test_locked_file_fails_within_timeout_and_recovers)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], uri[PATH_MAX + 128];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/lock.db", dir);
    snprintf(uri, sizeof uri, "sqlite://%s?batch=10&adaptive=0"
             "&low_watermark=0&timeout_ms=%d", path, T_MS);
    locker l;
    locker_start(&l, path);

    idp_client *c = tu_open(uri, NULL);
    idp_counter *ctr = tu_counter(c, "lk");
    for (uint64_t want = 1; want <= 3; want++)
        ck_assert_uint_eq(tu_next(ctr), want);

    locker_do(&l, 'L');
    /* the pool is ours: it serves while the file is locked */
    for (uint64_t want = 4; want <= 10; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    assert_locked_call(ctr, path);
    assert_locked_call(ctr, path);
    /* WAL: reading is not blocked, and sees the last commit only */
    ck_assert_uint_eq(tu_get(c, "lk", NULL), 10);
    idp_counter_stats st = tu_settle(ctr);
    ck_assert_uint_eq(st.ids_served, 10);
    ck_assert_uint_eq(st.errors, 2);

    /* released: the failed attempts changed nothing, no gap */
    locker_do(&l, 'R');
    ck_assert_uint_eq(tu_next(ctr), 11);
    ck_assert_uint_eq(tu_get(c, "lk", NULL), 20);

    /* locked again, and the locker killed in its transaction */
    locker_do(&l, 'L');
    for (uint64_t want = 12; want <= 20; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    assert_locked_call(ctr, path);
    locker_end(&l, 1);
    ck_assert_uint_eq(tu_next(ctr), 21);
    ck_assert_uint_eq(tu_get(c, "lk", NULL), 30);
    st = tu_settle(ctr);
    ck_assert_uint_eq(st.errors, 3);
    ck_assert_uint_eq(st.regressions, 0);
    idp_close(c);
    remove_db(dir, path);
}
END_TEST

START_TEST(test_locked_file_with_threads_and_prefetch)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], uri[PATH_MAX + 128];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/lock.db", dir);
    snprintf(uri, sizeof uri, "sqlite://%s?batch=100&adaptive=0"
             "&timeout_ms=%d", path, T_MS);
    locker l;
    locker_start(&l, path);

    idp_client *c = tu_open(uri, NULL);
    idp_counter *ctr = tu_counter(c, "th");
    fa_run r;
    fa_run_start(&r, ctr, "th", "sqlite plugin", 4);
    fa_run_for(300);
    ck_assert_uint_gt(atomic_load(&r.t[0].served), 0);

    locker_do(&l, 'L');
    long long from = tu_now_ms();
    fa_run_for(5 * T_MS);
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    locker_do(&l, 'R');
    long long to = tu_now_ms();
    ck_assert_msg(fa_run_wait_recovered(&r, to, st.prime_calls, 2, 10000),
                  "the threads did not recover within 10 s of the unlock");
    fa_run_for(200);
    fa_run_stop(&r);
    locker_end(&l, 0);

    size_t errors = fa_run_check(&r, FA_CALL_LIMIT_MS(T_MS));
    size_t timeouts = fa_run_errors(&r, IDP_ETIMEOUT, from, to);
    ck_assert_msg(timeouts > 0, "no call timed out while the file was "
                  "locked");
    /* a lock is a timeout, nothing else */
    ck_assert_uint_eq(fa_run_errors(&r, IDP_ETIMEOUT, 0, LLONG_MAX), errors);
    st = tu_settle(ctr);
    ck_assert_uint_eq(st.regressions, 0);
    size_t n = 0;
    uint64_t *ids = fa_run_ids(&r, &n);
    ck_assert_uint_gt(n, 1000);
    uint64_t max_id = fa_run_max_id(&r);
    tu_assert_distinct(ids, n);
    ck_assert_uint_ge(tu_get(c, "th", NULL), max_id);
    fprintf(stderr, "sqlite lock: %zu IDs, %zu calls timed out (longest %lld "
            "ms, bound %lld)\n", n, errors, fa_run_max_err_ms(&r),
            FA_CALL_LIMIT_MS(T_MS));
    free(ids);
    fa_run_free(&r);
    idp_close(c);
    remove_db(dir, path);
}
END_TEST

int main(void)
{
    const TTest *lock[] = {test_locked_file_fails_within_timeout_and_recovers,
                           test_locked_file_with_threads_and_prefetch, NULL};
    const tu_case cases[] = {{.name = "lock", .tests = lock}, {.name = NULL}};
    return tu_run(tu_suite("faults_sqlite", 120, cases));
}
