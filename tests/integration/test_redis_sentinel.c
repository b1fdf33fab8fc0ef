/*
 * test_redis_sentinel.c - the redis-sentinel store against a real master,
 * two replicas and a Redis Sentinel (harness.h starts them all on free
 * loopback ports): the master is found through the sentinel, its role is
 * checked, a failover is followed, and wait_replicas keeps a failover from
 * handing out an ID twice.
 *
 * The failover tests SIGKILL the master while 4 threads of one client
 * allocate. Replication is cut just before (the master's ACL refuses the
 * replicas' PSYNC, and their links are killed), so the master runs ahead
 * of both replicas: without wait_replicas the client has been served IDs
 * that the promoted replica never saw, and its answers after the failover
 * are refused as regressions; with wait_replicas=1 the fetches fail
 * instead, and no served ID is missing from the promoted replica.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "redis_helpers.h"
#include "testutil.h"

#define NAME "idpm"
/* the sentinel calls a master down after this long without an answer */
#define DOWN_AFTER_MS 1000

/* ---- A master, its replicas and a sentinel -------------------------------- */

typedef struct rig {
    server m, r[2], s;
} rig;

/* "redis-sentinel://127.0.0.1:PORT/name" + query, in a static buffer. */
static char *sentinel_uri(const server *s, const char *name,
                          const char *query)
{
    static char uri[512];
    snprintf(uri, sizeof uri, "redis-sentinel://127.0.0.1:%d/%s%s", s->port,
             name, query != NULL ? query : "");
    return uri;
}

/* The sentinel's own line about master `name` in INFO sentinel
 * ("master0:name=idpm,status=ok,address=127.0.0.1:P,slaves=2,..."). */
static void sentinel_line(const server *s, const char *name, char *out,
                          size_t len)
{
    static char info[8192];
    char want[64];
    raw(s, NULL, "INFO sentinel", info, sizeof info);
    snprintf(want, sizeof want, ":name=%s,", name);
    const char *p = strstr(info, want);
    const char *end = p != NULL ? strstr(p, "\r\n") : NULL;
    snprintf(out, len, "%.*s", end != NULL ? (int)(end - p) : 0,
             p != NULL ? p : "");
}

/* Waits until the sentinel knows `replicas` replicas of the master. */
static void sentinel_wait_replicas(const server *s, const char *name,
                                   int replicas)
{
    char line[512], want[32];
    snprintf(want, sizeof want, ",slaves=%d,", replicas);
    long long deadline = tu_now_ms() + 20000;
    do {
        sentinel_line(s, name, line, sizeof line);
        if (strstr(line, want) != NULL && strstr(line, "status=ok") != NULL)
            return;
        tu_sleep_ms(50);
    } while (tu_now_ms() < deadline);
    ck_abort_msg("the sentinel does not see %d replicas of %s: %s", replicas,
                 name, line);
}

/* The port of the master the sentinel names now. */
static int sentinel_master_port(const server *s, const char *name)
{
    char line[512];
    sentinel_line(s, name, line, sizeof line);
    const char *p = strstr(line, "address=");
    const char *colon = p != NULL ? strchr(p, ':') : NULL;
    return colon != NULL ? atoi(colon + 1) : 0;
}

/* A master with two replicas, and a sentinel (quorum 1) that has seen
 * both replicas. Full syncs go through a file, at once (diskless sync
 * would wait 5 s for more replicas after a failover). */
static void rig_start(rig *g)
{
    char out[64], extra[256];
    start_redis(&g->m, NULL);
    for (int i = 0; i < 2; i++) {
        start_replica(&g->r[i], &g->m);
        raw(&g->r[i], NULL, "CONFIG SET repl-diskless-sync no", out,
            sizeof out);
        ck_assert_str_eq(out, "+OK");
    }
    snprintf(extra, sizeof extra, "--sentinel monitor " NAME " 127.0.0.1 %d 1 "
             "--sentinel down-after-milliseconds " NAME " %d "
             "--sentinel failover-timeout " NAME " 3000", g->m.port,
             DOWN_AFTER_MS);
    ck_assert_msg(server_start(&g->s, "redis-sentinel", extra) == 0,
                  "redis-sentinel did not start");
    sentinel_wait_replicas(&g->s, NAME, 2);
}

/* A master alone and a sentinel (quorum 1) watching it: for the
 * lookup's failures, where no failover happens. */
static void small_rig_start(rig *g)
{
    char extra[128];
    start_redis(&g->m, NULL);
    snprintf(extra, sizeof extra, "--sentinel monitor " NAME " 127.0.0.1 %d "
             "1", g->m.port);
    ck_assert_int_eq(server_start(&g->s, "redis-sentinel", extra), 0);
}

static void rig_stop(rig *g)
{
    server_stop(&g->s, 0);
    for (int i = 0; i < 2; i++)
        server_stop(&g->r[i], 0);
    server_stop(&g->m, 0);
}

/* ---- Finding the master ------------------------------------------------- */

START_TEST(test_ids_come_from_the_master_the_sentinel_names)
{
    rig g;
    rig_start(&g);
    char out[64];
    idp_client *c = tu_open(sentinel_uri(&g.s, NAME, "?batch=10&adaptive=0"
                                         "&low_watermark=0"), &with_log);
    ck_assert_str_eq(idp_client_store(c), "redis-sentinel");
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 25; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    /* the increments went to the master, and reached its replicas */
    ck_assert_uint_eq(value_on(&g.m, "ids"), 30);
    raw(&g.m, NULL, "WAIT 2 2000", out, sizeof out);
    ck_assert_str_eq(out, ":2");
    ck_assert_uint_eq(value_on(&g.r[0], "ids"), 30);
    ck_assert_uint_eq(value_on(&g.r[1], "ids"), 30);
    /* get, raise and list go there too */
    uint64_t got = 0;
    ck_assert_int_eq(idp_raise(c, "raised", 700, &got, NULL), IDP_OK);
    ck_assert_uint_eq(value_on(&g.m, "raised"), 700);
    ck_assert_uint_eq(tu_get(c, "raised", NULL), 700);
    tu_listed l = {0};
    ck_assert_int_eq(idp_list(c, tu_listed_cb, &l, NULL), IDP_OK);
    ck_assert_int_eq(l.n, 2);
    ck_assert_uint_eq(l.values[tu_listed_find(&l, "ids")], 30);
    ck_assert_uint_eq(l.values[tu_listed_find(&l, "raised")], 700);
    idp_close(c);

    /* an unreachable sentinel first in the list: the next one answers */
    char uri[512];
    snprintf(uri, sizeof uri, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/"
             NAME, harness_free_port(), g.s.port);
    c = tu_open(uri, &with_log);
    /* on from the 25 served: the close gave back 26..30 */
    ck_assert_uint_eq(tu_next(tu_counter(c, "ids")), 26);
    idp_close(c);
    rig_stop(&g);
}
END_TEST

START_TEST(test_lookup_failures_are_named)
{
    rig g;
    small_rig_start(&g);
    idp_error err;
    /* a name the sentinel does not monitor */
    ck_assert_ptr_null(try_open(sentinel_uri(&g.s, "nosuch", NULL), &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "knows no master 'nosuch'") != NULL, "%s",
                  err.msg);
    /* no sentinel answers: each one's reason */
    char uri[512];
    int p1 = harness_free_port(), p2 = harness_free_port();
    snprintf(uri, sizeof uri, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/"
             NAME, p1, p2);
    ck_assert_ptr_null(try_open(uri, &err));
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "sentinel 127.0.0.1:%d", p1);
    snprintf(s2, sizeof s2, "sentinel 127.0.0.1:%d", p2);
    ck_assert_msg(strstr(err.msg, "no sentinel named the master 'idpm'") !=
                      NULL && strstr(err.msg, s1) != NULL &&
                      strstr(err.msg, s2) != NULL, "%s", err.msg);
    /* no master name, no sentinel */
    ck_assert_ptr_null(try_open("redis-sentinel://127.0.0.1:1", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "names no master") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open("redis-sentinel:///" NAME, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "names no sentinel") != NULL, "%s",
                  err.msg);
    server_stop(&g.s, 0);
    server_stop(&g.m, 0);
}
END_TEST

/* A listening socket on 127.0.0.1 that nobody accepts on: connects
 * succeed (the kernel's backlog), commands are never answered. Returns
 * its fd; *port is set. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/*
 * Guarantee 5 with several sentinels: they share one timeout_ms. Three
 * silent sentinels (they accept, never answer) before the real one: the
 * lookup still reaches the real one, and the whole open takes less than
 * twice timeout_ms (each silent one used to take all of timeout_ms: 3 x
 * 600 ms). With only silent ones, it fails as soon, naming each.
 */
START_TEST(test_silent_sentinels_share_one_timeout)
{
    rig g;
    small_rig_start(&g);
    int port[3], fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = silent_listener(&port[i]);
    char uri[512];
    snprintf(uri, sizeof uri, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,"
             "127.0.0.1:%d,127.0.0.1:%d/" NAME "?timeout_ms=600", port[0],
             port[1], port[2], g.s.port);
    idp_error err;
    long long t0 = tu_now_ms();
    idp_client *c = try_open(uri, &err);
    long long took = tu_now_ms() - t0;
    ck_assert_msg(c != NULL, "%s", err.msg);
    ck_assert_msg(took < 1200, "the open took %lld ms with timeout_ms=600 "
                  "and three silent sentinels", took);
    ck_assert_uint_eq(tu_next(tu_counter(c, "ids")), 1);
    idp_close(c);

    snprintf(uri, sizeof uri, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,"
             "127.0.0.1:%d/" NAME "?timeout_ms=600", port[0], port[1],
             port[2]);
    t0 = tu_now_ms();
    ck_assert_ptr_null(try_open(uri, &err));
    took = tu_now_ms() - t0;
    ck_assert_msg(took < 1200, "the failure took %lld ms with "
                  "timeout_ms=600", took);
    ck_assert_msg(strstr(err.msg, "3 sentinels sharing timeout_ms=600") !=
                  NULL, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        char who[64];
        snprintf(who, sizeof who, "sentinel 127.0.0.1:%d", port[i]);
        ck_assert_msg(strstr(err.msg, who) != NULL, "%s", err.msg);
        close(fd[i]);
    }
    server_stop(&g.s, 0);
    server_stop(&g.m, 0);
}
END_TEST

/*
 * A master demoted under a client: its next write meets READONLY and
 * fails (never retried); the call after asks the sentinel, whose answer
 * (still the demoted server) says ROLE slave and is refused; once the
 * sentinel names the new master, the IDs go on above the old ones.
 */
START_TEST(test_readonly_and_a_replica_named_as_master_are_followed)
{
    server x, y, s;
    char out[64], cmd[128];
    start_redis(&x, NULL);
    start_replica(&y, &x);
    snprintf(cmd, sizeof cmd, "--sentinel monitor ro 127.0.0.1 %d 1 "
             "--sentinel down-after-milliseconds ro 60000", x.port);
    ck_assert_int_eq(server_start(&s, "redis-sentinel", cmd), 0);
    idp_client *c = tu_open(sentinel_uri(&s, "ro", "?metaprime=0"),
                            &with_log);
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    raw(&x, NULL, "WAIT 1 2000", out, sizeof out);
    ck_assert_str_eq(out, ":1");

    /* y takes over by hand; x follows it; the sentinel still names x */
    raw(&y, NULL, "REPLICAOF NO ONE", out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    snprintf(cmd, sizeof cmd, "REPLICAOF 127.0.0.1 %d", y.port);
    raw(&x, NULL, cmd, out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    log_clear();
    idp_error err;
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(ctr, &id, &err), IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "READONLY") != NULL, "%s", err.msg);
    ck_assert_msg(log_has("answered READONLY: it is a replica now"), "%s",
                  log_text);
    ck_assert_int_eq(idp_next(ctr, &id, &err), IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "but it says ROLE slave") != NULL, "%s",
                  err.msg);
    ck_assert_uint_eq(id, 0);

    /* the sentinel learns of y: the next call goes there */
    raw(&s, NULL, "SENTINEL REMOVE ro", out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    snprintf(cmd, sizeof cmd, "SENTINEL MONITOR ro 127.0.0.1 %d 1", y.port);
    raw(&s, NULL, cmd, out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    ck_assert_uint_eq(tu_next(ctr), 6);
    ck_assert_uint_eq(value_on(&y, "ids"), 6);
    idp_close(c);
    server_stop(&s, 0);
    server_stop(&y, 0);
    server_stop(&x, 0);
}
END_TEST

START_TEST(test_passwords_of_the_master_and_of_the_sentinels)
{
    server m, s;
    char extra[200];
    start_redis(&m, "--requirepass mpw");
    snprintf(extra, sizeof extra, "--requirepass spw --sentinel monitor "
             NAME " 127.0.0.1 %d 1 --sentinel auth-pass " NAME " mpw",
             m.port);
    ck_assert_int_eq(server_start(&s, "redis-sentinel", extra), 0);
    char uri[512];
    snprintf(uri, sizeof uri, "redis-sentinel://:mpw@127.0.0.1:%d/" NAME
             "?sentinel_password=spw", s.port);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "ids")), 1);
    idp_close(c);
    /* the sentinel's password missing: the sentinel says why */
    idp_error err;
    snprintf(uri, sizeof uri, "redis-sentinel://:mpw@127.0.0.1:%d/" NAME,
             s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    char who[64];
    snprintf(who, sizeof who, "sentinel 127.0.0.1:%d: NOAUTH", s.port);
    ck_assert_msg(strstr(err.msg, who) != NULL, "%s", err.msg);
    /* a wrong one: authentication to the sentinel failed */
    snprintf(uri, sizeof uri, "redis-sentinel://:mpw@127.0.0.1:%d/" NAME
             "?sentinel_password=nope", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "authentication to sentinel") != NULL,
                  "%s", err.msg);
    /* the master's password missing: the master says NOAUTH */
    snprintf(uri, sizeof uri, "redis-sentinel://127.0.0.1:%d/" NAME
             "?sentinel_password=spw", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "NOAUTH") != NULL &&
                  strstr(err.msg, "(master " NAME ")") != NULL, "%s",
                  err.msg);
    server_stop(&s, 0);
    server_stop(&m, 0);
}
END_TEST

START_TEST(test_bad_parameters_are_refused)
{
    idp_error err;
    ck_assert_ptr_null(try_open("redis-sentinel://127.0.0.1:1/" NAME
                                "?wait_replicas=101", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "'wait_replicas'") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open("redis-sentinel://127.0.0.1:1/" NAME
                                "?nosuch=1", &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "nosuch") != NULL, "%s", err.msg);
}
END_TEST

/* ---- Failover ------------------------------------------------------------ */

#define TAKERS 4
#define TAKER_CAP 400000

/* One thread taking IDs until told to stop; every ID and when. */
typedef struct taker {
    idp_counter *ctr;
    atomic_int *stop;
    uint64_t *ids;
    long long *at;             /* tu_now_ms() when each ID was served */
    atomic_size_t n;
    atomic_uint errors, refused;
    char first_err[256];
} taker;

static void *take(void *arg)
{
    taker *t = arg;
    while (!atomic_load(t->stop) && atomic_load(&t->n) < TAKER_CAP) {
        uint64_t id = 0;
        idp_error err;
        int rc = idp_next(t->ctr, &id, &err);
        if (rc == IDP_OK) {
            size_t n = atomic_load(&t->n);
            t->ids[n] = id;
            t->at[n] = tu_now_ms();
            atomic_store(&t->n, n + 1);
            tu_sleep_us(100);   /* pacing, so the arrays last */
            continue;
        }
        if (atomic_fetch_add(&t->errors, 1) == 0)
            snprintf(t->first_err, sizeof t->first_err, "%s", err.msg);
        atomic_fetch_add(&t->refused, rc == IDP_EREGRESS);
        tu_sleep_ms(2);         /* a client retrying, not synchronisation */
    }
    return NULL;
}

static size_t total_served(taker *t)
{
    size_t n = 0;
    for (int i = 0; i < TAKERS; i++)
        n += atomic_load(&t[i].n);
    return n;
}

static unsigned total_errors(taker *t)
{
    unsigned n = 0;
    for (int i = 0; i < TAKERS; i++)
        n += atomic_load(&t[i].errors);
    return n;
}

/* Waits until cond(t, arg) holds, failing the test after ms. */
static void wait_for(int (*cond)(taker *, size_t), taker *t, size_t arg,
                     int ms, const char *what)
{
    long long deadline = tu_now_ms() + ms;
    while (!cond(t, arg)) {
        ck_assert_msg(tu_now_ms() < deadline, "not within %d ms: %s (served "
                      "%zu, errors %u: %s)", ms, what, total_served(t),
                      total_errors(t), t[0].first_err);
        tu_sleep_ms(5);
    }
}

static int served_at_least(taker *t, size_t n)
{
    return total_served(t) >= n;
}

static int errors_at_least(taker *t, size_t n)
{
    return total_errors(t) >= n;
}

/* Every thread has served `n` IDs above above_threshold (set by the
 * caller: what the client held when the master died). */
static uint64_t above_threshold;
static int each_above(taker *t, size_t n)
{
    for (int i = 0; i < TAKERS; i++) {
        size_t k = 0, have = atomic_load(&t[i].n);
        for (size_t j = 0; j < have && k < n; j++)
            k += t[i].ids[j] > above_threshold;
        if (k < n)
            return 0;
    }
    return 1;
}

/* The master stops replicating: its replicas' PSYNC is refused by its ACL
 * and their links are cut, so they hold what they had. */
static void cut_replication(const server *m)
{
    char out[64];
    raw(m, NULL, "ACL SETUSER default -psync -sync", out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    raw(m, NULL, "CLIENT KILL TYPE replica", out, sizeof out);
    ck_assert_msg(strcmp(out, ":2") == 0, "CLIENT KILL: %s", out);
}

/*
 * 4 threads of one client allocate from one counter; replication is cut,
 * the threads go on (and with wait_replicas fail) for a while, the master
 * is SIGKILLed and the sentinel promotes a replica; every thread carries
 * on. Checks no ID twice, each thread's IDs increasing, and with
 * wait_replicas no ID served that the promoted replica did not hold and
 * no regression; without it, the regressions refused. Prints the time
 * from the kill to the first ID served from the new master.
 */
static void failover_run(int wait_replicas)
{
    rig g;
    rig_start(&g);
    char query[160];
    snprintf(query, sizeof query, "?batch=10&low_watermark=0&adaptive=0&"
             "timeout_ms=500%s", wait_replicas ? "&wait_replicas=1" : "");
    idp_client *c = tu_open(sentinel_uri(&g.s, NAME, query), &with_log);
    idp_counter *ctr = tu_counter(c, "ids");
    atomic_int stop = 0;
    taker t[TAKERS];
    pthread_t th[TAKERS];
    for (int i = 0; i < TAKERS; i++) {
        t[i] = (taker){.ctr = ctr, .stop = &stop};
        t[i].ids = malloc(TAKER_CAP * sizeof *t[i].ids);
        t[i].at = malloc(TAKER_CAP * sizeof *t[i].at);
        ck_assert(t[i].ids != NULL && t[i].at != NULL);
        ck_assert_int_eq(pthread_create(&th[i], NULL, take, &t[i]), 0);
    }
    wait_for(served_at_least, t, 2000, 20000, "2000 IDs before the cut");

    /* the master runs ahead of its replicas: with wait_replicas its
     * fetches fail, without it they are served */
    cut_replication(&g.m);
    if (wait_replicas)
        wait_for(errors_at_least, t, TAKERS, 20000, "a failed WAIT");
    else
        wait_for(served_at_least, t, total_served(t) + 500, 20000,
                 "500 IDs past the replicas");

    server_kill(&g.m);
    long long t_kill = tu_now_ms();
    size_t served_at_kill[TAKERS];
    for (int i = 0; i < TAKERS; i++)
        served_at_kill[i] = atomic_load(&t[i].n);
    /* what the replicas hold: frozen until one is promoted */
    uint64_t held[2] = {value_on(&g.r[0], "ids"), value_on(&g.r[1], "ids")};
    idp_counter_stats st = tu_stats(ctr);
    uint64_t high_at_kill = st.high;
    /* IDs above what the client held at the kill come from the new master */
    above_threshold = high_at_kill;
    wait_for(each_above, t, 50, 30000, "every thread 50 IDs after the "
             "failover");
    atomic_store(&stop, 1);
    for (int i = 0; i < TAKERS; i++)
        pthread_join(th[i], NULL);

    /* the sentinel's own address moves once its failover is complete,
     * after it already names the promoted replica to clients */
    int promoted = 0;
    long long deadline = tu_now_ms() + 20000;
    while ((promoted = sentinel_master_port(&g.s, NAME)) == g.m.port &&
           tu_now_ms() < deadline)
        tu_sleep_ms(20);
    int p = promoted == g.r[0].port ? 0 : promoted == g.r[1].port ? 1 : -1;
    ck_assert_msg(p >= 0, "the sentinel names port %d, no replica",
                  promoted);

    /* each thread's IDs increase; none is handed out twice */
    size_t n = 0, before_max_i = 0;
    uint64_t before_max = 0;
    long long first_new = 0;
    for (int i = 0; i < TAKERS; i++)
        n += atomic_load(&t[i].n);
    uint64_t *all = malloc(n * sizeof *all);
    ck_assert_ptr_nonnull(all);
    n = 0;
    for (int i = 0; i < TAKERS; i++) {
        size_t have = atomic_load(&t[i].n);
        for (size_t j = 0; j < have; j++) {
            if (j > 0)
                ck_assert_msg(t[i].ids[j] > t[i].ids[j - 1], "thread %d: "
                              "%llu after %llu", i,
                              (unsigned long long)t[i].ids[j],
                              (unsigned long long)t[i].ids[j - 1]);
            if (j < served_at_kill[i] && t[i].ids[j] > before_max) {
                before_max = t[i].ids[j];
                before_max_i = (size_t)i;
            }
            if (t[i].ids[j] > high_at_kill &&
                (first_new == 0 || t[i].at[j] < first_new))
                first_new = t[i].at[j];
            all[n++] = t[i].ids[j];
        }
    }
    tu_assert_distinct(all, n);
    st = tu_stats(ctr);
    unsigned errors = total_errors(t);
    printf("sentinel failover (wait_replicas=%d): kill to the first ID from "
           "the new master %lld ms; %zu IDs, %u failed calls, %llu "
           "regressions refused; served before the kill up to %llu, the "
           "promoted replica held %llu\n", wait_replicas, first_new - t_kill,
           n, errors, (unsigned long long)st.regressions,
           (unsigned long long)before_max, (unsigned long long)held[p]);
    ck_assert_int_gt(first_new, t_kill);
    if (wait_replicas) {
        /* every ID served had reached the replica now master */
        ck_assert_msg(before_max <= held[p], "thread %zu was served %llu, "
                      "the promoted replica held %llu", before_max_i,
                      (unsigned long long)before_max,
                      (unsigned long long)held[p]);
        ck_assert_uint_eq(st.regressions, 0);
    } else {
        /* the promoted replica lacked IDs that were served: the new
         * master's first answers went backwards and were refused */
        ck_assert_uint_gt(before_max, held[p]);
        ck_assert_uint_ge(st.regressions, 1);
    }
    for (int i = 0; i < TAKERS; i++) {
        free(t[i].ids);
        free(t[i].at);
    }
    free(all);
    idp_close(c);
    rig_stop(&g);
}

START_TEST(test_failover_with_wait_replicas_1_no_duplicate_no_regression)
{
    failover_run(1);
}
END_TEST

START_TEST(test_failover_without_wait_replicas_regressions_refused)
{
    failover_run(0);
}
END_TEST

int main(void)
{
    const TTest *lookup[] = {
        test_ids_come_from_the_master_the_sentinel_names,
        test_lookup_failures_are_named,
        test_silent_sentinels_share_one_timeout,
        test_readonly_and_a_replica_named_as_master_are_followed,
        test_passwords_of_the_master_and_of_the_sentinels,
        test_bad_parameters_are_refused, NULL};
    const TTest *failover[] = {
        test_failover_with_wait_replicas_1_no_duplicate_no_regression,
        test_failover_without_wait_replicas_regressions_refused, NULL};
    const tu_case cases[] = {{.name = "lookup", .tests = lookup},
                             {.name = "failover", .tests = failover},
                             {.name = NULL}};
    return tu_run(tu_suite("redis_sentinel", 180, cases));
}
