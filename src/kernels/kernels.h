/* kernels.h — plain-C reference kernels, declared for both instantiations.
 *
 * Each kernel is written once against `real` (real.h) and exists as name_f32
 * and name_f64. They are the ground truth the oneDNN paths are checked
 * against, and the only path for float64. Contracts use the project's
 * dimension letters; every pointer is to contiguous data unless stated. An
 * `accumulate` flag means "add into the output" instead of overwriting it.
 */
#ifndef TESSERA_KERNELS_H
#define TESSERA_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#define TSR_DECLARE_KERNELS(real, sfx)                                                      \
    /* y = max(x, 0) over n elements. */                                                     \
    void tsr_ref_relu_fwd##sfx(const real *x, real *y, int64_t n);                           \
    /* dx (=|+=) dy * (y > 0), from the forward output y. */                                 \
    void tsr_ref_relu_bwd##sfx(const real *y, const real *dy, real *dx, int64_t n,           \
                               bool accumulate);

TSR_DECLARE_KERNELS(float, _f32)
TSR_DECLARE_KERNELS(double, _f64)

#undef TSR_DECLARE_KERNELS

#endif
