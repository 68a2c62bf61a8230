/* test_common.c — buffers, clocks, UTF-8, SHA-256, percent decoding, cursors. */
#include "memoryd/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memoryd/buf.h"
#include "memoryd/clock.h"
#include "memoryd/cursor.h"
#include "memoryd/text.h"

static void test_buf_cap_and_escape(void **state)
{
    (void)state;
    struct md_buf b;
    md_buf_init(&b, 8);
    assert_int_equal(md_buf_puts(&b, "12345678"), MD_OK);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(md_buf_putc(&b, 'x'), MD_E_LIMIT);
    assert_int_equal(b.len, 8); /* unchanged after a refused append */
    md_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(md_buf_printf(&b, "%d", 42), MD_OK);
    assert_string_equal(b.data, "42");
    md_buf_release(&b);

    md_buf_init(&b, 1024);
    const char raw[] = "a\"b\\c\n\t\x01/\xc3\xa9";
    assert_int_equal(md_buf_json_str(&b, raw, sizeof(raw) - 1), MD_OK);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\"");
    size_t len;
    char *taken = md_buf_take(&b, &len);
    assert_int_equal(len, strlen(taken));
    assert_null(b.data);
    free(taken);
    /* take of an empty buffer is an allocated empty string */
    taken = md_buf_take(&b, &len);
    assert_non_null(taken);
    assert_int_equal(len, 0);
    free(taken);
    /* printf longer than the internal small buffer */
    char big[600];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(md_buf_printf(&b, "<%s>", big), MD_OK);
    assert_int_equal(b.len, 601);
    md_buf_release(&b);
}

static void test_iso8601(void **state)
{
    (void)state;
    char s[MD_ISO8601_LEN];
    md_iso8601(0, s);
    assert_string_equal(s, "1970-01-01T00:00:00.000Z");
    md_iso8601(1795707336123LL, s);
    assert_string_equal(s, "2026-11-26T15:35:36.123Z");
    md_iso8601(951782400000LL, s); /* leap day 2000 */
    assert_string_equal(s, "2000-02-29T00:00:00.000Z");
    int64_t back;
    assert_true(md_iso8601_parse("2026-11-26T15:35:36.123Z", &back));
    assert_int_equal(back, 1795707336123LL);
    assert_false(md_iso8601_parse("2026-11-26T15:35:36Z", &back));
    assert_false(md_iso8601_parse("2026-13-26T15:35:36.123Z", &back));
    assert_false(md_iso8601_parse("2026-11-26T15:35:36.123Z ", &back));
    int64_t now = md_now_ms();
    md_iso8601(now, s);
    assert_true(md_iso8601_parse(s, &back));
    assert_int_equal(back, now);
    int64_t a = md_mono_us();
    md_sleep_ms(2);
    assert_true(md_mono_us() - a >= 2000);
    md_iso8601(253402300799999LL, s); /* the last millisecond of year 9999 */
    assert_string_equal(s, "9999-12-31T23:59:59.999Z");
    /* the per-thread cache of the last second: same second, next second,
     * back in time, across midnight and the epoch, in any order */
    static const int64_t seq[] = {1795707336123LL, 1795707336999LL, 1795707337000LL,
                                  1795707336000LL, 1795737599999LL, 1795737600000LL, 1LL,
                                  999LL,           1000LL,          1795707337001LL};
    static const char *const want[] = {
        "2026-11-26T15:35:36.123Z", "2026-11-26T15:35:36.999Z", "2026-11-26T15:35:37.000Z",
        "2026-11-26T15:35:36.000Z", "2026-11-26T23:59:59.999Z", "2026-11-27T00:00:00.000Z",
        "1970-01-01T00:00:00.001Z", "1970-01-01T00:00:00.999Z", "1970-01-01T00:00:01.000Z",
        "2026-11-26T15:35:37.001Z"};
    for (size_t i = 0; i < MD_ARRAY_LEN(seq); i++) {
        md_iso8601(seq[i], s);
        assert_string_equal(s, want[i]);
    }
    for (int64_t t = 1795707336000LL - 3000; t < 1795707336000LL + 3000; t += 7) {
        md_iso8601(t, s);
        assert_true(md_iso8601_parse(s, &back));
        assert_int_equal(back, t);
    }
    /* a sample of the milliseconds of one day round-trips */
    for (int64_t t = 1795651200000LL; t < 1795651200000LL + 86400000LL; t += 997 * 61) {
        md_iso8601(t, s);
        assert_int_equal(strlen(s), MD_ISO8601_LEN - 1);
        assert_true(md_iso8601_parse(s, &back));
        assert_int_equal(back, t);
    }
}

static void test_str_copy(void **state)
{
    (void)state;
    char d[6];
    assert_true(md_str_copy(d, sizeof(d), "abc"));
    assert_string_equal(d, "abc");
    assert_true(md_str_copy(d, sizeof(d), "abcde"));
    assert_string_equal(d, "abcde");
    assert_false(md_str_copy(d, sizeof(d), "abcdef"));
    assert_string_equal(d, "abcde");
    assert_true(md_str_copy(d, sizeof(d), ""));
    assert_string_equal(d, "");
    char one[1];
    assert_false(md_str_copy(one, sizeof(one), "x"));
    assert_string_equal(one, "");
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(md_utf8_valid("plain", 5));
    assert_true(md_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_false(md_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(md_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(md_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(md_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(md_utf8_valid("\xff", 1));
    assert_false(md_utf8_valid("a\x80", 2));
    assert_int_equal(md_utf8_count("caf\xc3\xa9", 5), 4);
    assert_int_equal(md_utf8_count("\xf0\x9f\x98\x80", 4), 1);
    assert_true(md_str_blank(" \t\n"));
    assert_true(md_str_blank(""));
    assert_false(md_str_blank(" x "));
    assert_true(md_str_has_ctl("a\nb", 3));
    assert_false(md_str_has_ctl("ab", 2));
    assert_true(md_str_has_ctl("a\xc2\x85" "b", 4)); /* U+0085 NEXT LINE */
    assert_false(md_str_has_ctl("\xc2\xa0", 2));    /* U+00A0 is not a control */
    assert_false(md_str_has_ctl("\xc3\xa9", 2));
}

/* md_utf8_encode at every length boundary, checked by the validator and by bytes. */
static void test_utf8_encode_and_hex(void **state)
{
    (void)state;
    static const struct {
        uint32_t cp;
        const char *utf8;
    } cases[] = {
        {0x00, "\x00"},         {0x7F, "\x7f"},         {0x80, "\xc2\x80"},
        {0x7FF, "\xdf\xbf"},    {0x800, "\xe0\xa0\x80"}, {0xE9, "\xc3\xa9"},
        {0xFFFF, "\xef\xbf\xbf"}, {0x10000, "\xf0\x90\x80\x80"},
        {0x1F600, "\xf0\x9f\x98\x80"}, {0x10FFFF, "\xf4\x8f\xbf\xbf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[4];
        size_t n = md_utf8_encode(cases[i].cp, out);
        size_t want = cases[i].cp ? strlen(cases[i].utf8) : 1;
        assert_int_equal(n, want);
        assert_memory_equal(out, cases[i].utf8, n);
        assert_true(md_utf8_valid(out, n));
        assert_int_equal(md_utf8_count(out, n), 1);
    }
    assert_int_equal(md_hex_value('0'), 0);
    assert_int_equal(md_hex_value('9'), 9);
    assert_int_equal(md_hex_value('a'), 10);
    assert_int_equal(md_hex_value('F'), 15);
    assert_int_equal(md_hex_value('g'), -1);
    assert_int_equal(md_hex_value('G'), -1);
    assert_int_equal(md_hex_value('/'), -1);
    assert_int_equal(md_hex_value(':'), -1);
    assert_int_equal(md_hex_value('\0'), -1);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[MD_SHA256_HEX_LEN];
    md_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    md_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    md_sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    md_sha256_hex(million, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

static void test_hmac_vectors(void **state)
{
    (void)state;
    char hex[MD_SHA256_HEX_LEN];
    /* RFC 4231 test case 2 */
    md_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 6: key longer than the block */
    unsigned char key[131];
    memset(key, 0xaa, sizeof(key));
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    md_hmac_sha256_hex(key, sizeof(key), msg, strlen(msg), hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_percent_decode(void **state)
{
    (void)state;
    char out[64];
    size_t n;
    assert_true(md_percent_decode("a%20b+c", 7, out, &n, true));
    assert_string_equal(out, "a b c");
    assert_true(md_percent_decode("a%20b+c", 7, out, &n, false));
    assert_string_equal(out, "a b+c");
    assert_true(md_percent_decode("%C3%a9", 6, out, &n, false));
    assert_string_equal(out, "\xc3\xa9");
    assert_false(md_percent_decode("%", 1, out, &n, false));
    assert_false(md_percent_decode("%2", 2, out, &n, false));
    assert_false(md_percent_decode("%g0", 3, out, &n, false));
    assert_false(md_percent_decode("a%00", 4, out, &n, false));
}

static void test_random_and_consttime(void **state)
{
    (void)state;
    unsigned char a[16], b[16];
    md_random_bytes(a, sizeof(a));
    md_random_bytes(b, sizeof(b));
    assert_memory_not_equal(a, b, sizeof(a));
    for (int i = 0; i < 1000; i++)
        assert_true(md_random_below(7) < 7);
    assert_true(md_consttime_eq("abc", 3, "abc", 3));
    assert_false(md_consttime_eq("abc", 3, "abd", 3));
    assert_false(md_consttime_eq("abc", 3, "abcd", 4));
}

static void test_cursor(void **state)
{
    (void)state;
    char c[MD_CURSOR_MAX + 1], payload[MD_CURSOR_PAYLOAD_MAX + 1];
    assert_true(md_cursor_encode("stm", "12345", "{\"status\":\"Compliant\"}", c));
    for (const char *p = c; *p; p++)
        assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_true(md_cursor_decode("stm", c, "{\"status\":\"Compliant\"}", payload));
    assert_string_equal(payload, "12345");
    /* another filter set, another list kind, garbage, tampering */
    assert_false(md_cursor_decode("stm", c, "{}", payload));
    assert_false(md_cursor_decode("ltm", c, "{\"status\":\"Compliant\"}", payload));
    assert_false(md_cursor_decode("stm", "garbage", "{}", payload));
    assert_false(md_cursor_decode("stm", "", "{}", payload));
    assert_false(md_cursor_decode("stm", "!!!!", "{}", payload));
    c[1] = c[1] == 'A' ? 'B' : 'A';
    assert_false(md_cursor_decode("stm", c, "{\"status\":\"Compliant\"}", payload));
    char longp[MD_CURSOR_PAYLOAD_MAX + 2];
    memset(longp, '1', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_false(md_cursor_encode("stm", longp, "", c));
    /* another secret (another deployment) does not accept the cursor */
    assert_true(md_cursor_encode("stm", "7", "", c));
    md_cursor_set_secret("another-deployment");
    assert_false(md_cursor_decode("stm", c, "", payload));
    assert_true(md_cursor_encode("stm", "7", "", c));
    assert_true(md_cursor_decode("stm", c, "", payload));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap_and_escape), cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_utf8),               cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_percent_decode),     cmocka_unit_test(test_random_and_consttime),
        cmocka_unit_test(test_cursor),            cmocka_unit_test(test_hmac_vectors),
        cmocka_unit_test(test_str_copy),           cmocka_unit_test(test_utf8_encode_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
