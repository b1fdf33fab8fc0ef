/*
 * test_scale.c - counters at scale and the metrics text: 100,000 counters
 * in one client (found by name, one fetch each, the text proportional),
 * the text valid for `promtool check metrics` whatever the allowed counter
 * names, and numbers written the same in every locale.
 */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <locale.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "idprime/idprime.h"
#include "testutil.h"


/* How many lines of `text` start with `head`. A plain scan: strstr in a
 * loop is quadratic under ASan, whose strstr measures the whole rest of
 * the text on every call. */
static size_t lines_starting(const char *text, const char *head)
{
    size_t n = 0, len = strlen(head);
    for (const char *p = text; *p != '\0';) {
        if (strncmp(p, head, len) == 0)
            n++;
        while (*p != '\0' && *p != '\n')
            p++;
        if (*p == '\n')
            p++;
    }
    return n;
}

/* The value on the line `prefix VALUE` of the text (prefix at the start of
 * a line, followed by one space); fails the test when there is none or
 * more than one. */
static uint64_t value_of(const char *text, const char *prefix)
{
    char want[300];
    snprintf(want, sizeof want, "\n%s ", prefix);
    const char *p = strstr(text, want);
    ck_assert_msg(p != NULL, "no line '%s VALUE' in:\n%s", prefix, text);
    ck_assert_msg(strstr(p + 1, want) == NULL, "line '%s' twice", prefix);
    return strtoull(p + strlen(want), NULL, 10);
}

/* Fails when a line starting with `head` appears twice in the text. */
static void assert_lines_unique(const char *text, const char *head)
{
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    size_t n = 0, cap = 64;
    char **lines = malloc(cap * sizeof *lines);
    ck_assert_ptr_nonnull(lines);
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, head, strlen(head)) != 0)
            continue;
        if (n == cap) {
            lines = realloc(lines, (cap *= 2) * sizeof *lines);
            ck_assert_ptr_nonnull(lines);
        }
        lines[n++] = l;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            ck_assert_msg(strcmp(lines[i], lines[j]) != 0,
                          "'%s' appears twice", lines[i]);
    free(lines);
    free(copy);
}

/* Runs `promtool check metrics` on the text; fails the test, with
 * promtool's output, when it is not valid or has any lint problem (a parse
 * error is status 1, a lint problem status 3), and when promtool is
 * missing (it comes with Debian's prometheus package). */
static void assert_promtool_valid(const char *text)
{
    ck_assert_msg(system("command -v promtool >/dev/null 2>&1") == 0,
                  "promtool not found on PATH: install Debian's prometheus "
                  "package (scripts/deps.sh does); the metrics cannot be "
                  "checked without it");
    char dir[] = "/tmp/idp-metrics-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char in[64], out[64], cmd[256];
    snprintf(in, sizeof in, "%s/metrics.txt", dir);
    snprintf(out, sizeof out, "%s/promtool.txt", dir);
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s 2>&1", in, out);
    int st = system(cmd);
    char said[2048] = "";
    f = fopen(out, "r");
    if (f != NULL) {
        size_t n = fread(said, 1, sizeof said - 1, f);
        said[n] = '\0';
        fclose(f);
    }
    unlink(in);
    unlink(out);
    rmdir(dir);
    ck_assert_msg(st != -1 && WIFEXITED(st), "promtool did not run: %d", st);
    int code = WEXITSTATUS(st);
    ck_assert_msg(code == 0 && said[0] == '\0',
                  "promtool check metrics: status %d, output:\n%.1500s\n"
                  "on the text (from its start):\n%.1500s", code, said, text);
}

/* ---- 8. 100,000 counters ------------------------------------------------ */

/* 100,000 in every build: about 1 s, 7 s and 0.8 GB under TSan. */
#define MANY 100000

START_TEST(test_100000_counters_each_one_id_in_one_client)
{
    idp_client *c = tu_open("mem://scale", NULL);
    idp_counter **k = malloc(MANY * sizeof *k);
    ck_assert_ptr_nonnull(k);
    char name[16];
    idp_error e = {0, ""};
    for (int i = 0; i < MANY; i++) {
        snprintf(name, sizeof name, "c%d", i);
        k[i] = idp_counter_get(c, name, &e);
        if (k[i] == NULL)
            ck_abort_msg("idp_counter_get(%s): %s", name, e.msg);
        uint64_t id = 0;
        int rc = idp_next(k[i], &id, &e);
        if (rc != IDP_OK || id != 1)
            ck_abort_msg("%s: idp_next: rc %d, ID %" PRIu64 " (want 1): %s",
                         name, rc, id, e.msg);
    }
    /* the same handle for the same name, and each counter's own count */
    for (int i = 0; i < MANY; i++) {
        snprintf(name, sizeof name, "c%d", i);
        idp_counter *again = idp_counter_get(c, name, &e);
        if (again != k[i])
            ck_abort_msg("%s: another handle the second time", name);
        idp_counter_stats s = tu_stats(k[i]);
        if (s.ids_served != 1 || s.prime_calls != 1)
            ck_abort_msg("%s: ids_served %" PRIu64 ", prime_calls %" PRIu64
                         " (want 1, 1)", name, s.ids_served, s.prime_calls);
    }
    /* a second ID from a few: 2, from the same counter's pool */
    for (int i = 0; i < MANY; i += 997)
        ck_assert_uint_eq(tu_next(k[i]), 2);
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(m);
    size_t len = strlen(m);
    ck_assert_msg(len / MANY < 1024, "metrics: %zu bytes for %d counters, "
                  "%zu per counter (at most 1 KB)", len, MANY, len / MANY);
    /* every counter is in the text */
    ck_assert_uint_eq(lines_starting(m, "idprime_ids_served_total{counter=\"c"),
                      MANY);
    snprintf(name, sizeof name, "c%d", MANY - 1);
    char want[64];
    snprintf(want, sizeof want, "idprime_ids_served_total{counter=\"%s\"}", name);
    ck_assert_uint_eq(value_of(m, want), 1);
    ck_assert_uint_eq(value_of(m, "idprime_ids_served_total{counter=\"c0\"}"), 2);
    idp_free(m);
    free(k);
    idp_close(c);
}
END_TEST

/* ---- 9. Valid for every allowed name ------------------------------------ */

START_TEST(test_metrics_are_valid_for_every_allowed_name)
{
    idp_client *c = tu_open("mem://names?batch=10&low_watermark=0", NULL); /* no prefetch: one fetch each */
    /* the six, and names promtool's linter would refuse in a
     * metric name (camelCase, a unit, a metric type) */
    static const char *const names[] = {"a-b", "a.b", "a_b", "a:b", "inode",
                                        "chunk", "inodeCount", "my_counter",
                                        "wait_ms"};
    enum { NNAMES = sizeof names / sizeof names[0] };
    /* each one used, a different number of IDs each: 1, 2, ... */
    for (int i = 0; i < NNAMES; i++) {
        idp_counter *k = tu_counter(c, names[i]);
        for (int j = 0; j <= i; j++)
            tu_next(k);
        ck_assert_uint_eq(tu_stats(k).ids_served, (uint64_t)i + 1);
    }
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(m);
    assert_promtool_valid(m);
    char want[128];
    for (int i = 0; i < NNAMES; i++) {
        snprintf(want, sizeof want, "idprime_ids_served_total{counter=\"%s\"}",
                 names[i]);
        ck_assert_uint_eq(value_of(m, want), (uint64_t)i + 1);
        snprintf(want, sizeof want, "idprime_prime_calls_total{counter=\"%s\"}",
                 names[i]);
        ck_assert_uint_eq(value_of(m, want), 1);
    }
    /* the seed's names where the name is a clean metric-name part */
    ck_assert_uint_eq(value_of(m, "meta_inode_ids_served_total"), 5);
    ck_assert_uint_eq(value_of(m, "meta_chunk_ids_served_total"), 6);
    ck_assert_uint_eq(value_of(m, "meta_chunk_prime_calls_total"), 1);
    ck_assert_uint_eq(lines_starting(m, "meta_inode_ids_served_total "), 1);
    /* and nowhere else */
    static const char *const labelled_only[] = {"meta_a-b", "meta_a.b",
        "meta_a:b", "meta_a_b", "meta_inodeCount", "meta_my_counter",
        "meta_wait_ms"};
    for (size_t i = 0; i < sizeof labelled_only / sizeof labelled_only[0]; i++)
        ck_assert_msg(strstr(m, labelled_only[i]) == NULL,
                      "a %s... line:\n%s", labelled_only[i], m);
    assert_lines_unique(m, "# HELP ");
    assert_lines_unique(m, "# TYPE ");
    idp_free(m);
    idp_close(c);
}
END_TEST

/* ---- 10. Locale --------------------------------------------------------- */

/* Switches to a locale whose decimal point is a comma: de_DE.UTF-8 when
 * installed, else compiled now from the system's locale sources into a
 * temporary folder (LOCPATH). Returns 1 when one is in effect; `dir` gets
 * the folder to remove ("" for none). */
static int comma_locale(char *dir, size_t dirlen)
{
    dir[0] = '\0';
    static const char *const tries[] = {"de_DE.UTF-8", "de_DE.utf8",
                                        "fr_FR.UTF-8", "nl_NL.UTF-8"};
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++)
        if (setlocale(LC_ALL, tries[i]) != NULL)
            return 1;
    if (access("/usr/share/i18n/locales/de_DE", R_OK) != 0 ||
        system("command -v localedef >/dev/null 2>&1") != 0)
        return 0;
    char tmpl[] = "/tmp/idp-locale-XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return 0;
    snprintf(dir, dirlen, "%s", tmpl);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 "
             ">/dev/null 2>&1", dir);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) > 1) /* 1: warnings */
        return 0;
    setenv("LOCPATH", dir, 1);
    return setlocale(LC_ALL, "de_DE.UTF-8") != NULL;
}

START_TEST(test_numbers_do_not_depend_on_the_locale)
{
    char dir[64];
    int comma = comma_locale(dir, sizeof dir);
    if (dir[0] != '\0') {
        /* loaded (mapped) already, or failed: the folder can go now */
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
    }
    char probe[32];
    snprintf(probe, sizeof probe, "%.1f", 1.5);
    if (comma) {
        /* the locale is in effect for this process's printf */
        ck_assert_str_eq(probe, "1,5");
    } else {
        fprintf(stderr, "locale: no locale with a decimal comma could be "
                "installed or compiled; checking the text in \"%s\"\n",
                setlocale(LC_ALL, NULL));
    }
    /* a fetch that takes time, so the latency sum has a fraction */
    idp_client *c = tu_open("mem://locale?batch=10&adaptive=0&delay_ms=3", NULL);
    idp_counter *k = tu_counter(c, "x");
    for (int i = 0; i < 25; i++)
        tu_next(k);
    tu_settle(k);
    char *m = idp_metrics(c);
    ck_assert_ptr_nonnull(m);
    regex_t sum, sample;
    ck_assert_int_eq(regcomp(&sum, "^idprime_fetch_seconds_sum [0-9]+\\.[0-9]{9}$",
                             REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
    ck_assert_msg(regexec(&sum, m, 0, NULL, 0) == 0,
                  "no 'idprime_fetch_seconds_sum SECONDS.NANOSECONDS' in:\n%s", m);
    /* every sample's value: digits, and at most one '.', never a ',' */
    ck_assert_int_eq(regcomp(&sample, "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{[^}]*\\})? "
                             "[0-9]+(\\.[0-9]+)?$", REG_EXTENDED | REG_NOSUB), 0);
    char *copy = strdup(m), *save = NULL;
    ck_assert_ptr_nonnull(copy);
    int samples = 0;
    for (char *l = strtok_r(copy, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#')
            continue;
        samples++;
        ck_assert_msg(regexec(&sample, l, 0, NULL, 0) == 0,
                      "a sample not written as a plain number: '%s'", l);
        const char *val = strrchr(l, ' ');
        ck_assert_msg(strchr(val, ',') == NULL, "a ',' in a number: '%s'", l);
    }
    ck_assert_int_ge(samples, 20);
    /* the sum is the fetches' time: 3 fetches of at least 3 ms */
    const char *p = strstr(m, "\nidprime_fetch_seconds_sum ");
    ck_assert_ptr_nonnull(p);
    setlocale(LC_ALL, "C");
    double secs = strtod(p + strlen("\nidprime_fetch_seconds_sum "), NULL);
    ck_assert_msg(secs >= 0.009 && secs < 60, "fetch seconds %f", secs);
    assert_promtool_valid(m);
    free(copy);
    regfree(&sum);
    regfree(&sample);
    idp_free(m);
    idp_close(c);
}
END_TEST

int main(void)
{
    const TTest *scale[] = {test_100000_counters_each_one_id_in_one_client,
                            NULL};
    const TTest *metrics[] = {test_metrics_are_valid_for_every_allowed_name,
                              test_numbers_do_not_depend_on_the_locale, NULL};
    const tu_case cases[] = {{.name = "scale", .tests = scale},
                             {.name = "metrics", .tests = metrics},
                             {.name = NULL}};
    return tu_run(tu_suite("scale", 120, cases));
}
