/* parity.c — oneDNN against the reference kernels for one op. */
#include "support/parity.h"

#include <math.h>
#include <stdio.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "support/allclose.h"

/* Float32 parity: |a - b| <= 1e-4 |b| + 1e-5 max|b| (the absolute floor scales
 * with the result's magnitude: long sums cancel). Logs the worst error in
 * units of the tolerance, so the margin is visible in the test log. */
void tsr_test_expect_parity(const tsr_tensor *got, const tsr_tensor *want, const char *what)
{
    int64_t n = tsr_tensor_numel(want);
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(tsr_f32(want)[i]));
    double rtol = 1e-4, atol = 1e-5 * (scale > 0 ? scale : 1);
    double worst = 0, worst_abs = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)tsr_f32(got)[i] - tsr_f32(want)[i]);
        worst = fmax(worst, diff / (atol + rtol * fabs(tsr_f32(want)[i])));
        worst_abs = fmax(worst_abs, diff);
    }
    cr_log_info("%s: worst |diff| %.3g (max|ref| %.3g), %.3f of the tolerance", what, worst_abs,
                scale, worst);
    tsr_test_allclose(got, want, rtol, atol, what);
}


tsr_tensor *tsr_test_heap_copy(const tsr_tensor *t)
{
    tsr_tensor *c = tsr_tensor_new(t->dtype, t->ndim, t->shape);
    tsr_tensor_copy(c, t);
    return c;
}

/* Runs op on `backend` and backpropagates a fixed random output gradient. */
tsr_test_run_result tsr_test_run_op(tsr_backend backend, tsr_test_forward_fn op, tsr_tensor *const *inputs, int count,
                         void *user)
{
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backend});
    tsr_ctx_begin_step(ctx);
    for (int i = 0; i < count; i++) tsr_grad_reset(inputs[i], inputs[i]->requires_grad);
    tsr_tensor *out = op(ctx, inputs, user);
    tsr_tensor *dy = tsr_tensor_new(out->dtype, out->ndim, out->shape);
    tsr_test_fill_uniform(dy, -1, 1, 99);
    tsr_backward_from(ctx, out, dy);
    tsr_test_run_result r = {.out = tsr_test_heap_copy(out)};
    for (int i = 0; i < count; i++) {
        tsr_tensor *g = tsr_grad_get(ctx, inputs[i]);
        cr_assert(!inputs[i]->requires_grad || g, "input %d received no gradient", i);
        r.grad[i] = g ? tsr_test_heap_copy(g) : NULL;
        tsr_grad_reset(inputs[i], inputs[i]->requires_grad);
    }
    tsr_tensor_free(dy);
    tsr_ctx_free(ctx);
    return r;
}

void tsr_test_free_result(tsr_test_run_result *r)
{
    tsr_tensor_free(r->out);
    for (int i = 0; i < TSR_TEST_MAX_INPUTS; i++) tsr_tensor_free(r->grad[i]);
}

/* oneDNN against the reference kernels, forward and every input gradient. */
void tsr_test_check_parity_on(tsr_backend backend, tsr_test_forward_fn op,
                              tsr_tensor *const *inputs, int count, void *user, const char *what)
{
    tsr_test_run_result fast = tsr_test_run_op(backend, op, inputs, count, user);
    tsr_test_run_result ref = tsr_test_run_op(TSR_BACKEND_REFERENCE, op, inputs, count, user);
    char label[160];
    snprintf(label, sizeof label, "%s forward", what);
    tsr_test_expect_parity(fast.out, ref.out, label);
    for (int i = 0; i < count; i++) {
        if (!ref.grad[i]) continue;
        snprintf(label, sizeof label, "%s gradient of input %d", what, i);
        tsr_test_expect_parity(fast.grad[i], ref.grad[i], label);
    }
    tsr_test_free_result(&fast);
    tsr_test_free_result(&ref);
}


void tsr_test_check_parity(tsr_test_forward_fn op, tsr_tensor *const *inputs, int count, void *user,
                           const char *what)
{
    tsr_test_check_parity_on(TSR_BACKEND_DNNL_ALL, op, inputs, count, user, what);
}
