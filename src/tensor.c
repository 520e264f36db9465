/* tensor.c — views, shapes, element access. */
#include "tessera/tensor.h"

#include <stdio.h>
#include <string.h>

#include "tessera/rng.h"
#include "tessera/status.h"

size_t tsr_dtype_size(tsr_dtype dtype)
{
    switch (dtype) {
    case TSR_DTYPE_F32: return 4;
    case TSR_DTYPE_F64: return 8;
    case TSR_DTYPE_U8: return 1;
    case TSR_DTYPE_I32: return 4;
    }
    TSR_ASSERT_MSG(0, "unknown dtype %d", (int)dtype);
}

const char *tsr_dtype_name(tsr_dtype dtype)
{
    switch (dtype) {
    case TSR_DTYPE_F32: return "float32";
    case TSR_DTYPE_F64: return "float64";
    case TSR_DTYPE_U8: return "uint8";
    case TSR_DTYPE_I32: return "int32";
    }
    return "unknown";
}

tsr_tensor tsr_tensor_view(void *data, tsr_dtype dtype, int ndim, const int64_t *shape)
{
    TSR_ASSERT_MSG(ndim >= 0 && ndim <= TSR_MAX_DIMS, "ndim %d", ndim);
    tsr_tensor t = {.data = data, .dtype = dtype, .ndim = ndim};
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        TSR_ASSERT_MSG(shape[i] >= 0, "dimension %d has negative size %lld", i,
                       (long long)shape[i]);
        t.shape[i] = shape[i];
        t.stride[i] = stride;
        stride *= shape[i];
    }
    return t;
}

tsr_tensor *tsr_tensor_new(tsr_dtype dtype, int ndim, const int64_t *shape)
{
    tsr_tensor *t = tsr_malloc(sizeof *t);
    *t = tsr_tensor_view(NULL, dtype, ndim, shape);
    size_t bytes = tsr_tensor_nbytes(t);
    t->data = tsr_aligned_alloc(64, bytes);
    memset(t->data, 0, bytes);
    t->owns_data = true;
    return t;
}

void tsr_tensor_free(tsr_tensor *t)
{
    if (!t) return;
    if (t->owns_data) tsr_free(t->data);
    tsr_free(t);
}

int64_t tsr_tensor_numel(const tsr_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tsr_tensor_nbytes(const tsr_tensor *t)
{
    return (size_t)tsr_tensor_numel(t) * tsr_dtype_size(t->dtype);
}

bool tsr_tensor_is_contiguous(const tsr_tensor *t)
{
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != stride) return false;
        stride *= t->shape[i];
    }
    return true;
}

bool tsr_tensor_same_shape(const tsr_tensor *a, const tsr_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *tsr_tensor_shape_str(const tsr_tensor *t, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, size - used, "(");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld",
                                 (long long)t->shape[i]);
    if (used < size) snprintf(buf + used, size - used, t->ndim == 1 ? ",)" : ")");
    return buf;
}

tsr_tensor tsr_tensor_reshape(const tsr_tensor *t, int ndim, const int64_t *shape)
{
    TSR_ASSERT_MSG(tsr_tensor_is_contiguous(t), "reshape of a strided view");
    int64_t resolved[TSR_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        resolved[i] = shape[i];
        if (shape[i] == -1) {
            TSR_ASSERT_MSG(infer < 0, "reshape with two -1 dimensions");
            infer = i;
        } else {
            known *= shape[i];
        }
    }
    int64_t numel = tsr_tensor_numel(t);
    if (infer >= 0) {
        TSR_ASSERT_MSG(known > 0 && numel % known == 0, "cannot infer dimension");
        resolved[infer] = numel / known;
        known *= resolved[infer];
    }
    TSR_ASSERT_MSG(known == numel, "reshape from %lld to %lld elements", (long long)numel,
                   (long long)known);
    tsr_tensor v = tsr_tensor_view(t->data, t->dtype, ndim, resolved);
    return v;
}

tsr_tensor tsr_tensor_slice(const tsr_tensor *t, int dim, int64_t start, int64_t length)
{
    TSR_ASSERT_MSG(dim >= 0 && dim < t->ndim, "slice dim %d of %d", dim, t->ndim);
    TSR_ASSERT_MSG(start >= 0 && length >= 0 && start + length <= t->shape[dim],
                   "slice [%lld, %lld) of size %lld", (long long)start,
                   (long long)(start + length), (long long)t->shape[dim]);
    tsr_tensor v = *t;
    v.data = (char *)t->data + (size_t)(start * t->stride[dim]) * tsr_dtype_size(t->dtype);
    v.shape[dim] = length;
    v.grad = NULL;
    v.grad_epoch = 0;
    v.requires_grad = false;
    v.owns_data = false;
    return v;
}

tsr_tensor tsr_tensor_permute(const tsr_tensor *t, const int *order)
{
    tsr_tensor v = *t;
    bool seen[TSR_MAX_DIMS] = {0};
    for (int i = 0; i < t->ndim; i++) {
        TSR_ASSERT_MSG(order[i] >= 0 && order[i] < t->ndim && !seen[order[i]],
                       "permute order is not a permutation");
        seen[order[i]] = true;
        v.shape[i] = t->shape[order[i]];
        v.stride[i] = t->stride[order[i]];
    }
    v.grad = NULL;
    v.grad_epoch = 0;
    v.requires_grad = false;
    v.owns_data = false;
    return v;
}

size_t tsr_tensor_offset(const tsr_tensor *t, const int64_t *index)
{
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) {
        TSR_ASSERT_MSG(index[i] >= 0 && index[i] < t->shape[i], "index %lld out of %lld in dim %d",
                       (long long)index[i], (long long)t->shape[i], i);
        off += index[i] * t->stride[i];
    }
    return (size_t)off;
}

double tsr_tensor_get(const tsr_tensor *t, const int64_t *index)
{
    size_t off = tsr_tensor_offset(t, index);
    switch (t->dtype) {
    case TSR_DTYPE_F32: return ((const float *)t->data)[off];
    case TSR_DTYPE_F64: return ((const double *)t->data)[off];
    case TSR_DTYPE_U8: return ((const uint8_t *)t->data)[off];
    case TSR_DTYPE_I32: return ((const int32_t *)t->data)[off];
    }
    return 0.0;
}

void tsr_tensor_set(tsr_tensor *t, const int64_t *index, double value)
{
    size_t off = tsr_tensor_offset(t, index);
    switch (t->dtype) {
    case TSR_DTYPE_F32: ((float *)t->data)[off] = (float)value; break;
    case TSR_DTYPE_F64: ((double *)t->data)[off] = value; break;
    case TSR_DTYPE_U8: ((uint8_t *)t->data)[off] = (uint8_t)value; break;
    case TSR_DTYPE_I32: ((int32_t *)t->data)[off] = (int32_t)value; break;
    }
}

/* Advances a multi-index in row-major order; returns false after the last. */
static bool next_index(int64_t *index, const tsr_tensor *t)
{
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (++index[i] < t->shape[i]) return true;
        index[i] = 0;
    }
    return false;
}

void tsr_tensor_copy(tsr_tensor *dst, const tsr_tensor *src)
{
    TSR_ASSERT(tsr_tensor_same_shape(dst, src));
    if (dst->dtype == src->dtype && tsr_tensor_is_contiguous(dst) &&
        tsr_tensor_is_contiguous(src)) {
        memmove(dst->data, src->data, tsr_tensor_nbytes(src));
        return;
    }
    if (tsr_tensor_numel(src) == 0) return;
    int64_t index[TSR_MAX_DIMS] = {0};
    do {
        tsr_tensor_set(dst, index, tsr_tensor_get(src, index));
    } while (next_index(index, src));
}

void tsr_tensor_fill(tsr_tensor *t, double value)
{
    if (tsr_tensor_numel(t) == 0) return;
    int64_t index[TSR_MAX_DIMS] = {0};
    do {
        tsr_tensor_set(t, index, value);
    } while (next_index(index, t));
}

void tsr_tensor_fill_normal(tsr_tensor *t, double std, tsr_rng *rng)
{
    TSR_ASSERT_MSG(tsr_tensor_is_contiguous(t) &&
                       (t->dtype == TSR_DTYPE_F32 || t->dtype == TSR_DTYPE_F64),
                   "tsr_tensor_fill_normal needs a contiguous float tensor");
    int64_t n = tsr_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double z = std * tsr_rng_normal(rng);
        if (t->dtype == TSR_DTYPE_F64) tsr_f64(t)[i] = z;
        else tsr_f32(t)[i] = (float)z;
    }
}
