/* ops.h — the differentiable ops on the tape.
 *
 * Every op takes the context first and returns a new tensor in the pass arena.
 * When the context is recording and an input requires a gradient, the op
 * pushes one tape entry (autograd.h). float32 tensors run the op's oneDNN
 * path where it has one (unless the context selects the reference backend);
 * float64 tensors always run the plain-C reference kernel, which is the same
 * source compiled for double (src/kernels), so the finite-difference gradient
 * checks in double precision check the code that runs.
 *
 * Inputs must be contiguous unless an op says otherwise; shape mismatches are
 * programming errors and abort with both shapes. Layout: activations are
 * channels-last (N, H, W, C); conv weights (O, I, kH, kW); linear weights
 * (out, in).
 */
#ifndef TESSERA_OPS_H
#define TESSERA_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/autograd.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cached oneDNN weight layouts ------------------------------------ */

/* A layer-owned copy of a weight in the layout oneDNN prefers. The op refreshes
 * it when the source tensor's data pointer, version or the wanted layout
 * changes (linear: only from a version's second use on; see ops_dense.c).
 * Zero-initialise; release with tsr_weight_cache_fini. Passing NULL where an
 * op takes a cache runs on the plain weights or reorders into the arena. */
typedef struct tsr_weight_cache {
    void *data;
    size_t bytes;
    const void *source;  /* the weights `data` holds, at `version` */
    uint64_t version;
    uint64_t layout_hash;
    const void *seen_source; /* weights last used uncached, at seen_version */
    uint64_t seen_version;
} tsr_weight_cache;

void tsr_weight_cache_fini(tsr_weight_cache *cache);
/* Whether `w`'s current version was used through `cache` before (so its next
 * use takes the cached layout), and setting that: what a checkpoint keeps, so
 * that a resumed run picks the same primitive as the uninterrupted one. */
bool tsr_weight_cache_version_used(const tsr_weight_cache *cache, const tsr_tensor *w);
void tsr_weight_cache_mark_version_used(tsr_weight_cache *cache, const tsr_tensor *w);

/* ---- convolution and pooling ------------------------------------------ */

typedef enum tsr_padding {
    TSR_PADDING_SAME = 0, /* output = ceil(input / stride); TF/Flax placement */
    TSR_PADDING_VALID,    /* no padding */
} tsr_padding;

/* Output size and leading padding of one spatial dimension. SAME pads
 * total = max((out - 1) * stride + kernel - in, 0), with total / 2 before. */
void tsr_conv_output_size(int64_t in, int64_t kernel, int64_t stride, tsr_padding padding,
                          int64_t *out, int64_t *pad_before);

/* x (N, H, W, C), w (O, C, kH, kW), b (O) or NULL -> (N, Ho, Wo, O).
 * relu applies max(0, .) to the result (a oneDNN post-op). */
tsr_tensor *tsr_conv2d(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, int stride,
                       tsr_padding padding, bool relu, tsr_weight_cache *cache);

/* Max pooling over (kernel x kernel) windows, x (N, H, W, C) -> (N, Ho, Wo, C).
 * SAME padding never selects a padded position. */
tsr_tensor *tsr_max_pool2d(tsr_ctx *ctx, tsr_tensor *x, int kernel, int stride, tsr_padding padding);

/* ---- dense algebra ------------------------------------------------------ */

/* x (N, in), w (out, in), b (out) or NULL -> (N, out); relu as in conv2d. */
tsr_tensor *tsr_linear(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, bool relu,
                       tsr_weight_cache *cache);

/* Batched matrix product: a (B, M, K) (or (B, K, M) with transpose_a),
 * b (B, K, P) (or (B, P, K) with transpose_b) -> (B, M, P). A batch size of 1
 * in a or b broadcasts over the other's batch. */
tsr_tensor *tsr_matmul(tsr_ctx *ctx, tsr_tensor *a, tsr_tensor *b, bool transpose_a,
                       bool transpose_b);

/* ---- normalisation ------------------------------------------------------ */

/* Softmax and log-softmax over `axis` (negative counts from the end). */
tsr_tensor *tsr_softmax(tsr_ctx *ctx, tsr_tensor *x, int axis);
tsr_tensor *tsr_log_softmax(tsr_ctx *ctx, tsr_tensor *x, int axis);
/* Layer norm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta,
 * gamma and beta of the last axis' size (either may be NULL: 1 and 0). */
tsr_tensor *tsr_layer_norm(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *gamma, tsr_tensor *beta,
                           double eps);
/* x / (||x||_2 + eps) over `axis`. */
tsr_tensor *tsr_l2_normalize(tsr_ctx *ctx, tsr_tensor *x, int axis, double eps);

/* ---- elementwise -------------------------------------------------------- */

tsr_tensor *tsr_relu(tsr_ctx *ctx, tsr_tensor *x);
/* a + b and a * b. b has a's shape, or is broadcast along a's leading
 * dimensions when its shape equals a's trailing dimensions (a bias). */
tsr_tensor *tsr_add(tsr_ctx *ctx, tsr_tensor *a, tsr_tensor *b);
tsr_tensor *tsr_sub(tsr_ctx *ctx, tsr_tensor *a, tsr_tensor *b);
tsr_tensor *tsr_mul(tsr_ctx *ctx, tsr_tensor *a, tsr_tensor *b);
/* alpha * x + beta. */
tsr_tensor *tsr_scale(tsr_ctx *ctx, tsr_tensor *x, double alpha, double beta);
/* uint8 -> float32 times `scale` (1/255 for pixels). Not differentiable. */
tsr_tensor *tsr_u8_to_f32(tsr_ctx *ctx, const tsr_tensor *x, float scale);

/* ---- shapes ------------------------------------------------------------- */

/* Same data, new shape (x contiguous; one -1 allowed); flatten is
 * reshape to (N, -1). */
tsr_tensor *tsr_reshape(tsr_ctx *ctx, tsr_tensor *x, int ndim, const int64_t *shape);
tsr_tensor *tsr_flatten(tsr_ctx *ctx, tsr_tensor *x);
/* A contiguous copy with dimensions reordered: result dim i = x dim order[i].
 * (N, H*W, C) -> (N, C, H*W) is the per-feature-map token transpose. */
tsr_tensor *tsr_permute(tsr_ctx *ctx, tsr_tensor *x, const int *order);
/* Concatenation along `axis`, and its inverse (outputs[i] gets sizes[i]). */
tsr_tensor *tsr_concat(tsr_ctx *ctx, tsr_tensor *const *inputs, int count, int axis);
void tsr_split(tsr_ctx *ctx, tsr_tensor *x, int axis, const int64_t *sizes, int count,
               tsr_tensor **outputs);

/* ---- reductions and indexing ------------------------------------------- */

/* Sum or mean over `axis`; keepdim keeps it with size 1. */
tsr_tensor *tsr_sum(tsr_ctx *ctx, tsr_tensor *x, int axis, bool keepdim);
tsr_tensor *tsr_mean(tsr_ctx *ctx, tsr_tensor *x, int axis, bool keepdim);
/* Sum or mean of all elements -> a tensor of shape (1). */
tsr_tensor *tsr_sum_all(tsr_ctx *ctx, tsr_tensor *x);
tsr_tensor *tsr_mean_all(tsr_ctx *ctx, tsr_tensor *x);
/* x (N, A, ...) and index (N) int32 -> (N, ...): out[n] = x[n, index[n]]
 * (Q-values of the actions taken). */
tsr_tensor *tsr_gather_actions(tsr_ctx *ctx, tsr_tensor *x, const tsr_tensor *index);

#ifdef __cplusplus
}
#endif

#endif
