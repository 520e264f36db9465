/* stats.c — rliable's aggregate metrics and the stratified bootstrap. */
#include "tessera/stats.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/rng.h"
#include "tessera/status.h"

const char *const tsr_aggregate_names[] = {"mean", "median", "iqm", "optimality_gap"};

/* γ of the optimality gap: scores are taken as normalised, 1 = the reference. */
static const double optimality_gamma = 1.0;

tsr_bootstrap_options tsr_bootstrap_default_options(void)
{
    return (tsr_bootstrap_options){
        .reps = TSR_BOOTSTRAP_DEFAULT_REPS, .coverage = 0.95, .seed = 0, .task_bootstrap = false};
}

static void check_matrix(const tsr_score_matrix *m)
{
    TSR_ASSERT(m && m->num_runs && m->scores);
    TSR_ASSERT_MSG(m->num_tasks >= 1, "a score matrix needs a task, has %lld",
                   (long long)m->num_tasks);
    for (int64_t t = 0; t < m->num_tasks; t++)
        TSR_ASSERT_MSG(m->num_runs[t] >= 1, "task %lld has %lld runs", (long long)t,
                       (long long)m->num_runs[t]);
    /* A NaN would poison every aggregate and break the sorts' order. */
    int64_t size = tsr_score_matrix_size(m);
    for (int64_t i = 0; i < size; i++)
        TSR_ASSERT_MSG(isfinite(m->scores[i]), "score %lld of the matrix is %g; scores must be "
                       "finite", (long long)i, m->scores[i]);
}

int64_t tsr_score_matrix_size(const tsr_score_matrix *m)
{
    int64_t n = 0;
    for (int64_t t = 0; t < m->num_tasks; t++) n += m->num_runs[t];
    return n;
}

/* ---- sorting-based statistics -------------------------------------------- */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sort_doubles(double *values, int64_t n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
}

double tsr_stats_trim_mean(double *values, int64_t n, double proportion)
{
    TSR_ASSERT(values && n >= 1);
    TSR_ASSERT_MSG(proportion >= 0 && proportion < 0.5, "proportion %g", proportion);
    /* scipy: lowercut = int(proportiontocut * nobs), a truncation. */
    int64_t lowercut = (int64_t)(proportion * (double)n);
    sort_doubles(values, n);
    double sum = 0;
    for (int64_t i = lowercut; i < n - lowercut; i++) sum += values[i];
    return sum / (double)(n - 2 * lowercut);
}

double tsr_stats_percentile(double *values, int64_t n, double q)
{
    TSR_ASSERT(values && n >= 1);
    TSR_ASSERT_MSG(q >= 0 && q <= 1, "q %g", q);
    sort_doubles(values, n);
    double h = q * (double)(n - 1);
    int64_t below = (int64_t)floor(h);
    if (below >= n - 1) return values[n - 1];
    double t = h - (double)below, a = values[below], b = values[below + 1], d = b - a;
    /* numpy's _lerp: from the nearer end, so that t = 1 gives b exactly. */
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/* numpy.median of task_means (sorted in place). */
static double median_of(double *values, int64_t n)
{
    sort_doubles(values, n);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/* ---- aggregates ------------------------------------------------------------ */

/* The aggregates of m into out[]; only the IQM when iqm_only. scratch holds
 * size + num_tasks doubles. */
static void compute_aggregates(const tsr_score_matrix *m, int64_t size, double *scratch,
                               bool iqm_only, double out[TSR_AGGREGATE_COUNT])
{
    memcpy(scratch, m->scores, (size_t)size * sizeof *scratch);
    out[TSR_AGGREGATE_IQM] = tsr_stats_trim_mean(scratch, size, 0.25);
    if (iqm_only) return;

    double *task_means = scratch + size;
    double sum_of_means = 0, sum_clipped = 0;
    const double *s = m->scores;
    for (int64_t t = 0; t < m->num_tasks; t++) {
        double sum = 0;
        for (int64_t r = 0; r < m->num_runs[t]; r++) {
            sum += s[r];
            sum_clipped += s[r] < optimality_gamma ? s[r] : optimality_gamma;
        }
        task_means[t] = sum / (double)m->num_runs[t];
        sum_of_means += task_means[t];
        s += m->num_runs[t];
    }
    out[TSR_AGGREGATE_MEAN] = sum_of_means / (double)m->num_tasks;
    out[TSR_AGGREGATE_OPTIMALITY_GAP] = optimality_gamma - sum_clipped / (double)size;
    out[TSR_AGGREGATE_MEDIAN] = median_of(task_means, m->num_tasks);
}

void tsr_stats_aggregates(const tsr_score_matrix *m, double out[TSR_AGGREGATE_COUNT])
{
    check_matrix(m);
    int64_t size = tsr_score_matrix_size(m);
    double *scratch = tsr_malloc((size_t)(size + m->num_tasks) * sizeof *scratch);
    compute_aggregates(m, size, scratch, false, out);
    tsr_free(scratch);
}

double tsr_stats_probability_of_improvement(const tsr_score_matrix *x, const tsr_score_matrix *y)
{
    check_matrix(x);
    check_matrix(y);
    TSR_ASSERT_MSG(x->num_tasks == y->num_tasks, "X has %lld tasks, Y %lld",
                   (long long)x->num_tasks, (long long)y->num_tasks);
    const double *xs = x->scores, *ys = y->scores;
    double sum = 0;
    for (int64_t t = 0; t < x->num_tasks; t++) {
        int64_t nx = x->num_runs[t], ny = y->num_runs[t];
        /* Mann–Whitney U of X against Y, doubled to stay in integers. */
        int64_t twice_u = 0;
        for (int64_t i = 0; i < nx; i++)
            for (int64_t j = 0; j < ny; j++) twice_u += (xs[i] > ys[j]) * 2 + (xs[i] == ys[j]);
        sum += (double)twice_u / (2.0 * (double)nx * (double)ny);
        xs += nx;
        ys += ny;
    }
    return sum / (double)x->num_tasks;
}

/* ---- the stratified bootstrap ---------------------------------------------- */

static void check_options(const tsr_bootstrap_options *o)
{
    TSR_ASSERT(o);
    TSR_ASSERT_MSG(o->reps >= 1, "reps %lld", (long long)o->reps);
    TSR_ASSERT_MSG(o->coverage > 0 && o->coverage < 1, "coverage %g", o->coverage);
}

/* Draws every task's runs with replacement from that task's own runs into
 * `out` (the matrix's size). */
static void resample_runs(const tsr_score_matrix *m, tsr_rng *rng, double *out)
{
    const double *s = m->scores;
    for (int64_t t = 0; t < m->num_tasks; t++) {
        int64_t n = m->num_runs[t];
        for (int64_t r = 0; r < n; r++) out[r] = s[tsr_rng_below(rng, (uint64_t)n)];
        s += n;
        out += n;
    }
}

/* The resamples of one bootstrap: `matrix` views `scores` and `num_runs`,
 * sized for the largest resample (num_tasks times the most runs of a task:
 * with task_bootstrap a resample can draw that task every time). */
typedef struct resampler {
    const tsr_score_matrix *m;
    bool task_bootstrap;
    int64_t *offsets; /* (num_tasks) where each task's runs start in m->scores */
    int64_t *num_runs; /* (num_tasks) the resample's, with task_bootstrap */
    double *scores;    /* (capacity) */
    int64_t capacity;
    tsr_score_matrix matrix;
} resampler;

static void resampler_init(resampler *rs, const tsr_score_matrix *m, bool task_bootstrap)
{
    int64_t most = 0, size = 0;
    rs->m = m;
    rs->task_bootstrap = task_bootstrap;
    rs->offsets = tsr_malloc((size_t)(2 * m->num_tasks) * sizeof *rs->offsets);
    rs->num_runs = rs->offsets + m->num_tasks;
    for (int64_t t = 0; t < m->num_tasks; t++) {
        rs->offsets[t] = size;
        size += m->num_runs[t];
        if (m->num_runs[t] > most) most = m->num_runs[t];
    }
    rs->capacity = task_bootstrap ? most * m->num_tasks : size;
    rs->scores = tsr_malloc((size_t)rs->capacity * sizeof *rs->scores);
    rs->matrix =
        (tsr_score_matrix){m->num_tasks, task_bootstrap ? rs->num_runs : m->num_runs, rs->scores};
}

static void resampler_free(resampler *rs)
{
    tsr_free(rs->offsets);
    tsr_free(rs->scores);
}

/* Draws the next resample into rs->matrix; returns its size. Over runs only,
 * the draws are resample_runs's; with task_bootstrap, each of the num_tasks
 * places first draws a task, then that task's runs. */
static int64_t resample(resampler *rs, tsr_rng *rng)
{
    const tsr_score_matrix *m = rs->m;
    if (!rs->task_bootstrap) {
        resample_runs(m, rng, rs->scores);
        return rs->capacity;
    }
    int64_t size = 0;
    for (int64_t j = 0; j < m->num_tasks; j++) {
        int64_t t = (int64_t)tsr_rng_below(rng, (uint64_t)m->num_tasks);
        int64_t n = m->num_runs[t];
        const double *s = m->scores + rs->offsets[t];
        for (int64_t r = 0; r < n; r++) rs->scores[size + r] = s[tsr_rng_below(rng, (uint64_t)n)];
        rs->num_runs[j] = n;
        size += n;
    }
    return size;
}

/* The percentile interval of `values` (reps of them, sorted in place). */
static void percentile_interval(double *values, int64_t reps, double coverage, tsr_estimate *e)
{
    e->lo = tsr_stats_percentile(values, reps, (1 - coverage) / 2);
    e->hi = tsr_stats_percentile(values, reps, (1 + coverage) / 2);
}

/* All aggregates (or only the IQM) with intervals; one allocation for the
 * scratch space and every bootstrap value, one for the resamples. */
static void bootstrap_aggregates(const tsr_score_matrix *m, const tsr_bootstrap_options *o,
                                 bool iqm_only, tsr_estimate out[TSR_AGGREGATE_COUNT])
{
    check_matrix(m);
    check_options(o);
    int64_t size = tsr_score_matrix_size(m);
    int64_t reps = o->reps;
    resampler rs;
    resampler_init(&rs, m, o->task_bootstrap);
    double *block = tsr_malloc((size_t)(rs.capacity + m->num_tasks + TSR_AGGREGATE_COUNT * reps) *
                               sizeof *block);
    double *scratch = block;
    double *values = scratch + rs.capacity + m->num_tasks; /* (TSR_AGGREGATE_COUNT, reps) */

    double point[TSR_AGGREGATE_COUNT];
    compute_aggregates(m, size, scratch, iqm_only, point);

    tsr_rng rng;
    tsr_rng_init(&rng, o->seed, TSR_RNG_STREAM_BOOTSTRAP);
    for (int64_t r = 0; r < reps; r++) {
        int64_t n = resample(&rs, &rng);
        double a[TSR_AGGREGATE_COUNT];
        compute_aggregates(&rs.matrix, n, scratch, iqm_only, a);
        for (int k = 0; k < TSR_AGGREGATE_COUNT; k++)
            if (!iqm_only || k == TSR_AGGREGATE_IQM) values[k * reps + r] = a[k];
    }
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) {
        if (iqm_only && k != TSR_AGGREGATE_IQM) continue;
        out[k].value = point[k];
        percentile_interval(values + k * reps, reps, o->coverage, &out[k]);
    }
    tsr_free(block);
    resampler_free(&rs);
}

void tsr_stats_bootstrap_aggregates(const tsr_score_matrix *m, const tsr_bootstrap_options *options,
                                    tsr_estimate out[TSR_AGGREGATE_COUNT])
{
    bootstrap_aggregates(m, options, false, out);
}

tsr_estimate tsr_stats_bootstrap_iqm(const tsr_score_matrix *m, const tsr_bootstrap_options *options)
{
    tsr_estimate out[TSR_AGGREGATE_COUNT];
    bootstrap_aggregates(m, options, true, out);
    return out[TSR_AGGREGATE_IQM];
}

tsr_estimate tsr_stats_bootstrap_probability_of_improvement(const tsr_score_matrix *x,
                                                            const tsr_score_matrix *y,
                                                            const tsr_bootstrap_options *options)
{
    check_options(options);
    TSR_ASSERT_MSG(!options->task_bootstrap, "P(X > Y) resamples runs only (as rliable): "
                   "task_bootstrap must be false");
    tsr_estimate e;
    e.value = tsr_stats_probability_of_improvement(x, y); /* checks x and y */
    int64_t size_x = tsr_score_matrix_size(x), size_y = tsr_score_matrix_size(y);
    int64_t reps = options->reps;
    double *block = tsr_malloc((size_t)(size_x + size_y + reps) * sizeof *block);
    double *resample_x = block, *resample_y = block + size_x, *values = resample_y + size_y;
    tsr_score_matrix rx = {x->num_tasks, x->num_runs, resample_x};
    tsr_score_matrix ry = {y->num_tasks, y->num_runs, resample_y};

    tsr_rng rng;
    tsr_rng_init(&rng, options->seed, TSR_RNG_STREAM_BOOTSTRAP);
    for (int64_t r = 0; r < reps; r++) {
        resample_runs(x, &rng, resample_x);
        resample_runs(y, &rng, resample_y);
        values[r] = tsr_stats_probability_of_improvement(&rx, &ry);
    }
    percentile_interval(values, reps, options->coverage, &e);
    tsr_free(block);
    return e;
}

/* ---- performance profiles -------------------------------------------------- */

/* The share of sorted[0 .. n) above each tau: n minus the first index whose
 * value is above tau, over n. */
static void shares_above(const double *sorted, int64_t n, const double *taus, int64_t num_taus,
                         double *out)
{
    for (int64_t i = 0; i < num_taus; i++) {
        int64_t lo = 0, hi = n; /* the first index with sorted[index] > tau is in [lo, hi] */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (sorted[mid] > taus[i]) hi = mid;
            else lo = mid + 1;
        }
        out[i] = (double)(n - lo) / (double)n;
    }
}

void tsr_stats_score_distribution(const tsr_score_matrix *m, const double *taus, int64_t num_taus,
                                  double *out)
{
    check_matrix(m);
    TSR_ASSERT(num_taus >= 0 && (taus || !num_taus) && (out || !num_taus));
    int64_t size = tsr_score_matrix_size(m);
    double *sorted = tsr_malloc((size_t)size * sizeof *sorted);
    memcpy(sorted, m->scores, (size_t)size * sizeof *sorted);
    sort_doubles(sorted, size);
    shares_above(sorted, size, taus, num_taus, out);
    tsr_free(sorted);
}

void tsr_stats_bootstrap_score_distribution(const tsr_score_matrix *m, const double *taus,
                                            int64_t num_taus, const tsr_bootstrap_options *options,
                                            tsr_estimate *out)
{
    check_matrix(m);
    check_options(options);
    TSR_ASSERT(num_taus >= 0 && (taus || !num_taus) && (out || !num_taus));
    int64_t reps = options->reps;
    resampler rs;
    resampler_init(&rs, m, options->task_bootstrap);
    double *block = tsr_malloc((size_t)(num_taus + num_taus * reps) * sizeof *block);
    double *shares = block;
    double *values = shares + num_taus; /* (num_taus, reps) */
    tsr_stats_score_distribution(m, taus, num_taus, shares);
    for (int64_t i = 0; i < num_taus; i++) out[i].value = shares[i];

    tsr_rng rng;
    tsr_rng_init(&rng, options->seed, TSR_RNG_STREAM_BOOTSTRAP);
    for (int64_t r = 0; r < reps; r++) {
        int64_t n = resample(&rs, &rng);
        sort_doubles(rs.scores, n);
        shares_above(rs.scores, n, taus, num_taus, shares);
        for (int64_t i = 0; i < num_taus; i++) values[i * reps + r] = shares[i];
    }
    for (int64_t i = 0; i < num_taus; i++)
        percentile_interval(values + i * reps, reps, options->coverage, &out[i]);
    tsr_free(block);
    resampler_free(&rs);
}
