/*
 * fuzz_config.c - libFuzzer target for the config script loader
 * (libidprime-config): the input is a config script's text, loaded with
 * idp_config_load in its sandbox, then its settings handed to the engine's
 * options as idp_open would, and its policy (if any) called once.
 *
 * The caps are lower than the defaults (an instruction budget of 500k for
 * the script and 100k per policy call, 8 MiB of heap) so that an input
 * that runs into them costs at most a few hundred ms (the budget also
 * counts CPU time spent in C, at SB_NS_PER_INSTRUCTION); what they cap is
 * the same code. A script that runs past libFuzzer's -timeout despite them
 * is a finding: the sandbox must bound every script, whatever it calls.
 *
 * Checks, beyond "no crash, no leak, no undefined behaviour": a failure
 * fills err with "FILE:LINE:" first, a success gives sorted, unique,
 * well-formed settings, and every setting the loader accepted for an
 * engine key is one the engine accepts too (the loader promises to report
 * a bad engine setting at FILE:LINE, before any store is opened).
 */
#define _GNU_SOURCE /* memfd_create */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "idprime/config.h"
#include "options.h"
#include "uri.h"

#define MAX_INSTRUCTIONS 500000u
#define POLICY_INSTRUCTIONS 100000u
#define MAX_MEMORY (8u << 20)

static int fd = -1;
static char path[64];

static void quiet(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    FUZZ_CHECK(msg != NULL, "NULL log message");
    (void)strlen(msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the script goes to an anonymous file, read back by its /proc path:
     * the loader reads a path, and nothing lands on the disk */
    fd = memfd_create("idprime-fuzz-config", 0);
    FUZZ_CHECK(fd >= 0, "memfd_create failed");
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void write_script(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0, "ftruncate");
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        FUZZ_CHECK(n > 0, "pwrite");
        done += (size_t)n;
    }
}

/* "FILE:LINE: ..." or "FILE: ..." (no line for a file that cannot be read
 * or memory that ran out before the script started). */
static void check_message(const idp_error *err)
{
    size_t n = strlen(path);
    FUZZ_CHECK(strncmp(err->msg, path, n) == 0 && err->msg[n] == ':',
               "message does not start with the file: '%s'", err->msg);
}

/* Sorted by key, unique keys, each "key=value" with a non-empty key. */
static void check_params(const char *const *params)
{
    FUZZ_CHECK(params != NULL, "NULL params");
    const char *prev = NULL;
    size_t prevlen = 0;
    for (const char *const *p = params; *p != NULL; p++) {
        const char *eq = strchr(*p, '=');
        FUZZ_CHECK(eq != NULL && eq != *p, "setting '%s' is not key=value", *p);
        size_t kl = (size_t)(eq - *p);
        FUZZ_CHECK(options_valid_name(*p, kl), "key of '%s'", *p);
        if (prev != NULL) {
            size_t m = kl < prevlen ? kl : prevlen;
            int c = memcmp(prev, *p, m);
            FUZZ_CHECK(c < 0 || (c == 0 && prevlen < kl),
                       "'%s' after '%s': not sorted or twice", *p, prev);
        }
        prev = *p;
        prevlen = kl;
    }
}

/* The counters table's names: valid names, strictly increasing (sorted,
 * each once). */
static void check_counters(const char *const *names)
{
    FUZZ_CHECK(names != NULL, "NULL counters");
    for (const char *const *p = names; *p != NULL; p++) {
        FUZZ_CHECK(options_valid_name(*p, strlen(*p)), "counter name '%s'",
                   *p);
        FUZZ_CHECK(p == names || strcmp(p[-1], *p) < 0,
                   "counter '%s' after '%s': not sorted or twice", *p, p[-1]);
    }
}

/* Every setting that names an engine key (a message other than "unknown
 * parameter") must pass the engine alone; the plugin's keys are checked
 * by idp_open, not here. */
static void check_engine_accepts(const char *const *params)
{
    for (const char *const *p = params; *p != NULL; p++) {
        const char *one[2] = {*p, NULL};
        engine_cfg cfg;
        idp_error err;
        int rc = options_build(&cfg, NULL, one, NULL, "none", &err);
        if (rc == IDP_OK) {
            options_free(&cfg);
            continue;
        }
        FUZZ_CHECK(strncmp(err.msg, "unknown parameter", 17) == 0,
                   "the loader accepted '%s', the engine refuses it: %s", *p,
                   err.msg);
    }
}

/* The URI the script gave, parsed as idp_open would (it may be bad: that
 * is idp_open's error to report, but it must not crash). */
static void check_uri(const char *uri, const char *const *params)
{
    if (uri == NULL)
        return;
    FUZZ_CHECK(uri[0] != '\0', "empty uri kept");
    uri_parsed u;
    idp_error err;
    if (uri_parse(uri, &u, &err) != IDP_OK)
        return;
    engine_cfg cfg;
    if (options_build(&cfg, &u, params, NULL, "none", &err) == IDP_OK)
        options_free(&cfg);
    uri_free(&u);
}

static void call_policy(const idp_config *cfg)
{
    idp_options opt;
    memset(&opt, 0, sizeof opt);
    opt.size = sizeof opt;
    idp_config_apply(cfg, &opt);
    FUZZ_CHECK(opt.params == idp_config_params(cfg), "params not applied");
    if (opt.policy == NULL)
        return;
    static const idp_policy_input inputs[] = {
        {"inode", 256, 1000.0, 0.03, 2, 1},
        {"chunk", 1, 0.0, 0.0, 0, 0},
        {"x", UINT64_C(1) << 30, 1e300, -1.0, UINT64_MAX, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        uint64_t b = opt.policy(opt.policy_ud, &inputs[i]);
        FUZZ_CHECK(b <= (UINT64_C(1) << 30), "policy answered %llu",
                   (unsigned long long)b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_script(data, size);
    idp_config_opts o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.log = quiet;
    o.max_memory = MAX_MEMORY;
    o.max_instructions = MAX_INSTRUCTIONS;
    o.policy_instructions = POLICY_INSTRUCTIONS;
    idp_error err;
    memset(&err, 'U', sizeof err);
    idp_config *cfg = idp_config_load(path, &o, &err);
    if (cfg == NULL) {
        FUZZ_CHECK((err.code == IDP_EINVAL || err.code == IDP_ENOMEM) &&
                   memchr(err.msg, '\0', sizeof err.msg) != NULL,
                   "code %d", err.code);
        check_message(&err);
        return 0;
    }
    const char *const *params = idp_config_params(cfg);
    check_params(params);
    check_engine_accepts(params);
    check_uri(idp_config_uri(cfg), params);
    check_counters(idp_config_counters(cfg));
    call_policy(cfg);
    idp_config_free(cfg);
    return 0;
}
