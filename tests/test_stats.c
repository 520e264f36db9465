/* rliable's metrics (stats.h): hand-computed values on tiny matrices, and the
 * stratified bootstrap against the exact bootstrap distribution of a fixed
 * matrix computed by tests/data/make_golden_stats.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <string.h>

#include "tessera/stats.h"

/* Floating-point slack for values computed exactly by hand or in rationals. */
#define EPS 1e-12

static void expect_near(double got, double want, const char *what)
{
    cr_expect(fabs(got - want) <= EPS, "%s: got %.17g, want %.17g", what, got, want);
}

/* ---- point estimates -------------------------------------------------------- */

Test(stats, trim_mean_cuts_the_floor_of_a_quarter_from_each_end)
{
    /* n = 6: floor(1.5) = 1 cut at each end; the outlier 10 goes. */
    double six[] = {4, 0, 10, 1, 2, 3};
    expect_near(tsr_stats_trim_mean(six, 6, 0.25), (1 + 2 + 3 + 4) / 4.0, "n = 6");
    /* n = 7: floor(1.75) = 1. */
    double seven[] = {5, 1, 9, 3, 7, 2, 8};
    expect_near(tsr_stats_trim_mean(seven, 7, 0.25), (2 + 3 + 5 + 7 + 8) / 5.0, "n = 7");
    /* n = 3: floor(0.75) = 0, the plain mean. */
    double three[] = {1, 2, 30};
    expect_near(tsr_stats_trim_mean(three, 3, 0.25), 11, "n = 3");
    /* n = 8: 2 cut at each end. */
    double eight[] = {8, 7, 6, 5, 4, 3, 2, 100};
    expect_near(tsr_stats_trim_mean(eight, 8, 0.25), (4 + 5 + 6 + 7) / 4.0, "n = 8");
}

Test(stats, percentile_interpolates_linearly_as_numpy_does)
{
    double v[] = {4, 2, 3, 1};
    expect_near(tsr_stats_percentile(v, 4, 0.025), 1.075, "2.5%");
    expect_near(tsr_stats_percentile(v, 4, 0.975), 3.925, "97.5%");
    expect_near(tsr_stats_percentile(v, 4, 0.5), 2.5, "50%");
    expect_near(tsr_stats_percentile(v, 4, 0), 1, "0%");
    expect_near(tsr_stats_percentile(v, 4, 1), 4, "100%");
    double one[] = {7};
    expect_near(tsr_stats_percentile(one, 1, 0.975), 7, "a single value");
}

Test(stats, aggregates_of_a_ragged_matrix_follow_rliable)
{
    /* Task 0: 3 runs (mean 0.5), task 1: 1 run (1.5), task 2: 2 runs (0.3). */
    const int64_t runs[] = {3, 1, 2};
    const double scores[] = {0.2, 0.4, 0.9, 1.5, 0.0, 0.6};
    tsr_score_matrix m = {3, runs, scores};
    cr_expect_eq(tsr_score_matrix_size(&m), 6);
    double a[TSR_AGGREGATE_COUNT];
    tsr_stats_aggregates(&m, a);
    expect_near(a[TSR_AGGREGATE_MEAN], (0.5 + 1.5 + 0.3) / 3, "mean of the task means");
    expect_near(a[TSR_AGGREGATE_MEDIAN], 0.5, "median of the task means");
    /* Flattened and sorted: 0 .2 .4 .6 .9 1.5; floor(6/4) = 1 cut at each end. */
    expect_near(a[TSR_AGGREGATE_IQM], (0.2 + 0.4 + 0.6 + 0.9) / 4, "iqm");
    /* Clipped at 1: .2 .4 .9 1 0 .6, mean 3.1 / 6. */
    expect_near(a[TSR_AGGREGATE_OPTIMALITY_GAP], 1 - 3.1 / 6, "optimality gap");
    /* The input is left as it was. */
    cr_expect_eq(scores[0], 0.2);
    cr_expect_eq(scores[3], 1.5);
}

Test(stats, median_of_an_even_number_of_tasks_averages_the_middle_two)
{
    const int64_t runs[] = {2, 1, 1, 1};
    const double scores[] = {2, 4, 1, 4, 1.5}; /* task means 3, 1, 4, 1.5 */
    tsr_score_matrix m = {4, runs, scores};
    double a[TSR_AGGREGATE_COUNT];
    tsr_stats_aggregates(&m, a);
    expect_near(a[TSR_AGGREGATE_MEDIAN], (1.5 + 3) / 2, "median");
    expect_near(a[TSR_AGGREGATE_MEAN], (3 + 1 + 4 + 1.5) / 4, "mean");
    /* Nothing above 1 counts more than 1: the gap is 1 - mean(min(s, 1)). */
    expect_near(a[TSR_AGGREGATE_OPTIMALITY_GAP], 0, "optimality gap of scores all >= 1");
}

Test(stats, probability_of_improvement_counts_ties_as_half)
{
    /* Task 0: X {2, 3, 4} vs Y {2, 3}: 2: 1/2 + 0, 3: 1 + 1/2, 4: 1 + 1 -> 4/6.
     * Task 1: X {5} vs Y {1, 5, 9, 5}: 1 + 1/2 + 0 + 1/2 -> 2/4.
     * Task 2: X {0, 1} vs Y {2}: 0. */
    const int64_t runs_x[] = {3, 1, 2}, runs_y[] = {2, 4, 1};
    const double x_scores[] = {2, 3, 4, 5, 0, 1};
    const double y_scores[] = {2, 3, 1, 5, 9, 5, 2};
    tsr_score_matrix x = {3, runs_x, x_scores}, y = {3, runs_y, y_scores};
    double p = tsr_stats_probability_of_improvement(&x, &y);
    expect_near(p, (4.0 / 6 + 2.0 / 4 + 0) / 3, "P(X > Y)");
    /* Ties split evenly, so P(Y > X) is the complement. */
    expect_near(tsr_stats_probability_of_improvement(&y, &x), 1 - p, "P(Y > X)");
    expect_near(tsr_stats_probability_of_improvement(&x, &x), 0.5, "P(X > X)");
}

/* ---- the stratified bootstrap ------------------------------------------------ */

Test(stats, bootstrap_resamples_runs_only_within_their_task)
{
    /* Every run of a task has the same score: a stratified resample is always
     * the original matrix, so every interval collapses to its point. Pooling
     * the runs across tasks would give a mean anywhere in [0, 10]. */
    const int64_t runs[] = {4, 3};
    const double scores[] = {0, 0, 0, 0, 10, 10, 10};
    tsr_score_matrix m = {2, runs, scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.reps = 2000;
    tsr_estimate e[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, e);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) {
        cr_expect_eq(e[k].lo, e[k].value, "%s: lo %g, value %g", tsr_aggregate_names[k], e[k].lo,
                     e[k].value);
        cr_expect_eq(e[k].hi, e[k].value, "%s: hi %g", tsr_aggregate_names[k], e[k].hi);
    }
    cr_expect_eq(e[TSR_AGGREGATE_MEAN].value, 5);
}

Test(stats, bootstrap_is_deterministic_for_a_seed)
{
    const int64_t runs[] = {3, 4};
    const double scores[] = {0.1, 0.7, 0.3, 1.2, 0.4, 0.9, 0.2};
    tsr_score_matrix m = {2, runs, scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.reps = 5000;
    o.seed = 7;
    tsr_estimate a[TSR_AGGREGATE_COUNT], b[TSR_AGGREGATE_COUNT], c[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, a);
    tsr_stats_bootstrap_aggregates(&m, &o, b);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "same seed, same intervals");
    o.seed = 8;
    tsr_stats_bootstrap_aggregates(&m, &o, c);
    bool differs = false;
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++)
        differs |= a[k].lo != c[k].lo || a[k].hi != c[k].hi;
    cr_expect(differs, "another seed draws other resamples");

    tsr_estimate iqm = tsr_stats_bootstrap_iqm(&m, &(tsr_bootstrap_options){5000, 0.95, 7, false});
    cr_expect_eq(memcmp(&iqm, &a[TSR_AGGREGATE_IQM], sizeof iqm), 0,
                 "the IQM alone draws the same resamples");

    tsr_estimate p1 = tsr_stats_bootstrap_probability_of_improvement(&m, &m, &o);
    tsr_estimate p2 = tsr_stats_bootstrap_probability_of_improvement(&m, &m, &o);
    cr_expect_eq(memcmp(&p1, &p2, sizeof p1), 0);
    cr_expect_eq(p1.value, 0.5);
    cr_expect(p1.lo < 0.5 && p1.hi > 0.5, "X and Y resampled independently: [%g, %g]", p1.lo,
              p1.hi);
}

Test(stats, probability_of_improvement_is_certain_when_every_run_is_better)
{
    const int64_t runs_x[] = {2, 3}, runs_y[] = {3, 2};
    const double x_scores[] = {5, 6, 7, 8, 9}, y_scores[] = {1, 2, 3, 4, 4};
    tsr_score_matrix x = {2, runs_x, x_scores}, y = {2, runs_y, y_scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.reps = 1000;
    tsr_estimate e = tsr_stats_bootstrap_probability_of_improvement(&x, &y, &o);
    cr_expect_eq(e.value, 1);
    cr_expect_eq(e.lo, 1);
    cr_expect_eq(e.hi, 1);
}

/* ---- task bootstrap ------------------------------------------------------ */

/* Runs equal within each task, unequal across: over runs only every
 * resample is the matrix itself, while the task bootstrap draws task 0
 * twice (or task 1 twice) in a quarter of the resamples each, so the 95%
 * intervals reach both tasks' values. */
Test(stats, task_bootstrap_resamples_the_tasks)
{
    const int64_t runs[] = {2, 3};
    const double scores[] = {0, 0, 10, 10, 10};
    tsr_score_matrix m = {2, runs, scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    cr_expect(!o.task_bootstrap, "rliable's default resamples runs only");
    o.reps = 2000;
    o.seed = 4;
    tsr_estimate runs_only[TSR_AGGREGATE_COUNT], tasks[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, runs_only);
    o.task_bootstrap = true;
    tsr_stats_bootstrap_aggregates(&m, &o, tasks);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) {
        const char *name = tsr_aggregate_names[k];
        cr_expect_eq(tasks[k].value, runs_only[k].value, "%s: the point estimate", name);
        cr_expect(runs_only[k].lo == runs_only[k].value && runs_only[k].hi == runs_only[k].value,
                  "%s over runs: [%g, %g]", name, runs_only[k].lo, runs_only[k].hi);
    }
    /* Mean and median of the task means: 0, 5 or 10; the IQM of {0, 0, 0, 0}
     * or of six 10s reaches 0 and 10; the gap is 1 with task 0 twice, 0 with
     * task 1 twice. */
    const double lo[] = {0, 0, 0, 0}, hi[] = {10, 10, 10, 1};
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++)
        cr_expect(tasks[k].lo == lo[k] && tasks[k].hi == hi[k], "%s: [%g, %g], want [%g, %g]",
                  tsr_aggregate_names[k], tasks[k].lo, tasks[k].hi, lo[k], hi[k]);
    tsr_estimate iqm = tsr_stats_bootstrap_iqm(&m, &o);
    cr_expect(iqm.lo == 0 && iqm.hi == 10, "IQM alone: [%g, %g]", iqm.lo, iqm.hi);
    /* The profile at 5: 2/5 or 3/5 above with both tasks, 0 or 1 otherwise. */
    tsr_estimate share;
    tsr_stats_bootstrap_score_distribution(&m, (const double[]){5}, 1, &o, &share);
    cr_expect(share.value == 0.6 && share.lo == 0 && share.hi == 1, "%g [%g, %g]", share.value,
              share.lo, share.hi);
    tsr_estimate again[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, again);
    cr_expect_eq(memcmp(again, tasks, sizeof tasks), 0, "same seed, same intervals");
}

/* rliable resamples P(X > Y) over runs only: asking for more is a bug. */
Test(stats, probability_of_improvement_refuses_a_task_bootstrap, .signal = SIGABRT)
{
    const int64_t runs[] = {2};
    tsr_score_matrix x = {1, runs, (const double[]){1, 2}}, y = {1, runs, (const double[]){0, 3}};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.task_bootstrap = true;
    tsr_stats_bootstrap_probability_of_improvement(&x, &y, &o);
}

/* ---- golden: the exact bootstrap distribution ------------------------------ */

/* 4 runs x 3 tasks, task-major; the same numbers as SCORES and SCORES_Y in
 * tests/data/make_golden_stats.py. */
static const int64_t golden_runs[] = {4, 4, 4};
static const double golden_scores[] = {0.12, 0.45, 0.31, 0.88, 1.20, 0.95,
                                       0.60, 1.45, 0.05, 0.22, 0.70, 0.40};
static const double golden_scores_y[] = {0.30, 0.45, 0.10, 0.50, 1.00, 0.95,
                                         1.30, 0.80, 0.40, 0.15, 0.05, 0.60};

/* The script's output: the point value, then the ranges within which a
 * 50,000-resample percentile interval's lower and upper ends fall unless the
 * resamples' share below the exact quantile is off by more than 5 binomial
 * standard deviations (about one seed in a million): [q(p - 5 s), q(p + 5 s)]
 * for p = 0.025 and 0.975, s = sqrt(p (1 - p) / 50000) = 0.000698. The exact
 * quantiles q(0.025), q(0.975) are in the comments. */
typedef struct golden {
    double value;
    double lo_min, lo_max, hi_min, hi_max;
} golden;

static const golden golden_aggregates[TSR_AGGREGATE_COUNT] = {
    /* mean 733/1200; exact interval [0.455, 0.77] */
    [TSR_AGGREGATE_MEAN] = {0.61083333333333334, 0.45000000000000001, 0.45916666666666667,
                            0.76583333333333337, 0.77583333333333337},
    /* median 11/25; exact [0.255, 0.7375] */
    [TSR_AGGREGATE_MEDIAN] = {0.44, 0.25, 0.26250000000000001, 0.73750000000000004,
                              0.73750000000000004},
    /* iqm 167/300; exact [0.36, 0.77166666666666661] */
    [TSR_AGGREGATE_IQM] = {0.55666666666666664, 0.35666666666666669, 0.36666666666666664,
                           0.76000000000000001, 0.77333333333333332},
    /* optimality gap 133/300; exact [0.30833333333333335, 0.5725] */
    [TSR_AGGREGATE_OPTIMALITY_GAP] = {0.44333333333333336, 0.30416666666666664, 0.3125,
                                      0.56833333333333336, 0.57583333333333331},
};
/* P(X > Y) 9/16; exact [0.3125, 0.79166666666666663] */
static const golden golden_improvement = {0.5625, 0.3125, 0.32291666666666669,
                                          0.79166666666666663, 0.80208333333333337};

static void expect_golden(tsr_estimate e, golden g, const char *name)
{
    expect_near(e.value, g.value, name);
    cr_expect(e.lo >= g.lo_min - EPS && e.lo <= g.lo_max + EPS, "%s: lo %.17g outside [%.17g, %.17g]",
              name, e.lo, g.lo_min, g.lo_max);
    cr_expect(e.hi >= g.hi_min - EPS && e.hi <= g.hi_max + EPS, "%s: hi %.17g outside [%.17g, %.17g]",
              name, e.hi, g.hi_min, g.hi_max);
}

Test(stats, golden_iqm_and_its_interval_match_the_exact_bootstrap)
{
    tsr_score_matrix m = {3, golden_runs, golden_scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    cr_assert_eq(o.reps, 50000);
    cr_assert_eq(o.coverage, 0.95);
    for (uint64_t seed = 0; seed < 3; seed++) {
        o.seed = seed;
        tsr_estimate iqm = tsr_stats_bootstrap_iqm(&m, &o);
        expect_golden(iqm, golden_aggregates[TSR_AGGREGATE_IQM], "iqm");
    }
}

Test(stats, golden_aggregates_and_their_intervals_match_the_exact_bootstrap)
{
    tsr_score_matrix m = {3, golden_runs, golden_scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.seed = 11;
    tsr_estimate e[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, e);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++)
        expect_golden(e[k], golden_aggregates[k], tsr_aggregate_names[k]);
}

Test(stats, golden_probability_of_improvement_matches_the_exact_bootstrap)
{
    tsr_score_matrix x = {3, golden_runs, golden_scores};
    tsr_score_matrix y = {3, golden_runs, golden_scores_y};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.seed = 5;
    expect_golden(tsr_stats_bootstrap_probability_of_improvement(&x, &y, &o), golden_improvement,
                  "P(X > Y)");
}

/* make_golden_stats.py --task-bootstrap: the same matrix under rliable's
 * task_bootstrap (27 x 256^3 equally likely resamples). Far wider than over
 * runs only: the mean's exact interval is [0.283, 1.029] against
 * [0.455, 0.77]. */
static const golden golden_task_aggregates[TSR_AGGREGATE_COUNT] = {
    /* exact [0.28333333333333333, 1.0291666666666666] */
    [TSR_AGGREGATE_MEAN] = {0.61083333333333334, 0.27666666666666667, 0.28833333333333333,
                            1.0125, 1.0416666666666667},
    /* exact [0.25, 1.1375] */
    [TSR_AGGREGATE_MEDIAN] = {0.44, 0.22500000000000001, 0.25, 1.1375, 1.1375},
    /* exact [0.23333333333333334, 1.075] */
    [TSR_AGGREGATE_IQM] = {0.55666666666666664, 0.22500000000000001, 0.23999999999999999,
                           1.0633333333333332, 1.0883333333333334},
    /* exact [0.12333333333333334, 0.71666666666666667] */
    [TSR_AGGREGATE_OPTIMALITY_GAP] = {0.44333333333333336, 0.115, 0.14166666666666666,
                                      0.71166666666666667, 0.72333333333333338},
};

Test(stats, golden_task_bootstrap_matches_the_exact_distribution)
{
    tsr_score_matrix m = {3, golden_runs, golden_scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.seed = 13;
    o.task_bootstrap = true;
    tsr_estimate e[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, e);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++)
        expect_golden(e[k], golden_task_aggregates[k], tsr_aggregate_names[k]);
    expect_golden(tsr_stats_bootstrap_iqm(&m, &o), golden_task_aggregates[TSR_AGGREGATE_IQM],
                  "iqm alone");
    const double taus[] = {0.4, 0.9};
    const golden want[] = {
        {7.0 / 12, 2.0 / 12, 2.0 / 12, 1, 1}, /* exact [1/6, 1] */
        {3.0 / 12, 0, 0, 8.0 / 12, 9.0 / 12}, /* exact [0, 2/3] */
    };
    tsr_estimate p[2];
    tsr_stats_bootstrap_score_distribution(&m, taus, 2, &o, p);
    expect_golden(p[0], want[0], "task-bootstrap score distribution at 0.4");
    expect_golden(p[1], want[1], "task-bootstrap score distribution at 0.9");
}

/* ---- performance profiles --------------------------------------------------- */

Test(stats, score_distribution_is_the_share_of_all_runs_above_each_threshold)
{
    /* Ragged: 3 runs of task 0, 1 of task 1; flattened as rliable does, so
     * task 1's run weighs as one of four. A score equal to tau is not above. */
    const int64_t runs[] = {3, 1};
    const double scores[] = {1, 2, 3, 4};
    tsr_score_matrix m = {2, runs, scores};
    const double taus[] = {0, 2, 3.5, 4, -INFINITY};
    double out[5];
    tsr_stats_score_distribution(&m, taus, 5, out);
    const double want[] = {1, 0.5, 0.25, 0, 1};
    for (int i = 0; i < 5; i++) expect_near(out[i], want[i], "share above tau");
}

Test(stats, score_distribution_intervals_resample_within_tasks_and_repeat_for_a_seed)
{
    /* Equal runs within each task: every resample is the matrix itself. */
    const int64_t runs[] = {4, 3};
    const double flat[] = {0, 0, 0, 0, 10, 10, 10};
    tsr_score_matrix m = {2, runs, flat};
    const double taus[] = {-1, 5, 10};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.reps = 2000;
    tsr_estimate e[3];
    tsr_stats_bootstrap_score_distribution(&m, taus, 3, &o, e);
    const double want[] = {1, 3.0 / 7, 0};
    for (int i = 0; i < 3; i++) {
        expect_near(e[i].value, want[i], "point");
        cr_expect(e[i].lo == e[i].value && e[i].hi == e[i].value, "tau %g: [%g, %g]", taus[i],
                  e[i].lo, e[i].hi);
    }
    const int64_t runs2[] = {3, 4};
    const double scores[] = {0.1, 0.7, 0.3, 1.2, 0.4, 0.9, 0.2};
    tsr_score_matrix m2 = {2, runs2, scores};
    tsr_estimate a[3], b[3];
    o.seed = 7;
    tsr_stats_bootstrap_score_distribution(&m2, (const double[]){0.25, 0.5, 0.8}, 3, &o, a);
    tsr_stats_bootstrap_score_distribution(&m2, (const double[]){0.25, 0.5, 0.8}, 3, &o, b);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "same seed, same intervals");
    for (int i = 0; i < 3; i++)
        cr_expect(a[i].lo < a[i].value && a[i].value < a[i].hi, "tau %d: %g [%g, %g]", i,
                  a[i].value, a[i].lo, a[i].hi);
}

/* make_golden_stats.py's score_distribution_0.4 and _0.9 (every bound is the
 * exact quantile: the distributions have 9 and 5 atoms). */
Test(stats, golden_score_distribution_and_its_interval_match_the_exact_bootstrap)
{
    tsr_score_matrix m = {3, golden_runs, golden_scores};
    tsr_bootstrap_options o = tsr_bootstrap_default_options();
    o.seed = 3;
    const double taus[] = {0.4, 0.9};
    const golden want[] = {
        {7.0 / 12, 5.0 / 12, 5.0 / 12, 10.0 / 12, 10.0 / 12},
        {3.0 / 12, 1.0 / 12, 1.0 / 12, 4.0 / 12, 4.0 / 12},
    };
    tsr_estimate e[2];
    tsr_stats_bootstrap_score_distribution(&m, taus, 2, &o, e);
    expect_golden(e[0], want[0], "score distribution at 0.4");
    expect_golden(e[1], want[1], "score distribution at 0.9");
}

/* Scores must be finite: a NaN would poison the aggregates and break the
 * sorts' order silently, so it stops the program; so does an infinity. */
Test(stats, a_nan_score_aborts, .signal = SIGABRT)
{
    const int64_t runs[] = {2, 1};
    const double scores[] = {1, NAN, 3};
    tsr_score_matrix m = {2, runs, scores};
    double out[TSR_AGGREGATE_COUNT];
    tsr_stats_aggregates(&m, out);
}

Test(stats, an_infinite_score_aborts, .signal = SIGABRT)
{
    const int64_t runs[] = {3};
    const double scores[] = {1, 2, -INFINITY};
    tsr_score_matrix m = {1, runs, scores};
    double share;
    tsr_stats_score_distribution(&m, (const double[]){0}, 1, &share);
}
