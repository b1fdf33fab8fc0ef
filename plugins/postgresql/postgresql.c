/*
 * postgresql.c - the postgresql store: counters are rows of a table,
 * bumped with one upsert per fetch, over libpq.
 *
 *   postgresql://[user[:password]@]host[:port][,host[:port]...][/dbname]
 *   postgres://...                       the same store
 *   postgresql://%2Fvar%2Frun%2Fpostgresql/db   a unix socket directory
 *   ?synchronous_commit=on|off|local|remote_write|remote_apply
 *                                        per connection (default: the
 *                                        server's setting)
 *   ?sslmode=disable|...|verify-full     as libpq's sslmode
 *
 * Port 5432 where none is given; no dbname: libpq's default (the user's
 * name); no user: libpq's (the OS user, PGUSER). Several hosts are tried
 * in order, and only one that accepts writes is used
 * (target_session_attrs=read-write), so a failover to a promoted standby
 * is followed; the whole connect, every host included, has timeout_ms.
 *
 * The table, created if missing (by the first client, under an advisory
 * lock, so that clients starting together do not race on the catalog):
 *   idprime_counters(name text PRIMARY KEY,
 *                    value bigint NOT NULL CHECK (value >= 0))
 * A bigint cannot hold 2^63, and the CHECK keeps it from going negative,
 * so the table can only hold counter values. Beside it, the sequence
 * idprime_increments: every increment applied, for anyone, takes one
 * value of it in the same statement (RETURNING ... nextval), so it is the
 * server's own count of the increments it executed (testing.roundtrips).
 * pg_stat_user_tables would lag by up to a second per backend (statistics
 * are flushed at most once a second), and pg_stat_statements need not be
 * loaded. After a server crash the sequence may jump by up to 32
 * (sequences log ahead).
 *
 * Every fetch is one statement, one round trip and one commit:
 *   INSERT ... ON CONFLICT (name) DO UPDATE SET value = value + n
 *   WHERE value <= 2^63-1 - n RETURNING value
 * A guard that fails updates nothing and returns no row: IDP_ERANGE, and
 * the value stays as it was. Several counters fetched together are one
 * such statement over two arrays (unnest), their keys sorted so that two
 * clients always lock rows in the same order and never deadlock.
 *
 * A clean close gives back in one statement too (idp_lower: UPDATE ...
 * WHERE value = the end of this client's last batch, over three arrays,
 * sorted by key the same way), its rows locked first in the arrays' order
 * (SELECT ... ORDER BY ... FOR UPDATE), so that it never deadlocks with a
 * fetch or another client's give-back either.
 *
 * Each connection sets statement_timeout = timeout_ms and the URI's
 * synchronous_commit, and prepares its statements, in one round trip; a
 * connection dropped after a lost reply is reopened, with all of that, at
 * the start of the next call (conn.c). At open the plugin warns when the
 * server can lose a committed counter: fsync=off, synchronous_commit=off.
 *
 * This file holds the statements and the methods; open.c the URI, the
 * table and open; conn.c the connection.
 */
#define _GNU_SOURCE /* dup3 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pg_internal.h"


static const char *const pg_schemes[] = {"postgresql", "postgres", NULL};

static const idp_param_spec pg_params[] = {
    {.key = "synchronous_commit", .type = IDP_PARAM_ENUM, .def = NULL,
     .choices = "on|off|local|remote_write|remote_apply",
     .help = "the session's synchronous_commit (default: the server's); "
             "off may lose the last commits in a server crash, and IDs "
             "would repeat; on waits for the synchronous standbys the "
             "server is configured with"},
    {.key = "sslmode", .type = IDP_PARAM_ENUM, .def = NULL,
     .choices = "disable|allow|prefer|require|verify-ca|verify-full",
     .help = "libpq's sslmode (default: libpq's, prefer)"},
    {.key = NULL},
};

/* ---- The SQL ------------------------------------------------------------ */

/* Prepared on every connection (conn.c), after the session's SETs. */
const char pg_sql_prepare[] =
    "PREPARE idp_add(text, bigint) AS"
    " INSERT INTO idprime_counters AS c (name, value) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE SET value = c.value + excluded.value"
    " WHERE c.value <= 9223372036854775807 - excluded.value"
    " RETURNING c.value, nextval('idprime_increments');"
    /* unnest keeps the arrays' order, so rows are locked in key order */
    "PREPARE idp_add_many(text[], bigint[]) AS"
    " INSERT INTO idprime_counters AS c (name, value)"
    " SELECT * FROM unnest($1::text[], $2::bigint[])"
    " ON CONFLICT (name) DO UPDATE SET value = c.value + excluded.value"
    " WHERE c.value <= 9223372036854775807 - excluded.value"
    " RETURNING c.name, c.value, nextval('idprime_increments');"
    "PREPARE idp_raise(text, bigint) AS"
    " INSERT INTO idprime_counters AS c (name, value) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE"
    " SET value = greatest(c.value, excluded.value)"
    " RETURNING c.value;"
    /* giving back: a row is lowered only while it holds the end of this
     * client's last batch; the names lowered come back. The rows are
     * locked first, in the arrays' (key) order: LockRows sits above the
     * Sort, where a plain UPDATE ... FROM would lock them in the join's
     * order (often the table's) and could deadlock with a fetch. A row
     * changed meanwhile is checked again against its expected value. */
    "PREPARE idp_lower(text[], bigint[], bigint[]) AS"
    " WITH l AS (SELECT c.name, u.e, u.v FROM idprime_counters AS c"
    "  JOIN unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY"
    "  AS u(name, e, v, i) ON c.name = u.name AND c.value = u.e"
    "  ORDER BY u.i FOR UPDATE OF c)"
    " UPDATE idprime_counters AS c SET value = l.v FROM l"
    " WHERE c.name = l.name AND c.value = l.e"
    " RETURNING c.name;"
    "PREPARE idp_get(text) AS"
    " SELECT value FROM idprime_counters WHERE name = $1;"
    /* starts_with is byte-exact where LIKE would read '_' and '%' */
    "PREPARE idp_list(text) AS"
    " SELECT name, value FROM idprime_counters WHERE starts_with(name, $1)"
    " ORDER BY name COLLATE \"C\";"
    "PREPARE idp_count AS"
    " SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
    " FROM idprime_increments;";

/* ---- Values ------------------------------------------------------------- */

/* Parses a counter value as the server prints a bigint: a decimal integer
 * in [0, 2^63). Returns 0, or -1 for anything else (a negative value in a
 * table without our CHECK). */
static int pg_parse_value(const char *p, uint64_t *out)
{
    size_t len = strlen(p);
    if (len == 0 || len > 19 || (p[0] == '0' && len > 1))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > IDP_MAX_VALUE)
        return -1;
    *out = v;
    return 0;
}

/* Reads the value in row `row`, column `col` of r for `key`. */
static int pg_result_value(const pg_store *s, const PGresult *r, int row,
                           int col, const char *key, uint64_t *value,
                           idp_error *err)
{
    const char *text = PQgetvalue(r, row, col);
    if (PQgetisnull(r, row, col) || pg_parse_value(text, value) != 0)
        return idp_plugin_error(err, IDP_ESTORE, "'%.64s' on %s holds '%.24s'"
                                ", not a counter value (0..2^63-1)", key,
                                s->where, PQgetisnull(r, row, col) ? "NULL"
                                                                   : text);
    return IDP_OK;
}

static int pg_check_n(const char *key, uint64_t n, idp_error *err)
{
    if (n == 0)
        return idp_plugin_error(err, IDP_EINVAL, "cannot add 0 to '%.64s': "
                                "an increment is 1..2^63-1", key);
    if (n > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot add %" PRIu64 " to "
                                "'%.64s': an increment is 1..2^63-1", n, key);
    return IDP_OK;
}

static int pg_erange(const pg_store *s, const char *key, uint64_t n,
                     idp_error *err)
{
    return idp_plugin_error(err, IDP_ERANGE, "adding %" PRIu64 " to '%.64s' "
                            "on %s would pass 2^63-1; nothing was changed", n,
                            key, s->where);
}

/* ---- Increments --------------------------------------------------------- */

/* Judges the new value v of key after adding n: below n, the row held a
 * negative value (a table without our CHECK). */
static int pg_judge_sum(const pg_store *s, const char *key, uint64_t n,
                        uint64_t v, idp_error *err)
{
    if (v < n)
        return idp_plugin_error(err, IDP_ESTORE, "adding %" PRIu64 " to "
                                "'%.64s' on %s gave %" PRIu64 ": the row held "
                                "a negative value, not a counter", n, key,
                                s->where, v);
    return IDP_OK;
}

static int pg_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    pg_store *s = store;
    int rc = pg_check_n(key, n, err);
    if (rc != IDP_OK || (rc = pg_ready(s, err)) != IDP_OK)
        return rc;
    char num[24], what[128];
    snprintf(num, sizeof num, "%" PRIu64, n);
    snprintf(what, sizeof what, "incrementing '%.64s' by %s", key, num);
    const char *params[] = {key, num};
    PGresult *r;
    if ((rc = pg_exec(s, what, "idp_add", NULL, 2, params, &r, err)) != IDP_OK)
        return rc;
    uint64_t v = 0;
    if (PQntuples(r) == 0)
        rc = pg_erange(s, key, n, err);
    else if ((rc = pg_result_value(s, r, 0, 0, key, &v, err)) == IDP_OK &&
             (rc = pg_judge_sum(s, key, n, v, err)) == IDP_OK)
        *value = v;
    PQclear(r);
    return rc;
}

/* An op of incr_many, sorted by key. */
typedef struct pg_sorted {
    const char *key;
    size_t i;           /* its index in ops */
} pg_sorted;

static int pg_sorted_cmp(const void *a, const void *b)
{
    return strcmp(((const pg_sorted *)a)->key, ((const pg_sorted *)b)->key);
}

/* Appends `text` to w as a double-quoted array element. Returns the end. */
static char *pg_put_element(char *w, const char *text)
{
    *w++ = '"';
    for (; *text != '\0'; text++) {
        if (*text == '"' || *text == '\\')
            *w++ = '\\';
        *w++ = *text;
    }
    *w++ = '"';
    return w;
}

/*
 * The text of the two array parameters for the sorted ops: names
 * {"a","b"} and amounts {1,2}. Returns 0, or -1 out of memory.
 */
static int pg_arrays(const idp_incr_op *ops, const pg_sorted *v, size_t n,
                     char **names, char **nums)
{
    size_t nlen = 3, klen = 3;
    for (size_t j = 0; j < n; j++) {
        nlen += 2 * strlen(v[j].key) + 3;
        klen += 21;
    }
    char *a = malloc(nlen), *b = malloc(klen), *w = a, *x = b;
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return -1;
    }
    *w++ = '{';
    *x++ = '{';
    for (size_t j = 0; j < n; j++) {
        if (j > 0) {
            *w++ = ',';
            *x++ = ',';
        }
        w = pg_put_element(w, v[j].key);
        x += snprintf(x, 21, "%" PRIu64, ops[v[j].i].n);
    }
    *w++ = '}';
    *w = '\0';
    *x++ = '}';
    *x = '\0';
    *names = a;
    *nums = b;
    return 0;
}

/* Fills the ops from the rows (name, value) of idp_add_many; an op without
 * a row was refused by the guard: IDP_ERANGE. */
static void pg_many_results(const pg_store *s, idp_incr_op *ops,
                            const pg_sorted *v, size_t n, const PGresult *r,
                            idp_error *err_ops)
{
    for (int row = 0; row < PQntuples(r); row++) {
        pg_sorted want = {.key = PQgetvalue(r, row, 0)};
        const pg_sorted *hit = bsearch(&want, v, n, sizeof *v, pg_sorted_cmp);
        if (hit == NULL)
            continue;
        idp_incr_op *op = &ops[hit->i];
        idp_error *e = err_ops != NULL ? &err_ops[hit->i] : NULL;
        uint64_t val = 0;
        op->status = pg_result_value(s, r, row, 1, op->key, &val, e);
        if (op->status == IDP_OK)
            op->status = pg_judge_sum(s, op->key, op->n, val, e);
        if (op->status == IDP_OK)
            op->value = val;
    }
    for (size_t j = 0; j < n; j++) {
        idp_incr_op *op = &ops[v[j].i];
        if (op->status == -1)
            op->status = pg_erange(s, op->key, op->n,
                                   err_ops != NULL ? &err_ops[v[j].i] : NULL);
    }
}

/*
 * All the increments in one statement, one round trip and one commit.
 * An op whose n is out of range gets its error and is not sent. Should
 * the same key come twice (the host never asks that), one statement could
 * not update its row twice: then every op goes alone, in turn.
 */
static int pg_incr_many(void *store, idp_incr_op *ops, size_t nops,
                        idp_error *err_ops)
{
    pg_store *s = store;
    idp_error *err = err_ops; /* the whole call's error: err_ops[0] */
    pg_sorted *v = calloc(nops > 0 ? nops : 1, sizeof *v);
    if (v == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                                "increments", nops);
    size_t n = 0;
    for (size_t i = 0; i < nops; i++) {
        ops[i].value = 0;
        ops[i].status = pg_check_n(ops[i].key, ops[i].n,
                                   err_ops != NULL ? &err_ops[i] : NULL);
        if (ops[i].status == IDP_OK) {
            ops[i].status = -1;   /* not answered yet */
            v[n++] = (pg_sorted){ops[i].key, i};
        }
    }
    qsort(v, n, sizeof *v, pg_sorted_cmp);
    int dup = 0, rc = IDP_OK;
    for (size_t j = 1; j < n && !dup; j++)
        dup = strcmp(v[j - 1].key, v[j].key) == 0;
    if (dup) {
        for (size_t j = 0; j < n; j++) {
            idp_incr_op *op = &ops[v[j].i];
            op->status = pg_incr(s, op->key, op->n, &op->value,
                                 err_ops != NULL ? &err_ops[v[j].i] : NULL);
        }
        free(v);
        return IDP_OK;
    }
    char *names = NULL, *nums = NULL;
    if (n == 0 || (rc = pg_ready(s, err)) != IDP_OK)
        goto out;
    if (pg_arrays(ops, v, n, &names, &nums) != 0) {
        rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                              "increments", n);
        goto out;
    }
    char what[64];
    snprintf(what, sizeof what, "incrementing %zu counters at once", n);
    const char *params[] = {names, nums};
    PGresult *r;
    rc = pg_exec(s, what, "idp_add_many", NULL, 2, params, &r, err);
    if (rc == IDP_OK) {
        pg_many_results(s, ops, v, n, r, err_ops);
        PQclear(r);
    }
out:
    free(names);
    free(nums);
    free(v);
    return rc;
}

/* ---- Giving back ----------------------------------------------------- */

/* The three array parameters of idp_lower for the ops v[0..n) (sorted by
 * key): names, expected values, new values. Returns 0, or -1 out of
 * memory. */
static int pg_lower_arrays(const idp_lower_op *ops, const pg_sorted *v,
                           size_t n, char **names, char **expects,
                           char **values)
{
    size_t nlen = 3;
    for (size_t j = 0; j < n; j++)
        nlen += 2 * strlen(v[j].key) + 3;
    char *a = malloc(nlen), *b = malloc(3 + 21 * n), *c = malloc(3 + 21 * n);
    if (a == NULL || b == NULL || c == NULL) {
        free(a);
        free(b);
        free(c);
        return -1;
    }
    char *w = a, *x = b, *y = c;
    *w++ = '{';
    *x++ = '{';
    *y++ = '{';
    for (size_t j = 0; j < n; j++) {
        if (j > 0) {
            *w++ = ',';
            *x++ = ',';
            *y++ = ',';
        }
        w = pg_put_element(w, v[j].key);
        x += snprintf(x, 21, "%" PRIu64, ops[v[j].i].expect);
        y += snprintf(y, 21, "%" PRIu64, ops[v[j].i].value);
    }
    strcpy(w, "}");
    strcpy(x, "}");
    strcpy(y, "}");
    *names = a;
    *expects = b;
    *values = c;
    return 0;
}

/* One idp_lower statement for the sorted ops v[0..n), keys all distinct:
 * the rows it returns are the ops lowered. */
static int pg_lower_run(pg_store *s, idp_lower_op *ops, const pg_sorted *v,
                        size_t n, idp_error *err)
{
    char *names = NULL, *expects = NULL, *values = NULL;
    int rc = pg_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    if (pg_lower_arrays(ops, v, n, &names, &expects, &values) != 0)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                                "counters to give back", n);
    char what[64];
    snprintf(what, sizeof what, "giving back %zu counters", n);
    const char *params[] = {names, expects, values};
    PGresult *r;
    rc = pg_exec(s, what, "idp_lower", NULL, 3, params, &r, err);
    if (rc == IDP_OK) {
        for (int row = 0; row < PQntuples(r); row++) {
            pg_sorted want = {.key = PQgetvalue(r, row, 0)};
            const pg_sorted *hit = bsearch(&want, v, n, sizeof *v,
                                           pg_sorted_cmp);
            if (hit != NULL)
                ops[hit->i].done = 1;
        }
        PQclear(r);
    }
    free(names);
    free(expects);
    free(values);
    return rc;
}

/*
 * Every op's compare-and-set in one statement, one round trip and one
 * commit. Should the same key come twice (the host never asks that), one
 * UPDATE could not tell the two apart: then every op goes alone, in turn.
 * The rows are locked in key order, as a fetch locks them: a give-back
 * never deadlocks with a fetch or another give-back.
 */
static int pg_lower(void *store, idp_lower_op *ops, size_t nops,
                    idp_error *err)
{
    pg_store *s = store;
    pg_sorted *v = calloc(nops > 0 ? nops : 1, sizeof *v);
    if (v == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory for %zu "
                                "counters to give back", nops);
    size_t n = 0;
    for (size_t i = 0; i < nops; i++) {
        ops[i].done = 0;
        ops[i].status = IDP_OK;
        if (ops[i].value >= ops[i].expect || ops[i].expect > IDP_MAX_VALUE)
            ops[i].status = IDP_EINVAL;
        else
            v[n++] = (pg_sorted){ops[i].key, i};
    }
    qsort(v, n, sizeof *v, pg_sorted_cmp);
    int dup = 0, rc = IDP_OK;
    for (size_t j = 1; j < n && !dup; j++)
        dup = strcmp(v[j - 1].key, v[j].key) == 0;
    if (dup) {
        for (size_t j = 0; j < n; j++) {
            idp_error e;
            ops[v[j].i].status = pg_lower_run(s, ops, &v[j], 1, &e);
        }
    } else if (n > 0) {
        rc = pg_lower_run(s, ops, v, n, err);
    }
    free(v);
    return rc;
}

/* ---- Reading and raising ------------------------------------------------ */

static int pg_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    pg_store *s = store;
    int rc = pg_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    char what[96];
    snprintf(what, sizeof what, "reading '%.64s'", key);
    const char *params[] = {key};
    PGresult *r;
    if ((rc = pg_exec(s, what, "idp_get", NULL, 1, params, &r, err)) != IDP_OK)
        return rc;
    uint64_t v = 0;
    if (PQntuples(r) > 0)
        rc = pg_result_value(s, r, 0, 0, key, &v, err);
    if (rc == IDP_OK) {
        *value = v;
        *exists = PQntuples(r) > 0;
    }
    PQclear(r);
    return rc;
}

static int pg_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    pg_store *s = store;
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%.64s' to %"
                                PRIu64 ": values stay below 2^63", key, value);
    int rc = pg_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    char num[24], what[128];
    snprintf(num, sizeof num, "%" PRIu64, value);
    snprintf(what, sizeof what, "raising '%.64s' to %s", key, num);
    const char *params[] = {key, num};
    PGresult *r;
    if ((rc = pg_exec(s, what, "idp_raise", NULL, 2, params, &r, err)) !=
        IDP_OK)
        return rc;
    uint64_t v = 0;
    if (PQntuples(r) == 0)
        rc = idp_plugin_error(err, IDP_ESTORE, "%s on %s returned no row",
                              what, s->where);
    else
        rc = pg_result_value(s, r, 0, 0, key, &v, err);
    if (rc == IDP_OK && result != NULL)
        *result = v;
    PQclear(r);
    return rc;
}

/* Every counter under `prefix`, in byte order. A row that holds no counter
 * value (a table without our CHECK) is logged and skipped, so that one bad
 * row does not stop a migration. */
static int pg_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                   idp_error *err)
{
    pg_store *s = store;
    int rc = pg_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    const char *params[] = {prefix};
    PGresult *r;
    if ((rc = pg_exec(s, "listing the counters", "idp_list", NULL, 1, params,
                      &r, err)) != IDP_OK)
        return rc;
    for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
        const char *name = PQgetvalue(r, row, 0);
        uint64_t v;
        idp_error bad;
        if (pg_result_value(s, r, row, 1, name, &v, &bad) != IDP_OK)
            s->host->log(s->host, IDP_LOG_WARN, "%s; not listed", bad.msg);
        else
            rc = cb(ud, name, v);
    }
    PQclear(r);
    return rc;
}

/* The sequence idprime_increments: one value per increment executed. */
static int pg_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    pg_store *s = store;
    int rc = pg_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    PGresult *r;
    if ((rc = pg_exec(s, "reading idprime_increments", "idp_count", NULL, 0,
                      NULL, &r, err)) != IDP_OK)
        return rc;
    if (PQntuples(r) != 1)
        rc = idp_plugin_error(err, IDP_ESTORE, "idprime_increments on %s "
                              "gave %d rows", s->where, PQntuples(r));
    else
        rc = pg_result_value(s, r, 0, 0, "idprime_increments", count, err);
    PQclear(r);
    return rc;
}

/* ---- Close and fork ----------------------------------------------------- */

void pg_close(void *store)
{
    pg_store *s = store;
    if (s == NULL)
        return;
    pg_drop(s);
    free(s);
}

/*
 * In a child after fork(), for the parent's handle: frees it without a
 * byte reaching the server. PQfinish would send Terminate ('X'), and the
 * server would end the parent's session. So the child's copy of the
 * socket is first replaced by /dev/null (dup3 onto the same descriptor
 * number): libpq's send() of Terminate then fails with ENOTSOCK, and its
 * close() closes /dev/null. Replacing the descriptor drops the child's
 * reference to the socket, which sends nothing (no FIN) while the parent
 * holds its own. Closing the socket ourselves instead would leave libpq
 * writing to a descriptor number that the child may have reused for
 * something else. The plugin uses no TLS session state beyond what
 * PQfinish frees (its close_notify fails the same way).
 * When /dev/null cannot be opened, the PGconn is left as it is (the host
 * keeps the handle reachable): a leak, never a Terminate.
 */
static void pg_drop_child(void *store)
{
    pg_store *s = store;
    if (s == NULL)
        return;
    if (s->conn != NULL) {
        int sock = PQsocket(s->conn);
        if (sock >= 0) {
            int null = open("/dev/null", O_RDWR | O_CLOEXEC);
            int blind = null >= 0 && dup3(null, sock, O_CLOEXEC) == sock;
            if (null >= 0)
                close(null);
            if (!blind)
                return;
        }
        PQfinish(s->conn);
    }
    free(s);
}

static const idp_plugin_testing pg_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = NULL,
    .roundtrips = pg_roundtrips,
    .control = NULL,
};

static const idp_plugin pg_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = (uint32_t)sizeof(idp_plugin),
    .name = "postgresql",
    .schemes = pg_schemes,
    .params = pg_params,
    .open = pg_open,
    .close = pg_close,
    .incr = pg_incr,
    .get = pg_get,
    .incr_many = pg_incr_many,
    .raise_to = pg_raise_to,
    .list = pg_list,
    .drop = pg_drop_child,
    .testing = &pg_testing,
    .lower = pg_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &pg_plugin;
}
