/*
 * dispatcher.h - finding and loading store plugins (dlopen) into one
 * process-wide table, refusing bad ones with a message naming the file and
 * the reason. A loaded plugin is never unloaded.
 */
#ifndef IDP_DISPATCHER_H
#define IDP_DISPATCHER_H

#include "error.h"
#include "idprime/plugin.h"

/* A loaded plugin; lives as long as the process. */
typedef struct plugin_lib {
    void *dl;
    const idp_plugin *tab;
    char *path;
    /* The URI keys the plugin accepts: its own, then its test hooks'. */
    idp_param_spec *params;
    const idp_plugin_testing *testing; /* NULL when it has none */
} plugin_lib;

/* True when the table's size covers method `m` and it is set. */
#define PLUGIN_HAS(tab, m)                                              \
    (offsetof(idp_plugin, m) + sizeof((tab)->m) <= (tab)->size &&       \
     (tab)->m != NULL)

/* True when the testing extension's size covers method `m` and it is set. */
#define TESTING_HAS(t, m)                                               \
    ((t) != NULL &&                                                     \
     offsetof(idp_plugin_testing, m) + sizeof((t)->m) <= (t)->size &&   \
     (t)->m != NULL)

/*
 * The plugin serving `scheme`: one loaded already, else the file named for
 * the scheme (idprime-SCHEME.so) on the search path, else whatever a scan
 * of every plugin on the path finds (opt->plugin_path, IDPRIME_PLUGIN_PATH,
 * idprime/ beside the running libidprime, the install directory). Each file
 * loaded is logged (IDP_LOG_DEBUG) and refused files are reported through
 * opt->log. On error (IDP_EPLUGIN) the message lists what was searched and,
 * where a file named after the scheme was refused, why.
 */
IDP_HIDDEN int dispatcher_load(const idp_options *opt, const char *scheme,
                               const plugin_lib **out, idp_error *err);

/*
 * Checks a plugin table as the loader does: ABI version, size, name,
 * schemes, required methods, the test hooks' size, the parameter tables.
 * `file_name` is the file's base name (for the name check) or NULL.
 */
IDP_HIDDEN int dispatcher_validate(const idp_plugin *tab, const char *file_name,
                                   idp_error *err);

/* The plugin's own URI keys, then its test hooks', in one NULL-terminated
 * array to free(); NULL when out of memory. */
IDP_HIDDEN idp_param_spec *params_merge(const idp_param_spec *a,
                                        const idp_param_spec *b);

/* Held across fork() by the fork handlers. */
IDP_HIDDEN void dispatcher_lock(void);
IDP_HIDDEN void dispatcher_unlock(void);

#endif
