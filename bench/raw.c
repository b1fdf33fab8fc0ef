/*
 * raw.c - bare hiredis and libmemcached clients for the hot-path
 * comparison. Each does what its plugin does on the wire for one fetch and
 * nothing else: redis INCRBY over one connection; memcached a binary
 * increment with TCP_NODELAY, ketama over the URI's servers.
 *
 * PostgreSQL and MySQL/MariaDB come as modules (raw_postgresql.c,
 * raw_mysql.c) loaded from raw/ beside the plugin that serves the scheme,
 * so the bench, and the command that links it, never depend on libpq or
 * libmariadb. The folder is raw/ rather than the plugin folder itself
 * because the dispatcher's scan loads every idprime-*.so there as a
 * plugin and would warn about each module.
 */
#include <ctype.h>
#include <dlfcn.h>
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

#include "idprime/idprime.h"
#include "raw.h"

struct raw_client {
    const char *name;
    void *dl;                 /* a SQL store's module, or NULL */
    const raw_module *mod;
    void *mh;                 /* the module's handle */
#ifdef HAVE_HIREDIS
    redisContext *rc;
#endif
#ifdef HAVE_LIBMEMCACHED
    memcached_st *mc;
#endif
};

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

#ifdef HAVE_HIREDIS
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

/* ---- The SQL stores' modules --------------------------------------- */

/* Finds the plugin that serves a scheme, as the dispatcher does. */
typedef struct plugin_find {
    const char *scheme;
    char name[64];
    char dir[4096];
} plugin_find;

static void on_plugin(void *ud, const idp_plugin_info *p)
{
    plugin_find *f = ud;
    size_t n = strlen(f->scheme);
    for (const char *s = p->schemes; f->name[0] == '\0' && *s != '\0';) {
        size_t k = strcspn(s, ",");
        const char *slash = strrchr(p->path, '/');
        if (k == n && strncmp(s, f->scheme, n) == 0 && slash != NULL) {
            snprintf(f->name, sizeof f->name, "%s", p->name);
            snprintf(f->dir, sizeof f->dir, "%.*s", (int)(slash - p->path),
                     p->path);
        }
        s += k + (s[k] == ',');
    }
}

/* Loads raw/idprime-raw-NAME.so beside the plugin serving t's scheme, on
 * the dispatcher's own search path (idp_plugins). Returns 0, or -1 with
 * msg filled (*unsupported = 1: no plugin or no module, nothing failed). */
static int module_load(raw_client *r, const bench_target *t, int *unsupported,
                       char *msg, size_t len)
{
    plugin_find f = {.scheme = t->scheme};
    idp_error err;
    if (idp_plugins(NULL, on_plugin, &f, &err) != IDP_OK || f.name[0] == '\0') {
        *unsupported = 1;
        snprintf(msg, len, "no raw client for %s: no plugin serves it on the "
                 "search path (set IDPRIME_PLUGIN_PATH)", t->scheme);
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/raw/idprime-raw-%s.so", f.dir, f.name);
    if ((r->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        *unsupported = 1;
        /* dlerror names the file */
        snprintf(msg, len, "no raw client for %s: %s (it comes with the %s "
                 "plugin)", t->scheme, dlerror(), f.name);
        return -1;
    }
    raw_module_entry_fn entry;
    *(void **)&entry = dlsym(r->dl, RAW_MODULE_ENTRY);
    const raw_module *m = entry != NULL ? entry() : NULL;
    if (m == NULL || m->version != RAW_MODULE_VERSION ||
        m->size < sizeof(raw_module) || m->open == NULL ||
        m->prepare == NULL || m->incr == NULL || m->close == NULL) {
        snprintf(msg, len, "%s: not a raw-client module of version %u (no "
                 "symbol %s, another version or missing methods)", path,
                 RAW_MODULE_VERSION, RAW_MODULE_ENTRY);
        return -1;
    }
    r->mod = m;
    r->name = m->client;
    return 0;
}

/* Connects through the module to host 0 of t (its proxy, if running). */
static raw_client *module_open(raw_client *r, const bench_target *t,
                               unsigned timeout_ms, int *unsupported,
                               char *msg, size_t len)
{
    if (module_load(r, t, unsupported, msg, len) != 0)
        return NULL;
    char host[256] = "", user[256] = "", pass[256] = "", db[256] = "";
    int port = 0;
    raw_conninfo ci = {.timeout_ms = timeout_ms};
    if (t->nhosts > 0) {
        target_host(t, 0, host, sizeof host, &port);
        ci.host = host;
        ci.port = port;
    }
    if (t->userinfo != NULL) {
        const char *colon = strchr(t->userinfo, ':');
        size_t ulen = colon != NULL ? (size_t)(colon - t->userinfo)
                                    : strlen(t->userinfo);
        if (ulen >= sizeof user ||
            (colon != NULL && strlen(colon + 1) >= sizeof pass)) {
            snprintf(msg, len, "%s: the URI's user or password is too long",
                     r->name);
            return NULL;
        }
        decode(t->userinfo, ulen, user);
        ci.user = user[0] != '\0' ? user : NULL;
        if (colon != NULL) {
            decode(colon + 1, strlen(colon + 1), pass);
            ci.password = pass;
        }
    }
    const char *path = t->path[0] == '/' ? t->path + 1 : t->path;
    if (strlen(path) >= sizeof db) {
        snprintf(msg, len, "%s: the URI's database name is too long", r->name);
        return NULL;
    }
    decode(path, strlen(path), db);
    ci.database = db[0] != '\0' ? db : NULL;
    char **q = calloc(t->nquery + 1, sizeof *q);
    int ok = q != NULL;
    for (size_t i = 0; ok && i < t->nquery; i++)
        if ((ok = (q[i] = malloc(strlen(t->query[i]) + 1)) != NULL))
            decode(t->query[i], strlen(t->query[i]), q[i]);
    ci.query = (const char *const *)q;
    ci.nquery = t->nquery;
    const char *tmo = raw_conninfo_param(&ci, "timeout_ms");
    if (tmo != NULL && atol(tmo) > 0)
        ci.timeout_ms = (unsigned)atol(tmo);
    if (ok)
        r->mh = r->mod->open(&ci, msg, len);
    else
        snprintf(msg, len, "%s: out of memory", r->name);
    for (size_t i = 0; q != NULL && i < t->nquery; i++)
        free(q[i]);
    free(q);
    return r->mh != NULL ? r : NULL;
}

/* 1 for a scheme whose raw client is a module. */
static int is_sql_scheme(const char *scheme)
{
    static const char *const sql[] = {"postgresql", "postgres", "mysql",
                                      "mariadb", NULL};
    for (const char *const *s = sql; *s != NULL; s++)
        if (strcmp(scheme, *s) == 0)
            return 1;
    return 0;
}

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
    if (is_sql_scheme(t->scheme)) {
        known = 1;
        ok = module_open(r, t, timeout_ms, unsupported, msg, len);
    }
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
        snprintf(msg, len, "no raw client for %s in this build (redis, "
                 "memcached, postgresql and mysql have one)", t->scheme);
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
    if (r->mh != NULL)
        return r->mod->prepare(r->mh, key, msg, len);
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
    if (r->mh != NULL)
        return r->mod->incr(r->mh, key, value, msg, len);
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
    if (r->mh != NULL)
        r->mod->close(r->mh);
    /* the module goes with its handle: nothing of it is left in use */
    if (r->dl != NULL)
        dlclose(r->dl);
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
