/* losses_kernels.h — reference kernels of the value losses (losses_ref.c),
 * declared for both instantiations (float32 and float64, see real.h).
 *
 * Shapes use the project's letters: N samples, K atoms or bins. Supports
 * (atoms, bin centres, bin edges) are always given in double, whatever `real`
 * is: they are built once in double by tsr_support_init. Arithmetic inside a
 * row runs in double and is rounded once on store. Rows are independent and
 * each is reduced by one thread in a fixed order, so results do not depend on
 * the thread count. `accumulate` means "add into the output".
 */
#ifndef TESSERA_KERNELS_LOSSES_H
#define TESSERA_KERNELS_LOSSES_H

#include <stdbool.h>
#include <stdint.h>

#define TSR_DECLARE_LOSS_KERNELS(real, sfx)                                                   \
    /* loss (N) = -sum_k target[n, k] * log_softmax(logits)[n, k]; probs (N, K) gets          \
     * softmax(logits) unless NULL (the backward needs it). */                                \
    void tsr_ref_xent_fwd##sfx(const real *logits, const real *target, real *loss,            \
                               real *probs, int64_t n, int64_t k);                            \
    /* dlogits (=|+=) dloss[n] * (probs * sum_k target[n, k] - target): the exact             \
     * gradient, (softmax - target) * dloss when a target row sums to 1. */                   \
    void tsr_ref_xent_bwd##sfx(const real *probs, const real *target, const real *dloss,      \
                               real *dlogits, int64_t n, int64_t k, bool accumulate);         \
    /* loss (N) = (target - pred)^2 (Dopamine's mse_loss, no 1/2), and                        \
     * dpred (=|+=) 2 (pred - target) dloss. */                                               \
    void tsr_ref_mse_fwd##sfx(const real *pred, const real *target, real *loss, int64_t n);   \
    void tsr_ref_mse_bwd##sfx(const real *pred, const real *target, const real *dloss,        \
                              real *dpred, int64_t n, bool accumulate);                       \
    /* x = |target - pred|: loss = x^2 / 2 when x <= delta, else                              \
     * delta^2 / 2 + delta (x - delta); dpred (=|+=) clip(pred - target, -delta,              \
     * delta) dloss. */                                                                       \
    void tsr_ref_huber_fwd##sfx(const real *pred, const real *target, real *loss, int64_t n,  \
                                double delta);                                                \
    void tsr_ref_huber_bwd##sfx(const real *pred, const real *target, const real *dloss,      \
                                real *dpred, int64_t n, double delta, bool accumulate);       \
    /* y (N) = sum_k softmax(logits)[n, k] * values[k]; probs (N, K) gets the softmax         \
     * unless NULL. */                                                                        \
    void tsr_ref_readout_fwd##sfx(const real *logits, const double *values, real *probs,      \
                                  real *y, int64_t n, int64_t k);                             \
    /* dlogits (=|+=) dy[n] * probs[n, k] * (values[k] - y[n]). */                            \
    void tsr_ref_readout_bwd##sfx(const real *probs, const double *values, const real *y,     \
                                  const real *dy, real *dlogits, int64_t n, int64_t k,        \
                                  bool accumulate);                                           \
    /* C51 projection onto atoms z_i = vmin + i * spacing (K of them): out[n, i] =            \
     * sum_j probs[n, j] * clip(1 - |clip(T_j, vmin, vmax) - z_i| / spacing, 0, 1)            \
     * with T_j = shift[n] + scale[n] * atoms[j]. */                                          \
    void tsr_ref_categorical_project##sfx(const real *probs, const double *shift,             \
                                          const double *scale, const double *atoms,           \
                                          real *out, int64_t n, int64_t k, double vmin,       \
                                          double vmax, double spacing);                       \
    /* Two-hot: the same projection of a unit mass at y[n] (clipped into                      \
     * [vmin, vmax]). */                                                                      \
    void tsr_ref_twohot##sfx(const real *y, real *out, int64_t n, int64_t k, double vmin,     \
                             double vmax, double spacing);                                    \
    /* HL-Gauss: y clipped into [edges[0], edges[K]], then the mass of N(y, sigma^2)          \
     * in each bin [edges[i], edges[i + 1]], renormalised to sum to 1. */                     \
    void tsr_ref_hlgauss##sfx(const real *y, const double *edges, real *out, int64_t n,       \
                              int64_t k, double sigma);

TSR_DECLARE_LOSS_KERNELS(float, _f32)
TSR_DECLARE_LOSS_KERNELS(double, _f64)

#undef TSR_DECLARE_LOSS_KERNELS

#endif
