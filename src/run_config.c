/* run_config.c — the run's schema, assembled from each part's keys. */
#include "tessera/run_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tessera/status.h"

#define ENV_KEY(name, type, min, max, def, help)                                                  \
    {"env", #name, type, offsetof(tsr_run_config, env.name), min, max, NULL, def, help}

static const tsr_config_key env_keys[] = {
    ENV_KEY(name, TSR_CONFIG_STRING, 0, 0, "minatar/breakout",
            "minatar/{asterix,breakout,freeway,seaquest,space_invaders} or classic/cartpole"),
    ENV_KEY(sticky_action_prob, TSR_CONFIG_DOUBLE, 0, 1, "0.1",
            "probability of repeating the previous action (MinAtar's 0.1, for every game: "
            "CartPole configs set 0, as configs/base/cartpole_*.ini do)"),
    ENV_KEY(difficulty_ramping, TSR_CONFIG_BOOL, 0, 0, "true",
            "asterix, seaquest, space_invaders: speed up over time"),
    ENV_KEY(minimal_action_set, TSR_CONFIG_BOOL, 0, 0, "false",
            "use the game's minimal action set instead of all 6"),
    ENV_KEY(continuous, TSR_CONFIG_BOOL, 0, 0, "false",
            "(r, theta, fire) actions mapped to the joystick (CALE)"),
    ENV_KEY(continuous_threshold, TSR_CONFIG_DOUBLE, 0, 0.999999, "0.5",
            "CALE's symmetric threshold"),
};

const char *const tsr_agent_kind_names[] = {"dqn", "rainbow", NULL};
const char *const tsr_optimizer_kind_names[] = {"sgd", "adam", "rmsprop", NULL};

#define AGENT_KEY(name, type, min, max, choices, def, help)                                      \
    {"agent", #name, type, offsetof(tsr_run_config, agent.name), min, max, choices, def, help}

static const tsr_config_key agent_keys[] = {
    AGENT_KEY(kind, TSR_CONFIG_ENUM, 0, 0, tsr_agent_kind_names, "dqn",
              "dqn: mean TD loss, uniform replay; rainbow: importance-weighted loss, priorities"),
    AGENT_KEY(gamma, TSR_CONFIG_DOUBLE, 0, 1, NULL, "0.99", "discount"),
    AGENT_KEY(n_step, TSR_CONFIG_INT, 1, 1000, NULL, "1", "steps of the bootstrapped return"),
    AGENT_KEY(min_replay_history, TSR_CONFIG_INT, 0, 1e12, NULL, "20000",
              "transitions stored before updates start (and epsilon starts decaying)"),
    AGENT_KEY(update_period, TSR_CONFIG_INT, 1, 1e9, NULL, "4", "agent steps per gradient update"),
    AGENT_KEY(target_update_period, TSR_CONFIG_INT, 1, 1e12, NULL, "8000",
              "agent steps per target-network sync"),
    AGENT_KEY(batch_size, TSR_CONFIG_INT, 1, 65536, NULL, "32", "transitions per update"),
    AGENT_KEY(replay_capacity, TSR_CONFIG_INT, 2, 1e10, NULL, "1000000",
              "transitions the replay holds (circular)"),
    AGENT_KEY(prioritized, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
              "prioritized replay (sum tree; needs kind = rainbow)"),
    AGENT_KEY(priority_exponent, TSR_CONFIG_DOUBLE, 0, 10, NULL, "0.5",
              "alpha: priority = (loss + 1e-10)^alpha"),
    AGENT_KEY(importance_exponent, TSR_CONFIG_DOUBLE, 0, 10, NULL, "0.5",
              "beta of the importance weights (fixed, as Dopamine)"),
    AGENT_KEY(dopamine_uniform_replay, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
              "reproduce google/dopamine#230: prioritized requested, sampling uniform"),
    AGENT_KEY(double_dqn, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
              "choose the bootstrap action with the online network"),
    AGENT_KEY(epsilon_train, TSR_CONFIG_DOUBLE, 0, 1, NULL, "0.01",
              "final training epsilon (0 with noisy networks)"),
    AGENT_KEY(epsilon_eval, TSR_CONFIG_DOUBLE, 0, 1, NULL, "0.001", "evaluation epsilon"),
    AGENT_KEY(epsilon_decay_period, TSR_CONFIG_INT, 1, 1e12, NULL, "250000",
              "agent steps over which epsilon falls from 1 to epsilon_train after the warm-up"),
    AGENT_KEY(clip_gradients, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
              "clip the global gradient norm to max_grad_norm"),
    AGENT_KEY(max_grad_norm, TSR_CONFIG_DOUBLE, 1e-12, 1e12, NULL, "10",
              "the clipping norm (with clip_gradients)"),
    AGENT_KEY(bit_pack_replay, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
              "store binary uint8 observations (MinAtar) at 1 bit per cell"),
};

#define OPT_KEY(name, type, min, max, choices, def, help)                                        \
    {"optimizer", #name, type, offsetof(tsr_run_config, optimizer.name), min, max, choices, def,   \
     help}

static const tsr_config_key optimizer_keys[] = {
    OPT_KEY(kind, TSR_CONFIG_ENUM, 0, 0, tsr_optimizer_kind_names, "adam",
            "adam (AdamW with weight_decay), rmsprop (PyTorch semantics) or sgd"),
    OPT_KEY(learning_rate, TSR_CONFIG_DOUBLE, 1e-12, 10, NULL, "6.25e-05", "step size"),
    OPT_KEY(eps, TSR_CONFIG_DOUBLE, 0, 10, NULL, "0.00015",
            "adam: added outside the root; rmsprop: added to the root (> 0)"),
    OPT_KEY(beta1, TSR_CONFIG_DOUBLE, 0, 0.999999999, NULL, "0.9", "adam: first-moment decay"),
    OPT_KEY(beta2, TSR_CONFIG_DOUBLE, 0, 0.999999999, NULL, "0.999", "adam: second-moment decay"),
    OPT_KEY(alpha, TSR_CONFIG_DOUBLE, 0, 0.999999999, NULL, "0.95",
            "rmsprop: squared-gradient smoothing"),
    OPT_KEY(centered, TSR_CONFIG_BOOL, 0, 0, NULL, "false", "rmsprop: subtract the mean gradient"),
    OPT_KEY(momentum, TSR_CONFIG_DOUBLE, 0, 0.999999999, NULL, "0", "sgd, rmsprop: momentum"),
    OPT_KEY(weight_decay, TSR_CONFIG_DOUBLE, 0, 10, NULL, "0", "adam: decoupled weight decay"),
};

#define RUN_KEY(name, type, min, max, def, help)                                                  \
    {"run", #name, type, offsetof(tsr_run_config, run.name), min, max, NULL, def, help}

static const tsr_config_key run_keys[] = {
    RUN_KEY(seed, TSR_CONFIG_INT, 0, 9007199254740991.0, "0",
            "seeds every random stream (init, exploration, replay, env, sticky, noise)"),
    RUN_KEY(threads, TSR_CONFIG_INT, 1, 1024, "1",
            "OpenMP threads; a run is bit-identical for a given seed and thread count"),
    RUN_KEY(iterations, TSR_CONFIG_INT, 1, 1e9, "200", "training iterations"),
    RUN_KEY(training_steps, TSR_CONFIG_INT, 1, 1e12, "250000",
            "agent steps per iteration (the last episode is finished, as Dopamine)"),
    RUN_KEY(evaluation_episodes, TSR_CONFIG_INT, 0, 1e9, "10",
            "episodes with epsilon_eval after each iteration; 0 skips evaluation"),
    RUN_KEY(max_episode_steps, TSR_CONFIG_INT, 1, 1e12, "27000",
            "agent steps after which an episode is truncated (CartPole also truncates at its "
            "own 500)"),
    RUN_KEY(log_every, TSR_CONFIG_INT, 1, 1e12, "10000",
            "agent steps between progress lines when stderr is not a terminal"),
    RUN_KEY(dormant_threshold, TSR_CONFIG_DOUBLE, 0, 1e6, "0",
            "tau of the dormant-neuron fraction (0: exactly inactive units)"),
    RUN_KEY(flush_denormals, TSR_CONFIG_BOOL, 0, 0, "true",
            "flush subnormal floats to zero on the run's threads (x86 MXCSR FTZ/DAZ)"),
    RUN_KEY(checkpoint_every, TSR_CONFIG_INT, 0, 1e9, "1",
            "iterations between HDF5 checkpoints (0: only after the last iteration)"),
    RUN_KEY(checkpoint_keep, TSR_CONFIG_INT, 1, 1e6, "2", "newest checkpoints kept"),
    RUN_KEY(checkpoint_replay, TSR_CONFIG_BOOL, 0, 0, "true",
            "save the replay buffer in checkpoints (needed for an exact resume)"),
};

#define COPY_KEYS(table)                                                                          \
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) s->keys[n++] = table[i]

void tsr_run_schema_init(tsr_run_schema *s)
{
    int n = 0;
    for (size_t i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++) s->keys[n++] = env_keys[i];
    n += tsr_network_config_keys(offsetof(tsr_run_config, network), s->keys + n,
                                 TSR_RUN_SCHEMA_MAX_KEYS - n);
    n += tsr_value_loss_config_keys(offsetof(tsr_run_config, loss), s->keys + n,
                                    TSR_RUN_SCHEMA_MAX_KEYS - n);
    int prune_first = n;
    n += tsr_prune_config_keys(offsetof(tsr_run_config, pruning), s->keys + n,
                               TSR_RUN_SCHEMA_MAX_KEYS - n);
    /* A run prunes only when its config asks: the [pruning] section's own
     * default mode (gmp, the library's) would prune every run silently. */
    for (int i = prune_first; i < n; i++)
        if (!strcmp(s->keys[i].name, "mode")) s->keys[i].default_value = "none";
    COPY_KEYS(agent_keys);
    COPY_KEYS(optimizer_keys);
    COPY_KEYS(run_keys);
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

tsr_optimizer_options tsr_run_config_optimizer(const tsr_run_config *cfg)
{
    const tsr_optimizer_config *o = &cfg->optimizer;
    return (tsr_optimizer_options){
        .kind = (tsr_optimizer_kind)o->kind,
        .learning_rate = o->learning_rate,
        .beta1 = o->beta1,
        .beta2 = o->beta2,
        .eps = o->eps,
        .weight_decay = o->weight_decay,
        .alpha = o->alpha,
        .centered = o->centered,
        .momentum = o->momentum,
    };
}

/* Cross-key rules of [agent] and [optimizer]. */
static tsr_status validate_agent(const tsr_run_config *cfg, tsr_error *err)
{
    const tsr_agent_config *a = &cfg->agent;
    if (a->replay_capacity < a->batch_size + a->n_step + 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "agent.replay_capacity = %lld is too small: it must be at least "
                             "agent.batch_size + agent.n_step + 1 = %lld",
                             (long long)a->replay_capacity,
                             (long long)(a->batch_size + a->n_step + 1));
    if (a->prioritized && a->kind == TSR_AGENT_DQN)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "agent.prioritized = true needs agent.kind = rainbow (the dqn "
                             "agent neither weights its loss nor updates priorities)");
    if (a->dopamine_uniform_replay && !a->prioritized)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "agent.dopamine_uniform_replay reproduces a bug of prioritized "
                             "replay (google/dopamine#230); it needs agent.prioritized = true");
    if ((double)cfg->run.iterations * (double)cfg->run.training_steps > 1e15)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "run.iterations x run.training_steps = %lld x %lld exceeds 1e15 "
                             "agent steps", (long long)cfg->run.iterations,
                             (long long)cfg->run.training_steps);
    if (cfg->optimizer.kind == TSR_OPTIMIZER_RMSPROP && !(cfg->optimizer.eps > 0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "optimizer.eps = %g: rmsprop needs eps > 0", cfg->optimizer.eps);
    if (cfg->optimizer.weight_decay > 0 && cfg->optimizer.kind != TSR_OPTIMIZER_ADAM)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "optimizer.weight_decay = %g applies to kind = adam only",
                             cfg->optimizer.weight_decay);
    return TSR_STATUS_OK;
}

static tsr_status finish_load(const tsr_run_schema *s, tsr_run_config *cfg, tsr_status st,
                              char *const *overrides, int num_overrides, tsr_error *err);

tsr_status tsr_run_config_load(const tsr_run_schema *s, tsr_run_config *cfg, const char *path,
                               char *const *overrides, int num_overrides, tsr_error *err)
{
    tsr_run_config_defaults(s, cfg);
    tsr_status st = TSR_STATUS_OK;
    if (path) st = tsr_config_load_file_layered(&s->schema, cfg, path, err);
    return finish_load(s, cfg, st, overrides, num_overrides, err);
}

tsr_status tsr_run_config_load_text(const tsr_run_schema *s, tsr_run_config *cfg,
                                    const char *text, const char *name, char *const *overrides,
                                    int num_overrides, tsr_error *err)
{
    tsr_run_config_defaults(s, cfg);
    size_t length = strlen(text);
    if (length == 0)
        return tsr_error_set(err, TSR_STATUS_FORMAT, "%s: the config is empty", name);
    FILE *f = fmemopen((void *)text, length, "r");
    if (!f)
        return tsr_error_set(err, TSR_STATUS_OUT_OF_MEMORY, "%s: cannot read the config: %s",
                             name, strerror(errno));
    tsr_status st = tsr_config_load_stream(&s->schema, cfg, f, name, err);
    fclose(f);
    return finish_load(s, cfg, st, overrides, num_overrides, err);
}

/* Overrides, then the cross-key rules. */
static tsr_status finish_load(const tsr_run_schema *s, tsr_run_config *cfg, tsr_status st,
                              char *const *overrides, int num_overrides, tsr_error *err)
{
    for (int i = 0; st == TSR_STATUS_OK && i < num_overrides; i++)
        st = tsr_config_apply_override(&s->schema, cfg, overrides[i], err);
    if (st == TSR_STATUS_OK) st = tsr_network_config_validate(&cfg->network, err);
    if (st == TSR_STATUS_OK) st = tsr_value_loss_config_validate(&cfg->loss, err);
    if (st == TSR_STATUS_OK) st = tsr_prune_config_validate(&cfg->pruning, err);
    if (st == TSR_STATUS_OK) st = validate_agent(cfg, err);
    if (st == TSR_STATUS_OK) {
        tsr_env_game game;
        tsr_env_options options;
        st = tsr_run_config_env(cfg, &game, &options, err);
        /* A short name ("breakout") is stored in full, so every run of a
         * game carries one name (reports group and normalise by it). */
        if (st == TSR_STATUS_OK)
            snprintf(cfg->env.name, sizeof cfg->env.name, "%s", tsr_env_game_name(game));
    }
    return st;
}
