/* shape_ref.c — copies behind reshape, permute, concat and split (templated
 * on `real`). Pure data movement: every element is written by exactly one
 * iteration, so the threaded loops give the same result for any thread count. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/real.h"

enum { PARALLEL_MIN = 1 << 15 };

void TSR_FN(tsr_ref_copy)(const real *src, real *dst, int64_t n, bool accumulate)
{
    if (!accumulate) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
#pragma omp parallel for if (n > PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void TSR_FN(tsr_ref_copy_rows)(const real *src, int64_t src_stride, real *dst, int64_t dst_stride,
                               int64_t rows, int64_t cols, bool accumulate)
{
    if (rows == 1) {
        TSR_FN(tsr_ref_copy)(src, dst, cols, accumulate);
        return;
    }
#pragma omp parallel for if (rows * cols > PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const real *s = src + r * src_stride;
        real *d = dst + r * dst_stride;
        if (accumulate)
            for (int64_t c = 0; c < cols; c++) d[c] += s[c];
        else
            memcpy(d, s, (size_t)cols * sizeof *d);
    }
}

void TSR_FN(tsr_ref_permute)(const real *x, real *y, int ndim, const int64_t *shape,
                             const int64_t *x_stride, bool accumulate)
{
    if (ndim == 0) {
        y[0] = accumulate ? y[0] + x[0] : x[0];
        return;
    }
    /* One row of y (its last dimension) per iteration; the row's start in x is
     * decoded from the row number, then x is walked with the last stride. */
    int64_t cols = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    int64_t last_stride = x_stride[ndim - 1];
#pragma omp parallel for if (rows * cols > PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rest = r, offset = 0;
        for (int d = ndim - 2; d >= 0; d--) {
            offset += (rest % shape[d]) * x_stride[d];
            rest /= shape[d];
        }
        const real *s = x + offset;
        real *out = y + r * cols;
        if (accumulate)
            for (int64_t c = 0; c < cols; c++) out[c] += s[c * last_stride];
        else
            for (int64_t c = 0; c < cols; c++) out[c] = s[c * last_stride];
    }
}
