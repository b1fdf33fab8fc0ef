/*
 * client.c - the public API around the engine: opening a client (URI,
 * parameters, plugin, store), counters by name in a hash table, and the
 * calls that go straight to the store (get, raise, list, control).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void put_err(idp_error *dst, const idp_error *src)
{
    if (dst != NULL)
        *dst = *src;
}

/* prime=a,b: fetches those counters' first batches now, in one store call.
 * With metaprime=0 there is no pool to fill: nothing to do. */
static int prime(idp_client *c, idp_error *err)
{
    const char *list = c->cfg.prime;
    if (list[0] == '\0' || c->cfg.metaprime == 0)
        return IDP_OK;
    size_t n = 1;
    for (const char *p = list; *p != '\0'; p++)
        n += *p == ',';
    idp_counter **cs = calloc(n, sizeof *cs);
    if (cs == NULL)
        return idp_seterr(err, IDP_ENOMEM, "out of memory");
    int rc = IDP_OK;
    size_t k = 0;
    for (const char *p = list; rc == IDP_OK && *p != '\0';) {
        size_t len = strcspn(p, ",");
        char name[IDP_NAME_MAX + 1];
        memcpy(name, p, len); /* options_build checked every name */
        name[len] = '\0';
        idp_counter *ctr = idp_counter_get(c, name, err);
        if (ctr == NULL)
            rc = err->code;
        int seen = 0;
        for (size_t i = 0; i < k; i++)
            seen |= cs[i] == ctr;
        if (ctr != NULL && !seen)
            cs[k++] = ctr;
        p += len + (p[len] == ',');
    }
    if (rc == IDP_OK)
        rc = engine_prime(c, cs, k, err);
    free(cs);
    return rc;
}

API idp_client *idp_open(const char *uri, const idp_options *opt,
                         idp_error *err)
{
    idp_error e = {0, ""};
    if (uri == NULL) {
        idp_seterr(err, IDP_EINVAL, "idp_open: the URI is NULL");
        return NULL;
    }
    fork_init();
    idp_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        idp_seterr(err, IDP_ENOMEM, "out of memory");
        return NULL;
    }
    c->uid = next_uid();
    atomic_store(&c->epoch, atomic_load(&fork_epoch));
    if (opt != NULL && opt->size >= offsetof(idp_options, log_ud) + sizeof(void *)) {
        c->log = opt->log;
        c->log_ud = opt->log_ud;
    }
    const char *const *extra = NULL;
    if (opt != NULL && opt->size >= offsetof(idp_options, params) + sizeof(void *))
        extra = opt->params;
    if (opt != NULL && opt->size >= offsetof(idp_options, policy_ud) + sizeof(void *)) {
        c->policy = opt->policy;
        c->policy_ud = opt->policy_ud;
    }
    const plugin_lib *lib = NULL;
    char shown[160];
    int rc = uri_parse(uri, &c->uri, &e);
    if (rc == IDP_OK)
        rc = dispatcher_load(opt, c->uri.pub.scheme, &lib, &e);
    if (rc == IDP_OK) {
        rc = options_build(&c->cfg, &c->uri, extra, lib->params,
                           lib->tab->name, &e);
        if (rc != IDP_OK)
            idp_prefixerr(&e, "URI '%s'", uri_redact(uri, shown, sizeof shown));
    }
    if (rc == IDP_OK && (c->cell = cell_get(c->uid)) == NULL)
        rc = idp_seterr(&e, IDP_ENOMEM, "out of memory");
    if (rc == IDP_OK)
        rc = store_open(&c->st, lib, &c->uri, &c->cfg, c->log, c->log_ud, &e);
    if (rc != IDP_OK) {
        if (c->cell != NULL)
            cell_put(c->cell);
        options_free(&c->cfg);
        uri_free(&c->uri);
        free(c);
        put_err(err, &e);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    engine_start(c);
    if ((rc = prime(c, &e)) != IDP_OK) {
        idp_prefixerr(&e, "URI '%s': prime", uri_redact(uri, shown, sizeof shown));
        put_err(err, &e);
        idp_close(c);
        return NULL;
    }
    return c;
}

API void idp_close(idp_client *c)
{
    if (c == NULL)
        return;
    fork_check(c);
    engine_stop(c);
    engine_give_back(c);
    cell_put(c->cell);
    store_close(&c->st);
    for (size_t b = 0; b < c->nbuckets; b++) {
        for (idp_counter *k = c->table[b], *next; k != NULL; k = next) {
            next = k->hnext;
            engine_counter_destroy(k);
            free(k->key);
            free(k);
        }
    }
    free(c->table);
    pthread_mutex_destroy(&c->mu);
    options_free(&c->cfg);
    uri_free(&c->uri);
    free(c);
}

/* prefix + name, or NULL with err filled. */
static char *make_key(const idp_client *c, const char *name, idp_error *err)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (name == NULL || !options_valid_name(name, len)) {
        idp_seterr(err, IDP_EINVAL, "bad counter name '%.60s' (expected "
                   "[A-Za-z0-9_.:-], 1..%d bytes)", name ? name : "(null)",
                   IDP_NAME_MAX);
        return NULL;
    }
    size_t plen = strlen(c->cfg.prefix);
    char *key = malloc(plen + len + 1);
    if (key == NULL) {
        idp_seterr(err, IDP_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(key, c->cfg.prefix, plen);
    memcpy(key + plen, name, len + 1);
    return key;
}

/* FNV-1a: names are short, and a client's names are its own. */
static size_t name_hash(const char *name)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return (size_t)(h ^ (h >> 29));
}

/* Doubles the table when it is full. Called with c->mu held; on failure
 * the table stays as it was (only longer chains). */
static void table_grow(idp_client *c)
{
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
    idp_counter **t = calloc(n, sizeof *t);
    if (t == NULL)
        return;
    for (size_t b = 0; b < c->nbuckets; b++) {
        for (idp_counter *k = c->table[b], *next; k != NULL; k = next) {
            next = k->hnext;
            size_t i = name_hash(k->name) & (n - 1);
            k->hnext = t[i];
            t[i] = k;
        }
    }
    free(c->table);
    c->table = t;
    c->nbuckets = n;
}

API idp_counter *idp_counter_get(idp_client *c, const char *name, idp_error *err)
{
    if (c == NULL) {
        idp_seterr(err, IDP_EINVAL, "idp_counter_get: the client is NULL");
        return NULL;
    }
    fork_check(c);
    char *key = make_key(c, name, err);
    if (key == NULL)
        return NULL;
    size_t h = name_hash(name);
    pthread_mutex_lock(&c->mu);
    idp_counter *k = NULL;
    if (c->nbuckets > 0)
        for (k = c->table[h & (c->nbuckets - 1)]; k != NULL; k = k->hnext)
            if (strcmp(k->name, name) == 0)
                break;
    if (k == NULL) {
        if (c->ncounters >= c->nbuckets)
            table_grow(c);
        size_t len = strlen(name);
        k = c->nbuckets > 0 ? calloc(1, sizeof *k + len + 1) : NULL;
        if (k == NULL) {
            pthread_mutex_unlock(&c->mu);
            free(key);
            idp_seterr(err, IDP_ENOMEM, "out of memory");
            return NULL;
        }
        memcpy(k->name, name, len + 1);
        counter_cfg cfg = options_counter(&c->cfg, name);
        engine_counter_init(k, c, &cfg);
        k->uid = next_uid();
        k->key = key;
        key = NULL;
        size_t b = h & (c->nbuckets - 1);
        k->hnext = c->table[b];
        c->table[b] = k;
        c->ncounters++;
    }
    pthread_mutex_unlock(&c->mu);
    free(key);
    return k;
}

/* A NULL handle or out-pointer given by mistake: IDP_EINVAL, named. */
#define NEED(p, what, call)                                                  \
    do {                                                                     \
        if ((p) == NULL)                                                     \
            return idp_seterr(err, IDP_EINVAL, "%s: %s is NULL", call, what); \
    } while (0)

API int idp_get(idp_client *c, const char *name, uint64_t *value, int *exists,
                idp_error *err)
{
    NEED(c, "the client", "idp_get");
    NEED(value, "the value pointer", "idp_get");
    fork_check(c);
    char *key = make_key(c, name, err);
    if (key == NULL)
        return err != NULL ? err->code : IDP_EINVAL;
    int ex = 0;
    uint64_t v = 0;
    int rc = store_get(&c->st, key, &v, &ex, err);
    free(key);
    if (rc != IDP_OK)
        return rc;
    *value = ex ? v : 0;
    if (exists != NULL)
        *exists = ex;
    return IDP_OK;
}

API int idp_raise(idp_client *c, const char *name, uint64_t value,
                  uint64_t *result, idp_error *err)
{
    if (value > IDP_MAX_VALUE)
        return idp_seterr(err, IDP_ERANGE, "raise of '%s' to %llu: counters "
                          "stay below 2^63", name ? name : "(null)",
                          (unsigned long long)value);
    NEED(c, "the client", "idp_raise");
    fork_check(c);
    char *key = make_key(c, name, err);
    if (key == NULL)
        return err != NULL ? err->code : IDP_EINVAL;
    uint64_t r = 0;
    int rc = store_raise(&c->st, key, value, &r, err);
    free(key);
    if (rc == IDP_OK && result != NULL)
        *result = r;
    return rc;
}

typedef struct list_ctx {
    idp_list_fn fn;
    void *ud;
    size_t plen;
} list_ctx;

static int list_cb(void *ud, const char *key, uint64_t value)
{
    list_ctx *l = ud;
    const char *name = key + l->plen;
    if (!options_valid_name(name, strlen(name)))
        return 0; /* not one of ours */
    return l->fn(l->ud, name, value);
}

API int idp_list(idp_client *c, idp_list_fn fn, void *ud, idp_error *err)
{
    NEED(c, "the client", "idp_list");
    NEED(fn, "the callback", "idp_list");
    fork_check(c);
    list_ctx l = {fn, ud, strlen(c->cfg.prefix)};
    return store_list(&c->st, c->cfg.prefix, list_cb, &l, err);
}

API int idp_control(idp_client *c, const char *command, idp_error *err)
{
    NEED(c, "the client", "idp_control");
    NEED(command, "the command", "idp_control");
    fork_check(c);
    return store_control(&c->st, command, err);
}

API int idp_store_roundtrips(idp_client *c, uint64_t *count, idp_error *err)
{
    NEED(c, "the client", "idp_store_roundtrips");
    NEED(count, "the count pointer", "idp_store_roundtrips");
    fork_check(c);
    return store_roundtrips(&c->st, count, err);
}

API const char *idp_client_store(const idp_client *c)
{
    return c != NULL ? c->st.lib->tab->name : NULL;
}

API int idp_counter_stats_get(idp_counter *ctr, idp_counter_stats *out)
{
    /* no idp_error here: the message has nowhere to go */
    if (ctr == NULL || out == NULL ||
        out->size < offsetof(idp_counter_stats, ids_served) + sizeof(uint64_t))
        return IDP_EINVAL;
    fork_check(ctr->client);
    engine_stats(ctr, out);
    return IDP_OK;
}
