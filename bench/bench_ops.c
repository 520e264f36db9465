/* bench_ops.c — every op of the Nature-CNN DQN at batch 32 through tessera and
 * through the same oneDNN primitives called directly, at 1 and 2 threads.
 *
 * For each layer: forward (inference), backward-data and backward-weights
 * (with the fused ReLU's backward), as median milliseconds over repeated runs,
 * GFLOP/s, and tessera's overhead over the raw primitive. Then a layers-only
 * DQN training step (online forward + backward on s, target forward on s',
 * squared TD loss, Adam) against its ceiling: the sum of the raw primitives it
 * runs plus the same Adam update timed alone. Results are checked against the reference kernels before timing.
 *
 *   bench_ops [--reps N] [--threads LIST]   (LIST like 1,2)
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "bench_util.h"
#include "tessera/tessera.h"

#define PROG "bench_ops" /* prefix of command-line errors */

#define CHECK(call)                                                                       \
    do {                                                                                  \
        dnnl_status_t s_ = (call);                                                        \
        if (s_ != dnnl_success) {                                                         \
            fprintf(stderr, "bench_ops: %s failed (%d) at line %d\n", #call, (int)s_, __LINE__); \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static int g_reps = 15;

/* ==== problems ========================================================== */

typedef struct layer {
    const char *name;
    bool conv;
    int64_t n, h, w, c;  /* input (N, H, W, C), or (N, C) for dense */
    int64_t o, k, stride; /* output channels / features, kernel, stride */
    bool relu;
    bool first; /* input needs no gradient: no backward-data */
} layer;

static const layer nature[] = {
    {"conv1 32@8x8/4", true, 32, 84, 84, 4, 32, 8, 4, true, true},
    {"conv2 64@4x4/2", true, 32, 21, 21, 32, 64, 4, 2, true, false},
    {"conv3 64@3x3/1", true, 32, 11, 11, 64, 64, 3, 1, true, false},
    {"fc 7744->512", false, 32, 1, 1, 7744, 512, 1, 1, true, false},
    {"q 512->6", false, 32, 1, 1, 512, 6, 1, 1, false, false},
};
enum { NUM_LAYERS = sizeof nature / sizeof nature[0] };

static void out_dims(const layer *l, int64_t *ho, int64_t *wo, int64_t *pad_t, int64_t *pad_l)
{
    if (!l->conv) {
        *ho = *wo = 1;
        *pad_t = *pad_l = 0;
        return;
    }
    tsr_conv_output_size(l->h, l->k, l->stride, TSR_PADDING_SAME, ho, pad_t);
    tsr_conv_output_size(l->w, l->k, l->stride, TSR_PADDING_SAME, wo, pad_l);
}

static double layer_flops(const layer *l)
{
    int64_t ho, wo, pt, pl;
    out_dims(l, &ho, &wo, &pt, &pl);
    return 2.0 * (double)(l->n * ho * wo) * (double)(l->o * l->c * l->k * l->k);
}

static void fill(float *x, int64_t n, uint64_t seed)
{
    tsr_rng r;
    tsr_rng_init(&r, seed, 99);
    for (int64_t i = 0; i < n; i++) x[i] = 2.0f * tsr_rng_uniform_f32(&r) - 1.0f;
}

/* ==== raw oneDNN ======================================================== */

typedef struct raw_prim {
    dnnl_primitive_t prim;
    dnnl_primitive_desc_t pd;
    int nargs;
    dnnl_exec_arg_t args[8];
} raw_prim;

typedef struct raw_layer {
    raw_prim fwd_inference, fwd_training, relu_bwd, bwd_data, bwd_weights;
} raw_layer;

static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

static dnnl_memory_t mem_for(const dnnl_memory_desc_t *md, uint64_t seed)
{
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, g_engine, DNNL_MEMORY_ALLOCATE));
    void *h;
    CHECK(dnnl_memory_get_data_handle(m, &h));
    fill(h, (int64_t)(dnnl_memory_desc_get_size(md) / sizeof(float)), seed);
    return m;
}

static const dnnl_memory_desc_t *q_md(dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static void finish(raw_prim *p, int nargs, const int *kinds, dnnl_memory_t *mems)
{
    CHECK(dnnl_primitive_create(&p->prim, p->pd));
    p->nargs = nargs;
    for (int i = 0; i < nargs; i++) p->args[i] = (dnnl_exec_arg_t){kinds[i], mems[i]};
}

static void raw_run(void *user)
{
    raw_prim *p = user;
    CHECK(dnnl_primitive_execute(p->prim, g_stream, p->nargs, p->args));
    CHECK(dnnl_stream_wait(g_stream));
}

static void raw_build(const layer *l, raw_layer *r)
{
    int64_t ho, wo, pt, pl;
    out_dims(l, &ho, &wo, &pt, &pl);
    dnnl_memory_desc_t src, wei, bias, dst;
    dnnl_dims_t bias_dims = {l->o};
    CHECK(dnnl_memory_desc_init_by_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_a));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    if (l->relu) {
        dnnl_post_ops_t po;
        CHECK(dnnl_post_ops_create(&po));
        CHECK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f));
        CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t hint = NULL;
    for (int prop = 0; prop < 2; prop++) {
        raw_prim *p = prop ? &r->fwd_training : &r->fwd_inference;
        dnnl_prop_kind_t kind = prop ? dnnl_forward_training : dnnl_forward_inference;
        if (l->conv) {
            dnnl_dims_t sd = {l->n, l->c, l->h, l->w}, wd = {l->o, l->c, l->k, l->k},
                        dd = {l->n, l->o, ho, wo};
            dnnl_dims_t strides = {l->stride, l->stride}, pad_l = {pt, pl},
                        pad_r = {(ho - 1) * l->stride + l->k - l->h - pt,
                                 (wo - 1) * l->stride + l->k - l->w - pl};
            if (pad_r[0] < 0) pad_r[0] = 0;
            if (pad_r[1] < 0) pad_r[1] = 0;
            CHECK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nhwc));
            CHECK(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any));
            CHECK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nhwc));
            dnnl_convolution_desc_t cd;
            CHECK(dnnl_convolution_forward_desc_init(&cd, kind, dnnl_convolution_direct, &src, &wei,
                                                     &bias, &dst, strides, pad_l, pad_r));
            CHECK(dnnl_primitive_desc_create(&p->pd, &cd, attr, g_engine, NULL));
        } else {
            dnnl_dims_t sd = {l->n, l->c}, wd = {l->o, l->c}, dd = {l->n, l->o};
            CHECK(dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_f32, dnnl_nc));
            CHECK(dnnl_memory_desc_init_by_tag(&wei, 2, wd, dnnl_f32, dnnl_format_tag_any));
            CHECK(dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_nc));
            dnnl_inner_product_desc_t id;
            CHECK(dnnl_inner_product_forward_desc_init(&id, kind, &src, &wei, &bias, &dst));
            CHECK(dnnl_primitive_desc_create(&p->pd, &id, attr, g_engine, NULL));
        }
        dnnl_memory_t m[4] = {mem_for(q_md(p->pd, dnnl_query_src_md), 1),
                              mem_for(q_md(p->pd, dnnl_query_weights_md), 2),
                              mem_for(&bias, 3), mem_for(q_md(p->pd, dnnl_query_dst_md), 4)};
        finish(p, 4, (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST}, m);
        if (prop) hint = p->pd;
    }
    dnnl_primitive_attr_destroy(attr);
    const dnnl_memory_desc_t *dmd = q_md(hint, dnnl_query_dst_md);
    if (l->relu) {
        dnnl_eltwise_desc_t ed;
        CHECK(dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_relu_use_dst_for_bwd, dmd, dmd, 0.f, 0.f));
        dnnl_eltwise_desc_t fd;
        CHECK(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training,
                                             dnnl_eltwise_relu_use_dst_for_bwd, dmd, 0.f, 0.f));
        dnnl_primitive_desc_t fpd;
        CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, g_engine, NULL));
        CHECK(dnnl_primitive_desc_create(&r->relu_bwd.pd, &ed, NULL, g_engine, fpd));
        dnnl_primitive_desc_destroy(fpd);
        dnnl_memory_t m[3] = {mem_for(dmd, 5), mem_for(dmd, 6), mem_for(dmd, 7)};
        finish(&r->relu_bwd, 3, (int[]){DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC}, m);
    }
    const dnnl_memory_desc_t *smd = q_md(hint, dnnl_query_src_md);
    dnnl_memory_desc_t wany;
    if (l->conv) {
        dnnl_dims_t wd = {l->o, l->c, l->k, l->k};
        CHECK(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any));
    } else {
        dnnl_dims_t wd = {l->o, l->c};
        CHECK(dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_f32, dnnl_format_tag_any));
    }
    dnnl_dims_t strides = {l->stride, l->stride}, pad_l = {pt, pl},
                pad_r = {(ho - 1) * l->stride + l->k - l->h - pt, (wo - 1) * l->stride + l->k - l->w - pl};
    if (pad_r[0] < 0) pad_r[0] = 0;
    if (pad_r[1] < 0) pad_r[1] = 0;
    if (!l->first) {
        if (l->conv) {
            dnnl_convolution_desc_t cd;
            CHECK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, smd, &wany,
                                                           dmd, strides, pad_l, pad_r));
            CHECK(dnnl_primitive_desc_create(&r->bwd_data.pd, &cd, NULL, g_engine, hint));
        } else {
            dnnl_inner_product_desc_t id;
            CHECK(dnnl_inner_product_backward_data_desc_init(&id, smd, &wany, dmd));
            CHECK(dnnl_primitive_desc_create(&r->bwd_data.pd, &id, NULL, g_engine, hint));
        }
        dnnl_primitive_desc_t pd = r->bwd_data.pd;
        dnnl_memory_t m[3] = {mem_for(q_md(pd, dnnl_query_diff_dst_md), 8),
                              mem_for(q_md(pd, dnnl_query_weights_md), 9),
                              mem_for(q_md(pd, dnnl_query_diff_src_md), 10)};
        finish(&r->bwd_data, 3, (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC}, m);
    }
    dnnl_dims_t bias_dims2 = {l->o};
    dnnl_memory_desc_t dbias;
    CHECK(dnnl_memory_desc_init_by_tag(&dbias, 1, bias_dims2, dnnl_f32, dnnl_a));
    if (l->conv) {
        dnnl_convolution_desc_t cd;
        CHECK(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, smd, &wany,
                                                          &dbias, dmd, strides, pad_l, pad_r));
        CHECK(dnnl_primitive_desc_create(&r->bwd_weights.pd, &cd, NULL, g_engine, hint));
    } else {
        dnnl_inner_product_desc_t id;
        CHECK(dnnl_inner_product_backward_weights_desc_init(&id, smd, &wany, &dbias, dmd));
        CHECK(dnnl_primitive_desc_create(&r->bwd_weights.pd, &id, NULL, g_engine, hint));
    }
    dnnl_primitive_desc_t pd = r->bwd_weights.pd;
    dnnl_memory_t m[4] = {mem_for(q_md(pd, dnnl_query_src_md), 11),
                          mem_for(q_md(pd, dnnl_query_diff_dst_md), 12),
                          mem_for(q_md(pd, dnnl_query_diff_weights_md), 13), mem_for(&dbias, 14)};
    finish(&r->bwd_weights, 4,
           (int[]){DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS}, m);
}

static double raw_time(raw_prim *p)
{
    if (!p->prim) return 0.0;
    return bench_time(raw_run, p, 3, g_reps, 3);
}

/* ==== tessera =========================================================== */

typedef struct net {
    tsr_params params;
    int w[NUM_LAYERS], b[NUM_LAYERS];
    tsr_weight_cache cache[NUM_LAYERS];
} net;

static void net_init(net *n, uint64_t seed)
{
    tsr_params_init(&n->params);
    char name[64];
    for (int i = 0; i < NUM_LAYERS; i++) {
        const layer *l = &nature[i];
        snprintf(name, sizeof name, "layer%d/weight", i);
        n->w[i] = l->conv ? tsr_params_add(&n->params, name, 4, TSR_SHAPE(l->o, l->c, l->k, l->k), 0)
                          : tsr_params_add(&n->params, name, 2, TSR_SHAPE(l->o, l->c), 0);
        snprintf(name, sizeof name, "layer%d/bias", i);
        n->b[i] = tsr_params_add(&n->params, name, 1, TSR_SHAPE(l->o), 0);
    }
    tsr_params_finalize(&n->params);
    tsr_rng rng;
    tsr_rng_init(&rng, seed, TSR_RNG_STREAM_INIT);
    for (int i = 0; i < NUM_LAYERS; i++) {
        tsr_tensor *w = tsr_params_tensor(&n->params, n->w[i]);
        int64_t fi, fo;
        tsr_init_fans(w, &fi, &fo);
        tsr_init_xavier_uniform(w, fi, fo, &rng);
    }
    memset(n->cache, 0, sizeof n->cache);
}

static void net_fini(net *n)
{
    for (int i = 0; i < NUM_LAYERS; i++) tsr_weight_cache_fini(&n->cache[i]);
    tsr_params_fini(&n->params);
}

static tsr_tensor *layer_forward(tsr_ctx *ctx, net *n, int i, tsr_tensor *x)
{
    const layer *l = &nature[i];
    tsr_tensor *w = tsr_params_tensor(&n->params, n->w[i]);
    tsr_tensor *b = tsr_params_tensor(&n->params, n->b[i]);
    if (l->conv) return tsr_conv2d(ctx, x, w, b, (int)l->stride, TSR_PADDING_SAME, l->relu, &n->cache[i]);
    return tsr_linear(ctx, x, w, b, l->relu, &n->cache[i]);
}

static tsr_tensor *net_forward(tsr_ctx *ctx, net *n, tsr_tensor *x)
{
    for (int i = 0; i < NUM_LAYERS; i++) {
        if (i == 3) x = tsr_flatten(ctx, x);
        x = layer_forward(ctx, n, i, x);
    }
    return x;
}

/* One layer in isolation: x and dy live outside the arena. */
typedef struct op_case {
    tsr_ctx *ctx;
    net *n;
    int i;
    tsr_tensor *x, *dy;
    bool need_dx;
    tsr_tensor *y;
} op_case;

static void tsr_fwd_run(void *user)
{
    op_case *c = user;
    tsr_ctx_begin_step(c->ctx);
    tsr_ctx_set_grad(c->ctx, false);
    layer_forward(c->ctx, c->n, c->i, c->x);
    tsr_ctx_set_grad(c->ctx, true);
}

/* Median time of the backward of one layer (forward untimed). */
static double tsr_bwd_time(op_case *c)
{
    double samples[64];
    int reps = g_reps > 64 ? 64 : g_reps;
    for (int r = -3; r < reps; r++) {
        double total = 0;
        for (int inner = 0; inner < 3; inner++) {
            tsr_ctx_begin_step(c->ctx);
            tsr_grad_reset(c->x, c->need_dx);
            tsr_tensor *y = layer_forward(c->ctx, c->n, c->i, c->x);
            double t0 = bench_now();
            tsr_backward_from(c->ctx, y, c->dy);
            total += bench_now() - t0;
        }
        if (r >= 0) samples[r] = total / 3;
    }
    return bench_median(samples, reps);
}

/* ==== the DQN step ====================================================== */

typedef struct step_case {
    tsr_ctx *ctx;
    net online, target;
    tsr_optimizer *adam;
    tsr_tensor *obs, *next_obs, *actions, *rewards;
} step_case;

static void dqn_step(void *user)
{
    step_case *s = user;
    tsr_ctx *ctx = s->ctx;
    tsr_ctx_begin_step(ctx);
    const int64_t n = 32, a = 6;
    /* Target: r + 0.99 * max_a Q_target(s', a), no tape. */
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *q_next = net_forward(ctx, &s->target, tsr_u8_to_f32(ctx, s->next_obs, 1.0f / 255));
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *y = tsr_ctx_tensor(ctx, TSR_DTYPE_F32, 1, TSR_SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        float best = tsr_f32(q_next)[i * a];
        for (int64_t j = 1; j < a; j++) best = fmaxf(best, tsr_f32(q_next)[i * a + j]);
        tsr_f32(y)[i] = tsr_f32(s->rewards)[i] + 0.99f * best;
    }
    tsr_tensor *q = net_forward(ctx, &s->online, tsr_u8_to_f32(ctx, s->obs, 1.0f / 255));
    tsr_tensor *td = tsr_sub(ctx, tsr_gather_actions(ctx, q, s->actions), y);
    tsr_tensor *loss = tsr_mean_all(ctx, tsr_mul(ctx, td, td));
    tsr_backward(ctx, loss);
    tsr_optimizer_step(s->adam, tsr_ctx_epoch(ctx));
}

static void adam_run(void *user)
{
    step_case *s = user;
    tsr_optimizer_step(s->adam, tsr_ctx_epoch(s->ctx));
}

/* ==== main ============================================================== */

static void print_row(const char *name, const char *dir, int threads, double t_tsr, double t_raw,
                      double flops)
{
    printf("| %-16s | %-5s | %d | %9.3f | %9.3f | %7.1f | %+8.1f | %6.1f%% |\n", name, dir, threads,
           1e3 * t_tsr, 1e3 * t_raw, flops / t_tsr * 1e-9, 1e6 * (t_tsr - t_raw),
           100.0 * (t_tsr / t_raw - 1.0));
}

int main(int argc, char **argv)
{
    int thread_list[4] = {1, 2};
    int num_threads = 2;
    for (int i = 1; i < argc; i++) {
        long long v;
        if (bench_int_option(PROG, argc, argv, &i, "--reps", 3, 64, &v)) {
            g_reps = (int)v;
        } else if (bench_threads_option(PROG, argc, argv, &i, thread_list, &num_threads, 4)) {
        } else {
            fprintf(stderr, "usage: bench_ops [--reps N (3 to 64)] [--threads LIST (like 1,2)]\n");
            return 2;
        }
    }
    CHECK(dnnl_engine_create(&g_engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags));

    printf("tessera op benchmark: Nature-CNN DQN layers, batch 32, SAME padding, NHWC, float32\n");
    printf("median of %d runs; overhead = tessera - raw oneDNN primitive\n\n", g_reps);
    printf("| op               | dir   | T | tessera ms | raw ms   | GFLOP/s | overhead us | overhead |\n");
    printf("|------------------|-------|---|-----------|-----------|---------|----------|---------|\n");

    for (int ti = 0; ti < num_threads; ti++) {
        int threads = thread_list[ti];
        omp_set_num_threads(threads);
        tsr_ctx *ctx = tsr_ctx_new(NULL);
        net n;
        net_init(&n, 1);
        double ceiling = 0;
        for (int i = 0; i < NUM_LAYERS; i++) {
            const layer *l = &nature[i];
            raw_layer r;
            memset(&r, 0, sizeof r);
            raw_build(l, &r);
            int64_t ho, wo, pt, pl;
            out_dims(l, &ho, &wo, &pt, &pl);
            tsr_tensor *x = l->conv ? tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(l->n, l->h, l->w, l->c))
                                    : tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(l->n, l->c));
            tsr_tensor *dy = l->conv ? tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(l->n, ho, wo, l->o))
                                     : tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(l->n, l->o));
            fill(tsr_f32(x), tsr_tensor_numel(x), 21);
            fill(tsr_f32(dy), tsr_tensor_numel(dy), 22);
            op_case c = {.ctx = ctx, .n = &n, .i = i, .x = x, .dy = dy};
            double flops = layer_flops(l);

            double t_fwd = bench_time(tsr_fwd_run, &c, 3, g_reps, 3);
            double r_fwd = raw_time(&r.fwd_inference);
            print_row(l->name, "fwd", threads, t_fwd, r_fwd, flops);

            /* Backward without and with backward-data: their difference is bwd_d. */
            c.need_dx = false;
            double t_bw = tsr_bwd_time(&c);
            double r_bw = raw_time(&r.bwd_weights) + raw_time(&r.relu_bwd);
            print_row(l->name, "bwd_w", threads, t_bw, r_bw, flops);
            double r_bd = 0;
            if (!l->first) {
                c.need_dx = true;
                double t_all = tsr_bwd_time(&c);
                r_bd = raw_time(&r.bwd_data);
                print_row(l->name, "bwd_d", threads, t_all - t_bw, r_bd, flops);
            }
            /* Step ceiling: target fwd (inference) + online fwd (training) + bwd. */
            ceiling += r_fwd + raw_time(&r.fwd_training) + r_bw + r_bd;
            tsr_tensor_free(x);
            tsr_tensor_free(dy);
            raw_prim *all[] = {&r.fwd_inference, &r.fwd_training, &r.relu_bwd, &r.bwd_data, &r.bwd_weights};
            for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
                if (all[k]->prim) dnnl_primitive_destroy(all[k]->prim);
        }
        net_fini(&n);

        step_case s = {.ctx = ctx};
        net_init(&s.online, 1);
        tsr_params_init_like(&s.target.params, &s.online.params);
        memcpy(s.target.w, s.online.w, sizeof s.target.w);
        memcpy(s.target.b, s.online.b, sizeof s.target.b);
        memset(s.target.cache, 0, sizeof s.target.cache);
        tsr_params_copy_values(&s.target.params, &s.online.params);
        tsr_optimizer_options adam = tsr_optimizer_adam_defaults();
        if (tsr_optimizer_new(&s.adam, &s.online.params, &adam, NULL) != TSR_STATUS_OK) return 1;
        s.obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(32, 84, 84, 4));
        s.next_obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(32, 84, 84, 4));
        s.actions = tsr_tensor_new(TSR_DTYPE_I32, 1, TSR_SHAPE(32));
        s.rewards = tsr_tensor_new(TSR_DTYPE_F32, 1, TSR_SHAPE(32));
        tsr_rng rng;
        tsr_rng_init(&rng, 5, 5);
        for (int64_t i = 0; i < 32 * 84 * 84 * 4; i++) {
            tsr_u8(s.obs)[i] = (uint8_t)tsr_rng_below(&rng, 256);
            tsr_u8(s.next_obs)[i] = (uint8_t)tsr_rng_below(&rng, 256);
        }
        for (int i = 0; i < 32; i++) {
            tsr_i32(s.actions)[i] = (int32_t)tsr_rng_below(&rng, 6);
            tsr_f32(s.rewards)[i] = (float)tsr_rng_below(&rng, 2);
        }
        double t_step = bench_time(dqn_step, &s, 5, g_reps, 2);
        /* Adam alone over the online block (4.0M parameters): memory-bound,
         * no oneDNN primitive; the same call in both columns. */
        double t_adam = bench_time(adam_run, &s, 2, g_reps, 2);
        printf("| %-16s | %-5s | %d | %9.3f | %9.3f |         |          |         |\n",
               "adam (4.0M)", "step", threads, 1e3 * t_adam, 1e3 * t_adam);
        ceiling += t_adam;
        uint64_t allocs = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        for (int i = 0; i < 5; i++) dqn_step(&s);
        printf("| %-16s | %-5s | %d | %9.3f | %9.3f |         | %+8.1f | %6.1f%% |\n", "DQN step",
               "all", threads, 1e3 * t_step, 1e3 * ceiling, 1e6 * (t_step - ceiling),
               100.0 * (t_step / ceiling - 1.0));
        printf("|   (%.1f steps/s; ceiling %.1f steps/s; arena allocations after warm-up: %s) |\n",
               1.0 / t_step, 1.0 / ceiling,
               tsr_arena_system_allocations(tsr_ctx_arena(ctx)) == allocs ? "none" : "SOME");
        tsr_optimizer_free(s.adam);
        net_fini(&s.online);
        net_fini(&s.target);
        tsr_tensor_free(s.obs);
        tsr_tensor_free(s.next_obs);
        tsr_tensor_free(s.actions);
        tsr_tensor_free(s.rewards);
        tsr_ctx_free(ctx);
    }
    dnnl_stream_destroy(g_stream);
    dnnl_engine_destroy(g_engine);
    return 0;
}
