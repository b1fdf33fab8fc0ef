/*
 * profile.c - the due time of every ID of the bursty, ramp and trace
 * workloads (profile.h), and the trace file's parser.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#define BURST_CYCLE_S 1.0   /* bursty: one on/off cycle */
#define BURST_ON 0.25       /* the share of a cycle that is on */
#define RAMP_STEPS 40
#define TRACE_MAX_ROWS 10000000

static int add_seg(profile *p, size_t *cap, double t0, double t1, double rate)
{
    if (p->nseg == *cap) {
        size_t n = *cap ? *cap * 2 : 64;
        profile_seg *g = realloc(p->seg, n * sizeof *g);
        if (g == NULL)
            return -1;
        p->seg = g;
        *cap = n;
    }
    double before = p->nseg == 0 ? 0
        : p->seg[p->nseg - 1].before +
          p->seg[p->nseg - 1].rate * (p->seg[p->nseg - 1].t1 - p->seg[p->nseg - 1].t0);
    p->seg[p->nseg++] = (profile_seg){t0, t1, rate, before};
    return 0;
}

/* Closes a piecewise profile: its total and length. */
static void seal(profile *p)
{
    if (p->nseg == 0)
        return;
    const profile_seg *l = &p->seg[p->nseg - 1];
    p->total = (uint64_t)floor(l->before + l->rate * (l->t1 - l->t0) + 1e-9);
    p->seconds = l->t1;
}

static int build_bursty(const bench_config *cfg, profile *p)
{
    size_t cap = 0;
    double r = (double)cfg->rate / BURST_ON;
    for (unsigned c = 0; c < cfg->seconds; c++) {
        double t = c * BURST_CYCLE_S;
        if (add_seg(p, &cap, t, t + BURST_ON * BURST_CYCLE_S, r) != 0 ||
            add_seg(p, &cap, t + BURST_ON * BURST_CYCLE_S, t + BURST_CYCLE_S,
                    0) != 0)
            return -1;
    }
    seal(p);
    return 0;
}

static int build_ramp(const bench_config *cfg, profile *p)
{
    size_t cap = 0;
    double step = (double)cfg->seconds / RAMP_STEPS;
    for (int k = 0; k < RAMP_STEPS; k++)
        if (add_seg(p, &cap, k * step, (k + 1) * step,
                    2.0 * (double)cfg->rate * (k + 0.5) / RAMP_STEPS) != 0)
            return -1;
    seal(p);
    return 0;
}

/* Parses one line into up to two numbers; returns how many, or -1. */
static int parse_line(char *line, double v[2])
{
    int n = 0;
    char *s = line;
    for (;;) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '\n' || *s == '\r')
            return n;
        if (n == 2)
            return -1;
        char *end;
        errno = 0;
        v[n] = strtod(s, &end);
        if (end == s || errno != 0 || !isfinite(v[n]) || v[n] < 0)
            return -1;
        n++;
        s = end;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == ',')
            s++;
    }
}

static int build_trace(const bench_config *cfg, profile *p, char *msg,
                       size_t len)
{
    FILE *f = fopen(cfg->trace, "r");
    if (f == NULL) {
        snprintf(msg, len, "--trace %s: cannot read it: %s", cfg->trace,
                 strerror(errno));
        return -1;
    }
    char line[256];
    size_t cap = 0, scap = 0, lineno = 0;
    int cols = 0, rc = 0, header = 0;
    double last_t = -1, last_rate = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
            continue;
        double v[2];
        int n = parse_line(line, v);
        if (n <= 0 && cols == 0 && !header) {
            header = 1; /* the first line that is not a comment */
            continue;
        }
        header = 1;
        if (n <= 0 || (cols != 0 && n != cols)) {
            snprintf(msg, len, "--trace %s:%zu: expected \"seconds,rate\" or "
                     "\"seconds\" (numbers >= 0, the same columns on every "
                     "line)", cfg->trace, lineno);
            rc = -1;
            break;
        }
        cols = n;
        if (v[0] < last_t || (n == 2 && v[0] == last_t)) {
            snprintf(msg, len, "--trace %s:%zu: time %g comes before the "
                     "line above's %g: times must increase", cfg->trace,
                     lineno, v[0], last_t);
            rc = -1;
            break;
        }
        if (p->nseg + p->nstamp >= TRACE_MAX_ROWS) {
            snprintf(msg, len, "--trace %s: more than %d rows", cfg->trace,
                     TRACE_MAX_ROWS);
            rc = -1;
            break;
        }
        if (n == 2) {
            if (last_t >= 0 && add_seg(p, &cap, last_t, v[0], last_rate) != 0)
                rc = -2;
            last_rate = v[1];
        } else {
            if (p->nstamp == scap) {
                size_t ns = scap ? scap * 2 : 1024;
                double *g = realloc(p->stamp, ns * sizeof *g);
                if (g == NULL) {
                    rc = -2;
                    break;
                }
                p->stamp = g;
                scap = ns;
            }
            p->stamp[p->nstamp++] = v[0];
        }
        last_t = v[0];
    }
    fclose(f);
    if (rc == -2)
        snprintf(msg, len, "out of memory");
    if (rc != 0)
        return -1;
    if (cols == 2)
        seal(p);
    else if (p->nstamp > 0) {
        p->total = p->nstamp;
        p->seconds = p->stamp[p->nstamp - 1];
    }
    if (p->total == 0) {
        snprintf(msg, len, "--trace %s: no ID is due in it (two-column "
                 "traces need at least two rows: the last one ends it)",
                 cfg->trace);
        return -1;
    }
    return 0;
}

int profile_build(const bench_config *cfg, profile *p, char *msg, size_t len)
{
    memset(p, 0, sizeof *p);
    int rc;
    switch (cfg->workload) {
    case BENCH_BURSTY:
        rc = build_bursty(cfg, p);
        break;
    case BENCH_RAMP:
        rc = build_ramp(cfg, p);
        break;
    case BENCH_TRACE:
        if (cfg->trace == NULL) {
            snprintf(msg, len, "--workload trace needs --trace FILE.csv");
            return -1;
        }
        if ((rc = build_trace(cfg, p, msg, len)) != 0) {
            profile_free(p);
            return -1;
        }
        return 0;
    default:
        snprintf(msg, len, "no rate profile for --workload %s",
                 bench_workload_name(cfg->workload));
        return -1;
    }
    if (rc != 0) {
        profile_free(p);
        snprintf(msg, len, "out of memory");
    }
    return rc;
}

double profile_due(const profile *p, uint64_t g)
{
    if (p->stamp != NULL)
        return g < p->nstamp ? p->stamp[g] : p->seconds;
    double x = (double)g;
    size_t lo = 0, hi = p->nseg; /* the last segment starting at or below */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (p->seg[mid].before <= x)
            lo = mid;
        else
            hi = mid;
    }
    /* skip rate-0 segments: an ID due at their boundary belongs after */
    while (lo + 1 < p->nseg && p->seg[lo].rate <= 0)
        lo++;
    const profile_seg *s = &p->seg[lo];
    if (s->rate <= 0)
        return s->t1;
    double t = s->t0 + (x - s->before) / s->rate;
    return t < s->t1 ? t : s->t1;
}

void profile_free(profile *p)
{
    free(p->seg);
    free(p->stamp);
    memset(p, 0, sizeof *p);
}
