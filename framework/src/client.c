/*
 * client.c - the public API around the engine: opening a client (URI,
 * parameters, plugin, store, worker), counters by name, and the calls that
 * go straight to the store (get, raise, list, control).
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
    idp_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        idp_seterr(err, IDP_ENOMEM, "out of memory");
        return NULL;
    }
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
    plugin_lib lib = {0};
    char shown[160];
    int rc = uri_parse(uri, &c->uri, &e);
    if (rc == IDP_OK)
        rc = dispatcher_load(opt, c->uri.pub.scheme, &lib, &e);
    if (rc == IDP_OK) {
        rc = options_build(&c->cfg, &c->uri, extra, lib.tab->params,
                           lib.tab->name, &e);
        if (rc != IDP_OK)
            idp_prefixerr(&e, "URI '%s'", uri_redact(uri, shown, sizeof shown));
    }
    if (rc == IDP_OK)
        rc = store_open(&c->st, &lib, &c->uri, &c->cfg, c->log, c->log_ud, &e);
    if (rc != IDP_OK) {
        dispatcher_unload(&lib);
        options_free(&c->cfg);
        uri_free(&c->uri);
        free(c);
        put_err(err, &e);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    if ((rc = engine_start(c, &e)) != IDP_OK) {
        put_err(err, &e);
        pthread_mutex_destroy(&c->mu);
        store_close(&c->st);
        options_free(&c->cfg);
        uri_free(&c->uri);
        free(c);
        return NULL;
    }
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
    engine_stop(c);
    store_close(&c->st);
    for (idp_counter *k = c->counters, *next; k != NULL; k = next) {
        next = k->next;
        engine_counter_destroy(k);
        free(k->name);
        free(k->key);
        free(k);
    }
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

API idp_counter *idp_counter_get(idp_client *c, const char *name, idp_error *err)
{
    char *key = make_key(c, name, err);
    if (key == NULL)
        return NULL;
    pthread_mutex_lock(&c->mu);
    idp_counter *k;
    for (k = c->counters; k != NULL; k = k->next)
        if (strcmp(k->name, name) == 0)
            break;
    if (k == NULL) {
        /* the leases are aligned to their own cache lines */
        void *mem = NULL;
        k = posix_memalign(&mem, _Alignof(idp_counter), sizeof *k) == 0
                ? memset(mem, 0, sizeof *k) : NULL;
        char *copy = strdup(name);
        if (k == NULL || copy == NULL) {
            free(k);
            free(copy);
            pthread_mutex_unlock(&c->mu);
            free(key);
            idp_seterr(err, IDP_ENOMEM, "out of memory");
            return NULL;
        }
        counter_cfg cfg = options_counter(&c->cfg, name);
        engine_counter_init(k, c, &cfg);
        k->name = copy;
        k->key = key;
        key = NULL;
        k->next = c->counters;
        c->counters = k;
    }
    pthread_mutex_unlock(&c->mu);
    free(key);
    return k;
}

API int idp_get(idp_client *c, const char *name, uint64_t *value, int *exists,
                idp_error *err)
{
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
    list_ctx l = {fn, ud, strlen(c->cfg.prefix)};
    return store_list(&c->st, c->cfg.prefix, list_cb, &l, err);
}

API int idp_control(idp_client *c, const char *command, idp_error *err)
{
    return store_control(&c->st, command, err);
}

API int idp_store_roundtrips(idp_client *c, uint64_t *count, idp_error *err)
{
    return store_roundtrips(&c->st, count, err);
}

API const char *idp_client_store(const idp_client *c)
{
    return c->st.lib.tab->name;
}

API void idp_counter_stats_get(idp_counter *ctr, idp_counter_stats *out)
{
    engine_stats(ctr, out, NULL);
}
