/* env.h — built-in environments: the five MinAtar games, CartPole, a
 * continuous-action (CALE) mode for each, and a batched vector env.
 *
 * An environment is plain data. tsr_env holds everything that decides what
 * happens next — the options, the game state, the dynamics RNG stream
 * (TSR_RNG_STREAM_ENV), the sticky-action RNG stream (TSR_RNG_STREAM_STICKY),
 * the previously executed action and the step counters — and no pointers, so
 * copying the struct saves it and copying it back restores it
 * (tsr_env_state_bytes / tsr_env_state_restore for checkpoints).
 *
 * Observations:
 *   MinAtar   (H, W, C) = (10, 10, C) uint8, channels-last, values 0 or 1;
 *             C = 4 asterix, 4 breakout, 7 freeway, 10 seaquest, 6 space_invaders.
 *   CartPole  (4) float32: cart position, cart velocity, pole angle, pole
 *             angular velocity.
 * Read the shape, dtype and action count from tsr_env_get_spec.
 *
 * Actions:
 *   Discrete mode: an index into the game's action set — MinAtar's full set of
 *   6 (0 no-op, 1 left, 2 up, 3 right, 4 down, 5 fire) or, with
 *   options.minimal_action_set, the game's minimal set; CartPole's 2
 *   (0 push left, 1 push right).
 *   Continuous mode (options.continuous): (r, theta, fire) in
 *   [0, 1] x [-pi, pi] x [0, 1], thresholded into a joystick event as CALE does
 *   and mapped onto the game's actions (envs/README.md has the table).
 *
 * Sticky actions follow MinAtar: every step draws one uniform u from the
 * sticky stream; if u < sticky_action_prob the previously executed action runs
 * instead of the requested one. The previous action starts at no-op when the
 * env is initialised and is kept across episodes.
 */
#ifndef TESSERA_ENV_H
#define TESSERA_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/rng.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_env_game {
    TSR_ENV_GAME_ASTERIX = 0,
    TSR_ENV_GAME_BREAKOUT,
    TSR_ENV_GAME_FREEWAY,
    TSR_ENV_GAME_SEAQUEST,
    TSR_ENV_GAME_SPACE_INVADERS,
    TSR_ENV_GAME_CARTPOLE,
    TSR_ENV_GAME_COUNT,
} tsr_env_game;

/* MinAtar's full action set. */
typedef enum tsr_env_action {
    TSR_ENV_ACTION_NOOP = 0,
    TSR_ENV_ACTION_LEFT = 1,
    TSR_ENV_ACTION_UP = 2,
    TSR_ENV_ACTION_RIGHT = 3,
    TSR_ENV_ACTION_DOWN = 4,
    TSR_ENV_ACTION_FIRE = 5,
} tsr_env_action;

enum {
    TSR_MINATAR_SIZE = 10,          /* the grid is 10 x 10 */
    TSR_MINATAR_NUM_ACTIONS = 6,
    TSR_CARTPOLE_NUM_ACTIONS = 2,
    TSR_CARTPOLE_OBS_SIZE = 4,
    TSR_ENV_CONTINUOUS_DIM = 3,     /* (r, theta, fire) */
    TSR_ENV_MAX_OBS_DIMS = 3,
};

/* ------------------------------------------------------------------ options */

typedef struct tsr_env_options {
    double sticky_action_prob;     /* [0, 1]; MinAtar default 0.1, CartPole 0 */
    bool difficulty_ramping;       /* asterix, seaquest, space_invaders; default on */
    bool minimal_action_set;       /* discrete mode: the game's minimal set */
    bool continuous;               /* (r, theta, fire) actions instead of indices */
    double continuous_threshold;   /* [0, 1); CALE default 0.5 */
    /* ale-py 0.10-0.11 compatibility: the negative side used x < +t (and
     * y < +t), so a centred stick reads as down-left. Off by default. */
    bool continuous_asymmetric;
    /* Truncate an episode after max_episode_steps steps. CartPole: on, 500.
     * MinAtar: off, as in the reference (Freeway's own 2,500-step end is a
     * termination, not a truncation). */
    bool time_limit;
    int64_t max_episode_steps;     /* >= 1 when time_limit is on */
} tsr_env_options;

/* The reference defaults for `game`. */
tsr_env_options tsr_env_default_options(tsr_env_game game);

/* TSR_STATUS_INVALID_ARGUMENT, naming the option and its valid range, unless
 * every value is valid for `game`. */
tsr_status tsr_env_check_options(tsr_env_game game, const tsr_env_options *options,
                                 tsr_error *err);

/* ------------------------------------------------------------- game names */

/* "minatar/asterix", ... , "classic/cartpole". */
const char *tsr_env_game_name(tsr_env_game game);
/* Finds a game by name; an unknown name is TSR_STATUS_INVALID_ARGUMENT with a
 * message listing every valid name. */
tsr_status tsr_env_find_game(const char *name, tsr_env_game *game, tsr_error *err);

/* ------------------------------------------------------------ game states
 * Public so that tests, model-based methods and debuggers can read and set a
 * state directly. Coordinates: row (y) 0..9 top to bottom, col (x) 0..9 left
 * to right. Field meanings follow ../shared/specs/minatar.md. */

typedef struct tsr_asterix_lane {
    int8_t x;
    bool occupied;
    bool moving_right;
    bool is_gold;
} tsr_asterix_lane;

typedef struct tsr_asterix_state {
    int8_t player_x, player_y;
    tsr_asterix_lane lanes[8]; /* lane i lives in row i + 1 */
    int32_t spawn_period, spawn_cd;
    int32_t move_period, move_cd;
    int32_t ramp_cd, ramp_level;
    bool terminal;
} tsr_asterix_state;

/* Breakout ball directions (y grows downward). */
typedef enum tsr_breakout_dir {
    TSR_BREAKOUT_UP_LEFT = 0,    /* (-1, -1) */
    TSR_BREAKOUT_UP_RIGHT = 1,   /* (+1, -1) */
    TSR_BREAKOUT_DOWN_RIGHT = 2, /* (+1, +1) */
    TSR_BREAKOUT_DOWN_LEFT = 3,  /* (-1, +1) */
} tsr_breakout_dir;

typedef struct tsr_breakout_state {
    uint16_t bricks[10];      /* bit c of bricks[r]: a brick at (r, c) */
    int8_t paddle_x;          /* the paddle lives in row 9 */
    int8_t ball_x, ball_y;
    int8_t last_x, last_y;    /* the ball's previous cell (the trail) */
    int8_t dir;               /* tsr_breakout_dir */
    bool strike;              /* the ball touched a brick on the previous step */
    bool terminal;
} tsr_breakout_state;

typedef struct tsr_freeway_car {
    int8_t x;
    int8_t cd;    /* moves when cd == 0, then reloads to |speed| */
    int8_t speed; /* signed: +-1..+-5 (0 only on an exact 0.5 draw) */
} tsr_freeway_car;

typedef struct tsr_freeway_state {
    tsr_freeway_car cars[8]; /* car i drives in row i + 1 */
    int8_t chicken_y;        /* the chicken's column is 4 */
    int8_t cooldown;
    int32_t timer;
    bool terminal;
} tsr_freeway_state;

/* One Seaquest object. Bullets use (x, y, dir); fish and divers add move_cd;
 * enemy subs add shot_cd. x may be -1 or 10 for a bullet fired by a sub that
 * has just left the grid (it is deleted on its first move). */
typedef struct tsr_seaquest_object {
    int8_t x, y;
    int8_t dir; /* +1 right, -1 left */
    int8_t move_cd;
    int8_t shot_cd;
} tsr_seaquest_object;

/* List capacities. Enemies: an enemy lives at most 10*move_period + 9 steps and
 * spawns come at most every spawn period, which bounds each list by 30 at any
 * ramp level; an enemy sub has at most one bullet in flight (a bullet lives
 * <= 10 steps, a sub fires every 11) plus one final shot after it dies.
 * Player bullets: one per 5 steps, each lives <= 10 steps. Divers: one per 30
 * steps, each lives <= 60 steps. Overflow aborts (it would be a bug). */
enum {
    TSR_SEAQUEST_MAX_PLAYER_BULLETS = 4,
    TSR_SEAQUEST_MAX_ENEMIES = 48,
    TSR_SEAQUEST_MAX_ENEMY_BULLETS = 64,
    TSR_SEAQUEST_MAX_DIVERS = 4,
};

/* Lists are in order of creation (index 0 oldest). */
typedef struct tsr_seaquest_state {
    tsr_seaquest_object player_bullets[TSR_SEAQUEST_MAX_PLAYER_BULLETS];
    tsr_seaquest_object enemy_bullets[TSR_SEAQUEST_MAX_ENEMY_BULLETS];
    tsr_seaquest_object fish[TSR_SEAQUEST_MAX_ENEMIES];
    tsr_seaquest_object subs[TSR_SEAQUEST_MAX_ENEMIES];
    tsr_seaquest_object divers[TSR_SEAQUEST_MAX_DIVERS];
    int8_t num_player_bullets, num_enemy_bullets, num_fish, num_subs, num_divers;
    int8_t sub_x, sub_y;
    bool facing_left;
    int32_t oxygen;
    /* Every surfacing decrements it, so it is -1 after a full-crew surfacing
     * and keeps falling with each later one, as in the reference. */
    int32_t diver_count;
    int32_t enemy_spawn_period, enemy_spawn_cd;
    int32_t diver_spawn_cd;
    int32_t move_period;
    int32_t ramp_level;
    int32_t shot_cd;
    bool surfaced;
    bool terminal;
} tsr_seaquest_state;

typedef struct tsr_space_invaders_state {
    uint16_t aliens[10];          /* bit c of aliens[r]: an alien at (r, c) */
    uint16_t player_bullets[10];
    uint16_t enemy_bullets[10];
    int8_t cannon_x;              /* the cannon lives in row 9 */
    int8_t alien_dir;             /* -1 left, +1 right */
    int32_t interval;             /* alien move interval, 12 down to 6 */
    int32_t alien_move_cd, alien_shot_cd, shot_cd;
    int32_t ramp_level;
    bool terminal;
} tsr_space_invaders_state;

typedef struct tsr_cartpole_state {
    double x, x_dot, theta, theta_dot;
    bool terminal;
} tsr_cartpole_state;

/* ------------------------------------------------------------ environment */

typedef struct tsr_env {
    uint32_t layout;          /* TSR_ENV_LAYOUT; checked on restore */
    tsr_env_game game;
    tsr_env_options options;
    tsr_rng rng;              /* game dynamics: TSR_RNG_STREAM_ENV */
    tsr_rng sticky_rng;       /* sticky actions: TSR_RNG_STREAM_STICKY */
    int32_t previous_action;  /* full-set index of the last executed action */
    int64_t episode_length;   /* steps in the current episode */
    double episode_return;    /* reward summed over the current episode */
    int64_t total_steps;      /* steps since tsr_env_init */
    int64_t total_episodes;   /* tsr_env_reset calls since tsr_env_init */
    union {
        tsr_asterix_state asterix;
        tsr_breakout_state breakout;
        tsr_freeway_state freeway;
        tsr_seaquest_state seaquest;
        tsr_space_invaders_state space_invaders;
        tsr_cartpole_state cartpole;
    } state;
} tsr_env;

/* Changes whenever tsr_env's layout changes, so old state bytes are refused. */
#define TSR_ENV_LAYOUT 0x544E5601u

typedef struct tsr_env_spec {
    const char *name;
    tsr_dtype obs_dtype;                      /* U8 (MinAtar) or F32 (CartPole) */
    int obs_ndim;
    int64_t obs_shape[TSR_ENV_MAX_OBS_DIMS];  /* (10, 10, C) or (4) */
    size_t obs_bytes;                         /* bytes of one observation */
    bool continuous;
    int num_actions;     /* discrete mode: size of the action set in use; else 0 */
    int action_dim;      /* continuous mode: 3; else 0 */
} tsr_env_spec;

/* Initialises `env` for `game` (options NULL: the defaults), seeds both RNG
 * streams from `seed` and starts the first episode. Invalid options are
 * TSR_STATUS_INVALID_ARGUMENT and leave `env` untouched. */
tsr_status tsr_env_init(tsr_env *env, tsr_env_game game, const tsr_env_options *options,
                        uint64_t seed, tsr_error *err);

tsr_env_spec tsr_env_get_spec(const tsr_env *env);

/* Starts a new episode. The RNG streams and the previous action carry on. */
void tsr_env_reset(tsr_env *env);

typedef struct tsr_env_step_result {
    float reward;
    bool terminated; /* the game is over (it returns 0 and stays over until reset) */
    bool truncated;  /* the time limit was reached (options.time_limit) */
} tsr_env_step_result;

/* One step in discrete mode. `action` indexes the action set in use
 * (0 <= action < spec.num_actions); anything else aborts. */
tsr_env_step_result tsr_env_step(tsr_env *env, int action);
/* One step in continuous mode: action = (r, theta, fire), nominally in
 * [0, 1] x [-pi, pi] x [0, 1]; values outside follow CALE's formula as they
 * stand (tsr_env_joystick_event). */
tsr_env_step_result tsr_env_step_continuous(tsr_env *env, const float action[3]);

/* Writes the current observation (spec.obs_bytes bytes) to `obs`. */
void tsr_env_observe(const tsr_env *env, void *obs);

/* Name of action `action` of the set in use ("noop", "left", ...). */
const char *tsr_env_action_name(const tsr_env *env, int action);

/* Saving and restoring: the state is the tsr_env struct itself. */
size_t tsr_env_state_size(const tsr_env *env);
const void *tsr_env_state_bytes(const tsr_env *env);
/* Copies `size` bytes saved from an env into `env`. Bytes of another size or
 * layout, or holding an unknown game or invalid options, are
 * TSR_STATUS_FORMAT and leave `env` untouched. */
tsr_status tsr_env_state_restore(tsr_env *env, const void *bytes, size_t size, tsr_error *err);

/* -------------------------------------------------------- continuous mode */

/* ALE's 18 joystick events, numbered as in ale-py. */
typedef enum tsr_joystick_event {
    TSR_JOYSTICK_NOOP = 0, TSR_JOYSTICK_FIRE, TSR_JOYSTICK_UP, TSR_JOYSTICK_RIGHT,
    TSR_JOYSTICK_LEFT, TSR_JOYSTICK_DOWN, TSR_JOYSTICK_UPRIGHT, TSR_JOYSTICK_UPLEFT,
    TSR_JOYSTICK_DOWNRIGHT, TSR_JOYSTICK_DOWNLEFT, TSR_JOYSTICK_UPFIRE,
    TSR_JOYSTICK_RIGHTFIRE, TSR_JOYSTICK_LEFTFIRE, TSR_JOYSTICK_DOWNFIRE,
    TSR_JOYSTICK_UPRIGHTFIRE, TSR_JOYSTICK_UPLEFTFIRE, TSR_JOYSTICK_DOWNRIGHTFIRE,
    TSR_JOYSTICK_DOWNLEFTFIRE,
    TSR_JOYSTICK_COUNT,
} tsr_joystick_event;

/* CALE's thresholding: x = r cos(theta), y = r sin(theta); horizontal +1 if
 * x > t, -1 if x < -t (x < +t when `asymmetric`), else 0; likewise vertical
 * (up is +1); fire if f > t. In float32, on the raw action as ale-py: no
 * clamping (angles wrap, a negative r points the other way), and a NaN
 * component compares false everywhere (centred, not fired). */
tsr_joystick_event tsr_env_joystick_event(const float action[3], double threshold,
                                          bool asymmetric);
/* The action (full-set index) that joystick `event` runs in `game`. */
int tsr_env_joystick_action(tsr_env_game game, tsr_joystick_event event);

/* -------------------------------------------------------------- vector env */

/* N copies of one game stepped together with automatic reset. Copy i is
 * exactly the single env initialised with tsr_vec_env_copy_seed(seed, i):
 * copy 0 the seed itself, the others seeds drawn from it, so vector envs of
 * neighbouring seeds share no copy (with seed + i, copy 1 of seed s was copy
 * 0 of seed s + 1). The copies are one contiguous array of plain structs:
 * its bytes are the vector env's state. */
uint64_t tsr_vec_env_copy_seed(uint64_t seed, int copy);

typedef struct tsr_vec_env {
    tsr_env *envs;  /* (N) */
    int num_envs;
    tsr_env_spec spec;
} tsr_vec_env;

/* Where a step writes. All arrays are (N, ...) and owned by the caller. obs,
 * reward, terminated and truncated are required. After an episode ends the env
 * is reset in the same step: obs holds the new episode's first observation
 * and, when final_obs is not NULL, final_obs holds the ended episode's last
 * one (rows of envs that did not end are left untouched). episode_return and
 * episode_length (may be NULL) are written only where an episode ended. */
typedef struct tsr_vec_env_out {
    void *obs;                /* (N, obs...) */
    float *reward;            /* (N) */
    uint8_t *terminated;      /* (N) */
    uint8_t *truncated;       /* (N) */
    void *final_obs;          /* (N, obs...) or NULL */
    float *episode_return;    /* (N) or NULL */
    int64_t *episode_length;  /* (N) or NULL */
} tsr_vec_env_out;

/* Below this many copies a step runs on the calling thread only. */
enum { TSR_VEC_ENV_PARALLEL_MIN = 64 };

tsr_status tsr_vec_env_new(tsr_vec_env **out, tsr_env_game game, const tsr_env_options *options,
                           int num_envs, uint64_t seed, tsr_error *err);
void tsr_vec_env_free(tsr_vec_env *venv);
/* Starts a new episode in every copy and writes the observations (N, obs...). */
void tsr_vec_env_reset(tsr_vec_env *venv, void *obs);
/* actions: (N) indices (discrete mode). */
void tsr_vec_env_step(tsr_vec_env *venv, const int32_t *actions, const tsr_vec_env_out *out);
/* actions: (N, 3) (continuous mode). */
void tsr_vec_env_step_continuous(tsr_vec_env *venv, const float *actions,
                                 const tsr_vec_env_out *out);
/* Writes every copy's current observation (N, obs...). */
void tsr_vec_env_observe(const tsr_vec_env *venv, void *obs);

size_t tsr_vec_env_state_size(const tsr_vec_env *venv);
const void *tsr_vec_env_state_bytes(const tsr_vec_env *venv);
/* Restores all N copies; the bytes must come from a vector env of the same
 * game and size (TSR_STATUS_FORMAT otherwise, leaving venv untouched). */
tsr_status tsr_vec_env_state_restore(tsr_vec_env *venv, const void *bytes, size_t size,
                                     tsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
