/*
 * raw.c - bare hiredis and libmemcached clients for the hot-path
 * comparison. Each does what its plugin does on the wire for one fetch and
 * nothing else: redis INCRBY over one connection; memcached a binary
 * increment with TCP_NODELAY, ketama over the URI's servers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_LIBMEMCACHED
#include <libmemcached/memcached.h>
#endif

#include "raw.h"

struct raw_client {
    const char *name;
#ifdef HAVE_HIREDIS
    redisContext *rc;
#endif
#ifdef HAVE_LIBMEMCACHED
    memcached_st *mc;
#endif
};

#ifdef HAVE_HIREDIS
/* Percent-decodes [s, s+n) into out (at least n+1 bytes). */
static void decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

static int redis_ok(raw_client *r, redisReply *rep, const char *what,
                    char *msg, size_t len)
{
    if (rep == NULL) {
        snprintf(msg, len, "hiredis: %s: %s", what, r->rc->errstr);
        return -1;
    }
    int ok = rep->type != REDIS_REPLY_ERROR;
    if (!ok)
        snprintf(msg, len, "hiredis: %s: %s", what, rep->str);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static raw_client *redis_open(raw_client *r, const bench_target *t,
                              unsigned timeout_ms, char *msg, size_t len)
{
    char host[256];
    int port;
    target_host(t, 0, host, sizeof host, &port);
    struct timeval tv = {(time_t)(timeout_ms / 1000),
                         (suseconds_t)(timeout_ms % 1000) * 1000};
    r->name = "hiredis";
    r->rc = redisConnectWithTimeout(host, port, tv);
    if (r->rc == NULL || r->rc->err) {
        snprintf(msg, len, "hiredis: cannot connect to %s:%d: %s", host, port,
                 r->rc != NULL ? r->rc->errstr : "out of memory");
        return NULL;
    }
    redisSetTimeout(r->rc, tv);
    if (t->userinfo != NULL && strchr(t->userinfo, ':') != NULL) {
        const char *colon = strchr(t->userinfo, ':');
        char user[256], pass[256];
        decode(t->userinfo, (size_t)(colon - t->userinfo), user);
        decode(colon + 1, strlen(colon + 1), pass);
        redisReply *rep = user[0] != '\0'
                              ? redisCommand(r->rc, "AUTH %s %s", user, pass)
                              : redisCommand(r->rc, "AUTH %s", pass);
        if (redis_ok(r, rep, "AUTH", msg, len) != 0)
            return NULL;
    }
    const char *db = target_param(t, "db");
    long n = db != NULL ? atol(db) : (t->path[0] == '/' ? atol(t->path + 1) : 0);
    if (n != 0 &&
        redis_ok(r, redisCommand(r->rc, "SELECT %ld", n), "SELECT", msg, len) != 0)
        return NULL;
    return r;
}
#endif

#ifdef HAVE_LIBMEMCACHED
static raw_client *memcached_open_(raw_client *r, const bench_target *t,
                                   unsigned timeout_ms, char *msg, size_t len)
{
    r->name = "libmemcached";
    if ((r->mc = memcached_create(NULL)) == NULL) {
        snprintf(msg, len, "libmemcached: out of memory");
        return NULL;
    }
    memcached_behavior_set(r->mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
    memcached_behavior_set(r->mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(r->mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
                           MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
    memcached_behavior_set(r->mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, timeout_ms);
    memcached_behavior_set(r->mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, timeout_ms);
    for (int i = 0; i < t->nhosts; i++) {
        char host[256];
        int port;
        target_host(t, i, host, sizeof host, &port);
        memcached_return_t rc = memcached_server_add(r->mc, host, (in_port_t)port);
        if (rc != MEMCACHED_SUCCESS) {
            snprintf(msg, len, "libmemcached: server %s:%d: %s", host, port,
                     memcached_strerror(r->mc, rc));
            return NULL;
        }
    }
    return r;
}
#endif

raw_client *raw_open(const bench_target *t, unsigned timeout_ms,
                     int *unsupported, char *msg, size_t len)
{
    *unsupported = 0;
    raw_client *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(msg, len, "out of memory");
        return NULL;
    }
    raw_client *ok = NULL;
    int known = 0;
#ifdef HAVE_HIREDIS
    if (strcmp(t->scheme, "redis") == 0) {
        known = 1;
        ok = redis_open(r, t, timeout_ms, msg, len);
    }
#endif
#ifdef HAVE_LIBMEMCACHED
    if (strcmp(t->scheme, "memcached") == 0) {
        known = 1;
        ok = memcached_open_(r, t, timeout_ms, msg, len);
    }
#endif
    if (!known) {
        *unsupported = 1;
        snprintf(msg, len, "no raw client for %s in this build (hiredis and "
                 "libmemcached are)", t->scheme);
    }
    if (ok == NULL)
        raw_close(r);
    return ok;
}

const char *raw_name(const raw_client *r)
{
    return r->name;
}

int raw_prepare(raw_client *r, const char *key, char *msg, size_t len)
{
#ifdef HAVE_HIREDIS
    if (r->rc != NULL)
        return redis_ok(r, redisCommand(r->rc, "SETNX %s 0", key), "SETNX",
                        msg, len);
#endif
#ifdef HAVE_LIBMEMCACHED
    if (r->mc != NULL) {
        memcached_return_t rc = memcached_add(r->mc, key, strlen(key), "0", 1,
                                              0, 0);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_DATA_EXISTS &&
            rc != MEMCACHED_NOTSTORED) {
            snprintf(msg, len, "libmemcached: add %s: %s", key,
                     memcached_strerror(r->mc, rc));
            return -1;
        }
        return 0;
    }
#endif
    (void)key;
    snprintf(msg, len, "no raw client");
    return -1;
}

int raw_incr(raw_client *r, const char *key, uint64_t *value, char *msg,
             size_t len)
{
#ifdef HAVE_HIREDIS
    if (r->rc != NULL) {
        redisReply *rep = redisCommand(r->rc, "INCRBY %s 1", key);
        if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
            *value = (uint64_t)rep->integer;
            freeReplyObject(rep);
            return 0;
        }
        if (rep != NULL && rep->type != REDIS_REPLY_ERROR) {
            snprintf(msg, len, "hiredis: INCRBY %s: not an integer reply", key);
            freeReplyObject(rep);
            return -1;
        }
        redis_ok(r, rep, "INCRBY", msg, len);
        return -1;
    }
#endif
#ifdef HAVE_LIBMEMCACHED
    if (r->mc != NULL) {
        size_t klen = strlen(key);
        memcached_return_t rc = memcached_increment_by_key(r->mc, key, klen,
                                                           key, klen, 1, value);
        if (rc == MEMCACHED_SUCCESS)
            return 0;
        snprintf(msg, len, "libmemcached: incr %s: %s", key,
                 memcached_strerror(r->mc, rc));
        return -1;
    }
#endif
    (void)key;
    (void)value;
    snprintf(msg, len, "no raw client");
    return -1;
}

void raw_close(raw_client *r)
{
    if (r == NULL)
        return;
#ifdef HAVE_HIREDIS
    if (r->rc != NULL)
        redisFree(r->rc);
#endif
#ifdef HAVE_LIBMEMCACHED
    if (r->mc != NULL)
        memcached_free(r->mc);
#endif
    free(r);
}
