/*
 * store_rigs.c - a running store of each kind by name (store_rigs.h), so
 * that a promise every store makes is written once and looped over them.
 * The servers come from the harness (harness.h), the cluster from
 * redis_cluster_helpers.c; the sentinel watches a master without replicas
 * (quorum 1), enough for the plugin to find it and write to it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redis_helpers.h"
#include "store_rigs.h"
#include "testutil.h"

#define SENTINEL_NAME "idpgb"

const char *const rig_kinds[] = {
#ifdef RIG_HAVE_REDIS
    "redis",
#endif
#ifdef RIG_HAVE_REDIS_SENTINEL
    "redis-sentinel",
#endif
#ifdef RIG_HAVE_REDIS_CLUSTER
    "redis-cluster",
#endif
#ifdef RIG_HAVE_MEMCACHED
    "memcached",
#endif
#ifdef RIG_HAVE_SQLITE
    "sqlite",
#endif
#ifdef RIG_HAVE_POSTGRESQL
    "postgresql",
#endif
#ifdef RIG_HAVE_MYSQL
    "mysql",
#endif
    NULL};
const int rig_nkinds = (int)(sizeof rig_kinds / sizeof *rig_kinds) - 1;

/* Waits until the sentinel calls its master ok. */
static void sentinel_wait_ok(const server *s)
{
    static char info[8192];
    long long deadline = tu_now_ms() + 20000;
    do {
        raw(s, NULL, "INFO sentinel", info, sizeof info);
        if (strstr(info, "name=" SENTINEL_NAME ",status=ok") != NULL)
            return;
        tu_sleep_ms(50);
    } while (tu_now_ms() < deadline);
    ck_abort_msg("the sentinel does not call its master ok: %s", info);
}

static void start_sentinel(store_rig *r)
{
    char extra[256];
    start_redis(&r->master, NULL);
    snprintf(extra, sizeof extra, "--sentinel monitor " SENTINEL_NAME
             " 127.0.0.1 %d 1", r->master.port);
    ck_assert_msg(server_start(&r->s, "redis-sentinel", extra) == 0,
                  "redis-sentinel did not start");
    sentinel_wait_ok(&r->s);
    snprintf(r->uri, sizeof r->uri, "redis-sentinel://127.0.0.1:%d/"
             SENTINEL_NAME, r->s.port);
}

void rig_start(store_rig *r, const char *kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    if (strcmp(kind, "redis-sentinel") == 0) {
        start_sentinel(r);
    } else if (strcmp(kind, "redis-cluster") == 0) {
        cluster_start(&r->k, 3);
        snprintf(r->uri, sizeof r->uri, "%s", cluster_uri(&r->k, ""));
    } else if (strcmp(kind, "sqlite") == 0) {
        ck_assert_ptr_nonnull(harness_tmpdir(r->dir, sizeof r->dir));
        snprintf(r->uri, sizeof r->uri, "sqlite://%s/ids.db", r->dir);
    } else if (strcmp(kind, "mysql") == 0) {
        /* a tmpdir of its own: mariadbd's implicit temporary tables in a
         * /tmp shared with every other test were seen to vanish */
        char extra[PATH_MAX + 16];
        ck_assert_ptr_nonnull(harness_tmpdir(r->dir, sizeof r->dir));
        ck_assert_int_eq(chmod(r->dir, 01777), 0);
        snprintf(extra, sizeof extra, "--tmpdir=%s", r->dir);
        ck_assert_msg(server_start(&r->s, kind, extra) == 0,
                      "%s did not start", kind);
        server_uri(&r->s, NULL, r->uri, sizeof r->uri);
    } else {
        ck_assert_msg(server_start(&r->s, kind, NULL) == 0,
                      "%s did not start", kind);
        server_uri(&r->s, NULL, r->uri, sizeof r->uri);
    }
}

/* Removes the SQLite file, its WAL and lock files, and the directory. */
static void remove_sqlite(const char *dir)
{
    static const char *const files[] = {"ids.db", "ids.db-wal", "ids.db-shm",
                                        "ids.db-idprime"};
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

void rig_stop(store_rig *r)
{
    if (strcmp(r->kind, "redis-sentinel") == 0) {
        server_stop(&r->s, 0);
        server_stop(&r->master, 0);
    } else if (strcmp(r->kind, "redis-cluster") == 0) {
        cluster_stop(&r->k);
    } else if (strcmp(r->kind, "sqlite") == 0) {
        remove_sqlite(r->dir);
    } else if (strcmp(r->kind, "mysql") == 0) {
        server_stop(&r->s, 0);
        rmdir(r->dir);
    } else {
        server_stop(&r->s, 0);
    }
}

char *rig_uri(const store_rig *r, const char *query, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", r->uri, query != NULL ? query : "");
    return buf;
}
