/* test_uri.c - store URIs: every part parsed and decoded, every malformed
 * URI refused with a message naming the part at fault. */
#include <check.h>
#include <string.h>

#include "testutil.h"

#include "uri.h"

static uri_parsed u;
static idp_error err;

static void teardown(void) { uri_free(&u); }

START_TEST(test_full_uri_parts)
{
    ck_assert_int_eq(uri_parse("redis://bob:s%40cret@db1:6380,db2/2?batch=64&prefix=a%2Fb",
                               &u, &err), IDP_OK);
    ck_assert_str_eq(u.pub.scheme, "redis");
    ck_assert_str_eq(u.pub.user, "bob");
    ck_assert_str_eq(u.pub.password, "s@cret");
    ck_assert_int_eq(u.pub.has_password, 1);
    ck_assert_uint_eq(u.pub.nhosts, 2);
    ck_assert_str_eq(u.pub.hosts[0].host, "db1");
    ck_assert_uint_eq(u.pub.hosts[0].port, 6380);
    ck_assert_str_eq(u.pub.hosts[1].host, "db2");
    ck_assert_uint_eq(u.pub.hosts[1].port, 0);
    ck_assert_str_eq(u.pub.path, "/2");
    ck_assert_uint_eq(u.nparams, 2);
    ck_assert_str_eq(u.params[0].key, "batch");
    ck_assert_str_eq(u.params[0].value, "64");
    ck_assert_str_eq(u.params[1].key, "prefix");
    ck_assert_str_eq(u.params[1].value, "a/b");
}
END_TEST

START_TEST(test_sqlite_paths)
{
    ck_assert_int_eq(uri_parse("sqlite:///var/lib/ids.db", &u, &err), IDP_OK);
    ck_assert_uint_eq(u.pub.nhosts, 0);
    ck_assert_str_eq(u.pub.path, "/var/lib/ids.db");
    ck_assert_str_eq(u.pub.authority, "");
    uri_free(&u);
    ck_assert_int_eq(uri_parse("SQLite3://rel/dir/ids.db", &u, &err), IDP_OK);
    ck_assert_str_eq(u.pub.scheme, "sqlite3");
    ck_assert_str_eq(u.pub.authority, "rel");
    ck_assert_str_eq(u.pub.path, "/dir/ids.db");
}
END_TEST

START_TEST(test_ipv6_and_password_only)
{
    ck_assert_int_eq(uri_parse("redis://:pw@[::1]:7000", &u, &err), IDP_OK);
    ck_assert_str_eq(u.pub.user, "");
    ck_assert_str_eq(u.pub.password, "pw");
    ck_assert_str_eq(u.pub.hosts[0].host, "::1");
    ck_assert_uint_eq(u.pub.hosts[0].port, 7000);
    ck_assert_str_eq(u.pub.path, "");
    ck_assert_uint_eq(u.nparams, 0);
}
END_TEST

START_TEST(test_empty_authority_and_trailing_amp)
{
    ck_assert_int_eq(uri_parse("mem://?a=1&&b=&", &u, &err), IDP_OK);
    ck_assert_uint_eq(u.pub.nhosts, 0);
    ck_assert_uint_eq(u.nparams, 2);
    ck_assert_str_eq(u.params[1].key, "b");
    ck_assert_str_eq(u.params[1].value, "");
}
END_TEST

/* Each malformed URI fails with IDP_EINVAL and a message holding `names`. */
static const struct {
    const char *uri, *names;
} bad[] = {
    {"", "empty URI"},
    {"redis:/localhost", "no '://'"},
    {"://host", "scheme must start"},
    {"re dis://host", "bad character ' '"},
    {"redis://host:0", "bad port '0'"},
    {"redis://host:65536", "bad port '65536'"},
    {"redis://host:6a", "bad port '6a'"},
    {"redis://a,,b", "empty host"},
    {"redis://:6379", "empty host"},
    {"redis://::1:6379", "several ':'"},
    {"redis://[::1", "without ']'"},
    {"redis://[::1]x", "after ']'"},
    {"redis://host/%zz", "percent-encoding in the path"},
    {"redis://host/%4", "percent-encoding in the path"},
    {"redis://ho%00st", "percent-encoding in the host"},
    {"redis://host?batch", "'batch' has no value"},
    {"redis://host?=5", "empty key"},
    {"redis://host?batch=1&batch=2", "'batch' is given twice"},
    {"redis://host#frag", "fragments"},
};

START_TEST(test_malformed_uri_names_the_part)
{
    ck_assert_int_eq(uri_parse(bad[_i].uri, &u, &err), IDP_EINVAL);
    ck_assert_int_eq(err.code, IDP_EINVAL);
    ck_assert_msg(strstr(err.msg, bad[_i].names) != NULL,
                  "'%s': message '%s' lacks '%s'", bad[_i].uri, err.msg,
                  bad[_i].names);
    /* nothing is left allocated on error */
    ck_assert_ptr_null(u.strings);
}
END_TEST

START_TEST(test_password_never_in_messages)
{
    ck_assert_int_eq(uri_parse("redis://u:hunter2@host:99999", &u, &err), IDP_EINVAL);
    ck_assert_ptr_null(strstr(err.msg, "hunter2"));
    ck_assert_ptr_nonnull(strstr(err.msg, "u:***@host"));
    char buf[64];
    ck_assert_str_eq(uri_redact("redis://:pw@h/1?x=1", buf, sizeof buf),
                     "redis://:***@h/1?x=1");
    ck_assert_str_eq(uri_redact("redis://user@h", buf, sizeof buf),
                     "redis://user@h");
}
END_TEST

int main(void)
{
    const TTest *tests[] = {
        test_full_uri_parts, test_sqlite_paths, test_ipv6_and_password_only,
        test_empty_authority_and_trailing_amp, test_password_never_in_messages,
        NULL};
    const TTest *loops[] = {test_malformed_uri_names_the_part, NULL};
    const tu_case cases[] = {
        {.name = "parse", .tests = tests, .loops = loops,
         .rows = TU_ROWS(bad), .teardown = teardown},
        {.name = NULL}};
    return tu_run(tu_suite("uri", 0, cases));
}
