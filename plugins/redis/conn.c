/*
 * conn.c - the connection to one Redis server, for every redis plugin:
 * opening it (timeouts, AUTH and SELECT re-applied on every reconnect),
 * sending a command or a pipeline and reading every reply, telling a lost
 * connection from a slow one, reopening a connection that is out of step,
 * and keeping SIGPIPE from killing the program. ops.c, list.c and the
 * plugins send their commands through here.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "redis_internal.h"

/* ---- SIGPIPE ------------------------------------------------------------ */

/*
 * hiredis writes with write(2), so writing to a connection the server has
 * reset raises SIGPIPE, which kills a program that does not ignore it. A
 * library must not change the process' signal handling, so, as libpq does,
 * each exchange blocks SIGPIPE in the calling thread and discards one that
 * it raised; the write then fails with EPIPE like any I/O error.
 */
typedef struct rd_sigpipe {
    sigset_t old;
    int was_pending;
} rd_sigpipe;

/* Two syscalls in the usual case (block, restore), as libpq's guard: a
 * SIGPIPE can be pending already only if the thread had it blocked, and
 * one can have been raised here only if the exchange failed. */
static void rd_sigpipe_block(rd_sigpipe *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    g->was_pending = 0;
    if (sigismember(&g->old, SIGPIPE) == 1 && sigpending(&pending) == 0)
        g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

/* `failed`: the exchange failed (a write may have met a reset). */
static void rd_sigpipe_restore(rd_sigpipe *g, int failed)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (failed && !g->was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        sigtimedwait(&set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- Values ------------------------------------------------------------- */

/* Parses a counter value: a canonical decimal integer in [0, 2^63), as
 * Redis itself writes one. Returns 0 on success, -1 otherwise. */
int rd_parse_value(const char *p, size_t len, uint64_t *out)
{
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

/* A short printable rendering of a reply, for messages. */
const char *rd_describe(const redisReply *r, char *buf, size_t len)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        snprintf(buf, len, "'%.*s'%s", r->len > 40 ? 40 : (int)r->len,
                 r->str, r->len > 40 ? "..." : "");
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(buf, len, "integer %lld", r->integer);
        break;
    case REDIS_REPLY_NIL:
        snprintf(buf, len, "nil");
        break;
    case REDIS_REPLY_ARRAY:
        snprintf(buf, len, "an array of %zu", r->elements);
        break;
    default:
        snprintf(buf, len, "a reply of type %d", r->type);
        break;
    }
    return buf;
}

long long rd_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- The connection ---------------------------------------------------- */

void rd_drop(rd_store *s)
{
    if (s->c != NULL) {
        redisFree(s->c);
        s->c = NULL;
    }
}

/*
 * In a child after fork(), for the parent's connection: frees it without a
 * byte on it. redisFree (hiredis 0.14 and 1.x) only closes the fd
 * (redisNetClose: close(2), no shutdown(2)), and frees the output buffer
 * unsent, the reader and the context; these plugins use no SSL (whose free
 * hook would be the only other code run). Closing the child's copy of the
 * socket sends nothing (no FIN) while the parent still holds its own: the
 * socket is shut only when its last descriptor goes.
 */
void rd_forget(rd_store *s)
{
    rd_drop(s);
}

/* 1 when a hiredis I/O error is a timeout: the socket's SO_RCVTIMEO or the
 * connect deadline passed. errno is the one right after the failed call. */
static int rd_is_timeout(int e, const char *errstr)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT ||
           strstr(errstr, "timed out") != NULL ||
           strstr(errstr, "temporarily unavailable") != NULL;
}

/*
 * A command's reply was lost: fills err naming `what` and the server, drops
 * the connection (it is reopened on the next call) and returns IDP_ETIMEOUT,
 * IDP_ENOMEM or IDP_ESTORE.
 */
static int rd_lost(rd_store *s, const char *what, int e, idp_error *err)
{
    int rc;
    if (s->c->err == REDIS_ERR_OOM)
        rc = idp_plugin_error(err, IDP_ENOMEM, "%s on %s: out of memory",
                              what, s->where);
    else if (s->c->err == REDIS_ERR_IO && rd_is_timeout(e, s->c->errstr))
        rc = idp_plugin_error(err, IDP_ETIMEOUT, "%s on %s: no reply within "
                              "timeout_ms=%u; it may have run, and the "
                              "connection is reopened on the next call",
                              what, s->where, s->host->timeout_ms);
    else
        rc = idp_plugin_error(err, IDP_ESTORE, "%s on %s failed: %s; it may "
                              "have run, and the connection is reopened on "
                              "the next call", what, s->where,
                              s->c->errstr[0] != '\0' ? s->c->errstr
                                                      : "connection lost");
    rd_drop(s);
    return rc;
}

/* 1 when a reply says the server is a replica now (a failover demoted
 * it): READONLY to a write. */
static int rd_is_readonly(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0;
}

/* Appends n commands of any lengths and writes them out (the contract is
 * in redis_internal.h). argcs == NULL: every command has `argc` words. */
static int rd_write(rd_store *s, const char *what, size_t n, int argc,
                    const int *argcs, const char **argv, idp_error *err)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int words = argcs != NULL ? argcs[i] : argc;
        errno = 0;
        if (redisAppendCommandArgv(s->c, words, argv + at, NULL) != REDIS_OK)
            return rd_lost(s, what, errno, err);
        at += (size_t)words;
    }
    int done = 0;
    while (!done) {
        errno = 0;
        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            return rd_lost(s, what, errno, err);
    }
    return IDP_OK;
}

/* Reads n replies into replies[]; on a lost one frees those read. A
 * READONLY reply drops the connection afterwards where s->readonly_drops
 * says so (every reply was read: the connection is in step, but it leads
 * to a replica now). */
static int rd_read(rd_store *s, const char *what, size_t n,
                   redisReply **replies, idp_error *err)
{
    size_t got = 0;
    int readonly = 0;
    while (got < n) {
        void *r = NULL;
        errno = 0;
        if (redisGetReply(s->c, &r) != REDIS_OK || r == NULL) {
            int rc = rd_lost(s, what, errno, err);
            while (got > 0)
                freeReplyObject(replies[--got]);
            return rc;
        }
        readonly |= rd_is_readonly(r);
        replies[got++] = r;
    }
    if (readonly && s->readonly_drops) {
        s->host->log(s->host, IDP_LOG_INFO, "%s answered READONLY: it is a "
                     "replica now; the next call asks where the master is",
                     s->where);
        rd_drop(s);
    }
    return IDP_OK;
}

int rd_send_start(rd_store *s, const char *what, size_t n, const int *argcs,
                  const char **argv, idp_error *err)
{
    int rc = rd_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    rd_sigpipe g;
    rd_sigpipe_block(&g);
    rc = rd_write(s, what, n, 0, argcs, argv, err);
    rd_sigpipe_restore(&g, rc != IDP_OK);
    return rc;
}

int rd_send_finish(rd_store *s, const char *what, size_t n,
                   redisReply **replies, idp_error *err)
{
    rd_sigpipe g;
    rd_sigpipe_block(&g);
    int rc = rd_read(s, what, n, replies, err);
    rd_sigpipe_restore(&g, rc != IDP_OK);
    return rc;
}

/* Several commands of any lengths in one round trip (the contract is in
 * redis_internal.h). argcs == NULL: every command has `argc` words. */
static int rd_send(rd_store *s, const char *what, size_t n, int argc,
                   const int *argcs, const char **argv, redisReply **replies,
                   idp_error *err)
{
    rd_sigpipe g;
    rd_sigpipe_block(&g);
    int rc = rd_write(s, what, n, argc, argcs, argv, err);
    if (rc == IDP_OK)
        rc = rd_read(s, what, n, replies, err);
    rd_sigpipe_restore(&g, rc != IDP_OK);
    return rc;
}

int rd_pipeline(rd_store *s, const char *what, size_t n, int argc,
                const char **argv, redisReply **replies, idp_error *err)
{
    return rd_send(s, what, n, argc, NULL, argv, replies, err);
}

int rd_pipeline_v(rd_store *s, const char *what, size_t n, const int *argcs,
                  const char **argv, redisReply **replies, idp_error *err)
{
    return rd_send(s, what, n, 0, argcs, argv, replies, err);
}

/* One command, one reply; see rd_pipeline. */
int rd_cmd(rd_store *s, const char *what, int argc, const char **argv,
           redisReply **reply, idp_error *err)
{
    return rd_pipeline(s, what, 1, argc, argv, reply, err);
}

/*
 * Connects, sets the command timeout, and applies AUTH and SELECT. On
 * success s->c is the new connection; on error fills err and leaves s->c
 * NULL.
 */
int rd_connect(rd_store *s, idp_error *err)
{
    errno = 0;
    redisContext *c = s->socket != NULL
                          ? redisConnectUnixWithTimeout(s->socket, s->tv)
                          : redisConnectWithTimeout(s->hostname, s->port,
                                                    s->tv);
    int e = errno;
    if (c == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "unable to connect to %s: "
                                "out of memory", s->where);
    if (c->err != 0) {
        int timeout = c->err == REDIS_ERR_IO && rd_is_timeout(e, c->errstr);
        int rc = timeout
            ? idp_plugin_error(err, IDP_ETIMEOUT, "unable to connect to %s "
                               "within timeout_ms=%u: %s", s->where,
                               s->host->timeout_ms, c->errstr)
            : idp_plugin_error(err, IDP_ESTORE, "unable to connect to %s: %s",
                               s->where, c->errstr);
        redisFree(c);
        return rc;
    }
    if (redisSetTimeout(c, s->tv) != REDIS_OK) {
        int rc = idp_plugin_error(err, IDP_ESTORE, "cannot set a timeout of "
                                  "timeout_ms=%u on the connection to %s: %s",
                                  s->host->timeout_ms, s->where, c->errstr);
        redisFree(c);
        return rc;
    }
    s->c = c;

    redisReply *r;
    int rc;
    if (s->password != NULL) {
        int user = s->user[0] != '\0';
        const char *argv[3] = {"AUTH", s->user, s->password};
        if (!user)
            argv[1] = s->password;
        if ((rc = rd_cmd(s, "AUTH", user ? 3 : 2, argv, &r, err)) != IDP_OK)
            return rc;
        if (r->type == REDIS_REPLY_ERROR) {
            rc = idp_plugin_error(err, IDP_ESTORE, "authentication to %s%s%s%s "
                                  "failed: %s", s->where,
                                  user ? " as user '" : "", s->user,
                                  user ? "'" : "", r->str);
            freeReplyObject(r);
            rd_drop(s);
            return rc;
        }
        freeReplyObject(r);
    }
    if (s->db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%ld", s->db);
        const char *argv[] = {"SELECT", db};
        if ((rc = rd_cmd(s, "SELECT", 2, argv, &r, err)) != IDP_OK)
            return rc;
        if (r->type == REDIS_REPLY_ERROR) {
            rc = idp_plugin_error(err, IDP_ESTORE, "cannot select db %ld on "
                                  "%s: %s (db must be below the server's "
                                  "'databases' setting)", s->db, s->where,
                                  r->str);
            freeReplyObject(r);
            rd_drop(s);
            return rc;
        }
        freeReplyObject(r);
    }
    return IDP_OK;
}

/*
 * Makes sure there is a connection before a command is sent: reopens one
 * dropped by an earlier failure, and one the server has closed since the
 * last call (its idle timeout, a restart, CLIENT KILL). Every reply is
 * always read, so a healthy idle connection has nothing to read; one that
 * polls readable is at EOF or out of step, and as nothing of this call has
 * been sent yet, it is reopened rather than reported.
 */
int rd_ready(rd_store *s, idp_error *err)
{
    if (s->c != NULL) {
        struct pollfd p = {.fd = s->c->fd, .events = POLLIN};
        /* bytes hiredis read past the last reply (a second reply in the
         * same segment) are as out of step as bytes still in the socket */
        if (s->c->reader->pos < s->c->reader->len || poll(&p, 1, 0) > 0)
            rd_drop(s);
    }
    if (s->c != NULL)
        return IDP_OK;
    return s->reconnect != NULL ? s->reconnect(s, err) : rd_connect(s, err);
}

