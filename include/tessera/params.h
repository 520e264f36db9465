/* params.h — a model's parameters in one contiguous block.
 *
 * A tsr_params holds every parameter tensor of one network, their gradients
 * and (optionally) pruning masks, each kind in one contiguous float block with
 * the same offsets, so copying an online network into its target is a single
 * memcpy and an optimizer walks three flat arrays. Tensors are registered by
 * name during construction, then tsr_params_finalize allocates the blocks;
 * afterwards the tensors never move.
 *
 * Parameter tensors require gradients; their `grad` views point into the
 * gradient block. Gradients follow the tape's epoch rule (autograd.h): a
 * parameter whose grad_epoch is not the current step's received no gradient
 * this step, and tsr_params_settle_grads zeroes exactly those before an
 * optimizer reads the block.
 *
 * `version` counts changes to the values (optimizer steps, copies, loads);
 * layers compare it to refresh their cached oneDNN weight layouts.
 */
#ifndef TESSERA_PARAMS_H
#define TESSERA_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/rng.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TSR_PARAM_NAME_BYTES = 96 };

typedef enum tsr_param_flags {
    TSR_PARAM_PRUNABLE = 1 << 0, /* eligible for magnitude pruning */
    TSR_PARAM_DECAY = 1 << 1,    /* receives decoupled weight decay */
} tsr_param_flags;

typedef struct tsr_param {
    char name[TSR_PARAM_NAME_BYTES]; /* "encoder/conv1/weight" */
    tsr_tensor value;                /* view into the value block */
    tsr_tensor grad;                 /* view into the gradient block */
    size_t offset;                   /* in floats, in every block */
    unsigned flags;
} tsr_param;

typedef struct tsr_params {
    tsr_param *items;
    int count, capacity;
    tsr_dtype dtype;      /* float32; float64 for gradient checks of layers */
    void *values, *grads; /* blocks of `dtype` */
    size_t numel; /* elements in each block, including alignment padding */
    uint64_t version;
    bool finalized;
} tsr_params;

/* An empty float32 block. */
void tsr_params_init(tsr_params *p);
/* An empty block of float32 or float64 (layers' gradient checks in double;
 * optimizers take float32 blocks only). */
void tsr_params_init_dtype(tsr_params *p, tsr_dtype dtype);
void tsr_params_fini(tsr_params *p);
/* Registers a parameter of the block's dtype; returns its index (a stable handle). Names
 * must be unique. Only before finalize. */
int tsr_params_add(tsr_params *p, const char *name, int ndim, const int64_t *shape, unsigned flags);
/* Allocates the zeroed blocks and points every tensor into them. */
void tsr_params_finalize(tsr_params *p);
/* The value tensor of parameter `index` (after finalize). */
tsr_tensor *tsr_params_tensor(tsr_params *p, int index);
/* Index of the parameter called `name`, or -1. */
int tsr_params_find(const tsr_params *p, const char *name);
/* Number of parameter elements (without padding). */
int64_t tsr_params_count(const tsr_params *p);
/* Makes `dst` a copy of `src`'s layout (names, shapes, flags), finalized. */
void tsr_params_init_like(tsr_params *dst, const tsr_params *src);
/* dst.values = src.values in one memcpy; layouts must match. */
void tsr_params_copy_values(tsr_params *dst, const tsr_params *src);
/* Marks every value as changed (after writing p->values directly). */
void tsr_params_bump_version(tsr_params *p);
/* Zeroes the gradients of parameters that received none in step `epoch`, and
 * marks every gradient as belonging to it. */
void tsr_params_settle_grads(tsr_params *p, uint64_t epoch);
/* Global L2 norm of all gradients (deterministic order). */
double tsr_params_grad_norm(const tsr_params *p);
/* Scales all gradients so that their global norm is at most max_norm; returns
 * the norm before clipping. Call after settle. */
double tsr_params_clip_grad_norm(tsr_params *p, double max_norm);

/* ---- initialisers (fans follow the plain layouts: OIHW, out x in) ---- */

/* fan_in and fan_out of a weight: (O, I, kH, kW) -> I*kH*kW, O*kH*kW;
 * (out, in) -> in, out. */
void tsr_init_fans(const tsr_tensor *w, int64_t *fan_in, int64_t *fan_out);
/* U(-a, a) with a = sqrt(6 / (fan_in + fan_out)). */
void tsr_init_xavier_uniform(tsr_tensor *w, int64_t fan_in, int64_t fan_out, tsr_rng *rng);
/* Truncated normal at two standard deviations, std = sqrt(1 / fan_in) after
 * correcting for the truncation (Flax's lecun_normal). */
void tsr_init_lecun_normal(tsr_tensor *w, int64_t fan_in, tsr_rng *rng);
/* U(-a, a) with a = sqrt(3 * scale / fan_in) (variance_scaling, fan_in, uniform). */
void tsr_init_variance_scaling_uniform(tsr_tensor *w, double scale, int64_t fan_in, tsr_rng *rng);
void tsr_init_zeros(tsr_tensor *w);

static inline float *tsr_params_values_f32(const tsr_params *p) { return (float *)p->values; }
static inline float *tsr_params_grads_f32(const tsr_params *p) { return (float *)p->grads; }

#ifdef __cplusplus
}
#endif

#endif
