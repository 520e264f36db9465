/* continuous.c — continuous actions after CALE (components.md §4).
 *
 * (r, theta, fire) is thresholded into one of ALE's 18 joystick events, as
 * ale-py does, and the event is then mapped onto the game's own actions.
 * MinAtar has no diagonals and no move-and-fire, so an event keeps only the
 * components the game uses (read off its minimal action set) and, if more than
 * one remains, the first of horizontal, vertical, fire:
 *   horizontal -> left / right, else vertical -> up / down, else fire, else no-op.
 * CartPole uses the horizontal component only; with no horizontal component
 * it coasts (no force), an action the discrete set does not have.
 * envs/README.md tabulates the result for every game.
 */
#include <math.h>

#include "games.h"

/* (horizontal, vertical, fire) of each event, ale-py's numbering; vertical
 * +1 is up. */
static const int8_t event_horizontal[TSR_JOYSTICK_COUNT] = {
    0, 0, 0, +1, -1, 0, +1, -1, +1, -1, 0, +1, -1, 0, +1, -1, +1, -1,
};
static const int8_t event_vertical[TSR_JOYSTICK_COUNT] = {
    0, 0, +1, 0, 0, -1, +1, +1, -1, -1, +1, 0, 0, -1, +1, +1, -1, -1,
};
static const bool event_fire[TSR_JOYSTICK_COUNT] = {
    0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* Event for (horizontal, vertical) in {-1, 0, 1}^2 without fire: [v + 1][h + 1]. */
static const tsr_joystick_event stick_event[3][3] = {
    {TSR_JOYSTICK_DOWNLEFT, TSR_JOYSTICK_DOWN, TSR_JOYSTICK_DOWNRIGHT},
    {TSR_JOYSTICK_LEFT, TSR_JOYSTICK_NOOP, TSR_JOYSTICK_RIGHT},
    {TSR_JOYSTICK_UPLEFT, TSR_JOYSTICK_UP, TSR_JOYSTICK_UPRIGHT},
};
/* The same with fire held. */
static const tsr_joystick_event stick_fire_event[3][3] = {
    {TSR_JOYSTICK_DOWNLEFTFIRE, TSR_JOYSTICK_DOWNFIRE, TSR_JOYSTICK_DOWNRIGHTFIRE},
    {TSR_JOYSTICK_LEFTFIRE, TSR_JOYSTICK_FIRE, TSR_JOYSTICK_RIGHTFIRE},
    {TSR_JOYSTICK_UPLEFTFIRE, TSR_JOYSTICK_UPFIRE, TSR_JOYSTICK_UPRIGHTFIRE},
};

/* +1 above t, -1 below -t (below +t in ale-py 0.10-0.11's asymmetric form),
 * else 0 (NaN included: every comparison with it is false). */
static int threshold_axis(float value, float t, bool asymmetric)
{
    if (value > t) return 1;
    if (value < (asymmetric ? t : -t)) return -1;
    return 0;
}

/* ale-py's formula on the raw action, in float32 as its float32 arrays
 * compute it: nothing is clamped, so an angle outside [-pi, pi] wraps (it
 * only enters cos and sin), a negative r points the other way, and NaN
 * components count as centred / not fired, all as CALE does. */
tsr_joystick_event tsr_env_joystick_event(const float action[3], double threshold,
                                          bool asymmetric)
{
    const float t = (float)threshold;
    const float r = action[0], theta = action[1];
    int h = threshold_axis(r * cosf(theta), t, asymmetric);
    int v = threshold_axis(r * sinf(theta), t, asymmetric);
    return action[2] > t ? stick_fire_event[v + 1][h + 1] : stick_event[v + 1][h + 1];
}

int tsr_env_joystick_action(tsr_env_game game, tsr_joystick_event event)
{
    TSR_ASSERT_MSG((unsigned)event < TSR_JOYSTICK_COUNT, "joystick event %d", (int)event);
    const tsr_env_game_rules *rules = tsr_env_game_rules_of(game);
    const int h = event_horizontal[event], v = event_vertical[event];

    if (game == TSR_ENV_GAME_CARTPOLE) return h > 0 ? 1 : h < 0 ? 0 : TSR_CARTPOLE_ACTION_COAST;

    bool uses_horizontal = false, uses_vertical = false, uses_fire = false;
    for (int i = 0; i < rules->num_minimal_actions; i++) {
        int a = rules->minimal_actions[i];
        uses_horizontal |= a == TSR_ENV_ACTION_LEFT || a == TSR_ENV_ACTION_RIGHT;
        uses_vertical |= a == TSR_ENV_ACTION_UP || a == TSR_ENV_ACTION_DOWN;
        uses_fire |= a == TSR_ENV_ACTION_FIRE;
    }
    if (uses_horizontal && h != 0) return h > 0 ? TSR_ENV_ACTION_RIGHT : TSR_ENV_ACTION_LEFT;
    if (uses_vertical && v != 0) return v > 0 ? TSR_ENV_ACTION_UP : TSR_ENV_ACTION_DOWN;
    if (uses_fire && event_fire[event]) return TSR_ENV_ACTION_FIRE;
    return TSR_ENV_ACTION_NOOP;
}
