/*
 * internal.h - the client and counter structs shared by client.c (the
 * public API around the engine), engine.c (pools and fetches) and
 * metrics.c.
 */
#ifndef IDP_INTERNAL_H
#define IDP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "store.h"

#define API __attribute__((visibility("default")))

/*
 * The pool of one counter is a segment [base, base+len) of IDs fetched in
 * one round trip. Callers claim IDs from it with one fetch-add on `ticket`,
 * which holds the segment's generation in its high bits and the offset
 * claimed so far in its low bits; a claim is good when its offset range
 * lies inside the segment of its generation. Segments live in a small ring
 * so a new one can be published while slow readers still look at the old.
 */
#define OFF_BITS 44
#define OFF_MASK ((UINT64_C(1) << OFF_BITS) - 1)
#define SEG_RING 1024                /* a claim stalled across this many
                                        fetches is lost: a gap */
#define FAST_MAX (UINT64_C(1) << 20) /* larger claims take the slow path */
#define NBUCKETS 14                  /* fetch latency histogram */

/*
 * A lease is a run of IDs carved from the pool for one thread, served with
 * a plain load and store: no atomic read-modify-write, no shared cache
 * line. Each thread that allocates gets a slot number (1..LEASE_SLOTS-1)
 * for its lifetime, the same in every counter; slot 0 never holds IDs, so
 * a thread without a slot always takes the refill path. Only the slot's
 * thread writes its lease; the fields are atomics (relaxed: plain moves)
 * so that engine_stats may read them.
 */
#define LEASE_SLOTS 64
#define LEASE_MAX 256                /* the largest lease, in IDs */

typedef struct lease {
    _Atomic uint64_t next;    /* the next ID to hand out */
    _Atomic uint64_t end;     /* one past the lease's last ID */
    uint64_t size;            /* the next refill's size */
} __attribute__((aligned(128))) lease; /* 2 lines: adjacent-line prefetch */

typedef struct segment {
    _Atomic uint64_t gen;     /* generation; a seqlock: odd while written */
    _Atomic uint64_t base;
    _Atomic uint64_t len;
    _Atomic uint64_t trigger; /* offset at which the next fetch starts */
} segment;

struct idp_counter {
    /* Hot: the per-thread leases first (the hot path adds the thread's byte
     * offset to the counter's address), then the pool's ticket. */
    lease leases[LEASE_SLOTS];
    _Atomic uint64_t ticket;
    segment seg[SEG_RING];
    idp_client *client;
    int legacy;               /* metaprime=0: one round trip per allocation */
    _Atomic uint64_t lease_dropped; /* lease IDs given up to keep a thread's
                                       IDs increasing (a gap) */

    /* Everything below is under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;             /* generation of the current segment */
    uint64_t cur_len;
    int inflight;             /* a fetch for this counter is running */
    int queued;               /* waiting for the background worker */
    uint64_t want_gen;        /* the generation that asked for a prefetch */
    int has_ready;            /* a fetched segment waits to be installed */
    uint64_t ready_base, ready_len;
    uint64_t fetch_seq;       /* fetches finished, ok or not */
    uint64_t fail_seq;        /* fetch_seq of the last failed fetch */
    idp_error last_err;
    uint64_t batch;           /* the next fetch's batch */
    uint64_t floor;           /* the configured batch */
    uint64_t max_batch;       /* the adaptive ceiling (>= floor) */
    int adaptive;
    uint64_t low_watermark;   /* percent */
    uint64_t high;            /* the highest value fetched from the store */

    /* Metrics, under mu. */
    uint64_t claimed_retired; /* offsets claimed in retired segments */
    uint64_t straddled;       /* claimed offsets not served: a claim across
                                 a segment's end */
    uint64_t skipped;         /* fetched IDs skipped to keep IDs increasing */
    uint64_t lost;            /* claims whose segment slot was reused */
    uint64_t fetched;         /* IDs received from the store */
    uint64_t direct_served;   /* IDs served without the pool */
    uint64_t prime_calls, prefetch_async, waited, errors, regressions;
    double fetch_seconds;
    uint64_t buckets[NBUCKETS + 1];

    /* What adaptive sizing and the batch policy measure, under mu. */
    double installed_at;      /* when the current segment was installed */
    double rate;              /* IDs/s: the latest demand measured */
    double lat;               /* seconds a fetch takes (moving average) */
    uint64_t waited_at_install; /* `waited` when the segment was installed */
    uint64_t waited_at_fetch; /* `waited` at the previous fetch */

    idp_counter *next;        /* the client's list */
    idp_counter *qnext;       /* the worker's queue */
    char *name;
    char *key;                /* prefix + name */
};

struct idp_client {
    uri_parsed uri;
    engine_cfg cfg;
    store st;
    idp_log_fn log;
    void *log_ud;

    pthread_mutex_t mu;       /* the counter list */
    idp_counter *counters;

    /* The background fetch worker. */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    idp_counter *queue;
    int stopping;
    int worker_running;
    pthread_t worker;

    _Atomic uint64_t errors;  /* meta_prime_errors_total */
    idp_policy_fn policy;     /* may be NULL */
    void *policy_ud;
};

/* Upper bounds of the fetch latency buckets, in seconds. */
IDP_HIDDEN extern const double idp_buckets[NBUCKETS];

/* engine.c */
IDP_HIDDEN int engine_counter_init(idp_counter *c, idp_client *client,
                                   const counter_cfg *cfg);
IDP_HIDDEN void engine_counter_destroy(idp_counter *c);
IDP_HIDDEN int engine_start(idp_client *client, idp_error *err);
IDP_HIDDEN void engine_stop(idp_client *client);
/* A consistent snapshot of a counter; buckets may be NULL. */
IDP_HIDDEN void engine_stats(idp_counter *c, idp_counter_stats *out,
                             uint64_t buckets[NBUCKETS + 1]);
/* Fetches the first batch of each counter, all in one store call (one
 * round trip where the store pipelines), into their pools. */
IDP_HIDDEN int engine_prime(idp_client *client, idp_counter *const *cs,
                            size_t n, idp_error *err);

#endif
