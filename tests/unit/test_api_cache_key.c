/*
 * test_api_cache_key.c — the answers cache key of a GET (src/api/api_cache.c):
 * every parameter that changes the answer is in it, the order the client
 * wrote them in is not, and a key that does not fit is refused, never cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/api/api_int.h"

static void req_set(struct md_req *req, const char *path, const char *const *kv, size_t n)
{
    memset(req, 0, sizeof(*req));
    req->path = path;
    for (size_t i = 0; i < n; i++) {
        req->query[i].key = (char *)(uintptr_t)kv[2 * i];
        req->query[i].value = (char *)(uintptr_t)kv[2 * i + 1];
    }
    req->n_query = n;
}

static void key_of(const char *path, const char *const *kv, size_t n, char *out, size_t cap)
{
    struct md_req req;
    req_set(&req, path, kv, n);
    assert_true(api_cache_key(&req, out, cap));
}

static void test_path_only(void **state)
{
    (void)state;
    char k[256];
    key_of("/v1/ltm/rules/GDPR-001", NULL, 0, k, sizeof(k));
    assert_string_equal(k, "/v1/ltm/rules/GDPR-001");
}

static void test_sorted_with_lengths(void **state)
{
    (void)state;
    char a[256], b[256];
    const char *kv1[] = {"q", "consent", "limit", "10", "cursor", ""};
    const char *kv2[] = {"limit", "10", "cursor", "", "q", "consent"};
    key_of("/v1/ltm/rules", kv1, 3, a, sizeof(a));
    key_of("/v1/ltm/rules", kv2, 3, b, sizeof(b));
    assert_string_equal(a, "/v1/ltm/rules?cursor=0:&limit=2:10&q=7:consent");
    assert_string_equal(a, b);
}

static void test_every_parameter_counts(void **state)
{
    (void)state;
    char a[256], b[256];
    const char *kv1[] = {"q", "consent", "limit", "10"};
    const char *kv2[] = {"q", "consent", "limit", "11"};
    key_of("/v1/ltm/rules", kv1, 2, a, sizeof(a));
    key_of("/v1/ltm/rules", kv2, 2, b, sizeof(b));
    assert_string_not_equal(a, b);
    /* a value holding the separators cannot imitate two parameters */
    const char *kv3[] = {"q", "a&limit=1:1"};
    const char *kv4[] = {"q", "a", "limit", "1"};
    key_of("/v1/ltm/rules", kv3, 1, a, sizeof(a));
    key_of("/v1/ltm/rules", kv4, 2, b, sizeof(b));
    assert_string_equal(a, "/v1/ltm/rules?q=11:a&limit=1:1");
    assert_string_not_equal(a, b);
    /* the same key twice: both values, ordered by value */
    const char *kv5[] = {"tag", "b", "tag", "a"};
    key_of("/x", kv5, 2, a, sizeof(a));
    assert_string_equal(a, "/x?tag=1:a&tag=1:b");
}

static void test_long_value_length(void **state)
{
    (void)state;
    char v[1235], k[2048], want[2048];
    memset(v, 'x', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    const char *kv[] = {"q", v};
    key_of("/p", kv, 1, k, sizeof(k));
    snprintf(want, sizeof(want), "/p?q=1234:%s", v);
    assert_string_equal(k, want);
}

static void test_too_long_is_refused(void **state)
{
    (void)state;
    const char *kv[] = {"q", "consent"};
    const char *full = "/v1/ltm/rules?q=7:consent";
    struct md_req req;
    req_set(&req, "/v1/ltm/rules", kv, 1);
    char k[64];
    assert_true(api_cache_key(&req, k, strlen(full) + 1)); /* exactly fits */
    assert_string_equal(k, full);
    for (size_t cap = 0; cap <= strlen(full); cap++)
        assert_false(api_cache_key(&req, k, cap));
    req_set(&req, "/v1/ltm/rules", NULL, 0);
    assert_false(api_cache_key(&req, k, strlen("/v1/ltm/rules")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_only),
        cmocka_unit_test(test_sorted_with_lengths),
        cmocka_unit_test(test_every_parameter_counts),
        cmocka_unit_test(test_long_value_length),
        cmocka_unit_test(test_too_long_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
