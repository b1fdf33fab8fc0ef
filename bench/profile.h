/*
 * profile.h - demand that varies in time, for the workloads bursty, ramp
 * and trace: the time each ID is due, from a rate that changes piecewise
 * (or from a list of timestamps replayed as they are).
 *
 *   bursty: cycles of 1 s, on for the first quarter at 4x the rate, off
 *           for the rest (the mean is the rate), for `seconds`;
 *   ramp:   the rate rising from near 0 to 2x the rate over `seconds` (the
 *           mean is the rate), in 40 steps;
 *   trace:  a CSV file. Two columns, "t,rate": from t (seconds) on, `rate`
 *           IDs/s, until the next row's t; the last row's t ends the trace.
 *           One column: each row is the time one ID is due. Lines starting
 *           with '#', blank lines and a first line that is not a number (a
 *           header) are skipped.
 */
#ifndef IDPRIME_BENCH_PROFILE_H
#define IDPRIME_BENCH_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

typedef struct profile_seg {
    double t0, t1, rate;   /* [t0, t1) at rate IDs/s */
    double before;         /* IDs due before t0 */
} profile_seg;

typedef struct profile {
    profile_seg *seg;      /* piecewise rates; or */
    size_t nseg;
    double *stamp;         /* timestamps, increasing */
    size_t nstamp;
    uint64_t total;        /* IDs due in all */
    double seconds;        /* how long it lasts */
} profile;

/*
 * Builds the profile of cfg's workload (bursty, ramp or trace). Returns 0,
 * or -1 with msg naming what was wrong (an unreadable trace, a bad line
 * with its number, rates out of order).
 */
int profile_build(const bench_config *cfg, profile *p, char *msg, size_t len);

/* The time the g-th ID (0-based) is due, seconds from the start. */
double profile_due(const profile *p, uint64_t g);

void profile_free(profile *p);

#endif
