/*
 * fuzz_cursor.c — the pagination cursor codec (cursor.h).
 *
 * Input: byte 0 picks the list kind and byte 1 a position to tamper with;
 * the rest is newline-separated: cursor \n binding \n payload.
 *
 * Invariants:
 *   - decoding an arbitrary cursor never overruns, and whatever decodes
 *     re-encodes to a cursor that decodes to the same payload;
 *   - md_cursor_encode succeeds exactly for payloads of at most
 *     MD_CURSOR_PAYLOAD_MAX bytes, writes at most MD_CURSOR_MAX URL-safe
 *     characters, and its output decodes to the payload under the same kind
 *     and binding, and not under another kind or binding;
 *   - a tampered cursor never decodes to a different payload;
 *   - every position a listing hands out fits in a cursor: the concepts
 *     listing continues after a concept's fold key (up to
 *     MD_CONCEPT_KEY_MAX bytes), searches after a decimal offset.
 */
#include "memoryd/compat.h"

#include "fuzz_common.h"
#include "memoryd/cursor.h"
#include "memoryd/ltm.h"
#include "memoryd/text.h"

static const char *const kinds[] = {"stm", "ltm-search", "ltm-concepts"};

static bool url_safe(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static void round_trip(const char *kind, const char *payload, const char *binding,
                       size_t tamper_at)
{
    char cur[MD_CURSOR_MAX + 1], back[MD_CURSOR_PAYLOAD_MAX + 1];
    memset(cur, 0, sizeof(cur));
    bool ok = md_cursor_encode(kind, payload, binding, cur);
    FUZZ_CHECK(ok == (strlen(payload) <= MD_CURSOR_PAYLOAD_MAX),
               "encode of a %zu-byte payload returned %d", strlen(payload), ok);
    if (!ok)
        return;
    FUZZ_CHECK(strlen(cur) <= MD_CURSOR_MAX && url_safe(cur), "cursor '%s' not URL-safe", cur);
    FUZZ_CHECK(md_cursor_decode(kind, cur, binding, back) && strcmp(back, payload) == 0,
               "cursor of '%s' does not decode back", payload);
    const char *other = strcmp(kind, "stm") == 0 ? "ltm-search" : "stm";
    FUZZ_CHECK(!md_cursor_decode(other, cur, binding, back), "cursor accepted for another kind");
    char other_binding[1100];
    snprintf(other_binding, sizeof(other_binding), "%s|x", binding);
    FUZZ_CHECK(!md_cursor_decode(kind, cur, other_binding, back),
               "cursor accepted under another binding");
    size_t len = strlen(cur);
    if (len == 0)
        return;
    char t[MD_CURSOR_MAX + 1];
    memcpy(t, cur, len + 1);
    size_t i = tamper_at % len;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    if (md_cursor_decode(kind, t, binding, back)) /* only unused trailing bits may change */
        FUZZ_CHECK(strcmp(back, payload) == 0, "tampered cursor decoded to '%s'", back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 4096)
        return 0;
    const char *kind = kinds[data[0] % MD_ARRAY_LEN(kinds)];
    size_t tamper_at = data[1];
    size_t pos = 2;
    char *cursor = fuzz_field(data, size, &pos, '\n');
    char *binding = fuzz_field(data, size, &pos, '\n');
    char *payload = fuzz_field(data, size, &pos, '\n');
    if (!cursor || !binding || !payload)
        goto out;
    if (strlen(binding) > 1024)
        binding[1024] = '\0';

    /* arbitrary cursors */
    char got[MD_CURSOR_PAYLOAD_MAX + 1];
    memset(got, 0x5A, sizeof(got));
    if (md_cursor_decode(kind, cursor, binding, got)) {
        FUZZ_CHECK(strlen(got) <= MD_CURSOR_PAYLOAD_MAX, "payload not terminated");
        round_trip(kind, got, binding, tamper_at);
    }

    /* the payload of the input, and the positions the listings use */
    round_trip(kind, payload, binding, tamper_at);
    char offset[32];
    snprintf(offset, sizeof(offset), "%zu", (size_t)strtoull(payload, NULL, 10));
    round_trip("ltm-search", offset, binding, tamper_at);
    size_t plen = strlen(payload);
    if (md_utf8_valid(payload, plen) && md_utf8_count(payload, plen) <= MD_CONCEPT_NAME_MAX &&
        plen > 0) {
        char key[MD_CONCEPT_KEY_MAX + 1];
        md_concept_key(payload, key);
        char cur[MD_CURSOR_MAX + 1];
        FUZZ_CHECK(md_cursor_encode("ltm-concepts", key, "", cur),
                   "the concepts listing cannot continue after '%s' (%zu-byte key)", key,
                   strlen(key));
        round_trip("ltm-concepts", key, "", tamper_at);
    }
out:
    free(cursor);
    free(binding);
    free(payload);
    return 0;
}
