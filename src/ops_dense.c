/* ops_dense.c — linear layers and batched matrix products on the tape.
 *
 * tsr_linear runs oneDNN's inner product in all three directions. Measured on
 * the agents' shapes (2 threads, AVX-512; microseconds, forward / backward-data
 * / backward-weights; median of 31):
 *
 *                     inner product            matmul (plain W^T strides)
 *   (32, 7744) -> 512  650* / 505 / 620          700-820 / 550-720 / 810-1400
 *   (32, 3872) -> 512  400* / 255 / 315          330-410 / 280-340 / 320-380
 *   (32, 1600) -> 128   28* /  27 /  29           35 /  29 /  29
 *   (32, 512)  -> 6    4-6* / 1.4 / 2-3          4-7 / 2-5 / 2-4
 *   (1, 7744)  -> 512   76* /  44 / 124          239 /  78 / 265
 *   (* forward with oneDNN's blocked weight layout; the plain (out, in)
 *    layout costs 1100-2100, 520-630, 57, 6, 78 there)
 *
 * So: forward on the blocked layout oneDNN picks (OI16i64o here; the same for
 * batch 1 and 32, training and inference), reordered from the plain (out, in)
 * weights into the caller's tsr_weight_cache (a reorder of the 7744 x 512
 * weight costs about 530 us and is paid once per optimizer step, not per
 * forward); backward-data and backward-weights on the plain layout, where
 * they are fastest and where the gradient lives. matmul was close (its
 * forward on a blocked layout was ~15% faster at batch 32) but slower and
 * noisier in backward-weights, and would need a separate bias reduction.
 *
 * tsr_matmul runs oneDNN's matmul with strided memory descriptors: a
 * transpose is a swap of two strides, a broadcast batch a batch of one. All
 * three products (forward, d a, d b) go through one helper; gradients of a
 * broadcast operand are computed per batch into the arena and summed in batch
 * order.
 */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

/* First field of every cache key in this file, so that no key of another op
 * family can equal one of ours byte for byte. */
#define DENSE_KEY_FAMILY 0x44454e53u /* "DENS" */

enum dense_op {
    OP_LINEAR_FWD = 1,
    OP_LINEAR_BWD_DATA,
    OP_LINEAR_BWD_WEIGHTS,
    OP_LINEAR_FWD_PLAIN,
    OP_MATMUL,
};

/* ==== linear: oneDNN inner product ====================================== */

typedef struct linear_key {
    uint32_t family, op;
    int64_t n, in, out;
    int has_bias, relu, inference;
} linear_key;

static dnnl_primitive_desc_t linear_fwd_pd(tsr_ctx *ctx, const linear_key *k,
                                           dnnl_format_tag_t weight_tag, bool user_scratchpad)
{
    dnnl_memory_desc_t x = tsr_dnnl_md(2, (int64_t[]){k->n, k->in}, dnnl_nc);
    dnnl_memory_desc_t w = tsr_dnnl_md(2, (int64_t[]){k->out, k->in}, weight_tag);
    dnnl_memory_desc_t b = tsr_dnnl_md(1, (int64_t[]){k->out}, dnnl_x);
    dnnl_memory_desc_t y = tsr_dnnl_md(2, (int64_t[]){k->n, k->out}, dnnl_nc);
    dnnl_inner_product_desc_t desc;
    TSR_DNNL_CHECK(dnnl_inner_product_forward_desc_init(
        &desc, k->inference ? dnnl_forward_inference : dnnl_forward_training, &x, &w,
        k->has_bias ? &b : NULL, &y));
    dnnl_primitive_attr_t attr;
    if (user_scratchpad) {
        attr = tsr_dnnl_attr();
    } else {
        TSR_DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    }
    if (k->relu) {
        dnnl_post_ops_t ops;
        TSR_DNNL_CHECK(dnnl_post_ops_create(&ops));
        TSR_DNNL_CHECK(dnnl_post_ops_append_eltwise(ops, 1.f, dnnl_eltwise_relu, 0.f, 0.f));
        TSR_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* The slot for one direction; backward primitives use plain (out, in)
 * weights and a plain-weight forward as their hint. */
static tsr_dnnl_slot *linear_slot(tsr_ctx *ctx, int op, int64_t n, int64_t in, int64_t out,
                                  bool has_bias, bool relu, bool inference)
{
    linear_key key;
    memset(&key, 0, sizeof key);
    key.family = DENSE_KEY_FAMILY;
    key.op = (uint32_t)op;
    key.n = n;
    key.in = in;
    key.out = out;
    key.has_bias = has_bias;
    key.relu = op == OP_LINEAR_FWD && relu;
    key.inference = op == OP_LINEAR_FWD && inference;
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;

    if (op == OP_LINEAR_FWD) {
        dnnl_primitive_desc_t pd = linear_fwd_pd(ctx, &key, dnnl_format_tag_any, true);
        if (has_bias)
            return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 4,
                                   (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS,
                                           DNNL_ARG_DST});
        return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
    }

    linear_key hint_key = key;
    hint_key.op = OP_LINEAR_FWD;
    dnnl_primitive_desc_t hint = linear_fwd_pd(ctx, &hint_key, dnnl_oi, false);
    dnnl_memory_desc_t x = tsr_dnnl_md(2, (int64_t[]){n, in}, dnnl_nc);
    dnnl_memory_desc_t w = tsr_dnnl_md(2, (int64_t[]){out, in}, dnnl_oi);
    dnnl_memory_desc_t b = tsr_dnnl_md(1, (int64_t[]){out}, dnnl_x);
    dnnl_memory_desc_t y = tsr_dnnl_md(2, (int64_t[]){n, out}, dnnl_nc);
    dnnl_inner_product_desc_t desc;
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd;
    if (op == OP_LINEAR_BWD_DATA) {
        TSR_DNNL_CHECK(dnnl_inner_product_backward_data_desc_init(&desc, &x, &w, &y));
    } else {
        TSR_DNNL_CHECK(dnnl_inner_product_backward_weights_desc_init(&desc, &x, &w,
                                                                     has_bias ? &b : NULL, &y));
    }
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, hint));
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(hint);
    if (op == OP_LINEAR_BWD_DATA)
        return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                               (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC});
    if (has_bias)
        return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 4,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS,
                                       DNNL_ARG_DIFF_BIAS});
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                           (int[]){DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS});
}

/* Forward on the plain (out, in) weights through oneDNN's matmul, which reads
 * them as the column-major (in, out) matrix they are: no reorder. */
static tsr_dnnl_slot *linear_plain_slot(tsr_ctx *ctx, int64_t n, int64_t in, int64_t out,
                                        bool has_bias, bool relu)
{
    linear_key key;
    memset(&key, 0, sizeof key);
    key.family = DENSE_KEY_FAMILY;
    key.op = OP_LINEAR_FWD_PLAIN;
    key.n = n;
    key.in = in;
    key.out = out;
    key.has_bias = has_bias;
    key.relu = relu;
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;
    dnnl_memory_desc_t x = tsr_dnnl_md(2, (int64_t[]){n, in}, dnnl_ab);
    dnnl_memory_desc_t w = tsr_dnnl_md(2, (int64_t[]){in, out}, dnnl_ba);
    dnnl_memory_desc_t b = tsr_dnnl_md(2, (int64_t[]){1, out}, dnnl_ab);
    dnnl_memory_desc_t y = tsr_dnnl_md(2, (int64_t[]){n, out}, dnnl_ab);
    dnnl_matmul_desc_t desc;
    TSR_DNNL_CHECK(dnnl_matmul_desc_init(&desc, &x, &w, has_bias ? &b : NULL, &y));
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    if (relu) {
        dnnl_post_ops_t ops;
        TSR_DNNL_CHECK(dnnl_post_ops_create(&ops));
        TSR_DNNL_CHECK(dnnl_post_ops_append_eltwise(ops, 1.f, dnnl_eltwise_relu, 0.f, 0.f));
        TSR_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    dnnl_primitive_attr_destroy(attr);
    if (has_bias)
        return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 4,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST});
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                           (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
}

/* The oneDNN forward. Inner product wants the weights in a blocked layout,
 * whose reorder (about 1 ms for 7744 x 512 on one core) pays only when one
 * version of the weights is used more than once. So a version's first use
 * runs matmul on the plain weights, and only its second use reorders into the
 * cache, which then serves every later use: the online network, updated each
 * step, never pays the reorder in a pure training step; a target network or
 * acting between updates does once per version. Without a cache, always
 * plain. */
static void linear_forward_dnnl(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b,
                                tsr_tensor *y, bool relu, bool record, tsr_weight_cache *cache)
{
    int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    bool cached = tsr_weight_cache_is_current(cache, w);
    if (!cached && cache && cache->seen_source == w->data && cache->seen_version == w->version)
        cached = true; /* second use of this version: worth the reorder */
    tsr_dnnl_slot *slot;
    void *weights;
    if (cached) {
        slot = linear_slot(ctx, OP_LINEAR_FWD, n, in, out, b != NULL, relu, !record);
        dnnl_memory_desc_t plain = tsr_dnnl_md(2, (int64_t[]){out, in}, dnnl_oi);
        weights = tsr_dnnl_weights_in_layout(&ctx->dnnl, &ctx->arena, w, &plain,
                                             tsr_dnnl_slot_md(slot, DNNL_ARG_WEIGHTS), cache, true);
    } else {
        if (cache) {
            cache->seen_source = w->data;
            cache->seen_version = w->version;
        }
        slot = linear_plain_slot(ctx, n, in, out, b != NULL, relu);
        weights = w->data;
    }
    if (b)
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, weights, b->data, y->data});
    else
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, weights, y->data});
}

typedef struct linear_saved {
    tsr_tensor *x, *w, *b, *y;
    bool relu;
} linear_saved;

/* A float32 destination for a oneDNN result: the gradient buffer itself when
 * it may be overwritten, else an arena temporary to be added afterwards. */
static float *dnnl_target(tsr_ctx *ctx, tsr_tensor *grad, bool accumulate, size_t numel)
{
    if (grad && !accumulate) return tsr_f32(grad);
    return tsr_arena_alloc(&ctx->arena, numel * sizeof(float));
}

static void linear_backward(tsr_ctx *ctx, void *saved_)
{
    linear_saved *s = saved_;
    int64_t n = s->x->shape[0], in = s->x->shape[1], out = s->w->shape[0];
    bool acc_x, acc_w, acc_b;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &acc_x);
    tsr_tensor *dw = tsr_grad_acquire(ctx, s->w, TSR_GRAD_WRITE_ALL, &acc_w);
    tsr_tensor *db = tsr_grad_acquire(ctx, s->b, TSR_GRAD_WRITE_ALL, &acc_b); /* b may be NULL */
    if (!dx && !dw && !db) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    size_t elt = tsr_dtype_size(s->y->dtype);

    /* Through the fused ReLU first: dz = dy * (y > 0). */
    void *dz = dy->data;
    if (s->relu) {
        dz = tsr_arena_alloc(&ctx->arena, (size_t)(n * out) * elt);
        if (s->y->dtype == TSR_DTYPE_F64)
            tsr_ref_relu_bwd_f64(tsr_f64(s->y), tsr_f64(dy), dz, n * out, false);
        else
            tsr_ref_relu_bwd_f32(tsr_f32(s->y), tsr_f32(dy), dz, n * out, false);
    }

    if (s->y->dtype == TSR_DTYPE_F64) {
        if (dx) tsr_ref_linear_bwd_data_f64(dz, tsr_f64(s->w), tsr_f64(dx), n, in, out, acc_x);
        if (dw || db)
            tsr_ref_linear_bwd_weights_f64(tsr_f64(s->x), dz, dw ? tsr_f64(dw) : NULL,
                                           db ? tsr_f64(db) : NULL, n, in, out, acc_w, acc_b);
        return;
    }
    if (!tsr_use_dnnl(ctx, s->y->dtype)) {
        if (dx) tsr_ref_linear_bwd_data_f32(dz, tsr_f32(s->w), tsr_f32(dx), n, in, out, acc_x);
        if (dw || db)
            tsr_ref_linear_bwd_weights_f32(tsr_f32(s->x), dz, dw ? tsr_f32(dw) : NULL,
                                           db ? tsr_f32(db) : NULL, n, in, out, acc_w, acc_b);
        return;
    }

    if (dx) {
        float *target = dnnl_target(ctx, dx, acc_x, (size_t)(n * in));
        tsr_dnnl_slot *slot = linear_slot(ctx, OP_LINEAR_BWD_DATA, n, in, out, false, false, false);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){dz, s->w->data, target});
        if (acc_x) tsr_ref_add_into_f32(tsr_f32(dx), target, n * in);
    }
    if (dw || db) {
        /* The primitive always writes the weight gradient; the bias gradient
         * only exists when the layer has a bias. */
        float *target_w = dnnl_target(ctx, dw, acc_w, (size_t)(out * in));
        float *target_b = s->b ? dnnl_target(ctx, db, acc_b, (size_t)out) : NULL;
        tsr_dnnl_slot *slot =
            linear_slot(ctx, OP_LINEAR_BWD_WEIGHTS, n, in, out, s->b != NULL, false, false);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena,
                         (void *[]){s->x->data, dz, target_w, target_b});
        if (dw && acc_w) tsr_ref_add_into_f32(tsr_f32(dw), target_w, out * in);
        if (db && acc_b) tsr_ref_add_into_f32(tsr_f32(db), target_b, out);
    }
}

tsr_tensor *tsr_linear(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *w, tsr_tensor *b, bool relu,
                       tsr_weight_cache *cache)
{
    char sx[96], sw[96];
    TSR_ASSERT_MSG(x->ndim == 2 && w->ndim == 2 && x->shape[1] == w->shape[1],
                   "linear of x %s with w %s: expected x (N, in) and w (out, in)",
                   tsr_tensor_shape_str(x, sx, sizeof sx), tsr_tensor_shape_str(w, sw, sizeof sw));
    TSR_ASSERT_MSG(x->dtype == w->dtype && (x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64),
                   "linear of %s x with %s w", tsr_dtype_name(x->dtype), tsr_dtype_name(w->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(x) && tsr_tensor_is_contiguous(w));
    int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (b) {
        TSR_ASSERT_MSG(b->ndim == 1 && b->shape[0] == out && b->dtype == x->dtype,
                       "linear bias %s for %lld outputs", tsr_tensor_shape_str(b, sx, sizeof sx),
                       (long long)out);
        TSR_ASSERT(tsr_tensor_is_contiguous(b));
    }
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, 2, (int64_t[]){n, out});
    bool record = tsr_ctx_should_record(ctx, 3, (tsr_tensor *[]){x, w, b});

    if (x->dtype == TSR_DTYPE_F64) {
        tsr_ref_linear_fwd_f64(tsr_f64(x), tsr_f64(w), b ? tsr_f64(b) : NULL, tsr_f64(y), n, in,
                               out, relu);
    } else if (tsr_use_dnnl(ctx, x->dtype)) {
        linear_forward_dnnl(ctx, x, w, b, y, relu, record, cache);
    } else {
        tsr_ref_linear_fwd_f32(tsr_f32(x), tsr_f32(w), b ? tsr_f32(b) : NULL, tsr_f32(y), n, in,
                               out, relu);
    }

    if (record) {
        linear_saved *s = tsr_tape_push(ctx, y, linear_backward, sizeof *s);
        s->x = x;
        s->w = w;
        s->b = b;
        s->y = y;
        s->relu = relu;
    }
    return y;
}

/* ==== batched products ================================================== */

/* A logical (batch, rows, cols) matrix stack by element strides. A batch of
 * one broadcasts over the product's batch. */
typedef struct operand {
    void *data;
    int64_t batch, rows, cols;
    int64_t stride[3];
} operand;

static operand operand_transposed(operand o)
{
    int64_t rows = o.rows, row_stride = o.stride[1];
    o.rows = o.cols;
    o.stride[1] = o.stride[2];
    o.cols = rows;
    o.stride[2] = row_stride;
    return o;
}

typedef struct matmul_key {
    uint32_t family, op;
    int64_t batch;
    int64_t a_dims[3], a_strides[3];
    int64_t b_dims[3], b_strides[3];
    int accumulate;
} matmul_key;

static dnnl_memory_desc_t operand_md(const operand *o)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {o->batch, o->rows, o->cols};
    /* The batch stride of a single matrix is never used; give oneDNN a
     * non-overlapping one. */
    dnnl_dims_t strides = {o->batch == 1 ? o->rows * o->cols : o->stride[0], o->stride[1],
                           o->stride[2]};
    TSR_DNNL_CHECK(dnnl_memory_desc_init_by_strides(&md, 3, dims, dnnl_f32, strides));
    return md;
}

static tsr_dnnl_slot *matmul_slot(tsr_ctx *ctx, int64_t batch, const operand *a, const operand *b,
                                  bool accumulate)
{
    matmul_key key;
    memset(&key, 0, sizeof key);
    key.family = DENSE_KEY_FAMILY;
    key.op = OP_MATMUL;
    key.batch = batch;
    key.a_dims[0] = a->batch, key.a_dims[1] = a->rows, key.a_dims[2] = a->cols;
    key.b_dims[0] = b->batch, key.b_dims[1] = b->rows, key.b_dims[2] = b->cols;
    for (int i = 0; i < 3; i++) {
        key.a_strides[i] = i == 0 && a->batch == 1 ? 0 : a->stride[i];
        key.b_strides[i] = i == 0 && b->batch == 1 ? 0 : b->stride[i];
    }
    key.accumulate = accumulate;
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;
    dnnl_memory_desc_t a_md = operand_md(a), b_md = operand_md(b);
    dnnl_memory_desc_t c_md = tsr_dnnl_md(3, (int64_t[]){batch, a->rows, b->cols}, dnnl_abc);
    dnnl_matmul_desc_t desc;
    TSR_DNNL_CHECK(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md));
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    if (accumulate) {
        dnnl_post_ops_t ops;
        TSR_DNNL_CHECK(dnnl_post_ops_create(&ops));
        TSR_DNNL_CHECK(dnnl_post_ops_append_sum(ops, 1.f));
        TSR_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, ctx->dnnl.engine, NULL));
    dnnl_primitive_attr_destroy(attr);
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                           (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
}

/* c (batch, a.rows, b.cols), contiguous, (=|+=) a . b. */
static void product(tsr_ctx *ctx, tsr_dtype dtype, int64_t batch, const operand *a,
                    const operand *b, void *c, bool accumulate)
{
    TSR_ASSERT(a->cols == b->rows);
    TSR_ASSERT((a->batch == 1 || a->batch == batch) && (b->batch == 1 || b->batch == batch));
    if (tsr_use_dnnl(ctx, dtype)) {
        tsr_dnnl_slot *slot = matmul_slot(ctx, batch, a, b, accumulate);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){a->data, b->data, c});
        return;
    }
    int64_t sa[3] = {a->batch == 1 ? 0 : a->stride[0], a->stride[1], a->stride[2]};
    int64_t sb[3] = {b->batch == 1 ? 0 : b->stride[0], b->stride[1], b->stride[2]};
    if (dtype == TSR_DTYPE_F64)
        tsr_ref_matmul_f64(batch, a->rows, a->cols, b->cols, a->data, sa, b->data, sb, c,
                           accumulate);
    else
        tsr_ref_matmul_f32(batch, a->rows, a->cols, b->cols, a->data, sa, b->data, sb, c,
                           accumulate);
}

/* grad (stored shape of an operand, `grad_batch` matrices of rows x cols)
 * (=|+=) x . y over `batch`. When the operand was broadcast (grad_batch 1 <
 * batch) the per-batch products go to the arena and are summed in order. */
static void product_into_grad(tsr_ctx *ctx, tsr_dtype dtype, int64_t batch, const operand *x,
                              const operand *y, tsr_tensor *grad, int64_t grad_batch,
                              bool accumulate)
{
    if (grad_batch == batch) {
        product(ctx, dtype, batch, x, y, grad->data, accumulate);
        return;
    }
    int64_t per = x->rows * y->cols;
    void *partial = tsr_arena_alloc(&ctx->arena, (size_t)(batch * per) * tsr_dtype_size(dtype));
    product(ctx, dtype, batch, x, y, partial, false);
    if (dtype == TSR_DTYPE_F64)
        tsr_ref_sum_batches_f64(partial, tsr_f64(grad), batch, per, accumulate);
    else
        tsr_ref_sum_batches_f32(partial, tsr_f32(grad), batch, per, accumulate);
}

typedef struct matmul_saved {
    tsr_tensor *a, *b, *c;
    bool transpose_a, transpose_b;
} matmul_saved;

/* The logical (batch, rows, cols) view of a stored (batch?, r, c) tensor,
 * transposed when `transpose` says so. */
static operand operand_of(const tsr_tensor *t, bool transpose)
{
    operand o;
    o.data = t->data;
    o.batch = t->ndim == 3 ? t->shape[0] : 1;
    o.rows = t->shape[t->ndim - 2];
    o.cols = t->shape[t->ndim - 1];
    o.stride[0] = o.rows * o.cols;
    o.stride[1] = o.cols;
    o.stride[2] = 1;
    return transpose ? operand_transposed(o) : o;
}

static void matmul_backward(tsr_ctx *ctx, void *saved_)
{
    matmul_saved *s = saved_;
    bool acc_a, acc_b;
    tsr_tensor *da = tsr_grad_acquire(ctx, s->a, TSR_GRAD_WRITE_ALL, &acc_a);
    tsr_tensor *db = tsr_grad_acquire(ctx, s->b, TSR_GRAD_WRITE_ALL, &acc_b);
    if (!da && !db) return;
    tsr_tensor *dc_tensor = tsr_grad_get(ctx, s->c);
    operand a = operand_of(s->a, s->transpose_a), b = operand_of(s->b, s->transpose_b);
    operand dc = operand_of(dc_tensor, false);
    int64_t batch = dc.batch;
    tsr_dtype dtype = s->c->dtype;
    /* With A, B the logical operands and C = A B: dA = dC B^T, dB = A^T dC; a
     * transposed operand is stored as the transpose, so its gradient is
     * (dC B^T)^T = B dC^T, or (A^T dC)^T = dC^T A. */
    if (da) {
        if (s->transpose_a) {
            operand dct = operand_transposed(dc);
            product_into_grad(ctx, dtype, batch, &b, &dct, da, a.batch, acc_a);
        } else {
            operand bt = operand_transposed(b);
            product_into_grad(ctx, dtype, batch, &dc, &bt, da, a.batch, acc_a);
        }
    }
    if (db) {
        if (s->transpose_b) {
            operand dct = operand_transposed(dc);
            product_into_grad(ctx, dtype, batch, &dct, &a, db, b.batch, acc_b);
        } else {
            operand at = operand_transposed(a);
            product_into_grad(ctx, dtype, batch, &at, &dc, db, b.batch, acc_b);
        }
    }
}

tsr_tensor *tsr_matmul(tsr_ctx *ctx, tsr_tensor *a, tsr_tensor *b, bool transpose_a,
                       bool transpose_b)
{
    char sa[96], sb[96];
    TSR_ASSERT_MSG(a->dtype == b->dtype && (a->dtype == TSR_DTYPE_F32 || a->dtype == TSR_DTYPE_F64),
                   "matmul of %s with %s", tsr_dtype_name(a->dtype), tsr_dtype_name(b->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(a) && tsr_tensor_is_contiguous(b));
    TSR_ASSERT_MSG((a->ndim == 2 || a->ndim == 3) && (b->ndim == 2 || b->ndim == 3),
                   "matmul of %s with %s: expected (B, M, K) and (B, K, P)",
                   tsr_tensor_shape_str(a, sa, sizeof sa), tsr_tensor_shape_str(b, sb, sizeof sb));
    operand oa = operand_of(a, transpose_a), ob = operand_of(b, transpose_b);
    TSR_ASSERT_MSG(oa.cols == ob.rows &&
                       (oa.batch == ob.batch || oa.batch == 1 || ob.batch == 1),
                   "matmul of %s%s with %s%s: inner sizes or batches differ",
                   tsr_tensor_shape_str(a, sa, sizeof sa), transpose_a ? "^T" : "",
                   tsr_tensor_shape_str(b, sb, sizeof sb), transpose_b ? "^T" : "");
    int64_t batch = oa.batch > ob.batch ? oa.batch : ob.batch;
    tsr_tensor *c;
    if (a->ndim == 2 && b->ndim == 2)
        c = tsr_ctx_tensor(ctx, a->dtype, 2, (int64_t[]){oa.rows, ob.cols});
    else
        c = tsr_ctx_tensor(ctx, a->dtype, 3, (int64_t[]){batch, oa.rows, ob.cols});
    product(ctx, a->dtype, batch, &oa, &ob, c->data, false);
    if (tsr_ctx_should_record(ctx, 2, (tsr_tensor *[]){a, b})) {
        matmul_saved *s = tsr_tape_push(ctx, c, matmul_backward, sizeof *s);
        s->a = a;
        s->b = b;
        s->c = c;
        s->transpose_a = transpose_a;
        s->transpose_b = transpose_b;
    }
    return c;
}
