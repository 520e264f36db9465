#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

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

/* ---- add, sub, mul ---- */

typedef enum binary_kind { KIND_ADD, KIND_SUB, KIND_MUL } binary_kind;

static tsr_tensor *apply_binary(tsr_ctx *ctx, binary_kind kind, tsr_tensor *a, tsr_tensor *b)
{
    switch (kind) {
    case KIND_ADD: return tsr_add(ctx, a, b);
    case KIND_SUB: return tsr_sub(ctx, a, b);
    case KIND_MUL: return tsr_mul(ctx, a, b);
    }
    return NULL;
}

static tsr_tensor *binary_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return apply_binary(ctx, *(binary_kind *)user, in[0], in[1]);
}

/* a op b, then a op b again through a second op (a * b), summed: every input
 * gradient gets a second contribution, exercising the accumulate paths. */
static tsr_tensor *binary_twice_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    tsr_tensor *first = apply_binary(ctx, *(binary_kind *)user, in[0], in[1]);
    tsr_tensor *second = tsr_mul(ctx, in[0], in[1]);
    return tsr_add(ctx, first, second);
}

static void check_binary(binary_kind kind, int a_ndim, const int64_t *a_shape, int b_ndim,
                         const int64_t *b_shape, bool b_requires_grad, tsr_test_forward_fn fn,
                         const char *what)
{
    tsr_tensor *a = tsr_tensor_new(TSR_DTYPE_F64, a_ndim, a_shape);
    tsr_tensor *b = tsr_tensor_new(TSR_DTYPE_F64, b_ndim, b_shape);
    tsr_test_fill_uniform(a, -1, 1, 11);
    tsr_test_fill_uniform(b, -1, 1, 12);
    a->requires_grad = true;
    b->requires_grad = b_requires_grad;
    tsr_tensor *in[2] = {a, b};
    tsr_test_gradcheck(fn, in, 2, &kind, NULL, what);
    tsr_tensor_free(a);
    tsr_tensor_free(b);
}

Test(add, backward_matches_finite_differences_with_same_shapes)
{
    check_binary(KIND_ADD, 3, TSR_SHAPE(2, 3, 4), 3, TSR_SHAPE(2, 3, 4), true, binary_forward,
                 "add same shape");
}

Test(add, backward_matches_finite_differences_with_b_broadcast_over_leading_dims)
{
    check_binary(KIND_ADD, 4, TSR_SHAPE(2, 3, 4, 5), 1, TSR_SHAPE(5), true, binary_forward,
                 "add (2,3,4,5) + (5)");
    check_binary(KIND_ADD, 3, TSR_SHAPE(3, 4, 5), 2, TSR_SHAPE(4, 5), true, binary_forward,
                 "add (3,4,5) + (4,5)");
    check_binary(KIND_ADD, 2, TSR_SHAPE(3, 4), 0, TSR_SHAPE(1), true, binary_forward,
                 "add (3,4) + scalar");
}

Test(add, backward_matches_finite_differences_when_b_needs_no_gradient)
{
    check_binary(KIND_ADD, 2, TSR_SHAPE(3, 4), 1, TSR_SHAPE(4), false, binary_forward,
                 "add with constant b");
}

Test(add, backward_accumulates_into_gradients_already_written)
{
    check_binary(KIND_ADD, 2, TSR_SHAPE(3, 4), 2, TSR_SHAPE(3, 4), true, binary_twice_forward,
                 "add then mul, same shape");
    check_binary(KIND_ADD, 3, TSR_SHAPE(2, 3, 4), 1, TSR_SHAPE(4), true, binary_twice_forward,
                 "add then mul, broadcast");
}

static tsr_tensor *add_self_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_add(ctx, tsr_mul(ctx, in[0], in[0]), in[0]);
}

Test(add, backward_matches_finite_differences_when_both_operands_are_one_tensor)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 5));
    tsr_test_fill_uniform(x, -1, 1, 13);
    x->requires_grad = true;
    tsr_test_gradcheck(add_self_forward, &x, 1, NULL, NULL, "x * x + x");
    tsr_tensor_free(x);
}

Test(sub, backward_matches_finite_differences_with_same_and_broadcast_shapes)
{
    check_binary(KIND_SUB, 3, TSR_SHAPE(2, 3, 4), 3, TSR_SHAPE(2, 3, 4), true, binary_forward,
                 "sub same shape");
    check_binary(KIND_SUB, 3, TSR_SHAPE(2, 3, 4), 2, TSR_SHAPE(3, 4), true, binary_forward,
                 "sub broadcast");
    check_binary(KIND_SUB, 3, TSR_SHAPE(2, 3, 4), 1, TSR_SHAPE(4), true, binary_twice_forward,
                 "sub then mul, broadcast");
}

Test(mul, backward_matches_finite_differences_with_same_and_broadcast_shapes)
{
    check_binary(KIND_MUL, 3, TSR_SHAPE(2, 3, 4), 3, TSR_SHAPE(2, 3, 4), true, binary_forward,
                 "mul same shape");
    check_binary(KIND_MUL, 4, TSR_SHAPE(2, 3, 2, 4), 2, TSR_SHAPE(2, 4), true, binary_forward,
                 "mul broadcast");
    check_binary(KIND_MUL, 3, TSR_SHAPE(2, 3, 4), 1, TSR_SHAPE(4), false, binary_forward,
                 "mul with constant b");
    check_binary(KIND_MUL, 2, TSR_SHAPE(3, 4), 1, TSR_SHAPE(4), true, binary_twice_forward,
                 "mul then mul, broadcast");
}

Test(add, broadcasts_a_bias_over_rows_and_reduces_its_gradient)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    float a_data[6] = {1, 2, 3, 4, 5, 6};
    float b_data[3] = {10, 20, 30};
    tsr_tensor a = tsr_tensor_view(a_data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_tensor b = tsr_tensor_view(b_data, TSR_DTYPE_F32, 1, TSR_SHAPE(3));
    a.requires_grad = b.requires_grad = true;
    tsr_tensor *y = tsr_add(ctx, &a, &b);
    float expected[6] = {11, 22, 33, 14, 25, 36};
    tsr_test_allclose_f32(tsr_f32(y), expected, 6, 0, 0, "a + b");
    /* dy = [[1, 2, 3], [4, 5, 6]]: da = dy, db = column sums [5, 7, 9]. */
    tsr_tensor dy = tsr_tensor_view(a_data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_backward_from(ctx, y, &dy);
    tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, &a)), a_data, 6, 0, 0, "da");
    float db[3] = {5, 7, 9};
    tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, &b)), db, 3, 0, 0, "db");
    tsr_ctx_free(ctx);
}

Test(sub, subtracts_and_negates_the_gradient_of_b)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    double a_data[4] = {1, 2, 3, 4}, b_data[2] = {0.5, -1};
    tsr_tensor a = tsr_tensor_view(a_data, TSR_DTYPE_F64, 2, TSR_SHAPE(2, 2));
    tsr_tensor b = tsr_tensor_view(b_data, TSR_DTYPE_F64, 1, TSR_SHAPE(2));
    b.requires_grad = true;
    tsr_tensor *y = tsr_sub(ctx, &a, &b);
    double expected[4] = {0.5, 3, 2.5, 5};
    tsr_test_allclose_f64(tsr_f64(y), expected, 4, 0, 0, "a - b");
    double ones[4] = {1, 1, 1, 1};
    tsr_tensor dy = tsr_tensor_view(ones, TSR_DTYPE_F64, 2, TSR_SHAPE(2, 2));
    tsr_backward_from(ctx, y, &dy);
    double db[2] = {-2, -2};
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, &b)), db, 2, 0, 0, "db = -sum dy");
    cr_expect_null(tsr_grad_get(ctx, &a), "a requires no gradient");
    tsr_ctx_free(ctx);
}

Test(mul, multiplies_elementwise_with_gradients_crossed)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    float a_data[4] = {1, 2, 3, 4}, b_data[2] = {10, -1};
    tsr_tensor a = tsr_tensor_view(a_data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 2));
    tsr_tensor b = tsr_tensor_view(b_data, TSR_DTYPE_F32, 1, TSR_SHAPE(2));
    a.requires_grad = b.requires_grad = true;
    tsr_tensor *y = tsr_mul(ctx, &a, &b);
    float expected[4] = {10, -2, 30, -4};
    tsr_test_allclose_f32(tsr_f32(y), expected, 4, 0, 0, "a * b");
    float ones[4] = {1, 1, 1, 1};
    tsr_tensor dy = tsr_tensor_view(ones, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 2));
    tsr_backward_from(ctx, y, &dy);
    float da[4] = {10, -1, 10, -1}, db[2] = {1 + 3, 2 + 4};
    tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, &a)), da, 4, 0, 0, "da = dy * b");
    tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, &b)), db, 2, 0, 0, "db = sum dy * a");
    tsr_ctx_free(ctx);
}

Test(add, aborts_when_b_is_not_a_trailing_shape_of_a, .signal = SIGABRT)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    float a_data[6] = {0}, b_data[2] = {0};
    tsr_tensor a = tsr_tensor_view(a_data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_tensor b = tsr_tensor_view(b_data, TSR_DTYPE_F32, 1, TSR_SHAPE(2));
    tsr_add(ctx, &a, &b);
}

/* oneDNN's binary primitive runs only same-shaped float32 operands without
 * accumulation (src/ops_elementwise.c: with b broadcast it measured 2.5-4x
 * slower, so broadcasts run the reference kernel on both backends and are
 * covered by the finite-difference and expected-value tests above). The
 * parity tests therefore compare what oneDNN computes: the forward, and for
 * mul the gradient of a (dy * b, the same primitive). add's and sub's
 * gradients are copies and row sums in plain C on both backends. */
static void binary_parity(binary_kind kind, const int64_t *shape, const char *what)
{
    tsr_tensor *a = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_tensor *b = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_test_fill_uniform(a, -1, 1, 21);
    tsr_test_fill_uniform(b, -1, 1, 22);
    tsr_test_fill_uniform(dy, -1, 1, 23);
    tsr_tensor *y[2], *da[2];
    tsr_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        ctx[k] = tsr_ctx_new(&(tsr_ctx_options){
            .backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL, .arena_bytes = 64 << 20});
        tsr_ctx_begin_step(ctx[k]);
        tsr_grad_reset(a, true);
        tsr_grad_reset(b, false);
        y[k] = apply_binary(ctx[k], kind, a, b);
        tsr_backward_from(ctx[k], y[k], dy);
        da[k] = tsr_grad_get(ctx[k], a);
        cr_assert(da[k], "%s: missing gradient", what);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s forward: oneDNN vs reference", what);
    tsr_test_allclose(y[0], y[1], 1e-6, 1e-7, msg);
    if (kind == KIND_MUL) {
        snprintf(msg, sizeof msg, "%s da: oneDNN vs reference", what);
        tsr_test_allclose(da[0], da[1], 1e-6, 1e-7, msg);
    }
    for (int k = 0; k < 2; k++) tsr_ctx_free(ctx[k]);
    tsr_tensor_free(a);
    tsr_tensor_free(b);
    tsr_tensor_free(dy);
}

Test(add, onednn_matches_reference_on_impala_residual_adds_at_batch_32)
{
    /* The residual blocks of the three IMPALA stages (after each max pool). */
    binary_parity(KIND_ADD, TSR_SHAPE(32, 42, 42, 16), "residual add (32,42,42,16)");
    binary_parity(KIND_ADD, TSR_SHAPE(32, 21, 21, 32), "residual add (32,21,21,32)");
    binary_parity(KIND_ADD, TSR_SHAPE(32, 11, 11, 32), "residual add (32,11,11,32)");
}

Test(add, onednn_matches_reference_on_an_impala_residual_add_at_batch_1)
{
    binary_parity(KIND_ADD, TSR_SHAPE(1, 42, 42, 16), "residual add (1,42,42,16)");
}

Test(sub, onednn_matches_reference_on_a_nature_activation)
{
    binary_parity(KIND_SUB, TSR_SHAPE(32, 11, 11, 64), "sub (32,11,11,64)");
}

Test(mul, onednn_matches_reference_forward_and_backward_on_a_minatar_activation)
{
    binary_parity(KIND_MUL, TSR_SHAPE(32, 10, 10, 16), "mul (32,10,10,16)");
}

/* ---- scale ---- */

static tsr_tensor *scale_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_scale(ctx, in[0], -1.5, 0.25);
}

static tsr_tensor *scale_twice_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_add(ctx, tsr_scale(ctx, in[0], 3.0, -1.0), tsr_scale(ctx, in[0], 0.5, 2.0));
}

Test(scale, backward_matches_finite_differences)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4));
    tsr_test_fill_uniform(x, -1, 1, 31);
    x->requires_grad = true;
    tsr_test_gradcheck(scale_forward, &x, 1, NULL, NULL, "scale");
    tsr_test_gradcheck(scale_twice_forward, &x, 1, NULL, NULL, "two scales of x, accumulated");
    tsr_tensor_free(x);
}

Test(scale, computes_alpha_x_plus_beta)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    float data[3] = {-2, 0, 4};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F32, 1, TSR_SHAPE(3));
    tsr_tensor *y = tsr_scale(ctx, &x, 0.5, 1.0);
    float expected[3] = {0, 1, 3};
    tsr_test_allclose_f32(tsr_f32(y), expected, 3, 0, 0, "0.5 x + 1");
    tsr_ctx_free(ctx);
}

Test(scale, onednn_matches_reference_on_a_nature_activation)
{
    const int64_t *shape = TSR_SHAPE(32, 21, 21, 32);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_test_fill_uniform(x, -1, 1, 32);
    tsr_test_fill_uniform(dy, -1, 1, 33);
    tsr_tensor *y[2], *dx[2];
    tsr_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        ctx[k] = tsr_ctx_new(&(tsr_ctx_options){.backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        tsr_ctx_begin_step(ctx[k]);
        tsr_grad_reset(x, true);
        y[k] = tsr_scale(ctx[k], x, 0.7, -0.3);
        tsr_backward_from(ctx[k], y[k], dy);
        dx[k] = tsr_grad_get(ctx[k], x);
        cr_assert_not_null(dx[k]);
    }
    tsr_test_allclose(y[0], y[1], 1e-6, 1e-7, "scale forward: oneDNN vs reference");
    tsr_test_allclose(dx[0], dx[1], 1e-6, 1e-7, "scale backward: oneDNN vs reference");
    for (int k = 0; k < 2; k++) tsr_ctx_free(ctx[k]);
    tsr_tensor_free(x);
    tsr_tensor_free(dy);
}

/* ---- u8_to_f32 ---- */

/* Every byte value appears; the result must be exactly (float)byte * scale on
 * both backends (the op has one path: a plain loop, measured faster than
 * oneDNN's reorder). */
static void check_u8_to_f32(const int64_t *shape, const char *what)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_U8, 4, shape);
    int64_t n = tsr_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) tsr_u8(x)[i] = (uint8_t)((i * 7919) % 256);
    float *expected = malloc((size_t)n * sizeof *expected);
    const float scale = 1.0f / 255.0f;
    for (int64_t i = 0; i < n; i++) expected[i] = (float)tsr_u8(x)[i] * scale;
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        tsr_tensor *y = tsr_u8_to_f32(ctx, x, scale);
        cr_expect(y->dtype == TSR_DTYPE_F32 && tsr_tensor_same_shape(x, y), "%s: shape", what);
        tsr_test_allclose_f32(tsr_f32(y), expected, (long)n, 0, 0, what);
        cr_expect_eq(tsr_ctx_tape_length(ctx), 0, "%s: recorded a tape entry", what);
        tsr_ctx_free(ctx);
    }
    free(expected);
    tsr_tensor_free(x);
}

Test(u8_to_f32, scales_atari_observations_exactly)
{
    check_u8_to_f32(TSR_SHAPE(32, 84, 84, 4), "u8 -> f32 (32,84,84,4)");
    check_u8_to_f32(TSR_SHAPE(1, 84, 84, 4), "u8 -> f32 (1,84,84,4)");
}

Test(u8_to_f32, scales_minatar_observations_exactly)
{
    check_u8_to_f32(TSR_SHAPE(32, 10, 10, 7), "u8 -> f32 (32,10,10,7)");
}
