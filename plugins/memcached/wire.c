/*
 * wire.c - memcached increments and decrements on sockets of our own, in
 * memcached's binary protocol.
 *
 * Why not libmemcached for these two commands: in libmemcached 1.1.4 an
 * increment answered with status "out of memory" (a full memcached started
 * with -M, asked to grow a counter whose new value does not fit in its
 * item: one another tool wrote without our padding, or one that another
 * connection is reading at that moment) ends in an assert in auto.cc
 * (auto_response: a fatal code with no error recorded) that aborts the
 * whole process. No libmemcached call avoids it for a binary increment,
 * and the text protocol only moves it: a reply line longer than
 * libmemcached's buffer is the same fatal code with no error. A library
 * must turn a store's answer into an error, so the increments (and the
 * decrement that undoes a refused one) are sent here: one socket per
 * server, one request at a time, the whole command bounded by timeout_ms,
 * every field of the reply checked (magic, opcode, opaque, lengths) before
 * it is believed. After anything but a well-formed reply the socket is
 * closed, so a late or stray reply is never read as a later answer; the
 * next command connects again. Everything else (get, gets, add, cas,
 * stats) stays on libmemcached, whose paths for those replies are safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mc_internal.h"

#define MCW_HEADER 24
#define MCW_EXTRAS 20           /* delta, initial, expiration */
#define MCW_MAX_BODY 1024       /* an incr reply: 8 bytes, or a short text */
#define MCW_OP_INCR 0x05
#define MCW_OP_DECR 0x06
/* expiration 0xffffffff: a missing key is NOT_FOUND, never created (we
 * create counters with add, see incr.c) */
#define MCW_NO_CREATE 0xffffffffu

struct mc_wire {
    size_t n;
    int *fd;            /* per server; -1: not connected */
    uint32_t opaque;    /* the id of the last request */
};

mc_wire *mcw_new(size_t nservers)
{
    mc_wire *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->fd = malloc((nservers > 0 ? nservers : 1) * sizeof *w->fd);
    if (w->fd == NULL) {
        free(w);
        return NULL;
    }
    w->n = nservers;
    for (size_t i = 0; i < nservers; i++)
        w->fd[i] = -1;
    return w;
}

void mcw_close(mc_wire *w, size_t i)
{
    if (w != NULL && i < w->n && w->fd[i] >= 0) {
        close(w->fd[i]);
        w->fd[i] = -1;
    }
}

void mcw_free(mc_wire *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n; i++)
        mcw_close(w, i);
    free(w->fd);
    free(w);
}

static uint64_t mcw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits until fd is ready for `events` or the deadline passes. Returns 1
 * ready, 0 timed out, -1 with errno. */
static int mcw_wait(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mcw_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(deadline - now > 60000 ? 60000
                                                          : deadline - now));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Says why in `why` and returns MCW_FAILED. */
static mcw_status mcw_failed(char *why, size_t len, const char *what,
                             const char *detail)
{
    snprintf(why, len, "%s%s", what, detail);
    return MCW_FAILED;
}

/* A non-blocking socket connected to host:port within the deadline. */
static mcw_status mcw_connect(const char *host, unsigned port,
                              uint64_t deadline, int *out, char *why,
                              size_t len)
{
    char ps[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM}, *ai, *a;
    snprintf(ps, sizeof ps, "%u", port);
    int r = getaddrinfo(host, ps, &hints, &ai);
    if (r != 0)
        return mcw_failed(why, len, "cannot resolve it: ", gai_strerror(r));
    mcw_status st = MCW_FAILED;
    int err = ECONNREFUSED;
    for (a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family,
                        a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1, w = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            w = errno == EINPROGRESS ? mcw_wait(fd, POLLOUT, deadline) : -1;
            socklen_t sl = sizeof err;
            if (w > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 &&
                err != 0)
                w = -1;
            else if (w < 0)
                err = errno;
        }
        if (w > 0) {
            *out = fd;
            st = MCW_OK;
            break;
        }
        close(fd);
        if (w == 0) {
            st = MCW_TIMEOUT;
            snprintf(why, len, "connecting timed out");
            break;
        }
    }
    freeaddrinfo(ai);
    if (st == MCW_FAILED)
        snprintf(why, len, "cannot connect: %s", strerror(err));
    return st;
}

/* Sends or receives exactly len bytes before the deadline. */
static mcw_status mcw_io(int fd, int sending, unsigned char *buf, size_t len,
                         uint64_t deadline, char *why, size_t wlen)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = sending ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
                            : recv(fd, buf + done, len - done, 0);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r == 0)
            return mcw_failed(why, wlen, "the server closed the connection",
                              done > 0 ? " in the middle of its reply" : "");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return mcw_failed(why, wlen, "", strerror(errno));
        int w = mcw_wait(fd, sending ? POLLOUT : POLLIN, deadline);
        if (w == 0)
            return MCW_TIMEOUT;
        if (w < 0)
            return mcw_failed(why, wlen, "poll: ", strerror(errno));
    }
    return MCW_OK;
}

static void mcw_put(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t mcw_get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Judges a complete reply (header h, body of bodylen bytes). */
static mcw_status mcw_judge(const unsigned char *h, const unsigned char *body,
                            uint32_t bodylen, uint64_t *value, char *why,
                            size_t len)
{
    uint16_t status = (uint16_t)mcw_get(h + 6, 2);
    uint16_t keylen = (uint16_t)mcw_get(h + 2, 2);
    if (status == 0) {
        if (bodylen != 8 || keylen != 0 || h[4] != 0) {
            snprintf(why, len, "a success reply of %u bytes (key %u, extras "
                     "%u), not an 8-byte value", bodylen, keylen, h[4]);
            return MCW_FAILED;
        }
        *value = mcw_get(body, 8);
        return MCW_OK;
    }
    snprintf(why, len, "status 0x%04x: %.*s", status,
             (int)(bodylen > 120 ? 120 : bodylen), (const char *)body);
    switch (status) {
    case 0x0001:
        return MCW_NOTFOUND;
    case 0x0006:
        return MCW_NONNUMERIC;
    case 0x0082:
        return MCW_NOMEM;
    default:
        return MCW_REFUSED;
    }
}

/* Sends one request and reads its reply. The socket stays open only after
 * a well-formed reply to this very request. */
static mcw_status mcw_roundtrip(mc_wire *w, size_t i, const unsigned char *req,
                                size_t reqlen, uint32_t opaque, uint8_t op,
                                uint64_t deadline, uint64_t *value, char *why,
                                size_t len)
{
    unsigned char h[MCW_HEADER], body[MCW_MAX_BODY];
    int fd = w->fd[i];
    mcw_status st = mcw_io(fd, 1, (unsigned char *)req, reqlen, deadline, why,
                           len);
    if (st == MCW_OK)
        st = mcw_io(fd, 0, h, sizeof h, deadline, why, len);
    if (st != MCW_OK)
        return st;
    uint32_t bodylen = (uint32_t)mcw_get(h + 8, 4);
    if (h[0] != 0x81 || h[1] != op || (uint32_t)mcw_get(h + 12, 4) != opaque) {
        snprintf(why, len, "a reply that is not the answer to this request "
                 "(bytes %02x %02x ..., opaque %u, sent %u)", h[0], h[1],
                 (unsigned)mcw_get(h + 12, 4), (unsigned)opaque);
        return MCW_FAILED;
    }
    if (bodylen > MCW_MAX_BODY) {
        snprintf(why, len, "a reply declaring a %u-byte body (an incr reply "
                 "has 8)", bodylen);
        return MCW_FAILED;
    }
    if ((st = mcw_io(fd, 0, body, bodylen, deadline, why, len)) != MCW_OK)
        return st;
    st = mcw_judge(h, body, bodylen, value, why, len);
    return st == MCW_FAILED ? st : (mcw_status)(st | MCW_IN_STEP);
}

mcw_status mcw_arith(mc_wire *w, size_t i, const char *host, unsigned port,
                     int decr, const char *key, uint64_t n,
                     unsigned timeout_ms, uint64_t *value, char *why,
                     size_t len)
{
    size_t klen = strlen(key);
    unsigned char req[MCW_HEADER + MCW_EXTRAS + 256];
    uint64_t deadline = mcw_now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    why[0] = '\0';
    if (i >= w->n || klen > 250)
        return mcw_failed(why, len, "no such server or key", "");
    if (w->fd[i] < 0) {
        mcw_status st = mcw_connect(host, port, deadline, &w->fd[i], why, len);
        if (st != MCW_OK)
            return st;
    }
    uint8_t op = decr ? MCW_OP_DECR : MCW_OP_INCR;
    uint32_t opaque = ++w->opaque;
    memset(req, 0, MCW_HEADER + MCW_EXTRAS);
    req[0] = 0x80;
    req[1] = op;
    mcw_put(req + 2, klen, 2);
    req[4] = MCW_EXTRAS;
    mcw_put(req + 8, MCW_EXTRAS + klen, 4);
    mcw_put(req + 12, opaque, 4);
    mcw_put(req + MCW_HEADER, n, 8);               /* delta */
    mcw_put(req + MCW_HEADER + 16, MCW_NO_CREATE, 4);
    memcpy(req + MCW_HEADER + MCW_EXTRAS, key, klen);
    mcw_status st = mcw_roundtrip(w, i, req, MCW_HEADER + MCW_EXTRAS + klen,
                                  opaque, op, deadline, value, why, len);
    if (!(st & MCW_IN_STEP))
        mcw_close(w, i);
    return (mcw_status)(st & ~MCW_IN_STEP);
}
