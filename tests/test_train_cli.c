/* `tessera train` and `tessera eval` run as a user runs them: config errors,
 * the run directory's files, bit-identical reruns, evaluating a run. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/files.h"
#include "tessera/tessera.h"

static char tmpdir[64];

static void make_tmpdir(void) { tsr_test_tmpdir_make(tmpdir, sizeof tmpdir, "cli"); }
static void remove_tmpdir(void) { tsr_test_tmpdir_remove(tmpdir); }

/* Runs `tessera ARGS` with stdout and stderr captured; returns the exit code. */
static int tessera(const char *args, char **out, char **err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", TSR_TESSERA_EXE, args);
    return tsr_test_run(tmpdir, cmd, out, err);
}

Test(train_cli, keys_lists_every_key_of_the_schema_with_its_default, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    char *out, *err, line[512];
    cr_assert_eq(tessera("keys", &out, &err), 0, "%s", err);
    for (int i = 0; i < schema.schema.count; i++) {
        const tsr_config_key *k = &schema.schema.keys[i];
        snprintf(line, sizeof line, "\n%s = %s\n", k->name, k->default_value);
        cr_expect(strstr(out, line), "'%s.%s' is missing", k->section, k->name);
    }
    cr_expect(strstr(out, "[agent]") && strstr(out, "[optimizer]"), "%s", out);
    cr_expect(strstr(out, "\nkind = mse\n    one of: mse, huber, c51, twohot, hlgauss;"), "%s",
              out);
    free(out);
    free(err);
    /* One section, and a section that does not exist. */
    cr_assert_eq(tessera("keys optimizer", &out, &err), 0, "%s", err);
    cr_expect(!strncmp(out, "[optimizer]\n", 12) && !strstr(out, "[agent]") &&
                  strstr(out, "\nbeta2 = 0.999\n    number 0 to 1; "), "%s", out);
    free(out);
    free(err);
    cr_expect_eq(tessera("keys optimiser", &out, &err), 1);
    cr_expect(strstr(err, "no section 'optimiser'; the sections are env, network, loss, pruning, "
                          "agent, optimizer, run"), "%s", err);
    free(out);
    free(err);
}

Test(train_cli, env_summary_and_version_name_an_option_that_does_not_apply, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"env run minatar/breakout --no-ramping", "minatar/breakout has no difficulty ramping"},
        {"env run minatar/asterix --threshold 0.3", "--threshold applies to --continuous actions"},
        {"summary - --bogus", "unknown or incomplete option '--bogus'"},
        {"summary - --batch 99999999999999999999", "is not a positive integer"},
        {"version now", "takes no arguments (got 'now')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        cr_expect_eq(tessera(cases[i].args, &out, &err), 2, "%s", cases[i].args);
        cr_expect(strstr(err, cases[i].message), "%s: %s", cases[i].args, err);
        free(out);
        free(err);
    }
    /* Where they apply, the options work. */
    char *out, *err;
    cr_expect_eq(tessera("env run minatar/asterix --no-ramping --episodes 1", &out, &err), 0, "%s",
                 err);
    free(out);
    free(err);
}

/* --help and -h print the usage on stdout and exit 0 for every command; a
 * usage error (a missing argument, an option's bad value) goes to stderr
 * with exit 2, naming the option the user typed. */
Test(train_cli, help_and_option_errors_are_consistent_across_commands, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    static const char *const commands[] = {"", "train ", "eval ", "inspect ", "summary ",
                                           "keys ", "report ", "sweep ", "env ", "env run ",
                                           "env list ", "version "};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        for (int dash = 0; dash < 2; dash++) {
            char args[64], *out, *err;
            snprintf(args, sizeof args, "%s%s", commands[i], dash ? "-h" : "--help");
            cr_expect_eq(tessera(args, &out, &err), 0, "tessera %s", args);
            cr_expect(strstr(out, "usage: tessera"), "tessera %s: stdout %s", args, out);
            cr_expect_str_empty(err, "tessera %s", args);
            free(out);
            free(err);
        }
    char *out, *err;
    cr_expect_eq(tessera("train", &out, &err), 2);
    cr_expect(strstr(err, "usage: tessera train"), "%s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("train - --seed abc", &out, &err), 2);
    cr_expect(strstr(err, "--seed 'abc' is not an integer"), "%s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("train - --threads 0", &out, &err), 2);
    cr_expect(strstr(err, "--threads '0' is not an integer from 1 to 1024"), "%s", err);
    free(out);
    free(err);
    /* An override not of the form section.key=value is a malformed command
     * line (2); a well-formed one the config refuses is a config error (1). */
    static const struct {
        const char *args, *message;
        int code;
    } overrides[] = {
        {"train - --set foo", "--set 'foo': expected section.key=value", 2},
        {"train - --set run.iterations", "--set 'run.iterations': expected section.key=value", 2},
        {"train - --set =run.x", "--set '=run.x': expected section.key=value", 2},
        {"eval . --set .seed=1", "--set '.seed=1': expected section.key=value", 2},
        {"summary - --set run.=1", "--set 'run.=1': expected section.key=value", 2},
        {"report . --by bogus", "--by 'bogus': expected section.key", 2},
        {"report . --scale net.", "--scale 'net.': expected section.key, e.g. network.num_experts, "
                                  "or params", 2},
        {"train - --set run.iterations=abc --quiet", "is not an integer", 1},
        {"summary - --set network.num_expert=2", "did you mean network.num_experts", 1},
    };
    for (size_t i = 0; i < sizeof overrides / sizeof overrides[0]; i++) {
        cr_expect_eq(tessera(overrides[i].args, &out, &err), overrides[i].code, "%s: %s",
                     overrides[i].args, err);
        cr_expect(strstr(err, overrides[i].message), "%s: %s", overrides[i].args, err);
        free(out);
        free(err);
    }
    /* A config that builds no agent leaves no run directory behind. */
    char args[512];
    snprintf(args, sizeof args, "train %s/cartpole/dqn.ini --set network.encoder=nature --run-dir "
                                "%s/unbuilt --quiet", TSR_CONFIGS_DIR, tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "needs image observations"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "%s/unbuilt", tmpdir);
    cr_expect_neq(access(args, F_OK), 0, "%s was created", args);
    cr_expect_eq(tessera("train --set run.iterations=1 -", &out, &err), 2);
    cr_expect(strstr(err, "CONFIG comes first, then the options"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "train --resume %s/cartpole/dqn.ini", TSR_CONFIGS_DIR);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "--resume takes a run directory") && strstr(err, "is a file"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "inspect %s", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "is not a run directory"), "%s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("summary - --set foo.bar=1", &out, &err), 1);
    cr_expect(strstr(err, "there is no section [foo]; sections: env, network"), "%s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("summary - --set agent.xyzzy=1", &out, &err), 1);
    cr_expect(strstr(err, "tessera keys agent lists"), "%s", err);
    free(out);
    free(err);
    /* A run gets exactly run.threads threads, or refuses to start. */
    snprintf(args, sizeof args, "OMP_THREAD_LIMIT=1 %s train - --threads 2 --run-dir %s/limited",
             TSR_TESSERA_EXE, tmpdir);
    cr_expect_eq(tsr_test_run(tmpdir, args, &out, &err), 1);
    cr_expect(strstr(err, "OMP_THREAD_LIMIT allows at most 1"), "%s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("--version", &out, &err), 0);
    cr_expect(strstr(out, "tessera ") && strstr(out, "oneDNN"), "%s", out);
    free(out);
    free(err);
}

/* A short CartPole run: 2 iterations of 600 steps, 2 evaluation episodes. */
#define SHORT_RUN                                                                                 \
    TSR_CONFIGS_DIR "/cartpole/dqn.ini --set run.iterations=2 --set run.training_steps=600 "      \
                    "--set run.evaluation_episodes=2 --set agent.min_replay_history=200 --quiet"

Test(train_cli, an_unknown_key_fails_with_the_nearest_key, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char *out, *err, args[1024];
    snprintf(args, sizeof args, "train %s --set agent.gama=0.9 --run-dir %s/run", SHORT_RUN, tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "unknown key agent.gama (did you mean agent.gamma?)"), "stderr: %s", err);
    free(out);
    free(err);
}

Test(train_cli, a_bad_value_fails_naming_the_key_value_and_range, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char *out, *err, args[1024];
    snprintf(args, sizeof args, "train %s --set agent.batch_size=0 --run-dir %s/run", SHORT_RUN,
             tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "agent.batch_size = 0 is outside [1, 65536]"), "stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "train %s --set optimizer.kind=lamb --run-dir %s/run", SHORT_RUN,
             tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "optimizer.kind = 'lamb' is not one of: sgd, adam, rmsprop"), "stderr: %s",
              err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "train %s/missing.ini --run-dir %s/run", tmpdir, tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "cannot open config file"), "stderr: %s", err);
    free(out);
    free(err);
}

/* SHORT_RUN makes (1,200 - 1) - 200 = 999 gradient updates: a schedule in
 * updates that starts after them, or ends after them, is named at the start
 * of the run; one that fits is not. */
Test(train_cli, a_pruning_schedule_beyond_the_runs_updates_is_warned_about, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    const struct {
        const char *window, *warning;
    } cases[] = {
        {"--set pruning.start_step=2000 --set pruning.end_step=3000",
         "WARNING: pruning: the first mask is computed before gradient update 2000 "
         "(pruning.start_step = 2000), but this run makes about 999 updates, so the network "
         "will most likely never be pruned"},
        {"--set pruning.start_step=0 --set pruning.end_step=1500",
         "WARNING: pruning: the schedule ends at gradient update 1500 (pruning.end_step), but "
         "this run makes about 999 updates: its last mask, before update 900, has sparsity "},
        {"--set pruning.start_step=0 --set pruning.end_step=900", NULL},
        {"", "WARNING: pruning: mode = gmp with a window of no length (pruning.start_step = "
             "end_step = 0) prunes once, before gradient update 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err, args[1024];
        snprintf(args, sizeof args,
                 "train %s --set pruning.mode=gmp --set pruning.step_units=updates "
                 "--set pruning.update_freq=100 %s --run-dir %s/run%zu",
                 SHORT_RUN, cases[i].window, tmpdir, i);
        cr_expect_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
        if (cases[i].warning)
            cr_expect(strstr(err, cases[i].warning), "case %zu, stderr: %s", i, err);
        else
            cr_expect_null(strstr(err, "WARNING"), "case %zu, stderr: %s", i, err);
        free(out);
        free(err);
    }
}

/* Two trainings of one run directory would write the same files: while
 * another process holds the directory's lock (here the test itself), a
 * resume and new runs there are refused and change nothing; once it is
 * released, the resume goes ahead. */
Test(train_cli, a_run_directory_in_use_is_refused, .init = make_tmpdir, .fini = remove_tmpdir)
{
    char *out, *err, args[1024], dir[256], path[320];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    snprintf(args, sizeof args, "train %s --set run.iterations=3 --run-dir %s", SHORT_RUN, dir);
    cr_assert_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
    free(out);
    free(err);
    /* Back to 2 of 3 iterations done, as if killed during the third. */
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-000003.h5", dir);
    cr_assert_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *before = tsr_test_slurp(path, NULL);
    cr_assert_not_null(before);

    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    snprintf(args, sizeof args, "train --resume %s --quiet", dir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "run is in use by another tessera train (it holds the directory's "
                          "lock); nothing was changed"), "stderr: %s", err);
    free(out);
    free(err);
    /* A new run on it is refused for the lock, not for the metrics: the
     * "holds a run" check is made under the lock, so two new runs started
     * at once on one directory cannot both pass it. */
    snprintf(args, sizeof args, "train %s --run-dir %s", SHORT_RUN, dir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "run is in use by another tessera train"), "stderr: %s", err);
    free(out);
    free(err);
    char *after = tsr_test_slurp(path, NULL);
    cr_expect_str_eq(after, before, "metrics.csv changed");
    free(after);

    char other[256];
    snprintf(other, sizeof other, "%s/empty", tmpdir);
    cr_assert_eq(mkdir(other, 0777), 0);
    int fd2 = open(other, O_RDONLY | O_DIRECTORY);
    cr_assert_eq(flock(fd2, LOCK_EX | LOCK_NB), 0);
    snprintf(args, sizeof args, "train %s --run-dir %s", SHORT_RUN, other);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "empty is in use by another tessera train"), "stderr: %s", err);
    snprintf(path, sizeof path, "%s/config.ini", other);
    cr_expect_neq(access(path, F_OK), 0, "a refused new run wrote its config");
    free(out);
    free(err);
    close(fd2);

    close(fd); /* releases the lock */
    snprintf(args, sizeof args, "train --resume %s --quiet", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "(iteration 2 of 3)"), "stdout: %s", out);
    free(out);
    free(err);
    free(before);
}

Test(train_cli, a_run_writes_its_config_metrics_and_checkpoints_and_evaluates,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    char *out, *err, args[1024], path[256];
    snprintf(args, sizeof args, "train %s --seed 3 --threads 1 --run-dir %s/run", SHORT_RUN, tmpdir);
    cr_assert_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "iteration 2/2"), "stdout: %s", out);
    cr_expect(strstr(out, "metrics.csv"), "the closing line says where the logs are: %s", out);
    free(out);
    free(err);

    snprintf(path, sizeof path, "%s/run/config.ini", tmpdir);
    char *config = tsr_test_slurp(path, NULL);
    cr_assert_not_null(config);
    cr_expect(strstr(config, "seed = 3"), "%s", config);
    cr_expect(strstr(config, "name = classic/cartpole"));
    cr_expect(!strstr(config, "[config]"), "the saved config is flat");
    free(config);

    snprintf(path, sizeof path, "%s/run/metrics.csv", tmpdir);
    char *csv = tsr_test_slurp(path, NULL);
    cr_assert_not_null(csv);
    static const char header[] = "iteration,agent_steps,gradient_updates,episodes,train_return,"
                                 "loss,mean_q,sparsity,dormant_fraction,steps_per_second,"
                                 "eval_return,seconds,head_dormant_fraction,recent_return\n";
    cr_expect(!strncmp(csv, header, sizeof header - 1), "%s", csv);
    int lines = 0;
    for (const char *c = csv; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 3, "header + 2 iterations: %s", csv);
    free(csv);
    snprintf(path, sizeof path, "%s/run/metrics.jsonl", tmpdir);
    char *json = tsr_test_slurp(path, NULL);
    cr_assert_not_null(json);
    cr_expect(strstr(json, "{\"iteration\": 2, "), "%s", json);
    cr_expect(strstr(json, "\"eval_return\": "), "%s", json);
    free(json);

    /* A checkpoint after each iteration; the newest two are kept. */
    for (int it = 1; it <= 2; it++) {
        snprintf(path, sizeof path, "%s/run/checkpoints/ckpt-%06d.h5", tmpdir, it);
        cr_expect_eq(access(path, R_OK), 0, "%s is missing", path);
    }

    snprintf(args, sizeof args, "eval %s/run --episodes 3", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "3 episodes") && strstr(out, "mean return"), "stdout: %s", out);
    free(out);
    free(err);

    /* eval names what is wrong with its RUN_DIR. */
    snprintf(args, sizeof args, "eval %s/missing", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "cannot read") && strstr(err, "No such file or directory"), "stderr: %s",
              err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval %s/run/checkpoints/ckpt-000002.h5", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "is not a directory: give the run directory"), "stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval %s/run/checkpoints", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "holds no config.ini: it is not a run directory"), "stderr: %s", err);
    free(out);
    free(err);

    /* A second run into the same directory is refused. */
    snprintf(args, sizeof args, "train %s --run-dir %s/run", SHORT_RUN, tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "already holds a run"), "stderr: %s", err);
    free(out);
    free(err);

    /* Evaluating under a config whose network differs names the tensor and
     * both shapes. */
    snprintf(args, sizeof args, "eval %s/run --set network.hidden=32", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "has shape (128, 128) in the file but (32, 128) here"), "stderr: %s",
              err);
    cr_expect(!strstr(err, "falling back"), "a config mismatch is not damage: %s", err);
    free(out);
    free(err);
}

/* dir/metrics.csv without its wall-clock columns. */
static char *metrics_without_speed(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    return tsr_test_metrics_without_wall_clock(path);
}

/* Whether two runs' final online parameters are equal (h5diff exits 0 when
 * the datasets are identical, 1 when they differ). */
static bool same_final_params(const char *dir_a, const char *dir_b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "h5diff %s/checkpoints/ckpt-000002.h5 %s/checkpoints/ckpt-000002.h5 /params/online "
             ">/dev/null 2>&1",
             dir_a, dir_b);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) <= 1, "%s failed", cmd);
    return WEXITSTATUS(status) == 0;
}

Test(train_cli, two_runs_with_the_same_seed_are_bit_identical, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char *out, *err, args[1024], dirs[3][128];
    const char *seeds[3] = {"5", "5", "6"};
    for (int i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/run%d", tmpdir, i);
        snprintf(args, sizeof args, "train %s --seed %s --threads 2 --run-dir %s", SHORT_RUN,
                 seeds[i], dirs[i]);
        cr_assert_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
        free(out);
        free(err);
    }
    char *m0 = metrics_without_speed(dirs[0]), *m1 = metrics_without_speed(dirs[1]);
    cr_expect_str_eq(m0, m1);
    cr_expect(same_final_params(dirs[0], dirs[1]), "the final parameters of two seed-5 runs differ");
    cr_expect(!same_final_params(dirs[0], dirs[2]), "seeds 5 and 6 gave the same parameters");
    free(m0);
    free(m1);
}
