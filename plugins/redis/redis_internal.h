/*
 * redis_internal.h - what redis.c (the connection, increments, open) and
 * list.c (listing counters with SCAN and MGET) share. Not a public header:
 * everything here is hidden, so the plugin still exports only
 * idprime_plugin_entry.
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

typedef struct rd_store {
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
    char wait_n[24];       /* wait_replicas as text, for WAIT */
    char wait_ms[24];      /* WAIT's own timeout, below timeout_ms */
    char where[300];       /* "127.0.0.1:6379" or "unix socket /run/r.sock" */
} rd_store;

/* Parses a counter value: a canonical decimal integer in [0, 2^63), as
 * Redis itself writes one. Returns 0 on success, -1 otherwise. */
RD_HIDDEN int rd_parse_value(const char *p, size_t len, uint64_t *out);

/* A short printable rendering of a reply, for messages; returns buf. */
RD_HIDDEN const char *rd_describe(const redisReply *r, char *buf, size_t len);

/*
 * Makes sure there is a connection before a command is sent, reopening one
 * that was dropped or that the server closed. Returns IDP_OK, or an error
 * (err filled) with s->c left NULL.
 */
RD_HIDDEN int rd_ready(rd_store *s, idp_error *err);

/* Opens the connection (timeouts, AUTH, SELECT); rd_drop closes it, and
 * the next rd_ready reopens it. conn.c. */
RD_HIDDEN int rd_connect(rd_store *s, idp_error *err);
RD_HIDDEN void rd_drop(rd_store *s);

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

/* One command, one reply (*reply to free with freeReplyObject); see
 * rd_pipeline. */
RD_HIDDEN int rd_cmd(rd_store *s, const char *what, int argc,
                     const char **argv, redisReply **reply, idp_error *err);

/* The plugin's list method (list.c): calls cb for every counter under
 * `prefix`, in key order. */
RD_HIDDEN int rd_list(void *store, const char *prefix, idp_list_cb cb,
                      void *ud, idp_error *err);

#endif
