/* diagnostics.h — network health statistics, cheap enough to log every update.
 *
 *  - Dormant neurons (ReDo, Sokar et al. 2023): neuron i of a layer is
 *    tau-dormant on a batch when s_i / mean_j s_j <= tau, where s_i is the mean
 *    |activation| of neuron i over the batch and the mean runs over the layer's
 *    neurons. tau = 0 (the moes agents' threshold) counts neurons that are
 *    exactly zero on the whole batch.
 *  - Feature effective rank srank_delta (Kumar et al. 2021) of a feature matrix
 *    (N, F): the smallest k whose top-k singular values sum to at least
 *    (1 - delta) of the sum of all of them; delta = 0.01 by default. Singular
 *    values come from LAPACK (dgesdd through LAPACKE).
 *  - L2 norms (and mean absolute values) of parameters and their gradients,
 *    per parameter, per layer (the name up to its last '/') and per prefix.
 *
 * Inputs are float32 or float64 tensors; every sum is taken in double in a
 * fixed order, so the numbers do not depend on the thread count.
 */
#ifndef TESSERA_DIAGNOSTICS_H
#define TESSERA_DIAGNOSTICS_H

#include <stdint.h>

#include "tessera/autograd.h"
#include "tessera/params.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dormant neurons ------------------------------------------------------ */

typedef struct tsr_dormant_stats {
    int64_t dormant;
    int64_t neurons;
} tsr_dormant_stats;

static inline double tsr_dormant_fraction(tsr_dormant_stats s)
{
    return s.neurons > 0 ? (double)s.dormant / (double)s.neurons : 0.0;
}

/* Adds b's counts into a (a network total over its layers). */
static inline void tsr_dormant_stats_add(tsr_dormant_stats *a, tsr_dormant_stats b)
{
    a->dormant += b.dormant;
    a->neurons += b.neurons;
}

/* Counts the tau-dormant neurons of `activations`, with F doubles of
 * scratch from ctx's arena:
 *   (M, F)     one layer of F neurons seen on M samples;
 *   (L, M, F)  L layers of F neurons each (the experts of a MoE, whose hidden
 *              activations come as (E, M, H)), each normalised by its own mean.
 * A convolution's output (N, H, W, C) is one layer of C neurons: pass the
 * view tsr_tensor_reshape(x, 2, (N H W, C)). A layer whose activations are all
 * zero has every neuron dormant. per_layer (L entries, or NULL) receives each
 * layer's counts, *total the sum. Returns TSR_STATUS_INVALID_ARGUMENT when tau
 * is negative or not finite, or when a layer holds a NaN or infinite
 * activation (its counts would be meaningless). */
tsr_status tsr_dormant_neurons(tsr_ctx *ctx, const tsr_tensor *activations, double tau,
                               tsr_dormant_stats *per_layer, tsr_dormant_stats *total,
                               tsr_error *err);

/* ---- feature rank --------------------------------------------------------- */

/* srank_delta of features (N, F) (rows are samples). The workspace comes from
 * ctx's arena (released at the next tsr_ctx_begin_step; after the first call
 * it adds nothing to the arena's high-water mark). singular_values, when not
 * NULL, receives the min(N, F) singular values in descending order. A zero
 * matrix has srank 0. Returns TSR_STATUS_INVALID_ARGUMENT when delta is not
 * in [0, 1) or the features are not finite (a diverged network), and
 * TSR_STATUS_BACKEND when LAPACK fails to converge. */
tsr_status tsr_feature_srank(tsr_ctx *ctx, const tsr_tensor *features, double delta,
                             int64_t *srank, double *singular_values, tsr_error *err);

/* ---- parameter and gradient norms ---------------------------------------- */

typedef struct tsr_param_norms {
    char name[TSR_PARAM_NAME_BYTES]; /* parameter name, layer name or prefix */
    int64_t numel;
    double value_norm, grad_norm;         /* L2 */
    double value_mean_abs, grad_mean_abs; /* mean |.| (the moes agents log the router's) */
} tsr_param_norms;

/* One entry per parameter, in registration order: per_param needs p->count
 * entries. Gradients are read from the gradient block as they are: call after
 * tsr_params_settle_grads for this step's values. */
void tsr_params_norms(const tsr_params *p, tsr_param_norms *per_param);
/* Parameters grouped by layer, the name up to its last '/'
 * ("encoder/conv1/weight" -> "encoder/conv1"; a name without '/' is its own
 * layer), in order of first appearance; per_layer needs p->count entries.
 * Returns the number of layers written. */
int tsr_params_layer_norms(const tsr_params *p, tsr_param_norms *per_layer);
/* Every parameter whose name is `prefix` or starts with `prefix` followed by
 * '/' ("moe/experts" covers "moe/experts/hidden/weight" but not
 * "moe/experts2/..."); "" covers all of them. */
tsr_param_norms tsr_params_prefix_norms(const tsr_params *p, const char *prefix);

#ifdef __cplusplus
}
#endif

#endif
