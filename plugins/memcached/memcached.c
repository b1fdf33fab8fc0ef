/*
 * memcached.c - the memcached store plugin (libmemcached).
 *
 * URI: memcached://host[:port][,host[:port]...]   (port 11211 by default)
 *
 * A counter is one memcached item holding its value in decimal. Several
 * servers spread the counters by consistent hashing (ketama): every client
 * must list the same servers, spelled the same way, or they would look for
 * a counter on different servers. Hosts are never ejected from the ring: a
 * counter moved to another server would start again from 0.
 *
 * Commands are never retried by libmemcached or by this plugin: a lost
 * reply is an error (the engine counts those IDs as a gap), and the
 * connection is dropped after any failure so that a late reply can never
 * be read as the answer to a later command. A clean close gives back with
 * gets + cas (mc_lower). Increments go through incr.c
 * and wire.c (sockets of our own); the rest through libmemcached, on the
 * binary protocol.
 *
 * memcached keeps counters in memory only: a restart, a flush_all or an
 * eviction loses them, after which the store answers from 0 again. The
 * engine's regression guard refuses those answers; open warns when the
 * server evicts (started without -M). A value of 2^63 or more (only
 * another tool writes one) is never served, read or raised: it is refused
 * naming the key and the value.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mc_internal.h"

#define MC_DEFAULT_PORT 11211
#define MC_MAX_KEY 250          /* memcached's KEY_MAX_LENGTH */

/* ---- Helpers ------------------------------------------------------------ */

static unsigned mc_port(const idp_uri_host *h)
{
    return h->port != 0 ? h->port : MC_DEFAULT_PORT;
}

/* "host:port", IPv6 in brackets. */
static void mc_hostport(const idp_uri_host *h, char *buf, size_t len)
{
    if (strchr(h->host, ':') != NULL)
        snprintf(buf, len, "[%s]:%u", h->host, mc_port(h));
    else
        snprintf(buf, len, "%s:%u", h->host, mc_port(h));
}

uint64_t mc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Parses a counter as memcached stores it: decimal digits, possibly
 * followed by spaces (memcached pads a value in place when an incr or decr
 * makes it shorter). Returns 0, or -1 for anything else.
 */
int mc_parse(const char *s, size_t len, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    if (len == 0 || s[0] < '0' || s[0] > '9')
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    for (; i < len; i++)
        if (s[i] != ' ')
            return -1;
    *out = v;
    return 0;
}

/* Memcached keys: 1 to 250 bytes, no spaces or control characters (the
 * text protocol could not carry them, and other tools could not read them). */
int mc_check_key(const char *key, idp_error *err)
{
    size_t len = strlen(key);
    if (len == 0 || len > MC_MAX_KEY)
        return idp_plugin_error(err, IDP_EINVAL,
                                "key '%.40s%s' is %zu bytes; memcached "
                                "keys are 1 to %d bytes (shorten the prefix or "
                                "the counter name)", key, len > 40 ? "..." : "",
                                len, MC_MAX_KEY);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= ' ' || c == 0x7f)
            return idp_plugin_error(err, IDP_EINVAL,
                                    "key '%.40s' has a space or "
                                    "control character at byte %zu, which "
                                    "memcached keys cannot hold", key, i);
    }
    return IDP_OK;
}

/* Sets the behaviours every connection of this plugin relies on. */
static memcached_return_t mc_configure(memcached_st *mc, unsigned timeout_ms)
{
    uint64_t ms = timeout_ms > 0 ? timeout_ms : 1;
    uint64_t us = ms > INT32_MAX / 1000 ? (uint64_t)INT32_MAX : ms * 1000;
    const struct { memcached_behavior_t b; uint64_t v; } set[] = {
        /* 64-bit increments with a 64-bit reply, and gets/cas. */
        {MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1},
        {MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1},
        /* Every command waits for its own reply: nothing is queued, nothing
         * is sent "noreply", nothing is written twice to replicas. */
        {MEMCACHED_BEHAVIOR_NO_BLOCK, 0},
        {MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0},
        {MEMCACHED_BEHAVIOR_NOREPLY, 0},
        {MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS, 0},
        /* Consistent hashing; a failed host is never ejected from the ring
         * (its counters would restart from 0 on another server). */
        {MEMCACHED_BEHAVIOR_DISTRIBUTION,
         MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA},
        {MEMCACHED_BEHAVIOR_AUTO_EJECT_HOSTS, 0},
        /* No back-off after a failure: mc_fail drops the handle and the
         * next call reconnects. */
        {MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 0},
        {MEMCACHED_BEHAVIOR_TCP_NODELAY, 1},
        {MEMCACHED_BEHAVIOR_TCP_KEEPALIVE, 1},
        /* timeout_ms bounds the connect and every wait for the socket
         * (poll, in ms); SO_SNDTIMEO/SO_RCVTIMEO are in microseconds. */
        {MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms},
        {MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms},
        {MEMCACHED_BEHAVIOR_SND_TIMEOUT, us},
        {MEMCACHED_BEHAVIOR_RCV_TIMEOUT, us},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        memcached_return_t r = memcached_behavior_set(mc, set[i].b, set[i].v);
        if (r != MEMCACHED_SUCCESS)
            return r;
    }
    return MEMCACHED_SUCCESS;
}

/*
 * A libmemcached handle on hosts[0 .. n-1] of the URI. Nothing is connected
 * yet (libmemcached connects on first use). Returns NULL with err filled.
 */
static memcached_st *mc_create(const mc_store *s, const idp_uri_host *hosts,
                               size_t n, idp_error *err)
{
    memcached_st *mc = memcached_create(NULL);
    if (mc == NULL) {
        idp_plugin_error(err, IDP_ENOMEM, "out of memory");
        return NULL;
    }
    memcached_return_t r = mc_configure(mc, s->timeout_ms);
    if (r != MEMCACHED_SUCCESS) {
        idp_plugin_error(err, IDP_ESTORE, "cannot configure "
                         "libmemcached: %s", memcached_strerror(mc, r));
        memcached_free(mc);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        r = memcached_server_add(mc, hosts[i].host,
                                 (in_port_t)mc_port(&hosts[i]));
        if (r != MEMCACHED_SUCCESS) {
            char hp[128];
            mc_hostport(&hosts[i], hp, sizeof hp);
            idp_plugin_error(err, IDP_EINVAL, "cannot add server "
                             "%s: %s", hp, memcached_strerror(mc, r));
            memcached_free(mc);
            return NULL;
        }
    }
    return mc;
}

/* Makes sure the store has a handle (rebuilt after a failure). */
int mc_ready(mc_store *s, idp_error *err)
{
    if (s->mc == NULL)
        s->mc = mc_create(s, s->host->uri->hosts, s->host->uri->nhosts, err);
    return s->mc != NULL ? IDP_OK : (err != NULL ? err->code : IDP_ENOMEM);
}

/* Closes every connection and forgets the handle's state. */
void mc_drop(mc_store *s)
{
    if (s->mc != NULL) {
        memcached_free(s->mc);
        s->mc = NULL;
    }
}

/* "host:port" of the server that holds `key`, or the server list. */
void mc_where(const mc_store *s, const char *key, char *buf, size_t len)
{
    memcached_return_t r;
    const memcached_instance_st *in = NULL;
    if (s->mc != NULL && key != NULL)
        in = memcached_server_by_key(s->mc, key, strlen(key), &r);
    if (in != NULL)
        snprintf(buf, len, "%s:%u", memcached_server_name(in),
                 (unsigned)memcached_server_port(in));
    else
        snprintf(buf, len, "%s", s->servers);
}

/*
 * Reports a failed command and drops the handle with its connections.
 * libmemcached does not always close a socket after a poll timeout (io_wait
 * just returns MEMCACHED_TIMEOUT), and with 1.1.4 we have seen the next
 * command read the late reply of one that timed out as its own answer; it
 * also puts a failed server in a back-off during which every call fails.
 * Nothing of a handle that failed is trusted: the next call builds a new
 * one and reconnects. Returns IDP_ETIMEOUT for a timeout, else IDP_ESTORE.
 */
int mc_fail(mc_store *s, const char *op, const char *key,
            memcached_return_t r, idp_error *err)
{
    char where[MC_WHERE_LEN];
    mc_where(s, key, where, sizeof where);
    int eno = s->mc != NULL ? memcached_last_error_errno(s->mc) : 0;
    const char *why = eno != 0 ? strerror(eno) : memcached_strerror(s->mc, r);
    int code = r == MEMCACHED_TIMEOUT ? IDP_ETIMEOUT : IDP_ESTORE;
    if (code == IDP_ETIMEOUT)
        idp_plugin_error(err, code, "server %s: %s%s%.40s%s timed out after "
                         "%u ms (reply lost, not retried)", where, op,
                         key ? " of '" : "", key ? key : "", key ? "'" : "",
                         s->timeout_ms);
    else
        idp_plugin_error(err, code, "server %s: %s%s%.40s%s failed: %s",
                         where, op, key ? " of '" : "", key ? key : "",
                         key ? "'" : "", why);
    mc_drop(s);
    return code;
}

int mc_not_number(const char *key, const char *val, size_t len,
                  idp_error *err)
{
    return idp_plugin_error(err, IDP_ESTORE, "key '%.40s' holds "
                            "'%.*s'%s, not a decimal counter", key,
                            (int)(len > 24 ? 24 : len), val,
                            len > 24 ? "..." : "");
}

/*
 * gets: the value and CAS id of `key`. *exists = 0 for a missing key.
 * A value that is not a decimal counter is IDP_ESTORE naming the key.
 */
int mc_gets(mc_store *s, const char *key, int *exists, uint64_t *value,
            uint64_t *cas, idp_error *err)
{
    const char *keys[1] = {key};
    size_t lens[1] = {strlen(key)};
    memcached_result_st res;
    memcached_return_t r = memcached_mget(s->mc, keys, lens, 1);
    if (r != MEMCACHED_SUCCESS)
        return mc_fail(s, "gets", key, r, err);
    if (memcached_result_create(s->mc, &res) == NULL) {
        mc_drop(s);  /* replies may be pending */
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    }
    int rc = IDP_OK, found = 0;
    while (memcached_fetch_result(s->mc, &res, &r) != NULL) {
        if (found++ != 0)
            continue;  /* one key asked: drain whatever else comes */
        if (mc_parse(memcached_result_value(&res), memcached_result_length(&res),
                     value) != 0)
            rc = mc_not_number(key, memcached_result_value(&res),
                               memcached_result_length(&res), err);
        *cas = memcached_result_cas(&res);
    }
    memcached_result_free(&res);
    if (r != MEMCACHED_END && r != MEMCACHED_NOTFOUND && r != MEMCACHED_SUCCESS)
        return mc_fail(s, "gets", key, r, err);
    *exists = found != 0;
    if (!found)
        *value = 0, *cas = 0;
    return rc;
}

/*
 * memcached refuses an incr of a value that is not a counter without
 * showing it. Looks at the value (a get) and, when it is not
 * a counter, says what it holds in err instead.
 */
void mc_explain(mc_store *s, const char *key, idp_error *err)
{
    size_t vlen;
    uint32_t flags;
    uint64_t v;
    memcached_return_t r;
    char *val;
    if (mc_ready(s, NULL) != IDP_OK)
        return;
    val = memcached_get(s->mc, key, strlen(key), &vlen, &flags, &r);
    if (val == NULL) {
        if (r != MEMCACHED_NOTFOUND)
            mc_drop(s);
        return;
    }
    if (mc_parse(val, vlen, &v) != 0)
        mc_not_number(key, val, vlen, err);
    free(val);
}

/* Stores `v` with add (only when missing) or cas (only when unchanged).
 * Returns IDP_OK and *stored = 1 when written, *stored = 0 when someone
 * else got there first. */
int mc_put(mc_store *s, const char *key, uint64_t v, int exists,
           uint64_t cas, int *stored, idp_error *err)
{
    /* Padded with spaces to 20 characters, the most a 64-bit value has:
     * memcached then increments the value in place, not in a new item,
     * which a full server started with -M would refuse with "out of
     * memory" (wire.c turns that answer into an error; the padding makes it
     * rare for our own counters). mc_parse reads the padding, as memcached
     * writes it itself after a shrinking decr. */
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%-20" PRIu64, v);
    memcached_return_t r = exists
        ? memcached_cas(s->mc, key, strlen(key), buf, (size_t)n, 0, 0, cas)
        : memcached_add(s->mc, key, strlen(key), buf, (size_t)n, 0, 0);
    *stored = r == MEMCACHED_SUCCESS || r == MEMCACHED_STORED;
    if (*stored || r == MEMCACHED_DATA_EXISTS || r == MEMCACHED_NOTSTORED ||
        r == MEMCACHED_NOTFOUND)
        return IDP_OK;
    return mc_fail(s, exists ? "cas" : "add", key, r, err);
}

/* ---- get, raise_to ------------------------------------------------------ */

/* A value of 2^63 or more: not a counter anyone may be served from. */
static int mc_too_big(const char *what, const char *key, uint64_t v,
                      idp_error *err)
{
    return idp_plugin_error(err, IDP_ERANGE, "%skey '%.40s' holds %" PRIu64
                            ", at or past 2^63: not a counter value (values "
                            "this large are written by other tools, never by "
                            "idprime)", what, key, v);
}

static int mc_get(void *store, const char *key, uint64_t *value, int *exists,
                  idp_error *err)
{
    mc_store *s = store;
    size_t vlen;
    uint32_t flags;
    memcached_return_t r;
    int rc = mc_check_key(key, err);
    if (rc != IDP_OK || (rc = mc_ready(s, err)) != IDP_OK)
        return rc;
    char *val = memcached_get(s->mc, key, strlen(key), &vlen, &flags, &r);
    if (val == NULL) {
        if (r == MEMCACHED_NOTFOUND) {
            *value = 0;
            *exists = 0;
            return IDP_OK;
        }
        return mc_fail(s, "get", key, r, err);
    }
    rc = mc_parse(val, vlen, value) == 0 ? IDP_OK
                                         : mc_not_number(key, val, vlen, err);
    free(val);
    if (rc == IDP_OK && *value > IDP_MAX_VALUE)
        rc = mc_too_big("", key, *value, err);
    if (rc == IDP_OK) {
        *exists = 1;
        mc_seen_add(&s->seen, key);  /* a look below the limit (incr.c) */
    }
    return rc;
}

/* Raises the counter to at least `value` with gets + cas (add when
 * missing); never lowers it. */
static int mc_raise_to(void *store, const char *key, uint64_t value,
                       uint64_t *result, idp_error *err)
{
    mc_store *s = store;
    int rc = mc_check_key(key, err);
    if (rc != IDP_OK)
        return rc;
    if (value > IDP_MAX_VALUE)
        return idp_plugin_error(err, IDP_ERANGE, "cannot raise "
                                "'%.40s' to %" PRIu64 ": values stay below "
                                "2^63", key, value);
    if ((rc = mc_ready(s, err)) != IDP_OK)
        return rc;
    uint64_t deadline = mc_now_ms() + s->timeout_ms;
    unsigned tries = 0;
    do {
        int exists, stored;
        uint64_t cur, cas;
        tries++;
        if ((rc = mc_gets(s, key, &exists, &cur, &cas, err)) != IDP_OK)
            return rc;
        if (exists && cur > IDP_MAX_VALUE)
            return mc_too_big("cannot raise: ", key, cur, err);
        if (exists ? cur >= value : value == 0) {
            *result = cur;
            mc_seen_add(&s->seen, key);  /* a look below the limit */
            return IDP_OK;
        }
        if ((rc = mc_put(s, key, value, exists, cas, &stored, err)) != IDP_OK)
            return rc;
        if (stored) {
            *result = value;
            mc_seen_add(&s->seen, key);
            return IDP_OK;
        }
    } while (mc_now_ms() < deadline);
    return idp_plugin_error(err, IDP_ETIMEOUT, "raising '%.40s' "
                            "lost %u compare-and-swap races in %u ms; counter "
                            "too busy", key, tries, s->timeout_ms);
}

/*
 * Gives back on a clean close: gets, then a cas to `value` only when the
 * counter still holds `expect`. memcached gives an item a new CAS id on
 * every incr, so an increment by anyone between the two makes the cas
 * fail: nothing is written (done = 0), and there is no second try, as the
 * value has moved. One op's failure (its reason logged by the host from
 * its status) does not stop the others: each gets a connection anew.
 */
static int mc_lower_one(mc_store *s, idp_lower_op *op)
{
    idp_error e;
    int exists, stored, rc;
    uint64_t cur, cas;
    op->done = 0;
    if (op->value >= op->expect || op->expect > IDP_MAX_VALUE ||
        mc_check_key(op->key, &e) != IDP_OK)
        return IDP_EINVAL;
    if ((rc = mc_ready(s, &e)) != IDP_OK ||
        (rc = mc_gets(s, op->key, &exists, &cur, &cas, &e)) != IDP_OK)
        return rc;
    if (!exists || cur != op->expect)
        return IDP_OK;
    if ((rc = mc_put(s, op->key, op->value, 1, cas, &stored, &e)) != IDP_OK)
        return rc;
    op->done = stored;
    return IDP_OK;
}

static int mc_lower(void *store, idp_lower_op *ops, size_t nops,
                    idp_error *err)
{
    (void)err;   /* every op carries its own status */
    for (size_t i = 0; i < nops; i++)
        ops[i].status = mc_lower_one(store, &ops[i]);
    return IDP_OK;
}

/* ---- Server statistics ---------------------------------------------------- */

typedef struct mc_stats {
    uint64_t incr;       /* incr_hits + incr_misses, summed */
    unsigned hits_seen, misses_seen, bad;
    int evicts;          /* "stats settings": evictions on */
    unsigned settings_seen;
} mc_stats;

static int mc_stat_is(const char *k, size_t kl, const char *want)
{
    return kl == strlen(want) && memcmp(k, want, kl) == 0;
}

static memcached_return_t mc_stat_cb(const memcached_instance_st *server,
                                     const char *key, size_t kl,
                                     const char *val, size_t vl, void *ctx)
{
    mc_stats *st = ctx;
    uint64_t v;
    (void)server;
    if (mc_stat_is(key, kl, "incr_hits") || mc_stat_is(key, kl, "incr_misses")) {
        if (mc_parse(val, vl, &v) != 0)
            st->bad++;
        else
            st->incr += v;
        if (key[5] == 'h')
            st->hits_seen++;
        else
            st->misses_seen++;
    } else if (mc_stat_is(key, kl, "evictions")) {
        st->settings_seen++;
        if (mc_stat_is(val, vl, "on"))
            st->evicts = 1;
    }
    return MEMCACHED_SUCCESS;
}

/* The servers' own count of increments served to anyone, summed over the
 * servers and server-wide (other clients' incr count too). Increments over
 * 2^32, done by gets/cas, are not in it; the engine's batches (at most
 * 2^30) always are. */
static int mc_roundtrips(void *store, uint64_t *count, idp_error *err)
{
    mc_store *s = store;
    mc_stats st = {0};
    int rc = mc_ready(s, err);
    if (rc != IDP_OK)
        return rc;
    memcached_return_t r = memcached_stat_execute(s->mc, NULL, mc_stat_cb, &st);
    if (r != MEMCACHED_SUCCESS)
        return mc_fail(s, "stats", NULL, r, err);
    uint32_t n = memcached_server_count(s->mc);
    if (st.hits_seen != n || st.misses_seen != n || st.bad != 0) {
        mc_drop(s);
        return idp_plugin_error(err, IDP_ESTORE, "server %s: stats gave "
                                "incr_hits/incr_misses for %u and %u of %u "
                                "servers", s->servers, st.hits_seen,
                                st.misses_seen, (unsigned)n);
    }
    *count = st.incr;
    return IDP_OK;
}

/*
 * At open: each server must answer (so a wrong port is an error now,
 * naming it), and one that evicts keys when full gets a warning.
 */
static int mc_check_server(mc_store *s, const idp_uri_host *h, idp_error *err)
{
    char hp[128];
    mc_stats st = {0};
    mc_hostport(h, hp, sizeof hp);
    memcached_st *mc = mc_create(s, h, 1, err);
    if (mc == NULL)
        return err != NULL ? err->code : IDP_ENOMEM;
    memcached_return_t r = memcached_stat_execute(mc, "settings", mc_stat_cb,
                                                  &st);
    if (r != MEMCACHED_SUCCESS || st.settings_seen == 0) {
        int eno = memcached_last_error_errno(mc);
        int code = r == MEMCACHED_TIMEOUT ? IDP_ETIMEOUT : IDP_ESTORE;
        const char *why = r == MEMCACHED_SUCCESS ? "no answer to 'stats settings'"
                          : eno != 0             ? strerror(eno)
                                                 : memcached_strerror(mc, r);
        idp_plugin_error(err, code, "cannot use server %s: %s (is memcached "
                         "running there, binary protocol on?)", hp, why);
        memcached_free(mc);
        return code;
    }
    memcached_free(mc);
    if (st.evicts && s->host->log != NULL)
        s->host->log(s->host, IDP_LOG_WARN,
                     "server %s evicts keys when its memory is full "
                     "(started without -M): a counter can be lost, and the "
                     "engine then refuses the store's answers as a "
                     "regression; run memcached with -M and enough -m", hp);
    return IDP_OK;
}

/* ---- open, close ---------------------------------------------------------- */

static int mc_check_uri(const idp_uri *u, idp_error *err)
{
    if (u->nhosts == 0)
        return idp_plugin_error(err, IDP_EINVAL, "no server in the URI (use "
                                "memcached://host[:port][,host[:port]...])");
    if (u->path[0] != '\0' && strcmp(u->path, "/") != 0)
        return idp_plugin_error(err, IDP_EINVAL, "the URI has a path "
                                "'%.40s', but memcached has no databases (use "
                                "memcached://host[:port][,host[:port]...])",
                                u->path);
    if (u->user[0] != '\0' || u->has_password)
        return idp_plugin_error(err, IDP_EINVAL, "a user or password "
                                "was given, but this plugin does not support "
                                "SASL authentication");
    for (size_t i = 0; i < u->nhosts; i++) {
        if (u->hosts[i].host[0] == '\0')
            return idp_plugin_error(err, IDP_EINVAL, "server %zu of "
                                    "the URI has no host name", i + 1);
        if (u->hosts[i].port > 65535)
            return idp_plugin_error(err, IDP_EINVAL, "port %u of "
                                    "host '%.40s' is out of range 1..65535",
                                    u->hosts[i].port, u->hosts[i].host);
    }
    return IDP_OK;
}

static void mc_close(void *store)
{
    mc_store *s = store;
    if (s == NULL)
        return;
    mc_drop(s);
    mcw_free(s->wire);
    mc_seen_free(&s->seen);
    free(s);
}

/*
 * In a child after fork(), for the parent's handle: keeps our wrapper and
 * the libmemcached handle with its sockets, on purpose (the host keeps the
 * handle reachable, never to use it again): memcached_free
 * sends QUIT to every connected server first (send_quit, in libmemcached
 * 1.0 and 1.1), which would end the parent's sessions, and libmemcached
 * has no call that closes a server's socket without sending it. The leak
 * is one handle per client inherited; its sockets stay open in the child
 * until it exits (while the parent's copies are open, that changes nothing
 * for the server). The sockets of wire.c are closed: close() sends nothing
 * while the parent holds the same sockets open.
 */
static void mc_drop_child(void *store)
{
    mc_store *s = store;
    mcw_free(s->wire);
    s->wire = NULL;
    mc_seen_free(&s->seen);
}

static int mc_open(const idp_host *host, void **store, idp_error *err)
{
    const idp_uri *u = host->uri;
    int rc = mc_check_uri(u, err);
    if (rc != IDP_OK)
        return rc;
    mc_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    s->host = host;
    s->timeout_ms = host->timeout_ms;
    if ((s->wire = mcw_new(u->nhosts)) == NULL) {
        free(s);
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    }
    for (size_t i = 0, off = 0; i < u->nhosts && off < sizeof s->servers; i++) {
        char hp[128];
        mc_hostport(&u->hosts[i], hp, sizeof hp);
        int w = snprintf(s->servers + off, sizeof s->servers - off, "%s%s",
                         i ? "," : "", hp);
        off += w > 0 ? (size_t)w : 0;
    }
    for (size_t i = 0; i < u->nhosts; i++)
        if ((rc = mc_check_server(s, &u->hosts[i], err)) != IDP_OK) {
            mc_close(s);
            return rc;
        }
    if ((rc = mc_ready(s, err)) != IDP_OK) {
        mc_close(s);
        return rc;
    }
    *store = s;
    return IDP_OK;
}

/* ---- The table ------------------------------------------------------------ */

static const char *const mc_schemes[] = {"memcached", NULL};

static const idp_plugin_testing mc_testing = {
    .size = sizeof(idp_plugin_testing),
    .params = NULL,
    .roundtrips = mc_roundtrips,
    .control = NULL,
};

static const idp_plugin mc_plugin = {
    .abi_version = IDP_PLUGIN_ABI_VERSION,
    .size = sizeof(idp_plugin),
    .name = "memcached",
    .schemes = mc_schemes,
    .params = NULL,
    .open = mc_open,
    .close = mc_close,
    .incr = mc_incr,
    .get = mc_get,
    .incr_many = NULL,   /* one by one */
    .raise_to = mc_raise_to,
    .list = NULL,        /* memcached cannot enumerate keys reliably */
    .drop = mc_drop_child,
    .testing = &mc_testing,
    .lower = mc_lower,
};

IDP_PLUGIN_EXPORT const idp_plugin *idprime_plugin_entry(void)
{
    return &mc_plugin;
}
