/*
 * redis_cluster_helpers.h - a Redis Cluster of redis-server processes for
 * the redis-cluster suite: started on free loopback ports, joined with
 * `redis-cli --cluster create`, read (who serves a slot, a key's slot,
 * the errors each node answered) and resharded by hand, one slot at a
 * time, with CLUSTER SETSLOT and MIGRATE. See redis_cluster_helpers.c.
 */
#ifndef IDPRIME_REDIS_CLUSTER_HELPERS_H
#define IDPRIME_REDIS_CLUSTER_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define CLUSTER_MAX 3

typedef struct cluster {
    server node[CLUSTER_MAX];
    char id[CLUSTER_MAX][48];   /* CLUSTER MYID of each */
    int n;
} cluster;

/* Starts n masters (cluster-enabled, nodes.conf in each one's directory),
 * joins them with redis-cli --cluster create (no replicas: the slots
 * split evenly), and waits until every node says cluster_state:ok. Fails
 * the test when it cannot. */
void cluster_start(cluster *k, int n);
void cluster_stop(cluster *k);

/* "redis-cluster://127.0.0.1:PORT_OF_NODE_0" + query, in a static buffer. */
char *cluster_uri(const cluster *k, const char *query);

/* The hash slot of key, as the cluster computes it (CLUSTER KEYSLOT). */
unsigned cluster_keyslot(const cluster *k, const char *key);

/* The index of the node serving slot, as node `asked` sees it (CLUSTER
 * NODES); -1 for none. */
int cluster_owner(const cluster *k, int asked, unsigned slot);

/* How many keys node i holds in slot (CLUSTER COUNTKEYSINSLOT: its own,
 * whoever serves the slot). */
uint64_t cluster_keys_in_slot(const cluster *k, int i, unsigned slot);

/* How many replies of kind `err` ("MOVED", "ASK") node i sent since its
 * start or CONFIG RESETSTAT (INFO errorstats). */
uint64_t cluster_errors(const cluster *k, int i, const char *err);

/* Node i's count of reads from its clients (INFO stats
 * total_reads_processed): one per request a client wrote at once. */
uint64_t cluster_reads(const cluster *k, int i);

/* Resharding one slot by hand: `from` MIGRATING and `to` IMPORTING... */
void cluster_migrate_begin(cluster *k, unsigned slot, int from, int to);
/* ...keys moved one by one with MIGRATE (a missing key is no error)... */
void cluster_migrate_key(cluster *k, int from, int to, const char *key);
/* ...and the slot given to `to` on every node. */
void cluster_migrate_end(cluster *k, unsigned slot, int to);

#endif
