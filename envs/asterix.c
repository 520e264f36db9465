/* asterix.c — MinAtar Asterix, from ../shared/specs/minatar.md §1.
 *
 * Eight lanes (rows 1..8) each hold at most one object, gold or enemy, moving
 * left or right; the player collects gold and must avoid enemies. Spawning and
 * movement speed up every 102 steps when difficulty ramping is on.
 */
#include <string.h>

#include "games.h"

enum {
    CHANNELS = 4, /* 0 player, 1 enemy, 2 trail, 3 gold */
    NUM_LANES = 8,
    RAMP_INTERVAL = 100,
    INIT_SPAWN_PERIOD = 10,
    INIT_MOVE_PERIOD = 5,
};

static void reset(tsr_env *env)
{
    tsr_asterix_state *s = &env->state.asterix;
    memset(s, 0, sizeof *s);
    s->player_x = 5;
    s->player_y = 5;
    s->spawn_period = s->spawn_cd = INIT_SPAWN_PERIOD;
    s->move_period = s->move_cd = INIT_MOVE_PERIOD;
    s->ramp_cd = RAMP_INTERVAL;
    s->ramp_level = 0;
    s->terminal = false;
}

/* Draws direction, then kind, then (if any lane is free) the lane: the two
 * uniforms are used up even when every lane is full. */
static void spawn(tsr_asterix_state *s, tsr_rng *rng)
{
    bool moving_right = tsr_rng_uniform(rng) < 0.5;
    bool is_gold = tsr_rng_uniform(rng) < 1.0 / 3.0;
    int free_lanes[NUM_LANES];
    int num_free = 0;
    for (int lane = 0; lane < NUM_LANES; lane++)
        if (!s->lanes[lane].occupied) free_lanes[num_free++] = lane;
    if (num_free == 0) return;
    int lane = free_lanes[tsr_rng_below(rng, (uint64_t)num_free)];
    s->lanes[lane] = (tsr_asterix_lane){
        .x = moving_right ? 0 : 9,
        .occupied = true,
        .moving_right = moving_right,
        .is_gold = is_gold,
    };
}

/* Contact between the object in the player's lane (the only lane that can
 * touch the player) and the player: gold is collected, an enemy ends the game
 * and stays where it is. */
static float touch(tsr_asterix_state *s)
{
    tsr_asterix_lane *o = &s->lanes[s->player_y - 1];
    if (!o->occupied || o->x != s->player_x) return 0.0f;
    if (o->is_gold) {
        o->occupied = false;
        return 1.0f;
    }
    s->terminal = true;
    return 0.0f;
}

static tsr_env_game_result step(tsr_env *env, int action)
{
    tsr_asterix_state *s = &env->state.asterix;
    if (s->terminal) return (tsr_env_game_result){0.0f, true};
    float reward = 0.0f;

    if (s->spawn_cd == 0) {
        spawn(s, &env->rng);
        s->spawn_cd = s->spawn_period;
    }

    switch (action) {
    case TSR_ENV_ACTION_LEFT: if (s->player_x > 0) s->player_x--; break;
    case TSR_ENV_ACTION_RIGHT: if (s->player_x < 9) s->player_x++; break;
    case TSR_ENV_ACTION_UP: if (s->player_y > 1) s->player_y--; break;
    case TSR_ENV_ACTION_DOWN: if (s->player_y < 8) s->player_y++; break;
    default: break;
    }

    reward += touch(s);

    if (s->move_cd == 0) {
        s->move_cd = s->move_period;
        for (int lane = 0; lane < NUM_LANES; lane++) {
            tsr_asterix_lane *o = &s->lanes[lane];
            if (!o->occupied) continue;
            o->x = (int8_t)(o->x + (o->moving_right ? 1 : -1));
            if (o->x < 0 || o->x > 9) o->occupied = false;
        }
        reward += touch(s);
    }

    s->spawn_cd--;
    s->move_cd--;

    /* The ramp counter runs 100 -> -1, so a ramp comes every 102 steps; it
     * changes only the reload values, not the running countdowns. */
    if (env->options.difficulty_ramping && (s->spawn_period > 1 || s->move_period > 1)) {
        if (s->ramp_cd >= 0) {
            s->ramp_cd--;
        } else {
            if (s->move_period > 1 && s->ramp_level % 2 == 1) s->move_period--;
            if (s->spawn_period > 1) s->spawn_period--;
            s->ramp_level++;
            s->ramp_cd = RAMP_INTERVAL;
        }
    }
    return (tsr_env_game_result){reward, s->terminal};
}

static bool is_terminal(const tsr_env *env) { return env->state.asterix.terminal; }

static void observe(const tsr_env *env, void *out)
{
    const tsr_asterix_state *s = &env->state.asterix;
    uint8_t *obs = out;
    tsr_minatar_clear(obs, CHANNELS);
    tsr_minatar_set(obs, CHANNELS, s->player_y, s->player_x, 0);
    for (int lane = 0; lane < NUM_LANES; lane++) {
        const tsr_asterix_lane *o = &s->lanes[lane];
        if (!o->occupied) continue;
        tsr_minatar_set(obs, CHANNELS, lane + 1, o->x, o->is_gold ? 3 : 1);
        int behind = o->moving_right ? o->x - 1 : o->x + 1;
        if (behind >= 0 && behind <= 9) tsr_minatar_set(obs, CHANNELS, lane + 1, behind, 2);
    }
}

static const char *check_state(const tsr_env *env)
{
    const tsr_asterix_state *s = &env->state.asterix;
    if (s->player_x < 0 || s->player_x > 9 || s->player_y < 1 || s->player_y > 8)
        return "player outside columns 0..9, rows 1..8";
    for (int lane = 0; lane < NUM_LANES; lane++)
        if (s->lanes[lane].occupied && (s->lanes[lane].x < 0 || s->lanes[lane].x > 9))
            return "object outside columns 0..9";
    if (s->spawn_period < 1 || s->move_period < 1) return "spawn or move period below 1";
    return NULL;
}

static const int8_t minimal_actions[] = {0, 1, 2, 3, 4};

const tsr_env_game_rules tsr_asterix_rules = {
    .name = "minatar/asterix",
    .obs_dtype = TSR_DTYPE_U8,
    .obs_ndim = 3,
    .obs_shape = {TSR_MINATAR_SIZE, TSR_MINATAR_SIZE, CHANNELS},
    .num_actions = TSR_MINATAR_NUM_ACTIONS,
    .action_names = tsr_minatar_action_names,
    .num_minimal_actions = (int)sizeof minimal_actions,
    .minimal_actions = minimal_actions,
    .reset = reset,
    .step = step,
    .is_terminal = is_terminal,
    .observe = observe,
    .check_state = check_state,
};
