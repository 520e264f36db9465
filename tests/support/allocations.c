/* allocations.c — see allocations.h. */
#include "support/allocations.h"

#include <errno.h>
#include <stddef.h>

#include <oneapi/dnnl/dnnl.h>

static _Thread_local long outside, inside;
static _Thread_local int in_runtime; /* in a runtime call: oneDNN or libgomp */

long tsr_test_allocations(void) { return outside; }
long tsr_test_runtime_allocations(void) { return inside; }

static void count_one(void)
{
    if (in_runtime) inside++;
    else outside++;
}

/* With -Wl,--wrap=GOMP_parallel, tessera's parallel regions start here.
 * libgomp allocates a team for every region that runs on one thread (it keeps
 * only teams of two or more for reuse), so at one thread each region costs a
 * malloc inside libgomp: counted as the runtime's. The region's body, which
 * is tessera's code, is counted as tessera's again. */
void __real_GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
void __wrap_GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

typedef struct region {
    void (*fn)(void *);
    void *data;
} region;

static void region_body(void *r_)
{
    const region *r = r_;
    int saved = in_runtime;
    in_runtime = 0;
    r->fn(r->data);
    in_runtime = saved;
}

void __wrap_GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags)
{
    region r = {fn, data};
    in_runtime++;
    __real_GOMP_parallel(region_body, &r, num_threads, flags);
    in_runtime--;
}

/* With -Wl,--wrap=dnnl_primitive_execute, tessera's calls come here. */
dnnl_status_t __real_dnnl_primitive_execute(const_dnnl_primitive_t primitive, dnnl_stream_t stream,
                                            int nargs, const dnnl_exec_arg_t *args);
dnnl_status_t __wrap_dnnl_primitive_execute(const_dnnl_primitive_t primitive, dnnl_stream_t stream,
                                            int nargs, const dnnl_exec_arg_t *args);
dnnl_status_t __wrap_dnnl_primitive_execute(const_dnnl_primitive_t primitive, dnnl_stream_t stream,
                                            int nargs, const dnnl_exec_arg_t *args)
{
    in_runtime++;
    dnnl_status_t status = __real_dnnl_primitive_execute(primitive, stream, nargs, args);
    in_runtime--;
    return status;
}

#if defined(__SANITIZE_ADDRESS__)
#define ALLOCATION_COUNTER_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALLOCATION_COUNTER_HOOK 1
#endif
#endif
#if !defined(ALLOCATION_COUNTER_HOOK) && defined(__GLIBC__)
#define ALLOCATION_COUNTER_REPLACEMENT 1
#endif

#if defined(ALLOCATION_COUNTER_HOOK)
/* Declared in <sanitizer/allocator_interface.h>, which GCC does not install. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static void count_allocation(const volatile void *ptr, size_t size)
{
    (void)ptr, (void)size;
    count_one();
}
static void ignore_free(const volatile void *ptr) { (void)ptr; }
bool tsr_test_count_allocations(void)
{
    static int installed = -1;
    /* Returns 0 when no hook slot was free (both hooks must be given). */
    if (installed < 0) installed = __sanitizer_install_malloc_and_free_hooks(count_allocation, ignore_free) != 0;
    return installed;
}
#elif defined(ALLOCATION_COUNTER_REPLACEMENT)
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

void *malloc(size_t size)
{
    count_one();
    return __libc_malloc(size);
}
void *calloc(size_t count, size_t size)
{
    count_one();
    return __libc_calloc(count, size);
}
void *realloc(void *ptr, size_t size)
{
    count_one();
    return __libc_realloc(ptr, size);
}
void *aligned_alloc(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}
void *memalign(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **out, size_t alignment, size_t size)
{
    count_one();
    if (alignment < sizeof(void *) || (alignment & (alignment - 1))) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
bool tsr_test_count_allocations(void) { return true; }
#else
bool tsr_test_count_allocations(void) { return false; }
#endif
