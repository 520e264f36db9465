/* parity.h — oneDNN against the reference kernels for one op. */
#ifndef TESSERA_TEST_PARITY_H
#define TESSERA_TEST_PARITY_H

#include "support/gradcheck.h"
#include "tessera/autograd.h"
#include "tessera/tensor.h"

/* Float32 parity: |a - b| <= 1e-4 |b| + 1e-5 max|b| (the absolute floor scales
 * with the result's magnitude: long sums cancel). Logs the worst error in
 * units of the tolerance, so the margin is visible in the test log. */
void tsr_test_expect_parity(const tsr_tensor *got, const tsr_tensor *want, const char *what);

/* Runs `op` once on the oneDNN backend and once on the reference kernels,
 * backpropagates the same random output gradient, and compares the output
 * and the gradient of every input that requires one (at most 4 inputs).
 * The oneDNN side is TSR_BACKEND_DNNL_ALL: every primitive the op has, also
 * those training's DNNL backend passes over on this CPU. */
void tsr_test_check_parity(tsr_test_forward_fn op, tsr_tensor *const *inputs, int count,
                           void *user, const char *what);
/* The same with the oneDNN side on `backend` (TSR_BACKEND_DNNL: what
 * training runs). */
void tsr_test_check_parity_on(tsr_backend backend, tsr_test_forward_fn op,
                              tsr_tensor *const *inputs, int count, void *user, const char *what);

enum { TSR_TEST_MAX_INPUTS = 4 };

/* The output and every input gradient of one forward + backward, copied to
 * the heap. */
typedef struct tsr_test_run_result {
    tsr_tensor *out;
    tsr_tensor *grad[TSR_TEST_MAX_INPUTS];
} tsr_test_run_result;

/* Runs op on `backend` and backpropagates a fixed random output gradient. */
tsr_test_run_result tsr_test_run_op(tsr_backend backend, tsr_test_forward_fn op,
                                    tsr_tensor *const *inputs, int count, void *user);
void tsr_test_free_result(tsr_test_run_result *r);

/* A heap copy of t (same dtype and shape, contiguous). */
tsr_tensor *tsr_test_heap_copy(const tsr_tensor *t);

#endif
