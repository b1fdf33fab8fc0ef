/*
 * commands.c - the command table and the commands: INCR, INCRBY and GET
 * from the engine (counters.c), and what Redis clients send around them
 * (PING, ECHO, HELLO, AUTH, SELECT 0, INFO, CLIENT, COMMAND, QUIT). Every
 * other command gets Redis's own "unknown command" error; checks come in
 * Redis's order: the command, its arity, then authentication.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

/* What HELLO and INFO report as the Redis version we speak. */
#define REDIS_COMPAT_VERSION "7.0.0"

typedef int (*cmd_fn)(conn *c, req *r);

typedef struct cmd_def {
    const char *name;    /* lower case, as COMMAND lists it */
    int arity;           /* Redis's: n exact, -n at least n */
    int id;              /* CMD_*: its metric */
    cmd_fn fn;
    int no_auth;         /* allowed before AUTH */
    const char *flags;   /* COMMAND's flags, space separated */
    const char *acl;     /* COMMAND's ACL categories */
    int key;             /* position of its key, 0 for none */
} cmd_def;

const char *const cmd_metric_names[CMD_COUNT] = {
    "incr", "incrby", "get", "ping", "echo", "hello", "auth", "select",
    "info", "client", "command", "quit", "other",
};

/* ---- Arguments -------------------------------------------------------- */

/* A whole signed 64-bit decimal, as Redis's string2ll takes it: no sign
 * but '-', no spaces, no leading zeros. Returns 0, or -1. */
static int parse_ll(const char *p, size_t len, long long *out)
{
    if (len == 0 || len > 20)
        return -1;
    int neg = p[0] == '-';
    size_t i = (size_t)neg;
    if (i == len || p[i] < '0' || p[i] > '9' || (p[i] == '0' && len > i + 1))
        return -1;
    unsigned long long v = 0;
    unsigned long long lim = neg ? (unsigned long long)INT64_MAX + 1
                                 : (unsigned long long)INT64_MAX;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg && v == 0 && len > 1)
        return -1; /* "-0" */
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

static int arg_is(const req *r, int i, const char *word)
{
    return r->lens[i] == strlen(word) && strcasecmp(r->argv[i], word) == 0;
}

static void wrong_args(conn *c, const char *name)
{
    resp_error(c, "wrong number of arguments for '%s' command", name);
}

/* ---- INCR, INCRBY, GET ------------------------------------------------ */

static int do_incr(conn *c, req *r)
{
    return ctrs_incr(c, r->argv[1], r->lens[1], 1);
}

static int do_incrby(conn *c, req *r)
{
    long long n;
    if (parse_ll(r->argv[2], r->lens[2], &n) != 0) {
        resp_error(c, "value is not an integer or out of range");
        return EXEC_DONE;
    }
    if (n <= 0) {
        resp_error(c, "increment must be a positive integer: idprime "
                   "counters only move up (IDs are never handed back)");
        return EXEC_DONE;
    }
    return ctrs_incr(c, r->argv[1], r->lens[1], (uint64_t)n);
}

static int do_get(conn *c, req *r)
{
    return ctrs_get(c, r->argv[1], r->lens[1]);
}

/* ---- PING, ECHO, SELECT, QUIT ----------------------------------------- */

static int do_ping(conn *c, req *r)
{
    if (r->argc > 2)
        wrong_args(c, "ping");
    else if (r->argc == 2)
        resp_bulk(c, r->argv[1], r->lens[1]);
    else
        resp_simple(c, "PONG");
    return EXEC_DONE;
}

static int do_echo(conn *c, req *r)
{
    resp_bulk(c, r->argv[1], r->lens[1]);
    return EXEC_DONE;
}

static int do_select(conn *c, req *r)
{
    long long db;
    if (parse_ll(r->argv[1], r->lens[1], &db) != 0)
        resp_error(c, "value is not an integer or out of range");
    else if (db != 0)
        resp_error(c, "DB index is out of range");
    else
        resp_simple(c, "OK");
    return EXEC_DONE;
}

static int do_quit(conn *c, req *r)
{
    (void)r;
    resp_simple(c, "OK");
    return EXEC_CLOSE;
}

/* ---- AUTH, HELLO ------------------------------------------------------ */

/* Compares in time independent of where the first difference is. */
static int password_ok(const srv *s, const char *p, size_t len)
{
    const char *want = s->o.password;
    size_t wlen = strlen(want);
    unsigned char diff = (unsigned char)(len != wlen);
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(p[i] ^ want[i % (wlen ? wlen : 1)]);
    return diff == 0;
}

/* AUTH [user] pass, for HELLO too. Returns 1 when accepted, else 0 with
 * the error written. With no password set, "default" and any password
 * pass (Redis's nopass user). */
static int check_auth(conn *c, const char *user, size_t ulen,
                      const char *pass, size_t plen)
{
    if ((user == NULL || (ulen == 7 && memcmp(user, "default", 7) == 0)) &&
        (c->s->o.password == NULL || password_ok(c->s, pass, plen))) {
        c->authed = 1;
        return 1;
    }
    resp_error_as(c, "WRONGPASS", "invalid username-password pair or user "
                  "is disabled.");
    return 0;
}

static int do_auth(conn *c, req *r)
{
    if (r->argc > 3) {
        resp_error(c, "syntax error");
    } else if (r->argc == 2) {
        if (c->s->o.password == NULL)
            resp_error(c, "AUTH <password> called without any password "
                       "configured for the default user. Are you sure "
                       "your configuration is correct?");
        else if (check_auth(c, NULL, 0, r->argv[1], r->lens[1]))
            resp_simple(c, "OK");
    } else if (check_auth(c, r->argv[1], r->lens[1], r->argv[2],
                          r->lens[2])) {
        resp_simple(c, "OK");
    }
    return EXEC_DONE;
}

/* A client name: printable, no spaces (Redis's rule). */
static int set_name(conn *c, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '!' || p[i] > '~') {
            resp_error(c, "Client names cannot contain spaces, newlines or "
                       "special characters.");
            return -1;
        }
    }
    char *name = len > 0 ? strndup(p, len) : NULL;
    if (len > 0 && name == NULL) {
        resp_error(c, "out of memory");
        return -1;
    }
    free(c->name);
    c->name = name;
    return 0;
}

static int do_hello(conn *c, req *r)
{
    long long ver = c->proto;
    if (r->argc >= 2) {
        if (parse_ll(r->argv[1], r->lens[1], &ver) != 0) {
            resp_error(c, "Protocol version is not an integer or out of "
                       "range");
            return EXEC_DONE;
        }
        if (ver < 2 || ver > 3) {
            resp_error_as(c, "NOPROTO", "unsupported protocol version");
            return EXEC_DONE;
        }
    }
    int auth_at = 0, name_at = 0;
    for (int i = 2; i < r->argc; i++) {
        if (arg_is(r, i, "AUTH") && i + 2 < r->argc) {
            auth_at = i;
            i += 2;
        } else if (arg_is(r, i, "SETNAME") && i + 1 < r->argc) {
            name_at = i;
            i += 1;
        } else {
            char shown[80];
            resp_quote(shown, sizeof shown, r->argv[i], r->lens[i], 40);
            resp_error(c, "Syntax error in HELLO option '%s'", shown);
            return EXEC_DONE;
        }
    }
    if (auth_at != 0 &&
        !check_auth(c, r->argv[auth_at + 1], r->lens[auth_at + 1],
                    r->argv[auth_at + 2], r->lens[auth_at + 2]))
        return EXEC_DONE;
    if (!c->authed) {
        resp_error_as(c, "NOAUTH", "HELLO must be called with the client "
                      "already authenticated, otherwise the HELLO <proto> "
                      "AUTH <user> <pass> option can be used to "
                      "authenticate the client and select the RESP "
                      "protocol version at the same time");
        return EXEC_DONE;
    }
    if (name_at != 0 &&
        set_name(c, r->argv[name_at + 1], r->lens[name_at + 1]) != 0)
        return EXEC_DONE;
    c->proto = (int)ver;
    resp_map(c, 7);
    resp_bulk_str(c, "server");
    resp_bulk_str(c, "redis");
    resp_bulk_str(c, "version");
    resp_bulk_str(c, REDIS_COMPAT_VERSION);
    resp_bulk_str(c, "proto");
    resp_int(c, c->proto);
    resp_bulk_str(c, "id");
    resp_uint(c, c->id);
    resp_bulk_str(c, "mode");
    resp_bulk_str(c, "standalone");
    resp_bulk_str(c, "role");
    resp_bulk_str(c, "master");
    resp_bulk_str(c, "modules");
    resp_array(c, 0);
    return EXEC_DONE;
}

/* ---- CLIENT ----------------------------------------------------------- */

static int do_client(conn *c, req *r)
{
    char sub[48];
    resp_quote(sub, sizeof sub, r->argv[1], r->lens[1], 32);
    for (char *p = sub; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    int argc = r->argc;
    if (arg_is(r, 1, "SETNAME") && argc == 3) {
        if (set_name(c, r->argv[2], r->lens[2]) == 0)
            resp_simple(c, "OK");
    } else if (arg_is(r, 1, "GETNAME") && argc == 2) {
        if (c->name != NULL)
            resp_bulk_str(c, c->name);
        else
            resp_null(c);
    } else if (arg_is(r, 1, "ID") && argc == 2) {
        resp_uint(c, c->id);
    } else if (arg_is(r, 1, "SETINFO") && argc == 4) {
        if (arg_is(r, 2, "LIB-NAME") || arg_is(r, 2, "LIB-VER")) {
            resp_simple(c, "OK");
        } else {
            char opt[80];
            resp_quote(opt, sizeof opt, r->argv[2], r->lens[2], 40);
            resp_error(c, "Unrecognized option '%s'", opt);
        }
    } else if (arg_is(r, 1, "INFO") && argc == 2) {
        char line[256];
        snprintf(line, sizeof line, "id=%llu name=%s db=0 resp=%d\n",
                 (unsigned long long)c->id, c->name ? c->name : "", c->proto);
        resp_verbatim(c, line, strlen(line));
    } else if (arg_is(r, 1, "SETNAME") || arg_is(r, 1, "GETNAME") ||
               arg_is(r, 1, "ID") || arg_is(r, 1, "SETINFO") ||
               arg_is(r, 1, "INFO")) {
        resp_error(c, "wrong number of arguments for 'client|%s' command",
                   sub);
    } else {
        resp_error(c, "unknown subcommand '%s'. Try CLIENT HELP.", sub);
    }
    return EXEC_DONE;
}

/* ---- The table -------------------------------------------------------- */

static int do_info(conn *c, req *r);
static int do_command(conn *c, req *r);

static const cmd_def commands[] = {
    {"incr", 2, CMD_INCR, do_incr, 0, "write denyoom fast",
     "@write @string @fast", 1},
    {"incrby", 3, CMD_INCRBY, do_incrby, 0, "write denyoom fast",
     "@write @string @fast", 1},
    {"get", 2, CMD_GET, do_get, 0, "readonly fast", "@read @string @fast", 1},
    {"ping", -1, CMD_PING, do_ping, 0, "fast", "@fast @connection", 0},
    {"echo", 2, CMD_ECHO, do_echo, 0, "fast", "@fast @connection", 0},
    {"hello", -1, CMD_HELLO, do_hello, 1,
     "noscript loading stale fast no_auth allow_busy",
     "@fast @connection", 0},
    {"auth", -2, CMD_AUTH, do_auth, 1,
     "noscript loading stale fast no_auth allow_busy",
     "@fast @connection", 0},
    {"select", 2, CMD_SELECT, do_select, 0, "loading stale fast",
     "@keyspace @fast", 0},
    {"info", -1, CMD_INFO, do_info, 0, "loading stale", "@slow @dangerous",
     0},
    {"client", -2, CMD_CLIENT, do_client, 0, "noscript loading stale",
     "@slow @connection", 0},
    {"command", -1, CMD_COMMAND, do_command, 0, "loading stale",
     "@slow @connection", 0},
    {"quit", -1, CMD_QUIT, do_quit, 1,
     "noscript loading stale fast no_auth allow_busy", "@fast @connection",
     0},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cmd_def *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strlen(commands[i].name) == len &&
            strcasecmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* ---- COMMAND ---------------------------------------------------------- */

/* Writes the words of a space-separated list as a set of simple strings. */
static void word_set(conn *c, const char *list)
{
    size_t n = 0;
    for (const char *p = list; *p != '\0'; p++)
        if (*p != ' ' && (p == list || p[-1] == ' '))
            n++;
    resp_set(c, n);
    for (const char *p = list; *p != '\0';) {
        size_t w = strcspn(p, " ");
        evbuffer_add_printf(c->out, "+%.*s\r\n", (int)w, p);
        p += w;
        p += strspn(p, " ");
    }
}

/* One entry of COMMAND / COMMAND INFO, as Redis 7 lays it out. */
static void command_entry(conn *c, const cmd_def *d)
{
    resp_array(c, 10);
    resp_bulk_str(c, d->name);
    resp_int(c, d->arity);
    word_set(c, d->flags);
    resp_int(c, d->key);
    resp_int(c, d->key);
    resp_int(c, d->key ? 1 : 0);
    word_set(c, d->acl);
    resp_set(c, 0);   /* tips */
    resp_array(c, 0); /* key specs */
    resp_array(c, 0); /* subcommands */
}

static int do_command(conn *c, req *r)
{
    if (r->argc == 1) {
        resp_array(c, NCOMMANDS);
        for (size_t i = 0; i < NCOMMANDS; i++)
            command_entry(c, &commands[i]);
    } else if (arg_is(r, 1, "COUNT") && r->argc == 2) {
        resp_int(c, (long long)NCOMMANDS);
    } else if (arg_is(r, 1, "LIST") && r->argc == 2) {
        resp_array(c, NCOMMANDS);
        for (size_t i = 0; i < NCOMMANDS; i++)
            resp_bulk_str(c, commands[i].name);
    } else if (arg_is(r, 1, "INFO")) {
        resp_array(c, (size_t)(r->argc - 2));
        for (int i = 2; i < r->argc; i++) {
            const cmd_def *d = lookup(r->argv[i], r->lens[i]);
            if (d != NULL)
                command_entry(c, d);
            else
                resp_null(c);
        }
    } else if (arg_is(r, 1, "DOCS")) {
        resp_map(c, 0); /* no docs: redis-cli then shows no hints */
    } else {
        char sub[80];
        resp_quote(sub, sizeof sub, r->argv[1], r->lens[1], 40);
        resp_error(c, "unknown subcommand or wrong number of arguments for "
                   "'%s'. Try COMMAND HELP.", sub);
    }
    return EXEC_DONE;
}

/* ---- INFO ------------------------------------------------------------- */

typedef struct info_ctx {
    struct evbuffer *b;
    size_t shown;
    uint64_t served;
} info_ctx;

/* Past this many counters INFO lists no more (counters_shown says so). */
#define INFO_MAX_COUNTERS 1000

static void info_counter(void *ud, cent *e)
{
    info_ctx *x = ud;
    idp_counter_stats st = {.size = sizeof st};
    if (idp_counter_stats_get(e->ctr, &st) != IDP_OK)
        return;
    x->served += st.ids_served;
    if (x->b == NULL || x->shown >= INFO_MAX_COUNTERS)
        return;
    evbuffer_add_printf(x->b, "counter%zu:name=%s,ids_served=%llu,"
                        "prime_calls=%llu,prefetch_async=%llu,"
                        "waited_calls=%llu,errors=%llu,batch=%llu,"
                        "high=%llu,held=%llu\r\n", x->shown, e->name,
                        (unsigned long long)st.ids_served,
                        (unsigned long long)st.prime_calls,
                        (unsigned long long)st.prefetch_async,
                        (unsigned long long)st.waited_calls,
                        (unsigned long long)st.errors,
                        (unsigned long long)st.batch,
                        (unsigned long long)st.high,
                        (unsigned long long)(e->end - e->next));
    x->shown++;
}

static int want(const char *section, const char *name)
{
    return section == NULL || strcasecmp(section, name) == 0 ||
           strcasecmp(section, "all") == 0 ||
           strcasecmp(section, "everything") == 0 ||
           strcasecmp(section, "default") == 0;
}

#define U(x) ((unsigned long long)atomic_load_explicit(&(x), \
                                                       memory_order_relaxed))

void cmd_info_text(srv *s, struct evbuffer *b, const char *section)
{
    if (want(section, "server"))
        evbuffer_add_printf(b, "# Server\r\nredis_version:%s\r\n"
                            "idprime_version:%s\r\nredis_mode:standalone\r\n"
                            "process_id:%ld\r\ntcp_port:%d\r\n"
                            "uptime_in_seconds:%lld\r\nstore:%s\r\n\r\n",
                            REDIS_COMPAT_VERSION, IDP_VERSION, (long)getpid(),
                            s->port, (long long)(srv_now() - s->started),
                            idp_client_store(s->client));
    if (want(section, "clients"))
        evbuffer_add_printf(b, "# Clients\r\nconnected_clients:%ld\r\n"
                            "maxclients:%u\r\n\r\n", s->nconns,
                            s->o.max_clients);
    if (want(section, "stats")) {
        unsigned long long cmds = 0;
        for (int i = 0; i < CMD_COUNT; i++)
            cmds += U(s->st.commands[i]);
        evbuffer_add_printf(b, "# Stats\r\ntotal_connections_received:%llu\r\n"
                            "rejected_connections:%llu\r\n"
                            "total_commands_processed:%llu\r\n"
                            "total_error_replies:%llu\r\n"
                            "protocol_errors:%llu\r\nclient_timeouts:%llu\r\n"
                            "ids_replied:%llu\r\nforwarded_commands:%llu\r\n"
                            "upstream_errors:%llu\r\n\r\n",
                            U(s->st.conns_total), U(s->st.conns_rejected),
                            cmds, U(s->st.errors_reply),
                            U(s->st.errors_protocol), U(s->st.timeouts),
                            U(s->st.ids_replied), U(s->st.forwarded),
                            U(s->st.upstream_errors));
    }
    if (want(section, "idprime")) {
        info_ctx x = {NULL, 0, 0};
        ctrs_each(s, info_counter, &x); /* the total first */
        evbuffer_add_printf(b, "# Idprime\r\nstore:%s\r\ncounters:%zu\r\n"
                            "ids_served:%llu\r\ncounters_shown:%zu\r\n",
                            idp_client_store(s->client), s->ncounters,
                            (unsigned long long)x.served,
                            s->ncounters < INFO_MAX_COUNTERS
                                ? s->ncounters : (size_t)INFO_MAX_COUNTERS);
        x = (info_ctx){b, 0, 0};
        ctrs_each(s, info_counter, &x);
        evbuffer_add(b, "\r\n", 2);
    }
}

static int do_info(conn *c, req *r)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        resp_error(c, "out of memory");
        return EXEC_DONE;
    }
    if (r->argc == 1) {
        cmd_info_text(c->s, b, NULL);
    } else {
        for (int i = 1; i < r->argc; i++)
            cmd_info_text(c->s, b, r->argv[i]);
    }
    size_t len = evbuffer_get_length(b);
    if (len >= 2) /* Redis's text ends without the last blank line */
        len -= 2;
    const char *text = (const char *)evbuffer_pullup(b, -1);
    resp_verbatim(c, text != NULL ? text : "", text != NULL ? len : 0);
    evbuffer_free(b);
    return EXEC_DONE;
}

/* ---- Dispatch --------------------------------------------------------- */

static void unknown_command(conn *c, req *r)
{
    char args[400] = "";
    size_t used = 0;
    for (int i = 1; i < r->argc && used < 128; i++) {
        int n = snprintf(args + used, sizeof args - used, "'%.*s' ",
                         (int)(128 - used), r->argv[i]);
        if (n < 0)
            break;
        used += (size_t)n < sizeof args - used ? (size_t)n
                                               : sizeof args - used - 1;
    }
    resp_error(c, "unknown command '%.128s', with args beginning with: %s",
               r->argv[0], args);
}

int cmd_exec(conn *c, req *r)
{
    if (c->s->o.upstream != NULL)
        return proxy_exec(c, r);
    return cmd_exec_local(c, r);
}

int cmd_exec_local(conn *c, req *r)
{
    srv *s = c->s;
    const cmd_def *d = lookup(r->argv[0], r->lens[0]);
    if (d == NULL) {
        atomic_fetch_add_explicit(&s->st.commands[CMD_OTHER], 1,
                                  memory_order_relaxed);
        unknown_command(c, r);
        return EXEC_DONE;
    }
    atomic_fetch_add_explicit(&s->st.commands[d->id], 1, memory_order_relaxed);
    if ((d->arity > 0 && r->argc != d->arity) ||
        (d->arity < 0 && r->argc < -d->arity)) {
        wrong_args(c, d->name);
        return EXEC_DONE;
    }
    if (!c->authed && !d->no_auth) {
        resp_error_as(c, "NOAUTH", "Authentication required.");
        return EXEC_DONE;
    }
    return d->fn(c, r);
}
