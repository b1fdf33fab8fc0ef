/*
 * internal.h - what the config loader and the policy bridge share.
 */
#ifndef IDP_CONFIG_INTERNAL_H
#define IDP_CONFIG_INTERNAL_H

#include <pthread.h>

#include "idprime/config.h"
#include "sandbox.h"

#define API __attribute__((visibility("default")))

/* The engine's batch range, as documented in idprime.h. */
#define CONFIG_MAX_BATCH (UINT64_C(1) << 30)

struct idp_config {
    char *path;
    char *src;                /* the script's text, while loading only */
    size_t srclen;
    char *uri;
    char **params;            /* NULL-terminated, sorted "key=value" */
    size_t nparams, cap;
    int oom;                  /* a C allocation failed while loading */
    char **counters;          /* NULL-terminated, sorted: counters' names */
    size_t ncounters, ccap;

    /* Kept only when the script returned a policy. */
    sandbox sb;
    int policy_ref;           /* the function, in the registry */
    int policy_line;          /* where it is defined, for messages */
    uint64_t policy_instructions;
    pthread_mutex_t mu;       /* one policy call at a time */
    int mu_ready;
    uint64_t failures;        /* policy calls failed or answering nonsense */
    idp_log_fn log;
    void *log_ud;
};

/* The idp_policy_fn behind idp_config_apply (policy.c). */
SB_HIDDEN uint64_t config_policy(void *ud, const idp_policy_input *in);

#endif
