/*
 * conn.c - the postgresql plugin's connection: opening it within
 * timeout_ms, sending a statement and reading its reply with a deadline,
 * telling a server's error (the statement rolled back, the connection
 * fine) from a lost reply (it may have run: the connection is dropped and
 * reopened on the next call, the statement never sent again), and
 * reopening a connection the server closed while it was idle.
 *
 * libpq's blocking calls (PQexec, PQconnectdb) have no socket timeout: a
 * server that hangs (SIGSTOP, a dead host) would hold them forever. So
 * everything here uses libpq's asynchronous API on a non-blocking
 * connection and waits with poll() on PQsocket up to the call's deadline.
 * statement_timeout (set to timeout_ms on every connection) is the
 * server's side of the same bound: a statement the client gave up on does
 * not run on, holding locks, once the server is responsive.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_internal.h"

uint64_t pg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pg_deadline(const pg_store *s)
{
    return pg_now_ns() + (uint64_t)s->host->timeout_ms * 1000000u;
}

/*
 * Waits until the connection's socket is ready for `events` or the
 * deadline passes. Returns 1 when ready (or when libpq has no socket,
 * so that its next call reports why), 0 at the deadline, -1 on a poll
 * error (errno set).
 */
static int pg_wait(PGconn *c, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = pg_now_ns();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = PQsocket(c), .events = events};
        if (p.fd < 0)
            return 1;
        int ms = (int)((deadline - now + 999999u) / 1000000u);
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/*
 * The cause in a libpq message, on one line: 'connection to server at
 * "h", port 5432 failed: Connection refused\n\tIs the server running...'
 * gives "Connection refused". Returns buf.
 */
static const char *pg_cause(const char *msg, char *buf, size_t len)
{
    /* libpq's own text of a server message starts with its severity */
    static const char *const severity[] = {"FATAL:  ", "ERROR:  ",
                                           "PANIC:  "};
    for (size_t i = 0; i < sizeof severity / sizeof *severity; i++)
        if (strncmp(msg, severity[i], strlen(severity[i])) == 0)
            msg += strlen(severity[i]);
    const char *end = strchr(msg, '\n');
    size_t n = end != NULL ? (size_t)(end - msg) : strlen(msg);
    const char *failed = NULL;
    for (const char *p = msg; (p = strstr(p, "failed: ")) != NULL &&
                              p < msg + n; p++)
        failed = p;
    if (failed != NULL) {
        n -= (size_t)(failed + strlen("failed: ") - msg);
        msg = failed + strlen("failed: ");
    }
    while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r'))
        n--;
    snprintf(buf, len, "%.*s", (int)n, n > 0 ? msg : "connection lost");
    return buf;
}

/* Server notices ("relation already exists, skipping") go to the log at
 * DEBUG: libpq's default receiver would print them on stderr. */
static void pg_notice(void *arg, const PGresult *r)
{
    pg_store *s = arg;
    char cause[200];
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    s->host->log(s->host, IDP_LOG_DEBUG, "%s: %s", s->where,
                 pg_cause(m != NULL ? m : PQresultErrorMessage(r), cause,
                          sizeof cause));
}

void pg_drop(pg_store *s)
{
    if (s->conn != NULL) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
}

/*
 * The reply to `what` was lost (no reply by the deadline, a broken
 * connection): fills err, drops the connection and returns IDP_ETIMEOUT
 * or IDP_ESTORE, with the server's own words when it said why (`said`,
 * may be NULL). The statement may have run; it is never sent again.
 */
static int pg_lost(pg_store *s, const char *what, int timed_out,
                   const PGresult *said, idp_error *err)
{
    char cause[200];
    const char *m = said != NULL
        ? PQresultErrorField(said, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int rc;
    if (timed_out)
        rc = idp_plugin_error(err, IDP_ETIMEOUT, "%s on %s: no reply within "
                              "timeout_ms=%u; it may have run, and the "
                              "connection is reopened on the next call",
                              what, s->where, s->host->timeout_ms);
    else
        rc = idp_plugin_error(err, IDP_ESTORE, "%s on %s failed: %s; it may "
                              "have run, and the connection is reopened on "
                              "the next call", what, s->where,
                              pg_cause(m != NULL ? m : PQerrorMessage(s->conn),
                                       cause, sizeof cause));
    pg_drop(s);
    return rc;
}

/* 1 for the SQLSTATEs after which the server closes the session: class
 * 08 (connection exception), 57P01..57P05 (shutdown, crash, idle
 * timeouts). */
static int pg_state_ends_session(const char *state)
{
    return state != NULL && (strncmp(state, "08", 2) == 0 ||
                             strncmp(state, "57P", 3) == 0);
}

/* Fills err for an error the server answered to `what` (the statement was
 * rolled back) and returns the idprime code. */
static int pg_server_error(pg_store *s, const char *what, const PGresult *r,
                           idp_error *err)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char cause[200];
    pg_cause(m != NULL ? m : PQresultErrorMessage(r), cause, sizeof cause);
    if (state != NULL && strcmp(state, "57014") == 0)
        return idp_plugin_error(err, IDP_ETIMEOUT, "%s on %s: cancelled by "
                                "the server after statement_timeout = "
                                "timeout_ms=%u (%s); nothing was changed",
                                what, s->where, s->host->timeout_ms, cause);
    if (state != NULL && strcmp(state, "22003") == 0)
        return idp_plugin_error(err, IDP_ERANGE, "%s on %s: %s (values stay "
                                "below 2^63); nothing was changed", what,
                                s->where, cause);
    return idp_plugin_error(err, IDP_ESTORE, "%s on %s failed: %s "
                            "(SQLSTATE %s)", what, s->where, cause,
                            state != NULL ? state : "none");
}

/* Sends what the query put in libpq's buffer, waiting at most until the
 * deadline. Returns 0, or -1 (timed out: *timed_out = 1). */
static int pg_flush(PGconn *c, uint64_t deadline, int *timed_out)
{
    for (;;) {
        int f = PQflush(c);
        if (f == 0)
            return 0;
        if (f < 0)
            return -1;
        /* as libpq asks: read while waiting to write, so that a server
         * blocked on sending to us cannot deadlock the exchange */
        int r = pg_wait(c, POLLOUT | POLLIN, deadline);
        if (r == 0)
            *timed_out = 1;
        if (r <= 0 || !PQconsumeInput(c))
            return -1;
    }
}

/* Reads every result of the query sent, up to the deadline: the first
 * error result in *bad, else the last result in *last. Returns 0, or -1
 * when the reply was lost (timed out: *timed_out = 1). */
static int pg_collect(PGconn *c, uint64_t deadline, PGresult **last,
                      PGresult **bad, int *timed_out)
{
    for (;;) {
        while (PQisBusy(c)) {
            int r = pg_wait(c, POLLIN, deadline);
            if (r == 0)
                *timed_out = 1;
            if (r <= 0 || !PQconsumeInput(c))
                return -1;
        }
        PGresult *r = PQgetResult(c);
        if (r == NULL)
            return 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            PQclear(*last);
            *last = r;
        } else if (*bad == NULL) {
            *bad = r;
        } else {
            PQclear(r);
        }
    }
}

int pg_exec(pg_store *s, const char *what, const char *stmt, const char *sql,
            int nparams, const char *const *params, PGresult **res,
            idp_error *err)
{
    PGconn *c = s->conn;
    uint64_t deadline = pg_deadline(s);
    int sent = stmt != NULL
        ? PQsendQueryPrepared(c, stmt, nparams, params, NULL, NULL, 0)
        : nparams > 0
        ? PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0)
        : PQsendQuery(c, sql);
    int timed_out = 0;
    PGresult *last = NULL, *bad = NULL;
    if (!sent || pg_flush(c, deadline, &timed_out) != 0 ||
        pg_collect(c, deadline, &last, &bad, &timed_out) != 0) {
        PQclear(last);
        PQclear(bad);
        return pg_lost(s, what, timed_out, NULL, err);
    }
    const char *state = bad != NULL ? PQresultErrorField(bad, PG_DIAG_SQLSTATE)
                                    : NULL;
    if (PQstatus(c) == CONNECTION_BAD || pg_state_ends_session(state)) {
        int rc = pg_lost(s, what, 0, bad, err);
        PQclear(last);
        PQclear(bad);
        return rc;
    }
    if (bad != NULL) {
        int rc = pg_server_error(s, what, bad, err);
        PQclear(last);
        PQclear(bad);
        return rc;
    }
    if (last == NULL)
        return idp_plugin_error(err, IDP_ESTORE, "%s on %s: the server "
                                "answered no result", what, s->where);
    *res = last;
    return IDP_OK;
}

/*
 * Runs the session's SETs (and, once the table is known, the PREPAREs) on
 * the new connection s->conn, in one round trip. On error drops it.
 */
static int pg_setup_session(pg_store *s, idp_error *err)
{
    size_t a = strlen(s->session), b = s->prepared ? strlen(pg_sql_prepare)
                                                   : 0;
    char *sql = malloc(a + b + 1);
    if (sql == NULL) {
        pg_drop(s);
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    }
    memcpy(sql, s->session, a);
    memcpy(sql + a, pg_sql_prepare, b);
    sql[a + b] = '\0';
    PGresult *r = NULL;
    int rc = pg_exec(s, "setting up the session", NULL, sql, 0, NULL, &r,
                     err);
    free(sql);
    PQclear(r);
    if (rc != IDP_OK)
        pg_drop(s);
    return rc;
}

int pg_connect(pg_store *s, idp_error *err)
{
    char cause[200];
    uint64_t deadline = pg_deadline(s);
    PGconn *c = PQconnectStartParams(s->kw, s->val, 0);
    if (c == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "unable to connect to %s: "
                                "out of memory", s->where);
    PQsetNoticeReceiver(c, pg_notice, s);
    /* as libpq's documentation says: poll for writing first */
    PostgresPollingStatusType st = PQstatus(c) == CONNECTION_BAD
                                       ? PGRES_POLLING_FAILED
                                       : PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int r = pg_wait(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                        deadline);
        if (r <= 0) {
            int e = errno;
            int rc = r == 0
                ? idp_plugin_error(err, IDP_ETIMEOUT, "unable to connect to "
                                   "%s within timeout_ms=%u", s->where,
                                   s->host->timeout_ms)
                : idp_plugin_error(err, IDP_ESTORE, "unable to connect to "
                                   "%s: poll: %s", s->where, strerror(e));
            PQfinish(c);
            return rc;
        }
        st = PQconnectPoll(c);
    }
    if (st == PGRES_POLLING_FAILED) {
        int rc = idp_plugin_error(err, IDP_ESTORE, "unable to connect to %s: "
                                  "%s", s->where,
                                  pg_cause(PQerrorMessage(c), cause,
                                           sizeof cause));
        PQfinish(c);
        return rc;
    }
    /* non-blocking from here on: no send may block past a deadline, and
     * PQfinish's Terminate never blocks on a hung server */
    if (PQsetnonblocking(c, 1) != 0) {
        int rc = idp_plugin_error(err, IDP_ESTORE, "cannot make the "
                                  "connection to %s non-blocking: %s",
                                  s->where, pg_cause(PQerrorMessage(c), cause,
                                                     sizeof cause));
        PQfinish(c);
        return rc;
    }
    s->conn = c;
    return pg_setup_session(s, err);
}

int pg_ready(pg_store *s, idp_error *err)
{
    if (s->conn != NULL) {
        /* Every reply is always read whole, so a healthy idle connection
         * has nothing to read: one that polls readable is at EOF or holds
         * the server's goodbye (57P01 ...). Nothing of this call has been
         * sent yet, so it is reopened rather than reported. */
        struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN};
        if (PQstatus(s->conn) != CONNECTION_OK ||
            PQtransactionStatus(s->conn) != PQTRANS_IDLE || p.fd < 0 ||
            poll(&p, 1, 0) != 0)
            pg_drop(s);
    }
    return s->conn != NULL ? IDP_OK : pg_connect(s, err);
}
