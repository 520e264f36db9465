/* The DQN / Rainbow agent and the runner: Dopamine's schedule (epsilon,
 * updates, target syncs), no allocation after warm-up, bit-identical runs,
 * the parameter file, the MLP encoder, and DQN learning CartPole. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/allclose.h"
#include "support/allocations.h"
#include "support/files.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* ---- helpers ---------------------------------------------------------------- */

static tsr_run_config load(const char *path, const char *const *overrides, int count)
{
    return tsr_test_load_run_config(path, overrides, count);
}

#define OVERRIDES TSR_TEST_OVERRIDES

/* A vector environment the agent never sees: 4 floats, 2 actions. */
static const tsr_env_spec vector_spec = {
    .name = "test/vector",
    .obs_dtype = TSR_DTYPE_F32,
    .obs_ndim = 1,
    .obs_shape = {4},
    .obs_bytes = 4 * sizeof(float),
    .num_actions = 2,
};

static tsr_agent *vector_agent(const tsr_run_config *cfg)
{
    tsr_agent *agent;
    tsr_error err;
    cr_assert_eq(tsr_agent_new(&agent, cfg, &vector_spec, 1000, true, &err), TSR_STATUS_OK, "%s",
                 err.message);
    return agent;
}

static bool params_equal(const tsr_params *a, const tsr_params *b)
{
    return a->numel == b->numel && !memcmp(a->values, b->values, a->numel * sizeof(float));
}

/* ---- epsilon --------------------------------------------------------------- */

Test(agent, linearly_decaying_epsilon_is_dopamines_formula_at_chosen_steps)
{
    /* D = 100, W = 50, final 0.1: 1 until W, 0.55 half-way, 0.1 from W + D. */
    cr_expect_float_eq(tsr_linearly_decaying_epsilon(100, 0, 50, 0.1), 1.0, 1e-12);
    cr_expect_float_eq(tsr_linearly_decaying_epsilon(100, 50, 50, 0.1), 1.0, 1e-12);
    cr_expect_float_eq(tsr_linearly_decaying_epsilon(100, 75, 50, 0.1), 0.775, 1e-12);
    cr_expect_float_eq(tsr_linearly_decaying_epsilon(100, 100, 50, 0.1), 0.55, 1e-12);
    cr_expect_float_eq(tsr_linearly_decaying_epsilon(100, 150, 50, 0.1), 0.1, 1e-12);
    cr_expect_float_eq(tsr_linearly_decaying_epsilon(100, 10000, 50, 0.1), 0.1, 1e-12);
}

Test(agent, acts_with_the_schedules_epsilon_at_its_training_step_count)
{
    tsr_run_config cfg = load(NULL, OVERRIDES("network.encoder=mlp", "network.hidden=8",
                                              "network.mlp_hidden=8", "agent.min_replay_history=20",
                                              "agent.epsilon_decay_period=40",
                                              "agent.epsilon_train=0.2", "agent.epsilon_eval=0.05",
                                              "agent.batch_size=4", "agent.replay_capacity=1000"));
    tsr_agent *agent = vector_agent(&cfg);
    float obs[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    /* Dopamine increments training_steps before choosing, so the action of
     * agent step k (1-based) uses epsilon(k). */
    tsr_agent_begin_episode(agent, obs);
    cr_expect_float_eq(tsr_agent_last_epsilon(agent), 1.0, 1e-12);
    for (int k = 2; k <= 100; k++) {
        tsr_agent_step(agent, 0.0f, obs);
        double expected = k <= 20 ? 1.0 : k >= 60 ? 0.2 : 0.2 + 0.8 * (60.0 - k) / 40.0;
        cr_assert_float_eq(tsr_agent_last_epsilon(agent), expected, 1e-12, "step %d: %g, expected %g",
                           k, tsr_agent_last_epsilon(agent), expected);
    }
    tsr_agent_set_eval_mode(agent, true);
    tsr_agent_begin_episode(agent, obs);
    cr_expect_float_eq(tsr_agent_last_epsilon(agent), 0.05, 1e-12);
    tsr_agent_free(agent);
}

Test(agent, a_noisy_network_explores_with_epsilon_zero)
{
    tsr_run_config cfg = load(NULL, OVERRIDES("network.encoder=mlp", "network.hidden=8",
                                              "network.mlp_hidden=8", "network.noisy=true",
                                              "agent.min_replay_history=500", "agent.epsilon_eval=0",
                                              "agent.batch_size=4", "agent.replay_capacity=1000"));
    tsr_agent *agent = vector_agent(&cfg);
    float obs[4] = {0.5f, -0.25f, 0.75f, 0.1f};
    /* One observation throughout and no update (200 steps < 500): in
     * training, fresh noise each step is all that can change the action; in
     * evaluation the noise is off (the means), so the action is fixed. */
    int counts[2][2] = {{0}};
    for (int eval = 0; eval < 2; eval++) {
        tsr_agent_set_eval_mode(agent, eval);
        counts[eval][tsr_agent_begin_episode(agent, obs)]++;
        cr_expect_eq(tsr_agent_last_epsilon(agent), 0.0);
        for (int k = 1; k < 200; k++) {
            int32_t action = tsr_agent_step(agent, 1.0f, obs);
            cr_assert(action == 0 || action == 1, "action %d", action);
            counts[eval][action]++;
            cr_expect_eq(tsr_agent_last_epsilon(agent), 0.0);
        }
    }
    cr_expect(counts[0][0] >= 10 && counts[0][1] >= 10,
              "training with noise took actions 0 and 1 %d and %d times", counts[0][0],
              counts[0][1]);
    cr_expect(counts[1][0] == 200 || counts[1][1] == 200,
              "evaluation without noise took actions 0 and 1 %d and %d times", counts[1][0],
              counts[1][1]);
    tsr_agent_free(agent);
}

/* Router noise (a random Soft MoE router, noisy Top-1 routing) is not
 * NoisyNet exploration: epsilon keeps its schedule, 1 in the warm-up. */
Test(agent, router_noise_keeps_the_epsilon_schedule)
{
    const char *presets[][2] = {
        {TSR_CONFIGS_DIR "/breakout/dqn_softmoe.ini", "network.random_router=true"},
        {TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini", "network.noisy_routing=true"},
        {TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini", "network.random_router=true"},
        {TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini", "network.noisy=true"},
    };
    for (int i = 0; i < 4; i++) {
        tsr_run_config cfg = load(presets[i][0], OVERRIDES(presets[i][1]));
        tsr_error err;
        tsr_env env;
        tsr_env_game game;
        tsr_env_options options;
        cr_assert_eq(tsr_run_config_env(&cfg, &game, &options, &err), TSR_STATUS_OK, "%s",
                     err.message);
        cr_assert_eq(tsr_env_init(&env, game, &options, 3, &err), TSR_STATUS_OK, "%s",
                     err.message);
        tsr_env_spec spec = tsr_env_get_spec(&env);
        tsr_agent *agent;
        cr_assert_eq(tsr_agent_new(&agent, &cfg, &spec, 1000, true, &err), TSR_STATUS_OK, "%s",
                     err.message);
        uint8_t *obs = calloc(1, spec.obs_bytes);
        tsr_env_observe(&env, obs);
        tsr_agent_begin_episode(agent, obs);
        double expected = i < 3 ? 1.0 : 0.0;
        cr_expect_eq(tsr_agent_last_epsilon(agent), expected, "%s with %s: epsilon %g, expected %g",
                     presets[i][0], presets[i][1], tsr_agent_last_epsilon(agent), expected);
        free(obs);
        tsr_agent_free(agent);
    }
}

/* ---- updates and target syncs ----------------------------------------------- */

Test(agent, updates_and_syncs_the_target_exactly_at_dopamines_steps)
{
    /* min_replay_history 10, update_period 2, target_update_period 5. Episode
     * 1: begin (t = 0) + 7 steps (t = 1..7, adds 1..7) + a terminal end
     * (add 8, no train step). Episode 2: begin (t = 8, 8 added) then step k
     * adds transition 8 + k and trains at t = 8 + k. Training needs more
     * than 10 added, so the first train step with work is t = 11 (11 added):
     * updates at even t from 12 to 32, syncs at t = 15, 20, 25, 30. */
    tsr_run_config cfg = load(NULL, OVERRIDES("network.encoder=mlp", "network.hidden=8",
                                              "network.mlp_hidden=8", "agent.min_replay_history=10",
                                              "agent.update_period=2", "agent.target_update_period=5",
                                              "agent.batch_size=4", "agent.replay_capacity=100",
                                              "optimizer.learning_rate=0.01"));
    tsr_agent *agent = vector_agent(&cfg);
    tsr_network *online = tsr_agent_online(agent), *target = tsr_agent_target(agent);
    float obs[4] = {0.5f, -0.5f, 0.25f, 1.0f};
    int64_t syncs_at[8], num_syncs = 0, updates_at[32], num_updates = 0;
    bool updated_since_sync = false;

    tsr_agent_begin_episode(agent, obs);
    for (int k = 1; k <= 7; k++) tsr_agent_step(agent, 1.0f, obs);
    tsr_agent_end_episode(agent, 1.0f, true);
    cr_assert_eq(tsr_agent_get_counters(agent).training_steps, 8);
    cr_assert_eq(tsr_agent_get_counters(agent).replay_add_count, 8);
    tsr_agent_begin_episode(agent, obs);
    for (int k = 1; k <= 24; k++) {
        tsr_agent_counters before = tsr_agent_get_counters(agent);
        obs[0] = (float)k / 24.0f;
        tsr_agent_step(agent, k % 3 ? 1.0f : 0.0f, obs);
        tsr_agent_counters after = tsr_agent_get_counters(agent);
        if (after.target_syncs != before.target_syncs) {
            cr_assert_lt(num_syncs, 8);
            syncs_at[num_syncs++] = before.training_steps;
            cr_expect_eq(after.last_target_sync_step, before.training_steps);
            cr_expect(params_equal(&online->params, &target->params),
                      "the target equals the online network right after the sync at t = %lld",
                      (long long)before.training_steps);
            updated_since_sync = false;
        } else if (updated_since_sync) {
            cr_expect(!params_equal(&online->params, &target->params),
                      "online and target differ after an update (t = %lld)",
                      (long long)before.training_steps);
        }
        if (after.updates != before.updates) {
            updates_at[num_updates++] = before.training_steps;
            updated_since_sync = after.target_syncs == before.target_syncs;
        }
    }
    int64_t expected_syncs[] = {15, 20, 25, 30};
    cr_assert_eq(num_syncs, 4, "%lld syncs", (long long)num_syncs);
    for (int i = 0; i < 4; i++) cr_expect_eq(syncs_at[i], expected_syncs[i]);
    cr_assert_eq(num_updates, 11, "%lld updates", (long long)num_updates);
    for (int i = 0; i < 11; i++) cr_expect_eq(updates_at[i], 12 + 2 * i);
    tsr_agent_free(agent);
}

/* ---- no allocation after warm-up --------------------------------------------- */

/* Runs `steps` agent steps of Breakout with episode ends, through the agent API. */
static void play(tsr_agent *agent, tsr_env *env, int steps, uint8_t *obs)
{
    tsr_env_observe(env, obs);
    int32_t action = tsr_agent_begin_episode(agent, obs);
    for (int i = 0; i < steps; i++) {
        tsr_env_step_result r = tsr_env_step(env, action);
        if (r.terminated || r.truncated) {
            tsr_agent_end_episode(agent, r.reward, r.terminated);
            tsr_env_reset(env);
            tsr_env_observe(env, obs);
            action = tsr_agent_begin_episode(agent, obs);
        } else {
            tsr_env_observe(env, obs);
            action = tsr_agent_step(agent, r.reward, obs);
        }
    }
}

/* A training agent for `cfg` on Breakout (env seed 1, agent seed 100). */
static tsr_agent *new_breakout_agent(const tsr_run_config *cfg, tsr_env *env)
{
    tsr_error err;
    cr_assert_eq(tsr_env_init(env, TSR_ENV_GAME_BREAKOUT, NULL, 1, &err), TSR_STATUS_OK);
    tsr_env_spec spec = tsr_env_get_spec(env);
    tsr_agent *agent;
    cr_assert_eq(tsr_agent_new(&agent, cfg, &spec, 100, true, &err), TSR_STATUS_OK, "%s",
                 err.message);
    return agent;
}

static void expect_no_allocation_after_warm_up(const char *preset, const char *const *extra,
                                               int num_extra)
{
    const char *overrides[16] = {"agent.min_replay_history=64", "agent.replay_capacity=2000",
                                 "agent.update_period=1", "agent.target_update_period=50"};
    int n = 4;
    for (int i = 0; i < num_extra; i++) overrides[n++] = extra[i];
    tsr_run_config cfg = load(preset, overrides, n);
    tsr_env env;
    tsr_error err;
    tsr_env_game game;
    tsr_env_options options;
    cr_assert_eq(tsr_run_config_env(&cfg, &game, &options, &err), TSR_STATUS_OK, "%s", err.message);
    cr_assert_eq(tsr_env_init(&env, game, &options, 3, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_env_spec spec = tsr_env_get_spec(&env);
    tsr_agent *agent;
    cr_assert_eq(tsr_agent_new(&agent, &cfg, &spec, 400, true, &err), TSR_STATUS_OK, "%s",
                 err.message);
    uint8_t obs[1000];
    play(agent, &env, 160, obs); /* warm-up: replay fill, the first updates */
    tsr_arena *arena = tsr_ctx_arena(tsr_agent_ctx(agent));
    uint64_t allocations = tsr_arena_system_allocations(arena);
    size_t high_water = tsr_arena_high_water(arena);
    int64_t updates = tsr_agent_get_counters(agent).updates;
    bool counting = tsr_test_count_allocations();
    long heap = tsr_test_allocations(), runtime = tsr_test_runtime_allocations();
    play(agent, &env, 200, obs);
    heap = tsr_test_allocations() - heap;
    runtime = tsr_test_runtime_allocations() - runtime;
    cr_expect_gt(tsr_agent_get_counters(agent).updates, updates + 150, "%s: updates ran", preset);
    cr_expect_eq(tsr_arena_system_allocations(arena), allocations, "%s: arena allocations", preset);
    cr_expect_eq(tsr_arena_high_water(arena), high_water, "%s: arena high-water mark", preset);
    /* Nor on the heap: acting, replay, updates, target syncs, pruning and the
     * environment, all on this thread (one OpenMP thread). What oneDNN's
     * execute and libgomp's one-thread teams allocate inside each call is
     * counted apart (support/allocations.h), and seen. */
    cr_expect(counting, "no heap allocation counter (tests/support/allocations.c): tessera's own "
                        "allocations went unchecked");
    if (counting) {
        cr_expect_eq(heap, 0, "%s: %ld heap allocations by tessera in 200 steps", preset, heap);
        cr_expect_gt(runtime, 0, "%s: the runtime allocation counter saw nothing", preset);
    }
    tsr_agent_free(agent);
}

Test(agent, training_steps_allocate_nothing_after_warm_up)
{
    omp_set_num_threads(1);
    expect_no_allocation_after_warm_up(TSR_CONFIGS_DIR "/breakout/dqn.ini", NULL, 0);
    expect_no_allocation_after_warm_up(TSR_CONFIGS_DIR "/breakout/rainbow.ini", NULL, 0);
    expect_no_allocation_after_warm_up(TSR_CONFIGS_DIR "/breakout/dqn_softmoe.ini", NULL, 0);
    /* Masks recomputed every 10 updates within the window. */
    const char *gmp[] = {"pruning.step_units=updates", "pruning.start_step=10",
                         "pruning.end_step=300", "pruning.update_freq=10"};
    expect_no_allocation_after_warm_up(TSR_CONFIGS_DIR "/breakout/dqn_gmp95.ini", gmp, 4);
}

/* ---- pruning around the update ---------------------------------------------- */

Test(agent, pruned_weights_stay_zero_and_the_target_copies_them)
{
    tsr_run_config cfg = load(TSR_CONFIGS_DIR "/breakout/dqn_gmp95.ini",
                              OVERRIDES("agent.min_replay_history=32", "agent.replay_capacity=1000",
                                        "agent.target_update_period=40",
                                        "pruning.step_units=updates", "pruning.start_step=0",
                                        "pruning.end_step=0", "pruning.target_sparsity=0.5"));
    tsr_env env;
    tsr_agent *agent = new_breakout_agent(&cfg, &env);
    uint8_t obs[400];
    play(agent, &env, 120, obs);
    tsr_error err;
    double sparsity, dormant, head_dormant;
    cr_assert_eq(tsr_agent_health(agent, 0.0, &sparsity, &dormant, &head_dormant, &err),
                 TSR_STATUS_OK);
    cr_expect(isfinite(head_dormant) && head_dormant >= 0 && head_dormant <= 1);
    /* One-shot to 50% over the prunable tensors: the total over every
     * parameter (biases are not pruned) is a little below 0.5. */
    cr_expect_gt(sparsity, 0.4, "sparsity %g", sparsity);
    cr_expect_lt(sparsity, 0.55, "sparsity %g", sparsity);
    cr_expect(isfinite(dormant) && dormant >= 0 && dormant <= 1);
    const tsr_pruner *pruner = tsr_agent_pruner(agent);
    const tsr_params *online = &tsr_agent_online(agent)->params;
    const tsr_params *target = &tsr_agent_target(agent)->params;
    cr_expect_geq(tsr_agent_get_counters(agent).target_syncs, 1);
    for (int i = 0; i < online->count; i++) {
        if (!tsr_pruner_is_pruned(pruner, i)) continue;
        tsr_tensor mask = tsr_pruner_mask((tsr_pruner *)pruner, i);
        const float *w = tsr_f32(&online->items[i].value), *t = tsr_f32(&target->items[i].value);
        for (int64_t j = 0; j < tsr_tensor_numel(&mask); j++) {
            if (tsr_u8(&mask)[j]) continue;
            cr_assert_eq(w[j], 0.0f, "%s[%lld] is pruned but %g", online->items[i].name,
                         (long long)j, w[j]);
            cr_assert_eq(t[j], 0.0f, "target %s[%lld] is pruned but %g", target->items[i].name,
                         (long long)j, t[j]);
        }
    }
    tsr_agent_free(agent);
}

Test(agent, evaluates_networks_that_draw_noise_in_every_pass)
{
    const char *presets[][2] = {
        {TSR_CONFIGS_DIR "/breakout/dqn_softmoe.ini", "network.random_router=true"},
        {TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini", "network.noisy_routing=true"},
        {TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini", "network.random_router=true"},
        {TSR_CONFIGS_DIR "/breakout/rainbow.ini", "network.noisy=true"},
    };
    for (int i = 0; i < 4; i++) {
        tsr_run_config cfg = load(presets[i][0], OVERRIDES(presets[i][1], "run.iterations=1",
                                                           "run.training_steps=40",
                                                           "run.evaluation_episodes=1",
                                                           "run.max_episode_steps=30",
                                                           "agent.min_replay_history=16",
                                                           "agent.update_period=1"));
        tsr_runner *runner;
        tsr_error err;
        cr_assert_eq(tsr_runner_new(&runner, &cfg, true, &err), TSR_STATUS_OK, "%s", err.message);
        tsr_iteration_metrics m;
        cr_assert(tsr_runner_run_iteration(runner, &m, &err));
        cr_expect(isfinite(m.eval_return) && isfinite(m.dormant_fraction) &&
                      isfinite(m.head_dormant_fraction),
                  "%s", presets[i][0]);
        cr_expect_gt(m.gradient_updates, 0);
        tsr_runner_free(runner);
    }
}

/* recent_return is the mean of the last 100 training episodes, across
 * iterations: CartPole pays 1 a step, so each episode's return is its length,
 * which a progress callback at every step recovers from the episode count. */
typedef struct episode_log {
    double returns[400];
    int count;
    int64_t start; /* first step of the episode being played */
} episode_log;

static bool log_episodes(void *user, const tsr_progress *p)
{
    episode_log *log = user;
    if (p->episodes > log->count) {
        cr_assert_eq(p->episodes, log->count + 1);
        log->returns[log->count++] = (double)(p->total_steps - log->start);
        log->start = p->total_steps;
    }
    return true;
}

Test(agent, recent_return_is_the_mean_of_the_last_100_episodes)
{
    tsr_run_config cfg = load(TSR_CONFIGS_DIR "/cartpole/dqn.ini",
                              OVERRIDES("run.iterations=3", "run.training_steps=1500",
                                        "run.evaluation_episodes=0",
                                        "agent.min_replay_history=100000"));
    tsr_runner *runner;
    tsr_error err;
    cr_assert_eq(tsr_runner_new(&runner, &cfg, true, &err), TSR_STATUS_OK, "%s", err.message);
    episode_log log = {.start = 1};
    tsr_runner_set_progress(runner, log_episodes, &log, 1);
    for (int it = 0; it < 3; it++) {
        tsr_iteration_metrics m;
        int first = log.count;
        cr_assert(tsr_runner_run_iteration(runner, &m, &err));
        /* The iteration's last episode ended on its last step. */
        cr_assert_lt(log.count, 400);
        log.returns[log.count++] = (double)(m.agent_steps + 1 - log.start);
        log.start = m.agent_steps + 1;
        cr_assert_eq(m.episodes, log.count);
        double sum = 0.0;
        for (int i = first; i < log.count; i++) sum += log.returns[i];
        cr_expect(fabs(m.train_return - sum / (log.count - first)) < 1e-9,
                  "the episode lengths are the returns: %g vs %g", m.train_return,
                  sum / (log.count - first));
        int n = log.count < 100 ? log.count : 100;
        sum = 0.0;
        for (int i = log.count - n; i < log.count; i++) sum += log.returns[i];
        cr_expect(fabs(m.recent_return - sum / n) < 1e-9, "iteration %d: recent_return %g, the "
                  "last %d episodes' mean %g", it + 1, m.recent_return, n, sum / n);
        if (it == 0) cr_expect_lt(log.count, 100, "the first iteration has under 100 episodes");
    }
    cr_expect_gt(log.count, 150, "the window slides: %d episodes", log.count);
    tsr_runner_free(runner);
}

/* The Top-k head's importance loss joins the TD loss: with it the router
 * trains differently; with weight 0 (the default) the run is unchanged. */
static tsr_agent *topk_agent_after_updates(const char *weight)
{
    tsr_run_config cfg = load(TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini",
                              OVERRIDES(weight, "agent.min_replay_history=32",
                                        "agent.replay_capacity=1000", "agent.update_period=1"));
    tsr_env env;
    tsr_agent *agent = new_breakout_agent(&cfg, &env);
    uint8_t obs[400];
    play(agent, &env, 60, obs);
    cr_assert_gt(tsr_agent_get_counters(agent).updates, 20);
    return agent;
}

Test(agent, a_topk_load_balancing_loss_trains_the_router)
{
    tsr_agent *plain = topk_agent_after_updates("network.importance_loss_weight=0");
    tsr_agent *again = topk_agent_after_updates("network.importance_loss_weight=0");
    tsr_agent *balanced = topk_agent_after_updates("network.importance_loss_weight=1");
    const tsr_params *p[3] = {&tsr_agent_online(plain)->params, &tsr_agent_online(again)->params,
                              &tsr_agent_online(balanced)->params};
    int router = tsr_params_find(p[0], "moe/router/weight");
    cr_assert_geq(router, 0, "no moe/router/weight");
    size_t bytes = (size_t)tsr_tensor_numel(&p[0]->items[router].value) * sizeof(float);
    cr_expect_eq(memcmp(p[0]->items[router].value.data, p[1]->items[router].value.data, bytes), 0,
                 "the same run twice differs");
    cr_expect_neq(memcmp(p[0]->items[router].value.data, p[2]->items[router].value.data, bytes),
                  0, "the importance loss did not reach the router");
    tsr_agent_free(plain);
    tsr_agent_free(again);
    tsr_agent_free(balanced);
}

/* ---- replay scheme ----------------------------------------------------------- */

Test(agent, says_which_replay_is_in_effect_including_dopamines_uniform_bug)
{
    tsr_run_config cfg = load(TSR_CONFIGS_DIR "/cartpole/rainbow.ini", NULL, 0);
    tsr_agent *agent = vector_agent(&cfg);
    cr_expect(strstr(tsr_agent_replay_description(agent), "prioritized"), "%s",
              tsr_agent_replay_description(agent));
    tsr_agent_free(agent);
    cfg = load(TSR_CONFIGS_DIR "/cartpole/rainbow.ini",
               OVERRIDES("agent.dopamine_uniform_replay=true"));
    agent = vector_agent(&cfg);
    cr_expect(!strncmp(tsr_agent_replay_description(agent), "uniform", 7), "%s",
              tsr_agent_replay_description(agent));
    cr_expect(strstr(tsr_agent_replay_description(agent), "#230"));
    tsr_agent_free(agent);
}

/* ---- determinism ----------------------------------------------------------- */

typedef struct run_result {
    tsr_iteration_metrics metrics[3];
    float *params;
    size_t numel;
} run_result;

/* CartPole: 3 iterations of 700 steps; MinAtar Breakout: 3 of 100, with
 * the pruning schedule (for dqn_gmp95) inside the run. */
static run_result run_cartpole(const char *seed, const char *preset)
{
    tsr_run_config cfg =
        strstr(preset, "/cartpole/")
            ? load(preset, OVERRIDES(seed, "run.threads=2", "run.iterations=3",
                                     "run.training_steps=700", "run.evaluation_episodes=2",
                                     "agent.min_replay_history=200",
                                     "agent.epsilon_decay_period=500"))
            : load(preset, OVERRIDES(seed, "run.threads=2", "run.iterations=3",
                                     "run.training_steps=100", "run.evaluation_episodes=1",
                                     "run.max_episode_steps=100", "agent.min_replay_history=100",
                                     "pruning.step_units=updates", "pruning.start_step=0",
                                     "pruning.end_step=150", "pruning.update_freq=50"));
    tsr_runner *runner;
    tsr_error err;
    cr_assert_eq(tsr_runner_new(&runner, &cfg, true, &err), TSR_STATUS_OK, "%s", err.message);
    run_result r;
    for (int i = 0; i < 3; i++)
        cr_assert(tsr_runner_run_iteration(runner, &r.metrics[i], &err), "%s", err.message);
    const tsr_params *p = &tsr_agent_online(tsr_runner_agent(runner))->params;
    r.numel = p->numel;
    r.params = malloc(r.numel * sizeof(float));
    memcpy(r.params, p->values, r.numel * sizeof(float));
    tsr_runner_free(runner);
    return r;
}

/* Everything but the wall-clock fields. */
static bool same_metrics(const tsr_iteration_metrics *a, const tsr_iteration_metrics *b)
{
    tsr_iteration_metrics x = *a, y = *b;
    x.steps_per_second = y.steps_per_second = 0;
    x.seconds = y.seconds = 0;
    return !memcmp(&x, &y, sizeof x);
}

static void expect_deterministic(const char *preset)
{
    run_result a = run_cartpole("run.seed=11", preset), b = run_cartpole("run.seed=11", preset);
    run_result c = run_cartpole("run.seed=12", preset);
    for (int i = 0; i < 3; i++)
        cr_expect(same_metrics(&a.metrics[i], &b.metrics[i]),
                  "%s: iteration %d: losses %.9g / %.9g, returns %.9g / %.9g", preset, i + 1,
                  a.metrics[i].loss, b.metrics[i].loss, a.metrics[i].train_return,
                  b.metrics[i].train_return);
    cr_expect_eq(a.numel, b.numel);
    cr_expect_eq(memcmp(a.params, b.params, a.numel * sizeof(float)), 0,
                 "%s: final parameters differ for the same seed", preset);
    cr_expect_neq(memcmp(a.params, c.params, a.numel * sizeof(float)), 0,
                  "%s: seeds 11 and 12 gave the same parameters", preset);
    free(a.params);
    free(b.params);
    free(c.params);
}

Test(agent, the_same_seed_and_thread_count_give_bit_identical_runs)
{
    expect_deterministic(TSR_CONFIGS_DIR "/cartpole/dqn.ini");
    expect_deterministic(TSR_CONFIGS_DIR "/cartpole/rainbow.ini");
}

/* The MinAtar network kinds at 2 threads: the conv encoder, Soft MoE's
 * batched products and softmaxes, Top-1 routing, pruning masks. */
Test(agent, minatar_presets_are_bit_identical_at_2_threads, .timeout = 240)
{
    expect_deterministic(TSR_CONFIGS_DIR "/breakout/dqn_softmoe.ini");
    expect_deterministic(TSR_CONFIGS_DIR "/breakout/dqn_top1moe.ini");
    expect_deterministic(TSR_CONFIGS_DIR "/breakout/dqn_gmp95.ini");
}

Test(agent, refuses_an_encoder_that_does_not_fit_the_observations)
{
    tsr_run_config cfg = load(NULL, OVERRIDES("network.encoder=minatar"));
    tsr_agent *agent;
    tsr_error err;
    cr_expect_eq(tsr_agent_new(&agent, &cfg, &vector_spec, 0, true, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "use encoder = mlp"), "%s", err.message);
    cfg = load(TSR_CONFIGS_DIR "/cartpole/dqn.ini", OVERRIDES("agent.bit_pack_replay=true"));
    cr_expect_eq(tsr_agent_new(&agent, &cfg, &vector_spec, 0, true, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "agent.bit_pack_replay"), "%s", err.message);
}

/* ---- the MLP encoder -------------------------------------------------------- */

typedef struct mlp_case {
    tsr_network net;
} mlp_case;

static tsr_tensor *mlp_forward(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    mlp_case *c = user;
    return tsr_network_forward(&c->net, ctx, in[0], NULL);
}

Test(agent, the_mlp_network_matches_finite_differences)
{
    tsr_run_config cfg = load(NULL, OVERRIDES("network.encoder=mlp", "network.mlp_hidden=5, 4",
                                              "network.hidden=3", "network.dueling=true"));
    mlp_case c;
    tsr_error err;
    cr_assert_eq(tsr_network_init(&c.net, &cfg.network, (tsr_image_shape){1, 1, 3}, 2, 1, 1.0f,
                                  TSR_DTYPE_F64, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(c.net.mlp.num_layers, 2);
    cr_expect_eq(tsr_params_find(&c.net.params, "encoder/dense2/weight") >= 0, true);
    /* Every parameter drawn from U(-0.5, 0.5): with the zero biases of the
     * initialiser a unit dead on a whole sample sits exactly on ReLU's kink,
     * where central differences disagree with any one-sided derivative. */
    for (int i = 0; i < c.net.params.count; i++) {
        tsr_tensor *p = tsr_params_tensor(&c.net.params, i);
        tsr_tensor *draw = tsr_tensor_new(TSR_DTYPE_F64, p->ndim, p->shape);
        tsr_test_fill_uniform(draw, -0.5, 0.5, 100 + (uint64_t)i);
        tsr_tensor_copy(p, draw);
        tsr_tensor_free(draw);
    }
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_F64, 2, TSR_SHAPE(3, 3));
    tsr_test_fill_uniform(obs, -1, 1, 5);
    tsr_tensor *inputs[16] = {obs};
    int n = 1;
    for (int i = 0; i < c.net.params.count && n < 16; i++)
        inputs[n++] = tsr_params_tensor(&c.net.params, i);
    tsr_test_gradcheck(mlp_forward, inputs, n, &c, NULL, "mlp network");
    tsr_tensor_free(obs);
    tsr_network_fini(&c.net);
}

Test(agent, mlp_hidden_errors_name_the_key_and_what_is_allowed)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    char *bad[] = {"network.encoder=mlp", "network.mlp_hidden=64, x"};
    cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, bad, 2, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "network.mlp_hidden = '64, x'"), "%s", err.message);
    char *moe[] = {"network.encoder=mlp", "network.head=softmoe"};
    cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, moe, 2, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "encoder = mlp takes head = dense"), "%s", err.message);
}

/* ---- learning ---------------------------------------------------------------- */

Test(agent, dqn_learns_cartpole_to_an_evaluation_return_of_195, .timeout = 240)
{
    /* The preset's 60k agent steps, seed 4 (configs/base/cartpole_dqn.ini). */
    tsr_run_config cfg = load(TSR_CONFIGS_DIR "/cartpole/dqn.ini", OVERRIDES("run.seed=4"));
    cr_assert_eq(cfg.run.evaluation_episodes, 20);
    tsr_runner *runner;
    tsr_error err;
    cr_assert_eq(tsr_runner_new(&runner, &cfg, true, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_iteration_metrics m = {0};
    double first_eval = NAN;
    for (int64_t i = 0; i < cfg.run.iterations; i++) {
        cr_assert(tsr_runner_run_iteration(runner, &m, &err));
        if (i == 0) first_eval = m.eval_return;
    }
    cr_expect_geq(m.eval_return, 195.0, "final evaluation return %g after %lld steps (first %g)",
                  m.eval_return, (long long)m.agent_steps, first_eval);
    cr_expect_geq(m.agent_steps, cfg.run.iterations * cfg.run.training_steps);
    tsr_runner_free(runner);
}
