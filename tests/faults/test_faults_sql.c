/*
 * test_faults_sql.c - the fault suite's cases on PostgreSQL and MariaDB:
 * what their own suites (test_postgresql, test_mysql) do not do.
 *
 * - Outage with several clients: two clients of 4 threads each run while
 *   the server hangs (SIGSTOP; PostgreSQL with every backend) for
 *   4 x timeout_ms, then is SIGKILLed (PostgreSQL: every process, as a
 *   machine crash), left down 1 s and restarted. As in test_faults_outage:
 *   every failed call is a store error or a timeout that names the counter
 *   and the plugin, within 2 x timeout_ms + 1 s; both clients recover; the
 *   servers keep every committed increment, so no answer is a regression;
 *   no ID twice over both clients; the store ends past every ID.
 * - Spoiled replies, through relay.h between the client and the real
 *   server: a reply replaced by garbage, cut in the middle with the
 *   connection closed, or never sent (silence). Each fails one fetch with
 *   a clear, bounded error (silence: after timeout_ms, not before) and
 *   serves nothing of it; the increment the server may have applied is a
 *   gap, never handed out; the next call reconnects and goes on. Another
 *   client straight on the server takes IDs between the faults, and every
 *   ID of both is checked for duplicates.
 * - Nonsense at connect: garbage for a handshake, and a server that
 *   accepts and never speaks: idp_open fails, naming the plugin and the
 *   address, within the bound.
 */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faults.h"
#include "harness.h"
#include "idprime/idprime.h"
#include "relay.h"
#include "sql_helpers.h"
#include "testutil.h"

#define T_MS 300
#define THREADS 4
#define QUERY "?batch=100&adaptive=0&timeout_ms=300"

static const char *const kinds[] = {"postgresql", "mysql"};
static const char *const plugin_of[] = {"postgresql plugin", "mysql plugin"};

static void start(server *s, const char *kind)
{
    ck_assert_msg(server_start(s, kind, NULL) == 0, "%s did not start", kind);
}

/* ---- 1. Hung, then crashed, under two clients --------------------------- */

START_TEST(test_hung_then_crashed_under_two_clients)
{
    const char *kind = kinds[_i];
    server s;
    start(&s, kind);
    enum { CLIENTS = 2 };
    idp_client *c[CLIENTS];
    idp_counter *ctr[CLIENTS];
    static fa_run run[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = server_open(&s, QUERY, NULL);
        ctr[i] = tu_counter(c[i], "out");
        fa_run_start(&run[i], ctr[i], "out", plugin_of[_i], THREADS);
    }
    fa_run_for(400);
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_msg(atomic_load(&run[i].t[0].served) > 0, "client %d "
                      "served nothing before the fault", i);

    long long hang_from = tu_now_ms();
    hang_all(&s);
    fa_run_for(4 * T_MS);
    uint64_t pc[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        pc[i] = prime_calls(ctr[i]);
    resume_all(&s);
    long long hang_to = tu_now_ms();
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_msg(fa_run_wait_recovered(&run[i], hang_to, pc[i], 2, 10000),
                      "client %d did not recover within 10 s of %s resuming",
                      i, kind);

    long long down_from = tu_now_ms();
    crash_all(&s);
    fa_run_for(1000);
    long long down_to = tu_now_ms();
    for (int i = 0; i < CLIENTS; i++)
        pc[i] = prime_calls(ctr[i]);
    ck_assert_int_eq(server_restart(&s), 0);
    long long back = tu_now_ms();
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_msg(fa_run_wait_recovered(&run[i], back, pc[i], 2, 15000),
                      "client %d did not recover within 15 s of %s "
                      "restarting", i, kind);
    fa_run_for(300);
    for (int i = 0; i < CLIENTS; i++)
        fa_run_stop(&run[i]);

    size_t total = 0, errors = 0, timeouts = 0, down = 0;
    uint64_t max_id = 0;
    for (int i = 0; i < CLIENTS; i++) {
        errors += fa_run_check(&run[i], FA_CALL_LIMIT_MS(T_MS));
        idp_counter_stats st = tu_settle(ctr[i]);
        ck_assert_msg(st.regressions == 0, "%s kept every committed "
                      "increment, yet client %d refused %" PRIu64 " answers "
                      "as regressions", kind, i, st.regressions);
        timeouts += fa_run_errors(&run[i], IDP_ETIMEOUT, hang_from, hang_to);
        down += fa_run_errors(&run[i], -1, down_from, down_to);
        uint64_t m = fa_run_max_id(&run[i]);
        max_id = m > max_id ? m : max_id;
        for (int k = 0; k < THREADS; k++)
            total += run[i].t[k].n;
    }
    ck_assert_msg(timeouts > 0, "no call timed out while %s was stopped",
                  kind);
    ck_assert_msg(down > 0, "no call failed while %s was down", kind);
    uint64_t *all = malloc(total * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t at = 0;
    for (int i = 0; i < CLIENTS; i++) {
        size_t n = 0;
        uint64_t *ids = fa_run_ids(&run[i], &n);
        memcpy(all + at, ids, n * sizeof *ids);
        at += n;
        free(ids);
    }
    ck_assert_uint_gt(total, 1000);
    tu_assert_distinct(all, total);
    ck_assert_uint_ge(tu_get(c[0], "out", NULL), max_id);
    fprintf(stderr, "faults %s hang+crash: %zu IDs, %zu failed calls "
            "(longest %lld ms, bound %lld)\n", kind, total, errors,
            fa_run_max_err_ms(&run[0]) > fa_run_max_err_ms(&run[1])
                ? fa_run_max_err_ms(&run[0]) : fa_run_max_err_ms(&run[1]),
            FA_CALL_LIMIT_MS(T_MS));
    for (int i = 0; i < CLIENTS; i++) {
        fa_run_free(&run[i]);
        idp_close(c[i]);
    }
    free(all);
    server_stop(&s, 0);
}
END_TEST

/* ---- 2. Spoiled replies ------------------------------------------------- */

/* The URI of s's store at the relay's port instead of the server's. */
static char *relay_uri(const server *s, const relay *r, const char *query,
                       char *buf, size_t len)
{
    char port[16], rport[16], uri[512];
    server_uri(s, query, uri, sizeof uri);
    snprintf(port, sizeof port, ":%d/", s->port);
    snprintf(rport, sizeof rport, ":%d/", r->port);
    char *at = strstr(uri, port);
    ck_assert_ptr_nonnull(at);
    snprintf(buf, len, "%.*s%s%s", (int)(at - uri), uri, rport,
             at + strlen(port));
    return buf;
}

typedef struct ids {
    uint64_t v[4096];
    size_t n;
} ids;

/* Takes n IDs of ctr into a; each above the one before. */
static void take(idp_counter *ctr, ids *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t id = tu_next(ctr);
        ck_assert_uint_lt(a->n, sizeof a->v / sizeof *a->v);
        a->v[a->n++] = id;
    }
}

START_TEST(test_spoiled_replies_fail_one_call_and_serve_nothing)
{
    const char *kind = kinds[_i];
    server s;
    relay r;
    start(&s, kind);
    ck_assert_int_eq(relay_start(&r, s.port), 0);
    char uri[600];
    /* low_watermark=0: each fetch on the caller's thread, when the pool is
     * empty, so the spoiled reply meets the call the test makes */
    relay_uri(&s, &r, QUERY "&low_watermark=0", uri, sizeof uri);
    idp_client *c = tu_open(uri, NULL);
    idp_counter *ctr = tu_counter(c, "sp");
    idp_client *direct = server_open(&s, QUERY, NULL);
    idp_counter *dctr = tu_counter(direct, "sp");
    ids mine = {.n = 0}, theirs = {.n = 0};
    take(ctr, &mine, 100);          /* the first batch: the pool is empty */

    const struct {
        relay_mode mode;
        const char *what;
    } faults[] = {{RELAY_GARBAGE, "garbage"}, {RELAY_CUT, "a cut reply"},
                  {RELAY_SILENT, "silence"}, {RELAY_GARBAGE, "garbage"}};
    for (size_t f = 0; f < sizeof faults / sizeof *faults; f++) {
        take(dctr, &theirs, 10);   /* another client moves the counter */
        idp_counter_stats st = tu_settle(ctr);
        uint64_t served = st.ids_served;
        relay_set(&r, faults[f].mode);
        uint64_t id = 0;
        idp_error err = {0, ""};
        long long t0 = tu_now_ms();
        int rc = idp_next(ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        relay_set(&r, RELAY_PASS);
        ck_assert_msg(rc == IDP_ESTORE || rc == IDP_ETIMEOUT, "%s, %s: "
                      "idp_next gave %d (id %" PRIu64 "), a store error or a "
                      "timeout expected", kind, faults[f].what, rc, id);
        ck_assert_msg(relay_spoiled(&r) > f, "%s, %s: the fetch never met "
                      "the relay's fault", kind, faults[f].what);
        ck_assert_msg(strstr(err.msg, "'sp'") != NULL, "%s, %s: the message "
                      "does not name the counter: %s", kind, faults[f].what,
                      err.msg);
        if (rc == IDP_ESTORE)
            ck_assert_msg(strstr(err.msg, plugin_of[_i]) != NULL, "%s, %s: "
                          "the message does not name the plugin: %s", kind,
                          faults[f].what, err.msg);
        ck_assert_msg(dt <= FA_CALL_LIMIT_MS(T_MS), "%s, %s: the call took "
                      "%lld ms (bound %lld)", kind, faults[f].what, dt,
                      FA_CALL_LIMIT_MS(T_MS));
        if (faults[f].mode == RELAY_SILENT)
            ck_assert_msg(dt >= T_MS - 10, "%s, silence: failed after %lld "
                          "ms, before timeout_ms=%d", kind, dt, T_MS);
        st = tu_settle(ctr);
        ck_assert_uint_eq(st.ids_served, served);
        fprintf(stderr, "faults %s, %s: %s after %lld ms: %s\n", kind,
                faults[f].what, rc == IDP_ESTORE ? "ESTORE" : "ETIMEOUT", dt,
                err.msg);
        /* the next call reconnects and serves above everything before */
        size_t before = mine.n;
        take(ctr, &mine, 100);
        ck_assert_uint_gt(mine.v[before], mine.v[before - 1]);
    }
    take(dctr, &theirs, 10);
    uint64_t all[8192];
    memcpy(all, mine.v, mine.n * sizeof *all);
    memcpy(all + mine.n, theirs.v, theirs.n * sizeof *all);
    tu_assert_distinct(all, mine.n + theirs.n);
    uint64_t top = 0;
    for (size_t i = 0; i < mine.n + theirs.n; i++)
        top = all[i] > top ? all[i] : top;
    ck_assert_uint_ge(tu_get(direct, "sp", NULL), top);
    idp_close(c);
    idp_close(direct);
    relay_stop(&r);
    server_stop(&s, 0);
}
END_TEST

/* ---- 3. Nonsense at connect --------------------------------------------- */

START_TEST(test_nonsense_at_connect_fails_the_open)
{
    const char *kind = kinds[_i];
    server s;
    relay r;
    start(&s, kind);
    ck_assert_int_eq(relay_start(&r, s.port), 0);
    char uri[600], port[16];
    relay_uri(&s, &r, QUERY, uri, sizeof uri);
    snprintf(port, sizeof port, "%d", r.port);
    const relay_mode modes[] = {RELAY_GARBAGE, RELAY_CUT, RELAY_SILENT};
    const char *what[] = {"garbage", "a cut greeting", "silence"};
    for (int m = 0; m < 3; m++) {
        relay_set(&r, modes[m]);
        idp_error err = {0, ""};
        long long t0 = tu_now_ms();
        idp_client *c = idp_open(uri, NULL, &err);
        long long dt = tu_now_ms() - t0;
        relay_set(&r, RELAY_PASS);
        if (c != NULL)
            idp_close(c);
        fprintf(stderr, "faults %s, open meeting %s: code %d after %lld ms: "
                "%s\n", kind, what[m], err.code, dt, err.msg);
        ck_assert_msg(c == NULL, "%s: open succeeded through %s", kind,
                      what[m]);
        ck_assert_msg(strstr(err.msg, plugin_of[_i]) != NULL &&
                      strstr(err.msg, port) != NULL, "%s, %s: the message "
                      "names neither the plugin nor the address: %s", kind,
                      what[m], err.msg);
        ck_assert_msg(dt <= FA_CALL_LIMIT_MS(T_MS), "%s, %s: idp_open took "
                      "%lld ms (bound %lld)", kind, what[m], dt,
                      FA_CALL_LIMIT_MS(T_MS));
    }
    /* and it opens once the relay passes everything */
    idp_client *c = tu_open(uri, NULL);
    ck_assert_uint_ge(tu_next(tu_counter(c, "x")), 1);
    idp_close(c);
    relay_stop(&r);
    server_stop(&s, 0);
}
END_TEST

int main(void)
{
    const TTest *none[] = {NULL};
    const TTest *outage[] = {test_hung_then_crashed_under_two_clients, NULL};
    const TTest *spoiled[] = {
        test_spoiled_replies_fail_one_call_and_serve_nothing,
        test_nonsense_at_connect_fails_the_open, NULL};
    /* each loop test runs for _i = 0 (postgresql) and 1 (mysql) */
    const tu_case cases[] = {
        {.name = "outage", .tests = none, .loops = outage, .rows = 2},
        {.name = "spoiled", .tests = none, .loops = spoiled, .rows = 2},
        {.name = NULL}};
    return tu_run(tu_suite("faults_sql", 120, cases));
}
