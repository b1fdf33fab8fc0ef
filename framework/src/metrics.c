/*
 * metrics.c - a client's metrics as Prometheus text exposition.
 *
 * Every counter appears in labelled families (idprime_ids_served_total
 * {counter="a-b"} ...), valid for every allowed counter name. The original
 * names (meta_NAME_prime_calls_total, meta_NAME_ids_served_total,
 * meta_NAME_prefetch_async_total) are written too where NAME is itself a
 * metric-name part that `promtool check metrics` takes without complaint
 * (plain_name): such names map to themselves, so no two counters can share
 * one; a counter named a-b, a.b, a:b, inodeCount or a_b ("b" reads as a
 * unit) appears only in the labelled families. meta_prime_errors_total and one fetch
 * latency histogram are per client. About 0.9 KB per counter with short
 * names. Numbers are written as integers (seconds as integer.nanoseconds),
 * whatever the locale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct row {
    const idp_counter *c;
    idp_counter_stats s;
} row;

/* Parts of a metric name promtool's linter refuses: abbreviated units and
 * metric types. */
static const char *const lint_parts[] = {
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m",
    "h", "d", "counter", "gauge", "histogram", "summary",
};

/* 1 when meta_NAME_... is a name promtool takes as it is: snake_case
 * ([a-z0-9_]) with no '_'-separated part the linter reads as a unit or a
 * metric type. */
static int plain_name(const char *name)
{
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    for (const char *p = name; *p != '\0';) {
        size_t n = strcspn(p, "_");
        for (size_t i = 0; i < sizeof lint_parts / sizeof lint_parts[0]; i++)
            if (strlen(lint_parts[i]) == n && strncmp(p, lint_parts[i], n) == 0)
                return 0;
        p += n + (p[n] == '_');
    }
    return 1;
}

#define FIELD(f) offsetof(idp_counter_stats, f)

static const struct family {
    const char *name;    /* idprime_NAME and, where `meta`, meta_C_NAME */
    const char *type;
    size_t off;
    int meta;
    const char *help;
} families[] = {
    {"prime_calls_total", "counter", FIELD(prime_calls), 1,
     "Batch fetches from the store (one round trip each)."},
    {"ids_served_total", "counter", FIELD(ids_served), 1, "IDs handed out."},
    {"prefetch_async_total", "counter", FIELD(prefetch_async), 1,
     "Batch fetches done in the background."},
    {"waited_calls_total", "counter", FIELD(waited_calls), 0,
     "Calls that had to wait for a store round trip."},
    {"fetch_errors_total", "counter", FIELD(errors), 0, "Failed batch fetches."},
    {"regressions_total", "counter", FIELD(regressions), 0,
     "Store answers refused as at or below a value already held."},
    {"batch_size", "gauge", FIELD(batch), 0, "Batch size of the next fetch."},
    {"unused_ids", "gauge", FIELD(unused_ids), 0,
     "IDs fetched but not handed out."},
};
#define NFAMILIES (sizeof families / sizeof families[0])

static unsigned long long value_of(const row *r, const struct family *f)
{
    return (unsigned long long)*(const uint64_t *)(const void *)
        ((const char *)&r->s + f->off);
}

static void write_all(FILE *f, idp_client *c, const row *rows, size_t n)
{
    fprintf(f, "# HELP meta_prime_errors_total Failed batch fetches, all "
            "counters.\n# TYPE meta_prime_errors_total counter\n"
            "meta_prime_errors_total %llu\n",
            (unsigned long long)atomic_load(&c->errors));
    for (size_t i = 0; i < n; i++) {
        if (!plain_name(rows[i].c->name))
            continue;
        for (size_t k = 0; k < NFAMILIES; k++) {
            if (!families[k].meta)
                continue;
            const char *nm = rows[i].c->name, *fam = families[k].name;
            fprintf(f, "# HELP meta_%s_%s %s\n# TYPE meta_%s_%s %s\n"
                    "meta_%s_%s %llu\n", nm, fam, families[k].help, nm, fam,
                    families[k].type, nm, fam, value_of(&rows[i], &families[k]));
        }
    }
    for (size_t k = 0; k < NFAMILIES && n > 0; k++) {
        fprintf(f, "# HELP idprime_%s %s\n# TYPE idprime_%s %s\n",
                families[k].name, families[k].help, families[k].name,
                families[k].type);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "idprime_%s{counter=\"%s\"} %llu\n", families[k].name,
                    rows[i].c->name, value_of(&rows[i], &families[k]));
    }
    fprintf(f, "# HELP idprime_fetch_seconds Latency of batch fetches, all "
            "counters.\n# TYPE idprime_fetch_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += atomic_load(&c->buckets[i]);
        fprintf(f, "idprime_fetch_seconds_bucket{le=\"%s\"} %llu\n",
                idp_bucket_text[i], cum);
    }
    cum += atomic_load(&c->buckets[NBUCKETS]);
    unsigned long long ns = atomic_load(&c->fetch_ns);
    fprintf(f, "idprime_fetch_seconds_bucket{le=\"+Inf\"} %llu\n"
            "idprime_fetch_seconds_sum %llu.%09llu\n"
            "idprime_fetch_seconds_count %llu\n", cum, ns / 1000000000ULL,
            ns % 1000000000ULL, cum);
}

API char *idp_metrics(idp_client *c)
{
    if (c == NULL)
        return NULL;
    fork_check(c);
    /* Counters are freed only by idp_close, which must not race with this
     * call: the list taken under the table's lock stays valid after it. */
    pthread_mutex_lock(&c->mu);
    size_t n = c->ncounters;
    row *rows = calloc(n ? n : 1, sizeof *rows);
    size_t k = 0;
    for (size_t b = 0; rows != NULL && b < c->nbuckets; b++)
        for (idp_counter *x = c->table[b]; x != NULL && k < n; x = x->hnext)
            rows[k++].c = x;
    pthread_mutex_unlock(&c->mu);
    if (rows == NULL)
        return NULL;
    for (size_t i = 0; i < k; i++) {
        rows[i].s.size = sizeof rows[i].s;
        engine_stats((idp_counter *)rows[i].c, &rows[i].s);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f != NULL)
        write_all(f, c, rows, k);
    free(rows);
    if (f == NULL || fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
