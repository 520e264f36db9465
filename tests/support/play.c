/* play.c — see play.h. */
#include "support/play.h"

#include <criterion/criterion.h>

#include "tessera/rng.h"

tsr_test_random_play tsr_test_play_randomly(tsr_env *env, uint64_t seed, int episodes)
{
    cr_assert_gt(episodes, 0);
    int num_actions = tsr_env_get_spec(env).num_actions;
    cr_assert_gt(num_actions, 0, "random play needs a discrete action set");
    tsr_rng policy;
    tsr_rng_init(&policy, seed, TSR_RNG_STREAM_EXPLORATION);
    tsr_test_random_play play = {.min_length = INT64_MAX, .max_length = 0};
    double returns = 0, lengths = 0;
    for (int e = 0; e < episodes; e++) {
        tsr_env_step_result r;
        do {
            r = tsr_env_step(env, (int)tsr_rng_below(&policy, (uint64_t)num_actions));
            cr_assert_lt(env->episode_length, 100000, "an episode that never ends");
        } while (!r.terminated && !r.truncated);
        int64_t length = env->episode_length;
        returns += env->episode_return;
        lengths += (double)length;
        play.min_length = length < play.min_length ? length : play.min_length;
        play.max_length = length > play.max_length ? length : play.max_length;
        play.return_not_length += env->episode_return != (double)length;
        tsr_env_reset(env);
    }
    play.mean_return = returns / episodes;
    play.mean_length = lengths / episodes;
    return play;
}
