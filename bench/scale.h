/*
 * scale.h - `idprime bench --workload counters`: many counters in one
 * client (each takes one ID), and the cost of opening a client.
 */
#ifndef IDPRIME_BENCH_SCALE_H
#define IDPRIME_BENCH_SCALE_H

#include "bench.h"
#include "progress.h"

typedef struct scale_out {
    uint64_t counters;        /* counters made, each served one ID */
    double wall_s;            /* making them and taking their IDs */
    uint64_t rss_growth;      /* resident memory added meanwhile, bytes */
    size_t metrics_bytes;     /* the client's metrics text afterwards */
    double open_close_us;     /* idp_open + idp_close of the URI, median */
} scale_out;

/* Makes cfg->count counters (default 100,000) named c0, c1, ... on the open
 * client `c`, each taking one ID (checked: each is 1 on a fresh prefix),
 * then times SCALE_OPENS opens and closes of `uri` with `opt`. m->done
 * counts counters. Returns BENCH_OK or BENCH_EWORK with msg. */
int scale_run(const bench_config *cfg, idp_client *c, const char *uri,
              const idp_options *opt, monitor *m, scale_out *out, char *msg,
              size_t len);

#define SCALE_OPENS 200

#endif
