/* ops_elementwise.c — ReLU and the other elementwise ops on the tape. */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

/* ==== oneDNN eltwise ==================================================== */

/* Cache key of a oneDNN eltwise primitive over n contiguous floats. */
typedef struct eltwise_key {
    int op;         /* 1 = relu forward (inference), 2 = relu backward */
    int64_t n;
} eltwise_key;

static tsr_dnnl_slot *relu_slot(tsr_ctx *ctx, int op, int64_t n)
{
    eltwise_key key;
    memset(&key, 0, sizeof key);
    key.op = op;
    key.n = n;
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;
    dnnl_memory_desc_t md = tsr_dnnl_md(1, (int64_t[]){n}, dnnl_a);
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd;
    dnnl_eltwise_desc_t fwd_desc;
    TSR_DNNL_CHECK(dnnl_eltwise_forward_desc_init(&fwd_desc, dnnl_forward_training,
                                                  dnnl_eltwise_relu_use_dst_for_bwd, &md, 0.f, 0.f));
    if (op == 1) {
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &fwd_desc, attr, ctx->dnnl.engine, NULL));
        dnnl_primitive_attr_destroy(attr);
        return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 2,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_DST});
    }
    dnnl_primitive_desc_t hint;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&hint, &fwd_desc, NULL, ctx->dnnl.engine, NULL));
    dnnl_eltwise_desc_t bwd_desc;
    TSR_DNNL_CHECK(dnnl_eltwise_backward_desc_init(&bwd_desc, dnnl_eltwise_relu_use_dst_for_bwd,
                                                   &md, &md, 0.f, 0.f));
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &bwd_desc, attr, ctx->dnnl.engine, hint));
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                           (int[]){DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC});
}

/* ==== relu ============================================================== */

typedef struct relu_saved {
    tsr_tensor *x, *y;
} relu_saved;

static void relu_backward(tsr_ctx *ctx, void *saved_)
{
    relu_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    int64_t n = tsr_tensor_numel(s->y);
    if (s->y->dtype == TSR_DTYPE_F64) {
        tsr_ref_relu_bwd_f64(tsr_f64(s->y), tsr_f64(dy), tsr_f64(dx), n, accumulate);
    } else if (tsr_use_dnnl(ctx, s->y->dtype) && !accumulate) {
        tsr_dnnl_slot *slot = relu_slot(ctx, 2, n);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){s->y->data, dy->data, dx->data});
    } else {
        tsr_ref_relu_bwd_f32(tsr_f32(s->y), tsr_f32(dy), tsr_f32(dx), n, accumulate);
    }
}

tsr_tensor *tsr_relu(tsr_ctx *ctx, tsr_tensor *x)
{
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "relu of %s",
                   tsr_dtype_name(x->dtype));
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim, x->shape);
    int64_t n = tsr_tensor_numel(x);
    if (x->dtype == TSR_DTYPE_F64) {
        tsr_ref_relu_fwd_f64(tsr_f64(x), tsr_f64(y), n);
    } else if (tsr_use_dnnl(ctx, x->dtype)) {
        tsr_dnnl_execute(&ctx->dnnl, relu_slot(ctx, 1, n), &ctx->arena, (void *[]){x->data, y->data});
    } else {
        tsr_ref_relu_fwd_f32(tsr_f32(x), tsr_f32(y), n);
    }
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        relu_saved *s = tsr_tape_push(ctx, y, relu_backward, sizeof *s);
        s->x = x;
        s->y = y;
    }
    return y;
}
