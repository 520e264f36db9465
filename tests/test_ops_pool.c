#include <math.h>
#include <stdio.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "support/parity.h"
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

/* ---- hand-computed values ---- */

/* x = 0..15 as a 4x4 image (one channel). */
static tsr_tensor *ramp_4x4(double offset, double sign)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(1, 4, 4, 1));
    for (int i = 0; i < 16; i++) tsr_f32(x)[i] = (float)(offset + sign * i);
    return x;
}

Test(max_pool2d, valid_2x2_stride_2_takes_each_quadrant_maximum)
{
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = ramp_4x4(0, 1);
        tsr_tensor *y = tsr_max_pool2d(ctx, x, 2, 2, TSR_PADDING_VALID);
        float expected[4] = {5, 7, 13, 15};
        cr_expect_eq(y->shape[1], 2);
        cr_expect_eq(y->shape[2], 2);
        tsr_test_allclose_f32(tsr_f32(y), expected, 4, 0, 0, backend_names[k]);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
}

Test(max_pool2d, same_3x3_stride_2_pads_after_and_routes_gradients_to_the_maxima)
{
    /* 4 -> 2 with total padding 1, all after: windows rows/cols {0,1,2} and
     * {2,3}. Maxima at (2,2)=10, (2,3)=11, (3,2)=14, (3,3)=15. */
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = ramp_4x4(0, 1);
        tsr_grad_reset(x, true);
        tsr_tensor *y = tsr_max_pool2d(ctx, x, 3, 2, TSR_PADDING_SAME);
        float expected[4] = {10, 11, 14, 15};
        tsr_test_allclose_f32(tsr_f32(y), expected, 4, 0, 0, backend_names[k]);
        float dy_data[4] = {1, 2, 3, 4};
        tsr_tensor dy = tsr_tensor_view(dy_data, TSR_DTYPE_F32, 4, TSR_SHAPE(1, 2, 2, 1));
        tsr_backward_from(ctx, y, &dy);
        float dx_expected[16] = {0};
        dx_expected[10] = 1;
        dx_expected[11] = 2;
        dx_expected[14] = 3;
        dx_expected[15] = 4;
        tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, x)), dx_expected, 16, 0, 0, backend_names[k]);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
}

Test(max_pool2d, same_padding_never_selects_a_padded_position)
{
    /* All inputs negative: a zero from padding would win every border window.
     * x = -1 - i, so each window's maximum is its top-left in-image element. */
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = ramp_4x4(-1, -1);
        tsr_grad_reset(x, true);
        /* 3x3 stride 1 SAME: one padding row/column on each side. */
        tsr_tensor *y = tsr_max_pool2d(ctx, x, 3, 1, TSR_PADDING_SAME);
        float expected[16];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) {
                int r0 = r > 0 ? r - 1 : 0, c0 = c > 0 ? c - 1 : 0;
                expected[r * 4 + c] = (float)(-1 - (r0 * 4 + c0));
            }
        tsr_test_allclose_f32(tsr_f32(y), expected, 16, 0, 0, backend_names[k]);
        tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(1, 4, 4, 1));
        tsr_tensor_fill(dy, 1);
        tsr_backward_from(ctx, y, dy);
        /* Every output's gradient lands inside the image: none is lost. */
        double total = 0;
        for (int i = 0; i < 16; i++) total += tsr_f32(tsr_grad_get(ctx, x))[i];
        cr_expect_eq(total, 16.0, "%s: gradient mass %g of 16 reached the input", backend_names[k], total);
        tsr_tensor_free(dy);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
}

/* Ties: oneDNN's backward finds each window's maximum again by value, the
 * reference routes by the argmax it saved; both must give the whole window
 * gradient to the first maximum in row-major order. A constant image has
 * every window tied: each output's dy lands on its window's top-left
 * in-image element. */
Test(max_pool2d, tied_maxima_route_to_the_first_in_row_major_order)
{
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(1, 4, 4, 1));
        tsr_tensor_fill(x, 2);
        tsr_grad_reset(x, true);
        /* 3x3 stride 2 SAME on 4 rows: windows {0,1,2} and {2,3}. */
        tsr_tensor *y = tsr_max_pool2d(ctx, x, 3, 2, TSR_PADDING_SAME);
        float dy_data[4] = {1, 2, 4, 8};
        tsr_tensor dy = tsr_tensor_view(dy_data, TSR_DTYPE_F32, 4, TSR_SHAPE(1, 2, 2, 1));
        tsr_backward_from(ctx, y, &dy);
        float dx_expected[16] = {0};
        dx_expected[0] = 1;  /* (0, 0) */
        dx_expected[2] = 2;  /* (0, 2) */
        dx_expected[8] = 4;  /* (2, 0) */
        dx_expected[10] = 8; /* (2, 2) */
        tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, x)), dx_expected, 16, 0, 0,
                              backend_names[k]);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
}

/* Many ties on an IMPALA-sized pool: inputs from {0, 1, 2}, dy small
 * integers (every sum exact), so the two backends agree bit for bit. */
Test(max_pool2d, onednn_and_reference_route_ties_alike_on_an_impala_pool)
{
    tsr_tensor *x0 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 21, 21, 8), 0, 3, 17);
    for (int64_t i = 0; i < tsr_tensor_numel(x0); i++) tsr_f32(x0)[i] = floorf(tsr_f32(x0)[i]);
    tsr_tensor *dx[2];
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = tsr_test_heap_copy(x0);
        tsr_grad_reset(x, true);
        tsr_tensor *y = tsr_max_pool2d(ctx, x, 3, 2, TSR_PADDING_SAME);
        tsr_tensor *dy = new_uniform(TSR_DTYPE_F32, 4, y->shape, 1, 9, 18);
        for (int64_t i = 0; i < tsr_tensor_numel(dy); i++) tsr_f32(dy)[i] = floorf(tsr_f32(dy)[i]);
        tsr_backward_from(ctx, y, dy);
        dx[k] = tsr_test_heap_copy(tsr_grad_get(ctx, x));
        tsr_tensor_free(dy);
        tsr_tensor_free(x);
        tsr_ctx_free(ctx);
    }
    tsr_test_allclose(dx[0], dx[1], 0, 0, "dx with tied maxima, oneDNN vs reference");
    for (int k = 0; k < 2; k++) tsr_tensor_free(dx[k]);
    tsr_tensor_free(x0);
}

/* ---- finite differences, parity, accumulation (support/pool_checks.c) ---- */

static tsr_test_pool max_pool(int kernel, int stride, tsr_padding padding)
{
    return (tsr_test_pool){tsr_max_pool2d, "max_pool2d", kernel, stride, padding};
}

Test(max_pool2d, backward_matches_finite_differences_with_same_padding)
{
    tsr_test_pool_gradcheck(max_pool(3, 2, TSR_PADDING_SAME), 2, 7, 6, 3);
    tsr_test_pool_gradcheck(max_pool(3, 1, TSR_PADDING_SAME), 2, 6, 5, 2);
    tsr_test_pool_gradcheck(max_pool(2, 2, TSR_PADDING_SAME), 1, 6, 6, 2);
}

Test(max_pool2d, backward_matches_finite_differences_with_valid_padding)
{
    tsr_test_pool_gradcheck(max_pool(3, 2, TSR_PADDING_VALID), 2, 7, 6, 3);
    tsr_test_pool_gradcheck(max_pool(2, 1, TSR_PADDING_VALID), 2, 6, 5, 2);
}

Test(max_pool2d, onednn_matches_reference_on_the_impala_pools)
{
    /* A maximum is exact: the outputs agree bit for bit. */
    for (int64_t n = 1; n <= 32; n += 31) {
        tsr_test_pool_parity(max_pool(3, 2, TSR_PADDING_SAME), n, 84, 16, 0);
        tsr_test_pool_parity(max_pool(3, 2, TSR_PADDING_SAME), n, 42, 32, 0);
        tsr_test_pool_parity(max_pool(3, 2, TSR_PADDING_SAME), n, 21, 32, 0);
    }
}

Test(max_pool2d, second_use_of_an_input_in_a_step_accumulates_its_gradient)
{
    tsr_test_pool_accumulates(max_pool(3, 2, TSR_PADDING_SAME), 2, 9, 4);
}

Test(max_pool2d, a_warm_step_allocates_nothing)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 16});
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(4, 42, 42, 32), -1, 1, 7);
    tsr_tensor *dy = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(4, 21, 21, 32), -1, 1, 8);
    tsr_grad_reset(x, true);
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_ctx_begin_step(ctx);
        tsr_backward_from(ctx, tsr_max_pool2d(ctx, x, 3, 2, TSR_PADDING_SAME), dy);
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_tensor_free(x);
    tsr_tensor_free(dy);
    tsr_ctx_free(ctx);
}
