/* status.c — error records, the abort path, and the aborting allocator. */
#include "tessera/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

tsr_status tsr_error_set(tsr_error *err, tsr_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *tsr_status_name(tsr_status status)
{
    static const char *const names[] = {
        [TSR_STATUS_OK] = "ok",
        [TSR_STATUS_INVALID_ARGUMENT] = "invalid argument",
        [TSR_STATUS_IO] = "i/o error",
        [TSR_STATUS_FORMAT] = "format error",
        [TSR_STATUS_BACKEND] = "backend error",
        [TSR_STATUS_OUT_OF_MEMORY] = "out of memory",
    };
    if ((unsigned)status < sizeof names / sizeof names[0] && names[status])
        return names[status];
    return "unknown status";
}

void tsr_assert_fail(const char *expr, const char *file, int line, const char *fmt, ...)
{
    fprintf(stderr, "tessera: assertion failed: %s", expr);
    if (fmt) {
        fputs(" (", stderr);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc(')', stderr);
    }
    fprintf(stderr, " at %s:%d\n", file, line);
    fflush(stderr);
    abort();
}

static void out_of_memory(size_t size)
{
    fprintf(stderr, "tessera: out of memory allocating %zu bytes\n", size);
    abort();
}

void *tsr_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) out_of_memory(size);
    return p;
}

void *tsr_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *tsr_aligned_alloc(size_t alignment, size_t size)
{
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t rounded = (size + alignment - 1) / alignment * alignment;
    void *p = aligned_alloc(alignment, rounded ? rounded : alignment);
    if (!p) out_of_memory(size);
    return p;
}

void *tsr_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p) out_of_memory(size);
    return p;
}

void tsr_free(void *ptr) { free(ptr); }
