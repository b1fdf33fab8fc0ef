/*
 * faults.h - what the fault suites share: the engine's time bound on a
 * failing call, raw text commands to a server, and clients kept running on
 * threads while a store is killed, stopped, flushed or restarted, with every
 * ID and every error they saw recorded for the test to check afterwards.
 *
 * Like testutil.h, the fa_* functions that "fail the test" use ck_assert:
 * call them from the test itself, never from a thread or child it started.
 */
#ifndef IDPRIME_FAULTS_H
#define IDPRIME_FAULTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "idprime/idprime.h"

/*
 * The longest a failing call may take: the engine waits at most
 * 2*timeout_ms + 1 s for a fetch in flight (docs/design.md: Semantics, 5), plus
 * FA_SLACK_MS for a loaded 2-core machine running the sanitizers.
 */
#define FA_SLACK_MS 500
#define FA_CALL_LIMIT_MS(timeout_ms) (2LL * (timeout_ms) + 1000 + FA_SLACK_MS)

/* The seed of the suite's random choices: $IDPRIME_FAULT_SEED when set
 * (to replay a failure), else one drawn from the clock and printed. */
unsigned fa_seed(void);

/* ---- Raw servers ------------------------------------------------------ */

/*
 * Sends `len` bytes of `cmd` to 127.0.0.1:port on a new connection and
 * reads the reply until it ends with `end` (or the server closes, or 10 s
 * pass). The reply is NUL-terminated in out. Returns its length, or -1
 * when the connection failed or the reply did not end with `end`.
 */
long fa_raw(int port, const char *cmd, size_t len, const char *end, char *out,
            size_t outlen);


/* ---- Clients running on threads ------------------------------------------ */

#define FA_MAX_THREADS 8

/* One failed call: when it started (tu_now_ms), how long it took, its
 * code. */
typedef struct fa_err {
    long long start_ms;
    long long dt_ms;
    int code;
} fa_err;

typedef struct fa_taker {
    struct fa_run *run;
    int index;
    pthread_t th;
    uint64_t *ids;               /* every ID served, in order */
    size_t n, cap;
    fa_err *errs;                /* every failed call, in order */
    size_t nerr, errcap;
    _Atomic long long last_ok_ms; /* start of the latest success, or 0 */
    _Atomic size_t served;       /* == n, readable while running */
    /* what went wrong (the first of each), checked by fa_run_check */
    int bad_order;               /* an ID not above the thread's previous */
    int bad_msg;                 /* an error message empty or unnamed */
    int oom;
    char why[400];
    char sample[IDP_EUNSUPPORTED + 1][256]; /* one message per code */
} fa_taker;

typedef struct fa_run {
    idp_counter *ctr;
    const char *counter;  /* its name: every error message must name it */
    const char *store;    /* "redis plugin": store errors must name it */
    int threads;
    atomic_int stop;
    fa_taker t[FA_MAX_THREADS];
} fa_run;

/*
 * Starts `threads` threads calling idp_next(ctr) in a loop: each records
 * its IDs (about 80,000 per second at most: it naps 0.2 ms every 16 IDs, so
 * the recorded sets stay small), and its failed calls with their duration;
 * after a failure it naps 1 ms. `counter` and `store` are what every error
 * message must name (the store only for IDP_ESTORE).
 */
void fa_run_start(fa_run *r, idp_counter *ctr, const char *counter,
                  const char *store, int threads);

/* Stops and joins the threads. */
void fa_run_stop(fa_run *r);

/* The smallest last_ok_ms over the threads: every thread has had a
 * success that started at or after it. */
long long fa_run_last_ok_min(fa_run *r);

/*
 * Waits up to `timeout_ms` until every thread had a success that started
 * at or after `since_ms` and the counter made at least `fetches` more store
 * fetches than `prime_calls0` (so the store answered again, not only the
 * pool). Returns 1 when it did, 0 on timeout.
 */
int fa_run_wait_recovered(fa_run *r, long long since_ms, uint64_t prime_calls0,
                          uint64_t fetches, long long timeout_ms);

/*
 * After fa_run_stop: fails the test when a thread's IDs did not strictly
 * increase, an error message was empty or did not name the counter (or the
 * store, for IDP_ESTORE), a code was not ESTORE/ETIMEOUT/EREGRESS, or a
 * failed call took longer than limit_ms. Returns the number of failed calls.
 */
size_t fa_run_check(fa_run *r, long long limit_ms);

/* Failed calls with `code` (-1: any) that started in [from_ms, to_ms). */
size_t fa_run_errors(const fa_run *r, int code, long long from_ms,
                     long long to_ms);

/* The longest failed call, in ms (0 when none). */
long long fa_run_max_err_ms(const fa_run *r);

/* All the IDs served, thread after thread; *n their count; to free. */
uint64_t *fa_run_ids(const fa_run *r, size_t *n);

/* The largest ID served (0 when none). */
uint64_t fa_run_max_id(const fa_run *r);

/* Frees what the threads recorded. */
void fa_run_free(fa_run *r);

/* Sleeps `ms` while the threads run (tu_sleep_ms). */
void fa_run_for(unsigned ms);

#endif
