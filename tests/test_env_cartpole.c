/* CartPole: the classic equations, thresholds and the 500-step truncation. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tessera/env.h"

#include "support/play.h"

static tsr_env make_cartpole(uint64_t seed)
{
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_CARTPOLE, NULL, seed, NULL), TSR_STATUS_OK);
    return env;
}

Test(cartpole, reset_draws_four_uniforms_in_plus_minus_0_05)
{
    tsr_env env = make_cartpole(17);
    tsr_rng mirror;
    tsr_rng_init(&mirror, 17, TSR_RNG_STREAM_ENV);
    const tsr_cartpole_state *s = &env.state.cartpole;
    const double values[4] = {s->x, s->x_dot, s->theta, s->theta_dot};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(values[i], 0.1 * tsr_rng_uniform(&mirror) - 0.05);
        cr_assert(fabs(values[i]) <= 0.05);
    }
    float obs[4];
    tsr_env_observe(&env, obs);
    for (int i = 0; i < 4; i++) cr_assert_eq(obs[i], (float)values[i]);
}

Test(cartpole, one_push_from_rest_follows_the_classic_equations)
{
    tsr_env env = make_cartpole(1);
    tsr_cartpole_state *s = &env.state.cartpole;
    s->x = s->x_dot = s->theta = s->theta_dot = 0.0;
    tsr_env_step_result r = tsr_env_step(&env, 1);
    cr_assert_eq(r.reward, 1.0f);
    /* By hand: F = 10 N, total mass 1.1 kg, pole half-length 0.5 m.
     * temp = 10/1.1; theta_acc = -temp / (0.5 (4/3 - 0.1/1.1)) = -14.634146...;
     * x_acc = temp - 0.05 theta_acc / 1.1 = 9.756097...; one Euler step of 0.02 s
     * moves only the velocities. */
    cr_assert_eq(s->x, 0.0);
    cr_assert_eq(s->theta, 0.0);
    cr_assert_float_eq(s->x_dot, 0.02 * 9.7560975609756, 1e-12);
    cr_assert_float_eq(s->theta_dot, 0.02 * -14.634146341463, 1e-12);

    r = tsr_env_step(&env, 0);
    cr_assert_float_eq(s->x, 0.02 * 0.02 * 9.7560975609756, 1e-12, "x follows the old velocity");
    cr_assert_float_eq(s->theta, 0.02 * 0.02 * -14.634146341463, 1e-12);
}

Test(cartpole, the_pole_passing_12_degrees_ends_the_episode_with_a_final_reward)
{
    tsr_env env = make_cartpole(1);
    tsr_cartpole_state *s = &env.state.cartpole;
    s->x = s->x_dot = 0.0;
    s->theta = 12.0 * M_PI / 180.0 - 1e-3;
    s->theta_dot = 0.0;
    tsr_env_step_result r = tsr_env_step(&env, 1);
    cr_assert(!r.terminated, "theta only changes with the old theta_dot");
    s->theta_dot = 1.0;
    r = tsr_env_step(&env, 1);
    cr_assert(r.terminated);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert(!r.truncated);
}

Test(cartpole, the_cart_leaving_plus_minus_2_4_ends_the_episode)
{
    tsr_env env = make_cartpole(1);
    tsr_cartpole_state *s = &env.state.cartpole;
    s->x = -2.39;
    s->x_dot = -1.0;
    s->theta = s->theta_dot = 0.0;
    cr_assert(tsr_env_step(&env, 0).terminated);
}

Test(cartpole, an_episode_is_truncated_after_500_steps_not_terminated)
{
    tsr_env env = make_cartpole(1);
    for (int t = 1; t <= 500; t++) {
        /* Hold the pole upright by hand: only the step count can end this. */
        memset(&env.state.cartpole, 0, sizeof env.state.cartpole);
        tsr_env_step_result r = tsr_env_step(&env, t % 2);
        cr_assert(!r.terminated);
        cr_assert_eq(r.truncated, t == 500, "step %d", t);
    }
}

Test(cartpole, a_random_policy_lasts_about_22_steps)
{
    /* The well-known figure for CartPole-v1 under a uniform random policy. */
    tsr_env env = make_cartpole(2024);
    tsr_test_random_play play = tsr_test_play_randomly(&env, 2024, 4000);
    cr_expect_eq(play.return_not_length, 0, "CartPole's return is +1 a step");
    /* 100,000 episodes give 22.29 here; 4 standard errors of a 4,000-episode
     * mean is 0.75. */
    cr_expect(play.mean_length > 21.5 && play.mean_length < 23.1, "mean length %g",
              play.mean_length);
}

Test(cartpole, spec_reports_four_floats_and_two_actions)
{
    tsr_env env = make_cartpole(1);
    tsr_env_spec spec = tsr_env_get_spec(&env);
    cr_assert_eq(spec.obs_dtype, TSR_DTYPE_F32);
    cr_assert(spec.obs_ndim == 1 && spec.obs_shape[0] == 4 && spec.obs_bytes == 16);
    cr_assert_eq(spec.num_actions, 2);
    cr_assert_str_eq(tsr_env_action_name(&env, 0), "left");
    cr_assert_eq(env.options.sticky_action_prob, 0.0);
}
