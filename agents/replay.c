/* replay.c — circular step storage, n-step returns at sample time, and a sum
 * tree for uniform and prioritized sampling (contract and formulas in replay.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/replay.h"
#include "tessera/rng.h"
#include "tessera/status.h"

/* Per-step flags, one byte per slot. VALID belongs to the transition that
 * starts at the step in that slot. */
enum {
    FLAG_TERMINAL = 1u << 0,
    FLAG_TRUNCATED = 1u << 1,
    FLAG_VALID = 1u << 2,
    FLAG_END = FLAG_TERMINAL | FLAG_TRUNCATED,
};

/* The added constant of Dopamine's priorities (rainbow_agent.py). */
static const double priority_epsilon = 1e-10;

struct tsr_replay {
    tsr_replay_options opt;
    int64_t capacity;
    int64_t obs_cells;        /* elements in one observation */
    size_t obs_bytes;         /* one unpacked observation */
    int64_t frames;           /* observations are stacks of this many frames (1: none) */
    int64_t frame_cells;      /* elements of one frame: obs_cells / frames */
    size_t frame_bytes;       /* one unpacked frame */
    int64_t pixels;           /* H x W of a stacked observation; 1 otherwise */
    size_t pixel_frame_bytes; /* one frame's channels at one pixel */
    size_t stored_obs_bytes;  /* one frame (or observation) in storage, packed or not */
    int64_t add_count;
    int64_t num_valid;
    int64_t tree_leaves;      /* P: a power of two >= capacity */
    double max_priority;
    double gamma_n;           /* gamma^n_step, computed once */
    uint8_t *obs;             /* (capacity, stored_obs_bytes) */
    int32_t *actions;         /* (capacity) */
    float *rewards;           /* (capacity) */
    uint8_t *flags;           /* (capacity) */
    double *tree;             /* (2P): node 1 is the root, leaves at [P, 2P) in slot order */
    uint8_t *frame_scratch;   /* with stacking: two unpacked frames, to rebuild and check */
    tsr_rng rng;
};

/* ------------------------------------------------------------------------ */
/* Sum tree                                                                 */
/* ------------------------------------------------------------------------ */

static void tree_set(tsr_replay *r, int64_t slot, double priority)
{
    int64_t node = r->tree_leaves + slot;
    r->tree[node] = priority;
    /* Recomputing each ancestor from its children (instead of adding a delta)
     * keeps every total exact to the leaves: no drift over millions of sets. */
    for (node /= 2; node >= 1; node /= 2) r->tree[node] = r->tree[2 * node] + r->tree[2 * node + 1];
}

/* The slot whose cumulative interval holds u in [0, total). Never returns a
 * zero-priority leaf while the total is positive: a step goes right only when
 * the right subtree has mass, and rounding that pushes u past a subtree's mass
 * lands on its last positive leaf. */
static int64_t tree_find(const tsr_replay *r, double u)
{
    int64_t node = 1;
    while (node < r->tree_leaves) {
        double left = r->tree[2 * node], right = r->tree[2 * node + 1];
        if (u < left || right <= 0.0) {
            node = 2 * node;
        } else {
            u -= left;
            node = 2 * node + 1;
        }
    }
    return node - r->tree_leaves;
}

/* ------------------------------------------------------------------------ */
/* Observations                                                             */
/* ------------------------------------------------------------------------ */

static void pack_bits(uint8_t *dst, const uint8_t *src, int64_t cells, size_t dst_bytes)
{
    memset(dst, 0, dst_bytes);
    for (int64_t k = 0; k < cells; k++) {
        TSR_ASSERT_MSG(src[k] <= 1,
                       "bit_pack replay got observation value %u at cell %lld; only 0 and 1 "
                       "can be packed",
                       (unsigned)src[k], (long long)k);
        dst[k >> 3] |= (uint8_t)(src[k] << (k & 7));
    }
}

static void unpack_bits(uint8_t *dst, const uint8_t *src, int64_t cells)
{
    for (int64_t k = 0; k < cells; k++) dst[k] = (uint8_t)((src[k >> 3] >> (k & 7)) & 1u);
}

/* The frame stored for `step` (the whole observation without stacking),
 * unpacked into dst (frame_bytes). */
static void load_frame(const tsr_replay *r, int64_t step, uint8_t *dst)
{
    const uint8_t *src = r->obs + (size_t)(step % r->capacity) * r->stored_obs_bytes;
    if (r->opt.bit_pack)
        unpack_bits(dst, src, r->frame_cells);
    else
        memcpy(dst, src, r->frame_bytes);
}

static uint8_t step_flags(const tsr_replay *r, int64_t step) { return r->flags[step % r->capacity]; }

/* Channel block `position` (0 = oldest frame) of a stacked observation
 * (H, W, frames x c): copies a frame in (to_obs) or out of it. */
static void frame_block(const tsr_replay *r, uint8_t *obs, uint8_t *frame, int64_t position,
                        bool to_obs)
{
    size_t block = r->pixel_frame_bytes, stride = block * (size_t)r->frames;
    uint8_t *o = obs + (size_t)position * block;
    for (int64_t p = 0; p < r->pixels; p++, o += stride, frame += block) {
        if (to_obs) memcpy(o, frame, block);
        else memcpy(frame, o, block);
    }
}

/* The observation of `step` into dst (obs_bytes). With frame stacking, the
 * frame `age` steps back fills channel block frames − 1 − age, and frames of
 * an earlier episode (an episode end at or after their step) or from before
 * the first step are zeros, as Dopamine pads a new episode's stack. The
 * caller guarantees the frames needed are stored (stack_stored). */
static void load_obs(const tsr_replay *r, int64_t step, uint8_t *dst, uint8_t *scratch)
{
    if (r->frames == 1) {
        load_frame(r, step, dst);
        return;
    }
    bool same_episode = true;
    for (int64_t age = 0; age < r->frames; age++) {
        int64_t s = step - age;
        if (age > 0) same_episode = same_episode && s >= 0 && !(step_flags(r, s) & FLAG_END);
        if (same_episode) load_frame(r, s, scratch);
        else memset(scratch, 0, r->frame_bytes);
        frame_block(r, dst, scratch, r->frames - 1 - age, true);
    }
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */
/* ------------------------------------------------------------------------ */

static tsr_status invalid(tsr_error *err, const char *option, double value, const char *allowed)
{
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "replay option %s = %.17g is not allowed: %s",
                         option, value, allowed);
}

static tsr_status validate(const tsr_replay_options *o, tsr_error *err)
{
    if (o->n_step < 1) return invalid(err, "n_step", (double)o->n_step, "it must be >= 1");
    if (o->capacity < o->n_step + 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "replay option capacity = %lld is too small: it must be at least "
                             "n_step + 1 = %lld (one transition needs n_step + 1 steps)",
                             (long long)o->capacity, (long long)(o->n_step + 1));
    if (o->obs_ndim < 1 || o->obs_ndim > 3)
        return invalid(err, "obs_ndim", o->obs_ndim, "observations have 1 to 3 dimensions");
    for (int i = 0; i < o->obs_ndim; i++)
        if (o->obs_shape[i] < 1)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "replay option obs_shape[%d] = %lld is not allowed: every "
                                 "dimension must be >= 1",
                                 i, (long long)o->obs_shape[i]);
    if (o->obs_dtype != TSR_DTYPE_U8 && o->obs_dtype != TSR_DTYPE_F32)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "replay option obs_dtype = %s is not allowed: observations are "
                             "uint8 or float32",
                             tsr_dtype_name(o->obs_dtype));
    if (!(o->gamma >= 0.0 && o->gamma <= 1.0))
        return invalid(err, "gamma", o->gamma, "it must be in [0, 1]");
    if (o->prioritized) {
        if (!(o->priority_exponent >= 0.0 && isfinite(o->priority_exponent)))
            return invalid(err, "priority_exponent", o->priority_exponent,
                           "alpha must be finite and >= 0");
        if (!(o->importance_exponent >= 0.0 && isfinite(o->importance_exponent)))
            return invalid(err, "importance_exponent", o->importance_exponent,
                           "beta must be finite and >= 0");
    }
    if (o->bit_pack && o->obs_dtype != TSR_DTYPE_U8)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "replay option bit_pack = true is not allowed with obs_dtype = %s: "
                             "only binary uint8 observations can be packed",
                             tsr_dtype_name(o->obs_dtype));
    if (o->frame_stack > 1 && o->capacity < o->n_step + o->frame_stack)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "replay option capacity = %lld is too small for frame_stack = %lld: "
                             "it must be at least n_step + frame_stack = %lld",
                             (long long)o->capacity, (long long)o->frame_stack,
                             (long long)(o->n_step + o->frame_stack));
    if (o->frame_stack < 0 || o->frame_stack > 64)
        return invalid(err, "frame_stack", (double)o->frame_stack, "it must be in [0, 64]");
    if (o->frame_stack > 1 && (o->obs_ndim != 3 || o->obs_shape[2] % o->frame_stack != 0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "replay option frame_stack = %lld is not allowed: stacked "
                             "observations are (H, W, frame_stack x channels), and these have "
                             "%d dimensions and %lld channels",
                             (long long)o->frame_stack, o->obs_ndim,
                             (long long)(o->obs_ndim == 3 ? o->obs_shape[2] : 0));
    return TSR_STATUS_OK;
}

/* A storage array from the plain allocator: a capacity that does not fit in
 * memory is a configuration error the caller reports, not an abort. */
static void *storage_alloc(size_t count, size_t size, size_t *total)
{
    *total += count * size;
    return calloc(count, size);
}

tsr_status tsr_replay_new(tsr_replay **out, const tsr_replay_options *o, uint64_t seed,
                          tsr_error *err)
{
    TSR_ASSERT(out && o);
    *out = NULL;
    tsr_status st = validate(o, err);
    if (st != TSR_STATUS_OK) return st;

    int64_t cells = 1;
    for (int i = 0; i < o->obs_ndim; i++) {
        if (o->obs_shape[i] > INT64_MAX / 8 / cells)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "replay option obs_shape is too large: the observation has "
                                 "more than 2^60 cells");
        cells *= o->obs_shape[i];
    }
    size_t obs_bytes = (size_t)cells * tsr_dtype_size(o->obs_dtype);
    int64_t frames = o->frame_stack > 1 ? o->frame_stack : 1;
    int64_t frame_cells = cells / frames;
    size_t frame_bytes = obs_bytes / (size_t)frames;
    size_t stored = o->bit_pack ? (size_t)(frame_cells + 7) / 8 : frame_bytes;
    int64_t leaves = 1;
    while (leaves < o->capacity) leaves *= 2;
    size_t per_step = stored + sizeof(int32_t) + sizeof(float) + 1;
    if ((uint64_t)o->capacity > SIZE_MAX / 4 / per_step || (uint64_t)leaves > SIZE_MAX / 64)
        return tsr_error_set(err, TSR_STATUS_OUT_OF_MEMORY,
                             "replay option capacity = %lld does not fit in the address space "
                             "(%zu bytes per step)",
                             (long long)o->capacity, per_step);

    tsr_replay *r = tsr_calloc(1, sizeof *r);
    r->opt = *o;
    r->capacity = o->capacity;
    r->obs_cells = cells;
    r->obs_bytes = obs_bytes;
    r->frames = frames;
    r->frame_cells = frame_cells;
    r->frame_bytes = frame_bytes;
    r->pixels = frames > 1 ? o->obs_shape[0] * o->obs_shape[1] : 1;
    r->pixel_frame_bytes = frame_bytes / (size_t)r->pixels;
    r->stored_obs_bytes = stored;
    r->tree_leaves = leaves;
    r->max_priority = 1.0;
    r->gamma_n = 1.0;
    for (int64_t k = 0; k < o->n_step; k++) r->gamma_n *= o->gamma;
    tsr_rng_init(&r->rng, seed, TSR_RNG_STREAM_REPLAY);

    size_t total = 0, n = (size_t)o->capacity;
    r->obs = storage_alloc(n, stored, &total);
    r->actions = storage_alloc(n, sizeof *r->actions, &total);
    r->rewards = storage_alloc(n, sizeof *r->rewards, &total);
    r->flags = storage_alloc(n, sizeof *r->flags, &total);
    r->tree = storage_alloc(2 * (size_t)leaves, sizeof *r->tree, &total);
    if (frames > 1) r->frame_scratch = storage_alloc(2, frame_bytes, &total);
    if (!r->obs || !r->actions || !r->rewards || !r->flags || !r->tree ||
        (frames > 1 && !r->frame_scratch)) {
        tsr_replay_free(r);
        return tsr_error_set(err, TSR_STATUS_OUT_OF_MEMORY,
                             "replay option capacity = %lld needs %zu bytes (%zu per step%s), "
                             "which could not be allocated: lower the capacity%s",
                             (long long)o->capacity, total, total / n,
                             o->bit_pack ? ", bit-packed" : "",
                             o->bit_pack || o->obs_dtype != TSR_DTYPE_U8 ? ""
                                                                          : " or bit-pack binary observations");
    }
    *out = r;
    return TSR_STATUS_OK;
}

void tsr_replay_free(tsr_replay *r)
{
    if (!r) return;
    free(r->obs);
    free(r->actions);
    free(r->rewards);
    free(r->flags);
    free(r->tree);
    free(r->frame_scratch);
    tsr_free(r);
}

size_t tsr_replay_memory_bytes(const tsr_replay *r)
{
    size_t n = (size_t)r->capacity;
    return sizeof *r + n * (r->stored_obs_bytes + sizeof *r->actions + sizeof *r->rewards +
                            sizeof *r->flags) +
           2 * (size_t)r->tree_leaves * sizeof *r->tree + (r->frame_scratch ? 2 * r->frame_bytes : 0);
}

/* ------------------------------------------------------------------------ */
/* Adding steps                                                             */
/* ------------------------------------------------------------------------ */

static void set_valid(tsr_replay *r, int64_t start)
{
    int64_t slot = start % r->capacity;
    TSR_ASSERT(!(r->flags[slot] & FLAG_VALID));
    r->flags[slot] |= FLAG_VALID;
    r->num_valid++;
    tree_set(r, slot, r->opt.prioritized ? r->max_priority : 1.0);
}

/* Whether every frame of step t's stack is stored: each older frame either
 * belongs to an earlier episode or precedes the first step (zeros), or is
 * still in the buffer. Always true without stacking. */
static bool stack_stored(const tsr_replay *r, int64_t t)
{
    const int64_t oldest = r->add_count - r->capacity;
    for (int64_t age = 1; age < r->frames; age++) {
        int64_t s = t - age;
        if (s < 0) return true;
        if (s < oldest) return false;
        if (step_flags(r, s) & FLAG_END) return true;
    }
    return true;
}

static void clear_valid(tsr_replay *r, int64_t slot)
{
    r->flags[slot] &= (uint8_t)~FLAG_VALID;
    r->num_valid--;
    tree_set(r, slot, 0.0);
}

/* Stores the newest frame of a stacked observation, after checking that its
 * older frames are the ones stored for the previous steps (zeros before the
 * episode's first step): the replay rebuilds stacks from single frames, so an
 * observation stacked any other way would come back different. */
static void store_stacked(tsr_replay *r, const uint8_t *obs, int64_t step, uint8_t *dst)
{
    uint8_t *frame = r->frame_scratch, *expected = r->frame_scratch + r->frame_bytes;
    const int64_t oldest = r->add_count - r->capacity;
    bool same_episode = true;
    for (int64_t age = 1; age < r->frames; age++) {
        int64_t s = step - age;
        same_episode = same_episode && s >= 0 && !(step_flags(r, s) & FLAG_END);
        if (same_episode && s < oldest) break; /* no longer stored: nothing to compare */
        if (same_episode) load_frame(r, s, expected);
        else memset(expected, 0, r->frame_bytes);
        frame_block(r, (uint8_t *)obs, frame, r->frames - 1 - age, false);
        TSR_ASSERT_MSG(!memcmp(frame, expected, r->frame_bytes),
                       "frame-stacked replay: step %lld's frame %lld steps back differs from the "
                       "frame stored then (stacks must be the last %lld frames of the episode, "
                       "zeros before its first)",
                       (long long)step, (long long)age, (long long)r->frames);
    }
    frame_block(r, (uint8_t *)obs, frame, r->frames - 1, false);
    if (r->opt.bit_pack) pack_bits(dst, frame, r->frame_cells, r->stored_obs_bytes);
    else memcpy(dst, frame, r->frame_bytes);
}

/* True when none of the steps [from, to) ended an episode. */
static bool no_end_in(const tsr_replay *r, int64_t from, int64_t to)
{
    for (int64_t s = from; s < to; s++)
        if (step_flags(r, s) & FLAG_END) return false;
    return true;
}

void tsr_replay_add(tsr_replay *r, const void *obs, int32_t action, float reward, bool terminal,
                    bool truncated)
{
    TSR_ASSERT(obs);
    const int64_t s = r->add_count, n = r->opt.n_step;
    const int64_t slot = s % r->capacity;

    /* Overwriting step s − capacity invalidates the one transition starting there. */
    if (r->flags[slot] & FLAG_VALID) {
        r->num_valid--;
        tree_set(r, slot, 0.0);
    }
    uint8_t *dst = r->obs + (size_t)slot * r->stored_obs_bytes;
    if (r->frames > 1)
        store_stacked(r, obs, s, dst); /* reads the old flags: before they are overwritten */
    else if (r->opt.bit_pack)
        pack_bits(dst, obs, r->obs_cells, r->stored_obs_bytes);
    else
        memcpy(dst, obs, r->obs_bytes);
    r->actions[slot] = action;
    r->rewards[slot] = reward;
    r->flags[slot] = (uint8_t)((terminal ? FLAG_TERMINAL : 0) | (truncated ? FLAG_TRUNCATED : 0));
    r->add_count = s + 1;

    const int64_t oldest = r->add_count - r->capacity; /* may be negative while filling */
    /* With stacking, the frame just overwritten was the oldest frame of the
     * stacks of the next frames − 1 steps: their transitions go with it. */
    for (int64_t t = oldest; t >= 0 && t < oldest + r->frames - 1 && t < s; t++) {
        int64_t ts = t % r->capacity;
        if ((r->flags[ts] & FLAG_VALID) && !stack_stored(r, t)) clear_valid(r, ts);
    }
    /* Step s is the next observation of the full window [s − n, s). */
    if (s - n >= 0 && s - n >= oldest && no_end_in(r, s - n, s) && stack_stored(r, s - n))
        set_valid(r, s - n);
    /* A terminal completes the shrinking windows [t, s] for t in (s − n, s] that
     * hold no earlier episode end; walking t down, the first end stops it. */
    if (terminal) {
        for (int64_t t = s; t > s - n && t >= 0 && t >= oldest; t--) {
            if (t < s && (step_flags(r, t) & FLAG_END)) break;
            if (stack_stored(r, t)) set_valid(r, t);
        }
    }
}

int64_t tsr_replay_size(const tsr_replay *r)
{
    return r->add_count < r->capacity ? r->add_count : r->capacity;
}
int64_t tsr_replay_num_valid(const tsr_replay *r) { return r->num_valid; }
int64_t tsr_replay_add_count(const tsr_replay *r) { return r->add_count; }

/* ------------------------------------------------------------------------ */
/* Batches and sampling                                                     */
/* ------------------------------------------------------------------------ */

tsr_replay_batch *tsr_replay_batch_new(const tsr_replay *r, int64_t batch)
{
    TSR_ASSERT_MSG(batch >= 1, "a replay batch needs at least one row, got %lld", (long long)batch);
    tsr_replay_batch *b = tsr_calloc(1, sizeof *b);
    size_t rows = (size_t)batch;
    b->batch = batch;
    b->obs = tsr_aligned_alloc(64, rows * r->obs_bytes);
    b->next_obs = tsr_aligned_alloc(64, rows * r->obs_bytes);
    b->actions = tsr_calloc(rows, sizeof *b->actions);
    b->returns = tsr_calloc(rows, sizeof *b->returns);
    b->discounts = tsr_calloc(rows, sizeof *b->discounts);
    b->weights = tsr_calloc(rows, sizeof *b->weights);
    b->indices = tsr_calloc(rows, sizeof *b->indices);
    return b;
}

void tsr_replay_batch_free(tsr_replay_batch *b)
{
    if (!b) return;
    tsr_free(b->obs);
    tsr_free(b->next_obs);
    tsr_free(b->actions);
    tsr_free(b->returns);
    tsr_free(b->discounts);
    tsr_free(b->weights);
    tsr_free(b->indices);
    tsr_free(b);
}

/* The step stored in `slot` (the newest step congruent to it). */
static int64_t step_of_slot(const tsr_replay *r, int64_t slot)
{
    int64_t newest = r->add_count - 1;
    return newest - (newest - slot) % r->capacity;
}

/* Fills row i of the batch with the transition starting at step t. */
static void fill_row(const tsr_replay *r, tsr_replay_batch *b, int64_t i, int64_t t)
{
    const double gamma = r->opt.gamma;
    double ret = 0.0, discount = 1.0;
    int64_t next = t + r->opt.n_step;
    bool reached_terminal = false;
    for (int64_t k = 0; k < r->opt.n_step; k++) {
        uint8_t f = step_flags(r, t + k);
        ret += discount * (double)r->rewards[(t + k) % r->capacity];
        discount *= gamma;
        if (f & FLAG_END) {
            TSR_ASSERT_MSG(f & FLAG_TERMINAL, "valid transition %lld crosses truncated step %lld",
                           (long long)t, (long long)(t + k));
            reached_terminal = true;
            next = t + k;
            break;
        }
    }
    b->indices[i] = t;
    b->actions[i] = r->actions[t % r->capacity];
    b->returns[i] = (float)ret;
    b->discounts[i] = reached_terminal ? 0.0f : (float)r->gamma_n;
    load_obs(r, t, (uint8_t *)b->obs + (size_t)i * r->obs_bytes, r->frame_scratch);
    load_obs(r, next, (uint8_t *)b->next_obs + (size_t)i * r->obs_bytes, r->frame_scratch);
}

void tsr_replay_sample(tsr_replay *r, tsr_replay_batch *b)
{
    TSR_ASSERT_MSG(r->num_valid > 0, "sampling a replay with no valid transition (%lld steps added)",
                   (long long)r->add_count);
    TSR_ASSERT(b && b->batch >= 1);
    const int64_t rows = b->batch;
    const double total = r->tree[1];
    const double segment = total / (double)rows;
    double min_priority = INFINITY;
    for (int64_t i = 0; i < rows; i++) {
        double u = ((double)i + tsr_rng_uniform(&r->rng)) * segment;
        int64_t slot = tree_find(r, u);
        double p = r->tree[r->tree_leaves + slot];
        TSR_ASSERT_MSG(p > 0.0 && (r->flags[slot] & FLAG_VALID),
                       "sum tree returned slot %lld with priority %g", (long long)slot, p);
        if (p < min_priority) min_priority = p;
        fill_row(r, b, i, step_of_slot(r, slot));
    }
    /* w_i = (N·P(i))^(−β) / max_j (N·P(j))^(−β) = (p_min / p_i)^β. */
    const double beta = r->opt.importance_exponent;
    for (int64_t i = 0; i < rows; i++) {
        if (!r->opt.prioritized) {
            b->weights[i] = 1.0f;
            continue;
        }
        double p = r->tree[r->tree_leaves + b->indices[i] % r->capacity];
        b->weights[i] = (float)pow(min_priority / p, beta);
    }
}

/* ------------------------------------------------------------------------ */
/* Priorities                                                               */
/* ------------------------------------------------------------------------ */

void tsr_replay_update_priorities(tsr_replay *r, const int64_t *indices, const float *losses,
                                  int64_t count)
{
    if (!r->opt.prioritized) return;
    const double alpha = r->opt.priority_exponent;
    for (int64_t i = 0; i < count; i++) {
        int64_t t = indices[i];
        TSR_ASSERT_MSG(t >= 0 && t < r->add_count, "priority update for step %lld, but %lld were added",
                       (long long)t, (long long)r->add_count);
        if (t < r->add_count - r->capacity) continue; /* overwritten since it was sampled */
        int64_t slot = t % r->capacity;
        TSR_ASSERT_MSG(r->flags[slot] & FLAG_VALID,
                       "priority update for step %lld, which starts no valid transition",
                       (long long)t);
        double loss = (double)losses[i];
        TSR_ASSERT_MSG(isfinite(loss), "priority update for step %lld with loss %g", (long long)t, loss);
        double p = pow((loss > 0.0 ? loss : 0.0) + priority_epsilon, alpha);
        TSR_ASSERT_MSG(isfinite(p) && p > 0.0,
                       "priority (%g + 1e-10)^%g = %g for step %lld is not a positive finite number",
                       loss, alpha, p, (long long)t);
        tree_set(r, slot, p);
        if (p > r->max_priority) r->max_priority = p;
    }
}

double tsr_replay_priority(const tsr_replay *r, int64_t index)
{
    if (index < 0 || index >= r->add_count || index < r->add_count - r->capacity) return 0.0;
    return r->tree[r->tree_leaves + index % r->capacity];
}

double tsr_replay_max_priority(const tsr_replay *r) { return r->max_priority; }

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                              */
/* ------------------------------------------------------------------------ */

void tsr_replay_checkpoint(tsr_replay *r, tsr_ckpt *c, const char *group)
{
    char path[512];
#define ITEM(name) (snprintf(path, sizeof path, "%s/%s", group, name), path)
    /* The layout is fixed by the options, which come from the config: a
     * replay of another capacity or observation shape fails on the shapes. */
    int64_t n = r->capacity, stored = (int64_t)r->stored_obs_bytes;
    tsr_ckpt_array(c, ITEM("observations"), TSR_CKPT_U8, 2, TSR_SHAPE(n, stored), r->obs,
                   TSR_CKPT_COMPRESS);
    tsr_ckpt_array(c, ITEM("actions"), TSR_CKPT_I32, 1, TSR_SHAPE(n), r->actions, TSR_CKPT_COMPRESS);
    tsr_ckpt_array(c, ITEM("rewards"), TSR_CKPT_F32, 1, TSR_SHAPE(n), r->rewards, TSR_CKPT_COMPRESS);
    tsr_ckpt_array(c, ITEM("flags"), TSR_CKPT_U8, 1, TSR_SHAPE(n), r->flags, TSR_CKPT_COMPRESS);
    /* The sum tree's leaves; the inner nodes are rebuilt from them below,
     * each the sum of its two children exactly as tree_set keeps them. */
    tsr_ckpt_array(c, ITEM("priorities"), TSR_CKPT_F64, 1, TSR_SHAPE(n), r->tree + r->tree_leaves,
                   TSR_CKPT_COMPRESS);
    tsr_ckpt_i64(c, ITEM("add_count"), &r->add_count);
    tsr_ckpt_i64(c, ITEM("num_valid"), &r->num_valid);
    tsr_ckpt_f64(c, ITEM("max_priority"), &r->max_priority);
    tsr_ckpt_rng(c, ITEM("rng"), &r->rng);
#undef ITEM
    if (tsr_ckpt_writing(c) || tsr_ckpt_status(c) != TSR_STATUS_OK) return;
    for (int64_t node = r->tree_leaves - 1; node >= 1; node--)
        r->tree[node] = r->tree[2 * node] + r->tree[2 * node + 1];
    if (r->add_count < 0 || r->num_valid < 0 || r->num_valid > r->capacity ||
        r->num_valid > r->add_count) {
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s: counters out of range (add_count %lld, "
                      "num_valid %lld, capacity %lld)", group,
                      (long long)r->add_count, (long long)r->num_valid, (long long)r->capacity);
        return;
    }
    /* What sampling relies on: a valid slot holds a step already added and
     * a positive finite priority, every other slot priority 0, the valid
     * count is num_valid, and actions are indices. A damaged or edited file
     * fails here, not with a read outside the buffers later. */
    int64_t valid = 0;
    for (int64_t slot = 0; slot < r->capacity; slot++) {
        double p = r->tree[r->tree_leaves + slot];
        bool is_valid = r->flags[slot] & FLAG_VALID;
        const char *problem = NULL;
        if (is_valid && !(slot < r->add_count && isfinite(p) && p > 0.0))
            problem = "a valid transition with no step added there or a priority that is not "
                      "positive and finite";
        else if (!is_valid && p != 0.0)
            problem = "an invalid slot with a priority";
        else if (r->actions[slot] < 0)
            problem = "a negative action";
        if (problem) {
            tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s: slot %lld holds %s (priority %g, action %d)",
                          group, (long long)slot, problem, p, (int)r->actions[slot]);
            return;
        }
        valid += is_valid;
    }
    if (valid != r->num_valid || !(isfinite(r->max_priority) && r->max_priority > 0.0))
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s: %lld valid slots but num_valid %lld, "
                      "max_priority %g", group, (long long)valid, (long long)r->num_valid,
                      r->max_priority);
}

int64_t tsr_replay_find_action_at_least(const tsr_replay *r, int32_t bound)
{
    for (int64_t slot = 0; slot < r->capacity; slot++)
        if ((r->flags[slot] & FLAG_VALID) && r->actions[slot] >= bound) return slot;
    return -1;
}
