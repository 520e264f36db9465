/* Continuous actions: CALE's thresholding into 18 joystick events
 * (components.md §4) and the mapping onto each game's actions. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>

#include "tessera/env.h"

static tsr_joystick_event event_of(float r, float theta, float fire)
{
    const float action[3] = {r, theta, fire};
    return tsr_env_joystick_event(action, 0.5, false);
}

Test(continuous, every_direction_and_button_lands_on_its_joystick_event)
{
    const float pi = (float)M_PI;
    struct {
        float theta;
        tsr_joystick_event event, with_fire;
    } cases[] = {
        {0.0f, TSR_JOYSTICK_RIGHT, TSR_JOYSTICK_RIGHTFIRE},
        {pi / 4, TSR_JOYSTICK_UPRIGHT, TSR_JOYSTICK_UPRIGHTFIRE},
        {pi / 2, TSR_JOYSTICK_UP, TSR_JOYSTICK_UPFIRE},
        {3 * pi / 4, TSR_JOYSTICK_UPLEFT, TSR_JOYSTICK_UPLEFTFIRE},
        {pi, TSR_JOYSTICK_LEFT, TSR_JOYSTICK_LEFTFIRE},
        {-pi, TSR_JOYSTICK_LEFT, TSR_JOYSTICK_LEFTFIRE},
        {-3 * pi / 4, TSR_JOYSTICK_DOWNLEFT, TSR_JOYSTICK_DOWNLEFTFIRE},
        {-pi / 2, TSR_JOYSTICK_DOWN, TSR_JOYSTICK_DOWNFIRE},
        {-pi / 4, TSR_JOYSTICK_DOWNRIGHT, TSR_JOYSTICK_DOWNRIGHTFIRE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(event_of(1.0f, cases[i].theta, 0.2f), cases[i].event, "theta %g",
                     cases[i].theta);
        cr_assert_eq(event_of(1.0f, cases[i].theta, 0.9f), cases[i].with_fire);
    }
    cr_assert_eq(event_of(0.3f, 1.0f, 0.0f), TSR_JOYSTICK_NOOP);
    cr_assert_eq(event_of(0.3f, 1.0f, 1.0f), TSR_JOYSTICK_FIRE);
}

Test(continuous, a_diagonal_needs_r_above_0_707)
{
    const float diagonal = (float)M_PI / 4;
    cr_assert_eq(event_of(0.70f, diagonal, 0.0f), TSR_JOYSTICK_NOOP);
    cr_assert_eq(event_of(0.72f, diagonal, 0.0f), TSR_JOYSTICK_UPRIGHT);
    /* Off the diagonal a shorter stick already moves along one axis. */
    cr_assert_eq(event_of(0.6f, 0.3f, 0.0f), TSR_JOYSTICK_RIGHT);
}

Test(continuous, the_threshold_is_strict_and_symmetric)
{
    cr_assert_eq(event_of(0.5f, 0.0f, 0.5f), TSR_JOYSTICK_NOOP, "x == t and f == t do nothing");
    cr_assert_eq(event_of(0.51f, (float)M_PI, 0.0f), TSR_JOYSTICK_LEFT);
    cr_assert_eq(event_of(0.51f, 0.0f, 0.0f), TSR_JOYSTICK_RIGHT);
    const float stick[3] = {0.7f, 0.0f, 0.0f};
    cr_assert_eq(tsr_env_joystick_event(stick, 0.75, false), TSR_JOYSTICK_NOOP,
                 "a higher threshold");
}

Test(continuous, the_compatibility_flag_reproduces_the_asymmetric_ale_py_mapping)
{
    const float centred[3] = {0.0f, 0.0f, 0.0f};
    cr_assert_eq(tsr_env_joystick_event(centred, 0.5, true), TSR_JOYSTICK_DOWNLEFT);
    cr_assert_eq(tsr_env_joystick_event(centred, 0.5, false), TSR_JOYSTICK_NOOP);
    const float up[3] = {1.0f, (float)M_PI / 2, 0.0f};
    cr_assert_eq(tsr_env_joystick_event(up, 0.5, true), TSR_JOYSTICK_UPLEFT);
}

/* Outside the box the formula applies as it stands, as in ale-py: nothing
 * is clamped. */
Test(continuous, inputs_outside_the_box_follow_the_formula)
{
    const float long_stick[3] = {5.0f, 0.0f, 0.0f};
    cr_assert_eq(tsr_env_joystick_event(long_stick, 0.5, false), TSR_JOYSTICK_RIGHT);
    /* A negative r points the other way; f = 2 fires. */
    const float negative_r[3] = {-1.0f, 0.0f, 2.0f};
    cr_assert_eq(tsr_env_joystick_event(negative_r, 0.5, false), TSR_JOYSTICK_LEFTFIRE);
    /* Angles wrap: 10 rad is cos -0.84, sin -0.54. */
    const float wide_angle[3] = {1.0f, 10.0f, 0.0f};
    cr_assert_eq(tsr_env_joystick_event(wide_angle, 0.5, false), TSR_JOYSTICK_DOWNLEFT);
    const float straight_down[3] = {1.0f, 3 * (float)M_PI / 2, 0.0f};
    cr_assert_eq(tsr_env_joystick_event(straight_down, 0.5, false), TSR_JOYSTICK_DOWN);
    /* NaN anywhere counts as centred (every comparison with it is false). */
    const float not_a_number[3] = {NAN, NAN, NAN};
    cr_assert_eq(tsr_env_joystick_event(not_a_number, 0.5, false), TSR_JOYSTICK_NOOP);
    const float nan_angle[3] = {1.0f, NAN, 1.0f};
    cr_assert_eq(tsr_env_joystick_event(nan_angle, 0.5, false), TSR_JOYSTICK_FIRE);
}

/* Float32 arithmetic, as ale-py's float32 arrays: at r = 1, theta =
 * float32(pi/6) the vertical component rounds to exactly 0.5, which is not
 * above the threshold: RIGHT (double arithmetic would give 0.50000001 and
 * UPRIGHT). */
Test(continuous, components_are_computed_in_float32)
{
    const float edge[3] = {1.0f, (float)(M_PI / 6), 0.0f};
    cr_assert_eq(tsr_env_joystick_event(edge, 0.5, false), TSR_JOYSTICK_RIGHT);
}

Test(continuous, events_keep_only_the_components_each_game_uses)
{
    enum { N = TSR_ENV_ACTION_NOOP, L = TSR_ENV_ACTION_LEFT, U = TSR_ENV_ACTION_UP,
           R = TSR_ENV_ACTION_RIGHT, D = TSR_ENV_ACTION_DOWN, F = TSR_ENV_ACTION_FIRE };
    /* Rows: events 0..17; columns: asterix, breakout, freeway, seaquest,
     * space_invaders, cartpole (0 left, 1 right, 2 coast). The table in
     * envs/README.md is this one. */
    const int expected[TSR_JOYSTICK_COUNT][6] = {
        {N, N, N, N, N, 2}, /* NOOP */
        {N, N, N, F, F, 2}, /* FIRE */
        {U, N, U, U, N, 2}, /* UP */
        {R, R, N, R, R, 1}, /* RIGHT */
        {L, L, N, L, L, 0}, /* LEFT */
        {D, N, D, D, N, 2}, /* DOWN */
        {R, R, U, R, R, 1}, /* UPRIGHT */
        {L, L, U, L, L, 0}, /* UPLEFT */
        {R, R, D, R, R, 1}, /* DOWNRIGHT */
        {L, L, D, L, L, 0}, /* DOWNLEFT */
        {U, N, U, U, F, 2}, /* UPFIRE */
        {R, R, N, R, R, 1}, /* RIGHTFIRE */
        {L, L, N, L, L, 0}, /* LEFTFIRE */
        {D, N, D, D, F, 2}, /* DOWNFIRE */
        {R, R, U, R, R, 1}, /* UPRIGHTFIRE */
        {L, L, U, L, L, 0}, /* UPLEFTFIRE */
        {R, R, D, R, R, 1}, /* DOWNRIGHTFIRE */
        {L, L, D, L, L, 0}, /* DOWNLEFTFIRE */
    };
    for (int e = 0; e < TSR_JOYSTICK_COUNT; e++)
        for (int g = 0; g < TSR_ENV_GAME_COUNT; g++)
            cr_assert_eq(tsr_env_joystick_action((tsr_env_game)g, (tsr_joystick_event)e),
                         expected[e][g], "event %d, %s", e, tsr_env_game_name((tsr_env_game)g));
}

static tsr_env make_continuous(tsr_env_game game)
{
    tsr_env_options options = tsr_env_default_options(game);
    options.sticky_action_prob = 0.0;
    options.continuous = true;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, game, &options, 3, NULL), TSR_STATUS_OK);
    return env;
}

Test(continuous, continuous_mode_steps_the_game_with_the_mapped_action)
{
    tsr_env env = make_continuous(TSR_ENV_GAME_BREAKOUT);
    tsr_env_spec spec = tsr_env_get_spec(&env);
    cr_assert(spec.continuous && spec.action_dim == 3 && spec.num_actions == 0);
    const float push_right[3] = {0.9f, 0.1f, 0.0f};
    tsr_env_step_continuous(&env, push_right);
    cr_assert_eq(env.state.breakout.paddle_x, 5);
    cr_assert_eq(env.previous_action, TSR_ENV_ACTION_RIGHT);

    env = make_continuous(TSR_ENV_GAME_SEAQUEST);
    const float fire[3] = {0.1f, 0.0f, 0.8f};
    tsr_env_step_continuous(&env, fire);
    cr_assert_eq(env.state.seaquest.num_player_bullets, 1);
    const float dive[3] = {1.0f, -(float)M_PI / 2, 0.8f};
    tsr_env_step_continuous(&env, dive);
    cr_assert_eq(env.state.seaquest.sub_y, 1, "moving wins over fire");

    env = make_continuous(TSR_ENV_GAME_CARTPOLE);
    tsr_cartpole_state *s = &env.state.cartpole;
    s->x = s->x_dot = s->theta = s->theta_dot = 0.0;
    const float centred[3] = {0.0f, 0.0f, 0.0f};
    tsr_env_step_continuous(&env, centred);
    cr_assert(s->x_dot == 0.0 && s->theta_dot == 0.0, "a centred stick coasts");
}

Test(continuous, sticky_actions_repeat_the_mapped_action)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.continuous = true;
    options.sticky_action_prob = 1.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, &options, 3, NULL), TSR_STATUS_OK);
    env.previous_action = TSR_ENV_ACTION_LEFT;
    const float push_right[3] = {1.0f, 0.0f, 0.0f};
    tsr_env_step_continuous(&env, push_right);
    cr_assert_eq(env.state.breakout.paddle_x, 3);
}

Test(continuous, a_discrete_step_on_a_continuous_env_aborts, .signal = SIGABRT)
{
    tsr_env env = make_continuous(TSR_ENV_GAME_ASTERIX);
    tsr_env_step(&env, 1);
}
