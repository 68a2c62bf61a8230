/* test_json_body.c — body parsing limits and field validators. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/json_body.h"

static enum md_status parse(const char *s, json_t **out, struct md_error *err)
{
    return md_json_parse_object(s, strlen(s), out, err);
}

static char *nested(size_t depth)
{
    char *s = malloc(depth * 2 + 16);
    size_t o = 0;
    s[o++] = '{';
    s[o++] = '"';
    s[o++] = 'a';
    s[o++] = '"';
    s[o++] = ':';
    for (size_t i = 1; i < depth; i++)
        s[o++] = '[';
    s[o++] = '1';
    for (size_t i = 1; i < depth; i++)
        s[o++] = ']';
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    json_t *v;
    struct md_error err;
    char *ok = nested(32), *bad = nested(33), *deep = nested(1000);
    assert_int_equal(md_json_depth(ok, strlen(ok)), 32);
    assert_int_equal(parse(ok, &v, &err), MD_OK);
    json_decref(v);
    assert_int_equal(parse(bad, &v, &err), MD_E_INVAL);
    assert_non_null(strstr(err.msg, "deeper than 32"));
    assert_int_equal(parse(deep, &v, &err), MD_E_INVAL);
    free(ok);
    free(bad);
    free(deep);
    /* brackets inside strings do not count */
    assert_int_equal(md_json_depth("{\"a\":\"[[[[\\\"[[[\"}", 17), 1);
}

static void test_rejections(void **state)
{
    (void)state;
    json_t *v;
    struct md_error err;
    assert_int_equal(md_json_parse_object("", 0, &v, &err), MD_E_INVAL);
    assert_int_equal(parse("[1,2]", &v, &err), MD_E_INVAL);
    assert_non_null(strstr(err.msg, "object"));
    assert_int_equal(parse("\"x\"", &v, &err), MD_E_INVAL);
    assert_int_equal(parse("{\"a\":1,}", &v, &err), MD_E_INVAL);
    assert_int_equal(parse("{\"a\":1,\"a\":2}", &v, &err), MD_E_INVAL);
    assert_int_equal(parse("{\"a\":\"\\u0000\"}", &v, &err), MD_E_INVAL);
    assert_int_equal(md_json_parse_object("{\"a\":\"x\0y\"}", 11, &v, &err), MD_E_INVAL);
    assert_non_null(strstr(err.msg, "NUL"));
    assert_int_equal(parse("{\"a\":\"\xff\"}", &v, &err), MD_E_INVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_int_equal(parse("{\"a\":1} trailing", &v, &err), MD_E_INVAL);
    assert_null(v);
}

static void test_fields(void **state)
{
    (void)state;
    json_t *o;
    struct md_error err;
    assert_int_equal(parse("{\"text\":\"hello\",\"blank\":\"  \",\"n\":5,\"r\":5.5,\"b\":true,"
                           "\"s\":\"partial\",\"nul\":null,\"obj\":{\"x\":1},\"zz\":1}",
                           &o, &err),
                     MD_OK);
    static const char *const allowed[] = {"text", "blank", "n", "r", "b", "s", "nul", "obj", NULL};
    assert_int_equal(md_json_only(o, allowed, NULL, &err), MD_E_INVAL);
    assert_string_equal(err.field, "zz");
    assert_int_equal(md_json_only(o, allowed, "outer", &err), MD_E_INVAL);
    assert_string_equal(err.field, "outer.zz");

    const char *s;
    assert_int_equal(md_json_text(o, "text", NULL, true, 10, &s, &err), MD_OK);
    assert_string_equal(s, "hello");
    assert_int_equal(md_json_text(o, "text", NULL, true, 4, &s, &err), MD_E_INVAL);
    assert_int_equal(md_json_text(o, "blank", NULL, true, 10, &s, &err), MD_E_INVAL);
    assert_string_equal(err.field, "blank");
    assert_int_equal(md_json_text(o, "missing", "p", true, 10, &s, &err), MD_E_INVAL);
    assert_string_equal(err.field, "p.missing");
    assert_int_equal(md_json_text(o, "missing", NULL, false, 10, &s, &err), MD_OK);
    assert_null(s);
    assert_int_equal(md_json_text(o, "n", NULL, true, 10, &s, &err), MD_E_INVAL);

    int64_t n;
    bool present;
    assert_int_equal(md_json_int(o, "n", NULL, true, 1, 10, &n, &present, &err), MD_OK);
    assert_int_equal(n, 5);
    assert_int_equal(md_json_int(o, "n", NULL, true, 6, 10, &n, &present, &err), MD_E_INVAL);
    assert_int_equal(md_json_int(o, "r", NULL, true, 1, 10, &n, &present, &err), MD_E_INVAL);
    assert_int_equal(md_json_int(o, "text", NULL, true, 1, 10, &n, &present, &err), MD_E_INVAL);

    double x;
    assert_int_equal(md_json_number(o, "n", NULL, true, 0, 10, &x, &present, &err), MD_OK);
    assert_int_equal(md_json_number(o, "r", NULL, true, 0, 1, &x, &present, &err), MD_E_INVAL);

    bool b;
    assert_int_equal(md_json_bool(o, "b", NULL, true, &b, &present, &err), MD_OK);
    assert_true(b);
    assert_int_equal(md_json_bool(o, "n", NULL, true, &b, &present, &err), MD_E_INVAL);

    enum md_verdict v;
    assert_int_equal(md_json_verdict(o, "s", NULL, true, false, &v, &present, &err), MD_OK);
    assert_int_equal(v, MD_VERDICT_PARTIAL);
    assert_int_equal(md_json_verdict(o, "nul", NULL, false, true, &v, &present, &err), MD_OK);
    assert_true(present);
    assert_int_equal(v, MD_VERDICT_NONE);
    assert_int_equal(md_json_verdict(o, "nul", NULL, false, false, &v, &present, &err),
                     MD_E_INVAL);
    assert_int_equal(md_json_verdict(o, "text", NULL, false, true, &v, &present, &err),
                     MD_E_INVAL);
    assert_int_equal(md_json_verdict(o, "absent", NULL, false, true, &v, &present, &err), MD_OK);
    assert_false(present);

    json_t *obj;
    assert_int_equal(md_json_object(o, "obj", NULL, true, &obj, &err), MD_OK);
    assert_non_null(obj);
    assert_int_equal(md_json_object(o, "n", NULL, true, &obj, &err), MD_E_INVAL);
    assert_int_equal(md_json_short(o, "text", NULL, true, 5, &s, &err), MD_OK);
    assert_int_equal(md_json_short(o, "text", NULL, true, 4, &s, &err), MD_E_INVAL);
    json_decref(o);
}

static void test_text_counts_code_points(void **state)
{
    (void)state;
    json_t *o;
    struct md_error err;
    /* 3 code points, 6 bytes */
    assert_int_equal(parse("{\"t\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", &o, &err), MD_OK);
    const char *s;
    assert_int_equal(md_json_text(o, "t", NULL, true, 3, &s, &err), MD_OK);
    assert_int_equal(md_json_text(o, "t", NULL, true, 2, &s, &err), MD_E_INVAL);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_text_counts_code_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
