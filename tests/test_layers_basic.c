/* The linear and conv2d layers, and the summary they report to. */
#include <criterion/criterion.h>
#include <string.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

typedef struct two_layers {
    tsr_params params;
    tsr_conv2d_layer conv;
    tsr_linear_layer fc;
} two_layers;

static void build(two_layers *m, tsr_dtype dtype, tsr_padding padding)
{
    tsr_params_init_dtype(&m->params, dtype);
    tsr_conv2d_layer_init(&m->conv, &m->params, "encoder/conv", 3, 4, 3, 2, padding, true, true,
                          (tsr_init_spec){TSR_INIT_XAVIER_UNIFORM, 0});
    int64_t out = padding == TSR_PADDING_SAME ? 3 : 2; /* 5x5 input, stride 2 */
    tsr_linear_layer_init(&m->fc, &m->params, "head/q", out * out * 4, 2, true, false,
                          (tsr_init_spec){TSR_INIT_LECUN_NORMAL, 0});
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 5, TSR_RNG_STREAM_INIT);
    tsr_conv2d_layer_reset(&m->conv, &m->params, &rng);
    tsr_linear_layer_reset(&m->fc, &m->params, &rng);
    /* Non-zero biases so their gradients are exercised away from zero. */
    tsr_test_fill_uniform(tsr_params_tensor(&m->params, m->conv.bias), -0.1, 0.1, 6);
    tsr_test_fill_uniform(tsr_params_tensor(&m->params, m->fc.bias), -0.1, 0.1, 7);
}

static void destroy(two_layers *m)
{
    tsr_conv2d_layer_fini(&m->conv);
    tsr_linear_layer_fini(&m->fc);
    tsr_params_fini(&m->params);
}

static tsr_tensor *forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    two_layers *m = user;
    tsr_tensor *h = tsr_conv2d_layer_forward(&m->conv, ctx, &m->params, in[0]);
    return tsr_linear_layer_forward(&m->fc, ctx, &m->params, tsr_flatten(ctx, h));
}

static void check(tsr_padding padding)
{
    two_layers m;
    build(&m, TSR_DTYPE_F64, padding);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 4, TSR_SHAPE(2, 5, 5, 3));
    tsr_test_fill_uniform(x, -1, 1, 8);
    x->requires_grad = true;
    tsr_tensor *inputs[5] = {x};
    for (int i = 0; i < 4; i++) inputs[1 + i] = tsr_params_tensor(&m.params, i);
    tsr_test_gradcheck(forward, inputs, 5, &m, NULL, "conv + linear layers");
    tsr_tensor_free(x);
    destroy(&m);
}

Test(layers, conv_and_linear_match_finite_differences_with_same_padding) { check(TSR_PADDING_SAME); }
Test(layers, conv_and_linear_match_finite_differences_with_valid_padding) { check(TSR_PADDING_VALID); }

Test(layers, parameters_are_named_after_their_layer)
{
    two_layers m;
    build(&m, TSR_DTYPE_F32, TSR_PADDING_SAME);
    cr_expect_eq(tsr_params_find(&m.params, "encoder/conv/weight"), m.conv.weight);
    cr_expect_eq(tsr_params_find(&m.params, "encoder/conv/bias"), m.conv.bias);
    cr_expect_eq(tsr_params_find(&m.params, "head/q/weight"), m.fc.weight);
    cr_expect(m.params.items[m.fc.weight].flags & TSR_PARAM_PRUNABLE);
    cr_expect_not(m.params.items[m.fc.bias].flags & TSR_PARAM_PRUNABLE);
    destroy(&m);
}

Test(layers, summary_records_shapes_parameters_and_flops)
{
    two_layers m;
    build(&m, TSR_DTYPE_F32, TSR_PADDING_SAME);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_summary summary = {0};
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(1, 5, 5, 3));
    tsr_ctx_set_summary(ctx, &summary);
    forward(ctx, &x, &m);
    tsr_ctx_set_summary(ctx, NULL);
    forward(ctx, &x, &m); /* not recorded */
    cr_assert_eq(summary.count, 2);
    cr_expect_str_eq(summary.rows[0].name, "encoder/conv");
    cr_expect_eq(summary.rows[0].shape[1], 3);
    cr_expect_eq(summary.rows[0].params, 4 * 3 * 9 + 4);
    cr_expect_eq(summary.rows[0].flops, 2.0 * 9 * 27 * 4); /* 3x3 positions, 27 MACs, 4 outputs */
    cr_expect_eq(summary.rows[1].params, 36 * 2 + 2);
    cr_expect_eq(summary.rows[1].flops, 2.0 * 36 * 2);
    tsr_summary_fini(&summary);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}
