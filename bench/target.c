/*
 * target.c - taking a store URI apart and putting it back together with
 * the bench's parameters and delay proxies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "target.h"

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* The length of the key of a "key=value" item. */
static size_t key_len(const char *kv)
{
    return strcspn(kv, "=");
}

static int same_key(const char *a, const char *b)
{
    size_t n = key_len(a);
    return n == key_len(b) && strncmp(a, b, n) == 0;
}

static int oom(char *msg, size_t len)
{
    snprintf(msg, len, "out of memory");
    return -1;
}

/* The port a network store listens on when its URI gives none; 0 for a
 * store that is not reached over TCP (mem, sqlite) or that the delay proxy
 * cannot stand in front of (a Redis Cluster or Sentinel redirects the
 * client to addresses of its own). */
static int default_port(const char *scheme)
{
    if (strcmp(scheme, "redis") == 0)
        return 6379;
    if (strcmp(scheme, "memcached") == 0)
        return 11211;
    if (strcmp(scheme, "postgresql") == 0 || strcmp(scheme, "postgres") == 0)
        return 5432;
    if (strcmp(scheme, "mysql") == 0 || strcmp(scheme, "mariadb") == 0)
        return 3306;
    return 0;
}

int target_parse(const char *uri, bench_target *t, char *msg, size_t len)
{
    memset(t, 0, sizeof *t);
    const char *sep = strstr(uri, "://");
    if (sep == NULL || sep == uri || (size_t)(sep - uri) >= sizeof t->scheme) {
        snprintf(msg, len, "URI '%s': expected scheme://...", uri);
        return -1;
    }
    memcpy(t->scheme, uri, (size_t)(sep - uri));
    t->network = default_port(t->scheme) != 0;
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?");
    const char *at = NULL;
    for (const char *p = a; p < a + alen; p++)
        if (*p == '@')
            at = p;
    const char *hosts = a;
    if (at != NULL) {
        if ((t->userinfo = dup_n(a, (size_t)(at - a))) == NULL)
            goto nomem;
        hosts = at + 1;
    }
    for (const char *h = hosts; h < a + alen;) {
        size_t n = strcspn(h, ",/?");
        if (t->nhosts == TARGET_MAX_HOSTS) {
            snprintf(msg, len, "URI '%s': more than %d hosts", uri,
                     TARGET_MAX_HOSTS);
            target_free(t);
            return -1;
        }
        if ((t->hosts[t->nhosts++] = dup_n(h, n)) == NULL)
            goto nomem;
        h += n;
        if (*h == ',')
            h++;
    }
    const char *path = a + alen;
    size_t plen = strcspn(path, "?");
    if ((t->path = dup_n(path, plen)) == NULL)
        goto nomem;
    if (path[plen] == '?') {
        const char *q = path + plen + 1;
        t->query = calloc(strlen(q) / 2 + 1, sizeof *t->query);
        if (t->query == NULL)
            goto nomem;
        while (*q != '\0') {
            size_t n = strcspn(q, "&");
            if (n > 0 && (t->query[t->nquery++] = dup_n(q, n)) == NULL)
                goto nomem;
            q += n;
            if (*q == '&')
                q++;
        }
    }
    /* shown: the user info's password becomes "***" */
    const char *colon = t->userinfo != NULL ? strchr(t->userinfo, ':') : NULL;
    if (colon != NULL)
        snprintf(t->shown, sizeof t->shown, "%s://%.*s:***@%s", t->scheme,
                 (int)(colon - t->userinfo), t->userinfo, hosts);
    else
        snprintf(t->shown, sizeof t->shown, "%s", uri);
    return 0;
nomem:
    target_free(t);
    return oom(msg, len);
}

const char *target_param(const bench_target *t, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < t->nquery; i++)
        if (key_len(t->query[i]) == n && strncmp(t->query[i], key, n) == 0)
            return t->query[i] + n + (t->query[i][n] == '=');
    return NULL;
}

int target_set(bench_target *t, const char *kv)
{
    char *copy = strdup(kv);
    if (copy == NULL)
        return -1;
    for (size_t i = 0; i < t->nquery; i++) {
        if (same_key(t->query[i], kv)) {
            free(t->query[i]);
            t->query[i] = copy;
            return 0;
        }
    }
    char **grown = realloc(t->query, (t->nquery + 1) * sizeof *grown);
    if (grown == NULL) {
        free(copy);
        return -1;
    }
    t->query = grown;
    t->query[t->nquery++] = copy;
    return 0;
}

/* Splits "host:port" ("[v6]:port" too); port 0 when none is given. */
static void split_host(const char *h, char *host, size_t len, int *port)
{
    const char *colon = strrchr(h, ':');
    const char *bracket = strrchr(h, ']');
    if (colon != NULL && (bracket == NULL || colon > bracket)) {
        snprintf(host, len, "%.*s", (int)(colon - h), h);
        *port = atoi(colon + 1);
    } else {
        snprintf(host, len, "%s", h);
        *port = 0;
    }
}


void target_host(const bench_target *t, int i, char *host, size_t len,
                 int *port)
{
    if (t->proxy[i] != NULL) {
        snprintf(host, len, "127.0.0.1");
        *port = bench_proxy_port(t->proxy[i]);
        return;
    }
    split_host(t->hosts[i], host, len, port);
    if (*port == 0 && t->network)
        *port = default_port(t->scheme);
}

int target_check_loopback(const bench_target *t, char *msg, size_t len)
{
    if (t->nhosts == 0) {
        snprintf(msg, len, "URI '%s': no host to put behind the delay proxy",
                 t->shown);
        return -1;
    }
    for (int i = 0; i < t->nhosts; i++) {
        char host[256];
        int port;
        split_host(t->hosts[i], host, sizeof host, &port);
        if (port == 0)
            port = default_port(t->scheme);
        if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0) {
            snprintf(msg, len, "URI '%s': host '%s': the delay proxy forwards "
                     "to 127.0.0.1 only; give the store as 127.0.0.1 or drop "
                     "--rtt-ms", t->shown, host);
            return -1;
        }
        if (port <= 0 || port > 65535) {
            snprintf(msg, len, "URI '%s': host '%s' has no usable port",
                     t->shown, t->hosts[i]);
            return -1;
        }
    }
    return 0;
}

int target_proxy_start(bench_target *t, unsigned rtt_ms, char *msg, size_t len)
{
    if (target_check_loopback(t, msg, len) != 0)
        return -1;
    for (int i = 0; i < t->nhosts; i++) {
        char host[256];
        int port;
        split_host(t->hosts[i], host, sizeof host, &port);
        if (port == 0)
            port = default_port(t->scheme);
        if ((t->proxy[i] = bench_proxy_start(port, rtt_ms, msg, len)) == NULL) {
            target_proxy_stop(t);
            return -1;
        }
    }
    return 0;
}

void target_proxy_stop(bench_target *t)
{
    for (int i = 0; i < TARGET_MAX_HOSTS; i++) {
        bench_proxy_stop(t->proxy[i]);
        t->proxy[i] = NULL;
    }
}

/* A growing string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *g = realloc(b->s, cap);
        if (g == NULL) {
            b->failed = 1;
            return;
        }
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void puts_(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* 1 when `kv`'s key is one of `extra`'s. */
static int overridden(const char *kv, const char *const *extra)
{
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        if (same_key(kv, extra[i]))
            return 1;
    return 0;
}

char *target_uri(const bench_target *t, const char *const *extra)
{
    sbuf b = {0};
    puts_(&b, t->scheme);
    puts_(&b, "://");
    if (t->userinfo != NULL) {
        puts_(&b, t->userinfo);
        puts_(&b, "@");
    }
    for (int i = 0; i < t->nhosts; i++) {
        if (i > 0)
            puts_(&b, ",");
        if (t->proxy[i] != NULL) {
            char hp[64];
            snprintf(hp, sizeof hp, "127.0.0.1:%d", bench_proxy_port(t->proxy[i]));
            puts_(&b, hp);
        } else {
            puts_(&b, t->hosts[i]);
        }
    }
    puts_(&b, t->path);
    char sep = '?';
    for (size_t i = 0; i < t->nquery; i++) {
        if (overridden(t->query[i], extra))
            continue;
        put(&b, &sep, 1);
        puts_(&b, t->query[i]);
        sep = '&';
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        put(&b, &sep, 1);
        puts_(&b, extra[i]);
        sep = '&';
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

void target_free(bench_target *t)
{
    target_proxy_stop(t);
    free(t->userinfo);
    for (int i = 0; i < t->nhosts; i++)
        free(t->hosts[i]);
    free(t->path);
    for (size_t i = 0; i < t->nquery; i++)
        free(t->query[i]);
    free(t->query);
    memset(t, 0, sizeof *t);
}
