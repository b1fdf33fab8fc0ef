/*
 * test_giveback_stores.c - a clean close gives back the unserved rest of
 * the last batch (DESIGN: Semantics 7) on every store, through each
 * store's own compare-and-set (the plugins' lower method): redis,
 * redis-sentinel, redis-cluster, memcached, sqlite, postgresql and mysql,
 * each started by the harness (store_rigs.c). test_giveback (unit) covers
 * the engine's side on mem.
 *
 * For each store, with default settings:
 * - 1000 IDs taken through the library, then a clean close: the store
 *   holds exactly 1000; the same through the CLI, `idprime next URI c -n
 *   1000` then `idprime get URI c`;
 * - a client that fetched after another makes the other's close give back
 *   nothing (the store's value is unchanged by it), while its own close,
 *   the last, lowers the value to its last ID, and a third client goes on
 *   from there: no ID is served twice.
 * Values are read back by a fresh client that fetches nothing. And on
 * redis with wait_replicas=1, the give-back is acknowledged by the replica
 * like any write: it holds the lowered value as soon as close returns.
 */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "idprime/idprime.h"
#include "redis_helpers.h"
#include "store_rigs.h"
#include "testutil.h"

/* The store's value of `name`, read by a client that fetches nothing. */
static uint64_t value_of(const store_rig *r, const char *name)
{
    char uri[1024];
    idp_client *c = tu_open(rig_uri(r, NULL, uri, sizeof uri), NULL);
    int exists = 0;
    uint64_t v = tu_get(c, name, &exists);
    ck_assert_msg(exists, "%s: counter '%s' does not exist", r->kind, name);
    idp_close(c);
    return v;
}

/* ---- 1000 IDs, a clean close: the store holds 1000 ------------------------ */

static void next_1000_through_the_library(const store_rig *r)
{
    char uri[1024];
    idp_client *c = tu_open(rig_uri(r, NULL, uri, sizeof uri), NULL);
    idp_counter *ctr = tu_counter(c, "lib");
    for (uint64_t want = 1; want <= 1000; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    idp_counter_stats st = tu_settle(ctr);
    /* the test means something only if more than 1000 was fetched */
    ck_assert_msg(value_of(r, "lib") > 1000, "%s: the client fetched only "
                  "what it served (prime_calls %" PRIu64 ")", r->kind,
                  st.prime_calls);
    idp_close(c);
    ck_assert_msg(value_of(r, "lib") == 1000, "%s: after a clean close the "
                  "store holds %" PRIu64 ", not 1000", r->kind,
                  value_of(r, "lib"));
}

/* Runs the CLI with `args` (a shell word list) and returns its output,
 * to free; fails the test unless it exits 0. */
static char *cli(const char *args)
{
    const char *bin = getenv("IDPRIME_CLI");
    ck_assert_msg(bin != NULL, "IDPRIME_CLI is not set (run under ctest)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", bin, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            out = realloc(out, cap);
            ck_assert_ptr_nonnull(out);
        }
    }
    out[n] = '\0';
    int st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit %d",
                  cmd, st);
    return out;
}

static void next_1000_through_the_cli(const store_rig *r)
{
    char args[1024];
    snprintf(args, sizeof args, "next '%s' cli -n 1000", r->uri);
    char *out = cli(args);
    /* 1 .. 1000, one a line */
    char *p = out;
    for (uint64_t want = 1; want <= 1000; want++) {
        char *end;
        uint64_t v = strtoull(p, &end, 10);
        ck_assert_msg(end != p && *end == '\n', "%s: `idprime %s` printed a "
                      "line that is no ID near: %.40s", r->kind, args, p);
        ck_assert_uint_eq(v, want);
        p = end + 1;
    }
    ck_assert_str_eq(p, "");
    free(out);
    snprintf(args, sizeof args, "get '%s' cli", r->uri);
    out = cli(args);
    ck_assert_msg(strcmp(out, "1000\n") == 0, "%s: `idprime next -n 1000` "
                  "left the counter at %s", r->kind, out);
    free(out);
}

/* ---- Somebody fetched after us: nothing given back --------------------- */

#define TAKE 10

static void take(idp_counter *ctr, uint64_t *ids)
{
    for (int i = 0; i < TAKE; i++)
        ids[i] = tu_next(ctr);
    tu_settle(ctr);   /* no fetch of its own still on the way */
}

static void second_client_blocks_the_first(const store_rig *r)
{
    char uri[1024];
    uint64_t ids[3 * TAKE];
    rig_uri(r, NULL, uri, sizeof uri);
    idp_client *a = tu_open(uri, NULL), *b = tu_open(uri, NULL);
    take(tu_counter(a, "two"), ids);
    take(tu_counter(b, "two"), ids + TAKE);
    uint64_t before = value_of(r, "two");
    ck_assert_uint_gt(before, ids[2 * TAKE - 1]);  /* b holds a batch */
    idp_close(a);
    ck_assert_msg(value_of(r, "two") == before, "%s: the first client gave "
                  "back after another fetched: %" PRIu64 " -> %" PRIu64,
                  r->kind, before, value_of(r, "two"));
    /* b fetched last: its close lowers the store to its last ID */
    idp_close(b);
    ck_assert_uint_eq(value_of(r, "two"), ids[2 * TAKE - 1]);
    idp_client *c = tu_open(uri, NULL);
    take(tu_counter(c, "two"), ids + 2 * TAKE);
    ck_assert_uint_eq(ids[2 * TAKE], ids[2 * TAKE - 1] + 1);
    idp_close(c);
    tu_assert_distinct(ids, 3 * TAKE);
}

START_TEST(test_clean_close_gives_back_only_while_nobody_fetched_after)
{
    store_rig r;
    rig_start(&r, rig_kinds[_i]);
    next_1000_through_the_library(&r);
    next_1000_through_the_cli(&r);
    second_client_blocks_the_first(&r);
    rig_stop(&r);
}
END_TEST

/* ---- wait_replicas: the give-back is a durable write ------------------- */

#ifdef RIG_HAVE_REDIS
START_TEST(test_redis_wait_replicas_replica_holds_the_given_back_value)
{
    server p, r;
    start_redis(&p, NULL);
    start_replica(&r, &p);
    idp_client *c = server_open(&p, "?wait_replicas=1", &with_log);
    idp_counter *ctr = tu_counter(c, "dur");
    for (uint64_t want = 1; want <= 1000; want++)
        ck_assert_uint_eq(tu_next(ctr), want);
    tu_settle(ctr);
    ck_assert_uint_gt(value_on(&p, "dur"), 1000);
    uint64_t evals = server_calls(&p, "eval"), waits = server_calls(&p, "wait");
    idp_close(c);
    ck_assert_msg(value_on(&p, "dur") == 1000, "the primary holds %" PRIu64
                  "; log: %s", value_on(&p, "dur"), log_text);
    /* one EVAL (the compare-and-set) and a WAIT behind it */
    ck_assert_uint_eq(server_calls(&p, "eval"), evals + 1);
    ck_assert_uint_eq(server_calls(&p, "wait"), waits + 1);
    ck_assert_uint_eq(value_on(&r, "dur"), 1000);
    server_stop(&r, 0);
    server_stop(&p, 0);
}
END_TEST
#endif

int main(void)
{
#ifdef RIG_HAVE_REDIS
    const TTest *durable[] = {
        test_redis_wait_replicas_replica_holds_the_given_back_value, NULL};
#else
    const TTest *durable[] = {NULL};
#endif
    const TTest *none[] = {NULL};
    const TTest *loops[] = {
        test_clean_close_gives_back_only_while_nobody_fetched_after, NULL};
    const tu_case cases[] = {{.name = "stores", .tests = none, .loops = loops,
                              .rows = rig_nkinds},
                             {.name = "durable", .tests = durable},
                             {.name = NULL}};
    return tu_run(tu_suite("giveback_stores", 180, cases));
}
