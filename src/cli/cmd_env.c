/* cmd_env.c — `tessera env`: list the built-in environments, or play one with
 * a uniformly random policy and report returns, lengths and speed. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/env.h"

static const char usage[] =
    "usage: tessera env list\n"
    "       tessera env run NAME [--episodes N] [--seed S] [--sticky P] [--no-ramping]\n"
    "                            [--minimal-actions] [--continuous] [--threshold T]\n"
    "                            [--max-steps N] [--json]\n"
    "\n"
    "run plays NAME with a uniformly random policy (continuous mode: uniform over\n"
    "[0,1] x [-pi,pi] x [0,1]). --json prints one object per episode and a summary.\n"
    "  --episodes N       episodes to play, N >= 1 (default 10)\n"
    "  --seed S           seed of the environment and the policy, 0..2^64-1 (default 0)\n"
    "  --sticky P         sticky-action probability in [0, 1] (MinAtar default 0.1)\n"
    "  --no-ramping       turn difficulty ramping off (asterix, seaquest, space_invaders)\n"
    "  --minimal-actions  use the game's minimal action set\n"
    "  --continuous       (r, theta, fire) actions mapped as CALE does\n"
    "  --threshold T      continuous-mode threshold in [0, 1) (default 0.5)\n"
    "  --max-steps N      truncate episodes after N >= 1 steps (CartPole: 500)\n";

/* ------------------------------------------------------------- parsing */

static bool parse_u64(const char *text, uint64_t *value)
{
    if (!text || !*text || *text == '-' || *text == '+') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end) return false;
    *value = (uint64_t)v;
    return true;
}

static bool parse_double(const char *text, double *value)
{
    if (!text || !*text) return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !isfinite(v)) return false;
    *value = v;
    return true;
}

/* The value after option argv[*i], or NULL (with a message) if there is none. */
static const char *option_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "tessera env: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* ------------------------------------------------------------- commands */

static int cmd_list(void)
{
    for (int g = 0; g < TSR_ENV_GAME_COUNT; g++) {
        tsr_env env;
        tsr_status st = tsr_env_init(&env, (tsr_env_game)g, NULL, 0, NULL);
        if (st != TSR_STATUS_OK) return 1;
        tsr_env_spec spec = tsr_env_get_spec(&env);
        tsr_env_options minimal = env.options;
        minimal.minimal_action_set = true;
        tsr_env_init(&env, (tsr_env_game)g, &minimal, 0, NULL);
        tsr_env_spec minimal_spec = tsr_env_get_spec(&env);
        char shape[64];
        tsr_tensor view = tsr_tensor_view(NULL, spec.obs_dtype, spec.obs_ndim, spec.obs_shape);
        printf("%-24s obs %s %-15s actions %d (minimal %d)\n", spec.name,
               tsr_dtype_name(spec.obs_dtype), tsr_tensor_shape_str(&view, shape, sizeof shape),
               spec.num_actions, minimal_spec.num_actions);
    }
    return 0;
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Mean and standard error of x[0..n); the error is NAN for n < 2. */
static void mean_stderr(const double *x, long n, double *mean, double *stderr_out)
{
    double sum = 0.0;
    for (long i = 0; i < n; i++) sum += x[i];
    *mean = sum / (double)n;
    if (n < 2) {
        *stderr_out = NAN;
        return;
    }
    double squares = 0.0;
    for (long i = 0; i < n; i++) squares += (x[i] - *mean) * (x[i] - *mean);
    *stderr_out = sqrt(squares / (double)(n - 1) / (double)n);
}

/* JSON has no NaN: an undefined standard error is null. */
static void print_json_number(const char *key, double value, bool last)
{
    if (isfinite(value))
        printf("\"%s\": %.10g%s", key, value, last ? "" : ", ");
    else
        printf("\"%s\": null%s", key, last ? "" : ", ");
}

static int cmd_run(int argc, char **argv)
{
    if (argc >= 2 && tsr_cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "tessera env run: missing NAME\n\n%s", usage);
        return 2;
    }
    tsr_error err;
    tsr_env_game game;
    if (tsr_env_find_game(argv[1], &game, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera env run: %s\n", err.message);
        return 2;
    }
    tsr_env_options options = tsr_env_default_options(game);
    uint64_t episodes = 10, seed = 0;
    bool json = false, threshold_set = false;

    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *value;
        if (!strcmp(arg, "--json")) {
            json = true;
        } else if (!strcmp(arg, "--no-ramping")) {
            if (game != TSR_ENV_GAME_ASTERIX && game != TSR_ENV_GAME_SEAQUEST &&
                game != TSR_ENV_GAME_SPACE_INVADERS) {
                fprintf(stderr, "tessera env run: --no-ramping: %s has no difficulty ramping "
                                "(asterix, seaquest and space_invaders do)\n", argv[1]);
                return 2;
            }
            options.difficulty_ramping = false;
        } else if (!strcmp(arg, "--minimal-actions")) {
            options.minimal_action_set = true;
        } else if (!strcmp(arg, "--continuous")) {
            options.continuous = true;
        } else if (!strcmp(arg, "--episodes")) {
            if (!(value = option_value(argc, argv, &i))) return 2;
            if (!parse_u64(value, &episodes) || episodes < 1 || episodes > 100000000) {
                fprintf(stderr, "tessera env run: --episodes wants an integer in 1..100000000, "
                                "got '%s'\n", value);
                return 2;
            }
        } else if (!strcmp(arg, "--seed")) {
            if (!(value = option_value(argc, argv, &i))) return 2;
            if (!parse_u64(value, &seed)) {
                fprintf(stderr, "tessera env run: --seed wants an integer in 0..2^64-1, "
                                "got '%s'\n", value);
                return 2;
            }
        } else if (!strcmp(arg, "--sticky")) {
            if (!(value = option_value(argc, argv, &i))) return 2;
            if (!parse_double(value, &options.sticky_action_prob)) {
                fprintf(stderr, "tessera env run: --sticky wants a probability in [0, 1], "
                                "got '%s'\n", value);
                return 2;
            }
        } else if (!strcmp(arg, "--threshold")) {
            if (!(value = option_value(argc, argv, &i))) return 2;
            threshold_set = true;
            if (!parse_double(value, &options.continuous_threshold)) {
                fprintf(stderr, "tessera env run: --threshold wants a number in [0, 1), "
                                "got '%s'\n", value);
                return 2;
            }
        } else if (!strcmp(arg, "--max-steps")) {
            if (!(value = option_value(argc, argv, &i))) return 2;
            uint64_t steps;
            if (!parse_u64(value, &steps) || steps < 1 || steps > INT64_MAX) {
                fprintf(stderr, "tessera env run: --max-steps wants an integer >= 1, "
                                "got '%s'\n", value);
                return 2;
            }
            options.time_limit = true;
            options.max_episode_steps = (int64_t)steps;
        } else {
            fprintf(stderr, "tessera env run: unknown option '%s'\n\n%s", arg, usage);
            return 2;
        }
    }

    if (threshold_set && !options.continuous) {
        fprintf(stderr, "tessera env run: --threshold applies to --continuous actions\n");
        return 2;
    }
    tsr_env env;
    if (tsr_env_init(&env, game, &options, seed, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera env run: %s\n", err.message);
        return 2;
    }
    tsr_env_spec spec = tsr_env_get_spec(&env);
    tsr_rng policy;
    tsr_rng_init(&policy, seed, TSR_RNG_STREAM_EXPLORATION);

    /* Observations are built every step, as a learner would need them. */
    unsigned char obs[TSR_MINATAR_SIZE * TSR_MINATAR_SIZE * 16];
    if (spec.obs_bytes > sizeof obs) return 1;
    double *returns = tsr_malloc(episodes * sizeof *returns);
    double *lengths = tsr_malloc(episodes * sizeof *lengths);
    if (!json)
        printf("%s: %llu episodes, seed %llu, sticky %g, ramping %s, %s actions\n", spec.name,
               (unsigned long long)episodes, (unsigned long long)seed,
               options.sticky_action_prob, options.difficulty_ramping ? "on" : "off",
               options.continuous ? "continuous" : options.minimal_action_set ? "minimal" : "full");

    int64_t total_steps = 0;
    double elapsed = 0.0;
    for (uint64_t e = 0; e < episodes; e++) {
        double start = seconds_now();
        tsr_env_step_result r;
        do {
            if (options.continuous) {
                float action[TSR_ENV_CONTINUOUS_DIM] = {
                    tsr_rng_uniform_f32(&policy),
                    (float)((2.0 * tsr_rng_uniform(&policy) - 1.0) * M_PI),
                    tsr_rng_uniform_f32(&policy),
                };
                r = tsr_env_step_continuous(&env, action);
            } else {
                r = tsr_env_step(&env, (int)tsr_rng_below(&policy, (uint64_t)spec.num_actions));
            }
            tsr_env_observe(&env, obs);
        } while (!r.terminated && !r.truncated);
        elapsed += seconds_now() - start;
        returns[e] = env.episode_return;
        lengths[e] = (double)env.episode_length;
        total_steps += env.episode_length;
        if (json)
            printf("{\"episode\": %llu, \"return\": %.10g, \"length\": %lld}\n",
                   (unsigned long long)e, returns[e], (long long)env.episode_length);
        else
            printf("episode %llu: return %g, length %lld\n", (unsigned long long)e, returns[e],
                   (long long)env.episode_length);
        tsr_env_reset(&env);
    }

    double return_mean, return_stderr, length_mean, length_stderr;
    mean_stderr(returns, (long)episodes, &return_mean, &return_stderr);
    mean_stderr(lengths, (long)episodes, &length_mean, &length_stderr);
    double steps_per_second = elapsed > 0.0 ? (double)total_steps / elapsed : NAN;
    if (json) {
        printf("{\"env\": \"%s\", \"episodes\": %llu, \"steps\": %lld, ", spec.name,
               (unsigned long long)episodes, (long long)total_steps);
        print_json_number("return_mean", return_mean, false);
        print_json_number("return_stderr", return_stderr, false);
        print_json_number("length_mean", length_mean, false);
        print_json_number("length_stderr", length_stderr, false);
        print_json_number("steps_per_second", steps_per_second, true);
        printf("}\n");
    } else {
        printf("return %.4g +- %.2g, length %.4g +- %.2g (mean +- standard error); "
               "%.3g steps/s\n",
               return_mean, return_stderr, length_mean, length_stderr, steps_per_second);
    }
    tsr_free(returns);
    tsr_free(lengths);
    return 0;
}

int tsr_cmd_env(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "run")) return cmd_run(argc - 1, argv + 1);
    if (argc == 2 && !strcmp(argv[1], "list")) return cmd_list();
    if ((argc >= 2 && tsr_cli_is_help(argv[1])) ||
        (argc == 3 && !strcmp(argv[1], "list") && tsr_cli_is_help(argv[2]))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "list"))
        fprintf(stderr, "tessera env list takes no arguments (got '%s')\n\n", argv[2]);
    else if (argc >= 2)
        fprintf(stderr, "tessera env: unknown subcommand '%s'; valid: run, list\n\n", argv[1]);
    fputs(usage, stderr);
    return 2;
}
