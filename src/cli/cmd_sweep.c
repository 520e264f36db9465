/* cmd_sweep.c — `tessera sweep SWEEP`: expand a sweep file's grid and run it
 * on this machine, as many runs at once as fit the cores, resuming whatever
 * an earlier invocation left; under mpirun, sweep_mpi.c spreads the runs
 * over the ranks instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/sweep_exec.h"
#include "tessera/tessera.h"

static int usage(FILE *out)
{
    fprintf(out,
            "usage: tessera sweep SWEEP [--out DIR] [--jobs N] [--dry-run]\n"
            "  SWEEP      a sweep file (e.g. configs/sweeps/smoke.ini): a base run config, the\n"
            "             axes to vary, the games and the number of seeds\n"
            "  --out      where the runs go (default: the file's out, else runs/sweeps/<name>)\n"
            "  --jobs     runs at once (per MPI worker; default: cores / threads per run)\n"
            "  --dry-run  print the plan (every run, and whether it would start, resume or be\n"
            "             skipped) and run nothing\n"
            "Rerunning resumes: finished runs are skipped, unfinished ones continue from their\n"
            "checkpoints. Under mpirun (Open MPI), rank 0 hands runs to the other ranks.\n");
    return out == stdout ? 0 : 2;
}

static const char *const state_names[] = {
    [TSR_SWEEP_RUN_NEW] = "start",
    [TSR_SWEEP_RUN_UNFINISHED] = "resume",
    [TSR_SWEEP_RUN_FINISHED] = "skip",
};

/* "2 games x 4 num_experts x 3 seeds" */
static void describe_grid(const tsr_sweep *s, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "%d game%s", s->num_games, s->num_games == 1 ? "" : "s");
    if (s->num_variants && used < size)
        used += (size_t)snprintf(buf + used, size - used, " x %d variants", s->num_variants);
    for (int a = 0; a < s->num_axes && used < size; a++)
        used += (size_t)snprintf(buf + used, size - used, " x %d %s", s->axes[a].num_values,
                                 s->axes[a].label);
    if (used < size)
        snprintf(buf + used, size - used, " x %lld seed%s", (long long)s->seeds,
                 s->seeds == 1 ? "" : "s");
}

static int run_local(const sweep_options *opt)
{
    tsr_sweep *sweep;
    tsr_error err;
    if (tsr_sweep_load(&sweep, opt->path, opt->out_dir, &err)) {
        fprintf(stderr, "tessera sweep: %s\n", err.message);
        return 1;
    }
    /* Every run directory is checked before anything starts. */
    tsr_run_schema *schema = tsr_malloc(sizeof *schema);
    tsr_run_schema_init(schema);
    tsr_sweep_run_state *states = tsr_calloc((size_t)sweep->num_runs, sizeof *states);
    int64_t counts[3] = {0, 0, 0};
    for (int64_t r = 0; r < sweep->num_runs; r++) {
        if (tsr_sweep_run_state_get(sweep, r, schema, &states[r], &err)) {
            fprintf(stderr, "tessera sweep: %s\n", err.message);
            tsr_free(states);
            tsr_free(schema);
            tsr_sweep_free(sweep);
            return 1;
        }
        counts[states[r]]++;
    }

    int64_t cores = sweep_cores();
    int64_t jobs = opt->jobs ? opt->jobs : cores / sweep->threads;
    if (jobs < 1) jobs = 1;
    char grid[512];
    describe_grid(sweep, grid, sizeof grid);
    printf("sweep %s: %lld runs (%s) in %s; %lld finished, %lld to resume, %lld to start; "
           "%lld at once, %lld thread%s each (%lld cores)\n",
           opt->path, (long long)sweep->num_runs, grid, sweep->out_dir, (long long)counts[2],
           (long long)counts[1], (long long)counts[0], (long long)jobs,
           (long long)sweep->threads, sweep->threads == 1 ? "" : "s", (long long)cores);
    if (opt->dry_run) {
        /* Each run's budget too, for sizing a sweep (bench/sweep_size.sh). */
        tsr_run_config *cfg = tsr_malloc(sizeof *cfg);
        for (int64_t r = 0; r < sweep->num_runs; r++) {
            tsr_status st = tsr_sweep_run_config(sweep, r, schema, cfg, &err);
            TSR_ASSERT_MSG(st == TSR_STATUS_OK, "run %s loaded before: %s", sweep->runs[r].name,
                           err.message);
            printf("%-6s %s  (%lld x %lld steps)\n", state_names[states[r]], sweep->runs[r].name,
                   (long long)cfg->run.iterations, (long long)cfg->run.training_steps);
        }
        tsr_free(cfg);
        tsr_free(schema);
        tsr_free(states);
        tsr_sweep_free(sweep);
        return 0;
    }
    tsr_free(schema);
    fflush(stdout);
    if (!sweep_lock_out_dir(sweep)) {
        tsr_free(states);
        tsr_sweep_free(sweep);
        return 1;
    }

    sweep_catch_interrupts();
    sweep_progress progress;
    sweep_progress_init(&progress, sweep, jobs, counts[TSR_SWEEP_RUN_FINISHED]);
    sweep_executor executor;
    sweep_executor_init(&executor, sweep, (int)jobs);
    int64_t next = 0;
    for (;;) {
        bool busy = false;
        while (!sweep_interrupts && executor.count < jobs && next < sweep->num_runs) {
            int64_t run = next++;
            if (states[run] == TSR_SWEEP_RUN_FINISHED) continue;
            sweep_outcome outcome;
            if (sweep_executor_start(&executor, run, &outcome)) {
                sweep_progress_started(&progress, run, "");
            } else {
                sweep_progress_ended(&progress, run, &outcome, "");
            }
            busy = true;
        }
        int64_t run;
        sweep_outcome outcome;
        while (sweep_executor_poll(&executor, &run, &outcome)) {
            sweep_progress_ended(&progress, run, &outcome, "");
            busy = true;
        }
        sweep_executor_forward_interrupts(&executor);
        if (executor.count == 0 && (sweep_interrupts || next == sweep->num_runs)) break;
        sweep_progress_tick(&progress);
        if (!busy) nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    int code = sweep_progress_summary(&progress, sweep_interrupts > 0);
    sweep_executor_fini(&executor);
    sweep_progress_fini(&progress);
    tsr_free(states);
    tsr_sweep_free(sweep);
    return code;
}

int tsr_cmd_sweep(int argc, char **argv)
{
    if (argc >= 2 && tsr_cli_is_help(argv[1])) return usage(stdout);
    if (argc < 2) return usage(stderr);
    sweep_options opt = {.path = argv[1]};
    for (int i = 2; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--out") && has_value) {
            opt.out_dir = argv[++i];
        } else if (!strcmp(argv[i], "--jobs") && has_value) {
            long long v;
            if (!tsr_cli_parse_int(argv[++i], 1, 4096, &v)) {
                fprintf(stderr, "tessera sweep: --jobs '%s' is not an integer in [1, 4096]\n",
                        argv[i]);
                return 2;
            }
            opt.jobs = v;
        } else if (!strcmp(argv[i], "--dry-run")) {
            opt.dry_run = true;
        } else {
            fprintf(stderr, "tessera sweep: unknown or incomplete option '%s'\n\n", argv[i]);
            return usage(stderr);
        }
    }
    /* mpirun (Open MPI) sets this in every rank; plain `tessera sweep` needs
     * no MPI runtime at all. */
    const char *world = getenv("OMPI_COMM_WORLD_SIZE");
    if (world && atoi(world) > 1) {
        if (!opt.dry_run) return sweep_mpi_main(&opt);
        const char *rank = getenv("OMPI_COMM_WORLD_RANK");
        if (rank && atoi(rank) != 0) return 0; /* rank 0 prints the plan */
    }
    return run_local(&opt);
}
