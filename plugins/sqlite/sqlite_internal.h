/*
 * sqlite_internal.h - what sqlite.c (the store: increments, give-back,
 * reads, waiting for the write lock) and open.c (the file: its path and
 * folder, its tables and statements, opening and closing) share. Not a
 * public header: everything here is hidden, so the plugin still exports
 * only idprime_plugin_entry.
 */
#ifndef IDPRIME_SQLITE_INTERNAL_H
#define IDPRIME_SQLITE_INTERNAL_H

#include <limits.h>
#include <stdint.h>

#include <sqlite3.h>

#include "idprime/plugin.h"

#define SQ_HIDDEN __attribute__((visibility("hidden")))

/* STRICT tables arrived in 3.37.0, RETURNING in 3.35.0. */
#define SQ_MIN_VERSION 3037000

typedef struct sq_store {
    sqlite3 *db;
    const idp_host *host;
    char *path;              /* the file as opened, for messages */
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *add;       /* INCRBY upsert, RETURNING the new value */
    sqlite3_stmt *bump;      /* idprime_stats.increments += ?1 */
    sqlite3_stmt *raise;     /* MAX upsert, RETURNING the resulting value */
    sqlite3_stmt *lower;     /* compare-and-set down, for giving back */
    sqlite3_stmt *get;
    sqlite3_stmt *list;
    sqlite3_stmt *count;     /* idprime_stats.increments */
    char readonly[PATH_MAX + 64]; /* "" or what cannot be written, and why:
                              * the file is open read-only (open.c) */
    int waitfd;              /* <file>-idprime, or -1: no waiter flags */
    unsigned delay_ms;       /* simulated round trip (delay_ms=) */
    int in_begin;            /* the busy handler is waiting for BEGIN */
    int announced;           /* this handle's waiter flag is up */
    uint64_t busy_since;     /* monotonic ns of the current lock wait */
    uint64_t rng;            /* xorshift state for the naps' jitter */
} sq_store;

/* sqlite.c */
/* Fills err for a failed SQLite call `rc` while doing `what`; returns the
 * idprime code. */
SQ_HIDDEN int sq_error(sq_store *s, int rc, const char *what, idp_error *err);
SQ_HIDDEN uint64_t sq_now_ns(void);
/* Sleeps 50 to 300 us, jittered, but no longer than left_ns. */
SQ_HIDDEN void sq_nap(sq_store *s, uint64_t left_ns);
/* The busy handler (sqlite3_busy_handler's callback). */
SQ_HIDDEN int sq_busy(void *ud, int count);

/* open.c */
SQ_HIDDEN int sq_open(const idp_host *host, void **store, idp_error *err);
SQ_HIDDEN void sq_close(void *store);
SQ_HIDDEN void sq_drop(void *store);

#endif
