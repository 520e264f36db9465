#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* Multiplies by a fixed non-uniform weight so that a wrongly placed gradient
 * element changes the objective (the checks project the output randomly too). */
static tsr_tensor *weighted(tsr_ctx *ctx, tsr_tensor *x)
{
    return tsr_mul(ctx, x, x);
}

/* ---- reshape and flatten ---- */

static tsr_tensor *reshape_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return weighted(ctx, tsr_reshape(ctx, in[0], 2, TSR_SHAPE(-1, 4)));
}

static tsr_tensor *flatten_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return weighted(ctx, tsr_flatten(ctx, in[0]));
}

/* x reshaped twice, each view used: the second gradient accumulates. */
static tsr_tensor *reshape_twice_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    tsr_tensor *a = tsr_reshape(ctx, in[0], 1, TSR_SHAPE(24));
    tsr_tensor *b = tsr_reshape(ctx, in[0], 1, TSR_SHAPE(24));
    return tsr_mul(ctx, a, tsr_scale(ctx, b, 2.0, 1.0));
}

Test(reshape, backward_matches_finite_differences)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4));
    tsr_test_fill_uniform(x, -1, 1, 1);
    x->requires_grad = true;
    tsr_test_gradcheck(reshape_forward, &x, 1, NULL, NULL, "reshape to (-1, 4)");
    tsr_test_gradcheck(flatten_forward, &x, 1, NULL, NULL, "flatten");
    tsr_test_gradcheck(reshape_twice_forward, &x, 1, NULL, NULL, "two reshapes, accumulated");
    tsr_tensor_free(x);
}

Test(reshape, shares_the_data_of_its_input)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(2, 3, 4));
    tsr_tensor *y = tsr_reshape(ctx, x, 3, TSR_SHAPE(4, -1, 2));
    cr_expect_eq(y->data, x->data);
    cr_expect(y->shape[0] == 4 && y->shape[1] == 3 && y->shape[2] == 2, "inferred shape");
    /* uint8 observations reshape too (no gradient involved). */
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_U8, 2, TSR_SHAPE(4, 6));
    tsr_tensor *v = tsr_reshape(ctx, obs, 3, TSR_SHAPE(4, 3, 2));
    cr_expect(v->dtype == TSR_DTYPE_U8 && v->data == obs->data, "uint8 view");
    tsr_tensor_free(obs);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
}

Test(reshape, aborts_when_the_element_count_changes, .signal = SIGABRT)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_reshape(ctx, x, 2, TSR_SHAPE(4, 2));
}

Test(flatten, turns_the_nature_encoder_output_into_7744_features_on_both_backends)
{
    /* conv3 of the Nature CNN at batch 32: (32, 11, 11, 64) -> (32, 7744). The
     * view shares the data and the gradient passes through unchanged. */
    const int64_t *shape = TSR_SHAPE(32, 11, 11, 64);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, shape);
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 7744));
    tsr_test_fill_uniform(x, -1, 1, 2);
    tsr_test_fill_uniform(dy, -1, 1, 3);
    tsr_tensor dy_as_x = tsr_tensor_reshape(dy, 4, shape);
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        tsr_ctx_begin_step(ctx);
        tsr_grad_reset(x, true);
        tsr_tensor *y = tsr_flatten(ctx, x);
        cr_expect(y->ndim == 2 && y->shape[0] == 32 && y->shape[1] == 7744, "flattened shape");
        cr_expect_eq(y->data, x->data, "flatten shares the data");
        tsr_backward_from(ctx, y, dy);
        tsr_tensor *dx = tsr_grad_get(ctx, x);
        cr_assert_not_null(dx);
        tsr_test_allclose(dx, &dy_as_x, 0, 0, "flatten backward passes dy through");
        tsr_ctx_free(ctx);
    }
    tsr_tensor_free(x);
    tsr_tensor_free(dy);
}

/* ---- permute ---- */

typedef struct permute_case {
    int order[TSR_MAX_DIMS];
    bool twice; /* use the permuted tensor twice: the gradient accumulates */
} permute_case;

static tsr_tensor *permute_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    permute_case *c = user;
    tsr_tensor *y = tsr_permute(ctx, in[0], c->order);
    if (c->twice) return tsr_mul(ctx, y, tsr_permute(ctx, in[0], c->order));
    return weighted(ctx, y);
}

Test(permute, backward_matches_finite_differences_for_several_orders)
{
    tsr_tensor *x3 = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4));
    tsr_tensor *x4 = tsr_tensor_new(TSR_DTYPE_F64, 4, TSR_SHAPE(2, 3, 2, 4));
    tsr_test_fill_uniform(x3, -1, 1, 4);
    tsr_test_fill_uniform(x4, -1, 1, 5);
    x3->requires_grad = x4->requires_grad = true;
    permute_case c3[] = {{{0, 2, 1}, false}, {{2, 0, 1}, false}, {{1, 2, 0}, true}, {{0, 1, 2}, false}};
    for (size_t i = 0; i < sizeof c3 / sizeof c3[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "permute (%d, %d, %d)%s", c3[i].order[0], c3[i].order[1],
                 c3[i].order[2], c3[i].twice ? " twice" : "");
        tsr_test_gradcheck(permute_forward, &x3, 1, &c3[i], NULL, what);
    }
    permute_case c4[] = {{{0, 3, 1, 2}, false}, {{3, 2, 1, 0}, true}};
    for (size_t i = 0; i < sizeof c4 / sizeof c4[0]; i++)
        tsr_test_gradcheck(permute_forward, &x4, 1, &c4[i], NULL, "permute of a 4-d tensor");
    tsr_tensor_free(x3);
    tsr_tensor_free(x4);
}

Test(permute, transposes_tokens_and_features)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    /* (1, 2, 3) -> (1, 3, 2). */
    float data[6] = {1, 2, 3, 4, 5, 6};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F32, 3, TSR_SHAPE(1, 2, 3));
    tsr_tensor *y = tsr_permute(ctx, &x, (int[]){0, 2, 1});
    float expected[6] = {1, 4, 2, 5, 3, 6};
    cr_expect(y->shape[1] == 3 && y->shape[2] == 2, "permuted shape");
    tsr_test_allclose_f32(tsr_f32(y), expected, 6, 0, 0, "transpose");
    tsr_ctx_free(ctx);
}

static void permute_parity(int ndim, const int64_t *shape, const int *order, const char *what)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, ndim, shape);
    tsr_test_fill_uniform(x, -1, 1, 6);
    tsr_tensor view = tsr_tensor_permute(x, order);
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, ndim, view.shape);
    tsr_test_fill_uniform(dy, -1, 1, 7);
    tsr_tensor *y[2], *dx[2];
    tsr_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        ctx[k] = tsr_ctx_new(&(tsr_ctx_options){.backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        tsr_ctx_begin_step(ctx[k]);
        tsr_grad_reset(x, true);
        y[k] = tsr_permute(ctx[k], x, order);
        tsr_backward_from(ctx[k], y[k], dy);
        dx[k] = tsr_grad_get(ctx[k], x);
        cr_assert_not_null(dx[k]);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s forward: oneDNN vs reference", what);
    tsr_test_allclose(y[0], y[1], 0, 0, msg);
    tsr_test_allclose(y[1], &view, 0, 0, "reference permute vs the strided view");
    snprintf(msg, sizeof msg, "%s backward: oneDNN vs reference", what);
    tsr_test_allclose(dx[0], dx[1], 0, 0, msg);
    for (int k = 0; k < 2; k++) tsr_ctx_free(ctx[k]);
    tsr_tensor_free(x);
    tsr_tensor_free(dy);
}

Test(permute, onednn_matches_reference_on_encoder_outputs)
{
    /* Per-feature-map tokens of the Nature and IMPALA encoders at batch 32:
     * (N, H*W, C) -> (N, C, H*W); and NHWC -> NCHW of conv3's output. */
    permute_parity(3, TSR_SHAPE(32, 121, 64), (int[]){0, 2, 1}, "tokens (32,121,64)");
    permute_parity(3, TSR_SHAPE(32, 121, 32), (int[]){0, 2, 1}, "tokens (32,121,32)");
    permute_parity(4, TSR_SHAPE(32, 11, 11, 64), (int[]){0, 3, 1, 2}, "NHWC->NCHW (32,11,11,64)");
    permute_parity(4, TSR_SHAPE(1, 10, 10, 16), (int[]){0, 3, 1, 2}, "NHWC->NCHW (1,10,10,16)");
}

/* ---- concat and split ---- */

typedef struct concat_case {
    int axis;
} concat_case;

static tsr_tensor *concat_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    concat_case *c = user;
    return weighted(ctx, tsr_concat(ctx, in, 3, c->axis));
}

/* The middle input appears twice: its gradient accumulates. */
static tsr_tensor *concat_repeat_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    concat_case *c = user;
    tsr_tensor *list[4] = {in[0], in[1], in[2], in[1]};
    return weighted(ctx, tsr_concat(ctx, list, 4, c->axis));
}

Test(concat, backward_matches_finite_differences_along_every_axis)
{
    /* Three inputs of (2, 3, 4) with a different size along the axis. */
    for (int axis = -1; axis < 3; axis++) {
        int a = axis < 0 ? axis + 3 : axis;
        tsr_tensor *in[3];
        for (int i = 0; i < 3; i++) {
            int64_t shape[3] = {2, 3, 4};
            shape[a] = i + 1;
            in[i] = tsr_tensor_new(TSR_DTYPE_F64, 3, shape);
            tsr_test_fill_uniform(in[i], -1, 1, 10 + (uint64_t)i);
            in[i]->requires_grad = i != 2; /* the last one is a constant */
        }
        concat_case c = {axis};
        char what[64];
        snprintf(what, sizeof what, "concat along axis %d", axis);
        tsr_test_gradcheck(concat_forward, in, 3, &c, NULL, what);
        snprintf(what, sizeof what, "concat with a repeated input along axis %d", axis);
        tsr_test_gradcheck(concat_repeat_forward, in, 3, &c, NULL, what);
        for (int i = 0; i < 3; i++) tsr_tensor_free(in[i]);
    }
}

Test(concat, joins_along_the_last_axis)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    tsr_tensor ta = tsr_tensor_view(a, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 2));
    tsr_tensor tb = tsr_tensor_view(b, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 1));
    tsr_tensor *y = tsr_concat(ctx, (tsr_tensor *[]){&ta, &tb}, 2, 1);
    float expected[6] = {1, 2, 5, 3, 4, 6};
    cr_expect(y->shape[0] == 2 && y->shape[1] == 3, "concatenated shape");
    tsr_test_allclose_f32(tsr_f32(y), expected, 6, 0, 0, "concat");
    tsr_ctx_free(ctx);
}

Test(concat, aborts_when_other_dimensions_differ, .signal = SIGABRT)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *a = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_tensor *b = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(3, 3));
    tsr_concat(ctx, (tsr_tensor *[]){a, b}, 2, 1);
}

typedef struct split_case {
    int axis;
    int64_t sizes[3];
} split_case;

/* Splits into three, drops the middle part and weights the others
 * differently: dx is zero on the dropped part (TSR_GRAD_WRITE_SOME). */
static tsr_tensor *split_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    split_case *c = user;
    tsr_tensor *out[3];
    tsr_split(ctx, in[0], c->axis, c->sizes, 3, out);
    tsr_tensor *first = weighted(ctx, out[0]);
    tsr_tensor *last = tsr_scale(ctx, out[2], -2.0, 0.0);
    return tsr_concat(ctx, (tsr_tensor *[]){last, first}, 2, c->axis);
}

/* Every part used, and x used once more directly: dx accumulates across the
 * split entries and the other use. */
static tsr_tensor *split_all_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    split_case *c = user;
    tsr_tensor *out[3];
    tsr_split(ctx, in[0], c->axis, c->sizes, 3, out);
    tsr_tensor *joined = tsr_concat(ctx, (tsr_tensor *[]){out[2], weighted(ctx, out[1]), out[0]}, 3,
                                    c->axis);
    return tsr_add(ctx, tsr_sum(ctx, joined, c->axis, true), tsr_sum(ctx, in[0], c->axis, true));
}

Test(split, backward_matches_finite_differences_along_every_axis)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(6, 5, 7));
    tsr_test_fill_uniform(x, -1, 1, 20);
    x->requires_grad = true;
    split_case cases[] = {{0, {1, 2, 3}}, {1, {2, 1, 2}}, {2, {3, 0, 4}}, {-1, {1, 5, 1}}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "split along axis %d", cases[i].axis);
        tsr_test_gradcheck(split_forward, &x, 1, &cases[i], NULL, what);
        snprintf(what, sizeof what, "split with every part used, axis %d", cases[i].axis);
        tsr_test_gradcheck(split_all_forward, &x, 1, &cases[i], NULL, what);
    }
    tsr_tensor_free(x);
}

Test(split, inverts_concat)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(4, 6, 5));
    tsr_test_fill_uniform(x, -1, 1, 21);
    for (int axis = 0; axis < 3; axis++) {
        int64_t sizes[2] = {1, x->shape[axis] - 1};
        tsr_tensor *out[2];
        tsr_split(ctx, x, axis, sizes, 2, out);
        cr_expect_eq(out[0]->shape[axis], 1);
        tsr_tensor *back = tsr_concat(ctx, out, 2, axis);
        tsr_test_allclose(back, x, 0, 0, "concat(split(x))");
    }
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
}

Test(split, aborts_when_the_sizes_do_not_add_up, .signal = SIGABRT)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 6));
    tsr_tensor *out[2];
    tsr_split(ctx, x, 1, TSR_SHAPE(2, 3), 2, out);
}

/* ---- no allocation after warm-up ---- */

Test(shape_ops, a_step_through_every_elementwise_shape_and_reduce_op_stops_allocating_after_warm_up)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 16}); /* forces growth */
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(32, 10, 10, 4));
    tsr_tensor *w = tsr_tensor_new(TSR_DTYPE_F32, 1, TSR_SHAPE(4));
    tsr_tensor *index = tsr_tensor_new(TSR_DTYPE_I32, 1, TSR_SHAPE(32));
    for (int n = 0; n < 32; n++) tsr_i32(index)[n] = n % 4;
    uint64_t before = tsr_arena_system_allocations(tsr_ctx_arena(ctx)), after_warm_up = 0;
    for (int step = 0; step < 6; step++) {
        tsr_ctx_begin_step(ctx);
        if (step == 3) after_warm_up = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_grad_reset(w, true);
        tsr_tensor *x = tsr_u8_to_f32(ctx, obs, 1.0f / 255.0f);
        tsr_tensor *h = tsr_add(ctx, tsr_mul(ctx, x, w), x);          /* (32, 10, 10, 4) */
        h = tsr_permute(ctx, tsr_reshape(ctx, h, 3, TSR_SHAPE(32, 100, 4)), (int[]){0, 2, 1});
        tsr_tensor *parts[2];
        tsr_split(ctx, h, 2, TSR_SHAPE(60, 40), 2, parts);
        h = tsr_concat(ctx, (tsr_tensor *[]){parts[1], parts[0]}, 2, 2); /* (32, 4, 100) */
        tsr_tensor *q = tsr_flatten(ctx, tsr_mean(ctx, tsr_scale(ctx, h, 2.0, -1.0), 2, true));
        tsr_tensor *td = tsr_sub(ctx, tsr_gather_actions(ctx, q, index), tsr_sum(ctx, q, 1, false));
        tsr_tensor *loss = tsr_mean_all(ctx, tsr_mul(ctx, td, td));
        (void)tsr_sum_all(ctx, loss);
        tsr_backward(ctx, loss);
        cr_assert_not_null(tsr_grad_get(ctx, w));
    }
    cr_expect_gt(after_warm_up, before, "the small arena never had to grow: the test is void");
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), after_warm_up,
                 "the arena allocated after warm-up");
    tsr_tensor_free(obs);
    tsr_tensor_free(w);
    tsr_tensor_free(index);
    tsr_ctx_free(ctx);
}
