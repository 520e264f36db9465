/* moe_kernels.h — reference kernels of the mixture-of-experts ops (moe_ref.c),
 * declared for both instantiations like kernels.h.
 *
 * These ops have no oneDNN path: oneDNN 2.6 has no gather primitive, and its
 * binary primitive with a broadcast operand was measured slower than the
 * threaded reference loop (see ops_elementwise.c), so the float32 path is the
 * reference kernel too. Every pointer is to contiguous data; `accumulate`
 * means "add into the output" instead of overwriting it. Sums run in double
 * in a fixed order, so results do not depend on the thread count.
 */
#ifndef TESSERA_MOE_KERNELS_H
#define TESSERA_MOE_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#define TSR_DECLARE_MOE_KERNELS(real, sfx)                                                  \
    /* y (B, M, P) = x (B, M, P) + bias (B, P) broadcast over M, then max(., 0) when        \
     * relu (a bias per expert). */                                                          \
    void tsr_ref_batched_bias_fwd##sfx(const real *x, const real *bias, real *y,             \
                                       int64_t batch, int64_t m, int64_t p, bool relu);      \
    /* One pass over dy for both gradients, g = dy masked by (y > 0) when relu:   \
     * dx (B, M, P) (=|+=) g and dbias (B, P) (=|+=) the sum of g over M (m           \
     * ascending); either output may be NULL, each has its own flag. */              \
    void tsr_ref_batched_bias_bwd##sfx(const real *y, const real *dy, real *dx,              \
                                       real *dbias, int64_t batch, int64_t m, int64_t p,     \
                                       bool relu, bool accumulate_x, bool accumulate_b);     \
    /* y (M, D): y[i] = weight[i] * x[index[i]] (weight NULL: 1), a zero row where           \
     * index[i] < 0. x is (R, D) with every index < R. */                                   \
    void tsr_ref_gather_rows_fwd##sfx(const real *x, const int32_t *index, const real *weight, \
                                      real *y, int64_t m, int64_t d);                        \
    /* dx[index[i]] += weight[i] * dy[i] for every i with index[i] >= 0, i ascending. */    \
    void tsr_ref_gather_rows_bwd_x##sfx(const real *dy, const int32_t *index,                \
                                        const real *weight, real *dx, int64_t m, int64_t d); \
    /* dweight[i] (=|+=) dot(dy[i], x[index[i]]), 0 where index[i] < 0. */                   \
    void tsr_ref_gather_rows_bwd_weight##sfx(const real *dy, const int32_t *index,           \
                                             const real *x, real *dweight, int64_t m,        \
                                             int64_t d, bool accumulate);                    \
    /* y[r] = var / mean^2 of row r of x (R, K): the squared coefficient of variation,       \
     * population variance (divided by K). */                                                \
    void tsr_ref_cv_squared_fwd##sfx(const real *x, real *y, int64_t rows, int64_t k);      \
    /* dx (=|+=) the input gradient of cv_squared. */                                        \
    void tsr_ref_cv_squared_bwd##sfx(const real *x, const real *dy, real *dx, int64_t rows,  \
                                     int64_t k, bool accumulate);

TSR_DECLARE_MOE_KERNELS(float, _f32)
TSR_DECLARE_MOE_KERNELS(double, _f64)

#undef TSR_DECLARE_MOE_KERNELS

#endif
