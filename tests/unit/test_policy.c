/*
 * test_policy.c - the batch policy choosing the watermark as well as the
 * batch (idp_policy_set_watermark), on the mem store: the fetch ahead starts
 * exactly at the claim that leaves the chosen number of IDs, each choice
 * applies to the batch just fetched, "never" means the caller that finds the
 * pool empty fetches, and a policy that chooses none keeps low_watermark.
 *
 * IDs are taken one claim of one ID at a time through a caller cache of
 * fill 1, and after each one the counter is settled (no fetch queued or
 * running), so the fetch count after ID k says whether ID k's claim
 * started a fetch: no timing is involved.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "idprime/idprime.h"
#include "testutil.h"

#define MAXCALLS 16

/* A scripted policy: the i-th call answers batch[i] and, unless
 * wm[i] is NO_WM, the watermark wm[i]; it records what it was told. */
#define NO_WM (UINT64_MAX - 1)

typedef struct script {
    uint64_t batch[MAXCALLS];
    uint64_t wm[MAXCALLS];
    int calls;
    idp_policy_input seen[MAXCALLS];
    int set_rc[MAXCALLS];
    const idp_policy_input *last_in; /* the input of the last call */
} script;

static uint64_t scripted(void *ud, const idp_policy_input *in)
{
    script *s = ud;
    int i = s->calls++;
    if (i >= MAXCALLS)
        return 0;
    s->seen[i] = *in;
    s->last_in = in;
    s->set_rc[i] = -1;
    if (s->wm[i] != NO_WM)
        s->set_rc[i] = idp_policy_set_watermark(in, s->wm[i]);
    return s->batch[i];
}

static idp_client *open_scripted(const char *uri, script *s)
{
    idp_options opt = {.size = sizeof opt, .policy = scripted, .policy_ud = s};
    return tu_open(uri, &opt);
}

/* Takes IDs 1..n one claim at a time; fetches[k] is the counter's fetch
 * count once ID k's claim has settled. */
static void take(idp_counter *ctr, uint64_t n, uint64_t *fetches)
{
    idp_cache k;
    idp_error e = {0, ""};
    ck_assert_int_eq(idp_cache_init(&k, sizeof k, ctr, 1, &e), IDP_OK);
    for (uint64_t i = 1; i <= n; i++) {
        uint64_t id = 0;
        ck_assert_msg(idp_cache_next(&k, &id, &e) == IDP_OK, "%s", e.msg);
        ck_assert_uint_eq(id, i);
        fetches[i] = tu_settle(ctr).prime_calls;
    }
    idp_cache_release(&k);
}

/* The ID whose claim started fetch number `f` (the first k with
 * fetches[k] >= f), or 0 when none did. */
static uint64_t started_at(const uint64_t *fetches, uint64_t n, uint64_t f)
{
    for (uint64_t k = 1; k <= n; k++)
        if (fetches[k] >= f)
            return k;
    return 0;
}

START_TEST(test_fetch_ahead_starts_exactly_at_the_chosen_watermark)
{
    /* batches of 100; the watermark chosen at fetch 1 (37) applies to
     * 1..100, the one chosen at fetch 2 (90) to 101..200, at fetch 3 (0)
     * to 201..300 */
    script s = {.batch = {100, 100, 100, 100, 100},
                .wm = {37, 90, 0, 5, 5}};
    idp_client *c = open_scripted("mem://policy_exact?batch=100&adaptive=0",
                                  &s);
    idp_counter *ctr = tu_counter(c, "c");
    uint64_t fetches[301];
    take(ctr, 300, fetches);
    ck_assert_uint_eq(fetches[1], 1);
    /* the claim of ID 63 leaves 37 of 1..100: fetch 2 starts there */
    ck_assert_uint_eq(started_at(fetches, 300, 2), 63);
    /* 101..200 with 90: the claim of ID 110 leaves 90 */
    ck_assert_uint_eq(started_at(fetches, 300, 3), 110);
    /* 201..300 with 0: the claim of the last ID, 300 */
    ck_assert_uint_eq(started_at(fetches, 300, 4), 300);
    ck_assert_int_eq(s.set_rc[0], IDP_OK);
    /* every fetch after the first was ahead of need: nobody waited */
    idp_counter_stats st = tu_stats(ctr);
    ck_assert_uint_eq(st.waited_calls, 1);
    ck_assert_uint_eq(st.prefetch_async, 3);
    idp_close(c);
}
END_TEST

START_TEST(test_never_fetches_only_when_the_pool_is_empty)
{
    script s = {.batch = {50, 50, 50, 50},
                .wm = {IDP_WATERMARK_NEVER, IDP_WATERMARK_NEVER,
                       IDP_WATERMARK_NEVER, IDP_WATERMARK_NEVER}};
    idp_client *c = open_scripted("mem://policy_never?batch=50&adaptive=0",
                                  &s);
    idp_counter *ctr = tu_counter(c, "c");
    uint64_t fetches[151];
    take(ctr, 150, fetches);
    /* fetches at IDs 1, 51, 101: each by the claim that found it empty */
    ck_assert_uint_eq(started_at(fetches, 150, 2), 51);
    ck_assert_uint_eq(started_at(fetches, 150, 3), 101);
    ck_assert_uint_eq(fetches[150], 3);
    idp_counter_stats st = tu_stats(ctr);
    ck_assert_uint_eq(st.prefetch_async, 0);
    ck_assert_uint_eq(st.waited_calls, 3);
    ck_assert_int_eq(s.seen[1].async, 0);
    ck_assert_uint_eq(s.seen[1].watermark, IDP_WATERMARK_NEVER);
    idp_close(c);
}
END_TEST

START_TEST(test_a_watermark_at_the_batch_fetches_at_the_first_claim)
{
    /* always a batch ahead: the first claim of each segment starts the
     * next fetch */
    script s = {.batch = {40, 40, 40, 40, 40},
                .wm = {40, 1000, 40, 40, 40}};
    idp_client *c = open_scripted("mem://policy_ahead?batch=40&adaptive=0",
                                  &s);
    idp_counter *ctr = tu_counter(c, "c");
    uint64_t fetches[81];
    take(ctr, 80, fetches);
    ck_assert_uint_eq(started_at(fetches, 80, 2), 1);
    ck_assert_uint_eq(started_at(fetches, 80, 3), 41);
    ck_assert_uint_eq(tu_stats(ctr).waited_calls, 1);
    idp_close(c);
}
END_TEST

START_TEST(test_a_policy_choosing_no_watermark_keeps_low_watermark)
{
    /* an old-style policy (batch only): 25% of 100 left, at ID 75; the
     * input shows that watermark, the IDs left and whether it was ahead */
    script s = {.batch = {100, 100, 100},
                .wm = {NO_WM, NO_WM, NO_WM}};
    idp_client *c = open_scripted(
        "mem://policy_keep?batch=100&adaptive=0&low_watermark=25", &s);
    idp_counter *ctr = tu_counter(c, "c");
    uint64_t fetches[201];
    take(ctr, 200, fetches);
    ck_assert_uint_eq(started_at(fetches, 200, 2), 75);
    ck_assert_uint_eq(started_at(fetches, 200, 3), 175);
    ck_assert_int_ge(s.calls, 2);
    ck_assert_uint_eq(s.seen[0].watermark, 25);
    ck_assert_uint_eq(s.seen[0].left, 0);
    ck_assert_int_eq(s.seen[0].async, 0);
    ck_assert(s.seen[0].since_fetch == 0);
    ck_assert_uint_eq(s.seen[0].fetches, 1);
    ck_assert_uint_eq(s.seen[1].left, 25);
    ck_assert_int_eq(s.seen[1].async, 1);
    ck_assert(s.seen[1].since_fetch > 0);
    ck_assert_uint_eq(s.seen[1].fetches, 2);
    idp_close(c);
}
END_TEST

START_TEST(test_the_chosen_watermark_is_reported_back_and_kept)
{
    /* chosen once (30) and not again: it holds for the later batches, and
     * the next call is told it */
    script s = {.batch = {60, 0, 0, 0}, .wm = {30, NO_WM, NO_WM, NO_WM}};
    idp_client *c = open_scripted("mem://policy_kept?batch=60&adaptive=0",
                                  &s);
    idp_counter *ctr = tu_counter(c, "c");
    uint64_t fetches[121];
    take(ctr, 120, fetches);
    ck_assert_uint_eq(started_at(fetches, 120, 2), 30);
    ck_assert_uint_eq(started_at(fetches, 120, 3), 90);
    ck_assert_uint_eq(s.seen[1].watermark, 30);
    idp_close(c);
}
END_TEST

START_TEST(test_the_setter_refuses_an_input_not_of_a_call)
{
    idp_policy_input fake;
    memset(&fake, 0, sizeof fake);
    ck_assert_int_eq(idp_policy_set_watermark(NULL, 5), IDP_EINVAL);
    ck_assert_int_eq(idp_policy_set_watermark(&fake, 5), IDP_EINVAL);
    /* a policy's own call is accepted */
    script s = {.batch = {10, 10}, .wm = {3, 3}};
    idp_client *c = open_scripted("mem://policy_late?batch=10&adaptive=0",
                                  &s);
    idp_counter *ctr = tu_counter(c, "c");
    uint64_t fetches[2];
    take(ctr, 1, fetches);
    ck_assert_int_eq(s.set_rc[0], IDP_OK);
    /* after its call, the input a call was given is refused (compared,
     * never read) */
    ck_assert_int_eq(idp_policy_set_watermark(s.last_in, 5), IDP_EINVAL);
    idp_close(c);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_fetch_ahead_starts_exactly_at_the_chosen_watermark,
        test_never_fetches_only_when_the_pool_is_empty,
        test_a_watermark_at_the_batch_fetches_at_the_first_claim,
        test_a_policy_choosing_no_watermark_keeps_low_watermark,
        test_the_chosen_watermark_is_reported_back_and_kept,
        test_the_setter_refuses_an_input_not_of_a_call,
        NULL};
    const tu_case cases[] = {{.name = "watermark", .tests = tests}, {0}};
    return tu_run(tu_suite("policy", 30, cases));
}
