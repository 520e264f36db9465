/* cmd_report.c — `tessera report DIR...`: rliable's aggregate metrics over
 * finished runs (stats.h), per group, with stratified-bootstrap intervals,
 * as Markdown tables (and CSV), plus learning and scaling curves drawn by
 * gnuplot.
 *
 * A run is a directory holding the config.ini and metrics.csv that
 * `tessera train` writes. Its task is env.name, its score the eval_return of
 * its last iteration, and it counts only when that iteration is
 * run.iterations (the run finished). Runs are grouped by the value of one
 * config key (--by); without --by they form one group, "all". */

/* posix_spawn_file_actions_addchdir_np (glibc >= 2.29): gnuplot runs inside
 * the figure directory without a fork of our own. */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

extern char **environ;

enum { DEFAULT_CURVE_REPS = 2000, MAX_SEARCH_DEPTH = 32 };

static int usage(FILE *out)
{
    fprintf(out,
            "usage: tessera report DIR... [--by KEY] [--normalize TABLE|none] [--reps N] [--seed S]\n"
            "                      [--csv FILE] [--plots DIR] [--scale KEY] [--curve-reps N]\n"
            "                      [--task-bootstrap] [--profile-taus LO:HI]\n"
            "  DIR           a run directory (config.ini + metrics.csv) or a directory searched\n"
            "                for them; a run counts once its last iteration is run.iterations\n"
            "  --by          group runs by a config key, e.g. network.num_experts (default: one\n"
            "                group, 'all')\n"
            "  --normalize   a table of game,random,reference rows, e.g.\n"
            "                configs/normalization/minatar.csv: score = (return - random) /\n"
            "                (reference - random); 'none' (default) keeps raw returns\n"
            "  --reps        bootstrap resamples for the tables and scaling.svg (default 50000,\n"
            "                at least 100)\n"
            "  --seed        seed of the bootstrap (default 0)\n"
            "  --csv         also write the numbers as CSV to FILE\n"
            "  --plots       write learning_curves.svg, performance_profile.svg (and\n"
            "                scaling.svg with --scale) into DIR with gnuplot (Debian package\n"
            "                gnuplot-nox)\n"
            "  --scale       a numeric config key, or 'params' (parameter count), for scaling.svg\n"
            "                (needs --plots)\n"
            "  --curve-reps  bootstrap resamples per learning-curve point and for the\n"
            "                performance profile (default 2000, at least 100)\n"
            "  --task-bootstrap  resample the tasks too (rliable's task_bootstrap): the\n"
            "                intervals then also cover the choice of tasks; P(X > Y) still\n"
            "                resamples runs only, as rliable\n"
            "  --profile-taus  the thresholds of performance_profile.svg: 101 from LO to\n"
            "                HI (default: the lowest to the highest final score; needs --plots)\n"
            "Per group: mean and median of the per-task mean scores, IQM (25%% trimmed mean over\n"
            "runs x tasks) and optimality gap (1 - mean(min(score, 1))), each with a 95%%\n"
            "stratified-bootstrap interval, and P(X > Y) between every two groups.\n");
    return out == stdout ? 0 : 2;
}

/* ---- growable arrays ------------------------------------------------------- */

static void *grow(void *items, int64_t *capacity, int64_t count, size_t item_size)
{
    if (count < *capacity) return items;
    *capacity = *capacity ? 2 * *capacity : 16;
    return tsr_realloc(items, (size_t)*capacity * item_size);
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = tsr_malloc(n);
    memcpy(c, s, n);
    return c;
}

/* ---- config keys ----------------------------------------------------------- */

/* A "section.key" argument, checked against the run schema. */
typedef struct config_key {
    char section[64], name[96];
    const tsr_config_key *entry;
} config_key;

static const char *const run_sections = "env, network, loss, pruning, agent, optimizer, run";

/* `text` has the section.key form (tsr_cli_config_key_form, checked with the
 * rest of the command line). */
static tsr_status parse_config_key(const tsr_run_schema *schema, const char *option,
                                   const char *text, config_key *key, tsr_error *err)
{
    const char *dot = strchr(text, '.');
    size_t ls = (size_t)(dot - text), ln = strlen(dot + 1);
    if (ls >= sizeof key->section || ln >= sizeof key->name)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: unknown key %.80s%s (longer than any key); sections: %s",
                             option, text, strlen(text) > 80 ? "..." : "", run_sections);
    memcpy(key->section, text, ls);
    key->section[ls] = '\0';
    memcpy(key->name, dot + 1, ln + 1);
    key->entry = tsr_config_find(&schema->schema, key->section, key->name);
    if (key->entry) return TSR_STATUS_OK;
    /* tsr_config_set refuses an unknown key before it writes anything, with
     * the nearest valid key in its message: the same words `tessera train
     * --set` uses. */
    tsr_run_config scratch;
    tsr_error set_err;
    tsr_config_set(&schema->schema, &scratch, key->section, key->name, "", option, &set_err);
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "%s; sections: %s", set_err.message,
                         run_sections);
}

/* ---- reading a run --------------------------------------------------------- */

typedef struct run {
    char task[TSR_CONFIG_STRING_BYTES];  /* env.name */
    char group[TSR_CONFIG_STRING_BYTES]; /* value of --by, or "all" */
    double scale;                        /* value of --scale, NAN without */
    int64_t num_points;                  /* finished iterations */
    int64_t budget;                      /* run.iterations x run.training_steps; 0: unknown */
    double *agent_steps;                 /* (num_points) */
    double *eval_return;                 /* (num_points), normalised; NAN where not evaluated */
    int task_id, group_id;
    /* Its config.ini's settings that could change a score ("section.key"
     * and value pairs in file order, ignored_setting's left out), for the
     * note on a task's runs whose settings differ: views into `settings`. */
    char *settings;
    const char **setting_keys, **setting_values;
    int num_settings;
} run;

/* Values of the keys a report needs, from one config.ini (parsed by inih). */
enum { PROBE_TASK, PROBE_ITERATIONS, PROBE_BY, PROBE_SCALE, PROBE_STEPS, PROBE_COUNT };

typedef struct config_probe {
    const config_key *keys[PROBE_COUNT]; /* NULL: not wanted */
    char values[PROBE_COUNT][TSR_CONFIG_STRING_BYTES];
    bool found[PROBE_COUNT];
    /* Every other setting, as "section.key\0value\0" records. */
    char *settings;
    size_t settings_size, settings_capacity;
    int num_settings;
} config_probe;

/* Keys that differ between runs of one experiment without making their
 * scores incomparable: the seed (what the runs are for), threads and
 * numerics, logging, a metric's threshold, checkpointing and the replay's
 * lossless packing; the budget has a note of its own, and [config] names
 * base files. */
static bool ignored_setting(const char *section, const char *name)
{
    static const char *const run_keys[] = {
        "seed",           "threads",         "flush_denormals",  "log_every",
        "dormant_threshold", "checkpoint_every", "checkpoint_keep", "checkpoint_replay",
        "iterations",     "training_steps"};
    if (!strcmp(section, "env") && !strcmp(name, "name")) return true; /* the task */
    if (!strcmp(section, "agent") && !strcmp(name, "bit_pack_replay")) return true;
    if (!strcmp(section, "config")) return true;
    if (strcmp(section, "run")) return false;
    for (size_t i = 0; i < sizeof run_keys / sizeof run_keys[0]; i++)
        if (!strcmp(name, run_keys[i])) return true;
    return false;
}

static int on_config_entry(void *user, const char *section, const char *name, const char *value)
{
    config_probe *p = user;
    if (!ignored_setting(section, name)) {
        size_t need = strlen(section) + strlen(name) + strlen(value) + 3;
        if (p->settings_size + need > p->settings_capacity) {
            p->settings_capacity = 2 * (p->settings_size + need) + 1024;
            p->settings = tsr_realloc(p->settings, p->settings_capacity);
        }
        p->settings_size += (size_t)sprintf(p->settings + p->settings_size, "%s.%s", section,
                                            name) + 1;
        p->settings_size += (size_t)sprintf(p->settings + p->settings_size, "%s", value) + 1;
        p->num_settings++;
    }
    for (int i = 0; i < PROBE_COUNT; i++) {
        if (!p->keys[i] || strcmp(section, p->keys[i]->section) || strcmp(name, p->keys[i]->name))
            continue;
        snprintf(p->values[i], sizeof p->values[i], "%s", value);
        p->found[i] = true;
    }
    return 1;
}

/* Splits a CSV line in place at commas (no quoting: metrics.csv and the
 * normalisation tables have none); returns the number of fields. */
static int split_csv(char *line, char **fields, int max_fields)
{
    line[strcspn(line, "\r\n")] = '\0';
    int n = 0;
    for (char *p = line;; p++) {
        if (n < max_fields) fields[n] = p;
        n++;
        p = strchr(p, ',');
        if (!p) break;
        *p = '\0';
    }
    return n;
}

static bool parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return end != text && !*end && !errno && isfinite(*out);
}

enum { MAX_CSV_FIELDS = 64 };

/* Reads metrics.csv's iteration, agent_steps and eval_return columns (found
 * by name in the header). *last_iteration is the last row's iteration, 0
 * without rows. */
static tsr_status read_metrics(const char *path, run *r, int64_t *last_iteration, tsr_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t line_capacity = 0;
    char *fields[MAX_CSV_FIELDS];
    tsr_status st = TSR_STATUS_OK;
    int column[3] = {-1, -1, -1};
    static const char *const wanted[3] = {"iteration", "agent_steps", "eval_return"};
    int64_t capacity = 0, line_number = 1;
    *last_iteration = 0;
    if (getline(&line, &line_capacity, f) < 0) {
        st = tsr_error_set(err, TSR_STATUS_FORMAT, "%s is empty (expected a header line)", path);
        goto done;
    }
    int n = split_csv(line, fields, MAX_CSV_FIELDS);
    for (int i = 0; i < n && i < MAX_CSV_FIELDS; i++)
        for (int k = 0; k < 3; k++)
            if (!strcmp(fields[i], wanted[k])) column[k] = i;
    for (int k = 0; k < 3; k++)
        if (column[k] < 0) {
            st = tsr_error_set(err, TSR_STATUS_FORMAT, "%s: the header has no %s column", path,
                               wanted[k]);
            goto done;
        }
    ssize_t length;
    while ((length = getline(&line, &line_capacity, f)) >= 0) {
        line_number++;
        /* A row is complete with its newline: one without is still being
         * written (a run in progress), not a finished iteration. */
        if (line[length - 1] != '\n') break;
        if (line[strspn(line, " \r\n")] == '\0') continue;
        n = split_csv(line, fields, MAX_CSV_FIELDS);
        int needed = column[0];
        for (int k = 1; k < 3; k++) needed = column[k] > needed ? column[k] : needed;
        double iteration, steps, value = NAN;
        if (n <= needed || !parse_double(fields[column[0]], &iteration) ||
            !parse_double(fields[column[1]], &steps) ||
            (fields[column[2]][0] && !parse_double(fields[column[2]], &value))) {
            st = tsr_error_set(err, TSR_STATUS_FORMAT,
                               "%s:%lld: expected numbers in the iteration, agent_steps and "
                               "eval_return columns (eval_return may be empty; nan and inf "
                               "are not allowed)",
                               path, (long long)line_number);
            goto done;
        }
        if (r->num_points == capacity) {
            capacity = capacity ? 2 * capacity : 64;
            r->agent_steps = tsr_realloc(r->agent_steps, (size_t)capacity * sizeof *r->agent_steps);
            r->eval_return = tsr_realloc(r->eval_return, (size_t)capacity * sizeof *r->eval_return);
        }
        r->agent_steps[r->num_points] = steps;
        r->eval_return[r->num_points] = value;
        r->num_points++;
        *last_iteration = (int64_t)iteration;
    }
done:
    free(line);
    fclose(f);
    return st;
}

/* ---- the normalisation table ----------------------------------------------- */

typedef struct norm_row {
    char game[TSR_CONFIG_STRING_BYTES];
    double random, reference;
} norm_row;

typedef struct norm_table {
    const char *path;
    norm_row *rows;
    int64_t count, capacity;
} norm_table;

/* Reads "game,random,reference" rows; '#' starts a comment line. */
static tsr_status read_norm_table(const char *path, norm_table *t, tsr_error *err)
{
    t->path = path;
    FILE *f = fopen(path, "r");
    if (!f)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open normalisation table %s: %s", path,
                             strerror(errno));
    char *line = NULL;
    size_t line_capacity = 0;
    tsr_status st = TSR_STATUS_OK;
    bool header = false;
    int64_t line_number = 0;
    while (getline(&line, &line_capacity, f) >= 0) {
        line_number++;
        char *start = line + strspn(line, " \t");
        if (*start == '#' || start[strspn(start, " \t\r\n")] == '\0') continue;
        char *fields[4];
        int n = split_csv(start, fields, 4);
        if (!header) {
            if (n != 3 || strcmp(fields[0], "game") || strcmp(fields[1], "random") ||
                strcmp(fields[2], "reference")) {
                st = tsr_error_set(err, TSR_STATUS_FORMAT,
                                   "%s:%lld: expected the header game,random,reference", path,
                                   (long long)line_number);
                break;
            }
            header = true;
            continue;
        }
        norm_row row;
        if (n != 3 || !fields[0][0] || strlen(fields[0]) >= sizeof row.game ||
            !parse_double(fields[1], &row.random) || !parse_double(fields[2], &row.reference)) {
            st = tsr_error_set(err, TSR_STATUS_FORMAT,
                               "%s:%lld: expected game,random,reference (a name and two numbers)",
                               path, (long long)line_number);
            break;
        }
        if (row.reference == row.random) {
            st = tsr_error_set(err, TSR_STATUS_FORMAT,
                               "%s:%lld: %s has reference = random = %g (nothing to scale by)",
                               path, (long long)line_number, fields[0], row.random);
            break;
        }
        snprintf(row.game, sizeof row.game, "%s", fields[0]);
        t->rows = grow(t->rows, &t->capacity, t->count, sizeof *t->rows);
        t->rows[t->count++] = row;
    }
    free(line);
    fclose(f);
    if (st == TSR_STATUS_OK && !header)
        st = tsr_error_set(err, TSR_STATUS_FORMAT, "%s has no game,random,reference header", path);
    return st;
}

static const norm_row *find_norm_row(const norm_table *t, const char *game)
{
    for (int64_t i = 0; i < t->count; i++)
        if (!strcmp(t->rows[i].game, game)) return &t->rows[i];
    return NULL;
}

/* ---- finding runs ---------------------------------------------------------- */

typedef struct run_identity {
    dev_t device;
    ino_t inode;
} run_identity;

typedef struct report {
    run *runs;
    int64_t num_runs, capacity;
    int64_t unfinished, unevaluated; /* skipped runs */
    /* Every run directory reached, finished or not, so that one reached twice
     * (overlapping DIRs, a symlink) is loaded once. */
    run_identity *seen;
    int64_t num_seen, seen_capacity, duplicates;
    char **tasks, **groups;          /* sorted distinct values */
    int num_tasks, num_groups;
} report;

typedef struct load_context {
    const tsr_run_schema *schema;
    const config_key *by, *scale; /* NULL when not given */
    bool scale_params;
    const norm_table *norm;       /* NULL: raw returns */
    tsr_run_config *scratch;      /* for canonical_value */
} load_context;

static bool is_file(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat s;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
           stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

/* The parameter count of the run's network, built from its config.ini as
 * `tessera summary` builds it. */
static tsr_status count_params(const load_context *ctx, const char *config_path, double *count,
                               tsr_error *err)
{
    tsr_run_config *cfg = tsr_malloc(sizeof *cfg);
    tsr_status st = tsr_run_config_load(ctx->schema, cfg, config_path, NULL, 0, err);
    tsr_env_game game;
    tsr_env_options options;
    tsr_env env;
    if (st == TSR_STATUS_OK) st = tsr_run_config_env(cfg, &game, &options, err);
    if (st == TSR_STATUS_OK) st = tsr_env_init(&env, game, &options, 0, err);
    tsr_support support;
    if (st == TSR_STATUS_OK) st = tsr_support_init(&support, &cfg->loss, err);
    if (st == TSR_STATUS_OK) {
        tsr_env_spec spec = tsr_env_get_spec(&env);
        tsr_image_shape input = spec.obs_ndim == 1
                                    ? (tsr_image_shape){1, 1, spec.obs_shape[0]}
                                    : (tsr_image_shape){spec.obs_shape[0], spec.obs_shape[1],
                                                        spec.obs_shape[2]};
        tsr_network net;
        st = tsr_network_init(&net, &cfg->network, input, spec.num_actions,
                              tsr_support_head_width(&support), 1.0f, TSR_DTYPE_F32, err);
        if (st == TSR_STATUS_OK) {
            *count = (double)tsr_params_count(&net.params);
            tsr_network_fini(&net);
        }
        tsr_support_fini(&support);
    }
    tsr_free(cfg);
    return st;
}

/* The schema's entry for "section.key", or NULL. */
static const tsr_config_key *schema_entry(const tsr_run_schema *schema, const char *key)
{
    char section[TSR_CONFIG_STRING_BYTES];
    const char *dot = strchr(key, '.');
    if (!dot || (size_t)(dot - key) >= sizeof section) return NULL;
    memcpy(section, key, (size_t)(dot - key));
    section[dot - key] = '\0';
    return tsr_config_find(&schema->schema, section, dot + 1);
}

/* `value` of "section.key" as tessera writes it (0.99 for
 * 0.98999999999999999, true for yes), or as it is for a key or value this
 * tessera does not know. */
static const char *canonical_value(const tsr_run_schema *schema, tsr_run_config *scratch,
                                   const char *key, const char *value, char *buf, size_t size)
{
    const tsr_config_key *entry = schema_entry(schema, key);
    tsr_error ignored;
    if (entry && tsr_config_set(&schema->schema, scratch, entry->section, entry->name, value,
                                "report", &ignored) == TSR_STATUS_OK)
        return tsr_config_format_value(entry, scratch, buf, size);
    snprintf(buf, size, "%s", value);
    return buf;
}

/* The probe's settings into the run: a key given twice keeps its last
 * value (as inih's readers do), every value canonical. */
static void take_settings(const load_context *ctx, run *r, const config_probe *probe)
{
    int n = 0;
    const char **keys = tsr_malloc((size_t)(2 * probe->num_settings + 1) * sizeof *keys);
    const char **values = keys + probe->num_settings;
    const char *p = probe->settings;
    for (int i = 0; i < probe->num_settings; i++) {
        const char *key = p, *value = p + strlen(p) + 1;
        p = value + strlen(value) + 1;
        int j = 0;
        while (j < n && strcmp(keys[j], key)) j++;
        keys[j] = key;
        values[j] = value;
        n += j == n;
    }
    size_t size = 0, capacity = 0;
    char *block = NULL;
    for (int i = 0; i < n; i++) {
        char canonical[TSR_CONFIG_STRING_BYTES + 32];
        canonical_value(ctx->schema, ctx->scratch, keys[i], values[i], canonical,
                        sizeof canonical);
        size_t need = strlen(keys[i]) + strlen(canonical) + 2;
        if (size + need > capacity) {
            capacity = 2 * (size + need) + 1024;
            block = tsr_realloc(block, capacity);
        }
        size += (size_t)sprintf(block + size, "%s", keys[i]) + 1;
        size += (size_t)sprintf(block + size, "%s", canonical) + 1;
    }
    r->settings = block;
    r->num_settings = n;
    r->setting_keys = keys; /* repointed into the block below */
    r->setting_values = keys + n;
    const char *b = block;
    for (int i = 0; i < n; i++) {
        keys[i] = b;
        b += strlen(b) + 1;
        keys[n + i] = b;
        b += strlen(b) + 1;
    }
}

static tsr_status load_probed_run(const load_context *ctx, const char *dir, config_probe *probe,
                                  report *rep, tsr_error *err);

/* Reads the run in `dir` and appends it, or counts it as skipped. */
static tsr_status load_run(const load_context *ctx, const char *dir, report *rep, tsr_error *err)
{
    config_key task_key = {"env", "name", NULL}, iterations_key = {"run", "iterations", NULL};
    config_key steps_key = {"run", "training_steps", NULL};
    config_probe probe = {.keys = {&task_key, &iterations_key, ctx->by, ctx->scale, &steps_key}};
    tsr_status st = load_probed_run(ctx, dir, &probe, rep, err);
    tsr_free(probe.settings);
    return st;
}

static tsr_status load_probed_run(const load_context *ctx, const char *dir, config_probe *probe,
                                  report *rep, tsr_error *err)
{
    char config_path[PATH_MAX], metrics_path[PATH_MAX];
    snprintf(config_path, sizeof config_path, "%s/config.ini", dir);
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.csv", dir);
    int line = ini_parse(config_path, on_config_entry, probe);
    if (line < 0)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot read %s", config_path);
    if (line > 0)
        return tsr_error_set(err, TSR_STATUS_FORMAT, "%s:%d: not INI syntax", config_path, line);
    for (int i = 0; i < PROBE_COUNT; i++)
        if (probe->keys[i] && !probe->found[i] && i != PROBE_STEPS) /* steps: for a note only */
            return tsr_error_set(err, TSR_STATUS_FORMAT, "%s has no %s.%s", config_path,
                                 probe->keys[i]->section, probe->keys[i]->name);
    char *end;
    long long iterations = strtoll(probe->values[PROBE_ITERATIONS], &end, 10);
    if (*end || end == probe->values[PROBE_ITERATIONS] || iterations < 1)
        return tsr_error_set(err, TSR_STATUS_FORMAT, "%s: run.iterations = '%s' is not a count",
                             config_path, probe->values[PROBE_ITERATIONS]);

    run r = {0};
    int64_t last_iteration = 0;
    bool skipped = false;
    tsr_status st = read_metrics(metrics_path, &r, &last_iteration, err);
    if (st == TSR_STATUS_OK && (last_iteration != iterations || r.num_points == 0)) {
        fprintf(stderr, "tessera report: skipping %s: unfinished (iteration %lld of %lld)\n", dir,
                (long long)last_iteration, iterations);
        rep->unfinished++;
        skipped = true;
    } else if (st == TSR_STATUS_OK && isnan(r.eval_return[r.num_points - 1])) {
        fprintf(stderr, "tessera report: skipping %s: its last iteration has no eval_return "
                        "(run.evaluation_episodes = 0?)\n", dir);
        rep->unevaluated++;
        skipped = true;
    }
    if (st == TSR_STATUS_OK && !skipped) {
        snprintf(r.task, sizeof r.task, "%s", probe->values[PROBE_TASK]);
        snprintf(r.group, sizeof r.group, "%s", ctx->by ? probe->values[PROBE_BY] : "all");
        /* The group is the value, not its spelling: 0.9 written by one
         * tessera as 0.90000000000000002 and by another as 0.9 is one
         * group, named the short way. */
        if (ctx->by && ctx->by->entry) {
            tsr_run_config *scratch = tsr_malloc(sizeof *scratch);
            tsr_run_config_defaults(ctx->schema, scratch);
            tsr_error ignored;
            if (tsr_config_set(&ctx->schema->schema, scratch, ctx->by->section, ctx->by->name,
                               r.group, config_path, &ignored) == TSR_STATUS_OK)
                tsr_config_format_value(ctx->by->entry, scratch, r.group, sizeof r.group);
            tsr_free(scratch);
        }
        /* A config.ini without the key (written before it existed) had
         * the default, as for every setting. */
        const tsr_config_key *steps_entry =
            tsr_config_find(&ctx->schema->schema, "run", "training_steps");
        const char *steps_text = probe->found[PROBE_STEPS] ? probe->values[PROBE_STEPS]
                                 : steps_entry              ? steps_entry->default_value
                                                            : "";
        long long steps = strtoll(steps_text, &end, 10);
        r.budget = steps > 0 && !*end ? iterations * steps : 0;
        r.scale = NAN;
        if (ctx->scale && !parse_double(probe->values[PROBE_SCALE], &r.scale))
            st = tsr_error_set(err, TSR_STATUS_FORMAT, "%s: %s.%s = '%s' is not a number",
                               config_path, ctx->scale->section, ctx->scale->name,
                               probe->values[PROBE_SCALE]);
        if (st == TSR_STATUS_OK && ctx->scale_params)
            st = count_params(ctx, config_path, &r.scale, err);
    }
    if (st == TSR_STATUS_OK && !skipped && ctx->norm) {
        const norm_row *row = find_norm_row(ctx->norm, r.task);
        if (!row) {
            st = tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                               "normalisation table %s has no row for %s (the env.name of %s): "
                               "add one (game,random,reference), or report raw returns without "
                               "--normalize",
                               ctx->norm->path, r.task, dir);
        } else {
            for (int64_t i = 0; i < r.num_points; i++)
                r.eval_return[i] = (r.eval_return[i] - row->random) / (row->reference - row->random);
        }
    }
    if (st != TSR_STATUS_OK || skipped) {
        tsr_free(r.agent_steps);
        tsr_free(r.eval_return);
        return st;
    }
    take_settings(ctx, &r, probe);
    rep->runs = grow(rep->runs, &rep->capacity, rep->num_runs, sizeof *rep->runs);
    rep->runs[rep->num_runs++] = r;
    return TSR_STATUS_OK;
}

/* Loads `dir` if it is a run, else every run below it (in name order). */
static tsr_status search(const load_context *ctx, const char *dir, int depth, report *rep,
                         tsr_error *err)
{
    struct stat s;
    if (stat(dir, &s) != 0)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot read %s: %s", dir, strerror(errno));
    if (!S_ISDIR(s.st_mode))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s is not a directory (expected a run directory or one holding runs)",
                             dir);
    if (is_file(dir, "config.ini") && is_file(dir, "metrics.csv")) {
        for (int64_t i = 0; i < rep->num_seen; i++)
            if (rep->seen[i].device == s.st_dev && rep->seen[i].inode == s.st_ino) {
                rep->duplicates++;
                return TSR_STATUS_OK;
            }
        if (rep->num_seen == rep->seen_capacity) {
            rep->seen_capacity = rep->seen_capacity ? 2 * rep->seen_capacity : 64;
            rep->seen = tsr_realloc(rep->seen, (size_t)rep->seen_capacity * sizeof *rep->seen);
        }
        rep->seen[rep->num_seen++] = (run_identity){s.st_dev, s.st_ino};
        return load_run(ctx, dir, rep, err);
    }
    if (depth >= MAX_SEARCH_DEPTH)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s is nested more than %d directories deep (a symlink loop?)", dir,
                             MAX_SEARCH_DEPTH);
    struct dirent **entries;
    int n = scandir(dir, &entries, NULL, alphasort);
    if (n < 0) return tsr_error_set(err, TSR_STATUS_IO, "cannot list %s: %s", dir, strerror(errno));
    tsr_status st = TSR_STATUS_OK;
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name;
        char path[PATH_MAX];
        if (st == TSR_STATUS_OK && strcmp(name, ".") && strcmp(name, "..") &&
            snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
            stat(path, &s) == 0 && S_ISDIR(s.st_mode))
            st = search(ctx, path, depth + 1, rep, err);
        free(entries[i]);
    }
    free(entries);
    return st;
}

/* ---- tasks and groups ------------------------------------------------------ */

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int compare_numeric_strings(const void *a, const void *b)
{
    double x = strtod(*(char *const *)a, NULL), y = strtod(*(char *const *)b, NULL);
    return x < y ? -1 : x > y ? 1 : compare_strings(a, b);
}

/* The distinct values of `labels` (n of them), sorted: by number when every
 * one is a number (1, 2, 4, 16), else by name. Owns copies. */
static char **distinct_sorted(char **labels, int64_t n, int *count)
{
    char **out = tsr_malloc((size_t)(n ? n : 1) * sizeof *out);
    int k = 0;
    bool numeric = true;
    for (int64_t i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < k && !seen; j++) seen = !strcmp(out[j], labels[i]);
        if (seen) continue;
        double value;
        numeric &= parse_double(labels[i], &value);
        out[k++] = copy_string(labels[i]);
    }
    qsort(out, (size_t)k, sizeof *out, numeric ? compare_numeric_strings : compare_strings);
    *count = k;
    return out;
}

static int index_of(char **values, int count, const char *value)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(values[i], value)) return i;
    TSR_ASSERT_MSG(false, "'%s' is not among the distinct values", value);
}

static void index_runs(report *rep)
{
    char **labels = tsr_malloc((size_t)(rep->num_runs ? rep->num_runs : 1) * sizeof *labels);
    for (int64_t i = 0; i < rep->num_runs; i++) labels[i] = rep->runs[i].task;
    rep->tasks = distinct_sorted(labels, rep->num_runs, &rep->num_tasks);
    for (int64_t i = 0; i < rep->num_runs; i++) labels[i] = rep->runs[i].group;
    rep->groups = distinct_sorted(labels, rep->num_runs, &rep->num_groups);
    tsr_free(labels);
    for (int64_t i = 0; i < rep->num_runs; i++) {
        rep->runs[i].task_id = index_of(rep->tasks, rep->num_tasks, rep->runs[i].task);
        rep->runs[i].group_id = index_of(rep->groups, rep->num_groups, rep->runs[i].group);
    }
}

static void free_report(report *rep)
{
    for (int64_t i = 0; i < rep->num_runs; i++) {
        tsr_free(rep->runs[i].agent_steps);
        tsr_free(rep->runs[i].eval_return);
        tsr_free(rep->runs[i].settings);
        tsr_free(rep->runs[i].setting_keys);
    }
    tsr_free(rep->runs);
    tsr_free(rep->seen);
    for (int i = 0; i < rep->num_tasks; i++) tsr_free(rep->tasks[i]);
    for (int i = 0; i < rep->num_groups; i++) tsr_free(rep->groups[i]);
    tsr_free(rep->tasks);
    tsr_free(rep->groups);
}

/* ---- score matrices -------------------------------------------------------- */

/* Storage for one group's runs × tasks matrix, sized once for every run. */
typedef struct matrix_storage {
    int64_t *num_runs; /* (report tasks) */
    double *scores;    /* (report runs) */
} matrix_storage;

static void matrix_storage_init(matrix_storage *s, const report *rep)
{
    s->num_runs = tsr_malloc((size_t)rep->num_tasks * sizeof *s->num_runs);
    s->scores = tsr_malloc((size_t)(rep->num_runs ? rep->num_runs : 1) * sizeof *s->scores);
}

static void matrix_storage_fini(matrix_storage *s)
{
    tsr_free(s->num_runs);
    tsr_free(s->scores);
}

/* What a matrix holds: the runs of `group` (-1: of every group; whose scale is `scale` unless
 * that is NAN), on the tasks where `task_allowed` (NULL: all), scored at
 * iteration index `point` (-1: each run's last). */
typedef struct selection {
    int group;
    double scale;
    const bool *task_allowed;
    int64_t point;
} selection;

static bool selected(const run *r, const selection *sel)
{
    return (sel->group < 0 || r->group_id == sel->group) && (isnan(sel->scale) || r->scale == sel->scale) &&
           (!sel->task_allowed || sel->task_allowed[r->task_id]) &&
           (sel->point < 0 || sel->point < r->num_points);
}

/* Fills `m` (views into `s`) with the selected scores, task by task, tasks
 * without a selected run left out. Returns false when there is none, or a
 * selected run was not evaluated at sel->point. */
static bool gather(const report *rep, const selection *sel, matrix_storage *s, tsr_score_matrix *m,
                   int64_t *num_runs)
{
    int64_t tasks = 0, size = 0;
    bool complete = true;
    for (int t = 0; t < rep->num_tasks; t++) {
        int64_t runs = 0;
        for (int64_t i = 0; i < rep->num_runs; i++) {
            const run *r = &rep->runs[i];
            if (r->task_id != t || !selected(r, sel)) continue;
            double v = r->eval_return[sel->point < 0 ? r->num_points - 1 : sel->point];
            complete &= !isnan(v);
            s->scores[size + runs++] = v;
        }
        if (runs) s->num_runs[tasks++] = runs;
        size += runs;
    }
    *m = (tsr_score_matrix){tasks, s->num_runs, s->scores};
    *num_runs = size;
    return size > 0 && complete;
}

/* ---- tables ---------------------------------------------------------------- */

/* A label in a Markdown cell: '|' escaped. */
static void put_markdown(FILE *out, const char *text)
{
    for (const char *c = text; *c; c++) {
        if (*c == '|') fputc('\\', out);
        fputc(*c, out);
    }
}

/* A CSV field, quoted when it holds a comma, quote or newline (RFC 4180). */
static void put_csv(FILE *out, const char *text)
{
    if (!text[strcspn(text, ",\"\n")]) {
        fputs(text, out);
        return;
    }
    fputc('"', out);
    for (const char *c = text; *c; c++) {
        if (*c == '"') fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
}

/* A table number: 3 decimals, without the "-0.000" of a tiny negative. */
static double tidy(double v) { return fabs(v) < 0.0005 ? 0.0 : v; }

static void put_estimate(FILE *out, tsr_estimate e)
{
    fprintf(out, " %.3f [%.3f, %.3f] |", tidy(e.value), tidy(e.lo), tidy(e.hi));
}

static void put_csv_row(FILE *csv, const char *metric, const char *group, const char *versus,
                        int64_t runs, int64_t versus_runs, int64_t tasks, tsr_estimate e)
{
    fprintf(csv, "%s,", metric);
    put_csv(csv, group);
    fputc(',', csv);
    put_csv(csv, versus);
    fprintf(csv, ",%lld,", (long long)runs);
    if (versus_runs >= 0) fprintf(csv, "%lld", (long long)versus_runs);
    fprintf(csv, ",%lld,%.9g,%.9g,%.9g\n", (long long)tasks, e.value, e.lo, e.hi);
}

static const char *const table_headers[TSR_AGGREGATE_COUNT] = {"mean", "median", "IQM",
                                                                "optimality gap"};

static void print_aggregates(const report *rep, const char *group_header,
                             const tsr_bootstrap_options *o, FILE *csv)
{
    matrix_storage s;
    matrix_storage_init(&s, rep);
    printf("| %s | runs | tasks |", group_header);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) printf(" %s |", table_headers[k]);
    printf("\n|---|---|---|");
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) printf("---|");
    printf("\n");
    for (int g = 0; g < rep->num_groups; g++) {
        tsr_score_matrix m;
        int64_t runs;
        gather(rep, &(selection){g, NAN, NULL, -1}, &s, &m, &runs);
        tsr_estimate e[TSR_AGGREGATE_COUNT];
        tsr_stats_bootstrap_aggregates(&m, o, e);
        printf("| ");
        put_markdown(stdout, rep->groups[g]);
        printf(" | %lld | %lld |", (long long)runs, (long long)m.num_tasks);
        for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) put_estimate(stdout, e[k]);
        printf("\n");
        for (int k = 0; csv && k < TSR_AGGREGATE_COUNT; k++)
            put_csv_row(csv, tsr_aggregate_names[k], rep->groups[g], "", runs, -1, m.num_tasks,
                        e[k]);
    }
    matrix_storage_fini(&s);
}

/* r's value of `key` ("section.key"); for a key its config.ini lacks (one
 * written before the key existed) the default, which is what loading that
 * file gives, canonical in `buf`; NULL for a key this tessera does not know
 * either. */
static const char *find_setting(const tsr_run_schema *schema, tsr_run_config *scratch,
                                const run *r, const char *key, char *buf, size_t size)
{
    for (int i = 0; i < r->num_settings; i++)
        if (!strcmp(r->setting_keys[i], key)) return r->setting_values[i];
    const tsr_config_key *entry = schema_entry(schema, key);
    if (!entry) return NULL;
    return canonical_value(schema, scratch, key, entry->default_value, buf, size);
}

/* Keys the settings note leaves out besides ignored_setting's: --scale's
 * (its values are what a scaling report pools on purpose), and with
 * --scale params every [network] key. */
static bool scaled_setting(const load_context *ctx, const char *key)
{
    if (ctx->scale_params) return !strncmp(key, "network.", 8);
    if (!ctx->scale) return false;
    size_t n = strlen(ctx->scale->section);
    return !strncmp(key, ctx->scale->section, n) && key[n] == '.' &&
           !strcmp(key + n + 1, ctx->scale->name);
}

enum { MAX_NAMED_SETTINGS = 4 };

typedef struct mixed_setting {
    const char *key;
    char values[2][TSR_CONFIG_STRING_BYTES + 32]; /* two that differ */
} mixed_setting;

/* The note on group g's runs whose configs differ within a task in a
 * setting other than ignored_setting's and scaled_setting's: the scores
 * pooled are not of one configuration. One note per group, naming the
 * first few keys with two of their values and the tasks concerned. */
static void note_mixed_settings(const load_context *ctx, const report *rep, int g,
                                const char *name)
{
    mixed_setting *mixed = NULL;
    int64_t num_mixed = 0, capacity = 0;
    bool *task_mixed = tsr_calloc((size_t)rep->num_tasks, sizeof *task_mixed);
    char buf[TSR_CONFIG_STRING_BYTES + 32];
    for (int t = 0; t < rep->num_tasks; t++) {
        const run *first = NULL;
        for (int64_t i = 0; i < rep->num_runs; i++) {
            const run *r = &rep->runs[i];
            if (r->group_id != g || r->task_id != t) continue;
            if (!first) {
                first = r;
                continue;
            }
            /* Every key of either run, against the other's value. */
            for (int side = 0; side < 2; side++) {
                const run *a = side ? r : first, *b = side ? first : r;
                for (int k = 0; k < a->num_settings; k++) {
                    const char *key = a->setting_keys[k];
                    if (scaled_setting(ctx, key)) continue;
                    const char *other =
                        find_setting(ctx->schema, ctx->scratch, b, key, buf, sizeof buf);
                    if (other && !strcmp(a->setting_values[k], other)) continue;
                    task_mixed[t] = true;
                    int64_t j = 0;
                    while (j < num_mixed && strcmp(mixed[j].key, key)) j++;
                    if (j < num_mixed) continue;
                    mixed = grow(mixed, &capacity, num_mixed, sizeof *mixed);
                    mixed[num_mixed].key = key;
                    snprintf(mixed[num_mixed].values[side], sizeof mixed->values[0], "%s",
                             a->setting_values[k]);
                    snprintf(mixed[num_mixed].values[!side], sizeof mixed->values[0], "%s",
                             other ? other : "(absent)");
                    num_mixed++;
                }
            }
        }
    }
    if (num_mixed) {
        int tasks = 0;
        for (int t = 0; t < rep->num_tasks; t++) tasks += task_mixed[t];
        printf("\nNote: %s%s%sin task%s ", name ? "group " : "", name ? name : "",
               name ? ", " : "", tasks == 1 ? "" : "s");
        for (int t = 0, shown = 0; t < rep->num_tasks; t++)
            if (task_mixed[t]) printf("%s%s", shown++ ? ", " : "", rep->tasks[t]);
        printf(", runs differ in ");
        for (int64_t j = 0; j < num_mixed && j < MAX_NAMED_SETTINGS; j++)
            printf("%s%s (%s vs %s)", j ? ", " : "", mixed[j].key, mixed[j].values[0],
                   mixed[j].values[1]);
        if (num_mixed > MAX_NAMED_SETTINGS)
            printf(" and %lld more key%s", (long long)(num_mixed - MAX_NAMED_SETTINGS),
                   num_mixed - MAX_NAMED_SETTINGS == 1 ? "" : "s");
        printf(": their scores are not of one configuration; --by one of those keys to tell "
               "them apart.\n");
    }
    tsr_free(mixed);
    tsr_free(task_mixed);
}

/* What makes the aggregates above weaker than they look, said under the
 * table: raw returns of several tasks pooled, groups over different task
 * sets (rliable requires one set), tasks with one run (the bootstrap cannot
 * vary them), a task's runs of different budgets or different settings. */
static void print_caveats(const load_context *ctx, const report *rep, bool normalized)
{
    if (!normalized && rep->num_tasks > 1)
        printf("\nNote: these aggregates pool the raw returns of %d tasks, whose scales differ "
               "(and the optimality gap takes 1 on that scale); --normalize puts them on one "
               "scale.\n", rep->num_tasks);
    int64_t *runs = tsr_calloc((size_t)rep->num_tasks, sizeof *runs);
    for (int g = 0; g < rep->num_groups; g++) {
        memset(runs, 0, (size_t)rep->num_tasks * sizeof *runs);
        for (int64_t i = 0; i < rep->num_runs; i++)
            if (rep->runs[i].group_id == g) runs[rep->runs[i].task_id]++;
        int tasks = 0, single = 0;
        for (int t = 0; t < rep->num_tasks; t++) {
            tasks += runs[t] > 0;
            single += runs[t] == 1;
        }
        const char *name = rep->num_groups > 1 ? rep->groups[g] : NULL;
        if (tasks < rep->num_tasks)
            printf("\nNote: %s%s%shas runs on %d of the %d tasks: its aggregates are over those "
                   "alone, not comparable with a group's over all of them.\n",
                   name ? "group " : "", name ? name : "", name ? " " : "", tasks,
                   rep->num_tasks);
        if (single)
            printf("\nNote: %s%s%s%d task%s with a single run, which the bootstrap cannot "
                   "vary: the intervals leave out %s uncertainty.\n",
                   name ? "group " : "", name ? name : "", name ? " has " : "", single,
                   single == 1 ? "" : "s", single == 1 ? "its" : "their");
        /* Runs of one task trained for different numbers of agent steps
         * (iterations x training_steps) are scores of different budgets. */
        for (int t = 0; t < rep->num_tasks; t++) {
            int64_t low = INT64_MAX, high = 0;
            for (int64_t i = 0; i < rep->num_runs; i++) {
                const run *r = &rep->runs[i];
                if (r->group_id != g || r->task_id != t || !r->budget) continue;
                low = r->budget < low ? r->budget : low;
                high = r->budget > high ? r->budget : high;
            }
            if (high > low)
                printf("\nNote: %s%s%s%s mixes runs of different budgets, %lld to %lld agent "
                       "steps (run.iterations x run.training_steps): its scores are not of "
                       "one budget.\n",
                       name ? "group " : "", name ? name : "", name ? ", task " : "task ",
                       rep->tasks[t], (long long)low, (long long)high);
        }
        note_mixed_settings(ctx, rep, g, name);
    }
    tsr_free(runs);
}

/* P(X > Y) for every two groups, over the tasks both have run. */
static void print_improvements(const report *rep, const tsr_bootstrap_options *o, FILE *csv)
{
    matrix_storage sx, sy;
    matrix_storage_init(&sx, rep);
    matrix_storage_init(&sy, rep);
    bool *common = tsr_malloc((size_t)rep->num_tasks * sizeof *common);
    printf("| X | Y | tasks | P(X > Y) |\n|---|---|---|---|\n");
    for (int gx = 0; gx < rep->num_groups; gx++) {
        for (int gy = gx + 1; gy < rep->num_groups; gy++) {
            int num_common = 0;
            for (int t = 0; t < rep->num_tasks; t++) {
                bool in_x = false, in_y = false;
                for (int64_t i = 0; i < rep->num_runs; i++) {
                    in_x |= rep->runs[i].task_id == t && rep->runs[i].group_id == gx;
                    in_y |= rep->runs[i].task_id == t && rep->runs[i].group_id == gy;
                }
                common[t] = in_x && in_y;
                num_common += common[t];
            }
            printf("| ");
            put_markdown(stdout, rep->groups[gx]);
            printf(" | ");
            put_markdown(stdout, rep->groups[gy]);
            if (!num_common) {
                printf(" | 0 | no task in common |\n");
                continue;
            }
            tsr_score_matrix x, y;
            int64_t runs_x, runs_y;
            gather(rep, &(selection){gx, NAN, common, -1}, &sx, &x, &runs_x);
            gather(rep, &(selection){gy, NAN, common, -1}, &sy, &y, &runs_y);
            tsr_estimate e = tsr_stats_bootstrap_probability_of_improvement(&x, &y, o);
            printf(" | %d |", num_common);
            put_estimate(stdout, e);
            printf("\n");
            if (csv)
                put_csv_row(csv, "probability_of_improvement", rep->groups[gx], rep->groups[gy],
                            runs_x, runs_y, num_common, e);
        }
    }
    tsr_free(common);
    matrix_storage_fini(&sx);
    matrix_storage_fini(&sy);
}

/* ---- figures --------------------------------------------------------------- */

/* Matplotlib's tab10, cycled over the groups. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
enum { num_colors = sizeof palette / sizeof palette[0] };

/* A gnuplot single-quoted string: only ' needs escaping, as ''. */
static void put_gnuplot_string(FILE *out, const char *text)
{
    fputc('\'', out);
    for (const char *c = text; *c; c++) {
        if (*c == '\'') fputc('\'', out);
        fputc(*c, out);
    }
    fputc('\'', out);
}

/* The legend entry of a group: "KEY = value", or "all". */
static void put_group_title(FILE *out, const char *by, const char *group)
{
    char title[2 * TSR_CONFIG_STRING_BYTES];
    if (by) snprintf(title, sizeof title, "%s = %s", by, group);
    else snprintf(title, sizeof title, "%s", group);
    put_gnuplot_string(out, title);
}

/* Opens DIR/NAME.dat and DIR/NAME.gp for writing; on failure neither is
 * left open and err says which. */
static tsr_status open_plot_files(const char *dir, const char *name, FILE **dat, FILE **gp,
                                  tsr_error *err)
{
    char path[PATH_MAX];
    *gp = NULL;
    snprintf(path, sizeof path, "%s/%s.dat", dir, name);
    *dat = fopen(path, "w");
    if (*dat) {
        snprintf(path, sizeof path, "%s/%s.gp", dir, name);
        *gp = fopen(path, "w");
        if (!*gp) {
            int saved = errno;
            fclose(*dat);
            *dat = NULL;
            errno = saved;
        }
    }
    if (!*dat)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot write %s: %s", path, strerror(errno));
    return TSR_STATUS_OK;
}

/* Runs `gnuplot SCRIPT` inside `dir` (the script names its files relative to
 * it, so it can be rerun there by hand). */
static tsr_status run_gnuplot(const char *dir, const char *script, tsr_error *err)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addchdir_np(&actions, dir);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc == ENOENT)
        return tsr_error_set(err, TSR_STATUS_IO,
                             "--plots needs gnuplot, which is not on PATH: install the Debian "
                             "package gnuplot-nox (apt-get install gnuplot-nox)");
    if (rc != 0)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot run gnuplot in %s: %s", dir,
                             strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return tsr_error_set(err, TSR_STATUS_IO, "waiting for gnuplot: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return tsr_error_set(err, TSR_STATUS_IO, "gnuplot failed on %s/%s (%s %d)", dir, script,
                             WIFEXITED(status) ? "exit status" : "signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return TSR_STATUS_OK;
}

/* The start of NAME.gp, which draws NAME.svg. */
static void write_plot_header(FILE *gp, const char *name, const char *title, const char *xlabel,
                              const char *ylabel)
{
    fprintf(gp, "# Written by tessera report; `gnuplot %s.gp` in this directory redraws it.\n",
            name);
    fprintf(gp, "set terminal svg size 900,560 noenhanced font 'sans,12' background rgb "
                "'white'\n");
    fprintf(gp, "set output '%s.svg'\nset title ", name);
    put_gnuplot_string(gp, title);
    fprintf(gp, "\nset xlabel ");
    put_gnuplot_string(gp, xlabel);
    fprintf(gp, "\nset ylabel ");
    put_gnuplot_string(gp, ylabel);
    fprintf(gp, "\nset key below\nset grid\nset autoscale xfix\n");
}

/* learning_curves.{dat,gp,svg}: per group, at each iteration all its runs
 * reached, the IQM of eval_return over runs × tasks and its interval,
 * against the runs' mean agent steps. */
static tsr_status plot_learning_curves(const report *rep, const char *dir, const char *by,
                                       const char *score_name, const tsr_bootstrap_options *o,
                                       tsr_error *err)
{
    FILE *dat, *gp;
    if (open_plot_files(dir, "learning_curves", &dat, &gp, err) != TSR_STATUS_OK) return err->status;
    matrix_storage s;
    matrix_storage_init(&s, rep);
    char title[256];
    char ylabel[128];
    snprintf(title, sizeof title, "IQM over runs x tasks, %.0f%% stratified-bootstrap band (%lld "
             "resamples%s)", 100 * o->coverage, (long long)o->reps,
             o->task_bootstrap ? ", tasks resampled too" : "");
    snprintf(ylabel, sizeof ylabel, "IQM of %s", score_name);
    write_plot_header(gp, "learning_curves", title, "agent steps", ylabel);
    fprintf(gp, "set format x '%%.1s%%c'\n"); /* 2.5M, not 2.5e+06 */
    /* block_group[b]: the group of data block b (groups without a point
     * have none). */
    int *block_group = tsr_malloc((size_t)rep->num_groups * sizeof *block_group);
    int blocks = 0;
    for (int g = 0; g < rep->num_groups; g++) {
        int64_t points = INT64_MAX;
        for (int64_t i = 0; i < rep->num_runs; i++)
            if (rep->runs[i].group_id == g && rep->runs[i].num_points < points)
                points = rep->runs[i].num_points;
        int written = 0;
        for (int64_t p = 0; p < points; p++) {
            tsr_score_matrix m;
            int64_t runs;
            if (!gather(rep, &(selection){g, NAN, NULL, p}, &s, &m, &runs)) continue;
            double steps = 0;
            for (int64_t i = 0; i < rep->num_runs; i++)
                if (rep->runs[i].group_id == g) steps += rep->runs[i].agent_steps[p];
            tsr_estimate e = tsr_stats_bootstrap_iqm(&m, o);
            if (!written++) fprintf(dat, "# %s\n", rep->groups[g]);
            fprintf(dat, "%.9g %.9g %.9g %.9g\n", steps / (double)runs, e.value, e.lo, e.hi);
        }
        if (!written) continue;
        fprintf(dat, "\n\n");
        block_group[blocks++] = g;
    }
    /* Every band first, then every line, so that no band covers a line. */
    fprintf(gp, "plot ");
    for (int b = 0; b < blocks; b++)
        fprintf(gp, "%s'learning_curves.dat' index %d using 1:3:4 with filledcurves lc rgb '%s' "
                    "fs transparent solid 0.2 noborder notitle",
                b ? ", \\\n  " : "", b, palette[block_group[b] % num_colors]);
    for (int b = 0; b < blocks; b++) {
        fprintf(gp, ", \\\n  'learning_curves.dat' index %d using 1:2 with linespoints lw 2 pt 7 "
                    "ps 0.4 lc rgb '%s' title ", b, palette[block_group[b] % num_colors]);
        put_group_title(gp, by, rep->groups[block_group[b]]);
    }
    tsr_free(block_group);
    fprintf(gp, "\n");
    matrix_storage_fini(&s);
    fclose(dat);
    fclose(gp);
    if (!blocks)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "no learning-curve point: no iteration where every run of a group "
                             "has an eval_return");
    return run_gnuplot(dir, "learning_curves.gp", err);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* scaling.{dat,gp,svg}: per group, the IQM of the final scores and its
 * interval at each value of the scale key. */
static tsr_status plot_scaling(const report *rep, const char *dir, const char *by,
                               const char *scale_name, const char *score_name,
                               const tsr_bootstrap_options *o, tsr_error *err)
{
    FILE *dat, *gp;
    if (open_plot_files(dir, "scaling", &dat, &gp, err) != TSR_STATUS_OK) return err->status;
    matrix_storage s;
    matrix_storage_init(&s, rep);
    double *values = tsr_malloc((size_t)rep->num_runs * sizeof *values);
    double low = INFINITY, high = -INFINITY;
    for (int64_t i = 0; i < rep->num_runs; i++) {
        low = fmin(low, rep->runs[i].scale);
        high = fmax(high, rep->runs[i].scale);
    }
    char title[256], ylabel[128];
    snprintf(title, sizeof title, "IQM over runs x tasks, %.0f%% stratified-bootstrap interval "
             "(%lld resamples%s)", 100 * o->coverage, (long long)o->reps,
             o->task_bootstrap ? ", tasks resampled too" : "");
    snprintf(ylabel, sizeof ylabel, "IQM of the final %s", score_name);
    write_plot_header(gp, "scaling", title, scale_name, ylabel);
    /* Widths, expert counts and parameter counts grow geometrically. */
    if (low > 0 && high / low >= 8) fprintf(gp, "set logscale x 2\n");
    if (high >= 1e4) fprintf(gp, "set format x '%%.1s%%c'\n");
    fprintf(gp, "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\nplot ");
    /* Grouped by the scale key itself, the groups are the points of one
     * series (group -1: every run). */
    bool one_series = by && !strcmp(by, scale_name);
    for (int g = one_series ? -1 : 0; g < (one_series ? 0 : rep->num_groups); g++) {
        int64_t n = 0;
        for (int64_t i = 0; i < rep->num_runs; i++)
            if (g < 0 || rep->runs[i].group_id == g) values[n++] = rep->runs[i].scale;
        qsort(values, (size_t)n, sizeof *values, compare_doubles);
        fprintf(dat, "# %s\n", g < 0 ? "all runs" : rep->groups[g]);
        for (int64_t i = 0; i < n; i++) {
            if (i && values[i] == values[i - 1]) continue;
            tsr_score_matrix m;
            int64_t runs;
            gather(rep, &(selection){g, values[i], NULL, -1}, &s, &m, &runs);
            tsr_estimate e = tsr_stats_bootstrap_iqm(&m, o);
            fprintf(dat, "%.9g %.9g %.9g %.9g\n", values[i], e.value, e.lo, e.hi);
        }
        fprintf(dat, "\n\n");
        int series = g < 0 ? 0 : g;
        const char *color = palette[series % num_colors];
        fprintf(gp, "%s'scaling.dat' index %d using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '%s' "
                    "title ", series ? ", \\\n  " : "", series, color);
        if (g < 0) put_gnuplot_string(gp, "all runs");
        else put_group_title(gp, by, rep->groups[g]);
    }
    fprintf(gp, "\n");
    tsr_free(values);
    matrix_storage_fini(&s);
    fclose(dat);
    fclose(gp);
    return run_gnuplot(dir, "scaling.gp", err);
}

/* The thresholds of performance_profile: this many, evenly spaced from the
 * lowest final score of any run to the highest, or over --profile-taus. */
enum { profile_points = 101 };

/* performance_profile.{dat,gp,svg}: per group, rliable's score distribution
 * of the final scores (the share of runs x tasks above each threshold) with
 * its interval. */
static tsr_status plot_performance_profile(const report *rep, const char *dir, const char *by,
                                           const char *score_name, const tsr_bootstrap_options *o,
                                           const double tau_range[2], tsr_error *err)
{
    FILE *dat, *gp;
    if (open_plot_files(dir, "performance_profile", &dat, &gp, err) != TSR_STATUS_OK) return err->status;
    double low = tau_range[0], high = tau_range[1];
    for (int64_t i = 0; isnan(tau_range[0]) && i < rep->num_runs; i++) {
        const run *r = &rep->runs[i];
        low = fmin(low, r->eval_return[r->num_points - 1]); /* fmin(NaN, x) = x */
        high = fmax(high, r->eval_return[r->num_points - 1]);
    }
    if (high == low) { /* one score: a window around it */
        low -= 0.5;
        high += 0.5;
    }
    double taus[profile_points];
    for (int i = 0; i < profile_points; i++)
        taus[i] = i == profile_points - 1 ? high
                                          : low + (high - low) * i / (double)(profile_points - 1);
    char title[256], xlabel[160], ylabel[160];
    snprintf(title, sizeof title, "Score distribution, %.0f%% stratified-bootstrap band (%lld "
             "resamples%s)", 100 * o->coverage, (long long)o->reps,
             o->task_bootstrap ? ", tasks resampled too" : "");
    snprintf(xlabel, sizeof xlabel, "final %s threshold tau", score_name);
    snprintf(ylabel, sizeof ylabel, "fraction of runs x tasks with score > tau");
    write_plot_header(gp, "performance_profile", title, xlabel, ylabel);
    fprintf(gp, "set yrange [0:1]\n");
    matrix_storage s;
    matrix_storage_init(&s, rep);
    tsr_estimate profile[profile_points];
    for (int g = 0; g < rep->num_groups; g++) {
        tsr_score_matrix m;
        int64_t runs;
        gather(rep, &(selection){g, NAN, NULL, -1}, &s, &m, &runs);
        tsr_stats_bootstrap_score_distribution(&m, taus, profile_points, o, profile);
        fprintf(dat, "# %s\n", rep->groups[g]);
        for (int i = 0; i < profile_points; i++)
            fprintf(dat, "%.9g %.9g %.9g %.9g\n", taus[i], profile[i].value, profile[i].lo,
                    profile[i].hi);
        fprintf(dat, "\n\n");
    }
    /* Every band first, then every line, so that no band covers a line. */
    fprintf(gp, "plot ");
    for (int g = 0; g < rep->num_groups; g++)
        fprintf(gp, "%s'performance_profile.dat' index %d using 1:3:4 with filledcurves lc rgb "
                    "'%s' fs transparent solid 0.2 noborder notitle",
                g ? ", \\\n  " : "", g, palette[g % num_colors]);
    for (int g = 0; g < rep->num_groups; g++) {
        fprintf(gp, ", \\\n  'performance_profile.dat' index %d using 1:2 with lines lw 2 lc rgb "
                    "'%s' title ", g, palette[g % num_colors]);
        put_group_title(gp, by, rep->groups[g]);
    }
    fprintf(gp, "\n");
    matrix_storage_fini(&s);
    fclose(dat);
    fclose(gp);
    return run_gnuplot(dir, "performance_profile.gp", err);
}

/* --profile-taus LO:HI: two finite numbers, LO < HI. */
static bool parse_tau_range(const char *text, double range[2])
{
    char *end;
    errno = 0;
    range[0] = strtod(text, &end);
    if (end == text || *end != ':' || errno) return false;
    const char *second = end + 1;
    range[1] = strtod(second, &end);
    if (end == second || *end || errno) return false;
    return isfinite(range[0]) && isfinite(range[1]) && range[0] < range[1] &&
           isfinite(range[1] - range[0]);
}

/* ---- the command ----------------------------------------------------------- */

static int fail(const tsr_error *err)
{
    fprintf(stderr, "tessera report: %s\n", err->message);
    return 1;
}

int tsr_cmd_report(int argc, char **argv)
{
    const char *by_text = NULL, *normalize = NULL, *csv_path = NULL, *plots = NULL;
    const char *scale_text = NULL, *profile_taus = NULL;
    double tau_range[2] = {NAN, NAN};
    tsr_bootstrap_options options = tsr_bootstrap_default_options();
    tsr_bootstrap_options curve_options = options;
    curve_options.reps = DEFAULT_CURVE_REPS;
    const char **dirs = tsr_calloc((size_t)argc, sizeof *dirs);
    int num_dirs = 0;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        const char *a = argv[i];
        if (tsr_cli_is_help(a)) {
            tsr_free(dirs);
            return usage(stdout);
        } else if ((!strcmp(a, "--by") || !strcmp(a, "--scale")) && has_value) {
            const bool scale = !strcmp(a, "--scale");
            const char *key = argv[++i];
            if (!tsr_cli_config_key_form(key, false) && !(scale && !strcmp(key, "params"))) {
                fprintf(stderr, "tessera report: %s '%s': expected section.key, e.g. "
                                "network.num_experts%s (sections: %s)\n",
                        a, key, scale ? ", or params" : "", run_sections);
                tsr_free(dirs);
                return 2;
            }
            *(scale ? &scale_text : &by_text) = key;
        } else if (!strcmp(a, "--normalize") && has_value) {
            normalize = strcmp(argv[++i], "none") ? argv[i] : NULL;
        } else if (!strcmp(a, "--csv") && has_value) {
            csv_path = argv[++i];
        } else if (!strcmp(a, "--plots") && has_value) {
            plots = argv[++i];
        } else if ((!strcmp(a, "--reps") || !strcmp(a, "--curve-reps")) && has_value) {
            int64_t *target = a[2] == 'r' ? &options.reps : &curve_options.reps;
            /* Fewer resamples than 100 give percentile intervals from a
             * handful of points (one gives an interval that may not even
             * hold the point estimate). */
            if (!tsr_cli_parse_count(argv[++i], target) || *target < 100) {
                fprintf(stderr, "tessera report: %s '%s' is not an integer >= 100\n", a, argv[i]);
                tsr_free(dirs);
                return 2;
            }
        } else if (!strcmp(a, "--profile-taus") && has_value) {
            profile_taus = argv[++i];
            if (!parse_tau_range(profile_taus, tau_range)) {
                fprintf(stderr, "tessera report: --profile-taus '%s': expected LO:HI, two finite "
                                "numbers with LO < HI, e.g. 0:2\n", profile_taus);
                tsr_free(dirs);
                return 2;
            }
        } else if (!strcmp(a, "--task-bootstrap")) {
            options.task_bootstrap = curve_options.task_bootstrap = true;
        } else if (!strcmp(a, "--seed") && has_value) {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || argv[i][0] == '-') {
                fprintf(stderr, "tessera report: --seed '%s' is not a non-negative integer\n",
                        argv[i]);
                tsr_free(dirs);
                return 2;
            }
            options.seed = curve_options.seed = seed;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tessera report: unknown or incomplete option '%s'\n\n", a);
            tsr_free(dirs);
            return usage(stderr);
        } else {
            dirs[num_dirs++] = a;
        }
    }
    if (!num_dirs) {
        tsr_free(dirs);
        return usage(stderr);
    }
    if (scale_text && !plots) {
        fprintf(stderr, "tessera report: --scale draws scaling.svg and needs --plots DIR\n");
        tsr_free(dirs);
        return 2;
    }
    if (profile_taus && !plots) {
        fprintf(stderr, "tessera report: --profile-taus sets the thresholds of "
                        "performance_profile.svg and needs --plots DIR\n");
        tsr_free(dirs);
        return 2;
    }

    tsr_run_schema *schema = tsr_malloc(sizeof *schema);
    tsr_run_schema_init(schema);
    tsr_error err;
    config_key by, scale;
    load_context ctx = {schema, NULL, NULL, false, NULL, tsr_malloc(sizeof(tsr_run_config))};
    tsr_run_config_defaults(schema, ctx.scratch);
    norm_table norm = {0};
    report rep = {0};
    FILE *csv = NULL;
    int status = 1;
    if (by_text) {
        if (parse_config_key(schema, "--by", by_text, &by, &err) != TSR_STATUS_OK) goto done;
        ctx.by = &by;
    }
    if (scale_text && !strcmp(scale_text, "params")) {
        ctx.scale_params = true;
    } else if (scale_text) {
        if (parse_config_key(schema, "--scale", scale_text, &scale, &err) != TSR_STATUS_OK)
            goto done;
        if (scale.entry->type != TSR_CONFIG_INT && scale.entry->type != TSR_CONFIG_DOUBLE) {
            tsr_error_set(&err, TSR_STATUS_INVALID_ARGUMENT,
                          "--scale %s is not a numeric key (give an integer or real key, e.g. "
                          "network.width_scale, or 'params')", scale_text);
            goto done;
        }
        ctx.scale = &scale;
    }
    if (normalize) {
        if (read_norm_table(normalize, &norm, &err) != TSR_STATUS_OK) goto done;
        ctx.norm = &norm;
    }
    for (int i = 0; i < num_dirs; i++)
        if (search(&ctx, dirs[i], 0, &rep, &err) != TSR_STATUS_OK) goto done;
    if (!rep.num_runs) {
        tsr_error_set(&err, TSR_STATUS_INVALID_ARGUMENT,
                      "no finished run with an eval_return under %s%s (%lld unfinished, %lld "
                      "without evaluation)", dirs[0], num_dirs > 1 ? " and the other DIRs" : "",
                      (long long)rep.unfinished, (long long)rep.unevaluated);
        goto done;
    }
    index_runs(&rep);
    if (csv_path) {
        csv = fopen(csv_path, "w");
        if (!csv) {
            tsr_error_set(&err, TSR_STATUS_IO, "cannot write %s: %s", csv_path, strerror(errno));
            goto done;
        }
        fprintf(csv, "metric,group,versus,runs,versus_runs,tasks,value,ci_low,ci_high\n");
    }

    const char *score_name = normalize ? "normalised score" : "eval_return";
    printf("## tessera report\n\n");
    printf("%lld finished run%s in %d group%s (%s), %d task%s (", (long long)rep.num_runs,
           rep.num_runs == 1 ? "" : "s", rep.num_groups, rep.num_groups == 1 ? "" : "s",
           by_text ? by_text : "no --by", rep.num_tasks, rep.num_tasks == 1 ? "" : "s");
    for (int t = 0; t < rep.num_tasks; t++) printf("%s%s", t ? ", " : "", rep.tasks[t]);
    printf("); skipped %lld unfinished run%s and %lld without a final eval_return",
           (long long)rep.unfinished, rep.unfinished == 1 ? "" : "s", (long long)rep.unevaluated);
    if (rep.duplicates)
        printf("; counted each run directory once (reached %lld more time%s through "
               "overlapping DIRs or symlinks)", (long long)rep.duplicates,
               rep.duplicates == 1 ? "" : "s");
    printf(".\n");
    printf("Score: the final iteration's eval_return");
    if (normalize) printf(", normalised by %s: (return - random) / (reference - random)", normalize);
    printf(". Intervals: %.0f%% stratified bootstrap (%s), %lld resamples, seed %llu.\n\n",
           100 * options.coverage,
           options.task_bootstrap ? "tasks resampled, then runs within each drawn task"
                                  : "runs resampled within each task",
           (long long)options.reps, (unsigned long long)options.seed);
    print_aggregates(&rep, by_text ? by_text : "group", &options, csv);
    print_caveats(&ctx, &rep, normalize != NULL);
    if (rep.num_groups > 1) {
        printf("\nProbability of improvement P(X > Y) over the tasks both groups ran "
               "(Mann-Whitney U / (n_x n_y) per task, averaged%s):\n\n",
               options.task_bootstrap ? "; its intervals resample runs only, as rliable's" : "");
        tsr_bootstrap_options runs_only = options;
        runs_only.task_bootstrap = false;
        print_improvements(&rep, &runs_only, csv);
    }
    if (csv) {
        bool ok = !ferror(csv);
        ok &= fclose(csv) == 0;
        csv = NULL;
        if (!ok) {
            tsr_error_set(&err, TSR_STATUS_IO, "cannot write %s", csv_path);
            goto done;
        }
    }
    if (plots) {
        if (mkdir(plots, 0777) != 0 && errno != EEXIST) {
            tsr_error_set(&err, TSR_STATUS_IO, "cannot create %s: %s", plots, strerror(errno));
            goto done;
        }
        fflush(stdout);
        if (plot_learning_curves(&rep, plots, by_text, score_name, &curve_options, &err) !=
            TSR_STATUS_OK)
            goto done;
        if (plot_performance_profile(&rep, plots, by_text, score_name, &curve_options, tau_range,
                                     &err) !=
            TSR_STATUS_OK)
            goto done;
        printf("\nFigures: %s/learning_curves.svg, %s/performance_profile.svg", plots, plots);
        if (scale_text) {
            if (plot_scaling(&rep, plots, by_text, scale_text, score_name, &options, &err) !=
                TSR_STATUS_OK)
                goto done;
            printf(", %s/scaling.svg", plots);
        }
        printf(" (gnuplot scripts and data beside them).\n");
    }
    status = 0;
done:
    if (csv) fclose(csv);
    if (status) fail(&err);
    free_report(&rep);
    tsr_free(norm.rows);
    tsr_free(ctx.scratch);
    tsr_free(schema);
    tsr_free(dirs);
    return status;
}
