/*
 * config.c - idp_config_load: reads a script, runs it in the sandbox and
 * turns the table it returns into "key=value" settings for idp_options.
 * Engine keys are checked here against the engine's own parameter table,
 * so a mistake is reported as FILE:LINE before any store is opened; the
 * plugin's keys are checked by idp_open.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>

#include "internal.h"

#define MAX_VALUE 1024  /* bytes of one setting's value */
#define MAX_NAME 200    /* a counter name, as the engine allows */

static int seterr(idp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int seterr(idp_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- Where a field is written ------------------------------------------ */

static int ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static int ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* 1 when s[i..] is blanks, then (after a ']' when `bracket`) '=' but not
 * "==": the end of a table field's key. */
static int assigns(const char *s, size_t len, size_t i, int bracket)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (bracket) {
        if (i >= len || s[i] != ']')
            return 0;
        i++;
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
    }
    return i < len && s[i] == '=' && (i + 1 >= len || s[i + 1] != '=');
}

/*
 * The line where keys[n-1] is written as a field (`key =` or `["key"] =`),
 * each of keys[0..n-2] found before it in order; 0 when the text does not
 * show them (a table built by code). A small scan, not a parser: comments
 * and strings are skipped, which is all a config's text needs.
 */
static int locate(const char *s, size_t len, const char *const *keys, int n)
{
    int line = 1, k = 0;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '\n') {
            line++;
            i++;
        } else if (c == '-' && i + 1 < len && s[i + 1] == '-') {
            int block = i + 3 < len && s[i + 2] == '[' && s[i + 3] == '[';
            for (i += 2; i < len; i++) {
                if (!block && s[i] == '\n')
                    break;
                if (s[i] == '\n')
                    line++;
                if (block && s[i] == ']' && i + 1 < len && s[i + 1] == ']') {
                    i += 2;
                    break;
                }
            }
        } else if (c == '"' || c == '\'') {
            size_t start = ++i;
            while (i < len && s[i] != c && s[i] != '\n')
                i += s[i] == '\\' ? 2 : 1;
            size_t end = i < len ? i : len;
            i = end + 1;
            if (start >= 2 && s[start - 2] == '[' &&
                end - start == strlen(keys[k]) &&
                memcmp(s + start, keys[k], end - start) == 0 &&
                assigns(s, len, i, 1) && ++k == n)
                return line;
        } else if (ident_start(c)) {
            size_t start = i;
            while (i < len && ident_char(s[i]))
                i++;
            if (i - start == strlen(keys[k]) &&
                memcmp(s + start, keys[k], i - start) == 0 &&
                assigns(s, len, i, 0) && ++k == n)
                return line;
        } else {
            i++;
        }
    }
    return 0;
}

/* ---- Reading the returned table ------------------------------------------ */

typedef struct loader {
    idp_config *cfg;
    int ret_line;    /* the line the script returned from */
    const char *const *args; /* the script's `...`; may be NULL */
} loader;

/* Raises "FILE:LINE: a.b.c: why", LINE where the field is written, else
 * where the script returned. */
static int field_error(lua_State *L, const loader *ld, const char *const *keys,
                       int n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int field_error(lua_State *L, const loader *ld, const char *const *keys,
                       int n, const char *fmt, ...)
{
    const idp_config *cfg = ld->cfg;
    int line = locate(cfg->src, cfg->srclen, keys, n);
    char field[300] = "", why[300];
    size_t at = 0;
    for (int i = 0; i < n && at < sizeof field; i++)
        at += (size_t)snprintf(field + at, sizeof field - at, "%s%s",
                               i ? "." : "", keys[i]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, "%s:%d: %s: %s", cfg->path,
                    line > 0 ? line : ld->ret_line, field, why);
    return lua_error(L);
}

/* The engine's per-counter keys ("batch, low_watermark, ..."), from its
 * own documentation, and whether `key` is one of them. */
typedef struct per_counter {
    const char *key;
    int found;
    char list[160];
} per_counter;

static void per_counter_doc(void *ud, const idp_param_doc *d)
{
    per_counter *q = ud;
    if (strncmp(d->key, "NAME_", 5) != 0)
        return;
    size_t n = strlen(q->list);
    snprintf(q->list + n, sizeof q->list - n, "%s%s", n ? ", " : "",
             d->key + 5);
    q->found |= strcmp(d->key + 5, q->key) == 0;
}

/* A setting whose documented range is 0..1 takes a boolean too. */
typedef struct flag_key {
    const char *key;
    int is_flag;
} flag_key;

static void flag_doc(void *ud, const idp_param_doc *d)
{
    flag_key *q = ud;
    const char *k = strncmp(d->key, "NAME_", 5) == 0 ? d->key + 5 : d->key;
    size_t kl = strlen(q->key), dl = strlen(k);
    /* "adaptive", or "inode_adaptive" for NAME_adaptive */
    if (strcmp(d->range, "0..1") == 0 && kl >= dl &&
        strcmp(q->key + kl - dl, k) == 0 &&
        (kl == dl || q->key[kl - dl - 1] == '_'))
        q->is_flag = 1;
}

/*
 * The value at the top of the stack as a setting's text, checked by the
 * engine itself (idp_check_param: the same names and ranges idp_open
 * applies) when `key` is an engine key; a store's key is checked when the
 * store opens. Raises on a bad value.
 */
static void value_text(lua_State *L, const loader *ld, const char *const *keys,
                       int n, const char *key, char *buf, size_t len)
{
    int isint = 0;
    lua_Integer v = 0;
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
        v = lua_tointegerx(L, -1, &isint);
        if (isint)
            snprintf(buf, len, "%lld", (long long)v);
        else if (snprintf(buf, len, "%.14g", (double)lua_tonumber(L, -1)),
                 idp_check_param(key, NULL, NULL) != IDP_OK)
            field_error(L, ld, keys, n, "%s is not a whole number", buf);
        break; /* an engine key: the engine says what it allows */
    case LUA_TBOOLEAN: {
        flag_key q = {key, 0};
        idp_engine_params(flag_doc, &q);
        if (!q.is_flag && idp_check_param(key, NULL, NULL) == IDP_OK)
            field_error(L, ld, keys, n, "expected a whole number, got a "
                        "boolean");
        snprintf(buf, len, "%d", lua_toboolean(L, -1));
        break;
    }
    case LUA_TSTRING: {
        size_t sl;
        const char *s = lua_tolstring(L, -1, &sl);
        if (sl >= len || memchr(s, '\0', sl) != NULL)
            field_error(L, ld, keys, n, "the text is longer than %zu bytes "
                        "or holds a NUL byte", len - 1);
        memcpy(buf, s, sl + 1);
        break;
    }
    default:
        field_error(L, ld, keys, n, "expected a number, string or boolean, "
                    "got a %s", luaL_typename(L, -1));
    }
    idp_error e;
    if (idp_check_param(key, buf, &e) == IDP_EINVAL) {
        /* the engine names the key; the field is named already */
        char head[300];
        snprintf(head, sizeof head, "parameter '%s': ", key);
        const char *why = strncmp(e.msg, head, strlen(head)) == 0
                              ? e.msg + strlen(head) : e.msg;
        field_error(L, ld, keys, n, "%s", why);
    }
}

/* A key given as a Lua string: a valid name, NUL-free; NULL otherwise. */
static const char *name_key(lua_State *L, int idx)
{
    size_t len = 0;
    if (lua_type(L, idx) != LUA_TSTRING)
        return NULL;
    const char *k = lua_tolstring(L, idx, &len);
    return idp_valid_name(k, len) ? k : NULL;
}

/* A NULL-terminated list of malloc'ed strings that grows by doubling. */
typedef struct str_list {
    char ***v;
    size_t *n, *cap;
} str_list;

/* Appends `item` (malloc'ed, or NULL when its allocation failed) to the
 * list; out of memory, frees it and raises a Lua error. */
static void list_push(lua_State *L, idp_config *cfg, str_list l, char *item)
{
    if (item != NULL && *l.n + 1 >= *l.cap) {
        size_t cap = *l.cap * 2;
        char **grown = realloc(*l.v, cap * sizeof *grown);
        if (grown == NULL) {
            free(item);
            item = NULL;
        } else {
            *l.v = grown;
            *l.cap = cap;
        }
    }
    if (item == NULL) {
        cfg->oom = 1;
        luaL_error(L, "%s: out of memory", cfg->path);
    }
    (*l.v)[(*l.n)++] = item;
    (*l.v)[*l.n] = NULL;
}

static void add_param(lua_State *L, idp_config *cfg, const char *key,
                      const char *value)
{
    size_t need = strlen(key) + strlen(value) + 2;
    char *kv = malloc(need);
    if (kv != NULL)
        snprintf(kv, need, "%s=%s", key, value);
    list_push(L, cfg, (str_list){&cfg->params, &cfg->nparams, &cfg->cap}, kv);
}

/* Records a name of the counters table (idp_config_counters). */
static void add_counter(lua_State *L, idp_config *cfg, const char *name)
{
    list_push(L, cfg, (str_list){&cfg->counters, &cfg->ncounters,
                                 &cfg->ccap}, strdup(name));
}

/* defaults = { key = value, ... }: any engine or plugin key. */
static void read_defaults(lua_State *L, const loader *ld)
{
    const char *keys[2] = {"defaults", NULL};
    if (!lua_istable(L, -1))
        field_error(L, ld, keys, 1, "expected a table of settings "
                    "({batch = 512, ...}), got a %s", luaL_typename(L, -1));
    int t = lua_gettop(L);
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
        if ((keys[1] = name_key(L, -2)) == NULL) {
            keys[1] = "?";
            field_error(L, ld, keys, 1, "every key must be a setting's name "
                        "([A-Za-z0-9_.:-])");
        }
        char value[MAX_VALUE + 1];
        value_text(L, ld, keys, 2, keys[1], value, sizeof value);
        add_param(L, ld->cfg, keys[1], value);
    }
}

/* counters = { NAME = { batch = 512, low_watermark = 50 }, ... } */
static void read_counters(lua_State *L, const loader *ld)
{
    const char *keys[3] = {"counters", NULL, NULL};
    if (!lua_istable(L, -1))
        field_error(L, ld, keys, 1, "expected a table of counters ({inode "
                    "= {batch = 512}, ...}), got a %s", luaL_typename(L, -1));
    int t = lua_gettop(L);
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
        if ((keys[1] = name_key(L, -2)) == NULL) {
            keys[1] = "?";
            field_error(L, ld, keys, 1, "every key must be a counter name "
                        "([A-Za-z0-9_.:-], 1..%d bytes)", MAX_NAME);
        }
        if (!lua_istable(L, -1))
            field_error(L, ld, keys, 2, "expected a table of settings "
                        "({batch = 512, ...}), got a %s",
                        luaL_typename(L, -1));
        add_counter(L, ld->cfg, keys[1]);
        int c = lua_gettop(L);
        for (lua_pushnil(L); lua_next(L, c); lua_pop(L, 1)) {
            char key[MAX_NAME + 64];
            keys[2] = name_key(L, -2);
            per_counter q = {keys[2] ? keys[2] : "", 0, ""};
            idp_engine_params(per_counter_doc, &q);
            if (keys[2] == NULL)
                keys[2] = "?";
            if (!q.found)
                field_error(L, ld, keys, 3, "not a per-counter setting "
                            "(allowed: %s; the rest goes in defaults)",
                            q.list);
            snprintf(key, sizeof key, "%s_%s", keys[1], keys[2]);
            char value[MAX_VALUE + 1];
            value_text(L, ld, keys, 3, key, value, sizeof value);
            add_param(L, ld->cfg, key, value);
        }
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_params(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t xl = strcspn(x, "="), yl = strcspn(y, "=");
    int c = memcmp(x, y, xl < yl ? xl : yl);
    return c != 0 ? c : (xl > yl) - (xl < yl);
}

/* Runs the script and reads its table: called through sandbox_call. */
static int load_main(lua_State *L)
{
    loader *ld = lua_touserdata(L, 1);
    idp_config *cfg = ld->cfg;
    const char *chunk = lua_pushfstring(L, "@%s", cfg->path);
    /* mode "t": text only, bytecode is refused by the loader itself */
    if (luaL_loadbufferx(L, cfg->src, cfg->srclen, chunk, "t") != LUA_OK)
        return lua_error(L);
    int nargs = 0; /* the script's `...` */
    for (; ld->args != NULL && ld->args[nargs] != NULL; nargs++) {
        luaL_checkstack(L, 1, "config script arguments");
        lua_pushstring(L, ld->args[nargs]);
    }
    lua_call(L, nargs, 1);
    ld->ret_line = cfg->sb.line;
    if (!lua_istable(L, -1))
        return luaL_error(L, "%s:%d: the script returned a %s, not a table "
                          "(return {uri = ..., defaults = {...}, counters = "
                          "{...}, policy = function(s) ... end})", cfg->path,
                          ld->ret_line, luaL_typename(L, -1));
    int t = lua_gettop(L);
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
        const char *keys[1] = {"?"};
        if (lua_type(L, -2) == LUA_TSTRING)
            keys[0] = lua_tostring(L, -2);
        if (strcmp(keys[0], "uri") == 0) {
            size_t len = 0;
            const char *uri = lua_type(L, -1) == LUA_TSTRING
                                  ? lua_tolstring(L, -1, &len) : NULL;
            if (uri == NULL || len == 0 || memchr(uri, '\0', len) != NULL)
                field_error(L, ld, keys, 1, "expected a store URI "
                            "(\"redis://host:6379/0\"), got a %s",
                            luaL_typename(L, -1));
            free(cfg->uri);
            if ((cfg->uri = strdup(uri)) == NULL) {
                cfg->oom = 1;
                luaL_error(L, "%s: out of memory", cfg->path);
            }
        } else if (strcmp(keys[0], "defaults") == 0) {
            read_defaults(L, ld);
        } else if (strcmp(keys[0], "counters") == 0) {
            read_counters(L, ld);
        } else if (strcmp(keys[0], "policy") == 0) {
            if (!lua_isfunction(L, -1))
                field_error(L, ld, keys, 1, "expected a function(stats) "
                            "returning the next batch, got a %s",
                            luaL_typename(L, -1));
            lua_Debug ar;
            lua_pushvalue(L, -1);
            lua_getinfo(L, ">S", &ar);
            cfg->policy_line = ar.linedefined;
            lua_pushvalue(L, -1);
            cfg->policy_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        } else {
            field_error(L, ld, keys, 1, "unknown field (expected uri, "
                        "defaults, counters, policy)");
        }
    }
    qsort(cfg->params, cfg->nparams, sizeof *cfg->params, cmp_params);
    qsort(cfg->counters, cfg->ncounters, sizeof *cfg->counters, cmp_names);
    for (size_t i = 1; i < cfg->nparams; i++)
        if (cmp_params(&cfg->params[i - 1], &cfg->params[i]) == 0)
            luaL_error(L, "%s:%d: '%s' is set twice (in defaults and in "
                       "counters)", cfg->path, ld->ret_line,
                       lua_pushlstring(L, cfg->params[i],
                                       strcspn(cfg->params[i], "=")));
    return 0;
}

/* ---- Loading ------------------------------------------------------------- */

/* Reads the whole file into cfg->src (at most `max` bytes). */
static int read_script(idp_config *cfg, size_t max, idp_error *err)
{
    FILE *f = fopen(cfg->path, "rb");
    if (f == NULL)
        return seterr(err, IDP_EINVAL, "%s: cannot read the config script: %s",
                      cfg->path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return seterr(err, IDP_EINVAL, "%s: not a regular file", cfg->path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return seterr(err, IDP_EINVAL, "%s: the script is larger than the "
                      "memory limit of %zu bytes", cfg->path, max);
    }
    cfg->src = malloc((size_t)st.st_size + 1);
    if (cfg->src == NULL) {
        fclose(f);
        return seterr(err, IDP_ENOMEM, "%s: out of memory", cfg->path);
    }
    cfg->srclen = fread(cfg->src, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return seterr(err, IDP_EINVAL, "%s: cannot read the config script",
                      cfg->path);
    cfg->src[cfg->srclen] = '\0';
    return IDP_OK;
}

API idp_config *idp_config_load(const char *path, const idp_config_opts *o,
                                idp_error *err)
{
    if (path == NULL || path[0] == '\0') {
        seterr(err, IDP_EINVAL, "no config script given");
        return NULL;
    }
    idp_config_opts d = {0};
    if (o != NULL)
        memcpy(&d, o, o->size < sizeof d ? o->size : sizeof d);
    size_t max_memory = d.max_memory ? d.max_memory : IDP_CONFIG_MEMORY;
    uint64_t max_instr = d.max_instructions ? d.max_instructions
                                            : IDP_CONFIG_INSTRUCTIONS;
    idp_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL ||
        (cfg->params = calloc(8, sizeof *cfg->params)) == NULL ||
        (cfg->counters = calloc(8, sizeof *cfg->counters)) == NULL) {
        idp_config_free(cfg);
        seterr(err, IDP_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    cfg->cap = 8;
    cfg->ccap = 8;
    cfg->policy_ref = LUA_NOREF;
    cfg->policy_instructions = d.policy_instructions
                                   ? d.policy_instructions
                                   : IDP_CONFIG_POLICY_INSTRUCTIONS;
    cfg->log = d.log;
    cfg->log_ud = d.log_ud;
    if (read_script(cfg, max_memory, err) != IDP_OK) {
        idp_config_free(cfg);
        return NULL;
    }
    if (cfg->srclen > 0 && cfg->src[0] == LUA_SIGNATURE[0]) {
        seterr(err, IDP_EINVAL, "%s:1: precompiled Lua (bytecode) is "
               "refused: config scripts load as text only", path);
        idp_config_free(cfg);
        return NULL;
    }
    /* a UTF-8 byte order mark and a first line "#!..." are blanked, as
     * lua5.4 skips them, keeping the line numbers */
    size_t at = 0;
    if (cfg->srclen >= 3 && memcmp(cfg->src, "\xEF\xBB\xBF", 3) == 0) {
        memset(cfg->src, ' ', 3);
        at = 3;
    }
    if (cfg->src[at] == '#')
        for (size_t i = at; i < cfg->srclen && cfg->src[i] != '\n'; i++)
            cfg->src[i] = ' ';
    if (sandbox_open(&cfg->sb, cfg->path, max_memory, d.log, d.log_ud,
                     err) != IDP_OK) {
        idp_config_free(cfg);
        return NULL;
    }
    loader ld = {cfg, 0, d.args};
    char msg[sizeof err->msg];
    if (sandbox_call(&cfg->sb, load_main, &ld, max_instr, msg,
                     sizeof msg) != 0) {
        seterr(err, cfg->oom ? IDP_ENOMEM : IDP_EINVAL, "%s", msg);
        idp_config_free(cfg);
        return NULL;
    }
    free(cfg->src);
    cfg->src = NULL;
    if (cfg->policy_ref == LUA_NOREF) {
        sandbox_close(&cfg->sb);
    } else {
        pthread_mutex_init(&cfg->mu, NULL);
        cfg->mu_ready = 1;
    }
    return cfg;
}

API const char *idp_config_uri(const idp_config *cfg)
{
    return cfg != NULL ? cfg->uri : NULL;
}

API const char *const *idp_config_params(const idp_config *cfg)
{
    return cfg != NULL ? (const char *const *)cfg->params : NULL;
}

API const char *const *idp_config_counters(const idp_config *cfg)
{
    return cfg != NULL ? (const char *const *)cfg->counters : NULL;
}

API void idp_config_apply(const idp_config *cfg, idp_options *opt)
{
    if (cfg == NULL || opt == NULL)
        return;
    if (opt->size >= offsetof(idp_options, params) + sizeof opt->params)
        opt->params = (const char *const *)cfg->params;
    if (opt->size >= offsetof(idp_options, policy_ud) + sizeof opt->policy_ud) {
        int has = cfg->policy_ref != LUA_NOREF;
        opt->policy = has ? config_policy : NULL;
        opt->policy_ud = has ? (void *)cfg : NULL;
    }
}

API void idp_config_free(idp_config *cfg)
{
    if (cfg == NULL)
        return;
    sandbox_close(&cfg->sb);
    if (cfg->mu_ready)
        pthread_mutex_destroy(&cfg->mu);
    for (size_t i = 0; i < cfg->nparams; i++)
        free(cfg->params[i]);
    free(cfg->params);
    for (size_t i = 0; i < cfg->ncounters; i++)
        free(cfg->counters[i]);
    free(cfg->counters);
    free(cfg->uri);
    free(cfg->src);
    free(cfg->path);
    free(cfg);
}
