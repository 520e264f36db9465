/* ops_pool.c — max pooling on the tape.
 *
 * Float32 forwards run oneDNN's pooling_max inference primitive
 * (channels-last), recording or not; the backward routes each window's dy to
 * the first position where x equals y (tsr_ref_max_pool2d_bwd_by_value). On
 * the IMPALA pools with AVX2 (1 thread, ms, forward / backward), oneDNN 2.6's
 * training forward with its workspace and its backward were 5-10x slower
 * than that: (32, 84, 84, 16) 14-30 / 26-36 with the workspace, 3.7-5.3 /
 * 2.4 now; (32, 42, 42, 32) 10-15 / 6-14, 1.9 / 1.2. The reference kernels
 * save argmax positions instead and route by them; both pick the first
 * maximum in row-major window order. Neither ever selects a padded
 * position: oneDNN excludes padding from max windows, the reference only
 * visits in-image positions. */
#include <string.h>

#include "internal.h"
#include "pool_window.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

/* Cache-key tags; distinctive values keep these keys apart from other ops'. */
enum {
    POOL_FWD_INFERENCE = 0x504f4f02,
};

typedef tsr_pool_key pool_key;

static dnnl_primitive_desc_t pool_fwd_pd(tsr_ctx *ctx, const pool_key *k,
                                         const_dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t src = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->h, k->w}, dnnl_nhwc);
    dnnl_memory_desc_t dst = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->out_h, k->out_w}, dnnl_nhwc);
    dnnl_dims_t strides = {k->stride, k->stride}, kernel = {k->kernel, k->kernel};
    dnnl_dims_t pad_l = {k->pad_top, k->pad_left}, pad_r = {k->pad_bottom, k->pad_right};
    dnnl_pooling_desc_t desc;
    TSR_DNNL_CHECK(dnnl_pooling_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_max, &src, &dst, strides,
                                                  kernel, pad_l, pad_r));
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    return pd;
}

static tsr_dnnl_slot *pool_slot(tsr_ctx *ctx, const pool_key *k)
{
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, k, sizeof *k);
    if (slot) return slot;
    TSR_ASSERT(k->op == POOL_FWD_INFERENCE);
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd = pool_fwd_pd(ctx, k, attr);
    dnnl_primitive_attr_destroy(attr);
    return tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 2, (int[]){DNNL_ARG_SRC, DNNL_ARG_DST});
}

typedef struct pool_saved {
    tsr_tensor *x, *y;
    pool_key key;      /* op field unset */
    tsr_conv_geometry geometry;
    bool by_value;     /* oneDNN path: route by x == y */
    int32_t *argmax;   /* reference path: (N, Ho, Wo, C) positions */
} pool_saved;

static void pool_backward(tsr_ctx *ctx, void *saved)
{
    pool_saved *s = saved;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    if (s->by_value) {
        tsr_ref_max_pool2d_bwd_by_value_f32(&s->geometry, tsr_f32(s->x), tsr_f32(s->y), tsr_f32(dy),
                                            tsr_f32(dx), accumulate);
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
    int32_t *argmax = NULL;

    bool by_value = tsr_use_dnnl(ctx, x->dtype);
    if (by_value) {
        key.op = POOL_FWD_INFERENCE;
        tsr_dnnl_slot *slot = pool_slot(ctx, &key);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, y->data});
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
        s->by_value = by_value;
        s->argmax = argmax;
    }
    return y;
}
