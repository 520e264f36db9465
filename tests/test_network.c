/* Networks built from a config block: shapes, parameters, gradients. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/allclose.h"
#include "support/files.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

static tsr_network_config config_from(const char *const *overrides, int n)
{
    return tsr_test_load_run_config(NULL, overrides, n).network;
}

#define CONFIG(...)                                                                            \
    config_from((const char *const[]){__VA_ARGS__},                                            \
                (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)))

static void expect_output_shape(tsr_network_config cfg, tsr_image_shape in, int64_t atoms,
                                int64_t batch)
{
    tsr_network net;
    tsr_error err;
    cr_assert_eq(tsr_network_init(&net, &cfg, in, 6, atoms, 1.0f, TSR_DTYPE_F32, &err),
                 TSR_STATUS_OK, "%s", err.message);
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&net, &rng);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(batch, in.h, in.w, in.c));
    tsr_rng noise_rng;
    tsr_rng_init(&noise_rng, 1, TSR_RNG_STREAM_NOISE);
    tsr_noise noise = {&noise_rng, false};
    tsr_ctx_begin_step(ctx);
    tsr_tensor *q = tsr_network_forward(&net, ctx, obs, &noise);
    if (atoms == 1) {
        cr_expect_eq(q->ndim, 2);
    } else {
        cr_expect_eq(q->ndim, 3);
        cr_expect_eq(q->shape[2], atoms);
    }
    cr_expect_eq(q->shape[0], batch);
    cr_expect_eq(q->shape[1], 6);
    tsr_tensor_free(obs);
    tsr_ctx_free(ctx);
    tsr_network_fini(&net);
}

Test(network, every_documented_head_builds_for_atari_and_minatar_shapes)
{
    tsr_network_config configs[] = {
        CONFIG("network.encoder=impala"),
        CONFIG("network.encoder=impala", "network.head=softmoe", "network.num_experts=4"),
        CONFIG("network.encoder=impala", "network.head=softmoe", "network.num_experts=1",
               "network.hidden=2048"),
        CONFIG("network.encoder=impala", "network.head=topk", "network.num_experts=4"),
        CONFIG("network.encoder=nature", "network.dueling=true", "network.noisy=true"),
    };
    tsr_image_shape shapes[] = {{84, 84, 4}, {10, 10, 7}};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
        for (int s = 0; s < 2; s++)
            for (int b = 0; b < 2; b++) expect_output_shape(configs[c], shapes[s], c == 4 ? 51 : 1, b ? 32 : 1);
}

Test(network, parameter_counts_follow_the_arithmetic)
{
    /* IMPALA + Soft MoE-4 at 84x84x4: encoder 97,744 (the summary's rows),
     * experts 4 x 33,312, phi 32 x 4 x 31 = 3,968 plus its scale, output
     * 3,872 x 6 + 6. */
    tsr_network_config cfg =
        CONFIG("network.encoder=impala", "network.head=softmoe", "network.num_experts=4");
    tsr_network net;
    tsr_error err;
    cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){84, 84, 4}, 6, 1, 1.0f,
                                  TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
    int64_t encoder = 592 + 4 * 2320 + 4640 + 4 * 9248 + 9248 + 4 * 9248;
    cr_expect_eq(tsr_params_count(&net.params), encoder + 4 * 33312 + 3968 + 1 + 3872 * 6 + 6);
    tsr_network_fini(&net);

    /* The dense baseline with its hidden layer widened by E = 4. */
    cfg = CONFIG("network.encoder=impala", "network.scale_hidden_by_experts=true",
                 "network.num_experts=4");
    cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){84, 84, 4}, 6, 1, 1.0f,
                                  TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(tsr_params_count(&net.params), encoder + 3872 * 2048 + 2048 + 2048 * 6 + 6);
    tsr_network_fini(&net);
}

Test(network, hidden_0_sends_the_features_straight_to_the_output)
{
    /* Dopamine's MinAtar DQN and Rainbow networks: conv 16@3x3 SAME on
     * 10x10x4, 1,600 features, then the output layer (here dueling C51). */
    tsr_network_config cfg = CONFIG("network.encoder=minatar", "network.hidden=0");
    tsr_network net;
    tsr_error err;
    cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){10, 10, 4}, 6, 1, 1.0f,
                                  TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(tsr_params_count(&net.params), 4 * 9 * 16 + 16 + 1600 * 6 + 6);
    tsr_network_fini(&net);
    cfg = CONFIG("network.encoder=minatar", "network.hidden=0", "network.dueling=true");
    cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){10, 10, 4}, 6, 51, 1.0f,
                                  TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(tsr_params_count(&net.params),
                 4 * 9 * 16 + 16 + 1600 * 6 * 51 + 6 * 51 + 1600 * 51 + 51);
    tsr_network_fini(&net);
}

/* network.init = torch is PyTorch's nn.Conv2d / nn.Linear default, as in the
 * MinAtar paper's DQN: every weight and bias U(+-1/sqrt(fan_in)) of its layer;
 * dqn (xavier) keeps the biases at 0. */
Test(network, torch_init_draws_weights_and_biases_within_one_over_sqrt_fan_in)
{
    for (int torch = 0; torch < 2; torch++) {
        tsr_network_config cfg = CONFIG("network.encoder=minatar", "network.padding=valid",
                                        "network.hidden=128",
                                        torch ? "network.init=torch" : "network.init=dqn");
        tsr_network net;
        tsr_error err;
        cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){10, 10, 4}, 6, 1, 1.0f,
                                      TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
        tsr_rng rng;
        tsr_rng_init(&rng, 3, TSR_RNG_STREAM_INIT);
        tsr_network_reset(&net, &rng);
        int weights = 0;
        for (int i = 0; i < net.params.count; i++) {
            const char *name = net.params.items[i].name;
            const char *suffix = strrchr(name, '/');
            if (!suffix || strcmp(suffix, "/weight")) continue;
            weights++;
            tsr_tensor *w = tsr_params_tensor(&net.params, i);
            int64_t fan_in, fan_out;
            tsr_init_fans(w, &fan_in, &fan_out);
            double bound = 1.0 / sqrt((double)fan_in), max_w = 0, sum_sq = 0;
            int64_t n = tsr_tensor_numel(w);
            for (int64_t j = 0; j < n; j++) {
                max_w = fmax(max_w, fabs(tsr_f32(w)[j]));
                sum_sq += (double)tsr_f32(w)[j] * tsr_f32(w)[j];
            }
            char bias_name[TSR_PARAM_NAME_BYTES];
            snprintf(bias_name, sizeof bias_name, "%.*s/bias", (int)(suffix - name), name);
            int b = tsr_params_find(&net.params, bias_name);
            cr_assert_geq(b, 0, "%s has no bias", name);
            tsr_tensor *bias = tsr_params_tensor(&net.params, b);
            double max_b = 0;
            for (int64_t j = 0; j < tsr_tensor_numel(bias); j++)
                max_b = fmax(max_b, fabs(tsr_f32(bias)[j]));
            if (torch) {
                cr_expect_leq(max_w, bound * (1 + 1e-6), "%s: |w| %g > 1/sqrt(%lld)", name, max_w,
                              (long long)fan_in);
                cr_expect_geq(max_w, 0.9 * bound, "%s spans the range: %g of %g", name, max_w,
                              bound);
                cr_expect_leq(fabs(sum_sq / (double)n / (bound * bound / 3) - 1), 0.1,
                              "%s: variance %g, uniform's %g", name, sum_sq / (double)n,
                              bound * bound / 3);
                cr_expect(max_b > 0.3 * bound && max_b <= bound * (1 + 1e-6),
                          "%s: biases up to %g, bound %g", bias_name, max_b, bound);
            } else {
                cr_expect_eq(max_b, 0.0, "%s: dqn init leaves the biases at 0", bias_name);
                cr_expect_gt(max_w, 1.05 * bound, "%s: xavier, not 1/sqrt(fan_in)", name);
            }
        }
        cr_expect_eq(weights, 3, "conv, hidden, output");
        tsr_network_fini(&net);
    }
}

/* The units head_dormant_fraction counts: the dense head's hidden layer, or
 * an MoE head's expert hidden activations pooled over experts and slots;
 * none without a hidden layer. Every value is after a ReLU. */
Test(network, head_hidden_units_are_the_hidden_layer_or_the_experts)
{
    static const struct {
        const char *set[4];
        int64_t rows, units; /* rows for a batch of 3; 0: no hidden layer */
    } cases[] = {
        {{"network.encoder=minatar", "network.hidden=8"}, 3, 8},
        {{"network.encoder=minatar", "network.hidden=0"}, 0, 0},
        /* 100 tokens of 16, 2 experts with 50 slots each (capacity 1.0). */
        {{"network.encoder=minatar", "network.head=softmoe", "network.num_experts=2",
          "network.hidden=6"}, 2 * 3 * 50, 6},
        {{"network.encoder=minatar", "network.head=topk", "network.num_experts=2",
          "network.hidden=5"}, 2 * 3 * 50, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = 0;
        while (n < 4 && cases[i].set[n]) n++;
        tsr_network_config cfg = config_from(cases[i].set, n);
        tsr_network net;
        tsr_error err;
        cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){10, 10, 4}, 3, 1, 1.0f,
                                      TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
        tsr_rng rng;
        tsr_rng_init(&rng, 5, TSR_RNG_STREAM_INIT);
        tsr_network_reset(&net, &rng);
        tsr_ctx *ctx = tsr_ctx_new(NULL);
        tsr_ctx_begin_step(ctx);
        tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(3, 10, 10, 4));
        tsr_test_fill_uniform(obs, 0, 1, 6);
        tsr_rng noise_rng;
        tsr_rng_init(&noise_rng, 5, TSR_RNG_STREAM_NOISE);
        tsr_noise noise = {&noise_rng, false};
        tsr_network_forward(&net, ctx, obs, &noise);
        tsr_tensor rows;
        bool has = tsr_network_head_hidden(&net, &rows);
        cr_expect_eq(has, cases[i].rows > 0, "case %zu", i);
        if (has) {
            cr_expect_eq(rows.ndim, 2);
            cr_expect_eq(rows.shape[0], cases[i].rows, "case %zu: %lld rows", i,
                         (long long)rows.shape[0]);
            cr_expect_eq(rows.shape[1], cases[i].units, "case %zu", i);
            float lowest = 0;
            for (int64_t k = 0; k < tsr_tensor_numel(&rows); k++)
                lowest = fminf(lowest, tsr_f32(&rows)[k]);
            cr_expect_geq(lowest, 0.0f, "case %zu: an activation before the ReLU", i);
        }
        tsr_tensor_free(obs);
        tsr_ctx_free(ctx);
        tsr_network_fini(&net);
    }
}

Test(network, online_and_target_built_from_one_config_share_a_layout)
{
    tsr_network_config cfg = CONFIG("network.encoder=minatar", "network.head=softmoe");
    tsr_network online, target;
    tsr_error err;
    tsr_image_shape in = {10, 10, 4};
    cr_assert_eq(tsr_network_init(&online, &cfg, in, 6, 1, 1.0f, TSR_DTYPE_F32, &err), TSR_STATUS_OK);
    cr_assert_eq(tsr_network_init(&target, &cfg, in, 6, 1, 1.0f, TSR_DTYPE_F32, &err), TSR_STATUS_OK);
    tsr_rng rng;
    tsr_rng_init(&rng, 3, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&online, &rng);
    tsr_params_copy_values(&target.params, &online.params);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(8, 10, 10, 4));
    for (int i = 0; i < 800; i += 3) tsr_u8(obs)[i] = 1;
    tsr_ctx_begin_step(ctx);
    tsr_tensor *a = tsr_network_forward(&online, ctx, obs, NULL);
    tsr_tensor *b = tsr_network_forward(&target, ctx, obs, NULL);
    tsr_test_allclose(a, b, 0, 0, "online vs synced target");
    tsr_tensor_free(obs);
    tsr_ctx_free(ctx);
    tsr_network_fini(&online);
    tsr_network_fini(&target);
}

Test(network, cross_key_errors_name_the_keys)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    /* Each key that a head or encoder does not read is an error with it, not
     * silently ignored (the default head is dense, the default encoder nature). */
    static const struct {
        const char *set[3];
        const char *message;
    } cases[] = {
        {{"network.mix_mode=none"}, "network.mix_mode applies to head = softmoe, not head = dense"},
        {{"network.mix_mode=none", "network.head=topk"}, "applies to head = softmoe, not head = topk"},
        {{"network.random_router=true"}, "network.random_router applies to head = softmoe or topk"},
        {{"network.head=softmoe", "network.mix_mode=none", "network.random_router=true"},
         "network.random_router: mix_mode = none routes nothing"},
        {{"network.head=softmoe", "network.mix_mode=none", "network.router_normalization=true"},
         "network.router_normalization: mix_mode = none routes nothing"},
        {{"network.head=topk", "network.random_router=true", "network.noisy_routing=true"},
         "network.noisy_routing: a random Top-1 router (network.random_router) has no logits"},
        {{"network.head=topk", "network.random_router=true", "network.importance_loss_weight=1"},
         "network.importance_loss_weight: a random Top-1 router"},
        {{"network.noisy_routing=true", "network.head=softmoe"}, "network.noisy_routing applies to head = topk"},
        {{"network.tokens=per_patch"}, "network.tokens applies to the MoE heads"},
        {{"network.padding=valid", "network.encoder=impala"}, "not available for encoder = impala"},
        {{"network.router_normalization=true", "network.head=topk"},
         "network.router_normalization applies to head = softmoe, not head = topk"},
        {{"network.scale_hidden_by_experts=true", "network.head=softmoe"},
         "network.scale_hidden_by_experts widens head = dense"},
        {{"network.extra_dense=true"}, "network.extra_dense adds a dense layer after an MoE head"},
        {{"network.encoder=mlp", "network.width_scale=2"},
         "network.width_scale and network.padding apply to the conv encoders"},
        {{"network.encoder=mlp", "network.padding=valid"},
         "network.width_scale and network.padding apply to the conv encoders"},
        {{"network.encoder=mlp", "network.head=softmoe"}, "encoder = mlp takes head = dense"},
        {{"network.hidden=0", "network.head=topk"},
         "network.hidden = 0: head = topk needs at least 1 unit per expert"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *set[3] = {(char *)cases[i].set[0], (char *)cases[i].set[1],
                        (char *)cases[i].set[2]};
        int n = set[2] ? 3 : set[1] ? 2 : 1;
        err.message[0] = 0;
        cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, set, n, &err),
                     TSR_STATUS_INVALID_ARGUMENT, "%s: accepted", set[0]);
        cr_expect(strstr(err.message, cases[i].message), "%s: %s", set[0], err.message);
    }
    /* With the head they belong to, the same keys are fine. */
    char *good[] = {"network.head=softmoe", "network.router_normalization=true",
                    "network.extra_dense=true"};
    cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, good, 3, &err), TSR_STATUS_OK, "%s",
                 err.message);
    char *good_dense[] = {"network.scale_hidden_by_experts=true", "network.num_experts=4"};
    cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, good_dense, 2, &err), TSR_STATUS_OK,
                 "%s", err.message);
    char *bad_env[] = {"env.name=minatar/pong"};
    cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, bad_env, 1, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "minatar/breakout"), "lists valid names: %s", err.message);
}

/* ---- gradients through whole small networks, in double ---- */

typedef struct net_case {
    tsr_network net;
    tsr_rng noise_rng;
    tsr_tensor *obs; /* perturbed in place when checked: not always inputs[0] */
} net_case;

static tsr_tensor *net_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)in;
    net_case *c = user;
    tsr_rng rng = c->noise_rng; /* the same noise in every evaluation */
    tsr_noise noise = {&rng, false};
    return tsr_network_forward(&c->net, ctx, c->obs, &noise);
}

static void gradcheck_network(tsr_network_config cfg, int64_t atoms)
{
    net_case c;
    tsr_error err;
    cr_assert_eq(tsr_network_init(&c.net, &cfg, (tsr_image_shape){5, 5, 2}, 3, atoms, 1.0f,
                                  TSR_DTYPE_F64, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_rng rng;
    tsr_rng_init(&rng, 9, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&c.net, &rng);
    tsr_rng_init(&c.noise_rng, 9, TSR_RNG_STREAM_NOISE);
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_F64, 4, TSR_SHAPE(2, 5, 5, 2));
    tsr_test_fill_uniform(obs, 0, 1, 10);
    obs->requires_grad = true;
    c.obs = obs;
    /* The observation and every parameter, at most 16 tensors per call. */
    int next = 0;
    for (int call = 0; call == 0 || next < c.net.params.count; call++) {
        tsr_tensor *inputs[16];
        int count = 0;
        if (call == 0) inputs[count++] = obs;
        else tsr_grad_reset(obs, false);
        int first = next;
        while (count < 16 && next < c.net.params.count) {
            tsr_tensor *t = tsr_params_tensor(&c.net.params, next++);
            t->grad_epoch = 0; /* no stale epoch from an earlier call's context */
            inputs[count++] = t;
        }
        char label[96];
        snprintf(label, sizeof label, "network (parameters %d..%d of %d)", first, next - 1,
                 c.net.params.count);
        cr_log_info("%s: %ld mismatches", label,
                    tsr_test_gradcheck(net_forward, inputs, count, &c, NULL, label));
    }
    cr_expect_eq(next, c.net.params.count);
    tsr_tensor_free(obs);
    tsr_network_fini(&c.net);
}

Test(network, dense_head_matches_finite_differences)
{
    gradcheck_network(CONFIG("network.encoder=minatar", "network.width_scale=1", "network.hidden=8"), 1);
}

Test(network, soft_moe_head_matches_finite_differences)
{
    gradcheck_network(CONFIG("network.encoder=minatar", "network.head=softmoe",
                             "network.num_experts=2", "network.hidden=6"), 1);
}

Test(network, dense_head_without_a_hidden_layer_matches_finite_differences)
{
    gradcheck_network(CONFIG("network.encoder=minatar", "network.hidden=0", "network.dueling=true",
                             "network.noisy=true"), 3);
}

Test(network, topk_head_matches_finite_differences)
{
    gradcheck_network(CONFIG("network.encoder=minatar", "network.head=topk", "network.num_experts=2",
                             "network.hidden=6", "network.capacity_factor=2.0"), 1);
}

Test(network, noisy_moe_networks_match_finite_differences)
{
    gradcheck_network(CONFIG("network.encoder=minatar", "network.head=softmoe",
                             "network.num_experts=2", "network.hidden=4", "network.dueling=true",
                             "network.noisy=true"), 5);
    gradcheck_network(CONFIG("network.encoder=minatar", "network.head=topk",
                             "network.num_experts=2", "network.hidden=4", "network.noisy=true"),
                      1);
}

Test(network, noisy_sigma0_sets_every_sigma_in_the_head_and_the_experts)
{
    /* Dopamine's Full Rainbow MoE: the experts' first layer is noisy too. */
    const char *heads[] = {"network.head=softmoe", "network.head=topk"};
    for (int k = 0; k < 2; k++) {
        tsr_network_config cfg = CONFIG("network.encoder=minatar", heads[k],
                                        "network.num_experts=2", "network.hidden=8",
                                        "network.dueling=true", "network.noisy=true",
                                        "network.noisy_sigma0=0.1");
        tsr_network net;
        tsr_error err;
        cr_assert_eq(tsr_network_init(&net, &cfg, (tsr_image_shape){10, 10, 4}, 6, 51, 1.0f,
                                      TSR_DTYPE_F32, &err), TSR_STATUS_OK, "%s", err.message);
        tsr_rng rng;
        tsr_rng_init(&rng, 3, TSR_RNG_STREAM_INIT);
        tsr_network_reset(&net, &rng);
        cr_expect_geq(tsr_params_find(&net.params, "moe/experts/hidden/weight_sigma"), 0,
                      "%s: the experts are not noisy", heads[k]);
        int sigmas = 0;
        for (int i = 0; i < net.params.count; i++) {
            const char *name = net.params.items[i].name;
            size_t len = strlen(name);
            if (len < 12 || strcmp(name + len - 12, "weight_sigma")) continue;
            const tsr_tensor *w = tsr_params_tensor(&net.params, i);
            double fan_in = (double)w->shape[w->ndim - 1];
            for (int64_t j = 0; j < tsr_tensor_numel(w); j++)
                cr_assert_float_eq(tsr_f32(w)[j], (float)(0.1 / sqrt(fan_in)), 1e-9, "%s[%lld]",
                                   name, (long long)j);
            sigmas++;
        }
        /* The experts' first layer, the value and advantage streams. */
        cr_expect_eq(sigmas, 3, "%s: %d noisy weights", heads[k], sigmas);
        tsr_network_fini(&net);
    }
}

Test(network, noisy_dueling_distributional_head_matches_finite_differences)
{
    gradcheck_network(CONFIG("network.encoder=minatar", "network.hidden=6", "network.dueling=true",
                             "network.noisy=true"), 5);
}
