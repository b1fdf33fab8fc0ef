/*
 * test_redis.c - the redis store against a real redis-server, through the
 * public API only: one test per promise of DESIGN.md, asserting values.
 *
 * Every test starts its own server (harness.h) on a free loopback port.
 * The store's own counts are read over a raw socket with hand-written
 * inline commands ("INFO commandstats"), so the test links no Redis client;
 * a replica's own copy of a counter is read the same way, straight from
 * the replica ("GET key" on its port).
 */
#define _GNU_SOURCE  /* memmem */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "testutil.h"

/* ---- Helpers ------------------------------------------------------------ */

/* Everything the library logged, a "\nLEVEL:message" line each. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[32768];

static void log_cb(void *ud, int level, const char *msg)
{
    (void)ud;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "\n%d:%s", level, msg);
    pthread_mutex_unlock(&log_mu);
}

static void log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *text)
{
    pthread_mutex_lock(&log_mu);
    int found = strstr(log_text, text) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

/* Every client of the tests logs into log_text. */
static const idp_options with_log = {.size = sizeof(idp_options),
                                     .log = log_cb};

static idp_client *try_open(const char *uri, idp_error *err)
{
    memset(err, 0, sizeof *err);
    return idp_open(uri, &with_log, err);
}

static void start_redis(server *s, const char *extra)
{
    ck_assert_msg(server_start(s, "redis", extra) == 0,
                  "redis-server did not start (extra \"%s\")",
                  extra != NULL ? extra : "");
}

static char *redis_uri(const server *s, const char *query)
{
    static char uri[512];
    return server_uri(s, query, uri, sizeof uri);
}

/* Length of the first complete RESP reply in buf[0..n) (simple string,
 * error, integer or bulk string), or 0 when more bytes are needed. */
static size_t reply_len(const char *buf, size_t n)
{
    const char *eol = memmem(buf, n, "\r\n", 2);
    if (eol == NULL)
        return 0;
    size_t head = (size_t)(eol - buf) + 2;
    if (buf[0] != '$')
        return head;
    long len = strtol(buf + 1, NULL, 10);
    if (len < 0)
        return head;
    return n >= head + (size_t)len + 2 ? head + (size_t)len + 2 : 0;
}

/*
 * Sends one inline command (after "AUTH password" when password is not
 * NULL) to the server and copies its reply into out: a bulk string's
 * content, or the whole line of any other reply ("+OK", "-ERR ...", ":3").
 */
static void raw(const server *s, const char *password, const char *cmd,
                char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect to 127.0.0.1:%d: %s", s->port, strerror(errno));
    char req[512];
    int n = password != NULL
                ? snprintf(req, sizeof req, "AUTH %s\r\n%s\r\n", password, cmd)
                : snprintf(req, sizeof req, "%s\r\n", cmd);
    ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    static char buf[1 << 16];
    size_t have = 0, skip = 0, len = 0;
    for (;;) {
        if (password != NULL && skip == 0 && (skip = reply_len(buf, have)) > 0)
            ck_assert_msg(strncmp(buf, "+OK", 3) == 0, "AUTH: %.*s",
                          (int)skip, buf);
        if ((password == NULL || skip > 0) &&
            (len = reply_len(buf + skip, have - skip)) > 0)
            break;
        ck_assert_uint_lt(have, sizeof buf);
        ssize_t got = recv(fd, buf + have, sizeof buf - have, 0);
        ck_assert_msg(got > 0, "no reply to '%s' from 127.0.0.1:%d", cmd,
                      s->port);
        have += (size_t)got;
    }
    close(fd);
    const char *r = buf + skip;
    if (r[0] == '$' && r[1] != '-') {   /* "$-1", nil, is shown as is */
        const char *body = strstr(r, "\r\n") + 2;
        size_t blen = len - (size_t)(body - r) - 2;
        snprintf(out, outlen, "%.*s", (int)blen, body);
    } else {
        snprintf(out, outlen, "%.*s", (int)(len - 2), r);
    }
}

/* The server's own count of calls of a command, by its lower-case name
 * ("incrby", "wait"), since its start or CONFIG RESETSTAT (INFO
 * commandstats). */
static uint64_t server_calls(const server *s, const char *cmd)
{
    static char info[1 << 16];
    char field[64];
    raw(s, NULL, "INFO commandstats", info, sizeof info);
    snprintf(field, sizeof field, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(info, field);
    return p != NULL ? strtoull(p + strlen(field), NULL, 10) : 0;
}

/* The server's own count of INCRBY calls (INFO commandstats). */
static uint64_t server_incrbys(const server *s)
{
    return server_calls(s, "incrby");
}

/* The value of `key` as the server s itself holds it (a replica's own
 * copy, read on the replica); 0 for a missing key. */
static uint64_t value_on(const server *s, const char *key)
{
    char cmd[256], out[64];
    snprintf(cmd, sizeof cmd, "GET %s", key);
    raw(s, NULL, cmd, out, sizeof out);
    if (strcmp(out, "$-1") == 0)
        return 0;
    char *end;
    uint64_t v = strtoull(out, &end, 10);
    ck_assert_msg(*end == '\0' && out[0] != '\0', "GET %s on 127.0.0.1:%d "
                  "answered '%s'", key, s->port, out);
    return v;
}

static void start_replica(server *replica, const server *primary)
{
    ck_assert_msg(server_start_replica(replica, primary) == 0,
                  "no replica of 127.0.0.1:%d started", primary->port);
}

/* ---- IDs ---------------------------------------------------------------- */

START_TEST(test_first_ids_are_1_2_3)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    /* one batch of the default 256 taken, none in the background yet */
    int exists = 0;
    ck_assert_uint_eq(tu_get(c, "ids", &exists), 256);
    ck_assert_int_eq(exists, 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_first_ids_are_1_2_3_without_batching)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "ids");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        /* every allocation is its own INCRBY: the store holds the last ID */
        ck_assert_uint_eq(tu_get(c, "ids", NULL), want);
    }
    uint64_t last = 0;
    ck_assert_int_eq(idp_incr(ctr, 10, &last, NULL), IDP_OK);
    ck_assert_uint_eq(last, 15);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    server s;
    start_redis(&s, NULL);
    char uri[512];
    server_uri(&s, "?batch=64", uri, sizeof uri);
    /* the children fork before the parent opens any client */
    const tu_fanout f = {.uri = uri, .counter = "shared", .procs = 4,
                         .threads = 2, .per_thread = 50000};
    size_t n = 0;
    uint64_t *all = tu_fanout_ids(&f, &n, NULL);   /* all distinct */
    ck_assert_uint_eq(n, 400000);
    /* nobody was handed an ID the store has not passed */
    idp_client *c = server_open(&s, NULL, &with_log);
    ck_assert_uint_ge(tu_get(c, "shared", NULL), all[n - 1]);
    idp_close(c);
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* ---- Round trips ------------------------------------------------------ */

START_TEST(test_store_counts_one_incrby_per_batch)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    /* a fixed batch=100 (adaptive=0: adaptive sizing would grow it),
     * fetched only when the pool is empty: 1,000 IDs take exactly
     * ceil(1000/100) = 10 INCRBY per client. ("inode" would take its own
     * inode_batch=256.) */
    idp_client *a = server_open(&s, "?batch=100&low_watermark=0&adaptive=0",
                                &with_log);
    idp_client *b = server_open(&s, "?batch=100&low_watermark=0&adaptive=0",
                                &with_log);
    raw(&s, NULL, "CONFIG RESETSTAT", out, sizeof out);
    ck_assert_str_eq(out, "+OK");
    ck_assert_uint_eq(server_incrbys(&s), 0);
    idp_counter *ca = tu_counter(a, "files"), *cb = tu_counter(b, "files");
    for (int i = 0; i < 1000; i++) {
        tu_next(ca);
        tu_next(cb);
    }
    idp_counter_stats sa, sb;
    idp_counter_stats_get(ca, &sa);
    idp_counter_stats_get(cb, &sb);
    ck_assert_uint_eq(sa.prime_calls, 10);
    ck_assert_uint_eq(sb.prime_calls, 10);
    ck_assert_uint_eq(sa.ids_served, 1000);
    ck_assert_uint_eq(server_incrbys(&s), sa.prime_calls + sb.prime_calls);
    /* the plugin reads the same server-wide count */
    uint64_t rt = 0;
    idp_error err;
    ck_assert_int_eq(idp_store_roundtrips(a, &rt, &err), IDP_OK);
    ck_assert_uint_eq(rt, 20);
    ck_assert_uint_eq(tu_get(a, "files", NULL), 2000);
    idp_close(a);
    idp_close(b);

    /* with the default watermark (25%) the next batch is fetched in the
     * background at 75 of 100 used: 950 IDs need 10 batches, and the 10th
     * leaves 50 > 25, so no 11th is started */
    a = server_open(&s, "?batch=100&adaptive=0", &with_log);
    raw(&s, NULL, "CONFIG RESETSTAT", out, sizeof out);
    ca = tu_counter(a, "chunk2");
    for (int i = 0; i < 950; i++)
        tu_next(ca);
    idp_counter_stats_get(ca, &sa);
    ck_assert_uint_eq(sa.prime_calls, 10);
    /* how many of them ran in the background depends on timing */
    ck_assert_uint_le(sa.prefetch_async, 9);
    ck_assert_uint_eq(server_incrbys(&s), sa.prime_calls);
    idp_close(a);

    /* metaprime=0: one INCRBY per ID */
    a = server_open(&s, "?metaprime=0", &with_log);
    raw(&s, NULL, "CONFIG RESETSTAT", out, sizeof out);
    ca = tu_counter(a, "legacy");
    for (int i = 0; i < 50; i++)
        tu_next(ca);
    idp_counter_stats_get(ca, &sa);
    ck_assert_uint_eq(sa.prime_calls, 50);
    ck_assert_uint_eq(server_incrbys(&s), 50);
    idp_close(a);
    server_stop(&s, 0);
}
END_TEST

/* ---- Crashes, outages, lost data ---------------------------------------- */

START_TEST(test_killed_client_never_repeats_an_id)
{
    server s;
    start_redis(&s, NULL);
    char uri[512];
    server_uri(&s, NULL, uri, sizeof uri);
    uint64_t *all = NULL;
    size_t n = 0;
    uint64_t highest = 0;
    for (int round = 0; round < 3; round++) {
        /* a child killed mid-run once it has handed out over 1,000 */
        size_t start = n;
        size_t k = tu_take_then_kill(uri, "crash", 1001, &all, &n);
        ck_assert_uint_gt(k, 1000);
        /* a client started after a crash begins above all it handed out */
        ck_assert_msg(all[start] > highest, "round %d began at %llu, at or "
                      "below %llu handed out before the crash", round,
                      (unsigned long long)all[start],
                      (unsigned long long)highest);
        for (size_t i = start; i < n; i++)
            highest = all[i] > highest ? all[i] : highest;
    }
    idp_client *c = server_open(&s, NULL, &with_log);
    uint64_t after = tu_next(tu_counter(c, "crash"));
    ck_assert_uint_gt(after, highest);
    idp_close(c);
    tu_assert_distinct(all, n);
    free(all);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_stopped_server_fails_within_timeout_and_recovers)
{
    server s;
    /* persistence on, so the counter survives the restart */
    start_redis(&s, "--appendonly yes");
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=500", &with_log);
    idp_counter *ctr = tu_counter(c, "outage");
    for (uint64_t want = 1; want <= 3; want++)
        ck_assert_uint_eq(tu_next(ctr), want);

    server_stop(&s, 1);
    char want[128];
    snprintf(want, sizeof want, "redis plugin: unable to connect to "
             "127.0.0.1:%d: Connection refused", s.port);
    for (int i = 0; i < 2; i++) {
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        ck_assert_msg(rc == IDP_ESTORE || rc == IDP_ETIMEOUT,
                      "call %d with the server down gave %d: %s", i, rc,
                      err.msg);
        ck_assert_msg(dt <= 500 + 1500, "call %d took %lld ms", i, dt);
        ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
        ck_assert_uint_eq(id, 0);
    }

    ck_assert_int_eq(server_restart(&s), 0);
    /* the failed INCRBYs never reached the server: nothing was skipped */
    ck_assert_uint_eq(tu_next(ctr), 4);
    ck_assert_uint_eq(tu_get(c, "outage", NULL), 4);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_hung_server_times_out_and_recovers)
{
    server s;
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?metaprime=0&timeout_ms=500", &with_log);
    idp_counter *ctr = tu_counter(c, "hung");
    ck_assert_uint_eq(tu_next(ctr), 1);

    kill(s.pid, SIGSTOP);
    for (int i = 0; i < 2; i++) {   /* the old connection, then a new one */
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        ck_assert_msg(rc == IDP_ETIMEOUT, "call %d on a hung server gave %d: "
                      "%s", i, rc, err.msg);
        ck_assert_msg(dt >= 400 && dt <= 500 + 1500, "call %d took %lld ms",
                      i, dt);
        ck_assert_msg(strstr(err.msg, "timeout_ms=500") != NULL, "%s",
                      err.msg);
    }
    kill(s.pid, SIGCONT);

    /* the timed-out INCRBYs may still run once the server wakes: they are
     * gaps, never handed out, and the next ID lies above them */
    uint64_t id = tu_next(ctr);
    ck_assert_uint_gt(id, 1);
    ck_assert_uint_eq(tu_get(c, "hung", NULL), id);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_store_regression_is_refused)
{
    server s;
    start_redis(&s, NULL);   /* no persistence: a restart loses everything */
    idp_client *c = server_open(&s, "?batch=10&low_watermark=0&adaptive=0",
                                &with_log);
    idp_counter *ctr = tu_counter(c, "lost");
    uint64_t last = 0;
    for (uint64_t want = 1; want <= 5; want++)
        ck_assert_uint_eq(last = tu_next(ctr), want);
    server_kill(&s);
    ck_assert_int_eq(server_restart(&s), 0);
    /* the closed connection is reopened before anything is sent */
    ck_assert_uint_eq(tu_get(c, "lost", NULL), 0);

    /* 6..10 are still in the pool; then the empty store answers 10 (IDs
     * 1..10, at or below the 10 already held): refused; then 20 (11..20)
     * and 30 (21..30), above it: served */
    int regressions = 0;
    for (int i = 0; i < 20; i++) {
        idp_error err;
        uint64_t id = 0;
        int rc = idp_next(ctr, &id, &err);
        if (rc == IDP_EREGRESS) {
            regressions++;
            ck_assert_msg(strstr(err.msg, "at or below") != NULL, "%s",
                          err.msg);
            continue;
        }
        ck_assert_msg(rc == IDP_OK, "%d: %s", rc, err.msg);
        ck_assert_uint_gt(id, last);
        last = id;
    }
    ck_assert_int_eq(regressions, 1);
    ck_assert_uint_eq(last, 24);
    idp_counter_stats st;
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.regressions, 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_reconnect_reapplies_auth_and_select)
{
    server s;
    char out[64];
    start_redis(&s, "--requirepass s3cret");
    char uri[512];
    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d/3?metaprime=0",
             s.port);
    idp_client *c = tu_open(uri, &with_log);
    idp_counter *ctr = tu_counter(c, "re");
    ck_assert_uint_eq(tu_next(ctr), 1);

    /* the server closes the connection (as its idle timeout would): the
     * next call reopens it, authenticated and on db 3, before sending */
    raw(&s, "s3cret", "CLIENT KILL TYPE normal", out, sizeof out);
    ck_assert_str_eq(out, ":1");
    ck_assert_uint_eq(tu_next(ctr), 2);
    raw(&s, "s3cret", "CLIENT KILL TYPE normal", out, sizeof out);
    ck_assert_str_eq(out, ":1");
    ck_assert_uint_eq(tu_next(ctr), 3);
    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d?db=3", s.port);
    idp_client *d3 = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_get(d3, "re", NULL), 3);
    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d/0", s.port);
    idp_client *d0 = tu_open(uri, &with_log);
    int exists = 1;
    ck_assert_uint_eq(tu_get(d0, "re", &exists), 0);
    ck_assert_int_eq(exists, 0);
    idp_close(d0);
    idp_close(d3);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_reaching_2_63_is_an_error_never_a_wrap)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    raw(&s, NULL, "SET big 9223372036854775800", out, sizeof out);
    raw(&s, NULL, "SET big2 9223372036854775800", out, sizeof out);
    idp_client *c = server_open(&s, "?metaprime=0", &with_log);
    idp_counter *ctr = tu_counter(c, "big");
    for (uint64_t want = 9223372036854775801u; want <= IDP_MAX_VALUE; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    idp_error err;
    uint64_t id = 0;
    int rc = idp_next(ctr, &id, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    ck_assert_uint_eq(tu_get(c, "big", NULL), IDP_MAX_VALUE);
    idp_close(c);

    c = server_open(&s, "?batch=10", &with_log);
    rc = idp_next(tu_counter(c, "big2"), &id, &err);
    ck_assert_msg(rc == IDP_ERANGE, "%d: %s", rc, err.msg);
    ck_assert_msg(strstr(err.msg, "'big2'") != NULL, "%s", err.msg);
    ck_assert_uint_eq(tu_get(c, "big2", NULL), 9223372036854775800u);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- URIs ----------------------------------------------------------- */

START_TEST(test_closed_port_is_named)
{
    int port = harness_free_port();
    ck_assert_int_gt(port, 0);
    char uri[128], want[128];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", port);
    snprintf(want, sizeof want, "redis plugin: unable to connect to "
             "127.0.0.1:%d: Connection refused", port);
    idp_error err;
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_bad_db_number_is_named)
{
    server s;
    start_redis(&s, NULL);   /* 16 databases */
    idp_error err;
    ck_assert_ptr_null(try_open(redis_uri(&s, "/99999"), &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "db 99999") != NULL &&
                  strstr(err.msg, "out of range") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "?db=16"), &err));
    ck_assert_msg(strstr(err.msg, "db 16") != NULL, "%s", err.msg);
    /* the last one there is fine */
    idp_client *c = server_open(&s, "/15", &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "x")), 1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_non_numeric_db_path_is_refused)
{
    server s;
    start_redis(&s, NULL);
    idp_error err;
    ck_assert_ptr_null(try_open(redis_uri(&s, "/abc"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "'/abc'") != NULL &&
                  strstr(err.msg, "database number") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "/-1"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_ptr_null(try_open(redis_uri(&s, "/2?db=3"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "given twice") != NULL, "%s", err.msg);
    ck_assert_ptr_null(try_open(redis_uri(&s, "?db=-1"), &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "db") != NULL, "%s", err.msg);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_several_hosts_are_refused)
{
    server s;
    start_redis(&s, NULL);
    char uri[128];
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d,127.0.0.1:%d/0", s.port,
             s.port);
    idp_error err;
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "several hosts") != NULL, "%s", err.msg);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_password_is_checked)
{
    server s;
    start_redis(&s, "--requirepass s3cret");
    char uri[128];
    idp_error err;

    snprintf(uri, sizeof uri, "redis://:Wr0ngPw@127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "authentication to 127.0.0.1:") != NULL,
                  "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "Wr0ngPw") == NULL, "password shown: %s",
                  err.msg);

    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "NOAUTH") != NULL, "%s", err.msg);

    snprintf(uri, sizeof uri, "redis://someone@127.0.0.1:%d", s.port);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "no password") != NULL, "%s", err.msg);

    snprintf(uri, sizeof uri, "redis://:s3cret@127.0.0.1:%d", s.port);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "pw")), 1);
    idp_close(c);
    /* Redis 6 ACL form, as the default user */
    snprintf(uri, sizeof uri, "redis://default:s3cret@127.0.0.1:%d", s.port);
    c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_get(c, "pw", NULL), 256);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_unix_socket_takes_db_parameter)
{
    server s;
    char dir[PATH_MAX], sock[PATH_MAX + 16], extra[PATH_MAX + 64];
    char uri[PATH_MAX + 64];
    ck_assert_ptr_nonnull(harness_tmpdir(dir, sizeof dir));
    snprintf(sock, sizeof sock, "%s/r.sock", dir);
    snprintf(extra, sizeof extra, "--unixsocket %s --unixsocketperm 700", sock);
    start_redis(&s, extra);

    snprintf(uri, sizeof uri, "redis://%s?db=2", sock);
    idp_client *c = tu_open(uri, &with_log);
    ck_assert_uint_eq(tu_next(tu_counter(c, "sock")), 1);
    idp_close(c);
    /* the same counter seen over TCP in db 2, absent from db 0 */
    c = server_open(&s, "/2", &with_log);
    ck_assert_uint_eq(tu_get(c, "sock", NULL), 256);
    idp_close(c);
    c = server_open(&s, NULL, &with_log);
    int exists = 1;
    tu_get(c, "sock", &exists);
    ck_assert_int_eq(exists, 0);
    idp_close(c);

    idp_error err;
    snprintf(uri, sizeof uri, "redis://%s.missing", sock);
    ck_assert_ptr_null(try_open(uri, &err));
    ck_assert_msg(strstr(err.msg, "unix socket") != NULL &&
                  strstr(err.msg, "r.sock.missing") != NULL, "%s", err.msg);
    server_stop(&s, 0);
    unlink(sock);
    rmdir(dir);
}
END_TEST

/* ---- Operations ---------------------------------------------------------- */

START_TEST(test_raise_never_lowers)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, "?batch=10", &with_log);
    idp_error err;
    uint64_t r = 0;
    ck_assert_int_eq(idp_raise(c, "r", 100, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_int_eq(idp_raise(c, "r", 50, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 100);
    ck_assert_uint_eq(tu_get(c, "r", NULL), 100);
    ck_assert_uint_eq(tu_next(tu_counter(c, "r")), 101);
    ck_assert_int_eq(idp_raise(c, "r", 105, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 110);

    /* exact above 2^53, where Lua's doubles are not */
    ck_assert_int_eq(idp_raise(c, "p", 9007199254740993u, &r, &err), IDP_OK);
    ck_assert_int_eq(idp_raise(c, "p", 9007199254740992u, &r, &err), IDP_OK);
    ck_assert_uint_eq(r, 9007199254740993u);
    ck_assert_int_eq(idp_raise(c, "p", IDP_MAX_VALUE, &r, &err), IDP_OK);
    ck_assert_uint_eq(tu_get(c, "p", NULL), IDP_MAX_VALUE);
    int rc = idp_raise(c, "p", IDP_MAX_VALUE + 1, &r, &err);
    ck_assert_msg(rc == IDP_ERANGE || rc == IDP_EINVAL, "%d: %s", rc, err.msg);
    ck_assert_uint_eq(tu_get(c, "p", NULL), IDP_MAX_VALUE);

    raw(&s, NULL, "SET junk abc", out, sizeof out);
    rc = idp_raise(c, "junk", 5, &r, &err);
    ck_assert_msg(rc == IDP_ESTORE && strstr(err.msg, "junk") != NULL,
                  "%d: %s", rc, err.msg);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_list_finds_counters_under_prefix)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    /* '*' must match itself only: "g*:" must not list "gX:c" */
    idp_client *g = server_open(&s, "?prefix=g*:&batch=10", &with_log);
    idp_client *x = server_open(&s, "?prefix=gX:&batch=10", &with_log);
    uint64_t last;
    ck_assert_int_eq(idp_incr(tu_counter(g, "a"), 3, &last, NULL), IDP_OK);
    tu_next(tu_counter(g, "b"));
    tu_next(tu_counter(x, "c"));
    raw(&s, NULL, "SET g*:junk abc", out, sizeof out);
    log_clear();

    tu_listed got = {0};
    idp_error err;
    ck_assert_int_eq(idp_list(g, tu_listed_cb, &got, &err), IDP_OK);
    ck_assert_int_eq(got.n, 2);
    ck_assert_int_ge(tu_listed_find(&got, "a"), 0);
    ck_assert_int_ge(tu_listed_find(&got, "b"), 0);
    ck_assert_uint_eq(got.values[tu_listed_find(&got, "a")], 10);
    ck_assert_uint_eq(got.values[tu_listed_find(&got, "b")], 10);
    ck_assert_msg(log_has("1:redis plugin: 'g*:junk'"), "%s", log_text);

    memset(&got, 0, sizeof got);
    ck_assert_int_eq(idp_list(x, tu_listed_cb, &got, &err), IDP_OK);
    ck_assert_int_eq(got.n, 1);
    ck_assert_str_eq(got.names[0], "c");
    idp_close(g);
    idp_close(x);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_get_missing_counter_gives_exists_0)
{
    server s;
    char out[64];
    start_redis(&s, NULL);
    idp_client *c = server_open(&s, NULL, &with_log);
    uint64_t v = 77;
    int exists = 1;
    idp_error err;
    ck_assert_int_eq(idp_get(c, "never", &v, &exists, &err), IDP_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(exists, 0);

    raw(&s, NULL, "SET junk abc", out, sizeof out);
    int rc = idp_get(c, "junk", &v, &exists, &err);
    ck_assert_int_eq(rc, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "'junk'") != NULL, "%s", err.msg);
    rc = idp_next(tu_counter(c, "junk"), &v, &err);
    ck_assert_int_eq(rc, IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "'junk'") != NULL, "%s", err.msg);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Warnings ------------------------------------------------------------ */

/* Opens a client on a fresh server started with `extra`, asserts that the
 * log holds head + "127.0.0.1:PORT" + tail and not `unwanted`, and that the
 * client works. */
static void check_open_log(const char *extra, const char *head,
                           const char *tail, const char *unwanted)
{
    server s;
    char line[256];
    start_redis(&s, extra);
    log_clear();
    idp_client *c = server_open(&s, NULL, &with_log);
    snprintf(line, sizeof line, "%s127.0.0.1:%d%s", head, s.port, tail);
    ck_assert_msg(log_has(line), "no '%s' in the log:%s", line, log_text);
    ck_assert_msg(!log_has(unwanted), "'%s' in the log:%s", unwanted,
                  log_text);
    ck_assert_uint_eq(tu_next(tu_counter(c, "w")), 1);
    idp_close(c);
    server_stop(&s, 0);
}

START_TEST(test_persistence_off_is_warned)
{
    /* the harness's default: --save '' --appendonly no */
    check_open_log(NULL, "\n1:redis plugin: ", " has persistence off (save "
                   "\"\" and appendonly no)", "maxmemory-policy");
}
END_TEST

START_TEST(test_eviction_policy_is_warned)
{
    check_open_log("--maxmemory-policy allkeys-lru --appendonly yes",
                   "\n1:redis plugin: ", " has maxmemory-policy allkeys-lru",
                   "persistence off");
}
END_TEST

START_TEST(test_disabled_config_is_logged_not_fatal)
{
    check_open_log("--rename-command CONFIG ''",
                   "\n2:redis plugin: could not check the eviction policy "
                   "and persistence of ", ": CONFIG GET answered", "\n1:");
}
END_TEST

/* ---- Durable batches: wait_replicas ------------------------------------- */

/* Fixed batches of 10, fetched only when the pool is empty, so that every
 * 10th ID is a fetch boundary (adaptive sizing would move them). */
#define DURABLE "batch=10&low_watermark=0&adaptive=0"

START_TEST(test_wait_replicas_1_replica_holds_every_served_id)
{
    server p, r;
    char out[64];
    start_redis(&p, NULL);
    start_replica(&r, &p);
    log_clear();
    idp_client *c = server_open(&p, "?wait_replicas=1&" DURABLE, &with_log);
    ck_assert_msg(!log_has("fewer than wait_replicas"), "%s", log_text);
    raw(&p, NULL, "CONFIG RESETSTAT", out, sizeof out);
    idp_counter *ctr = tu_counter(c, "durable");
    /* each fetch is acknowledged by the replica before its first ID is
     * served: right after each boundary (IDs 1, 11, 21, ...) the
     * replica's own value already covers the whole batch */
    for (uint64_t want = 1; want <= 100; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        uint64_t held = value_on(&r, "durable");
        ck_assert_msg(held >= want, "ID %llu served while the replica "
                      "holds %llu", (unsigned long long)want,
                      (unsigned long long)held);
        if (want % 10 == 1)
            ck_assert_uint_eq(held, want + 9);
    }
    idp_counter_stats st;
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.prime_calls, 10);
    /* one WAIT per INCRBY, behind it in the same round trip */
    ck_assert_uint_eq(server_incrbys(&p), 10);
    ck_assert_uint_eq(server_calls(&p, "wait"), 10);

    /* INCRBY through the engine, and raise (migrate's): acknowledged too */
    uint64_t last = 0, got = 0;
    ck_assert_int_eq(idp_incr(ctr, 25, &last, NULL), IDP_OK);
    ck_assert_uint_ge(value_on(&r, "durable"), last);
    idp_error err;
    ck_assert_int_eq(idp_raise(c, "raised", 5000, &got, &err), IDP_OK);
    ck_assert_uint_eq(got, 5000);
    ck_assert_uint_eq(value_on(&r, "raised"), 5000);
    idp_close(c);

    /* prime= fetches several counters in one pipeline: one WAIT for all */
    raw(&p, NULL, "CONFIG RESETSTAT", out, sizeof out);
    c = server_open(&p, "?wait_replicas=1&prime=pa,pb,pc&" DURABLE,
                    &with_log);
    ck_assert_uint_eq(server_incrbys(&p), 3);
    ck_assert_uint_eq(server_calls(&p, "wait"), 1);
    ck_assert_uint_eq(value_on(&r, "pa"), 10);
    ck_assert_uint_eq(value_on(&r, "pb"), 10);
    ck_assert_uint_eq(value_on(&r, "pc"), 10);
    ck_assert_uint_eq(tu_next(tu_counter(c, "pb")), 1);
    idp_close(c);

    /* metaprime=0: every ID its own INCRBY, each acknowledged */
    c = server_open(&p, "?wait_replicas=1&metaprime=0", &with_log);
    ctr = tu_counter(c, "legacy");
    for (uint64_t want = 1; want <= 5; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        ck_assert_uint_eq(value_on(&r, "legacy"), want);
    }
    idp_close(c);

    /* wait_replicas=0, the default, sends no WAIT at all */
    raw(&p, NULL, "CONFIG RESETSTAT", out, sizeof out);
    c = server_open(&p, "?" DURABLE, &with_log);
    for (int i = 0; i < 25; i++)
        tu_next(tu_counter(c, "plain"));
    ck_assert_uint_eq(server_incrbys(&p), 3);
    ck_assert_uint_eq(server_calls(&p, "wait"), 0);
    idp_close(c);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST

/* Asserts that err is the failed WAIT of `acked` of `want` replicas. */
static void assert_short_wait(int rc, const idp_error *err, int acked,
                              int want)
{
    char count[64];
    snprintf(count, sizeof count, "only %d of %d replicas acknowledged",
             acked, want);
    ck_assert_msg(rc == IDP_ETIMEOUT, "gave %d: %s", rc, err->msg);
    ck_assert_msg(strstr(err->msg, count) != NULL, "no '%s' in: %s", count,
                  err->msg);
}

START_TEST(test_wait_replicas_2_with_1_replica_fails_serving_nothing)
{
    server p, r;
    start_redis(&p, NULL);
    start_replica(&r, &p);
    log_clear();
    idp_client *c = server_open(&p, "?wait_replicas=2&timeout_ms=500&"
                                DURABLE, &with_log);
    char line[160];
    snprintf(line, sizeof line, "\n1:redis plugin: 127.0.0.1:%d has 1 "
             "connected replica, fewer than wait_replicas=2", p.port);
    ck_assert_msg(log_has(line), "no '%s' in the log:%s", line, log_text);
    idp_counter *ctr = tu_counter(c, "short");
    for (int i = 0; i < 2; i++) {
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        assert_short_wait(rc, &err, 1, 2);
        ck_assert_msg(strstr(err.msg, "wait_replicas=2") != NULL, "%s",
                      err.msg);
        /* WAIT waited its timeout_ms - 200 = 300 ms, then gave up */
        ck_assert_msg(strstr(err.msg, "within 300 ms") != NULL, "%s",
                      err.msg);
        ck_assert_msg(dt >= 250 && dt <= 500 + 1000, "call %d took %lld ms",
                      i, dt);
        ck_assert_uint_eq(id, 0);
    }
    idp_counter_stats st;
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.ids_served, 0);
    ck_assert_uint_eq(st.prime_calls, 0);
    /* the increments were applied on both servers: gaps, not served */
    ck_assert_uint_eq(tu_get(c, "short", NULL), 20);
    ck_assert_uint_eq(value_on(&r, "short"), 20);
    uint64_t last = 0;
    idp_error err;
    assert_short_wait(idp_incr(ctr, 3, &last, &err), &err, 1, 2);
    ck_assert_uint_eq(last, 0);
    uint64_t got = 0;
    assert_short_wait(idp_raise(c, "raised", 100, &got, &err), &err, 1, 2);
    idp_close(c);

    /* a pipeline of several counters (prime=) fails as a whole: the
     * client does not open */
    idp_client *bad = try_open(redis_uri(&p, "?wait_replicas=2&timeout_ms="
                                         "500&prime=qa,qb&" DURABLE), &err);
    ck_assert_ptr_null(bad);
    assert_short_wait(err.code, &err, 1, 2);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST

START_TEST(test_wait_replicas_stopped_replica_fails_then_recovers)
{
    server p, r;
    start_redis(&p, NULL);
    start_replica(&r, &p);
    idp_client *c = server_open(&p, "?wait_replicas=1&timeout_ms=500&"
                                DURABLE, &with_log);
    idp_counter *ctr = tu_counter(c, "outage");
    for (uint64_t want = 1; want <= 10; want++)
        ck_assert_uint_eq(tu_next(ctr), want);

    server_stop(&r, 1);
    for (int i = 0; i < 2; i++) {
        idp_error err;
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        assert_short_wait(rc, &err, 0, 1);
        ck_assert_msg(dt <= 500 + 1000, "call %d took %lld ms", i, dt);
        ck_assert_uint_eq(id, 0);
    }
    /* the two batches were taken on the primary and never served */
    ck_assert_uint_eq(tu_get(c, "outage", NULL), 30);

    ck_assert_int_eq(server_restart(&r), 0);
    ck_assert_int_eq(server_replica_wait_up(&r, 10000), 0);
    /* the next fetch (31..40) is acknowledged and served */
    for (uint64_t want = 31; want <= 45; want++) {
        ck_assert_uint_eq(tu_next(ctr), want);
        ck_assert_uint_ge(value_on(&r, "outage"), want);
    }
    idp_close(c);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST

START_TEST(test_wait_replicas_bad_values_are_refused)
{
    server s;
    start_redis(&s, NULL);
    static const char *const bad[] = {"-1", "101", "x", "1.5", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char query[64];
        idp_error err;
        snprintf(query, sizeof query, "?wait_replicas=%s", bad[i]);
        ck_assert_ptr_null(try_open(redis_uri(&s, query), &err));
        ck_assert_msg(err.code == IDP_EINVAL, "'%s' gave %d: %s", bad[i],
                      err.code, err.msg);
        ck_assert_msg(strstr(err.msg, "'wait_replicas'") != NULL &&
                      strstr(err.msg, "0..100") != NULL, "'%s': %s", bad[i],
                      err.msg);
    }
    /* without a replica, wait_replicas=1 opens (replicas may come later)
     * with a warning, and its fetches fail naming 0 of 1 */
    log_clear();
    idp_client *c = server_open(&s, "?wait_replicas=1&timeout_ms=200",
                                &with_log);
    ck_assert_msg(log_has("0 connected replicas, fewer than "
                          "wait_replicas=1"), "%s", log_text);
    idp_error err;
    uint64_t id = 0;
    assert_short_wait(idp_next(tu_counter(c, "none"), &id, &err), &err, 0,
                      1);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

int main(void)
{
    const TTest *ids[] = {
        test_first_ids_are_1_2_3, test_first_ids_are_1_2_3_without_batching,
        test_no_duplicate_across_4_processes_x_2_threads,
        test_store_counts_one_incrby_per_batch, NULL};
    const TTest *failures[] = {
        test_killed_client_never_repeats_an_id,
        test_stopped_server_fails_within_timeout_and_recovers,
        test_hung_server_times_out_and_recovers,
        test_store_regression_is_refused,
        test_reconnect_reapplies_auth_and_select,
        test_reaching_2_63_is_an_error_never_a_wrap, NULL};
    const TTest *uris[] = {
        test_closed_port_is_named, test_bad_db_number_is_named,
        test_non_numeric_db_path_is_refused, test_several_hosts_are_refused,
        test_password_is_checked, test_unix_socket_takes_db_parameter, NULL};
    const TTest *operations[] = {
        test_raise_never_lowers, test_list_finds_counters_under_prefix,
        test_get_missing_counter_gives_exists_0, NULL};
    const TTest *warnings[] = {
        test_persistence_off_is_warned, test_eviction_policy_is_warned,
        test_disabled_config_is_logged_not_fatal, NULL};
    const TTest *durable[] = {
        test_wait_replicas_1_replica_holds_every_served_id,
        test_wait_replicas_2_with_1_replica_fails_serving_nothing,
        test_wait_replicas_stopped_replica_fails_then_recovers,
        test_wait_replicas_bad_values_are_refused, NULL};
    const tu_case cases[] = {
        {.name = "ids", .tests = ids}, {.name = "failures", .tests = failures},
        {.name = "durable", .tests = durable},
        {.name = "uris", .tests = uris},
        {.name = "operations", .tests = operations},
        {.name = "warnings", .tests = warnings}, {.name = NULL}};
    return tu_run(tu_suite("redis", 120, cases));
}
