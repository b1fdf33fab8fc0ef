/*
 * fake.c - the fake servers of fake.h: one thread, poll() over the
 * listening socket, every connection and a wake-up pipe.
 *
 * Set IDPRIME_FAKE_DEBUG=1 to see every request and reply on stderr.
 */
#define _GNU_SOURCE
#include "fake.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_CONNS 16
#define INBUF (1 << 16)

typedef struct conn {
    int fd;            /* -1: free */
    int deaf;          /* after FAKE_SILENT: reads and ignores */
    size_t have;
    unsigned char in[INBUF];
} conn;

static int debug(void)
{
    const char *e = getenv("IDPRIME_FAKE_DEBUG");
    return e != NULL && e[0] == '1';
}

static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;   /* the client is gone: nothing to do */
        p += w;
        len -= (size_t)w;
    }
}

/* The next step of the script for an increment, under f->mu. */
static fake_step next_step(fake *f, uint64_t delta)
{
    fake_step s = {.act = FAKE_GOOD};
    f->increments++;
    f->last_delta = delta;
    if (f->next < f->nsteps)
        s = f->steps[f->next++];
    f->add_status = s.add_status;
    if (s.act == FAKE_GOOD) {
        f->value += delta;
        s.value = f->value;
    }
    return s;
}

/* ---- Redis ---------------------------------------------------------------- */

/* Parses one RESP array of bulk strings at buf[0..n). Returns the bytes it
 * takes, 0 when incomplete, -1 when not RESP. argv points into buf (each
 * argument is NUL-terminated in place of its \r). */
static long resp_parse(unsigned char *buf, size_t n, char **argv, int *argc,
                       int maxargs)
{
    size_t at = 0;
    char *end;
    if (n < 1)
        return 0;
    if (buf[0] != '*')
        return -1;
    unsigned char *eol = memmem(buf, n, "\r\n", 2);
    if (eol == NULL)
        return 0;
    long count = strtol((char *)buf + 1, &end, 10);
    if ((unsigned char *)end != eol || count < 1 || count > maxargs)
        return -1;
    at = (size_t)(eol - buf) + 2;
    for (long i = 0; i < count; i++) {
        if (at >= n)
            return 0;
        if (buf[at] != '$')
            return -1;
        eol = memmem(buf + at, n - at, "\r\n", 2);
        if (eol == NULL)
            return 0;
        long len = strtol((char *)buf + at + 1, &end, 10);
        if ((unsigned char *)end != eol || len < 0 || len > INBUF)
            return -1;
        at = (size_t)(eol - buf) + 2;
        if (n < at + (size_t)len + 2)
            return 0;
        argv[i] = (char *)buf + at;
        buf[at + (size_t)len] = '\0';
        at += (size_t)len + 2;
    }
    *argc = (int)count;
    return (long)at;
}

/* Answers one Redis command; returns -1 to close the connection. */
static int redis_command(fake *f, conn *c, char **argv, int argc)
{
    char out[256];
    if (debug())
        fprintf(stderr, "fake redis %d: %s %s %s\n", c->fd, argv[0],
                argc > 1 ? argv[1] : "", argc > 2 ? argv[2] : "");
    if (strcasecmp(argv[0], "PING") == 0) {
        send_all(c->fd, "+PONG\r\n", 7);
    } else if (strcasecmp(argv[0], "CONFIG") == 0 && argc == 3) {
        const char *v = strcmp(argv[2], "maxmemory-policy") == 0 ? "noeviction"
                        : strcmp(argv[2], "appendonly") == 0     ? "yes"
                                                                 : "";
        int n = snprintf(out, sizeof out, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
                         strlen(argv[2]), argv[2], strlen(v), v);
        send_all(c->fd, out, (size_t)n);
    } else if (strcasecmp(argv[0], "SELECT") == 0 ||
               strcasecmp(argv[0], "AUTH") == 0) {
        send_all(c->fd, "+OK\r\n", 5);
    } else if (strcasecmp(argv[0], "GET") == 0 && argc == 2) {
        pthread_mutex_lock(&f->mu);
        uint64_t v = f->value;
        pthread_mutex_unlock(&f->mu);
        char num[32];
        int len = snprintf(num, sizeof num, "%" PRIu64, v);
        int n = snprintf(out, sizeof out, "$%d\r\n%s\r\n", len, num);
        send_all(c->fd, out, (size_t)n);
    } else if (strcasecmp(argv[0], "INCRBY") == 0 && argc == 3) {
        pthread_mutex_lock(&f->mu);
        fake_step s = next_step(f, strtoull(argv[2], NULL, 10));
        pthread_mutex_unlock(&f->mu);
        switch (s.act) {
        case FAKE_GOOD:
        case FAKE_VALUE: {
            int n = snprintf(out, sizeof out, ":%" PRIu64 "\r\n", s.value);
            send_all(c->fd, out, (size_t)n);
            break;
        }
        case FAKE_SEND:
        case FAKE_MC:
            send_all(c->fd, s.bytes, s.len);
            if (s.close)
                return -1;
            break;
        case FAKE_TWICE: {
            int n = snprintf(out, sizeof out, ":%" PRIu64 "\r\n:%" PRIu64
                             "\r\n", s.value, s.value2);
            send_all(c->fd, out, (size_t)n);
            break;
        }
        case FAKE_SILENT:
            c->deaf = 1;
            break;
        case FAKE_CLOSE:
            return -1;
        }
    } else {
        send_all(c->fd, "-ERR unknown command\r\n", 22);
    }
    return 0;
}

static int redis_input(fake *f, conn *c)
{
    for (;;) {
        char *argv[8];
        int argc = 0;
        long used = resp_parse(c->in, c->have, argv, &argc, 8);
        if (used < 0)
            return -1;
        if (used == 0)
            return 0;
        int rc = redis_command(f, c, argv, argc);
        memmove(c->in, c->in + used, c->have - (size_t)used);
        c->have -= (size_t)used;
        if (rc != 0 || c->deaf)
            return rc;
    }
}

/* ---- memcached, binary protocol ------------------------------------------ */

enum {
    MC_GET = 0x00, MC_SET = 0x01, MC_ADD = 0x02, MC_REPLACE = 0x03,
    MC_INCR = 0x05, MC_DECR = 0x06, MC_QUIT = 0x07, MC_GETQ = 0x09,
    MC_NOOP = 0x0a, MC_VERSION = 0x0b, MC_GETK = 0x0c, MC_GETKQ = 0x0d,
    MC_STAT = 0x10,
};

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

/* Sends a response header for request `req` plus key and body. */
static void mc_reply(conn *c, const unsigned char *req, uint8_t magic,
                     uint16_t status, const void *key, uint16_t keylen,
                     const void *body, uint32_t bodylen, uint32_t declared)
{
    unsigned char h[24] = {0};
    h[0] = magic;
    h[1] = req[1];
    put_be(h + 2, keylen, 2);
    put_be(h + 6, status, 2);
    put_be(h + 8, declared, 4);
    memcpy(h + 12, req + 12, 4);   /* opaque */
    put_be(h + 16, 1, 8);          /* cas */
    unsigned char buf[24 + 512];
    size_t n = 24;
    memcpy(buf, h, 24);
    if (keylen > 0 && n + keylen <= sizeof buf) {
        memcpy(buf + n, key, keylen);
        n += keylen;
    }
    send_all(c->fd, buf, n);
    if (bodylen > 0)
        send_all(c->fd, body, bodylen);
}

static void mc_simple(conn *c, const unsigned char *req, uint16_t status,
                      const char *body)
{
    uint32_t len = body != NULL ? (uint32_t)strlen(body) : 0;
    mc_reply(c, req, 0x81, status, NULL, 0, body, len, len);
}

/* Answers one binary request; returns -1 to close the connection. */
static int mc_command(fake *f, conn *c, const unsigned char *req)
{
    uint8_t op = req[1];
    uint16_t keylen = (uint16_t)get_be(req + 2, 2);
    uint8_t extlen = req[4];
    const unsigned char *ext = req + 24;
    if (debug())
        fprintf(stderr, "fake memcached %d: opcode 0x%02x key '%.*s'\n",
                c->fd, op, (int)keylen, (const char *)req + 24 + extlen);
    switch (op) {
    case MC_STAT:   /* one stat, then the empty one that ends the list */
        mc_reply(c, req, 0x81, 0, "evictions", 9, "off", 3, 9 + 3);
        mc_reply(c, req, 0x81, 0, NULL, 0, NULL, 0, 0);
        return 0;
    case MC_GET:
    case MC_GETK:
        mc_simple(c, req, 0x0001, "Not found");
        return 0;
    case MC_GETQ:   /* a quiet miss has no reply */
    case MC_GETKQ:
        return 0;
    case MC_NOOP:
        mc_simple(c, req, 0, NULL);
        return 0;
    case MC_VERSION:
        mc_simple(c, req, 0, "1.6.18");
        return 0;
    case MC_ADD: {
        pthread_mutex_lock(&f->mu);
        uint16_t st = f->add_status;
        pthread_mutex_unlock(&f->mu);
        mc_simple(c, req, st, st == 0 ? NULL : "Out of memory");
        return 0;
    }
    case MC_SET:
    case MC_REPLACE:
        mc_simple(c, req, 0, NULL);
        return 0;
    case MC_QUIT:
        return -1;
    case MC_INCR:
    case MC_DECR: {
        uint64_t delta = extlen >= 8 ? get_be(ext, 8) : 0;
        pthread_mutex_lock(&f->mu);
        fake_step s = next_step(f, delta);
        pthread_mutex_unlock(&f->mu);
        switch (s.act) {
        case FAKE_GOOD:
        case FAKE_VALUE: {
            unsigned char v[8];
            put_be(v, s.value, 8);
            mc_reply(c, req, 0x81, 0, NULL, 0, v, 8, 8);
            break;
        }
        case FAKE_SEND:
            send_all(c->fd, s.bytes, s.len);
            if (s.close)
                return -1;
            break;
        case FAKE_MC:
            mc_reply(c, req, s.magic != 0 ? s.magic : 0x81, s.status, NULL, 0,
                     s.bytes, (uint32_t)s.len, s.bodylen);
            if (s.close)
                return -1;
            break;
        case FAKE_TWICE: {
            unsigned char v[8];
            put_be(v, s.value, 8);
            mc_reply(c, req, 0x81, 0, NULL, 0, v, 8, 8);
            put_be(v, s.value2, 8);
            mc_reply(c, req, 0x81, 0, NULL, 0, v, 8, 8);
            break;
        }
        case FAKE_SILENT:
            c->deaf = 1;
            break;
        case FAKE_CLOSE:
            return -1;
        }
        return 0;
    }
    default:
        mc_simple(c, req, 0x0081, "Unknown command");
        return 0;
    }
}

static int mc_input(fake *f, conn *c)
{
    for (;;) {
        if (c->have < 24)
            return 0;
        if (c->in[0] != 0x80)
            return -1;   /* not a binary request */
        uint32_t body = (uint32_t)get_be(c->in + 8, 4);
        if (body > INBUF - 24)
            return -1;
        if (c->have < 24 + (size_t)body)
            return 0;
        int rc = mc_command(f, c, c->in);
        size_t used = 24 + (size_t)body;
        memmove(c->in, c->in + used, c->have - used);
        c->have -= used;
        if (rc != 0 || c->deaf)
            return rc;
    }
}

/* ---- The server ---------------------------------------------------------- */

static void *fake_main(void *arg)
{
    fake *f = arg;
    conn *cs = calloc(MAX_CONNS, sizeof *cs);
    if (cs == NULL)
        return NULL;
    for (int i = 0; i < MAX_CONNS; i++)
        cs[i].fd = -1;
    for (;;) {
        struct pollfd p[MAX_CONNS + 2];
        int idx[MAX_CONNS + 2];
        int n = 0;
        p[n] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
        idx[n++] = -2;
        p[n] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++)
            if (cs[i].fd >= 0) {
                p[n] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents != 0)
            break;
        if (p[1].revents & POLLIN) {
            int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
            int slot = -1;
            for (int i = 0; fd >= 0 && i < MAX_CONNS && slot < 0; i++)
                if (cs[i].fd < 0)
                    slot = i;
            if (slot >= 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                cs[slot].fd = fd;
                cs[slot].deaf = 0;
                cs[slot].have = 0;
            } else if (fd >= 0) {
                close(fd);
            }
        }
        for (int k = 2; k < n; k++) {
            if (p[k].revents == 0)
                continue;
            conn *c = &cs[idx[k]];
            ssize_t r = recv(c->fd, c->in + c->have, INBUF - c->have, 0);
            int drop = r <= 0;
            if (!drop) {
                c->have += (size_t)r;
                if (c->deaf)
                    c->have = 0;
                else
                    drop = (f->kind == FAKE_REDIS ? redis_input(f, c)
                                                  : mc_input(f, c)) != 0 ||
                           c->have == INBUF;
            }
            if (drop) {
                close(c->fd);
                c->fd = -1;
            }
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    free(cs);
    return NULL;
}

int fake_start(fake *f, fake_kind kind)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->lfd < 0 || pipe2(f->wake, O_CLOEXEC) != 0) {
        fprintf(stderr, "fake: socket/pipe: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(f->lfd, 16) != 0 ||
        getsockname(f->lfd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "fake: bind/listen on 127.0.0.1: %s\n",
                strerror(errno));
        return -1;
    }
    f->port = ntohs(a.sin_port);
    if (pthread_create(&f->th, NULL, fake_main, f) != 0) {
        fprintf(stderr, "fake: pthread_create failed\n");
        return -1;
    }
    return 0;
}

void fake_script(fake *f, const fake_step *steps, size_t n)
{
    pthread_mutex_lock(&f->mu);
    if (n > FAKE_MAX_STEPS)
        n = FAKE_MAX_STEPS;
    memcpy(f->steps, steps, n * sizeof *steps);
    f->nsteps = n;
    f->next = 0;
    pthread_mutex_unlock(&f->mu);
}

unsigned fake_increments(fake *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->increments;
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t fake_last_delta(fake *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t d = f->last_delta;
    pthread_mutex_unlock(&f->mu);
    return d;
}

void fake_set_value(fake *f, uint64_t v)
{
    pthread_mutex_lock(&f->mu);
    f->value = v;
    pthread_mutex_unlock(&f->mu);
}

void fake_stop(fake *f)
{
    char c = 'x';
    if (write(f->wake[1], &c, 1) == 1)
        pthread_join(f->th, NULL);
    close(f->wake[0]);
    close(f->wake[1]);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
}
