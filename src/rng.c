/* rng.c — xoshiro256** streams seeded through splitmix64. */
#include "tessera/rng.h"

#include <math.h>

#include "tessera/status.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__extension__ typedef unsigned __int128 u128; /* GCC/Clang; -Wpedantic-clean */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void tsr_rng_init(tsr_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Mix the stream id through its own splitmix round first so that
     * (seed, stream) and (seed + 1, stream - 1) do not collide. */
    uint64_t s = stream;
    uint64_t x = seed ^ splitmix64(&s);
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3])) rng->s[0] = 1; /* never all zero */
    rng->spare_normal = 0.0;
    rng->has_spare_normal = false;
}

uint64_t tsr_rng_u64(tsr_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t tsr_rng_u32(tsr_rng *rng) { return (uint32_t)(tsr_rng_u64(rng) >> 32); }

double tsr_rng_uniform(tsr_rng *rng) { return (double)(tsr_rng_u64(rng) >> 11) * 0x1.0p-53; }

float tsr_rng_uniform_f32(tsr_rng *rng) { return (float)(tsr_rng_u64(rng) >> 40) * 0x1.0p-24f; }

uint64_t tsr_rng_below(tsr_rng *rng, uint64_t n)
{
    TSR_ASSERT(n > 0);
    /* Lemire 2019: the high word of x * n is uniform once the low word is
     * outside the biased region. Done in 128 bits. */
    u128 m = (u128)tsr_rng_u64(rng) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (u128)tsr_rng_u64(rng) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double tsr_rng_normal(tsr_rng *rng)
{
    if (rng->has_spare_normal) {
        rng->has_spare_normal = false;
        return rng->spare_normal;
    }
    double u, v, s;
    do {
        u = 2.0 * tsr_rng_uniform(rng) - 1.0;
        v = 2.0 * tsr_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    rng->spare_normal = v * f;
    rng->has_spare_normal = true;
    return u * f;
}
