/*
 * target.h - a store URI under test, taken apart so the bench can set
 * parameters on it (a fresh prefix, metaprime=0, delay_ms) and route its
 * hosts through delay proxies, then put back together.
 *
 * Only the outline is parsed (scheme, user info, hosts, path, query);
 * everything stays as the user wrote it, percent-escapes included, and
 * idp_open() judges the result.
 */
#ifndef IDPRIME_BENCH_TARGET_H
#define IDPRIME_BENCH_TARGET_H

#include <stddef.h>

#include "proxy_ctl.h"

#define TARGET_MAX_HOSTS 16

typedef struct bench_target {
    char scheme[32];
    char *userinfo;            /* without '@', or NULL */
    char *hosts[TARGET_MAX_HOSTS];
    int nhosts;
    char *path;                /* "" or "/..." */
    char **query;              /* "key=value" items, in order */
    size_t nquery;
    char shown[512];           /* the URI with any password hidden */
    int network;               /* redis, memcached, postgresql, mysql:
                                  reached over TCP, through a delay proxy */
    bench_proxy *proxy[TARGET_MAX_HOSTS];
} bench_target;

/* Takes `uri` apart. Returns 0, or -1 with msg filled (no "://", too many
 * hosts, out of memory). */
int target_parse(const char *uri, bench_target *t, char *msg, size_t len);

/* The value of query key `key` as written, or NULL. */
const char *target_param(const bench_target *t, const char *key);

/* Sets `key=value` items (replacing the same keys) on the target's query. */
int target_set(bench_target *t, const char *kv);

/* Host i as the client should reach it: through its proxy when one runs.
 * Writes the host name and port (0: the scheme's default was implied and
 * is filled in for network stores). */
void target_host(const bench_target *t, int i, char *host, size_t len,
                 int *port);

/* Returns 0 when every host is 127.0.0.1 or localhost (the only places
 * the delay proxy forwards to), or -1 with msg naming the host. */
int target_check_loopback(const bench_target *t, char *msg, size_t len);

/*
 * Starts one delay proxy per host, forwarding to it. Every host must be
 * 127.0.0.1 or localhost. Returns 0, or -1 with msg filled (and no proxy
 * left running).
 */
int target_proxy_start(bench_target *t, unsigned rtt_ms, char *msg, size_t len);

/* Stops the proxies (if any). */
void target_proxy_stop(bench_target *t);

/* The URI as it now stands (hosts through the proxies, the query as set),
 * plus the extra "key=value" items in `extra` (NULL-terminated, may be NULL)
 * replacing the same keys. Returns a string to free(), or NULL when out of
 * memory. */
char *target_uri(const bench_target *t, const char *const *extra);

/* Stops the proxies and frees everything the target holds. */
void target_free(bench_target *t);

#endif
