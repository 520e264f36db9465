/* autograd.c — the context, the tape and gradient bookkeeping. */
#include <string.h>

#include "internal.h"
#include "tessera/status.h"

tsr_ctx *tsr_ctx_new(const tsr_ctx_options *options)
{
    tsr_ctx_options defaults = {0};
    if (!options) options = &defaults;
    tsr_ctx *ctx = tsr_calloc(1, sizeof *ctx);
    tsr_arena_init(&ctx->arena, options->arena_bytes ? options->arena_bytes : (size_t)16 << 20);
    ctx->backend = options->backend;
    ctx->grad_enabled = true;
    ctx->epoch = 1;
    tsr_dnnl_init(&ctx->dnnl);
    return ctx;
}

void tsr_ctx_free(tsr_ctx *ctx)
{
    if (!ctx) return;
    tsr_dnnl_fini(&ctx->dnnl);
    tsr_arena_fini(&ctx->arena);
    tsr_free(ctx);
}

void tsr_ctx_begin_step(tsr_ctx *ctx)
{
    TSR_ASSERT(!ctx->in_backward);
    tsr_arena_reset(&ctx->arena);
    ctx->tape_tail = NULL;
    ctx->tape_length = 0;
    /* A fresh epoch: gradients of the previous step's tensors are stale. */
    ctx->epoch++;
}

bool tsr_ctx_set_grad(tsr_ctx *ctx, bool enabled)
{
    bool previous = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return previous;
}

bool tsr_ctx_grad_enabled(const tsr_ctx *ctx) { return ctx->grad_enabled; }
void tsr_ctx_set_backend(tsr_ctx *ctx, tsr_backend backend) { ctx->backend = backend; }
tsr_backend tsr_ctx_backend(const tsr_ctx *ctx) { return ctx->backend; }
tsr_arena *tsr_ctx_arena(tsr_ctx *ctx) { return &ctx->arena; }
uint64_t tsr_ctx_epoch(const tsr_ctx *ctx) { return ctx->epoch; }
size_t tsr_ctx_tape_length(const tsr_ctx *ctx) { return ctx->tape_length; }

tsr_tensor *tsr_ctx_tensor(tsr_ctx *ctx, tsr_dtype dtype, int ndim, const int64_t *shape)
{
    return tsr_arena_tensor(&ctx->arena, dtype, ndim, shape);
}

bool tsr_ctx_should_record(const tsr_ctx *ctx, int count, tsr_tensor *const *inputs)
{
    if (!ctx->grad_enabled || ctx->in_backward) return false;
    for (int i = 0; i < count; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

void *tsr_tape_push(tsr_ctx *ctx, tsr_tensor *output, tsr_backward_fn fn, size_t saved_bytes)
{
    TSR_ASSERT(ctx->grad_enabled && !ctx->in_backward);
    tsr_tape_entry *e = tsr_arena_alloc(&ctx->arena, sizeof *e);
    e->prev = ctx->tape_tail;
    e->output = output;
    e->backward = fn;
    e->saved = saved_bytes ? tsr_arena_alloc(&ctx->arena, saved_bytes) : NULL;
    ctx->tape_tail = e;
    ctx->tape_length++;
    output->requires_grad = true;
    output->grad = NULL;
    output->grad_in_arena = false;
    output->grad_epoch = 0;
    return e->saved;
}

tsr_tensor *tsr_grad_acquire(tsr_ctx *ctx, tsr_tensor *x, tsr_grad_write mode, bool *accumulate)
{
    if (!x || !x->requires_grad) {
        *accumulate = false;
        return NULL;
    }
    if (x->grad_epoch == ctx->epoch) {
        *accumulate = true;
        return x->grad;
    }
    if (!x->grad || x->grad_in_arena) {
        /* An activation or a leaf outside the parameter block: its gradient
         * lives in this step's arena (a previous step's buffer is gone). */
        x->grad = tsr_arena_tensor(&ctx->arena, x->dtype, x->ndim, x->shape);
        x->grad_in_arena = true;
    }
    TSR_ASSERT_MSG(tsr_tensor_same_shape(x->grad, x) && x->grad->dtype == x->dtype,
                   "gradient buffer does not match its tensor");
    x->grad_epoch = ctx->epoch;
    if (mode == TSR_GRAD_WRITE_SOME) {
        tsr_tensor_fill(x->grad, 0.0);
        *accumulate = true;
    } else {
        *accumulate = false;
    }
    return x->grad;
}

void tsr_grad_reset(tsr_tensor *x, bool requires_grad)
{
    x->requires_grad = requires_grad;
    x->grad = NULL;
    x->grad_in_arena = false;
    x->grad_epoch = 0;
}

tsr_tensor *tsr_grad_get(const tsr_ctx *ctx, const tsr_tensor *x)
{
    return x->grad_epoch == ctx->epoch ? x->grad : NULL;
}

void tsr_backward_from(tsr_ctx *ctx, tsr_tensor *output, const tsr_tensor *doutput)
{
    TSR_ASSERT_MSG(output->requires_grad, "backward from a tensor that requires no gradient");
    TSR_ASSERT(tsr_tensor_same_shape(output, doutput));
    bool accumulate;
    tsr_tensor *g = tsr_grad_acquire(ctx, output, TSR_GRAD_WRITE_ALL, &accumulate);
    tsr_tensor_copy(g, doutput);
    ctx->in_backward = true;
    for (tsr_tape_entry *e = ctx->tape_tail; e; e = e->prev)
        if (e->output->grad_epoch == ctx->epoch) e->backward(ctx, e->saved);
    ctx->in_backward = false;
    /* The tape is consumed: a later backward in the same step walks only what
     * was recorded after this one (gradients still accumulate). */
    ctx->tape_tail = NULL;
}

void tsr_backward(tsr_ctx *ctx, tsr_tensor *loss)
{
    TSR_ASSERT_MSG(tsr_tensor_numel(loss) == 1, "backward from a loss of %lld elements",
                   (long long)tsr_tensor_numel(loss));
    double one_f64 = 1.0;
    float one_f32 = 1.0f;
    tsr_tensor seed = tsr_tensor_view(loss->dtype == TSR_DTYPE_F64 ? (void *)&one_f64 : (void *)&one_f32,
                                      loss->dtype, loss->ndim, loss->shape);
    tsr_backward_from(ctx, loss, &seed);
}
