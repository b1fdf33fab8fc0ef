/*
 * serve.h - `idprime serve`: a RESP (Redis protocol) server in front of
 * libidprime, so that any unmodified Redis client gets batched IDs kept in
 * any store (INCR, INCRBY, GET, and the handshake commands clients send),
 * with live Prometheus metrics over HTTP.
 */
#ifndef IDPRIME_SERVE_H
#define IDPRIME_SERVE_H

#include <stddef.h>

/*
 * The `idprime serve` command: argv[0] is the command's name as shown in
 * messages ("idprime serve"), then options and the store URI. Runs until
 * SIGTERM or SIGINT; returns the exit code (0 after a clean stop, 1 when
 * the work failed, 2 on bad usage).
 */
int serve_main(int argc, char **argv);

/* ---- Without sockets or threads: for fuzzers and tests ---------------- */

typedef struct serve_server serve_server;

/*
 * A server on the store `uri` with no listener, no event loop and no
 * worker threads: engine calls run inline in serve_handle_request().
 * `password` may be NULL (no AUTH needed). Returns NULL with a message in
 * err (errlen bytes) on failure.
 */
serve_server *serve_server_new(const char *uri, const char *password,
                               char *err, size_t errlen);

/*
 * One client session fed `len` bytes (RESP requests, possibly cut short or
 * malformed), as a connection would read them. Its replies, as the client
 * would receive them, are stored in *out (malloc'ed, free() it; NUL
 * terminated) and their length in *outlen. Returns 1 when the server closed
 * the session (QUIT, a protocol error, a limit), 0 when it stays open
 * (a partial request left), -1 when out of memory.
 */
int serve_handle_request(serve_server *s, const void *data, size_t len,
                         char **out, size_t *outlen);

/* Closes the server and its store client. NULL is a no-op. */
void serve_server_free(serve_server *s);

#endif
