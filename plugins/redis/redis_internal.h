/*
 * redis_internal.h - what the three redis plugins (redis, redis-sentinel,
 * redis-cluster) share, built from the same files into each .so:
 *   conn.c    one server connection: connect, send, pipelines, SIGPIPE
 *   ops.c     the store's commands on one server (INCRBY, GET, raise,
 *             lower, WAIT) and the judging of their replies
 *   setup.c   what every plugin checks at open (credentials, PING,
 *             eviction and persistence, replicas, cluster mode)
 *   list.c    listing counters (SCAN, MGET)
 * Not a public header: everything here is hidden, so each plugin still
 * exports only idprime_plugin_entry.
 */
#ifndef IDPRIME_REDIS_INTERNAL_H
#define IDPRIME_REDIS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "idprime/plugin.h"

/* Shared between the plugin's files, never exported (the plugin is also
 * built with hidden visibility; this keeps it so without the flag). */
#define RD_HIDDEN __attribute__((visibility("hidden")))

/* wait_replicas: more replicas than anyone runs, and a bound on a typo. */
#define RD_WAIT_REPLICAS_MAX 100

/* The wait_replicas parameter, the same in every redis plugin. */
#define RD_PARAM_WAIT_REPLICAS                                               \
    {.key = "wait_replicas", .type = IDP_PARAM_INT, .def = "0", .min = 0,    \
     .max = RD_WAIT_REPLICAS_MAX,                                            \
     .help = "durable batches: after every increment, WAIT until this many " \
             "replicas acknowledged it (WAIT is given timeout_ms less "      \
             "max(timeout_ms/4, 200 ms), the rest kept for its answer) "     \
             "before any of its IDs is served, else the fetch fails; 0: no " \
             "WAIT"}

typedef struct rd_store rd_store;

/* Opens s->c: rd_connect for a fixed server; a sentinel store asks its
 * sentinels where the master is first. */
typedef int (*rd_connect_fn)(rd_store *s, idp_error *err);

/* One Redis server and the connection to it. */
struct rd_store {
    const idp_host *host;
    redisContext *c;       /* NULL once dropped: reopened by rd_ready */
    const char *hostname;  /* TCP; NULL for a unix socket */
    int port;
    const char *socket;    /* unix socket path; NULL for TCP */
    const char *user;      /* "" for AUTH with the password alone */
    const char *password;  /* NULL: no AUTH */
    long db;
    struct timeval tv;     /* timeout_ms, for connect and every command */
    long wait_replicas;    /* wait_replicas: WAIT for this many after every
                              write; 0: no WAIT */
    unsigned wait_timeout; /* WAIT's own timeout in ms, below timeout_ms */
    char wait_n[24];       /* wait_replicas as text, for WAIT */
    char wait_ms[24];      /* wait_timeout as text */
    rd_connect_fn reconnect; /* NULL: rd_connect */
    int readonly_drops;    /* 1: a READONLY reply drops the connection, so
                              the next call finds the master anew */
    char where[300];       /* "127.0.0.1:6379" or "unix socket /run/r.sock" */
};

/* ---- conn.c: the connection --------------------------------------------- */

/* Parses a counter value: a canonical decimal integer in [0, 2^63), as
 * Redis itself writes one. Returns 0 on success, -1 otherwise. */
RD_HIDDEN int rd_parse_value(const char *p, size_t len, uint64_t *out);

/* A short printable rendering of a reply, for messages; returns buf. */
RD_HIDDEN const char *rd_describe(const redisReply *r, char *buf, size_t len);

/* Milliseconds on the monotonic clock, for how long an exchange took. */
RD_HIDDEN long long rd_now_ms(void);

/*
 * Makes sure there is a connection before a command is sent, reopening one
 * that was dropped or that the server closed (through s->reconnect when
 * set). Returns IDP_OK, or an error (err filled) with s->c left NULL.
 */
RD_HIDDEN int rd_ready(rd_store *s, idp_error *err);

/* Opens the connection (timeouts, AUTH, SELECT); rd_drop closes it, and
 * the next rd_ready reopens it. */
RD_HIDDEN int rd_connect(rd_store *s, idp_error *err);
RD_HIDDEN void rd_drop(rd_store *s);

/* In a child after fork(): frees the parent's connection without any I/O
 * on it (see conn.c). */
RD_HIDDEN void rd_forget(rd_store *s);

/*
 * Sends n commands of argc words each (argv holds n * argc words) in one
 * round trip and reads their n replies into replies[], each to free with
 * freeReplyObject; a reply may be an error reply, which the caller judges.
 * `what` names the commands in messages. When a reply is lost, fills err,
 * frees the replies read so far, drops the connection and returns the
 * error: none of the commands is then known to have run or not.
 */
RD_HIDDEN int rd_pipeline(rd_store *s, const char *what, size_t n, int argc,
                          const char **argv, redisReply **replies,
                          idp_error *err);

/*
 * As rd_pipeline, for commands of different lengths: command i has argcs[i]
 * words, and argv holds them all one after the other.
 */
RD_HIDDEN int rd_pipeline_v(rd_store *s, const char *what, size_t n,
                            const int *argcs, const char **argv,
                            redisReply **replies, idp_error *err);

/*
 * rd_pipeline_v in two halves, so that pipelines to several servers are
 * all on the wire before any reply is awaited (one round trip for all):
 * rd_send_start writes the n commands (on error: err filled, connection
 * dropped, nothing to finish); rd_send_finish reads their n replies as
 * rd_pipeline_v does. Neither needs rd_ready first: start calls it.
 */
RD_HIDDEN int rd_send_start(rd_store *s, const char *what, size_t n,
                            const int *argcs, const char **argv,
                            idp_error *err);
RD_HIDDEN int rd_send_finish(rd_store *s, const char *what, size_t n,
                             redisReply **replies, idp_error *err);

/* One command, one reply (*reply to free with freeReplyObject); see
 * rd_pipeline. */
RD_HIDDEN int rd_cmd(rd_store *s, const char *what, int argc,
                     const char **argv, redisReply **reply, idp_error *err);

/* ---- ops.c: the commands on one server ------------------------------- */

/* An increment n of `key` is 1..2^63-1; IDP_ERANGE (err filled) if not. */
RD_HIDDEN int rd_check_n(const char *key, uint64_t n, idp_error *err);

/* Judges the reply to INCRBY key n: *value on success, IDP_ERANGE at
 * 2^63, IDP_ESTORE with Redis's own words for anything else. */
RD_HIDDEN int rd_incr_reply(const rd_store *s, const char *key, uint64_t n,
                            const redisReply *r, uint64_t *value,
                            idp_error *err);

/* Judges the reply to GET key: *value and *exists. */
RD_HIDDEN int rd_get_reply(const rd_store *s, const char *key,
                           const redisReply *r, uint64_t *value, int *exists,
                           idp_error *err);

/* The EVAL words of raising `key` to `num` (5 words into argv); the reply
 * is judged by rd_raise_reply. */
RD_HIDDEN void rd_raise_argv(const char *key, const char *num,
                             const char **argv);
RD_HIDDEN int rd_raise_reply(const rd_store *s, const char *what,
                             const char *key, const redisReply *r,
                             uint64_t *result, idp_error *err);

/* A lowering goes down, below 2^63: IDP_EINVAL (err filled) if not. */
RD_HIDDEN int rd_lower_check(const idp_lower_op *op, idp_error *err);

/* The EVAL words of lowering `key` from `expect` to `value` (6 words into
 * argv); the reply (1: lowered, 0: the key held anything else) is judged
 * by rd_lower_reply into *done. */
RD_HIDDEN void rd_lower_argv(const char *key, const char *expect,
                             const char *value, const char **argv);
RD_HIDDEN int rd_lower_reply(const rd_store *s, const char *key,
                             const redisReply *r, int *done, idp_error *err);

/* The three words of `WAIT wait_replicas ms`, appended at argv. */
RD_HIDDEN void rd_wait_argv(const rd_store *s, const char **argv);

/*
 * Judges the reply to the WAIT sent behind `what`, whose round trip took
 * `took_ms`: IDP_OK when at least wait_replicas replicas acknowledged;
 * otherwise an error naming how many did, WAIT's own timeout and how long
 * the answer took.
 */
RD_HIDDEN int rd_wait_reply(const rd_store *s, const char *what,
                            const redisReply *r, long long took_ms,
                            idp_error *err);

/* The plugin methods of a store on one server (redis, redis-sentinel). */
RD_HIDDEN int rd_incr(void *store, const char *key, uint64_t n,
                      uint64_t *value, idp_error *err);
RD_HIDDEN int rd_incr_many(void *store, idp_incr_op *ops, size_t nops,
                           idp_error *err_ops);
RD_HIDDEN int rd_get(void *store, const char *key, uint64_t *value,
                     int *exists, idp_error *err);
RD_HIDDEN int rd_raise_to(void *store, const char *key, uint64_t value,
                          uint64_t *result, idp_error *err);
RD_HIDDEN int rd_lower(void *store, idp_lower_op *ops, size_t nops,
                       idp_error *err);

/* cmdstat_incrby:calls from INFO commandstats of one server. */
RD_HIDDEN int rd_roundtrips(void *store, uint64_t *count, idp_error *err);

/* ---- setup.c: at open -------------------------------------------------- */

/* Fills the timeouts and the WAIT settings of s from the host. */
RD_HIDDEN void rd_setup(rd_store *s, const idp_host *host);

/* Who to AUTH as, from the URI's user and password. */
RD_HIDDEN int rd_credentials(rd_store *s, idp_error *err);

/* The host list, as "a:1,b:2", for messages. */
RD_HIDDEN void rd_hosts_text(const idp_uri *u, char *buf, size_t len);

/*
 * What every plugin asks a server it will write to, right after
 * connecting: PING (a NOAUTH shows here), then the eviction policy,
 * persistence and cluster mode (CONFIG GET, warnings; a cluster node is
 * refused unless `cluster_ok`, naming redis-cluster://), then, with
 * wait_replicas, the replicas (INFO replication, warnings).
 */
RD_HIDDEN int rd_check_server(rd_store *s, int cluster_ok, idp_error *err);

/* ---- list.c ------------------------------------------------------------- */

/* Keys, sorted and without duplicates after rd_keys_sort. */
typedef struct rd_keys {
    char **v;
    size_t n, cap;
} rd_keys;

RD_HIDDEN void rd_keys_free(rd_keys *k);
RD_HIDDEN void rd_keys_sort(rd_keys *k);

/* Appends every key of one server under the prefix (SCAN MATCH) to keys,
 * unsorted. */
RD_HIDDEN int rd_scan(rd_store *s, const char *prefix, rd_keys *keys,
                      idp_error *err);

/* The plugin's list method for one server: calls cb for every counter
 * under `prefix`, in key order. */
RD_HIDDEN int rd_list(void *store, const char *prefix, idp_list_cb cb,
                      void *ud, idp_error *err);

/* Calls cb with a listed value that GET or MGET answered for `key`:
 * nothing for a key gone meanwhile, a warning for a string that is not a
 * counter value. Returns cb's value, or 0. */
RD_HIDDEN int rd_list_value(const rd_store *s, const char *key,
                            const redisReply *v, idp_list_cb cb, void *ud);

#endif
