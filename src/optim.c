/* optim.c — SGD, Adam(W) and RMSProp over a parameter block. */
#include "tessera/optim.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Parameters smaller than this update serially (most RL layers' biases). */
enum { PARALLEL_MIN = 1 << 15, MAX_STATE_SLOTS = 3 };

struct tsr_optimizer {
    tsr_params *params;
    tsr_optimizer_options options;
    int64_t step_count;
    int state_count;
    const char *state_name[MAX_STATE_SLOTS];
    float *state[MAX_STATE_SLOTS]; /* params->numel floats each, zeroed at creation */
};

/* ==== options ============================================================ */

tsr_optimizer_options tsr_optimizer_adam_defaults(void)
{
    return (tsr_optimizer_options){
        .kind = TSR_OPTIMIZER_ADAM,
        .learning_rate = 6.25e-5,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1.5e-4,
    };
}

tsr_optimizer_options tsr_optimizer_rmsprop_minatar_defaults(void)
{
    return (tsr_optimizer_options){
        .kind = TSR_OPTIMIZER_RMSPROP,
        .learning_rate = 0.00025,
        .alpha = 0.95,
        .eps = 0.01,
        .centered = true,
    };
}

tsr_optimizer_options tsr_optimizer_sgd_defaults(void)
{
    return (tsr_optimizer_options){.kind = TSR_OPTIMIZER_SGD, .learning_rate = 0.01};
}

static bool in_unit_interval(double x) { return x >= 0.0 && x < 1.0; }

static tsr_status check_options(const tsr_optimizer_options *o, tsr_error *err)
{
    if (!(o->learning_rate >= 0.0 && isfinite(o->learning_rate)))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "optimizer learning_rate %g: expected a finite value >= 0",
                             o->learning_rate);
    if (!(o->momentum >= 0.0 && o->momentum < 1.0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "optimizer momentum %g: expected a value in [0, 1)", o->momentum);
    switch (o->kind) {
    case TSR_OPTIMIZER_SGD:
        break;
    case TSR_OPTIMIZER_ADAM:
        if (!in_unit_interval(o->beta1))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "adam beta1 %g: expected a value in [0, 1)", o->beta1);
        if (!in_unit_interval(o->beta2))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "adam beta2 %g: expected a value in [0, 1)", o->beta2);
        if (!(o->eps >= 0.0))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "adam eps %g: expected a value >= 0", o->eps);
        if (o->momentum != 0.0)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "adam momentum %g: Adam takes no momentum (use beta1)",
                                 o->momentum);
        break;
    case TSR_OPTIMIZER_RMSPROP:
        if (!in_unit_interval(o->alpha))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "rmsprop alpha %g: expected a value in [0, 1)", o->alpha);
        if (!(o->eps > 0.0))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "rmsprop eps %g: expected a value > 0", o->eps);
        break;
    default:
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "optimizer kind %d: expected sgd, adam or rmsprop", (int)o->kind);
    }
    if (o->weight_decay != 0.0 && o->kind != TSR_OPTIMIZER_ADAM)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "optimizer weight_decay %g: only Adam (AdamW) applies weight decay",
                             o->weight_decay);
    if (!(o->weight_decay >= 0.0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "adam weight_decay %g: expected a value >= 0", o->weight_decay);
    return TSR_STATUS_OK;
}

/* ==== lifetime =========================================================== */

static void add_slot(tsr_optimizer *opt, const char *name)
{
    TSR_ASSERT(opt->state_count < MAX_STATE_SLOTS);
    opt->state_name[opt->state_count++] = name;
}

tsr_status tsr_optimizer_new(tsr_optimizer **out, tsr_params *params,
                             const tsr_optimizer_options *options, tsr_error *err)
{
    TSR_ASSERT(out && params && options);
    *out = NULL;
    TSR_ASSERT_MSG(params->finalized, "optimizer over a parameter block that is not finalized");
    TSR_ASSERT_MSG(params->dtype == TSR_DTYPE_F32, "optimizers update float32 parameters, not %s",
                   tsr_dtype_name(params->dtype));
    tsr_status status = check_options(options, err);
    if (status != TSR_STATUS_OK) return status;

    tsr_optimizer *opt = tsr_calloc(1, sizeof *opt);
    opt->params = params;
    opt->options = *options;
    switch (options->kind) {
    case TSR_OPTIMIZER_SGD:
        if (options->momentum > 0.0) add_slot(opt, "momentum_buffer");
        break;
    case TSR_OPTIMIZER_ADAM:
        add_slot(opt, "mu");
        add_slot(opt, "nu");
        break;
    case TSR_OPTIMIZER_RMSPROP:
        add_slot(opt, "square_avg");
        if (options->centered) add_slot(opt, "grad_avg");
        if (options->momentum > 0.0) add_slot(opt, "momentum_buffer");
        break;
    }
    size_t bytes = (params->numel ? params->numel : 1) * sizeof(float);
    for (int s = 0; s < opt->state_count; s++) {
        opt->state[s] = tsr_aligned_alloc(64, bytes);
        memset(opt->state[s], 0, bytes);
    }
    *out = opt;
    return TSR_STATUS_OK;
}

void tsr_optimizer_free(tsr_optimizer *opt)
{
    if (!opt) return;
    for (int s = 0; s < opt->state_count; s++) tsr_free(opt->state[s]);
    tsr_free(opt);
}

const tsr_optimizer_options *tsr_optimizer_options_get(const tsr_optimizer *opt)
{
    return &opt->options;
}

void tsr_optimizer_set_learning_rate(tsr_optimizer *opt, double learning_rate)
{
    TSR_ASSERT_MSG(learning_rate >= 0.0 && isfinite(learning_rate), "learning rate %g",
                   learning_rate);
    opt->options.learning_rate = learning_rate;
}

int64_t tsr_optimizer_step_count(const tsr_optimizer *opt) { return opt->step_count; }

void tsr_optimizer_set_step_count(tsr_optimizer *opt, int64_t count)
{
    TSR_ASSERT_MSG(count >= 0, "step count %lld", (long long)count);
    opt->step_count = count;
}

int tsr_optimizer_state_count(const tsr_optimizer *opt) { return opt->state_count; }

const char *tsr_optimizer_state_name(const tsr_optimizer *opt, int slot)
{
    TSR_ASSERT_MSG(slot >= 0 && slot < opt->state_count, "state slot %d of %d", slot,
                   opt->state_count);
    return opt->state_name[slot];
}

float *tsr_optimizer_state_block(tsr_optimizer *opt, int slot)
{
    TSR_ASSERT_MSG(slot >= 0 && slot < opt->state_count, "state slot %d of %d", slot,
                   opt->state_count);
    return opt->state[slot];
}

tsr_tensor tsr_optimizer_state(tsr_optimizer *opt, int slot, int param_index)
{
    float *block = tsr_optimizer_state_block(opt, slot);
    const tsr_tensor *value = tsr_params_tensor(opt->params, param_index);
    return tsr_tensor_view(block + opt->params->items[param_index].offset, TSR_DTYPE_F32,
                           value->ndim, value->shape);
}

/* ==== updates ============================================================ */

/* Each update writes element j of its arrays from element j only, so it is
 * deterministic for any thread count: the range [0, n) is cut into one
 * contiguous piece per thread, as schedule(static) would.
 *
 * The per-range kernels are compiled twice, for AVX2 (8 floats a vector) and
 * for the x86-64 baseline (SSE2, 4), and the loader picks one by the CPU
 * (target_clones). FMA stays off in both, so every element goes through the
 * same rounded multiplies, adds, divisions and square roots: the two clones
 * give the same bits. The AVX2 clone halves the optimizer's share of a MinAtar
 * DQN step. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif

/* This thread's piece of [0, n) inside a parallel region. */
static void thread_range(int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t base = n / threads, extra = n % threads;
    *lo = t * base + (t < extra ? t : extra);
    *hi = *lo + base + (t < extra);
}

VECTOR_CLONES
static void sgd_range(float *w, const float *g, float *buffer, int64_t lo, int64_t hi, float lr,
                      float momentum)
{
    if (!buffer) {
        for (int64_t j = lo; j < hi; j++) w[j] -= lr * g[j];
        return;
    }
    for (int64_t j = lo; j < hi; j++) {
        buffer[j] = momentum * buffer[j] + g[j];
        w[j] -= lr * buffer[j];
    }
}

static void sgd_update(float *w, const float *g, float *buffer, int64_t n, float lr,
                       float momentum)
{
#pragma omp parallel if (n > PARALLEL_MIN)
    {
        int64_t lo, hi;
        thread_range(n, &lo, &hi);
        sgd_range(w, g, buffer, lo, hi, lr, momentum);
    }
}

typedef struct adam_scalars {
    /* 1 - beta is rounded from double, as optax and PyTorch do with their
     * Python-float hyperparameters. */
    float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay;
    float correction1, correction2; /* 1 / (1 - beta^t) */
} adam_scalars;

VECTOR_CLONES
static void adam_range(float *w, const float *g, float *mu, float *nu, int64_t lo, int64_t hi,
                       const adam_scalars *c, bool decay)
{
    const float b1 = c->beta1, b2 = c->beta2, c1 = c->correction1, c2 = c->correction2;
    const float one_minus_b1 = c->one_minus_beta1, one_minus_b2 = c->one_minus_beta2;
    const float lr = c->lr, eps = c->eps, wd = decay ? c->weight_decay : 0.0f;
    for (int64_t j = lo; j < hi; j++) {
        mu[j] = one_minus_b1 * g[j] + b1 * mu[j];
        nu[j] = one_minus_b2 * (g[j] * g[j]) + b2 * nu[j];
        float update = (mu[j] * c1) / (sqrtf(nu[j] * c2) + eps) + wd * w[j];
        w[j] -= lr * update;
    }
}

static void adam_update(float *w, const float *g, float *mu, float *nu, int64_t n,
                        const adam_scalars *c, bool decay)
{
#pragma omp parallel if (n > PARALLEL_MIN)
    {
        int64_t lo, hi;
        thread_range(n, &lo, &hi);
        adam_range(w, g, mu, nu, lo, hi, c, decay);
    }
}

typedef struct rmsprop_scalars {
    float lr, alpha, one_minus_alpha, eps, momentum;
} rmsprop_scalars;

VECTOR_CLONES
static void rmsprop_range(float *w, const float *g, float *square_avg, float *grad_avg,
                          float *buffer, int64_t lo, int64_t hi, const rmsprop_scalars *c)
{
    const float lr = c->lr, alpha = c->alpha, one_minus_alpha = c->one_minus_alpha;
    const float eps = c->eps, momentum = c->momentum;
    for (int64_t j = lo; j < hi; j++) {
        square_avg[j] = alpha * square_avg[j] + one_minus_alpha * (g[j] * g[j]);
        float second = square_avg[j];
        if (grad_avg) {
            grad_avg[j] = alpha * grad_avg[j] + one_minus_alpha * g[j];
            second -= grad_avg[j] * grad_avg[j];
        }
        /* Rounding can push the centred variance a hair below zero. */
        float denom = sqrtf(second > 0.0f ? second : 0.0f) + eps;
        if (buffer) {
            buffer[j] = momentum * buffer[j] + g[j] / denom;
            w[j] -= lr * buffer[j];
        } else {
            w[j] -= lr * (g[j] / denom);
        }
    }
}

static void rmsprop_update(float *w, const float *g, float *square_avg, float *grad_avg,
                           float *buffer, int64_t n, const rmsprop_scalars *c)
{
#pragma omp parallel if (n > PARALLEL_MIN)
    {
        int64_t lo, hi;
        thread_range(n, &lo, &hi);
        rmsprop_range(w, g, square_avg, grad_avg, buffer, lo, hi, c);
    }
}

void tsr_optimizer_step(tsr_optimizer *opt, uint64_t epoch)
{
    tsr_params *p = opt->params;
    const tsr_optimizer_options *o = &opt->options;
    tsr_params_settle_grads(p, epoch);
    opt->step_count++;

    adam_scalars adam = {0};
    if (o->kind == TSR_OPTIMIZER_ADAM) {
        double t = (double)opt->step_count;
        adam = (adam_scalars){
            .lr = (float)o->learning_rate,
            .beta1 = (float)o->beta1,
            .one_minus_beta1 = (float)(1.0 - o->beta1),
            .beta2 = (float)o->beta2,
            .one_minus_beta2 = (float)(1.0 - o->beta2),
            .eps = (float)o->eps,
            .weight_decay = (float)o->weight_decay,
            .correction1 = (float)(1.0 / (1.0 - pow(o->beta1, t))),
            .correction2 = (float)(1.0 / (1.0 - pow(o->beta2, t))),
        };
    }
    for (int i = 0; i < p->count; i++) {
        const tsr_param *item = &p->items[i];
        size_t off = item->offset;
        int64_t n = tsr_tensor_numel(&item->value);
        float *w = tsr_params_values_f32(p) + off;
        const float *g = tsr_params_grads_f32(p) + off;
        switch (o->kind) {
        case TSR_OPTIMIZER_SGD:
            sgd_update(w, g, opt->state_count ? opt->state[0] + off : NULL, n,
                       (float)o->learning_rate, (float)o->momentum);
            break;
        case TSR_OPTIMIZER_ADAM:
            adam_update(w, g, opt->state[0] + off, opt->state[1] + off, n, &adam,
                        (item->flags & TSR_PARAM_DECAY) != 0);
            break;
        case TSR_OPTIMIZER_RMSPROP: {
            int slot = 1;
            float *grad_avg = o->centered ? opt->state[slot++] + off : NULL;
            float *buffer = o->momentum > 0.0 ? opt->state[slot++] + off : NULL;
            rmsprop_scalars c = {
                .lr = (float)o->learning_rate,
                .alpha = (float)o->alpha,
                .one_minus_alpha = (float)(1.0 - o->alpha),
                .eps = (float)o->eps,
                .momentum = (float)o->momentum,
            };
            rmsprop_update(w, g, opt->state[0] + off, grad_avg, buffer, n, &c);
            break;
        }
        }
    }
    tsr_params_bump_version(p);
}

/* ==== checkpoints ======================================================== */

void tsr_optimizer_checkpoint(tsr_optimizer *opt, tsr_ckpt *c, const char *group)
{
    static const char *const kind_names[] = {"sgd", "adam", "rmsprop"};
    char path[512];
    /* The kind and the state blocks come from the config; a checkpoint of
     * another optimizer is refused rather than half read. */
    char kind[32];
    snprintf(kind, sizeof kind, "%s", kind_names[opt->options.kind]);
    char *file_kind = kind;
    int64_t slots = opt->state_count;
    snprintf(path, sizeof path, "%s/kind", group);
    tsr_ckpt_text(c, path, &file_kind);
    snprintf(path, sizeof path, "%s/state_count", group);
    tsr_ckpt_i64(c, path, &slots);
    if (!tsr_ckpt_writing(c) && tsr_ckpt_status(c) == TSR_STATUS_OK) {
        bool same = !strcmp(file_kind, kind) && slots == opt->state_count;
        if (!same)
            tsr_ckpt_fail(c, TSR_STATUS_FORMAT,
                          "%s holds the state of a %s optimizer with %lld state blocks; this "
                          "run's optimizer is %s with %d (was optimizer.kind, centered or "
                          "momentum changed?)",
                          group, file_kind, (long long)slots, kind, opt->state_count);
        if (!same) {
            tsr_free(file_kind);
            return;
        }
    }
    if (file_kind != kind) tsr_free(file_kind); /* read, whatever came after */
    snprintf(path, sizeof path, "%s/step_count", group);
    tsr_ckpt_i64(c, path, &opt->step_count);
    for (int s = 0; s < opt->state_count; s++)
        for (int i = 0; i < opt->params->count; i++) {
            tsr_tensor t = tsr_optimizer_state(opt, s, i);
            snprintf(path, sizeof path, "%s/%s/%s", group, opt->state_name[s],
                     opt->params->items[i].name);
            tsr_ckpt_tensor(c, path, &t);
        }
}
