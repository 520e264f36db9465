#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* ---- relu ---- */

static tsr_tensor *relu_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_relu(ctx, in[0]);
}

Test(relu, backward_matches_finite_differences)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 5, 7));
    tsr_test_fill_uniform(x, -1, 1, 1);
    x->requires_grad = true;
    tsr_test_gradcheck(relu_forward, &x, 1, NULL, NULL, "relu");
    tsr_tensor_free(x);
}

Test(relu, zeroes_negatives_and_keeps_positives)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    float data[4] = {-2.f, -0.f, 0.5f, 3.f};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F32, 1, TSR_SHAPE(4));
    tsr_tensor *y = tsr_relu(ctx, &x);
    float expected[4] = {0.f, 0.f, 0.5f, 3.f};
    tsr_test_allclose_f32(tsr_f32(y), expected, 4, 0, 0, "relu values");
    tsr_ctx_free(ctx);
}

Test(relu, onednn_matches_reference_on_a_nature_activation)
{
    /* conv1's output of the Nature CNN at batch 32: (32, 21, 21, 32). */
    const int64_t *shape = TSR_SHAPE(32, 21, 21, 32);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_test_fill_uniform(x, -1, 1, 2);
    tsr_test_fill_uniform(dy, -1, 1, 3);
    tsr_tensor *y[2], *dx[2];
    tsr_ctx *ctx[2];
    for (int b = 0; b < 2; b++) {
        ctx[b] = tsr_ctx_new(&(tsr_ctx_options){.backend = b ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        tsr_ctx_begin_step(ctx[b]);
        tsr_grad_reset(x, true);
        y[b] = tsr_relu(ctx[b], x);
        tsr_backward_from(ctx[b], y[b], dy);
        dx[b] = tsr_grad_get(ctx[b], x);
        cr_assert_not_null(dx[b]);
    }
    tsr_test_allclose(y[0], y[1], 0, 0, "relu forward: oneDNN vs reference");
    tsr_test_allclose(dx[0], dx[1], 0, 0, "relu backward: oneDNN vs reference");
    for (int b = 0; b < 2; b++) tsr_ctx_free(ctx[b]);
    tsr_tensor_free(x);
    tsr_tensor_free(dy);
}

Test(relu, records_nothing_without_grad)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 1, TSR_SHAPE(8));
    x->requires_grad = true;
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *y = tsr_relu(ctx, x);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 0);
    cr_expect_not(y->requires_grad);
    tsr_ctx_set_grad(ctx, true);
    tsr_relu(ctx, x);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 1);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
}

Test(relu, second_use_in_a_step_accumulates_the_gradient)
{
    /* Two uses of x in one step, each backpropagated: dx = 2 * (x > 0). */
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    double data[3] = {-1.0, 2.0, 3.0};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F64, 1, TSR_SHAPE(3));
    x.requires_grad = true;
    tsr_ctx_begin_step(ctx);
    double ones[3] = {1, 1, 1};
    tsr_tensor dy = tsr_tensor_view(ones, TSR_DTYPE_F64, 1, TSR_SHAPE(3));
    tsr_tensor *a = tsr_relu(ctx, &x);
    tsr_backward_from(ctx, a, &dy);
    tsr_tensor *b = tsr_relu(ctx, &x);
    tsr_backward_from(ctx, b, &dy);
    double expected[3] = {0, 2, 2};
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, &x)), expected, 3, 0, 0, "dx");
    tsr_ctx_free(ctx);
}
