/* soft_moe.c — the Soft MoE layer (labs/moes softmoe.py), batched over samples.
 *
 * Per sample the reference computes logits (T, E S), two softmaxes, slot
 * inputs dispatch^T x (E S, D), the experts, and combine y (T, D). Here the
 * batch is a leading dimension of every product (tsr_matmul batches over N,
 * phi broadcast as a batch of one), and the experts see all N S slots of
 * expert e as one matrix: the slots (N, E, S, D) are permuted to (E, N, S, D)
 * and flattened to (E, N S, D) for one batched product over experts, then
 * permuted back. With E = 1 or N = 1 that permute is the identity and is
 * skipped. The dispatch weights are kept slot-major, (N, E S, T), so their
 * softmax runs over the innermost axis and the slot inputs are one plain
 * product dispatch x.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/moe.h"
#include "tessera/status.h"

static const char *const mix_mode_name[] = {"full", "no_dispatch", "no_combine", "none"};

/* The reference's normalisation epsilon (x / (||x|| + 1e-6)). */
#define SOFT_MOE_NORM_EPS 1e-6

/* Slot counts beyond this are a configuration mistake, not a network. */
#define MAX_SLOTS_PER_EXPERT (1 << 24)

tsr_soft_moe_config tsr_soft_moe_config_default(void)
{
    return (tsr_soft_moe_config){
        .num_experts = 8,
        .capacity_factor = 1.0,
        .expert_hidden = 512,
        .normalization = false,
        .use_random_phi = false,
        .mix_mode = TSR_MOE_MIX_FULL,
        .noisy_experts = false,
        .noisy_sigma0 = 0.5,
    };
}

int64_t tsr_moe_capacity(int64_t num_tokens, double capacity_factor, int64_t num_experts)
{
    /* Python's math.ceil(num_tokens * capacity_factor / num_experts). */
    return (int64_t)ceil((double)num_tokens * capacity_factor / (double)num_experts);
}

/* ==== init ================================================================ */

static tsr_status check_config(const char *name, int64_t num_tokens, int64_t token_dim,
                               const tsr_soft_moe_config *c, tsr_error *err)
{
    if (num_tokens < 1 || token_dim < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: %lld tokens of width %lld; both must be at least 1",
                             name, (long long)num_tokens, (long long)token_dim);
    if (c->num_experts < 1 || c->num_experts > TSR_MOE_MAX_EXPERTS)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: num_experts = %lld; expected 1 to %d", name,
                             (long long)c->num_experts, TSR_MOE_MAX_EXPERTS);
    if (c->noisy_experts && !(c->noisy_sigma0 >= 0 && isfinite(c->noisy_sigma0)))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: noisy_sigma0 = %g; expected a finite value >= 0", name,
                             c->noisy_sigma0);
    if (!(c->capacity_factor > 0) || !isfinite(c->capacity_factor) ||
        (double)num_tokens * c->capacity_factor / (double)c->num_experts > MAX_SLOTS_PER_EXPERT)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: capacity_factor = %g; expected a positive number "
                             "giving at most %d slots per expert",
                             name, c->capacity_factor, MAX_SLOTS_PER_EXPERT);
    if (c->expert_hidden < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: expert_hidden = %lld; expected at least 1", name,
                             (long long)c->expert_hidden);
    if ((unsigned)c->mix_mode > (unsigned)TSR_MOE_MIX_NONE)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: mix_mode = %d; expected full, no_dispatch, no_combine "
                             "or none",
                             name, (int)c->mix_mode);
    int64_t slots = tsr_moe_capacity(num_tokens, c->capacity_factor, c->num_experts);
    if (c->mix_mode != TSR_MOE_MIX_FULL && slots * c->num_experts != num_tokens)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "soft MoE %s: mix_mode %s needs one slot per token, num_experts * "
                             "slots_per_expert == num_tokens, but %lld experts * %lld slots != "
                             "%lld tokens; use capacity_factor 1 and a num_experts dividing the "
                             "token count (e.g. 1)",
                             name, mix_mode_name[c->mix_mode], (long long)c->num_experts,
                             (long long)slots, (long long)num_tokens);
    return TSR_STATUS_OK;
}

tsr_status tsr_soft_moe_init(tsr_soft_moe *l, tsr_params *p, const char *name, int64_t num_tokens,
                             int64_t token_dim, const tsr_soft_moe_config *config, tsr_error *err)
{
    TSR_ASSERT(l && p && name && config);
    tsr_status st = check_config(name, num_tokens, token_dim, config, err);
    if (st != TSR_STATUS_OK) return st;
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->config = *config;
    l->num_tokens = num_tokens;
    l->token_dim = token_dim;
    l->slots_per_expert = tsr_moe_capacity(num_tokens, config->capacity_factor,
                                           config->num_experts);
    char pname[TSR_PARAM_NAME_BYTES];
    l->phi = -1;
    /* mix_mode = none routes nothing: a phi there would be a dead weight in
     * the parameter count (and, prunable, in an ERK budget). */
    if (!config->use_random_phi && config->mix_mode != TSR_MOE_MIX_NONE) {
        snprintf(pname, sizeof pname, "%s/phi", name);
        /* A kernel of ndim > 1: prunable and decayed like the other kernels. */
        l->phi = tsr_params_add(p, pname, 3,
                                TSR_SHAPE(token_dim, config->num_experts, l->slots_per_expert),
                                TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY);
    }
    snprintf(pname, sizeof pname, "%s/scalar", name);
    l->scalar = tsr_params_add(p, pname, 1, TSR_SHAPE(1), 0);
    snprintf(pname, sizeof pname, "%s/experts", name);
    if (config->noisy_experts)
        tsr_expert_mlp_init_noisy(&l->experts, p, pname, config->num_experts, token_dim,
                                  config->expert_hidden, config->noisy_sigma0);
    else
        tsr_expert_mlp_init(&l->experts, p, pname, config->num_experts, token_dim,
                            config->expert_hidden);
    return TSR_STATUS_OK;
}

void tsr_soft_moe_reset(tsr_soft_moe *l, tsr_params *p, tsr_rng *rng)
{
    if (l->phi >= 0) {
        /* Flax's lecun_normal on a (D, E, S) kernel: the last axis is the
         * output, the one before it the input, the rest receptive field, so
         * fan_in = D * E. */
        tsr_init_lecun_normal(tsr_params_tensor(p, l->phi), l->token_dim * l->config.num_experts,
                              rng);
    }
    tsr_tensor_fill(tsr_params_tensor(p, l->scalar), 1.0);
    tsr_expert_mlp_reset(&l->experts, p, rng);
}

/* ==== forward ============================================================= */

/* logits (N, T, E S) = x^ (N, T, D) . phi^ (D, E S); a random phi is
 * (N, D, E S), one per sample, as the reference's per-sample keys draw it
 * (its agents vmap the network over the batch with a key each). */
static tsr_tensor *router_logits(tsr_soft_moe *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                 tsr_rng *noise_rng)
{
    int64_t d = l->token_dim, slots = l->config.num_experts * l->slots_per_expert;
    int64_t phis = 1; /* phi matrices: 1 learned, or one random per sample */
    tsr_tensor *phi;
    if (l->config.use_random_phi) {
        TSR_ASSERT_MSG(noise_rng, "%s uses a random phi: pass a noise rng to the forward", l->name);
        phis = x->shape[0];
        phi = tsr_ctx_tensor(ctx, x->dtype, 3, (int64_t[]){phis, d, slots});
        tsr_tensor_fill_normal(phi, 1.0, noise_rng);
    } else {
        phi = tsr_reshape(ctx, tsr_params_tensor(p, l->phi), 3, (int64_t[]){1, d, slots});
    }
    tsr_tensor *xn = x;
    if (l->config.normalization) {
        xn = tsr_l2_normalize(ctx, x, -1, SOFT_MOE_NORM_EPS);
        phi = tsr_l2_normalize(ctx, phi, 1, SOFT_MOE_NORM_EPS); /* each column over D */
        /* times the learned scalar: (phis D E S, 1) * (1) broadcasts the scalar. */
        phi = tsr_reshape(ctx, phi, 2, (int64_t[]){phis * d * slots, 1});
        phi = tsr_mul(ctx, phi, tsr_params_tensor(p, l->scalar));
    }
    phi = tsr_reshape(ctx, phi, 3, (int64_t[]){phis, d, slots});
    return tsr_matmul(ctx, xn, phi, false, false);
}

/* (N, E S, D) slots, sample-major -> (E, N S, D), expert-major. */
static tsr_tensor *to_expert_major(tsr_ctx *ctx, tsr_tensor *slots, int64_t n, int64_t e,
                                   int64_t s, int64_t d)
{
    if (e > 1 && n > 1) {
        slots = tsr_reshape(ctx, slots, 4, (int64_t[]){n, e, s, d});
        slots = tsr_permute(ctx, slots, (const int[]){1, 0, 2, 3});
    }
    return tsr_reshape(ctx, slots, 3, (int64_t[]){e, n * s, d});
}

/* (E, N S, D) expert outputs -> (N, E S, D). */
static tsr_tensor *to_sample_major(tsr_ctx *ctx, tsr_tensor *y, int64_t n, int64_t e, int64_t s,
                                   int64_t d)
{
    if (e > 1 && n > 1) {
        y = tsr_reshape(ctx, y, 4, (int64_t[]){e, n, s, d});
        y = tsr_permute(ctx, y, (const int[]){1, 0, 2, 3});
    }
    return tsr_reshape(ctx, y, 3, (int64_t[]){n, e * s, d});
}

tsr_tensor *tsr_soft_moe_forward(tsr_soft_moe *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                 tsr_rng *noise_rng, tsr_soft_moe_outputs *outputs)
{
    tsr_noise noise = {noise_rng, false};
    return tsr_soft_moe_forward_noise(l, ctx, p, x, noise_rng ? &noise : NULL, outputs);
}

tsr_tensor *tsr_soft_moe_forward_noise(tsr_soft_moe *l, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x, const tsr_noise *noise,
                                       tsr_soft_moe_outputs *outputs)
{
    tsr_rng *noise_rng = noise ? noise->rng : NULL;
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 3 && x->shape[1] == l->num_tokens && x->shape[2] == l->token_dim,
                   "%s expects (N, %lld, %lld) tokens, got %s", l->name, (long long)l->num_tokens,
                   (long long)l->token_dim, tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT_MSG(x->dtype == p->dtype, "%s: %s tokens with %s parameters", l->name,
                   tsr_dtype_name(x->dtype), tsr_dtype_name(p->dtype));
    int64_t n = x->shape[0], t = l->num_tokens, d = l->token_dim;
    int64_t e = l->config.num_experts, s = l->slots_per_expert;
    tsr_moe_mix_mode mode = l->config.mix_mode;
    bool use_dispatch = mode == TSR_MOE_MIX_FULL || mode == TSR_MOE_MIX_NO_COMBINE;
    bool use_combine = mode == TSR_MOE_MIX_FULL || mode == TSR_MOE_MIX_NO_DISPATCH;

    tsr_tensor *logits = NULL, *dispatch = NULL, *combine = NULL;
    if (use_dispatch || use_combine) logits = router_logits(l, ctx, p, x, noise_rng);
    /* Per sample: dispatch normalises each slot over the T tokens, combine
     * each token over all E S slots. The dispatch softmax runs on the
     * transposed logits (N, E S, T): oneDNN 2.6 has a jit softmax only over
     * the innermost axis, and its reference one over the token axis of
     * (N, T, E S) took ~13 ms forward and as long backward at (32, 121, 124),
     * against well under 1 ms for the permute plus the jit softmax. */
    if (use_dispatch)
        dispatch = tsr_softmax(ctx, tsr_permute(ctx, logits, (const int[]){0, 2, 1}), 2);
    if (use_combine) combine = tsr_softmax(ctx, logits, 2);

    /* Slot inputs from the raw tokens. Bypassed, slot e S + s is token
     * e S + s (E S == T, checked at init). The reference's nan_to_num is not
     * needed: a max-shifted softmax of finite logits has no NaN. */
    tsr_tensor *slots = use_dispatch ? tsr_matmul(ctx, dispatch, x, false, false) : x;
    tsr_tensor *hidden;
    tsr_tensor *y = tsr_expert_mlp_forward(&l->experts, ctx, p,
                                           to_expert_major(ctx, slots, n, e, s, d), noise,
                                           &hidden);
    y = to_sample_major(ctx, y, n, e, s, d);
    tsr_tensor *z = use_combine ? tsr_matmul(ctx, combine, y, false, false) : y;

    double mix_flops = 2.0 * (double)(n * t * e * s * d);
    double flops = (logits ? mix_flops : 0) + (dispatch ? mix_flops : 0) + (combine ? mix_flops : 0);
    tsr_summary_record(ctx, l->name, z, tsr_soft_moe_param_count(l) -
                                             tsr_expert_mlp_param_count(&l->experts),
                       flops);
    if (outputs)
        *outputs = (tsr_soft_moe_outputs){
            .logits = logits, .dispatch = dispatch, .combine = combine, .hidden = hidden};
    return z;
}

/* ==== statistics ========================================================== */

static double value_at(const tsr_tensor *t, int64_t i)
{
    return t->dtype == TSR_DTYPE_F64 ? tsr_f64(t)[i] : (double)tsr_f32(t)[i];
}

void tsr_soft_moe_stats(const tsr_soft_moe *l, const tsr_soft_moe_outputs *outputs,
                        tsr_moe_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    int64_t e = l->config.num_experts, s = l->slots_per_expert, t = l->num_tokens;
    stats->num_experts = e;
    const tsr_tensor *combine = outputs->combine, *dispatch = outputs->dispatch;
    if (combine) {
        int64_t n = combine->shape[0];
        int64_t count[TSR_MOE_MAX_EXPERTS] = {0};
        double mass[TSR_MOE_MAX_EXPERTS] = {0};
        for (int64_t token = 0; token < n * t; token++) {
            int64_t top = 0;
            double best = -1;
            for (int64_t ei = 0; ei < e; ei++) {
                double m = 0;
                for (int64_t si = 0; si < s; si++) m += value_at(combine, (token * e + ei) * s + si);
                mass[ei] += m;
                if (m > best) best = m, top = ei; /* first maximum, like jnp.argmax */
            }
            count[top]++;
        }
        for (int64_t ei = 0; ei < e; ei++) {
            stats->gate_mean[ei] = mass[ei] / (double)(n * t * s);
            stats->top1_load[ei] = (double)count[ei] / (double)(n * t);
        }
        stats->has_gates = true;
    }
    if (dispatch) {
        int64_t n = dispatch->shape[0];
        for (int64_t ei = 0; ei < e; ei++) {
            double sum = 0, peak_sum = 0;
            for (int64_t sample = 0; sample < n; sample++)
                for (int64_t si = 0; si < s; si++) {
                    double peak = 0;
                    const int64_t base = ((sample * e + ei) * s + si) * t;
                    for (int64_t token = 0; token < t; token++) {
                        double v = value_at(dispatch, base + token);
                        sum += v;
                        if (v > peak) peak = v;
                    }
                    peak_sum += peak;
                }
            stats->dispatch_mean[ei] = sum / (double)(n * t * s);
            stats->dispatch_peak[ei] = peak_sum / (double)(n * s);
        }
        stats->has_dispatch = true;
    }
}

int64_t tsr_soft_moe_param_count(const tsr_soft_moe *l)
{
    int64_t phi = l->phi >= 0 ? l->token_dim * l->config.num_experts * l->slots_per_expert : 0;
    return phi + 1 + tsr_expert_mlp_param_count(&l->experts);
}

void tsr_soft_moe_fini(tsr_soft_moe *l) { tsr_expert_mlp_fini(&l->experts); }
