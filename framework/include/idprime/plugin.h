/*
 * plugin.h - the store plugin ABI of idprime.
 *
 * A plugin is a shared object `idprime-<name>.so` that exports exactly one
 * symbol, idprime_plugin_entry, returning a pointer to a const idp_plugin
 * table. The table begins with its ABI version and its own size:
 * - the version changes only on a breaking change; the host loads a table of
 *   its own version only;
 * - the size grows as methods are appended; the host calls a method only
 *   where the size covers it and the pointer is not NULL, and falls back
 *   otherwise (as SQLite's sqlite3_io_methods grows), so a newer plugin with
 *   a larger table loads in an older host and the other way round.
 *
 * A plugin includes this header and its store's client library, nothing
 * else: everything it needs from the host (the parsed URI, its validated
 * parameters, the timeout, logging) comes through idp_host.
 *
 * Threading: the host never calls two methods on the same store handle at
 * once, so a plugin needs no locking of its own for one handle.
 *
 * Values: a counter is an unsigned integer starting at 0 that holds the last
 * ID handed out. incr adds n and returns the new value (INCRBY). A plugin
 * must refuse, with IDP_ERANGE, an increment that would reach 2^63, and
 * must never wrap.
 */
#ifndef IDPRIME_PLUGIN_H
#define IDPRIME_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "idprime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IDP_PLUGIN_ABI_VERSION 2
#define IDP_PLUGIN_ENTRY "idprime_plugin_entry"

/* ---- What the host hands the plugin ----------------------------------- */

/* One host of the URI's host list; port 0 when the URI gave none. */
typedef struct idp_uri_host {
    const char *host;    /* percent-decoded; IPv6 without brackets */
    unsigned port;
} idp_uri_host;

/* A parsed URI: every string percent-decoded, "" where absent. */
typedef struct idp_uri {
    const char *scheme;
    const char *user;
    const char *password;
    int has_password;        /* 1 when the URI had ':' after the user */
    const idp_uri_host *hosts;
    size_t nhosts;           /* 0 for "sqlite:///abs/path.db" */
    const char *path;        /* "/2", "/abs/path.db" or "" */
    const char *authority;   /* the raw text between "//" and the path */
} idp_uri;

typedef enum idp_param_type {
    IDP_PARAM_INT = 1,  /* an integer within [min, max] */
    IDP_PARAM_STR,      /* any text */
    IDP_PARAM_ENUM      /* one of the '|'-separated words in `choices` */
} idp_param_type;

/* A parameter a plugin accepts in the URI query. Terminated by key == NULL. */
typedef struct idp_param_spec {
    const char *key;
    idp_param_type type;
    const char *def;      /* default as text; NULL for "not set" */
    int64_t min, max;     /* IDP_PARAM_INT */
    const char *choices;  /* IDP_PARAM_ENUM, e.g. "NORMAL|FULL" */
    const char *help;
} idp_param_spec;

typedef struct idp_host idp_host;
struct idp_host {
    unsigned abi_version;    /* IDP_PLUGIN_ABI_VERSION of the host */
    size_t size;             /* sizeof(idp_host) of the host */
    const idp_uri *uri;
    unsigned timeout_ms;     /* connect and command timeout */
    /* The value of one of the plugin's declared parameters, already
     * validated: param_str gives the text (the default when the URI has
     * none, NULL when neither), param_int the number. */
    const char *(*param_str)(const idp_host *h, const char *key);
    int64_t (*param_int)(const idp_host *h, const char *key);
    /* Logs through the application's callback; the host prefixes the
     * plugin's name. */
    void (*log)(const idp_host *h, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void *host_data;         /* the host's own; plugins do not touch it */
};

/* ---- The plugin table ------------------------------------------------- */

/* Result of one key in incr_many. */
typedef struct idp_incr_op {
    const char *key;   /* in: prefix + counter name */
    uint64_t n;        /* in: amount to add, >= 1 */
    uint64_t value;    /* out: the new value */
    int status;        /* out: IDP_OK or an error code */
} idp_incr_op;

typedef int (*idp_list_cb)(void *ud, const char *key, uint64_t value);

/* One key of lower (give-back on a clean close). */
typedef struct idp_lower_op {
    const char *key;   /* in: prefix + counter name */
    uint64_t expect;   /* in: the value the key must hold now */
    uint64_t value;    /* in: what to set it to, < expect */
    int done;          /* out: 1 when lowered, 0 when the key held anything
                          else (then nothing was written) */
    int status;        /* out: IDP_OK or an error code */
} idp_lower_op;

struct idp_plugin_testing;

typedef struct idp_plugin {
    uint32_t abi_version;        /* IDP_PLUGIN_ABI_VERSION */
    uint32_t size;               /* sizeof(idp_plugin) as the plugin knows it */
    const char *name;            /* "redis": the file is idprime-redis.so */
    const char *const *schemes;  /* NULL-terminated: {"sqlite","sqlite3",NULL} */
    const idp_param_spec *params;/* the plugin's own URI keys; may be NULL */

    /* Connects. On success stores the handle in *store. The host's struct
     * stays valid until close. On error fills err, leaves nothing open. */
    int (*open)(const idp_host *host, void **store, idp_error *err);
    /* Frees everything of the handle. */
    void (*close)(void *store);
    /* INCRBY: adds n (>= 1) and stores the new value in *value. An
     * increment whose reply is lost is reported as an error, never
     * retried: the host treats it as a gap. */
    int (*incr)(void *store, const char *key, uint64_t n, uint64_t *value,
                idp_error *err);
    /* The current value; *exists = 0 and *value = 0 for a missing key. */
    int (*get)(void *store, const char *key, uint64_t *value, int *exists,
               idp_error *err);

    /* Methods above are required. Optional ones follow, in the order they
     * were added; NULL or beyond `size` means absent. */

    /* Optional (NULL: the host calls incr once per op). Several increments
     * in one round trip. Returns IDP_OK when every op has its own status
     * filled (and, for a failed op, err_ops[i] may say why: the host passes
     * an array of nops errors), or an error for the whole call in err_ops[0]
     * (then no op is trusted). */
    int (*incr_many)(void *store, idp_incr_op *ops, size_t nops,
                     idp_error *err_ops);
    /* Optional. Atomically raises the key to at least `value`, never
     * lowering it; stores the resulting value in *result. */
    int (*raise_to)(void *store, const char *key, uint64_t value,
                    uint64_t *result, idp_error *err);
    /* Optional. Calls cb for each key starting with `prefix`; stops early
     * and returns cb's value when cb returns non-zero. The host calls it on
     * a handle of its own, so a long listing blocks no fetch. */
    int (*list)(void *store, const char *prefix, idp_list_cb cb, void *ud,
                idp_error *err);
    /* Optional. Called instead of close in a child process after fork() for
     * a handle the parent opened: frees what it can without any I/O on the
     * store's connection (no QUIT, no Terminate, no checkpoint), so the
     * parent's session is untouched. NULL: the host leaks the handle. */
    void (*drop)(void *store);
    /* Optional. Test hooks (see idp_plugin_testing); NULL for none. */
    const struct idp_plugin_testing *testing;
    /* Optional (NULL: a clean close gives nothing back). For each op,
     * atomically in the store: if the key holds exactly `expect`, set it
     * to `value` (done = 1); otherwise change nothing (done = 0). A
     * compare-and-set, never a read then a write: another client may
     * increment between. Returns IDP_OK when every op has its status (and
     * done) filled, or an error for the whole call (no op is trusted). With
     * wait_replicas (redis), the lowering is acknowledged like a write. */
    int (*lower)(void *store, idp_lower_op *ops, size_t nops, idp_error *err);
} idp_plugin;

/*
 * Test hooks: an optional extension, not part of a store's contract. The
 * bench and the test suites use them where a store has them; everything
 * else works without.
 */
typedef struct idp_plugin_testing {
    uint32_t size;               /* sizeof(idp_plugin_testing) as the plugin knows it */
    /* URI keys for tests only (a simulated round trip, ...), accepted
     * beside the plugin's own; may be NULL. */
    const idp_param_spec *params;
    /* Optional. The store's own count of increments served to anyone, as
     * the store itself reports it (Redis INFO commandstats, ...). */
    int (*roundtrips)(void *store, uint64_t *count, idp_error *err);
    /* Optional. A store-specific command (fault injection in mem). */
    int (*control)(void *store, const char *command, idp_error *err);
} idp_plugin_testing;

/* The one symbol a plugin exports. */
typedef const idp_plugin *(*idp_plugin_entry_fn)(void);

#define IDP_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Fills an idp_error and returns its code; for plugins, which link nothing
 * of the host. */
static inline __attribute__((format(printf, 3, 4))) int
idp_plugin_error(idp_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

#ifdef __cplusplus
}
#endif
#endif /* IDPRIME_PLUGIN_H */
