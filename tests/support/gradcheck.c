/* gradcheck.c — central differences against the tape's gradients. */
#include "support/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "tessera/rng.h"
#include "tessera/status.h"

void tsr_test_fill_uniform(tsr_tensor *t, double lo, double hi, uint64_t seed)
{
    tsr_rng rng;
    tsr_rng_init(&rng, seed, 1000);
    int64_t n = tsr_tensor_numel(t);
    TSR_ASSERT(tsr_tensor_is_contiguous(t));
    for (int64_t i = 0; i < n; i++) {
        double v = lo + (hi - lo) * tsr_rng_uniform(&rng);
        if (t->dtype == TSR_DTYPE_F64) tsr_f64(t)[i] = v;
        else if (t->dtype == TSR_DTYPE_F32) tsr_f32(t)[i] = (float)v;
        else TSR_ASSERT_MSG(0, "fill_uniform of %s", tsr_dtype_name(t->dtype));
    }
}

/* L = sum(r * f(inputs)) evaluated without recording. */
static double objective(tsr_ctx *ctx, tsr_test_forward_fn forward, tsr_tensor *const *inputs,
                        void *user, const double *r)
{
    tsr_ctx_begin_step(ctx);
    bool was = tsr_ctx_set_grad(ctx, false);
    tsr_tensor *out = forward(ctx, inputs, user);
    tsr_ctx_set_grad(ctx, was);
    TSR_ASSERT(out->dtype == TSR_DTYPE_F64 && tsr_tensor_is_contiguous(out));
    double sum = 0.0;
    int64_t n = tsr_tensor_numel(out);
    for (int64_t i = 0; i < n; i++) sum += r[i] * tsr_f64(out)[i];
    return sum;
}

long tsr_test_gradcheck(tsr_test_forward_fn forward, tsr_tensor *const *inputs, int count,
                        void *user, const tsr_gradcheck_options *options, const char *what)
{
    double eps = options && options->eps > 0 ? options->eps : 1e-6;
    double rtol = options && options->rtol > 0 ? options->rtol : 1e-6;
    double atol = options && options->atol > 0 ? options->atol : 1e-8;
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 20});

    /* Analytic gradients, copied out of the arena. */
    tsr_ctx_begin_step(ctx);
    for (int i = 0; i < count; i++) {
        TSR_ASSERT(inputs[i]->dtype == TSR_DTYPE_F64 || !inputs[i]->requires_grad);
        if (inputs[i]->grad && !inputs[i]->grad_in_arena)
            inputs[i]->grad_epoch = 0; /* a parameter: keep its gradient view */
        else
            tsr_grad_reset(inputs[i], inputs[i]->requires_grad);
    }
    tsr_tensor *out = forward(ctx, inputs, user);
    int64_t n_out = tsr_tensor_numel(out);
    double *r = tsr_malloc((size_t)n_out * sizeof *r);
    tsr_rng rng;
    tsr_rng_init(&rng, 12345, 77);
    for (int64_t i = 0; i < n_out; i++) r[i] = 2.0 * tsr_rng_uniform(&rng) - 1.0;
    tsr_tensor rt = tsr_tensor_view(r, TSR_DTYPE_F64, out->ndim, out->shape);
    cr_assert(out->requires_grad, "%s: the output does not require a gradient", what);
    tsr_backward_from(ctx, out, &rt);
    double *analytic[16] = {0};
    TSR_ASSERT(count <= 16);
    for (int i = 0; i < count; i++) {
        if (!inputs[i]->requires_grad) continue;
        int64_t n = tsr_tensor_numel(inputs[i]);
        analytic[i] = tsr_calloc((size_t)n, sizeof(double));
        tsr_tensor *g = tsr_grad_get(ctx, inputs[i]);
        if (g) memcpy(analytic[i], g->data, (size_t)n * sizeof(double)); /* else zero */
    }

    long bad = 0;
    double worst_excess = -1, worst_a = 0, worst_n = 0;
    int worst_input = -1;
    long worst_index = -1;
    for (int i = 0; i < count; i++) {
        if (!inputs[i]->requires_grad) continue;
        double *x = tsr_f64(inputs[i]);
        int64_t n = tsr_tensor_numel(inputs[i]);
        for (int64_t j = 0; j < n; j++) {
            double saved = x[j];
            x[j] = saved + eps;
            double up = objective(ctx, forward, inputs, user, r);
            x[j] = saved - eps;
            double down = objective(ctx, forward, inputs, user, r);
            x[j] = saved;
            double numeric = (up - down) / (2 * eps);
            double diff = fabs(numeric - analytic[i][j]);
            double tol = atol + rtol * fabs(numeric);
            if (!(diff <= tol)) {
                bad++;
                if (diff - tol > worst_excess) {
                    worst_excess = diff - tol;
                    worst_a = analytic[i][j];
                    worst_n = numeric;
                    worst_input = i;
                    worst_index = (long)j;
                }
            }
        }
        tsr_free(analytic[i]);
    }
    if (bad) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "%s: %ld gradient elements differ; worst: input %d element %ld analytic %.12g "
                 "numeric %.12g",
                 what, bad, worst_input, worst_index, worst_a, worst_n);
        cr_expect_fail("%s", msg);
    }
    for (int i = 0; i < count; i++)
        if (!inputs[i]->grad || inputs[i]->grad_in_arena)
            tsr_grad_reset(inputs[i], inputs[i]->requires_grad);
    tsr_free(r);
    tsr_ctx_free(ctx);
    return bad;
}
