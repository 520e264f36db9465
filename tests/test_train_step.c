/* A whole layers-only DQN step on the MinAtar network (conv 16@3x3 SAME on
 * 10x10x4 -> dense 128 -> 6 Q-values): the properties the core promises for
 * the training loop. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "support/allocations.h"
#include "tessera/tessera.h"

typedef struct minatar_net {
    tsr_params params;
    int conv_w, conv_b, fc_w, fc_b, q_w, q_b;
    tsr_weight_cache cache[3];
} minatar_net;

static void net_init(minatar_net *n, uint64_t seed)
{
    memset(n, 0, sizeof *n);
    tsr_params_init(&n->params);
    n->conv_w = tsr_params_add(&n->params, "conv/weight", 4, TSR_SHAPE(16, 4, 3, 3), 0);
    n->conv_b = tsr_params_add(&n->params, "conv/bias", 1, TSR_SHAPE(16), 0);
    n->fc_w = tsr_params_add(&n->params, "fc/weight", 2, TSR_SHAPE(128, 1600), 0);
    n->fc_b = tsr_params_add(&n->params, "fc/bias", 1, TSR_SHAPE(128), 0);
    n->q_w = tsr_params_add(&n->params, "q/weight", 2, TSR_SHAPE(6, 128), 0);
    n->q_b = tsr_params_add(&n->params, "q/bias", 1, TSR_SHAPE(6), 0);
    tsr_params_finalize(&n->params);
    tsr_rng rng;
    tsr_rng_init(&rng, seed, TSR_RNG_STREAM_INIT);
    int weights[3] = {n->conv_w, n->fc_w, n->q_w};
    for (int i = 0; i < 3; i++) {
        tsr_tensor *w = tsr_params_tensor(&n->params, weights[i]);
        int64_t fan_in, fan_out;
        tsr_init_fans(w, &fan_in, &fan_out);
        tsr_init_xavier_uniform(w, fan_in, fan_out, &rng);
    }
}

static void net_fini(minatar_net *n)
{
    for (int i = 0; i < 3; i++) tsr_weight_cache_fini(&n->cache[i]);
    tsr_params_fini(&n->params);
}

static tsr_tensor *net_forward(tsr_ctx *ctx, minatar_net *n, const tsr_tensor *obs)
{
    tsr_params *p = &n->params;
    tsr_tensor *x = tsr_u8_to_f32(ctx, obs, 1.0f);
    x = tsr_conv2d(ctx, x, tsr_params_tensor(p, n->conv_w), tsr_params_tensor(p, n->conv_b), 1,
                   TSR_PADDING_SAME, true, &n->cache[0]);
    x = tsr_flatten(ctx, x);
    x = tsr_linear(ctx, x, tsr_params_tensor(p, n->fc_w), tsr_params_tensor(p, n->fc_b), true,
                   &n->cache[1]);
    return tsr_linear(ctx, x, tsr_params_tensor(p, n->q_w), tsr_params_tensor(p, n->q_b), false,
                      &n->cache[2]);
}

typedef struct run {
    tsr_ctx *ctx;
    minatar_net online, target;
    tsr_optimizer *opt;
    tsr_tensor *obs, *next_obs, *actions, *rewards;
    tsr_rng data_rng;
} run;

static void run_init(run *r, uint64_t seed)
{
    r->ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 4096}); /* force warm-up growth */
    net_init(&r->online, seed);
    net_init(&r->target, seed + 1);
    tsr_params_copy_values(&r->target.params, &r->online.params);
    tsr_optimizer_options adam = tsr_optimizer_adam_defaults();
    adam.learning_rate = 1e-3;
    cr_assert_eq(tsr_optimizer_new(&r->opt, &r->online.params, &adam, NULL), TSR_STATUS_OK);
    r->obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(32, 10, 10, 4));
    r->next_obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(32, 10, 10, 4));
    r->actions = tsr_tensor_new(TSR_DTYPE_I32, 1, TSR_SHAPE(32));
    r->rewards = tsr_tensor_new(TSR_DTYPE_F32, 1, TSR_SHAPE(32));
    tsr_rng_init(&r->data_rng, seed, TSR_RNG_STREAM_REPLAY);
}

static void run_fini(run *r)
{
    tsr_optimizer_free(r->opt);
    net_fini(&r->online);
    net_fini(&r->target);
    tsr_tensor_free(r->obs);
    tsr_tensor_free(r->next_obs);
    tsr_tensor_free(r->actions);
    tsr_tensor_free(r->rewards);
    tsr_ctx_free(r->ctx);
}

/* One DQN update on a fresh random batch; returns the loss. */
static float step(run *r)
{
    for (int64_t i = 0; i < 32 * 100 * 4; i++) {
        tsr_u8(r->obs)[i] = tsr_rng_uniform(&r->data_rng) < 0.1;
        tsr_u8(r->next_obs)[i] = tsr_rng_uniform(&r->data_rng) < 0.1;
    }
    for (int i = 0; i < 32; i++) {
        tsr_i32(r->actions)[i] = (int32_t)tsr_rng_below(&r->data_rng, 6);
        tsr_f32(r->rewards)[i] = (float)tsr_rng_below(&r->data_rng, 2);
    }
    tsr_ctx *ctx = r->ctx;
    tsr_ctx_begin_step(ctx);
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *q_next = net_forward(ctx, &r->target, r->next_obs);
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *y = tsr_ctx_tensor(ctx, TSR_DTYPE_F32, 1, TSR_SHAPE(32));
    for (int i = 0; i < 32; i++) {
        float best = -INFINITY;
        for (int a = 0; a < 6; a++) best = fmaxf(best, tsr_f32(q_next)[i * 6 + a]);
        tsr_f32(y)[i] = tsr_f32(r->rewards)[i] + 0.99f * best;
    }
    tsr_tensor *q = net_forward(ctx, &r->online, r->obs);
    tsr_tensor *td = tsr_sub(ctx, tsr_gather_actions(ctx, q, r->actions), y);
    tsr_tensor *loss = tsr_mean_all(ctx, tsr_mul(ctx, td, td));
    tsr_backward(ctx, loss);
    tsr_optimizer_step(r->opt, tsr_ctx_epoch(ctx));
    return tsr_f32(loss)[0];
}

Test(train_step, allocates_nothing_after_warm_up)
{
    /* The counters are per thread: at one thread every allocation is made on
     * this one, so none can go unseen on an OpenMP worker. */
    omp_set_num_threads(1);
    run r;
    run_init(&r, 1);
    for (int i = 0; i < 3; i++) step(&r);
    uint64_t allocations = tsr_arena_system_allocations(tsr_ctx_arena(r.ctx));
    size_t high_water = tsr_arena_high_water(tsr_ctx_arena(r.ctx));
    bool counting = tsr_test_count_allocations();
    long heap_before = tsr_test_allocations(), runtime_before = tsr_test_runtime_allocations();
    for (int i = 0; i < 20; i++) step(&r);
    long heap = tsr_test_allocations() - heap_before;
    long runtime = tsr_test_runtime_allocations() - runtime_before;
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(r.ctx)), allocations);
    cr_expect_eq(tsr_arena_high_water(tsr_ctx_arena(r.ctx)), high_water);
    /* Nor anywhere else in tessera: the optimizer, the weight caches, the
     * primitive cache (one thread, so every allocation would be on this one).
     * oneDNN's execute and libgomp's one-thread teams allocate on every call:
     * counted apart, and seen, so the wrappers are in place. */
    cr_expect(counting, "no heap allocation counter (tests/support/allocations.c): tessera's own "
                        "allocations went unchecked");
    if (counting) {
        cr_expect_eq(heap, 0, "%ld heap allocations by tessera in 20 steps after warm-up", heap);
        cr_expect_gt(runtime, 0, "no allocation inside oneDNN or libgomp was counted");
    }
    run_fini(&r);
}

Test(train_step, same_seed_and_threads_give_identical_parameters)
{
    omp_set_num_threads(2);
    run a, b;
    run_init(&a, 7);
    run_init(&b, 7);
    for (int i = 0; i < 10; i++) cr_assert_eq(step(&a), step(&b), "losses differ at step %d", i);
    cr_expect_eq(memcmp(a.online.params.values, b.online.params.values,
                        a.online.params.numel * sizeof(float)), 0);
    run_fini(&a);
    run_fini(&b);
}

Test(train_step, reduces_the_loss_on_a_fixed_batch)
{
    run r;
    run_init(&r, 3);
    /* Same batch and a fixed target network: regression onto fixed targets. */
    tsr_rng saved = r.data_rng;
    float first = step(&r), last = first;
    for (int i = 0; i < 60; i++) {
        r.data_rng = saved;
        last = step(&r);
    }
    cr_expect_lt(last, 0.5f * first, "loss %g -> %g", first, last);
    run_fini(&r);
}
