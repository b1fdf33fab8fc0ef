/*
 * proxy.c - `idprime serve --upstream redis://HOST:PORT`: a passthrough
 * proxy in front of a real Redis. Every request goes upstream, on a
 * connection of its own per client connection, in the client's order,
 * except INCR and INCRBY of the --counter keys outside MULTI/EXEC, which
 * the engine answers (its store being that same Redis, the IDs it hands
 * out are above anything Redis's own INCR gave, and the other way round).
 *
 * Order: each request owes the client one reply, kept as a slot in the
 * connection's queue. Forwarded requests are written upstream at once
 * (pipelined); upstream answers them in order, and each reply is cut out
 * of the upstream bytes by hiredis's reader (the bytes themselves pass on
 * unchanged) into the first slot still owed one. An intercepted request
 * writes its reply into a slot of its own. Slots leave for the client from
 * the front of the queue only, once complete.
 *
 * Where one request may bring any number of replies (SUBSCRIBE and the
 * other pub/sub commands, MONITOR, HELLO 3 whose RESP3 replies the reader
 * of Debian's hiredis 0.14 does not parse), the connection becomes a
 * tunnel once the replies owed before it have left: every later request
 * goes upstream as it is, every upstream byte to the client.
 *
 * Upstream down: the requests owed a reply get an error each, the
 * connection is dropped, and the next request connects again.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "internal.h"

/* Slots owed at once per connection: past it no further request is run
 * until replies come back (memory stays bounded for a deep pipeline). */
#define PROXY_MAX_PENDING 1024
/* A connect to the upstream must finish within this. */
#define PROXY_CONNECT_TIMEOUT_S 5
#define FEED_CHUNK 16384
/* Slots kept for reuse per connection (a pipeline's worth): no malloc per
 * forwarded request. */
#define PROXY_KEEP_SLOTS 64
/* A forwarded request up to this size is formatted on the stack. */
#define PROXY_FMT_STACK 4096

enum { PS_FWD, PS_LOCAL, PS_TUNNEL };

struct pslot {
    int kind;
    int ready;               /* its reply is complete in buf */
    struct evbuffer *buf;
    pslot *next;
};

/* ---- The upstream's address ------------------------------------------- */

int proxy_setup(srv *s, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    const char *u = s->o.upstream;
    if (strncmp(u, scheme, sizeof scheme - 1) != 0) {
        snprintf(err, errlen, "--upstream '%s': want redis://HOST:PORT", u);
        return -1;
    }
    const char *h = u + sizeof scheme - 1;
    char host[256], port[16] = "6379";
    if (strchr(h, '@') != NULL) {
        snprintf(err, errlen, "--upstream '%s': no user or password is "
                 "taken (the proxy sends no AUTH of its own: clients' AUTH "
                 "goes upstream)", u);
        return -1;
    }
    size_t hl;
    const char *rest;
    if (*h == '[') { /* [v6]:port */
        const char *close = strchr(h, ']');
        if (close == NULL) {
            snprintf(err, errlen, "--upstream '%s': no ']' after the IPv6 "
                     "address", u);
            return -1;
        }
        hl = (size_t)(close - h - 1);
        h++;
        rest = close + 1;
    } else {
        hl = strcspn(h, ":/?@");
        rest = h + hl;
    }
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, errlen, "--upstream '%s': no host", u);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (*rest == ':') {
        size_t pl = strspn(rest + 1, "0123456789");
        if (pl == 0 || pl >= sizeof port || atoi(rest + 1) > 65535 ||
            atoi(rest + 1) == 0) {
            snprintf(err, errlen, "--upstream '%s': the port must be "
                     "1..65535", u);
            return -1;
        }
        memcpy(port, rest + 1, pl);
        port[pl] = '\0';
        rest += 1 + pl;
    }
    if (*rest != '\0' && strcmp(rest, "/") != 0) {
        snprintf(err, errlen, "--upstream '%s': only redis://HOST:PORT is "
                 "taken (no user, password, database or parameters: '%s')",
                 u, rest);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "--upstream '%s': %s", u, gai_strerror(rc));
        return -1;
    }
    memcpy(&s->up_addr, ai->ai_addr, ai->ai_addrlen);
    s->up_addrlen = (int)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* ---- Slots ------------------------------------------------------------ */

static pslot *slot_push(conn *c, int kind)
{
    pslot *p = c->ps_free;
    if (p != NULL) {
        c->ps_free = p->next;
        c->nfree--;
        p->ready = 0;
        p->next = NULL;
    } else {
        p = calloc(1, sizeof *p);
        if (p == NULL || (p->buf = evbuffer_new()) == NULL) {
            free(p);
            return NULL;
        }
    }
    p->kind = kind;
    if (c->ps_tail != NULL)
        c->ps_tail->next = p;
    else
        c->ps_head = p;
    c->ps_tail = p;
    if (kind != PS_LOCAL && c->ps_await == NULL)
        c->ps_await = p;
    c->npend++;
    return p;
}

static void slot_free(pslot *p)
{
    evbuffer_free(p->buf);
    free(p);
}

/* A slot whose reply left (its buffer is empty): kept for the next
 * request, up to PROXY_KEEP_SLOTS. */
static void slot_done(conn *c, pslot *p)
{
    if (c->nfree >= PROXY_KEEP_SLOTS || evbuffer_get_length(p->buf) != 0) {
        slot_free(p);
        return;
    }
    p->next = c->ps_free;
    c->ps_free = p;
    c->nfree++;
}

/* Sends the complete slots at the front of the queue to the client. */
static void flush(conn *c)
{
    while (c->ps_head != NULL && c->ps_head->ready) {
        pslot *p = c->ps_head;
        evbuffer_add_buffer(c->wire, p->buf);
        c->ps_head = p->next;
        if (c->ps_head == NULL)
            c->ps_tail = NULL;
        c->npend--;
        slot_done(c, p);
    }
    /* a tunnel at the front: what it holds and all that follows goes on */
    if (c->tunnel && c->ps_head != NULL && c->ps_head->kind == PS_TUNNEL) {
        pslot *p = c->ps_head;
        evbuffer_add_buffer(c->wire, p->buf);
        c->ps_head = c->ps_tail = c->ps_await = NULL;
        c->npend = 0;
        slot_free(p);
    }
}

/* The next slot after p that is owed an upstream reply, or NULL. */
static pslot *next_await(pslot *p)
{
    for (p = p->next; p != NULL && p->kind == PS_LOCAL; p = p->next)
        ;
    return p;
}

int proxy_idle(const conn *c)
{
    return c->ps_head == NULL;
}

int proxy_busy(const conn *c)
{
    if (c->npend >= PROXY_MAX_PENDING)
        return 1;
    return c->up != NULL && evbuffer_get_length(bufferevent_get_output(
                                c->up)) > SERVE_OUT_HIGH;
}

/* ---- The upstream connection ------------------------------------------ */

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);

static void tunnel_pass(conn *c, struct evbuffer *in);

/* Requests queued for the upstream leave at the end of the loop pass
 * (conn.c's flush), with no write interest in epoll once connected. */
static void up_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info,
                      void *arg)
{
    (void)b;
    if (info->n_added > 0)
        conn_want_flush(arg);
}

static void up_drop(conn *c)
{
    if (c->up != NULL) {
        bufferevent_free(c->up);
        c->up = NULL;
    }
    if (c->uprd != NULL) {
        redisReaderFree(c->uprd);
        c->uprd = NULL;
    }
    c->up_fed = 0;
    c->up_connected = 0;
    c->tunnel = 0;
    c->in_multi = 0;
    c->other_db = 0;
}

/* After replies were handed on: the client's output, a close that waited
 * for them, requests that waited for room. */
static void after_replies(conn *c)
{
    flush(c);
    if (c->dead)
        return;
    if (c->closing) {
        if (c->bev != NULL && proxy_idle(c) &&
            evbuffer_get_length(c->wire) == 0)
            conn_close(c, "closed after its reply");
        return;
    }
    if (c->wait == WAIT_NONE)
        conn_process(c);
}

/* The upstream failed or closed: every reply still owed from it becomes
 * an error; a tunnel (pub/sub) ends with the client's connection. */
static void up_lost(conn *c, const char *why)
{
    srv *s = c->s;
    atomic_fetch_add_explicit(&s->st.upstream_errors, 1,
                              memory_order_relaxed);
    if (s->o.verbose)
        fprintf(stderr, "idprime serve: client %llu: upstream %s: %s\n",
                (unsigned long long)c->id, s->o.upstream, why);
    int was_tunnel = c->tunnel_sent;
    if (c->up != NULL && c->tunnel) {
        /* what came before the close goes on, the tunnel ends there */
        tunnel_pass(c, bufferevent_get_input(c->up));
        if (c->ps_tail != NULL)
            c->ps_tail->ready = 1;
        c->ps_await = NULL;
    }
    up_drop(c);
    for (pslot *p = c->ps_await; p != NULL; p = next_await(p)) {
        evbuffer_add_printf(p->buf, "-ERR upstream %s: %s\r\n",
                            s->o.upstream, why);
        atomic_fetch_add_explicit(&s->st.errors_reply, 1,
                                  memory_order_relaxed);
        p->ready = 1;
    }
    c->ps_await = NULL;
    c->tunnel_sent = 0;
    if (was_tunnel) {
        flush(c);
        conn_close_after_reply(c);
        return;
    }
    after_replies(c);
}

/* Connects when there is no upstream connection (the first request, or
 * the first after the upstream was lost). Returns 0, or -1 (the reason in
 * why). */
static int up_ensure(conn *c, const char **why)
{
    srv *s = c->s;
    if (c->up != NULL)
        return 0;
    c->uprd = redisReaderCreateWithFunctions(NULL); /* no reply objects */
    c->up = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->uprd == NULL || c->up == NULL) {
        up_drop(c);
        *why = "out of memory";
        return -1;
    }
    bufferevent_setcb(c->up, up_read_cb, up_write_cb, up_event_cb, c);
    if (evbuffer_add_cb(bufferevent_get_output(c->up), up_out_cb, c) ==
        NULL) {
        up_drop(c);
        *why = "out of memory";
        return -1;
    }
    bufferevent_setwatermark(c->up, EV_WRITE, SERVE_OUT_LOW, 0);
    struct timeval tv = {PROXY_CONNECT_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->up, NULL, &tv);
    bufferevent_enable(c->up, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->up, (struct sockaddr *)&s->up_addr,
                                   s->up_addrlen) != 0) {
        up_drop(c);
        *why = "cannot connect";
        return -1;
    }
    return 0;
}

static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
                   sizeof one);
        bufferevent_set_timeouts(bev, NULL, NULL);
        c->up_connected = 1;
        /* from now on proxy_flush writes; bufferevent only what is left */
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            bufferevent_disable(bev, EV_WRITE);
        return;
    }
    char why[160];
    if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "connection closed");
    else if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof why, "no connection within %d s",
                 PROXY_CONNECT_TIMEOUT_S);
    else
        snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(
                                             EVUTIL_SOCKET_ERROR()));
    up_lost(c, why);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (c->up_connected && evbuffer_get_length(bufferevent_get_output(bev))
                               == 0)
        bufferevent_disable(bev, EV_WRITE); /* proxy_flush writes again */
    if (c->wait == WAIT_NONE && !c->closing && !c->dead)
        conn_process(c); /* upstream took what was queued */
}

int proxy_flush(conn *c)
{
    if (c->up == NULL || !c->up_connected)
        return 0;
    size_t had = evbuffer_get_length(bufferevent_get_output(c->up));
    return conn_write_now(c->up) == 1 && had > SERVE_OUT_LOW;
}

/* Tunnel: upstream's bytes straight on, at the tunnel's place. */
static void tunnel_pass(conn *c, struct evbuffer *in)
{
    struct evbuffer *dst = c->ps_head != NULL ? c->ps_tail->buf : c->wire;
    evbuffer_add_buffer(dst, in);
    if (evbuffer_get_length(c->wire) > SERVE_OUT_HIGH)
        bufferevent_disable(c->up, EV_READ); /* until the client reads */
}

/* One whole reply of `len` bytes at the front of `in`: to the slot that
 * awaits it. */
static void deliver(conn *c, struct evbuffer *in, size_t len)
{
    pslot *p = c->ps_await;
    /* at the front, it goes straight on (flush() then drops the slot) */
    evbuffer_remove_buffer(in, p == c->ps_head ? c->wire : p->buf, len);
    p->ready = 1;
    c->ps_await = next_await(p);
}

/*
 * A reply hiredis's reader gives up on (hiredis 0.14 nests at most 7
 * deep: Redis 7's COMMAND DOCS, which redis-cli asks at start, goes
 * deeper) still goes to the client: the connection becomes a tunnel from
 * that reply on, where nothing is cut out any more. That keeps the order
 * when every reply owed after it is upstream's too; then that is done
 * (and the connection's INCRs go to Redis from then on, still unique).
 * Returns 1, or 0 when an intercepted reply waits behind it.
 */
static int to_tunnel(conn *c)
{
    pslot *p = c->ps_await;
    if (p == NULL)
        return 0;
    for (pslot *q = p->next; q != NULL; q = q->next)
        if (q->kind == PS_LOCAL)
            return 0;
    for (pslot *q = p->next, *next; q != NULL; q = next) {
        next = q->next;
        slot_free(q);
        c->npend--;
    }
    p->next = NULL;
    p->kind = PS_TUNNEL;
    c->ps_tail = p;
    c->tunnel_sent = 1;
    if (c->s->o.verbose)
        fprintf(stderr, "idprime serve: client %llu: an upstream reply "
                "hiredis cannot parse (%s): passing bytes through from "
                "now on\n", (unsigned long long)c->id, c->uprd->errstr);
    return 1;
}

static void up_read_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->up != NULL && !c->tunnel) {
        if (c->ps_await != NULL && c->ps_await->kind == PS_TUNNEL) {
            /* its replies, and all that follows: the reader is done
             * with (its copy of them dropped: the bytes are still in
             * `in`) */
            c->tunnel = 1;
            redisReaderFree(c->uprd);
            c->uprd = NULL;
            c->up_fed = 0;
            break;
        }
        void *reply = NULL;
        if (redisReaderGetReply(c->uprd, &reply) != REDIS_OK) {
            if (to_tunnel(c))
                continue;
            char why[160];
            snprintf(why, sizeof why, "a reply not understood (%s)",
                     c->uprd->errstr);
            up_lost(c, why);
            return;
        }
        if (reply == NULL) {
            size_t have = evbuffer_get_length(in);
            if (have == c->up_fed)
                break; /* no whole reply yet */
            char buf[FEED_CHUNK];
            struct evbuffer_ptr at;
            evbuffer_ptr_set(in, &at, c->up_fed, EVBUFFER_PTR_SET);
            ev_ssize_t n = evbuffer_copyout_from(in, &at, buf, sizeof buf);
            if (n <= 0 || redisReaderFeed(c->uprd, buf, (size_t)n) !=
                              REDIS_OK) {
                up_lost(c, "out of memory");
                return;
            }
            c->up_fed += (size_t)n;
            continue;
        }
        /* the reply's bytes: all fed, less what the reader holds unread */
        size_t len = c->up_fed - (c->uprd->len - c->uprd->pos);
        if (c->ps_await == NULL) {
            up_lost(c, "a reply nobody asked for");
            return;
        }
        deliver(c, in, len);
        c->up_fed -= len;
        flush(c);
    }
    if (c->up != NULL && c->tunnel)
        tunnel_pass(c, in);
    after_replies(c);
}

void proxy_client_drained(conn *c)
{
    if (c->up != NULL && c->tunnel)
        bufferevent_enable(c->up, EV_READ);
}

void proxy_release(conn *c)
{
    up_drop(c);
    for (pslot *p = c->ps_head, *next; p != NULL; p = next) {
        next = p->next;
        slot_free(p);
    }
    c->ps_head = c->ps_tail = c->ps_await = c->ps_cur = NULL;
    c->npend = 0;
    for (pslot *p = c->ps_free, *next; p != NULL; p = next) {
        next = p->next;
        slot_free(p);
    }
    c->ps_free = NULL;
    c->nfree = 0;
    c->out = c->wire;
}

/* ---- Requests --------------------------------------------------------- */

static int is(const req *r, int i, const char *word)
{
    return i < r->argc && r->lens[i] == strlen(word) &&
           strcasecmp(r->argv[i], word) == 0;
}

/* Requests after which upstream may send any number of replies. */
static int starts_tunnel(const req *r)
{
    static const char *const words[] = {"SUBSCRIBE", "PSUBSCRIBE",
                                        "SSUBSCRIBE", "MONITOR", NULL};
    for (int i = 0; words[i] != NULL; i++)
        if (is(r, 0, words[i]))
            return 1;
    return is(r, 0, "HELLO") && is(r, 1, "3");
}

/* An INCR or INCRBY of a --counter key, outside MULTI, on db 0. */
static int intercepted(const conn *c, const req *r)
{
    if (c->in_multi || c->other_db || c->tunnel_sent)
        return 0;
    if (!((r->argc == 2 && is(r, 0, "INCR")) ||
          (r->argc == 3 && is(r, 0, "INCRBY"))))
        return 0;
    const serve_opts *o = &c->s->o;
    for (size_t i = 0; i < o->ncounter_keys; i++)
        if (strlen(o->counters[i]) == r->lens[1] &&
            memcmp(o->counters[i], r->argv[1], r->lens[1]) == 0)
            return 1;
    return 0;
}

/* Runs a request here, its reply in order: straight to the client when
 * nothing is owed before it, else into a slot of its own. */
static int run_local(conn *c, req *r)
{
    if (c->ps_head == NULL)
        return cmd_exec_local(c, r);
    pslot *p = slot_push(c, PS_LOCAL);
    if (p == NULL) {
        conn_close(c, "out of memory");
        return EXEC_CLOSE;
    }
    c->ps_cur = p;
    c->out = p->buf;
    int rc = cmd_exec_local(c, r);
    if (rc != EXEC_WAIT)
        proxy_local_done(c);
    return rc;
}

void proxy_local_done(conn *c)
{
    if (c->ps_cur == NULL)
        return;
    c->ps_cur->ready = 1;
    c->ps_cur = NULL;
    c->out = c->wire;
    flush(c);
}

/* Appends "$LEN\r\n" (or "*N\r\n") at p. */
static char *put_len(char *p, char type, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    *p++ = type;
    while (n > 0)
        *p++ = tmp[--n];
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* The request in RESP into buf (cap bytes), as redisFormatCommandArgv
 * would write it. Returns its length, or 0 when it does not fit. */
static size_t format_small(char *buf, size_t cap, const req *r)
{
    size_t need = 24;
    for (int i = 0; i < r->argc; i++)
        need += r->lens[i] + 26;
    if (need > cap)
        return 0;
    char *p = put_len(buf, '*', (size_t)r->argc);
    for (int i = 0; i < r->argc; i++) {
        p = put_len(p, '$', r->lens[i]);
        memcpy(p, r->argv[i], r->lens[i]);
        p += r->lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - buf);
}

/* Writes the request to the upstream. Returns 0, or -1 (out of memory). */
static int write_up(conn *c, req *r)
{
    char small[PROXY_FMT_STACK];
    size_t len = format_small(small, sizeof small, r);
    if (len > 0)
        return bufferevent_write(c->up, small, len);
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, r->argc, (const char **)r->argv,
                                   r->lens);
    int rc = n < 0 ? -1 : bufferevent_write(c->up, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

/* A request upstream, its reply owed in order. */
static int forward(conn *c, req *r)
{
    srv *s = c->s;
    const char *why = NULL;
    int tunnel = starts_tunnel(r);
    if (up_ensure(c, &why) != 0) {
        if (c->ps_head == NULL) {
            resp_error(c, "upstream %s: %s", s->o.upstream, why);
        } else {
            pslot *p = slot_push(c, PS_LOCAL);
            if (p == NULL)
                return EXEC_CLOSE;
            evbuffer_add_printf(p->buf, "-ERR upstream %s: %s\r\n",
                                s->o.upstream, why);
            p->ready = 1;
        }
        return EXEC_DONE;
    }
    if (write_up(c, r) != 0) {
        conn_close(c, "out of memory");
        return EXEC_CLOSE;
    }
    atomic_fetch_add_explicit(&s->st.forwarded, 1, memory_order_relaxed);
    if (c->tunnel_sent)
        return EXEC_DONE; /* its replies pass through as they come */
    if (slot_push(c, tunnel ? PS_TUNNEL : PS_FWD) == NULL) {
        conn_close(c, "out of memory");
        return EXEC_CLOSE;
    }
    if (tunnel)
        c->tunnel_sent = 1;
    else if (is(r, 0, "MULTI"))
        c->in_multi = 1;
    else if (is(r, 0, "EXEC") || is(r, 0, "DISCARD"))
        c->in_multi = 0;
    else if (is(r, 0, "SELECT") && r->argc == 2)
        c->other_db = !is(r, 1, "0");
    return EXEC_DONE;
}

int proxy_exec(conn *c, req *r)
{
    srv *s = c->s;
    if (c->tunnel_sent)
        return forward(c, r);
    /* the proxy's own password, when it has one, comes first */
    if (s->o.password != NULL && (is(r, 0, "AUTH") || !c->authed))
        return run_local(c, r);
    if (is(r, 0, "QUIT") || intercepted(c, r))
        return run_local(c, r);
    return forward(c, r);
}
