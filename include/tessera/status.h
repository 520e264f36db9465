/* status.h — errors a user can cause, and the one assert for programming errors.
 *
 * Two kinds of failure, two mechanisms:
 *  - A programming error (shape mismatch at a layer boundary, NULL where
 *    forbidden) aborts through TSR_ASSERT, which prints the expression, file and
 *    line. It stays on in release builds.
 *  - Anything a user can cause (a missing file, a bad config value, a oneDNN or
 *    HDF5 failure) returns a tsr_status and fills a caller-provided tsr_error with
 *    a message naming the file, key or value and what was expected.
 */
#ifndef TESSERA_STATUS_H
#define TESSERA_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_status {
    TSR_STATUS_OK = 0,
    TSR_STATUS_INVALID_ARGUMENT, /* a bad value, key or shape from the user */
    TSR_STATUS_IO,               /* a file that cannot be read or written */
    TSR_STATUS_FORMAT,           /* a file that is not what it claims to be */
    TSR_STATUS_BACKEND,          /* oneDNN or HDF5 reported a failure */
    TSR_STATUS_OUT_OF_MEMORY,
} tsr_status;

enum { TSR_ERROR_MESSAGE_SIZE = 512 };

/* Filled by a failing call; `message` is always NUL-terminated. */
typedef struct tsr_error {
    tsr_status status;
    char message[TSR_ERROR_MESSAGE_SIZE];
} tsr_error;

/* Records `status` and a printf-style message in `err` (which may be NULL) and
 * returns `status`, so a failing path can `return tsr_error_set(...)`. */
tsr_status tsr_error_set(tsr_error *err, tsr_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

const char *tsr_status_name(tsr_status status);

/* Prints "tessera: assertion failed: EXPR (MSG) at FILE:LINE" and aborts. */
_Noreturn void tsr_assert_fail(const char *expr, const char *file, int line,
                               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#define TSR_ASSERT(cond)                                                      \
    do {                                                                      \
        if (!(cond)) tsr_assert_fail(#cond, __FILE__, __LINE__, NULL);        \
    } while (0)

/* Like TSR_ASSERT with a formatted explanation (shapes, indices). */
#define TSR_ASSERT_MSG(cond, ...)                                             \
    do {                                                                      \
        if (!(cond)) tsr_assert_fail(#cond, __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

/* Allocation that aborts on out-of-memory (redis/sqlite style): library code
 * never has to handle a NULL from these. Memory is freed with tsr_free. */
void *tsr_malloc(size_t size);
void *tsr_calloc(size_t count, size_t size);
void *tsr_aligned_alloc(size_t alignment, size_t size);
void *tsr_realloc(void *ptr, size_t size);
void tsr_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif
