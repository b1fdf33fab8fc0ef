/*
 * log_helpers.c - the log every client of a store suite writes into
 * (log_helpers.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "log_helpers.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
char log_text[32768];

static void log_cb(void *ud, int level, const char *msg)
{
    (void)ud;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "\n%d:%s", level, msg);
    pthread_mutex_unlock(&log_mu);
}

void log_clear(void)
{
    pthread_mutex_lock(&log_mu);
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

int log_has(const char *text)
{
    pthread_mutex_lock(&log_mu);
    int found = strstr(log_text, text) != NULL;
    pthread_mutex_unlock(&log_mu);
    return found;
}

const idp_options with_log = {.size = sizeof(idp_options), .log = log_cb};

idp_client *try_open(const char *uri, idp_error *err)
{
    memset(err, 0, sizeof *err);
    return idp_open(uri, &with_log, err);
}
