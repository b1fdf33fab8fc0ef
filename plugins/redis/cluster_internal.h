/*
 * cluster_internal.h - what the redis-cluster plugin's two files share:
 * cluster.c (routing commands, the plugin methods, open) and slots.c (hash
 * slots, the nodes, the slot map from CLUSTER SLOTS, redirections). Not a
 * public header; hidden like redis_internal.h.
 */
#ifndef IDPRIME_REDIS_CLUSTER_INTERNAL_H
#define IDPRIME_REDIS_CLUSTER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "redis_internal.h"

#define RC_SLOTS 16384
#define RC_DEFAULT_PORT 6379

/* One node of the cluster: a server of its own (conn.c). */
typedef struct rc_node {
    rd_store rd;       /* rd.hostname points at host */
    char host[256];
} rc_node;

typedef struct rc_store {
    const idp_host *host;
    rd_store base;     /* the settings every node copies: timeouts, WAIT,
                          credentials */
    rc_node **nodes;   /* every node met: the URI's, CLUSTER SLOTS's and
                          the redirections'; never removed before close */
    size_t nnodes, cap;
    int16_t slot[RC_SLOTS]; /* the node serving each slot; -1: none known */
    int stale;         /* 1: read the slot map again before the next call */
} rc_store;

/* The hash slot of a key: CRC16 (XMODEM) of the key, or of its {hash
 * tag} when it has a non-empty one, mod 16384 (the Redis Cluster spec). */
RD_HIDDEN unsigned rc_key_slot(const char *key, size_t len);

/* The index of the node at host:port, added (not yet connected) when new;
 * -1 when out of memory. */
RD_HIDDEN int rc_node_at(rc_store *s, const char *host, size_t hostlen,
                         int port);

/*
 * Reads the slot map with CLUSTER SLOTS from the first node that answers
 * (those serving slots first, then the rest, the URI's among them), and
 * clears `stale`. Returns IDP_OK, or an error naming each node's reason
 * (the map is then kept as it was).
 */
RD_HIDDEN int rc_refresh(rc_store *s, idp_error *err);

/*
 * Reads a redirection in an error reply from node `from`: "MOVED slot
 * host:port" (the slot has moved: the map is updated and marked stale) or
 * "ASK slot host:port" (this key only, this once, after ASKING). Returns 0
 * for neither, 1 for MOVED and 2 for ASK with *node set; -1 out of memory.
 */
RD_HIDDEN int rc_redirect(rc_store *s, int from, const redisReply *r,
                          int *node);

/* 1 when node i serves at least one slot: a master in the map. */
RD_HIDDEN int rc_is_master(const rc_store *s, size_t i);

#endif
