/*
 * relay.c - the TCP relay of relay.h: one thread, poll() over the
 * listening socket, each client and its upstream connection, and a
 * wake-up pipe. A chunk is what one recv() from the server returned.
 */
#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_PAIRS 16
#define CHUNK (1 << 16)

typedef struct pair {
    int client, server;    /* -1: free */
} pair;

/* Writes all of buf; 0, or -1 when the peer is gone. */
static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void pair_close(pair *p)
{
    if (p->client >= 0)
        close(p->client);
    if (p->server >= 0)
        close(p->server);
    p->client = p->server = -1;
}

/* A new connection to the server for an accepted client; -1 on failure. */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

static void accept_one(relay *r, pair *ps)
{
    int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < MAX_PAIRS; i++)
        if (ps[i].client < 0) {
            ps[i].client = fd;
            ps[i].server = dial(r->upstream);
            if (ps[i].server < 0)
                pair_close(&ps[i]);
            return;
        }
    close(fd);
}

/* A chunk from the server, passed, garbled, cut or dropped as the mode
 * says. Returns -1 when the pair is to be closed. */
static int from_server(relay *r, pair *p, unsigned char *buf, size_t n)
{
    pthread_mutex_lock(&r->mu);
    relay_mode m = r->mode;
    if (m != RELAY_PASS)
        r->spoiled++;
    if (m == RELAY_GARBAGE || m == RELAY_CUT)
        r->mode = RELAY_PASS;
    pthread_mutex_unlock(&r->mu);
    switch (m) {
    case RELAY_SILENT:
        return 0;
    case RELAY_GARBAGE:
        /* no protocol's message starts with 0xff, nor reads sanely on */
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)(i == 0 ? 0xff : "?!garbage"[i % 9]);
        return send_all(p->client, buf, n);
    case RELAY_CUT:
        send_all(p->client, buf, n / 2);
        return -1;
    default:
        return send_all(p->client, buf, n);
    }
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    pair ps[MAX_PAIRS];
    unsigned char *buf = malloc(CHUNK);
    if (buf == NULL)
        return NULL;
    for (int i = 0; i < MAX_PAIRS; i++)
        ps[i].client = ps[i].server = -1;
    for (;;) {
        struct pollfd p[2 * MAX_PAIRS + 2];
        int idx[2 * MAX_PAIRS + 2];
        int n = 0;
        p[n] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
        idx[n++] = -2;
        p[n] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < MAX_PAIRS; i++)
            if (ps[i].client >= 0) {
                p[n] = (struct pollfd){.fd = ps[i].client, .events = POLLIN};
                idx[n++] = 2 * i;
                p[n] = (struct pollfd){.fd = ps[i].server, .events = POLLIN};
                idx[n++] = 2 * i + 1;
            }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents != 0)
            break;
        if (p[1].revents & POLLIN)
            accept_one(r, ps);
        for (int k = 2; k < n; k++) {
            pair *pr = &ps[idx[k] / 2];
            if (p[k].revents == 0 || pr->client < 0)
                continue;
            int upstream = idx[k] % 2;
            ssize_t got = recv(p[k].fd, buf, CHUNK, 0);
            int bad = got <= 0;
            if (!bad)
                bad = upstream ? from_server(r, pr, buf, (size_t)got)
                               : send_all(pr->server, buf, (size_t)got);
            if (bad)
                pair_close(pr);
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        pair_close(&ps[i]);
    free(buf);
    return NULL;
}

int relay_start(relay *r, int upstream)
{
    memset(r, 0, sizeof *r);
    r->upstream = upstream;
    pthread_mutex_init(&r->mu, NULL);
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->lfd < 0 || pipe2(r->wake, O_CLOEXEC) != 0) {
        fprintf(stderr, "relay: socket/pipe: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(r->lfd, 16) != 0 ||
        getsockname(r->lfd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "relay: bind/listen on 127.0.0.1: %s\n",
                strerror(errno));
        return -1;
    }
    r->port = ntohs(a.sin_port);
    if (pthread_create(&r->th, NULL, relay_main, r) != 0) {
        fprintf(stderr, "relay: pthread_create failed\n");
        return -1;
    }
    return 0;
}

void relay_set(relay *r, relay_mode mode)
{
    pthread_mutex_lock(&r->mu);
    r->mode = mode;
    pthread_mutex_unlock(&r->mu);
}

unsigned relay_spoiled(relay *r)
{
    pthread_mutex_lock(&r->mu);
    unsigned n = r->spoiled;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void relay_stop(relay *r)
{
    char c = 'x';
    if (write(r->wake[1], &c, 1) == 1)
        pthread_join(r->th, NULL);
    close(r->wake[0]);
    close(r->wake[1]);
    close(r->lfd);
    pthread_mutex_destroy(&r->mu);
}
