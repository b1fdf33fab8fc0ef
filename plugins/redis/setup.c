/*
 * setup.c - what every redis plugin does at open: the timeouts and WAIT
 * settings from the host, the credentials from the URI, and the checks of
 * a server it will write to (PING, eviction policy and persistence,
 * cluster mode, replicas for wait_replicas), which warn through the host's
 * log where the server may lose counters.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "redis_internal.h"

/* WAIT's timeout is timeout_ms less a quarter of it, and at least this */
#define RD_WAIT_MARGIN_MS 200u

void rd_setup(rd_store *s, const idp_host *host)
{
    s->host = host;
    s->tv.tv_sec = (time_t)(host->timeout_ms / 1000);
    s->tv.tv_usec = (suseconds_t)(host->timeout_ms % 1000) * 1000;
    /* WAIT's own timeout (0 would block forever) leaves the answer time
     * to arrive before the connection's timeout_ms: Redis acts on it at
     * its next server cron, up to 1000/hz ms late (100 ms at hz 10) */
    s->wait_replicas = (long)host->param_int(host, "wait_replicas");
    unsigned margin = host->timeout_ms / 4 > RD_WAIT_MARGIN_MS
                          ? host->timeout_ms / 4 : RD_WAIT_MARGIN_MS;
    s->wait_timeout = host->timeout_ms > margin ? host->timeout_ms - margin
                                                : 1;
    snprintf(s->wait_n, sizeof s->wait_n, "%ld", s->wait_replicas);
    snprintf(s->wait_ms, sizeof s->wait_ms, "%u", s->wait_timeout);
}

/* Who to AUTH as: "user:password@" or ":password@". */
int rd_credentials(rd_store *s, idp_error *err)
{
    const idp_uri *u = s->host->uri;
    s->user = u->user;
    if (u->has_password && u->password[0] != '\0') {
        s->password = u->password;
        return IDP_OK;
    }
    if (u->user[0] != '\0')
        return idp_plugin_error(err, IDP_EINVAL, "the URI gives user '%s' but "
                                "no password (expected user:password@ or "
                                ":password@)", u->user);
    if (u->has_password)
        return idp_plugin_error(err, IDP_EINVAL, "the URI gives an empty "
                                "password (expected :password@host)");
    return IDP_OK;
}

void rd_hosts_text(const idp_uri *u, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < u->nhosts && at < len; i++) {
        const idp_uri_host *h = &u->hosts[i];
        int v6 = strchr(h->host, ':') != NULL;
        int n = snprintf(buf + at, len - at, "%s%s%s%s", i ? "," : "",
                         v6 ? "[" : "", h->host, v6 ? "]" : "");
        at += n > 0 ? (size_t)n : 0;
        if (h->port != 0 && at < len) {
            n = snprintf(buf + at, len - at, ":%u", h->port);
            at += n > 0 ? (size_t)n : 0;
        }
    }
}

/* The value of an answer to CONFIG GET name: [name, value]. */
static const char *rd_config_value(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return NULL;
    return r->element[1]->str;
}

/*
 * Warns when the server may lose counters: an eviction policy that can
 * evict them, or no persistence, so that a restart or maxmemory would let
 * IDs repeat. Refuses a cluster node unless cluster_ok: most keys would
 * answer MOVED. CONFIG may be disabled or renamed: then says so at INFO
 * and goes on. Fails only when the connection does or on a cluster node.
 */
static int rd_check_config(rd_store *s, int cluster_ok, idp_error *err)
{
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy",
                          "CONFIG", "GET", "save",
                          "CONFIG", "GET", "appendonly",
                          "CONFIG", "GET", "cluster-enabled"};
    redisReply *r[4];
    int rc = rd_pipeline(s, "CONFIG GET", 4, 3, argv, r, err);
    if (rc != IDP_OK)
        return rc;
    const char *policy = rd_config_value(r[0]);
    const char *save = rd_config_value(r[1]);
    const char *aof = rd_config_value(r[2]);
    const char *cluster = rd_config_value(r[3]);
    if (policy == NULL || save == NULL || aof == NULL) {
        char shown[64];
        const redisReply *bad = policy == NULL ? r[0]
                                : save == NULL ? r[1] : r[2];
        s->host->log(s->host, IDP_LOG_INFO, "could not check the eviction "
                     "policy and persistence of %s: CONFIG GET answered %s",
                     s->where, rd_describe(bad, shown, sizeof shown));
    } else {
        if (strcmp(policy, "noeviction") != 0)
            s->host->log(s->host, IDP_LOG_WARN, "%s has maxmemory-policy %s: "
                         "it may evict counters at maxmemory, and a client "
                         "started afterwards would hand out IDs again; set "
                         "maxmemory-policy noeviction", s->where, policy);
        if (save[0] == '\0' && strcmp(aof, "no") == 0)
            s->host->log(s->host, IDP_LOG_WARN, "%s has persistence off (save "
                         "\"\" and appendonly no): a server restart loses the "
                         "counters and IDs would repeat; set appendonly yes "
                         "or a save schedule", s->where);
    }
    if (!cluster_ok && cluster != NULL && strcmp(cluster, "yes") == 0)
        rc = idp_plugin_error(err, IDP_EINVAL, "%s is a Redis Cluster node "
                              "(cluster-enabled yes): most counters would "
                              "answer MOVED; use redis-cluster://%s",
                              s->where, s->where);
    for (int i = 0; i < 4; i++)
        freeReplyObject(r[i]);
    return rc;
}

/*
 * With wait_replicas set, says at open what the fetches will meet: a server
 * that is itself a replica (WAIT is refused there) or fewer connected
 * replicas than wait_replicas (every fetch fails until enough connect).
 * Warnings only: replicas may connect later. Fails only when the
 * connection does.
 */
static int rd_check_replicas(rd_store *s, idp_error *err)
{
    if (s->wait_replicas == 0)
        return IDP_OK;
    const char *argv[] = {"INFO", "replication"};
    redisReply *r;
    char shown[64];
    int rc = rd_cmd(s, "INFO replication", 2, argv, &r, err);
    if (rc != IDP_OK)
        return rc;
    const char *role = NULL, *conn = NULL;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        role = strstr(r->str, "role:");
        conn = strstr(r->str, "connected_slaves:");
    }
    if (role == NULL || conn == NULL)
        s->host->log(s->host, IDP_LOG_INFO, "could not count the replicas of "
                     "%s for wait_replicas=%ld: INFO replication answered %s",
                     s->where, s->wait_replicas,
                     rd_describe(r, shown, sizeof shown));
    else if (strncmp(role, "role:master", 11) != 0)
        s->host->log(s->host, IDP_LOG_WARN, "%s is a replica, not a primary: "
                     "its increments and WAIT (wait_replicas=%ld) will fail",
                     s->where, s->wait_replicas);
    else {
        long have = strtol(conn + strlen("connected_slaves:"), NULL, 10);
        if (have < s->wait_replicas)
            s->host->log(s->host, IDP_LOG_WARN, "%s has %ld connected "
                         "replica%s, fewer than wait_replicas=%ld: every "
                         "fetch fails until enough are connected", s->where,
                         have, have == 1 ? "" : "s", s->wait_replicas);
    }
    freeReplyObject(r);
    return IDP_OK;
}

/* PING: the server answers, and answers us (a NOAUTH shows here). */
static int rd_ping(rd_store *s, idp_error *err)
{
    const char *argv[] = {"PING"};
    redisReply *r;
    char shown[64];
    int rc = rd_cmd(s, "PING", 1, argv, &r, err);
    if (rc != IDP_OK)
        return rc;
    if (r->type == REDIS_REPLY_ERROR)
        rc = idp_plugin_error(err, IDP_ESTORE, "PING on %s failed: %s%s",
                              s->where, r->str,
                              strncmp(r->str, "NOAUTH", 6) == 0
                                  ? " (give the password in the URI: "
                                    "redis://:PASSWORD@host)"
                                  : "");
    else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        rc = idp_plugin_error(err, IDP_ESTORE, "PING on %s answered %s: is it "
                              "a Redis server?", s->where,
                              rd_describe(r, shown, sizeof shown));
    freeReplyObject(r);
    return rc;
}

int rd_check_server(rd_store *s, int cluster_ok, idp_error *err)
{
    int rc = rd_ready(s, err);
    if (rc == IDP_OK)
        rc = rd_ping(s, err);
    if (rc == IDP_OK)
        rc = rd_check_config(s, cluster_ok, err);
    if (rc == IDP_OK)
        rc = rd_check_replicas(s, err);
    return rc;
}
