/*
 * config_main.c - the smallest program against an installed
 * libidprime-config: it loads the config script given as its argument
 * (uri and settings), opens the client it describes, takes three IDs from
 * a counter and prints them.
 */
#include <stdio.h>

#include <idprime/config.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: config_example SCRIPT.lua\n");
        return 2;
    }
    idp_error err;
    idp_config *cfg = idp_config_load(argv[1], NULL, &err);
    if (cfg == NULL) {
        fprintf(stderr, "config_example: %s\n", err.msg);
        return 1;
    }
    idp_options opt = {.size = sizeof opt};
    idp_config_apply(cfg, &opt);
    idp_client *c = idp_open(idp_config_uri(cfg), &opt, &err);
    int rc = 1;
    if (c == NULL) {
        fprintf(stderr, "config_example: %s\n", err.msg);
        goto out;
    }
    idp_counter *ctr = idp_counter_get(c, "example", &err);
    for (int i = 0; ctr != NULL && i < 3; i++) {
        uint64_t id;
        if (idp_next(ctr, &id, &err) != IDP_OK)
            break;
        printf("%llu\n", (unsigned long long)id);
        rc = i == 2 ? 0 : 1;
    }
    if (rc != 0)
        fprintf(stderr, "config_example: %s\n", err.msg);
    idp_close(c);
out:
    idp_config_free(cfg);
    return rc;
}
