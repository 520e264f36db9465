#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>
#include <omp.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* ---- sum and mean over an axis ---- */

typedef struct reduce_case {
    int axis;
    bool keepdim, mean, twice;
} reduce_case;

static tsr_tensor *reduce_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    reduce_case *c = user;
    tsr_tensor *(*fn)(tsr_ctx *, tsr_tensor *, int, bool) = c->mean ? tsr_mean : tsr_sum;
    tsr_tensor *y = fn(ctx, in[0], c->axis, c->keepdim);
    if (c->twice) y = tsr_mul(ctx, y, fn(ctx, in[0], c->axis, c->keepdim));
    return y;
}

Test(sum, backward_matches_finite_differences_over_every_axis_with_and_without_keepdim)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 4, 5));
    tsr_test_fill_uniform(x, -1, 1, 1);
    x->requires_grad = true;
    for (int mean = 0; mean < 2; mean++)
        for (int axis = -3; axis < 3; axis++)
            for (int keepdim = 0; keepdim < 2; keepdim++) {
                reduce_case c = {axis, keepdim, mean, axis == 1};
                char what[80];
                snprintf(what, sizeof what, "%s axis %d keepdim %d%s", mean ? "mean" : "sum", axis,
                         keepdim, c.twice ? " used twice" : "");
                tsr_test_gradcheck(reduce_forward, &x, 1, &c, NULL, what);
            }
    tsr_tensor_free(x);
}

Test(sum, adds_along_an_axis_and_keeps_it_on_request)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    float data[6] = {1, 2, 3, 4, 5, 6};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_tensor *rows = tsr_sum(ctx, &x, 1, false);
    cr_expect(rows->ndim == 1 && rows->shape[0] == 2, "sum over axis 1 drops it");
    tsr_test_allclose_f32(tsr_f32(rows), (float[]){6, 15}, 2, 0, 0, "row sums");
    tsr_tensor *kept = tsr_sum(ctx, &x, -1, true);
    cr_expect(kept->ndim == 2 && kept->shape[0] == 2 && kept->shape[1] == 1, "keepdim (2, 1)");
    tsr_tensor *cols = tsr_mean(ctx, &x, 0, false);
    tsr_test_allclose_f32(tsr_f32(cols), (float[]){2.5f, 3.5f, 4.5f}, 3, 0, 0, "column means");
    tsr_ctx_free(ctx);
}

Test(mean, spreads_the_gradient_evenly)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    double data[6] = {1, 2, 3, 4, 5, 6};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F64, 2, TSR_SHAPE(2, 3));
    x.requires_grad = true;
    tsr_tensor *y = tsr_mean(ctx, &x, 1, false);
    double dy_data[2] = {3, -6};
    tsr_tensor dy = tsr_tensor_view(dy_data, TSR_DTYPE_F64, 1, TSR_SHAPE(2));
    tsr_backward_from(ctx, y, &dy);
    double expected[6] = {1, 1, 1, -2, -2, -2};
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, &x)), expected, 6, 0, 0, "dx = dy / 3");
    tsr_ctx_free(ctx);
}

/* Sum over axis `axis` in double, as the ground truth for float32 sums. */
static void sum_in_double(const tsr_tensor *x, int axis, double *out)
{
    int64_t outer = 1, inner = 1, len = x->shape[axis];
    for (int d = 0; d < axis; d++) outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) inner *= x->shape[d];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0;
            for (int64_t k = 0; k < len; k++) s += tsr_f32(x)[(o * len + k) * inner + i];
            out[o * inner + i] = s;
        }
}

Test(sum, is_accurate_and_identical_for_one_and_two_threads_on_real_shapes)
{
    /* Batch sums of the flattened Nature features (32, 7744), per-channel sums
     * over an IMPALA activation (32*42*42, 16), and sums over actions (32, 6). */
    struct { int ndim; int64_t shape[4]; int axis; } cases[] = {
        {2, {32, 7744}, 0}, {2, {32 * 42 * 42, 16}, 0}, {2, {32, 6}, 1}, {3, {32, 121, 64}, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, cases[c].ndim, cases[c].shape);
        tsr_test_fill_uniform(x, -1, 1, 40 + c);
        int64_t n_out = tsr_tensor_numel(x) / x->shape[cases[c].axis];
        double *truth = malloc((size_t)n_out * sizeof *truth);
        sum_in_double(x, cases[c].axis, truth);
        float *first = malloc((size_t)n_out * sizeof *first);
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 64 << 20});
            tsr_tensor *y = tsr_sum(ctx, x, cases[c].axis, false);
            if (threads == 1) {
                for (int64_t i = 0; i < n_out; i++) first[i] = tsr_f32(y)[i];
                double worst = 0;
                for (int64_t i = 0; i < n_out; i++)
                    worst = fmax(worst, fabs(first[i] - truth[i]) / (1e-3 + fabs(truth[i])));
                cr_expect(worst < 1e-5, "case %zu: float sum vs double, worst relative %g", c, worst);
            } else {
                tsr_test_allclose_f32(tsr_f32(y), first, (long)n_out, 0, 0,
                                      "sum with 2 threads vs 1 thread, bit for bit");
            }
            tsr_ctx_free(ctx);
        }
        free(first);
        free(truth);
        tsr_tensor_free(x);
    }
}

/* ---- sum_all and mean_all ---- */

static tsr_tensor *sum_all_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return *(bool *)user ? tsr_mean_all(ctx, in[0]) : tsr_sum_all(ctx, in[0]);
}

static tsr_tensor *sum_all_twice_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_mul(ctx, tsr_mean_all(ctx, in[0]), tsr_sum_all(ctx, in[0]));
}

Test(sum_all, backward_matches_finite_differences)
{
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4));
    tsr_test_fill_uniform(x, -1, 1, 2);
    x->requires_grad = true;
    bool mean = false;
    tsr_test_gradcheck(sum_all_forward, &x, 1, &mean, NULL, "sum_all");
    mean = true;
    tsr_test_gradcheck(sum_all_forward, &x, 1, &mean, NULL, "mean_all");
    tsr_test_gradcheck(sum_all_twice_forward, &x, 1, NULL, NULL, "mean_all * sum_all");
    tsr_tensor_free(x);
}

Test(mean_all, returns_a_one_element_tensor)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    float data[4] = {1, 2, 3, 10};
    tsr_tensor x = tsr_tensor_view(data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 2));
    tsr_tensor *m = tsr_mean_all(ctx, &x);
    tsr_tensor *s = tsr_sum_all(ctx, &x);
    cr_expect(m->ndim == 1 && m->shape[0] == 1, "shape (1)");
    cr_expect_float_eq(tsr_f32(m)[0], 4.0f, 0);
    cr_expect_float_eq(tsr_f32(s)[0], 16.0f, 0);
    tsr_ctx_free(ctx);
}

Test(sum_all, is_identical_for_one_and_two_threads_on_an_atari_batch)
{
    /* 32 * 84 * 84 * 4 = 903168 floats: many chunks, each summed in double. */
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(32, 84, 84, 4));
    tsr_test_fill_uniform(x, -1, 1, 3);
    double truth = 0;
    int64_t n = tsr_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) truth += tsr_f32(x)[i];
    float result[2][2];
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        tsr_ctx *ctx = tsr_ctx_new(NULL);
        result[threads - 1][0] = tsr_f32(tsr_sum_all(ctx, x))[0];
        result[threads - 1][1] = tsr_f32(tsr_mean_all(ctx, x))[0];
        tsr_ctx_free(ctx);
    }
    cr_expect(result[0][0] == result[1][0] && result[0][1] == result[1][1],
              "sum_all %.9g vs %.9g, mean_all %.9g vs %.9g", result[0][0], result[1][0],
              result[0][1], result[1][1]);
    cr_expect(fabs(result[0][0] - truth) <= 1e-6 * fabs(truth) + 1e-3, "sum_all %.9g vs %.9g",
              result[0][0], truth);
    cr_expect(fabs(result[0][1] - truth / (double)n) <= 1e-6, "mean_all %.9g vs %.9g",
              result[0][1], truth / (double)n);
    tsr_tensor_free(x);
}

/* ---- gather_actions ---- */

typedef struct gather_case {
    int32_t index[4];
    bool twice;
} gather_case;

static tsr_tensor *gather_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    gather_case *c = user;
    tsr_tensor index = tsr_tensor_view(c->index, TSR_DTYPE_I32, 1, TSR_SHAPE(in[0]->shape[0]));
    tsr_tensor *y = tsr_gather_actions(ctx, in[0], &index);
    if (c->twice) y = tsr_mul(ctx, y, tsr_gather_actions(ctx, in[0], &index));
    return y;
}

Test(gather_actions, backward_matches_finite_differences)
{
    /* Q-values (N, A) and distributions (N, A, K); repeated actions. */
    tsr_tensor *q = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(4, 3));
    tsr_tensor *dist = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(4, 3, 5));
    tsr_test_fill_uniform(q, -1, 1, 4);
    tsr_test_fill_uniform(dist, -1, 1, 5);
    q->requires_grad = dist->requires_grad = true;
    gather_case once = {{2, 0, 2, 1}, false}, twice = {{1, 1, 0, 2}, true};
    tsr_test_gradcheck(gather_forward, &q, 1, &once, NULL, "gather (N, A)");
    tsr_test_gradcheck(gather_forward, &q, 1, &twice, NULL, "gather (N, A) used twice");
    tsr_test_gradcheck(gather_forward, &dist, 1, &once, NULL, "gather (N, A, K)");
    tsr_test_gradcheck(gather_forward, &dist, 1, &twice, NULL, "gather (N, A, K) used twice");
    tsr_tensor_free(q);
    tsr_tensor_free(dist);
}

Test(gather_actions, picks_the_q_value_of_each_action_taken_and_scatters_back)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    float q_data[6] = {1, 2, 3, 4, 5, 6};
    int32_t actions[2] = {2, 0};
    tsr_tensor q = tsr_tensor_view(q_data, TSR_DTYPE_F32, 2, TSR_SHAPE(2, 3));
    tsr_tensor index = tsr_tensor_view(actions, TSR_DTYPE_I32, 1, TSR_SHAPE(2));
    q.requires_grad = true;
    tsr_tensor *y = tsr_gather_actions(ctx, &q, &index);
    cr_expect(y->ndim == 1 && y->shape[0] == 2, "(N)");
    tsr_test_allclose_f32(tsr_f32(y), (float[]){3, 4}, 2, 0, 0, "q[n, a_n]");
    actions[0] = 1; /* the tape keeps its own copy of the indices */
    tsr_tensor dy = tsr_tensor_view((float[]){10, 20}, TSR_DTYPE_F32, 1, TSR_SHAPE(2));
    tsr_backward_from(ctx, y, &dy);
    float expected[6] = {0, 0, 10, 20, 0, 0};
    tsr_test_allclose_f32(tsr_f32(tsr_grad_get(ctx, &q)), expected, 6, 0, 0, "scattered dq");
    tsr_ctx_free(ctx);
}

Test(gather_actions, matches_a_plain_loop_at_batch_32_on_both_backends)
{
    /* C51 logits of 6 actions and 51 atoms at batch 32. */
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 6, 51));
    tsr_tensor *index = tsr_tensor_new(TSR_DTYPE_I32, 1, TSR_SHAPE(32));
    tsr_test_fill_uniform(x, -1, 1, 6);
    for (int n = 0; n < 32; n++) tsr_i32(index)[n] = (n * 5) % 6;
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
        tsr_tensor *y = tsr_gather_actions(ctx, x, index);
        cr_assert(y->ndim == 2 && y->shape[0] == 32 && y->shape[1] == 51, "(32, 51)");
        long bad = 0;
        for (int n = 0; n < 32; n++)
            for (int j = 0; j < 51; j++)
                bad += tsr_f32(y)[n * 51 + j] != tsr_f32(x)[(n * 6 + tsr_i32(index)[n]) * 51 + j];
        cr_expect_eq(bad, 0, "%ld gathered values differ", bad);
        tsr_ctx_free(ctx);
    }
    tsr_tensor_free(x);
    tsr_tensor_free(index);
}

Test(gather_actions, aborts_on_an_action_outside_the_range, .signal = SIGABRT)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *q = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 6));
    int32_t actions[2] = {0, 6};
    tsr_tensor index = tsr_tensor_view(actions, TSR_DTYPE_I32, 1, TSR_SHAPE(2));
    tsr_gather_actions(ctx, q, &index);
}
