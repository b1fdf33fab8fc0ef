/*
 * frontier.c - the shoot-out's plot: for each workload and round trip, two
 * panels with one point per strategy and store: calls that waited against
 * IDs a clean close wasted, and against IDs at risk on a crash (log
 * scales, +1 so that 0 shows). The lower-left frontier (no other point of
 * the same store both waits less and wastes less) is drawn as rings, and
 * the panel lists its strategies.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define PW 470              /* a panel */
#define PH 400
#define PX 60               /* plot area inside a panel */
#define PY 40
#define PLW 380
#define PLH 290
#define MAX_PANELS 32

static const char *const store_colors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                           "#9467bd", "#ff7f0e", "#8c564b"};
#define NCOLORS (sizeof store_colors / sizeof store_colors[0])

static void esc(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

static void label(FILE *f, double x, double y, int size, const char *anchor,
                  const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" "
            "text-anchor=\"%s\">", x, y, size, anchor);
    esc(f, s);
    fputs("</text>\n", f);
}

static double xval(const bench_result *r, int at_risk)
{
    return (double)(at_risk ? r->at_risk_ids : r->wasted_ids);
}

static double yval(const bench_result *r)
{
    return (double)r->waited_calls;
}

int bench_dominated(const bench_results *rs, size_t i, int at_risk)
{
    const bench_result *r = &rs->v[i];
    for (size_t j = 0; j < rs->n; j++) {
        const bench_result *o = &rs->v[j];
        if (j == i || !o->has_wasted || o->workload != r->workload ||
            o->rtt_ms_asked != r->rtt_ms_asked || strcmp(o->uri, r->uri) != 0)
            continue;
        double xo = xval(o, at_risk), xr = xval(r, at_risk);
        if (xo <= xr && yval(o) <= yval(r) && (xo < xr || yval(o) < yval(r)))
            return 1;
    }
    return 0;
}

/* The distinct stores (URIs) in order of appearance; returns the index of
 * r's. */
static size_t store_index(const bench_results *rs, const bench_result *r)
{
    size_t k = 0;
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *o = &rs->v[i];
        if (o == r)
            return k;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(rs->v[j].uri, o->uri) == 0;
        if (!seen && strcmp(o->uri, r->uri) == 0)
            return k;
        k += !seen;
    }
    return k;
}

static double scale(double v, double lhi, double len)
{
    return log10(v + 1) / lhi * len;
}

static void draw(FILE *f, const bench_results *rs, bench_workload w,
                 unsigned rtt, int at_risk, double x0, double y0)
{
    double xmax = 1, ymax = 1;
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        if (r->workload != w || r->rtt_ms_asked != rtt || !r->has_wasted)
            continue;
        xmax = xval(r, at_risk) > xmax ? xval(r, at_risk) : xmax;
        ymax = yval(r) > ymax ? yval(r) : ymax;
    }
    double lx = ceil(log10(xmax + 1)), ly = ceil(log10(ymax + 1));
    lx = lx < 1 ? 1 : lx;
    ly = ly < 1 ? 1 : ly;
    char t[160];
    snprintf(t, sizeof t, "%s, round trip %u ms: %s", bench_workload_name(w),
             rtt, at_risk ? "at risk" : "wasted");
    fprintf(f, "<g font-weight=\"bold\">");
    label(f, x0 + PX + PLW / 2.0, y0 + 24, 14, "middle", t);
    fputs("</g>\n", f);
    double px = x0 + PX, py = y0 + PY, bottom = py + PLH;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
            "fill=\"none\" stroke=\"#888\"/>\n", px, py, PLW, PLH);
    for (double e = 0; e <= lx; e++) {
        double x = px + e / lx * PLW;
        char s[32];
        snprintf(s, sizeof s, "%.0f", pow(10, e) - (e == 0));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#eee\"/>\n", x, py, x, bottom);
        label(f, x, bottom + 14, 10, "middle", s);
    }
    for (double e = 0; e <= ly; e++) {
        double y = bottom - e / ly * PLH;
        char s[32];
        snprintf(s, sizeof s, "%.0f", pow(10, e) - (e == 0));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#eee\"/>\n", px, y, px + PLW, y);
        label(f, px - 4, y + 4, 10, "end", s);
    }
    label(f, px + PLW / 2.0, bottom + 30, 11, "middle", at_risk
          ? "IDs at risk on a crash (log, +1)"
          : "IDs wasted at a clean close (log, +1)");
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
            "text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">"
            "calls that waited (log, +1)</text>\n", x0 + 16, py + PLH / 2.0,
            x0 + 16, py + PLH / 2.0);
    char front[300] = "frontier:";
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        if (r->workload != w || r->rtt_ms_asked != rtt || !r->has_wasted)
            continue;
        const char *color = store_colors[store_index(rs, r) % NCOLORS];
        double x = px + scale(xval(r, at_risk), lx, PLW);
        double y = bottom - scale(yval(r), ly, PLH);
        int front_pt = !bench_dominated(rs, i, at_risk);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"%s>"
                "<title>", x, y, color,
                front_pt ? " stroke=\"black\" stroke-width=\"2\"" : "");
        esc(f, r->strategy);
        fprintf(f, " on %s: %llu waits, %llu wasted, %llu at risk, p999 "
                "%.3f us</title></circle>\n", r->store,
                (unsigned long long)r->waited_calls,
                (unsigned long long)r->wasted_ids,
                (unsigned long long)r->at_risk_ids, (double)r->p999_ns / 1000);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"%s\">",
                x + 6, y - 4, color);
        esc(f, r->strategy);
        fputs("</text>\n", f);
        if (front_pt && strlen(front) + strlen(r->strategy) + 3 < sizeof front) {
            strcat(front, " ");
            strcat(front, r->strategy);
        }
    }
    label(f, px, bottom + 46, 10, "start", front);
}

int bench_frontier_svg(FILE *f, const bench_results *rs)
{
    bench_workload pw[MAX_PANELS];
    unsigned prtt[MAX_PANELS];
    size_t np = 0;
    for (size_t i = 0; i < rs->n && np < MAX_PANELS; i++) {
        const bench_result *r = &rs->v[i];
        size_t k = 0;
        while (k < np && !(pw[k] == r->workload && prtt[k] == r->rtt_ms_asked))
            k++;
        if (k == np) {
            pw[np] = r->workload;
            prtt[np++] = r->rtt_ms_asked;
        }
    }
    size_t cols = 2, rows = np; /* wasted | at risk, a row per panel */
    double w = (double)cols * PW + 20, h = (double)rows * PH + 80;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\">\n<rect width=\"100%%\" "
            "height=\"100%%\" fill=\"white\"/>\n", w, h, w, h);
    fputs("<g font-weight=\"bold\">", f);
    label(f, w / 2, 22, 16, "middle", "idprime bench: strategies, calls that "
          "waited against IDs wasted and at risk (lower left is better; "
          "rings: the frontier)");
    fputs("</g>\n", f);
    /* the legend: one colour per store */
    double lx = 20;
    for (size_t i = 0; i < rs->n; i++) {
        const bench_result *r = &rs->v[i];
        size_t k = store_index(rs, r);
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = strcmp(rs->v[j].uri, r->uri) != 0;
        if (!first)
            continue;
        fprintf(f, "<rect x=\"%.1f\" y=\"34\" width=\"10\" height=\"10\" "
                "fill=\"%s\"/>\n", lx, store_colors[k % NCOLORS]);
        label(f, lx + 14, 43, 11, "start", r->uri);
        lx += 30 + 6.5 * (double)strlen(r->uri);
    }
    for (size_t p = 0; p < np; p++)
        for (int k = 0; k < 2; k++)
            draw(f, rs, pw[p], prtt[p], k, 10 + (double)k * PW,
                 60 + (double)p * PH);
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
