/* rng.h — explicit random streams; tessera has no global random state.
 *
 * Generator: xoshiro256** (Blackman & Vigna). A stream is seeded from the pair
 * (seed, stream id) through splitmix64, so every purpose (initialisation,
 * exploration, replay sampling, environment, sticky actions, noisy layers) draws
 * from its own stream and adding draws to one never shifts another. The state is
 * plain data: copying the struct saves it, copying it back restores it.
 */
#ifndef TESSERA_RNG_H
#define TESSERA_RNG_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stream ids used by tessera itself; any other 64-bit value is free to use. */
typedef enum tsr_rng_stream {
    TSR_RNG_STREAM_INIT = 1,        /* parameter initialisation */
    TSR_RNG_STREAM_EXPLORATION = 2, /* epsilon-greedy draws */
    TSR_RNG_STREAM_REPLAY = 3,      /* replay sampling */
    TSR_RNG_STREAM_ENV = 4,         /* environment dynamics */
    TSR_RNG_STREAM_STICKY = 5,      /* sticky actions */
    TSR_RNG_STREAM_NOISE = 6,       /* NoisyNet and random routers */
    /* Seeds of a vector env's copies: this + the copy's index. */
    TSR_RNG_STREAM_VEC_ENV_COPY = 0x56454300,
} tsr_rng_stream;

typedef struct tsr_rng {
    uint64_t s[4];
    double spare_normal; /* second value of the last polar-method pair */
    bool has_spare_normal;
} tsr_rng;

/* Seeds `rng` from (seed, stream). Equal pairs give equal sequences. */
void tsr_rng_init(tsr_rng *rng, uint64_t seed, uint64_t stream);

uint64_t tsr_rng_u64(tsr_rng *rng);
uint32_t tsr_rng_u32(tsr_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double tsr_rng_uniform(tsr_rng *rng);
/* Uniform float in [0, 1) with 24 random bits. */
float tsr_rng_uniform_f32(tsr_rng *rng);
/* Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n > 0. */
uint64_t tsr_rng_below(tsr_rng *rng, uint64_t n);
/* Standard normal (Marsaglia's polar method; the pair's second value is kept). */
double tsr_rng_normal(tsr_rng *rng);

#ifdef __cplusplus
}
#endif

#endif
