/* ops_avgpool.c — average pooling on the tape (the average-pooled patch
 * tokens of layers/tokenize.c).
 *
 * float32 runs oneDNN's pooling_avg_exclude_padding (channels-last) in both
 * directions; average pooling needs no workspace, so the backward only needs
 * the geometry. float64 and the reference backend run avgpool_ref.c, which
 * excludes padding the same way. */
#include <string.h>

#include "internal.h"
#include "pool_window.h"
#include "kernels/encoder_kernels.h"
#include "tessera/ops_encoders.h"
#include "tessera/status.h"

/* Cache-key tags, distinct from every other op family's first field. */
enum {
    AVG_POOL_FWD_TRAINING = 0x41565001, /* "AVP" */
    AVG_POOL_FWD_INFERENCE,
    AVG_POOL_BWD,
};

typedef tsr_pool_key avg_pool_key;

static void key_descs(const avg_pool_key *k, dnnl_memory_desc_t *src, dnnl_memory_desc_t *dst,
                      dnnl_dims_t strides, dnnl_dims_t kernel, dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    *src = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->h, k->w}, dnnl_nhwc);
    *dst = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->out_h, k->out_w}, dnnl_nhwc);
    strides[0] = strides[1] = k->stride;
    kernel[0] = kernel[1] = k->kernel;
    pad_l[0] = k->pad_top;
    pad_l[1] = k->pad_left;
    pad_r[0] = k->pad_bottom;
    pad_r[1] = k->pad_right;
}

static dnnl_primitive_desc_t avg_pool_fwd_pd(tsr_ctx *ctx, const avg_pool_key *k,
                                             dnnl_prop_kind_t prop, const_dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t src, dst;
    dnnl_dims_t strides, kernel, pad_l, pad_r;
    key_descs(k, &src, &dst, strides, kernel, pad_l, pad_r);
    dnnl_pooling_desc_t desc;
    TSR_DNNL_CHECK(dnnl_pooling_forward_desc_init(&desc, prop, dnnl_pooling_avg_exclude_padding,
                                                  &src, &dst, strides, kernel, pad_l, pad_r));
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    return pd;
}

static tsr_dnnl_slot *avg_pool_slot(tsr_ctx *ctx, const avg_pool_key *k)
{
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, k, sizeof *k);
    if (slot) return slot;
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    if (k->op != AVG_POOL_BWD) {
        dnnl_prop_kind_t prop =
            k->op == AVG_POOL_FWD_TRAINING ? dnnl_forward_training : dnnl_forward_inference;
        dnnl_primitive_desc_t pd = avg_pool_fwd_pd(ctx, k, prop, attr);
        slot = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 2, (int[]){DNNL_ARG_SRC, DNNL_ARG_DST});
    } else {
        dnnl_primitive_desc_t hint = avg_pool_fwd_pd(ctx, k, dnnl_forward_training, NULL);
        dnnl_memory_desc_t diff_src, diff_dst;
        dnnl_dims_t strides, kernel, pad_l, pad_r;
        key_descs(k, &diff_src, &diff_dst, strides, kernel, pad_l, pad_r);
        dnnl_pooling_desc_t desc;
        TSR_DNNL_CHECK(dnnl_pooling_backward_desc_init(&desc, dnnl_pooling_avg_exclude_padding,
                                                       &diff_src, &diff_dst, strides, kernel, pad_l,
                                                       pad_r));
        dnnl_primitive_desc_t pd;
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, hint));
        dnnl_primitive_desc_destroy(hint);
        slot = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 2,
                               (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC});
    }
    dnnl_primitive_attr_destroy(attr);
    return slot;
}

typedef struct avg_pool_saved {
    tsr_tensor *x, *y;
    avg_pool_key key; /* op field unset */
    tsr_conv_geometry geometry;
} avg_pool_saved;

static void avg_pool_backward(tsr_ctx *ctx, void *saved)
{
    avg_pool_saved *s = saved;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    if (dx->dtype == TSR_DTYPE_F64) {
        tsr_ref_avg_pool2d_bwd_f64(&s->geometry, tsr_f64(dy), tsr_f64(dx), accumulate);
    } else if (tsr_use_dnnl(ctx, dx->dtype)) {
        avg_pool_key key = s->key;
        key.op = AVG_POOL_BWD;
        tsr_dnnl_slot *slot = avg_pool_slot(ctx, &key);
        float *target = accumulate ? tsr_arena_alloc(&ctx->arena, tsr_tensor_nbytes(dx)) : tsr_f32(dx);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){dy->data, target});
        if (accumulate) {
            float *out = tsr_f32(dx);
            int64_t n = tsr_tensor_numel(dx);
            for (int64_t i = 0; i < n; i++) out[i] += target[i];
        }
    } else {
        tsr_ref_avg_pool2d_bwd_f32(&s->geometry, tsr_f32(dy), tsr_f32(dx), accumulate);
    }
}

tsr_tensor *tsr_avg_pool2d(tsr_ctx *ctx, tsr_tensor *x, int kernel, int stride, tsr_padding padding)
{
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 4, "avg_pool2d: x %s is not (N, H, W, C)",
                   tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "avg_pool2d of %s",
                   tsr_dtype_name(x->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    avg_pool_key key;
    tsr_conv_geometry g;
    tsr_pool_window(x, kernel, stride, padding, &key, &g);
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 4, TSR_SHAPE(key.n, key.out_h, key.out_w, key.c));
    bool record = tsr_ctx_should_record(ctx, 1, &x);

    if (x->dtype == TSR_DTYPE_F64) {
        tsr_ref_avg_pool2d_fwd_f64(&g, tsr_f64(x), tsr_f64(y));
    } else if (tsr_use_dnnl(ctx, x->dtype)) {
        key.op = record ? AVG_POOL_FWD_TRAINING : AVG_POOL_FWD_INFERENCE;
        tsr_dnnl_execute(&ctx->dnnl, avg_pool_slot(ctx, &key), &ctx->arena,
                         (void *[]){x->data, y->data});
    } else {
        tsr_ref_avg_pool2d_fwd_f32(&g, tsr_f32(x), tsr_f32(y));
    }

    if (record) {
        avg_pool_saved *s = tsr_tape_push(ctx, y, avg_pool_backward, sizeof *s);
        s->x = x;
        s->y = y;
        s->key = key;
        s->key.op = 0;
        s->geometry = g;
    }
    return y;
}
