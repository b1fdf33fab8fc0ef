/*
 * harness_postgresql.c - the "postgresql" kind of test server: a fresh
 * cluster made by initdb in the server's directory, run by `postgres`
 * itself (no pg_ctl, so the harness's pid is the postmaster's) on
 * 127.0.0.1 and a unix socket in the same directory.
 *
 * Debian keeps the binaries out of PATH, in /usr/lib/postgresql/VERSION/bin;
 * the newest of those is used, else initdb and postgres from PATH.
 * postgres refuses to run as root, so the kind is unprivileged: as root the
 * harness runs initdb and the server as nobody.
 *
 * The cluster trusts every local connection and has the superuser
 * "postgres"; fsync stays on (as a real server has it), and a test passes
 * "-c fsync=off" and the like as extra arguments, which come after ours and
 * so win.
 */
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "harness.h"

/* A unix socket path must fit sockaddr_un (108 bytes with its NUL):
 * DIR/.s.PGSQL.PORT is the directory and 17 bytes. */
#define SOCKET_DIR_MAX 90

/* 1 when dir/name is an executable file. */
static int executable(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

/* The version in /usr/lib/postgresql/VERSION/bin, for choosing the newest. */
static long bin_version(const char *path)
{
    const char *v = strstr(path, "/postgresql/");
    return v != NULL ? strtol(v + strlen("/postgresql/"), NULL, 10) : -1;
}

/*
 * The folder holding initdb and postgres: the newest Debian-style
 * /usr/lib/postgresql/VERSION/bin, else the first of PATH that has both.
 * "" when none (exec then fails with a message in the server's log).
 */
static const char *pg_bindir(void)
{
    static char dir[PATH_MAX];
    if (dir[0] != '\0')
        return dir;
    glob_t g;
    long best = -1;
    if (glob("/usr/lib/postgresql/*/bin", GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            long v = bin_version(g.gl_pathv[i]);
            if (v > best && executable(g.gl_pathv[i], "postgres") &&
                executable(g.gl_pathv[i], "initdb")) {
                best = v;
                snprintf(dir, sizeof dir, "%s", g.gl_pathv[i]);
            }
        }
        globfree(&g);
    }
    const char *path = getenv("PATH");
    while (dir[0] == '\0' && path != NULL && *path != '\0') {
        const char *end = strchr(path, ':');
        size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
        snprintf(dir, sizeof dir, "%.*s", (int)n, path);
        if (n == 0 || !executable(dir, "postgres") ||
            !executable(dir, "initdb"))
            dir[0] = '\0';
        path = end != NULL ? end + 1 : NULL;
    }
    return dir;
}

/* The cluster's folder: s->dir/data. */
static void data_dir(const server *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/data", s->dir);
}

/* initdb: trust authentication, superuser "postgres", no fsync of the new
 * files (a test cluster), UTF-8 in the C locale whatever the environment's. */
static int pg_prepare(server *s)
{
    char initdb[PATH_MAX + 16], data[PATH_MAX + 8];
    snprintf(initdb, sizeof initdb, "%s/initdb", pg_bindir());
    data_dir(s, data, sizeof data);
    char *argv[] = {initdb, "-D", data, "--auth=trust", "-U", "postgres",
                    "--no-sync", "-E", "UTF8", "--locale=C", NULL};
    if (harness_run(s, argv) != 0) {
        fprintf(stderr, "harness: initdb (%s) failed for %s\n", initdb, data);
        return -1;
    }
    return 0;
}

/* Copies text into store at *at; returns the copy. */
static char *keep(char *store, size_t len, size_t *at, const char *text)
{
    char *p = store + *at;
    int n = snprintf(p, len - *at, "%s", text);
    *at += n >= 0 && (size_t)n < len - *at ? (size_t)n + 1 : len - *at;
    return p;
}

static int pg_command(const server *s, char **argv, char *store, size_t len)
{
    char text[PATH_MAX + 32];
    size_t at = 0;
    int argc = 0;
    snprintf(text, sizeof text, "%s/postgres", pg_bindir());
    argv[argc++] = keep(store, len, &at, text);
    argv[argc++] = "-D";
    data_dir(s, text, sizeof text);
    argv[argc++] = keep(store, len, &at, text);
    argv[argc++] = "-p";
    snprintf(text, sizeof text, "%d", s->port);
    argv[argc++] = keep(store, len, &at, text);
    argv[argc++] = "-c";
    argv[argc++] = "listen_addresses=127.0.0.1";
    /* the socket beside the data, where nobody else looks; none when the
     * path would be too long for a socket */
    argv[argc++] = "-k";
    argv[argc++] = strlen(s->dir) <= SOCKET_DIR_MAX ? (char *)s->dir : "";
    argv[argc++] = "-c";
    argv[argc++] = "fsync=on";
    argv[argc++] = "-c";
    argv[argc++] = "shared_buffers=16MB";
    return argc;
}

/*
 * 1 when the postgres on s->port answers and is ours: its data_directory
 * is s->dir/data, so a server of someone else on the port is never taken
 * for it. A server still starting up refuses the connection: not yet.
 */
static int pg_answers(const server *s)
{
    char port[16], data[PATH_MAX + 8];
    snprintf(port, sizeof port, "%d", s->port);
    data_dir(s, data, sizeof data);
    const char *kw[] = {"host", "port", "user", "dbname", "connect_timeout",
                        "sslmode", "gssencmode", "application_name", NULL};
    const char *val[] = {"127.0.0.1", port, "postgres", "postgres", "2",
                         "disable", "disable", "idprime-harness", NULL};
    PGconn *c = PQconnectdbParams(kw, val, 0);
    int ok = 0;
    if (c != NULL && PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SHOW data_directory");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            char a[PATH_MAX], b[PATH_MAX];
            const char *got = PQgetvalue(r, 0, 0);
            ok = strcmp(got, data) == 0 ||
                 (realpath(got, a) != NULL && realpath(data, b) != NULL &&
                  strcmp(a, b) == 0);
        }
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

static char *pg_uri(const server *s, const char *query, char *buf, size_t len)
{
    snprintf(buf, len, "postgresql://postgres@127.0.0.1:%d/postgres%s",
             s->port, query != NULL ? query : "");
    return buf;
}

const server_kind harness_kind_postgresql = {
    .name = "postgresql",
    .unprivileged = 1,
    .prepare = pg_prepare,
    .command = pg_command,
    .answers = pg_answers,
    .uri = pg_uri,
};
