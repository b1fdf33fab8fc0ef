/* error.h - filling idp_error, the library's one error path. */
#ifndef IDP_ERROR_H
#define IDP_ERROR_H

#include "idprime/idprime.h"

#define IDP_HIDDEN __attribute__((visibility("hidden")))

/* Fills err (when not NULL) with code and a formatted message; returns code. */
IDP_HIDDEN int idp_seterr(idp_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to err->msg, keeping the code; returns err->code. */
IDP_HIDDEN int idp_prefixerr(idp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
