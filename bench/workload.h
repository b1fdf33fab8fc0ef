/*
 * workload.h - the workloads that hand out IDs through the engine (files,
 * burst, steady, and bursty, ramp and trace from a rate profile) on
 * cfg->threads threads, timing every next() call and keeping the highest
 * ID each counter handed out.
 */
#ifndef IDPRIME_BENCH_WORKLOAD_H
#define IDPRIME_BENCH_WORKLOAD_H

#include "bench.h"
#include "histogram.h"
#include "progress.h"

/* What the workers did. */
typedef struct wl_out {
    uint64_t ids;       /* IDs handed out */
    uint64_t calls;     /* next() calls, failed ones included */
    double wall_s;      /* first thread started .. last one finished */
    int stopped;        /* the monitor's time limit stopped it */
    uint64_t last[2];   /* the highest ID handed out of each counter */
    histogram *hist;    /* every call's latency; the caller frees it */
} wl_out;

/* The progress units of the workload (files, or IDs). */
uint64_t workload_units(const bench_config *cfg);

/*
 * Runs cfg's workload. ctr[0] is the workload's counter (files: inode),
 * ctr[1] the chunk counter of files. `m` is started by the caller; the
 * workers bump m->done and stop early when m->stop rises. Returns
 * BENCH_OK, or BENCH_EWORK with msg naming the first failed call (the
 * other threads stop too; what was done is in *out).
 */
int workload_run(const bench_config *cfg, idp_counter *const ctr[2],
                 monitor *m, wl_out *out, char *msg, size_t len);

#endif
