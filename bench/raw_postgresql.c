/*
 * raw_postgresql.c - idprime-raw-postgresql.so: bare libpq for the
 * hot-path comparison, a module of its own so that only the postgresql
 * plugin's package depends on libpq (raw.h says how raw.c finds it).
 *
 * On the wire it does what plugins/postgresql does for one fetch of one
 * counter, and nothing else: the same connection keywords
 * (application_name, client_encoding, sslmode, connect_timeout), the same
 * session (statement_timeout = timeout_ms and the URI's
 * synchronous_commit, else the server's), and per increment the plugin's
 * prepared statement idp_add, one round trip, text results. The
 * statement's text below is the plugin's (postgresql.c pg_sql_prepare):
 * keep the two the same, or the ratio measures the difference.
 *
 * Blocking libpq calls: the store's client used bare, with no deadline of
 * its own (the plugin's poll() around each call is part of what the
 * ratio measures).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "raw.h"

#define EXPORT __attribute__((visibility("default")))

/* The plugin's increment, as it prepares it on every connection. */
static const char rp_sql_add[] =
    "PREPARE idp_add(text, bigint) AS"
    " INSERT INTO idprime_counters AS c (name, value) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE SET value = c.value + excluded.value"
    " WHERE c.value <= 9223372036854775807 - excluded.value"
    " RETURNING c.value, nextval('idprime_increments');";

/* The synchronous_commit values the plugin accepts: only these words are
 * ever put into the SQL text. */
static const char *const rp_sync_words[] = {"on", "off", "local",
                                            "remote_write", "remote_apply",
                                            NULL};

typedef struct rp_conn {
    PGconn *conn;
    int prepared;
} rp_conn;

/* Copies libpq's message without its trailing newline. */
static void rp_fail(char *msg, size_t len, const char *what, const char *why)
{
    size_t n = strlen(why);
    while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
        n--;
    snprintf(msg, len, "libpq: %s: %.*s", what, (int)n, why);
}

/* Runs sql (no result rows wanted). Returns 0, or -1 with msg filled. */
static int rp_exec(rp_conn *c, const char *what, const char *sql, char *msg,
                   size_t len)
{
    PGresult *r = PQexec(c->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        rp_fail(msg, len, what, r != NULL ? PQresultErrorMessage(r)
                                          : PQerrorMessage(c->conn));
    PQclear(r);
    return ok ? 0 : -1;
}

static void rp_close(void *h)
{
    rp_conn *c = h;
    if (c == NULL)
        return;
    PQfinish(c->conn);
    free(c);
}

static void *rp_open(const raw_conninfo *ci, char *msg, size_t len)
{
    const char *sync = raw_conninfo_param(ci, "synchronous_commit");
    int known = sync == NULL;
    for (const char *const *w = rp_sync_words; !known && *w != NULL; w++)
        known = strcmp(sync, *w) == 0;
    if (!known) {
        snprintf(msg, len, "libpq: synchronous_commit=%s is not one of "
                 "on|off|local|remote_write|remote_apply", sync);
        return NULL;
    }
    rp_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(msg, len, "libpq: out of memory");
        return NULL;
    }
    char port[16], secs[16];
    snprintf(port, sizeof port, "%d", ci->port > 0 ? ci->port : 5432);
    snprintf(secs, sizeof secs, "%u", (ci->timeout_ms + 999) / 1000);
    const char *kw[12], *val[12];
    int n = 0;
#define KW(k, v) \
    do { if ((v) != NULL) { kw[n] = (k); val[n] = (v); n++; } } while (0)
    KW("host", ci->host);
    KW("port", port);
    KW("dbname", ci->database);
    KW("user", ci->user);
    KW("password", ci->password);
    KW("connect_timeout", secs);
    KW("application_name", "idprime");
    KW("client_encoding", "UTF8");
    KW("sslmode", raw_conninfo_param(ci, "sslmode"));
#undef KW
    kw[n] = NULL;
    val[n] = NULL;
    c->conn = PQconnectdbParams(kw, val, 0);
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        char what[300];
        snprintf(what, sizeof what, "cannot connect to %s:%s",
                 ci->host != NULL ? ci->host : "(default)", port);
        rp_fail(msg, len, what, c->conn != NULL ? PQerrorMessage(c->conn)
                                                : "out of memory");
        rp_close(c);
        return NULL;
    }
    char session[160];
    snprintf(session, sizeof session, "SET statement_timeout = %u;%s%s%s",
             ci->timeout_ms, sync != NULL ? "SET synchronous_commit = '" : "",
             sync != NULL ? sync : "", sync != NULL ? "';" : "");
    if (rp_exec(c, "setting up the session", session, msg, len) != 0) {
        rp_close(c);
        return NULL;
    }
    return c;
}

/* Prepares the increment (the table exists by now: the engine's open made
 * it) and creates the row at 0 where missing. */
static int rp_prepare(void *h, const char *key, char *msg, size_t len)
{
    rp_conn *c = h;
    if (!c->prepared && rp_exec(c, "preparing idp_add", rp_sql_add, msg,
                                len) != 0)
        return -1;
    c->prepared = 1;
    const char *params[] = {key};
    PGresult *r = PQexecParams(c->conn,
                               "INSERT INTO idprime_counters (name, value)"
                               " VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
                               1, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        rp_fail(msg, len, "creating the row", r != NULL
                    ? PQresultErrorMessage(r) : PQerrorMessage(c->conn));
    PQclear(r);
    return ok ? 0 : -1;
}

/* HOT: EXECUTE idp_add(key, 1), one round trip. */
static int rp_incr(void *h, const char *key, uint64_t *value, char *msg,
                   size_t len)
{
    rp_conn *c = h;
    const char *params[] = {key, "1"};
    PGresult *r = PQexecPrepared(c->conn, "idp_add", 2, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            snprintf(msg, len, "libpq: incrementing '%s': no row (the value "
                     "is at 2^63-1)", key);
        else
            rp_fail(msg, len, "incrementing", r != NULL
                        ? PQresultErrorMessage(r) : PQerrorMessage(c->conn));
        PQclear(r);
        return -1;
    }
    *value = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

static const raw_module rp_module = {
    .version = RAW_MODULE_VERSION,
    .size = sizeof(raw_module),
    .client = "libpq",
    .open = rp_open,
    .prepare = rp_prepare,
    .incr = rp_incr,
    .close = rp_close,
};

EXPORT const raw_module *idprime_raw_entry(void)
{
    return &rp_module;
}
