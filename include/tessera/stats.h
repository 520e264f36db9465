/* stats.h — rliable's aggregate metrics and their stratified-bootstrap
 * confidence intervals (Agarwal et al. 2021; components.md §1.11).
 *
 * Scores form a runs × tasks matrix, stored task by task; a task may have a
 * different number of runs from the others (rliable needs a rectangle; with
 * one, every number here is rliable's). The metrics:
 *
 *   mean            mean over tasks of the per-task mean score
 *   median          median over tasks of the per-task mean score
 *   iqm             interquartile mean: scipy.stats.trim_mean(flat, 0.25) over
 *                   the flattened runs × tasks scores — with the n scores
 *                   sorted and lowercut = floor(0.25 n), the mean of
 *                   sorted[lowercut .. n − lowercut)
 *   optimality_gap  γ − mean(min(score, γ)) over the flattened scores, γ = 1
 *                   (how far below the reference score, clipped there)
 *
 * and, between two score matrices X and Y on the same tasks, the probability
 * of improvement P(X > Y): per task the Mann–Whitney U statistic of X's runs
 * against Y's, U / (n_x n_y) (a tie counts ½), averaged over tasks.
 *
 * Intervals come from rliable's stratified bootstrap: each resample draws
 * every task's runs with replacement from that task's own runs (tasks are
 * not resampled unless task_bootstrap, which first draws num_tasks tasks
 * with replacement), the metric is computed on the resample, and the interval
 * is the percentile interval — numpy.percentile (linear interpolation) of
 * the `reps` bootstrap values at (1 − coverage)/2 and (1 + coverage)/2.
 * For the probability of improvement X's and Y's runs are resampled
 * independently of each other, as rliable's StratifiedIndependentBootstrap
 * does. Defaults: 50,000 resamples, 95%.
 *
 * Draws come from one tsr_rng stream seeded with (seed,
 * TSR_RNG_STREAM_BOOTSTRAP) at the start of every call: equal inputs and
 * options give bit-identical intervals, and one group's interval does not
 * depend on which other groups are bootstrapped before it.
 */
#ifndef TESSERA_STATS_H
#define TESSERA_STATS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A runs × tasks score matrix, task-major: task 0's num_runs[0] scores, then
 * task 1's, ... Views only: the matrix owns nothing. Every task has at least
 * one run; scores are finite (the functions below abort on one that is not). */
typedef struct tsr_score_matrix {
    int64_t num_tasks;
    const int64_t *num_runs; /* (num_tasks) */
    const double *scores;    /* (sum of num_runs) */
} tsr_score_matrix;

typedef enum tsr_aggregate {
    TSR_AGGREGATE_MEAN = 0,
    TSR_AGGREGATE_MEDIAN,
    TSR_AGGREGATE_IQM,
    TSR_AGGREGATE_OPTIMALITY_GAP,
    TSR_AGGREGATE_COUNT,
} tsr_aggregate;

/* "mean", "median", "iqm", "optimality_gap" (tsr_aggregate order). */
extern const char *const tsr_aggregate_names[];

/* A point estimate and its confidence interval [lo, hi]. */
typedef struct tsr_estimate {
    double value, lo, hi;
} tsr_estimate;

typedef struct tsr_bootstrap_options {
    int64_t reps;    /* resamples, >= 1 (rliable: 50,000) */
    double coverage; /* in (0, 1) (rliable: 0.95) */
    uint64_t seed;
    /* rliable's task_bootstrap: each resample first draws the tasks with
     * replacement (num_tasks of them), then each drawn task's runs within
     * it. The interval then also covers the choice of tasks, as if they
     * came from a larger population. Off by default, as in rliable; not
     * for P(X > Y), which rliable resamples over runs only. */
    bool task_bootstrap;
} tsr_bootstrap_options;

/* The bootstrap's stream id (ASCII "BOOT"), beside rng.h's own. */
enum { TSR_RNG_STREAM_BOOTSTRAP = 0x424F4F54 };
enum { TSR_BOOTSTRAP_DEFAULT_REPS = 50000 };

/* 50,000 resamples, 95% coverage, seed 0, runs resampled within tasks only. */
tsr_bootstrap_options tsr_bootstrap_default_options(void);

/* Scores in the matrix (sum of num_runs). */
int64_t tsr_score_matrix_size(const tsr_score_matrix *m);

/* scipy.stats.trim_mean(values, proportion): sorts `values` in place, cuts
 * floor(proportion n) from each end and returns the mean of the rest.
 * 0 <= proportion < 0.5, n >= 1. */
double tsr_stats_trim_mean(double *values, int64_t n, double proportion);

/* numpy.percentile(values, 100 q) with linear interpolation: sorts `values`
 * in place. 0 <= q <= 1, n >= 1. */
double tsr_stats_percentile(double *values, int64_t n, double q);

/* The four aggregates of `m`, indexed by tsr_aggregate. */
void tsr_stats_aggregates(const tsr_score_matrix *m, double out[TSR_AGGREGATE_COUNT]);

/* P(X > Y) averaged over tasks; x and y have the same number of tasks, task t
 * of one being task t of the other. */
double tsr_stats_probability_of_improvement(const tsr_score_matrix *x, const tsr_score_matrix *y);

/* The four aggregates with their stratified-bootstrap intervals, all from the
 * same resamples (as rliable computes them through one function). */
void tsr_stats_bootstrap_aggregates(const tsr_score_matrix *m, const tsr_bootstrap_options *options,
                                    tsr_estimate out[TSR_AGGREGATE_COUNT]);

/* Only the IQM and its interval (learning curves: one per iteration). */
tsr_estimate tsr_stats_bootstrap_iqm(const tsr_score_matrix *m, const tsr_bootstrap_options *options);

/* P(X > Y) with its interval, X's and Y's runs resampled independently
 * within each task (options->task_bootstrap must be false). */
tsr_estimate tsr_stats_bootstrap_probability_of_improvement(const tsr_score_matrix *x,
                                                            const tsr_score_matrix *y,
                                                            const tsr_bootstrap_options *options);

/* rliable's score distribution, the performance profile of
 * create_performance_profile (use_score_distribution = True): for each
 * threshold taus[i], the share of the flattened runs × tasks scores above it,
 * np.mean(scores > tau). out has num_taus values. */
void tsr_stats_score_distribution(const tsr_score_matrix *m, const double *taus, int64_t num_taus,
                                  double *out);

/* The score distribution with stratified-bootstrap intervals, every
 * threshold computed on the same resamples (rliable bootstraps the whole
 * profile at once; its default there is 2,000 resamples). out has num_taus
 * estimates. */
void tsr_stats_bootstrap_score_distribution(const tsr_score_matrix *m, const double *taus,
                                            int64_t num_taus, const tsr_bootstrap_options *options,
                                            tsr_estimate *out);

#ifdef __cplusplus
}
#endif

#endif
