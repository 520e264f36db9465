/* encoder_kernels.h — reference kernels of the ops in ops_encoders.h.
 *
 * Written once against `real` (real.h) and compiled as name_f32 and name_f64,
 * like the kernels of kernels.h (kept in their own header so that file stays
 * untouched). Contiguous data; `accumulate` adds into the output instead of
 * overwriting it. Every sum runs in a fixed order, in double.
 */
#ifndef TESSERA_ENCODER_KERNELS_H
#define TESSERA_ENCODER_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define TSR_DECLARE_ENCODER_KERNELS(real, sfx)                                               \
    /* ---- avgpool_ref.c: x (N, H, W, C) -> y (N, Ho, Wo, C), O = C ---- */                 \
    /* Mean over each window's in-image positions (padding excluded from the count). */     \
    void tsr_ref_avg_pool2d_fwd##sfx(const tsr_conv_geometry *g, const real *x, real *y);    \
    /* dx (=|+=) each dy spread evenly over its window's in-image positions. */              \
    void tsr_ref_avg_pool2d_bwd##sfx(const tsr_conv_geometry *g, const real *dy, real *dx,   \
                                     bool accumulate);                                       \
    /* ---- dueling_ref.c: value (N, K), advantage and q (N, A, K) ---- */                   \
    /* q = value + advantage - mean over A of advantage. */                                  \
    void tsr_ref_dueling_fwd##sfx(const real *value, const real *advantage, real *q,         \
                                  int64_t n, int64_t a, int64_t k);                          \
    /* dvalue (N, K) (=|+=) sum over A of dq; dadvantage (=|+=) dq - mean over A of          \
     * dq. Either output may be NULL (skipped), each with its own flag. */                   \
    void tsr_ref_dueling_bwd##sfx(const real *dq, real *dvalue, real *dadvantage, int64_t n, \
                                  int64_t a, int64_t k, bool accumulate_value,               \
                                  bool accumulate_advantage);

TSR_DECLARE_ENCODER_KERNELS(float, _f32)
TSR_DECLARE_ENCODER_KERNELS(double, _f64)

#undef TSR_DECLARE_ENCODER_KERNELS

#endif
