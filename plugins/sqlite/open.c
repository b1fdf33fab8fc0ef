/*
 * open.c - the sqlite store's file: the path the URI names, its folder,
 * the tables and statements, opening and closing (sqlite.c has the store's
 * calls).
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlite_internal.h"

static const char sq_sql_counters[] =
    "CREATE TABLE IF NOT EXISTS idprime_counters("
    " name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL CHECK (value >= 0)) STRICT, WITHOUT ROWID";
static const char sq_sql_stats[] =
    "CREATE TABLE IF NOT EXISTS idprime_stats("
    " name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL CHECK (value >= 0)) STRICT, WITHOUT ROWID";

/* The guard `value <= INT64_MAX - n` keeps the sum below 2^63: SQLite would
 * otherwise turn an overflowing sum into a REAL. When it fails, the row is
 * not updated and RETURNING yields no row, which incr reports as ERANGE. */
static const char sq_sql_add[] =
    "INSERT INTO idprime_counters(name, value) VALUES (?1, ?2)"
    " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
    " WHERE value <= 9223372036854775807 - excluded.value"
    " RETURNING value";
static const char sq_sql_bump[] =
    "INSERT INTO idprime_stats(name, value) VALUES ('increments', ?1)"
    " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value";
static const char sq_sql_raise[] =
    "INSERT INTO idprime_counters(name, value) VALUES (?1, ?2)"
    " ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)"
    " RETURNING value";
/* Giving back on a clean close: lowered only when the row still holds the
 * end of this client's last batch (sqlite3_changes tells whether it did). */
static const char sq_sql_lower[] =
    "UPDATE idprime_counters SET value = ?3 WHERE name = ?1 AND value = ?2";
static const char sq_sql_get[] =
    "SELECT value FROM idprime_counters WHERE name = ?1";
/* A byte-exact prefix match: LIKE and GLOB would treat '_', '%', '*' in the
 * prefix as wildcards. `name >= ?1` lets the primary key bound the scan. */
static const char sq_sql_list[] =
    "SELECT name, value FROM idprime_counters"
    " WHERE name >= ?1"
    " AND substr(CAST(name AS BLOB), 1, ?2) = CAST(?1 AS BLOB)"
    " ORDER BY name";
static const char sq_sql_count[] =
    "SELECT value FROM idprime_stats WHERE name = 'increments'";


/* Opens the waiter flag file; without it (a read-only directory for it,
 * no OFD locks) the store works, only less fairly. */
static void sq_open_flags(sq_store *s)
{
    s->waitfd = -1;
#ifdef F_OFD_SETLK
    size_t n = strlen(s->path) + sizeof "-idprime";
    char *name = malloc(n);
    if (name == NULL)
        return;
    snprintf(name, n, "%s-idprime", s->path);
    /* read-only is enough for a shared lock and for testing one, so users
     * who may only read the file still take part */
    s->waitfd = open(name, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (s->waitfd < 0 && s->host->log != NULL)
        s->host->log(s->host, IDP_LOG_INFO, "cannot open '%s' (%s): waiting "
                     "writers are not favoured", name, strerror(errno));
    free(name);
#endif
}

void sq_close(void *store)
{
    sq_store *s = store;
    if (s == NULL)
        return;
    sqlite3_stmt *all[] = {s->begin, s->commit, s->rollback, s->add, s->bump,
                           s->raise, s->lower, s->get, s->list, s->count};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close_v2(s->db);
    if (s->waitfd >= 0)
        close(s->waitfd);
    free(s->path);
    free(s);
}

/*
 * In a child after fork(), for the parent's handle. The host forks only
 * while no store call is in progress (its fork handler waits for them), so
 * the inherited connection is never inside a write transaction, and then
 * SQLite's own fork notes say the child may sqlite3_close it: the close
 * cannot take the EXCLUSIVE lock the parent's SHARED lock (held for as
 * long as a WAL connection is open) stands against, so it neither
 * checkpoints nor removes the -wal file, and unlocking releases only the
 * child's own POSIX locks, which are none. Closing also clears SQLite's
 * per-process record of the file, so the connection the child opens next
 * takes its locks for real. The waiter flag file's OFD locks belong to
 * the open file description the parent still refers to: closing the
 * child's copy releases nothing the parent holds.
 */
void sq_drop(void *store)
{
    sq_close(store);
}

/*
 * The file the URI names: "/abs/path.db" for sqlite:///abs/path.db,
 * "rel/path.db" for sqlite://rel/path.db. Refuses what a file URI cannot
 * mean (user, password, port, several hosts), naming the part.
 * On success stores a malloc'ed path in *out.
 */
static int sq_file_path(const idp_uri *u, char **out, idp_error *err)
{
    static const char expect[] =
        "(expected sqlite:///abs/path.db or sqlite://rel/path.db)";
    if (u->has_password)
        return idp_plugin_error(err, IDP_EINVAL, "a password makes no sense "
                                "for a SQLite file %s", expect);
    if (u->user[0] != '\0' || strchr(u->authority, '@') != NULL)
        return idp_plugin_error(err, IDP_EINVAL, "a user ('%s') makes no "
                                "sense for a SQLite file %s", u->user, expect);
    if (u->nhosts > 1)
        return idp_plugin_error(err, IDP_EINVAL, "several hosts ('%s') make "
                                "no sense for a SQLite file %s",
                                u->authority, expect);
    const char *head = "";
    if (u->nhosts == 1) {
        if (u->hosts[0].port != 0)
            return idp_plugin_error(err, IDP_EINVAL, "a port ('%s') makes no "
                                    "sense for a SQLite file %s",
                                    u->authority, expect);
        if (strchr(u->authority, '[') != NULL)
            return idp_plugin_error(err, IDP_EINVAL, "'%s' is an IPv6 host, "
                                    "not a file path %s", u->authority,
                                    expect);
        head = u->hosts[0].host;
    }
    size_t hlen = strlen(head), plen = strlen(u->path);
    if (hlen + plen == 0 || (hlen == 0 && strcmp(u->path, "/") == 0))
        return idp_plugin_error(err, IDP_EINVAL, "the URI names no file %s",
                                expect);
    if (plen > 0 && u->path[plen - 1] == '/')
        return idp_plugin_error(err, IDP_EINVAL, "the path '%s%s' names a "
                                "directory, not a file", head, u->path);
    /* SQLite is built with URI filenames: keep "file:..." a plain name. */
    const char *dot = strncmp(head, "file:", 5) == 0 ? "./" : "";
    size_t dlen = strlen(dot);
    char *path = malloc(dlen + hlen + plen + 1);
    if (path == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    memcpy(path, dot, dlen);
    memcpy(path + dlen, head, hlen);
    memcpy(path + dlen + hlen, u->path, plen + 1);
    *out = path;
    return IDP_OK;
}

/*
 * Checks that the file's directory exists and is writable (WAL creates
 * -wal and -shm files beside the database), so the error names the
 * directory and the OS reason rather than SQLite's "unable to open". When
 * the directory, or the file, cannot be written but the file exists and
 * can be read, the store opens read-only instead: s->readonly is set to
 * what cannot be written and why, for the error every write then gets.
 */
static int sq_check_dir(sq_store *s, idp_error *err)
{
    const char *path = s->path, *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat st;
    int e = 0;
    if (stat(dir, &st) != 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        e = errno;
    if (e == ENOENT || e == ENOTDIR)
        return idp_plugin_error(err, IDP_ESTORE, "cannot open '%s': "
                                "directory '%s': %s (it is not created; "
                                "create it or choose another path)", path,
                                dir, strerror(e));
    int readable = faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) == 0;
    if (e == 0) {
        if (readable && faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0 &&
            (errno == EACCES || errno == EROFS))
            snprintf(s->readonly, sizeof s->readonly, "the file: %s",
                     strerror(errno));
        return IDP_OK;
    }
    if (readable && (e == EACCES || e == EROFS || e == EPERM)) {
        snprintf(s->readonly, sizeof s->readonly, "directory '%s': %s", dir,
                 strerror(e));
        return IDP_OK;
    }
    return idp_plugin_error(err, IDP_ESTORE, "cannot open '%s': directory "
                            "'%s': %s (the store writes its database, WAL "
                            "and lock files there: make it writable for "
                            "this user or choose another path)", path, dir,
                            strerror(e));
}

/*
 * Runs one setup statement, storing the text of its first row (if any) in
 * out. SQLite answers SQLITE_BUSY without calling the busy handler where
 * waiting could deadlock (two connections switching a new file to WAL at
 * once), so a busy answer is retried here until `deadline`.
 */
static int sq_setup_step(sq_store *s, const char *sql, uint64_t deadline,
                         char *out, size_t len, idp_error *err)
{
    for (;;) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW && out != NULL) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                snprintf(out, len, "%s", t != NULL ? (const char *)t : "");
            }
            if (rc == SQLITE_ROW || rc == SQLITE_DONE)
                rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        uint64_t now = sq_now_ns();
        if (rc == SQLITE_OK)
            return IDP_OK;
        if ((rc & 0xff) != SQLITE_BUSY || now >= deadline)
            return sq_error(s, rc, sql, err);
        sq_nap(s, deadline - now);
    }
}

static int sq_prepare(sq_store *s, const char *sql, sqlite3_stmt **st,
                      idp_error *err)
{
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                st, NULL);
    return rc == SQLITE_OK ? IDP_OK : sq_error(s, rc, "prepare", err);
}

/* What a writer sets up: the waiter flags, WAL, synchronous, the tables. */
static int sq_setup_writer(sq_store *s, idp_error *err)
{
    sq_open_flags(s);

    uint64_t deadline = sq_now_ns() +
                        (uint64_t)s->host->timeout_ms * 1000000u;
    char mode[32] = "";
    int code = sq_setup_step(s, "PRAGMA journal_mode=WAL", deadline, mode,
                             sizeof mode, err);
    if (code != IDP_OK)
        return code;
    if (strcasecmp(mode, "wal") != 0 && s->host->log != NULL)
        s->host->log(s->host, IDP_LOG_WARN, "'%s' stays in journal mode '%s', "
                     "not WAL: readers and the writer will block each other",
                     s->path, mode);

    /* The host validated the value; map it anyway so only a known word
     * ever reaches the SQL text. */
    const char *sync = s->host->param_str(s->host, "synchronous");
    const char *pragma = sync != NULL && strcasecmp(sync, "NORMAL") == 0
                         ? "PRAGMA synchronous=NORMAL"
                         : "PRAGMA synchronous=FULL";
    if ((code = sq_setup_step(s, pragma, deadline, NULL, 0, err)) != IDP_OK ||
        (code = sq_setup_step(s, sq_sql_counters, deadline, NULL, 0, err))
            != IDP_OK ||
        (code = sq_setup_step(s, sq_sql_stats, deadline, NULL, 0, err))
            != IDP_OK)
        return code;
    return IDP_OK;
}

/*
 * The file as a "file:" URI with `query` (percent-encoding every byte
 * outside [A-Za-z0-9/._~-], so '?', '#' and '%' in a name stay in the
 * name), malloc'ed, or NULL when out of memory.
 */
static char *sq_file_uri(const char *path, const char *query)
{
    size_t n = strlen(path);
    char *uri = malloc(sizeof "file:" + 3 * n + strlen(query) + 1);
    if (uri == NULL)
        return NULL;
    char *o = uri + sprintf(uri, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("/._~-", *p) != NULL)
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    sprintf(o, "?%s", query);
    return uri;
}

/*
 * Opens the file read-only, for a user who may read it but not write its
 * directory (or the file). A WAL file opens read-only only while its -shm
 * and -wal files exist (a writer has it open) or can be created; when
 * there is no -wal file, no connection has changes outside the main file,
 * and it is opened as immutable: read without locks, as it is now.
 */
static int sq_open_readonly(sq_store *s)
{
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READONLY |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        /* the first read of the schema is where a WAL file fails */
        rc = sqlite3_exec(s->db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL,
                          NULL, NULL);
    }
    size_t n = strlen(s->path) + sizeof "-wal";
    char *wal = malloc(n);
    if (wal == NULL)
        return SQLITE_NOMEM;
    snprintf(wal, n, "%s-wal", s->path);
    int no_wal = access(wal, F_OK) != 0 && errno == ENOENT;
    free(wal);
    if (rc == SQLITE_OK || s->db == NULL || !no_wal)
        return rc;
    sqlite3_close_v2(s->db);
    s->db = NULL;
    char *uri = sq_file_uri(s->path, "immutable=1");
    if (uri == NULL)
        return SQLITE_NOMEM;
    rc = sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
                         SQLITE_OPEN_NOMUTEX, NULL);
    free(uri);
    return rc;
}

/* Opens the file, sets WAL, synchronous and the busy timeout, creates the
 * tables and prepares every statement; read-only, only prepares them. */
static int sq_setup(sq_store *s, idp_error *err)
{
    int rc;
    if (s->readonly[0] != '\0') {
        rc = sq_open_readonly(s);
    } else {
        rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE |
                             SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    }
    if (rc != SQLITE_OK) {
        if (s->db == NULL || rc == SQLITE_NOMEM)
            return idp_plugin_error(err, IDP_ENOMEM, "out of memory opening "
                                    "'%s'", s->path);
        return sq_error(s, rc, "open", err);
    }
    sqlite3_extended_result_codes(s->db, 1);
    s->rng = sq_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
    if (s->rng == 0)
        s->rng = 1;
    sqlite3_busy_handler(s->db, sq_busy, s);
    int code = IDP_OK;
    if (s->readonly[0] == '\0' && (code = sq_setup_writer(s, err)) != IDP_OK)
        return code;
    if ((code = sq_prepare(s, "BEGIN IMMEDIATE", &s->begin, err)) != IDP_OK ||
        (code = sq_prepare(s, "COMMIT", &s->commit, err)) != IDP_OK ||
        (code = sq_prepare(s, "ROLLBACK", &s->rollback, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_add, &s->add, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_bump, &s->bump, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_raise, &s->raise, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_lower, &s->lower, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_get, &s->get, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_list, &s->list, err)) != IDP_OK ||
        (code = sq_prepare(s, sq_sql_count, &s->count, err)) != IDP_OK)
        return code;
    return IDP_OK;
}

int sq_open(const idp_host *host, void **store, idp_error *err)
{
    if (sqlite3_libversion_number() < SQ_MIN_VERSION)
        return idp_plugin_error(err, IDP_ESTORE, "SQLite %s is too old "
                                "(STRICT tables need 3.37.0 or later)",
                                sqlite3_libversion());
    sq_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
    s->waitfd = -1;
    s->delay_ms = (unsigned)host->param_int(host, "delay_ms");
    int code = sq_file_path(host->uri, &s->path, err);
    if (code == IDP_OK)
        code = sq_check_dir(s, err);
    if (code == IDP_OK)
        code = sq_setup(s, err);
    if (code != IDP_OK) {
        sq_close(s);
        return code;
    }
    *store = s;
    return IDP_OK;
}
