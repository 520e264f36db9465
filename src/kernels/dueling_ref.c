/* dueling_ref.c — the dueling combination's reference kernels (templated on
 * `real`). Tiny tensors (N x A x K, at most 32 x 18 x 51): serial. Means over
 * actions are summed in action order, in double. */
#include "kernels/encoder_kernels.h"
#include "kernels/real.h"

void TSR_FN(tsr_ref_dueling_fwd)(const real *value, const real *advantage, real *q, int64_t n,
                                 int64_t a, int64_t k)
{
    for (int64_t i = 0; i < n; i++) {
        const real *adv = advantage + i * a * k;
        real *qi = q + i * a * k;
        for (int64_t j = 0; j < k; j++) {
            double sum = 0.0;
            for (int64_t b = 0; b < a; b++) sum += (double)adv[b * k + j];
            double base = (double)value[i * k + j] - sum / (double)a;
            for (int64_t b = 0; b < a; b++) qi[b * k + j] = (real)(base + (double)adv[b * k + j]);
        }
    }
}

void TSR_FN(tsr_ref_dueling_bwd)(const real *dq, real *dvalue, real *dadvantage, int64_t n,
                                 int64_t a, int64_t k, bool accumulate_value,
                                 bool accumulate_advantage)
{
    for (int64_t i = 0; i < n; i++) {
        const real *dqi = dq + i * a * k;
        for (int64_t j = 0; j < k; j++) {
            double sum = 0.0;
            for (int64_t b = 0; b < a; b++) sum += (double)dqi[b * k + j];
            if (dvalue) {
                real *dv = dvalue + i * k + j;
                *dv = accumulate_value ? *dv + (real)sum : (real)sum;
            }
            if (dadvantage) {
                double mean = sum / (double)a;
                real *da = dadvantage + i * a * k;
                for (int64_t b = 0; b < a; b++) {
                    real g = (real)((double)dqi[b * k + j] - mean);
                    da[b * k + j] = accumulate_advantage ? da[b * k + j] + g : g;
                }
            }
        }
    }
}
