/*
 * scale.c - `idprime bench --workload counters`: N counters in one client,
 * each taking one ID, timed, with the resident memory they added; then
 * the median cost of idp_open + idp_close on the same URI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scale.h"

/* Resident bytes of this process, from /proc/self/statm; 0 if unknown. */
static uint64_t resident(void)
{
    unsigned long long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    int ok = fscanf(f, "%llu %llu", &size, &res) == 2;
    fclose(f);
    return ok ? (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int scale_run(const bench_config *cfg, idp_client *c, const char *uri,
              const idp_options *opt, monitor *m, scale_out *out, char *msg,
              size_t len)
{
    memset(out, 0, sizeof *out);
    uint64_t n = cfg->count != 0 ? cfg->count : bench_default_count(BENCH_COUNTERS);
    idp_error err;
    uint64_t rss0 = resident();
    double t0 = bench_now();
    for (uint64_t i = 0; i < n && !atomic_load(&m->stop); i++) {
        char name[32];
        snprintf(name, sizeof name, "c%llu", (unsigned long long)i);
        idp_counter *k = idp_counter_get(c, name, &err);
        uint64_t id = 0;
        if (k == NULL || idp_next(k, &id, &err) != IDP_OK) {
            snprintf(msg, len, "counter %s: %s", name, err.msg);
            return BENCH_EWORK;
        }
        if (id != 1) {
            snprintf(msg, len, "counter %s: first ID %llu, not 1 (the "
                     "prefix is fresh)", name, (unsigned long long)id);
            return BENCH_EWORK;
        }
        out->counters++;
        atomic_fetch_add(&m->done, 1);
    }
    out->wall_s = bench_now() - t0;
    uint64_t rss1 = resident();
    out->rss_growth = rss1 > rss0 ? rss1 - rss0 : 0;
    char *text = idp_metrics(c);
    if (text != NULL) {
        out->metrics_bytes = strlen(text);
        idp_free(text);
    }
    double t[SCALE_OPENS];
    int k = 0;
    for (; k < SCALE_OPENS && !atomic_load(&m->stop); k++) {
        double s = bench_now();
        idp_client *x = idp_open(uri, opt, &err);
        if (x == NULL) {
            snprintf(msg, len, "open: %s", err.msg);
            return BENCH_EWORK;
        }
        idp_close(x);
        t[k] = (bench_now() - s) * 1e6;
    }
    if (k > 0) {
        qsort(t, (size_t)k, sizeof *t, cmp_double);
        out->open_close_us = t[k / 2];
    }
    return BENCH_OK;
}
