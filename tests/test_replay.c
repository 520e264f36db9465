/* test_replay.c — n-step windows at terminals, truncations and the write
 * cursor; uniform and prioritized sampling frequencies; priorities and
 * importance weights by hand; bit-packing; determinism; no allocation while
 * sampling; option errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "support/allocations.h"
#include "tessera/replay.h"
#include "tessera/rng.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Float observations (2): (step, 2·step + 1), so a sampled row names its steps. */
static tsr_replay_options float_options(int64_t capacity, int64_t n_step, double gamma,
                                        bool prioritized)
{
    tsr_replay_options o;
    memset(&o, 0, sizeof o);
    o.capacity = capacity;
    o.obs_ndim = 1;
    o.obs_shape[0] = 2;
    o.obs_dtype = TSR_DTYPE_F32;
    o.n_step = n_step;
    o.gamma = gamma;
    o.prioritized = prioritized;
    o.priority_exponent = 0.5;
    o.importance_exponent = 0.5;
    return o;
}

static tsr_replay *new_replay(const tsr_replay_options *o, uint64_t seed)
{
    tsr_replay *r = NULL;
    tsr_error err = {0};
    tsr_status st = tsr_replay_new(&r, o, seed, &err);
    cr_assert_eq(st, TSR_STATUS_OK, "tsr_replay_new: %s", err.message);
    return r;
}

static void add_step(tsr_replay *r, float reward, bool terminal, bool truncated)
{
    float step = (float)tsr_replay_add_count(r);
    float obs[2] = {step, 2.0f * step + 1.0f};
    tsr_replay_add(r, obs, (int32_t)step % 5, reward, terminal, truncated);
}

static float obs_step(const tsr_replay_batch *b, int64_t row, bool next)
{
    const float *o = (const float *)(next ? b->next_obs : b->obs) + 2 * row;
    cr_assert_eq(o[1], 2.0f * o[0] + 1.0f, "row %lld observation is corrupt", (long long)row);
    return o[0];
}

/* Σ (observed − expected)² / expected over k cells. */
static double chi_square(const long *observed, const double *expected, int k)
{
    double chi = 0.0;
    for (int i = 0; i < k; i++) {
        double d = (double)observed[i] - expected[i];
        chi += d * d / expected[i];
    }
    return chi;
}

/* ------------------------------------------------------------------------ */
/* n-step windows                                                           */
/* ------------------------------------------------------------------------ */

Test(replay, n_step_returns_shrink_their_horizon_at_a_terminal)
{
    /* n = 3, γ = 0.9, rewards 1..5 at steps 0..4, terminal at step 4:
     *   t=0: 1 + .9·2 + .81·3 = 5.23, discount .729, next obs step 3
     *   t=1: 2 + .9·3 + .81·4 = 7.94, discount .729, next obs step 4
     *   t=2: 3 + .9·4 + .81·5 = 10.65, discount 0 (horizon 3 reaches the terminal)
     *   t=3: 4 + .9·5 = 8.5, discount 0 (horizon 2)
     *   t=4: 5, discount 0 (horizon 1)
     * Steps 5 and 6 start the next episode; their windows are incomplete. */
    const double returns[5] = {5.23, 7.94, 10.65, 8.5, 5.0};
    const float discounts[5] = {0.729f, 0.729f, 0.0f, 0.0f, 0.0f};
    const float next_steps[5] = {3, 4, 4, 4, 4};
    tsr_replay_options o = float_options(16, 3, 0.9, false);
    tsr_replay *r = new_replay(&o, 1);
    for (int s = 0; s < 5; s++) add_step(r, (float)(s + 1), s == 4, false);
    cr_expect_eq(tsr_replay_num_valid(r), 5);
    add_step(r, 100.0f, false, false);
    add_step(r, 100.0f, false, false);
    cr_expect_eq(tsr_replay_num_valid(r), 5, "windows of the new episode are not complete yet");

    tsr_replay_batch *b = tsr_replay_batch_new(r, 8);
    long seen[16] = {0};
    for (int it = 0; it < 200; it++) {
        tsr_replay_sample(r, b);
        for (int64_t i = 0; i < b->batch; i++) {
            int64_t t = b->indices[i];
            cr_assert(t >= 0 && t < 5, "sampled start %lld", (long long)t);
            seen[t]++;
            cr_assert_float_eq(b->returns[i], (float)returns[t], 1e-5, "return of t=%lld: %g",
                               (long long)t, b->returns[i]);
            cr_assert_float_eq(b->discounts[i], discounts[t], 1e-7, "discount of t=%lld: %g",
                               (long long)t, b->discounts[i]);
            cr_assert_eq(obs_step(b, i, false), (float)t);
            cr_assert_eq(obs_step(b, i, true), next_steps[t], "next obs of t=%lld is step %g",
                         (long long)t, obs_step(b, i, true));
            cr_assert_eq(b->actions[i], (int32_t)t % 5);
            cr_assert_eq(b->weights[i], 1.0f);
        }
    }
    for (int t = 0; t < 5; t++) cr_expect_gt(seen[t], 0, "start %d never sampled", t);
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

Test(replay, windows_that_cross_a_truncation_are_never_sampled)
{
    /* n = 3, truncation at step 4: starts 0 and 1 keep full windows (step 4's
     * observation is stored and is t=1's next observation); starts 2, 3, 4 are
     * dropped. The next episode (steps 5..9) completes starts 5 and 6. */
    tsr_replay_options o = float_options(32, 3, 0.5, false);
    tsr_replay *r = new_replay(&o, 2);
    for (int s = 0; s < 10; s++) add_step(r, (float)(s + 1), false, s == 4);
    cr_expect_eq(tsr_replay_num_valid(r), 4);
    const bool valid[10] = {1, 1, 0, 0, 0, 1, 1, 0, 0, 0};
    for (int t = 0; t < 10; t++)
        cr_expect_eq(tsr_replay_priority(r, t) > 0.0, valid[t], "start %d validity", t);

    tsr_replay_batch *b = tsr_replay_batch_new(r, 16);
    long seen[10] = {0};
    for (int it = 0; it < 500; it++) {
        tsr_replay_sample(r, b);
        for (int64_t i = 0; i < b->batch; i++) {
            int64_t t = b->indices[i];
            cr_assert(t >= 0 && t < 10 && valid[t], "sampled dropped start %lld", (long long)t);
            seen[t]++;
            /* Full windows: r_t + .5 r_{t+1} + .25 r_{t+2}, discount .125, next obs t+3. */
            double expected = (t + 1) + 0.5 * (t + 2) + 0.25 * (t + 3);
            cr_assert_float_eq(b->returns[i], (float)expected, 1e-6);
            cr_assert_eq(b->discounts[i], 0.125f);
            cr_assert_eq(obs_step(b, i, true), (float)(t + 3));
        }
    }
    for (int t = 0; t < 10; t++)
        if (valid[t]) cr_expect_gt(seen[t], 0, "start %d never sampled", t);
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

Test(replay, overwritten_steps_never_appear_and_the_write_cursor_is_not_crossed)
{
    /* capacity 8, n = 2, 20 steps without episode ends: steps 12..19 are
     * stored; starts 12..17 are valid; 18 and 19 would need steps 20, 21 (past
     * the cursor); 11 and older are overwritten. */
    tsr_replay_options o = float_options(8, 2, 1.0, false);
    tsr_replay *r = new_replay(&o, 3);
    for (int s = 0; s < 20; s++) add_step(r, (float)s, false, false);
    cr_expect_eq(tsr_replay_size(r), 8);
    cr_expect_eq(tsr_replay_add_count(r), 20);
    cr_expect_eq(tsr_replay_num_valid(r), 6);
    for (int t = 0; t < 20; t++)
        cr_expect_eq(tsr_replay_priority(r, t) > 0.0, t >= 12 && t <= 17, "start %d", t);

    tsr_replay_batch *b = tsr_replay_batch_new(r, 6);
    long seen[20] = {0};
    for (int it = 0; it < 300; it++) {
        tsr_replay_sample(r, b);
        for (int64_t i = 0; i < b->batch; i++) {
            int64_t t = b->indices[i];
            cr_assert(t >= 12 && t <= 17, "sampled start %lld", (long long)t);
            seen[t]++;
            cr_assert_eq(obs_step(b, i, false), (float)t);
            cr_assert_eq(obs_step(b, i, true), (float)(t + 2));
            cr_assert_eq(b->returns[i], (float)(2 * t + 1));
            cr_assert_eq(b->discounts[i], 1.0f);
        }
    }
    for (int t = 12; t <= 17; t++) cr_expect_gt(seen[t], 0, "start %d never sampled", t);
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

/* The definition in replay.h, evaluated from scratch over every step added. */
static bool reference_valid(const uint8_t *terminal, const uint8_t *truncated, int64_t added,
                            int64_t capacity, int64_t n, int64_t t)
{
    if (t < 0 || t < added - capacity) return false;
    for (int64_t k = 0; k < n; k++) {
        if (t + k >= added) return false;
        if (terminal[t + k]) return true;
        if (truncated[t + k]) return false;
    }
    return t + n < added;
}

Test(replay, validity_and_returns_match_the_definition_over_random_episodes)
{
    enum { steps = 400, capacity = 11, n = 4 };
    const double gamma = 0.8;
    uint8_t terminal[steps], truncated[steps];
    float rewards[steps];
    tsr_rng rng;
    tsr_rng_init(&rng, 99, 1);
    tsr_replay_options o = float_options(capacity, n, gamma, true);
    o.priority_exponent = 1.0;
    tsr_replay *r = new_replay(&o, 4);
    tsr_replay_batch *b = tsr_replay_batch_new(r, 5);
    for (int s = 0; s < steps; s++) {
        double u = tsr_rng_uniform(&rng);
        terminal[s] = u < 0.12;
        truncated[s] = u >= 0.12 && u < 0.2;
        if (tsr_rng_uniform(&rng) < 0.02) terminal[s] = truncated[s] = 1; /* counts as terminal */
        rewards[s] = (float)tsr_rng_below(&rng, 7) - 3.0f;
        add_step(r, rewards[s], terminal[s], truncated[s]);

        int64_t expected_valid = 0;
        for (int64_t t = 0; t <= s; t++) {
            bool v = reference_valid(terminal, truncated, s + 1, capacity, n, t);
            expected_valid += v;
            cr_assert_eq(tsr_replay_priority(r, t) > 0.0, v, "after step %d: start %lld", s,
                         (long long)t);
        }
        cr_assert_eq(tsr_replay_num_valid(r), expected_valid, "after step %d", s);
        if (expected_valid == 0) continue;

        tsr_replay_sample(r, b);
        float losses[5];
        for (int64_t i = 0; i < b->batch; i++) {
            int64_t t = b->indices[i];
            double ret = 0.0, discount = 1.0;
            int64_t next = t + n;
            bool done = false;
            for (int64_t k = 0; k < n; k++) {
                ret += discount * rewards[t + k];
                discount *= gamma;
                if (terminal[t + k]) {
                    done = true;
                    next = t + k;
                    break;
                }
            }
            cr_assert_float_eq(b->returns[i], (float)ret, 1e-5, "start %lld", (long long)t);
            cr_assert_eq(b->discounts[i], done ? 0.0f : (float)pow(gamma, n));
            cr_assert_eq(obs_step(b, i, false), (float)t);
            cr_assert_eq(obs_step(b, i, true), (float)next);
            losses[i] = (float)tsr_rng_uniform(&rng) * 3.0f;
        }
        tsr_replay_update_priorities(r, b->indices, losses, b->batch);
    }
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

/* ------------------------------------------------------------------------ */
/* Sampling frequencies                                                     */
/* ------------------------------------------------------------------------ */

enum { frequency_batch = 32, frequency_batches = 6250 }; /* 200,000 samples */

Test(replay, uniform_sampling_is_uniform_over_valid_transitions)
{
    /* capacity 32, n = 1, 20 steps with a truncation at step 9: starts 0..8
     * and 10..18 are valid (18 transitions), 9 and 19 are not. */
    tsr_replay_options o = float_options(32, 1, 0.99, false);
    tsr_replay *r = new_replay(&o, 5);
    for (int s = 0; s < 20; s++) add_step(r, 0.0f, false, s == 9);
    cr_assert_eq(tsr_replay_num_valid(r), 18);
    tsr_replay_batch *b = tsr_replay_batch_new(r, frequency_batch);
    long counts[20] = {0};
    for (int it = 0; it < frequency_batches; it++) {
        tsr_replay_sample(r, b);
        for (int64_t i = 0; i < b->batch; i++) counts[b->indices[i]]++;
    }
    cr_expect_eq(counts[9], 0);
    cr_expect_eq(counts[19], 0);
    long observed[18];
    double expected[18];
    for (int t = 0, k = 0; t < 20; t++) {
        if (t == 9 || t == 19) continue;
        observed[k] = counts[t];
        expected[k++] = (double)frequency_batch * frequency_batches / 18.0;
    }
    /* 17 degrees of freedom; P(χ² > 61) ≈ 1e-6 for independent draws, and
     * stratification only lowers the spread. */
    double chi = chi_square(observed, expected, 18);
    cr_expect_lt(chi, 61.0, "chi-square %g against uniform", chi);
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

Test(replay, prioritized_sampling_frequencies_follow_the_priorities)
{
    /* α = 0.5 and losses i² give priorities i (up to 1e-10) on starts 0..9. */
    tsr_replay_options o = float_options(16, 1, 0.99, true);
    tsr_replay *r = new_replay(&o, 6);
    for (int s = 0; s < 11; s++) add_step(r, 0.0f, false, false);
    cr_assert_eq(tsr_replay_num_valid(r), 10);
    int64_t indices[10];
    float losses[10];
    for (int t = 0; t < 10; t++) indices[t] = t, losses[t] = (float)((t + 1) * (t + 1));
    tsr_replay_update_priorities(r, indices, losses, 10);
    for (int t = 0; t < 10; t++) cr_expect_float_eq(tsr_replay_priority(r, t), t + 1.0, 1e-9);

    tsr_replay_batch *b = tsr_replay_batch_new(r, frequency_batch);
    long counts[10] = {0};
    for (int it = 0; it < frequency_batches; it++) {
        tsr_replay_sample(r, b);
        for (int64_t i = 0; i < b->batch; i++) counts[b->indices[i]]++;
    }
    double expected[10], uniform[10];
    const double samples = (double)frequency_batch * frequency_batches;
    for (int t = 0; t < 10; t++) expected[t] = samples * (t + 1) / 55.0, uniform[t] = samples / 10;
    /* 9 degrees of freedom: P(χ² > 45) ≈ 1e-6. A uniform sampler (the
     * google/dopamine#230 behaviour) lands in the tens of thousands. */
    double chi = chi_square(counts, expected, 10);
    cr_expect_lt(chi, 45.0, "chi-square %g against the priorities", chi);
    cr_expect_gt(chi_square(counts, uniform, 10), 1000.0, "the counts look uniform");
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

Test(replay, new_transitions_enter_at_the_largest_priority_set_so_far)
{
    tsr_replay_options o = float_options(16, 1, 0.99, true);
    o.priority_exponent = 1.0;
    tsr_replay *r = new_replay(&o, 7);
    for (int s = 0; s < 3; s++) add_step(r, 0.0f, false, false);
    cr_expect_eq(tsr_replay_max_priority(r), 1.0);
    cr_expect_eq(tsr_replay_priority(r, 0), 1.0, "the first transitions enter at 1");
    cr_expect_eq(tsr_replay_priority(r, 1), 1.0);

    tsr_replay_update_priorities(r, (int64_t[]){0}, (float[]){5.0f}, 1);
    tsr_replay_update_priorities(r, (int64_t[]){1}, (float[]){2.0f}, 1);
    cr_expect_float_eq(tsr_replay_max_priority(r), 5.0, 1e-9);
    add_step(r, 0.0f, false, false); /* completes start 2 */
    cr_expect_float_eq(tsr_replay_priority(r, 2), 5.0, 1e-9);

    /* The maximum is the largest ever set: lowering it leaves it in place. */
    tsr_replay_update_priorities(r, (int64_t[]){0}, (float[]){0.5f}, 1);
    cr_expect_float_eq(tsr_replay_priority(r, 0), 0.5, 1e-9);
    add_step(r, 0.0f, false, false);
    cr_expect_float_eq(tsr_replay_priority(r, 3), 5.0, 1e-9);
    cr_expect_float_eq(tsr_replay_max_priority(r), 5.0, 1e-9);
    tsr_replay_free(r);
}

Test(replay, uniform_replay_ignores_priority_updates)
{
    tsr_replay_options o = float_options(16, 1, 0.99, false);
    tsr_replay *r = new_replay(&o, 8);
    for (int s = 0; s < 3; s++) add_step(r, 0.0f, false, false);
    tsr_replay_update_priorities(r, (int64_t[]){0, 1}, (float[]){100.0f, 0.0f}, 2);
    cr_expect_eq(tsr_replay_priority(r, 0), 1.0);
    cr_expect_eq(tsr_replay_priority(r, 1), 1.0);
    cr_expect_eq(tsr_replay_max_priority(r), 1.0);
    tsr_replay_free(r);
}

/* ------------------------------------------------------------------------ */
/* Importance weights                                                       */
/* ------------------------------------------------------------------------ */

Test(replay, importance_weights_match_hand_values)
{
    /* α = 1, priorities 1, 4, 16 on starts 0, 1, 2 (total 21, N = 3).
     * (N·P)^(−β) at β = ½: √(21/3), √(21/12), √(21/48) = 2.6458, 1.3229, 0.6614.
     * Normalised by a batch max, a row's weight is √(p_min / p): with start 0
     * in the batch, starts 1 and 2 weigh ½ and ¼; without it, start 2 weighs
     * ½ against start 1, and 1 alone. Dopamine's 1/√(P + 1e-10) over its
     * batch max agrees to ~1e-10. */
    const double priority[3] = {1.0, 4.0, 16.0};
    for (int pass = 0; pass < 2; pass++) {
        double beta = pass == 0 ? 0.5 : 1.0;
        tsr_replay_options o = float_options(16, 1, 0.99, true);
        o.priority_exponent = 1.0;
        o.importance_exponent = beta;
        tsr_replay *r = new_replay(&o, 9);
        for (int s = 0; s < 4; s++) add_step(r, 0.0f, false, false);
        tsr_replay_update_priorities(r, (int64_t[]){0, 1, 2}, (float[]){1.0f, 4.0f, 16.0f}, 3);
        tsr_replay_batch *b = tsr_replay_batch_new(r, 3);
        int hand_checked = 0;
        for (int it = 0; it < 400; it++) {
            tsr_replay_sample(r, b);
            double p_min = 16.0, dopamine[3], dopamine_max = 0.0;
            bool has[3] = {false, false, false};
            for (int i = 0; i < 3; i++) {
                int64_t t = b->indices[i];
                has[t] = true;
                if (priority[t] < p_min) p_min = priority[t];
                dopamine[i] = 1.0 / sqrt(priority[t] / 21.0 + 1e-10);
                if (dopamine[i] > dopamine_max) dopamine_max = dopamine[i];
            }
            for (int i = 0; i < 3; i++) {
                int64_t t = b->indices[i];
                double expected = pow(p_min / priority[t], beta);
                cr_assert_float_eq(b->weights[i], (float)expected, 1e-6, "beta %g, start %lld", beta,
                                   (long long)t);
                if (beta == 0.5)
                    cr_assert_float_eq(b->weights[i], (float)(dopamine[i] / dopamine_max), 1e-6);
                if (has[0] && t == 2) {
                    cr_assert_eq(b->weights[i], beta == 0.5 ? 0.25f : 0.0625f);
                    hand_checked++;
                }
                if (has[0] && t == 1) cr_assert_eq(b->weights[i], beta == 0.5 ? 0.5f : 0.25f);
                if (has[0] && t == 0) cr_assert_eq(b->weights[i], 1.0f);
            }
        }
        cr_expect_gt(hand_checked, 0, "no batch held start 0");
        tsr_replay_batch_free(b);
        tsr_replay_free(r);
    }
}

/* ------------------------------------------------------------------------ */
/* Bit-packing and memory                                                   */
/* ------------------------------------------------------------------------ */

static tsr_replay_options minatar_options(int64_t capacity, int64_t channels, bool bit_pack)
{
    tsr_replay_options o;
    memset(&o, 0, sizeof o);
    o.capacity = capacity;
    o.obs_ndim = 3;
    o.obs_shape[0] = 10;
    o.obs_shape[1] = 10;
    o.obs_shape[2] = channels;
    o.obs_dtype = TSR_DTYPE_U8;
    o.n_step = 1;
    o.gamma = 0.99;
    o.bit_pack = bit_pack;
    return o;
}

Test(replay, bit_packed_observations_come_back_exactly)
{
    /* 10×10×7 = 700 cells: 87 full bytes and a half-used last one. */
    enum { steps = 50, cells = 700 };
    static uint8_t frames[steps][cells];
    tsr_rng rng;
    tsr_rng_init(&rng, 11, 1);
    for (int s = 0; s < steps; s++)
        for (int k = 0; k < cells; k++) frames[s][k] = (uint8_t)(tsr_rng_u32(&rng) & 1u);
    frames[0][cells - 1] = 1; /* the last bit of the last byte */
    memset(frames[1], 1, cells);
    memset(frames[2], 0, cells);

    tsr_replay_options packed_o = minatar_options(64, 7, true);
    tsr_replay_options plain_o = minatar_options(64, 7, false);
    tsr_replay *packed = new_replay(&packed_o, 12), *plain = new_replay(&plain_o, 12);
    for (int s = 0; s < steps; s++) {
        tsr_replay_add(packed, frames[s], s, 0.0f, false, false);
        tsr_replay_add(plain, frames[s], s, 0.0f, false, false);
    }
    tsr_replay_batch *bp = tsr_replay_batch_new(packed, 16), *bu = tsr_replay_batch_new(plain, 16);
    long seen[steps] = {0};
    for (int it = 0; it < 100; it++) {
        tsr_replay_sample(packed, bp);
        tsr_replay_sample(plain, bu);
        for (int64_t i = 0; i < bp->batch; i++) {
            int64_t t = bp->indices[i];
            seen[t]++;
            cr_assert_eq(bu->indices[i], t, "same seed, same batches with and without packing");
            cr_assert_arr_eq((uint8_t *)bp->obs + i * cells, frames[t], cells, "obs of step %lld",
                             (long long)t);
            cr_assert_arr_eq((uint8_t *)bp->next_obs + i * cells, frames[t + 1], cells,
                             "next obs of step %lld", (long long)t);
            cr_assert_arr_eq((uint8_t *)bu->obs + i * cells, frames[t], cells);
        }
    }
    for (int t = 0; t < 3; t++) cr_expect_gt(seen[t], 0, "start %d never sampled", t);
    /* 700 bytes plain against ⌈700/8⌉ = 88 packed, per step. */
    cr_expect_eq(tsr_replay_memory_bytes(plain) - tsr_replay_memory_bytes(packed),
                 (size_t)64 * (700 - 88));
    tsr_replay_batch_free(bp);
    tsr_replay_batch_free(bu);
    tsr_replay_free(packed);
    tsr_replay_free(plain);
}

Test(replay, memory_per_step_matches_the_documented_minatar_numbers)
{
    /* replay.h: per step = obs + 4 + 4 + 1 + 16 (tree, power-of-two capacity). */
    const int64_t capacity = 1024;
    const int channels[4] = {4, 6, 7, 10};
    const size_t packed_obs[4] = {50, 75, 88, 125};
    for (int c = 0; c < 4; c++) {
        for (int pack = 0; pack < 2; pack++) {
            tsr_replay_options o = minatar_options(capacity, channels[c], pack);
            tsr_replay *r = new_replay(&o, 1);
            size_t obs = pack ? packed_obs[c] : (size_t)(100 * channels[c]);
            size_t storage = (size_t)capacity * (obs + 4 + 4 + 1 + 16);
            size_t bytes = tsr_replay_memory_bytes(r);
            cr_expect(bytes >= storage && bytes < storage + 1024,
                      "%d channels, packed %d: %zu bytes, %zu in storage", channels[c], pack, bytes,
                      storage);
            tsr_replay_free(r);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Frame stacks                                                             */
/* ------------------------------------------------------------------------ */

/* Stacked observations (H, W, k·c) = (3, 2, 4·2): step s's own frame has
 * value frame_value(s, cell) at each of its 12 cells, never 0. */
enum { stack_h = 3, stack_w = 2, stack_c = 2, stack_k = 4 };
enum { frame_cells = stack_h * stack_w * stack_c, stack_cells = frame_cells * stack_k };

static uint8_t frame_value(int64_t step, int64_t cell)
{
    return (uint8_t)(1 + (step * 13 + cell) % 251);
}

/* The observation at `step` as an Atari wrapper stacks it: the last k frames
 * of the episode that began at `episode_start`, zeros before it. */
static void stacked_obs(int64_t step, int64_t episode_start, uint8_t *obs)
{
    for (int64_t p = 0; p < stack_h * stack_w; p++)
        for (int64_t pos = 0; pos < stack_k; pos++) {
            int64_t s = step - (stack_k - 1 - pos);
            for (int64_t ch = 0; ch < stack_c; ch++)
                obs[(p * stack_k + pos) * stack_c + ch] =
                    s >= episode_start ? frame_value(s, p * stack_c + ch) : 0;
        }
}

static tsr_replay_options stacked_options(int64_t capacity, int64_t n_step)
{
    tsr_replay_options o;
    memset(&o, 0, sizeof o);
    o.capacity = capacity;
    o.obs_ndim = 3;
    o.obs_shape[0] = stack_h;
    o.obs_shape[1] = stack_w;
    o.obs_shape[2] = stack_k * stack_c;
    o.obs_dtype = TSR_DTYPE_U8;
    o.n_step = n_step;
    o.gamma = 0.9;
    o.frame_stack = stack_k;
    return o;
}

Test(replay, frame_stacks_come_back_as_added_across_episodes_and_the_write_cursor)
{
    enum { steps = 500, capacity = 23, n = 2 };
    static uint8_t observations[steps][stack_cells];
    uint8_t terminal[steps], truncated[steps];
    int64_t episode_start[steps];
    tsr_rng rng;
    tsr_rng_init(&rng, 5, 1);
    tsr_replay_options o = stacked_options(capacity, n);
    tsr_replay *r = new_replay(&o, 8);
    tsr_replay_batch *b = tsr_replay_batch_new(r, 6);
    int64_t start = 0;
    long checked = 0, zero_padded = 0;
    for (int64_t s = 0; s < steps; s++) {
        double u = tsr_rng_uniform(&rng);
        terminal[s] = u < 0.08;
        truncated[s] = u >= 0.08 && u < 0.12;
        episode_start[s] = start;
        stacked_obs(s, start, observations[s]);
        tsr_replay_add(r, observations[s], 0, 1.0f, terminal[s], truncated[s]);
        if (terminal[s] || truncated[s]) start = s + 1;

        /* Valid: the n-step definition, and every step from t − k + 1 (or
         * the previous episode's last step, or step 0, if later) still
         * stored. */
        int64_t expected_valid = 0, oldest = s + 1 - capacity;
        for (int64_t t = 0; t <= s; t++) {
            int64_t first_needed = t - (stack_k - 1);
            if (episode_start[t] - 1 > first_needed) first_needed = episode_start[t] - 1;
            if (first_needed < 0) first_needed = 0;
            bool v = reference_valid(terminal, truncated, s + 1, capacity, n, t) &&
                     first_needed >= oldest;
            expected_valid += v;
            cr_assert_eq(tsr_replay_priority(r, t) > 0.0, v, "after step %lld: start %lld",
                         (long long)s, (long long)t);
        }
        cr_assert_eq(tsr_replay_num_valid(r), expected_valid, "after step %lld", (long long)s);
        if (expected_valid == 0) continue;
        tsr_replay_sample(r, b);
        for (int64_t i = 0; i < b->batch; i++) {
            int64_t t = b->indices[i], next = t + n;
            for (int64_t k = 0; k < n; k++)
                if (terminal[t + k]) {
                    next = t + k;
                    break;
                }
            cr_assert_arr_eq((uint8_t *)b->obs + i * stack_cells, observations[t], stack_cells,
                             "the stack of step %lld", (long long)t);
            cr_assert_arr_eq((uint8_t *)b->next_obs + i * stack_cells, observations[next],
                             stack_cells, "the next stack of step %lld", (long long)t);
            zero_padded += episode_start[t] > t - (stack_k - 1);
            checked++;
        }
    }
    cr_expect_gt(zero_padded, 100, "stacks padded at an episode start were sampled (%ld)",
                 zero_padded);
    cr_expect_gt(checked - zero_padded, 100, "full stacks were sampled");
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

Test(replay, a_differently_stacked_observation_is_refused, .signal = SIGABRT)
{
    tsr_replay_options o = stacked_options(16, 1);
    tsr_replay *r = new_replay(&o, 1);
    uint8_t obs[stack_cells];
    stacked_obs(0, 0, obs);
    tsr_replay_add(r, obs, 0, 0.0f, false, false);
    /* Gym's FrameStack repeats the first frame where Dopamine pads zeros. */
    stacked_obs(1, 0, obs);
    for (int64_t p = 0; p < stack_h * stack_w; p++)
        for (int64_t ch = 0; ch < stack_c; ch++) obs[(p * stack_k) * stack_c + ch] = 9;
    tsr_replay_add(r, obs, 0, 0.0f, false, false);
}

Test(replay, atari_frame_stacks_take_at_most_1_05_times_their_distinct_frames)
{
    /* 84×84×4 uint8 stacks: 7,056 bytes a frame; per step the frame, 9 bytes
     * of action, reward and flags, and the tree's 16 (power of two). */
    const int64_t capacity = 4096;
    tsr_replay_options o;
    memset(&o, 0, sizeof o);
    o.capacity = capacity;
    o.obs_ndim = 3;
    o.obs_shape[0] = 84;
    o.obs_shape[1] = 84;
    o.obs_shape[2] = 4;
    o.obs_dtype = TSR_DTYPE_U8;
    o.n_step = 1;
    o.gamma = 0.99;
    tsr_replay *whole = new_replay(&o, 1);
    o.frame_stack = 4;
    tsr_replay *stacked = new_replay(&o, 1);
    double frames = (double)capacity * 7056.0;
    double ratio = (double)tsr_replay_memory_bytes(stacked) / frames;
    cr_expect_leq(ratio, 1.05, "%.4f x the distinct frames", ratio);
    cr_expect_geq(ratio, 1.0);
    double whole_ratio = (double)tsr_replay_memory_bytes(whole) / frames;
    cr_expect_gt(whole_ratio, 4.0, "whole stacks: %.3f x", whole_ratio);
    tsr_replay_free(whole);
    tsr_replay_free(stacked);
}

/* ------------------------------------------------------------------------ */
/* Determinism and allocation                                               */
/* ------------------------------------------------------------------------ */

static void fill_and_sample(uint64_t seed, int64_t *indices, int rounds)
{
    tsr_replay_options o = float_options(64, 3, 0.99, true);
    tsr_replay *r = new_replay(&o, seed);
    for (int s = 0; s < 100; s++) add_step(r, (float)s, s % 17 == 16, s % 23 == 22);
    tsr_replay_batch *b = tsr_replay_batch_new(r, 8);
    for (int it = 0; it < rounds; it++) {
        tsr_replay_sample(r, b);
        memcpy(indices + it * 8, b->indices, 8 * sizeof *indices);
        float losses[8];
        for (int i = 0; i < 8; i++) losses[i] = (float)(b->indices[i] % 5);
        tsr_replay_update_priorities(r, b->indices, losses, 8);
    }
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

Test(replay, a_seed_fixes_every_batch)
{
    int64_t a[400], b[400], c[400];
    fill_and_sample(42, a, 50);
    fill_and_sample(42, b, 50);
    fill_and_sample(43, c, 50);
    cr_expect_arr_eq(a, b, sizeof a, "same seed, different batches");
    cr_expect(memcmp(a, c, sizeof a) != 0, "different seeds gave the same batches");
}

Test(replay, adding_sampling_and_updating_allocate_nothing)
{
    if (!tsr_test_count_allocations()) cr_skip_test("no allocation counter on this platform");
    tsr_replay_options o = minatar_options(256, 4, true);
    o.n_step = 3;
    o.prioritized = true;
    o.priority_exponent = 0.5;
    o.importance_exponent = 0.5;
    tsr_replay *r = new_replay(&o, 13);
    tsr_replay_batch *b = tsr_replay_batch_new(r, 32);
    uint8_t frame[400] = {0};
    float losses[32];
    long before = tsr_test_allocations();
    for (int s = 0; s < 1000; s++) {
        frame[s % 400] ^= 1u;
        tsr_replay_add(r, frame, s % 3, 1.0f, s % 50 == 49, s % 70 == 69);
        if (tsr_replay_num_valid(r) == 0) continue;
        tsr_replay_sample(r, b);
        for (int i = 0; i < 32; i++) losses[i] = (float)i;
        tsr_replay_update_priorities(r, b->indices, losses, 32);
    }
    long during = tsr_test_allocations() - before;
    /* The counter sees allocations: a batch allocates. */
    tsr_replay_batch *probe = tsr_replay_batch_new(r, 1);
    cr_expect_gt(tsr_test_allocations() - before - during, 0, "the allocation counter is not counting");
    cr_expect_eq(during, 0, "%ld allocations while adding and sampling", during);
    tsr_replay_batch_free(probe);
    tsr_replay_batch_free(b);
    tsr_replay_free(r);
}

/* ------------------------------------------------------------------------ */
/* Option errors                                                            */
/* ------------------------------------------------------------------------ */

Test(replay, bad_options_are_errors_that_name_the_option)
{
    typedef struct {
        const char *option;
        tsr_replay_options o;
    } bad_case;
    tsr_replay_options base = float_options(100, 3, 0.99, true);
    bad_case bad[14];
    int k = 0;
    bad[k] = (bad_case){"capacity", base}, bad[k++].o.capacity = 3;
    bad[k] = (bad_case){"n_step", base}, bad[k++].o.n_step = 0;
    bad[k] = (bad_case){"gamma", base}, bad[k++].o.gamma = 1.5;
    bad[k] = (bad_case){"gamma", base}, bad[k++].o.gamma = NAN;
    bad[k] = (bad_case){"obs_ndim", base}, bad[k++].o.obs_ndim = 4;
    bad[k] = (bad_case){"obs_shape[0]", base}, bad[k++].o.obs_shape[0] = 0;
    bad[k] = (bad_case){"obs_dtype", base}, bad[k++].o.obs_dtype = TSR_DTYPE_F64;
    bad[k] = (bad_case){"priority_exponent", base}, bad[k++].o.priority_exponent = -1.0;
    bad[k] = (bad_case){"importance_exponent", base}, bad[k++].o.importance_exponent = INFINITY;
    bad[k] = (bad_case){"bit_pack", base}, bad[k++].o.bit_pack = true; /* float32 obs */
    bad[k] = (bad_case){"capacity", base}, bad[k++].o.capacity = -5;
    tsr_replay_options stacked = stacked_options(100, 3);
    bad[k] = (bad_case){"frame_stack", stacked}, bad[k++].o.frame_stack = 3; /* 8 channels */
    bad[k] = (bad_case){"frame_stack", base}, bad[k++].o.frame_stack = 2;   /* 1-D obs */
    bad[k] = (bad_case){"capacity", stacked}, bad[k++].o.capacity = 6;      /* < n + k */
    for (int i = 0; i < k; i++) {
        tsr_replay *r = (tsr_replay *)&bad[i]; /* must come back NULL */
        tsr_error err = {0};
        tsr_status st = tsr_replay_new(&r, &bad[i].o, 1, &err);
        cr_expect_eq(st, TSR_STATUS_INVALID_ARGUMENT, "case %d (%s)", i, bad[i].option);
        cr_expect_null(r, "case %d (%s)", i, bad[i].option);
        cr_expect(strstr(err.message, bad[i].option) != NULL, "case %d: \"%s\" does not name %s", i,
                  err.message, bad[i].option);
    }
    /* Exponents are not read by a uniform replay; capacity n_step + 1 is the minimum. */
    tsr_replay_options ok = base;
    ok.prioritized = false;
    ok.priority_exponent = -1.0;
    ok.capacity = 4;
    tsr_replay *r = NULL;
    tsr_error err = {0};
    cr_expect_eq(tsr_replay_new(&r, &ok, 1, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_replay_free(r);
}
