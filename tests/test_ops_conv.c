#include <math.h>
#include <stdio.h>
#include <string.h>

#include <omp.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* ---- helpers ---- */

static tsr_tensor *new_uniform(tsr_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                               uint64_t seed)
{
    tsr_tensor *t = tsr_tensor_new(dtype, ndim, shape);
    tsr_test_fill_uniform(t, lo, hi, seed);
    return t;
}

static tsr_tensor *new_copy(const tsr_tensor *src)
{
    tsr_tensor *t = tsr_tensor_new(src->dtype, src->ndim, src->shape);
    tsr_tensor_copy(t, src);
    return t;
}

static double max_abs(const tsr_tensor *t)
{
    double m = 0;
    int64_t index[TSR_MAX_DIMS] = {0};
    for (int64_t i = 0; i < tsr_tensor_numel(t); i++) {
        m = fmax(m, fabs(tsr_tensor_get(t, index)));
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++index[d] < t->shape[d]) break;
            index[d] = 0;
        }
    }
    return m;
}

/* float32 parity: |a - ref| <= 1e-4 |ref| + 1e-5 max|ref|. Also logs the
 * worst mismatch relative to the reference's magnitude. */
static void expect_parity(const tsr_tensor *a, const tsr_tensor *ref, const char *what)
{
    double scale = max_abs(ref);
    double worst = 0;
    int64_t n = tsr_tensor_numel(ref);
    for (int64_t i = 0; i < n && a->dtype == TSR_DTYPE_F32 && ref->dtype == TSR_DTYPE_F32; i++)
        worst = fmax(worst, fabs(tsr_f32(a)[i] - tsr_f32(ref)[i]));
    cr_log_info("%s: worst |diff| %.3g = %.3g of max|ref| %.3g", what, worst,
                scale > 0 ? worst / scale : 0, scale);
    cr_expect(scale > 0, "%s: the reference is all zeros", what);
    tsr_test_allclose(a, ref, 1e-4, 1e-5 * scale, what);
}

/* ---- output size and padding placement ---- */

Test(conv2d, output_size_follows_tensorflow_same_and_valid)
{
    int64_t out, pad;
    struct {
        int64_t in, kernel, stride;
        tsr_padding padding;
        int64_t out, pad;
    } cases[] = {
        {84, 8, 4, TSR_PADDING_SAME, 21, 2},  /* Nature conv1: total 4 */
        {21, 4, 2, TSR_PADDING_SAME, 11, 1},  /* Nature conv2: total 3, extra after */
        {11, 3, 1, TSR_PADDING_SAME, 11, 1},  /* Nature conv3 */
        {84, 3, 2, TSR_PADDING_SAME, 42, 0},  /* IMPALA pool: total 1, all after */
        {21, 3, 2, TSR_PADDING_SAME, 11, 1},  /* IMPALA pool: total 2 */
        {10, 3, 1, TSR_PADDING_SAME, 10, 1},  /* MinAtar */
        {4, 1, 2, TSR_PADDING_SAME, 2, 0},    /* kernel < stride: total clamps at 0 */
        {84, 8, 4, TSR_PADDING_VALID, 20, 0},
        {7, 3, 2, TSR_PADDING_VALID, 3, 0},
        {8, 3, 2, TSR_PADDING_VALID, 3, 0},   /* the last row is dropped */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_conv_output_size(cases[i].in, cases[i].kernel, cases[i].stride, cases[i].padding, &out, &pad);
        cr_expect_eq(out, cases[i].out, "case %zu: out %lld, expected %lld", i, (long long)out,
                     (long long)cases[i].out);
        cr_expect_eq(pad, cases[i].pad, "case %zu: pad %lld, expected %lld", i, (long long)pad,
                     (long long)cases[i].pad);
    }
}

/* x = [1 2 3 4] as (1, 1, 4, 1), w = [1 10] as (1, 1, 1, 2), b = -25, SAME:
 * the one padding column goes after, so pre-activations are
 * [1+20, 2+30, 3+40, 4+0] - 25 = [-4, 7, 18, -21] and the ReLU gives
 * [0, 7, 18, 0]. With dy = 1 the mask is [0 1 1 0]: dx = [0, 1, 11, 10],
 * dw = [2+3, 3+4] = [5, 7], db = 2. */
static void check_hand_example(tsr_backend backend, tsr_dtype dtype)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backend});
    tsr_tensor *x = tsr_tensor_new(dtype, 4, TSR_SHAPE(1, 1, 4, 1));
    tsr_tensor *w = tsr_tensor_new(dtype, 4, TSR_SHAPE(1, 1, 1, 2));
    tsr_tensor *b = tsr_tensor_new(dtype, 1, TSR_SHAPE(1));
    tsr_tensor *dy = tsr_tensor_new(dtype, 4, TSR_SHAPE(1, 1, 4, 1));
    for (int64_t i = 0; i < 4; i++) tsr_tensor_set(x, (int64_t[]){0, 0, i, 0}, (double)(i + 1));
    tsr_tensor_set(w, (int64_t[]){0, 0, 0, 0}, 1);
    tsr_tensor_set(w, (int64_t[]){0, 0, 0, 1}, 10);
    tsr_tensor_fill(b, -25);
    tsr_tensor_fill(dy, 1);
    tsr_grad_reset(x, true);
    tsr_grad_reset(w, true);
    tsr_grad_reset(b, true);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = tsr_conv2d(ctx, x, w, b, 1, TSR_PADDING_SAME, true, NULL);
    tsr_backward_from(ctx, y, dy);
    double y_expected[4] = {0, 7, 18, 0}, dx_expected[4] = {0, 1, 11, 10}, dw_expected[2] = {5, 7};
    double db_expected[1] = {2};
    tsr_tensor ye = tsr_tensor_view(y_expected, TSR_DTYPE_F64, 4, TSR_SHAPE(1, 1, 4, 1));
    tsr_tensor dxe = tsr_tensor_view(dx_expected, TSR_DTYPE_F64, 4, TSR_SHAPE(1, 1, 4, 1));
    tsr_tensor dwe = tsr_tensor_view(dw_expected, TSR_DTYPE_F64, 4, TSR_SHAPE(1, 1, 1, 2));
    tsr_tensor dbe = tsr_tensor_view(db_expected, TSR_DTYPE_F64, 1, TSR_SHAPE(1));
    tsr_test_allclose(y, &ye, 0, 1e-6, "y");
    tsr_test_allclose(tsr_grad_get(ctx, x), &dxe, 0, 1e-6, "dx");
    tsr_test_allclose(tsr_grad_get(ctx, w), &dwe, 0, 1e-6, "dw");
    tsr_test_allclose(tsr_grad_get(ctx, b), &dbe, 0, 1e-6, "db");
    tsr_tensor_free(x);
    tsr_tensor_free(w);
    tsr_tensor_free(b);
    tsr_tensor_free(dy);
    tsr_ctx_free(ctx);
}

Test(conv2d, same_padding_puts_the_odd_column_after_on_onednn)
{
    check_hand_example(TSR_BACKEND_DNNL, TSR_DTYPE_F32);
}

Test(conv2d, same_padding_puts_the_odd_column_after_on_the_reference)
{
    check_hand_example(TSR_BACKEND_REFERENCE, TSR_DTYPE_F32);
    check_hand_example(TSR_BACKEND_REFERENCE, TSR_DTYPE_F64);
}

/* ---- finite differences ---- */

typedef struct conv_case {
    int stride;
    tsr_padding padding;
    bool relu, bias;
} conv_case;

static tsr_tensor *conv_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const conv_case *c = user;
    return tsr_conv2d(ctx, in[0], in[1], c->bias ? in[2] : NULL, c->stride, c->padding, c->relu, NULL);
}

/* Checks x (N, H, W, C) and w (O, C, kH, kW) with and without bias and ReLU. */
static void gradcheck_conv(int64_t n, int64_t h, int64_t w, int64_t c, int64_t o, int64_t kh,
                           int64_t kw, int stride, tsr_padding padding, bool x_requires_grad)
{
    for (int variant = 0; variant < 4; variant++) {
        conv_case cc = {.stride = stride, .padding = padding, .relu = variant & 1, .bias = variant & 2};
        tsr_tensor *in[3] = {
            new_uniform(TSR_DTYPE_F64, 4, TSR_SHAPE(n, h, w, c), -1, 1, 11 + variant),
            new_uniform(TSR_DTYPE_F64, 4, TSR_SHAPE(o, c, kh, kw), -0.5, 0.5, 21 + variant),
            new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(o), -0.2, 0.2, 31 + variant),
        };
        in[0]->requires_grad = x_requires_grad;
        in[1]->requires_grad = true;
        in[2]->requires_grad = true;
        char what[160];
        snprintf(what, sizeof what, "conv2d x (%lld,%lld,%lld,%lld) w (%lld,%lld,%lld,%lld) stride %d %s%s%s",
                 (long long)n, (long long)h, (long long)w, (long long)c, (long long)o, (long long)c,
                 (long long)kh, (long long)kw, stride, padding == TSR_PADDING_SAME ? "SAME" : "VALID",
                 cc.relu ? " relu" : "", cc.bias ? " bias" : "");
        tsr_test_gradcheck(conv_forward, in, cc.bias ? 3 : 2, &cc, NULL, what);
        for (int i = 0; i < 3; i++) tsr_tensor_free(in[i]);
    }
}

Test(conv2d, backward_matches_finite_differences_with_same_padding)
{
    gradcheck_conv(2, 5, 6, 3, 4, 3, 3, 1, TSR_PADDING_SAME, true);
}

Test(conv2d, backward_matches_finite_differences_with_same_padding_and_stride_2)
{
    gradcheck_conv(2, 7, 6, 3, 4, 3, 3, 2, TSR_PADDING_SAME, true);
}

Test(conv2d, backward_matches_finite_differences_with_asymmetric_same_padding)
{
    /* Even kernels: 4x4 stride 2 over 7 pads 1 before and 2 after; 2x2
     * stride 1 pads 0 before and 1 after. */
    gradcheck_conv(2, 7, 7, 2, 3, 4, 4, 2, TSR_PADDING_SAME, true);
    gradcheck_conv(1, 4, 5, 3, 2, 2, 2, 1, TSR_PADDING_SAME, true);
}

Test(conv2d, backward_matches_finite_differences_with_valid_padding)
{
    gradcheck_conv(2, 5, 6, 3, 4, 3, 3, 1, TSR_PADDING_VALID, true);
}

Test(conv2d, backward_matches_finite_differences_with_valid_padding_and_stride_2)
{
    /* 8 rows with 3x3 stride 2 leave the last row unused. */
    gradcheck_conv(2, 8, 7, 2, 3, 3, 3, 2, TSR_PADDING_VALID, true);
}

Test(conv2d, backward_matches_finite_differences_with_a_rectangular_kernel)
{
    gradcheck_conv(2, 6, 5, 2, 3, 2, 3, 1, TSR_PADDING_SAME, true);
    gradcheck_conv(1, 6, 5, 2, 3, 3, 2, 2, TSR_PADDING_VALID, true);
}

Test(conv2d, backward_matches_finite_differences_when_the_input_needs_no_gradient)
{
    gradcheck_conv(2, 5, 5, 3, 4, 3, 3, 1, TSR_PADDING_SAME, false);
}

/* ---- oneDNN vs reference on the real layers ---- */

typedef struct conv_layer {
    const char *name;
    int64_t h, w, c, o, kernel;
    int stride;
    tsr_padding padding;
} conv_layer;

/* One layer on both backends: forward (with or without the fused ReLU, with
 * or without bias), then backward of the same dy; compares y, dx, dw, db. */
static void conv_parity(const conv_layer *l, int64_t n, bool relu, bool bias)
{
    uint64_t seed = (uint64_t)(l->h * 131 + l->c * 17 + l->o) * 4 + (uint64_t)relu * 2 + (uint64_t)bias;
    double a = 1.0 / sqrt((double)(l->c * l->kernel * l->kernel));
    tsr_tensor *x0 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(n, l->h, l->w, l->c), -1, 1, seed);
    tsr_tensor *w0 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(l->o, l->c, l->kernel, l->kernel), -a, a,
                                 seed + 1);
    tsr_tensor *b0 = new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(l->o), -0.1, 0.1, seed + 2);
    tsr_tensor *x[2], *w[2], *b[2], *y[2];
    tsr_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        ctx[k] = tsr_ctx_new(&(tsr_ctx_options){.backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        x[k] = new_copy(x0);
        w[k] = new_copy(w0);
        b[k] = new_copy(b0);
        tsr_grad_reset(x[k], true);
        tsr_grad_reset(w[k], true);
        tsr_grad_reset(b[k], bias);
        tsr_ctx_begin_step(ctx[k]);
        y[k] = tsr_conv2d(ctx[k], x[k], w[k], bias ? b[k] : NULL, l->stride, l->padding, relu, NULL);
    }
    char what[160];
    snprintf(what, sizeof what, "%s batch %lld%s%s", l->name, (long long)n, relu ? " relu" : "",
             bias ? "" : " no bias");
    char label[200];
    snprintf(label, sizeof label, "%s: y", what);
    expect_parity(y[0], y[1], label);

    tsr_tensor *dy = new_uniform(TSR_DTYPE_F32, 4, y[0]->shape, -1, 1, seed + 3);
    if (relu) {
        /* Where the backends disagree on the ReLU's side of zero (a
         * pre-activation within rounding of 0) both masks are right: hold dy
         * at zero there so they compare the same gradient. */
        int64_t disagreements = 0;
        for (int64_t i = 0; i < tsr_tensor_numel(dy); i++) {
            if ((tsr_f32(y[0])[i] > 0) != (tsr_f32(y[1])[i] > 0)) {
                tsr_f32(dy)[i] = 0;
                disagreements++;
            }
        }
        cr_expect_leq(disagreements, 4, "%s: %lld ReLU masks differ", what, (long long)disagreements);
    }
    for (int k = 0; k < 2; k++) tsr_backward_from(ctx[k], y[k], dy);
    snprintf(label, sizeof label, "%s: dx", what);
    expect_parity(tsr_grad_get(ctx[0], x[0]), tsr_grad_get(ctx[1], x[1]), label);
    snprintf(label, sizeof label, "%s: dw", what);
    expect_parity(tsr_grad_get(ctx[0], w[0]), tsr_grad_get(ctx[1], w[1]), label);
    if (bias) {
        snprintf(label, sizeof label, "%s: db", what);
        expect_parity(tsr_grad_get(ctx[0], b[0]), tsr_grad_get(ctx[1], b[1]), label);
    }
    for (int k = 0; k < 2; k++) {
        tsr_tensor_free(x[k]);
        tsr_tensor_free(w[k]);
        tsr_tensor_free(b[k]);
        tsr_ctx_free(ctx[k]);
    }
    tsr_tensor_free(x0);
    tsr_tensor_free(w0);
    tsr_tensor_free(b0);
    tsr_tensor_free(dy);
}

static void conv_parity_all(const conv_layer *layers, int count)
{
    for (int i = 0; i < count; i++) {
        for (int relu = 0; relu < 2; relu++) {
            conv_parity(&layers[i], 1, relu, true);
            conv_parity(&layers[i], 32, relu, true);
            conv_parity(&layers[i], 1, relu, false);
        }
    }
}

Test(conv2d, onednn_matches_reference_on_the_nature_layers, .timeout = 240)
{
    const conv_layer layers[] = {
        {"nature conv1 84x84x4 -> 32@8x8/4", 84, 84, 4, 32, 8, 4, TSR_PADDING_SAME},
        {"nature conv2 21x21x32 -> 64@4x4/2", 21, 21, 32, 64, 4, 2, TSR_PADDING_SAME},
        {"nature conv3 11x11x64 -> 64@3x3/1", 11, 11, 64, 64, 3, 1, TSR_PADDING_SAME},
    };
    conv_parity_all(layers, 3);
}

Test(conv2d, onednn_matches_reference_on_the_impala_layers, .timeout = 240)
{
    const conv_layer layers[] = {
        {"impala stage1 84x84x4 -> 16@3x3", 84, 84, 4, 16, 3, 1, TSR_PADDING_SAME},
        {"impala block1 42x42x16 -> 16@3x3", 42, 42, 16, 16, 3, 1, TSR_PADDING_SAME},
        {"impala stage2 42x42x16 -> 32@3x3", 42, 42, 16, 32, 3, 1, TSR_PADDING_SAME},
        {"impala block2/stage3 21x21x32 -> 32@3x3", 21, 21, 32, 32, 3, 1, TSR_PADDING_SAME},
        {"impala block3 11x11x32 -> 32@3x3", 11, 11, 32, 32, 3, 1, TSR_PADDING_SAME},
    };
    conv_parity_all(layers, 5);
}

Test(conv2d, onednn_matches_reference_on_the_minatar_layers)
{
    const conv_layer layers[] = {
        {"minatar 10x10x4 -> 16@3x3", 10, 10, 4, 16, 3, 1, TSR_PADDING_SAME},
        {"minatar 10x10x6 -> 16@3x3", 10, 10, 6, 16, 3, 1, TSR_PADDING_SAME},
        {"minatar 10x10x7 -> 16@3x3", 10, 10, 7, 16, 3, 1, TSR_PADDING_SAME},
        {"minatar 10x10x10 -> 16@3x3", 10, 10, 10, 16, 3, 1, TSR_PADDING_SAME},
    };
    conv_parity_all(layers, 4);
}

/* VALID padding: the MinAtar DQN presets (configs/base/minatar_dqn.ini, as
 * the MinAtar paper: 10x10 -> 8x8) and the original DQN's Nature layers
 * (84 -> 20 -> 9 -> 7). */
Test(conv2d, onednn_matches_reference_with_valid_padding, .timeout = 240)
{
    const conv_layer layers[] = {
        {"minatar valid 10x10x4 -> 16@3x3", 10, 10, 4, 16, 3, 1, TSR_PADDING_VALID},
        {"minatar valid 10x10x10 -> 16@3x3", 10, 10, 10, 16, 3, 1, TSR_PADDING_VALID},
        {"nature valid conv1 84x84x4 -> 32@8x8/4", 84, 84, 4, 32, 8, 4, TSR_PADDING_VALID},
        {"nature valid conv2 20x20x32 -> 64@4x4/2", 20, 20, 32, 64, 4, 2, TSR_PADDING_VALID},
        {"nature valid conv3 9x9x64 -> 64@3x3/1", 9, 9, 64, 64, 3, 1, TSR_PADDING_VALID},
    };
    conv_parity_all(layers, 5);
}

/* The reference kernels split work so that every sum runs in one fixed
 * order: one thread and three give bit-identical results. */
Test(conv2d, reference_results_do_not_depend_on_the_thread_count)
{
    tsr_tensor *x0 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(32, 21, 21, 32), -1, 1, 40);
    tsr_tensor *w0 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(64, 32, 4, 4), -0.1, 0.1, 41);
    tsr_tensor *b0 = new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(64), -0.1, 0.1, 42);
    tsr_tensor *dy = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(32, 11, 11, 64), -1, 1, 43);
    tsr_tensor *x[2], *w[2], *b[2], *y[2];
    tsr_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 3 : 1);
        ctx[k] = tsr_ctx_new(&(tsr_ctx_options){.backend = TSR_BACKEND_REFERENCE});
        x[k] = new_copy(x0);
        w[k] = new_copy(w0);
        b[k] = new_copy(b0);
        tsr_grad_reset(x[k], true);
        tsr_grad_reset(w[k], true);
        tsr_grad_reset(b[k], true);
        tsr_ctx_begin_step(ctx[k]);
        y[k] = tsr_conv2d(ctx[k], x[k], w[k], b[k], 2, TSR_PADDING_SAME, true, NULL);
        tsr_backward_from(ctx[k], y[k], dy);
    }
    tsr_test_allclose(y[0], y[1], 0, 0, "y with 1 and 3 threads");
    tsr_test_allclose(tsr_grad_get(ctx[0], x[0]), tsr_grad_get(ctx[1], x[1]), 0, 0, "dx with 1 and 3 threads");
    tsr_test_allclose(tsr_grad_get(ctx[0], w[0]), tsr_grad_get(ctx[1], w[1]), 0, 0, "dw with 1 and 3 threads");
    tsr_test_allclose(tsr_grad_get(ctx[0], b[0]), tsr_grad_get(ctx[1], b[1]), 0, 0, "db with 1 and 3 threads");
    for (int k = 0; k < 2; k++) {
        tsr_tensor_free(x[k]);
        tsr_tensor_free(w[k]);
        tsr_tensor_free(b[k]);
        tsr_ctx_free(ctx[k]);
    }
    tsr_tensor *all[] = {x0, w0, b0, dy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tsr_tensor_free(all[i]);
}

/* ---- gradient accumulation ---- */

/* The online network on s and on s' in one step: the second call's weight
 * gradient adds to the first's. */
static void check_two_calls_accumulate(tsr_backend backend, tsr_dtype dtype)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backend});
    const int64_t *xs = TSR_SHAPE(4, 11, 11, 8);
    tsr_tensor *s = new_uniform(dtype, 4, xs, -1, 1, 1);
    tsr_tensor *s_next = new_uniform(dtype, 4, xs, -1, 1, 2);
    tsr_tensor *w = new_uniform(dtype, 4, TSR_SHAPE(16, 8, 3, 3), -0.2, 0.2, 3);
    tsr_tensor *b = new_uniform(dtype, 1, TSR_SHAPE(16), -0.1, 0.1, 4);
    const int64_t *ys = TSR_SHAPE(4, 6, 6, 16);
    tsr_tensor *dy1 = new_uniform(dtype, 4, ys, -1, 1, 5);
    tsr_tensor *dy2 = new_uniform(dtype, 4, ys, -1, 1, 6);
    tsr_grad_reset(w, true);
    tsr_grad_reset(b, true);
    tsr_tensor *single_dw[2], *single_db[2];
    tsr_tensor *inputs[2] = {s, s_next}, *dys[2] = {dy1, dy2};
    tsr_weight_cache cache = {0};
    for (int i = 0; i < 2; i++) {
        tsr_ctx_begin_step(ctx);
        tsr_tensor *y = tsr_conv2d(ctx, inputs[i], w, b, 2, TSR_PADDING_SAME, true, &cache);
        tsr_backward_from(ctx, y, dys[i]);
        single_dw[i] = new_copy(tsr_grad_get(ctx, w));
        single_db[i] = new_copy(tsr_grad_get(ctx, b));
    }
    tsr_ctx_begin_step(ctx);
    for (int i = 0; i < 2; i++) {
        tsr_tensor *y = tsr_conv2d(ctx, inputs[i], w, b, 2, TSR_PADDING_SAME, true, &cache);
        tsr_backward_from(ctx, y, dys[i]);
    }
    tsr_tensor *dw = tsr_grad_get(ctx, w), *db = tsr_grad_get(ctx, b);
    cr_assert(dw && db);
    for (int64_t j = 0; j < tsr_tensor_numel(dw); j++) {
        int64_t idx[4] = {j / 72, j / 9 % 8, j / 3 % 3, j % 3};
        double sum = tsr_tensor_get(single_dw[0], idx) + tsr_tensor_get(single_dw[1], idx);
        tsr_tensor_set(single_dw[0], idx, sum);
    }
    for (int64_t j = 0; j < 16; j++)
        tsr_tensor_set(single_db[0], &j, tsr_tensor_get(single_db[0], &j) + tsr_tensor_get(single_db[1], &j));
    cr_expect_gt(max_abs(single_dw[1]), 0.1, "the second call has a gradient of its own");
    tsr_test_allclose(dw, single_dw[0], 1e-5, 1e-5, "dw of two calls vs the sum of single calls");
    tsr_test_allclose(db, single_db[0], 1e-5, 1e-5, "db of two calls vs the sum of single calls");
    tsr_tensor *all[] = {s, s_next, w, b, dy1, dy2, single_dw[0], single_dw[1], single_db[0], single_db[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tsr_tensor_free(all[i]);
    tsr_weight_cache_fini(&cache);
    tsr_ctx_free(ctx);
}

Test(conv2d, second_call_in_a_step_accumulates_the_weight_gradient)
{
    check_two_calls_accumulate(TSR_BACKEND_DNNL, TSR_DTYPE_F32);
    check_two_calls_accumulate(TSR_BACKEND_REFERENCE, TSR_DTYPE_F32);
    check_two_calls_accumulate(TSR_BACKEND_REFERENCE, TSR_DTYPE_F64);
}

/* One input read by two convolutions: its gradient is the sum. */
static void check_input_gradient_accumulates(tsr_backend backend)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backend});
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 10, 10, 6), -1, 1, 7);
    tsr_tensor *w1 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(16, 6, 3, 3), -0.3, 0.3, 8);
    tsr_tensor *w2 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(8, 6, 4, 4), -0.3, 0.3, 9);
    tsr_tensor *dy1 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 10, 10, 16), -1, 1, 10);
    tsr_tensor *dy2 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 5, 5, 8), -1, 1, 11);
    tsr_tensor *single[2];
    for (int i = 0; i < 2; i++) {
        tsr_ctx_begin_step(ctx);
        tsr_grad_reset(x, true);
        tsr_tensor *y = i ? tsr_conv2d(ctx, x, w2, NULL, 2, TSR_PADDING_SAME, false, NULL)
                          : tsr_conv2d(ctx, x, w1, NULL, 1, TSR_PADDING_SAME, false, NULL);
        tsr_backward_from(ctx, y, i ? dy2 : dy1);
        single[i] = new_copy(tsr_grad_get(ctx, x));
    }
    tsr_ctx_begin_step(ctx);
    tsr_grad_reset(x, true);
    tsr_tensor *y1 = tsr_conv2d(ctx, x, w1, NULL, 1, TSR_PADDING_SAME, false, NULL);
    tsr_backward_from(ctx, y1, dy1);
    tsr_tensor *y2 = tsr_conv2d(ctx, x, w2, NULL, 2, TSR_PADDING_SAME, false, NULL);
    tsr_backward_from(ctx, y2, dy2);
    for (int64_t j = 0; j < tsr_tensor_numel(x); j++) tsr_f32(single[0])[j] += tsr_f32(single[1])[j];
    tsr_test_allclose(tsr_grad_get(ctx, x), single[0], 1e-5, 1e-5, "dx of two uses vs the sum");
    tsr_tensor *all[] = {x, w1, w2, dy1, dy2, single[0], single[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tsr_tensor_free(all[i]);
    tsr_ctx_free(ctx);
}

Test(conv2d, second_use_of_an_input_in_a_step_accumulates_its_gradient)
{
    check_input_gradient_accumulates(TSR_BACKEND_DNNL);
    check_input_gradient_accumulates(TSR_BACKEND_REFERENCE);
}

/* ---- first layer, no-grad passes ---- */

Test(conv2d, input_without_gradient_gets_none_and_weights_still_do)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 84, 84, 4), 0, 1, 12);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(32, 4, 8, 8), -0.1, 0.1, 13);
    tsr_tensor *dy = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 21, 21, 32), -1, 1, 14);
    tsr_grad_reset(w, true);
    tsr_tensor *dw[2];
    for (int i = 0; i < 2; i++) {
        tsr_ctx_begin_step(ctx);
        tsr_grad_reset(x, i == 1);
        tsr_tensor *y = tsr_conv2d(ctx, x, w, NULL, 4, TSR_PADDING_SAME, false, NULL);
        tsr_backward_from(ctx, y, dy);
        if (i == 0) cr_expect_null(tsr_grad_get(ctx, x), "the first layer's input got a gradient");
        else cr_expect_not_null(tsr_grad_get(ctx, x));
        dw[i] = new_copy(tsr_grad_get(ctx, w));
    }
    tsr_test_allclose(dw[0], dw[1], 0, 0, "dw without and with an input gradient");
    tsr_tensor *all[] = {x, w, dy, dw[0], dw[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tsr_tensor_free(all[i]);
    tsr_ctx_free(ctx);
}

Test(conv2d, records_nothing_without_grad_and_matches_the_training_forward)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(3, 21, 21, 32), -1, 1, 15);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(64, 32, 4, 4), -0.1, 0.1, 16);
    tsr_tensor *b = new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(64), -0.1, 0.1, 17);
    tsr_grad_reset(w, true);
    tsr_grad_reset(b, true);
    tsr_weight_cache cache = {0};
    tsr_ctx_begin_step(ctx);
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *inference = tsr_conv2d(ctx, x, w, b, 2, TSR_PADDING_SAME, true, &cache);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 0);
    cr_expect_not(inference->requires_grad);
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *training = tsr_conv2d(ctx, x, w, b, 2, TSR_PADDING_SAME, true, &cache);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 1);
    cr_expect(training->requires_grad);
    tsr_test_allclose(inference, training, 1e-5, 1e-6, "inference vs training forward");
    tsr_tensor_free(x);
    tsr_tensor_free(w);
    tsr_tensor_free(b);
    tsr_weight_cache_fini(&cache);
    tsr_ctx_free(ctx);
}

/* ---- the weight cache ---- */

Test(conv2d, weight_cache_follows_the_version_and_matches_no_cache)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 21, 21, 32), -1, 1, 18);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(64, 32, 4, 4), -0.1, 0.1, 19);
    tsr_weight_cache cache = {0};
    tsr_ctx_set_grad(ctx, false);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *cached = tsr_conv2d(ctx, x, w, NULL, 2, TSR_PADDING_SAME, false, &cache);
    tsr_tensor *uncached = tsr_conv2d(ctx, x, w, NULL, 2, TSR_PADDING_SAME, false, NULL);
    tsr_test_allclose(cached, uncached, 0, 0, "with vs without a cache");
    /* oneDNN picks a blocked layout for 64x32 weights on any x86 ISA with a
     * JIT convolution; the plain layout needs no cache at all. */
    cr_assert_not_null(cache.data, "no reordered copy was cached");
    cr_expect_eq(cache.source, w->data);
    cr_expect_eq(cache.version, w->version);

    /* New values without a version bump: the cached copy is (by contract)
     * still used. */
    tsr_tensor_fill(w, 0.0);
    tsr_tensor *stale = tsr_conv2d(ctx, x, w, NULL, 2, TSR_PADDING_SAME, false, &cache);
    tsr_test_allclose(stale, cached, 0, 0, "unchanged version reuses the cached weights");
    /* The bump refreshes it. */
    w->version++;
    tsr_tensor *fresh = tsr_conv2d(ctx, x, w, NULL, 2, TSR_PADDING_SAME, false, &cache);
    cr_expect_eq(max_abs(fresh), 0.0, "a bumped version still used the old weights");
    cr_expect_eq(cache.version, w->version);

    /* Another weight tensor through the same cache (a different source). */
    tsr_tensor *w2 = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(64, 32, 4, 4), -0.1, 0.1, 20);
    w2->version = w->version;
    tsr_tensor *other = tsr_conv2d(ctx, x, w2, NULL, 2, TSR_PADDING_SAME, false, &cache);
    tsr_tensor *other_uncached = tsr_conv2d(ctx, x, w2, NULL, 2, TSR_PADDING_SAME, false, NULL);
    tsr_test_allclose(other, other_uncached, 0, 0, "a new source pointer refreshes the cache");
    cr_expect_eq(cache.source, w2->data);

    tsr_weight_cache_fini(&cache);
    cr_expect_null(cache.data);
    cr_expect_eq(cache.bytes, 0);
    tsr_weight_cache_fini(&cache); /* twice is harmless */
    tsr_tensor_free(x);
    tsr_tensor_free(w);
    tsr_tensor_free(w2);
    tsr_ctx_free(ctx);
}

Test(conv2d, a_warm_step_allocates_nothing)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 20});
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(8, 21, 21, 32), -1, 1, 21);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(64, 32, 4, 4), -0.1, 0.1, 22);
    tsr_tensor *b = new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(64), -0.1, 0.1, 23);
    tsr_tensor *dy = new_uniform(TSR_DTYPE_F32, 4, TSR_SHAPE(8, 11, 11, 64), -1, 1, 24);
    tsr_grad_reset(x, true);
    tsr_grad_reset(w, true);
    tsr_grad_reset(b, true);
    tsr_weight_cache cache = {0};
    uint64_t allocations = 0;
    void *cached = NULL;
    for (int step = 0; step < 5; step++) {
        if (step == 2) {
            allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
            cached = cache.data;
        }
        tsr_ctx_begin_step(ctx);
        tsr_ctx_set_grad(ctx, false);
        tsr_conv2d(ctx, x, w, b, 2, TSR_PADDING_SAME, true, &cache);
        tsr_ctx_set_grad(ctx, true);
        tsr_tensor *y = tsr_conv2d(ctx, x, w, b, 2, TSR_PADDING_SAME, true, &cache);
        tsr_backward_from(ctx, y, dy);
        tsr_tensor *y2 = tsr_conv2d(ctx, x, w, b, 2, TSR_PADDING_SAME, true, &cache);
        tsr_backward_from(ctx, y2, dy); /* accumulating paths too */
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations,
                 "the arena allocated after warm-up");
    cr_expect_eq(cache.data, cached, "the weight cache was reallocated after warm-up");
    tsr_tensor *all[] = {x, w, b, dy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tsr_tensor_free(all[i]);
    tsr_weight_cache_fini(&cache);
    tsr_ctx_free(ctx);
}
