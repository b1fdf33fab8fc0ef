/* test_options.c - engine and plugin URI parameters: defaults, per-counter
 * keys, layering (config params, then the URI), and every bad value refused
 * with a message naming the key and what is allowed. */
#include <check.h>
#include <string.h>

#include "testutil.h"

#include "options.h"

static const idp_param_spec plugin_specs[] = {
    {"db", IDP_PARAM_INT, "0", 0, 15, NULL, "database"},
    {"synchronous", IDP_PARAM_ENUM, "FULL", 0, 0, "NORMAL|FULL", "sync"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static uri_parsed u;
static engine_cfg cfg;
static idp_error err;

static int build(const char *uri, const char *const *extra)
{
    uri_free(&u);
    options_free(&cfg);
    ck_assert_int_eq(uri_parse(uri, &u, &err), IDP_OK);
    return options_build(&cfg, &u, extra, plugin_specs, "test", &err);
}

static void teardown(void)
{
    uri_free(&u);
    options_free(&cfg);
}

START_TEST(test_defaults_follow_the_design)
{
    ck_assert_int_eq(build("x://h", NULL), IDP_OK);
    ck_assert_int_eq(cfg.metaprime, 1);
    ck_assert_int_eq(cfg.timeout_ms, 2000);
    ck_assert_str_eq(cfg.prefix, "");
    ck_assert_int_eq(options_counter(&cfg, "inode").batch, 256);
    ck_assert_int_eq(options_counter(&cfg, "chunk").batch, 2048);
    ck_assert_int_eq(options_counter(&cfg, "other").batch, 256);
    ck_assert_int_eq(options_counter(&cfg, "inode").low_watermark, 25);
    ck_assert_str_eq(options_plugin_value(&cfg, plugin_specs, "db"), "0");
    ck_assert_str_eq(options_plugin_value(&cfg, plugin_specs, "synchronous"), "FULL");
}
END_TEST

START_TEST(test_seed_parameters_set_each_counter)
{
    ck_assert_int_eq(build("x://h?metaprime=0&inode_batch=100&chunk_batch=5000"
                           "&inode_low_watermark=10&chunk_low_watermark=50"
                           "&batch=7&low_watermark=60&my.ctr-1_batch=9", NULL),
                     IDP_OK);
    ck_assert_int_eq(cfg.metaprime, 0);
    counter_cfg in = options_counter(&cfg, "inode");
    counter_cfg ch = options_counter(&cfg, "chunk");
    counter_cfg other = options_counter(&cfg, "other");
    counter_cfg mine = options_counter(&cfg, "my.ctr-1");
    ck_assert_int_eq(in.batch, 100);
    ck_assert_int_eq(in.low_watermark, 10);
    ck_assert_int_eq(ch.batch, 5000);
    ck_assert_int_eq(ch.low_watermark, 50);
    ck_assert_int_eq(other.batch, 7);
    ck_assert_int_eq(other.low_watermark, 60);
    ck_assert_int_eq(mine.batch, 9);
    ck_assert_int_eq(mine.low_watermark, 60);
}
END_TEST

START_TEST(test_adaptive_keys_and_prime)
{
    ck_assert_int_eq(build("x://h", NULL), IDP_OK);
    ck_assert_int_eq(options_counter(&cfg, "inode").adaptive, 1);
    ck_assert_int_eq(options_counter(&cfg, "inode").max_batch, 65536);
    ck_assert_str_eq(cfg.prime, "");
    /* "inode_max_batch" is max_batch of inode, not batch of "inode_max" */
    ck_assert_int_eq(build("x://h?adaptive=0&inode_max_batch=4096"
                           "&chunk_adaptive=1&prime=inode,chunk", NULL), IDP_OK);
    counter_cfg in = options_counter(&cfg, "inode");
    ck_assert_int_eq(in.max_batch, 4096);
    ck_assert_int_eq(in.batch, 256);
    ck_assert_int_eq(in.adaptive, 0);
    ck_assert_int_eq(options_counter(&cfg, "inode_max").batch, 256);
    ck_assert_int_eq(options_counter(&cfg, "chunk").adaptive, 1);
    ck_assert_int_eq(options_counter(&cfg, "chunk").max_batch, 65536);
    ck_assert_str_eq(cfg.prime, "inode,chunk");
}
END_TEST

START_TEST(test_uri_overrides_config_params)
{
    const char *const extra[] = {"batch=11", "inode_batch=12", "db=3", NULL};
    ck_assert_int_eq(build("x://h?inode_batch=13", extra), IDP_OK);
    ck_assert_int_eq(options_counter(&cfg, "other").batch, 11);
    ck_assert_int_eq(options_counter(&cfg, "inode").batch, 13);
    ck_assert_str_eq(options_plugin_value(&cfg, plugin_specs, "db"), "3");
}
END_TEST

static const struct {
    const char *uri, *names;
} bad[] = {
    {"x://h?bogus=1", "unknown parameter 'bogus'"},
    {"x://h?bogus=1", "test keys are db, synchronous"},
    {"x://h?batch=0", "'batch': 0 is out of range (allowed 1..1073741824)"},
    {"x://h?batch=1073741825", "out of range (allowed 1..1073741824)"},
    {"x://h?batch=-5", "'batch': -5 is out of range"},
    {"x://h?batch=99999999999999999999999", "out of range"},
    {"x://h?batch=12abc", "'batch': '12abc' is not a whole number"},
    {"x://h?batch=", "'batch': '' is not a whole number"},
    {"x://h?metaprime=2", "'metaprime': 2 is out of range (allowed 0..1)"},
    {"x://h?low_watermark=101", "allowed 0..100"},
    {"x://h?timeout_ms=0", "'timeout_ms': 0 is out of range"},
    {"x://h?inode_batch=x", "'inode_batch': 'x' is not a whole number"},
    {"x://h?bad%20name_batch=4", "is not a valid counter name"},
    {"x://h?db=16", "'db': 16 is out of range (allowed 0..15)"},
    {"x://h?synchronous=SOMETIMES", "expected one of NORMAL|FULL"},
    {"x://h?adaptive=2", "'adaptive': 2 is out of range (allowed 0..1)"},
    {"x://h?max_batch=0", "'max_batch': 0 is out of range (allowed 1..1073741824)"},
    {"x://h?inode_max_batch=x", "'inode_max_batch': 'x' is not a whole number"},
    {"x://h?prime=inode,,chunk", "'prime': '' is not a valid counter name"},
    {"x://h?prime=inode,", "'prime': a trailing comma"},
    {"x://h?prime=in%20ode", "'prime': 'in ode' is not a valid counter name"},
    {"x://h?bogus=1", "NAME_max_batch"},
};

START_TEST(test_bad_value_names_key_and_range)
{
    ck_assert_int_eq(build(bad[_i].uri, NULL), IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, bad[_i].names) != NULL, "'%s': '%s' lacks '%s'",
                  bad[_i].uri, err.msg, bad[_i].names);
}
END_TEST

START_TEST(test_plugin_spec_tables_are_checked)
{
    const idp_param_spec clash[] = {{"batch", IDP_PARAM_INT, "1", 1, 2, NULL, ""},
                                    {NULL, 0, NULL, 0, 0, NULL, NULL}};
    ck_assert_int_eq(options_check_specs(clash, &err), IDP_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(err.msg, "'batch' is an engine key"));
    const idp_param_spec inverted[] = {{"n", IDP_PARAM_INT, "1", 5, 2, NULL, ""},
                                       {NULL, 0, NULL, 0, 0, NULL, NULL}};
    ck_assert_int_eq(options_check_specs(inverted, &err), IDP_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(err.msg, "min > max"));
    const idp_param_spec baddef[] = {{"m", IDP_PARAM_ENUM, "X", 0, 0, "A|B", ""},
                                     {NULL, 0, NULL, 0, 0, NULL, NULL}};
    ck_assert_int_eq(options_check_specs(baddef, &err), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad default"));
    ck_assert_int_eq(options_check_specs(plugin_specs, &err), IDP_OK);
}
END_TEST

START_TEST(test_counter_names)
{
    ck_assert_int_eq(options_valid_name("inode", 5), 1);
    ck_assert_int_eq(options_valid_name("a.b:c-d_e9", 10), 1);
    ck_assert_int_eq(options_valid_name("", 0), 0);
    ck_assert_int_eq(options_valid_name("a b", 3), 0);
    ck_assert_int_eq(options_valid_name("a/b", 3), 0);
    char longname[IDP_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname);
    ck_assert_int_eq(options_valid_name(longname, IDP_NAME_MAX), 1);
    ck_assert_int_eq(options_valid_name(longname, IDP_NAME_MAX + 1), 0);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_defaults_follow_the_design, test_seed_parameters_set_each_counter,
        test_uri_overrides_config_params, test_plugin_spec_tables_are_checked,
        test_counter_names, test_adaptive_keys_and_prime, NULL};
    const TTest *loops[] = {test_bad_value_names_key_and_range, NULL};
    const tu_case cases[] = {
        {.name = "options", .tests = tests, .loops = loops,
         .rows = TU_ROWS(bad), .teardown = teardown},
        {.name = NULL}};
    return tu_run(tu_suite("options", 0, cases));
}
