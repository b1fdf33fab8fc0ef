/*
 * fuzz_plugin.c - libFuzzer target for the checks the dispatcher runs on a
 * plugin's entry table before any of its methods (dispatcher_validate:
 * ABI version, size, name against the file name, schemes, required
 * methods, the test hooks' size, the parameter tables through
 * options_check_specs), and for what the host then does with a table it
 * accepted: PLUGIN_HAS and TESTING_HAS on every method, the parameter docs,
 * options built against the plugin's keys and its test-only keys.
 *
 * The input is a small text, one directive a line, so the seeds read as
 * plugin tables (unknown lines are ignored; numbers wrap as C casts do):
 *
 *   abi 2                     abi_version (default: the host's)
 *   size min|full|N           the size the table claims (default full; min:
 *                             the required methods only)
 *   name mem                  (no line: name NULL)
 *   file idprime-mem.so       the file name checked (default idprime-NAME.so)
 *   nofile                    no file name (as for a table built in)
 *   scheme mem                one per scheme (no line: an empty list)
 *   noschemes                 schemes NULL
 *   methods open,close,...    the non-NULL methods (default open,close,incr,
 *                             get; also incr_many, raise_to, list, drop), or
 *                             "all", or "none"
 *   param delay_ms            starts a parameter; the lines after it set it:
 *   type int|str|enum|N       def TEXT, min N, max N, choices TEXT, help TEXT
 *   noparams                  params NULL (else the table, key NULL at end)
 *   testing                   a test hooks table (idp_plugin_testing); any
 *                             t* line below implies it (none: testing NULL)
 *   tsize min|full|N          the size it claims (default full; min: up to
 *                             params)
 *   tmethods roundtrips,...   its non-NULL hooks (roundtrips, control), or
 *                             "all", or "none" (default none)
 *   tparam delay_ms           starts a test-only parameter, set by the same
 *                             lines as a param (no tparam: params NULL)
 *   set key=value             a setting for options_build (at most 16)
 *
 * Each table lives in a heap block of exactly the size it claims (as a
 * plugin built against an older header has it; the bytes beyond this
 * header's struct are a pattern, as a newer plugin's unknown methods), every
 * string in a block of its own, so a read past any is an AddressSanitizer
 * report.
 *
 * Beyond the validator's own verdict, an accepted table is checked against
 * its variants: the same plugin built against a newer header (the table
 * and the test hooks larger, what this host knows unchanged) is accepted
 * too with the same methods seen; the same table claiming any other ABI
 * version, or a size short of the required methods, is refused.
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
static void st_drop(void *s) { (void)s; abort(); }
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
    M_DROP = 1 << 7,
    M_REQUIRED = M_OPEN | M_CLOSE | M_INCR | M_GET, M_ALL = 0xff
};

static const char *const method_names[] = {
    "open", "close", "incr", "get", "incr_many", "raise_to", "list", "drop",
    NULL
};

/* The test hooks' methods. */
enum { T_ROUNDTRIPS = 1 << 0, T_CONTROL = 1 << 1, T_ALL = 0x3 };

static const char *const testing_names[] = {"roundtrips", "control", NULL};

/* The required methods' end, and the test hooks' required end. */
#define REQUIRED_END (offsetof(idp_plugin, get) + sizeof(void *))
#define TESTING_REQUIRED_END \
    (offsetof(idp_plugin_testing, params) + sizeof(void *))
/* Bytes a "newer header" adds to each table in the grown variant. */
#define NEWER_EXTRA 32
/* The bytes beyond this header's structs: non-NULL, never to be used. */
#define UNKNOWN_BYTE 0xA5

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
    int testing;             /* a test hooks table */
    uint32_t tsize;
    unsigned tmethods;
    idp_param_spec tparams[MAX_PARAMS + 1];
    spec_text ttexts[MAX_PARAMS];
    size_t ntparams;
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

static unsigned parse_methods(const char *list, const char *const *names,
                              unsigned all)
{
    if (strcmp(list, "all") == 0)
        return all;
    unsigned m = 0;
    while (*list != '\0') {
        size_t n = strcspn(list, ", ");
        for (size_t i = 0; names[i] != NULL; i++)
            if (strlen(names[i]) == n && strncmp(names[i], list, n) == 0)
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
    d->tsize = sizeof(idp_plugin_testing);
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
            if (strcmp(arg, "min") == 0)
                d->size = REQUIRED_END;
            else if (strcmp(arg, "full") == 0)
                d->size = sizeof(idp_plugin);
            else
                d->size = (uint32_t)number(arg);
        } else if (strcmp(k, "testing") == 0) {
            d->testing = 1;
        } else if (strcmp(k, "tsize") == 0) {
            d->testing = 1;
            if (strcmp(arg, "min") == 0)
                d->tsize = TESTING_REQUIRED_END;
            else if (strcmp(arg, "full") == 0)
                d->tsize = sizeof(idp_plugin_testing);
            else
                d->tsize = (uint32_t)number(arg);
        } else if (strcmp(k, "tmethods") == 0) {
            d->testing = 1;
            d->tmethods = strcmp(arg, "none") == 0
                              ? 0 : parse_methods(arg, testing_names, T_ALL);
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
            d->methods = strcmp(arg, "none") == 0
                             ? 0 : parse_methods(arg, method_names, M_ALL);
        } else if (strcmp(k, "set") == 0) {
            if (d->nsets < MAX_SETS)
                take(&d->sets[d->nsets++], arg);
        } else if (strcmp(k, "param") == 0 || strcmp(k, "tparam") == 0) {
            int t = k[0] == 't';
            size_t *n = t ? &d->ntparams : &d->nparams;
            d->testing |= t;
            if (*n < MAX_PARAMS) {
                cur = t ? &d->tparams[*n] : &d->params[*n];
                curt = t ? &d->ttexts[*n] : &d->texts[*n];
                ++*n;
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
    for (size_t i = 0; i < d->ntparams; i++) {
        free(d->ttexts[i].key);
        free(d->ttexts[i].def);
        free(d->ttexts[i].choices);
        free(d->ttexts[i].help);
    }
    for (size_t i = 0; i < d->nsets; i++)
        free(d->sets[i]);
}

/*
 * A heap block of `size` bytes (at least `head`, at most MAX_TABLE) holding
 * the first bytes of `full` (`len` bytes known to this header), the bytes
 * past `len` the unknown pattern. Its size in *alloc.
 */
static void *block(const void *full, size_t len, size_t size, size_t head,
                   size_t *alloc)
{
    size_t n = size < head ? head : size;
    if (n > MAX_TABLE)
        n = MAX_TABLE;
    unsigned char *t = malloc(n);
    if (t == NULL)
        abort();
    memset(t, UNKNOWN_BYTE, n);
    memcpy(t, full, n < len ? n : len);
    *alloc = n;
    return t;
}

/* The test hooks as the plugin would hand them over: `tsize` bytes (at
 * least the size field itself). */
static idp_plugin_testing *build_testing(const desc *d,
                                         const idp_param_spec *tparams)
{
    idp_plugin_testing full;
    memset(&full, 0, sizeof full);
    full.size = d->tsize;
    full.params = tparams;
    full.roundtrips = d->tmethods & T_ROUNDTRIPS ? st_roundtrips : NULL;
    full.control = d->tmethods & T_CONTROL ? st_control : NULL;
    size_t alloc;
    return block(&full, sizeof full, d->tsize, sizeof full.size, &alloc);
}

/* The table as the plugin would hand it over: `size` bytes (at least the
 * two header fields, at most MAX_TABLE). */
static idp_plugin *build_table(const desc *d, const char *const *schemes,
                               const idp_param_spec *params,
                               const idp_plugin_testing *testing,
                               size_t *alloc)
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
    full.drop = m & M_DROP ? st_drop : NULL;
    full.testing = testing;
    return block(&full, sizeof full, d->size, offsetof(idp_plugin, name),
                 alloc);
}

/*
 * The same plugin built against a newer header of the same ABI version:
 * every field this host knows as the original shows it (a field beyond the
 * original's size, or cut by it, is NULL as in a struct initialised without
 * it), then NEWER_EXTRA bytes of unknown methods; the same for its test
 * hooks. Both sizes grow. Returns the table; *testing gets the hooks' block
 * (NULL when the table shows none), for the caller to free.
 */
static idp_plugin *grow_table(const idp_plugin *tab,
                              idp_plugin_testing **testing)
{
    /* fields past `name` are all pointers: keep whole ones only */
    size_t keep = tab->size - tab->size % sizeof(void *), alloc;
    if (keep > sizeof(idp_plugin))
        keep = sizeof(idp_plugin);
    idp_plugin full;
    memset(&full, 0, sizeof full);
    memcpy(&full, tab, keep);
    full.size = sizeof(idp_plugin) + NEWER_EXTRA;
    *testing = NULL;
    if (PLUGIN_HAS(tab, testing)) {
        const idp_plugin_testing *t = tab->testing;
        size_t tkeep = t->size - t->size % sizeof(void *);
        if (tkeep > sizeof(idp_plugin_testing))
            tkeep = sizeof(idp_plugin_testing);
        idp_plugin_testing tfull;
        memset(&tfull, 0, sizeof tfull);
        memcpy(&tfull, t, tkeep);
        tfull.size = sizeof(idp_plugin_testing) + NEWER_EXTRA;
        *testing = block(&tfull, sizeof tfull, tfull.size, tfull.size, &alloc);
        full.testing = *testing;
    }
    return block(&full, sizeof full, full.size, full.size, &alloc);
}

/* Which methods and hooks the host sees in a table: a bit per method, in
 * method_names order, then one per hook (testing_names) above bit 16. */
static unsigned seen_methods(const idp_plugin *tab)
{
    unsigned m = 0;
    m |= PLUGIN_HAS(tab, open) ? M_OPEN : 0;
    m |= PLUGIN_HAS(tab, close) ? M_CLOSE : 0;
    m |= PLUGIN_HAS(tab, incr) ? M_INCR : 0;
    m |= PLUGIN_HAS(tab, get) ? M_GET : 0;
    m |= PLUGIN_HAS(tab, incr_many) ? M_INCR_MANY : 0;
    m |= PLUGIN_HAS(tab, raise_to) ? M_RAISE_TO : 0;
    m |= PLUGIN_HAS(tab, list) ? M_LIST : 0;
    m |= PLUGIN_HAS(tab, drop) ? M_DROP : 0;
    const idp_plugin_testing *t = PLUGIN_HAS(tab, testing) ? tab->testing
                                                           : NULL;
    m |= TESTING_HAS(t, roundtrips) ? (unsigned)T_ROUNDTRIPS << 16 : 0;
    m |= TESTING_HAS(t, control) ? (unsigned)T_CONTROL << 16 : 0;
    return m;
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
    FUZZ_CHECK(tab->abi_version == IDP_PLUGIN_ABI_VERSION, "abi %u",
               (unsigned)tab->abi_version);
    FUZZ_CHECK(tab->size >= REQUIRED_END, "size %u", (unsigned)tab->size);
    FUZZ_CHECK(alloc >= REQUIRED_END, "accepted with a %zu-byte block",
               alloc);
    FUZZ_CHECK(PLUGIN_HAS(tab, open) && PLUGIN_HAS(tab, close) &&
               PLUGIN_HAS(tab, incr) && PLUGIN_HAS(tab, get),
               "a required method missing");
    /* the optional methods and hooks: only where the sizes cover them
     * (else the read is past the block, which ASan reports), and only
     * those the input set */
    unsigned seen = seen_methods(tab);
    for (int i = 4; method_names[i] != NULL; i++)
        FUZZ_CHECK(!(seen & (1u << i)) || (d->methods & (1u << i)),
                   "method %s seen but not set", method_names[i]);
    for (int i = 0; testing_names[i] != NULL; i++)
        FUZZ_CHECK(!(seen & (1u << (16 + i))) || (d->tmethods & (1u << i)),
                   "test hook %s seen but not set", testing_names[i]);
    const idp_plugin_testing *t = PLUGIN_HAS(tab, testing) ? tab->testing
                                                           : NULL;
    FUZZ_CHECK(t == NULL || d->testing, "test hooks seen but not set");
    FUZZ_CHECK(t == NULL || t->size >= TESTING_REQUIRED_END,
               "test hooks of %u bytes accepted", (unsigned)t->size);

    /* the same plugin from a newer header: larger tables load too, and
     * the host sees in them exactly what it saw */
    idp_plugin_testing *gt;
    idp_plugin *grown = grow_table(tab, &gt);
    idp_error gerr;
    memset(&gerr, 'U', sizeof gerr);
    int grc = dispatcher_validate(grown, NULL, &gerr);
    FUZZ_CHECK(grc == IDP_OK, "accepted at %u bytes, refused at %u: %s",
               (unsigned)tab->size, (unsigned)grown->size, gerr.msg);
    FUZZ_CHECK(seen_methods(grown) == seen, "methods seen %#x, grown %#x",
               seen, seen_methods(grown));
    free(grown);
    free(gt);

    /* the same table of another ABI version, or too small: refused */
    idp_plugin *other = malloc(alloc);
    if (other == NULL)
        abort();
    static const uint32_t versions[] = {
        0, IDP_PLUGIN_ABI_VERSION - 1, IDP_PLUGIN_ABI_VERSION + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        if (versions[i] == IDP_PLUGIN_ABI_VERSION)
            continue;
        memcpy(other, tab, alloc);
        other->abi_version = versions[i];
        memset(&gerr, 'U', sizeof gerr);
        grc = dispatcher_validate(other, NULL, &gerr);
        FUZZ_CHECK(grc == IDP_EPLUGIN, "ABI version %u accepted (%d)",
                   (unsigned)versions[i], grc);
        FUZZ_CHECK_ERR(grc, gerr);
    }
    memcpy(other, tab, alloc);
    other->size = REQUIRED_END - 1;
    memset(&gerr, 'U', sizeof gerr);
    grc = dispatcher_validate(other, NULL, &gerr);
    FUZZ_CHECK(grc == IDP_EPLUGIN, "a %u-byte table accepted (%d)",
               (unsigned)other->size, grc);
    FUZZ_CHECK_ERR(grc, gerr);
    free(other);

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

    /* the keys a client may set: the plugin's own and its test-only ones */
    idp_param_spec *keys = params_merge(tab->params,
                                        t != NULL ? t->params : NULL);
    if (keys == NULL)
        abort(); /* out of memory */
    options_plugin_docs(tab->name, keys, doc, NULL);

    /* an accepted table must let a client open with no settings at all,
     * and the engine's own settings must stay the engine's */
    engine_cfg cfg;
    idp_error err;
    memset(&err, 'U', sizeof err);
    int rc = options_build(&cfg, NULL, NULL, keys, tab->name, &err);
    FUZZ_CHECK(rc == IDP_OK, "accepted, but no client can open: %s", err.msg);
    check_builtin(&cfg, "inode", 256);
    check_builtin(&cfg, "chunk", 2048);
    options_free(&cfg);

    /* the plugin's keys, through the options the host builds */
    memset(&err, 'U', sizeof err);
    rc = options_build(&cfg, NULL, (const char *const *)d->sets, keys,
                       tab->name, &err);
    if (rc != IDP_OK) {
        FUZZ_CHECK_ERR(rc, err);
        free(keys);
        return;
    }
    for (const idp_param_spec *s = keys; s != NULL && s->key; s++) {
        const char *v = options_plugin_value(&cfg, keys, s->key);
        if (v != NULL) {
            int64_t num;
            FUZZ_CHECK(options_check(s, s->key, v, &num, &err) == IDP_OK,
                       "value '%s' of '%s' fails its own check: %s", v,
                       s->key, err.msg);
        }
    }
    options_free(&cfg);
    free(keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    desc d;
    parse(&d, data, size);

    const char *const *schemes = d.noschemes ? NULL
                                             : (const char *const *)d.schemes;
    d.params[d.nparams].key = NULL; /* the terminators */
    d.tparams[d.ntparams].key = NULL;
    const idp_param_spec *params = d.noparams ? NULL : d.params;
    const idp_param_spec *tparams = d.ntparams > 0 ? d.tparams : NULL;

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
    idp_plugin_testing *testing = d.testing ? build_testing(&d, tparams)
                                            : NULL;
    idp_plugin *tab = build_table(&d, schemes, params, testing, &alloc);
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
    free(testing);
    free(file);
    desc_free(&d);
    return 0;
}
