/*
 * slots.c - the key space of a Redis Cluster for redis-cluster: the hash
 * slot of a key (CRC16), the nodes by address, the slot map read with
 * CLUSTER SLOTS, and the MOVED and ASK redirections that correct it.
 */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster_internal.h"

/* ---- Hash slots ---------------------------------------------------------- */

/* CRC16-CCITT as XMODEM computes it (polynomial 0x1021, initial 0, no
 * reflection): the Redis Cluster spec's; "123456789" gives 0x31C3. A
 * bitwise loop: keys are short and this runs once per command. */
static uint16_t rc_crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rc_key_slot(const char *key, size_t len)
{
    /* a hash tag: what lies between the first '{' and the next '}', when
     * it is not empty */
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t at = (size_t)(open - key) + 1;
        const char *close = memchr(key + at, '}', len - at);
        if (close != NULL && close > key + at) {
            key += at;
            len = (size_t)(close - key);
        }
    }
    return rc_crc16(key, len) & (RC_SLOTS - 1);
}

/* ---- Nodes --------------------------------------------------------------- */

int rc_node_at(rc_store *s, const char *host, size_t hostlen, int port)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i]->rd.port == port &&
            strlen(s->nodes[i]->host) == hostlen &&
            memcmp(s->nodes[i]->host, host, hostlen) == 0)
            return (int)i;
    if (hostlen >= sizeof s->nodes[0]->host || s->nnodes >= INT16_MAX)
        return -1;
    if (s->nnodes == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        rc_node **v = realloc(s->nodes, cap * sizeof *v);
        if (v == NULL)
            return -1;
        s->nodes = v;
        s->cap = cap;
    }
    rc_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        return -1;
    n->rd = s->base;
    n->rd.c = NULL;
    memcpy(n->host, host, hostlen);
    n->host[hostlen] = '\0';
    n->rd.hostname = n->host;
    n->rd.port = port;
    int v6 = memchr(host, ':', hostlen) != NULL;
    snprintf(n->rd.where, sizeof n->rd.where, "%s%s%s:%d", v6 ? "[" : "",
             n->host, v6 ? "]" : "", port);
    s->nodes[s->nnodes] = n;
    return (int)s->nnodes++;
}

int rc_is_master(const rc_store *s, size_t i)
{
    for (size_t k = 0; k < RC_SLOTS; k++)
        if (s->slot[k] == (int16_t)i)
            return 1;
    return 0;
}

/* ---- The slot map -------------------------------------------------------- */

/* An integer element of a reply, or -1. */
static long long rc_int(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
}

/*
 * Fills map[] from a CLUSTER SLOTS reply of node `from`: each entry is
 * [first, last, [host, port, id...], replicas...]. An empty or "?" host
 * is the node asked (it does not know its own address). Returns IDP_OK or
 * an error describing what does not fit.
 */
static int rc_read_slots(rc_store *s, int from, const redisReply *r,
                         int16_t *map, idp_error *err)
{
    char shown[64];
    const char *where = s->nodes[from]->rd.where;
    if (r->type == REDIS_REPLY_ERROR)
        return idp_plugin_error(err, IDP_ESTORE, "CLUSTER SLOTS on %s: %s%s",
                                where, r->str,
                                strstr(r->str, "cluster support disabled")
                                    ? " (not a cluster node: use redis://)"
                                    : "");
    if (r->type != REDIS_REPLY_ARRAY)
        return idp_plugin_error(err, IDP_ESTORE, "CLUSTER SLOTS on %s "
                                "answered %s", where,
                                rd_describe(r, shown, sizeof shown));
    for (size_t i = 0; i < RC_SLOTS; i++)
        map[i] = -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING)
            return idp_plugin_error(err, IDP_ESTORE, "CLUSTER SLOTS on %s: "
                                    "entry %zu is not [first, last, [host, "
                                    "port, ...], ...]", where, i);
        long long first = rc_int(e->element[0]), last = rc_int(e->element[1]);
        const redisReply *h = e->element[2]->element[0];
        long long port = rc_int(e->element[2]->element[1]);
        if (first < 0 || last < first || last >= RC_SLOTS || port <= 0 ||
            port > 65535)
            return idp_plugin_error(err, IDP_ESTORE, "CLUSTER SLOTS on %s: "
                                    "entry %zu has slots %lld-%lld on port "
                                    "%lld", where, i, first, last, port);
        const char *host = h->str;
        size_t hostlen = h->len;
        if (hostlen == 0 || (hostlen == 1 && host[0] == '?')) {
            host = s->nodes[from]->host;
            hostlen = strlen(host);
        }
        int node = rc_node_at(s, host, hostlen, (int)port);
        if (node < 0)
            return idp_plugin_error(err, IDP_ENOMEM, "out of memory (or a "
                                    "host name too long) for a node of %s",
                                    where);
        for (long long k = first; k <= last; k++)
            map[k] = (int16_t)node;
    }
    return IDP_OK;
}

/* Asks node i for the map; IDP_OK with s->slot replaced. */
static int rc_refresh_from(rc_store *s, size_t i, int16_t *map,
                           idp_error *err)
{
    const char *argv[] = {"CLUSTER", "SLOTS"};
    redisReply *r;
    int rc = rd_ready(&s->nodes[i]->rd, err);
    if (rc == IDP_OK)
        rc = rd_cmd(&s->nodes[i]->rd, "CLUSTER SLOTS", 2, argv, &r, err);
    if (rc != IDP_OK)
        return rc;
    rc = rc_read_slots(s, (int)i, r, map, err);
    freeReplyObject(r);
    if (rc == IDP_OK)
        memcpy(s->slot, map, sizeof s->slot);
    return rc;
}

int rc_refresh(rc_store *s, idp_error *err)
{
    int16_t *map = malloc(sizeof s->slot);
    if (map == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    char why[512] = "";
    size_t at = 0;
    int rc = IDP_ESTORE;
    /* masters first: they are the likeliest to be up; then the others */
    for (int pass = 0; pass < 2 && rc != IDP_OK; pass++) {
        size_t n = s->nnodes; /* nodes the map adds are not asked now */
        for (size_t i = 0; i < n && rc != IDP_OK; i++) {
            if (rc_is_master(s, i) != (pass == 0))
                continue;
            idp_error e = {0, ""};
            if ((rc = rc_refresh_from(s, i, map, &e)) == IDP_OK)
                break;
            int k = snprintf(why + at, sizeof why - at, "%s%s",
                             at ? "; " : "", e.msg);
            at += k > 0 && (size_t)k < sizeof why - at ? (size_t)k : 0;
            if (rc == IDP_ENOMEM) {
                if (err != NULL)
                    *err = e;
                free(map);
                return rc;
            }
        }
    }
    free(map);
    if (rc != IDP_OK)
        return idp_plugin_error(err, rc, "no node gave the cluster's slot "
                                "map: %s", why);
    s->stale = 0;
    return IDP_OK;
}

/* ---- Redirections -------------------------------------------------------- */

int rc_redirect(rc_store *s, int from, const redisReply *r, int *node)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    int kind = strncmp(r->str, "MOVED ", 6) == 0 ? 1
               : strncmp(r->str, "ASK ", 4) == 0 ? 2 : 0;
    if (kind == 0)
        return 0;
    /* "MOVED 3999 127.0.0.1:6381": the address after the second space,
     * its port after the last ':' (an IPv6 host has colons of its own);
     * an empty host is the node that answered */
    char *end;
    long slot = strtol(r->str + (kind == 1 ? 6 : 4), &end, 10);
    const char *addr = *end == ' ' ? end + 1 : NULL;
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
    long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
    if (slot < 0 || slot >= RC_SLOTS || colon == NULL || port <= 0 ||
        port > 65535)
        return 0;   /* not a redirection we can follow: the reply stands */
    const char *host = addr;
    size_t hostlen = (size_t)(colon - addr);
    if (hostlen == 0) {
        host = s->nodes[from]->host;
        hostlen = strlen(host);
    }
    if ((*node = rc_node_at(s, host, hostlen, (int)port)) < 0)
        return -1;
    if (kind == 1) {
        s->slot[slot] = (int16_t)*node;
        s->stale = 1;
    }
    return kind;
}
