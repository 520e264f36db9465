/* freeway.c — MinAtar Freeway, from ../shared/specs/minatar.md §3.
 *
 * A chicken in column 4 crosses eight lanes of cars from row 9 to row 0; every
 * crossing scores +1. The game ends on the 2,501st step. Ramping is ignored.
 */
#include <string.h>

#include "games.h"

enum {
    CHANNELS = 7, /* 0 chicken, 1 car, 2..6 trail of a car with |speed| 1..5 */
    NUM_CARS = 8,
    CHICKEN_X = 4,
    PLAYER_COOLDOWN = 3,
    TIME_LIMIT = 2500,
};

/* Eight speeds uniform on 1..5, then eight direction uniforms (> 0.5 right,
 * < 0.5 left, exactly 0.5 a standing car): the order of draws is the spec's. */
static void randomise_speeds(tsr_freeway_state *s, tsr_rng *rng)
{
    int magnitude[NUM_CARS];
    for (int i = 0; i < NUM_CARS; i++) magnitude[i] = 1 + (int)tsr_rng_below(rng, 5);
    for (int i = 0; i < NUM_CARS; i++) {
        double u = tsr_rng_uniform(rng);
        int direction = u > 0.5 ? 1 : u < 0.5 ? -1 : 0;
        s->cars[i].speed = (int8_t)(magnitude[i] * direction);
        s->cars[i].cd = (int8_t)(s->cars[i].speed < 0 ? -s->cars[i].speed : s->cars[i].speed);
    }
}

static void reset(tsr_env *env)
{
    tsr_freeway_state *s = &env->state.freeway;
    memset(s, 0, sizeof *s);
    randomise_speeds(s, &env->rng);
    for (int i = 0; i < NUM_CARS; i++) s->cars[i].x = 0;
    s->chicken_y = 9;
    s->cooldown = PLAYER_COOLDOWN;
    s->timer = TIME_LIMIT;
    s->terminal = false;
}

static int sign(int v) { return (v > 0) - (v < 0); }

static tsr_env_game_result step(tsr_env *env, int action)
{
    tsr_freeway_state *s = &env->state.freeway;
    if (s->terminal) return (tsr_env_game_result){0.0f, true};
    float reward = 0.0f;

    if (action == TSR_ENV_ACTION_UP && s->cooldown == 0) {
        s->cooldown = PLAYER_COOLDOWN;
        if (s->chicken_y > 0) s->chicken_y--;
    } else if (action == TSR_ENV_ACTION_DOWN && s->cooldown == 0) {
        s->cooldown = PLAYER_COOLDOWN;
        if (s->chicken_y < 9) s->chicken_y++;
    }

    if (s->chicken_y == 0) {
        reward += 1.0f;
        randomise_speeds(s, &env->rng); /* positions are kept */
        s->chicken_y = 9;
    }

    /* Collisions use the chicken's row as it stands at that moment. */
    for (int i = 0; i < NUM_CARS; i++) {
        tsr_freeway_car *car = &s->cars[i];
        const int row = i + 1;
        if (row == s->chicken_y && car->x == CHICKEN_X) s->chicken_y = 9;
        if (car->cd == 0) {
            car->cd = (int8_t)(car->speed < 0 ? -car->speed : car->speed);
            int x = car->x + sign(car->speed);
            car->x = (int8_t)(x < 0 ? 9 : x > 9 ? 0 : x);
            if (row == s->chicken_y && car->x == CHICKEN_X) s->chicken_y = 9;
        } else {
            car->cd--;
        }
    }

    if (s->cooldown > 0) s->cooldown--;
    s->timer--;
    if (s->timer < 0) s->terminal = true;
    return (tsr_env_game_result){reward, s->terminal};
}

static bool is_terminal(const tsr_env *env) { return env->state.freeway.terminal; }

static void observe(const tsr_env *env, void *out)
{
    const tsr_freeway_state *s = &env->state.freeway;
    uint8_t *obs = out;
    tsr_minatar_clear(obs, CHANNELS);
    tsr_minatar_set(obs, CHANNELS, s->chicken_y, CHICKEN_X, 0);
    for (int i = 0; i < NUM_CARS; i++) {
        const tsr_freeway_car *car = &s->cars[i];
        tsr_minatar_set(obs, CHANNELS, i + 1, car->x, 1);
        /* A standing car (speed 0, a 2^-53 event) has no trail. */
        if (car->speed == 0) continue;
        int behind = car->speed > 0 ? car->x - 1 : car->x + 1;
        behind = behind < 0 ? 9 : behind > 9 ? 0 : behind;
        int magnitude = car->speed < 0 ? -car->speed : car->speed;
        tsr_minatar_set(obs, CHANNELS, i + 1, behind, 1 + magnitude);
    }
}

static const char *check_state(const tsr_env *env)
{
    const tsr_freeway_state *s = &env->state.freeway;
    if (s->chicken_y < 0 || s->chicken_y > 9) return "chicken outside rows 0..9";
    for (int i = 0; i < NUM_CARS; i++) {
        const tsr_freeway_car *car = &s->cars[i];
        if (car->x < 0 || car->x > 9) return "car outside columns 0..9";
        if (car->speed < -5 || car->speed > 5) return "car speed outside -5..5";
        if (car->cd < 0 || car->cd > 5) return "car countdown outside 0..5";
    }
    return NULL;
}

static const int8_t minimal_actions[] = {0, 2, 4};

const tsr_env_game_rules tsr_freeway_rules = {
    .name = "minatar/freeway",
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
