/*
 * report.c - the runs as a table (stdout), JSON and CSV. The JSON names
 * are those of docs/design.md (Bench); every number the table shows is in the JSON, and
 * the table prints it at a fixed precision (latencies in microseconds with
 * three decimals, i.e. to the nanosecond) so the two can be compared.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static double share(const bench_result *r)
{
    return r->calls > 0 ? (double)r->waited_calls / (double)r->calls : 0;
}

static int disagrees(const bench_result *r)
{
    return r->has_store_count && r->roundtrips_store != r->roundtrips_engine;
}

/* The baseline that follows run i (same URI and workload), or NULL. */
static const bench_result *baseline_of(const bench_results *rs, size_t i)
{
    const bench_result *r = &rs->v[i];
    if (!r->metaprime || i + 1 >= rs->n)
        return NULL;
    const bench_result *b = &rs->v[i + 1];
    if (b->metaprime || b->workload != r->workload || strcmp(b->uri, r->uri) != 0)
        return NULL;
    return b;
}

static void human_rate(char *out, size_t len, double v)
{
    if (v >= 1e9)
        snprintf(out, len, "%.2f G", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, len, "%.2f M", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, len, "%.2f k", v / 1e3);
    else
        snprintf(out, len, "%.1f", v);
}

/* 1 when some run belongs to a strategy of the shoot-out. */
static int any_strategy(const bench_results *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].strategy[0] != '\0')
            return 1;
    return 0;
}

void bench_table(FILE *f, const bench_results *rs)
{
    const char *last_uri = "";
    unsigned last_rtt = 0;
    int strat = any_strategy(rs);
    fprintf(f, "%-9s %-8s %-8s %10s %3s %9s %10s %10s %12s %8s %9s %9s %8s "
            "%12s %12s %12s %10s %10s %10s%s\n",
            "store", "workload", "run", "batch", "thr", "rtt_ms", "ids",
            "wall_s", "ids_per_s", "rt_store", "rt_engine", "waited", "share",
            "p50_us", "p99_us", "p999_us", "unused", "wasted", "at_risk",
            strat ? " strategy" : "");
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        if (strcmp(r->uri, last_uri) != 0 || r->rtt_ms_asked != last_rtt) {
            fprintf(f, "# %s (round trip asked %u ms%s)\n", r->uri,
                    r->rtt_ms_asked,
                    r->rtt_ms_asked > 0 && !r->rtt_injected ? ", not injected"
                                                            : "");
            last_uri = r->uri;
            last_rtt = r->rtt_ms_asked;
        }
        char rts[32];
        if (r->has_store_count)
            snprintf(rts, sizeof rts, "%llu%s",
                     (unsigned long long)r->roundtrips_store,
                     disagrees(r) ? "!" : "");
        else
            snprintf(rts, sizeof rts, "-");
        char wasted[32];
        if (r->has_wasted)
            snprintf(wasted, sizeof wasted, "%llu",
                     (unsigned long long)r->wasted_ids);
        else
            snprintf(wasted, sizeof wasted, "-");
        fprintf(f, "%-9s %-8s %-8s %10llu %3u %9.3f %10llu %10.6f %12.0f %8s "
                "%9llu %9llu %7.2f%% %12.3f %12.3f %12.3f %10llu %10s %10llu"
                "%s%s%s\n",
                r->store, bench_workload_name(r->workload),
                r->metaprime ? "batched" : "baseline",
                (unsigned long long)r->batch, r->threads, r->rtt_ms,
                (unsigned long long)r->ids, r->wall_s, r->ids_per_s, rts,
                (unsigned long long)r->roundtrips_engine,
                (unsigned long long)r->waited_calls, 100 * share(r),
                (double)r->p50_ns / 1000, (double)r->p99_ns / 1000,
                (double)r->p999_ns / 1000, (unsigned long long)r->unused_ids,
                wasted, (unsigned long long)r->at_risk_ids,
                strat ? " " : "", strat ? (r->strategy[0] ? r->strategy : "-")
                                        : "",
                r->stopped == 2 ? "  (interrupted)"
                : r->stopped ? "  (stopped at the time limit)" : "");
    }
    /* What the pairs and the hot path say. */
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        const bench_result *b = baseline_of(rs, i);
        if (b != NULL && b->ids_per_s > 0) {
            char rb[32], rr[32];
            snprintf(rb, sizeof rb, "%llu", (unsigned long long)
                     (b->has_store_count ? b->roundtrips_store
                                         : b->roundtrips_engine));
            snprintf(rr, sizeof rr, "%llu", (unsigned long long)
                     (r->has_store_count ? r->roundtrips_store
                                         : r->roundtrips_engine));
            char split[64] = "";
            if (r->ncounters == 2)
                snprintf(split, sizeof split, " (%s %llu + %s %llu)",
                         r->counter[0],
                         (unsigned long long)r->counter_fetches[0],
                         r->counter[1],
                         (unsigned long long)r->counter_fetches[1]);
            fprintf(f, "%s %s: %.3f s against %.3f s for the baseline "
                    "(%.1fx the IDs/s); %s round trips %s -> %s%s\n",
                    r->store, bench_workload_name(r->workload), r->wall_s,
                    b->wall_s, r->ids_per_s / b->ids_per_s,
                    r->has_store_count && b->has_store_count ? "store"
                                                             : "engine",
                    rb, rr, split);
        }
        if (r->workload == BENCH_COUNTERS && r->ids > 0)
            fprintf(f, "%s counters: %llu counters, one ID each, in %.3f s "
                    "(%.2f us each); resident memory +%.1f MB (%.0f bytes "
                    "each); metrics %.0f bytes each; idp_open + idp_close "
                    "%.1f us\n", r->store, (unsigned long long)r->ids,
                    r->wall_s, r->wall_s * 1e6 / (double)r->ids,
                    (double)r->rss_growth / 1e6,
                    (double)r->rss_growth / (double)r->ids,
                    (double)r->metrics_bytes / (double)r->ids,
                    r->open_close_us);
        if (r->workload == BENCH_HOTPATH) {
            char a[32], n[32];
            human_rate(n, sizeof n, r->ids_per_s);
            human_rate(a, sizeof a, r->atomic_ids_per_s);
            fprintf(f, "%s hotpath: next() on a warm pool %sIDs/s, atomic "
                    "fetch-add %sIDs/s (%u thread%s): next/atomic %.2f\n",
                    r->store, n, a, r->threads, r->threads == 1 ? "" : "s",
                    r->atomic_ids_per_s > 0 ? r->ids_per_s / r->atomic_ids_per_s
                                            : 0);
            human_rate(n, sizeof n, r->cache_ids_per_s);
            fprintf(f, "%s hotpath: idp_cache_next %sIDs/s: cache/atomic "
                    "%.2f\n", r->store, n, r->atomic_ids_per_s > 0
                    ? r->cache_ids_per_s / r->atomic_ids_per_s : 0);
            if (r->next1_ids_per_s > 0) {
                human_rate(n, sizeof n, r->next1_ids_per_s);
                fprintf(f, "%s hotpath: next() on 1 thread %sIDs/s in the "
                        "same rounds: %u threads/1 thread %.2f\n", r->store,
                        n, r->threads, r->ids_per_s / r->next1_ids_per_s);
            }
            if (r->has_raw)
                fprintf(f, "%s hotpath: one round trip at batch=1: engine "
                        "%.1f us, raw %s %.1f us: engine/raw %.3f (%llu round "
                        "trips each)\n", r->store, r->engine_rt_ns / 1000,
                        r->raw_client, r->raw_rt_ns / 1000,
                        r->rt_ratio, (unsigned long long)r->raw_roundtrips);
        }
    }
}

/* ---- JSON --------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* A finite number (JSON has no NaN or infinity). */
static double num(double v)
{
    return isfinite(v) ? v : 0;
}

int bench_json(FILE *f, const bench_results *rs)
{
    fputs("{\"runs\":[", f);
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        fputs(i == 0 ? "\n  {" : ",\n  {", f);
        fputs("\"uri\":", f);
        json_string(f, r->uri);
        fputs(",\"store\":", f);
        json_string(f, r->store);
        fprintf(f, ",\"workload\":\"%s\",\"metaprime\":%d,\"batch\":%llu,"
                "\"threads\":%u,\"rtt_ms\":%.6f,\"ids\":%llu,\"wall_s\":%.6f,"
                "\"ids_per_s\":%.3f,",
                bench_workload_name(r->workload), r->metaprime,
                (unsigned long long)r->batch, r->threads, num(r->rtt_ms),
                (unsigned long long)r->ids, num(r->wall_s),
                num(r->ids_per_s));
        if (r->has_store_count)
            fprintf(f, "\"roundtrips_store\":%llu,",
                    (unsigned long long)r->roundtrips_store);
        else
            fputs("\"roundtrips_store\":null,", f);
        fprintf(f, "\"roundtrips_engine\":%llu,\"waited_calls\":%llu,"
                "\"latency_ns\":{\"p50\":%llu,\"p99\":%llu,\"p999\":%llu},"
                "\"unused_ids\":%llu",
                (unsigned long long)r->roundtrips_engine,
                (unsigned long long)r->waited_calls,
                (unsigned long long)r->p50_ns, (unsigned long long)r->p99_ns,
                (unsigned long long)r->p999_ns,
                (unsigned long long)r->unused_ids);
        /* beyond the names of docs/design.md: how the run was made */
        fprintf(f, ",\"rtt_ms_asked\":%u,\"rtt_injected\":%s,\"calls\":%llu,"
                "\"waited_share\":%.6f,\"roundtrips_agree\":%s,\"stopped\":%s",
                r->rtt_ms_asked, r->rtt_injected ? "true" : "false",
                (unsigned long long)r->calls, num(share(r)),
                r->has_store_count ? (disagrees(r) ? "false" : "true") : "null",
                r->stopped ? "true" : "false");
        if (r->workload == BENCH_FILES)
            fprintf(f, ",\"chunks\":%llu", (unsigned long long)r->chunks);
        /* the shoot-out's: the strategy, the IDs a clean close wasted and
         * those a crash before it would have lost */
        fputs(",\"strategy\":", f);
        if (r->strategy[0] != '\0')
            json_string(f, r->strategy);
        else
            fputs("null", f);
        if (r->has_wasted)
            fprintf(f, ",\"wasted_ids\":%llu",
                    (unsigned long long)r->wasted_ids);
        else
            fputs(",\"wasted_ids\":null", f);
        fprintf(f, ",\"at_risk_ids\":%llu", (unsigned long long)r->at_risk_ids);
        fputs(",\"fetches\":{", f);
        for (int c = 0; c < r->ncounters; c++)
            fprintf(f, "%s\"%s\":%llu", c ? "," : "", r->counter[c],
                    (unsigned long long)r->counter_fetches[c]);
        fputc('}', f);
        if (r->workload == BENCH_COUNTERS)
            fprintf(f, ",\"rss_growth_bytes\":%llu,\"metrics_bytes\":%llu,"
                    "\"open_close_us\":%.3f",
                    (unsigned long long)r->rss_growth,
                    (unsigned long long)r->metrics_bytes, num(r->open_close_us));
        if (r->workload == BENCH_HOTPATH) {
            fprintf(f, ",\"atomic_ids_per_s\":%.3f,\"cache_ids_per_s\":%.3f",
                    num(r->atomic_ids_per_s), num(r->cache_ids_per_s));
            if (r->next1_ids_per_s > 0)
                fprintf(f, ",\"next_1thread_ids_per_s\":%.3f",
                        num(r->next1_ids_per_s));
            if (r->has_raw) {
                fputs(",\"raw_client\":", f);
                json_string(f, r->raw_client);
                fprintf(f, ",\"raw_roundtrips\":%llu,\"engine_roundtrip_ns\":"
                        "%.1f,\"raw_roundtrip_ns\":%.1f,"
                        "\"framework_cost_ratio\":%.6f",
                        (unsigned long long)r->raw_roundtrips,
                        num(r->engine_rt_ns), num(r->raw_rt_ns),
                        num(r->rt_ratio));
            }
        }
        fputc('}', f);
    }
    fputs("\n]}\n", f);
    return ferror(f) ? -1 : 0;
}

/* ---- CSV ---------------------------------------------------------------- */

static void csv_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int bench_csv(FILE *f, const bench_results *rs)
{
    fputs("uri,store,workload,metaprime,batch,threads,rtt_ms,ids,wall_s,"
          "ids_per_s,roundtrips_store,roundtrips_engine,waited_calls,p50_ns,"
          "p99_ns,p999_ns,unused_ids,atomic_ids_per_s,rtt_ms_asked,chunks,"
          "calls,stopped,raw_client,engine_roundtrip_ns,raw_roundtrip_ns,"
          "framework_cost_ratio,strategy,wasted_ids,at_risk_ids\n", f);
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        csv_string(f, r->uri);
        fprintf(f, ",%s,%s,%d,%llu,%u,%.6f,%llu,%.6f,%.3f,", r->store,
                bench_workload_name(r->workload), r->metaprime,
                (unsigned long long)r->batch, r->threads, num(r->rtt_ms),
                (unsigned long long)r->ids, num(r->wall_s),
                num(r->ids_per_s));
        if (r->has_store_count)
            fprintf(f, "%llu", (unsigned long long)r->roundtrips_store);
        fprintf(f, ",%llu,%llu,%llu,%llu,%llu,%llu,",
                (unsigned long long)r->roundtrips_engine,
                (unsigned long long)r->waited_calls,
                (unsigned long long)r->p50_ns, (unsigned long long)r->p99_ns,
                (unsigned long long)r->p999_ns,
                (unsigned long long)r->unused_ids);
        if (r->workload == BENCH_HOTPATH)
            fprintf(f, "%.3f", num(r->atomic_ids_per_s));
        fprintf(f, ",%u,%llu,%llu,%d,", r->rtt_ms_asked,
                (unsigned long long)r->chunks, (unsigned long long)r->calls,
                r->stopped);
        if (r->has_raw)
            fprintf(f, "%s,%.1f,%.1f,%.6f", r->raw_client, num(r->engine_rt_ns),
                    num(r->raw_rt_ns), num(r->rt_ratio));
        else
            fputs(",,,", f);
        fputc(',', f);
        csv_string(f, r->strategy);
        fputc(',', f);
        if (r->has_wasted)
            fprintf(f, "%llu", (unsigned long long)r->wasted_ids);
        fprintf(f, ",%llu\n", (unsigned long long)r->at_risk_ids);
    }
    return ferror(f) ? -1 : 0;
}
