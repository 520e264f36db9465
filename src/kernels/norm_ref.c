/* norm_ref.c — softmax, log-softmax, layer norm and L2 normalisation
 * reference kernels (templated on `real`).
 *
 * A reduction "over an axis" sees the tensor as (outer, len, inner): element
 * (o, l, i) sits at (o * len + l) * inner + i, so the last axis is inner = 1
 * and any other axis needs no transpose. Each (o, i) line is reduced by one
 * thread, in order, in double: results do not depend on the thread count. */
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/real.h"

/* Below this many elements a kernel stays on one thread. */
#define PARALLEL_MIN_ELEMENTS 32768

/* ==== softmax and log-softmax ============================================ */

void TSR_FN(tsr_ref_softmax_fwd)(const real *x, real *y, int64_t outer, int64_t len,
                                 int64_t inner, bool log_softmax)
{
    int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * len >= PARALLEL_MIN_ELEMENTS)
    for (int64_t line = 0; line < lines; line++) {
        int64_t base = (line / inner) * len * inner + line % inner;
        const real *xl = x + base;
        real *yl = y + base;
        double max = xl[0];
        for (int64_t l = 1; l < len; l++)
            if (xl[l * inner] > max) max = xl[l * inner];
        double sum = 0;
        for (int64_t l = 0; l < len; l++) sum += exp(xl[l * inner] - max);
        if (log_softmax) {
            double shift = max + log(sum);
            for (int64_t l = 0; l < len; l++) yl[l * inner] = (real)(xl[l * inner] - shift);
        } else {
            for (int64_t l = 0; l < len; l++)
                yl[l * inner] = (real)(exp(xl[l * inner] - max) / sum);
        }
    }
}

/* The lines of a block of up to INNER_BLOCK neighbouring i are reduced
 * together, walking contiguous rows of the block instead of one strided line
 * at a time; each line's sum still runs over l in order, in double, so the
 * results are those of one line at a time. */
enum { INNER_BLOCK = 64 };

void TSR_FN(tsr_ref_softmax_bwd)(const real *y, const real *dy, real *dx, int64_t outer,
                                 int64_t len, int64_t inner, bool log_softmax, bool accumulate)
{
    int64_t blocks = (inner + INNER_BLOCK - 1) / INNER_BLOCK, tasks = outer * blocks;
#pragma omp parallel for schedule(static) if (outer * len * inner >= PARALLEL_MIN_ELEMENTS)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t o = task / blocks, i0 = (task % blocks) * INNER_BLOCK;
        int64_t width = inner - i0 < INNER_BLOCK ? inner - i0 : INNER_BLOCK;
        int64_t base = o * len * inner + i0;
        /* softmax: dx = y * (dy - sum(dy * y)); log-softmax: dx = dy - exp(y) * sum(dy). */
        double dot[INNER_BLOCK];
        for (int64_t i = 0; i < width; i++) dot[i] = 0;
        for (int64_t l = 0; l < len; l++) {
            const real *yl = y + base + l * inner, *dyl = dy + base + l * inner;
            if (log_softmax)
                for (int64_t i = 0; i < width; i++) dot[i] += (double)dyl[i];
            else
                for (int64_t i = 0; i < width; i++) dot[i] += (double)dyl[i] * yl[i];
        }
        for (int64_t l = 0; l < len; l++) {
            const real *yl = y + base + l * inner, *dyl = dy + base + l * inner;
            real *dxl = dx + base + l * inner;
            for (int64_t i = 0; i < width; i++) {
                double g = log_softmax ? dyl[i] - exp(yl[i]) * dot[i] : yl[i] * (dyl[i] - dot[i]);
                dxl[i] = accumulate ? dxl[i] + (real)g : (real)g;
            }
        }
    }
}

/* ==== layer norm ========================================================= */

void TSR_FN(tsr_ref_layer_norm_fwd)(const real *x, const real *gamma, const real *beta, real *y,
                                    real *mean, real *variance, int64_t rows, int64_t width,
                                    double eps)
{
#pragma omp parallel for schedule(static) if (rows * width >= PARALLEL_MIN_ELEMENTS)
    for (int64_t r = 0; r < rows; r++) {
        const real *xr = x + r * width;
        real *yr = y + r * width;
        double mu = 0;
        for (int64_t c = 0; c < width; c++) mu += xr[c];
        mu /= (double)width;
        double var = 0;
        for (int64_t c = 0; c < width; c++) var += (xr[c] - mu) * (xr[c] - mu);
        var /= (double)width;
        double rstd = 1.0 / sqrt(var + eps);
        for (int64_t c = 0; c < width; c++) {
            double v = (xr[c] - mu) * rstd;
            if (gamma) v *= gamma[c];
            if (beta) v += beta[c];
            yr[c] = (real)v;
        }
        if (mean) mean[r] = (real)mu;
        if (variance) variance[r] = (real)var;
    }
}

void TSR_FN(tsr_ref_layer_norm_bwd)(const real *x, const real *gamma, const real *mean,
                                    const real *variance, const real *dy, real *dx, real *dgamma,
                                    real *dbeta, int64_t rows, int64_t width, double eps,
                                    bool accumulate_x, bool accumulate_gamma, bool accumulate_beta)
{
    if (dx) {
#pragma omp parallel for schedule(static) if (rows * width >= PARALLEL_MIN_ELEMENTS)
        for (int64_t r = 0; r < rows; r++) {
            const real *xr = x + r * width, *dyr = dy + r * width;
            real *dxr = dx + r * width;
            double mu = mean[r], rstd = 1.0 / sqrt((double)variance[r] + eps);
            /* With g = dy * gamma and xhat = (x - mean) * rstd:
             * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
            double mean_g = 0, mean_gx = 0;
            for (int64_t c = 0; c < width; c++) {
                double g = gamma ? (double)dyr[c] * gamma[c] : dyr[c];
                mean_g += g;
                mean_gx += g * (xr[c] - mu) * rstd;
            }
            mean_g /= (double)width;
            mean_gx /= (double)width;
            for (int64_t c = 0; c < width; c++) {
                double g = gamma ? (double)dyr[c] * gamma[c] : dyr[c];
                double v = rstd * (g - mean_g - (xr[c] - mu) * rstd * mean_gx);
                dxr[c] = accumulate_x ? dxr[c] + (real)v : (real)v;
            }
        }
    }
    if (!dgamma && !dbeta) return;
#pragma omp parallel for schedule(static) if (rows * width >= PARALLEL_MIN_ELEMENTS)
    for (int64_t c = 0; c < width; c++) {
        double sum_g = 0, sum_b = 0;
        for (int64_t r = 0; r < rows; r++) {
            double d = dy[r * width + c];
            sum_g += d * (x[r * width + c] - mean[r]) / sqrt((double)variance[r] + eps);
            sum_b += d;
        }
        if (dgamma) dgamma[c] = accumulate_gamma ? dgamma[c] + (real)sum_g : (real)sum_g;
        if (dbeta) dbeta[c] = accumulate_beta ? dbeta[c] + (real)sum_b : (real)sum_b;
    }
}

/* ==== L2 normalisation ================================================== */

void TSR_FN(tsr_ref_l2_normalize_fwd)(const real *x, real *y, int64_t outer, int64_t len,
                                      int64_t inner, double eps)
{
    int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * len >= PARALLEL_MIN_ELEMENTS)
    for (int64_t line = 0; line < lines; line++) {
        int64_t base = (line / inner) * len * inner + line % inner;
        double sq = 0;
        for (int64_t l = 0; l < len; l++) sq += (double)x[base + l * inner] * x[base + l * inner];
        /* A zero line with eps 0 maps to zeros rather than 0 / 0. */
        double denom = sqrt(sq) + eps;
        double scale = denom > 0 ? 1.0 / denom : 0.0;
        for (int64_t l = 0; l < len; l++) y[base + l * inner] = (real)(x[base + l * inner] * scale);
    }
}

void TSR_FN(tsr_ref_l2_normalize_bwd)(const real *x, const real *dy, real *dx, int64_t outer,
                                      int64_t len, int64_t inner, double eps, bool accumulate)
{
    int64_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * len >= PARALLEL_MIN_ELEMENTS)
    for (int64_t line = 0; line < lines; line++) {
        int64_t base = (line / inner) * len * inner + line % inner;
        double sq = 0, dot = 0;
        for (int64_t l = 0; l < len; l++) {
            double xv = x[base + l * inner];
            sq += xv * xv;
            dot += xv * dy[base + l * inner];
        }
        double norm = sqrt(sq), denom = norm + eps;
        /* d(x_i / (|x| + eps)) / dx_j = delta_ij / denom - x_i x_j / (denom^2 |x|);
         * at x = 0, where the norm has no derivative, the second term is
         * dropped (the norm is treated as a constant there). */
        double coef = norm > 0 ? dot / (denom * denom * norm) : 0.0;
        double scale = denom > 0 ? 1.0 / denom : 0.0; /* zero line, eps 0: y is held at 0 */
        for (int64_t l = 0; l < len; l++) {
            double v = dy[base + l * inner] * scale - x[base + l * inner] * coef;
            dx[base + l * inner] = accumulate ? dx[base + l * inner] + (real)v : (real)v;
        }
    }
}
