/*
 * main.c - the idprime command: the common options before the command,
 * dispatch to subcommands, and the pieces they share (logging, the default
 * store, opening a client, metrics, interrupts, whole-line output).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    "Common options, before or after the command: --config FILE.lua (a\n"
    "config script: uri, settings, batch policy; a URI given beside it\n"
    "wins), --metrics FILE (Prometheus text at exit, on SIGINT/SIGTERM\n"
    "too; - for stdout), -v/--verbose, --help (for each command), --version.\n"
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

/* ---- Interrupts --------------------------------------------------------- */

/* The signal that asked to stop: written by the handler in whichever thread
 * the kernel picked (Linux prefers the main one), read by the command's
 * loops. A lock-free atomic is what C allows a handler to touch. */
static atomic_int stop_signal;
/* A write to stdout met EPIPE: the reader is gone. */
static int stdout_closed;
/* SIGPIPE was at its default when the command started: a closed pipe then
 * ends the process by SIGPIPE, as it would have without our handling. */
static int sigpipe_default;

static void on_stop(int sig)
{
    atomic_store_explicit(&stop_signal, sig, memory_order_relaxed);
}

int cli_interrupted(void)
{
    return atomic_load_explicit(&stop_signal, memory_order_relaxed);
}

const atomic_int *cli_stop_flag(void)
{
    return &stop_signal;
}

/*
 * Catches SIGINT and SIGTERM (unless the command cannot stop cleanly) and
 * ignores SIGPIPE. A signal the shell had us ignore (SIGINT for a
 * background job of a script) stays ignored, as every program does.
 *
 * SA_RESTART: a read or write that the signal interrupts is restarted, so
 * the library, its plugins, the store clients and stdio never see an EINTR
 * they did not expect; the calls that no flag restarts (poll, nanosleep,
 * connect) they already retry. The stop is therefore seen between IDs, after
 * the store call in progress returns (within its timeout_ms); the one wait
 * that could last for ever, a write to a reader that stopped reading, is
 * waited for in poll() slices (out_write). SA_RESETHAND: a second ^C finds
 * the default action and ends the process at once, for whoever will not
 * wait for the clean stop.
 */
static void catch_signals(int interrupts)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    static const int stops[] = {SIGINT, SIGTERM};
    for (size_t i = 0; interrupts && i < sizeof stops / sizeof stops[0]; i++)
        if (sigaction(stops[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(stops[i], &sa, NULL);
    sigpipe_default = sigaction(SIGPIPE, NULL, &old) == 0 &&
                      old.sa_handler == SIG_DFL;
    signal(SIGPIPE, SIG_IGN);
}

/* After the command: a stop signal, or a closed stdout when SIGPIPE was at
 * its default, ends the process by that signal (its default action), so the
 * parent sees what it would have seen had we not caught it: a shell sets
 * $? to 128+N (130, 141, 143), says nothing for SIGINT and SIGPIPE, and a
 * shell loop stops on ^C. Else returns rc. */
static int exit_as_signalled(int rc)
{
    if (fflush(stdout) != 0 && errno == EPIPE)
        stdout_closed = 1;
    int sig = cli_interrupted();
    if (sig == 0 && stdout_closed && sigpipe_default)
        sig = SIGPIPE;
    if (sig == 0)
        return rc;
    fflush(stderr);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig; /* not reached */
}

int cli_stdout_broken(void)
{
    /* a pipe without a reader polls as POLLERR, a shut socket as POLLHUP */
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0)
        stdout_closed = 1;
    return stdout_closed;
}

/* ---- Whole-line output -------------------------------------------------- */

/* PIPE_BUF bytes: a write of that size to a pipe is atomic, so a reader
 * never sees part of a line, even while other writers share the pipe. */
static struct {
    char buf[PIPE_BUF];
    size_t len;
    int err;        /* errno of the write that failed; nothing after it */
    int tty;        /* -1 not yet known, else isatty(stdout) */
    size_t dropped; /* lines dropped after an interrupt (see out_write) */
} lines = {.tty = -1};

/* Waits until stdout takes a write; returns 1 to write, 0 when the command
 * was interrupted and the reader has not made room within a second (it
 * stopped reading). poll() returns early on a signal even under SA_RESTART;
 * the 100 ms slices bound the wait when the signal came just before poll()
 * began. A pipe that polls writable takes PIPE_BUF bytes without blocking;
 * files and /dev/null are always ready. */
static int out_wait(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    for (;;) {
        int stopping = cli_interrupted() != 0;
        int r = poll(&p, 1, stopping ? 1000 : 100);
        if (r > 0 || (r < 0 && errno != EINTR))
            return 1; /* ready, or an error that write() will name */
        if (r == 0 && stopping)
            return 0;
    }
}

/* Writes the buffer, one write(2) for all of it as a rule. After an
 * interrupt a line already begun is finished, and the lines not begun are
 * dropped: that only happens when the reader stopped reading, and their IDs
 * are a gap (the engine handed them out, so they are never given back),
 * never a duplicate. */
static int out_write(void)
{
    size_t done = 0;
    while (done < lines.len && lines.err == 0) {
        size_t end = lines.len;
        if (done == 0 || lines.buf[done - 1] == '\n') {
            if (!out_wait()) {
                for (size_t i = done; i < lines.len; i++)
                    lines.dropped += lines.buf[i] == '\n';
                break;
            }
        } else if (cli_interrupted()) {
            /* a short write left half a line: only that line's rest */
            end = (size_t)((char *)memchr(lines.buf + done, '\n',
                                          lines.len - done) - lines.buf) + 1;
        }
        ssize_t w = write(STDOUT_FILENO, lines.buf + done, end - done);
        if (w >= 0)
            done += (size_t)w;
        else if (errno != EINTR)
            lines.err = errno;
    }
    lines.len = 0;
    if (lines.err == EPIPE)
        stdout_closed = 1;
    return lines.err;
}

int cli_out_line(const char *line, size_t len)
{
    if (lines.err != 0)
        return lines.err;
    if (lines.len + len > sizeof lines.buf && out_write() != 0)
        return lines.err;
    memcpy(lines.buf + lines.len, line, len);
    lines.len += len;
    if (lines.tty < 0)
        lines.tty = isatty(STDOUT_FILENO);
    return lines.tty ? out_write() : 0; /* a person sees each ID at once */
}

int cli_out_flush(const char *cmd)
{
    if (lines.err == 0 && lines.len > 0)
        out_write();
    if (lines.dropped > 0)
        cli_error(cmd, "interrupted while the output was not read: the "
                  "last %zu IDs taken were not printed (a gap, not reused)",
                  lines.dropped);
    lines.dropped = 0;
    return lines.err;
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
    if (e == 0) /* stdio saw an error and kept no errno: was it a pipe? */
        e = cli_stdout_broken() ? EPIPE : EIO;
    if (e != EPIPE)
        cli_error(cmd, "cannot write the output: %s", strerror(e));
    else
        stdout_closed = 1;
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

/* How a command takes SIGINT/SIGTERM: STOPS checks cli_interrupted() and
 * stops cleanly; RUNS keeps their default action (it would not see the
 * flag); OWN handles every signal itself (serve, on its event loop). */
enum { STOPS, RUNS, OWN };

static const struct {
    const char *name;
    int (*fn)(int, char **);
    int signals;
} commands[] = {
    {"plugins", cmd_plugins, RUNS},
    {"next", cmd_next, STOPS},
    {"incr", cmd_incr, STOPS},
    {"get", cmd_get, STOPS},
    {"migrate", cmd_migrate, STOPS},
    {"run", cmd_run, STOPS},
    {"bench", cmd_bench, STOPS},
#ifdef IDPRIME_HAVE_SERVE
    {"serve", serve_main, OWN},
#endif
};

/* The common options that may stand before the command, as in git. */
static const struct {
    const char *name;
    int has_arg;
} global_opts[] = {
    {"config", 1}, {"metrics", 1}, {"verbose", 0}, {"help", 0}, {"version", 0},
};

static const char global_hint[] =
    "before the command only the common options go: --config FILE, "
    "--metrics FILE, -v/--verbose, --help, --version";

/* The global option named `name` (`len` chars), or -1. Names are matched
 * whole, as git matches its own: an abbreviation is refused. */
static int find_global(const char *name, size_t len)
{
    for (int i = 0; i < (int)(sizeof global_opts / sizeof global_opts[0]); i++)
        if (strncmp(global_opts[i].name, name, len) == 0 &&
            global_opts[i].name[len] == '\0')
            return i;
    return -1;
}

/*
 * Reads the common options before the command and rebuilds the command
 * line as if they had been written right after the command's name, where
 * its own parser reads them: `idprime --config F next c` runs as `idprime
 * next --config F c`, and one given after the command, read later, wins.
 * Names are whole, so the command's getopt_long reads each word as the
 * same option. Returns -1 with *nargc and *nargv set (nargv[0] is the
 * command; free nargv), or the exit code after --version, --help without a
 * command, or an error.
 */
static int global_options(int argc, char **argv, int *nargc, char ***nargv)
{
    /* each original word becomes at most two */
    char **moved = malloc((size_t)(2 * argc + 2) * sizeof *moved);
    if (moved == NULL) {
        fputs("idprime: out of memory\n", stderr);
        return EXIT_WORK;
    }
    int nmoved = 0, help = 0, version = 0, i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[1] != '-') { /* -v, -h, or several: -vh */
            for (const char *p = a + 1; *p != '\0'; p++) {
                if (*p == 'v') {
                    moved[nmoved++] = "--verbose";
                } else if (*p == 'h') {
                    help = 1;
                } else {
                    fprintf(stderr, "idprime: unknown option '-%c' (%s)\n",
                            *p, global_hint);
                    goto usage;
                }
            }
            continue;
        }
        size_t len = strcspn(a + 2, "=");
        int k = find_global(a + 2, len);
        if (k < 0) {
            fprintf(stderr, "idprime: unknown option '%.*s' (%s)\n",
                    (int)(len + 2), a, global_hint);
            goto usage;
        }
        const char *name = global_opts[k].name;
        int joined = a[2 + len] == '='; /* --config=FILE */
        if (joined && !global_opts[k].has_arg) {
            fprintf(stderr, "idprime: option '--%s' takes no value\n", name);
            goto usage;
        }
        if (global_opts[k].has_arg && !joined && i + 1 >= argc) {
            fprintf(stderr, "idprime: option '--%s' needs a FILE\n", name);
            goto usage;
        }
        if (strcmp(name, "help") == 0) {
            help = 1;
        } else if (strcmp(name, "version") == 0) {
            version = 1;
        } else {
            moved[nmoved++] = argv[i];
            if (global_opts[k].has_arg && !joined)
                moved[nmoved++] = argv[++i];
        }
    }
    if (version || (help && i >= argc)) {
        free(moved);
        if (version)
            printf("idprime %s\n", IDP_VERSION);
        else
            fputs(usage, stdout);
        return 0;
    }
    if (i >= argc) {
        fputs("idprime: missing the command\n", stderr);
        free(moved);
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (help)
        moved[nmoved++] = "--help";
    /* command, the moved options, the command's own words, NULL */
    char **v = malloc((size_t)(1 + nmoved + (argc - i - 1) + 1) * sizeof *v);
    if (v == NULL) {
        free(moved);
        fputs("idprime: out of memory\n", stderr);
        return EXIT_WORK;
    }
    int n = 0;
    v[n++] = argv[i];
    for (int j = 0; j < nmoved; j++)
        v[n++] = moved[j];
    for (int j = i + 1; j < argc; j++)
        v[n++] = argv[j];
    v[n] = NULL;
    free(moved);
    *nargc = n;
    *nargv = v;
    return -1;
usage:
    free(moved);
    fprintf(stderr, "\n%s", usage);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    int nargc;
    char **nargv;
    int rc = global_options(argc, argv, &nargc, &nargv);
    if (rc >= 0)
        return rc;
    const char *cmd = nargv[0];
    if (strcmp(cmd, "help") == 0) {
        free(nargv);
        fputs(usage, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) != 0)
            continue;
        /* getopt's own messages start with argv[0]: "idprime next: ..." */
        static char shown[64];
        snprintf(shown, sizeof shown, "idprime %s", commands[i].name);
        nargv[0] = shown;
        if (commands[i].signals == OWN) {
            rc = commands[i].fn(nargc, nargv);
            free(nargv);
            return rc;
        }
        catch_signals(commands[i].signals == STOPS);
        rc = commands[i].fn(nargc, nargv);
        free(nargv);
        return exit_as_signalled(rc);
    }
    fprintf(stderr, "idprime: unknown command '%s'\n\n%s", cmd, usage);
    free(nargv);
    return EXIT_USAGE;
}
