/*
 * delayproxy.c - the TCP delay proxy's loop: one epoll set over the
 * listening socket, every connection pair, a timerfd for the next chunk
 * due, and the stop descriptor. Nothing spins: the loop sleeps in
 * epoll_wait until a socket is ready, a chunk falls due or it is stopped.
 *
 * Each direction of a connection is a FIFO of chunks stamped with the time
 * they may leave (arrival + delay); the head leaves first, so the order of
 * bytes is kept, and a chunk that cannot be written whole blocks the ones
 * behind it until the socket drains. An EOF travels as an empty chunk, so a
 * half-close reaches the other side after the same delay as the data.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "delayproxy.h"

#define READ_SIZE 65536
#define READS_PER_WAKE 16     /* reads per socket per wake-up, for fairness */
#define ACCEPTS_PER_WAKE 64

typedef struct chunk {
    struct chunk *next;
    uint64_t due;      /* CLOCK_MONOTONIC ns when it may be written */
    size_t len, off;   /* len 0: the sender's EOF */
    char data[];
} chunk;

/* One direction: read from fd[i], held, written to fd[1 - i]. */
typedef struct flow {
    chunk *head, *tail;
    size_t queued;     /* bytes held */
    int read_eof;      /* the sender closed its side: nothing more to read */
    int write_shut;    /* that EOF was passed on */
    int blocked;       /* the receiver's socket is full: wait for EPOLLOUT */
} flow;

typedef struct conn conn;

/* What an epoll event points at: one socket of a connection. */
typedef struct endpoint {
    conn *c;
    int side;          /* 0: the client, 1: the target */
} endpoint;

struct conn {
    int fd[2];
    endpoint ep[2];
    flow flow[2];      /* flow[0]: client -> target, flow[1]: back */
    uint32_t events[2];
    int registered[2];
    int connecting;    /* the target's connect is in progress */
    int gone[2];       /* that socket is closed both ways: unwatched */
    int dead;
    conn *next;
};

typedef struct proxy {
    int ep, timer, listen_fd, stop_fd, target_port;
    uint64_t delay_ns;
    conn *conns;
    int nconns;
    dp_stats *stats;
    char *buf;         /* READ_SIZE bytes: one proxy per thread */
} proxy;

/* Markers for the descriptors that are not connections. */
static endpoint mark_listen, mark_timer, mark_stop;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Adds n to a field of the stats, when there are stats. */
#define COUNT(p, field, n)                                                  \
    do {                                                                    \
        if ((p)->stats != NULL)                                             \
            atomic_fetch_add_explicit(&(p)->stats->field, (uint64_t)(n),    \
                                      memory_order_relaxed);                \
    } while (0)

static int fail(char *msg, size_t len, const char *what)
{
    snprintf(msg, len, "%s: %s", what, strerror(errno));
    return -1;
}

int dp_listen(int port, int *bound, char *msg, size_t len)
{
    if (port < 0 || port > 65535) {
        snprintf(msg, len, "port %d is outside 0..65535", port);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(msg, len, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        char what[64];
        snprintf(what, sizeof what, "cannot listen on 127.0.0.1:%d", port);
        fail(msg, len, what);
        close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

/* ---- Connections ------------------------------------------------------ */

static void free_flow(flow *f)
{
    while (f->head != NULL) {
        chunk *ch = f->head;
        f->head = ch->next;
        free(ch);
    }
    f->tail = NULL;
    f->queued = 0;
}

/* Marks the connection dead and closes its sockets; it is freed after the
 * current batch of events, which may still point at it. */
static void kill_conn(proxy *p, conn *c)
{
    if (c->dead)
        return;
    if (c->connecting) /* the target never answered: a refusal */
        COUNT(p, refused, 1);
    c->dead = 1;
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = -1;
        free_flow(&c->flow[i]);
    }
    p->nconns--;
}

static void reap_dead(proxy *p)
{
    for (conn **pc = &p->conns; *pc != NULL;) {
        conn *c = *pc;
        if (c->dead) {
            *pc = c->next;
            free(c);
        } else {
            pc = &c->next;
        }
    }
}

static void no_delay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Accepts what is waiting and opens a connection to the target for each. */
static void accept_some(proxy *p)
{
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int cfd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return; /* EAGAIN, or an aborted connection: nothing to do */
        if (p->nconns >= DP_MAX_CONNS) {
            close(cfd);
            COUNT(p, refused, 1);
            continue;
        }
        int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        conn *c = tfd >= 0 ? calloc(1, sizeof *c) : NULL;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)p->target_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = c != NULL ? connect(tfd, (struct sockaddr *)&a, sizeof a) : -1;
        if (c == NULL || (rc != 0 && errno != EINPROGRESS)) {
            /* nobody at the target: the client sees its connection closed */
            free(c);
            if (tfd >= 0)
                close(tfd);
            close(cfd);
            COUNT(p, refused, 1);
            continue;
        }
        no_delay(cfd);
        no_delay(tfd);
        c->fd[0] = cfd;
        c->fd[1] = tfd;
        c->connecting = rc != 0;
        for (int s = 0; s < 2; s++)
            c->ep[s] = (endpoint){c, s};
        c->next = p->conns;
        p->conns = c;
        p->nconns++;
        COUNT(p, accepted, 1);
    }
}

static int enqueue(flow *f, const char *data, size_t n, uint64_t due)
{
    chunk *ch = malloc(sizeof *ch + n);
    if (ch == NULL)
        return -1;
    ch->next = NULL;
    ch->due = due;
    ch->len = n;
    ch->off = 0;
    if (n > 0)
        memcpy(ch->data, data, n);
    if (f->tail != NULL)
        f->tail->next = ch;
    else
        f->head = ch;
    f->tail = ch;
    f->queued += n;
    return 0;
}

/* Reads what socket `side` has into its flow, stamping each chunk with
 * now + delay. `drain` ignores the queue limit (the peer hung up: what is
 * left must be read or the hang-up would be reported forever). */
static void read_side(proxy *p, conn *c, int side, uint64_t now, int drain)
{
    flow *f = &c->flow[side];
    char *buf = p->buf;
    for (int i = 0; i < READS_PER_WAKE || drain; i++) {
        if (f->read_eof || c->dead || (!drain && f->queued >= DP_MAX_QUEUED))
            return;
        ssize_t n = recv(c->fd[side], buf, READ_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                kill_conn(p, c);
            return;
        }
        if (enqueue(f, buf, (size_t)n, now + p->delay_ns) != 0) {
            kill_conn(p, c);
            return;
        }
        if (n == 0) {
            f->read_eof = 1;
            return;
        }
    }
}

/* Writes the chunks of flow `i` that are due, in order. */
static void flush(proxy *p, conn *c, int i, uint64_t now)
{
    flow *f = &c->flow[i];
    int to = c->fd[1 - i];
    if (c->dead || f->blocked || (i == 0 && c->connecting))
        return;
    while (f->head != NULL && f->head->due <= now) {
        chunk *ch = f->head;
        if (ch->len == 0) {
            shutdown(to, SHUT_WR);
            f->write_shut = 1;
        } else {
            ssize_t n = send(to, ch->data + ch->off, ch->len - ch->off,
                             MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                f->blocked = 1;
                return;
            }
            if (n < 0) {
                kill_conn(p, c);
                return;
            }
            ch->off += (size_t)n;
            if (i == 0)
                COUNT(p, bytes_up, n);
            else
                COUNT(p, bytes_down, n);
            if (ch->off < ch->len) {
                f->blocked = 1;
                return;
            }
        }
        f->queued -= ch->len;
        f->head = ch->next;
        if (f->head == NULL)
            f->tail = NULL;
        free(ch);
    }
}

/* Sets what epoll watches on each socket from the connection's state, and
 * closes the connection once both directions have passed their EOF. */
static void update_interest(proxy *p, conn *c)
{
    if (c->dead)
        return;
    if (c->flow[0].write_shut && c->flow[1].write_shut) {
        kill_conn(p, c);
        return;
    }
    for (int s = 0; s < 2; s++) {
        /* socket s is finished when it has nothing more to give or take */
        int done = c->gone[s] ||
                   (c->flow[s].read_eof && c->flow[1 - s].write_shut);
        uint32_t ev = 0;
        if (!c->flow[s].read_eof && c->flow[s].queued < DP_MAX_QUEUED &&
            !(s == 1 && c->connecting))
            ev |= EPOLLIN;
        if (c->flow[1 - s].blocked || (s == 1 && c->connecting))
            ev |= EPOLLOUT;
        if (done) {
            if (c->registered[s])
                epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd[s], NULL);
            c->registered[s] = 0;
            continue;
        }
        if (c->registered[s] && ev == c->events[s])
            continue;
        struct epoll_event e = {.events = ev, .data.ptr = &c->ep[s]};
        if (epoll_ctl(p->ep, c->registered[s] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                      c->fd[s], &e) != 0) {
            kill_conn(p, c);
            return;
        }
        c->registered[s] = 1;
        c->events[s] = ev;
    }
}

static void on_event(proxy *p, endpoint *e, uint32_t ev, uint64_t now)
{
    conn *c = e->c;
    int s = e->side;
    if (c->dead)
        return;
    if (ev & EPOLLERR) {
        kill_conn(p, c);
        return;
    }
    if ((ev & EPOLLOUT) && s == 1 && c->connecting) {
        int soerr = 0;
        socklen_t l = sizeof soerr;
        if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &soerr, &l) != 0 ||
            soerr != 0) {
            kill_conn(p, c);
            return;
        }
        c->connecting = 0;
    } else if (ev & EPOLLOUT) {
        c->flow[1 - s].blocked = 0;
    }
    if (ev & (EPOLLIN | EPOLLHUP))
        read_side(p, c, s, now, (ev & EPOLLHUP) != 0);
    if ((ev & EPOLLHUP) && !c->dead && c->flow[s].read_eof) {
        /* Closed both ways: what it sent still travels on, but nothing
         * can reach it any more, and epoll would report the hang-up on
         * every wait: stop watching it. */
        c->gone[s] = 1;
        free_flow(&c->flow[1 - s]);
        c->flow[1 - s].write_shut = 1;
        c->flow[1 - s].blocked = 0;
    }
}

/* Arms the timer for the earliest chunk due, or disarms it. */
static void arm_timer(proxy *p)
{
    uint64_t next = UINT64_MAX;
    for (conn *c = p->conns; c != NULL; c = c->next) {
        if (c->dead)
            continue;
        for (int i = 0; i < 2; i++) {
            const flow *f = &c->flow[i];
            if (f->head != NULL && !f->blocked && !(i == 0 && c->connecting) &&
                f->head->due < next)
                next = f->head->due;
        }
    }
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (next != UINT64_MAX) {
        /* 0 would disarm: a due time of 0 cannot happen, but stay safe */
        its.it_value.tv_sec = (time_t)(next / 1000000000u);
        its.it_value.tv_nsec = (long)(next % 1000000000u);
        if (next == 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(p->timer, TFD_TIMER_ABSTIME, &its, NULL);
}

static int watch(proxy *p, int fd, endpoint *mark)
{
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = mark};
    return epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &e);
}

int dp_run(int listen_fd, int target_port, uint64_t delay_ns, int stop_fd,
           dp_stats *stats, char *msg, size_t len)
{
    if (target_port <= 0 || target_port > 65535) {
        snprintf(msg, len, "target port %d is outside 1..65535",
                 target_port);
        return -1;
    }
    proxy p = {.ep = -1, .timer = -1, .listen_fd = listen_fd,
               .stop_fd = stop_fd, .target_port = target_port,
               .delay_ns = delay_ns, .stats = stats};
    int rc = -1;
    if ((p.buf = malloc(READ_SIZE)) == NULL) {
        snprintf(msg, len, "out of memory");
        return -1;
    }
    p.ep = epoll_create1(EPOLL_CLOEXEC);
    if (p.ep < 0) {
        fail(msg, len, "epoll_create1");
        goto out;
    }
    p.timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p.timer < 0) {
        fail(msg, len, "timerfd_create");
        goto out;
    }
    if (watch(&p, listen_fd, &mark_listen) != 0 ||
        watch(&p, p.timer, &mark_timer) != 0 ||
        watch(&p, stop_fd, &mark_stop) != 0) {
        fail(msg, len, "epoll_ctl");
        goto out;
    }
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(p.ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail(msg, len, "epoll_wait");
            goto out;
        }
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            endpoint *e = evs[i].data.ptr;
            if (e == &mark_stop) {
                rc = 0;
                goto out;
            } else if (e == &mark_listen) {
                accept_some(&p);
            } else if (e == &mark_timer) {
                uint64_t ticks;
                if (read(p.timer, &ticks, sizeof ticks) < 0 && errno != EAGAIN) {
                    fail(msg, len, "timerfd read");
                    goto out;
                }
            } else {
                on_event(&p, e, evs[i].events, now);
            }
        }
        /* every due chunk leaves now; then watch what each socket needs */
        now = now_ns();
        for (conn *c = p.conns; c != NULL; c = c->next) {
            flush(&p, c, 0, now);
            flush(&p, c, 1, now);
            update_interest(&p, c);
        }
        reap_dead(&p);
        arm_timer(&p);
    }
out:
    for (conn *c = p.conns; c != NULL; c = c->next)
        kill_conn(&p, c);
    reap_dead(&p);
    if (p.timer >= 0)
        close(p.timer);
    if (p.ep >= 0)
        close(p.ep);
    free(p.buf);
    return rc;
}
