/* test_envelope.c — success envelopes, whole and in two halves. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/clock.h"
#include "memoryd/envelope.h"
#include "memoryd/http.h"

static void resp_init(struct md_resp *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    md_buf_init(&r->body, max);
}

/* The envelope without its timestamp value, which differs between calls. */
static void check_shape(const struct md_resp *r, const char *data)
{
    char want[512];
    snprintf(want, sizeof(want),
             "{\"status\":\"success\",\"message\":\"rule \\\"x\\\" retrieved\",\"data\":%s,"
             "\"timestamp\":\"",
             data);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "application/json");
    assert_int_equal(strncmp(r->body.data, want, strlen(want)), 0);
    const char *ts = r->body.data + strlen(want);
    char copy[MD_ISO8601_LEN];
    memcpy(copy, ts, MD_ISO8601_LEN - 1);
    copy[MD_ISO8601_LEN - 1] = '\0';
    int64_t ms;
    assert_true(md_iso8601_parse(copy, &ms));
    assert_string_equal(ts + MD_ISO8601_LEN - 1, "\"}");
}

static void test_raw_and_halves_write_the_same_envelope(void **state)
{
    (void)state;
    const char data[] = "{\"a\":[1,2,{\"b\":null}]}";
    struct md_resp whole, halves;
    resp_init(&whole, 4096);
    resp_init(&halves, 4096);
    assert_int_equal(md_resp_success_raw(&whole, 200, "rule \"x\" retrieved", data,
                                         strlen(data)),
                     MD_OK);
    check_shape(&whole, data);
    assert_int_equal(md_resp_success_begin(&halves, "rule \"x\" retrieved"), MD_OK);
    assert_int_equal(halves.status, 0); /* not an answer until it is closed */
    assert_int_equal(md_buf_append(&halves.body, data, strlen(data)), MD_OK);
    assert_int_equal(md_resp_success_end(&halves, 200), MD_OK);
    check_shape(&halves, data);
    md_buf_release(&whole.body);
    md_buf_release(&halves.body);
}

static void test_a_half_that_does_not_fit_releases_the_body(void **state)
{
    (void)state;
    struct md_resp r;
    resp_init(&r, 52); /* the head (42 bytes) and the data fit, the tail does not */
    assert_int_equal(md_resp_success_begin(&r, "ok"), MD_OK);
    assert_int_equal(md_buf_puts(&r.body, "[1,2,3]"), MD_OK);
    assert_int_not_equal(md_resp_success_end(&r, 200), MD_OK);
    assert_null(r.body.data);
    assert_int_equal(r.body.len, 0);
    assert_int_equal(r.status, 0);

    resp_init(&r, 10); /* not even the head */
    assert_int_not_equal(md_resp_success_begin(&r, "a message that is longer"), MD_OK);
    assert_null(r.body.data);
    resp_init(&r, 48);
    assert_int_not_equal(md_resp_success_raw(&r, 200, "ok", "[1,2,3]", 7), MD_OK);
    assert_null(r.body.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_and_halves_write_the_same_envelope),
        cmocka_unit_test(test_a_half_that_does_not_fit_releases_the_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
