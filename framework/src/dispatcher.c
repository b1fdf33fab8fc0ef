/*
 * dispatcher.c - the plugin search path, loading with dlopen, and the
 * checks that refuse a file before any of its methods runs: not a regular
 * file, not loadable, no entry symbol, a wrong ABI version, a table too
 * small or incomplete, a scheme another plugin already claims.
 */
#define _GNU_SOURCE /* dladdr */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dispatcher.h"
#include "options.h"

#define API __attribute__((visibility("default")))

/* The end of the methods every version-1 table must have. */
#define V1_MIN_SIZE (offsetof(idp_plugin, get) + sizeof(void *))

typedef struct scan {
    const idp_options *opt;
    const char *want;        /* scheme sought, or NULL for all */
    plugin_lib *libs;        /* accepted */
    size_t nlibs;
    char searched[512];      /* the folders, for messages */
    char **dirs;             /* the folders already scanned */
    size_t ndirs;
    char refusal[256];       /* why a candidate for `want` was refused */
} scan;

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
    if (tab->abi_version == 0 || tab->abi_version > IDP_PLUGIN_ABI_VERSION)
        return idp_seterr(err, IDP_EPLUGIN, "ABI version %u, but this "
                          "idprime speaks version 1..%d (rebuild the plugin "
                          "against this idprime)", (unsigned)tab->abi_version,
                          IDP_PLUGIN_ABI_VERSION);
    if (tab->size < V1_MIN_SIZE)
        return idp_seterr(err, IDP_EPLUGIN, "plugin table too small: %u bytes, "
                          "version 1 needs at least %zu",
                          (unsigned)tab->size, V1_MIN_SIZE);
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
    if (options_check_specs(tab->params, err) != IDP_OK) {
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
                                      tab->size >= V1_MIN_SIZE &&
                                      has_scheme(tab, sc->want)))
        snprintf(sc->refusal, sizeof sc->refusal, "%s refused: %s", path, why);
}

static void try_file(scan *sc, const char *dir, const char *base)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, base);
    for (size_t i = 0; i < sc->nlibs; i++) {
        const char *b = strrchr(sc->libs[i].path, '/');
        if (strcmp(b ? b + 1 : sc->libs[i].path, base) == 0)
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
    for (size_t i = 0; i < sc->nlibs; i++) {
        for (const char *const *s = tab->schemes; *s != NULL; s++) {
            if (has_scheme(sc->libs[i].tab, *s)) {
                snprintf(why, sizeof why, "scheme '%s' is already claimed by "
                         "%s", *s, sc->libs[i].path);
                refuse(sc, path, base, tab, why);
                dlclose(dl);
                return;
            }
        }
    }
    plugin_lib *grown = realloc(sc->libs, (sc->nlibs + 1) * sizeof *grown);
    char *copy = strdup(path);
    if (grown == NULL || copy == NULL) {
        free(copy);
        if (grown != NULL)
            sc->libs = grown;
        dlclose(dl);
        return;
    }
    sc->libs = grown;
    sc->libs[sc->nlibs++] = (plugin_lib){dl, tab, copy};
}

static int is_candidate(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 11 && strncmp(d->d_name, "idprime-", 8) == 0 &&
           strcmp(d->d_name + n - 3, ".so") == 0;
}

static void scan_dir(scan *sc, const char *dir, size_t len)
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

static void scan_list(scan *sc, const char *list)
{
    while (list != NULL && *list != '\0') {
        size_t n = strcspn(list, ":");
        scan_dir(sc, list, n);
        list += n;
        if (*list == ':')
            list++;
    }
}

/* LIBDIR/idprime beside the libidprime.so that is running, so an install
 * moved to another prefix still finds its plugins. */
static void scan_beside_library(scan *sc)
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
        scan_dir(sc, dir, (size_t)n);
}

static void scan_all(scan *sc)
{
    if (sc->opt != NULL && sc->opt->size >= offsetof(idp_options, plugin_path) +
                                                sizeof(char *))
        scan_list(sc, sc->opt->plugin_path);
    scan_list(sc, getenv("IDPRIME_PLUGIN_PATH"));
    scan_list(sc, IDP_BUILD_PLUGIN_DIR);
    scan_beside_library(sc);
    scan_list(sc, IDP_INSTALL_PLUGIN_DIR);
}

static void scan_free(scan *sc, const plugin_lib *keep)
{
    for (size_t i = 0; i < sc->nlibs; i++) {
        if (&sc->libs[i] == keep)
            continue;
        dlclose(sc->libs[i].dl);
        free(sc->libs[i].path);
    }
    free(sc->libs);
    for (size_t i = 0; i < sc->ndirs; i++)
        free(sc->dirs[i]);
    free(sc->dirs);
}

int dispatcher_load(const idp_options *opt, const char *scheme,
                    plugin_lib *out, idp_error *err)
{
    memset(out, 0, sizeof *out);
    scan sc = {.opt = opt, .want = scheme};
    scan_all(&sc);
    const plugin_lib *found = NULL;
    for (size_t i = 0; i < sc.nlibs && found == NULL; i++)
        if (has_scheme(sc.libs[i].tab, scheme))
            found = &sc.libs[i];
    if (found != NULL)
        *out = *found;
    int rc = IDP_OK;
    if (found == NULL) {
        char have[160] = "";
        size_t n = 0;
        for (size_t i = 0; i < sc.nlibs && n < sizeof have; i++)
            for (const char *const *s = sc.libs[i].tab->schemes;
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
    scan_free(&sc, found);
    return rc;
}

void dispatcher_unload(plugin_lib *p)
{
    if (p->dl != NULL)
        dlclose(p->dl);
    free(p->path);
    memset(p, 0, sizeof *p);
}

API int idp_plugins(const idp_options *opt, idp_plugin_fn fn, void *ud,
                    idp_error *err)
{
    scan sc = {.opt = opt};
    scan_all(&sc);
    for (size_t i = 0; i < sc.nlibs; i++) {
        const idp_plugin *t = sc.libs[i].tab;
        char schemes[128] = "";
        size_t n = 0;
        for (const char *const *s = t->schemes; *s && n < sizeof schemes; s++)
            n += (size_t)snprintf(schemes + n, sizeof schemes - n, "%s%s",
                                  n ? "," : "", *s);
        idp_plugin_info info = {t->name, schemes, t->abi_version,
                                sc.libs[i].path};
        fn(ud, &info);
    }
    int rc = sc.nlibs > 0 ? IDP_OK
                          : idp_seterr(err, IDP_EPLUGIN, "no plugin found "
                                       "(searched %s; set IDPRIME_PLUGIN_PATH)",
                                       sc.searched);
    scan_free(&sc, NULL);
    return rc;
}
