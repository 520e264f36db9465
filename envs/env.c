/* env.c — the name table, options, sticky actions, counters and saving,
 * shared by every game. The rules of each game live in its own file. */
#include "tessera/env.h"

#include <stdio.h>
#include <string.h>

#include "games.h"

const char *const tsr_minatar_action_names[TSR_MINATAR_NUM_ACTIONS] = {
    "noop", "left", "up", "right", "down", "fire",
};

static const tsr_env_game_rules *const games[TSR_ENV_GAME_COUNT] = {
    [TSR_ENV_GAME_ASTERIX] = &tsr_asterix_rules,
    [TSR_ENV_GAME_BREAKOUT] = &tsr_breakout_rules,
    [TSR_ENV_GAME_FREEWAY] = &tsr_freeway_rules,
    [TSR_ENV_GAME_SEAQUEST] = &tsr_seaquest_rules,
    [TSR_ENV_GAME_SPACE_INVADERS] = &tsr_space_invaders_rules,
    [TSR_ENV_GAME_CARTPOLE] = &tsr_cartpole_rules,
};

enum { CARTPOLE_MAX_EPISODE_STEPS = 500 };

const tsr_env_game_rules *tsr_env_game_rules_of(tsr_env_game game)
{
    TSR_ASSERT_MSG((unsigned)game < TSR_ENV_GAME_COUNT, "game %d", (int)game);
    return games[game];
}

/* ================================================================ names */

const char *tsr_env_game_name(tsr_env_game game) { return tsr_env_game_rules_of(game)->name; }

/* "a, b, c" into buf: the valid names for error messages. */
static const char *valid_names(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int g = 0; g < TSR_ENV_GAME_COUNT && used < size; g++)
        used += (size_t)snprintf(buf + used, size - used, g ? ", %s" : "%s", games[g]->name);
    return buf;
}

tsr_status tsr_env_find_game(const char *name, tsr_env_game *game, tsr_error *err)
{
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        if (name && !strcmp(name, games[g]->name)) {
            *game = (tsr_env_game)g;
            return TSR_STATUS_OK;
        }
    }
    /* The part after the '/' alone ("breakout"), as sweep files take it. */
    for (int g = 0; name && !strchr(name, '/') && g < TSR_ENV_GAME_COUNT; g++) {
        const char *slash = strchr(games[g]->name, '/');
        if (slash && !strcmp(name, slash + 1)) {
            *game = (tsr_env_game)g;
            return TSR_STATUS_OK;
        }
    }
    char names[256];
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "unknown environment '%s'; valid names: %s (or the part after the '/')",
                         name ? name : "(null)", valid_names(names, sizeof names));
}

/* ============================================================== options */

tsr_env_options tsr_env_default_options(tsr_env_game game)
{
    TSR_ASSERT_MSG((unsigned)game < TSR_ENV_GAME_COUNT, "game %d", (int)game);
    const bool cartpole = game == TSR_ENV_GAME_CARTPOLE;
    return (tsr_env_options){
        .sticky_action_prob = cartpole ? 0.0 : 0.1,
        .difficulty_ramping = true,
        .minimal_action_set = false,
        .continuous = false,
        .continuous_threshold = 0.5,
        .continuous_asymmetric = false,
        .time_limit = cartpole,
        .max_episode_steps = cartpole ? CARTPOLE_MAX_EPISODE_STEPS : 0,
    };
}

tsr_status tsr_env_check_options(tsr_env_game game, const tsr_env_options *options,
                                 tsr_error *err)
{
    const char *name = tsr_env_game_rules_of(game)->name;
    double p = options->sticky_action_prob;
    if (!(p >= 0.0 && p <= 1.0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: sticky-action probability %g is outside [0, 1]", name, p);
    double t = options->continuous_threshold;
    if (!(t >= 0.0 && t < 1.0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: continuous-action threshold %g is outside [0, 1)", name, t);
    if (options->time_limit && options->max_episode_steps < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: max_episode_steps %lld must be >= 1 when the time limit is on",
                             name, (long long)options->max_episode_steps);
    if (options->continuous && options->minimal_action_set)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: the minimal action set does not apply in continuous mode "
                             "(CALE maps onto the full set)", name);
    return TSR_STATUS_OK;
}

/* ================================================================= life */

static void copy_options(tsr_env_options *dst, const tsr_env_options *src)
{
    dst->sticky_action_prob = src->sticky_action_prob;
    dst->difficulty_ramping = src->difficulty_ramping;
    dst->minimal_action_set = src->minimal_action_set;
    dst->continuous = src->continuous;
    dst->continuous_threshold = src->continuous_threshold;
    dst->continuous_asymmetric = src->continuous_asymmetric;
    dst->time_limit = src->time_limit;
    dst->max_episode_steps = src->max_episode_steps;
}

static void start_episode(tsr_env *env)
{
    tsr_env_game_rules_of(env->game)->reset(env);
    env->episode_length = 0;
    env->episode_return = 0.0;
}

tsr_status tsr_env_init(tsr_env *env, tsr_env_game game, const tsr_env_options *options,
                        uint64_t seed, tsr_error *err)
{
    if ((unsigned)game >= TSR_ENV_GAME_COUNT)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "unknown game id %d", (int)game);
    tsr_env_options opts = options ? *options : tsr_env_default_options(game);
    tsr_status st = tsr_env_check_options(game, &opts, err);
    if (st != TSR_STATUS_OK) return st;

    /* Zeroed first and then filled field by field (a struct assignment may
     * leave padding bytes undefined), so equal inits give equal bytes. */
    memset(env, 0, sizeof *env);
    env->layout = TSR_ENV_LAYOUT;
    env->game = game;
    copy_options(&env->options, &opts);
    tsr_rng_init(&env->rng, seed, TSR_RNG_STREAM_ENV);
    tsr_rng_init(&env->sticky_rng, seed, TSR_RNG_STREAM_STICKY);
    env->previous_action = TSR_ENV_ACTION_NOOP;
    start_episode(env);
    return TSR_STATUS_OK;
}

tsr_env_spec tsr_env_get_spec(const tsr_env *env)
{
    const tsr_env_game_rules *rules = tsr_env_game_rules_of(env->game);
    tsr_env_spec spec = {
        .name = rules->name,
        .obs_dtype = rules->obs_dtype,
        .obs_ndim = rules->obs_ndim,
        .continuous = env->options.continuous,
    };
    size_t elements = 1;
    for (int i = 0; i < rules->obs_ndim; i++) {
        spec.obs_shape[i] = rules->obs_shape[i];
        elements *= (size_t)rules->obs_shape[i];
    }
    spec.obs_bytes = elements * tsr_dtype_size(rules->obs_dtype);
    if (env->options.continuous)
        spec.action_dim = TSR_ENV_CONTINUOUS_DIM;
    else
        spec.num_actions =
            env->options.minimal_action_set ? rules->num_minimal_actions : rules->num_actions;
    return spec;
}

void tsr_env_reset(tsr_env *env)
{
    start_episode(env);
    env->total_episodes++;
}

/* ================================================================= step */

/* `action` is a full-set index. Sticky actions as in MinAtar's wrapper: the
 * draw happens on every call, also on a game that is already over. */
static tsr_env_step_result step_full_action(tsr_env *env, int action)
{
    const tsr_env_game_rules *rules = games[env->game];
    if (tsr_rng_uniform(&env->sticky_rng) < env->options.sticky_action_prob)
        action = env->previous_action;
    env->previous_action = action;

    tsr_env_step_result result = {0};
    if (rules->is_terminal(env)) {
        result.terminated = true;
        return result;
    }
    tsr_env_game_result game = rules->step(env, action);
    env->episode_length++;
    env->episode_return += game.reward;
    env->total_steps++;
    result.reward = game.reward;
    result.terminated = game.terminal;
    result.truncated =
        env->options.time_limit && env->episode_length >= env->options.max_episode_steps;
    return result;
}

tsr_env_step_result tsr_env_step(tsr_env *env, int action)
{
    const tsr_env_game_rules *rules = tsr_env_game_rules_of(env->game);
    TSR_ASSERT_MSG(!env->options.continuous, "discrete step on a continuous-mode env");
    if (env->options.minimal_action_set) {
        TSR_ASSERT_MSG(action >= 0 && action < rules->num_minimal_actions,
                       "action %d of %d (%s, minimal set)", action, rules->num_minimal_actions,
                       rules->name);
        action = rules->minimal_actions[action];
    } else {
        TSR_ASSERT_MSG(action >= 0 && action < rules->num_actions, "action %d of %d (%s)",
                       action, rules->num_actions, rules->name);
    }
    return step_full_action(env, action);
}

tsr_env_step_result tsr_env_step_continuous(tsr_env *env, const float action[3])
{
    TSR_ASSERT_MSG(env->options.continuous, "continuous step on a discrete-mode env");
    tsr_joystick_event event = tsr_env_joystick_event(action, env->options.continuous_threshold,
                                                      env->options.continuous_asymmetric);
    return step_full_action(env, tsr_env_joystick_action(env->game, event));
}

void tsr_env_observe(const tsr_env *env, void *obs)
{
    tsr_env_game_rules_of(env->game)->observe(env, obs);
}

const char *tsr_env_action_name(const tsr_env *env, int action)
{
    const tsr_env_game_rules *rules = tsr_env_game_rules_of(env->game);
    if (env->options.minimal_action_set) {
        TSR_ASSERT(action >= 0 && action < rules->num_minimal_actions);
        action = rules->minimal_actions[action];
    }
    TSR_ASSERT(action >= 0 && action < rules->num_actions);
    return rules->action_names[action];
}

/* ========================================================== save/restore */

size_t tsr_env_state_size(const tsr_env *env)
{
    (void)env;
    return sizeof(tsr_env);
}

const void *tsr_env_state_bytes(const tsr_env *env) { return env; }

tsr_status tsr_env_state_restore(tsr_env *env, const void *bytes, size_t size, tsr_error *err)
{
    if (size != sizeof(tsr_env))
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "environment state is %zu bytes; expected %zu (tessera layout %#x)",
                             size, sizeof(tsr_env), TSR_ENV_LAYOUT);
    tsr_env saved;
    memcpy(&saved, bytes, sizeof saved);
    if (saved.layout != TSR_ENV_LAYOUT)
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "environment state has layout %#x; expected %#x", saved.layout,
                             TSR_ENV_LAYOUT);
    if ((unsigned)saved.game >= TSR_ENV_GAME_COUNT)
        return tsr_error_set(err, TSR_STATUS_FORMAT, "environment state names game id %d",
                             (int)saved.game);
    const tsr_env_game_rules *rules = games[saved.game];
    tsr_error option_err;
    if (tsr_env_check_options(saved.game, &saved.options, &option_err) != TSR_STATUS_OK)
        return tsr_error_set(err, TSR_STATUS_FORMAT, "environment state: %s",
                             option_err.message);
    /* CartPole's coast exists only in continuous mode. */
    int max_action = saved.game != TSR_ENV_GAME_CARTPOLE ? rules->num_actions - 1
                     : saved.options.continuous          ? TSR_CARTPOLE_ACTION_COAST
                                                         : TSR_CARTPOLE_ACTION_COAST - 1;
    if (saved.previous_action < 0 || saved.previous_action > max_action)
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "environment state (%s): previous action %d is outside 0..%d",
                             rules->name, (int)saved.previous_action, max_action);
    const char *problem = rules->check_state(&saved);
    if (problem)
        return tsr_error_set(err, TSR_STATUS_FORMAT, "environment state (%s): %s", rules->name,
                             problem);
    memcpy(env, &saved, sizeof saved);
    return TSR_STATUS_OK;
}
