/* ops_encoders.h — ops on the tape added for tokenizers and value heads.
 *
 * Same contract as ops.h: the context comes first, the result is a new tensor
 * in the pass arena, one tape entry is pushed when recording and an input
 * requires a gradient; float32 runs oneDNN where it has a primitive, float64
 * always runs the plain-C reference kernel (src/kernels/encoder_kernels.h).
 */
#ifndef TESSERA_OPS_ENCODERS_H
#define TESSERA_OPS_ENCODERS_H

#include "tessera/autograd.h"
#include "tessera/ops.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Average pooling over (kernel x kernel) windows, x (N, H, W, C) ->
 * (N, Ho, Wo, C). Padded positions are excluded from both the sum and the
 * count (oneDNN's pooling_avg_exclude_padding), so a SAME border window
 * averages only its in-image positions. With VALID padding (the patch tokens:
 * kernel = stride = patch size) no window has padding and the definitions
 * coincide with Flax's nn.avg_pool. */
tsr_tensor *tsr_avg_pool2d(tsr_ctx *ctx, tsr_tensor *x, int kernel, int stride, tsr_padding padding);

/* The dueling combination (Wang et al. 2016), per atom:
 *   q[n, a, k] = value[n, k] + advantage[n, a, k] - mean_a' advantage[n, a', k].
 * value (N, K), advantage (N, A, K) -> (N, A, K). A scalar head is K = 1. */
tsr_tensor *tsr_dueling_combine(tsr_ctx *ctx, tsr_tensor *value, tsr_tensor *advantage);

#ifdef __cplusplus
}
#endif

#endif
