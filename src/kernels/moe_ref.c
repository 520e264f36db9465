/* moe_ref.c — reference kernels of the mixture-of-experts ops (templated on
 * `real`): a bias per expert, row gathers with a weight per row, and the
 * squared coefficient of variation of the load-balancing loss. */
#include "kernels/moe_kernels.h"
#include "kernels/real.h"

/* Loops over fewer elements than this stay on one thread (tiny RL tensors);
 * each output element is computed the same way whatever the thread count. */
enum { PARALLEL_MIN = 1 << 15 };

/* ==== bias per expert ===================================================== */

void TSR_FN(tsr_ref_batched_bias_fwd)(const real *x, const real *bias, real *y, int64_t batch,
                                      int64_t m, int64_t p, bool relu)
{
    int64_t rows = batch * m;
#pragma omp parallel for schedule(static) if (rows * p > PARALLEL_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const real *xr = x + r * p, *br = bias + (r / m) * p;
        real *yr = y + r * p;
        if (relu)
            for (int64_t j = 0; j < p; j++) {
                real v = xr[j] + br[j];
                yr[j] = v > 0 ? v : 0;
            }
        else
            for (int64_t j = 0; j < p; j++) yr[j] = xr[j] + br[j];
    }
}

void TSR_FN(tsr_ref_batched_bias_bwd)(const real *y, const real *dy, real *dx, real *dbias,
                                      int64_t batch, int64_t m, int64_t p, bool relu,
                                      bool accumulate_x, bool accumulate_b)
{
    /* Tasks are (expert, block of COLUMNS columns): each walks its rows in
     * order, reading COLUMNS contiguous values per row, and owns its outputs. */
    enum { COLUMNS = 64 };
    int64_t blocks = (p + COLUMNS - 1) / COLUMNS, tasks = batch * blocks;
#pragma omp parallel for schedule(static) if (batch * m * p > PARALLEL_MIN && tasks > 1)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t b = task / blocks, j0 = (task % blocks) * COLUMNS;
        int64_t width = p - j0 < COLUMNS ? p - j0 : COLUMNS;
        double acc[COLUMNS] = {0};
        real g[COLUMNS];
        for (int64_t i = 0; i < m; i++) {
            int64_t at = (b * m + i) * p + j0;
            const real *yr = y + at, *dyr = dy + at;
            if (relu)
                for (int64_t j = 0; j < width; j++) {
                    real d = dyr[j]; /* loaded unconditionally: the select vectorizes */
                    g[j] = yr[j] > 0 ? d : (real)0;
                }
            else
                for (int64_t j = 0; j < width; j++) g[j] = dyr[j];
            if (dx && accumulate_x)
                for (int64_t j = 0; j < width; j++) dx[at + j] += g[j];
            else if (dx)
                for (int64_t j = 0; j < width; j++) dx[at + j] = g[j];
            for (int64_t j = 0; j < width; j++) acc[j] += g[j];
        }
        if (dbias)
            for (int64_t j = 0; j < width; j++) {
                real *db = dbias + b * p + j0 + j;
                *db = accumulate_b ? *db + (real)acc[j] : (real)acc[j];
            }
    }
}

/* ==== row gathers ========================================================= */

void TSR_FN(tsr_ref_gather_rows_fwd)(const real *x, const int32_t *index, const real *weight,
                                     real *y, int64_t m, int64_t d)
{
#pragma omp parallel for schedule(static) if (m * d > PARALLEL_MIN && m > 1)
    for (int64_t i = 0; i < m; i++) {
        real *yi = y + i * d;
        if (index[i] < 0) {
            for (int64_t j = 0; j < d; j++) yi[j] = 0;
            continue;
        }
        const real *xi = x + (int64_t)index[i] * d;
        real w = weight ? weight[i] : (real)1;
        for (int64_t j = 0; j < d; j++) yi[j] = w * xi[j];
    }
}

void TSR_FN(tsr_ref_gather_rows_bwd_x)(const real *dy, const int32_t *index, const real *weight,
                                       real *dx, int64_t m, int64_t d)
{
    /* Serial: two rows may gather the same source row, and their
     * contributions are added in ascending order. */
    for (int64_t i = 0; i < m; i++) {
        if (index[i] < 0) continue;
        real *dxi = dx + (int64_t)index[i] * d;
        const real *dyi = dy + i * d;
        real w = weight ? weight[i] : (real)1;
        for (int64_t j = 0; j < d; j++) dxi[j] += w * dyi[j];
    }
}

void TSR_FN(tsr_ref_gather_rows_bwd_weight)(const real *dy, const int32_t *index, const real *x,
                                            real *dweight, int64_t m, int64_t d, bool accumulate)
{
#pragma omp parallel for schedule(static) if (m * d > PARALLEL_MIN && m > 1)
    for (int64_t i = 0; i < m; i++) {
        double dot = 0;
        if (index[i] >= 0) {
            const real *xi = x + (int64_t)index[i] * d, *dyi = dy + i * d;
            for (int64_t j = 0; j < d; j++) dot += (double)dyi[j] * xi[j];
        }
        dweight[i] = accumulate ? dweight[i] + (real)dot : (real)dot;
    }
}

/* ==== squared coefficient of variation ==================================== */

/* Mean and population variance of one row, in double. */
static void row_moments(const real *x, int64_t k, double *mean, double *variance)
{
    double sum = 0;
    for (int64_t j = 0; j < k; j++) sum += x[j];
    double mu = sum / (double)k, ss = 0;
    for (int64_t j = 0; j < k; j++) ss += ((double)x[j] - mu) * ((double)x[j] - mu);
    *mean = mu;
    *variance = ss / (double)k;
}

void TSR_FN(tsr_ref_cv_squared_fwd)(const real *x, real *y, int64_t rows, int64_t k)
{
    for (int64_t r = 0; r < rows; r++) {
        double mu, var;
        row_moments(x + r * k, k, &mu, &var);
        y[r] = (real)(var / (mu * mu));
    }
}

void TSR_FN(tsr_ref_cv_squared_bwd)(const real *x, const real *dy, real *dx, int64_t rows,
                                    int64_t k, bool accumulate)
{
    /* y = v / mu^2 with dmu/dx_j = 1/k and dv/dx_j = 2 (x_j - mu) / k give
     * dy/dx_j = 2 / (k mu^2) * (x_j - mu - v / mu). */
    for (int64_t r = 0; r < rows; r++) {
        const real *xr = x + r * k;
        real *dxr = dx + r * k;
        double mu, var;
        row_moments(xr, k, &mu, &var);
        double scale = 2.0 * (double)dy[r] / ((double)k * mu * mu), shift = mu + var / mu;
        for (int64_t j = 0; j < k; j++) {
            real g = (real)(scale * ((double)xr[j] - shift));
            dxr[j] = accumulate ? dxr[j] + g : g;
        }
    }
}
