/*
 * serve_helpers.h - what the serve suites share: `idprime serve` started
 * on a free loopback port (it prints the port it got), stopped with
 * SIGTERM; other programs run with a deadline and their output captured;
 * raw sockets for the bytes no client library would send.
 *
 * The server is the idprime command, $IDPRIME_SERVE_BIN, run with its
 * subcommand $IDPRIME_SERVE_SUBCMD ("serve").
 */
#ifndef IDPRIME_SERVE_HELPERS_H
#define IDPRIME_SERVE_HELPERS_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct sp_server {
    pid_t pid;             /* 0 once stopped */
    int port;              /* RESP, on 127.0.0.1 */
    int mport;             /* /metrics, 0 without --metrics-listen */
    char dir[PATH_MAX];    /* a temp folder of its own (log, files) */
    char log[PATH_MAX];    /* its stdout and stderr */
} sp_server;

/*
 * Starts the server with `args` (NULL-terminated: options and the store
 * URI; "--listen 127.0.0.1:0" is put first unless args hold --listen) and
 * waits until it prints its "listening on" line. Returns 0, or the exit
 * status when it exited first (its log then shown on stderr), or -1 when
 * it did not become ready within 30 s (killed).
 */
int sp_start(sp_server *s, const char *const *args);

/* Like sp_start, failing the test unless the server is ready. */
void sp_start_ok(sp_server *s, const char *const *args);

/* A temp folder for the server's files: sp_start makes s->dir; this makes
 * one before the start (store files, password files) and sets s->dir. */
void sp_prepare_dir(sp_server *s);

/* SIGTERM, then waits up to 30 s for the exit. Returns the exit status
 * (128 + signal when killed by one), or -1 when it had to be killed. */
int sp_stop(sp_server *s);

/* Stops the server if it runs and removes its folder. */
void sp_done(sp_server *s);

/* Waits up to ms for the server to exit (after a signal the test sent).
 * Returns the exit status, or -1 when still running. */
int sp_wait(sp_server *s, int ms);

/* The server's log so far (a static buffer). */
const char *sp_logtext(const sp_server *s);

/*
 * Runs argv (stdin /dev/null) with stdout and stderr into out (NUL
 * terminated, cut at outlen), killing it after timeout_ms. Returns the
 * exit status, or -1 on a timeout or when it could not start.
 */
int sp_run(char *out, size_t outlen, int timeout_ms, const char *const *argv);

/* A blocking TCP connection to 127.0.0.1:port with 10 s receive and send
 * timeouts; fails the test when it cannot connect. */
int sp_connect(int port);

/* Sends all of s; fails the test on an error. */
void sp_send(int fd, const char *s, size_t len);
#define sp_sends(fd, s) sp_send((fd), (s), strlen(s))

/* Reads until `want` bytes came, the peer closed or ms passed; returns the
 * bytes read (buf NUL terminated). */
size_t sp_recv(int fd, char *buf, size_t want, int ms);

/* Fails the test unless the next bytes are exactly `want`. */
void sp_expect(int fd, const char *want);

/* 1 when the peer closes (EOF or reset) within ms, else 0. */
int sp_closed(int fd, int ms);

/* A free loopback TCP port (bound and released). */
int sp_free_port(void);

/* Milliseconds of a monotonic clock. */
long long sp_now_ms(void);

/* An HTTP GET of http://127.0.0.1:port/path (HTTP/1.0); the body into
 * buf. Returns the status code, or -1 when it could not be asked. */
int sp_http_get(int port, const char *path, char *buf, size_t len);

#endif
