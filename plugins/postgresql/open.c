/*
 * open.c - opening the postgresql store: the URI as libpq's connection
 * keywords (hosts, socket folders, the database), the table and the
 * sequence checked or created, and the server's durability checked
 * (postgresql.c has the store's calls, conn.c the connection).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_internal.h"

#define PG_DEFAULT_PORT 5432u
/* pg_advisory_xact_lock key taken while creating the table: "idprime" */
#define PG_CREATE_LOCK "7310595027414280293"

/* One implicit transaction: the advisory lock makes concurrent creators
 * wait for the first, after which IF NOT EXISTS sees its table. */
static const char pg_sql_create[] =
    "SELECT pg_advisory_xact_lock(" PG_CREATE_LOCK ");"
    "CREATE TABLE IF NOT EXISTS idprime_counters ("
    " name text PRIMARY KEY,"
    " value bigint NOT NULL CHECK (value >= 0));"
    "CREATE SEQUENCE IF NOT EXISTS idprime_increments AS bigint";

/* The column types of the table and whether table and sequence exist,
 * with the server's durability settings for this session. */
static const char pg_sql_check[] =
    "SELECT (SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
    "        WHERE attrelid = to_regclass('idprime_counters')"
    "        AND attname = 'name' AND NOT attisdropped),"
    " (SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
    "  WHERE attrelid = to_regclass('idprime_counters')"
    "  AND attname = 'value' AND NOT attisdropped),"
    " to_regclass('idprime_counters') IS NOT NULL,"
    " to_regclass('idprime_increments') IS NOT NULL,"
    " current_setting('fsync'), current_setting('synchronous_commit')";



/* Adds one libpq keyword; the values live as long as the store. */
static void pg_kw(pg_store *s, size_t *at, const char *kw, const char *val)
{
    if (val != NULL && *at < PG_MAX_KW - 1) {
        s->kw[*at] = kw;
        s->val[*at] = val;
        (*at)++;
    }
}

/* Joins the URI's hosts and ports for libpq ("a,b" and "5432,5433") and
 * writes s->where. */
static int pg_hosts(pg_store *s, const char *db, idp_error *err)
{
    const idp_uri *u = s->host->uri;
    size_t hat = 0, pat = 0;
    for (size_t i = 0; i < u->nhosts; i++) {
        const char *h = u->hosts[i].host;
        unsigned port = u->hosts[i].port ? u->hosts[i].port : PG_DEFAULT_PORT;
        if (h[0] == '\0' || strchr(h, ',') != NULL)
            return idp_plugin_error(err, IDP_EINVAL, "host %zu of '%s' is "
                                    "empty or has a ','", i + 1,
                                    u->authority);
        int n = snprintf(s->hosts + hat, sizeof s->hosts - hat, "%s%s",
                         i ? "," : "", h);
        int m = snprintf(s->ports + pat, sizeof s->ports - pat, "%s%u",
                         i ? "," : "", port);
        if (n < 0 || m < 0 || (size_t)n >= sizeof s->hosts - hat ||
            (size_t)m >= sizeof s->ports - pat)
            return idp_plugin_error(err, IDP_EINVAL, "the host list '%s' is "
                                    "too long", u->authority);
        hat += (size_t)n;
        pat += (size_t)m;
    }
    const char *h = u->hosts[0].host;
    int v6 = strchr(h, ':') != NULL;
    snprintf(s->where, sizeof s->where, "%s%.200s%s:%u%s/%.64s",
             v6 ? "[" : "", h, v6 ? "]" : "",
             u->hosts[0].port ? u->hosts[0].port : PG_DEFAULT_PORT,
             u->nhosts > 1 ? ",..." : "", db != NULL ? db : "");
    return IDP_OK;
}

/* Reads the server(s), database, user and password from the URI into the
 * libpq keywords, with the timeout, sslmode and the session's SETs. */
static int pg_target(pg_store *s, idp_error *err)
{
    static const char expect[] = "(expected postgresql://[user[:password]@]"
                                 "host[:port][,host[:port]...][/dbname])";
    const idp_host *h = s->host;
    const idp_uri *u = h->uri;
    if (u->nhosts == 0)
        return idp_plugin_error(err, IDP_EINVAL, "the URI names no host %s",
                                expect);
    const char *db = u->path[0] == '/' ? u->path + 1 : u->path;
    if (strchr(db, '/') != NULL)
        return idp_plugin_error(err, IDP_EINVAL, "the URI path '%s' is not "
                                "a database name %s", u->path, expect);
    if (db[0] == '\0')
        db = NULL;
    int rc = pg_hosts(s, db, err);
    if (rc != IDP_OK)
        return rc;
    snprintf(s->connect_timeout, sizeof s->connect_timeout, "%u",
             (h->timeout_ms + 999) / 1000);
    size_t at = 0;
    pg_kw(s, &at, "host", s->hosts);
    pg_kw(s, &at, "port", s->ports);
    pg_kw(s, &at, "dbname", db);
    pg_kw(s, &at, "user", u->user[0] != '\0' ? u->user : NULL);
    pg_kw(s, &at, "password", u->has_password ? u->password : NULL);
    /* libpq enforces it only in its blocking connect; ours has its own
     * deadline (conn.c), this is libpq's own bound besides */
    pg_kw(s, &at, "connect_timeout", s->connect_timeout);
    pg_kw(s, &at, "application_name", "idprime");
    pg_kw(s, &at, "client_encoding", "UTF8");
    pg_kw(s, &at, "sslmode", h->param_str(h, "sslmode"));
    pg_kw(s, &at, "target_session_attrs",
          u->nhosts > 1 ? "read-write" : NULL);
    s->kw[at] = NULL;
    s->val[at] = NULL;
    /* the host validated it against the choices: only a known word is
     * ever put into the SQL text */
    const char *sync = h->param_str(h, "synchronous_commit");
    snprintf(s->session, sizeof s->session,
             "SET statement_timeout = %u;%s%s%s", h->timeout_ms,
             sync != NULL ? "SET synchronous_commit = '" : "",
             sync != NULL ? sync : "", sync != NULL ? "';" : "");
    return IDP_OK;
}

/* The answer to pg_sql_check. */
typedef struct pg_checked {
    char name_type[64], value_type[64];
    int table, sequence;
    char fsync[16], sync_commit[32];
} pg_checked;

static int pg_check(pg_store *s, pg_checked *c, idp_error *err)
{
    PGresult *r;
    int rc = pg_exec(s, "checking the table", NULL, pg_sql_check, 0, NULL, &r,
                     err);
    if (rc != IDP_OK)
        return rc;
    if (PQntuples(r) != 1 || PQnfields(r) != 6) {
        PQclear(r);
        return idp_plugin_error(err, IDP_ESTORE, "checking the table on %s "
                                "gave %d rows", s->where, PQntuples(r));
    }
    snprintf(c->name_type, sizeof c->name_type, "%s", PQgetvalue(r, 0, 0));
    snprintf(c->value_type, sizeof c->value_type, "%s", PQgetvalue(r, 0, 1));
    c->table = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    c->sequence = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    snprintf(c->fsync, sizeof c->fsync, "%s", PQgetvalue(r, 0, 4));
    snprintf(c->sync_commit, sizeof c->sync_commit, "%s", PQgetvalue(r, 0, 5));
    PQclear(r);
    return IDP_OK;
}

/*
 * Creates the table and the sequence where missing (never touching them
 * otherwise, so a user who may only write rows can use a table made for
 * it), checks the table's column types, and warns when the server can
 * lose a committed counter.
 */
static int pg_setup_table(pg_store *s, idp_error *err)
{
    pg_checked c;
    int rc = pg_check(s, &c, err);
    if (rc == IDP_OK && (!c.table || !c.sequence)) {
        PGresult *r;
        rc = pg_exec(s, "creating table idprime_counters", NULL,
                     pg_sql_create, 0, NULL, &r, err);
        if (rc == IDP_OK) {
            PQclear(r);
            rc = pg_check(s, &c, err);
        }
    }
    if (rc != IDP_OK)
        return rc;
    if (strcmp(c.name_type, "text") != 0 || strcmp(c.value_type, "bigint"))
        return idp_plugin_error(err, IDP_ESTORE, "table idprime_counters on "
                                "%s has name %s and value %s, not text and "
                                "bigint: it is not idprime's", s->where,
                                c.name_type[0] ? c.name_type : "(missing)",
                                c.value_type[0] ? c.value_type : "(missing)");
    if (strcmp(c.fsync, "off") == 0)
        s->host->log(s->host, IDP_LOG_WARN, "%s runs with fsync=off: a crash "
                     "of its host can lose committed counters, and IDs would "
                     "then repeat; set fsync=on", s->where);
    if (strcmp(c.sync_commit, "off") == 0)
        s->host->log(s->host, IDP_LOG_WARN, "%s commits with "
                     "synchronous_commit=off (%s): a server crash can lose "
                     "the last commits, and IDs would then repeat; use "
                     "synchronous_commit=on", s->where,
                     s->host->param_str(s->host, "synchronous_commit") != NULL
                         ? "set by the URI" : "the server's setting");
    return IDP_OK;
}

int pg_open(const idp_host *host, void **store, idp_error *err)
{
    pg_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
    int rc;
    if ((rc = pg_target(s, err)) != IDP_OK ||
        (rc = pg_connect(s, err)) != IDP_OK ||
        (rc = pg_setup_table(s, err)) != IDP_OK) {
        pg_close(s);
        return rc;
    }
    /* from now on every connection prepares the statements: this one too */
    s->prepared = 1;
    PGresult *r;
    if ((rc = pg_exec(s, "preparing the statements", NULL, pg_sql_prepare, 0,
                      NULL, &r, err)) != IDP_OK) {
        pg_close(s);
        return rc;
    }
    PQclear(r);
    *store = s;
    return IDP_OK;
}
