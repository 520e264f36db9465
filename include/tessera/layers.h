/* layers.h — layers: parameters registered in a network's block, applied by ops.
 *
 * A layer is a small struct of hyperparameters, the indices of its parameters
 * in a tsr_params block, and its oneDNN weight caches. It holds no
 * activations: a forward pass takes the context (arena and tape) and the
 * parameter block, so the same structure runs several times per step, and an
 * online and a target network are two instances built from one description
 * (their blocks have identical layouts, so syncing is tsr_params_copy_values).
 *
 * Every layer has four calls:
 *   _init(layer, params, name, ...)  registers its parameters as "name/weight"
 *                                    etc. (before tsr_params_finalize);
 *   _reset(layer, params, rng)       draws initial values (after finalize);
 *   _forward(layer, ctx, params, x)  returns the output in the pass arena and
 *                                    reports itself to an active summary;
 *   _fini(layer)                     frees its caches.
 * Shapes follow tensor.h: images (N, H, W, C), tokens (N, T, D), features (N, F).
 */
#ifndef TESSERA_LAYERS_H
#define TESSERA_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/autograd.h"
#include "tessera/ops.h"
#include "tessera/params.h"
#include "tessera/rng.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TSR_LAYER_NAME_BYTES = 64 };

/* ---- initialisers -------------------------------------------------------- */

typedef enum tsr_init_kind {
    TSR_INIT_XAVIER_UNIFORM = 0,
    TSR_INIT_LECUN_NORMAL,             /* truncated normal, Flax's default kernel init */
    TSR_INIT_VARIANCE_SCALING_UNIFORM, /* U(-a, a), a = sqrt(3 scale / fan_in) */
    TSR_INIT_ZEROS,
    /* PyTorch's nn.Linear and nn.Conv2d default, kaiming_uniform(a = sqrt(5)):
     * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the layer's bias drawn from the
     * same range (tsr_init_bias) where the other kinds start it at 0. */
    TSR_INIT_TORCH,
} tsr_init_kind;

typedef struct tsr_init_spec {
    tsr_init_kind kind;
    double scale; /* variance scaling only */
} tsr_init_spec;

/* Initialises w by `spec` with its fans from tsr_init_fans (or, for other
 * shapes, the fans given: pass fan_in/fan_out > 0 to override). */
void tsr_init_apply(tsr_tensor *w, tsr_init_spec spec, int64_t fan_in, int64_t fan_out, tsr_rng *rng);
/* A layer's bias b, whose weight w was initialised by `spec`: U(+-1/sqrt(fan_in
 * of w)) for TSR_INIT_TORCH (drawn after the weight, as PyTorch does), else 0. */
void tsr_init_bias(tsr_tensor *b, tsr_init_spec spec, const tsr_tensor *w, tsr_rng *rng);

/* ---- summaries ------------------------------------------------------------ */

/* One row per layer output: what `tessera summary` prints. FLOPs count a
 * multiply-add as two and are for the whole batch the forward ran on. */
typedef struct tsr_summary_row {
    char name[TSR_LAYER_NAME_BYTES];
    int ndim;
    int64_t shape[TSR_MAX_DIMS];
    int64_t params;
    double flops;
} tsr_summary_row;

typedef struct tsr_summary {
    tsr_summary_row *rows;
    int count, capacity;
} tsr_summary;

void tsr_summary_fini(tsr_summary *s);
/* While a summary is set, layer forwards append their rows to it. NULL stops. */
void tsr_ctx_set_summary(tsr_ctx *ctx, tsr_summary *summary);
/* Called by layers: appends a row if a summary is active, else does nothing. */
void tsr_summary_record(tsr_ctx *ctx, const char *name, const tsr_tensor *output, int64_t params,
                        double flops);

/* ---- linear --------------------------------------------------------------- */

typedef struct tsr_linear_layer {
    char name[TSR_LAYER_NAME_BYTES];
    int weight, bias;  /* parameter indices; bias -1 when absent */
    int64_t in, out;
    bool relu;         /* fused max(0, .) */
    tsr_init_spec init; /* of the weight; the bias starts at zero */
    tsr_weight_cache cache;
} tsr_linear_layer;

/* (N, in) -> (N, out): weight (out, in), bias (out). */
void tsr_linear_layer_init(tsr_linear_layer *l, tsr_params *p, const char *name, int64_t in,
                           int64_t out, bool bias, bool relu, tsr_init_spec init);
void tsr_linear_layer_reset(tsr_linear_layer *l, tsr_params *p, tsr_rng *rng);
tsr_tensor *tsr_linear_layer_forward(tsr_linear_layer *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x);
void tsr_linear_layer_fini(tsr_linear_layer *l);

/* ---- conv2d --------------------------------------------------------------- */

typedef struct tsr_conv2d_layer {
    char name[TSR_LAYER_NAME_BYTES];
    int weight, bias;
    int64_t in_channels, out_channels, kernel, stride;
    tsr_padding padding;
    bool relu;
    tsr_init_spec init;
    tsr_weight_cache cache;
} tsr_conv2d_layer;

/* (N, H, W, in) -> (N, Ho, Wo, out): weight (out, in, k, k), bias (out). */
void tsr_conv2d_layer_init(tsr_conv2d_layer *l, tsr_params *p, const char *name,
                           int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride,
                           tsr_padding padding, bool bias, bool relu, tsr_init_spec init);
void tsr_conv2d_layer_reset(tsr_conv2d_layer *l, tsr_params *p, tsr_rng *rng);
tsr_tensor *tsr_conv2d_layer_forward(tsr_conv2d_layer *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x);
void tsr_conv2d_layer_fini(tsr_conv2d_layer *l);

#ifdef __cplusplus
}
#endif

#endif
