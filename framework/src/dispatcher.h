/*
 * dispatcher.h - finding and loading store plugins (dlopen), refusing bad
 * ones with a message naming the file and the reason.
 */
#ifndef IDP_DISPATCHER_H
#define IDP_DISPATCHER_H

#include "error.h"
#include "idprime/plugin.h"

/* A loaded plugin: the dlopen handle keeps the table alive. */
typedef struct plugin_lib {
    void *dl;
    const idp_plugin *tab;
    char *path;
} plugin_lib;

/* True when the table's version and size cover method `m` and it is set. */
#define PLUGIN_HAS(tab, m)                                              \
    (offsetof(idp_plugin, m) + sizeof((tab)->m) <= (tab)->size &&       \
     (tab)->m != NULL)

/*
 * Loads the plugin serving `scheme` from the search path (opt->plugin_path,
 * IDPRIME_PLUGIN_PATH, the build tree, the install directory). Refused files
 * are reported through opt->log. On error (IDP_EPLUGIN) the message lists
 * what was searched and, where a file named after the scheme was refused,
 * why.
 */
IDP_HIDDEN int dispatcher_load(const idp_options *opt, const char *scheme,
                               plugin_lib *out, idp_error *err);

/* Unloads a plugin loaded by dispatcher_load; safe on a zeroed struct. */
IDP_HIDDEN void dispatcher_unload(plugin_lib *p);

/*
 * Checks a plugin table as the loader does: ABI version, size, name,
 * schemes, required methods, parameter table. `file_name` is the file's
 * base name (for the name check) or NULL.
 */
IDP_HIDDEN int dispatcher_validate(const idp_plugin *tab, const char *file_name,
                                   idp_error *err);

#endif
