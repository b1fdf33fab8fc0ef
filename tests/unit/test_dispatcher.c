/*
 * test_dispatcher.c - the plugin loader: every bad file is refused before
 * any of its methods runs, with a message naming the file and the reason;
 * the search path and its order; the listing; and a plugin built against
 * the first, shorter table, for which the host falls back method by method.
 *
 * The plugins come from tests/plugins (testplug.c built once per case into
 * $IDPRIME_TEST_PLUGIN_DIR/<case>/); the real ones from IDPRIME_PLUGIN_PATH.
 * ctest sets both.
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idprime/idprime.h"
#include "idprime/plugin.h"
#include "testutil.h"

#define PATH_LEN 4096

/* ---- Paths ------------------------------------------------------------ */

static const char *env_dir(const char *var)
{
    const char *v = getenv(var);
    ck_assert_msg(v != NULL && v[0] != '\0',
                  "%s is not set: run this test through ctest", var);
    return v;
}

/* $IDPRIME_TEST_PLUGIN_DIR/<c>, or .../<c>/<file> when file is not NULL. */
static void case_path(char *buf, const char *c, const char *file)
{
    snprintf(buf, PATH_LEN, "%s/%s%s%s", env_dir("IDPRIME_TEST_PLUGIN_DIR"),
             c, file ? "/" : "", file ? file : "");
}

/* The real idprime-<name>.so in the first folder of IDPRIME_PLUGIN_PATH. */
static void real_plugin_path(char *buf, const char *name)
{
    const char *list = env_dir("IDPRIME_PLUGIN_PATH");
    int n = (int)strcspn(list, ":");
    snprintf(buf, PATH_LEN, "%.*s/idprime-%s.so", n, list, name);
}

/* ---- The log callback: every message, from any thread ----------------- */

#define MAX_LOGS 256

static struct {
    pthread_mutex_t mu;
    int n;
    int level[MAX_LOGS];
    char msg[MAX_LOGS][512];
} logs = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, {{0}}};

static void collect(void *ud, int level, const char *msg)
{
    (void)ud;
    pthread_mutex_lock(&logs.mu);
    if (logs.n < MAX_LOGS) {
        logs.level[logs.n] = level;
        snprintf(logs.msg[logs.n], sizeof logs.msg[0], "%s", msg);
        logs.n++;
    }
    pthread_mutex_unlock(&logs.mu);
}

/* The first message that starts with `head` and contains `part` (may be
 * NULL), or NULL. */
static const char *logged(const char *head, const char *part)
{
    const char *found = NULL;
    pthread_mutex_lock(&logs.mu);
    for (int i = 0; i < logs.n && found == NULL; i++)
        if (strncmp(logs.msg[i], head, strlen(head)) == 0 &&
            (part == NULL || strstr(logs.msg[i], part) != NULL))
            found = logs.msg[i];
    pthread_mutex_unlock(&logs.mu);
    return found;
}

/* How many messages contain `part`. */
static int count_logged(const char *part)
{
    int k = 0;
    pthread_mutex_lock(&logs.mu);
    for (int i = 0; i < logs.n; i++)
        k += strstr(logs.msg[i], part) != NULL;
    pthread_mutex_unlock(&logs.mu);
    return k;
}

static int log_count(void)
{
    pthread_mutex_lock(&logs.mu);
    int n = logs.n;
    pthread_mutex_unlock(&logs.mu);
    return n;
}

static void log_reset(void)
{
    pthread_mutex_lock(&logs.mu);
    logs.n = 0;
    pthread_mutex_unlock(&logs.mu);
}

/* Everything logged, for failure messages (truncated). */
static const char *all_logs(void)
{
    static char out[8192];
    size_t used = 0;
    out[0] = '\0';
    pthread_mutex_lock(&logs.mu);
    for (int i = 0; i < logs.n && used < sizeof out; i++)
        used += (size_t)snprintf(out + used, sizeof out - used, "\n  [%d] %s",
                                 logs.level[i], logs.msg[i]);
    pthread_mutex_unlock(&logs.mu);
    return out;
}

static idp_options opts(const char *plugin_path)
{
    log_reset();
    return (idp_options){.size = sizeof(idp_options), .log = collect,
                         .plugin_path = plugin_path};
}

/* ---- Plugin listings -------------------------------------------------- */

#define MAX_LISTED 32

typedef struct listing {
    int n;
    char name[MAX_LISTED][64];
    char schemes[MAX_LISTED][128];
    unsigned abi[MAX_LISTED];
    char path[MAX_LISTED][PATH_LEN];
} listing;

static listing listed;

static void list_cb(void *ud, const idp_plugin_info *info)
{
    listing *l = ud;
    ck_assert_int_lt(l->n, MAX_LISTED);
    snprintf(l->name[l->n], sizeof l->name[0], "%s", info->name);
    snprintf(l->schemes[l->n], sizeof l->schemes[0], "%s", info->schemes);
    l->abi[l->n] = info->abi_version;
    snprintf(l->path[l->n], sizeof l->path[0], "%s", info->path);
    l->n++;
}

static void list_plugins(const idp_options *o)
{
    idp_error err = {0, ""};
    memset(&listed, 0, sizeof listed);
    int rc = idp_plugins(o, list_cb, &listed, &err);
    ck_assert_msg(rc == IDP_OK, "idp_plugins: %s", err.msg);
}

/* The index of the listed plugin called `name`, or -1. */
static int listed_index(const char *name)
{
    for (int i = 0; i < listed.n; i++)
        if (strcmp(listed.name[i], name) == 0)
            return i;
    return -1;
}

/* ---- Refusals --------------------------------------------------------- */

/*
 * Opens "<scheme>://" with only case folder `c` in front of the path and
 * checks the promise: the open fails with IDP_EPLUGIN naming the scheme and
 * the file, and the log has "plugin <file> refused: " with `why` in it.
 */
static void expect_refused(const char *c, const char *scheme, const char *why)
{
    char dir[PATH_LEN], path[PATH_LEN], head[PATH_LEN + 32], uri[64];
    char file[64];
    snprintf(file, sizeof file, "idprime-%s.so", c);
    case_path(dir, c, NULL);
    case_path(path, c, file);
    snprintf(uri, sizeof uri, "%s://", scheme);
    idp_options o = opts(dir);
    idp_error err = {0, ""};
    idp_client *cl = idp_open(uri, &o, &err);
    ck_assert_msg(cl == NULL, "%s was opened by plugin %s", uri,
                  cl ? idp_client_store(cl) : "");
    ck_assert_int_eq(err.code, IDP_EPLUGIN);
    char want[128];
    snprintf(want, sizeof want, "no plugin for scheme '%s': ", scheme);
    ck_assert_msg(strstr(err.msg, want) != NULL && strstr(err.msg, path) != NULL,
                  "error '%s' does not name the scheme and %s", err.msg, path);
    snprintf(head, sizeof head, "plugin %s refused: ", path);
    const char *m = logged(head, why);
    ck_assert_msg(m != NULL, "no log \"%s...%s...\"; logged:%s", head, why,
                  all_logs());
}

START_TEST(test_file_without_entry_symbol_is_refused)
{
    /* The dlerror text of the failed lookup, as the dispatcher sees it. */
    char path[PATH_LEN];
    case_path(path, "nosym", "idprime-nosym.so");
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl != NULL, "%s", dlerror());
    ck_assert_ptr_null(dlsym(dl, IDP_PLUGIN_ENTRY));
    char text[512];
    snprintf(text, sizeof text, "no symbol idprime_plugin_entry (%s): not an "
             "idprime plugin", dlerror());
    dlclose(dl);
    expect_refused("nosym", "nosym", text);
}
END_TEST

START_TEST(test_abi_version_0_is_refused)
{
    char why[128];
    snprintf(why, sizeof why, "ABI version 0, but this idprime speaks version "
             "%d", IDP_PLUGIN_ABI_VERSION);
    expect_refused("abi0", "abi0", why);
}
END_TEST

/* Version 1 had roundtrips and control where drop and testing are now: a
 * host that looked only at the size would call them wrongly. */
START_TEST(test_abi_version_1_is_refused)
{
    char why[128];
    snprintf(why, sizeof why, "ABI version 1, but this idprime speaks version "
             "%d", IDP_PLUGIN_ABI_VERSION);
    expect_refused("abi1", "abi1", why);
    ck_assert_msg(count_logged("trap:") == 0, "logged:%s", all_logs());
}
END_TEST

/* A future breaking version, however complete its table. */
START_TEST(test_abi_version_3_is_refused)
{
    char why[128];
    snprintf(why, sizeof why, "ABI version 3, but this idprime speaks version "
             "%d", IDP_PLUGIN_ABI_VERSION);
    expect_refused("abi3", "abi3", why);
}
END_TEST

START_TEST(test_abi_version_newer_than_host_is_refused)
{
    char why[128];
    snprintf(why, sizeof why, "ABI version %d, but this idprime speaks version "
             "%d", IDP_PLUGIN_ABI_VERSION + 1, IDP_PLUGIN_ABI_VERSION);
    expect_refused("abinext", "abinext", why);
}
END_TEST

START_TEST(test_table_too_small_is_refused)
{
    char why[128];
    snprintf(why, sizeof why, "plugin table too small: %zu bytes, version %d "
             "needs at least %zu", offsetof(idp_plugin, get), IDP_PLUGIN_ABI_VERSION,
             offsetof(idp_plugin, get) + sizeof(void *));
    expect_refused("small", "small", why);
}
END_TEST

START_TEST(test_missing_required_method_is_refused)
{
    expect_refused("noincr", "noincr", "plugin 'noincr' lacks a required "
                   "method (open, close, incr and get)");
}
END_TEST

START_TEST(test_name_not_matching_file_is_refused)
{
    expect_refused("misnamed", "misnamed", "plugin names itself 'other', so "
                   "its file must be idprime-other.so");
}
END_TEST

START_TEST(test_int_parameter_min_above_max_is_refused)
{
    expect_refused("minmax", "minmax", "plugin 'minmax': parameter 'level': "
                   "min > max");
}
END_TEST

START_TEST(test_parameter_named_like_engine_key_is_refused)
{
    expect_refused("engkey", "engkey", "plugin 'engkey': parameter 'batch' is "
                   "an engine key");
}
END_TEST

START_TEST(test_non_elf_file_is_refused_with_dlerror_text)
{
    char path[PATH_LEN];
    case_path(path, "junk", "idprime-junk.so");
    ck_assert_ptr_null(dlopen(path, RTLD_NOW | RTLD_LOCAL));
    char text[PATH_LEN + 64];
    snprintf(text, sizeof text, "cannot load: %s (missing dependencies? "
             "try ldd)", dlerror());
    expect_refused("junk", "junk", text);
}
END_TEST

START_TEST(test_directory_is_refused_as_not_regular)
{
    expect_refused("dir", "dir", "not a regular file");
}
END_TEST

/* ---- Claims, order and shadowing -------------------------------------- */

START_TEST(test_second_claim_of_a_scheme_is_refused_naming_the_first)
{
    char dir[PATH_LEN], a[PATH_LEN], b[PATH_LEN], head[PATH_LEN + 32];
    case_path(dir, "dup", NULL);
    case_path(a, "dup", "idprime-dupa.so");
    case_path(b, "dup", "idprime-dupb.so");
    idp_options o = opts(dir);
    idp_error err = {0, ""};
    idp_client *c = idp_open("dup://", &o, &err);
    ck_assert_msg(c != NULL, "dup://: %s", err.msg);
    ck_assert_str_eq(idp_client_store(c), "dupa");
    snprintf(head, sizeof head, "plugin %s refused: ", b);
    char why[PATH_LEN + 64];
    snprintf(why, sizeof why, "scheme 'dup' is already claimed by %s", a);
    ck_assert_msg(logged(head, why) != NULL, "no log \"%s%s\"; logged:%s", head,
                  why, all_logs());
    /* The winner serves. */
    idp_counter *k = idp_counter_get(c, "inode", &err);
    ck_assert_ptr_nonnull(k);
    uint64_t id = 0;
    ck_assert_int_eq(idp_next(k, &id, &err), IDP_OK);
    ck_assert_uint_eq(id, 1);
    idp_close(c);
}
END_TEST

START_TEST(test_open_takes_the_file_named_for_the_scheme_first)
{
    /* fakemem claims mem too, earlier on the path: an open of mem:// looks
     * for idprime-mem.so first and never loads fakemem; a full scan loads
     * fakemem and refuses it, mem being claimed by then */
    char dir[PATH_LEN], fake[PATH_LEN], real[PATH_LEN], head[PATH_LEN + 32];
    case_path(dir, "fakemem", NULL);
    case_path(fake, "fakemem", "idprime-fakemem.so");
    real_plugin_path(real, "mem");
    idp_options o = opts(dir);
    idp_error err = {0, ""};
    idp_client *c = idp_open("mem://", &o, &err);
    ck_assert_msg(c != NULL, "mem://: %s", err.msg);
    ck_assert_str_eq(idp_client_store(c), "mem");
    /* the real mem: it takes control commands */
    ck_assert_int_eq(idp_control(c, "fail 0", &err), IDP_OK);
    idp_close(c);
    ck_assert_msg(count_logged(fake) == 0, "fakemem was looked at:%s",
                  all_logs());
    list_plugins(&o);
    snprintf(head, sizeof head, "plugin %s refused: ", fake);
    char why[PATH_LEN + 64];
    snprintf(why, sizeof why, "scheme 'mem' is already claimed by %s", real);
    ck_assert_msg(logged(head, why) != NULL, "no log \"%s%s\"; logged:%s", head,
                  why, all_logs());
}
END_TEST

START_TEST(test_same_file_name_earlier_on_the_path_shadows_the_later)
{
    char dir[PATH_LEN], shadow[PATH_LEN], real[PATH_LEN];
    case_path(dir, "shadow", NULL);
    case_path(shadow, "shadow", "idprime-mem.so");
    real_plugin_path(real, "mem");
    idp_options o = opts(dir);
    list_plugins(&o);
    int i = listed_index("mem");
    ck_assert_int_ge(i, 0);
    ck_assert_str_eq(listed.path[i], shadow);
    for (int j = 0; j < listed.n; j++)
        ck_assert_str_ne(listed.path[j], real);
    /* Skipped, not loaded and refused. */
    ck_assert_msg(count_logged(real) == 0, "the shadowed %s was tried:%s", real,
                  all_logs());
    idp_error err = {0, ""};
    idp_client *c = idp_open("mem://", &o, &err);
    ck_assert_msg(c != NULL, "mem://: %s", err.msg);
    ck_assert_int_eq(idp_control(c, "fail 1", &err), IDP_EUNSUPPORTED);
    idp_close(c);
}
END_TEST

/* ---- Listing and the search path -------------------------------------- */

START_TEST(test_plugins_lists_mem_with_its_path_and_abi)
{
    char real[PATH_LEN];
    real_plugin_path(real, "mem");
    idp_options o = opts(NULL);
    list_plugins(&o);
    int i = listed_index("mem");
    ck_assert_msg(i >= 0, "mem not listed (is idprime-mem built?)");
    ck_assert_str_eq(listed.schemes[i], "mem");
    ck_assert_uint_eq(listed.abi[i], IDP_PLUGIN_ABI_VERSION);
    ck_assert_str_eq(listed.path[i], real);
    /* Every entry is a file named after its plugin. */
    for (int j = 0; j < listed.n; j++) {
        char tail[128];
        snprintf(tail, sizeof tail, "/idprime-%s.so", listed.name[j]);
        size_t lp = strlen(listed.path[j]), lt = strlen(tail);
        ck_assert_msg(lp > lt && strcmp(listed.path[j] + lp - lt, tail) == 0,
                      "%s listed from %s", listed.name[j], listed.path[j]);
        ck_assert_uint_eq(listed.abi[j], IDP_PLUGIN_ABI_VERSION);
    }
}
END_TEST

START_TEST(test_plugins_omits_every_refused_file)
{
    static const char *const refused[][2] = {
        {"nosym", "idprime-nosym.so"},     {"abi0", "idprime-abi0.so"},
        {"abinext", "idprime-abinext.so"}, {"small", "idprime-small.so"},
        {"noincr", "idprime-noincr.so"},   {"misnamed", "idprime-misnamed.so"},
        {"minmax", "idprime-minmax.so"},   {"engkey", "idprime-engkey.so"},
        {"junk", "idprime-junk.so"},       {"dir", "idprime-dir.so"},
        {"dup", "idprime-dupb.so"},
    };
    static const char *const folders[] = {
        "nosym", "abi0", "abinext", "small", "noincr", "misnamed", "minmax",
        "engkey", "junk", "dir", "dup", "old", "sparse",
    };
    char list[16 * PATH_LEN] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof folders / sizeof *folders; i++) {
        char dir[PATH_LEN];
        case_path(dir, folders[i], NULL);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                 used ? ":" : "", dir);
    }
    idp_options o = opts(list);
    list_plugins(&o);
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char path[PATH_LEN], head[PATH_LEN + 32];
        case_path(path, refused[i][0], refused[i][1]);
        for (int j = 0; j < listed.n; j++)
            ck_assert_msg(strcmp(listed.path[j], path) != 0, "%s listed", path);
        snprintf(head, sizeof head, "plugin %s refused: ", path);
        ck_assert_msg(logged(head, NULL) != NULL, "no refusal of %s:%s", path,
                      all_logs());
    }
    static const char *const accepted[] = {"dupa", "old", "sparse", "mem"};
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++)
        ck_assert_msg(listed_index(accepted[i]) >= 0, "%s not listed",
                      accepted[i]);
    static const char *const names[] = {"nosym", "abi0", "abinext", "small",
                                        "noincr", "other", "misnamed",
                                        "minmax", "engkey", "dupb"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_msg(listed_index(names[i]) < 0, "%s listed", names[i]);
}
END_TEST

START_TEST(test_unknown_scheme_error_lists_the_known_schemes)
{
    idp_options o = opts(NULL);
    idp_error err = {0, ""};
    ck_assert_ptr_null(idp_open("nosuch://", &o, &err));
    ck_assert_int_eq(err.code, IDP_EPLUGIN);
    const char *known = strstr(err.msg, "known schemes: ");
    ck_assert_msg(strstr(err.msg, "no plugin for scheme 'nosuch'") != NULL &&
                  known != NULL && strstr(known, "mem") != NULL,
                  "error: %s", err.msg);
    ck_assert_msg(strstr(err.msg, "IDPRIME_PLUGIN_PATH") != NULL, "error: %s",
                  err.msg);
}
END_TEST

/* The tests that change IDPRIME_PLUGIN_PATH put it back, even on failure
 * (a checked fixture), so CK_FORK=no runs stay correct. */
static char *saved_env;

static void env_save(void)
{
    saved_env = strdup(env_dir("IDPRIME_PLUGIN_PATH"));
}

static void env_restore(void)
{
    if (saved_env == NULL)
        return;
    setenv("IDPRIME_PLUGIN_PATH", saved_env, 1);
    free(saved_env);
    saved_env = NULL;
}

START_TEST(test_env_plugin_path_is_searched)
{
    char dir[PATH_LEN], path[PATH_LEN], list[2 * PATH_LEN];
    case_path(dir, "old", NULL);
    case_path(path, "old", "idprime-old.so");
    idp_options o = opts(NULL);
    idp_error err = {0, ""};

    /* Without it: only the build tree, which has mem and not old. */
    unsetenv("IDPRIME_PLUGIN_PATH");
    ck_assert_ptr_null(idp_open("old://", &o, &err));
    ck_assert_int_eq(err.code, IDP_EPLUGIN);
    ck_assert_msg(strstr(err.msg, "known schemes: ") != NULL &&
                  strstr(err.msg, "mem") != NULL, "error: %s", err.msg);

    /* With it, colon-separated, a missing folder skipped. */
    snprintf(list, sizeof list, "/nonexistent/idprime-test:%s", dir);
    setenv("IDPRIME_PLUGIN_PATH", list, 1);
    idp_client *c = idp_open("old://", &o, &err);
    ck_assert_msg(c != NULL, "old:// with IDPRIME_PLUGIN_PATH=%s: %s", list,
                  err.msg);
    ck_assert_str_eq(idp_client_store(c), "old");
    idp_close(c);
    list_plugins(&o);
    int i = listed_index("old");
    ck_assert_int_ge(i, 0);
    ck_assert_str_eq(listed.path[i], path);
}
END_TEST

START_TEST(test_log_beyond_the_callers_options_size_is_never_called)
{
    /* A caller that knows only `size`: the log field is not its own. */
    char dir[PATH_LEN];
    case_path(dir, "junk", NULL);
    setenv("IDPRIME_PLUGIN_PATH", dir, 1);
    idp_options o = opts(NULL);
    o.size = offsetof(idp_options, log);
    idp_error err = {0, ""};
    idp_client *c = idp_open("mem://", &o, &err);
    ck_assert_msg(c != NULL, "mem://: %s", err.msg);
    idp_close(c);
    list_plugins(&o);
    ck_assert_msg(log_count() == 0, "log called:%s", all_logs());
}
END_TEST

/* ---- A plugin built against the first table --------------------------- */

/* The good old-style cases: "old" declares only the version-1 size (with
 * traps after it), "sparse" the full size with NULL optional methods. */
static const char *const good_old[] = {"old", "sparse"};

static idp_client *open_old(const char *name, const char *query)
{
    char dir[PATH_LEN], uri[256];
    case_path(dir, name, NULL);
    snprintf(uri, sizeof uri, "%s://%s", name, query);
    idp_options o = opts(dir);
    idp_error err = {0, ""};
    idp_client *c = idp_open(uri, &o, &err);
    ck_assert_msg(c != NULL, "%s: %s", uri, err.msg);
    ck_assert_str_eq(idp_client_store(c), name);
    return c;
}

START_TEST(test_old_table_engine_calls_incr_once_per_op)
{
    const char *name = good_old[_i];
    /* Batches of 4 with the background fetch at 2 left, and a slow store,
     * so the fetches of b and c queue up while a's runs: the worker then
     * fetches several counters at once, which is incr_many where offered. */
    idp_client *c = open_old(name, "?delay_ms=100&batch=4&low_watermark=50&adaptive=0");
    static const char *const names[] = {"a", "b", "c"};
    idp_counter *k[3];
    idp_error err = {0, ""};
    for (int i = 0; i < 3; i++) {
        k[i] = idp_counter_get(c, names[i], &err);
        ck_assert_ptr_nonnull(k[i]);
    }
    for (uint64_t v = 1; v <= 2; v++)
        for (int i = 0; i < 3; i++)
            ck_assert_uint_eq(tu_next(k[i]), v);
    for (int i = 0; i < 3; i++) {
        idp_counter_stats s = tu_settle(k[i]);
        ck_assert_uint_eq(s.prime_calls, 2);
        ck_assert_uint_eq(s.prefetch_async, 1);
    }
    for (uint64_t v = 3; v <= 12; v++)
        for (int i = 0; i < 3; i++)
            ck_assert_uint_eq(tu_next(k[i]), v);
    for (int i = 0; i < 3; i++) {
        idp_counter_stats s = tu_settle(k[i]);
        ck_assert_uint_eq(s.ids_served, 12);
        ck_assert_uint_ge(s.prime_calls, 3);
        ck_assert_uint_eq(s.errors, 0);
        /* One incr per fetch of this counter, each of one batch. */
        char what[64];
        snprintf(what, sizeof what, "%s plugin: incr '%s' by 4", name,
                 names[i]);
        ck_assert_int_eq(count_logged(what), (int)s.prime_calls);
        uint64_t v = 0;
        int exists = 0;
        ck_assert_int_eq(idp_get(c, names[i], &v, &exists, &err), IDP_OK);
        ck_assert_int_eq(exists, 1);
        ck_assert_uint_eq(v, s.high);
        ck_assert_uint_eq(v, 4 * s.prime_calls);
    }
    ck_assert_msg(count_logged("trap:") == 0, "logged:%s", all_logs());
    idp_close(c);
}
END_TEST

static int never_called(void *ud, const char *name, uint64_t value)
{
    (void)ud, (void)value;
    ck_abort_msg("list called back with '%s'", name);
    return 1;
}

START_TEST(test_old_table_optional_calls_are_unsupported)
{
    const char *name = good_old[_i];
    idp_client *c = open_old(name, "");
    idp_error err = {0, ""};
    uint64_t v = 0;
    int exists = 1;
    ck_assert_int_eq(idp_get(c, "inode", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 0);

    ck_assert_int_eq(idp_raise(c, "inode", 100, &v, &err), IDP_EUNSUPPORTED);
    ck_assert_int_eq(err.code, IDP_EUNSUPPORTED);
    ck_assert_msg(strstr(err.msg, name) != NULL && strstr(err.msg, "raise"),
                  "raise: %s", err.msg);
    ck_assert_int_eq(idp_list(c, never_called, NULL, &err), IDP_EUNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "list") != NULL, "list: %s", err.msg);
    ck_assert_int_eq(idp_control(c, "fail 1", &err), IDP_EUNSUPPORTED);
    ck_assert_int_eq(idp_store_roundtrips(c, &v, &err), IDP_EUNSUPPORTED);

    /* Nothing was raised: the counter is still missing, then starts at 1. */
    ck_assert_int_eq(idp_get(c, "inode", &v, &exists, &err), IDP_OK);
    ck_assert_int_eq(exists, 0);
    idp_counter *k = idp_counter_get(c, "inode", &err);
    ck_assert_ptr_nonnull(k);
    ck_assert_uint_eq(tu_next(k), 1);
    ck_assert_uint_eq(tu_next(k), 2);
    ck_assert_msg(count_logged("trap:") == 0, "logged:%s", all_logs());
    idp_close(c);
}
END_TEST

/* ---- One plugin per open, loaded once ---------------------------------- */

START_TEST(test_an_open_loads_only_the_plugin_its_scheme_needs)
{
    /* the build's plugin folder holds mem, redis, memcached and sqlite */
    idp_options o = opts(NULL);
    idp_error err = {0, ""};
    for (int i = 0; i < 100; i++) {
        idp_client *c = idp_open("mem://", &o, &err);
        ck_assert_msg(c != NULL, "mem://: %s", err.msg);
        idp_close(c);
    }
    /* one dlopen, by the first open; none of the other plugins */
    ck_assert_msg(count_logged(": loaded from ") == 1 &&
                      count_logged("plugin mem: loaded from ") == 1,
                  "loads:%s", all_logs());
    /* a listing loads the rest, once; the next open loads nothing */
    list_plugins(&o);
    int loads = count_logged(": loaded from ");
    ck_assert_msg(loads >= 4, "loads after listing:%s", all_logs());
    idp_client *c = idp_open("sqlite:///dev/null/never", &o, &err);
    ck_assert_ptr_null(c); /* the file cannot be made; the plugin was there */
    ck_assert_int_eq(count_logged(": loaded from "), loads);
}
END_TEST

/* A plugin built against a newer header: version 2, a table and a test
 * hooks table larger than this host knows, whose unknown slots are traps.
 * It loads, every method this host knows works, no trap is touched. */
START_TEST(test_newer_plugin_with_a_larger_table_loads)
{
    char dir[PATH_LEN];
    case_path(dir, "big", NULL);
    idp_options o = opts(dir);
    idp_error err = {0, ""};
    idp_client *c = idp_open("big://?batch=4&adaptive=0&low_watermark=50&delay_ms=50", &o, &err);
    ck_assert_msg(c != NULL, "big://: %s", err.msg);
    ck_assert_str_eq(idp_client_store(c), "big");
    idp_counter *a = idp_counter_get(c, "a", &err), *b = idp_counter_get(c, "b", &err);
    for (uint64_t v = 1; v <= 12; v++) {
        ck_assert_uint_eq(tu_next(a), v);
        ck_assert_uint_eq(tu_next(b), v);
    }
    uint64_t v = 0, n = 0;
    ck_assert_int_eq(idp_raise(c, "r", 100, &v, &err), IDP_OK);
    ck_assert_uint_eq(v, 100);
    ck_assert_int_eq(idp_store_roundtrips(c, &n, &err), IDP_OK);
    ck_assert_uint_ge(n, 6);
    ck_assert_int_eq(idp_control(c, "fail 0", &err), IDP_OK);
    idp_close(c);
    ck_assert_msg(count_logged("trap:") == 0, "logged:%s", all_logs());
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_file_without_entry_symbol_is_refused,
        test_abi_version_0_is_refused,
        test_abi_version_1_is_refused,
        test_abi_version_3_is_refused,
        test_abi_version_newer_than_host_is_refused,
        test_table_too_small_is_refused,
        test_missing_required_method_is_refused,
        test_name_not_matching_file_is_refused,
        test_int_parameter_min_above_max_is_refused,
        test_parameter_named_like_engine_key_is_refused,
        test_non_elf_file_is_refused_with_dlerror_text,
        test_directory_is_refused_as_not_regular,
        test_second_claim_of_a_scheme_is_refused_naming_the_first,
        test_open_takes_the_file_named_for_the_scheme_first,
        test_an_open_loads_only_the_plugin_its_scheme_needs,
        test_newer_plugin_with_a_larger_table_loads,
        test_same_file_name_earlier_on_the_path_shadows_the_later,
        test_plugins_lists_mem_with_its_path_and_abi,
        test_plugins_omits_every_refused_file,
        test_unknown_scheme_error_lists_the_known_schemes, NULL};
    const TTest *loops[] = {
        test_old_table_engine_calls_incr_once_per_op,
        test_old_table_optional_calls_are_unsupported, NULL};
    const TTest *env_tests[] = {
        test_env_plugin_path_is_searched,
        test_log_beyond_the_callers_options_size_is_never_called, NULL};
    const tu_case cases[] = {
        {.name = "dispatcher", .tests = tests, .loops = loops,
         .rows = TU_ROWS(good_old)},
        /* the tests that change IDPRIME_PLUGIN_PATH, put back by the
         * fixture */
        {.name = "env", .tests = env_tests, .setup = env_save,
         .teardown = env_restore},
        {.name = NULL}};
    return tu_run(tu_suite("dispatcher", 60, cases));
}
