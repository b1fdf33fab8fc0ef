/*
 * pg_internal.h - what postgresql.c (the SQL, the methods, open) and
 * conn.c (the connection and every exchange with its deadline) share.
 * Not a public header: everything here is hidden, so the plugin still
 * exports only idprime_plugin_entry.
 */
#ifndef IDPRIME_PG_INTERNAL_H
#define IDPRIME_PG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "idprime/plugin.h"

#define PG_HIDDEN __attribute__((visibility("hidden")))

/* libpq connection keywords: host, port, dbname, user,
 * password, connect_timeout, application_name, client_encoding, sslmode,
 * target_session_attrs, and the terminating NULL. */
#define PG_MAX_KW 12

typedef struct pg_store {
    const idp_host *host;
    PGconn *conn;              /* NULL once dropped: reopened by pg_ready */
    const char *kw[PG_MAX_KW]; /* the connection's libpq keywords ... */
    const char *val[PG_MAX_KW];/* ... and values, kept for reconnects */
    char hosts[512];           /* "a,b": the URI's hosts, for libpq */
    char ports[128];           /* "5432,5433" */
    char connect_timeout[16];  /* timeout_ms in whole seconds, rounded up */
    char where[320];           /* "127.0.0.1:5432/db", for messages */
    char session[160];         /* the SETs run on every new connection */
    int prepared;              /* the statements are prepared on connect */
} pg_store;

/* Nanoseconds of CLOCK_MONOTONIC. */
PG_HIDDEN uint64_t pg_now_ns(void);

/* The deadline of an exchange starting now: timeout_ms from now. */
PG_HIDDEN uint64_t pg_deadline(const pg_store *s);

/*
 * Connects (all of it within timeout_ms), runs the session's SETs and,
 * once s->prepared is set, prepares the statements, in one round trip.
 * On success s->conn is the new connection; on error fills err and leaves
 * s->conn NULL.
 */
PG_HIDDEN int pg_connect(pg_store *s, idp_error *err);

/* Closes the connection (libpq sends Terminate); the next pg_ready
 * reopens it. */
PG_HIDDEN void pg_drop(pg_store *s);

/*
 * Makes sure there is a connection before anything is sent: reopens one
 * dropped by an earlier failure, or that the server closed while idle (a
 * restart, pg_terminate_backend, idle_session_timeout). Nothing of the
 * call has been sent then, so reopening is safe. Returns IDP_OK, or an
 * error (err filled) with s->conn NULL.
 */
PG_HIDDEN int pg_ready(pg_store *s, idp_error *err);

/*
 * Runs one statement, prepared (`stmt` names it) or, with stmt NULL, the
 * text `sql` (several statements allowed, as one implicit transaction),
 * with nparams text parameters, and waits for its reply until the
 * deadline. On success stores the last result in *res (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK), to PQclear. On error fills err naming `what`:
 * - an error the server answered (the statement was rolled back, the
 *   connection stays): IDP_ETIMEOUT for statement_timeout, IDP_ERANGE for
 *   a number out of range, else IDP_ESTORE;
 * - a reply lost (no reply within timeout_ms, a connection that broke):
 *   IDP_ETIMEOUT or IDP_ESTORE, saying it may have run; the connection is
 *   dropped, reopened on the next call, and nothing is ever sent again.
 */
PG_HIDDEN int pg_exec(pg_store *s, const char *what, const char *stmt,
                      const char *sql, int nparams, const char *const *params,
                      PGresult **res, idp_error *err);

/* The statements pg_connect prepares once s->prepared is set. */
PG_HIDDEN extern const char pg_sql_prepare[];

/* postgresql.c: frees the store and its connection. */
PG_HIDDEN void pg_close(void *store);

/* open.c: the plugin's open. */
PG_HIDDEN int pg_open(const idp_host *host, void **store, idp_error *err);

#endif
