/*
 * mysql.c - the mysql store: counters are rows of an InnoDB table in a
 * MySQL or MariaDB database, over libmariadb.
 *
 *   mysql://[user[:password]@]host[:port]/DATABASE      TCP, port 3306
 *   mariadb://...                                       the same store
 *   mysql://[user[:password]@][localhost]/DATABASE?socket=/run/mysqld/mysqld.sock
 *   ?table=NAME             the table (idprime_counters), in DATABASE
 *   ?durability=warn|require   a server that can lose a committed
 *                              increment: warned about, or refused
 *
 * A host is reached over TCP, localhost too (libmariadb alone would take
 * localhost for its default socket); only socket= means a unix socket.
 * timeout_ms bounds each call as a whole: connecting, sending, reading.
 *
 * The database must exist (it is never created: that needs rights most
 * accounts should not have); the table is created in it when missing:
 *
 *   name  VARBINARY(1024) PRIMARY KEY   prefix + counter name, byte-exact
 *   value BIGINT NOT NULL CHECK (value >= 0)
 *
 * so the store itself can hold nothing but an integer in [0, 2^63). A table
 * that exists already is checked at open (a varbinary primary key `name`,
 * a bigint `value`) and refused otherwise, naming the column.
 *
 * An increment is one statement, one round trip, its value read from the
 * OK packet:
 *
 *   INSERT INTO t (name, value) VALUES (X'6b6579', LAST_INSERT_ID(n))
 *   ON DUPLICATE KEY UPDATE value = LAST_INSERT_ID(
 *       IF(value <= 9223372036854775807 - n, value + n, value))
 *
 * LAST_INSERT_ID(expr) sets the insert id the OK packet carries. It is
 * also wrapped around n on the insert path: a new row evaluates no
 * UPDATE expression, and without it the OK packet would carry 0 (the
 * trap of this idiom). The affected-rows count of the same packet says
 * which path ran (1: inserted, the value is n; 2: updated) and is checked
 * against the insert id. The IF keeps the value below 2^63: at the limit
 * the row is left as it is (0 affected rows), which is IDP_ERANGE, without
 * an error that would stop the statements behind it in the same round
 * trip. Several counters go in one round trip as one such INSERT each
 * (CLIENT_MULTI_STATEMENTS), every answer read with mysql_next_result.
 * Each statement commits on its own (autocommit): one row lock at a
 * time, so two clients never deadlock, and one counter's failure leaves
 * the others' batches good.
 *
 * A clean close gives back with one UPDATE ... WHERE name = .. AND value =
 * <the end of our last batch> per counter, in one round trip (ms_lower).
 *
 * The store's own count of increments (testing.roundtrips) is the
 * server's Com_insert, which counts every statement of a multi-statement
 * query; raise_to is an INSERT ... SELECT (Com_insert_select), so it is
 * not counted.
 *
 * Durability is the server's: InnoDB syncs its redo log at each commit
 * only with innodb_flush_log_at_trx_commit=1 (a session cannot choose),
 * and with the binary log on, a crash can roll back commits the binary log
 * did not sync unless sync_binlog=1. At open the plugin warns when either
 * is off (durability=require refuses to open instead).
 *
 * This file holds the increments, reads and listing; open.c opening (the
 * URI, the table, durability); conn.c the connection.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "mysql_internal.h"

#define MS_LIST_PAGE 1000    /* rows per SELECT of a listing */

static const char *const ms_schemes[] = {"mysql", "mariadb", NULL};

static const idp_param_spec ms_params[] = {
    {.key = "table", .type = IDP_PARAM_STR, .def = MS_DEFAULT_TABLE,
     .help = "the counters' table in the URI's database ([A-Za-z0-9_$], at "
             "most 64 bytes); created when missing"},
    {.key = "socket", .type = IDP_PARAM_STR, .def = NULL,
     .help = "connect through this unix socket instead of TCP (the URI's "
             "host is then empty or localhost, without a port)"},
    {.key = "durability", .type = IDP_PARAM_ENUM, .def = "warn",
     .choices = "warn|require",
     .help = "a server that can lose a committed increment "
             "(innodb_flush_log_at_trx_commit other than 1, or the binary "
             "log on with sync_binlog other than 1): warn at open, or "
             "refuse to open"},
    {.key = NULL},
};

/* Refuses what no statement should carry: an increment outside 1..2^63-1,
 * a key longer than the name column. */
static int ms_check_op(const ms_store *s, const char *key, uint64_t n,
                       idp_error *err)
{
    if (n == 0 || n > IDP_MAX_VALUE)
        return idp_plugin_error(err, n == 0 ? IDP_EINVAL : IDP_ERANGE,
                                "cannot add %" PRIu64 " to '%s': an increment "
                                "is 1..2^63-1", n, key);
    size_t len = strlen(key);
    if (len > s->name_max)
        return idp_plugin_error(err, IDP_EINVAL, "the key '%.40s...' is %zu "
                                "bytes, longer than the %lu the name column "
                                "of table %s holds (use a shorter prefix)",
                                key, len, s->name_max, s->table);
    return IDP_OK;
}

static void ms_sql_incr(ms_sql *b, const ms_store *s, const char *key,
                        uint64_t n)
{
    ms_sql_add(b, "INSERT INTO `%s` (name, value) VALUES (", s->table);
    ms_sql_key(b, key, strlen(key));
    ms_sql_add(b, ", LAST_INSERT_ID(%" PRIu64 ")) ON DUPLICATE KEY UPDATE "
               "value = LAST_INSERT_ID(IF(value <= %" PRIu64 " - %" PRIu64
               ", value + %" PRIu64 ", value))", n, IDP_MAX_VALUE, n, n);
}

/* ---- Several statements in one round trip ------------------------------- */

/* What incr_many and lower share: the statements' text, each one's name in
 * messages (what) and op (idx), and every answer (out, errs). */
typedef struct ms_batch {
    ms_sql sql;
    size_t n;                /* statements added */
    size_t *idx;             /* statement j is for op idx[j] */
    char (*whats)[300];
    const char **wp;         /* whats[j], as ms_run takes them */
    ms_outcome *out;
    idp_error *errs;
} ms_batch;

static void ms_batch_free(ms_batch *t)
{
    if (t->out != NULL)
        ms_outcomes_free(t->out, t->n);
    free(t->sql.p);
    free(t->idx);
    free(t->whats);
    free(t->wp);
    free(t->out);
    free(t->errs);
}

/* Starts a call of nops statements at the most: the deadline, the
 * connection, room for them all. On error fills err (`ops` says what the
 * memory was for) with nothing left to free. */
static int ms_batch_start(ms_store *s, ms_batch *t, size_t nops,
                          const char *ops, idp_error *err)
{
    memset(t, 0, sizeof *t);
    ms_deadline_start(s);
    int rc = ms_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    t->idx = calloc(nops, sizeof *t->idx);
    t->whats = calloc(nops, sizeof *t->whats);
    t->wp = calloc(nops, sizeof *t->wp);
    t->out = calloc(nops, sizeof *t->out);
    t->errs = calloc(nops, sizeof *t->errs);
    if (t->idx == NULL || t->whats == NULL || t->wp == NULL ||
        t->out == NULL || t->errs == NULL) {
        ms_batch_free(t);
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu %s",
                                nops, ops);
    }
    return IDP_OK;
}

/* Starts the next statement, for op i, named by fmt in messages; the
 * caller then appends its text to t->sql. */
static void ms_batch_add(ms_batch *t, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ms_batch_add(ms_batch *t, size_t i, const char *fmt, ...)
{
    if (t->n > 0)
        ms_sql_add(&t->sql, ";");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->whats[t->n], sizeof t->whats[t->n], fmt, ap);
    va_end(ap);
    t->wp[t->n] = t->whats[t->n];
    t->idx[t->n++] = i;
}

/* Sends the statements added, if any, and reads every answer into
 * t->out and t->errs. Fails (err filled) only when out of memory for the
 * text: a statement's own failure is in its outcome. */
static int ms_batch_run(ms_store *s, ms_batch *t, idp_error *err)
{
    int rc = ms_sql_failed(&t->sql, err);
    if (rc == IDP_OK && t->n > 0)
        ms_run(s, t->wp, t->sql.p, t->sql.len, t->n, t->out, t->errs);
    return rc;
}

/* ---- Increments ---------------------------------------------------------- */

/*
 * Judges the OK packet of one increment of `key` by n: the new value on
 * success; IDP_ERANGE when the value would reach 2^63 (nothing changed);
 * IDP_ESTORE for an answer no counter table can give.
 */
static int ms_incr_outcome(const ms_store *s, const char *key, uint64_t n,
                           const ms_outcome *o, uint64_t *value,
                           idp_error *err)
{
    if (o->code != IDP_OK) {
        /* the IF keeps an increment of a counter value in range: what
         * overflows anyway is a row that holds no counter value */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        if (o->server_errno == MS_ER_DATA_OUT_OF_RANGE)
            return idp_plugin_error(err, IDP_ERANGE, "adding %" PRIu64 " to "
                                    "'%s' overflowed BIGINT, nothing was "
                                    "changed: %s", n, key, why);
        if (o->server_errno == MS_ER_WARN_DATA_OUT_OF_RANGE)
            return idp_plugin_error(err, IDP_ESTORE, "'%s' holds a value "
                                    "outside 0..2^63-1 (a negative one?), not "
                                    "a counter: %s", key, why);
        return o->code;
    }
    uint64_t id = o->insert_id;
    switch (o->affected) {
    case 0:
        return idp_plugin_error(err, IDP_ERANGE, "adding %" PRIu64 " to '%s' "
                                "on %s would reach 2^63 (it holds %" PRIu64
                                "); nothing was changed", n, key, s->where,
                                id);
    case 1:
        if (id == n) {
            *value = n;
            return IDP_OK;
        }
        return idp_plugin_error(err, IDP_ESTORE, "a new row for '%s' on %s "
                                "gave the value %" PRIu64 ", not %" PRIu64,
                                key, s->where, id, n);
    case 2:
        if (id >= n && id <= IDP_MAX_VALUE) {
            *value = id;
            return IDP_OK;
        }
        if (id == 0) /* LAST_INSERT_ID(expr) did not reach the OK packet */
            return idp_plugin_error(err, IDP_ESTORE, "adding %" PRIu64 " to "
                                    "'%s' on %s updated the row but gave no "
                                    "value (a trigger on table %s hides "
                                    "LAST_INSERT_ID, or the row held -%" PRIu64
                                    "): the increment is a gap",
                                    n, key, s->where, s->table, n);
        return idp_plugin_error(err, IDP_ESTORE, "adding %" PRIu64 " to '%s' "
                                "on %s gave %" PRId64 ": the row held a "
                                "negative value or one past 2^63-1, not a "
                                "counter", n, key, s->where, (int64_t)id);
    default:
        return idp_plugin_error(err, IDP_ESTORE, "the increment of '%s' on %s "
                                "affected %" PRIu64 " rows, not 1 or 2 (is "
                                "table %s keyed by name?)", key, s->where,
                                o->affected, s->table);
    }
}

static int ms_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    ms_store *s = store;
    ms_deadline_start(s);
    int rc = ms_check_op(s, key, n, err);
    if (rc != IDP_OK || (rc = ms_ready(s, err)) != IDP_OK)
        return rc;
    ms_sql b = {0};
    ms_sql_incr(&b, s, key, n);
    if ((rc = ms_sql_failed(&b, err)) != IDP_OK)
        return rc;
    char what[300];
    snprintf(what, sizeof what, "incrementing '%s' by %" PRIu64, key, n);
    ms_outcome o;
    ms_run1(s, what, b.p, &o, err);
    rc = ms_incr_outcome(s, key, n, &o, value, err);
    ms_outcomes_free(&o, 1);
    free(b.p);
    return rc;
}

/* All the increments in one round trip, one statement each. An op whose n
 * or key is refused gets its error and is not sent; every other op has
 * its own status and err_ops[i]. The whole call fails (err_ops[0]) only
 * when there is no connection or no memory. */
static int ms_incr_many(void *store, idp_incr_op *ops, size_t nops,
                        idp_error *err_ops)
{
    ms_store *s = store;
    idp_error *err = err_ops; /* the whole call's error: err_ops[0] */
    ms_batch t;
    int rc = ms_batch_start(s, &t, nops, "increments", err);
    if (rc != IDP_OK)
        return rc;
    for (size_t i = 0; i < nops; i++) {
        ops[i].value = 0;
        ops[i].status = ms_check_op(s, ops[i].key, ops[i].n, &t.errs[t.n]);
        if (ops[i].status != IDP_OK) {
            if (err_ops != NULL)
                err_ops[i] = t.errs[t.n];
            continue;
        }
        ms_batch_add(&t, i, "incrementing '%s' by %" PRIu64 " (%zu of %zu "
                     "in one round trip)", ops[i].key, ops[i].n, i + 1, nops);
        ms_sql_incr(&t.sql, s, ops[i].key, ops[i].n);
    }
    rc = ms_batch_run(s, &t, err);
    for (size_t j = 0; rc == IDP_OK && j < t.n; j++) {
        idp_incr_op *op = &ops[t.idx[j]];
        op->status = ms_incr_outcome(s, op->key, op->n, &t.out[j], &op->value,
                                     &t.errs[j]);
        if (op->status != IDP_OK && err_ops != NULL)
            err_ops[t.idx[j]] = t.errs[j];
    }
    ms_batch_free(&t);
    return rc;
}

/* ---- Giving back ------------------------------------------------------ */

/*
 * A clean close gives back: one UPDATE per counter, lowering the row only
 * while it holds the end of this client's last batch (1 affected row:
 * lowered; 0: it held anything else), all in one round trip like
 * incr_many, each committing on its own (one row lock at a time, so no
 * deadlock). The new value is below the old, so a changed row is always
 * counted as affected.
 */
static int ms_lower(void *store, idp_lower_op *ops, size_t nops,
                    idp_error *err)
{
    ms_store *s = store;
    ms_batch t;
    int rc = ms_batch_start(s, &t, nops, "counters to give back", err);
    if (rc != IDP_OK)
        return rc;
    for (size_t i = 0; i < nops; i++) {
        idp_lower_op *op = &ops[i];
        op->done = 0;
        op->status = IDP_OK;
        if (op->value >= op->expect || op->expect > IDP_MAX_VALUE ||
            strlen(op->key) > s->name_max) {
            op->status = IDP_EINVAL;
            continue;
        }
        ms_batch_add(&t, i, "giving back '%s' (%zu of %zu in one round "
                     "trip)", op->key, i + 1, nops);
        ms_sql_add(&t.sql, "UPDATE `%s` SET value = %" PRIu64 " WHERE name = ",
                   s->table, op->value);
        ms_sql_key(&t.sql, op->key, strlen(op->key));
        ms_sql_add(&t.sql, " AND value = %" PRIu64, op->expect);
    }
    rc = ms_batch_run(s, &t, err);
    for (size_t j = 0; rc == IDP_OK && j < t.n; j++) {
        idp_lower_op *op = &ops[t.idx[j]];
        op->status = t.out[j].code;
        op->done = t.out[j].code == IDP_OK && t.out[j].affected == 1;
    }
    ms_batch_free(&t);
    return rc;
}

/* ---- Reading and raising ------------------------------------------------ */

/* Reads a counter value from column `col` of `row`: a bigint in
 * [0, 2^63), or an error naming the key. */
static int ms_row_value(const ms_store *s, const char *key, MYSQL_ROW row,
                        const unsigned long *lens, unsigned col,
                        uint64_t *value, idp_error *err)
{
    if (row[col] == NULL)
        return idp_plugin_error(err, IDP_ESTORE, "'%s' in table %s on %s "
                                "holds NULL, not a counter value", key,
                                s->table, s->where);
    if (ms_parse_value(row[col], lens[col], value) == 0)
        return IDP_OK;
    return idp_plugin_error(err, IDP_ESTORE, "'%s' in table %s on %s holds "
                            "'%.*s', not a counter value (0..2^63-1)%s", key,
                            s->table, s->where,
                            lens[col] > 40 ? 40 : (int)lens[col], row[col],
                            row[col][0] == '-' ? ": it is negative" : "");
}

static int ms_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    ms_store *s = store;
    ms_deadline_start(s);
    int rc = ms_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    ms_sql b = {0};
    ms_sql_add(&b, "SELECT value FROM `%s` WHERE name = ", s->table);
    ms_sql_key(&b, key, strlen(key));
    if ((rc = ms_sql_failed(&b, err)) != IDP_OK)
        return rc;
    char what[300];
    snprintf(what, sizeof what, "reading '%s'", key);
    ms_outcome o;
    if ((rc = ms_run1(s, what, b.p, &o, err)) == IDP_OK) {
        MYSQL_ROW row = o.rows != NULL ? mysql_fetch_row(o.rows) : NULL;
        *value = 0;
        *exists = row != NULL;
        if (row != NULL)
            rc = ms_row_value(s, key, row, mysql_fetch_lengths(o.rows), 0,
                              value, err);
    }
    ms_outcomes_free(&o, 1);
    free(b.p);
    return rc;
}

/* INSERT ... SELECT (counted as Com_insert_select, not as an increment):
 * the row becomes GREATEST(value, v), or v when new, and the OK packet
 * carries the result through LAST_INSERT_ID on either path. */
static int ms_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    ms_store *s = store;
    ms_deadline_start(s);
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%s' to %"
                                PRIu64 ": values stay below 2^63", key, value);
    int rc = ms_check_op(s, key, 1, err);
    if (rc != IDP_OK || (rc = ms_ready(s, err)) != IDP_OK)
        return rc;
    ms_sql b = {0};
    ms_sql_add(&b, "INSERT INTO `%s` (name, value) SELECT ", s->table);
    ms_sql_key(&b, key, strlen(key));
    ms_sql_add(&b, ", LAST_INSERT_ID(%" PRIu64 ") FROM DUAL ON DUPLICATE KEY "
               "UPDATE value = LAST_INSERT_ID(GREATEST(value, %" PRIu64 "))",
               value, value);
    if ((rc = ms_sql_failed(&b, err)) != IDP_OK)
        return rc;
    char what[300];
    snprintf(what, sizeof what, "raising '%s' to %" PRIu64, key, value);
    ms_outcome o;
    if ((rc = ms_run1(s, what, b.p, &o, err)) == IDP_OK) {
        if (o.insert_id < value || o.insert_id > IDP_MAX_VALUE ||
            o.affected > 2)
            rc = idp_plugin_error(err, IDP_ESTORE, "%s on %s gave %" PRIu64
                                  " (%" PRIu64 " rows affected): not a "
                                  "counter value at least %" PRIu64, what,
                                  s->where, o.insert_id, o.affected, value);
        else if (result != NULL)
            *result = o.insert_id;
    }
    ms_outcomes_free(&o, 1);
    free(b.p);
    return rc;
}

/*
 * Every counter under `prefix`, in key order, a page of MS_LIST_PAGE rows
 * per SELECT: the keys with the prefix are the primary key's range that
 * starts at the prefix itself (a byte-exact comparison of varbinary, so
 * '_' or '%' in it are plain bytes), and each page starts after the last
 * key of the one before. A key holding a NUL byte cannot be a counter's
 * and is skipped.
 */
static int ms_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                   idp_error *err)
{
    ms_store *s = store;
    size_t plen = strlen(prefix);
    char *last = NULL;
    size_t lastlen = 0;
    int rc = IDP_OK, done = 0;
    while (rc == IDP_OK && !done) {
        ms_deadline_start(s);
        if ((rc = ms_ready(s, err)) != IDP_OK)
            break;
        ms_sql b = {0};
        ms_sql_add(&b, "SELECT name, value FROM `%s` WHERE name %s ",
                   s->table, last != NULL ? ">" : ">=");
        if (last != NULL)
            ms_sql_key(&b, last, lastlen);
        else
            ms_sql_key(&b, prefix, plen);
        ms_sql_add(&b, " ORDER BY name LIMIT %d", MS_LIST_PAGE);
        if ((rc = ms_sql_failed(&b, err)) != IDP_OK)
            break;
        ms_outcome o;
        rc = ms_run1(s, "listing the counters", b.p, &o, err);
        free(b.p);
        MYSQL_ROW row;
        unsigned long rows = 0;
        while (rc == IDP_OK && o.rows != NULL &&
               (row = mysql_fetch_row(o.rows)) != NULL) {
            const unsigned long *lens = mysql_fetch_lengths(o.rows);
            rows++;
            if (lens[0] < plen || memcmp(row[0], prefix, plen) != 0) {
                done = 1;   /* past the prefix's range */
                break;
            }
            char *key = realloc(last, lens[0] + 1);
            if (key == NULL) {
                rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory "
                                      "listing table %s", s->table);
                break;
            }
            memcpy(key, row[0], lens[0]);
            key[lens[0]] = '\0';
            last = key;
            lastlen = lens[0];
            uint64_t v;
            if (memchr(key, '\0', lastlen) != NULL)
                continue;
            if ((rc = ms_row_value(s, key, row, lens, 1, &v, err)) != IDP_OK)
                break;
            rc = cb(ud, key, v);
        }
        if (rows < MS_LIST_PAGE)
            done = 1;
        ms_outcomes_free(&o, 1);
    }
    free(last);
    return rc;
}

/* Com_insert from SHOW GLOBAL STATUS: every INSERT statement the server
 * ran for anyone since its start or FLUSH STATUS, each statement of a
 * multi-statement query counted. */
static int ms_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    ms_store *s = store;
    ms_deadline_start(s);
    int rc = ms_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    ms_outcome o;
    static const char sql[] =
        "SHOW GLOBAL STATUS WHERE Variable_name = 'Com_insert'";
    if ((rc = ms_run1(s, "SHOW GLOBAL STATUS", sql, &o, err)) == IDP_OK) {
        MYSQL_ROW row = o.rows != NULL ? mysql_fetch_row(o.rows) : NULL;
        char *end = NULL;
        unsigned long long v = 0;
        if (row != NULL && row[1] != NULL)
            v = strtoull(row[1], &end, 10);
        if (end == NULL || end == row[1] || *end != '\0')
            rc = idp_plugin_error(err, IDP_ESTORE, "%s has no Com_insert "
                                  "count in SHOW GLOBAL STATUS", s->where);
        else
            *count = v;
    }
    ms_outcomes_free(&o, 1);
    return rc;
}

/* ---- Open and close ---------------------------------------------------- */

static void ms_close(void *store)
{
    ms_store *s = store;
    if (s == NULL)
        return;
    ms_deadline_start(s);
    ms_disconnect(s);
    free(s);
}

/* In a child after fork(), for the parent's handle (conn.c's ms_forget
 * says how no byte reaches the parent's session). */
static void ms_drop(void *store)
{
    ms_store *s = store;
    if (s == NULL)
        return;
    ms_forget(s);
    free(s);
}

static int ms_open(const idp_host *host, void **store, idp_error *err)
{
    ms_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
    /* the server's own waits for a lock end with ours */
    unsigned secs = (host->timeout_ms + 999u) / 1000u;
    snprintf(s->init_sql, sizeof s->init_sql, "SET SESSION autocommit=1, "
             "sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', "
             "innodb_lock_wait_timeout=%u, lock_wait_timeout=%u",
             secs ? secs : 1, secs ? secs : 1);
    ms_deadline_start(s);
    int rc = ms_setup(s, err);
    if (rc != IDP_OK) {
        ms_close(s);
        return rc;
    }
    *store = s;
    return IDP_OK;
}

static const idp_plugin_testing ms_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = NULL,
    .roundtrips = ms_roundtrips,
    .control = NULL,
};

static const idp_plugin ms_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "mysql",
    .schemes = ms_schemes,
    .params = ms_params,
    .open = ms_open,
    .close = ms_close,
    .incr = ms_incr,
    .get = ms_get,
    .incr_many = ms_incr_many,
    .raise_to = ms_raise_to,
    .list = ms_list,
    .drop = ms_drop,
    .testing = &ms_testing,
    .lower = ms_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &ms_plugin;
}
