/*
 * compat.h — first include of every memoryd source file.
 *
 * Feature macros come from the build (_GNU_SOURCE, set by CMake so that it
 * precedes every system header). This header adds the attributes the code
 * base uses everywhere: MD_MUSTCHECK on fallible functions, MD_PRINTF on
 * printf-like functions, MD_UNUSED for callback parameters, and MD_STATIC,
 * which is `static` normally and external in unit-test builds so that tests
 * can reach file-local helpers (curl's UNITTEST idea).
 */
#ifndef MD_COMPAT_H
#define MD_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MD_MUSTCHECK __attribute__((warn_unused_result))
#define MD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define MD_NORETURN __attribute__((noreturn))
#define MD_UNUSED(x) ((void)(x))

#ifdef MD_UNIT_TEST
#define MD_STATIC
#else
#define MD_STATIC static
#endif

#define MD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MD_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* MD_COMPAT_H */
