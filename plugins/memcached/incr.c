/*
 * incr.c - INCRBY on memcached: never wrapping, never reaching 2^63, never
 * lowering a counter.
 *
 * memcached's incr has no condition and wraps at 2^64, so the limit is
 * kept around it:
 * - before a handle's first increment of a key it reads the value (gets):
 *   a value at or near 2^63, which only another tool can have written
 *   (up to 2^64-1), is refused with nothing written. That costs one round
 *   trip per counter and handle, like the add that creates a counter.
 * - an answer of 2^63 or more (the counter reached the limit, or another
 *   tool wrote a large value since the first look) is refused, and this
 *   call's increment is undone with a decr of the same n: the counter goes
 *   back to where it was, never below, as every increment that met it
 *   meanwhile was refused too and undoes its own. A lost decr leaves the
 *   counter n higher: a gap, never a lower value.
 * - an answer below n means memcached wrapped past 2^64 (a value within n
 *   of 2^64 written by another tool after the first look): refused, and
 *   the value before the wrap is put back with a cas if no one has touched
 *   the counter since.
 * Increments over 2^32 go through gets/cas and never write past the limit.
 *
 * The increments themselves go through wire.c, not libmemcached (see
 * there: libmemcached 1.1.4 aborts the process on an "out of memory"
 * answer to an incr).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_internal.h"

/* Increments up to this size go out as one memcached incr; larger ones
 * through a gets/cas loop that checks the limit before writing. */
#define MC_FAST_INCR_MAX ((uint64_t)1 << 32)

/* A missing counter is created with add; losing that race to another
 * creator sends us back to incr. More rounds than this means the key keeps
 * vanishing between the two (a flush loop): give up. */
#define MC_CREATE_ROUNDS 8

/* ---- Keys seen below the limit ------------------------------------------ */

static uint64_t mc_hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return h ^ (h >> 29);
}

static char **mc_seen_slot(char **slot, size_t cap, const char *key)
{
    size_t i = (size_t)mc_hash(key) & (cap - 1);
    while (slot[i] != NULL && strcmp(slot[i], key) != 0)
        i = (i + 1) & (cap - 1);
    return &slot[i];
}

int mc_seen_has(const mc_seen *set, const char *key)
{
    return set->cap > 0 && *mc_seen_slot(set->slot, set->cap, key) != NULL;
}

void mc_seen_add(mc_seen *set, const char *key)
{
    if (set->cap == 0 || (set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap > 0 ? set->cap * 2 : 64;
        char **slot = calloc(cap, sizeof *slot);
        if (slot == NULL)
            return;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i] != NULL)
                *mc_seen_slot(slot, cap, set->slot[i]) = set->slot[i];
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    char **at = mc_seen_slot(set->slot, set->cap, key);
    if (*at == NULL && (*at = strdup(key)) != NULL)
        set->n++;
}

void mc_seen_free(mc_seen *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
    memset(set, 0, sizeof *set);
}

/* ---- The server of a key ------------------------------------------------ */

typedef struct mc_server {
    size_t index;               /* libmemcached's position: wire's slot */
    const char *host;
    unsigned port;
    char where[MC_WHERE_LEN];   /* "host:port" */
} mc_server;

/* The server libmemcached hashes `key` to, as every other command here
 * reaches it (consistent hashing, no ejection). Needs s->mc. */
static void mc_server_of(const mc_store *s, const char *key, mc_server *sv)
{
    uint32_t i = memcached_generate_hash(s->mc, key, strlen(key));
    const memcached_instance_st *in =
        memcached_server_instance_by_position(s->mc, i);
    sv->index = i;
    sv->host = in != NULL ? memcached_server_name(in) : "";
    sv->port = in != NULL ? (unsigned)memcached_server_port(in) : 0;
    snprintf(sv->where, sizeof sv->where, "%s:%u", sv->host, sv->port);
}

/* ---- Increments --------------------------------------------------------- */

static int mc_range(const char *key, uint64_t n, idp_error *err)
{
    return idp_plugin_error(err, IDP_ERANGE, "key '%.40s' "
                            "cannot grow by %" PRIu64 ": it would reach 2^63",
                            key, n);
}

/* Fills err for a wire command that did not give a value. */
static int mc_wire_error(mc_store *s, const mc_server *sv, const char *op,
                         const char *key, mcw_status st, const char *why,
                         idp_error *err)
{
    /* A server that timed out or failed us may have gone away: nothing of
     * libmemcached's connection to it is trusted either (see mc_fail). */
    if (st == MCW_TIMEOUT || st == MCW_FAILED)
        mc_drop(s);
    switch (st) {
    case MCW_TIMEOUT:
        return idp_plugin_error(err, IDP_ETIMEOUT, "server %s: %s of '%.40s' "
                                "timed out after %u ms (reply lost, not "
                                "retried)", sv->where, op, key, s->timeout_ms);
    case MCW_NOMEM:
        return idp_plugin_error(err, IDP_ESTORE, "server %s: %s of '%.40s' "
                                "failed: out of memory (the new value needs a "
                                "new item, and memcached -M is at its -m "
                                "limit: give it more memory)", sv->where, op,
                                key);
    case MCW_NONNUMERIC:
        idp_plugin_error(err, IDP_ESTORE, "server %s: %s of '%.40s' refused: "
                         "the key holds a value that is not a decimal "
                         "counter (%s)", sv->where, op, key, why);
        mc_explain(s, key, err);
        return IDP_ESTORE;
    default:
        return idp_plugin_error(err, IDP_ESTORE, "server %s: %s of '%.40s' "
                                "failed: %s", sv->where, op, key, why);
    }
}

/*
 * The first look of this handle at `key`: refuses, writing nothing, a
 * value that n would carry to 2^63 or past 2^64; remembers the key
 * otherwise (also when missing: add creates it below the limit).
 */
static int mc_first_look(mc_store *s, const char *key, uint64_t n,
                         idp_error *err)
{
    int exists;
    uint64_t cur, cas;
    int rc = mc_gets(s, key, &exists, &cur, &cas, err);
    if (rc != IDP_OK)
        return rc;
    if (exists && cur > IDP_MAX_VALUE - n)
        return idp_plugin_error(err, IDP_ERANGE, "key '%.40s' holds %" PRIu64
                                ": adding %" PRIu64 " would reach 2^63%s; "
                                "nothing was written", key, cur, n,
                                cur > IDP_MAX_VALUE ? " (values this large "
                                "are written by other tools, never by "
                                "idprime)" : "");
    mc_seen_add(&s->seen, key);
    return IDP_OK;
}

/* Undoes a refused increment of n: best effort, never retried. */
static void mc_undo(mc_store *s, const mc_server *sv, const char *key,
                    uint64_t n)
{
    char why[160];
    uint64_t v;
    mcw_arith(s->wire, sv->index, sv->host, sv->port, 1, key, n,
              s->timeout_ms, &v, why, sizeof why);
}

/* memcached answered v < n: it wrapped past 2^64. Puts the value from
 * before the wrap back if the counter still holds v, and refuses. */
static int mc_wrapped(mc_store *s, const char *key, uint64_t n, uint64_t v,
                      idp_error *err)
{
    uint64_t before = v - n, cur = 0, cas; /* mod 2^64: the value it had */
    int exists = 0, stored = 0;
    if (mc_gets(s, key, &exists, &cur, &cas, NULL) == IDP_OK && exists &&
        cur == v)
        mc_put(s, key, before, 1, cas, &stored, NULL);
    return idp_plugin_error(err, IDP_ERANGE, "key '%.40s' cannot grow by "
                            "%" PRIu64 ": it would reach 2^63 (memcached "
                            "wrapped it past 2^64 from %" PRIu64 ", a value "
                            "another tool wrote; %s)", key, n, before,
                            stored ? "set back to it"
                                   : "not set back: it is no longer the "
                                     "wrapped value");
}

/*
 * One increment with memcached's incr, creating a missing counter with add.
 *
 * Why incr + add and not an increment with an initial value: both are
 * atomic on the server, and both give INCRBY exactly when the initial
 * value is n. But memcached does not count an increment-with-initial that
 * creates the key in incr_hits or incr_misses, so the store's own count of
 * increments (roundtrips, compared by the bench with the engine's) would
 * miss every creation. incr + add costs one more round trip once per
 * counter and keeps that count exact: every fetch is one incr on the
 * server (two for the loser of a race to create the counter).
 */
static int mc_incr_fast(mc_store *s, const char *key, uint64_t n,
                        uint64_t *value, idp_error *err)
{
    mc_server sv;
    mc_server_of(s, key, &sv);
    int rc = mc_seen_has(&s->seen, key) ? IDP_OK
                                         : mc_first_look(s, key, n, err);
    for (int round = 0; rc == IDP_OK && round < MC_CREATE_ROUNDS; round++) {
        char why[160];
        uint64_t v = 0;
        mcw_status st = mcw_arith(s->wire, sv.index, sv.host, sv.port, 0, key,
                                  n, s->timeout_ms, &v, why, sizeof why);
        if (st == MCW_OK && v < n)
            return mc_wrapped(s, key, n, v, err);
        if (st == MCW_OK && v > IDP_MAX_VALUE) {
            mc_undo(s, &sv, key, n);
            return idp_plugin_error(err, IDP_ERANGE, "key '%.40s' cannot grow "
                                    "by %" PRIu64 ": it would reach 2^63 "
                                    "(memcached answered %" PRIu64 "; refused "
                                    "and undone)", key, n, v);
        }
        if (st == MCW_OK) {
            *value = v;
            return IDP_OK;
        }
        if (st != MCW_NOTFOUND)
            return mc_wire_error(s, &sv, "incr", key, st, why, err);
        /* Missing: create it at n. Exactly one add wins; a loser goes back
         * to incr, which then finds the winner's value. */
        int stored;
        if ((rc = mc_ready(s, err)) != IDP_OK ||
            (rc = mc_put(s, key, n, 0, 0, &stored, err)) != IDP_OK)
            return rc;
        if (stored) {
            *value = n;
            return IDP_OK;
        }
    }
    if (rc != IDP_OK)
        return rc;
    return idp_plugin_error(err, IDP_ESTORE, "counter '%.40s' "
                            "vanished %d times between incr and add (is "
                            "something flushing the server?)", key,
                            MC_CREATE_ROUNDS);
}

/* An increment by gets/cas: checks the limit before anything is written. */
static int mc_incr_cas(mc_store *s, const char *key, uint64_t n,
                       uint64_t *value, idp_error *err)
{
    uint64_t deadline = mc_now_ms() + s->timeout_ms;
    unsigned tries = 0;
    do {
        int exists, stored, rc;
        uint64_t cur, cas;
        tries++;
        if ((rc = mc_gets(s, key, &exists, &cur, &cas, err)) != IDP_OK)
            return rc;
        if (cur > IDP_MAX_VALUE - n)
            return idp_plugin_error(err, IDP_ERANGE, "key '%.40s' holds %"
                                    PRIu64 ": adding %" PRIu64 " would reach "
                                    "2^63; nothing was written", key, cur, n);
        if ((rc = mc_put(s, key, cur + n, exists, cas, &stored, err)) != IDP_OK)
            return rc;
        if (stored) {
            *value = cur + n;
            return IDP_OK;
        }
    } while (mc_now_ms() < deadline);
    return idp_plugin_error(err, IDP_ETIMEOUT, "incr of '%.40s' by "
                            "%" PRIu64 " lost %u compare-and-swap races in "
                            "%u ms; counter too busy", key, n, tries,
                            s->timeout_ms);
}

int mc_incr(void *store, const char *key, uint64_t n, uint64_t *value,
            idp_error *err)
{
    mc_store *s = store;
    int rc = mc_check_key(key, err);
    if (rc != IDP_OK)
        return rc;
    if (n == 0)
        return idp_plugin_error(err, IDP_EINVAL, "incr of '%.40s' "
                                "by 0", key);
    if (n > IDP_MAX_VALUE)
        return mc_range(key, n, err);
    if ((rc = mc_ready(s, err)) != IDP_OK)
        return rc;
    if (n <= MC_FAST_INCR_MAX)
        return mc_incr_fast(s, key, n, value, err);
    return mc_incr_cas(s, key, n, value, err);
}
