/* The Top-1 MoE layer: routing with capacity on a hand-built case, gradients
 * (with dropped tokens, noise and the importance loss), auxiliary losses,
 * noise scale, configuration errors, per-sample independence. */
#include <math.h>
#include <signal.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

typedef struct topk_case {
    tsr_params params;
    tsr_topk_moe moe;
    tsr_rng noise;
    tsr_topk_moe_outputs out;
} topk_case;

static tsr_topk_moe_config config(int64_t experts, double capacity)
{
    tsr_topk_moe_config c = tsr_topk_moe_config_default();
    c.num_experts = experts;
    c.capacity_factor = capacity;
    c.expert_hidden = 4;
    return c;
}

static void build(topk_case *m, tsr_dtype dtype, int64_t tokens, int64_t dim, tsr_topk_moe_config c)
{
    tsr_params_init_dtype(&m->params, dtype);
    tsr_error err = {0};
    tsr_status st = tsr_topk_moe_init(&m->moe, &m->params, "moe", tokens, dim, &c, &err);
    cr_assert_eq(st, TSR_STATUS_OK, "init failed: %s", err.message);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 17, TSR_RNG_STREAM_INIT);
    tsr_topk_moe_reset(&m->moe, &m->params, &rng);
    tsr_test_fill_uniform(tsr_params_tensor(&m->params, m->moe.experts.hidden_bias), -0.2, 0.2, 23);
    tsr_test_fill_uniform(tsr_params_tensor(&m->params, m->moe.experts.out_bias), -0.2, 0.2, 24);
    tsr_rng_init(&m->noise, 5, TSR_RNG_STREAM_NOISE);
}

static void destroy(topk_case *m)
{
    tsr_topk_moe_fini(&m->moe);
    tsr_params_fini(&m->params);
}

static tsr_tensor *forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    topk_case *m = user;
    tsr_rng noise = m->noise;
    return tsr_topk_moe_forward(&m->moe, ctx, &m->params, in[0], &noise, &m->out);
}

static tsr_tensor *forward_aux(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    topk_case *m = user;
    forward(ctx, in, user);
    return m->out.aux_loss;
}

/* Gradcheck of the output (or the auxiliary loss) for x and every parameter;
 * returns the tokens dropped in the routing it checked. */
static int64_t gradcheck(tsr_topk_moe_config c, tsr_test_forward_fn fn, const char *what)
{
    topk_case m;
    int64_t n = 3, t = 6, d = 3;
    build(&m, TSR_DTYPE_F64, t, d, c);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(n, t, d));
    tsr_test_fill_uniform(x, -1, 1, 8);
    x->requires_grad = true;
    tsr_tensor *inputs[16] = {x};
    for (int i = 0; i < m.params.count; i++) inputs[1 + i] = tsr_params_tensor(&m.params, i);
    /* Away from ties: the routing must not flip under a 1e-6 step. */
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    forward(ctx, inputs, &m);
    int64_t dropped = 0, e = c.num_experts;
    for (int64_t k = 0; k < n * t; k++) {
        double p[TSR_MOE_MAX_EXPERTS], best = -INFINITY, second = -INFINITY;
        for (int64_t i = 0; i < e; i++) p[i] = tsr_f64(m.out.probs)[k * e + i];
        for (int64_t i = 0; i < e; i++) best = fmax(best, p[i]);
        for (int64_t i = 0; i < e; i++)
            if (p[i] < best) second = fmax(second, p[i]);
        cr_assert(e == 1 || best - second > 1e-4, "token %lld is near a routing tie", (long long)k);
        dropped += tsr_i32(m.out.slot)[k] < 0;
    }
    tsr_ctx_free(ctx);
    tsr_test_gradcheck(fn, inputs, 1 + m.params.count, &m, NULL, what);
    tsr_tensor_free(x);
    destroy(&m);
    return dropped;
}

/* ---- the ops ---------------------------------------------------------------- */

static tsr_tensor *gather_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return tsr_gather_rows(ctx, in[0], (const tsr_tensor *)user, in[1]);
}

static tsr_tensor *gather_unweighted(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return tsr_gather_rows(ctx, in[0], (const tsr_tensor *)user, NULL);
}

Test(moe_ops, gather_rows_matches_finite_differences_with_repeats_and_empty_rows)
{
    int32_t idx[6] = {2, -1, 0, 2, 3, -1}; /* row 2 twice, row 1 never */
    tsr_tensor index = tsr_tensor_view(idx, TSR_DTYPE_I32, 1, TSR_SHAPE(6));
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(4, 3));
    tsr_tensor *w = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(6));
    tsr_test_fill_uniform(x, -1, 1, 1);
    tsr_test_fill_uniform(w, 0.5, 1.5, 2);
    x->requires_grad = w->requires_grad = true;
    tsr_test_gradcheck(gather_forward, (tsr_tensor *[]){x, w}, 2, &index, NULL, "gather_rows");
    tsr_test_gradcheck(gather_unweighted, (tsr_tensor *[]){x}, 1, &index, NULL,
                       "gather_rows without weights");
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = tsr_gather_rows(ctx, x, &index, w);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) {
            double want = idx[i] < 0 ? 0 : tsr_f64(w)[i] * tsr_f64(x)[idx[i] * 3 + k];
            cr_expect_eq(tsr_f64(y)[i * 3 + k], want);
        }
    tsr_ctx_free(ctx);
    tsr_tensor_free(x);
    tsr_tensor_free(w);
}

Test(moe_ops, gather_rows_gives_untouched_rows_a_zero_gradient_in_a_reused_arena)
{
    int32_t idx[2] = {0, 2}; /* row 1 is never gathered */
    tsr_tensor index = tsr_tensor_view(idx, TSR_DTYPE_I32, 1, TSR_SHAPE(2));
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(3, 4));
    tsr_tensor *dy = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(2, 4));
    tsr_tensor_fill(dy, 1.0);
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 20});
    for (int step = 0; step < 2; step++) {
        tsr_ctx_begin_step(ctx);
        /* Step 0 leaves junk where step 1's gradient buffers will be carved. */
        if (step == 0) tsr_tensor_fill(tsr_ctx_tensor(ctx, TSR_DTYPE_F32, 1, TSR_SHAPE(4096)), 7.0);
        tsr_grad_reset(x, true);
        tsr_backward_from(ctx, tsr_gather_rows(ctx, x, &index, NULL), dy);
    }
    tsr_tensor *dx = tsr_grad_get(ctx, x);
    for (int k = 0; k < 4; k++) {
        cr_expect_eq(tsr_f32(dx)[k], 1.0f);
        cr_expect_eq(tsr_f32(dx)[4 + k], 0.0f, "row 1 was never gathered");
    }
    tsr_ctx_free(ctx);
    tsr_tensor_free(x);
    tsr_tensor_free(dy);
}

static tsr_tensor *cv_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_cv_squared(ctx, in[0]);
}

Test(moe_ops, cv_squared_matches_hand_values_and_finite_differences)
{
    double v[2][4] = {{1, 2, 3, 6}, {2, 2, 2, 2}}; /* mean 3, var 3.5; mean 2, var 0 */
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 4));
    memcpy(x->data, v, sizeof v);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = tsr_cv_squared(ctx, x);
    cr_expect(fabs(tsr_f64(y)[0] - 3.5 / 9) < 1e-15);
    cr_expect_eq(tsr_f64(y)[1], 0);
    tsr_ctx_free(ctx);
    tsr_test_fill_uniform(x, 0.5, 2, 3);
    x->requires_grad = true;
    tsr_test_gradcheck(cv_forward, &x, 1, NULL, NULL, "cv_squared");
    tsr_tensor_free(x);
}

/* ---- gradients ----------------------------------------------------------- */

Test(topk_moe, top1_matches_finite_differences_when_every_token_fits)
{
    int64_t dropped = gradcheck(config(3, 3.0), forward, "top-1, capacity 3 (no drops)");
    cr_expect_eq(dropped, 0);
}

Test(topk_moe, top1_matches_finite_differences_when_capacity_drops_tokens)
{
    int64_t dropped = gradcheck(config(3, 0.5), forward, "top-1, capacity 1 (drops)");
    cr_expect_gt(dropped, 0, "the case must drop tokens to test dropping");
    cr_expect_lt(dropped, 18);
}

Test(topk_moe, noisy_routing_matches_finite_differences_with_a_fixed_stream)
{
    tsr_topk_moe_config c = config(2, 1.0);
    c.noisy_routing = true;
    gradcheck(c, forward, "top-1, noisy routing");
}

static void token_mlp(const tsr_params *p, const tsr_expert_mlp *l, int64_t expert, const double *x,
                      double *y);

/* The reference's RandomRouter: no router weight; the scores are fresh
 * N(0, 1) draws, used raw (no softmax), the top one the gate. */
Test(topk_moe, random_router_matches_finite_differences_with_a_fixed_stream)
{
    tsr_topk_moe_config c = config(3, 1.0);
    c.random_router = true;
    gradcheck(c, forward, "top-1, random router");
}

Test(topk_moe, a_random_router_scores_tokens_with_raw_normals_whatever_the_input)
{
    topk_case m;
    tsr_topk_moe_config c = config(4, 4.0); /* capacity for every token: nothing dropped */
    c.random_router = true;
    build(&m, TSR_DTYPE_F64, 50, 3, c);
    cr_expect_eq(m.moe.router, -1);
    cr_expect_eq(tsr_params_find(&m.params, "moe/router/weight"), -1);
    cr_expect_eq(tsr_topk_moe_param_count(&m.moe), tsr_params_count(&m.params));
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(40, 50, 3));
    tsr_tensor *x2 = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(40, 50, 3));
    tsr_test_fill_uniform(x, -1, 1, 3);
    tsr_test_fill_uniform(x2, -5, 5, 4);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_rng noise = m.noise, same = m.noise;
    tsr_topk_moe_outputs other;
    tsr_tensor *z = tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, &noise, &m.out);
    tsr_topk_moe_forward(&m.moe, ctx, &m.params, x2, &same, &other);
    int64_t tokens = 40 * 50, e = 4;
    double sum = 0, sq = 0;
    for (int64_t k = 0; k < tokens; k++) {
        cr_assert_eq(tsr_i32(m.out.expert)[k], tsr_i32(other.expert)[k],
                     "the routing does not depend on the input");
        double best = -INFINITY;
        for (int64_t i = 0; i < e; i++) {
            double s = tsr_f64(m.out.probs)[k * e + i];
            sum += s;
            sq += s * s;
            best = fmax(best, s);
        }
        cr_assert_eq(tsr_f64(m.out.probs)[k * e + tsr_i32(m.out.expert)[k]], best);
    }
    double mean = sum / (double)(tokens * e), sd = sqrt(sq / (double)(tokens * e) - mean * mean);
    cr_expect(fabs(mean) < 0.05 && fabs(sd - 1) < 0.05, "scores N(0, 1): mean %g, sd %g", mean,
              sd);
    /* Every token: its top score (the gate, negative as often as not) times
     * its expert's MLP. */
    for (int64_t k = 0; k < tokens; k++) {
        int64_t ek = tsr_i32(m.out.expert)[k];
        double want[3];
        token_mlp(&m.params, &m.moe.experts, ek, tsr_f64(x) + 3 * k, want);
        for (int i = 0; i < 3; i++) want[i] *= tsr_f64(m.out.probs)[k * e + ek];
        tsr_test_allclose_f64(tsr_f64(z) + 3 * k, want, 3, 1e-12, 1e-14, "token output");
    }
    tsr_tensor_free(x);
    tsr_tensor_free(x2);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(topk_moe, importance_loss_matches_finite_differences)
{
    tsr_topk_moe_config c = config(3, 1.0);
    c.importance_loss = true;
    c.entropy_loss = true; /* a constant: adds nothing to the gradient */
    gradcheck(c, forward_aux, "top-1 auxiliary loss");
}

/* ---- routing on a hand-built case ------------------------------------------ */

/* Router weight = identity, so token (a, b) prefers expert 0 when a > b.
 * Two samples of five tokens, E = 2, c = 1: capacity ceil(5 / 2) = 3.
 *   sample 0 prefers 0 0 0 0 1: tokens 0-2 fill expert 0, token 3 is dropped,
 *            token 4 goes to expert 1;
 *   sample 1 prefers 1 1 0 1 1: tokens 0, 1, 3 fill expert 1, token 4 is
 *            dropped, token 2 goes to expert 0.
 * Rows of the experts' batch (E, N C): expert e, sample n, position c at
 * (e N + n) C + c. */
static const double hand_tokens[2][5][2] = {
    {{1.0, 0.2}, {0.6, -0.4}, {0.9, 0.1}, {0.3, -0.2}, {-0.5, 0.5}},
    {{0.1, 0.8}, {-0.3, 0.4}, {0.7, 0.0}, {0.2, 0.9}, {-0.6, 0.1}},
};
static const int32_t hand_expert[10] = {0, 0, 0, 0, 1, 1, 1, 0, 1, 1};
static const int32_t hand_slot[10] = {0, 1, 2, -1, 6, 9, 10, 3, 11, -1};

static void build_hand(topk_case *m, tsr_tensor **x, tsr_topk_moe_config c)
{
    build(m, TSR_DTYPE_F64, 5, 2, c);
    tsr_tensor *w = tsr_params_tensor(&m->params, m->moe.router);
    tsr_tensor_fill(w, 0.0);
    tsr_tensor_set(w, (int64_t[]){0, 0}, 1.0);
    tsr_tensor_set(w, (int64_t[]){1, 1}, 1.0);
    *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 5, 2));
    memcpy((*x)->data, hand_tokens, sizeof hand_tokens);
}

/* relu(x W1^T + b1) W2^T + b2 for one token, by hand. */
static void token_mlp(const tsr_params *p, const tsr_expert_mlp *l, int64_t expert, const double *x,
                      double *y)
{
    int64_t d = l->token_dim, h = l->hidden;
    const double *w1 = tsr_f64(&p->items[l->hidden_weight].value) + expert * h * d;
    const double *b1 = tsr_f64(&p->items[l->hidden_bias].value) + expert * h;
    const double *w2 = tsr_f64(&p->items[l->out_weight].value) + expert * d * h;
    const double *b2 = tsr_f64(&p->items[l->out_bias].value) + expert * d;
    double hidden[16];
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

Test(topk_moe, capacity_is_filled_first_come_first_served_per_sample_and_the_rest_dropped)
{
    topk_case m;
    tsr_tensor *x;
    build_hand(&m, &x, config(2, 1.0));
    cr_assert_eq(m.moe.capacity, 3);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *z = tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, NULL, &m.out);
    for (int k = 0; k < 10; k++) {
        cr_expect_eq(tsr_i32(m.out.expert)[k], hand_expert[k], "token %d: expert %d, expected %d", k,
                     tsr_i32(m.out.expert)[k], hand_expert[k]);
        cr_expect_eq(tsr_i32(m.out.slot)[k], hand_slot[k], "token %d: row %d, expected %d", k,
                     tsr_i32(m.out.slot)[k], hand_slot[k]);
    }
    /* Outputs: g f_e(x) for kept tokens, 0 for dropped ones. */
    for (int k = 0; k < 10; k++) {
        const double *xk = &hand_tokens[k / 5][k % 5][0];
        double want[2] = {0, 0};
        if (hand_slot[k] >= 0) {
            int e = hand_expert[k];
            double g = exp(xk[e]) / (exp(xk[0]) + exp(xk[1]));
            token_mlp(&m.params, &m.moe.experts, e, xk, want);
            want[0] *= g;
            want[1] *= g;
        }
        tsr_test_allclose_f64(tsr_f64(z) + 2 * k, want, 2, 1e-12, 1e-14, "token output");
    }
    tsr_moe_stats stats;
    tsr_topk_moe_stats(&m.moe, &m.out, &stats);
    cr_expect(stats.has_gates && stats.has_capacity && !stats.has_dispatch);
    cr_expect_eq(stats.top1_load[0], 0.5);
    cr_expect_eq(stats.top1_load[1], 0.5);
    cr_expect(fabs(stats.capacity_used[0] - 4.0 / 6) < 1e-15);
    cr_expect(fabs(stats.capacity_used[1] - 4.0 / 6) < 1e-15);
    cr_expect(fabs(stats.dropped_fraction - 0.2) < 1e-15);
    cr_expect(fabs(stats.gate_mean[0] + stats.gate_mean[1] - 1) < 1e-12);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(topk_moe, routing_ties_go_to_the_lowest_expert)
{
    topk_case m;
    build(&m, TSR_DTYPE_F64, 4, 2, config(3, 1.0));
    tsr_tensor_fill(tsr_params_tensor(&m.params, m.moe.router), 0.0); /* every logit 0 */
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(1, 4, 2));
    tsr_test_fill_uniform(x, -1, 1, 3);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, NULL, &m.out);
    /* Capacity ceil(4 / 3) = 2: tokens 0, 1 kept by expert 0, 2 and 3 dropped. */
    const int32_t slot[4] = {0, 1, -1, -1};
    for (int k = 0; k < 4; k++) {
        cr_expect_eq(tsr_i32(m.out.expert)[k], 0);
        cr_expect_eq(tsr_i32(m.out.slot)[k], slot[k]);
    }
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

/* ---- auxiliary losses ------------------------------------------------------ */

Test(topk_moe, auxiliary_losses_are_off_by_default_and_match_hand_values)
{
    topk_case m;
    tsr_tensor *x;
    build_hand(&m, &x, config(2, 1.0));
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, NULL, &m.out);
    cr_expect_null(m.out.aux_loss);
    destroy(&m);
    tsr_tensor_free(x);

    tsr_topk_moe_config c = config(2, 1.0);
    c.entropy_loss = true;
    c.importance_loss = true;
    build_hand(&m, &x, c);
    tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, NULL, &m.out);
    /* Entropy: both samples route 4 + 1 tokens; (counts + 1e-6) normalised. */
    double q0 = (4 + 1e-6) / (5 + 2e-6), q1 = (1 + 1e-6) / (5 + 2e-6);
    double h = -(q0 * log(q0) + q1 * log(q1)) / log(2.0);
    cr_expect(fabs(m.out.entropy_term - h) < 1e-12, "entropy term %g, expected %g",
              m.out.entropy_term, h);
    /* Importance: per sample, sum over tokens of the softmax of the router
     * logits (the tokens themselves), then var / mean^2, averaged. */
    double cv = 0;
    for (int n = 0; n < 2; n++) {
        double imp[2] = {0, 0};
        for (int t = 0; t < 5; t++) {
            const double *xk = hand_tokens[n][t];
            double s = exp(xk[0]) + exp(xk[1]);
            imp[0] += exp(xk[0]) / s;
            imp[1] += exp(xk[1]) / s;
        }
        double mean = (imp[0] + imp[1]) / 2;
        double var = ((imp[0] - mean) * (imp[0] - mean) + (imp[1] - mean) * (imp[1] - mean)) / 2;
        cv += var / (mean * mean) / 2;
    }
    cr_expect(fabs(m.out.importance_term - cv) < 1e-12, "importance term %g, expected %g",
              m.out.importance_term, cv);
    cr_assert_not_null(m.out.aux_loss);
    double want = 0.5 * (1 - h) + 1.0 * cv;
    cr_expect(fabs(tsr_f64(m.out.aux_loss)[0] - want) < 1e-12, "aux loss %g, expected %g",
              tsr_f64(m.out.aux_loss)[0], want);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

/* ---- noise, configuration, batch ------------------------------------------ */

Test(topk_moe, routing_noise_has_std_noise_std_over_experts)
{
    /* A zero router: the log-probabilities minus their mean over experts are
     * the noise minus its mean, of variance sigma^2 (E - 1) / E. */
    topk_case m;
    tsr_topk_moe_config c = config(4, 1.0);
    c.noisy_routing = true;
    c.noise_std = 2.0; /* sigma = 2 / 4 = 0.5 */
    build(&m, TSR_DTYPE_F64, 40, 3, c);
    tsr_tensor_fill(tsr_params_tensor(&m.params, m.moe.router), 0.0);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(50, 40, 3));
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_rng noise = m.noise;
    tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, &noise, &m.out);
    double sq = 0;
    int64_t count = 0;
    for (int64_t k = 0; k < 2000; k++) {
        double l[4], mean = 0;
        for (int e = 0; e < 4; e++) mean += (l[e] = log(tsr_f64(m.out.probs)[k * 4 + e])) / 4;
        for (int e = 0; e < 4; e++, count++) sq += (l[e] - mean) * (l[e] - mean);
    }
    double var = sq / (double)count * 4.0 / 3.0; /* undo the (E - 1) / E */
    cr_expect(fabs(sqrt(var) - 0.5) < 0.02, "noise std %g, expected 0.5", sqrt(var));
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(topk_moe, noisy_routing_without_a_stream_is_a_programming_error, .signal = SIGABRT)
{
    topk_case m;
    tsr_topk_moe_config c = config(2, 1.0);
    c.noisy_routing = true;
    build(&m, TSR_DTYPE_F64, 4, 2, c);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(1, 4, 2));
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, NULL, &m.out);
}

Test(topk_moe, top_k_other_than_one_and_bad_values_are_rejected_by_name)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_topk_moe l;
    tsr_error err = {0};
    tsr_topk_moe_config c = config(4, 1.0);
    c.num_selected = 2;
    cr_expect_eq(tsr_topk_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "num_selected_experts = 2") && strstr(err.message, "only 1"),
              "%s", err.message);
    c = config(1, 1.0);
    c.entropy_loss = true;
    cr_expect_eq(tsr_topk_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "entropy"), "%s", err.message);
    c = config(4, -1.0);
    cr_expect_eq(tsr_topk_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "capacity_factor = -1"), "%s", err.message);
    c = config(4, 1.0);
    c.noisy_routing = true;
    c.noise_std = -0.5;
    cr_expect_eq(tsr_topk_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "noise_std = -0.5"), "%s", err.message);
    c = config(129, 1.0);
    cr_expect_eq(tsr_topk_moe_init(&l, &p, "moe", 121, 32, &c, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "num_experts = 129"), "%s", err.message);
    for (int both = 0; both < 2; both++) {
        c = config(4, 1.0);
        c.random_router = true;
        c.noisy_routing = both == 0;
        c.importance_loss = both == 1;
        cr_expect_eq(tsr_topk_moe_init(&l, &p, "moe", 121, 32, &c, &err),
                     TSR_STATUS_INVALID_ARGUMENT);
        cr_expect(strstr(err.message, "a random router has no logits"), "%s", err.message);
    }
    cr_expect_eq(p.count, 0, "nothing is registered on error");
    tsr_params_fini(&p);
}

Test(topk_moe, parameters_are_the_router_and_the_experts)
{
    topk_case m;
    tsr_topk_moe_config c = config(8, 1.0);
    c.expert_hidden = 512;
    build(&m, TSR_DTYPE_F32, 121, 32, c);
    cr_expect_eq(m.moe.capacity, 16);
    cr_expect_eq(tsr_topk_moe_param_count(&m.moe), 8 * 32 + 8 * 33312);
    cr_expect_eq(tsr_params_count(&m.params), tsr_topk_moe_param_count(&m.moe));
    cr_expect_geq(tsr_params_find(&m.params, "moe/router/weight"), 0);
    cr_expect_eq(tsr_params_find(&m.params, "moe/router/bias"), -1, "the router has no bias");
    destroy(&m);
}

Test(topk_moe, capacity_and_routing_are_per_sample)
{
    topk_case m;
    build(&m, TSR_DTYPE_F64, 10, 4, config(3, 0.7));
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(4, 10, 4));
    tsr_test_fill_uniform(x, -2, 2, 19);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_tensor *all = tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, NULL, NULL);
    for (int64_t n = 0; n < 4; n++) {
        tsr_tensor one = tsr_tensor_slice(x, 0, n, 1);
        tsr_tensor *alone = tsr_topk_moe_forward(&m.moe, ctx, &m.params, &one, NULL, NULL);
        tsr_tensor part = tsr_tensor_slice(all, 0, n, 1);
        tsr_test_allclose(&part, alone, 1e-12, 1e-12, "a sample alone vs in a batch");
    }
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(topk_moe, float32_training_step_allocates_nothing_after_warm_up)
{
    topk_case m;
    tsr_topk_moe_config c = config(8, 1.0);
    c.expert_hidden = 64;
    c.importance_loss = true;
    c.noisy_routing = true;
    build(&m, TSR_DTYPE_F32, 121, 32, c);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 3, TSR_SHAPE(8, 121, 32));
    tsr_test_fill_uniform(x, 0, 1, 15);
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 16});
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        tsr_ctx_begin_step(ctx);
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_tensor *z = tsr_topk_moe_forward(&m.moe, ctx, &m.params, x, &m.noise, &m.out);
        tsr_backward(ctx, tsr_add(ctx, tsr_mean_all(ctx, z), m.out.aux_loss));
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_moe_stats stats;
    tsr_topk_moe_stats(&m.moe, &m.out, &stats);
    double load = 0;
    for (int e = 0; e < 8; e++) load += stats.top1_load[e];
    cr_expect(fabs(load - 1) < 1e-12);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}
