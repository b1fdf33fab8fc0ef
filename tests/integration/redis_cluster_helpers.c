/*
 * redis_cluster_helpers.c - a Redis Cluster for the redis-cluster suite
 * (see redis_cluster_helpers.h). Its nodes are the harness's redis-server
 * kind, started with cluster mode on; everything else goes through inline
 * commands on a raw socket (redis_helpers.c's raw), as in the other redis
 * suites.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_cluster_helpers.h"
#include "redis_helpers.h"
#include "testutil.h"

#define CLUSTER_UP_MS 20000

static int cluster_ok(const cluster *k)
{
    static char info[4096];
    for (int i = 0; i < k->n; i++) {
        raw(&k->node[i], NULL, "CLUSTER INFO", info, sizeof info);
        if (strstr(info, "cluster_state:ok") == NULL ||
            strstr(info, "cluster_slots_ok:16384") == NULL)
            return 0;
        char known[32];
        snprintf(known, sizeof known, "cluster_known_nodes:%d", k->n);
        if (strstr(info, known) == NULL)
            return 0;
    }
    return 1;
}

void cluster_start(cluster *k, int n)
{
    memset(k, 0, sizeof *k);
    ck_assert_int_le(n, CLUSTER_MAX);
    k->n = n;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(server_start(&k->node[i], "redis", "--cluster-enabled "
                                   "yes --cluster-config-file nodes.conf "
                                   "--cluster-node-timeout 5000") == 0,
                      "cluster node %d did not start", i);
        raw(&k->node[i], NULL, "CLUSTER MYID", k->id[i], sizeof k->id[i]);
        ck_assert_uint_eq(strlen(k->id[i]), 40);
    }
    char addr[CLUSTER_MAX][32];
    char *argv[CLUSTER_MAX + 8];
    int argc = 0;
    argv[argc++] = "redis-cli";
    argv[argc++] = "--cluster";
    argv[argc++] = "create";
    for (int i = 0; i < n; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", k->node[i].port);
        argv[argc++] = addr[i];
    }
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = "0";
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    ck_assert_msg(harness_run(&k->node[0], argv) == 0,
                  "redis-cli --cluster create failed");
    long long deadline = tu_now_ms() + CLUSTER_UP_MS;
    while (!cluster_ok(k)) {
        ck_assert_msg(tu_now_ms() < deadline, "the cluster is not ok after "
                      "%d ms", CLUSTER_UP_MS);
        tu_sleep_ms(50);
    }
}

void cluster_stop(cluster *k)
{
    for (int i = 0; i < k->n; i++)
        server_stop(&k->node[i], 0);
}

char *cluster_uri(const cluster *k, const char *query)
{
    static char uri[512];
    snprintf(uri, sizeof uri, "redis-cluster://127.0.0.1:%d%s",
             k->node[0].port, query != NULL ? query : "");
    return uri;
}

unsigned cluster_keyslot(const cluster *k, const char *key)
{
    char cmd[256], out[64];
    snprintf(cmd, sizeof cmd, "CLUSTER KEYSLOT %s", key);
    raw(&k->node[0], NULL, cmd, out, sizeof out);
    ck_assert_msg(out[0] == ':', "CLUSTER KEYSLOT %s: %s", key, out);
    return (unsigned)strtoul(out + 1, NULL, 10);
}

/* 1 when a CLUSTER NODES slot word ("0-5460", "7", "[7->-id]") covers
 * slot; a migration marker in brackets does not. */
static int word_covers(const char *w, size_t len, unsigned slot)
{
    if (len == 0 || w[0] == '[')
        return 0;
    char *end;
    unsigned long a = strtoul(w, &end, 10), b = a;
    if (*end == '-')
        b = strtoul(end + 1, NULL, 10);
    return slot >= a && slot <= b;
}

int cluster_owner(const cluster *k, int asked, unsigned slot)
{
    static char nodes[16384];
    raw(&k->node[asked], NULL, "CLUSTER NODES", nodes, sizeof nodes);
    for (const char *line = nodes; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        /* <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch>
         * <link> <slot>... */
        const char *p = line;
        int field = 0, owner = -1;
        while (p < line + len) {
            size_t w = strcspn(p, " \n");
            if (w > (size_t)(line + len - p))
                w = (size_t)(line + len - p);
            if (field == 0)
                for (int i = 0; i < k->n; i++)
                    if (w == 40 && memcmp(p, k->id[i], 40) == 0)
                        owner = i;
            if (field >= 8 && owner >= 0 && word_covers(p, w, slot))
                return owner;
            field++;
            p += w;
            while (*p == ' ')
                p++;
        }
        line += len + (line[len] == '\n');
    }
    return -1;
}

uint64_t cluster_keys_in_slot(const cluster *k, int i, unsigned slot)
{
    char cmd[64], out[64];
    snprintf(cmd, sizeof cmd, "CLUSTER COUNTKEYSINSLOT %u", slot);
    raw(&k->node[i], NULL, cmd, out, sizeof out);
    ck_assert_msg(out[0] == ':', "%s on node %d: %s", cmd, i, out);
    return strtoull(out + 1, NULL, 10);
}

uint64_t cluster_errors(const cluster *k, int i, const char *err)
{
    static char info[8192];
    char field[64];
    raw(&k->node[i], NULL, "INFO errorstats", info, sizeof info);
    snprintf(field, sizeof field, "errorstat_%s:count=", err);
    const char *p = strstr(info, field);
    return p != NULL ? strtoull(p + strlen(field), NULL, 10) : 0;
}

uint64_t cluster_reads(const cluster *k, int i)
{
    static char info[8192];
    static const char field[] = "total_reads_processed:";
    raw(&k->node[i], NULL, "INFO stats", info, sizeof info);
    const char *p = strstr(info, field);
    ck_assert_ptr_nonnull(p);
    return strtoull(p + strlen(field), NULL, 10);
}

static void setslot(cluster *k, int on, unsigned slot, const char *how,
                    int whose)
{
    char cmd[160], out[128];
    snprintf(cmd, sizeof cmd, "CLUSTER SETSLOT %u %s %s", slot, how,
             k->id[whose]);
    raw(&k->node[on], NULL, cmd, out, sizeof out);
    ck_assert_msg(strcmp(out, "+OK") == 0, "%s on node %d: %s", cmd, on, out);
}

void cluster_migrate_begin(cluster *k, unsigned slot, int from, int to)
{
    setslot(k, to, slot, "IMPORTING", from);
    setslot(k, from, slot, "MIGRATING", to);
}

void cluster_migrate_key(cluster *k, int from, int to, const char *key)
{
    char cmd[256], out[128];
    snprintf(cmd, sizeof cmd, "MIGRATE 127.0.0.1 %d %s 0 5000",
             k->node[to].port, key);
    raw(&k->node[from], NULL, cmd, out, sizeof out);
    ck_assert_msg(strcmp(out, "+OK") == 0 || strcmp(out, "+NOKEY") == 0,
                  "%s: %s", cmd, out);
}

void cluster_migrate_end(cluster *k, unsigned slot, int to)
{
    /* the new owner first, so that it never redirects back */
    setslot(k, to, slot, "NODE", to);
    for (int i = 0; i < k->n; i++)
        if (i != to)
            setslot(k, i, slot, "NODE", to);
}
