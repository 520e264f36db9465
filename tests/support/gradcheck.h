/* gradcheck.h — finite-difference gradient checks in double precision.
 *
 * The op under test is a function from float64 input tensors to one float64
 * output. The check draws a fixed random projection r of the output's shape,
 * backpropagates r through the tape (the gradient of L = sum(r * f(x))), and
 * compares each input's analytic gradient with the central difference
 * (L(x + eps e_j) - L(x - eps e_j)) / 2 eps for every element j. Inputs whose
 * requires_grad is false are held constant. Fails the Criterion test with the
 * worst element on a mismatch. */
#ifndef TESSERA_TEST_GRADCHECK_H
#define TESSERA_TEST_GRADCHECK_H

#include "tessera/autograd.h"
#include "tessera/tensor.h"

typedef tsr_tensor *(*tsr_test_forward_fn)(tsr_ctx *ctx, tsr_tensor *const *inputs, void *user);

typedef struct tsr_gradcheck_options {
    double eps;  /* step; 0 picks 1e-6 */
    double rtol; /* 0 picks 1e-6 */
    double atol; /* 0 picks 1e-8 */
} tsr_gradcheck_options;

/* inputs: float64 tensors — heap tensors (tsr_tensor_new) with requires_grad
 * set on those to check, or parameter tensors of a float64 tsr_params block
 * (their gradient views are kept). The context the forward gets is fresh. Returns the number of mismatching elements (also reported). */
long tsr_test_gradcheck(tsr_test_forward_fn forward, tsr_tensor *const *inputs, int count,
                        void *user, const tsr_gradcheck_options *options, const char *what);

/* Fills a heap tensor with uniform values in [lo, hi) from a seeded stream. */
void tsr_test_fill_uniform(tsr_tensor *t, double lo, double hi, uint64_t seed);

#endif
