/* allclose.c — worst-mismatch comparisons for tests. */
#include "support/allclose.h"

#include <math.h>
#include <stdio.h>

#include <criterion/criterion.h>

typedef struct worst {
    long index;
    double a, b, excess;
    long bad;
} worst;

static void consider(worst *w, long i, double a, double b, double rtol, double atol)
{
    double tol = atol + rtol * fabs(b);
    double diff = fabs(a - b);
    bool bad = !(diff <= tol); /* NaN counts as bad */
    if (bad) {
        w->bad++;
        double excess = isnan(diff) ? INFINITY : diff - tol;
        if (w->index < 0 || excess > w->excess) {
            w->index = i;
            w->a = a;
            w->b = b;
            w->excess = excess;
        }
    }
}

static void report(const worst *w, long n, double rtol, double atol, const char *what)
{
    if (!w->bad) return;
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s: %ld of %ld elements differ (rtol %g, atol %g); worst at flat index %ld: "
             "%.9g vs %.9g",
             what, w->bad, n, rtol, atol, w->index, w->a, w->b);
    cr_expect_fail("%s", msg);
}

void tsr_test_allclose(const tsr_tensor *a, const tsr_tensor *b, double rtol, double atol,
                       const char *what)
{
    char sa[96], sb[96];
    if (!tsr_tensor_same_shape(a, b)) {
        char msg[320];
        snprintf(msg, sizeof msg, "%s: shapes differ: %s vs %s", what,
                 tsr_tensor_shape_str(a, sa, sizeof sa), tsr_tensor_shape_str(b, sb, sizeof sb));
        cr_expect_fail("%s", msg);
        return;
    }
    long n = (long)tsr_tensor_numel(a);
    worst w = {.index = -1};
    int64_t index[TSR_MAX_DIMS] = {0};
    for (long i = 0; i < n; i++) {
        consider(&w, i, tsr_tensor_get(a, index), tsr_tensor_get(b, index), rtol, atol);
        for (int d = a->ndim - 1; d >= 0; d--) {
            if (++index[d] < a->shape[d]) break;
            index[d] = 0;
        }
    }
    report(&w, n, rtol, atol, what);
}

void tsr_test_allclose_f32(const float *a, const float *b, long n, double rtol, double atol,
                           const char *what)
{
    worst w = {.index = -1};
    for (long i = 0; i < n; i++) consider(&w, i, a[i], b[i], rtol, atol);
    report(&w, n, rtol, atol, what);
}

void tsr_test_allclose_f64(const double *a, const double *b, long n, double rtol, double atol,
                           const char *what)
{
    worst w = {.index = -1};
    for (long i = 0; i < n; i++) consider(&w, i, a[i], b[i], rtol, atol);
    report(&w, n, rtol, atol, what);
}
