/* play.h — an environment played by a uniform random policy, for the tests
 * that check a game's random-play statistics against the recorded figures. */
#ifndef TESSERA_TEST_PLAY_H
#define TESSERA_TEST_PLAY_H

#include <stdint.h>

#include "tessera/env.h"

typedef struct tsr_test_random_play {
    double mean_return, mean_length;
    int64_t min_length, max_length;
    /* Episodes whose return differs from their length (CartPole's is +1 a step). */
    int return_not_length;
} tsr_test_random_play;

/* Plays `episodes` episodes of `env` (to termination or truncation, resetting
 * after each) with actions drawn uniformly from its action set by the
 * exploration stream of `seed`. Fails the test if an episode reaches 100,000
 * steps. */
tsr_test_random_play tsr_test_play_randomly(tsr_env *env, uint64_t seed, int episodes);

#endif
