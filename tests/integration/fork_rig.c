/*
 * fork_rig.c - the machinery of test_fork.c (fork_rig.h): each test's
 * store (a shared PostgreSQL or MariaDB server with counters of its own, a
 * redis-server or memcached of its own, a SQLite file in a temp folder),
 * the threads that take IDs, the children a test forks and every bounded
 * wait for them, and the set of everyone's IDs checked for duplicates.
 *
 * Children and takers never assert (see test_fork.c); the test's own
 * thread does, in everything here that takes a `what` to name the case.
 */
#define _GNU_SOURCE /* nftw, pthread_setattr_default_np */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fork_rig.h"
#include "harness.h"
#include "idprime/idprime.h"
#include "testutil.h"

/* ---- Stores ------------------------------------------------------------- */

const char *const store_name[NSTORES] = {"redis", "memcached",
                                         "sqlite", "postgresql",
                                         "mysql"};

/*
 * PostgreSQL and MariaDB take seconds to set up (initdb,
 * mariadb-install-db), so main starts one of each for the whole suite and
 * each test keeps to counters of its own (a prefix naming its process and
 * its env). redis and memcached start in milliseconds: one per test.
 */
server shared[NSTORES];

int is_shared(int kind)
{
    return kind == POSTGRESQL || kind == MARIADB;
}

void env_up(env *e, int kind)
{
    memset(e, 0, sizeof *e);
    e->kind = kind;
    if (kind == SQLITE) {
        ck_assert_ptr_nonnull(harness_tmpdir(e->dir, sizeof e->dir));
        snprintf(e->path, sizeof e->path, "%s/fork.db", e->dir);
    } else if (is_shared(kind)) {
        static unsigned envs;
        ck_assert_msg(shared[kind].pid != 0, "%s did not start",
                      store_name[kind]);
        e->srv = shared[kind];
        snprintf(e->prefix, sizeof e->prefix, "f%d_%u.", (int)getpid(),
                 envs++);
    } else {
        ck_assert_msg(server_start(&e->srv, store_name[kind], NULL) == 0,
                      "%s did not start", store_name[kind]);
    }
}

/* The store's URI with `query` ("?batch=16..."), in e->uri. */
const char *env_uri(env *e, const char *query)
{
    char q[256];
    if (e->prefix[0] != '\0')
        snprintf(q, sizeof q, "%s%sprefix=%s", query,
                 query[0] != '\0' ? "&" : "?", e->prefix);
    else
        snprintf(q, sizeof q, "%s", query);
    if (e->kind == SQLITE)
        snprintf(e->uri, sizeof e->uri, "sqlite://%s%s", e->path, q);
    else
        server_uri(&e->srv, q, e->uri, sizeof e->uri);
    return e->uri;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void env_down(env *e)
{
    if (e->kind == SQLITE)
        nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (!is_shared(e->kind))
        server_stop(&e->srv, 0);
}

/* Opens `query` on the store and checks it is the store asked for. */
idp_client *env_open(env *e, const char *query)
{
    idp_client *c = tu_open(env_uri(e, query), NULL);
    ck_assert_str_eq(idp_client_store(c), store_name[e->kind]);
    return c;
}

/* ---- Taking IDs (threads of the test and of children: never assert) ----- */

void *taker_main(void *arg)
{
    taker *t = arg;
    uint64_t last = 0;
    size_t got = 0;
    for (unsigned call = 0; got < t->cap; call++) {
        if (t->stop != NULL && atomic_load(t->stop))
            break;
        idp_error err = {0, ""};
        uint64_t id = 0, n = 1;
        int rc;
        if (t->incr) {
            n = 1 + call % 7;
            if (n > t->cap - got)
                n = t->cap - got;
            rc = idp_incr(t->ctr, n, &id, &err);
        } else {
            rc = idp_next(t->ctr, &id, &err);
        }
        if (rc != IDP_OK) {
            if (t->tolerate) {
                t->errors++;
                continue;
            }
            snprintf(t->why, sizeof t->why, "%s #%u (after %zu IDs): %d %s",
                     t->incr ? "idp_incr" : "idp_next", call, got, rc,
                     err.msg);
            t->failed = 1;
            break;
        }
        if (t->incr) {
            /* the caller owns id - n + 1 .. id: every one is checked */
            if (id < n || id > IDP_MAX_VALUE) {
                snprintf(t->why, sizeof t->why, "idp_incr(%" PRIu64 ") "
                         "answered last = %" PRIu64, n, id);
                t->failed = 1;
                break;
            }
            for (uint64_t v = id - n + 1; v <= id; v++)
                t->ids[got++] = v;
        } else {
            if (got > 0 && id <= last) {
                snprintf(t->why, sizeof t->why, "idp_next gave %" PRIu64
                         " after %" PRIu64 " on one thread", id, last);
                t->failed = 1;
                break;
            }
            last = id;
            t->ids[got++] = id;
        }
        atomic_store(&t->got, got);
    }
    atomic_store(&t->got, got);
    return NULL;
}

/* ---- Children ----------------------------------------------------------- */

/* A child's complaint, on its stderr (no stdio: a thread of the parent
 * may have held a stdio lock when it forked). Returns code. */
static int kid_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int kid_fail(int code, const char *fmt, ...)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "child %d: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(buf);
    if (len < sizeof buf - 1)
        buf[len++] = '\n';
    (void)tu_write_all(2, buf, len);
    return code;
}

/* Waits up to KID_MS for the parent's go byte. */
static int wait_go(const job *j)
{
    struct pollfd p = {.fd = j->go_rd, .events = POLLIN};
    char b;
    if (poll(&p, 1, KID_MS) != 1 || read(j->go_rd, &b, 1) != 1)
        return kid_fail(5, "no go from the parent within %d ms", KID_MS);
    return 0;
}

#ifdef UNDER_TSAN
/*
 * GCC 12's TSan keeps the parent's threads registered in a child, by their
 * pthread_t, and kills the child ("ThreadSanitizer: dup thread with used
 * id") when one of its new threads gets one of those: glibc hands the
 * child's new threads the stacks of the parent's threads, which do not
 * exist there, and a pthread_t is the address of a descriptor on its
 * stack. (LLVM 15's runtime forgets those ids at fork.) The child asks for
 * stacks bigger than any it inherited, which glibc then cannot reuse: its
 * threads (the library's worker, the takers) run, under TSan, with ids of
 * their own.
 */
static void fresh_thread_stacks(void)
{
    pthread_attr_t a;
    size_t size = 0;
    if (pthread_getattr_default_np(&a) == 0) {
        pthread_attr_getstacksize(&a, &size);
        pthread_attr_destroy(&a);
    }
    if (size < ((size_t)8 << 20))
        size = (size_t)8 << 20;
    if (pthread_attr_init(&a) == 0) {
        pthread_attr_setstacksize(&a, size * 2);
        pthread_setattr_default_np(&a);
        pthread_attr_destroy(&a);
    }
}
#endif

/* The child: IDs, then the trailer and idp_close's time; returns its exit
 * status (0: everything sent). */
int run_job(void *arg, int fd)
{
    job *j = arg;
#ifdef UNDER_TSAN
    fresh_thread_stacks();
#endif
    if (j->go_wr >= 0)
        close(j->go_wr);
    if (j->go_when == GO_BEFORE_FIRST_CALL && wait_go(j) != 0)
        return 5;
    idp_counter *ctr = j->ctr;
    if (j->name != NULL) {
        idp_error err = {0, ""};
        ctr = idp_counter_get(j->c, j->name, &err);
        if (ctr == NULL)
            return kid_fail(2, "idp_counter_get(%s): %s", j->name, err.msg);
        if (j->ctr != NULL && ctr != j->ctr)
            return kid_fail(2, "idp_counter_get(%s) gave another handle "
                            "than the parent's", j->name);
    }
    size_t n = (size_t)j->threads * j->per_thread;
    uint64_t *ids = malloc((n > 0 ? n : 1) * sizeof *ids);
    taker *t = calloc((size_t)(j->threads > 0 ? j->threads : 1), sizeof *t);
    pthread_t *th = calloc((size_t)(j->threads > 0 ? j->threads : 1),
                           sizeof *th);
    if (ids == NULL || t == NULL || th == NULL)
        return kid_fail(3, "out of memory");
    for (int i = 0; i < j->threads; i++)
        t[i] = (taker){.ctr = ctr, .ids = ids + (size_t)i * j->per_thread,
                       .cap = j->per_thread, .incr = j->incr};
    if (j->threads == 1) {
        taker_main(&t[0]);
    } else {
        for (int i = 0; i < j->threads; i++)
            if (pthread_create(&th[i], NULL, taker_main, &t[i]) != 0)
                return kid_fail(3, "pthread_create %d failed", i);
        for (int i = 0; i < j->threads; i++)
            pthread_join(th[i], NULL);
    }
    for (int i = 0; i < j->threads; i++)
        if (t[i].failed)
            return kid_fail(3, "thread %d: %s", i, t[i].why);
    if (tu_write_all(fd, ids, n * sizeof *ids) != 0)
        return kid_fail(4, "writing its IDs: %s", strerror(errno));
    if (j->go_when == GO_BEFORE_CLOSE && wait_go(j) != 0)
        return 5;
    long long t0 = tu_now_ms();
    if (j->close_it)
        idp_close(j->c);
    uint64_t trailer[2] = {TRAILER, (uint64_t)(tu_now_ms() - t0)};
    if (tu_write_all(fd, trailer, sizeof trailer) != 0)
        return kid_fail(4, "writing its trailer: %s", strerror(errno));
    free(ids);
    free(t);
    free(th);
    return 0;
}

/* Forks a child that runs fn(arg, pipe) and _exits with its answer. */
void kid_start(kid *k, int (*fn)(void *, int), void *arg)
{
    memset(k, 0, sizeof *k);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    char path[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/idprime-fork-stderr-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    k->errfd = mkstemp(path);
    ck_assert_msg(k->errfd >= 0, "mkstemp %s: %s", path, strerror(errno));
    unlink(path);
    pid_t parent = getpid();
    k->pid = fork();
    ck_assert_msg(k->pid >= 0, "fork: %s", strerror(errno));
    if (k->pid == 0) {
        /* gone with the test, whatever happens to it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(120);
        close(p[0]);
        dup2(k->errfd, 2);
        _exit(fn(arg, p[1]));
    }
    close(p[1]);
    k->fd = p[0];
    fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
}

/* Reads what the child has sent so far. */
static void kid_read(kid *k)
{
    for (;;) {
        if (k->cap - k->len < 65536) {
            k->cap = k->cap * 2 + 65536;
            k->buf = realloc(k->buf, k->cap);
            ck_assert_ptr_nonnull(k->buf);
        }
        ssize_t r = read(k->fd, k->buf + k->len, k->cap - k->len);
        if (r > 0) {
            k->len += (size_t)r;
            continue;
        }
        if (r == 0) {
            k->eof = 1;
            close(k->fd);
            k->fd = -1;
        } else if (errno != EAGAIN && errno != EINTR) {
            ck_abort_msg("reading from child %d: %s", (int)k->pid,
                         strerror(errno));
        }
        return;
    }
}

/* Up to 1,500 bytes of the child's stderr, in buf. */
static const char *kid_stderr(const kid *k, char *buf, size_t len)
{
    ssize_t n = pread(k->errfd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

void kid_free(kid *k)
{
    if (k->fd >= 0)
        close(k->fd);
    close(k->errfd);
    free(k->buf);
    k->buf = NULL;
}

/* Kills every child not done yet and fails the test, naming them. */
static void kids_hung(kid *ks, int n, const char *what, int ms)
{
    char names[256] = "", err[1500] = "";
    int first = -1;
    for (int i = 0; i < n; i++) {
        if (ks[i].eof && ks[i].reaped)
            continue;
        if (first < 0)
            first = i;
        size_t at = strlen(names);
        snprintf(names + at, sizeof names - at, "%s%d (%s, %zu bytes sent)",
                 at ? ", " : "", i, ks[i].reaped ? "exited, pipe open"
                                                 : "still running",
                 ks[i].len);
        if (!ks[i].reaped) {
            kill(ks[i].pid, SIGKILL);
            waitpid(ks[i].pid, NULL, 0);
        }
    }
    kid_stderr(&ks[first], err, sizeof err);
    fprintf(stderr, "%s: child %d's stderr:\n%s\n", what, first, err);
    ck_abort_msg("%s: child(ren) %s not done within %d ms: hung (killed "
                 "now; one that sent its IDs hung in idp_close, or waiting "
                 "for a thread); child %d's stderr: %s", what, names, ms,
                 first, err);
}

/* Reads from the children until each has closed its pipe and exited, for
 * at most ms; fails the test when one hangs, fails, or reports a sanitizer
 * finding. */
void kids_wait(kid *ks, int n, int ms, const char *what)
{
    long long deadline = tu_now_ms() + ms;
    for (;;) {
        struct pollfd pf[64];
        kid *pk[64];
        int np = 0, pending = 0;
        for (int i = 0; i < n; i++) {
            kid *k = &ks[i];
            if (!k->reaped) {
                int st = 0;
                if (waitpid(k->pid, &st, WNOHANG) == k->pid) {
                    k->reaped = 1;
                    k->status = st;
                }
            }
            if (!k->eof && np < 64) {
                pf[np] = (struct pollfd){.fd = k->fd, .events = POLLIN};
                pk[np++] = k;
            }
            pending += !k->eof || !k->reaped;
        }
        if (pending == 0)
            break;
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            kids_hung(ks, n, what, ms);
        /* a pipe wakes us at once; an exit after EOF within 5 ms */
        int wait = np > 0 ? 20 : 5;
        if (poll(pf, (nfds_t)np, left < wait ? (int)left : wait) > 0)
            for (int i = 0; i < np; i++)
                if (pf[i].revents != 0)
                    kid_read(pk[i]);
    }
    for (int i = 0; i < n; i++) {
        char err[1500];
        kid_stderr(&ks[i], err, sizeof err);
        int st = ks[i].status;
        int bad = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        int sanitizer = strstr(err, "Sanitizer") != NULL ||
                        strstr(err, "runtime error:") != NULL;
        if (bad || sanitizer) {
            fprintf(stderr, "%s: child %d's stderr:\n%s\n", what, i, err);
            ck_abort_msg("%s: child %d %s %d%s; its stderr: %s", what, i,
                         WIFSIGNALED(st) ? "killed by signal" : "exited with",
                         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
                         WIFEXITED(st) && WEXITSTATUS(st) == 66
                             ? " (66: a sanitizer report)"
                             : sanitizer ? " but reported a sanitizer finding"
                                         : "",
                         err);
        }
    }
}

/* Reads from one child until it has sent `bytes`, for at most ms. */
void kid_wait_bytes(kid *k, size_t bytes, int ms, const char *what)
{
    long long deadline = tu_now_ms() + ms;
    while (k->len < bytes && !k->eof) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            kids_hung(k, 1, what, ms);
        struct pollfd p = {.fd = k->fd, .events = POLLIN};
        if (poll(&p, 1, left < 50 ? (int)left : 50) > 0)
            kid_read(k);
    }
    if (k->len < bytes) {   /* it closed its pipe early: why? */
        kids_wait(k, 1, ms, what);
        ck_abort_msg("%s: the child sent %zu bytes, %zu expected", what,
                     k->len, bytes);
    }
}

/* The IDs a finished child sent (want of them, each above `floor`, the
 * store's value when it forked: all its parent had fetched) and how long
 * its idp_close took. */
const uint64_t *kid_ids(const kid *k, size_t want, uint64_t floor,
                        uint64_t *close_ms, const char *what, int i)
{
    size_t words = k->len / sizeof(uint64_t);
    const uint64_t *w = (const void *)k->buf;
    ck_assert_msg(k->len % sizeof(uint64_t) == 0 && words >= 2 &&
                  w[words - 2] == TRAILER, "%s: child %d sent %zu bytes "
                  "without the trailer", what, i, k->len);
    ck_assert_msg(words - 2 == want, "%s: child %d sent %zu IDs, %zu "
                  "expected", what, i, words - 2, want);
    for (size_t x = 0; x < want; x++)
        ck_assert_msg(w[x] > floor, "%s: child %d served ID %" PRIu64 ", not "
                      "above %" PRIu64 ", the store's value when it forked: "
                      "an ID its parent had fetched (held or in flight)",
                      what, i, w[x], floor);
    if (close_ms != NULL)
        *close_ms = w[words - 1];
    return w;
}

/* ---- All the IDs of everyone -------------------------------------------- */

void ids_add(idset *s, const uint64_t *ids, size_t n, int who)
{
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->e = realloc(s->e, s->cap * sizeof *s->e);
        ck_assert_ptr_nonnull(s->e);
    }
    for (size_t i = 0; i < n; i++)
        s->e[s->n++] = (tagged){ids[i], who};
}

static int cmp_tagged(const void *a, const void *b)
{
    uint64_t x = ((const tagged *)a)->id, y = ((const tagged *)b)->id;
    return (x > y) - (x < y);
}

static const char *who_name(int who, char *buf, size_t len)
{
    if (who < 0)
        snprintf(buf, len, "the parent");
    else
        snprintf(buf, len, "child %d", who);
    return buf;
}

/* Sorts the set and fails when an ID is 0 or was handed out twice (naming
 * who had it); returns the highest. */
uint64_t ids_check(idset *s, const char *what)
{
    ck_assert_uint_gt(s->n, 0);
    qsort(s->e, s->n, sizeof *s->e, cmp_tagged);
    ck_assert_msg(s->e[0].id >= 1, "%s: ID 0 handed out", what);
    for (size_t i = 1; i < s->n; i++) {
        if (s->e[i].id == s->e[i - 1].id) {
            char a[32], b[32];
            ck_abort_msg("%s: ID %" PRIu64 " handed out twice: by %s and by "
                         "%s (%zu IDs checked)", what, s->e[i].id,
                         who_name(s->e[i - 1].who, a, sizeof a),
                         who_name(s->e[i].who, b, sizeof b), s->n);
        }
    }
    return s->e[s->n - 1].id;
}

/* The store's value of `name`, read by a client of its own after
 * everything: it must be at or above every ID handed out. */
void assert_store_covers(env *e, const char *name, uint64_t highest)
{
    idp_client *c = env_open(e, "");
    uint64_t v = tu_get(c, name, NULL);
    ck_assert_msg(v >= highest, "the store holds %s = %" PRIu64 ", below "
                  "ID %" PRIu64 " handed out", name, v, highest);
    /* and a client opened now starts above everything */
    uint64_t next = tu_next(tu_counter(c, name));
    ck_assert_msg(next > highest, "a new client's first ID %" PRIu64 " is "
                  "not above %" PRIu64, next, highest);
    idp_close(c);
}

/* Takes n IDs on this thread (the test's), increasing. */
void take_here(idp_counter *ctr, uint64_t *ids, size_t n, int incr,
               const char *what)
{
    taker t = {.ctr = ctr, .ids = ids, .cap = n, .incr = incr};
    taker_main(&t);
    ck_assert_msg(!t.failed, "%s: the parent: %s", what, t.why);
}

/* The store's value of `name` now (0 when it has none). */
uint64_t store_value(idp_client *c, const char *name)
{
    return tu_get(c, name, NULL);
}

/*
 * Takes IDs of ctr (added to `all`) one at a time, waiting whenever a fetch
 * is queued or running, until the background worker has done a fetch and
 * is idle (at most 10 s): its thread is up. A fork while a thread is still
 * starting is fine for the library, but not under GCC 12's
 * AddressSanitizer, whose runtime has no fork handler: a new thread
 * allocates under the allocator's lock of a size class as it starts, and a
 * child forked meanwhile inherits that lock held (its own new threads then
 * hang on their first free). So the tests start the worker before they
 * fork, also those that fork while it is busy.
 */
void worker_up(idp_counter *ctr, idset *all, const char *what)
{
    idp_counter_stats st = {.size = sizeof st};
    long long deadline = tu_now_ms() + 10000;
    for (;;) {
        idp_counter_stats_get(ctr, &st);
        if (st.prefetch_async > 0 && !st.in_flight)
            return;
        ck_assert_msg(tu_now_ms() < deadline, "%s: no background fetch done "
                      "within 10 s (prefetch_async %" PRIu64 ", in_flight "
                      "%d)", what, st.prefetch_async, st.in_flight);
        if (!st.in_flight) {
            uint64_t id = tu_next(ctr);
            ids_add(all, &id, 1, -1);
        } else {
            tu_sleep_ms(1); /* polling the worker's state, not a guess */
        }
    }
}
