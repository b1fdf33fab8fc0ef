/*
 * fuzz_plugin.c - libFuzzer target for the checks the dispatcher runs on a
 * plugin's entry table before any of its methods (dispatcher_validate:
 * ABI version, size, name against the file name, schemes, required
 * methods, the parameter table through options_check_specs), and for what
 * the host then does with a table it accepted: PLUGIN_HAS on every method,
 * the parameter docs, options built against the plugin's keys.
 *
 * The input is a small text, one directive a line, so the seeds read as
 * plugin tables (unknown lines are ignored; numbers wrap as C casts do):
 *
 *   abi 1                     abi_version
 *   size v1|full|N            the size the table claims (default full)
 *   name mem                  (no line: name NULL)
 *   file idprime-mem.so       the file name checked (default idprime-NAME.so)
 *   nofile                    no file name (as for a table built in)
 *   scheme mem                one per scheme (no line: an empty list)
 *   noschemes                 schemes NULL
 *   methods open,close,...    the non-NULL methods (default open,close,incr,
 *                             get), or "all", or "none"
 *   param delay_ms            starts a parameter; the lines after it set it:
 *   type int|str|enum|N       def TEXT, min N, max N, choices TEXT, help TEXT
 *   noparams                  params NULL (else the table, key NULL at end)
 *   set key=value             a setting for options_build (at most 16)
 *
 * The table lives in a heap block of exactly the size it claims (as a
 * plugin built against an older header has it), every string in a block
 * of its own, so a read past either is an AddressSanitizer report.
 */
#include <errno.h>

#include "dispatcher.h"
#include "fuzz.h"
#include "options.h"
#include "uri.h"

#define MAX_SCHEMES 8
#define MAX_PARAMS 8
#define MAX_SETS 16
#define MAX_TABLE 4096

/* The methods a fuzzed table points at: never called by the validation. */
static int st_open(const idp_host *h, void **s, idp_error *e)
{ (void)h; (void)s; (void)e; abort(); }
static void st_close(void *s) { (void)s; abort(); }
static int st_incr(void *s, const char *k, uint64_t n, uint64_t *v,
                   idp_error *e)
{ (void)s; (void)k; (void)n; (void)v; (void)e; abort(); }
static int st_get(void *s, const char *k, uint64_t *v, int *x, idp_error *e)
{ (void)s; (void)k; (void)v; (void)x; (void)e; abort(); }
static int st_incr_many(void *s, idp_incr_op *o, size_t n, idp_error *e)
{ (void)s; (void)o; (void)n; (void)e; abort(); }
static int st_raise_to(void *s, const char *k, uint64_t v, uint64_t *r,
                       idp_error *e)
{ (void)s; (void)k; (void)v; (void)r; (void)e; abort(); }
static int st_list(void *s, const char *p, idp_list_cb cb, void *ud,
                   idp_error *e)
{ (void)s; (void)p; (void)cb; (void)ud; (void)e; abort(); }
static int st_roundtrips(void *s, uint64_t *c, idp_error *e)
{ (void)s; (void)c; (void)e; abort(); }
static int st_control(void *s, const char *c, idp_error *e)
{ (void)s; (void)c; (void)e; abort(); }

enum {
    M_OPEN = 1 << 0, M_CLOSE = 1 << 1, M_INCR = 1 << 2, M_GET = 1 << 3,
    M_INCR_MANY = 1 << 4, M_RAISE_TO = 1 << 5, M_LIST = 1 << 6,
    M_ROUNDTRIPS = 1 << 7, M_CONTROL = 1 << 8,
    M_REQUIRED = M_OPEN | M_CLOSE | M_INCR | M_GET, M_ALL = 0x1ff
};

static const char *const method_names[] = {
    "open", "close", "incr", "get", "incr_many", "raise_to", "list",
    "roundtrips", "control", NULL
};

typedef struct spec_text {
    char *key, *def, *choices, *help;
} spec_text;

/* Everything the input described, and the strings to free. */
typedef struct desc {
    uint32_t abi, size;
    char *name, *file;
    int nofile, noschemes, noparams;
    char *schemes[MAX_SCHEMES + 1];
    size_t nschemes;
    unsigned methods;
    idp_param_spec params[MAX_PARAMS + 1];
    spec_text texts[MAX_PARAMS];
    size_t nparams;
    char *sets[MAX_SETS + 1];
    size_t nsets;
} desc;

/* A number as C would cast it: decimal, 0x hex or negative, wrapping. */
static uint64_t number(const char *s)
{
    errno = 0;
    if (*s == '-')
        return (uint64_t)strtoll(s, NULL, 0);
    return strtoull(s, NULL, 0);
}

static unsigned parse_methods(const char *list)
{
    if (strcmp(list, "all") == 0)
        return M_ALL;
    unsigned m = 0;
    while (*list != '\0') {
        size_t n = strcspn(list, ", ");
        for (size_t i = 0; method_names[i] != NULL; i++)
            if (strlen(method_names[i]) == n &&
                strncmp(method_names[i], list, n) == 0)
                m |= 1u << i;
        list += n;
        list += strspn(list, ", ");
    }
    return m;
}

/* Replaces *slot with a copy of s (freeing what it held). */
static void take(char **slot, const char *s)
{
    free(*slot);
    *slot = fuzz_strndup(s, strlen(s));
}

static void parse(desc *d, const uint8_t *data, size_t size)
{
    memset(d, 0, sizeof *d);
    d->abi = IDP_PLUGIN_ABI_VERSION;
    d->size = sizeof(idp_plugin);
    d->methods = M_REQUIRED;
    const uint8_t *p = data, *end = data + size;
    idp_param_spec *cur = NULL;
    spec_text *curt = NULL;
    char *line;
    while ((line = fuzz_line(&p, end)) != NULL) {
        size_t kl = strcspn(line, " ");
        const char *arg = line[kl] == ' ' ? line + kl + 1 : line + kl;
        line[kl] = '\0';
        const char *k = line;
        if (strcmp(k, "abi") == 0) {
            d->abi = (uint32_t)number(arg);
        } else if (strcmp(k, "size") == 0) {
            if (strcmp(arg, "v1") == 0)
                d->size = offsetof(idp_plugin, incr_many);
            else if (strcmp(arg, "full") == 0)
                d->size = sizeof(idp_plugin);
            else
                d->size = (uint32_t)number(arg);
        } else if (strcmp(k, "name") == 0) {
            take(&d->name, arg);
        } else if (strcmp(k, "file") == 0) {
            take(&d->file, arg);
        } else if (strcmp(k, "nofile") == 0) {
            d->nofile = 1;
        } else if (strcmp(k, "scheme") == 0) {
            if (d->nschemes < MAX_SCHEMES)
                take(&d->schemes[d->nschemes++], arg);
        } else if (strcmp(k, "noschemes") == 0) {
            d->noschemes = 1;
        } else if (strcmp(k, "noparams") == 0) {
            d->noparams = 1;
        } else if (strcmp(k, "methods") == 0) {
            d->methods = strcmp(arg, "none") == 0 ? 0 : parse_methods(arg);
        } else if (strcmp(k, "set") == 0) {
            if (d->nsets < MAX_SETS)
                take(&d->sets[d->nsets++], arg);
        } else if (strcmp(k, "param") == 0) {
            if (d->nparams < MAX_PARAMS) {
                cur = &d->params[d->nparams];
                curt = &d->texts[d->nparams++];
                take(&curt->key, arg);
                cur->key = curt->key;
                cur->type = IDP_PARAM_STR;
            } else {
                cur = NULL;
                curt = NULL;
            }
        } else if (cur != NULL && strcmp(k, "type") == 0) {
            if (strcmp(arg, "int") == 0)
                cur->type = IDP_PARAM_INT;
            else if (strcmp(arg, "str") == 0)
                cur->type = IDP_PARAM_STR;
            else if (strcmp(arg, "enum") == 0)
                cur->type = IDP_PARAM_ENUM;
            else
                cur->type = (idp_param_type)(int)number(arg);
        } else if (cur != NULL && strcmp(k, "def") == 0) {
            take(&curt->def, arg);
            cur->def = curt->def;
        } else if (cur != NULL && strcmp(k, "min") == 0) {
            cur->min = (int64_t)number(arg);
        } else if (cur != NULL && strcmp(k, "max") == 0) {
            cur->max = (int64_t)number(arg);
        } else if (cur != NULL && strcmp(k, "choices") == 0) {
            take(&curt->choices, arg);
            cur->choices = curt->choices;
        } else if (cur != NULL && strcmp(k, "help") == 0) {
            take(&curt->help, arg);
            cur->help = curt->help;
        }
        free(line);
    }
}

static void desc_free(desc *d)
{
    free(d->name);
    free(d->file);
    for (size_t i = 0; i < d->nschemes; i++)
        free(d->schemes[i]);
    for (size_t i = 0; i < d->nparams; i++) {
        free(d->texts[i].key);
        free(d->texts[i].def);
        free(d->texts[i].choices);
        free(d->texts[i].help);
    }
    for (size_t i = 0; i < d->nsets; i++)
        free(d->sets[i]);
}

/* The table as the plugin would hand it over: `size` bytes (at least the
 * two header fields, at most MAX_TABLE), the fields beyond
 * sizeof(idp_plugin) zero as a newer plugin's unknown methods. */
static idp_plugin *build_table(const desc *d, const char *const *schemes,
                               const idp_param_spec *params, size_t *alloc)
{
    idp_plugin full;
    memset(&full, 0, sizeof full);
    full.abi_version = d->abi;
    full.size = d->size;
    full.name = d->name;
    full.schemes = schemes;
    full.params = params;
    unsigned m = d->methods;
    full.open = m & M_OPEN ? st_open : NULL;
    full.close = m & M_CLOSE ? st_close : NULL;
    full.incr = m & M_INCR ? st_incr : NULL;
    full.get = m & M_GET ? st_get : NULL;
    full.incr_many = m & M_INCR_MANY ? st_incr_many : NULL;
    full.raise_to = m & M_RAISE_TO ? st_raise_to : NULL;
    full.list = m & M_LIST ? st_list : NULL;
    full.roundtrips = m & M_ROUNDTRIPS ? st_roundtrips : NULL;
    full.control = m & M_CONTROL ? st_control : NULL;

    size_t n = d->size;
    size_t head = offsetof(idp_plugin, name);
    if (n < head)
        n = head;
    if (n > MAX_TABLE)
        n = MAX_TABLE;
    unsigned char *t = calloc(1, n);
    if (t == NULL)
        abort();
    memcpy(t, &full, n < sizeof full ? n : sizeof full);
    *alloc = n;
    return (idp_plugin *)(void *)t;
}

static void doc(void *ud, const idp_param_doc *dd)
{
    (void)ud;
    FUZZ_CHECK(dd->owner != NULL && dd->key != NULL && dd->def != NULL &&
               dd->range != NULL && dd->help != NULL, "a NULL doc field");
    FUZZ_CHECK(strlen(dd->range) < 64, "range text too long");
}

/* The built-in per-counter batch (inode 256, chunk 2048) reached the
 * engine's settings of that counter, not a plugin key of the same name. */
static void check_builtin(const engine_cfg *cfg, const char *name,
                          int64_t batch)
{
    for (size_t i = 0; i < cfg->ncounters; i++) {
        const counter_override *o = &cfg->counters[i];
        if (strcmp(o->name, name) == 0 && (o->set & 1u) &&
            o->cfg.batch == batch)
            return;
    }
    FUZZ_CHECK(0, "the built-in %s_batch=%lld went to a plugin key", name,
               (long long)batch);
}

/* What the host does with a table it accepted. */
static void use_accepted(const desc *d, const idp_plugin *tab, size_t alloc)
{
    FUZZ_CHECK(tab->abi_version >= 1 &&
               tab->abi_version <= IDP_PLUGIN_ABI_VERSION, "abi %u",
               (unsigned)tab->abi_version);
    FUZZ_CHECK(tab->size >= offsetof(idp_plugin, get) + sizeof(void *),
               "size %u", (unsigned)tab->size);
    FUZZ_CHECK(alloc >= offsetof(idp_plugin, get) + sizeof(void *),
               "accepted with a %zu-byte block", alloc);
    FUZZ_CHECK(PLUGIN_HAS(tab, open) && PLUGIN_HAS(tab, close) &&
               PLUGIN_HAS(tab, incr) && PLUGIN_HAS(tab, get),
               "a required method missing");
    /* the optional methods: only where the size covers them (else the
     * read is past the block, which ASan reports) */
    int has[5] = {PLUGIN_HAS(tab, incr_many), PLUGIN_HAS(tab, raise_to),
                  PLUGIN_HAS(tab, list), PLUGIN_HAS(tab, roundtrips),
                  PLUGIN_HAS(tab, control)};
    for (int i = 0; i < 5; i++)
        FUZZ_CHECK(!has[i] || (d->methods & (M_INCR_MANY << i)),
                   "method %s seen but not set", method_names[4 + i]);

    /* every scheme reachable: a URI naming it parses to the same scheme */
    for (const char *const *s = tab->schemes; *s != NULL; s++) {
        size_t n = strlen(*s);
        char *uri = malloc(n + 8);
        if (uri == NULL)
            abort();
        snprintf(uri, n + 8, "%s://h", *s);
        uri_parsed u;
        idp_error err;
        int rc = uri_parse(uri, &u, &err);
        FUZZ_CHECK(rc == IDP_OK && strcmp(u.pub.scheme, *s) == 0,
                   "scheme '%s' accepted, but no URI can name it (%s)", *s,
                   rc == IDP_OK ? u.pub.scheme : err.msg);
        uri_free(&u);
        free(uri);
    }

    options_plugin_docs(tab->name, tab->params, doc, NULL);

    /* an accepted table must let a client open with no settings at all,
     * and the engine's own settings must stay the engine's */
    engine_cfg cfg;
    idp_error err;
    memset(&err, 'U', sizeof err);
    int rc = options_build(&cfg, NULL, NULL, tab->params, tab->name, &err);
    FUZZ_CHECK(rc == IDP_OK, "accepted, but no client can open: %s", err.msg);
    check_builtin(&cfg, "inode", 256);
    check_builtin(&cfg, "chunk", 2048);
    options_free(&cfg);

    /* the plugin's keys, through the options the host builds */
    memset(&err, 'U', sizeof err);
    rc = options_build(&cfg, NULL, (const char *const *)d->sets, tab->params,
                       tab->name, &err);
    if (rc != IDP_OK) {
        FUZZ_CHECK_ERR(rc, err);
        return;
    }
    for (const idp_param_spec *s = tab->params; s != NULL && s->key; s++) {
        const char *v = options_plugin_value(&cfg, tab->params, s->key);
        if (v != NULL) {
            int64_t num;
            FUZZ_CHECK(options_check(s, s->key, v, &num, &err) == IDP_OK,
                       "value '%s' of '%s' fails its own check: %s", v,
                       s->key, err.msg);
        }
    }
    options_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    desc d;
    parse(&d, data, size);

    const char *const *schemes = d.noschemes ? NULL
                                             : (const char *const *)d.schemes;
    d.params[d.nparams].key = NULL; /* the terminator */
    const idp_param_spec *params = d.noparams ? NULL : d.params;

    char *file = NULL;
    if (!d.nofile) {
        if (d.file != NULL) {
            file = fuzz_strndup(d.file, strlen(d.file));
        } else if (d.name != NULL) {
            size_t n = strlen(d.name) + 12;
            file = malloc(n);
            if (file == NULL)
                abort();
            snprintf(file, n, "idprime-%s.so", d.name);
        }
    }

    size_t alloc = 0;
    idp_plugin *tab = build_table(&d, schemes, params, &alloc);
    idp_error err;
    memset(&err, 'U', sizeof err);
    int rc = dispatcher_validate(tab, file, &err);
    /* the same verdict when the caller wants no message */
    int quiet = dispatcher_validate(tab, file, NULL);
    FUZZ_CHECK(quiet == rc, "%d with an error struct, %d without", rc, quiet);
    if (rc != IDP_OK) {
        FUZZ_CHECK(rc == IDP_EPLUGIN, "validation failed with %d", rc);
        FUZZ_CHECK_ERR(rc, err);
    } else {
        use_accepted(&d, tab, alloc);
    }

    free(tab);
    free(file);
    desc_free(&d);
    return 0;
}
