/* pruning.c — gradual magnitude pruning: schedule, sparsity distributions,
 * top-n masks, their application and the sparsity / FLOPs report (pruning.h). */
#include "tessera/pruning.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tessera/rng.h"
#include "tessera/status.h"

/* Stream of the static mode's random scores (rng.h: ids outside the enum are free). */
#define PRUNE_RNG_STREAM 0x5052554e45ull /* "PRUNE" */

/* Below this many elements per tensor, applying a mask stays on one thread. */
#define PARALLEL_MIN_ELEMENTS 65536

/* jaxpruner's normalization_eps of global pruning. */
#define GLOBAL_NORM_EPS 1e-8

/* ==== configuration ===================================================== */

const char *const tsr_prune_mode_names[] = {"gmp", "one_shot", "static", "none", NULL};
const char *const tsr_prune_distribution_names[] = {"uniform", "erk", NULL};
const char *const tsr_prune_scope_names[] = {"layerwise", "global", NULL};
const char *const tsr_prune_step_units_names[] = {"fraction", "updates", NULL};

#define KEY(name, type, min, max, choices, def, help)                                         \
    {"pruning", #name, type, offsetof(tsr_prune_config, name), min, max, choices, def, help}

static const tsr_config_key prune_keys[] = {
    KEY(mode, TSR_CONFIG_ENUM, 0, 0, tsr_prune_mode_names, "gmp",
        "gmp: polynomial schedule; one_shot: prune once at the start; static: random masks "
        "fixed from step 0; none: dense"),
    KEY(target_sparsity, TSR_CONFIG_DOUBLE, 0, 0.999999, NULL, "0.95",
        "final fraction of zeros in the pruned tensors, in [0, 1)"),
    KEY(step_units, TSR_CONFIG_ENUM, 0, 0, tsr_prune_step_units_names, "fraction",
        "fraction: start/end_fraction of the run's updates; updates: start/end_step"),
    KEY(start_fraction, TSR_CONFIG_DOUBLE, 0, 1, NULL, "0.2",
        "pruning starts after this fraction of the gradient updates"),
    KEY(end_fraction, TSR_CONFIG_DOUBLE, 0, 1, NULL, "0.8",
        "pruning reaches target_sparsity after this fraction of the gradient updates"),
    KEY(start_step, TSR_CONFIG_INT, 0, 1e15, NULL, "0", "step_units = updates: first update"),
    KEY(end_step, TSR_CONFIG_INT, 0, 1e15, NULL, "0", "step_units = updates: last update"),
    KEY(update_freq, TSR_CONFIG_INT, 1, 1e15, NULL, "1000",
        "gradient updates between mask recomputations"),
    KEY(distribution, TSR_CONFIG_ENUM, 0, 0, tsr_prune_distribution_names, "erk",
        "per-tensor sparsity: uniform, or erk (Erdos-Renyi-Kernel)"),
    KEY(scope, TSR_CONFIG_ENUM, 0, 0, tsr_prune_scope_names, "layerwise",
        "magnitude ranking per tensor, or global over L2-normalised tensors"),
    KEY(exclude_first_conv, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "keep the first 4-D weight (the encoder's first conv) dense"),
    KEY(exclude_output, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "keep the output layer dense (all its tensors: a noisy layer's mu and sigma, both dueling "
        "streams)"),
    KEY(exclude_routers, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "keep MoE routers (names with /router or /phi) dense"),
};

#undef KEY

int tsr_prune_config_keys(size_t offset, tsr_config_key *out, int capacity)
{
    int n = (int)(sizeof prune_keys / sizeof prune_keys[0]);
    for (int i = 0; i < n && i < capacity; i++) {
        out[i] = prune_keys[i];
        out[i].offset += offset;
    }
    return n;
}

tsr_prune_config tsr_prune_config_defaults(void)
{
    return (tsr_prune_config){
        .mode = TSR_PRUNE_MODE_GMP,
        .target_sparsity = 0.95,
        .step_units = TSR_PRUNE_STEPS_FRACTION,
        .start_fraction = 0.2,
        .end_fraction = 0.8,
        .start_step = 0,
        .end_step = 0,
        .update_freq = 1000,
        .distribution = TSR_PRUNE_DISTRIBUTION_ERK,
        .scope = TSR_PRUNE_SCOPE_LAYERWISE,
        .exclude_first_conv = false,
        .exclude_output = false,
        .exclude_routers = false,
        .seed = 0,
    };
}

static int name_count(const char *const *names)
{
    int n = 0;
    while (names[n]) n++;
    return n;
}

static void list_names(const char *const *names, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
}

tsr_status tsr_prune_enum_parse(const char *const *names, const char *key, const char *value,
                                int *out, tsr_error *err)
{
    for (int i = 0; names[i]; i++)
        if (value && !strcmp(value, names[i])) {
            *out = i;
            return TSR_STATUS_OK;
        }
    char allowed[160];
    list_names(names, allowed, sizeof allowed);
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "pruning.%s = \"%s\" is not one of: %s", key, value ? value : "(null)",
                         allowed);
}

static tsr_status check_enum(int value, const char *const *names, const char *key, tsr_error *err)
{
    if (value >= 0 && value < name_count(names)) return TSR_STATUS_OK;
    char allowed[160];
    list_names(names, allowed, sizeof allowed);
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "pruning.%s = %d is not one of: %s",
                         key, value, allowed);
}

tsr_status tsr_prune_config_validate(const tsr_prune_config *cfg, tsr_error *err)
{
    tsr_status st;
    if ((st = check_enum((int)cfg->mode, tsr_prune_mode_names, "mode", err))) return st;
    if ((st = check_enum((int)cfg->distribution, tsr_prune_distribution_names, "distribution",
                         err)))
        return st;
    if ((st = check_enum((int)cfg->scope, tsr_prune_scope_names, "scope", err))) return st;
    if ((st = check_enum((int)cfg->step_units, tsr_prune_step_units_names, "step_units", err)))
        return st;
    if (!(cfg->target_sparsity >= 0 && cfg->target_sparsity < 1))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.target_sparsity = %g: must be in [0, 1)",
                             cfg->target_sparsity);
    if (!(cfg->start_fraction >= 0 && cfg->start_fraction <= 1))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.start_fraction = %g: must be in [0, 1]", cfg->start_fraction);
    if (!(cfg->end_fraction >= 0 && cfg->end_fraction <= 1))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.end_fraction = %g: must be in [0, 1]", cfg->end_fraction);
    if (cfg->start_fraction > cfg->end_fraction)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.start_fraction = %g, pruning.end_fraction = %g: the start "
                             "must not be after the end",
                             cfg->start_fraction, cfg->end_fraction);
    if (cfg->start_step < 0)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.start_step = %lld: must be >= 0", (long long)cfg->start_step);
    if (cfg->end_step < cfg->start_step)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.end_step = %lld: must be >= start_step (%lld)",
                             (long long)cfg->end_step, (long long)cfg->start_step);
    if (cfg->update_freq < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.update_freq = %lld: must be >= 1 (gradient updates between "
                             "mask updates)",
                             (long long)cfg->update_freq);
    if (cfg->seed < 0)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "pruning.seed = %lld: must be >= 0",
                             (long long)cfg->seed);
    if (cfg->scope == TSR_PRUNE_SCOPE_GLOBAL && cfg->distribution == TSR_PRUNE_DISTRIBUTION_ERK)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning.distribution = erk with pruning.scope = global: global "
                             "pruning ranks all tensors together at one sparsity; use "
                             "distribution = uniform");
    return TSR_STATUS_OK;
}

/* ==== the pruner ========================================================= */

struct tsr_pruner {
    tsr_prune_config config;
    int64_t start, end; /* resolved, in gradient updates */
    int count;          /* parameters in the layout */
    size_t numel;       /* elements per block of the layout */
    uint8_t *masks;     /* numel bytes, the params' layout */
    tsr_tensor *mask_views;
    bool *pruned;
    double *final_sparsity, *current_sparsity;
    bool masks_active;
    /* Scratch for one mask computation: scores and a copy for selection,
     * sized for the largest set ranked together. */
    double *scores, *select;
    uint8_t *concat_mask; /* global scope: the mask of the concatenation */
    int64_t scratch_len;
};

/* Whether `name`'s layer (all before its last '/') is `layer` (length n). */
static bool in_layer(const char *name, const char *layer, size_t n)
{
    const char *slash = strrchr(name, '/');
    return slash && (size_t)(slash - name) == n && !strncmp(name, layer, n);
}

/* Marks the tensors under pruning (pruning.h's naming contract). */
static int select_tensors(tsr_pruner *p, const tsr_params *params)
{
    int first_conv = -1, last = -1;
    for (int i = 0; i < params->count; i++) {
        const tsr_param *item = &params->items[i];
        p->pruned[i] = (item->flags & TSR_PARAM_PRUNABLE) && item->value.ndim > 1;
        if (!p->pruned[i]) continue;
        if (first_conv < 0 && item->value.ndim == 4) first_conv = i;
        last = i;
    }
    if (p->config.exclude_first_conv && first_conv >= 0) p->pruned[first_conv] = false;
    if (p->config.exclude_output && last >= 0) {
        /* The output layer: every tensor of the last one's layer (a noisy
         * layer's weight_mu and weight_sigma), and with a dueling head, whose
         * "<head>/value" comes last, its "<head>/advantage" stream too. */
        const char *name = params->items[last].name, *slash = strrchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        char advantage[TSR_PARAM_NAME_BYTES] = "";
        if (n >= 6 && !strncmp(name + n - 6, "/value", 6))
            snprintf(advantage, sizeof advantage, "%.*s/advantage", (int)(n - 6), name);
        for (int i = 0; i < params->count; i++) {
            const char *other = params->items[i].name;
            if (i == last || in_layer(other, name, n) ||
                (advantage[0] && in_layer(other, advantage, strlen(advantage))))
                p->pruned[i] = false;
        }
    }
    int count = 0;
    for (int i = 0; i < params->count; i++) {
        if (p->config.exclude_routers && (strstr(params->items[i].name, "/router") ||
                                          strstr(params->items[i].name, "/phi")))
            p->pruned[i] = false;
        count += p->pruned[i];
    }
    return count;
}

/* ERK (components.md §1.7, jaxpruner get_sparsities_erdos_renyi): one eps with
 * eps * sum_i raw_i n_i = sum_sparse (n_i - floor(S n_i)) - sum_dense floor(S n_i),
 * raw_i = (sum of dims) / (product of dims); the tensors of the largest raw
 * density are made dense while eps * raw_max > 1. */
static void erk_sparsities(tsr_pruner *p, const tsr_params *params)
{
    double S = p->config.target_sparsity;
    int n = params->count;
    bool *dense = tsr_calloc((size_t)n, sizeof *dense);
    double *raw = tsr_calloc((size_t)n, sizeof *raw);
    for (int i = 0; i < n; i++) {
        if (!p->pruned[i]) continue;
        const tsr_tensor *v = &params->items[i].value;
        double sum = 0;
        for (int d = 0; d < v->ndim; d++) sum += (double)v->shape[d];
        raw[i] = sum / (double)tsr_tensor_numel(v);
    }
    double eps = 0;
    for (;;) {
        double rhs = 0, divisor = 0, max_raw = 0;
        bool any_sparse = false;
        for (int i = 0; i < n; i++) {
            if (!p->pruned[i]) continue;
            double size = (double)tsr_tensor_numel(&params->items[i].value);
            double zeros = floor(S * size);
            if (dense[i]) {
                rhs -= zeros;
            } else {
                rhs += size - zeros;
                divisor += raw[i] * size;
                if (raw[i] > max_raw) max_raw = raw[i];
                any_sparse = true;
            }
        }
        if (!any_sparse) break;
        eps = rhs / divisor;
        if (max_raw * eps <= 1) break;
        for (int i = 0; i < n; i++)
            if (p->pruned[i] && !dense[i] && raw[i] == max_raw) dense[i] = true;
    }
    for (int i = 0; i < n; i++) {
        if (!p->pruned[i]) continue;
        double s = dense[i] ? 0.0 : 1.0 - eps * raw[i];
        /* Outside [0, 1] only when S cannot be met (every tensor dense); clamp. */
        p->final_sparsity[i] = s < 0 ? 0 : s > 1 ? 1 : s;
    }
    tsr_free(dense);
    tsr_free(raw);
}

/* The k-th largest (k from 0) of a[0, len): quickselect with a three-way
 * partition (many equal scores: pruned weights are all 0). Reorders a. */
static double kth_largest(double *a, int64_t len, int64_t k)
{
    int64_t lo = 0, hi = len - 1;
    for (;;) {
        if (lo >= hi) return a[lo];
        int64_t mid = lo + (hi - lo) / 2;
        double x = a[lo], y = a[mid], z = a[hi];
        double pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            if (a[i] > pivot) {
                double t = a[lt];
                a[lt++] = a[i];
                a[i++] = t;
            } else if (a[i] < pivot) {
                double t = a[gt];
                a[gt--] = a[i];
                a[i] = t;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt - 1;
        else if (k > gt) lo = gt + 1;
        else return pivot;
    }
}

/* Entries kept at sparsity s out of `len`: max(1, round(len (1 - s))), with
 * round half to even (jnp.round). */
static int64_t kept_count(int64_t len, double s)
{
    double n = nearbyint((double)len * (1.0 - s));
    int64_t kept = (int64_t)n;
    if (kept < 1) kept = 1;
    if (kept > len) kept = len;
    return kept;
}

/* mask[j] = 1 for the `kept` largest scores[j], ties to the lower index. */
static void top_mask(const double *scores, double *select, int64_t len, int64_t kept,
                     uint8_t *mask)
{
    if (kept >= len) {
        memset(mask, 1, (size_t)len);
        return;
    }
    memcpy(select, scores, (size_t)len * sizeof *select);
    double threshold = kth_largest(select, len, kept - 1);
    int64_t above = 0;
    for (int64_t j = 0; j < len; j++) above += scores[j] > threshold;
    int64_t ties = kept - above; /* >= 1 by the choice of threshold */
    for (int64_t j = 0; j < len; j++) {
        if (scores[j] > threshold) mask[j] = 1;
        else if (scores[j] == threshold && ties > 0) mask[j] = 1, ties--;
        else mask[j] = 0;
    }
}

static void magnitudes(const tsr_params *params, int i, double *out)
{
    const tsr_tensor *v = &params->items[i].value;
    int64_t len = tsr_tensor_numel(v);
    if (params->dtype == TSR_DTYPE_F64)
        for (int64_t j = 0; j < len; j++) out[j] = fabs(tsr_f64(v)[j]);
    else
        for (int64_t j = 0; j < len; j++) out[j] = fabs((double)tsr_f32(v)[j]);
}

static void check_layout(const tsr_pruner *p, const tsr_params *params)
{
    TSR_ASSERT_MSG(params->finalized && params->count == p->count && params->numel == p->numel,
                   "pruner made for %d parameters (%zu elements) used with %d (%zu)", p->count,
                   p->numel, params->count, params->numel);
}

/* The schedule's factor 1 - (1 - pi(t))^3. */
static double schedule_factor(const tsr_pruner *p, int64_t t)
{
    switch (p->config.mode) {
    case TSR_PRUNE_MODE_NONE: return 0;
    case TSR_PRUNE_MODE_ONE_SHOT:
    case TSR_PRUNE_MODE_STATIC: return 1;
    case TSR_PRUNE_MODE_GMP: break;
    }
    if (p->end == p->start) return 1;
    double length = (double)(p->end - p->start);
    double progress = (double)(t + 1 - p->start);
    progress = progress < 0 ? 0 : progress > length ? length : progress;
    double rest = 1.0 - progress / length;
    return 1.0 - rest * rest * rest;
}

/* Recomputes every pruned tensor's mask at the schedule's factor: from |w|
 * (global: L2-normalised per tensor) or, for the static mode, random scores. */
static void compute_masks(tsr_pruner *p, const tsr_params *params, double factor,
                          bool random_scores)
{
    tsr_rng rng;
    tsr_rng_init(&rng, (uint64_t)p->config.seed, PRUNE_RNG_STREAM);
    if (p->config.scope == TSR_PRUNE_SCOPE_GLOBAL) {
        int64_t len = 0;
        for (int i = 0; i < p->count; i++) {
            if (!p->pruned[i]) continue;
            int64_t n = tsr_tensor_numel(&params->items[i].value);
            double *s = p->scores + len;
            if (random_scores) {
                for (int64_t j = 0; j < n; j++) s[j] = tsr_rng_uniform(&rng);
            } else {
                magnitudes(params, i, s);
                double norm = 0;
                for (int64_t j = 0; j < n; j++) norm += s[j] * s[j];
                norm = sqrt(norm) + GLOBAL_NORM_EPS;
                for (int64_t j = 0; j < n; j++) s[j] /= norm;
            }
            len += n;
        }
        double sparsity = p->config.target_sparsity * factor;
        /* One mask over the concatenation, then copied out tensor by tensor. */
        top_mask(p->scores, p->select, len, kept_count(len, sparsity), p->concat_mask);
        int64_t at = 0;
        for (int i = 0; i < p->count; i++) {
            if (!p->pruned[i]) continue;
            int64_t n = tsr_tensor_numel(&params->items[i].value);
            memcpy(p->masks + params->items[i].offset, p->concat_mask + at, (size_t)n);
            p->current_sparsity[i] = sparsity;
            at += n;
        }
    } else {
        for (int i = 0; i < p->count; i++) {
            if (!p->pruned[i]) continue;
            int64_t n = tsr_tensor_numel(&params->items[i].value);
            if (random_scores)
                for (int64_t j = 0; j < n; j++) p->scores[j] = tsr_rng_uniform(&rng);
            else
                magnitudes(params, i, p->scores);
            double sparsity = p->final_sparsity[i] * factor;
            top_mask(p->scores, p->select, n, kept_count(n, sparsity),
                     p->masks + params->items[i].offset);
            p->current_sparsity[i] = sparsity;
        }
    }
    p->masks_active = true;
}

tsr_status tsr_pruner_new(tsr_pruner **out, const tsr_params *params, const tsr_prune_config *cfg,
                          int64_t total_updates, tsr_error *err)
{
    *out = NULL;
    TSR_ASSERT_MSG(params->finalized, "pruner for a parameter block that is not finalized");
    tsr_status st = tsr_prune_config_validate(cfg, err);
    if (st != TSR_STATUS_OK) return st;
    int64_t start = cfg->start_step, end = cfg->end_step;
    if (cfg->step_units == TSR_PRUNE_STEPS_FRACTION && cfg->mode != TSR_PRUNE_MODE_NONE &&
        cfg->mode != TSR_PRUNE_MODE_STATIC) {
        if (total_updates <= 0)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "pruning.step_units = fraction needs the run's number of gradient "
                                 "updates, got %lld; give start_step and end_step with "
                                 "step_units = updates instead",
                                 (long long)total_updates);
        start = (int64_t)nearbyint(cfg->start_fraction * (double)total_updates);
        end = (int64_t)nearbyint(cfg->end_fraction * (double)total_updates);
    }
    if (cfg->mode == TSR_PRUNE_MODE_ONE_SHOT) end = start;
    if (cfg->mode == TSR_PRUNE_MODE_STATIC) start = end = 0;
    /* Masks change on multiples of update_freq inside [start, end]: a window
     * holding none would leave the network dense without a word. */
    int64_t freq = cfg->update_freq;
    if (cfg->mode == TSR_PRUNE_MODE_GMP && start != end && start >= 0 &&
        (start + freq - 1) / freq * freq > end)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "pruning: the schedule's window of updates [%lld, %lld] holds no "
                             "multiple of pruning.update_freq = %lld, so no mask would ever be "
                             "computed; lower update_freq or widen the window (more updates, or "
                             "other start and end fractions or steps)",
                             (long long)start, (long long)end, (long long)freq);

    tsr_pruner *p = tsr_calloc(1, sizeof *p);
    p->config = *cfg;
    p->start = start;
    p->end = end;
    p->count = params->count;
    p->numel = params->numel;
    p->masks = tsr_malloc(p->numel ? p->numel : 1);
    memset(p->masks, 1, p->numel ? p->numel : 1);
    int slots = params->count ? params->count : 1;
    p->mask_views = tsr_calloc((size_t)slots, sizeof *p->mask_views);
    p->pruned = tsr_calloc((size_t)slots, sizeof *p->pruned);
    p->final_sparsity = tsr_calloc((size_t)slots, sizeof *p->final_sparsity);
    p->current_sparsity = tsr_calloc((size_t)slots, sizeof *p->current_sparsity);
    for (int i = 0; i < params->count; i++) {
        const tsr_tensor *v = &params->items[i].value;
        p->mask_views[i] =
            tsr_tensor_view(p->masks + params->items[i].offset, TSR_DTYPE_U8, v->ndim, v->shape);
    }
    if (cfg->mode == TSR_PRUNE_MODE_NONE) {
        *out = p;
        return TSR_STATUS_OK;
    }

    if (select_tensors(p, params) == 0) {
        tsr_pruner_free(p);
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "no tensor to prune: no parameter with more than one dimension is "
                             "flagged prunable after the exclusions (exclude_first_conv = %s, "
                             "exclude_output = %s, exclude_routers = %s)",
                             cfg->exclude_first_conv ? "true" : "false",
                             cfg->exclude_output ? "true" : "false",
                             cfg->exclude_routers ? "true" : "false");
    }
    int64_t largest = 0, total = 0;
    for (int i = 0; i < p->count; i++) {
        if (!p->pruned[i]) continue;
        int64_t n = tsr_tensor_numel(&params->items[i].value);
        largest = n > largest ? n : largest;
        total += n;
        p->final_sparsity[i] = cfg->target_sparsity;
    }
    if (cfg->distribution == TSR_PRUNE_DISTRIBUTION_ERK) erk_sparsities(p, params);
    p->scratch_len = cfg->scope == TSR_PRUNE_SCOPE_GLOBAL ? total : largest;
    p->scores = tsr_malloc((size_t)p->scratch_len * sizeof *p->scores);
    p->select = tsr_malloc((size_t)p->scratch_len * sizeof *p->select);
    if (cfg->scope == TSR_PRUNE_SCOPE_GLOBAL) p->concat_mask = tsr_malloc((size_t)p->scratch_len);
    if (cfg->mode == TSR_PRUNE_MODE_STATIC) compute_masks(p, params, 1.0, true);
    *out = p;
    return TSR_STATUS_OK;
}

void tsr_pruner_free(tsr_pruner *p)
{
    if (!p) return;
    tsr_free(p->masks);
    tsr_free(p->mask_views);
    tsr_free(p->pruned);
    tsr_free(p->final_sparsity);
    tsr_free(p->current_sparsity);
    tsr_free(p->scores);
    tsr_free(p->select);
    tsr_free(p->concat_mask);
    tsr_free(p);
}

const tsr_prune_config *tsr_pruner_config(const tsr_pruner *p) { return &p->config; }
int64_t tsr_pruner_start_step(const tsr_pruner *p) { return p->start; }
int64_t tsr_pruner_end_step(const tsr_pruner *p) { return p->end; }

double tsr_pruner_sparsity_at(const tsr_pruner *p, int64_t t)
{
    return p->config.target_sparsity * schedule_factor(p, t);
}

bool tsr_pruner_schedule_fits(const tsr_pruner *p, int64_t expected_updates, char *msg,
                              size_t size)
{
    const tsr_prune_config *c = &p->config;
    if (c->mode == TSR_PRUNE_MODE_NONE || c->mode == TSR_PRUNE_MODE_STATIC) return true;
    bool updates = c->step_units == TSR_PRUNE_STEPS_UPDATES;
    int64_t freq = c->update_freq;
    bool one_mask = c->mode == TSR_PRUNE_MODE_ONE_SHOT || p->start == p->end;
    int64_t first = one_mask ? p->start : (p->start + freq - 1) / freq * freq;
    if (updates && first >= expected_updates) {
        snprintf(msg, size,
                 "pruning: the first mask is computed before gradient update %lld "
                 "(pruning.start_step = %lld), but this run makes about %lld updates, so the "
                 "network will most likely never be pruned",
                 (long long)first, (long long)c->start_step, (long long)expected_updates);
        return false;
    }
    if (c->mode == TSR_PRUNE_MODE_GMP && p->start == p->end) {
        /* jaxpruner's one-shot schedule: easy to get by accident, e.g.
         * from step_units = updates with start_step and end_step left at
         * their defaults (0 and 0: before any training). */
        char window[128];
        if (updates)
            snprintf(window, sizeof window, "pruning.start_step = end_step = %lld",
                     (long long)c->start_step);
        else
            snprintf(window, sizeof window, "pruning.start_fraction = %g and end_fraction = %g",
                     c->start_fraction, c->end_fraction);
        snprintf(msg, size,
                 "pruning: mode = gmp with a window of no length (%s) prunes once, before "
                 "gradient update %lld, straight to target_sparsity = %.4g: not gradual; give "
                 "an end after the start, or mode = one_shot to mean it",
                 window, (long long)p->start, c->target_sparsity);
        return false;
    }
    if (!updates) return true; /* fractions fit the run by construction */
    int64_t last = (expected_updates - 1) / freq * freq; /* >= first: checked above */
    /* A mask update the run misses, and with it sparsity (with update_freq
     * 1 the update before `end` already reaches the target). */
    if (!one_mask && p->end / freq * freq > last &&
        tsr_pruner_sparsity_at(p, last) < c->target_sparsity) {
        snprintf(msg, size,
                 "pruning: the schedule ends at gradient update %lld (pruning.end_step), but "
                 "this run makes about %lld updates: its last mask, before update %lld, has "
                 "sparsity %.4g instead of pruning.target_sparsity = %.4g",
                 (long long)p->end, (long long)expected_updates, (long long)last,
                 tsr_pruner_sparsity_at(p, last), c->target_sparsity);
        return false;
    }
    return true;
}

bool tsr_pruner_is_update_step(const tsr_pruner *p, int64_t t)
{
    switch (p->config.mode) {
    case TSR_PRUNE_MODE_NONE:
    case TSR_PRUNE_MODE_STATIC: return false;
    case TSR_PRUNE_MODE_ONE_SHOT: return t == p->start;
    case TSR_PRUNE_MODE_GMP: break;
    }
    if (p->start == p->end) return t == p->start; /* jaxpruner's OneShotSchedule */
    return t % p->config.update_freq == 0 && t >= p->start && t <= p->end;
}

bool tsr_pruner_step(tsr_pruner *p, const tsr_params *params, int64_t t)
{
    check_layout(p, params);
    if (!tsr_pruner_is_update_step(p, t)) return false;
    compute_masks(p, params, schedule_factor(p, t), false);
    return true;
}

void tsr_pruner_apply(const tsr_pruner *p, tsr_params *params)
{
    check_layout(p, params);
    if (!p->masks_active) return;
    for (int i = 0; i < p->count; i++) {
        if (!p->pruned[i]) continue;
        const tsr_param *item = &params->items[i];
        int64_t n = tsr_tensor_numel(&item->value);
        const uint8_t *m = p->masks + item->offset;
        /* Zeroes are written, not multiplied: -0, inf and NaN weights become +0. */
        if (params->dtype == TSR_DTYPE_F64) {
            double *w = tsr_f64(&item->value);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
            for (int64_t j = 0; j < n; j++)
                if (!m[j]) w[j] = 0.0;
        } else {
            float *w = tsr_f32(&item->value);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
            for (int64_t j = 0; j < n; j++)
                if (!m[j]) w[j] = 0.0f;
        }
    }
    tsr_params_bump_version(params);
}

static void check_index(const tsr_pruner *p, int index)
{
    TSR_ASSERT_MSG(index >= 0 && index < p->count, "parameter %d of %d", index, p->count);
}

bool tsr_pruner_is_pruned(const tsr_pruner *p, int index)
{
    check_index(p, index);
    return p->pruned[index];
}

double tsr_pruner_final_sparsity(const tsr_pruner *p, int index)
{
    check_index(p, index);
    return p->final_sparsity[index];
}

double tsr_pruner_current_sparsity(const tsr_pruner *p, int index)
{
    check_index(p, index);
    return p->current_sparsity[index];
}

tsr_tensor tsr_pruner_mask(tsr_pruner *p, int index)
{
    check_index(p, index);
    return p->mask_views[index];
}

uint8_t *tsr_pruner_mask_block(tsr_pruner *p) { return p->masks; }
size_t tsr_pruner_mask_bytes(const tsr_pruner *p) { return p->numel; }

void tsr_pruner_masks_loaded(tsr_pruner *p)
{
    p->masks_active = p->config.mode != TSR_PRUNE_MODE_NONE;
}

/* ==== report ============================================================= */

void tsr_prune_uses_from_summary(const tsr_params *params, const tsr_summary *summary,
                                 double *uses)
{
    for (int i = 0; i < params->count; i++) uses[i] = 0;
    for (int r = 0; r < summary->count; r++) {
        char name[TSR_PARAM_NAME_BYTES + 8];
        snprintf(name, sizeof name, "%s/weight", summary->rows[r].name);
        int i = tsr_params_find(params, name);
        if (i < 0) continue;
        int64_t n = tsr_tensor_numel(&params->items[i].value);
        if (n > 0) uses[i] += summary->rows[r].flops / (2.0 * (double)n);
    }
}

void tsr_prune_report_compute(tsr_prune_report *report, const tsr_params *params,
                              const tsr_pruner *pruner, const double *uses)
{
    memset(report, 0, sizeof *report);
    if (pruner) check_layout(pruner, params);
    report->count = params->count;
    report->rows = tsr_calloc((size_t)(params->count ? params->count : 1), sizeof *report->rows);
    for (int i = 0; i < params->count; i++) {
        const tsr_param *item = &params->items[i];
        tsr_prune_report_row *row = &report->rows[i];
        snprintf(row->name, sizeof row->name, "%s", item->name);
        int64_t n = tsr_tensor_numel(&item->value), zeros = 0;
        if (params->dtype == TSR_DTYPE_F64)
            for (int64_t j = 0; j < n; j++) zeros += tsr_f64(&item->value)[j] == 0.0;
        else
            for (int64_t j = 0; j < n; j++) zeros += tsr_f32(&item->value)[j] == 0.0f;
        row->numel = n;
        row->zeros = zeros;
        row->sparsity = n ? (double)zeros / (double)n : 0.0;
        row->pruned = pruner && pruner->pruned[i];
        row->uses = uses ? uses[i] : 0.0;
        row->zero_flops = 2.0 * row->uses * (double)zeros;
        report->total_numel += n;
        report->total_zeros += zeros;
        if (row->pruned) {
            report->pruned_numel += n;
            report->pruned_zeros += zeros;
        }
        report->dense_flops += 2.0 * row->uses * (double)n;
        report->zero_flops += row->zero_flops;
    }
    report->total_sparsity =
        report->total_numel ? (double)report->total_zeros / (double)report->total_numel : 0.0;
    report->pruned_sparsity =
        report->pruned_numel ? (double)report->pruned_zeros / (double)report->pruned_numel : 0.0;
}

void tsr_prune_report_fini(tsr_prune_report *report)
{
    tsr_free(report->rows);
    memset(report, 0, sizeof *report);
}

void tsr_prune_report_print(const tsr_prune_report *r, FILE *out)
{
    fprintf(out, "%-40s %6s %12s %12s %9s %14s\n", "parameter", "pruned", "elements", "zeros",
            "sparsity", "zero FLOPs");
    for (int i = 0; i < r->count; i++) {
        const tsr_prune_report_row *row = &r->rows[i];
        fprintf(out, "%-40s %6s %12lld %12lld %8.2f%% %14.4g\n", row->name,
                row->pruned ? "yes" : "no", (long long)row->numel, (long long)row->zeros,
                100.0 * row->sparsity, row->zero_flops);
    }
    fprintf(out, "pruned tensors: %lld of %lld zero (%.2f%%)\n", (long long)r->pruned_zeros,
            (long long)r->pruned_numel, 100.0 * r->pruned_sparsity);
    fprintf(out, "all parameters: %lld of %lld zero (%.2f%%)\n", (long long)r->total_zeros,
            (long long)r->total_numel, 100.0 * r->total_sparsity);
    if (r->dense_flops > 0)
        fprintf(out, "dense forward: %.4g FLOPs, %.4g of them (%.2f%%) on zero weights\n",
                r->dense_flops, r->zero_flops, 100.0 * r->zero_flops / r->dense_flops);
}

/* ==== checkpoints ======================================================== */

void tsr_pruner_checkpoint(tsr_pruner *p, const tsr_params *params, tsr_ckpt *c,
                           const char *group)
{
    char path[512];
    int64_t start = p->start, end = p->end;
    snprintf(path, sizeof path, "%s/start_step", group);
    tsr_ckpt_i64(c, path, &start);
    snprintf(path, sizeof path, "%s/end_step", group);
    tsr_ckpt_i64(c, path, &end);
    if (!tsr_ckpt_writing(c) && tsr_ckpt_status(c) == TSR_STATUS_OK &&
        (start != p->start || end != p->end)) {
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT,
                      "%s: pruning schedule from update %lld to %lld in the file, %lld to %lld "
                      "in this run's config",
                      group, (long long)start, (long long)end, (long long)p->start,
                      (long long)p->end);
        return;
    }
    snprintf(path, sizeof path, "%s/masks_active", group);
    tsr_ckpt_bool(c, path, &p->masks_active);
    for (int i = 0; i < p->count; i++) {
        if (!p->pruned[i]) continue;
        snprintf(path, sizeof path, "%s/masks/%s", group, params->items[i].name);
        tsr_ckpt_tensor(c, path, &p->mask_views[i]);
        snprintf(path, sizeof path, "%s/current_sparsity/%s", group, params->items[i].name);
        tsr_ckpt_f64(c, path, &p->current_sparsity[i]);
    }
}
