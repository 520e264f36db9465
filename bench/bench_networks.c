/* bench_networks.c — one training-style forward + backward of whole networks.
 *
 * For each network config given: the network built by tsr_network_init for
 * uint8 observations (default 84x84x4, scaled by 1/255 inside the network), 6
 * actions, scalar Q-values; a batch of random observations and actions; then
 * the step that a DQN update differentiates, without the target network and
 * the optimizer:
 *
 *   Q = forward(obs) with recording on -> loss = mean_n Q[n, action[n]]
 *   (tsr_gather_actions + tsr_mean_all) -> tsr_backward(loss)
 *
 * timed as the median of N runs after warm-up. FLOPs: the forward's come from
 * the layers' summary rows (tsr_ctx_set_summary, a multiply-add counted as
 * two); forward + backward is counted as 3x the forward, the usual convention
 * (backward-data and backward-weights each cost about one forward; the first
 * conv in fact skips backward-data, so the true count is a little lower).
 *
 * Before timing, each network's oneDNN path is checked against the plain-C
 * reference backend on one batch: the Q-values and the whole gradient block,
 * each as max |oneDNN - reference| / max |reference|. A Q-value difference
 * above 1e-3 aborts.
 *
 *   bench_networks [--batch N] [--threads LIST] [--reps N] [--input HxWxC] [--json]
 *                  CONFIG...
 *
 * LIST is like 1,2 (default 1). With --json each result is one JSON object
 * per line (bench/compare_networks.py reads them); otherwise one text line.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "tessera/tessera.h"

#define PROG "bench_networks" /* prefix of command-line errors */

enum { MAX_THREAD_COUNTS = 8, NUM_ACTIONS = 6, WARMUP_STEPS = 5, MAX_REPS = 64 };

static const double max_q_rel_diff = 1e-3;

typedef struct options {
    int64_t batch;
    int reps;
    int threads[MAX_THREAD_COUNTS];
    int num_thread_counts;
    tsr_image_shape input;
    bool json;
} options;

/* ==== the step ============================================================ */

/* One network's benchmark state. obs and actions live outside the arena; q is
 * the last step's Q-values (arena, valid until the next step). */
typedef struct step_case {
    tsr_ctx *ctx;
    tsr_network *net;
    tsr_tensor *obs;     /* (N, H, W, C) uint8 */
    tsr_tensor *actions; /* (N) int32 */
    tsr_rng noise_rng;   /* redrawn from the same seed every step */
    tsr_noise noise;
    tsr_tensor *q;       /* (N, A) */
} step_case;

static void train_step(void *user)
{
    step_case *s = user;
    tsr_ctx_begin_step(s->ctx);
    tsr_ctx_set_grad(s->ctx, true);
    tsr_rng_init(&s->noise_rng, 7, TSR_RNG_STREAM_NOISE);
    s->q = tsr_network_forward(s->net, s->ctx, s->obs, &s->noise);
    tsr_tensor *loss = tsr_mean_all(s->ctx, tsr_gather_actions(s->ctx, s->q, s->actions));
    tsr_backward(s->ctx, loss);
}

/* max |a - b| / max |b|: the worst difference relative to the reference's
 * largest magnitude (element-wise ratios blow up for values near zero). */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return scale > 0.0 ? worst / scale : worst;
}

/* Q-values and settled gradients of one step on `backend`, copied into q
 * (N*A floats) and grads (the block's numel floats). */
static void step_on(step_case *s, tsr_backend backend, float *q, float *grads)
{
    tsr_ctx_set_backend(s->ctx, backend);
    train_step(s);
    tsr_params_settle_grads(&s->net->params, tsr_ctx_epoch(s->ctx));
    memcpy(q, tsr_f32(s->q), (size_t)tsr_tensor_numel(s->q) * sizeof *q);
    memcpy(grads, tsr_params_grads_f32(&s->net->params), s->net->params.numel * sizeof *grads);
    tsr_ctx_set_backend(s->ctx, TSR_BACKEND_DNNL);
}

/* ==== one network ========================================================= */

typedef struct result {
    double seconds;          /* median forward + backward */
    double forward_flops;    /* summary rows, whole batch */
    int64_t params;
    double q_diff, grad_diff; /* oneDNN vs reference */
    bool arena_steady;       /* no arena allocation after warm-up */
} result;

static void network_name(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".ini")) *dot = '\0';
}

static int run_network(const options *o, const tsr_network_config *cfg, int threads, result *r)
{
    omp_set_num_threads(threads);
    tsr_network net;
    tsr_error err;
    if (tsr_network_init(&net, cfg, o->input, NUM_ACTIONS, 1, 1.0f / 255, TSR_DTYPE_F32, &err) !=
        TSR_STATUS_OK) {
        fprintf(stderr, "bench_networks: %s\n", err.message);
        return 1;
    }
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_network_reset(&net, &rng);

    step_case s = {.ctx = tsr_ctx_new(NULL), .net = &net};
    s.noise = (tsr_noise){.rng = &s.noise_rng, .means_only = false};
    s.obs = tsr_tensor_new(TSR_DTYPE_U8, 4, TSR_SHAPE(o->batch, o->input.h, o->input.w, o->input.c));
    s.actions = tsr_tensor_new(TSR_DTYPE_I32, 1, TSR_SHAPE(o->batch));
    tsr_rng data;
    tsr_rng_init(&data, 2, TSR_RNG_STREAM_REPLAY);
    for (int64_t i = 0; i < tsr_tensor_numel(s.obs); i++)
        tsr_u8(s.obs)[i] = (uint8_t)tsr_rng_below(&data, 256);
    for (int64_t i = 0; i < o->batch; i++)
        tsr_i32(s.actions)[i] = (int32_t)tsr_rng_below(&data, NUM_ACTIONS);

    /* The check, with the forward's summary rows collected on the oneDNN step. */
    size_t nq = (size_t)(o->batch * NUM_ACTIONS), ng = net.params.numel;
    float *q_dnnl = tsr_malloc(nq * sizeof *q_dnnl), *q_ref = tsr_malloc(nq * sizeof *q_ref);
    float *g_dnnl = tsr_malloc(ng * sizeof *g_dnnl), *g_ref = tsr_malloc(ng * sizeof *g_ref);
    tsr_summary summary = {0};
    tsr_ctx_set_summary(s.ctx, &summary);
    step_on(&s, TSR_BACKEND_DNNL, q_dnnl, g_dnnl);
    tsr_ctx_set_summary(s.ctx, NULL);
    step_on(&s, TSR_BACKEND_REFERENCE, q_ref, g_ref);
    r->q_diff = rel_diff(q_dnnl, q_ref, nq);
    r->grad_diff = rel_diff(g_dnnl, g_ref, ng);
    r->forward_flops = 0;
    for (int i = 0; i < summary.count; i++) r->forward_flops += summary.rows[i].flops;
    r->params = tsr_params_count(&net.params);
    tsr_summary_fini(&summary);
    tsr_free(q_dnnl);
    tsr_free(q_ref);
    tsr_free(g_dnnl);
    tsr_free(g_ref);

    int status = 0;
    if (!(r->q_diff <= max_q_rel_diff)) {
        fprintf(stderr,
                "bench_networks: oneDNN and reference Q-values differ by %.3g (relative, max %.0e)\n",
                r->q_diff, max_q_rel_diff);
        status = 1;
    } else {
        r->seconds = bench_time(train_step, &s, WARMUP_STEPS, o->reps, 1);
        uint64_t allocs = tsr_arena_system_allocations(tsr_ctx_arena(s.ctx));
        for (int i = 0; i < 3; i++) train_step(&s);
        r->arena_steady = tsr_arena_system_allocations(tsr_ctx_arena(s.ctx)) == allocs;
    }
    tsr_tensor_free(s.obs);
    tsr_tensor_free(s.actions);
    tsr_ctx_free(s.ctx);
    tsr_network_fini(&net);
    return status;
}

/* ==== main ================================================================ */

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_networks [--batch N] [--threads LIST] [--reps N] [--input HxWxC] [--json]\n"
            "                      CONFIG...\n"
            "  --batch    batch size (default 32)\n"
            "  --threads  OpenMP thread counts, e.g. 1,2 (default 1)\n"
            "  --reps     timed runs, the median is reported (default 15, at most %d)\n"
            "  --input    uint8 observation shape (default 84x84x4)\n"
            "  --json     one JSON object per result line\n",
            MAX_REPS);
    return 2;
}

int main(int argc, char **argv)
{
    options o = {.batch = 32, .reps = 15, .threads = {1}, .num_thread_counts = 1,
                 .input = {84, 84, 4}};
    char **configs = calloc((size_t)argc, sizeof *configs);
    int num_configs = 0;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        long long v;
        if (!strcmp(argv[i], "--json")) {
            o.json = true;
        } else if (bench_int_option(PROG, argc, argv, &i, "--batch", 1, 1 << 20, &v)) {
            o.batch = v;
        } else if (bench_int_option(PROG, argc, argv, &i, "--reps", 3, MAX_REPS, &v)) {
            o.reps = (int)v;
        } else if (bench_threads_option(PROG, argc, argv, &i, o.threads, &o.num_thread_counts,
                                        MAX_THREAD_COUNTS)) {
        } else if (!strcmp(argv[i], "--input") && has_value) {
            long long h, w, c;
            char tail;
            if (sscanf(argv[++i], "%lldx%lldx%lld%c", &h, &w, &c, &tail) != 3 || h < 1 || w < 1 ||
                c < 1) {
                fprintf(stderr, "bench_networks: --input '%s' is not HxWxC (e.g. 84x84x4)\n", argv[i]);
                free(configs);
                return 2;
            }
            o.input = (tsr_image_shape){h, w, c};
        } else if (argv[i][0] != '-') {
            configs[num_configs++] = argv[i];
        } else {
            free(configs);
            return usage();
        }
    }
    if (!num_configs) {
        free(configs);
        return usage();
    }

    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    if (!o.json) {
        printf("tessera network benchmark: forward (recording) + mean Q of the taken actions + "
               "backward,\nuint8 input %lldx%lldx%lld / 255, %d actions, batch %lld, median of %d "
               "runs after %d warm-up;\nfwd+bwd FLOPs = 3 x forward (convention); check = max |oneDNN"
               " - reference| / max |reference|\n\n",
               (long long)o.input.h, (long long)o.input.w, (long long)o.input.c, NUM_ACTIONS,
               (long long)o.batch, o.reps, WARMUP_STEPS);
        printf("%-32s %2s %5s %10s %8s %10s %10s %9s %9s %s\n", "network", "T", "batch",
               "ms", "GFLOP/s", "params", "fwd GFLOP", "check q", "check dw", "arena");
    }
    int status = 0;
    for (int c = 0; c < num_configs && !status; c++) {
        tsr_run_config cfg;
        tsr_error err;
        if (tsr_run_config_load(&schema, &cfg, configs[c], NULL, 0, &err) != TSR_STATUS_OK) {
            fprintf(stderr, "bench_networks: %s\n", err.message);
            status = 1;
            break;
        }
        char name[256];
        network_name(configs[c], name, sizeof name);
        for (int t = 0; t < o.num_thread_counts && !status; t++) {
            result r = {0};
            status = run_network(&o, &cfg.network, o.threads[t], &r);
            if (status) break;
            double flops = 3.0 * r.forward_flops;
            if (o.json) {
                printf("{\"network\": \"%s\", \"config\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                       "\"ms\": %.4f, \"gflops\": %.3f, \"params\": %lld, \"forward_flops\": %.0f, "
                       "\"q_rel_diff\": %.3g, \"grad_rel_diff\": %.3g, \"arena_steady\": %s}\n",
                       name, configs[c], o.threads[t], (long long)o.batch, 1e3 * r.seconds,
                       1e-9 * flops / r.seconds, (long long)r.params, r.forward_flops, r.q_diff,
                       r.grad_diff, r.arena_steady ? "true" : "false");
            } else {
                printf("%-32s %2d %5lld %10.3f %8.2f %10lld %10.3f %9.2e %9.2e %s\n", name,
                       o.threads[t], (long long)o.batch, 1e3 * r.seconds, 1e-9 * flops / r.seconds,
                       (long long)r.params, 1e-9 * r.forward_flops, r.q_diff, r.grad_diff,
                       r.arena_steady ? "steady" : "GROWS");
            }
            fflush(stdout);
        }
    }
    free(configs);
    return status;
}
