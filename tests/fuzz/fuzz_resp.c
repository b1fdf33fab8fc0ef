/*
 * fuzz_resp.c - libFuzzer target for `idprime serve`'s request handling:
 * the input is the bytes one client sends (RESP requests, cut short,
 * malformed, oversized, pipelined), fed to serve_handle_request on a
 * server over a fresh mem:// store, as a connection would read them.
 *
 * Checks, beyond "no crash, no leak, no undefined behaviour":
 * - the session ends open or closed (0 or 1), its replies NUL terminated;
 * - the replies are well-formed RESP2 (unless the input may have switched
 *   to RESP3 with HELLO, which Debian's hiredis 0.14 does not parse);
 * - each request gets its reply, in order: the input's whole requests and
 *   the replies are paired, and every INCR or INCRBY answered with an
 *   integer v took IDs [v-n+1, v] of its counter, never one handed out
 *   before in the session (a duplicate ID is the failure idprime exists to
 *   prevent) and never 0.
 */
#include <strings.h>

#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "serve.h"

#ifndef IDPRIME_PLUGIN_BUILD_DIR
#error "IDPRIME_PLUGIN_BUILD_DIR: where the mem plugin is built"
#endif

#define MAX_RANGES 4096

typedef struct range {
    char name[208];
    unsigned long long lo, hi;
} range;

static range ranges[MAX_RANGES];
static size_t nranges;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the mem plugin of this build, whatever the environment says */
    setenv("IDPRIME_PLUGIN_PATH", IDPRIME_PLUGIN_BUILD_DIR, 1);
    return 0;
}

/*
 * The input's requests, read by hiredis's reader with object functions
 * that build only flat arrays of strings and grow them as elements come
 * (the default ones allocate the announced count up front: "*2000000000"
 * would ask for 16 GB). Anything else stops the reader, as it stops the
 * server.
 */
typedef struct rq {
    size_t argc, filled;
    char **argv;
    size_t *lens;
} rq;

static void rq_free(void *o)
{
    rq *r = o;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->filled; i++)
        free(r->argv[i]);
    free(r->argv);
    free(r->lens);
    free(r);
}

static void *rq_array(const redisReadTask *t, int n)
{
    if (t->parent != NULL || n < 0)
        return NULL;
    rq *r = calloc(1, sizeof *r);
    FUZZ_CHECK(r != NULL, "out of memory");
    r->argc = (size_t)n;
    return r;
}

static void *rq_string(const redisReadTask *t, char *p, size_t len)
{
    if (t->parent == NULL || t->type != REDIS_REPLY_STRING)
        return NULL;
    rq *r = t->parent->obj;
    r->argv = realloc(r->argv, (r->filled + 1) * sizeof *r->argv);
    r->lens = realloc(r->lens, (r->filled + 1) * sizeof *r->lens);
    FUZZ_CHECK(r->argv != NULL && r->lens != NULL, "out of memory");
    r->argv[r->filled] = fuzz_strndup(p, len);
    r->lens[r->filled++] = len;
    return r;
}

static void *rq_integer(const redisReadTask *t, long long v)
{
    (void)t;
    (void)v;
    return NULL;
}

static void *rq_nil(const redisReadTask *t)
{
    (void)t;
    return NULL;
}

static redisReplyObjectFunctions rq_fns = {rq_string, rq_array, rq_integer,
                                           rq_nil, rq_free};

static int arg_is(const rq *r, size_t i, const char *word)
{
    return i < r->argc && r->lens[i] == strlen(word) &&
           strncasecmp(r->argv[i], word, r->lens[i]) == 0;
}

/* The IDs an INCR/INCRBY reply stands for: new to their counter. */
static void check_ids(const rq *q, const redisReply *a)
{
    unsigned long long n = 1;
    if (arg_is(q, 0, "INCRBY")) {
        char num[32];
        size_t len = q->lens[2];
        FUZZ_CHECK(len > 0 && len < sizeof num, "INCRBY %.*s answered %lld",
                   (int)len, q->argv[2], a->integer);
        memcpy(num, q->argv[2], len);
        num[len] = '\0';
        n = strtoull(num, NULL, 10);
    }
    unsigned long long v = (unsigned long long)a->integer;
    FUZZ_CHECK(a->integer > 0 && n >= 1 && v >= n,
               "INCR/INCRBY by %llu answered %lld", n, a->integer);
    const char *key = q->argv[1];
    size_t klen = q->lens[1];
    FUZZ_CHECK(klen < sizeof ranges[0].name, "key of %zu bytes served",
               klen);
    for (size_t i = 0; i < nranges; i++) {
        if (strlen(ranges[i].name) != klen ||
            memcmp(ranges[i].name, key, klen) != 0)
            continue;
        FUZZ_CHECK(v - n + 1 > ranges[i].hi || v < ranges[i].lo,
                   "counter %s: IDs %llu..%llu handed out twice (before: "
                   "%llu..%llu)", ranges[i].name, v - n + 1, v,
                   ranges[i].lo, ranges[i].hi);
    }
    if (nranges < MAX_RANGES) {
        range *g = &ranges[nranges++];
        memcpy(g->name, key, klen);
        g->name[klen] = '\0';
        g->lo = v - n + 1;
        g->hi = v;
    }
}

/* Pairs the input's requests with the replies, in order. */
static void check_pairs(const uint8_t *data, size_t size, const char *out,
                        size_t outlen, int may_resp3)
{
    redisReader *rd = redisReaderCreateWithFunctions(&rq_fns);
    redisReader *ra = redisReaderCreate();
    FUZZ_CHECK(rd != NULL && ra != NULL, "out of memory");
    redisReaderFeed(rd, (const char *)data, size);
    redisReaderFeed(ra, out, outlen);
    nranges = 0;
    for (;;) {
        redisReply *a = NULL;
        int arc = redisReaderGetReply(ra, (void **)&a);
        FUZZ_CHECK(arc == REDIS_OK || may_resp3,
                   "malformed reply stream (%s): %.*s", ra->errstr,
                   (int)(outlen < 400 ? outlen : 400), out);
        if (arc != REDIS_OK || a == NULL)
            break;
        /* the request it answers ("*0" gets no reply, "*-1" stops both) */
        rq *q = NULL;
        int qrc;
        while ((qrc = redisReaderGetReply(rd, (void **)&q)) == REDIS_OK &&
               q != NULL && q->argc == 0) {
            rq_free(q);
            q = NULL;
        }
        int go_on = qrc == REDIS_OK && q != NULL && q->filled == q->argc;
        if (go_on && !may_resp3 && a->type == REDIS_REPLY_INTEGER &&
            ((arg_is(q, 0, "INCR") && q->argc == 2) ||
             (arg_is(q, 0, "INCRBY") && q->argc == 3)))
            check_ids(q, a);
        rq_free(q);
        freeReplyObject(a);
        if (!go_on)
            break; /* a request the server refuses ends the session */
    }
    redisReaderFree(rd);
    redisReaderFree(ra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    serve_server *sv = serve_server_new("mem://", NULL, err, sizeof err);
    FUZZ_CHECK(sv != NULL, "serve_server_new(mem://): %s", err);
    char *out = NULL;
    size_t outlen = 0;
    int rc = serve_handle_request(sv, data, size, &out, &outlen);
    FUZZ_CHECK(rc == 0 || rc == 1, "serve_handle_request returned %d", rc);
    FUZZ_CHECK(out != NULL && out[outlen] == '\0',
               "replies not NUL terminated");
    /* HELLO may switch to RESP3; "hello" in any case anywhere says maybe */
    int may_resp3 = 0;
    for (size_t i = 0; i + 5 <= size && !may_resp3; i++)
        may_resp3 = strncasecmp((const char *)data + i, "hello", 5) == 0;
    check_pairs(data, size, out, outlen, may_resp3);
    free(out);
    serve_server_free(sv);
    return 0;
}
