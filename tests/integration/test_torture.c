/*
 * test_torture.c - many clients opening, allocating on several threads and
 * then closing cleanly or dying by SIGKILL at random, thousands of
 * times, on each store: no ID is ever handed out twice, and what the
 * batching costs is measured (IDs lost per clean close and per crash,
 * DESIGN: Semantics 7).
 *
 * A runner process (a child of the test, so that it waits for its own
 * children only, never the harness's servers) keeps PROCS cycle processes
 * going at once. Each cycle process opens a client with default settings
 * and takes IDs of one counter on THREADS threads, writing each ID, as it
 * gets it, to its slot's file (O_APPEND, one 8-byte write per ID: nothing
 * handed out before a kill is lost from the record, except the one ID a
 * thread may hold between idp_next and write). Then it closes cleanly, or
 * one of its threads SIGKILLs the process at a random point while the
 * others are still taking IDs.
 *
 * Four phases, the store's value read between them by a client that
 * fetches nothing: one process at a time, clean closes only; PROCS at
 * once, clean closes only; PROCS at once, crashes only; PROCS at once, a
 * crash in CRASH_PCT % of the cycles at random. IDs lost in a phase = the
 * value's rise - the IDs recorded, exactly (every increment raises the
 * value by what it fetched, every give-back lowers it by what it gave
 * back); over the phase's cycles, that is the loss per clean close (alone
 * and among PROCS) and per crash. Every ID of every phase is checked for
 * duplicates.
 *
 *   IDPRIME_TORTURE_CYCLES  cycles per store (default 500): a tenth alone,
 *                           then three phases of half as many each; the
 *                           sanitizer builds set fewer
 *   IDPRIME_TORTURE_STORES  the stores, comma-separated (default all)
 *   IDPRIME_TORTURE_SEED    the random seed (default: the clock; printed)
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "idprime/idprime.h"
#include "store_rigs.h"
#include "testutil.h"

#define PROCS 8          /* cycle processes at once */
#define THREADS 3        /* allocating threads per process */
#define MAX_TAKE 400     /* IDs a thread takes in a clean cycle: 1..MAX */
#define CRASH_PCT 50     /* cycles of the mixed phase that crash */
#define COUNTER "torture"

/* What a phase did, as the runner tells the test. */
typedef struct phase_result {
    unsigned clean, crashes;  /* cycles that ended so */
    unsigned gave;            /* clean closes that gave something back */
    unsigned failed;          /* cycles that ended otherwise */
    char why[256];            /* the first failure */
} phase_result;

/* ---- A cycle ------------------------------------------------------------ */

typedef struct worker {
    idp_counter *ctr;
    int fd;                   /* the slot's file */
    unsigned take;            /* IDs to take */
    unsigned kill_at;         /* 0, or SIGKILL the process after this many */
    int failed;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    for (unsigned i = 1; i <= w->take; i++) {
        uint64_t id;
        idp_error err;
        if (idp_next(w->ctr, &id, &err) != IDP_OK) {
            fprintf(stderr, "torture: idp_next: %s\n", err.msg);
            w->failed = 1;
            return NULL;
        }
        if (tu_write_all(w->fd, &id, sizeof id) != 0) {
            w->failed = 1;
            return NULL;
        }
        if (i == w->kill_at)
            kill(getpid(), SIGKILL);
    }
    return NULL;
}

/* Exit status of a clean close that gave IDs back (else 0). */
#define EXIT_GAVE 10

/* Set when the engine logs that the close gave IDs back (a debug line,
 * "counter 'x': gave back N IDs"): only counted, never asserted. */
static volatile int gave_back;

static void cycle_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    if (strstr(msg, "gave back ") != NULL)
        gave_back = 1;
}

/* One cycle, in its own process: never returns. Exit 0 or EXIT_GAVE
 * after a clean close; a crash never exits. */
static void cycle(const char *uri, int fd, int crash, unsigned seed)
{
    idp_error err;
    const idp_options opt = {.size = sizeof opt, .log = cycle_log};
    idp_client *c = idp_open(uri, &opt, &err);
    idp_counter *ctr = c != NULL ? idp_counter_get(c, COUNTER, &err) : NULL;
    if (ctr == NULL) {
        fprintf(stderr, "torture: %s: %s\n", uri, err.msg);
        _exit(2);
    }
    worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.ctr = ctr, .fd = fd,
                        .take = 1 + rand_r(&seed) % MAX_TAKE};
        if (crash && i == 0) {
            /* dies at a random point while the others still run */
            w[i].take = MAX_TAKE * 4;
            w[i].kill_at = 1 + rand_r(&seed) % MAX_TAKE;
        }
        if (pthread_create(&t[i], NULL, worker_run, &w[i]) != 0)
            _exit(3);
    }
    int failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failed |= w[i].failed;
    }
    idp_close(c);
    _exit(failed ? 4 : gave_back ? EXIT_GAVE : 0);
}

/* ---- The runner -------------------------------------------------------- */

typedef struct slot {
    pid_t pid;      /* 0: free */
    int crash;
    int fd;
} slot;

static void runner_failed(phase_result *r, const char *why, int crash,
                          int status)
{
    if (r->failed++ == 0)
        snprintf(r->why, sizeof r->why, "%s (crash %d, status 0x%x; see "
                 "stderr)", why, crash, status);
}

/* Judges how a cycle ended. */
static void reap(phase_result *r, const slot *s, int st)
{
    if (!s->crash && WIFEXITED(st) &&
        (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == EXIT_GAVE)) {
        r->clean++;
        r->gave += WEXITSTATUS(st) == EXIT_GAVE;
    }
    else if (s->crash && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        r->crashes++;
    else
        runner_failed(r, "a cycle ended otherwise", s->crash, st);
}

/* Runs `cycles` cycles, `procs` at once, crash_pct % of them crashing;
 * in its own process (see the top). Never returns. */
static void runner(const char *uri, const int *fds, unsigned cycles,
                   int procs, int crash_pct, unsigned seed, int out)
{
    phase_result r = {0};
    slot s[PROCS] = {{0}};
    unsigned started = 0;
    int running = 0;
    while (started < cycles || running > 0) {
        for (int i = 0; i < procs && started < cycles; i++) {
            if (s[i].pid != 0)
                continue;
            s[i].crash = (int)(rand_r(&seed) % 100) < crash_pct;
            s[i].fd = fds[i];
            unsigned cseed = rand_r(&seed);
            pid_t pid = fork();
            if (pid == 0)
                cycle(uri, s[i].fd, s[i].crash, cseed);
            if (pid < 0) {
                runner_failed(&r, "fork failed", 0, errno);
                cycles = started;
                break;
            }
            s[i].pid = pid;
            started++;
            running++;
        }
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0)
            break;
        for (int i = 0; i < procs; i++) {
            if (s[i].pid == pid) {
                reap(&r, &s[i], st);
                s[i].pid = 0;
                running--;
            }
        }
    }
    _exit(tu_write_all(out, &r, sizeof r) == 0 ? 0 : 1);
}

/* ---- Phases --------------------------------------------------------------- */

static uint64_t store_value(const char *uri)
{
    idp_client *c = tu_open(uri, NULL);
    uint64_t v = tu_get(c, COUNTER, NULL);
    idp_close(c);
    return v;
}

/* IDs recorded so far: the files' sizes over 8. */
static uint64_t recorded(const int *fds)
{
    uint64_t n = 0;
    for (int i = 0; i < PROCS; i++) {
        struct stat st;
        ck_assert_int_eq(fstat(fds[i], &st), 0);
        n += (uint64_t)st.st_size / sizeof(uint64_t);
    }
    return n;
}

/* What one phase did and lost. */
typedef struct phase {
    phase_result r;
    uint64_t ids;       /* recorded */
    uint64_t lost;      /* the store's rise less the IDs recorded */
} phase;

static phase run_phase(const char *uri, const int *fds, unsigned cycles,
                       int procs, int crash_pct, unsigned seed)
{
    phase p = {0};
    uint64_t v0 = store_value(uri), n0 = recorded(fds);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        runner(uri, fds, cycles, procs, crash_pct, seed, pfd[1]);
    }
    close(pfd[1]);
    ssize_t got = read(pfd[0], &p.r, sizeof p.r);
    close(pfd[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(got == (ssize_t)sizeof p.r && WIFEXITED(st) &&
                  WEXITSTATUS(st) == 0, "the runner failed (status 0x%x)",
                  st);
    ck_assert_msg(p.r.failed == 0, "%u of %u cycles failed; the first: %s",
                  p.r.failed, cycles, p.r.why);
    uint64_t v1 = store_value(uri);
    p.ids = recorded(fds) - n0;
    ck_assert_msg(v1 - v0 >= p.ids, "%" PRIu64 " IDs recorded but the store "
                  "rose by %" PRIu64 " only: an ID was served twice",
                  p.ids, v1 - v0);
    p.lost = v1 - v0 - p.ids;
    return p;
}

/* Every ID recorded in the slots' files, checked for duplicates. */
static void assert_all_distinct(const int *fds, uint64_t n)
{
    uint64_t *ids = malloc((n > 0 ? n : 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    size_t at = 0;
    for (int i = 0; i < PROCS; i++) {
        ssize_t got;
        ck_assert_int_eq(lseek(fds[i], 0, SEEK_SET), 0);
        while (at < n &&
               (got = read(fds[i], ids + at, (n - at) * sizeof *ids)) > 0)
            at += (size_t)got / sizeof *ids;
    }
    ck_assert_uint_eq(at, n);
    tu_assert_distinct(ids, n);
    free(ids);
}

static unsigned env_uint(const char *name, unsigned def)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : def;
}

/* Whether `kind` is among IDPRIME_TORTURE_STORES (all when unset). */
static int wanted(const char *kind)
{
    const char *list = getenv("IDPRIME_TORTURE_STORES");
    if (list == NULL || *list == '\0')
        return 1;
    size_t len = strlen(kind);
    for (const char *p = list; p != NULL; p = strchr(p, ',')) {
        p += *p == ',';
        if (strncmp(p, kind, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return 1;
    }
    return 0;
}

START_TEST(test_clean_closes_and_crashes_at_random_never_share_an_id)
{
    const char *kind = rig_kinds[_i];
    if (!wanted(kind))
        return;
    unsigned cycles = env_uint("IDPRIME_TORTURE_CYCLES", 500);
    unsigned seed = env_uint("IDPRIME_TORTURE_SEED", (unsigned)tu_now_ms());
    store_rig rig;
    rig_start(&rig, kind);
    char dir[PATH_MAX], uri[1024];
    int fds[PROCS];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    for (int i = 0; i < PROCS; i++) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/ids.%d", dir, i);
        fds[i] = open(path, O_RDWR | O_CREAT | O_APPEND | O_TRUNC, 0600);
        ck_assert_int_ge(fds[i], 0);
        unlink(path);   /* the descriptors keep them */
    }
    rmdir(dir);
    /* a loaded machine (2 cores, fsync on, 8 processes on one row) can
     * hold one commit past the default 2 s: a cycle must not fail for
     * that, as this run is about duplicates, not latency */
    rig_uri(&rig, "?timeout_ms=20000", uri, sizeof uri);

    long long t0 = tu_now_ms();
    unsigned half = cycles / 2 + 1;
    phase seq = run_phase(uri, fds, cycles / 10 + 1, 1, 0, seed);
    phase clean = run_phase(uri, fds, half, PROCS, 0, seed + 1);
    phase crash = run_phase(uri, fds, half, PROCS, 100, seed + 2);
    phase mixed = run_phase(uri, fds, half, PROCS, CRASH_PCT, seed + 3);
    long long took = tu_now_ms() - t0;
    uint64_t ids = seq.ids + clean.ids + crash.ids + mixed.ids;
    assert_all_distinct(fds, ids);
    ck_assert_uint_eq(seq.r.clean + clean.r.clean + crash.r.crashes +
                      mixed.r.clean + mixed.r.crashes,
                      cycles / 10 + 1 + 3 * half);

    printf("torture %s (seed %u, %u cycles, %lld ms): %" PRIu64 " IDs, none "
           "twice; IDs lost per clean close: %.1f alone (%u of %u gave "
           "back), %.1f with %d at once (%u of %u gave back); per crash: "
           "%.1f with %d at once; %d %% crashes: %.1f per cycle (%u "
           "crashes)\n", kind, seed, cycles / 10 + 1 + 3 * half, took, ids,
           (double)seq.lost / seq.r.clean, seq.r.gave, seq.r.clean,
           (double)clean.lost / clean.r.clean, PROCS, clean.r.gave,
           clean.r.clean,
           (double)crash.lost / crash.r.crashes, PROCS, CRASH_PCT,
           (double)mixed.lost / (mixed.r.clean + mixed.r.crashes),
           mixed.r.crashes);
    fflush(stdout);
    for (int i = 0; i < PROCS; i++)
        close(fds[i]);
    rig_stop(&rig);
}
END_TEST

int main(void)
{
    const TTest *none[] = {NULL};
    const TTest *loops[] = {
        test_clean_closes_and_crashes_at_random_never_share_an_id, NULL};
    const tu_case cases[] = {{.name = "torture", .tests = none,
                              .loops = loops, .rows = rig_nkinds},
                             {.name = NULL}};
    return tu_run(tu_suite("torture", 600, cases));
}
