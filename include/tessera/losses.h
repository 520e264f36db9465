/* losses.h — value losses: MSE, Huber, C51, two-hot and HL-Gauss over one
 * support object.
 *
 * One config value picks the loss (`mse | huber | c51 | twohot | hlgauss`);
 * tsr_support_init turns a tsr_value_loss_config into a tsr_support that
 * every function below takes, so an agent switches losses without other code
 * changes: the network's head width is tsr_support_head_width, Q-values for
 * acting come from tsr_value_q, and the per-sample TD loss from
 * tsr_value_loss_td.
 *
 * Supports (components.md §1.8):
 *   c51, twohot  K atoms z_i = linspace(vmin, vmax, K), endpoints included,
 *                spacing dz = (vmax - vmin) / (K - 1).
 *   hlgauss      K bins with edges e_i = linspace(vmin, vmax, K + 1), width
 *                w = (vmax - vmin) / K, centres c_i = (e_i + e_{i+1}) / 2, and
 *                sigma = sigma_ratio * w. The support's values are the centres.
 *   mse, huber   no support: the network outputs one Q per action.
 *
 * Targets (built without gradient, (N, K), rows summing to 1):
 *   C51      m_i = sum_j p_j clip(1 - |clip(r + g (1 - done) z_j, vmin, vmax) - z_i| / dz, 0, 1)
 *            with g = gamma^n: the categorical projection (Bellemare et al., Eq. 7).
 *   two-hot  the same projection of a unit mass at a scalar y (clipped into the support).
 *   HL-Gauss y clipped into [vmin, vmax], then p_i = [erf((e_{i+1} - y) / (sqrt2 sigma))
 *            - erf((e_i - y) / (sqrt2 sigma))] / [erf((e_K - y) / (sqrt2 sigma))
 *            - erf((e_0 - y) / (sqrt2 sigma))]. The clip is ours: without it a y a few
 *            sigma outside the support gives 0 / 0 (the paper's code does not clip).
 *
 * Losses (ops on the tape; each returns the per-sample loss (N), which
 * prioritized replay needs, and backpropagates into its prediction only — the
 * target is a constant):
 *   cross-entropy  L_n = -sum_k t_nk log softmax(logits)_nk,
 *                  dL/dlogits = (softmax(logits) sum_k t_nk - t_n) dL
 *                  (= (softmax - t) dL for a target row summing to 1);
 *   MSE            L = (y - q)^2 (Dopamine's mse_loss: no 1/2), dL/dq = 2 (q - y);
 *   Huber          x = |y - q|: L = x^2 / 2 for x <= delta, delta^2 / 2 + delta (x - delta)
 *                  beyond (Dopamine's huber_loss, delta 1), dL/dq = clip(q - y, -delta, delta).
 * Readout: Q = sum_k softmax(logits)_k v_k with v the atoms (C51, two-hot) or the bin
 * centres (HL-Gauss), differentiable.
 *
 * All ops take float32 or float64 (the reference kernels in both precisions,
 * so the finite-difference checks in double test the code that runs).
 */
#ifndef TESSERA_LOSSES_H
#define TESSERA_LOSSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/autograd.h"
#include "tessera/config.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ------------------------------------------------------- */

typedef enum tsr_value_loss_kind {
    TSR_VALUE_LOSS_MSE = 0, /* "mse": Dopamine JAX DQN's default */
    TSR_VALUE_LOSS_HUBER,   /* "huber" */
    TSR_VALUE_LOSS_C51,     /* "c51": categorical projection of the target distribution */
    TSR_VALUE_LOSS_TWOHOT,  /* "twohot": two-hot of the scalar TD target */
    TSR_VALUE_LOSS_HLGAUSS, /* "hlgauss": Gaussian histogram of the scalar TD target */
} tsr_value_loss_kind;

/* The config names in enum order, NULL-terminated (a config ENUM's choices). */
extern const char *const tsr_value_loss_kind_names[];

/* The [loss] section of a config file; field names are the keys. Enum fields
 * are `int` (what a config ENUM writes), holding a tsr_value_loss_kind. */
typedef struct tsr_value_loss_config {
    int kind;           /* tsr_value_loss_kind; mse */
    int64_t num_bins;   /* K: atoms (c51, twohot) or bins (hlgauss); 51 */
    double vmin, vmax;  /* support range; -10, 10 */
    double sigma_ratio; /* hlgauss: sigma / bin width; 0.75 */
    double huber_delta; /* huber: delta; 1 */
} tsr_value_loss_config;

enum { TSR_VALUE_LOSS_MAX_BINS = 65536 };

/* mse, 51 bins over [-10, 10], sigma ratio 0.75, Huber delta 1. */
tsr_value_loss_config tsr_value_loss_config_defaults(void);
/* TSR_STATUS_INVALID_ARGUMENT naming the first bad key ("loss.<key>"), its
 * value and what is allowed: num_bins in [2, 65536]; vmin, vmax finite with
 * vmin < vmax; sigma_ratio finite and > 0; huber_delta finite and > 0; kind
 * one of the enum. Every field is checked whatever the kind, so a typo in an
 * unused value still surfaces. */
tsr_status tsr_value_loss_config_validate(const tsr_value_loss_config *cfg, tsr_error *err);
/* The [loss] keys (kind, num_bins, vmin, vmax, sigma_ratio, huber_delta), for
 * a config schema: `offset` is that of the tsr_value_loss_config inside the
 * caller's struct. Writes at most `capacity` keys to `out` and returns how
 * many there are. Their defaults are tsr_value_loss_config_defaults'. */
int tsr_value_loss_config_keys(size_t offset, tsr_config_key *out, int capacity);
/* "hlgauss" -> TSR_VALUE_LOSS_HLGAUSS; an unknown name is an error listing the
 * valid ones. */
tsr_status tsr_value_loss_kind_parse(const char *name, tsr_value_loss_kind *kind, tsr_error *err);
const char *tsr_value_loss_kind_name(tsr_value_loss_kind kind);
/* True for c51, twohot and hlgauss: the network outputs K logits per action. */
bool tsr_value_loss_kind_is_categorical(tsr_value_loss_kind kind);

/* ---- the support ------------------------------------------------------------ */

typedef struct tsr_support {
    tsr_value_loss_kind kind;
    int64_t num_values; /* K for categorical kinds, 0 for mse / huber */
    double vmin, vmax;
    double spacing;     /* atom spacing dz (c51, twohot) or bin width w (hlgauss) */
    double sigma;       /* hlgauss: sigma_ratio * w; 0 otherwise */
    double huber_delta;
    double *values;     /* (K) atoms or bin centres; NULL for mse / huber */
    double *edges;      /* (K + 1) bin edges for hlgauss; NULL otherwise */
} tsr_support;

/* Validates `cfg` (as tsr_value_loss_config_validate) and builds the support;
 * on error `s` is left empty (fini is still safe). */
tsr_status tsr_support_init(tsr_support *s, const tsr_value_loss_config *cfg, tsr_error *err);
void tsr_support_fini(tsr_support *s);
/* Outputs per action the network head must produce: K, or 1 for mse / huber. */
int64_t tsr_support_head_width(const tsr_support *s);
static inline bool tsr_support_is_categorical(const tsr_support *s)
{
    return tsr_value_loss_kind_is_categorical(s->kind);
}

/* ---- targets (no gradient; results in the pass arena) ------------------- */

/* C51 projection: probs (N, K) the target distribution at the bootstrap
 * action, rewards (N) the n-step returns, dones (N) 1 where the episode ended
 * within the n steps (float32, float64 or uint8), gamma_n = gamma^n.
 * -> (N, K) of probs' dtype. Requires a c51 or twohot support. */
tsr_tensor *tsr_c51_project(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *probs,
                            const tsr_tensor *rewards, const tsr_tensor *dones, double gamma_n);
/* Two-hot of scalar targets y (N) -> (N, K) of y's dtype (c51 or twohot support). */
tsr_tensor *tsr_twohot_target(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *y);
/* HL-Gauss of scalar targets y (N) -> (N, K) of y's dtype (hlgauss support). */
tsr_tensor *tsr_hlgauss_target(tsr_ctx *ctx, const tsr_support *s, const tsr_tensor *y);

/* ---- losses and readout (ops on the tape) -------------------------------- */

/* logits (N, K), target (N, K) of the same dtype -> per-sample loss (N). */
tsr_tensor *tsr_categorical_cross_entropy(tsr_ctx *ctx, tsr_tensor *logits,
                                          const tsr_tensor *target);
/* pred (N), target (N) of the same dtype -> per-sample loss (N). */
tsr_tensor *tsr_mse_loss(tsr_ctx *ctx, tsr_tensor *pred, const tsr_tensor *target);
tsr_tensor *tsr_huber_loss(tsr_ctx *ctx, tsr_tensor *pred, const tsr_tensor *target, double delta);
/* logits (..., K) -> (...) = sum_k softmax(logits)_k values_k (categorical support). */
tsr_tensor *tsr_value_readout(tsr_ctx *ctx, const tsr_support *s, tsr_tensor *logits);

/* ---- the TD loss, whatever the kind -------------------------------------- */

/* Q-values (N, A) from a network's outputs: (N, A, K) logits read out
 * (categorical kinds) or (N, A) returned as they are (mse / huber). Records
 * on the tape like tsr_value_readout when the context is recording. */
tsr_tensor *tsr_value_q(tsr_ctx *ctx, const tsr_support *s, tsr_tensor *outputs);

typedef struct tsr_td_batch {
    /* The online network's outputs at the actions taken (tsr_gather_actions):
     * (N, K) logits or (N) Q-values. The loss backpropagates into it. */
    tsr_tensor *chosen;
    /* The target network on s': (N, A, K) or (N, A). */
    const tsr_tensor *next_target;
    /* The online network on s' (same shape) to choose the bootstrap action
     * (double DQN), or NULL to choose it with the target network. */
    const tsr_tensor *next_online;
    const tsr_tensor *rewards; /* (N) n-step discounted rewards */
    const tsr_tensor *dones;   /* (N) 1 if the episode terminated (float or uint8) */
    double gamma_n;            /* gamma^n */
} tsr_td_batch;

/* The per-sample TD loss (N) of `s`'s kind. The bootstrap action is
 * a* = argmax_a Q(s', a) of next_online (or next_target), ties to the lowest
 * action; then, with g = gamma_n (1 - done):
 *   mse, huber       loss(q, r + g Q_target(s', a*));
 *   c51              xent(logits, project(softmax(target logits at a*)));
 *   twohot, hlgauss  xent(logits, target_of(r + g Q_target(s', a*))),
 *                    Q_target = the readout of the target logits.
 * Nothing about the target is recorded on the tape. */
tsr_tensor *tsr_value_loss_td(tsr_ctx *ctx, const tsr_support *s, const tsr_td_batch *batch);

#ifdef __cplusplus
}
#endif

#endif
