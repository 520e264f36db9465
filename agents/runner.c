/* runner.c — iterations of training and evaluation episodes (Dopamine's
 * Runner: a phase runs whole episodes until it has taken at least its number
 * of steps), and the per-iteration metric files. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "tessera/agent.h"
#include "tessera/status.h"

enum { RECENT_EPISODES = 100 };

struct tsr_runner {
    tsr_run_config cfg;
    bool training;
    tsr_env env, eval_env;
    tsr_env_spec spec;
    tsr_agent *agent;
    void *obs;               /* one observation */
    int64_t iteration;       /* iterations run */
    int64_t total_steps, total_episodes;
    double recent[RECENT_EPISODES];
    int64_t recent_count;    /* episodes recorded in `recent`, ever */
    double start;
    tsr_progress_fn progress;
    void *progress_user;
    int64_t progress_every;
    const volatile sig_atomic_t *stop_flag;
    bool stop;
};

/* Subnormal floats run about a hundred times slower on x86. Optimizer
 * moments of weights whose gradient is mostly zero (MinAtar's sparse
 * planes) decay geometrically into them within a few thousand updates, which
 * made centred RMSProp half of a MinAtar DQN step. Flush-to-zero and
 * denormals-are-zero (MXCSR bits 15 and 6) are per thread: set them on the
 * calling thread and on every OpenMP worker. */
void tsr_flush_denormals(void)
{
#if defined(__x86_64__) || defined(__i386__)
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040u);
    _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

tsr_status tsr_runner_new(tsr_runner **out, const tsr_run_config *cfg, bool training,
                          tsr_error *err)
{
    *out = NULL;
    tsr_env_game game;
    tsr_env_options options;
    tsr_status st = tsr_run_config_env(cfg, &game, &options, err);
    if (st != TSR_STATUS_OK) return st;
    /* Exactly run.threads in every team: with OMP_DYNAMIC the runtime may
     * shrink teams by the load, and OMP_THREAD_LIMIT may cap them; either
     * would change how work and sums are split, so the run would no longer
     * be reproducible from its seed and thread count. */
    omp_set_dynamic(0);
    omp_set_num_threads((int)cfg->run.threads);
    if (cfg->run.threads > omp_get_thread_limit())
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "run.threads = %lld, but OMP_THREAD_LIMIT allows at most %d: a run "
                             "must have the threads its config says",
                             (long long)cfg->run.threads, omp_get_thread_limit());
    if (cfg->run.flush_denormals) tsr_flush_denormals();
    tsr_runner *r = tsr_calloc(1, sizeof *r);
    r->cfg = *cfg;
    r->training = training;
    uint64_t seed = (uint64_t)cfg->run.seed;
    /* The evaluation env has its own seed, drawn from its own stream, so its
     * dynamics and sticky actions never share draws with training. */
    tsr_rng seeder;
    tsr_rng_init(&seeder, seed, TSR_RNG_STREAM_EVAL_ENV_SEED);
    uint64_t eval_seed = tsr_rng_u64(&seeder);
    st = tsr_env_init(&r->env, game, &options, seed, err);
    if (st == TSR_STATUS_OK) st = tsr_env_init(&r->eval_env, game, &options, eval_seed, err);
    if (st == TSR_STATUS_OK) {
        r->spec = tsr_env_get_spec(&r->env);
        st = tsr_agent_new(&r->agent, cfg, &r->spec, tsr_run_expected_updates(cfg), training, err);
    }
    if (st != TSR_STATUS_OK) {
        tsr_free(r);
        return st;
    }
    r->obs = tsr_calloc(1, r->spec.obs_bytes);
    r->progress_every = 1000;
    r->start = seconds_now();
    *out = r;
    return TSR_STATUS_OK;
}

void tsr_runner_free(tsr_runner *r)
{
    if (!r) return;
    tsr_agent_free(r->agent);
    tsr_free(r->obs);
    tsr_free(r);
}

void tsr_runner_set_progress(tsr_runner *r, tsr_progress_fn fn, void *user, int64_t every)
{
    TSR_ASSERT_MSG(every >= 1, "progress every %lld steps", (long long)every);
    r->progress = fn;
    r->progress_user = user;
    r->progress_every = every;
}

void tsr_runner_set_stop_flag(tsr_runner *r, const volatile sig_atomic_t *flag)
{
    r->stop_flag = flag;
}

/* Whether the run is to stop (after the current episode). */
static bool stopping(tsr_runner *r)
{
    if (r->stop_flag && *r->stop_flag) r->stop = true;
    return r->stop;
}

tsr_agent *tsr_runner_agent(tsr_runner *r) { return r->agent; }
const tsr_env_spec *tsr_runner_env_spec(const tsr_runner *r) { return &r->spec; }

static double recent_return(const tsr_runner *r)
{
    int64_t n = r->recent_count < RECENT_EPISODES ? r->recent_count : RECENT_EPISODES;
    if (n == 0) return NAN;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += r->recent[i];
    return sum / (double)n;
}

/* One episode on `env`; returns its return and adds its length to *steps.
 * In training, reports progress every progress_every steps of the phase. */
static double run_episode(tsr_runner *r, tsr_env *env, bool training, int64_t *steps,
                          int64_t phase_start)
{
    tsr_agent *agent = r->agent;
    tsr_env_reset(env);
    tsr_env_observe(env, r->obs);
    int32_t action = tsr_agent_begin_episode(agent, r->obs);
    double total = 0.0;
    int64_t length = 0;
    for (;;) {
        tsr_env_step_result res = tsr_env_step(env, action);
        length++;
        total += res.reward;
        if (training) {
            r->total_steps++;
            if (r->progress && (r->total_steps - phase_start) % r->progress_every == 0) {
                tsr_progress p = {
                    .iteration = r->iteration + 1,
                    .iterations = r->cfg.run.iterations,
                    .iteration_steps = *steps + length,
                    .training_steps = r->cfg.run.training_steps,
                    .total_steps = r->total_steps,
                    .episodes = r->total_episodes,
                    .recent_return = recent_return(r),
                    .elapsed = seconds_now() - r->start,
                };
                if (!r->progress(r->progress_user, &p)) r->stop = true;
            }
        }
        bool truncated = res.truncated || length == r->cfg.run.max_episode_steps;
        if (res.terminated || truncated) {
            tsr_agent_end_episode(agent, res.reward, res.terminated);
            break;
        }
        tsr_env_observe(env, r->obs);
        action = tsr_agent_step(agent, res.reward, r->obs);
    }
    *steps += length;
    return total;
}

double tsr_runner_evaluate(tsr_runner *r, int64_t episodes, double *returns)
{
    tsr_agent_set_eval_mode(r->agent, true);
    double sum = 0.0;
    int64_t done = 0;
    for (; done < episodes && !stopping(r); done++) {
        int64_t steps = 0;
        double ret = run_episode(r, &r->eval_env, false, &steps, 0);
        if (returns) returns[done] = ret;
        sum += ret;
    }
    if (r->training) tsr_agent_set_eval_mode(r->agent, false);
    for (int64_t i = done; returns && i < episodes; i++) returns[i] = NAN; /* not played */
    return done > 0 ? sum / (double)done : NAN;
}

bool tsr_runner_run_iteration(tsr_runner *r, tsr_iteration_metrics *m, tsr_error *err)
{
    TSR_ASSERT_MSG(r->training, "tsr_runner_run_iteration needs a training runner");
    const tsr_run_options *o = &r->cfg.run;
    double start = seconds_now();
    int64_t phase_start = r->total_steps, steps = 0, episodes = 0;
    double return_sum = 0.0;
    tsr_agent_take_stats(r->agent);
    while (steps < o->training_steps && !stopping(r)) {
        double ret = run_episode(r, &r->env, true, &steps, phase_start);
        return_sum += ret;
        episodes++;
        r->total_episodes++;
        r->recent[r->recent_count++ % RECENT_EPISODES] = ret;
    }
    double train_seconds = seconds_now() - start;
    tsr_agent_stats stats = tsr_agent_take_stats(r->agent);
    tsr_agent_counters counters = tsr_agent_get_counters(r->agent);
    r->iteration++;

    memset(m, 0, sizeof *m);
    m->iteration = r->iteration;
    m->agent_steps = r->total_steps;
    m->gradient_updates = counters.updates;
    m->episodes = r->total_episodes;
    m->iteration_episodes = episodes;
    m->train_return = episodes ? return_sum / (double)episodes : NAN;
    m->recent_return = recent_return(r);
    m->loss = stats.updates ? stats.loss_sum / (double)stats.updates : NAN;
    m->mean_q = stats.updates ? stats.q_sum / (double)stats.updates : NAN;
    m->steps_per_second = train_seconds > 0 ? (double)steps / train_seconds : NAN;
    tsr_status st = tsr_agent_health(r->agent, o->dormant_threshold, &m->sparsity,
                                     &m->dormant_fraction, &m->head_dormant_fraction, err);
    if (st != TSR_STATUS_OK) {
        /* A diverged network (non-finite features) is reported, not fatal. */
        m->dormant_fraction = m->head_dormant_fraction = NAN;
    }
    m->eval_return = o->evaluation_episodes > 0 && !r->stop
                         ? tsr_runner_evaluate(r, o->evaluation_episodes, NULL)
                         : NAN;
    if (r->stop) m->eval_return = NAN; /* stopped during the evaluation: not a mean over all */
    m->seconds = seconds_now() - start;
    return !r->stop;
}

/* ==== checkpoints ============================================================ */

/* One environment: its whole state as the C struct's bytes (what
 * tsr_env_state_restore checks and takes), plus, for readers of the file,
 * the sticky-action memory and both streams as plain values, which are read
 * back over the restored struct and so must agree with it. */
static void env_checkpoint(tsr_ckpt *c, tsr_env *env, const char *name)
{
    char path[256];
    size_t size = tsr_env_state_size(env);
    uint8_t *bytes = tsr_malloc(size);
    bool writing = tsr_ckpt_writing(c);
    tsr_env_game game = env->game;
    if (writing) memcpy(bytes, tsr_env_state_bytes(env), size);
    snprintf(path, sizeof path, "env/%s/state", name);
    tsr_ckpt_array(c, path, TSR_CKPT_U8, 1, TSR_SHAPE((int64_t)size), bytes, 0);
    if (!writing && tsr_ckpt_status(c) == TSR_STATUS_OK) {
        tsr_error err;
        if (tsr_env_state_restore(env, bytes, size, &err) != TSR_STATUS_OK)
            tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s: %s", path, err.message);
        else if (env->game != game)
            tsr_ckpt_fail(c, TSR_STATUS_FORMAT,
                          "%s is the state of another game than this run's env.name", path);
    }
    tsr_free(bytes);
    /* Also inside the state (checked there); a dataset of its own for
     * readers of the file, which must agree with it. */
    int64_t previous_action = env->previous_action;
    snprintf(path, sizeof path, "env/%s/previous_action", name);
    tsr_ckpt_i64(c, path, &previous_action);
    if (!writing && tsr_ckpt_status(c) == TSR_STATUS_OK && previous_action != env->previous_action)
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s = %lld disagrees with the environment state's %d",
                      path, (long long)previous_action, (int)env->previous_action);
    snprintf(path, sizeof path, "rng/%s_env", name);
    tsr_ckpt_rng(c, path, &env->rng);
    snprintf(path, sizeof path, "rng/%s_sticky", name);
    tsr_ckpt_rng(c, path, &env->sticky_rng);
}

static void runner_checkpoint(tsr_runner *r, tsr_ckpt *c, bool with_replay, bool *replay_restored)
{
    tsr_ckpt_i64(c, "counters/iteration", &r->iteration);
    tsr_ckpt_i64(c, "counters/agent_steps", &r->total_steps);
    tsr_ckpt_i64(c, "counters/episodes", &r->total_episodes);
    tsr_ckpt_array(c, "runner/recent_returns", TSR_CKPT_F64, 1, TSR_SHAPE(RECENT_EPISODES),
                   r->recent, 0);
    tsr_ckpt_i64(c, "runner/recent_count", &r->recent_count);
    env_checkpoint(c, &r->env, "train");
    env_checkpoint(c, &r->eval_env, "eval");
    tsr_agent_checkpoint(r->agent, c, with_replay, replay_restored);
}

/* The resolved config as INI text (a new string). */
static char *config_text(const tsr_run_config *cfg)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    TSR_ASSERT_MSG(f, "open_memstream failed");
    tsr_config_write(&schema.schema, cfg, f);
    fclose(f);
    char *copy = tsr_malloc(size + 1);
    memcpy(copy, text, size + 1);
    free(text);
    return copy;
}

tsr_status tsr_runner_save_checkpoint(tsr_runner *r, const char *path, bool with_replay,
                                      tsr_error *err)
{
    TSR_ASSERT_MSG(r->training, "checkpoints hold training runs");
    tsr_ckpt *c;
    tsr_status st = tsr_ckpt_create(&c, path, err);
    if (st != TSR_STATUS_OK) return st;
    char *text = config_text(&r->cfg);
    tsr_ckpt_text(c, "config", &text);
    tsr_free(text);
    runner_checkpoint(r, c, with_replay, NULL);
    return tsr_ckpt_close(c);
}

tsr_status tsr_runner_load_checkpoint(tsr_runner *r, const char *path, bool *replay_restored,
                                      tsr_error *err)
{
    TSR_ASSERT_MSG(r->training, "checkpoints hold training runs");
    tsr_ckpt *c;
    tsr_status st = tsr_ckpt_open(&c, path, err);
    if (st != TSR_STATUS_OK) return st;
    runner_checkpoint(r, c, true, replay_restored);
    st = tsr_ckpt_close(c);
    if (st == TSR_STATUS_OK && (r->iteration < 0 || r->recent_count < 0))
        st = tsr_error_set(err, TSR_STATUS_FORMAT, "checkpoint %s: negative counters", path);
    return st;
}

int64_t tsr_runner_iteration(const tsr_runner *r) { return r->iteration; }
const tsr_env *tsr_runner_env(const tsr_runner *r, bool evaluation)
{
    return evaluation ? &r->eval_env : &r->env;
}

/* ==== metric files ========================================================== */

static void csv_number(FILE *out, double v, bool last)
{
    if (isfinite(v)) fprintf(out, "%.9g", v);
    fputs(last ? "\n" : ",", out);
}

static void json_number(FILE *out, const char *key, double v, bool last)
{
    if (isfinite(v)) fprintf(out, "\"%s\": %.9g", key, v);
    else fprintf(out, "\"%s\": null", key);
    fputs(last ? "}\n" : ", ", out);
}

void tsr_metrics_write_csv_header(FILE *out)
{
    fputs("iteration,agent_steps,gradient_updates,episodes,train_return,loss,mean_q,sparsity,"
          "dormant_fraction,steps_per_second,eval_return,seconds,head_dormant_fraction,"
          "recent_return\n",
          out);
}

void tsr_metrics_write_csv_row(FILE *out, const tsr_iteration_metrics *m)
{
    fprintf(out, "%lld,%lld,%lld,%lld,", (long long)m->iteration, (long long)m->agent_steps,
            (long long)m->gradient_updates, (long long)m->episodes);
    csv_number(out, m->train_return, false);
    csv_number(out, m->loss, false);
    csv_number(out, m->mean_q, false);
    csv_number(out, m->sparsity, false);
    csv_number(out, m->dormant_fraction, false);
    csv_number(out, m->steps_per_second, false);
    csv_number(out, m->eval_return, false);
    csv_number(out, m->seconds, false);
    /* Columns added later go last: a run resumed from an older tessera's
     * files keeps the columns it had where they were. */
    csv_number(out, m->head_dormant_fraction, false);
    csv_number(out, m->recent_return, true);
}

void tsr_metrics_write_json(FILE *out, const tsr_iteration_metrics *m)
{
    fprintf(out, "{\"iteration\": %lld, \"agent_steps\": %lld, \"gradient_updates\": %lld, "
                 "\"episodes\": %lld, ",
            (long long)m->iteration, (long long)m->agent_steps, (long long)m->gradient_updates,
            (long long)m->episodes);
    json_number(out, "train_return", m->train_return, false);
    json_number(out, "loss", m->loss, false);
    json_number(out, "mean_q", m->mean_q, false);
    json_number(out, "sparsity", m->sparsity, false);
    json_number(out, "dormant_fraction", m->dormant_fraction, false);
    json_number(out, "steps_per_second", m->steps_per_second, false);
    json_number(out, "eval_return", m->eval_return, false);
    json_number(out, "seconds", m->seconds, false);
    json_number(out, "head_dormant_fraction", m->head_dormant_fraction, false);
    json_number(out, "recent_return", m->recent_return, true);
}
