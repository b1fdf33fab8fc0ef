/*
 * config_opt.c - --config FILE.lua for every command: the script is loaded
 * once per process, its settings and policy go into the options of every
 * client the command opens, and it is kept until exit, since a client may
 * call its policy until it is closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idprime/config.h"
#include "cli.h"

typedef struct loaded {
    char *path;
    idp_config *cfg;
    struct loaded *next;
} loaded;

static loaded *configs;
/* The config's log verbosity: alive as long as the configs. */
static cli_common log_co;

static void free_configs(void)
{
    while (configs != NULL) {
        loaded *l = configs;
        configs = l->next;
        idp_config_free(l->cfg);
        free(l->path);
        free(l);
    }
}

int cli_config(const cli_common *co, idp_options *opt, const char **uri,
               char *err, size_t errlen)
{
    loaded *l = configs;
    while (l != NULL && strcmp(l->path, co->config) != 0)
        l = l->next;
    if (l == NULL) {
        log_co.verbose = co->verbose;
        idp_config_opts o = {.size = sizeof o, .log = cli_log,
                             .log_ud = &log_co};
        idp_error e;
        idp_config *cfg = idp_config_load(co->config, &o, &e);
        if (cfg == NULL) {
            snprintf(err, errlen, "%s", e.msg);
            return -1;
        }
        if ((l = calloc(1, sizeof *l)) == NULL ||
            (l->path = strdup(co->config)) == NULL) {
            free(l);
            idp_config_free(cfg);
            snprintf(err, errlen, "--config: out of memory");
            return -1;
        }
        l->cfg = cfg;
        if (configs == NULL)
            atexit(free_configs);
        l->next = configs;
        configs = l;
    }
    idp_config_apply(l->cfg, opt);
    if (*uri == NULL)
        *uri = idp_config_uri(l->cfg);
    return 0;
}
