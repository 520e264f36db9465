/* games.h — what env.c needs from each game file (library-internal).
 *
 * Each game file defines one tsr_env_game_rules with its name, observation
 * shape, action sets and its functions; env.c keeps them in a table indexed
 * by tsr_env_game and does everything shared (options, sticky actions,
 * counters, time limits, saving) once.
 */
#ifndef TESSERA_ENVS_GAMES_H
#define TESSERA_ENVS_GAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tessera/env.h"

typedef struct tsr_env_game_result {
    float reward;
    bool terminal;
} tsr_env_game_result;

typedef struct tsr_env_game_rules {
    const char *name;
    tsr_dtype obs_dtype;
    int obs_ndim;
    int64_t obs_shape[TSR_ENV_MAX_OBS_DIMS];
    int num_actions;                 /* the full set */
    const char *const *action_names; /* (num_actions) */
    int num_minimal_actions;
    const int8_t *minimal_actions;   /* full-set indices, increasing */
    /* Starts an episode: draws from env->rng only. */
    void (*reset)(tsr_env *env);
    /* One step with `action` a full-set index already resolved for sticky
     * actions. A terminal game returns {0, true} and changes nothing. */
    tsr_env_game_result (*step)(tsr_env *env, int action);
    bool (*is_terminal)(const tsr_env *env);
    /* Writes the observation: memory of obs_shape, overwritten entirely. */
    void (*observe)(const tsr_env *env, void *obs);
    /* NULL if the game state can be stepped and observed safely (coordinates
     * and list lengths in range), else what is wrong. For restored bytes. */
    const char *(*check_state)(const tsr_env *env);
} tsr_env_game_rules;

extern const tsr_env_game_rules tsr_asterix_rules;
extern const tsr_env_game_rules tsr_breakout_rules;
extern const tsr_env_game_rules tsr_freeway_rules;
extern const tsr_env_game_rules tsr_seaquest_rules;
extern const tsr_env_game_rules tsr_space_invaders_rules;
extern const tsr_env_game_rules tsr_cartpole_rules;

/* The rules of `game` (aborts on an id outside the enum). */
const tsr_env_game_rules *tsr_env_game_rules_of(tsr_env_game game);

/* MinAtar's names for its 6 actions. */
extern const char *const tsr_minatar_action_names[TSR_MINATAR_NUM_ACTIONS];

/* CartPole's continuous-mode action that applies no force (outside the
 * discrete set, reachable only from a centred joystick). */
enum { TSR_CARTPOLE_ACTION_COAST = 2 };

/* Sets cell (row, col) of channel `channel` in a (10, 10, C) observation. */
static inline void tsr_minatar_set(uint8_t *obs, int channels, int row, int col, int channel)
{
    obs[(row * TSR_MINATAR_SIZE + col) * channels + channel] = 1;
}

/* Zeroes a (10, 10, C) observation. A memset of a few hundred bytes compiles
 * to `rep stos` under GCC's generic tuning, whose start-up alone costs more
 * than this loop of 16-byte stores (measured: about a third of Breakout's
 * observation time). */
static inline void tsr_minatar_clear(uint8_t *obs, int channels)
{
    const int bytes = TSR_MINATAR_SIZE * TSR_MINATAR_SIZE * channels;
    int i = 0;
    for (; i + 16 <= bytes; i += 16) memset(obs + i, 0, 16);
    memset(obs + i, 0, (size_t)(bytes - i));
}

/* Writes bit c of `bits` (c = 0..9) into cell (row, c) of `channel`: the
 * whole row of that channel, without a branch per set bit. */
static inline void tsr_minatar_draw_row(uint8_t *obs, int channels, int row, unsigned bits,
                                        int channel)
{
    uint8_t *cell = obs + row * TSR_MINATAR_SIZE * channels + channel;
    for (int c = 0; c < TSR_MINATAR_SIZE; c++) cell[c * channels] = (uint8_t)((bits >> c) & 1u);
}

/* Number of set bits of a 16-bit map row (portable: __builtin_popcount is a
 * library call unless the target has POPCNT). */
static inline int tsr_popcount16(unsigned x)
{
    x = x - ((x >> 1) & 0x5555u);
    x = (x & 0x3333u) + ((x >> 2) & 0x3333u);
    x = (x + (x >> 4)) & 0x0F0Fu;
    return (int)((x + (x >> 8)) & 0x1Fu);
}

static inline bool tsr_minatar_in_grid(int row, int col)
{
    return row >= 0 && row < TSR_MINATAR_SIZE && col >= 0 && col < TSR_MINATAR_SIZE;
}

#endif
