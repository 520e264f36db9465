/* agent.h — value-based agents (DQN and Rainbow-style) with Dopamine's loop
 * semantics, and the runner that trains one in an environment.
 *
 * One agent is built from a whole run config (run_config.h):
 *   [network]    the online and the target network (network.h)
 *   [loss]       the value loss (losses.h): mse, huber, c51, twohot, hlgauss
 *   [pruning]    optional gradual magnitude pruning around each update
 *   [optimizer]  the online network's optimizer (optim.h)
 *   [agent]      replay, schedule and exploration
 * A Rainbow-style agent is the same code with kind = rainbow, a categorical
 * loss, n_step > 1, prioritized replay, network.dueling, network.noisy and
 * double_dqn set (the rainbow and der files in configs/base).
 *
 * Loop semantics (Dopamine's JaxDQNAgent, components.md §1.9), with
 * training_steps counting the agent's steps in training mode:
 *   begin_episode(obs)       train_step(); choose an action
 *   step(reward, obs)        store (previous obs, action, reward); train_step();
 *                            choose an action
 *   end_episode(reward, t)   store the last transition: terminal t, or a
 *                            truncation when t is false
 *   train_step()             if replay add_count > min_replay_history:
 *                              update when training_steps % update_period == 0,
 *                              sync the target when
 *                              training_steps % target_update_period == 0;
 *                            then training_steps += 1
 * so the first action of a run sees training_steps = 1 when epsilon is
 * computed (Dopamine increments before select_action). Epsilon follows
 * tsr_linearly_decaying_epsilon(decay_period, training_steps,
 * min_replay_history, epsilon_train); it is 0 with NoisyNet layers
 * (network.noisy; router noise keeps the schedule), and
 * epsilon_eval in evaluation mode (where nothing is stored or trained). An
 * action is random when u < epsilon, u uniform in [0, 1) from the exploration
 * stream (Dopamine tests u <= epsilon; with < an epsilon of 0 is exactly
 * greedy); greedy ties go to the lowest action.
 *
 * One update: sample a batch (the replay's own stream), target network on s'
 * (and the online network on s' for double DQN) without gradient, online
 * network on s, per-sample TD loss (tsr_value_loss_td), batch loss = mean
 * (dqn) or mean of importance weight x loss (rainbow), backward, optional
 * global-norm clipping, then tsr_pruner_step, the optimizer step and
 * tsr_pruner_apply (so the target copies masked weights), and, with
 * prioritized replay, priorities from the per-sample losses. After the
 * warm-up an update allocates nothing (the pass arena and the batch buffers
 * are reused).
 *
 * Random streams, all seeded from run.seed (rng.h): INIT (parameters),
 * EXPLORATION (training epsilon-greedy), REPLAY (inside the replay), NOISE
 * (NoisyNet, random routers), ENV and STICKY (inside the training env), and
 * TSR_RNG_STREAM_EVAL_* for evaluation, so evaluating never shifts training.
 */
#ifndef TESSERA_AGENT_H
#define TESSERA_AGENT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/autograd.h"
#include "tessera/checkpoint.h"
#include "tessera/env.h"
#include "tessera/network.h"
#include "tessera/pruning.h"
#include "tessera/run_config.h"
#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Streams of evaluation (any id not in tsr_rng_stream is free, rng.h). */
enum {
    TSR_RNG_STREAM_EVAL_EXPLORATION = 0x45564131, /* evaluation epsilon-greedy */
    TSR_RNG_STREAM_EVAL_ENV_SEED = 0x45564132,    /* draws the evaluation env's seed */
    TSR_RNG_STREAM_EVAL_NOISE = 0x45564133,       /* random routers, noisy routing when
                                                   * evaluating (NoisyNet layers use their means) */
};

/* Dopamine's linearly_decaying_epsilon: with D = decay_period and
 * W = warmup_steps, epsilon(t) = final + clip((1 - final) (D + W - t) / D,
 * 0, 1 - final): 1 until W, then linear down to `final` at W + D. */
double tsr_linearly_decaying_epsilon(int64_t decay_period, int64_t step, int64_t warmup_steps,
                                     double epsilon_final);

/* ---- the agent -------------------------------------------------------------- */

typedef struct tsr_agent tsr_agent;

typedef struct tsr_agent_counters {
    int64_t training_steps;        /* train_step calls so far */
    int64_t updates;               /* gradient updates so far */
    int64_t target_syncs;          /* target-network syncs so far */
    int64_t last_target_sync_step; /* training_steps value at the last sync (-1: none) */
    int64_t replay_add_count;      /* transitions stored (0 without a replay) */
} tsr_agent_counters;

/* Accumulated since the last tsr_agent_take_stats. */
typedef struct tsr_agent_stats {
    int64_t updates;
    double loss_sum;   /* batch losses */
    double q_sum;      /* mean over the batch of Q(s, a) of the actions taken */
} tsr_agent_stats;

/* Builds the agent for an environment of `spec` (discrete actions; image
 * observations take a conv encoder, vector observations encoder = mlp).
 * `total_updates` is the run's expected number of gradient updates (for
 * pruning schedules given as fractions; tsr_run_expected_updates). With
 * `training` false only the online network is built (no replay, optimizer,
 * target or pruner): for evaluating saved parameters. Errors name the
 * config key and the value. */
tsr_status tsr_agent_new(tsr_agent **out, const tsr_run_config *cfg, const tsr_env_spec *spec,
                         int64_t total_updates, bool training, tsr_error *err);
void tsr_agent_free(tsr_agent *agent); /* NULL is allowed */

/* Dopamine's agent interface; observations are spec.obs_bytes bytes. */
int32_t tsr_agent_begin_episode(tsr_agent *agent, const void *obs);
int32_t tsr_agent_step(tsr_agent *agent, float reward, const void *obs);
void tsr_agent_end_episode(tsr_agent *agent, float reward, bool terminal);
/* Evaluation mode: epsilon_eval, NoisyNet means, nothing stored or trained. */
void tsr_agent_set_eval_mode(tsr_agent *agent, bool eval);
/* The epsilon the last action was chosen with. */
double tsr_agent_last_epsilon(const tsr_agent *agent);

tsr_agent_counters tsr_agent_get_counters(const tsr_agent *agent);
/* Returns the statistics since the previous call and restarts them. */
tsr_agent_stats tsr_agent_take_stats(tsr_agent *agent);
/* Which replay is in effect, e.g. "prioritized (alpha 0.5, beta 0.5)",
 * "uniform", "uniform (dopamine_uniform_replay: google/dopamine#230)". */
const char *tsr_agent_replay_description(const tsr_agent *agent);

tsr_network *tsr_agent_online(tsr_agent *agent);
tsr_network *tsr_agent_target(tsr_agent *agent); /* NULL when not training */
tsr_ctx *tsr_agent_ctx(tsr_agent *agent);
const tsr_pruner *tsr_agent_pruner(const tsr_agent *agent); /* NULL without pruning */

/* Network health at the end of an iteration: the share of exactly-zero
 * parameters (jaxpruner's TotalSparsity), and on the last training batch
 * the tau-dormant fraction of the encoder's output units and of the head's
 * hidden units (tsr_network_head_hidden: the experts' hidden activations of
 * an MoE head, the statistic Dopamine's MoE agents log; NAN without a hidden
 * layer). Both NAN before the first update. Allocates (not for the training
 * step). */
tsr_status tsr_agent_health(tsr_agent *agent, double tau, double *sparsity,
                            double *dormant_fraction, double *head_dormant_fraction,
                            tsr_error *err);

/* Writes or reads a training agent's whole state through a checkpoint
 * (checkpoints/FORMAT.md): online and target parameters, optimizer, pruner,
 * counters, random streams, the last batch, and — when writing with
 * `with_replay`, or reading a file that has one — the replay. On reading,
 * *replay_restored (may be NULL) says whether the replay came back; without
 * it the agent keeps an empty replay and warms up again. */
void tsr_agent_checkpoint(tsr_agent *agent, tsr_ckpt *c, bool with_replay, bool *replay_restored);

/* Gradient updates a run of `cfg` makes, counted as the loop would if each
 * agent step stored one transition: steps t in [0, iterations x
 * training_steps) with t > min_replay_history and t % update_period == 0. */
int64_t tsr_run_expected_updates(const tsr_run_config *cfg);

/* ---- the runner: iterations of training and evaluation ---------------------- */

typedef struct tsr_iteration_metrics {
    int64_t iteration;          /* 1-based */
    int64_t agent_steps;        /* training agent steps so far */
    int64_t gradient_updates;   /* so far */
    int64_t episodes;           /* training episodes so far */
    int64_t iteration_episodes; /* training episodes finished in this iteration */
    double train_return;        /* mean return of this iteration's episodes (NAN if none) */
    double recent_return;       /* mean return of the last 100 training episodes finished so far,
                                 * whatever their iteration (fewer at the start; NAN if none):
                                 * the MinAtar paper's learning-curve statistic */
    double loss;                /* mean batch loss of this iteration's updates (NAN if none) */
    double mean_q;              /* mean Q(s, a) on those batches (NAN if none) */
    double sparsity;            /* share of zero parameters */
    double dormant_fraction;    /* encoder units, tau = run.dormant_threshold (NAN if no update) */
    double head_dormant_fraction; /* the head's hidden units (MoE: expert hidden), same tau */
    double steps_per_second;    /* training phase only */
    double eval_return;         /* mean over run.evaluation_episodes (NAN if 0) */
    double seconds;             /* wall time of the iteration, evaluation included */
} tsr_iteration_metrics;

typedef struct tsr_progress {
    int64_t iteration, iterations;  /* 1-based current, and total */
    int64_t iteration_steps;        /* training steps done in this iteration */
    int64_t training_steps;         /* per iteration (run.training_steps) */
    int64_t total_steps;            /* training steps so far */
    int64_t episodes;               /* training episodes so far */
    double recent_return;           /* mean of the last 100 training episodes (NAN if none) */
    double elapsed;                 /* seconds since the runner started */
} tsr_progress;

/* Called from the training phase every `every` agent steps; return false to
 * stop the run after the current episode (the iteration is then reported
 * as it stands). */
typedef bool (*tsr_progress_fn)(void *user, const tsr_progress *progress);

typedef struct tsr_runner tsr_runner;

/* Builds the training and evaluation environments, the agent and its
 * streams from `cfg`, and sets the OpenMP thread count to run.threads.
 * `training` false builds an evaluation-only agent (tsr_runner_evaluate). */
tsr_status tsr_runner_new(tsr_runner **out, const tsr_run_config *cfg, bool training,
                          tsr_error *err);
void tsr_runner_free(tsr_runner *runner);
void tsr_runner_set_progress(tsr_runner *runner, tsr_progress_fn fn, void *user, int64_t every);
/* A flag (say, set by a SIGINT handler) that stops the iteration once it is
 * nonzero: read after every training episode and before every evaluation
 * episode of tsr_runner_run_iteration, whose evaluation phase the progress
 * callback does not see. NULL: none. */
void tsr_runner_set_stop_flag(tsr_runner *runner, const volatile sig_atomic_t *flag);
/* One iteration: a training phase of at least run.training_steps agent steps
 * (whole episodes), then run.evaluation_episodes evaluation episodes. Returns
 * false when the progress callback or the stop flag asked to stop (after the
 * current episode, training or evaluation). */
bool tsr_runner_run_iteration(tsr_runner *runner, tsr_iteration_metrics *metrics, tsr_error *err);
/* `episodes` evaluation episodes with epsilon_eval on the evaluation env;
 * returns their mean return, and optionally each return (episodes entries).
 * A run asked to stop (stop flag, or a stopped iteration) plays fewer: the
 * mean is then over those played, and `returns` holds NAN for the rest. */
double tsr_runner_evaluate(tsr_runner *runner, int64_t episodes, double *returns);
tsr_agent *tsr_runner_agent(tsr_runner *runner);
const tsr_env_spec *tsr_runner_env_spec(const tsr_runner *runner);
/* Iterations finished so far (restored by a checkpoint load). */
int64_t tsr_runner_iteration(const tsr_runner *runner);
/* The training (evaluation false) or the evaluation environment. */
const tsr_env *tsr_runner_env(const tsr_runner *runner, bool evaluation);

/* Checkpoints of a training runner, between iterations (checkpoints/FORMAT.md):
 * the resolved config, the counters, the last 100 training returns, both
 * environments (state, sticky-action memory, streams) and the agent
 * (tsr_agent_checkpoint), the replay included when `with_replay`. Written
 * atomically (checkpoint.h). Loading into a runner built from the same
 * config continues the run exactly as if it had not stopped; a checkpoint
 * of another network, optimizer, pruning schedule, replay size or game is an
 * error naming what differs. On an error the runner is half loaded and must
 * be freed. */
tsr_status tsr_runner_save_checkpoint(tsr_runner *runner, const char *path, bool with_replay,
                                      tsr_error *err);
tsr_status tsr_runner_load_checkpoint(tsr_runner *runner, const char *path, bool *replay_restored,
                                      tsr_error *err);

/* Flush-to-zero and denormals-are-zero on the calling thread and every
 * OpenMP worker (what a run with run.flush_denormals does; x86 only). */
void tsr_flush_denormals(void);

/* Metric files: the CSV header line, and one row / one JSON object per iteration
 * (NAN values are empty in CSV and null in JSON). */
void tsr_metrics_write_csv_header(FILE *out);
void tsr_metrics_write_csv_row(FILE *out, const tsr_iteration_metrics *m);
void tsr_metrics_write_json(FILE *out, const tsr_iteration_metrics *m);

#ifdef __cplusplus
}
#endif

#endif
