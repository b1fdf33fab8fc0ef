/*
 * testutil.c - the helpers of testutil.h, shared by every Check suite.
 *
 * The ID takers run in threads and in forked children, where ck_assert
 * must not be used: they report by status and message, and only the
 * tu_* functions called from the test itself assert.
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- The suite ---------------------------------------------------------- */

TCase *tu_add_tcase(Suite *s, const char *name, double timeout_s,
                    const TTest *const *tests)
{
    TCase *tc = tcase_create(name);
    if (timeout_s > 0)
        tcase_set_timeout(tc, timeout_s);
    for (size_t i = 0; tests[i] != NULL; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *tu_suite(const char *name, double timeout_s, const tu_case *cases)
{
    Suite *s = suite_create(name);
    for (const tu_case *c = cases; c->name != NULL; c++) {
        TCase *tc = tu_add_tcase(s, c->name, timeout_s, c->tests);
        if (c->setup != NULL || c->teardown != NULL)
            tcase_add_checked_fixture(tc, c->setup, c->teardown);
        for (size_t i = 0; c->loops != NULL && c->loops[i] != NULL; i++)
            tcase_add_loop_test(tc, c->loops[i], 0, c->rows);
    }
    return s;
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

/* ---- Calls that must succeed -------------------------------------------- */

idp_client *tu_open(const char *uri, const idp_options *opt)
{
    idp_error err = {0, ""};
    idp_client *c = idp_open(uri, opt, &err);
    ck_assert_msg(c != NULL, "idp_open(%s): %s", uri, err.msg);
    return c;
}

idp_counter *tu_counter(idp_client *c, const char *name)
{
    idp_error err = {0, ""};
    idp_counter *ctr = idp_counter_get(c, name, &err);
    ck_assert_msg(ctr != NULL, "idp_counter_get(%s): %s", name, err.msg);
    return ctr;
}

uint64_t tu_next(idp_counter *ctr)
{
    idp_error err = {0, ""};
    uint64_t id = 0;
    int rc = idp_next(ctr, &id, &err);
    ck_assert_msg(rc == IDP_OK, "idp_next: %d %s", rc, err.msg);
    return id;
}

uint64_t tu_get(idp_client *c, const char *name, int *exists)
{
    idp_error err = {0, ""};
    uint64_t v = 0;
    int rc = idp_get(c, name, &v, exists, &err);
    ck_assert_msg(rc == IDP_OK, "idp_get(%s): %d %s", name, rc, err.msg);
    return v;
}

idp_counter_stats tu_stats(idp_counter *ctr)
{
    idp_counter_stats s = {.size = sizeof s};
    ck_assert_int_eq(idp_counter_stats_get(ctr, &s), IDP_OK);
    return s;
}

idp_counter_stats tu_settle(idp_counter *ctr)
{
    idp_counter_stats s = {.size = sizeof s};
    for (idp_counter_stats_get(ctr, &s); s.in_flight;
         idp_counter_stats_get(ctr, &s))
        tu_sleep_ms(5);
    return s;
}

int tu_listed_cb(void *ud, const char *name, uint64_t value)
{
    tu_listed *l = ud;
    if (l->n < TU_LISTED) {
        snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
        l->values[l->n] = value;
    }
    l->n++;
    return 0;
}

int tu_listed_find(const tu_listed *l, const char *name)
{
    for (int i = 0; i < l->n && i < TU_LISTED; i++)
        if (strcmp(l->names[i], name) == 0)
            return i;
    return -1;
}

/* ---- Time --------------------------------------------------------------- */

long long tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double tu_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tu_sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void tu_sleep_ms(unsigned ms)
{
    tu_sleep_us(ms * 1000u);
}

/* ---- Sets of IDs -------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void tu_assert_distinct(uint64_t *ids, size_t n)
{
    if (n == 0)
        return;
    qsort(ids, n, sizeof *ids, cmp_u64);
    ck_assert_msg(ids[0] >= 1, "ID 0 handed out");
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(ids[i] != ids[i - 1], "ID %" PRIu64 " handed out twice",
                      ids[i]);
}

/* ---- Many threads ------------------------------------------------------- */

typedef struct taker {
    idp_counter *ctr;
    uint64_t *ids;        /* per_thread slots */
    size_t per_thread;
    unsigned incr_every;
    int failed;
    char why[320];        /* what went wrong, when failed */
} taker;

static void *take(void *arg)
{
    taker *t = arg;
    idp_error err = {0, ""};
    for (size_t i = 0; i < t->per_thread; i++) {
        uint64_t id = 0;
        int rc = t->incr_every != 0 && i % t->incr_every == t->incr_every - 1
                     ? idp_incr(t->ctr, 1, &id, &err)
                     : idp_next(t->ctr, &id, &err);
        if (rc != IDP_OK) {
            snprintf(t->why, sizeof t->why, "allocation %zu: %s", i, err.msg);
            t->failed = 1;
            return NULL;
        }
        if (i > 0 && id <= t->ids[i - 1]) {
            snprintf(t->why, sizeof t->why, "ID %" PRIu64 " after %" PRIu64
                     " in one thread: not increasing", id, t->ids[i - 1]);
            t->failed = 1;
            return NULL;
        }
        t->ids[i] = id;
    }
    return NULL;
}

/*
 * Runs the takers of tu_thread_ids into ids (threads x per_thread slots).
 * Returns 0, or -1 with the first failure written to `why`. Safe in a
 * forked child: it never asserts.
 */
static int take_on_threads(idp_counter *ctr, int threads, size_t per_thread,
                           unsigned incr_every, uint64_t *ids, char *why,
                           size_t whylen)
{
    taker *t = calloc((size_t)threads, sizeof *t);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int started = 0, rc = 0;
    if (t == NULL || th == NULL) {
        snprintf(why, whylen, "out of memory for %d threads", threads);
        rc = -1;
    }
    for (; rc == 0 && started < threads; started++) {
        t[started] = (taker){.ctr = ctr, .per_thread = per_thread,
                             .ids = ids + (size_t)started * per_thread,
                             .incr_every = incr_every};
        if (pthread_create(&th[started], NULL, take, &t[started]) != 0) {
            snprintf(why, whylen, "thread %d: pthread_create failed",
                     started);
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (t[i].failed && rc == 0) {
            snprintf(why, whylen, "thread %d: %s", i, t[i].why);
            rc = -1;
        }
    }
    free(t);
    free(th);
    return rc;
}

uint64_t *tu_thread_ids(idp_counter *ctr, int threads, size_t per_thread,
                        unsigned incr_every)
{
    uint64_t *ids = malloc((size_t)threads * per_thread * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    char why[400] = "";
    int rc = take_on_threads(ctr, threads, per_thread, incr_every, ids, why,
                             sizeof why);
    ck_assert_msg(rc == 0, "%s", why);
    return ids;
}

/* ---- Many processes ----------------------------------------------------- */

int tu_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads up to len bytes from fd, stopping early only at EOF or an error;
 * returns how many it read. */
static size_t read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/*
 * One child of tu_fanout_ids: its own client, its IDs, then its
 * prime_calls, all written to fd. Returns its exit status (0: all sent),
 * with the reason on stderr otherwise.
 */
static int fanout_child(const tu_fanout *f, int p, int fd)
{
    idp_error err = {0, ""};
    idp_client *c = idp_open(f->uri, NULL, &err);
    idp_counter *ctr = c != NULL ? idp_counter_get(c, f->counter, &err) : NULL;
    if (ctr == NULL) {
        fprintf(stderr, "child %d: %s\n", p, err.msg);
        idp_close(c);
        return 2;
    }
    size_t n = (size_t)f->threads * f->per_thread;
    uint64_t *ids = malloc(n * sizeof *ids);
    char why[400] = "out of memory";
    if (ids == NULL || take_on_threads(ctr, f->threads, f->per_thread,
                                       f->incr_every, ids, why,
                                       sizeof why) != 0) {
        fprintf(stderr, "child %d: %s\n", p, why);
        free(ids);
        idp_close(c);
        return 3;
    }
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    idp_close(c);
    int status = tu_write_all(fd, ids, n * sizeof *ids) == 0 &&
                         tu_write_all(fd, &st.prime_calls,
                                   sizeof st.prime_calls) == 0
                     ? 0
                     : 4;
    if (status != 0)
        fprintf(stderr, "child %d: writing its IDs: %s\n", p, strerror(errno));
    free(ids);
    return status;
}

uint64_t *tu_fanout_ids(const tu_fanout *f, size_t *n, uint64_t *prime_calls)
{
    size_t per = (size_t)f->threads * f->per_thread;
    size_t total = per * (size_t)f->procs;
    pid_t *pids = calloc((size_t)f->procs, sizeof *pids);
    int *fds = calloc((size_t)f->procs, sizeof *fds);
    uint64_t *all = malloc((total > 0 ? total : 1) * sizeof *all);
    ck_assert_ptr_nonnull(pids);
    ck_assert_ptr_nonnull(fds);
    ck_assert_ptr_nonnull(all);

    /* Every child forks before this process opens anything. */
    for (int p = 0; p < f->procs; p++) {
        int pipefd[2];
        ck_assert_int_eq(pipe(pipefd), 0);
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0) {
            close(pipefd[0]);
            for (int q = 0; q < p; q++)
                close(fds[q]);
            _exit(fanout_child(f, p, pipefd[1]));
        }
        close(pipefd[1]);
        fds[p] = pipefd[0];
    }

    /* A child blocks on a full pipe until its turn here: no matter, it has
     * taken all its IDs by then. */
    uint64_t calls = 0;
    for (int p = 0; p < f->procs; p++) {
        uint64_t c = 0;
        size_t got = read_full(fds[p], all + (size_t)p * per,
                               per * sizeof *all);
        got += read_full(fds[p], &c, sizeof c);
        close(fds[p]);
        int st = 0;
        ck_assert_int_eq(waitpid(pids[p], &st, 0), pids[p]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "child %d failed (status 0x%x; see its stderr)", p, st);
        ck_assert_uint_eq(got, per * sizeof *all + sizeof c);
        calls += c;
    }
    free(pids);
    free(fds);
    tu_assert_distinct(all, total);
    *n = total;
    if (prime_calls != NULL)
        *prime_calls = calls;
    return all;
}

/* ---- A client killed mid-run -------------------------------------------- */

/* The child of tu_take_then_kill: IDs down fd until it is killed. Returns
 * an exit status only when something failed (the reason on stderr). */
static int stream_ids(const char *uri, const char *counter, int fd)
{
    idp_error err = {0, ""};
    idp_client *c = idp_open(uri, NULL, &err);
    idp_counter *ctr = c != NULL ? idp_counter_get(c, counter, &err) : NULL;
    if (ctr == NULL) {
        fprintf(stderr, "child: %s\n", err.msg);
        return 2;
    }
    for (;;) {
        uint64_t id;
        if (idp_next(ctr, &id, &err) != IDP_OK) {
            fprintf(stderr, "child: idp_next: %s\n", err.msg);
            return 3;
        }
        if (tu_write_all(fd, &id, sizeof id) != 0)
            return 4;
    }
}

size_t tu_take_then_kill(const char *uri, const char *counter, size_t take,
                         uint64_t **ids, size_t *n)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        _exit(stream_ids(uri, counter, fds[1]));
    }
    close(fds[1]);
    size_t start = *n, cap = *n;
    int killed = 0;
    for (;;) {
        uint64_t id;
        size_t r = read_full(fds[0], &id, sizeof id);
        if (r == 0)
            break;   /* the child is gone and the pipe drained */
        ck_assert_uint_eq(r, sizeof id);
        if (*n == cap) {
            cap = cap * 2 + 4096;
            *ids = realloc(*ids, cap * sizeof **ids);
            ck_assert_ptr_nonnull(*ids);
        }
        (*ids)[(*n)++] = id;
        if (!killed && *n - start >= take) {
            ck_assert_int_eq(kill(pid, SIGKILL), 0);
            killed = 1;
        }
    }
    close(fds[0]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "the child ended by itself after %zu IDs (status 0x%x; see "
                  "its stderr)", *n - start, st);
    return *n - start;
}
