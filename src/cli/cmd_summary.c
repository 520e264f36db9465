/* cmd_summary.c — `tessera summary CONFIG`: every layer of the configured
 * network with its output shape, parameters and forward FLOPs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

static int usage(FILE *out)
{
    fprintf(out,
            "usage: tessera summary CONFIG [--set section.key=value ...] [--input HxWxC]\n"
            "                       [--actions A] [--atoms K] [--batch N]\n"
            "  CONFIG      an INI run config ('-' for the defaults)\n"
            "  --input     observation shape instead of the environment's (e.g. 84x84x4)\n"
            "  --actions   number of actions instead of the environment's\n"
            "  --atoms     logits per action instead of the [loss] section's\n"
            "  --batch     batch size the FLOPs are counted for (default 1)\n");
    return out == stdout ? 0 : 2;
}

int tsr_cmd_summary(int argc, char **argv)
{
    if (argc >= 2 && tsr_cli_is_help(argv[1])) return usage(stdout);
    if (argc < 2) return usage(stderr);
    const char *path = strcmp(argv[1], "-") ? argv[1] : NULL;
    char **overrides = calloc((size_t)argc, sizeof *overrides);
    int num_overrides = 0;
    int64_t actions = 0, atoms = 0, batch = 1;
    tsr_image_shape input = {0, 0, 0};
    for (int i = 2; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--set") && has_value) {
            if (!tsr_cli_config_key_form(argv[++i], true)) {
                fprintf(stderr, "tessera summary: --set '%s': expected section.key=value\n",
                        argv[i]);
                free(overrides);
                return 2;
            }
            overrides[num_overrides++] = argv[i];
        } else if (!strcmp(argv[i], "--input") && has_value) {
            long long h, w, c;
            char tail;
            if (sscanf(argv[++i], "%lldx%lldx%lld%c", &h, &w, &c, &tail) != 3 || h < 1 || w < 1 ||
                c < 1) {
                fprintf(stderr, "tessera summary: --input '%s' is not HxWxC (e.g. 84x84x4)\n", argv[i]);
                free(overrides);
                return 2;
            }
            input = (tsr_image_shape){h, w, c};
        } else if ((!strcmp(argv[i], "--actions") || !strcmp(argv[i], "--atoms") ||
                    !strcmp(argv[i], "--batch")) && has_value) {
            int64_t *target = argv[i][2] == 'a' ? (argv[i][3] == 'c' ? &actions : &atoms) : &batch;
            if (!tsr_cli_parse_count(argv[i + 1], target)) {
                fprintf(stderr, "tessera summary: %s '%s' is not a positive integer\n", argv[i],
                        argv[i + 1]);
                free(overrides);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "tessera summary: unknown or incomplete option '%s'\n\n", argv[i]);
            free(overrides);
            return usage(stderr);
        }
    }

    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    if (tsr_run_config_load(&schema, &cfg, path, overrides, num_overrides, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera summary: %s\n", err.message);
        free(overrides);
        return 1;
    }
    free(overrides);
    if (!input.h || !actions) {
        tsr_env_game game;
        tsr_env_options options;
        tsr_env env;
        if (tsr_run_config_env(&cfg, &game, &options, &err) != TSR_STATUS_OK ||
            tsr_env_init(&env, game, &options, 0, &err) != TSR_STATUS_OK) {
            fprintf(stderr, "tessera summary: %s\n", err.message);
            return 1;
        }
        tsr_env_spec spec = tsr_env_get_spec(&env);
        /* Vector observations (CartPole): the mlp encoder's (1, 1, F). */
        if (!input.h && spec.obs_ndim == 1) input = (tsr_image_shape){1, 1, spec.obs_shape[0]};
        if (!input.h) {
            if (spec.obs_ndim != 3) {
                fprintf(stderr, "tessera summary: %s has no image observations; give --input\n",
                        spec.name);
                return 1;
            }
            input = (tsr_image_shape){spec.obs_shape[0], spec.obs_shape[1], spec.obs_shape[2]};
        }
        if (!actions) actions = spec.num_actions;
    }

    if (!atoms) {
        tsr_support support;
        if (tsr_support_init(&support, &cfg.loss, &err) != TSR_STATUS_OK) {
            fprintf(stderr, "tessera summary: %s\n", err.message);
            return 1;
        }
        atoms = tsr_support_head_width(&support);
        tsr_support_fini(&support);
    }
    tsr_network net;
    if (tsr_network_init(&net, &cfg.network, input, actions, atoms, 1.0f, TSR_DTYPE_F32, &err) !=
        TSR_STATUS_OK) {
        fprintf(stderr, "tessera summary: %s\n", err.message);
        return 1;
    }
    tsr_rng rng;
    tsr_rng_init(&rng, 0, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&net, &rng);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    printf("network: encoder %s x%lld, head %s, input %lldx%lldx%lld, %lld actions, %lld atoms\n",
           tsr_encoder_names[cfg.network.encoder], (long long)cfg.network.width_scale,
           tsr_head_names[cfg.network.head], (long long)input.h, (long long)input.w,
           (long long)input.c, (long long)actions, (long long)atoms);
    tsr_network_print_summary(&net, ctx, batch, stdout);
    tsr_ctx_free(ctx);
    tsr_network_fini(&net);
    return 0;
}
