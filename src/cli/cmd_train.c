/* cmd_train.c — `tessera train CONFIG`: train an agent for the run config's
 * iterations, with a live progress line, per-iteration metrics and HDF5
 * checkpoints in a run directory; `tessera train --resume RUN_DIR` continues
 * a run from its newest complete checkpoint. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

static int usage(FILE *out)
{
    fprintf(out,
            "usage: tessera train CONFIG [--set section.key=value ...] [--run-dir DIR]\n"
            "                     [--seed S] [--threads T] [--quiet]\n"
            "       tessera train --resume RUN_DIR [--threads T] [--quiet]\n"
            "  CONFIG      an INI run config (e.g. configs/breakout/dqn.ini; '-' for the defaults)\n"
            "  --set       override one key (repeatable), e.g. --set run.iterations=2\n"
            "  --run-dir   where config.ini, metrics.csv, metrics.jsonl and checkpoints/ go\n"
            "              (default runs/<config>-s<seed>-<date>-<time>)\n"
            "  --seed      run.seed (every random stream derives from it)\n"
            "  --threads   run.threads (OpenMP threads; a resumed run is identical to an\n"
            "              uninterrupted one only with the same thread count)\n"
            "  --resume    continue RUN_DIR from its newest complete checkpoint (a run with\n"
            "              no checkpoint yet starts over from RUN_DIR/config.ini)\n"
            "  --quiet     do not print the resolved config\n");
    return out == stdout ? 0 : 2;
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
    /* The first report's steps and time: the rate counts this process's
     * steps only, not those a resumed run did before. */
    bool based;
    int64_t base_steps;
    double base_elapsed;
    /* (steps, seconds) at recent reports: the rate and ETA come from the
     * last RATE_WINDOW seconds, not from the start, whose update-free
     * warm-up runs a hundred times faster than training. */
    int64_t sample_steps[64];
    double sample_elapsed[64];
    int samples, next_sample;
} progress_state;

enum { RATE_WINDOW = 10 };

/* Steps per second since the oldest earlier report of the last RATE_WINDOW
 * seconds (the newest earlier one when none is that recent; the first
 * report when there is no other), then records this report. */
static double recent_rate(progress_state *st, int64_t steps, double elapsed)
{
    const int slots = (int)(sizeof st->sample_steps / sizeof st->sample_steps[0]);
    int64_t from_steps = st->base_steps;
    double from = st->base_elapsed;
    for (int k = st->samples; k >= 1; k--) { /* oldest to newest */
        int i = (st->next_sample - k + slots) % slots;
        if (k == 1 || st->sample_elapsed[i] >= elapsed - RATE_WINDOW) {
            from_steps = st->sample_steps[i];
            from = st->sample_elapsed[i];
            break;
        }
    }
    st->sample_steps[st->next_sample] = steps;
    st->sample_elapsed[st->next_sample] = elapsed;
    st->next_sample = (st->next_sample + 1) % slots;
    if (st->samples < slots) st->samples++;
    double seconds = elapsed - from;
    return seconds > 0 ? (double)(steps - from_steps) / seconds : 0;
}

static bool on_progress(void *user, const tsr_progress *p)
{
    progress_state *st = user;
    if (!st->based) {
        st->based = true;
        st->base_steps = p->total_steps;
        st->base_elapsed = p->elapsed;
        /* Nothing to show before there is a rate: a resumed run's first
         * line comes one log_every (or a redraw interval) after it starts. */
        st->last_draw = p->elapsed;
        while (st->next_log <= p->total_steps) st->next_log += st->log_every;
        return !interrupted;
    }
    if (st->terminal ? p->elapsed - st->last_draw < 0.25 : p->total_steps < st->next_log)
        return !interrupted;
    double rate = recent_rate(st, p->total_steps, p->elapsed);
    char eta[32], ret[32];
    int64_t left = st->total > p->total_steps ? st->total - p->total_steps : 0;
    tsr_cli_format_duration(rate > 0 ? (double)left / rate : NAN, eta, sizeof eta);
    if (isfinite(p->recent_return)) snprintf(ret, sizeof ret, "%.2f", p->recent_return);
    else snprintf(ret, sizeof ret, "-");
    char line[256];
    snprintf(line, sizeof line,
             "iter %lld/%lld  steps %lld/%lld  %.0f steps/s  ETA %s  return %s (last 100 ep.)",
             (long long)p->iteration, (long long)p->iterations, (long long)p->total_steps,
             (long long)st->total, rate, eta, ret);
    if (st->terminal) {
        /* A line wider than the terminal would wrap, and \r would redraw
         * only its last part: cut it to the width. */
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
            ws.ws_col - 1 < (int)sizeof line)
            line[ws.ws_col - 1] = '\0';
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

/* ---- resuming -------------------------------------------------------------- */

/* Under `tessera sweep` (TESSERA_SWEEP_PID names it), the run stops as on
 * Ctrl-C when the sweep process dies: the kernel sends SIGINT then. If it died
 * before this was set up, the run stops at once. */
static void stop_with_the_sweep(void)
{
    const char *text = getenv("TESSERA_SWEEP_PID");
    if (!text) return;
    char *end;
    long long pid = strtoll(text, &end, 10);
    if (end == text || *end || pid < 1) return;
    prctl(PR_SET_PDEATHSIG, SIGINT);
    if ((long long)getppid() != pid) interrupted = 1;
}

/* Cuts a metric file after the lines of iterations <= `last` (and the CSV
 * header): rows of an iteration after the checkpoint are done again. Rows are
 * in iteration order, so what goes is a tail, cut in place with truncate(2):
 * no copy, so it works on a full disk too. */
static bool truncate_metrics(const char *path, int64_t last, bool json)
{
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    off_t keep = 0;
    bool first = true;
    while ((len = getline(&line, &cap, in)) > 0) {
        long long it = 0;
        bool whole = line[len - 1] == '\n';
        bool kept = whole && (json ? sscanf(line, "{\"iteration\": %lld", &it) == 1 && it <= last
                                   : first || (sscanf(line, "%lld,", &it) == 1 && it <= last));
        if (!kept) break;
        keep += len;
        first = false;
    }
    free(line);
    fclose(in);
    return truncate(path, keep) == 0;
}

/* A resumed run's metrics.csv written by an older tessera, whose header is a
 * prefix of today's (columns are only ever added at the end): rewritten
 * with today's header, its rows padded with empty cells, so every row has
 * the header's columns. Anything else is refused, naming both headers. */
static bool upgrade_metrics_header(const char *path, tsr_error *err)
{
    char *now = NULL;
    size_t now_size = 0;
    FILE *mem = open_memstream(&now, &now_size);
    tsr_metrics_write_csv_header(mem);
    fclose(mem);
    FILE *in = fopen(path, "r");
    if (!in) {
        free(now);
        if (errno == ENOENT) return true;
        tsr_error_set(err, TSR_STATUS_IO, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, in);
    bool ok = true;
    if (len > 0 && strcmp(line, now)) {
        size_t old_len = line[len - 1] == '\n' ? (size_t)len - 1 : (size_t)len;
        if (strncmp(line, now, old_len) || now[old_len] != ',') {
            tsr_error_set(err, TSR_STATUS_FORMAT, "%s has the columns %.*s, which this tessera "
                          "cannot continue (it writes %.*s)", path, (int)old_len, line,
                          (int)strcspn(now, "\n"), now);
            ok = false;
        } else {
            int missing = 0;
            for (const char *c = now + old_len; *c; c++) missing += *c == ',';
            char tmp[4800];
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            FILE *out = fopen(tmp, "w");
            ok = out != NULL;
            if (ok) fputs(now, out);
            while (ok && (len = getline(&line, &cap, in)) > 0) {
                bool whole = line[len - 1] == '\n';
                fwrite(line, 1, (size_t)len - whole, out);
                for (int i = 0; i < missing; i++) fputc(',', out);
                if (whole) fputc('\n', out);
            }
            if (out && fclose(out) != 0) ok = false;
            if (ok && rename(tmp, path) != 0) ok = false;
            if (!ok) {
                tsr_error_set(err, TSR_STATUS_IO, "cannot rewrite %s: %s", path, strerror(errno));
                unlink(tmp);
            }
        }
    }
    free(line);
    free(now);
    fclose(in);
    return ok;
}

/* ---- the command --------------------------------------------------------- */

typedef struct train_args {
    const char *config_path; /* NULL: defaults */
    const char *run_dir;
    const char *resume_dir;
    bool quiet;
    char **overrides;
    int num_overrides;
    char seed_override[64], threads_override[64];
} train_args;

static int parse_args(int argc, char **argv, train_args *a)
{
    memset(a, 0, sizeof *a);
    a->overrides = calloc((size_t)argc + 2, sizeof *a->overrides);
    int first = 1;
    if (!strcmp(argv[1], "--resume")) {
        if (argc < 3) return usage(stderr);
        a->resume_dir = argv[2];
        first = 3;
    } else if (argv[1][0] == '-' && argv[1][1] == '-') {
        fprintf(stderr, "tessera train: CONFIG comes first, then the options (got '%s' first)\n\n",
                argv[1]);
        return usage(stderr);
    } else {
        a->config_path = strcmp(argv[1], "-") ? argv[1] : NULL;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        bool has_value = i + 1 < argc;
        bool fresh = !a->resume_dir;
        if (!strcmp(argv[i], "--set") && has_value && fresh) {
            if (!tsr_cli_config_key_form(argv[++i], true)) {
                fprintf(stderr, "tessera train: --set '%s': expected section.key=value\n", argv[i]);
                return 2;
            }
            a->overrides[a->num_overrides++] = argv[i];
        } else if (!strcmp(argv[i], "--run-dir") && has_value && fresh) {
            a->run_dir = argv[++i];
        } else if (!strcmp(argv[i], "--seed") && has_value && fresh) {
            long long v;
            if (!tsr_cli_parse_int(argv[++i], 0, 9007199254740991LL, &v)) {
                fprintf(stderr, "tessera train: --seed '%s' is not an integer from 0 to 2^53 - 1\n",
                        argv[i]);
                return 2;
            }
            snprintf(a->seed_override, sizeof a->seed_override, "run.seed=%lld", v);
            a->overrides[a->num_overrides++] = a->seed_override;
        } else if (!strcmp(argv[i], "--threads") && has_value) {
            long long v;
            if (!tsr_cli_parse_int(argv[++i], 1, 1024, &v)) {
                fprintf(stderr, "tessera train: --threads '%s' is not an integer from 1 to 1024\n",
                        argv[i]);
                return 2;
            }
            snprintf(a->threads_override, sizeof a->threads_override, "run.threads=%lld", v);
            a->overrides[a->num_overrides++] = a->threads_override;
        } else if (!strcmp(argv[i], "--quiet")) {
            a->quiet = true;
        } else {
            fprintf(stderr, "tessera train: unknown or incomplete option '%s'%s\n\n", argv[i],
                    fresh ? "" : " (a resumed run takes only --threads and --quiet: its config "
                                 "is the checkpoint's)");
            return usage(stderr);
        }
    }
    return 0;
}

/* Writes the resolved config to RUN_DIR/config.ini (and stdout unless quiet). */
static bool write_config(const tsr_run_schema *schema, const tsr_run_config *cfg,
                         const char *run_dir, bool quiet)
{
    char path[4600];
    if (!quiet) {
        printf("# resolved config (saved as %s/config.ini)\n", run_dir);
        tsr_config_write(&schema->schema, cfg, stdout);
        printf("\n");
    }
    FILE *f = open_in(run_dir, "config.ini", "w", path, sizeof path);
    if (!f) {
        fprintf(stderr, "tessera train: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    fprintf(f, "; resolved config of a tessera run: every key, bases and overrides applied\n");
    tsr_config_write(&schema->schema, cfg, f);
    return fclose(f) == 0;
}

/* Takes an exclusive lock on the run directory itself (flock on the
 * directory; no file is left behind) for the rest of the process: two
 * trainings of one run directory would write the same checkpoints and
 * metrics. The kernel drops the lock when the process ends, however it
 * ends. False, saying why, when another process holds it. */
static bool lock_run_dir(const char *run_dir)
{
    int fd = open(run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tessera train: cannot open %s: %s\n", run_dir, strerror(errno));
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            fprintf(stderr, "tessera train: %s is in use by another tessera train (it holds the "
                            "directory's lock); nothing was changed\n", run_dir);
        else
            fprintf(stderr, "tessera train: cannot lock %s: %s\n", run_dir, strerror(errno));
        close(fd);
        return false;
    }
    return true; /* fd stays open: the lock lasts until the process exits */
}

/* True, saying why, when RUN_DIR already holds a run that a new one would
 * overwrite: its metrics, or checkpoint files (put there by hand, or a run
 * whose metrics were removed) that a new run would mix with its own. */
static bool holds_a_run(const char *run_dir)
{
    char path[4600];
    tsr_error err;
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "tessera train: %s already holds a run (metrics.csv); continue it, if "
                        "unfinished, with --resume %s, or choose another --run-dir\n",
                run_dir, run_dir);
        return true;
    }
    int64_t newest;
    tsr_status found = tsr_checkpoint_find_latest(run_dir, path, sizeof path, &newest, NULL, &err);
    if (found != TSR_STATUS_IO) { /* IO: no checkpoint file (a cut save's .tmp does not count) */
        fprintf(stderr, "tessera train: %s/checkpoints already holds checkpoint files; resume that "
                        "run with --resume %s, or choose another --run-dir\n", run_dir, run_dir);
        if (found != TSR_STATUS_OK) fprintf(stderr, "  (%s)\n", err.message);
        return true;
    }
    return false;
}

/* Where a run starts: a new run directory, or a resumed one with its
 * runner loaded from the newest checkpoint. */
static int prepare(train_args *a, const tsr_run_schema *schema, tsr_run_config *cfg,
                   char *run_dir, size_t run_dir_size, tsr_runner **runner, bool *resumed)
{
    tsr_error err;
    *resumed = false;
    *runner = NULL;
    if (a->resume_dir) {
        struct stat sb;
        if (stat(a->resume_dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            fprintf(stderr, "tessera train: --resume takes a run directory; %s is a file (to "
                            "start a run from a config: tessera train %s)\n",
                    a->resume_dir, a->resume_dir);
            return 1;
        }
        snprintf(run_dir, run_dir_size, "%s", a->resume_dir);
        if (stat(run_dir, &sb) == 0 && !lock_run_dir(run_dir)) return 1;
        char checkpoint[4700], config_path[4700];
        int64_t iteration = 0;
        snprintf(config_path, sizeof config_path, "%s/config.ini", run_dir);
        tsr_status found = tsr_checkpoint_find_latest(run_dir, checkpoint, sizeof checkpoint,
                                                      &iteration, stderr, &err);
        if (found == TSR_STATUS_BACKEND) {
            fprintf(stderr, "tessera train: cannot resume %s: %s. Nothing was changed.\n",
                    run_dir, err.message);
            return 1;
        }
        if (found == TSR_STATUS_FORMAT) {
            /* Starting over would overwrite the run's metric files. */
            fprintf(stderr, "tessera train: cannot resume %s: %s. Nothing was changed; to start "
                            "the run over, move its checkpoints directory away.\n",
                    run_dir, err.message);
            return 1;
        }
        if (found != TSR_STATUS_OK) {
            if (access(config_path, R_OK) != 0) {
                fprintf(stderr, "tessera train: cannot resume %s: no checkpoint and no "
                                "config.ini (is it a run directory?)\n", run_dir);
                return 1;
            }
            /* Killed before its first checkpoint: the run starts over. */
            fprintf(stderr, "tessera train: %s has no checkpoint yet; starting the run over "
                            "from %s\n", run_dir, config_path);
            if (tsr_run_config_load(schema, cfg, config_path, a->overrides, a->num_overrides,
                                    &err) != TSR_STATUS_OK) {
                fprintf(stderr, "tessera train: %s\n", err.message);
                return 1;
            }
            return write_config(schema, cfg, run_dir, a->quiet) ? 0 : 1;
        }
        /* A checkpoint that opens may still fail to load (a damaged dataset):
         * older ones are tried in turn; if none loads, the newest one's error
         * is the one shown. A config this tessera rejects (a bad value) is
         * not damage: it stops at once. */
        bool replay_restored = false;
        tsr_error first = {0};
        for (;;) {
            tsr_status st = tsr_cli_load_checkpoint_config(schema, cfg, checkpoint, a->overrides,
                                                            a->num_overrides, &err);
            if (st == TSR_STATUS_OK) st = tsr_runner_new(runner, cfg, true, &err);
            if (st == TSR_STATUS_OK) {
                st = tsr_runner_load_checkpoint(*runner, checkpoint, &replay_restored, &err);
                if (st != TSR_STATUS_OK) {
                    tsr_runner_free(*runner);
                    *runner = NULL;
                }
            }
            if (st == TSR_STATUS_OK) break;
            if (st == TSR_STATUS_INVALID_ARGUMENT) {
                fprintf(stderr, "tessera train: cannot resume %s from %s: %s\n", run_dir,
                        checkpoint, err.message);
                return 1;
            }
            if (!first.message[0]) first = err;
            fprintf(stderr, "tessera train: cannot load %s: %s\n", checkpoint, err.message);
            if (tsr_checkpoint_find_latest_before(run_dir, iteration, checkpoint,
                                                  sizeof checkpoint, &iteration, stderr,
                                                  &err) != TSR_STATUS_OK) {
                fprintf(stderr, "tessera train: cannot resume %s: no checkpoint loads (the "
                                "newest: %s). Nothing was changed.\n",
                        run_dir, first.message);
                return 1;
            }
            fprintf(stderr, "tessera train: falling back to %s\n", checkpoint);
        }
        *resumed = true;
        if (!a->quiet) {
            printf("# resolved config (from %s)\n", checkpoint);
            tsr_config_write(&schema->schema, cfg, stdout);
            printf("\n");
        }
        printf("resuming %s from %s (iteration %lld of %lld)\n", run_dir, checkpoint,
               (long long)iteration, (long long)cfg->run.iterations);
        if (!replay_restored)
            fprintf(stderr,
                    "tessera train: WARNING: %s holds no replay buffer (run.checkpoint_replay = "
                    "false): the run resumes with an EMPTY replay and warms up again, so it is "
                    "NO LONGER the same run as an uninterrupted one\n",
                    checkpoint);
        return 0;
    }

    if (tsr_run_config_load(schema, cfg, a->config_path, a->overrides, a->num_overrides, &err) !=
        TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        return 1;
    }
    if (!a->run_dir) {
        char stem[256], stamp[32];
        config_stem(a->config_path, stem, sizeof stem);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(run_dir, run_dir_size, "runs/%s-s%lld-%s", stem, (long long)cfg->run.seed, stamp);
    } else {
        snprintf(run_dir, run_dir_size, "%s", a->run_dir);
    }
    /* The "holds a run already" check is made under the directory's lock:
     * two new runs started at once on one directory cannot both pass it. A
     * directory that does not exist yet is locked once created (after the
     * agent is built, so a config that builds none leaves nothing behind)
     * and checked again, in case another run created it meanwhile. */
    struct stat sb;
    bool existed = stat(run_dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (existed && !lock_run_dir(run_dir)) return 1;
    if (holds_a_run(run_dir)) return 1;
    if (tsr_runner_new(runner, cfg, true, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        return 1;
    }
    if (!existed) {
        if (!tsr_cli_make_dirs(run_dir)) {
            fprintf(stderr, "tessera train: cannot create run directory %s: %s\n", run_dir,
                    strerror(errno));
            return 1;
        }
        if (!lock_run_dir(run_dir) || holds_a_run(run_dir)) return 1;
    }
    return write_config(schema, cfg, run_dir, a->quiet) ? 0 : 1;
}

static bool save_checkpoint(tsr_runner *runner, const tsr_run_config *cfg, const char *run_dir,
                            int64_t iteration)
{
    char dir[4600], path[4700];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    tsr_checkpoint_path(run_dir, iteration, path, sizeof path);
    tsr_error err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!tsr_cli_make_dirs(dir)) {
        fprintf(stderr, "tessera train: cannot create %s: %s\n", dir, strerror(errno));
        return false;
    }
    if (tsr_runner_save_checkpoint(runner, path, cfg->run.checkpoint_replay, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: checkpoint of iteration %lld failed: %s\n",
                (long long)iteration, err.message);
        return false;
    }
    /* The checkpoint is in place: old ones left behind only cost disk. */
    if (tsr_checkpoint_remove_old(run_dir, cfg->run.checkpoint_keep, iteration, &err) != TSR_STATUS_OK)
        fprintf(stderr, "tessera train: WARNING: %s\n", err.message);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct stat sb;
    double megabytes = stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : NAN;
    printf("checkpoint %s: %.1f MB in %.2f s\n", path, megabytes,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    /* Flushed now, so that in a log of stdout and stderr it comes before the
     * next iteration's progress lines. */
    fflush(stdout);
    return true;
}

int tsr_cmd_train(int argc, char **argv)
{
    if (argc >= 2 && tsr_cli_is_help(argv[1])) return usage(stdout);
    if (argc < 2) return usage(stderr);
    train_args args;
    int code = parse_args(argc, argv, &args);
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    char run_dir[4096];
    tsr_runner *runner = NULL;
    bool resumed = false;
    if (code == 0) code = prepare(&args, &schema, &cfg, run_dir, sizeof run_dir, &runner, &resumed);
    free(args.overrides);
    if (code != 0) {
        tsr_runner_free(runner);
        return code;
    }

    tsr_error err;
    if (!runner && tsr_runner_new(&runner, &cfg, true, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        return 1;
    }
    int64_t done = tsr_runner_iteration(runner);
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
    const tsr_pruner *pruner = tsr_agent_pruner(agent);
    char why[512];
    if (pruner && !tsr_pruner_schedule_fits(pruner, tsr_run_expected_updates(&cfg), why, sizeof why))
        fprintf(stderr, "tessera train: WARNING: %s\n", why);

    char csv_path[4600], json_path[4600];
    snprintf(csv_path, sizeof csv_path, "%s/metrics.csv", run_dir);
    snprintf(json_path, sizeof json_path, "%s/metrics.jsonl", run_dir);
    if (resumed && (!truncate_metrics(csv_path, done, false) ||
                    !truncate_metrics(json_path, done, true))) {
        fprintf(stderr, "tessera train: cannot rewrite the metric files in %s: %s\n", run_dir,
                strerror(errno));
        tsr_runner_free(runner);
        return 1;
    }
    /* Only a run that will write rows needs today's header: a finished one
     * is left as it is. */
    if (resumed && done < cfg.run.iterations && !upgrade_metrics_header(csv_path, &err)) {
        fprintf(stderr, "tessera train: %s\n", err.message);
        tsr_runner_free(runner);
        return 1;
    }
    FILE *csv = fopen(csv_path, resumed ? "a" : "w");
    FILE *json = fopen(json_path, resumed ? "a" : "w");
    if (!csv || !json) {
        fprintf(stderr, "tessera train: cannot write the metric files in %s: %s\n", run_dir,
                strerror(errno));
        if (csv) fclose(csv);
        if (json) fclose(json);
        tsr_runner_free(runner);
        return 1;
    }
    if (!resumed) tsr_metrics_write_csv_header(csv);
    fflush(csv);

    progress_state progress = {
        .terminal = isatty(STDERR_FILENO),
        .log_every = cfg.run.log_every,
        .next_log = cfg.run.log_every,
        .total = cfg.run.iterations * cfg.run.training_steps,
    };
    tsr_runner_set_progress(runner, on_progress, &progress, 64);
    tsr_runner_set_stop_flag(runner, &interrupted); /* the evaluation phase has no callback */
    struct sigaction action, previous;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous);
    stop_with_the_sweep();

    int status = 0;
    bool stopped = false;
    int64_t saved = resumed ? done : 0;
    for (int64_t i = done; i < cfg.run.iterations && !stopped && status == 0; i++) {
        tsr_iteration_metrics m;
        stopped = !tsr_runner_run_iteration(runner, &m, &err);
        clear_progress(&progress);
        /* The metric files hold finished iterations only (a run is finished
         * when its last row is run.iterations); an interrupted one is printed
         * and redone by --resume. */
        if (!stopped) {
            tsr_metrics_write_csv_row(csv, &m);
            tsr_metrics_write_json(json, &m);
            fflush(csv);
            fflush(json);
        }
        /* "-" where the CSV cell is empty (none this iteration). */
        char train_return[32] = "-", eval_return[32] = "-", loss[32] = "-";
        if (isfinite(m.train_return)) snprintf(train_return, sizeof train_return, "%.3f", m.train_return);
        if (isfinite(m.eval_return)) snprintf(eval_return, sizeof eval_return, "%.3f", m.eval_return);
        if (isfinite(m.loss)) snprintf(loss, sizeof loss, "%.4g", m.loss);
        printf("iteration %lld/%lld: steps %lld, updates %lld, train return %s, eval return %s, "
               "loss %s, %.0f steps/s%s\n",
               (long long)m.iteration, (long long)cfg.run.iterations, (long long)m.agent_steps,
               (long long)m.gradient_updates, train_return, eval_return, loss,
               m.steps_per_second, stopped ? " (interrupted)" : "");
        fflush(stdout);
        /* An interrupted iteration is not checkpointed: a resume redoes it. */
        int64_t every = cfg.run.checkpoint_every;
        bool last = m.iteration == cfg.run.iterations;
        if (!stopped && (last || (every > 0 && m.iteration % every == 0))) {
            if (save_checkpoint(runner, &cfg, run_dir, m.iteration)) saved = m.iteration;
            else status = 1;
        }
    }
    sigaction(SIGINT, &previous, NULL);
    fclose(csv);
    fclose(json);
    tsr_runner_free(runner);
    /* The last row says the run is finished (tessera sweep and report read it
     * so): without the final checkpoint it is not, so that row goes until a
     * resume redoes the iteration and saves. */
    if (status && saved < cfg.run.iterations) {
        bool csv_cut = truncate_metrics(csv_path, saved, false);
        bool json_cut = truncate_metrics(json_path, saved, true);
        if (csv_cut && json_cut)
            fprintf(stderr, "tessera train: the metric rows after iteration %lld (the newest "
                            "checkpoint) are withdrawn until a resume redoes them\n",
                    (long long)saved);
        else
            fprintf(stderr, "tessera train: ERROR: cannot withdraw the metric rows after "
                            "iteration %lld from %s (%s): the run may look finished without its "
                            "final checkpoint; resume it with tessera train --resume %s\n",
                    (long long)saved, csv_cut ? json_path : csv_path, strerror(errno), run_dir);
    }

    char checkpoint[4700];
    tsr_checkpoint_path(run_dir, saved, checkpoint, sizeof checkpoint);
    if (done == cfg.run.iterations)
        printf("%s had finished all %lld iterations already.\n", run_dir, (long long)done);
    else
        printf("%s. Logs: %s (per iteration, also metrics.jsonl), config: %s/config.ini\n",
               stopped ? "Interrupted" : status ? "Failed" : "Done", csv_path, run_dir);
    if (saved > 0)
        printf("Newest checkpoint: %s (iteration %lld). Evaluate with: tessera eval %s\n",
               checkpoint, (long long)saved, run_dir);
    if (stopped || (status && saved < cfg.run.iterations))
        printf("Continue with: tessera train --resume %s\n", run_dir);
    return stopped ? 130 : status;
}
