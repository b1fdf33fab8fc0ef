/*
 * cli.h - what the idprime command's subcommands share: the common
 * options, opening a client, and exit codes.
 */
#ifndef IDPRIME_CLI_H
#define IDPRIME_CLI_H

#include <stdatomic.h>
#include <stdio.h>

#include "idprime/idprime.h"

enum { EXIT_WORK = 1, EXIT_USAGE = 2 };

/* Options every command takes. */
typedef struct cli_common {
    const char *metrics;   /* --metrics FILE, "-" for stdout */
    const char *config;    /* --config FILE.lua */
    int verbose;           /* -v: info messages too */
} cli_common;

/* The subcommands: each parses its own arguments (argv[0] is its name). */
int cmd_plugins(int argc, char **argv);
int cmd_next(int argc, char **argv);
int cmd_incr(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints "idprime CMD: message" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The log callback: warnings and errors on stderr (info with -v). */
void cli_log(void *ud, int level, const char *msg);

/* The default store when a command is given none: $IDPRIME_URI, else the
 * embedded SQLite file $XDG_DATA_HOME/idprime/idprime.db (its folder is
 * created). Returns a static buffer. */
const char *cli_default_uri(void);

/* 1 when `arg` looks like a store URI (has "://"). */
int cli_is_uri(const char *arg);

/* Opens a client with the CLI's logging and --config; `uri` NULL means the
 * config's, else the default store. Prints the error and returns NULL on
 * failure, with *exit_code set (2 for a bad URI, parameter or config). */
idp_client *cli_open(const char *cmd, const char *uri, const cli_common *co,
                     int *exit_code);

/* Applies --config FILE.lua (loaded once, kept until exit) to `opt`: its
 * settings and policy. *uri is kept when the command line named a store
 * (whose parameters then override the file's), else set to the file's uri
 * (NULL when it has none). Returns 0, or -1 with `err` filled. */
int cli_config(const cli_common *co, idp_options *opt, const char **uri,
               char *err, size_t errlen);

/* Flushes stdout. Returns 0, or EXIT_WORK after printing "cannot write
 * the output: REASON": the reason is `earlier` (the errno of a write that
 * already failed, 0 for none) or that of the flush. A closed pipe (EPIPE,
 * when SIGPIPE is ignored) ends the output quietly: no message. */
int cli_flush_output(const char *cmd, int earlier);

/*
 * Interrupts. main() catches SIGINT and SIGTERM for the commands that stop
 * cleanly (next, incr, get, migrate, run): the handler only records the
 * signal, the command's loop sees it through cli_interrupted(), finishes the
 * line it is on, closes its clients (which gives back what they did not
 * serve) and writes its metrics; main() then ends the process by that
 * signal, so a shell sees 130 or 143. SIGPIPE is ignored for every command
 * but serve: a write to a closed pipe fails with EPIPE, the command ends
 * quietly, and main() ends the process by SIGPIPE (141) unless the parent
 * ignored SIGPIPE (then the exit code is 1, still without a message).
 */

/* The signal (SIGINT or SIGTERM) that asked the command to stop, or 0. Async-
 * signal-safe and cheap (one relaxed atomic load): check it once per ID. */
int cli_interrupted(void);

/* The flag itself, for code outside the CLI that runs long loops of its own
 * (the bench's workloads, in its threads): nonzero once asked to stop. */
const atomic_int *cli_stop_flag(void);

/* 1 when stdout is a pipe whose reader is gone (or a socket that was shut),
 * recording it for main()'s exit; checked only after a write failed. */
int cli_stdout_broken(void);

/*
 * Whole-line output for commands that print many lines (next). Lines are
 * gathered in a PIPE_BUF-sized buffer and written by one write(2) each time
 * it fills (each line when stdout is a terminal), so a write never ends in
 * the middle of a line and, on a pipe, is atomic. cli_out_line() adds one
 * line (`len` bytes ending in '\n', at most 64); cli_out_flush() writes what
 * is gathered, and names (as `cmd`) the lines an interrupt dropped. Both
 * return 0, or the errno of the write that failed (later calls return it
 * again and write nothing). An interrupt never leaves half a line; lines not
 * begun are dropped only when the reader stopped reading (see main.c).
 */
int cli_out_line(const char *line, size_t len);
int cli_out_flush(const char *cmd);

/* Writes the metrics if --metrics was given; returns 0 or EXIT_WORK. */
int cli_write_metrics(const char *cmd, idp_client *c, const cli_common *co);

/* The long options every command accepts, for getopt_long tables. */
#define CLI_COMMON_LONGOPTS                                 \
    {"metrics", required_argument, NULL, 'M'},              \
    {"config", required_argument, NULL, 'C'},               \
    {"verbose", no_argument, NULL, 'v'},                    \
    {"help", no_argument, NULL, 'h'}
#define CLI_COMMON_SHORTOPTS "vh"

/* Handles a common option returned by getopt_long: 1 when handled, 0 when
 * not one of them, -1 when --help was asked for (usage already printed). */
int cli_common_opt(int opt, cli_common *co, const char *usage);

/* Parses a whole decimal number in [min, max]; returns 0 or -1. */
int cli_number(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out);

#endif
