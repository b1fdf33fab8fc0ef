/*
 * test_bench.c - the bench library on the mem store (no server): the
 * store's own count of round trips agrees with the engine's and with what
 * batching promises; a baseline pays one round trip per ID; the workloads
 * hand out the IDs they were asked for; a delay asked of mem is measured,
 * not copied; the time limit stops a run and says so; bad settings and
 * URIs are refused before any run; the JSON carries the names of docs/design.md.
 * The shoot-out's parts: bursty, ramp and trace hand out the IDs of their
 * profiles; a trace with a bad line is refused naming it; the IDs at risk
 * on a crash are what was fetched above the last ID handed out, and the
 * IDs a clean close wasted what the store kept above it (0 with give-back,
 * the pool's rest without); the strategy and both counts reach the JSON;
 * the frontier keeps exactly the runs no other beats on both counts.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

START_TEST(bursty_and_ramp_hand_out_rate_times_seconds)
{
    /* bursty: a quarter of each second at 4x the rate; ramp: 0 to 2x */
    bench_workload ws[] = {BENCH_BURSTY, BENCH_RAMP};
    for (int i = 0; i < 2; i++) {
        bench_config c = base(ws[i]);
        c.rate = 1200;
        c.seconds = 1;
        c.threads = 2;
        c.baseline = 0;
        bench_results rs;
        run(&c, "mem://", &rs);
        ck_assert_uint_eq(rs.v[0].ids, 1200);
        ck_assert_uint_eq(rs.v[0].calls, 1200);
        ck_assert_int_eq(rs.v[0].workload, ws[i]);
        bench_results_free(&rs);
    }
}
END_TEST

/* Writes `text` to a fresh file; returns its path (static buffer). */
static const char *trace_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/idprime-trace-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(a_trace_of_rates_or_timestamps_is_replayed)
{
    /* rates: 1000/s for 0.2 s, nothing for 0.1 s, 2000/s for 0.1 s */
    const char *p = trace_file("# a comment\nseconds,rate\n0,1000\n0.2,0\n"
                               "0.3,2000\n0.4,0\n");
    bench_config c = base(BENCH_TRACE);
    c.trace = p;
    c.baseline = 0;
    bench_results rs;
    run(&c, "mem://", &rs);
    ck_assert_uint_eq(rs.v[0].ids, 400);
    ck_assert(rs.v[0].wall_s >= 0.35);
    bench_results_free(&rs);
    unlink(p);
    /* timestamps: one ID due at each, split over 3 threads */
    p = trace_file("0\n0.01\n0.02\n0.05\n0.05\n0.1\n0.2\n");
    c.trace = p;
    c.threads = 3;
    run(&c, "mem://", &rs);
    ck_assert_uint_eq(rs.v[0].ids, 7);
    bench_results_free(&rs);
    unlink(p);
}
END_TEST

START_TEST(a_bad_trace_is_refused_naming_the_line)
{
    const char *p = trace_file("0,100\n0.5,x\n");
    bench_config c = base(BENCH_TRACE);
    c.trace = p;
    c.baseline = 0;
    bench_results rs = {0};
    char msg[512] = "";
    ck_assert_int_eq(bench_run(&c, "mem://", &rs, msg, sizeof msg),
                     BENCH_EUSAGE);
    char want[128];
    snprintf(want, sizeof want, "%s:2: expected", p);
    ck_assert_msg(strstr(msg, want) != NULL, "%s", msg);
    bench_results_free(&rs);
    unlink(p);
    p = trace_file("0,100\n0.5,10\n0.2,0\n");
    c.trace = p;
    memset(&rs, 0, sizeof rs);
    ck_assert_int_eq(bench_run(&c, "mem://", &rs, msg, sizeof msg),
                     BENCH_EUSAGE);
    ck_assert_msg(strstr(msg, ":3: time 0.2 comes before") != NULL, "%s", msg);
    bench_results_free(&rs);
    unlink(p);
    c.trace = NULL;
    ck_assert_int_eq(bench_config_check(&c, msg, sizeof msg), BENCH_EUSAGE);
    ck_assert_ptr_nonnull(strstr(msg, "--workload trace needs --trace"));
}
END_TEST

START_TEST(waste_at_a_clean_close_and_at_risk_on_a_crash_are_measured)
{
    /* 1000 IDs in fetches of 300 (synchronous): 1200 fetched, the last
     * ID handed out 1000: 200 at risk before the close. Given back at the
     * close, none is wasted; with give_back=0, those 200 are. */
    static const char *const give[] = {"batch=300", "adaptive=0",
                                       "low_watermark=0", NULL};
    static const char *const keep[] = {"batch=300", "adaptive=0",
                                       "low_watermark=0", "give_back=0", NULL};
    const char *const *params[] = {give, keep};
    uint64_t wasted[] = {0, 200};
    for (int i = 0; i < 2; i++) {
        bench_config c = base(BENCH_BURST);
        c.count = 1000;
        c.baseline = 1;
        c.params = params[i];
        c.strategy = "fixed";
        bench_results rs;
        run(&c, "mem://waste", &rs);
        ck_assert_uint_eq(rs.n, 2);
        const bench_result *r = &rs.v[0], *b = &rs.v[1];
        ck_assert_uint_eq(r->last_id[0], 1000);
        ck_assert_uint_eq(r->at_risk_ids, 200);
        ck_assert_int_eq(r->has_wasted, 1);
        ck_assert_uint_eq(r->wasted_ids, wasted[i]);
        ck_assert_str_eq(r->strategy, "fixed");
        /* metaprime=0: nothing held, nothing wasted */
        ck_assert_uint_eq(b->at_risk_ids, 0);
        ck_assert_int_eq(b->has_wasted, 1);
        ck_assert_uint_eq(b->wasted_ids, 0);
        bench_results_free(&rs);
    }
}
END_TEST

START_TEST(the_strategy_and_the_waste_reach_the_json_and_csv)
{
    static const char *const p[] = {"batch=300", "adaptive=0",
                                    "low_watermark=0", "give_back=0", NULL};
    bench_config c = base(BENCH_BURST);
    c.count = 1000;
    c.baseline = 0;
    c.params = p;
    c.strategy = "fixed \"300\"";
    bench_results rs;
    run(&c, "mem://", &rs);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(bench_json(f, &rs), 0);
    fclose(f);
    ck_assert_msg(strstr(text, "\"strategy\":\"fixed \\\"300\\\"\"") != NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "\"wasted_ids\":200,\"at_risk_ids\":200") != NULL,
                  "%s", text);
    free(text);
    f = open_memstream(&text, &len);
    ck_assert_int_eq(bench_csv(f, &rs), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, ",strategy,wasted_ids,at_risk_ids\n"));
    ck_assert_msg(strstr(text, ",\"fixed \"\"300\"\"\",200,200\n") != NULL, "%s",
                  text);
    free(text);
    bench_results_free(&rs);
}
END_TEST

START_TEST(the_frontier_keeps_the_runs_no_other_beats_on_both)
{
    /* (waits, wasted): a (1, 100), b (5, 10), c (5, 100): dominated by a
     * and by b; d (1, 100): ties a, neither beats the other; e: another
     * workload, compared with nothing here */
    bench_result v[5];
    memset(v, 0, sizeof v);
    uint64_t waits[] = {1, 5, 5, 1, 50}, wasted[] = {100, 10, 100, 100, 1000};
    for (int i = 0; i < 5; i++) {
        snprintf(v[i].uri, sizeof v[i].uri, "mem://");
        v[i].workload = i == 4 ? BENCH_RAMP : BENCH_STEADY;
        v[i].rtt_ms_asked = 30;
        v[i].has_wasted = 1;
        v[i].waited_calls = waits[i];
        v[i].wasted_ids = wasted[i];
    }
    bench_results rs = {v, 5, 5};
    int want[] = {0, 0, 1, 0, 0};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(bench_dominated(&rs, i, 0), want[i]);
    /* at risk instead: c holds less than b with as many waits */
    uint64_t risk[] = {100, 10, 5, 100, 1};
    for (int i = 0; i < 5; i++)
        v[i].at_risk_ids = risk[i];
    int want_risk[] = {0, 1, 0, 0, 0}; /* c (5, 5) beats b (5, 10) */
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(bench_dominated(&rs, i, 1), want_risk[i]);
    v[2].at_risk_ids = 10; /* c (5, 10) ties b: neither is off it */
    ck_assert_int_eq(bench_dominated(&rs, 2, 1), 0);
    v[2].at_risk_ids = 11;
    ck_assert_int_eq(bench_dominated(&rs, 2, 1), 1);
    /* another round trip or store is another comparison */
    v[0].rtt_ms_asked = 1;
    v[3].rtt_ms_asked = 1;
    ck_assert_int_eq(bench_dominated(&rs, 2, 0), 1); /* b still beats c */
    v[1].rtt_ms_asked = 1;
    ck_assert_int_eq(bench_dominated(&rs, 2, 0), 0);
}
END_TEST

START_TEST(a_burst_after_a_wait_is_not_read_as_millions_of_ids_per_s)
{
    /* bursty at a 30 ms round trip, the default (adaptive) settings: the
     * burst's first fetch waits, and the 600 IDs due meanwhile drain the
     * first segment at once. Read as 192 IDs in microseconds, that was a
     * demand of millions of IDs/s, and the next fetches took max_batch
     * (65,536) each: 126,328 IDs at risk after 5,000 handed out. The rule
     * holds about 3.5 x 20,000/s x 30 ms = 2,100 at that demand. */
    bench_config c = base(BENCH_BURSTY);
    c.rate = 5000;
    c.seconds = 1;
    c.rtt_ms = 30;
    c.baseline = 0;
    bench_results rs;
    run(&c, "mem://burst30", &rs);
    ck_assert_uint_eq(rs.v[0].ids, 5000);
    ck_assert_msg(rs.v[0].at_risk_ids < 16384, "%llu IDs at risk",
                  (unsigned long long)rs.v[0].at_risk_ids);
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
    tcase_add_test(t, bursty_and_ramp_hand_out_rate_times_seconds);
    tcase_add_test(t, a_trace_of_rates_or_timestamps_is_replayed);
    tcase_add_test(t, a_bad_trace_is_refused_naming_the_line);
    tcase_add_test(t, waste_at_a_clean_close_and_at_risk_on_a_crash_are_measured);
    tcase_add_test(t, the_strategy_and_the_waste_reach_the_json_and_csv);
    tcase_add_test(t, the_frontier_keeps_the_runs_no_other_beats_on_both);
    tcase_add_test(t, a_burst_after_a_wait_is_not_read_as_millions_of_ids_per_s);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
