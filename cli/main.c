/*
 * main.c - the idprime command: dispatch to subcommands, and the pieces
 * they share (logging, the default store, opening a client, metrics).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#ifdef IDPRIME_HAVE_SERVE
#include "serve.h"
#endif

static const char usage[] =
    "usage: idprime COMMAND [ARGS...]\n"
    "\n"
    "  plugins                       list plugins, schemes, ABI, path\n"
    "  next  [URI] COUNTER [-n N]    N IDs, one a line\n"
    "  incr  [URI] COUNTER DELTA     INCRBY through the engine; prints v\n"
    "  get   [URI] COUNTER           the store's value, allocates nothing\n"
    "  bench [options] [URI...]      the comparative benchmark (workloads,\n"
    "                                round trips, baselines, plots)\n"
    "  run   SCRIPT.lua [ARGS...]    an experiment script (Lua, with the\n"
    "                                idprime module preloaded)\n"
    "  migrate FROM_URI TO_URI [COUNTER...]\n"
    "                                raise each counter in TO to at least its\n"
    "                                value in FROM (never lower it)\n"
#ifdef IDPRIME_HAVE_SERVE
    "  serve [options] [URI]         a Redis-protocol server: INCR/INCRBY/GET\n"
    "                                answered by the engine from URI\n"
#endif
    "\n"
    "Common options: --config FILE.lua (a config script: uri, settings,\n"
    "batch policy; a URI given beside it wins), --metrics FILE (Prometheus\n"
    "text at exit, - for stdout), -v/--verbose, --help (for each command),\n"
    "--version.\n"
    "Without a URI the store is the config's, else $IDPRIME_URI, else the\n"
    "SQLite file\n"
    "$XDG_DATA_HOME/idprime/idprime.db (~/.local/share/idprime/idprime.db).\n"
    "Run 'idprime COMMAND --help' for the URI parameters.\n";

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "idprime %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_log(void *ud, int level, const char *msg)
{
    const cli_common *co = ud;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= IDP_LOG_WARN || (co != NULL && co->verbose && level <= IDP_LOG_INFO))
        fprintf(stderr, "idprime: %s: %s\n", names[level & 3], msg);
}

int cli_is_uri(const char *arg)
{
    /* A counter name never holds '/': "mem:/x" is a malformed URI, for
     * idp_open to name, not a counter. */
    return strchr(arg, '/') != NULL;
}

/* mkdir -p for the default store's folder. */
static void make_dirs(char *path)
{
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    mkdir(path, 0700);
}

const char *cli_default_uri(void)
{
    static char uri[4200];
    const char *env = getenv("IDPRIME_URI");
    if (env != NULL && *env != '\0')
        return env;
    char dir[4096];
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s/idprime", xdg);
    else
        snprintf(dir, sizeof dir, "%s/.local/share/idprime",
                 home != NULL && home[0] == '/' ? home : "/tmp");
    make_dirs(dir);
    snprintf(uri, sizeof uri, "sqlite://%s/idprime.db", dir);
    return uri;
}

idp_client *cli_open(const char *cmd, const char *uri, const cli_common *co,
                     int *exit_code)
{
    idp_options opt = {.size = sizeof opt, .log = cli_log, .log_ud = (void *)co};
    idp_error err;
    if (co->config != NULL &&
        cli_config(co, &opt, &uri, err.msg, sizeof err.msg) != 0) {
        cli_error(cmd, "%s", err.msg);
        *exit_code = EXIT_USAGE;
        return NULL;
    }
    if (uri == NULL)
        uri = cli_default_uri();
    idp_client *c = idp_open(uri, &opt, &err);
    if (c == NULL) {
        if (co->config != NULL)
            cli_error(cmd, "%s (with --config %s)", err.msg, co->config);
        else
            cli_error(cmd, "%s", err.msg);
        *exit_code = err.code == IDP_EINVAL ? EXIT_USAGE : EXIT_WORK;
    }
    return c;
}

int cli_flush_output(const char *cmd, int earlier)
{
    errno = 0;
    int failed = fflush(stdout) != 0;
    int e = failed ? errno : 0;
    if (earlier != 0)
        e = earlier;
    if (!failed && earlier == 0 && !ferror(stdout))
        return 0;
    if (e == 0)
        e = EIO; /* stdio saw an error and kept no errno */
    if (e != EPIPE)
        cli_error(cmd, "cannot write the output: %s", strerror(e));
    return EXIT_WORK;
}

int cli_write_metrics(const char *cmd, idp_client *c, const cli_common *co)
{
    if (co->metrics == NULL)
        return 0;
    char *text = idp_metrics(c);
    if (text == NULL) {
        cli_error(cmd, "metrics: out of memory");
        return EXIT_WORK;
    }
    int rc = 0;
    if (strcmp(co->metrics, "-") == 0) {
        fputs(text, stdout);
    } else {
        FILE *f = fopen(co->metrics, "w");
        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
            cli_error(cmd, "cannot write metrics to %s: %s", co->metrics,
                      strerror(errno));
            rc = EXIT_WORK;
        }
    }
    idp_free(text);
    return rc;
}

static void print_param(void *ud, const idp_param_doc *d)
{
    fprintf(ud, "  %-20s %-10s default %-12s %s\n", d->key, d->range,
            d->def[0] ? d->def : "(none)", d->help);
}

int cli_common_opt(int opt, cli_common *co, const char *text)
{
    switch (opt) {
    case 'M':
        co->metrics = optarg;
        return 1;
    case 'C':
        co->config = optarg;
        return 1;
    case 'v':
        co->verbose = 1;
        return 1;
    case 'h':
        fputs(text, stdout);
        fputs("\nURI parameters (scheme://host/path?key=value&...):\n", stdout);
        idp_engine_params(print_param, stdout);
        return -1;
    default:
        return 0;
    }
}

int cli_number(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"plugins", cmd_plugins},
    {"next", cmd_next},
    {"incr", cmd_incr},
    {"get", cmd_get},
    {"migrate", cmd_migrate},
    {"run", cmd_run},
    {"bench", cmd_bench},
#ifdef IDPRIME_HAVE_SERVE
    {"serve", serve_main},
#endif
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("idprime %s\n", IDP_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            /* getopt's own messages start with argv[0]: "idprime next: ..." */
            static char shown[64];
            snprintf(shown, sizeof shown, "idprime %s", commands[i].name);
            argv[1] = shown;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "idprime: unknown command '%s'\n\n%s", cmd, usage);
    return EXIT_USAGE;
}
