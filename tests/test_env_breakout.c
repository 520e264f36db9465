/* Breakout scenarios from ../shared/specs/minatar.md §2: each test sets a
 * state by hand and checks the exact next state. */
#include <criterion/criterion.h>
#include <string.h>

#include "tessera/env.h"

#include "support/play.h"

enum { C = 4 };

/* Sticky actions off, so every step runs the requested action. */
static tsr_env make_breakout(uint64_t seed)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.sticky_action_prob = 0.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, &options, seed, NULL), TSR_STATUS_OK);
    return env;
}

static bool brick(const tsr_breakout_state *s, int row, int col)
{
    return (s->bricks[row] >> col) & 1;
}

/* A state with the reset's three rows of bricks and the ball at (x, y). */
static void place_ball(tsr_breakout_state *s, int x, int y, tsr_breakout_dir dir, int paddle_x)
{
    s->ball_x = (int8_t)x;
    s->ball_y = (int8_t)y;
    s->last_x = (int8_t)x;
    s->last_y = (int8_t)y;
    s->dir = (int8_t)dir;
    s->paddle_x = (int8_t)paddle_x;
    s->strike = false;
}

Test(breakout, reset_puts_the_ball_in_row_3_on_the_side_drawn_from_the_env_stream)
{
    int sides[2] = {0, 0};
    for (uint64_t seed = 0; seed < 64; seed++) {
        tsr_env env = make_breakout(seed);
        tsr_rng mirror;
        tsr_rng_init(&mirror, seed, TSR_RNG_STREAM_ENV);
        uint64_t k = tsr_rng_below(&mirror, 2);
        const tsr_breakout_state *s = &env.state.breakout;
        cr_assert_eq(s->ball_y, 3);
        cr_assert_eq(s->ball_x, k == 0 ? 0 : 9);
        cr_assert_eq(s->dir, k == 0 ? TSR_BREAKOUT_DOWN_RIGHT : TSR_BREAKOUT_DOWN_LEFT);
        cr_assert_eq(s->paddle_x, 4);
        cr_assert(s->bricks[1] == 0x3FF && s->bricks[2] == 0x3FF && s->bricks[3] == 0x3FF);
        cr_assert(s->bricks[0] == 0 && s->bricks[4] == 0);
        cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0,
                     "reset draws exactly one integer");
        sides[k]++;
    }
    cr_expect(sides[0] > 10 && sides[1] > 10, "sides %d / %d", sides[0], sides[1]);
}

Test(breakout, brick_hit_scores_removes_the_brick_and_keeps_the_ball_in_its_row)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    place_ball(s, 4, 4, TSR_BREAKOUT_UP_RIGHT, 0);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert(!r.terminated);
    cr_assert(!brick(s, 3, 5), "the brick at (3, 5) is gone");
    cr_assert_eq(__builtin_popcount(s->bricks[3]), 9);
    cr_assert_eq(s->ball_x, 5);
    cr_assert_eq(s->ball_y, 4, "the ball stays in its row and moves one column sideways");
    cr_assert_eq(s->dir, TSR_BREAKOUT_DOWN_RIGHT);
    cr_assert(s->strike);
    cr_assert(s->last_x == 4 && s->last_y == 4);
}

Test(breakout, touching_bricks_on_two_steps_in_a_row_enters_the_second_without_breaking_it)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    place_ball(s, 4, 4, TSR_BREAKOUT_UP_RIGHT, 0);
    s->bricks[5] |= 1u << 6; /* waiting where the bounced ball goes next */
    cr_assert_eq(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).reward, 1.0f);

    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 0.0f, "no reward for the second touch");
    cr_assert(brick(s, 5, 6), "the brick stays");
    cr_assert(s->ball_x == 6 && s->ball_y == 5, "the ball is inside the brick's cell");
    cr_assert_eq(s->dir, TSR_BREAKOUT_DOWN_RIGHT, "and keeps its direction");
    cr_assert(s->strike);

    r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(s->ball_x == 7 && s->ball_y == 6);
    cr_assert(!s->strike, "a step without a brick clears the strike");
}

Test(breakout, ball_bounces_off_a_corner)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    /* Paddle under the landing column, not under the ball. */
    place_ball(s, 3, 8, TSR_BREAKOUT_DOWN_RIGHT, 4);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(!r.terminated);
    cr_assert_eq(s->dir, TSR_BREAKOUT_UP_LEFT, "a corner reverses the direction");
    cr_assert(s->ball_x == 4 && s->ball_y == 8);
}

Test(breakout, paddle_under_the_ball_bounces_it_up_and_keeps_it_in_row_8)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    place_ball(s, 4, 8, TSR_BREAKOUT_DOWN_RIGHT, 4);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(!r.terminated);
    cr_assert_eq(s->dir, TSR_BREAKOUT_UP_RIGHT);
    cr_assert(s->ball_x == 5 && s->ball_y == 8);
}

Test(breakout, paddle_moves_before_the_ball)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    /* The paddle steps under the ball's column on this very step. */
    place_ball(s, 4, 8, TSR_BREAKOUT_DOWN_RIGHT, 3);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_RIGHT);
    cr_assert(!r.terminated);
    cr_assert_eq(s->paddle_x, 4);
    cr_assert_eq(s->dir, TSR_BREAKOUT_UP_RIGHT);
}

Test(breakout, missing_the_ball_ends_the_game_with_the_ball_in_row_9)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    place_ball(s, 2, 8, TSR_BREAKOUT_DOWN_RIGHT, 7);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(r.terminated);
    cr_assert(s->ball_x == 3 && s->ball_y == 9);

    tsr_breakout_state before = *s;
    r = tsr_env_step(&env, TSR_ENV_ACTION_LEFT);
    cr_assert(r.terminated && r.reward == 0.0f);
    cr_assert_eq(memcmp(&before, s, sizeof before), 0, "a finished game does not change");
}

Test(breakout, ball_at_a_wall_moves_only_vertically_for_that_step)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    place_ball(s, 9, 5, TSR_BREAKOUT_UP_RIGHT, 0);
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(s->ball_x == 9 && s->ball_y == 4);
    cr_assert_eq(s->dir, TSR_BREAKOUT_UP_LEFT);
}

Test(breakout, ball_bounces_off_the_top_row)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    memset(s->bricks, 0, sizeof s->bricks);
    place_ball(s, 5, 0, TSR_BREAKOUT_UP_RIGHT, 0);
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(s->ball_x == 6 && s->ball_y == 0);
    cr_assert_eq(s->dir, TSR_BREAKOUT_DOWN_RIGHT);
}

Test(breakout, bricks_refill_only_when_the_ball_reaches_row_9_with_none_left)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    memset(s->bricks, 0, sizeof s->bricks);
    place_ball(s, 4, 6, TSR_BREAKOUT_DOWN_RIGHT, 6);
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP); /* to row 7: no refill yet */
    cr_assert_eq(s->bricks[1] | s->bricks[2] | s->bricks[3], 0);
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP); /* to row 8 */
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP); /* bounce off row 9 */
    cr_assert(!r.terminated);
    cr_assert(s->bricks[1] == 0x3FF && s->bricks[2] == 0x3FF && s->bricks[3] == 0x3FF);
}

Test(breakout, observation_shows_paddle_ball_trail_and_bricks)
{
    tsr_env env = make_breakout(1);
    tsr_breakout_state *s = &env.state.breakout;
    place_ball(s, 4, 6, TSR_BREAKOUT_DOWN_LEFT, 7);
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    uint8_t obs[10][10][C];
    memset(obs, 0xAA, sizeof obs);
    tsr_env_observe(&env, obs);
    cr_assert_eq(obs[9][7][0], 1, "paddle");
    cr_assert_eq(obs[7][3][1], 1, "ball");
    cr_assert_eq(obs[6][4][2], 1, "trail at the previous cell");
    int ones[C] = {0};
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < C; k++) {
                cr_assert(obs[r][c][k] <= 1);
                ones[k] += obs[r][c][k];
            }
    cr_assert(ones[0] == 1 && ones[1] == 1 && ones[2] == 1 && ones[3] == 30);
    cr_assert(obs[1][0][3] && obs[3][9][3] && !obs[4][0][3]);
}

Test(breakout, random_policy_statistics_match_the_recorded_figures)
{
    /* Full action set, sticky 0.1. 100,000 episodes: return 0.508, length 11.19
     * (envs/README.md); the bands are 4 standard errors of a 1,000-episode mean. */
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, NULL, 2024, NULL), TSR_STATUS_OK);
    tsr_test_random_play play = tsr_test_play_randomly(&env, 2024, 1000);
    cr_expect(play.mean_return > 0.42 && play.mean_return < 0.60, "mean return %g", play.mean_return);
    cr_expect(play.mean_length > 10.2 && play.mean_length < 12.2, "mean length %g", play.mean_length);
}
