/* sweep_exec.c — a sweep's runs as `tessera train` subprocesses, and the
 * progress display. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli/sweep_exec.h"

#include "cli/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ==== small helpers ======================================================= */

double sweep_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int64_t sweep_cores(void)
{
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0) return CPU_COUNT(&mask);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

bool sweep_outcome_failed(const sweep_outcome *o)
{
    return o->kind != SWEEP_OUTCOME_FINISHED && o->kind != SWEEP_OUTCOME_SKIPPED &&
           o->kind != SWEEP_OUTCOME_NOT_STARTED;
}

volatile sig_atomic_t sweep_interrupts;

static void on_interrupt(int signal_number)
{
    (void)signal_number;
    if (sweep_interrupts < 100) sweep_interrupts++;
}

void sweep_catch_interrupts(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL); /* the terminal closed: stop the runs as well */
}

bool sweep_lock_out_dir(const tsr_sweep *sweep)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/sweep.lock", sweep->out_dir);
    int fd = tsr_cli_make_dirs(sweep->out_dir) ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666) : -1;
    if (fd < 0) {
        fprintf(stderr, "tessera sweep: cannot create %s: %s\n", path, strerror(errno));
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "tessera sweep: another tessera sweep is running on %s (%s is locked)\n",
                sweep->out_dir, path);
        close(fd);
        return false;
    }
    return true; /* fd stays open: the lock lasts until the process ends */
}

/* ==== subprocesses ======================================================== */

void sweep_executor_init(sweep_executor *e, const tsr_sweep *sweep, int capacity)
{
    memset(e, 0, sizeof *e);
    e->sweep = sweep;
    e->schema = tsr_malloc(sizeof *e->schema);
    tsr_run_schema_init(e->schema);
    ssize_t n = readlink("/proc/self/exe", e->exe, sizeof e->exe - 1);
    TSR_ASSERT_MSG(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    e->exe[n] = '\0';
    /* Runs share the cores: OpenMP's spinning waits made oversubscribed runs
     * 10x slower, so subprocesses wait passively unless told otherwise. */
    int count = 0;
    while (environ[count]) count++;
    e->env = tsr_calloc((size_t)count + 3, sizeof *e->env);
    int kept = 0;
    for (int i = 0; i < count; i++)
        if (strncmp(environ[i], "TESSERA_SWEEP_PID=", 18)) e->env[kept++] = environ[i];
    count = kept;
    if (!getenv("OMP_WAIT_POLICY")) e->env[count++] = "OMP_WAIT_POLICY=passive";
    /* A run stops (as on Ctrl-C) if this process dies without stopping it:
     * killed, or its terminal gone. Otherwise it would run on unsupervised
     * while a rerun of the sweep, its lock released, resumed the same run. */
    snprintf(e->parent_env, sizeof e->parent_env, "TESSERA_SWEEP_PID=%lld", (long long)getpid());
    e->env[count++] = e->parent_env;
    e->env_count = count;
    e->capacity = capacity;
    e->children = tsr_calloc((size_t)capacity, sizeof *e->children);
}

void sweep_executor_fini(sweep_executor *e)
{
    TSR_ASSERT_MSG(e->count == 0, "%d runs still running", e->count);
    tsr_free(e->children);
    tsr_free(e->env);
    tsr_free(e->schema);
}

/* Appends a header for this attempt to the run's log; returns its fd. */
static int open_log(const tsr_sweep_run *run, char *const *argv, bool resume)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/train.log", run->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    time_t now = time(NULL);
    struct tm tm;
    char stamp[64];
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    dprintf(fd, "# tessera sweep: %s %s at %s:", resume ? "resuming" : "starting", run->name, stamp);
    for (int i = 0; argv[i]; i++) dprintf(fd, " %s", argv[i]);
    dprintf(fd, "\n");
    return fd;
}

bool sweep_executor_start(sweep_executor *e, int64_t run, sweep_outcome *outcome)
{
    TSR_ASSERT_MSG(e->count < e->capacity, "%d of %d slots busy", e->count, e->capacity);
    const tsr_sweep_run *r = &e->sweep->runs[run];
    *outcome = (sweep_outcome){SWEEP_OUTCOME_FINISHED, 0, 0, 0};
    tsr_sweep_run_state state;
    tsr_error err;
    if (tsr_sweep_run_state_get(e->sweep, run, e->schema, &state, &err)) {
        fprintf(stderr, "tessera sweep: %s\n", err.message);
        outcome->kind = SWEEP_OUTCOME_STATE;
        return false;
    }
    if (state == TSR_SWEEP_RUN_FINISHED) {
        outcome->kind = SWEEP_OUTCOME_SKIPPED;
        return false;
    }
    if (!tsr_cli_make_dirs(r->dir)) {
        outcome->kind = SWEEP_OUTCOME_LAUNCH;
        outcome->code = errno;
        return false;
    }

    char threads[32];
    snprintf(threads, sizeof threads, "%lld", (long long)e->sweep->threads);
    const bool resume = state == TSR_SWEEP_RUN_UNFINISHED;
    int argc = 0;
    char **argv = tsr_calloc((size_t)r->num_overrides * 2 + 12, sizeof *argv);
    argv[argc++] = e->exe;
    argv[argc++] = "train";
    if (resume) {
        argv[argc++] = "--resume";
        argv[argc++] = r->dir;
        argv[argc++] = "--threads";
        argv[argc++] = threads;
    } else {
        argv[argc++] = e->sweep->base;
        for (int i = 0; i < r->num_overrides; i++) {
            argv[argc++] = "--set";
            argv[argc++] = r->overrides[i];
        }
        argv[argc++] = "--run-dir";
        argv[argc++] = r->dir;
    }
    argv[argc++] = "--quiet";
    argv[argc] = NULL;

    int log = open_log(r, argv, resume);
    if (log < 0) {
        outcome->kind = SWEEP_OUTCOME_LAUNCH;
        outcome->code = errno;
        tsr_free(argv);
        return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, log, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, log, STDERR_FILENO);
    posix_spawnattr_init(&attr);
    /* Its own process group: a Ctrl-C reaches the sweep alone, which then
     * asks each run to stop once (a second SIGINT could cut a run's save). */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, e->exe, &actions, &attr, argv, e->env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(log);
    tsr_free(argv);
    if (rc != 0) {
        outcome->kind = SWEEP_OUTCOME_LAUNCH;
        outcome->code = rc;
        return false;
    }
    e->children[e->count++] = (sweep_child){run, pid, sweep_now()};
    return true;
}

static void describe(const sweep_outcome *o, char *buf, size_t size);

/* The attempt's end, for the log's reader (and bench/sweep_size.sh). */
static void write_log_footer(const tsr_sweep_run *run, const sweep_outcome *o)
{
    char path[4200], what[160];
    snprintf(path, sizeof path, "%s/train.log", run->dir);
    FILE *f = fopen(path, "a");
    if (!f) return; /* the run's outcome is reported all the same */
    describe(o, what, sizeof what);
    fprintf(f, "# tessera sweep: %s ended (%s) after %.3f s, %.3f s of CPU\n", run->name, what,
            o->seconds, o->cpu_seconds);
    fclose(f);
}

bool sweep_executor_poll(sweep_executor *e, int64_t *run, sweep_outcome *outcome)
{
    for (int i = 0; i < e->count; i++) {
        int status;
        struct rusage usage;
        pid_t got = wait4(e->children[i].pid, &status, WNOHANG, &usage);
        if (got == 0 || (got < 0 && errno == EINTR)) continue;
        TSR_ASSERT_MSG(got == e->children[i].pid, "wait4(%d): %s", (int)e->children[i].pid,
                       strerror(errno));
        *run = e->children[i].run;
        double cpu = (double)usage.ru_utime.tv_sec + 1e-6 * (double)usage.ru_utime.tv_usec +
                     (double)usage.ru_stime.tv_sec + 1e-6 * (double)usage.ru_stime.tv_usec;
        *outcome = (sweep_outcome){SWEEP_OUTCOME_FINISHED, 0, sweep_now() - e->children[i].started,
                                   cpu};
        e->children[i] = e->children[--e->count];
        if (WIFSIGNALED(status)) {
            outcome->kind = SWEEP_OUTCOME_SIGNAL;
            outcome->code = WTERMSIG(status);
        } else if (WEXITSTATUS(status) != 0) {
            outcome->kind = SWEEP_OUTCOME_EXIT;
            outcome->code = WEXITSTATUS(status);
        } else {
            /* Exit 0 must mean the run is finished. */
            tsr_sweep_run_state state;
            int64_t last = 0;
            tsr_error err;
            if (tsr_sweep_run_state_get(e->sweep, *run, e->schema, &state, &err) ||
                tsr_run_dir_last_iteration(e->sweep->runs[*run].dir, &last, &err)) {
                fprintf(stderr, "tessera sweep: %s\n", err.message);
                outcome->kind = SWEEP_OUTCOME_STATE;
            } else if (state != TSR_SWEEP_RUN_FINISHED) {
                outcome->kind = SWEEP_OUTCOME_UNFINISHED;
                outcome->code = last;
            }
        }
        write_log_footer(&e->sweep->runs[*run], outcome);
        return true;
    }
    return false;
}

void sweep_executor_forward_interrupts(sweep_executor *e)
{
    int pending = sweep_interrupts;
    if (pending <= e->forwarded) return;
    int signal_number = e->forwarded == 0 ? SIGINT : SIGTERM;
    for (int i = 0; i < e->count; i++) kill(e->children[i].pid, signal_number);
    e->forwarded = pending;
}

/* ==== progress ============================================================ */

void sweep_progress_init(sweep_progress *p, const tsr_sweep *sweep, int64_t slots,
                         int64_t already_finished)
{
    memset(p, 0, sizeof *p);
    p->sweep = sweep;
    p->slots = slots > 0 ? slots : 1;
    p->finished = already_finished;
    p->started = tsr_calloc((size_t)sweep->num_runs, sizeof *p->started);
    p->failures = tsr_calloc((size_t)sweep->num_runs, sizeof *p->failures);
    p->failure_outcomes = tsr_calloc((size_t)sweep->num_runs, sizeof *p->failure_outcomes);
    p->terminal = isatty(STDERR_FILENO);
}

void sweep_progress_fini(sweep_progress *p)
{
    tsr_free(p->started);
    tsr_free(p->failures);
    tsr_free(p->failure_outcomes);
}

static int64_t remaining(const sweep_progress *p)
{
    return p->sweep->num_runs - p->finished - p->failed - p->running - p->stopped;
}

/* Seconds until the sweep ends: the runs still to do and what is left of the
 * running ones, at the mean wall time of the runs finished by this
 * invocation, spread over the slots. */
static double eta(const sweep_progress *p)
{
    if (p->completed == 0) return NAN;
    double mean = p->completed_seconds / (double)p->completed, now = sweep_now();
    double work = (double)remaining(p) * mean;
    for (int64_t r = 0; r < p->sweep->num_runs; r++)
        if (p->started[r] > 0) work += fmax(mean - (now - p->started[r]), 0);
    int64_t busy = remaining(p) + p->running;
    double slots = (double)(busy < p->slots ? busy : p->slots);
    return slots > 0 ? work / slots : 0;
}

static void status_line(const sweep_progress *p, char *buf, size_t size)
{
    char left[32], failed[48] = "";
    tsr_cli_format_duration(eta(p), left, sizeof left);
    if (p->failed) snprintf(failed, sizeof failed, ", %lld failed", (long long)p->failed);
    snprintf(buf, size, "%lld/%lld done, %lld running, %lld remaining%s, ETA %s",
             (long long)p->finished, (long long)p->sweep->num_runs, (long long)p->running,
             (long long)remaining(p), failed, left);
}

static void clear_line(sweep_progress *p)
{
    if (p->terminal && p->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        p->drawn = false;
    }
}

static void draw(sweep_progress *p)
{
    char line[256];
    status_line(p, line, sizeof line);
    fprintf(stderr, "\r\033[Ksweep: %s", line);
    fflush(stderr);
    p->drawn = true;
    p->last_draw = sweep_now();
}

void sweep_progress_tick(sweep_progress *p)
{
    if (p->terminal && sweep_now() - p->last_draw >= 0.25) draw(p);
}

void sweep_progress_started(sweep_progress *p, int64_t run, const char *where)
{
    p->running++;
    p->started[run] = sweep_now();
    clear_line(p);
    printf("started  %s%s\n", p->sweep->runs[run].name, where);
    fflush(stdout);
    if (p->terminal) draw(p);
}

static void describe(const sweep_outcome *o, char *buf, size_t size)
{
    switch (o->kind) {
    case SWEEP_OUTCOME_FINISHED: snprintf(buf, size, "finished"); break;
    case SWEEP_OUTCOME_SKIPPED: snprintf(buf, size, "already finished"); break;
    case SWEEP_OUTCOME_EXIT:
        snprintf(buf, size, o->code == 130 ? "interrupted (exit 130)" : "exit %lld",
                 (long long)o->code);
        break;
    case SWEEP_OUTCOME_SIGNAL:
        snprintf(buf, size, "killed by signal %lld (%s)", (long long)o->code,
                 strsignal((int)o->code));
        break;
    case SWEEP_OUTCOME_LAUNCH:
        snprintf(buf, size, "could not start: %s", strerror((int)o->code));
        break;
    case SWEEP_OUTCOME_UNFINISHED:
        snprintf(buf, size, "exit 0, but metrics.csv stops at iteration %lld", (long long)o->code);
        break;
    case SWEEP_OUTCOME_STATE:
        snprintf(buf, size, "its config or run directory cannot be read (see the message above)");
        break;
    case SWEEP_OUTCOME_NOT_STARTED: snprintf(buf, size, "not started"); break;
    }
}

void sweep_progress_ended(sweep_progress *p, int64_t run, const sweep_outcome *o, const char *where)
{
    const bool was_running = p->started[run] > 0;
    if (was_running) p->running--;
    p->started[run] = 0;
    /* After a Ctrl-C, a run that exits 130 stopped as asked; so did one the
     * forwarded SIGINT (or a second Ctrl-C's SIGTERM) killed before it had
     * set its handler, in its first tenth of a second: neither failed. */
    const bool stopped_by_us =
        sweep_interrupts > 0 &&
        ((o->kind == SWEEP_OUTCOME_EXIT && o->code == 130) ||
         (o->kind == SWEEP_OUTCOME_SIGNAL && (o->code == SIGINT || o->code == SIGTERM)));
    char what[160], line[256], took[32], cpu[32];
    describe(o, what, sizeof what);
    tsr_cli_format_duration(o->seconds, took, sizeof took);
    tsr_cli_format_duration(o->cpu_seconds, cpu, sizeof cpu);
    if (o->kind == SWEEP_OUTCOME_FINISHED || o->kind == SWEEP_OUTCOME_SKIPPED) {
        p->finished++;
        if (o->kind == SWEEP_OUTCOME_FINISHED) {
            p->completed++;
            p->completed_seconds += o->seconds;
            p->completed_cpu_seconds += o->cpu_seconds;
        }
    } else if (o->kind == SWEEP_OUTCOME_NOT_STARTED) {
        return; /* back among the remaining */
    } else if (stopped_by_us) {
        p->stopped++;
    } else {
        p->failures[p->failed] = run;
        p->failure_outcomes[p->failed++] = *o;
    }
    clear_line(p);
    status_line(p, line, sizeof line);
    if (o->kind == SWEEP_OUTCOME_FINISHED)
        printf("finished %s in %s (%s CPU)%s  [%s]\n", p->sweep->runs[run].name, took, cpu, where,
               line);
    else if (o->kind == SWEEP_OUTCOME_SKIPPED)
        printf("skipped  %s: already finished%s  [%s]\n", p->sweep->runs[run].name, where, line);
    else if (stopped_by_us)
        printf("stopped  %s after %s%s\n", p->sweep->runs[run].name, took, where);
    else
        printf("FAILED   %s: %s%s, log %s/train.log  [%s]\n", p->sweep->runs[run].name, what,
               where, p->sweep->runs[run].dir, line);
    fflush(stdout);
    if (p->terminal) draw(p);
}

int sweep_progress_summary(sweep_progress *p, bool interrupted)
{
    clear_line(p);
    const tsr_sweep *s = p->sweep;
    char took[32], cpu[32];
    tsr_cli_format_duration(p->completed_seconds, took, sizeof took);
    tsr_cli_format_duration(p->completed_cpu_seconds, cpu, sizeof cpu);
    printf("sweep %s: %lld runs in %s: %lld finished (%lld by this invocation, %s of run time, "
           "%s CPU), %lld failed, %lld stopped, %lld not started\n",
           s->path, (long long)s->num_runs, s->out_dir, (long long)p->finished,
           (long long)p->completed, took, cpu, (long long)p->failed, (long long)p->stopped,
           (long long)remaining(p));
    for (int64_t i = 0; i < p->failed; i++) {
        char what[160];
        describe(&p->failure_outcomes[i], what, sizeof what);
        printf("  failed: %s (%s), log %s/train.log\n", s->runs[p->failures[i]].name, what,
               s->runs[p->failures[i]].dir);
    }
    if (interrupted || p->failed || remaining(p) || p->stopped)
        printf("Run the same command again to resume: finished runs are skipped, the others "
               "continue from their checkpoints.\n");
    fflush(stdout);
    if (p->failed) return 1;
    if (interrupted || remaining(p) || p->stopped) return 130;
    return 0;
}
