/*
 * harness_redis_sentinel.c - the "redis-sentinel" kind of server: a Redis
 * Sentinel on a free loopback port, in its own directory with the
 * sentinel.conf it rewrites. What it monitors comes in the extra
 * arguments, as config lines on the command line:
 *   --sentinel monitor NAME 127.0.0.1 PORT QUORUM
 *   --sentinel down-after-milliseconds NAME MS ...
 * It answers once INFO server names its own process id (or, with
 * --requirepass, says NOAUTH while its process runs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"

/* An empty sentinel.conf: Sentinel refuses to start without a config file
 * it can rewrite (it saves what it learns there). */
static int sentinel_prepare(server *s)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/sentinel.conf", s->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "harness: cannot create %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

static int sentinel_command(const server *s, char **argv, char *store,
                            size_t len)
{
    int n = snprintf(store, len, "%s/sentinel.conf", s->dir);
    char *port = store + n + 1;
    snprintf(port, len - (size_t)n - 1, "%d", s->port);
    char *base[] = {"redis-sentinel", store, "--port", port,
                    "--bind", "127.0.0.1", "--dir", (char *)s->dir,
                    "--daemonize", "no", "--logfile", ""};
    int argc = 0;
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        argv[argc++] = base[i];
    return argc;
}

/* INFO server on s->port names s->pid: the sentinel is up and ours. */
static int sentinel_answers(const server *s)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    int ok = 0;
    if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = redisCommand(c, "INFO server");
        if (r != NULL && r->type == REDIS_REPLY_STRING) {
            const char *p = strstr(r->str, "process_id:");
            ok = p != NULL && atol(p + strlen("process_id:")) == (long)s->pid;
        } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
            /* a sentinel with requirepass: alive is all we can tell */
            ok = strncmp(r->str, "NOAUTH", 6) == 0 && harness_alive(s);
        }
        if (r != NULL)
            freeReplyObject(r);
    }
    if (c != NULL)
        redisFree(c);
    return ok;
}

const server_kind harness_kind_redis_sentinel = {
    .name = "redis-sentinel",
    .prepare = sentinel_prepare,
    .command = sentinel_command,
    .answers = sentinel_answers,
};
