/* bench_envs.c — environment steps per second, observation included.
 *
 * For every game: one env on one thread (step + observe + reset at the end of
 * an episode), the same in continuous mode, and a vector env of N copies on 1
 * and on 2 threads writing its (N, obs...) batch. Actions are uniformly random
 * and drawn before timing, so the policy is not in the measurement. Before
 * timing, the vector env is checked against N single envs.
 *
 * The Python reference (MinAtar with numpy, observation built each step)
 * runs at roughly 70k-600k steps/s per game on this class of machine; the
 * last column gives the ratio to both ends of that range.
 *
 *   bench_envs [--reps N] [--batch N] [--steps N]
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tessera/tessera.h"

#define PROG "bench_envs" /* prefix of command-line errors */

enum { ACTION_RING = 1 << 16, MAX_OBS_BYTES = 1024 };

static const double python_low = 70e3, python_high = 600e3;

/* ------------------------------------------------------------ one env */

typedef struct single_run {
    tsr_env env;
    const int32_t *actions;          /* (ACTION_RING) */
    const float *continuous_actions; /* (ACTION_RING, 3) or NULL */
    long steps;
    long cursor;
    unsigned char obs[MAX_OBS_BYTES];
} single_run;

static void run_single(void *user)
{
    single_run *run = user;
    for (long t = 0; t < run->steps; t++) {
        long k = (run->cursor++) & (ACTION_RING - 1);
        tsr_env_step_result r =
            run->continuous_actions
                ? tsr_env_step_continuous(&run->env, run->continuous_actions + 3 * k)
                : tsr_env_step(&run->env, run->actions[k]);
        tsr_env_observe(&run->env, run->obs);
        if (r.terminated || r.truncated) tsr_env_reset(&run->env);
    }
}

/* ---------------------------------------------------------- vector env */

typedef struct batch_run {
    tsr_vec_env *venv;
    const int32_t *actions; /* (ACTION_RING) */
    long batch_steps;
    long cursor;
    tsr_vec_env_out out;
} batch_run;

static void run_batch(void *user)
{
    batch_run *run = user;
    const long n = run->venv->num_envs;
    for (long t = 0; t < run->batch_steps; t++) {
        const int32_t *actions = run->actions + (run->cursor * n) % (ACTION_RING - n);
        run->cursor++;
        tsr_vec_env_step(run->venv, actions, &run->out);
    }
}

static tsr_vec_env_out make_out(int n, size_t obs_bytes)
{
    return (tsr_vec_env_out){
        .obs = tsr_malloc((size_t)n * obs_bytes),
        .reward = tsr_malloc((size_t)n * sizeof(float)),
        .terminated = tsr_malloc((size_t)n),
        .truncated = tsr_malloc((size_t)n),
        .final_obs = NULL,
        .episode_return = tsr_malloc((size_t)n * sizeof(float)),
        .episode_length = tsr_malloc((size_t)n * sizeof(int64_t)),
    };
}

static void free_out(tsr_vec_env_out *out)
{
    tsr_free(out->obs), tsr_free(out->reward), tsr_free(out->terminated);
    tsr_free(out->truncated), tsr_free(out->episode_return), tsr_free(out->episode_length);
}

/* The vector env must equal N single envs seeded tsr_vec_env_copy_seed(seed, i),
 * step for step. */
static void check_vector_env(tsr_env_game game, int n, const int32_t *actions)
{
    omp_set_num_threads(2);
    tsr_vec_env *venv;
    if (tsr_vec_env_new(&venv, game, NULL, n, 1, NULL) != TSR_STATUS_OK) exit(1);
    tsr_env *single = tsr_malloc((size_t)n * sizeof *single);
    for (int i = 0; i < n; i++)
        tsr_env_init(&single[i], game, NULL, tsr_vec_env_copy_seed(1, i), NULL);
    tsr_vec_env_out out = make_out(n, venv->spec.obs_bytes);
    unsigned char expected[MAX_OBS_BYTES];
    for (int t = 0; t < 200; t++) {
        const int32_t *a = actions + (size_t)t * (size_t)n % (ACTION_RING - (size_t)n);
        tsr_vec_env_step(venv, a, &out);
        for (int i = 0; i < n; i++) {
            tsr_env_step_result r = tsr_env_step(&single[i], a[i]);
            if (r.terminated || r.truncated) tsr_env_reset(&single[i]);
            tsr_env_observe(&single[i], expected);
            if (memcmp((char *)out.obs + (size_t)i * venv->spec.obs_bytes, expected,
                       venv->spec.obs_bytes) != 0 ||
                out.reward[i] != r.reward) {
                fprintf(stderr, "bench_envs: %s copy %d differs from its single env at step %d\n",
                        venv->spec.name, i, t);
                exit(1);
            }
        }
    }
    free_out(&out);
    tsr_free(single);
    tsr_vec_env_free(venv);
}

/* ---------------------------------------------------------------- main */

static void print_row(const char *name, const char *mode, int n, int threads, double steps_per_s,
                      bool minatar)
{
    printf("%-24s %-10s %5d %7d %9.2f M %8.1f", name, mode, n, threads, steps_per_s / 1e6,
           1e9 / steps_per_s * threads);
    if (minatar)
        printf("   %5.0fx / %4.0fx\n", steps_per_s / python_low, steps_per_s / python_high);
    else
        printf("   %s\n", "(no MinAtar reference)");
}

int main(int argc, char **argv)
{
    int reps = 7, batch = 256;
    long steps = 2000000;
    for (int i = 1; i < argc; i++) {
        long long v;
        if (bench_int_option(PROG, argc, argv, &i, "--reps", 1, 64, &v)) {
            reps = (int)v;
        } else if (bench_int_option(PROG, argc, argv, &i, "--batch", 1, 1 << 20, &v)) {
            batch = (int)v;
        } else if (bench_int_option(PROG, argc, argv, &i, "--steps", 1, 1LL << 40, &v)) {
            steps = (long)v;
        } else {
            fprintf(stderr, "usage: bench_envs [--reps N (1 to 64)] [--batch N] [--steps N]\n");
            return 2;
        }
    }

    int32_t *actions = tsr_malloc(ACTION_RING * sizeof *actions);
    float *continuous = tsr_malloc(ACTION_RING * 3 * sizeof *continuous);
    printf("environment steps per second, observation built every step; median of %d runs\n"
           "ns/step is per step per thread; the last column is the speed-up over the Python\n"
           "MinAtar reference at 70k and at 600k steps/s\n\n", reps);
    printf("%-24s %-10s %5s %7s %11s %8s   %s\n", "game", "mode", "N", "threads", "steps/s",
           "ns/step", "vs Python 70k / 600k");

    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        const tsr_env_game game = (tsr_env_game)g;
        const bool minatar = game != TSR_ENV_GAME_CARTPOLE;
        tsr_env probe;
        tsr_env_init(&probe, game, NULL, 0, NULL);
        tsr_env_spec spec = tsr_env_get_spec(&probe);
        tsr_rng policy;
        tsr_rng_init(&policy, 7, TSR_RNG_STREAM_EXPLORATION);
        for (int k = 0; k < ACTION_RING; k++) {
            actions[k] = (int32_t)tsr_rng_below(&policy, (uint64_t)spec.num_actions);
            continuous[3 * k + 0] = tsr_rng_uniform_f32(&policy);
            continuous[3 * k + 1] = (float)((2.0 * tsr_rng_uniform(&policy) - 1.0) * M_PI);
            continuous[3 * k + 2] = tsr_rng_uniform_f32(&policy);
        }
        check_vector_env(game, batch, actions);

        single_run *one = tsr_malloc(sizeof *one);
        *one = (single_run){.actions = actions, .steps = steps};
        tsr_env_init(&one->env, game, NULL, 1, NULL);
        double seconds = bench_time(run_single, one, 1, reps, 1);
        print_row(spec.name, "single", 1, 1, (double)steps / seconds, minatar);

        tsr_env_options options = tsr_env_default_options(game);
        options.continuous = true;
        *one = (single_run){.actions = actions, .continuous_actions = continuous, .steps = steps};
        tsr_env_init(&one->env, game, &options, 1, NULL);
        seconds = bench_time(run_single, one, 1, reps, 1);
        print_row(spec.name, "continuous", 1, 1, (double)steps / seconds, minatar);
        tsr_free(one);

        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            batch_run run = {.actions = actions, .batch_steps = steps / batch};
            if (tsr_vec_env_new(&run.venv, game, NULL, batch, 1, NULL) != TSR_STATUS_OK) return 1;
            run.out = make_out(batch, spec.obs_bytes);
            seconds = bench_time(run_batch, &run, 1, reps, 1);
            print_row(spec.name, "batch", batch, threads,
                      (double)(run.batch_steps * batch) / seconds, minatar);
            free_out(&run.out);
            tsr_vec_env_free(run.venv);
        }
    }
    tsr_free(actions);
    tsr_free(continuous);
    return 0;
}
