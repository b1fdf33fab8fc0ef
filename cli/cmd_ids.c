/*
 * cmd_ids.c - the commands that work on counters: next, incr, get; and
 * plugins.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Parses the common options and splits [URI] off the positional args.
 * Returns -1 on done (help), EXIT_USAGE on bad usage, else 0 with
 * *uri and the remaining positionals in argv[optind..]. */
static int parse(int argc, char **argv, const char *text, const char *shorts,
                 const struct option *longs, cli_common *co,
                 int (*own)(int, void *), void *ud, const char **uri)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        int r = cli_common_opt(opt, co, text);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if (own == NULL || own(opt, ud) != 0) {
            fputs(text, stderr);
            return EXIT_USAGE;
        }
    }
    *uri = NULL;
    if (optind < argc && cli_is_uri(argv[optind]))
        *uri = argv[optind++];
    return 0;
}

/* Checks the positionals left in argv[optind..] against `names` (NULL-
 * terminated): returns 0, or prints what is missing or extra and the usage
 * and returns EXIT_USAGE. */
static int positionals(const char *cmd, int argc, char **argv,
                       const char *const *names, const char *text)
{
    int want = 0;
    while (names[want] != NULL)
        want++;
    int have = argc - optind;
    if (have == want)
        return 0;
    if (have < want)
        cli_error(cmd, "missing %s", names[have]);
    else
        cli_error(cmd, "unexpected argument '%s'", argv[optind + want]);
    fputs(text, stderr);
    return EXIT_USAGE;
}

/* Opens the client and the counter; returns the client or NULL. */
static idp_client *open_counter(const char *cmd, const char *uri,
                                const char *name, const cli_common *co,
                                idp_counter **ctr, int *rc)
{
    idp_client *c = cli_open(cmd, uri, co, rc);
    if (c == NULL)
        return NULL;
    idp_error err;
    if ((*ctr = idp_counter_get(c, name, &err)) == NULL) {
        cli_error(cmd, "%s", err.msg);
        *rc = EXIT_USAGE;
        idp_close(c);
        return NULL;
    }
    return c;
}

/* Writes metrics, flushes the output (`werr`: the errno of a write that
 * already failed, or 0), closes, and folds the exit codes. */
static int finish(const char *cmd, idp_client *c, const cli_common *co, int rc,
                  int werr)
{
    int mrc = cli_write_metrics(cmd, c, co);
    int orc = cli_flush_output(cmd, werr);
    idp_close(c);
    return rc != 0 ? rc : orc != 0 ? orc : mrc;
}

/* Writes id and a newline into line (24 bytes); returns the length. */
static size_t format_id(char *line, uint64_t id)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id != 0);
    for (size_t i = 0; i < n; i++)
        line[i] = digits[n - 1 - i];
    line[n] = '\n';
    return n + 1;
}

static const char next_usage[] =
    "usage: idprime next [URI] COUNTER [-n N] [--metrics FILE]\n"
    "Prints N (default 1) new IDs of COUNTER, one a line. SIGINT/SIGTERM\n"
    "stop it after a whole line; the client still gives back what it did\n"
    "not print, and --metrics is still written.\n";

static int next_opt(int opt, void *ud)
{
    if (opt != 'n')
        return -1;
    if (cli_number(optarg, 1, 1000000000ULL, ud) != 0) {
        cli_error("next", "-n '%s': expected a whole number in 1..1000000000",
                  optarg);
        exit(EXIT_USAGE);
    }
    return 0;
}

int cmd_next(int argc, char **argv)
{
    static const struct option longs[] = {
        {"count", required_argument, NULL, 'n'}, CLI_COMMON_LONGOPTS, {0}};
    cli_common co = {0};
    unsigned long long n = 1;
    const char *uri;
    int rc = parse(argc, argv, next_usage, CLI_COMMON_SHORTOPTS "n:", longs,
                   &co, next_opt, &n, &uri);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    static const char *const args[] = {"COUNTER", NULL};
    if ((rc = positionals("next", argc, argv, args, next_usage)) != 0)
        return rc;
    idp_counter *ctr;
    idp_client *c = open_counter("next", uri, argv[optind], &co, &ctr, &rc);
    if (c == NULL)
        return rc;
    int werr = 0;
    /* hot: one ID a turn; an interrupt ends the loop between two IDs, so
     * every ID taken is printed as a whole line */
    for (unsigned long long i = 0; i < n && !cli_interrupted(); i++) {
        uint64_t id;
        idp_error err;
        if (idp_next(ctr, &id, &err) != IDP_OK) {
            cli_error("next", "%s", err.msg);
            rc = EXIT_WORK;
            break;
        }
        char line[24];
        /* stop at the first failed write: no more IDs taken for nothing */
        if ((werr = cli_out_line(line, format_id(line, id))) != 0)
            break;
    }
    int ferr = cli_out_flush("next");
    if (werr == 0)
        werr = ferr;
    return finish("next", c, &co, rc, werr);
}

static const char incr_usage[] =
    "usage: idprime incr [URI] COUNTER DELTA [--metrics FILE]\n"
    "Allocates DELTA consecutive IDs (INCRBY) and prints the last one, v;\n"
    "the caller owns v-DELTA+1 .. v.\n";

int cmd_incr(int argc, char **argv)
{
    static const struct option longs[] = {CLI_COMMON_LONGOPTS, {0}};
    cli_common co = {0};
    const char *uri;
    int rc = parse(argc, argv, incr_usage, CLI_COMMON_SHORTOPTS, longs, &co,
                   NULL, NULL, &uri);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    static const char *const args[] = {"COUNTER", "DELTA", NULL};
    if ((rc = positionals("incr", argc, argv, args, incr_usage)) != 0)
        return rc;
    unsigned long long delta;
    if (cli_number(argv[optind + 1], 1, IDP_MAX_VALUE, &delta) != 0) {
        cli_error("incr", "DELTA '%s': expected a whole number in "
                  "1..9223372036854775807", argv[optind + 1]);
        return EXIT_USAGE;
    }
    idp_counter *ctr;
    idp_client *c = open_counter("incr", uri, argv[optind], &co, &ctr, &rc);
    if (c == NULL)
        return rc;
    uint64_t last;
    idp_error err;
    int werr = 0;
    if (idp_incr(ctr, delta, &last, &err) != IDP_OK) {
        cli_error("incr", "%s", err.msg);
        rc = EXIT_WORK;
    } else if (printf("%llu\n", (unsigned long long)last) < 0) {
        werr = errno;
    }
    return finish("incr", c, &co, rc, werr);
}

static const char get_usage[] =
    "usage: idprime get [URI] COUNTER\n"
    "Prints the store's value of COUNTER (the last ID handed out by anyone;\n"
    "0 for a counter the store has never seen). Allocates nothing.\n";

int cmd_get(int argc, char **argv)
{
    static const struct option longs[] = {CLI_COMMON_LONGOPTS, {0}};
    cli_common co = {0};
    const char *uri;
    int rc = parse(argc, argv, get_usage, CLI_COMMON_SHORTOPTS, longs, &co,
                   NULL, NULL, &uri);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    static const char *const args[] = {"COUNTER", NULL};
    if ((rc = positionals("get", argc, argv, args, get_usage)) != 0)
        return rc;
    idp_client *c = cli_open("get", uri, &co, &rc);
    if (c == NULL)
        return rc;
    uint64_t v;
    idp_error err;
    int werr = 0;
    int st = idp_get(c, argv[optind], &v, NULL, &err);
    if (st != IDP_OK) {
        cli_error("get", "%s", err.msg);
        rc = st == IDP_EINVAL ? EXIT_USAGE : EXIT_WORK;
    } else if (printf("%llu\n", (unsigned long long)v) < 0) {
        werr = errno;
    }
    return finish("get", c, &co, rc, werr);
}

static const char plugins_usage[] =
    "usage: idprime plugins [-v]\n"
    "Lists the store plugins found on the search path (IDPRIME_PLUGIN_PATH,\n"
    "the build tree, the install folder); -v also reports refused files.\n";

static void print_plugin(void *ud, const idp_plugin_info *p)
{
    (void)ud;
    printf("%-10s %-16s %-4u %s\n", p->name, p->schemes, p->abi_version, p->path);
}

int cmd_plugins(int argc, char **argv)
{
    static const struct option longs[] = {CLI_COMMON_LONGOPTS, {0}};
    cli_common co = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longs, NULL)) != -1) {
        int r = cli_common_opt(opt, &co, plugins_usage);
        if (r < 0)
            return 0;
        if (r == 0) {
            fputs(plugins_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(plugins_usage, stderr);
        return EXIT_USAGE;
    }
    /* Refused plugins are always worth a warning here. */
    idp_options o = {.size = sizeof o, .log = cli_log, .log_ud = &co};
    idp_error err;
    printf("%-10s %-16s %-4s %s\n", "NAME", "SCHEMES", "ABI", "PATH");
    if (idp_plugins(&o, print_plugin, NULL, &err) != IDP_OK) {
        cli_error("plugins", "%s", err.msg);
        return EXIT_WORK;
    }
    return 0;
}
