/*
 * fuzz_json_load.c — md_json_load against jansson's json_loadb, differentially.
 *
 * Input: any bytes, parsed three ways (default flags, any value at the top,
 * duplicate keys rejected).
 *
 * Invariant: md_json_load accepts an input exactly when json_loadb with the
 * matching flags does, and then both build equal trees (json_equal) — except
 * for input with a NUL byte, which md_json_load always refuses: jansson 2.14
 * drops a NUL that follows a number ("[1\0]" parses as [1]; its stream
 * takes the pushed-back NUL for the end of its buffer).
 */
#include "memoryd/compat.h"

#include "fuzz_common.h"
#include "memoryd/json_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct {
        unsigned ours;
        size_t theirs;
    } modes[] = {{0, 0},
                 {MD_JSON_LOAD_ANY, JSON_DECODE_ANY},
                 {MD_JSON_LOAD_REJECT_DUPS, JSON_REJECT_DUPLICATES}};
    bool has_nul = memchr(data, '\0', size) != NULL;
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        const char *why = NULL;
        size_t pos = 0;
        json_t *ours = md_json_load((const char *)data, size, modes[m].ours, &why, &pos);
        if (has_nul) {
            FUZZ_CHECK(!ours, "mode %zu: accepted input with a NUL byte", m);
            continue;
        }
        json_error_t jerr;
        json_t *theirs = json_loadb((const char *)data, size, modes[m].theirs, &jerr);
        FUZZ_CHECK(!ours == !theirs, "mode %zu: md_json_load %s (%s at %zu), jansson %s (%s)",
                   m, ours ? "accepted" : "refused", why ? why : "-", pos,
                   theirs ? "accepted" : "refused", theirs ? "-" : jerr.text);
        FUZZ_CHECK(!ours || json_equal(ours, theirs), "mode %zu: different trees", m);
        FUZZ_CHECK(ours || (why && pos <= size), "mode %zu: a refusal without a reason", m);
        json_decref(ours);
        json_decref(theirs);
    }
    return 0;
}
