/*
 * redis_helpers.c - what the redis suites share: starting servers and
 * replicas, and inline commands sent over a raw socket to read the
 * server's own counts and values (so the tests link no Redis client).
 */
#define _GNU_SOURCE  /* memmem */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "redis_helpers.h"

void start_redis(server *s, const char *extra)
{
    ck_assert_msg(server_start(s, "redis", extra) == 0,
                  "redis-server did not start (extra \"%s\")",
                  extra != NULL ? extra : "");
}

char *redis_uri(const server *s, const char *query)
{
    static char uri[512];
    return server_uri(s, query, uri, sizeof uri);
}

/* Length of the first complete RESP reply in buf[0..n) (simple string,
 * error, integer or bulk string), or 0 when more bytes are needed. */
static size_t reply_len(const char *buf, size_t n)
{
    const char *eol = memmem(buf, n, "\r\n", 2);
    if (eol == NULL)
        return 0;
    size_t head = (size_t)(eol - buf) + 2;
    if (buf[0] != '$')
        return head;
    long len = strtol(buf + 1, NULL, 10);
    if (len < 0)
        return head;
    return n >= head + (size_t)len + 2 ? head + (size_t)len + 2 : 0;
}

/*
 * Sends one inline command (after "AUTH password" when password is not
 * NULL) to the server and copies its reply into out: a bulk string's
 * content, or the whole line of any other reply ("+OK", "-ERR ...", ":3").
 */
void raw(const server *s, const char *password, const char *cmd,
                char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect to 127.0.0.1:%d: %s", s->port, strerror(errno));
    char req[512];
    int n = password != NULL
                ? snprintf(req, sizeof req, "AUTH %s\r\n%s\r\n", password, cmd)
                : snprintf(req, sizeof req, "%s\r\n", cmd);
    ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    static char buf[1 << 16];
    size_t have = 0, skip = 0, len = 0;
    for (;;) {
        if (password != NULL && skip == 0 && (skip = reply_len(buf, have)) > 0)
            ck_assert_msg(strncmp(buf, "+OK", 3) == 0, "AUTH: %.*s",
                          (int)skip, buf);
        if ((password == NULL || skip > 0) &&
            (len = reply_len(buf + skip, have - skip)) > 0)
            break;
        ck_assert_uint_lt(have, sizeof buf);
        ssize_t got = recv(fd, buf + have, sizeof buf - have, 0);
        ck_assert_msg(got > 0, "no reply to '%s' from 127.0.0.1:%d", cmd,
                      s->port);
        have += (size_t)got;
    }
    close(fd);
    const char *r = buf + skip;
    if (r[0] == '$' && r[1] != '-') {   /* "$-1", nil, is shown as is */
        const char *body = strstr(r, "\r\n") + 2;
        size_t blen = len - (size_t)(body - r) - 2;
        snprintf(out, outlen, "%.*s", (int)blen, body);
    } else {
        snprintf(out, outlen, "%.*s", (int)(len - 2), r);
    }
}

/* The server's own count of calls of a command, by its lower-case name
 * ("incrby", "wait"), since its start or CONFIG RESETSTAT (INFO
 * commandstats). */
uint64_t server_calls(const server *s, const char *cmd)
{
    static char info[1 << 16];
    char field[64];
    raw(s, NULL, "INFO commandstats", info, sizeof info);
    snprintf(field, sizeof field, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(info, field);
    return p != NULL ? strtoull(p + strlen(field), NULL, 10) : 0;
}

/* The server's own count of INCRBY calls (INFO commandstats). */
uint64_t server_incrbys(const server *s)
{
    return server_calls(s, "incrby");
}

/* The value of `key` as the server s itself holds it (a replica's own
 * copy, read on the replica); 0 for a missing key. */
uint64_t value_on(const server *s, const char *key)
{
    char cmd[256], out[64];
    snprintf(cmd, sizeof cmd, "GET %s", key);
    raw(s, NULL, cmd, out, sizeof out);
    if (strcmp(out, "$-1") == 0)
        return 0;
    char *end;
    uint64_t v = strtoull(out, &end, 10);
    ck_assert_msg(*end == '\0' && out[0] != '\0', "GET %s on 127.0.0.1:%d "
                  "answered '%s'", key, s->port, out);
    return v;
}

void start_replica(server *replica, const server *primary)
{
    ck_assert_msg(server_start_replica(replica, primary) == 0,
                  "no replica of 127.0.0.1:%d started", primary->port);
}
