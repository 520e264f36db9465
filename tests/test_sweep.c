/* Sweeps: grid expansion and run names, bad sweep files, where a run stands
 * in its directory, and `tessera sweep` run as a user runs it — locally,
 * again (finished runs are skipped), and under mpirun with the same results. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/files.h"
#include "tessera/checkpoint.h"
#include "tessera/sweep.h"

static char tmpdir[64];

static void make_tmpdir(void) { tsr_test_tmpdir_make(tmpdir, sizeof tmpdir, "sweep"); }
static void remove_tmpdir(void) { tsr_test_tmpdir_remove(tmpdir); }

/* Writes tmpdir/name; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static char *slurp(const char *path) { return tsr_test_slurp(path, NULL); }

/* Runs `PREFIX tessera ARGS` (PREFIX: "" or an mpirun line) with stdout and
 * stderr captured; returns the exit code. */
static int tessera(const char *prefix, const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s %s </dev/null", prefix, TSR_TESSERA_EXE, args);
    return tsr_test_run(tmpdir, cmd, out, err);
}

#define CARTPOLE TSR_CONFIGS_DIR "/cartpole/dqn.ini"
#define BREAKOUT_SOFTMOE TSR_CONFIGS_DIR "/breakout/dqn_softmoe.ini"

/* Tiny CartPole runs: 2 iterations of 200 steps, updates from step 100, one
 * evaluation episode. */
#define TINY_RUNS                                                                                 \
    "[set]\n"                                                                                     \
    "run.iterations = 2\n"                                                                        \
    "run.training_steps = 200\n"                                                                  \
    "run.evaluation_episodes = 1\n"                                                               \
    "agent.min_replay_history = 100\n"                                                            \
    "agent.replay_capacity = 1000\n"

static tsr_sweep *load(const char *path)
{
    tsr_sweep *sweep;
    tsr_error err;
    cr_assert_eq(tsr_sweep_load(&sweep, path, NULL, &err), TSR_STATUS_OK, "%s", err.message);
    return sweep;
}

/* ==== expansion =========================================================== */

Test(sweep, a_grid_expands_seed_major_into_runs_named_by_their_values, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    const char *path = write_file("grid.ini",
                                  "[sweep]\n"
                                  "base = " BREAKOUT_SOFTMOE "\n"
                                  "games = breakout, minatar/asterix\n"
                                  "seeds = 2\n"
                                  "threads = 2\n"
                                  "out = /tmp/somewhere/grid/\n"
                                  "[axes]\n"
                                  "network.num_experts = 1, 4\n"
                                  "[set]\n"
                                  "run.iterations = 3\n");
    tsr_sweep *s = load(path);
    static const char *const names[] = {
        "breakout/num_experts=1/seed=0", "breakout/num_experts=4/seed=0",
        "asterix/num_experts=1/seed=0",  "asterix/num_experts=4/seed=0",
        "breakout/num_experts=1/seed=1", "breakout/num_experts=4/seed=1",
        "asterix/num_experts=1/seed=1",  "asterix/num_experts=4/seed=1",
    };
    cr_assert_eq(s->num_runs, 8);
    for (int i = 0; i < 8; i++) cr_expect_str_eq(s->runs[i].name, names[i], "run %d", i);
    cr_expect_str_eq(s->out_dir, "/tmp/somewhere/grid");
    cr_expect_str_eq(s->runs[3].dir, "/tmp/somewhere/grid/asterix/num_experts=4/seed=0");
    cr_expect_str_eq(s->runs[3].game, "minatar/asterix");
    cr_expect_eq(s->runs[3].seed, 0);
    cr_expect_eq(s->runs[3].variant, -1);

    static const char *const overrides[] = {
        "run.iterations=3", "network.num_experts=4", "env.name=minatar/asterix", "run.seed=0",
        "run.threads=2",
    };
    cr_assert_eq(s->runs[3].num_overrides, 5);
    for (int i = 0; i < 5; i++) cr_expect_str_eq(s->runs[3].overrides[i], overrides[i]);

    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    cr_assert_eq(tsr_sweep_run_config(s, 7, &schema, &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_str_eq(cfg.env.name, "minatar/asterix");
    cr_expect_eq(cfg.network.num_experts, 4);
    cr_expect_eq(cfg.network.head, 1, "the base's softmoe head stays");
    cr_expect_eq(cfg.run.seed, 1);
    cr_expect_eq(cfg.run.threads, 2);
    cr_expect_eq(cfg.run.iterations, 3);
    tsr_sweep_free(s);
}

Test(sweep, variants_and_axes_sharing_a_name_are_named_apart, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* An empty variant is the base unchanged; loss.kind and optimizer.kind
     * share the name "kind", so both are labelled section.name. The base
     * and default out are relative to the sweep file and the working
     * directory. */
    write_file("base.ini", "[config]\nbase = " CARTPOLE "\n");
    const char *path = write_file("kinds.ini",
                                  "[sweep]\n"
                                  "base = base.ini\n"
                                  "[axes]\n"
                                  "loss.kind = huber, mse\n"
                                  "optimizer.kind = adam, rmsprop\n"
                                  "[variant narrow]\n"
                                  "network.mlp_hidden = 32\n"
                                  "[variant plain]\n");
    tsr_sweep *s = load(path);
    static const char *const names[] = {
        "cartpole/narrow/loss.kind=huber/optimizer.kind=adam/seed=0",
        "cartpole/narrow/loss.kind=huber/optimizer.kind=rmsprop/seed=0",
        "cartpole/narrow/loss.kind=mse/optimizer.kind=adam/seed=0",
        "cartpole/narrow/loss.kind=mse/optimizer.kind=rmsprop/seed=0",
        "cartpole/plain/loss.kind=huber/optimizer.kind=adam/seed=0",
        "cartpole/plain/loss.kind=huber/optimizer.kind=rmsprop/seed=0",
        "cartpole/plain/loss.kind=mse/optimizer.kind=adam/seed=0",
        "cartpole/plain/loss.kind=mse/optimizer.kind=rmsprop/seed=0",
    };
    cr_assert_eq(s->num_runs, 8);
    for (int i = 0; i < 8; i++) cr_expect_str_eq(s->runs[i].name, names[i], "run %d", i);
    cr_expect_str_eq(s->runs[0].dir, "runs/sweeps/kinds/cartpole/narrow/loss.kind=huber/"
                                     "optimizer.kind=adam/seed=0");
    char expected_base[300];
    snprintf(expected_base, sizeof expected_base, "%s/base.ini", tmpdir);
    cr_expect_str_eq(s->base, expected_base);
    cr_expect_eq(s->num_variants, 2);
    cr_expect_eq(s->variants[1].num_overrides, 0);

    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    cr_assert_eq(tsr_sweep_run_config(s, 3, &schema, &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_str_eq(cfg.network.mlp_hidden, "32");
    cr_expect_eq(cfg.loss.kind, 0, "mse");
    cr_expect_eq(cfg.optimizer.kind, 2, "rmsprop");
    cr_assert_eq(tsr_sweep_run_config(s, 4, &schema, &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_str_eq(cfg.network.mlp_hidden, "128", "the plain variant keeps the base's");
    cr_expect_eq(cfg.loss.kind, 1, "huber");
    tsr_sweep_free(s);
}

Test(sweep, quoted_values_may_hold_commas_and_names_keep_only_safe_characters,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    const char *path = write_file("mlp.ini",
                                  "[sweep]\n"
                                  "base = " CARTPOLE "\n"
                                  "[axes]\n"
                                  "network.mlp_hidden = \"64, 64\", 32\n"
                                  "   \"16,16,16\"  ; a continuation line adds values\n");
    tsr_sweep *s = load(path);
    cr_assert_eq(s->num_runs, 3);
    cr_expect_str_eq(s->runs[0].name, "cartpole/mlp_hidden=64_64/seed=0");
    cr_expect_str_eq(s->runs[1].name, "cartpole/mlp_hidden=32/seed=0");
    cr_expect_str_eq(s->runs[2].name, "cartpole/mlp_hidden=16_16_16/seed=0");
    cr_expect_str_eq(s->runs[0].overrides[0], "network.mlp_hidden=64, 64");
    tsr_sweep_free(s);
}

Test(sweep, every_preset_loads_with_the_size_its_header_gives)
{
    static const struct {
        const char *file;
        int64_t runs;
        const char *first, *last;
    } presets[] = {
        {"smoke.ini", 8, "breakout/kind=huber/seed=0", "asterix/kind=hlgauss/seed=1"},
        {"softmoe_experts.ini", 200, "asterix/softmoe/num_experts=1/seed=0",
         "space_invaders/dense_wide/num_experts=8/seed=4"},
        {"tokenized_single_expert.ini", 75, "asterix/flatten/seed=0",
         "space_invaders/single_expert/seed=4"},
        {"gmp_width.ini", 300, "asterix/width=1/target_sparsity=0/seed=0",
         "space_invaders/width=4/target_sparsity=0.99/seed=4"},
        {"hlgauss_losses.ini", 75, "asterix/kind=mse/seed=0", "space_invaders/kind=hlgauss/seed=4"},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        char path[512], header[64];
        snprintf(path, sizeof path, "%s/sweeps/%s", TSR_CONFIGS_DIR, presets[i].file);
        tsr_sweep *s = load(path);
        cr_expect_eq(s->num_runs, presets[i].runs, "%s", presets[i].file);
        cr_expect_str_eq(s->runs[0].name, presets[i].first, "%s", presets[i].file);
        cr_expect_str_eq(s->runs[s->num_runs - 1].name, presets[i].last, "%s", presets[i].file);
        /* The header comment states the run count. */
        char *text = slurp(path);
        snprintf(header, sizeof header, "%lld runs", (long long)presets[i].runs);
        cr_expect(strstr(text, header), "%s does not say '%s'", presets[i].file, header);
        free(text);
        tsr_sweep_free(s);
    }
}

/* ==== bad sweep files ===================================================== */

Test(sweep, a_bad_sweep_file_fails_naming_its_line_and_what_to_do, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"[sweep]\nbase = missing.ini\n", "bad.ini:2: sweep.base missing.ini"},
        {"[sweep]\nseeds = 2\n", "the [sweep] section needs base = RUN_CONFIG"},
        {"[sweep]\nbase =\n", "bad.ini:2: sweep.base is empty"},
        {"[sweep]\nbase = " CARTPOLE "\nseed = 3\n",
         "bad.ini:3: unknown key sweep.seed (did you mean sweep.seeds?)"},
        {"[sweep]\nbase = " CARTPOLE "\nseeds = 0\n",
         "bad.ini:3: sweep.seeds = '0' is not an integer in [1, 1000000]"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nnetwork.num_expert = 1, 2\n",
         "bad.ini:4: unknown key network.num_expert (did you mean network.num_experts?)"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nnum_experts = 1, 2\n",
         "bad.ini:4: axis key 'num_experts' needs its run config section: section.key (did you "
         "mean network.num_experts?)"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.batch_size = 32, 0\n",
         "bad.ini:4: agent.batch_size = 0 is outside [1, 65536]"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.batch_size = 32, , 64\n",
         "bad.ini:4: axis agent.batch_size: empty value in the list"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.batch_size = 32, 32\n",
         "bad.ini:4: axis agent.batch_size lists 32 twice ('32' and '32')"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.gamma = 0.9, 0.90\n",
         "bad.ini:4: axis agent.gamma lists 0.9 twice ('0.9' and '0.90')"},
        {"[sweep]\nbase = " CARTPOLE "\n[variant a]\nagent.gamma = 0.9\n[variant a]\n"
         "agent.n_step = 2\n",
         "bad.ini:5: [variant a] appears twice"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nrun.seed = 1, 2\n",
         "bad.ini:4: axis key run.seed is set by the [sweep] section: use seeds = N there"},
        {"[sweep]\nbase = " CARTPOLE "\n[set]\nenv.name = minatar/breakout\n",
         "[set] key env.name is set by the [sweep] section: use games = ... there"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.gamma = 0.9, 0.99\n[set]\nagent.gamma = 0.9\n",
         "agent.gamma is both an axis and in [set]; keep one"},
        {"[sweep]\nbase = " CARTPOLE "\n[axis]\nagent.gamma = 0.9\n",
         "bad.ini:4: unknown section [axis]; a sweep file has [sweep], [axes], [set] and "
         "[variant NAME]"},
        {"[sweep]\nbase = " CARTPOLE "\ngames = breakout, pong\n",
         "bad.ini:3: sweep.games: unknown game 'pong'; valid: minatar/asterix"},
        {"[sweep]\nbase = " CARTPOLE "\n[variant a/b]\nagent.gamma = 0.9\n",
         "bad.ini:3: variant name 'a/b' may hold only letters, digits and . _ + - ="},
        {"[sweep]\nbase = " CARTPOLE "\n[set]\nagent.gamma = 0.9\nagent.gamma = 0.8\n",
         "bad.ini:5: [set] sets agent.gamma twice"},
        {"[sweep]\nbase = " CARTPOLE "\nthis line has no equals sign\n",
         "bad.ini:3: not INI syntax"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.replay_capacity = 1000, 10\n",
         "bad.ini: run cartpole/replay_capacity=10/seed=0: agent.replay_capacity = 10 is too "
         "small"},
        {"[sweep]\nbase = " CARTPOLE "\n[axes]\nagent.batch_size = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "
         "11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, "
         "33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49\n",
         "bad.ini:4: line longer than 198 characters; continue a list on indented lines"},
    };
    /* Errors name the file as given: it is loaded by its relative name. */
    cr_assert_eq(chdir(tmpdir), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file("bad.ini", cases[i].text);
        tsr_sweep sentinel, *s = &sentinel;
        tsr_error err = {0};
        tsr_status st = tsr_sweep_load(&s, "bad.ini", NULL, &err);
        cr_expect_neq(st, TSR_STATUS_OK, "case %zu loaded", i);
        cr_expect_null(s, "case %zu: no sweep on failure", i);
        cr_expect(strstr(err.message, cases[i].message), "case %zu: '%s' does not contain '%s'", i,
                  err.message, cases[i].message);
    }
}

/* ==== run directories ===================================================== */

/* Writes `cfg` as RUN_DIR/config.ini, the way `tessera train` does. */
static void write_config(const char *dir, const tsr_run_schema *schema, const tsr_run_config *cfg)
{
    char cmd[512], path[512];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "; resolved config\n");
    tsr_config_write(&schema->schema, cfg, f);
    fclose(f);
}

static void write_bytes_to(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void write_metrics(const char *dir, const char *rows)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "iteration,agent_steps,steps_per_second\n%s", rows);
    fclose(f);
}

Test(sweep, a_run_is_new_unfinished_or_finished_by_its_config_and_metrics, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char text[1024];
    snprintf(text, sizeof text,
             "[sweep]\nbase = " CARTPOLE "\nout = %s/out\n[set]\nrun.iterations = 3\n", tmpdir);
    tsr_sweep *s = load(write_file("state.ini", text));
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_sweep_run_state state;
    tsr_error err;
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect_eq(state, TSR_SWEEP_RUN_NEW);

    tsr_run_config cfg;
    cr_assert_eq(tsr_sweep_run_config(s, 0, &schema, &cfg, &err), TSR_STATUS_OK);
    const char *dir = s->runs[0].dir;
    write_config(dir, &schema, &cfg);
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect_eq(state, TSR_SWEEP_RUN_UNFINISHED, "config.ini without metrics");

    /* A last row cut short (no newline: the run died writing it) is not a row. */
    write_metrics(dir, "1,100,5.5\n2,200,5.5\n3,30");
    int64_t last;
    cr_assert_eq(tsr_run_dir_last_iteration(dir, &last, &err), TSR_STATUS_OK);
    cr_expect_eq(last, 2);
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK);
    cr_expect_eq(state, TSR_SWEEP_RUN_UNFINISHED);

    write_metrics(dir, "1,100,5.5\n2,200,5.5\n3,300,5.5\n");
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK);
    cr_expect_eq(state, TSR_SWEEP_RUN_FINISHED);

    /* Killed while saving its final checkpoint: the last row is there, the
     * checkpoint only as its temporary file. Unfinished until it is saved. */
    char path[600];
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    tsr_checkpoint_path(dir, 3, path, sizeof path);
    strcat(path, ".tmp");
    write_bytes_to(path, "\x89HDF");
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK);
    cr_expect_eq(state, TSR_SWEEP_RUN_UNFINISHED, "final checkpoint cut short");
    tsr_checkpoint_path(dir, 3, path, sizeof path);
    write_bytes_to(path, "saved");
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK);
    cr_expect_eq(state, TSR_SWEEP_RUN_FINISHED, "the final checkpoint and a stray .tmp");
    cr_assert_eq(unlink(path), 0);
    strcat(path, ".tmp");
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK);
    cr_expect_eq(state, TSR_SWEEP_RUN_FINISHED, "checkpoints deleted after the run");

    /* Another thread count is the same experiment; another key is not. */
    cfg.run.threads = 4;
    write_config(dir, &schema, &cfg);
    cr_assert_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect_eq(state, TSR_SWEEP_RUN_FINISHED);
    cfg.agent.gamma = 0.9;
    write_config(dir, &schema, &cfg);
    cr_expect_eq(tsr_sweep_run_state_get(s, 0, &schema, &state, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "has agent.gamma = 0.9 but the sweep") &&
                  strstr(err.message, "gives 0.99"),
              "%s", err.message);

    write_metrics(dir, "1,100,5.5\nx,200,5.5\n");
    cr_expect_eq(tsr_run_dir_last_iteration(dir, &last, &err), TSR_STATUS_FORMAT);
    cr_expect(strstr(err.message, "metrics.csv:3: the row does not start with an iteration"),
              "%s", err.message);
    tsr_sweep_free(s);
}

/* ==== tessera sweep ======================================================= */

static time_t modified_ns(const char *path, long *ns)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s is missing", path);
    *ns = st.st_mtim.tv_nsec;
    return st.st_mtim.tv_sec;
}

static int count_substrings(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static const char *const local_runs[] = {
    "cartpole/learning_rate=0.0005/seed=0",
    "cartpole/learning_rate=0.001/seed=0",
    "cartpole/learning_rate=0.0005/seed=1",
    "cartpole/learning_rate=0.001/seed=1",
};

static const char *write_tiny_sweep(void)
{
    return write_file("tiny.ini", "[sweep]\n"
                                  "base = " CARTPOLE "\n"
                                  "seeds = 2\n"
                                  "[axes]\n"
                                  "optimizer.learning_rate = 0.0005, 0.001\n" TINY_RUNS);
}

Test(sweep, a_local_sweep_runs_each_run_once_and_a_second_invocation_skips_them,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    const char *sweep = write_tiny_sweep();
    char args[1024], *out, *err, path[512];
    snprintf(args, sizeof args, "sweep %s --out %s/out --jobs 2", sweep, tmpdir);
    cr_assert_eq(tessera("", args, &out, &err), 0, "stdout: %s\nstderr: %s", out, err);
    cr_expect(strstr(out, "4 runs (1 game x 2 learning_rate x 2 seeds)"), "%s", out);
    cr_expect(strstr(out, "4 finished (4 by this invocation"), "%s", out);
    free(out);
    free(err);

    time_t seconds[4];
    long nanoseconds[4];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/out/%s/metrics.csv", tmpdir, local_runs[i]);
        char *csv = slurp(path);
        cr_assert_not_null(csv, "%s is missing", path);
        cr_expect_eq(count_substrings(csv, "\n"), 3, "header + 2 iterations: %s", csv);
        free(csv);
        seconds[i] = modified_ns(path, &nanoseconds[i]);
        snprintf(path, sizeof path, "%s/out/%s/config.ini", tmpdir, local_runs[i]);
        char *config = slurp(path);
        cr_assert_not_null(config);
        /* Values are written in their shortest exact form. */
        cr_expect(strstr(config, i % 2 ? "learning_rate = 0.001\n" : "learning_rate = 0.0005\n"),
                  "%s", local_runs[i]);
        cr_expect(strstr(config, i < 2 ? "seed = 0\n" : "seed = 1\n"), "%s", local_runs[i]);
        free(config);
    }

    /* Again: nothing runs, nothing is rewritten. */
    cr_assert_eq(tessera("", args, &out, &err), 0, "stdout: %s\nstderr: %s", out, err);
    cr_expect(strstr(out, "4 finished, 0 to resume, 0 to start"), "%s", out);
    cr_expect(strstr(out, "4 finished (0 by this invocation"), "%s", out);
    cr_expect(!strstr(out, "\nstarted "), "%s", out);
    free(out);
    free(err);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/out/%s/metrics.csv", tmpdir, local_runs[i]);
        long ns;
        time_t s = modified_ns(path, &ns);
        cr_expect(s == seconds[i] && ns == nanoseconds[i], "%s was rewritten", path);
        snprintf(path, sizeof path, "%s/out/%s/train.log", tmpdir, local_runs[i]);
        char *log = slurp(path);
        cr_assert_not_null(log);
        cr_expect_eq(count_substrings(log, "# tessera sweep: starting"), 1, "%s", log);
        free(log);
    }

    /* A run cut short is resumed, the others are skipped. */
    snprintf(path, sizeof path, "%s/out/%s/metrics.csv", tmpdir, local_runs[2]);
    char *csv = slurp(path);
    *strchr(strchr(csv, '\n') + 1, '\n') = '\0'; /* keep the header and iteration 1 */
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", csv);
    fclose(f);
    free(csv);
    snprintf(args, sizeof args, "sweep %s --out %s/out --dry-run", sweep, tmpdir);
    cr_assert_eq(tessera("", args, &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "3 finished, 1 to resume, 0 to start"), "%s", out);
    cr_expect(strstr(out, "resume cartpole/learning_rate=0.0005/seed=1  (2 x 200 steps)\n"), "%s",
              out);
    cr_expect(strstr(out, "skip   cartpole/learning_rate=0.001/seed=1  (2 x 200 steps)\n"), "%s",
              out);
    free(out);
    free(err);
}

Test(sweep, failed_runs_are_listed_with_their_logs_and_the_exit_code_is_1, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* The MinAtar encoder cannot take CartPole's vector observations: the
     * config loads, the run fails when it builds its network. */
    const char *sweep = write_file("fail.ini", "[sweep]\n"
                                               "base = " CARTPOLE "\n"
                                               "[axes]\n"
                                               "network.encoder = mlp, minatar\n" TINY_RUNS);
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "sweep %s --out %s/out", sweep, tmpdir);
    cr_assert_eq(tessera("", args, &out, &err), 1, "stdout: %s\nstderr: %s", out, err);
    cr_expect(strstr(out, "1 finished (1 by this invocation"), "%s", out);
    char expected[512];
    snprintf(expected, sizeof expected,
             "  failed: cartpole/encoder=minatar/seed=0 (exit 1), log %s/out/cartpole/"
             "encoder=minatar/seed=0/train.log\n", tmpdir);
    cr_expect(strstr(out, expected), "%s", out);
    char path[512];
    snprintf(path, sizeof path, "%s/out/cartpole/encoder=minatar/seed=0/train.log", tmpdir);
    char *log = slurp(path);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "tessera train: "), "the log holds the run's error: %s", log);
    free(log);
    free(out);
    free(err);
}

Test(sweep, a_bad_sweep_file_fails_before_any_run_starts, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* A batch of 2,000 does not fit TINY_RUNS' replay of 1,000. */
    const char *sweep = write_file("late.ini", "[sweep]\n"
                                               "base = " CARTPOLE "\n"
                                               "[axes]\n"
                                               "agent.batch_size = 32, 2000\n" TINY_RUNS);
    char args[1024], *out, *err, path[512];
    snprintf(args, sizeof args, "sweep %s --out %s/out", sweep, tmpdir);
    cr_expect_eq(tessera("", args, &out, &err), 1);
    cr_expect(strstr(err, "run cartpole/batch_size=2000/seed=0: agent.replay_capacity = 1000 is "
                          "too small"), "%s", err);
    snprintf(path, sizeof path, "%s/out", tmpdir);
    cr_expect_neq(access(path, F_OK), 0, "a run started although another could not load");
    free(out);
    free(err);
}

Test(sweep, a_second_invocation_on_the_same_output_is_refused_while_the_first_runs,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    const char *sweep = write_tiny_sweep();
    char path[512], args[1024], *out, *err;
    snprintf(path, sizeof path, "%s/out", tmpdir);
    cr_assert_eq(mkdir(path, 0777), 0);
    snprintf(path, sizeof path, "%s/out/sweep.lock", tmpdir);
    int fd = open(path, O_RDWR | O_CREAT, 0666);
    cr_assert_geq(fd, 0);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    snprintf(args, sizeof args, "sweep %s --out %s/out", sweep, tmpdir);
    cr_expect_eq(tessera("", args, &out, &err), 1);
    cr_expect(strstr(err, "another tessera sweep is running on"), "%s", err);
    cr_expect(!strstr(out, "started"), "%s", out);
    free(out);
    free(err);
    close(fd);
}

/* ==== mpirun ============================================================== */

Test(sweep, under_mpirun_the_runs_are_spread_over_ranks_with_the_local_results,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    if (!TSR_MPIRUN[0])
        cr_skip_test("mpirun not found when tessera was configured: install openmpi-bin "
                     "(setup.sh does) to test tessera sweep under MPI");
    const char *sweep = write_tiny_sweep();
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "sweep %s --out %s/local", sweep, tmpdir);
    cr_assert_eq(tessera("", args, &out, &err), 0, "stdout: %s\nstderr: %s", out, err);
    free(out);
    free(err);

    /* CI runs as root, which mpirun refuses unless told; two ranks on this
     * machine: rank 0 schedules, rank 1 runs. Open MPI's plugins leak at
     * MPI_Finalize and are unloaded before LeakSanitizer's exit check, so
     * their stacks cannot be suppressed: the ranks run without leak checks
     * (the same sweep code is leak-checked by the local tests above). */
    char prefix[1024];
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(prefix, sizeof prefix,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
             "ASAN_OPTIONS='%s%sdetect_leaks=0' %s --oversubscribe -n 2",
             asan ? asan : "", asan && asan[0] ? ":" : "", TSR_MPIRUN);
    snprintf(args, sizeof args, "sweep %s --out %s/mpi", sweep, tmpdir);
    cr_assert_eq(tessera(prefix, args, &out, &err), 0, "stdout: %s\nstderr: %s", out, err);
    cr_expect(strstr(out, "1 worker, "), "%s", out);
    cr_expect_eq(count_substrings(out, "(rank 1, "), 8, "4 starts and 4 ends on rank 1: %s", out);
    cr_expect(strstr(out, "4 finished (4 by this invocation"), "%s", out);
    free(out);
    free(err);

    for (int i = 0; i < 4; i++) {
        char local[512], mpi[512];
        snprintf(local, sizeof local, "%s/local/%s/metrics.csv", tmpdir, local_runs[i]);
        snprintf(mpi, sizeof mpi, "%s/mpi/%s/metrics.csv", tmpdir, local_runs[i]);
        char *a = tsr_test_metrics_without_wall_clock(local), *b = tsr_test_metrics_without_wall_clock(mpi);
        cr_expect_eq(count_substrings(a, "\n"), 3, "%s", a);
        cr_expect_str_eq(a, b, "%s differs between the local and the mpirun sweep",
                         local_runs[i]);
        free(a);
        free(b);
    }
}

/* ==== resuming ============================================================ */

/* `tessera sweep SWEEP --out DIR` in the background, its stdout to
 * `stdout_path`, its stderr dropped. */
static pid_t start_sweep(const char *sweep, const char *dir, const char *stdout_path)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (!freopen(stdout_path, "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(99);
        execl(TSR_TESSERA_EXE, TSR_TESSERA_EXE, "sweep", sweep, "--out", dir, (char *)NULL);
        _exit(98);
    }
    return pid;
}

Test(sweep, runs_stop_when_the_sweep_process_is_killed, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* SIGKILL (or the OOM killer, or a closed terminal) ends the sweep
     * without its asking the runs to stop: each run gets SIGINT from the
     * kernel instead (PR_SET_PDEATHSIG) and stops as on Ctrl-C, rather than
     * running on beside a rerun that resumes it. */
    const char *sweep = write_file("orphan.ini", "[sweep]\n"
                                                 "base = " CARTPOLE "\n"
                                                 "[set]\n"
                                                 "run.iterations = 1000\n"
                                                 "run.training_steps = 400\n"
                                                 "run.evaluation_episodes = 0\n"
                                                 "agent.min_replay_history = 100\n"
                                                 "agent.replay_capacity = 1000\n");
    char dir[256], run[300], checkpoint[512], log_path[512];
    snprintf(dir, sizeof dir, "%s/out", tmpdir);
    snprintf(run, sizeof run, "%s/cartpole/seed=0", dir);
    tsr_checkpoint_path(run, 1, checkpoint, sizeof checkpoint);
    snprintf(log_path, sizeof log_path, "%s/train.log", run);
    pid_t pid = start_sweep(sweep, dir, "/dev/null");
    for (int waited = 0; access(checkpoint, F_OK) != 0 && waited < 120000; waited += 10)
        usleep(10000);
    cr_assert_eq(access(checkpoint, F_OK), 0, "no checkpoint after 2 minutes");
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char *log = NULL;
    for (int waited = 0; waited < 60000; waited += 50) {
        free(log);
        log = slurp(log_path);
        if (log && strstr(log, "Interrupted.")) break;
        usleep(50000);
    }
    cr_expect(log && strstr(log, "Interrupted.") && strstr(log, "(interrupted)"),
              "the run went on after the sweep was killed:\n%s", log ? log : "(no log)");
    free(log);
}

/* A Ctrl-C that reaches a run before it has set its SIGINT handler (its
 * first tenth of a second: loading libraries, the config, the agent) kills
 * it: the run stopped as asked, like one that exits 130, and did not fail.
 * The sweep is interrupted as soon as the run's log exists, which is just
 * before the run is spawned. */
Test(sweep, a_run_killed_by_the_forwarded_ctrl_c_has_stopped_not_failed, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    const char *sweep = write_file("early.ini", "[sweep]\n"
                                                "base = " CARTPOLE "\n"
                                                "[set]\n"
                                                "run.iterations = 1000\n"
                                                "run.training_steps = 400\n");
    char dir[256], log_path[512], out_path[300];
    snprintf(dir, sizeof dir, "%s/out", tmpdir);
    snprintf(log_path, sizeof log_path, "%s/cartpole/seed=0/train.log", dir);
    snprintf(out_path, sizeof out_path, "%s/early.txt", tmpdir);
    pid_t pid = start_sweep(sweep, dir, out_path);
    for (int waited = 0; access(log_path, F_OK) != 0 && waited < 120000; waited++) usleep(1000);
    cr_assert_eq(access(log_path, F_OK), 0, "no train.log after 2 minutes");
    kill(pid, SIGINT);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char *out = slurp(out_path), *log = slurp(log_path);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d: %s", status, out);
    cr_expect(strstr(out, "stopped  cartpole/seed=0") && !strstr(out, "FAILED"),
              "%s\ntrain.log:\n%s", out, log ? log : "(none)");
    cr_expect(strstr(out, "0 failed, 1 stopped"), "%s", out);
    free(out);
    free(log);
}

Test(sweep, an_interrupted_sweep_resumes_to_the_results_of_an_uninterrupted_one,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    const char *sweep = write_file("resume.ini", "[sweep]\n"
                                                 "base = " CARTPOLE "\n"
                                                 "seeds = 2\n"
                                                 "[set]\n"
                                                 "run.iterations = 4\n"
                                                 "run.training_steps = 400\n"
                                                 "run.evaluation_episodes = 1\n"
                                                 "agent.min_replay_history = 100\n"
                                                 "agent.replay_capacity = 1000\n");
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "sweep %s --out %s/reference", sweep, tmpdir);
    cr_assert_eq(tessera("", args, &out, &err), 0, "stdout: %s\nstderr: %s", out, err);
    free(out);
    free(err);

    /* Ctrl-C as soon as seed 0 has its first checkpoint (of 4). */
    char dir[256], checkpoint[512], out_path[300];
    snprintf(dir, sizeof dir, "%s/resumed", tmpdir);
    snprintf(out_path, sizeof out_path, "%s/interrupted.txt", tmpdir);
    char seed0[300];
    snprintf(seed0, sizeof seed0, "%s/cartpole/seed=0", dir);
    tsr_checkpoint_path(seed0, 1, checkpoint, sizeof checkpoint);
    pid_t pid = start_sweep(sweep, dir, out_path);
    for (int waited = 0; access(checkpoint, F_OK) != 0 && waited < 120000; waited += 10)
        usleep(10000);
    cr_assert_eq(access(checkpoint, F_OK), 0, "no checkpoint after 2 minutes");
    kill(pid, SIGINT);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    out = slurp(out_path);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d: %s", status, out);
    cr_expect(strstr(out, "stopped  cartpole/seed=0"), "%s", out);
    cr_expect(strstr(out, "Run the same command again to resume"), "%s", out);
    free(out);

    snprintf(args, sizeof args, "sweep %s --out %s --dry-run", sweep, dir);
    cr_assert_eq(tessera("", args, &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "resume cartpole/seed=0  ("), "%s", out);
    free(out);
    free(err);
    snprintf(args, sizeof args, "sweep %s --out %s", sweep, dir);
    cr_assert_eq(tessera("", args, &out, &err), 0, "stdout: %s\nstderr: %s", out, err);
    cr_expect(strstr(out, "2 finished (2 by this invocation"), "%s", out);
    free(out);
    free(err);

    char path[512];
    snprintf(path, sizeof path, "%s/train.log", seed0);
    char *log = slurp(path);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "# tessera sweep: resuming cartpole/seed=0") &&
                  strstr(log, "train --resume "),
              "%s", log);
    free(log);
    for (int seed = 0; seed < 2; seed++) {
        char reference[512], resumed[512];
        snprintf(reference, sizeof reference, "%s/reference/cartpole/seed=%d/metrics.csv", tmpdir,
                 seed);
        snprintf(resumed, sizeof resumed, "%s/cartpole/seed=%d/metrics.csv", dir, seed);
        char *a = tsr_test_metrics_without_wall_clock(reference), *b = tsr_test_metrics_without_wall_clock(resumed);
        cr_expect_eq(count_substrings(a, "\n"), 5, "%s", a);
        cr_expect_str_eq(a, b, "seed %d: the resumed sweep's metrics differ", seed);
        free(a);
        free(b);
    }
}
