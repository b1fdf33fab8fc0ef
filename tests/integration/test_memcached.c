/*
 * test_memcached.c - the memcached store against a real memcached.
 *
 * Each test starts its own memcached on a free loopback port (harness.h),
 * so the server's statistics and counters belong to that test alone. The
 * server's own view (stats, flush_all) is read over a raw socket, never
 * through the plugin under test.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <idprime/idprime.h>

#include "harness.h"
#include "testutil.h"

#define TWO63 ((uint64_t)1 << 63)

/* ---- Helpers ----------------------------------------------------------- */

static void start_mc(server *s, const char *extra)
{
    ck_assert_msg(server_start(s, "memcached", extra) == 0,
                  "cannot start memcached");
}

static idp_client *open_ok(const server *s, const char *query)
{
    idp_client *c = server_open(s, query, NULL);
    ck_assert_str_eq(idp_client_store(c), "memcached");
    return c;
}

/* Sends one text-protocol command to 127.0.0.1:port and reads the reply
 * up to (and including) `until`. Returns the reply length, -1 on error. */
static int mc_raw(int port, const char *cmd, const char *until, char *buf,
                  size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    size_t got = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    buf[0] = '\0';
    while (got + 1 < len && strstr(buf, until) == NULL) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    close(fd);
    return strstr(buf, until) != NULL ? (int)got : -1;
}

static uint64_t stat_value(const char *stats, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "STAT %s ", key);
    const char *p = strstr(stats, pat);
    ck_assert_msg(p != NULL, "no '%s' in memcached stats", key);
    return strtoull(p + strlen(pat), NULL, 10);
}

/* The server's own count of increments: incr_hits + incr_misses. */
static uint64_t server_incrs(const server *s)
{
    static char buf[16384];
    ck_assert_int_gt(mc_raw(s->port, "stats\r\n", "END\r\n", buf, sizeof buf), 0);
    return stat_value(buf, "incr_hits") + stat_value(buf, "incr_misses");
}

static void flush_all(const server *s)
{
    char buf[64];
    ck_assert_int_gt(mc_raw(s->port, "flush_all\r\n", "\r\n", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "OK\r\n");
}

static void wait_child_ok(pid_t pid)
{
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "child %d failed (status 0x%x; see its stderr)", (int)pid, st);
}

/* ---- The first IDs ----------------------------------------------------- */

START_TEST(test_first_ids_are_1_2_3)
{
    server s;
    start_mc(&s, "-M");
    for (int mp = 1; mp >= 0; mp--) {
        const char *name = mp ? "first_batched" : "first_legacy";
        idp_client *c = open_ok(&s, mp ? "?batch=256" : "?metaprime=0");
        idp_counter *ctr = tu_counter(c, name);
        idp_error err = {0};
        uint64_t last = 0;
        int exists = -1;

        ck_assert_uint_eq(tu_get(c, name, &exists), 0);
        ck_assert_int_eq(exists, 0);
        ck_assert_uint_eq(tu_next(ctr), 1);
        ck_assert_uint_eq(tu_next(ctr), 2);
        ck_assert_uint_eq(tu_next(ctr), 3);
        ck_assert_int_eq(idp_incr(ctr, 5, &last, &err), IDP_OK);
        ck_assert_uint_eq(last, 8);  /* INCRBY: the caller owns 4..8 */
        ck_assert_uint_eq(tu_next(ctr), 9);

        idp_counter_stats st = {.size = sizeof st};
        idp_counter_stats_get(ctr, &st);
        /* batched: one fetch of 256 holds everything; legacy: one each */
        ck_assert_uint_eq(tu_get(c, name, &exists), mp ? 256 : 9);
        ck_assert_int_eq(exists, 1);
        ck_assert_uint_eq(st.prime_calls, mp ? 1 : 5);
        ck_assert_uint_eq(st.ids_served, 9);
        idp_close(c);
    }
    server_stop(&s, 0);
}
END_TEST

/* ---- No duplicates across processes and threads ------------------------ */

START_TEST(test_no_duplicate_across_4_processes_x_2_threads)
{
    server s;
    char uri[256];
    start_mc(&s, "-M");
    server_uri(&s, "?batch=100", uri, sizeof uri);

    /* The children fork before the parent opens anything; every 1000th
     * allocation goes through idp_incr (the INCRBY drop-in). */
    const tu_fanout f = {.uri = uri, .counter = "inode", .procs = 4,
                         .threads = 2, .per_thread = 50000,
                         .incr_every = 1000};
    size_t total = 0;
    uint64_t *all = tu_fanout_ids(&f, &total, NULL);   /* all distinct */
    ck_assert_uint_ge(all[0], 1);

    idp_client *c = open_ok(&s, NULL);
    ck_assert_uint_ge(tu_get(c, "inode", NULL), all[total - 1]);
    idp_close(c);
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* ---- The store's count of increments ----------------------------------- */

/* Allocates n IDs on a fresh client and returns its prime_calls. */
static uint64_t run_client(const server *s, const char *query, const char *name,
                           unsigned n)
{
    idp_client *c = open_ok(s, query);
    idp_counter *ctr = tu_counter(c, name);
    uint64_t prev = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t id = tu_next(ctr);
        ck_assert_uint_gt(id, prev);
        prev = id;
    }
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.ids_served, n);
    idp_close(c);
    return st.prime_calls;
}

START_TEST(test_store_counts_one_incr_per_batch)
{
    server s;
    start_mc(&s, "-M");
    uint64_t before = server_incrs(&s);

    /*
     * batch=100, low_watermark=0: the claim that empties a batch starts the
     * fetch of the next one. 999 IDs empty batches 1..9 (fetching 2..10)
     * and take 99 IDs of batch 10, which starts nothing: exactly
     * ceil(999/100) = 10 fetches, none still in flight when we look.
     */
    const char *q = "?batch=100&low_watermark=0&adaptive=0";
    uint64_t a = run_client(&s, q, "rt", 999);
    ck_assert_uint_eq(a, 10);
    uint64_t b = run_client(&s, q, "rt", 999);  /* a second client, same counter */
    ck_assert_uint_eq(b, 10);
    ck_assert_uint_eq(server_incrs(&s) - before, a + b);

    /*
     * The default low_watermark=25 on a fixed batch=100 starts the next fetch at
     * the 75th ID of each batch: 1000 IDs cross that point 10 times (IDs
     * 75, 175, ..., 975), so 1 + 10 = 11 fetches, the last one still in
     * the background when the 1000th ID is out. (How many of the others
     * ran in the background depends on timing, so that is not asserted.)
     */
    before = server_incrs(&s);
    idp_client *c = open_ok(&s, "?batch=100&adaptive=0");
    idp_counter *ctr = tu_counter(c, "rt_wm");
    for (uint64_t i = 1; i <= 1000; i++)
        ck_assert_uint_eq(tu_next(ctr), i);
    idp_counter_stats st = {.size = sizeof st};
    for (int i = 0; i < 500 && st.prime_calls < 11; i++) {
        idp_counter_stats_get(ctr, &st);
        tu_sleep_ms(10);
    }
    ck_assert_uint_eq(st.prime_calls, 11);
    ck_assert_uint_eq(server_incrs(&s) - before, 11);
    idp_close(c);

    /* metaprime=0: one store increment per ID, as before batching. */
    before = server_incrs(&s);
    uint64_t l = run_client(&s, "?metaprime=0", "rt_legacy", 50);
    ck_assert_uint_eq(l, 50);
    ck_assert_uint_eq(server_incrs(&s) - before, 50);

    /* A fresh counter: its creation (incr miss, then add) counts once. */
    before = server_incrs(&s);
    ck_assert_uint_eq(run_client(&s, "?batch=100&low_watermark=0&adaptive=0", "rt_fresh", 1), 1);
    ck_assert_uint_eq(server_incrs(&s) - before, 1);
    server_stop(&s, 0);
}
END_TEST

/* ---- Crashes ----------------------------------------------------------- */

START_TEST(test_killed_client_never_repeats_an_id)
{
    server s;
    char uri[256];
    uint64_t *ids = NULL;
    size_t n = 0;
    start_mc(&s, "-M");
    server_uri(&s, NULL, uri, sizeof uri);  /* default batch 256 */

    for (int round = 0; round < 3; round++) {
        size_t start = n;
        uint64_t floor = n > 0 ? ids[n - 1] : 0;
        /* What it served: 3000 IDs, killed mid-run, then the pipe drained. */
        tu_take_then_kill(uri, "crash", 3000, &ids, &n);
        /* a restarted client starts above everything served before */
        ck_assert_uint_gt(ids[start], floor);
    }

    idp_client *c = open_ok(&s, NULL);
    idp_counter *ctr = tu_counter(c, "crash");
    uint64_t floor = ids[n - 1];
    ids = realloc(ids, (n + 1000) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < 1000; i++) {
        uint64_t id = tu_next(ctr);
        ck_assert_uint_gt(id, floor);
        ids[n++] = id;
    }
    idp_close(c);
    tu_assert_distinct(ids, n);
    free(ids);
    server_stop(&s, 0);
}
END_TEST

/* ---- A store that hangs, stops, or forgets ----------------------------- */

#define TIMEOUT_MS 500
/* Bound for one failing call: the engine may wait for a background fetch
 * and then try once itself, each bounded by timeout_ms; plus slack for
 * sanitizers and loaded CI machines. */
#define FAIL_BOUND_MS (2 * TIMEOUT_MS + 2500)

START_TEST(test_hung_server_fails_within_timeout_and_recovers)
{
    server s;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?batch=10&low_watermark=0&adaptive=0&timeout_ms=500");
    idp_counter *ctr = tu_counter(c, "hang");
    uint64_t high = 0;
    for (int i = 0; i < 25; i++)
        high = tu_next(ctr);

    ck_assert_msg(server_pause(&s) == 0, "memcached %d did not stop", (int)s.pid);
    int failures = 0;
    for (int i = 0; i < 40 && failures < 2; i++) {
        idp_error err = {0};
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        if (rc == IDP_OK) {  /* still from the pool */
            ck_assert_uint_gt(id, high);
            high = id;
            continue;
        }
        failures++;
        ck_assert_msg(rc == IDP_ETIMEOUT, "rc %d: %s", rc, err.msg);
        ck_assert_msg(strstr(err.msg, "timed out") != NULL, "%s", err.msg);
        ck_assert_msg(dt <= FAIL_BOUND_MS, "failed after %lld ms", dt);
    }
    ck_assert_int_eq(failures, 2);
    ck_assert_int_eq(kill(s.pid, SIGCONT), 0);

    /* Back: the client reconnects by itself, and the lost replies were
     * gaps, never reused. */
    uint64_t id = 0;
    int rc = IDP_ESTORE;
    for (int i = 0; i < 5 && rc != IDP_OK; i++) {
        idp_error err = {0};
        rc = idp_next(ctr, &id, &err);
    }
    ck_assert_int_eq(rc, IDP_OK);
    ck_assert_uint_gt(id, high);
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_ge(st.errors, 2);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_late_reply_is_never_taken_for_a_later_answer)
{
    server s;
    idp_error err = {0};
    uint64_t v = 0;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?metaprime=0&timeout_ms=500");
    ck_assert_int_eq(idp_raise(c, "late_a", 1000000, &v, &err), IDP_OK);
    idp_counter *a = tu_counter(c, "late_a"), *b = tu_counter(c, "late_b");
    for (uint64_t i = 1; i <= 3; i++)
        ck_assert_uint_eq(tu_next(b), i);

    /* A's increment reaches the server, its reply does not in time. */
    ck_assert_msg(server_pause(&s) == 0, "memcached %d did not stop", (int)s.pid);
    ck_assert_int_eq(idp_next(a, &v, &err), IDP_ETIMEOUT);
    ck_assert_int_eq(kill(s.pid, SIGCONT), 0);
    tu_sleep_ms(200);  /* the server answers A now, to nobody */

    /* B's answer is B's, not A's late one; A's lost ID stays a gap. */
    ck_assert_uint_eq(tu_next(b), 4);
    ck_assert_uint_eq(tu_next(a), 1000002);
    ck_assert_uint_eq(tu_get(c, "late_b", NULL), 4);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_restarted_server_answers_are_refused_as_regression)
{
    server s;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?batch=10&low_watermark=0&adaptive=0&timeout_ms=500");
    idp_counter *ctr = tu_counter(c, "restart");
    uint64_t high = 0;
    for (int i = 0; i < 35; i++)
        high = tu_next(ctr);

    /* Down: errors, each within the bound. */
    server_stop(&s, 1);
    int failures = 0;
    for (int i = 0; i < 40 && failures < 2; i++) {
        idp_error err = {0};
        uint64_t id = 0;
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        if (rc == IDP_OK) {
            ck_assert_uint_gt(id, high);
            high = id;
            continue;
        }
        failures++;
        ck_assert_msg(rc == IDP_ESTORE || rc == IDP_ETIMEOUT, "rc %d: %s", rc,
                      err.msg);
        ck_assert_msg(dt <= FAIL_BOUND_MS, "failed after %lld ms", dt);
    }
    ck_assert_int_eq(failures, 2);

    /* Back, empty: its answers start at or below what the client held,
     * and are refused until the counter climbs past it. */
    ck_assert_int_eq(server_restart(&s), 0);
    int regressions = 0, served = 0;
    for (int i = 0; i < 200 && served < 20; i++) {
        idp_error err = {0};
        uint64_t id = 0;
        int rc = idp_next(ctr, &id, &err);
        if (rc == IDP_OK) {
            ck_assert_msg(regressions > 0, "served %" PRIu64 " from a store "
                          "that lost the counter", id);
            ck_assert_uint_gt(id, high);
            high = id;
            served++;
        } else {
            ck_assert_msg(rc == IDP_EREGRESS, "rc %d: %s", rc, err.msg);
            regressions++;
        }
    }
    ck_assert_int_gt(regressions, 0);
    ck_assert_int_eq(served, 20);
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr, &st);
    ck_assert_uint_eq(st.regressions, (uint64_t)regressions);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_flushed_counter_is_refused_never_served)
{
    server s;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?batch=10&low_watermark=0&adaptive=0");
    idp_counter *ctr = tu_counter(c, "flushed");
    uint64_t ids[400];
    size_t n = 0;
    for (int i = 0; i < 45; i++)
        ids[n++] = tu_next(ctr);

    flush_all(&s);
    int exists = -1;
    ck_assert_uint_eq(tu_get(c, "flushed", &exists), 0);
    ck_assert_int_eq(exists, 0);

    int regressions = 0;
    for (int i = 0; i < 300 && n < 120; i++) {
        idp_error err = {0};
        uint64_t id = 0;
        int rc = idp_next(ctr, &id, &err);
        if (rc == IDP_OK) {
            ck_assert_uint_gt(id, ids[n - 1]);
            ids[n++] = id;
        } else {
            ck_assert_msg(rc == IDP_EREGRESS, "rc %d: %s", rc, err.msg);
            regressions++;
        }
    }
    ck_assert_int_gt(regressions, 0);
    ck_assert_uint_eq(n, 120);
    tu_assert_distinct(ids, n);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- The 2^63 limit ---------------------------------------------------- */

START_TEST(test_values_stop_below_2_63_never_wrap)
{
    server s;
    idp_error err = {0};
    uint64_t v = 0, last = 0;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?metaprime=0");

    ck_assert_int_eq(idp_raise(c, "big", TWO63 - 10, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, TWO63 - 10);
    idp_counter *ctr = tu_counter(c, "big");
    for (uint64_t i = 9; i >= 5; i--)
        ck_assert_uint_eq(tu_next(ctr), TWO63 - i);
    /* 2^63-5 + 20 passes the limit: refused. memcached's incr has no
     * condition, so the plugin undoes it (a decr of 20): the room left is
     * still there, to the last value below 2^63. */
    ck_assert_int_eq(idp_incr(ctr, 20, &last, &err), IDP_ERANGE);
    ck_assert_uint_eq(tu_get(c, "big", NULL), TWO63 - 5);
    for (uint64_t i = 4; i >= 1; i--)
        ck_assert_uint_eq(tu_next(ctr), TWO63 - i);
    /* then everything is refused, and memcached, which wraps at 2^64,
     * never moves away from 2^63-1 however often it is asked */
    ck_assert_int_eq(idp_next(ctr, &v, &err), IDP_ERANGE);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(idp_incr(ctr, (uint64_t)1 << 20, &last, &err), IDP_ERANGE);
    ck_assert_uint_eq(tu_get(c, "big", NULL), TWO63 - 1);

    /* An increment larger than the room left is refused without using it. */
    ck_assert_int_eq(idp_raise(c, "big2", TWO63 - ((uint64_t)1 << 41), &v, &err), IDP_OK);
    idp_counter *ctr2 = tu_counter(c, "big2");
    ck_assert_int_eq(idp_incr(ctr2, (uint64_t)1 << 42, &last, &err), IDP_ERANGE);
    ck_assert_uint_eq(tu_get(c, "big2", NULL), TWO63 - ((uint64_t)1 << 41));
    ck_assert_int_eq(idp_incr(ctr2, (uint64_t)1 << 40, &last, &err), IDP_OK);
    ck_assert_uint_eq(last, TWO63 - ((uint64_t)1 << 40));
    idp_close(c);

    /* A batching client near the limit: refused, not wrapped. */
    c = open_ok(&s, "?batch=256");
    ck_assert_int_eq(idp_raise(c, "big3", TWO63 - 10, &v, &err), IDP_OK);
    idp_counter *ctr3 = tu_counter(c, "big3");
    ck_assert_int_eq(idp_next(ctr3, &v, &err), IDP_ERANGE);
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr3, &st);
    ck_assert_uint_eq(st.ids_served, 0);
    ck_assert_uint_eq(tu_get(c, "big3", NULL), TWO63 - 10);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* Sets `key` to the text `value` (as another tool would) over a raw
 * text-protocol socket. */
static void raw_set(const server *s, const char *key, const char *value)
{
    char cmd[512], buf[128];
    snprintf(cmd, sizeof cmd, "set %s 0 0 %zu\r\n%s\r\n", key,
             strlen(value), value);
    ck_assert_int_gt(mc_raw(s->port, cmd, "\r\n", buf, sizeof buf), 0);
    ck_assert_msg(strcmp(buf, "STORED\r\n") == 0, "set %s: %s", key, buf);
}

/* The value of `key` as memcached holds it, padding removed; "" when
 * missing. */
static const char *raw_get(const server *s, const char *key, char *out,
                           size_t len)
{
    char cmd[300], buf[512];
    snprintf(cmd, sizeof cmd, "get %s\r\n", key);
    ck_assert_int_gt(mc_raw(s->port, cmd, "END\r\n", buf, sizeof buf), 0);
    out[0] = '\0';
    const char *v = strstr(buf, "\r\n");
    if (strncmp(buf, "VALUE ", 6) == 0 && v != NULL)
        snprintf(out, len, "%.*s", (int)strcspn(v + 2, " \r"), v + 2);
    return out;
}

/*
 * Another tool wrote a counter at or past 2^63 (up to 2^64-6, where
 * memcached's incr would wrap around to a small value): every path refuses
 * it naming the key and the value, and none ever writes a lower value.
 */
START_TEST(test_value_past_2_63_from_another_tool_is_refused_never_lowered)
{
    static const char *const values[] = {
        "18446744073709551610", "9223372036854775808", "9223372036854776000"};
    server s;
    char got[64];
    start_mc(&s, "-M");
    for (int mp = 1; mp >= 0; mp--) {
        idp_client *c = open_ok(&s, mp ? "?batch=256" : "?metaprime=0");
        for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
            char key[16];
            snprintf(key, sizeof key, "f%d_%zu", mp, i);
            raw_set(&s, key, values[i]);
            idp_counter *ctr = tu_counter(c, key);
            idp_error err = {0, ""};
            uint64_t v = 0;
            int exists = -1;
            ck_assert_int_eq(idp_next(ctr, &v, &err), IDP_ERANGE);
            ck_assert_msg(strstr(err.msg, values[i]) != NULL, "%s", err.msg);
            ck_assert_int_eq(idp_incr(ctr, (uint64_t)1 << 40, &v, &err),
                             IDP_ERANGE);
            ck_assert_int_eq(idp_raise(c, key, 5, &v, &err), IDP_ERANGE);
            ck_assert_int_eq(idp_get(c, key, &v, &exists, &err), IDP_ERANGE);
            ck_assert_msg(strstr(err.msg, key) != NULL &&
                          strstr(err.msg, values[i]) != NULL, "%s", err.msg);
            ck_assert_str_eq(raw_get(&s, key, got, sizeof got), values[i]);
        }
        idp_close(c);
    }
    server_stop(&s, 0);
}
END_TEST

/*
 * A large value written after this client's first look at the counter: the
 * increment that meets it is refused and undone (2^63 + 5 stays 2^63 + 5),
 * and one that wraps memcached past 2^64 is refused and the value before
 * the wrap put back.
 */
START_TEST(test_large_value_written_later_is_refused_and_restored)
{
    server s;
    char got[64];
    idp_error err = {0, ""};
    uint64_t v = 0;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?metaprime=0");
    idp_counter *ctr = tu_counter(c, "w");
    ck_assert_uint_eq(tu_next(ctr), 1);
    raw_set(&s, "w", "9223372036854775813");
    ck_assert_int_eq(idp_incr(ctr, 10, &v, &err), IDP_ERANGE);
    ck_assert_str_eq(raw_get(&s, "w", got, sizeof got), "9223372036854775813");
    raw_set(&s, "w", "18446744073709551610");   /* 2^64 - 6 */
    ck_assert_int_eq(idp_incr(ctr, 10, &v, &err), IDP_ERANGE);
    ck_assert_msg(strstr(err.msg, "2^63") != NULL, "%s", err.msg);
    ck_assert_str_eq(raw_get(&s, "w", got, sizeof got), "18446744073709551610");
    /* back below the limit, the same client serves on */
    raw_set(&s, "w", "41");
    ck_assert_uint_eq(tu_next(ctr), 42);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/*
 * A full memcached (-M, a small -m) asked to grow a counter another tool
 * wrote ("9": "10" needs a new item) answers "out of memory".
 * libmemcached 1.1.4 aborts the process on that answer to an incr; the
 * plugin must report it as an error and stay usable.
 */
START_TEST(test_out_of_memory_answer_to_incr_is_an_error)
{
    server s;
    char cmd[1200], buf[256], got[64];
    start_mc(&s, "-M -m 2 -I 512k");
    raw_set(&s, "foreign", "9");
    idp_client *c = open_ok(&s, "?metaprime=0");
    /* a counter of ours, created while there is room */
    ck_assert_uint_eq(tu_next(tu_counter(c, "ours")), 1);
    /* fill the memory: item sizes from large to small, until refused */
    static const size_t sizes[] = {1000, 500, 200, 100, 50, 20, 10, 5, 1};
    char value[1001];
    memset(value, 'x', sizeof value - 1);
    int refused = 0;
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        for (int i = 0; i < 100000; i++) {
            snprintf(cmd, sizeof cmd, "set fill%zu_%d 0 0 %zu\r\n%.*s\r\n",
                     sizes[z], i, sizes[z], (int)sizes[z], value);
            ck_assert_int_gt(mc_raw(s.port, cmd, "\r\n", buf, sizeof buf), 0);
            if (strncmp(buf, "SERVER_ERROR", 12) == 0) {
                refused++;
                break;
            }
        }
    }
    ck_assert_int_gt(refused, 0);
    idp_counter *ctr = tu_counter(c, "foreign");
    idp_error err = {0, ""};
    uint64_t v = 0;
    ck_assert_int_eq(idp_next(ctr, &v, &err), IDP_ESTORE);
    ck_assert_msg(strstr(err.msg, "out of memory") != NULL &&
                  strstr(err.msg, "foreign") != NULL, "%s", err.msg);
    ck_assert_str_eq(raw_get(&s, "foreign", got, sizeof got), "9");
    /* the client goes on: our padded counter grows in place */
    ck_assert_uint_eq(tu_next(tu_counter(c, "ours")), 2);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_raise_never_lowers)
{
    server s;
    idp_error err = {0};
    uint64_t v = 0;
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, "?metaprime=0");
    ck_assert_int_eq(idp_raise(c, "r", 1000, &v, &err), IDP_OK);  /* missing: created */
    ck_assert_uint_eq(v, 1000);
    ck_assert_int_eq(idp_raise(c, "r", 10, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 1000);
    ck_assert_uint_eq(tu_get(c, "r", NULL), 1000);
    ck_assert_uint_eq(tu_next(tu_counter(c, "r")), 1001);
    ck_assert_int_eq(idp_raise(c, "r", 5000, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 5000);
    ck_assert_uint_eq(tu_next(tu_counter(c, "r")), 5001);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Several servers -------------------------------------------------- */

/* 1 when 127.0.0.1:port holds `key` (a raw text-protocol get). */
static int server_has(const server *s, const char *key)
{
    char cmd[300], buf[512];
    snprintf(cmd, sizeof cmd, "get %s\r\n", key);
    ck_assert_int_gt(mc_raw(s->port, cmd, "END\r\n", buf, sizeof buf), 0);
    return strncmp(buf, "VALUE ", 6) == 0;
}

START_TEST(test_counters_spread_over_servers_by_consistent_hashing)
{
    server a, b;
    char uri[256];
    idp_error err = {0};
    start_mc(&a, "-M");
    start_mc(&b, "-M");
    snprintf(uri, sizeof uri, "memcached://127.0.0.1:%d,127.0.0.1:%d?metaprime=0",
             a.port, b.port);
    idp_client *c = idp_open(uri, NULL, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    int on_a = 0;
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "spread%d", i);
        ck_assert_uint_eq(tu_next(tu_counter(c, name)), 1);
        int ha = server_has(&a, name), hb = server_has(&b, name);
        ck_assert_msg(ha + hb == 1, "%s on %d servers", name, ha + hb);
        on_a += ha;
    }
    ck_assert_msg(on_a > 0 && on_a < 40, "%d of 40 counters on one server",
                  on_a);
    idp_close(c);

    /* The same servers listed in the other order: the same placement. */
    snprintf(uri, sizeof uri, "memcached://127.0.0.1:%d,127.0.0.1:%d?metaprime=0",
             b.port, a.port);
    c = idp_open(uri, NULL, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "spread%d", i);
        ck_assert_uint_eq(tu_next(tu_counter(c, name)), 2);
    }
    idp_close(c);
    server_stop(&a, 0);
    server_stop(&b, 0);
}
END_TEST

/* ---- Bad URIs, keys and unsupported operations ------------------------- */

static void assert_open_fails(const char *uri, int code, const char *needle)
{
    idp_error err = {0};
    idp_client *c = idp_open(uri, NULL, &err);
    ck_assert_msg(c == NULL, "idp_open(%s) succeeded", uri);
    ck_assert_msg(err.code == code, "idp_open(%s): code %d, want %d: %s", uri,
                  err.code, code, err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL,
                  "idp_open(%s): '%s' does not mention '%s'", uri, err.msg, needle);
}

START_TEST(test_bad_store_uris_are_refused)
{
    server s;
    char uri[256], hp[64];
    start_mc(&s, "-M");

    int closed = harness_free_port();
    snprintf(uri, sizeof uri, "memcached://127.0.0.1:%d", closed);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", closed);
    assert_open_fails(uri, IDP_ESTORE, hp);
    /* one good server does not hide a bad one */
    snprintf(uri, sizeof uri, "memcached://127.0.0.1:%d,127.0.0.1:%d", s.port, closed);
    assert_open_fails(uri, IDP_ESTORE, hp);

    snprintf(uri, sizeof uri, "memcached://127.0.0.1:%d/counters", s.port);
    assert_open_fails(uri, IDP_EINVAL, "path");
    assert_open_fails("memcached://127.0.0.1:99999", IDP_EINVAL, "port");
    assert_open_fails("memcached://127.0.0.1:abc", IDP_EINVAL, "port");
    snprintf(uri, sizeof uri, "memcached://user:pw@127.0.0.1:%d", s.port);
    assert_open_fails(uri, IDP_EINVAL, "password");
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_keys_memcached_cannot_hold_are_refused)
{
    server s;
    idp_error err = {0};
    uint64_t id;
    char query[400];
    start_mc(&s, "-M");

    /* prefix + name over 250 bytes */
    int n = snprintf(query, sizeof query, "?metaprime=0&prefix=");
    memset(query + n, 'p', 245);
    query[n + 245] = '\0';
    idp_client *c = open_ok(&s, query);
    ck_assert_int_eq(idp_next(tu_counter(c, "abcdefgh"), &id, &err), IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "250") != NULL, "%s", err.msg);
    ck_assert_int_eq(idp_next(tu_counter(c, "ab"), &id, &err), IDP_OK);  /* 247 */
    idp_close(c);

    /* a space in the prefix */
    c = open_ok(&s, "?metaprime=0&prefix=a%20b");
    ck_assert_int_eq(idp_next(tu_counter(c, "x"), &id, &err), IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, "space") != NULL, "%s", err.msg);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

START_TEST(test_list_is_unsupported)
{
    server s;
    idp_error err = {0};
    start_mc(&s, "-M");
    idp_client *c = open_ok(&s, NULL);
    ck_assert_int_eq(idp_list(c, tu_listed_cb, &(tu_listed){0}, &err), IDP_EUNSUPPORTED);
    idp_close(c);
    server_stop(&s, 0);
}
END_TEST

/* ---- Open warns about eviction ----------------------------------------- */

typedef struct logbuf {
    int warnings;
    char last[512];
} logbuf;

static void capture_log(void *ud, int level, const char *msg)
{
    logbuf *l = ud;
    if (level == IDP_LOG_WARN) {
        l->warnings++;
        snprintf(l->last, sizeof l->last, "%s", msg);
    }
}

static int open_count_warnings(const server *s, logbuf *l)
{
    char uri[256];
    idp_error err = {0};
    idp_options opt = {.size = sizeof opt, .log = capture_log, .log_ud = l};
    memset(l, 0, sizeof *l);
    server_uri(s, NULL, uri, sizeof uri);
    idp_client *c = idp_open(uri, &opt, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    idp_close(c);
    return l->warnings;
}

START_TEST(test_open_warns_when_server_evicts)
{
    server s;
    logbuf l;
    start_mc(&s, NULL);  /* no -M: memcached evicts when full */
    ck_assert_int_eq(open_count_warnings(&s, &l), 1);
    ck_assert_msg(strstr(l.last, "evict") != NULL, "%s", l.last);
    ck_assert_msg(strstr(l.last, "-M") != NULL, "%s", l.last);
    server_stop(&s, 0);

    start_mc(&s, "-M");
    ck_assert_int_eq(open_count_warnings(&s, &l), 0);
    server_stop(&s, 0);
}
END_TEST

/* ---- Racing creators --------------------------------------------------- */

#define RACERS 8
#define RACE_NAMES 20
#define RACE_N 3

START_TEST(test_racing_creators_get_distinct_ranges)
{
    server s;
    char uri[256];
    int go[2], out[2];
    pid_t pids[RACERS];
    start_mc(&s, "-M");
    server_uri(&s, "?metaprime=0", uri, sizeof uri);
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(out), 0);

    for (int p = 0; p < RACERS; p++) {
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] != 0)
            continue;
        close(go[1]);
        close(out[0]);
        idp_error err = {0};
        idp_client *c = idp_open(uri, NULL, &err);
        idp_counter *ctr[RACE_NAMES];
        char byte;
        if (c == NULL)
            _exit(2);
        for (int i = 0; i < RACE_NAMES; i++) {
            char name[32];
            snprintf(name, sizeof name, "race%d", i);
            if ((ctr[i] = idp_counter_get(c, name, &err)) == NULL)
                _exit(3);
        }
        if (read(go[0], &byte, 1) != 0)  /* start together: at EOF */
            _exit(4);
        for (int i = 0; i < RACE_NAMES; i++) {
            uint64_t rec[2] = {(uint64_t)i, 0};
            if (idp_incr(ctr[i], RACE_N, &rec[1], &err) != IDP_OK) {
                fprintf(stderr, "racer: %s\n", err.msg);
                _exit(5);
            }
            if (write(out[1], rec, sizeof rec) != sizeof rec)
                _exit(6);
        }
        idp_close(c);
        _exit(0);
    }
    close(go[0]);
    close(out[1]);
    tu_sleep_ms(200);  /* let every racer connect */
    close(go[1]);

    unsigned seen[RACE_NAMES] = {0};
    uint64_t rec[2];
    int got = 0;
    while (read(out[0], rec, sizeof rec) == sizeof rec) {
        ck_assert_uint_lt(rec[0], RACE_NAMES);
        /* INCRBY RACE_N on a fresh counter: RACE_N, 2*RACE_N, ... each once */
        ck_assert_uint_eq(rec[1] % RACE_N, 0);
        uint64_t k = rec[1] / RACE_N;
        ck_assert_msg(k >= 1 && k <= RACERS, "race%u got %" PRIu64,
                      (unsigned)rec[0], rec[1]);
        ck_assert_msg(!(seen[rec[0]] & (1u << k)), "race%u: %" PRIu64 " twice",
                      (unsigned)rec[0], rec[1]);
        seen[rec[0]] |= 1u << k;
        got++;
    }
    close(out[0]);
    for (int p = 0; p < RACERS; p++)
        wait_child_ok(pids[p]);
    ck_assert_int_eq(got, RACERS * RACE_NAMES);
    for (int i = 0; i < RACE_NAMES; i++)
        ck_assert_uint_eq(seen[i], ((1u << (RACERS + 1)) - 1) & ~1u);
    server_stop(&s, 0);
}
END_TEST

/* ---- Suite ------------------------------------------------------------- */

int main(void)
{
    const TTest *tests[] = {
        test_first_ids_are_1_2_3,
        test_no_duplicate_across_4_processes_x_2_threads,
        test_store_counts_one_incr_per_batch,
        test_killed_client_never_repeats_an_id,
        test_hung_server_fails_within_timeout_and_recovers,
        test_late_reply_is_never_taken_for_a_later_answer,
        test_restarted_server_answers_are_refused_as_regression,
        test_flushed_counter_is_refused_never_served,
        test_values_stop_below_2_63_never_wrap,
        test_value_past_2_63_from_another_tool_is_refused_never_lowered,
        test_large_value_written_later_is_refused_and_restored,
        test_out_of_memory_answer_to_incr_is_an_error,
        test_raise_never_lowers,
        test_counters_spread_over_servers_by_consistent_hashing,
        test_bad_store_uris_are_refused,
        test_keys_memcached_cannot_hold_are_refused, test_list_is_unsupported,
        test_open_warns_when_server_evicts,
        test_racing_creators_get_distinct_ranges, NULL};
    const tu_case cases[] = {
        {.name = "store", .tests = tests}, {.name = NULL}};
    return tu_run(tu_suite("memcached", 120, cases));
}
