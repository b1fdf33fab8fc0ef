/*
 * test_serve_clients.c - `idprime serve` with real clients no one here
 * wrote: redis-cli (RESP2 and RESP3), redis-benchmark, Debian's
 * python3-redis (py_client.py: pipelines, a pool of 8 threads), hiredis
 * through the passthrough proxy in front of a real Redis (mixed
 * pipelines, MULTI/EXEC, pub/sub, blocking commands, the upstream going
 * down and coming back), and a real Prometheus scraping /metrics. Every
 * ID a test is handed is checked for duplicates, per counter.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "serve_helpers.h"
#include "testutil.h"

/* ---- IDs, per counter ------------------------------------------------- */

#define MAX_KEYS 8

typedef struct idset {
    char key[MAX_KEYS][64];
    uint64_t *ids[MAX_KEYS];
    size_t n[MAX_KEYS], cap[MAX_KEYS];
    pthread_mutex_t mu;
} idset;

static void ids_init(idset *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void ids_add(idset *s, const char *key, uint64_t v)
{
    pthread_mutex_lock(&s->mu);
    int k = 0;
    while (k < MAX_KEYS && s->key[k][0] != '\0' && strcmp(s->key[k], key))
        k++;
    ck_assert_msg(k < MAX_KEYS, "too many counters in one test");
    if (s->key[k][0] == '\0')
        snprintf(s->key[k], sizeof s->key[k], "%s", key);
    if (s->n[k] == s->cap[k]) {
        s->cap[k] = s->cap[k] ? s->cap[k] * 2 : 1024;
        s->ids[k] = realloc(s->ids[k], s->cap[k] * sizeof *s->ids[k]);
        ck_assert(s->ids[k] != NULL);
    }
    s->ids[k][s->n[k]++] = v;
    pthread_mutex_unlock(&s->mu);
}

/* IDs [last - n + 1, last]: what an INCRBY n answered with `last` took. */
static void ids_add_run(idset *s, const char *key, uint64_t last, uint64_t n)
{
    ck_assert_msg(last >= n, "INCRBY %llu answered %llu",
                  (unsigned long long)n, (unsigned long long)last);
    for (uint64_t v = last - n + 1; v <= last; v++)
        ids_add(s, key, v);
}

/* Every counter's IDs distinct (and none 0); frees them. Returns how many
 * IDs were checked. */
static size_t ids_check(idset *s)
{
    size_t total = 0;
    for (int k = 0; k < MAX_KEYS && s->key[k][0] != '\0'; k++) {
        tu_assert_distinct(s->ids[k], s->n[k]);
        total += s->n[k];
        free(s->ids[k]);
    }
    pthread_mutex_destroy(&s->mu);
    return total;
}

/* ---- Helpers ---------------------------------------------------------- */

static const char *uri_in(sp_server *s, const char *file)
{
    static char uri[PATH_MAX + 32];
    sp_prepare_dir(s);
    snprintf(uri, sizeof uri, "sqlite://%s/%s", s->dir, file);
    return uri;
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

static redisReply *rget(redisContext *c)
{
    redisReply *r = NULL;
    ck_assert_msg(redisGetReply(c, (void **)&r) == REDIS_OK && r != NULL,
                  "no reply: %s", c->errstr);
    return r;
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

static void expect_type(const redisReply *r, int type, const char *what)
{
    ck_assert_msg(r->type == type, "%s: reply type %d, want %d (%s)", what,
                  r->type, type, r->str ? r->str : "");
}

/* A number after "key" (up to the line's end) in text, or -1. */
static long long field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p != NULL ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* Output of a client program: big enough for py_client's ID lines. */
static char out[1 << 20];

/* Runs a client; it must exit 0. */
static void run_ok(int timeout_ms, const char *const *argv)
{
    int rc = sp_run(out, sizeof out, timeout_ms, argv);
    ck_assert_msg(rc == 0, "%s exited with %d:\n%.4000s", argv[0], rc, out);
}

/* ---- redis-cli -------------------------------------------------------- */

START_TEST(redis_cli_resp2_and_resp3)
{
    sp_server s = {0};
    sp_start_ok(&s, (const char *[]){uri_in(&s, "ids.db"), NULL});
    char port[16];
    snprintf(port, sizeof port, "%d", s.port);
    idset ids;
    ids_init(&ids);
#define CLI(...) ((const char *[]){"redis-cli", "-h", "127.0.0.1", "-p",      \
                                   port, __VA_ARGS__, NULL})
    run_ok(10000, CLI("INCR", "inode"));
    ck_assert_str_eq(out, "1\n");
    ids_add(&ids, "inode", 1);
    run_ok(10000, CLI("INCRBY", "inode", "10"));
    ck_assert_str_eq(out, "11\n");
    ids_add_run(&ids, "inode", 11, 10);
    /* -3: HELLO 3 first, replies in RESP3 */
    run_ok(10000, CLI("-3", "INCR", "inode"));
    ck_assert_str_eq(out, "12\n");
    ids_add(&ids, "inode", 12);
    run_ok(10000, CLI("-3", "GET", "never-used"));
    ck_assert_str_eq(out, "\n"); /* RESP3's null, shown raw */
    /* 200 INCRs on one connection: increasing */
    run_ok(20000, CLI("-r", "200", "INCR", "inode"));
    char *save = NULL;
    long long prev = 12, lines = 0;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n",
                                                                &save)) {
        long long v = strtoll(l, NULL, 10);
        ck_assert_msg(v > prev, "redis-cli -r: %lld after %lld", v, prev);
        ids_add(&ids, "inode", (uint64_t)v);
        prev = v;
        lines++;
    }
    ck_assert_int_eq(lines, 200);
    run_ok(10000, CLI("SET", "a", "b"));
    ck_assert_msg(strstr(out, "ERR unknown command 'SET'") != NULL, "%s", out);
    run_ok(10000, CLI("INFO", "idprime"));
    ck_assert_msg(strstr(out, "counter0:name=inode,") != NULL, "%s", out);
    run_ok(10000, CLI("GET", "inode"));
    ck_assert_int_ge(strtoll(out, NULL, 10), prev);
#undef CLI
    ck_assert_uint_eq(ids_check(&ids), 212);
    stop_clean(&s);
}
END_TEST

/* ---- redis-benchmark -------------------------------------------------- */

#define BENCH_N 20000

START_TEST(redis_benchmark_incr_every_id_counted)
{
    sp_server s = {0};
    sp_start_ok(&s, (const char *[]){uri_in(&s, "ids.db"), NULL});
    char port[16];
    snprintf(port, sizeof port, "%d", s.port);
    /* redis-benchmark's INCR key without -r: "counter:__rand_int__" */
    run_ok(120000, (const char *[]){"redis-benchmark", "-h", "127.0.0.1",
                                    "-p", port, "-t", "incr", "-n", "20000",
                                    "-c", "20", "-P", "16", "-q", NULL});
    ck_assert_msg(strstr(out, "requests per second") != NULL, "%s", out);
    /* its last line (progress lines end in \r before it) */
    const char *line = strstr(out, "INCR: "), *p;
    while (line != NULL && (p = strstr(line + 1, "INCR: ")) != NULL)
        line = p;
    fprintf(stderr, "redis-benchmark -t incr -n 20000 -c 20 -P 16: %s",
            line);
    redisContext *c = rconnect(s.port);
    /* the server handed out exactly one ID per INCR the benchmark sent */
    redisReply *r = rcmd(c, "INFO stats");
    ck_assert_int_eq(field(r->str, "ids_replied:"), BENCH_N);
    freeReplyObject(r);
    /* INCR replies increase across connections: the next one is above all
     * 20000, which therefore fit below it; the store holds at least as
     * many */
    long long next = rint_(c, "INCR counter:__rand_int__");
    ck_assert_int_gt(next, BENCH_N);
    r = rcmd(c, "GET counter:__rand_int__");
    expect_type(r, REDIS_REPLY_STRING, "GET");
    ck_assert_int_ge(strtoll(r->str, NULL, 10), next);
    freeReplyObject(r);
    redisFree(c);
    stop_clean(&s);
}
END_TEST

/* ---- python3-redis ---------------------------------------------------- */

START_TEST(python3_redis_pipelines_and_pool_of_8)
{
    const char *py = getenv("SERVE_PYTHON3");
    const char *script = getenv("SERVE_PY_CLIENT");
    ck_assert_msg(py != NULL && *py && script != NULL,
                  "SERVE_PYTHON3 / SERVE_PY_CLIENT not set (Debian's "
                  "python3 with python3-redis)");
    sp_server s = {0};
    sp_start_ok(&s, (const char *[]){uri_in(&s, "ids.db"), NULL});
    char port[16];
    snprintf(port, sizeof port, "%d", s.port);
    run_ok(120000, (const char *[]){py, script, port, NULL});
    ck_assert_msg(strstr(out, "\nok\n") != NULL, "%s", out);
    idset ids;
    ids_init(&ids);
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n",
                                                                &save)) {
        char key[64];
        unsigned long long v;
        if (sscanf(l, "id %63s %llu", key, &v) == 2)
            ids_add(&ids, key, v);
        else if (strncmp(l, "note:", 5) == 0)
            fprintf(stderr, "py_client.py: %s\n", l);
    }
    /* py 12, pipe 200, pool 4000 (resp3 2 with redis-py >= 5) */
    ck_assert_uint_ge(ids_check(&ids), 4212);
    stop_clean(&s);
}
END_TEST

/* ---- The passthrough proxy -------------------------------------------- */

typedef struct proxy {
    server rs;        /* the real Redis */
    sp_server sv;     /* idprime serve --upstream */
    char upstream[64];
} proxy;

static void proxy_start(proxy *p)
{
    ck_assert(server_start(&p->rs, "redis", "--save '' --appendonly no") == 0);
    snprintf(p->upstream, sizeof p->upstream, "redis://127.0.0.1:%d",
             p->rs.port);
    sp_start_ok(&p->sv, (const char *[]){"--upstream", p->upstream,
                                         "--counter", "ids", "--counter",
                                         "oid", NULL});
}

static void proxy_stop(proxy *p)
{
    stop_clean(&p->sv);
    server_stop(&p->rs, 0);
}

#define MIX_THREADS 8
#define MIX_ROUNDS 40

typedef struct mix_arg {
    int port, t;
    idset *ids;
    char err[512];
} mix_arg;

#define MIX_FAIL(a, ...) \
    do { snprintf((a)->err, sizeof (a)->err, __VA_ARGS__); goto out; } \
    while (0)

/*
 * One connection, MIX_ROUNDS pipelines of 7 requests each: forwarded
 * (SET, GET, INCR of its own plain key, ECHO, GET of the counter) and
 * intercepted (INCR, INCRBY of "ids"). Each reply must be the one its
 * request gets, in place: the plain key's INCR counts 1, 2, 3... as Redis
 * answers it, the counter's GET is at least every ID handed out before.
 */
static void *mix_thread(void *v)
{
    mix_arg *a = v;
    redisContext *c = redisConnect("127.0.0.1", a->port);
    if (c == NULL || c->err) {
        snprintf(a->err, sizeof a->err, "connect failed");
        return NULL;
    }
    char key[32], plain[32], val[32];
    snprintf(key, sizeof key, "k%d", a->t);
    snprintf(plain, sizeof plain, "plain%d", a->t);
    for (int round = 0; round < MIX_ROUNDS; round++) {
        snprintf(val, sizeof val, "v%d", round);
        redisAppendCommand(c, "SET %s %s", key, val);
        redisAppendCommand(c, "INCR ids");
        redisAppendCommand(c, "GET %s", key);
        redisAppendCommand(c, "INCRBY ids 3");
        redisAppendCommand(c, "INCR %s", plain);
        redisAppendCommand(c, "ECHO %s", val);
        redisAppendCommand(c, "GET ids");
        redisReply *r[7] = {0};
        for (int i = 0; i < 7; i++)
            if (redisGetReply(c, (void **)&r[i]) != REDIS_OK || !r[i])
                MIX_FAIL(a, "round %d reply %d: %s", round, i, c->errstr);
        if (r[0]->type != REDIS_REPLY_STATUS || strcmp(r[0]->str, "OK"))
            MIX_FAIL(a, "round %d: SET got %d %s", round, r[0]->type,
                     r[0]->str ? r[0]->str : "");
        if (r[1]->type != REDIS_REPLY_INTEGER ||
            r[3]->type != REDIS_REPLY_INTEGER)
            MIX_FAIL(a, "round %d: INCR/INCRBY ids got types %d, %d (%s)",
                     round, r[1]->type, r[3]->type,
                     r[1]->str ? r[1]->str : r[3]->str ? r[3]->str : "");
        if (r[2]->type != REDIS_REPLY_STRING || strcmp(r[2]->str, val))
            MIX_FAIL(a, "round %d: GET %s got %s, want %s", round, key,
                     r[2]->str ? r[2]->str : "(not a string)", val);
        if (r[4]->type != REDIS_REPLY_INTEGER || r[4]->integer != round + 1)
            MIX_FAIL(a, "round %d: INCR %s got %lld, want %d", round, plain,
                     r[4]->integer, round + 1);
        if (r[5]->type != REDIS_REPLY_STRING || strcmp(r[5]->str, val))
            MIX_FAIL(a, "round %d: ECHO got %s", round,
                     r[5]->str ? r[5]->str : "(not a string)");
        if (r[6]->type != REDIS_REPLY_STRING ||
            strtoll(r[6]->str, NULL, 10) < r[1]->integer ||
            strtoll(r[6]->str, NULL, 10) < r[3]->integer)
            MIX_FAIL(a, "round %d: GET ids got %s, below %lld or %lld",
                     round, r[6]->str ? r[6]->str : "(not a string)",
                     r[1]->integer, r[3]->integer);
        ids_add(a->ids, "ids", (uint64_t)r[1]->integer);
        ids_add_run(a->ids, "ids", (uint64_t)r[3]->integer, 3);
        for (int i = 0; i < 7; i++)
            freeReplyObject(r[i]);
    }
out:
    redisFree(c);
    return NULL;
}

START_TEST(proxy_mixed_pipelines_replies_in_order)
{
    proxy p = {0};
    proxy_start(&p);
    idset ids;
    ids_init(&ids);
    mix_arg args[MIX_THREADS];
    pthread_t th[MIX_THREADS];
    for (int t = 0; t < MIX_THREADS; t++) {
        args[t] = (mix_arg){.port = p.sv.port, .t = t, .ids = &ids};
        ck_assert(pthread_create(&th[t], NULL, mix_thread, &args[t]) == 0);
    }
    for (int t = 0; t < MIX_THREADS; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(args[t].err[0] == '\0', "connection %d: %s", t,
                      args[t].err);
    }
    /* Redis's own INCR of the counter, straight at it: above every ID the
     * engine handed out (its store is that Redis) */
    redisContext *direct = rconnect(p.rs.port);
    ids_add(&ids, "ids", (uint64_t)rint_(direct, "INCR ids"));
    redisFree(direct);
    ck_assert_uint_eq(ids_check(&ids), MIX_THREADS * MIX_ROUNDS * 4 + 1);
    redisContext *c = rconnect(p.sv.port);
    redisReply *r = rcmd(c, "INFO");
    /* INFO is forwarded too: this is Redis's */
    ck_assert_msg(strstr(r->str, "redis_version:") != NULL, "%s", r->str);
    freeReplyObject(r);
    redisFree(c);
    proxy_stop(&p);
}
END_TEST

START_TEST(proxy_multi_exec_pubsub_and_blocking_pass_through)
{
    proxy p = {0};
    proxy_start(&p);
    idset ids;
    ids_init(&ids);
    redisContext *c = rconnect(p.sv.port);
    ids_add(&ids, "ids", (uint64_t)rint_(c, "INCR ids")); /* the engine's */
    /* MULTI/EXEC: every command queued by Redis, INCR of the counter too */
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "INCR ids");
    redisAppendCommand(c, "INCRBY ids 2");
    redisAppendCommand(c, "SET m 1");
    redisAppendCommand(c, "EXEC");
    redisAppendCommand(c, "INCR ids"); /* the engine's again */
    redisReply *r = rget(c);
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    for (int i = 0; i < 3; i++) {
        r = rget(c);
        ck_assert_msg(r->type == REDIS_REPLY_STATUS &&
                          strcmp(r->str, "QUEUED") == 0,
                      "in MULTI: %d %s", r->type, r->str ? r->str : "");
        freeReplyObject(r);
    }
    r = rget(c);
    expect_type(r, REDIS_REPLY_ARRAY, "EXEC");
    ck_assert_uint_eq(r->elements, 3);
    expect_type(r->element[0], REDIS_REPLY_INTEGER, "EXEC's INCR");
    expect_type(r->element[1], REDIS_REPLY_INTEGER, "EXEC's INCRBY");
    ck_assert_int_eq(r->element[1]->integer, r->element[0]->integer + 2);
    ck_assert_str_eq(r->element[2]->str, "OK");
    ids_add(&ids, "ids", (uint64_t)r->element[0]->integer);
    ids_add_run(&ids, "ids", (uint64_t)r->element[1]->integer, 2);
    freeReplyObject(r);
    r = rget(c);
    expect_type(r, REDIS_REPLY_INTEGER, "INCR after EXEC");
    ids_add(&ids, "ids", (uint64_t)r->integer);
    freeReplyObject(r);

    /* pub/sub: a pipeline's earlier replies, then the subscription's */
    redisContext *sub = rconnect(p.sv.port);
    redisAppendCommand(sub, "INCR oid");
    redisAppendCommand(sub, "SUBSCRIBE ch");
    r = rget(sub);
    expect_type(r, REDIS_REPLY_INTEGER, "INCR oid before SUBSCRIBE");
    ids_add(&ids, "oid", (uint64_t)r->integer);
    freeReplyObject(r);
    r = rget(sub);
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                      strcmp(r->element[0]->str, "subscribe") == 0,
                  "SUBSCRIBE: type %d", r->type);
    freeReplyObject(r);
    r = rcmd(c, "PUBLISH ch hello");
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    r = rget(sub);
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                      strcmp(r->element[0]->str, "message") == 0 &&
                      strcmp(r->element[2]->str, "hello") == 0,
                  "message: type %d", r->type);
    freeReplyObject(r);
    redisFree(sub);

    /* a blocking command: its reply when the push comes, then the next
     * one's, in order */
    redisContext *blk = rconnect(p.sv.port);
    redisAppendCommand(blk, "BLPOP q 10");
    redisAppendCommand(blk, "INCR ids");
    tu_sleep_ms(100); /* let BLPOP block (its order is checked anyway) */
    r = rcmd(c, "RPUSH q v");
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    r = rget(blk);
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                      strcmp(r->element[1]->str, "v") == 0,
                  "BLPOP: type %d", r->type);
    freeReplyObject(r);
    r = rget(blk);
    expect_type(r, REDIS_REPLY_INTEGER, "INCR after BLPOP");
    ids_add(&ids, "ids", (uint64_t)r->integer);
    freeReplyObject(r);
    redisFree(blk);
    redisFree(c);
    /* RESP3 (redis-cli -3 sends HELLO 3 first): a tunnel to Redis, whose
     * INCR of the counter is above every ID the engine handed out */
    char port[16];
    snprintf(port, sizeof port, "%d", p.sv.port);
    run_ok(10000, (const char *[]){"redis-cli", "-3", "-h", "127.0.0.1", "-p",
                                   port, "INCR", "ids", NULL});
    ck_assert_msg(out[0] >= '1' && out[0] <= '9', "redis-cli -3: %s", out);
    ids_add(&ids, "ids", strtoull(out, NULL, 10));
    run_ok(10000, (const char *[]){"redis-cli", "-3", "-h", "127.0.0.1", "-p",
                                   port, "HGETALL", "nohash", NULL});
    ck_assert_str_eq(out, "\n"); /* an empty RESP3 map, shown raw */
    ck_assert_uint_eq(ids_check(&ids), 8);
    proxy_stop(&p);
}
END_TEST

START_TEST(proxy_upstream_down_errors_then_reconnects)
{
    proxy p = {0};
    proxy_start(&p);
    redisContext *c = rconnect(p.sv.port);
    redisReply *r = rcmd(c, "SET a 1");
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    server_stop(&p.rs, 1);
    /* each command gets an error, a pipeline's each one */
    char want[128];
    snprintf(want, sizeof want, "ERR upstream %s: ", p.upstream);
    redisAppendCommand(c, "GET a");
    redisAppendCommand(c, "SET a 2");
    redisAppendCommand(c, "PING");
    for (int i = 0; i < 3; i++) {
        r = rget(c);
        ck_assert_msg(r->type == REDIS_REPLY_ERROR &&
                          strncmp(r->str, want, strlen(want)) == 0,
                      "upstream down, reply %d: %d %s", i, r->type,
                      r->str ? r->str : "");
        freeReplyObject(r);
    }
    ck_assert_int_eq(server_restart(&p.rs), 0);
    /* the next command connects again */
    long long deadline = sp_now_ms() + 10000;
    for (;;) {
        r = rcmd(c, "PING");
        int ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        freeReplyObject(r);
        if (ok)
            break;
        ck_assert_msg(sp_now_ms() < deadline, "no reconnect within 10 s");
        tu_sleep_ms(50);
    }
    r = rcmd(c, "SET a 3");
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    r = rcmd(c, "GET a");
    ck_assert_str_eq(r->str, "3");
    freeReplyObject(r);
    redisFree(c);
    redisContext *m = rconnect(p.sv.port);
    r = rcmd(m, "PING"); /* forwarded: Redis's, not ours */
    ck_assert_str_eq(r->str, "PONG");
    freeReplyObject(r);
    redisFree(m);
    proxy_stop(&p);
}
END_TEST

START_TEST(proxy_bad_options_refused)
{
    static const struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"--counter", "ids", "mem://", NULL},
         "--counter needs --upstream"},
        {{"--upstream", "http://127.0.0.1:6379", NULL},
         "--upstream 'http://127.0.0.1:6379': want redis://HOST:PORT"},
        {{"--upstream", "redis://127.0.0.1:99999", NULL},
         "the port must be 1..65535"},
        {{"--upstream", "redis://:pw@127.0.0.1:6379", NULL},
         "--upstream 'redis://:pw@127.0.0.1:6379': no user or password"},
        {{"--upstream", "redis://127.0.0.1:6379/2", NULL},
         "only redis://HOST:PORT is taken"},
        {{"--upstream", "redis://127.0.0.1:1", "--counter", "a/b", NULL},
         "--counter 'a/b': a counter name is 1 to 200 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_server s = {0};
        sp_prepare_dir(&s);
        int rc = sp_start(&s, cases[i].args);
        ck_assert_msg(rc == 2 && strstr(sp_logtext(&s), cases[i].msg),
                      "case %zu: exit %d, want 2 and '%s':\n%s", i, rc,
                      cases[i].msg, sp_logtext(&s));
        sp_done(&s);
    }
}
END_TEST

/* Writes `text` to DIR/name of the server's folder; returns the path
 * (static buffer). */
static const char *write_in(sp_server *s, const char *name, const char *text)
{
    static char path[PATH_MAX + 32];
    sp_prepare_dir(s);
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert(fputs(text, f) >= 0);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* Redis's own value of `key` (a direct connection), or -1 when unset. */
static long long redis_value(int port, const char *key)
{
    redisContext *d = rconnect(port);
    redisReply *r = rcmd(d, "GET %s", key);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                : -1;
    freeReplyObject(r);
    redisFree(d);
    return v;
}

/*
 * --config's counters table gives the proxy counter keys beside
 * --counter (the two merged, once each): the engine answers their INCR,
 * taking a whole batch from Redis (the config's batch), while INCR of
 * any other key is Redis's own.
 */
START_TEST(proxy_config_counters_answered_by_engine)
{
    proxy p = {0};
    ck_assert(server_start(&p.rs, "redis", "--save '' --appendonly no") == 0);
    snprintf(p.upstream, sizeof p.upstream, "redis://127.0.0.1:%d",
             p.rs.port);
    const char *cfg = write_in(&p.sv, "proxy.lua",
        "return { counters = { inode = { batch = 1000 },\n"
        "                      oid = { batch = 10 } } }\n");
    sp_start_ok(&p.sv, (const char *[]){"--upstream", p.upstream,
                                        "--counter", "oid", "--config", cfg,
                                        NULL});
    ck_assert_msg(strstr(sp_logtext(&p.sv), "2 counter keys answered by "
                         "the engine") != NULL, "%s", sp_logtext(&p.sv));
    redisContext *c = rconnect(p.sv.port);
    idset ids;
    ids_init(&ids);
    /* the engine's: one fetch of a batch, then IDs from it */
    ck_assert_int_eq(rint_(c, "INCR inode"), 1);
    ids_add(&ids, "inode", 1);
    ck_assert_int_eq(redis_value(p.rs.port, "inode"), 1000);
    for (int i = 0; i < 5; i++)
        ids_add(&ids, "inode", (uint64_t)rint_(c, "INCR inode"));
    ids_add_run(&ids, "inode", (uint64_t)rint_(c, "INCRBY inode 3"), 3);
    ck_assert_int_eq(redis_value(p.rs.port, "inode"), 1000);
    ck_assert_int_eq(rint_(c, "INCR oid"), 1);
    ids_add(&ids, "oid", 1);
    ck_assert_int_eq(redis_value(p.rs.port, "oid"), 10);
    /* forwarded: Redis counts it itself */
    ck_assert_int_eq(rint_(c, "INCR other"), 1);
    ck_assert_int_eq(redis_value(p.rs.port, "other"), 1);
    ck_assert_int_eq(rint_(c, "INCR other"), 2);
    ck_assert_int_eq(redis_value(p.rs.port, "other"), 2);
    ck_assert_uint_eq(ids_check(&ids), 10);
    redisFree(c);
    proxy_stop(&p);
}
END_TEST

/* A config script that fails to load is a usage error naming FILE:LINE,
 * as a proxy and as a server; one that cannot be read names the file. */
START_TEST(bad_config_script_refused)
{
    static const struct {
        const char *text; /* NULL: the file is not there */
        int proxy;
        const char *msg;
    } cases[] = {
        {"return {\n  counters = { inode = { bogus = 1 } },\n}\n", 1,
         "/bad.lua:2: counters.inode.bogus: not a per-counter setting"},
        {"return {\n  counters = { inode = { bogus = 1 } },\n}\n", 0,
         "/bad.lua:2: counters.inode.bogus: not a per-counter setting"},
        {"return {\n  uri = 'mem://'\n  defaults = {},\n}\n", 1,
         "/bad.lua:3:"},
        {NULL, 0, "/bad.lua: cannot read the config script"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_server s = {0};
        char path[PATH_MAX + 16];
        sp_prepare_dir(&s);
        snprintf(path, sizeof path, "%s/bad.lua", s.dir);
        if (cases[i].text != NULL)
            write_in(&s, "bad.lua", cases[i].text);
        const char *proxy_args[] = {"--upstream", "redis://127.0.0.1:1",
                                    "--config", path, NULL};
        const char *serve_args[] = {"--config", path, "mem://", NULL};
        int rc = sp_start(&s, cases[i].proxy ? proxy_args : serve_args);
        ck_assert_msg(rc == 2 && strstr(sp_logtext(&s), cases[i].msg),
                      "case %zu: exit %d, want 2 and '%s':\n%s", i, rc,
                      cases[i].msg, sp_logtext(&s));
        sp_done(&s);
    }
}
END_TEST

/* Without --upstream the config's uri is the store when no URI is given,
 * before $IDPRIME_URI; its counters are settings only (no error). */
START_TEST(config_uri_before_idprime_uri)
{
    sp_server s = {0};
    sp_prepare_dir(&s);
    char db[PATH_MAX + 16], text[PATH_MAX + 128];
    snprintf(db, sizeof db, "%s/cfg.db", s.dir);
    snprintf(text, sizeof text, "return { uri = 'sqlite://%s',\n"
             "         counters = { inode = { batch = 100 } } }\n", db);
    const char *cfg = write_in(&s, "store.lua", text);
    setenv("IDPRIME_URI", "mem://not-this-one", 1); /* the forked child's */
    sp_start_ok(&s, (const char *[]){"--config", cfg, NULL});
    redisContext *c = rconnect(s.port);
    ck_assert_int_eq(rint_(c, "INCR inode"), 1);
    redisReply *r = rcmd(c, "GET inode"); /* the store's value: a batch */
    ck_assert_msg(r->type == REDIS_REPLY_STRING && strcmp(r->str, "100") == 0,
                  "GET inode: %d %s", r->type, r->str ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
    ck_assert_msg(access(db, F_OK) == 0, "%s was not made", db);
    stop_clean(&s);
}
END_TEST

/* ---- Prometheus ------------------------------------------------------- */

/* The value of the first sample of a Prometheus query, or -1 when it has
 * none (yet). */
static double prom_query(int port, const char *q)
{
    static char body[65536];
    char path[512];
    snprintf(path, sizeof path, "/api/v1/query?query=%s", q);
    if (sp_http_get(port, path, body, sizeof body) != 200)
        return -1;
    /* "value":[1700000000.123,"500"] */
    const char *v = strstr(body, "\"value\":[");
    if (v == NULL || (v = strchr(v, ',')) == NULL || v[1] != '"')
        return -1;
    return strtod(v + 2, NULL);
}

static double metric_value(const char *text, const char *name)
{
    double sum = 0;
    int found = 0;
    for (const char *p = text; (p = strstr(p, name)) != NULL; p++) {
        if (p != text && p[-1] != '\n')
            continue;
        const char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        sum += strtod(sp + 1, NULL);
        found = 1;
    }
    return found ? sum : -1;
}

#define PROM_IDS 500

START_TEST(prometheus_scrapes_ids_served)
{
    sp_server s = {0};
    sp_start_ok(&s, (const char *[]){"--metrics-listen", "127.0.0.1:0",
                                     uri_in(&s, "ids.db"), NULL});
    ck_assert_int_gt(s.mport, 0);
    idset ids;
    ids_init(&ids);
    redisContext *c = rconnect(s.port);
    for (int i = 0; i < PROM_IDS; i++)
        redisAppendCommand(c, "INCR scraped");
    for (int i = 0; i < PROM_IDS; i++) {
        redisReply *r = rget(c);
        expect_type(r, REDIS_REPLY_INTEGER, "INCR scraped");
        ids_add(&ids, "scraped", (uint64_t)r->integer);
        freeReplyObject(r);
    }
    redisFree(c);
    ck_assert_uint_eq(ids_check(&ids), PROM_IDS);
    /* what the server says, at rest */
    static char metrics[262144];
    ck_assert_int_eq(sp_http_get(s.mport, "/metrics", metrics,
                                 sizeof metrics), 200);
    double served = metric_value(metrics, "idprime_ids_served_total{");
    ck_assert_msg(served >= PROM_IDS, "idprime_ids_served_total %g", served);
    ck_assert_int_eq((long long)metric_value(
                         metrics, "idprime_serve_ids_replied_total "),
                     PROM_IDS);

    /* Prometheus on loopback, scraping every second */
    char cfg[PATH_MAX + 16], data[PATH_MAX + 16], log[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", s.dir);
    snprintf(data, sizeof data, "%s/prom-data", s.dir);
    snprintf(log, sizeof log, "%s/prometheus.log", s.dir);
    FILE *f = fopen(cfg, "w");
    ck_assert(f != NULL);
    fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
               "scrape_configs:\n  - job_name: idprime\n"
               "    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
            s.mport);
    fclose(f);
    int pport = sp_free_port();
    char flag_cfg[PATH_MAX + 32], flag_data[PATH_MAX + 32], flag_web[64];
    snprintf(flag_cfg, sizeof flag_cfg, "--config.file=%s", cfg);
    snprintf(flag_data, sizeof flag_data, "--storage.tsdb.path=%s", data);
    snprintf(flag_web, sizeof flag_web, "--web.listen-address=127.0.0.1:%d",
             pport);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("prometheus", "prometheus", flag_cfg, flag_data, flag_web,
               (char *)NULL);
        _exit(127);
    }
    /* polled: Prometheus starts, scrapes, then answers the query */
    double replied = -1, scraped = -1;
    long long t0 = sp_now_ms(), deadline = t0 + 45000;
    while (sp_now_ms() < deadline) {
        replied = prom_query(pport, "idprime_serve_ids_replied_total");
        if (replied == PROM_IDS) {
            scraped = prom_query(pport, "sum%28idprime_ids_served_total%29");
            if (scraped >= 0)
                break;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pid = 0;
            break;
        }
        tu_sleep_ms(200);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    FILE *lf = fopen(log, "r");
    static char logtext[8192];
    size_t n = lf != NULL ? fread(logtext, 1, sizeof logtext - 1, lf) : 0;
    logtext[n] = '\0';
    if (lf != NULL)
        fclose(lf);
    ck_assert_msg(replied == PROM_IDS && scraped == served,
                  "Prometheus read idprime_serve_ids_replied_total %g (want "
                  "%d) and idprime_ids_served_total %g (want %g) within "
                  "45 s; its log:\n%s", replied, PROM_IDS, scraped, served,
                  logtext);
    fprintf(stderr, "prometheus: scraped values read back after %lld ms\n",
            sp_now_ms() - t0);
    stop_clean(&s);
}
END_TEST

/* ---- Stopping --------------------------------------------------------- */

START_TEST(sigterm_store_never_below_served_metrics_written)
{
    const char *cli = getenv("IDPRIME_CLI");
    ck_assert_msg(cli != NULL, "IDPRIME_CLI is not set");
    sp_server s = {0};
    const char *uri = uri_in(&s, "ids.db");
    char uri_copy[PATH_MAX + 32], metrics[PATH_MAX + 16];
    snprintf(uri_copy, sizeof uri_copy, "%s", uri);
    snprintf(metrics, sizeof metrics, "%s/metrics.txt", s.dir);
    sp_start_ok(&s, (const char *[]){"--metrics", metrics, uri_copy, NULL});
    idset ids;
    ids_init(&ids);
    /* past one batch, so the engine prefetched the next one */
    int fd = sp_connect(s.port);
    redisContext *c = rconnect(s.port);
    uint64_t max = 0;
    for (int i = 0; i < 300; i++) {
        uint64_t v = (uint64_t)rint_(c, "INCR gb");
        ids_add(&ids, "gb", v);
        max = v > max ? v : max;
    }
    redisFree(c);
    /* read by the server at the signal: answered before the exit */
    static char pipeline[50 * 24];
    size_t plen = 0;
    for (int i = 0; i < 50; i++)
        plen += (size_t)snprintf(pipeline + plen, sizeof pipeline - plen,
                                 "*2\r\n$4\r\nINCR\r\n$2\r\ngb\r\n");
    sp_send(fd, pipeline, plen); /* one write: read whole by the server */
    static char all[4096];
    size_t got = sp_recv(fd, all, 1, 10000); /* the server is at them */
    ck_assert_uint_eq(got, 1);
    kill(s.pid, SIGTERM);
    /* the rest, until the server closes the connection */
    sp_recv(fd, all + 1, sizeof all - 2, 10000);
    int replies = 0;
    char *save = NULL;
    for (char *l = strtok_r(all, "\r\n", &save); l; l = strtok_r(NULL, "\r\n",
                                                                 &save)) {
        ck_assert_msg(l[0] == ':', "reply '%s'", l);
        uint64_t v = strtoull(l + 1, NULL, 10);
        ids_add(&ids, "gb", v);
        max = v > max ? v : max;
        replies++;
    }
    ck_assert_int_eq(replies, 50);
    ck_assert(sp_closed(fd, 10000));
    close(fd);
    int rc = sp_wait(&s, 30000);
    ck_assert_msg(rc == 0, "exit %d:\n%s", rc, sp_logtext(&s));
    ck_assert_uint_eq(ids_check(&ids), 350);
    /* what the store holds after the close (and whatever it gave back) is
     * never below an ID handed out */
    run_ok(10000, (const char *[]){cli, "get", uri_copy, "gb", NULL});
    unsigned long long stored = strtoull(out, NULL, 10);
    ck_assert_msg(stored >= max, "the store holds %llu after the stop, "
                  "below ID %llu handed out", stored,
                  (unsigned long long)max);
    FILE *f = fopen(metrics, "r");
    ck_assert_msg(f != NULL, "no metrics written at exit");
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(text, "idprime_serve_ids_replied_total 350\n"),
                  "%s", text);
    sp_done(&s);
}
END_TEST

int main(void)
{
    const TTest *clients[] = {
        redis_cli_resp2_and_resp3, redis_benchmark_incr_every_id_counted,
        python3_redis_pipelines_and_pool_of_8, NULL};
    const TTest *proxy_tests[] = {
        proxy_mixed_pipelines_replies_in_order,
        proxy_multi_exec_pubsub_and_blocking_pass_through,
        proxy_upstream_down_errors_then_reconnects,
        proxy_bad_options_refused,
        proxy_config_counters_answered_by_engine, bad_config_script_refused,
        config_uri_before_idprime_uri, NULL};
    const TTest *life[] = {
        prometheus_scrapes_ids_served,
        sigterm_store_never_below_served_metrics_written, NULL};
    const tu_case cases[] = {
        {.name = "clients", .tests = clients},
        {.name = "proxy", .tests = proxy_tests},
        {.name = "metrics and stop", .tests = life},
        {NULL},
    };
    return tu_run(tu_suite("serve_clients", 120, cases));
}
