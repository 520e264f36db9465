/* Space Invaders scenarios from ../shared/specs/minatar.md §5. */
#include <criterion/criterion.h>
#include <string.h>

#include "tessera/env.h"

#include "support/play.h"

enum { C = 6 };

static tsr_env make_space_invaders(bool ramping)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_SPACE_INVADERS);
    options.sticky_action_prob = 0.0;
    options.difficulty_ramping = ramping;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SPACE_INVADERS, &options, 1, NULL),
                 TSR_STATUS_OK);
    return env;
}

static int count(const uint16_t rows[10])
{
    int n = 0;
    for (int r = 0; r < 10; r++) n += __builtin_popcount(rows[r]);
    return n;
}

/* Leftmost column, top row and bottom row of the alien block. */
static void block_bounds(const uint16_t aliens[10], int *left, int *top, int *bottom)
{
    uint16_t columns = 0;
    *top = -1;
    for (int r = 0; r < 10; r++) {
        columns |= aliens[r];
        if (aliens[r]) {
            if (*top < 0) *top = r;
            *bottom = r;
        }
    }
    *left = __builtin_ctz(columns);
}

Test(space_invaders, the_block_marches_on_step_13_every_12_steps_and_steps_down_at_the_edge)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    /* Expected (left column, top row, direction) after each step. */
    int left = 2, top = 0, dir = -1;
    for (int t = 1; t <= 61; t++) {
        cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);
        memset(s->enemy_bullets, 0, sizeof s->enemy_bullets); /* keep the cannon alive */
        if (t == 13 || t == 25) left--;
        if (t == 37) top++, dir = 1; /* at column 0: reverse and descend */
        if (t == 49 || t == 61) left++;
        int got_left, got_top, got_bottom;
        block_bounds(s->aliens, &got_left, &got_top, &got_bottom);
        cr_assert_eq(got_left, left, "step %d", t);
        cr_assert_eq(got_top, top, "step %d", t);
        cr_assert_eq(got_bottom, top + 3, "step %d", t);
        cr_assert_eq(s->alien_dir, dir, "step %d", t);
        cr_assert_eq(count(s->aliens), 24);
    }
}

Test(space_invaders, a_lone_alien_moves_every_step)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    memset(s->aliens, 0, sizeof s->aliens);
    s->aliens[0] = 1u << 5;
    s->alien_move_cd = 0;
    s->alien_shot_cd = 100;
    for (int t = 1; t <= 4; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->aliens[0], 1u << (5 - t), "step %d", t);
    }
}

Test(space_invaders, the_first_alien_shot_comes_on_step_11_from_the_column_nearest_the_cannon)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    for (int t = 1; t <= 5; t++) tsr_env_step(&env, TSR_ENV_ACTION_LEFT); /* cannon to 0 */
    for (int t = 6; t <= 10; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(count(s->enemy_bullets), 0);
    }
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(count(s->enemy_bullets), 1);
    cr_assert_eq(s->enemy_bullets[3], 1u << 2, "the lowest alien of column 2, on its own cell");
    for (int t = 12; t <= 20; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->enemy_bullets[3], 0, "step %d", t);
    }
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    /* The block moved left on step 13, so column 1 is now the nearest. */
    cr_assert_eq(s->enemy_bullets[3], 1u << 1, "the next shot on step 21");
}

Test(space_invaders, ties_between_columns_go_to_the_smaller_column)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    memset(s->aliens, 0, sizeof s->aliens);
    s->cannon_x = 4;
    s->aliens[1] = 1u << 2;
    s->aliens[3] = 1u << 2;
    s->aliens[5] = 1u << 6;
    s->alien_shot_cd = 0;
    s->alien_move_cd = 5;
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(count(s->enemy_bullets), 1);
    cr_assert_eq(s->enemy_bullets[3], 1u << 2);
}

Test(space_invaders, the_cannon_fires_at_most_once_every_5_steps_and_not_while_moving)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    for (int t = 1; t <= 11; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_FIRE);
        memset(s->enemy_bullets, 0, sizeof s->enemy_bullets);
        cr_assert_eq(s->player_bullets[8] != 0, t % 5 == 1, "step %d", t);
    }
    tsr_env_step(&env, TSR_ENV_ACTION_RIGHT);
    cr_assert_eq(s->cannon_x, 6);
    cr_assert_eq(s->player_bullets[8], 0);
}

Test(space_invaders, a_bullet_kills_the_alien_it_meets)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    s->player_bullets[4] = 1u << 3; /* rises to row 3, where the block has an alien */
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert_eq(count(s->aliens), 23);
    cr_assert(!(s->aliens[3] & (1u << 3)) && s->player_bullets[3] == 0);
}

Test(space_invaders, a_bullet_and_a_descending_alien_swap_cells_and_miss)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    memset(s->aliens, 0, sizeof s->aliens);
    s->aliens[5] = 1u << 0; /* at the left edge, marching left: it will descend */
    s->player_bullets[6] = 1u << 0;
    s->alien_move_cd = 0;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 0.0f);
    cr_assert_eq(s->aliens[6], 1u << 0);
    cr_assert_eq(s->player_bullets[5], 1u << 0);
    cr_assert_eq(s->alien_dir, 1);
}

Test(space_invaders, clearing_the_wave_ramps_the_interval_and_brings_a_new_block)
{
    for (int ramping = 0; ramping <= 1; ramping++) {
        tsr_env env = make_space_invaders(ramping);
        tsr_space_invaders_state *s = &env.state.space_invaders;
        memset(s->aliens, 0, sizeof s->aliens);
        s->aliens[5] = 1u << 3;
        s->player_bullets[6] = 1u << 3;
        s->alien_dir = 1;
        s->alien_move_cd = 4;
        s->enemy_bullets[2] = 1u << 8;
        tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(r.reward, 1.0f);
        cr_assert_eq(s->interval, ramping ? 11 : 12);
        cr_assert_eq(s->ramp_level, ramping ? 1 : 0);
        for (int row = 0; row < 4; row++) cr_assert_eq(s->aliens[row], 0x0FC, "row %d", row);
        cr_assert_eq(count(s->aliens), 24);
        cr_assert_eq(s->alien_dir, 1, "the direction carries on");
        cr_assert_eq(s->alien_move_cd, 3, "so does the countdown");
        cr_assert_eq(s->enemy_bullets[3], 1u << 8, "and the bullets in flight");
    }
}

Test(space_invaders, the_interval_stops_at_6)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    s->interval = 6;
    memset(s->aliens, 0, sizeof s->aliens);
    s->aliens[5] = 1u << 3;
    s->player_bullets[6] = 1u << 3;
    s->alien_move_cd = 4;
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(s->interval == 6 && s->ramp_level == 0);
}

Test(space_invaders, an_enemy_bullet_reaching_the_cannon_ends_the_game)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    s->enemy_bullets[8] = 1u << 5;
    cr_assert(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);

    env = make_space_invaders(true);
    s->enemy_bullets[8] = 1u << 5;
    cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_LEFT).terminated, "dodged");
}

Test(space_invaders, aliens_that_must_descend_from_row_9_end_the_game)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    memset(s->aliens, 0, sizeof s->aliens);
    s->aliens[9] = 1u << 0;
    s->aliens[8] = 1u << 1;
    s->alien_move_cd = 0;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(r.terminated);
    cr_assert_eq(s->aliens[0], 1u << 0, "row 9 wraps into row 0 on the final step");
    cr_assert_eq(s->aliens[9], 1u << 1);
}

Test(space_invaders, observation_splits_aliens_by_direction)
{
    tsr_env env = make_space_invaders(true);
    tsr_space_invaders_state *s = &env.state.space_invaders;
    s->player_bullets[7] = 1u << 1;
    s->enemy_bullets[6] = 1u << 8;
    uint8_t obs[10][10][C];
    memset(obs, 0xAA, sizeof obs);
    tsr_env_observe(&env, obs);
    int ones[C] = {0};
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < C; k++) ones[k] += obs[r][c][k];
    cr_assert(obs[9][5][0] && obs[0][2][1] && obs[3][7][1] && obs[0][2][2]);
    cr_assert(obs[7][1][4] && obs[6][8][5]);
    cr_assert(ones[0] == 1 && ones[1] == 24 && ones[2] == 24 && ones[3] == 0 && ones[4] == 1 &&
              ones[5] == 1);
    s->alien_dir = 1;
    tsr_env_observe(&env, obs);
    cr_assert(!obs[0][2][2] && obs[0][2][3]);
}

Test(space_invaders, random_policy_statistics_match_the_recorded_figures)
{
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SPACE_INVADERS, NULL, 2024, NULL),
                 TSR_STATUS_OK);
    tsr_test_random_play play = tsr_test_play_randomly(&env, 2024, 1000);
    /* 100,000 episodes: return 2.85, length 51.4 (envs/README.md); the bands
     * are 4 standard errors of a 1,000-episode mean. */
    cr_expect(play.mean_return > 2.56 && play.mean_return < 3.14, "mean return %g", play.mean_return);
    cr_expect(play.mean_length > 46.5 && play.mean_length < 56.2, "mean length %g", play.mean_length);
}
