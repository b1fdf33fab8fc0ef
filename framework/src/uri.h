/* uri.h - parsing store URIs into the plugin ABI's idp_uri. */
#ifndef IDP_URI_H
#define IDP_URI_H

#include "error.h"
#include "idprime/plugin.h"

/* One query parameter, percent-decoded. */
typedef struct uri_param {
    char *key;
    char *value;
} uri_param;

/* A parsed URI that owns its strings. `pub` points into them. */
typedef struct uri_parsed {
    idp_uri pub;
    idp_uri_host *hosts;
    uri_param *params;
    size_t nparams;
    char *strings;   /* one allocation holding every decoded string */
} uri_parsed;

/*
 * Parses `text` (scheme://[user[:password]@]host[:port][,host[:port]...]
 * [/path][?key=value&...]). Every string is percent-decoded; a repeated
 * query key is an error. On error fills err (IDP_EINVAL, naming the part at
 * fault) and leaves *out empty, nothing to free.
 */
IDP_HIDDEN int uri_parse(const char *text, uri_parsed *out, idp_error *err);

/* Frees what uri_parse allocated; safe on a zeroed struct. */
IDP_HIDDEN void uri_free(uri_parsed *u);



/* Copies `text` into buf with any password replaced by "***", for messages.
 * Returns buf. */
IDP_HIDDEN char *uri_redact(const char *text, char *buf, size_t len);
#endif
