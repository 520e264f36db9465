/* Value losses: config, support, the three projections, the loss ops and the
 * TD loss that switches between them. */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* ---- helpers ---- */

static tsr_support make_support(tsr_value_loss_kind kind, int64_t k, double vmin, double vmax)
{
    tsr_value_loss_config cfg = tsr_value_loss_config_defaults();
    cfg.kind = kind;
    cfg.num_bins = k;
    cfg.vmin = vmin;
    cfg.vmax = vmax;
    tsr_support s;
    tsr_error err = {0};
    cr_assert_eq(tsr_support_init(&s, &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    return s;
}

static tsr_tensor *vec_f64(const double *values, int64_t n)
{
    tsr_tensor *t = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(n));
    memcpy(t->data, values, (size_t)n * sizeof(double));
    return t;
}

static tsr_tensor *mat_f64(const double *values, int64_t rows, int64_t cols)
{
    tsr_tensor *t = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(rows, cols));
    memcpy(t->data, values, (size_t)(rows * cols) * sizeof(double));
    return t;
}

static tsr_ctx *new_ctx(void) { return tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 20}); }

/* A heap copy of an arena tensor (valid after the next begin_step). */
static tsr_tensor *keep(const tsr_tensor *t)
{
    tsr_tensor *c = tsr_tensor_new(t->dtype, t->ndim, t->shape);
    tsr_tensor_copy(c, t);
    return c;
}

static void expect_rows_sum_to_one(const tsr_tensor *t, double tol, const char *what)
{
    int64_t n = t->shape[0], k = t->shape[1];
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int64_t j = 0; j < k; j++) {
            double v = tsr_tensor_get(t, TSR_SHAPE(i, j));
            cr_expect(isfinite(v) && v >= -1e-7, "%s: row %lld entry %lld = %g", what,
                      (long long)i, (long long)j, v);
            sum += v;
        }
        cr_expect(fabs(sum - 1.0) <= tol, "%s: row %lld sums to %.17g", what, (long long)i, sum);
    }
}

/* ---- configuration and support ---- */

Test(value_loss_config, defaults_are_51_bins_over_plus_minus_10_with_sigma_ratio_0_75)
{
    tsr_value_loss_config cfg = tsr_value_loss_config_defaults();
    cr_expect_eq(cfg.kind, TSR_VALUE_LOSS_MSE);
    cr_expect_eq(cfg.num_bins, 51);
    cr_expect_eq(cfg.vmin, -10.0);
    cr_expect_eq(cfg.vmax, 10.0);
    cr_expect_eq(cfg.sigma_ratio, 0.75);
    cr_expect_eq(cfg.huber_delta, 1.0);
    cr_expect_eq(tsr_value_loss_config_validate(&cfg, NULL), TSR_STATUS_OK);
}

static void expect_rejected(tsr_value_loss_config cfg, const char *key)
{
    tsr_error err = {0};
    cr_expect_eq(tsr_value_loss_config_validate(&cfg, &err), TSR_STATUS_INVALID_ARGUMENT,
                 "%s was accepted", key);
    cr_expect(strstr(err.message, key) != NULL, "message \"%s\" does not name %s", err.message,
              key);
    tsr_support s;
    cr_expect_eq(tsr_support_init(&s, &cfg, NULL), TSR_STATUS_INVALID_ARGUMENT);
    tsr_support_fini(&s);
}

Test(value_loss_config, bad_values_are_rejected_with_the_key_named)
{
    tsr_value_loss_config base = tsr_value_loss_config_defaults();
    tsr_value_loss_config cfg = base;
    cfg.num_bins = 1;
    expect_rejected(cfg, "num_bins");
    cfg = base;
    cfg.vmin = 10;
    expect_rejected(cfg, "vmin");
    cfg = base;
    cfg.vmax = NAN;
    expect_rejected(cfg, "vmax");
    cfg = base;
    cfg.sigma_ratio = 0;
    expect_rejected(cfg, "sigma_ratio");
    cfg = base;
    cfg.huber_delta = -1;
    expect_rejected(cfg, "huber_delta");
    cfg = base;
    cfg.kind = (tsr_value_loss_kind)9;
    expect_rejected(cfg, "kind");
}

Test(value_loss_config, kind_names_parse_and_an_unknown_one_lists_the_valid_names)
{
    static const char *const names[] = {"mse", "huber", "c51", "twohot", "hlgauss"};
    for (int i = 0; i < 5; i++) {
        tsr_value_loss_kind kind = TSR_VALUE_LOSS_MSE;
        cr_expect_eq(tsr_value_loss_kind_parse(names[i], &kind, NULL), TSR_STATUS_OK);
        cr_expect_eq((int)kind, i);
        cr_expect_str_eq(tsr_value_loss_kind_name(kind), names[i]);
        cr_expect_str_eq(tsr_value_loss_kind_names[i], names[i]);
    }
    cr_expect_null(tsr_value_loss_kind_names[5]);
    tsr_error err = {0};
    tsr_value_loss_kind kind;
    cr_expect_eq(tsr_value_loss_kind_parse("hl-gauss", &kind, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "hl-gauss") && strstr(err.message, "hlgauss") &&
                  strstr(err.message, "twohot") && strstr(err.message, "mse"),
              "%s", err.message);
}

Test(support, c51_atoms_are_linspace_with_endpoints)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_C51, 51, -10, 10);
    cr_expect_eq(s.num_values, 51);
    cr_expect_eq(tsr_support_head_width(&s), 51);
    cr_expect_eq(s.values[0], -10.0);
    cr_expect_eq(s.values[50], 10.0);
    cr_expect(fabs(s.values[25]) < 1e-12);
    cr_expect(fabs(s.values[1] - -9.6) < 1e-12);
    cr_expect(fabs(s.spacing - 0.4) < 1e-15);
    cr_expect_null(s.edges);
    tsr_support_fini(&s);
}

Test(support, hlgauss_has_bin_edges_centres_and_sigma_from_the_width)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_HLGAUSS, 51, -10, 10);
    double width = 20.0 / 51.0;
    cr_expect(fabs(s.spacing - width) < 1e-15);
    cr_expect(fabs(s.sigma - 0.75 * width) < 1e-15);
    cr_expect_eq(s.edges[0], -10.0);
    cr_expect_eq(s.edges[51], 10.0);
    cr_expect(fabs(s.values[0] - (-10.0 + width / 2)) < 1e-12);
    cr_expect(fabs(s.values[25]) < 1e-12, "the middle bin is centred on 0: %g", s.values[25]);
    for (int i = 0; i < 51; i++)
        cr_expect(fabs(s.values[i] - 0.5 * (s.edges[i] + s.edges[i + 1])) < 1e-14);
    tsr_support_fini(&s);
}

Test(support, scalar_losses_have_no_support_and_one_output_per_action)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_HUBER, 51, -10, 10);
    cr_expect_eq(tsr_support_head_width(&s), 1);
    cr_expect_not(tsr_support_is_categorical(&s));
    cr_expect_null(s.values);
    cr_expect_eq(s.huber_delta, 1.0);
    tsr_support_fini(&s);
}

/* ---- projections ---- */

/* Atoms -2, -1, 0, 1, 2 (dz = 1). */
Test(c51_projection, matches_hand_computed_masses)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_C51, 5, -2, 2);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    const double p[] = {0.1, 0.2, 0.3, 0.25, 0.15};
    double probs_v[4 * 5];
    for (int r = 0; r < 4; r++) memcpy(probs_v + 5 * r, p, sizeof p);
    tsr_tensor *probs = mat_f64(probs_v, 4, 5);
    /* Row 0: T = 0.5 + 0.5 z = (-0.5, 0, 0.5, 1, 1.5), each split between its
     *        two neighbours. Row 1: terminal, every T_j = 0.5.
     * Row 2: T = 3 + z clipped to (1, 2, 2, 2, 2). Row 3: T = -10 -> all on -2. */
    tsr_tensor *rewards = vec_f64((double[]){0.5, 0.5, 3.0, -10.0}, 4);
    tsr_tensor *dones = tsr_tensor_new(TSR_DTYPE_U8, 1, TSR_SHAPE(4));
    tsr_u8(dones)[1] = 1;
    /* gamma_n 0.5 for rows 0, 1; rows 2 and 3 need gamma 1 and are run separately. */
    tsr_tensor *m = tsr_c51_project(ctx, &s, probs, rewards, dones, 0.5);
    const double want01[] = {0,   0.05, 0.4, 0.475, 0.075, /* row 0 */
                             0,   0,    0.5, 0.5,   0};    /* row 1 */
    tsr_test_allclose_f64(tsr_f64(m), want01, 10, 0, 1e-15, "c51 rows 0-1");
    m = tsr_c51_project(ctx, &s, probs, rewards, dones, 1.0);
    const double want23[] = {0, 0, 0, 0.1, 0.9, /* row 2 */
                             1, 0, 0, 0,   0};  /* row 3 */
    tsr_test_allclose_f64(tsr_f64(m) + 10, want23, 10, 0, 1e-15, "c51 rows 2-3");
    tsr_tensor_free(probs);
    tsr_tensor_free(rewards);
    tsr_tensor_free(dones);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

static void check_mass_conservation(tsr_dtype dtype, double tol)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_C51, 51, -10, 10);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    int64_t n = 64;
    tsr_tensor *logits = tsr_tensor_new(dtype, 2, TSR_SHAPE(n, 51));
    tsr_test_fill_uniform(logits, -3, 3, 11);
    tsr_tensor *probs = tsr_softmax(ctx, logits, -1);
    tsr_tensor *rewards = tsr_tensor_new(dtype, 1, TSR_SHAPE(n));
    tsr_test_fill_uniform(rewards, -15, 15, 12); /* many targets fall outside [vmin, vmax] */
    tsr_tensor *dones = tsr_tensor_new(dtype, 1, TSR_SHAPE(n));
    for (int64_t i = 0; i < n; i++) tsr_tensor_set(dones, TSR_SHAPE(i), i % 5 == 0);
    tsr_tensor *m = tsr_c51_project(ctx, &s, probs, rewards, dones, 0.99 * 0.99 * 0.99);
    expect_rows_sum_to_one(m, tol, "c51 projection");
    tsr_tensor_free(logits);
    tsr_tensor_free(rewards);
    tsr_tensor_free(dones);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

Test(c51_projection, conserves_mass_in_double) { check_mass_conservation(TSR_DTYPE_F64, 1e-12); }
Test(c51_projection, conserves_mass_in_float) { check_mass_conservation(TSR_DTYPE_F32, 1e-5); }

Test(twohot, matches_hand_computed_values)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_TWOHOT, 5, -2, 2);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = vec_f64((double[]){0.25, -2, 2, 7, -1, -1.6}, 6);
    tsr_tensor *t = tsr_twohot_target(ctx, &s, y);
    const double want[] = {
        0,   0,   0.75, 0.25, 0, /* 0.25 between 0 and 1 */
        1,   0,   0,    0,    0, /* on the lowest atom */
        0,   0,   0,    0,    1, /* on the highest atom */
        0,   0,   0,    0,    1, /* clipped to 2 */
        0,   1,   0,    0,    0, /* exactly on an atom */
        0.6, 0.4, 0,    0,    0, /* -1.6 = 0.6 * -2 + 0.4 * -1 */
    };
    tsr_test_allclose_f64(tsr_f64(t), want, 30, 0, 1e-15, "two-hot");
    tsr_tensor_free(y);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

/* A diverged target network gives a NaN target: its row is NaN (and so the
 * loss), with no index computed from it; the other rows are untouched. The
 * sanitizer build catches the float-to-integer conversion of a NaN. */
Test(twohot, a_nan_target_gives_a_nan_row)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_TWOHOT, 5, -2, 2);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = vec_f64((double[]){NAN, 0.25}, 2);
    tsr_tensor *t = tsr_twohot_target(ctx, &s, y);
    for (int i = 0; i < 5; i++) cr_expect(isnan(tsr_f64(t)[i]), "atom %d: %g", i, tsr_f64(t)[i]);
    const double want[] = {0, 0, 0.75, 0.25, 0};
    tsr_test_allclose_f64(tsr_f64(t) + 5, want, 5, 0, 1e-15, "the finite row");
    tsr_tensor_free(y);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

Test(twohot, is_the_c51_projection_of_a_point_mass)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_TWOHOT, 51, -10, 10);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    int64_t n = 40;
    tsr_tensor *y = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(n));
    tsr_test_fill_uniform(y, -12, 12, 5);
    /* A point mass: any distribution with gamma_n 0 puts all its mass at r. */
    tsr_tensor *probs = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(n, 51));
    tsr_test_fill_uniform(probs, 0, 1, 6);
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int j = 0; j < 51; j++) sum += tsr_f64(probs)[i * 51 + j];
        for (int j = 0; j < 51; j++) tsr_f64(probs)[i * 51 + j] /= sum;
    }
    tsr_tensor *dones = tsr_tensor_new(TSR_DTYPE_U8, 1, TSR_SHAPE(n));
    tsr_tensor *c51 = tsr_c51_project(ctx, &s, probs, y, dones, 0.0);
    tsr_tensor *twohot = tsr_twohot_target(ctx, &s, y);
    tsr_test_allclose(twohot, c51, 0, 1e-14, "two-hot vs c51 of a point mass");
    expect_rows_sum_to_one(twohot, 1e-14, "two-hot");
    tsr_tensor_free(y);
    tsr_tensor_free(probs);
    tsr_tensor_free(dones);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

/* 4 bins over [0, 4], sigma = 0.75, y = 1.3; values from Python's math.erf. */
Test(hlgauss, matches_hand_computed_bin_masses)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_HLGAUSS, 4, 0, 4);
    cr_assert(fabs(s.sigma - 0.75) < 1e-15);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    tsr_tensor *y = vec_f64((double[]){1.3}, 1);
    tsr_tensor *t = tsr_hlgauss_target(ctx, &s, y);
    const double want[] = {0.3162400803443662, 0.5009771874601288, 0.17073440042676485,
                           0.01204833176874014};
    tsr_test_allclose_f64(tsr_f64(t), want, 4, 1e-13, 0, "hl-gauss");
    tsr_tensor_free(y);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

Test(hlgauss, targets_sum_to_one_and_their_mean_is_y_inside_the_support)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_HLGAUSS, 51, -10, 10);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    /* At least 1 (3.4 sigma) from the edges: nearer, the target is a truncated
     * Gaussian whose mean moves inwards (by 0.92 sigma on the edge itself). */
    int64_t n = 181;
    tsr_tensor *y = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(n));
    for (int64_t i = 0; i < n; i++) tsr_f64(y)[i] = -9.0 + 0.1 * (double)i;
    tsr_tensor *t = tsr_hlgauss_target(ctx, &s, y);
    expect_rows_sum_to_one(t, 1e-12, "hl-gauss");
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double mean = 0;
        for (int j = 0; j < 51; j++) mean += tsr_f64(t)[i * 51 + j] * s.values[j];
        worst = fmax(worst, fabs(mean - tsr_f64(y)[i]));
    }
    cr_expect(worst < 5e-4, "worst |mean - y| = %g", worst);
    tsr_tensor_free(y);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);
}

Test(hlgauss, targets_far_outside_the_support_are_finite_and_clipped)
{
    for (int f32 = 0; f32 < 2; f32++) {
        tsr_dtype dtype = f32 ? TSR_DTYPE_F32 : TSR_DTYPE_F64;
        tsr_support s = make_support(TSR_VALUE_LOSS_HLGAUSS, 51, -10, 10);
        tsr_ctx *ctx = new_ctx();
        tsr_ctx_begin_step(ctx);
        tsr_tensor *y = tsr_tensor_new(dtype, 1, TSR_SHAPE(4));
        const double ys[] = {1e6, -1e6, 10, -10};
        for (int i = 0; i < 4; i++) tsr_tensor_set(y, TSR_SHAPE(i), ys[i]);
        tsr_tensor *t = tsr_hlgauss_target(ctx, &s, y);
        expect_rows_sum_to_one(t, f32 ? 1e-5 : 1e-12, "hl-gauss at +-1e6");
        for (int j = 0; j < 51; j++) {
            cr_expect_eq(tsr_tensor_get(t, TSR_SHAPE(0, j)), tsr_tensor_get(t, TSR_SHAPE(2, j)));
            cr_expect_eq(tsr_tensor_get(t, TSR_SHAPE(1, j)), tsr_tensor_get(t, TSR_SHAPE(3, j)));
        }
        cr_expect(tsr_tensor_get(t, TSR_SHAPE(0, 50)) > 0.4, "most mass in the top bin");
        tsr_tensor_free(y);
        tsr_ctx_free(ctx);
        tsr_support_fini(&s);
    }
}

/* ---- loss ops: hand values ---- */

Test(cross_entropy, matches_hand_computed_loss_and_gradient)
{
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    /* softmax(0, ln 2, ln 3) = (1, 2, 3) / 6 */
    tsr_tensor *logits = mat_f64((double[]){0, log(2.0), log(3.0)}, 1, 3);
    tsr_tensor *target = mat_f64((double[]){0.5, 0.5, 0}, 1, 3);
    tsr_grad_reset(logits, true);
    tsr_tensor *loss = tsr_categorical_cross_entropy(ctx, logits, target);
    double want = 0.5 * log(6.0) + 0.5 * log(3.0);
    cr_expect(fabs(tsr_f64(loss)[0] - want) < 1e-14, "loss %.17g, want %.17g", tsr_f64(loss)[0],
              want);
    tsr_backward(ctx, loss);
    const double dwant[] = {1.0 / 6 - 0.5, 2.0 / 6 - 0.5, 3.0 / 6};
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, logits)), dwant, 3, 0, 1e-15,
                          "softmax - target");
    tsr_tensor_free(logits);
    tsr_tensor_free(target);
    tsr_ctx_free(ctx);
}

Test(scalar_losses, mse_and_huber_match_dopamine_and_their_gradients)
{
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    tsr_tensor *q = vec_f64((double[]){1, 2, 0, -3}, 4);
    tsr_tensor *y = vec_f64((double[]){0.5, 4, 0, -1}, 4);
    tsr_grad_reset(q, true);
    tsr_tensor *mse = tsr_mse_loss(ctx, q, y);
    tsr_test_allclose_f64(tsr_f64(mse), (double[]){0.25, 4, 0, 4}, 4, 0, 1e-15, "mse (y - q)^2");
    tsr_backward(ctx, tsr_sum_all(ctx, mse));
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, q)), (double[]){1, -4, 0, -4}, 4, 0, 1e-15,
                          "mse gradient 2 (q - y)");
    tsr_ctx_begin_step(ctx);
    tsr_grad_reset(q, true);
    tsr_tensor *huber = tsr_huber_loss(ctx, q, y, 1.0);
    /* x = 0.5: x^2/2; x = 2: 1/2 + (2 - 1) */
    tsr_test_allclose_f64(tsr_f64(huber), (double[]){0.125, 1.5, 0, 1.5}, 4, 0, 1e-15, "huber");
    tsr_backward(ctx, tsr_sum_all(ctx, huber));
    tsr_test_allclose_f64(tsr_f64(tsr_grad_get(ctx, q)), (double[]){0.5, -1, 0, -1}, 4, 0, 1e-15,
                          "huber gradient clip(q - y, -1, 1)");
    tsr_ctx_begin_step(ctx);
    tsr_tensor *wide = tsr_huber_loss(ctx, q, y, 3.0); /* delta 3: all quadratic */
    tsr_test_allclose_f64(tsr_f64(wide), (double[]){0.125, 2, 0, 2}, 4, 0, 1e-15, "huber delta 3");
    tsr_tensor_free(q);
    tsr_tensor_free(y);
    tsr_ctx_free(ctx);
}

Test(readout, is_the_expected_value_over_the_support)
{
    tsr_support s = make_support(TSR_VALUE_LOSS_C51, 5, -2, 2);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    /* (N, A, K) = (1, 2, 5): uniform -> 0; softmax(0, ln 2, ln 3, ln 4, 0) -> sum p z */
    double l[] = {0, 0, 0, 0, 0, 0, log(2.0), log(3.0), log(4.0), 0};
    tsr_tensor *logits = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(1, 2, 5));
    memcpy(logits->data, l, sizeof l);
    tsr_tensor *q = tsr_value_q(ctx, &s, logits);
    cr_assert(q->ndim == 2 && q->shape[0] == 1 && q->shape[1] == 2);
    double want = (-2 * 1 + -1 * 2 + 0 * 3 + 1 * 4 + 2 * 1) / 11.0;
    tsr_test_allclose_f64(tsr_f64(q), (double[]){0, want}, 2, 0, 1e-15, "readout");
    tsr_tensor_free(logits);
    tsr_ctx_free(ctx);
    tsr_support_fini(&s);

    tsr_support h = make_support(TSR_VALUE_LOSS_HLGAUSS, 4, 0, 4);
    ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    tsr_tensor *one = mat_f64((double[]){0, 0, 0, 0}, 1, 4);
    tsr_tensor *v = tsr_value_readout(ctx, &h, one);
    cr_expect(fabs(tsr_f64(v)[0] - 2.0) < 1e-15, "mean of the bin centres 0.5..3.5: %g",
              tsr_f64(v)[0]);
    tsr_tensor_free(one);
    tsr_ctx_free(ctx);
    tsr_support_fini(&h);
}

/* ---- gradients by finite differences (double) ---- */

static tsr_tensor *xent_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_categorical_cross_entropy(ctx, in[0], in[1]);
}

Test(cross_entropy, gradient_matches_finite_differences)
{
    tsr_tensor *logits = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(6, 7));
    tsr_tensor *target = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(6, 7));
    tsr_test_fill_uniform(logits, -3, 3, 1);
    tsr_test_fill_uniform(target, 0, 1, 2); /* rows need not sum to 1: the exact gradient */
    logits->requires_grad = true;
    tsr_tensor *in[] = {logits, target};
    tsr_test_gradcheck(xent_forward, in, 2, NULL, NULL, "cross-entropy");
    tsr_tensor_free(logits);
    tsr_tensor_free(target);
}

static tsr_tensor *mse_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)user;
    return tsr_mse_loss(ctx, in[0], in[1]);
}

static tsr_tensor *huber_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return tsr_huber_loss(ctx, in[0], in[1], *(double *)user);
}

Test(scalar_losses, gradients_match_finite_differences)
{
    /* Differences from -3 to 3, none within the step of the kinks at +-delta. */
    tsr_tensor *q = vec_f64((double[]){-2.5, -1.2, -0.7, -0.1, 0.3, 0.9, 1.4, 2.9}, 8);
    tsr_tensor *y = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(8));
    tsr_test_fill_uniform(y, -0.05, 0.05, 3);
    q->requires_grad = true;
    tsr_tensor *in[] = {q, y};
    tsr_test_gradcheck(mse_forward, in, 2, NULL, NULL, "mse");
    double delta = 1.0;
    tsr_test_gradcheck(huber_forward, in, 2, &delta, NULL, "huber");
    delta = 0.5;
    tsr_test_gradcheck(huber_forward, in, 2, &delta, NULL, "huber delta 0.5");
    tsr_tensor_free(q);
    tsr_tensor_free(y);
}

static tsr_tensor *readout_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    return tsr_value_readout(ctx, user, in[0]);
}

Test(readout, gradient_matches_finite_differences)
{
    tsr_value_loss_kind kinds[] = {TSR_VALUE_LOSS_C51, TSR_VALUE_LOSS_HLGAUSS};
    for (int i = 0; i < 2; i++) {
        tsr_support s = make_support(kinds[i], 9, -3, 5);
        tsr_tensor *logits = tsr_tensor_new(TSR_DTYPE_F64, 3, TSR_SHAPE(3, 2, 9));
        tsr_test_fill_uniform(logits, -2, 2, 4);
        logits->requires_grad = true;
        tsr_test_gradcheck(readout_forward, &logits, 1, &s, NULL, "readout");
        tsr_tensor_free(logits);
        tsr_support_fini(&s);
    }
}

/* ---- the TD loss ---- */

typedef struct td_case {
    tsr_support support;
    tsr_tensor *next_target, *next_online, *rewards, *dones;
    double gamma_n;
    bool double_dqn;
} td_case;

static tsr_tensor *td_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    td_case *c = user;
    tsr_td_batch b = {.chosen = in[0],
                      .next_target = c->next_target,
                      .next_online = c->double_dqn ? c->next_online : NULL,
                      .rewards = c->rewards,
                      .dones = c->dones,
                      .gamma_n = c->gamma_n};
    return tsr_value_loss_td(ctx, &c->support, &b);
}

static void td_case_init(td_case *c, tsr_value_loss_kind kind, int64_t n, int64_t a)
{
    memset(c, 0, sizeof *c);
    c->support = make_support(kind, 11, -4, 4);
    int64_t w = tsr_support_head_width(&c->support);
    bool cat = tsr_support_is_categorical(&c->support);
    const int64_t *shape = cat ? TSR_SHAPE(n, a, w) : TSR_SHAPE(n, a);
    c->next_target = tsr_tensor_new(TSR_DTYPE_F64, cat ? 3 : 2, shape);
    c->next_online = tsr_tensor_new(TSR_DTYPE_F64, cat ? 3 : 2, shape);
    tsr_test_fill_uniform(c->next_target, -2, 2, 21);
    tsr_test_fill_uniform(c->next_online, -2, 2, 22);
    c->rewards = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(n));
    tsr_test_fill_uniform(c->rewards, -1, 1, 23);
    c->dones = tsr_tensor_new(TSR_DTYPE_U8, 1, TSR_SHAPE(n));
    tsr_u8(c->dones)[n - 1] = 1;
    c->gamma_n = 0.97;
}

static void td_case_fini(td_case *c)
{
    tsr_tensor_free(c->next_target);
    tsr_tensor_free(c->next_online);
    tsr_tensor_free(c->rewards);
    tsr_tensor_free(c->dones);
    tsr_support_fini(&c->support);
}

Test(value_loss_td, every_kind_matches_finite_differences)
{
    for (int kind = 0; kind < 5; kind++)
        for (int dbl = 0; dbl < 2; dbl++) {
            td_case c;
            td_case_init(&c, (tsr_value_loss_kind)kind, 5, 3);
            c.double_dqn = dbl;
            bool cat = tsr_support_is_categorical(&c.support);
            tsr_tensor *chosen = cat ? tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(5, 11))
                                     : tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(5));
            tsr_test_fill_uniform(chosen, -2, 2, 30 + kind);
            chosen->requires_grad = true;
            char what[64];
            snprintf(what, sizeof what, "td loss %s%s", tsr_value_loss_kind_names[kind],
                     dbl ? " (double)" : "");
            tsr_test_gradcheck(td_forward, &chosen, 1, &c, NULL, what);
            tsr_tensor_free(chosen);
            td_case_fini(&c);
        }
}

/* Two actions; the target net prefers action 1, the online net action 0. */
Test(value_loss_td, c51_projects_the_target_distribution_of_the_chosen_action)
{
    for (int dbl = 0; dbl < 2; dbl++) {
        td_case c;
        td_case_init(&c, TSR_VALUE_LOSS_C51, 2, 2);
        c.double_dqn = dbl;
        for (int64_t i = 0; i < 2; i++)
            for (int64_t j = 0; j < 11; j++) {
                double z = c.support.values[j];
                tsr_f64(c.next_target)[(i * 2 + 0) * 11 + j] = -0.3 * z;
                tsr_f64(c.next_target)[(i * 2 + 1) * 11 + j] = 0.3 * z;
                tsr_f64(c.next_online)[(i * 2 + 0) * 11 + j] = 0.5 * z;
                tsr_f64(c.next_online)[(i * 2 + 1) * 11 + j] = -0.5 * z;
            }
        tsr_tensor *chosen = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 11));
        tsr_test_fill_uniform(chosen, -1, 1, 40);
        tsr_ctx *ctx = new_ctx();
        tsr_ctx_begin_step(ctx);
        tsr_tensor *loss = keep(td_forward(ctx, &chosen, &c));
        /* The same by hand: softmax of the target logits at a* = 1 (or 0 with double DQN). */
        tsr_ctx_begin_step(ctx);
        int64_t star = dbl ? 0 : 1;
        tsr_tensor *rows = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(2, 11));
        for (int64_t i = 0; i < 2; i++)
            memcpy(tsr_f64(rows) + i * 11, tsr_f64(c.next_target) + (i * 2 + star) * 11,
                   11 * sizeof(double));
        tsr_tensor *p = tsr_softmax(ctx, rows, -1);
        tsr_tensor *m = tsr_c51_project(ctx, &c.support, p, c.rewards, c.dones, c.gamma_n);
        tsr_tensor *want = tsr_categorical_cross_entropy(ctx, chosen, m);
        tsr_test_allclose(loss, want, 0, 1e-14, dbl ? "c51 double" : "c51");
        tsr_tensor_free(rows);
        tsr_tensor_free(loss);
        tsr_tensor_free(chosen);
        tsr_ctx_free(ctx);
        td_case_fini(&c);
    }
}

Test(value_loss_td, scalar_kinds_bootstrap_from_the_target_q_of_the_chosen_action)
{
    td_case c;
    td_case_init(&c, TSR_VALUE_LOSS_MSE, 2, 3);
    double next_t[] = {1, 5, 2, /* */ 7, 0, 3};
    double next_o[] = {0, 1, 9, /* */ 4, 0, 0};
    memcpy(c.next_target->data, next_t, sizeof next_t);
    memcpy(c.next_online->data, next_o, sizeof next_o);
    double r[] = {0.5, -1};
    memcpy(c.rewards->data, r, sizeof r);
    tsr_tensor *chosen = vec_f64((double[]){1, 2}, 2);
    tsr_ctx *ctx = new_ctx();
    for (int dbl = 0; dbl < 2; dbl++) {
        c.double_dqn = dbl;
        tsr_ctx_begin_step(ctx);
        tsr_tensor *loss = td_forward(ctx, &chosen, &c);
        /* Row 1 is terminal (td_case_init): y = r. Row 0: y = 0.5 + 0.97 Q_t(a*),
         * a* = 1 (target's max 5) or 2 (online's max 9, Q_t = 2). */
        double y0 = 0.5 + 0.97 * (dbl ? 2.0 : 5.0), y1 = -1;
        double want[] = {(y0 - 1) * (y0 - 1), (y1 - 2) * (y1 - 2)};
        tsr_test_allclose_f64(tsr_f64(loss), want, 2, 1e-14, 0, dbl ? "mse double" : "mse");
    }
    tsr_tensor_free(chosen);
    tsr_ctx_free(ctx);
    td_case_fini(&c);
}

Test(value_loss_td, ties_between_actions_go_to_the_lowest_action)
{
    td_case c;
    td_case_init(&c, TSR_VALUE_LOSS_HUBER, 1, 3);
    memcpy(c.next_target->data, (double[]){1, 5, 2}, 3 * sizeof(double));
    memcpy(c.next_online->data, (double[]){9, 9, 0}, 3 * sizeof(double));
    tsr_u8(c.dones)[0] = 0;
    tsr_f64(c.rewards)[0] = 0;
    c.double_dqn = true;
    c.gamma_n = 1;
    tsr_tensor *chosen = vec_f64((double[]){1.25}, 1);
    tsr_ctx *ctx = new_ctx();
    tsr_ctx_begin_step(ctx);
    /* a* = 0 (not 1): y = Q_target(s', 0) = 1, |y - q| = 0.25 -> 0.25^2 / 2. */
    tsr_tensor *loss = td_forward(ctx, &chosen, &c);
    cr_expect(fabs(tsr_f64(loss)[0] - 0.03125) < 1e-15, "loss %g", tsr_f64(loss)[0]);
    tsr_tensor_free(chosen);
    tsr_ctx_free(ctx);
    td_case_fini(&c);
}

Test(value_loss_td, twohot_and_hlgauss_target_the_readout_of_the_target_network)
{
    tsr_value_loss_kind kinds[] = {TSR_VALUE_LOSS_TWOHOT, TSR_VALUE_LOSS_HLGAUSS};
    for (int k = 0; k < 2; k++) {
        td_case c;
        td_case_init(&c, kinds[k], 4, 3);
        tsr_tensor *chosen = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(4, 11));
        tsr_test_fill_uniform(chosen, -1, 1, 50);
        tsr_ctx *ctx = new_ctx();
        tsr_ctx_begin_step(ctx);
        tsr_tensor *loss = keep(td_forward(ctx, &chosen, &c));
        tsr_ctx_begin_step(ctx);
        tsr_tensor *q = tsr_value_q(ctx, &c.support, c.next_target);
        tsr_tensor *y = tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(4));
        for (int64_t i = 0; i < 4; i++) {
            double best = tsr_f64(q)[i * 3];
            for (int a = 1; a < 3; a++) best = fmax(best, tsr_f64(q)[i * 3 + a]);
            tsr_f64(y)[i] =
                tsr_f64(c.rewards)[i] + c.gamma_n * (1 - tsr_u8(c.dones)[i]) * best;
        }
        tsr_tensor *t = kinds[k] == TSR_VALUE_LOSS_TWOHOT ? tsr_twohot_target(ctx, &c.support, y)
                                                          : tsr_hlgauss_target(ctx, &c.support, y);
        tsr_tensor *want = tsr_categorical_cross_entropy(ctx, chosen, t);
        tsr_test_allclose(loss, want, 0, 1e-14, tsr_value_loss_kind_names[kinds[k]]);
        tsr_tensor_free(y);
        tsr_tensor_free(loss);
        tsr_tensor_free(chosen);
        tsr_ctx_free(ctx);
        td_case_fini(&c);
    }
}

Test(value_loss_td, float32_agrees_with_float64_and_records_one_entry_per_loss)
{
    for (int kind = 0; kind < 5; kind++) {
        td_case c;
        td_case_init(&c, (tsr_value_loss_kind)kind, 8, 4);
        bool cat = tsr_support_is_categorical(&c.support);
        tsr_tensor *chosen = cat ? tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(8, 11))
                                 : tsr_tensor_new(TSR_DTYPE_F64, 1, TSR_SHAPE(8));
        tsr_test_fill_uniform(chosen, -2, 2, 60);
        tsr_ctx *ctx = new_ctx();
        tsr_ctx_begin_step(ctx);
        tsr_tensor *want = keep(td_forward(ctx, &chosen, &c));

        /* The same batch in float32. */
        td_case f = c;
        f.next_target = tsr_tensor_new(TSR_DTYPE_F32, c.next_target->ndim, c.next_target->shape);
        f.next_online = tsr_tensor_new(TSR_DTYPE_F32, c.next_online->ndim, c.next_online->shape);
        f.rewards = tsr_tensor_new(TSR_DTYPE_F32, 1, c.rewards->shape);
        tsr_tensor_copy(f.next_target, c.next_target);
        tsr_tensor_copy(f.next_online, c.next_online);
        tsr_tensor_copy(f.rewards, c.rewards);
        tsr_tensor *chosen32 = tsr_tensor_new(TSR_DTYPE_F32, chosen->ndim, chosen->shape);
        tsr_tensor_copy(chosen32, chosen);
        tsr_grad_reset(chosen32, true);
        tsr_ctx_begin_step(ctx);
        tsr_tensor *got = td_forward(ctx, &chosen32, &f);
        tsr_test_allclose(got, want, 1e-5, 1e-5, tsr_value_loss_kind_names[kind]);
        cr_expect_eq(tsr_ctx_tape_length(ctx), 1, "%s: %zu tape entries",
                     tsr_value_loss_kind_names[kind], tsr_ctx_tape_length(ctx));
        tsr_tensor_free(f.next_target);
        tsr_tensor_free(f.next_online);
        tsr_tensor_free(f.rewards);
        tsr_tensor_free(chosen32);
        tsr_tensor_free(want);
        tsr_tensor_free(chosen);
        tsr_ctx_free(ctx);
        td_case_fini(&c);
    }
}
