#include <math.h>
#include <string.h>

#include <criterion/criterion.h>
#include <omp.h>

#include "support/allclose.h"
#include "tessera/tessera.h"

/* Two parameters: "w" (2) receives weight decay, "b" (1) does not. */
static void make_params(tsr_params *p, double w0, double w1, double b0)
{
    tsr_params_init(p);
    tsr_params_add(p, "w", 1, TSR_SHAPE(2), TSR_PARAM_DECAY);
    tsr_params_add(p, "b", 1, TSR_SHAPE(1), 0);
    tsr_params_finalize(p);
    tsr_f32(tsr_params_tensor(p, 0))[0] = (float)w0;
    tsr_f32(tsr_params_tensor(p, 0))[1] = (float)w1;
    tsr_f32(tsr_params_tensor(p, 1))[0] = (float)b0;
}

/* Writes a gradient as a backward pass in `epoch` would. */
static void give_grad(tsr_params *p, int index, const float *g, uint64_t epoch)
{
    tsr_tensor *value = tsr_params_tensor(p, index);
    memcpy(value->grad->data, g, tsr_tensor_nbytes(value));
    value->grad_epoch = epoch;
}

static tsr_optimizer *make_optimizer(tsr_params *p, tsr_optimizer_options options)
{
    tsr_optimizer *opt = NULL;
    tsr_error err = {0};
    tsr_status status = tsr_optimizer_new(&opt, p, &options, &err);
    cr_assert_eq(status, TSR_STATUS_OK, "%s", err.message);
    return opt;
}

static void expect_value(tsr_params *p, int index, int element, double expected, const char *what)
{
    float got = tsr_f32(tsr_params_tensor(p, index))[element];
    cr_expect(fabs(got - expected) <= 1e-6 * fabs(expected) + 1e-7, "%s: %.9g, expected %.9g",
              what, got, expected);
}

/* ---- SGD ---- */

Test(sgd, steps_against_the_gradient)
{
    tsr_params p;
    make_params(&p, 1.0, -2.0, 0.5);
    tsr_optimizer_options o = tsr_optimizer_sgd_defaults();
    o.learning_rate = 0.1;
    tsr_optimizer *opt = make_optimizer(&p, o);
    cr_expect_eq(tsr_optimizer_state_count(opt), 0, "plain SGD keeps no state");
    give_grad(&p, 0, (float[]){0.5f, -1.0f}, 1);
    give_grad(&p, 1, (float[]){2.0f}, 1);
    tsr_optimizer_step(opt, 1);
    expect_value(&p, 0, 0, 1.0 - 0.1 * 0.5, "w[0]");
    expect_value(&p, 0, 1, -2.0 + 0.1 * 1.0, "w[1]");
    expect_value(&p, 1, 0, 0.5 - 0.1 * 2.0, "b");
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(sgd, momentum_accumulates_a_velocity)
{
    tsr_params p;
    make_params(&p, 1.0, 0.0, 0.0);
    tsr_optimizer_options o = tsr_optimizer_sgd_defaults();
    o.learning_rate = 0.1;
    o.momentum = 0.9;
    tsr_optimizer *opt = make_optimizer(&p, o);
    cr_expect_str_eq(tsr_optimizer_state_name(opt, 0), "momentum_buffer");
    float g[3] = {0.5f, 0.5f, -1.0f};
    /* b1 = 0.5, w1 = 1 - 0.1 * 0.5 = 0.95
     * b2 = 0.9 * 0.5 + 0.5 = 0.95, w2 = 0.95 - 0.1 * 0.95 = 0.855
     * b3 = 0.9 * 0.95 - 1 = -0.145, w3 = 0.855 + 0.1 * 0.145 = 0.8695 */
    double expected[3] = {0.95, 0.855, 0.8695};
    for (int t = 0; t < 3; t++) {
        give_grad(&p, 0, (float[]){g[t], 0.0f}, (uint64_t)t + 1);
        tsr_optimizer_step(opt, (uint64_t)t + 1);
        expect_value(&p, 0, 0, expected[t], "w with momentum");
    }
    tsr_tensor buffer = tsr_optimizer_state(opt, 0, 0);
    cr_expect_float_eq(tsr_f32(&buffer)[0], -0.145f, 1e-6f);
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

/* ---- Adam ---- */

static tsr_optimizer_options adam_options(void)
{
    tsr_optimizer_options o = tsr_optimizer_adam_defaults();
    o.learning_rate = 0.01;
    o.eps = 1e-3;
    return o;
}

Test(adam, defaults_are_dopamines)
{
    tsr_optimizer_options o = tsr_optimizer_adam_defaults();
    cr_expect_eq(o.kind, TSR_OPTIMIZER_ADAM);
    cr_expect_eq(o.learning_rate, 6.25e-5);
    cr_expect_eq(o.eps, 1.5e-4);
    cr_expect_eq(o.beta1, 0.9);
    cr_expect_eq(o.beta2, 0.999);
    cr_expect_eq(o.weight_decay, 0.0);
}

Test(adam, first_steps_match_hand_computed_values_with_eps_outside_the_root)
{
    tsr_params p;
    make_params(&p, 1.0, 0.0, 0.0);
    tsr_optimizer *opt = make_optimizer(&p, adam_options());
    /* Step 1, g = 0.5:
     *   m = 0.1 * 0.5 = 0.05            v = 0.001 * 0.25 = 0.00025
     *   m^ = 0.05 / (1 - 0.9) = 0.5     v^ = 0.00025 / (1 - 0.999) = 0.25
     *   w = 1 - 0.01 * 0.5 / (sqrt(0.25) + 0.001) */
    give_grad(&p, 0, (float[]){0.5f, 0.0f}, 1);
    tsr_optimizer_step(opt, 1);
    double w1 = 1.0 - 0.01 * 0.5 / (0.5 + 0.001);
    expect_value(&p, 0, 0, w1, "w after step 1");
    tsr_tensor mu = tsr_optimizer_state(opt, 0, 0), nu = tsr_optimizer_state(opt, 1, 0);
    cr_expect_float_eq(tsr_f32(&mu)[0], 0.05f, 1e-8f);
    cr_expect_float_eq(tsr_f32(&nu)[0], 0.00025f, 1e-10f);
    /* Step 2, g = -0.25:
     *   m = 0.9 * 0.05 + 0.1 * -0.25 = 0.02
     *   v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225
     *   m^ = 0.02 / (1 - 0.81) = 0.02 / 0.19
     *   v^ = 0.00031225 / (1 - 0.998001) = 0.00031225 / 0.001999 */
    give_grad(&p, 0, (float[]){-0.25f, 0.0f}, 2);
    tsr_optimizer_step(opt, 2);
    double w2 = w1 - 0.01 * (0.02 / 0.19) / (sqrt(0.00031225 / 0.001999) + 0.001);
    expect_value(&p, 0, 0, w2, "w after step 2");
    /* Step 3, g = 1:
     *   m = 0.9 * 0.02 + 0.1 = 0.118      v = 0.999 * 0.00031225 + 0.001 = 0.00131193775
     *   m^ = 0.118 / (1 - 0.729) = 0.118 / 0.271
     *   v^ = 0.00131193775 / (1 - 0.997002999) = 0.00131193775 / 0.002997001 */
    give_grad(&p, 0, (float[]){1.0f, 0.0f}, 3);
    tsr_optimizer_step(opt, 3);
    double w3 = w2 - 0.01 * (0.118 / 0.271) / (sqrt(0.00131193775 / 0.002997001) + 0.001);
    expect_value(&p, 0, 0, w3, "w after step 3");
    /* A parameter whose gradient stays zero does not move. */
    expect_value(&p, 0, 1, 0.0, "w[1] with zero gradients");
    cr_expect_eq(tsr_optimizer_step_count(opt), 3);
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(adam, bias_correction_makes_the_first_step_the_learning_rate_at_any_gradient_scale)
{
    /* With eps tiny, m^ / sqrt(v^) = g / |g| on the first step: without the
     * bias correction it would be 0.1 g / sqrt(0.001 g^2) = 3.16 sign(g). */
    float scales[3] = {1e-3f, 1.0f, 1e3f};
    for (int s = 0; s < 3; s++) {
        tsr_params p;
        make_params(&p, 0.0, 0.0, 0.0);
        tsr_optimizer_options o = tsr_optimizer_adam_defaults();
        o.learning_rate = 0.1;
        o.eps = 1e-12;
        tsr_optimizer *opt = make_optimizer(&p, o);
        give_grad(&p, 0, (float[]){scales[s], -scales[s]}, 1);
        tsr_optimizer_step(opt, 1);
        expect_value(&p, 0, 0, -0.1, "first step with a positive gradient");
        expect_value(&p, 0, 1, 0.1, "first step with a negative gradient");
        tsr_optimizer_free(opt);
        tsr_params_fini(&p);
    }
}

Test(adamw, decays_only_parameters_flagged_for_decay)
{
    tsr_params p;
    make_params(&p, 2.0, -4.0, 2.0);
    tsr_optimizer_options o = adam_options();
    o.weight_decay = 0.1;
    tsr_optimizer *opt = make_optimizer(&p, o);
    /* Step 1, g = 0.5 on w[0] and b, 0 on w[1]:
     *   w[0] = 2 - 0.01 * (0.5 / (0.5 + 0.001) + 0.1 * 2)
     *   w[1] = -4 - 0.01 * (0 / (0 + 0.001) + 0.1 * -4) = -4 + 0.004
     *   b    = 2 - 0.01 * 0.5 / (0.5 + 0.001)       (not flagged: no decay) */
    give_grad(&p, 0, (float[]){0.5f, 0.0f}, 1);
    give_grad(&p, 1, (float[]){0.5f}, 1);
    tsr_optimizer_step(opt, 1);
    expect_value(&p, 0, 0, 2.0 - 0.01 * (0.5 / 0.501 + 0.1 * 2.0), "decayed w[0]");
    expect_value(&p, 0, 1, -4.0 + 0.01 * 0.1 * 4.0, "decayed w[1]");
    expect_value(&p, 1, 0, 2.0 - 0.01 * 0.5 / 0.501, "undecayed b");
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(adam, a_parameter_without_a_gradient_this_step_is_settled_to_zero_gradient)
{
    tsr_params p;
    make_params(&p, 1.0, 1.0, 1.0);
    tsr_optimizer *opt = make_optimizer(&p, adam_options());
    give_grad(&p, 0, (float[]){0.5f, 0.5f}, 1);
    give_grad(&p, 1, (float[]){0.5f}, 1);
    tsr_optimizer_step(opt, 1);
    /* Step 2: only w gets a gradient; b's buffer still holds step 1's 0.5. */
    give_grad(&p, 0, (float[]){0.5f, 0.5f}, 2);
    tsr_optimizer_step(opt, 2);
    cr_expect_eq(tsr_f32(tsr_params_tensor(&p, 1)->grad)[0], 0.0f, "b's stale gradient survived");
    /* b moves on its first moment only: m = 0.9 * 0.05 = 0.045,
     * v = 0.999 * 0.00025 = 0.00024975; m^ = 0.045 / 0.19, v^ = 0.00024975 / 0.001999. */
    double b1 = 1.0 - 0.01 * 0.5 / 0.501;
    double b2 = b1 - 0.01 * (0.045 / 0.19) / (sqrt(0.00024975 / 0.001999) + 0.001);
    expect_value(&p, 1, 0, b2, "b after a step without gradient");
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

/* ---- RMSProp ---- */

Test(rmsprop, minatar_defaults_are_the_papers)
{
    tsr_optimizer_options o = tsr_optimizer_rmsprop_minatar_defaults();
    cr_expect_eq(o.kind, TSR_OPTIMIZER_RMSPROP);
    cr_expect_eq(o.learning_rate, 0.00025);
    cr_expect_eq(o.alpha, 0.95);
    cr_expect_eq(o.eps, 0.01);
    cr_expect(o.centered);
    cr_expect_eq(o.momentum, 0.0);
}

static tsr_optimizer_options rmsprop_options(bool centered, double momentum)
{
    tsr_optimizer_options o = tsr_optimizer_rmsprop_minatar_defaults();
    o.learning_rate = 0.01;
    o.centered = centered;
    o.momentum = momentum;
    return o;
}

/* Steps with g = 0.5, then g = -0.25 (alpha 0.95, eps 0.01, lr 0.01):
 *   s1 = 0.05 * 0.25 = 0.0125                 a1 = 0.05 * 0.5 = 0.025
 *   s2 = 0.95 * 0.0125 + 0.05 * 0.0625 = 0.015
 *   a2 = 0.95 * 0.025 + 0.05 * -0.25 = 0.01125
 * centred: d = sqrt(s - a^2) + 0.01; plain: d = sqrt(s) + 0.01. */
static const double S1 = 0.0125, A1 = 0.025, S2 = 0.015, A2 = 0.01125;

Test(rmsprop, centred_first_steps_match_hand_computed_values)
{
    tsr_params p;
    make_params(&p, 1.0, 0.0, 0.0);
    tsr_optimizer *opt = make_optimizer(&p, rmsprop_options(true, 0.0));
    cr_expect_eq(tsr_optimizer_state_count(opt), 2);
    cr_expect_str_eq(tsr_optimizer_state_name(opt, 0), "square_avg");
    cr_expect_str_eq(tsr_optimizer_state_name(opt, 1), "grad_avg");
    give_grad(&p, 0, (float[]){0.5f, 0.0f}, 1);
    tsr_optimizer_step(opt, 1);
    double d1 = sqrt(S1 - A1 * A1) + 0.01; /* sqrt(0.011875) + 0.01 */
    double w1 = 1.0 - 0.01 * 0.5 / d1;
    expect_value(&p, 0, 0, w1, "w after step 1");
    give_grad(&p, 0, (float[]){-0.25f, 0.0f}, 2);
    tsr_optimizer_step(opt, 2);
    double d2 = sqrt(S2 - A2 * A2) + 0.01; /* sqrt(0.0148734375) + 0.01 */
    expect_value(&p, 0, 0, w1 + 0.01 * 0.25 / d2, "w after step 2");
    tsr_tensor s = tsr_optimizer_state(opt, 0, 0), a = tsr_optimizer_state(opt, 1, 0);
    cr_expect_float_eq(tsr_f32(&s)[0], (float)S2, 1e-8f);
    cr_expect_float_eq(tsr_f32(&a)[0], (float)A2, 1e-8f);
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(rmsprop, plain_first_steps_use_the_uncentred_second_moment)
{
    tsr_params p;
    make_params(&p, 1.0, 0.0, 0.0);
    tsr_optimizer *opt = make_optimizer(&p, rmsprop_options(false, 0.0));
    cr_expect_eq(tsr_optimizer_state_count(opt), 1);
    give_grad(&p, 0, (float[]){0.5f, 0.0f}, 1);
    tsr_optimizer_step(opt, 1);
    double w1 = 1.0 - 0.01 * 0.5 / (sqrt(S1) + 0.01);
    expect_value(&p, 0, 0, w1, "w after step 1");
    give_grad(&p, 0, (float[]){-0.25f, 0.0f}, 2);
    tsr_optimizer_step(opt, 2);
    expect_value(&p, 0, 0, w1 + 0.01 * 0.25 / (sqrt(S2) + 0.01), "w after step 2");
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(rmsprop, momentum_buffers_the_normalised_gradient)
{
    tsr_params p;
    make_params(&p, 1.0, 0.0, 0.0);
    tsr_optimizer *opt = make_optimizer(&p, rmsprop_options(true, 0.9));
    cr_expect_str_eq(tsr_optimizer_state_name(opt, 2), "momentum_buffer");
    give_grad(&p, 0, (float[]){0.5f, 0.0f}, 1);
    tsr_optimizer_step(opt, 1);
    double buf1 = 0.5 / (sqrt(S1 - A1 * A1) + 0.01);
    double w1 = 1.0 - 0.01 * buf1;
    expect_value(&p, 0, 0, w1, "w after step 1");
    give_grad(&p, 0, (float[]){-0.25f, 0.0f}, 2);
    tsr_optimizer_step(opt, 2);
    double buf2 = 0.9 * buf1 - 0.25 / (sqrt(S2 - A2 * A2) + 0.01);
    expect_value(&p, 0, 0, w1 - 0.01 * buf2, "w after step 2");
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

/* ---- state layout, versions, options ---- */

Test(optimizer, state_blocks_share_the_parameter_layout)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_params_add(&p, "conv/weight", 4, TSR_SHAPE(16, 4, 3, 3), 0);
    tsr_params_add(&p, "conv/bias", 1, TSR_SHAPE(16), 0);
    tsr_params_finalize(&p);
    tsr_optimizer *opt = make_optimizer(&p, tsr_optimizer_adam_defaults());
    cr_expect_str_eq(tsr_optimizer_state_name(opt, 0), "mu");
    cr_expect_str_eq(tsr_optimizer_state_name(opt, 1), "nu");
    for (int slot = 0; slot < 2; slot++)
        for (int i = 0; i < p.count; i++) {
            tsr_tensor s = tsr_optimizer_state(opt, slot, i);
            cr_expect(tsr_tensor_same_shape(&s, tsr_params_tensor(&p, i)), "state shape");
            cr_expect_eq((float *)s.data, tsr_optimizer_state_block(opt, slot) + p.items[i].offset);
        }
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(optimizer, a_step_bumps_the_parameter_version)
{
    tsr_params p;
    make_params(&p, 1.0, 1.0, 1.0);
    tsr_optimizer *opt = make_optimizer(&p, tsr_optimizer_sgd_defaults());
    uint64_t before = tsr_params_tensor(&p, 0)->version;
    tsr_optimizer_step(opt, 1);
    cr_expect_gt(tsr_params_tensor(&p, 0)->version, before);
    cr_expect_eq(tsr_params_tensor(&p, 1)->version, p.version);
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(optimizer, rejects_out_of_range_options_naming_them)
{
    tsr_params p;
    make_params(&p, 0, 0, 0);
    struct { tsr_optimizer_options options; const char *name; } bad[5];
    bad[0].options = tsr_optimizer_adam_defaults();
    bad[0].options.beta1 = 1.0;
    bad[0].name = "beta1";
    bad[1].options = tsr_optimizer_adam_defaults();
    bad[1].options.learning_rate = -1.0;
    bad[1].name = "learning_rate";
    bad[2].options = tsr_optimizer_rmsprop_minatar_defaults();
    bad[2].options.eps = 0.0;
    bad[2].name = "eps";
    bad[3].options = tsr_optimizer_sgd_defaults();
    bad[3].options.weight_decay = 0.1;
    bad[3].name = "weight_decay";
    bad[4].options = tsr_optimizer_sgd_defaults();
    bad[4].options.momentum = 1.5;
    bad[4].name = "momentum";
    for (int i = 0; i < 5; i++) {
        tsr_optimizer *opt = (tsr_optimizer *)&p; /* must be reset to NULL */
        tsr_error err = {0};
        tsr_status status = tsr_optimizer_new(&opt, &p, &bad[i].options, &err);
        cr_expect_eq(status, TSR_STATUS_INVALID_ARGUMENT, "%s accepted", bad[i].name);
        cr_expect_null(opt);
        cr_expect(strstr(err.message, bad[i].name) != NULL, "message \"%s\" does not name %s",
                  err.message, bad[i].name);
    }
    tsr_params_fini(&p);
}

Test(optimizer, updates_are_identical_for_one_and_two_threads)
{
    /* A parameter above the threading threshold (a 512 x 7744 dense weight
     * would be larger; this is enough to split). */
    tsr_params p[2];
    for (int k = 0; k < 2; k++) {
        tsr_params_init(&p[k]);
        tsr_params_add(&p[k], "w", 2, TSR_SHAPE(512, 300), TSR_PARAM_DECAY);
        tsr_params_finalize(&p[k]);
    }
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        tsr_tensor *w = tsr_params_tensor(&p[k], 0);
        for (int64_t j = 0; j < tsr_tensor_numel(w); j++) tsr_f32(w)[j] = (float)sin((double)j);
        tsr_optimizer_options o = tsr_optimizer_adam_defaults();
        o.weight_decay = 0.01;
        tsr_optimizer *opt = make_optimizer(&p[k], o);
        for (uint64_t t = 1; t <= 3; t++) {
            for (int64_t j = 0; j < tsr_tensor_numel(w); j++)
                tsr_f32(w->grad)[j] = (float)cos((double)(j * t));
            w->grad_epoch = t;
            tsr_optimizer_step(opt, t);
        }
        tsr_optimizer_free(opt);
    }
    cr_expect_eq(memcmp(p[0].values, p[1].values, p[0].numel * sizeof(float)), 0,
                 "values differ between 1 and 2 threads");
    for (int k = 0; k < 2; k++) tsr_params_fini(&p[k]);
}

/* ---- clipping before a step ---- */

Test(clip_grad_norm, scales_gradients_to_the_global_norm_before_a_step)
{
    tsr_params p;
    make_params(&p, 1.0, 1.0, 1.0);
    tsr_optimizer_options o = tsr_optimizer_sgd_defaults();
    o.learning_rate = 1.0;
    tsr_optimizer *opt = make_optimizer(&p, o);
    /* Gradients (3, 0) and (4): global norm sqrt(9 + 16) = 5; clipped to 1
     * they become (0.6, 0) and (0.8). */
    give_grad(&p, 0, (float[]){3.0f, 0.0f}, 1);
    give_grad(&p, 1, (float[]){4.0f}, 1);
    tsr_params_settle_grads(&p, 1);
    cr_expect_float_eq(tsr_params_clip_grad_norm(&p, 1.0), 5.0, 1e-6);
    tsr_optimizer_step(opt, 1);
    expect_value(&p, 0, 0, 1.0 - 0.6, "w[0] after a clipped step");
    expect_value(&p, 0, 1, 1.0, "w[1]");
    expect_value(&p, 1, 0, 1.0 - 0.8, "b after a clipped step");
    cr_expect_float_eq(tsr_params_grad_norm(&p), 1.0, 1e-6);
    tsr_optimizer_free(opt);
    tsr_params_fini(&p);
}

Test(clip_grad_norm, leaves_gradients_under_the_limit_alone)
{
    tsr_params p;
    make_params(&p, 0, 0, 0);
    give_grad(&p, 0, (float[]){3.0f, 0.0f}, 1);
    give_grad(&p, 1, (float[]){4.0f}, 1);
    tsr_params_settle_grads(&p, 1);
    cr_expect_float_eq(tsr_params_clip_grad_norm(&p, 10.0), 5.0, 1e-6);
    cr_expect_eq(tsr_f32(tsr_params_tensor(&p, 0)->grad)[0], 3.0f);
    cr_expect_eq(tsr_f32(tsr_params_tensor(&p, 1)->grad)[0], 4.0f);
    tsr_params_fini(&p);
}

Test(clip_grad_norm, ignores_stale_gradients_once_settled)
{
    tsr_params p;
    make_params(&p, 0, 0, 0);
    give_grad(&p, 0, (float[]){3.0f, 0.0f}, 1);
    give_grad(&p, 1, (float[]){4.0f}, 1);
    /* Step 2: only w got a gradient; b's 4 is stale and settles to 0. */
    give_grad(&p, 0, (float[]){0.0f, 2.0f}, 2);
    tsr_params_settle_grads(&p, 2);
    cr_expect_float_eq(tsr_params_clip_grad_norm(&p, 1.0), 2.0, 1e-6);
    cr_expect_float_eq(tsr_f32(tsr_params_tensor(&p, 0)->grad)[1], 1.0f, 1e-6f);
    tsr_params_fini(&p);
}
