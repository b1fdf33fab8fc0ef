/*
 * cmd_bench.c - `idprime bench`: parses the options, checks every URI
 * before the first run, runs each URI through the bench library and writes
 * the table, JSON, CSV and plot. With --strategies, the shoot-out: every
 * strategy (a config script with its batch policy) on every URI, workload
 * and round trip. The work is in bench/.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "progress.h"
#include "idprime/config.h"

static const char bench_usage[] =
    "usage: idprime bench [options] [URI...]\n"
    "Runs a workload on each store URI (the default store when none is\n"
    "given; the word 'default' names it among others), each run paired with\n"
    "the same run at metaprime=0 as its baseline, and prints a table.\n"
    "\n"
    "  --workload W        files (default), burst, steady, hotpath,\n"
    "                      counters (--count counters in one client, one ID\n"
    "                      each, and the cost of opening a client), bursty\n"
    "                      (1 s cycles: a quarter on at 4x --rate, then off),\n"
    "                      ramp (0 to 2x --rate over --seconds) or trace\n"
    "                      (--trace replayed); with --strategies a list\n"
    "                      W,W,... (steady,bursty,ramp and trace if --trace)\n"
    "  -n, --count N       files: files (1000); burst: IDs (1000000);\n"
    "                      hotpath: IDs per thread and round (10000000)\n"
    "  --chunks K          files: chunk IDs per file, besides 1 inode (1)\n"
    "  --rate R            steady, bursty, ramp: mean IDs/s, all threads\n"
    "                      together (10000)\n"
    "  --seconds T         steady, bursty, ramp: how long (5)\n"
    "  --trace FILE.csv    trace: rows \"seconds,rate\" (that rate until the\n"
    "                      next row; the last row ends it) or \"seconds\" (one\n"
    "                      ID due at each)\n"
    "  --strategies F.lua  the shoot-out: each strategy (a config script and\n"
    "                      its batch policy, e.g. bench/strategies/*.lua; a\n"
    "                      comma list, or .lua files among the URIs) on every\n"
    "                      URI, workload and round trip; no baselines. The\n"
    "                      plot is then waits against IDs wasted and at risk\n"
    "  --threads T         worker threads, 1..64 (1)\n"
    "  --rtt-ms MS         round trip to inject: redis and memcached behind\n"
    "                      the delay proxy on 127.0.0.1, mem (and sqlite where\n"
    "                      it can) through delay_ms; the table shows the one\n"
    "                      measured. With --strategies a list MS,MS,... (1,30)\n"
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
    "after it and must agree with the engine's. Every run also reports the IDs\n"
    "a clean close wasted (the store's value after it, above the last ID handed\n"
    "out; read by a second client) and those at risk on a crash (fetched above\n"
    "the last ID handed out, before the close).\n";

enum {
    OPT_WORKLOAD = 1000, OPT_CHUNKS, OPT_RATE, OPT_SECONDS, OPT_THREADS,
    OPT_RTT, OPT_NO_BASELINE, OPT_PARAM, OPT_ROUNDTRIPS, OPT_TIME_LIMIT,
    OPT_JSON, OPT_CSV, OPT_PLOT, OPT_NO_PROGRESS, OPT_TRACE, OPT_STRATEGIES
};

#define MAX_PARAMS 32
#define MAX_STRATEGIES 64
#define MAX_LIST 8          /* workloads, round trips of the shoot-out */

typedef struct bench_args {
    bench_config cfg;
    const char *params[MAX_PARAMS + 1];
    int nparams;
    const char *json, *csv, *plot;
    int no_progress;
    /* which workload-specific options were given, to refuse misplaced ones */
    const char *given_chunks, *given_rate, *given_seconds, *given_roundtrips;
    /* the shoot-out */
    int shootout;
    const char *strategies[MAX_STRATEGIES];
    int nstrategies;
    bench_workload workloads[MAX_LIST];
    int nworkloads;
    unsigned rtts[MAX_LIST];
    int nrtts;
} bench_args;

/* Splits a comma list into items (the string is the caller's to change).
 * Returns the count, or -1 when more than `max`. */
static int split(char *list, const char **items, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(list, ",", &save); s != NULL;
         s = strtok_r(NULL, ",", &save)) {
        if (n == max)
            return -1;
        items[n++] = s;
    }
    return n;
}

/* Adds a strategy file; prints the error and returns -1 when too many. */
static int add_strategy(bench_args *a, const char *path)
{
    if (a->nstrategies == MAX_STRATEGIES) {
        cli_error("bench", "--strategies: at most %d", MAX_STRATEGIES);
        return -1;
    }
    a->strategies[a->nstrategies++] = path;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n > m && strcmp(s + n - m, tail) == 0;
}

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

/* The shoot-out's workloads and round trips when none were given, and what
 * it refuses. Prints the error and returns -1 when something is wrong. */
static int shootout_defaults(bench_args *a, const cli_common *co)
{
    bench_config *cfg = &a->cfg;
    if (co->config != NULL) {
        cli_error("bench", "--config and --strategies: each strategy is a "
                  "config script of its own");
        return -1;
    }
    if (a->nstrategies == 0) {
        cli_error("bench", "--strategies: no strategy given");
        return -1;
    }
    if (a->nworkloads == 0) {
        const bench_workload def[] = {BENCH_STEADY, BENCH_BURSTY, BENCH_RAMP,
                                      BENCH_TRACE};
        a->nworkloads = cfg->trace != NULL ? 4 : 3;
        memcpy(a->workloads, def, sizeof def);
    }
    for (int i = 0; i < a->nworkloads; i++) {
        if (a->workloads[i] == BENCH_HOTPATH ||
            a->workloads[i] == BENCH_COUNTERS) {
            cli_error("bench", "--strategies: --workload %s measures no "
                      "batching strategy (use steady, bursty, ramp, trace, "
                      "files or burst)", bench_workload_name(a->workloads[i]));
            return -1;
        }
        if (a->workloads[i] == BENCH_STEADY && cfg->count != 0) {
            cli_error("bench", "--count applies to --workload files and "
                      "burst only (this is steady)");
            return -1;
        }
    }
    if (a->nrtts == 0) {
        a->rtts[0] = 1;
        a->rtts[1] = 30;
        a->nrtts = 2;
    }
    cfg->baseline = 0; /* metaprime=0 is a strategy of its own */
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
        {"trace", required_argument, NULL, OPT_TRACE},
        {"strategies", required_argument, NULL, OPT_STRATEGIES},
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
        case OPT_WORKLOAD: {
            const char *items[MAX_LIST];
            int n = split(optarg, items, MAX_LIST);
            if (n <= 0) {
                cli_error("bench", "--workload: expected W or W,W,... (at "
                          "most %d)", MAX_LIST);
                return EXIT_USAGE;
            }
            for (int i = 0; i < n; i++) {
                if (bench_workload_parse(items[i], &a->workloads[i]) != 0) {
                    cli_error("bench", "--workload '%s': expected files, "
                              "burst, steady, hotpath, counters, bursty, "
                              "ramp or trace", items[i]);
                    return EXIT_USAGE;
                }
            }
            a->nworkloads = n;
            cfg->workload = a->workloads[0];
            break;
        }
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
        case OPT_RTT: {
            const char *items[MAX_LIST];
            int n = split(optarg, items, MAX_LIST);
            if (n <= 0) {
                cli_error("bench", "--rtt-ms: expected MS or MS,MS,... (at "
                          "most %d)", MAX_LIST);
                return EXIT_USAGE;
            }
            for (int i = 0; i < n; i++) {
                if (number("--rtt-ms", items[i], 0, 60000, &v) != 0)
                    return EXIT_USAGE;
                a->rtts[i] = (unsigned)v;
            }
            a->nrtts = n;
            cfg->rtt_ms = a->rtts[0];
            break;
        }
        case OPT_TRACE:
            cfg->trace = optarg;
            break;
        case OPT_STRATEGIES: {
            const char *items[MAX_STRATEGIES];
            int n = split(optarg, items, MAX_STRATEGIES);
            if (n <= 0) {
                cli_error("bench", "--strategies: expected FILE.lua[,...]");
                return EXIT_USAGE;
            }
            for (int i = 0; i < n; i++)
                if (add_strategy(a, items[i]) != 0)
                    return EXIT_USAGE;
            a->shootout = 1;
            break;
        }
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
    if ((a->nworkloads > 1 || a->nrtts > 1) && !a->shootout) {
        cli_error("bench", "%s: a list needs --strategies (one workload and "
                  "one round trip otherwise)", a->nworkloads > 1
                  ? "--workload" : "--rtt-ms");
        return EXIT_USAGE;
    }
    /* An option of another workload is a mistake worth naming. */
    const char *wrong = NULL, *own = NULL;
    int timed = cfg->workload == BENCH_STEADY ||
                cfg->workload == BENCH_BURSTY || cfg->workload == BENCH_RAMP;
    if (a->shootout)
        ; /* several workloads: each takes what it uses */
    else if (cfg->workload != BENCH_FILES && a->given_chunks)
        wrong = a->given_chunks, own = "files";
    else if (!timed && (a->given_rate || a->given_seconds))
        wrong = a->given_rate ? a->given_rate : a->given_seconds,
        own = "steady, bursty and ramp";
    else if (cfg->workload != BENCH_TRACE && cfg->trace != NULL)
        wrong = "--trace", own = "trace";
    else if (cfg->workload != BENCH_HOTPATH && a->given_roundtrips)
        wrong = a->given_roundtrips, own = "hotpath";
    else if ((timed || cfg->workload == BENCH_TRACE) && cfg->count != 0)
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
        if (a->shootout && strstr(argv[i], "://") == NULL &&
            ends_with(argv[i], ".lua")) {
            /* --strategies a.lua b.lua ...: the shell's expansion */
            if (add_strategy(a, argv[i]) != 0)
                return EXIT_USAGE;
            continue;
        }
        if (strcmp(argv[i], "default") != 0 && !cli_is_uri(argv[i])) {
            cli_error("bench", "unexpected argument '%s' (expected a store "
                      "URI, scheme://..., or 'default')", argv[i]);
            return EXIT_USAGE;
        }
    }
    a->params[a->nparams] = NULL;
    cfg->params = a->params;
    if (a->shootout && shootout_defaults(a, co) != 0)
        return EXIT_USAGE;
    char msg[256];
    for (int i = 0; i < (a->shootout ? a->nworkloads : 1); i++) {
        if (a->shootout)
            cfg->workload = a->workloads[i];
        if (bench_config_check(cfg, msg, sizeof msg) != BENCH_OK) {
            cli_error("bench", "%s", msg);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* The positional argument is a strategy, not a URI. */
static int is_strategy_arg(const bench_args *a, const char *arg)
{
    return a->shootout && strstr(arg, "://") == NULL && ends_with(arg, ".lua");
}

/* The name a strategy is reported under: its file's name without .lua. */
static void strategy_name(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t n = strlen(base);
    if (ends_with(base, ".lua"))
        n -= 4;
    snprintf(out, len, "%.*s", (int)n, base);
}

/* The shoot-out's strategies, loaded before anything else is done. */
typedef struct strategies {
    idp_config *cfg[MAX_STRATEGIES];
    char names[MAX_STRATEGIES][64];
    int n;
} strategies;

static void strategies_free(strategies *st)
{
    for (int i = 0; i < st->n; i++)
        idp_config_free(st->cfg[i]);
    st->n = 0;
}

/* Loads every strategy, so that a bad one is named before any run. Each
 * script gets "seconds=N" (--seconds) as its `...`, to scale rules written
 * in minutes to the run. Returns 0, or EXIT_USAGE after the message. */
static int strategies_load(const bench_args *a, cli_common *co,
                           strategies *st)
{
    char secs[32];
    snprintf(secs, sizeof secs, "seconds=%u", a->cfg.seconds);
    const char *args[] = {secs, NULL};
    idp_config_opts o = {.size = sizeof o, .log = cli_log, .log_ud = co,
                         .args = args};
    for (st->n = 0; st->n < a->nstrategies; st->n++) {
        idp_error e;
        idp_config *c = idp_config_load(a->strategies[st->n], &o, &e);
        if (c == NULL) {
            cli_error("bench", "--strategies: %s", e.msg);
            strategies_free(st);
            return EXIT_USAGE;
        }
        st->cfg[st->n] = c;
        strategy_name(a->strategies[st->n], st->names[st->n],
                      sizeof st->names[0]);
    }
    return 0;
}

/* The shoot-out: each strategy on every URI, round trip and workload.
 * Returns 0, EXIT_USAGE or EXIT_WORK (after the messages). */
static int run_shootout(bench_args *a, const strategies *st, char **uris,
                        int nuris, bench_results *rs)
{
    bench_config *cfg = &a->cfg;
    int rc = 0;
    char msg[512];
    for (int s = 0; s < st->n; s++) {
        idp_options base = {.size = sizeof base};
        idp_config_apply(st->cfg[s], &base);
        cfg->options = &base;
        cfg->strategy = st->names[s];
        for (int u = 0; u < nuris; u++)
            for (int r = 0; r < a->nrtts; r++)
                for (int w = 0; w < a->nworkloads; w++) {
                    cfg->workload = a->workloads[w];
                    cfg->rtt_ms = a->rtts[r];
                    int x = bench_run(cfg, uris[u], rs, msg, sizeof msg);
                    if (x != BENCH_OK) {
                        cli_error("bench", "strategy %s, %s at %u ms: %s",
                                  st->names[s],
                                  bench_workload_name(cfg->workload),
                                  cfg->rtt_ms, msg);
                        rc = x == BENCH_EUSAGE ? EXIT_USAGE : EXIT_WORK;
                    }
                }
        cfg->options = NULL;
    }
    cfg->strategy = NULL;
    return rc;
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
    /* SIGINT/SIGTERM stop the run going on and start no other; what was
     * measured is still written (main() then ends by the signal) */
    bench_set_interrupt(cli_stop_flag());
    cfg->log = cli_log;
    cfg->log_ud = &co;
    strategies st = {.n = 0};
    if (a.shootout && (rc = strategies_load(&a, &co, &st)) != 0)
        return rc;
    if (!a.no_progress && isatty(STDERR_FILENO))
        cfg->progress = stderr;
    /* the raw clients write to sockets: a reset must be an error, not death */
    signal(SIGPIPE, SIG_IGN);

    const char *def[] = {NULL, NULL};
    /* the URIs: the positional arguments that are not strategies */
    char **kept = calloc((size_t)(argc - optind) + 1, sizeof *kept);
    if (kept == NULL) {
        cli_error("bench", "out of memory");
        strategies_free(&st);
        return EXIT_WORK;
    }
    char **uris = kept;
    int nuris = 0;
    for (int i = optind; i < argc; i++)
        if (!is_strategy_arg(&a, argv[i]))
            kept[nuris++] = argv[i];
    char msg[512];
    idp_options base = {.size = sizeof base};
    if (co.config != NULL) {
        /* its settings and policy for every client; its uri if none given */
        const char *uri = nuris > 0 ? uris[0] : NULL;
        if (cli_config(&co, &base, &uri, msg, sizeof msg) != 0) {
            cli_error("bench", "%s", msg);
            free(kept);
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
    for (int r = 0; r < a.nrtts; r++) /* the shoot-out's largest round trip */
        if (a.rtts[r] > cfg->rtt_ms)
            cfg->rtt_ms = a.rtts[r];
    for (int i = 0; i < nuris; i++) {
        if ((rc = bench_check_uri(cfg, uris[i], msg, sizeof msg)) != BENCH_OK) {
            cli_error("bench", "%s", msg);
            free(kept);
            strategies_free(&st);
            return rc == BENCH_EUSAGE ? EXIT_USAGE : EXIT_WORK;
        }
    }
    FILE *json = NULL, *csv = NULL, *plot = NULL;
    if ((a.json && (json = open_out("--json", a.json)) == NULL) ||
        (a.csv && (csv = open_out("--csv", a.csv)) == NULL) ||
        (a.plot && (plot = open_out("--plot", a.plot)) == NULL)) {
        close_out("JSON", a.json, json, 0);
        close_out("CSV", a.csv, csv, 0);
        free(kept);
        strategies_free(&st);
        return EXIT_WORK;
    }

    bench_results rs = {0};
    if (a.shootout)
        rc = run_shootout(&a, &st, uris, nuris, &rs);
    for (int i = 0; !a.shootout && i < nuris; i++) {
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
    free(kept);
    strategies_free(&st);
    return rc != 0 ? rc : wrc;
}
