/*
 * serve.c - `idprime serve`: the command line, the listening socket and
 * the event loop, signals and the clean stop; and the socketless server
 * that fuzzers and tests feed bytes to.
 *
 * A stop (SIGTERM, SIGINT) stops accepting, answers every request already
 * read (engine calls in flight included), closes each connection once its
 * replies are written (at most STOP_GRACE_MS for clients that do not read
 * them), then writes the metrics and closes the store client, which gives
 * back what it can of its last batches.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>

#include "idprime/config.h"
#include "internal.h"

#define CMD "idprime serve"
#define STOP_GRACE_MS 10000
#define DEFAULT_LISTEN "127.0.0.1:6380"

enum { EXIT_WORK = 1, EXIT_USAGE = 2 };

static const char usage[] =
    "usage: idprime serve [options] [STORE_URI]\n"
    "\n"
    "A Redis-protocol (RESP2, RESP3 with HELLO 3) server whose INCR, INCRBY\n"
    "and GET are answered by the idprime engine from STORE_URI (any store:\n"
    "sqlite:///var/lib/ids.db, postgresql://..., redis://..., mem://), so\n"
    "an unmodified Redis client gets batched IDs. Keys are counter names.\n"
    "Without STORE_URI, the --config script's uri is used, else\n"
    "$IDPRIME_URI.\n"
    "\n"
    "With --upstream it is a passthrough proxy in front of a real Redis:\n"
    "every command goes to the upstream on a connection of its own per\n"
    "client, in order, except INCR and INCRBY of the --counter keys (and\n"
    "of the counters the --config script names) outside MULTI/EXEC, which\n"
    "the engine answers; the store is then the upstream itself unless\n"
    "STORE_URI says otherwise.\n"
    "\n"
    "  --listen ADDR:PORT          where clients connect (default "
    DEFAULT_LISTEN ";\n"
    "                              port 0 picks a free one); an address\n"
    "                              other than loopback needs a password\n"
    "  --requirepass-file FILE     clients must AUTH with the password in\n"
    "                              FILE (its first line)\n"
    "  --metrics-listen ADDR:PORT  Prometheus text at http://ADDR:PORT/metrics\n"
    "  --metrics FILE              the metrics written at exit (- for stdout)\n"
    "  --upstream URI              proxy to this Redis: redis://HOST:PORT\n"
    "  --counter KEY               (with --upstream) a key whose INCR and\n"
    "                              INCRBY the engine answers; repeatable\n"
    "  --config FILE.lua           a config script: the store URI, settings\n"
    "                              and batch policy; with --upstream the\n"
    "                              names in its counters table are counter\n"
    "                              keys too\n"
    "  --max-clients N             connections at once (default 10000)\n"
    "  --max-request-bytes N       largest request (default 65536)\n"
    "  --request-timeout-ms N      a begun request must be finished within\n"
    "                              N ms (default 10000; 0: no limit)\n"
    "  --idle-timeout-ms N         close a client silent for N ms (default 0:\n"
    "                              never, as Redis)\n"
    "  --max-counters N            distinct counters served (default 100000)\n"
    "  --workers N                 threads for engine calls that wait for the\n"
    "                              store (default 4)\n"
    "  -v, --verbose               log connections and store messages\n"
    "  -h, --help                  this text\n"
    "\n"
    "Prints \"" CMD ": listening on ADDR:PORT\" on stderr when ready; stops\n"
    "cleanly on SIGTERM or SIGINT.\n";

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_maybe_exit(srv *s)
{
    if (s->base != NULL && s->stopping && s->nconns == 0 && s->jobs_out == 0)
        event_base_loopexit(s->base, NULL);
}

static void log_cb(void *ud, int level, const char *msg)
{
    const srv *s = ud;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level <= IDP_LOG_WARN || (s->o.verbose && level <= IDP_LOG_INFO))
        fprintf(stderr, CMD ": %s: %s\n", names[level & 3], msg);
}

/* ---- Options ---------------------------------------------------------- */

static int number(const char *opt, const char *s, unsigned long long min,
                  unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s[0] >= '0' && s[0] <= '9'
                               ? strtoull(s, &end, 10) : 0;
    if (s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' || v < min ||
        v > max) {
        fprintf(stderr, CMD ": %s '%s': want a whole number in %llu..%llu\n",
                opt, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* The first line of FILE, or NULL with the reason printed. */
static char *read_password(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, CMD ": --requirepass-file %s: %s\n", path,
                strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, CMD ": --requirepass-file %s: the file holds no "
                "password (its first line is empty)\n", path);
        return NULL;
    }
    return strdup(buf);
}

/* Adds `key` to the intercepted keys unless it is there. Returns 0, or
 * -1 when out of memory. */
static int add_counter_key(serve_opts *o, const char *key)
{
    for (size_t i = 0; i < o->ncounter_keys; i++)
        if (strcmp(o->counters[i], key) == 0)
            return 0;
    const char **keys = realloc(o->counters, (o->ncounter_keys + 1) *
                                                 sizeof *keys);
    if (keys == NULL)
        return -1;
    keys[o->ncounter_keys++] = key;
    o->counters = keys;
    return 0;
}

/*
 * Loads --config FILE once: its settings and policy go to the store's
 * client (open_store), its uri after the command line's, and with
 * --upstream its counters are intercepted keys. Returns -1 to go on, else
 * the exit code.
 */
static int load_config(srv *s, const char *path)
{
    serve_opts *o = &s->o;
    idp_config_opts co = {.size = sizeof co, .log = log_cb, .log_ud = s};
    idp_error err;
    if ((o->config = idp_config_load(path, &co, &err)) == NULL) {
        fprintf(stderr, CMD ": %s\n", err.msg); /* FILE:LINE: why */
        return err.code == IDP_ENOMEM ? EXIT_WORK : EXIT_USAGE;
    }
    if (o->upstream == NULL)
        return -1; /* not a proxy: the counters are only settings */
    for (const char *const *k = idp_config_counters(o->config); *k; k++)
        if (add_counter_key(o, *k) != 0) {
            fprintf(stderr, CMD ": out of memory\n");
            return EXIT_WORK;
        }
    return -1;
}

/* Parses the command line into s->o. Returns -1 to go on, else the exit
 * code (0 after --help). */
static int parse_args(int argc, char **argv, srv *s)
{
    serve_opts *o = &s->o;
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"metrics-listen", required_argument, NULL, 'm'},
        {"metrics", required_argument, NULL, 'M'},
        {"requirepass-file", required_argument, NULL, 'p'},
        {"max-clients", required_argument, NULL, 'c'},
        {"max-request-bytes", required_argument, NULL, 'b'},
        {"request-timeout-ms", required_argument, NULL, 'r'},
        {"idle-timeout-ms", required_argument, NULL, 'i'},
        {"max-counters", required_argument, NULL, 'k'},
        {"workers", required_argument, NULL, 'w'},
        {"upstream", required_argument, NULL, 'u'},
        {"counter", required_argument, NULL, 'K'},
        {"config", required_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pass_file = NULL, *config = NULL;
    unsigned long long v;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        const char *name = longopts[0].name;
        for (const struct option *lo = longopts; lo->name; lo++)
            if (lo->val == opt)
                name = lo->name;
        char optname[40];
        snprintf(optname, sizeof optname, "--%s", name);
        switch (opt) {
        case 'l': o->listen = optarg; break;
        case 'm': o->metrics_listen = optarg; break;
        case 'M': o->metrics_file = optarg; break;
        case 'p': pass_file = optarg; break;
        case 'v': o->verbose = 1; break;
        case 'u': o->upstream = optarg; break;
        case 'K': {
            if (!idp_valid_name(optarg, strlen(optarg))) {
                fprintf(stderr, CMD ": --counter '%s': a counter name is 1 "
                        "to 200 bytes of A-Z a-z 0-9 _ . : -\n", optarg);
                return EXIT_USAGE;
            }
            if (add_counter_key(o, optarg) != 0) {
                fprintf(stderr, CMD ": out of memory\n");
                return EXIT_WORK;
            }
            break;
        }
        case 'C': config = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'c': case 'b': case 'r': case 'i': case 'k': case 'w': {
            static const struct { int opt; unsigned long long min, max; }
            ranges[] = {{'c', 1, 1000000}, {'b', 64, 1ULL << 30},
                        {'r', 0, 86400000}, {'i', 0, 86400000},
                        {'k', 1, 10000000}, {'w', 1, 64}};
            size_t i = 0;
            while (ranges[i].opt != opt)
                i++;
            if (number(optname, optarg, ranges[i].min, ranges[i].max, &v))
                return EXIT_USAGE;
            if (opt == 'c') o->max_clients = (unsigned)v;
            if (opt == 'b') o->max_request_bytes = (size_t)v;
            if (opt == 'r') o->request_timeout_ms = (unsigned)v;
            if (opt == 'i') o->idle_timeout_ms = (unsigned)v;
            if (opt == 'k') o->max_counters = (unsigned)v;
            if (opt == 'w') o->workers = (unsigned)v;
            break;
        }
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (o->ncounter_keys > 0 && o->upstream == NULL) {
        fprintf(stderr, CMD ": --counter needs --upstream (without a proxy "
                "every INCR is the engine's)\n");
        return EXIT_USAGE;
    }
    int code;
    if (config != NULL && (code = load_config(s, config)) >= 0)
        return code;
    if (optind < argc)
        o->uri = argv[optind++];
    else if (o->upstream != NULL)
        o->uri = o->upstream; /* the counters live in the upstream itself */
    else if (idp_config_uri(o->config) != NULL)
        o->uri = idp_config_uri(o->config);
    else if (getenv("IDPRIME_URI") != NULL && *getenv("IDPRIME_URI"))
        o->uri = getenv("IDPRIME_URI");
    if (optind < argc || o->uri == NULL) {
        fprintf(stderr, optind < argc ? CMD ": unexpected argument '%s'\n\n%s"
                                      : CMD ": no store URI given%s\n\n%s",
                optind < argc ? argv[optind] : "", usage);
        return EXIT_USAGE;
    }
    if (pass_file != NULL && (o->password = read_password(pass_file)) == NULL)
        return EXIT_USAGE;
    return -1;
}

/* ---- Sockets ---------------------------------------------------------- */

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
    }
    return 0;
}

/*
 * A listening socket on ADDR:PORT ("[::1]:6380" for IPv6). A non-loopback
 * address is refused unless need_pass_ok. On success returns the fd and
 * writes "ADDR:PORT" (the port bound) into shown; else -1 with *code set.
 */
static int listen_on(const char *what, const char *spec, int need_pass_ok,
                     char *shown, size_t shownlen, int *port, int *code)
{
    *code = EXIT_USAGE;
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0' ||
        (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, CMD ": %s '%s': want ADDR:PORT, e.g. 127.0.0.1:6380\n",
                what, spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, CMD ": %s '%s': %s\n", what, spec, gai_strerror(rc));
        return -1;
    }
    if (!need_pass_ok && !is_loopback(ai->ai_addr)) {
        fprintf(stderr, CMD ": refusing to listen on %s without a password: "
                "give --requirepass-file FILE, or listen on a loopback "
                "address (127.0.0.1)\n", spec);
        freeaddrinfo(ai);
        return -1;
    }
    *code = EXIT_WORK;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        fprintf(stderr, CMD ": %s %s: %s\n", what, spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        const void *a = ss.ss_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        inet_ntop(ss.ss_family, a, addr, sizeof addr);
        *port = ntohs(ss.ss_family == AF_INET
                          ? ((struct sockaddr_in *)&ss)->sin_port
                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    snprintf(shown, shownlen, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             addr, *port);
    return fd;
}

/* Room for --max-clients descriptors: raises the soft limit, or lowers
 * max_clients to what the hard limit allows (as Redis does). */
static void fit_fd_limit(srv *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    /* a proxy's client has an upstream connection too */
    rlim_t per = s->o.upstream != NULL ? 2 : 1;
    rlim_t want = (rlim_t)s->o.max_clients * per + 64;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
                          ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        unsigned fit = rl.rlim_cur > 96 ? (unsigned)((rl.rlim_cur - 64) / per)
                                        : 16;
        fprintf(stderr, CMD ": warning: only %llu file descriptors: "
                "--max-clients lowered from %u to %u\n",
                (unsigned long long)rl.rlim_cur, s->o.max_clients, fit);
        s->o.max_clients = fit;
    }
}

/* ---- The loop --------------------------------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    srv *s = arg;
    if (s->nconns >= (long)s->o.max_clients) {
        static const char msg[] = "-ERR max number of clients reached\r\n";
        ssize_t w = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        evutil_closesocket(fd);
        atomic_fetch_add_explicit(&s->st.conns_rejected, 1,
                                  memory_order_relaxed);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(s->base, fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        evutil_closesocket(fd);
        return;
    }
    if (conn_new(s, bev) == NULL)
        bufferevent_free(bev);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv *s = arg;
    if (s->lis != NULL)
        evconnlistener_enable(s->lis);
}

/* accept() failed: out of descriptors keeps failing while the listener
 * is ready, so it pauses for 100 ms instead of spinning. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    srv *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    fprintf(stderr, CMD ": accept: %s\n", evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    event_add(s->retry_ev, &tv);
}

static void force_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv *s = arg;
    while (s->conns != NULL)
        conn_close(s->conns, "shutdown: replies not read in time");
    srv_maybe_exit(s);
}

static void begin_stop(srv *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    if (s->o.verbose)
        fprintf(stderr, CMD ": stopping: finishing %ld connections\n",
                s->nconns);
    if (s->lis != NULL) {
        evconnlistener_free(s->lis);
        s->lis = NULL;
    }
    for (conn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_drain(c);
    }
    struct timeval tv = {STOP_GRACE_MS / 1000, 0};
    event_add(s->stop_ev, &tv);
    srv_maybe_exit(s);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    begin_stop(arg);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ctrs_drain_done(arg);
}

static int write_metrics(srv *s)
{
    if (s->o.metrics_file == NULL)
        return 0;
    char *text = mhttp_all_text(s);
    if (text == NULL) {
        fprintf(stderr, CMD ": metrics: out of memory\n");
        return EXIT_WORK;
    }
    int rc = 0;
    if (strcmp(s->o.metrics_file, "-") == 0) {
        fputs(text, stdout);
        fflush(stdout);
    } else {
        FILE *f = fopen(s->o.metrics_file, "w");
        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, CMD ": cannot write metrics to %s: %s\n",
                    s->o.metrics_file, strerror(errno));
            rc = EXIT_WORK;
        }
    }
    free(text);
    return rc;
}

static void srv_init(srv *s)
{
    s->o.listen = DEFAULT_LISTEN;
    s->o.max_request_bytes = 65536;
    s->o.request_timeout_ms = 10000;
    s->o.max_clients = 10000;
    s->o.max_counters = 100000;
    s->o.workers = 4;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->started = srv_now();
}

static void srv_release(srv *s)
{
    while (s->conns != NULL)
        conn_discard(s->conns);
    ctrs_free(s);
    if (s->client != NULL)
        idp_close(s->client);
    idp_config_free(s->o.config); /* after the client: its policy */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->o.password);
    free(s->o.counters);
}

/* Opens the store. Returns 0, or the exit code. */
static int open_store(srv *s)
{
    idp_options opt = {.size = sizeof opt, .log = log_cb, .log_ud = s};
    idp_config_apply(s->o.config, &opt); /* NULL: nothing */
    idp_error err;
    s->client = idp_open(s->o.uri, &opt, &err);
    if (s->client != NULL)
        return 0;
    fprintf(stderr, CMD ": %s\n", err.msg);
    return err.code == IDP_EINVAL ? EXIT_USAGE : EXIT_WORK;
}

/* Sets up the loop, the listener and the metrics page, then runs until a
 * stop. Returns the exit code. */
static int run(srv *s)
{
    char err[256];
    int code = 0, fd, mfd = -1, mport = 0;
    char mshown[80];
    if (s->o.upstream != NULL && proxy_setup(s, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        return EXIT_USAGE;
    }
    fd = listen_on("--listen", s->o.listen, s->o.password != NULL,
                   s->listen_addr, sizeof s->listen_addr, &s->port, &code);
    if (fd < 0)
        return code;
    if (s->o.metrics_listen != NULL &&
        (mfd = listen_on("--metrics-listen", s->o.metrics_listen, 1, mshown,
                         sizeof mshown, &mport, &code)) < 0) {
        close(fd);
        return code;
    }
    if ((code = open_store(s)) != 0) {
        close(fd);
        if (mfd >= 0)
            close(mfd);
        return code;
    }
    fit_fd_limit(s);
    /* epoll's changelist: a socket whose write interest is added and
     * dropped within one loop pass (each pipelined batch's reply) costs no
     * epoll_ctl */
    struct event_config *ecfg = event_config_new();
    if (ecfg != NULL) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        s->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (s->base == NULL) {
        fprintf(stderr, CMD ": cannot make an event loop\n");
        close(fd);
        if (mfd >= 0)
            close(mfd);
        return EXIT_WORK;
    }
    s->done_ev = event_new(s->base, -1, 0, done_cb, s);
    s->retry_ev = evtimer_new(s->base, retry_cb, s);
    s->stop_ev = evtimer_new(s->base, force_stop_cb, s);
    s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
    s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
    evutil_make_socket_nonblocking(fd);
    s->lis = evconnlistener_new(s->base, accept_cb, s,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                -1, fd);
    if (s->done_ev == NULL || s->retry_ev == NULL || s->stop_ev == NULL ||
        s->sig_term == NULL || s->sig_int == NULL || s->lis == NULL ||
        event_add(s->sig_term, NULL) != 0 || event_add(s->sig_int, NULL) != 0) {
        fprintf(stderr, CMD ": cannot set up the event loop\n");
        if (s->lis == NULL)
            close(fd);
        if (mfd >= 0)
            close(mfd);
        code = EXIT_WORK;
        goto out;
    }
    evconnlistener_set_error_cb(s->lis, accept_error_cb);
    if (mfd >= 0) {
        if (mhttp_start(s, mfd, err, sizeof err) != 0) {
            fprintf(stderr, CMD ": --metrics-listen %s: %s\n",
                    s->o.metrics_listen, err);
            code = EXIT_WORK;
            goto out;
        }
        fprintf(stderr, CMD ": metrics on http://%s/metrics\n", mshown);
    }
    if (ctrs_start(s, err, sizeof err) != 0) {
        fprintf(stderr, CMD ": %s\n", err);
        code = EXIT_WORK;
        goto out;
    }
    if (s->o.upstream != NULL)
        fprintf(stderr, CMD ": proxy to %s, %zu counter key%s answered by "
                "the engine\n", s->o.upstream, s->o.ncounter_keys,
                s->o.ncounter_keys == 1 ? "" : "s");
    fprintf(stderr, CMD ": listening on %s\n", s->listen_addr);
    event_base_dispatch(s->base);
    code = s->exit_code;
out:
    ctrs_stop(s);
    mhttp_stop(s);
    if (s->lis != NULL)
        evconnlistener_free(s->lis);
    while (s->conns != NULL)
        conn_discard(s->conns);
    int mrc = write_metrics(s);
    if (code == 0)
        code = mrc;
    struct event *evs[] = {s->done_ev, s->retry_ev, s->stop_ev, s->sig_term,
                           s->sig_int};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    event_base_free(s->base);
    s->base = NULL;
    return code;
}

int serve_main(int argc, char **argv)
{
    srv *s = calloc(1, sizeof *s);
    if (s == NULL) {
        fprintf(stderr, CMD ": out of memory\n");
        return EXIT_WORK;
    }
    srv_init(s);
    int code = parse_args(argc, argv, s);
    if (code < 0) {
        /* the workers hand replies to the loop: libevent must lock */
        if (evthread_use_pthreads() != 0) {
            fprintf(stderr, CMD ": libevent has no thread support\n");
            code = EXIT_WORK;
        } else {
            signal(SIGPIPE, SIG_IGN);
            code = run(s);
        }
    }
    srv_release(s);
    free(s);
    return code;
}

/* ---- Without sockets -------------------------------------------------- */

struct serve_server {
    srv s;
};

serve_server *serve_server_new(const char *uri, const char *password,
                               char *err, size_t errlen)
{
    serve_server *ss = calloc(1, sizeof *ss);
    if (ss == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv *s = &ss->s;
    srv_init(s);
    s->o.uri = uri;
    s->o.workers = 0;
    if (password != NULL && (s->o.password = strdup(password)) == NULL) {
        snprintf(err, errlen, "out of memory");
        serve_server_free(ss);
        return NULL;
    }
    idp_options opt = {.size = sizeof opt};
    idp_error e;
    s->client = idp_open(uri, &opt, &e);
    if (s->client == NULL) {
        snprintf(err, errlen, "%s", e.msg);
        serve_server_free(ss);
        return NULL;
    }
    return ss;
}

int serve_handle_request(serve_server *ss, const void *data, size_t len,
                         char **out, size_t *outlen)
{
    srv *s = &ss->s;
    *out = NULL;
    *outlen = 0;
    conn *c = conn_new(s, NULL);
    if (c == NULL || evbuffer_add(c->in, data, len) != 0) {
        if (c != NULL)
            conn_discard(c);
        return -1;
    }
    conn_process(c);
    ctrs_drain_done(s); /* the engine calls ran inline: their replies */
    int closed = c->closing;
    size_t n = evbuffer_get_length(c->wire);
    char *text = malloc(n + 1);
    if (text != NULL) {
        evbuffer_remove(c->wire, text, n);
        text[n] = '\0';
    }
    conn_discard(c);
    if (text == NULL)
        return -1;
    *out = text;
    *outlen = n;
    return closed;
}

void serve_server_free(serve_server *ss)
{
    if (ss == NULL)
        return;
    srv_release(&ss->s);
    free(ss);
}
