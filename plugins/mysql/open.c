/*
 * open.c - opening a mysql store: where to connect (the URI: one host or a
 * unix socket, the database as the path, the table parameter), the table
 * (checked when it exists, created when it does not) and the server's
 * durability settings (warned about, or refused with durability=require).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

#include "mysql_internal.h"

#define MS_DEFAULT_PORT 3306
#define MS_NAME_BYTES 1024   /* the name column of a table we create */

/*
 * Reads the server, database, table and credentials from the URI: one TCP
 * host (or ?socket= with no host but localhost), the database as the
 * path, a table name that needs no quoting.
 */
static int ms_target(ms_store *s, idp_error *err)
{
    const idp_host *h = s->host;
    const idp_uri *u = h->uri;
    if (u->nhosts > 1) {
        /* the hosts alone: the authority would show the password */
        char hosts[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < u->nhosts && used < sizeof hosts; i++) {
            int w = snprintf(hosts + used, sizeof hosts - used, "%s%s:%u",
                             i > 0 ? "," : "", u->hosts[i].host,
                             u->hosts[i].port != 0 ? u->hosts[i].port
                                                   : MS_DEFAULT_PORT);
            used += w > 0 ? (size_t)w : 0;
        }
        return idp_plugin_error(err, IDP_EINVAL, "the URI names several hosts "
                                "(%s); the mysql store talks to one server: "
                                "give one host[:port]", hosts);
    }
    const char *sock = h->param_str(h, "socket");
    if (sock != NULL) {
        if (sock[0] == '\0')
            return idp_plugin_error(err, IDP_EINVAL, "socket= is empty "
                                    "(expected socket=/path/to/mysqld.sock)");
        if (u->nhosts == 1 && (u->hosts[0].port != 0 ||
                               (u->hosts[0].host[0] != '\0' &&
                                strcasecmp(u->hosts[0].host, "localhost")
                                    != 0)))
            return idp_plugin_error(err, IDP_EINVAL, "socket=%s names a unix "
                                    "socket, but the URI also names host "
                                    "'%s'%s: leave the host empty or "
                                    "localhost, without a port", sock,
                                    u->hosts[0].host,
                                    u->hosts[0].port != 0 ? " with a port"
                                                          : "");
        s->socket = sock;
        s->hostname = "localhost";
        snprintf(s->where, sizeof s->where, "unix socket %s", sock);
    } else {
        if (u->nhosts == 0 || u->hosts[0].host[0] == '\0')
            return idp_plugin_error(err, IDP_EINVAL, "the URI names no host "
                                    "(expected mysql://[user[:password]@]"
                                    "host[:port]/DATABASE, or "
                                    "?socket=/path/to/mysqld.sock)");
        s->hostname = u->hosts[0].host;
        s->port = u->hosts[0].port != 0 ? u->hosts[0].port : MS_DEFAULT_PORT;
        int v6 = strchr(s->hostname, ':') != NULL;
        snprintf(s->where, sizeof s->where, "%s%s%s:%u", v6 ? "[" : "",
                 s->hostname, v6 ? "]" : "", s->port);
    }
    const char *db = u->path[0] == '/' ? u->path + 1 : u->path;
    if (db[0] == '\0')
        return idp_plugin_error(err, IDP_EINVAL, "the URI names no database "
                                "(expected mysql://[user[:password]@]host"
                                "[:port]/DATABASE; the database must exist, "
                                "the table is created in it)");
    if (strchr(db, '/') != NULL || strlen(db) > 64)
        return idp_plugin_error(err, IDP_EINVAL, "the URI path '%s' is not a "
                                "database name (expected /DATABASE, at most "
                                "64 bytes)", u->path);
    s->database = db;
    const char *t = h->param_str(h, "table");
    size_t tlen = t != NULL ? strlen(t) : 0;
    if (tlen == 0 || tlen > 64 ||
        strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789_$") != tlen)
        return idp_plugin_error(err, IDP_EINVAL, "table=%s is not a table "
                                "name this store takes (1 to 64 of "
                                "[A-Za-z0-9_$])", t != NULL ? t : "");
    s->table = t;
    s->user = u->user[0] != '\0' ? u->user : NULL;
    s->password = u->has_password ? u->password : NULL;
    return IDP_OK;
}

/* What ms_inspect learns of the table and the server. */
typedef struct ms_found {
    int table;             /* the table exists (its columns were checked) */
    char engine[32];       /* its storage engine */
    int durability_known;  /* the three below were read */
    char flush[8];         /* innodb_flush_log_at_trx_commit */
    int log_bin;           /* the binary log is on */
    char sync_binlog[24];
    char why[200];         /* why durability is not known */
} ms_found;

/* Checks the table's columns (rows of information_schema.COLUMNS):
 * `name` a varbinary primary key alone, `value` a bigint. Stores the
 * name column's size in s->name_max. */
static int ms_check_columns(ms_store *s, MYSQL_RES *cols, idp_error *err)
{
    int have_name = 0, have_value = 0;
    MYSQL_ROW r;
    const char *bad = NULL, *badtype = "", *want = "";
    while ((r = mysql_fetch_row(cols)) != NULL) {
        const char *col = r[0] != NULL ? r[0] : "", *type = r[1] ? r[1] : "";
        const char *full = r[2] != NULL ? r[2] : type;
        int pri = r[3] != NULL && strcmp(r[3], "PRI") == 0;
        if (strcasecmp(col, "name") == 0) {
            have_name = 1;
            if (strcasecmp(type, "varbinary") != 0 || !pri) {
                bad = "name", badtype = full;
                want = "varbinary, the primary key";
            }
            s->name_max = r[4] != NULL ? strtoul(r[4], NULL, 10) : 0;
        } else if (strcasecmp(col, "value") == 0) {
            have_value = 1;
            if (strcasecmp(type, "bigint") != 0)
                bad = "value", badtype = full, want = "bigint";
        } else if (pri) {
            bad = col, badtype = full, want = "no part of the primary key";
        }
        if (bad != NULL)
            break;
    }
    if (bad == NULL && (!have_name || !have_value))
        bad = have_name ? "value" : "name", badtype = "missing",
        want = have_name ? "bigint" : "varbinary, the primary key";
    if (bad == NULL)
        return IDP_OK;
    return idp_plugin_error(err, IDP_ESTORE, "table %s in database %s on %s "
                            "is not a counter table: column `%s` is %s, "
                            "expected %s (choose another with ?table=)",
                            s->table, s->database, s->where, bad, badtype,
                            want);
}

/*
 * Looks at the table and the server's durability settings in one round
 * trip: the table's columns (checked when it exists), its engine, and
 * innodb_flush_log_at_trx_commit, log_bin and sync_binlog (a server
 * without them is noted in f->why, not refused).
 */
static int ms_inspect(ms_store *s, ms_found *f, idp_error *err)
{
    memset(f, 0, sizeof *f);
    ms_sql b = {0};
    ms_sql_add(&b, "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLUMN_KEY, "
               "CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS WHERE "
               "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s';"
               "SELECT ENGINE FROM information_schema.TABLES WHERE "
               "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s';"
               "SELECT @@innodb_flush_log_at_trx_commit, @@log_bin, "
               "@@sync_binlog", s->table, s->table);
    int rc = ms_sql_failed(&b, err);
    if (rc != IDP_OK)
        return rc;
    static const char *const whats[] = {
        "reading the table's columns", "reading the table's engine",
        "reading the durability settings"};
    ms_outcome o[3];
    idp_error errs[3];
    ms_run(s, whats, b.p, b.len, 3, o, errs);
    free(b.p);
    MYSQL_ROW r;
    for (int i = 0; i < 2 && rc == IDP_OK; i++)
        if (o[i].code != IDP_OK) {
            *err = errs[i];
            rc = o[i].code;
        }
    if (rc == IDP_OK && mysql_num_rows(o[0].rows) > 0) {
        f->table = 1;
        rc = ms_check_columns(s, o[0].rows, err);
    }
    if (rc == IDP_OK && (r = mysql_fetch_row(o[1].rows)) != NULL)
        snprintf(f->engine, sizeof f->engine, "%s", r[0] ? r[0] : "");
    if (rc == IDP_OK && o[2].code != IDP_OK)
        snprintf(f->why, sizeof f->why, "%s", errs[2].msg);
    else if (rc == IDP_OK && (r = mysql_fetch_row(o[2].rows)) != NULL) {
        f->durability_known = 1;
        snprintf(f->flush, sizeof f->flush, "%s", r[0] ? r[0] : "?");
        f->log_bin = r[1] != NULL && strcmp(r[1], "1") == 0;
        snprintf(f->sync_binlog, sizeof f->sync_binlog, "%s",
                 r[2] ? r[2] : "?");
    }
    ms_outcomes_free(o, 3);
    return rc;
}

/* Creates the table, when missing: see the top of this file. */
static int ms_create_table(ms_store *s, idp_error *err)
{
    ms_sql b = {0};
    ms_sql_add(&b, "CREATE TABLE IF NOT EXISTS `%s` ("
               "name VARBINARY(%d) NOT NULL PRIMARY KEY,"
               " value BIGINT NOT NULL CHECK (value >= 0))"
               " ENGINE=InnoDB COMMENT='idprime counters: name is prefix +"
               " counter, value the last ID handed out'",
               s->table, MS_NAME_BYTES);
    int rc = ms_sql_failed(&b, err);
    if (rc != IDP_OK)
        return rc;
    char what[120];
    snprintf(what, sizeof what, "creating table %s in database %s", s->table,
             s->database);
    ms_outcome o;
    rc = ms_run1(s, what, b.p, &o, err);
    ms_outcomes_free(&o, 1);
    free(b.p);
    return rc;
}

/*
 * Warns (or, with durability=require, refuses) where the server can lose
 * an increment it committed: a lost increment lets a later client hand
 * out the same IDs again. Also warns of a table that is not InnoDB.
 */
static int ms_check_durability(ms_store *s, const ms_found *f, idp_error *err)
{
    const char *mode = s->host->param_str(s->host, "durability");
    int require = mode != NULL && strcmp(mode, "require") == 0;
    char risk[400] = "";
    if (!f->durability_known) {
        if (require)
            return idp_plugin_error(err, IDP_ESTORE, "cannot tell whether %s "
                                    "keeps every commit (durability=require): "
                                    "%s", s->where, f->why);
        s->host->log(s->host, IDP_LOG_INFO, "could not check the durability "
                     "settings of %s: %s", s->where, f->why);
    } else if (strcmp(f->flush, "1") != 0) {
        snprintf(risk, sizeof risk, "%s has innodb_flush_log_at_trx_commit="
                 "%s: a crash can lose increments it committed, and IDs "
                 "would be handed out again; set it to 1", s->where, f->flush);
    } else if (f->log_bin && strcmp(f->sync_binlog, "1") != 0) {
        snprintf(risk, sizeof risk, "%s has the binary log on with "
                 "sync_binlog=%s: a crash can roll back increments it "
                 "committed, and IDs would be handed out again; set "
                 "sync_binlog=1", s->where, f->sync_binlog);
    }
    if (risk[0] != '\0') {
        if (require)
            return idp_plugin_error(err, IDP_ESTORE, "%s (durability=require "
                                    "refuses it)", risk);
        s->host->log(s->host, IDP_LOG_WARN, "%s", risk);
    }
    if (f->engine[0] != '\0' && strcasecmp(f->engine, "InnoDB") != 0)
        s->host->log(s->host, IDP_LOG_WARN, "table %s on %s uses the %s "
                     "engine, not InnoDB: a crash can lose or corrupt "
                     "counters", s->table, s->where, f->engine);
    return IDP_OK;
}

int ms_setup(ms_store *s, idp_error *err)
{
    ms_found f;
    int rc;
    if ((rc = ms_target(s, err)) != IDP_OK ||
        (rc = ms_ready(s, err)) != IDP_OK ||
        (rc = ms_inspect(s, &f, err)) != IDP_OK)
        return rc;
    if (!f.table) {
        if ((rc = ms_create_table(s, err)) != IDP_OK ||
            (rc = ms_inspect(s, &f, err)) != IDP_OK)
            return rc;
        if (!f.table)
            return idp_plugin_error(err, IDP_ESTORE, "table %s was created "
                                    "in database %s on %s but cannot be seen "
                                    "(information_schema)", s->table,
                                    s->database, s->where);
    }
    return ms_check_durability(s, &f, err);
}
