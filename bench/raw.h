/*
 * raw.h - the store's own client library, used bare: the same INCRBY loop
 * the engine runs at batch=1, so the framework's cost per round trip can be
 * measured against nothing but the client. hiredis for redis, libmemcached
 * for memcached, where the build found them, compiled into the bench.
 *
 * The SQL stores' clients (libpq, libmariadb) are modules of their own,
 * idprime-raw-postgresql.so and idprime-raw-mysql.so, installed in raw/
 * of the folder their plugin is loaded from, so that only the plugin's
 * package depends on the client library; raw_open finds the module with
 * dlopen. The module's side of that is at the end of this file.
 */
#ifndef IDPRIME_BENCH_RAW_H
#define IDPRIME_BENCH_RAW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* The client library's name: "hiredis", "libmemcached", "libpq",
 * "libmariadb". */
const char *raw_name(const raw_client *r);

/* Creates `key` at 0 if it is missing (not timed). Returns 0 or -1. A SQL
 * store's table must exist by then: the engine's open creates it. */
int raw_prepare(raw_client *r, const char *key, char *msg, size_t len);

/* HOT (per round trip): INCRBY key 1, or the plugin's own increment
 * statement. Returns 0 or -1 with msg filled. */
int raw_incr(raw_client *r, const char *key, uint64_t *value, char *msg,
             size_t len);

void raw_close(raw_client *r);

/* ---- The raw-client module of a SQL store ------------------------------- */

/* The one symbol a module exports: const raw_module *idprime_raw_entry(void) */
#define RAW_MODULE_ENTRY "idprime_raw_entry"
#define RAW_MODULE_VERSION 1u

/* Where to connect, taken from the bench target by raw.c (decoded, with
 * the delay proxy's host and port when one runs). */
typedef struct raw_conninfo {
    const char *host;
    int port;               /* 0: the store's default */
    const char *user;       /* NULL: the client library's default */
    const char *password;   /* NULL: none */
    const char *database;   /* NULL: none in the URI */
    const char *const *query; /* the URI's "key=value" items, decoded */
    size_t nquery;
    unsigned timeout_ms;    /* the URI's timeout_ms, else raw_open's */
} raw_conninfo;

/*
 * A module's methods, as raw_open/raw_prepare/raw_incr/raw_close above
 * (a handle of its own in place of raw_client). open returns NULL with
 * msg filled on failure, having freed what it made. New methods go at the
 * end; `size` says how far the table goes.
 */
typedef struct raw_module {
    uint32_t version;       /* RAW_MODULE_VERSION */
    uint32_t size;          /* sizeof(raw_module) of the module's build */
    const char *client;     /* "libpq" */
    void *(*open)(const raw_conninfo *ci, char *msg, size_t len);
    int (*prepare)(void *h, const char *key, char *msg, size_t len);
    int (*incr)(void *h, const char *key, uint64_t *value, char *msg,
                size_t len);
    void (*close)(void *h);
} raw_module;

typedef const raw_module *(*raw_module_entry_fn)(void);

/* The value of query item `key` in ci, or NULL. */
static inline const char *raw_conninfo_param(const raw_conninfo *ci,
                                             const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < ci->nquery; i++)
        if (strncmp(ci->query[i], key, n) == 0 && ci->query[i][n] == '=')
            return ci->query[i] + n + 1;
    return NULL;
}

#endif
