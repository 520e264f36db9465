/* Diagnostics: dormant neurons, feature srank and parameter norms on
 * hand-built inputs, and the dormant count of a MoE's expert hidden layer. */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/gradcheck.h"
#include "tessera/tessera.h"

static tsr_ctx *ctx;

static void setup(void) { ctx = tsr_ctx_new(NULL); }
static void teardown(void) { tsr_ctx_free(ctx); }

TestSuite(dormant, .init = setup, .fini = teardown);
TestSuite(srank, .init = setup, .fini = teardown);

/* ---- dormant neurons ------------------------------------------------------ */

static tsr_dormant_stats dormant(const tsr_tensor *a, double tau)
{
    tsr_dormant_stats total;
    tsr_error err = {0};
    cr_assert_eq(tsr_dormant_neurons(ctx, a, tau, NULL, &total, &err), TSR_STATUS_OK, "%s",
                 err.message);
    return total;
}

Test(dormant, a_neuron_that_is_zero_on_the_whole_batch_is_dormant_at_tau_zero)
{
    /* 4 samples x 3 neurons; neuron 1 never fires, neuron 0 alternates sign
     * (mean 0, mean |a| 2: not dormant). */
    double a[4][3] = {{2, 0, 0.5}, {-2, 0, 0}, {2, 0, 0}, {-2, 0, 0}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 2, TSR_SHAPE(4, 3));
    tsr_dormant_stats s = dormant(&t, 0.0);
    cr_expect_eq(s.dormant, 1);
    cr_expect_eq(s.neurons, 3);
    cr_expect(fabs(tsr_dormant_fraction(s) - 1.0 / 3) < 1e-15);
}

Test(dormant, tau_compares_each_score_with_the_layer_mean_inclusively)
{
    /* Mean |a| per neuron: 2, 0, 0.25, 1.75 (exact in binary); layer mean 1,
     * so the ratios are the scores. */
    float a[2][4] = {{2, 0, 0.5f, 1.75f}, {-2, 0, 0, -1.75f}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 4));
    cr_expect_eq(dormant(&t, 0.0).dormant, 1);
    cr_expect_eq(dormant(&t, 0.24).dormant, 1);
    cr_expect_eq(dormant(&t, 0.25).dormant, 2);
    cr_expect_eq(dormant(&t, 1.75).dormant, 3);
    cr_expect_eq(dormant(&t, 5.0).dormant, 4);
}

Test(dormant, stacked_layers_are_normalised_by_their_own_mean)
{
    /* Layer 0 fires around 100, layer 1 around 0.01 with one weaker neuron:
     * judged by a shared mean all of layer 1 would be dormant at tau 0.1. */
    double a[2][2][3] = {{{100, 120, 80}, {90, 110, 100}}, {{0.01, 0.012, 0.0005}, {0.01, 0.008, 0.0005}}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 3, TSR_SHAPE(2, 2, 3));
    tsr_dormant_stats per_layer[2], total;
    tsr_error err = {0};
    cr_assert_eq(tsr_dormant_neurons(ctx, &t, 0.1, per_layer, &total, &err), TSR_STATUS_OK);
    cr_expect_eq(per_layer[0].dormant, 0);
    cr_expect_eq(per_layer[1].dormant, 1, "only the 0.0005 neuron (ratio 0.07) is dormant");
    cr_expect_eq(per_layer[1].neurons, 3);
    cr_expect_eq(total.dormant, 1);
    cr_expect_eq(total.neurons, 6);
    tsr_dormant_stats sum = {0, 0};
    tsr_dormant_stats_add(&sum, per_layer[0]);
    tsr_dormant_stats_add(&sum, per_layer[1]);
    cr_expect(sum.dormant == total.dormant && sum.neurons == total.neurons);
}

Test(dormant, a_layer_that_is_zero_everywhere_is_entirely_dormant)
{
    double a[3][5] = {{0}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 2, TSR_SHAPE(3, 5));
    cr_expect_eq(dormant(&t, 0.0).dormant, 5);
}

Test(dormant, a_negative_threshold_is_reported)
{
    double a[1][1] = {{1}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 2, TSR_SHAPE(1, 1));
    tsr_dormant_stats total;
    tsr_error err = {0};
    cr_expect_eq(tsr_dormant_neurons(ctx, &t, -0.1, NULL, &total, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "tau = -0.1"), "%s", err.message);
}

Test(dormant, non_finite_activations_are_reported_not_counted)
{
    /* Layer 1 of 2 holds a NaN, then an infinity: neither may pass as a
     * layer with no dormant neuron. */
    float a[2][2][2] = {{{1, 0}, {1, 0}}, {{1, 2}, {3, NAN}}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F32, 3, TSR_SHAPE(2, 2, 2));
    tsr_dormant_stats total;
    tsr_error err = {0};
    cr_expect_eq(tsr_dormant_neurons(ctx, &t, 0.0, NULL, &total, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "layer 1 of (2, 2, 2) has non-finite activations"), "%s",
              err.message);
    a[1][1][1] = INFINITY;
    err.message[0] = 0;
    cr_expect_eq(tsr_dormant_neurons(ctx, &t, 0.0, NULL, &total, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "non-finite activations"), "%s", err.message);
}

Test(dormant, a_dead_expert_neuron_shows_in_the_soft_moe_hidden_statistics)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_soft_moe moe;
    tsr_soft_moe_config c = tsr_soft_moe_config_default();
    c.num_experts = 2;
    c.expert_hidden = 16;
    tsr_error err = {0};
    cr_assert_eq(tsr_soft_moe_init(&moe, &p, "moe", 9, 4, &c, &err), TSR_STATUS_OK);
    tsr_params_finalize(&p);
    tsr_rng rng;
    tsr_rng_init(&rng, 2, TSR_RNG_STREAM_INIT);
    tsr_soft_moe_reset(&moe, &p, &rng);
    /* Expert 1's hidden neuron 3 gets a bias no input can overcome. */
    tsr_tensor *b1 = tsr_params_tensor(&p, moe.experts.hidden_bias);
    tsr_tensor_set(b1, (int64_t[]){1, 3}, -1e3);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(5, 9, 4));
    tsr_test_fill_uniform(x, 0, 1, 4);
    tsr_ctx_begin_step(ctx);
    tsr_soft_moe_outputs out;
    tsr_soft_moe_forward(&moe, ctx, &p, x, NULL, &out);
    tsr_dormant_stats per_expert[2], total;
    cr_assert_eq(tsr_dormant_neurons(ctx, out.hidden, 0.0, per_expert, &total, &err), TSR_STATUS_OK);
    cr_expect_geq(per_expert[1].dormant, 1);
    cr_expect_eq(per_expert[1].neurons, 16);
    cr_expect_eq(total.neurons, 32);
    /* Lifting the bias wakes it up: exactly that neuron was counted. */
    tsr_tensor_set(b1, (int64_t[]){1, 3}, 1e3);
    tsr_dormant_stats before = per_expert[1];
    tsr_soft_moe_forward(&moe, ctx, &p, x, NULL, &out);
    cr_assert_eq(tsr_dormant_neurons(ctx, out.hidden, 0.0, per_expert, &total, &err), TSR_STATUS_OK);
    cr_expect_eq(per_expert[1].dormant, before.dormant - 1);
    tsr_tensor_free(x);
    tsr_soft_moe_fini(&moe);
    tsr_params_fini(&p);
}

/* ---- srank ----------------------------------------------------------------- */

static int64_t srank(const tsr_tensor *f, double delta, double *sv)
{
    int64_t r = -1;
    tsr_error err = {0};
    cr_assert_eq(tsr_feature_srank(ctx, f, delta, &r, sv, &err), TSR_STATUS_OK, "%s", err.message);
    return r;
}

Test(srank, a_rank_two_matrix_has_srank_two)
{
    /* 8 x 5 = 3 u1 v1^T + u2 v2^T with generic u, v. */
    double a[8][5];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 5; j++)
            a[i][j] = 3.0 * sin(i + 1.0) * cos(2.0 * j + 0.5) + (i % 3 - 1.0) * (j * 0.7 - 1.1);
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 2, TSR_SHAPE(8, 5));
    double sv[5];
    cr_expect_eq(srank(&t, 0.01, sv), 2);
    cr_expect_gt(sv[1], 1e-3);
    cr_expect_lt(sv[2], 1e-10 * sv[0], "the third singular value is zero up to rounding");
    /* The transpose (5 x 8) has the same singular values. */
    double b[5][8];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 5; j++) b[j][i] = a[i][j];
    tsr_tensor tt = tsr_tensor_view(b, TSR_DTYPE_F64, 2, TSR_SHAPE(5, 8));
    double sv2[5];
    cr_expect_eq(srank(&tt, 0.01, sv2), 2);
    for (int k = 0; k < 2; k++) cr_expect(fabs(sv[k] - sv2[k]) < 1e-12 * sv[0]);
}

Test(srank, counts_singular_values_until_one_minus_delta_of_their_sum)
{
    /* Diagonal singular values 6, 3, 0.8, 0.2 (sum 10), in a 6 x 4 matrix;
     * the deltas keep (1 - delta) 10 away from the partial sums 6, 9, 9.8. */
    float a[6][4] = {{0}};
    a[0][0] = 0.8f;
    a[1][1] = -6;
    a[3][2] = 0.2f;
    a[5][3] = 3;
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F32, 2, TSR_SHAPE(6, 4));
    double sv[4];
    cr_expect_eq(srank(&t, 0.01, sv), 4, "9.9 of 10 needs all four");
    const double want[4] = {6, 3, 0.8, 0.2};
    for (int k = 0; k < 4; k++) cr_expect(fabs(sv[k] - want[k]) < 1e-6, "sv %d = %g", k, sv[k]);
    cr_expect_eq(srank(&t, 0.025, NULL), 3, "9.75 of 10");
    cr_expect_eq(srank(&t, 0.15, NULL), 2, "8.5 of 10");
    cr_expect_eq(srank(&t, 0.5, NULL), 1);
    cr_expect_eq(srank(&t, 0.0, NULL), 4);
}

Test(srank, a_zero_matrix_has_srank_zero)
{
    double a[3][3] = {{0}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 2, TSR_SHAPE(3, 3));
    cr_expect_eq(srank(&t, 0.01, NULL), 0);
}

Test(srank, bad_delta_and_non_finite_features_are_reported)
{
    double a[2][2] = {{1, 0}, {0, NAN}};
    tsr_tensor t = tsr_tensor_view(a, TSR_DTYPE_F64, 2, TSR_SHAPE(2, 2));
    int64_t r;
    tsr_error err = {0};
    cr_expect_eq(tsr_feature_srank(ctx, &t, 1.0, &r, NULL, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "delta = 1"), "%s", err.message);
    cr_expect_eq(tsr_feature_srank(ctx, &t, 0.01, &r, NULL, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "finite"), "%s", err.message);
}

Test(srank, repeated_calls_stop_allocating_after_the_first)
{
    tsr_tensor *f = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 512));
    tsr_test_fill_uniform(f, 0, 1, 6);
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        tsr_ctx_begin_step(ctx);
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        int64_t r = srank(f, 0.01, NULL);
        cr_expect(r > 1 && r <= 32, "srank %lld of 32 random rows", (long long)r);
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_tensor_free(f);
}

/* ---- norms ----------------------------------------------------------------- */

Test(param_norms, are_reported_per_parameter_per_layer_and_per_prefix)
{
    tsr_params p;
    tsr_params_init(&p);
    int w = tsr_params_add(&p, "enc/conv/weight", 2, TSR_SHAPE(2, 2), 0);
    int b = tsr_params_add(&p, "enc/conv/bias", 1, TSR_SHAPE(2), 0);
    int h = tsr_params_add(&p, "head/weight", 1, TSR_SHAPE(1), 0);
    int s = tsr_params_add(&p, "scale", 1, TSR_SHAPE(1), 0);
    tsr_params_finalize(&p);
    const float wv[4] = {3, -4, 0, 0}, bv[2] = {1, -2}, wg[4] = {1, 1, 1, -1};
    memcpy(tsr_params_tensor(&p, w)->data, wv, sizeof wv);
    memcpy(tsr_params_tensor(&p, b)->data, bv, sizeof bv);
    memcpy(p.items[w].grad.data, wg, sizeof wg);
    tsr_f32(tsr_params_tensor(&p, h))[0] = -12;
    tsr_f32(&p.items[h].grad)[0] = 0.5f;
    tsr_f32(tsr_params_tensor(&p, s))[0] = 2;

    tsr_param_norms per[4];
    tsr_params_norms(&p, per);
    cr_expect_str_eq(per[0].name, "enc/conv/weight");
    cr_expect_eq(per[0].value_norm, 5);
    cr_expect_eq(per[0].grad_norm, 2);
    cr_expect_eq(per[0].value_mean_abs, 7.0 / 4);
    cr_expect_eq(per[0].grad_mean_abs, 1);
    cr_expect_eq(per[1].grad_norm, 0);
    cr_expect_eq(per[2].value_norm, 12);

    tsr_param_norms layers[4];
    int count = tsr_params_layer_norms(&p, layers);
    cr_assert_eq(count, 3);
    cr_expect_str_eq(layers[0].name, "enc/conv");
    cr_expect_eq(layers[0].numel, 6);
    cr_expect(fabs(layers[0].value_norm - sqrt(30.0)) < 1e-12);
    cr_expect_str_eq(layers[1].name, "head");
    cr_expect_str_eq(layers[2].name, "scale");

    tsr_param_norms enc = tsr_params_prefix_norms(&p, "enc");
    cr_expect_eq(enc.numel, 6);
    cr_expect(fabs(enc.value_norm - sqrt(30.0)) < 1e-12);
    cr_expect_eq(tsr_params_prefix_norms(&p, "en").numel, 0, "a prefix matches whole components");
    tsr_param_norms all = tsr_params_prefix_norms(&p, "");
    cr_expect_eq(all.numel, 8);
    cr_expect(fabs(all.value_norm - sqrt(30.0 + 144 + 4)) < 1e-12);
    cr_expect(fabs(all.grad_norm - sqrt(4.25)) < 1e-12);
    cr_expect(fabs(all.grad_norm - tsr_params_grad_norm(&p)) < 1e-6,
              "agrees with the block's global gradient norm");
    tsr_params_fini(&p);
}
