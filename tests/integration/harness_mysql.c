/*
 * harness_mysql.c - the "mysql" kind of test server: Debian's mariadbd in a
 * data directory of its own, made by mariadb-install-db.
 *
 * The server runs unprivileged (mariadbd refuses root without --user) on
 * 127.0.0.1:PORT and a unix socket DIR/mysqld.sock, with a small buffer
 * pool and redo log so that it starts in well under a second. Its root
 * user has no password and logs in over TCP (no grant tables are
 * skipped), and the database `idprime` exists from the start; the store
 * URI is mysql://root@127.0.0.1:PORT/idprime. Durability is the server's
 * default (innodb_flush_log_at_trx_commit=1, no binary log), so a SIGKILL
 * loses no committed counter.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mysql.h>

#include "harness.h"

/* What every server is made and started with. */
#define MY_BUFFER_POOL "--innodb-buffer-pool-size=16M"
#define MY_LOG_SIZE "--innodb-log-file-size=4M"
#define MY_DATABASE "idprime"

/*
 * Makes DIR/data with mariadb-install-db, as the server's user: the
 * system tables, a root user without a password (authentication "normal",
 * not the unix socket's), no test database, and the database the URI
 * names (created by an --extra-file script, so the server needs no
 * second start).
 */
static int mysql_prepare(server *s)
{
    char datadir[PATH_MAX + 32], extra[PATH_MAX + 32], init[PATH_MAX + 16],
        tmpdir[PATH_MAX + 16];
    snprintf(init, sizeof init, "%s/init.sql", s->dir);
    FILE *f = fopen(init, "w");
    if (f == NULL) {
        fprintf(stderr, "harness: cannot write %s: %s\n", init,
                strerror(errno));
        return -1;
    }
    fprintf(f, "CREATE DATABASE IF NOT EXISTS " MY_DATABASE ";\n");
    if (fclose(f) != 0 || chmod(init, 0644) != 0) {
        fprintf(stderr, "harness: cannot write %s: %s\n", init,
                strerror(errno));
        return -1;
    }
    snprintf(datadir, sizeof datadir, "--datadir=%s/data", s->dir);
    snprintf(extra, sizeof extra, "--extra-file=%s", init);
    /* temporary tables in the server's own folder: two bootstraps at once
     * in a shared /tmp can meet ("Unknown table 'mysql.tmp_user_sys'") */
    snprintf(tmpdir, sizeof tmpdir, "--tmpdir=%s", s->dir);
    char *argv[] = {"mariadb-install-db", "--no-defaults", datadir, tmpdir,
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db", "--skip-name-resolve", MY_BUFFER_POOL,
                    MY_LOG_SIZE, extra, NULL};
    return harness_run(s, argv);
}

/* mariadbd on 127.0.0.1:PORT and DIR/mysqld.sock, its errors on stderr
 * (the harness's log of it). Returns 0 words (exec fails, and the log
 * says why) if the paths do not fit in `store`. */
static int mysql_command(const server *s, char **argv, char *store,
                         size_t len)
{
    /* five words in `store`, one after the other */
    size_t at = 0;
    char *w[5];
    int n[5];
    w[0] = store;
    n[0] = snprintf(w[0], len, "--datadir=%s/data", s->dir);
    for (int i = 1; i < 5; i++) {
        if (n[i - 1] < 0 || (size_t)n[i - 1] >= len - at - 1)
            goto toolong;
        at += (size_t)n[i - 1] + 1;
        w[i] = store + at;
        if (i == 1)
            n[i] = snprintf(w[i], len - at, "--socket=%s/mysqld.sock", s->dir);
        else if (i == 2)
            n[i] = snprintf(w[i], len - at, "--pid-file=%s/mysqld.pid",
                            s->dir);
        else if (i == 3)
            n[i] = snprintf(w[i], len - at, "--port=%d", s->port);
        else
            n[i] = snprintf(w[i], len - at, "--tmpdir=%s", s->dir);
    }
    if (n[4] < 0 || (size_t)n[4] >= len - at)
        goto toolong;
    char *base[] = {"mariadbd", "--no-defaults", w[0], w[3], w[4],
                    "--bind-address=127.0.0.1", w[1], w[2],
                    "--skip-name-resolve", MY_BUFFER_POOL, MY_LOG_SIZE,
                    "--innodb-fast-shutdown=2"};
    int argc = 0;
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        argv[argc++] = base[i];
    return argc;
toolong:
    fprintf(stderr, "harness: the paths of %s do not fit the command line\n",
            s->dir);
    return 0;
}

/* Drops a trailing '/' of a directory name, in place. */
static void trim_slash(char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
}

/* 1 when 127.0.0.1:PORT answers as root and its datadir is s's. */
static int mysql_answers(const server *s)
{
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return 0;
    unsigned secs = 1, tcp = MYSQL_PROTOCOL_TCP;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &tcp);
    int ok = 0;
    MYSQL_RES *r = NULL;
    MYSQL_ROW row;
    if (mysql_real_connect(m, "127.0.0.1", "root", NULL, NULL,
                           (unsigned)s->port, NULL, 0) != NULL &&
        mysql_query(m, "SELECT @@datadir") == 0 &&
        (r = mysql_store_result(m)) != NULL &&
        (row = mysql_fetch_row(r)) != NULL && row[0] != NULL) {
        char want[PATH_MAX + 16], got[PATH_MAX + 16], real[PATH_MAX];
        snprintf(want, sizeof want, "%s/data", s->dir);
        snprintf(got, sizeof got, "%s", row[0]);
        trim_slash(got);
        /* the server may show the path resolved (a symlinked TMPDIR) */
        ok = strcmp(got, want) == 0 ||
             (realpath(want, real) != NULL && strcmp(got, real) == 0);
    }
    if (r != NULL)
        mysql_free_result(r);
    mysql_close(m);
    return ok;
}

static char *mysql_uri(const server *s, const char *query, char *buf,
                       size_t len)
{
    snprintf(buf, len, "mysql://root@127.0.0.1:%d/" MY_DATABASE "%s",
             s->port, query != NULL ? query : "");
    return buf;
}

const server_kind harness_kind_mysql = {
    .name = "mysql",
    .unprivileged = 1,
    .prepare = mysql_prepare,
    .command = mysql_command,
    .answers = mysql_answers,
    .uri = mysql_uri,
};
