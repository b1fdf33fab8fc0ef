/*
 * sqlite.c - the sqlite store: counters in a SQLite file shared by any
 * number of processes.
 *
 *   sqlite:///abs/path.db          absolute path
 *   sqlite://rel/path.db           relative to the current directory
 *   ?synchronous=FULL|NORMAL       durability of each commit (FULL)
 *   ?delay_ms=N                    for tests and the bench only (a
 *                                  testing key): a simulated round trip
 *
 * Layout of the file (both tables STRICT, so a value can never silently
 * become REAL or TEXT):
 *   idprime_counters(name, value)  one row per counter (prefix + name)
 *   idprime_stats(name, value)     'increments': every increment applied by
 *                                  anyone, bumped in the same transaction,
 *                                  so it is the store's own round-trip count
 *
 * Every write runs inside BEGIN IMMEDIATE, which takes the file's write
 * lock up front (waiting at most timeout_ms through the busy handler), so
 * concurrent writers never deadlock on a lock upgrade. The journal is WAL:
 * readers never block the writer. The parent directory is never created.
 *
 * Beside the database lives `<file>-idprime`, an empty file that only
 * carries "a writer is waiting" flags (OFD locks), so a process committing
 * in a tight loop lets waiting processes in instead of starving them past
 * timeout_ms (see "Waiting for the write lock"). Like any lock file it is
 * left in place: removing it could split waiters between two files.
 */
#define _GNU_SOURCE /* F_OFD_SETLK, F_OFD_GETLK */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

#include "sqlite_internal.h"

static const char *const sq_schemes[] = {"sqlite", "sqlite3", NULL};

static const idp_param_spec sq_params[] = {
    {.key = "synchronous", .type = IDP_PARAM_ENUM, .def = "FULL",
     .choices = "FULL|NORMAL",
     .help = "PRAGMA synchronous: FULL syncs the WAL at every commit; NORMAL "
             "may lose the last commits on power loss (IDs could repeat)"},
    {.key = NULL},
};

/* Test-only keys, in the testing table. */
static const idp_param_spec sq_test_params[] = {
    {.key = "delay_ms", .type = IDP_PARAM_INT, .def = "0", .min = 0,
     .max = 600000,
     .help = "simulated round trip added to every store call (for the bench: "
             "an embedded store compared with network ones)"},
    {.key = NULL},
};

/* ---- Errors ------------------------------------------------------------ */

/*
 * Fills err for a failed SQLite call `rc` while doing `what`, and returns the
 * idprime code: a lock held past timeout_ms is IDP_ETIMEOUT, out of
 * memory IDP_ENOMEM, anything else IDP_ESTORE. Reads the connection's
 * message, so call it before anything else touches the connection.
 */
int sq_error(sq_store *s, int rc, const char *what, idp_error *err)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
        return idp_plugin_error(err, IDP_ETIMEOUT,
            "%s on '%s': the file stayed locked by another "
            "connection for more than timeout_ms=%u (%s)",
            what, s->path, s->host->timeout_ms, sqlite3_errmsg(s->db));
    case SQLITE_NOMEM:
        return idp_plugin_error(err, IDP_ENOMEM, "%s on '%s': out of memory",
                                what, s->path);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_READONLY: {
        int os = sqlite3_system_errno(s->db);
        if (os != 0)
            return idp_plugin_error(err, IDP_ESTORE, "%s on '%s' failed: "
                                    "%s (%s)", what, s->path,
                                    sqlite3_errmsg(s->db), strerror(os));
    }
        /* fall through */
    default:
        return idp_plugin_error(err, IDP_ESTORE, "%s on '%s' failed: %s",
                                what, s->path, sqlite3_errmsg(s->db));
    }
}

/* Steps a statement that returns no row, then resets it. */
/* The simulated round trip of delay_ms, before each store call. */
static void sq_delay(const sq_store *s)
{
    struct timespec ts = {s->delay_ms / 1000, (long)(s->delay_ms % 1000) * 1000000L};
    while (s->delay_ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int sq_run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Reads a counter value from column `col` of the current row: an INTEGER in
 * [0, 2^63) or the file is not ours. */
static int sq_column_value(sq_store *s, sqlite3_stmt *st, int col,
                           uint64_t *value, idp_error *err)
{
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
        return idp_plugin_error(err, IDP_ESTORE, "'%s' holds a non-integer "
                                "counter value", s->path);
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    if (v < 0)
        return idp_plugin_error(err, IDP_ESTORE, "'%s' holds a negative "
                                "counter value", s->path);
    *value = (uint64_t)v;
    return IDP_OK;
}

/* ---- Waiting for the write lock -------------------------------------- */

/* How long a committer stands back, at most, while others wait. */
#define SQ_YIELD_NS 10000000u

uint64_t sq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps 50 to 300 us, jittered so waiters do not wake in step, but no
 * longer than `left_ns`. */
void sq_nap(sq_store *s, uint64_t left_ns)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    uint64_t nap = 50000u + s->rng % 250000u;
    struct timespec ts = {0, (long)(nap < left_ns ? nap : left_ns)};
    nanosleep(&ts, NULL);
}

/*
 * SQLite's locks are polled, not queued: a waiter sleeps and tries again,
 * while a process that commits and begins again at once finds the lock free
 * every time. Under steady load from a few processes a waiter then starves
 * past timeout_ms although the store is healthy. So a handle waiting for
 * BEGIN IMMEDIATE raises a flag (a shared OFD lock on byte 0 of
 * <file>-idprime, dropped by the kernel if the process dies), and a handle
 * about to begin stands back for a moment while any flag is up. Open file
 * description locks, unlike POSIX ones, also separate two handles of one
 * process, and closing the file cannot drop SQLite's own locks (it is not
 * a file SQLite opens).
 */
static int sq_flag(sq_store *s, int cmd, short type)
{
#ifdef F_OFD_SETLK
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0,
                       .l_len = 1};
    if (fcntl(s->waitfd, cmd, &fl) != 0)
        return -1;
    return fl.l_type;
#else
    (void)s, (void)cmd, (void)type;
    return -1;
#endif
}

static void sq_flag_up(sq_store *s)
{
#ifdef F_OFD_SETLK
    if (s->waitfd >= 0 && !s->announced &&
        sq_flag(s, F_OFD_SETLK, F_RDLCK) >= 0)
        s->announced = 1;
#endif
}

static void sq_flag_down(sq_store *s)
{
#ifdef F_OFD_SETLK
    if (s->announced) {
        sq_flag(s, F_OFD_SETLK, F_UNLCK);
        s->announced = 0;
    }
#endif
}

/* Whether another handle (any process) is waiting for the write lock. */
static int sq_others_wait(sq_store *s)
{
#ifdef F_OFD_GETLK
    if (s->waitfd >= 0) {
        int t = sq_flag(s, F_OFD_GETLK, F_WRLCK);
        return t >= 0 && t != F_UNLCK;
    }
#endif
    (void)s;
    return 0;
}

/* Stands back, at most SQ_YIELD_NS (or a quarter of timeout_ms), while
 * other handles wait: they nap at most 0.3 ms, so one of them takes the
 * lock in the meantime. */
static void sq_yield(sq_store *s)
{
    uint64_t cap = (uint64_t)s->host->timeout_ms * 250000u, start = 0;
    if (cap > SQ_YIELD_NS)
        cap = SQ_YIELD_NS;
    while (sq_others_wait(s)) {
        uint64_t now = sq_now_ns();
        if (start == 0)
            start = now;
        else if (now - start >= cap)
            break;
        sq_nap(s, cap - (now - start));
    }
}

/*
 * The busy handler: waits for a lock another connection holds, at most
 * timeout_ms in total, in short jittered naps (SQLite's own busy_timeout
 * naps up to 100 ms, long enough to miss every free moment). Raises this
 * handle's waiter flag while BEGIN waits.
 * Returns non-zero to try again, 0 to give up with SQLITE_BUSY.
 */
int sq_busy(void *ud, int count)
{
    sq_store *s = ud;
    uint64_t now = sq_now_ns();
    uint64_t limit = (uint64_t)s->host->timeout_ms * 1000000u;
    if (count == 0) {
        s->busy_since = now;
        if (s->in_begin)
            sq_flag_up(s);
    }
    if (now - s->busy_since >= limit)
        return 0;
    sq_nap(s, limit - (now - s->busy_since));
    return 1;
}

/* ---- Transactions ------------------------------------------------------ */

/* Takes the write lock, waiting at most timeout_ms; a store opened
 * read-only (open.c) refuses, naming why. */
static int sq_begin(sq_store *s, idp_error *err)
{
    if (s->readonly[0] != '\0')
        return idp_plugin_error(err, IDP_ESTORE, "cannot write '%s': it is "
                                "open read-only (%s); get and list work, "
                                "handing out IDs needs write access", s->path,
                                s->readonly);
    sq_yield(s);
    s->in_begin = 1;
    int rc = sq_run(s->begin);
    s->in_begin = 0;
    sq_flag_down(s);
    return rc == SQLITE_OK ? IDP_OK : sq_error(s, rc, "BEGIN IMMEDIATE", err);
}

/* Undoes the open transaction, if SQLite has not already rolled it back
 * (it does so by itself after some errors). */
static void sq_rollback(sq_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sq_run(s->rollback);
}

static int sq_commit(sq_store *s, idp_error *err)
{
    int rc = sq_run(s->commit);
    if (rc == SQLITE_OK)
        return IDP_OK;
    int code = sq_error(s, rc, "COMMIT", err);
    sq_rollback(s);
    return code;
}

/* ---- Increments -------------------------------------------------------- */

/*
 * Why the guarded upsert of n to key changed nothing: the value is an
 * integer that n would take to 2^63 (IDP_ERANGE), or not an integer at all
 * (a TEXT or BLOB another tool wrote into a table that allows it: SQLite
 * orders those above every number, so the guard fails for them too).
 */
static int sq_refused(sq_store *s, const char *key, uint64_t n,
                      idp_error *err)
{
    sqlite3_stmt *q = NULL;
    char type[16] = "", text[48] = "";
    if (sqlite3_prepare_v2(s->db, "SELECT typeof(value), substr(CAST(value "
                           "AS TEXT), 1, 40) FROM idprime_counters WHERE "
                           "name = ?1", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(q, 0);
            const unsigned char *v = sqlite3_column_text(q, 1);
            snprintf(type, sizeof type, "%s", t != NULL ? (const char *)t : "");
            snprintf(text, sizeof text, "%s", v != NULL ? (const char *)v : "");
        }
    }
    sqlite3_finalize(q);
    if (type[0] != '\0' && strcmp(type, "integer") != 0)
        return idp_plugin_error(err, IDP_ESTORE, "'%s' in '%s' holds a %s "
                                "value ('%s'), not a counter; nothing was "
                                "changed", key, s->path, type, text);
    return idp_plugin_error(err, IDP_ERANGE, "adding %llu to '%s' in '%s' "
                            "would reach 2^63; nothing was changed",
                            (unsigned long long)n, key, s->path);
}

/*
 * Adds n to key inside the open transaction and stores the new value.
 * Returns IDP_ERANGE (nothing changed, the transaction still usable) when
 * the sum would reach 2^63; any other error leaves the transaction to be
 * rolled back by the caller.
 */
static int sq_add(sq_store *s, const char *key, uint64_t n, uint64_t *value,
                  idp_error *err)
{
    if (n == 0 || n > IDP_MAX_VALUE)
        return idp_plugin_error(err, n == 0 ? IDP_EINVAL : IDP_ERANGE,
                                "cannot add %llu to '%s' (expected 1..%lld)",
                                (unsigned long long)n, key,
                                (long long)INT64_MAX);
    sqlite3_bind_text(s->add, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->add, 2, (sqlite3_int64)n);
    int rc = sqlite3_step(s->add), code = IDP_OK;
    if (rc == SQLITE_ROW)
        code = sq_column_value(s, s->add, 0, value, err);
    else if (rc == SQLITE_DONE)
        code = sq_refused(s, key, n, err);
    else
        code = sq_error(s, rc, "increment", err);
    sqlite3_reset(s->add);
    sqlite3_clear_bindings(s->add);
    return code;
}

/* Counts `k` increments in idprime_stats, inside the open transaction. */
static int sq_bump(sq_store *s, uint64_t k, idp_error *err)
{
    sqlite3_bind_int64(s->bump, 1, (sqlite3_int64)k);
    int rc = sq_run(s->bump);
    return rc == SQLITE_OK ? IDP_OK : sq_error(s, rc, "count increment", err);
}

static int sq_incr(void *store, const char *key, uint64_t n, uint64_t *value,
                   idp_error *err)
{
    sq_store *s = store;
    sq_delay(s);
    uint64_t v = 0;
    int code = sq_begin(s, err);
    if (code != IDP_OK)
        return code;
    if ((code = sq_add(s, key, n, &v, err)) != IDP_OK ||
        (code = sq_bump(s, 1, err)) != IDP_OK) {
        sq_rollback(s);
        return code;
    }
    if ((code = sq_commit(s, err)) != IDP_OK)
        return code;
    *value = v;
    return IDP_OK;
}

/* Every op in one transaction. An op that would reach 2^63 gets its own
 * IDP_ERANGE (its reason in err_ops[i]) and the others still apply; a store
 * failure rolls back all (its reason in err_ops[0]). */
static int sq_incr_many(void *store, idp_incr_op *ops, size_t nops,
                        idp_error *err_ops)
{
    sq_store *s = store;
    idp_error *err = err_ops; /* the whole call's error: err_ops[0] */
    sq_delay(s);
    int code = sq_begin(s, err);
    if (code != IDP_OK)
        return code;
    uint64_t applied = 0;
    for (size_t i = 0; i < nops; i++) {
        idp_error operr;
        ops[i].value = 0;
        ops[i].status = sq_add(s, ops[i].key, ops[i].n, &ops[i].value, &operr);
        if (ops[i].status == IDP_OK) {
            applied++;
        } else if (ops[i].status == IDP_ERANGE ||
                   ops[i].status == IDP_EINVAL) {
            if (err_ops != NULL)
                err_ops[i] = operr;
        } else {
            if (err != NULL)
                *err = operr;
            sq_rollback(s);
            return operr.code;
        }
    }
    if (applied > 0 && (code = sq_bump(s, applied, err)) != IDP_OK) {
        sq_rollback(s);
        return code;
    }
    return sq_commit(s, err);
}

static int sq_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    sq_store *s = store;
    sq_delay(s);
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise '%s' to %llu: "
                                "values stay below 2^63", key,
                                (unsigned long long)value);
    int code = sq_begin(s, err);
    if (code != IDP_OK)
        return code;
    uint64_t v = 0;
    sqlite3_bind_text(s->raise, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->raise, 2, (sqlite3_int64)value);
    int rc = sqlite3_step(s->raise);
    if (rc == SQLITE_ROW)
        code = sq_column_value(s, s->raise, 0, &v, err);
    else
        code = sq_error(s, rc, "raise", err);
    sqlite3_reset(s->raise);
    sqlite3_clear_bindings(s->raise);
    if (code != IDP_OK) {
        sq_rollback(s);
        return code;
    }
    if ((code = sq_commit(s, err)) != IDP_OK)
        return code;
    if (result != NULL)
        *result = v;
    return IDP_OK;
}

/* Every op's compare-and-set in one write transaction (one round trip's
 * worth: one lock, one commit); a store failure rolls back all. Not an
 * increment: idprime_stats is left alone. */
static int sq_lower(void *store, idp_lower_op *ops, size_t nops,
                    idp_error *err)
{
    sq_store *s = store;
    sq_delay(s);
    int code = sq_begin(s, err);
    if (code != IDP_OK)
        return code;
    for (size_t i = 0; i < nops; i++) {
        ops[i].done = 0;
        ops[i].status = IDP_OK;
        if (ops[i].value >= ops[i].expect || ops[i].expect > IDP_MAX_VALUE) {
            ops[i].status = IDP_EINVAL;
            continue;
        }
        sqlite3_bind_text(s->lower, 1, ops[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->lower, 2, (sqlite3_int64)ops[i].expect);
        sqlite3_bind_int64(s->lower, 3, (sqlite3_int64)ops[i].value);
        int rc = sq_run(s->lower);
        sqlite3_clear_bindings(s->lower);
        if (rc != SQLITE_OK) {
            code = sq_error(s, rc, "give back", err);
            sq_rollback(s);
            return code;
        }
        ops[i].done = sqlite3_changes(s->db) == 1;
    }
    if ((code = sq_commit(s, err)) != IDP_OK) {
        for (size_t i = 0; i < nops; i++)
            ops[i].done = 0;
        return code;
    }
    return IDP_OK;
}

/* ---- Reads ------------------------------------------------------------- */

static int sq_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    sq_store *s = store;
    sq_delay(s);
    uint64_t v = 0;
    int found = 0, code = IDP_OK;
    sqlite3_bind_text(s->get, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->get);
    if (rc == SQLITE_ROW) {
        found = 1;
        code = sq_column_value(s, s->get, 0, &v, err);
    } else if (rc != SQLITE_DONE) {
        code = sq_error(s, rc, "get", err);
    }
    sqlite3_reset(s->get);
    sqlite3_clear_bindings(s->get);
    if (code != IDP_OK)
        return code;
    *value = v;
    *exists = found;
    return IDP_OK;
}

static int sq_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
                   idp_error *err)
{
    sq_store *s = store;
    int code = IDP_OK, rc;
    sqlite3_bind_text(s->list, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->list, 2, (sqlite3_int64)strlen(prefix));
    while ((rc = sqlite3_step(s->list)) == SQLITE_ROW) {
        uint64_t v;
        const char *name = (const char *)sqlite3_column_text(s->list, 0);
        if (name == NULL) {
            code = idp_plugin_error(err, IDP_ENOMEM, "out of memory listing "
                                    "'%s'", s->path);
            break;
        }
        if ((code = sq_column_value(s, s->list, 1, &v, err)) != IDP_OK)
            break;
        if ((code = cb(ud, name, v)) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        code = sq_error(s, rc, "list", err);
    sqlite3_reset(s->list);
    sqlite3_clear_bindings(s->list);
    return code;
}

static int sq_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    sq_store *s = store;
    uint64_t v = 0;
    int code = IDP_OK, rc = sqlite3_step(s->count);
    if (rc == SQLITE_ROW)
        code = sq_column_value(s, s->count, 0, &v, err);
    else if (rc != SQLITE_DONE)
        code = sq_error(s, rc, "read the increment count", err);
    sqlite3_reset(s->count);
    if (code == IDP_OK)
        *count = v;
    return code;
}

static const idp_plugin_testing sq_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = sq_test_params,
    .roundtrips = sq_roundtrips,
    .control = NULL,
};

static const idp_plugin sq_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = (uint32_t)sizeof(idp_plugin),
    .name = "sqlite",
    .schemes = sq_schemes,
    .params = sq_params,
    .open = sq_open,
    .close = sq_close,
    .incr = sq_incr,
    .get = sq_get,
    .incr_many = sq_incr_many,
    .raise_to = sq_raise_to,
    .list = sq_list,
    .drop = sq_drop,
    .testing = &sq_testing,
    .lower = sq_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &sq_plugin;
}
