/* ops_norm.c — softmax, log-softmax, layer norm and L2 normalisation.
 *
 * float32 softmax and log-softmax run oneDNN's softmax / logsoftmax
 * primitives over any axis of a plain tensor; layer norm runs oneDNN's
 * layer_normalization over the last axis (scale and shift as separate flags,
 * so gamma and beta are independently optional). L2 normalisation has only
 * the reference kernel: it is one pass over a few hundred values per row, and
 * oneDNN has no primitive for it short of composing a reduction with a binary
 * op. oneDNN's backward primitives overwrite their outputs, so an accumulating
 * gradient goes through an arena temporary.
 */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

/* First field of every cache key in this file (see ops_dense.c). */
#define NORM_KEY_FAMILY 0x4e4f524du /* "NORM" */

enum norm_op {
    OP_SOFTMAX_FWD = 1,
    OP_SOFTMAX_BWD,
    OP_LAYER_NORM_FWD,
    OP_LAYER_NORM_BWD,
};

/* A float32 destination for a oneDNN result: the gradient buffer itself when
 * it may be overwritten, else an arena temporary to be added afterwards. */
static float *dnnl_target(tsr_ctx *ctx, tsr_tensor *grad, bool accumulate, size_t numel)
{
    if (grad && !accumulate) return tsr_f32(grad);
    return tsr_arena_alloc(&ctx->arena, numel * sizeof(float));
}

static int normalize_axis(const tsr_tensor *x, int axis)
{
    int resolved = axis < 0 ? axis + x->ndim : axis;
    TSR_ASSERT_MSG(resolved >= 0 && resolved < x->ndim, "axis %d of a %d-dimensional tensor",
                   axis, x->ndim);
    return resolved;
}

/* x seen as (outer, len, inner) around `axis`. */
static void split_at_axis(const tsr_tensor *x, int axis, int64_t *outer, int64_t *len,
                          int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *len = x->shape[axis];
}

static dnnl_memory_desc_t plain_md(const tsr_tensor *x)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims, strides;
    for (int d = 0; d < x->ndim; d++) {
        dims[d] = x->shape[d];
        strides[d] = x->stride[d];
    }
    TSR_DNNL_CHECK(dnnl_memory_desc_init_by_strides(&md, x->ndim, dims, dnnl_f32, strides));
    return md;
}

/* ==== softmax and log-softmax =========================================== */

typedef struct softmax_key {
    uint32_t family, op;
    int ndim, axis, log_softmax, inference;
    int64_t dims[TSR_MAX_DIMS];
} softmax_key;

static void softmax_fwd_desc(const dnnl_memory_desc_t *md, bool log_softmax, bool inference,
                             int axis, dnnl_softmax_desc_t *soft, dnnl_logsoftmax_desc_t *logsoft)
{
    dnnl_prop_kind_t prop = inference ? dnnl_forward_inference : dnnl_forward_training;
    if (log_softmax)
        TSR_DNNL_CHECK(dnnl_logsoftmax_forward_desc_init(logsoft, prop, md, axis));
    else
        TSR_DNNL_CHECK(dnnl_softmax_forward_desc_init(soft, prop, md, axis));
}

static tsr_dnnl_slot *softmax_slot(tsr_ctx *ctx, int op, const tsr_tensor *x, int axis,
                                   bool log_softmax, bool inference)
{
    softmax_key key;
    memset(&key, 0, sizeof key);
    key.family = NORM_KEY_FAMILY;
    key.op = (uint32_t)op;
    key.ndim = x->ndim;
    key.axis = axis;
    key.log_softmax = log_softmax;
    key.inference = op == OP_SOFTMAX_FWD && inference;
    memcpy(key.dims, x->shape, (size_t)x->ndim * sizeof key.dims[0]);
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;

    dnnl_memory_desc_t md = plain_md(x);
    dnnl_softmax_desc_t soft;
    dnnl_logsoftmax_desc_t logsoft;
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd;
    softmax_fwd_desc(&md, log_softmax, key.inference, axis, &soft, &logsoft);
    const void *fwd_desc = log_softmax ? (const void *)&logsoft : (const void *)&soft;
    if (op == OP_SOFTMAX_FWD) {
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, fwd_desc, attr, ctx->dnnl.engine, NULL));
        dnnl_primitive_attr_destroy(attr);
        return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 2,
                               (int[]){DNNL_ARG_SRC, DNNL_ARG_DST});
    }
    dnnl_primitive_desc_t hint;
    TSR_DNNL_CHECK(dnnl_primitive_desc_create(&hint, fwd_desc, NULL, ctx->dnnl.engine, NULL));
    if (log_softmax) {
        TSR_DNNL_CHECK(dnnl_logsoftmax_backward_desc_init(&logsoft, &md, &md, axis));
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &logsoft, attr, ctx->dnnl.engine, hint));
    } else {
        TSR_DNNL_CHECK(dnnl_softmax_backward_desc_init(&soft, &md, &md, axis));
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &soft, attr, ctx->dnnl.engine, hint));
    }
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 3,
                           (int[]){DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC});
}

typedef struct softmax_saved {
    tsr_tensor *x, *y;
    int axis;
    bool log_softmax;
} softmax_saved;

/* Whether oneDNN's backward for this softmax is its reference implementation
 * ("ref:any"), which the plain-C kernel beats: oneDNN 2.6 on AVX2 has no
 * other for the Soft MoE's (32, 121, 124) dispatch and combine softmaxes (6-17
 * ms at batch 32, 1 thread, against 1-3 ms for tsr_ref_softmax_bwd). */
static bool softmax_bwd_is_reference(tsr_ctx *ctx, const softmax_saved *s)
{
    tsr_dnnl_slot *slot = softmax_slot(ctx, OP_SOFTMAX_BWD, s->y, s->axis, s->log_softmax, false);
    const char *impl = NULL;
    TSR_DNNL_CHECK(dnnl_primitive_desc_query(slot->pd, dnnl_query_impl_info_str, 0, &impl));
    return impl && !strncmp(impl, "ref", 3);
}

static void softmax_backward(tsr_ctx *ctx, void *saved_)
{
    softmax_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    int64_t outer, len, inner;
    split_at_axis(s->y, s->axis, &outer, &len, &inner);
    if (s->y->dtype == TSR_DTYPE_F64) {
        tsr_ref_softmax_bwd_f64(tsr_f64(s->y), tsr_f64(dy), tsr_f64(dx), outer, len, inner,
                                s->log_softmax, accumulate);
    } else if (tsr_use_dnnl(ctx, s->y->dtype) &&
               (ctx->backend == TSR_BACKEND_DNNL_ALL || !softmax_bwd_is_reference(ctx, s))) {
        int64_t n = tsr_tensor_numel(s->y);
        float *target = dnnl_target(ctx, dx, accumulate, (size_t)n);
        tsr_dnnl_slot *slot =
            softmax_slot(ctx, OP_SOFTMAX_BWD, s->y, s->axis, s->log_softmax, false);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){s->y->data, dy->data, target});
        if (accumulate) tsr_ref_add_into_f32(tsr_f32(dx), target, n);
    } else {
        tsr_ref_softmax_bwd_f32(tsr_f32(s->y), tsr_f32(dy), tsr_f32(dx), outer, len, inner,
                                s->log_softmax, accumulate);
    }
}

static tsr_tensor *softmax_op(tsr_ctx *ctx, tsr_tensor *x, int axis, bool log_softmax)
{
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "%s of %s",
                   log_softmax ? "log_softmax" : "softmax", tsr_dtype_name(x->dtype));
    axis = normalize_axis(x, axis);
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim, x->shape);
    bool record = tsr_ctx_should_record(ctx, 1, &x);
    int64_t outer, len, inner;
    split_at_axis(x, axis, &outer, &len, &inner);
    if (x->dtype == TSR_DTYPE_F64) {
        tsr_ref_softmax_fwd_f64(tsr_f64(x), tsr_f64(y), outer, len, inner, log_softmax);
    } else if (tsr_use_dnnl(ctx, x->dtype)) {
        tsr_dnnl_slot *slot = softmax_slot(ctx, OP_SOFTMAX_FWD, x, axis, log_softmax, !record);
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, (void *[]){x->data, y->data});
    } else {
        tsr_ref_softmax_fwd_f32(tsr_f32(x), tsr_f32(y), outer, len, inner, log_softmax);
    }
    if (record) {
        softmax_saved *s = tsr_tape_push(ctx, y, softmax_backward, sizeof *s);
        s->x = x;
        s->y = y;
        s->axis = axis;
        s->log_softmax = log_softmax;
    }
    return y;
}

tsr_tensor *tsr_softmax(tsr_ctx *ctx, tsr_tensor *x, int axis)
{
    return softmax_op(ctx, x, axis, false);
}

tsr_tensor *tsr_log_softmax(tsr_ctx *ctx, tsr_tensor *x, int axis)
{
    return softmax_op(ctx, x, axis, true);
}

/* ==== layer norm ======================================================== */

typedef struct layer_norm_key {
    uint32_t family, op;
    int64_t rows, width;
    float eps;
    unsigned flags;
    int inference;
} layer_norm_key;

static void layer_norm_desc(dnnl_layer_normalization_desc_t *desc, const layer_norm_key *k,
                            bool forward)
{
    dnnl_memory_desc_t md = tsr_dnnl_md(2, (int64_t[]){k->rows, k->width}, dnnl_ab);
    if (forward) {
        TSR_DNNL_CHECK(dnnl_layer_normalization_forward_desc_init(
            desc, k->inference ? dnnl_forward_inference : dnnl_forward_training, &md, NULL, k->eps,
            k->flags));
    } else {
        /* dnnl_backward also gives the scale and shift gradients. */
        TSR_DNNL_CHECK(dnnl_layer_normalization_backward_desc_init(
            desc, k->flags ? dnnl_backward : dnnl_backward_data, &md, &md, NULL, k->eps, k->flags));
    }
}

static tsr_dnnl_slot *layer_norm_slot(tsr_ctx *ctx, int op, int64_t rows, int64_t width,
                                      double eps, bool has_gamma, bool has_beta, bool inference)
{
    layer_norm_key key;
    memset(&key, 0, sizeof key);
    key.family = NORM_KEY_FAMILY;
    key.op = (uint32_t)op;
    key.rows = rows;
    key.width = width;
    key.eps = (float)eps;
    key.flags = (has_gamma ? dnnl_use_scale : 0u) | (has_beta ? dnnl_use_shift : 0u);
    key.inference = op == OP_LAYER_NORM_FWD && inference;
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;

    int args[9], nargs = 0;
    dnnl_layer_normalization_desc_t fwd_desc;
    layer_norm_desc(&fwd_desc, &key, true);
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd;
    if (op == OP_LAYER_NORM_FWD) {
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &fwd_desc, attr, ctx->dnnl.engine, NULL));
        args[nargs++] = DNNL_ARG_SRC;
        args[nargs++] = DNNL_ARG_DST;
        if (!key.inference) {
            args[nargs++] = DNNL_ARG_MEAN;
            args[nargs++] = DNNL_ARG_VARIANCE;
        }
        if (has_gamma) args[nargs++] = DNNL_ARG_SCALE;
        if (has_beta) args[nargs++] = DNNL_ARG_SHIFT;
    } else {
        dnnl_primitive_desc_t hint;
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&hint, &fwd_desc, NULL, ctx->dnnl.engine, NULL));
        dnnl_layer_normalization_desc_t bwd_desc;
        layer_norm_desc(&bwd_desc, &key, false);
        TSR_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &bwd_desc, attr, ctx->dnnl.engine, hint));
        dnnl_primitive_desc_destroy(hint);
        args[nargs++] = DNNL_ARG_SRC;
        args[nargs++] = DNNL_ARG_MEAN;
        args[nargs++] = DNNL_ARG_VARIANCE;
        args[nargs++] = DNNL_ARG_DIFF_DST;
        args[nargs++] = DNNL_ARG_DIFF_SRC;
        if (has_gamma) {
            args[nargs++] = DNNL_ARG_SCALE;
            args[nargs++] = DNNL_ARG_DIFF_SCALE;
        }
        if (has_beta) {
            /* oneDNN's backward lists the shift among its inputs and
             * refuses to run without it. */
            args[nargs++] = DNNL_ARG_SHIFT;
            args[nargs++] = DNNL_ARG_DIFF_SHIFT;
        }
    }
    dnnl_primitive_attr_destroy(attr);
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, nargs, args);
}

typedef struct layer_norm_saved {
    tsr_tensor *x, *gamma, *beta, *y;
    void *mean, *variance; /* (rows), x's dtype, in the arena */
    double eps;
} layer_norm_saved;

static void layer_norm_backward(tsr_ctx *ctx, void *saved_)
{
    layer_norm_saved *s = saved_;
    bool acc_x, acc_g, acc_b;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &acc_x);
    tsr_tensor *dgamma = tsr_grad_acquire(ctx, s->gamma, TSR_GRAD_WRITE_ALL, &acc_g);
    tsr_tensor *dbeta = tsr_grad_acquire(ctx, s->beta, TSR_GRAD_WRITE_ALL, &acc_b);
    if (!dx && !dgamma && !dbeta) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    int64_t width = s->x->shape[s->x->ndim - 1];
    int64_t rows = tsr_tensor_numel(s->x) / width;

    if (s->x->dtype == TSR_DTYPE_F64) {
        tsr_ref_layer_norm_bwd_f64(tsr_f64(s->x), s->gamma ? tsr_f64(s->gamma) : NULL, s->mean,
                                   s->variance, tsr_f64(dy), dx ? tsr_f64(dx) : NULL,
                                   dgamma ? tsr_f64(dgamma) : NULL, dbeta ? tsr_f64(dbeta) : NULL,
                                   rows, width, s->eps, acc_x, acc_g, acc_b);
        return;
    }
    if (!tsr_use_dnnl(ctx, s->x->dtype)) {
        tsr_ref_layer_norm_bwd_f32(tsr_f32(s->x), s->gamma ? tsr_f32(s->gamma) : NULL, s->mean,
                                   s->variance, tsr_f32(dy), dx ? tsr_f32(dx) : NULL,
                                   dgamma ? tsr_f32(dgamma) : NULL, dbeta ? tsr_f32(dbeta) : NULL,
                                   rows, width, s->eps, acc_x, acc_g, acc_b);
        return;
    }

    /* The primitive writes every gradient its flags ask for, wanted or not. */
    float *target_x = dnnl_target(ctx, dx, acc_x, (size_t)(rows * width));
    float *target_g = s->gamma ? dnnl_target(ctx, dgamma, acc_g, (size_t)width) : NULL;
    float *target_b = s->beta ? dnnl_target(ctx, dbeta, acc_b, (size_t)width) : NULL;
    tsr_dnnl_slot *slot = layer_norm_slot(ctx, OP_LAYER_NORM_BWD, rows, width, s->eps,
                                          s->gamma != NULL, s->beta != NULL, false);
    void *handles[9];
    int n = 0;
    handles[n++] = s->x->data;
    handles[n++] = s->mean;
    handles[n++] = s->variance;
    handles[n++] = dy->data;
    handles[n++] = target_x;
    if (s->gamma) {
        handles[n++] = s->gamma->data;
        handles[n++] = target_g;
    }
    if (s->beta) {
        handles[n++] = s->beta->data;
        handles[n++] = target_b;
    }
    tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, handles);
    if (dx && acc_x) tsr_ref_add_into_f32(tsr_f32(dx), target_x, rows * width);
    if (dgamma && acc_g) tsr_ref_add_into_f32(tsr_f32(dgamma), target_g, width);
    if (dbeta && acc_b) tsr_ref_add_into_f32(tsr_f32(dbeta), target_b, width);
}

tsr_tensor *tsr_layer_norm(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *gamma, tsr_tensor *beta,
                           double eps)
{
    char sx[96], sp[96];
    TSR_ASSERT(x->ndim >= 1 && tsr_tensor_is_contiguous(x));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "layer_norm of %s",
                   tsr_dtype_name(x->dtype));
    int64_t width = x->shape[x->ndim - 1];
    int64_t rows = tsr_tensor_numel(x) / width;
    tsr_tensor *params[2] = {gamma, beta};
    for (int i = 0; i < 2; i++) {
        tsr_tensor *p = params[i];
        if (!p) continue;
        TSR_ASSERT_MSG(p->ndim == 1 && p->shape[0] == width && p->dtype == x->dtype &&
                           tsr_tensor_is_contiguous(p),
                       "layer_norm %s %s for x %s", i ? "beta" : "gamma",
                       tsr_tensor_shape_str(p, sp, sizeof sp),
                       tsr_tensor_shape_str(x, sx, sizeof sx));
    }
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim, x->shape);
    bool record = tsr_ctx_should_record(ctx, 3, (tsr_tensor *[]){x, gamma, beta});
    size_t elt = tsr_dtype_size(x->dtype);
    void *mean = record ? tsr_arena_alloc(&ctx->arena, (size_t)rows * elt) : NULL;
    void *variance = record ? tsr_arena_alloc(&ctx->arena, (size_t)rows * elt) : NULL;

    if (x->dtype == TSR_DTYPE_F64) {
        tsr_ref_layer_norm_fwd_f64(tsr_f64(x), gamma ? tsr_f64(gamma) : NULL,
                                   beta ? tsr_f64(beta) : NULL, tsr_f64(y), mean, variance, rows,
                                   width, eps);
    } else if (tsr_use_dnnl(ctx, x->dtype)) {
        tsr_dnnl_slot *slot = layer_norm_slot(ctx, OP_LAYER_NORM_FWD, rows, width, eps,
                                              gamma != NULL, beta != NULL, !record);
        void *handles[6];
        int n = 0;
        handles[n++] = x->data;
        handles[n++] = y->data;
        if (record) {
            handles[n++] = mean;
            handles[n++] = variance;
        }
        if (gamma) handles[n++] = gamma->data;
        if (beta) handles[n++] = beta->data;
        tsr_dnnl_execute(&ctx->dnnl, slot, &ctx->arena, handles);
    } else {
        tsr_ref_layer_norm_fwd_f32(tsr_f32(x), gamma ? tsr_f32(gamma) : NULL,
                                   beta ? tsr_f32(beta) : NULL, tsr_f32(y), mean, variance, rows,
                                   width, eps);
    }

    if (record) {
        layer_norm_saved *s = tsr_tape_push(ctx, y, layer_norm_backward, sizeof *s);
        s->x = x;
        s->gamma = gamma;
        s->beta = beta;
        s->y = y;
        s->mean = mean;
        s->variance = variance;
        s->eps = eps;
    }
    return y;
}

/* ==== L2 normalisation (reference kernel only) ========================== */

typedef struct l2_saved {
    tsr_tensor *x, *y;
    int axis;
    double eps;
} l2_saved;

static void l2_normalize_backward(tsr_ctx *ctx, void *saved_)
{
    l2_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    int64_t outer, len, inner;
    split_at_axis(s->x, s->axis, &outer, &len, &inner);
    if (s->x->dtype == TSR_DTYPE_F64)
        tsr_ref_l2_normalize_bwd_f64(tsr_f64(s->x), tsr_f64(dy), tsr_f64(dx), outer, len, inner,
                                     s->eps, accumulate);
    else
        tsr_ref_l2_normalize_bwd_f32(tsr_f32(s->x), tsr_f32(dy), tsr_f32(dx), outer, len, inner,
                                     s->eps, accumulate);
}

tsr_tensor *tsr_l2_normalize(tsr_ctx *ctx, tsr_tensor *x, int axis, double eps)
{
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    TSR_ASSERT_MSG(x->dtype == TSR_DTYPE_F32 || x->dtype == TSR_DTYPE_F64, "l2_normalize of %s",
                   tsr_dtype_name(x->dtype));
    axis = normalize_axis(x, axis);
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim, x->shape);
    int64_t outer, len, inner;
    split_at_axis(x, axis, &outer, &len, &inner);
    if (x->dtype == TSR_DTYPE_F64)
        tsr_ref_l2_normalize_fwd_f64(tsr_f64(x), tsr_f64(y), outer, len, inner, eps);
    else
        tsr_ref_l2_normalize_fwd_f32(tsr_f32(x), tsr_f32(y), outer, len, inner, eps);
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        l2_saved *s = tsr_tape_push(ctx, y, l2_normalize_backward, sizeof *s);
        s->x = x;
        s->y = y;
        s->axis = axis;
        s->eps = eps;
    }
    return y;
}
