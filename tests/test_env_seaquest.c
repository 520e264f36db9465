/* Seaquest scenarios from ../shared/specs/minatar.md §4. */
#include <criterion/criterion.h>
#include <string.h>

#include "tessera/env.h"

#include "support/play.h"

enum { C = 10 };

typedef tsr_seaquest_object object;

static tsr_env make_seaquest(uint64_t seed)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_SEAQUEST);
    options.sticky_action_prob = 0.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SEAQUEST, &options, seed, NULL), TSR_STATUS_OK);
    return env;
}

static void clear_water(tsr_seaquest_state *s)
{
    s->num_fish = s->num_subs = s->num_enemy_bullets = s->num_divers = 0;
}

Test(seaquest, a_sub_that_dives_on_step_1_and_stays_down_runs_out_of_oxygen_on_step_201)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    for (int t = 1; t <= 200; t++) {
        int action = t == 1 ? TSR_ENV_ACTION_DOWN : TSR_ENV_ACTION_NOOP;
        tsr_env_step_result r = tsr_env_step(&env, action);
        cr_assert(!r.terminated, "step %d", t);
        cr_assert_eq(s->oxygen, 200 - t);
        clear_water(s);
    }
    cr_assert(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);
}

Test(seaquest, surfacing_with_no_diver_ends_the_game)
{
    tsr_env env = make_seaquest(1);
    cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_DOWN).terminated);
    cr_assert(tsr_env_step(&env, TSR_ENV_ACTION_UP).terminated);
}

Test(seaquest, staying_at_the_surface_never_uses_oxygen)
{
    tsr_env env = make_seaquest(1);
    for (int t = 1; t <= 500; t++) cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);
    cr_assert_eq(env.state.seaquest.oxygen, 200);
}

Test(seaquest, surfacing_with_a_full_crew_and_150_oxygen_gives_7_and_leaves_the_count_at_minus_1)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->sub_y = 1;
    s->surfaced = false;
    s->diver_count = 6;
    s->oxygen = 150;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_UP);
    cr_assert(!r.terminated);
    cr_assert_eq(r.reward, 7.0f);
    cr_assert_eq(s->diver_count, -1);
    cr_assert_eq(s->oxygen, 200);
    cr_assert(s->surfaced);
    /* The first ramp (level 0, even) shortens only the spawn period. */
    cr_assert(s->enemy_spawn_period == 19 && s->move_period == 5 && s->ramp_level == 1);
}

Test(seaquest, surfacing_with_part_of_a_crew_costs_one_diver_and_ramps)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->sub_y = 1;
    s->surfaced = false;
    s->diver_count = 3;
    s->oxygen = 120;
    s->ramp_level = 1;
    s->enemy_spawn_period = 19;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_UP);
    cr_assert(!r.terminated);
    cr_assert_eq(r.reward, 0.0f);
    cr_assert_eq(s->diver_count, 2);
    cr_assert_eq(s->oxygen, 200);
    cr_assert(s->enemy_spawn_period == 18 && s->move_period == 4 && s->ramp_level == 2,
              "an odd level also shortens the move period");
}

Test(seaquest, the_diver_counter_below_zero_follows_the_reference)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    /* At -1 surfacing does not end the game; the count keeps falling. */
    s->sub_y = 1;
    s->surfaced = false;
    s->diver_count = -1;
    cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_UP).terminated);
    cr_assert_eq(s->diver_count, -2);

    /* The gauge shows nothing below 1, and it takes 8 pickups from -2 to
     * reach 6 again. */
    uint8_t obs[10][10][C];
    tsr_env_observe(&env, obs);
    for (int c = 0; c < 10; c++) cr_assert_eq(obs[9][c][8], 0);
    s->sub_y = 4;
    s->surfaced = false;
    for (int pickup = 1; pickup <= 8; pickup++) {
        clear_water(s);
        s->divers[0] = (object){.x = s->sub_x, .y = s->sub_y, .dir = 1, .move_cd = 3};
        s->num_divers = 1;
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->diver_count, -2 + pickup);
        cr_assert_eq(s->num_divers, 0);
    }
    cr_assert_eq(s->diver_count, 6);
}

Test(seaquest, a_diver_is_picked_up_unless_the_crew_is_full)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->sub_y = 4;
    s->surfaced = false;
    s->divers[0] = (object){.x = 5, .y = 4, .dir = 1, .move_cd = 2};
    s->num_divers = 1;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 0.0f, "a pickup gives nothing");
    cr_assert(s->num_divers == 0 && s->diver_count == 1);

    s->diver_count = 6;
    s->divers[0] = (object){.x = 5, .y = 4, .dir = 1, .move_cd = 2};
    s->num_divers = 1;
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(s->num_divers, 1, "a full crew leaves the diver in the water");
    cr_assert(s->divers[0].x == 5 && s->divers[0].move_cd == 1);

    /* A diver that swims onto the sub is picked up after its move. */
    s->diver_count = 2;
    s->divers[0] = (object){.x = 4, .y = 4, .dir = 1, .move_cd = 0};
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(s->num_divers == 0 && s->diver_count == 3);
}

/* Draws of an enemy spawn on the mirror stream. */
typedef struct predicted_enemy {
    bool moving_right, is_sub;
    int y;
} predicted_enemy;

static predicted_enemy predict_enemy(tsr_rng *mirror)
{
    predicted_enemy p;
    p.moving_right = tsr_rng_uniform(mirror) < 0.5;
    p.is_sub = tsr_rng_uniform(mirror) < 1.0 / 3.0;
    p.y = 1 + (int)tsr_rng_below(mirror, 8);
    return p;
}

Test(seaquest, enemies_spawn_from_step_21_and_divers_from_step_31_with_draws_in_the_specified_order)
{
    for (uint64_t seed = 0; seed < 12; seed++) {
        tsr_env env = make_seaquest(seed);
        const tsr_seaquest_state *s = &env.state.seaquest;
        tsr_rng mirror;
        tsr_rng_init(&mirror, seed, TSR_RNG_STREAM_ENV);
        for (int t = 1; t <= 20; t++) tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->num_fish + s->num_subs, 0);

        predicted_enemy first = predict_enemy(&mirror);
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->num_subs, first.is_sub ? 1 : 0, "seed %llu", (unsigned long long)seed);
        cr_assert_eq(s->num_fish, first.is_sub ? 0 : 1);
        const object *e = first.is_sub ? &s->subs[0] : &s->fish[0];
        cr_assert_eq(e->x, first.moving_right ? 0 : 9);
        cr_assert_eq(e->y, first.y);
        cr_assert_eq(e->dir, first.moving_right ? 1 : -1);

        for (int t = 22; t <= 30; t++) tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->num_divers, 0);
        bool diver_right = tsr_rng_uniform(&mirror) < 0.5;
        int diver_y = 1 + (int)tsr_rng_below(&mirror, 8);
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->num_divers, 1);
        cr_assert(s->divers[0].x == (diver_right ? 0 : 9) && s->divers[0].y == diver_y);

        /* Step 41: an enemy; step 61: an enemy, then a diver. */
        predict_enemy(&mirror);
        predict_enemy(&mirror);
        tsr_rng_uniform(&mirror);
        tsr_rng_below(&mirror, 8);
        for (int t = 32; t <= 61; t++) tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_eq(s->num_divers, 2);
        cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0);
    }
}

Test(seaquest, an_enemy_first_moves_5_steps_after_spawning_then_every_move_period_plus_1)
{
    tsr_env env = make_seaquest(4);
    tsr_seaquest_state *s = &env.state.seaquest;
    for (int t = 1; t <= 21; t++) tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    const object *e = s->num_fish ? &s->fish[0] : &s->subs[0];
    int start = e->x, dir = e->dir;
    int moves_at[] = {26, 32, 38};
    int next = 0;
    for (int t = 22; t <= 38; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        e = s->num_fish ? &s->fish[0] : &s->subs[0];
        if (next < 3 && t == moves_at[next]) next++;
        cr_assert_eq(e->x, start + dir * next, "step %d", t);
    }
}

Test(seaquest, an_enemy_sub_fires_10_steps_after_spawning_and_then_every_11)
{
    /* A seed whose first spawn (step 21) is a sub. */
    uint64_t seed = 0;
    for (;; seed++) {
        tsr_rng mirror;
        tsr_rng_init(&mirror, seed, TSR_RNG_STREAM_ENV);
        if (predict_enemy(&mirror).is_sub) break;
    }
    tsr_env env = make_seaquest(seed);
    tsr_seaquest_state *s = &env.state.seaquest;
    for (int t = 1; t <= 21; t++) tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(s->num_subs, 1);
    s->enemy_spawn_period = s->enemy_spawn_cd = 1000; /* no other enemies */
    int shots[3], num_shots = 0, before = s->num_enemy_bullets;
    for (int t = 22; t <= 60; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        if (s->num_enemy_bullets > before) {
            cr_assert(num_shots < 3, "an extra shot on step %d", t);
            shots[num_shots++] = t;
        }
        before = s->num_enemy_bullets;
    }
    cr_assert_eq(num_shots, 3);
    cr_assert(shots[0] == 31 && shots[1] == 42 && shots[2] == 53, "shots on %d %d %d", shots[0],
              shots[1], shots[2]);
}

Test(seaquest, the_player_fires_at_most_once_every_5_steps)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    for (int t = 1; t <= 16; t++) {
        tsr_env_step(&env, TSR_ENV_ACTION_FIRE);
        bool fired_now = s->num_player_bullets > 0 &&
                         s->player_bullets[s->num_player_bullets - 1].x == 4;
        cr_assert_eq(fired_now, t % 5 == 1, "step %d", t);
    }
}

Test(seaquest, a_player_bullet_kills_a_standing_fish_and_prefers_the_oldest_on_a_cell)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->fish[0] = (object){.x = 3, .y = 3, .dir = -1, .move_cd = 3};
    s->fish[1] = (object){.x = 3, .y = 3, .dir = -1, .move_cd = 4};
    s->num_fish = 2;
    s->player_bullets[0] = (object){.x = 2, .y = 3, .dir = 1};
    s->num_player_bullets = 1;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 1.0f);
    cr_assert_eq(s->num_player_bullets, 0);
    cr_assert_eq(s->num_fish, 1);
    cr_assert_eq(s->fish[0].move_cd, 3, "the newer fish (move_cd 4 -> 3) survives");
}

Test(seaquest, a_sub_shot_as_it_moves_still_fires_on_that_step)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->subs[0] = (object){.x = 4, .y = 3, .dir = -1, .move_cd = 0, .shot_cd = 0};
    s->num_subs = 1;
    s->player_bullets[0] = (object){.x = 2, .y = 3, .dir = 1};
    s->num_player_bullets = 1;
    tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(r.reward, 1.0f, "the sub moved onto the bullet");
    cr_assert(s->num_subs == 0 && s->num_player_bullets == 0);
    cr_assert_eq(s->num_enemy_bullets, 1);
    const object *b = &s->enemy_bullets[0];
    cr_assert(b->x == 2 && b->y == 3 && b->dir == -1, "fired from (3, 3), then moved once");
}

Test(seaquest, when_two_enemies_move_onto_one_bullet_the_newest_is_hit)
{
    /* Lists are walked newest first: the newer sub reaches the bullet first. */
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->subs[0] = (object){.x = 4, .y = 3, .dir = -1, .move_cd = 0, .shot_cd = 7};
    s->subs[1] = (object){.x = 4, .y = 3, .dir = -1, .move_cd = 0, .shot_cd = 8};
    s->num_subs = 2;
    s->player_bullets[0] = (object){.x = 2, .y = 3, .dir = 1};
    s->num_player_bullets = 1;
    cr_assert_eq(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).reward, 1.0f);
    cr_assert_eq(s->num_subs, 1);
    cr_assert_eq(s->subs[0].shot_cd, 6, "the older sub (shot_cd 7) survives");

    env = make_seaquest(1);
    s->fish[0] = (object){.x = 4, .y = 3, .dir = -1, .move_cd = 0};
    s->fish[1] = (object){.x = 6, .y = 3, .dir = -1, .move_cd = 0};
    s->num_fish = 2;
    s->player_bullets[0] = (object){.x = 2, .y = 3, .dir = 1};
    s->num_player_bullets = 1;
    s->subs[0] = (object){.x = 4, .y = 3, .dir = -1, .move_cd = 0, .shot_cd = 7};
    s->num_subs = 1;
    /* Subs move before fish: the sub takes the bullet, the fish behind it
     * then moves onto the emptied cell unharmed. */
    cr_assert_eq(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).reward, 1.0f);
    cr_assert(s->num_subs == 0 && s->num_fish == 2);
}

Test(seaquest, fish_and_enemy_bullets_end_the_game_on_contact)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->sub_y = 2;
    s->surfaced = false;
    s->fish[0] = (object){.x = 6, .y = 2, .dir = -1, .move_cd = 0};
    s->num_fish = 1;
    cr_assert(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);

    env = make_seaquest(1);
    s->sub_y = 2;
    s->surfaced = false;
    s->enemy_bullets[0] = (object){.x = 7, .y = 2, .dir = -1};
    s->num_enemy_bullets = 1;
    cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated);
    cr_assert(tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated, "the bullet arrives");
}

Test(seaquest, an_enemy_spawn_is_skipped_when_its_row_has_an_enemy_going_the_other_way)
{
    tsr_env env = make_seaquest(21);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->enemy_spawn_cd = 0;
    tsr_rng mirror = env.rng;
    predicted_enemy p = predict_enemy(&mirror);
    s->fish[0] = (object){.x = 5, .y = (int8_t)p.y, .dir = p.moving_right ? -1 : 1, .move_cd = 3};
    s->num_fish = 1;
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert(s->num_fish == 1 && s->num_subs == 0);
    cr_assert_eq(memcmp(env.rng.s, mirror.s, sizeof mirror.s), 0, "all three draws are used");

    /* The same direction does not block. */
    env = make_seaquest(21);
    s->enemy_spawn_cd = 0;
    s->fish[0] = (object){.x = 5, .y = (int8_t)p.y, .dir = p.moving_right ? 1 : -1, .move_cd = 3};
    s->num_fish = 1;
    tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
    cr_assert_eq(s->num_fish + s->num_subs, 2);
}

Test(seaquest, observation_shows_the_sub_gauges_and_trails)
{
    tsr_env env = make_seaquest(1);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->sub_x = 3;
    s->sub_y = 4;
    s->facing_left = false;
    s->oxygen = 150;
    s->diver_count = 3;
    s->fish[0] = (object){.x = 6, .y = 2, .dir = -1, .move_cd = 1};
    s->subs[0] = (object){.x = 0, .y = 5, .dir = 1, .move_cd = 1, .shot_cd = 1};
    s->divers[0] = (object){.x = 8, .y = 7, .dir = 1, .move_cd = 1};
    s->enemy_bullets[0] = (object){.x = 1, .y = 6, .dir = 1};
    s->player_bullets[0] = (object){.x = 5, .y = 4, .dir = 1};
    s->num_fish = s->num_subs = s->num_divers = s->num_enemy_bullets = s->num_player_bullets = 1;
    uint8_t obs[10][10][C];
    memset(obs, 0xAA, sizeof obs);
    tsr_env_observe(&env, obs);
    cr_assert(obs[4][3][0] && obs[4][2][1], "front and back of a right-facing sub");
    cr_assert(obs[4][5][2] && obs[6][1][4]);
    cr_assert(obs[2][6][5] && obs[2][7][3], "fish and its trail");
    cr_assert(obs[5][0][6], "enemy sub (its trail would be off the grid)");
    cr_assert(obs[7][8][9] && obs[7][7][3], "diver and its trail");
    int ones[C] = {0};
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 10; c++)
            for (int k = 0; k < C; k++) ones[k] += obs[r][c][k];
    cr_assert_eq(ones[7], 7, "oxygen 150 fills 7 cells");
    for (int c = 0; c < 7; c++) cr_assert(obs[9][c][7]);
    cr_assert_eq(ones[8], 3);
    cr_assert(obs[9][6][8] && obs[9][7][8] && obs[9][8][8], "3 divers: columns 6..8");
    cr_assert_eq(ones[3], 2);
    int total = 0;
    for (int k = 0; k < C; k++) total += ones[k];
    cr_assert_eq(total, 2 + 1 + 1 + 1 + 1 + 1 + 2 + 7 + 3);
}

Test(seaquest, enemy_lists_stay_within_capacity_at_the_fastest_ramp)
{
    tsr_env env = make_seaquest(3);
    tsr_seaquest_state *s = &env.state.seaquest;
    s->enemy_spawn_period = 1;
    s->move_period = 2;
    int max_fish = 0, max_subs = 0, max_bullets = 0;
    for (int t = 0; t < 4000; t++) {
        cr_assert(!tsr_env_step(&env, TSR_ENV_ACTION_NOOP).terminated, "idle at the surface");
        max_fish = s->num_fish > max_fish ? s->num_fish : max_fish;
        max_subs = s->num_subs > max_subs ? s->num_subs : max_subs;
        max_bullets = s->num_enemy_bullets > max_bullets ? s->num_enemy_bullets : max_bullets;
    }
    cr_assert(max_fish + max_subs >= 20, "the water is crowded: %d fish, %d subs", max_fish,
              max_subs);
    cr_assert(max_fish <= 30 && max_subs <= 30, "%d fish, %d subs", max_fish, max_subs);
    cr_assert_leq(max_bullets, TSR_SEAQUEST_MAX_ENEMY_BULLETS);
}

Test(seaquest, random_policy_statistics_match_the_recorded_figures)
{
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SEAQUEST, NULL, 2024, NULL), TSR_STATUS_OK);
    tsr_test_random_play play = tsr_test_play_randomly(&env, 2024, 1000);
    /* 100,000 episodes: return 0.102, length 30.3 (envs/README.md); the bands
     * are 4 standard errors of a 1,000-episode mean. */
    cr_expect(play.mean_return > 0.054 && play.mean_return < 0.15, "mean return %g", play.mean_return);
    cr_expect(play.mean_length > 25.7 && play.mean_length < 34.9, "mean length %g", play.mean_length);
}
