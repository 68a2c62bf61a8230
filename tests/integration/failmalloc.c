/*
 * failmalloc.c — an allocator shim for test_oom.py, loaded into memoryd with
 * LD_PRELOAD: while armed, every Nth allocation in the process fails (NULL,
 * errno ENOMEM), in memoryd and in every library it uses alike.
 *
 * Control: MD_FAILMALLOC_CTL names a file of at least 4096 bytes, mapped
 * shared on the first allocation; the test writes `period` (0 = off) and
 * reads `failed` (allocations refused so far). Without the variable, or if
 * the file cannot be mapped, nothing ever fails.
 *
 * The real allocator is reached through glibc's __libc_* entry points, so
 * the shim itself never allocates (no dlsym). free() is glibc's own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

struct ctl {
    _Atomic uint32_t period; /* written by the test */
    _Atomic uint32_t unused;
    _Atomic uint64_t failed; /* written here */
};

enum { UNMAPPED, MAPPING, MAPPED, NONE };
static _Atomic int state = UNMAPPED;
static struct ctl *ctl;
static _Atomic uint64_t calls;

static struct ctl *control(void)
{
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s == MAPPED)
        return ctl;
    if (s != UNMAPPED)
        return NULL; /* none, or another thread maps it right now */
    int expected = UNMAPPED;
    if (!atomic_compare_exchange_strong(&state, &expected, MAPPING))
        return NULL;
    const char *path = getenv("MD_FAILMALLOC_CTL");
    int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
    void *m = fd >= 0 ? mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (fd >= 0)
        close(fd);
    if (m == MAP_FAILED) {
        atomic_store_explicit(&state, NONE, memory_order_release);
        return NULL;
    }
    ctl = m;
    atomic_store_explicit(&state, MAPPED, memory_order_release);
    return ctl;
}

static int refuse(void)
{
    struct ctl *c = control();
    if (!c)
        return 0;
    uint32_t period = atomic_load_explicit(&c->period, memory_order_relaxed);
    if (period == 0)
        return 0;
    if (atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) % period != period - 1)
        return 0;
    atomic_fetch_add_explicit(&c->failed, 1, memory_order_relaxed);
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    return refuse() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    return refuse() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (p && n == 0)
        return __libc_realloc(p, n); /* a free: never refused */
    return refuse() ? NULL : __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n)
{
    return refuse() ? NULL : __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return refuse() ? NULL : __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (refuse())
        return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
