/*
 * store_rigs.h - one running store of each kind, started by name, for the
 * suites that run the same promise on every store (test_giveback_stores,
 * test_torture): redis, redis-sentinel (a master and a sentinel watching
 * it), redis-cluster (3 masters), memcached, sqlite (a temp file),
 * postgresql and mysql. See store_rigs.c.
 */
#ifndef IDPRIME_STORE_RIGS_H
#define IDPRIME_STORE_RIGS_H

#include <limits.h>

#include "harness.h"
#include "redis_cluster_helpers.h"

typedef struct store_rig {
    const char *kind;   /* the name given to rig_start */
    server s;           /* the server; for redis-sentinel, the sentinel */
    server master;      /* redis-sentinel: the master it watches */
    cluster k;          /* redis-cluster */
    char dir[PATH_MAX]; /* sqlite: the temp directory */
    char uri[768];      /* the store's URI, without a query */
} store_rig;

/* The kinds of store this build has (RIG_HAVE_<KIND> from CMake), as
 * rig_start names them, NULL-terminated, and how many there are. */
extern const char *const rig_kinds[];
extern const int rig_nkinds;

/* Starts a store of `kind` and fills r->uri; fails the test when it does
 * not start. */
void rig_start(store_rig *r, const char *kind);
void rig_stop(store_rig *r);

/* r->uri with `query` (may be NULL) appended, in buf. Returns buf. */
char *rig_uri(const store_rig *r, const char *query, char *buf, size_t len);

#endif
