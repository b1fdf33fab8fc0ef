/*
 * runner.c - one URI's runs: a fresh prefix per run, the delay (proxy or
 * delay_ms), the measured round trip, the store's own count read before
 * and after, the workload, and the engine's counts at the end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "hotpath.h"
#include "progress.h"
#include "scale.h"
#include "target.h"
#include "workload.h"

#define RTT_PROBES 5              /* store reads timed before each run */
#define SETTLE_STEP_NS 1000000L   /* polling for a last background fetch */
#define RT_MIN 100                /* hotpath round trips per side, auto */
#define RT_MAX 20000
#define RT_SECONDS 1.0            /* about this long per side, auto */
#define HOT_BATCH "1073741824"    /* the largest batch: the pool stays warm */

static const char *const names[] = {"files", "burst", "steady", "hotpath",
                                    "counters", "bursty", "ramp", "trace"};

const char *bench_workload_name(bench_workload w)
{
    return (unsigned)w < sizeof names / sizeof names[0] ? names[w] : "?";
}

int bench_workload_parse(const char *name, bench_workload *w)
{
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            *w = (bench_workload)i;
            return 0;
        }
    }
    return -1;
}

uint64_t bench_default_count(bench_workload w)
{
    switch (w) {
    case BENCH_FILES:
        return 1000;
    case BENCH_BURST:
        return 1000000;
    case BENCH_HOTPATH:
        return 10000000;
    case BENCH_COUNTERS:
        return 100000;
    default:
        return 0;
    }
}

void bench_config_defaults(bench_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->workload = BENCH_FILES;
    cfg->chunks = 1;
    cfg->rate = 10000;
    cfg->seconds = 5;
    cfg->threads = 1;
    cfg->baseline = 1;
    cfg->time_limit = 600;
}

int bench_config_check(const bench_config *cfg, char *msg, size_t len)
{
    if (cfg->threads < 1 || cfg->threads > BENCH_MAX_THREADS) {
        snprintf(msg, len, "--threads %u: expected 1..%d", cfg->threads,
                 BENCH_MAX_THREADS);
        return BENCH_EUSAGE;
    }
    int timed = cfg->workload == BENCH_STEADY || cfg->workload == BENCH_BURSTY ||
                cfg->workload == BENCH_RAMP;
    if (timed && cfg->rate < cfg->threads) {
        snprintf(msg, len, "--rate %llu is below --threads %u: every thread "
                 "needs at least 1 ID/s", (unsigned long long)cfg->rate,
                 cfg->threads);
        return BENCH_EUSAGE;
    }
    if (cfg->workload == BENCH_HOTPATH && cfg->count != 0 &&
        cfg->count < 1000) {
        snprintf(msg, len, "--count %llu: the hot path needs at least 1000 "
                 "IDs per thread to be timed", (unsigned long long)cfg->count);
        return BENCH_EUSAGE;
    }
    if (cfg->workload == BENCH_TRACE && cfg->trace == NULL) {
        snprintf(msg, len, "--workload trace needs --trace FILE.csv");
        return BENCH_EUSAGE;
    }
    return BENCH_OK;
}

void bench_results_free(bench_results *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].metrics);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static bench_result *add_result(bench_results *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        bench_result *g = realloc(r->v, cap * sizeof *g);
        if (g == NULL)
            return NULL;
        r->v = g;
        r->cap = cap;
    }
    bench_result *res = &r->v[r->n++];
    memset(res, 0, sizeof *res);
    return res;
}

static void say(const bench_config *cfg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const bench_config *cfg, int level, const char *fmt, ...)
{
    if (cfg->log == NULL)
        return;
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cfg->log(cfg->log_ud, level, text);
}

/* The target with the user's --param items applied. */
static int prepare(const bench_config *cfg, const char *uri, bench_target *t,
                   char *msg, size_t len)
{
    if (target_parse(uri, t, msg, len) != 0)
        return BENCH_EUSAGE;
    for (size_t i = 0; cfg->params != NULL && cfg->params[i] != NULL; i++) {
        if (target_set(t, cfg->params[i]) != 0) {
            target_free(t);
            snprintf(msg, len, "out of memory");
            return BENCH_EWORK;
        }
    }
    return BENCH_OK;
}

/* A key prefix no earlier run used: the user's prefix, then a tag. */
static void fresh_prefix(const bench_target *t, char *out, size_t len)
{
    static unsigned seq;
    const char *user = target_param(t, "prefix");
    snprintf(out, len, "prefix=%sbench.%lld.%d.%u.", user != NULL ? user : "",
             (long long)time(NULL), (int)getpid(), ++seq);
}

/* A client's log: the bench's, except that a run's open is quiet below
 * errors, because the check before the runs (bench_check_uri) said it all
 * already, naming the store's real address rather than a proxy's. */
typedef struct run_log {
    const bench_config *cfg;
    int quiet;
} run_log;

static void run_log_fn(void *ud, int level, const char *msg)
{
    const run_log *l = ud;
    if (l->cfg->log != NULL && !(l->quiet && level != IDP_LOG_ERROR))
        l->cfg->log(l->cfg->log_ud, level, msg);
}

/* Opens the target with the `extra` items, logging through `lg` (quiet
 * while it opens when lg->quiet is set). When *delay is set, the last item
 * is delay_ms: a store that refuses it (sqlite without it) is opened
 * without, *delay cleared, and (announce) a warning given. */
static idp_client *open_run(const bench_config *cfg, const bench_target *t,
                            const char **extra, int *delay, int announce,
                            run_log *lg, char *msg, size_t len, int *rc)
{
    idp_options opt = {.size = sizeof opt};
    if (cfg->options != NULL) {
        size_t n = cfg->options->size < sizeof opt ? cfg->options->size
                                                   : sizeof opt;
        memcpy(&opt, cfg->options, n);
        opt.size = sizeof opt;
    }
    opt.log = run_log_fn;
    opt.log_ud = lg;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *uri = target_uri(t, extra);
        if (uri == NULL) {
            snprintf(msg, len, "out of memory");
            *rc = BENCH_EWORK;
            return NULL;
        }
        idp_error err;
        idp_client *c = idp_open(uri, &opt, &err);
        free(uri);
        if (c != NULL) {
            lg->quiet = 0;
            return c;
        }
        size_t n = 0;
        while (extra[n] != NULL)
            n++;
        if (attempt == 0 && *delay && n > 0 && err.code == IDP_EINVAL &&
            strstr(err.msg, "'delay_ms'") != NULL) {
            if (announce)
                say(cfg, IDP_LOG_WARN, "%s: the %s store takes no delay_ms: "
                    "running without the %u ms asked for (the round trip "
                    "shown is the one measured)", t->shown, t->scheme,
                    cfg->rtt_ms);
            extra[n - 1] = NULL;
            *delay = 0;
            continue;
        }
        snprintf(msg, len, "%s: %s", t->shown, err.msg);
        *rc = err.code == IDP_EINVAL ? BENCH_EUSAGE : BENCH_EWORK;
        return NULL;
    }
    return NULL; /* not reached */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The store's round trip: the median of RTT_PROBES reads of a counter that
 * does not exist (allocates nothing), after one untimed read. */
static int measure_rtt(idp_client *c, double *ms, char *msg, size_t len)
{
    double t[RTT_PROBES];
    uint64_t v;
    idp_error err;
    for (int i = -1; i < RTT_PROBES; i++) {
        double t0 = bench_now();
        if (idp_get(c, "rtt_probe", &v, NULL, &err) != IDP_OK) {
            snprintf(msg, len, "measuring the round trip: %s", err.msg);
            return BENCH_EWORK;
        }
        if (i >= 0)
            t[i] = (bench_now() - t0) * 1000;
    }
    qsort(t, RTT_PROBES, sizeof *t, cmp_double);
    *ms = t[RTT_PROBES / 2];
    return BENCH_OK;
}

/* Reads the store's count; 0 when it keeps none (or cannot say now). */
static int store_count(const bench_config *cfg, idp_client *c,
                       const bench_target *t, uint64_t *n)
{
    idp_error err;
    int rc = idp_store_roundtrips(c, n, &err);
    if (rc == IDP_OK)
        return 1;
    if (rc != IDP_EUNSUPPORTED)
        say(cfg, IDP_LOG_WARN, "%s: cannot read the store's own count: %s",
            t->shown, err.msg);
    return 0;
}

/* Waits (bounded) until no counter has a fetch queued or running, so the
 * store's count and the engine's are read at rest. */
static void settle(idp_counter *const *ctr, int n, unsigned timeout_ms)
{
    double deadline = bench_now() + 2.0 * timeout_ms / 1000 + 1;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < n; i++) {
            idp_counter_stats st = {.size = sizeof st};
            idp_counter_stats_get(ctr[i], &st);
            busy |= st.in_flight;
        }
        if (!busy || bench_now() > deadline)
            return;
        struct timespec ts = {0, SETTLE_STEP_NS};
        nanosleep(&ts, NULL);
    }
}

static void fill_latency(bench_result *res, const histogram *h)
{
    res->p50_ns = hist_quantile(h, 0.50);
    res->p99_ns = hist_quantile(h, 0.99);
    res->p999_ns = hist_quantile(h, 0.999);
}

/* The framework's cost per round trip: a batch=1 client against the raw
 * client library, on the same hosts (and proxies). */
static int run_roundtrip(const bench_config *cfg, const bench_target *t,
                         const char *prefix, bench_result *res, monitor *m,
                         char *msg, size_t len)
{
    int unsupported = 0;
    raw_client *raw = raw_open(t, 2000, &unsupported, msg, len);
    if (raw == NULL) {
        if (unsupported) {
            say(cfg, IDP_LOG_INFO, "%s: %s: the framework-cost comparison "
                "is skipped", t->shown, msg);
            msg[0] = '\0';
            return BENCH_OK;
        }
        return BENCH_EWORK;
    }
    const char *extra[] = {prefix, "batch=1", "low_watermark=0", NULL};
    int delay = 0, rc = BENCH_OK;
    run_log lg = {cfg, 1};
    idp_client *c = open_run(cfg, t, extra, &delay, 0, &lg, msg, len, &rc);
    idp_error err;
    idp_counter *ctr = c != NULL ? idp_counter_get(c, "hotpath_rt", &err) : NULL;
    if (c != NULL && ctr == NULL) {
        snprintf(msg, len, "%s", err.msg);
        rc = BENCH_EWORK;
    }
    if (ctr != NULL) {
        uint64_t n = cfg->roundtrips;
        if (n == 0) {
            double rt = res->rtt_ms / 1000 > 20e-6 ? res->rtt_ms / 1000 : 20e-6;
            n = (uint64_t)(RT_SECONDS / rt);
            n = n < RT_MIN ? RT_MIN : n > RT_MAX ? RT_MAX : n;
        }
        char key[300];
        snprintf(key, sizeof key, "%shotpath_raw", prefix + strlen("prefix="));
        hp_roundtrip out;
        rc = hotpath_roundtrip(ctr, raw, key, n, m, &out, msg, len);
        if (rc == BENCH_OK) {
            res->has_raw = 1;
            snprintf(res->raw_client, sizeof res->raw_client, "%s", raw_name(raw));
            res->raw_roundtrips = out.n;
            res->engine_rt_ns = out.engine_ns;
            res->raw_rt_ns = out.raw_ns;
            res->rt_ratio = out.ratio;
        }
    }
    idp_close(c);
    raw_close(raw);
    return rc;
}

/* --workload counters on the open client c (closed here). */
static int run_counters(const bench_config *cfg, const bench_target *t,
                        const char **extra, idp_client *c, bench_result *res,
                        char *msg, size_t len)
{
    char label[96];
    snprintf(label, sizeof label, "%s counters", res->store);
    uint64_t n = cfg->count != 0 ? cfg->count : bench_default_count(BENCH_COUNTERS);
    monitor m;
    monitor_start(&m, cfg->progress, label, n, cfg->time_limit);
    char *uri = target_uri(t, extra);
    idp_options opt = {.size = sizeof opt};
    if (cfg->options != NULL)
        memcpy(&opt, cfg->options, cfg->options->size < sizeof opt
                                       ? cfg->options->size : sizeof opt);
    opt.size = sizeof opt;
    opt.log = NULL;
    scale_out so;
    int rc = uri == NULL ? (snprintf(msg, len, "out of memory"), BENCH_EWORK)
                         : scale_run(cfg, c, uri, &opt, &m, &so, msg, len);
    free(uri);
    res->stopped = atomic_load(&m.stop) ? (bench_interrupted() ? 2 : 1) : 0;
    monitor_end(&m);
    idp_close(c);
    if (rc != BENCH_OK)
        return rc;
    res->ids = so.counters;
    res->calls = so.counters;
    res->wall_s = so.wall_s;
    res->ids_per_s = so.wall_s > 0 ? (double)so.counters / so.wall_s : 0;
    res->rss_growth = so.rss_growth;
    res->metrics_bytes = so.metrics_bytes;
    res->open_close_us = so.open_close_us;
    return BENCH_OK;
}

/* 0 when the run's client does not batch: metaprime=0 in the URI (or a
 * --param), else in the options' parameters (a strategy's config). */
static int batches(const bench_config *cfg, const bench_target *t)
{
    const char *v = target_param(t, "metaprime");
    const char *const *p = cfg->options != NULL &&
                           cfg->options->size >= offsetof(idp_options, params) +
                                                     sizeof(void *)
                               ? cfg->options->params : NULL;
    for (size_t i = 0; v == NULL && p != NULL && p[i] != NULL; i++)
        if (strncmp(p[i], "metaprime=", 10) == 0)
            v = p[i] + 10;
    return v == NULL || strcmp(v, "0") != 0;
}

/* A second client on the run's keys (the same prefix, and the same
 * delay_ms, which a mem namespace shares: NULL when none), open across the
 * run: it keeps a mem namespace alive after the run's client closes, and
 * reads what the close left in the store. NULL when it cannot open (then no
 * waste is measured; the run goes on). */
static idp_client *open_watcher(const bench_config *cfg, const bench_target *t,
                                const char *prefix, const char *delay_item,
                                run_log *lg)
{
    const char *extra[] = {prefix, delay_item, NULL};
    int delay = 0, rc = 0;
    char msg[300];
    /* lg is the caller's: the client logs through it until it closes */
    *lg = (run_log){cfg, 1};
    idp_client *w = open_run(cfg, t, extra, &delay, 0, lg, msg, sizeof msg,
                             &rc);
    if (w == NULL)
        say(cfg, IDP_LOG_WARN, "%s: no second client to measure the IDs a "
            "clean close wastes: %s", t->shown, msg);
    return w;
}

/* After the run's client closed: what the store's values exceed the last
 * IDs handed out by (the IDs a clean close wasted). */
static void measure_wasted(const bench_config *cfg, const bench_target *t,
                           idp_client *w, const char *const *cname, int n,
                           bench_result *res)
{
    uint64_t wasted = 0;
    for (int i = 0; i < n; i++) {
        uint64_t v = 0;
        idp_error err;
        if (idp_get(w, cname[i], &v, NULL, &err) != IDP_OK) {
            say(cfg, IDP_LOG_WARN, "%s: reading '%s' after the close: %s",
                t->shown, cname[i], err.msg);
            return;
        }
        wasted += v > res->last_id[i] ? v - res->last_id[i] : 0;
    }
    res->wasted_ids = wasted;
    res->has_wasted = 1;
}

/* One run (metaprime 1: as configured; 0: the baseline). */
static int run_one(const bench_config *cfg, const bench_target *t,
                   int metaprime, bench_results *out, char *msg, size_t len)
{
    char prefix[300], delay[48];
    fresh_prefix(t, prefix, sizeof prefix);
    const char *extra[8];
    int ne = 0;
    extra[ne++] = prefix;
    if (!metaprime)
        extra[ne++] = "metaprime=0";
    if (cfg->workload == BENCH_HOTPATH) {
        extra[ne++] = "batch=" HOT_BATCH;
        extra[ne++] = "low_watermark=0";
    }
    int with_delay = 0;
    if (cfg->rtt_ms > 0 && !t->network) {
        snprintf(delay, sizeof delay, "delay_ms=%u", cfg->rtt_ms);
        extra[ne++] = delay; /* last: open_run drops it if refused */
        with_delay = 1;
    }
    extra[ne] = NULL;

    int rc = BENCH_OK;
    /* the delay warning once per URI: on its first run */
    run_log lg = {cfg, 1};
    idp_client *c = open_run(cfg, t, extra, &with_delay, metaprime, &lg, msg,
                             len, &rc);
    if (c == NULL)
        return rc;
    /* injected through the proxies, or by the store's delay_ms */
    int injected = cfg->rtt_ms > 0 && (t->network || with_delay);
    bench_result *res = add_result(out);
    if (res == NULL) {
        idp_close(c);
        snprintf(msg, len, "out of memory");
        return BENCH_EWORK;
    }
    snprintf(res->uri, sizeof res->uri, "%s", t->shown);
    snprintf(res->store, sizeof res->store, "%s", idp_client_store(c));
    res->workload = cfg->workload;
    res->metaprime = metaprime && batches(cfg, t);
    res->threads = cfg->threads;
    res->rtt_ms_asked = cfg->rtt_ms;
    res->rtt_injected = injected;
    res->chunks = cfg->workload == BENCH_FILES ? cfg->chunks : 0;
    if (cfg->strategy != NULL)
        snprintf(res->strategy, sizeof res->strategy, "%s", cfg->strategy);

    if (cfg->workload == BENCH_COUNTERS)
        return run_counters(cfg, t, extra, c, res, msg, len);
    idp_counter *ctr[2] = {NULL, NULL};
    int nctr = cfg->workload == BENCH_FILES ? 2 : 1;
    const char *cname[2] = {cfg->workload == BENCH_FILES ? "inode"
                                                         : bench_workload_name(cfg->workload),
                            "chunk"};
    idp_error err;
    for (int i = 0; i < nctr; i++) {
        if ((ctr[i] = idp_counter_get(c, cname[i], &err)) == NULL) {
            snprintf(msg, len, "%s", err.msg);
            idp_close(c);
            return BENCH_EWORK;
        }
    }
    idp_counter_stats st = {.size = sizeof st};
    idp_counter_stats_get(ctr[0], &st);
    res->batch = res->metaprime ? st.batch : 1;

    if ((rc = measure_rtt(c, &res->rtt_ms, msg, len)) != BENCH_OK) {
        idp_close(c);
        return rc;
    }
    uint64_t before = 0, after = 0;
    int counted = store_count(cfg, c, t, &before);
    /* the engine's fetches over the same window as the store's count: a
     * counter primed at open (prime=) was fetched before it */
    uint64_t fetched_before[2] = {0, 0};
    for (int i = 0; i < nctr; i++) {
        idp_counter_stats_get(ctr[i], &st);
        fetched_before[i] = st.prime_calls;
    }

    char label[96];
    snprintf(label, sizeof label, "%s %s%s", res->store,
             bench_workload_name(cfg->workload), metaprime ? "" : " baseline");
    uint64_t units = cfg->workload == BENCH_HOTPATH
                         ? HOTPATH_ROUNDS + 1 + HOTPATH_RT_ROUNDS
                                                    : workload_units(cfg);
    run_log watch_lg; /* lives as long as the watcher */
    idp_client *watch = cfg->workload == BENCH_HOTPATH ? NULL
                        : open_watcher(cfg, t, prefix,
                                       with_delay ? delay : NULL, &watch_lg);
    monitor m;
    monitor_start(&m, cfg->progress, label, units, cfg->time_limit);
    histogram *hist = NULL;
    if (cfg->workload == BENCH_HOTPATH) {
        hp_pool hp;
        rc = hotpath_pool(cfg, ctr[0], &m, &hp, msg, len);
        hist = hp.hist;
        res->ids = hp.ids;
        res->calls = hp.calls;
        res->wall_s = hp.wall_s;
        res->ids_per_s = hp.next_ids_per_s;
        res->atomic_ids_per_s = hp.atomic_ids_per_s;
        res->next1_ids_per_s = hp.next1_ids_per_s;
        res->cache_ids_per_s = hp.cache_ids_per_s;
    } else {
        wl_out wo;
        rc = workload_run(cfg, ctr, &m, &wo, msg, len);
        hist = wo.hist;
        res->ids = wo.ids;
        res->calls = wo.calls;
        res->wall_s = wo.wall_s;
        res->ids_per_s = wo.wall_s > 0 ? (double)wo.ids / wo.wall_s : 0;
        res->last_id[0] = wo.last[0];
        res->last_id[1] = wo.last[1];
    }
    res->stopped = atomic_load(&m.stop) ? (bench_interrupted() ? 2 : 1) : 0;
    if (hist != NULL)
        fill_latency(res, hist);
    free(hist);

    settle(ctr, nctr, 2000);
    if (counted && store_count(cfg, c, t, &after) && after >= before) {
        res->has_store_count = 1;
        res->roundtrips_store = after - before;
    }
    res->ncounters = nctr;
    for (int i = 0; i < nctr; i++) {
        idp_counter_stats_get(ctr[i], &st);
        snprintf(res->counter[i], sizeof res->counter[i], "%s", cname[i]);
        res->counter_fetches[i] = st.prime_calls - fetched_before[i];
        res->roundtrips_engine += st.prime_calls - fetched_before[i];
        res->waited_calls += st.waited_calls;
        res->unused_ids += st.unused_ids;
        if (cfg->workload != BENCH_HOTPATH && st.high > res->last_id[i])
            res->at_risk_ids += st.high - res->last_id[i];
    }
    char *text = idp_metrics(c);
    if (text != NULL) {
        res->metrics = strdup(text);
        idp_free(text);
    }
    idp_close(c);
    if (watch != NULL) {
        measure_wasted(cfg, t, watch, cname, nctr, res);
        idp_close(watch);
    }

    if (rc == BENCH_OK && cfg->workload == BENCH_HOTPATH)
        rc = run_roundtrip(cfg, t, prefix, res, &m, msg, len);
    monitor_end(&m);

    if (res->has_store_count && res->roundtrips_store != res->roundtrips_engine)
        say(cfg, IDP_LOG_WARN, "%s %s%s: the store counted %llu increments "
            "and the engine %llu: they disagree (another client on the same "
            "server?)", t->shown, bench_workload_name(cfg->workload),
            metaprime ? "" : " baseline",
            (unsigned long long)res->roundtrips_store,
            (unsigned long long)res->roundtrips_engine);
    if (res->stopped == 2)
        say(cfg, IDP_LOG_WARN, "%s %s%s: interrupted after %llu IDs",
            t->shown, bench_workload_name(cfg->workload),
            metaprime ? "" : " baseline", (unsigned long long)res->ids);
    else if (res->stopped)
        say(cfg, IDP_LOG_WARN, "%s %s%s: stopped at the time limit (%u s) "
            "after %llu IDs", t->shown, bench_workload_name(cfg->workload),
            metaprime ? "" : " baseline", cfg->time_limit,
            (unsigned long long)res->ids);
    return rc;
}

int bench_check_uri(const bench_config *cfg, const char *uri, char *msg,
                    size_t len)
{
    bench_target t;
    int rc = prepare(cfg, uri, &t, msg, len);
    if (rc != BENCH_OK)
        return rc;
    if (cfg->rtt_ms > 0 && t.network && target_check_loopback(&t, msg, len) != 0) {
        target_free(&t);
        return BENCH_EUSAGE;
    }
    char prefix[300];
    fresh_prefix(&t, prefix, sizeof prefix);
    const char *extra[] = {prefix, NULL};
    int delay = 0;
    run_log lg = {cfg, 0};
    idp_client *c = open_run(cfg, &t, extra, &delay, 0, &lg, msg, len, &rc);
    idp_close(c);
    target_free(&t);
    return c != NULL ? BENCH_OK : rc;
}

int bench_run(const bench_config *cfg, const char *uri, bench_results *out,
              char *msg, size_t len)
{
    if (bench_interrupted()) /* stopped: no further run */
        return BENCH_OK;
    bench_target t;
    int rc = prepare(cfg, uri, &t, msg, len);
    if (rc != BENCH_OK)
        return rc;
    if (cfg->rtt_ms > 0 && t.network) {
        if (target_check_loopback(&t, msg, len) != 0) {
            target_free(&t);
            return BENCH_EUSAGE;
        }
        if (target_proxy_start(&t, cfg->rtt_ms, msg, len) != 0) {
            target_free(&t);
            return BENCH_EWORK;
        }
    }
    rc = run_one(cfg, &t, 1, out, msg, len);
    if (rc == BENCH_OK && cfg->baseline && cfg->workload != BENCH_HOTPATH &&
        cfg->workload != BENCH_COUNTERS && !bench_interrupted())
        rc = run_one(cfg, &t, 0, out, msg, len);
    target_free(&t);
    return rc;
}
