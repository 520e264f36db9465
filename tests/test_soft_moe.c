/* The Soft MoE layer and the expert MLP: gradients through every option,
 * the softmax invariants, slot arithmetic, the mixing ablations, parameter
 * counts and initialisation, per-sample independence, statistics. */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "support/parity.h"
#include "tessera/tessera.h"

/* ---- fixtures ------------------------------------------------------------ */

typedef struct moe_case {
    tsr_params params;
    tsr_soft_moe moe;
    tsr_rng noise; /* copied before every forward: a random phi is then fixed */
} moe_case;

static tsr_soft_moe_config config(int64_t experts, int64_t hidden)
{
    tsr_soft_moe_config c = tsr_soft_moe_config_default();
    c.num_experts = experts;
    c.expert_hidden = hidden;
    return c;
}

static void build(moe_case *m, tsr_dtype dtype, int64_t tokens, int64_t dim, tsr_soft_moe_config c)
{
    tsr_params_init_dtype(&m->params, dtype);
    tsr_error err = {0};
    tsr_status st = tsr_soft_moe_init(&m->moe, &m->params, "moe", tokens, dim, &c, &err);
    cr_assert_eq(st, TSR_STATUS_OK, "init failed: %s", err.message);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 11, TSR_RNG_STREAM_INIT);
    tsr_soft_moe_reset(&m->moe, &m->params, &rng);
    /* Non-zero biases and a scalar away from 1, so every gradient is exercised. */
    tsr_test_fill_uniform(tsr_params_tensor(&m->params, m->moe.experts.hidden_bias), -0.2, 0.2, 21);
    tsr_test_fill_uniform(tsr_params_tensor(&m->params, m->moe.experts.out_bias), -0.2, 0.2, 22);
    tsr_tensor_fill(tsr_params_tensor(&m->params, m->moe.scalar), 1.3);
    tsr_rng_init(&m->noise, 3, TSR_RNG_STREAM_NOISE);
}

static void destroy(moe_case *m)
{
    tsr_soft_moe_fini(&m->moe);
    tsr_params_fini(&m->params);
}

static tsr_tensor *forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    moe_case *m = user;
    tsr_rng noise = m->noise;
    return tsr_soft_moe_forward(&m->moe, ctx, &m->params, in[0], &noise, NULL);
}

/* Finite differences for x and every parameter of the layer. */
static void gradcheck(tsr_soft_moe_config c, int64_t batch, int64_t tokens, const char *what)
{
    moe_case m;
    build(&m, TSR_DTYPE_F64, tokens, 3, c);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(batch, tokens, 3));
    tsr_test_fill_uniform(x, -1, 1, 8);
    x->requires_grad = true;
    tsr_tensor *inputs[16] = {x};
    for (int i = 0; i < m.params.count; i++) inputs[1 + i] = tsr_params_tensor(&m.params, i);
    tsr_test_gradcheck(forward, inputs, 1 + m.params.count, &m, NULL, what);
    tsr_tensor_free(x);
    destroy(&m);
}

/* ---- gradients ----------------------------------------------------------- */

Test(soft_moe, single_expert_matches_finite_differences)
{
    gradcheck(config(1, 4), 2, 5, "soft MoE, E = 1");
}

Test(soft_moe, two_experts_match_finite_differences)
{
    gradcheck(config(2, 4), 2, 5, "soft MoE, E = 2 (6 slots for 5 tokens)");
}

Test(soft_moe, three_experts_match_finite_differences)
{
    gradcheck(config(3, 4), 3, 5, "soft MoE, E = 3");
}

Test(soft_moe, normalization_matches_finite_differences_for_tokens_phi_and_scalar)
{
    tsr_soft_moe_config c = config(2, 4);
    c.normalization = true;
    gradcheck(c, 2, 5, "soft MoE, normalization");
    c.num_experts = 1;
    gradcheck(c, 2, 5, "soft MoE, E = 1, normalization");
}

Test(soft_moe, capacity_factor_above_one_matches_finite_differences)
{
    tsr_soft_moe_config c = config(2, 3);
    c.capacity_factor = 1.5; /* ceil(5 * 1.5 / 2) = 4 slots per expert */
    gradcheck(c, 2, 5, "soft MoE, capacity 1.5");
}

Test(soft_moe, every_mix_mode_matches_finite_differences)
{
    const tsr_moe_mix_mode modes[] = {TSR_MOE_MIX_NO_DISPATCH, TSR_MOE_MIX_NO_COMBINE,
                                      TSR_MOE_MIX_NONE};
    const char *names[] = {"no_dispatch", "no_combine", "none"};
    for (int i = 0; i < 3; i++) {
        for (int64_t experts = 1; experts <= 2; experts++) {
            tsr_soft_moe_config c = config(experts, 4);
            c.mix_mode = modes[i];
            c.normalization = i == 0;
            char what[64];
            snprintf(what, sizeof what, "soft MoE, E = %lld, mix_mode %s", (long long)experts,
                     names[i]);
            gradcheck(c, 2, 6, what); /* 6 tokens: E S == T for E = 1 and 2 */
        }
    }
}

Test(soft_moe, random_phi_matches_finite_differences_with_a_fixed_stream)
{
    tsr_soft_moe_config c = config(2, 4);
    c.use_random_phi = true;
    gradcheck(c, 2, 5, "soft MoE, random phi");
    c.normalization = true;
    gradcheck(c, 2, 5, "soft MoE, random phi, normalization");
}

typedef struct expert_case {
    tsr_params params;
    tsr_expert_mlp mlp;
} expert_case;

static tsr_tensor *expert_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    expert_case *m = user;
    return tsr_expert_mlp_forward(&m->mlp, ctx, &m->params, in[0], NULL, NULL);
}

Test(expert_mlp, matches_finite_differences)
{
    expert_case m;
    tsr_params_init_dtype(&m.params, TSR_DTYPE_F64);
    tsr_expert_mlp_init(&m.mlp, &m.params, "experts", 3, 4, 5);
    tsr_params_finalize(&m.params);
    tsr_rng rng;
    tsr_rng_init(&rng, 4, TSR_RNG_STREAM_INIT);
    tsr_expert_mlp_reset(&m.mlp, &m.params, &rng);
    tsr_test_fill_uniform(tsr_params_tensor(&m.params, m.mlp.hidden_bias), -0.3, 0.3, 5);
    tsr_test_fill_uniform(tsr_params_tensor(&m.params, m.mlp.out_bias), -0.3, 0.3, 6);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 7, 4));
    tsr_test_fill_uniform(x, -1, 1, 7);
    x->requires_grad = true;
    tsr_tensor *inputs[5] = {x};
    for (int i = 0; i < 4; i++) inputs[1 + i] = tsr_params_tensor(&m.params, i);
    tsr_test_gradcheck(expert_forward, inputs, 5, &m, NULL, "expert MLP, E = 3");
    tsr_tensor_free(x);
    tsr_params_fini(&m.params);
}

/* ---- noisy experts ---- */

typedef struct noisy_expert_case {
    tsr_params params;
    tsr_expert_mlp mlp;
    tsr_rng rng;      /* copied before every forward: the same noise each time */
    bool means_only;
} noisy_expert_case;

static void noisy_expert_build(noisy_expert_case *m, tsr_dtype dtype, int64_t e, int64_t d,
                               int64_t h, double sigma0)
{
    tsr_params_init_dtype(&m->params, dtype);
    tsr_expert_mlp_init_noisy(&m->mlp, &m->params, "experts", e, d, h, sigma0);
    tsr_params_finalize(&m->params);
    tsr_rng init;
    tsr_rng_init(&init, 4, TSR_RNG_STREAM_INIT);
    tsr_expert_mlp_reset(&m->mlp, &m->params, &init);
    tsr_rng_init(&m->rng, 9, TSR_RNG_STREAM_NOISE);
    m->means_only = false;
}

static tsr_tensor *noisy_expert_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    noisy_expert_case *m = user;
    tsr_rng rng = m->rng;
    tsr_noise noise = {&rng, m->means_only};
    return tsr_expert_mlp_forward(&m->mlp, ctx, &m->params, in[0], &noise, NULL);
}

Test(expert_mlp, noisy_experts_register_mu_and_sigma_and_initialise_them_as_noisynet)
{
    noisy_expert_case m;
    noisy_expert_build(&m, TSR_DTYPE_F32, 2, 32, 16, 0.1);
    const char *names[] = {"experts/hidden/weight_mu", "experts/hidden/weight_sigma",
                           "experts/hidden/bias_mu", "experts/hidden/bias_sigma",
                           "experts/out/weight", "experts/out/bias"};
    cr_assert_eq(m.params.count, 6);
    for (int i = 0; i < 6; i++) cr_expect_str_eq(m.params.items[i].name, names[i]);
    cr_expect_eq(tsr_expert_mlp_param_count(&m.mlp), 2 * (2 * (32 * 16 + 16) + 16 * 32 + 32));
    /* mu ~ U(-1/sqrt D, 1/sqrt D), sigma = sigma0 / sqrt D (fan-in D = 32). */
    const tsr_tensor *mu = tsr_params_tensor(&m.params, m.mlp.hidden_weight);
    const tsr_tensor *sigma = tsr_params_tensor(&m.params, m.mlp.hidden_weight_sigma);
    const tsr_tensor *bias_sigma = tsr_params_tensor(&m.params, m.mlp.hidden_bias_sigma);
    float bound = 1.0f / sqrtf(32.0f), largest = 0;
    for (int64_t i = 0; i < tsr_tensor_numel(mu); i++) {
        largest = fmaxf(largest, fabsf(tsr_f32(mu)[i]));
        cr_assert_float_eq(tsr_f32(sigma)[i], (float)(0.1 / sqrt(32.0)), 1e-9);
    }
    cr_expect_leq(largest, bound);
    cr_expect_gt(largest, 0.9f * bound, "mu spans its interval");
    for (int64_t i = 0; i < tsr_tensor_numel(bias_sigma); i++)
        cr_assert_float_eq(tsr_f32(bias_sigma)[i], (float)(0.1 / sqrt(32.0)), 1e-9);
    tsr_params_fini(&m.params);
}

Test(expert_mlp, noisy_first_layer_is_mu_plus_sigma_times_each_experts_factorised_noise)
{
    /* E = 2 experts, D = 2, H = 3, one row each, written out by hand: expert e
     * draws f(eps_in) (D values) then f(eps_out) (H values) from the stream. */
    noisy_expert_case m;
    noisy_expert_build(&m, TSR_DTYPE_F64, 2, 2, 3, 0.5);
    tsr_params *p = &m.params;
    tsr_test_fill_uniform(tsr_params_tensor(p, m.mlp.hidden_weight_sigma), 0.1, 0.9, 3);
    tsr_test_fill_uniform(tsr_params_tensor(p, m.mlp.hidden_bias_sigma), 0.1, 0.9, 4);
    tsr_test_fill_uniform(tsr_params_tensor(p, m.mlp.out_bias), -0.5, 0.5, 5);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 1, 2));
    tsr_test_fill_uniform(x, -1, 1, 6);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = noisy_expert_forward(ctx, &x, &m);
    tsr_rng rng = m.rng;
    const double *mu = tsr_f64(tsr_params_tensor(p, m.mlp.hidden_weight));
    const double *sg = tsr_f64(tsr_params_tensor(p, m.mlp.hidden_weight_sigma));
    const double *bmu = tsr_f64(tsr_params_tensor(p, m.mlp.hidden_bias));
    const double *bsg = tsr_f64(tsr_params_tensor(p, m.mlp.hidden_bias_sigma));
    const double *w2 = tsr_f64(tsr_params_tensor(p, m.mlp.out_weight));
    const double *b2 = tsr_f64(tsr_params_tensor(p, m.mlp.out_bias));
    for (int e = 0; e < 2; e++) {
        double in[2], hidden[3];
        for (int j = 0; j < 2; j++) in[j] = tsr_noisy_factor(&rng);
        for (int i = 0; i < 3; i++) {
            double out = tsr_noisy_factor(&rng), a = bmu[e * 3 + i] + bsg[e * 3 + i] * out;
            for (int j = 0; j < 2; j++) {
                int k = (e * 3 + i) * 2 + j;
                a += (mu[k] + sg[k] * out * in[j]) * tsr_f64(x)[e * 2 + j];
            }
            hidden[i] = a > 0 ? a : 0;
        }
        for (int o = 0; o < 2; o++) {
            double want = b2[e * 2 + o];
            for (int i = 0; i < 3; i++) want += w2[(e * 2 + o) * 3 + i] * hidden[i];
            cr_expect_float_eq(tsr_f64(y)[e * 2 + o], want, 1e-12, "expert %d output %d", e, o);
        }
    }
    /* Evaluation runs on the means and draws nothing. */
    tsr_rng eval_rng = m.rng, before = m.rng;
    tsr_noise means_only = {&eval_rng, true};
    tsr_tensor *means = tsr_expert_mlp_forward(&m.mlp, ctx, p, x, &means_only, NULL);
    cr_expect(!memcmp(&before, &eval_rng, sizeof before), "evaluation drew noise");
    tsr_noise drawing = {&eval_rng, false};
    tsr_expert_mlp_forward(&m.mlp, ctx, p, x, &drawing, NULL);
    cr_expect(memcmp(&before, &eval_rng, sizeof before), "training drew no noise");
    bool differs = false;
    for (int i = 0; i < 4; i++) differs |= tsr_f64(means)[i] != tsr_f64(y)[i];
    cr_expect(differs, "the noisy output equals the means' output");
    tsr_ctx_free(ctx);
    tsr_tensor_free(x);
    tsr_params_fini(p);
}

Test(expert_mlp, noisy_experts_match_finite_differences_with_a_fixed_stream)
{
    noisy_expert_case m;
    noisy_expert_build(&m, TSR_DTYPE_F64, 3, 4, 5, 0.5);
    tsr_test_fill_uniform(tsr_params_tensor(&m.params, m.mlp.hidden_bias), -0.3, 0.3, 5);
    tsr_test_fill_uniform(tsr_params_tensor(&m.params, m.mlp.out_bias), -0.3, 0.3, 6);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 7, 4));
    tsr_test_fill_uniform(x, -1, 1, 7);
    x->requires_grad = true;
    tsr_tensor *inputs[7] = {x};
    for (int i = 0; i < 6; i++) inputs[1 + i] = tsr_params_tensor(&m.params, i);
    tsr_test_gradcheck(noisy_expert_forward, inputs, 7, &m, NULL, "noisy expert MLP, E = 3");
    tsr_tensor_free(x);
    tsr_params_fini(&m.params);
}

Test(expert_mlp, noisy_experts_on_onednn_match_the_reference_at_the_impala_shape)
{
    /* Four Soft MoE experts of 512 units on IMPALA per-conv tokens (D = 32),
     * 31 slots each at batch 32: (4, 992, 32). */
    noisy_expert_case m;
    noisy_expert_build(&m, TSR_DTYPE_F32, 4, 32, 512, 0.5);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(4, 992, 32));
    tsr_test_fill_uniform(x, 0, 2, 8);
    x->requires_grad = true;
    tsr_tensor *inputs[4] = {x, tsr_params_tensor(&m.params, m.mlp.hidden_weight),
                             tsr_params_tensor(&m.params, m.mlp.hidden_weight_sigma),
                             tsr_params_tensor(&m.params, m.mlp.out_weight)};
    tsr_test_check_parity(noisy_expert_forward, inputs, 4, &m, "noisy experts (4, 992, 32)");
    tsr_tensor_free(x);
    tsr_params_fini(&m.params);
}

static tsr_tensor *bias_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return tsr_batched_bias(ctx, in[0], in[1], *(const bool *)user);
}

Test(moe_ops, batched_bias_adds_each_batchs_bias_and_matches_finite_differences)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4));
    tsr_tensor *b = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 4));
    tsr_test_fill_uniform(x, -1, 1, 1);
    tsr_test_fill_uniform(b, -1, 1, 2);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = tsr_batched_bias(ctx, x, b, false);
    for (int e = 0; e < 2; e++)
        for (int m = 0; m < 3; m++)
            for (int k = 0; k < 4; k++)
                cr_expect_eq(tsr_f64(y)[(e * 3 + m) * 4 + k],
                             tsr_f64(x)[(e * 3 + m) * 4 + k] + tsr_f64(b)[e * 4 + k]);
    tsr_ctx_free(ctx);
    x->requires_grad = b->requires_grad = true;
    for (int relu = 0; relu < 2; relu++) {
        bool r = relu;
        tsr_test_gradcheck(bias_forward, (tsr_tensor *[]){x, b}, 2, &r, NULL,
                           relu ? "batched_bias + relu" : "batched_bias");
    }
    tsr_tensor_free(x);
    tsr_tensor_free(b);
}

/* ---- invariants and shapes ---------------------------------------------- */

Test(soft_moe, dispatch_columns_and_combine_rows_sum_to_one_per_sample)
{
    moe_case m;
    tsr_soft_moe_config c = config(4, 64);
    build(&m, TSR_DTYPE_F32, 121, 32, c);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(3, 121, 32));
    tsr_test_fill_uniform(x, -2, 2, 9);
    tsr_soft_moe_outputs out;
    tsr_rng noise = m.noise;
    tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, &noise, &out);
    int64_t slots = 4 * 31;
    cr_assert(out.dispatch->shape[1] == slots && out.dispatch->shape[2] == 121);
    cr_assert(out.combine->shape[1] == 121 && out.combine->shape[2] == slots);
    double worst_dispatch = 0, worst_combine = 0;
    for (int64_t n = 0; n < 3; n++) {
        for (int64_t s = 0; s < slots; s++) {
            double sum = 0;
            for (int64_t t = 0; t < 121; t++) sum += tsr_f32(out.dispatch)[(n * slots + s) * 121 + t];
            worst_dispatch = fmax(worst_dispatch, fabs(sum - 1));
        }
        for (int64_t t = 0; t < 121; t++) {
            double sum = 0;
            for (int64_t s = 0; s < slots; s++) sum += tsr_f32(out.combine)[(n * 121 + t) * slots + s];
            worst_combine = fmax(worst_combine, fabs(sum - 1));
        }
    }
    cr_expect_lt(worst_dispatch, 1e-5, "a dispatch column sums to 1 +- %g over tokens", worst_dispatch);
    cr_expect_lt(worst_combine, 1e-5, "a combine row sums to 1 +- %g over slots", worst_combine);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(soft_moe, slots_per_expert_for_121_tokens_follow_the_ceiling)
{
    const int64_t experts[] = {1, 2, 4, 8}, slots[] = {121, 61, 31, 16};
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    for (int i = 0; i < 4; i++) {
        moe_case m;
        build(&m, TSR_DTYPE_F32, 121, 32, config(experts[i], 16));
        cr_expect_eq(m.moe.slots_per_expert, slots[i], "E = %lld: %lld slots, expected %lld",
                     (long long)experts[i], (long long)m.moe.slots_per_expert, (long long)slots[i]);
        tsr_tensor *phi = tsr_params_tensor(&m.params, m.moe.phi);
        cr_expect(phi->ndim == 3 && phi->shape[0] == 32 && phi->shape[1] == experts[i] &&
                  phi->shape[2] == slots[i]);
        tsr_ctx_begin_step(ctx);
        tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(2, 121, 32));
        tsr_soft_moe_outputs out;
        tsr_rng noise = m.noise;
        tsr_tensor *z = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, &noise, &out);
        cr_expect(tsr_tensor_same_shape(z, x), "the output has the tokens' shape");
        cr_expect_eq(out.logits->shape[2], experts[i] * slots[i]);
        cr_expect(out.hidden->shape[0] == experts[i] && out.hidden->shape[1] == 2 * slots[i] &&
                  out.hidden->shape[2] == 16);
        tsr_tensor_free(x);
        destroy(&m);
    }
    tsr_ctx_free(ctx);
    cr_expect_eq(tsr_moe_capacity(121, 1.0, 8), 16);
    cr_expect_eq(tsr_moe_capacity(121, 2.0, 8), 31);
    cr_expect_eq(tsr_moe_capacity(1, 1.0, 8), 1); /* PerSample tokens: one slot each */
}

/* y = relu(x W1^T + b1) W2^T + b2 for one token, by hand. */
static void token_mlp(const tsr_params *p, const tsr_expert_mlp *l, int64_t expert, const double *x,
                      double *y)
{
    int64_t d = l->token_dim, h = l->hidden;
    const double *w1 = tsr_f64(&p->items[l->hidden_weight].value) + expert * h * d;
    const double *b1 = tsr_f64(&p->items[l->hidden_bias].value) + expert * h;
    const double *w2 = tsr_f64(&p->items[l->out_weight].value) + expert * d * h;
    const double *b2 = tsr_f64(&p->items[l->out_bias].value) + expert * d;
    double hidden[64];
    for (int64_t j = 0; j < h; j++) {
        double a = b1[j];
        for (int64_t k = 0; k < d; k++) a += w1[j * d + k] * x[k];
        hidden[j] = a > 0 ? a : 0;
    }
    for (int64_t o = 0; o < d; o++) {
        double a = b2[o];
        for (int64_t j = 0; j < h; j++) a += w2[o * h + j] * hidden[j];
        y[o] = a;
    }
}

/* The layer against the definition written out per sample with loops. */
Test(soft_moe, output_matches_the_definition_computed_by_hand)
{
    enum { N = 2, T = 5, D = 4, E = 3, S = 2, ES = E * S };
    moe_case m;
    tsr_soft_moe_config c = config(E, 6);
    c.normalization = true;
    build(&m, TSR_DTYPE_F64, T, D, c);
    cr_assert_eq(m.moe.slots_per_expert, S);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(N, T, D));
    tsr_test_fill_uniform(x, -1, 1, 33);
    const double *phi = tsr_f64(tsr_params_tensor(&m.params, m.moe.phi)); /* (D, E S) */
    double scalar = tsr_f64(tsr_params_tensor(&m.params, m.moe.scalar))[0];
    double phin[D][ES];
    for (int j = 0; j < ES; j++) {
        double norm = 0;
        for (int k = 0; k < D; k++) norm += phi[k * ES + j] * phi[k * ES + j];
        for (int k = 0; k < D; k++) phin[k][j] = scalar * phi[k * ES + j] / (sqrt(norm) + 1e-6);
    }
    tsr_tensor *want = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(N, T, D));
    for (int n = 0; n < N; n++) {
        const double *xs = tsr_f64(x) + n * T * D;
        double logits[T][ES], dispatch[T][ES], combine[T][ES], slot_out[ES][D];
        for (int t = 0; t < T; t++) {
            double norm = 0;
            for (int k = 0; k < D; k++) norm += xs[t * D + k] * xs[t * D + k];
            for (int j = 0; j < ES; j++) {
                logits[t][j] = 0;
                for (int k = 0; k < D; k++)
                    logits[t][j] += xs[t * D + k] / (sqrt(norm) + 1e-6) * phin[k][j];
            }
        }
        for (int j = 0; j < ES; j++) {
            double sum = 0;
            for (int t = 0; t < T; t++) sum += exp(logits[t][j]);
            for (int t = 0; t < T; t++) dispatch[t][j] = exp(logits[t][j]) / sum;
        }
        for (int t = 0; t < T; t++) {
            double sum = 0;
            for (int j = 0; j < ES; j++) sum += exp(logits[t][j]);
            for (int j = 0; j < ES; j++) combine[t][j] = exp(logits[t][j]) / sum;
        }
        for (int j = 0; j < ES; j++) {
            double slot_in[D] = {0};
            for (int t = 0; t < T; t++)
                for (int k = 0; k < D; k++) slot_in[k] += dispatch[t][j] * xs[t * D + k];
            token_mlp(&m.params, &m.moe.experts, j / S, slot_in, slot_out[j]);
        }
        for (int t = 0; t < T; t++)
            for (int k = 0; k < D; k++) {
                double z = 0;
                for (int j = 0; j < ES; j++) z += combine[t][j] * slot_out[j][k];
                tsr_f64(want)[(n * T + t) * D + k] = z;
            }
    }
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *z = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
    tsr_test_allclose(z, want, 1e-12, 1e-13, "soft MoE vs its definition");
    tsr_tensor_free(want);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

static void check_no_mixing(int64_t experts)
{
    moe_case m;
    tsr_soft_moe_config c = config(experts, 8);
    c.mix_mode = TSR_MOE_MIX_NONE;
    int64_t t = 12, d = 5, n = 3;
    build(&m, TSR_DTYPE_F64, t, d, c);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(n, t, d));
    tsr_test_fill_uniform(x, -1, 1, 31);
    tsr_tensor *z = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
    tsr_tensor *want = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(n, t, d));
    int64_t s = m.moe.slots_per_expert;
    for (int64_t i = 0; i < n * t; i++)
        token_mlp(&m.params, &m.moe.experts, (i % t) / s, tsr_f64(x) + i * d, tsr_f64(want) + i * d);
    tsr_test_allclose(z, want, 1e-12, 1e-12, "mix_mode none vs a per-token MLP");
    cr_expect_eq(m.moe.phi, -1, "mix_mode none routes nothing: no phi in the parameters");
    tsr_tensor_free(want);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(soft_moe, no_mixing_equals_the_same_mlp_applied_to_every_token)
{
    check_no_mixing(1);
}

Test(soft_moe, no_mixing_with_experts_sends_consecutive_token_groups_to_each_expert)
{
    check_no_mixing(3);
}

Test(soft_moe, bypassed_dispatch_feeds_each_token_to_its_own_slot)
{
    /* no_dispatch and none see the same slot outputs; with E = 1 and phi = 0
     * the combine weights are uniform, so no_dispatch is the token mean of the
     * per-token MLP outputs. */
    moe_case m;
    tsr_soft_moe_config c = config(1, 6);
    c.mix_mode = TSR_MOE_MIX_NO_DISPATCH;
    int64_t t = 4, d = 3;
    build(&m, TSR_DTYPE_F64, t, d, c);
    tsr_tensor_fill(tsr_params_tensor(&m.params, m.moe.phi), 0.0);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(1, t, d));
    tsr_test_fill_uniform(x, -1, 1, 32);
    tsr_tensor *z = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
    double mean[3] = {0}, y[3];
    for (int64_t i = 0; i < t; i++) {
        token_mlp(&m.params, &m.moe.experts, 0, tsr_f64(x) + i * d, y);
        for (int k = 0; k < 3; k++) mean[k] += y[k] / (double)t;
    }
    for (int64_t i = 0; i < t; i++)
        tsr_test_allclose_f64(tsr_f64(z) + i * d, mean, 3, 1e-12, 1e-12, "no_dispatch, uniform combine");
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(soft_moe, bypassing_needs_one_slot_per_token_and_says_so)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_soft_moe l;
    tsr_soft_moe_config c = config(2, 8);
    c.mix_mode = TSR_MOE_MIX_NO_COMBINE;
    tsr_error err = {0};
    cr_expect_eq(tsr_soft_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "no_combine") && strstr(err.message, "61 slots"), "%s",
              err.message);
    cr_expect_eq(p.count, 0, "nothing is registered on error");
    c.num_experts = 11; /* 11 x 11 = 121 */
    cr_expect_eq(tsr_soft_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_OK);
    tsr_params_fini(&p);
}

Test(soft_moe, bad_configuration_values_are_reported_by_name)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_soft_moe l;
    tsr_error err = {0};
    tsr_soft_moe_config c = config(0, 8);
    cr_expect_eq(tsr_soft_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "num_experts = 0"), "%s", err.message);
    c = config(4, 8);
    c.capacity_factor = 0;
    cr_expect_eq(tsr_soft_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "capacity_factor = 0"), "%s", err.message);
    c = config(4, 0);
    cr_expect_eq(tsr_soft_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "expert_hidden = 0"), "%s", err.message);
    c = config(4, 8);
    c.mix_mode = (tsr_moe_mix_mode)7;
    cr_expect_eq(tsr_soft_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "mix_mode = 7"), "%s", err.message);
    cr_expect_eq(p.count, 0);
    tsr_params_fini(&p);
}

/* ---- parameters ---------------------------------------------------------- */

Test(soft_moe, impala_per_conv_expert_and_router_have_the_papers_parameter_counts)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_expert_mlp one;
    tsr_expert_mlp_init(&one, &p, "one", 1, 32, 512);
    tsr_params_finalize(&p);
    cr_expect_eq(tsr_expert_mlp_param_count(&one), 33312);
    cr_expect_eq(tsr_params_count(&p), 33312);
    tsr_params_fini(&p);

    moe_case m;
    build(&m, TSR_DTYPE_F32, 121, 32, config(4, 512));
    cr_expect_eq(tsr_tensor_numel(tsr_params_tensor(&m.params, m.moe.phi)), 3968);
    cr_expect_eq(tsr_soft_moe_param_count(&m.moe), 3968 + 1 + 4 * 33312);
    cr_expect_eq(tsr_params_count(&m.params), tsr_soft_moe_param_count(&m.moe));
    cr_expect_geq(tsr_params_find(&m.params, "moe/scalar"), 0);
    cr_expect_geq(tsr_params_find(&m.params, "moe/experts/hidden/weight"), 0);
    destroy(&m);
}

static double sample_std(const tsr_tensor *t)
{
    int64_t n = tsr_tensor_numel(t);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = tsr_f32(t)[i];
        sum += v;
        sq += v * v;
    }
    double mean = sum / (double)n;
    return sqrt(sq / (double)n - mean * mean);
}

Test(soft_moe, phi_is_lecun_normal_with_fan_in_d_times_e_and_experts_are_xavier)
{
    moe_case m;
    build(&m, TSR_DTYPE_F32, 121, 32, config(8, 512));
    /* 32 x 8 x 16 = 4096 draws, std 1 / sqrt(256): 0.0625 (fan-in D alone would
     * give 0.177). */
    double std = sample_std(tsr_params_tensor(&m.params, m.moe.phi));
    cr_expect(fabs(std - 0.0625) < 0.004, "phi std %g, expected 0.0625", std);
    /* Xavier uniform with one expert's fans: std sqrt(2 / (32 + 512)). */
    double want = sqrt(2.0 / 544.0);
    std = sample_std(tsr_params_tensor(&m.params, m.moe.experts.hidden_weight));
    cr_expect(fabs(std - want) < 0.02 * want, "expert std %g, expected %g", std, want);
    cr_expect_eq(tsr_f32(tsr_params_tensor(&m.params, m.moe.scalar))[0], 1.3f); /* set by build */
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_soft_moe_reset(&m.moe, &m.params, &rng);
    cr_expect_eq(tsr_f32(tsr_params_tensor(&m.params, m.moe.scalar))[0], 1.0f);
    cr_expect_eq(tsr_f32(tsr_params_tensor(&m.params, m.moe.experts.out_bias))[5], 0.0f);
    destroy(&m);
}

Test(soft_moe, random_phi_is_not_a_parameter_and_is_redrawn_every_forward)
{
    moe_case m;
    tsr_soft_moe_config c = config(2, 8);
    c.use_random_phi = true;
    build(&m, TSR_DTYPE_F32, 9, 4, c);
    cr_expect_eq(m.moe.phi, -1);
    cr_expect_eq(tsr_params_find(&m.params, "moe/phi"), -1);
    cr_expect_geq(tsr_params_find(&m.params, "moe/scalar"), 0, "the scalar always exists");
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(2, 9, 4));
    tsr_test_fill_uniform(x, -1, 1, 3);
    tsr_rng noise = m.noise, again = m.noise;
    tsr_tensor *a = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, &noise, NULL);
    tsr_tensor *b = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, &noise, NULL);
    tsr_tensor *c2 = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, &again, NULL);
    tsr_test_allclose(c2, a, 0, 0, "the same stream state draws the same phi");
    double diff = 0;
    for (int64_t i = 0; i < tsr_tensor_numel(a); i++)
        diff = fmax(diff, fabs(tsr_f32(a)[i] - tsr_f32(b)[i]));
    cr_expect_gt(diff, 1e-4, "the next forward draws a new phi");
    /* One phi per sample, as the reference's per-sample keys: two copies of
     * a sample in one batch are routed differently. */
    tsr_tensor *twins = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(2, 9, 4));
    for (int64_t i = 0; i < 36; i++) tsr_f32(twins)[i] = tsr_f32(twins)[36 + i] = tsr_f32(x)[i];
    tsr_tensor *y = tsr_soft_moe_forward(&m.moe, ctx, &m.params, twins, &noise, NULL);
    int64_t half = tsr_tensor_numel(y) / 2;
    diff = 0;
    for (int64_t i = 0; i < half; i++)
        diff = fmax(diff, fabs(tsr_f32(y)[i] - tsr_f32(y)[half + i]));
    cr_expect_gt(diff, 1e-4, "each sample draws its own phi");
    tsr_tensor_free(twins);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

/* ---- behaviour ----------------------------------------------------------- */

static void copy_params(tsr_params *dst, const tsr_params *src)
{
    for (int i = 0; i < src->count; i++) tsr_tensor_copy(&dst->items[i].value, &src->items[i].value);
    tsr_params_bump_version(dst);
}

Test(soft_moe, samples_are_routed_independently_of_the_rest_of_the_batch)
{
    moe_case m;
    tsr_soft_moe_config c = config(4, 32);
    c.normalization = true;
    build(&m, TSR_DTYPE_F64, 20, 6, c);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 20, 6));
    tsr_test_fill_uniform(x, -3, 3, 12);
    tsr_tensor *all = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
    for (int64_t n = 0; n < 3; n++) {
        tsr_tensor one = tsr_tensor_slice(x, 0, n, 1);
        tsr_tensor *alone = tsr_soft_moe_forward(&m.moe, ctx, &m.params, &one, NULL, NULL);
        tsr_tensor part = tsr_tensor_slice(all, 0, n, 1);
        tsr_test_allclose(&part, alone, 1e-12, 1e-12, "a sample alone vs in a batch");
    }
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(soft_moe, float32_on_onednn_matches_the_float64_reference)
{
    tsr_soft_moe_config c = config(4, 64);
    c.normalization = true;
    moe_case m32, m64;
    build(&m32, TSR_DTYPE_F32, 121, 32, c);
    build(&m64, TSR_DTYPE_F64, 121, 32, c);
    copy_params(&m64.params, &m32.params);
    tsr_tensor *x32 = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(4, 121, 32));
    tsr_tensor *x64 = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(4, 121, 32));
    tsr_test_fill_uniform(x32, 0, 2, 13); /* post-ReLU encoder features are >= 0 */
    tsr_tensor_copy(x64, x32);
    x32->requires_grad = true;
    x64->requires_grad = true;
    /* One context each: a backward consumes its context's tape. */
    tsr_ctx *ctx32 = tsr_ctx_new(NULL), *ctx64 = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx32);
    tsr_ctx_begin_step(ctx64);
    tsr_tensor *z32 = tsr_soft_moe_forward(&m32.moe, ctx32, &m32.params, x32, NULL, NULL);
    tsr_tensor *z64 = tsr_soft_moe_forward(&m64.moe, ctx64, &m64.params, x64, NULL, NULL);
    tsr_test_allclose(z32, z64, 1e-4, 1e-5, "float32 vs float64 output");
    tsr_tensor *dz = tsr_tensor_new(TSR_DTYPE_F64, 3, z64->shape);
    tsr_test_fill_uniform(dz, -1, 1, 14);
    tsr_tensor *dz32 = tsr_tensor_new(TSR_DTYPE_F32, 3, z64->shape);
    tsr_tensor_copy(dz32, dz);
    tsr_backward_from(ctx32, z32, dz32);
    tsr_backward_from(ctx64, z64, dz);
    tsr_test_allclose(tsr_grad_get(ctx32, x32), tsr_grad_get(ctx64, x64), 1e-3, 1e-5, "dx");
    for (int i = 0; i < m32.params.count; i++)
        tsr_test_allclose(tsr_params_tensor(&m32.params, i)->grad,
                          tsr_params_tensor(&m64.params, i)->grad, 1e-3, 1e-5,
                          m32.params.items[i].name);
    tsr_tensor_free(dz);
    tsr_tensor_free(dz32);
    tsr_tensor_free(x32);
    tsr_tensor_free(x64);
    tsr_ctx_free(ctx32);
    tsr_ctx_free(ctx64);
    destroy(&m32);
    destroy(&m64);
}

Test(soft_moe, a_training_step_allocates_nothing_after_warm_up)
{
    moe_case m;
    build(&m, TSR_DTYPE_F32, 121, 32, config(8, 64));
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(8, 121, 32));
    tsr_test_fill_uniform(x, 0, 1, 15);
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 16});
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        tsr_ctx_begin_step(ctx);
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_tensor *z = tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
        tsr_backward(ctx, tsr_mean_all(ctx, z));
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(soft_moe, statistics_report_gates_loads_and_dispatch_per_expert)
{
    /* phi sends every slot of expert 0 logit 5 x0 and of expert 1 -5 x0:
     * with x0 > 0 every token's combine mass sits on expert 0. */
    moe_case m;
    int64_t t = 6, d = 2;
    build(&m, TSR_DTYPE_F64, t, d, config(2, 4));
    tsr_tensor *phi = tsr_params_tensor(&m.params, m.moe.phi); /* (2, 2, 3) */
    tsr_tensor_fill(phi, 0.0);
    for (int64_t s = 0; s < 3; s++) {
        tsr_tensor_set(phi, (int64_t[]){0, 0, s}, 5.0);
        tsr_tensor_set(phi, (int64_t[]){0, 1, s}, -5.0);
    }
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, t, d));
    tsr_test_fill_uniform(x, 0.5, 1.5, 16);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_soft_moe_outputs out;
    tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, &out);
    tsr_moe_stats stats;
    tsr_soft_moe_stats(&m.moe, &out, &stats);
    cr_expect(stats.has_gates && stats.has_dispatch && !stats.has_capacity);
    cr_expect_eq(stats.num_experts, 2);
    cr_expect_eq(stats.top1_load[0], 1.0);
    cr_expect_eq(stats.top1_load[1], 0.0);
    cr_expect_gt(stats.gate_mean[0], 0.99 / 3);
    cr_expect(fabs(stats.gate_mean[0] + stats.gate_mean[1] - 1.0 / 3) < 1e-12,
              "gates sum to 1 / S: %g", stats.gate_mean[0] + stats.gate_mean[1]);
    for (int e = 0; e < 2; e++) {
        cr_expect(fabs(stats.dispatch_mean[e] - 1.0 / (double)t) < 1e-12);
        cr_expect(stats.dispatch_peak[e] > 1.0 / (double)t && stats.dispatch_peak[e] < 1.0);
    }
    /* All slots of an expert are identical here, so the peak is the largest
     * dispatch weight of sample 0's first slot averaged with sample 1's. */
    double peak = 0;
    for (int64_t n = 0; n < 2; n++) {
        double best = 0;
        for (int64_t i = 0; i < t; i++)
            best = fmax(best, tsr_f64(out.dispatch)[n * 6 * t + i]);
        peak += best / 2;
    }
    cr_expect(fabs(stats.dispatch_peak[0] - peak) < 1e-12);
    /* phi = 0: every weight is uniform, the arg-max ties and takes expert 0. */
    tsr_tensor_fill(phi, 0.0);
    tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, &out);
    tsr_soft_moe_stats(&m.moe, &out, &stats);
    cr_expect_eq(stats.top1_load[0], 1.0);
    cr_expect(fabs(stats.gate_mean[1] - 1.0 / 6) < 1e-12 && fabs(stats.dispatch_peak[1] - 1.0 / 6) < 1e-12);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(soft_moe, summary_rows_split_router_and_experts)
{
    moe_case m;
    build(&m, TSR_DTYPE_F32, 121, 32, config(4, 512));
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_summary summary = {0};
    tsr_ctx_set_summary(ctx, &summary);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(1, 121, 32));
    tsr_soft_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
    tsr_ctx_set_summary(ctx, NULL);
    cr_assert_eq(summary.count, 2);
    cr_expect_str_eq(summary.rows[0].name, "moe/experts");
    cr_expect_eq(summary.rows[0].params, 4 * 33312);
    cr_expect_eq(summary.rows[0].flops, 2.0 * (4 * 31) * 2 * 32 * 512);
    cr_expect_str_eq(summary.rows[1].name, "moe");
    cr_expect_eq(summary.rows[1].params, 3968 + 1);
    cr_expect_eq(summary.rows[1].flops, 3 * 2.0 * 121 * 124 * 32);
    tsr_summary_fini(&summary);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}
