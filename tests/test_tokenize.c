/* Tokenization of encoder outputs and the average-pooling op it adds:
 * token values and shapes, finite differences for every kind, the
 * exclude-padding average against oneDNN, and configuration errors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "support/pool_checks.h"
#include "tessera/tessera.h"

static const tsr_backend backends[2] = {TSR_BACKEND_DNNL, TSR_BACKEND_REFERENCE};
static const char *const backend_names[2] = {"oneDNN", "reference"};

static tsr_tensor *new_uniform(tsr_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                               uint64_t seed)
{
    tsr_tensor *t = tsr_tensor_new(dtype, ndim, shape);
    tsr_test_fill_uniform(t, lo, hi, seed);
    return t;
}

/* ==== avg_pool2d: hand-computed values ===================================== */

/* x = 0..15 as a 4x4 image (one channel). */
static tsr_tensor *ramp_4x4(void)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(1, 4, 4, 1));
    for (int i = 0; i < 16; i++) tsr_f32(x)[i] = (float)i;
    return x;
}

Test(avg_pool2d, valid_2x2_stride_2_averages_each_quadrant)
{
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = ramp_4x4();
        tsr_tensor *y = tsr_avg_pool2d(ctx, x, 2, 2, TSR_PADDING_VALID);
        /* (0+1+4+5)/4, (2+3+6+7)/4, (8+9+12+13)/4, (10+11+14+15)/4 */
        float expected[4] = {2.5f, 4.5f, 10.5f, 12.5f};
        cr_expect(y->shape[1] == 2 && y->shape[2] == 2);
        tsr_test_allclose_f32(tsr_f32(y), expected, 4, 0, 0, backend_names[k]);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
}

Test(avg_pool2d, same_padding_is_excluded_from_the_average_and_its_gradient)
{
    /* 3x3 stride 1 SAME on 4x4: the corner window (0,0) holds {0,1,4,5}
     * only, mean 2.5 (counting the padding would give 10/9); an edge window
     * (0,1) holds {0,1,2,4,5,6}, mean 3; an inner one (1,1) nine values, 5. */
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = ramp_4x4();
        tsr_grad_reset(x, true);
        tsr_tensor *y = tsr_avg_pool2d(ctx, x, 3, 1, TSR_PADDING_SAME);
        cr_expect_float_eq(tsr_f32(y)[0], 2.5f, 1e-6, "%s corner", backend_names[k]);
        cr_expect_float_eq(tsr_f32(y)[1], 3.0f, 1e-6, "%s edge", backend_names[k]);
        cr_expect_float_eq(tsr_f32(y)[5], 5.0f, 1e-6, "%s inner", backend_names[k]);
        /* Every output spreads its gradient over its in-image positions
         * only, so a gradient of ones keeps its total mass of 16. */
        tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(1, 4, 4, 1));
        tsr_tensor_fill(dy, 1);
        tsr_backward_from(ctx, y, dy);
        const float *dx = tsr_f32(tsr_grad_get(ctx, x));
        double total = 0;
        for (int i = 0; i < 16; i++) total += dx[i];
        cr_expect_float_eq(total, 16.0, 1e-5, "%s: gradient mass", backend_names[k]);
        /* x(0,0) is in the windows of (0,0) (4 positions), (0,1), (1,0) (6
         * each) and (1,1) (9): 1/4 + 2/6 + 1/9. */
        cr_expect_float_eq(dx[0], 0.25 + 2.0 / 6 + 1.0 / 9, 1e-6, "%s: dx(0,0)", backend_names[k]);
        tsr_tensor_free(dy);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
}

/* ==== avg_pool2d: finite differences and parity =========================== */

static tsr_test_pool avg_pool(int kernel, int stride, tsr_padding padding)
{
    return (tsr_test_pool){tsr_avg_pool2d, "avg_pool2d", kernel, stride, padding};
}

Test(avg_pool2d, backward_matches_finite_differences_with_same_and_valid_padding)
{
    tsr_test_pool_gradcheck(avg_pool(3, 2, TSR_PADDING_SAME), 2, 7, 6, 3);
    tsr_test_pool_gradcheck(avg_pool(3, 1, TSR_PADDING_SAME), 2, 6, 5, 2);
    tsr_test_pool_gradcheck(avg_pool(3, 3, TSR_PADDING_VALID), 2, 7, 6, 3);
    tsr_test_pool_gradcheck(avg_pool(3, 3, TSR_PADDING_VALID), 1, 11, 11, 2);
    tsr_test_pool_gradcheck(avg_pool(2, 1, TSR_PADDING_VALID), 2, 6, 5, 2);
}

Test(avg_pool2d, onednn_matches_reference_on_the_patch_token_shapes_and_with_same_padding)
{
    for (int64_t n = 1; n <= 32; n += 31) {
        tsr_test_pool_parity(avg_pool(3, 3, TSR_PADDING_VALID), n, 11, 32, 1e-6); /* IMPALA tokens */
        tsr_test_pool_parity(avg_pool(3, 3, TSR_PADDING_VALID), n, 11, 64, 1e-6); /* Nature tokens */
        tsr_test_pool_parity(avg_pool(4, 4, TSR_PADDING_VALID), n, 11, 32, 1e-6);
        tsr_test_pool_parity(avg_pool(3, 2, TSR_PADDING_SAME), n, 11, 32, 1e-6); /* border windows */
        tsr_test_pool_parity(avg_pool(3, 1, TSR_PADDING_SAME), n, 10, 16, 1e-6);
    }
}

Test(avg_pool2d, second_use_of_an_input_in_a_step_accumulates_its_gradient)
{
    tsr_test_pool_accumulates(avg_pool(3, 3, TSR_PADDING_VALID), 2, 9, 4);
}

/* ==== tokenizers ============================================================ */

typedef struct tokens_model {
    tsr_params params;
    tsr_tokenizer tok;
    tsr_tensor *x;
} tokens_model;

static void build(tokens_model *m, tsr_dtype dtype, tsr_image_shape in, tsr_tokenizer_options o)
{
    memset(m, 0, sizeof *m);
    tsr_params_init_dtype(&m->params, dtype);
    tsr_error err = {0};
    cr_assert_eq(tsr_tokenizer_init(&m->tok, &m->params, "tokens", in, &o, &err), TSR_STATUS_OK, "%s",
                 err.message);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 3, TSR_RNG_STREAM_INIT);
    tsr_tokenizer_reset(&m->tok, &m->params, &rng);
    for (int i = 0; i < m->params.count; i++)
        if (m->params.items[i].value.ndim == 1)
            tsr_test_fill_uniform(tsr_params_tensor(&m->params, i), -0.1, 0.1, 4);
}

static void destroy(tokens_model *m)
{
    tsr_tokenizer_fini(&m->tok);
    tsr_params_fini(&m->params);
    tsr_tensor_free(m->x);
}

static tsr_tokenizer_options kind_options(tsr_token_kind kind, int64_t patch, int64_t embedding)
{
    tsr_tokenizer_options o = tsr_tokenizer_options_default();
    o.kind = kind;
    o.patch_size = patch;
    o.embedding = embedding;
    return o;
}

Test(tokenize, tokens_hold_the_expected_values_for_every_kind)
{
    const tsr_image_shape in = {5, 4, 3};
    tsr_tensor *x = new_uniform(TSR_DTYPE_F64, 4, TSR_SHAPE(2, 5, 4, 3), -1, 1, 1);
    for (int kind = 0; kind < TSR_TOKEN_KIND_COUNT; kind++) {
        tokens_model m;
        build(&m, TSR_DTYPE_F64, in, kind_options((tsr_token_kind)kind, 2, 4));
        tsr_ctx *ctx = tsr_ctx_new(NULL);
        tsr_tensor *t = tsr_tokenizer_forward(&m.tok, ctx, &m.params, x);
        const char *name = tsr_token_kind_name((tsr_token_kind)kind);
        int64_t T, D;
        tsr_tokenizer_token_shape(&m.tok, &T, &D);
        cr_assert(t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == T && t->shape[2] == D,
                  "%s: tokens (%lld, %lld, %lld) vs query %lldx%lld", name, (long long)t->shape[0],
                  (long long)t->shape[1], (long long)t->shape[2], (long long)T, (long long)D);
        double worst = 0;
        for (int64_t n = 0; n < 2; n++)
            for (int64_t i = 0; i < T; i++)
                for (int64_t d = 0; d < D; d++) {
                    double expected = 0;
                    switch ((tsr_token_kind)kind) {
                    case TSR_TOKENS_PER_CONV: /* token = a position, width = channels */
                        expected = tsr_tensor_get(x, (int64_t[]){n, i / 4, i % 4, d});
                        break;
                    case TSR_TOKENS_PER_FEATURE_MAP: /* token = a channel's whole map */
                        expected = tsr_tensor_get(x, (int64_t[]){n, d / 4, d % 4, i});
                        break;
                    case TSR_TOKENS_PER_SAMPLE:
                        expected = tsr_f64(x)[n * 60 + d];
                        break;
                    case TSR_TOKENS_AVG_POOL: /* 2x2 patches of 5x4: 2x2 of them */
                    case TSR_TOKENS_PER_PATCH: {
                        int64_t py = i / 2, px = i % 2;
                        if (kind == TSR_TOKENS_AVG_POOL) {
                            for (int u = 0; u < 2; u++)
                                for (int v = 0; v < 2; v++)
                                    expected += tsr_tensor_get(x, (int64_t[]){n, 2 * py + u, 2 * px + v, d}) / 4;
                        } else {
                            tsr_tensor *w = tsr_params_tensor(&m.params, m.tok.patch.weight);
                            expected = tsr_f64(tsr_params_tensor(&m.params, m.tok.patch.bias))[d];
                            for (int c = 0; c < 3; c++)
                                for (int u = 0; u < 2; u++)
                                    for (int v = 0; v < 2; v++)
                                        expected += tsr_tensor_get(x, (int64_t[]){n, 2 * py + u, 2 * px + v, c}) *
                                                    tsr_tensor_get(w, (int64_t[]){d, c, u, v});
                        }
                        break;
                    }
                    case TSR_TOKEN_KIND_COUNT: break;
                    }
                    double got = tsr_tensor_get(t, (int64_t[]){n, i, d});
                    if (fabs(got - expected) > worst) worst = fabs(got - expected);
                }
        cr_expect(worst < 1e-12, "%s: tokens differ from the definition by %g", name, worst);
        tsr_ctx_free(ctx);
        destroy(&m);
    }
    tsr_tensor_free(x);
}

static tsr_tensor *tokens_objective(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)in;
    tokens_model *m = user;
    return tsr_tokenizer_forward(&m->tok, ctx, &m->params, m->x);
}

Test(tokenize, backward_matches_finite_differences_for_every_kind)
{
    const tsr_image_shape in = {5, 5, 3};
    for (int kind = 0; kind < TSR_TOKEN_KIND_COUNT; kind++)
        for (int64_t patch = 2; patch <= 3; patch++) {
            bool patched = kind == TSR_TOKENS_PER_PATCH || kind == TSR_TOKENS_AVG_POOL;
            if (!patched && patch == 3) continue;
            tokens_model m;
            build(&m, TSR_DTYPE_F64, in, kind_options((tsr_token_kind)kind, patch, 4));
            m.x = new_uniform(TSR_DTYPE_F64, 4, TSR_SHAPE(2, 5, 5, 3), -1, 1, 7);
            m.x->requires_grad = true;
            tsr_tensor *inputs[3] = {m.x};
            int count = 1;
            for (int i = 0; i < m.params.count; i++) inputs[count++] = tsr_params_tensor(&m.params, i);
            char what[64];
            snprintf(what, sizeof what, "%s tokens, patch %lld", tsr_token_kind_name((tsr_token_kind)kind),
                     (long long)patch);
            tsr_test_gradcheck(tokens_objective, inputs, count, &m, NULL, what);
            destroy(&m);
        }
}

/* IMPALA's 11x11x32 output (84x84x4 input) in every tokenization, at batch 1
 * and 32, through the real encoder. */
Test(tokenize, impala_outputs_give_121x32_32x121_1x3872_and_9x32_tokens)
{
    static const int64_t expected[TSR_TOKEN_KIND_COUNT][2] = {
        [TSR_TOKENS_PER_CONV] = {121, 32},
        [TSR_TOKENS_PER_FEATURE_MAP] = {32, 121},
        [TSR_TOKENS_PER_SAMPLE] = {1, 3872},
        [TSR_TOKENS_PER_PATCH] = {9, 32},
        [TSR_TOKENS_AVG_POOL] = {9, 32},
    };
    tsr_params params;
    tsr_params_init(&params);
    tsr_impala_encoder enc;
    tsr_tokenizer tok[TSR_TOKEN_KIND_COUNT];
    tsr_error err = {0};
    cr_assert_eq(tsr_impala_encoder_init(&enc, &params, "enc", 84, 84, 4, NULL, &err), TSR_STATUS_OK);
    tsr_image_shape shape = tsr_impala_encoder_output_shape(&enc);
    for (int k = 0; k < TSR_TOKEN_KIND_COUNT; k++) {
        char name[32];
        snprintf(name, sizeof name, "tokens%d", k);
        tsr_tokenizer_options o = tsr_tokenizer_options_default();
        o.kind = (tsr_token_kind)k;
        cr_assert_eq(tsr_tokenizer_init(&tok[k], &params, name, shape, &o, &err), TSR_STATUS_OK, "%s",
                     err.message);
    }
    tsr_params_finalize(&params);
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_impala_encoder_reset(&enc, &params, &rng);
    for (int k = 0; k < TSR_TOKEN_KIND_COUNT; k++) tsr_tokenizer_reset(&tok[k], &params, &rng);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    for (int64_t batch = 1; batch <= 32; batch += 31) {
        tsr_ctx_begin_step(ctx);
        tsr_tensor *x = tsr_ctx_tensor(ctx, TSR_DTYPE_F32, 4, TSR_SHAPE(batch, 84, 84, 4));
        tsr_tensor_fill(x, 0.25);
        tsr_tensor *features = tsr_impala_encoder_forward(&enc, ctx, &params, x);
        for (int k = 0; k < TSR_TOKEN_KIND_COUNT; k++) {
            tsr_tensor *t = tsr_tokenizer_forward(&tok[k], ctx, &params, features);
            cr_expect(t->ndim == 3 && t->shape[0] == batch && t->shape[1] == expected[k][0] &&
                          t->shape[2] == expected[k][1],
                      "%s at batch %lld: (%lld, %lld, %lld), expected %lldx%lld",
                      tsr_token_kind_name((tsr_token_kind)k), (long long)batch, (long long)t->shape[0],
                      (long long)t->shape[1], (long long)t->shape[2], (long long)expected[k][0],
                      (long long)expected[k][1]);
        }
    }
    /* The per-patch embedding of ImpalaMoE: 32 outputs of 3x3x32 patches,
     * 32*32*3*3 + 32 = 9248 parameters; the other kinds have none. */
    int64_t total = tsr_params_count(&params);
    tsr_params empty;
    tsr_params_init(&empty);
    tsr_impala_encoder bare;
    tsr_impala_encoder_init(&bare, &empty, "enc", 84, 84, 4, NULL, &err);
    cr_expect_eq(total - tsr_params_count(&empty), 32 * 32 * 3 * 3 + 32);
    cr_expect_eq(total - tsr_params_count(&empty), 9248);
    tsr_impala_encoder_fini(&bare);
    tsr_params_fini(&empty);
    tsr_ctx_free(ctx);
    for (int k = 0; k < TSR_TOKEN_KIND_COUNT; k++) tsr_tokenizer_fini(&tok[k]);
    tsr_impala_encoder_fini(&enc);
    tsr_params_fini(&params);
}

Test(tokenize, nature_outputs_give_121x64_64x121_1x7744_and_9x64_tokens)
{
    const tsr_image_shape in = {11, 11, 64};
    static const int64_t expected[TSR_TOKEN_KIND_COUNT][2] = {
        {121, 64}, {64, 121}, {1, 7744}, {9, 64}, {9, 64},
    };
    for (int k = 0; k < TSR_TOKEN_KIND_COUNT; k++) {
        tokens_model m;
        build(&m, TSR_DTYPE_F32, in, kind_options((tsr_token_kind)k, 3, 64)); /* NatureDQNMoE: 64 */
        int64_t T, D;
        tsr_tokenizer_token_shape(&m.tok, &T, &D);
        cr_expect(T == expected[k][0] && D == expected[k][1], "%s: %lldx%lld",
                  tsr_token_kind_name((tsr_token_kind)k), (long long)T, (long long)D);
        destroy(&m);
    }
}

Test(tokenize, the_patch_embedding_is_lecun_normal_with_zero_bias)
{
    /* 16 input channels, 64 outputs, 3x3: fan_in 144, fan_out 576, so
     * LeCun-normal (variance 1/144) and xavier (2/720) differ. */
    tokens_model m;
    memset(&m, 0, sizeof m);
    tsr_params_init(&m.params);
    tsr_error err = {0};
    tsr_tokenizer_options o = kind_options(TSR_TOKENS_PER_PATCH, 3, 64);
    cr_assert_eq(tsr_tokenizer_init(&m.tok, &m.params, "tokens", (tsr_image_shape){11, 11, 16}, &o, &err),
                 TSR_STATUS_OK);
    tsr_params_finalize(&m.params);
    tsr_rng rng;
    tsr_rng_init(&rng, 8, TSR_RNG_STREAM_INIT);
    tsr_tokenizer_reset(&m.tok, &m.params, &rng);
    tsr_tensor *w = tsr_params_tensor(&m.params, tsr_params_find(&m.params, "tokens/embedding/weight"));
    tsr_tensor *b = tsr_params_tensor(&m.params, tsr_params_find(&m.params, "tokens/embedding/bias"));
    double s2 = 0, s4 = 0, max_abs = 0;
    int64_t n = tsr_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) {
        double v = tsr_f32(w)[i];
        s2 += v * v;
        s4 += v * v * v * v;
        if (fabs(v) > max_abs) max_abs = fabs(v);
    }
    double fan_in = 16 * 3 * 3, variance = s2 / (double)n;
    cr_expect(fabs(variance * fan_in - 1) < 0.05, "variance %g, expected 1/%g", variance, fan_in);
    cr_expect(max_abs <= 2 * sqrt(1 / fan_in) / 0.87962566103423978 + 1e-7, "beyond the truncation");
    /* A normal truncated at two standard deviations has kurtosis 2.37. */
    double kurtosis = s4 / (double)n / (variance * variance);
    cr_expect(fabs(kurtosis - 2.37) < 0.12, "kurtosis %g", kurtosis);
    for (int64_t i = 0; i < tsr_tensor_numel(b); i++) cr_expect_eq(tsr_f32(b)[i], 0.0f);
    destroy(&m);
}

Test(tokenize, bad_configuration_values_are_reported_with_the_value_and_what_is_allowed)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_tokenizer t;
    tsr_error err = {0};
    const tsr_image_shape in = {11, 11, 32};
    tsr_tokenizer_options o = kind_options(TSR_TOKENS_PER_PATCH, 12, 32);
    cr_expect_eq(tsr_tokenizer_init(&t, &p, "tok", in, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "patch_size = 12") && strstr(err.message, "1..11"), "%s", err.message);
    o = kind_options(TSR_TOKENS_AVG_POOL, 0, 32);
    cr_expect_eq(tsr_tokenizer_init(&t, &p, "tok", in, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    o = kind_options(TSR_TOKENS_PER_PATCH, 3, 0);
    cr_expect_eq(tsr_tokenizer_init(&t, &p, "tok", in, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "embedding = 0"), "%s", err.message);
    o = kind_options((tsr_token_kind)9, 3, 32);
    cr_expect_eq(tsr_tokenizer_init(&t, &p, "tok", in, &o, &err), TSR_STATUS_INVALID_ARGUMENT);
    /* Patch sizes do not matter to the kinds without patches. */
    o = kind_options(TSR_TOKENS_PER_CONV, 0, 0);
    cr_expect_eq(tsr_tokenizer_init(&t, &p, "tok", in, &o, &err), TSR_STATUS_OK);
    cr_expect_eq(p.count, 0);

    tsr_token_kind kind = TSR_TOKENS_PER_CONV;
    cr_expect_eq(tsr_token_kind_parse("per_feature_map", &kind, &err), TSR_STATUS_OK);
    cr_expect_eq(kind, TSR_TOKENS_PER_FEATURE_MAP);
    cr_expect_eq(tsr_token_kind_parse("per_pixel", &kind, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "per_pixel") && strstr(err.message, "per_conv"), "%s", err.message);
    for (int k = 0; k < TSR_TOKEN_KIND_COUNT; k++) {
        cr_expect_eq(tsr_token_kind_parse(tsr_token_kind_name((tsr_token_kind)k), &kind, &err), TSR_STATUS_OK);
        cr_expect_eq((int)kind, k);
    }
    tsr_params_fini(&p);
}

Test(tokenize, per_conv_and_per_sample_tokens_are_views_without_copies)
{
    tokens_model m;
    build(&m, TSR_DTYPE_F32, (tsr_image_shape){11, 11, 32}, kind_options(TSR_TOKENS_PER_CONV, 3, 32));
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 11, 11, 32), -1, 1, 3);
    tsr_tensor *t = tsr_tokenizer_forward(&m.tok, ctx, &m.params, x);
    cr_expect_eq(t->data, x->data);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(tokenize, a_warm_training_step_through_patch_and_feature_map_tokens_allocates_nothing)
{
    const tsr_image_shape in = {11, 11, 32};
    tokens_model a, b;
    build(&a, TSR_DTYPE_F32, in, kind_options(TSR_TOKENS_AVG_POOL, 3, 32));
    build(&b, TSR_DTYPE_F32, in, kind_options(TSR_TOKENS_PER_FEATURE_MAP, 3, 32));
    tokens_model c;
    build(&c, TSR_DTYPE_F32, in, kind_options(TSR_TOKENS_PER_PATCH, 3, 32));
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 12});
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(32, 11, 11, 32), -1, 1, 13);
    tsr_grad_reset(x, true);
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_ctx_begin_step(ctx);
        tsr_tensor *ta = tsr_tokenizer_forward(&a.tok, ctx, &a.params, x);
        tsr_tensor *tb = tsr_tokenizer_forward(&b.tok, ctx, &b.params, x);
        tsr_tensor *tc = tsr_tokenizer_forward(&c.tok, ctx, &c.params, x);
        tsr_tensor *sum = tsr_add(ctx, tsr_mean_all(ctx, ta), tsr_mean_all(ctx, tb));
        tsr_backward(ctx, tsr_add(ctx, sum, tsr_mean_all(ctx, tc)));
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&a);
    destroy(&b);
    destroy(&c);
}
