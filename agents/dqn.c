/* dqn.c — the DQN / Rainbow-style agent: Dopamine's loop semantics over
 * tessera's networks, value losses, optimizers, pruner and replay (agent.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/agent.h"
#include "tessera/diagnostics.h"
#include "tessera/ops.h"
#include "tessera/optim.h"
#include "tessera/replay.h"
#include "tessera/status.h"

struct tsr_agent {
    tsr_run_config cfg;
    tsr_env_spec spec;
    bool training;
    bool eval_mode;
    bool noisy;                 /* NoisyNet layers (network.noisy): epsilon 0 in training */
    bool weighted_loss;         /* kind = rainbow: importance-weighted batch loss */
    bool update_priorities;     /* prioritized sampling actually in effect */
    char replay_description[160];

    tsr_network online, target;
    bool target_built;
    tsr_support support;
    tsr_optimizer *optimizer;
    tsr_pruner *pruner;
    tsr_replay *replay;
    tsr_replay_batch *batch;
    tsr_ctx *ctx;

    tsr_rng exploration_rng, eval_exploration_rng, noise_rng, eval_noise_rng;
    tsr_noise noise, eval_noise;

    /* Shapes of one observation and of a batch, as tensors see them. */
    int obs_ndim;
    int64_t obs_shape[TSR_MAX_DIMS];   /* (1, ...) */
    int64_t batch_shape[TSR_MAX_DIMS]; /* (B, ...) */
    tsr_dtype obs_dtype;
    size_t obs_bytes;
    void *observation;   /* the current observation (obs_bytes) */
    float *dones;        /* (B): 1 where the sampled window reached a terminal */
    double gamma_n;

    int32_t action;
    double last_epsilon;
    bool has_batch;      /* an update ran: `batch` holds its observations */

    int64_t training_steps, updates, target_syncs, last_target_sync_step;
    tsr_agent_stats stats;
};

double tsr_linearly_decaying_epsilon(int64_t decay_period, int64_t step, int64_t warmup_steps,
                                     double epsilon_final)
{
    double steps_left = (double)decay_period + (double)warmup_steps - (double)step;
    double bonus = (1.0 - epsilon_final) * steps_left / (double)decay_period;
    if (bonus < 0.0) bonus = 0.0;
    if (bonus > 1.0 - epsilon_final) bonus = 1.0 - epsilon_final;
    return epsilon_final + bonus;
}

int64_t tsr_run_expected_updates(const tsr_run_config *cfg)
{
    const tsr_agent_config *a = &cfg->agent;
    int64_t steps = cfg->run.iterations * cfg->run.training_steps;
    /* t in (W, steps) with t % P == 0: floor((steps - 1) / P) - floor(W / P). */
    int64_t updates = steps > 0 ? (steps - 1) / a->update_period - a->min_replay_history / a->update_period
                                : 0;
    return updates > 0 ? updates : 0;
}

/* ==== construction ======================================================= */

/* The network's input shape and the observation tensor shapes for `spec`,
 * checked against the configured encoder. */
static tsr_status observation_layout(tsr_agent *a, tsr_image_shape *input, tsr_error *err)
{
    const tsr_env_spec *s = &a->spec;
    bool mlp = a->cfg.network.encoder == TSR_ENCODER_MLP;
    if (s->continuous)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "env.continuous = true: the %s agent needs discrete actions",
                             tsr_agent_kind_names[a->cfg.agent.kind]);
    if (s->obs_ndim == 3) {
        if (mlp)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "network.encoder = mlp takes vector observations; %s gives "
                                 "(%lld, %lld, %lld) images: use encoder = minatar, nature or impala",
                                 s->name, (long long)s->obs_shape[0], (long long)s->obs_shape[1],
                                 (long long)s->obs_shape[2]);
        *input = (tsr_image_shape){s->obs_shape[0], s->obs_shape[1], s->obs_shape[2]};
    } else if (s->obs_ndim == 1) {
        if (!mlp)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "network.encoder = %s needs image observations; %s gives (%lld) "
                                 "values: use encoder = mlp",
                                 tsr_encoder_names[a->cfg.network.encoder], s->name,
                                 (long long)s->obs_shape[0]);
        *input = (tsr_image_shape){1, 1, s->obs_shape[0]};
    } else {
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s has %d-dimensional observations; agents take 1 or 3", s->name,
                             s->obs_ndim);
    }
    a->obs_ndim = s->obs_ndim + 1;
    a->obs_shape[0] = 1;
    a->batch_shape[0] = a->cfg.agent.batch_size;
    for (int i = 0; i < s->obs_ndim; i++) a->obs_shape[i + 1] = a->batch_shape[i + 1] = s->obs_shape[i];
    a->obs_dtype = s->obs_dtype;
    a->obs_bytes = s->obs_bytes;
    return TSR_STATUS_OK;
}

static tsr_status build_replay(tsr_agent *a, tsr_error *err)
{
    const tsr_agent_config *c = &a->cfg.agent;
    const tsr_env_spec *s = &a->spec;
    if (c->bit_pack_replay && s->obs_dtype != TSR_DTYPE_U8)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "agent.bit_pack_replay = true needs binary uint8 observations; %s "
                             "gives %s", s->name, tsr_dtype_name(s->obs_dtype));
    tsr_replay_options o;
    memset(&o, 0, sizeof o);
    o.capacity = c->replay_capacity;
    o.obs_ndim = s->obs_ndim;
    for (int i = 0; i < s->obs_ndim; i++) o.obs_shape[i] = s->obs_shape[i];
    o.obs_dtype = s->obs_dtype;
    o.n_step = c->n_step;
    o.gamma = c->gamma;
    /* google/dopamine#230: the Rainbow agents ask for prioritized replay but
     * sample uniformly and never update priorities. */
    o.prioritized = c->prioritized && !c->dopamine_uniform_replay;
    o.priority_exponent = c->priority_exponent;
    o.importance_exponent = c->importance_exponent;
    o.bit_pack = c->bit_pack_replay;
    tsr_status st = tsr_replay_new(&a->replay, &o, (uint64_t)a->cfg.run.seed, err);
    if (st != TSR_STATUS_OK) return st;
    a->batch = tsr_replay_batch_new(a->replay, c->batch_size);
    a->update_priorities = o.prioritized;
    if (o.prioritized)
        snprintf(a->replay_description, sizeof a->replay_description,
                 "prioritized (alpha %g, beta %g)", c->priority_exponent, c->importance_exponent);
    else if (c->prioritized)
        snprintf(a->replay_description, sizeof a->replay_description,
                 "uniform (dopamine_uniform_replay: prioritized requested, sampled uniformly "
                 "as google/dopamine#230)");
    else
        snprintf(a->replay_description, sizeof a->replay_description, "uniform");
    return TSR_STATUS_OK;
}

tsr_status tsr_agent_new(tsr_agent **out, const tsr_run_config *cfg, const tsr_env_spec *spec,
                         int64_t total_updates, bool training, tsr_error *err)
{
    *out = NULL;
    tsr_agent *a = tsr_calloc(1, sizeof *a);
    a->cfg = *cfg;
    a->spec = *spec;
    a->training = training;
    a->last_target_sync_step = -1;
    a->last_epsilon = 1.0;
    snprintf(a->replay_description, sizeof a->replay_description, "none (evaluation only)");
    const tsr_agent_config *c = &cfg->agent;
    uint64_t seed = (uint64_t)cfg->run.seed;

    tsr_image_shape input;
    tsr_status st = observation_layout(a, &input, err);
    if (st == TSR_STATUS_OK) st = tsr_support_init(&a->support, &cfg->loss, err);
    int64_t atoms = st == TSR_STATUS_OK ? tsr_support_head_width(&a->support) : 1;
    if (st == TSR_STATUS_OK)
        st = tsr_network_init(&a->online, &cfg->network, input, spec->num_actions, atoms, 1.0f,
                              TSR_DTYPE_F32, err);
    if (st != TSR_STATUS_OK) {
        tsr_agent_free(a);
        return st;
    }
    /* Only NoisyNet layers explore in place of epsilon (Dopamine's
     * zero_epsilon); a random router or noisy routing is not exploration and
     * keeps the epsilon schedule, as in Dopamine's MoE agents. */
    a->noisy = cfg->network.noisy;
    a->weighted_loss = c->kind == TSR_AGENT_RAINBOW;
    a->gamma_n = pow(c->gamma, (double)c->n_step);
    tsr_rng init_rng;
    tsr_rng_init(&init_rng, seed, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&a->online, &init_rng);
    tsr_rng_init(&a->exploration_rng, seed, TSR_RNG_STREAM_EXPLORATION);
    tsr_rng_init(&a->eval_exploration_rng, seed, TSR_RNG_STREAM_EVAL_EXPLORATION);
    tsr_rng_init(&a->noise_rng, seed, TSR_RNG_STREAM_NOISE);
    a->noise = (tsr_noise){.rng = &a->noise_rng, .means_only = false};
    tsr_rng_init(&a->eval_noise_rng, seed, TSR_RNG_STREAM_EVAL_NOISE);
    /* NoisyNet layers use their means; a random router or noisy routing still
     * draws, from a stream of its own. */
    a->eval_noise = (tsr_noise){.rng = &a->eval_noise_rng, .means_only = true};
    a->ctx = tsr_ctx_new(NULL);
    a->observation = tsr_calloc(1, a->obs_bytes);

    if (training) {
        st = tsr_network_init(&a->target, &cfg->network, input, spec->num_actions, atoms, 1.0f,
                              TSR_DTYPE_F32, err);
        a->target_built = st == TSR_STATUS_OK;
        tsr_optimizer_options oo = tsr_run_config_optimizer(cfg);
        if (st == TSR_STATUS_OK) st = tsr_optimizer_new(&a->optimizer, &a->online.params, &oo, err);
        if (st == TSR_STATUS_OK && cfg->pruning.mode != TSR_PRUNE_MODE_NONE) {
            tsr_prune_config pc = cfg->pruning;
            pc.seed = cfg->run.seed;
            st = tsr_pruner_new(&a->pruner, &a->online.params, &pc,
                                total_updates > 0 ? total_updates : 1, err);
        }
        if (st == TSR_STATUS_OK) st = build_replay(a, err);
        if (st != TSR_STATUS_OK) {
            tsr_agent_free(a);
            return st;
        }
        a->dones = tsr_calloc((size_t)c->batch_size, sizeof *a->dones);
        /* Static masks hold from the first forward on (pruning.h). */
        if (a->pruner && cfg->pruning.mode == TSR_PRUNE_MODE_STATIC)
            tsr_pruner_apply(a->pruner, &a->online.params);
        tsr_params_copy_values(&a->target.params, &a->online.params);
    }
    *out = a;
    return TSR_STATUS_OK;
}

void tsr_agent_free(tsr_agent *a)
{
    if (!a) return;
    if (a->batch) tsr_replay_batch_free(a->batch);
    if (a->replay) tsr_replay_free(a->replay);
    tsr_pruner_free(a->pruner);
    tsr_optimizer_free(a->optimizer);
    if (a->target_built) tsr_network_fini(&a->target);
    tsr_network_fini(&a->online);
    tsr_support_fini(&a->support);
    if (a->ctx) tsr_ctx_free(a->ctx);
    tsr_free(a->observation);
    tsr_free(a->dones);
    tsr_free(a);
}

/* ==== acting ================================================================ */

/* Index of the largest of q[0..n), the lowest on ties. */
static int32_t argmax_f32(const float *q, int64_t n)
{
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (q[i] > q[best]) best = (int32_t)i;
    return best;
}

static int32_t select_action(tsr_agent *a)
{
    const tsr_agent_config *c = &a->cfg.agent;
    double epsilon;
    tsr_rng *rng;
    if (a->eval_mode) {
        epsilon = c->epsilon_eval;
        rng = &a->eval_exploration_rng;
    } else {
        epsilon = a->noisy ? 0.0
                           : tsr_linearly_decaying_epsilon(c->epsilon_decay_period,
                                                           a->training_steps,
                                                           c->min_replay_history, c->epsilon_train);
        rng = &a->exploration_rng;
    }
    a->last_epsilon = epsilon;
    int64_t actions = a->spec.num_actions;
    if (tsr_rng_uniform(rng) < epsilon) return (int32_t)tsr_rng_below(rng, (uint64_t)actions);
    tsr_ctx *ctx = a->ctx;
    tsr_ctx_begin_step(ctx);
    bool was = tsr_ctx_set_grad(ctx, false);
    tsr_tensor obs = tsr_tensor_view(a->observation, a->obs_dtype, a->obs_ndim, a->obs_shape);
    tsr_tensor *out = tsr_network_forward(&a->online, ctx, &obs, a->eval_mode ? &a->eval_noise
                                                                               : &a->noise);
    tsr_tensor *q = tsr_value_q(ctx, &a->support, out);
    tsr_ctx_set_grad(ctx, was);
    return argmax_f32(tsr_f32(q), actions);
}

/* ==== training ============================================================== */

/* Mean over the batch of Q(s, a) at the actions taken, from the online outputs. */
static double mean_chosen_q(tsr_agent *a, tsr_tensor *outputs)
{
    tsr_tensor *q = tsr_value_q(a->ctx, &a->support, outputs);
    int64_t n = q->shape[0], actions = q->shape[1];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += tsr_f32(q)[i * actions + a->batch->actions[i]];
    return sum / (double)n;
}

static void update(tsr_agent *a)
{
    const tsr_agent_config *c = &a->cfg.agent;
    tsr_replay_batch *b = a->batch;
    tsr_replay_sample(a->replay, b);
    int64_t n = c->batch_size;
    for (int64_t i = 0; i < n; i++) a->dones[i] = b->discounts[i] == 0.0f ? 1.0f : 0.0f;

    tsr_ctx *ctx = a->ctx;
    tsr_ctx_begin_step(ctx);
    tsr_tensor obs = tsr_tensor_view(b->obs, a->obs_dtype, a->obs_ndim, a->batch_shape);
    tsr_tensor next_obs = tsr_tensor_view(b->next_obs, a->obs_dtype, a->obs_ndim, a->batch_shape);
    tsr_tensor actions = tsr_tensor_view(b->actions, TSR_DTYPE_I32, 1, TSR_SHAPE(n));
    tsr_tensor returns = tsr_tensor_view(b->returns, TSR_DTYPE_F32, 1, TSR_SHAPE(n));
    tsr_tensor dones = tsr_tensor_view(a->dones, TSR_DTYPE_F32, 1, TSR_SHAPE(n));
    tsr_tensor weights = tsr_tensor_view(b->weights, TSR_DTYPE_F32, 1, TSR_SHAPE(n));

    /* Targets: no tape. The noise stream is drawn target, online s', online s. */
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *next_target = tsr_network_forward(&a->target, ctx, &next_obs, &a->noise);
    tsr_tensor *next_online = c->double_dqn ? tsr_network_forward(&a->online, ctx, &next_obs,
                                                                  &a->noise)
                                            : NULL;
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *outputs = tsr_network_forward(&a->online, ctx, &obs, &a->noise);
    tsr_td_batch td = {
        .chosen = tsr_gather_actions(ctx, outputs, &actions),
        .next_target = next_target,
        .next_online = next_online,
        .rewards = &returns,
        .dones = &dones,
        .gamma_n = a->gamma_n,
    };
    tsr_tensor *per_sample = tsr_value_loss_td(ctx, &a->support, &td);
    tsr_tensor *loss = a->weighted_loss ? tsr_mean_all(ctx, tsr_mul(ctx, per_sample, &weights))
                                        : tsr_mean_all(ctx, per_sample);
    /* A Top-k head's enabled load-balancing losses join the TD loss (as
     * labs/moes adds them); the logged loss stays the TD loss. */
    tsr_tensor *aux = a->online.config.head == TSR_HEAD_TOPK ? a->online.topk_outputs.aux_loss
                                                             : NULL;
    tsr_backward(ctx, aux ? tsr_add(ctx, loss, aux) : loss);

    tsr_ctx_set_grad(ctx, false);
    a->stats.q_sum += mean_chosen_q(a, outputs);
    a->stats.loss_sum += tsr_f32(loss)[0];
    a->stats.updates++;

    uint64_t epoch = tsr_ctx_epoch(ctx);
    if (c->clip_gradients) {
        tsr_params_settle_grads(&a->online.params, epoch);
        tsr_params_clip_grad_norm(&a->online.params, c->max_grad_norm);
    }
    if (a->pruner)
        tsr_pruner_step(a->pruner, &a->online.params, tsr_optimizer_step_count(a->optimizer));
    tsr_optimizer_step(a->optimizer, epoch);
    if (a->pruner) tsr_pruner_apply(a->pruner, &a->online.params);
    if (a->update_priorities && a->weighted_loss)
        tsr_replay_update_priorities(a->replay, b->indices, tsr_f32(per_sample), n);
    a->updates++;
    a->has_batch = true;
}

/* Dopamine's _train_step. */
static void train_step(tsr_agent *a)
{
    const tsr_agent_config *c = &a->cfg.agent;
    if (tsr_replay_add_count(a->replay) > c->min_replay_history) {
        /* A replay of only truncated windows has nothing to sample yet. */
        if (a->training_steps % c->update_period == 0 && tsr_replay_num_valid(a->replay) > 0)
            update(a);
        if (a->training_steps % c->target_update_period == 0) {
            tsr_params_copy_values(&a->target.params, &a->online.params);
            a->target_syncs++;
            a->last_target_sync_step = a->training_steps;
        }
    }
    a->training_steps++;
}

int32_t tsr_agent_begin_episode(tsr_agent *a, const void *obs)
{
    memcpy(a->observation, obs, a->obs_bytes);
    if (!a->eval_mode) {
        TSR_ASSERT_MSG(a->training, "an evaluation-only agent must stay in evaluation mode");
        train_step(a);
    }
    a->action = select_action(a);
    return a->action;
}

int32_t tsr_agent_step(tsr_agent *a, float reward, const void *obs)
{
    if (!a->eval_mode) {
        tsr_replay_add(a->replay, a->observation, a->action, reward, false, false);
        memcpy(a->observation, obs, a->obs_bytes);
        train_step(a);
    } else {
        memcpy(a->observation, obs, a->obs_bytes);
    }
    a->action = select_action(a);
    return a->action;
}

void tsr_agent_end_episode(tsr_agent *a, float reward, bool terminal)
{
    if (!a->eval_mode) tsr_replay_add(a->replay, a->observation, a->action, reward, terminal, !terminal);
}

void tsr_agent_set_eval_mode(tsr_agent *a, bool eval)
{
    TSR_ASSERT_MSG(eval || a->training, "an evaluation-only agent cannot train");
    a->eval_mode = eval;
}

double tsr_agent_last_epsilon(const tsr_agent *a) { return a->last_epsilon; }

tsr_agent_counters tsr_agent_get_counters(const tsr_agent *a)
{
    return (tsr_agent_counters){
        .training_steps = a->training_steps,
        .updates = a->updates,
        .target_syncs = a->target_syncs,
        .last_target_sync_step = a->last_target_sync_step,
        .replay_add_count = a->replay ? tsr_replay_add_count(a->replay) : 0,
    };
}

tsr_agent_stats tsr_agent_take_stats(tsr_agent *a)
{
    tsr_agent_stats s = a->stats;
    memset(&a->stats, 0, sizeof a->stats);
    return s;
}

const char *tsr_agent_replay_description(const tsr_agent *a) { return a->replay_description; }
tsr_network *tsr_agent_online(tsr_agent *a) { return &a->online; }
tsr_network *tsr_agent_target(tsr_agent *a) { return a->target_built ? &a->target : NULL; }
tsr_ctx *tsr_agent_ctx(tsr_agent *a) { return a->ctx; }
const tsr_pruner *tsr_agent_pruner(const tsr_agent *a) { return a->pruner; }

/* ==== health ================================================================ */

tsr_status tsr_agent_health(tsr_agent *a, double tau, double *sparsity, double *dormant_fraction,
                            double *head_dormant_fraction, tsr_error *err)
{
    tsr_prune_report report;
    tsr_prune_report_compute(&report, &a->online.params, a->pruner, NULL);
    *sparsity = report.total_sparsity;
    tsr_prune_report_fini(&report);
    *dormant_fraction = *head_dormant_fraction = NAN;
    if (!a->has_batch) return TSR_STATUS_OK;
    tsr_ctx *ctx = a->ctx;
    tsr_ctx_begin_step(ctx);
    bool was = tsr_ctx_set_grad(ctx, false);
    tsr_tensor obs = tsr_tensor_view(a->batch->obs, a->obs_dtype, a->obs_ndim, a->batch_shape);
    tsr_network_forward(&a->online, ctx, &obs, &a->eval_noise);
    tsr_ctx_set_grad(ctx, was);
    const tsr_tensor *f = a->online.features;
    int64_t units = f->shape[f->ndim - 1];
    tsr_tensor rows = tsr_tensor_reshape(f, 2, TSR_SHAPE(tsr_tensor_numel(f) / units, units));
    tsr_dormant_stats total;
    tsr_status st = tsr_dormant_neurons(ctx, &rows, tau, NULL, &total, err);
    if (st != TSR_STATUS_OK) return st;
    *dormant_fraction = tsr_dormant_fraction(total);
    if (tsr_network_head_hidden(&a->online, &rows)) {
        st = tsr_dormant_neurons(ctx, &rows, tau, NULL, &total, err);
        if (st != TSR_STATUS_OK) return st;
        *head_dormant_fraction = tsr_dormant_fraction(total);
    }
    return TSR_STATUS_OK;
}

/* ==== checkpoints ============================================================= */

/* Whether each linear layer's current weight version was used before: the
 * next use then runs the inner product on the cached layout, else the plain
 * matmul (ops_dense.c). Restored, a resumed run runs the same primitives as
 * the uninterrupted one, which matters where the two differ in their last
 * bits. Absent in older checkpoints: nothing used. */
static void checkpoint_cache_state(tsr_network *net, tsr_ckpt *c, const char *path)
{
    enum { MAX_CACHES = 64 };
    tsr_network_cache caches[MAX_CACHES];
    int n = tsr_network_linear_caches(net, caches, MAX_CACHES);
    if (n == 0) return;
    uint8_t used[MAX_CACHES] = {0};
    bool writing = tsr_ckpt_writing(c);
    if (writing)
        for (int i = 0; i < n; i++)
            used[i] = tsr_weight_cache_version_used(caches[i].cache, caches[i].weight);
    else if (!tsr_ckpt_has(c, path))
        return;
    tsr_ckpt_array(c, path, TSR_CKPT_U8, 1, TSR_SHAPE(n), used, 0);
    if (writing || tsr_ckpt_status(c) != TSR_STATUS_OK) return;
    for (int i = 0; i < n; i++)
        if (used[i]) tsr_weight_cache_mark_version_used(caches[i].cache, caches[i].weight);
}

void tsr_agent_checkpoint(tsr_agent *a, tsr_ckpt *c, bool with_replay, bool *replay_restored)
{
    TSR_ASSERT_MSG(a->training, "checkpoints hold training agents");
    bool writing = tsr_ckpt_writing(c);
    tsr_ckpt_params(c, "params/online", &a->online.params);
    tsr_ckpt_params(c, "params/target", &a->target.params);
    tsr_optimizer_checkpoint(a->optimizer, c, "optimizer");
    if (a->pruner) tsr_pruner_checkpoint(a->pruner, &a->online.params, c, "pruning");
    else if (!writing && tsr_ckpt_has(c, "pruning"))
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT,
                      "it holds pruning masks but this run does not prune (pruning.mode = none)");
    tsr_ckpt_i64(c, "counters/training_steps", &a->training_steps);
    tsr_ckpt_i64(c, "counters/gradient_updates", &a->updates);
    tsr_ckpt_i64(c, "counters/target_syncs", &a->target_syncs);
    tsr_ckpt_i64(c, "counters/last_target_sync_step", &a->last_target_sync_step);
    tsr_ckpt_rng(c, "rng/exploration", &a->exploration_rng);
    tsr_ckpt_rng(c, "rng/eval_exploration", &a->eval_exploration_rng);
    tsr_ckpt_rng(c, "rng/noise", &a->noise_rng);
    tsr_ckpt_rng(c, "rng/eval_noise", &a->eval_noise_rng);
    tsr_ckpt_f64(c, "agent/last_epsilon", &a->last_epsilon);
    /* The last training batch feeds the dormant-neuron metric at the end of
     * an iteration that made no update. */
    if (writing ? a->has_batch : tsr_ckpt_has(c, "agent/last_batch_observations")) {
        tsr_tensor obs = tsr_tensor_view(a->batch->obs, a->obs_dtype, a->obs_ndim, a->batch_shape);
        tsr_ckpt_tensor(c, "agent/last_batch_observations", &obs);
        if (!writing) a->has_batch = true;
    }
    /* The replay: every stored step, so the n-step windows still open at
     * the checkpoint (the current episode's tail) carry on as well. */
    int64_t add_count = tsr_replay_add_count(a->replay);
    if (writing) tsr_ckpt_i64(c, "counters/replay_add_count", &add_count);
    bool restore = writing ? with_replay : tsr_ckpt_has(c, "replay/add_count");
    if (restore) tsr_replay_checkpoint(a->replay, c, "replay");
    if (restore && !writing && tsr_ckpt_status(c) == TSR_STATUS_OK) {
        int64_t slot = tsr_replay_find_action_at_least(a->replay, (int32_t)a->spec.num_actions);
        if (slot >= 0)
            tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "replay: slot %lld holds an action outside the "
                          "%d of %s", (long long)slot, a->spec.num_actions, a->spec.name);
    }
    if (replay_restored) *replay_restored = restore && tsr_ckpt_status(c) == TSR_STATUS_OK;
    /* Last: loading the rest (pruning masks) may bump the weights' versions. */
    checkpoint_cache_state(&a->online, c, "agent/online_linear_version_used");
    checkpoint_cache_state(&a->target, c, "agent/target_linear_version_used");
}
