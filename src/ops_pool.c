/* ops_pool.c — max pooling on the tape.
 *
 * oneDNN's pooling_max runs float32 (channels-last); its training forward
 * writes a workspace (carved from the arena, saved on the tape) that the
 * backward primitive uses to route gradients. The reference kernel saves
 * argmax positions instead. Neither ever selects a padded position: oneDNN
 * excludes padding from max windows, the reference only visits in-image
 * positions. */
#include <string.h>

#include "internal.h"
#include "pool_window.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

/* Cache-key tags; distinctive values keep these keys apart from other ops'. */
enum {
    POOL_FWD_TRAINING = 0x504f4f01,
    POOL_FWD_INFERENCE,
    POOL_BWD,
};

typedef tsr_pool_key pool_key;

static dnnl_primitive_desc_t pool_fwd_pd(tsr_ctx *ctx, const pool_key *k, dnnl_prop_kind_t prop,
                                         const_dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t src = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->h, k->w}, dnnl_nhwc);
    dnnl_memory_desc_t dst = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->out_h, k->out_w}, dnnl_nhwc);
    dnnl_dims_t strides = {k->stride, k->stride}, kernel = {k->kernel, k->kernel};
    dnnl_dims_t pad_l = {k->pad_top, k->pad_left}, pad_r = {k->pad_bottom, k->pad_right};
    dnnl_pooling_desc_t desc;
    TSR_DNNL_CHECK(dnnl_pooling_forward_desc_init(&desc, prop, dnnl_pooling_max, &src, &dst, strides,
                                                  kernel, pad_l, pad_r));
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    return pd;
}

static tsr_dnnl_slot *pool_slot(tsr_ctx *ctx, const pool_key *k)
{
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, k, sizeof *k);
    if (slot) return slot;
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    if (k->op == POOL_FWD_INFERENCE) {
        dnnl_primitive_desc_t pd = pool_fwd_pd(ctx, k, dnnl_forward_inference, attr);
        slot = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 2, (int[]){DNNL_ARG_SRC, DNNL_ARG_DST});
    } else if (k->op == POOL_FWD_TRAINING) {
        dnnl_primitive_desc_t pd = pool_fwd_pd(ctx, k, dnnl_forward_training, attr);
        slot = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 3,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WORKSPACE});
    } else {
        TSR_ASSERT(k->op == POOL_BWD);
        dnnl_primitive_desc_t hint = pool_fwd_pd(ctx, k, dnnl_forward_training, NULL);
        dnnl_memory_desc_t diff_src = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->h, k->w}, dnnl_nhwc);
        dnnl_memory_desc_t diff_dst =
            tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->out_h, k->out_w}, dnnl_nhwc);
        dnnl_dims_t strides = {k->stride, k->stride}, kernel = {k->kernel, k->kernel};
        dnnl_dims_t pad_l = {k->pad_top, k->pad_left}, pad_r = {k->pad_bottom, k->pad_right};
        dnnl_pooling_desc_t desc;
        TSR_DNNL_CHECK(dnnl_pooling_backward_desc_init(&desc, dnnl_pooling_max, &diff_src, &diff_dst,
                                                       strides, kernel, pad_l, pad_r));
        dnnl_primitive_desc_t pd;
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, hint));
        dnnl_primitive_desc_destroy(hint);
        slot = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 3,
                               (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_WORKSPACE, DNNL_ARG_DIFF_SRC});
    }
    dnnl_primitive_attr_destroy(attr);
    return slot;
}

typedef struct pool_saved {
    tsr_tensor *x, *y;
    pool_key key;      /* op field unset */
    tsr_conv_geometry geometry;
    void *workspace;   /* oneDNN path: the forward's workspace */
    int32_t *argmax;   /* reference path: (N, Ho, Wo, C) positions */
} pool_saved;

static void pool_backward(tsr_ctx *ctx, void *saved)
{
    pool_saved *s = saved;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    if (s->workspace) {
        pool_key key = s->key;
        key.op = POOL_BWD;
        tsr_dnnl_slot *slot = pool_slot(ctx, &key);
        float *target = accumulate ? tsr_arena_alloc(&ctx->arena, tsr_tensor_nbytes(dx)) : tsr_f32(dx);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){dy->data, s->workspace, target});
        if (accumulate) {
            float *out = tsr_f32(dx);
            int64_t n = tsr_tensor_numel(dx);
            for (int64_t i = 0; i < n; i++) out[i] += target[i];
        }
    } else if (dx->dtype == TSR_DTYPE_F64) {
        tsr_ref_max_pool2d_bwd_f64(&s->geometry, s->argmax, tsr_f64(dy), tsr_f64(dx), accumulate);
    } else {
        tsr_ref_max_pool2d_bwd_f32(&s->geometry, s->argmax, tsr_f32(dy), tsr_f32(dx), accumulate);
    }
}

tsr_tensor *tsr_max_pool2d(tsr_ctx *ctx, tsr_tensor *x, int kernel, int stride, tsr_padding padding)
{
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 4, "max_pool2d: x %s is not (N, H, W, C)",
                   tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "max_pool2d of %s",
                   tsr_dtype_name(x->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    pool_key key;
    tsr_conv_geometry g;
    tsr_pool_window(x, kernel, stride, padding, &key, &g);
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 4, TSR_SHAPE(key.n, key.out_h, key.out_w, key.c));
    bool record = tsr_ctx_should_record(ctx, 1, &x);
    void *workspace = NULL;
    int32_t *argmax = NULL;

    if (tsr_use_dnnl(ctx, x->dtype)) {
        key.op = record ? POOL_FWD_TRAINING : POOL_FWD_INFERENCE;
        tsr_dnnl_slot *slot = pool_slot(ctx, &key);
        if (record) {
            size_t bytes = dnnl_memory_desc_get_size(tsr_dnnl_slot_md(slot, DNNL_ARG_WORKSPACE));
            workspace = tsr_arena_alloc(&ctx->arena, bytes);
            tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, y->data, workspace});
        } else {
            tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, y->data});
        }
    } else {
        if (record)
            argmax = tsr_arena_alloc(&ctx->arena, (size_t)tsr_tensor_numel(y) * sizeof *argmax);
        if (x->dtype == TSR_DTYPE_F64)
            tsr_ref_max_pool2d_fwd_f64(&g, tsr_f64(x), tsr_f64(y), argmax);
        else
            tsr_ref_max_pool2d_fwd_f32(&g, tsr_f32(x), tsr_f32(y), argmax);
    }

    if (record) {
        pool_saved *s = tsr_tape_push(ctx, y, pool_backward, sizeof *s);
        s->x = x;
        s->y = y;
        s->key = key;
        s->key.op = 0;
        s->geometry = g;
        s->workspace = workspace;
        s->argmax = argmax;
    }
    return y;
}
