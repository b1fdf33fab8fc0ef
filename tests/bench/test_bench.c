/*
 * test_bench.c - the bench library on the mem store (no server): the
 * store's own count of round trips agrees with the engine's and with what
 * batching promises; a baseline pays one round trip per ID; the workloads
 * hand out the IDs they were asked for; a delay asked of mem is measured,
 * not copied; the time limit stops a run and says so; bad settings and
 * URIs are refused before any run; the JSON carries the names of docs/design.md.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static bench_config base(bench_workload w)
{
    bench_config c;
    bench_config_defaults(&c);
    c.workload = w;
    return c;
}

static const char *const fixed_batch[] = {"low_watermark=0", "adaptive=0", NULL};

/* Runs cfg on uri; asserts success. */
static void run(const bench_config *cfg, const char *uri, bench_results *rs)
{
    char msg[512] = "";
    memset(rs, 0, sizeof *rs);
    int rc = bench_run(cfg, uri, rs, msg, sizeof msg);
    ck_assert_msg(rc == BENCH_OK, "bench_run: %s", msg);
}

START_TEST(files_at_a_fixed_batch_count_ceil_n_over_batch_fetches)
{
    bench_config c = base(BENCH_FILES);
    c.params = fixed_batch;
    bench_results rs;
    run(&c, "mem://", &rs);
    ck_assert_uint_eq(rs.n, 2);
    const bench_result *r = &rs.v[0], *b = &rs.v[1];
    /* 1000 files: inode 4 x 256, chunk 1 x 2048 */
    ck_assert_int_eq(r->metaprime, 1);
    ck_assert_uint_eq(r->ids, 2000);
    ck_assert_uint_eq(r->batch, 256);
    ck_assert_int_eq(r->has_store_count, 1);
    ck_assert_uint_eq(r->roundtrips_store, 5);
    ck_assert_uint_eq(r->roundtrips_engine, 5);
    ck_assert_uint_eq(r->waited_calls, 5);
    ck_assert_uint_eq(r->calls, 2000);
    ck_assert_uint_eq(r->unused_ids, 4 * 256 - 1000 + 2048 - 1000);
    ck_assert_str_eq(r->store, "mem");
    /* the baseline: one round trip per ID, every call waits, nothing left */
    ck_assert_int_eq(b->metaprime, 0);
    ck_assert_uint_eq(b->batch, 1);
    ck_assert_uint_eq(b->ids, 2000);
    ck_assert_uint_eq(b->roundtrips_store, 2000);
    ck_assert_uint_eq(b->roundtrips_engine, 2000);
    ck_assert_uint_eq(b->waited_calls, 2000);
    ck_assert_uint_eq(b->unused_ids, 0);
    ck_assert(r->p50_ns <= r->p99_ns && r->p99_ns <= r->p999_ns);
    bench_results_free(&rs);
}
END_TEST

START_TEST(chunks_per_file_multiply_the_chunk_ids)
{
    bench_config c = base(BENCH_FILES);
    c.count = 100;
    c.chunks = 3;
    c.baseline = 0;
    c.params = fixed_batch;
    bench_results rs;
    run(&c, "mem://", &rs);
    ck_assert_uint_eq(rs.n, 1);
    ck_assert_uint_eq(rs.v[0].ids, 400);
    ck_assert_uint_eq(rs.v[0].chunks, 3);
    ck_assert_uint_eq(rs.v[0].roundtrips_store, 2);
    bench_results_free(&rs);
}
END_TEST

START_TEST(burst_on_four_threads_hands_out_every_id)
{
    bench_config c = base(BENCH_BURST);
    c.count = 100003;
    c.threads = 4;
    c.baseline = 0;
    bench_results rs;
    run(&c, "mem://?batch=1000&adaptive=0", &rs);
    const bench_result *r = &rs.v[0];
    ck_assert_uint_eq(r->ids, 100003);
    ck_assert_uint_eq(r->threads, 4);
    ck_assert_uint_eq(r->roundtrips_store, r->roundtrips_engine);
    /* every ID fetched was served or is counted unused */
    ck_assert_uint_ge(r->roundtrips_engine, 101);
    bench_results_free(&rs);
}
END_TEST

START_TEST(steady_hands_out_rate_times_seconds)
{
    bench_config c = base(BENCH_STEADY);
    c.rate = 3001;
    c.seconds = 1;
    c.threads = 2;
    c.baseline = 0;
    bench_results rs;
    run(&c, "mem://", &rs);
    ck_assert_uint_eq(rs.v[0].ids, 3001);
    ck_assert(rs.v[0].wall_s > 0.9);
    bench_results_free(&rs);
}
END_TEST

START_TEST(hotpath_measures_next_beside_an_atomic_fetch_add)
{
    bench_config c = base(BENCH_HOTPATH);
    c.count = 100000;
    c.threads = 2;
    bench_results rs;
    run(&c, "mem://", &rs);
    ck_assert_uint_eq(rs.n, 1); /* its comparisons are in the run */
    const bench_result *r = &rs.v[0];
    ck_assert_uint_eq(r->ids, 200000);
    ck_assert(r->ids_per_s > 0 && r->atomic_ids_per_s > 0);
    ck_assert_int_eq(r->has_raw, 0); /* no raw client for mem */
    ck_assert_uint_eq(r->roundtrips_store, r->roundtrips_engine);
    ck_assert_uint_eq(r->roundtrips_engine, 1); /* one batch: the pool stays warm */
    bench_results_free(&rs);
}
END_TEST

START_TEST(a_delay_asked_of_mem_is_measured)
{
    bench_config c = base(BENCH_FILES);
    c.count = 10;
    c.rtt_ms = 20;
    c.params = fixed_batch;
    bench_results rs;
    run(&c, "mem://", &rs);
    for (size_t i = 0; i < rs.n; i++) {
        ck_assert_uint_eq(rs.v[i].rtt_ms_asked, 20);
        ck_assert_int_eq(rs.v[i].rtt_injected, 1);
        /* measured: a sleep is never shorter than asked */
        ck_assert_msg(rs.v[i].rtt_ms >= 20.0, "measured %.3f ms", rs.v[i].rtt_ms);
    }
    bench_results_free(&rs);
}
END_TEST

START_TEST(the_time_limit_stops_a_run_and_says_so)
{
    bench_config c = base(BENCH_FILES);
    c.rtt_ms = 50;      /* the baseline would take 100 s */
    c.time_limit = 1;
    c.baseline = 1;
    c.params = fixed_batch;
    bench_results rs;
    run(&c, "mem://", &rs);
    ck_assert_int_eq(rs.v[0].stopped, 0);
    ck_assert_int_eq(rs.v[1].stopped, 1);
    ck_assert_uint_lt(rs.v[1].ids, 2000);
    ck_assert_uint_eq(rs.v[1].ids, rs.v[1].roundtrips_store);
    bench_results_free(&rs);
}
END_TEST

START_TEST(bad_settings_are_refused)
{
    char msg[256];
    bench_config c = base(BENCH_FILES);
    c.threads = 0;
    ck_assert_int_eq(bench_config_check(&c, msg, sizeof msg), BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "--threads"));
    c = base(BENCH_STEADY);
    c.rate = 3;
    c.threads = 4;
    ck_assert_int_eq(bench_config_check(&c, msg, sizeof msg), BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "--rate"));
    c = base(BENCH_HOTPATH);
    c.count = 10;
    ck_assert_int_eq(bench_config_check(&c, msg, sizeof msg), BENCH_EUSAGE);
    bench_workload w;
    ck_assert_int_eq(bench_workload_parse("hotpath", &w), 0);
    ck_assert_int_eq(w, BENCH_HOTPATH);
    ck_assert_int_eq(bench_workload_parse("nope", &w), -1);
}
END_TEST

START_TEST(bad_uris_are_refused_before_any_run)
{
    char msg[512];
    bench_config c = base(BENCH_FILES);
    ck_assert_int_eq(bench_check_uri(&c, "mem://?bogus=1", msg, sizeof msg),
                     BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "bogus"));
    ck_assert_int_eq(bench_check_uri(&c, "no-scheme", msg, sizeof msg),
                     BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "scheme://"));
    c.rtt_ms = 5;
    ck_assert_int_eq(bench_check_uri(&c, "redis://10.255.255.1:6379", msg,
                                     sizeof msg), BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "127.0.0.1 only"));
    static const char *const bad_param[] = {"batch=0", NULL};
    c.rtt_ms = 0;
    c.params = bad_param;
    ck_assert_int_eq(bench_check_uri(&c, "mem://", msg, sizeof msg), BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "batch"));
    c.params = NULL;
    ck_assert_int_eq(bench_check_uri(&c, "mem://", msg, sizeof msg), BENCH_OK);
}
END_TEST

START_TEST(a_password_never_reaches_the_report)
{
    bench_config c = base(BENCH_FILES);
    c.count = 10;
    c.baseline = 0;
    bench_results rs;
    char msg[512];
    memset(&rs, 0, sizeof rs);
    /* mem refuses a password: the message must not show it either */
    int rc = bench_run(&c, "mem://user:s3cret@x", &rs, msg, sizeof msg);
    ck_assert_int_ne(rc, BENCH_OK);
    ck_assert_ptr_null(strstr(msg, "s3cret"));
    bench_results_free(&rs);
}
END_TEST

START_TEST(json_has_designs_names)
{
    bench_config c = base(BENCH_FILES);
    c.count = 50;
    bench_results rs;
    run(&c, "mem://", &rs);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(bench_json(f, &rs), 0);
    fclose(f);
    static const char *const names[] = {
        "{\"runs\":[", "\"uri\":", "\"store\":", "\"workload\":", "\"metaprime\":",
        "\"batch\":", "\"threads\":", "\"rtt_ms\":", "\"ids\":", "\"wall_s\":",
        "\"ids_per_s\":", "\"roundtrips_store\":", "\"roundtrips_engine\":",
        "\"waited_calls\":", "\"latency_ns\":{\"p50\":", "\"p99\":", "\"p999\":",
        "\"unused_ids\":"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(strstr(text, names[i]) != NULL, "no %s in %s", names[i], text);
    free(text);
    bench_results_free(&rs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *t = tcase_create("mem");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, files_at_a_fixed_batch_count_ceil_n_over_batch_fetches);
    tcase_add_test(t, chunks_per_file_multiply_the_chunk_ids);
    tcase_add_test(t, burst_on_four_threads_hands_out_every_id);
    tcase_add_test(t, steady_hands_out_rate_times_seconds);
    tcase_add_test(t, hotpath_measures_next_beside_an_atomic_fetch_add);
    tcase_add_test(t, a_delay_asked_of_mem_is_measured);
    tcase_add_test(t, the_time_limit_stops_a_run_and_says_so);
    tcase_add_test(t, bad_settings_are_refused);
    tcase_add_test(t, bad_uris_are_refused_before_any_run);
    tcase_add_test(t, a_password_never_reaches_the_report);
    tcase_add_test(t, json_has_designs_names);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
