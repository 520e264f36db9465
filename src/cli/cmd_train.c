/* cmd_train.c — `tessera train CONFIG`: train an agent for the run config's
 * iterations, with a live progress line, per-iteration metrics and the final
 * parameters in a run directory. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "tessera/tessera.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: tessera train CONFIG [--set section.key=value ...] [--run-dir DIR]\n"
            "                     [--seed S] [--threads T] [--quiet]\n"
            "  CONFIG      an INI run config (e.g. configs/breakout/dqn.ini; '-' for the defaults)\n"
            "  --set       override one key (repeatable), e.g. --set run.iterations=2\n"
            "  --run-dir   where config.ini, metrics.csv, metrics.jsonl and params.bin go\n"
            "              (default runs/<config>-s<seed>-<date>-<time>)\n"
            "  --seed      run.seed (every random stream derives from it)\n"
            "  --threads   run.threads (OpenMP threads)\n"
            "  --quiet     do not print the resolved config\n");
    return 2;
}

/* ---- progress ------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int signal_number)
{
    (void)signal_number;
    interrupted = 1;
}

typedef struct progress_state {
    bool terminal;     /* stderr is a terminal: one line redrawn in place */
    double last_draw;  /* elapsed seconds of the last redraw */
    int64_t log_every; /* steps between plain lines otherwise */
    int64_t next_log;
    int64_t total;     /* iterations x training_steps */
    bool drawn;        /* a terminal line is showing */
} progress_state;

static void format_duration(double seconds, char *buf, size_t size)
{
    if (!isfinite(seconds) || seconds < 0) {
        snprintf(buf, size, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60) snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    else snprintf(buf, size, "%lds", s);
}

static bool on_progress(void *user, const tsr_progress *p)
{
    progress_state *st = user;
    if (st->terminal ? p->elapsed - st->last_draw < 0.25 : p->total_steps < st->next_log)
        return !interrupted;
    double rate = p->elapsed > 0 ? (double)p->total_steps / p->elapsed : 0;
    char eta[32], ret[32];
    int64_t left = st->total > p->total_steps ? st->total - p->total_steps : 0;
    format_duration(rate > 0 ? (double)left / rate : NAN, eta, sizeof eta);
    if (isfinite(p->recent_return)) snprintf(ret, sizeof ret, "%.2f", p->recent_return);
    else snprintf(ret, sizeof ret, "-");
    char line[256];
    snprintf(line, sizeof line,
             "iter %lld/%lld  steps %lld/%lld  %.0f steps/s  ETA %s  return %s (last 100 ep.)",
             (long long)p->iteration, (long long)p->iterations, (long long)p->total_steps,
             (long long)st->total, rate, eta, ret);
    if (st->terminal) {
        fprintf(stderr, "\r\033[K%s", line);
        st->last_draw = p->elapsed;
        st->drawn = true;
    } else {
        fprintf(stderr, "%s\n", line);
        while (st->next_log <= p->total_steps) st->next_log += st->log_every;
    }
    fflush(stderr);
    return !interrupted;
}

static void clear_progress(progress_state *st)
{
    if (st->terminal && st->drawn) {
        fprintf(stderr, "\r\033[K");
        st->drawn = false;
    }
}

/* ---- run directory ------------------------------------------------------- */

/* mkdir -p */
static bool make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return false;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    return mkdir(buf, 0777) == 0 || errno == EEXIST;
}

/* "configs/breakout/dqn.ini" -> "breakout_dqn", "dqn.ini" -> "dqn", NULL ->
 * "defaults": a run directory name. */
static void config_stem(const char *path, char *out, size_t size)
{
    if (!path) {
        snprintf(out, size, "defaults");
        return;
    }
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", path);
    char *file = strrchr(copy, '/');
    char *dir = NULL;
    if (file) {
        *file++ = '\0';
        dir = strrchr(copy, '/');
        dir = dir ? dir + 1 : copy;
    } else {
        file = copy;
    }
    char *dot = strrchr(file, '.');
    if (dot && dot != file) *dot = '\0';
    if (dir && *dir && strcmp(dir, ".") && strcmp(dir, "..") && strcmp(dir, "configs"))
        snprintf(out, size, "%.100s_%.100s", dir, file);
    else
        snprintf(out, size, "%.200s", file);
}

static FILE *open_in(const char *dir, const char *name, const char *mode, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    return fopen(path, mode);
}

/* ---- the command --------------------------------------------------------- */

int tsr_cmd_train(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return usage();
    const char *config_path = strcmp(argv[1], "-") ? argv[1] : NULL;
    const char *run_dir = NULL;
    bool quiet = false;
    char **overrides = calloc((size_t)argc + 2, sizeof *overrides);
    char seed_override[64], threads_override[64];
    int num_overrides = 0;
    for (int i = 2; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--set") && has_value) {
            overrides[num_overrides++] = argv[++i];
        } else if (!strcmp(argv[i], "--run-dir") && has_value) {
            run_dir = argv[++i];
        } else if (!strcmp(argv[i], "--seed") && has_value) {
            snprintf(seed_override, sizeof seed_override, "run.seed=%s", argv[++i]);
            overrides[num_overrides++] = seed_override;
        } else if (!strcmp(argv[i], "--threads") && has_value) {
            snprintf(threads_override, sizeof threads_override, "run.threads=%s", argv[++i]);
            overrides[num_overrides++] = threads_override;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else {
            fprintf(stderr, "tessera train: unknown or incomplete option '%s'\n\n", argv[i]);
            free(overrides);
            return usage();
        }
    }

    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    tsr_status st = tsr_run_config_load(&schema, &cfg, config_path, overrides, num_overrides, &err);
    free(overrides);
    if (st != TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        return 1;
    }

    char default_dir[512];
    if (!run_dir) {
        char stem[256], stamp[32];
        config_stem(config_path, stem, sizeof stem);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(default_dir, sizeof default_dir, "runs/%s-s%lld-%s", stem, (long long)cfg.run.seed,
                 stamp);
        run_dir = default_dir;
    }
    char path[4600];
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "tessera train: %s already holds a run (metrics.csv); choose another "
                        "--run-dir or remove it\n", run_dir);
        return 1;
    }
    if (!make_dirs(run_dir)) {
        fprintf(stderr, "tessera train: cannot create run directory %s: %s\n", run_dir,
                strerror(errno));
        return 1;
    }

    if (!quiet) {
        printf("# resolved config (saved as %s/config.ini)\n", run_dir);
        tsr_config_write(&schema.schema, &cfg, stdout);
        printf("\n");
    }
    FILE *f = open_in(run_dir, "config.ini", "w", path, sizeof path);
    if (!f) {
        fprintf(stderr, "tessera train: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f, "; resolved config of a tessera run: every key, bases and overrides applied\n");
    tsr_config_write(&schema.schema, &cfg, f);
    fclose(f);

    tsr_runner *runner;
    if (tsr_runner_new(&runner, &cfg, true, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        return 1;
    }
    tsr_agent *agent = tsr_runner_agent(runner);
    const tsr_env_spec *spec = tsr_runner_env_spec(runner);
    printf("run %s: %s agent on %s, %lld parameters, replay %s, %lld iterations x %lld steps, "
           "seed %lld, %lld thread%s\n",
           run_dir, tsr_agent_kind_names[cfg.agent.kind], spec->name,
           (long long)tsr_params_count(&tsr_agent_online(agent)->params),
           tsr_agent_replay_description(agent), (long long)cfg.run.iterations,
           (long long)cfg.run.training_steps, (long long)cfg.run.seed, (long long)cfg.run.threads,
           cfg.run.threads == 1 ? "" : "s");
    fflush(stdout);

    char csv_path[4600], json_path[4600];
    FILE *csv = open_in(run_dir, "metrics.csv", "w", csv_path, sizeof csv_path);
    FILE *json = open_in(run_dir, "metrics.jsonl", "w", json_path, sizeof json_path);
    if (!csv || !json) {
        fprintf(stderr, "tessera train: cannot write the metric files in %s: %s\n", run_dir,
                strerror(errno));
        if (csv) fclose(csv);
        if (json) fclose(json);
        tsr_runner_free(runner);
        return 1;
    }
    tsr_metrics_write_csv_header(csv);
    fflush(csv);

    progress_state progress = {
        .terminal = isatty(STDERR_FILENO),
        .log_every = cfg.run.log_every,
        .next_log = cfg.run.log_every,
        .total = cfg.run.iterations * cfg.run.training_steps,
    };
    tsr_runner_set_progress(runner, on_progress, &progress, 64);
    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous);

    int status = 0;
    bool stopped = false;
    for (int64_t i = 0; i < cfg.run.iterations && !stopped; i++) {
        tsr_iteration_metrics m;
        stopped = !tsr_runner_run_iteration(runner, &m, &err);
        clear_progress(&progress);
        tsr_metrics_write_csv_row(csv, &m);
        tsr_metrics_write_json(json, &m);
        fflush(csv);
        fflush(json);
        printf("iteration %lld/%lld: steps %lld, updates %lld, train return %.3f, eval return "
               "%.3f, loss %.4g, %.0f steps/s%s\n",
               (long long)m.iteration, (long long)cfg.run.iterations, (long long)m.agent_steps,
               (long long)m.gradient_updates, m.train_return, m.eval_return, m.loss,
               m.steps_per_second, stopped ? " (interrupted)" : "");
        fflush(stdout);
    }
    sigaction(SIGINT, &previous, NULL);
    fclose(csv);
    fclose(json);

    snprintf(path, sizeof path, "%s/params.bin", run_dir);
    if (tsr_agent_save_params(agent, path, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        status = 1;
    }
    tsr_runner_free(runner);
    printf("%s. Logs: %s (per iteration, also metrics.jsonl), config: %s/config.ini, final "
           "parameters: %s\n",
           stopped ? "Interrupted" : "Done", csv_path, run_dir, path);
    printf("Evaluate with: tessera eval %s\n", run_dir);
    return stopped ? 130 : status;
}
