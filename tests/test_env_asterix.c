/* Asterix scenarios from ../shared/specs/minatar.md §1. */
#include <criterion/criterion.h>
#include <string.h>

#include "tessera/env.h"

#include "support/play.h"

enum { C = 4 };

static tsr_env make_asterix(uint64_t seed, bool ramping)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_ASTERIX);
    options.sticky_action_prob = 0.0;
    options.difficulty_ramping = ramping;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_ASTERIX, &options, seed, NULL), TSR_STATUS_OK);
    return env;
}

static int occupied_lanes(const tsr_asterix_state *s)
{
    int n = 0;
    for (int lane = 0; lane < 8; lane++) n += s->lanes[lane].occupied;
    return n;
}

/* What the spawn on the env stream `mirror` will be, given the free lanes. */
typedef struct predicted_spawn {
    bool moving_right, is_gold;
    int lane;
} predicted_spawn;

static predicted_spawn predict_spawn(tsr_rng *mirror, const tsr_asterix_state *s)
{
    predicted_spawn p;
    p.moving_right = tsr_rng_uniform(mirror) < 0.5;
    p.is_gold = tsr_rng_uniform(mirror) < 1.0 / 3.0;
    int free_lanes[8], n = 0;
    for (int lane = 0; lane < 8; lane++)
        if (!s->lanes[lane].occupied) free_lanes[n++] = lane;
    p.lane = free_lanes[tsr_rng_below(mirror, (uint64_t)n)];
    return p;
}

Test(asterix, first_spawn_comes_on_step_11_with_the_specified_draws_then_every_10_steps)
{
    for (uint64_t seed = 0; seed < 20; seed++) {
        tsr_env env = make_asterix(seed, true);
        const tsr_asterix_state *s = &env.state.asterix;
        tsr_rng mirror;
        tsr_rng_init(&mirror, seed, TSR_RNG_STREAM_ENV); /* reset draws nothing */
        for (int t = 1; t <= 10; t++) {
            tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
            cr_assert_eq(occupied_lanes(s), 0, "step %d", t);
        }
        predicted_spawn first = predict_spawn(&mirror, s);
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(occupied_lanes(s), 1);
        const tsr_asterix_lane *o = &s->lanes[first.lane];
        cr_assert(o->occupied, "seed %llu: lane %d", (unsigned long long)seed, first.lane);
        cr_assert_eq(o->moving_right, first.moving_right);
        cr_assert_eq(o->is_gold, first.is_gold);
        /* Step 11 is also a movement step: the new object moves at once. */
        cr_assert_eq(o->x, first.moving_right ? 1 : 8);

        for (int t = 12; t <= 20; t++) {
            tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
            cr_assert_eq(occupied_lanes(s), 1, "step %d", t);
        }
        predicted_spawn second = predict_spawn(&mirror, s);
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(occupied_lanes(s), 2);
        cr_assert(s->lanes[second.lane].occupied && second.lane != first.lane);
        cr_assert_eq(s->lanes[second.lane].x, second.moving_right ? 1 : 8);
        cr_assert_eq(o->x, first.moving_right ? 3 : 6, "moved on steps 11, 16 and 21");
        cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0, "no other draws");
    }
}

Test(asterix, objects_move_on_steps_6_11_16_and_every_move_period_after)
{
    tsr_env env = make_asterix(3, true);
    tsr_asterix_state *s = &env.state.asterix;
    s->lanes[0] = (tsr_asterix_lane){.x = 0, .occupied = true, .moving_right = true};
    const int expected_x[17] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3};
    for (int t = 1; t <= 16; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->lanes[0].x, expected_x[t], "step %d", t);
    }
}

Test(asterix, ramping_speeds_up_every_102_steps_through_the_specified_periods)
{
    tsr_env env = make_asterix(5, true);
    tsr_asterix_state *s = &env.state.asterix;
    /* (spawn_period, move_period) after ramps 0..9. */
    const int spawn_after[10] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    const int move_after[10] = {5, 5, 4, 4, 3, 3, 2, 2, 1, 1};
    int spawn_steps[4], num_spawns = 0;
    for (int t = 1; t <= 1200; t++) {
        tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert(!r.terminated);
        /* Lanes are emptied after every step, so an object is a new spawn. */
        if (t > 100 && occupied_lanes(s) && num_spawns < 4) spawn_steps[num_spawns++] = t;
        memset(s->lanes, 0, sizeof s->lanes);
        int ramps = t / 102 < 9 ? t / 102 : 9;
        cr_assert_eq(s->spawn_period, spawn_after[ramps], "step %d", t);
        cr_assert_eq(s->move_period, move_after[ramps], "step %d", t);
        cr_assert_eq(s->ramp_level, ramps, "step %d", t);
    }
    /* The ramp on step 102 changes only the reload value: the running
     * countdown still brings the spawn on 111, and then every 9 steps. */
    cr_assert_eq(num_spawns, 4);
    cr_assert(spawn_steps[0] == 101 && spawn_steps[1] == 111 && spawn_steps[2] == 120 &&
              spawn_steps[3] == 129, "spawns at %d %d %d %d", spawn_steps[0], spawn_steps[1],
              spawn_steps[2], spawn_steps[3]);
}

Test(asterix, without_ramping_the_periods_never_change)
{
    tsr_env env = make_asterix(5, false);
    tsr_asterix_state *s = &env.state.asterix;
    for (int t = 1; t <= 1000; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        memset(s->lanes, 0, sizeof s->lanes);
    }
    cr_assert(s->spawn_period == 10 && s->move_period == 5 && s->ramp_level == 0);
}

Test(asterix, stepping_onto_gold_collects_it)
{
    tsr_env env = make_asterix(1, true);
    tsr_asterix_state *s = &env.state.asterix;
    s->lanes[4] = (tsr_asterix_lane){.x = 6, .occupied = true, .is_gold = true};
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_RIGHT);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert(!r.terminated);
    cr_assert(!s->lanes[4].occupied);
    cr_assert(s->player_x == 6 && s->player_y == 5);
}

Test(asterix, stepping_onto_an_enemy_ends_the_game_and_the_enemy_stays)
{
    tsr_env env = make_asterix(1, true);
    tsr_asterix_state *s = &env.state.asterix;
    s->lanes[3] = (tsr_asterix_lane){.x = 5, .occupied = true, .moving_right = true};
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_UP);
    cr_assert(r.terminated);
    cr_assert_eq(r.reward, 0.0f);
    cr_assert(s->lanes[3].occupied && s->lanes[3].x == 5);
}

Test(asterix, an_object_moving_onto_the_player_touches_it)
{
    tsr_env env = make_asterix(1, true);
    tsr_asterix_state *s = &env.state.asterix;
    for (int t = 1; t <= 5; t++) tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    /* Step 6 moves objects; gold one cell left of the player walks into it. */
    s->lanes[4] =
        (tsr_asterix_lane){.x = 4, .occupied = true, .moving_right = true, .is_gold = true};
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert(!s->lanes[4].occupied);

    s->lanes[4] = (tsr_asterix_lane){.x = 6, .occupied = true, .moving_right = false};
    for (int t = 7; t <= 10; t++) cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);
    cr_assert(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated, "the enemy arrives on step 11");
}

Test(asterix, a_spawn_with_every_lane_full_is_skipped_but_uses_up_its_two_draws)
{
    tsr_env env = make_asterix(9, true);
    tsr_asterix_state *s = &env.state.asterix;
    for (int lane = 0; lane < 8; lane++)
        s->lanes[lane] = (tsr_asterix_lane){.x = 9, .occupied = true, .moving_right = false};
    s->spawn_cd = 0;
    s->move_cd = 3;
    tsr_asterix_state before = *s;
    tsr_rng mirror = env.rng;
    tsr_rng_uniform(&mirror);
    tsr_rng_uniform(&mirror);
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(memcmp(s->lanes, before.lanes, sizeof before.lanes), 0);
    cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0);
    cr_assert_eq(s->spawn_cd, s->spawn_period - 1, "the countdown reloads anyway");
}

Test(asterix, the_player_stays_in_rows_1_to_8)
{
    tsr_env env = make_asterix(1, true);
    tsr_asterix_state *s = &env.state.asterix;
    for (int t = 0; t < 6; t++) tsr_env_step(&env, TSR_ENV_ACTION_UP);
    cr_assert_eq(s->player_y, 1);
    for (int t = 0; t < 9; t++) {
        memset(s->lanes, 0, sizeof s->lanes);
        tsr_env_step(&env, TSR_ENV_ACTION_DOWN);
    }
    cr_assert_eq(s->player_y, 8);
}

Test(asterix, observation_draws_each_object_with_the_trail_behind_it)
{
    tsr_env env = make_asterix(1, true);
    tsr_asterix_state *s = &env.state.asterix;
    s->lanes[0] = (tsr_asterix_lane){.x = 3, .occupied = true, .moving_right = false};
    s->lanes[1] =
        (tsr_asterix_lane){.x = 0, .occupied = true, .moving_right = true, .is_gold = true};
    uint8_t obs[10][10][C];
    memset(obs, 0xAA, sizeof obs);
    tsr_env_observe(&env, obs);
    cr_assert_eq(obs[5][5][0], 1, "player");
    cr_assert_eq(obs[1][3][1], 1, "enemy");
    cr_assert_eq(obs[1][4][2], 1, "trail to the right of a left-moving object");
    cr_assert_eq(obs[2][0][3], 1, "gold");
    int ones = 0;
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < C; k++) ones += obs[r][c][k];
    cr_assert_eq(ones, 4, "a right-moving object in column 0 has no trail");
}

Test(asterix, random_policy_statistics_match_the_recorded_figures)
{
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_ASTERIX, NULL, 2024, NULL), TSR_STATUS_OK);
    tsr_test_random_play play = tsr_test_play_randomly(&env, 2024, 1000);
    /* 100,000 episodes: return 0.496, length 70.1 (envs/README.md); the bands
     * are 4 standard errors of a 1,000-episode mean. */
    cr_expect(play.mean_return > 0.39 && play.mean_return < 0.61, "mean return %g", play.mean_return);
    cr_expect(play.mean_length > 64.5 && play.mean_length < 75.8, "mean length %g", play.mean_length);
}
