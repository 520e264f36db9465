/* The shared env layer: names, options, shapes, sticky actions, determinism,
 * saving and restoring, time limits. Game rules have their own test files. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <string.h>

#include "tessera/env.h"

static const char *const names[TSR_ENV_GAME_COUNT] = {
    "minatar/asterix", "minatar/breakout", "minatar/freeway",
    "minatar/seaquest", "minatar/space_invaders", "classic/cartpole",
};

Test(env, every_name_is_found_and_an_unknown_name_lists_the_valid_ones)
{
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        tsr_env_game game;
        cr_assert_eq(tsr_env_find_game(names[g], &game, NULL), TSR_STATUS_OK);
        cr_assert_eq(game, (tsr_env_game)g);
        cr_assert_str_eq(tsr_env_game_name(game), names[g]);
    }
    tsr_error err;
    tsr_env_game game;
    cr_assert_eq(tsr_env_find_game("minatar/pong", &game, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_assert_eq(err.status, TSR_STATUS_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "'minatar/pong'"), "%s", err.message);
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++)
        cr_assert(strstr(err.message, names[g]), "%s lists %s", err.message, names[g]);
}

Test(env, options_outside_their_ranges_are_refused_naming_the_range)
{
    struct {
        double sticky, threshold;
        bool time_limit;
        int64_t max_steps;
        const char *mentions;
    } cases[] = {
        {-0.1, 0.5, false, 0, "[0, 1]"},
        {1.5, 0.5, false, 0, "sticky"},
        {NAN, 0.5, false, 0, "sticky"},
        {0.1, 1.0, false, 0, "[0, 1)"},
        {0.1, -0.2, false, 0, "threshold"},
        {0.1, 0.5, true, 0, "max_episode_steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_SEAQUEST);
        options.sticky_action_prob = cases[i].sticky;
        options.continuous_threshold = cases[i].threshold;
        options.time_limit = cases[i].time_limit;
        options.max_episode_steps = cases[i].max_steps;
        tsr_env env;
        memset(&env, 0x5A, sizeof env);
        tsr_error err;
        cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SEAQUEST, &options, 0, &err),
                     TSR_STATUS_INVALID_ARGUMENT, "case %zu", i);
        cr_assert(strstr(err.message, cases[i].mentions), "case %zu: %s", i, err.message);
        cr_assert(strstr(err.message, "minatar/seaquest"));
        cr_assert_eq(((unsigned char *)&env)[0], 0x5A, "a refused init leaves the env untouched");
    }
    /* Continuous mode maps onto the full set: a minimal set with it is refused. */
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_SEAQUEST);
    options.continuous = options.minimal_action_set = true;
    tsr_env env;
    tsr_error err;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SEAQUEST, &options, 0, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "minimal action set does not apply in continuous mode"), "%s",
              err.message);
}

Test(env, specs_give_the_documented_shapes_and_action_sets)
{
    const int channels[5] = {4, 4, 7, 10, 6};
    const int minimal[5] = {5, 3, 3, 6, 4};
    for (int g = 0; g < 5; g++) {
        tsr_env_options options = tsr_env_default_options((tsr_env_game)g);
        tsr_env env;
        cr_assert_eq(tsr_env_init(&env, (tsr_env_game)g, &options, 0, NULL), TSR_STATUS_OK);
        tsr_env_spec spec = tsr_env_get_spec(&env);
        cr_assert_eq(spec.obs_dtype, TSR_DTYPE_U8);
        cr_assert_eq(spec.obs_ndim, 3);
        cr_assert(spec.obs_shape[0] == 10 && spec.obs_shape[1] == 10 &&
                  spec.obs_shape[2] == channels[g]);
        cr_assert_eq(spec.obs_bytes, (size_t)(100 * channels[g]));
        cr_assert_eq(spec.num_actions, 6);
        cr_assert(!spec.continuous && spec.action_dim == 0);
        cr_assert_eq(options.sticky_action_prob, 0.1);
        cr_assert(options.difficulty_ramping && !options.time_limit);

        options.minimal_action_set = true;
        cr_assert_eq(tsr_env_init(&env, (tsr_env_game)g, &options, 0, NULL), TSR_STATUS_OK);
        cr_assert_eq(tsr_env_get_spec(&env).num_actions, minimal[g]);
    }
}

Test(env, minimal_action_sets_index_the_games_own_actions)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.minimal_action_set = true;
    options.sticky_action_prob = 0.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, &options, 0, NULL), TSR_STATUS_OK);
    cr_assert_str_eq(tsr_env_action_name(&env, 0), "noop");
    cr_assert_str_eq(tsr_env_action_name(&env, 1), "left");
    cr_assert_str_eq(tsr_env_action_name(&env, 2), "right");
    tsr_env_step(&env, 2);
    cr_assert_eq(env.state.breakout.paddle_x, 5);
    cr_assert_eq(env.previous_action, TSR_ENV_ACTION_RIGHT, "stored as a full-set action");

    options = tsr_env_default_options(TSR_ENV_GAME_FREEWAY);
    options.minimal_action_set = true;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_FREEWAY, &options, 0, NULL), TSR_STATUS_OK);
    cr_assert_str_eq(tsr_env_action_name(&env, 1), "up");
    cr_assert_str_eq(tsr_env_action_name(&env, 2), "down");
}

/* --------------------------------------------------------- determinism */

/* FNV-1a over the observations, rewards and ends of `steps` random-policy
 * steps (with resets), so two runs compare bit for bit. */
static uint64_t play_hash(tsr_env *env, uint64_t policy_seed, int steps)
{
    tsr_env_spec spec = tsr_env_get_spec(env);
    tsr_rng policy;
    tsr_rng_init(&policy, policy_seed, TSR_RNG_STREAM_EXPLORATION);
    unsigned char obs[1024];
    uint64_t hash = 1469598103934665603ull;
    for (int t = 0; t < steps; t++) {
        int action = (int)tsr_rng_below(&policy, (uint64_t)spec.num_actions);
        tsr_env_step_result r = tsr_env_step(env, action);
        tsr_env_observe(env, obs);
        unsigned char end = (unsigned char)(r.terminated | r.truncated << 1);
        for (size_t i = 0; i < spec.obs_bytes; i++) hash = (hash ^ obs[i]) * 1099511628211ull;
        hash = (hash ^ (uint64_t)(r.reward * 16.0f)) * 1099511628211ull;
        hash = (hash ^ end) * 1099511628211ull;
        if (r.terminated || r.truncated) tsr_env_reset(env);
    }
    return hash;
}

Test(env, the_same_seed_gives_the_same_episodes_bit_for_bit)
{
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        tsr_env a, b;
        cr_assert_eq(tsr_env_init(&a, (tsr_env_game)g, NULL, 77, NULL), TSR_STATUS_OK);
        cr_assert_eq(tsr_env_init(&b, (tsr_env_game)g, NULL, 77, NULL), TSR_STATUS_OK);
        cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "%s: the whole state, padding included",
                     names[g]);
        cr_assert_eq(play_hash(&a, 5, 3000), play_hash(&b, 5, 3000), "%s", names[g]);
        cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "%s", names[g]);
    }
}

Test(env, different_seeds_give_different_episodes)
{
    /* Same policy; only the env seed differs (Space Invaders differs through
     * its sticky actions alone). */
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        tsr_env a, b;
        cr_assert_eq(tsr_env_init(&a, (tsr_env_game)g, NULL, 77, NULL), TSR_STATUS_OK);
        cr_assert_eq(tsr_env_init(&b, (tsr_env_game)g, NULL, 78, NULL), TSR_STATUS_OK);
        cr_assert_neq(play_hash(&a, 5, 3000), play_hash(&b, 5, 3000), "%s", names[g]);
    }
}

Test(env, saving_and_restoring_mid_episode_continues_identically)
{
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        tsr_env env;
        cr_assert_eq(tsr_env_init(&env, (tsr_env_game)g, NULL, 9, NULL), TSR_STATUS_OK);
        play_hash(&env, 1, 37);
        unsigned char saved[sizeof(tsr_env)];
        cr_assert_eq(tsr_env_state_size(&env), sizeof saved);
        memcpy(saved, tsr_env_state_bytes(&env), sizeof saved);
        uint64_t continued = play_hash(&env, 2, 500);

        tsr_env other; /* another game and seed, overwritten by the restore */
        tsr_env_game other_game = (tsr_env_game)((g + 1) % TSR_ENV_GAME_COUNT);
        cr_assert_eq(tsr_env_init(&other, other_game, NULL, 1234, NULL), TSR_STATUS_OK);
        tsr_error err;
        cr_assert_eq(tsr_env_state_restore(&other, saved, sizeof saved, &err), TSR_STATUS_OK,
                     "%s", err.message);
        cr_assert_eq(play_hash(&other, 2, 500), continued, "%s", names[g]);
        cr_assert_eq(memcmp(&other, &env, sizeof env), 0);
    }
}

Test(env, restoring_bytes_of_the_wrong_size_layout_or_content_is_refused)
{
    tsr_env env, target;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SEAQUEST, NULL, 1, NULL), TSR_STATUS_OK);
    cr_assert_eq(tsr_env_init(&target, TSR_ENV_GAME_BREAKOUT, NULL, 2, NULL), TSR_STATUS_OK);
    tsr_env before;
    memcpy(&before, &target, sizeof before);
    tsr_error err;
    cr_assert_eq(tsr_env_state_restore(&target, &env, sizeof env - 8, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "bytes"), "%s", err.message);

    tsr_env bad = env;
    bad.layout ^= 1;
    cr_assert_eq(tsr_env_state_restore(&target, &bad, sizeof bad, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "layout"), "%s", err.message);

    bad = env;
    bad.game = TSR_ENV_GAME_COUNT;
    cr_assert_eq(tsr_env_state_restore(&target, &bad, sizeof bad, &err), TSR_STATUS_FORMAT);

    bad = env;
    bad.options.sticky_action_prob = 3.0;
    cr_assert_eq(tsr_env_state_restore(&target, &bad, sizeof bad, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "sticky"), "%s", err.message);

    bad = env;
    bad.state.seaquest.num_fish = 120;
    cr_assert_eq(tsr_env_state_restore(&target, &bad, sizeof bad, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "seaquest"), "%s", err.message);

    cr_assert_eq(memcmp(&target, &before, sizeof before), 0, "a refused restore changes nothing");

    /* CartPole's coast is an action of continuous mode only. */
    tsr_env pole;
    cr_assert_eq(tsr_env_init(&pole, TSR_ENV_GAME_CARTPOLE, NULL, 1, NULL), TSR_STATUS_OK);
    pole.previous_action = 2; /* coast */
    cr_assert_eq(tsr_env_state_restore(&target, &pole, sizeof pole, &err), TSR_STATUS_FORMAT);
    cr_assert(strstr(err.message, "previous action 2 is outside 0..1"), "%s", err.message);
    pole.options.continuous = true;
    cr_assert_eq(tsr_env_state_restore(&target, &pole, sizeof pole, &err), TSR_STATUS_OK, "%s",
                 err.message);
}

/* ------------------------------------------------------- sticky actions */

Test(env, sticky_actions_repeat_the_previous_action_with_probability_p)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_ASTERIX);
    options.sticky_action_prob = 0.25;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_ASTERIX, &options, 4, NULL), TSR_STATUS_OK);
    tsr_rng policy;
    tsr_rng_init(&policy, 4, TSR_RNG_STREAM_EXPLORATION);
    long repeated = 0, chances = 0;
    for (int t = 0; t < 100000; t++) {
        int previous = env.previous_action;
        int requested = (int)tsr_rng_below(&policy, 6);
        tsr_env_step_result r = tsr_env_step(&env, requested);
        if (requested != previous) {
            chances++;
            repeated += env.previous_action == previous;
        } else {
            cr_assert_eq(env.previous_action, requested);
        }
        if (r.terminated) tsr_env_reset(&env);
    }
    double p = (double)repeated / (double)chances;
    cr_assert(fabs(p - 0.25) < 0.01, "repeat rate %g", p);
}

Test(env, the_previous_action_starts_at_noop_and_survives_a_reset)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.sticky_action_prob = 1.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, &options, 4, NULL), TSR_STATUS_OK);
    tsr_env_step(&env, TSR_ENV_ACTION_RIGHT);
    cr_assert_eq(env.state.breakout.paddle_x, 4, "the first previous action is a no-op");

    env.options.sticky_action_prob = 0.0;
    tsr_env_step(&env, TSR_ENV_ACTION_RIGHT);
    tsr_env_reset(&env);
    env.options.sticky_action_prob = 1.0;
    tsr_env_step(&env, TSR_ENV_ACTION_LEFT);
    cr_assert_eq(env.state.breakout.paddle_x, 5, "right, remembered across the reset");
}

Test(env, a_step_after_the_end_draws_the_sticky_number_and_changes_nothing_else)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.sticky_action_prob = 0.0;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, &options, 4, NULL), TSR_STATUS_OK);
    tsr_env_step_result r;
    do {
        r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert_lt(env.episode_length, 100000, "an episode that never ends");
    } while (!r.terminated);
    tsr_env before;
    memcpy(&before, &env, sizeof before);
    tsr_rng sticky = env.sticky_rng;
    tsr_rng_uniform(&sticky);
    r = tsr_env_step(&env, TSR_ENV_ACTION_LEFT);
    cr_assert(r.terminated && r.reward == 0.0f);
    cr_assert_eq(memcmp(env.sticky_rng.s, sticky.s, sizeof sticky.s), 0);
    cr_assert_eq(env.previous_action, TSR_ENV_ACTION_LEFT, "the wrapper still records the action");
    cr_assert_eq(memcmp(&env.state, &before.state, sizeof env.state), 0);
    cr_assert_eq(env.episode_length, before.episode_length);
    cr_assert_eq(memcmp(env.rng.s, before.rng.s, sizeof env.rng.s), 0);
}

Test(env, the_time_limit_truncates_without_terminating)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_SEAQUEST);
    options.time_limit = true;
    options.max_episode_steps = 7;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_SEAQUEST, &options, 4, NULL), TSR_STATUS_OK);
    for (int t = 1; t <= 7; t++) {
        tsr_env_step_result r = tsr_env_step(&env, TSR_ENV_ACTION_NOOP);
        cr_assert(!r.terminated);
        cr_assert_eq(r.truncated, t == 7);
    }
    cr_assert_eq(env.episode_length, 7);
    tsr_env_reset(&env);
    cr_assert(env.episode_length == 0 && env.episode_return == 0.0 && env.total_episodes == 1);
    cr_assert_eq(env.total_steps, 7);
}

Test(env, an_action_outside_the_set_aborts, .signal = SIGABRT)
{
    tsr_env_options options = tsr_env_default_options(TSR_ENV_GAME_BREAKOUT);
    options.minimal_action_set = true;
    tsr_env env;
    cr_assert_eq(tsr_env_init(&env, TSR_ENV_GAME_BREAKOUT, &options, 4, NULL), TSR_STATUS_OK);
    tsr_env_step(&env, 3);
}
