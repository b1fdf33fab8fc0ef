/*
 * cmd_bench.c - `idprime bench`: parses the options, checks every URI
 * before the first run, runs each URI through the bench library and writes
 * the table, JSON, CSV and plot. The work is in bench/.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

static const char bench_usage[] =
    "usage: idprime bench [options] [URI...]\n"
    "Runs a workload on each store URI (the default store when none is\n"
    "given; the word 'default' names it among others), each run paired with\n"
    "the same run at metaprime=0 as its baseline, and prints a table.\n"
    "\n"
    "  --workload W        files (default), burst, steady, hotpath or\n"
    "                      counters (--count counters in one client, one ID\n"
    "                      each, and the cost of opening a client)\n"
    "  -n, --count N       files: files (1000); burst: IDs (1000000);\n"
    "                      hotpath: IDs per thread and round (10000000)\n"
    "  --chunks K          files: chunk IDs per file, besides 1 inode (1)\n"
    "  --rate R            steady: IDs/s, all threads together (10000)\n"
    "  --seconds T         steady: how long (5)\n"
    "  --threads T         worker threads, 1..64 (1)\n"
    "  --rtt-ms MS         round trip to inject: redis and memcached behind\n"
    "                      the delay proxy on 127.0.0.1, mem (and sqlite where\n"
    "                      it can) through delay_ms; the table shows the one\n"
    "                      measured\n"
    "  --no-baseline       no metaprime=0 run\n"
    "  --param KEY=VALUE   a URI parameter set on every URI (repeatable),\n"
    "                      e.g. --param low_watermark=0\n"
    "  --roundtrips M      hotpath: round trips per side in the engine\n"
    "                      against raw client comparison (about 1 s worth)\n"
    "  --time-limit S      stop a run after S seconds (600)\n"
    "  --json FILE         the runs as JSON (- for stdout: the table then\n"
    "                      goes to stderr)\n"
    "  --csv FILE          the runs as CSV (- for stdout, likewise)\n"
    "  --plot FILE.svg     the comparison as an SVG plot\n"
    "  --no-progress       no progress bar (drawn on a TTY for runs over 1 s)\n"
    "  --config FILE.lua   a config script's settings and batch policy for\n"
    "                      every run (its uri when no URI is given)\n"
    "  --metrics FILE      Prometheus text of the last batched run\n"
    "\n"
    "Each run uses a fresh key prefix (bench.TIME.PID.N.) under any prefix\n"
    "the URI gives; the store's own count of increments is read before and\n"
    "after it and must agree with the engine's.\n";

enum {
    OPT_WORKLOAD = 1000, OPT_CHUNKS, OPT_RATE, OPT_SECONDS, OPT_THREADS,
    OPT_RTT, OPT_NO_BASELINE, OPT_PARAM, OPT_ROUNDTRIPS, OPT_TIME_LIMIT,
    OPT_JSON, OPT_CSV, OPT_PLOT, OPT_NO_PROGRESS
};

#define MAX_PARAMS 32

typedef struct bench_args {
    bench_config cfg;
    const char *params[MAX_PARAMS + 1];
    int nparams;
    const char *json, *csv, *plot;
    int no_progress;
    /* which workload-specific options were given, to refuse misplaced ones */
    const char *given_chunks, *given_rate, *given_seconds, *given_roundtrips;
} bench_args;

/* Parses a number option; prints the error and returns -1 when bad. */
static int number(const char *opt, const char *arg, unsigned long long min,
                  unsigned long long max, unsigned long long *out)
{
    if (cli_number(arg, min, max, out) == 0)
        return 0;
    cli_error("bench", "%s '%s': expected a whole number in %llu..%llu", opt,
              arg, min, max);
    return -1;
}

/* Checks that an output FILE can be created now, not after the runs. */
static FILE *open_out(const char *opt, const char *path)
{
    if (strcmp(path, "-") == 0)
        return stdout;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        cli_error("bench", "%s: cannot write %s: %s", opt, path, strerror(errno));
    return f;
}

static int close_out(const char *what, const char *path, FILE *f, int wrote)
{
    if (f == NULL)
        return 0;
    int bad = wrote != 0 || ferror(f);
    int e = bad ? errno : 0;  /* the failed write's, if it was the last call */
    errno = 0;
    if ((f == stdout ? fflush(f) : fclose(f)) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        cli_error("bench", "cannot write the %s to %s: %s", what, path,
                  strerror(e != 0 ? e : EIO));
        return EXIT_WORK;
    }
    return 0;
}

/* Returns 0, -1 after --help, or EXIT_USAGE. */
static int parse_args(int argc, char **argv, bench_args *a, cli_common *co)
{
    static const struct option longs[] = {
        {"workload", required_argument, NULL, OPT_WORKLOAD},
        {"count", required_argument, NULL, 'n'},
        {"chunks", required_argument, NULL, OPT_CHUNKS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"rtt-ms", required_argument, NULL, OPT_RTT},
        {"no-baseline", no_argument, NULL, OPT_NO_BASELINE},
        {"param", required_argument, NULL, OPT_PARAM},
        {"roundtrips", required_argument, NULL, OPT_ROUNDTRIPS},
        {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
        {"json", required_argument, NULL, OPT_JSON},
        {"csv", required_argument, NULL, OPT_CSV},
        {"plot", required_argument, NULL, OPT_PLOT},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        CLI_COMMON_LONGOPTS,
        {0}};
    bench_config *cfg = &a->cfg;
    unsigned long long v;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "n:", longs,
                              NULL)) != -1) {
        int r = cli_common_opt(opt, co, bench_usage);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        switch (opt) {
        case OPT_WORKLOAD:
            if (bench_workload_parse(optarg, &cfg->workload) != 0) {
                cli_error("bench", "--workload '%s': expected files, burst, "
                          "steady, hotpath or counters", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'n':
            if (number("--count", optarg, 1, 1000000000000ULL, &v) != 0)
                return EXIT_USAGE;
            cfg->count = v;
            break;
        case OPT_CHUNKS:
            if (number("--chunks", optarg, 0, 1000000, &v) != 0)
                return EXIT_USAGE;
            cfg->chunks = v;
            a->given_chunks = "--chunks";
            break;
        case OPT_RATE:
            if (number("--rate", optarg, 1, 1000000000, &v) != 0)
                return EXIT_USAGE;
            cfg->rate = v;
            a->given_rate = "--rate";
            break;
        case OPT_SECONDS:
            if (number("--seconds", optarg, 1, 86400, &v) != 0)
                return EXIT_USAGE;
            cfg->seconds = (unsigned)v;
            a->given_seconds = "--seconds";
            break;
        case OPT_THREADS:
            if (number("--threads", optarg, 1, BENCH_MAX_THREADS, &v) != 0)
                return EXIT_USAGE;
            cfg->threads = (unsigned)v;
            break;
        case OPT_RTT:
            if (number("--rtt-ms", optarg, 0, 60000, &v) != 0)
                return EXIT_USAGE;
            cfg->rtt_ms = (unsigned)v;
            break;
        case OPT_NO_BASELINE:
            cfg->baseline = 0;
            break;
        case OPT_PARAM:
            if (strchr(optarg, '=') == NULL || optarg[0] == '=') {
                cli_error("bench", "--param '%s': expected KEY=VALUE", optarg);
                return EXIT_USAGE;
            }
            if (strchr(optarg, '&') != NULL) {
                cli_error("bench", "--param '%s': one KEY=VALUE per --param "
                          "(no '&')", optarg);
                return EXIT_USAGE;
            }
            if (a->nparams == MAX_PARAMS) {
                cli_error("bench", "--param: at most %d", MAX_PARAMS);
                return EXIT_USAGE;
            }
            a->params[a->nparams++] = optarg;
            break;
        case OPT_ROUNDTRIPS:
            if (number("--roundtrips", optarg, 20, 10000000, &v) != 0)
                return EXIT_USAGE;
            cfg->roundtrips = v;
            a->given_roundtrips = "--roundtrips";
            break;
        case OPT_TIME_LIMIT:
            if (number("--time-limit", optarg, 1, 86400, &v) != 0)
                return EXIT_USAGE;
            cfg->time_limit = (unsigned)v;
            break;
        case OPT_JSON:
            a->json = optarg;
            break;
        case OPT_CSV:
            a->csv = optarg;
            break;
        case OPT_PLOT: {
            size_t n = strlen(optarg);
            if (n < 5 || strcmp(optarg + n - 4, ".svg") != 0) {
                cli_error("bench", "--plot '%s': the plot is an SVG; give a "
                          "FILE.svg", optarg);
                return EXIT_USAGE;
            }
            a->plot = optarg;
            break;
        }
        case OPT_NO_PROGRESS:
            a->no_progress = 1;
            break;
        default:
            /* getopt_long answers '?' for both; optopt tells them apart */
            if (optopt == 0)
                cli_error("bench", "unknown option '%s'", argv[optind - 1]);
            else if (optopt >= OPT_WORKLOAD || strchr("nM", optopt) != NULL)
                cli_error("bench", "option '%s' needs a value",
                          argv[optind - 1]);
            else
                cli_error("bench", "unknown option '-%c'", optopt);
            fputs(bench_usage, stderr);
            return EXIT_USAGE;
        }
    }
    /* An option of another workload is a mistake worth naming. */
    const char *wrong = NULL, *own = NULL;
    if (cfg->workload != BENCH_FILES && a->given_chunks)
        wrong = a->given_chunks, own = "files";
    else if (cfg->workload != BENCH_STEADY && (a->given_rate || a->given_seconds))
        wrong = a->given_rate ? a->given_rate : a->given_seconds, own = "steady";
    else if (cfg->workload != BENCH_HOTPATH && a->given_roundtrips)
        wrong = a->given_roundtrips, own = "hotpath";
    else if (cfg->workload == BENCH_STEADY && cfg->count != 0)
        wrong = "--count", own = "files, burst, hotpath and counters";
    if (wrong != NULL) {
        cli_error("bench", "%s applies to --workload %s only (this is %s)",
                  wrong, own, bench_workload_name(cfg->workload));
        return EXIT_USAGE;
    }
    if (a->json != NULL && a->csv != NULL && strcmp(a->json, "-") == 0 &&
        strcmp(a->csv, "-") == 0) {
        cli_error("bench", "--json - and --csv -: only one can go to stdout");
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "default") != 0 && !cli_is_uri(argv[i])) {
            cli_error("bench", "unexpected argument '%s' (expected a store "
                      "URI, scheme://..., or 'default')", argv[i]);
            return EXIT_USAGE;
        }
    }
    a->params[a->nparams] = NULL;
    cfg->params = a->params;
    char msg[256];
    if (bench_config_check(cfg, msg, sizeof msg) != BENCH_OK) {
        cli_error("bench", "%s", msg);
        return EXIT_USAGE;
    }
    return 0;
}

static int write_metrics(const bench_results *rs, const cli_common *co)
{
    if (co->metrics == NULL)
        return 0;
    const char *text = NULL;
    for (size_t i = 0; i < rs->n; i++)
        if (rs->v[i].metaprime && rs->v[i].metrics != NULL)
            text = rs->v[i].metrics;
    if (text == NULL)
        return 0;
    FILE *f = open_out("--metrics", co->metrics);
    if (f == NULL)
        return EXIT_WORK;
    fputs(text, f);
    return close_out("metrics", co->metrics, f, 0);
}

int cmd_bench(int argc, char **argv)
{
    bench_args a;
    memset(&a, 0, sizeof a);
    bench_config_defaults(&a.cfg);
    cli_common co = {0};
    int rc = parse_args(argc, argv, &a, &co);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    bench_config *cfg = &a.cfg;
    cfg->log = cli_log;
    cfg->log_ud = &co;
    if (!a.no_progress && isatty(STDERR_FILENO))
        cfg->progress = stderr;
    /* the raw clients write to sockets: a reset must be an error, not death */
    signal(SIGPIPE, SIG_IGN);

    const char *def[] = {NULL, NULL};
    char **uris = argv + optind;
    int nuris = argc - optind;
    char msg[512];
    idp_options base = {.size = sizeof base};
    if (co.config != NULL) {
        /* its settings and policy for every client; its uri if none given */
        const char *uri = nuris > 0 ? uris[0] : NULL;
        if (cli_config(&co, &base, &uri, msg, sizeof msg) != 0) {
            cli_error("bench", "%s", msg);
            return EXIT_USAGE;
        }
        cfg->options = &base;
        if (nuris == 0 && uri != NULL) {
            def[0] = uri;
            uris = (char **)def;
            nuris = 1;
        }
    }
    if (nuris == 0) {
        def[0] = cli_default_uri();
        uris = (char **)def;
        nuris = 1;
    }
    for (int i = 0; i < nuris; i++)
        if (strcmp(uris[i], "default") == 0)
            uris[i] = (char *)cli_default_uri();
    for (int i = 0; i < nuris; i++) {
        if ((rc = bench_check_uri(cfg, uris[i], msg, sizeof msg)) != BENCH_OK) {
            cli_error("bench", "%s", msg);
            return rc == BENCH_EUSAGE ? EXIT_USAGE : EXIT_WORK;
        }
    }
    FILE *json = NULL, *csv = NULL, *plot = NULL;
    if ((a.json && (json = open_out("--json", a.json)) == NULL) ||
        (a.csv && (csv = open_out("--csv", a.csv)) == NULL) ||
        (a.plot && (plot = open_out("--plot", a.plot)) == NULL)) {
        close_out("JSON", a.json, json, 0);
        close_out("CSV", a.csv, csv, 0);
        return EXIT_WORK;
    }

    bench_results rs = {0};
    for (int i = 0; i < nuris; i++) {
        int r = bench_run(cfg, uris[i], &rs, msg, sizeof msg);
        if (r != BENCH_OK) {
            cli_error("bench", "%s", msg);
            rc = r == BENCH_EUSAGE ? EXIT_USAGE : EXIT_WORK;
        }
    }
    FILE *table = json == stdout || csv == stdout ? stderr : stdout;
    bench_table(table, &rs);
    int wrc = 0, r;
    if (json != NULL && (r = close_out("JSON", a.json, json, bench_json(json, &rs))))
        wrc = r;
    if (csv != NULL && (r = close_out("CSV", a.csv, csv, bench_csv(csv, &rs))))
        wrc = r;
    if (plot != NULL && (r = close_out("plot", a.plot, plot, bench_svg(plot, &rs))))
        wrc = r;
    if ((r = write_metrics(&rs, &co)) != 0)
        wrc = r;
    if ((r = cli_flush_output("bench", 0)) != 0 && wrc == 0)
        wrc = r;
    bench_results_free(&rs);
    return rc != 0 ? rc : wrc;
}
