/*
 * test_serve_proto.c - `idprime serve` through hiredis (a client no one
 * here wrote) and through raw bytes no client would send: the commands'
 * replies, pipelines from many connections, bad input in Redis's error
 * forms, limits, timeouts, AUTH, the clean stop, and a slow or dead store
 * that stalls no other client. Also the socketless entry a fuzzer uses.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "serve.h"
#include "serve_helpers.h"
#include "testutil.h"

/* ---- Helpers ---------------------------------------------------------- */

/* Starts the server with opts (NULL-terminated) on a SQLite store in its
 * own folder. */
static void start_sqlite(sp_server *s, const char *const *opts)
{
    static char uri[PATH_MAX + 32];
    const char *args[32];
    int n = 0;
    sp_prepare_dir(s);
    snprintf(uri, sizeof uri, "sqlite://%s/ids.db", s->dir);
    for (; opts != NULL && opts[n] != NULL && n < 30; n++)
        args[n] = opts[n];
    args[n++] = uri;
    args[n] = NULL;
    sp_start_ok(s, args);
}

static void stop_clean(sp_server *s)
{
    int rc = sp_stop(s);
    ck_assert_msg(rc == 0, "the server exited with %d:\n%s", rc,
                  sp_logtext(s));
    sp_done(s);
}

static redisContext *rconnect(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    ck_assert_msg(c != NULL && c->err == 0, "hiredis connect: %s",
                  c != NULL ? c->errstr : "out of memory");
    struct timeval tv = {10, 0};
    redisSetTimeout(c, tv);
    return c;
}

static redisReply *rcmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "%s: no reply: %s", fmt, c->errstr);
    return r;
}

static long long rint_(redisContext *c, const char *cmd)
{
    redisReply *r = rcmd(c, cmd);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "%s: reply type %d (%s)",
                  cmd, r->type, r->str ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The reply to cmd must be the error `want`. */
static void rerr(redisContext *c, const char *cmd, const char *want)
{
    redisReply *r = rcmd(c, cmd);
    ck_assert_msg(r->type == REDIS_REPLY_ERROR && strcmp(r->str, want) == 0,
                  "%s: got type %d '%s', want the error '%s'", cmd, r->type,
                  r->str ? r->str : "", want);
    freeReplyObject(r);
}

/* ---- Commands --------------------------------------------------------- */

START_TEST(incr_answers_ids_and_get_the_store_value)
{
    sp_server s = {0};
    start_sqlite(&s, NULL);
    redisContext *c = rconnect(s.port);
    ck_assert_int_eq(rint_(c, "INCR inode"), 1);
    ck_assert_int_eq(rint_(c, "INCR inode"), 2);
    /* INCRBY 10: the last of ten consecutive IDs, all above the INCRs */
    ck_assert_int_eq(rint_(c, "INCRBY inode 10"), 12);
    ck_assert_int_eq(rint_(c, "INCR inode"), 13);
    /* GET: the store's value, the end of what the engine fetched */
    redisReply *r = rcmd(c, "GET inode");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_int_ge(strtoll(r->str, NULL, 10), 13);
    freeReplyObject(r);
    r = rcmd(c, "GET never-used");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = rcmd(c, "PING");
    ck_assert_str_eq(r->str, "PONG");
    freeReplyObject(r);
    r = rcmd(c, "ECHO %b", "a\0\r\nb", (size_t)5); /* binary safe */
    ck_assert(r->type == REDIS_REPLY_STRING && r->len == 5 &&
              memcmp(r->str, "a\0\r\nb", 5) == 0);
    freeReplyObject(r);
    r = rcmd(c, "SELECT 0");
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    rerr(c, "SELECT 1", "ERR DB index is out of range");
    redisFree(c);
    stop_clean(&s);
}
END_TEST

START_TEST(errors_in_redis_form)
{
    sp_server s = {0};
    start_sqlite(&s, NULL);
    redisContext *c = rconnect(s.port);
    rerr(c, "SET k v", "ERR unknown command 'SET', with args beginning "
         "with: 'k' 'v' ");
    rerr(c, "FLUSHALL", "ERR unknown command 'FLUSHALL', with args "
         "beginning with: ");
    rerr(c, "INCR", "ERR wrong number of arguments for 'incr' command");
    rerr(c, "INCRBY a 1 2", "ERR wrong number of arguments for 'incrby' "
         "command");
    rerr(c, "INCRBY a abc", "ERR value is not an integer or out of range");
    rerr(c, "INCRBY a 1.5", "ERR value is not an integer or out of range");
    rerr(c, "INCRBY a 9223372036854775808",
         "ERR value is not an integer or out of range");
    const char *up = "ERR increment must be a positive integer: idprime "
                     "counters only move up (IDs are never handed back)";
    rerr(c, "INCRBY a -1", up);
    rerr(c, "INCRBY a 0", up);
    /* a counter at 1 cannot take 2^63 - 1 more: Redis's overflow error */
    ck_assert_int_eq(rint_(c, "INCR big"), 1);
    rerr(c, "INCRBY big 9223372036854775807",
         "ERR increment or decrement would overflow");
    ck_assert_int_eq(rint_(c, "INCR big"), 2); /* and it goes on */
    rerr(c, "INCR has/slash", "ERR invalid counter name 'has/slash': an "
         "idprime counter name is 1 to 200 bytes of A-Z a-z 0-9 _ . : -");
    redisReply *r = rcmd(c, "INCR %b", "a\0b", (size_t)3);
    ck_assert_str_eq(r->str, "ERR invalid counter name 'a\\x00b': an "
                     "idprime counter name is 1 to 200 bytes of A-Z a-z "
                     "0-9 _ . : -");
    freeReplyObject(r);
    rerr(c, "CLIENT KILL x", "ERR unknown subcommand 'kill'. Try CLIENT "
         "HELP.");
    rerr(c, "AUTH pw", "ERR AUTH <password> called without any password "
         "configured for the default user. Are you sure your "
         "configuration is correct?");
    redisFree(c);
    stop_clean(&s);
}
END_TEST

START_TEST(handshake_commands)
{
    sp_server s = {0};
    start_sqlite(&s, NULL);
    int fd = sp_connect(s.port);
    sp_sends(fd, "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$2\r\nme\r\n"
                 "*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\n"
                 "*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n"
                 "$4\r\ntest\r\n"
                 "*2\r\n$7\r\nCOMMAND\r\n$5\r\nCOUNT\r\n"
                 "*3\r\n$7\r\nCOMMAND\r\n$4\r\nINFO\r\n$4\r\nincr\r\n");
    sp_expect(fd, "+OK\r\n$2\r\nme\r\n+OK\r\n:12\r\n"
                  "*1\r\n*10\r\n$4\r\nincr\r\n:2\r\n*3\r\n+write\r\n"
                  "+denyoom\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n"
                  "+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n");
    /* HELLO 3: a RESP3 map, then RESP3's null and verbatim text */
    sp_sends(fd, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n");
    char buf[512];
    sp_recv(fd, buf, 2, 10000);
    ck_assert_str_eq(buf, "%7");
    size_t n = sp_recv(fd, buf, sizeof buf - 1, 300);
    ck_assert_msg(n > 0 && strstr(buf, "$5\r\nproto\r\n:3\r\n") != NULL,
                  "HELLO 3 map: %s", buf);
    sp_sends(fd, "*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n"
                 "*2\r\n$5\r\nHELLO\r\n$1\r\n4\r\n"
                 "*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n");
    sp_expect(fd, "_\r\n-NOPROTO unsupported protocol version\r\n=");
    n = sp_recv(fd, buf, sizeof buf - 1, 300);
    ck_assert_msg(strstr(buf, "\r\ntxt:# Clients\r\nconnected_clients:1") !=
                      NULL, "INFO in RESP3: %s", buf);
    sp_sends(fd, "*1\r\n$4\r\nQUIT\r\n");
    sp_expect(fd, "+OK\r\n");
    ck_assert(sp_closed(fd, 5000));
    close(fd);
    stop_clean(&s);
}
END_TEST

/* ---- Many connections ------------------------------------------------- */

#define PIPE_THREADS 8
#define PIPE_PER 2000
#define PIPE_DEPTH 100

typedef struct pipe_arg {
    int port;
    uint64_t *ids;
    char err[256];
} pipe_arg;

/* One connection: PIPE_PER INCRs, PIPE_DEPTH in flight at a time. */
static void *pipeline_thread(void *v)
{
    pipe_arg *a = v;
    redisContext *c = redisConnect("127.0.0.1", a->port);
    if (c == NULL || c->err) {
        snprintf(a->err, sizeof a->err, "connect failed");
        return NULL;
    }
    for (int done = 0; done < PIPE_PER; done += PIPE_DEPTH) {
        for (int i = 0; i < PIPE_DEPTH; i++)
            redisAppendCommand(c, "INCR pipelined");
        for (int i = 0; i < PIPE_DEPTH; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL ||
                r->type != REDIS_REPLY_INTEGER) {
                snprintf(a->err, sizeof a->err, "reply %d: %s", done + i,
                         r != NULL && r->str ? r->str : c->errstr);
                freeReplyObject(r);
                redisFree(c);
                return NULL;
            }
            a->ids[done + i] = (uint64_t)r->integer;
            freeReplyObject(r);
        }
    }
    redisFree(c);
    return NULL;
}

START_TEST(pipelined_incrs_from_8_connections_all_distinct)
{
    sp_server s = {0};
    start_sqlite(&s, NULL);
    uint64_t *ids = calloc(PIPE_THREADS * PIPE_PER, sizeof *ids);
    pipe_arg args[PIPE_THREADS];
    pthread_t th[PIPE_THREADS];
    for (int t = 0; t < PIPE_THREADS; t++) {
        args[t] = (pipe_arg){s.port, ids + t * PIPE_PER, ""};
        ck_assert(pthread_create(&th[t], NULL, pipeline_thread, &args[t]) == 0);
    }
    for (int t = 0; t < PIPE_THREADS; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(args[t].err[0] == '\0', "connection %d: %s", t,
                      args[t].err);
        /* one connection's INCR replies strictly increase */
        for (int i = 1; i < PIPE_PER; i++)
            ck_assert_msg(args[t].ids[i] > args[t].ids[i - 1],
                          "connection %d: %llu after %llu", t,
                          (unsigned long long)args[t].ids[i],
                          (unsigned long long)args[t].ids[i - 1]);
    }
    tu_assert_distinct(ids, PIPE_THREADS * PIPE_PER);
    free(ids);
    stop_clean(&s);
}
END_TEST

/*
 * A client that sends a long pipeline and reads its replies only when the
 * server stops taking its requests: the server's output goes past its
 * high mark (it stops running requests), the sockets fill, the server's
 * own writes are partial; then the client reads. Every reply must come,
 * in order: INCRs strictly increasing, and big ECHOs between them intact
 * at their places.
 */
#define SLOW_N 20000
#define SLOW_ECHO_EVERY 100 /* 10 MB of replies: past socket buffers */
#define SLOW_ECHO_LEN 50000

START_TEST(client_not_reading_gets_every_reply_in_order)
{
    sp_server s = {0};
    start_sqlite(&s, NULL);
    int fd = sp_connect(s.port);
    /* the requests: INCR ctr, with an ECHO of a big marked value every
     * SLOW_ECHO_EVERY */
    char *echo = malloc(SLOW_ECHO_LEN + 64);
    size_t cap = (size_t)SLOW_N * 32 +
                 (SLOW_N / SLOW_ECHO_EVERY + 1) * (SLOW_ECHO_LEN + 64);
    char *reqs = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < SLOW_N; i++) {
        if (i % SLOW_ECHO_EVERY == 0) {
            memset(echo, 'a' + (i / SLOW_ECHO_EVERY) % 26, SLOW_ECHO_LEN);
            len += (size_t)sprintf(reqs + len, "*2\r\n$4\r\nECHO\r\n$%d\r\n",
                                   SLOW_ECHO_LEN);
            memcpy(reqs + len, echo, SLOW_ECHO_LEN);
            len += SLOW_ECHO_LEN;
            memcpy(reqs + len, "\r\n", 2);
            len += 2;
        }
        static const char incr[] = "*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n";
        memcpy(reqs + len, incr, sizeof incr - 1);
        len += sizeof incr - 1;
    }
    /* send first, read only when the server takes no more */
    redisReader *rd = redisReaderCreate();
    size_t sent = 0;
    int incrs = 0, echoes = 0;
    long long last = 0;
    long long deadline = sp_now_ms() + 60000;
    while (incrs + echoes < SLOW_N + SLOW_N / SLOW_ECHO_EVERY) {
        ck_assert_msg(sp_now_ms() < deadline, "stalled: %d INCR and %d ECHO "
                      "replies, %zu of %zu bytes sent", incrs, echoes, sent,
                      len);
        struct pollfd p = {fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)),
                           0};
        ck_assert_int_ge(poll(&p, 1, 1000), 0);
        if (p.revents & POLLOUT) {
            ssize_t n = send(fd, reqs + sent, len - sent, MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            continue;
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        ck_assert_msg(n > 0, "the server closed after %d replies",
                      incrs + echoes);
        redisReaderFeed(rd, buf, (size_t)n);
        void *obj;
        while (redisReaderGetReply(rd, &obj) == REDIS_OK && obj != NULL) {
            redisReply *r = obj;
            int at = incrs + echoes; /* the request this answers */
            if (at % (SLOW_ECHO_EVERY + 1) == 0) {
                ck_assert_msg(r->type == REDIS_REPLY_STRING &&
                                  r->len == SLOW_ECHO_LEN,
                              "reply %d: type %d, want the ECHO", at,
                              r->type);
                memset(echo, 'a' + echoes % 26, SLOW_ECHO_LEN);
                ck_assert_msg(memcmp(r->str, echo, SLOW_ECHO_LEN) == 0,
                              "reply %d: ECHO %d's bytes are not its own",
                              at, echoes);
                echoes++;
            } else {
                ck_assert_msg(r->type == REDIS_REPLY_INTEGER,
                              "reply %d: type %d, want an INCR's", at,
                              r->type);
                ck_assert_msg(r->integer > last, "reply %d: %lld after %lld",
                              at, r->integer, last);
                last = r->integer;
                incrs++;
            }
            freeReplyObject(r);
        }
    }
    ck_assert_int_eq(incrs, SLOW_N);
    ck_assert_int_eq(echoes, SLOW_N / SLOW_ECHO_EVERY);
    ck_assert_msg(sent == len, "%zu of %zu bytes sent", sent, len);
    /* nothing more than asked */
    sp_sends(fd, "*1\r\n$4\r\nPING\r\n");
    sp_expect(fd, "+PONG\r\n");
    redisReaderFree(rd);
    free(reqs);
    free(echo);
    close(fd);
    stop_clean(&s);
}
END_TEST

/* ---- Bad input -------------------------------------------------------- */

/* Sends `bytes` on a fresh connection: the reply must be `want`, then the
 * server closes the connection, and another client is served. */
static void refused(int port, const char *bytes, size_t len, const char *want)
{
    int fd = sp_connect(port);
    sp_send(fd, bytes, len);
    sp_expect(fd, want);
    ck_assert_msg(sp_closed(fd, 5000), "not closed after '%s'", want);
    close(fd);
    int ok = sp_connect(port);
    sp_sends(ok, "*1\r\n$4\r\nPING\r\n");
    sp_expect(ok, "+PONG\r\n");
    close(ok);
}
#define REFUSED(port, lit, want) refused((port), (lit), sizeof(lit) - 1, (want))

START_TEST(malformed_resp_gets_protocol_errors)
{
    sp_server s = {0};
    start_sqlite(&s, NULL);
    REFUSED(s.port, "*1\r\n:5\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n");
    REFUSED(s.port, "+PING\r\n",
            "-ERR Protocol error: expected '*', got '+'\r\n");
    REFUSED(s.port, "PING\r\n",
            "-ERR Protocol error: expected '*', got 'P'\r\n");
    REFUSED(s.port, "*1\r\n*1\r\n$4\r\nPING\r\n",
            "-ERR Protocol error: expected '$', got '*'\r\n");
    REFUSED(s.port, "*2\r\n$4\r\nECHO\r\n$-1\r\n",
            "-ERR Protocol error: invalid bulk length\r\n");
    REFUSED(s.port, "*1\r\n\x01\r\n",
            "-ERR Protocol error: expected '$', got '\\x01'\r\n");
    /* a count no request under the limit can hold: refused at once */
    REFUSED(s.port, "*2000000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n");
    /* a 600 MB bulk is refused on its header, not after 600 MB */
    long long t0 = sp_now_ms();
    REFUSED(s.port, "*2\r\n$4\r\nECHO\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n");
    ck_assert_int_lt(sp_now_ms() - t0, 5000);
    /* a pipeline: the good requests before the bad one are answered */
    REFUSED(s.port, "*1\r\n$4\r\nPING\r\n*1\r\n:1\r\n",
            "+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n");
    stop_clean(&s);
}
END_TEST

START_TEST(request_over_the_limit_is_refused)
{
    sp_server s = {0};
    start_sqlite(&s, (const char *[]){"--max-request-bytes", "1024", NULL});
    const char *want = "-ERR Protocol error: request larger than 1024 bytes "
                       "(--max-request-bytes)\r\n";
    /* announced too big: refused before the bytes come */
    REFUSED(s.port, "*2\r\n$4\r\nECHO\r\n$2000\r\n", want);
    /* many small arguments adding up past it */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "*200\r\n$4\r\nECHO\r\n");
    for (int i = 0; i < 199 && n + 40 < sizeof big; i++)
        n += (size_t)snprintf(big + n, sizeof big - n,
                              "$20\r\nabcdefghijabcdefghij\r\n");
    refused(s.port, big, n, want);
    /* just under it is fine */
    redisContext *c = rconnect(s.port);
    char arg[900];
    memset(arg, 'x', sizeof arg);
    redisReply *r = rcmd(c, "ECHO %b", arg, sizeof arg);
    ck_assert(r->type == REDIS_REPLY_STRING && r->len == sizeof arg);
    freeReplyObject(r);
    redisFree(c);
    stop_clean(&s);
}
END_TEST

START_TEST(unfinished_request_is_closed_others_go_on)
{
    sp_server s = {0};
    start_sqlite(&s, (const char *[]){"--request-timeout-ms", "400", NULL});
    int half = sp_connect(s.port);
    sp_sends(half, "*2\r\n$4\r\nINCR\r\n$3\r\nab");
    long long t0 = sp_now_ms();
    /* a byte every 100 ms does not keep a request alive */
    int trickle = sp_connect(s.port);
    sp_sends(trickle, "*2\r\n$4\r\nECHO\r\n$100\r\n");
    redisContext *c = rconnect(s.port);
    for (int i = 1; i <= 20; i++) {
        ck_assert_int_eq(rint_(c, "INCR other"), i);
        send(trickle, "x", 1, MSG_NOSIGNAL);
        tu_sleep_ms(20);
    }
    ck_assert(sp_closed(half, 5000));
    ck_assert(sp_closed(trickle, 5000));
    ck_assert_int_ge(sp_now_ms() - t0, 350);
    ck_assert_int_eq(rint_(c, "INCR other"), 21); /* still served */
    close(half);
    close(trickle);
    redisFree(c);
    stop_clean(&s);
}
END_TEST

START_TEST(idle_timeout_closes_a_silent_client)
{
    sp_server s = {0};
    start_sqlite(&s, (const char *[]){"--idle-timeout-ms", "300", NULL});
    int idle = sp_connect(s.port);
    int busy = sp_connect(s.port);
    long long t0 = sp_now_ms();
    for (int i = 0; i < 8; i++) { /* 800 ms of a PING every 100 ms */
        sp_sends(busy, "*1\r\n$4\r\nPING\r\n");
        sp_expect(busy, "+PONG\r\n");
        tu_sleep_ms(100);
    }
    ck_assert(sp_closed(idle, 5000));
    ck_assert_int_ge(sp_now_ms() - t0, 250);
    sp_sends(busy, "*1\r\n$4\r\nPING\r\n");
    sp_expect(busy, "+PONG\r\n");
    close(idle);
    close(busy);
    stop_clean(&s);
}
END_TEST

/* ---- Security --------------------------------------------------------- */

START_TEST(auth_required_with_requirepass_file)
{
    sp_server s = {0};
    sp_prepare_dir(&s);
    char pw[PATH_MAX + 16];
    snprintf(pw, sizeof pw, "%s/pw", s.dir);
    FILE *f = fopen(pw, "w");
    ck_assert(f != NULL);
    fputs("s3cret pass\n", f);
    fclose(f);
    start_sqlite(&s, (const char *[]){"--requirepass-file", pw, NULL});
    redisContext *c = rconnect(s.port);
    rerr(c, "INCR a", "NOAUTH Authentication required.");
    rerr(c, "GET a", "NOAUTH Authentication required.");
    rerr(c, "HELLO 3", "NOAUTH HELLO must be called with the client already "
         "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
         "option can be used to authenticate the client and select the "
         "RESP protocol version at the same time");
    rerr(c, "AUTH wrong", "WRONGPASS invalid username-password pair or "
         "user is disabled.");
    rerr(c, "AUTH someone s3cret", "WRONGPASS invalid username-password "
         "pair or user is disabled.");
    redisReply *r = rcmd(c, "AUTH %s", "s3cret pass");
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    ck_assert_int_eq(rint_(c, "INCR a"), 1);
    redisFree(c);
    /* HELLO with AUTH: authenticated and RESP3 in one go */
    int fd = sp_connect(s.port);
    sp_sends(fd, "*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n"
                 "$7\r\ndefault\r\n$11\r\ns3cret pass\r\n");
    sp_expect(fd, "%7\r\n");
    close(fd);
    stop_clean(&s);
}
END_TEST

START_TEST(non_loopback_without_password_is_refused)
{
    sp_server s = {0};
    sp_prepare_dir(&s);
    int rc = sp_start(&s, (const char *[]){"--listen", "0.0.0.0:0",
                                           "mem://", NULL});
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(sp_logtext(&s), "refusing to listen on 0.0.0.0:0 "
                         "without a password: give --requirepass-file FILE")
                      != NULL, "%s", sp_logtext(&s));
    sp_done(&s);
}
END_TEST

/* ---- Connections ------------------------------------------------------ */

START_TEST(max_clients_gets_redis_error)
{
    sp_server s = {0};
    start_sqlite(&s, (const char *[]){"--max-clients", "5", NULL});
    int fds[5];
    for (int i = 0; i < 5; i++) {
        fds[i] = sp_connect(s.port);
        sp_sends(fds[i], "*1\r\n$4\r\nPING\r\n");
        sp_expect(fds[i], "+PONG\r\n");
    }
    int extra = sp_connect(s.port);
    sp_expect(extra, "-ERR max number of clients reached\r\n");
    ck_assert(sp_closed(extra, 5000));
    close(extra);
    close(fds[0]);
    /* a freed place is taken again (once the server saw the close) */
    long long deadline = sp_now_ms() + 10000;
    char buf[64];
    for (;;) {
        int fd = sp_connect(s.port);
        sp_sends(fd, "*1\r\n$4\r\nPING\r\n");
        sp_recv(fd, buf, 7, 5000);
        close(fd);
        if (strcmp(buf, "+PONG\r\n") == 0)
            break;
        ck_assert_msg(sp_now_ms() < deadline, "no place after a close: %s",
                      buf);
        tu_sleep_ms(10);
    }
    for (int i = 1; i < 5; i++)
        close(fds[i]);
    stop_clean(&s);
}
END_TEST

#define MANY 10000

START_TEST(ten_thousand_connections)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < MANY + 200) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > MANY + 200
                          ? MANY + 200 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_msg(rl.rlim_cur >= MANY + 200, "this test needs %d file "
                  "descriptors; the hard limit is %llu", MANY + 200,
                  (unsigned long long)rl.rlim_max);
    sp_server s = {0};
    start_sqlite(&s, (const char *[]){"--max-clients", "10000", NULL});
    int *fds = calloc(MANY, sizeof *fds);
    /* connect in groups, each answered before the next (the accept queue
     * stays short) */
    for (int i = 0; i < MANY; i += 250) {
        for (int j = i; j < i + 250; j++)
            fds[j] = sp_connect(s.port);
        for (int j = i; j < i + 250; j++)
            sp_sends(fds[j], "*2\r\n$4\r\nINCR\r\n$4\r\nmany\r\n");
        for (int j = i; j < i + 250; j++) {
            char buf[32];
            sp_recv(fds[j], buf, 1, 10000);
            ck_assert_msg(buf[0] == ':', "connection %d: '%s'", j, buf);
            sp_recv(fds[j], buf, sizeof buf - 1, 1);
        }
    }
    int extra = sp_connect(s.port);
    sp_expect(extra, "-ERR max number of clients reached\r\n");
    close(extra);
    sp_sends(fds[0], "*1\r\n$4\r\nPING\r\n");
    sp_expect(fds[0], "+PONG\r\n");
    sp_sends(fds[MANY - 1], "*1\r\n$4\r\nPING\r\n");
    sp_expect(fds[MANY - 1], "+PONG\r\n");
    for (int i = 0; i < MANY; i++)
        close(fds[i]);
    free(fds);
    stop_clean(&s);
}
END_TEST

/* ---- Stopping, slow and dead stores ----------------------------------- */

START_TEST(sigterm_answers_in_flight_then_exits_0)
{
    sp_server s = {0};
    sp_prepare_dir(&s);
    char metrics[PATH_MAX + 16];
    snprintf(metrics, sizeof metrics, "%s/metrics.txt", s.dir);
    /* every cold counter costs a 300 ms store round trip */
    sp_start_ok(&s, (const char *[]){"--metrics", metrics,
                                     "mem://?delay_ms=300", NULL});
    int fd = sp_connect(s.port);
    sp_sends(fd, "*2\r\n$4\r\nINCR\r\n$2\r\nc1\r\n*2\r\n$4\r\nINCR\r\n$2\r\nc2\r\n"
                 "*2\r\n$4\r\nINCR\r\n$2\r\nc3\r\n*2\r\n$4\r\nINCR\r\n$2\r\nc4\r\n"
                 "*2\r\n$3\r\nGET\r\n$2\r\nc1\r\n");
    sp_expect(fd, ":1\r\n"); /* the server has read them all by now */
    kill(s.pid, SIGTERM);
    sp_expect(fd, ":1\r\n:1\r\n:1\r\n$3\r\n256\r\n");
    ck_assert(sp_closed(fd, 10000));
    close(fd);
    int rc = sp_wait(&s, 30000);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, sp_logtext(&s));
    FILE *f = fopen(metrics, "r");
    ck_assert_msg(f != NULL, "no metrics written at exit");
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(text, "idprime_serve_ids_replied_total 4\n") &&
                      strstr(text, "idprime_ids_served_total{counter=\"c4\"}"),
                  "%s", text);
    sp_done(&s);
}
END_TEST

START_TEST(slow_store_round_trip_stalls_no_other_client)
{
    sp_server s = {0};
    sp_prepare_dir(&s);
    sp_start_ok(&s, (const char *[]){"mem://?delay_ms=500", NULL});
    redisContext *warm = rconnect(s.port);
    ck_assert_int_eq(rint_(warm, "INCR warm"), 1);
    int cold = sp_connect(s.port);
    sp_sends(cold, "*2\r\n$4\r\nINCR\r\n$4\r\ncold\r\n"
                   "*2\r\n$3\r\nGET\r\n$4\r\ncold\r\n");
    long long t0 = sp_now_ms();
    for (int i = 2; i <= 6; i++)
        ck_assert_int_eq(rint_(warm, "INCR warm"), i);
    redisReply *r = rcmd(warm, "PING");
    freeReplyObject(r);
    long long took = sp_now_ms() - t0;
    ck_assert_msg(took < 250, "warm INCRs and PING took %lld ms while "
                  "another counter waited for the store", took);
    sp_expect(cold, ":1\r\n$3\r\n256\r\n");
    ck_assert_int_ge(sp_now_ms() - t0, 450);
    close(cold);
    redisFree(warm);
    stop_clean(&s);
}
END_TEST

START_TEST(redis_store_down_cold_counter_errors_warm_goes_on)
{
    server rs;
    ck_assert(server_start(&rs, "redis", "--save '' --appendonly no") == 0);
    char uri[256];
    server_uri(&rs, "?timeout_ms=500", uri, sizeof uri);
    sp_server s = {0};
    sp_prepare_dir(&s);
    sp_start_ok(&s, (const char *[]){uri, NULL});
    redisContext *c = rconnect(s.port);
    ck_assert_int_eq(rint_(c, "INCR warm"), 1);
    server_stop(&rs, 0);
    redisReply *r = rcmd(c, "INCR cold");
    ck_assert_msg(r->type == REDIS_REPLY_ERROR &&
                      strncmp(r->str, "ERR ", 4) == 0 && strlen(r->str) > 10,
                  "INCR with the store down: type %d %s", r->type,
                  r->str ? r->str : "");
    freeReplyObject(r);
    ck_assert_int_eq(rint_(c, "INCR warm"), 2); /* from its range */
    r = rcmd(c, "PING");
    ck_assert_str_eq(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
    stop_clean(&s);
}
END_TEST

/* ---- Without sockets (the fuzzer's entry) ----------------------------- */

START_TEST(socketless_session_answers_as_a_connection)
{
    char err[256];
    serve_server *sv = serve_server_new("mem://", NULL, err, sizeof err);
    ck_assert_msg(sv != NULL, "%s", err);
    static const char req[] = "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINCR\r\n$1\r\na"
                              "\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n"
                              "*3\r\n$6\r\nINCRBY\r\n$1\r\na\r\n$1\r\n3\r\n"
                              "*2\r\n$3\r\nGET\r\n$1\r\nz\r\n*2\r\n$4\r\nINCR";
    char *out;
    size_t len;
    ck_assert_int_eq(serve_handle_request(sv, req, sizeof req - 1, &out, &len),
                     0);
    ck_assert_str_eq(out, "+PONG\r\n:1\r\n:2\r\n:5\r\n$-1\r\n");
    ck_assert_uint_eq(len, strlen(out));
    free(out);
    ck_assert_int_eq(serve_handle_request(sv, "*1\r\n:1\r\n*1\r\n$4\r\nPING\r\n",
                                          21, &out, &len), 1);
    ck_assert_str_eq(out, "-ERR Protocol error: expected '$', got ':'\r\n");
    free(out);
    ck_assert_int_eq(serve_handle_request(sv, "*1\r\n$4\r\nQUIT\r\n", 14, &out,
                                          &len), 1);
    ck_assert_str_eq(out, "+OK\r\n");
    free(out);
    serve_server_free(sv);
}
END_TEST

int main(void)
{
    const TTest *cmds[] = {
        incr_answers_ids_and_get_the_store_value, errors_in_redis_form,
        handshake_commands, socketless_session_answers_as_a_connection, NULL};
    const TTest *many[] = {
        pipelined_incrs_from_8_connections_all_distinct,
        client_not_reading_gets_every_reply_in_order,
        max_clients_gets_redis_error, ten_thousand_connections, NULL};
    const TTest *bad[] = {
        malformed_resp_gets_protocol_errors,
        request_over_the_limit_is_refused,
        unfinished_request_is_closed_others_go_on,
        idle_timeout_closes_a_silent_client, NULL};
    const TTest *sec[] = {
        auth_required_with_requirepass_file,
        non_loopback_without_password_is_refused, NULL};
    const TTest *life[] = {
        sigterm_answers_in_flight_then_exits_0,
        slow_store_round_trip_stalls_no_other_client,
        redis_store_down_cold_counter_errors_warm_goes_on, NULL};
    const tu_case cases[] = {
        {.name = "commands", .tests = cmds},
        {.name = "connections", .tests = many},
        {.name = "bad input", .tests = bad},
        {.name = "security", .tests = sec},
        {.name = "lifecycle", .tests = life},
        {NULL},
    };
    return tu_run(tu_suite("serve_proto", 120, cases));
}
