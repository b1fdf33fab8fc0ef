/*
 * options.h - the engine's URI parameters and the plugin's, validated from
 * one table each: parsing, range checks and --help all read the same rows.
 */
#ifndef IDP_OPTIONS_H
#define IDP_OPTIONS_H

#include "uri.h"

#define IDP_MAX_BATCH (INT64_C(1) << 30)
#define IDP_NAME_MAX 200

/* Settings that may differ per counter ("batch", "inode_batch"). */
typedef struct counter_cfg {
    int64_t batch;            /* the fixed batch, or the adaptive floor */
    int64_t low_watermark;
    int64_t adaptive;         /* 1: batches follow the measured demand */
    int64_t max_batch;        /* the adaptive ceiling */
} counter_cfg;

typedef struct counter_override {
    char *name;
    counter_cfg cfg;
    unsigned set;             /* bit i: field i of counter_cfg was given */
} counter_override;

/* A validated plugin parameter. */
typedef struct plugin_value {
    const idp_param_spec *spec;
    char *value;
} plugin_value;

typedef struct engine_cfg {
    int64_t metaprime;
    int64_t give_back;
    int64_t timeout_ms;
    char *prefix;
    char *prime;              /* counters fetched at open, comma-separated */
    counter_cfg defaults;
    counter_override *counters;
    size_t ncounters;
    plugin_value *plugin;     /* values given for the plugin's own keys */
    size_t nplugin;
} engine_cfg;

/*
 * Builds the configuration: defaults, then the built-in per-counter ones
 * (inode_batch=256, chunk_batch=2048), then `extra` ("key=value" strings,
 * may be NULL), then the URI's query. `plugin_specs` are the plugin's keys
 * (may be NULL), `plugin_name` names them in messages. Every key is checked:
 * an unknown key, a non-number or a value out of range fails with
 * IDP_EINVAL naming the key and what is allowed. On error *cfg holds nothing
 * to free.
 */
IDP_HIDDEN int options_build(engine_cfg *cfg, const uri_parsed *u,
                             const char *const *extra,
                             const idp_param_spec *plugin_specs,
                             const char *plugin_name, idp_error *err);

IDP_HIDDEN void options_free(engine_cfg *cfg);

/* The settings of counter `name`: its own where given, else the defaults. */
IDP_HIDDEN counter_cfg options_counter(const engine_cfg *cfg, const char *name);

/* The value of a plugin key: given, else its default, else NULL. */
IDP_HIDDEN const char *options_plugin_value(const engine_cfg *cfg,
                                            const idp_param_spec *specs,
                                            const char *key);

/* Checks one value against a spec; the number goes to *num for INT. */
IDP_HIDDEN int options_check(const idp_param_spec *spec, const char *key,
                             const char *value, int64_t *num, idp_error *err);

/* Checks a plugin's parameter table (keys, types, ranges, defaults). */
IDP_HIDDEN int options_check_specs(const idp_param_spec *specs,
                                   idp_error *err);

/* 1 when `name` is a valid counter name ([A-Za-z0-9_.:-], 1..200 bytes). */
IDP_HIDDEN int options_valid_name(const char *name, size_t len);

/* Documents a plugin's keys as idp_engine_params does the engine's. */
IDP_HIDDEN void options_plugin_docs(const char *owner,
                                    const idp_param_spec *specs,
                                    idp_param_fn fn, void *ud);

#endif
