/*
 * mysql_internal.h - what mysql.c (the store: increments, reads, listing),
 * open.c (the URI, the table, the server's durability) and conn.c (the
 * connection: deadlines, connecting, running statements, errors) share. Not a public header: everything here is hidden, so the
 * plugin still exports only idprime_plugin_entry.
 */
#ifndef IDPRIME_MYSQL_INTERNAL_H
#define IDPRIME_MYSQL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "idprime/plugin.h"

#define MS_DEFAULT_TABLE "idprime_counters"

#define MS_HIDDEN __attribute__((visibility("hidden")))

/* Server error codes the plugin tells apart (mysqld_error.h has them all;
 * these are stable across MySQL and MariaDB). */
#define MS_ER_DBACCESS_DENIED 1044
#define MS_ER_ACCESS_DENIED 1045
#define MS_ER_BAD_DB 1049
#define MS_ER_LOCK_WAIT_TIMEOUT 1205
#define MS_ER_WARN_DATA_OUT_OF_RANGE 1264
#define MS_ER_DATA_OUT_OF_RANGE 1690
#define MS_ER_ACCESS_DENIED_NO_PASSWORD 1698

typedef struct ms_store {
    const idp_host *host;
    MYSQL *db;               /* NULL once dropped: reopened by ms_ready */
    const char *hostname;    /* TCP host; NULL for a unix socket */
    unsigned port;
    const char *socket;      /* unix socket path; NULL for TCP */
    const char *user;        /* NULL: libmariadb's default (login name) */
    const char *password;    /* NULL: none */
    const char *database;    /* from the URI path */
    const char *table;       /* [A-Za-z0-9_$], 1..64 bytes: no quoting */
    unsigned long name_max;  /* bytes the table's name column holds */
    char init_sql[200];      /* the session settings, run at connect */
    char where[320];         /* "127.0.0.1:3306" or "unix socket /x.sock" */
} ms_store;

/* The outcome of one statement of a round trip (ms_run). */
typedef struct ms_outcome {
    int code;                /* IDP_OK, or the error (its message filled) */
    unsigned server_errno;   /* the server refused the statement: its code */
    uint64_t affected;       /* affected rows (OK packet) */
    uint64_t insert_id;      /* insert id / LAST_INSERT_ID(expr) (OK packet) */
    MYSQL_RES *rows;         /* a result set, or NULL; ms_outcomes_free */
} ms_outcome;

/*
 * Starts the deadline of one plugin call: every wait for the server from
 * now on, in this thread (connecting, sending, reading), ends
 * timeout_ms from now. Call it first in every method.
 */
MS_HIDDEN void ms_deadline_start(const ms_store *s);

/*
 * Makes sure there is a connection before a statement is sent: reopens one
 * dropped after an earlier failure, and one the server closed since the
 * last call (a restart, KILL, wait_timeout). Nothing of the current call
 * has been sent yet, so a reopened connection costs no error. Returns
 * IDP_OK or an error (err filled) with s->db left NULL.
 */
MS_HIDDEN int ms_ready(ms_store *s, idp_error *err);

/* Closes the connection (COM_QUIT); the next ms_ready opens a new one. */
MS_HIDDEN void ms_disconnect(ms_store *s);

/* In a child after fork(): frees the connection without a byte on the
 * parent's socket (see conn.c). */
MS_HIDDEN void ms_forget(ms_store *s);

/*
 * Sends `sql`, `n` statements separated by ';', in one round trip and
 * reads every answer into out[0..n-1] (each to free with
 * ms_outcomes_free). whats[i] names statement i in messages, and errs[i]
 * gets its error. After a statement the server refused, the server runs
 * none of the rest: they are marked not run (IDP_ESTORE). When an answer
 * is lost (timeout, I/O error), that statement and the rest are marked
 * "may have run", never resent, and the connection is dropped, so a late
 * answer can never be taken for a later statement's.
 * Returns IDP_OK, or the first failed statement's code.
 */
MS_HIDDEN int ms_run(ms_store *s, const char *const *whats, const char *sql,
                     size_t len, size_t n, ms_outcome *out, idp_error *errs);

/* As ms_run, for one statement. */
MS_HIDDEN int ms_run1(ms_store *s, const char *what, const char *sql,
                      ms_outcome *out, idp_error *err);

MS_HIDDEN void ms_outcomes_free(ms_outcome *out, size_t n);

/* Statement text: a growing string; `oom` once an append failed (the
 * text is then cut, and ms_sql_failed says so). */
typedef struct ms_sql {
    char *p;
    size_t len, cap;
    int oom;
} ms_sql;

MS_HIDDEN void ms_sql_add(ms_sql *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A key as a hex literal, X'...': byte-exact whatever the character set
 * and sql_mode, and nothing in it can end the string. */
MS_HIDDEN void ms_sql_key(ms_sql *b, const char *key, size_t len);
/* IDP_OK, or (after an append ran out of memory) frees the text and
 * returns IDP_ENOMEM with err filled. */
MS_HIDDEN int ms_sql_failed(ms_sql *b, idp_error *err);

/* Opening (open.c): reads the target from the URI, connects, checks the
 * table (creating it when missing) and the server's durability. On
 * error fills err; the caller closes s. */
MS_HIDDEN int ms_setup(ms_store *s, idp_error *err);

/* Parses a counter value: a canonical decimal integer in [0, 2^63).
 * Returns 0 on success, -1 otherwise. */
MS_HIDDEN int ms_parse_value(const char *p, size_t len, uint64_t *out);

#endif
