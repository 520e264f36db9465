/* cmd_eval.c — `tessera eval RUN_DIR`: evaluation episodes with the online
 * parameters of a run's newest checkpoint (or a given one) under the config
 * stored in that checkpoint. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

static int usage(FILE *out)
{
    fprintf(out,
            "usage: tessera eval RUN_DIR [--episodes N] [--seed S] [--checkpoint FILE]\n"
            "                            [--set section.key=value ...]\n"
            "  RUN_DIR     a directory written by `tessera train` (config.ini, checkpoints/)\n"
            "  --checkpoint  the checkpoint whose online parameters are evaluated (default: the\n"
            "              run's newest complete one)\n"
            "  --episodes  evaluation episodes (default: the run's run.evaluation_episodes, or 10)\n"
            "  --seed      run.seed for the evaluation env and epsilon draws (default: the run's)\n"
            "  --set       override a key of the run's config (e.g. agent.epsilon_eval=0)\n");
    return out == stdout ? 0 : 2;
}

int tsr_cmd_eval(int argc, char **argv)
{
    if (argc >= 2 && tsr_cli_is_help(argv[1])) return usage(stdout);
    if (argc < 2) return usage(stderr);
    const char *run_dir = argv[1];
    int64_t episodes = 0;
    char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    char seed_override[64];
    const char *checkpoint = NULL;
    int num_overrides = 0;
    for (int i = 2; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--episodes") && has_value) {
            if (!tsr_cli_parse_count(argv[++i], &episodes)) {
                fprintf(stderr, "tessera eval: --episodes '%s' is not a positive integer\n", argv[i]);
                free(overrides);
                return 2;
            }
        } else if (!strcmp(argv[i], "--seed") && has_value) {
            long long v;
            if (!tsr_cli_parse_int(argv[++i], 0, 9007199254740991LL, &v)) {
                fprintf(stderr, "tessera eval: --seed '%s' is not an integer from 0 to 2^53 - 1\n",
                        argv[i]);
                free(overrides);
                return 2;
            }
            snprintf(seed_override, sizeof seed_override, "run.seed=%lld", v);
            overrides[num_overrides++] = seed_override;
        } else if (!strcmp(argv[i], "--set") && has_value) {
            if (!tsr_cli_config_key_form(argv[++i], true)) {
                fprintf(stderr, "tessera eval: --set '%s': expected section.key=value\n", argv[i]);
                free(overrides);
                return 2;
            }
            overrides[num_overrides++] = argv[i];
        } else if (!strcmp(argv[i], "--checkpoint") && has_value) {
            checkpoint = argv[++i];
        } else {
            fprintf(stderr, "tessera eval: unknown or incomplete option '%s'\n\n", argv[i]);
            free(overrides);
            return usage(stderr);
        }
    }
    char config_path[4200], params_path[4200];
    snprintf(config_path, sizeof config_path, "%s/config.ini", run_dir);
    struct stat sb;
    if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(config_path, F_OK) != 0) {
        if (stat(run_dir, &sb) != 0)
            fprintf(stderr, "tessera eval: cannot read %s: %s\n", run_dir, strerror(errno));
        else if (!S_ISDIR(sb.st_mode))
            fprintf(stderr, "tessera eval: %s is not a directory: give the run directory (the "
                            "one holding config.ini), and a checkpoint file with --checkpoint\n",
                    run_dir);
        else
            fprintf(stderr, "tessera eval: %s holds no config.ini: it is not a run directory "
                            "written by tessera train\n", run_dir);
        free(overrides);
        return 1;
    }

    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config run_cfg, cfg;
    tsr_error err;
    /* config.ini first: a bad --set fails here, before any checkpoint is read. */
    tsr_status st =
        tsr_run_config_load(&schema, &run_cfg, config_path, overrides, num_overrides, &err);
    if (st != TSR_STATUS_OK) {
        fprintf(stderr, "tessera eval: %s\n", err.message);
        free(overrides);
        return 1;
    }
    int64_t iteration = 0;
    if (checkpoint) {
        snprintf(params_path, sizeof params_path, "%s", checkpoint);
    } else if (tsr_checkpoint_find_latest(run_dir, params_path, sizeof params_path, &iteration,
                                          stderr, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera eval: %s\n", err.message);
        free(overrides);
        return 1;
    }

    /* The agent is built from the checkpoint's own config (with the --set
     * overrides), so the parameters always meet the network they were
     * trained in, whatever became of config.ini. The newest checkpoint may
     * open but not load (a damaged dataset): older ones are tried in turn,
     * unless one was named with --checkpoint. */
    tsr_runner *runner = NULL;
    tsr_error first = {0};
    for (;;) {
        st = tsr_cli_load_checkpoint_config(&schema, &cfg, params_path, overrides, num_overrides,
                                            &err);
        if (st == TSR_STATUS_OK) st = tsr_runner_new(&runner, &cfg, false, &err);
        if (st == TSR_STATUS_OK) {
            tsr_params *online = &tsr_agent_online(tsr_runner_agent(runner))->params;
            st = tsr_checkpoint_load_params(params_path, "online", online, &err);
            if (st != TSR_STATUS_OK) {
                tsr_runner_free(runner);
                runner = NULL;
            }
        }
        if (st == TSR_STATUS_OK) break;
        if (!first.message[0]) first = err;
        bool older = false;
        if (!checkpoint && st != TSR_STATUS_INVALID_ARGUMENT) {
            fprintf(stderr, "tessera eval: cannot load %s: %s\n", params_path, err.message);
            older = tsr_checkpoint_find_latest_before(run_dir, iteration, params_path,
                                                      sizeof params_path, &iteration, stderr,
                                                      &err) == TSR_STATUS_OK;
        }
        if (!older) {
            /* A config the file does not fit stops the search: that is the
             * reason to show; otherwise the newest file's damage is. */
            fprintf(stderr, "tessera eval: %s\n",
                    st == TSR_STATUS_INVALID_ARGUMENT ? err.message : first.message);
            free(overrides);
            return 1;
        }
        fprintf(stderr, "tessera eval: falling back to %s\n", params_path);
    }
    free(overrides);
    if (strcmp(cfg.env.name, run_cfg.env.name))
        fprintf(stderr, "tessera eval: note: %s was trained on %s, and %s names %s: evaluating on "
                        "%s, as the checkpoint's config says\n",
                params_path, cfg.env.name, config_path, run_cfg.env.name, cfg.env.name);
    if (!episodes) episodes = cfg.run.evaluation_episodes > 0 ? cfg.run.evaluation_episodes : 10;
    double *returns = calloc((size_t)episodes, sizeof *returns);
    double mean = tsr_runner_evaluate(runner, episodes, returns);
    double lo = returns[0], hi = returns[0], squares = 0.0;
    for (int64_t i = 0; i < episodes; i++) {
        if (returns[i] < lo) lo = returns[i];
        if (returns[i] > hi) hi = returns[i];
        squares += (returns[i] - mean) * (returns[i] - mean);
    }
    if (episodes == 1) {
        printf("%s on %s: 1 episode with epsilon %g: return %.3f\n", params_path, cfg.env.name,
               cfg.agent.epsilon_eval, mean);
    } else {
        double stderr_mean = sqrt(squares / (double)(episodes - 1) / (double)episodes);
        printf("%s on %s: %lld episodes with epsilon %g: mean return %.3f +- %.3f (standard "
               "error), min %.3f, max %.3f\n",
               params_path, cfg.env.name, (long long)episodes, cfg.agent.epsilon_eval, mean,
               stderr_mean, lo, hi);
    }
    free(returns);
    tsr_runner_free(runner);
    return 0;
}
