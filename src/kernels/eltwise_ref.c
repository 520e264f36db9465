/* eltwise_ref.c — elementwise reference kernels (templated on `real`). */
#include "kernels/kernels.h"
#include "kernels/real.h"

void TSR_FN(tsr_ref_relu_fwd)(const real *x, real *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void TSR_FN(tsr_ref_relu_bwd)(const real *y, const real *dy, real *dx, int64_t n, bool accumulate)
{
    if (accumulate)
        for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0 ? dy[i] : 0;
    else
        for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}
