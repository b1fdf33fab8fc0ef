/*
 * progress.h - watches a run from a thread of its own: draws a progress
 * bar once the run has taken a second (when given a stream, meant to be a
 * TTY), and raises `stop` at the time limit so the workers finish early.
 */
#ifndef IDPRIME_BENCH_PROGRESS_H
#define IDPRIME_BENCH_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

typedef struct monitor {
    _Atomic uint64_t done;   /* units of work done, bumped by the workers */
    _Atomic int stop;        /* raised at the time limit; workers poll it */
    uint64_t total;          /* units of work in the run */
    /* private */
    FILE *out;
    char label[96];
    double t0, limit_s;
    int finished, drew, running;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} monitor;

/* Starts watching a run of `total` units limited to limit_s seconds; out
 * may be NULL (no bar). Returns 0, or -1 when its thread cannot start (the
 * run then has no bar and no limit). */
int monitor_start(monitor *m, FILE *out, const char *label, uint64_t total,
                  double limit_s);

/* Stops watching and clears the bar. */
void monitor_end(monitor *m);

/* An interrupt for every run: once *flag is nonzero (a SIGINT or SIGTERM
 * the command caught), the run going on stops as at its time limit and no
 * further run starts. NULL (the default): none. */
void bench_set_interrupt(const atomic_int *flag);
int bench_interrupted(void);

/* The run's clock, seconds on CLOCK_MONOTONIC. */
double bench_now(void);

#endif
