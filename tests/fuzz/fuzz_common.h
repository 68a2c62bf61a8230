/*
 * fuzz_common.h — what every libFuzzer target here shares.
 *
 * FUZZ_CHECK(cond, ...) states an invariant: when it does not hold the
 * target prints the message and aborts, which libFuzzer reports as a crash
 * and saves the input (artifact). Sanitizer findings (ASan, UBSan, leaks)
 * are reported by the runtime itself.
 */
#ifndef MD_FUZZ_COMMON_H
#define MD_FUZZ_COMMON_H

#include "memoryd/compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry point libFuzzer calls (declared here for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "\nFUZZ INVARIANT FAILED %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fputc('\n', stderr);                                                                 \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* A NUL-terminated heap copy of data[0..size) (embedded NULs kept); NULL on OOM. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return NULL;
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/*
 * Cut the input into fields at a separator byte: *pos advances past the
 * field and its separator. Returns the field as a new string (embedded
 * NULs end it early, which is fine for C-string APIs); NULL on OOM.
 */
static inline char *fuzz_field(const uint8_t *data, size_t size, size_t *pos, char sep)
{
    size_t start = *pos, i = start;
    while (i < size && data[i] != (uint8_t)sep)
        i++;
    *pos = i < size ? i + 1 : size;
    return fuzz_strndup(data + start, i - start);
}

#endif /* MD_FUZZ_COMMON_H */
