/* optim.h — optimizers over a parameter block.
 *
 * An optimizer updates the values of one tsr_params block from its gradients.
 * Its state (moments, momentum buffers) lives in contiguous float blocks laid
 * out exactly like the parameter block — parameter i's state starts at
 * params->items[i].offset in every state block — so a checkpoint can write
 * the state per parameter name (tsr_optimizer_state) and one memcpy copies it.
 *
 * One step (tsr_optimizer_step):
 *   1. settles the gradients (tsr_params_settle_grads): a parameter that
 *      received no gradient in this epoch has a zero gradient;
 *   2. updates every parameter elementwise (threaded over elements above a
 *      size threshold; the result does not depend on the thread count);
 *   3. bumps the block's version (cached oneDNN weight layouts refresh).
 * Clip gradients (tsr_params_clip_grad_norm) between settling and the step:
 * call tsr_params_settle_grads(params, epoch) first; settling twice is harmless.
 *
 * The algorithms, with g the gradient, w the value, t the step (1 on the first):
 *
 *  SGD (PyTorch / optax.sgd):  b = momentum * b + g;  w -= lr * b
 *      (momentum 0: w -= lr * g; no buffer is kept).
 *
 *  Adam (optax.adam / Dopamine): m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
 *      m^ = m / (1 - b1^t),  v^ = v / (1 - b2^t),
 *      u = m^ / (sqrt(v^) + eps)         (eps OUTSIDE the root, eps_root 0),
 *      u += weight_decay * w             (only parameters flagged TSR_PARAM_DECAY:
 *                                         optax.adamw's decoupled decay),
 *      w -= lr * u.
 *
 *  RMSProp (PyTorch torch.optim.RMSprop semantics): s = alpha s + (1 - alpha) g^2;
 *      centred: a = alpha a + (1 - alpha) g,  d = sqrt(s - a^2) + eps;
 *      plain:   d = sqrt(s) + eps;
 *      momentum > 0: b = momentum b + g / d,  w -= lr * b;  else w -= lr * g / d.
 *
 * Arithmetic is float32 per element; the step-dependent scalars (bias
 * corrections) are computed in double and rounded once.
 */
#ifndef TESSERA_OPTIM_H
#define TESSERA_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/checkpoint.h"
#include "tessera/params.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_optimizer_kind {
    TSR_OPTIMIZER_SGD = 0,
    TSR_OPTIMIZER_ADAM,    /* with weight_decay > 0: AdamW (decoupled) */
    TSR_OPTIMIZER_RMSPROP, /* centred or plain */
} tsr_optimizer_kind;

typedef struct tsr_optimizer_options {
    tsr_optimizer_kind kind;
    double learning_rate;
    double beta1, beta2;  /* Adam: moment decay rates, in [0, 1) */
    double eps;           /* Adam, RMSProp: added to the root, > 0 for RMSProp */
    double weight_decay;  /* Adam only: decoupled decay of TSR_PARAM_DECAY params */
    double alpha;         /* RMSProp: smoothing constant, in [0, 1) */
    bool centered;        /* RMSProp: subtract the squared mean gradient */
    double momentum;      /* SGD, RMSProp: in [0, 1); 0 keeps no buffer */
} tsr_optimizer_options;

/* Dopamine's DQN Adam: lr 6.25e-5, eps 1.5e-4, beta1 0.9, beta2 0.999. */
tsr_optimizer_options tsr_optimizer_adam_defaults(void);
/* The MinAtar paper's DQN: centred RMSProp, lr 0.00025, alpha 0.95, eps 0.01,
 * momentum 0. */
tsr_optimizer_options tsr_optimizer_rmsprop_minatar_defaults(void);
/* SGD with lr 0.01 and no momentum. */
tsr_optimizer_options tsr_optimizer_sgd_defaults(void);

typedef struct tsr_optimizer tsr_optimizer;

/* Creates an optimizer for `params` (finalized; it must outlive the optimizer
 * and stay at the same address) with zeroed state and step count 0. Options
 * come from users (configs): an out-of-range value returns
 * TSR_STATUS_INVALID_ARGUMENT naming the option, and *out is NULL. */
tsr_status tsr_optimizer_new(tsr_optimizer **out, tsr_params *params,
                             const tsr_optimizer_options *options, tsr_error *err);
void tsr_optimizer_free(tsr_optimizer *opt); /* NULL is allowed */

/* Settles the gradients of `epoch`, applies one update, bumps the version. */
void tsr_optimizer_step(tsr_optimizer *opt, uint64_t epoch);

const tsr_optimizer_options *tsr_optimizer_options_get(const tsr_optimizer *opt);
/* For schedules: the learning rate of the following steps. */
void tsr_optimizer_set_learning_rate(tsr_optimizer *opt, double learning_rate);
/* Updates applied so far (Adam's t after a step); settable for checkpoint loads. */
int64_t tsr_optimizer_step_count(const tsr_optimizer *opt);
void tsr_optimizer_set_step_count(tsr_optimizer *opt, int64_t count);

/* State blocks: Adam "mu", "nu"; RMSProp "square_avg", then "grad_avg" when
 * centred, then "momentum_buffer" when momentum > 0; SGD "momentum_buffer"
 * when momentum > 0, else none. */
int tsr_optimizer_state_count(const tsr_optimizer *opt);
const char *tsr_optimizer_state_name(const tsr_optimizer *opt, int slot);
/* The whole block of state `slot` (params->numel floats, the params' layout). */
float *tsr_optimizer_state_block(tsr_optimizer *opt, int slot);
/* A float32 view of state `slot` for parameter `param_index`, shaped like the
 * parameter (writable: checkpoint loads fill it). */
tsr_tensor tsr_optimizer_state(tsr_optimizer *opt, int slot, int param_index);

/* Writes or reads the optimizer under `group` of a checkpoint: the kind and
 * number of state blocks (checked on reading), the step count, and each
 * state block per parameter, <group>/<state name>/<parameter name>, shaped
 * like the parameter (checkpoints/FORMAT.md). */
void tsr_optimizer_checkpoint(tsr_optimizer *opt, tsr_ckpt *c, const char *group);

#ifdef __cplusplus
}
#endif

#endif
