/* cartpole.c — the classic cart-pole (Barto, Sutton & Anderson 1983), with
 * the constants, explicit-Euler integration and failure thresholds of
 * Gymnasium's CartPole-v1. The 500-step limit is a truncation applied by
 * env.c through the default options (time_limit, max_episode_steps = 500).
 */
#include <math.h>
#include <string.h>

#include "games.h"

static const double gravity = 9.8;
static const double cart_mass = 1.0;
static const double pole_mass = 0.1;
static const double half_pole_length = 0.5;
static const double force_magnitude = 10.0;
static const double tau = 0.02;                              /* seconds per step */
static const double theta_threshold = 12.0 * 2.0 * M_PI / 360.0; /* 12 degrees */
static const double x_threshold = 2.4;

static void reset(tsr_env *env)
{
    tsr_cartpole_state *s = &env->state.cartpole;
    memset(s, 0, sizeof *s);
    /* Each of the four state variables uniform on [-0.05, 0.05). */
    s->x = 0.1 * tsr_rng_uniform(&env->rng) - 0.05;
    s->x_dot = 0.1 * tsr_rng_uniform(&env->rng) - 0.05;
    s->theta = 0.1 * tsr_rng_uniform(&env->rng) - 0.05;
    s->theta_dot = 0.1 * tsr_rng_uniform(&env->rng) - 0.05;
    s->terminal = false;
}

/* Actions: 0 push left, 1 push right; TSR_CARTPOLE_ACTION_COAST (continuous
 * mode, centred stick) applies no force. Every step, the failing one
 * included, gives +1. */
static tsr_env_game_result step(tsr_env *env, int action)
{
    tsr_cartpole_state *s = &env->state.cartpole;
    if (s->terminal) return (tsr_env_game_result){0.0f, true};

    const double total_mass = cart_mass + pole_mass;
    const double pole_mass_length = pole_mass * half_pole_length;
    double force = action == 1 ? force_magnitude : action == 0 ? -force_magnitude : 0.0;
    double cos_theta = cos(s->theta), sin_theta = sin(s->theta);
    double temp = (force + pole_mass_length * s->theta_dot * s->theta_dot * sin_theta) / total_mass;
    double theta_acc = (gravity * sin_theta - cos_theta * temp) /
                       (half_pole_length *
                        (4.0 / 3.0 - pole_mass * cos_theta * cos_theta / total_mass));
    double x_acc = temp - pole_mass_length * theta_acc * cos_theta / total_mass;

    s->x += tau * s->x_dot;
    s->x_dot += tau * x_acc;
    s->theta += tau * s->theta_dot;
    s->theta_dot += tau * theta_acc;

    s->terminal = s->x < -x_threshold || s->x > x_threshold || s->theta < -theta_threshold ||
                  s->theta > theta_threshold;
    return (tsr_env_game_result){1.0f, s->terminal};
}

static bool is_terminal(const tsr_env *env) { return env->state.cartpole.terminal; }

static void observe(const tsr_env *env, void *out)
{
    const tsr_cartpole_state *s = &env->state.cartpole;
    float *obs = out;
    obs[0] = (float)s->x;
    obs[1] = (float)s->x_dot;
    obs[2] = (float)s->theta;
    obs[3] = (float)s->theta_dot;
}

static const char *check_state(const tsr_env *env)
{
    const tsr_cartpole_state *s = &env->state.cartpole;
    if (!isfinite(s->x) || !isfinite(s->x_dot) || !isfinite(s->theta) || !isfinite(s->theta_dot))
        return "a state variable is not finite";
    return NULL;
}

static const char *const action_names[TSR_CARTPOLE_NUM_ACTIONS] = {"left", "right"};
static const int8_t minimal_actions[] = {0, 1};

const tsr_env_game_rules tsr_cartpole_rules = {
    .name = "classic/cartpole",
    .obs_dtype = TSR_DTYPE_F32,
    .obs_ndim = 1,
    .obs_shape = {TSR_CARTPOLE_OBS_SIZE},
    .num_actions = TSR_CARTPOLE_NUM_ACTIONS,
    .action_names = action_names,
    .num_minimal_actions = (int)sizeof minimal_actions,
    .minimal_actions = minimal_actions,
    .reset = reset,
    .step = step,
    .is_terminal = is_terminal,
    .observe = observe,
    .check_state = check_state,
};
