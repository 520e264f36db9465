/* allocations.h — counts the heap allocations made on the calling thread, for
 * the tests that promise a loop allocates nothing after warm-up. */
#ifndef TESSERA_TEST_ALLOCATIONS_H
#define TESSERA_TEST_ALLOCATIONS_H

#include <stdbool.h>

/* Starts counting; false when this platform has no counter (the test should
 * then skip). Without a sanitizer, linking this file replaces malloc, calloc,
 * realloc, aligned_alloc, memalign and posix_memalign in the test executable
 * with counting forwarders to glibc's allocator (tessera is linked statically,
 * so the library's allocations pass through them, and so do oneDNN's, by
 * symbol interposition). Under AddressSanitizer, which owns the allocator, the
 * count comes from its allocation hook. */
bool tsr_test_count_allocations(void);
/* Allocations made on the calling thread since the process started by
 * tessera's own code (or the test's). */
long tsr_test_allocations(void);
/* Those made inside the runtimes tessera calls, which they make on every call
 * and give no way to avoid: oneDNN 2.6's dnnl_primitive_execute builds a
 * std::unordered_map of its arguments (about 6 allocations per primitive), and
 * libgomp allocates the team of every parallel region that runs on one thread.
 * Executables that use this file are linked with
 * -Wl,--wrap=dnnl_primitive_execute,--wrap=GOMP_parallel (tests/meson.build:
 * alloc_units) so that those calls pass through counting wrappers. */
long tsr_test_runtime_allocations(void);

#endif
