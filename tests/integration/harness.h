/*
 * harness.h - real store servers for the integration tests.
 *
 * server_start() launches a store's server (redis-server, memcached, ...:
 * the kinds below) on a free port of 127.0.0.1 (never another address), in a fresh temp directory, and returns
 * once the server answers. Servers are stopped by server_stop(); a test that
 * dies leaves none behind, because each server is started with its parent
 * death signal set to SIGKILL.
 */
#ifndef IDPRIME_HARNESS_H
#define IDPRIME_HARNESS_H

#include <limits.h>
#include <sys/types.h>

#include "idprime/idprime.h"

typedef struct server {
    char kind[16];        /* "redis" or "memcached" */
    pid_t pid;            /* 0 when not running */
    int port;             /* the loopback port it listens on */
    char dir[PATH_MAX];   /* its working directory (removed at stop) */
    char extra[256];      /* extra arguments it was started with */
} server;

/*
 * A kind of server. redis and memcached are in harness.c; a further store
 * brings harness_<kind>.c with its own, listed in harness.c's kinds[].
 */
typedef struct server_kind {
    const char *name;    /* "redis": the name server_start takes */
    int unprivileged;    /* it refuses root: when the tests run as root it
                            runs (prepare included) as user nobody, and
                            owns s->dir */
    /* Optional: fills s->dir before the first start (initdb, ...), with
     * harness_run. Returns 0, or -1 with a message on stderr. */
    int (*prepare)(server *s);
    /* Writes the command line that runs the server in s->dir on 127.0.0.1
     * port s->port into argv (at most 32 words; strings it makes go into
     * store, len bytes); returns the number of words. s->extra follows. */
    int (*command)(const server *s, char **argv, char *store, size_t len);
    /* 1 when the server on s->port answers and is this one (its pid or
     * its data directory is s's), so that a stranger on the port is never
     * taken for it. */
    int (*answers)(const server *s);
    /* Optional: the store URI, with `query` (may be NULL) appended; NULL
     * for "NAME://127.0.0.1:PORT". */
    char *(*uri)(const server *s, const char *query, char *buf, size_t len);
} server_kind;

/* The kinds in harness_<kind>.c files. */
extern const server_kind harness_kind_postgresql; /* "postgresql" */
extern const server_kind harness_kind_mysql;      /* "mysql": mariadbd */
extern const server_kind harness_kind_redis_sentinel; /* "redis-sentinel" */

/* Runs argv to completion in s->dir as the server's user, its output in
 * the server's log. Returns 0 when it exits 0, else -1 (log shown). */
int harness_run(const server *s, char *const argv[]);

/* 1 while the server's process has not exited. */
int harness_alive(const server *s);

/* The uid and gid s runs as. Returns 0, or -1 (message on stderr). */
int harness_server_user(const server *s, uid_t *uid, gid_t *gid);

/* Starts a server of `kind` with optional extra command-line arguments
 * (e.g. "--save '' --appendonly no" for redis, "-M" for memcached).
 * Returns 0 when it answers on its port, -1 (with a message on stderr)
 * when it could not be started. */
int server_start(server *s, const char *kind, const char *extra);

/* Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it;
 * keep_dir != 0 keeps the directory for a later server_restart. */
void server_stop(server *s, int keep_dir);

/* Hangs the server with SIGSTOP (SIGCONT resumes it) and waits until it is
 * stopped, as SIGSTOP takes effect asynchronously. Returns 0 when it is,
 * -1 when it did not stop within 2 s. */
int server_pause(const server *s);

/* Kills the server with SIGKILL and waits for it; keeps its directory. */
void server_kill(server *s);

/* Starts the server again on the same port, in the same directory (Redis
 * reloads what it persisted). Returns 0 when it answers. */
int server_restart(server *s);

/* Starts a Redis replica of the running Redis `primary` (which must not
 * require a password): a server like server_start's, with --replicaof
 * 127.0.0.1 PRIMARY_PORT, and returns once it is online (as
 * server_replica_wait_up), so it holds the primary's data and acknowledges
 * its writes. It sets repl-diskless-sync no on the primary, so a full sync
 * goes through a dump.rdb in the primary's directory (which a
 * server_restart of the primary would then load). server_stop,
 * server_kill and server_restart work on it as on any server; after
 * server_restart, wait with server_replica_wait_up. Returns 0, or -1 with
 * a message on stderr (nothing is left running). */
int server_start_replica(server *replica, const server *primary);

/* Waits up to ms for the replica to be online: its link to its primary
 * up (master_link_status:up) and the primary listing it as online, so
 * that it acknowledges writes (WAIT). Returns 0 when it is, -1 (with a
 * message on stderr) when not in time. */
int server_replica_wait_up(const server *replica, int ms);

/* Writes "redis://127.0.0.1:PORT" (or memcached://...) plus `query` (may be
 * NULL, e.g. "?batch=10") into buf. Returns buf. */
char *server_uri(const server *s, const char *query, char *buf, size_t len);

/* A client of server s, with `query` as server_uri takes it and `opt` (may
 * be NULL). Returns the client, to idp_close(); fails the test (Check)
 * when it does not open. */
idp_client *server_open(const server *s, const char *query,
                        const idp_options *opt);

/* A fresh temp directory for SQLite files; the path is written to buf. */
char *harness_tmpdir(char *buf, size_t len);

/* A free loopback TCP port (bound and released). */
int harness_free_port(void);

#endif
