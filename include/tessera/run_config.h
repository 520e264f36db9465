/* run_config.h — the whole configuration of a run, one section per part.
 *
 *   [env]      which game and its options (env.h)
 *   [network]  the value network (network.h)
 *   [loss]     the value loss and its support (losses.h)
 *   [pruning]  gradual magnitude pruning (pruning.h); a run prunes only when
 *              its config names a mode (the run schema's default is none)
 *   [agent]    DQN / Rainbow: replay, schedule, exploration (agent.h)
 *   [optimizer] the optimizer of the online network (optim.h)
 *   [run]      seed, threads, iterations and their length, evaluation, logging
 *
 * A file may build on others with `[config] base = FILE[, FILE...]`
 * (config.h, tsr_config_load_file_layered).
 *
 * The schema lives in a caller-owned tsr_run_schema (no global tables are
 * built at run time); tsr_run_config_defaults gives every key its default.
 */
#ifndef TESSERA_RUN_CONFIG_H
#define TESSERA_RUN_CONFIG_H

#include "tessera/config.h"
#include "tessera/env.h"
#include "tessera/losses.h"
#include "tessera/network.h"
#include "tessera/optim.h"
#include "tessera/pruning.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_env_config {
    char name[TSR_CONFIG_STRING_BYTES]; /* "minatar/breakout", "classic/cartpole", ... */
    double sticky_action_prob;
    bool difficulty_ramping;
    bool minimal_action_set;
    bool continuous;
    double continuous_threshold;
} tsr_env_config;

typedef enum tsr_agent_kind {
    /* Dopamine's JaxDQNAgent: the batch loss is the mean of the per-sample
     * losses; its replay is uniform (prioritized = true is refused). */
    TSR_AGENT_DQN = 0,
    /* Dopamine's Full Rainbow / DER: the per-sample losses are weighted by the
     * replay's importance weights, and priorities are updated from them. */
    TSR_AGENT_RAINBOW,
} tsr_agent_kind;

extern const char *const tsr_agent_kind_names[];     /* "dqn", "rainbow" */
extern const char *const tsr_optimizer_kind_names[]; /* tsr_optimizer_kind order */

/* [agent]: field names are the keys; counters are in agent steps
 * (components.md §1.9). Defaults: Dopamine's JAX DQN. */
typedef struct tsr_agent_config {
    int kind;                      /* tsr_agent_kind; dqn */
    double gamma;                  /* 0.99 */
    int64_t n_step;                /* 1 */
    int64_t min_replay_history;    /* 20,000 transitions before updates start */
    int64_t update_period;         /* 4 agent steps per update */
    int64_t target_update_period;  /* 8,000 agent steps per target sync */
    int64_t batch_size;            /* 32 */
    int64_t replay_capacity;       /* 1,000,000 */
    bool prioritized;              /* sum-tree sampling (kind = rainbow) */
    double priority_exponent;      /* alpha 0.5 */
    double importance_exponent;    /* beta 0.5 */
    /* Reproduces google/dopamine#230: prioritized replay requested but
     * sampling uniform, weights 1, priorities never updated. Off. */
    bool dopamine_uniform_replay;
    bool double_dqn;               /* bootstrap action from the online network */
    double epsilon_train;          /* final training epsilon: 0.01 */
    double epsilon_eval;           /* 0.001 */
    int64_t epsilon_decay_period;  /* 250,000 agent steps after the warm-up */
    bool clip_gradients;           /* clip the global gradient norm ... */
    double max_grad_norm;          /* ... to this (10) */
    bool bit_pack_replay;          /* binary uint8 observations at 1 bit per cell */
} tsr_agent_config;

/* [optimizer]: tsr_optimizer_options as config keys. Defaults: Dopamine's
 * DQN Adam (lr 6.25e-5, eps 1.5e-4). */
typedef struct tsr_optimizer_config {
    int kind; /* tsr_optimizer_kind */
    double learning_rate;
    double eps;
    double beta1, beta2;   /* adam */
    double alpha;          /* rmsprop */
    bool centered;         /* rmsprop */
    double momentum;       /* sgd, rmsprop */
    double weight_decay;   /* adam (decoupled) */
} tsr_optimizer_config;

/* [run] */
typedef struct tsr_run_options {
    int64_t seed;                /* every random stream derives from it */
    int64_t threads;             /* OpenMP threads (results are identical for a fixed count) */
    int64_t iterations;          /* 200 */
    int64_t training_steps;      /* agent steps per iteration (whole episodes): 250,000 */
    int64_t evaluation_episodes; /* per iteration, with epsilon_eval; 0 skips evaluation */
    int64_t max_episode_steps;   /* an episode is truncated after this many agent steps */
    int64_t log_every;           /* agent steps between progress lines when not on a terminal */
    double dormant_threshold;    /* tau of the dormant-neuron metric */
    /* Flush subnormal floats to zero on the run's threads: optimizer moments
     * decaying into subnormals slowed MinAtar updates twofold. On by default. */
    bool flush_denormals;
    int64_t checkpoint_every;    /* iterations between checkpoints; 0: only the last */
    int64_t checkpoint_keep;     /* newest checkpoint files kept (>= 1) */
    bool checkpoint_replay;      /* replay buffer in each checkpoint (exact resume) */
} tsr_run_options;

typedef struct tsr_run_config {
    tsr_env_config env;
    tsr_network_config network;
    tsr_value_loss_config loss;
    tsr_prune_config pruning;
    tsr_agent_config agent;
    tsr_optimizer_config optimizer;
    tsr_run_options run;
} tsr_run_config;

enum { TSR_RUN_SCHEMA_MAX_KEYS = 256 };

typedef struct tsr_run_schema {
    tsr_config_key keys[TSR_RUN_SCHEMA_MAX_KEYS];
    tsr_config_schema schema;
} tsr_run_schema;

void tsr_run_schema_init(tsr_run_schema *s);
void tsr_run_config_defaults(const tsr_run_schema *s, tsr_run_config *cfg);
/* Loads `path` (NULL: defaults only) with its bases, then applies the
 * overrides in order, then checks the cross-key rules. */
tsr_status tsr_run_config_load(const tsr_run_schema *s, tsr_run_config *cfg, const char *path,
                               char *const *overrides, int num_overrides, tsr_error *err);
/* The same from INI text held in memory (a checkpoint's stored config),
 * named `name` in error messages; base files are not followed. */
tsr_status tsr_run_config_load_text(const tsr_run_schema *s, tsr_run_config *cfg,
                                    const char *text, const char *name, char *const *overrides,
                                    int num_overrides, tsr_error *err);
/* The environment's game and options from the [env] section. */
tsr_status tsr_run_config_env(const tsr_run_config *cfg, tsr_env_game *game,
                              tsr_env_options *options, tsr_error *err);
/* The [optimizer] section as optimizer options. */
tsr_optimizer_options tsr_run_config_optimizer(const tsr_run_config *cfg);

#ifdef __cplusplus
}
#endif

#endif
