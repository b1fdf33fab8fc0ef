/*
 * raw_mysql.c - idprime-raw-mysql.so: bare libmariadb for the hot-path
 * comparison, a module of its own so that only the mysql plugin's
 * package depends on libmariadb (raw.h says how raw.c finds it).
 *
 * On the wire it does what plugins/mysql does for one fetch of one
 * counter, and nothing else: the same connection (TCP, or ?socket=; the
 * same client flags, no reconnect, the same init command: autocommit,
 * sql_mode and lock waits from timeout_ms), and per increment the
 * plugin's statement, one round trip, its value read from the OK packet:
 *
 *   INSERT INTO `t` (name, value) VALUES (X'6b6579', LAST_INSERT_ID(1))
 *   ON DUPLICATE KEY UPDATE value = LAST_INSERT_ID(
 *       IF(value <= 9223372036854775807 - 1, value + 1, value))
 *
 * The text is the plugin's (mysql.c ms_sql_incr, mysql.c ms_open's
 * init_sql): keep them the same, or the ratio measures the difference.
 * The statement is built once per key, as a bare client would; the
 * plugin's building it per call is part of what the ratio measures.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "raw.h"

#define EXPORT __attribute__((visibility("default")))
#define RM_MAX_VALUE 9223372036854775807ull

typedef struct rm_conn {
    MYSQL *db;
    char table[65];
    char *key;          /* the key sql is for */
    char *hex;          /* its bytes in hex, as the statement carries them */
    char *sql;
    size_t sql_len;
} rm_conn;

static void rm_close(void *h)
{
    rm_conn *c = h;
    if (c == NULL)
        return;
    if (c->db != NULL)
        mysql_close(c->db);
    free(c->key);
    free(c->hex);
    free(c->sql);
    free(c);
}

/* The table parameter, as the plugin accepts it: a name that needs no
 * quoting. Returns 0, or -1 with msg filled. */
static int rm_table(rm_conn *c, const raw_conninfo *ci, char *msg, size_t len)
{
    const char *t = raw_conninfo_param(ci, "table");
    if (t == NULL)
        t = "idprime_counters";
    size_t n = strlen(t);
    if (n == 0 || n > 64 || strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                                      "klmnopqrstuvwxyz0123456789_$") != n) {
        snprintf(msg, len, "libmariadb: table=%s is not a table name "
                 "(1..64 of [A-Za-z0-9_$])", t);
        return -1;
    }
    memcpy(c->table, t, n + 1);
    return 0;
}

static void *rm_open(const raw_conninfo *ci, char *msg, size_t len)
{
    rm_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->db = mysql_init(NULL)) == NULL) {
        snprintf(msg, len, "libmariadb: out of memory");
        rm_close(c);
        return NULL;
    }
    if (rm_table(c, ci, msg, len) != 0) {
        rm_close(c);
        return NULL;
    }
    const char *sock = raw_conninfo_param(ci, "socket");
    unsigned secs = (ci->timeout_ms + 999u) / 1000u;
    if (secs == 0)
        secs = 1;
    unsigned proto = sock != NULL ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
    my_bool off = 0;
    unsigned no = 0;
    char init[300];
    snprintf(init, sizeof init, "SET SESSION autocommit=1, "
             "sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', "
             "innodb_lock_wait_timeout=%u, lock_wait_timeout=%u", secs, secs);
    mysql_optionsv(c->db, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    mysql_optionsv(c->db, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_optionsv(c->db, MYSQL_OPT_WRITE_TIMEOUT, &secs);
    mysql_optionsv(c->db, MYSQL_OPT_RECONNECT, &off);
    mysql_optionsv(c->db, MYSQL_OPT_LOCAL_INFILE, &no);
    mysql_optionsv(c->db, MYSQL_OPT_PROTOCOL, &proto);
    mysql_optionsv(c->db, MYSQL_INIT_COMMAND, init);
    const char *host = sock != NULL ? "localhost" : ci->host;
    unsigned port = sock != NULL ? 0 : ci->port > 0 ? (unsigned)ci->port : 3306;
    if (mysql_real_connect(c->db, host, ci->user, ci->password, ci->database,
                           port, sock,
                           CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS)
        == NULL) {
        if (sock != NULL)
            snprintf(msg, len, "libmariadb: cannot connect to unix socket "
                     "%s: %s", sock, mysql_error(c->db));
        else
            snprintf(msg, len, "libmariadb: cannot connect to %s:%u: %s",
                     host != NULL ? host : "(default)", port,
                     mysql_error(c->db));
        rm_close(c);
        return NULL;
    }
    return c;
}

/* Builds the increment of key (the plugin's text). Returns 0, or -1 out
 * of memory. */
static int rm_build(rm_conn *c, const char *key)
{
    static const char hex[] = "0123456789abcdef";
    size_t klen = strlen(key);
    size_t cap = 2 * klen + 400;
    char *sql = malloc(cap), *k = strdup(key), *x = malloc(2 * klen + 1);
    if (sql == NULL || k == NULL || x == NULL) {
        free(sql);
        free(k);
        free(x);
        return -1;
    }
    for (size_t i = 0; i < klen; i++) {
        x[2 * i] = hex[(unsigned char)key[i] >> 4];
        x[2 * i + 1] = hex[(unsigned char)key[i] & 15];
    }
    x[2 * klen] = '\0';
    int n = snprintf(sql, cap, "INSERT INTO `%s` (name, value) VALUES "
                     "(X'%s', LAST_INSERT_ID(%d)) ON DUPLICATE KEY UPDATE "
                     "value = LAST_INSERT_ID(IF(value <= %llu - %d, "
                     "value + %d, value))", c->table, x, 1, RM_MAX_VALUE, 1,
                     1);
    free(c->sql);
    free(c->key);
    free(c->hex);
    c->sql = sql;
    c->sql_len = (size_t)n;
    c->key = k;
    c->hex = x;
    return 0;
}

static int rm_query(rm_conn *c, const char *what, const char *sql,
                    size_t sql_len, char *msg, size_t len)
{
    if (mysql_real_query(c->db, sql, (unsigned long)sql_len) == 0)
        return 0;
    snprintf(msg, len, "libmariadb: %s: %s", what, mysql_error(c->db));
    return -1;
}

/* Builds the key's increment and creates its row at 0 where missing (the
 * table exists by now: the engine's open made it). */
static int rm_prepare(void *h, const char *key, char *msg, size_t len)
{
    rm_conn *c = h;
    if (rm_build(c, key) != 0) {
        snprintf(msg, len, "libmariadb: out of memory");
        return -1;
    }
    size_t cap = strlen(c->hex) + 200;
    char *sql = malloc(cap);
    if (sql == NULL) {
        snprintf(msg, len, "libmariadb: out of memory");
        return -1;
    }
    int n = snprintf(sql, cap, "INSERT INTO `%s` (name, value) VALUES "
                     "(X'%s', 0) ON DUPLICATE KEY UPDATE name = name",
                     c->table, c->hex);
    int rc = rm_query(c, "creating the row", sql, (size_t)n, msg, len);
    free(sql);
    return rc;
}

/* HOT: the plugin's increment by 1, one round trip; the value from the OK
 * packet (1 row affected: inserted at 1; 2: updated). */
static int rm_incr(void *h, const char *key, uint64_t *value, char *msg,
                   size_t len)
{
    rm_conn *c = h;
    if ((c->key == NULL || strcmp(c->key, key) != 0) && rm_build(c, key) != 0) {
        snprintf(msg, len, "libmariadb: out of memory");
        return -1;
    }
    if (rm_query(c, "incrementing", c->sql, c->sql_len, msg, len) != 0)
        return -1;
    uint64_t affected = mysql_affected_rows(c->db);
    if (affected != 1 && affected != 2) {
        snprintf(msg, len, "libmariadb: incrementing '%s' affected %" PRIu64
                 " rows (0: the value is at 2^63-1)", key, affected);
        return -1;
    }
    *value = mysql_insert_id(c->db);
    return 0;
}

static const raw_module rm_module = {
    .version = RAW_MODULE_VERSION,
    .size = sizeof(raw_module),
    .client = "libmariadb",
    .open = rm_open,
    .prepare = rm_prepare,
    .incr = rm_incr,
    .close = rm_close,
};

EXPORT const raw_module *idprime_raw_entry(void)
{
    return &rm_module;
}
