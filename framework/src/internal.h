/*
 * internal.h - the client and counter structs shared by client.c (the
 * public API around the engine), engine.c (pools and fetches), thread.c
 * (per-thread runs and caller caches), fork.c (what a child discards) and
 * metrics.c.
 *
 * Locks, in the order they may be taken:
 *   client->mu (the counter table)  ->  counter->mu (its pool)
 *     ->  lease_mu (which thread holds which run; process-wide)
 *     ->  client->qmu (the worker's queue)
 *   store->lock (the connection) is taken alone, never with another held.
 * No callback (log, policy, list) runs with any of them held.
 */
#ifndef IDP_INTERNAL_H
#define IDP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "store.h"

#define API __attribute__((visibility("default")))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define NBUCKETS 14                  /* fetch latency histogram */
#define LEASE_MAX 1024               /* the largest per-thread run, in IDs */

typedef struct tstate tstate;

/*
 * A run of IDs one thread took from a counter's pool and hands out itself:
 * the hot path is a load of `next` and `end` and a store of `next`, on a
 * cache line no other thread writes. It belongs to one counter and one
 * thread for its whole life and is never handed to another thread: when the
 * thread ends, its rest is a gap.
 * - next: written by the owner only (relaxed); read by stats.
 * - end, taken, gapped: written by the owner with the counter's mu held.
 * - owner, tnext/tprev: under lease_mu; cnext under the counter's mu and
 *   lease_mu both.
 * IDs served from it = taken - gapped - (end - next), which only grows.
 */
typedef struct tlease {
    _Atomic uint64_t next;
    _Atomic uint64_t end;
    uint64_t taken;           /* IDs claimed into it, ever */
    uint64_t gapped;          /* IDs given up, ever */
    uint64_t size;            /* the next refill's size */
    tstate *owner;            /* NULL once the thread has ended */
    struct tlease *cnext;     /* the counter's list */
    struct tlease *tnext, **tprev; /* the owner's list */
} __attribute__((aligned(128))) tlease; /* 2 lines: no neighbour in the pair an adjacent-line prefetch fetches */

/* A run as a claim sees it: [next, end) and its counts. */
typedef struct run {
    uint64_t next, end, taken, gapped;
} run;

struct idp_counter {
    uint64_t uid;             /* process-wide, never reused: the key of the
                                 threads' runs (a freed counter's address
                                 may come back, its uid never) */
    idp_client *client;
    int legacy;               /* metaprime=0: one round trip per allocation */

    /* Everything below is under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tlease *leases;           /* the threads' runs of this counter */

    /* The pool: [cur, cur_end) of the segment being served, and a fetched
     * batch waiting to be installed once it is used up. */
    uint64_t cur, cur_end;
    uint64_t seg_len;         /* the installed segment's length */
    uint64_t seg_id;          /* installs so far */
    uint64_t trigger_left;    /* prefetch when at most this many are left */
    int has_ready;
    uint64_t ready_base, ready_len;

    int inflight;             /* a fetch for this counter is running */
    int queued;               /* waiting for the background worker */
    uint64_t want_seg;        /* the segment that asked for a prefetch */
    uint64_t trig_seg;        /* the last segment whose watermark fired */
    uint64_t fetch_seq;       /* fetches finished, ok or not */
    uint64_t fail_seq;        /* fetch_seq of the last failed fetch */
    idp_error *last_err;      /* the last failure, for its waiters; made
                                 on the first (an idle counter stays small) */

    uint64_t batch;           /* the next fetch's batch */
    uint64_t floor;           /* the configured batch */
    uint64_t max_batch;       /* the adaptive ceiling (>= floor) */
    int adaptive;
    uint64_t low_watermark;   /* percent */
    uint64_t high;            /* the highest value fetched from the store */
    uint64_t pool_top;        /* the end of the last fetch into the pool
                                 by this process; 0 when a direct fetch
                                 came after it, or none was made: what a
                                 clean close may give back lies below it */

    /* Metrics. Served IDs = served_done + the runs' served + served_pool. */
    uint64_t served_done;     /* served from runs since dropped */
    uint64_t served_pool;     /* served straight from the pool or the store,
                                 and taken by caller caches */
    uint64_t fetched;         /* IDs received from the store */
    uint64_t prime_calls, prefetch_async, waited, errors, regressions;
    double fetch_seconds;

    /* What adaptive sizing and the batch policy measure. */
    double installed_at;      /* when the current segment was installed */
    double rate;              /* IDs/s: the latest demand measured */
    double lat;               /* seconds a fetch takes (moving average) */
    uint64_t waited_at_install; /* `waited` when the segment was installed */
    uint64_t waited_at_fetch; /* `waited` at the previous fetch */
    double fetched_at;        /* when the previous fetch finished; 0: none */
    uint64_t policy_wm;       /* the batch policy's watermark, IDs left
                                 (IDP_WATERMARK_NEVER: none) ... */
    int policy_wm_set;        /* ... once the policy chose one */

    idp_counter *hnext;       /* the client's hash chain */
    idp_counter *qnext;       /* the worker's queue */
    char *key;                /* prefix + name */
    char name[];              /* the counter's name */
};

/* A generation word an idp_cache checks inline. Cells are never freed, so
 * a cache of a closed client still reads valid memory. */
typedef struct gen_cell {
    _Atomic uint64_t gen;     /* bumped by close and, in a child, by fork */
    _Atomic uint64_t owner;   /* the client's uid; 0 while free */
    struct gen_cell *next_free;
} gen_cell;

struct idp_client {
    uint64_t uid;
    uri_parsed uri;
    engine_cfg cfg;
    store st;
    idp_log_fn log;
    void *log_ud;
    _Atomic uint64_t epoch;   /* the fork epoch it was last set up in */
    gen_cell *cell;           /* what its caches check */

    pthread_mutex_t mu;       /* the counter table */
    idp_counter **table;      /* hash buckets, a power of two */
    size_t nbuckets, ncounters;

    /* The background fetch worker, started on first use. */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    idp_counter *queue;
    int stopping;
    int worker_running;
    pthread_t worker;

    _Atomic int closing;      /* idp_close has begun: waiters give up */
    _Atomic uint64_t active;  /* calls inside a slow path */

    _Atomic uint64_t errors;  /* meta_prime_errors_total */
    _Atomic uint64_t buckets[NBUCKETS + 1]; /* fetch latency, all counters */
    _Atomic uint64_t fetch_ns; /* total fetch time */
    idp_policy_fn policy;     /* may be NULL */
    void *policy_ud;
};

/* Upper bounds of the fetch latency buckets: text and seconds. */
IDP_HIDDEN extern const char *const idp_bucket_text[NBUCKETS];
IDP_HIDDEN extern const double idp_buckets[NBUCKETS];

/* engine.c */
IDP_HIDDEN void engine_counter_init(idp_counter *c, idp_client *client,
                                    const counter_cfg *cfg);
IDP_HIDDEN void engine_counter_destroy(idp_counter *c);
/* Makes the counter's mutex and condition (again, in a child after fork). */
IDP_HIDDEN void engine_counter_locks(idp_counter *c);
IDP_HIDDEN void engine_start(idp_client *client);
IDP_HIDDEN void engine_stop(idp_client *client);
/* After engine_stop, before the store closes: a clean close gives back the
 * unserved rest of each counter's last batches (giveback.c). */
IDP_HIDDEN void engine_give_back(idp_client *client);
/* A consistent snapshot of a counter. */
IDP_HIDDEN void engine_stats(idp_counter *c, idp_counter_stats *out);
/* Fetches the first batch of each counter, all in one store call (one
 * round trip where the store pipelines), into their pools. */
IDP_HIDDEN int engine_prime(idp_client *client, idp_counter *const *cs,
                            size_t n, idp_error *err);
/*
 * Claims n IDs from the pool for the calling thread, whose run `l` could not
 * serve them: on success *first..*first+n-1 are the caller's, in order, and
 * the run holds what follows, grown by up to `extra` IDs. The run's rest
 * serves first where the pool continues it; otherwise it is given up (a
 * gap). With l == NULL the run is *r, the caller's own (a cache), and every
 * ID claimed counts as served. Takes and releases c->mu; may wait for or
 * do a fetch.
 */
IDP_HIDDEN int engine_claim(idp_counter *c, tlease *l, run *r, uint64_t n,
                            uint64_t extra, uint64_t *first, idp_error *e);

/* thread.c */
IDP_HIDDEN extern pthread_mutex_t lease_mu;
/* Frees every run of the counter, counting the rests as gaps (the counter's
 * mu held, or the counter not shared any more). */
IDP_HIDDEN void leases_drop_all(idp_counter *c);
/* Forgets the calling thread's runs after fork (the child's only thread). */
IDP_HIDDEN void thread_after_fork(void);

/* fork.c */
IDP_HIDDEN extern _Atomic uint64_t fork_epoch;
/* Registers the fork handlers, once per process. */
IDP_HIDDEN void fork_init(void);
/* In a child after fork: discards what the client inherited, once. Cheap
 * when there is nothing to do; call before taking any of its locks. */
IDP_HIDDEN void fork_check_slow(idp_client *c);
static inline void fork_check(idp_client *c)
{
    if (unlikely(atomic_load_explicit(&c->epoch, memory_order_acquire) !=
                 atomic_load_explicit(&fork_epoch, memory_order_relaxed)))
        fork_check_slow(c);
}
IDP_HIDDEN gen_cell *cell_get(uint64_t owner);
IDP_HIDDEN void cell_put(gen_cell *cell);
IDP_HIDDEN uint64_t next_uid(void);

#endif
