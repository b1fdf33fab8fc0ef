/*
 * fuzz_uri.c - libFuzzer target for the URI parser and the options built
 * from it: uri_parse, uri_redact, options_build, options_check,
 * options_counter, options_plugin_value.
 *
 * Input: the first line is the URI; each further line (at most 16) is an
 * "extra" key=value setting, as a config script or idp_options.params
 * hands them to options_build. The plugin parameter table is chosen by the
 * scheme: the real plugins' tables (mem, redis, sqlite) or, for any other
 * scheme, one with every type and edge (NULL default, empty enum choice,
 * full int64 range).
 *
 * Beyond "no crash, no leak, no undefined behaviour", it checks what the
 * headers promise: a failure fills err (code and message), a success gives
 * decoded strings and ports in range, every setting within its documented
 * range, counter names valid, and a password never shown by uri_redact.
 */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "options.h"
#include "uri.h"

#define MAX_EXTRA 16

static const idp_param_spec mem_params[] = {
    {"delay_ms", IDP_PARAM_INT, "0", 0, 600000, NULL, "simulated round trip"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const idp_param_spec redis_params[] = {
    {"db", IDP_PARAM_INT, NULL, 0, INT32_MAX - 1, NULL, "the database"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const idp_param_spec sqlite_params[] = {
    {"synchronous", IDP_PARAM_ENUM, "FULL", 0, 0, "FULL|NORMAL", "PRAGMA"},
    {"delay_ms", IDP_PARAM_INT, "0", 0, 600000, NULL, "simulated round trip"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const idp_param_spec edge_params[] = {
    {"mode", IDP_PARAM_ENUM, NULL, 0, 0, "a||b|", "an empty choice allowed"},
    {"level", IDP_PARAM_INT, "-3", -5, 5, NULL, "negative range"},
    {"wide", IDP_PARAM_INT, NULL, INT64_MIN, INT64_MAX, NULL, "all of int64"},
    {"tag", IDP_PARAM_STR, NULL, 0, 0, NULL, "text without default"},
    {"x.y:z-w", IDP_PARAM_STR, "", 0, 0, NULL, "every name character"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct {
    const char *scheme;
    const idp_param_spec *specs;
} tables[] = {
    {"mem", mem_params},       {"redis", redis_params},
    {"sqlite", sqlite_params}, {"sqlite3", sqlite_params},
};

static const idp_param_spec *specs_for(const char *scheme, const char **name)
{
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        if (strcmp(tables[i].scheme, scheme) == 0) {
            *name = tables[i].scheme;
            return tables[i].specs;
        }
    }
    *name = "edge";
    return edge_params;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the tables above must be valid plugin tables, or the target lies */
    const idp_param_spec *all[] = {mem_params, redis_params, sqlite_params,
                                   edge_params};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        idp_error err;
        FUZZ_CHECK(options_check_specs(all[i], &err) == IDP_OK, "%s", err.msg);
    }
    return 0;
}

static void check_counter(const counter_cfg *c)
{
    FUZZ_CHECK(c->batch >= 1 && c->batch <= IDP_MAX_BATCH, "%" PRId64, c->batch);
    FUZZ_CHECK(c->low_watermark >= 0 && c->low_watermark <= 100,
               "%" PRId64, c->low_watermark);
    FUZZ_CHECK(c->adaptive == 0 || c->adaptive == 1, "%" PRId64, c->adaptive);
    FUZZ_CHECK(c->max_batch >= 1 && c->max_batch <= IDP_MAX_BATCH,
               "%" PRId64, c->max_batch);
}

/* The part of the URI text uri_redact must hide: between the first ':'
 * of the userinfo and the last '@' of the authority. */
static int password_span(const char *text, size_t *from, size_t *to)
{
    const char *sep = strstr(text, "://");
    if (sep == NULL)
        return 0;
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at == NULL)
        return 0;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL)
        return 0;
    *from = (size_t)(colon + 1 - text);
    *to = (size_t)(at - text);
    return 1;
}

/* How many times [needle, +n) occurs in [hay, +len). */
static size_t count_in(const uint8_t *hay, size_t len, const char *needle,
                       size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i + n <= len; i++)
        k += memcmp(hay + i, needle, n) == 0;
    return k;
}

/* A password of 16+ letters and digits that occurs once in the whole input
 * must never appear in a message or a redacted copy (no message template
 * holds 16 such characters in a row). */
static void check_hidden(const char *text, const char *shown,
                         const uint8_t *data, size_t size)
{
    size_t from, to;
    if (!password_span(text, &from, &to) || to - from < 16)
        return;
    for (size_t i = from; i < to; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return;
    }
    char *pw = fuzz_strndup(text + from, to - from);
    if (count_in(data, size, pw, to - from) == 1)
        FUZZ_CHECK(strstr(shown, pw) == NULL, "password '%s' shown in '%s'",
                   pw, shown);
    free(pw);
}

static void redact(const char *text, const uint8_t *data, size_t size)
{
    static const size_t sizes[] = {1, 2, 9, 64, 160, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *buf = malloc(sizes[i]);
        if (buf == NULL)
            abort();
        char *r = uri_redact(text, buf, sizes[i]);
        FUZZ_CHECK(r == buf, "uri_redact returned another buffer");
        FUZZ_CHECK(memchr(buf, '\0', sizes[i]) != NULL, "not terminated");
        if (sizes[i] == 4096)
            check_hidden(text, buf, data, size);
        free(buf);
    }
}

static void check_uri(const uri_parsed *u)
{
    const idp_uri *p = &u->pub;
    FUZZ_CHECK(p->scheme != NULL && p->scheme[0] != '\0', "no scheme");
    for (const char *s = p->scheme; *s; s++)
        FUZZ_CHECK(!(*s >= 'A' && *s <= 'Z'), "scheme '%s' not lower case",
                   p->scheme);
    FUZZ_CHECK(p->user != NULL && p->password != NULL && p->path != NULL &&
               p->authority != NULL, "a NULL string");
    FUZZ_CHECK(p->has_password || p->password[0] == '\0', "password without ':'");
    FUZZ_CHECK(p->nhosts == 0 || p->hosts != NULL, "hosts NULL");
    for (size_t i = 0; i < p->nhosts; i++) {
        FUZZ_CHECK(p->hosts[i].host != NULL && p->hosts[i].host[0] != '\0',
                   "empty host %zu", i);
        FUZZ_CHECK(p->hosts[i].port <= 65535, "port %u", p->hosts[i].port);
    }
    for (size_t i = 0; i < u->nparams; i++) {
        FUZZ_CHECK(u->params[i].key[0] != '\0', "empty key");
        FUZZ_CHECK(u->params[i].value != NULL, "NULL value");
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(u->params[i].key, u->params[j].key) != 0,
                       "key '%s' twice", u->params[i].key);
    }
}

static void check_cfg(const engine_cfg *cfg, const idp_param_spec *specs)
{
    FUZZ_CHECK(cfg->metaprime == 0 || cfg->metaprime == 1, "metaprime");
    FUZZ_CHECK(cfg->timeout_ms >= 1 && cfg->timeout_ms <= 3600000, "timeout");
    FUZZ_CHECK(cfg->prefix != NULL && cfg->prime != NULL, "NULL text");
    check_counter(&cfg->defaults);
    for (size_t i = 0; i < cfg->ncounters; i++) {
        const char *name = cfg->counters[i].name;
        FUZZ_CHECK(options_valid_name(name, strlen(name)), "name '%s'", name);
        counter_cfg c = options_counter(cfg, name);
        check_counter(&c);
    }
    counter_cfg inode = options_counter(cfg, "inode");
    check_counter(&inode);
    for (size_t i = 0; i < cfg->nplugin; i++) {
        int64_t num;
        idp_error err;
        FUZZ_CHECK(options_check(cfg->plugin[i].spec, cfg->plugin[i].spec->key,
                                 cfg->plugin[i].value, &num, &err) == IDP_OK,
                   "stored value '%s' fails its check", cfg->plugin[i].value);
    }
    for (const idp_param_spec *s = specs; s->key != NULL; s++) {
        const char *v = options_plugin_value(cfg, specs, s->key);
        FUZZ_CHECK(v != NULL || s->def == NULL, "key '%s' lost its default",
                   s->key);
    }
}

/* [-]digits, nothing else. */
static int plain_decimal(const char *v)
{
    if (*v == '-')
        v++;
    if (*v == '\0')
        return 0;
    for (; *v != '\0'; v++)
        if (*v < '0' || *v > '9')
            return 0;
    return 1;
}

/* options_check straight on each extra line's value, for every key of the
 * table: a number it accepts is in range and is the number written. */
static void check_values(const idp_param_spec *specs, char **extra,
                         size_t nextra)
{
    for (size_t i = 0; i < nextra; i++) {
        const char *eq = strchr(extra[i], '=');
        const char *value = eq != NULL ? eq + 1 : extra[i];
        for (const idp_param_spec *s = specs; s->key != NULL; s++) {
            idp_error err;
            memset(&err, 'U', sizeof err);
            int64_t num = 0;
            int rc = options_check(s, s->key, value, &num, &err);
            if (rc != IDP_OK) {
                FUZZ_CHECK_ERR(rc, err);
                continue;
            }
            if (s->type == IDP_PARAM_INT) {
                FUZZ_CHECK(num >= s->min && num <= s->max, "%" PRId64, num);
                FUZZ_CHECK(strtoll(value, NULL, 10) == num, "'%s' read as %"
                           PRId64, value, num);
            }
        }
        /* and the other way: a plain decimal in range is accepted */
        for (const idp_param_spec *s = specs; s->key != NULL; s++) {
            if (s->type != IDP_PARAM_INT || !plain_decimal(value))
                continue;
            errno = 0;
            char *stop;
            long long v = strtoll(value, &stop, 10);
            if (errno != 0 || *stop != '\0' || v < s->min || v > s->max)
                continue;
            idp_error err;
            FUZZ_CHECK(options_check(s, s->key, value, NULL, &err) == IDP_OK,
                       "'%s' refused for %s: %s", value, s->key, err.msg);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *text = fuzz_line(&p, end);
    if (text == NULL)
        return 0;
    char *extra[MAX_EXTRA + 1];
    size_t nextra = 0;
    while (nextra < MAX_EXTRA && (extra[nextra] = fuzz_line(&p, end)) != NULL)
        nextra++;
    extra[nextra] = NULL;

    redact(text, data, size);

    uri_parsed u;
    idp_error err;
    memset(&err, 'U', sizeof err);
    int rc = uri_parse(text, &u, &err);
    const char *plugin_name = "edge";
    const idp_param_spec *specs = edge_params;
    if (rc != IDP_OK) {
        FUZZ_CHECK_ERR(rc, err);
        check_hidden(text, err.msg, data, size);
        FUZZ_CHECK(u.strings == NULL && u.hosts == NULL && u.params == NULL,
                   "a failed parse left memory");
    } else {
        check_uri(&u);
        specs = specs_for(u.pub.scheme, &plugin_name);
    }

    engine_cfg cfg;
    memset(&err, 'U', sizeof err);
    rc = options_build(&cfg, rc == IDP_OK ? &u : NULL,
                       (const char *const *)extra, specs, plugin_name, &err);
    if (rc != IDP_OK) {
        FUZZ_CHECK_ERR(rc, err);
        check_hidden(text, err.msg, data, size);
    } else {
        check_cfg(&cfg, specs);
        options_free(&cfg);
    }
    check_values(specs, extra, nextra);

    uri_free(&u);
    for (size_t i = 0; i < nextra; i++)
        free(extra[i]);
    free(text);
    return 0;
}
