/*
 * fork_rig.h - the machinery of test_fork (guarantee 6, "fork"): the five
 * stores a test loops over, threads that take IDs, children forked with a
 * client they inherited, and every ID of everyone checked for duplicates.
 * See fork_rig.c.
 */
#ifndef IDPRIME_FORK_RIG_H
#define IDPRIME_FORK_RIG_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "idprime/idprime.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* A child must be done within this; then it is killed and the test fails. */
#define KID_MS 30000
/* idp_close in a child that has nothing in flight of its own. */
#define CHILD_CLOSE_MS 5000
/* The trailer word after a child's IDs (IDs stay below 2^63). */
#define TRAILER UINT64_MAX

/* ---- Stores ------------------------------------------------------------- */

enum { REDIS, MEMCACHED, SQLITE, POSTGRESQL, MARIADB, NSTORES };
/* Each kind's name, as the harness and idp_client_store give it. */
extern const char *const store_name[NSTORES];

/* The PostgreSQL and MariaDB servers main starts for the whole suite. */
extern server shared[NSTORES];

/* 1 for the kinds of store on a server of the whole suite. */
int is_shared(int kind);

typedef struct env {
    int kind;
    server srv;                 /* every store but sqlite */
    char prefix[64];            /* shared servers: this test's counters */
    char dir[PATH_MAX];         /* sqlite: the temp folder */
    char path[PATH_MAX + 32];   /* sqlite: the database file */
    char uri[PATH_MAX + 512];
} env;

/* A store of `kind` for one test (a shared server with a prefix of its
 * own, a new server, or a SQLite file in a temp folder); fails the test
 * when it does not start. */
void env_up(env *e, int kind);
/* The store's URI with `query` ("?batch=16..."), in e->uri. */
const char *env_uri(env *e, const char *query);
/* Stops the test's own server or removes its temp folder. */
void env_down(env *e);
/* Opens `query` on the store and checks it is the store asked for. */
idp_client *env_open(env *e, const char *query);

/* ---- Taking IDs (threads of the test and of children: never assert) ----- */

typedef struct taker {
    idp_counter *ctr;
    uint64_t *ids;          /* room for cap IDs */
    size_t cap;
    _Atomic size_t got;     /* IDs taken so far (the main thread reads it) */
    atomic_int *stop;       /* NULL: take exactly cap IDs */
    int incr;               /* 1: idp_incr with n = 1..7 in turn */
    int tolerate;           /* 1: errors are counted, not fatal */
    size_t errors;
    atomic_int failed;      /* set after why (the main thread polls it) */
    char why[320];
} taker;

/* A thread (or a plain call) taking IDs as the taker says; each thread's
 * idp_next IDs increasing. */
void *taker_main(void *arg);

/* ---- Children ----------------------------------------------------------- */

enum { GO_NONE, GO_BEFORE_FIRST_CALL, GO_BEFORE_CLOSE };

/* What a child does with the client it inherited. */
typedef struct job {
    idp_client *c;
    idp_counter *ctr;        /* the parent's handle, used as is, unless */
    const char *name;        /* not NULL: looked up in the child */
    int threads;             /* 0: take nothing; 1: on the child's thread */
    size_t per_thread;       /* IDs per thread */
    int incr;                /* as taker.incr */
    int close_it;            /* 1: idp_close at the end */
    int go_when;             /* GO_*: wait for a byte on go_rd first */
    int go_rd, go_wr;        /* the parent's go pipe */
} job;

/* The child: IDs, then the trailer and idp_close's time; returns its exit
 * status (0: everything sent). */
int run_job(void *arg, int fd);

typedef struct kid {
    pid_t pid;
    int fd;                  /* the read end of its pipe (non-blocking) */
    int errfd;               /* its stderr, an unlinked temp file */
    unsigned char *buf;      /* what it sent */
    size_t len, cap;
    int eof, reaped, status;
} kid;

/* Forks a child that runs fn(arg, pipe) and _exits with its answer. */
void kid_start(kid *k, int (*fn)(void *, int), void *arg);
/* Frees what kid_start and the reads kept. */
void kid_free(kid *k);
/* Reads from the children until each has closed its pipe and exited, for
 * at most ms; fails the test when one hangs, fails, or reports a sanitizer
 * finding. */
void kids_wait(kid *ks, int n, int ms, const char *what);
/* Reads from one child until it has sent `bytes`, for at most ms. */
void kid_wait_bytes(kid *k, size_t bytes, int ms, const char *what);
/* The IDs a finished child sent (want of them, each above `floor`) and how
 * long its idp_close took. */
const uint64_t *kid_ids(const kid *k, size_t want, uint64_t floor,
                        uint64_t *close_ms, const char *what, int i);

/* ---- All the IDs of everyone -------------------------------------------- */

typedef struct tagged {
    uint64_t id;
    int who;   /* -1: the parent; else the child's number */
} tagged;

typedef struct idset {
    tagged *e;
    size_t n, cap;
} idset;

/* Adds n IDs of `who` (-1: the parent) to the set. */
void ids_add(idset *s, const uint64_t *ids, size_t n, int who);
/* Sorts the set and fails when an ID is 0 or was handed out twice (naming
 * who had it); returns the highest. */
uint64_t ids_check(idset *s, const char *what);
/* Fails unless the store's value of `name` is at or above `highest` and a
 * new client's first ID is above it. */
void assert_store_covers(env *e, const char *name, uint64_t highest);
/* Takes n IDs on this thread (the test's), increasing. */
void take_here(idp_counter *ctr, uint64_t *ids, size_t n, int incr,
               const char *what);
/* The store's value of `name` now (0 when it has none). */
uint64_t store_value(idp_client *c, const char *name);
/* Takes IDs of ctr (added to `all`) until the background worker has done
 * a fetch and is idle: its thread is up before the test forks. */
void worker_up(idp_counter *ctr, idset *all, const char *what);

#endif
