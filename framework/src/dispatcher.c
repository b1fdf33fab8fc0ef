/*
 * dispatcher.c - the plugin search path, loading with dlopen into one
 * process-wide table (never unloaded), and the checks that refuse a file
 * before any of its methods runs: not a regular file, not loadable, no
 * entry symbol, another ABI version, a table too small or incomplete, a
 * scheme another plugin already claims.
 *
 * An open loads only what it needs: the plugin already loaded for the
 * scheme, else the file named for it; a scan of every file on the path
 * runs only for idp_plugins() or when the named file is not there.
 */
#define _GNU_SOURCE /* dladdr */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dispatcher.h"
#include "options.h"

#define API __attribute__((visibility("default")))

/* The end of the methods every table must have. */
#define MIN_SIZE (offsetof(idp_plugin, get) + sizeof(void *))
/* The end of the test hooks' fixed part. */
#define TESTING_MIN_SIZE (offsetof(idp_plugin_testing, params) + sizeof(void *))

/* Every plugin loaded in this process, in load order; never unloaded. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static plugin_lib **loaded;
static size_t nloaded;

void dispatcher_lock(void)
{
    pthread_mutex_lock(&reg_mu);
}

void dispatcher_unlock(void)
{
    pthread_mutex_unlock(&reg_mu);
}

typedef struct scan {
    const idp_options *opt;
    const char *want;        /* scheme sought, or NULL for all */
    char searched[512];      /* the folders, for messages */
    char refusal[256];       /* why a candidate for `want` was refused */
    const plugin_lib **seen; /* accepted in this scan (idp_plugins) */
    size_t nseen;
    char **dirs;             /* the folders scanned already */
    size_t ndirs;
} scan;

static void scan_free(scan *sc)
{
    free(sc->seen);
    for (size_t i = 0; i < sc->ndirs; i++)
        free(sc->dirs[i]);
    free(sc->dirs);
}

static void say(const idp_options *opt, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(const idp_options *opt, int level, const char *fmt, ...)
{
    if (opt == NULL ||
        opt->size < offsetof(idp_options, log_ud) + sizeof(void *) ||
        opt->log == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    opt->log(opt->log_ud, level, msg);
}

idp_param_spec *params_merge(const idp_param_spec *a,
                             const idp_param_spec *b)
{
    size_t na = 0, nb = 0;
    while (a != NULL && a[na].key != NULL)
        na++;
    while (b != NULL && b[nb].key != NULL)
        nb++;
    idp_param_spec *all = calloc(na + nb + 1, sizeof *all);
    if (all == NULL)
        return NULL;
    if (na > 0)
        memcpy(all, a, na * sizeof *all);
    if (nb > 0)
        memcpy(all + na, b, nb * sizeof *all);
    return all;
}

static int has_scheme(const idp_plugin *tab, const char *scheme)
{
    for (const char *const *s = tab->schemes; *s != NULL; s++)
        if (strcmp(*s, scheme) == 0)
            return 1;
    return 0;
}

/* 1 when a URI can name the scheme: uri_parse accepts [A-Za-z][A-Za-z0-9+.-]*
 * and lowers it, so only the lower-case spelling is ever looked up. */
static int valid_scheme(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '+' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

int dispatcher_validate(const idp_plugin *tab, const char *file_name,
                        idp_error *err)
{
    if (tab == NULL)
        return idp_seterr(err, IDP_EPLUGIN, "%s returned NULL", IDP_PLUGIN_ENTRY);
    if (tab->abi_version != IDP_PLUGIN_ABI_VERSION)
        return idp_seterr(err, IDP_EPLUGIN, "ABI version %u, but this "
                          "idprime speaks version %d (rebuild the plugin "
                          "against this idprime)", (unsigned)tab->abi_version,
                          IDP_PLUGIN_ABI_VERSION);
    if (tab->size < MIN_SIZE)
        return idp_seterr(err, IDP_EPLUGIN, "plugin table too small: %u bytes, "
                          "version %d needs at least %zu",
                          (unsigned)tab->size, IDP_PLUGIN_ABI_VERSION, MIN_SIZE);
    if (tab->name == NULL || !options_valid_name(tab->name, strlen(tab->name)))
        return idp_seterr(err, IDP_EPLUGIN, "plugin table has no valid name");
    if (file_name != NULL) {
        size_t n = strlen(tab->name);
        if (strncmp(file_name, "idprime-", 8) != 0 ||
            strncmp(file_name + 8, tab->name, n) != 0 ||
            strcmp(file_name + 8 + n, ".so") != 0)
            return idp_seterr(err, IDP_EPLUGIN, "plugin names itself '%s', "
                              "so its file must be idprime-%s.so", tab->name,
                              tab->name);
    }
    if (tab->schemes == NULL || tab->schemes[0] == NULL)
        return idp_seterr(err, IDP_EPLUGIN, "plugin '%s' declares no scheme",
                          tab->name);
    for (const char *const *s = tab->schemes; *s != NULL; s++)
        if (!valid_scheme(*s))
            return idp_seterr(err, IDP_EPLUGIN, "plugin '%s' declares a bad "
                              "scheme '%s' (a URI scheme in lower case: a "
                              "letter, then letters, digits, '+', '-' or "
                              "'.')", tab->name, *s);
    if (tab->open == NULL || tab->close == NULL || tab->incr == NULL ||
        tab->get == NULL)
        return idp_seterr(err, IDP_EPLUGIN, "plugin '%s' lacks a required "
                          "method (open, close, incr and get)", tab->name);
    const idp_plugin_testing *t = PLUGIN_HAS(tab, testing) ? tab->testing : NULL;
    if (t != NULL && t->size < TESTING_MIN_SIZE)
        return idp_seterr(err, IDP_EPLUGIN, "plugin '%s': test hooks table "
                          "too small: %u bytes, at least %zu needed", tab->name,
                          (unsigned)t->size, TESTING_MIN_SIZE);
    idp_param_spec *all = params_merge(tab->params, t ? t->params : NULL);
    if (all == NULL)
        return idp_seterr(err, IDP_ENOMEM, "out of memory");
    int rc = options_check_specs(all, err);
    free(all);
    if (rc != IDP_OK) {
        /* a bad default comes back as options_check's IDP_EINVAL: the
         * table is what is wrong, so it is a plugin error */
        idp_prefixerr(err, "plugin '%s'", tab->name);
        if (err != NULL)
            err->code = IDP_EPLUGIN;
        return IDP_EPLUGIN;
    }
    return IDP_OK;
}

static void refuse(scan *sc, const char *path, const char *base,
                   const idp_plugin *tab, const char *why)
{
    say(sc->opt, IDP_LOG_WARN, "plugin %s refused: %s", path, why);
    if (sc->want == NULL)
        return;
    char wanted[128];
    snprintf(wanted, sizeof wanted, "idprime-%s.so", sc->want);
    if (strcmp(base, wanted) == 0 || (tab != NULL && tab->schemes != NULL &&
                                      tab->size >= MIN_SIZE &&
                                      has_scheme(tab, sc->want)))
        snprintf(sc->refusal, sizeof sc->refusal, "%s refused: %s", path, why);
}

static const plugin_lib *loaded_named(const char *base)
{
    for (size_t i = 0; i < nloaded; i++) {
        const char *b = strrchr(loaded[i]->path, '/');
        if (strcmp(b ? b + 1 : loaded[i]->path, base) == 0)
            return loaded[i];
    }
    return NULL;
}

static void note_seen(scan *sc, const plugin_lib *lib)
{
    for (size_t i = 0; i < sc->nseen; i++)
        if (sc->seen[i] == lib)
            return;
    const plugin_lib **grown = realloc(sc->seen, (sc->nseen + 1) * sizeof *grown);
    if (grown == NULL)
        return;
    sc->seen = grown;
    sc->seen[sc->nseen++] = lib;
}

/* Loads dir/base into the table unless a file of that name is loaded
 * already (the first on the path shadows the later ones). Called with
 * reg_mu held. */
static void try_file(scan *sc, const char *dir, const char *base)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, base);
    const plugin_lib *had = loaded_named(base);
    if (had != NULL) {
        note_seen(sc, had);
        return; /* shadowed by the same plugin earlier on the path */
    }
    struct stat st;
    char why[400];
    if (stat(path, &st) != 0) {
        snprintf(why, sizeof why, "cannot stat: %s", strerror(errno));
        refuse(sc, path, base, NULL, why);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        refuse(sc, path, base, NULL, "not a regular file");
        return;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        /* dlerror names the file already */
        snprintf(why, sizeof why, "cannot load: %s (missing dependencies? "
                 "try ldd)", dlerror());
        refuse(sc, path, base, NULL, why);
        return;
    }
    dlerror();
    idp_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, IDP_PLUGIN_ENTRY);
    if (entry == NULL) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "no symbol %s (%s): not an idprime plugin",
                 IDP_PLUGIN_ENTRY, e ? e : "NULL");
        refuse(sc, path, base, NULL, why);
        dlclose(dl);
        return;
    }
    const idp_plugin *tab = entry();
    idp_error err;
    if (dispatcher_validate(tab, base, &err) != IDP_OK) {
        refuse(sc, path, base, tab, err.msg);
        dlclose(dl);
        return;
    }
    for (size_t i = 0; i < nloaded; i++) {
        for (const char *const *s = tab->schemes; *s != NULL; s++) {
            if (has_scheme(loaded[i]->tab, *s)) {
                snprintf(why, sizeof why, "scheme '%s' is already claimed by "
                         "%s", *s, loaded[i]->path);
                refuse(sc, path, base, tab, why);
                dlclose(dl);
                return;
            }
        }
    }
    plugin_lib *lib = calloc(1, sizeof *lib);
    plugin_lib **grown = realloc(loaded, (nloaded + 1) * sizeof *grown);
    if (grown != NULL)
        loaded = grown;
    const idp_plugin_testing *t = PLUGIN_HAS(tab, testing) ? tab->testing : NULL;
    if (lib == NULL || grown == NULL || (lib->path = strdup(path)) == NULL ||
        (lib->params = params_merge(tab->params, t ? t->params : NULL)) == NULL) {
        if (lib != NULL)
            free(lib->path);
        free(lib);
        dlclose(dl);
        refuse(sc, path, base, tab, "out of memory");
        return;
    }
    lib->dl = dl;
    lib->tab = tab;
    lib->testing = t;
    loaded[nloaded++] = lib;
    say(sc->opt, IDP_LOG_DEBUG, "plugin %s: loaded from %s", tab->name, path);
    note_seen(sc, lib);
}

static int is_candidate(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 11 && strncmp(d->d_name, "idprime-", 8) == 0 &&
           strcmp(d->d_name + n - 3, ".so") == 0;
}

/* Loads every candidate in dir (len bytes of it), or only the file named
 * `only` when that is not NULL. */
static void scan_dir(scan *sc, const char *dir, size_t len, const char *only)
{
    char path[4096];
    if (len == 0 || len >= sizeof path)
        return;
    memcpy(path, dir, len);
    path[len] = '\0';
    for (size_t i = 0; i < sc->ndirs; i++)
        if (strcmp(sc->dirs[i], path) == 0)
            return; /* already searched */
    char **grown = realloc(sc->dirs, (sc->ndirs + 1) * sizeof *grown);
    if (grown == NULL)
        return;
    sc->dirs = grown;
    if ((sc->dirs[sc->ndirs] = strdup(path)) == NULL)
        return;
    sc->ndirs++;
    size_t used = strlen(sc->searched);
    snprintf(sc->searched + used, sizeof sc->searched - used, "%s%s",
             used ? ":" : "", path);
    if (only != NULL) {
        char file[4200];
        struct stat st;
        snprintf(file, sizeof file, "%s/%s", path, only);
        if (stat(file, &st) == 0 || errno != ENOENT)
            try_file(sc, path, only);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, is_candidate, alphasort);
    if (n < 0)
        return;
    for (int i = 0; i < n; i++) {
        try_file(sc, path, names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

static void scan_list(scan *sc, const char *list, const char *only)
{
    while (list != NULL && *list != '\0') {
        size_t n = strcspn(list, ":");
        scan_dir(sc, list, n, only);
        list += n;
        if (*list == ':')
            list++;
    }
}

/* LIBDIR/idprime beside the libidprime.so that is running (in a build tree,
 * the plugins beside the built library), so an install moved to another
 * prefix still finds its plugins. */
static void scan_beside_library(scan *sc, const char *only)
{
    Dl_info info;
    char dir[4096];
    if (dladdr((void *)scan_beside_library, &info) == 0 || info.dli_fname == NULL)
        return;
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash == NULL)
        return;
    int n = snprintf(dir, sizeof dir, "%.*s/idprime",
                     (int)(slash - info.dli_fname), info.dli_fname);
    if (n > 0 && (size_t)n < sizeof dir && strcmp(dir, IDP_INSTALL_PLUGIN_DIR) != 0)
        scan_dir(sc, dir, (size_t)n, only);
}

/* Every folder of the search path, in order. */
static void scan_all(scan *sc, const char *only)
{
    if (sc->opt != NULL && sc->opt->size >= offsetof(idp_options, plugin_path) +
                                                sizeof(char *))
        scan_list(sc, sc->opt->plugin_path, only);
    scan_list(sc, getenv("IDPRIME_PLUGIN_PATH"), only);
    scan_beside_library(sc, only);
    scan_list(sc, IDP_INSTALL_PLUGIN_DIR, only);
}

static const plugin_lib *find_loaded(const char *scheme)
{
    for (size_t i = 0; i < nloaded; i++)
        if (has_scheme(loaded[i]->tab, scheme))
            return loaded[i];
    return NULL;
}

int dispatcher_load(const idp_options *opt, const char *scheme,
                    const plugin_lib **out, idp_error *err)
{
    *out = NULL;
    scan sc = {.opt = opt, .want = scheme};
    pthread_mutex_lock(&reg_mu);
    const plugin_lib *found = find_loaded(scheme);
    if (found == NULL && valid_scheme(scheme)) {
        char named[128];
        snprintf(named, sizeof named, "idprime-%s.so", scheme);
        scan_all(&sc, named);
        found = find_loaded(scheme);
        if (found == NULL && sc.refusal[0] == '\0') {
            sc.searched[0] = '\0';
            for (size_t i = 0; i < sc.ndirs; i++)
                free(sc.dirs[i]);
            sc.ndirs = 0;
            scan_all(&sc, NULL);
            found = find_loaded(scheme);
        }
    }
    int rc = IDP_OK;
    if (found == NULL) {
        char have[160] = "";
        size_t n = 0;
        for (size_t i = 0; i < nloaded && n < sizeof have; i++)
            for (const char *const *s = loaded[i]->tab->schemes;
                 *s != NULL && n < sizeof have; s++)
                n += (size_t)snprintf(have + n, sizeof have - n, "%s%s",
                                      n ? ", " : "", *s);
        if (sc.refusal[0] != '\0')
            rc = idp_seterr(err, IDP_EPLUGIN, "no plugin for scheme '%s': %s",
                            scheme, sc.refusal);
        else
            rc = idp_seterr(err, IDP_EPLUGIN, "no plugin for scheme '%s' "
                            "(known schemes: %s; searched %s; set "
                            "IDPRIME_PLUGIN_PATH)", scheme,
                            n ? have : "none", sc.searched);
    }
    pthread_mutex_unlock(&reg_mu);
    scan_free(&sc);
    *out = found;
    return rc;
}

API int idp_plugins(const idp_options *opt, idp_plugin_fn fn, void *ud,
                    idp_error *err)
{
    if (fn == NULL)
        return idp_seterr(err, IDP_EINVAL, "idp_plugins: the callback is NULL");
    scan sc = {.opt = opt};
    pthread_mutex_lock(&reg_mu);
    scan_all(&sc, NULL);
    pthread_mutex_unlock(&reg_mu);
    /* the callback runs with no lock held; the entries live forever */
    for (size_t i = 0; i < sc.nseen; i++) {
        const idp_plugin *t = sc.seen[i]->tab;
        char schemes[128] = "";
        size_t n = 0;
        for (const char *const *s = t->schemes; *s && n < sizeof schemes; s++)
            n += (size_t)snprintf(schemes + n, sizeof schemes - n, "%s%s",
                                  n ? "," : "", *s);
        idp_plugin_info info = {t->name, schemes, t->abi_version,
                                sc.seen[i]->path};
        fn(ud, &info);
    }
    int rc = sc.nseen > 0 ? IDP_OK
                          : idp_seterr(err, IDP_EPLUGIN, "no plugin found "
                                       "(searched %s; set IDPRIME_PLUGIN_PATH)",
                                       sc.searched);
    scan_free(&sc);
    return rc;
}
