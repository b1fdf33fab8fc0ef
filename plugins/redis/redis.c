/*
 * redis.c - the redis store on one server: counters are Redis strings
 * bumped with INCRBY, over hiredis.
 *
 *   redis://[:password@|user:password@]host[:port][/DB]   TCP, port 6379
 *   redis:///abs/path/redis.sock?db=N                     unix socket
 *   ?db=N                                                 the database, in
 *                                                         either form
 *   ?wait_replicas=N                                      durable batches
 *                                                         (see ops.c)
 *
 * One connection per store handle (the host never calls two methods on one
 * handle at once). Every command has the timeout_ms deadline. A command whose
 * reply is lost (I/O error, timeout) is reported and never retried: the
 * increment may have been applied, and the host counts it as a gap. The
 * connection is then dropped and opened again, with its timeout, AUTH and
 * SELECT, at the start of the next call, so a late reply can never be taken
 * for the answer to a later command. A connection the server closed while
 * idle is reopened before anything is sent, so a server restart costs no
 * error once the server is back.
 *
 * At open the plugin warns, through the host's log, when the server may lose
 * counters: an eviction policy other than noeviction, or no persistence;
 * and it refuses a Redis Cluster node, naming redis-cluster://.
 *
 * This file holds the URI and the plugin table; the commands are in
 * ops.c, shared with redis-sentinel (sentinel.c) and redis-cluster
 * (cluster.c); redis_internal.h says which file holds what.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis_internal.h"

#define RD_DEFAULT_PORT 6379
/* Redis accepts `databases` up to INT_MAX, so db INT_MAX - 1 can exist. */
#define RD_DB_MAX (INT_MAX - 1)

static const char *const rd_schemes[] = {"redis", NULL};

static const idp_param_spec rd_params[] = {
    {.key = "db", .type = IDP_PARAM_INT, .def = NULL, .min = 0,
     .max = RD_DB_MAX,
     .help = "the Redis database to SELECT (default 0); for TCP it may "
             "also be given as the URI path, redis://host/DB, but not both"},
    RD_PARAM_WAIT_REPLICAS,
    {.key = NULL},
};

/* ---- Open and close ---------------------------------------------------- */

static void rd_close(void *store)
{
    rd_store *s = store;
    if (s == NULL)
        return;
    rd_drop(s);
    free(s);
}

/* In a child after fork(), for the parent's handle: frees it without a
 * byte on the connection (rd_forget). */
static void rd_drop_child(void *store)
{
    rd_store *s = store;
    if (s == NULL)
        return;
    rd_forget(s);
    free(s);
}

/*
 * Reads the server and the db from the URI and the db parameter: one TCP
 * host with the db as the path, or no host and a socket path with db=N.
 */
static int rd_target(rd_store *s, idp_error *err)
{
    const idp_uri *u = s->host->uri;
    const char *dbparam = s->host->param_str(s->host, "db");
    char hosts[200];
    rd_hosts_text(u, hosts, sizeof hosts);
    if (u->nhosts > 1)
        return idp_plugin_error(err, IDP_EINVAL, "the URI names several hosts "
                                "(%s); the redis store talks to one server: "
                                "give one host[:port]", hosts);
    if (u->nhosts == 0) {
        if (u->path[0] == '\0' || strcmp(u->path, "/") == 0)
            return idp_plugin_error(err, IDP_EINVAL, "the URI names no host "
                                    "(expected redis://host[:port][/DB] or "
                                    "redis:///path/to/redis.sock?db=N)");
        s->socket = u->path;
        snprintf(s->where, sizeof s->where, "unix socket %s", u->path);
        s->db = dbparam != NULL ? (long)s->host->param_int(s->host, "db") : 0;
        return IDP_OK;
    }
    s->hostname = u->hosts[0].host;
    s->port = u->hosts[0].port != 0 ? (int)u->hosts[0].port : RD_DEFAULT_PORT;
    int v6 = strchr(s->hostname, ':') != NULL;
    snprintf(s->where, sizeof s->where, "%s%s%s:%d", v6 ? "[" : "",
             s->hostname, v6 ? "]" : "", s->port);
    const char *p = u->path[0] == '/' ? u->path + 1 : u->path;
    if (*p == '\0') {
        s->db = dbparam != NULL ? (long)s->host->param_int(s->host, "db") : 0;
        return IDP_OK;
    }
    if (dbparam != NULL)
        return idp_plugin_error(err, IDP_EINVAL, "the db is given twice, as "
                                "the URI path '%s' and as db=%s: keep one",
                                u->path, dbparam);
    uint64_t db;
    if (rd_parse_value(p, strlen(p), &db) != 0 || db > RD_DB_MAX)
        return idp_plugin_error(err, IDP_EINVAL, "the URI path '%s' is not a "
                                "database number (expected /0 .. /%d; a unix "
                                "socket is written redis:///path/to/socket)",
                                u->path, RD_DB_MAX);
    s->db = (long)db;
    return IDP_OK;
}

static int rd_open(const idp_host *host, void **store, idp_error *err)
{
    rd_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    rd_setup(s, host);
    int rc;
    if ((rc = rd_target(s, err)) != IDP_OK ||
        (rc = rd_credentials(s, err)) != IDP_OK ||
        (rc = rd_check_server(s, 0, err)) != IDP_OK) {
        rd_close(s);
        return rc;
    }
    *store = s;
    return IDP_OK;
}

static const idp_plugin_testing rd_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = NULL,
    .roundtrips = rd_roundtrips,
    .control = NULL,
};

static const idp_plugin rd_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "redis",
    .schemes = rd_schemes,
    .params = rd_params,
    .open = rd_open,
    .close = rd_close,
    .incr = rd_incr,
    .get = rd_get,
    .incr_many = rd_incr_many,
    .raise_to = rd_raise_to,
    .list = rd_list,
    .drop = rd_drop_child,
    .testing = &rd_testing,
    .lower = rd_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &rd_plugin;
}
