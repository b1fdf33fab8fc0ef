/*
 * options.c - one table of engine parameters (key, type, default, range,
 * target field, help) read by parsing, validation and --help alike; plugin
 * parameters are checked by the same code from the plugin's own table.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define API __attribute__((visibility("default")))

/* Client-wide keys set a field of engine_cfg; counter keys set a field of
 * counter_cfg, as "key" for every counter or "NAME_key" for one. */
enum scope { CLIENT, COUNTER };

typedef struct opt_row {
    idp_param_spec spec;
    enum scope scope;
    size_t off;
} opt_row;

#define INT_ROW(k, d, lo, hi, sc, field, h) \
    {{k, IDP_PARAM_INT, d, lo, hi, NULL, h}, sc, field}

static const opt_row engine_rows[] = {
    INT_ROW("metaprime", "1", 0, 1, CLIENT, offsetof(engine_cfg, metaprime),
            "1: batching; 0: one store round trip per allocation"),
    INT_ROW("batch", "256", 1, IDP_MAX_BATCH, COUNTER,
            offsetof(counter_cfg, batch),
            "IDs fetched per store round trip"),
    INT_ROW("low_watermark", "25", 0, 100, COUNTER,
            offsetof(counter_cfg, low_watermark),
            "fetch the next batch in the background when this percent of "
            "the batch is left (0: only when the pool is empty)"),
    INT_ROW("adaptive", "1", 0, 1, COUNTER, offsetof(counter_cfg, adaptive),
            "1: the batch grows with the measured demand (batch is the "
            "floor); 0: every batch is exactly batch"),
    INT_ROW("max_batch", "65536", 1, IDP_MAX_BATCH, COUNTER,
            offsetof(counter_cfg, max_batch),
            "the largest batch adaptive sizing may choose (never below "
            "batch)"),
    INT_ROW("give_back", "1", 0, 1, CLIENT, offsetof(engine_cfg, give_back),
            "1: a clean close gives the unserved rest of the last batch "
            "back to the store when nobody fetched after it; 0: it is a gap"),
    INT_ROW("timeout_ms", "2000", 1, 3600000, CLIENT,
            offsetof(engine_cfg, timeout_ms), "connect and command timeout"),
    {{"prefix", IDP_PARAM_STR, "", 0, 0, NULL,
      "prepended to every store key"}, CLIENT, offsetof(engine_cfg, prefix)},
    {{"prime", IDP_PARAM_STR, "", 0, 0, NULL,
      "counters fetched when the client opens, comma-separated "
      "(e.g. inode,chunk), in one round trip where the store allows"},
     CLIENT, offsetof(engine_cfg, prime)},
};
#define NROWS (sizeof engine_rows / sizeof engine_rows[0])

/* Per-counter defaults that differ from the general ones (docs/design.md). */
static const char *const builtin_params[] = {
    "inode_batch=256", "chunk_batch=2048", NULL
};

int options_valid_name(const char *name, size_t len)
{
    if (len == 0 || len > IDP_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static int choice_ok(const char *choices, const char *v)
{
    size_t vlen = strlen(v);
    for (const char *p = choices; *p != '\0';) {
        size_t n = strcspn(p, "|");
        if (n == vlen && strncmp(p, v, n) == 0)
            return 1;
        p += n;
        if (*p == '|')
            p++;
    }
    return 0;
}

int options_check(const idp_param_spec *spec, const char *key,
                  const char *value, int64_t *num, idp_error *err)
{
    switch (spec->type) {
    case IDP_PARAM_STR:
        return IDP_OK;
    case IDP_PARAM_ENUM:
        if (!choice_ok(spec->choices, value))
            return idp_seterr(err, IDP_EINVAL, "parameter '%s': '%s' is not "
                              "allowed (expected one of %s)", key, value,
                              spec->choices);
        return IDP_OK;
    case IDP_PARAM_INT: {
        const char *p = value;
        int neg = *p == '-';
        if (neg)
            p++;
        if (*p < '0' || *p > '9')
            goto nan;
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            unsigned d = (unsigned)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                goto range;
            v = v * 10 + d;
        }
        if (*p != '\0')
            goto nan;
        /* a negative number reaches INT64_MIN, one more than INT64_MAX */
        if (v > (uint64_t)INT64_MAX + (uint64_t)neg)
            goto range;
        int64_t s = !neg ? (int64_t)v
                    : v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
        if (s < spec->min || s > spec->max)
            goto range;
        if (num != NULL)
            *num = s;
        return IDP_OK;
    }
    }
    return idp_seterr(err, IDP_EINVAL, "parameter '%s': bad type", key);
nan:
    return idp_seterr(err, IDP_EINVAL, "parameter '%s': '%s' is not a whole "
                      "number (allowed %lld..%lld)", key, value,
                      (long long)spec->min, (long long)spec->max);
range:
    return idp_seterr(err, IDP_EINVAL, "parameter '%s': %s is out of range "
                      "(allowed %lld..%lld)", key, value,
                      (long long)spec->min, (long long)spec->max);
}

int options_check_specs(const idp_param_spec *specs, idp_error *err)
{
    for (const idp_param_spec *s = specs; s != NULL && s->key != NULL; s++) {
        if (!options_valid_name(s->key, strlen(s->key)))
            return idp_seterr(err, IDP_EPLUGIN, "parameter key '%s' is not a "
                              "valid name", s->key);
        /* "batch", and "NAME_batch" too: apply() gives a key to the
         * plugin first, so such a key would take the engine's setting of
         * counter NAME (the built-in inode_batch=256 included) */
        size_t kl = strlen(s->key);
        for (size_t i = 0; i < NROWS; i++) {
            const char *ek = engine_rows[i].spec.key;
            size_t el = strlen(ek);
            if (strcmp(s->key, ek) == 0)
                return idp_seterr(err, IDP_EPLUGIN, "parameter '%s' is an "
                                  "engine key", s->key);
            if (engine_rows[i].scope == COUNTER && kl >= el + 2 &&
                s->key[kl - el - 1] == '_' &&
                strcmp(s->key + kl - el, ek) == 0)
                return idp_seterr(err, IDP_EPLUGIN, "parameter '%s' is an "
                                  "engine key (NAME_%s sets %s of counter "
                                  "NAME)", s->key, ek, ek);
        }
        for (const idp_param_spec *t = specs; t != s; t++)
            if (strcmp(t->key, s->key) == 0)
                return idp_seterr(err, IDP_EPLUGIN, "parameter '%s' is "
                                  "declared twice", s->key);
        switch (s->type) {
        case IDP_PARAM_INT:
            if (s->min > s->max)
                return idp_seterr(err, IDP_EPLUGIN, "parameter '%s': min > "
                                  "max", s->key);
            break;
        case IDP_PARAM_ENUM:
            if (s->choices == NULL || s->choices[0] == '\0')
                return idp_seterr(err, IDP_EPLUGIN, "parameter '%s': enum "
                                  "without choices", s->key);
            break;
        case IDP_PARAM_STR:
            break;
        default:
            return idp_seterr(err, IDP_EPLUGIN, "parameter '%s': unknown "
                              "type %d", s->key, (int)s->type);
        }
        if (s->def != NULL) {
            int rc = options_check(s, s->key, s->def, NULL, err);
            if (rc != IDP_OK) {
                /* not idp_prefixerr's answer: IDP_OK when err is NULL */
                idp_prefixerr(err, "bad default");
                return rc;
            }
        }
    }
    return IDP_OK;
}

static int set_field(void *base, const opt_row *row, const char *value,
                     int64_t num)
{
    char *field = (char *)base + row->off;
    if (row->spec.type == IDP_PARAM_STR) {
        char *copy = strdup(value);
        if (copy == NULL)
            return IDP_ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
    } else {
        *(int64_t *)field = num;
    }
    return IDP_OK;
}

static counter_override *override_for(engine_cfg *cfg, const char *name,
                                      size_t len)
{
    for (size_t i = 0; i < cfg->ncounters; i++)
        if (strlen(cfg->counters[i].name) == len &&
            memcmp(cfg->counters[i].name, name, len) == 0)
            return &cfg->counters[i];
    counter_override *grown = realloc(cfg->counters,
                                      (cfg->ncounters + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    cfg->counters = grown;
    counter_override *o = &grown[cfg->ncounters];
    memset(o, 0, sizeof *o);
    if ((o->name = strndup(name, len)) == NULL)
        return NULL;
    cfg->ncounters++;
    return o;
}

static int set_plugin(engine_cfg *cfg, const idp_param_spec *spec,
                      const char *value)
{
    for (size_t i = 0; i < cfg->nplugin; i++) {
        if (cfg->plugin[i].spec == spec) {
            char *copy = strdup(value);
            if (copy == NULL)
                return IDP_ENOMEM;
            free(cfg->plugin[i].value);
            cfg->plugin[i].value = copy;
            return IDP_OK;
        }
    }
    plugin_value *grown = realloc(cfg->plugin, (cfg->nplugin + 1) * sizeof *grown);
    if (grown == NULL)
        return IDP_ENOMEM;
    cfg->plugin = grown;
    if ((grown[cfg->nplugin].value = strdup(value)) == NULL)
        return IDP_ENOMEM;
    grown[cfg->nplugin++].spec = spec;
    return IDP_OK;
}

/* Lists the keys a user may give, for the "unknown parameter" message. */
static void known_keys(char *buf, size_t len, const idp_param_spec *plugin,
                       const char *plugin_name)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, len - n, "engine keys are");
    for (size_t i = 0; i < NROWS && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s %s", i ? "," : "",
                              engine_rows[i].spec.key);
    for (size_t i = 0; i < NROWS && n < len; i++)
        if (engine_rows[i].scope == COUNTER)
            n += (size_t)snprintf(buf + n, len - n, ", NAME_%s",
                                  engine_rows[i].spec.key);
    if (plugin != NULL && plugin->key != NULL && n < len) {
        n += (size_t)snprintf(buf + n, len - n, "; %s keys are", plugin_name);
        for (const idp_param_spec *s = plugin; s->key != NULL && n < len; s++)
            n += (size_t)snprintf(buf + n, len - n, "%s %s",
                                  s == plugin ? "" : ",", s->key);
    }
}

/* The engine row of `key`: "batch" itself, or NAME_key for a per-counter
 * key, the longest key winning ("inode_max_batch" is max_batch of inode,
 * not batch of inode_max); *nlen is then NAME's length (0 for a plain
 * key). NULL when no engine key matches. */
static const opt_row *find_row(const char *key, size_t *nlen)
{
    *nlen = 0;
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(engine_rows[i].spec.key, key) == 0)
            return &engine_rows[i];
    size_t klen = strlen(key);
    const opt_row *row = NULL;
    for (size_t i = 0; i < NROWS; i++) {
        const opt_row *r = &engine_rows[i];
        size_t slen = strlen(r->spec.key);
        if (r->scope == COUNTER && klen >= slen + 2 &&
            key[klen - slen - 1] == '_' &&
            strcmp(key + klen - slen, r->spec.key) == 0 &&
            (row == NULL || slen > strlen(row->spec.key)))
            row = r;
    }
    if (row != NULL)
        *nlen = klen - strlen(row->spec.key) - 1;
    return row;
}

static int check_prime(const char *list, idp_error *err);

/* A per-counter key's NAME part must be a counter name. */
static int check_name_part(const char *key, size_t nlen, idp_error *err)
{
    if (nlen > 0 && !options_valid_name(key, nlen))
        return idp_seterr(err, IDP_EINVAL, "parameter '%s': '%.*s' is not "
                          "a valid counter name ([A-Za-z0-9_.:-], 1..%d "
                          "bytes)", key, (int)nlen, key, IDP_NAME_MAX);
    return IDP_OK;
}

API int idp_check_param(const char *key, const char *value, idp_error *err)
{
    if (key == NULL)
        return idp_seterr(err, IDP_EINVAL, "idp_check_param: the key is NULL");
    size_t nlen = 0;
    const opt_row *row = find_row(key, &nlen);
    if (row == NULL)
        return idp_seterr(err, IDP_EUNSUPPORTED, "parameter '%s' is not an "
                          "engine key (a store's key is checked when the "
                          "store opens)", key);
    int rc = check_name_part(key, nlen, err);
    if (rc != IDP_OK || value == NULL)
        return rc;
    if ((rc = options_check(&row->spec, key, value, NULL, err)) != IDP_OK)
        return rc;
    return strcmp(row->spec.key, "prime") == 0 ? check_prime(value, err)
                                               : IDP_OK;
}

API int idp_valid_name(const char *name, size_t len)
{
    return name != NULL && options_valid_name(name, len);
}

static int apply(engine_cfg *cfg, const char *key, const char *value,
                 const idp_param_spec *plugin, const char *plugin_name,
                 idp_error *err)
{
    int64_t num = 0;
    int rc;
    for (const idp_param_spec *s = plugin; s != NULL && s->key != NULL; s++) {
        if (strcmp(s->key, key) == 0) {
            if ((rc = options_check(s, key, value, NULL, err)) != IDP_OK)
                return rc;
            if (set_plugin(cfg, s, value) != IDP_OK)
                return idp_seterr(err, IDP_ENOMEM, "out of memory");
            return IDP_OK;
        }
    }
    size_t nlen = 0;
    const opt_row *row = find_row(key, &nlen);
    if (row != NULL && nlen == 0) {
        if ((rc = options_check(&row->spec, key, value, &num, err)) != IDP_OK)
            return rc;
        void *base = row->scope == CLIENT ? (void *)cfg : (void *)&cfg->defaults;
        if (set_field(base, row, value, num) != IDP_OK)
            return idp_seterr(err, IDP_ENOMEM, "out of memory");
        return IDP_OK;
    }
    if (row != NULL) {
        if ((rc = check_name_part(key, nlen, err)) != IDP_OK ||
            (rc = options_check(&row->spec, key, value, &num, err)) != IDP_OK)
            return rc;
        counter_override *o = override_for(cfg, key, nlen);
        if (o == NULL || set_field(&o->cfg, row, value, num) != IDP_OK)
            return idp_seterr(err, IDP_ENOMEM, "out of memory");
        o->set |= 1u << (row->off / sizeof(int64_t));
        return IDP_OK;
    }
    char known[400];
    known_keys(known, sizeof known, plugin, plugin_name);
    return idp_seterr(err, IDP_EINVAL, "unknown parameter '%s' (%s)", key, known);
}

static int apply_text(engine_cfg *cfg, const char *kv,
                      const idp_param_spec *plugin, const char *plugin_name,
                      idp_error *err)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return idp_seterr(err, IDP_EINVAL, "parameter '%s': expected "
                          "key=value", kv);
    char key[256];
    if ((size_t)(eq - kv) >= sizeof key)
        return idp_seterr(err, IDP_EINVAL, "parameter key too long: '%.40s...'", kv);
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    return apply(cfg, key, eq + 1, plugin, plugin_name, err);
}

/* prime=a,b,c: every name a valid counter name. */
static int check_prime(const char *list, idp_error *err)
{
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (!options_valid_name(p, n))
            return idp_seterr(err, IDP_EINVAL, "parameter 'prime': '%.*s' is "
                              "not a valid counter name ([A-Za-z0-9_.:-], "
                              "1..%d bytes, comma-separated)", (int)(n > 60 ? 60 : n), p,
                              IDP_NAME_MAX);
        p += n;
        if (*p == ',' && *++p == '\0')
            return idp_seterr(err, IDP_EINVAL, "parameter 'prime': a trailing "
                              "comma (expected NAME[,NAME...])");
    }
    return IDP_OK;
}

int options_build(engine_cfg *cfg, const uri_parsed *u,
                  const char *const *extra, const idp_param_spec *plugin,
                  const char *plugin_name, idp_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = IDP_OK;
    for (size_t i = 0; i < NROWS && rc == IDP_OK; i++) {
        const opt_row *row = &engine_rows[i];
        int64_t num = 0;
        options_check(&row->spec, row->spec.key, row->spec.def, &num, NULL);
        void *base = row->scope == CLIENT ? (void *)cfg : (void *)&cfg->defaults;
        if (set_field(base, row, row->spec.def, num) != IDP_OK)
            rc = idp_seterr(err, IDP_ENOMEM, "out of memory");
    }
    for (const char *const *p = builtin_params; rc == IDP_OK && *p; p++)
        rc = apply_text(cfg, *p, plugin, plugin_name, err);
    for (const char *const *p = extra; rc == IDP_OK && p && *p; p++)
        rc = apply_text(cfg, *p, plugin, plugin_name, err);
    for (size_t i = 0; rc == IDP_OK && u != NULL && i < u->nparams; i++)
        rc = apply(cfg, u->params[i].key, u->params[i].value, plugin,
                   plugin_name, err);
    if (rc == IDP_OK)
        rc = check_prime(cfg->prime, err);
    if (rc != IDP_OK)
        options_free(cfg);
    return rc;
}

void options_free(engine_cfg *cfg)
{
    free(cfg->prefix);
    free(cfg->prime);
    for (size_t i = 0; i < cfg->ncounters; i++)
        free(cfg->counters[i].name);
    free(cfg->counters);
    for (size_t i = 0; i < cfg->nplugin; i++)
        free(cfg->plugin[i].value);
    free(cfg->plugin);
    memset(cfg, 0, sizeof *cfg);
}

counter_cfg options_counter(const engine_cfg *cfg, const char *name)
{
    counter_cfg out = cfg->defaults;
    for (size_t i = 0; i < cfg->ncounters; i++) {
        const counter_override *o = &cfg->counters[i];
        if (strcmp(o->name, name) != 0)
            continue;
        const int64_t *src = (const int64_t *)&o->cfg;
        int64_t *dst = (int64_t *)&out;
        for (size_t f = 0; f < sizeof out / sizeof(int64_t); f++)
            if (o->set & (1u << f))
                dst[f] = src[f];
    }
    return out;
}

const char *options_plugin_value(const engine_cfg *cfg,
                                 const idp_param_spec *specs, const char *key)
{
    for (size_t i = 0; i < cfg->nplugin; i++)
        if (strcmp(cfg->plugin[i].spec->key, key) == 0)
            return cfg->plugin[i].value;
    for (const idp_param_spec *s = specs; s != NULL && s->key != NULL; s++)
        if (strcmp(s->key, key) == 0)
            return s->def;
    return NULL;
}

static void range_text(const idp_param_spec *s, char *buf, size_t len)
{
    if (s->type == IDP_PARAM_INT)
        snprintf(buf, len, "%lld..%lld", (long long)s->min, (long long)s->max);
    else if (s->type == IDP_PARAM_ENUM)
        snprintf(buf, len, "%s", s->choices);
    else
        snprintf(buf, len, "text");
}

API void idp_engine_params(idp_param_fn fn, void *ud)
{
    char range[64], key[64];
    for (size_t i = 0; i < NROWS; i++) {
        const opt_row *row = &engine_rows[i];
        range_text(&row->spec, range, sizeof range);
        idp_param_doc d = {"engine", row->spec.key, row->spec.def, range,
                           row->spec.help};
        fn(ud, &d);
        if (row->scope == COUNTER) {
            snprintf(key, sizeof key, "NAME_%s", row->spec.key);
            d.key = key;
            d.help = "the same for counter NAME only";
            d.def = strcmp(row->spec.key, "batch") == 0
                        ? "inode 256, chunk 2048, else batch"
                        : "the general value";
            fn(ud, &d);
        }
    }
}

void options_plugin_docs(const char *owner, const idp_param_spec *specs,
                         idp_param_fn fn, void *ud)
{
    char range[64];
    for (const idp_param_spec *s = specs; s != NULL && s->key != NULL; s++) {
        range_text(s, range, sizeof range);
        idp_param_doc d = {owner, s->key, s->def ? s->def : "", range,
                           s->help ? s->help : ""};
        fn(ud, &d);
    }
}
