/*
 * test_redis_cluster.c - the redis-cluster store against a real Redis
 * Cluster of 3 masters (redis_cluster_helpers.c starts it on free loopback
 * ports with redis-cli --cluster create): each counter on the master of
 * its slot, counters fetched together as one pipeline per master, a slot
 * resharded under running threads with every MOVED and ASK followed and no
 * ID twice, and listing and migrate walking every master.
 *
 * The servers' own counts tell what happened: INFO commandstats (INCRBY
 * calls), INFO errorstats (MOVED and ASK replies sent) and INFO stats
 * total_reads_processed (one per request a client wrote at once).
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "redis_cluster_helpers.h"
#include "redis_helpers.h"
#include "testutil.h"

/* Counter names whose keys (prefix + name) land on every master: `n`
 * names "<stem>0".. into names[], their owners into owner[]. */
static void names_on_every_master(const cluster *k, const char *prefix,
                                  const char *stem, int n,
                                  char names[][16], int *owner)
{
    int per[CLUSTER_MAX] = {0};
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(names[i], 16, "%s%d", stem, i);
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        owner[i] = cluster_owner(k, 0, cluster_keyslot(k, key));
        ck_assert_int_ge(owner[i], 0);
        per[owner[i]]++;
    }
    for (int m = 0; m < k->n; m++)
        ck_assert_msg(per[m] > 0, "no counter of %d on master %d", n, m);
}

static void reset_stats(const cluster *k)
{
    char out[64];
    for (int i = 0; i < k->n; i++) {
        raw(&k->node[i], NULL, "CONFIG RESETSTAT", out, sizeof out);
        ck_assert_str_eq(out, "+OK");
    }
}

/* ---- Threads on many counters -------------------------------------------- */

#define NCTR 12
#define THREADS 4
#define ROUNDS 1500

typedef struct spread {
    idp_counter **ctr;
    int nctr;
    uint64_t *ids;      /* ids[c * ROUNDS + round] */
    char why[256];
} spread;

/* Takes one ID of every counter per round, checking each counter's IDs
 * increase in this thread. */
static void *take_spread(void *arg)
{
    spread *t = arg;
    for (int r = 0; r < ROUNDS; r++)
        for (int c = 0; c < t->nctr; c++) {
            idp_error err;
            uint64_t id = 0;
            if (idp_next(t->ctr[c], &id, &err) != IDP_OK) {
                snprintf(t->why, sizeof t->why, "%s", err.msg);
                return NULL;
            }
            if (r > 0 && id <= t->ids[c * ROUNDS + r - 1]) {
                snprintf(t->why, sizeof t->why, "counter %d: %llu after "
                         "%llu", c, (unsigned long long)id,
                         (unsigned long long)t->ids[c * ROUNDS + r - 1]);
                return NULL;
            }
            t->ids[c * ROUNDS + r] = id;
        }
    return NULL;
}

START_TEST(test_4_threads_on_12_counters_over_3_masters_no_duplicate)
{
    cluster k;
    cluster_start(&k, 3);
    char names[NCTR][16];
    int owner[NCTR];
    names_on_every_master(&k, "", "k", NCTR, names, owner);
    reset_stats(&k);
    /* small batches fetched early: the worker fetches several counters
     * at once (incr_many) */
    idp_client *c = tu_open(cluster_uri(&k, "?batch=20&low_watermark=50&"
                                        "adaptive=0"), &with_log);
    ck_assert_str_eq(idp_client_store(c), "redis-cluster");
    idp_counter *ctr[NCTR];
    for (int i = 0; i < NCTR; i++)
        ctr[i] = tu_counter(c, names[i]);
    spread t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (spread){.ctr = ctr, .nctr = NCTR};
        t[i].ids = calloc(NCTR * ROUNDS, sizeof *t[i].ids);
        ck_assert_ptr_nonnull(t[i].ids);
        ck_assert_int_eq(pthread_create(&th[i], NULL, take_spread, &t[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        ck_assert_msg(t[i].why[0] == '\0', "thread %d: %s", i, t[i].why);

    uint64_t fetches = 0, incrbys = 0;
    uint64_t *all = malloc(THREADS * ROUNDS * sizeof *all);
    for (int n = 0; n < NCTR; n++) {
        for (int i = 0; i < THREADS; i++)
            memcpy(all + i * ROUNDS, t[i].ids + n * ROUNDS,
                   ROUNDS * sizeof *all);
        tu_assert_distinct(all, THREADS * ROUNDS);
        idp_counter_stats st = tu_settle(ctr[n]);
        ck_assert_uint_eq(st.errors, 0);
        fetches += st.prime_calls;
        /* the key is on the master of its slot, and only there */
        uint64_t v = tu_get(c, names[n], NULL);
        ck_assert_uint_ge(v, all[THREADS * ROUNDS - 1]);
        ck_assert_uint_eq(value_on(&k.node[owner[n]], names[n]), v);
        unsigned slot = cluster_keyslot(&k, names[n]);
        for (int m = 0; m < k.n; m++)
            if (m != owner[n])
                ck_assert_uint_eq(cluster_keys_in_slot(&k, m, slot), 0);
    }
    for (int m = 0; m < k.n; m++) {
        /* routed by the right hash slot: no node ever redirected */
        ck_assert_uint_eq(cluster_errors(&k, m, "MOVED"), 0);
        ck_assert_uint_eq(cluster_errors(&k, m, "ASK"), 0);
        incrbys += server_incrbys(&k.node[m]);
    }
    /* one INCRBY per fetch, and the plugin sums the masters' counts */
    ck_assert_uint_eq(incrbys, fetches);
    uint64_t rt = 0;
    ck_assert_int_eq(idp_store_roundtrips(c, &rt, NULL), IDP_OK);
    ck_assert_uint_eq(rt, incrbys);
    for (int i = 0; i < THREADS; i++)
        free(t[i].ids);
    free(all);
    idp_close(c);
    cluster_stop(&k);
}
END_TEST

/* ---- One pipeline per master ------------------------------------------- */

/* The reads each node served while a client opened with `query`. */
static void reads_of_open(const cluster *k, const char *query,
                          uint64_t *reads)
{
    uint64_t before[CLUSTER_MAX];
    for (int m = 0; m < k->n; m++)
        before[m] = cluster_reads(k, m);
    idp_client *c = tu_open(cluster_uri(k, query), &with_log);
    for (int m = 0; m < k->n; m++)
        reads[m] = cluster_reads(k, m) - before[m];
    idp_close(c);
}

START_TEST(test_prime_of_30_counters_is_one_pipeline_per_master)
{
    cluster k;
    cluster_start(&k, 3);
    char names[30][16], query[512] = "?batch=10&prime=";
    int owner[30], per[CLUSTER_MAX] = {0};
    names_on_every_master(&k, "", "p", 30, names, owner);
    for (int i = 0; i < 30; i++) {
        strcat(query, names[i]);
        strcat(query, i < 29 ? "," : "");
        per[owner[i]]++;
    }
    uint64_t plain[CLUSTER_MAX], primed[CLUSTER_MAX];
    reads_of_open(&k, "?batch=10", plain);
    reset_stats(&k);
    reads_of_open(&k, query, primed);
    for (int m = 0; m < k.n; m++) {
        /* the open with prime= cost each master one more read: its
         * INCRBYs arrived as one pipeline, all of them */
        ck_assert_msg(primed[m] == plain[m] + 1, "master %d: %llu reads "
                      "with prime, %llu without", m,
                      (unsigned long long)primed[m],
                      (unsigned long long)plain[m]);
        ck_assert_uint_eq(server_incrbys(&k.node[m]), (uint64_t)per[m]);
    }
    printf("prime of 30 counters: %d + %d + %d INCRBY, one read on each "
           "master\n", per[0], per[1], per[2]);
    cluster_stop(&k);
}
END_TEST

/* ---- Resharding under load ---------------------------------------------- */

typedef struct mover {
    idp_counter *ctr[2];
    atomic_int *stop;
    uint64_t *ids[2];
    atomic_size_t n;
    char why[256];
} mover;

#define MOVER_CAP 200000

static void *take_moving(void *arg)
{
    mover *t = arg;
    size_t n = 0;
    while (!atomic_load(t->stop) && n < MOVER_CAP) {
        for (int c = 0; c < 2; c++) {
            idp_error err;
            uint64_t id = 0;
            if (idp_next(t->ctr[c], &id, &err) != IDP_OK) {
                snprintf(t->why, sizeof t->why, "%s", err.msg);
                return NULL;
            }
            if (n > 0 && id <= t->ids[c][n - 1]) {
                snprintf(t->why, sizeof t->why, "%llu after %llu",
                         (unsigned long long)id,
                         (unsigned long long)t->ids[c][n - 1]);
                return NULL;
            }
            t->ids[c][n] = id;
        }
        atomic_store(&t->n, ++n);
        tu_sleep_us(50);   /* pacing, so the arrays last */
    }
    return NULL;
}

static size_t moved_total(mover *t)
{
    size_t n = 0;
    for (int i = 0; i < THREADS; i++)
        n += atomic_load(&t[i].n);
    return n;
}

/* Waits until the threads took `more` rounds beyond now. */
static void wait_rounds(mover *t, size_t more)
{
    size_t want = moved_total(t) + more;
    long long deadline = tu_now_ms() + 20000;
    while (moved_total(t) < want) {
        for (int i = 0; i < THREADS; i++)
            ck_assert_msg(t[i].why[0] == '\0', "thread %d: %s", i, t[i].why);
        ck_assert_msg(tu_now_ms() < deadline, "the threads stalled");
        tu_sleep_ms(5);
    }
}

/* Waits until node `m` answered `kind` at least `n` times. */
static void wait_errors(const cluster *k, int m, const char *kind, uint64_t n)
{
    long long deadline = tu_now_ms() + 20000;
    while (cluster_errors(k, m, kind) < n) {
        ck_assert_msg(tu_now_ms() < deadline, "node %d sent no %s", m, kind);
        tu_sleep_ms(5);
    }
}

START_TEST(test_slot_resharded_mid_run_moved_and_ask_followed_no_duplicate)
{
    cluster k;
    cluster_start(&k, 3);
    /* the prefix's hash tag puts both counters in one slot */
    unsigned slot = cluster_keyslot(&k, "{mig}");
    int from = cluster_owner(&k, 0, slot), to = (from + 1) % 3;
    idp_client *c = tu_open(cluster_uri(&k, "?prefix=%7Bmig%7D&batch=5&"
                                        "low_watermark=0&adaptive=0"),
                            &with_log);
    atomic_int stop = 0;
    mover t[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i] = (mover){.ctr = {tu_counter(c, "a"), tu_counter(c, "b")},
                       .stop = &stop};
        for (int j = 0; j < 2; j++)
            ck_assert_ptr_nonnull(t[i].ids[j] = malloc(MOVER_CAP * 8));
        ck_assert_int_eq(pthread_create(&th[i], NULL, take_moving, &t[i]),
                         0);
    }
    wait_rounds(t, 400);
    reset_stats(&k);

    /* "a" moves first: while the slot migrates, "a" is answered with ASK
     * by the old owner and served by the new one after ASKING, "b" still
     * by the old owner */
    cluster_migrate_begin(&k, slot, from, to);
    cluster_migrate_key(&k, from, to, "{mig}a");
    wait_errors(&k, from, "ASK", 10);
    wait_rounds(t, 200);
    cluster_migrate_key(&k, from, to, "{mig}b");
    wait_rounds(t, 200);
    /* the slot is the new owner's: the old one answers MOVED, once per
     * client connection, and the map is read again */
    cluster_migrate_end(&k, slot, to);
    wait_errors(&k, from, "MOVED", 1);
    wait_rounds(t, 400);
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++)
        ck_assert_msg(t[i].why[0] == '\0', "thread %d: %s", i, t[i].why);

    uint64_t asks = cluster_errors(&k, from, "ASK");
    uint64_t moved = cluster_errors(&k, from, "MOVED");
    size_t total = moved_total(t);
    uint64_t *all = malloc(total * sizeof *all);
    for (int j = 0; j < 2; j++) {
        size_t n = 0;
        for (int i = 0; i < THREADS; i++) {
            memcpy(all + n, t[i].ids[j], atomic_load(&t[i].n) * sizeof *all);
            n += atomic_load(&t[i].n);
        }
        tu_assert_distinct(all, n);
        idp_counter_stats st = tu_settle(t[0].ctr[j]);
        /* redirections cost the callers nothing: no failed fetch */
        ck_assert_uint_eq(st.errors, 0);
        const char *key = j == 0 ? "{mig}a" : "{mig}b";
        ck_assert_uint_ge(value_on(&k.node[to], key), all[n - 1]);
    }
    ck_assert_uint_eq(cluster_keys_in_slot(&k, from, slot), 0);
    ck_assert_uint_eq(cluster_keys_in_slot(&k, to, slot), 2);
    printf("resharding slot %u from master %d to %d: %zu rounds of IDs, "
           "%llu ASK and %llu MOVED followed\n", slot, from, to, total,
           (unsigned long long)asks, (unsigned long long)moved);
    tu_listed l = {0};
    ck_assert_int_eq(idp_list(c, tu_listed_cb, &l, NULL), IDP_OK);
    ck_assert_int_eq(l.n, 2);
    for (int i = 0; i < THREADS; i++) {
        free(t[i].ids[0]);
        free(t[i].ids[1]);
    }
    free(all);
    idp_close(c);
    cluster_stop(&k);
}
END_TEST

/* ---- Listing and migrate ---------------------------------------------- */

/* Runs `$IDPRIME_CLI args` (through the shell); its output into out.
 * Returns its exit status. */
static int run_cli(const char *args, char *out, size_t len)
{
    const char *cli = getenv("IDPRIME_CLI");
    ck_assert_msg(cli != NULL, "IDPRIME_CLI is not set: run through ctest");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", cli, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t got = fread(out, 1, len - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_list_and_migrate_walk_every_master)
{
    cluster k;
    cluster_start(&k, 3);
    char names[9][16];
    int owner[9];
    names_on_every_master(&k, "app.", "n", 9, names, owner);
    idp_client *c = tu_open(cluster_uri(&k, "?prefix=app."), &with_log);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(idp_raise(c, names[i], 1000 + (uint64_t)i, NULL,
                                   NULL), IDP_OK);
    /* another prefix's counter is not listed */
    idp_client *other = tu_open(cluster_uri(&k, "?prefix=other."),
                                &with_log);
    ck_assert_int_eq(idp_raise(other, "n0", 5, NULL, NULL), IDP_OK);
    idp_close(other);
    tu_listed l = {0};
    ck_assert_int_eq(idp_list(c, tu_listed_cb, &l, NULL), IDP_OK);
    ck_assert_int_eq(l.n, 9);
    for (int i = 0; i < 9; i++) {
        int at = tu_listed_find(&l, names[i]);
        ck_assert_msg(at >= 0, "'%s' (master %d) not listed", names[i],
                      owner[i]);
        ck_assert_uint_eq(l.values[at], 1000 + (uint64_t)i);
    }
    /* listed in key order, as every store lists */
    for (int i = 1; i < 9; i++)
        ck_assert_str_lt(l.names[i - 1], l.names[i]);
    idp_close(c);

    /* migrate with no names moves every counter of every master */
    server r;
    start_redis(&r, NULL);
    char args[1024], to[256], out[8192];
    server_uri(&r, "?prefix=app.", to, sizeof to);
    snprintf(args, sizeof args, "migrate '%s' '%s'",
             cluster_uri(&k, "?prefix=app."), to);
    int rc = run_cli(args, out, sizeof out);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
    for (int i = 0; i < 9; i++) {
        char key[32];
        snprintf(key, sizeof key, "app.%s", names[i]);
        ck_assert_uint_eq(value_on(&r, key), 1000 + (uint64_t)i);
    }
    ck_assert_uint_eq(value_on(&r, "other.n0"), 0);
    server_stop(&r, 0);
    cluster_stop(&k);
}
END_TEST

/* ---- What is refused, and why ----------------------------------------- */

START_TEST(test_failures_are_named)
{
    cluster k;
    cluster_start(&k, 3);
    idp_error err;
    char uri[512];
    /* redis:// on a cluster node is refused at open, naming the scheme */
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", k.node[1].port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "use redis-cluster://") != NULL, "%s",
                  err.msg);
    /* an unreachable seed first: the next one gives the map */
    snprintf(uri, sizeof uri, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d",
             harness_free_port(), k.node[2].port);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "seeded")), 1);
    idp_close(c);
    /* a failed prime names the store's own reason for the counter */
    char cmd[64], out[64];
    unsigned slot = cluster_keyslot(&k, "hashed");
    int owner = cluster_owner(&k, 0, slot);
    snprintf(cmd, sizeof cmd, "HSET hashed f 1");
    raw(&k.node[owner], NULL, cmd, out, sizeof out);
    ck_assert_str_eq(out, ":1");
    ck_assert_ptr_null(try_open(cluster_uri(&k, "?prime=ok1,hashed,ok2"),
                                &err));
    ck_assert_msg(strstr(err.msg, "counter 'hashed'") != NULL &&
                  strstr(err.msg, "WRONGTYPE") != NULL, "%s", err.msg);
    /* wait_replicas on masters without replicas: every write fails,
     * naming the master */
    c = tu_open(cluster_uri(&k, "?wait_replicas=1&timeout_ms=300"),
                &with_log);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(tu_counter(c, "durable"), &id, &err),
                     IDP_ETIMEOUT);
    char on[64];
    snprintf(on, sizeof on, "on 127.0.0.1:%d",
             k.node[cluster_owner(&k, 0, cluster_keyslot(&k, "durable"))]
                 .port);
    ck_assert_msg(strstr(err.msg, "only 0 of 1 replicas acknowledged") &&
                  strstr(err.msg, on), "%s", err.msg);
    ck_assert_int_eq(idp_raise(c, "durable", 10, NULL, &err), IDP_ETIMEOUT);
    idp_close(c);
    /* a path (a db) and no host at all */
    ck_assert_ptr_null(try_open(cluster_uri(&k, "/2"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "only db 0") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open("redis-cluster:///x", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    cluster_stop(&k);

    /* a seed that is no cluster node, and no seed answering */
    server s;
    start_redis(&s, NULL);
    snprintf(uri, sizeof uri, "redis-cluster://127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "not a cluster node: use redis://") != NULL,
                  "%s", err.msg);
    server_stop(&s, 0);
    snprintf(uri, sizeof uri, "redis-cluster://127.0.0.1:%d",
             harness_free_port());
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "no node gave the cluster's slot map") !=
                  NULL, "%s", err.msg);
}
END_TEST

/* A forked child drops the parent's connections (drop), opens its own,
 * and never serves an ID the parent held; the parent goes on. */
START_TEST(test_fork_child_and_parent_never_share_an_id)
{
    cluster k;
    cluster_start(&k, 3);
    idp_client *c = tu_open(cluster_uri(&k, "?batch=100"), &with_log);
    idp_counter *ctr = tu_counter(c, "forked");
    uint64_t ids[30];
    for (int i = 0; i < 10; i++)
        ids[i] = tu_next(ctr);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        uint64_t mine[10];
        int ok = 1;
        for (int i = 0; i < 10 && ok; i++)
            ok = idp_next(ctr, &mine[i], NULL) == IDP_OK;
        idp_close(c);
        _exit(ok && tu_write_all(fds[1], mine, sizeof mine) == 0 ? 0 : 1);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], ids + 10, 10 * sizeof *ids),
                     (ssize_t)(10 * sizeof *ids));
    close(fds[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 20; i < 30; i++)
        ids[i] = tu_next(ctr);
    tu_assert_distinct(ids, 30);
    idp_close(c);
    cluster_stop(&k);
}
END_TEST

int main(void)
{
    const TTest *routing[] = {
        test_4_threads_on_12_counters_over_3_masters_no_duplicate,
        test_prime_of_30_counters_is_one_pipeline_per_master,
        test_slot_resharded_mid_run_moved_and_ask_followed_no_duplicate,
        test_list_and_migrate_walk_every_master,
        test_failures_are_named,
        test_fork_child_and_parent_never_share_an_id, NULL};
    const tu_case cases[] = {{.name = "cluster", .tests = routing},
                             {.name = NULL}};
    return tu_run(tu_suite("redis_cluster", 180, cases));
}
