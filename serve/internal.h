/*
 * internal.h - what the files of serve/ share: the server, a client
 * connection, the counters the server serves from, engine jobs.
 *
 * Threads: one event-loop thread owns every connection, the counter table
 * and the ID ranges; a few worker threads make the engine calls that may
 * wait for the store (a refill of a counter's range, an INCRBY the range
 * cannot hold, a GET) and hand each result back to the loop through the
 * done list. The metrics page runs on libmicrohttpd's own thread and reads
 * only atomics and the engine's own (locked) figures.
 *
 * Order: a connection runs one request at a time; while one waits for a
 * job or a refill, its later requests stay unread in its buffers, so its
 * replies always leave in the order it asked.
 *
 * Proxy (--upstream): each connection has an upstream connection of its
 * own; forwarded requests are written to it at once (pipelined), each
 * with a reply slot in the connection's queue, and an intercepted INCR's
 * reply waits in a slot of its own until the forwarded replies before it
 * have left (proxy.c).
 */
#ifndef IDPRIME_SERVE_INTERNAL_H
#define IDPRIME_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <hiredis/read.h>

#include "idprime/idprime.h"
#include "serve.h"

/* Redis's own ceiling for one bulk string (proto-max-bulk-len). */
#define SERVE_MAX_BULK (512ULL * 1024 * 1024)
/* Output queued for a client that does not read its replies: past HIGH no
 * further request is run until it drains to LOW. */
#define SERVE_OUT_HIGH (256 * 1024)
#define SERVE_OUT_LOW (64 * 1024)

typedef struct srv srv;
typedef struct conn conn;
typedef struct cent cent;
typedef struct job job;
typedef struct pslot pslot;

/* The command line, checked. */
typedef struct serve_opts {
    const char *uri;             /* the store */
    const char *listen;          /* ADDR:PORT, default 127.0.0.1:6380 */
    const char *metrics_listen;  /* ADDR:PORT or NULL */
    const char *metrics_file;    /* --metrics FILE: written at exit */
    char *password;              /* from --requirepass-file, or NULL */
    size_t max_request_bytes;
    unsigned idle_timeout_ms;    /* 0: an idle client stays (Redis's 0) */
    unsigned request_timeout_ms; /* a begun request must end in time */
    unsigned max_clients;
    unsigned max_counters;
    unsigned workers;            /* 0: engine calls inline (tests, fuzz) */
    int verbose;
    const char *upstream;        /* --upstream redis://HOST:PORT, or NULL */
    const char **counters;       /* --counter KEYs and the config's:
                                    intercepted (proxy), once each */
    size_t ncounter_keys;
    struct idp_config *config;   /* --config FILE.lua, or NULL: freed after
                                    the client, whose policy it may be */
} serve_opts;

/* The commands counted in the metrics (the dispatch table's order). */
enum {
    CMD_INCR, CMD_INCRBY, CMD_GET, CMD_PING, CMD_ECHO, CMD_HELLO, CMD_AUTH,
    CMD_SELECT, CMD_INFO, CMD_CLIENT, CMD_COMMAND, CMD_QUIT, CMD_OTHER,
    CMD_COUNT
};
extern const char *const cmd_metric_names[CMD_COUNT];

/* Figures every thread may read (relaxed atomics; counts only grow). */
typedef struct serve_stats {
    atomic_ullong conns_total;     /* accepted */
    atomic_ullong conns_rejected;  /* over --max-clients */
    atomic_llong conns_current;
    atomic_ullong commands[CMD_COUNT];
    atomic_ullong errors_protocol; /* malformed RESP, over a limit */
    atomic_ullong errors_reply;    /* error replies of any kind */
    atomic_ullong timeouts;        /* connections closed by a timeout */
    atomic_ullong ids_replied;     /* IDs handed to clients */
    atomic_ullong counters;        /* counters in the table */
    atomic_ullong forwarded;       /* requests sent upstream (proxy) */
    atomic_ullong upstream_errors; /* upstream connections failed or lost */
} serve_stats;

/* One request as hiredis's reader builds it (see conn.c). */
typedef struct req {
    int argc;      /* elements announced */
    int filled;    /* elements received */
    int cap;
    size_t bytes;  /* what it holds, counted against the request limit */
    char **argv;   /* NUL-terminated copies (keys may hold NULs too), in
                    * data; set once the request is whole */
    size_t *lens;
    size_t *offs;  /* where each element starts in data */
    char *data;    /* the elements, one after another, each NUL-ended */
    size_t dlen, dcap;
} req;

/* A client connection. */
struct conn {
    srv *s;
    uint64_t id;
    struct bufferevent *bev;  /* NULL for a socketless session */
    struct evbuffer *in;
    struct evbuffer *wire;    /* what goes to the client (the socket's) */
    struct evbuffer *out;     /* where the running request's reply goes:
                               * wire, or its proxy slot */
    redisReader *rd;
    req *building;            /* the request the reader is filling */
    req *spare;               /* the last request, kept for the next one
                               * (no malloc per request) */
    cent *last_ce;            /* the counter of its last INCR (a pipeline
                               * of INCRs of one key finds it at once) */
    const char *perr;         /* why the reader's callbacks refused */
    struct event *timer;      /* request deadline or idle timeout */
    struct event *flush_ev;   /* made active when output is queued: writes
                               * it once per loop pass (conn.c) */
    int timer_mode;           /* 0 off, 1 request deadline, 2 idle */
    int proto;                /* 2 or 3 (HELLO 3) */
    int authed;
    int closing;              /* close once the output is written */
    int dead;                 /* closed while a job held it */
    int wait;                 /* WAIT_* */
    uint64_t wait_n;          /* IDs the waiting INCR/INCRBY asked for */
    cent *wait_ce;
    conn *wnext;              /* in wait_ce's queue */
    char *name;               /* CLIENT SETNAME */
    conn *prev, *next;        /* the server's list */
    /* proxy (proxy.c) */
    struct bufferevent *up;   /* the upstream connection, NULL when none */
    redisReader *uprd;        /* parses its replies (RESP2) */
    int up_connected;         /* its connect finished */
    size_t up_fed;            /* bytes at the front of up's input fed to
                               * uprd, not yet handed on */
    pslot *ps_head, *ps_tail; /* replies owed, in the client's order */
    pslot *ps_await;          /* the first slot owed an upstream reply */
    pslot *ps_cur;            /* the running intercepted request's slot */
    pslot *ps_free;           /* slots done with, kept for reuse */
    unsigned nfree;
    unsigned npend;           /* slots in the queue */
    int tunnel_sent;          /* pub/sub, MONITOR, HELLO 3 went upstream:
                               * from then on bytes pass as they are */
    int tunnel;               /* upstream's bytes pass straight through */
    int in_multi;             /* MULTI sent, EXEC/DISCARD not yet */
    int other_db;             /* SELECT of a db but 0 sent upstream */
};

enum { WAIT_NONE, WAIT_RANGE, WAIT_JOB };

/* A counter as the server serves it: a range of IDs taken from the engine
 * in one go (an idp_cache fill, on a worker), handed out inline. */
struct cent {
    char *name;
    size_t nlen;              /* strlen(name) */
    idp_counter *ctr;
    uint64_t next, end;       /* [next, end): IDs held, never handed out */
    uint64_t spare_lo, spare_hi; /* a range fetched ahead, above [next,
                                    end), served once that is used up;
                                    empty when equal */
    uint64_t fill;            /* IDs the next refill asks for; 0: unset */
    int refilling;            /* a worker owns the refill */
    conn *wq_head, *wq_tail;  /* connections waiting for the range */
    cent *hnext;
};

enum { JOB_REFILL, JOB_INCRBY, JOB_GET };

struct job {
    int kind;
    cent *ce;                 /* REFILL, INCRBY */
    conn *c;                  /* INCRBY, GET */
    uint64_t n;
    char *name;               /* GET */
    /* results */
    int rc;
    idp_error err;
    uint64_t lo, hi;          /* REFILL: [lo, hi) */
    uint64_t batch;           /* REFILL: the engine's batch when it ran */
    uint64_t value;           /* INCRBY: the last ID; GET: the value */
    int exists;
    job *next;
};

struct srv {
    serve_opts o;
    idp_client *client;
    struct event_base *base;  /* NULL without sockets */
    struct evconnlistener *lis;
    struct event *done_ev, *sig_term, *sig_int, *retry_ev, *stop_ev;
    char listen_addr[64];     /* as printed: 127.0.0.1:PORT */
    int port;
    int stopping;
    int exit_code;
    uint64_t next_conn_id;
    conn *conns;
    long nconns;
    /* counters */
    cent **tab;
    size_t tab_size, ncounters;
    /* jobs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *queue, *queue_tail, *done, *done_tail;
    int quit_workers;
    long jobs_out;            /* submitted, not finished by the loop */
    pthread_t *threads;
    unsigned nthreads;
    serve_stats st;
    double started;
    void *http;               /* the metrics daemon */
    /* proxy: the upstream's address, resolved once */
    struct sockaddr_storage up_addr;
    int up_addrlen;
};

/* ---- serve.c ---------------------------------------------------------- */
/* Checks what a loop run leaves behind: stops the loop once stopping and
 * nothing is left (no connection, no job). */
void srv_maybe_exit(srv *s);
double srv_now(void);

/* ---- conn.c ----------------------------------------------------------- */
/* A connection on `bev` (NULL: a socketless session). NULL when out of
 * memory. */
conn *conn_new(srv *s, struct bufferevent *bev);
/* Runs the requests it has, until it waits, must write, or has no whole
 * request left. May close (free) the connection. */
void conn_process(conn *c);
/* The wait is over (its reply written): runs what follows. */
void conn_resume(conn *c);
/* Closes now (a job in flight defers the free); `why` for the log. */
void conn_close(conn *c, const char *why);
/* Writes the pending replies, then closes. */
void conn_close_after_reply(conn *c);
/* Frees a connection no longer referenced (no socket, no job). */
void conn_free(conn *c);
/* Unlinks and frees a socketless session (or any connection, at once). */
void conn_discard(conn *c);
/* At shutdown: stop reading, finish what was read, close. */
void conn_drain(conn *c);
/* Output was queued (to the client or the upstream): written at the end
 * of this loop pass. */
void conn_want_flush(conn *c);
/* Writes what bev's output holds now, when libevent is not already
 * writing it (EV_WRITE off). Returns 1 when it was all written, 0 when
 * there was nothing to write here, -1 when some is left (EV_WRITE is then
 * on, and bufferevent writes the rest, reporting errors as usual). */
int conn_write_now(struct bufferevent *bev);

/* ---- commands.c --------------------------------------------------------- */
enum { EXEC_DONE, EXEC_WAIT, EXEC_CLOSE };
/* Runs one request: its reply is written to c->out, or it waits (the reply
 * comes with conn_resume). */
int cmd_exec(conn *c, req *r);
/* The same without the proxy: from the command table. */
int cmd_exec_local(conn *c, req *r);
/* The INFO text (all sections, or one). */
void cmd_info_text(srv *s, struct evbuffer *b, const char *section);

/* ---- proxy.c ---------------------------------------------------------- */
/* Checks --upstream and resolves its address. Returns 0, or -1 with a
 * message in err. */
int proxy_setup(srv *s, char *err, size_t errlen);
/* Runs one request of a proxy connection: forwarded, or answered by the
 * engine (INCR/INCRBY of a --counter key outside MULTI) in order. */
int proxy_exec(conn *c, req *r);
/* The running intercepted request's reply is complete. */
void proxy_local_done(conn *c);
/* 1 when the connection owes the client nothing more (no slot). */
int proxy_idle(const conn *c);
/* 1 when no further request should be run yet (too many in flight). */
int proxy_busy(const conn *c);
/* The client's output drained: upstream reading goes on if paused. */
void proxy_client_drained(conn *c);
/* Frees the upstream connection and the slots. */
void proxy_release(conn *c);
/* Writes the requests queued for the upstream (the loop pass's flush).
 * Returns 1 when that drained a full output (requests may run again). */
int proxy_flush(conn *c);

/* ---- counters.c ------------------------------------------------------- */
/* INCR (n = 1) or INCRBY n of counter `name` (len bytes): answered
 * inline from the range when it holds n IDs, else waits. */
int ctrs_incr(conn *c, const char *name, size_t len, uint64_t n);
/* GET: always a job (a store round trip). */
int ctrs_get(conn *c, const char *name, size_t len);
/* Drops a closing connection from any counter queue. */
void ctrs_unwait(conn *c);
/* The loop's side of finished jobs. */
void ctrs_drain_done(srv *s);
/* Workers: start (o.workers threads) and stop (finishing the queue). */
int ctrs_start(srv *s, char *err, size_t errlen);
void ctrs_stop(srv *s);
void ctrs_free(srv *s);
/* Calls fn for each counter of the table (INFO). */
void ctrs_each(srv *s, void (*fn)(void *, cent *), void *ud);
/* Redis's error for an engine failure. */
void ctrs_reply_error(conn *c, const idp_error *e);

/* ---- resp.c: replies in the connection's protocol ---------------------- */
void resp_simple(conn *c, const char *s);
/* "-ERR message" */
void resp_error(conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "-CODE message" (NOAUTH, WRONGPASS, NOPROTO) */
void resp_error_as(conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void resp_int(conn *c, long long v);
void resp_uint(conn *c, uint64_t v);
void resp_bulk(conn *c, const void *p, size_t len);
void resp_bulk_str(conn *c, const char *s);
void resp_null(conn *c);
void resp_array(conn *c, size_t n);
void resp_null_array(conn *c);
void resp_set(conn *c, size_t n);
void resp_map(conn *c, size_t n);
void resp_verbatim(conn *c, const char *p, size_t len);
/* A key or argument as text for a message: printable, cut at `max`. */
void resp_quote(char *dst, size_t dstlen, const char *p, size_t len,
                size_t max);

/* ---- metrics_http.c ---------------------------------------------------- */
/* The serve figures in Prometheus text, appended to b. */
void mhttp_serve_text(srv *s, struct evbuffer *b);
/* Engine + serve metrics as one malloc'ed string (NULL when out of
 * memory). */
char *mhttp_all_text(srv *s);
/* Serves /metrics on fd (bound and listening). Returns 0 or -1. */
int mhttp_start(srv *s, int fd, char *err, size_t errlen);
void mhttp_stop(srv *s);

#endif
