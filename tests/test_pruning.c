/* Gradual magnitude pruning: config, schedule, distributions, masks, their
 * application under a real optimizer, and the report. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support/files.h"
#include "support/gradcheck.h"
#include "tessera/network.h"
#include "tessera/tessera.h"

/* ---- helpers ---- */

static tsr_pruner *new_pruner(const tsr_params *params, const tsr_prune_config *cfg,
                              int64_t total_updates)
{
    tsr_pruner *p = NULL;
    tsr_error err = {0};
    cr_assert_eq(tsr_pruner_new(&p, params, cfg, total_updates, &err), TSR_STATUS_OK, "%s",
                 err.message);
    return p;
}

/* A config pruning from `start` to `end` updates every `freq`. */
static tsr_prune_config steps_config(double S, int64_t start, int64_t end, int64_t freq)
{
    tsr_prune_config cfg = tsr_prune_config_defaults();
    cfg.target_sparsity = S;
    cfg.step_units = TSR_PRUNE_STEPS_UPDATES;
    cfg.start_step = start;
    cfg.end_step = end;
    cfg.update_freq = freq;
    cfg.distribution = TSR_PRUNE_DISTRIBUTION_UNIFORM;
    return cfg;
}

/* Adds a parameter filled with uniform values in [-1, 1) from `seed`. */
typedef struct spec {
    const char *name;
    int ndim;
    int64_t shape[4];
    unsigned flags;
} spec;

static void build(tsr_params *params, const spec *specs, int count, uint64_t seed)
{
    tsr_params_init(params);
    for (int i = 0; i < count; i++)
        tsr_params_add(params, specs[i].name, specs[i].ndim, specs[i].shape, specs[i].flags);
    tsr_params_finalize(params);
    for (int i = 0; i < count; i++)
        tsr_test_fill_uniform(tsr_params_tensor(params, i), -1, 1, seed + (uint64_t)i);
}

static int64_t mask_ones(tsr_pruner *p, int index)
{
    tsr_tensor m = tsr_pruner_mask(p, index);
    int64_t n = tsr_tensor_numel(&m), ones = 0;
    for (int64_t j = 0; j < n; j++) ones += tsr_u8(&m)[j];
    return ones;
}

static int64_t expected_kept(int64_t n, double s)
{
    int64_t k = (int64_t)nearbyint((double)n * (1.0 - s));
    return k < 1 ? 1 : k;
}

enum { P = TSR_PARAM_PRUNABLE };

/* ---- configuration ---- */

Test(prune_config, defaults_are_gmp_to_95_percent_with_erk_from_20_to_80_percent)
{
    tsr_prune_config cfg = tsr_prune_config_defaults();
    cr_expect_eq(cfg.mode, TSR_PRUNE_MODE_GMP);
    cr_expect_eq(cfg.target_sparsity, 0.95);
    cr_expect_eq(cfg.step_units, TSR_PRUNE_STEPS_FRACTION);
    cr_expect_eq(cfg.start_fraction, 0.2);
    cr_expect_eq(cfg.end_fraction, 0.8);
    cr_expect_eq(cfg.update_freq, 1000);
    cr_expect_eq(cfg.distribution, TSR_PRUNE_DISTRIBUTION_ERK);
    cr_expect_eq(cfg.scope, TSR_PRUNE_SCOPE_LAYERWISE);
    cr_expect_not(cfg.exclude_first_conv || cfg.exclude_output || cfg.exclude_routers);
    cr_expect_eq(tsr_prune_config_validate(&cfg, NULL), TSR_STATUS_OK);
}

static void expect_rejected(tsr_prune_config cfg, const char *key)
{
    tsr_error err = {0};
    cr_expect_eq(tsr_prune_config_validate(&cfg, &err), TSR_STATUS_INVALID_ARGUMENT,
                 "%s accepted", key);
    cr_expect(strstr(err.message, key) != NULL, "\"%s\" does not name %s", err.message, key);
}

Test(prune_config, bad_values_are_rejected_with_the_key_named)
{
    tsr_prune_config base = tsr_prune_config_defaults(), cfg;
    cfg = base, cfg.target_sparsity = 1.0;
    expect_rejected(cfg, "target_sparsity");
    cfg = base, cfg.target_sparsity = -0.1;
    expect_rejected(cfg, "target_sparsity");
    cfg = base, cfg.start_fraction = 0.9;
    expect_rejected(cfg, "start_fraction");
    cfg = base, cfg.end_fraction = 1.5;
    expect_rejected(cfg, "end_fraction");
    cfg = base, cfg.start_step = 10, cfg.end_step = 5;
    expect_rejected(cfg, "end_step");
    cfg = base, cfg.start_step = -1;
    expect_rejected(cfg, "start_step");
    cfg = base, cfg.update_freq = 0;
    expect_rejected(cfg, "update_freq");
    cfg = base, cfg.scope = TSR_PRUNE_SCOPE_GLOBAL;
    expect_rejected(cfg, "erk");
    cfg = base, cfg.distribution = (tsr_prune_distribution)7;
    expect_rejected(cfg, "distribution");
    cfg = base, cfg.mode = (tsr_prune_mode)7;
    expect_rejected(cfg, "mode");
}

Test(prune_config, enum_names_parse_and_an_unknown_one_lists_the_valid_names)
{
    int v = -1;
    cr_expect_eq(tsr_prune_enum_parse(tsr_prune_distribution_names, "distribution", "erk", &v,
                                      NULL),
                 TSR_STATUS_OK);
    cr_expect_eq(v, TSR_PRUNE_DISTRIBUTION_ERK);
    cr_expect_eq(tsr_prune_enum_parse(tsr_prune_mode_names, "mode", "one_shot", &v, NULL),
                 TSR_STATUS_OK);
    cr_expect_eq(v, TSR_PRUNE_MODE_ONE_SHOT);
    tsr_error err = {0};
    cr_expect_eq(tsr_prune_enum_parse(tsr_prune_scope_names, "scope", "globle", &v, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "scope") && strstr(err.message, "globle") &&
                  strstr(err.message, "layerwise, global"),
              "%s", err.message);
}

Test(pruner, fractions_resolve_against_the_runs_updates)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {4, 4}, P}}, 1, 1);
    tsr_prune_config cfg = tsr_prune_config_defaults();
    tsr_pruner *p = new_pruner(&params, &cfg, 2500000);
    cr_expect_eq(tsr_pruner_start_step(p), 500000);
    cr_expect_eq(tsr_pruner_end_step(p), 2000000);
    tsr_pruner_free(p);
    tsr_error err = {0};
    cr_expect_eq(tsr_pruner_new(&p, &params, &cfg, 0, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect_null(p);
    cr_expect(strstr(err.message, "step_units") != NULL, "%s", err.message);
    tsr_params_fini(&params);
}

/* Masks change only on multiples of update_freq inside the window: fractions
 * of a short run can give a window holding none, which would leave the
 * network dense in silence; it is refused, naming the window. */
Test(pruner, refuses_a_window_that_holds_no_mask_update)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {4, 4}, P}}, 1, 1);
    tsr_prune_config cfg = tsr_prune_config_defaults(); /* 20%-80%, every 1,000 */
    tsr_pruner *p = NULL;
    tsr_error err = {0};
    cr_expect_eq(tsr_pruner_new(&p, &params, &cfg, 1000, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect_null(p);
    cr_expect(strstr(err.message, "[200, 800] holds no multiple of pruning.update_freq = 1000"),
              "%s", err.message);
    p = new_pruner(&params, &cfg, 1250); /* [250, 1000]: one mask, at 1,000 */
    cr_expect(tsr_pruner_is_update_step(p, 1000));
    tsr_pruner_free(p);
    tsr_prune_config steps = steps_config(0.5, 1001, 1999, 1000);
    steps.distribution = cfg.distribution;
    cr_expect_eq(tsr_pruner_new(&p, &params, &steps, 0, &err), TSR_STATUS_INVALID_ARGUMENT);
    tsr_params_fini(&params);
}

/* A schedule in updates is checked against the run's expected updates
 * (t = 0 .. expected - 1): a first mask at or past them, or mask updates
 * past them, is reported; fractions and a schedule that fits are not. */
Test(pruner, schedule_fits_names_a_schedule_beyond_the_runs_updates)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {4, 4}, P}}, 1, 1);
    char msg[512] = "";
    tsr_prune_config gmp = steps_config(0.5, 0, 1000, 100);
    tsr_pruner *p = new_pruner(&params, &gmp, 0);
    cr_expect(tsr_pruner_schedule_fits(p, 1001, msg, sizeof msg), "the last mask, 1000, is in");
    cr_expect_not(tsr_pruner_schedule_fits(p, 1000, msg, sizeof msg));
    /* Last mask at 900: progress 901/1000, 0.5 (1 - 0.099^3) = 0.4995. */
    cr_expect(strstr(msg, "ends at gradient update 1000 (pruning.end_step), but this run makes "
                          "about 1000 updates: its last mask, before update 900, has sparsity "
                          "0.4995 instead of pruning.target_sparsity = 0.5"),
              "%s", msg);
    cr_expect(tsr_pruner_schedule_fits(p, 1050, msg, sizeof msg), "no mask update in 1001..1050");
    tsr_pruner_free(p);
    /* Every update: the one before the end (999) already has the target. */
    gmp = steps_config(0.5, 0, 1000, 1);
    p = new_pruner(&params, &gmp, 0);
    cr_expect(tsr_pruner_schedule_fits(p, 1000, msg, sizeof msg), "%s", msg);
    cr_expect_not(tsr_pruner_schedule_fits(p, 999, msg, sizeof msg));
    tsr_pruner_free(p);

    gmp = steps_config(0.5, 950, 2000, 100); /* first mask at 1,000 */
    p = new_pruner(&params, &gmp, 0);
    cr_expect_not(tsr_pruner_schedule_fits(p, 1000, msg, sizeof msg));
    cr_expect(strstr(msg, "first mask is computed before gradient update 1000 "
                          "(pruning.start_step = 950), but this run makes about 1000 updates"),
              "%s", msg);
    cr_expect_not(tsr_pruner_schedule_fits(p, 1001, msg, sizeof msg), "ends past the run");
    cr_expect(strstr(msg, "ends at gradient update 2000"), "%s", msg);
    cr_expect(tsr_pruner_schedule_fits(p, 2001, msg, sizeof msg));
    tsr_pruner_free(p);

    tsr_prune_config one_shot = steps_config(0.5, 500, 500, 1000);
    one_shot.mode = TSR_PRUNE_MODE_ONE_SHOT;
    p = new_pruner(&params, &one_shot, 0);
    cr_expect_not(tsr_pruner_schedule_fits(p, 500, msg, sizeof msg));
    cr_expect(tsr_pruner_schedule_fits(p, 501, msg, sizeof msg), "pruned before update 500");
    tsr_pruner_free(p);

    tsr_prune_config fractions = tsr_prune_config_defaults();
    fractions.distribution = TSR_PRUNE_DISTRIBUTION_UNIFORM;
    p = new_pruner(&params, &fractions, 5000);
    cr_expect(tsr_pruner_schedule_fits(p, 10, msg, sizeof msg), "fractions fit by construction");
    tsr_pruner_free(p);

    /* A gmp window of no length prunes once, in either unit: said, since
     * start_step = end_step = 0 are the defaults. */
    gmp = steps_config(0.9, 0, 0, 100);
    p = new_pruner(&params, &gmp, 0);
    cr_expect_not(tsr_pruner_schedule_fits(p, 1000, msg, sizeof msg));
    cr_expect(strstr(msg, "mode = gmp with a window of no length (pruning.start_step = end_step "
                          "= 0) prunes once, before gradient update 0, straight to "
                          "target_sparsity = 0.9: not gradual"), "%s", msg);
    tsr_pruner_free(p);
    fractions.start_fraction = fractions.end_fraction = 0.5;
    p = new_pruner(&params, &fractions, 5000);
    cr_expect_not(tsr_pruner_schedule_fits(p, 5000, msg, sizeof msg));
    cr_expect(strstr(msg, "(pruning.start_fraction = 0.5 and end_fraction = 0.5) prunes once, "
                          "before gradient update 2500"), "%s", msg);
    tsr_pruner_free(p);
    /* Beyond the run, it never prunes at all: that is what is said. */
    gmp = steps_config(0.9, 2000, 2000, 100);
    p = new_pruner(&params, &gmp, 0);
    cr_expect_not(tsr_pruner_schedule_fits(p, 1000, msg, sizeof msg));
    cr_expect(strstr(msg, "the first mask is computed before gradient update 2000"), "%s", msg);
    tsr_pruner_free(p);
    fractions.mode = TSR_PRUNE_MODE_ONE_SHOT; /* meant */
    p = new_pruner(&params, &fractions, 5000);
    cr_expect(tsr_pruner_schedule_fits(p, 5000, msg, sizeof msg), "%s", msg);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* exclude_output keeps the whole output layer dense: a noisy layer's
 * weight_mu and weight_sigma, and with a dueling head both streams. */
Test(selection, exclude_output_keeps_every_tensor_of_the_output_layer_dense)
{
    static const char *const heads[][3] = {
        {"network.dueling=false", "network.noisy=false", "head/output/"},
        {"network.dueling=false", "network.noisy=true", "head/output/"},
        {"network.dueling=true", "network.noisy=true", "head/advantage/ head/value/"},
        {"network.dueling=true", "network.noisy=false", "head/advantage/ head/value/"},
    };
    for (int h = 0; h < 4; h++) {
        const char *overrides[] = {"network.encoder=minatar", "network.hidden=32", heads[h][0],
                                   heads[h][1]};
        tsr_network_config nc = tsr_test_load_run_config(NULL, overrides, 4).network;
        tsr_network net;
        tsr_error err;
        cr_assert_eq(tsr_network_init(&net, &nc, (tsr_image_shape){10, 10, 4}, 6, 51, 1.0f,
                                      TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
        tsr_prune_config cfg = steps_config(0.5, 0, 10, 1);
        cfg.exclude_output = true;
        tsr_pruner *p = new_pruner(&net.params, &cfg, 0);
        int kept_dense = 0;
        for (int i = 0; i < net.params.count; i++) {
            const tsr_param *item = &net.params.items[i];
            if (!(item->flags & TSR_PARAM_PRUNABLE) || item->value.ndim < 2) continue;
            const char *slash = strrchr(item->name, '/');
            char layer[TSR_PARAM_NAME_BYTES];
            snprintf(layer, sizeof layer, "%.*s/", (int)(slash - item->name), item->name);
            bool output = strstr(heads[h][2], layer) != NULL;
            kept_dense += output;
            cr_expect_eq(tsr_pruner_is_pruned(p, i), !output, "%s, %s %s: %s", item->name,
                         heads[h][0], heads[h][1], output ? "kept dense" : "pruned");
        }
        static const int expected_dense[] = {1, 2, 4, 2}; /* weight; mu, sigma; both streams */
        cr_expect_eq(kept_dense, expected_dense[h], "%s %s", heads[h][0], heads[h][1]);
        tsr_pruner_free(p);
        tsr_network_fini(&net);
    }
}

Test(pruner, refuses_a_network_with_nothing_left_to_prune)
{
    tsr_params params;
    build(&params, (spec[]){{"head/weight", 2, {4, 4}, P}, {"head/bias", 1, {4}, 0}}, 2, 1);
    tsr_prune_config cfg = steps_config(0.5, 0, 10, 1);
    cfg.exclude_output = true;
    tsr_pruner *p = NULL;
    tsr_error err = {0};
    cr_expect_eq(tsr_pruner_new(&p, &params, &cfg, 0, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "exclude_output = true") != NULL, "%s", err.message);
    tsr_params_fini(&params);
}

/* ---- schedule ---- */

Test(schedule, values_at_chosen_steps_equal_the_polynomial)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {8, 8}, P}}, 1, 1);
    tsr_prune_config cfg = steps_config(0.9, 100, 1100, 100);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    /* pi(t) = clip(t + 1 - 100, 0, 1000) / 1000 */
    struct {
        int64_t t;
        double want;
    } cases[] = {
        {0, 0},
        {98, 0},
        {99, 0},                                       /* pi = 0 */
        {100, 0.9 * (1 - pow(1 - 0.001, 3))},          /* pi = 1 / 1000 */
        {599, 0.9 * (1 - 0.125)},                      /* pi = 1 / 2 */
        {849, 0.9 * (1 - pow(0.25, 3))},               /* pi = 3 / 4 */
        {1099, 0.9},                                   /* pi = 1 */
        {5000, 0.9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = tsr_pruner_sparsity_at(p, cases[i].t);
        cr_expect(fabs(got - cases[i].want) < 1e-15, "t = %lld: %.17g, want %.17g",
                  (long long)cases[i].t, got, cases[i].want);
    }
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(schedule, masks_are_recomputed_only_on_update_steps)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {16, 16}, P}}, 1, 1);
    tsr_prune_config cfg = steps_config(0.8, 100, 1100, 100);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    tsr_tensor *w = tsr_params_tensor(&params, 0);
    int updates = 0;
    for (int64_t t = 0; t <= 1300; t++) {
        bool expected = t % 100 == 0 && t >= 100 && t <= 1100;
        cr_expect_eq(tsr_pruner_is_update_step(p, t), expected, "t = %lld", (long long)t);
        /* Shuffle the magnitudes every step: only an update step may follow them. */
        tsr_test_fill_uniform(w, -1, 1, 1000 + (uint64_t)t);
        uint8_t before[256];
        memcpy(before, tsr_pruner_mask_block(p), sizeof before);
        bool recomputed = tsr_pruner_step(p, &params, t);
        cr_expect_eq(recomputed, expected, "t = %lld", (long long)t);
        if (!recomputed)
            cr_expect(!memcmp(before, tsr_pruner_mask_block(p), sizeof before),
                      "mask changed at t = %lld", (long long)t);
        else
            cr_expect_eq(mask_ones(p, 0), expected_kept(256, tsr_pruner_sparsity_at(p, t)),
                         "t = %lld", (long long)t);
        updates += recomputed;
    }
    cr_expect_eq(updates, 11);
    cr_expect_eq(mask_ones(p, 0), expected_kept(256, 0.8));
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(schedule, one_shot_prunes_once_at_the_start_step)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {10, 10}, P}}, 1, 1);
    tsr_prune_config cfg = steps_config(0.7, 37, 900, 1000);
    cfg.mode = TSR_PRUNE_MODE_ONE_SHOT;
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    cr_expect_eq(tsr_pruner_end_step(p), 37);
    /* gmp with start == end behaves the same, whatever update_freq says. */
    tsr_prune_config same = steps_config(0.7, 37, 37, 1000);
    tsr_pruner *q = new_pruner(&params, &same, 0);
    for (int64_t t = 0; t < 200; t++) {
        cr_expect_eq(tsr_pruner_step(p, &params, t), t == 37, "one_shot at t = %lld",
                     (long long)t);
        cr_expect_eq(tsr_pruner_step(q, &params, t), t == 37, "gmp start == end at %lld",
                     (long long)t);
    }
    cr_expect_eq(mask_ones(p, 0), 30);
    cr_expect_eq(mask_ones(q, 0), 30);
    tsr_pruner_free(p);
    tsr_pruner_free(q);
    tsr_params_fini(&params);
}

Test(schedule, static_masks_are_fixed_from_creation)
{
    tsr_params params;
    build(&params, (spec[]){{"fc/weight", 2, {20, 10}, P}, {"fc2/weight", 2, {10, 10}, P}}, 2,
          1);
    tsr_prune_config cfg = steps_config(0.9, 0, 0, 1);
    cfg.mode = TSR_PRUNE_MODE_STATIC;
    cfg.seed = 3;
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    cr_expect_eq(mask_ones(p, 0), 20);
    cr_expect_eq(mask_ones(p, 1), 10);
    uint8_t before[512];
    size_t bytes = tsr_pruner_mask_bytes(p);
    cr_assert(bytes <= sizeof before);
    memcpy(before, tsr_pruner_mask_block(p), bytes);
    for (int64_t t = 0; t < 50; t++) cr_expect_not(tsr_pruner_step(p, &params, t));
    cr_expect(!memcmp(before, tsr_pruner_mask_block(p), bytes));
    /* Random scores: another seed draws another topology. */
    cfg.seed = 4;
    tsr_pruner *q = new_pruner(&params, &cfg, 0);
    cr_expect(memcmp(before, tsr_pruner_mask_block(q), bytes) != 0);
    tsr_pruner_apply(p, &params);
    tsr_tensor m = tsr_pruner_mask(p, 0);
    for (int64_t j = 0; j < 200; j++)
        if (!tsr_u8(&m)[j]) cr_expect_eq(tsr_f32(tsr_params_tensor(&params, 0))[j], 0.0f);
    tsr_pruner_free(p);
    tsr_pruner_free(q);
    tsr_params_fini(&params);
}

/* ---- masks ---- */

Test(masks, keep_exactly_round_n_times_density_of_the_largest_magnitudes)
{
    tsr_params params;
    build(&params, (spec[]){{"a/weight", 2, {37, 23}, P}, {"b/weight", 4, {5, 3, 3, 3}, P}}, 2,
          9);
    tsr_prune_config cfg = steps_config(0.93, 0, 700, 7);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    for (int64_t t = 0; t <= 700; t += 7) {
        cr_assert(tsr_pruner_step(p, &params, t));
        for (int i = 0; i < 2; i++) {
            tsr_tensor *w = tsr_params_tensor(&params, i);
            int64_t n = tsr_tensor_numel(w);
            double s = tsr_pruner_current_sparsity(p, i);
            cr_expect(fabs(s - tsr_pruner_sparsity_at(p, t)) < 1e-15);
            cr_expect_eq(mask_ones(p, i), expected_kept(n, s), "tensor %d at t = %lld", i,
                         (long long)t);
            /* Every kept magnitude is at least every dropped one. */
            tsr_tensor m = tsr_pruner_mask(p, i);
            double min_kept = INFINITY, max_dropped = 0;
            for (int64_t j = 0; j < n; j++) {
                double a = fabs(tsr_f32(w)[j]);
                if (tsr_u8(&m)[j]) min_kept = fmin(min_kept, a);
                else max_dropped = fmax(max_dropped, a);
            }
            cr_expect(min_kept >= max_dropped, "kept %g < dropped %g", min_kept, max_dropped);
        }
    }
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(masks, ties_go_to_the_lower_flat_index)
{
    tsr_params params;
    build(&params, (spec[]){{"a/weight", 2, {2, 5}, P}}, 1, 1);
    float *w = tsr_f32(tsr_params_tensor(&params, 0));
    /* |w| = 1 everywhere: at sparsity 0.35, round(6.5) = 6 (half to even) entries, the first 6. */
    const float values[] = {1, -1, 1, 1, -1, 1, 1, -1, 1, 1};
    memcpy(w, values, sizeof values);
    tsr_prune_config cfg = steps_config(0.35, 0, 0, 1);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    cr_assert(tsr_pruner_step(p, &params, 0));
    const uint8_t want[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    cr_expect(!memcmp(tsr_pruner_mask_block(p), want, sizeof want), "equal scores");
    /* A tie at the threshold: 5, 3, 3, 3, 1, 3, ... keeping 3 takes 5 and the first two 3s. */
    const float tied[] = {5, 3, -3, 3, 1, 3, 0, 0.5f, -3, 2};
    memcpy(w, tied, sizeof tied);
    tsr_prune_config seven = steps_config(0.7, 0, 0, 1);
    tsr_pruner *q = new_pruner(&params, &seven, 0);
    cr_assert(tsr_pruner_step(q, &params, 0));
    const uint8_t want_tied[] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    cr_expect(!memcmp(tsr_pruner_mask_block(q), want_tied, sizeof want_tied), "tie at threshold");
    tsr_pruner_free(p);
    tsr_pruner_free(q);
    tsr_params_fini(&params);
}

Test(masks, at_least_one_weight_is_kept)
{
    tsr_params params;
    build(&params, (spec[]){{"a/weight", 2, {3, 3}, P}}, 1, 1);
    tsr_prune_config cfg = steps_config(0.99, 0, 0, 1);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    tsr_pruner_step(p, &params, 0);
    cr_expect_eq(mask_ones(p, 0), 1);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* ---- which tensors ---- */

Test(selection, prunes_every_flagged_weight_with_more_than_one_dim_and_honours_exclusions)
{
    tsr_params params;
    const spec specs[] = {
        {"encoder/conv1/weight", 4, {8, 4, 3, 3}, P}, /* 0: first conv */
        {"encoder/conv1/bias", 1, {8}, 0},            /* 1 */
        {"encoder/conv2/weight", 4, {8, 8, 3, 3}, P}, /* 2 */
        {"moe/router/weight", 2, {4, 8}, P},          /* 3: top-k router */
        {"moe/phi", 3, {8, 4, 2}, P},                 /* 4: soft-MoE slots */
        {"moe/expert/weight", 3, {4, 8, 8}, P},       /* 5 */
        {"norm/scale", 2, {4, 4}, 0},                 /* 6: not flagged */
        {"odd/vector", 1, {16}, P},                   /* 7: flagged but 1-D */
        {"head/weight", 2, {6, 8}, P},                /* 8: output */
        {"head/bias", 1, {6}, 0},                     /* 9 */
    };
    build(&params, specs, 10, 1);
    const bool by_default[] = {1, 0, 1, 1, 1, 1, 0, 0, 1, 0};
    tsr_prune_config cfg = steps_config(0.5, 0, 10, 1);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(tsr_pruner_is_pruned(p, i), by_default[i], "%s", specs[i].name);
    tsr_pruner_free(p);

    cfg.exclude_first_conv = cfg.exclude_output = cfg.exclude_routers = true;
    const bool excluded[] = {0, 0, 1, 0, 0, 1, 0, 0, 0, 0};
    p = new_pruner(&params, &cfg, 0);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(tsr_pruner_is_pruned(p, i), excluded[i], "%s with exclusions",
                     specs[i].name);
    cr_expect_eq(tsr_pruner_final_sparsity(p, 0), 0.0);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* ---- distributions ---- */

Test(erk, matches_hand_computed_sparsities)
{
    tsr_params params;
    /* raw densities (10 + 10) / 100 = 0.2 and (4 + 5) / 20 = 0.45; S = 0.5:
     * eps = (50 + 10) / (0.2 * 100 + 0.45 * 20) = 60 / 29. */
    build(&params, (spec[]){{"a/weight", 2, {10, 10}, P}, {"b/weight", 2, {4, 5}, P}}, 2, 1);
    tsr_prune_config cfg = steps_config(0.5, 0, 0, 1);
    cfg.distribution = TSR_PRUNE_DISTRIBUTION_ERK;
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    double eps = 60.0 / 29.0;
    cr_expect(fabs(tsr_pruner_final_sparsity(p, 0) - (1 - 0.2 * eps)) < 1e-14);
    cr_expect(fabs(tsr_pruner_final_sparsity(p, 1) - (1 - 0.45 * eps)) < 1e-14);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(erk, makes_a_tensor_dense_when_its_density_would_exceed_one_and_solves_again)
{
    tsr_params params;
    /* (2, 2) has raw density 1: eps = 52 / 24 would give it 2.17, so it is
     * dense and eps = (50 - 2) / 20 = 2.4 for the (10, 10) tensor. */
    build(&params, (spec[]){{"a/weight", 2, {10, 10}, P}, {"b/weight", 2, {2, 2}, P}}, 2, 1);
    tsr_prune_config cfg = steps_config(0.5, 0, 0, 1);
    cfg.distribution = TSR_PRUNE_DISTRIBUTION_ERK;
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    cr_expect_eq(tsr_pruner_final_sparsity(p, 1), 0.0);
    cr_expect(fabs(tsr_pruner_final_sparsity(p, 0) - (1 - 0.2 * 2.4)) < 1e-14, "%.17g",
              tsr_pruner_final_sparsity(p, 0));
    tsr_pruner_step(p, &params, 0);
    cr_expect_eq(mask_ones(p, 0) + mask_ones(p, 1), 52); /* (1 - S) N */
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(erk, counts_each_tensors_zeros_as_floor_of_s_n_like_jaxpruner)
{
    tsr_params params;
    /* S = 0.33 over (7, 9) and (3, 5): zeros floor(20.79) = 20 and floor(4.95) = 4.
     * Round 1: eps = (43 + 11) / (16 + 8) = 2.25, and 2.25 * 8 / 15 > 1 makes
     * (3, 5) dense; round 2: eps = (43 - 4) / 16, so (7, 9) keeps 39 of 63. */
    build(&params, (spec[]){{"a/weight", 2, {7, 9}, P}, {"b/weight", 2, {3, 5}, P}}, 2, 1);
    tsr_prune_config cfg = steps_config(0.33, 0, 0, 1);
    cfg.distribution = TSR_PRUNE_DISTRIBUTION_ERK;
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    cr_expect(fabs(tsr_pruner_final_sparsity(p, 0) - (1 - 39.0 / 63.0)) < 1e-14, "%.17g",
              tsr_pruner_final_sparsity(p, 0));
    cr_expect_eq(tsr_pruner_final_sparsity(p, 1), 0.0);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* Nature-DQN-shaped kernels (plus biases, not pruned). */
static const spec nature[] = {
    {"encoder/conv1/weight", 4, {32, 4, 8, 8}, P},  {"encoder/conv1/bias", 1, {32}, 0},
    {"encoder/conv2/weight", 4, {64, 32, 4, 4}, P}, {"encoder/conv2/bias", 1, {64}, 0},
    {"encoder/conv3/weight", 4, {64, 64, 3, 3}, P}, {"encoder/conv3/bias", 1, {64}, 0},
    {"head/fc/weight", 2, {512, 3136}, P},          {"head/fc/bias", 1, {512}, 0},
    {"head/q/weight", 2, {18, 512}, P},             {"head/q/bias", 1, {18}, 0},
};

Test(erk, kept_count_is_the_target_to_within_one_weight_per_tensor)
{
    tsr_params params;
    build(&params, nature, 10, 2);
    double targets[] = {0.5, 0.9, 0.95, 0.98};
    for (int k = 0; k < 4; k++) {
        tsr_prune_config cfg = steps_config(targets[k], 0, 0, 1);
        cfg.distribution = TSR_PRUNE_DISTRIBUTION_ERK;
        tsr_pruner *p = new_pruner(&params, &cfg, 0);
        cr_assert(tsr_pruner_step(p, &params, 0));
        int64_t kept = 0, total = 0;
        int tensors = 0;
        for (int i = 0; i < params.count; i++) {
            if (!tsr_pruner_is_pruned(p, i)) continue;
            int64_t n = tsr_tensor_numel(tsr_params_tensor(&params, i));
            double s = tsr_pruner_final_sparsity(p, i);
            cr_expect(s >= 0 && s < 1, "%s sparsity %g", params.items[i].name, s);
            cr_expect_eq(mask_ones(p, i), expected_kept(n, s));
            kept += mask_ones(p, i);
            total += n;
            tensors++;
        }
        cr_expect_eq(tensors, 5);
        double want = (1 - targets[k]) * (double)total;
        cr_expect(fabs((double)kept - want) <= tensors, "S = %g: kept %lld, want %.1f",
                  targets[k], (long long)kept, want);
        /* ERK keeps the small first conv denser than the big dense layer. */
        cr_expect_lt(tsr_pruner_final_sparsity(p, 0), tsr_pruner_final_sparsity(p, 6));
        tsr_pruner_free(p);
    }
    tsr_params_fini(&params);
}

Test(uniform, gives_every_tensor_the_target)
{
    tsr_params params;
    build(&params, nature, 10, 2);
    tsr_prune_config cfg = steps_config(0.95, 0, 0, 1);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    tsr_pruner_step(p, &params, 0);
    for (int i = 0; i < params.count; i++) {
        if (!tsr_pruner_is_pruned(p, i)) continue;
        cr_expect_eq(tsr_pruner_final_sparsity(p, i), 0.95);
        cr_expect_eq(mask_ones(p, i),
                     expected_kept(tsr_tensor_numel(tsr_params_tensor(&params, i)), 0.95));
    }
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* ---- global magnitude ---- */

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

Test(global, ranks_l2_normalised_scores_across_tensors_with_one_threshold)
{
    tsr_params params;
    build(&params,
          (spec[]){{"a/weight", 2, {20, 30}, P}, {"b/weight", 2, {10, 10}, P},
                   {"c/weight", 4, {4, 3, 2, 2}, P}},
          3, 5);
    /* Scale one tensor by 1000: normalised scores, hence masks, do not change. */
    tsr_prune_config cfg = steps_config(0.8, 0, 0, 1);
    cfg.scope = TSR_PRUNE_SCOPE_GLOBAL;
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    tsr_pruner_step(p, &params, 0);
    size_t bytes = tsr_pruner_mask_bytes(p);
    uint8_t *before = malloc(bytes);
    memcpy(before, tsr_pruner_mask_block(p), bytes);

    int64_t total = 0, kept = 0;
    double *scores = malloc(800 * sizeof *scores);
    for (int i = 0; i < 3; i++) {
        tsr_tensor *w = tsr_params_tensor(&params, i);
        int64_t n = tsr_tensor_numel(w);
        double norm = 0;
        for (int64_t j = 0; j < n; j++) norm += (double)tsr_f32(w)[j] * tsr_f32(w)[j];
        norm = sqrt(norm) + 1e-8;
        for (int64_t j = 0; j < n; j++) scores[total + j] = fabs(tsr_f32(w)[j]) / norm;
        total += n;
        kept += mask_ones(p, i);
    }
    cr_expect_eq(kept, expected_kept(total, 0.8));
    /* Brute force: the kept-th largest normalised score is the threshold. */
    double *sorted = malloc((size_t)total * sizeof *sorted);
    memcpy(sorted, scores, (size_t)total * sizeof *sorted);
    qsort(sorted, (size_t)total, sizeof *sorted, cmp_desc);
    double threshold = sorted[kept - 1];
    int64_t at = 0;
    for (int i = 0; i < 3; i++) {
        tsr_tensor m = tsr_pruner_mask(p, i);
        int64_t n = tsr_tensor_numel(&m);
        for (int64_t j = 0; j < n; j++)
            cr_expect_eq(tsr_u8(&m)[j], scores[at + j] >= threshold, "tensor %d entry %lld", i,
                         (long long)j);
        at += n;
    }

    float *a = tsr_f32(tsr_params_tensor(&params, 0));
    for (int j = 0; j < 600; j++) a[j] *= 1000.0f;
    tsr_pruner_step(p, &params, 0);
    cr_expect(!memcmp(before, tsr_pruner_mask_block(p), bytes), "scale changed the masks");
    free(before);
    free(scores);
    free(sorted);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* ---- masks under training ---- */

typedef struct mlp {
    tsr_params params;
    tsr_linear_layer fc1, fc2, out;
} mlp;

static void mlp_build(mlp *m)
{
    tsr_params_init(&m->params);
    tsr_init_spec xavier = {TSR_INIT_XAVIER_UNIFORM, 0};
    tsr_linear_layer_init(&m->fc1, &m->params, "fc1", 12, 32, true, true, xavier);
    tsr_linear_layer_init(&m->fc2, &m->params, "fc2", 32, 32, true, true, xavier);
    tsr_linear_layer_init(&m->out, &m->params, "out", 32, 4, true, false, xavier);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, 7, TSR_RNG_STREAM_INIT);
    tsr_linear_layer_reset(&m->fc1, &m->params, &rng);
    tsr_linear_layer_reset(&m->fc2, &m->params, &rng);
    tsr_linear_layer_reset(&m->out, &m->params, &rng);
}

static void mlp_destroy(mlp *m)
{
    tsr_linear_layer_fini(&m->fc1);
    tsr_linear_layer_fini(&m->fc2);
    tsr_linear_layer_fini(&m->out);
    tsr_params_fini(&m->params);
}

static tsr_tensor *mlp_forward(mlp *m, tsr_ctx *ctx, tsr_tensor *x)
{
    tsr_tensor *h = tsr_linear_layer_forward(&m->fc1, ctx, &m->params, x);
    h = tsr_linear_layer_forward(&m->fc2, ctx, &m->params, h);
    return tsr_linear_layer_forward(&m->out, ctx, &m->params, h);
}

static void expect_masked_zero(tsr_pruner *p, tsr_params *params, const char *what, int64_t t)
{
    for (int i = 0; i < params->count; i++) {
        if (!tsr_pruner_is_pruned(p, i)) continue;
        tsr_tensor m = tsr_pruner_mask(p, i);
        tsr_tensor *w = tsr_params_tensor(params, i);
        int64_t n = tsr_tensor_numel(w), bad = 0;
        for (int64_t j = 0; j < n; j++) bad += !tsr_u8(&m)[j] && tsr_f32(w)[j] != 0.0f;
        cr_expect_eq(bad, 0, "%s: %lld pruned weights of %s are not 0 at t = %lld", what,
                     (long long)bad, params->items[i].name, (long long)t);
    }
}

Test(training, pruned_weights_stay_exactly_zero_through_many_adam_updates)
{
    mlp m;
    mlp_build(&m);
    tsr_params target;
    tsr_params_init_like(&target, &m.params);
    tsr_optimizer_options adam = tsr_optimizer_adam_defaults();
    adam.learning_rate = 1e-2; /* large steps: a pruned weight would move visibly */
    tsr_optimizer *opt = NULL;
    cr_assert_eq(tsr_optimizer_new(&opt, &m.params, &adam, NULL), TSR_STATUS_OK);
    tsr_prune_config cfg = tsr_prune_config_defaults(); /* ERK, fractions of the run */
    cfg.target_sparsity = 0.9;
    cfg.update_freq = 25;
    int64_t total = 500;
    tsr_pruner *p = new_pruner(&m.params, &cfg, total);
    cr_assert_eq(tsr_pruner_start_step(p), 100);
    cr_assert_eq(tsr_pruner_end_step(p), 400);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(16, 12));
    tsr_tensor *y = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(16, 4));
    int mask_updates = 0;
    for (int64_t step = 0; step < total; step++) {
        tsr_test_fill_uniform(x, -1, 1, 100 + (uint64_t)step);
        tsr_test_fill_uniform(y, -1, 1, 10000 + (uint64_t)step);
        tsr_ctx_begin_step(ctx);
        tsr_tensor *q = mlp_forward(&m, ctx, x);
        tsr_tensor *loss = tsr_mean_all(ctx, tsr_mul(ctx, tsr_sub(ctx, q, y), tsr_sub(ctx, q, y)));
        tsr_backward(ctx, loss);
        int64_t t = tsr_optimizer_step_count(opt);
        cr_assert_eq(t, step);
        mask_updates += tsr_pruner_step(p, &m.params, t);
        tsr_optimizer_step(opt, tsr_ctx_epoch(ctx));
        tsr_pruner_apply(p, &m.params);
        if (step % 50 == 49 || step == total - 1) expect_masked_zero(p, &m.params, "online", step);
    }
    cr_expect_eq(mask_updates, 13); /* 100, 125, ..., 400 */
    /* Adam kept updating the pruned weights' moments (gradients are not masked),
     * and the values are still 0. */
    tsr_tensor mu = tsr_optimizer_state(opt, 0, m.fc2.weight);
    tsr_tensor mask = tsr_pruner_mask(p, m.fc2.weight);
    int64_t moving = 0;
    for (int64_t j = 0; j < 32 * 32; j++) moving += !tsr_u8(&mask)[j] && tsr_f32(&mu)[j] != 0.0f;
    cr_expect_gt(moving, 0);
    /* The target network copies the masked values. */
    tsr_params_copy_values(&target, &m.params);
    expect_masked_zero(p, &target, "target", total);
    tsr_prune_report report;
    tsr_prune_report_compute(&report, &m.params, p, NULL);
    double erk_kept = 0;
    for (int i = 0; i < m.params.count; i++)
        if (tsr_pruner_is_pruned(p, i))
            erk_kept += expected_kept(report.rows[i].numel, tsr_pruner_final_sparsity(p, i));
    cr_expect_eq((double)(report.pruned_numel - report.pruned_zeros), erk_kept);
    cr_expect(fabs(report.pruned_sparsity - 0.9) < 0.01, "sparsity %g", report.pruned_sparsity);
    tsr_prune_report_fini(&report);
    tsr_tensor_free(x);
    tsr_tensor_free(y);
    tsr_ctx_free(ctx);
    tsr_pruner_free(p);
    tsr_optimizer_free(opt);
    tsr_params_fini(&target);
    mlp_destroy(&m);
}

Test(training, apply_does_nothing_before_the_first_mask_and_bumps_the_version)
{
    tsr_params params;
    build(&params, (spec[]){{"a/weight", 2, {4, 4}, P}}, 1, 3);
    tsr_prune_config cfg = steps_config(0.5, 10, 20, 5);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    float before[16];
    memcpy(before, tsr_f32(tsr_params_tensor(&params, 0)), sizeof before);
    tsr_pruner_apply(p, &params);
    cr_expect(!memcmp(before, tsr_f32(tsr_params_tensor(&params, 0)), sizeof before));
    tsr_pruner_step(p, &params, 10);
    uint64_t version = params.version;
    tsr_pruner_apply(p, &params);
    cr_expect_gt(params.version, version);
    cr_expect_eq(tsr_params_tensor(&params, 0)->version, params.version);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(training, loaded_masks_are_applied)
{
    tsr_params params;
    build(&params, (spec[]){{"a/weight", 2, {4, 4}, P}}, 1, 3);
    tsr_prune_config cfg = steps_config(0.5, 10, 20, 5);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    uint8_t *block = tsr_pruner_mask_block(p);
    for (int j = 0; j < 16; j++) block[j] = (uint8_t)(j % 2);
    tsr_pruner_masks_loaded(p);
    tsr_pruner_apply(p, &params);
    float *w = tsr_f32(tsr_params_tensor(&params, 0));
    for (int j = 0; j < 16; j += 2) cr_expect_eq(w[j], 0.0f);
    for (int j = 1; j < 16; j += 2) cr_expect_neq(w[j], 0.0f);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(training, double_precision_blocks_are_pruned_too)
{
    tsr_params params;
    tsr_params_init_dtype(&params, TSR_DTYPE_F64);
    tsr_params_add(&params, "a/weight", 2, TSR_SHAPE(6, 5), P);
    tsr_params_finalize(&params);
    tsr_test_fill_uniform(tsr_params_tensor(&params, 0), -1, 1, 8);
    tsr_prune_config cfg = steps_config(0.6, 0, 0, 1);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    tsr_pruner_step(p, &params, 0);
    tsr_pruner_apply(p, &params);
    int64_t zeros = 0;
    for (int j = 0; j < 30; j++) zeros += tsr_f64(tsr_params_tensor(&params, 0))[j] == 0.0;
    cr_expect_eq(zeros, 18);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

/* ---- report ---- */

Test(report, counts_zeros_per_tensor_and_flops_spent_on_them)
{
    tsr_params params;
    tsr_params_init(&params);
    tsr_conv2d_layer conv;
    tsr_linear_layer fc;
    tsr_init_spec init = {TSR_INIT_XAVIER_UNIFORM, 0};
    tsr_conv2d_layer_init(&conv, &params, "enc/conv", 3, 4, 3, 2, TSR_PADDING_SAME, true, true,
                          init);
    tsr_linear_layer_init(&fc, &params, "head/q", 3 * 3 * 4, 5, true, false, init);
    tsr_params_finalize(&params);
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_conv2d_layer_reset(&conv, &params, &rng);
    tsr_linear_layer_reset(&fc, &params, &rng);

    /* One forward of a batch of 2 (5x5 inputs, 3x3 outputs) under a summary. */
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_begin_step(ctx);
    tsr_summary summary = {0};
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 5, 5, 3));
    tsr_ctx_set_summary(ctx, &summary);
    tsr_tensor *h = tsr_conv2d_layer_forward(&conv, ctx, &params, x);
    tsr_linear_layer_forward(&fc, ctx, &params, tsr_flatten(ctx, h));
    tsr_ctx_set_summary(ctx, NULL);
    double uses[4];
    tsr_prune_uses_from_summary(&params, &summary, uses);
    cr_expect_eq(uses[conv.weight], 2 * 3 * 3); /* N Ho Wo */
    cr_expect_eq(uses[fc.weight], 2);           /* N */
    cr_expect_eq(uses[conv.bias], 0);
    cr_expect_eq(uses[fc.bias], 0);

    tsr_prune_config cfg = steps_config(0.75, 0, 0, 1);
    tsr_pruner *p = new_pruner(&params, &cfg, 0);
    tsr_pruner_step(p, &params, 0);
    tsr_pruner_apply(p, &params);
    /* Zero but not pruned: counted in the totals only. */
    tsr_init_zeros(tsr_params_tensor(&params, conv.bias));
    tsr_init_zeros(tsr_params_tensor(&params, fc.bias));
    tsr_prune_report r;
    tsr_prune_report_compute(&r, &params, p, uses);
    cr_assert_eq(r.count, 4);
    cr_expect_str_eq(r.rows[conv.weight].name, "enc/conv/weight");
    cr_expect(r.rows[conv.weight].pruned && !r.rows[conv.bias].pruned);
    cr_expect_eq(r.rows[conv.weight].zeros, 108 - 27); /* 4 * 3 * 3 * 3 = 108, keep 27 */
    cr_expect_eq(r.rows[fc.weight].zeros, 180 - 45);
    cr_expect_eq(r.rows[fc.bias].zeros, 5);
    cr_expect_eq(r.rows[conv.weight].sparsity, 0.75);
    cr_expect_eq(r.rows[conv.weight].zero_flops, 2.0 * 18 * 81);
    cr_expect_eq(r.rows[fc.weight].zero_flops, 2.0 * 2 * 135);
    cr_expect_eq(r.pruned_numel, 288);
    cr_expect_eq(r.pruned_zeros, 81 + 135);
    cr_expect_eq(r.pruned_sparsity, 0.75);
    cr_expect_eq(r.total_numel, 288 + 4 + 5);
    cr_expect_eq(r.total_zeros, 216 + 4 + 5);
    cr_expect_eq(r.dense_flops, summary.rows[0].flops + summary.rows[1].flops);
    cr_expect_eq(r.zero_flops, 2.0 * 18 * 81 + 2.0 * 2 * 135);
    FILE *devnull = fopen("/dev/null", "w");
    tsr_prune_report_print(&r, devnull);
    fclose(devnull);
    tsr_prune_report_fini(&r);
    tsr_summary_fini(&summary);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    tsr_pruner_free(p);
    tsr_conv2d_layer_fini(&conv);
    tsr_linear_layer_fini(&fc);
    tsr_params_fini(&params);
}

/* ---- config sections ---- */

/* A run config with the [network], [loss] and [pruning] sections. */
typedef struct run_config {
    tsr_network_config network;
    tsr_value_loss_config loss;
    tsr_prune_config pruning;
} run_config;

enum { MAX_KEYS = 96 };

static tsr_config_schema run_schema(tsr_config_key *keys)
{
    int n = tsr_network_config_keys(offsetof(run_config, network), keys, MAX_KEYS);
    n += tsr_value_loss_config_keys(offsetof(run_config, loss), keys + n, MAX_KEYS - n);
    n += tsr_prune_config_keys(offsetof(run_config, pruning), keys + n, MAX_KEYS - n);
    cr_assert(n <= MAX_KEYS);
    return (tsr_config_schema){keys, n};
}

static tsr_status load_text(const tsr_config_schema *schema, run_config *rc, const char *text,
                            tsr_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tessera_pruning_%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    tsr_status st = tsr_config_load_file(schema, rc, path, err);
    remove(path);
    return st;
}

Test(config_sections, schema_defaults_equal_the_config_defaults)
{
    tsr_config_key keys[MAX_KEYS];
    tsr_config_schema schema = run_schema(keys);
    run_config rc;
    memset(&rc, 0, sizeof rc);
    tsr_config_set_defaults(&schema, &rc);
    tsr_value_loss_config loss = tsr_value_loss_config_defaults();
    cr_expect_eq(rc.loss.kind, loss.kind);
    cr_expect_eq(rc.loss.num_bins, loss.num_bins);
    cr_expect_eq(rc.loss.vmin, loss.vmin);
    cr_expect_eq(rc.loss.vmax, loss.vmax);
    cr_expect_eq(rc.loss.sigma_ratio, loss.sigma_ratio);
    cr_expect_eq(rc.loss.huber_delta, loss.huber_delta);
    tsr_prune_config pr = tsr_prune_config_defaults();
    cr_expect_eq(rc.pruning.mode, pr.mode);
    cr_expect_eq(rc.pruning.target_sparsity, pr.target_sparsity);
    cr_expect_eq(rc.pruning.step_units, pr.step_units);
    cr_expect_eq(rc.pruning.start_fraction, pr.start_fraction);
    cr_expect_eq(rc.pruning.end_fraction, pr.end_fraction);
    cr_expect_eq(rc.pruning.start_step, pr.start_step);
    cr_expect_eq(rc.pruning.end_step, pr.end_step);
    cr_expect_eq(rc.pruning.update_freq, pr.update_freq);
    cr_expect_eq(rc.pruning.distribution, pr.distribution);
    cr_expect_eq(rc.pruning.scope, pr.scope);
    cr_expect_eq(rc.pruning.exclude_first_conv, pr.exclude_first_conv);
    cr_expect_eq(rc.pruning.exclude_output, pr.exclude_output);
    cr_expect_eq(rc.pruning.exclude_routers, pr.exclude_routers);
    cr_expect_null(tsr_config_find(&schema, "pruning", "seed"), "seed is set by the agent");
}

/* The two examples of README.md, verbatim. */
static const char readme_hlgauss[] = "[network]\n"
                                     "encoder = nature\n"
                                     "head = dense\n"
                                     "\n"
                                     "[loss]\n"
                                     "kind = hlgauss\n"
                                     "num_bins = 51\n"
                                     "vmin = -10\n"
                                     "vmax = 10\n"
                                     "sigma_ratio = 0.75\n";

static const char readme_gmp[] = "[network]\n"
                                 "encoder = impala\n"
                                 "head = dense\n"
                                 "\n"
                                 "[pruning]\n"
                                 "mode = gmp\n"
                                 "target_sparsity = 0.95\n"
                                 "distribution = erk\n"
                                 "scope = layerwise\n"
                                 "step_units = fraction\n"
                                 "start_fraction = 0.2\n"
                                 "end_fraction = 0.8\n"
                                 "update_freq = 1000\n";

Test(config_sections, the_readme_examples_load_and_build_what_they_describe)
{
    tsr_config_key keys[MAX_KEYS];
    tsr_config_schema schema = run_schema(keys);
    run_config rc;
    tsr_error err = {0};
    tsr_config_set_defaults(&schema, &rc);
    cr_assert_eq(load_text(&schema, &rc, readme_hlgauss, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(rc.loss.kind, TSR_VALUE_LOSS_HLGAUSS);
    tsr_support s;
    cr_assert_eq(tsr_support_init(&s, &rc.loss, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(tsr_support_head_width(&s), 51);
    cr_expect(fabs(s.sigma - 0.75 * 20.0 / 51.0) < 1e-15);
    tsr_support_fini(&s);

    tsr_config_set_defaults(&schema, &rc);
    cr_assert_eq(load_text(&schema, &rc, readme_gmp, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_params params;
    build(&params, nature, 10, 2);
    tsr_pruner *p = new_pruner(&params, &rc.pruning, 2500000);
    cr_expect_eq(tsr_pruner_start_step(p), 500000);
    cr_expect_eq(tsr_pruner_end_step(p), 2000000);
    cr_expect_eq(tsr_pruner_sparsity_at(p, 2000000), 0.95);
    cr_expect_eq(tsr_pruner_config(p)->distribution, TSR_PRUNE_DISTRIBUTION_ERK);
    tsr_pruner_free(p);
    tsr_params_fini(&params);
}

Test(config_sections, a_bad_value_in_a_file_names_the_key_and_the_choices)
{
    tsr_config_key keys[MAX_KEYS];
    tsr_config_schema schema = run_schema(keys);
    run_config rc;
    tsr_error err = {0};
    tsr_config_set_defaults(&schema, &rc);
    cr_expect_eq(load_text(&schema, &rc, "[loss]\nkind = hl_gauss\n", &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "loss.kind") && strstr(err.message, "hlgauss"), "%s",
              err.message);
    cr_expect_eq(load_text(&schema, &rc, "[pruning]\ndistribution = erdos\n", &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "pruning.distribution") && strstr(err.message, "erk"), "%s",
              err.message);
    /* A cross-key error only validation sees. */
    cr_assert_eq(load_text(&schema, &rc, "[pruning]\nscope = global\n", &err), TSR_STATUS_OK);
    cr_expect_eq(tsr_prune_config_validate(&rc.pruning, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "pruning.scope") != NULL, "%s", err.message);
}
