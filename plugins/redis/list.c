/*
 * list.c - listing counters: SCAN MATCH with the prefix's glob characters
 * escaped, the keys sorted and de-duplicated (SCAN may return a key
 * twice), then their values read with MGET in chunks. redis-cluster scans
 * every master with rd_scan and reads the values itself.
 */
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

/* Keys asked for per SCAN step and values per MGET. */
#define RD_SCAN_COUNT "1000"
#define RD_MGET_CHUNK 1000

void rd_keys_free(rd_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
}

static int rd_keys_add(rd_keys *k, const char *key, size_t len)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        char **v = realloc(k->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        k->v = v;
        k->cap = cap;
    }
    if ((k->v[k->n] = strndup(key, len)) == NULL)
        return -1;
    k->n++;
    return 0;
}

static int rd_keycmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* `prefix` with the glob characters of SCAN MATCH escaped, then '*'. */
static char *rd_match_pattern(const char *prefix)
{
    char *p = malloc(strlen(prefix) * 2 + 2), *w = p;
    if (p == NULL)
        return NULL;
    for (; *prefix != '\0'; prefix++) {
        if (strchr("*?[]\\", *prefix) != NULL)
            *w++ = '\\';
        *w++ = *prefix;
    }
    *w++ = '*';
    *w = '\0';
    return p;
}

/* Every key of one server under the prefix, appended to keys unsorted
 * (SCAN may return a key twice while the keyspace is rehashed: rd_keys_sort
 * removes those). */
int rd_scan(rd_store *s, const char *prefix, rd_keys *keys, idp_error *err)
{
    char *match = rd_match_pattern(prefix);
    if (match == NULL)
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    size_t plen = strlen(prefix);
    char cursor[32] = "0", shown[64];
    int rc = IDP_OK;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT",
                              RD_SCAN_COUNT};
        redisReply *r;
        if ((rc = rd_cmd(s, "SCAN", 6, argv, &r, err)) != IDP_OK)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = idp_plugin_error(err, IDP_ESTORE, "SCAN on %s answered %s, "
                                  "not [cursor, keys]", s->where,
                                  rd_describe(r, shown, sizeof shown));
            freeReplyObject(r);
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        const redisReply *page = r->element[1];
        for (size_t i = 0; i < page->elements && rc == IDP_OK; i++) {
            const redisReply *k = page->element[i];
            /* a key with a NUL byte cannot be a counter name */
            if (k->type != REDIS_REPLY_STRING || k->len < plen ||
                memcmp(k->str, prefix, plen) != 0 ||
                memchr(k->str, '\0', k->len) != NULL)
                continue;
            if (rd_keys_add(keys, k->str, k->len) != 0)
                rc = idp_plugin_error(err, IDP_ENOMEM, "out of memory");
        }
        freeReplyObject(r);
    } while (rc == IDP_OK && strcmp(cursor, "0") != 0);
    free(match);
    return rc;
}

/* Sorts the keys and removes duplicates. */
void rd_keys_sort(rd_keys *keys)
{
    qsort(keys->v, keys->n, sizeof *keys->v, rd_keycmp);
    size_t n = 0;
    for (size_t i = 0; i < keys->n; i++) {
        if (n > 0 && strcmp(keys->v[n - 1], keys->v[i]) == 0)
            free(keys->v[i]);
        else
            keys->v[n++] = keys->v[i];
    }
    keys->n = n;
}

int rd_list_value(const rd_store *s, const char *key, const redisReply *v,
                  idp_list_cb cb, void *ud)
{
    char shown[64];
    uint64_t value;
    if (v->type != REDIS_REPLY_STRING)
        return 0;
    if (rd_parse_value(v->str, v->len, &value) != 0) {
        s->host->log(s->host, IDP_LOG_WARN, "'%s' on %s holds %s, not a "
                     "counter value: skipped", key, s->where,
                     rd_describe(v, shown, sizeof shown));
        return 0;
    }
    return cb(ud, key, value);
}

/*
 * SCAN MATCH prefix*, then MGET the keys in chunks and call cb for each
 * counter. A key deleted meanwhile, or not a string, is skipped; a string
 * that is not a counter value is skipped with a warning.
 */
int rd_list(void *store, const char *prefix, idp_list_cb cb, void *ud,
            idp_error *err)
{
    rd_store *s = store;
    rd_keys keys = {0};
    int rc = rd_ready(s, err);
    if (rc != IDP_OK || (rc = rd_scan(s, prefix, &keys, err)) != IDP_OK) {
        rd_keys_free(&keys);
        return rc;
    }
    rd_keys_sort(&keys);
    const char **argv = calloc(RD_MGET_CHUNK + 1, sizeof *argv);
    if (argv == NULL) {
        rd_keys_free(&keys);
        return idp_plugin_error(err, IDP_ENOMEM, "out of memory");
    }
    argv[0] = "MGET";
    char shown[64];
    for (size_t at = 0; at < keys.n && rc == IDP_OK; at += RD_MGET_CHUNK) {
        size_t n = keys.n - at < RD_MGET_CHUNK ? keys.n - at : RD_MGET_CHUNK;
        memcpy(argv + 1, keys.v + at, n * sizeof *argv);
        redisReply *r;
        if ((rc = rd_cmd(s, "MGET", (int)n + 1, argv, &r, err)) != IDP_OK)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
            rc = idp_plugin_error(err, IDP_ESTORE, "MGET of %zu keys on %s "
                                  "answered %s", n, s->where,
                                  rd_describe(r, shown, sizeof shown));
            freeReplyObject(r);
            break;
        }
        for (size_t i = 0; i < n && rc == IDP_OK; i++)
            rc = rd_list_value(s, keys.v[at + i], r->element[i], cb, ud);
        freeReplyObject(r);
    }
    free(argv);
    rd_keys_free(&keys);
    return rc;
}
