/* pool_checks.h — the checks max_pool2d and avg_pool2d share: finite
 * differences, oneDNN against the reference kernels, and gradient
 * accumulation when an input is pooled twice in a step. */
#ifndef TESSERA_TEST_POOL_CHECKS_H
#define TESSERA_TEST_POOL_CHECKS_H

#include "tessera/ops.h"

/* tsr_max_pool2d or tsr_avg_pool2d. */
typedef tsr_tensor *(*tsr_test_pool_fn)(tsr_ctx *ctx, tsr_tensor *x, int kernel, int stride,
                                        tsr_padding padding);

typedef struct tsr_test_pool {
    tsr_test_pool_fn fn;
    const char *name; /* for messages: "max_pool2d" */
    int kernel, stride;
    tsr_padding padding;
} tsr_test_pool;

/* Finite differences in float64 on an (n, h, w, c) input. */
void tsr_test_pool_gradcheck(tsr_test_pool pool, int64_t n, int64_t h, int64_t w, int64_t c);

/* oneDNN against the reference on an (n, h, h, c) input: the output shape,
 * the output within `forward_tol` (relative and absolute), the input
 * gradient within 1e-6, and the inference-only output (nothing on the tape). */
void tsr_test_pool_parity(tsr_test_pool pool, int64_t n, int64_t h, int64_t c, double forward_tol);

/* On both backends: pooling an (n, h, h, c) input twice in one step and
 * backpropagating the same output gradient twice gives twice the gradient. */
void tsr_test_pool_accumulates(tsr_test_pool pool, int64_t n, int64_t h, int64_t c);

#endif
