/* Value heads, the NoisyNet linear layer and the dueling op: values against
 * the definitions, finite differences through every option, output shapes,
 * parameter counts, noise statistics, the means-only mode and initialisers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

static tsr_tensor *new_uniform(tsr_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                               uint64_t seed)
{
    tsr_tensor *t = tsr_tensor_new(dtype, ndim, shape);
    tsr_test_fill_uniform(t, lo, hi, seed);
    return t;
}

static double f_noise(double e) { return e < 0 ? -sqrt(-e) : sqrt(e); }

/* ==== the dueling op ======================================================= */

Test(dueling, q_is_value_plus_advantage_minus_its_mean_over_actions_per_atom)
{
    /* N = 1, A = 3, K = 2: atom 0 has V = 10, A = (1, 2, 6), mean 3;
     * atom 1 has V = -1, A = (0, 0, 3), mean 1. */
    double v[2] = {10, -1}, a[6] = {1, 0, 2, 0, 6, 3};
    tsr_tensor value = tsr_tensor_view(v, TSR_DTYPE_F64, 2, TSR_SHAPE(1, 2));
    tsr_tensor adv = tsr_tensor_view(a, TSR_DTYPE_F64, 3, TSR_SHAPE(1, 3, 2));
    tsr_grad_reset(&value, true);
    tsr_grad_reset(&adv, true);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *q = tsr_dueling_combine(ctx, &value, &adv);
    double expected[6] = {8, -2, 9, -2, 13, 1};
    tsr_test_allclose_f64(tsr_f64(q), expected, 6, 0, 1e-15, "dueling values");
    /* dq = 1 on action 2, atom 0 only: dV = 1 there; dA = 1 - 1/3 on the
     * action, -1/3 on the others. */
    double g[6] = {0, 0, 0, 0, 1, 0};
    tsr_tensor dq = tsr_tensor_view(g, TSR_DTYPE_F64, 3, TSR_SHAPE(1, 3, 2));
    tsr_backward_from(ctx, q, &dq);
    double dv_expected[2] = {1, 0}, da_expected[6] = {-1.0 / 3, 0, -1.0 / 3, 0, 2.0 / 3, 0};
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, &value)), dv_expected, 2, 0, 1e-15, "dV");
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, &adv)), da_expected, 6, 0, 1e-15, "dA");
    tsr_ctx_free(ctx);
}

static tsr_tensor *dueling_objective(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_dueling_combine(ctx, in[0], in[1]);
}

Test(dueling, backward_matches_finite_differences_and_accumulates_on_reuse)
{
    tsr_tensor *v = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 4), -1, 1, 1);
    tsr_tensor *a = new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 5, 4), -1, 1, 2);
    v->requires_grad = a->requires_grad = true;
    tsr_test_gradcheck(dueling_objective, (tsr_tensor *[]){v, a}, 2, NULL, NULL, "dueling (3, 5, 4)");
    tsr_tensor *v1 = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 1), -1, 1, 3);
    tsr_tensor *a1 = new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 6, 1), -1, 1, 4);
    v1->requires_grad = a1->requires_grad = true;
    tsr_test_gradcheck(dueling_objective, (tsr_tensor *[]){v1, a1}, 2, NULL, NULL, "dueling scalar");

    /* Used twice in one step, float32: the gradients double. */
    tsr_tensor *v32 = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3), -1, 1, 5);
    tsr_tensor *a32 = new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(2, 4, 3), -1, 1, 6);
    tsr_tensor *dq = new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(2, 4, 3), -1, 1, 7);
    tsr_grad_reset(v32, true);
    tsr_grad_reset(a32, true);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_backward_from(ctx, tsr_dueling_combine(ctx, v32, a32), dq);
    tsr_tensor *once_v = tsr_tensor_new(TSR_DTYPE_F32, 2, v32->shape);
    tsr_tensor *once_a = tsr_tensor_new(TSR_DTYPE_F32, 3, a32->shape);
    tsr_tensor_copy(once_v, tsr_grad_get(ctx, v32));
    tsr_tensor_copy(once_a, tsr_grad_get(ctx, a32));
    tsr_backward_from(ctx, tsr_dueling_combine(ctx, v32, a32), dq);
    for (int i = 0; i < 6; i++) tsr_f32(once_v)[i] *= 2;
    for (int i = 0; i < 24; i++) tsr_f32(once_a)[i] *= 2;
    tsr_test_allclose(tsr_grad_get(ctx, v32), once_v, 1e-6, 1e-6, "dV twice");
    tsr_test_allclose(tsr_grad_get(ctx, a32), once_a, 1e-6, 1e-6, "dA twice");
    tsr_ctx_free(ctx);
    tsr_tensor *all[] = {v, a, v1, a1, v32, a32, dq, once_v, once_a};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tsr_tensor_free(all[i]);
}

/* ==== the noisy linear layer =============================================== */

typedef struct noisy_model {
    tsr_params params;
    tsr_noisy_linear layer;
} noisy_model;

static void noisy_build(noisy_model *m, tsr_dtype dtype, int64_t in, int64_t out, bool relu, double sigma0)
{
    tsr_params_init_dtype(&m->params, dtype);
    tsr_noisy_linear_init(&m->layer, &m->params, "noisy", in, out, relu, sigma0);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 17, TSR_RNG_STREAM_INIT);
    tsr_noisy_linear_reset(&m->layer, &m->params, &rng);
}

static void noisy_destroy(noisy_model *m)
{
    tsr_noisy_linear_fini(&m->layer);
    tsr_params_fini(&m->params);
}

static tsr_tensor *P(noisy_model *m, int index) { return tsr_params_tensor(&m->params, index); }

Test(noisy_linear, forward_equals_the_explicit_factorised_weights_from_the_documented_draws)
{
    noisy_model m;
    noisy_build(&m, TSR_DTYPE_F64, 5, 3, false, TSR_NOISY_SIGMA0);
    /* Random sigmas, so every weight's noise term differs. */
    tsr_test_fill_uniform(P(&m, m.layer.weight_sigma), 0.1, 1, 1);
    tsr_test_fill_uniform(P(&m, m.layer.bias_sigma), 0.1, 1, 2);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(4, 5), -1, 1, 3);
    tsr_rng rng, replay;
    tsr_rng_init(&rng, 5, TSR_RNG_STREAM_NOISE);
    replay = rng;
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *y = tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x, &(tsr_noise){.rng = &rng});
    /* eps_in (5 values) first, then eps_out (3 values). */
    double fin[5], fout[3];
    for (int i = 0; i < 5; i++) fin[i] = f_noise(tsr_rng_normal(&replay));
    for (int j = 0; j < 3; j++) fout[j] = f_noise(tsr_rng_normal(&replay));
    cr_expect_eq(memcmp(&rng, &replay, sizeof rng), 0, "the layer drew 8 normals, no more, no less");
    double expected[12];
    const double *mu_w = tsr_f64(P(&m, m.layer.weight_mu)), *sigma_w = tsr_f64(P(&m, m.layer.weight_sigma));
    const double *mu_b = tsr_f64(P(&m, m.layer.bias_mu)), *sigma_b = tsr_f64(P(&m, m.layer.bias_sigma));
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 3; j++) {
            double s = mu_b[j] + sigma_b[j] * fout[j];
            for (int i = 0; i < 5; i++)
                s += (mu_w[j * 5 + i] + sigma_w[j * 5 + i] * fout[j] * fin[i]) * tsr_f64(x)[n * 5 + i];
            expected[n * 3 + j] = s;
        }
    tsr_test_allclose_f64(tsr_f64(y), expected, 12, 1e-13, 1e-13, "noisy forward");
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    noisy_destroy(&m);
}

Test(noisy_linear, means_only_mode_uses_the_means_and_draws_nothing)
{
    noisy_model m;
    noisy_build(&m, TSR_DTYPE_F64, 6, 4, true, TSR_NOISY_SIGMA0);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 6), -1, 1, 4);
    tsr_rng rng, before;
    tsr_rng_init(&rng, 6, TSR_RNG_STREAM_NOISE);
    before = rng;
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *y = tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x,
                                             &(tsr_noise){.rng = &rng, .means_only = true});
    cr_expect_eq(memcmp(&rng, &before, sizeof rng), 0, "means-only drew from the noise stream");
    const double *mu_w = tsr_f64(P(&m, m.layer.weight_mu)), *mu_b = tsr_f64(P(&m, m.layer.bias_mu));
    double expected[12];
    for (int n = 0; n < 3; n++)
        for (int j = 0; j < 4; j++) {
            double s = mu_b[j];
            for (int i = 0; i < 6; i++) s += mu_w[j * 6 + i] * tsr_f64(x)[n * 6 + i];
            expected[n * 4 + j] = s > 0 ? s : 0; /* relu */
        }
    tsr_test_allclose_f64(tsr_f64(y), expected, 12, 1e-14, 1e-14, "means only");
    /* A NULL rng is fine in means-only mode. */
    tsr_tensor *y2 = tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x,
                                              &(tsr_noise){.rng = NULL, .means_only = true});
    tsr_test_allclose(y2, y, 0, 0, "means only without an rng");
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    noisy_destroy(&m);
}

Test(noisy_linear, noise_is_fresh_each_forward_shared_by_the_batch_and_reproducible)
{
    noisy_model m;
    noisy_build(&m, TSR_DTYPE_F32, 8, 5, false, TSR_NOISY_SIGMA0);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 8), -1, 1, 5);
    memcpy(tsr_f32(x) + 8, tsr_f32(x), 8 * sizeof(float)); /* two identical rows */
    tsr_rng rng, start;
    tsr_rng_init(&rng, 7, TSR_RNG_STREAM_NOISE);
    start = rng;
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_noise noise = {.rng = &rng};
    tsr_tensor *y1 = tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x, &noise);
    tsr_tensor *y2 = tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x, &noise);
    tsr_test_allclose_f32(tsr_f32(y1), tsr_f32(y1) + 5, 5, 0, 0, "one draw for the whole batch");
    double change = 0;
    for (int i = 0; i < 5; i++) change += fabs(tsr_f32(y1)[i] - tsr_f32(y2)[i]);
    cr_expect(change > 1e-3, "two forwards gave the same output: the noise was not redrawn");
    rng = start;
    tsr_tensor *again = tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x, &noise);
    tsr_test_allclose(again, y1, 0, 0, "same stream state, same output");
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    noisy_destroy(&m);
}

Test(noisy_linear, weight_noise_has_the_factorised_gaussian_statistics)
{
    /* mu = 0, sigma_W = 1, sigma_b = 0 and x = e_0: y_j = f(eps_out_j) f(eps_in_0),
     * a product of independent f(eps), each with mean 0 and E f(eps)^2 = E|eps| =
     * sqrt(2/pi); so E y = 0 and E y^2 = 2/pi. */
    noisy_model m;
    noisy_build(&m, TSR_DTYPE_F32, 4, 8, false, TSR_NOISY_SIGMA0);
    tsr_tensor_fill(P(&m, m.layer.weight_mu), 0);
    tsr_tensor_fill(P(&m, m.layer.bias_mu), 0);
    tsr_tensor_fill(P(&m, m.layer.weight_sigma), 1);
    tsr_tensor_fill(P(&m, m.layer.bias_sigma), 0);
    tsr_params_bump_version(&m.params);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(1, 4));
    tsr_f32(x)[0] = 1;
    tsr_rng rng;
    tsr_rng_init(&rng, 8, TSR_RNG_STREAM_NOISE);
    /* The statistics are the noise's, not the kernels': the plain-C path
     * keeps 40,000 tiny forwards fast. */
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = TSR_BACKEND_REFERENCE});
    tsr_ctx_set_grad(ctx, false);
    const int draws = 20000;
    double s1 = 0, s2 = 0, out_s2 = 0;
    for (int d = 0; d < draws; d++) {
        tsr_ctx_begin_step(ctx);
        const float *y = tsr_f32(tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x, &(tsr_noise){.rng = &rng}));
        for (int j = 0; j < 8; j++) {
            s1 += y[j];
            s2 += (double)y[j] * y[j];
        }
    }
    /* The bias noise alone: sigma_b = 1, sigma_W = 0 gives y_j = f(eps_out_j). */
    tsr_tensor_fill(P(&m, m.layer.weight_sigma), 0);
    tsr_tensor_fill(P(&m, m.layer.bias_sigma), 1);
    tsr_params_bump_version(&m.params); /* cached weight layouts must see the change */
    for (int d = 0; d < draws; d++) {
        tsr_ctx_begin_step(ctx);
        const float *y = tsr_f32(tsr_noisy_linear_forward(&m.layer, ctx, &m.params, x, &(tsr_noise){.rng = &rng}));
        for (int j = 0; j < 8; j++) out_s2 += (double)y[j] * y[j];
    }
    double n = 8.0 * draws;
    cr_expect(fabs(s1 / n) < 0.02, "weight noise mean %g", s1 / n);
    cr_expect(fabs(s2 / n - 2 / M_PI) < 0.03, "weight noise E y^2 = %g, expected 2/pi = %g", s2 / n, 2 / M_PI);
    cr_expect(fabs(out_s2 / n - sqrt(2 / M_PI)) < 0.02, "bias noise E y^2 = %g, expected sqrt(2/pi) = %g",
              out_s2 / n, sqrt(2 / M_PI));
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    noisy_destroy(&m);
}

Test(noisy_linear, means_are_uniform_in_one_over_root_in_and_sigmas_sigma0_over_root_in)
{
    for (int k = 0; k < 2; k++) {
        double sigma0 = k ? 0.1 : TSR_NOISY_SIGMA0; /* Fortunato et al.; Dopamine */
        noisy_model m;
        noisy_build(&m, TSR_DTYPE_F32, 64, 128, false, sigma0);
        double bound = 1.0 / 8, s2 = 0, max_abs = 0;
        const float *mu = tsr_f32(P(&m, m.layer.weight_mu));
        for (int i = 0; i < 64 * 128; i++) {
            s2 += (double)mu[i] * mu[i];
            if (fabs(mu[i]) > max_abs) max_abs = fabs(mu[i]);
        }
        cr_expect(max_abs <= bound && max_abs > 0.95 * bound, "mu_W reaches %g, bound %g", max_abs, bound);
        cr_expect(fabs(s2 / (64 * 128) / (bound * bound / 3) - 1) < 0.05, "mu_W variance %g", s2 / (64 * 128));
        const float *mu_b = tsr_f32(P(&m, m.layer.bias_mu));
        double b_max = 0;
        for (int j = 0; j < 128; j++) b_max = fmax(b_max, fabs(mu_b[j]));
        cr_expect(b_max <= bound && b_max > 0.8 * bound, "mu_b reaches %g (not zero-initialised)", b_max);
        float sigma = (float)(sigma0 / 8);
        for (int i = 0; i < 64 * 128; i++) cr_assert_eq(tsr_f32(P(&m, m.layer.weight_sigma))[i], sigma);
        for (int j = 0; j < 128; j++) cr_assert_eq(tsr_f32(P(&m, m.layer.bias_sigma))[j], sigma);
        noisy_destroy(&m);
    }
}

/* ==== heads ================================================================= */

typedef struct head_model {
    tsr_params params;
    tsr_head head;
    tsr_tensor *x;
    tsr_rng noise_start; /* every forward starts the noise stream here */
    bool means_only;
} head_model;

static void head_build(head_model *m, tsr_dtype dtype, int64_t features, const tsr_head_options *o)
{
    memset(m, 0, sizeof *m);
    tsr_params_init_dtype(&m->params, dtype);
    tsr_error err = {0};
    cr_assert_eq(tsr_head_init(&m->head, &m->params, "head", features, o, &err), TSR_STATUS_OK, "%s",
                 err.message);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 31, TSR_RNG_STREAM_INIT);
    tsr_head_reset(&m->head, &m->params, &rng);
    for (int i = 0; i < m->params.count; i++) /* exercise the (zero) biases */
        if (m->params.items[i].value.ndim == 1 && !strstr(m->params.items[i].name, "sigma"))
            tsr_test_fill_uniform(tsr_params_tensor(&m->params, i), -0.1, 0.1, 40 + (uint64_t)i);
    tsr_rng_init(&m->noise_start, 32, TSR_RNG_STREAM_NOISE);
}

static void head_destroy(head_model *m)
{
    tsr_head_fini(&m->head);
    tsr_params_fini(&m->params);
    tsr_tensor_free(m->x);
}

static tsr_tensor *head_run(head_model *m, tsr_ctx *ctx, tsr_tensor *x)
{
    tsr_rng rng = m->noise_start;
    tsr_noise noise = {.rng = &rng, .means_only = m->means_only};
    return tsr_head_forward(&m->head, ctx, &m->params, x, &noise);
}

static tsr_tensor *head_objective(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)in;
    head_model *m = user;
    return head_run(m, ctx, m->x);
}

static tsr_head_options small_options(bool noisy, bool dueling, bool distributional, int64_t hidden,
                                      int64_t scale)
{
    tsr_head_options o = tsr_head_options_default(3);
    o.noisy = noisy;
    o.dueling = dueling;
    o.distributional = distributional;
    o.num_atoms = 4;
    o.hidden_units = hidden;
    o.hidden_scale = scale;
    return o;
}

static void gradcheck_head(tsr_head_options o, bool tokens, bool means_only)
{
    head_model m;
    head_build(&m, TSR_DTYPE_F64, 6, &o);
    m.means_only = means_only;
    m.x = tokens ? new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 2), -1, 1, 50)
                 : new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 6), -1, 1, 50);
    m.x->requires_grad = true;
    tsr_tensor *inputs[16] = {m.x};
    int count = 1;
    for (int i = 0; i < m.params.count; i++) inputs[count++] = tsr_params_tensor(&m.params, i);
    char what[160];
    snprintf(what, sizeof what, "head noisy=%d%s dueling=%d distributional=%d hidden=%lldx%lld%s",
             o.noisy, means_only ? " (means only)" : "", o.dueling, o.distributional,
             (long long)o.hidden_units, (long long)o.hidden_scale, tokens ? " on tokens" : "");
    tsr_test_gradcheck(head_objective, inputs, count, &m, NULL, what);
    head_destroy(&m);
}

Test(heads, backward_matches_finite_differences_for_every_combination_of_options)
{
    for (int noisy = 0; noisy < 2; noisy++)
        for (int dueling = 0; dueling < 2; dueling++)
            for (int distributional = 0; distributional < 2; distributional++)
                for (int64_t scale = 1; scale <= 2; scale++)
                    gradcheck_head(small_options(noisy, dueling, distributional, 4, scale), false, false);
    /* No hidden layer, token inputs, and noisy heads in means-only mode. */
    gradcheck_head(small_options(false, true, true, 0, 1), false, false);
    gradcheck_head(small_options(true, false, false, 0, 1), true, false);
    gradcheck_head(small_options(false, false, true, 4, 1), true, false);
    gradcheck_head(small_options(true, true, true, 4, 1), false, true);
}

/* The dueling distributional head against its definition, written out. */
Test(heads, dueling_distributional_logits_follow_the_definition)
{
    head_model m;
    tsr_head_options o = small_options(false, true, true, 5, 1);
    head_build(&m, TSR_DTYPE_F64, 6, &o);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 6), -1, 1, 60);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *q = head_run(&m, ctx, x);
    cr_assert(q->ndim == 3 && q->shape[0] == 2 && q->shape[1] == 3 && q->shape[2] == 4);
#define PV(name) tsr_f64(tsr_params_tensor(&m.params, tsr_params_find(&m.params, name)))
    const double *w1 = PV("head/hidden/weight"), *b1 = PV("head/hidden/bias");
    const double *wa = PV("head/advantage/weight"), *ba = PV("head/advantage/bias");
    const double *wv = PV("head/value/weight"), *bv = PV("head/value/bias");
#undef PV
    for (int n = 0; n < 2; n++) {
        double h[5], adv[12], val[4];
        for (int j = 0; j < 5; j++) {
            double s = b1[j];
            for (int i = 0; i < 6; i++) s += w1[j * 6 + i] * tsr_f64(x)[n * 6 + i];
            h[j] = s > 0 ? s : 0;
        }
        for (int r = 0; r < 12; r++) {
            adv[r] = ba[r];
            for (int j = 0; j < 5; j++) adv[r] += wa[r * 5 + j] * h[j];
        }
        for (int k = 0; k < 4; k++) {
            val[k] = bv[k];
            for (int j = 0; j < 5; j++) val[k] += wv[k * 5 + j] * h[j];
        }
        for (int a = 0; a < 3; a++)
            for (int k = 0; k < 4; k++) {
                double mean = (adv[0 * 4 + k] + adv[1 * 4 + k] + adv[2 * 4 + k]) / 3;
                double expected = val[k] + adv[a * 4 + k] - mean;
                double got = tsr_f64(q)[(n * 3 + a) * 4 + k];
                cr_expect(fabs(got - expected) < 1e-12, "logit (%d, %d, %d): %g vs %g", n, a, k, got, expected);
            }
    }
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    head_destroy(&m);
}

Test(heads, outputs_are_n_by_a_or_n_by_a_by_k_at_batch_1_and_32)
{
    for (int distributional = 0; distributional < 2; distributional++)
        for (int dueling = 0; dueling < 2; dueling++)
            for (int noisy = 0; noisy < 2; noisy++) {
                tsr_head_options o = tsr_head_options_default(18);
                o.distributional = distributional;
                o.dueling = dueling;
                o.noisy = noisy;
                head_model m;
                head_build(&m, TSR_DTYPE_F32, 121 * 32, &o);
                tsr_ctx *ctx = tsr_ctx_new(NULL);
                for (int64_t batch = 1; batch <= 32; batch += 31) {
                    tsr_ctx_begin_step(ctx);
                    tsr_tensor *x = tsr_ctx_tensor(ctx, TSR_DTYPE_F32, 3, TSR_SHAPE(batch, 121, 32));
                    tsr_tensor_fill(x, 0.1);
                    tsr_tensor *q = head_run(&m, ctx, x);
                    if (distributional)
                        cr_expect(q->ndim == 3 && q->shape[0] == batch && q->shape[1] == 18 && q->shape[2] == 51,
                                  "distributional dueling=%d noisy=%d batch %lld", dueling, noisy, (long long)batch);
                    else
                        cr_expect(q->ndim == 2 && q->shape[0] == batch && q->shape[1] == 18,
                                  "scalar dueling=%d noisy=%d batch %lld", dueling, noisy, (long long)batch);
                }
                tsr_ctx_free(ctx);
                head_destroy(&m);
            }
}

/* The float32 oneDNN path (inner products with a noisy, non-parameter bias)
 * against the float64 reference, forward and parameter gradients. */
Test(heads, float32_onednn_noisy_rainbow_head_matches_the_float64_reference)
{
    tsr_head_options o = tsr_head_options_default(6);
    o.noisy = o.dueling = o.distributional = true;
    o.hidden_units = 64;
    head_model m32, m64;
    head_build(&m32, TSR_DTYPE_F32, 200, &o);
    head_build(&m64, TSR_DTYPE_F64, 200, &o);
    for (int i = 0; i < m32.params.count; i++)
        tsr_tensor_copy(tsr_params_tensor(&m64.params, i), tsr_params_tensor(&m32.params, i));
    tsr_tensor *x32 = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(8, 200), -1, 1, 75);
    tsr_tensor *x64 = tsr_tensor_new(TSR_DTYPE_F64, 2, x32->shape);
    tsr_tensor_copy(x64, x32);
    tsr_ctx *ctx32 = tsr_ctx_new(NULL), *ctx64 = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx32);
    tsr_ctx_begin_step(ctx64);
    tsr_tensor *q32 = head_run(&m32, ctx32, x32), *q64 = head_run(&m64, ctx64, x64);
    tsr_test_allclose(q32, q64, 1e-4, 1e-5, "logits");
    tsr_tensor *dq = new_uniform(TSR_DTYPE_F64, 3, q64->shape, -1, 1, 76);
    tsr_tensor *dq32 = tsr_tensor_new(TSR_DTYPE_F32, 3, q64->shape);
    tsr_tensor_copy(dq32, dq);
    tsr_backward_from(ctx32, q32, dq32);
    tsr_backward_from(ctx64, q64, dq);
    for (int i = 0; i < m32.params.count; i++)
        tsr_test_allclose(&m32.params.items[i].grad, &m64.params.items[i].grad, 1e-3, 1e-5,
                          m32.params.items[i].name);
    tsr_tensor *all[] = {x32, x64, dq, dq32};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tsr_tensor_free(all[i]);
    tsr_ctx_free(ctx32);
    tsr_ctx_free(ctx64);
    head_destroy(&m32);
    head_destroy(&m64);
}

static int64_t dense(int64_t in, int64_t out) { return in * out + out; }

Test(heads, parameter_counts_equal_the_arithmetic)
{
    struct {
        tsr_head_options o;
        int64_t expected, literal;
        const char *what;
    } cases[4];
    /* DQN on IMPALA features (3872) with 18 actions: dense(3872, 512) + dense(512, 18)
     * = 1,982,976 + 9,234. */
    cases[0].o = tsr_head_options_default(18);
    cases[0].expected = dense(3872, 512) + dense(512, 18);
    cases[0].literal = 1992210;
    cases[0].what = "DQN";
    /* The widened baseline, E = 4: dense(3872, 2048) + dense(2048, 18). */
    cases[1].o = tsr_head_options_default(18);
    cases[1].o.hidden_scale = 4;
    cases[1].expected = dense(3872, 2048) + dense(2048, 18);
    cases[1].literal = 7968786;
    cases[1].what = "DQN, hidden x4";
    /* Full Rainbow: noisy (every layer twice: mu and sigma), dueling,
     * 51 atoms: 2 dense(3872, 512) + 2 dense(512, 18*51) + 2 dense(512, 51). */
    cases[2].o = tsr_head_options_default(18);
    cases[2].o.noisy = cases[2].o.dueling = cases[2].o.distributional = true;
    cases[2].expected = 2 * (dense(3872, 512) + dense(512, 18 * 51) + dense(512, 51));
    cases[2].literal = 4960146;
    cases[2].what = "Full Rainbow";
    /* Dopamine's MinAtar DQN: no hidden layer, 1600 features to 6 actions. */
    cases[3].o = tsr_head_options_default(6);
    cases[3].o.hidden_units = 0;
    cases[3].expected = dense(1600, 6);
    cases[3].literal = 9606;
    cases[3].what = "MinAtar DQN";
    for (int i = 0; i < 4; i++) {
        head_model m;
        head_build(&m, TSR_DTYPE_F32, i == 3 ? 1600 : 3872, &cases[i].o);
        cr_expect_eq(tsr_params_count(&m.params), cases[i].expected, "%s", cases[i].what);
        cr_expect_eq(tsr_params_count(&m.params), cases[i].literal, "%s", cases[i].what);
        cr_expect_eq(tsr_head_param_count(&m.head), cases[i].literal, "%s: query", cases[i].what);
        head_destroy(&m);
    }
}

Test(heads, summary_rows_account_for_every_parameter)
{
    tsr_head_options o = tsr_head_options_default(4);
    o.dueling = o.noisy = true;
    head_model m;
    head_build(&m, TSR_DTYPE_F32, 20, &o);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_summary summary = {0};
    tsr_ctx_set_summary(ctx, &summary);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 20), -1, 1, 70);
    head_run(&m, ctx, x);
    tsr_ctx_set_summary(ctx, NULL);
    int64_t total = 0;
    for (int i = 0; i < summary.count; i++) total += summary.rows[i].params;
    cr_expect_eq(summary.count, 4); /* hidden, advantage, value, head */
    cr_expect_eq(total, tsr_params_count(&m.params));
    cr_expect_str_eq(summary.rows[3].name, "head");
    cr_expect_eq(summary.rows[3].shape[1], 4);
    tsr_summary_fini(&summary);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    head_destroy(&m);
}

Test(heads, kernels_are_xavier_uniform_by_default_or_rainbow_variance_scaling_with_zero_biases)
{
    for (int k = 0; k < 2; k++) {
        tsr_head_options o = tsr_head_options_default(6);
        if (k) o.init = tsr_head_init_rainbow();
        tsr_params p;
        tsr_params_init(&p);
        tsr_head h;
        tsr_error err = {0};
        cr_assert_eq(tsr_head_init(&h, &p, "head", 64, &o, &err), TSR_STATUS_OK);
        tsr_params_finalize(&p);
        tsr_rng rng;
        tsr_rng_init(&rng, 80, TSR_RNG_STREAM_INIT);
        tsr_head_reset(&h, &p, &rng);
        /* hidden (512, 64): xavier bound sqrt(6 / 576); rainbow sqrt(3 (1/sqrt 3) / 64). */
        double bound = k ? sqrt(sqrt(3.0) / 64) : sqrt(6.0 / 576);
        const tsr_tensor *w = tsr_params_tensor(&p, tsr_params_find(&p, "head/hidden/weight"));
        double s2 = 0, max_abs = 0;
        for (int i = 0; i < 512 * 64; i++) {
            s2 += (double)tsr_f32(w)[i] * tsr_f32(w)[i];
            max_abs = fmax(max_abs, fabs(tsr_f32(w)[i]));
        }
        cr_expect(max_abs <= bound && max_abs > 0.99 * bound, "%s: |w| max %g, bound %g",
                  k ? "rainbow" : "xavier", max_abs, bound);
        cr_expect(fabs(s2 / (512 * 64) / (bound * bound / 3) - 1) < 0.05, "variance");
        const tsr_tensor *b = tsr_params_tensor(&p, tsr_params_find(&p, "head/output/bias"));
        for (int j = 0; j < 6; j++) cr_expect_eq(tsr_f32(b)[j], 0.0f);
        tsr_head_fini(&h);
        tsr_params_fini(&p);
    }
}

Test(heads, bad_configuration_values_are_reported_with_the_value_and_what_is_allowed)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_head h;
    tsr_error err = {0};
    tsr_head_options o = tsr_head_options_default(0);
    cr_expect_eq(tsr_head_init(&h, &p, "head", 10, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "num_actions = 0"), "%s", err.message);
    o = tsr_head_options_default(4);
    o.hidden_scale = 0;
    cr_expect_eq(tsr_head_init(&h, &p, "head", 10, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "hidden_scale = 0") && strstr(err.message, ">= 1"), "%s", err.message);
    o = tsr_head_options_default(4);
    o.distributional = true;
    o.num_atoms = 1;
    cr_expect_eq(tsr_head_init(&h, &p, "head", 10, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "num_atoms = 1"), "%s", err.message);
    o = tsr_head_options_default(4);
    o.noisy = true;
    o.noisy_sigma0 = -0.5;
    cr_expect_eq(tsr_head_init(&h, &p, "head", 10, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "noisy_sigma0 = -0.5"), "%s", err.message);
    o = tsr_head_options_default(4);
    o.hidden_units = -1;
    cr_expect_eq(tsr_head_init(&h, &p, "head", 10, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect_eq(tsr_head_init(&h, &p, "head", 0, &(tsr_head_options){.num_actions = 2, .hidden_scale = 1}, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    /* num_atoms is ignored when the head is not distributional. */
    o = tsr_head_options_default(4);
    o.num_atoms = 0;
    cr_expect_eq(tsr_head_init(&h, &p, "head", 10, &o, &err), TSR_STATUS_OK);
    cr_expect_eq(p.count, 4);
    tsr_params_fini(&p);
}

Test(heads, a_warm_noisy_rainbow_training_step_allocates_nothing)
{
    tsr_head_options o = tsr_head_options_default(6);
    o.noisy = o.dueling = o.distributional = true;
    head_model m;
    head_build(&m, TSR_DTYPE_F32, 1600, &o);
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 12});
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 1600), 0, 1, 90);
    uint64_t allocations = 0;
    tsr_rng rng;
    tsr_rng_init(&rng, 91, TSR_RNG_STREAM_NOISE);
    for (int step = 0; step < 4; step++) {
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_ctx_begin_step(ctx);
        tsr_tensor *q = tsr_head_forward(&m.head, ctx, &m.params, x, &(tsr_noise){.rng = &rng});
        tsr_backward(ctx, tsr_mean_all(ctx, tsr_log_softmax(ctx, q, -1)));
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    head_destroy(&m);
}
