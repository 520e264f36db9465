/* reduce_ref.c — sums, means and the action gather (templated on `real`).
 *
 * Every sum has a fixed order that depends only on the shape: threads split
 * the work over outputs (or fixed chunks whose partials are added in order),
 * never over the terms of one sum in a thread-dependent way. */
#include "kernels/kernels.h"
#include "kernels/real.h"

enum {
    PARALLEL_MIN = 1 << 15,
    COLUMN_BLOCK = 256,       /* inner positions summed together */
    SUM_ALL_MAX_CHUNKS = 256, /* partials of sum_all, on the stack */
    SUM_ALL_MIN_CHUNK = 4096,
};

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void TSR_FN(tsr_ref_sum_axis)(const real *x, real *y, int64_t outer, int64_t len, int64_t inner,
                              real scale)
{
    /* Work items: (outer index, block of up to COLUMN_BLOCK inner positions);
     * each sums its len terms in ascending k in double. */
    int64_t blocks = (inner + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
    int64_t items = outer * blocks;
#pragma omp parallel for if (outer * len * inner > PARALLEL_MIN && items > 1) schedule(static)
    for (int64_t item = 0; item < items; item++) {
        int64_t o = item / blocks, i0 = (item % blocks) * COLUMN_BLOCK;
        int64_t width = min64(inner - i0, COLUMN_BLOCK);
        double acc[COLUMN_BLOCK];
        for (int64_t i = 0; i < width; i++) acc[i] = 0.0;
        const real *base = x + o * len * inner + i0;
        for (int64_t k = 0; k < len; k++) {
            const real *row = base + k * inner;
            for (int64_t i = 0; i < width; i++) acc[i] += row[i];
        }
        real *out = y + o * inner + i0;
        for (int64_t i = 0; i < width; i++) out[i] = (real)(acc[i] * scale);
    }
}

void TSR_FN(tsr_ref_sum_axis_bwd)(const real *dy, real *dx, int64_t outer, int64_t len,
                                  int64_t inner, real scale, bool accumulate)
{
    int64_t rows = outer * len;
#pragma omp parallel for if (rows * inner > PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const real *g = dy + (r / len) * inner;
        real *out = dx + r * inner;
        if (accumulate)
            for (int64_t i = 0; i < inner; i++) out[i] += scale * g[i];
        else
            for (int64_t i = 0; i < inner; i++) out[i] = scale * g[i];
    }
}

void TSR_FN(tsr_ref_sum_all)(const real *x, int64_t n, real scale, real *y)
{
    /* The chunk size is a function of n alone, so the partials and their
     * in-order total are the same for every thread count. */
    int64_t chunk = (n + SUM_ALL_MAX_CHUNKS - 1) / SUM_ALL_MAX_CHUNKS;
    if (chunk < SUM_ALL_MIN_CHUNK) chunk = SUM_ALL_MIN_CHUNK;
    int64_t chunks = (n + chunk - 1) / chunk;
    double partial[SUM_ALL_MAX_CHUNKS];
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t end = min64(n, (c + 1) * chunk);
        double sum = 0.0;
        for (int64_t i = c * chunk; i < end; i++) sum += x[i];
        partial[c] = sum;
    }
    double total = 0.0;
    for (int64_t c = 0; c < chunks; c++) total += partial[c];
    y[0] = (real)(total * scale);
}

void TSR_FN(tsr_ref_gather_actions_fwd)(const real *x, const int32_t *index, real *y, int64_t N,
                                        int64_t A, int64_t rest)
{
    for (int64_t n = 0; n < N; n++) {
        const real *src = x + (n * A + index[n]) * rest;
        real *dst = y + n * rest;
        for (int64_t r = 0; r < rest; r++) dst[r] = src[r];
    }
}

void TSR_FN(tsr_ref_gather_actions_bwd)(const real *dy, const int32_t *index, real *dx, int64_t N,
                                        int64_t A, int64_t rest)
{
    for (int64_t n = 0; n < N; n++) {
        const real *src = dy + n * rest;
        real *dst = dx + (n * A + index[n]) * rest;
        for (int64_t r = 0; r < rest; r++) dst[r] += src[r];
    }
}
