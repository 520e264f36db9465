/* bench_eltwise.c — the elementwise and layout ops at the agents' shapes:
 * tessera's op on each backend against the oneDNN primitive it could use,
 * called directly. This is the measurement behind the path each op takes:
 *   add/sub/mul same shape -> oneDNN binary; with a broadcast b -> reference;
 *   u8 -> f32              -> reference loop (not the u8 -> f32 reorder);
 *   permute                -> oneDNN reorder from the strided view.
 * Each problem is checked against the reference result before timing.
 * Bandwidth-bound ops: the GB/s column counts bytes read and written once.
 *
 *   bench_eltwise [--reps N] [--threads LIST]   (LIST like 1,2)
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "bench_util.h"
#include "tessera/tessera.h"

#define PROG "bench_eltwise" /* prefix of command-line errors */

#define CHECK(call)                                                                            \
    do {                                                                                       \
        dnnl_status_t s_ = (call);                                                             \
        if (s_ != dnnl_success) {                                                              \
            fprintf(stderr, "bench_eltwise: %s failed (%d) at line %d\n", #call, (int)s_,     \
                    __LINE__);                                                                 \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static int g_reps = 21;

/* ==== a raw oneDNN primitive with bound memories ========================= */

typedef struct raw {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[3];
} raw;

static void raw_init(raw *r, dnnl_primitive_desc_t pd, int nargs, const int *arg_ids,
                     void *const *handles)
{
    CHECK(dnnl_primitive_create(&r->prim, pd));
    r->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg_ids[i]);
        dnnl_memory_t mem;
        CHECK(dnnl_memory_create(&mem, md, r->engine, handles[i]));
        r->args[i] = (dnnl_exec_arg_t){arg_ids[i], mem};
    }
    CHECK(dnnl_primitive_desc_destroy(pd));
}

static void raw_run(void *user)
{
    raw *r = user;
    CHECK(dnnl_primitive_execute(r->prim, r->stream, r->nargs, r->args));
    CHECK(dnnl_stream_wait(r->stream));
}

static void raw_fini(raw *r)
{
    for (int i = 0; i < r->nargs; i++) dnnl_memory_destroy(r->args[i].memory);
    dnnl_primitive_destroy(r->prim);
}

static dnnl_memory_desc_t md_strided(int ndim, const int64_t *dims, const int64_t *strides,
                                     dnnl_data_type_t type)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t d, s;
    for (int i = 0; i < ndim; i++) {
        d[i] = dims[i];
        s[i] = strides[i];
    }
    CHECK(dnnl_memory_desc_init_by_strides(&md, ndim, d, type, s));
    return md;
}

static dnnl_memory_desc_t md_plain(int ndim, const int64_t *dims, dnnl_data_type_t type)
{
    int64_t strides[TSR_MAX_DIMS], stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= dims[i];
    }
    return md_strided(ndim, dims, strides, type);
}

/* ==== tessera ops through a context ====================================== */

typedef enum op_kind { OP_ADD, OP_ADD_BIAS, OP_U8, OP_PERMUTE } op_kind;

typedef struct problem {
    op_kind kind;
    int ndim;
    int64_t shape[4];
    int order[4]; /* permute */
} problem;

typedef struct run_ctx {
    tsr_ctx *ctx;
    const problem *p;
    tsr_tensor *a, *b, *u8;
    tsr_tensor *out;
} run_ctx;

static void tessera_run(void *user)
{
    run_ctx *r = user;
    tsr_ctx_begin_step(r->ctx);
    switch (r->p->kind) {
    case OP_ADD:
    case OP_ADD_BIAS: r->out = tsr_add(r->ctx, r->a, r->b); break;
    case OP_U8: r->out = tsr_u8_to_f32(r->ctx, r->u8, 1.0f / 255.0f); break;
    case OP_PERMUTE: r->out = tsr_permute(r->ctx, r->a, r->p->order); break;
    }
}

static const char *kind_name(op_kind k)
{
    static const char *const names[] = {"add", "add bias", "u8->f32", "permute"};
    return names[k];
}

static double max_abs_diff(const float *x, const float *y, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)x[i] - y[i]));
    return worst;
}

static void run_problem(const problem *p, int threads)
{
    omp_set_num_threads(threads);
    tsr_tensor *a = tsr_tensor_new(TSR_DTYPE_F32, p->ndim, p->shape);
    int64_t n = tsr_tensor_numel(a);
    tsr_tensor *b = p->kind == OP_ADD_BIAS ? tsr_tensor_new(TSR_DTYPE_F32, 1, &p->shape[p->ndim - 1])
                                           : tsr_tensor_new(TSR_DTYPE_F32, p->ndim, p->shape);
    tsr_tensor *u8 = tsr_tensor_new(TSR_DTYPE_U8, p->ndim, p->shape);
    tsr_rng rng;
    tsr_rng_init(&rng, 7, 99);
    for (int64_t i = 0; i < n; i++) {
        tsr_f32(a)[i] = 2.0f * tsr_rng_uniform_f32(&rng) - 1.0f;
        tsr_u8(u8)[i] = (uint8_t)(i * 7919 % 256);
    }
    for (int64_t i = 0; i < tsr_tensor_numel(b); i++) tsr_f32(b)[i] = tsr_rng_uniform_f32(&rng);

    double seconds[3] = {0, 0, 0}; /* tessera dnnl backend, reference backend, raw oneDNN */
    tsr_tensor *result[2];
    run_ctx rc[2];
    for (int k = 0; k < 2; k++) {
        rc[k] = (run_ctx){.ctx = tsr_ctx_new(&(tsr_ctx_options){
                              .backend = k ? TSR_BACKEND_REFERENCE : TSR_BACKEND_DNNL,
                              .arena_bytes = 64 << 20}),
                          .p = p, .a = a, .b = b, .u8 = u8};
        tsr_ctx_set_grad(rc[k].ctx, false);
        seconds[k] = bench_time(tessera_run, &rc[k], 3, g_reps, 1);
        result[k] = rc[k].out;
    }
    int64_t n_out = tsr_tensor_numel(result[1]);
    double diff = max_abs_diff(tsr_f32(result[0]), tsr_f32(result[1]), n_out);

    /* The raw primitive the op could use. */
    raw r = {0};
    CHECK(dnnl_engine_create(&r.engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&r.stream, r.engine, dnnl_stream_default_flags));
    float *raw_out = malloc((size_t)n_out * sizeof *raw_out);
    dnnl_primitive_desc_t pd;
    if (p->kind == OP_ADD || p->kind == OP_ADD_BIAS) {
        int64_t inner = tsr_tensor_numel(b), outer = n / inner;
        dnnl_memory_desc_t src0 = md_plain(2, (int64_t[]){outer, inner}, dnnl_f32);
        dnnl_memory_desc_t src1 = md_plain(2, (int64_t[]){1, inner}, dnnl_f32);
        if (p->kind == OP_ADD) src1 = src0;
        dnnl_binary_desc_t desc;
        CHECK(dnnl_binary_desc_init(&desc, dnnl_binary_add, &src0, &src1, &src0));
        CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, r.engine, NULL));
        raw_init(&r, pd, 3, (int[]){DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST},
                 (void *[]){a->data, b->data, raw_out});
    } else if (p->kind == OP_U8) {
        dnnl_memory_desc_t src = md_plain(1, &n, dnnl_u8), dst = md_plain(1, &n, dnnl_f32);
        dnnl_primitive_attr_t attr;
        CHECK(dnnl_primitive_attr_create(&attr));
        float scale = 1.0f / 255.0f;
        CHECK(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale));
        CHECK(dnnl_reorder_primitive_desc_create(&pd, &src, r.engine, &dst, r.engine, attr));
        dnnl_primitive_attr_destroy(attr);
        raw_init(&r, pd, 2, (int[]){DNNL_ARG_FROM, DNNL_ARG_TO}, (void *[]){u8->data, raw_out});
    } else {
        tsr_tensor view = tsr_tensor_permute(a, p->order);
        dnnl_memory_desc_t src = md_strided(p->ndim, view.shape, view.stride, dnnl_f32);
        dnnl_memory_desc_t dst = md_plain(p->ndim, view.shape, dnnl_f32);
        CHECK(dnnl_reorder_primitive_desc_create(&pd, &src, r.engine, &dst, r.engine, NULL));
        raw_init(&r, pd, 2, (int[]){DNNL_ARG_FROM, DNNL_ARG_TO}, (void *[]){a->data, raw_out});
    }
    raw_run(&r);
    diff = fmax(diff, max_abs_diff(raw_out, tsr_f32(result[1]), n_out));
    seconds[2] = bench_time(raw_run, &r, 3, g_reps, 1);

    char shape[64];
    tsr_tensor_shape_str(a, shape, sizeof shape);
    double bytes = p->kind == OP_U8 ? 5.0 * (double)n : (p->kind == OP_ADD ? 12.0 : 8.0) * (double)n;
    printf("%-9s %-20s fwd  threads %d  tessera/dnnl %8.1f us  tessera/ref %8.1f us  raw oneDNN "
           "%8.1f us  (%5.1f GB/s best)  max diff %.1e%s\n",
           kind_name(p->kind), shape, threads, 1e6 * seconds[0], 1e6 * seconds[1],
           1e6 * seconds[2], bytes / fmin(seconds[0], fmin(seconds[1], seconds[2])) * 1e-9, diff,
           diff > 1e-6 ? "  MISMATCH" : "");
    raw_fini(&r);
    dnnl_stream_destroy(r.stream);
    dnnl_engine_destroy(r.engine);
    free(raw_out);
    for (int k = 0; k < 2; k++) tsr_ctx_free(rc[k].ctx);
    tsr_tensor_free(a);
    tsr_tensor_free(b);
    tsr_tensor_free(u8);
}

int main(int argc, char **argv)
{
    int threads[8] = {1, 2}, nthreads = 2;
    for (int i = 1; i < argc; i++) {
        long long v;
        if (bench_int_option(PROG, argc, argv, &i, "--reps", 3, 64, &v)) {
            g_reps = (int)v;
        } else if (bench_threads_option(PROG, argc, argv, &i, threads, &nthreads, 8)) {
        } else {
            fprintf(stderr, "usage: bench_eltwise [--reps N (3 to 64)] [--threads LIST (like 1,2)]\n");
            return 2;
        }
    }
    const problem problems[] = {
        /* IMPALA residual adds at batch 32 and 1, and a channel bias. */
        {OP_ADD, 4, {32, 42, 42, 16}, {0}},
        {OP_ADD, 4, {32, 21, 21, 32}, {0}},
        {OP_ADD, 4, {32, 11, 11, 32}, {0}},
        {OP_ADD, 4, {1, 42, 42, 16}, {0}},
        {OP_ADD_BIAS, 4, {32, 42, 42, 16}, {0}},
        {OP_ADD_BIAS, 4, {32, 21, 21, 32}, {0}},
        /* Observations: Atari frames and MinAtar grids. */
        {OP_U8, 4, {32, 84, 84, 4}, {0}},
        {OP_U8, 4, {1, 84, 84, 4}, {0}},
        {OP_U8, 4, {32, 10, 10, 7}, {0}},
        /* Per-feature-map tokens and NHWC -> NCHW. */
        {OP_PERMUTE, 3, {32, 121, 64}, {0, 2, 1}},
        {OP_PERMUTE, 3, {32, 441, 32}, {0, 2, 1}},
        {OP_PERMUTE, 4, {32, 11, 11, 64}, {0, 3, 1, 2}},
    };
    for (int t = 0; t < nthreads; t++)
        for (size_t i = 0; i < sizeof problems / sizeof problems[0]; i++)
            run_problem(&problems[i], threads[t]);
    return 0;
}
