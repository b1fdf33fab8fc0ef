/*
 * test_faults_crash.c - a client SIGKILLed at random moments, 50 times on
 * each store (redis, memcached, sqlite).
 *
 * The children run one after another. Each opens its own client and takes
 * IDs of one counter on one thread, writing every ID to a pipe (one 8-byte
 * write, atomic on a pipe) before it asks for the next. The parent kills it
 * 1 to 30 ms (random) after the fork (half of them: during open, the first
 * fetch or the first IDs) or after the child said its client was open (the
 * other half: mid-stream, fetches in flight). The low watermark cycles
 * through 0, 25 and 100, so the child dies with no fetch in flight, with
 * one queued or running in the background, or holding a ready batch.
 *
 * Checked, for every child k:
 * - its IDs strictly increase, and its first lies above every ID any
 *   earlier child reported (a client started after a crash begins above
 *   all the crashed one handed out);
 * - every ID it reported is at most the store's value read after its death;
 * - the loss bound, cumulatively: with V_k the store's value read after
 *   child k died and R the IDs reported by children 1..k,
 *       V_k - R <= k * 2 * batch.
 *   Why this is exact: only the children increment the counter (the parent
 *   only reads it), so V_k counts nothing but increments of children
 *   1..k, and at most all of them (an increment a dead child had sent may
 *   still land later, which only lowers V_k). A child's increments minus
 *   what it reported is what it held unused when it died: the rest of its
 *   current segment (the ID it had taken but not yet written lies in that
 *   segment) plus at most one more batch, ready or in flight (one fetch
 *   per counter at a time, and none while one is ready) - the documented
 *   2 x batch with adaptive=0. IDs before the current segment were all
 *   reported: one thread takes them in order, and each is written before
 *   the next is taken.
 * - the loss bound, per crash: V_k - V_(k-1) - (IDs child k reported)
 *   <= 2 x batch. Exact for SQLite, where an increment is a commit in the
 *   child's own process: nothing of a dead child lands later. A network
 *   store may still apply the one increment the previous child had in
 *   flight (one fetch per counter at a time) after V_(k-1) was read, so
 *   there the bound per crash is 3 x batch, and the cumulative one above
 *   stays exact.
 * And over all children: no ID twice.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "harness.h"
#include "idprime/idprime.h"
#include "testutil.h"

#define CRASHES 50
#define BATCH 100
#define COUNTER "crash"

/* What a child writes besides IDs (IDs stay below 2^63). */
#define MARK_READY UINT64_MAX        /* its client is open */
#define MARK_FAILED (UINT64_MAX - 1) /* a call failed: reason on stderr */

static int write_id(int fd, uint64_t v)
{
    for (;;) {
        ssize_t w = write(fd, &v, sizeof v);
        if (w == (ssize_t)sizeof v)
            return 0;
        if (w < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

/* The child: IDs down fd until it is killed. Returns an exit status only
 * when something failed. */
static int child_main(const char *uri, int fd)
{
    idp_error err = {0, ""};
    idp_client *c = idp_open(uri, NULL, &err);
    idp_counter *ctr = c != NULL ? idp_counter_get(c, COUNTER, &err) : NULL;
    if (ctr == NULL) {
        fprintf(stderr, "crash child: %s: %s\n", uri, err.msg);
        write_id(fd, MARK_FAILED);
        return 2;
    }
    if (write_id(fd, MARK_READY) != 0)
        return 4;
    for (;;) {
        uint64_t id = 0;
        int rc = idp_next(ctr, &id, &err);
        if (rc != IDP_OK) {
            fprintf(stderr, "crash child: idp_next: %d %s\n", rc, err.msg);
            write_id(fd, MARK_FAILED);
            return 3;
        }
        if (write_id(fd, id) != 0)
            return 4;
    }
}

typedef struct ids {
    uint64_t *v;
    size_t n, cap;
} ids;

static void push(ids *a, uint64_t id)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 65536;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        ck_assert_ptr_nonnull(a->v);
    }
    a->v[a->n++] = id;
}

/*
 * Forks a child on `uri`, kills it `delay_ms` after the fork or after it
 * said its client was open, and appends what it reported to *out. Fails
 * the test when the child failed or ended by itself.
 */
static void run_child(const char *uri, unsigned delay_ms, int from_ready,
                      ids *out)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    long long forked = tu_now_ms();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        _exit(child_main(uri, fds[1]));
    }
    close(fds[1]);
    long long deadline = from_ready ? -1 : forked + delay_ms;
    long long give_up = forked + 20000;   /* a child that never opens */
    int killed = 0, failed = 0, eof = 0;
    unsigned char buf[8192];
    size_t have = 0;
    while (!eof) {
        long long now = tu_now_ms();
        if (!killed && deadline >= 0 && now >= deadline) {
            ck_assert_int_eq(kill(pid, SIGKILL), 0);
            killed = 1;
        }
        if (!killed && now >= give_up) {
            kill(pid, SIGKILL);
            ck_abort_msg("the child on %s did not open within 20 s", uri);
        }
        int wait = killed || deadline < 0 ? 1000 : (int)(deadline - now);
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, wait < 0 ? 0 : wait);
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(r, 0);
        if (r == 0)
            continue;
        ssize_t got = read(fds[0], buf + have, sizeof buf - have);
        if (got < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(got, 0);
        if (got == 0) {
            eof = 1;
            break;
        }
        have += (size_t)got;
        size_t at = 0;
        for (; have - at >= 8; at += 8) {
            uint64_t v;
            memcpy(&v, buf + at, 8);
            if (v == MARK_READY) {
                if (from_ready)
                    deadline = tu_now_ms() + delay_ms;
            } else if (v == MARK_FAILED) {
                failed = 1;
            } else {
                push(out, v);
            }
        }
        memmove(buf, buf + at, have - at);
        have -= at;
    }
    close(fds[0]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(!failed, "the child on %s failed (see its stderr)", uri);
    ck_assert_msg(killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "the child on %s ended by itself (status 0x%x)", uri, st);
    ck_assert_uint_eq(have, 0);   /* whole 8-byte records only */
}

/* The store's value of the counter, through a client opened and closed
 * here (so no child ever inherits one). */
static uint64_t store_value(const char *base)
{
    idp_client *c = tu_open(base, NULL);
    uint64_t v = tu_get(c, COUNTER, NULL);
    idp_close(c);
    return v;
}

/* `base` is the store URI without a query; `in_process`: the store
 * applies increments in the client's own process (SQLite). */
static void crash_many(const char *base, const char *what, int in_process)
{
    unsigned seed = fa_seed();
    for (const char *p = what; *p != '\0'; p++)
        seed = seed * 31u + (unsigned char)*p;
    ids all = {0};
    uint64_t highest = 0, loss_max = 0, prev_value = 0;
    int reporting = 0;
    for (int k = 0; k < CRASHES; k++) {
        static const int watermarks[] = {0, 25, 100};
        char uri[1024];
        snprintf(uri, sizeof uri, "%s?batch=%d&adaptive=0&low_watermark=%d",
                 base, BATCH, watermarks[k % 3]);
        unsigned delay = 1 + (unsigned)(rand_r(&seed) % 30);
        int from_ready = k % 2;
        size_t start = all.n;
        run_child(uri, delay, from_ready, &all);
        size_t got = all.n - start;
        reporting += got > 0;

        /* strictly increasing, above every earlier child's IDs */
        for (size_t i = start; i < all.n; i++) {
            uint64_t prev = i == start ? highest : all.v[i - 1];
            ck_assert_msg(all.v[i] > prev, "%s, child %d (killed %u ms after "
                          "%s): ID %" PRIu64 " after %" PRIu64, what, k,
                          delay, from_ready ? "opening" : "the fork",
                          all.v[i], prev);
        }
        if (got > 0)
            highest = all.v[all.n - 1];
        uint64_t value = store_value(base);
        ck_assert_msg(value >= highest, "%s: the store holds %" PRIu64
                      " after child %d reported %" PRIu64, what, value, k,
                      highest);
        uint64_t bound = (uint64_t)(k + 1) * 2 * BATCH;
        ck_assert_msg(value - all.n <= bound, "%s: after %d crashes the store "
                      "is at %" PRIu64 " but only %zu IDs were reported: %"
                      PRIu64 " lost, over the bound of %d x 2 x batch = %"
                      PRIu64 " (child %d, low_watermark=%d, killed %u ms "
                      "after %s)", what, k + 1, value, all.n, value - all.n,
                      k + 1, bound, k, watermarks[k % 3], delay,
                      from_ready ? "opening" : "the fork");
        ck_assert_msg(value >= prev_value + got, "%s: child %d reported %zu "
                      "IDs but the store only moved from %" PRIu64 " to %"
                      PRIu64, what, k, got, prev_value, value);
        uint64_t loss = value - prev_value - got;
        uint64_t per = (in_process ? 2 : 3) * (uint64_t)BATCH;
        ck_assert_msg(loss <= per, "%s: child %d (low_watermark=%d, killed "
                      "%u ms after %s) lost %" PRIu64 " IDs, over %" PRIu64,
                      what, k, watermarks[k % 3], delay,
                      from_ready ? "opening" : "the fork", loss, per);
        loss_max = loss > loss_max ? loss : loss_max;
        prev_value = value;
    }
    /* the kills landed at many moments, most of them with IDs flowing */
    ck_assert_msg(reporting >= CRASHES / 4, "%s: only %d of %d children "
                  "reported an ID before they were killed", what, reporting,
                  CRASHES);
    tu_sleep_ms(50);   /* increments of the last child still in flight */
    uint64_t value = store_value(base);
    ck_assert_uint_le(value - all.n, (uint64_t)CRASHES * 2 * BATCH);
    fprintf(stderr, "crash %s: %d kills, %d children reported IDs, %zu IDs, "
            "store at %" PRIu64 ", %" PRIu64 " lost in all (%.1f per crash, "
            "at most %" PRIu64 " in one; bound %d)\n", what, CRASHES,
            reporting, all.n, value, value - all.n,
            (double)(value - all.n) / CRASHES, loss_max, 2 * BATCH);
    tu_assert_distinct(all.v, all.n);
    free(all.v);
}

START_TEST(test_redis_client_killed_50_times)
{
    server s;
    ck_assert_int_eq(server_start(&s, "redis", NULL), 0);
    char base[256];
    crash_many(server_uri(&s, NULL, base, sizeof base), "redis", 0);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_memcached_client_killed_50_times)
{
    server s;
    ck_assert_int_eq(server_start(&s, "memcached", NULL), 0);
    char base[256];
    crash_many(server_uri(&s, NULL, base, sizeof base), "memcached", 0);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_sqlite_client_killed_50_times)
{
    char dir[PATH_MAX], base[PATH_MAX + 64];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    snprintf(base, sizeof base, "sqlite://%s/crash.db", dir);
    crash_many(base, "sqlite", 1);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/crash.db", dir);
    static const char *const ext[] = {"", "-wal", "-shm", "-idprime"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        char f[PATH_MAX + 48];
        snprintf(f, sizeof f, "%s%s", path, ext[i]);
        unlink(f);
    }
    rmdir(dir);
}
END_TEST

int main(void)
{
    const TTest *crashes[] = {test_redis_client_killed_50_times,
                              test_memcached_client_killed_50_times,
                              test_sqlite_client_killed_50_times, NULL};
    const tu_case cases[] = {{.name = "crashes", .tests = crashes},
                             {.name = NULL}};
    return tu_run(tu_suite("faults_crash", 300, cases));
}
