/* bench_workloads.c — the performance issue's workloads, each timed as the
 * agent runs it, against the raw oneDNN primitives it executes and against
 * the machine's FP32 peak.
 *
 * Workloads (float32, 6 actions, batch 32 unless stated):
 *   nature_dqn                      Nature CNN (SAME, 84x84x4 uint8 / 255): one DQN update
 *   nature_act                      Nature CNN acting at batch 1: no-grad forward + argmax
 *   impala_softmoe4                 IMPALA + Soft MoE (4 experts, per-conv tokens, 31 slots)
 *   impala_tokenized_single_expert  IMPALA + Soft MoE with one expert of 2048
 *   impala_flatten                  IMPALA + flatten -> 512 -> ReLU
 *   nature_hlgauss                  Nature CNN + HL-Gauss head (51 bins over [-10, 10])
 *   minatar_dqn                     MinAtar DQN preset (conv 16@3x3 VALID on 10x10x4 binary
 *                                   planes, dense 128), Huber, centred RMSProp
 *   minatar_e2e                     MinAtar Breakout DQN preset trained by the runner:
 *                                   environment steps per second with acting, replay and an
 *                                   update every step
 *
 * One DQN update (workloads 1, 3-7) is agents/dqn.c's update() without the
 * replay sample and the loss / Q statistics: target network on s' without
 * gradient, online network on s with recording, tsr_gather_actions at the
 * taken actions, tsr_value_loss_td of the config's loss (MSE unless the
 * config says otherwise: HL-Gauss for nature_hlgauss, Huber for MinAtar),
 * mean over the batch, tsr_backward, then the config's optimizer step (Adam
 * with Dopamine's settings unless the config says otherwise: centred RMSProp
 * for MinAtar). Observations, actions, rewards and terminal flags are random
 * and fixed; 3% of the transitions are terminal.
 *
 * The ceiling: one step (after warm-up) is run with the oneDNN execution
 * trace on (dnnl_glue.h); then its compute primitives (every kind but
 * reorder) are replayed back to back in the step's order — same primitives,
 * same buffers, nothing between them — followed by the optimizer step (no
 * oneDNN primitive exists for it; bench_ops does the same), and that
 * sequence is timed (median of --reps, alternating sample by sample with the
 * step's own samples, so that load changes hit both). This is the step as raw oneDNN calls:
 * what a oneDNN-based framework that made the same primitive choices could
 * reach. Reorders (weight layout refreshes after each optimizer step, strided
 * copies) count as tessera's overhead, as does everything that is not a
 * oneDNN primitive (u8 -> f32, losses, Soft MoE glue, the autograd
 * bookkeeping). Beside it, "alone": every primitive call replayed alone
 * (median of --reps runs of 3 calls after 2 warm-up calls) plus the
 * optimizer alone, summed — more optimistic still, each with warm caches
 * (bench_ops' convention).
 *
 * FLOPs: the forward's come from the layers' summary rows (a multiply-add
 * counted as two); a step counts 4x the forward at batch N (the target's
 * forward + the online forward + backward as 2x forward, the usual
 * convention). The FP32 peak is an FMA loop (12 independent accumulators of
 * the widest vector the CPU has, AVX-512 or AVX2) on every thread.
 *
 * Before timing, each step's oneDNN path is checked against the plain-C
 * reference backend on the same batch and parameters: the per-sample losses
 * and the whole gradient block, as max |oneDNN - reference| / max |reference|;
 * a loss difference above 1e-3 aborts.
 *
 *   bench_workloads [--workloads LIST] [--threads LIST] [--reps N] [--e2e-steps N]
 *                   [--configs DIR] [--json] [--peak] [--replay-memory] [--profile N]
 *                   [--calls] [--skip-check]
 *
 * LISTs are comma-separated (default: every workload; threads 1,2). With
 * --json each result is one JSON object per line (bench/compare.py reads
 * them). --peak adds the FMA-loop peak per thread count, --replay-memory the
 * bytes a replay of 84x84x4 uint8 observations takes. --profile N runs only N
 * calls of each workload after warm-up (no check, no ceiling): for perf;
 * --calls lists every replayed primitive call (kind, implementation, first
 * argument's dims, time alone); --skip-check leaves out the oneDNN vs
 * reference check (bench/compare.py checks in its first round only).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <oneapi/dnnl/dnnl_debug.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "bench_util.h"
/* The context's oneDNN cache and its execution trace: replaying the step's
 * primitives alone needs the slots themselves. */
#include "internal.h"
#include "tessera/tessera.h"

#define PROG "bench_workloads" /* prefix of command-line errors */

#ifndef TSR_CONFIGS_DIR
#define TSR_CONFIGS_DIR "configs"
#endif

enum {
    MAX_THREAD_COUNTS = 8,
    NUM_ACTIONS = 6,
    WARMUP_STEPS = 5,
    MAX_REPS = 64,
    MAX_OVERRIDES = 8,
    REPLAY_WARMUP_CALLS = 2,
    REPLAY_INNER_CALLS = 3,
};

static const double max_loss_rel_diff = 1e-3;
static const double terminal_fraction = 0.03;

/* ==== workloads ============================================================ */

typedef enum workload_kind {
    KIND_STEP, /* one DQN update at `batch` */
    KIND_ACT,  /* one greedy action at batch 1 */
    KIND_RUN,  /* the runner: environment steps per second */
} workload_kind;

typedef struct workload {
    const char *name;
    const char *what;
    workload_kind kind;
    const char *config; /* relative to the configs folder; NULL: the run schema's defaults */
    const char *overrides[MAX_OVERRIDES];
    tsr_image_shape input;
    float input_scale;
    bool binary_obs; /* MinAtar's 0/1 planes */
    int64_t batch;
} workload;

static const workload workloads[] = {
    {"nature_dqn", "Nature CNN DQN update (MSE, Adam)", KIND_STEP, NULL,
     {"network.encoder=nature", "network.head=dense", "network.hidden=512"},
     {84, 84, 4}, 1.0f / 255, false, 32},
    {"nature_act", "Nature CNN acting: no-grad forward + argmax", KIND_ACT, NULL,
     {"network.encoder=nature", "network.head=dense", "network.hidden=512"},
     {84, 84, 4}, 1.0f / 255, false, 1},
    {"impala_softmoe4", "IMPALA + Soft MoE 4 experts DQN update (MSE, Adam)", KIND_STEP,
     "networks/impala_softmoe4.ini", {0}, {84, 84, 4}, 1.0f / 255, false, 32},
    {"impala_tokenized_single_expert", "IMPALA + tokenized single expert DQN update (MSE, Adam)",
     KIND_STEP, "networks/impala_tokenized_single_expert.ini", {0}, {84, 84, 4}, 1.0f / 255,
     false, 32},
    {"impala_flatten", "IMPALA + flatten-512 DQN update (MSE, Adam)", KIND_STEP,
     "networks/impala_flatten.ini", {0}, {84, 84, 4}, 1.0f / 255, false, 32},
    {"nature_hlgauss", "Nature CNN + HL-Gauss 51 bins DQN update (Adam)", KIND_STEP,
     "networks/nature_hlgauss.ini", {0}, {84, 84, 4}, 1.0f / 255, false, 32},
    {"minatar_dqn", "MinAtar DQN update (Huber, centred RMSProp)", KIND_STEP, "breakout/dqn.ini",
     {0}, {10, 10, 4}, 1.0f, true, 32},
    /* Steady state of the preset's 5M-frame run: updates from step 1,000
     * (instead of 5,000) with epsilon already at its final 0.1, so 90% of the
     * actions run the network as they do for most of a run. */
    {"minatar_e2e", "MinAtar Breakout DQN preset, runner steps/s", KIND_RUN, "breakout/dqn.ini",
     {"agent.min_replay_history=1000", "agent.epsilon_decay_period=1",
      "run.evaluation_episodes=0", "run.checkpoint_every=0", "run.iterations=2"},
     {10, 10, 4}, 1.0f, true, 32},
};
enum { NUM_WORKLOADS = sizeof workloads / sizeof workloads[0] };

typedef struct options {
    int reps;
    int threads[MAX_THREAD_COUNTS];
    int num_thread_counts;
    bool selected[NUM_WORKLOADS];
    int64_t e2e_steps;
    const char *configs_dir;
    bool json, peak, replay_memory;
    int64_t profile_calls; /* > 0: only run this many calls (for perf), no check or ceiling */
    bool list_calls;       /* print every replayed primitive call */
    bool skip_check;       /* no oneDNN vs reference check (a repeated measurement) */
} options;

/* ==== the oneDNN trace and its replay ====================================== */

typedef struct trace_entry {
    const tsr_dnnl_slot *slot;
    void *handles[TSR_DNNL_MAX_ARGS];
} trace_entry;

typedef struct trace {
    trace_entry *entries;
    int count, capacity;
} trace;

static void trace_record(void *user, const tsr_dnnl_slot *slot, void *const *handles)
{
    trace *t = user;
    if (t->count == t->capacity) {
        t->capacity = t->capacity ? 2 * t->capacity : 256;
        t->entries = tsr_realloc(t->entries, (size_t)t->capacity * sizeof *t->entries);
    }
    trace_entry *e = &t->entries[t->count++];
    e->slot = slot;
    memcpy(e->handles, handles, (size_t)slot->nargs * sizeof *handles);
}

/* Per primitive kind: calls and the summed median time of each call alone. */
typedef struct kind_total {
    dnnl_primitive_kind_t kind;
    int calls;
    double seconds;
} kind_total;

typedef struct replay_result {
    double compute_seconds; /* every kind but reorder */
    double reorder_seconds;
    int calls, reorder_calls;
    kind_total kinds[16];
    int num_kinds;
} replay_result;

typedef struct replay_call {
    const tsr_dnnl_slot *slot;
    dnnl_stream_t stream;
    dnnl_exec_arg_t args[TSR_DNNL_MAX_ARGS + 1];
    int nargs;
} replay_call;

static void replay_run(void *user)
{
    replay_call *c = user;
    TSR_DNNL_CHECK(dnnl_primitive_execute(c->slot->primitive, c->stream, c->nargs, c->args));
    TSR_DNNL_CHECK(dnnl_stream_wait(c->stream));
}

/* Times every traced execution alone, on its own buffers, with one
 * scratchpad buffer outside the arena. */
static replay_result replay_trace(tsr_ctx *ctx, const trace *t, int reps, bool list)
{
    replay_result r = {0};
    size_t scratch_bytes = 0;
    for (int i = 0; i < t->count; i++)
        if (t->entries[i].slot->scratchpad_bytes > scratch_bytes)
            scratch_bytes = t->entries[i].slot->scratchpad_bytes;
    void *scratch = scratch_bytes ? tsr_malloc(scratch_bytes) : NULL;
    for (int i = 0; i < t->count; i++) {
        const trace_entry *e = &t->entries[i];
        replay_call c = {.slot = e->slot, .stream = ctx->dnnl.stream};
        for (int a = 0; a < e->slot->nargs; a++) {
            TSR_DNNL_CHECK(dnnl_memory_set_data_handle(e->slot->mem[a], e->handles[a]));
            c.args[c.nargs++] = (dnnl_exec_arg_t){e->slot->arg[a], e->slot->mem[a]};
        }
        if (e->slot->scratchpad) {
            TSR_DNNL_CHECK(dnnl_memory_set_data_handle(e->slot->scratchpad, scratch));
            c.args[c.nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->slot->scratchpad};
        }
        double seconds = bench_time(replay_run, &c, REPLAY_WARMUP_CALLS, reps, REPLAY_INNER_CALLS);
        dnnl_primitive_kind_t kind;
        TSR_DNNL_CHECK(dnnl_primitive_desc_query(e->slot->pd, dnnl_query_primitive_kind, 0, &kind));
        if (list) {
            const char *impl = "?";
            dnnl_primitive_desc_query(e->slot->pd, dnnl_query_impl_info_str, 0, &impl);
            const dnnl_memory_desc_t *md = tsr_dnnl_slot_md(e->slot, e->slot->arg[0]);
            printf("    call %3d %-14s %-28s arg0 (", i, dnnl_prim_kind2str(kind), impl);
            for (int d = 0; md && d < md->ndims; d++) printf("%s%lld", d ? ", " : "", (long long)md->dims[d]);
            printf(") %9.4f ms\n", 1e3 * seconds);
        }
        r.calls++;
        if (kind == dnnl_reorder) {
            r.reorder_seconds += seconds;
            r.reorder_calls++;
        } else {
            r.compute_seconds += seconds;
        }
        int k = 0;
        while (k < r.num_kinds && r.kinds[k].kind != kind) k++;
        if (k == r.num_kinds && r.num_kinds < (int)(sizeof r.kinds / sizeof r.kinds[0]))
            r.kinds[r.num_kinds++] = (kind_total){.kind = kind};
        if (k < r.num_kinds) {
            r.kinds[k].calls++;
            r.kinds[k].seconds += seconds;
        }
    }
    tsr_free(scratch);
    return r;
}

/* The traced compute primitives (reorders left out) back to back, in the
 * step's order, then the optimizer step when there is one: the step as raw
 * oneDNN calls plus the optimizer, without anything else tessera does. */
typedef struct sequence {
    tsr_ctx *ctx;
    const trace *t;
    void *scratch;
    tsr_optimizer *optimizer; /* NULL for acting */
} sequence;

static void sequence_run(void *user)
{
    sequence *q = user;
    for (int i = 0; i < q->t->count; i++) {
        const trace_entry *e = &q->t->entries[i];
        dnnl_primitive_kind_t kind;
        TSR_DNNL_CHECK(dnnl_primitive_desc_query(e->slot->pd, dnnl_query_primitive_kind, 0, &kind));
        if (kind == dnnl_reorder) continue;
        dnnl_exec_arg_t args[TSR_DNNL_MAX_ARGS + 1];
        int n = 0;
        for (int a = 0; a < e->slot->nargs; a++) {
            TSR_DNNL_CHECK(dnnl_memory_set_data_handle(e->slot->mem[a], e->handles[a]));
            args[n++] = (dnnl_exec_arg_t){e->slot->arg[a], e->slot->mem[a]};
        }
        if (e->slot->scratchpad) {
            TSR_DNNL_CHECK(dnnl_memory_set_data_handle(e->slot->scratchpad, q->scratch));
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->slot->scratchpad};
        }
        TSR_DNNL_CHECK(dnnl_primitive_execute(e->slot->primitive, q->ctx->dnnl.stream, n, args));
        TSR_DNNL_CHECK(dnnl_stream_wait(q->ctx->dnnl.stream));
    }
    if (q->optimizer) tsr_optimizer_step(q->optimizer, tsr_ctx_epoch(q->ctx));
}

/* One scratchpad buffer for the whole sequence, outside the arena. */
static void sequence_init(sequence *q)
{
    size_t scratch_bytes = 0;
    for (int i = 0; i < q->t->count; i++)
        if (q->t->entries[i].slot->scratchpad_bytes > scratch_bytes)
            scratch_bytes = q->t->entries[i].slot->scratchpad_bytes;
    q->scratch = scratch_bytes ? tsr_malloc(scratch_bytes) : NULL;
}

/* ==== the FP32 peak ======================================================== */

#if defined(__x86_64__) || defined(__i386__)
/* 12 independent FMA chains: enough to cover the FMA latency on two pipes. */
__attribute__((target("avx512f"))) static float fma_loop_avx512(int64_t iters, float seed)
{
    __m512 acc[12];
    const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(seed + (float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    for (int i = 1; i < 12; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(int64_t iters, float seed)
{
    __m256 acc[12];
    const __m256 m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps(seed + (float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    for (int i = 1; i < 12; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, acc[0]);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}
#endif

/* FP32 GFLOP/s of the FMA loop on `threads` threads (median of `reps`), and
 * the instruction set it used. */
static double fma_peak(int threads, int reps, const char **isa)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    bool avx512 = false, avx2 = false;
#endif
    *isa = avx512 ? "avx512" : avx2 ? "avx2+fma" : "none";
    if (!avx512 && !avx2) return 0.0;
    const int64_t iters = 20000000; /* about 0.1 s per thread at 2-3 GHz */
    const double lanes = avx512 ? 16.0 : 8.0;
    double samples[MAX_REPS];
    volatile float sink = 0.0f;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
#pragma omp parallel num_threads(threads)
        {
            float s = 0.0f;
#if defined(__x86_64__) || defined(__i386__)
            s = avx512 ? fma_loop_avx512(iters, (float)omp_get_thread_num())
                       : fma_loop_avx2(iters, (float)omp_get_thread_num());
#endif
#pragma omp critical
            sink += s;
        }
        double seconds = bench_now() - t0;
        samples[r] = (double)threads * (double)iters * 12.0 * lanes * 2.0 / seconds * 1e-9;
    }
    (void)sink;
    return bench_median(samples, reps);
}

/* ==== one update / one action ============================================= */

typedef struct step_case {
    const workload *w;
    tsr_run_config cfg;
    tsr_ctx *ctx;
    tsr_network online, target;
    tsr_support support;
    tsr_optimizer *optimizer;
    tsr_tensor *obs, *next_obs;     /* (N, H, W, C) uint8 */
    tsr_tensor *actions;            /* (N) int32 */
    tsr_tensor *rewards, *dones;    /* (N) float32 */
    tsr_rng noise_rng;
    tsr_noise noise;
    tsr_tensor *per_sample;         /* the last update's losses (arena) */
    int32_t action;                 /* the last greedy action */
} step_case;

/* The update without the optimizer: targets, online forward, TD loss, backward. */
static void update_gradients(step_case *s)
{
    tsr_ctx *ctx = s->ctx;
    tsr_ctx_begin_step(ctx);
    tsr_rng_init(&s->noise_rng, 7, TSR_RNG_STREAM_NOISE);
    tsr_ctx_set_grad(ctx, false);
    tsr_tensor *next_target = tsr_network_forward(&s->target, ctx, s->next_obs, &s->noise);
    tsr_ctx_set_grad(ctx, true);
    tsr_tensor *outputs = tsr_network_forward(&s->online, ctx, s->obs, &s->noise);
    tsr_td_batch td = {
        .chosen = tsr_gather_actions(ctx, outputs, s->actions),
        .next_target = next_target,
        .next_online = NULL,
        .rewards = s->rewards,
        .dones = s->dones,
        .gamma_n = s->cfg.agent.gamma,
    };
    s->per_sample = tsr_value_loss_td(ctx, &s->support, &td);
    tsr_backward(ctx, tsr_mean_all(ctx, s->per_sample));
    tsr_ctx_set_grad(ctx, false);
}

static void update_step(void *user)
{
    step_case *s = user;
    update_gradients(s);
    tsr_optimizer_step(s->optimizer, tsr_ctx_epoch(s->ctx));
}

static void optimizer_only(void *user)
{
    step_case *s = user;
    tsr_optimizer_step(s->optimizer, tsr_ctx_epoch(s->ctx));
}

static int32_t argmax_f32(const float *q, int64_t n)
{
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (q[i] > q[best]) best = (int32_t)i;
    return best;
}

/* agents/dqn.c's select_action after the epsilon draw. */
static void act(void *user)
{
    step_case *s = user;
    tsr_ctx *ctx = s->ctx;
    tsr_ctx_begin_step(ctx);
    tsr_rng_init(&s->noise_rng, 7, TSR_RNG_STREAM_NOISE);
    bool was = tsr_ctx_set_grad(ctx, false);
    tsr_tensor *out = tsr_network_forward(&s->online, ctx, s->obs, &s->noise);
    tsr_tensor *q = tsr_value_q(ctx, &s->support, out);
    tsr_ctx_set_grad(ctx, was);
    s->action = argmax_f32(tsr_f32(q), NUM_ACTIONS);
}

/* max |a - b| / max |b|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return scale > 0.0 ? worst / scale : worst;
}

static int load_config(const options *o, const workload *w, int threads, tsr_run_config *cfg)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    char path[4096];
    if (w->config) snprintf(path, sizeof path, "%s/%s", o->configs_dir, w->config);
    char threads_override[64], steps_override[64];
    snprintf(threads_override, sizeof threads_override, "run.threads=%d", threads);
    snprintf(steps_override, sizeof steps_override, "run.training_steps=%lld",
             (long long)o->e2e_steps);
    char *overrides[MAX_OVERRIDES + 2];
    int n = 0;
    for (int i = 0; i < MAX_OVERRIDES && w->overrides[i]; i++) overrides[n++] = (char *)w->overrides[i];
    overrides[n++] = threads_override;
    if (w->kind == KIND_RUN) overrides[n++] = steps_override;
    tsr_error err;
    if (tsr_run_config_load(&schema, cfg, w->config ? path : NULL, overrides, n, &err) !=
        TSR_STATUS_OK) {
        fprintf(stderr, "bench_workloads: %s: %s\n", w->name, err.message);
        return 1;
    }
    return 0;
}

typedef struct result {
    double seconds;          /* median per update / action / environment step */
    double forward_flops;    /* one forward at the workload's batch */
    double step_flops;
    int64_t params;
    double loss_diff, grad_diff; /* oneDNN vs reference (steps) */
    bool arena_steady;
    replay_result replay;    /* each primitive call timed alone */
    double optimizer_seconds;
    double sum_alone_seconds; /* compute primitives alone + optimizer alone */
    double ceiling_seconds;  /* the compute primitives back to back + the optimizer */
} result;

static int step_case_init(step_case *s, const options *o, const workload *w, int threads)
{
    memset(s, 0, sizeof *s);
    s->w = w;
    if (load_config(o, w, threads, &s->cfg)) return 1;
    tsr_error err;
    if (tsr_support_init(&s->support, &s->cfg.loss, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "bench_workloads: %s: %s\n", w->name, err.message);
        return 1;
    }
    int64_t atoms = tsr_support_head_width(&s->support);
    tsr_network *nets[2] = {&s->online, &s->target};
    for (int i = 0; i < (w->kind == KIND_STEP ? 2 : 1); i++) {
        if (tsr_network_init(nets[i], &s->cfg.network, w->input, NUM_ACTIONS, atoms,
                             w->input_scale, TSR_DTYPE_F32, &err) != TSR_STATUS_OK) {
            fprintf(stderr, "bench_workloads: %s: %s\n", w->name, err.message);
            return 1;
        }
    }
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&s->online, &rng);
    if (w->kind == KIND_STEP) {
        tsr_params_copy_values(&s->target.params, &s->online.params);
        tsr_optimizer_options opt = tsr_run_config_optimizer(&s->cfg);
        if (tsr_optimizer_new(&s->optimizer, &s->online.params, &opt, &err) != TSR_STATUS_OK) {
            fprintf(stderr, "bench_workloads: %s: %s\n", w->name, err.message);
            return 1;
        }
    }
    s->ctx = tsr_ctx_new(NULL);
    s->noise = (tsr_noise){.rng = &s->noise_rng, .means_only = false};
    int64_t n = w->batch;
    s->obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(n, w->input.h, w->input.w, w->input.c));
    s->next_obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(n, w->input.h, w->input.w, w->input.c));
    s->actions = tsr_tensor_new(TSR_DTYPE_I32, 1, TSR_SHAPE(n));
    s->rewards = tsr_tensor_new(TSR_DTYPE_F32, 1, TSR_SHAPE(n));
    s->dones = tsr_tensor_new(TSR_DTYPE_F32, 1, TSR_SHAPE(n));
    tsr_rng data;
    tsr_rng_init(&data, 2, TSR_RNG_STREAM_REPLAY);
    for (int64_t i = 0; i < tsr_tensor_numel(s->obs); i++) {
        tsr_u8(s->obs)[i] = (uint8_t)(w->binary_obs ? tsr_rng_uniform(&data) < 0.1
                                                    : tsr_rng_below(&data, 256));
        tsr_u8(s->next_obs)[i] = (uint8_t)(w->binary_obs ? tsr_rng_uniform(&data) < 0.1
                                                         : tsr_rng_below(&data, 256));
    }
    for (int64_t i = 0; i < n; i++) {
        tsr_i32(s->actions)[i] = (int32_t)tsr_rng_below(&data, NUM_ACTIONS);
        tsr_f32(s->rewards)[i] = (float)tsr_rng_below(&data, 2);
        tsr_f32(s->dones)[i] = tsr_rng_uniform(&data) < terminal_fraction ? 1.0f : 0.0f;
    }
    return 0;
}

static void step_case_fini(step_case *s)
{
    tsr_tensor_free(s->obs);
    tsr_tensor_free(s->next_obs);
    tsr_tensor_free(s->actions);
    tsr_tensor_free(s->rewards);
    tsr_tensor_free(s->dones);
    if (s->ctx) tsr_ctx_free(s->ctx);
    tsr_optimizer_free(s->optimizer);
    if (s->w && s->w->kind == KIND_STEP) tsr_network_fini(&s->target);
    tsr_network_fini(&s->online);
    tsr_support_fini(&s->support);
}

/* Losses and settled gradients of one update on `backend` (no optimizer step). */
static void gradients_on(step_case *s, tsr_backend backend, float *losses, float *grads)
{
    tsr_ctx_set_backend(s->ctx, backend);
    update_gradients(s);
    tsr_params_settle_grads(&s->online.params, tsr_ctx_epoch(s->ctx));
    memcpy(losses, tsr_f32(s->per_sample), (size_t)s->w->batch * sizeof *losses);
    memcpy(grads, tsr_params_grads_f32(&s->online.params), s->online.params.numel * sizeof *grads);
    tsr_ctx_set_backend(s->ctx, TSR_BACKEND_DNNL);
}

static double forward_flops(step_case *s)
{
    tsr_summary summary = {0};
    tsr_ctx_begin_step(s->ctx);
    tsr_ctx_set_summary(s->ctx, &summary);
    tsr_rng_init(&s->noise_rng, 7, TSR_RNG_STREAM_NOISE);
    bool was = tsr_ctx_set_grad(s->ctx, false);
    tsr_network_forward(&s->online, s->ctx, s->obs, &s->noise);
    tsr_ctx_set_grad(s->ctx, was);
    tsr_ctx_set_summary(s->ctx, NULL);
    double flops = 0;
    for (int i = 0; i < summary.count; i++) flops += summary.rows[i].flops;
    tsr_summary_fini(&summary);
    return flops;
}

static int run_step_or_act(const options *o, const workload *w, int threads, result *r)
{
    omp_set_num_threads(threads);
    step_case s;
    int status = step_case_init(&s, o, w, threads);
    if (status) {
        step_case_fini(&s);
        return status;
    }
    tsr_flush_denormals();
    r->params = tsr_params_count(&s.online.params);
    r->forward_flops = forward_flops(&s);
    void (*fn)(void *) = w->kind == KIND_STEP ? update_step : act;
    r->step_flops = (w->kind == KIND_STEP ? 4.0 : 1.0) * r->forward_flops;

    if (o->profile_calls > 0) {
        for (int64_t i = 0; i < WARMUP_STEPS; i++) fn(&s);
        double t0 = bench_now();
        uint64_t allocs = tsr_arena_system_allocations(tsr_ctx_arena(s.ctx));
        for (int64_t i = 0; i < o->profile_calls; i++) fn(&s);
        r->seconds = (bench_now() - t0) / (double)o->profile_calls;
        r->arena_steady = tsr_arena_system_allocations(tsr_ctx_arena(s.ctx)) == allocs;
        step_case_fini(&s);
        return 0;
    }
    if (w->kind == KIND_STEP && !o->skip_check) {
        size_t nl = (size_t)w->batch, ng = s.online.params.numel;
        float *l_dnnl = tsr_malloc(nl * sizeof(float)), *l_ref = tsr_malloc(nl * sizeof(float));
        float *g_dnnl = tsr_malloc(ng * sizeof(float)), *g_ref = tsr_malloc(ng * sizeof(float));
        gradients_on(&s, TSR_BACKEND_DNNL, l_dnnl, g_dnnl);
        gradients_on(&s, TSR_BACKEND_REFERENCE, l_ref, g_ref);
        r->loss_diff = rel_diff(l_dnnl, l_ref, nl);
        r->grad_diff = rel_diff(g_dnnl, g_ref, ng);
        tsr_free(l_dnnl);
        tsr_free(l_ref);
        tsr_free(g_dnnl);
        tsr_free(g_ref);
        if (!(r->loss_diff <= max_loss_rel_diff)) {
            fprintf(stderr, "bench_workloads: %s: oneDNN and reference losses differ by %.3g "
                            "(relative, max %.0e)\n", w->name, r->loss_diff, max_loss_rel_diff);
            step_case_fini(&s);
            return 1;
        }
    }

    /* Acting is fast: several calls per timed sample. */
    int inner = w->kind == KIND_ACT ? 20 : w->input.h <= 10 ? 10 : 1;
    for (int i = 0; i < WARMUP_STEPS * inner; i++) fn(&s);
    uint64_t allocs = tsr_arena_system_allocations(tsr_ctx_arena(s.ctx));
    for (int i = 0; i < 3; i++) fn(&s);
    r->arena_steady = tsr_arena_system_allocations(tsr_ctx_arena(s.ctx)) == allocs;

    /* The ceiling: trace one more call; its buffers (arena and weight
     * caches) stay mapped, so its primitives can be replayed later. */
    trace t = {0};
    s.ctx->dnnl.trace = trace_record;
    s.ctx->dnnl.trace_user = &t;
    fn(&s);
    s.ctx->dnnl.trace = NULL;
    s.ctx->dnnl.trace_user = NULL;
    /* The step and its ceiling alternate sample by sample, so a change of
     * machine load hits both medians alike. */
    sequence q = {.ctx = s.ctx, .t = &t, .optimizer = s.optimizer};
    sequence_init(&q);
    for (int i = 0; i < 2 * inner; i++) sequence_run(&q);
    double step_samples[MAX_REPS], ceiling_samples[MAX_REPS];
    for (int rep = 0; rep < o->reps; rep++) {
        double t0 = bench_now();
        for (int i = 0; i < inner; i++) fn(&s);
        double t1 = bench_now();
        for (int i = 0; i < inner; i++) sequence_run(&q);
        step_samples[rep] = (t1 - t0) / inner;
        ceiling_samples[rep] = (bench_now() - t1) / inner;
    }
    r->seconds = bench_median(step_samples, o->reps);
    r->ceiling_seconds = bench_median(ceiling_samples, o->reps);
    tsr_free(q.scratch);
    r->replay = replay_trace(s.ctx, &t, o->reps, o->list_calls && !o->json);
    r->optimizer_seconds =
        w->kind == KIND_STEP ? bench_time(optimizer_only, &s, 2, o->reps, inner) : 0.0;
    r->sum_alone_seconds = r->replay.compute_seconds + r->optimizer_seconds;
    tsr_free(t.entries);
    step_case_fini(&s);
    return 0;
}

/* ==== end to end =========================================================== */

static int run_e2e(const options *o, const workload *w, int threads, result *r)
{
    tsr_run_config cfg;
    if (load_config(o, w, threads, &cfg)) return 1;
    tsr_runner *runner;
    tsr_error err;
    if (tsr_runner_new(&runner, &cfg, true, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "bench_workloads: %s: %s\n", w->name, err.message);
        return 1;
    }
    /* The first iteration fills the replay past its warm-up; the second is
     * the steady state (an update every step, epsilon 0.1). */
    tsr_iteration_metrics m = {0};
    for (int64_t i = 0; i < cfg.run.iterations; i++) {
        if (!tsr_runner_run_iteration(runner, &m, &err)) {
            fprintf(stderr, "bench_workloads: %s: iteration stopped\n", w->name);
            tsr_runner_free(runner);
            return 1;
        }
    }
    r->seconds = 1.0 / m.steps_per_second;
    tsr_agent *agent = tsr_runner_agent(runner);
    r->params = tsr_params_count(&tsr_agent_online(agent)->params);
    r->arena_steady = true;
    tsr_runner_free(runner);
    return 0;
}

/* ==== output =============================================================== */

static long max_rss_kib(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

static void print_json(const workload *w, int threads, const result *r)
{
    printf("{\"workload\": \"%s\", \"kind\": \"%s\", \"threads\": %d, \"batch\": %lld, "
           "\"ms\": %.5f, \"per_second\": %.3f, \"params\": %lld, \"forward_flops\": %.0f, "
           "\"step_flops\": %.0f, \"gflops\": %.3f, \"ceiling_ms\": %.5f, \"sum_alone_ms\": %.5f, \"dnnl_compute_ms\": %.5f, "
           "\"dnnl_reorder_ms\": %.5f, \"dnnl_calls\": %d, \"reorder_calls\": %d, "
           "\"optimizer_ms\": %.5f, \"loss_rel_diff\": %.3g, \"grad_rel_diff\": %.3g, "
           "\"arena_steady\": %s, \"max_rss_kib\": %ld, \"kinds\": {",
           w->name, w->kind == KIND_STEP ? "step" : w->kind == KIND_ACT ? "act" : "run", threads,
           (long long)w->batch, 1e3 * r->seconds, 1.0 / r->seconds, (long long)r->params,
           r->forward_flops, r->step_flops, 1e-9 * r->step_flops / r->seconds,
           1e3 * r->ceiling_seconds, 1e3 * r->sum_alone_seconds, 1e3 * r->replay.compute_seconds,
           1e3 * r->replay.reorder_seconds, r->replay.calls, r->replay.reorder_calls,
           1e3 * r->optimizer_seconds, r->loss_diff, r->grad_diff,
           r->arena_steady ? "true" : "false", max_rss_kib());
    for (int k = 0; k < r->replay.num_kinds; k++)
        printf("%s\"%s\": [%d, %.5f]", k ? ", " : "", dnnl_prim_kind2str(r->replay.kinds[k].kind),
               r->replay.kinds[k].calls, 1e3 * r->replay.kinds[k].seconds);
    printf("}}\n");
}

static void print_text(const workload *w, int threads, const result *r, double peak)
{
    if (w->kind == KIND_RUN) {
        printf("%-31s %2d %10.4f %10.1f %s\n", w->name, threads, 1e3 * r->seconds, 1.0 / r->seconds,
               "env steps/s (acting, replay, one update per step)");
        return;
    }
    double gflops = 1e-9 * r->step_flops / r->seconds;
    printf("%-31s %2d %10.4f %10.1f %10.4f %7.1f%% %9.4f %8.1f %6.1f%% %9.4f %9.4f %8.2e %8.2e "
           "%s\n",
           w->name, threads, 1e3 * r->seconds, 1.0 / r->seconds, 1e3 * r->ceiling_seconds,
           100.0 * r->ceiling_seconds / r->seconds, 1e3 * r->sum_alone_seconds, gflops, peak > 0 ? 100.0 * gflops / peak : 0.0,
           1e3 * r->replay.reorder_seconds, 1e3 * r->optimizer_seconds, r->loss_diff, r->grad_diff,
           r->arena_steady ? "steady" : "GROWS");
    printf("    primitives:");
    for (int k = 0; k < r->replay.num_kinds; k++)
        printf(" %s %d x = %.3f ms;", dnnl_prim_kind2str(r->replay.kinds[k].kind),
               r->replay.kinds[k].calls, 1e3 * r->replay.kinds[k].seconds);
    printf("\n");
}

/* Bytes of a replay of 84x84x4 uint8 observations (tsr_replay_memory_bytes;
 * the storage is allocated but never touched) against the bytes of its
 * distinct frames: one new 84x84 frame per step when stacks overlap. 1M steps
 * first; when that cannot be allocated (28 GB on a 24 GB machine), the
 * library's message is printed and 100k steps are measured instead. */
static int replay_memory(bool json)
{
    const int64_t capacities[2] = {1000000, 100000};
    for (int i = 0; i < 2; i++) {
        tsr_replay_options ro = {.capacity = capacities[i], .obs_ndim = 3,
                                 .obs_shape = {84, 84, 4}, .obs_dtype = TSR_DTYPE_U8,
                                 .n_step = 1, .gamma = 0.99};
        tsr_replay *rp;
        tsr_error err;
        if (tsr_replay_new(&rp, &ro, 1, &err) != TSR_STATUS_OK) {
            if (json)
                printf("{\"workload\": \"replay_memory\", \"capacity\": %lld, "
                       "\"error\": \"%s\"}\n", (long long)capacities[i], err.message);
            else
                printf("replay of %lld 84x84x4 uint8 steps: %s\n", (long long)capacities[i],
                       err.message);
            continue;
        }
        size_t bytes = tsr_replay_memory_bytes(rp);
        tsr_replay_free(rp);
        double frames = 84.0 * 84.0 * (double)capacities[i];
        if (json)
            printf("{\"workload\": \"replay_memory\", \"capacity\": %lld, \"bytes\": %zu, "
                   "\"distinct_frame_bytes\": %.0f, \"ratio\": %.4f}\n",
                   (long long)capacities[i], bytes, frames, (double)bytes / frames);
        else
            printf("replay of %lld 84x84x4 uint8 steps: %zu bytes (%.3f GB); its distinct 84x84 "
                   "frames %.3f GB: %.3fx (target <= 1.05x)\n",
                   (long long)capacities[i], bytes, 1e-9 * (double)bytes, 1e-9 * frames,
                   (double)bytes / frames);
        return 0;
    }
    return 1;
}

/* ==== main ================================================================= */

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_workloads [--workloads LIST] [--threads LIST] [--reps N] [--e2e-steps N]\n"
            "                       [--configs DIR] [--json] [--peak] [--replay-memory]\n"
            "                       [--profile N] [--calls] [--skip-check]\n"
            "  --workloads  comma-separated, from:");
    for (int i = 0; i < NUM_WORKLOADS; i++) fprintf(stderr, " %s", workloads[i].name);
    fprintf(stderr,
            "\n               or none (default: all)\n"
            "  --threads    OpenMP thread counts, e.g. 1,2 (default 1,2)\n"
            "  --reps       timed runs, the median is reported (default 15, 3 to %d)\n"
            "  --e2e-steps  agent steps per runner iteration of minatar_e2e (default 10000)\n"
            "  --configs    the configs folder (default %s)\n"
            "  --json       one JSON object per result line\n"
            "  --peak       also measure the FMA-loop FP32 peak per thread count\n"
            "  --replay-memory  also report the bytes of an 84x84x4 uint8 replay\n"
            "  --profile N  only run N calls of each workload after warm-up (for perf)\n"
            "  --calls      list every replayed primitive call\n"
            "  --skip-check no oneDNN vs reference check (for repeated measurements)\n",
            MAX_REPS, TSR_CONFIGS_DIR);
    return 2;
}

static bool parse_workloads(char *text, options *o)
{
    memset(o->selected, 0, sizeof o->selected);
    if (!strcmp(text, "none")) return true; /* only --peak / --replay-memory */
    bool any = false;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
        int i = 0;
        while (i < NUM_WORKLOADS && strcmp(workloads[i].name, tok)) i++;
        if (i == NUM_WORKLOADS) {
            fprintf(stderr, "bench_workloads: unknown workload '%s'\n", tok);
            return false;
        }
        o->selected[i] = any = true;
    }
    return any;
}

int main(int argc, char **argv)
{
    options o = {.reps = 15, .threads = {1, 2}, .num_thread_counts = 2, .e2e_steps = 10000,
                 .configs_dir = TSR_CONFIGS_DIR};
    for (int i = 0; i < NUM_WORKLOADS; i++) o.selected[i] = true;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        long long v;
        if (!strcmp(argv[i], "--json")) {
            o.json = true;
        } else if (!strcmp(argv[i], "--peak")) {
            o.peak = true;
        } else if (!strcmp(argv[i], "--skip-check")) {
            o.skip_check = true;
        } else if (!strcmp(argv[i], "--calls")) {
            o.list_calls = true;
        } else if (!strcmp(argv[i], "--replay-memory")) {
            o.replay_memory = true;
        } else if (bench_int_option(PROG, argc, argv, &i, "--reps", 3, MAX_REPS, &v)) {
            o.reps = (int)v;
        } else if (bench_int_option(PROG, argc, argv, &i, "--e2e-steps", 1000, 1LL << 40, &v)) {
            o.e2e_steps = v;
        } else if (bench_threads_option(PROG, argc, argv, &i, o.threads, &o.num_thread_counts,
                                        MAX_THREAD_COUNTS)) {
        } else if (!strcmp(argv[i], "--workloads") && has_value &&
                   parse_workloads(argv[i + 1], &o)) {
            i++;
        } else if (bench_int_option(PROG, argc, argv, &i, "--profile", 1, 1LL << 40, &v)) {
            o.profile_calls = v;
        } else if (!strcmp(argv[i], "--configs") && has_value) {
            o.configs_dir = argv[++i];
        } else {
            return usage();
        }
    }

    double peaks[MAX_THREAD_COUNTS] = {0};
    if (o.peak) {
        for (int t = 0; t < o.num_thread_counts; t++) {
            const char *isa;
            peaks[t] = fma_peak(o.threads[t], o.reps, &isa);
            if (o.json)
                printf("{\"workload\": \"fma_peak\", \"threads\": %d, \"gflops\": %.2f, "
                       "\"isa\": \"%s\"}\n", o.threads[t], peaks[t], isa);
            else
                printf("FP32 peak (FMA loop, %s): %d thread%s %.1f GFLOP/s\n", isa, o.threads[t],
                       o.threads[t] > 1 ? "s" : "", peaks[t]);
        }
    }
    if (o.replay_memory && replay_memory(o.json)) return 1;
    if (!o.json) {
        printf("\ntessera workloads: median of %d after warm-up; ceiling = the oneDNN compute "
               "primitives of one step back to back + the optimizer step;\nalone = the same "
               "primitives and the optimizer each timed alone, summed;\n"
               "step FLOPs = 4 x forward (acting: 1 x); check = max |oneDNN - reference| / max "
               "|reference| of the per-sample losses and of the gradients\n\n",
               o.reps);
        printf("%-31s %2s %10s %10s %10s %8s %9s %8s %7s %9s %9s %8s %8s %s\n", "workload", "T",
               "ms", "per s", "ceiling ms", "ceil/ms", "alone ms", "GFLOP/s", "peak", "reorder",
               "optim", "check l", "check g", "arena");
    }
    int status = 0;
    for (int i = 0; i < NUM_WORKLOADS && !status; i++) {
        if (!o.selected[i]) continue;
        const workload *w = &workloads[i];
        for (int t = 0; t < o.num_thread_counts && !status; t++) {
            result r = {0};
            status = w->kind == KIND_RUN ? run_e2e(&o, w, o.threads[t], &r)
                                         : run_step_or_act(&o, w, o.threads[t], &r);
            if (status) break;
            if (o.json)
                print_json(w, o.threads[t], &r);
            else
                print_text(w, o.threads[t], &r, peaks[t]);
            fflush(stdout);
        }
    }
    return status;
}
