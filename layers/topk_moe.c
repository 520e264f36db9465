/* topk_moe.c — the Top-1 MoE baseline (labs/moes moe.py, routers.py),
 * batched over samples.
 *
 * The router is a bias-free tsr_linear over all N T tokens; the routing itself
 * (arg-max, capacity, first come first served in token order within each
 * sample) is integer bookkeeping on the host. Tokens reach the experts
 * through a row gather into the experts' batch (E, N C, D) — expert e's rows
 * for sample n are e N C + n C + [0, C), unfilled rows gather a zero token —
 * and come back through a second gather weighted by the chosen gate, which is
 * where the router's gradient enters.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/moe.h"
#include "tessera/status.h"

/* The reference's epsilon added to the expert counts of the entropy loss. */
#define ENTROPY_EPS 1e-6

#define MAX_CAPACITY (1 << 24)

tsr_topk_moe_config tsr_topk_moe_config_default(void)
{
    return (tsr_topk_moe_config){
        .num_experts = 8,
        .num_selected = 1,
        .capacity_factor = 1.0,
        .expert_hidden = 512,
        .noisy_routing = false,
        .noise_std = 1.0,
        .random_router = false,
        .entropy_loss = false,
        .entropy_weight = 0.5,
        .importance_loss = false,
        .importance_weight = 1.0,
        .noisy_experts = false,
        .noisy_sigma0 = 0.5,
    };
}

/* ==== init ================================================================ */

static tsr_status check_config(const char *name, int64_t num_tokens, int64_t token_dim,
                               const tsr_topk_moe_config *c, tsr_error *err)
{
    if (num_tokens < 1 || token_dim < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: %lld tokens of width %lld; both must be at least 1",
                             name, (long long)num_tokens, (long long)token_dim);
    if (c->num_experts < 1 || c->num_experts > TSR_MOE_MAX_EXPERTS)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: num_experts = %lld; expected 1 to %d", name,
                             (long long)c->num_experts, TSR_MOE_MAX_EXPERTS);
    if (c->noisy_experts && !(c->noisy_sigma0 >= 0 && isfinite(c->noisy_sigma0)))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: noisy_sigma0 = %g; expected a finite value >= 0", name,
                             c->noisy_sigma0);
    if (c->num_selected != 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: num_selected_experts = %lld; only 1 is supported (the "
                             "reference's token permutation is consistent for top-1 only)",
                             name, (long long)c->num_selected);
    if (!(c->capacity_factor > 0) || !isfinite(c->capacity_factor) ||
        (double)num_tokens * c->capacity_factor / (double)c->num_experts > MAX_CAPACITY)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: capacity_factor = %g; expected a positive number "
                             "giving a capacity of at most %d tokens per expert",
                             name, c->capacity_factor, MAX_CAPACITY);
    if (c->expert_hidden < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: expert_hidden = %lld; expected at least 1", name,
                             (long long)c->expert_hidden);
    if (c->noisy_routing && !(c->noise_std >= 0 && isfinite(c->noise_std)))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: noise_std = %g; expected a finite value >= 0", name,
                             c->noise_std);
    if (c->random_router && (c->noisy_routing || c->importance_loss))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: a random router has no logits to add noise to and "
                             "no probabilities for the importance loss to balance; use neither "
                             "noisy_routing nor the importance loss with it",
                             name);
    if (c->entropy_loss && c->num_experts < 2)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: the entropy loss needs num_experts >= 2 (it is "
                             "normalised by log num_experts), got %lld",
                             name, (long long)c->num_experts);
    if ((c->entropy_loss && !isfinite(c->entropy_weight)) ||
        (c->importance_loss && !isfinite(c->importance_weight)))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "top-k MoE %s: loss weights must be finite (entropy %g, importance %g)",
                             name, c->entropy_weight, c->importance_weight);
    return TSR_STATUS_OK;
}

tsr_status tsr_topk_moe_init(tsr_topk_moe *l, tsr_params *p, const char *name, int64_t num_tokens,
                             int64_t token_dim, const tsr_topk_moe_config *config, tsr_error *err)
{
    TSR_ASSERT(l && p && name && config);
    tsr_status st = check_config(name, num_tokens, token_dim, config, err);
    if (st != TSR_STATUS_OK) return st;
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->config = *config;
    l->num_tokens = num_tokens;
    l->token_dim = token_dim;
    l->capacity = tsr_moe_capacity(num_tokens, config->capacity_factor, config->num_experts);
    char pname[TSR_PARAM_NAME_BYTES];
    l->router = -1;
    if (!config->random_router) {
        snprintf(pname, sizeof pname, "%s/router/weight", name);
        l->router = tsr_params_add(p, pname, 2, TSR_SHAPE(config->num_experts, token_dim),
                                   TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY);
    }
    snprintf(pname, sizeof pname, "%s/experts", name);
    if (config->noisy_experts)
        tsr_expert_mlp_init_noisy(&l->experts, p, pname, config->num_experts, token_dim,
                                  config->expert_hidden, config->noisy_sigma0);
    else
        tsr_expert_mlp_init(&l->experts, p, pname, config->num_experts, token_dim,
                            config->expert_hidden);
    return TSR_STATUS_OK;
}

void tsr_topk_moe_reset(tsr_topk_moe *l, tsr_params *p, tsr_rng *rng)
{
    /* Flax Dense's default kernel init: LeCun normal with fan_in = D. */
    if (l->router >= 0) tsr_init_lecun_normal(tsr_params_tensor(p, l->router), l->token_dim, rng);
    tsr_expert_mlp_reset(&l->experts, p, rng);
}

/* ==== forward ============================================================= */

static double value_at(const tsr_tensor *t, int64_t i)
{
    return t->dtype == TSR_DTYPE_F64 ? tsr_f64(t)[i] : (double)tsr_f32(t)[i];
}

/* A view of `t` with another shape, its struct in the arena. */
static tsr_tensor *arena_view(tsr_ctx *ctx, const tsr_tensor *t, int ndim, const int64_t *shape)
{
    tsr_tensor *v = tsr_arena_alloc(tsr_ctx_arena(ctx), sizeof *v);
    *v = tsr_tensor_reshape(t, ndim, shape);
    return v;
}

/* Routing of every sample: expert[k] = arg-max of probs row k (first maximum,
 * like jax.lax.top_k); the first C tokens of a sample routed to an expert get
 * its rows in order, later ones are dropped (slot -1). token_of_row (E N C)
 * is the inverse, -1 for unfilled rows. */
static void route(const tsr_tensor *probs, int64_t n, int64_t t, int64_t e, int64_t capacity,
                  int32_t *expert, int32_t *slot, int32_t *token_of_row)
{
    int64_t rows = e * n * capacity;
    for (int64_t r = 0; r < rows; r++) token_of_row[r] = -1;
    for (int64_t sample = 0; sample < n; sample++) {
        int64_t filled[TSR_MOE_MAX_EXPERTS] = {0};
        for (int64_t token = 0; token < t; token++) {
            int64_t k = sample * t + token, top = 0;
            double best = value_at(probs, k * e);
            for (int64_t ei = 1; ei < e; ei++) {
                double v = value_at(probs, k * e + ei);
                if (v > best) best = v, top = ei;
            }
            expert[k] = (int32_t)top;
            if (filled[top] < capacity) {
                int64_t r = (top * n + sample) * capacity + filled[top]++;
                slot[k] = (int32_t)r;
                token_of_row[r] = (int32_t)k;
            } else {
                slot[k] = -1;
            }
        }
    }
}

/* The reference's naive entropy term: per sample, the normalised entropy of
 * the experts' token counts (+1e-6), averaged over samples. */
static double entropy_term(const int32_t *expert, int64_t n, int64_t t, int64_t e)
{
    double total = 0;
    for (int64_t sample = 0; sample < n; sample++) {
        double count[TSR_MOE_MAX_EXPERTS] = {0}, sum = 0, h = 0;
        for (int64_t token = 0; token < t; token++) count[expert[sample * t + token]] += 1;
        for (int64_t ei = 0; ei < e; ei++) sum += count[ei] + ENTROPY_EPS;
        for (int64_t ei = 0; ei < e; ei++) {
            double q = (count[ei] + ENTROPY_EPS) / sum;
            h -= q * log(q);
        }
        total += h / log((double)e);
    }
    return total / (double)n;
}

/* The learned router: softmax over experts of tokens (N T, D) . W^T, with
 * noisy_routing's Gaussian noise on the logits first. */
static tsr_tensor *router_probs(tsr_topk_moe *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *tokens,
                                tsr_rng *noise_rng)
{
    const tsr_topk_moe_config *c = &l->config;
    int64_t rows = tokens->shape[0], e = c->num_experts;
    tsr_tensor *logits = tsr_linear(ctx, tokens, tsr_params_tensor(p, l->router), NULL, false,
                                    &l->router_cache);
    if (c->noisy_routing) {
        TSR_ASSERT_MSG(noise_rng, "%s routes noisily: pass a noise rng to the forward", l->name);
        tsr_tensor *noise = tsr_ctx_tensor(ctx, tokens->dtype, 2, (int64_t[]){rows, e});
        tsr_tensor_fill_normal(noise, c->noise_std / (double)e, noise_rng);
        logits = tsr_add(ctx, logits, noise);
    }
    return tsr_softmax(ctx, logits, 1);
}

tsr_tensor *tsr_topk_moe_forward(tsr_topk_moe *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                 tsr_rng *noise_rng, tsr_topk_moe_outputs *outputs)
{
    tsr_noise noise = {noise_rng, false};
    return tsr_topk_moe_forward_noise(l, ctx, p, x, noise_rng ? &noise : NULL, outputs);
}

tsr_tensor *tsr_topk_moe_forward_noise(tsr_topk_moe *l, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x, const tsr_noise *noise_source,
                                       tsr_topk_moe_outputs *outputs)
{
    tsr_rng *noise_rng = noise_source ? noise_source->rng : NULL;
    char sx[96];
    const tsr_topk_moe_config *c = &l->config;
    TSR_ASSERT_MSG(x->ndim == 3 && x->shape[1] == l->num_tokens && x->shape[2] == l->token_dim,
                   "%s expects (N, %lld, %lld) tokens, got %s", l->name, (long long)l->num_tokens,
                   (long long)l->token_dim, tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT_MSG(x->dtype == p->dtype, "%s: %s tokens with %s parameters", l->name,
                   tsr_dtype_name(x->dtype), tsr_dtype_name(p->dtype));
    TSR_ASSERT_MSG(outputs || !(c->entropy_loss || c->importance_loss),
                   "%s has auxiliary losses enabled: pass outputs to receive them", l->name);
    int64_t n = x->shape[0], t = l->num_tokens, d = l->token_dim;
    int64_t e = c->num_experts, cap = l->capacity;
    TSR_ASSERT_MSG(n * t <= INT32_MAX && e * n * cap <= INT32_MAX,
                   "%s: %lld tokens and %lld expert rows exceed int32 indices", l->name,
                   (long long)(n * t), (long long)(e * n * cap));

    /* Router: logits (N T, E), optional noise, softmax over experts; or the
     * random router's N(0, 1) scores, as they are. */
    tsr_tensor *tokens = tsr_reshape(ctx, x, 2, (int64_t[]){n * t, d});
    tsr_tensor *probs;
    if (c->random_router) {
        TSR_ASSERT_MSG(noise_rng, "%s routes randomly: pass a noise rng to the forward", l->name);
        probs = tsr_ctx_tensor(ctx, x->dtype, 2, (int64_t[]){n * t, e});
        tsr_tensor_fill_normal(probs, 1.0, noise_rng);
    } else {
        probs = router_probs(l, ctx, p, tokens, noise_rng);
    }

    tsr_tensor *expert = tsr_ctx_tensor(ctx, TSR_DTYPE_I32, 1, (int64_t[]){n * t});
    tsr_tensor *slot = tsr_ctx_tensor(ctx, TSR_DTYPE_I32, 1, (int64_t[]){n * t});
    tsr_tensor *token_of_row = tsr_ctx_tensor(ctx, TSR_DTYPE_I32, 1, (int64_t[]){e * n * cap});
    route(probs, n, t, e, cap, tsr_i32(expert), tsr_i32(slot), tsr_i32(token_of_row));

    /* Experts on their rows, then back to the tokens scaled by the gate. */
    tsr_tensor *expert_in = tsr_gather_rows(ctx, tokens, token_of_row, NULL);
    expert_in = tsr_reshape(ctx, expert_in, 3, (int64_t[]){e, n * cap, d});
    tsr_tensor *hidden;
    tsr_tensor *y = tsr_expert_mlp_forward(&l->experts, ctx, p, expert_in, noise_source, &hidden);
    y = tsr_reshape(ctx, y, 2, (int64_t[]){e * n * cap, d});
    tsr_tensor *gate = tsr_gather_actions(ctx, probs, expert);
    tsr_tensor *z = tsr_gather_rows(ctx, y, slot, gate);
    z = tsr_reshape(ctx, z, 3, (int64_t[]){n, t, d});

    /* The router's parameters and product (a random router has neither). */
    bool learned = l->router >= 0;
    tsr_summary_record(ctx, l->name, z, learned ? e * d : 0,
                       learned ? 2.0 * (double)(n * t * d * e) : 0.0);
    if (!outputs) return z;

    tsr_tensor *aux = NULL;
    double ent = 0, imp = 0;
    if (c->importance_loss) {
        tsr_tensor *probs3 = tsr_reshape(ctx, probs, 3, (int64_t[]){n, t, e});
        tsr_tensor *importance = tsr_sum(ctx, probs3, 1, false); /* (N, E) */
        tsr_tensor *term = tsr_mean_all(ctx, tsr_cv_squared(ctx, importance));
        imp = value_at(term, 0);
        aux = tsr_scale(ctx, term, c->importance_weight, 0.0);
    }
    if (c->entropy_loss) {
        ent = entropy_term(tsr_i32(expert), n, t, e);
        tsr_tensor *loss = tsr_ctx_tensor(ctx, x->dtype, 1, TSR_SHAPE(1));
        tsr_tensor_fill(loss, c->entropy_weight * (1.0 - ent));
        aux = aux ? tsr_add(ctx, aux, loss) : loss;
    }
    *outputs = (tsr_topk_moe_outputs){
        .probs = arena_view(ctx, probs, 3, (int64_t[]){n, t, e}),
        .expert = arena_view(ctx, expert, 2, (int64_t[]){n, t}),
        .slot = arena_view(ctx, slot, 2, (int64_t[]){n, t}),
        .hidden = hidden,
        .aux_loss = aux,
        .entropy_term = ent,
        .importance_term = imp,
    };
    return z;
}

/* ==== statistics ========================================================== */

void tsr_topk_moe_stats(const tsr_topk_moe *l, const tsr_topk_moe_outputs *outputs,
                        tsr_moe_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    int64_t e = l->config.num_experts, t = l->num_tokens;
    int64_t n = outputs->probs->shape[0], tokens = n * t;
    stats->num_experts = e;
    const int32_t *expert = tsr_i32(outputs->expert), *slot = tsr_i32(outputs->slot);
    int64_t routed[TSR_MOE_MAX_EXPERTS] = {0}, kept[TSR_MOE_MAX_EXPERTS] = {0}, dropped = 0;
    double mass[TSR_MOE_MAX_EXPERTS] = {0};
    for (int64_t k = 0; k < tokens; k++) {
        for (int64_t ei = 0; ei < e; ei++) mass[ei] += value_at(outputs->probs, k * e + ei);
        routed[expert[k]]++;
        if (slot[k] >= 0) kept[expert[k]]++;
        else dropped++;
    }
    for (int64_t ei = 0; ei < e; ei++) {
        stats->gate_mean[ei] = mass[ei] / (double)tokens;
        stats->top1_load[ei] = (double)routed[ei] / (double)tokens;
        stats->capacity_used[ei] = (double)kept[ei] / (double)(n * l->capacity);
    }
    stats->dropped_fraction = (double)dropped / (double)tokens;
    stats->has_gates = true;
    stats->has_capacity = true;
}

int64_t tsr_topk_moe_param_count(const tsr_topk_moe *l)
{
    return (l->router >= 0 ? l->config.num_experts * l->token_dim : 0) +
           tsr_expert_mlp_param_count(&l->experts);
}

void tsr_topk_moe_fini(tsr_topk_moe *l)
{
    tsr_weight_cache_fini(&l->router_cache);
    tsr_expert_mlp_fini(&l->experts);
}
