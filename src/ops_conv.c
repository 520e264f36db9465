/* ops_conv.c — 2-D convolution on the tape, and cached oneDNN weight layouts.
 *
 * Activations are channels-last (dnnl_nhwc); weights are stored plainly
 * (OIHW) and reordered into the layout oneDNN picks for format `any`. The
 * reordered copy lives in the caller's tsr_weight_cache and is refreshed when
 * the weight's data pointer, version or the wanted layout changes; without a
 * cache the reorder goes into the arena on every call. Weight gradients are
 * computed in oneDNN's preferred layout and reordered back to OIHW, with a sum
 * post-op when they accumulate. The fused ReLU is a oneDNN post-op forward;
 * backward masks dy by (y > 0) first. */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

/* ==== geometry ========================================================== */

void tsr_conv_output_size(int64_t in, int64_t kernel, int64_t stride, tsr_padding padding,
                          int64_t *out, int64_t *pad_before)
{
    TSR_ASSERT_MSG(in > 0 && kernel > 0 && stride > 0, "conv size: in %lld, kernel %lld, stride %lld",
                   (long long)in, (long long)kernel, (long long)stride);
    int64_t size, before = 0;
    if (padding == TSR_PADDING_SAME) {
        size = (in + stride - 1) / stride;
        int64_t total = (size - 1) * stride + kernel - in;
        if (total > 0) before = total / 2;
    } else {
        TSR_ASSERT_MSG(padding == TSR_PADDING_VALID, "unknown padding %d", (int)padding);
        TSR_ASSERT_MSG(in >= kernel, "VALID padding with kernel %lld over an input of %lld",
                       (long long)kernel, (long long)in);
        size = (in - kernel) / stride + 1;
    }
    *out = size;
    if (pad_before) *pad_before = before;
}

/* Trailing padding implied by an output size: what oneDNN calls padding_r. */
static int64_t pad_after(int64_t in, int64_t kernel, int64_t stride, int64_t out, int64_t before)
{
    int64_t after = (out - 1) * stride + kernel - in - before;
    return after > 0 ? after : 0;
}

/* ==== oneDNN primitives ================================================= */

/* Cache-key tags; distinctive values keep these keys apart from other ops'. */
enum {
    CONV_FWD_TRAINING = 0x434f4e01,
    CONV_FWD_INFERENCE,
    CONV_BWD_DATA,
    CONV_BWD_WEIGHTS,
    CONV_RELU_MASK,
};

/* One convolution problem. Built from a zeroed struct (byte-compared). */
typedef struct conv_key {
    uint32_t op;
    int32_t relu, bias;
    int32_t stride;
    int64_t n, h, w, c, o, kernel_h, kernel_w, out_h, out_w;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
} conv_key;


typedef struct eltwise_mask_key {
    uint32_t op;
    int32_t unused;
    int64_t n;
} eltwise_mask_key;


/* A hash of everything that defines a memory layout (not the raw struct,
 * whose unused fields need not be zero). */

static void conv_dims(const conv_key *k, dnnl_memory_desc_t *src, dnnl_memory_desc_t *weights,
                      dnnl_memory_desc_t *bias, dnnl_memory_desc_t *dst, dnnl_dims_t strides,
                      dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    /* oneDNN's logical order is (N, C, H, W) whatever the memory layout. */
    *src = tsr_dnnl_md(4, (int64_t[]){k->n, k->c, k->h, k->w}, dnnl_nhwc);
    *weights = tsr_dnnl_md_any(4, (int64_t[]){k->o, k->c, k->kernel_h, k->kernel_w});
    *bias = tsr_dnnl_md(1, (int64_t[]){k->o}, dnnl_a);
    *dst = tsr_dnnl_md(4, (int64_t[]){k->n, k->o, k->out_h, k->out_w}, dnnl_nhwc);
    strides[0] = strides[1] = k->stride;
    pad_l[0] = k->pad_top;
    pad_l[1] = k->pad_left;
    pad_r[0] = k->pad_bottom;
    pad_r[1] = k->pad_right;
}

static dnnl_primitive_desc_t conv_fwd_pd(tsr_ctx *ctx, const conv_key *k, dnnl_prop_kind_t prop,
                                         const_dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t src, weights, bias, dst;
    dnnl_dims_t strides, pad_l, pad_r;
    conv_dims(k, &src, &weights, &bias, &dst, strides, pad_l, pad_r);
    dnnl_convolution_desc_t desc;
    TSR_DNNL_CHECK(dnnl_convolution_forward_desc_init(&desc, prop, dnnl_convolution_direct, &src,
                                                      &weights, k->bias ? &bias : NULL, &dst,
                                                      strides, pad_l, pad_r));
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    return pd;
}

/* The slot for key->op (relu and bias only matter where they change the
 * primitive: forward has both, backward-weights has bias). */
static tsr_dnnl_slot *conv_slot(tsr_ctx *ctx, const conv_key *k)
{
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, k, sizeof *k);
    if (slot) return slot;
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd;
    if (k->op == CONV_FWD_TRAINING || k->op == CONV_FWD_INFERENCE) {
        if (k->relu) {
            dnnl_post_ops_t ops;
            TSR_DNNL_CHECK(dnnl_post_ops_create(&ops));
            TSR_DNNL_CHECK(dnnl_post_ops_append_eltwise(ops, 1.f, dnnl_eltwise_relu, 0.f, 0.f));
            TSR_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
            dnnl_post_ops_destroy(ops);
        }
        pd = conv_fwd_pd(ctx, k,
                         k->op == CONV_FWD_TRAINING ? dnnl_forward_training : dnnl_forward_inference,
                         attr);
        dnnl_primitive_attr_destroy(attr);
        if (k->bias)
            return tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 4,
                                   (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST});
        return tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 3,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
    }
    /* Backward primitives take the forward training primitive as their hint. */
    dnnl_primitive_desc_t hint = conv_fwd_pd(ctx, k, dnnl_forward_training, NULL);
    dnnl_memory_desc_t src, weights, bias, dst;
    dnnl_dims_t strides, pad_l, pad_r;
    conv_dims(k, &src, &weights, &bias, &dst, strides, pad_l, pad_r);
    dnnl_convolution_desc_t desc;
    tsr_dnnl_slot *result;
    if (k->op == CONV_BWD_DATA) {
        TSR_DNNL_CHECK(dnnl_convolution_backward_data_desc_init(
            &desc, dnnl_convolution_direct, &src, &weights, &dst, strides, pad_l, pad_r));
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, hint));
        result = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 3,
                                 (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC});
    } else {
        TSR_ASSERT(k->op == CONV_BWD_WEIGHTS);
        TSR_DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
            &desc, dnnl_convolution_direct, &src, &weights, k->bias ? &bias : NULL, &dst, strides,
            pad_l, pad_r));
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, hint));
        if (k->bias)
            result = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 4,
                                     (int[]){DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS,
                                             DNNL_ARG_DIFF_BIAS});
        else
            result = tsr_dnnl_insert(&ctx->dnnl, k, sizeof *k, pd, 3,
                                     (int[]){DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS});
    }
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    return result;
}

/* Reorders `from` (layout from_md) into `to` (layout to_md); with `sum` it
 * adds into `to` instead (a sum post-op). Both describe the same 4-D tensor. */

/* dy * (y > 0) through oneDNN's ReLU backward over n floats, into `masked`. */
static void relu_mask(tsr_ctx *ctx, const float *y, const float *dy, float *masked, int64_t n)
{
    eltwise_mask_key key;
    memset(&key, 0, sizeof key);
    key.op = CONV_RELU_MASK;
    key.n = n;
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (!slot) {
        dnnl_memory_desc_t md = tsr_dnnl_md(1, (int64_t[]){n}, dnnl_a);
        dnnl_eltwise_desc_t fwd, bwd;
        TSR_DNNL_CHECK(dnnl_eltwise_forward_desc_init(&fwd, dnnl_forward_training,
                                                      dnnl_eltwise_relu_use_dst_for_bwd, &md, 0.f, 0.f));
        dnnl_primitive_desc_t hint, pd;
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&hint, &fwd, NULL, ctx->dnnl.engine, NULL));
        TSR_DNNL_CHECK(dnnl_eltwise_backward_desc_init(&bwd, dnnl_eltwise_relu_use_dst_for_bwd,
                                                       &md, &md, 0.f, 0.f));
        dnnl_primitive_attr_t attr = tsr_dnnl_attr();
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &bwd, attr, ctx->dnnl.engine, hint));
        dnnl_primitive_attr_destroy(attr);
        dnnl_primitive_desc_destroy(hint);
        slot = tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                               (int[]){DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC});
    }
    tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){(void *)y, (void *)dy, masked});
}

/* ==== weight layouts ===================================================== */


static dnnl_memory_desc_t plain_weights_md(const tsr_tensor *w)
{
    return tsr_dnnl_md(4, w->shape, dnnl_oihw);
}


/* ==== conv2d ============================================================= */

typedef struct conv_saved {
    tsr_tensor *x, *w, *b, *y;
    tsr_weight_cache *cache; /* may be NULL */
    conv_key key;            /* op field unset */
    tsr_conv_geometry geometry;
    bool relu;
} conv_saved;

static void conv_backward_reference(const conv_saved *s, const void *dy, tsr_tensor *dx, bool acc_x,
                                   tsr_tensor *dw, bool acc_w, tsr_tensor *db, bool acc_b)
{
    const tsr_conv_geometry *g = &s->geometry;
    if (s->y->dtype == TSR_DTYPE_F64) {
        if (dx) tsr_ref_conv2d_bwd_data_f64(g, dy, tsr_f64(s->w), tsr_f64(dx), acc_x);
        if (dw || db)
            tsr_ref_conv2d_bwd_weights_f64(g, tsr_f64(s->x), dy, dw ? tsr_f64(dw) : NULL,
                                           db ? tsr_f64(db) : NULL, acc_w, acc_b);
    } else {
        if (dx) tsr_ref_conv2d_bwd_data_f32(g, dy, tsr_f32(s->w), tsr_f32(dx), acc_x);
        if (dw || db)
            tsr_ref_conv2d_bwd_weights_f32(g, tsr_f32(s->x), dy, dw ? tsr_f32(dw) : NULL,
                                           db ? tsr_f32(db) : NULL, acc_w, acc_b);
    }
}

static void conv_backward_dnnl(tsr_ctx *ctx, conv_saved *s, const float *dy, tsr_tensor *dx,
                               bool acc_x, tsr_tensor *dw, bool acc_w, tsr_tensor *db, bool acc_b)
{
    conv_key key = s->key;
    if (dx) {
        key.op = CONV_BWD_DATA;
        key.relu = 0;
        key.bias = 0;
        tsr_dnnl_slot *slot = conv_slot(ctx, &key);
        dnnl_memory_desc_t plain = plain_weights_md(s->w);
        void *weights = tsr_dnnl_weights_in_layout(&ctx->dnnl, &ctx->arena, s->w, &plain,
                                                   tsr_dnnl_slot_md(slot, DNNL_ARG_WEIGHTS),
                                                   s->cache, false);
        void *target = acc_x ? tsr_arena_alloc(&ctx->arena, tsr_tensor_nbytes(dx)) : dx->data;
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){(void *)dy, weights, target});
        if (acc_x) {
            const dnnl_memory_desc_t *md = tsr_dnnl_slot_md(slot, DNNL_ARG_DIFF_SRC);
            tsr_dnnl_reorder(&ctx->dnnl, &ctx->arena, md, md, target, dx->data, true);
        }
    }
    if (dw || db) {
        key = s->key;
        key.op = CONV_BWD_WEIGHTS;
        key.relu = 0;
        key.bias = db != NULL;
        tsr_dnnl_slot *slot = conv_slot(ctx, &key);
        const dnnl_memory_desc_t *want = tsr_dnnl_slot_md(slot, DNNL_ARG_DIFF_WEIGHTS);
        dnnl_memory_desc_t plain = plain_weights_md(s->w);
        bool direct = dw && !acc_w && dnnl_memory_desc_equal(&plain, want);
        void *wtarget = direct ? dw->data : tsr_arena_alloc(&ctx->arena, dnnl_memory_desc_get_size(want));
        float *btarget = NULL;
        if (db) btarget = acc_b ? tsr_arena_alloc(&ctx->arena, tsr_tensor_nbytes(db)) : tsr_f32(db);
        void *handles[4] = {s->x->data, (void *)dy, wtarget, btarget};
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, handles);
        if (dw && !direct) tsr_dnnl_reorder(&ctx->dnnl, &ctx->arena, want, &plain, wtarget, dw->data, acc_w);
        if (db && acc_b) {
            float *out = tsr_f32(db);
            for (int64_t o = 0; o < db->shape[0]; o++) out[o] += btarget[o];
        }
    }
}

static void conv_backward(tsr_ctx *ctx, void *saved)
{
    conv_saved *s = saved;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    bool dnnl = tsr_use_dnnl(ctx, s->y->dtype);
    int64_t n = tsr_tensor_numel(s->y);
    const void *dy_data = dy->data;
    if (s->relu) {
        /* Gradients flow only where the fused ReLU passed its input. */
        void *masked = tsr_arena_alloc(&ctx->arena, tsr_tensor_nbytes(s->y));
        if (s->y->dtype == TSR_DTYPE_F64)
            tsr_ref_relu_bwd_f64(tsr_f64(s->y), tsr_f64(dy), masked, n, false);
        else if (dnnl)
            relu_mask(ctx, tsr_f32(s->y), tsr_f32(dy), masked, n);
        else
            tsr_ref_relu_bwd_f32(tsr_f32(s->y), tsr_f32(dy), masked, n, false);
        dy_data = masked;
    }
    /* The first layer's input needs no gradient: backward-data is skipped. */
    bool acc_x, acc_w, acc_b;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &acc_x);
    tsr_tensor *dw = tsr_grad_acquire(ctx, s->w, TSR_GRAD_WRITE_ALL, &acc_w);
    tsr_tensor *db = tsr_grad_acquire(ctx, s->b, TSR_GRAD_WRITE_ALL, &acc_b);
    if (dnnl)
        conv_backward_dnnl(ctx, s, dy_data, dx, acc_x, dw, acc_w, db, acc_b);
    else
        conv_backward_reference(s, dy_data, dx, acc_x, dw, acc_w, db, acc_b);
}

static void check_conv_args(const tsr_tensor *x, const tsr_tensor *w, const tsr_tensor *b)
{
    char sx[96], sw[96], sb[96];
    TSR_ASSERT_MSG(x->ndim == 4 && w->ndim == 4 && x->shape[3] == w->shape[1],
                   "conv2d: x %s (N, H, W, C) and w %s (O, C, kH, kW) do not match",
                   tsr_tensor_shape_str(x, sx, sizeof sx), tsr_tensor_shape_str(w, sw, sizeof sw));
    TSR_ASSERT_MSG(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]),
                   "conv2d: bias %s for weights %s", tsr_tensor_shape_str(b, sb, sizeof sb),
                   tsr_tensor_shape_str(w, sw, sizeof sw));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "conv2d of %s",
                   tsr_dtype_name(x->dtype));
    TSR_ASSERT_MSG(w->dtype == x->dtype && (!b || b->dtype == x->dtype),
                   "conv2d: mixed dtypes (x %s, w %s)", tsr_dtype_name(x->dtype),
                   tsr_dtype_name(w->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(x) && tsr_tensor_is_contiguous(w) &&
               (!b || tsr_tensor_is_contiguous(b)));
}

tsr_tensor *tsr_conv2d(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, int stride,
                       tsr_padding padding, bool relu, tsr_weight_cache *cache)
{
    check_conv_args(x, w, b);
    TSR_ASSERT_MSG(stride > 0, "conv2d stride %d", stride);
    conv_key key;
    memset(&key, 0, sizeof key);
    key.relu = relu;
    key.bias = b != NULL;
    key.stride = stride;
    key.n = x->shape[0];
    key.h = x->shape[1];
    key.w = x->shape[2];
    key.c = x->shape[3];
    key.o = w->shape[0];
    key.kernel_h = w->shape[2];
    key.kernel_w = w->shape[3];
    tsr_conv_output_size(key.h, key.kernel_h, stride, padding, &key.out_h, &key.pad_top);
    tsr_conv_output_size(key.w, key.kernel_w, stride, padding, &key.out_w, &key.pad_left);
    key.pad_bottom = pad_after(key.h, key.kernel_h, stride, key.out_h, key.pad_top);
    key.pad_right = pad_after(key.w, key.kernel_w, stride, key.out_w, key.pad_left);
    tsr_conv_geometry g = {
        .n = key.n, .h = key.h, .w = key.w, .c = key.c, .o = key.o,
        .kernel_h = key.kernel_h, .kernel_w = key.kernel_w,
        .out_h = key.out_h, .out_w = key.out_w, .stride = stride,
        .pad_top = key.pad_top, .pad_left = key.pad_left,
    };
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 4, TSR_SHAPE(key.n, key.out_h, key.out_w, key.o));
    bool record = tsr_ctx_should_record(ctx, 3, (tsr_tensor *[]){x, w, b});

    if (x->dtype == TSR_DTYPE_F64) {
        tsr_ref_conv2d_fwd_f64(&g, tsr_f64(x), tsr_f64(w), b ? tsr_f64(b) : NULL, tsr_f64(y), relu);
    } else if (tsr_use_dnnl(ctx, x->dtype)) {
        key.op = record ? CONV_FWD_TRAINING : CONV_FWD_INFERENCE;
        tsr_dnnl_slot *slot = conv_slot(ctx, &key);
        dnnl_memory_desc_t plain = plain_weights_md(w);
        void *weights = tsr_dnnl_weights_in_layout(&ctx->dnnl, &ctx->arena, w, &plain,
                                                   tsr_dnnl_slot_md(slot, DNNL_ARG_WEIGHTS), cache,
                                                   true);
        if (b)
            tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, weights, b->data, y->data});
        else
            tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, weights, y->data});
    } else {
        tsr_ref_conv2d_fwd_f32(&g, tsr_f32(x), tsr_f32(w), b ? tsr_f32(b) : NULL, tsr_f32(y), relu);
    }

    if (record) {
        conv_saved *s = tsr_tape_push(ctx, y, conv_backward, sizeof *s);
        s->x = x;
        s->w = w;
        s->b = b;
        s->y = y;
        s->cache = cache;
        s->key = key;
        s->key.op = 0;
        s->geometry = g;
        s->relu = relu;
    }
    return y;
}
