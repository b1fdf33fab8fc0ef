/*
 * log_helpers.h - the log every client of a store suite writes into, so a
 * test can assert what the library said (part of idprime-harness; the
 * redis and SQL helpers include it).
 */
#ifndef IDPRIME_LOG_HELPERS_H
#define IDPRIME_LOG_HELPERS_H

#include "idprime/idprime.h"

/* Everything the library logged, a "\nLEVEL:message" line each. */
extern char log_text[32768];
void log_clear(void);
int log_has(const char *text);

/* Every client of the tests logs into log_text. */
extern const idp_options with_log;

/* idp_open with the log; err is cleared first. */
idp_client *try_open(const char *uri, idp_error *err);

#endif
