/* ops_moe.c — the ops the mixture-of-experts layers add to the tape: a bias
 * per expert, row gathers with a weight per row, and the squared coefficient
 * of variation. Both dtypes run the reference kernels (moe_kernels.h says
 * why there is no oneDNN path). */
#include <string.h>

#include "internal.h"
#include "kernels/moe_kernels.h"
#include "tessera/moe.h"
#include "tessera/status.h"

static bool is_float(tsr_dtype dtype) { return dtype == TSR_DTYPE_F32 || dtype == TSR_DTYPE_F64; }

/* ==== bias per expert ===================================================== */

typedef struct batched_bias_saved {
    tsr_tensor *x, *bias, *y;
    int64_t batch, m, p;
    bool relu;
} batched_bias_saved;

static void batched_bias_backward(tsr_ctx *ctx, void *saved_)
{
    batched_bias_saved *s = saved_;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    bool f64 = s->y->dtype == TSR_DTYPE_F64;
    bool accumulate_x, accumulate_b;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate_x);
    tsr_tensor *db = tsr_grad_acquire(ctx, s->bias, TSR_GRAD_WRITE_ALL, &accumulate_b);
    if (!dx && !db) return;
    if (f64)
        tsr_ref_batched_bias_bwd_f64(tsr_f64(s->y), tsr_f64(dy), dx ? tsr_f64(dx) : NULL,
                                     db ? tsr_f64(db) : NULL, s->batch, s->m, s->p, s->relu,
                                     accumulate_x, accumulate_b);
    else
        tsr_ref_batched_bias_bwd_f32(tsr_f32(s->y), tsr_f32(dy), dx ? tsr_f32(dx) : NULL,
                                     db ? tsr_f32(db) : NULL, s->batch, s->m, s->p, s->relu,
                                     accumulate_x, accumulate_b);
}

tsr_tensor *tsr_batched_bias(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *bias, bool relu)
{
    char sx[96], sb[96];
    TSR_ASSERT_MSG(is_float(x->dtype) && x->dtype == bias->dtype, "batched_bias of %s and %s",
                   tsr_dtype_name(x->dtype), tsr_dtype_name(bias->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(x) && tsr_tensor_is_contiguous(bias));
    TSR_ASSERT_MSG(x->ndim == 3 && bias->ndim == 2 && bias->shape[0] == x->shape[0] &&
                       bias->shape[1] == x->shape[2],
                   "batched_bias of x %s and bias %s: expected (B, M, P) and (B, P)",
                   tsr_tensor_shape_str(x, sx, sizeof sx), tsr_tensor_shape_str(bias, sb, sizeof sb));
    int64_t batch = x->shape[0], m = x->shape[1], p = x->shape[2];
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 3, x->shape);
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_batched_bias_fwd_f64(tsr_f64(x), tsr_f64(bias), tsr_f64(y), batch, m, p, relu);
    else
        tsr_ref_batched_bias_fwd_f32(tsr_f32(x), tsr_f32(bias), tsr_f32(y), batch, m, p, relu);
    if (tsr_ctx_should_record(ctx, 2, (tsr_tensor *[]){x, bias})) {
        batched_bias_saved *s = tsr_tape_push(ctx, y, batched_bias_backward, sizeof *s);
        *s = (batched_bias_saved){
            .x = x, .bias = bias, .y = y, .batch = batch, .m = m, .p = p, .relu = relu};
    }
    return y;
}

/* ==== row gathers ========================================================= */

typedef struct gather_rows_saved {
    tsr_tensor *x, *weight, *y;
    int32_t *index; /* a copy in the arena: the caller's index may be reused */
} gather_rows_saved;

static void gather_rows_backward(tsr_ctx *ctx, void *saved_)
{
    gather_rows_saved *s = saved_;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    bool f64 = s->y->dtype == TSR_DTYPE_F64;
    int64_t m = s->y->shape[0], d = s->y->shape[1];
    const int32_t *index = s->index;
    bool accumulate;
    /* Source rows that nothing gathered get no contribution: a fresh
     * buffer is zeroed (contiguous, so a memset), then added into. */
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (dx) {
        if (!accumulate) memset(dx->data, 0, tsr_tensor_nbytes(dx));
        if (f64)
            tsr_ref_gather_rows_bwd_x_f64(tsr_f64(dy), index, s->weight ? tsr_f64(s->weight) : NULL,
                                          tsr_f64(dx), m, d);
        else
            tsr_ref_gather_rows_bwd_x_f32(tsr_f32(dy), index, s->weight ? tsr_f32(s->weight) : NULL,
                                          tsr_f32(dx), m, d);
    }
    tsr_tensor *dw = tsr_grad_acquire(ctx, s->weight, TSR_GRAD_WRITE_ALL, &accumulate);
    if (dw) {
        if (f64)
            tsr_ref_gather_rows_bwd_weight_f64(tsr_f64(dy), index, tsr_f64(s->x), tsr_f64(dw), m,
                                               d, accumulate);
        else
            tsr_ref_gather_rows_bwd_weight_f32(tsr_f32(dy), index, tsr_f32(s->x), tsr_f32(dw), m,
                                               d, accumulate);
    }
}

tsr_tensor *tsr_gather_rows(tsr_ctx *ctx, tsr_tensor *x, const tsr_tensor *index,
                            tsr_tensor *weight)
{
    char sx[96], si[96];
    TSR_ASSERT_MSG(is_float(x->dtype), "gather_rows of %s", tsr_dtype_name(x->dtype));
    TSR_ASSERT_MSG(index->dtype == TSR_DTYPE_I32 && index->ndim == 1, "gather_rows index %s of %s",
                   tsr_tensor_shape_str(index, si, sizeof si), tsr_dtype_name(index->dtype));
    TSR_ASSERT_MSG(x->ndim == 2, "gather_rows of %s: expected (R, D)",
                   tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT(tsr_tensor_is_contiguous(x) && tsr_tensor_is_contiguous(index));
    int64_t m = index->shape[0], rows = x->shape[0], d = x->shape[1];
    if (weight) {
        TSR_ASSERT_MSG(weight->dtype == x->dtype && weight->ndim == 1 && weight->shape[0] == m,
                       "gather_rows weight for %lld rows", (long long)m);
        TSR_ASSERT(tsr_tensor_is_contiguous(weight));
    }
    const int32_t *idx = tsr_i32(index);
    for (int64_t i = 0; i < m; i++)
        TSR_ASSERT_MSG(idx[i] < rows, "gather_rows index[%lld] = %d of %lld rows", (long long)i,
                       idx[i], (long long)rows);
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 2, (int64_t[]){m, d});
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_gather_rows_fwd_f64(tsr_f64(x), idx, weight ? tsr_f64(weight) : NULL, tsr_f64(y), m,
                                    d);
    else
        tsr_ref_gather_rows_fwd_f32(tsr_f32(x), idx, weight ? tsr_f32(weight) : NULL, tsr_f32(y), m,
                                    d);
    if (tsr_ctx_should_record(ctx, 2, (tsr_tensor *[]){x, weight})) {
        gather_rows_saved *s = tsr_tape_push(ctx, y, gather_rows_backward, sizeof *s);
        *s = (gather_rows_saved){.x = x, .weight = weight, .y = y};
        s->index = tsr_arena_alloc(&ctx->arena, (size_t)(m ? m : 1) * sizeof *s->index);
        if (m) memcpy(s->index, idx, (size_t)m * sizeof *idx);
    }
    return y;
}

/* ==== squared coefficient of variation ==================================== */

typedef struct cv_squared_saved {
    tsr_tensor *x, *y;
} cv_squared_saved;

static void cv_squared_backward(tsr_ctx *ctx, void *saved_)
{
    cv_squared_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    int64_t rows = s->x->shape[0], k = s->x->shape[1];
    if (s->x->dtype == TSR_DTYPE_F64)
        tsr_ref_cv_squared_bwd_f64(tsr_f64(s->x), tsr_f64(dy), tsr_f64(dx), rows, k, accumulate);
    else
        tsr_ref_cv_squared_bwd_f32(tsr_f32(s->x), tsr_f32(dy), tsr_f32(dx), rows, k, accumulate);
}

tsr_tensor *tsr_cv_squared(tsr_ctx *ctx, tsr_tensor *x)
{
    char sx[96];
    TSR_ASSERT_MSG(is_float(x->dtype), "cv_squared of %s", tsr_dtype_name(x->dtype));
    TSR_ASSERT_MSG(x->ndim == 2 && x->shape[1] > 0, "cv_squared of %s: expected (R, K), K > 0",
                   tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    int64_t rows = x->shape[0], k = x->shape[1];
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 1, (int64_t[]){rows});
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_cv_squared_fwd_f64(tsr_f64(x), tsr_f64(y), rows, k);
    else
        tsr_ref_cv_squared_fwd_f32(tsr_f32(x), tsr_f32(y), rows, k);
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        cv_squared_saved *s = tsr_tape_push(ctx, y, cv_squared_backward, sizeof *s);
        *s = (cv_squared_saved){.x = x, .y = y};
    }
    return y;
}
