/* pruning.h — gradual magnitude pruning (GMP) with uint8 masks.
 *
 * A tsr_pruner owns one uint8 mask block laid out like a tsr_params block:
 * the mask of parameter i starts at params->items[i].offset, as optimizer
 * state does (optim.h), so a checkpoint writes it per parameter name. The
 * semantics follow jaxpruner (components.md §1.7):
 *
 *   Schedule   t counts gradient updates (pass the optimizer's step count
 *              before the update: 0 for the first). With progress
 *              pi(t) = clip(t + 1 - t_start, 0, t_end - t_start) / (t_end - t_start)
 *              (pi = 1 when t_end == t_start), the sparsity of a tensor whose
 *              final sparsity is s_i is s_i (1 - (1 - pi(t))^3). Masks are
 *              recomputed only when t mod update_freq == 0 and
 *              t_start <= t <= t_end; before that they are all ones.
 *   Scores     |w| of the current values, before this update is applied. The
 *              optimizer still updates every weight (gradients are not
 *              masked); tsr_pruner_apply after each update multiplies the
 *              values by the masks, so pruned weights stay exactly 0, and a
 *              target network copied from the online block is masked too.
 *   Masks      a tensor of N entries at sparsity s keeps
 *              n = max(1, round(N (1 - s))) entries (round half to even, as
 *              jnp.round), those with the largest scores; among equal scores
 *              the lower flat index wins.
 *   Spread     uniform: every pruned tensor gets S. erk: tensor i gets density
 *              eps * (sum of its dims) / (product of its dims), one eps solved
 *              so that the kept total is (1 - S) N; while the densest tensor
 *              would exceed density 1 it is made dense and eps solved again
 *              (one tensor per round, as jaxpruner; the same as making every
 *              overflowing tensor dense at once, since densifying only frees
 *              budget and eps grows). Like jaxpruner, the budget counts
 *              floor(S n_i) zeros per tensor.
 *   Scope      layerwise: each tensor's own top-n. global: each tensor's
 *              scores divided by (their L2 norm + 1e-8), then one top-n over
 *              all pruned tensors concatenated in registration order
 *              (jaxpruner sorts by name; only ties can differ). Global scope
 *              has one sparsity, so it takes the uniform distribution.
 *   Modes      gmp: the polynomial schedule above (start == end gives
 *              one-shot, like jaxpruner's create_updater_from_config);
 *              one_shot: prune to S once, at t == t_start (update_freq and
 *              t_end unused); static: masks drawn at creation from random
 *              scores (jaxpruner's StaticRandomSparse) at S and never
 *              changed — apply them once before the first forward;
 *              none: the pruner does nothing.
 *
 * Which tensors are pruned, by name (the naming contract layers follow):
 *   - parameters registered with TSR_PARAM_PRUNABLE and ndim > 1 (every conv
 *     and dense kernel; biases are 1-D and never pruned);
 *   - minus, with exclude_first_conv, the first such tensor with 4 dims (the
 *     encoder's first conv weight, (O, I, kH, kW));
 *   - minus, with exclude_output, the output layer: every tensor of the layer
 *     (the name up to its last '/') of the last such tensor in registration
 *     order (networks register their head last: "head/output/weight", or a
 *     noisy output's weight_mu and weight_sigma) and, when that layer is
 *     "<head>/value" (a dueling head), the "<head>/advantage" layer too;
 *   - minus, with exclude_routers, every tensor whose name contains "/router"
 *     (top-k MoE routers: "<moe>/router/weight") or "/phi" (Soft-MoE slot
 *     parameters: "<moe>/phi").
 */
#ifndef TESSERA_PRUNING_H
#define TESSERA_PRUNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/checkpoint.h"
#include "tessera/config.h"
#include "tessera/layers.h"
#include "tessera/params.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ------------------------------------------------------- */

typedef enum tsr_prune_mode {
    TSR_PRUNE_MODE_GMP = 0,  /* "gmp" */
    TSR_PRUNE_MODE_ONE_SHOT, /* "one_shot" */
    TSR_PRUNE_MODE_STATIC,   /* "static" */
    TSR_PRUNE_MODE_NONE,     /* "none" */
} tsr_prune_mode;

typedef enum tsr_prune_distribution {
    TSR_PRUNE_DISTRIBUTION_UNIFORM = 0, /* "uniform" */
    TSR_PRUNE_DISTRIBUTION_ERK,         /* "erk" */
} tsr_prune_distribution;

typedef enum tsr_prune_scope {
    TSR_PRUNE_SCOPE_LAYERWISE = 0, /* "layerwise" */
    TSR_PRUNE_SCOPE_GLOBAL,        /* "global" */
} tsr_prune_scope;

/* How the start and end of pruning are given. */
typedef enum tsr_prune_step_units {
    TSR_PRUNE_STEPS_FRACTION = 0, /* "fraction": start/end_fraction of the run's updates */
    TSR_PRUNE_STEPS_UPDATES,      /* "updates": start_step, end_step in gradient updates */
} tsr_prune_step_units;

/* Names in enum order, NULL-terminated (config ENUM choices). */
extern const char *const tsr_prune_mode_names[];
extern const char *const tsr_prune_distribution_names[];
extern const char *const tsr_prune_scope_names[];
extern const char *const tsr_prune_step_units_names[];

/* The [pruning] section of a config file; field names are the keys. Enum
 * fields are `int` (what a config ENUM writes) holding the enums above. */
typedef struct tsr_prune_config {
    int mode;                            /* tsr_prune_mode; gmp */
    double target_sparsity;              /* S in [0, 1); 0.95 */
    int step_units;                      /* tsr_prune_step_units; fraction */
    double start_fraction, end_fraction; /* 0.2, 0.8 of the run's gradient updates */
    int64_t start_step, end_step;        /* used with step_units = updates; 0, 0 */
    int64_t update_freq;                 /* masks every 1,000 updates */
    int distribution;                    /* tsr_prune_distribution; erk */
    int scope;                           /* tsr_prune_scope; layerwise */
    bool exclude_first_conv;             /* false: jaxpruner prunes it */
    bool exclude_output;                 /* false: jaxpruner prunes it */
    bool exclude_routers;                /* false */
    /* Static mode's random scores. Not a config key: the agent sets it from
     * the run's seed (0 by default). */
    int64_t seed;
} tsr_prune_config;

/* The §1.7 defaults: gmp to 95% with ERK, layer-wise magnitude, from 20% to
 * 80% of the updates, masks every 1,000 updates, nothing excluded. */
tsr_prune_config tsr_prune_config_defaults(void);
/* TSR_STATUS_INVALID_ARGUMENT naming the first bad key ("pruning.<key>") and
 * what is allowed:
 * target_sparsity in [0, 1); fractions in [0, 1] with start_fraction <=
 * end_fraction; start_step >= 0 and end_step >= start_step; update_freq >= 1;
 * seed >= 0; distribution = erk with scope = global is refused (global
 * pruning has one sparsity, so erk would be silently ignored). */
tsr_status tsr_prune_config_validate(const tsr_prune_config *cfg, tsr_error *err);
/* The [pruning] keys (every field but seed), for a config schema: `offset`
 * is that of the tsr_prune_config inside the caller's struct. Writes at most
 * `capacity` keys to `out` and returns how many there are. Their defaults
 * are tsr_prune_config_defaults'. */
int tsr_prune_config_keys(size_t offset, tsr_config_key *out, int capacity);
/* "erk" -> value; unknown names are errors listing the valid ones. `key`
 * names the config key in the message. */
tsr_status tsr_prune_enum_parse(const char *const *names, const char *key, const char *value,
                                int *out, tsr_error *err);

/* ---- the pruner -------------------------------------------------------------- */

typedef struct tsr_pruner tsr_pruner;

/* Creates a pruner for `params` (finalized, float32 or float64; the pruner
 * keeps only its layout, so the online block or any block of the same layout
 * may be passed to the calls below). total_updates is the run's number of
 * gradient updates, needed when step_units = fraction (start = round(
 * start_fraction total_updates)). Errors (config, total_updates <= 0 with
 * fractions, no tensor left to prune) return TSR_STATUS_INVALID_ARGUMENT and
 * leave *out NULL. Static masks are drawn here. */
tsr_status tsr_pruner_new(tsr_pruner **out, const tsr_params *params, const tsr_prune_config *cfg,
                          int64_t total_updates, tsr_error *err);
void tsr_pruner_free(tsr_pruner *pruner); /* NULL is allowed */

const tsr_prune_config *tsr_pruner_config(const tsr_pruner *pruner);
/* The resolved schedule, in gradient updates. */
int64_t tsr_pruner_start_step(const tsr_pruner *pruner);
int64_t tsr_pruner_end_step(const tsr_pruner *pruner);
/* Whether a schedule given in gradient updates (step_units = updates) fits a
 * run expected to make `expected_updates` of them (t = 0, 1, ...; see
 * tsr_run_expected_updates: a run makes at least that many, a few more when
 * its last episodes run past the step budget). When the first mask update
 * is at or beyond that count (the network would most likely stay dense), or
 * a gmp window has mask updates beyond it that the masks need to reach
 * target_sparsity, writes a sentence saying so to `msg` and returns false.
 * So it does, in either unit, for a gmp window of no length (start = end),
 * which prunes once rather than gradually. Otherwise fractions fit by
 * construction; none and static always fit. */
bool tsr_pruner_schedule_fits(const tsr_pruner *pruner, int64_t expected_updates, char *msg,
                              size_t size);

/* The schedule's overall sparsity at update t: S (1 - (1 - pi(t))^3) for gmp
 * (S at every t when start == end, as in jaxpruner), S for one_shot and
 * static, 0 for none. Masks only take it on update steps. */
double tsr_pruner_sparsity_at(const tsr_pruner *pruner, int64_t t);
/* True when tsr_pruner_step recomputes the masks at update t. */
bool tsr_pruner_is_update_step(const tsr_pruner *pruner, int64_t t);
/* Before the optimizer update number t: on an update step, recomputes the
 * masks from |values| and returns true; otherwise returns false. No
 * allocation (scratch is sized at creation). */
bool tsr_pruner_step(tsr_pruner *pruner, const tsr_params *params, int64_t t);
/* After every optimizer update: values *= masks for the pruned tensors, then
 * tsr_params_bump_version. Does nothing while no mask has been computed. */
void tsr_pruner_apply(const tsr_pruner *pruner, tsr_params *params);

/* Whether parameter `index` is under the pruner's control. */
bool tsr_pruner_is_pruned(const tsr_pruner *pruner, int index);
/* Final sparsity of parameter `index` (S, or its ERK share; 0 if unpruned). */
double tsr_pruner_final_sparsity(const tsr_pruner *pruner, int index);
/* Sparsity the masks of `index` were last computed for (0 before the first). */
double tsr_pruner_current_sparsity(const tsr_pruner *pruner, int index);
/* A uint8 view of parameter `index`'s mask, shaped like the parameter
 * (writable: checkpoint loads fill it, then call tsr_pruner_masks_loaded). */
tsr_tensor tsr_pruner_mask(tsr_pruner *pruner, int index);
/* The whole mask block (tsr_pruner_mask_bytes bytes, the params' layout). */
uint8_t *tsr_pruner_mask_block(tsr_pruner *pruner);
size_t tsr_pruner_mask_bytes(const tsr_pruner *pruner);
/* After writing masks directly (a checkpoint load): masks count as computed,
 * so tsr_pruner_apply uses them. */
void tsr_pruner_masks_loaded(tsr_pruner *pruner);
/* Writes or reads the pruner's state under `group` of a checkpoint: the
 * resolved schedule (checked on reading), whether masks have been computed,
 * and each pruned tensor's mask (uint8, shaped like the parameter) and the
 * sparsity it was computed for. The schedule's position is the optimizer's
 * step count, saved with the optimizer. */
void tsr_pruner_checkpoint(tsr_pruner *pruner, const tsr_params *params, tsr_ckpt *c,
                           const char *group);

/* ---- sparsity and FLOPs report ----------------------------------------------- */

/* "Uses per forward" of a weight: how many times a dense forward multiplies
 * by each of its elements — for a conv weight the number of output positions
 * N Ho Wo, for a linear weight the number of rows N. A multiply-add counts as
 * two FLOPs, so a zero weight costs 2 * uses FLOPs per forward. */

/* Fills uses[params->count] from a summary collected during one forward
 * (layers.h): a row named L gives parameter "L/weight" the uses
 * row.flops / (2 numel(weight)), summed over rows of the same name; other
 * parameters get 0. Exact for layers whose FLOPs are those of their one
 * weight (linear, conv2d); give other layers' uses by hand. */
void tsr_prune_uses_from_summary(const tsr_params *params, const tsr_summary *summary,
                                 double *uses);

typedef struct tsr_prune_report_row {
    char name[TSR_PARAM_NAME_BYTES];
    int64_t numel, zeros; /* zeros: values exactly 0 */
    double sparsity;      /* zeros / numel */
    bool pruned;          /* under the pruner's control */
    double uses;          /* per forward (0 when unknown) */
    double zero_flops;    /* 2 uses zeros: FLOPs a dense forward spends on zeros */
} tsr_prune_report_row;

typedef struct tsr_prune_report {
    tsr_prune_report_row *rows; /* one per parameter, registration order */
    int count;
    int64_t pruned_numel, pruned_zeros; /* over the pruned tensors */
    double pruned_sparsity;
    int64_t total_numel, total_zeros;   /* over every parameter (jaxpruner's TotalSparsity) */
    double total_sparsity;
    double dense_flops, zero_flops;     /* over parameters with uses > 0 */
} tsr_prune_report;

/* Counts the zeros of `params`; pruner (which tensors are pruned) and uses
 * (params->count entries) may be NULL. Allocates rows: tsr_prune_report_fini. */
void tsr_prune_report_compute(tsr_prune_report *report, const tsr_params *params,
                              const tsr_pruner *pruner, const double *uses);
void tsr_prune_report_fini(tsr_prune_report *report);
/* A table: one line per parameter, then the totals. */
void tsr_prune_report_print(const tsr_prune_report *report, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
