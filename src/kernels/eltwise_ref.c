/* eltwise_ref.c — elementwise reference kernels (templated on `real`). */
#include <stddef.h>

#include "kernels/kernels.h"
#include "kernels/real.h"

void TSR_FN(tsr_ref_relu_fwd)(const real *x, real *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

/* dy is read unconditionally: a load under the condition kept GCC from
 * vectorizing these loops. */
void TSR_FN(tsr_ref_relu_bwd)(const real *y, const real *dy, real *dx, int64_t n, bool accumulate)
{
    if (accumulate)
        for (int64_t i = 0; i < n; i++) {
            real d = dy[i];
            dx[i] += y[i] > 0 ? d : 0;
        }
    else
        for (int64_t i = 0; i < n; i++) {
            real d = dy[i];
            dx[i] = y[i] > 0 ? d : 0;
        }
}

/* ==== binary ops with a trailing broadcast ================================ */

/* Loops run serially below this many elements (tiny RL tensors), and in
 * fixed chunks of CHUNK elements above it; each output element is computed
 * the same way whatever the thread count. */
enum { PARALLEL_MIN = 1 << 15, CHUNK = 1 << 13, ROW_BLOCK = 256 };

typedef enum binary_op { BINARY_ADD, BINARY_SUB, BINARY_MUL } binary_op;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* y[k] (=|+=) a[k] op b[k % inner], walking fixed chunks of the flat range
 * and wrapping the broadcast index without a division per element. */
static void binary_apply(binary_op op, const real *a, const real *b, real *y, int64_t outer,
                         int64_t inner, bool accumulate)
{
    int64_t n = outer * inner;
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t k = c * CHUNK, end = min64(n, k + CHUNK);
        int64_t j = k % inner;
        while (k < end) {
            int64_t run = min64(end - k, inner - j);
            const real *ak = a + k, *bj = b + j;
            real *yk = y + k;
            switch (op) {
            case BINARY_ADD:
                if (accumulate) for (int64_t r = 0; r < run; r++) yk[r] += ak[r] + bj[r];
                else for (int64_t r = 0; r < run; r++) yk[r] = ak[r] + bj[r];
                break;
            case BINARY_SUB:
                if (accumulate) for (int64_t r = 0; r < run; r++) yk[r] += ak[r] - bj[r];
                else for (int64_t r = 0; r < run; r++) yk[r] = ak[r] - bj[r];
                break;
            case BINARY_MUL:
                if (accumulate) for (int64_t r = 0; r < run; r++) yk[r] += ak[r] * bj[r];
                else for (int64_t r = 0; r < run; r++) yk[r] = ak[r] * bj[r];
                break;
            }
            k += run;
            j = 0;
        }
    }
}

void TSR_FN(tsr_ref_add_fwd)(const real *a, const real *b, real *y, int64_t outer, int64_t inner,
                             bool accumulate)
{
    binary_apply(BINARY_ADD, a, b, y, outer, inner, accumulate);
}

void TSR_FN(tsr_ref_sub_fwd)(const real *a, const real *b, real *y, int64_t outer, int64_t inner,
                             bool accumulate)
{
    binary_apply(BINARY_SUB, a, b, y, outer, inner, accumulate);
}

void TSR_FN(tsr_ref_mul_fwd)(const real *a, const real *b, real *y, int64_t outer, int64_t inner,
                             bool accumulate)
{
    binary_apply(BINARY_MUL, a, b, y, outer, inner, accumulate);
}

/* Column sums over rows in ascending row order, ROW_BLOCK columns at a time
 * with double accumulators; column blocks are independent, so the result does
 * not depend on the thread count. `a` NULL sums dy, else dy * a. */
static void column_sums(const real *dy, const real *a, real *db, int64_t outer, int64_t inner,
                        real alpha, bool accumulate)
{
    int64_t blocks = (inner + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for if (outer * inner > PARALLEL_MIN && blocks > 1) schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t j0 = blk * ROW_BLOCK, width = min64(inner - j0, ROW_BLOCK);
        double acc[ROW_BLOCK];
        for (int64_t j = 0; j < width; j++) acc[j] = 0.0;
        for (int64_t i = 0; i < outer; i++) {
            const real *row = dy + i * inner + j0;
            if (a) {
                const real *arow = a + i * inner + j0;
                for (int64_t j = 0; j < width; j++) acc[j] += (double)row[j] * arow[j];
            } else {
                for (int64_t j = 0; j < width; j++) acc[j] += row[j];
            }
        }
        real *out = db + j0;
        if (accumulate)
            for (int64_t j = 0; j < width; j++) out[j] += (real)(alpha * acc[j]);
        else
            for (int64_t j = 0; j < width; j++) out[j] = (real)(alpha * acc[j]);
    }
}

void TSR_FN(tsr_ref_sum_rows)(const real *dy, real *db, int64_t outer, int64_t inner, real alpha,
                              bool accumulate)
{
    if (outer == 1) { /* same shape: no reduction, keep it a plain scaled copy */
        TSR_FN(tsr_ref_scale_bwd)(dy, db, inner, alpha, accumulate);
        return;
    }
    column_sums(dy, NULL, db, outer, inner, alpha, accumulate);
}

void TSR_FN(tsr_ref_mul_bwd_b)(const real *dy, const real *a, real *db, int64_t outer,
                               int64_t inner, bool accumulate)
{
    if (outer == 1) {
        TSR_FN(tsr_ref_mul_fwd)(dy, a, db, 1, inner, accumulate);
        return;
    }
    column_sums(dy, a, db, outer, inner, 1, accumulate);
}

/* ==== scale and conversion ================================================ */

void TSR_FN(tsr_ref_scale_fwd)(const real *x, real *y, int64_t n, real alpha, real beta)
{
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
}

void TSR_FN(tsr_ref_scale_bwd)(const real *dy, real *dx, int64_t n, real alpha, bool accumulate)
{
    if (accumulate) {
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += alpha * dy[i];
    } else {
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = alpha * dy[i];
    }
}

void TSR_FN(tsr_ref_u8_to_real)(const uint8_t *x, real *y, int64_t n, real scale)
{
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = (real)x[i] * scale;
}
