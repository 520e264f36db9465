/* The vector env: N copies with automatic reset, in parallel, writing a batch
 * straight into the caller's buffers. */
#include <criterion/criterion.h>
#include <omp.h>
#include <string.h>

#include "tessera/env.h"

enum { MAX_OBS_BYTES = 1000 };

/* Caller-owned buffers for N copies. */
typedef struct batch {
    int n;
    unsigned char *obs, *final_obs;
    float *reward, *episode_return;
    uint8_t *terminated, *truncated;
    int64_t *episode_length;
    int32_t *actions;
    tsr_vec_env_out out;
} batch;

static batch batch_new(int n)
{
    batch b = {.n = n};
    b.obs = calloc((size_t)n, MAX_OBS_BYTES);
    b.final_obs = calloc((size_t)n, MAX_OBS_BYTES);
    b.reward = calloc((size_t)n, sizeof *b.reward);
    b.episode_return = calloc((size_t)n, sizeof *b.episode_return);
    b.terminated = calloc((size_t)n, 1);
    b.truncated = calloc((size_t)n, 1);
    b.episode_length = calloc((size_t)n, sizeof *b.episode_length);
    b.actions = calloc((size_t)n, sizeof *b.actions);
    b.out = (tsr_vec_env_out){b.obs, b.reward, b.terminated, b.truncated, b.final_obs,
                              b.episode_return, b.episode_length};
    return b;
}

static void batch_free(batch *b)
{
    free(b->obs), free(b->final_obs), free(b->reward), free(b->episode_return);
    free(b->terminated), free(b->truncated), free(b->episode_length), free(b->actions);
}

static void random_actions(batch *b, tsr_rng *policy, int num_actions)
{
    for (int i = 0; i < b->n; i++)
        b->actions[i] = (int32_t)tsr_rng_below(policy, (uint64_t)num_actions);
}

/* Steps the vector env and N single envs side by side and checks every output. */
static void check_against_single_envs(tsr_env_game game, const tsr_env_options *options, int n,
                                      int steps)
{
    const uint64_t seed = 100;
    tsr_vec_env *venv;
    cr_assert_eq(tsr_vec_env_new(&venv, game, options, n, seed, NULL), TSR_STATUS_OK);
    tsr_env *single = calloc((size_t)n, sizeof *single);
    for (int i = 0; i < n; i++)
        cr_assert_eq(tsr_env_init(&single[i], game, options, tsr_vec_env_copy_seed(seed, i), NULL),
                     TSR_STATUS_OK);
    const size_t obs_bytes = venv->spec.obs_bytes;
    batch b = batch_new(n);
    tsr_rng policy;
    tsr_rng_init(&policy, 3, TSR_RNG_STREAM_EXPLORATION);
    unsigned char expected_obs[MAX_OBS_BYTES];
    int episodes_ended = 0;
    for (int t = 0; t < steps; t++) {
        random_actions(&b, &policy, venv->spec.num_actions);
        tsr_vec_env_step(venv, b.actions, &b.out);
        for (int i = 0; i < n; i++) {
            tsr_env_step_result r = tsr_env_step(&single[i], b.actions[i]);
            cr_assert_eq(b.reward[i], r.reward);
            cr_assert_eq(b.terminated[i], r.terminated);
            cr_assert_eq(b.truncated[i], r.truncated);
            if (r.terminated || r.truncated) {
                episodes_ended++;
                tsr_env_observe(&single[i], expected_obs);
                cr_assert_eq(memcmp(b.final_obs + i * obs_bytes, expected_obs, obs_bytes), 0);
                cr_assert_eq(b.episode_return[i], (float)single[i].episode_return);
                cr_assert_eq(b.episode_length[i], single[i].episode_length);
                tsr_env_reset(&single[i]);
            }
            tsr_env_observe(&single[i], expected_obs);
            cr_assert_eq(memcmp(b.obs + i * obs_bytes, expected_obs, obs_bytes), 0,
                         "copy %d, step %d", i, t);
        }
    }
    cr_assert_gt(episodes_ended, n, "episodes ended and were reset");
    batch_free(&b);
    free(single);
    tsr_vec_env_free(venv);
}

/* Copy 0 is the seed's own env; no copy of one seed is a copy of the next. */
Test(vec_env, neighbouring_seeds_share_no_copy)
{
    cr_expect_eq(tsr_vec_env_copy_seed(100, 0), 100);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            cr_expect_neq(tsr_vec_env_copy_seed(100, i), tsr_vec_env_copy_seed(101, j),
                          "copy %d of seed 100 and copy %d of seed 101", i, j);
    for (int i = 1; i < 8; i++)
        cr_expect_neq(tsr_vec_env_copy_seed(100, i), tsr_vec_env_copy_seed(100, i - 1));
}

Test(vec_env, copy_i_is_the_single_env_seeded_from_the_seed_below_the_parallel_threshold)
{
    check_against_single_envs(TSR_ENV_GAME_BREAKOUT, NULL, 5, 300);
    check_against_single_envs(TSR_ENV_GAME_CARTPOLE, NULL, 5, 300);
}

Test(vec_env, a_truncated_episode_is_reset_like_a_terminated_one)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_SEAQUEST);
    options.time_limit = true;
    options.max_episode_steps = 9;
    check_against_single_envs(TSR_ENV_GAME_SEAQUEST, &options, 4, 100);
}

Test(vec_env, copy_i_is_the_single_env_seeded_from_the_seed_in_parallel)
{
    omp_set_num_threads(2);
    check_against_single_envs(TSR_ENV_GAME_SEAQUEST, NULL, TSR_VEC_ENV_PARALLEL_MIN + 3, 200);
    check_against_single_envs(TSR_ENV_GAME_SPACE_INVADERS, NULL, TSR_VEC_ENV_PARALLEL_MIN + 3,
                              200);
}

/* Final bytes of a vector env after `steps` random steps on `threads` threads. */
static void run_batch(int threads, int steps, unsigned char *state, size_t state_size)
{
    omp_set_num_threads(threads);
    tsr_vec_env *venv;
    cr_assert_eq(tsr_vec_env_new(&venv, TSR_ENV_GAME_ASTERIX, NULL, 200, 1, NULL), TSR_STATUS_OK);
    cr_assert_eq(tsr_vec_env_state_size(venv), state_size);
    batch b = batch_new(200);
    tsr_rng policy;
    tsr_rng_init(&policy, 3, TSR_RNG_STREAM_EXPLORATION);
    for (int t = 0; t < steps; t++) {
        random_actions(&b, &policy, 6);
        tsr_vec_env_step(venv, b.actions, &b.out);
    }
    memcpy(state, tsr_vec_env_state_bytes(venv), state_size);
    batch_free(&b);
    tsr_vec_env_free(venv);
}

Test(vec_env, results_do_not_depend_on_the_thread_count)
{
    const size_t size = 200 * sizeof(tsr_env);
    unsigned char *one = malloc(size), *two = malloc(size);
    run_batch(1, 300, one, size);
    run_batch(2, 300, two, size);
    cr_assert_eq(memcmp(one, two, size), 0);
    free(one);
    free(two);
}

Test(vec_env, saving_and_restoring_a_batch_mid_episode_continues_identically)
{
    tsr_vec_env *venv;
    cr_assert_eq(tsr_vec_env_new(&venv, TSR_ENV_GAME_FREEWAY, NULL, 8, 5, NULL), TSR_STATUS_OK);
    batch b = batch_new(8), c = batch_new(8);
    tsr_rng policy;
    tsr_rng_init(&policy, 3, TSR_RNG_STREAM_EXPLORATION);
    for (int t = 0; t < 100; t++) {
        random_actions(&b, &policy, 6);
        tsr_vec_env_step(venv, b.actions, &b.out);
    }
    size_t size = tsr_vec_env_state_size(venv);
    unsigned char *saved = malloc(size);
    memcpy(saved, tsr_vec_env_state_bytes(venv), size);
    tsr_rng policy_at_save = policy;
    for (int t = 0; t < 100; t++) {
        random_actions(&b, &policy, 6);
        tsr_vec_env_step(venv, b.actions, &b.out);
    }

    tsr_vec_env *restored;
    cr_assert_eq(tsr_vec_env_new(&restored, TSR_ENV_GAME_FREEWAY, NULL, 8, 999, NULL),
                 TSR_STATUS_OK);
    tsr_error err;
    cr_assert_eq(tsr_vec_env_state_restore(restored, saved, size, &err), TSR_STATUS_OK, "%s",
                 err.message);
    for (int t = 0; t < 100; t++) {
        random_actions(&c, &policy_at_save, 6);
        tsr_vec_env_step(restored, c.actions, &c.out);
    }
    cr_assert_eq(memcmp(c.obs, b.obs, 8 * 700), 0);
    cr_assert_eq(memcmp(tsr_vec_env_state_bytes(restored), tsr_vec_env_state_bytes(venv), size), 0);

    /* Bytes of another size or game are refused and change nothing. */
    tsr_vec_env *other;
    cr_assert_eq(tsr_vec_env_new(&other, TSR_ENV_GAME_FREEWAY, NULL, 4, 1, NULL), TSR_STATUS_OK);
    cr_assert_eq(tsr_vec_env_state_restore(other, saved, size, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "4 copies"), "%s", err.message);
    tsr_vec_env_free(other);
    cr_assert_eq(tsr_vec_env_new(&other, TSR_ENV_GAME_ASTERIX, NULL, 8, 1, NULL), TSR_STATUS_OK);
    unsigned char *before = malloc(size);
    memcpy(before, tsr_vec_env_state_bytes(other), size);
    cr_assert_eq(tsr_vec_env_state_restore(other, saved, size, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "minatar/freeway"), "%s", err.message);
    cr_assert_eq(memcmp(before, tsr_vec_env_state_bytes(other), size), 0);

    free(before);
    free(saved);
    tsr_vec_env_free(other);
    tsr_vec_env_free(restored);
    tsr_vec_env_free(venv);
    batch_free(&b);
    batch_free(&c);
}

Test(vec_env, reset_and_observe_write_the_whole_batch)
{
    tsr_vec_env *venv;
    cr_assert_eq(tsr_vec_env_new(&venv, TSR_ENV_GAME_BREAKOUT, NULL, 3, 5, NULL), TSR_STATUS_OK);
    unsigned char obs[3 * 400], again[3 * 400];
    memset(obs, 0xAA, sizeof obs);
    tsr_vec_env_reset(venv, obs);
    tsr_vec_env_observe(venv, again);
    cr_assert_eq(memcmp(obs, again, sizeof obs), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(obs[i * 400 + (9 * 10 + 4) * 4 + 0], 1, "copy %d: the paddle", i);
        cr_assert_eq(venv->envs[i].total_episodes, 1);
    }
    tsr_vec_env_free(venv);
}

Test(vec_env, continuous_copies_step_with_their_own_rows_of_actions)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.continuous = true;
    options.sticky_action_prob = 0.0;
    tsr_vec_env *venv;
    cr_assert_eq(tsr_vec_env_new(&venv, TSR_ENV_GAME_BREAKOUT, &options, 2, 5, NULL),
                 TSR_STATUS_OK);
    cr_assert_eq(venv->spec.action_dim, 3);
    batch b = batch_new(2);
    const float actions[2][3] = {{1.0f, 0.0f, 0.0f}, {1.0f, 3.14159f, 0.0f}};
    tsr_vec_env_step_continuous(venv, &actions[0][0], &b.out);
    cr_assert_eq(venv->envs[0].state.breakout.paddle_x, 5);
    cr_assert_eq(venv->envs[1].state.breakout.paddle_x, 3);
    batch_free(&b);
    tsr_vec_env_free(venv);
}

Test(vec_env, a_batch_needs_at_least_one_copy_and_valid_options)
{
    tsr_vec_env *venv = (tsr_vec_env *)1;
    tsr_error err;
    cr_assert_eq(tsr_vec_env_new(&venv, TSR_ENV_GAME_BREAKOUT, NULL, 0, 5, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_assert_null(venv);
    cr_assert(strstr(err.message, "at least 1"), "%s", err.message);
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.sticky_action_prob = -1.0;
    cr_assert_eq(tsr_vec_env_new(&venv, TSR_ENV_GAME_BREAKOUT, &options, 4, 5, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "sticky"), "%s", err.message);
}
