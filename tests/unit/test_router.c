/* test_router.c — route matching, captures, 405 allow lists. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/router.h"

static void h1(struct md_req *req, struct md_resp *resp)
{
    (void)req;
    (void)resp;
}

static const struct md_route routes[] = {
    {MD_M_POST, "/v1/stm/entries", h1, 0, NULL},
    {MD_M_GET, "/v1/stm/entries", h1, 0, NULL},
    {MD_M_GET, "/v1/stm/entries/{id}", h1, 0, NULL},
    {MD_M_PATCH, "/v1/stm/entries/{id}", h1, 0, NULL},
    {MD_M_DELETE, "/v1/stm/entries/{id}", h1, 0, NULL},
    {MD_M_PUT, "/v1/stm/entries/{id}/feedback", h1, 0, NULL},
    {MD_M_GET, "/v1/ltm/concepts/{name}/rules", h1, 0, NULL},
    {MD_M_GET, "/health", h1, 0, NULL},
};

static struct md_router *router(void)
{
    struct md_error err;
    struct md_router *r = md_router_new(routes, MD_ARRAY_LEN(routes), &err);
    assert_non_null(r);
    return r;
}

static void test_literal_and_capture(void **state)
{
    (void)state;
    struct md_router *r = router();
    struct md_route_match m;
    assert_int_equal(md_router_match(r, MD_M_GET, "/health", &m), MD_ROUTE_FOUND);
    assert_ptr_equal(m.route, &routes[7]);
    assert_int_equal(md_router_match(r, MD_M_POST, "/v1/stm/entries", &m), MD_ROUTE_FOUND);
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/stm/entries/ecommerce_r1_consent", &m),
                     MD_ROUTE_FOUND);
    assert_ptr_equal(m.route, &routes[2]);
    assert_int_equal(m.n_params, 1);
    assert_true(m.param_valid[0]);
    assert_string_equal(m.params[0], "ecommerce_r1_consent");
    assert_int_equal(md_router_match(r, MD_M_PUT, "/v1/stm/entries/x/feedback", &m),
                     MD_ROUTE_FOUND);
    assert_ptr_equal(m.route, &routes[5]);
    md_router_free(r);
}

static void test_percent_decoding_stays_in_segment(void **state)
{
    (void)state;
    struct md_router *r = router();
    struct md_route_match m;
    /* An encoded slash is data inside the segment, never a separator. */
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/stm/entries/a%2Fb", &m), MD_ROUTE_FOUND);
    assert_string_equal(m.params[0], "a/b");
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/ltm/concepts/data%20retention/rules", &m),
                     MD_ROUTE_FOUND);
    assert_string_equal(m.params[0], "data retention");
    /* '+' is literal in paths */
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/ltm/concepts/a+b/rules", &m),
                     MD_ROUTE_FOUND);
    assert_string_equal(m.params[0], "a+b");
    /* bad escapes and NUL are flagged, not dropped */
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/stm/entries/%zz", &m), MD_ROUTE_FOUND);
    assert_false(m.param_valid[0]);
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/stm/entries/a%00b", &m), MD_ROUTE_FOUND);
    assert_false(m.param_valid[0]);
    assert_int_equal(md_router_match(r, MD_M_GET, "/v1/stm/entries/%4", &m), MD_ROUTE_FOUND);
    assert_false(m.param_valid[0]);
    md_router_free(r);
}

static void test_not_found_and_wrong_method(void **state)
{
    (void)state;
    struct md_router *r = router();
    struct md_route_match m;
    static const char *const missing[] = {"/", "", "/v1", "/v1/stm", "/v1/stm/entries/",
                                          "/v1/stm/entries//feedback", "/healthz", "health",
                                          "/v1/stm/entries/a/b/c", "//health",
                                          "/a/b/c/d/e/f/g/h/i/j/k"};
    for (size_t i = 0; i < MD_ARRAY_LEN(missing); i++)
        assert_int_equal(md_router_match(r, MD_M_GET, missing[i], &m), MD_ROUTE_NOT_FOUND);
    assert_int_equal(md_router_match(r, MD_M_PUT, "/v1/stm/entries/x", &m),
                     MD_ROUTE_WRONG_METHOD);
    assert_int_equal(m.allowed, MD_M_GET | MD_M_HEAD | MD_M_PATCH | MD_M_DELETE);
    char text[96];
    md_http_methods_text(m.allowed, text, sizeof(text));
    assert_string_equal(text, "GET, HEAD, PATCH, DELETE");
    assert_int_equal(md_router_match(r, MD_M_DELETE, "/health", &m), MD_ROUTE_WRONG_METHOD);
    /* HEAD is served by GET routes */
    assert_int_equal(md_router_match(r, MD_M_HEAD, "/health", &m), MD_ROUTE_FOUND);
    md_router_free(r);
}

static void test_methods(void **state)
{
    (void)state;
    assert_int_equal(md_http_method_parse("GET"), MD_M_GET);
    assert_int_equal(md_http_method_parse("PATCH"), MD_M_PATCH);
    assert_int_equal(md_http_method_parse("get"), 0);
    assert_int_equal(md_http_method_parse("TRACE"), 0);
    assert_string_equal(md_http_method_name(MD_M_DELETE), "DELETE");
}

static void test_bad_pattern(void **state)
{
    (void)state;
    static const struct md_route bad[] = {{MD_M_GET, "no-slash", h1, 0, NULL}};
    struct md_error err;
    assert_null(md_router_new(bad, 1, &err));
    assert_int_equal(err.code, MD_E_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_capture),
        cmocka_unit_test(test_percent_decoding_stays_in_segment),
        cmocka_unit_test(test_not_found_and_wrong_method),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_bad_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
