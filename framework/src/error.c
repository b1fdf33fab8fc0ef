/* error.c - status codes, messages and the one free for library memory. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define API __attribute__((visibility("default")))

API const char *idp_strerror(int code)
{
    switch (code) {
    case IDP_OK: return "success";
    case IDP_EINVAL: return "invalid argument";
    case IDP_ENOMEM: return "out of memory";
    case IDP_EPLUGIN: return "plugin error";
    case IDP_ESTORE: return "store error";
    case IDP_ETIMEOUT: return "store timed out";
    case IDP_EREGRESS: return "store went backwards";
    case IDP_ERANGE: return "counter would reach 2^63";
    case IDP_EUNSUPPORTED: return "not supported by this store";
    default: return "unknown error";
    }
}

int idp_seterr(idp_error *err, int code, const char *fmt, ...)
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

int idp_prefixerr(idp_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return IDP_OK;
    char head[sizeof err->msg], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
    return err->code;
}

API void idp_free(void *p)
{
    free(p);
}
