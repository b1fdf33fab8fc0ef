/*
 * testutil.h - what every Check suite shares: declaring and running the
 * suite, the calls a test needs to succeed, a monotonic clock, sets of IDs,
 * and IDs taken from many threads and processes at once.
 *
 * The tu_* helpers that "fail the test" do so with ck_assert: call them
 * from a test (Check's forked test process), never from a child process or
 * thread the test started.
 */
#ifndef IDPRIME_TESTUTIL_H
#define IDPRIME_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "idprime/idprime.h"

/* ---- The suite ---------------------------------------------------------- */

/* Adds a test case `name` to s holding the NULL-terminated `tests`, with a
 * timeout of `timeout_s` seconds (0: Check's default of 4 s, too short for
 * the server tests, which run under sanitizers too). Returns the case,
 * owned by the suite, for fixtures and loop tests. */
TCase *tu_add_tcase(Suite *s, const char *name, double timeout_s,
                    const TTest *const *tests);

/* The rows of a table (an array, not a pointer), for tu_case.rows. */
#define TU_ROWS(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* A test case of a suite, written with designated initializers; a NULL
 * name ends a list of them. */
typedef struct tu_case {
    const char *name;
    const TTest *const *tests;  /* NULL-terminated: each runs once */
    const TTest *const *loops;  /* NULL, or NULL-terminated loop tests: */
    int rows;                   /* each runs for _i = 0 .. rows - 1 */
    SFun setup, teardown;       /* checked fixture, run around each test
                                   (even one that fails); may be NULL */
} tu_case;

/* A suite `name` of `cases`, in order, each added as tu_add_tcase does
 * with its fixture and loop tests. Returns the suite, for tu_run. */
Suite *tu_suite(const char *name, double timeout_s, const tu_case *cases);

/* Runs every test of `s` (CK_NORMAL output) and frees the runner and the
 * suite. Returns main()'s exit status: 0 when every test passed, else 1. */
int tu_run(Suite *s);

/* ---- Calls that must succeed -------------------------------------------- */

/* Opens `uri` with `opt` (NULL: the defaults). Returns the client, to
 * idp_close(); fails the test, naming the URI and the error, when it does
 * not open. */
idp_client *tu_open(const char *uri, const idp_options *opt);

/* The counter `name` of c (owned by c); fails the test when refused. */
idp_counter *tu_counter(idp_client *c, const char *name);

/* The next ID of ctr; fails the test on any error. */
uint64_t tu_next(idp_counter *ctr);

/* The value of counter `name` in c's store, 0 when it does not exist;
 * *exists (when not NULL) says which. Fails the test on any error. */
uint64_t tu_get(idp_client *c, const char *name, int *exists);

/* Waits until no fetch of ctr is queued or running, and returns its
 * statistics then. */
idp_counter_stats tu_settle(idp_counter *ctr);
/* A snapshot of the counter's stats (asserted to succeed). */
idp_counter_stats tu_stats(idp_counter *ctr);

/* What idp_list called back with: the first TU_LISTED names and values in
 * the order called, and how many calls there were. Zero-initialise one and
 * pass it, with tu_listed_cb, to idp_list. */
#define TU_LISTED 16
typedef struct tu_listed {
    int n;                          /* calls, even past TU_LISTED */
    char names[TU_LISTED][64];      /* cut to 63 bytes */
    uint64_t values[TU_LISTED];
} tu_listed;

/* The idp_list callback that records into the tu_listed `ud`; returns 0. */
int tu_listed_cb(void *ud, const char *name, uint64_t value);

/* The index of `name` among the recorded names, or -1. */
int tu_listed_find(const tu_listed *l, const char *name);

/* ---- Time --------------------------------------------------------------- */

/* Monotonic clock readings, for measuring how long a call took. */
long long tu_now_ms(void);
double tu_now_s(void);

/* Sleeps `ms` milliseconds, resuming after signals. */
void tu_sleep_ms(unsigned ms);
void tu_sleep_us(unsigned us);

/* ---- Sets of IDs -------------------------------------------------------- */

/* Sorts ids ascending and fails the test when one is handed out twice or
 * is 0 (IDs start at 1). */
void tu_assert_distinct(uint64_t *ids, size_t n);

/* ---- Many threads, many processes --------------------------------------- */

/* Writes all of buf to fd (blocking, EINTR retried; no stdio, so a forked
 * child may use it); 0 when it did. */
int tu_write_all(int fd, const void *buf, size_t len);

/*
 * Takes `per_thread` IDs from ctr on each of `threads` threads at once
 * (when incr_every is not 0, every incr_every-th of them through
 * idp_incr(ctr, 1), the INCRBY drop-in). Fails the test when a call fails
 * or a thread's IDs do not increase. Returns the IDs, thread after thread,
 * in the order taken; the caller frees them.
 */
uint64_t *tu_thread_ids(idp_counter *ctr, int threads, size_t per_thread,
                        unsigned incr_every);

/* IDs from `procs` processes, each a client of its own on one counter. */
typedef struct tu_fanout {
    const char *uri;      /* the store every child opens (default options) */
    const char *counter;  /* the one counter they all take from */
    int procs;            /* child processes */
    int threads;          /* threads per child, as tu_thread_ids */
    size_t per_thread;    /* IDs per thread */
    unsigned incr_every;  /* as tu_thread_ids; 0: idp_next only */
} tu_fanout;

/*
 * Forks f->procs children, all before this process opens anything (call it
 * before the test opens a client, so no child inherits one). Each child
 * takes its IDs as tu_thread_ids does and sends them back over a pipe, with
 * its counter's prime_calls read just before it closed its client. Fails
 * the test when a child fails (its reason is on stderr) or when an ID is
 * handed out twice. Returns all the IDs, sorted ascending, to free; *n is
 * their count (procs x threads x per_thread), and *prime_calls (when not
 * NULL) the sum of the children's prime_calls.
 */
uint64_t *tu_fanout_ids(const tu_fanout *f, size_t *n, uint64_t *prime_calls);

/*
 * Forks a child that opens `uri` (default options) and takes IDs of
 * `counter` forever, sending each down a pipe; reads `take` of them, kills
 * the child with SIGKILL while it runs, then reads what was still in the
 * pipe. Fails the test when the child ends by itself. Appends the IDs, in
 * the order handed out, to the array *ids of *n entries (grown with
 * realloc; *ids may start NULL, and the caller frees it). Returns how many
 * it appended.
 */
size_t tu_take_then_kill(const char *uri, const char *counter, size_t take,
                         uint64_t **ids, size_t *n);

#endif
