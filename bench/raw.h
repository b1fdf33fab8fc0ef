/*
 * raw.h - the store's own client library, used bare: the same INCRBY loop
 * the engine runs at batch=1, so the framework's cost per round trip can be
 * measured against nothing but the client. hiredis for redis, libmemcached
 * for memcached, where the build found them.
 */
#ifndef IDPRIME_BENCH_RAW_H
#define IDPRIME_BENCH_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "target.h"

typedef struct raw_client raw_client;

/*
 * Connects to the target's hosts (through its proxies, if running) with
 * the URI's password and database. Returns NULL with msg filled when the
 * store has no raw client here or the connection fails; *unsupported is
 * then 1 for the former.
 */
raw_client *raw_open(const bench_target *t, unsigned timeout_ms,
                     int *unsupported, char *msg, size_t len);

/* The client library's name: "hiredis", "libmemcached". */
const char *raw_name(const raw_client *r);

/* Creates `key` at 0 if it is missing (not timed). Returns 0 or -1. */
int raw_prepare(raw_client *r, const char *key, char *msg, size_t len);

/* HOT (per round trip): INCRBY key 1. Returns 0 or -1 with msg filled. */
int raw_incr(raw_client *r, const char *key, uint64_t *value, char *msg,
             size_t len);

void raw_close(raw_client *r);

#endif
