/*
 * cluster.c - the redis-cluster store: counters spread over the masters of
 * a Redis Cluster by hash slot, over plain hiredis connections (one per
 * node).
 *
 *   redis-cluster://[:password@|user:password@]host[:port][,host[:port]...]
 *   ?wait_replicas=N   durable batches (ops.c), WAIT on each master written
 *
 * The hosts are seeds: any node of the cluster (port 6379 by default). At
 * open, and again after a redirection or a lost connection, the slot map
 * is read with CLUSTER SLOTS (slots.c). Each command goes to the master of
 * its key's slot. A MOVED reply updates the map and the command is sent
 * again to the node named; an ASK reply (a slot being migrated) sends it,
 * behind ASKING, to the importing node, this once. Both mean the command
 * did not run, so following them repeats nothing; after RC_ROUNDS tries
 * the last redirection is reported. A reply that is lost is never retried
 * (it may have run: a gap), and the map is read again before the next
 * call.
 *
 * Counters fetched together (incr_many), and those given back on a clean
 * close (lower: ops.c's compare-and-set EVAL per counter, sent to its
 * slot's master), go out as one pipeline per master,
 * all written before any reply is read, with one WAIT per master behind
 * its increments when wait_replicas is set: one round trip for the lot
 * (plus one per redirection). Each op gets its own status and, on failure,
 * the reason with the store's words (WRONGTYPE, MOVED, ...).
 *
 * list SCANs every master (slots.c knows which nodes serve slots), merges
 * the keys and reads their values with GETs routed like any command;
 * roundtrips sums INCRBY calls over the masters. Every node gets, at open,
 * the checks of setup.c (eviction, persistence, replicas).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster_internal.h"

/* Sends of one command: the first and up to 5 redirections. */
#define RC_ROUNDS 6
/* Values read per routed batch of GETs in list. */
#define RC_LIST_CHUNK 1000
/* The most words of one routed command (lower's EVAL). */
#define RC_REQ_WORDS 6

static const char *const rc_schemes[] = {"redis-cluster", NULL};

static const idp_param_spec rc_params[] = {
    RD_PARAM_WAIT_REPLICAS,
    {.key = NULL},
};

/* ---- Routing ------------------------------------------------------------- */

/* One command routed by its key, through redirections, to its reply. */
typedef struct rc_req {
    const char *argv[RC_REQ_WORDS];
    int argc;
    int write;          /* a WAIT goes behind it when wait_replicas is set */
    const char *key;    /* argv's key: it routes the command */
    unsigned slot;
    int node;           /* where it went last (its reply's `where`) */
    int ask;            /* -1, or the node an ASK sent it to */
    int done;
    redisReply *reply;  /* the final reply, when rc is IDP_OK */
    int rc;             /* IDP_OK, or why there is no reply (err) */
    int wait_rc;        /* IDP_OK, or the WAIT behind it fell short (err) */
    idp_error err;
} rc_req;

/* Marks for rc_batch.owner entries that are not a request. */
#define RC_OWN_ASKING (-1)
#define RC_OWN_WAIT (-2)

/* What goes to one node in one round. */
typedef struct rc_batch {
    int node;
    size_t ncmd, nword;
    const char **argv;   /* into the round's arrays */
    int *argcs;
    long *owner;         /* request index, RC_OWN_ASKING or RC_OWN_WAIT */
    int started;
    long long t0;
} rc_batch;

/* A request of argc words whose key is argv[keyat]. */
static void rc_req_init(rc_req *r, int write, int keyat, int argc,
                        const char *const *argv)
{
    memset(r, 0, sizeof *r);
    r->write = write;
    r->argc = argc;
    for (int i = 0; i < argc; i++)
        r->argv[i] = argv[i];
    r->key = argv[keyat];
    r->slot = rc_key_slot(r->key, strlen(r->key));
    r->ask = -1;
}

static void rc_fail(rc_req *r, int rc, const idp_error *e)
{
    r->done = 1;
    r->rc = rc;
    r->err = *e;
}

/* Where each pending request goes this round; a slot without a node fails
 * its request. Returns how many are pending. */
static size_t rc_route(rc_store *s, rc_req *reqs, size_t n)
{
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        rc_req *r = &reqs[i];
        if (r->done)
            continue;
        int node = r->ask >= 0 ? r->ask : s->slot[r->slot];
        if (node < 0) {
            idp_error e;
            idp_plugin_error(&e, IDP_ESTORE, "no node of the cluster serves "
                             "slot %u of '%s' (CLUSTER SLOTS has none: is "
                             "the cluster down?)", r->slot, r->key);
            rc_fail(r, IDP_ESTORE, &e);
            s->stale = 1;
            continue;
        }
        r->node = node;
        pending++;
    }
    return pending;
}

/* Lays out node b->node's commands for this round: ASKING before an
 * asked request, each request, and one WAIT behind them when one writes. */
static void rc_batch_fill(rc_store *s, rc_batch *b, rc_req *reqs, size_t n)
{
    int writes = 0;
    for (size_t i = 0; i < n; i++) {
        rc_req *r = &reqs[i];
        if (r->done || r->node != b->node)
            continue;
        if (r->ask >= 0) {
            b->argv[b->nword++] = "ASKING";
            b->argcs[b->ncmd] = 1;
            b->owner[b->ncmd++] = RC_OWN_ASKING;
        }
        for (int w = 0; w < r->argc; w++)
            b->argv[b->nword++] = r->argv[w];
        b->argcs[b->ncmd] = r->argc;
        b->owner[b->ncmd++] = (long)i;
        writes |= r->write;
    }
    if (writes && s->base.wait_replicas > 0) {
        rd_wait_argv(&s->base, b->argv + b->nword);
        b->nword += 3;
        b->argcs[b->ncmd] = 3;
        b->owner[b->ncmd++] = RC_OWN_WAIT;
    }
}

/* The node's round failed as a whole (connection lost or refused): every
 * request of it fails with the reason; the map is read again next call. */
static void rc_batch_failed(rc_store *s, const rc_batch *b, rc_req *reqs,
                            const idp_error *e, int rc)
{
    for (size_t k = 0; k < b->ncmd; k++)
        if (b->owner[k] >= 0)
            rc_fail(&reqs[b->owner[k]], rc, e);
    s->stale = 1;
}

/*
 * Takes node b->node's replies: redirections go round again, final
 * replies are kept, and a WAIT that fell short fails the writes that
 * completed with it. Frees every reply it does not keep. Returns IDP_OK or
 * IDP_ENOMEM.
 */
static int rc_batch_take(rc_store *s, const rc_batch *b, rc_req *reqs,
                         redisReply **replies, const char *what)
{
    rd_store *node = &s->nodes[b->node]->rd;
    int rc = IDP_OK;
    redisReply *wait = NULL;
    for (size_t k = 0; k < b->ncmd; k++) {
        redisReply *reply = replies[k];
        if (b->owner[k] == RC_OWN_WAIT) {
            wait = reply;
            continue;
        }
        if (b->owner[k] == RC_OWN_ASKING) {
            freeReplyObject(reply);   /* the command after it tells */
            continue;
        }
        rc_req *r = &reqs[b->owner[k]];
        int to = -1, red = rc_redirect(s, b->node, reply, &to);
        if (red > 0) {
            r->ask = red == 2 ? to : -1;
            /* kept for the message should the redirections not end */
            snprintf(r->err.msg, sizeof r->err.msg, "%s", reply->str);
            freeReplyObject(reply);
            continue;
        }
        if (red < 0) {
            idp_error e;
            idp_plugin_error(&e, IDP_ENOMEM, "out of memory following %s",
                             reply->str);
            rc_fail(r, IDP_ENOMEM, &e);
            freeReplyObject(reply);
            rc = IDP_ENOMEM;
            continue;
        }
        r->done = 1;
        r->rc = IDP_OK;
        r->reply = reply;
    }
    if (wait != NULL) {
        idp_error e;
        int wrc = rd_wait_reply(node, what, wait, rd_now_ms() - b->t0, &e);
        for (size_t k = 0; wrc != IDP_OK && k < b->ncmd; k++) {
            rc_req *r = b->owner[k] >= 0 ? &reqs[b->owner[k]] : NULL;
            if (r != NULL && r->write && r->done && r->rc == IDP_OK) {
                r->wait_rc = wrc;
                r->err = e;
            }
        }
        freeReplyObject(wait);
    }
    return rc;
}

/* One round: every node's pipeline written, then every node's replies
 * read. Returns IDP_OK or IDP_ENOMEM. */
static int rc_round(rc_store *s, rc_req *reqs, size_t n, const char *what)
{
    size_t nnodes = s->nnodes;   /* redirections may add nodes */
    rc_batch *b = calloc(nnodes, sizeof *b);
    /* per request: ASKING and its words; per node: a WAIT */
    const char **argv = calloc(n * (RC_REQ_WORDS + 1) + nnodes * 3,
                               sizeof *argv);
    int *argcs = calloc(n * 2 + nnodes, sizeof *argcs);
    long *owner = calloc(n * 2 + nnodes, sizeof *owner);
    redisReply **replies = calloc(n * 2 + nnodes, sizeof *replies);
    int rc = IDP_OK;
    if (b == NULL || argv == NULL || argcs == NULL || owner == NULL ||
        replies == NULL) {
        rc = IDP_ENOMEM;
        goto out;
    }
    size_t words = 0, cmds = 0;
    for (size_t j = 0; j < nnodes; j++) {
        b[j] = (rc_batch){.node = (int)j, .argv = argv + words,
                          .argcs = argcs + cmds, .owner = owner + cmds};
        rc_batch_fill(s, &b[j], reqs, n);
        words += b[j].nword;
        cmds += b[j].ncmd;
        if (b[j].ncmd == 0)
            continue;
        idp_error e;
        b[j].t0 = rd_now_ms();
        int src = rd_send_start(&s->nodes[j]->rd, what, b[j].ncmd,
                                b[j].argcs, b[j].argv, &e);
        if (src != IDP_OK)
            rc_batch_failed(s, &b[j], reqs, &e, src);
        else
            b[j].started = 1;
    }
    for (size_t j = 0; j < nnodes; j++) {
        if (!b[j].started)
            continue;
        idp_error e;
        int frc = rd_send_finish(&s->nodes[j]->rd, what, b[j].ncmd, replies,
                                 &e);
        if (frc != IDP_OK)
            rc_batch_failed(s, &b[j], reqs, &e, frc);
        else if (rc_batch_take(s, &b[j], reqs, replies, what) != IDP_OK)
            rc = IDP_ENOMEM;
    }
out:
    free(b);
    free(argv);
    free(argcs);
    free(owner);
    free(replies);
    return rc;
}

/*
 * Runs the requests to their final replies (or errors), following
 * redirections. Every request ends done: rc and reply, or rc and err
 * (IDP_ENOMEM for those pending when a round could not be laid out).
 */
static void rc_run(rc_store *s, rc_req *reqs, size_t n, const char *what)
{
    int rc = IDP_OK;
    for (int round = 0; round < RC_ROUNDS && rc == IDP_OK; round++) {
        if (rc_route(s, reqs, n) == 0)
            return;
        rc = rc_round(s, reqs, n, what);
    }
    for (size_t i = 0; i < n; i++) {
        rc_req *r = &reqs[i];
        if (r->done)
            continue;
        char last[128];
        snprintf(last, sizeof last, "%s", r->err.msg);
        if (rc == IDP_ENOMEM)
            idp_plugin_error(&r->err, IDP_ENOMEM, "out of memory routing "
                             "'%s'", r->key);
        else
            idp_plugin_error(&r->err, IDP_ESTORE, "%s '%s' was redirected %d "
                             "times, the last by %s: %s", r->argv[0], r->key,
                             RC_ROUNDS, s->nodes[r->node]->rd.where, last);
        r->done = 1;
        r->rc = r->err.code;
    }
}

/* Frees the replies the requests kept. */
static void rc_reqs_free(rc_req *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (reqs[i].reply != NULL)
            freeReplyObject(reqs[i].reply);
}

/* A request without a reply: its reason into err and its code; IDP_OK
 * when it has a reply to judge. */
static int rc_req_failed(const rc_req *r, idp_error *err)
{
    if (r->rc != IDP_OK && err != NULL)
        *err = r->err;
    return r->rc;
}

/* The reply judged `rc`; a write judged good whose WAIT fell short fails
 * with the WAIT's reason. */
static int rc_req_waited(const rc_req *r, int rc, idp_error *err)
{
    if (rc != IDP_OK || r->wait_rc == IDP_OK)
        return rc;
    if (err != NULL)
        *err = r->err;
    return r->wait_rc;
}

/* Reads the slot map again when a redirection or a lost connection made
 * it doubtful. A failure with a map in hand is not fatal: the commands
 * are sent by the old one and redirected. */
static int rc_prepare(rc_store *s, idp_error *err)
{
    if (!s->stale)
        return IDP_OK;
    idp_error e;
    int rc = rc_refresh(s, &e);
    if (rc == IDP_OK || rc != IDP_ENOMEM)
        return IDP_OK;
    if (err != NULL)
        *err = e;
    return rc;
}

/* ---- The methods --------------------------------------------------------- */

static int rc_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    rc_store *s = store;
    int rc = rd_check_n(key, n, err);
    if (rc != IDP_OK || (rc = rc_prepare(s, err)) != IDP_OK)
        return rc;
    char num[24], what[256];
    snprintf(num, sizeof num, "%" PRIu64, n);
    snprintf(what, sizeof what, "INCRBY '%s' %s", key, num);
    rc_req r;
    rc_req_init(&r, 1, 1, 3, (const char *[]){"INCRBY", key, num});
    rc_run(s, &r, 1, what);
    if ((rc = rc_req_failed(&r, err)) == IDP_OK)
        rc = rc_req_waited(&r, rd_incr_reply(&s->nodes[r.node]->rd, key, n,
                                             r.reply, value, err), err);
    rc_reqs_free(&r, 1);
    return rc;
}

/* Every op's increment routed to its master, one pipeline per master in
 * one round trip; each op gets its own status and reason (err_ops[i]). */
static int rc_incr_many(void *store, idp_incr_op *ops, size_t nops,
                        idp_error *err_ops)
{
    rc_store *s = store;
    int rc = rc_prepare(s, err_ops);
    if (rc != IDP_OK)
        return rc;
    rc_req *reqs = calloc(nops, sizeof *reqs);
    char (*nums)[24] = calloc(nops, sizeof *nums);
    size_t *idx = calloc(nops, sizeof *idx);
    size_t n = 0;
    if (reqs == NULL || nums == NULL || idx == NULL) {
        rc = idp_plugin_error(err_ops, IDP_ENOMEM, "out of memory for %zu "
                              "increments", nops);
        goto out;
    }
    for (size_t i = 0; i < nops; i++) {
        idp_error *e = err_ops != NULL ? &err_ops[i] : NULL;
        if ((ops[i].status = rd_check_n(ops[i].key, ops[i].n, e)) != IDP_OK)
            continue;
        snprintf(nums[n], sizeof nums[n], "%" PRIu64, ops[i].n);
        rc_req_init(&reqs[n], 1, 1, 3,
                    (const char *[]){"INCRBY", ops[i].key, nums[n]});
        idx[n++] = i;
    }
    char what[64];
    snprintf(what, sizeof what, "a pipeline of %zu INCRBY", n);
    if (n > 0)
        rc_run(s, reqs, n, what);
    for (size_t j = 0; j < n; j++) {
        rc_req *r = &reqs[j];
        idp_incr_op *op = &ops[idx[j]];
        idp_error *e = err_ops != NULL ? &err_ops[idx[j]] : NULL;
        if ((op->status = rc_req_failed(r, e)) == IDP_OK)
            op->status = rc_req_waited(r, rd_incr_reply(
                                           &s->nodes[r->node]->rd, op->key,
                                           op->n, r->reply, &op->value, e),
                                       e);
    }
out:
    if (reqs != NULL)
        rc_reqs_free(reqs, n);
    free(reqs);
    free(nums);
    free(idx);
    return rc;
}

static int rc_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    rc_store *s = store;
    int rc = rc_prepare(s, err);
    if (rc != IDP_OK)
        return rc;
    char what[256];
    snprintf(what, sizeof what, "GET '%s'", key);
    rc_req r;
    rc_req_init(&r, 0, 1, 2, (const char *[]){"GET", key});
    rc_run(s, &r, 1, what);
    if ((rc = rc_req_failed(&r, err)) == IDP_OK)
        rc = rd_get_reply(&s->nodes[r.node]->rd, key, r.reply, value, exists,
                          err);
    rc_reqs_free(&r, 1);
    return rc;
}

static int rc_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    rc_store *s = store;
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%s' to %"
                                PRIu64 ": values stay below 2^63", key, value);
    int rc = rc_prepare(s, err);
    if (rc != IDP_OK)
        return rc;
    char num[24], what[256];
    snprintf(num, sizeof num, "%" PRIu64, value);
    snprintf(what, sizeof what, "raising '%s' to %s (EVAL)", key, num);
    const char *argv[5];
    rd_raise_argv(key, num, argv);
    rc_req r;
    rc_req_init(&r, 1, 3, 5, argv);   /* EVAL script 1 KEY value */
    rc_run(s, &r, 1, what);
    if ((rc = rc_req_failed(&r, err)) == IDP_OK)
        rc = rc_req_waited(&r, rd_raise_reply(&s->nodes[r.node]->rd, what,
                                              key, r.reply, result, err),
                           err);
    rc_reqs_free(&r, 1);
    return rc;
}

/* Every op's compare-and-set EVAL routed to its slot's master, one
 * pipeline per master in one round trip, a WAIT behind each when
 * wait_replicas is set. An op failed by its master or its WAIT gets that
 * status (a WAIT short of replicas leaves the lowering applied there). */
static int rc_lower(void *store, idp_lower_op *ops, size_t nops,
                    idp_error *err)
{
    rc_store *s = store;
    int rc = rc_prepare(s, err);
    if (rc != IDP_OK)
        return rc;
    rc_req *reqs = calloc(nops, sizeof *reqs);
    char (*nums)[2][24] = calloc(nops, sizeof *nums);
    size_t *idx = calloc(nops, sizeof *idx);
    size_t n = 0;
    if (reqs == NULL || nums == NULL || idx == NULL) {
        rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                              "counters to give back", nops);
        goto out;
    }
    for (size_t i = 0; i < nops; i++) {
        ops[i].done = 0;
        if ((ops[i].status = rd_lower_check(&ops[i], NULL)) != IDP_OK)
            continue;
        snprintf(nums[n][0], sizeof nums[n][0], "%" PRIu64, ops[i].expect);
        snprintf(nums[n][1], sizeof nums[n][1], "%" PRIu64, ops[i].value);
        const char *argv[RC_REQ_WORDS];
        rd_lower_argv(ops[i].key, nums[n][0], nums[n][1], argv);
        rc_req_init(&reqs[n], 1, 3, RC_REQ_WORDS, argv); /* KEYS[1]: 3 */
        idx[n++] = i;
    }
    char what[64];
    snprintf(what, sizeof what, "a pipeline of %zu lowerings (EVAL)", n);
    if (n > 0)
        rc_run(s, reqs, n, what);
    for (size_t j = 0; j < n; j++) {
        rc_req *r = &reqs[j];
        idp_lower_op *op = &ops[idx[j]];
        idp_error e;
        if ((op->status = rc_req_failed(r, &e)) == IDP_OK)
            op->status = rc_req_waited(r, rd_lower_reply(
                                           &s->nodes[r->node]->rd, op->key,
                                           r->reply, &op->done, &e), &e);
    }
out:
    if (reqs != NULL)
        rc_reqs_free(reqs, n);
    free(reqs);
    free(nums);
    free(idx);
    return rc;
}

/* ---- Listing every master ------------------------------------------------ */

/* The keys under the prefix on every master, sorted, without duplicates
 * (a key being migrated may be on two). */
static int rc_scan_all(rc_store *s, const char *prefix, rd_keys *keys,
                       idp_error *err)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        if (!rc_is_master(s, i))
            continue;
        rd_store *node = &s->nodes[i]->rd;
        int rc = rd_ready(node, err);
        if (rc == IDP_OK)
            rc = rd_scan(node, prefix, keys, err);
        if (rc != IDP_OK) {
            s->stale = 1;
            return rc;
        }
    }
    rd_keys_sort(keys);
    return IDP_OK;
}

/* Reads the values of keys[at..at+n) with routed GETs and calls cb. */
static int rc_list_chunk(rc_store *s, char **keys, size_t n, idp_list_cb cb,
                         void *ud, idp_error *err)
{
    rc_req *reqs = calloc(n, sizeof *reqs);
    if (reqs == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        rc_req_init(&reqs[i], 0, 1, 2, (const char *[]){"GET", keys[i]});
    rc_run(s, reqs, n, "GET (list)");
    int rc = IDP_OK;
    for (size_t i = 0; i < n && rc == IDP_OK; i++) {
        rc_req *r = &reqs[i];
        rd_store *node = &s->nodes[r->node]->rd;
        if ((rc = rc_req_failed(r, err)) != IDP_OK)
            break;
        if (r->reply->type == REDIS_REPLY_ERROR &&
                 strncmp(r->reply->str, "WRONGTYPE", 9) != 0)
            rc = idp_plugin_error(err, IDP_ESTORE, "GET '%s' on %s failed: "
                                  "%s", keys[i], node->where, r->reply->str);
        else
            rc = rd_list_value(node, keys[i], r->reply, cb, ud);
    }
    rc_reqs_free(reqs, n);
    free(reqs);
    return rc;
}

static int rc_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                   idp_error *err)
{
    rc_store *s = store;
    rd_keys keys = {0};
    int rc = rc_prepare(s, err);
    if (rc == IDP_OK)
        rc = rc_scan_all(s, prefix, &keys, err);
    for (size_t at = 0; rc == IDP_OK && at < keys.n; at += RC_LIST_CHUNK) {
        size_t n = keys.n - at < RC_LIST_CHUNK ? keys.n - at : RC_LIST_CHUNK;
        rc = rc_list_chunk(s, keys.v + at, n, cb, ud, err);
    }
    rd_keys_free(&keys);
    return rc;
}

/* INCRBY calls summed over the masters (INFO commandstats of each). */
static int rc_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    rc_store *s = store;
    int rc = rc_prepare(s, err);
    *count = 0;
    for (size_t i = 0; i < s->nnodes && rc == IDP_OK; i++) {
        uint64_t one = 0;
        if (rc_is_master(s, i) &&
            (rc = rd_roundtrips(&s->nodes[i]->rd, &one, err)) == IDP_OK)
            *count += one;
    }
    return rc;
}

/* ---- Open and close ---------------------------------------------------- */

static void rc_free(rc_store *s, int forget)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        if (forget)
            rd_forget(&s->nodes[i]->rd);
        else
            rd_drop(&s->nodes[i]->rd);
        free(s->nodes[i]);
    }
    free(s->nodes);
    free(s);
}

static void rc_close(void *store)
{
    rc_free(store, 0);
}

/* In a child after fork(): frees the parent's handle without a byte on
 * any of its connections (rd_forget). */
static void rc_drop_child(void *store)
{
    rc_free(store, 1);
}

/* The seeds from the URI's hosts; a cluster has only db 0, so no path. */
static int rc_seeds(rc_store *s, idp_error *err)
{
    const idp_uri *u = s->host->uri;
    if (u->nhosts == 0)
        return idp_plugin_error(err, IDP_EINVAL, "the URI names no node "
                                "(expected redis-cluster://host[:port][,"
                                "host[:port]...])");
    if (u->path[0] != '\0' && strcmp(u->path, "/") != 0)
        return idp_plugin_error(err, IDP_EINVAL, "the URI has a path '%s': "
                                "a Redis Cluster has only db 0 (expected "
                                "redis-cluster://host[:port][,...])",
                                u->path);
    for (size_t i = 0; i < u->nhosts; i++) {
        int port = u->hosts[i].port != 0 ? (int)u->hosts[i].port
                                         : RC_DEFAULT_PORT;
        if (rc_node_at(s, u->hosts[i].host, strlen(u->hosts[i].host),
                       port) < 0)
            return idp_plugin_error(err, IDP_EINVAL, "the host '%s' is "
                                    "too long", u->hosts[i].host);
    }
    return IDP_OK;
}

/* Every master gets setup.c's checks; slots nobody serves are warned of. */
static int rc_check_masters(rc_store *s, idp_error *err)
{
    size_t holes = 0;
    for (size_t k = 0; k < RC_SLOTS; k++)
        holes += s->slot[k] < 0;
    if (holes > 0)
        s->host->log(s->host, IDP_LOG_WARN, "%zu of the cluster's %d slots "
                     "have no node: counters there fail until they are "
                     "assigned", holes, RC_SLOTS);
    for (size_t i = 0; i < s->nnodes; i++) {
        int rc;
        if (rc_is_master(s, i) &&
            (rc = rd_check_server(&s->nodes[i]->rd, 1, err)) != IDP_OK)
            return rc;
    }
    return IDP_OK;
}

static int rc_open(const idp_host *host, void **store, idp_error *err)
{
    rc_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
    for (size_t k = 0; k < RC_SLOTS; k++)
        s->slot[k] = -1;
    rd_setup(&s->base, host);
    int rc;
    if ((rc = rd_credentials(&s->base, err)) != IDP_OK ||
        (rc = rc_seeds(s, err)) != IDP_OK ||
        (rc = rc_refresh(s, err)) != IDP_OK ||
        (rc = rc_check_masters(s, err)) != IDP_OK) {
        rc_close(s);
        return rc;
    }
    *store = s;
    return IDP_OK;
}

static const idp_plugin_testing rc_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = NULL,
    .roundtrips = rc_roundtrips,
    .control = NULL,
};

static const idp_plugin rc_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "redis-cluster",
    .schemes = rc_schemes,
    .params = rc_params,
    .open = rc_open,
    .close = rc_close,
    .incr = rc_incr,
    .get = rc_get,
    .incr_many = rc_incr_many,
    .raise_to = rc_raise_to,
    .list = rc_list,
    .drop = rc_drop_child,
    .testing = &rc_testing,
    .lower = rc_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &rc_plugin;
}
