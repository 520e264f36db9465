/* autograd.h — the execution context and the tape.
 *
 * A tsr_ctx carries what one training step needs: the pass arena, the tape,
 * whether gradients are being recorded, which kernels to use (oneDNN or the
 * plain-C references), and oneDNN's engine, stream and primitive cache.
 *
 * The tape works at the granularity of layers and fused ops. An op that runs
 * while recording and has an input that requires a gradient pushes one entry:
 * a backward function and a block of saved context, both in the arena. With
 * recording off (acting, the target network) nothing is pushed and the
 * inference primitives run. tsr_backward walks the entries in reverse.
 *
 * Gradient contract, for op writers: a gradient buffer belongs to one step (an
 * "epoch", advanced by tsr_ctx_begin_step). The first contribution to a
 * tensor's gradient in a step overwrites it; later contributions in the same
 * step add (+=). tsr_grad_acquire
 * says which. Parameter gradients live in the parameter block; activation
 * gradients are allocated in the arena on first contribution. So nothing needs
 * zeroing between steps, and a layer used several times in one step (online
 * net on s and on s', target net on s') accumulates correctly.
 */
#ifndef TESSERA_AUTOGRAD_H
#define TESSERA_AUTOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/arena.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_backend {
    TSR_BACKEND_DNNL = 0,  /* oneDNN primitives where an op has them (float32 only) */
    TSR_BACKEND_REFERENCE, /* the plain-C reference kernels everywhere */
    /* As DNNL, also where oneDNN's implementation is its slow generic "ref"
     * one, which DNNL skips for the plain-C kernel (today: the softmax and
     * log-softmax backward on CPUs without AVX-512). For parity tests and
     * comparisons, not for training. */
    TSR_BACKEND_DNNL_ALL,
} tsr_backend;

typedef struct tsr_ctx tsr_ctx;

typedef struct tsr_ctx_options {
    size_t arena_bytes;  /* initial arena size; 0 picks 16 MiB */
    tsr_backend backend;
} tsr_ctx_options;

tsr_ctx *tsr_ctx_new(const tsr_ctx_options *options);
void tsr_ctx_free(tsr_ctx *ctx);

/* Starts a step: resets the arena and clears the tape. Every tensor handed out
 * since the previous call is invalid afterwards. */
void tsr_ctx_begin_step(tsr_ctx *ctx);
/* Turns recording on or off and returns the previous setting. */
bool tsr_ctx_set_grad(tsr_ctx *ctx, bool enabled);
bool tsr_ctx_grad_enabled(const tsr_ctx *ctx);
void tsr_ctx_set_backend(tsr_ctx *ctx, tsr_backend backend);
tsr_backend tsr_ctx_backend(const tsr_ctx *ctx);
tsr_arena *tsr_ctx_arena(tsr_ctx *ctx);
/* The current gradient epoch (advanced by every tsr_ctx_begin_step). */
uint64_t tsr_ctx_epoch(const tsr_ctx *ctx);
/* Number of tape entries recorded since the step began. */
size_t tsr_ctx_tape_length(const tsr_ctx *ctx);

/* A tensor in the arena (uninitialised), not requiring a gradient. */
tsr_tensor *tsr_ctx_tensor(tsr_ctx *ctx, tsr_dtype dtype, int ndim, const int64_t *shape);

/* Makes a leaf tensor outside a parameter block (a test input, say) require a
 * gradient, forgetting any gradient it had; with `requires_grad` false it
 * stops requiring one. */
void tsr_grad_reset(tsr_tensor *x, bool requires_grad);

/* Backpropagates from `loss` (one element) with d loss = 1. */
void tsr_backward(tsr_ctx *ctx, tsr_tensor *loss);
/* Backpropagates from `output` with a given gradient `doutput` (same shape). */
void tsr_backward_from(tsr_ctx *ctx, tsr_tensor *output, const tsr_tensor *doutput);

/* ---- for op writers ---------------------------------------------------- */

typedef void (*tsr_backward_fn)(tsr_ctx *ctx, void *saved);

/* True if an op with these inputs must record: recording is on and at least
 * one input requires a gradient. NULL inputs are skipped. */
bool tsr_ctx_should_record(const tsr_ctx *ctx, int count, tsr_tensor *const *inputs);
/* Pushes a tape entry for `output` and returns `saved_bytes` of arena memory for
 * the op's saved context. Marks `output` as requiring a gradient. The entry is
 * skipped at backward time when `output` received no gradient. */
void *tsr_tape_push(tsr_ctx *ctx, tsr_tensor *output, tsr_backward_fn fn, size_t saved_bytes);

/* How a backward function intends to write a gradient. */
typedef enum tsr_grad_write {
    TSR_GRAD_WRITE_ALL, /* it writes every element: first writer may overwrite */
    TSR_GRAD_WRITE_SOME /* it writes a part (gather, split): fresh buffers are zeroed */
} tsr_grad_write;

/* The gradient buffer of `x` for this step, or NULL if x does not
 * require a gradient. *accumulate is set to true when the caller must add
 * (+=) into it and false when it may overwrite it. */
tsr_tensor *tsr_grad_acquire(tsr_ctx *ctx, tsr_tensor *x, tsr_grad_write mode, bool *accumulate);
/* The gradient that reached `x` in this step, or NULL if none did. */
tsr_tensor *tsr_grad_get(const tsr_ctx *ctx, const tsr_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
