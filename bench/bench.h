/*
 * bench.h - the comparative benchmark as a library, behind `idprime bench`
 * (docs/design.md: Bench).
 *
 * A run is one workload on one store URI. bench_run() does a URI's runs
 * (the run, then the same run at metaprime=0 as its baseline), each on a
 * fresh key prefix so the store's own count of increments, read before and
 * after, belongs to that run alone. Network stores are put behind a delay
 * proxy on 127.0.0.1 when a round trip is asked for; the mem store (and
 * sqlite, where its plugin takes it) gets a `delay_ms` instead. The round
 * trip reported is the one measured before the run, not the one asked for.
 *
 * The library prints nothing but the progress bar (to cfg->progress) and
 * what report.c writes where it is told; warnings go to cfg->log.
 */
#ifndef IDPRIME_BENCH_H
#define IDPRIME_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "idprime/idprime.h"

enum { BENCH_OK = 0, BENCH_EWORK = 1, BENCH_EUSAGE = 2 };

typedef enum bench_workload {
    BENCH_FILES,    /* each file takes 1 inode and `chunks` chunk IDs */
    BENCH_BURST,    /* `count` IDs as fast as possible */
    BENCH_STEADY,   /* `rate` IDs/s for `seconds` */
    BENCH_HOTPATH,  /* next() on a warm pool against an atomic fetch-add,
                       and batch=1 against the raw client library */
    BENCH_COUNTERS, /* `count` counters in one client, one ID each; and
                       the cost of idp_open + idp_close */
    BENCH_BURSTY,   /* on/off phases averaging `rate` over `seconds` */
    BENCH_RAMP,     /* a rate rising from 0 to 2x `rate` over `seconds` */
    BENCH_TRACE     /* the demand of a CSV file replayed (profile.h) */
} bench_workload;

/* "files", "burst", "steady", "hotpath", "counters", "bursty", "ramp",
 * "trace". */
const char *bench_workload_name(bench_workload w);
/* Returns 0 and sets *w, or -1 for an unknown name. */
int bench_workload_parse(const char *name, bench_workload *w);

typedef struct bench_config {
    bench_workload workload;
    uint64_t count;        /* files: files; burst: IDs; hotpath: IDs per
                              thread per round; 0: the workload's default */
    uint64_t chunks;       /* files: chunk IDs per file */
    uint64_t rate;         /* steady: IDs/s, all threads together */
    unsigned seconds;      /* steady: how long */
    unsigned threads;      /* 1..BENCH_MAX_THREADS */
    unsigned rtt_ms;       /* round trip to inject; 0: none */
    int baseline;          /* pair each run with metaprime=0 */
    unsigned time_limit;   /* seconds a run may take before it is stopped */
    uint64_t roundtrips;   /* hotpath: round trips per side in the
                              framework-cost comparison; 0: about 2 s worth */
    const char *const *params; /* NULL-terminated "key=value" set on every
                              URI (overriding the URI's own); may be NULL */
    const idp_options *options; /* every client's options (a config's
                              settings and batch policy); the bench sets
                              the log. May be NULL */
    const char *trace;     /* trace: the CSV file replayed */
    const char *strategy;  /* the name reported with each run (a strategy
                              of the shoot-out); NULL: none */
    FILE *progress;        /* a progress bar for runs over a second; NULL:
                              none */
    idp_log_fn log;        /* warnings (a disagreement, a delay a store
                              cannot take); may be NULL */
    void *log_ud;
} bench_config;

#define BENCH_MAX_THREADS 64

/* Fills the defaults: files, 1 chunk, 1 thread, baseline on, 600 s limit. */
void bench_config_defaults(bench_config *cfg);

/* The count the workload uses when cfg->count is 0. */
uint64_t bench_default_count(bench_workload w);

/* Checks the combination of settings; returns 0, or BENCH_EUSAGE with a
 * message naming the option. */
int bench_config_check(const bench_config *cfg, char *msg, size_t len);

/* One run, as reported (docs/design.md: Bench fixes the JSON names). */
typedef struct bench_result {
    char uri[512];             /* as given, with any password hidden */
    char store[32];            /* the plugin: "redis", "sqlite", ... */
    bench_workload workload;
    int metaprime;             /* 0: the baseline run */
    uint64_t batch;            /* first counter's batch; 1 at metaprime=0 */
    unsigned threads;
    double rtt_ms;             /* measured: median of store reads */
    unsigned rtt_ms_asked;
    int rtt_injected;          /* 0: the store could not take the delay */
    uint64_t chunks;           /* files: chunk IDs per file */
    uint64_t ids;              /* IDs handed out */
    double wall_s, ids_per_s;
    int has_store_count;       /* the store keeps its own count */
    uint64_t roundtrips_store; /* increments the store counted in the run */
    uint64_t roundtrips_engine;/* fetches the engine made (prime_calls) */
    uint64_t waited_calls;     /* next() calls that waited for a fetch */
    uint64_t calls;            /* next() calls */
    uint64_t p50_ns, p99_ns, p999_ns;
    uint64_t unused_ids;       /* fetched, not handed out, at the end */
    char strategy[64];         /* cfg->strategy, or "" */
    uint64_t last_id[2];       /* the highest ID handed out, per counter */
    int has_wasted;            /* wasted_ids was measured */
    uint64_t wasted_ids;       /* the store's values after the clean close
                                  above the last IDs handed out */
    uint64_t at_risk_ids;      /* the highest values fetched above the last
                                  IDs handed out, before the close: what a
                                  crash then would have lost */
    int ncounters;             /* the workload's counters (files: 2) */
    char counter[2][16];       /* their names: "inode", "chunk", ... */
    uint64_t counter_fetches[2]; /* the engine's fetches of each */
    int stopped;               /* 1: stopped at the time limit; 2: by an
                                  interrupt (SIGINT, SIGTERM) */
    /* hotpath */
    double atomic_ids_per_s;   /* bare atomic fetch-add, same threads */
    double next1_ids_per_s;    /* next() on one thread, in the same rounds
                                  (threads > 1 only) */
    double cache_ids_per_s;    /* idp_cache_next, same threads and rounds */
    /* counters */
    uint64_t rss_growth;       /* resident bytes the counters added */
    uint64_t metrics_bytes;    /* the client's metrics text with them */
    double open_close_us;      /* idp_open + idp_close, median */
    int has_raw;               /* the raw-client comparison ran */
    char raw_client[16];       /* "hiredis", "libmemcached" */
    uint64_t raw_roundtrips;   /* round trips per side */
    double engine_rt_ns;       /* per round trip, batch=1 through the engine */
    double raw_rt_ns;          /* per round trip, the raw client's INCRBY */
    double rt_ratio;           /* engine/raw, the median of paired rounds */
    char *metrics;             /* the run's Prometheus text, or NULL */
} bench_result;

typedef struct bench_results {
    bench_result *v;
    size_t n, cap;
} bench_results;

void bench_results_free(bench_results *r);

/*
 * Opens the URI (without any delay) and closes it again, so a bad URI, an
 * unknown parameter or a store that is down is reported before any run
 * starts. Also refuses, when a round trip is asked for, a network store
 * that is not on 127.0.0.1. Returns BENCH_OK, BENCH_EUSAGE or BENCH_EWORK
 * with msg filled.
 */
int bench_check_uri(const bench_config *cfg, const char *uri, char *msg,
                    size_t len);

/*
 * Runs the workload on the URI, then (cfg->baseline, and not for hotpath,
 * whose comparisons are in the run itself) the same at metaprime=0,
 * appending one result per run to `out`. A store count that disagrees with
 * the engine's is logged as a warning. Returns BENCH_OK, or BENCH_EWORK /
 * BENCH_EUSAGE with msg filled (results of the runs done stay in `out`).
 */
int bench_run(const bench_config *cfg, const char *uri, bench_results *out,
              char *msg, size_t len);

/* ---- Reports (report.c, plot.c) ----------------------------------------- */

/* The table: one line per run, then one per baseline pair (speed-up) and
 * per hotpath run (against the atomic and the raw client). */
void bench_table(FILE *f, const bench_results *r);

/* {"runs":[...]} with the field names of docs/design.md. Returns 0, or -1 on a write
 * error. */
int bench_json(FILE *f, const bench_results *r);

/* A header line and one line per run, same names as the JSON (latency as
 * p50_ns, p99_ns, p999_ns). Returns 0 or -1. */
int bench_csv(FILE *f, const bench_results *r);

/* An SVG: IDs/s, wall time and store round trips per store, the run beside
 * its baseline (or the atomic fetch-add and raw client for hotpath), on log
 * scales. Returns 0 or -1. */
int bench_svg(FILE *f, const bench_results *r);

/* The shoot-out's SVG (frontier.c; bench_svg writes it when the runs have
 * strategies): for each workload and round trip, calls that waited against
 * IDs wasted at a clean close, and against IDs at risk on a crash, a point
 * per strategy and store, the frontier ringed. Returns 0 or -1. */
int bench_frontier_svg(FILE *f, const bench_results *r);

/* 1 when another run of the same URI, workload and round trip both waited
 * no more and wasted (at_risk: held at risk) no more than run i, and did
 * better on one of them: run i is off the lower-left frontier. */
int bench_dominated(const bench_results *r, size_t i, int at_risk);

#endif
