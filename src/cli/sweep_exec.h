/* sweep_exec.h — what `tessera sweep` shares between its local scheduler
 * (cmd_sweep.c) and its MPI one (sweep_mpi.c): running runs as `tessera
 * train` subprocesses, and showing a sweep's progress. */
#ifndef TESSERA_CLI_SWEEP_EXEC_H
#define TESSERA_CLI_SWEEP_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tessera/sweep.h"

typedef struct sweep_options {
    const char *path;    /* the sweep file */
    const char *out_dir; /* --out, or NULL */
    int64_t jobs;        /* --jobs: runs at once (per MPI worker), or 0 for cores / threads */
    bool dry_run;
} sweep_options;

/* How a run ended. */
typedef enum sweep_outcome_kind {
    SWEEP_OUTCOME_FINISHED = 0, /* exit 0 and metrics.csv at run.iterations */
    SWEEP_OUTCOME_SKIPPED,      /* already finished when its turn came */
    SWEEP_OUTCOME_EXIT,         /* non-zero exit `code` (130: interrupted) */
    SWEEP_OUTCOME_SIGNAL,       /* killed by signal `code` */
    SWEEP_OUTCOME_LAUNCH,       /* could not be started: errno `code` */
    SWEEP_OUTCOME_UNFINISHED,   /* exit 0 but metrics.csv stops at iteration `code` */
    SWEEP_OUTCOME_STATE,        /* its config or directory could not be read, or belongs to
                                 * another sweep */
    SWEEP_OUTCOME_NOT_STARTED,  /* handed out after an interrupt: still to do */
} sweep_outcome_kind;

typedef struct sweep_outcome {
    sweep_outcome_kind kind;
    int64_t code;
    double seconds;     /* wall time */
    double cpu_seconds; /* user + system time of the run's process */
} sweep_outcome;

bool sweep_outcome_failed(const sweep_outcome *o);

/* Seconds on a monotonic clock. */
double sweep_now(void);
/* Cores this process may run on (its CPU affinity). */
int64_t sweep_cores(void);

/* Creates the sweep's output directory and takes OUT/sweep.lock (flock), so
 * that two invocations never run the same sweep at once; the lock goes with
 * the process. Returns false after printing why. */
bool sweep_lock_out_dir(const tsr_sweep *sweep);

/* Set by SIGINT / SIGTERM: how many arrived. */
extern volatile sig_atomic_t sweep_interrupts;
void sweep_catch_interrupts(void);

/* ---- subprocesses ---------------------------------------------------------
 * Each run is `tessera train BASE --set ... --run-dir DIR --quiet` (new) or
 * `tessera train --resume DIR --threads T --quiet` (unfinished), the running
 * executable (/proc/self/exe) in its own process group, stdout and stderr
 * appended to DIR/train.log (with a line before and after each attempt, the
 * latter giving its outcome, wall and CPU seconds), OMP_WAIT_POLICY=passive
 * unless the environment sets it. */
typedef struct sweep_child {
    int64_t run;
    pid_t pid;
    double started;
} sweep_child;

typedef struct sweep_executor {
    const tsr_sweep *sweep;
    tsr_run_schema *schema;
    char exe[4096];
    char **env;      /* environ plus OMP_WAIT_POLICY and TESSERA_SWEEP_PID */
    int env_count;
    char parent_env[48]; /* TESSERA_SWEEP_PID=<this process>: see cmd_train.c */
    sweep_child *children;
    int capacity, count;
    int forwarded;   /* interrupts forwarded to the children */
} sweep_executor;

void sweep_executor_init(sweep_executor *e, const tsr_sweep *sweep, int capacity);
void sweep_executor_fini(sweep_executor *e);
/* Starts run `run` as its directory says (fresh or resumed). A run already
 * finished, or that cannot start, is over at once: returns false with
 * *outcome filled. */
bool sweep_executor_start(sweep_executor *e, int64_t run, sweep_outcome *outcome);
/* Collects one child that has ended, if any. */
bool sweep_executor_poll(sweep_executor *e, int64_t *run, sweep_outcome *outcome);
/* Forwards a new interrupt to the children: SIGINT first (a run stops after
 * its current episode and saves), SIGTERM after that. */
void sweep_executor_forward_interrupts(sweep_executor *e);

/* ---- progress -------------------------------------------------------------
 * On a terminal (stderr) one line redrawn in place; each run's start and end
 * also as a plain line on stdout. */
typedef struct sweep_progress {
    const tsr_sweep *sweep;
    int64_t slots;         /* runs at once over all workers */
    int64_t finished;      /* finished before this invocation or now */
    int64_t running;
    int64_t failed;
    int64_t stopped;       /* interrupted */
    int64_t completed;     /* finished by this invocation */
    double completed_seconds, completed_cpu_seconds;
    double *started;       /* per run: start time while running */
    int64_t *failures;     /* failed runs, in order */
    sweep_outcome *failure_outcomes;
    bool terminal, drawn;
    double last_draw;
} sweep_progress;

void sweep_progress_init(sweep_progress *p, const tsr_sweep *sweep, int64_t slots,
                         int64_t already_finished);
void sweep_progress_fini(sweep_progress *p);
void sweep_progress_started(sweep_progress *p, int64_t run, const char *where);
void sweep_progress_ended(sweep_progress *p, int64_t run, const sweep_outcome *o, const char *where);
/* Redraws the terminal line (at most 4 times a second). */
void sweep_progress_tick(sweep_progress *p);
/* Prints the closing summary; returns the exit code (0 when every run is
 * finished, 130 when interrupted, 1 when any failed). */
int sweep_progress_summary(sweep_progress *p, bool interrupted);

/* The MPI scheduler and workers (sweep_mpi.c); called when the program runs
 * under mpirun with more than one rank. */
int sweep_mpi_main(const sweep_options *options);

#endif
