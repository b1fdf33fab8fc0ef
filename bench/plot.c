/*
 * plot.c - the comparison as an SVG, written directly (no gnuplot): three
 * panels side by side, each a bar per run of every store, on a log scale
 * because a batched run and its baseline differ by orders of magnitude.
 *
 *   files/burst/steady: IDs/s, wall time, store round trips; the run beside
 *                       its metaprime=0 baseline.
 *   hotpath:            IDs/s of next() beside the atomic fetch-add; one
 *                       round trip through the engine beside the raw client;
 *                       next() latency p50/p99/p999.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define W 1000
#define H 470
#define PANEL_W 330
#define PLOT_X 58          /* plot area inside a panel */
#define PLOT_W 255
#define PLOT_Y 92
#define PLOT_H 290

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c"};

/* A store's runs: the run and its baseline (or NULL). */
typedef struct group {
    const bench_result *run, *base;
} group;

typedef struct panel {
    const char *title;
    int nseries;
    const char *series[3];
    double (*value)(const group *g, int series);
} panel;

static double count_of(const bench_result *r)
{
    if (r == NULL)
        return NAN;
    return (double)(r->has_store_count ? r->roundtrips_store : r->roundtrips_engine);
}

static double v_rate(const group *g, int s)
{
    const bench_result *r = s == 0 ? g->run : g->base;
    return r != NULL ? r->ids_per_s : NAN;
}

static double v_wall(const group *g, int s)
{
    const bench_result *r = s == 0 ? g->run : g->base;
    return r != NULL ? r->wall_s : NAN;
}

static double v_trips(const group *g, int s)
{
    return count_of(s == 0 ? g->run : g->base);
}

static double v_hot_rate(const group *g, int s)
{
    return s == 0 ? g->run->ids_per_s : g->run->atomic_ids_per_s;
}

static double v_hot_rt(const group *g, int s)
{
    if (!g->run->has_raw)
        return NAN;
    return (s == 0 ? g->run->engine_rt_ns : g->run->raw_rt_ns) / 1000;
}

static double v_hot_lat(const group *g, int s)
{
    const bench_result *r = g->run;
    return (double)(s == 0 ? r->p50_ns : s == 1 ? r->p99_ns : r->p999_ns);
}

static const panel paired[] = {
    {"IDs/s (higher is better)", 2, {"batched", "baseline (metaprime=0)"}, v_rate},
    {"wall time, s", 2, {"batched", "baseline (metaprime=0)"}, v_wall},
    {"store round trips (store's count)", 2,
     {"batched", "baseline (metaprime=0)"}, v_trips},
};

static const panel hot[] = {
    {"IDs/s on a warm pool", 2, {"next()", "atomic fetch-add"}, v_hot_rate},
    {"us per round trip, batch=1", 2, {"engine", "raw client"}, v_hot_rt},
    {"next() latency, ns", 3, {"p50", "p99", "p999"}, v_hot_lat},
};

static void compact(char *out, size_t len, double v)
{
    if (v >= 1e9)
        snprintf(out, len, "%.3gG", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, len, "%.3gM", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, len, "%.3gk", v / 1e3);
    else if (v >= 1 || v == 0)
        snprintf(out, len, "%.3g", v);
    else
        snprintf(out, len, "%.2g", v);
}

static void text(FILE *f, double x, double y, int size, const char *anchor,
                 const char *extra, const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" "
            "text-anchor=\"%s\"%s>", x, y, size, anchor, extra);
    for (; *s != '\0'; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
    fputs("</text>\n", f);
}

static void draw_panel(FILE *f, const panel *p, const group *g, size_t ng,
                       double x0)
{
    double lo = INFINITY, hi = 0;
    for (size_t i = 0; i < ng; i++) {
        for (int s = 0; s < p->nseries; s++) {
            double v = p->value(&g[i], s);
            if (isfinite(v) && v > 0) {
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    }
    text(f, x0 + PLOT_X + PLOT_W / 2.0, 50, 14, "middle",
         " font-weight=\"bold\"", p->title);
    for (int s = 0; s < p->nseries; s++) { /* legend */
        double lx = x0 + PLOT_X + (double)s * PLOT_W / p->nseries;
        fprintf(f, "<rect x=\"%.1f\" y=\"62\" width=\"10\" height=\"10\" "
                "fill=\"%s\"/>\n", lx, colors[s]);
        text(f, lx + 13, 71, 10, "start", "", p->series[s]);
    }
    double px = x0 + PLOT_X, bottom = PLOT_Y + PLOT_H;
    fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%d\" height=\"%d\" "
            "fill=\"none\" stroke=\"#888\"/>\n", px, PLOT_Y, PLOT_W, PLOT_H);
    if (hi <= 0) {
        text(f, px + PLOT_W / 2.0, PLOT_Y + PLOT_H / 2.0, 12, "middle", "",
             "no data");
        return;
    }
    /* room above the highest bar for its label */
    double llo = floor(log10(lo)), lhi = ceil(log10(hi) + 0.25);
    if (lhi <= llo)
        lhi = llo + 1;
    for (double e = llo; e <= lhi; e++) { /* a grid line per power of ten */
        double y = bottom - (e - llo) / (lhi - llo) * PLOT_H;
        char label[32];
        compact(label, sizeof label, pow(10, e));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n", px, y, px + PLOT_W, y);
        text(f, px - 4, y + 4, 10, "end", "", label);
    }
    double gw = (double)PLOT_W / (double)ng;
    double bw = gw * 0.8 / p->nseries;
    for (size_t i = 0; i < ng; i++) {
        double gx = px + gw * (double)i + gw * 0.1;
        for (int s = 0; s < p->nseries; s++) {
            double v = p->value(&g[i], s);
            double bx = gx + bw * s;
            char label[32];
            if (!isfinite(v)) {
                text(f, bx + bw / 2, bottom - 4, 9, "middle", "", "n/a");
                continue;
            }
            compact(label, sizeof label, v);
            double y = v > 0 ? bottom - (log10(v) - llo) / (lhi - llo) * PLOT_H
                             : bottom;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                    "height=\"%.1f\" fill=\"%s\"><title>%s</title></rect>\n",
                    bx, y, bw * 0.92, bottom - y, colors[s], label);
            if (bw >= 30) {
                text(f, bx + bw / 2, y - 3, 9, "middle", "", label);
            } else {
                char rot[64];
                snprintf(rot, sizeof rot, " transform=\"rotate(-90 %.1f %.1f)\"",
                         bx + bw / 2 + 3, y - 3);
                text(f, bx + bw / 2 + 3, y - 3, 9, "start", rot, label);
            }
        }
        const bench_result *r = g[i].run;
        char sub[48];
        if (r->rtt_ms < 0.01)
            snprintf(sub, sizeof sub, "rtt <0.01 ms");
        else
            snprintf(sub, sizeof sub, "rtt %.3g ms", r->rtt_ms);
        text(f, px + gw * ((double)i + 0.5), bottom + 16, 11, "middle", "",
             r->store);
        text(f, px + gw * ((double)i + 0.5), bottom + 29, 9, "middle", "", sub);
    }
}

int bench_svg(FILE *f, const bench_results *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].strategy[0] != '\0')
            return bench_frontier_svg(f, rs);
    group g[64];
    size_t ng = 0;
    for (size_t i = 0; i < rs->n && ng < sizeof g / sizeof g[0]; i++) {
        const bench_result *r = &rs->v[i];
        if (!r->metaprime && ng > 0 && g[ng - 1].base == NULL &&
            strcmp(g[ng - 1].run->uri, r->uri) == 0) {
            g[ng - 1].base = r;
            continue;
        }
        g[ng++] = (group){r, NULL};
    }
    int hotpath = rs->n > 0 && rs->v[0].workload == BENCH_HOTPATH;
    const panel *panels = hotpath ? hot : paired;

    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    char title[256] = "idprime bench: no runs";
    if (rs->n > 0) {
        const bench_result *r = &rs->v[0];
        char what[96];
        if (r->workload == BENCH_FILES)
            snprintf(what, sizeof what, "%llu files x (1 inode + %llu chunk ID%s)",
                     (unsigned long long)(r->ids / (1 + r->chunks)),
                     (unsigned long long)r->chunks, r->chunks == 1 ? "" : "s");
        else
            snprintf(what, sizeof what, "%s, %llu IDs",
                     bench_workload_name(r->workload),
                     (unsigned long long)r->ids);
        snprintf(title, sizeof title, "idprime bench: %s, %u thread%s, round "
                 "trip asked %u ms (log scales)", what, r->threads,
                 r->threads == 1 ? "" : "s", r->rtt_ms_asked);
    }
    text(f, W / 2.0, 24, 16, "middle", " font-weight=\"bold\"", title);
    for (int p = 0; p < 3; p++)
        draw_panel(f, &panels[p], g, ng, 10 + p * (double)PANEL_W);
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
