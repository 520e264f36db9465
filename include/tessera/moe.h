/* moe.h — mixture-of-experts layers: the expert MLP, Soft MoE and Top-1 MoE.
 *
 * Inputs are tokens x (N, T, D): N samples of T tokens of width D. Every
 * routing decision and every softmax is taken within one sample, never across
 * the batch (Dopamine vmaps its MoE networks over the batch).
 *
 * Soft MoE (Puigcerver et al.; Dopamine labs/moes softmoe.py), per sample:
 *   S = ceil(T c / E) slots per expert (capacity factor c), router phi (D, E, S);
 *   logits L = x^ phi^ (T, E S), with x^ = x and phi^ = phi, or, with
 *   normalization, x^ = x / (||x|| + 1e-6) over D and every column of phi
 *   L2-normalised over D and multiplied by a learned scalar;
 *   dispatch = softmax of L over the T tokens, per slot;
 *   combine  = softmax of L over all E S slots, per token;
 *   slot inputs = dispatch^T x (from the raw x), expert e applied to its S
 *   slots, output z = combine y, shaped like x.
 *   E = 1 is an ordinary configuration (the "tokenized single expert"), with
 *   the expert width set by expert_hidden. mix_mode switches dispatch and/or
 *   combine off for the "don't flatten, tokenize" ablations (see below).
 *
 * Top-1 MoE (Dopamine labs/moes moe.py, routers.py), per sample: a bias-free
 * linear router D -> E, softmax over experts (optionally after adding Gaussian
 * noise of std noise_std / E to the logits), the arg-max expert; expert e keeps
 * the first C = ceil(T c / E) tokens routed to it in token order and the rest
 * are dropped (output 0); a kept token's output is g f_e(x) with g its router
 * probability, through which the router receives its gradient.
 *
 * Expert MLP (Dopamine ExpertModel): dense(H, xavier-uniform) -> ReLU ->
 * dense(D, xavier-uniform), biases zero, every expert its own parameters. The
 * experts' weights are stacked, so one batched product runs all experts.
 *
 * Layers follow layers.h (init / reset / forward / fini, parameters named
 * "<name>/..."); the MoE inits validate their configuration, which comes from
 * user configs, and return a tsr_status. Forwards take the random stream for
 * random routers and noisy routing explicitly (TSR_RNG_STREAM_NOISE) and can
 * hand back their intermediate tensors (arena tensors, valid until the next
 * tsr_ctx_begin_step) for logging.
 */
#ifndef TESSERA_MOE_H
#define TESSERA_MOE_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/autograd.h"
#include "tessera/encoders.h"
#include "tessera/layers.h"
#include "tessera/params.h"
#include "tessera/rng.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most experts a MoE layer accepts (sizes the statistics arrays). */
enum { TSR_MOE_MAX_EXPERTS = 128 };

/* ---- ops used by the MoE layers (on the tape; float32 or float64) -------- */

/* x (B, M, P) + bias (B, P) broadcast over M, then max(., 0) when relu: a
 * bias per expert after a batched product. */
tsr_tensor *tsr_batched_bias(tsr_ctx *ctx, tsr_tensor *x, tsr_tensor *bias, bool relu);
/* x (R, D), index (M) int32, weight (M) or NULL -> y (M, D) with
 * y[i] = weight[i] * x[index[i]], or a zero row where index[i] < 0 (-1 marks
 * an empty expert slot or a dropped token). Gradients reach x and weight
 * (index is copied for the backward). */
tsr_tensor *tsr_gather_rows(tsr_ctx *ctx, tsr_tensor *x, const tsr_tensor *index,
                            tsr_tensor *weight);
/* x (R, K) -> (R): the squared coefficient of variation var / mean^2 of each
 * row (population variance), the importance loss of Riquelme et al. */
tsr_tensor *tsr_cv_squared(tsr_ctx *ctx, tsr_tensor *x);

/* ---- expert MLP -------------------------------------------------------- */

typedef struct tsr_expert_mlp {
    char name[TSR_LAYER_NAME_BYTES];
    int64_t num_experts, token_dim, hidden;
    /* Parameter indices: hidden weight (E, H, D), hidden bias (E, H), output
     * weight (E, D, H), output bias (E, D): per expert the plain (out, in).
     * Noisy experts: the hidden weight and bias are the means, with sigmas
     * of the same shapes. */
    int hidden_weight, hidden_bias, out_weight, out_bias;
    bool noisy;
    double sigma0;
    int hidden_weight_sigma, hidden_bias_sigma; /* -1 unless noisy */
} tsr_expert_mlp;

/* Registers "<name>/hidden/{weight,bias}" and "<name>/out/{weight,bias}".
 * Sizes must be positive (the MoE inits check the user's values). */
void tsr_expert_mlp_init(tsr_expert_mlp *l, tsr_params *p, const char *name, int64_t num_experts,
                         int64_t token_dim, int64_t hidden);
/* The same with a NoisyNet first layer in every expert (Dopamine's
 * ExpertModel with noisy = True, as its FullRainbowMoENetwork builds them):
 * "<name>/hidden/{weight_mu,weight_sigma,bias_mu,bias_sigma}" and the plain
 * "<name>/out/{weight,bias}". sigma0 >= 0. */
void tsr_expert_mlp_init_noisy(tsr_expert_mlp *l, tsr_params *p, const char *name,
                               int64_t num_experts, int64_t token_dim, int64_t hidden,
                               double sigma0);
/* Xavier-uniform weights with one expert's fans (D and H), zero biases.
 * Noisy: the first layer as a NoisyNet linear of fan-in D (means U(-1/sqrt D,
 * 1/sqrt D), sigmas sigma0 / sqrt D), the second layer as above. */
void tsr_expert_mlp_reset(tsr_expert_mlp *l, tsr_params *p, tsr_rng *rng);
/* x (E, M, D), the M rows of each expert -> (E, M, D). When `hidden` is not
 * NULL it receives the hidden activations after the ReLU, (E, M, H), for the
 * dormant-neuron statistics. Noisy experts need `noise` (NULL otherwise):
 * each expert e, in order, draws eps_in (D values) then eps_out (H values),
 * and its first layer runs with W = mu + sigma . f(eps_out) f(eps_in)^T and
 * b = mu_b + sigma_b . f(eps_out); with noise->means_only, W = mu, b = mu_b. */
tsr_tensor *tsr_expert_mlp_forward(tsr_expert_mlp *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                   const tsr_noise *noise, tsr_tensor **hidden);
/* Parameters of all experts: E (D H + H + H D + D), plus E (H D + H) sigmas
 * when noisy. */
int64_t tsr_expert_mlp_param_count(const tsr_expert_mlp *l);
void tsr_expert_mlp_fini(tsr_expert_mlp *l);

/* ---- router statistics --------------------------------------------------- */

/* What the moes agents log, per expert, averaged over the batch. */
typedef struct tsr_moe_stats {
    int64_t num_experts;
    bool has_gates;    /* gate_mean and top1_load are filled */
    bool has_dispatch; /* dispatch_mean and dispatch_peak are filled (Soft MoE) */
    bool has_capacity; /* capacity_used and dropped_fraction are filled (Top-1) */
    /* Soft MoE: the mean combine weight of the expert's slots (the reference's
     * "router probability", mean over slots of the combine weights, so the
     * experts' values sum to 1 / S); Top-1: the mean router probability. */
    double gate_mean[TSR_MOE_MAX_EXPERTS];
    /* Fraction of tokens whose top expert is e: Soft MoE, the arg-max over
     * experts of the per-expert mean combine weight; Top-1, the routed expert
     * before capacity. (The reference logs the count per sample: times T.) */
    double top1_load[TSR_MOE_MAX_EXPERTS];
    /* Soft MoE: the mean dispatch weight of the expert's slots — identically
     * 1 / T, since every slot's dispatch weights sum to 1 over the tokens — and
     * the informative one, the mean over the expert's slots of the largest
     * dispatch weight: 1 / T for a uniform mix, 1 when a slot takes one token. */
    double dispatch_mean[TSR_MOE_MAX_EXPERTS];
    double dispatch_peak[TSR_MOE_MAX_EXPERTS];
    /* Top-1: tokens kept by expert e over its capacity N C, and the fraction
     * of all tokens dropped. */
    double capacity_used[TSR_MOE_MAX_EXPERTS];
    double dropped_fraction;
} tsr_moe_stats;

/* ---- Soft MoE ------------------------------------------------------------ */

/* Which of the two mixing steps run (paper 2's ablations; not in the public
 * reference code). The bypassed steps need E * S == T (E = 1 with c = 1, or E
 * dividing T with c = 1): the tokens are then split into E consecutive groups
 * of S, token e S + s being slot s of expert e. */
typedef enum tsr_moe_mix_mode {
    TSR_MOE_MIX_FULL = 0,    /* dispatch and combine: Soft MoE */
    TSR_MOE_MIX_NO_DISPATCH, /* slot e S + s is token e S + s itself; combine as usual */
    TSR_MOE_MIX_NO_COMBINE,  /* dispatch as usual; token i takes the output of slot i */
    TSR_MOE_MIX_NONE,        /* token e S + s goes through expert e alone: with E = 1
                                the same MLP on every token (a "tokenized dense" head);
                                the router is unused */
} tsr_moe_mix_mode;

typedef struct tsr_soft_moe_config {
    int64_t num_experts;      /* E in [1, TSR_MOE_MAX_EXPERTS]; 8 (ImpalaMoE, NatureDQNMoE) */
    double capacity_factor;   /* c > 0; 1.0 */
    int64_t expert_hidden;    /* H >= 1; 512 */
    bool normalization;       /* false */
    bool use_random_phi;      /* phi drawn from N(0, 1) for each sample every forward, not
                                 learned; false */
    tsr_moe_mix_mode mix_mode; /* TSR_MOE_MIX_FULL */
    bool noisy_experts;       /* NoisyNet first layer in each expert; false */
    double noisy_sigma0;      /* their sigma0 (>= 0); 0.5 */
} tsr_soft_moe_config;

/* The reference's defaults (listed beside the fields). */
tsr_soft_moe_config tsr_soft_moe_config_default(void);
/* Slots per expert, ceil(T c / E), computed in double as the reference does. */
int64_t tsr_moe_capacity(int64_t num_tokens, double capacity_factor, int64_t num_experts);

typedef struct tsr_soft_moe {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_soft_moe_config config;
    int64_t num_tokens, token_dim, slots_per_expert; /* T, D, S */
    /* phi (D, E, S), -1 with use_random_phi or TSR_MOE_MIX_NONE; scalar (1),
     * always registered as in the reference, used only with normalization. */
    int phi, scalar;
    tsr_expert_mlp experts;
} tsr_soft_moe;

/* Intermediate tensors of one forward (arena tensors, valid until the next
 * tsr_ctx_begin_step); pass NULL to the forward when not wanted. */
typedef struct tsr_soft_moe_outputs {
    tsr_tensor *logits;   /* (N, T, E S); NULL with TSR_MOE_MIX_NONE */
    tsr_tensor *dispatch; /* (N, E S, T), slot-major: softmax over T, the last
                             axis; NULL without dispatch */
    tsr_tensor *combine;  /* (N, T, E S), softmax over E S; NULL without combine */
    tsr_tensor *hidden;   /* (E, N S, H) expert hidden activations after the ReLU */
} tsr_soft_moe_outputs;

/* Registers "<name>/phi" (D, E, S) (unless use_random_phi or TSR_MOE_MIX_NONE) with LeCun-normal
 * init whose fan-in is D E, Flax's convention for a 3-D kernel (receptive
 * field D times input axis E), "<name>/scalar" (1) initialised to 1, and the
 * experts as "<name>/experts/...". num_tokens T and token_dim D are fixed
 * here because phi's shape depends on them. Returns TSR_STATUS_INVALID_ARGUMENT
 * naming the bad value (nothing registered) when the configuration is not
 * valid. */
tsr_status tsr_soft_moe_init(tsr_soft_moe *l, tsr_params *p, const char *name, int64_t num_tokens,
                             int64_t token_dim, const tsr_soft_moe_config *config, tsr_error *err);
void tsr_soft_moe_reset(tsr_soft_moe *l, tsr_params *p, tsr_rng *rng);
/* x (N, T, D) -> (N, T, D). noise_rng (TSR_RNG_STREAM_NOISE) draws the
 * random phi, N D E S normals, one (D, E, S) block per sample in sample
 * order; it may be NULL unless use_random_phi. */
tsr_tensor *tsr_soft_moe_forward(tsr_soft_moe *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                 tsr_rng *noise_rng, tsr_soft_moe_outputs *outputs);
/* The same with the network's noise: noise->rng draws the random phi first
 * and then, with noisy_experts, the experts' noise (none of it when
 * noise->means_only, whose experts run on their means). tsr_soft_moe_forward
 * is this with {noise_rng, means_only = false}. noise may be NULL when
 * neither is used. */
tsr_tensor *tsr_soft_moe_forward_noise(tsr_soft_moe *l, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x, const tsr_noise *noise,
                                       tsr_soft_moe_outputs *outputs);
/* Per-expert statistics from a forward's outputs (gates from the combine
 * weights, dispatch statistics from the dispatch weights, when present). */
void tsr_soft_moe_stats(const tsr_soft_moe *l, const tsr_soft_moe_outputs *outputs,
                        tsr_moe_stats *stats);
/* Router parameters (phi and the scalar) plus the experts'. */
int64_t tsr_soft_moe_param_count(const tsr_soft_moe *l);
void tsr_soft_moe_fini(tsr_soft_moe *l);

/* ---- Top-1 MoE ----------------------------------------------------------- */

typedef struct tsr_topk_moe_config {
    int64_t num_experts;      /* E in [1, TSR_MOE_MAX_EXPERTS]; 8 */
    int64_t num_selected;     /* k; only 1 is supported (the reference's scatter is
                                 consistent for k = 1 only) */
    double capacity_factor;   /* c > 0; 1.0 */
    int64_t expert_hidden;    /* H >= 1; 512 */
    bool noisy_routing;       /* false */
    double noise_std;         /* >= 0; the logits' noise has std noise_std / E; 1.0 */
    /* The reference's RandomRouter: no router weight; each token's scores are
     * E fresh N(0, 1) draws every pass, used as they are (no softmax): the
     * top score picks the expert and is its gate. false */
    bool random_router;
    /* Load-balancing losses (labs/moes agents/losses.py), off by default. */
    bool entropy_loss;        /* needs E >= 2 */
    double entropy_weight;    /* 0.5 */
    bool importance_loss;
    double importance_weight; /* 1.0 */
    bool noisy_experts;       /* NoisyNet first layer in each expert; false */
    double noisy_sigma0;      /* their sigma0 (>= 0); 0.5 */
} tsr_topk_moe_config;

tsr_topk_moe_config tsr_topk_moe_config_default(void);

typedef struct tsr_topk_moe {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_topk_moe_config config;
    int64_t num_tokens, token_dim, capacity; /* T, D, C */
    int router;                              /* weight (E, D), no bias; -1 when random */
    tsr_weight_cache router_cache;
    tsr_expert_mlp experts;
} tsr_topk_moe;

typedef struct tsr_topk_moe_outputs {
    tsr_tensor *probs;    /* (N, T, E) router softmax (after the noise, if any), or the
                             random router's raw N(0, 1) scores */
    tsr_tensor *expert;   /* (N, T) int32: the routed expert */
    /* (N, T) int32: the token's row in the experts' batch (E, N C) flattened,
     * e N C + n C + position, or -1 when the token was dropped. */
    tsr_tensor *slot;
    tsr_tensor *hidden;   /* (E, N C, H) after the ReLU; empty slots run on zero input,
                             as in the reference */
    /* (1): the sum of the enabled weighted auxiliary losses, to add to the
     * training loss; NULL when none is enabled. */
    tsr_tensor *aux_loss;
    double entropy_term;    /* mean normalised entropy of the experts' token counts */
    double importance_term; /* mean squared coefficient of variation of importance */
} tsr_topk_moe_outputs;

/* Registers "<name>/router/weight" (E, D) (LeCun normal, Flax's Dense default;
 * none with random_router) and the experts as "<name>/experts/...". Returns TSR_STATUS_INVALID_ARGUMENT
 * naming the bad value (nothing registered) when the configuration is not
 * valid, including k != 1. */
tsr_status tsr_topk_moe_init(tsr_topk_moe *l, tsr_params *p, const char *name, int64_t num_tokens,
                             int64_t token_dim, const tsr_topk_moe_config *config, tsr_error *err);
void tsr_topk_moe_reset(tsr_topk_moe *l, tsr_params *p, tsr_rng *rng);
/* x (N, T, D) -> (N, T, D). noise_rng (TSR_RNG_STREAM_NOISE) draws the
 * routing noise (or the random router's scores), N T E normals in (N, T, E)
 * order; it may be NULL unless noisy_routing or random_router.
 *
 * Auxiliary losses, averaged over the samples:
 *   entropy    weight (1 - H(counts + 1e-6) / log E), counts the tokens routed
 *              to each expert (before capacity), normalised to sum 1 — the
 *              reference's "naive entropy": built from arg-max counts, it
 *              carries no gradient (it enters aux_loss as a constant);
 *   importance weight CV^2(importance), importance_e = sum over tokens of the
 *              router probability of e; differentiable. */
tsr_tensor *tsr_topk_moe_forward(tsr_topk_moe *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                 tsr_rng *noise_rng, tsr_topk_moe_outputs *outputs);
/* The same with the network's noise: noise->rng draws the routing noise
 * first and then, with noisy_experts, the experts' noise (the experts' only
 * from the means when noise->means_only; the routing noise is drawn either
 * way, as tsr_topk_moe_forward's). noise may be NULL when neither is used. */
tsr_tensor *tsr_topk_moe_forward_noise(tsr_topk_moe *l, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x, const tsr_noise *noise,
                                       tsr_topk_moe_outputs *outputs);
void tsr_topk_moe_stats(const tsr_topk_moe *l, const tsr_topk_moe_outputs *outputs,
                        tsr_moe_stats *stats);
int64_t tsr_topk_moe_param_count(const tsr_topk_moe *l);
void tsr_topk_moe_fini(tsr_topk_moe *l);

#ifdef __cplusplus
}
#endif

#endif
