/* breakout.c — MinAtar Breakout, from ../shared/specs/minatar.md §2.
 *
 * A paddle in row 9, a ball moving diagonally, three rows of bricks. The only
 * random draw is the ball's starting side at reset; there is no ramping.
 */
#include <string.h>

#include "games.h"

enum {
    CHANNELS = 4, /* 0 paddle, 1 ball, 2 trail, 3 brick */
    FULL_ROW = 0x3FF,
};

static const int8_t dir_dx[4] = {-1, +1, +1, -1};
static const int8_t dir_dy[4] = {-1, -1, +1, +1};

/* The three direction maps of the spec: H swaps 0<->1 and 2<->3 (horizontal
 * mirror), V swaps 0<->3 and 1<->2 (vertical mirror), R swaps 0<->2 and 1<->3
 * (reversal). */
static int8_t mirror_h(int8_t d) { return (int8_t)(d ^ 1); }
static int8_t mirror_v(int8_t d) { return (int8_t)(3 - d); }
static int8_t reverse(int8_t d) { return (int8_t)(d ^ 2); }

static void fill_bricks(tsr_breakout_state *s)
{
    s->bricks[1] = s->bricks[2] = s->bricks[3] = FULL_ROW;
}

static bool brick_at(const tsr_breakout_state *s, int row, int col)
{
    return (s->bricks[row] >> col) & 1;
}

static bool no_bricks_left(const tsr_breakout_state *s)
{
    uint16_t any = 0;
    for (int r = 0; r < TSR_MINATAR_SIZE; r++) any |= s->bricks[r];
    return any == 0;
}

static void reset(tsr_env *env)
{
    tsr_breakout_state *s = &env->state.breakout;
    memset(s, 0, sizeof *s);
    s->ball_y = 3;
    if (tsr_rng_below(&env->rng, 2) == 0) {
        s->ball_x = 0;
        s->dir = TSR_BREAKOUT_DOWN_RIGHT;
    } else {
        s->ball_x = 9;
        s->dir = TSR_BREAKOUT_DOWN_LEFT;
    }
    s->paddle_x = 4;
    fill_bricks(s);
    s->strike = false;
    s->last_x = s->ball_x;
    s->last_y = s->ball_y;
    s->terminal = false;
}

static tsr_env_game_result step(tsr_env *env, int action)
{
    tsr_breakout_state *s = &env->state.breakout;
    if (s->terminal) return (tsr_env_game_result){0.0f, true};
    float reward = 0.0f;

    if (action == TSR_ENV_ACTION_LEFT && s->paddle_x > 0) s->paddle_x--;
    if (action == TSR_ENV_ACTION_RIGHT && s->paddle_x < 9) s->paddle_x++;

    s->last_x = s->ball_x;
    s->last_y = s->ball_y;
    int nx = s->ball_x + dir_dx[s->dir];
    int ny = s->ball_y + dir_dy[s->dir];

    bool hit = false;
    if (nx < 0 || nx > 9) {
        nx = nx < 0 ? 0 : 9;
        s->dir = mirror_h(s->dir);
    }
    if (ny < 0) {
        ny = 0;
        s->dir = mirror_v(s->dir);
    } else if (brick_at(s, ny, nx)) {
        /* A second touch on the very next step enters the brick's cell
         * without breaking it and keeps the direction. */
        hit = true;
        if (!s->strike) {
            reward += 1.0f;
            s->strike = true;
            s->bricks[ny] &= (uint16_t)~(1u << nx);
            ny = s->last_y;
            s->dir = mirror_v(s->dir);
        }
    } else if (ny == 9) {
        if (no_bricks_left(s)) fill_bricks(s);
        if (s->ball_x == s->paddle_x) {
            s->dir = mirror_v(s->dir);
            ny = s->last_y;
        } else if (nx == s->paddle_x) {
            s->dir = reverse(s->dir); /* corner hit */
            ny = s->last_y;
        } else {
            s->terminal = true;
        }
    }
    if (!hit) s->strike = false;

    s->ball_x = (int8_t)nx;
    s->ball_y = (int8_t)ny;
    return (tsr_env_game_result){reward, s->terminal};
}

static bool is_terminal(const tsr_env *env) { return env->state.breakout.terminal; }

static void observe(const tsr_env *env, void *out)
{
    const tsr_breakout_state *s = &env->state.breakout;
    uint8_t *obs = out;
    tsr_minatar_clear(obs, CHANNELS);
    tsr_minatar_set(obs, CHANNELS, 9, s->paddle_x, 0);
    tsr_minatar_set(obs, CHANNELS, s->ball_y, s->ball_x, 1);
    tsr_minatar_set(obs, CHANNELS, s->last_y, s->last_x, 2);
    for (int r = 0; r < TSR_MINATAR_SIZE; r++)
        if (s->bricks[r]) tsr_minatar_draw_row(obs, CHANNELS, r, s->bricks[r], 3);
}

static const char *check_state(const tsr_env *env)
{
    const tsr_breakout_state *s = &env->state.breakout;
    if (s->paddle_x < 0 || s->paddle_x > 9) return "paddle outside columns 0..9";
    if (!tsr_minatar_in_grid(s->ball_y, s->ball_x) || !tsr_minatar_in_grid(s->last_y, s->last_x))
        return "ball outside the grid";
    if (s->dir < 0 || s->dir > 3) return "ball direction outside 0..3";
    for (int r = 0; r < TSR_MINATAR_SIZE; r++)
        if (s->bricks[r] & ~FULL_ROW) return "brick outside columns 0..9";
    return NULL;
}

static const int8_t minimal_actions[] = {0, 1, 3};

const tsr_env_game_rules tsr_breakout_rules = {
    .name = "minatar/breakout",
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
