/*
 * sentinel.c - the redis-sentinel store: the redis store on the master
 * that Redis Sentinel names, following a failover.
 *
 *   redis-sentinel://[:password@|user:password@]s1[:port][,s2[:port]...]/NAME
 *   ?db=N                 the database on the master (default 0)
 *   ?wait_replicas=N      durable batches (ops.c): with N >= 1 a failover
 *                         to a replica never hands out an ID twice
 *   ?sentinel_password=P  AUTH for the sentinels (the URI's password is
 *                         the master's and its replicas')
 *
 * The hosts are sentinels (port 26379 by default); NAME is the master's
 * name in their configuration. Following the Sentinel client spec, each
 * (re)connection asks the sentinels in turn `SENTINEL
 * get-master-addr-by-name NAME`; the first that answers moves to the
 * front of the list; the server it names is then asked ROLE, and used only
 * when it says it is a master (during a failover a sentinel may still name
 * the old one). The connection is made anew, and the sentinels asked
 * again, after a lost reply (the master died: conn.c drops the connection)
 * and after a READONLY reply (the master was demoted): the call that met it
 * fails, never retried, and the next call goes to the new master.
 *
 * Without wait_replicas a failover may lose the last increments that had
 * not reached the promoted replica: the new master then answers values this
 * client already held, which the engine refuses (a regression, counted);
 * IDs are never served twice by one client, but another client could be
 * handed them. With wait_replicas=N every served batch is on N replicas.
 *
 * The commands are ops.c's and the checks at open setup.c's, as for redis.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis_internal.h"

#define RS_DEFAULT_PORT 26379
/* Redis accepts `databases` up to INT_MAX, so db INT_MAX - 1 can exist. */
#define RS_DB_MAX (2147483647 - 1)

static const char *const rs_schemes[] = {"redis-sentinel", NULL};

static const idp_param_spec rs_params[] = {
    {.key = "db", .type = IDP_PARAM_INT, .def = "0", .min = 0,
     .max = RS_DB_MAX, .help = "the Redis database to SELECT on the master"},
    RD_PARAM_WAIT_REPLICAS,
    {.key = "sentinel_password", .type = IDP_PARAM_STR, .def = NULL,
     .help = "AUTH for the sentinels (default: none; the URI's password "
             "is the master's)"},
    {.key = NULL},
};

typedef struct rs_sentinel {
    const char *host;   /* the URI's, percent-decoded */
    int port;
} rs_sentinel;

typedef struct rs_store {
    rd_store rd;              /* first: the master's connection */
    const char *name;         /* the master's name */
    const char *sentinel_password; /* NULL: no AUTH to the sentinels */
    rs_sentinel *sentinels;   /* the one that answered last comes first */
    size_t nsentinels;
    char master[256];         /* the master's host, as the sentinel said */
} rs_store;

/* ---- Asking the sentinels ----------------------------------------------- */

/* A connection to sentinel i, as a server of its own (conn.c), whose
 * connect and command may take `ms` each. */
static void rs_sentinel_conn(const rs_store *s, size_t i, long long ms,
                             rd_store *out)
{
    memset(out, 0, sizeof *out);
    rd_setup(out, s->rd.host);
    out->tv.tv_sec = (time_t)(ms / 1000);
    out->tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    out->hostname = s->sentinels[i].host;
    out->port = s->sentinels[i].port;
    out->user = "";
    out->password = s->sentinel_password;
    int v6 = strchr(out->hostname, ':') != NULL;
    snprintf(out->where, sizeof out->where, "sentinel %s%s%s:%d",
             v6 ? "[" : "", out->hostname, v6 ? "]" : "", out->port);
}

/*
 * Asks one sentinel where the master is, within `ms` for the connect and
 * as much for the answer. Returns IDP_OK with the master's host and port
 * filled, or an error (err filled: unreachable, no such master, an answer
 * that is no address).
 */
static int rs_ask(rs_store *s, size_t i, long long ms, idp_error *err)
{
    rd_store q;
    rs_sentinel_conn(s, i, ms, &q);
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->name};
    redisReply *r;
    char shown[64];
    int rc = rd_connect(&q, err);
    if (rc == IDP_OK)
        rc = rd_cmd(&q, "SENTINEL get-master-addr-by-name", 3, argv, &r, err);
    if (rc == IDP_ETIMEOUT) /* its share, not timeout_ms, and said short:
                             * every sentinel's reason fits in one message */
        idp_plugin_error(err, rc, "%s: no answer within its %lld ms",
                         q.where, ms);
    if (rc != IDP_OK) {
        rd_drop(&q);
        return rc;
    }
    uint64_t port;
    if (r->type == REDIS_REPLY_NIL)
        rc = idp_plugin_error(err, IDP_ESTORE, "%s knows no master '%s'",
                              q.where, s->name);
    else if (r->type == REDIS_REPLY_ERROR)
        rc = idp_plugin_error(err, IDP_ESTORE, "%s: %s", q.where, r->str);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
             r->element[0]->type != REDIS_REPLY_STRING ||
             r->element[0]->len >= sizeof s->master ||
             r->element[1]->type != REDIS_REPLY_STRING ||
             rd_parse_value(r->element[1]->str, r->element[1]->len,
                            &port) != 0 ||
             port == 0 || port > 65535)
        rc = idp_plugin_error(err, IDP_ESTORE, "%s answered %s for master "
                              "'%s', not [host, port]", q.where,
                              rd_describe(r, shown, sizeof shown), s->name);
    else {
        memcpy(s->master, r->element[0]->str, r->element[0]->len);
        s->master[r->element[0]->len] = '\0';
        s->rd.port = (int)port;
    }
    freeReplyObject(r);
    rd_drop(&q);
    return rc;
}

/*
 * Asks the sentinels in turn; the first that answers moves to the front.
 * All of them share one timeout_ms: each sentinel asked gets an equal
 * share of what is left (half for its connect, half for its answer), so
 * sentinels that are down or silent fail the lookup within about
 * timeout_ms, not once per sentinel; one on the same network answers in
 * well under its share. On error names every sentinel asked and its
 * reason (err).
 */
static int rs_locate(rs_store *s, idp_error *err)
{
    char why[512] = "";
    size_t at = 0;
    long long budget = (long long)s->rd.host->timeout_ms;
    long long deadline = rd_now_ms() + budget;
    for (size_t i = 0; i < s->nsentinels; i++) {
        long long left = deadline - rd_now_ms();
        if (left < 1) {
            int n = snprintf(why + at, sizeof why - at, "%snot asked: %zu "
                             "sentinel%s, timeout_ms=%u spent", i ? "; " : "",
                             s->nsentinels - i, s->nsentinels - i == 1
                                 ? "" : "s", s->rd.host->timeout_ms);
            at += n > 0 && (size_t)n < sizeof why - at ? (size_t)n : 0;
            break;
        }
        idp_error e = {0, ""};
        long long share = left / (long long)(s->nsentinels - i) / 2;
        if (rs_ask(s, i, share > 0 ? share : 1, &e) == IDP_OK) {
            rs_sentinel found = s->sentinels[i];
            memmove(s->sentinels + 1, s->sentinels, i * sizeof found);
            s->sentinels[0] = found;
            return IDP_OK;
        }
        int n = snprintf(why + at, sizeof why - at, "%s%s", i ? "; " : "",
                         e.msg);
        at += n > 0 && (size_t)n < sizeof why - at ? (size_t)n : 0;
    }
    return idp_plugin_error(err, IDP_ESTORE, "no sentinel named the master "
                            "'%s' (%zu sentinel%s sharing timeout_ms=%u): %s",
                            s->name, s->nsentinels,
                            s->nsentinels == 1 ? "" : "s",
                            s->rd.host->timeout_ms, why);
}

/* ROLE of the server just connected: IDP_OK for a master; an error for a
 * replica (the sentinel has not seen a failover through yet). A server
 * without ROLE is taken at the sentinel's word, with a note in the log. */
static int rs_check_role(rs_store *s, idp_error *err)
{
    const char *argv[] = {"ROLE"};
    redisReply *r;
    char shown[64];
    int rc = rd_cmd(&s->rd, "ROLE", 1, argv, &r, err);
    if (rc != IDP_OK)
        return rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        if (strcmp(r->element[0]->str, "master") != 0)
            rc = idp_plugin_error(err, IDP_ESTORE, "the sentinels name %s as "
                                  "master '%s', but it says ROLE %s (a "
                                  "failover under way?); asking again on "
                                  "the next call", s->rd.where, s->name,
                                  r->element[0]->str);
    } else {
        s->rd.host->log(s->rd.host, IDP_LOG_INFO, "could not check that %s is "
                        "a master: ROLE answered %s", s->rd.where,
                        rd_describe(r, shown, sizeof shown));
    }
    freeReplyObject(r);
    if (rc != IDP_OK)
        rd_drop(&s->rd);
    return rc;
}

/* rd_store.reconnect: the sentinels' master, connected and checked. */
static int rs_reconnect(rd_store *rd, idp_error *err)
{
    rs_store *s = (rs_store *)rd;
    int rc = rs_locate(s, err);
    if (rc != IDP_OK)
        return rc;
    int v6 = strchr(s->master, ':') != NULL;
    snprintf(rd->where, sizeof rd->where, "%s%s%s:%d (master %s)",
             v6 ? "[" : "", s->master, v6 ? "]" : "", rd->port, s->name);
    rd->hostname = s->master;
    if ((rc = rd_connect(rd, err)) != IDP_OK)
        return rc;
    return rs_check_role(s, err);
}

/* ---- Open and close ---------------------------------------------------- */

static void rs_close(void *store)
{
    rs_store *s = store;
    if (s == NULL)
        return;
    rd_drop(&s->rd);
    free(s->sentinels);
    free(s);
}

/* In a child after fork(): frees the parent's handle without a byte on
 * its connection (rd_forget); no sentinel connection is ever kept open. */
static void rs_drop_child(void *store)
{
    rs_store *s = store;
    if (s == NULL)
        return;
    rd_forget(&s->rd);
    free(s->sentinels);
    free(s);
}

/* The sentinels from the URI's hosts, the master's name from its path. */
static int rs_target(rs_store *s, idp_error *err)
{
    const idp_uri *u = s->rd.host->uri;
    if (u->nhosts == 0)
        return idp_plugin_error(err, IDP_EINVAL, "the URI names no sentinel "
                                "(expected redis-sentinel://host[:port][,"
                                "host[:port]...]/MASTERNAME)");
    s->name = u->path[0] == '/' ? u->path + 1 : u->path;
    if (s->name[0] == '\0')
        return idp_plugin_error(err, IDP_EINVAL, "the URI names no master "
                                "(expected redis-sentinel://host[:port][,"
                                "host[:port]...]/MASTERNAME)");
    s->sentinels = calloc(u->nhosts, sizeof *s->sentinels);
    if (s->sentinels == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    for (size_t i = 0; i < u->nhosts; i++) {
        s->sentinels[i].host = u->hosts[i].host;
        s->sentinels[i].port = u->hosts[i].port != 0 ? (int)u->hosts[i].port
                                                     : RS_DEFAULT_PORT;
    }
    s->nsentinels = u->nhosts;
    s->sentinel_password = s->rd.host->param_str(s->rd.host,
                                                 "sentinel_password");
    if (s->sentinel_password != NULL && s->sentinel_password[0] == '\0')
        s->sentinel_password = NULL;
    s->rd.db = (long)s->rd.host->param_int(s->rd.host, "db");
    snprintf(s->rd.where, sizeof s->rd.where, "master %s", s->name);
    return IDP_OK;
}

static int rs_open(const idp_host *host, void **store, idp_error *err)
{
    rs_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    rd_setup(&s->rd, host);
    s->rd.reconnect = rs_reconnect;
    s->rd.readonly_drops = 1;
    int rc;
    if ((rc = rs_target(s, err)) != IDP_OK ||
        (rc = rd_credentials(&s->rd, err)) != IDP_OK ||
        (rc = rd_check_server(&s->rd, 0, err)) != IDP_OK) {
        rs_close(s);
        return rc;
    }
    *store = s;
    return IDP_OK;
}

static const idp_plugin_testing rs_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = NULL,
    .roundtrips = rd_roundtrips,
    .control = NULL,
};

static const idp_plugin rs_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "redis-sentinel",
    .schemes = rs_schemes,
    .params = rs_params,
    .open = rs_open,
    .close = rs_close,
    .incr = rd_incr,
    .get = rd_get,
    .incr_many = rd_incr_many,
    .raise_to = rd_raise_to,
    .list = rd_list,
    .drop = rs_drop_child,
    .testing = &rs_testing,
    .lower = rd_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &rs_plugin;
}
