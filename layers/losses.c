/* losses.c — the value losses: config, support, targets, loss ops and the
 * TD loss that switches between them (losses.h). Kernels: src/kernels/losses_ref.c. */
#include "tessera/losses.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/losses_kernels.h"
#include "tessera/status.h"

/* ==== configuration ===================================================== */

const char *const tsr_value_loss_kind_names[] = {"mse", "huber", "c51", "twohot", "hlgauss", NULL};

enum { KIND_COUNT = 5 };

#define KEY(name, type, min, max, choices, def, help)                                         \
    {"loss", #name, type, offsetof(tsr_value_loss_config, name), min, max, choices, def, help}

static const tsr_config_key loss_keys[] = {
    KEY(kind, TSR_CONFIG_ENUM, 0, 0, tsr_value_loss_kind_names, "mse",
        "value loss: mse or huber on Q-values; c51, twohot or hlgauss on K logits per action"),
    KEY(num_bins, TSR_CONFIG_INT, 2, TSR_VALUE_LOSS_MAX_BINS, NULL, "51",
        "c51 / twohot: atoms K; hlgauss: bins K"),
    KEY(vmin, TSR_CONFIG_DOUBLE, -1e12, 1e12, NULL, "-10", "lowest value of the support"),
    KEY(vmax, TSR_CONFIG_DOUBLE, -1e12, 1e12, NULL, "10", "highest value of the support"),
    KEY(sigma_ratio, TSR_CONFIG_DOUBLE, 1e-6, 1e6, NULL, "0.75",
        "hlgauss: sigma as a multiple of the bin width"),
    KEY(huber_delta, TSR_CONFIG_DOUBLE, 1e-12, 1e12, NULL, "1",
        "huber: the quadratic zone's half-width"),
};

#undef KEY

int tsr_value_loss_config_keys(size_t offset, tsr_config_key *out, int capacity)
{
    int n = (int)(sizeof loss_keys / sizeof loss_keys[0]);
    for (int i = 0; i < n && i < capacity; i++) {
        out[i] = loss_keys[i];
        out[i].offset += offset;
    }
    return n;
}

tsr_value_loss_config tsr_value_loss_config_defaults(void)
{
    return (tsr_value_loss_config){
        .kind = TSR_VALUE_LOSS_MSE,
        .num_bins = 51,
        .vmin = -10.0,
        .vmax = 10.0,
        .sigma_ratio = 0.75,
        .huber_delta = 1.0,
    };
}

const char *tsr_value_loss_kind_name(tsr_value_loss_kind kind)
{
    return (unsigned)kind < KIND_COUNT ? tsr_value_loss_kind_names[kind] : "?";
}

bool tsr_value_loss_kind_is_categorical(tsr_value_loss_kind kind)
{
    return kind == TSR_VALUE_LOSS_C51 || kind == TSR_VALUE_LOSS_TWOHOT ||
           kind == TSR_VALUE_LOSS_HLGAUSS;
}

static void list_kinds(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < KIND_COUNT && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                                 tsr_value_loss_kind_names[i]);
}

tsr_status tsr_value_loss_kind_parse(const char *name, tsr_value_loss_kind *kind, tsr_error *err)
{
    for (int i = 0; i < KIND_COUNT; i++)
        if (name && !strcmp(name, tsr_value_loss_kind_names[i])) {
            *kind = (tsr_value_loss_kind)i;
            return TSR_STATUS_OK;
        }
    char names[128];
    list_kinds(names, sizeof names);
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "loss.kind = \"%s\" is not one of: %s", name ? name : "(null)", names);
}

tsr_status tsr_value_loss_config_validate(const tsr_value_loss_config *cfg, tsr_error *err)
{
    if ((unsigned)cfg->kind >= KIND_COUNT) {
        char names[128];
        list_kinds(names, sizeof names);
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "loss.kind = %d is not a value loss; allowed: %s", (int)cfg->kind,
                             names);
    }
    if (cfg->num_bins < 2 || cfg->num_bins > TSR_VALUE_LOSS_MAX_BINS)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "loss.num_bins = %lld: must be an integer in [2, %d]",
                             (long long)cfg->num_bins, TSR_VALUE_LOSS_MAX_BINS);
    if (!isfinite(cfg->vmin))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "loss.vmin = %g: must be finite",
                             cfg->vmin);
    if (!isfinite(cfg->vmax))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "loss.vmax = %g: must be finite",
                             cfg->vmax);
    if (!(cfg->vmin < cfg->vmax))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "loss.vmin = %g, loss.vmax = %g: vmin must be less than vmax",
                             cfg->vmin, cfg->vmax);
    if (!(isfinite(cfg->sigma_ratio) && cfg->sigma_ratio > 0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "loss.sigma_ratio = %g: must be finite and > 0 (HL-Gauss sigma / bin "
                             "width; 0.75 recommended)",
                             cfg->sigma_ratio);
    if (!(isfinite(cfg->huber_delta) && cfg->huber_delta > 0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "loss.huber_delta = %g: must be finite and > 0", cfg->huber_delta);
    return TSR_STATUS_OK;
}

/* ==== the support ======================================================= */

tsr_status tsr_support_init(tsr_support *s, const tsr_value_loss_config *cfg, tsr_error *err)
{
    memset(s, 0, sizeof *s);
    tsr_status status = tsr_value_loss_config_validate(cfg, err);
    if (status != TSR_STATUS_OK) return status;
    s->kind = cfg->kind;
    s->vmin = cfg->vmin;
    s->vmax = cfg->vmax;
    s->huber_delta = cfg->huber_delta;
    if (!tsr_value_loss_kind_is_categorical(cfg->kind)) return TSR_STATUS_OK;

    int64_t k = cfg->num_bins;
    double range = cfg->vmax - cfg->vmin;
    s->num_values = k;
    s->values = tsr_malloc((size_t)k * sizeof *s->values);
    if (cfg->kind == TSR_VALUE_LOSS_HLGAUSS) {
        s->spacing = range / (double)k;
        s->sigma = cfg->sigma_ratio * s->spacing;
        s->edges = tsr_malloc((size_t)(k + 1) * sizeof *s->edges);
        for (int64_t i = 0; i <= k; i++) s->edges[i] = cfg->vmin + range * (double)i / (double)k;
        s->edges[k] = cfg->vmax;
        for (int64_t i = 0; i < k; i++) s->values[i] = 0.5 * (s->edges[i] + s->edges[i + 1]);
    } else {
        s->spacing = range / (double)(k - 1);
        for (int64_t i = 0; i < k; i++)
            s->values[i] = cfg->vmin + range * (double)i / (double)(k - 1);
        s->values[k - 1] = cfg->vmax;
    }
    return TSR_STATUS_OK;
}

void tsr_support_fini(tsr_support *s)
{
    tsr_free(s->values);
    tsr_free(s->edges);
    memset(s, 0, sizeof *s);
}

int64_t tsr_support_head_width(const tsr_support *s)
{
    return tsr_support_is_categorical(s) ? s->num_values : 1;
}

/* ==== shared helpers ===================================================== */

static bool is_float(tsr_dtype dtype) { return dtype == TSR_DTYPE_F32 || dtype == TSR_DTYPE_F64; }

/* Element i of a contiguous tensor of any dtype, as a double. */
static double element(const tsr_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case TSR_DTYPE_F32: return tsr_f32(t)[i];
    case TSR_DTYPE_F64: return tsr_f64(t)[i];
    case TSR_DTYPE_U8: return tsr_u8(t)[i];
    case TSR_DTYPE_I32: return tsr_i32(t)[i];
    }
    return 0;
}

static void check_vector(const tsr_tensor *t, int64_t n, const char *what, bool any_dtype)
{
    char buf[96];
    TSR_ASSERT_MSG(t->ndim == 1 && t->shape[0] == n && tsr_tensor_is_contiguous(t),
                   "%s: expected a contiguous (%lld) tensor, got %s", what, (long long)n,
                   tsr_tensor_shape_str(t, buf, sizeof buf));
    TSR_ASSERT_MSG(any_dtype || is_float(t->dtype), "%s of %s", what, tsr_dtype_name(t->dtype));
}

static void check_rows(const tsr_tensor *t, int64_t k, const char *what)
{
    char buf[96];
    TSR_ASSERT_MSG(t->ndim == 2 && t->shape[1] == k && tsr_tensor_is_contiguous(t) &&
                       is_float(t->dtype),
                   "%s: expected a contiguous float (N, %lld) tensor, got %s %s", what,
                   (long long)k, tsr_dtype_name(t->dtype),
                   tsr_tensor_shape_str(t, buf, sizeof buf));
}

static void check_kind(const tsr_support *s, bool ok, const char *what)
{
    TSR_ASSERT_MSG(ok, "%s with a %s support", what, tsr_value_loss_kind_name(s->kind));
}

/* ==== targets ============================================================ */

tsr_tensor *tsr_c51_project(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *probs,
                            const tsr_tensor *rewards, const tsr_tensor *dones, double gamma_n)
{
    check_kind(s, s->kind == TSR_VALUE_LOSS_C51 || s->kind == TSR_VALUE_LOSS_TWOHOT,
               "c51_project");
    int64_t k = s->num_values;
    check_rows(probs, k, "c51_project probs");
    int64_t n = probs->shape[0];
    check_vector(rewards, n, "c51_project rewards", true);
    check_vector(dones, n, "c51_project dones", true);
    double *shift = tsr_arena_alloc(&ctx->arena, (size_t)(n ? n : 1) * sizeof *shift);
    double *scale = tsr_arena_alloc(&ctx->arena, (size_t)(n ? n : 1) * sizeof *scale);
    for (int64_t i = 0; i < n; i++) {
        shift[i] = element(rewards, i);
        scale[i] = gamma_n * (1.0 - element(dones, i));
    }
    tsr_tensor *out = tsr_ctx_tensor(ctx, probs->dtype, 2, TSR_SHAPE(n, k));
    if (probs->dtype == TSR_DTYPE_F64)
        tsr_ref_categorical_project_f64(tsr_f64(probs), shift, scale, s->values, tsr_f64(out), n,
                                        k, s->vmin, s->vmax, s->spacing);
    else
        tsr_ref_categorical_project_f32(tsr_f32(probs), shift, scale, s->values, tsr_f32(out), n,
                                        k, s->vmin, s->vmax, s->spacing);
    return out;
}

tsr_tensor *tsr_twohot_target(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *y)
{
    check_kind(s, s->kind == TSR_VALUE_LOSS_C51 || s->kind == TSR_VALUE_LOSS_TWOHOT,
               "twohot_target");
    TSR_ASSERT(y->ndim == 1);
    int64_t n = y->shape[0], k = s->num_values;
    check_vector(y, n, "twohot_target y", false);
    tsr_tensor *out = tsr_ctx_tensor(ctx, y->dtype, 2, TSR_SHAPE(n, k));
    if (y->dtype == TSR_DTYPE_F64)
        tsr_ref_twohot_f64(tsr_f64(y), tsr_f64(out), n, k, s->vmin, s->vmax, s->spacing);
    else
        tsr_ref_twohot_f32(tsr_f32(y), tsr_f32(out), n, k, s->vmin, s->vmax, s->spacing);
    return out;
}

tsr_tensor *tsr_hlgauss_target(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *y)
{
    check_kind(s, s->kind == TSR_VALUE_LOSS_HLGAUSS, "hlgauss_target");
    TSR_ASSERT(y->ndim == 1);
    int64_t n = y->shape[0], k = s->num_values;
    check_vector(y, n, "hlgauss_target y", false);
    tsr_tensor *out = tsr_ctx_tensor(ctx, y->dtype, 2, TSR_SHAPE(n, k));
    if (y->dtype == TSR_DTYPE_F64)
        tsr_ref_hlgauss_f64(tsr_f64(y), s->edges, tsr_f64(out), n, k, s->sigma);
    else
        tsr_ref_hlgauss_f32(tsr_f32(y), s->edges, tsr_f32(out), n, k, s->sigma);
    return out;
}

/* ==== cross-entropy ====================================================== */

typedef struct xent_saved {
    tsr_tensor *logits, *loss;
    const tsr_tensor *target;
    void *probs; /* (N, K) softmax of the logits, logits' dtype */
    int64_t n, k;
} xent_saved;

static void xent_backward(tsr_ctx *ctx, void *saved_)
{
    xent_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->logits, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dloss = tsr_grad_get(ctx, s->loss);
    if (s->logits->dtype == TSR_DTYPE_F64)
        tsr_ref_xent_bwd_f64(s->probs, tsr_f64(s->target), tsr_f64(dloss), tsr_f64(dx), s->n,
                             s->k, accumulate);
    else
        tsr_ref_xent_bwd_f32(s->probs, tsr_f32(s->target), tsr_f32(dloss), tsr_f32(dx), s->n,
                             s->k, accumulate);
}

tsr_tensor *tsr_categorical_cross_entropy(tsr_ctx *ctx, tsr_tensor *logits,
                                          const tsr_tensor *target)
{
    TSR_ASSERT(logits->ndim == 2);
    int64_t n = logits->shape[0], k = logits->shape[1];
    check_rows(logits, k, "cross_entropy logits");
    check_rows(target, k, "cross_entropy target");
    char sl[96], st[96];
    TSR_ASSERT_MSG(target->shape[0] == n && target->dtype == logits->dtype,
                   "cross_entropy of logits %s %s and target %s %s",
                   tsr_dtype_name(logits->dtype), tsr_tensor_shape_str(logits, sl, sizeof sl),
                   tsr_dtype_name(target->dtype), tsr_tensor_shape_str(target, st, sizeof st));
    tsr_tensor *loss = tsr_ctx_tensor(ctx, logits->dtype, 1, TSR_SHAPE(n));
    bool record = tsr_ctx_should_record(ctx, 1, &logits);
    size_t elt = tsr_dtype_size(logits->dtype);
    void *probs =
        record ? tsr_arena_alloc(&ctx->arena, (size_t)(n * k > 0 ? n * k : 1) * elt) : NULL;
    if (logits->dtype == TSR_DTYPE_F64)
        tsr_ref_xent_fwd_f64(tsr_f64(logits), tsr_f64(target), tsr_f64(loss), probs, n, k);
    else
        tsr_ref_xent_fwd_f32(tsr_f32(logits), tsr_f32(target), tsr_f32(loss), probs, n, k);
    if (record) {
        xent_saved *s = tsr_tape_push(ctx, loss, xent_backward, sizeof *s);
        *s = (xent_saved){.logits = logits, .loss = loss, .target = target, .probs = probs,
                          .n = n, .k = k};
    }
    return loss;
}

/* ==== MSE and Huber ====================================================== */

typedef struct scalar_loss_saved {
    tsr_tensor *pred, *loss;
    const tsr_tensor *target;
    double delta; /* Huber; 0 selects MSE */
} scalar_loss_saved;

static void scalar_loss_backward(tsr_ctx *ctx, void *saved_)
{
    scalar_loss_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dq = tsr_grad_acquire(ctx, s->pred, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dq) return;
    tsr_tensor *dloss = tsr_grad_get(ctx, s->loss);
    int64_t n = s->pred->shape[0];
    if (s->pred->dtype == TSR_DTYPE_F64) {
        if (s->delta > 0)
            tsr_ref_huber_bwd_f64(tsr_f64(s->pred), tsr_f64(s->target), tsr_f64(dloss),
                                  tsr_f64(dq), n, s->delta, accumulate);
        else
            tsr_ref_mse_bwd_f64(tsr_f64(s->pred), tsr_f64(s->target), tsr_f64(dloss), tsr_f64(dq),
                                n, accumulate);
    } else {
        if (s->delta > 0)
            tsr_ref_huber_bwd_f32(tsr_f32(s->pred), tsr_f32(s->target), tsr_f32(dloss),
                                  tsr_f32(dq), n, s->delta, accumulate);
        else
            tsr_ref_mse_bwd_f32(tsr_f32(s->pred), tsr_f32(s->target), tsr_f32(dloss), tsr_f32(dq),
                                n, accumulate);
    }
}

static tsr_tensor *scalar_loss(tsr_ctx *ctx, tsr_tensor *pred, const tsr_tensor *target,
                               double delta, const char *what)
{
    TSR_ASSERT_MSG(pred->ndim == 1, "%s of a %d-dimensional prediction: expected (N)", what,
                   pred->ndim);
    int64_t n = pred->shape[0];
    check_vector(pred, n, what, false);
    check_vector(target, n, what, false);
    TSR_ASSERT_MSG(target->dtype == pred->dtype, "%s of %s and %s", what,
                   tsr_dtype_name(pred->dtype), tsr_dtype_name(target->dtype));
    tsr_tensor *loss = tsr_ctx_tensor(ctx, pred->dtype, 1, TSR_SHAPE(n));
    if (pred->dtype == TSR_DTYPE_F64) {
        if (delta > 0)
            tsr_ref_huber_fwd_f64(tsr_f64(pred), tsr_f64(target), tsr_f64(loss), n, delta);
        else
            tsr_ref_mse_fwd_f64(tsr_f64(pred), tsr_f64(target), tsr_f64(loss), n);
    } else {
        if (delta > 0)
            tsr_ref_huber_fwd_f32(tsr_f32(pred), tsr_f32(target), tsr_f32(loss), n, delta);
        else
            tsr_ref_mse_fwd_f32(tsr_f32(pred), tsr_f32(target), tsr_f32(loss), n);
    }
    if (tsr_ctx_should_record(ctx, 1, &pred)) {
        scalar_loss_saved *s = tsr_tape_push(ctx, loss, scalar_loss_backward, sizeof *s);
        *s = (scalar_loss_saved){.pred = pred, .loss = loss, .target = target, .delta = delta};
    }
    return loss;
}

tsr_tensor *tsr_mse_loss(tsr_ctx *ctx, tsr_tensor *pred, const tsr_tensor *target)
{
    return scalar_loss(ctx, pred, target, 0.0, "mse_loss");
}

tsr_tensor *tsr_huber_loss(tsr_ctx *ctx, tsr_tensor *pred, const tsr_tensor *target, double delta)
{
    TSR_ASSERT_MSG(delta > 0, "huber_loss with delta %g", delta);
    return scalar_loss(ctx, pred, target, delta, "huber_loss");
}

/* ==== readout ============================================================ */

typedef struct readout_saved {
    tsr_tensor *logits, *y;
    const double *values;
    void *probs;
    int64_t rows, k;
} readout_saved;

static void readout_backward(tsr_ctx *ctx, void *saved_)
{
    readout_saved *s = saved_;
    bool accumulate;
    tsr_tensor *dx = tsr_grad_acquire(ctx, s->logits, TSR_GRAD_WRITE_ALL, &accumulate);
    if (!dx) return;
    tsr_tensor *dy = tsr_grad_get(ctx, s->y);
    if (s->y->dtype == TSR_DTYPE_F64)
        tsr_ref_readout_bwd_f64(s->probs, s->values, tsr_f64(s->y), tsr_f64(dy), tsr_f64(dx),
                                s->rows, s->k, accumulate);
    else
        tsr_ref_readout_bwd_f32(s->probs, s->values, tsr_f32(s->y), tsr_f32(dy), tsr_f32(dx),
                                s->rows, s->k, accumulate);
}

/* logits (..., K) -> (...); records only when `allow_record`. */
static tsr_tensor *readout(tsr_ctx *ctx, const tsr_support *s, tsr_tensor *logits,
                           bool allow_record)
{
    check_kind(s, tsr_support_is_categorical(s), "value_readout");
    char buf[96];
    int64_t k = s->num_values;
    TSR_ASSERT_MSG(logits->ndim >= 1 && logits->shape[logits->ndim - 1] == k &&
                       tsr_tensor_is_contiguous(logits) && is_float(logits->dtype),
                   "value_readout of %s %s: expected contiguous float (..., %lld)",
                   tsr_dtype_name(logits->dtype), tsr_tensor_shape_str(logits, buf, sizeof buf),
                   (long long)k);
    int64_t rows = tsr_tensor_numel(logits) / k;
    tsr_tensor *y = tsr_ctx_tensor(ctx, logits->dtype, logits->ndim - 1, logits->shape);
    bool record = allow_record && tsr_ctx_should_record(ctx, 1, &logits);
    size_t elt = tsr_dtype_size(logits->dtype);
    void *probs =
        record ? tsr_arena_alloc(&ctx->arena, (size_t)(rows * k > 0 ? rows * k : 1) * elt) : NULL;
    if (logits->dtype == TSR_DTYPE_F64)
        tsr_ref_readout_fwd_f64(tsr_f64(logits), s->values, probs, tsr_f64(y), rows, k);
    else
        tsr_ref_readout_fwd_f32(tsr_f32(logits), s->values, probs, tsr_f32(y), rows, k);
    if (record) {
        readout_saved *sv = tsr_tape_push(ctx, y, readout_backward, sizeof *sv);
        *sv = (readout_saved){.logits = logits, .y = y, .values = s->values, .probs = probs,
                              .rows = rows, .k = k};
    }
    return y;
}

tsr_tensor *tsr_value_readout(tsr_ctx *ctx, const tsr_support *s, tsr_tensor *logits)
{
    return readout(ctx, s, logits, true);
}

tsr_tensor *tsr_value_q(tsr_ctx *ctx, const tsr_support *s, tsr_tensor *outputs)
{
    if (tsr_support_is_categorical(s)) return readout(ctx, s, outputs, true);
    return outputs;
}

/* ==== the TD loss ======================================================== */

/* Q (N, A) of a target-side tensor, never recorded. */
static tsr_tensor *q_nograd(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *outputs)
{
    if (tsr_support_is_categorical(s)) return readout(ctx, s, (tsr_tensor *)outputs, false);
    return (tsr_tensor *)outputs;
}

/* argmax over A of q (N, A), ties to the lowest action. */
static int32_t *greedy(tsr_ctx *ctx, const tsr_tensor *q)
{
    int64_t n = q->shape[0], a = q->shape[1];
    int32_t *best = tsr_arena_alloc(&ctx->arena, (size_t)(n ? n : 1) * sizeof *best);
    for (int64_t i = 0; i < n; i++) {
        int64_t arg = 0;
        double max = element(q, i * a);
        for (int64_t j = 1; j < a; j++) {
            double v = element(q, i * a + j);
            if (v > max) {
                max = v;
                arg = j;
            }
        }
        best[i] = (int32_t)arg;
    }
    return best;
}

tsr_tensor *tsr_value_loss_td(tsr_ctx *ctx, const tsr_support *s, const tsr_td_batch *b)
{
    bool categorical = tsr_support_is_categorical(s);
    int64_t k = tsr_support_head_width(s);
    tsr_tensor *chosen = b->chosen;
    const tsr_tensor *next = b->next_target;
    const tsr_tensor *selector = b->next_online ? b->next_online : next;
    char sc[96], sn[96];
    int64_t n = chosen->shape[0];
    bool shapes_ok = is_float(chosen->dtype) && next->dtype == chosen->dtype &&
                     selector->dtype == chosen->dtype && tsr_tensor_same_shape(selector, next) &&
                     tsr_tensor_is_contiguous(next) && tsr_tensor_is_contiguous(selector) &&
                     next->shape[0] == n &&
                     (categorical ? chosen->ndim == 2 && chosen->shape[1] == k && next->ndim == 3 &&
                                        next->shape[2] == k
                                  : chosen->ndim == 1 && next->ndim == 2);
    TSR_ASSERT_MSG(shapes_ok,
                   "value_loss_td (%s): chosen %s %s and next %s %s; expected (N, K) and "
                   "(N, A, K), or (N) and (N, A), of one float dtype",
                   tsr_value_loss_kind_name(s->kind), tsr_dtype_name(chosen->dtype),
                   tsr_tensor_shape_str(chosen, sc, sizeof sc), tsr_dtype_name(next->dtype),
                   tsr_tensor_shape_str(next, sn, sizeof sn));
    check_vector(b->rewards, n, "value_loss_td rewards", true);
    check_vector(b->dones, n, "value_loss_td dones", true);
    int64_t a = next->shape[1];

    /* Target side: plain loops and unrecorded kernels only. */
    tsr_tensor *q_selector = q_nograd(ctx, s, selector);
    int32_t *action = greedy(ctx, q_selector);
    if (s->kind == TSR_VALUE_LOSS_C51) {
        tsr_tensor *probs = tsr_ctx_tensor(ctx, chosen->dtype, 2, TSR_SHAPE(n, k));
        size_t elt = tsr_dtype_size(chosen->dtype);
        for (int64_t i = 0; i < n; i++) {
            const char *row = (const char *)next->data + (size_t)((i * a + action[i]) * k) * elt;
            char *out = (char *)probs->data + (size_t)(i * k) * elt;
            if (chosen->dtype == TSR_DTYPE_F64)
                tsr_ref_softmax_fwd_f64((const double *)row, (double *)out, 1, k, 1, false);
            else
                tsr_ref_softmax_fwd_f32((const float *)row, (float *)out, 1, k, 1, false);
        }
        tsr_tensor *target = tsr_c51_project(ctx, s, probs, b->rewards, b->dones, b->gamma_n);
        return tsr_categorical_cross_entropy(ctx, chosen, target);
    }

    tsr_tensor *q_next = selector == next ? q_selector : q_nograd(ctx, s, next);
    tsr_tensor *y = tsr_ctx_tensor(ctx, chosen->dtype, 1, TSR_SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        double v = element(b->rewards, i) +
                   b->gamma_n * (1.0 - element(b->dones, i)) * element(q_next, i * a + action[i]);
        if (y->dtype == TSR_DTYPE_F64)
            tsr_f64(y)[i] = v;
        else
            tsr_f32(y)[i] = (float)v;
    }
    switch (s->kind) {
    case TSR_VALUE_LOSS_MSE: return tsr_mse_loss(ctx, chosen, y);
    case TSR_VALUE_LOSS_HUBER: return tsr_huber_loss(ctx, chosen, y, s->huber_delta);
    case TSR_VALUE_LOSS_TWOHOT:
        return tsr_categorical_cross_entropy(ctx, chosen, tsr_twohot_target(ctx, s, y));
    case TSR_VALUE_LOSS_HLGAUSS:
        return tsr_categorical_cross_entropy(ctx, chosen, tsr_hlgauss_target(ctx, s, y));
    case TSR_VALUE_LOSS_C51: break;
    }
    TSR_ASSERT_MSG(0, "value_loss_td: unknown kind %d", (int)s->kind);
    return NULL;
}
