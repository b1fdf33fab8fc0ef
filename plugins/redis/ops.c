/*
 * ops.c - the store's commands on one Redis server, for every redis
 * plugin: INCRBY (alone or pipelined), GET, raising a counter (EVAL), and
 * WAIT behind every write when wait_replicas is set; and the judging of
 * each reply, which redis-cluster reuses for the commands it routes.
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
 * acknowledged. A failed WAIT leaves the increment applied on the primary:
 * a gap.
 *
 * lower (a clean close giving back, DESIGN: Semantics 7) is one EVAL per
 * counter: the script compares and sets inside Redis, so no INCRBY of
 * another client can fall between the read and the write; several
 * counters go out as one pipeline, with one WAIT behind it.
 *
 * A command whose reply is lost (I/O error, timeout) is reported and never
 * retried: the increment may have been applied, and the host counts it as
 * a gap (conn.c drops the connection and reopens it on the next call).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis_internal.h"

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

/*
 * lower: sets KEYS[1] to ARGV[2] only when it holds exactly ARGV[1] (the
 * end of this client's last batch), and answers 1 when it did, 0 when the
 * key held anything else. Compared as text: Redis answers GET of an
 * INCRBY'd key in canonical decimal, as ARGV[1] is written, so no number
 * passes through Lua's doubles.
 */
static const char rd_lower_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* ---- Increments -------------------------------------------------------- */

/* A hint for a redirection that reached a plugin that does not follow
 * them: the server is a Redis Cluster node. */
static const char *rd_cluster_hint(const redisReply *r)
{
    if (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0)
        return " (a Redis Cluster node: use redis-cluster://)";
    return "";
}

/*
 * Judges the reply to INCRBY key n: the new value on success; IDP_ERANGE
 * when Redis refused to pass 2^63 - 1; IDP_ESTORE for anything else (a
 * value that is not a counter, a result below n that would hand out IDs
 * at or below 0).
 */
int rd_incr_reply(const rd_store *s, const char *key, uint64_t n,
                  const redisReply *r, uint64_t *value, idp_error *err)
{
    char shown[64];
    if (r->type == REDIS_REPLY_ERROR) {
        if (strstr(r->str, "overflow") != NULL)
            return idp_plugin_error(err, IDP_ERANGE, "adding %" PRIu64 " to "
                                    "'%s' on %s would pass 2^63-1 (Redis: %s)",
                                    n, key, s->where, r->str);
        return idp_plugin_error(err, IDP_ESTORE, "INCRBY '%s' on %s failed: "
                                "%s%s", key, s->where, r->str,
                                rd_cluster_hint(r));
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

int rd_check_n(const char *key, uint64_t n, idp_error *err)
{
    if (n == 0 || n > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot add %" PRIu64 " to "
                                "'%s': an increment is 1..2^63-1", n, key);
    return IDP_OK;
}

/* ---- Durable writes: WAIT ---------------------------------------------- */

/* The three words of `WAIT wait_replicas ms`, appended at argv. */
void rd_wait_argv(const rd_store *s, const char **argv)
{
    argv[0] = "WAIT";
    argv[1] = s->wait_n;
    argv[2] = s->wait_ms;
}

/*
 * Judges the reply to the WAIT sent behind `what` (see redis_internal.h).
 * The message tells WAIT's own timeout apart from timeout_ms, and how long
 * the answer really took (Redis answers WAIT at its next tick after the
 * timeout, so up to 100 ms late). The write itself stays applied on the
 * primary, and its IDs are never served: a gap.
 */
int rd_wait_reply(const rd_store *s, const char *what, const redisReply *r,
                  long long took_ms, idp_error *err)
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
    unsigned timeout_ms = s->host->timeout_ms;
    if (r->integer < s->wait_replicas)
        return idp_plugin_error(err, IDP_ETIMEOUT, "only %lld of %ld replicas "
                                "acknowledged %s on %s within %s ms, WAIT's "
                                "timeout (timeout_ms=%u less %u; answered in "
                                "%lld ms); wait_replicas=%ld: none of its IDs "
                                "is served", r->integer, s->wait_replicas,
                                what, s->where, s->wait_ms, timeout_ms,
                                timeout_ms - s->wait_timeout, took_ms,
                                s->wait_replicas);
    return IDP_OK;
}

/* ---- The methods on one server ------------------------------------------ */

int rd_incr(void *store, const char *key, uint64_t n, uint64_t *value,
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
    long long t0 = rd_now_ms();
    if ((rc = rd_pipeline(s, what, ncmd, 3, argv, r, err)) != IDP_OK)
        return rc;
    rc = rd_incr_reply(s, key, n, r[0], value, err);
    if (rc == IDP_OK && ncmd == 2)
        rc = rd_wait_reply(s, what, r[1], rd_now_ms() - t0, err);
    for (size_t i = 0; i < ncmd; i++)
        freeReplyObject(r[i]);
    return rc;
}

/* All the increments in one pipelined round trip, with one WAIT behind
 * them when wait_replicas is set: a WAIT that falls short fails the whole
 * call, so no op is trusted. An op whose n is out of range gets IDP_ERANGE
 * and is not sent. A failed op's reason (with Redis's own error text, e.g.
 * "WRONGTYPE ...") goes to err_ops[i]; the whole call's to err_ops[0]. */
int rd_incr_many(void *store, idp_incr_op *ops, size_t nops,
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
    long long t0 = rd_now_ms();
    if (n > 0 &&
        (rc = rd_pipeline(s, what, ncmd, 3, argv, replies, err)) != IDP_OK)
        goto out;
    for (size_t j = 0; j < n; j++) {
        idp_incr_op *op = &ops[idx[j]];
        op->status = rd_incr_reply(s, op->key, op->n, replies[j], &op->value,
                                   err_ops != NULL ? &err_ops[idx[j]]
                                                   : NULL);
        freeReplyObject(replies[j]);
    }
    if (ncmd > n) {
        rc = rd_wait_reply(s, what, replies[n], rd_now_ms() - t0, err);
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

int rd_get_reply(const rd_store *s, const char *key, const redisReply *r,
                 uint64_t *value, int *exists, idp_error *err)
{
    char shown[64];
    if (r->type == REDIS_REPLY_NIL) {
        *value = 0;
        *exists = 0;
        return IDP_OK;
    }
    if (r->type == REDIS_REPLY_STRING &&
        rd_parse_value(r->str, r->len, value) == 0) {
        *exists = 1;
        return IDP_OK;
    }
    if (r->type == REDIS_REPLY_ERROR)
        return idp_plugin_error(err, IDP_ESTORE, "GET '%s' on %s failed: %s%s",
                                key, s->where, r->str, rd_cluster_hint(r));
    return idp_plugin_error(err, IDP_ESTORE, "'%s' on %s holds %s, not a "
                            "counter value (0..2^63-1)", key, s->where,
                            rd_describe(r, shown, sizeof shown));
}

int rd_get(void *store, const char *key, uint64_t *value, int *exists,
           idp_error *err)
{
    rd_store *s = store;
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    char what[256];
    snprintf(what, sizeof what, "GET '%s'", key);
    const char *argv[] = {"GET", key};
    redisReply *r;
    if ((rc = rd_cmd(s, what, 2, argv, &r, err)) != IDP_OK)
        return rc;
    rc = rd_get_reply(s, key, r, value, exists, err);
    freeReplyObject(r);
    return rc;
}

void rd_raise_argv(const char *key, const char *num, const char **argv)
{
    argv[0] = "EVAL";
    argv[1] = rd_raise_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = num;
}

int rd_raise_reply(const rd_store *s, const char *what, const char *key,
                   const redisReply *r, uint64_t *result, idp_error *err)
{
    char shown[64];
    if (r->type == REDIS_REPLY_ERROR)
        return idp_plugin_error(err, IDP_ESTORE, "%s on %s failed: %s%s",
                                what, s->where, r->str, rd_cluster_hint(r));
    if (r->type != REDIS_REPLY_STRING ||
        rd_parse_value(r->str, r->len, result) != 0)
        return idp_plugin_error(err, IDP_ESTORE, "%s on %s: '%s' holds %s, "
                                "not a counter value", what, s->where, key,
                                rd_describe(r, shown, sizeof shown));
    return IDP_OK;
}

int rd_raise_to(void *store, const char *key, uint64_t value,
                uint64_t *result, idp_error *err)
{
    rd_store *s = store;
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%s' to %"
                                PRIu64 ": values stay below 2^63", key, value);
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    char num[24], what[256];
    snprintf(num, sizeof num, "%" PRIu64, value);
    snprintf(what, sizeof what, "raising '%s' to %s (EVAL)", key, num);
    /* EVAL, then WAIT behind it in the same round trip */
    const char *argv[8];
    const int argcs[2] = {5, 3};
    rd_raise_argv(key, num, argv);
    rd_wait_argv(s, argv + 5);
    size_t ncmd = s->wait_replicas > 0 ? 2 : 1;
    redisReply *rs[2];
    long long t0 = rd_now_ms();
    if ((rc = rd_pipeline_v(s, what, ncmd, argcs, argv, rs, err)) != IDP_OK)
        return rc;
    rc = rd_raise_reply(s, what, key, rs[0], result, err);
    if (rc == IDP_OK && ncmd == 2)
        rc = rd_wait_reply(s, what, rs[1], rd_now_ms() - t0, err);
    for (size_t i = 0; i < ncmd; i++)
        freeReplyObject(rs[i]);
    return rc;
}

/* ---- Giving back ------------------------------------------------------ */

int rd_lower_check(const idp_lower_op *op, idp_error *err)
{
    if (op->value >= op->expect || op->expect > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_EINVAL, "cannot lower '%s' from %"
                                PRIu64 " to %" PRIu64 ": a lowering goes "
                                "down, below 2^63", op->key, op->expect,
                                op->value);
    return IDP_OK;
}

void rd_lower_argv(const char *key, const char *expect, const char *value,
                   const char **argv)
{
    argv[0] = "EVAL";
    argv[1] = rd_lower_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = expect;
    argv[5] = value;
}

int rd_lower_reply(const rd_store *s, const char *key, const redisReply *r,
                   int *done, idp_error *err)
{
    char shown[64];
    if (r->type == REDIS_REPLY_ERROR)
        return idp_plugin_error(err, IDP_ESTORE, "lowering '%s' (EVAL) on %s "
                                "failed: %s%s", key, s->where, r->str,
                                rd_cluster_hint(r));
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 &&
                                           r->integer != 1))
        return idp_plugin_error(err, IDP_ESTORE, "lowering '%s' (EVAL) on %s "
                                "answered %s, not 0 or 1", key, s->where,
                                rd_describe(r, shown, sizeof shown));
    *done = (int)r->integer;
    return IDP_OK;
}

/* Every op's compare-and-set as one EVAL, all in one pipeline with one
 * WAIT behind it when wait_replicas is set. A WAIT that falls short fails
 * the whole call, as for incr_many: the lowerings stay applied on the
 * primary, which is safe either way (a replica holding the higher value
 * only makes a gap). */
int rd_lower(void *store, idp_lower_op *ops, size_t nops, idp_error *err)
{
    rd_store *s = store;
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    const char **argv = calloc(nops * 6 + 3, sizeof *argv);
    int *argcs = calloc(nops + 1, sizeof *argcs);
    char (*nums)[2][24] = calloc(nops, sizeof *nums);
    redisReply **replies = calloc(nops + 1, sizeof *replies);
    size_t *idx = calloc(nops, sizeof *idx);
    if (argv == NULL || argcs == NULL || nums == NULL || replies == NULL ||
        idx == NULL) {
        rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                              "counters to give back", nops);
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < nops; i++) {
        ops[i].done = 0;
        if ((ops[i].status = rd_lower_check(&ops[i], NULL)) != IDP_OK)
            continue;
        snprintf(nums[n][0], sizeof nums[n][0], "%" PRIu64, ops[i].expect);
        snprintf(nums[n][1], sizeof nums[n][1], "%" PRIu64, ops[i].value);
        rd_lower_argv(ops[i].key, nums[n][0], nums[n][1], argv + 6 * n);
        argcs[n] = 6;
        idx[n++] = i;
    }
    if (n == 0)
        goto out;
    char what[64];
    snprintf(what, sizeof what, "a pipeline of %zu lowerings (EVAL)", n);
    size_t ncmd = n;
    if (s->wait_replicas > 0) {
        rd_wait_argv(s, argv + 6 * n);
        argcs[ncmd++] = 3;
    }
    long long t0 = rd_now_ms();
    if ((rc = rd_pipeline_v(s, what, ncmd, argcs, argv, replies, err)) !=
        IDP_OK)
        goto out;
    for (size_t j = 0; j < n; j++) {
        idp_lower_op *op = &ops[idx[j]];
        op->status = rd_lower_reply(s, op->key, replies[j], &op->done, NULL);
        freeReplyObject(replies[j]);
    }
    if (ncmd > n) {
        rc = rd_wait_reply(s, what, replies[n], rd_now_ms() - t0, err);
        freeReplyObject(replies[n]);
    }
out:
    free(argv);
    free(argcs);
    free(nums);
    free(replies);
    free(idx);
    return rc;
}

/* ---- The server's own count ------------------------------------------- */

/* cmdstat_incrby:calls=N from INFO commandstats: every INCRBY the server
 * ran for anyone since its start or CONFIG RESETSTAT. */
int rd_roundtrips(void *store, uint64_t *count, idp_error *err)
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

