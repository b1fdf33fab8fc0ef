/*
 * conn.c - client connection handling: bytes from the socket into
 * hiredis's reader, whole requests out of it, one at a time, into
 * commands.c; the limits on what a client may send (request size, bulk
 * length, time to finish a request); back pressure on a client that does
 * not read its replies; closing.
 *
 * The reader is fed at most one chunk past the request it is parsing, and
 * only while the connection has nothing in flight, so the bytes a client
 * can make the server hold are bounded by --max-request-bytes plus the
 * socket buffers (libevent stops reading past a watermark).
 *
 * Writes: as Redis does, the replies of a pass over the loop leave in one
 * write at its end (flush_cb, an event made active when output is
 * queued), with no write interest in epoll; only what the socket does not
 * take at once is left to bufferevent (EV_WRITE on until it drained).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "internal.h"

#define FEED_CHUNK 16384

/* ---- Requests out of hiredis's reader --------------------------------- */

/*
 * The reader's callbacks build a `req` (an array of bulk strings, the only
 * shape a request has) and refuse every other shape by returning NULL,
 * which stops the reader; c->perr says why, in Redis's words.
 */
static void req_free(req *r)
{
    if (r == NULL)
        return;
    free(r->argv);
    free(r->lens);
    free(r->offs);
    free(r->data);
    free(r);
}

/* A request done with: kept as the connection's spare when it is small
 * (a big one's buffers go, so 10,000 idle connections hold little). */
#define SPARE_MAX_DATA 4096
#define SPARE_MAX_ARGS 64

static void req_recycle(conn *c, req *r)
{
    if (c->spare != NULL || r->dcap > SPARE_MAX_DATA ||
        r->cap > SPARE_MAX_ARGS) {
        req_free(r);
        return;
    }
    c->spare = r;
}

static void *mk_array(const redisReadTask *t, int elements)
{
    conn *c = t->privdata;
    if (t->parent != NULL) {
        c->perr = "Protocol error: expected '$', got '*'";
        return NULL;
    }
    /* Every element takes at least 4 bytes ("$0\r\n" and its CRLF): a
     * count that cannot fit in the limit is refused before anything is
     * allocated for it. */
    if ((size_t)elements > c->s->o.max_request_bytes / 4) {
        c->perr = "Protocol error: invalid multibulk length";
        return NULL;
    }
    req *r = c->spare;
    if (r != NULL) {
        c->spare = NULL;
        r->filled = 0;
        r->bytes = 0;
        r->dlen = 0;
    } else if ((r = calloc(1, sizeof *r)) == NULL) {
        c->perr = "out of memory";
        return NULL;
    }
    r->argc = elements;
    c->building = r;
    return r;
}

/* Grows the arrays as elements arrive (not by the announced count), so
 * memory follows the bytes actually received. */
static int req_push(req *r, const char *p, size_t len)
{
    if (r->filled == r->cap) {
        int cap = r->cap == 0 ? 4 : r->cap * 2;
        if (cap > r->argc)
            cap = r->argc;
        char **argv = realloc(r->argv, (size_t)cap * sizeof *argv);
        if (argv == NULL)
            return -1;
        r->argv = argv;
        size_t *lens = realloc(r->lens, (size_t)cap * sizeof *lens);
        if (lens == NULL)
            return -1;
        r->lens = lens;
        size_t *offs = realloc(r->offs, (size_t)cap * sizeof *offs);
        if (offs == NULL)
            return -1;
        r->offs = offs;
        r->cap = cap;
    }
    if (r->dcap - r->dlen < len + 1) {
        size_t dcap = r->dcap == 0 ? 256 : r->dcap;
        while (dcap - r->dlen < len + 1)
            dcap *= 2;
        char *data = realloc(r->data, dcap);
        if (data == NULL)
            return -1;
        r->data = data;
        r->dcap = dcap;
    }
    memcpy(r->data + r->dlen, p, len);
    r->data[r->dlen + len] = '\0';
    r->offs[r->filled] = r->dlen;
    r->lens[r->filled++] = len;
    r->dlen += len + 1;
    r->bytes += len + 2 * sizeof(void *);
    return 0;
}

/* The request is whole: argv points into its data (which no longer
 * moves). */
static void req_seal(req *r)
{
    for (int i = 0; i < r->filled; i++)
        r->argv[i] = r->data + r->offs[i];
}

static void *mk_string(const redisReadTask *t, char *p, size_t len)
{
    conn *c = t->privdata;
    if (t->parent == NULL) {
        c->perr = t->type == REDIS_REPLY_STRING
                      ? "Protocol error: expected '*', got '$'"
                  : t->type == REDIS_REPLY_STATUS
                      ? "Protocol error: expected '*', got '+'"
                      : "Protocol error: expected '*', got '-'";
        return NULL;
    }
    if (t->type != REDIS_REPLY_STRING) {
        c->perr = t->type == REDIS_REPLY_STATUS
                      ? "Protocol error: expected '$', got '+'"
                      : "Protocol error: expected '$', got '-'";
        return NULL;
    }
    req *r = c->building;
    if (r == NULL || req_push(r, p, len) != 0) {
        c->perr = "out of memory";
        return NULL;
    }
    return r;
}

static void *mk_integer(const redisReadTask *t, long long v)
{
    (void)v;
    conn *c = t->privdata;
    c->perr = t->parent == NULL ? "Protocol error: expected '*', got ':'"
                                : "Protocol error: expected '$', got ':'";
    return NULL;
}

static void *mk_nil(const redisReadTask *t)
{
    conn *c = t->privdata;
    c->perr = t->parent == NULL ? "Protocol error: invalid multibulk length"
                                : "Protocol error: invalid bulk length";
    return NULL;
}

/* Called by the reader on the root object only: a request it gives up
 * (an error) or never handed out. */
static void free_obj(void *o)
{
    req_free(o);
}

static redisReplyObjectFunctions req_fns = {
    mk_string, mk_array, mk_integer, mk_nil, free_obj,
};

/*
 * When the reader stopped inside a bulk string whose length line it has,
 * that length: a client announcing 600 MB is answered now, as Redis does,
 * not after it sent them. The reader keeps the length line unconsumed
 * until the whole bulk is there (true of hiredis 0.14 and 1.x alike; only
 * the task stack's name differs). Returns 1 and *len, or 0.
 */
static int pending_bulk(const redisReader *rd, unsigned long long *len)
{
    if (rd->ridx < 0)
        return 0;
#if HIREDIS_MAJOR == 0
    const redisReadTask *t = &rd->rstack[rd->ridx];
#else
    const redisReadTask *t = rd->task[rd->ridx];
#endif
    if (t->type != REDIS_REPLY_STRING || rd->pos >= rd->len)
        return 0;
    const char *p = rd->buf + rd->pos, *end = rd->buf + rd->len;
    unsigned long long v = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
        v = digits < 19 ? v * 10 + (unsigned)(*p - '0') : ULLONG_MAX;
    if (digits == 0 || p >= end || *p != '\r')
        return 0;
    *len = v;
    return 1;
}

/* Why the request being read must be refused, or NULL. */
static const char *partial_refused(conn *c)
{
    static char msg[128];
    size_t max = c->s->o.max_request_bytes;
    /* what the reader holds unparsed is the request's unfinished part:
     * with a bulk string begun, its length line and the bytes of it that
     * came, which its announced length already counts (not twice) */
    size_t unparsed = c->rd->len - c->rd->pos;
    unsigned long long blen;
    if (pending_bulk(c->rd, &blen)) {
        if (blen > SERVE_MAX_BULK)
            return "Protocol error: invalid bulk length";
        if (unparsed < (size_t)blen)
            unparsed = (size_t)blen;
    }
    size_t held = unparsed + (c->building != NULL ? c->building->bytes : 0);
    if (held > max) {
        snprintf(msg, sizeof msg, "Protocol error: request larger than %zu "
                 "bytes (--max-request-bytes)", max);
        return msg;
    }
    return NULL;
}

/* The reader's refusal in Redis's words. hiredis names a bad type byte
 * ('Protocol error, got "P" as reply type byte': an inline command, which
 * this server does not take) in its own; Redis says what it expected. */
static const char *reader_error(conn *c, int nested)
{
    static char msg[160];
    static const char pre[] = "Protocol error, got \"";
    if (c->perr != NULL)
        return c->perr;
    const char *e = c->rd->errstr, *q;
    if (strncmp(e, pre, sizeof pre - 1) == 0 &&
        (q = strstr(e + sizeof pre - 1, "\" as reply type")) != NULL)
        /* the byte as hiredis shows it: P, or \x01 for a control byte */
        snprintf(msg, sizeof msg, "Protocol error: expected '%c', got '%.*s'",
                 nested ? '$' : '*', (int)(q - e - (sizeof pre - 1)),
                 e + sizeof pre - 1);
    else
        snprintf(msg, sizeof msg, "Protocol error: %s", e);
    return msg;
}

/* Bytes of a request begun and not finished, read or still buffered. */
static size_t partial_bytes(const conn *c)
{
    return c->rd->len - c->rd->pos + evbuffer_get_length(c->in) +
           (c->building != NULL ? 1 : 0);
}

/* ---- Closing ---------------------------------------------------------- */

void conn_free(conn *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->flush_ev != NULL)
        event_free(c->flush_ev);
    proxy_release(c);
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
    } else {
        if (c->in != NULL)
            evbuffer_free(c->in);
        if (c->wire != NULL)
            evbuffer_free(c->wire);
    }
    c->building = NULL;
    redisReaderFree(c->rd);
    req_free(c->spare);
    free(c->name);
    free(c);
}

static void conn_unlink(conn *c)
{
    srv *s = c->s;
    *(c->prev != NULL ? &c->prev->next : &s->conns) = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
    atomic_fetch_sub_explicit(&s->st.conns_current, 1, memory_order_relaxed);
}

void conn_discard(conn *c)
{
    if (c->wait == WAIT_RANGE)
        ctrs_unwait(c);
    conn_unlink(c);
    conn_free(c);
}

void conn_close(conn *c, const char *why)
{
    srv *s = c->s;
    if (s->base == NULL) { /* a socketless session: its owner frees it */
        c->closing = 1;
        return;
    }
    if (c->dead)
        return;
    if (s->o.verbose)
        fprintf(stderr, "idprime serve: client %llu closed: %s\n",
                (unsigned long long)c->id, why);
    if (c->wait == WAIT_RANGE)
        ctrs_unwait(c);
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    conn_unlink(c);
    if (c->wait == WAIT_JOB) {
        /* the job's end frees it (and writes no reply); the socket goes
         * now */
        proxy_release(c);
        bufferevent_free(c->bev);
        c->bev = NULL;
        if (c->flush_ev != NULL) {
            event_free(c->flush_ev);
            c->flush_ev = NULL;
        }
        c->in = c->out = c->wire = NULL;
        c->dead = 1;
    } else {
        conn_free(c);
    }
    srv_maybe_exit(s);
}

void conn_close_after_reply(conn *c)
{
    c->closing = 1;
    if (c->bev == NULL)
        return;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(c->wire) == 0 && proxy_idle(c))
        conn_close(c, "closed after its reply");
}

static void protocol_error(conn *c, const char *why)
{
    atomic_fetch_add_explicit(&c->s->st.errors_protocol, 1,
                              memory_order_relaxed);
    resp_error(c, "%s", why);
    conn_close_after_reply(c);
}

/* ---- Timers ----------------------------------------------------------- */

enum { TIMER_OFF, TIMER_REQUEST, TIMER_IDLE };

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    atomic_fetch_add_explicit(&c->s->st.timeouts, 1, memory_order_relaxed);
    conn_close(c, c->timer_mode == TIMER_REQUEST
                      ? "request not finished within --request-timeout-ms"
                      : "idle for --idle-timeout-ms");
}

static void timer_set(conn *c, int mode, unsigned ms)
{
    if (c->timer == NULL)
        return;
    if (mode == TIMER_OFF || ms == 0) {
        event_del(c->timer);
        c->timer_mode = TIMER_OFF;
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
    c->timer_mode = mode;
}

/* After a run: the timer that fits what the connection is doing. A
 * request begun must end within --request-timeout-ms of the last one
 * (bytes trickling in do not extend it); a connection waiting for the
 * server has no deadline; an idle one has --idle-timeout-ms, if any. */
static void conn_after(conn *c, int progressed)
{
    srv *s = c->s;
    if (c->closing || c->dead)
        return;
    if (c->wait != WAIT_NONE ||
        (!proxy_idle(c) && partial_bytes(c) == 0 && !s->stopping)) {
        /* waiting for the server, or for the upstream's replies */
        timer_set(c, TIMER_OFF, 0);
        return;
    }
    int blocked = evbuffer_get_length(c->wire) > SERVE_OUT_HIGH;
    if (s->stopping && !blocked) {
        /* draining: everything read is answered; a partial request is not */
        conn_close_after_reply(c);
        return;
    }
    if (blocked || partial_bytes(c) > 0) {
        if (c->timer_mode != TIMER_REQUEST || progressed)
            timer_set(c, TIMER_REQUEST, s->o.request_timeout_ms);
    } else {
        timer_set(c, s->o.idle_timeout_ms ? TIMER_IDLE : TIMER_OFF,
                  s->o.idle_timeout_ms);
    }
}

/* ---- Running requests ------------------------------------------------- */

void conn_process(conn *c)
{
    srv *s = c->s;
    int progressed = 0;
    while (c->wait == WAIT_NONE && !c->closing && !c->dead) {
        if (evbuffer_get_length(c->wire) > SERVE_OUT_HIGH)
            break; /* resumed by the write callback */
        if (s->o.upstream != NULL && proxy_busy(c))
            break; /* resumed as upstream replies come back */
        void *obj = NULL;
        c->perr = NULL;
        if (redisReaderGetReply(c->rd, &obj) != REDIS_OK) {
            int nested = c->building != NULL;
            c->building = NULL; /* freed by the reader */
            protocol_error(c, reader_error(c, nested));
            return;
        }
        if (obj != NULL) {
            req *r = obj;
            c->building = NULL;
            progressed = 1;
            req_seal(r);
            int rc = r->argc > 0 ? cmd_exec(c, r) : EXEC_DONE;
            req_recycle(c, r);
            if (rc == EXEC_CLOSE) {
                conn_close_after_reply(c);
                return;
            }
            continue;
        }
        const char *why = partial_refused(c);
        if (why != NULL) {
            protocol_error(c, why);
            return;
        }
        char buf[FEED_CHUNK];
        int n = evbuffer_remove(c->in, buf, sizeof buf);
        if (n <= 0)
            break;
        if (redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK) {
            protocol_error(c, "out of memory");
            return;
        }
    }
    conn_after(c, progressed);
}

void conn_resume(conn *c)
{
    c->wait = WAIT_NONE;
    c->wait_ce = NULL;
    if (c->dead) {
        srv *s = c->s;
        conn_free(c);
        srv_maybe_exit(s);
        return;
    }
    proxy_local_done(c); /* a proxy's intercepted request: its slot */
    conn_process(c);
}

void conn_drain(conn *c)
{
    if (c->bev != NULL)
        bufferevent_disable(c->bev, EV_READ);
    if (c->wait == WAIT_NONE && !c->closing)
        conn_process(c);
}

/* ---- libevent callbacks ----------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_process(arg);
}

/* The client's output drained (to the low mark, or all of it): a close
 * that waited for it, requests that waited for room. */
static void conn_drained(conn *c)
{
    if (c->closing) {
        if (evbuffer_get_length(c->wire) == 0 && proxy_idle(c))
            conn_close(c, "closed after its reply");
        return;
    }
    proxy_client_drained(c);
    if (c->wait == WAIT_NONE)
        conn_process(c); /* the output drained below the low mark */
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (evbuffer_get_length(c->wire) == 0)
        bufferevent_disable(bev, EV_WRITE); /* flush_cb writes again */
    conn_drained(c);
}

int conn_write_now(struct bufferevent *bev)
{
    struct evbuffer *o = bufferevent_get_output(bev);
    if (evbuffer_get_length(o) == 0 ||
        (bufferevent_get_enabled(bev) & EV_WRITE))
        return 0;
    /* bufferevent keeps its output's front frozen but for its own
     * writes; this is one of them */
    evbuffer_unfreeze(o, 1);
    (void)evbuffer_write(o, bufferevent_getfd(bev));
    evbuffer_freeze(o, 1);
    if (evbuffer_get_length(o) == 0)
        return 1;
    /* the socket is full, or failed: bufferevent goes on (and reports) */
    bufferevent_enable(bev, EV_WRITE);
    return -1;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    if (c->bev == NULL)
        return;
    int up_drained = proxy_flush(c);
    size_t had = evbuffer_get_length(c->wire);
    if (conn_write_now(c->bev) == 1 && (had > SERVE_OUT_LOW || c->closing)) {
        conn_drained(c); /* as bufferevent's write would have; may free c */
        return;
    }
    if (up_drained && c->wait == WAIT_NONE && !c->closing && !c->dead)
        conn_process(c); /* as the upstream's write callback would have */
}

void conn_want_flush(conn *c)
{
    if (c->flush_ev != NULL)
        event_active(c->flush_ev, EV_WRITE, 0);
}

static void wire_cb(struct evbuffer *b, const struct evbuffer_cb_info *info,
                    void *arg)
{
    (void)b;
    if (info->n_added > 0)
        conn_want_flush(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    conn_close(arg, what & BEV_EVENT_EOF ? "the client closed the connection"
                                         : "socket error");
}

conn *conn_new(srv *s, struct bufferevent *bev)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->s = s;
    c->id = ++s->next_conn_id;
    c->proto = 2;
    c->authed = s->o.password == NULL;
    c->rd = redisReaderCreateWithFunctions(&req_fns);
    if (c->rd == NULL) {
        free(c);
        return NULL;
    }
    redisReaderSetPrivdata(c->rd, c);
    if (bev != NULL) {
        c->bev = bev;
        c->in = bufferevent_get_input(bev);
        c->out = c->wire = bufferevent_get_output(bev);
        c->timer = evtimer_new(s->base, timer_cb, c);
        c->flush_ev = event_new(s->base, -1, 0, flush_cb, c);
        if (c->timer == NULL || c->flush_ev == NULL ||
            evbuffer_add_cb(c->wire, wire_cb, c) == NULL) {
            if (c->timer != NULL)
                event_free(c->timer);
            if (c->flush_ev != NULL)
                event_free(c->flush_ev);
            redisReaderFree(c->rd);
            free(c);
            return NULL;
        }
        /* past this much unread input, libevent stops reading the socket */
        bufferevent_setwatermark(bev, EV_READ, 0,
                                 s->o.max_request_bytes + FEED_CHUNK);
        bufferevent_setwatermark(bev, EV_WRITE, SERVE_OUT_LOW, 0);
        bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
    } else {
        c->in = evbuffer_new();
        c->out = c->wire = evbuffer_new();
        if (c->in == NULL || c->out == NULL) {
            if (c->in != NULL)
                evbuffer_free(c->in);
            if (c->out != NULL)
                evbuffer_free(c->out);
            redisReaderFree(c->rd);
            free(c);
            return NULL;
        }
    }
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    atomic_fetch_add_explicit(&s->st.conns_current, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->st.conns_total, 1, memory_order_relaxed);
    if (bev != NULL) {
        /* no write interest until a write leaves something (flush_cb) */
        bufferevent_enable(bev, EV_READ);
        bufferevent_disable(bev, EV_WRITE);
        conn_after(c, 0); /* the idle timer, if any */
    }
    return c;
}
