/*
 * cmd_migrate.c - idprime migrate FROM_URI TO_URI [COUNTER...]: raise each
 * counter in TO to at least its value in FROM, never lowering it, so a user
 * who moves stores continues above every ID already handed out.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: idprime migrate FROM_URI TO_URI [COUNTER...] [--dry-run]\n"
    "Raises each COUNTER in TO to at least its value in FROM (every counter\n"
    "FROM holds when none is named) and never lowers one. --dry-run prints\n"
    "what it would do and changes nothing.\n";

typedef struct names {
    char **v;
    size_t n;
} names;

static int collect(void *ud, const char *name, uint64_t value)
{
    (void)value;
    names *ns = ud;
    char **grown = realloc(ns->v, (ns->n + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    ns->v = grown;
    if ((ns->v[ns->n] = strdup(name)) == NULL)
        return -1;
    ns->n++;
    return 0;
}

/* Migrates one counter; prints what it did. Returns 0 or EXIT_WORK. */
static int migrate_one(idp_client *from, idp_client *to, const char *name,
                       int dry)
{
    idp_error err;
    uint64_t v, was;
    int exists;
    if (idp_get(from, name, &v, &exists, &err) != IDP_OK) {
        cli_error("migrate", "%s: reading FROM: %s", name, err.msg);
        return err.code == IDP_EINVAL ? EXIT_USAGE : EXIT_WORK; /* a bad name */
    }
    if (!exists) {
        printf("%s: not in FROM, skipped\n", name);
        return 0;
    }
    if (idp_get(to, name, &was, NULL, &err) != IDP_OK) {
        cli_error("migrate", "%s: reading TO: %s", name, err.msg);
        return EXIT_WORK;
    }
    if (was >= v) {
        printf("%s: TO is at %llu >= %llu, unchanged\n", name,
               (unsigned long long)was, (unsigned long long)v);
        return 0;
    }
    if (dry) {
        printf("%s: would raise TO from %llu to %llu\n", name,
               (unsigned long long)was, (unsigned long long)v);
        return 0;
    }
    uint64_t now;
    if (idp_raise(to, name, v, &now, &err) != IDP_OK) {
        cli_error("migrate", "%s: raising TO: %s", name, err.msg);
        return EXIT_WORK;
    }
    printf("%s: raised TO from %llu to %llu\n", name, (unsigned long long)was,
           (unsigned long long)now);
    return 0;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option longs[] = {
        {"dry-run", no_argument, NULL, 'd'}, CLI_COMMON_LONGOPTS, {0}};
    cli_common co = {0};
    int dry = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longs, NULL)) != -1) {
        int r = cli_common_opt(opt, &co, usage);
        if (r < 0)
            return 0;
        if (r > 0)
            continue;
        if (opt != 'd') {
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
        dry = 1;
    }
    if (argc - optind < 2) {
        cli_error("migrate", "missing %s", argc - optind == 0 ? "FROM_URI" : "TO_URI");
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    int rc = 0;
    idp_client *from = cli_open("migrate", argv[optind], &co, &rc);
    if (from == NULL)
        return rc;
    idp_client *to = cli_open("migrate", argv[optind + 1], &co, &rc);
    if (to == NULL) {
        idp_close(from);
        return rc;
    }
    names ns = {0};
    int first = optind + 2;
    if (first == argc) {
        idp_error err;
        if (idp_list(from, collect, &ns, &err) != IDP_OK) {
            cli_error("migrate", "listing FROM: %s", err.msg);
            rc = err.code == IDP_EUNSUPPORTED ? EXIT_USAGE : EXIT_WORK;
        }
    }
    if (rc == 0) {
        size_t n = first == argc ? ns.n : (size_t)(argc - first);
        for (size_t i = 0; i < n; i++) {
            const char *name = first == argc ? ns.v[i] : argv[first + (int)i];
            int one = migrate_one(from, to, name, dry);
            if (one != 0 && rc != EXIT_USAGE)
                rc = one;
        }
    }
    for (size_t i = 0; i < ns.n; i++)
        free(ns.v[i]);
    free(ns.v);
    idp_close(from);
    idp_close(to);
    return rc;
}
