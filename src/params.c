/* params.c — the contiguous parameter block and the initialisers. */
#include "tessera/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/status.h"

/* Each tensor starts on a 64-byte boundary (16 floats) for aligned kernels. */
enum { ALIGN_FLOATS = 16 };

void tsr_params_init_dtype(tsr_params *p, tsr_dtype dtype)
{
    TSR_ASSERT_MSG(dtype == TSR_DTYPE_F32 || dtype == TSR_DTYPE_F64, "parameters of %s",
                   tsr_dtype_name(dtype));
    memset(p, 0, sizeof *p);
    p->dtype = dtype;
}

void tsr_params_init(tsr_params *p) { tsr_params_init_dtype(p, TSR_DTYPE_F32); }

void tsr_params_fini(tsr_params *p)
{
    tsr_free(p->items);
    tsr_free(p->values);
    tsr_free(p->grads);
    memset(p, 0, sizeof *p);
}

int tsr_params_add(tsr_params *p, const char *name, int ndim, const int64_t *shape, unsigned flags)
{
    TSR_ASSERT_MSG(!p->finalized, "parameter %s added after finalize", name);
    TSR_ASSERT_MSG(strlen(name) < TSR_PARAM_NAME_BYTES, "parameter name too long: %s", name);
    TSR_ASSERT_MSG(tsr_params_find(p, name) < 0, "duplicate parameter name %s", name);
    if (p->count == p->capacity) {
        p->capacity = p->capacity ? 2 * p->capacity : 16;
        p->items = tsr_realloc(p->items, (size_t)p->capacity * sizeof *p->items);
    }
    tsr_param *item = &p->items[p->count];
    memset(item, 0, sizeof *item);
    snprintf(item->name, sizeof item->name, "%s", name);
    item->value = tsr_tensor_view(NULL, p->dtype, ndim, shape);
    item->flags = flags;
    item->offset = p->numel;
    size_t n = (size_t)tsr_tensor_numel(&item->value);
    p->numel += (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return p->count++;
}

static void point_views(tsr_params *p)
{
    size_t elt = tsr_dtype_size(p->dtype);
    for (int i = 0; i < p->count; i++) {
        tsr_param *item = &p->items[i];
        item->value.data = (char *)p->values + item->offset * elt;
        item->grad = tsr_tensor_view((char *)p->grads + item->offset * elt, p->dtype,
                                     item->value.ndim, item->value.shape);
        item->value.grad = &item->grad;
        item->value.requires_grad = true;
        item->value.grad_epoch = 0;
    }
}

void tsr_params_finalize(tsr_params *p)
{
    TSR_ASSERT(!p->finalized);
    size_t bytes = (p->numel ? p->numel : 1) * tsr_dtype_size(p->dtype);
    p->values = tsr_aligned_alloc(64, bytes);
    p->grads = tsr_aligned_alloc(64, bytes);
    memset(p->values, 0, bytes);
    memset(p->grads, 0, bytes);
    point_views(p);
    p->finalized = true;
}

tsr_tensor *tsr_params_tensor(tsr_params *p, int index)
{
    TSR_ASSERT(p->finalized && index >= 0 && index < p->count);
    return &p->items[index].value;
}

int tsr_params_find(const tsr_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i].name, name)) return i;
    return -1;
}

int64_t tsr_params_count(const tsr_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->count; i++) n += tsr_tensor_numel(&p->items[i].value);
    return n;
}

void tsr_params_init_like(tsr_params *dst, const tsr_params *src)
{
    tsr_params_init_dtype(dst, src->dtype);
    for (int i = 0; i < src->count; i++)
        tsr_params_add(dst, src->items[i].name, src->items[i].value.ndim, src->items[i].value.shape,
                       src->items[i].flags);
    tsr_params_finalize(dst);
}

void tsr_params_copy_values(tsr_params *dst, const tsr_params *src)
{
    TSR_ASSERT_MSG(dst->numel == src->numel && dst->count == src->count && dst->dtype == src->dtype,
                   "parameter layouts differ (%zu vs %zu elements)", dst->numel, src->numel);
    memcpy(dst->values, src->values, src->numel * tsr_dtype_size(src->dtype));
    tsr_params_bump_version(dst);
}

void tsr_params_bump_version(tsr_params *p)
{
    p->version++;
    for (int i = 0; i < p->count; i++) p->items[i].value.version = p->version;
}

void tsr_params_settle_grads(tsr_params *p, uint64_t epoch)
{
    for (int i = 0; i < p->count; i++) {
        tsr_param *item = &p->items[i];
        if (item->value.grad_epoch != epoch) {
            memset(item->grad.data, 0, tsr_tensor_nbytes(&item->grad));
            item->value.grad_epoch = epoch;
        }
    }
}

double tsr_params_grad_norm(const tsr_params *p)
{
    double sum = 0.0;
    for (int i = 0; i < p->count; i++) {
        const tsr_tensor *grad = &p->items[i].grad;
        int64_t n = tsr_tensor_numel(grad);
        if (p->dtype == TSR_DTYPE_F64)
            for (int64_t j = 0; j < n; j++) sum += tsr_f64(grad)[j] * tsr_f64(grad)[j];
        else
            for (int64_t j = 0; j < n; j++) sum += (double)tsr_f32(grad)[j] * tsr_f32(grad)[j];
    }
    return sqrt(sum);
}

double tsr_params_clip_grad_norm(tsr_params *p, double max_norm)
{
    double norm = tsr_params_grad_norm(p);
    if (norm > max_norm && norm > 0.0) {
        double scale = max_norm / norm;
        if (p->dtype == TSR_DTYPE_F64)
            for (size_t j = 0; j < p->numel; j++) ((double *)p->grads)[j] *= scale;
        else
            for (size_t j = 0; j < p->numel; j++) ((float *)p->grads)[j] *= (float)scale;
    }
    return norm;
}

void tsr_init_fans(const tsr_tensor *w, int64_t *fan_in, int64_t *fan_out)
{
    TSR_ASSERT_MSG(w->ndim >= 2, "fans of a %d-dimensional tensor", w->ndim);
    int64_t receptive = 1;
    for (int i = 2; i < w->ndim; i++) receptive *= w->shape[i];
    *fan_in = w->shape[1] * receptive;
    *fan_out = w->shape[0] * receptive;
}

/* Writes element i of a float32 or float64 tensor (initialisers only). */
static void put(tsr_tensor *w, int64_t i, double v)
{
    if (w->dtype == TSR_DTYPE_F64) tsr_f64(w)[i] = v;
    else tsr_f32(w)[i] = (float)v;
}

static void check_init_target(const tsr_tensor *w)
{
    TSR_ASSERT_MSG((w->dtype == TSR_DTYPE_F32 || w->dtype == TSR_DTYPE_F64) &&
                       tsr_tensor_is_contiguous(w),
                   "initialising a %s tensor", tsr_dtype_name(w->dtype));
}

static void fill_uniform(tsr_tensor *w, double limit, tsr_rng *rng)
{
    check_init_target(w);
    int64_t n = tsr_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) put(w, i, (2.0 * tsr_rng_uniform(rng) - 1.0) * limit);
}

void tsr_init_xavier_uniform(tsr_tensor *w, int64_t fan_in, int64_t fan_out, tsr_rng *rng)
{
    fill_uniform(w, sqrt(6.0 / (double)(fan_in + fan_out)), rng);
}

void tsr_init_variance_scaling_uniform(tsr_tensor *w, double scale, int64_t fan_in, tsr_rng *rng)
{
    fill_uniform(w, sqrt(3.0 * scale / (double)fan_in), rng);
}

void tsr_init_lecun_normal(tsr_tensor *w, int64_t fan_in, tsr_rng *rng)
{
    check_init_target(w);
    /* Standard deviation of a unit normal truncated to [-2, 2]. */
    const double truncated_std = 0.87962566103423978;
    double std = sqrt(1.0 / (double)fan_in) / truncated_std;
    int64_t n = tsr_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) {
        double z;
        do z = tsr_rng_normal(rng);
        while (z < -2.0 || z > 2.0);
        put(w, i, z * std);
    }
}

void tsr_init_zeros(tsr_tensor *w) { tsr_tensor_fill(w, 0.0); }
