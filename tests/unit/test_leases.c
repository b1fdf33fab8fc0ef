/*
 * test_leases.c - per-thread leases (lease.c) on the in-process mem store:
 * IDs unique across threads that come and go (more threads than slots,
 * slots reused with what their last owner left), increasing within each
 * thread, incr(n) through a lease, and the served count exact.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idprime/idprime.h"
#include "testutil.h"

static idp_error err;

#define CHURN 100

static void *churn_thread(void *arg)
{
    idp_counter *k = arg;
    uint64_t *ids = malloc(50 * sizeof *ids);
    for (int i = 0; i < 50; i++) {
        idp_error e;
        if (idp_next(k, &ids[i], &e) != IDP_OK) {
            free(ids);
            return NULL;
        }
    }
    return ids;
}

START_TEST(test_leases_unique_across_threads_that_come_and_go)
{
    /* 100 threads at once, more than there are lease slots (the rest take
     * IDs straight from the pool); then 100 one after the other, each
     * taking the slot, and what is left in it, from the one before */
    idp_client *c = tu_open("mem://churn?batch=64", NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t *all = malloc(2 * CHURN * 50 * sizeof *all);
    size_t n = 0;
    pthread_t th[CHURN];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < CHURN; i++) {
            ck_assert_int_eq(pthread_create(&th[i], NULL, churn_thread, k), 0);
            if (round == 0)
                continue; /* all at once */
            void *ids = NULL;
            pthread_join(th[i], &ids);
            th[i] = 0;
            ck_assert_ptr_nonnull(ids);
            memcpy(all + n, ids, 50 * sizeof *all);
            n += 50;
            free(ids);
        }
        for (int i = 0; round == 0 && i < CHURN; i++) {
            void *ids = NULL;
            pthread_join(th[i], &ids);
            ck_assert_ptr_nonnull(ids);
            memcpy(all + n, ids, 50 * sizeof *all);
            n += 50;
            free(ids);
        }
    }
    for (size_t t = 0; t < n; t += 50) /* each thread's IDs increase */
        for (size_t j = 1; j < 50; j++)
            ck_assert_uint_gt(all[t + j], all[t + j - 1]);
    tu_assert_distinct(all, n);
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.ids_served, 2 * CHURN * 50);
    ck_assert_uint_eq(s.ids_served + s.unused_ids, s.high);
    free(all);
    idp_close(c);
}
END_TEST

START_TEST(test_one_thread_alone_gets_incr_with_no_gap)
{
    /* One client, one thread: incr(n) after any number of next() runs on
     * from them, across the end of a batch too (its lease's rest and the
     * next batch are one run). */
    for (uint64_t k = 1; k <= 40; k++) {
        char uri[96];
        snprintf(uri, sizeof uri, "mem://nogap%llu?batch=16&low_watermark=0"
                 "&adaptive=0", (unsigned long long)k);
        idp_client *c = tu_open(uri, NULL);
        idp_counter *ctr = tu_counter(c, "c");
        for (uint64_t i = 1; i <= k; i++)
            ck_assert_uint_eq(tu_next(ctr), i);
        uint64_t last = 0;
        ck_assert_int_eq(idp_incr(ctr, 10, &last, &err), IDP_OK);
        ck_assert_uint_eq(last, k + 10);
        ck_assert_uint_eq(tu_next(ctr), k + 11);
        idp_counter_stats s = tu_settle(ctr);
        ck_assert_uint_eq(s.ids_served, k + 11);
        ck_assert_uint_eq(s.ids_served + s.unused_ids, s.high);
        idp_close(c);
    }
}
END_TEST

START_TEST(test_leases_with_incr_stay_increasing_and_exact)
{
    /* every 3rd allocation an incr(1) on 8 threads, then incr(n) of
     * sizes that do not divide the lease, on one thread */
    idp_client *c = tu_open("mem://leaseincr?batch=1000", NULL);
    idp_counter *k = tu_counter(c, "c");
    uint64_t *all = tu_thread_ids(k, 8, 20000, 3);
    tu_assert_distinct(all, 8 * 20000);
    free(all);
    uint64_t last = 0, prev = 0, served = 8 * 20000;
    for (uint64_t n = 1; n <= 300; n += 7) {
        uint64_t id = tu_next(k);
        ck_assert_uint_gt(id, prev);
        ck_assert_int_eq(idp_incr(k, n, &last, &err), IDP_OK);
        ck_assert_uint_gt(last - n + 1, id);
        prev = last;
        served += 1 + n;
    }
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.ids_served, served);
    ck_assert_uint_eq(s.ids_served + s.unused_ids, s.high);
    idp_close(c);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_leases_unique_across_threads_that_come_and_go,
        test_leases_with_incr_stay_increasing_and_exact,
        test_one_thread_alone_gets_incr_with_no_gap, NULL};
    const tu_case cases[] = {{.name = "leases", .tests = tests},
                             {.name = NULL}};
    return tu_run(tu_suite("leases", 120, cases));
}
