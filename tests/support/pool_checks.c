/* pool_checks.c — see pool_checks.h. */
#include "support/pool_checks.h"

#include <criterion/criterion.h>
#include <stdio.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/autograd.h"

static const tsr_backend backends[2] = {TSR_BACKEND_DNNL, TSR_BACKEND_REFERENCE};
static const char *const backend_names[2] = {"oneDNN", "reference"};

static tsr_tensor *uniform(tsr_dtype dtype, const int64_t *shape, uint64_t seed)
{
    tsr_tensor *t = tsr_tensor_new(dtype, 4, shape);
    tsr_test_fill_uniform(t, -1, 1, seed);
    return t;
}

static void describe(char *buf, size_t size, tsr_test_pool p, const int64_t *shape)
{
    snprintf(buf, size, "%s %dx%d/%d %s over (%lld,%lld,%lld,%lld)", p.name, p.kernel, p.kernel,
             p.stride, p.padding == TSR_PADDING_SAME ? "SAME" : "VALID", (long long)shape[0],
             (long long)shape[1], (long long)shape[2], (long long)shape[3]);
}

static tsr_tensor *pool_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    const tsr_test_pool *p = user;
    return p->fn(ctx, in[0], p->kernel, p->stride, p->padding);
}

void tsr_test_pool_gradcheck(tsr_test_pool pool, int64_t n, int64_t h, int64_t w, int64_t c)
{
    int64_t shape[4] = {n, h, w, c};
    tsr_tensor *x = uniform(TSR_DTYPE_F64, shape,
                            (uint64_t)(pool.kernel * 10 + pool.stride + (int)pool.padding * 100));
    x->requires_grad = true;
    char what[160];
    describe(what, sizeof what, pool, shape);
    tsr_test_gradcheck(pool_forward, &x, 1, &pool, NULL, what);
    tsr_tensor_free(x);
}

void tsr_test_pool_parity(tsr_test_pool pool, int64_t n, int64_t h, int64_t c, double forward_tol)
{
    int64_t shape[4] = {n, h, h, c};
    tsr_tensor *x0 = uniform(TSR_DTYPE_F32, shape, (uint64_t)(h * c + n));
    tsr_tensor *x[2], *y[2];
    tsr_ctx *ctx[2];
    for (int k = 0; k < 2; k++) {
        ctx[k] = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        x[k] = tsr_tensor_new(TSR_DTYPE_F32, 4, x0->shape);
        tsr_tensor_copy(x[k], x0);
        tsr_grad_reset(x[k], true);
        tsr_ctx_begin_step(ctx[k]);
        y[k] = pool.fn(ctx[k], x[k], pool.kernel, pool.stride, pool.padding);
    }
    char what[160];
    describe(what, sizeof what, pool, shape);
    int64_t rows = pool.padding == TSR_PADDING_SAME ? (h + pool.stride - 1) / pool.stride
                                                    : (h - pool.kernel) / pool.stride + 1;
    cr_expect_eq(y[0]->shape[1], rows, "%s: output rows", what);
    tsr_test_allclose(y[0], y[1], forward_tol, forward_tol, what);
    tsr_tensor *dy = uniform(TSR_DTYPE_F32, y[0]->shape, 99);
    for (int k = 0; k < 2; k++) tsr_backward_from(ctx[k], y[k], dy);
    /* Overlapping windows sum several dy into one dx, in either order. */
    tsr_test_allclose(tsr_grad_get(ctx[0], x[0]), tsr_grad_get(ctx[1], x[1]), 1e-6, 1e-6, what);
    /* The same again, inference only: oneDNN's inference primitive. */
    for (int k = 0; k < 2; k++) {
        tsr_ctx_begin_step(ctx[k]);
        tsr_ctx_set_grad(ctx[k], false);
        y[k] = pool.fn(ctx[k], x[k], pool.kernel, pool.stride, pool.padding);
        cr_expect_eq(tsr_ctx_tape_length(ctx[k]), 0);
    }
    tsr_test_allclose(y[0], y[1], forward_tol, forward_tol, what);
    for (int k = 0; k < 2; k++) {
        tsr_tensor_free(x[k]);
        tsr_ctx_free(ctx[k]);
    }
    tsr_tensor_free(x0);
    tsr_tensor_free(dy);
}

void tsr_test_pool_accumulates(tsr_test_pool pool, int64_t n, int64_t h, int64_t c)
{
    for (int k = 0; k < 2; k++) {
        tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.backend = backends[k]});
        tsr_tensor *x = uniform(TSR_DTYPE_F32, (int64_t[]){n, h, h, c}, 5);
        tsr_grad_reset(x, true);
        tsr_ctx_begin_step(ctx);
        tsr_tensor *y = pool.fn(ctx, x, pool.kernel, pool.stride, pool.padding);
        tsr_tensor *dy = uniform(TSR_DTYPE_F32, y->shape, 6);
        tsr_backward_from(ctx, y, dy);
        tsr_tensor *once = tsr_tensor_new(TSR_DTYPE_F32, 4, x->shape);
        tsr_tensor_copy(once, tsr_grad_get(ctx, x));
        tsr_backward_from(ctx, pool.fn(ctx, x, pool.kernel, pool.stride, pool.padding), dy);
        for (int64_t i = 0; i < tsr_tensor_numel(once); i++) tsr_f32(once)[i] *= 2;
        tsr_test_allclose(tsr_grad_get(ctx, x), once, 1e-6, 1e-6, backend_names[k]);
        tsr_tensor_free(x);
        tsr_tensor_free(dy);
        tsr_tensor_free(once);
        tsr_ctx_free(ctx);
    }
}
