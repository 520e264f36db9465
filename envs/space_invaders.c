/* space_invaders.c — MinAtar Space Invaders, from ../shared/specs/minatar.md §5.
 *
 * A cannon in row 9 shoots at a 4 x 6 block of aliens that marches sideways
 * and steps down at the edges. The game draws no random numbers. Aliens and
 * both kinds of bullets are bit rows: bit c of row r is the cell (r, c).
 */
#include <string.h>

#include "games.h"

enum {
    CHANNELS = 6, /* 0 cannon, 1 aliens, 2 aliens marching left, 3 ... right,
                   * 4 player bullets, 5 enemy bullets */
    PLAYER_SHOT_PERIOD = 5,
    INIT_MOVE_INTERVAL = 12,
    MIN_MOVE_INTERVAL = 6,
    ALIEN_SHOT_PERIOD = 10,
    FULL_ROW = 0x3FF,
    BLOCK_ROW = 0x0FC, /* columns 2..7 */
    COLUMN_0 = 0x001,
    COLUMN_9 = 0x200,
};

static void spawn_aliens(tsr_space_invaders_state *s)
{
    for (int r = 0; r < 4; r++) s->aliens[r] = BLOCK_ROW;
}

static void reset(tsr_env *env)
{
    tsr_space_invaders_state *s = &env->state.space_invaders;
    memset(s, 0, sizeof *s);
    s->cannon_x = 5;
    spawn_aliens(s);
    s->alien_dir = -1;
    s->interval = INIT_MOVE_INTERVAL;
    s->alien_move_cd = INIT_MOVE_INTERVAL;
    s->alien_shot_cd = ALIEN_SHOT_PERIOD;
    s->shot_cd = 0;
    s->ramp_level = 0;
    s->terminal = false;
}

static bool bit(uint16_t row, int col) { return (row >> col) & 1; }

static int count_aliens(const tsr_space_invaders_state *s)
{
    int n = 0;
    for (int r = 0; r < TSR_MINATAR_SIZE; r++) n += tsr_popcount16(s->aliens[r]);
    return n;
}

static uint16_t alien_columns(const tsr_space_invaders_state *s)
{
    uint16_t any = 0;
    for (int r = 0; r < TSR_MINATAR_SIZE; r++) any |= s->aliens[r];
    return any;
}

/* Shifts the block one column with wrap-around (the reference rolls the
 * map; the edge check before every sideways move means nothing wraps). */
static void march_sideways(tsr_space_invaders_state *s)
{
    for (int r = 0; r < TSR_MINATAR_SIZE; r++) {
        unsigned row = s->aliens[r];
        row = s->alien_dir > 0 ? (row << 1) | (row >> 9) : (row >> 1) | ((row & 1) << 9);
        s->aliens[r] = (uint16_t)(row & FULL_ROW);
    }
}

/* Moves every row of a map down one (row r takes row r - 1) and puts `top`
 * in row 0. Written as a loop over a copy: a 9-element memmove is a library
 * call that costs more than the work. */
static void shift_down(uint16_t rows[10], uint16_t top)
{
    uint16_t old[10];
    memcpy(old, rows, sizeof old);
    for (int r = 1; r < TSR_MINATAR_SIZE; r++) rows[r] = old[r - 1];
    rows[0] = top;
}

/* Moves every row of a map up one; row 9 becomes empty. */
static void shift_up(uint16_t rows[10])
{
    uint16_t old[10];
    memcpy(old, rows, sizeof old);
    for (int r = 0; r < TSR_MINATAR_SIZE - 1; r++) rows[r] = old[r + 1];
    rows[9] = 0;
}

/* Shifts the block down one row; row 9 wraps into row 0 (seen only on the
 * step that ends the game). */
static void march_down(tsr_space_invaders_state *s) { shift_down(s->aliens, s->aliens[9]); }

/* The alien nearest the cannon's column shoots: columns in order of distance
 * (ties to the smaller column), the lowest alien of the first non-empty one.
 * The bullet starts on the shooter's own cell. */
static void alien_shoot(tsr_space_invaders_state *s)
{
    uint16_t columns = alien_columns(s);
    /* k = 0, 1, 2, 3, 4, ... visits pos, pos-1, pos+1, pos-2, pos+2, ... */
    for (int k = 0; k < 2 * TSR_MINATAR_SIZE; k++) {
        int col = s->cannon_x + (k % 2 ? -(k + 1) / 2 : k / 2);
        if (col < 0 || col > 9 || !bit(columns, col)) continue;
        for (int r = TSR_MINATAR_SIZE - 1; r >= 0; r--) {
            if (bit(s->aliens[r], col)) {
                s->enemy_bullets[r] |= (uint16_t)(1u << col);
                return;
            }
        }
    }
}

static tsr_env_game_result step(tsr_env *env, int action)
{
    tsr_space_invaders_state *s = &env->state.space_invaders;
    if (s->terminal) return (tsr_env_game_result){0.0f, true};
    float reward = 0.0f;

    /* The cannon fires or moves, never both; fire in the cooldown is a no-op. */
    if (action == TSR_ENV_ACTION_FIRE) {
        if (s->shot_cd == 0) {
            s->player_bullets[9] |= (uint16_t)(1u << s->cannon_x);
            s->shot_cd = PLAYER_SHOT_PERIOD;
        }
    } else if (action == TSR_ENV_ACTION_LEFT) {
        if (s->cannon_x > 0) s->cannon_x--;
    } else if (action == TSR_ENV_ACTION_RIGHT) {
        if (s->cannon_x < 9) s->cannon_x++;
    }
    const uint16_t cannon = (uint16_t)(1u << s->cannon_x);

    /* Player bullets rise a row (row 0's leave); enemy bullets fall a row
     * (row 9's leave). */
    shift_up(s->player_bullets);
    shift_down(s->enemy_bullets, 0);
    if (s->enemy_bullets[9] & cannon) s->terminal = true;
    if (s->aliens[9] & cannon) s->terminal = true;

    if (s->alien_move_cd == 0) {
        int n = count_aliens(s);
        s->alien_move_cd = n < s->interval ? n : s->interval;
        uint16_t columns = alien_columns(s);
        bool at_edge = s->alien_dir < 0 ? (columns & COLUMN_0) : (columns & COLUMN_9);
        if (at_edge) {
            s->alien_dir = (int8_t)-s->alien_dir;
            if (s->aliens[9]) s->terminal = true;
            march_down(s);
        } else {
            march_sideways(s);
        }
        if (s->aliens[9] & cannon) s->terminal = true;
    }

    if (s->alien_shot_cd == 0) {
        s->alien_shot_cd = ALIEN_SHOT_PERIOD;
        alien_shoot(s);
    }

    for (int r = 0; r < TSR_MINATAR_SIZE; r++) {
        uint16_t kills = s->aliens[r] & s->player_bullets[r];
        if (!kills) continue;
        reward += (float)tsr_popcount16(kills);
        s->aliens[r] &= (uint16_t)~kills;
        s->player_bullets[r] &= (uint16_t)~kills;
    }

    if (s->shot_cd > 0) s->shot_cd--;
    s->alien_move_cd--;
    s->alien_shot_cd--;

    /* A cleared wave comes back; direction, countdowns and bullets carry on. */
    if (alien_columns(s) == 0) {
        if (env->options.difficulty_ramping && s->interval > MIN_MOVE_INTERVAL) {
            s->interval--;
            s->ramp_level++;
        }
        spawn_aliens(s);
    }
    return (tsr_env_game_result){reward, s->terminal};
}

static bool is_terminal(const tsr_env *env) { return env->state.space_invaders.terminal; }

static void draw_rows(uint8_t *obs, const uint16_t *rows, int channel)
{
    for (int r = 0; r < TSR_MINATAR_SIZE; r++)
        if (rows[r]) tsr_minatar_draw_row(obs, CHANNELS, r, rows[r], channel);
}

static void observe(const tsr_env *env, void *out)
{
    const tsr_space_invaders_state *s = &env->state.space_invaders;
    uint8_t *obs = out;
    tsr_minatar_clear(obs, CHANNELS);
    tsr_minatar_set(obs, CHANNELS, 9, s->cannon_x, 0);
    draw_rows(obs, s->aliens, 1);
    draw_rows(obs, s->aliens, s->alien_dir < 0 ? 2 : 3);
    draw_rows(obs, s->player_bullets, 4);
    draw_rows(obs, s->enemy_bullets, 5);
}

static const char *check_state(const tsr_env *env)
{
    const tsr_space_invaders_state *s = &env->state.space_invaders;
    if (s->cannon_x < 0 || s->cannon_x > 9) return "cannon outside columns 0..9";
    if (s->alien_dir != -1 && s->alien_dir != 1) return "alien direction is not -1 or +1";
    for (int r = 0; r < TSR_MINATAR_SIZE; r++)
        if ((s->aliens[r] | s->player_bullets[r] | s->enemy_bullets[r]) & ~FULL_ROW)
            return "an object outside columns 0..9";
    if (s->interval < 1) return "alien move interval below 1";
    return NULL;
}

static const int8_t minimal_actions[] = {0, 1, 3, 5};

const tsr_env_game_rules tsr_space_invaders_rules = {
    .name = "minatar/space_invaders",
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
