/* diagnostics.c — dormant neurons, feature rank and parameter norms. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lapacke.h>

#include "tessera/arena.h"
#include "tessera/diagnostics.h"

static double value_at(const tsr_tensor *t, int64_t i)
{
    return t->dtype == TSR_DTYPE_F64 ? tsr_f64(t)[i] : (double)tsr_f32(t)[i];
}

static void check_float_contiguous(const tsr_tensor *t, const char *what)
{
    TSR_ASSERT_MSG(t->dtype == TSR_DTYPE_F32 || t->dtype == TSR_DTYPE_F64, "%s of %s tensor", what,
                   tsr_dtype_name(t->dtype));
    TSR_ASSERT_MSG(tsr_tensor_is_contiguous(t), "%s of a strided tensor", what);
}

/* ==== dormant neurons ===================================================== */

tsr_status tsr_dormant_neurons(tsr_ctx *ctx, const tsr_tensor *activations, double tau,
                               tsr_dormant_stats *per_layer, tsr_dormant_stats *total,
                               tsr_error *err)
{
    char sa[96];
    check_float_contiguous(activations, "dormant_neurons");
    TSR_ASSERT_MSG(activations->ndim == 2 || activations->ndim == 3,
                   "dormant_neurons of %s: expected (M, F) or (L, M, F)",
                   tsr_tensor_shape_str(activations, sa, sizeof sa));
    TSR_ASSERT(total);
    if (!(tau >= 0) || !isfinite(tau))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "dormant threshold tau = %g; expected a finite value >= 0", tau);
    int nd = activations->ndim;
    int64_t layers = nd == 3 ? activations->shape[0] : 1;
    int64_t m = activations->shape[nd - 2], f = activations->shape[nd - 1];
    double *score = tsr_arena_alloc(tsr_ctx_arena(ctx), (size_t)(f ? f : 1) * sizeof *score);
    *total = (tsr_dormant_stats){0, 0};
    for (int64_t layer = 0; layer < layers; layer++) {
        /* Column sums of |a|, rows outer so the reads are sequential. */
        for (int64_t j = 0; j < f; j++) score[j] = 0;
        int64_t base = layer * m * f;
        if (activations->dtype == TSR_DTYPE_F64) {
            for (int64_t r = 0; r < m; r++) {
                const double *row = tsr_f64(activations) + base + r * f;
                for (int64_t j = 0; j < f; j++) score[j] += fabs(row[j]);
            }
        } else {
            for (int64_t r = 0; r < m; r++) {
                const float *row = tsr_f32(activations) + base + r * f;
                for (int64_t j = 0; j < f; j++) score[j] += fabs((double)row[j]);
            }
        }
        /* Scores are means over the batch; the 1 / M cancels in the ratio to
         * the layer mean, but is kept so the arithmetic is the definition. */
        double layer_mean = 0;
        for (int64_t j = 0; j < f; j++) {
            score[j] /= (double)(m ? m : 1);
            layer_mean += score[j];
        }
        layer_mean /= (double)(f ? f : 1);
        /* NaN compares false with tau, so a diverged layer would count no
         * neuron as dormant: report it instead of a plausible 0. */
        if (!isfinite(layer_mean))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "dormant_neurons: layer %lld of %s has non-finite activations "
                                 "(NaN or Inf; has the network diverged?)",
                                 (long long)layer, tsr_tensor_shape_str(activations, sa, sizeof sa));
        int64_t dormant = 0;
        for (int64_t j = 0; j < f; j++)
            /* A layer that is zero on the whole batch is entirely dormant. */
            if (layer_mean == 0 || score[j] / layer_mean <= tau) dormant++;
        tsr_dormant_stats s = {dormant, f};
        if (per_layer) per_layer[layer] = s;
        tsr_dormant_stats_add(total, s);
    }
    return TSR_STATUS_OK;
}

/* ==== feature rank ======================================================== */

tsr_status tsr_feature_srank(tsr_ctx *ctx, const tsr_tensor *features, double delta,
                             int64_t *srank, double *singular_values, tsr_error *err)
{
    char sf[96];
    check_float_contiguous(features, "feature_srank");
    TSR_ASSERT_MSG(features->ndim == 2, "feature_srank of %s: expected (N, F)",
                   tsr_tensor_shape_str(features, sf, sizeof sf));
    TSR_ASSERT(srank);
    if (!(delta >= 0 && delta < 1))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "srank delta = %g; expected a value in [0, 1)", delta);
    int64_t rows = features->shape[0], cols = features->shape[1];
    int64_t k = rows < cols ? rows : cols;
    *srank = 0;
    if (k == 0) return TSR_STATUS_OK;
    TSR_ASSERT_MSG(rows <= INT32_MAX && cols <= INT32_MAX && rows * cols <= INT32_MAX,
                   "feature_srank of %s: too large for LAPACK's int indices",
                   tsr_tensor_shape_str(features, sf, sizeof sf));

    /* LAPACK overwrites its input: copy to double. The row-major (N, F) block
     * read column-major is the (F, N) transpose, which has the same singular
     * values. */
    tsr_arena *arena = tsr_ctx_arena(ctx);
    int64_t count = rows * cols;
    double *a = tsr_arena_alloc(arena, (size_t)count * sizeof *a);
    for (int64_t i = 0; i < count; i++) {
        a[i] = value_at(features, i);
        if (!isfinite(a[i]))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "srank of features %s: element %lld is %g; the features must be "
                                 "finite",
                                 tsr_tensor_shape_str(features, sf, sizeof sf), (long long)i, a[i]);
    }
    lapack_int m = (lapack_int)cols, n = (lapack_int)rows;
    double *s = tsr_arena_alloc(arena, (size_t)k * sizeof *s);
    lapack_int *iwork = tsr_arena_alloc(arena, (size_t)(8 * k) * sizeof *iwork);
    double query = 0;
    lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', m, n, a, m, s, NULL, 1, NULL, 1,
                                          &query, -1, iwork);
    if (info != 0)
        return tsr_error_set(err, TSR_STATUS_BACKEND,
                             "LAPACK dgesdd workspace query for %s failed (info %d)",
                             tsr_tensor_shape_str(features, sf, sizeof sf), (int)info);
    lapack_int lwork = (lapack_int)query;
    double *work = tsr_arena_alloc(arena, (size_t)(lwork > 1 ? lwork : 1) * sizeof *work);
    info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', m, n, a, m, s, NULL, 1, NULL, 1, work, lwork,
                               iwork);
    if (info != 0)
        return tsr_error_set(err, TSR_STATUS_BACKEND,
                             "LAPACK dgesdd on features %s failed (info %d%s)",
                             tsr_tensor_shape_str(features, sf, sizeof sf), (int)info,
                             info > 0 ? ": did not converge" : "");

    double sum = 0;
    for (int64_t i = 0; i < k; i++) sum += s[i];
    if (sum > 0) {
        double target = (1.0 - delta) * sum, partial = 0;
        int64_t r = 0;
        while (r < k && partial < target) partial += s[r++];
        *srank = r;
    }
    if (singular_values) memcpy(singular_values, s, (size_t)k * sizeof *s);
    return TSR_STATUS_OK;
}

/* ==== parameter and gradient norms ======================================== */

typedef struct norm_sums {
    double value_sq, grad_sq, value_abs, grad_abs;
    int64_t numel;
} norm_sums;

static void add_param(norm_sums *acc, const tsr_param *param)
{
    int64_t n = tsr_tensor_numel(&param->value);
    for (int64_t i = 0; i < n; i++) {
        double v = value_at(&param->value, i), g = value_at(&param->grad, i);
        acc->value_sq += v * v;
        acc->grad_sq += g * g;
        acc->value_abs += fabs(v);
        acc->grad_abs += fabs(g);
    }
    acc->numel += n;
}

static tsr_param_norms finish(const char *name, size_t name_length, const norm_sums *acc)
{
    tsr_param_norms out;
    memset(&out, 0, sizeof out);
    if (name_length >= sizeof out.name) name_length = sizeof out.name - 1;
    memcpy(out.name, name, name_length);
    out.numel = acc->numel;
    out.value_norm = sqrt(acc->value_sq);
    out.grad_norm = sqrt(acc->grad_sq);
    double n = acc->numel ? (double)acc->numel : 1.0;
    out.value_mean_abs = acc->value_abs / n;
    out.grad_mean_abs = acc->grad_abs / n;
    return out;
}

void tsr_params_norms(const tsr_params *p, tsr_param_norms *per_param)
{
    TSR_ASSERT_MSG(p->finalized, "norms of a parameter block that is not finalized");
    for (int i = 0; i < p->count; i++) {
        norm_sums acc = {0};
        add_param(&acc, &p->items[i]);
        per_param[i] = finish(p->items[i].name, strlen(p->items[i].name), &acc);
    }
}

/* Length of the layer part of a parameter name (up to its last '/'). */
static size_t layer_length(const char *name)
{
    const char *slash = strrchr(name, '/');
    return slash ? (size_t)(slash - name) : strlen(name);
}

int tsr_params_layer_norms(const tsr_params *p, tsr_param_norms *per_layer)
{
    TSR_ASSERT_MSG(p->finalized, "norms of a parameter block that is not finalized");
    int layers = 0;
    for (int i = 0; i < p->count; i++) {
        const char *name = p->items[i].name;
        size_t len = layer_length(name);
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = layer_length(p->items[j].name) == len && !memcmp(p->items[j].name, name, len);
        if (seen) continue;
        norm_sums acc = {0};
        for (int j = i; j < p->count; j++)
            if (layer_length(p->items[j].name) == len && !memcmp(p->items[j].name, name, len))
                add_param(&acc, &p->items[j]);
        per_layer[layers++] = finish(name, len, &acc);
    }
    return layers;
}

tsr_param_norms tsr_params_prefix_norms(const tsr_params *p, const char *prefix)
{
    TSR_ASSERT_MSG(p->finalized, "norms of a parameter block that is not finalized");
    size_t len = strlen(prefix);
    norm_sums acc = {0};
    for (int i = 0; i < p->count; i++) {
        const char *name = p->items[i].name;
        if (len == 0 || (!strncmp(name, prefix, len) && (name[len] == '\0' || name[len] == '/')))
            add_param(&acc, &p->items[i]);
    }
    return finish(prefix, len, &acc);
}
