/* losses_ref.c — value-loss reference kernels (templated on `real`).
 *
 * These are the only kernels of the value losses: oneDNN has no fused
 * softmax-cross-entropy or projection primitive, and at RL sizes ((32, 51)
 * per step) a row loop in double costs microseconds. Each row is handled by
 * one thread in a fixed order; see losses_kernels.h for the contracts. */
#include <math.h>
#include <stddef.h>

#include "kernels/losses_kernels.h"
#include "kernels/real.h"

/* Below this many elements a kernel stays on one thread. */
#define PARALLEL_MIN_ELEMENTS 32768

/* Softmax of one row of k logits into p (double), returning log-sum-exp. */
static double row_softmax(const real *x, int64_t k, double *p_or_null)
{
    double max = x[0];
    for (int64_t i = 1; i < k; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (int64_t i = 0; i < k; i++) sum += exp((double)x[i] - max);
    double lse = max + log(sum);
    if (p_or_null)
        for (int64_t i = 0; i < k; i++) p_or_null[i] = exp((double)x[i] - lse);
    return lse;
}

/* ==== cross-entropy against a target distribution ======================== */

void TSR_FN(tsr_ref_xent_fwd)(const real *logits, const real *target, real *loss, real *probs,
                              int64_t n, int64_t k)
{
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        const real *x = logits + r * k, *t = target + r * k;
        double lse = row_softmax(x, k, NULL);
        /* -sum t (x - lse) = lse * sum t - sum t x */
        double mass = 0, dot = 0;
        for (int64_t i = 0; i < k; i++) {
            mass += t[i];
            dot += (double)t[i] * x[i];
        }
        loss[r] = (real)(lse * mass - dot);
        if (probs)
            for (int64_t i = 0; i < k; i++) probs[r * k + i] = (real)exp((double)x[i] - lse);
    }
}

void TSR_FN(tsr_ref_xent_bwd)(const real *probs, const real *target, const real *dloss,
                              real *dlogits, int64_t n, int64_t k, bool accumulate)
{
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        const real *p = probs + r * k, *t = target + r * k;
        real *dx = dlogits + r * k;
        double mass = 0;
        for (int64_t i = 0; i < k; i++) mass += t[i];
        for (int64_t i = 0; i < k; i++) {
            double g = (double)dloss[r] * ((double)p[i] * mass - t[i]);
            dx[i] = accumulate ? dx[i] + (real)g : (real)g;
        }
    }
}

/* ==== scalar losses ====================================================== */

void TSR_FN(tsr_ref_mse_fwd)(const real *pred, const real *target, real *loss, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double d = (double)target[i] - pred[i];
        loss[i] = (real)(d * d);
    }
}

void TSR_FN(tsr_ref_mse_bwd)(const real *pred, const real *target, const real *dloss,
                             real *dpred, int64_t n, bool accumulate)
{
    for (int64_t i = 0; i < n; i++) {
        double g = 2.0 * ((double)pred[i] - target[i]) * dloss[i];
        dpred[i] = accumulate ? dpred[i] + (real)g : (real)g;
    }
}

void TSR_FN(tsr_ref_huber_fwd)(const real *pred, const real *target, real *loss, int64_t n,
                               double delta)
{
    for (int64_t i = 0; i < n; i++) {
        double x = fabs((double)target[i] - pred[i]);
        loss[i] = (real)(x <= delta ? 0.5 * x * x : 0.5 * delta * delta + delta * (x - delta));
    }
}

void TSR_FN(tsr_ref_huber_bwd)(const real *pred, const real *target, const real *dloss,
                               real *dpred, int64_t n, double delta, bool accumulate)
{
    for (int64_t i = 0; i < n; i++) {
        double d = (double)pred[i] - target[i];
        double g = (d > delta ? delta : d < -delta ? -delta : d) * dloss[i];
        dpred[i] = accumulate ? dpred[i] + (real)g : (real)g;
    }
}

/* ==== value readout ====================================================== */

void TSR_FN(tsr_ref_readout_fwd)(const real *logits, const double *values, real *probs, real *y,
                                 int64_t n, int64_t k)
{
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        const real *x = logits + r * k;
        double lse = row_softmax(x, k, NULL);
        double sum = 0;
        for (int64_t i = 0; i < k; i++) {
            double p = exp((double)x[i] - lse);
            sum += p * values[i];
            if (probs) probs[r * k + i] = (real)p;
        }
        y[r] = (real)sum;
    }
}

void TSR_FN(tsr_ref_readout_bwd)(const real *probs, const double *values, const real *y,
                                 const real *dy, real *dlogits, int64_t n, int64_t k,
                                 bool accumulate)
{
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        const real *p = probs + r * k;
        real *dx = dlogits + r * k;
        for (int64_t i = 0; i < k; i++) {
            double g = (double)dy[r] * p[i] * (values[i] - (double)y[r]);
            dx[i] = accumulate ? dx[i] + (real)g : (real)g;
        }
    }
}

/* ==== projections onto a support ========================================= */

/* Adds `mass` placed at `t` to the row `out` of k atoms vmin + i * spacing:
 * the triangular kernel clip(1 - |t - z_i| / spacing, 0, 1) is non-zero on at
 * most the two atoms around t, with weights 1 - frac and frac. */
static void scatter_point(real *out, int64_t k, double t, double mass, double vmin, double vmax,
                          double spacing)
{
    if (isnan(t)) { /* a diverged target: the row, and so the loss, is NaN */
        for (int64_t i = 0; i < k; i++) out[i] = (real)NAN;
        return;
    }
    t = t < vmin ? vmin : t > vmax ? vmax : t;
    double b = (t - vmin) / spacing;
    double last = (double)(k - 1);
    if (b > last) b = last; /* rounding of (vmax - vmin) / spacing */
    int64_t l = (int64_t)floor(b);
    double frac = b - (double)l;
    out[l] += (real)(mass * (1.0 - frac));
    if (l + 1 < k) out[l + 1] += (real)(mass * frac);
}

void TSR_FN(tsr_ref_categorical_project)(const real *probs, const double *shift,
                                         const double *scale, const double *atoms, real *out,
                                         int64_t n, int64_t k, double vmin, double vmax,
                                         double spacing)
{
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        real *m = out + r * k;
        for (int64_t i = 0; i < k; i++) m[i] = 0;
        for (int64_t j = 0; j < k; j++)
            scatter_point(m, k, shift[r] + scale[r] * atoms[j], probs[r * k + j], vmin, vmax,
                          spacing);
    }
}

void TSR_FN(tsr_ref_twohot)(const real *y, real *out, int64_t n, int64_t k, double vmin,
                            double vmax, double spacing)
{
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        real *m = out + r * k;
        for (int64_t i = 0; i < k; i++) m[i] = 0;
        scatter_point(m, k, y[r], 1.0, vmin, vmax, spacing);
    }
}

void TSR_FN(tsr_ref_hlgauss)(const real *y, const double *edges, real *out, int64_t n, int64_t k,
                             double sigma)
{
    double inv = 1.0 / (sqrt(2.0) * sigma);
#pragma omp parallel for schedule(static) if (n * k >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < n; r++) {
        /* Clipping first keeps the normaliser at least erf(width / (sqrt(2) sigma)) / 2
         * (y on an edge); a y several sigma outside would make it 0 and the row NaN. */
        double t = y[r];
        t = t < edges[0] ? edges[0] : t > edges[k] ? edges[k] : t;
        double lo = erf((edges[0] - t) * inv);
        double norm = erf((edges[k] - t) * inv) - lo;
        double prev = lo;
        for (int64_t i = 0; i < k; i++) {
            double cur = erf((edges[i + 1] - t) * inv);
            out[r * k + i] = (real)((cur - prev) / norm);
            prev = cur;
        }
    }
}
