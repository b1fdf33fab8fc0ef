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
    "what it would do and changes nothing. A counter that cannot be copied\n"
    "(FROM cannot read it, does not hold a named one, or TO refuses it) is\n"
    "named on stderr, the others are still copied, and the exit code is 1.\n"
    "SIGINT/SIGTERM stop it between two counters; it says how many it did\n"
    "not look at.\n";

/* The counters to copy: named on the command line, or listed by FROM (with
 * the value the listing saw). */
typedef struct names {
    char **v;
    uint64_t *listed;
    size_t n;
} names;

/* The listing callback; an interrupt stops the listing. */
static int collect(void *ud, const char *name, uint64_t value)
{
    names *ns = ud;
    if (cli_interrupted())
        return -1;
    char **grown = realloc(ns->v, (ns->n + 1) * sizeof *grown);
    if (grown == NULL)
        return -1;
    ns->v = grown;
    uint64_t *vals = realloc(ns->listed, (ns->n + 1) * sizeof *vals);
    if (vals == NULL)
        return -1;
    ns->listed = vals;
    if ((ns->v[ns->n] = strdup(name)) == NULL)
        return -1;
    ns->listed[ns->n++] = value;
    return 0;
}

enum { COPIED = 0, SKIPPED = 1, BAD_NAME = 2 };

/*
 * Migrates one counter and prints what it did. `listed` points at the value
 * FROM's listing gave, NULL for a named counter. Returns COPIED (raised, or
 * already high enough in TO), SKIPPED (with a line on stderr saying why:
 * TO may now be below what FROM handed out) or BAD_NAME.
 */
static int migrate_one(idp_client *from, idp_client *to, const char *name,
                       const uint64_t *listed, int dry)
{
    idp_error err;
    uint64_t v, was;
    int exists;
    if (idp_get(from, name, &v, &exists, &err) != IDP_OK) {
        cli_error("migrate", "%s: reading FROM: %s", name, err.msg);
        return err.code == IDP_EINVAL ? BAD_NAME : SKIPPED;
    }
    if (!exists) {
        /* A listed counter that is gone, or a named one that FROM does
         * not hold: FROM may be one server or node of several (a memcached
         * pool, a Redis Cluster) whose counters live elsewhere. Copying
         * nothing is then wrong, so it is never silent. */
        if (listed != NULL)
            cli_error("migrate", "%s: listed by FROM at %llu, then not found "
                      "in FROM: not migrated", name,
                      (unsigned long long)*listed);
        else
            cli_error("migrate", "%s: not in FROM: not migrated (if FROM is "
                      "one server of several, name them all in its URI)",
                      name);
        return SKIPPED;
    }
    /* a listing may have seen a later value than the get: the higher one
     * is the safe one to copy */
    if (listed != NULL && *listed > v)
        v = *listed;
    if (idp_get(to, name, &was, NULL, &err) != IDP_OK) {
        cli_error("migrate", "%s: reading TO: %s", name, err.msg);
        return SKIPPED;
    }
    if (was >= v) {
        printf("%s: TO is at %llu >= %llu, unchanged\n", name,
               (unsigned long long)was, (unsigned long long)v);
        return COPIED;
    }
    if (dry) {
        printf("%s: would raise TO from %llu to %llu\n", name,
               (unsigned long long)was, (unsigned long long)v);
        return COPIED;
    }
    uint64_t now;
    if (idp_raise(to, name, v, &now, &err) != IDP_OK) {
        cli_error("migrate", "%s: raising TO to %llu: %s", name,
                  (unsigned long long)v, err.msg);
        return SKIPPED;
    }
    printf("%s: raised TO from %llu to %llu\n", name, (unsigned long long)was,
           (unsigned long long)now);
    return COPIED;
}

/* Copies every counter; a skipped one never lets the command exit 0, and
 * the last line names them all. Returns the exit code. */
static int migrate_all(idp_client *from, idp_client *to, char **named,
                       size_t nnamed, const names *ns, int dry)
{
    size_t n = named != NULL ? nnamed : ns->n, nskipped = 0;
    int rc = 0;
    char list[1024] = "";
    size_t used = 0;
    size_t i;
    /* an interrupt stops between two counters: each is done or not begun */
    for (i = 0; i < n && !cli_interrupted(); i++) {
        const char *name = named != NULL ? named[i] : ns->v[i];
        int one = migrate_one(from, to, name,
                              named != NULL ? NULL : &ns->listed[i], dry);
        if (one == BAD_NAME)
            rc = EXIT_USAGE;
        if (one == COPIED)
            continue;
        if (rc == 0)
            rc = EXIT_WORK;
        nskipped++;
        if (used < sizeof list) {
            int w = snprintf(list + used, sizeof list - used, "%s%s",
                             used > 0 ? ", " : "", name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    fflush(stdout); /* what was done, then the summary on stderr */
    if (i < n) {
        cli_error("migrate", "interrupted: %zu of %zu counters not looked "
                  "at", n - i, n);
        if (rc == 0)
            rc = EXIT_WORK;
    }
    if (nskipped > 0)
        cli_error("migrate", "%zu of %zu counters not migrated: %s%s",
                  nskipped, n, list, used >= sizeof list ? "..." : "");
    return rc;
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
    /* one write a line: an interrupt or a closed pipe never leaves half */
    setvbuf(stdout, NULL, _IOLBF, 0);
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
        int st = idp_list(from, collect, &ns, &err);
        if (st != IDP_OK && cli_interrupted()) {
            cli_error("migrate", "interrupted while listing FROM: nothing "
                      "migrated");
            rc = EXIT_WORK;
        } else if (st != IDP_OK) {
            cli_error("migrate", "listing FROM: %s", err.msg);
            rc = err.code == IDP_EUNSUPPORTED ? EXIT_USAGE : EXIT_WORK;
        }
    }
    if (rc == 0)
        rc = migrate_all(from, to, first == argc ? NULL : argv + first,
                         (size_t)(argc - first), &ns, dry);
    int orc = cli_flush_output("migrate", 0);
    if (rc == 0)
        rc = orc;
    for (size_t i = 0; i < ns.n; i++)
        free(ns.v[i]);
    free(ns.v);
    free(ns.listed);
    idp_close(from);
    idp_close(to);
    return rc;
}
