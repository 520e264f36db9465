/* ops_reduce.c — sums, means and the action gather on the tape.
 *
 * Reductions always run the reference kernels, float32 included: their
 * summation order is fixed by the shape (kernels.h), so a run gives the same
 * losses and gradients for any thread count, which oneDNN's reduction does
 * not promise. */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

static void check_float(const tsr_tensor *x, const char *op)
{
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "%s of %s", op,
                   tsr_dtype_name(x->dtype));
    TSR_ASSERT_MSG(tsr_tensor_is_contiguous(x), "%s of a strided tensor", op);
}

/* ==== sum and mean over one axis ========================================== */

typedef struct sum_saved {
    tsr_tensor *x, *y;
    int64_t outer, len, inner; /* x as (outer, len, inner), y as (outer, inner) */
    double scale;              /* 1 (sum) or 1 / len (mean) */
} sum_saved;

static void sum_backward(tsr_ctx *ctx, void *saved_)
{
    sum_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    if (s->x->dtype == TSR_DTYPE_F64)
        tsr_ref_sum_axis_bwd_f64(tsr_f64(dy), tsr_f64(dx), s->outer, s->len, s->inner, s->scale,
                                 accumulate);
    else
        tsr_ref_sum_axis_bwd_f32(tsr_f32(dy), tsr_f32(dx), s->outer, s->len, s->inner,
                                 (float)s->scale, accumulate);
}

static tsr_tensor *sum_axis(tsr_ctx *ctx, tsr_tensor *x, int axis, bool keepdim, bool mean)
{
    const char *op = mean ? "mean" : "sum";
    check_float(x, op);
    int a = axis < 0 ? axis + x->ndim : axis;
    TSR_ASSERT_MSG(a >= 0 && a < x->ndim, "%s: axis %d of a %d-dimensional tensor", op, axis,
                   x->ndim);
    int64_t outer = 1, inner = 1, len = x->shape[a];
    for (int d = 0; d < a; d++) outer *= x->shape[d];
    for (int d = a + 1; d < x->ndim; d++) inner *= x->shape[d];
    TSR_ASSERT_MSG(!mean || len > 0, "mean over an empty axis %d", a);
    int64_t shape[TSR_MAX_DIMS];
    int ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != a) shape[ndim++] = x->shape[d];
        else if (keepdim) shape[ndim++] = 1;
    }
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, ndim, shape);
    double scale = mean ? 1.0 / (double)len : 1.0;
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_sum_axis_f64(tsr_f64(x), tsr_f64(y), outer, len, inner, scale);
    else
        tsr_ref_sum_axis_f32(tsr_f32(x), tsr_f32(y), outer, len, inner, (float)scale);
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        sum_saved *s = tsr_tape_push(ctx, y, sum_backward, sizeof *s);
        *s = (sum_saved){.x = x, .y = y, .outer = outer, .len = len, .inner = inner,
                         .scale = scale};
    }
    return y;
}

tsr_tensor *tsr_sum(tsr_ctx *ctx, tsr_tensor *x, int axis, bool keepdim)
{
    return sum_axis(ctx, x, axis, keepdim, false);
}

tsr_tensor *tsr_mean(tsr_ctx *ctx, tsr_tensor *x, int axis, bool keepdim)
{
    return sum_axis(ctx, x, axis, keepdim, true);
}

/* ==== sum and mean of everything ========================================== */

static tsr_tensor *sum_all(tsr_ctx *ctx, tsr_tensor *x, bool mean)
{
    const char *op = mean ? "mean_all" : "sum_all";
    check_float(x, op);
    int64_t n = tsr_tensor_numel(x);
    TSR_ASSERT_MSG(!mean || n > 0, "mean_all of an empty tensor");
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 1, TSR_SHAPE(1));
    double scale = mean ? 1.0 / (double)n : 1.0;
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_sum_all_f64(tsr_f64(x), n, scale, tsr_f64(y));
    else
        tsr_ref_sum_all_f32(tsr_f32(x), n, (float)scale, tsr_f32(y));
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        /* The backward of a full reduction is the axis one with outer = inner = 1. */
        sum_saved *s = tsr_tape_push(ctx, y, sum_backward, sizeof *s);
        *s = (sum_saved){.x = x, .y = y, .outer = 1, .len = n, .inner = 1, .scale = scale};
    }
    return y;
}

tsr_tensor *tsr_sum_all(tsr_ctx *ctx, tsr_tensor *x) { return sum_all(ctx, x, false); }
tsr_tensor *tsr_mean_all(tsr_ctx *ctx, tsr_tensor *x) { return sum_all(ctx, x, true); }

/* ==== gather_actions ====================================================== */

typedef struct gather_saved {
    tsr_tensor *x, *y;
    int32_t *index; /* a copy in the arena: the caller may reuse its buffer */
    int64_t N, A, rest;
} gather_saved;

/* Scatters dy back to the gathered positions; the rest of dx is zero. */
static void gather_backward(tsr_ctx *ctx, void *saved_)
{
    gather_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_SOME, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    if (s->x->dtype == TSR_DTYPE_F64)
        tsr_ref_gather_actions_bwd_f64(tsr_f64(dy), s->index, tsr_f64(dx), s->N, s->A, s->rest);
    else
        tsr_ref_gather_actions_bwd_f32(tsr_f32(dy), s->index, tsr_f32(dx), s->N, s->A, s->rest);
}

tsr_tensor *tsr_gather_actions(tsr_ctx *ctx, tsr_tensor *x, const tsr_tensor *index)
{
    check_float(x, "gather_actions");
    char sx[96], si[96];
    TSR_ASSERT_MSG(x->ndim >= 2 && index->dtype == TSR_DTYPE_I32 && index->ndim == 1 &&
                       index->shape[0] == x->shape[0] && tsr_tensor_is_contiguous(index),
                   "gather_actions of x %s by %s index %s: expected x (N, A, ...) and int32 (N)",
                   tsr_tensor_shape_str(x, sx, sizeof sx), tsr_dtype_name(index->dtype),
                   tsr_tensor_shape_str(index, si, sizeof si));
    int64_t N = x->shape[0], A = x->shape[1];
    int64_t rest = 1;
    int64_t shape[TSR_MAX_DIMS];
    shape[0] = N;
    for (int d = 2; d < x->ndim; d++) {
        rest *= x->shape[d];
        shape[d - 1] = x->shape[d];
    }
    const int32_t *idx = tsr_i32(index);
    for (int64_t n = 0; n < N; n++)
        TSR_ASSERT_MSG(idx[n] >= 0 && idx[n] < A,
                       "gather_actions: index[%lld] = %d outside [0, %lld) (A = %lld)",
                       (long long)n, (int)idx[n], (long long)A, (long long)A);
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim - 1, shape);
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_gather_actions_fwd_f64(tsr_f64(x), idx, tsr_f64(y), N, A, rest);
    else
        tsr_ref_gather_actions_fwd_f32(tsr_f32(x), idx, tsr_f32(y), N, A, rest);
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        gather_saved *s = tsr_tape_push(ctx, y, gather_backward, sizeof *s);
        *s = (gather_saved){.x = x, .y = y, .N = N, .A = A, .rest = rest};
        s->index = tsr_arena_alloc(&ctx->arena, (size_t)(N ? N : 1) * sizeof *s->index);
        memcpy(s->index, idx, (size_t)N * sizeof *s->index);
    }
    return y;
}
