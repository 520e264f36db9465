/* seaquest.c — MinAtar Seaquest, from ../shared/specs/minatar.md §4.
 *
 * A submarine shoots fish and enemy subs, picks up divers and must surface
 * before its oxygen runs out; surfacing with no diver ends the game.
 * Every list is kept in order of creation and walked newest first; a search
 * for "the object on this cell" takes the oldest match. Both orders decide
 * which of two objects sharing a cell is hit, so they are kept exactly.
 */
#include <string.h>

#include "games.h"

enum {
    CHANNELS = 10, /* see observe() */
    MAX_OXYGEN = 200,
    INIT_SPAWN_PERIOD = 20,
    DIVER_SPAWN_PERIOD = 30,
    INIT_MOVE_PERIOD = 5,
    PLAYER_SHOT_PERIOD = 5,
    ENEMY_SHOT_PERIOD = 10,
    DIVER_MOVE_PERIOD = 5,
    FULL_CREW = 6,
};

typedef tsr_seaquest_object object;

/* ----------------------------------------------------------------- lists */

static void push(object *list, int8_t *count, int capacity, object o)
{
    TSR_ASSERT_MSG(*count < capacity, "seaquest list of capacity %d overflowed", capacity);
    list[(*count)++] = o;
}

static void remove_at(object *list, int8_t *count, int index)
{
    memmove(&list[index], &list[index + 1], (size_t)(*count - index - 1) * sizeof *list);
    (*count)--;
}

/* Index of the oldest object on (x, y), or -1. */
static int find_at(const object *list, int count, int x, int y)
{
    for (int i = 0; i < count; i++)
        if (list[i].x == x && list[i].y == y) return i;
    return -1;
}

static bool outside(const object *o) { return o->x < 0 || o->x > 9; }

/* ------------------------------------------------------------------ reset */

static void reset(tsr_env *env)
{
    tsr_seaquest_state *s = &env->state.seaquest;
    memset(s, 0, sizeof *s);
    s->oxygen = MAX_OXYGEN;
    s->diver_count = 0;
    s->sub_x = 5;
    s->sub_y = 0;
    s->facing_left = true;
    s->enemy_spawn_period = s->enemy_spawn_cd = INIT_SPAWN_PERIOD;
    s->diver_spawn_cd = DIVER_SPAWN_PERIOD;
    s->move_period = INIT_MOVE_PERIOD;
    s->ramp_level = 0;
    s->shot_cd = 0;
    s->surfaced = true;
    s->terminal = false;
}

/* --------------------------------------------------------------- spawning */

/* Draws direction, kind and row (in that order, all three always); nothing
 * spawns if an enemy in that row moves the opposite way. */
static void spawn_enemy(tsr_seaquest_state *s, tsr_rng *rng)
{
    bool moving_right = tsr_rng_uniform(rng) < 0.5;
    bool is_sub = tsr_rng_uniform(rng) < 1.0 / 3.0;
    int y = 1 + (int)tsr_rng_below(rng, 8);
    int8_t dir = moving_right ? 1 : -1;
    for (int i = 0; i < s->num_fish; i++)
        if (s->fish[i].y == y && s->fish[i].dir != dir) return;
    for (int i = 0; i < s->num_subs; i++)
        if (s->subs[i].y == y && s->subs[i].dir != dir) return;
    object o = {
        .x = moving_right ? 0 : 9,
        .y = (int8_t)y,
        .dir = dir,
        .move_cd = (int8_t)s->move_period,
        .shot_cd = ENEMY_SHOT_PERIOD,
    };
    if (is_sub)
        push(s->subs, &s->num_subs, TSR_SEAQUEST_MAX_ENEMIES, o);
    else
        push(s->fish, &s->num_fish, TSR_SEAQUEST_MAX_ENEMIES, o);
}

/* A diver spawns even when its row is busy. */
static void spawn_diver(tsr_seaquest_state *s, tsr_rng *rng)
{
    bool moving_right = tsr_rng_uniform(rng) < 0.5;
    int y = 1 + (int)tsr_rng_below(rng, 8);
    object o = {
        .x = moving_right ? 0 : 9,
        .y = (int8_t)y,
        .dir = moving_right ? 1 : -1,
        .move_cd = DIVER_MOVE_PERIOD,
    };
    push(s->divers, &s->num_divers, TSR_SEAQUEST_MAX_DIVERS, o);
}

/* ---------------------------------------------------------------- updates */

static bool on_sub(const tsr_seaquest_state *s, const object *o)
{
    return o->x == s->sub_x && o->y == s->sub_y;
}

static float move_player_bullets(tsr_seaquest_state *s)
{
    float reward = 0.0f;
    for (int i = s->num_player_bullets - 1; i >= 0; i--) {
        object *b = &s->player_bullets[i];
        b->x = (int8_t)(b->x + b->dir);
        if (outside(b)) {
            remove_at(s->player_bullets, &s->num_player_bullets, i);
            continue;
        }
        int hit = find_at(s->fish, s->num_fish, b->x, b->y);
        if (hit >= 0) {
            remove_at(s->fish, &s->num_fish, hit);
        } else {
            hit = find_at(s->subs, s->num_subs, b->x, b->y);
            if (hit < 0) continue;
            remove_at(s->subs, &s->num_subs, hit);
        }
        remove_at(s->player_bullets, &s->num_player_bullets, i);
        reward += 1.0f;
    }
    return reward;
}

static void move_divers(tsr_seaquest_state *s)
{
    for (int i = s->num_divers - 1; i >= 0; i--) {
        object *d = &s->divers[i];
        if (on_sub(s, d) && s->diver_count < FULL_CREW) {
            remove_at(s->divers, &s->num_divers, i);
            s->diver_count++;
            continue;
        }
        if (d->move_cd == 0) {
            d->move_cd = DIVER_MOVE_PERIOD;
            d->x = (int8_t)(d->x + d->dir);
            if (outside(d)) {
                remove_at(s->divers, &s->num_divers, i);
            } else if (on_sub(s, d) && s->diver_count < FULL_CREW) {
                remove_at(s->divers, &s->num_divers, i);
                s->diver_count++;
            }
        } else {
            d->move_cd--;
        }
    }
}

/* Fish and enemy subs: contact before and after the move; an enemy that moves
 * onto a player bullet dies with it. Returns the reward; sets *removed when
 * the enemy left the grid or was shot (the caller deletes it). */
static float move_enemy(tsr_seaquest_state *s, object *e, bool *removed)
{
    *removed = false;
    if (on_sub(s, e)) s->terminal = true;
    if (e->move_cd != 0) {
        e->move_cd--;
        return 0.0f;
    }
    e->move_cd = (int8_t)s->move_period;
    e->x = (int8_t)(e->x + e->dir);
    if (outside(e)) {
        *removed = true;
        return 0.0f;
    }
    if (on_sub(s, e)) {
        s->terminal = true;
        return 0.0f;
    }
    int bullet = find_at(s->player_bullets, s->num_player_bullets, e->x, e->y);
    if (bullet < 0) return 0.0f;
    remove_at(s->player_bullets, &s->num_player_bullets, bullet);
    *removed = true;
    return 1.0f;
}

static float move_subs(tsr_seaquest_state *s)
{
    float reward = 0.0f;
    for (int i = s->num_subs - 1; i >= 0; i--) {
        object *e = &s->subs[i];
        bool removed;
        reward += move_enemy(s, e, &removed);
        /* A sub that has just left the grid or been shot still fires. */
        if (e->shot_cd == 0) {
            e->shot_cd = ENEMY_SHOT_PERIOD;
            object bullet = {.x = e->x, .y = e->y, .dir = e->dir};
            push(s->enemy_bullets, &s->num_enemy_bullets, TSR_SEAQUEST_MAX_ENEMY_BULLETS, bullet);
        } else {
            e->shot_cd--;
        }
        if (removed) remove_at(s->subs, &s->num_subs, i);
    }
    return reward;
}

static void move_enemy_bullets(tsr_seaquest_state *s)
{
    for (int i = s->num_enemy_bullets - 1; i >= 0; i--) {
        object *b = &s->enemy_bullets[i];
        if (on_sub(s, b)) s->terminal = true;
        b->x = (int8_t)(b->x + b->dir);
        if (outside(b))
            remove_at(s->enemy_bullets, &s->num_enemy_bullets, i);
        else if (on_sub(s, b))
            s->terminal = true;
    }
}

static float move_fish(tsr_seaquest_state *s)
{
    float reward = 0.0f;
    for (int i = s->num_fish - 1; i >= 0; i--) {
        bool removed;
        reward += move_enemy(s, &s->fish[i], &removed);
        if (removed) remove_at(s->fish, &s->num_fish, i);
    }
    return reward;
}

/* Surfacing with at least one diver (or with the count at -1). A full crew
 * gives a bonus from the oxygen left; the count then drops to -1, as in the
 * reference. Each surfacing ramps the difficulty when ramping is on. */
static float surface(tsr_seaquest_state *s, bool ramping)
{
    s->surfaced = true;
    float bonus = 0.0f;
    if (s->diver_count == FULL_CREW) {
        s->diver_count = 0;
        bonus = (float)(s->oxygen * 10 / MAX_OXYGEN);
    }
    s->oxygen = MAX_OXYGEN;
    s->diver_count--;
    if (ramping && (s->enemy_spawn_period > 1 || s->move_period > 2)) {
        if (s->move_period > 2 && s->ramp_level % 2 == 1) s->move_period--;
        if (s->enemy_spawn_period > 1) s->enemy_spawn_period--;
        s->ramp_level++;
    }
    return bonus;
}

static tsr_env_game_result step(tsr_env *env, int action)
{
    tsr_seaquest_state *s = &env->state.seaquest;
    if (s->terminal) return (tsr_env_game_result){0.0f, true};
    float reward = 0.0f;

    if (s->enemy_spawn_cd == 0) {
        spawn_enemy(s, &env->rng);
        s->enemy_spawn_cd = s->enemy_spawn_period;
    }
    if (s->diver_spawn_cd == 0) {
        spawn_diver(s, &env->rng);
        s->diver_spawn_cd = DIVER_SPAWN_PERIOD;
    }

    switch (action) {
    case TSR_ENV_ACTION_FIRE:
        if (s->shot_cd == 0) {
            object bullet = {.x = s->sub_x, .y = s->sub_y, .dir = s->facing_left ? -1 : 1};
            push(s->player_bullets, &s->num_player_bullets, TSR_SEAQUEST_MAX_PLAYER_BULLETS,
                 bullet);
            s->shot_cd = PLAYER_SHOT_PERIOD;
        }
        break;
    case TSR_ENV_ACTION_LEFT:
        if (s->sub_x > 0) s->sub_x--;
        s->facing_left = true;
        break;
    case TSR_ENV_ACTION_RIGHT:
        if (s->sub_x < 9) s->sub_x++;
        s->facing_left = false;
        break;
    case TSR_ENV_ACTION_UP: if (s->sub_y > 0) s->sub_y--; break;
    case TSR_ENV_ACTION_DOWN: if (s->sub_y < 8) s->sub_y++; break;
    default: break;
    }

    reward += move_player_bullets(s);
    move_divers(s);
    reward += move_subs(s);
    move_enemy_bullets(s);
    reward += move_fish(s);

    if (s->enemy_spawn_cd > 0) s->enemy_spawn_cd--;
    if (s->diver_spawn_cd > 0) s->diver_spawn_cd--;
    if (s->shot_cd > 0) s->shot_cd--;

    /* Checked before this step's oxygen use: a dive on step 1 ends on 201. */
    if (s->oxygen <= 0) s->terminal = true;
    if (s->sub_y > 0) {
        s->oxygen--;
        s->surfaced = false;
    } else if (!s->surfaced) {
        if (s->diver_count == 0)
            s->terminal = true;
        else
            reward += surface(s, env->options.difficulty_ramping);
    }
    return (tsr_env_game_result){reward, s->terminal};
}

static bool is_terminal(const tsr_env *env) { return env->state.seaquest.terminal; }

/* ------------------------------------------------------------ observation */

static void set_if_inside(uint8_t *obs, int row, int col, int channel)
{
    if (tsr_minatar_in_grid(row, col)) tsr_minatar_set(obs, CHANNELS, row, col, channel);
}

static void draw_movers(uint8_t *obs, const object *list, int count, int channel)
{
    for (int i = 0; i < count; i++) {
        const object *o = &list[i];
        set_if_inside(obs, o->y, o->x, channel);
        set_if_inside(obs, o->y, o->dir > 0 ? o->x - 1 : o->x + 1, 3); /* trail */
    }
}

/* Channels: 0 sub front, 1 sub back, 2 player bullets, 3 trails of fish, subs
 * and divers, 4 enemy bullets, 5 fish, 6 enemy subs, 7 oxygen gauge,
 * 8 diver gauge, 9 divers. */
static void observe(const tsr_env *env, void *out)
{
    const tsr_seaquest_state *s = &env->state.seaquest;
    uint8_t *obs = out;
    tsr_minatar_clear(obs, CHANNELS);
    set_if_inside(obs, s->sub_y, s->sub_x, 0);
    set_if_inside(obs, s->sub_y, s->facing_left ? s->sub_x + 1 : s->sub_x - 1, 1);
    for (int i = 0; i < s->num_player_bullets; i++)
        set_if_inside(obs, s->player_bullets[i].y, s->player_bullets[i].x, 2);
    for (int i = 0; i < s->num_enemy_bullets; i++)
        set_if_inside(obs, s->enemy_bullets[i].y, s->enemy_bullets[i].x, 4);
    draw_movers(obs, s->fish, s->num_fish, 5);
    draw_movers(obs, s->subs, s->num_subs, 6);
    draw_movers(obs, s->divers, s->num_divers, 9);
    int oxygen_cells = (s->oxygen > 0 ? s->oxygen : 0) * 10 / MAX_OXYGEN;
    for (int c = 0; c < oxygen_cells; c++) tsr_minatar_set(obs, CHANNELS, 9, c, 7);
    for (int c = 9 - s->diver_count; c <= 8 && s->diver_count > 0; c++)
        tsr_minatar_set(obs, CHANNELS, 9, c, 8);
}

static const char *check_list(const object *list, int count, int capacity)
{
    if (count < 0 || count > capacity) return "a list length is outside its capacity";
    for (int i = 0; i < count; i++)
        if (list[i].x < -1 || list[i].x > 10 || list[i].y < 0 || list[i].y > 9)
            return "an object is outside the grid";
    return NULL;
}

static const char *check_state(const tsr_env *env)
{
    const tsr_seaquest_state *s = &env->state.seaquest;
    if (s->sub_x < 0 || s->sub_x > 9 || s->sub_y < 0 || s->sub_y > 8)
        return "sub outside columns 0..9, rows 0..8";
    if (s->diver_count > FULL_CREW) return "diver count above 6";
    if (s->oxygen > MAX_OXYGEN) return "oxygen above 200";
    if (s->enemy_spawn_period < 1 || s->move_period < 1) return "a period below 1";
    const char *problem;
    if ((problem = check_list(s->player_bullets, s->num_player_bullets,
                              TSR_SEAQUEST_MAX_PLAYER_BULLETS)) ||
        (problem = check_list(s->enemy_bullets, s->num_enemy_bullets,
                              TSR_SEAQUEST_MAX_ENEMY_BULLETS)) ||
        (problem = check_list(s->fish, s->num_fish, TSR_SEAQUEST_MAX_ENEMIES)) ||
        (problem = check_list(s->subs, s->num_subs, TSR_SEAQUEST_MAX_ENEMIES)) ||
        (problem = check_list(s->divers, s->num_divers, TSR_SEAQUEST_MAX_DIVERS)))
        return problem;
    return NULL;
}

static const int8_t minimal_actions[] = {0, 1, 2, 3, 4, 5};

const tsr_env_game_rules tsr_seaquest_rules = {
    .name = "minatar/seaquest",
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
