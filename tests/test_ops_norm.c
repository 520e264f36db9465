#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <oneapi/dnnl/dnnl.h>

#include "support/allclose.h"
#include "support/files.h"
#include "support/gradcheck.h"
#include "support/parity.h"
#include "tessera/tessera.h"

/* ---- helpers ---- */

typedef tsr_test_forward_fn op_fn;

static tsr_tensor *new_uniform(tsr_dtype dtype, int ndim, const int64_t *shape, double lo,
                               double hi, uint64_t seed)
{
    tsr_tensor *t = tsr_tensor_new(dtype, ndim, shape);
    tsr_test_fill_uniform(t, lo, hi, seed);
    t->requires_grad = true;
    return t;
}

/* ---- softmax and log-softmax ---- */

typedef struct axis_case {
    int axis;
    bool log_softmax;
} axis_case;

static tsr_tensor *softmax_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const axis_case *c = user;
    return c->log_softmax ? tsr_log_softmax(ctx, in[0], c->axis) : tsr_softmax(ctx, in[0], c->axis);
}

static void gradcheck_softmax(bool log_softmax)
{
    /* First, middle and last axes, and the last counted from the end. */
    const int axes[4] = {0, 1, 2, -1};
    for (int i = 0; i < 4; i++) {
        axis_case c = {axes[i], log_softmax};
        tsr_tensor *x = new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 4, 5), -2, 2, 10 + i);
        char what[64];
        snprintf(what, sizeof what, "%s over axis %d", log_softmax ? "log_softmax" : "softmax",
                 axes[i]);
        tsr_test_gradcheck(softmax_forward, &x, 1, &c, NULL, what);
        tsr_tensor_free(x);
    }
}

Test(softmax, backward_matches_finite_differences_over_first_middle_and_last_axes)
{
    gradcheck_softmax(false);
}

Test(log_softmax, backward_matches_finite_differences_over_first_middle_and_last_axes)
{
    gradcheck_softmax(true);
}

Test(softmax, computes_hand_worked_values_over_a_middle_axis_on_both_backends)
{
    /* x (1, 3, 2): column 0 = log [1, 2, 3] -> [1/6, 2/6, 3/6]; column 1 is
     * constant -> 1/3 each. Log-softmax is the log of those. */
    float xd[6] = {0, 5, logf(2), 5, logf(3), 5};
    tsr_tensor x = tsr_tensor_view(xd, TSR_DTYPE_F32, 3, TSR_SHAPE(1, 3, 2));
    float p[6] = {1 / 6.f, 1 / 3.f, 2 / 6.f, 1 / 3.f, 3 / 6.f, 1 / 3.f}, logp[6];
    for (int i = 0; i < 6; i++) logp[i] = logf(p[i]);
    for (int backend = 0; backend < 2; backend++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = (tsr_backend)backend});
        tsr_test_allclose_f32(tsr_f32(tsr_softmax(ctx, &x, 1)), p, 6, 1e-6, 1e-7, "softmax");
        tsr_test_allclose_f32(tsr_f32(tsr_log_softmax(ctx, &x, -2)), logp, 6, 1e-6, 1e-7,
                              "log_softmax");
        tsr_ctx_free(ctx);
    }
}

Test(softmax, stays_finite_for_large_logits_on_both_backends)
{
    float xd[3] = {1000, 1000, -1000};
    tsr_tensor x = tsr_tensor_view(xd, TSR_DTYPE_F32, 2, TSR_SHAPE(1, 3));
    for (int backend = 0; backend < 2; backend++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = (tsr_backend)backend});
        tsr_test_allclose_f32(tsr_f32(tsr_softmax(ctx, &x, 1)), (float[]){0.5f, 0.5f, 0}, 3,
                              1e-6, 1e-30, "softmax of large logits");
        tsr_test_allclose_f32(tsr_f32(tsr_log_softmax(ctx, &x, 1)),
                              (float[]){-logf(2), -logf(2), -2000 - logf(2)}, 3, 1e-5, 0,
                              "log_softmax of large logits");
        tsr_ctx_free(ctx);
    }
}

/* Soft MoE routing logits (32, 121, 124): combine weights are a softmax over
 * the slots (axis 2), dispatch weights over the tokens (axis 1). Training's
 * backward uses oneDNN only where its implementation is not "ref"
 * (src/ops_norm.c): on an AVX2-only CPU with oneDNN 2.6 that is none of the
 * softmaxes below. The parity check runs TSR_BACKEND_DNNL_ALL, which takes
 * oneDNN's backward anyway, so its path is compared on every CPU. */
static void softmax_parity(int axis, bool log_softmax)
{
    axis_case c = {axis, log_softmax};
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 124), -4, 4, 20 + axis);
    char what[96];
    snprintf(what, sizeof what, "%s over axis %d of (32, 121, 124)",
             log_softmax ? "log_softmax" : "softmax", axis);
    tsr_test_check_parity(softmax_forward, &x, 1, &c, what);
    tsr_tensor_free(x);
}

/* oneDNN's verbose log (stdout, sent to a file) of one softmax forward and
 * backward over the Soft MoE's tokens on `backend`. Nothing is asserted
 * while stdout is redirected. */
static char *softmax_primitive_log(tsr_backend backend)
{
    axis_case c = {1, false};
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 124), -4, 4, 21);
    char path[] = "/tmp/tsr_dnnl_verbose_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    cr_assert_geq(saved, 0);
    bool redirected = dup2(fd, STDOUT_FILENO) >= 0;
    dnnl_status_t verbose = redirected ? dnnl_set_verbose(1) : dnnl_success;
    tsr_test_run_result r = {0};
    if (redirected && verbose == dnnl_success)
        r = tsr_test_run_op(backend, softmax_forward, &x, 1, &c);
    fflush(stdout);
    dnnl_set_verbose(0);
    bool restored = dup2(saved, STDOUT_FILENO) >= 0;
    close(saved);
    close(fd);
    cr_assert(redirected && restored, "cannot redirect stdout");
    cr_assert_eq(verbose, dnnl_success);
    char *log = tsr_test_slurp(path, NULL);
    unlink(path);
    cr_assert_not_null(log);
    tsr_test_free_result(&r);
    tsr_tensor_free(x);
    return log;
}

/* Whether one line of the log holds both strings. */
static bool log_line_holds(const char *log, const char *a, const char *b)
{
    for (const char *line = log; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), line);
        if (strstr(buf, a) && strstr(buf, b)) return true;
        line += n + (end != NULL);
    }
    return false;
}

/* The parity checks' backend really runs oneDNN's softmax backward, also on
 * a CPU where training's DNNL backend passes it over for the C kernel; the
 * reference backend runs no oneDNN softmax at all. */
Test(softmax, dnnl_all_backend_executes_onednns_backward)
{
    char *all = softmax_primitive_log(TSR_BACKEND_DNNL_ALL);
    cr_expect(log_line_holds(all, ",exec,cpu,softmax", ",backward_data,"), "verbose log: %s",
              all);
    free(all);
    char *ref = softmax_primitive_log(TSR_BACKEND_REFERENCE);
    cr_expect_null(strstr(ref, "softmax"), "verbose log: %s", ref);
    free(ref);
}

/* What training runs (DNNL: oneDNN's backward only where it is not "ref",
 * else the C kernel) against the reference, on the dispatch softmax. */
Test(softmax, training_backend_matches_reference_over_soft_moe_tokens)
{
    axis_case c = {1, false};
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 121, 124), -4, 4, 22);
    tsr_test_check_parity_on(TSR_BACKEND_DNNL, softmax_forward, &x, 1, &c,
                             "softmax over axis 1 on the DNNL backend");
    tsr_tensor_free(x);
}

Test(softmax, onednn_matches_reference_over_soft_moe_tokens)
{
    softmax_parity(1, false);
}

Test(softmax, onednn_matches_reference_over_soft_moe_slots)
{
    softmax_parity(2, false);
}

Test(log_softmax, onednn_matches_reference_over_soft_moe_tokens_and_slots)
{
    softmax_parity(1, true);
    softmax_parity(2, true);
}

Test(log_softmax, onednn_matches_reference_on_c51_atoms)
{
    /* C51 head: (32, 6 actions, 51 atoms) over the atoms. */
    axis_case c = {-1, true};
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 3, TSR_SHAPE(32, 6, 51), -4, 4, 30);
    tsr_test_check_parity(softmax_forward, &x, 1, &c, "log_softmax over C51 atoms");
    tsr_tensor_free(x);
}

static tsr_tensor *softmax_twice(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_add(ctx, tsr_softmax(ctx, in[0], 1), tsr_log_softmax(ctx, in[0], 0));
}

Test(softmax, second_use_in_a_step_accumulates_on_both_backends)
{
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(16, 24), -3, 3, 40);
    tsr_test_check_parity(softmax_twice, &x, 1, NULL, "softmax then log_softmax of one input");
    tsr_tensor_free(x);
    tsr_tensor *x64 = new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 4), -3, 3, 41);
    tsr_test_gradcheck(softmax_twice, &x64, 1, NULL, NULL, "softmax then log_softmax");
    tsr_tensor_free(x64);
}

/* ---- layer norm ---- */

typedef struct layer_norm_case {
    bool gamma, beta;
    double eps;
} layer_norm_case;

static tsr_tensor *layer_norm_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const layer_norm_case *c = user;
    return tsr_layer_norm(ctx, in[0], c->gamma ? in[1] : NULL, c->beta ? in[2] : NULL, c->eps);
}

static void gradcheck_layer_norm(bool gamma, bool beta)
{
    layer_norm_case c = {gamma, beta, 1e-5};
    tsr_tensor *in[3] = {
        new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 6), -2, 2, 50),
        new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(6), 0.5, 1.5, 51),
        new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(6), -1, 1, 52),
    };
    in[1]->requires_grad = gamma;
    in[2]->requires_grad = beta;
    char what[64];
    snprintf(what, sizeof what, "layer_norm (gamma %d, beta %d)", gamma, beta);
    tsr_test_gradcheck(layer_norm_forward, in, 3, &c, NULL, what);
    for (int i = 0; i < 3; i++) tsr_tensor_free(in[i]);
}

Test(layer_norm, backward_matches_finite_differences_with_gamma_and_beta)
{
    gradcheck_layer_norm(true, true);
}

Test(layer_norm, backward_matches_finite_differences_with_gamma_only)
{
    gradcheck_layer_norm(true, false);
}

Test(layer_norm, backward_matches_finite_differences_with_beta_only)
{
    gradcheck_layer_norm(false, true);
}

Test(layer_norm, backward_matches_finite_differences_without_gamma_or_beta)
{
    gradcheck_layer_norm(false, false);
}

Test(layer_norm, computes_hand_worked_values_on_both_backends)
{
    /* x = [1, 2, 3, 4]: mean 2.5, variance 1.25; eps 0.75 makes the
     * denominator sqrt(2) = 1.41421356. gamma = [1, 2, 1, 1], beta = [0, 0, 0, 10]. */
    float xd[4] = {1, 2, 3, 4}, gd[4] = {1, 2, 1, 1}, bd[4] = {0, 0, 0, 10};
    tsr_tensor x = tsr_tensor_view(xd, TSR_DTYPE_F32, 2, TSR_SHAPE(1, 4));
    tsr_tensor g = tsr_tensor_view(gd, TSR_DTYPE_F32, 1, TSR_SHAPE(4));
    tsr_tensor b = tsr_tensor_view(bd, TSR_DTYPE_F32, 1, TSR_SHAPE(4));
    const float r = 1 / sqrtf(2.f);
    float plain[4] = {-1.5f * r, -0.5f * r, 0.5f * r, 1.5f * r};
    float affine[4] = {-1.5f * r, -1.0f * r, 0.5f * r, 1.5f * r + 10};
    for (int backend = 0; backend < 2; backend++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = (tsr_backend)backend});
        tsr_test_allclose_f32(tsr_f32(tsr_layer_norm(ctx, &x, NULL, NULL, 0.75)), plain, 4, 1e-6,
                              1e-6, "layer_norm");
        tsr_test_allclose_f32(tsr_f32(tsr_layer_norm(ctx, &x, &g, &b, 0.75)), affine, 4, 1e-6,
                              1e-6, "layer_norm with gamma and beta");
        tsr_ctx_free(ctx);
    }
}

static void layer_norm_parity(bool gamma, bool beta)
{
    layer_norm_case c = {gamma, beta, 1e-6};
    tsr_tensor *in[3] = {
        new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 512), -3, 5, 60),
        new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(512), 0.5, 1.5, 61),
        new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(512), -1, 1, 62),
    };
    in[1]->requires_grad = gamma;
    in[2]->requires_grad = beta;
    char what[96];
    snprintf(what, sizeof what, "layer_norm (32, 512) gamma %d beta %d", gamma, beta);
    tsr_test_check_parity(layer_norm_forward, in, 3, &c, what);
    for (int i = 0; i < 3; i++) tsr_tensor_free(in[i]);
}

Test(layer_norm, onednn_matches_reference_over_512_features)
{
    layer_norm_parity(true, true);
    layer_norm_parity(false, false);
    layer_norm_parity(true, false);
    layer_norm_parity(false, true);
}

static tsr_tensor *layer_norm_twice(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    tsr_tensor *a = tsr_layer_norm(ctx, in[0], in[1], in[2], 1e-5);
    tsr_tensor *b = tsr_layer_norm(ctx, in[3], in[1], in[2], 1e-5);
    return tsr_add(ctx, a, tsr_layer_norm(ctx, b, in[1], NULL, 1e-5));
}

Test(layer_norm, second_use_in_a_step_accumulates_on_both_backends)
{
    tsr_tensor *in[4] = {
        new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 64), -2, 2, 70),
        new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(64), 0.5, 1.5, 71),
        new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(64), -1, 1, 72),
        new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(32, 64), -2, 2, 73),
    };
    tsr_test_check_parity(layer_norm_twice, in, 4, NULL, "layer_norm with shared gamma and beta");
    for (int i = 0; i < 4; i++) tsr_tensor_free(in[i]);
    tsr_tensor *in64[4] = {
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 5), -2, 2, 74),
        new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(5), 0.5, 1.5, 75),
        new_uniform(TSR_DTYPE_F64, 1, TSR_SHAPE(5), -1, 1, 76),
        new_uniform(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 5), -2, 2, 77),
    };
    tsr_test_gradcheck(layer_norm_twice, in64, 4, NULL, NULL, "layer_norm with shared parameters");
    for (int i = 0; i < 4; i++) tsr_tensor_free(in64[i]);
}

Test(layer_norm, records_nothing_without_grad_and_matches_the_training_pass)
{
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = new_uniform(TSR_DTYPE_F32, 2, TSR_SHAPE(4, 32), -2, 2, 80);
    tsr_tensor *g = new_uniform(TSR_DTYPE_F32, 1, TSR_SHAPE(32), 0.5, 1.5, 81);
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *y = tsr_layer_norm(ctx, x, g, NULL, 1e-5);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 0);
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *z = tsr_layer_norm(ctx, x, g, NULL, 1e-5);
    cr_expect_eq(tsr_ctx_tape_length(ctx), 1);
    tsr_test_allclose(y, z, 1e-6, 1e-6, "inference and training layer norm");
    tsr_tensor_free(x);
    tsr_tensor_free(g);
    tsr_ctx_free(ctx);
}

/* ---- L2 normalisation ---- */

typedef struct l2_case {
    int axis;
    double eps;
} l2_case;

static tsr_tensor *l2_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const l2_case *c = user;
    return tsr_l2_normalize(ctx, in[0], c->axis, c->eps);
}

Test(l2_normalize, backward_matches_finite_differences_over_first_middle_and_last_axes)
{
    const int axes[4] = {0, 1, 2, -1};
    const double eps[2] = {0, 1e-2};
    for (int i = 0; i < 4; i++) {
        for (int e = 0; e < 2; e++) {
            l2_case c = {axes[i], eps[e]};
            tsr_tensor *x = new_uniform(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 4, 5), -1, 1, 90 + i);
            char what[64];
            snprintf(what, sizeof what, "l2_normalize over axis %d, eps %g", axes[i], eps[e]);
            tsr_test_gradcheck(l2_forward, &x, 1, &c, NULL, what);
            tsr_tensor_free(x);
        }
    }
}

Test(l2_normalize, computes_hand_worked_values_and_keeps_zero_vectors_finite)
{
    /* Rows [3, 4] -> [0.6, 0.8]; with eps 1 -> [0.5, 2/3]; [0, 0] -> [0, 0],
     * also with eps 0 (not 0 / 0). */
    float xd[6] = {3, 4, 0, 0, 3, 4};
    tsr_tensor x = tsr_tensor_view(xd, TSR_DTYPE_F32, 2, TSR_SHAPE(3, 2));
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_test_allclose_f32(tsr_f32(tsr_l2_normalize(ctx, &x, 1, 0)),
                          (float[]){0.6f, 0.8f, 0, 0, 0.6f, 0.8f}, 6, 1e-6, 0, "l2 eps 0");
    tsr_test_allclose_f32(tsr_f32(tsr_l2_normalize(ctx, &x, 1, 1)),
                          (float[]){0.5f, 2 / 3.f, 0, 0, 0.5f, 2 / 3.f}, 6, 1e-6, 0, "l2 eps 1");
    /* Over the rows (axis 0): column norms are sqrt(18) and sqrt(32). */
    float c0 = 3 / sqrtf(18), c1 = 4 / sqrtf(32);
    tsr_test_allclose_f32(tsr_f32(tsr_l2_normalize(ctx, &x, 0, 0)),
                          (float[]){c0, c1, 0, 0, c0, c1}, 6, 1e-6, 0, "l2 over axis 0");

    /* The gradient at a zero row is finite: dy / eps. */
    double zd[2] = {0, 0}, ones[2] = {1, 1};
    tsr_tensor z = tsr_tensor_view(zd, TSR_DTYPE_F64, 2, TSR_SHAPE(1, 2));
    tsr_tensor dy = tsr_tensor_view(ones, TSR_DTYPE_F64, 2, TSR_SHAPE(1, 2));
    tsr_grad_reset(&z, true);
    tsr_ctx_begin_step(ctx);
    tsr_backward_from(ctx, tsr_l2_normalize(ctx, &z, 1, 0.5), &dy);
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, &z)), (double[]){2, 2}, 2, 1e-12, 0,
                          "gradient at zero");
    tsr_ctx_free(ctx);
}
