/* replay.h — the replay memory: a circular buffer of steps, n-step returns at
 * sample time, uniform or prioritized (sum tree) sampling.
 *
 * STEPS, NOT TRANSITIONS. Each environment step is stored once: the observation
 * before the action, the action, the reward, and two flags saying how the
 * episode ended at this step (terminal: the game is over; truncated: a time
 * limit). Steps carry a global index t = 0, 1, 2, … (the add count before the
 * add); step t lives in slot t mod capacity, so the steps stored are
 * [add_count − capacity, add_count) and adding one overwrites the oldest.
 *
 * TRANSITIONS. The transition starting at step t uses the window [t, t + n)
 * (n = n_step) and is valid when
 *   - the window reaches a terminal at step e (the first episode end in the
 *     window is a terminal): the horizon shrinks to m = e − t + 1, the return
 *     is Σ_{k<m} γ^k r_{t+k} and the discount is 0 (Dopamine's accumulator
 *     emits horizons n, n−1, …, 1 for the tail of a terminated episode); or
 *   - the window holds no episode end and step t + n — the next observation —
 *     is stored: m = n and the discount is γ^n.
 * A window whose first episode end is a truncation is dropped: there is no
 * observation after a truncated step to bootstrap from (Dopamine's accumulator
 * drops the tail on a truncation). A step flagged both terminal and truncated
 * counts as terminal. The transition starting at the step being overwritten is
 * the only one that depends on it, and it is invalidated with it; transitions
 * whose window runs past the newest step (across the write cursor) are not
 * valid until their steps arrive. Returns are computed when sampled, in double,
 * and stored as float.
 *
 * SAMPLING. One sum tree (doubles, Dopamine's layout: leaves in slot order,
 * 2·P nodes for P = the power of two ≥ capacity, each inner node recomputed as
 * the sum of its two children so totals never drift) holds one priority per
 * slot, 0 for a slot whose transition is not valid. Uniform replay puts 1 on
 * every valid transition. A batch of B is stratified, as Dopamine's
 * out-of-graph prioritized buffer samples (sum_tree.stratified_sample): the
 * total mass is cut into B equal segments and sample i draws
 * u ~ U[i·total/B, (i+1)·total/B) and walks the tree to the leaf holding u.
 * Each transition keeps its probability p_i / total per row; what differs
 * from independent draws (Dopamine's newer JAX samplers, its uniform
 * buffers) is only the spread within a batch: rows come from different
 * parts of the buffer.
 *
 * PRIORITIES (prioritized only; components.md §1.8). A new transition enters at
 * the largest priority ever set, which starts at 1.0. An update sets
 * p = (max(loss, 0) + 1e-10)^α, α = priority_exponent (a negative loss from
 * rounding counts as 0; a NaN or infinite one is a programming error).
 * Importance weights, β = importance_exponent:
 *     w_i = (N·P(i))^(−β) / max_j (N·P(j))^(−β) = (p_min / p_i)^β,
 * with P(i) = p_i / Σ p the sampling probability, N the number of valid
 * transitions and the max / min over the batch. N cancels in the
 * normalisation. Dopamine's Rainbow uses 1/√(P(i) + 1e-10) normalised by the
 * batch max: β = 0.5 here, identical up to that 1e-10. Uniform replay returns
 * weights of 1 and ignores priority updates. Dopamine's JAX Rainbow/DER sample
 * uniformly because of google/dopamine#230; here `prioritized` takes effect.
 *
 * MEMORY (tsr_replay_memory_bytes). Per stored step: the observation (its size
 * in bytes, or ⌈cells / 8⌉ with bit_pack), 4 (action) + 4 (reward) + 1 (flags:
 * terminal, truncated, valid), and the tree's 16·P / capacity bytes (16 when
 * the capacity is a power of two, 16.78 at 1,000,000, always < 32). MinAtar
 * observations are 10×10×C binary uint8:
 *     channels C          4 (breakout, asterix)  6 (space inv.)  7 (freeway)  10 (seaquest)
 *     obs bytes, plain    400                    600             700          1000
 *     obs bytes, packed   50                     75              88           125
 *     per step at 1M, plain   ≈ 426              ≈ 626           ≈ 726        ≈ 1026
 *     per step at 1M, packed  ≈ 76               ≈ 101           ≈ 114        ≈ 151
 * (bytes; a 1M-step Seaquest replay takes ≈ 1.03 GB plain and ≈ 151 MB packed.)
 *
 * FRAME STACKS (frame_stack = k > 1; Atari-style observations). An
 * observation (H, W, k·c) holds the last k frames of its episode along the
 * channel axis, oldest first, and zeros in place of frames from before the
 * episode's first step (Dopamine's padding). Only each step's newest frame
 * (its last c channels) is stored; a sampled observation is rebuilt from the
 * k − 1 steps before it, so the replay holds each distinct frame once. Adding
 * checks that an observation's older frames are the ones stored for the
 * previous steps (an observation stacked any other way is a programming
 * error). The transition starting at step t is valid only while every step
 * from t − k + 1 — or from the previous episode's last step, or step 0, if
 * later — is still stored (the flags of that last step tell where the
 * episode began): overwriting a step takes the transitions of up to k − 1
 * later steps with it. Per step this costs
 * the frame (H·W·c bytes, or ⌈H·W·c/8⌉ packed) plus the 9 + 16.78 bytes
 * below: 1M 84×84×4 Atari steps take 7,082.8 MB against 7,056 MB of distinct
 * 84×84 frames (1.004×), where whole stacks would take 28,250 MB.
 *
 * Bit-packing stores cell k of the flattened (row-major) observation in bit
 * k mod 8 (least significant first) of byte ⌊k/8⌋; only observations whose
 * cells are all 0 or 1 can be packed (checked on add), and unpacking is exact.
 *
 * ALLOCATION. tsr_replay_new allocates everything the replay will ever use;
 * tsr_replay_batch_new allocates the caller's batch buffers once. add,
 * sample and update_priorities allocate nothing. Randomness comes from the
 * replay's own stream (seed, TSR_RNG_STREAM_REPLAY) and from nothing else, so
 * a seed and a sequence of calls fix every batch.
 */
#ifndef TESSERA_REPLAY_H
#define TESSERA_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/checkpoint.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_replay tsr_replay;

typedef struct tsr_replay_options {
    int64_t capacity;            /* steps stored (circular), >= n_step + 1; the agent
                                    config also asks for >= batch + n_step + 1 */
    int obs_ndim;                /* 1..3 */
    int64_t obs_shape[3];        /* each >= 1 */
    tsr_dtype obs_dtype;         /* TSR_DTYPE_U8 (MinAtar) or TSR_DTYPE_F32 (CartPole) */
    int64_t n_step;              /* >= 1 */
    double gamma;                /* in [0, 1] */
    bool prioritized;            /* sum-tree prioritized sampling */
    double priority_exponent;    /* alpha >= 0, Dopamine 0.5 (read when prioritized) */
    double importance_exponent;  /* beta >= 0, Dopamine 0.5 fixed (read when prioritized) */
    bool bit_pack;               /* binary uint8 observations stored 1 bit per cell */
    int64_t frame_stack;         /* 0 or 1: observations stored whole; k > 1: they are
                                    (H, W, k x c) stacks of the last k frames and each
                                    frame is stored once (FRAME STACKS above) */
} tsr_replay_options;

/* Validates the options and allocates the replay. On a bad option returns
 * TSR_STATUS_INVALID_ARGUMENT with a message naming it (e.g. "replay option
 * n_step = 0 ..."); TSR_STATUS_OUT_OF_MEMORY when the storage cannot be
 * allocated (the message gives the bytes asked for). *out is NULL on failure. */
tsr_status tsr_replay_new(tsr_replay **out, const tsr_replay_options *o, uint64_t seed,
                          tsr_error *err);
void tsr_replay_free(tsr_replay *r); /* NULL is allowed */

/* Stores one environment step (see the file comment). `obs` has the options'
 * shape and dtype and is copied. */
void tsr_replay_add(tsr_replay *r, const void *obs, int32_t action, float reward, bool terminal,
                    bool truncated);
int64_t tsr_replay_size(const tsr_replay *r);      /* steps stored: min(add_count, capacity) */
int64_t tsr_replay_num_valid(const tsr_replay *r); /* transitions that can be sampled */
int64_t tsr_replay_add_count(const tsr_replay *r); /* steps added ever */

typedef struct tsr_replay_batch { /* caller-owned buffers of `batch` rows, allocated once */
    int64_t batch;
    void *obs, *next_obs;         /* (N, obs...) in the options' dtype, unpacked */
    int32_t *actions;             /* (N) action at the first step */
    float *returns;               /* (N) Σ_{k<m} γ^k r_{t+k}, m = n or up to the terminal */
    float *discounts;             /* (N) γ^n if the window did not reach a terminal, else 0 */
    float *weights;               /* (N) importance weights (1 when uniform), max-normalised */
    int64_t *indices;             /* (N) start step t of each transition, for priority updates */
} tsr_replay_batch;

/* Buffers for `batch` >= 1 rows shaped for r's observations. */
tsr_replay_batch *tsr_replay_batch_new(const tsr_replay *r, int64_t batch);
void tsr_replay_batch_free(tsr_replay_batch *b); /* NULL is allowed */

/* Samples batch->batch transitions (stratified over the sum tree) into `batch`
 * with the replay's own RNG stream; allocates nothing. Requires num_valid > 0.
 * For a transition that reached a terminal, next_obs holds the terminal step's
 * own observation: a finite placeholder that the zero discount cancels. */
void tsr_replay_sample(tsr_replay *r, tsr_replay_batch *batch);

/* Sets the priorities of the transitions starting at indices[i] (from a batch)
 * to (max(losses[i], 0) + 1e-10)^alpha and raises the running maximum. Indices
 * whose start step has been overwritten since they were sampled are skipped.
 * A no-op when the replay is uniform. */
void tsr_replay_update_priorities(tsr_replay *r, const int64_t *indices, const float *losses,
                                  int64_t count);

/* The sampling priority of the transition starting at step `index`: 0 when it
 * is not valid (not yet complete, dropped, or overwritten); 1 for every valid
 * transition of a uniform replay. */
double tsr_replay_priority(const tsr_replay *r, int64_t index);
/* The priority new transitions enter with: the largest ever set, from 1.0. */
double tsr_replay_max_priority(const tsr_replay *r);

/* Bytes held by the replay (storage, sum tree and the struct), excluding
 * batches. See MEMORY in the file comment for the per-step breakdown. */
size_t tsr_replay_memory_bytes(const tsr_replay *r);

/* Writes the whole replay under `group` of a checkpoint, or reads it back
 * (checkpoints/FORMAT.md: observations as stored, packed or not; actions,
 * rewards, flags, the sum tree's leaves, counters and the replay's stream).
 * A replay restored this way samples exactly as the saved one would have.
 * The arrays must have this replay's capacity and stored observation size. */
void tsr_replay_checkpoint(tsr_replay *r, tsr_ckpt *c, const char *group);
/* The first slot of a valid transition whose action is >= bound, or -1:
 * the agent's check of a restored replay against its action count. */
int64_t tsr_replay_find_action_at_least(const tsr_replay *r, int32_t bound);

#ifdef __cplusplus
}
#endif

#endif
