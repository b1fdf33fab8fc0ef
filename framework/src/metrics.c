/*
 * metrics.c - a client's metrics as Prometheus text exposition. The
 * original names stay (meta_NAME_prime_calls_total, ..._ids_served_total,
 * ..._prefetch_async_total, meta_prime_errors_total), beside what operators
 * need: waits, regressions, a fetch latency histogram, the batch size.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* Metric names allow [a-zA-Z0-9_:]; counter names may also hold '.' '-'. */
static void metric_name(char *out, size_t len, const char *name)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < len; i++) {
        char ch = name[i];
        out[i] = (ch == '.' || ch == '-') ? '_' : ch;
    }
    out[i] = '\0';
}

static void one(FILE *f, const char *type, const char *name, const char *what,
                const char *help, uint64_t v)
{
    fprintf(f, "# HELP meta_%s_%s %s\n# TYPE meta_%s_%s %s\nmeta_%s_%s %llu\n",
            name, what, help, name, what, type, name, what,
            (unsigned long long)v);
}

static void counter_metrics(FILE *f, idp_counter *c)
{
    idp_counter_stats s;
    uint64_t b[NBUCKETS + 1];
    engine_stats(c, &s, b);
    char n[IDP_NAME_MAX + 1];
    metric_name(n, sizeof n, c->name);
    one(f, "counter", n, "prime_calls_total", "Batch fetches from the store "
        "(one round trip each).", s.prime_calls);
    one(f, "counter", n, "ids_served_total", "IDs handed out.", s.ids_served);
    one(f, "counter", n, "prefetch_async_total", "Batch fetches done in the "
        "background.", s.prefetch_async);
    one(f, "counter", n, "waited_calls_total", "Calls that had to wait for a "
        "store round trip.", s.waited_calls);
    one(f, "counter", n, "fetch_errors_total", "Failed batch fetches.",
        s.errors);
    one(f, "counter", n, "regressions_total", "Store answers refused as at or "
        "below a value already held.", s.regressions);
    one(f, "gauge", n, "batch_size", "Batch size of the next fetch.", s.batch);
    one(f, "gauge", n, "unused_ids", "IDs fetched but not handed out.",
        s.unused_ids);
    fprintf(f, "# HELP meta_%s_fetch_seconds Latency of batch fetches.\n"
            "# TYPE meta_%s_fetch_seconds histogram\n", n, n);
    uint64_t cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += b[i];
        fprintf(f, "meta_%s_fetch_seconds_bucket{le=\"%g\"} %llu\n", n,
                idp_buckets[i], (unsigned long long)cum);
    }
    cum += b[NBUCKETS];
    fprintf(f, "meta_%s_fetch_seconds_bucket{le=\"+Inf\"} %llu\n"
            "meta_%s_fetch_seconds_sum %.9f\n"
            "meta_%s_fetch_seconds_count %llu\n", n, (unsigned long long)cum,
            n, s.fetch_seconds, n, (unsigned long long)cum);
}

API char *idp_metrics(idp_client *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fprintf(f, "# HELP meta_prime_errors_total Failed batch fetches, all "
            "counters.\n# TYPE meta_prime_errors_total counter\n"
            "meta_prime_errors_total %llu\n",
            (unsigned long long)atomic_load(&c->errors));
    pthread_mutex_lock(&c->mu);
    for (idp_counter *k = c->counters; k != NULL; k = k->next)
        counter_metrics(f, k);
    pthread_mutex_unlock(&c->mu);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
