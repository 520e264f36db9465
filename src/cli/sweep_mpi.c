/* sweep_mpi.c — `tessera sweep` under mpirun: rank 0 schedules, every other
 * rank is a worker that runs what it is handed as `tessera train`
 * subprocesses (sweep_exec.c), as many at once as fit its share of its
 * node's cores. Results go where the runs write them: the sweep's output
 * directory, which must be shared by all nodes.
 *
 * Messages are MSG_WORDS int64s: type, run, outcome kind, outcome code,
 * wall and CPU microseconds.
 *   worker -> 0: REQUEST (a slot is free; `run` carries the worker's slots),
 *                RESULT (a run ended), DONE (stopped, nothing running)
 *   0 -> worker: RUN (start this run), STOP (nothing left)
 * Every rank waits by polling (MPI_Test, then a short sleep): Open MPI's
 * blocking calls spin, which would take a core from the runs. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_* */
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/sweep_exec.h"

enum { TAG_TO_SCHEDULER = 1, TAG_TO_WORKER = 2 };
enum { MSG_REQUEST = 1, MSG_RESULT, MSG_DONE, MSG_RUN, MSG_STOP };
enum { MSG_WORDS = 6 };

static void send_message(int to, int tag, int64_t type, int64_t run, const sweep_outcome *o)
{
    int64_t msg[MSG_WORDS] = {type, run, 0, 0, 0, 0};
    if (o) {
        msg[2] = o->kind;
        msg[3] = o->code;
        msg[4] = (int64_t)(o->seconds * 1e6 + 0.5);
        msg[5] = (int64_t)(o->cpu_seconds * 1e6 + 0.5);
    }
    MPI_Send(msg, MSG_WORDS, MPI_INT64_T, to, tag, MPI_COMM_WORLD);
}

static sweep_outcome outcome_of(const int64_t *msg)
{
    return (sweep_outcome){(sweep_outcome_kind)msg[2], msg[3], (double)msg[4] * 1e-6,
                           (double)msg[5] * 1e-6};
}

static void idle(void) { nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL); }

/* Runs at once on this rank (0 on the scheduler). Workers on one node split
 * the cores that any of them may use; a worker bound to fewer cores (mpirun
 * binds ranks to cores by default) uses only those. Collective. */
static int64_t worker_jobs(const sweep_options *opt, int64_t threads, bool is_worker)
{
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int node_size;
    MPI_Comm_size(node, &node_size);
    cpu_set_t own;
    CPU_ZERO(&own);
    if (sched_getaffinity(0, sizeof own, &own) != 0) CPU_SET(0, &own);
    struct {
        cpu_set_t mask;
        int worker;
    } mine = {own, is_worker}, *all = tsr_calloc((size_t)node_size, sizeof *all);
    MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, node);
    cpu_set_t shared;
    CPU_ZERO(&shared);
    int workers = 0;
    for (int i = 0; i < node_size; i++) {
        if (!all[i].worker) continue;
        workers++;
        CPU_OR(&shared, &shared, &all[i].mask);
    }
    tsr_free(all);
    MPI_Comm_free(&node);
    if (!is_worker) return 0;
    if (opt->jobs) return opt->jobs;
    int64_t cores = CPU_COUNT(&shared) / workers;
    if (CPU_COUNT(&own) < cores) cores = CPU_COUNT(&own);
    int64_t jobs = cores / threads;
    return jobs < 1 ? 1 : jobs;
}

/* ==== rank 0 ============================================================== */

static int schedule(const tsr_sweep *sweep, int size, const int64_t *jobs,
                    char (*hosts)[MPI_MAX_PROCESSOR_NAME])
{
    tsr_run_schema *schema = tsr_malloc(sizeof *schema);
    tsr_run_schema_init(schema);
    int64_t *queue = tsr_malloc((size_t)sweep->num_runs * sizeof *queue);
    int64_t queued = 0, finished = 0, resumable = 0;
    bool broken = false;
    for (int64_t r = 0; r < sweep->num_runs && !broken; r++) {
        tsr_sweep_run_state state;
        tsr_error err;
        if (tsr_sweep_run_state_get(sweep, r, schema, &state, &err)) {
            fprintf(stderr, "tessera sweep: %s\n", err.message);
            broken = true;
        } else if (state == TSR_SWEEP_RUN_FINISHED) {
            finished++;
        } else {
            resumable += state == TSR_SWEEP_RUN_UNFINISHED;
            queue[queued++] = r;
        }
    }
    tsr_free(schema);

    int64_t slots = 0;
    for (int i = 1; i < size; i++) slots += jobs[i];
    if (!broken && !sweep_lock_out_dir(sweep)) broken = true;
    if (!broken) {
        printf("sweep %s: %lld runs in %s; %lld finished, %lld to resume, %lld to start; "
               "%d worker%s, %lld runs at once, %lld thread%s each\n",
               sweep->path, (long long)sweep->num_runs, sweep->out_dir, (long long)finished,
               (long long)resumable, (long long)(queued - resumable), size - 1,
               size == 2 ? "" : "s", (long long)slots, (long long)sweep->threads,
               sweep->threads == 1 ? "" : "s");
        for (int i = 1; i < size; i++)
            printf("  rank %d on %s: %lld at once\n", i, hosts[i], (long long)jobs[i]);
        fflush(stdout);
    }

    sweep_progress progress;
    sweep_progress_init(&progress, sweep, slots, finished);
    int64_t next = 0;
    int done_workers = 0;
    int64_t msg[MSG_WORDS];
    MPI_Request request;
    MPI_Irecv(msg, MSG_WORDS, MPI_INT64_T, MPI_ANY_SOURCE, TAG_TO_SCHEDULER, MPI_COMM_WORLD,
              &request);
    while (done_workers < size - 1) {
        int arrived = 0;
        MPI_Status status;
        MPI_Test(&request, &arrived, &status);
        if (!arrived) {
            sweep_progress_tick(&progress);
            idle();
            continue;
        }
        int from = status.MPI_SOURCE;
        char where[MPI_MAX_PROCESSOR_NAME + 32];
        snprintf(where, sizeof where, " (rank %d, %s)", from, hosts[from]);
        if (msg[0] == MSG_REQUEST) {
            if (!broken && !sweep_interrupts && next < queued) {
                int64_t run = queue[next++];
                send_message(from, TAG_TO_WORKER, MSG_RUN, run, NULL);
                sweep_progress_started(&progress, run, where);
            } else {
                send_message(from, TAG_TO_WORKER, MSG_STOP, 0, NULL);
            }
        } else if (msg[0] == MSG_RESULT) {
            sweep_outcome outcome = outcome_of(msg);
            sweep_progress_ended(&progress, msg[1], &outcome, where);
        } else {
            TSR_ASSERT_MSG(msg[0] == MSG_DONE, "message type %lld from rank %d",
                           (long long)msg[0], from);
            done_workers++;
        }
        if (done_workers < size - 1)
            MPI_Irecv(msg, MSG_WORDS, MPI_INT64_T, MPI_ANY_SOURCE, TAG_TO_SCHEDULER,
                      MPI_COMM_WORLD, &request);
    }
    int code = broken ? 1 : sweep_progress_summary(&progress, sweep_interrupts > 0);
    sweep_progress_fini(&progress);
    tsr_free(queue);
    return code;
}

/* ==== the other ranks ===================================================== */

static void work(const tsr_sweep *sweep, int64_t jobs)
{
    sweep_executor executor;
    sweep_executor_init(&executor, sweep, (int)jobs);
    bool waiting = false, stopped = false;
    int64_t reply[MSG_WORDS];
    MPI_Request request;
    for (;;) {
        bool busy = false;
        if (!stopped && !waiting && !sweep_interrupts && executor.count < jobs) {
            send_message(0, TAG_TO_SCHEDULER, MSG_REQUEST, jobs, NULL);
            MPI_Irecv(reply, MSG_WORDS, MPI_INT64_T, 0, TAG_TO_WORKER, MPI_COMM_WORLD, &request);
            waiting = true;
        }
        if (waiting) {
            int arrived = 0;
            MPI_Test(&request, &arrived, MPI_STATUS_IGNORE);
            if (arrived) {
                waiting = false;
                busy = true;
                if (reply[0] == MSG_STOP) {
                    stopped = true;
                } else {
                    TSR_ASSERT_MSG(reply[0] == MSG_RUN, "message type %lld", (long long)reply[0]);
                    sweep_outcome outcome = {SWEEP_OUTCOME_NOT_STARTED, 0, 0, 0};
                    if (sweep_interrupts || !sweep_executor_start(&executor, reply[1], &outcome))
                        send_message(0, TAG_TO_SCHEDULER, MSG_RESULT, reply[1], &outcome);
                }
            }
        }
        int64_t run;
        sweep_outcome outcome;
        while (sweep_executor_poll(&executor, &run, &outcome)) {
            send_message(0, TAG_TO_SCHEDULER, MSG_RESULT, run, &outcome);
            busy = true;
        }
        sweep_executor_forward_interrupts(&executor);
        if ((stopped || sweep_interrupts) && !waiting && executor.count == 0) break;
        if (!busy) idle();
    }
    send_message(0, TAG_TO_SCHEDULER, MSG_DONE, 0, NULL);
    sweep_executor_fini(&executor);
}

int sweep_mpi_main(const sweep_options *opt)
{
    MPI_Init(NULL, NULL);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    sweep_catch_interrupts();

    /* Every rank reads the sweep (from the shared file system); an error is
     * printed once, by rank 0 when it sees it. */
    tsr_sweep *sweep = NULL;
    tsr_error err;
    int ok = tsr_sweep_load(&sweep, opt->path, opt->out_dir, &err) == TSR_STATUS_OK, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    int first_failing = ok ? size : rank, reporter;
    MPI_Allreduce(&first_failing, &reporter, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        if (rank == reporter) fprintf(stderr, "tessera sweep: %s\n", err.message);
        tsr_sweep_free(sweep);
        MPI_Finalize();
        return 1;
    }

    int64_t jobs = worker_jobs(opt, sweep->threads, rank != 0);
    int64_t *all_jobs = tsr_calloc((size_t)size, sizeof *all_jobs);
    MPI_Gather(&jobs, 1, MPI_INT64_T, all_jobs, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    char host[MPI_MAX_PROCESSOR_NAME] = "";
    int host_len;
    MPI_Get_processor_name(host, &host_len);
    char (*hosts)[MPI_MAX_PROCESSOR_NAME] = tsr_calloc((size_t)size, sizeof *hosts);
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0,
               MPI_COMM_WORLD);

    int code = 0;
    if (rank == 0) code = schedule(sweep, size, all_jobs, hosts);
    else work(sweep, jobs);
    tsr_free(hosts);
    tsr_free(all_jobs);
    tsr_sweep_free(sweep);
    MPI_Finalize();
    return code;
}
