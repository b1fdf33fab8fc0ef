/*
 * test_migrate.c - `idprime migrate FROM TO [COUNTER...]` as a user runs it,
 * across every ordered pair of the persistent stores (redis, memcached,
 * sqlite, postgresql, mysql, redis-sentinel, redis-cluster): each counter
 * in TO is raised to at least its value in FROM, never lowered, and a
 * client on TO continues above every ID FROM handed out (every ID of both
 * checked for duplicates). (mem is per process, so the command cannot see
 * a mem store of the test.)
 *
 * redis-cluster needs redis_cluster_helpers.c and redis_helpers.c linked
 * into this test (tests/integration/CMakeLists.txt); they are declared
 * weak, so that without them the test still builds and says, loudly, that
 * it left the cluster out.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "redis_cluster_helpers.h"
#include "testutil.h"

#pragma weak cluster_start
#pragma weak cluster_stop
#pragma weak cluster_uri

enum { REDIS, MEMCACHED, SQLITE, POSTGRESQL, MYSQL, SENTINEL, CLUSTER,
       NSTORES };
static const char *const store_names[NSTORES] = {
    "redis", "memcached", "sqlite", "postgresql", "mysql", "redis-sentinel",
    "redis-cluster"};

/* The sentinel's master name. */
#define MASTER "mig"

typedef struct stores {
    server redis, memcached, postgresql, mysql;
    server master, sentinel;    /* redis-sentinel: a master it monitors */
    cluster cl;                 /* redis-cluster: 3 masters */
    int up[NSTORES];
    char dir[PATH_MAX];
} stores;

static void start(server *s, const char *kind, const char *extra)
{
    ck_assert_msg(server_start(s, kind, extra) == 0, "%s did not start",
                  kind);
}

/* 1 when the redis-cluster helpers are linked in (see the top). */
static int have_cluster(void)
{
    return cluster_start != NULL && cluster_stop != NULL &&
           cluster_uri != NULL;
}

/* Starts redis, memcached and sqlite, and with `all` every other store. */
static void stores_start(stores *s, int all)
{
    memset(s, 0, sizeof *s);
    start(&s->redis, "redis", NULL);
    start(&s->memcached, "memcached", NULL);
    ck_assert_ptr_nonnull(harness_tmpdir(s->dir, sizeof s->dir));
    s->up[REDIS] = s->up[MEMCACHED] = s->up[SQLITE] = 1;
    if (!all)
        return;
    start(&s->postgresql, "postgresql", NULL);
    start(&s->mysql, "mysql", NULL);
    /* a sentinel that never fails the master over during the test */
    char extra[160];
    start(&s->master, "redis", NULL);
    snprintf(extra, sizeof extra, "--sentinel monitor " MASTER " 127.0.0.1 "
             "%d 1 --sentinel down-after-milliseconds " MASTER " 60000",
             s->master.port);
    start(&s->sentinel, "redis-sentinel", extra);
    s->up[POSTGRESQL] = s->up[MYSQL] = s->up[SENTINEL] = 1;
    if (have_cluster()) {
        cluster_start(&s->cl, 3);
        s->up[CLUSTER] = 1;
    } else {
        fprintf(stderr, "test_migrate: NOTE: redis-cluster LEFT OUT: "
                "redis_cluster_helpers.c and redis_helpers.c are not linked "
                "into this test\n");
    }
}

static void stores_stop(stores *s)
{
    server *all[] = {&s->redis, &s->memcached, &s->postgresql, &s->mysql,
                     &s->sentinel, &s->master};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]->pid != 0)
            server_stop(all[i], 0);
    if (s->up[CLUSTER])
        cluster_stop(&s->cl);
}

/* The URI of store `which` with `query` ("?prefix=..."). */
static const char *uri_of(const stores *s, int which, const char *query,
                          char *buf, size_t len)
{
    switch (which) {
    case REDIS:
        return server_uri(&s->redis, query, buf, len);
    case MEMCACHED:
        return server_uri(&s->memcached, query, buf, len);
    case POSTGRESQL:
        return server_uri(&s->postgresql, query, buf, len);
    case MYSQL:
        return server_uri(&s->mysql, query, buf, len);
    case SENTINEL:
        snprintf(buf, len, "redis-sentinel://127.0.0.1:%d/" MASTER "%s",
                 s->sentinel.port, query);
        return buf;
    case CLUSTER:
        snprintf(buf, len, "%s", cluster_uri(&s->cl, query));
        return buf;
    default:
        snprintf(buf, len, "sqlite://%s/ids.db%s", s->dir, query);
        return buf;
    }
}

/* The value of counter `name` in the store at `uri`, on a client of its
 * own. */
static uint64_t value_of(const char *uri, const char *name)
{
    idp_client *c = tu_open(uri, NULL);
    uint64_t v = tu_get(c, name, NULL);
    idp_close(c);
    return v;
}

/* Runs the idprime command; returns its exit code, stdout and stderr in
 * out (joined). */
static int run_cli(char *out, size_t len, const char *const *args)
{
    const char *cli = getenv("IDPRIME_CLI");
    ck_assert_msg(cli != NULL, "IDPRIME_CLI is not set: run through ctest");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)cli;
        for (; args[n - 1] != NULL && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(cli, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && (r = read(fds[0], out + got, len - got - 1)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fds[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define ASSERT_HAS(text, want) \
    ck_assert_msg(strstr((text), (want)) != NULL, "'%s' not in:\n%s", (want), (text))

/*
 * One ordered pair: FROM handed out 1..250 of "files" (batch 100, so it
 * stands at 300, or at 250 where the clean close gave the rest back) and
 * "chunk" stands at 5000 there; TO already holds "chunk" at 9000 and has no
 * "files". After migrate, TO's "files" is FROM's and its "chunk" still
 * 9000, and a client on TO hands out IDs above every one FROM handed out:
 * all of them, FROM's and TO's, are distinct.
 */
static void migrate_pair(const stores *s, int from, int to)
{
    char q[64], fu[PATH_MAX + 128], tu[PATH_MAX + 128], what[64];
    snprintf(what, sizeof what, "%s -> %s", store_names[from],
             store_names[to]);
    snprintf(q, sizeof q, "?prefix=p%d%d.&batch=100&low_watermark=0&adaptive=0",
             from, to);
    uri_of(s, from, q, fu, sizeof fu);
    uri_of(s, to, q, tu, sizeof tu);

    enum { FROM_IDS = 250, TO_IDS = 150 };
    uint64_t ids[FROM_IDS + TO_IDS];
    idp_client *c = tu_open(fu, NULL);
    idp_counter *files = tu_counter(c, "files");
    for (int i = 0; i < FROM_IDS; i++)
        ids[i] = tu_next(files);
    ck_assert_uint_eq(ids[FROM_IDS - 1], FROM_IDS);
    ck_assert_int_eq(idp_raise(c, "chunk", 5000, NULL, NULL), IDP_OK);
    idp_close(c);
    uint64_t v = value_of(fu, "files");
    ck_assert_msg(v >= FROM_IDS && v <= 300, "%s: FROM's files is %llu after "
                  "handing out 1..250 in batches of 100", what,
                  (unsigned long long)v);
    c = tu_open(tu, NULL);
    ck_assert_int_eq(idp_raise(c, "chunk", 9000, NULL, NULL), IDP_OK);
    idp_close(c);

    char out[4096];
    const char *args[] = {"migrate", fu, tu, "files", "chunk", NULL};
    int rc = run_cli(out, sizeof out, args);
    ck_assert_msg(rc == 0, "%s: exit %d:\n%s", what, rc, out);
    char line[80];
    snprintf(line, sizeof line, "files: raised TO from 0 to %llu",
             (unsigned long long)v);
    ASSERT_HAS(out, line);
    ASSERT_HAS(out, "chunk: TO is at 9000 >= 5000, unchanged");
    ck_assert_msg(value_of(tu, "files") == v, "%s: TO's files is %llu, FROM's "
                  "%llu", what, (unsigned long long)value_of(tu, "files"),
                  (unsigned long long)v);
    ck_assert_msg(value_of(tu, "chunk") == 9000, "%s: TO's chunk lowered to "
                  "%llu", what, (unsigned long long)value_of(tu, "chunk"));
    /* FROM is only read */
    ck_assert_uint_eq(value_of(fu, "files"), v);
    ck_assert_uint_eq(value_of(fu, "chunk"), 5000);

    /* a client on TO (two batches' worth) never repeats one of FROM's */
    c = tu_open(tu, NULL);
    files = tu_counter(c, "files");
    for (int i = 0; i < TO_IDS; i++) {
        ids[FROM_IDS + i] = tu_next(files);
        ck_assert_msg(ids[FROM_IDS + i] > v, "%s: TO handed out %llu, not "
                      "above FROM's %llu", what,
                      (unsigned long long)ids[FROM_IDS + i],
                      (unsigned long long)v);
    }
    ck_assert_uint_eq(ids[FROM_IDS], v + 1);
    idp_close(c);
    tu_assert_distinct(ids, FROM_IDS + TO_IDS);
}

/* FROM holds "inode" at 10 and "chunk" at 20 under its prefix, and
 * "stranger" outside it; `migrate FROM TO` with no names copies the two,
 * never the stranger, and a client on TO goes on above them. */
static void migrate_listed(const stores *s, int from)
{
    char q[32], fu[PATH_MAX + 128], tu[PATH_MAX + 128], other[PATH_MAX + 128];
    snprintf(q, sizeof q, "?prefix=l%d.", from);
    uri_of(s, from, q, fu, sizeof fu);
    uri_of(s, SQLITE, q, tu, sizeof tu);
    idp_client *c = tu_open(fu, NULL);
    ck_assert_int_eq(idp_raise(c, "inode", 10, NULL, NULL), IDP_OK);
    ck_assert_int_eq(idp_raise(c, "chunk", 20, NULL, NULL), IDP_OK);
    idp_close(c);
    c = tu_open(uri_of(s, from, "?prefix=x.", other, sizeof other), NULL);
    ck_assert_int_eq(idp_raise(c, "stranger", 5, NULL, NULL), IDP_OK);
    idp_close(c);
    char out[4096];
    const char *args[] = {"migrate", fu, tu, NULL};
    int rc = run_cli(out, sizeof out, args);
    ck_assert_msg(rc == 0, "%s, listed: exit %d:\n%s", store_names[from], rc,
                  out);
    ASSERT_HAS(out, "inode: raised TO from 0 to 10");
    ASSERT_HAS(out, "chunk: raised TO from 0 to 20");
    ck_assert_msg(strstr(out, "stranger") == NULL, "%s: migrate took a "
                  "counter outside FROM's prefix:\n%s", store_names[from], out);
    c = tu_open(tu, NULL);
    ck_assert_uint_eq(tu_next(tu_counter(c, "inode")), 11);
    ck_assert_uint_eq(tu_next(tu_counter(c, "chunk")), 21);
    idp_close(c);
}

START_TEST(test_migrate_every_pair_raises_never_lowers)
{
    stores s;
    stores_start(&s, 1);
    int pairs = 0;
    for (int from = 0; from < NSTORES; from++)
        for (int to = 0; to < NSTORES; to++)
            if (from != to && s.up[from] && s.up[to]) {
                migrate_pair(&s, from, to);
                pairs++;
            }
    fprintf(stderr, "test_migrate: %d ordered pairs migrated\n", pairs);
    /* every store that lists its counters (all but memcached) is migrated
     * without names: each counter under FROM's prefix, no other */
    for (int from = 0; from < NSTORES; from++)
        if (from != MEMCACHED && from != SQLITE && s.up[from])
            migrate_listed(&s, from);
    stores_stop(&s);
}
END_TEST

START_TEST(test_dry_run_changes_nothing)
{
    stores s;
    stores_start(&s, 0);
    char fu[PATH_MAX + 128], tu[PATH_MAX + 128];
    uri_of(&s, REDIS, "?prefix=dry.", fu, sizeof fu);
    uri_of(&s, SQLITE, "?prefix=dry.", tu, sizeof tu);
    idp_client *c = tu_open(fu, NULL);
    ck_assert_int_eq(idp_raise(c, "inode", 777, NULL, NULL), IDP_OK);
    idp_close(c);
    char out[4096];
    const char *args[] = {"migrate", "--dry-run", fu, tu, "inode", NULL};
    ck_assert_int_eq(run_cli(out, sizeof out, args), 0);
    ASSERT_HAS(out, "inode: would raise TO from 0 to 777");
    ck_assert_uint_eq(value_of(tu, "inode"), 0);
    stores_stop(&s);
}
END_TEST

START_TEST(test_migrate_without_names_takes_every_counter)
{
    stores s;
    stores_start(&s, 0);
    char fu[PATH_MAX + 128], tu[PATH_MAX + 128];
    uri_of(&s, SQLITE, "?prefix=all.", fu, sizeof fu);
    uri_of(&s, REDIS, "?prefix=all.", tu, sizeof tu);
    idp_client *c = tu_open(fu, NULL);
    ck_assert_int_eq(idp_raise(c, "inode", 10, NULL, NULL), IDP_OK);
    ck_assert_int_eq(idp_raise(c, "chunk", 20, NULL, NULL), IDP_OK);
    idp_close(c);
    /* a counter outside the prefix is not FROM's and is left alone */
    char other[PATH_MAX + 128];
    c = tu_open(uri_of(&s, SQLITE, "", other, sizeof other), NULL);
    ck_assert_int_eq(idp_raise(c, "stranger", 5, NULL, NULL), IDP_OK);
    idp_close(c);
    char out[4096];
    const char *args[] = {"migrate", fu, tu, NULL};
    ck_assert_int_eq(run_cli(out, sizeof out, args), 0);
    ASSERT_HAS(out, "inode: raised TO from 0 to 10");
    ASSERT_HAS(out, "chunk: raised TO from 0 to 20");
    ck_assert_ptr_null(strstr(out, "stranger"));
    ck_assert_uint_eq(value_of(tu, "inode"), 10);
    ck_assert_uint_eq(value_of(tu, "chunk"), 20);
    stores_stop(&s);
}
END_TEST

START_TEST(test_memcached_needs_counter_names)
{
    stores s;
    stores_start(&s, 0);
    char fu[PATH_MAX + 128], tu[PATH_MAX + 128];
    uri_of(&s, MEMCACHED, "", fu, sizeof fu);
    uri_of(&s, SQLITE, "", tu, sizeof tu);
    char out[4096];
    const char *args[] = {"migrate", fu, tu, NULL};
    ck_assert_int_eq(run_cli(out, sizeof out, args), 2);
    ASSERT_HAS(out, "cannot list its counters (name them)");
    /* a store that is down is a failure of the work, named */
    const char *down[] = {"migrate", "redis://127.0.0.1:1?timeout_ms=200", tu,
                          "inode", NULL};
    ck_assert_int_eq(run_cli(out, sizeof out, down), 1);
    ASSERT_HAS(out, "127.0.0.1:1");
    stores_stop(&s);
}
END_TEST

/* Sets `key` to the text `value` on the memcached at 127.0.0.1:port, with
 * the text protocol, as another tool would. */
static void mc_set_raw(int port, const char *key, const char *value)
{
    char cmd[512], buf[64];
    snprintf(cmd, sizeof cmd, "set %s 0 0 %zu\r\n%s\r\n", key,
             strlen(value), value);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "STORED\r\n");
}

/*
 * FROM is one server of a memcached pool of two (as a user naming one node
 * of a cluster): the counters the pool keeps on the other server are not in
 * FROM. Copying nothing for them and exiting 0 would let clients moved to
 * TO hand their IDs out again, so each is named and the exit code is 1;
 * the counters FROM does hold are still copied.
 */
START_TEST(test_counter_not_in_from_is_never_skipped_silently)
{
    server a, b;
    char dir[PATH_MAX];
    ck_assert_int_eq(server_start(&a, "memcached", "-M"), 0);
    ck_assert_int_eq(server_start(&b, "memcached", "-M"), 0);
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    char pool[256], only_a[256], tu[PATH_MAX + 64];
    snprintf(pool, sizeof pool, "memcached://127.0.0.1:%d,127.0.0.1:%d",
             a.port, b.port);
    server_uri(&a, "", only_a, sizeof only_a);
    snprintf(tu, sizeof tu, "sqlite://%s/to.db", dir);

    enum { N = 12 };
    const char *args[N + 4] = {"migrate", only_a, tu};
    char names[N][16];
    int on_a[N], na = 0;
    idp_client *c = tu_open(pool, NULL);
    idp_client *ca = tu_open(only_a, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        args[3 + i] = names[i];
        ck_assert_int_eq(idp_raise(c, names[i], 100 + (uint64_t)i, NULL, NULL),
                         IDP_OK);
        int exists;
        tu_get(ca, names[i], &exists);
        on_a[i] = exists;
        na += exists;
    }
    idp_close(ca);
    idp_close(c);
    /* consistent hashing spreads 12 counters over both servers */
    ck_assert_msg(na > 0 && na < N, "%d of %d counters on server A", na, N);

    char out[8192];
    ck_assert_int_eq(run_cli(out, sizeof out, args), 1);
    char line[128];
    for (int i = 0; i < N; i++) {
        if (on_a[i]) {
            snprintf(line, sizeof line, "%s: raised TO from 0 to %d", names[i],
                     100 + i);
            ASSERT_HAS(out, line);
            ck_assert_uint_eq(value_of(tu, names[i]), 100 + (uint64_t)i);
        } else {
            snprintf(line, sizeof line, "%s: not in FROM: not migrated",
                     names[i]);
            ASSERT_HAS(out, line);
            ck_assert_uint_eq(value_of(tu, names[i]), 0);
        }
    }
    snprintf(line, sizeof line, "%d of %d counters not migrated: ", N - na, N);
    ASSERT_HAS(out, line);
    server_stop(&a, 0);
    server_stop(&b, 0);
}
END_TEST

/* A counter FROM cannot read (not a number; at or past 2^63, set by another
 * tool) is named and makes the exit code 1; the others are still copied,
 * and the last line names every counter that was not. */
START_TEST(test_unreadable_counter_fails_migrate_others_copied)
{
    stores s;
    stores_start(&s, 0);
    char fu[PATH_MAX + 128], tu[PATH_MAX + 128];
    uri_of(&s, MEMCACHED, "?prefix=u.", fu, sizeof fu);
    uri_of(&s, SQLITE, "?prefix=u.", tu, sizeof tu);
    idp_client *c = tu_open(fu, NULL);
    ck_assert_int_eq(idp_raise(c, "good", 40, NULL, NULL), IDP_OK);
    idp_close(c);
    mc_set_raw(s.memcached.port, "u.word", "abc");
    mc_set_raw(s.memcached.port, "u.huge", "18446744073709551610");
    char out[8192];
    const char *args[] = {"migrate", fu, tu, "word", "good", "huge", NULL};
    ck_assert_int_eq(run_cli(out, sizeof out, args), 1);
    ASSERT_HAS(out, "word: reading FROM: ");
    ASSERT_HAS(out, "'u.word' holds 'abc'");
    ASSERT_HAS(out, "good: raised TO from 0 to 40");
    ASSERT_HAS(out, "huge: reading FROM: ");
    ASSERT_HAS(out, "18446744073709551610");
    ASSERT_HAS(out, "2 of 3 counters not migrated: word, huge");
    ck_assert_uint_eq(value_of(tu, "good"), 40);
    ck_assert_uint_eq(value_of(tu, "word"), 0);
    ck_assert_uint_eq(value_of(tu, "huge"), 0);
    stores_stop(&s);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_migrate_every_pair_raises_never_lowers,
        test_dry_run_changes_nothing,
        test_migrate_without_names_takes_every_counter,
        test_memcached_needs_counter_names,
        test_counter_not_in_from_is_never_skipped_silently,
        test_unreadable_counter_fails_migrate_others_copied, NULL};
    const tu_case cases[] = {
        {.name = "migrate", .tests = tests}, {.name = NULL}};
    return tu_run(tu_suite("migrate", 180, cases));
}
