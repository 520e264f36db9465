/* sweep.h — a grid of training runs described by one sweep file.
 *
 * A sweep file is INI, like a run config (read with inih):
 *
 *     [sweep]
 *     base = ../breakout/dqn.ini   ; the run config every run starts from,
 *                                  ; relative to this file
 *     games = breakout, asterix    ; short or full env names (default: the base's)
 *     seeds = 3                    ; run.seed = 0, 1, 2
 *     threads = 1                  ; run.threads of every run
 *     out = runs/sweeps/NAME       ; default runs/sweeps/<sweep file's stem>
 *
 *     [axes]                       ; any run config key, a list of values each
 *     network.num_experts = 1, 2, 4, 8
 *
 *     [set]                        ; fixed overrides of every run
 *     run.iterations = 10
 *
 *     [variant wide]               ; optional: named sets of overrides, one more
 *     network.hidden = 512         ; axis whose values change several keys
 *
 * The grid is games x variants x axes x seeds. Each run is the base config
 * with, in order, the [set] keys, its variant's keys, its axis values, env.name
 * (its game), run.seed and run.threads applied as overrides. A run is named by
 * its values, `<game>/[<variant>/]<axis>=<value>/.../seed=<seed>` (an axis is
 * labelled by its key's name, or by section.name when two axes share a name;
 * values keep [A-Za-z0-9._+-], lose spaces and turn other characters into
 * '_'), and lives in `<out>/<name>`. Runs are listed seed-major: every
 * configuration's seed 0 before any seed 1, so a sweep stopped half-way
 * covers its grid evenly.
 *
 * Values in a list are separated by commas; a value that holds a comma is
 * written in double quotes (`network.mlp_hidden = "64, 64", "128, 128"`).
 */
#ifndef TESSERA_SWEEP_H
#define TESSERA_SWEEP_H

#include <stdint.h>

#include "tessera/run_config.h"
#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_sweep_axis {
    char *key;    /* "network.num_experts" */
    char *label;  /* its part of run names: "num_experts" */
    char **values;
    int num_values;
} tsr_sweep_axis;

typedef struct tsr_sweep_variant {
    char *name;        /* from [variant NAME]; a part of run names */
    char **overrides;  /* "section.key=value" */
    int num_overrides;
} tsr_sweep_variant;

typedef struct tsr_sweep_run {
    char *name;        /* "breakout/num_experts=4/seed=0" */
    char *dir;         /* "<out>/<name>" */
    const char *game;  /* the full env name, e.g. "minatar/breakout" */
    int variant;       /* index into tsr_sweep.variants, or -1 when there are none */
    int64_t seed;
    char **overrides;  /* every "section.key=value" applied to the base, in order */
    int num_overrides;
} tsr_sweep_run;

typedef struct tsr_sweep {
    char *path;     /* the sweep file as given */
    char *base;     /* the base run config, resolved against the sweep file's directory */
    char *out_dir;  /* where the runs' directories go */
    int64_t seeds;
    int64_t threads;
    char **games;   /* full env names */
    int num_games;
    tsr_sweep_axis *axes;
    int num_axes;
    char **fixed;   /* [set] as "section.key=value" */
    int num_fixed;
    tsr_sweep_variant *variants;
    int num_variants;
    tsr_sweep_run *runs;
    int64_t num_runs;
} tsr_sweep;

/* Reads and expands the sweep file at `path`; `out_dir` (NULL: the file's
 * `out`, else runs/sweeps/<stem>) replaces its output directory. Every run's
 * config is loaded (tsr_run_config_load) before this returns, so a sweep that
 * loads has no run that fails on its config. Errors (TSR_STATUS_IO,
 * TSR_STATUS_FORMAT, TSR_STATUS_INVALID_ARGUMENT) name the file and line:
 * unknown sections and [sweep] keys (with the nearest valid key), a missing
 * or unreadable base, axis, [set] and variant keys the run schema does not
 * know (with its nearest key), values it refuses, unknown games, a key both
 * an axis and fixed, keys that belong to games/seeds/threads, two runs that
 * would share a name, and any run whose config does not load (naming it). */
tsr_status tsr_sweep_load(tsr_sweep **out, const char *path, const char *out_dir, tsr_error *err);
void tsr_sweep_free(tsr_sweep *sweep);

/* Run `run`'s configuration: the base with the run's overrides. */
tsr_status tsr_sweep_run_config(const tsr_sweep *sweep, int64_t run, const tsr_run_schema *schema,
                                tsr_run_config *cfg, tsr_error *err);

typedef enum tsr_sweep_run_state {
    TSR_SWEEP_RUN_NEW = 0,     /* no config.ini in its directory: start it */
    TSR_SWEEP_RUN_UNFINISHED,  /* config.ini, but not finished: resume */
    TSR_SWEEP_RUN_FINISHED,    /* metrics.csv's last row has iteration = run.iterations */
} tsr_sweep_run_state;

/* Where run `run` stands, from its directory. A run directory whose
 * config.ini differs from the run's planned config in any key but
 * run.threads (the sweep file changed, or the directory belongs to another
 * sweep) is TSR_STATUS_INVALID_ARGUMENT naming the first differing key;
 * an unreadable config.ini or metrics.csv is an error too. */
tsr_status tsr_sweep_run_state_get(const tsr_sweep *sweep, int64_t run,
                                   const tsr_run_schema *schema, tsr_sweep_run_state *state,
                                   tsr_error *err);

/* The last completed iteration recorded in RUN_DIR/metrics.csv (0 when the
 * file is missing or has no rows). A row whose first field is not an
 * iteration number is TSR_STATUS_FORMAT. */
tsr_status tsr_run_dir_last_iteration(const char *run_dir, int64_t *iteration, tsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
