/* dense_ref.c — matrix-product reference kernels (templated on `real`).
 *
 * One strided batched product serves linear layers and tsr_matmul in every
 * direction: operands are described by element strides, so a transpose or a
 * broadcast batch (stride 0) is only a different stride. Sums are accumulated
 * in double in a fixed order, and threads split the output rows, so results
 * do not depend on the thread count. */
#include "kernels/kernels.h"
#include "kernels/real.h"

/* Output columns accumulated together: a row of `b` is read 64 at a time,
 * whichever of its strides is the unit one. */
enum { COLUMN_BLOCK = 64 };

/* Below this many multiply-adds the product stays on one thread. */
#define PARALLEL_MIN_FLOPS 100000

void TSR_FN(tsr_ref_matmul)(int64_t batch, int64_t m, int64_t k, int64_t p, const real *a,
                             const int64_t *a_stride, const real *b, const int64_t *b_stride,
                             real *c, bool accumulate)
{
    int64_t rows = batch * m;
#pragma omp parallel for schedule(static) if (rows * k * p >= PARALLEL_MIN_FLOPS && rows > 1)
    for (int64_t row = 0; row < rows; row++) {
        int64_t bi = row / m, mi = row % m;
        const real *a_row = a + bi * a_stride[0] + mi * a_stride[1];
        const real *b_mat = b + bi * b_stride[0];
        real *c_row = c + row * p;
        for (int64_t p0 = 0; p0 < p; p0 += COLUMN_BLOCK) {
            int64_t width = p - p0 < COLUMN_BLOCK ? p - p0 : COLUMN_BLOCK;
            double acc[COLUMN_BLOCK] = {0};
            for (int64_t ki = 0; ki < k; ki++) {
                double av = a_row[ki * a_stride[2]];
                const real *b_row = b_mat + ki * b_stride[1] + p0 * b_stride[2];
                for (int64_t j = 0; j < width; j++) acc[j] += av * b_row[j * b_stride[2]];
            }
            if (accumulate)
                for (int64_t j = 0; j < width; j++) c_row[p0 + j] += (real)acc[j];
            else
                for (int64_t j = 0; j < width; j++) c_row[p0 + j] = (real)acc[j];
        }
    }
}

void TSR_FN(tsr_ref_linear_fwd)(const real *x, const real *w, const real *bias, real *y, int64_t n,
                                 int64_t in, int64_t out, bool relu)
{
    /* y (N, out) = x (N, in) . w^T, w stored (out, in). */
    TSR_FN(tsr_ref_matmul)(1, n, in, out, x, (const int64_t[]){0, in, 1}, w,
                           (const int64_t[]){0, 1, in}, y, false);
    if (!bias && !relu) return;
    for (int64_t i = 0; i < n; i++) {
        real *row = y + i * out;
        if (bias)
            for (int64_t o = 0; o < out; o++) row[o] += bias[o];
        if (relu)
            for (int64_t o = 0; o < out; o++) row[o] = row[o] > 0 ? row[o] : 0;
    }
}

void TSR_FN(tsr_ref_linear_bwd_data)(const real *dy, const real *w, real *dx, int64_t n,
                                      int64_t in, int64_t out, bool accumulate)
{
    /* dx (N, in) = dy (N, out) . w (out, in). */
    TSR_FN(tsr_ref_matmul)(1, n, out, in, dy, (const int64_t[]){0, out, 1}, w,
                           (const int64_t[]){0, in, 1}, dx, accumulate);
}

void TSR_FN(tsr_ref_linear_bwd_weights)(const real *x, const real *dy, real *dw, real *dbias,
                                         int64_t n, int64_t in, int64_t out, bool accumulate_w,
                                         bool accumulate_b)
{
    /* dw (out, in) = dy^T (out, N) . x (N, in); dbias (out) = column sums of dy. */
    if (dw)
        TSR_FN(tsr_ref_matmul)(1, out, n, in, dy, (const int64_t[]){0, 1, out}, x,
                               (const int64_t[]){0, in, 1}, dw, accumulate_w);
    if (!dbias) return;
    for (int64_t o = 0; o < out; o++) {
        double sum = 0;
        for (int64_t i = 0; i < n; i++) sum += dy[i * out + o];
        dbias[o] = accumulate_b ? dbias[o] + (real)sum : (real)sum;
    }
}

void TSR_FN(tsr_ref_sum_batches)(const real *src, real *dst, int64_t batch, int64_t n,
                                 bool accumulate)
{
#pragma omp parallel for schedule(static) if (batch * n >= PARALLEL_MIN_FLOPS)
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int64_t b = 0; b < batch; b++) sum += src[b * n + i];
        dst[i] = accumulate ? dst[i] + (real)sum : (real)sum;
    }
}

void TSR_FN(tsr_ref_add_into)(real *dst, const real *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}
