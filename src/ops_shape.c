/* ops_shape.c — reshape, flatten, permute, concat and split on the tape. */
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "tessera/ops.h"
#include "tessera/status.h"

static bool is_float(tsr_dtype dtype) { return dtype == TSR_DTYPE_F32 || dtype == TSR_DTYPE_F64; }

/* dst (=|+=) src, n elements of a float dtype. */
static void copy_grad(tsr_dtype dtype, const void *src, void *dst, int64_t n, bool accumulate)
{
    if (dtype == TSR_DTYPE_F64) tsr_ref_copy_f64(src, dst, n, accumulate);
    else tsr_ref_copy_f32(src, dst, n, accumulate);
}

static void copy_rows(tsr_dtype dtype, const void *src, int64_t src_stride, void *dst,
                      int64_t dst_stride, int64_t rows, int64_t cols, bool accumulate)
{
    if (dtype == TSR_DTYPE_F64)
        tsr_ref_copy_rows_f64(src, src_stride, dst, dst_stride, rows, cols, accumulate);
    else
        tsr_ref_copy_rows_f32(src, src_stride, dst, dst_stride, rows, cols, accumulate);
}

static int normalize_axis(int axis, int ndim, const char *op)
{
    int a = axis < 0 ? axis + ndim : axis;
    TSR_ASSERT_MSG(a >= 0 && a < ndim, "%s: axis %d of a %d-dimensional tensor", op, axis, ndim);
    return a;
}

/* ==== reshape and flatten ================================================= */

typedef struct reshape_saved {
    tsr_tensor *x, *y;
} reshape_saved;

/* y shares x's data; its gradient is a separate buffer passed through. */
static void reshape_backward(tsr_ctx *ctx, void *saved_)
{
    reshape_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    copy_grad(s->x->dtype, dy->data, dx->data, tsr_tensor_numel(s->x), accumulate);
}

tsr_tensor *tsr_reshape(tsr_ctx *ctx, tsr_tensor *x, int ndim, const int64_t *shape)
{
    /* Any dtype: reshaping uint8 observations or int32 indices is a view too. */
    tsr_tensor *y = tsr_arena_alloc(&ctx->arena, sizeof *y);
    *y = tsr_tensor_reshape(x, ndim, shape); /* asserts contiguity and the count */
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        TSR_ASSERT(is_float(x->dtype));
        reshape_saved *s = tsr_tape_push(ctx, y, reshape_backward, sizeof *s);
        *s = (reshape_saved){.x = x, .y = y};
    }
    return y;
}

tsr_tensor *tsr_flatten(tsr_ctx *ctx, tsr_tensor *x)
{
    TSR_ASSERT_MSG(x->ndim >= 1, "flatten of a scalar");
    int64_t rest = 1;
    for (int i = 1; i < x->ndim; i++) rest *= x->shape[i];
    return tsr_reshape(ctx, x, 2, (int64_t[]){x->shape[0], rest});
}

/* ==== permute ============================================================= */

typedef struct permute_key {
    char family[16]; /* "shape/permute": cannot equal another op's key */
    int ndim;
    int64_t shape[TSR_MAX_DIMS];
    int64_t src_stride[TSR_MAX_DIMS];
} permute_key;

/* A oneDNN reorder from a strided view (dims `shape`, strides `src_stride`)
 * into the plain row-major layout of `shape`. */
static tsr_dnnl_slot *permute_slot(tsr_ctx *ctx, int ndim, const int64_t *shape,
                                   const int64_t *src_stride)
{
    permute_key key;
    memset(&key, 0, sizeof key);
    strncpy(key.family, "shape/permute", sizeof key.family - 1);
    key.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        key.shape[d] = shape[d];
        key.src_stride[d] = src_stride[d];
    }
    tsr_dnnl_slot *slot = tsr_dnnl_find(&ctx->dnnl, &key, sizeof key);
    if (slot) return slot;
    dnnl_dims_t dims, strides, plain;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        dims[d] = shape[d];
        strides[d] = src_stride[d];
        plain[d] = stride;
        stride *= shape[d];
    }
    dnnl_memory_desc_t src, dst;
    TSR_DNNL_CHECK(dnnl_memory_desc_init_by_strides(&src, ndim, dims, dnnl_f32, strides));
    TSR_DNNL_CHECK(dnnl_memory_desc_init_by_strides(&dst, ndim, dims, dnnl_f32, plain));
    dnnl_primitive_attr_t attr = tsr_dnnl_attr();
    dnnl_primitive_desc_t pd;
    TSR_DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, &src, ctx->dnnl.engine, &dst,
                                                      ctx->dnnl.engine, attr));
    dnnl_primitive_attr_destroy(attr);
    return tsr_dnnl_insert(&ctx->dnnl, &key, sizeof key, pd, 2,
                           (int[]){DNNL_ARG_FROM, DNNL_ARG_TO});
}

/* y (contiguous, `shape`) (=|+=) the view of x with strides `src_stride`.
 * float32 overwrites go through the oneDNN reorder: 1.2-2x faster than the
 * reference loop on token transposes (32, 121, 64) and NHWC -> NCHW of
 * (32, 11, 11, 64) (bench/bench_eltwise: 32 vs 63 us at 2 threads). */
static void permute_copy(tsr_ctx *ctx, tsr_dtype dtype, const void *x, void *y, int ndim,
                         const int64_t *shape, const int64_t *src_stride, bool accumulate)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    if (n == 0) return;
    if (dtype == TSR_DTYPE_F64)
        tsr_ref_permute_f64(x, y, ndim, shape, src_stride, accumulate);
    else if (tsr_use_dnnl(ctx, dtype) && !accumulate && ndim > 0)
        tsr_dnnl_execute(&ctx->dnnl, permute_slot(ctx, ndim, shape, src_stride), &ctx->arena,
                         (void *[]){(void *)x, y});
    else
        tsr_ref_permute_f32(x, y, ndim, shape, src_stride, accumulate);
}

typedef struct permute_saved {
    tsr_tensor *x, *y;
    int order[TSR_MAX_DIMS];
} permute_saved;

static void permute_backward(tsr_ctx *ctx, void *saved_)
{
    permute_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    /* dx[i] = dy[j] with j_k = i_order[k]: x's dim d is y's dim k where
     * order[k] = d, so walking dx reads dy with stride dy.stride[k]. */
    int64_t stride[TSR_MAX_DIMS];
    for (int k = 0; k < s->y->ndim; k++) stride[s->order[k]] = dy->stride[k];
    permute_copy(ctx, s->x->dtype, dy->data, dx->data, s->x->ndim, s->x->shape, stride,
                 accumulate);
}

tsr_tensor *tsr_permute(tsr_ctx *ctx, tsr_tensor *x, const int *order)
{
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    TSR_ASSERT_MSG(is_float(x->dtype), "permute of %s", tsr_dtype_name(x->dtype));
    tsr_tensor view = tsr_tensor_permute(x, order); /* validates the order */
    tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim, view.shape);
    permute_copy(ctx, x->dtype, x->data, y->data, x->ndim, view.shape, view.stride, false);
    if (tsr_ctx_should_record(ctx, 1, &x)) {
        permute_saved *s = tsr_tape_push(ctx, y, permute_backward, sizeof *s);
        s->x = x;
        s->y = y;
        for (int d = 0; d < x->ndim; d++) s->order[d] = order[d];
    }
    return y;
}

/* ==== concat and split ==================================================== */

/* Along `axis`, a tensor is (outer, cols) rows with cols = shape[axis] * inner. */
static void axis_split_sizes(const tsr_tensor *t, int axis, int64_t *outer, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= t->shape[d];
    for (int d = axis + 1; d < t->ndim; d++) *inner *= t->shape[d];
}

typedef struct concat_saved {
    tsr_tensor *y;
    int count;
    int64_t outer, total; /* y as (outer, total) rows */
    tsr_tensor *inputs[]; /* count */
} concat_saved;

static void concat_backward(tsr_ctx *ctx, void *saved_)
{
    concat_saved *s = saved_;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    size_t elem = tsr_dtype_size(s->y->dtype);
    int64_t offset = 0;
    for (int i = 0; i < s->count; i++) {
        tsr_tensor *x = s->inputs[i];
        int64_t cols = s->outer ? tsr_tensor_numel(x) / s->outer : 0;
        bool accumulate;
        tsr_tensor *dx = tsr_grad_acquire(ctx, x, TSR_GRAD_WRITE_ALL, &accumulate);
        if (dx && cols > 0)
            copy_rows(x->dtype, (char *)dy->data + (size_t)offset * elem, s->total, dx->data, cols,
                      s->outer, cols, accumulate);
        offset += cols;
    }
}

tsr_tensor *tsr_concat(tsr_ctx *ctx, tsr_tensor *const *inputs, int count, int axis)
{
    TSR_ASSERT_MSG(count >= 1, "concat of %d tensors", count);
    const tsr_tensor *first = inputs[0];
    axis = normalize_axis(axis, first->ndim, "concat");
    int64_t shape[TSR_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[axis] = 0;
    for (int i = 0; i < count; i++) {
        const tsr_tensor *x = inputs[i];
        char s0[96], si[96];
        bool match = x->ndim == first->ndim && x->dtype == first->dtype;
        for (int d = 0; match && d < x->ndim; d++) match = d == axis || x->shape[d] == first->shape[d];
        TSR_ASSERT_MSG(match, "concat along axis %d of %s %s and %s %s", axis,
                       tsr_dtype_name(first->dtype), tsr_tensor_shape_str(first, s0, sizeof s0),
                       tsr_dtype_name(x->dtype), tsr_tensor_shape_str(x, si, sizeof si));
        TSR_ASSERT(tsr_tensor_is_contiguous(x));
        shape[axis] += x->shape[axis];
    }
    TSR_ASSERT_MSG(is_float(first->dtype), "concat of %s", tsr_dtype_name(first->dtype));
    tsr_tensor *y = tsr_ctx_tensor(ctx, first->dtype, first->ndim, shape);
    int64_t outer, inner;
    axis_split_sizes(y, axis, &outer, &inner);
    int64_t total = shape[axis] * inner;
    size_t elem = tsr_dtype_size(y->dtype);
    int64_t offset = 0;
    for (int i = 0; i < count; i++) {
        int64_t cols = inputs[i]->shape[axis] * inner;
        if (cols > 0 && outer > 0)
            copy_rows(y->dtype, inputs[i]->data, cols, (char *)y->data + (size_t)offset * elem,
                      total, outer, cols, false);
        offset += cols;
    }
    if (tsr_ctx_should_record(ctx, count, inputs)) {
        concat_saved *s = tsr_tape_push(ctx, y, concat_backward,
                                        sizeof *s + (size_t)count * sizeof s->inputs[0]);
        s->y = y;
        s->count = count;
        s->outer = outer;
        s->total = total;
        for (int i = 0; i < count; i++) s->inputs[i] = inputs[i];
    }
    return y;
}

typedef struct split_saved {
    tsr_tensor *x, *y;
    int64_t outer, offset, cols, total; /* y's block of x's (outer, total) rows */
} split_saved;

/* One entry per output: each writes its own columns of dx, hence WRITE_SOME. */
static void split_backward(tsr_ctx *ctx, void *saved_)
{
    split_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->x, TSR_GRAD_WRITE_SOME, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    size_t elem = tsr_dtype_size(s->x->dtype);
    copy_rows(s->x->dtype, dy->data, s->cols, (char *)dx->data + (size_t)s->offset * elem,
              s->total, s->outer, s->cols, accumulate);
}

void tsr_split(tsr_ctx *ctx, tsr_tensor *x, int axis, const int64_t *sizes, int count,
               tsr_tensor **outputs)
{
    TSR_ASSERT_MSG(count >= 1, "split into %d tensors", count);
    TSR_ASSERT(tsr_tensor_is_contiguous(x));
    TSR_ASSERT_MSG(is_float(x->dtype), "split of %s", tsr_dtype_name(x->dtype));
    axis = normalize_axis(axis, x->ndim, "split");
    int64_t sum = 0;
    for (int i = 0; i < count; i++) {
        TSR_ASSERT_MSG(sizes[i] >= 0, "split size %lld", (long long)sizes[i]);
        sum += sizes[i];
    }
    char sx[96];
    TSR_ASSERT_MSG(sum == x->shape[axis], "split of %s along axis %d into sizes summing to %lld",
                   tsr_tensor_shape_str(x, sx, sizeof sx), axis, (long long)sum);
    int64_t outer, inner;
    axis_split_sizes(x, axis, &outer, &inner);
    int64_t total = x->shape[axis] * inner;
    size_t elem = tsr_dtype_size(x->dtype);
    bool record = tsr_ctx_should_record(ctx, 1, &x);
    int64_t offset = 0;
    for (int i = 0; i < count; i++) {
        int64_t shape[TSR_MAX_DIMS];
        memcpy(shape, x->shape, sizeof shape);
        shape[axis] = sizes[i];
        tsr_tensor *y = tsr_ctx_tensor(ctx, x->dtype, x->ndim, shape);
        int64_t cols = sizes[i] * inner;
        if (cols > 0 && outer > 0)
            copy_rows(x->dtype, (char *)x->data + (size_t)offset * elem, total, y->data, cols,
                      outer, cols, false);
        if (record) {
            split_saved *s = tsr_tape_push(ctx, y, split_backward, sizeof *s);
            *s = (split_saved){.x = x, .y = y, .outer = outer, .offset = offset, .cols = cols,
                               .total = total};
        }
        outputs[i] = y;
        offset += cols;
    }
}
