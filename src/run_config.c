/* run_config.c — the run's schema, assembled from each part's keys. */
#include "tessera/run_config.h"

#include <stddef.h>
#include <string.h>

#include "tessera/status.h"

#define ENV_KEY(name, type, min, max, def, help)                                                  \
    {"env", #name, type, offsetof(tsr_run_config, env.name), min, max, NULL, def, help}

static const tsr_config_key env_keys[] = {
    ENV_KEY(name, TSR_CONFIG_STRING, 0, 0, "minatar/breakout",
            "minatar/{asterix,breakout,freeway,seaquest,space_invaders} or classic/cartpole"),
    ENV_KEY(sticky_action_prob, TSR_CONFIG_DOUBLE, 0, 1, "0.1",
            "probability of repeating the previous action (MinAtar's default; 0 for CartPole)"),
    ENV_KEY(difficulty_ramping, TSR_CONFIG_BOOL, 0, 0, "true",
            "asterix, seaquest, space_invaders: speed up over time"),
    ENV_KEY(minimal_action_set, TSR_CONFIG_BOOL, 0, 0, "false",
            "use the game's minimal action set instead of all 6"),
    ENV_KEY(continuous, TSR_CONFIG_BOOL, 0, 0, "false",
            "(r, theta, fire) actions mapped to the joystick (CALE)"),
    ENV_KEY(continuous_threshold, TSR_CONFIG_DOUBLE, 0, 0.999999, "0.5",
            "CALE's symmetric threshold"),
};

void tsr_run_schema_init(tsr_run_schema *s)
{
    int n = 0;
    for (size_t i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++) s->keys[n++] = env_keys[i];
    n += tsr_network_config_keys(offsetof(tsr_run_config, network), s->keys + n,
                                 TSR_RUN_SCHEMA_MAX_KEYS - n);
    n += tsr_value_loss_config_keys(offsetof(tsr_run_config, loss), s->keys + n,
                                    TSR_RUN_SCHEMA_MAX_KEYS - n);
    n += tsr_prune_config_keys(offsetof(tsr_run_config, pruning), s->keys + n,
                               TSR_RUN_SCHEMA_MAX_KEYS - n);
    TSR_ASSERT_MSG(n <= TSR_RUN_SCHEMA_MAX_KEYS, "run schema has %d keys", n);
    s->schema.keys = s->keys;
    s->schema.count = n;
}

void tsr_run_config_defaults(const tsr_run_schema *s, tsr_run_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    tsr_config_set_defaults(&s->schema, cfg);
}

tsr_status tsr_run_config_env(const tsr_run_config *cfg, tsr_env_game *game,
                              tsr_env_options *options, tsr_error *err)
{
    tsr_status st = tsr_env_find_game(cfg->env.name, game, err);
    if (st != TSR_STATUS_OK) return st;
    *options = tsr_env_default_options(*game);
    options->sticky_action_prob = cfg->env.sticky_action_prob;
    options->difficulty_ramping = cfg->env.difficulty_ramping;
    options->minimal_action_set = cfg->env.minimal_action_set;
    options->continuous = cfg->env.continuous;
    options->continuous_threshold = cfg->env.continuous_threshold;
    return tsr_env_check_options(*game, options, err);
}

tsr_status tsr_run_config_load(const tsr_run_schema *s, tsr_run_config *cfg, const char *path,
                               char *const *overrides, int num_overrides, tsr_error *err)
{
    tsr_run_config_defaults(s, cfg);
    tsr_status st = TSR_STATUS_OK;
    if (path) st = tsr_config_load_file(&s->schema, cfg, path, err);
    for (int i = 0; st == TSR_STATUS_OK && i < num_overrides; i++)
        st = tsr_config_apply_override(&s->schema, cfg, overrides[i], err);
    if (st == TSR_STATUS_OK) st = tsr_network_config_validate(&cfg->network, err);
    if (st == TSR_STATUS_OK) st = tsr_value_loss_config_validate(&cfg->loss, err);
    if (st == TSR_STATUS_OK) st = tsr_prune_config_validate(&cfg->pruning, err);
    if (st == TSR_STATUS_OK) {
        tsr_env_game game;
        tsr_env_options options;
        st = tsr_run_config_env(cfg, &game, &options, err);
    }
    return st;
}
