/*
 * proxy_ctl.c - runs dp_run on a thread, stopped through an eventfd.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "proxy_ctl.h"

struct bench_proxy {
    pthread_t thread;
    int listen_fd, stop_fd, port, target_port;
    uint64_t delay_ns;
    dp_stats stats;
    char msg[256];   /* the loop's error, if it failed */
};

static void *proxy_main(void *arg)
{
    bench_proxy *p = arg;
    dp_run(p->listen_fd, p->target_port, p->delay_ns, p->stop_fd, &p->stats,
           p->msg, sizeof p->msg);
    return NULL;
}

bench_proxy *bench_proxy_start(int target_port, unsigned rtt_ms, char *msg,
                               size_t len)
{
    bench_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(msg, len, "delay proxy: out of memory");
        return NULL;
    }
    p->target_port = target_port;
    p->delay_ns = (uint64_t)rtt_ms * 1000000u / 2;
    p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->stop_fd < 0) {
        snprintf(msg, len, "delay proxy: eventfd: %s", strerror(errno));
        free(p);
        return NULL;
    }
    char why[200];
    p->listen_fd = dp_listen(0, &p->port, why, sizeof why);
    if (p->listen_fd < 0) {
        snprintf(msg, len, "delay proxy: %s", why);
        close(p->stop_fd);
        free(p);
        return NULL;
    }
    int rc = pthread_create(&p->thread, NULL, proxy_main, p);
    if (rc != 0) {
        snprintf(msg, len, "delay proxy: cannot start its thread: %s",
                 strerror(rc));
        close(p->listen_fd);
        close(p->stop_fd);
        free(p);
        return NULL;
    }
    return p;
}

int bench_proxy_port(const bench_proxy *p)
{
    return p->port;
}

const dp_stats *bench_proxy_stats(const bench_proxy *p)
{
    return &p->stats;
}

void bench_proxy_stop(bench_proxy *p)
{
    if (p == NULL)
        return;
    uint64_t one = 1;
    /* adding 1 to a fresh eventfd cannot fail */
    ssize_t w = write(p->stop_fd, &one, sizeof one);
    (void)w;
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->stop_fd);
    free(p);
}
