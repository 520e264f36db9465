/* Freeway scenarios from ../shared/specs/minatar.md §3. */
#include <criterion/criterion.h>
#include <string.h>

#include "tessera/env.h"

#include "support/play.h"

enum { C = 7 };

static tsr_env make_freeway(uint64_t seed)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_FREEWAY);
    options.sticky_action_prob = 0.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_FREEWAY, &options, seed, NULL), TSR_STATUS_OK);
    return env;
}

/* The speeds the next randomisation draws from `mirror`: 8 magnitudes, then
 * 8 directions. */
static void predict_speeds(tsr_rng *mirror, int speed[8])
{
    for (int i = 0; i < 8; i++) speed[i] = 1 + (int)tsr_rng_below(mirror, 5);
    for (int i = 0; i < 8; i++) speed[i] *= tsr_rng_uniform(mirror) > 0.5 ? 1 : -1;
}

Test(freeway, reset_draws_eight_speeds_then_eight_directions_and_parks_every_car_at_column_0)
{
    for (uint64_t seed = 0; seed < 16; seed++) {
        tsr_env env = make_freeway(seed);
        tsr_rng mirror;
        tsr_rng_init(&mirror, seed, TSR_RNG_STREAM_ENV);
        int speed[8];
        predict_speeds(&mirror, speed);
        const tsr_freeway_state *s = &env.state.freeway;
        for (int i = 0; i < 8; i++) {
            cr_assert_eq(s->cars[i].speed, speed[i], "seed %llu car %d",
                         (unsigned long long)seed, i);
            cr_assert_eq(s->cars[i].cd, speed[i] < 0 ? -speed[i] : speed[i]);
            cr_assert_eq(s->cars[i].x, 0);
        }
        cr_assert(s->chicken_y == 9 && s->cooldown == 3 && s->timer == 2500);
        cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0);
    }
}

Test(freeway, the_game_ends_on_the_2501st_step)
{
    tsr_env env = make_freeway(7);
    for (int t = 1; t <= 2500; t++)
        cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated, "step %d", t);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(r.terminated);
    cr_assert(!r.truncated, "the time limit is the game's own end, a termination");
    cr_assert_eq(env.episode_length, 2501);
}

Test(freeway, a_car_with_speed_s_moves_every_s_plus_1_steps_first_on_step_s_plus_1)
{
    tsr_env env = make_freeway(7);
    tsr_freeway_state *s = &env.state.freeway;
    const int speed[8] = {1, 2, 3, 4, 5, -1, -3, -5};
    for (int i = 0; i < 8; i++)
        s->cars[i] = (tsr_freeway_car){.x = 5, .cd = (int8_t)(speed[i] < 0 ? -speed[i] : speed[i]),
                                       .speed = (int8_t)speed[i]};
    int moves[8] = {0};
    for (int t = 1; t <= 60; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        for (int i = 0; i < 8; i++) {
            int period = (speed[i] < 0 ? -speed[i] : speed[i]) + 1;
            int expected_moves = t / period;
            int direction = speed[i] > 0 ? 1 : -1;
            int expected_x = ((5 + direction * expected_moves) % 10 + 10) % 10; /* wraps */
            cr_assert_eq(s->cars[i].x, expected_x, "car %d step %d", i, t);
            moves[i] = expected_moves;
        }
    }
    cr_assert_eq(moves[0], 30);
}

Test(freeway, the_chicken_first_moves_on_step_4_and_then_at_most_every_3_steps)
{
    tsr_env env = make_freeway(7);
    tsr_freeway_state *s = &env.state.freeway;
    for (int i = 0; i < 8; i++) s->cars[i] = (tsr_freeway_car){.x = 6, .cd = 1, .speed = 1};
    const int expected_row[11] = {9, 9, 9, 9, 8, 8, 8, 7, 7, 7, 6};
    for (int t = 1; t <= 10; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_UP);
        cr_assert_eq(s->chicken_y, expected_row[t], "step %d", t);
    }
}

Test(freeway, a_hit_sends_the_chicken_back_to_row_9_and_leaves_the_cooldown_alone)
{
    tsr_env env = make_freeway(7);
    tsr_freeway_state *s = &env.state.freeway;
    for (int i = 0; i < 8; i++) s->cars[i] = (tsr_freeway_car){.x = 0, .cd = 5, .speed = 5};
    s->chicken_y = 3;
    s->cooldown = 2;
    s->cars[2].x = 4; /* row 3, the chicken's column */
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 0.0f);
    cr_assert_eq(s->chicken_y, 9);
    cr_assert_eq(s->cooldown, 1, "only the usual decrement");

    /* A car that moves into the chicken hits it too. */
    s->chicken_y = 5;
    s->cars[4] = (tsr_freeway_car){.x = 3, .cd = 0, .speed = 1};
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(s->cars[4].x, 4);
    cr_assert_eq(s->chicken_y, 9);
}

Test(freeway, crossing_scores_and_redraws_speeds_but_keeps_positions)
{
    tsr_env env = make_freeway(11);
    tsr_freeway_state *s = &env.state.freeway;
    const int8_t x[8] = {0, 1, 2, 3, 5, 6, 7, 8};
    for (int i = 0; i < 8; i++) s->cars[i].x = x[i];
    s->chicken_y = 1;
    s->cooldown = 0;
    tsr_rng mirror = env.rng;
    int speed[8];
    predict_speeds(&mirror, speed);
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_UP);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert_eq(s->chicken_y, 9);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(s->cars[i].speed, speed[i], "car %d", i);
        cr_assert_eq(s->cars[i].x, x[i], "car %d keeps its column", i);
        cr_assert_eq(s->cars[i].cd, (speed[i] < 0 ? -speed[i] : speed[i]) - 1);
    }
    cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0);
}

Test(freeway, observation_marks_each_car_trail_by_speed)
{
    tsr_env env = make_freeway(7);
    tsr_freeway_state *s = &env.state.freeway;
    for (int i = 0; i < 8; i++) s->cars[i] = (tsr_freeway_car){.x = 5, .cd = 1, .speed = 1};
    s->cars[0] = (tsr_freeway_car){.x = 0, .cd = 1, .speed = 3};  /* trail wraps to 9 */
    s->cars[1] = (tsr_freeway_car){.x = 9, .cd = 1, .speed = -5}; /* trail wraps to 0 */
    uint8_t obs[10][10][C];
    memset(obs, 0xAA, sizeof obs);
    tsr_env_observe(&env, obs);
    cr_assert_eq(obs[9][4][0], 1, "chicken");
    cr_assert(obs[1][0][1] && obs[1][9][1 + 3]);
    cr_assert(obs[2][9][1] && obs[2][0][1 + 5]);
    cr_assert(obs[3][5][1] && obs[3][4][1 + 1]);
    int ones = 0;
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < C; k++) ones += obs[r][c][k];
    cr_assert_eq(ones, 1 + 8 + 8);
}

Test(freeway, random_policy_statistics_match_the_recorded_figures)
{
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_FREEWAY, NULL, 2024, NULL), TSR_STATUS_OK);
    tsr_test_random_play play = tsr_test_play_randomly(&env, 2024, 400);
    cr_expect(play.min_length == 2501 && play.max_length == 2501,
              "every episode lasts 2,501 steps (here %lld to %lld)", (long long)play.min_length,
              (long long)play.max_length);
    /* 100,000 episodes: return 0.130 (envs/README.md); the band is 4 standard
     * errors of a 400-episode mean. */
    cr_expect(play.mean_return > 0.058 && play.mean_return < 0.202, "mean return %g",
              play.mean_return);
}
