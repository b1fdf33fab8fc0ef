/*
 * redis_helpers.h - what the redis suites (test_redis, test_redis_durable)
 * share; see redis_helpers.c.
 */
#ifndef IDPRIME_REDIS_HELPERS_H
#define IDPRIME_REDIS_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "log_helpers.h"

/* Starts redis-server (extra arguments may be NULL); fails the test if not. */
void start_redis(server *s, const char *extra);

/* "redis://127.0.0.1:PORT" + query, in a static buffer. */
char *redis_uri(const server *s, const char *query);

/* Sends one inline command (after "AUTH password" when password is not
 * NULL) and copies its reply into out: a bulk string's content, or the
 * whole line of any other reply ("+OK", "-ERR ...", ":3"). */
void raw(const server *s, const char *password, const char *cmd, char *out,
         size_t outlen);

/* The server's own count of calls of a command by its lower-case name
 * ("incrby", "wait") since its start or CONFIG RESETSTAT. */
uint64_t server_calls(const server *s, const char *cmd);
uint64_t server_incrbys(const server *s);

/* The value of `key` as server s itself holds it; 0 for a missing key. */
uint64_t value_on(const server *s, const char *key);

/* Starts a replica of primary; fails the test if it does not come online. */
void start_replica(server *replica, const server *primary);

#endif
