/*
 * mc_internal.h - what the memcached plugin's files share:
 *   memcached.c  the plugin: helpers, get, raise_to, stats, open, close
 *   incr.c       increments: never wrapping, never lowering, never 2^63
 *   wire.c       increments and decrements on sockets of our own
 * Not a public header: everything here is hidden, so the plugin still
 * exports only idprime_plugin_entry.
 */
#ifndef IDPRIME_MC_INTERNAL_H
#define IDPRIME_MC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libmemcached-1.0/memcached.h>

#include "idprime/plugin.h"

#define MC_HIDDEN __attribute__((visibility("hidden")))

#define MC_WHERE_LEN 192        /* "host:port,..." in messages */

/* ---- wire.c ------------------------------------------------------------- */

typedef struct mc_wire mc_wire;

typedef enum mcw_status {
    MCW_OK = 0,
    MCW_NOTFOUND,       /* the key is missing */
    MCW_NONNUMERIC,     /* the value is not a decimal counter */
    MCW_NOMEM,          /* the server is out of memory */
    MCW_REFUSED,        /* another status (why: its code and text) */
    MCW_TIMEOUT,        /* no whole reply within timeout_ms */
    MCW_FAILED,         /* connect, I/O or a malformed reply (why says) */
    MCW_IN_STEP = 0x100 /* internal: the socket may be used again */
} mcw_status;

/* Sockets for `nservers` servers, none connected yet. NULL: no memory. */
MC_HIDDEN mc_wire *mcw_new(size_t nservers);
/* Closes every socket (nothing is sent) and frees w; NULL is fine. */
MC_HIDDEN void mcw_free(mc_wire *w);
/* Closes the socket of server i, if open. */
MC_HIDDEN void mcw_close(mc_wire *w, size_t i);
/*
 * incr (decr = 0) or decr `key` by n on server i (host:port), connecting
 * first if needed; the whole command takes at most timeout_ms. On MCW_OK
 * stores the new value; otherwise `why` (len bytes) says what happened,
 * except for MCW_TIMEOUT. Never retried: after a timeout or a failure the
 * socket is closed, and whether the server applied the command is unknown.
 */
MC_HIDDEN mcw_status mcw_arith(mc_wire *w, size_t i, const char *host,
                               unsigned port, int decr, const char *key,
                               uint64_t n, unsigned timeout_ms,
                               uint64_t *value, char *why, size_t len);

/* ---- memcached.c ------------------------------------------------------ */

/* Keys whose value this handle has read below the limit (incr.c). */
typedef struct mc_seen {
    char **slot;        /* open addressing; NULL: free */
    size_t n, cap;      /* cap: 0 or a power of two */
} mc_seen;

typedef struct mc_store {
    const idp_host *host;   /* valid until close */
    memcached_st *mc;       /* NULL after a failure: the next call reconnects */
    mc_wire *wire;          /* incr and decr, one socket per server */
    mc_seen seen;
    unsigned timeout_ms;
    char servers[MC_WHERE_LEN]; /* "h:p,h:p" for messages, maybe truncated */
} mc_store;

/* CLOCK_MONOTONIC in ms. */
MC_HIDDEN uint64_t mc_now_ms(void);
/* Refuses a key memcached cannot hold (length, spaces, control bytes). */
MC_HIDDEN int mc_check_key(const char *key, idp_error *err);
/* Parses a counter as memcached stores it (digits, maybe space-padded).
 * Returns 0, or -1 for anything else. */
MC_HIDDEN int mc_parse(const char *s, size_t len, uint64_t *out);
/* Makes sure the store has a libmemcached handle. */
MC_HIDDEN int mc_ready(mc_store *s, idp_error *err);
/* Drops the libmemcached handle and its connections. */
MC_HIDDEN void mc_drop(mc_store *s);
/* "host:port" of the server that holds `key`, or the server list. */
MC_HIDDEN void mc_where(const mc_store *s, const char *key, char *buf,
                        size_t len);
/* Reports a failed libmemcached command and drops the handle. */
MC_HIDDEN int mc_fail(mc_store *s, const char *op, const char *key,
                      memcached_return_t r, idp_error *err);
/* "key holds '...', not a decimal counter". */
MC_HIDDEN int mc_not_number(const char *key, const char *val, size_t len,
                            idp_error *err);
/* gets: value and CAS id; *exists = 0 for a missing key. */
MC_HIDDEN int mc_gets(mc_store *s, const char *key, int *exists,
                      uint64_t *value, uint64_t *cas, idp_error *err);
/* add (exists = 0) or cas: *stored = 0 when someone else got there first. */
MC_HIDDEN int mc_put(mc_store *s, const char *key, uint64_t v, int exists,
                     uint64_t cas, int *stored, idp_error *err);
/* After a failed incr, says in err what the key holds when it is not a
 * counter (read on a fresh connection). */
MC_HIDDEN void mc_explain(mc_store *s, const char *key, idp_error *err);

/* ---- incr.c ----------------------------------------------------------- */

MC_HIDDEN int mc_incr(void *store, const char *key, uint64_t n,
                      uint64_t *value, idp_error *err);
/* Whether this handle has read key's value below the limit; remembering
 * it (out of memory, the key is simply looked at again next time). */
MC_HIDDEN int mc_seen_has(const mc_seen *set, const char *key);
MC_HIDDEN void mc_seen_add(mc_seen *set, const char *key);
MC_HIDDEN void mc_seen_free(mc_seen *set);

#endif
