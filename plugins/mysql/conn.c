/*
 * conn.c - the mysql plugin's connection: one deadline per plugin call,
 * opening the connection (timeouts, no auto-reconnect, multi-statements,
 * the session settings), running several statements in one round trip and
 * reading every answer, telling a lost answer from a refused statement,
 * letting go of a connection in a child after fork(), and building
 * statement text. mysql.c and open.c send their statements through here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysql.h>

#include "mysql_internal.h"

/* ---- The deadline ------------------------------------------------------- */

/*
 * libmariadb takes its connect, read and write timeouts in whole seconds,
 * and applies each to every single wait, so a 500 ms timeout would become
 * 1 s per read. Its I/O wait hook (MARIADB_OPT_IO_WAIT) is called for
 * every wait instead of poll(2); this one waits no later than the current
 * call's deadline. The hook has no user pointer, but a store handle is
 * used by one thread at a time and libmariadb waits in the calling
 * thread, so the deadline is the calling thread's, set by
 * ms_deadline_start at the start of each plugin call. The seconds
 * options stay set, rounded up, for a libmariadb without the hook.
 *
 * The thread's deadline is kept through a pthread key, not __thread: a
 * dlopen'ed library's __thread variables live in dynamic TLS, which the
 * leak checker of Debian's gcc 12 (LeakSanitizer) reads wrongly under
 * glibc 2.36 and crashes on ("Tracer caught signal 11").
 */
typedef struct ms_clock {
    uint64_t deadline_ns; /* 0: none (libmariadb's own) */
    int timed_out;        /* a wait of this call timed out */
} ms_clock;

static pthread_key_t ms_clock_key;
static pthread_once_t ms_clock_once = PTHREAD_ONCE_INIT;
static int ms_clock_ok;

static void ms_clock_init(void)
{
    ms_clock_ok = pthread_key_create(&ms_clock_key, free) == 0;
}

/* The calling thread's clock, made on first use; NULL when out of memory
 * (the call then has libmariadb's own timeouts only). */
static ms_clock *ms_clock_get(int make)
{
    pthread_once(&ms_clock_once, ms_clock_init);
    if (!ms_clock_ok)
        return NULL;
    ms_clock *k = pthread_getspecific(ms_clock_key);
    if (k == NULL && make) {
        k = calloc(1, sizeof *k);
        if (k != NULL && pthread_setspecific(ms_clock_key, k) != 0) {
            free(k);
            k = NULL;
        }
    }
    return k;
}

static uint64_t ms_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ms_deadline_start(const ms_store *s)
{
    ms_clock *k = ms_clock_get(1);
    if (k != NULL) {
        k->deadline_ns = ms_now_ns() +
                         (uint64_t)s->host->timeout_ms * 1000000u;
        k->timed_out = 0;
    }
}

/* 1 when a wait of the calling thread's current call timed out. */
static int ms_timed_out(void)
{
    ms_clock *k = ms_clock_get(0);
    return k != NULL && k->timed_out;
}

/* The hook: as libmariadb's own poll(2) wait (timeout in ms, 0 or less
 * for none), but never past the deadline. Returns poll's answer; 0 (with
 * errno ETIMEDOUT) when the time is up; -1 with the socket's error in
 * errno when it has one. */
static int ms_io_wait(my_socket fd, my_bool is_read, int timeout)
{
    ms_clock *k = ms_clock_get(0);
    for (;;) {
        int wait = timeout > 0 ? timeout : -1;
        if (k != NULL && k->deadline_ns != 0) {
            uint64_t now = ms_now_ns();
            uint64_t left = k->deadline_ns > now ? k->deadline_ns - now : 0;
            uint64_t left_ms = (left + 999999u) / 1000000u;
            if (wait < 0 || left_ms < (uint64_t)wait)
                wait = (int)left_ms;
        }
        struct pollfd p = {.fd = fd, .events = is_read ? POLLIN : POLLOUT};
        int rc = poll(&p, 1, wait);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            if (k != NULL)
                k->timed_out = 1;
            errno = ETIMEDOUT;
        }
        if (rc > 0 && !is_read && (p.revents & (POLLERR | POLLHUP))) {
            /* A failed connect: libmariadb would report the errno left by
             * connect(2), EINPROGRESS, instead of the socket's own error
             * ("Connection refused"); hand that over as a failed wait. */
            int e = 0;
            socklen_t elen = sizeof e;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 &&
                e != 0) {
                errno = e;
                return -1;
            }
        }
        return rc;
    }
}

/* ---- Values ------------------------------------------------------------- */

int ms_parse_value(const char *p, size_t len, uint64_t *out)
{
    if (p == NULL || len == 0 || len > 19 || (p[0] == '0' && len > 1))
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

/* ---- Errors ------------------------------------------------------------- */

/* 1 for an error of the client library (the connection failed or is out
 * of step), 0 for one the server sent (the connection is still good). */
static int ms_client_error(unsigned e)
{
    return (e >= CR_MIN_ERROR && e <= CR_MAX_ERROR) ||
           (e >= 5000 && e < 6000); /* libmariadb's own CER_ range */
}

/*
 * The OS reason at the end of a libmariadb connect message ("Can't connect
 * to server on '127.0.0.1' (111)"), as text, or NULL.
 */
static const char *ms_os_reason(const char *msg)
{
    size_t n = strlen(msg);
    if (n < 3 || msg[n - 1] != ')')
        return NULL;
    const char *open = strrchr(msg, '(');
    if (open == NULL)
        return NULL;
    char *end;
    long e = strtol(open + 1, &end, 10);
    if (end == open + 1 || *end != ')' || e <= 0 || e > 4095)
        return NULL;
    return strerror((int)e);
}

/* ---- The connection ---------------------------------------------------- */

void ms_disconnect(ms_store *s)
{
    if (s->db != NULL) {
        mysql_close(s->db);
        s->db = NULL;
    }
}

/*
 * In a child after fork(), for the parent's connection. mysql_close sends
 * COM_QUIT, which on the socket the child shares with the parent would end
 * the parent's session. So the child's descriptor of the socket is first
 * replaced (dup2, atomically) by one of /dev/null: that drops the child's
 * reference to the socket without a byte sent (the socket is shut only
 * when its last descriptor goes, and no shutdown(2) is made), and
 * mysql_close's COM_QUIT then fails on /dev/null (ENOTSOCK) and is not
 * retried (auto-reconnect is off). mysql_close frees everything and closes
 * the descriptor, now /dev/null's. Where /dev/null cannot be opened an
 * unconnected unix socket serves the same way; failing both, the handle
 * is leaked rather than risk the parent's session.
 */
void ms_forget(ms_store *s)
{
    if (s->db == NULL)
        return;
    my_socket fd = mysql_get_socket(s->db);
    if (fd >= 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0)
            null = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (null < 0 || dup2(null, fd) < 0) {
            if (null >= 0)
                close(null);
            s->db = NULL;
            return;
        }
        close(null);
    }
    mysql_close(s->db);
    s->db = NULL;
}

/* Fills err for a failed mysql_real_connect and returns the code. */
static int ms_connect_error(ms_store *s, MYSQL *m, idp_error *err)
{
    unsigned e = mysql_errno(m);
    const char *msg = mysql_error(m);
    const char *user = s->user != NULL ? s->user : "(login name)";
    switch (e) {
    case MS_ER_BAD_DB:
        return idp_plugin_error(err, IDP_ESTORE, "database '%s' does not "
                                "exist on %s: create it (CREATE DATABASE %s) "
                                "or name another in the URI path",
                                s->database, s->where, s->database);
    case MS_ER_ACCESS_DENIED:
    case MS_ER_DBACCESS_DENIED:
    case MS_ER_ACCESS_DENIED_NO_PASSWORD:
        return idp_plugin_error(err, IDP_ESTORE, "%s refused user '%s' for "
                                "database '%s': %s", s->where, user,
                                s->database, msg);
    default:
        break;
    }
    if (ms_timed_out())
        return idp_plugin_error(err, IDP_ETIMEOUT, "unable to connect to %s "
                                "within timeout_ms=%u: %s", s->where,
                                s->host->timeout_ms, msg);
    if (e == CR_OUT_OF_MEMORY)
        return idp_plugin_error(err, IDP_ENOMEM, "unable to connect to %s: "
                                "out of memory", s->where);
    const char *os = ms_client_error(e) ? ms_os_reason(msg) : NULL;
    if (os != NULL)
        return idp_plugin_error(err, IDP_ESTORE, "unable to connect to %s: "
                                "%s (%s)", s->where, os, msg);
    return idp_plugin_error(err, IDP_ESTORE, "unable to connect to %s: %s "
                            "(error %u)", s->where, msg, e);
}

/*
 * Opens the connection: timeouts (whole seconds, rounded up, and the
 * deadline hook), no auto-reconnect (it could resend a statement whose
 * answer was lost), several statements per query, no LOAD DATA LOCAL, TCP
 * unless a socket was named (libmariadb would take "localhost" for its
 * default socket), and the session settings (init_sql) run right after
 * the handshake. On error fills err and leaves s->db NULL.
 */
static int ms_connect(ms_store *s, idp_error *err)
{
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "unable to connect to %s: "
                                "out of memory", s->where);
    unsigned secs = (s->host->timeout_ms + 999u) / 1000u;
    unsigned proto = s->socket != NULL ? MYSQL_PROTOCOL_SOCKET
                                       : MYSQL_PROTOCOL_TCP;
    my_bool off = 0;
    unsigned no = 0;
    if (secs == 0)
        secs = 1;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &secs);
    mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
    mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &no);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_optionsv(m, MYSQL_INIT_COMMAND, s->init_sql);
    mysql_optionsv(m, MARIADB_OPT_IO_WAIT, ms_io_wait);
    if (mysql_real_connect(m, s->hostname, s->user, s->password, s->database,
                           s->port, s->socket,
                           CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS)
        == NULL) {
        int rc = ms_connect_error(s, m, err);
        mysql_close(m);
        return rc;
    }
    s->db = m;
    return IDP_OK;
}

int ms_ready(ms_store *s, idp_error *err)
{
    if (s->db != NULL) {
        /* every answer is always read, so a healthy idle connection has
         * nothing to read: one that polls readable is closed or out of
         * step */
        my_socket fd = mysql_get_socket(s->db);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (fd < 0 || poll(&p, 1, 0) != 0)
            ms_disconnect(s);
    }
    return s->db != NULL ? IDP_OK : ms_connect(s, err);
}

/* ---- Statements --------------------------------------------------------- */

void ms_outcomes_free(ms_outcome *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (out[i].rows != NULL) {
            mysql_free_result(out[i].rows);
            out[i].rows = NULL;
        }
}

/* Statements from `from` on lost their answer: marks them, drops the
 * connection. */
static void ms_lost(ms_store *s, const char *const *whats, size_t from,
                    size_t n, ms_outcome *out, idp_error *errs)
{
    unsigned e = mysql_errno(s->db);
    char msg[200];
    snprintf(msg, sizeof msg, "%s", e != 0 ? mysql_error(s->db)
                                           : "the connection was lost");
    for (size_t i = from; i < n; i++) {
        if (e == CR_OUT_OF_MEMORY)
            out[i].code = idp_plugin_error(&errs[i], IDP_ENOMEM, "%s on %s: "
                                           "out of memory", whats[i],
                                           s->where);
        else if (ms_timed_out())
            out[i].code = idp_plugin_error(&errs[i], IDP_ETIMEOUT, "%s on %s: "
                                           "no answer within timeout_ms=%u; it "
                                           "may have run, and the connection "
                                           "is reopened on the next call",
                                           whats[i], s->where,
                                           s->host->timeout_ms);
        else
            out[i].code = idp_plugin_error(&errs[i], IDP_ESTORE, "%s on %s "
                                           "failed: %s; it may have run, and "
                                           "the connection is reopened on the "
                                           "next call", whats[i], s->where,
                                           msg);
    }
    ms_disconnect(s);
}

/* The server refused statement i: the connection stays in step, and the
 * server runs none of the statements after it. */
static void ms_refused(ms_store *s, const char *const *whats, size_t i,
                       size_t n, ms_outcome *out, idp_error *errs)
{
    unsigned e = mysql_errno(s->db);
    out[i].server_errno = e;
    if (e == MS_ER_LOCK_WAIT_TIMEOUT)
        out[i].code = idp_plugin_error(&errs[i], IDP_ETIMEOUT, "%s on %s: the "
                                       "row stayed locked by another "
                                       "transaction (%s)", whats[i], s->where,
                                       mysql_error(s->db));
    else
        out[i].code = idp_plugin_error(&errs[i], IDP_ESTORE, "%s on %s failed: "
                                       "%s (error %u)", whats[i], s->where,
                                       mysql_error(s->db), e);
    for (size_t j = i + 1; j < n; j++)
        out[j].code = idp_plugin_error(&errs[j], IDP_ESTORE, "%s on %s was not "
                                       "run: statement %zu of the same round "
                                       "trip failed first (%s)", whats[j],
                                       s->where, i + 1, mysql_error(s->db));
}

int ms_run(ms_store *s, const char *const *whats, const char *sql, size_t len,
           size_t n, ms_outcome *out, idp_error *errs)
{
    memset(out, 0, n * sizeof *out);
    size_t i = 0;
    int rc = mysql_real_query(s->db, sql, (unsigned long)len);
    for (;;) {
        if (rc != 0) {
            if (ms_client_error(mysql_errno(s->db)) || i >= n)
                ms_lost(s, whats, i < n ? i : n, n, out, errs);
            else
                ms_refused(s, whats, i, n, out, errs);
            i = n;
            break;
        }
        MYSQL_RES *r = mysql_store_result(s->db);
        if (r == NULL && mysql_field_count(s->db) != 0) {
            ms_lost(s, whats, i < n ? i : n, n, out, errs);
            i = n;
            break;
        }
        if (i < n) {
            out[i].rows = r;
            out[i].affected = mysql_affected_rows(s->db);
            out[i].insert_id = mysql_insert_id(s->db);
            out[i].code = IDP_OK;
        } else if (r != NULL) {
            mysql_free_result(r);   /* an answer too many: dropped below */
        }
        i++;
        int more = mysql_next_result(s->db);
        if (more < 0)
            break;
        rc = more;
    }
    if (i != n) {
        /* fewer or more answers than statements: out of step */
        for (size_t j = i < n ? i : 0; j < n; j++)
            if (j >= i || out[j].code == IDP_OK)
                out[j].code = idp_plugin_error(&errs[j], IDP_ESTORE, "%s on "
                                               "%s: the server answered %zu "
                                               "statements of %zu", whats[j],
                                               s->where, i, n);
        if (i > n)
            ms_outcomes_free(out, n);
        ms_disconnect(s);
    }
    for (size_t j = 0; j < n; j++)
        if (out[j].code != IDP_OK)
            return out[j].code;
    return IDP_OK;
}

int ms_run1(ms_store *s, const char *what, const char *sql, ms_outcome *out,
            idp_error *err)
{
    return ms_run(s, &what, sql, strlen(sql), 1, out, err);
}

/* ---- Statement text ----------------------------------------------------- */

static void ms_sql_reserve(ms_sql *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void ms_sql_add(ms_sql *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        b->oom = 1;
    ms_sql_reserve(b, n < 0 ? 0 : (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ms_sql_key(ms_sql *b, const char *key, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    ms_sql_reserve(b, len * 2 + 3);
    if (b->oom)
        return;
    char *w = b->p + b->len;
    *w++ = 'X';
    *w++ = '\'';
    for (size_t i = 0; i < len; i++) {
        *w++ = hex[(unsigned char)key[i] >> 4];
        *w++ = hex[(unsigned char)key[i] & 15];
    }
    *w++ = '\'';
    *w = '\0';
    b->len += len * 2 + 3;
}

int ms_sql_failed(ms_sql *b, idp_error *err)
{
    if (!b->oom)
        return IDP_OK;
    free(b->p);
    b->p = NULL;
    return idp_plugin_error(err, IDP_ENOMEM, "out of memory for a statement");
}
