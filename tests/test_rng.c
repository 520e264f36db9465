#include <criterion/criterion.h>
#include <math.h>

#include "tessera/rng.h"

Test(rng, same_seed_and_stream_give_the_same_sequence)
{
    tsr_rng a, b;
    tsr_rng_init(&a, 42, TSR_RNG_STREAM_REPLAY);
    tsr_rng_init(&b, 42, TSR_RNG_STREAM_REPLAY);
    for (int i = 0; i < 1000; i++) cr_assert_eq(tsr_rng_u64(&a), tsr_rng_u64(&b));
}

Test(rng, streams_and_seeds_are_distinct)
{
    tsr_rng a, b, c;
    tsr_rng_init(&a, 42, 1);
    tsr_rng_init(&b, 42, 2);
    tsr_rng_init(&c, 43, 1);
    int equal_ab = 0, equal_ac = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = tsr_rng_u64(&a);
        equal_ab += x == tsr_rng_u64(&b);
        equal_ac += x == tsr_rng_u64(&c);
    }
    cr_expect_eq(equal_ab, 0);
    cr_expect_eq(equal_ac, 0);
}

Test(rng, streams_are_uncorrelated)
{
    /* Sample correlation of 100k uniforms from two streams of one seed. */
    tsr_rng a, b;
    tsr_rng_init(&a, 7, TSR_RNG_STREAM_ENV);
    tsr_rng_init(&b, 7, TSR_RNG_STREAM_STICKY);
    const int n = 100000;
    double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) {
        double x = tsr_rng_uniform(&a), y = tsr_rng_uniform(&b);
        sa += x, sb += y, sab += x * y, saa += x * x, sbb += y * y;
    }
    double cov = sab / n - (sa / n) * (sb / n);
    double corr = cov / sqrt((saa / n - sa * sa / n / n) * (sbb / n - sb * sb / n / n));
    cr_expect_lt(fabs(corr), 0.02, "correlation %g", corr);
}

Test(rng, copying_the_state_saves_and_restores_it)
{
    tsr_rng a;
    tsr_rng_init(&a, 1, 1);
    tsr_rng_normal(&a); /* leaves a spare normal in the state */
    tsr_rng saved = a;
    double x1 = tsr_rng_normal(&a), x2 = tsr_rng_uniform(&a);
    a = saved;
    cr_expect_eq(tsr_rng_normal(&a), x1);
    cr_expect_eq(tsr_rng_uniform(&a), x2);
}

Test(rng, uniform_is_in_unit_interval_with_mean_one_half)
{
    tsr_rng r;
    tsr_rng_init(&r, 3, 9);
    double sum = 0;
    for (int i = 0; i < 200000; i++) {
        double u = tsr_rng_uniform(&r);
        cr_assert(u >= 0.0 && u < 1.0);
        float f = tsr_rng_uniform_f32(&r);
        cr_assert(f >= 0.0f && f < 1.0f);
        sum += u;
    }
    cr_expect_lt(fabs(sum / 200000 - 0.5), 0.003);
}

Test(rng, below_is_unbiased_over_a_small_range)
{
    tsr_rng r;
    tsr_rng_init(&r, 5, 5);
    long counts[6] = {0};
    const long n = 600000;
    for (long i = 0; i < n; i++) counts[tsr_rng_below(&r, 6)]++;
    for (int k = 0; k < 6; k++) /* expected 100000, sd about 289 */
        cr_expect_lt(labs(counts[k] - n / 6), 1500, "bucket %d: %ld", k, counts[k]);
}

Test(rng, normal_has_zero_mean_and_unit_variance)
{
    tsr_rng r;
    tsr_rng_init(&r, 11, TSR_RNG_STREAM_INIT);
    double s = 0, ss = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = tsr_rng_normal(&r);
        s += x;
        ss += x * x;
    }
    cr_expect_lt(fabs(s / n), 0.01);
    cr_expect_lt(fabs(ss / n - 1.0), 0.015);
}
