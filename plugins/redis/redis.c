/*
 * redis.c - the redis store: counters are Redis strings bumped with INCRBY,
 * over hiredis.
 *
 *   redis://[:password@|user:password@]host[:port][/DB]   TCP, port 6379
 *   redis:///abs/path/redis.sock?db=N                     unix socket
 *   ?db=N                                                 the database, in
 *                                                         either form
 *   ?wait_replicas=N                                      durable batches
 *
 * wait_replicas=N (default 0: off) sends `WAIT N ms` right behind every
 * write (INCRBY, the pipelined INCRBYs of incr_many: one WAIT for the whole
 * pipeline, and raise's EVAL), in the same round trip, and fails the call
 * unless N replicas acknowledged it: the IDs of a batch are then never
 * served before N replicas hold the counter past them, so a failover to one
 * of them cannot hand them out again. WAIT's own timeout is timeout_ms
 * less a quarter of it (at least 200 ms: Redis may answer WAIT up to
 * 100 ms after its timeout), so that its answer (N or fewer) arrives
 * before the connection's timeout_ms and the error can say how many
 * acknowledged.
 * A failed WAIT leaves the increment applied on the primary: a gap.
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
 * counters: an eviction policy other than noeviction, or no persistence.
 *
 * This file holds the increments, get, raise and open; conn.c the
 * connection; list.c lists the counters; redis_internal.h is what they
 * share.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "redis_internal.h"

#define RD_DEFAULT_PORT 6379
/* Redis accepts `databases` up to INT_MAX, so db INT_MAX - 1 can exist. */
#define RD_DB_MAX (INT_MAX - 1)
/* wait_replicas: more replicas than anyone runs, and a bound on a typo. */
#define RD_WAIT_REPLICAS_MAX 100
/* WAIT's timeout is timeout_ms less a quarter of it, and at least this */
#define RD_WAIT_MARGIN_MS 200u

static const char *const rd_schemes[] = {"redis", NULL};

static const idp_param_spec rd_params[] = {
    {.key = "db", .type = IDP_PARAM_INT, .def = NULL, .min = 0,
     .max = RD_DB_MAX,
     .help = "the Redis database to SELECT (default 0); for TCP it may "
             "also be given as the URI path, redis://host/DB, but not both"},
    {.key = "wait_replicas", .type = IDP_PARAM_INT, .def = "0", .min = 0,
     .max = RD_WAIT_REPLICAS_MAX,
     .help = "durable batches: after every increment, WAIT until this many "
             "replicas acknowledged it (within timeout_ms less max(timeout_ms/4, "
             "200 ms)) before any of its IDs is served, else the fetch "
             "fails; 0: no WAIT"},
    {.key = NULL},
};

/*
 * raise_to: sets KEYS[1] to ARGV[1] unless it already holds at least that
 * much, and returns the resulting value as a string. Redis' Lua numbers are
 * doubles, exact only below 2^53, so the two decimal strings are compared
 * as text: a longer canonical integer is a larger one. A value that is not
 * a canonical integer is refused, as INCRBY would refuse it.
 */
static const char rd_raise_script[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "local want = ARGV[1]\n"
    "if cur then\n"
    "  if cur ~= '0' and not string.match(cur, '^%-?[1-9]%d*$') then\n"
    "    return redis.error_reply('value of ' .. KEYS[1] ..\n"
    "                             ' is not an integer')\n"
    "  end\n"
    "  if string.sub(cur, 1, 1) ~= '-' and\n"
    "     (#cur > #want or (#cur == #want and cur >= want)) then\n"
    "    return cur\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], want)\n"
    "return want\n";

/* ---- Increments -------------------------------------------------------- */

/*
 * Judges the reply to INCRBY key n: the new value on success; IDP_ERANGE
 * when Redis refused to pass 2^63 - 1; IDP_ESTORE for anything else (a
 * value that is not a counter, a result below n that would hand out IDs
 * at or below 0).
 */
static int rd_incr_reply(rd_store *s, const char *key, uint64_t n,
                         const redisReply *r, uint64_t *value, idp_error *err)
{
    char shown[64];
    if (r->type == REDIS_REPLY_ERROR) {
        if (strstr(r->str, "overflow") != NULL)
            return idp_plugin_error(err, IDP_ERANGE, "adding %" PRIu64 " to "
                                    "'%s' on %s would pass 2^63-1 (Redis: %s)",
                                    n, key, s->where, r->str);
        return idp_plugin_error(err, IDP_ESTORE, "INCRBY '%s' on %s failed: "
                                "%s", key, s->where, r->str);
    }
    if (r->type != REDIS_REPLY_INTEGER)
        return idp_plugin_error(err, IDP_ESTORE, "INCRBY '%s' on %s answered "
                                "%s, not an integer", key, s->where,
                                rd_describe(r, shown, sizeof shown));
    if (r->integer < (long long)n)
        return idp_plugin_error(err, IDP_ESTORE, "INCRBY '%s' by %" PRIu64
                                " on %s gave %lld: the key held a negative "
                                "value, not a counter", key, n, s->where,
                                r->integer);
    *value = (uint64_t)r->integer;
    return IDP_OK;
}

static int rd_check_n(const char *key, uint64_t n, idp_error *err)
{
    if (n == 0 || n > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot add %" PRIu64 " to "
                                "'%s': an increment is 1..2^63-1", n, key);
    return IDP_OK;
}

/* ---- Durable writes: WAIT ---------------------------------------------- */

/* The three words of `WAIT wait_replicas ms`, appended at argv. */
static void rd_wait_argv(const rd_store *s, const char **argv)
{
    argv[0] = "WAIT";
    argv[1] = s->wait_n;
    argv[2] = s->wait_ms;
}

/*
 * Judges the reply to the WAIT sent behind `what`: IDP_OK when at least
 * wait_replicas replicas acknowledged; otherwise an error naming how many
 * did, out of how many, within how long. The write itself stays applied on
 * the primary, and its IDs are never served: a gap.
 */
static int rd_wait_reply(const rd_store *s, const char *what,
                         const redisReply *r, idp_error *err)
{
    char shown[64];
    if (r->type == REDIS_REPLY_ERROR)
        return idp_plugin_error(err, IDP_ESTORE, "WAIT %s %s after %s on %s "
                                "failed: %s (wait_replicas needs a primary "
                                "that accepts WAIT)", s->wait_n, s->wait_ms,
                                what, s->where, r->str);
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
        return idp_plugin_error(err, IDP_ESTORE, "WAIT %s %s after %s on %s "
                                "answered %s, not a count of replicas",
                                s->wait_n, s->wait_ms, what, s->where,
                                rd_describe(r, shown, sizeof shown));
    if (r->integer < s->wait_replicas)
        return idp_plugin_error(err, IDP_ETIMEOUT, "only %lld of %ld replicas "
                                "acknowledged %s on %s within %s ms "
                                "(wait_replicas=%ld): the fetch failed, none "
                                "of its IDs is served", r->integer,
                                s->wait_replicas, what, s->where, s->wait_ms,
                                s->wait_replicas);
    return IDP_OK;
}

/* ---- Increments (continued) ---------------------------------------------- */

static int rd_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    rd_store *s = store;
    int rc = rd_check_n(key, n, err);
    if (rc != IDP_OK || (rc = rd_ready(s, err)) != IDP_OK)
        return rc;
    char num[24], what[256];
    snprintf(num, sizeof num, "%" PRIu64, n);
    snprintf(what, sizeof what, "INCRBY '%s' %s", key, num);
    /* INCRBY, then WAIT behind it in the same round trip */
    const char *argv[6] = {"INCRBY", key, num};
    rd_wait_argv(s, argv + 3);
    size_t ncmd = s->wait_replicas > 0 ? 2 : 1;
    redisReply *r[2];
    if ((rc = rd_pipeline(s, what, ncmd, 3, argv, r, err)) != IDP_OK)
        return rc;
    rc = rd_incr_reply(s, key, n, r[0], value, err);
    if (rc == IDP_OK && ncmd == 2)
        rc = rd_wait_reply(s, what, r[1], err);
    for (size_t i = 0; i < ncmd; i++)
        freeReplyObject(r[i]);
    return rc;
}

/* All the increments in one pipelined round trip, with one WAIT behind
 * them when wait_replicas is set: a WAIT that falls short fails the whole
 * call, so no op is trusted. An op whose n is out of range gets IDP_ERANGE
 * and is not sent. A failed op's reason (with Redis's own error text, e.g.
 * "WRONGTYPE ...") goes to err_ops[i]; the whole call's to err_ops[0]. */
static int rd_incr_many(void *store, idp_incr_op *ops, size_t nops,
                        idp_error *err_ops)
{
    rd_store *s = store;
    idp_error *err = err_ops; /* the whole call's error: err_ops[0] */
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    const char **argv = calloc((nops + 1) * 3, sizeof *argv);
    char (*nums)[24] = calloc(nops, sizeof *nums);
    redisReply **replies = calloc(nops + 1, sizeof *replies);
    size_t *idx = calloc(nops, sizeof *idx);
    if (argv == NULL || nums == NULL || replies == NULL || idx == NULL) {
        rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                              "pipelined increments", nops);
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < nops; i++) {
        ops[i].status = rd_check_n(ops[i].key, ops[i].n,
                                   err_ops != NULL ? &err_ops[i] : NULL);
        if (ops[i].status != IDP_OK)
            continue;
        snprintf(nums[n], sizeof nums[n], "%" PRIu64, ops[i].n);
        argv[3 * n] = "INCRBY";
        argv[3 * n + 1] = ops[i].key;
        argv[3 * n + 2] = nums[n];
        idx[n++] = i;
    }
    char what[64];
    snprintf(what, sizeof what, "a pipeline of %zu INCRBY", n);
    size_t ncmd = n;
    if (n > 0 && s->wait_replicas > 0)
        rd_wait_argv(s, argv + 3 * ncmd++);
    if (n > 0 &&
        (rc = rd_pipeline(s, what, ncmd, 3, argv, replies, err)) != IDP_OK)
        goto out;
    for (size_t j = 0; j < n; j++) {
        idp_incr_op *op = &ops[idx[j]];
        op->status = rd_incr_reply(s, op->key, op->n, replies[j], &op->value,
                                   err_ops != NULL ? &err_ops[idx[j]] : NULL);
        freeReplyObject(replies[j]);
    }
    if (ncmd > n) {
        rc = rd_wait_reply(s, what, replies[n], err);
        freeReplyObject(replies[n]);
    }
out:
    free(argv);
    free(nums);
    free(replies);
    free(idx);
    return rc;
}

/* ---- Reading and raising ------------------------------------------------ */

static int rd_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    rd_store *s = store;
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    char what[256], shown[64];
    snprintf(what, sizeof what, "GET '%s'", key);
    const char *argv[] = {"GET", key};
    redisReply *r;
    if ((rc = rd_cmd(s, what, 2, argv, &r, err)) != IDP_OK)
        return rc;
    if (r->type == REDIS_REPLY_NIL) {
        *value = 0;
        *exists = 0;
    } else if (r->type == REDIS_REPLY_STRING &&
               rd_parse_value(r->str, r->len, value) == 0) {
        *exists = 1;
    } else if (r->type == REDIS_REPLY_ERROR) {
        rc = idp_plugin_error(err, IDP_ESTORE, "GET '%s' on %s failed: %s",
                              key, s->where, r->str);
    } else {
        rc = idp_plugin_error(err, IDP_ESTORE, "'%s' on %s holds %s, not a "
                              "counter value (0..2^63-1)", key, s->where,
                              rd_describe(r, shown, sizeof shown));
    }
    freeReplyObject(r);
    return rc;
}

static int rd_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    rd_store *s = store;
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%s' to %"
                                PRIu64 ": values stay below 2^63", key, value);
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    char num[24], what[256], shown[64];
    snprintf(num, sizeof num, "%" PRIu64, value);
    snprintf(what, sizeof what, "raising '%s' to %s (EVAL)", key, num);
    /* EVAL, then WAIT behind it in the same round trip */
    const char *argv[8] = {"EVAL", rd_raise_script, "1", key, num};
    const int argcs[2] = {5, 3};
    rd_wait_argv(s, argv + 5);
    size_t ncmd = s->wait_replicas > 0 ? 2 : 1;
    redisReply *rs[2], *r;
    if ((rc = rd_pipeline_v(s, what, ncmd, argcs, argv, rs, err)) != IDP_OK)
        return rc;
    r = rs[0];
    if (r->type == REDIS_REPLY_ERROR)
        rc = idp_plugin_error(err, IDP_ESTORE, "%s on %s failed: %s", what,
                              s->where, r->str);
    else if (r->type != REDIS_REPLY_STRING ||
             rd_parse_value(r->str, r->len, result) != 0)
        rc = idp_plugin_error(err, IDP_ESTORE, "%s on %s: '%s' holds %s, not "
                              "a counter value", what, s->where, key,
                              rd_describe(r, shown, sizeof shown));
    else if (ncmd == 2)
        rc = rd_wait_reply(s, what, rs[1], err);
    for (size_t i = 0; i < ncmd; i++)
        freeReplyObject(rs[i]);
    return rc;
}

/* ---- The server's own count ------------------------------------------- */

/* cmdstat_incrby:calls=N from INFO commandstats: every INCRBY the server
 * ran for anyone since its start or CONFIG RESETSTAT. */
static int rd_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    rd_store *s = store;
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    const char *argv[] = {"INFO", "commandstats"};
    redisReply *r;
    char shown[64];
    if ((rc = rd_cmd(s, "INFO commandstats", 2, argv, &r, err)) != IDP_OK)
        return rc;
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
        rc = idp_plugin_error(err, IDP_ESTORE, "INFO commandstats on %s "
                              "answered %s", s->where,
                              rd_describe(r, shown, sizeof shown));
        freeReplyObject(r);
        return rc;
    }
    static const char field[] = "cmdstat_incrby:calls=";
    *count = 0;
    for (const char *p = strstr(r->str, field); p != NULL;
         p = strstr(p + 1, field)) {
        if (p != r->str && p[-1] != '\n')
            continue;
        *count = strtoull(p + sizeof field - 1, NULL, 10);
        break;
    }
    freeReplyObject(r);
    return IDP_OK;
}

/* ---- Open and close ---------------------------------------------------- */

static void rd_close(void *store)
{
    rd_store *s = store;
    if (s == NULL)
        return;
    rd_drop(s);
    free(s);
}

/*
 * In a child after fork(), for the parent's handle: frees it without a
 * byte on the connection. redisFree (hiredis 0.14 and 1.x) only closes the
 * fd (redisNetClose: close(2), no shutdown(2)), and frees the output
 * buffer unsent, the reader and the context; this plugin uses no SSL
 * (whose free hook would be the only other code run). Closing the child's
 * copy of the socket sends nothing (no FIN) while the parent still holds
 * its own: the socket is shut only when its last descriptor goes.
 */
static void rd_drop_child(void *store)
{
    rd_store *s = store;
    if (s == NULL)
        return;
    if (s->c != NULL)
        redisFree(s->c);
    free(s);
}

/* The host list, as "a:1,b:2", for messages. */
static void rd_hosts_text(const idp_uri *u, char *buf, size_t len)
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

/* Who to AUTH as: "user:password@" or ":password@". */
static int rd_credentials(rd_store *s, idp_error *err)
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
 * IDs repeat. CONFIG may be disabled or renamed: then says so at INFO and
 * goes on. Fails only when the connection does.
 */
static int rd_check_config(rd_store *s, idp_error *err)
{
    const char *argv[] = {"CONFIG", "GET", "maxmemory-policy",
                          "CONFIG", "GET", "save",
                          "CONFIG", "GET", "appendonly"};
    redisReply *r[3];
    int rc = rd_pipeline(s, "CONFIG GET", 3, 3, argv, r, err);
    if (rc != IDP_OK)
        return rc;
    const char *policy = rd_config_value(r[0]);
    const char *save = rd_config_value(r[1]);
    const char *aof = rd_config_value(r[2]);
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
    for (int i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    return IDP_OK;
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

static int rd_open(const idp_host *host, void **store, idp_error *err)
{
    rd_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
    s->tv.tv_sec = (time_t)(host->timeout_ms / 1000);
    s->tv.tv_usec = (suseconds_t)(host->timeout_ms % 1000) * 1000;
    /* WAIT's own timeout (0 would block forever) leaves the answer time
     * to arrive before the connection's timeout_ms: Redis acts on it at
     * its next server cron, up to 1000/hz ms late (100 ms at hz 10) */
    s->wait_replicas = (long)host->param_int(host, "wait_replicas");
    unsigned margin = host->timeout_ms / 4 > RD_WAIT_MARGIN_MS
                          ? host->timeout_ms / 4 : RD_WAIT_MARGIN_MS;
    unsigned wait_ms = host->timeout_ms > margin ? host->timeout_ms - margin
                                                 : 1;
    snprintf(s->wait_n, sizeof s->wait_n, "%ld", s->wait_replicas);
    snprintf(s->wait_ms, sizeof s->wait_ms, "%u", wait_ms);
    int rc;
    if ((rc = rd_target(s, err)) != IDP_OK ||
        (rc = rd_credentials(s, err)) != IDP_OK ||
        (rc = rd_connect(s, err)) != IDP_OK ||
        (rc = rd_ping(s, err)) != IDP_OK ||
        (rc = rd_check_config(s, err)) != IDP_OK ||
        (rc = rd_check_replicas(s, err)) != IDP_OK) {
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
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &rd_plugin;
}
