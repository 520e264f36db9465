#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "support/parity.h"
#include "tessera/tessera.h"

/* ---- helpers ---- */

typedef tsr_test_forward_fn op_fn;

static tsr_tensor *new_uniform(tsr_dtype dtype, int ndim, const int64_t *shape, double bound,
                               uint64_t seed)
{
    tsr_tensor *t = tsr_tensor_new(dtype, ndim, shape);
    tsr_test_fill_uniform(t, -bound, bound, seed);
    t->requires_grad = true;
    return t;
}

/* ---- linear ---- */

typedef struct linear_case {
    bool bias, relu;
} linear_case;

static tsr_tensor *linear_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const linear_case *c = user;
    return tsr_linear(ctx, in[0], in[1], c->bias ? in[2] : NULL, c->relu, NULL);
}

static void gradcheck_linear(bool bias, bool relu, bool x_requires_grad)
{
    linear_case c = {bias, relu};
    tsr_tensor *in[3] = {
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 5), 1, 11),
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(4, 5), 1, 12),
        new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(4), 1, 13),
    };
    in[0]->requires_grad = x_requires_grad;
    char what[96];
    snprintf(what, sizeof what, "linear (bias %d, relu %d, dx %d)", bias, relu, x_requires_grad);
    tsr_test_gradcheck(linear_forward, in, bias ? 3 : 2, &c, NULL, what);
    for (int i = 0; i < 3; i++) tsr_tensor_free(in[i]);
}

Test(linear, backward_matches_finite_differences_with_bias_and_relu)
{
    gradcheck_linear(true, true, true);
}

Test(linear, backward_matches_finite_differences_with_bias_without_relu)
{
    gradcheck_linear(true, false, true);
}

Test(linear, backward_matches_finite_differences_without_bias_with_relu)
{
    gradcheck_linear(false, true, true);
}

Test(linear, backward_matches_finite_differences_without_bias_or_relu)
{
    gradcheck_linear(false, false, true);
}

Test(linear, backward_matches_finite_differences_when_the_input_needs_no_gradient)
{
    gradcheck_linear(true, true, false);
}

Test(linear, computes_hand_worked_values_on_both_backends)
{
    /* y = x w^T + b: x (1, 2) = [1, 2]; w rows [1, 0], [0, -1], [1, 1];
     * b = [0.5, 0.5, -4] -> [1.5, -1.5, -1]; relu -> [1.5, 0, 0]. */
    float xd[2] = {1, 2}, wd[6] = {1, 0, 0, -1, 1, 1}, bd[3] = {0.5f, 0.5f, -4};
    tsr_tensor x = tsr_tensor_view(xd, TSR_DTYPE_F32, 2, TSR_SHAPE(1, 2));
    tsr_tensor w = tsr_tensor_view(wd, TSR_DTYPE_F32, 2, TSR_SHAPE(3, 2));
    tsr_tensor b = tsr_tensor_view(bd, TSR_DTYPE_F32, 1, TSR_SHAPE(3));
    for (int backend = 0; backend < 2; backend++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = (tsr_backend)backend});
        tsr_tensor *y = tsr_linear(ctx, &x, &w, &b, false, NULL);
        tsr_test_allclose_f32(tsr_f32(y), (float[]){1.5f, -1.5f, -1}, 3, 0, 1e-6, "linear");
        y = tsr_linear(ctx, &x, &w, &b, true, NULL);
        tsr_test_allclose_f32(tsr_f32(y), (float[]){1.5f, 0, 0}, 3, 0, 1e-6, "linear relu");
        y = tsr_linear(ctx, &x, &w, NULL, false, NULL);
        tsr_test_allclose_f32(tsr_f32(y), (float[]){1, -2, 3}, 3, 0, 1e-6, "linear no bias");
        tsr_ctx_free(ctx);
    }
}

/* The dense layers of the Nature, IMPALA and MinAtar networks. */
static const int64_t agent_layers[][3] = {
    {7744, 512, 1}, /* Nature: flatten -> 512, relu */
    {512, 6, 0},    /* Nature / MinAtar head */
    {3872, 512, 1}, /* IMPALA: flatten -> 512, relu */
    {1600, 128, 1}, /* MinAtar: flatten -> 128, relu */
    {128, 6, 0},    /* MinAtar head */
};

static void linear_parity(int64_t batch)
{
    for (size_t l = 0; l < sizeof agent_layers / sizeof agent_layers[0]; l++) {
        int64_t in = agent_layers[l][0], out = agent_layers[l][1];
        linear_case c = {true, agent_layers[l][2] != 0};
        tsr_tensor *inputs[3] = {
            new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(batch, in), 1, 21 + l),
            new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(out, in), 1 / sqrt((double)in), 31 + l),
            new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(out), 0.1, 41 + l),
        };
        char what[96];
        snprintf(what, sizeof what, "linear (%lld, %lld) -> %lld relu %d", (long long)batch,
                 (long long)in, (long long)out, c.relu);
        tsr_test_check_parity(linear_forward, inputs, 3, &c, what);
        c.bias = false;
        snprintf(what, sizeof what, "linear (%lld, %lld) -> %lld relu %d no bias",
                 (long long)batch, (long long)in, (long long)out, c.relu);
        tsr_test_check_parity(linear_forward, inputs, 2, &c, what);
        for (int i = 0; i < 3; i++) tsr_tensor_free(inputs[i]);
    }
}

Test(linear, onednn_matches_reference_on_agent_layers_at_batch_32)
{
    linear_parity(32);
}

Test(linear, onednn_matches_reference_on_agent_layers_at_batch_1)
{
    linear_parity(1);
}

/* Online net on s and on s' in one step: gradients of w and b add up, and
 * x's gradient accumulates when x is reused. */
static tsr_tensor *linear_twice(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    tsr_tensor *a = tsr_linear(ctx, in[0], in[1], in[2], true, NULL);
    tsr_tensor *b = tsr_linear(ctx, in[0], in[1], in[2], false, NULL);
    return tsr_add(ctx, a, b);
}

Test(linear, second_use_in_a_step_accumulates_on_both_backends)
{
    tsr_tensor *inputs[3] = {
        new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 1600), 1, 51),
        new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(128, 1600), 0.025, 52),
        new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(128), 0.1, 53),
    };
    tsr_test_check_parity(linear_twice, inputs, 3, NULL, "linear used twice");
    for (int i = 0; i < 3; i++) tsr_tensor_free(inputs[i]);

    tsr_tensor *in64[3] = {
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 4), 1, 54),
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 4), 1, 55),
        new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(2), 1, 56),
    };
    tsr_test_gradcheck(linear_twice, in64, 3, NULL, NULL, "linear used twice");
    for (int i = 0; i < 3; i++) tsr_tensor_free(in64[i]);
}

Test(linear, caches_a_blocked_layout_from_a_versions_second_use_until_it_changes)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(4, 64), 1, 61);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 64), 0.1, 62);
    x->requires_grad = w->requires_grad = false;
    tsr_weight_cache cache = {0};

    /* First use of a version: the plain weights, nothing cached. */
    tsr_ctx_begin_step(ctx);
    tsr_tensor *first = tsr_test_heap_copy(tsr_linear(ctx, x, w, NULL, false, &cache));
    cr_expect_null(cache.data, "the first use of a version reordered the weights");
    /* Second use: reordered into the cache; both paths compute the same. */
    tsr_tensor *before = tsr_test_heap_copy(tsr_linear(ctx, x, w, NULL, false, &cache));
    cr_assert_not_null(cache.data, "a blocked layout was cached");
    cr_expect_eq(cache.source, w->data);
    tsr_test_allclose(before, first, 1e-5, 1e-6, "cached blocked vs plain weights");

    /* Changing the values without bumping the version keeps the stale copy
     * (so the cache is really used); a bump goes back to the plain weights
     * once, then refreshes the copy. */
    tsr_test_fill_uniform(w, -0.1, 0.1, 63);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *stale = tsr_linear(ctx, x, w, NULL, false, &cache);
    tsr_test_allclose(stale, before, 0, 0, "stale cached layout");
    tsr_tensor *fresh_ref = tsr_test_heap_copy(tsr_linear(ctx, x, w, NULL, false, NULL));
    w->version++;
    tsr_tensor *fresh_plain = tsr_linear(ctx, x, w, NULL, false, &cache);
    tsr_test_allclose(fresh_plain, fresh_ref, 0, 0, "plain weights after a version bump");
    cr_expect_neq(cache.version, w->version);
    tsr_tensor *fresh = tsr_linear(ctx, x, w, NULL, false, &cache);
    tsr_test_allclose(fresh, fresh_ref, 1e-5, 1e-6, "refreshed cached layout");
    cr_expect_eq(cache.version, w->version);

    tsr_weight_cache_fini(&cache);
    tsr_tensor_free(first);
    tsr_tensor_free(before);
    tsr_tensor_free(fresh_ref);
    tsr_tensor_free(x);
    tsr_tensor_free(w);
    tsr_ctx_free(ctx);
}

Test(linear, training_steps_stop_allocating_after_warm_up)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 16});
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 1600), 1, 71);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(128, 1600), 0.025, 72);
    tsr_tensor *b = new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(128), 0.1, 73);
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 128));
    tsr_test_fill_uniform(dy, -1, 1, 74);
    tsr_weight_cache cache = {0};
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_ctx_begin_step(ctx);
        tsr_grad_reset(x, true);
        tsr_grad_reset(w, true);
        tsr_grad_reset(b, true);
        tsr_tensor *y = tsr_linear(ctx, x, w, b, true, &cache);
        tsr_backward_from(ctx, y, dy);
        w->version++;
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations,
                 "the arena allocated after warm-up");
    tsr_weight_cache_fini(&cache);
    tsr_tensor_free(x);
    tsr_tensor_free(w);
    tsr_tensor_free(b);
    tsr_tensor_free(dy);
    tsr_ctx_free(ctx);
}

/* The forward records nothing with recording off. Both calls run the plain
 * matmul (no cache), so only the tape is checked here; the inference and
 * training kinds of the cached inner product are compared with the
 * reference below. */
Test(linear, records_nothing_without_grad)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 8), 1, 81);
    tsr_tensor *w = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(3, 8), 1, 82);
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *y = tsr_linear(ctx, x, w, NULL, true, NULL);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 0);
    cr_expect_not(y->requires_grad);
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *z = tsr_linear(ctx, x, w, NULL, true, NULL);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 1);
    cr_expect(z->requires_grad);
    tsr_tensor_free(x);
    tsr_tensor_free(w);
    tsr_ctx_free(ctx);
}

/* The cached path (inner product on blocked weights, a version's second use
 * on: the target network, acting, and the online network when it runs twice
 * per version) against the reference on the agents' layers, with bias and
 * the fused ReLU. The first call, unrecorded, is the version's first use.
 * At batch 32 the inner product wants a blocked layout for every layer here,
 * so a copy must be cached; at batch 1 it may take the plain weights as they
 * are (it does on AVX2), and then nothing is copied. */
typedef struct cached_linear_case {
    bool relu;
    tsr_weight_cache *cache;
} cached_linear_case;

static tsr_tensor *linear_second_use(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const cached_linear_case *c = user;
    bool grad = tsr_ctx_set_grad(ctx, false);
    tsr_linear(ctx, in[0], in[1], in[2], c->relu, c->cache);
    tsr_ctx_set_grad(ctx, grad);
    return tsr_linear(ctx, in[0], in[1], in[2], c->relu, c->cache);
}

static void cached_linear_parity(int64_t batch)
{
    for (size_t l = 0; l < sizeof agent_layers / sizeof agent_layers[0]; l++) {
        int64_t in = agent_layers[l][0], out = agent_layers[l][1];
        tsr_tensor *inputs[3] = {
            new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(batch, in), 1, 121 + l),
            new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(out, in), 1 / sqrt((double)in), 131 + l),
            new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(out), 0.1, 141 + l),
        };
        tsr_weight_cache cache = {0};
        cached_linear_case c = {agent_layers[l][2] != 0, &cache};
        char what[128];

        /* Training kind: recorded, then backpropagated. */
        snprintf(what, sizeof what, "cached linear (%lld, %lld) -> %lld relu %d, training",
                 (long long)batch, (long long)in, (long long)out, c.relu);
        tsr_test_check_parity(linear_second_use, inputs, 3, &c, what);
        if (batch > 1)
            cr_assert_not_null(cache.data, "%s: the second use cached no blocked layout", what);
        tsr_weight_cache_fini(&cache);
        memset(&cache, 0, sizeof cache);

        /* Inference kind: nothing recorded. */
        tsr_tensor *y[2];
        for (int backend = 0; backend < 2; backend++) {
            tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){
                .backend = backend ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL});
            tsr_ctx_set_grad(ctx, false);
            tsr_ctx_begin_step(ctx);
            y[backend] = tsr_test_heap_copy(linear_second_use(ctx, inputs, &c));
            tsr_ctx_free(ctx);
            if (backend == 0 && batch > 1)
                cr_assert_not_null(cache.data, "%s: no cached layout at inference", what);
        }
        snprintf(what, sizeof what, "cached linear (%lld, %lld) -> %lld relu %d, inference",
                 (long long)batch, (long long)in, (long long)out, c.relu);
        tsr_test_expect_parity(y[0], y[1], what);
        tsr_weight_cache_fini(&cache);
        for (int i = 0; i < 2; i++) tsr_tensor_free(y[i]);
        for (int i = 0; i < 3; i++) tsr_tensor_free(inputs[i]);
    }
}

Test(linear, cached_layout_matches_reference_on_agent_layers_at_batch_32)
{
    cached_linear_parity(32);
}

Test(linear, cached_layout_matches_reference_on_agent_layers_at_batch_1)
{
    cached_linear_parity(1);
}

/* ---- matmul ---- */

typedef struct matmul_case {
    bool transpose_a, transpose_b;
} matmul_case;

static tsr_tensor *matmul_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const matmul_case *c = user;
    return tsr_matmul(ctx, in[0], in[1], c->transpose_a, c->transpose_b);
}

/* Stored shape of an operand: (batch, rows, cols), transposed if asked. */
static tsr_tensor *matmul_operand(int64_t batch, int64_t rows, int64_t cols, bool transpose,
                                  uint64_t seed)
{
    return new_uniform(TSR_DTYPE_F64, 3,
                       transpose ? TSR_SHAPE(batch, cols, rows) : TSR_SHAPE(batch, rows, cols), 1,
                       seed);
}

Test(matmul, backward_matches_finite_differences_for_every_transpose_and_broadcast)
{
    const int64_t B = 3, M = 2, K = 4, P = 3;
    const char *sides[3] = {"no broadcast", "a broadcast", "b broadcast"};
    for (int t = 0; t < 4; t++) {
        for (int side = 0; side < 3; side++) {
            matmul_case c = {t & 1, (t >> 1) & 1};
            tsr_tensor *in[2] = {
                matmul_operand(side == 1 ? 1 : B, M, K, c.transpose_a, 100 + t),
                matmul_operand(side == 2 ? 1 : B, K, P, c.transpose_b, 200 + t),
            };
            char what[96];
            snprintf(what, sizeof what, "matmul (transpose_a %d, transpose_b %d, %s)",
                     c.transpose_a, c.transpose_b, sides[side]);
            tsr_test_gradcheck(matmul_forward, in, 2, &c, NULL, what);
            tsr_tensor_free(in[0]);
            tsr_tensor_free(in[1]);
        }
    }
}

Test(matmul, backward_matches_finite_differences_with_matrix_operands)
{
    /* A 2-D operand is a batch of one. */
    matmul_case c = {false, true};
    tsr_tensor *in[2] = {
        new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4), 1, 301),
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(5, 4), 1, 302),
    };
    tsr_test_gradcheck(matmul_forward, in, 2, &c, NULL, "matmul with a matrix b");
    tsr_tensor *m = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(4, 3), 1, 303);
    tsr_tensor *pair[2] = {m, in[1]};
    c = (matmul_case){true, true};
    tsr_test_gradcheck(matmul_forward, pair, 2, &c, NULL, "matmul of two matrices");
    tsr_tensor_free(in[0]);
    tsr_tensor_free(in[1]);
    tsr_tensor_free(m);
}

Test(matmul, computes_hand_worked_values_with_transposes_on_both_backends)
{
    /* a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]] (one batch).
     * a b = [[19, 22], [43, 50]]; a^T b = [[26, 30], [38, 44]];
     * a b^T = [[17, 23], [39, 53]]; a^T b^T = [[23, 31], [34, 46]]. */
    float ad[4] = {1, 2, 3, 4}, bd[4] = {5, 6, 7, 8};
    tsr_tensor a = tsr_tensor_view(ad, TSR_DTYPE_F32, 3, TSR_SHAPE(1, 2, 2));
    tsr_tensor b = tsr_tensor_view(bd, TSR_DTYPE_F32, 3, TSR_SHAPE(1, 2, 2));
    const float expected[4][4] = {
        {19, 22, 43, 50}, {26, 30, 38, 44}, {17, 23, 39, 53}, {23, 31, 34, 46}};
    for (int backend = 0; backend < 2; backend++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = (tsr_backend)backend});
        for (int t = 0; t < 4; t++) {
            tsr_tensor *c = tsr_matmul(ctx, &a, &b, t & 1, (t >> 1) & 1);
            char what[64];
            snprintf(what, sizeof what, "matmul transposes %d backend %d", t, backend);
            tsr_test_allclose_f32(tsr_f32(c), expected[t], 4, 0, 0, what);
        }
        tsr_ctx_free(ctx);
    }
}

/* Soft MoE at Nature width 32 on an 11 x 11 grid: T = 121 tokens of D = 32,
 * E = 4 experts with 31 slots each (S = 124). */
Test(matmul, onednn_matches_reference_on_soft_moe_logits)
{
    /* logits (32, 121, 124) = X (32, 121, 32) . phi (1, 32, 124). */
    matmul_case c = {false, false};
    tsr_tensor *in[2] = {
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 32), 1, 401),
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(1, 32, 124), 0.2, 402),
    };
    tsr_test_check_parity(matmul_forward, in, 2, &c, "soft moe logits X phi");
    tsr_tensor_free(in[0]);
    tsr_tensor_free(in[1]);
}

Test(matmul, onednn_matches_reference_on_soft_moe_dispatch)
{
    /* slots (32, 124, 32) = D^T . X with D (32, 121, 124), X (32, 121, 32). */
    matmul_case c = {true, false};
    tsr_tensor *in[2] = {
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 124), 1, 411),
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 32), 1, 412),
    };
    tsr_test_check_parity(matmul_forward, in, 2, &c, "soft moe dispatch D^T X");
    tsr_tensor_free(in[0]);
    tsr_tensor_free(in[1]);
}

Test(matmul, onednn_matches_reference_on_soft_moe_combine)
{
    /* Z (32, 121, 32) = C (32, 121, 124) . Y (32, 124, 32). */
    matmul_case c = {false, false};
    tsr_tensor *in[2] = {
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 124), 1, 421),
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 124, 32), 1, 422),
    };
    tsr_test_check_parity(matmul_forward, in, 2, &c, "soft moe combine C Y");
    tsr_tensor_free(in[0]);
    tsr_tensor_free(in[1]);
}

Test(matmul, onednn_matches_reference_with_transposed_b_and_batch_1)
{
    matmul_case c = {false, true};
    tsr_tensor *in[2] = {
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(1, 121, 32), 1, 431),
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(1, 124, 32), 1, 432),
    };
    tsr_test_check_parity(matmul_forward, in, 2, &c, "matmul a b^T at batch 1");
    tsr_tensor_free(in[0]);
    tsr_tensor_free(in[1]);
}

/* Square operands used four times, once per transpose combination: every
 * gradient path after the first accumulates (oneDNN through its sum post-op,
 * a broadcast operand through its batch sum). */
static tsr_tensor *matmul_four_ways(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    tsr_tensor *sum = tsr_matmul(ctx, in[0], in[1], false, false);
    for (int t = 1; t < 4; t++)
        sum = tsr_add(ctx, sum, tsr_matmul(ctx, in[0], in[1], t & 1, t >> 1));
    return sum;
}

Test(matmul, repeated_use_in_a_step_accumulates_on_both_backends)
{
    for (int broadcast = 0; broadcast < 3; broadcast++) {
        tsr_tensor *in[2] = {
            new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(broadcast == 1 ? 1 : 8, 16, 16), 1, 441),
            new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(broadcast == 2 ? 1 : 8, 16, 16), 1, 442),
        };
        char what[64];
        snprintf(what, sizeof what, "matmul used four ways (broadcast side %d)", broadcast);
        tsr_test_check_parity(matmul_four_ways, in, 2, NULL, what);
        tsr_tensor_free(in[0]);
        tsr_tensor_free(in[1]);
        tsr_tensor *in64[2] = {
            new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(broadcast == 1 ? 1 : 2, 3, 3), 1, 444),
            new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(broadcast == 2 ? 1 : 2, 3, 3), 1, 445),
        };
        tsr_test_gradcheck(matmul_four_ways, in64, 2, NULL, NULL, what);
        tsr_tensor_free(in64[0]);
        tsr_tensor_free(in64[1]);
    }
}

Test(matmul, reference_results_do_not_depend_on_the_thread_count)
{
    /* Large enough to run threaded: outputs must be bitwise identical. */
    matmul_case c = {true, false};
    tsr_tensor *in[2] = {
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(8, 121, 124), 1, 501),
        new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(1, 121, 32), 1, 502),
    };
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    tsr_test_run_result one = tsr_test_run_op(TSR_BACKEND_REFERENCE, matmul_forward, in, 2, &c);
    omp_set_num_threads(threads > 1 ? threads : 2);
    tsr_test_run_result many = tsr_test_run_op(TSR_BACKEND_REFERENCE, matmul_forward, in, 2, &c);
    omp_set_num_threads(threads);
    tsr_test_allclose(many.out, one.out, 0, 0, "forward on 1 and several threads");
    tsr_test_allclose(many.grad[0], one.grad[0], 0, 0, "d a on 1 and several threads");
    tsr_test_allclose(many.grad[1], one.grad[1], 0, 0, "d b (broadcast) on 1 and several threads");
    tsr_test_free_result(&one);
    tsr_test_free_result(&many);
    tsr_tensor_free(in[0]);
    tsr_tensor_free(in[1]);
}
