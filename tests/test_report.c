/* `tessera report` run as a user runs it, on run directories the tests write
 * themselves: the groups and their numbers, normalisation, the CSV, the
 * figures, and the errors a user can cause. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/files.h"
#include "tessera/stats.h"

static char tmpdir[64];

static void make_tmpdir(void) { tsr_test_tmpdir_make(tmpdir, sizeof tmpdir, "report"); }
static void remove_tmpdir(void) { tsr_test_tmpdir_remove(tmpdir); }

static char *slurp(const char *path) { return tsr_test_slurp(path, NULL); }

/* Runs `[ENV] tessera ARGS` in the test's directory with stdout and stderr
 * captured; returns the exit code. */
static int tessera_with_env(const char *env, const char *args, char **out, char **err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s %s", tmpdir, env, TSR_TESSERA_EXE, args);
    return tsr_test_run(tmpdir, cmd, out, err);
}

static int tessera(const char *args, char **out, char **err)
{
    return tessera_with_env("", args, out, err);
}

/* mkdir -p of tmpdir/rel. */
static void make_dirs(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    for (char *p = path + strlen(tmpdir) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        cr_assert(mkdir(path, 0777) == 0 || errno == EEXIST, "mkdir %s", path);
        *p = '/';
    }
    cr_assert(mkdir(path, 0777) == 0 || errno == EEXIST, "mkdir %s", path);
}

/* A run directory as `tessera train` leaves it: config.ini with the keys a
 * report reads (and one it does not), metrics.csv with one row per finished
 * iteration, evals[i] the eval_return of iteration i + 1 (NAN: empty). */
static void write_run(const char *rel, const char *env, int num_experts, int iterations,
                      int finished, const double *evals)
{
    make_dirs(rel);
    char path[512];
    snprintf(path, sizeof path, "%s/%s/config.ini", tmpdir, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "; resolved config of a tessera run\n[env]\nname = %s\nsticky_action_prob = 0.1\n\n"
               "[network]\nencoder = minatar\nnum_experts = %d\n\n[run]\nseed = 0\n"
               "iterations = %d\n",
            env, num_experts, iterations);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s/metrics.csv", tmpdir, rel);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "iteration,agent_steps,gradient_updates,episodes,train_return,loss,mean_q,sparsity,"
               "dormant_fraction,steps_per_second,eval_return\n");
    for (int i = 0; i < finished; i++) {
        fprintf(f, "%d,%d,%d,12,0.5,0.01,0.2,0,0.1,5000,", i + 1, 1000 * (i + 1) + 3, 250 * i);
        if (evals[i] == evals[i]) fprintf(f, "%.9g", evals[i]);
        fprintf(f, "\n");
    }
    fclose(f);
}

/* How many times `what` occurs in `text`. */
static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *c = text; (c = strstr(c, what)); c++) n++;
    return n;
}

/* Two groups (num_experts 1 and 4) x two games x two seeds, 3 iterations,
 * under tmpdir/runs, plus an unfinished run. Final scores:
 *   experts 1: breakout 2, 4; asterix 6, 8
 *   experts 4: breakout 10, 12; asterix 14, 16 */
static void write_runs(void)
{
    write_run("runs/e1/breakout-s0", "minatar/breakout", 1, 3, 3, (double[]){1, 2, 2});
    write_run("runs/e1/breakout-s1", "minatar/breakout", 1, 3, 3, (double[]){1, 3, 4});
    write_run("runs/e1/asterix-s0", "minatar/asterix", 1, 3, 3, (double[]){2, 4, 6});
    write_run("runs/e1/asterix-s1", "minatar/asterix", 1, 3, 3, (double[]){3, 5, 8});
    write_run("runs/e4/breakout-s0", "minatar/breakout", 4, 3, 3, (double[]){2, 6, 10});
    write_run("runs/e4/breakout-s1", "minatar/breakout", 4, 3, 3, (double[]){3, 8, 12});
    write_run("runs/e4/asterix-s0", "minatar/asterix", 4, 3, 3, (double[]){4, 9, 14});
    write_run("runs/e4/asterix-s1", "minatar/asterix", 4, 3, 3, (double[]){5, 11, 16});
    /* Stopped after 2 of 3 iterations: skipped. */
    write_run("runs/e4/asterix-s2", "minatar/asterix", 4, 3, 2, (double[]){5, 11});
}

/* The table row tessera prints for a group whose scores are `scores`
 * (task-major: asterix then breakout, runs in directory order). */
static void expected_row(const char *group, const double *scores, int64_t reps, uint64_t seed,
                         bool task_bootstrap, char *row, size_t size)
{
    const int64_t runs[] = {2, 2};
    tsr_score_matrix m = {2, runs, scores};
    tsr_bootstrap_options o = {reps, 0.95, seed, task_bootstrap};
    tsr_estimate e[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &o, e);
    int n = snprintf(row, size, "| %s | 4 | 2 |", group);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++)
        n += snprintf(row + n, size - (size_t)n, " %.3f [%.3f, %.3f] |", e[k].value,
                      e[k].lo, e[k].hi);
}

Test(report_cli, prints_every_group_with_its_bootstrap_intervals, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 3000 --seed 3", &out, &err), 0,
                 "stderr: %s", err);
    cr_expect(strstr(out, "8 finished runs in 2 groups (network.num_experts), 2 tasks "
                          "(minatar/asterix, minatar/breakout); skipped 1 unfinished run"),
              "stdout: %s", out);
    cr_expect(strstr(err, "skipping runs/e4/asterix-s2: unfinished (iteration 2 of 3)"),
              "stderr: %s", err);
    cr_expect(strstr(out, "| network.num_experts | runs | tasks | mean | median | IQM | "
                          "optimality gap |"), "stdout: %s", out);
    /* By hand: experts 1 has task means 7 and 3, so mean = median = 5, the
     * IQM of {2, 4, 6, 8} is mean(4, 6) = 5, and every score is >= 1, so the
     * optimality gap is 0; experts 4 likewise 13, 13, 13, 0. */
    cr_expect(strstr(out, "| 1 | 4 | 2 | 5.000 ["), "stdout: %s", out);
    cr_expect(strstr(out, "| 4 | 4 | 2 | 13.000 ["), "stdout: %s", out);
    /* The intervals: the library's stratified bootstrap with the same
     * resamples and seed, on the same matrix. */
    char row[512];
    expected_row("1", (double[]){6, 8, 2, 4}, 3000, 3, false, row, sizeof row);
    cr_expect(strstr(out, row), "expected %s in:\n%s", row, out);
    expected_row("4", (double[]){14, 16, 10, 12}, 3000, 3, false, row, sizeof row);
    cr_expect(strstr(out, row), "expected %s in:\n%s", row, out);
    /* Every experts-4 score beats every experts-1 score on both games. */
    cr_expect(strstr(out, "| X | Y | tasks | P(X > Y) |"), "stdout: %s", out);
    cr_expect(strstr(out, "| 1 | 4 | 2 | 0.000 [0.000, 0.000] |"), "stdout: %s", out);
    free(out);
    free(err);
}

/* --task-bootstrap: the library's task bootstrap on the same matrix, said
 * in the header; P(X > Y) still resamples runs only (the library refuses a
 * task bootstrap there, so passing it on would abort the report). */
Test(report_cli, task_bootstrap_resamples_the_tasks_too, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 3000 --seed 3 "
                         "--task-bootstrap", &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "95% stratified bootstrap (tasks resampled, then runs within each "
                          "drawn task), 3000 resamples, seed 3."), "stdout: %s", out);
    char row[512], runs_only[512];
    expected_row("1", (double[]){6, 8, 2, 4}, 3000, 3, true, row, sizeof row);
    expected_row("1", (double[]){6, 8, 2, 4}, 3000, 3, false, runs_only, sizeof runs_only);
    cr_expect(strcmp(row, runs_only), "the task bootstrap changed nothing: %s", row);
    cr_expect(strstr(out, row), "expected %s in:\n%s", row, out);
    expected_row("4", (double[]){14, 16, 10, 12}, 3000, 3, true, row, sizeof row);
    cr_expect(strstr(out, row), "expected %s in:\n%s", row, out);
    cr_expect(strstr(out, "its intervals resample runs only"), "stdout: %s", out);
    cr_expect(strstr(out, "| 1 | 4 | 2 | 0.000 [0.000, 0.000] |"), "stdout: %s", out);
    free(out);
    free(err);
    /* The figures' titles say so too. */
    cr_assert_eq(tessera("report runs --curve-reps 100 --task-bootstrap --plots figs --scale "
                         "network.num_experts", &out, &err), 0, "stderr: %s", err);
    free(out);
    free(err);
    static const char *const scripts[] = {"learning_curves.gp", "performance_profile.gp",
                                          "scaling.gp"};
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/figs/%s", tmpdir, scripts[i]);
        char *gp = slurp(path);
        cr_expect(gp && strstr(gp, "resamples, tasks resampled too)"), "%s: %s", scripts[i],
                  gp ? gp : "(missing)");
        free(gp);
    }
}

Test(report_cli, without_by_every_run_is_one_group, .init = make_tmpdir, .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs/e1 runs/e4/breakout-s0 --reps 500", &out, &err), 0,
                 "stderr: %s", err);
    /* A run directory given directly counts like one found by the search. */
    cr_expect(strstr(out, "| group | runs | tasks |"), "stdout: %s", out);
    cr_expect(strstr(out, "| all | 5 | 2 |"), "stdout: %s", out);
    cr_expect(!strstr(out, "P(X > Y)"), "one group has nothing to compare: %s", out);
    free(out);
    free(err);
}

/* --by groups by value, not by spelling: a config.ini written by another
 * tessera (num_experts = 04, say, or 0.90000000000000002 for 0.9) joins the
 * group of the same value, named the short way. */
Test(report_cli, by_groups_equal_values_spelled_differently, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char path[256];
    snprintf(path, sizeof path, "%s/runs/e4/breakout-s0/config.ini", tmpdir);
    char *text = slurp(path);
    cr_assert_not_null(text);
    char *at = strstr(text, "num_experts = 4");
    cr_assert_not_null(at);
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*snum_experts = 04%s", (int)(at - text), text, at + strlen("num_experts = 4"));
    fclose(f);
    free(text);
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 500", &out, &err), 0,
                 "stderr: %s", err);
    cr_expect(strstr(out, "| 4 | 4 | 2 |"), "stdout: %s", out);
    cr_expect(!strstr(out, "| 04 |"), "stdout: %s", out);
    free(out);
    free(err);
}

Test(report_cli, a_run_reached_twice_counts_once, .init = make_tmpdir, .fini = remove_tmpdir)
{
    /* runs/e1 given twice, once more inside runs, and through a symlink: its
     * four runs count once each (extra copies would narrow the intervals). */
    write_runs();
    char path[256];
    snprintf(path, sizeof path, "%s/runs/e1/latest", tmpdir);
    cr_assert_eq(symlink("breakout-s0", path), 0);
    char *out, *err;
    cr_assert_eq(tessera("report runs/e1 runs runs/e1 --reps 500", &out, &err), 0, "stderr: %s",
                 err);
    cr_expect(strstr(out, "8 finished runs in 1 group"), "stdout: %s", out);
    cr_expect(strstr(out, "| all | 8 | 2 |"), "stdout: %s", out);
    /* 1 (the symlink in runs/e1) + 5 (runs/e1 again inside runs) + 5 (runs/e1
     * given a second time). */
    cr_expect(strstr(out, "counted each run directory once (reached 11 more times through"),
              "stdout: %s", out);
    free(out);
    free(err);
}

Test(report_cli, normalises_scores_with_a_table, .init = make_tmpdir, .fini = remove_tmpdir)
{
    write_runs();
    char path[256];
    snprintf(path, sizeof path, "%s/table.csv", tmpdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# random and reference returns\ngame,random,reference\nminatar/breakout,0,10\n"
               "minatar/asterix,2,12\n");
    fclose(f);
    char *out, *err;
    cr_assert_eq(tessera("report runs/e1 --normalize table.csv --reps 1000", &out, &err), 0,
                 "stderr: %s", err);
    /* breakout {2, 4} -> {0.2, 0.4}; asterix {6, 8} -> {0.4, 0.6}: mean of the
     * task means (0.3 + 0.5) / 2 = 0.4, median 0.4, IQM mean(0.4, 0.4) = 0.4,
     * optimality gap 1 - 0.4 = 0.6. */
    cr_expect(strstr(out, "normalised by table.csv"), "stdout: %s", out);
    char row[512];
    expected_row("all", (double[]){0.4, 0.6, 0.2, 0.4}, 1000, 0, false, row, sizeof row);
    cr_expect(strstr(out, row), "expected %s in:\n%s", row, out);
    cr_expect(strstr(out, "| all | 4 | 2 | 0.400 ["), "stdout: %s", out);
    cr_expect(strstr(out, "| 0.600 ["), "the optimality gap: %s", out);
    free(out);
    free(err);
}

Test(report_cli, the_shipped_minatar_table_normalises_with_random_and_dqn_returns,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    /* Scoring exactly the random policy's return gives 0, the MinAtar
     * paper's DQN return gives 1. */
    write_run("runs/random", "minatar/breakout", 1, 1, 1, (double[]){0.50842});
    write_run("runs/dqn", "minatar/space_invaders", 1, 1, 1, (double[]){43});
    char *out, *err;
    cr_assert_eq(tessera("report runs --by env.name --normalize " TSR_CONFIGS_DIR
                         "/normalization/minatar.csv --reps 100",
                         &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "| minatar/breakout | 1 | 1 | 0.000 [0.000, 0.000] |"), "%s", out);
    cr_expect(strstr(out, "| minatar/space_invaders | 1 | 1 | 1.000 [1.000, 1.000] |"), "%s",
              out);
    free(out);
    free(err);
}

Test(report_cli, a_game_missing_from_the_normalisation_table_is_named, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char path[256];
    snprintf(path, sizeof path, "%s/table.csv", tmpdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "game,random,reference\nminatar/breakout,0,10\n");
    fclose(f);
    char *out, *err;
    cr_expect_eq(tessera("report runs --normalize table.csv", &out, &err), 1);
    cr_expect(strstr(err, "normalisation table table.csv has no row for minatar/asterix") &&
                  strstr(err, "without --normalize"),
              "stderr: %s", err);
    free(out);
    free(err);
}

/* A run still going may be caught mid-row: a last row without its newline
 * is not a finished iteration, whether or not it parses. */
Test(report_cli, a_row_still_being_written_leaves_its_run_unfinished, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    static const char *const partial[] = {"3,300,0,1", "3,3003,500,12,0.5,0.01,0.2,0,0.1,5000,1"};
    for (int k = 0; k < 2; k++) {
        write_runs();
        char path[512];
        snprintf(path, sizeof path, "%s/runs/e4/asterix-s2/metrics.csv", tmpdir);
        FILE *f = fopen(path, "a");
        cr_assert_not_null(f);
        fputs(partial[k], f);
        fclose(f);
        char *out, *err;
        cr_expect_eq(tessera("report runs --by network.num_experts", &out, &err), 0, "%s", err);
        cr_expect(strstr(err, "skipping runs/e4/asterix-s2: unfinished (iteration 2 of 3)"),
                  "row '%s': %s", partial[k], err);
        free(out);
        free(err);
    }
}

/* The table's caveats: raw returns of several tasks pooled, a group over
 * fewer tasks than the others, tasks with one run, a task's runs of
 * different budgets. Balanced, normalised runs get none of them. */
Test(report_cli, says_when_the_aggregates_are_weaker_than_they_look, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 1000", &out, &err), 0,
                 "stderr: %s", err);
    cr_expect(strstr(out, "Note: these aggregates pool the raw returns of 2 tasks"), "%s", out);
    cr_expect(!strstr(out, "of the 2 tasks") && !strstr(out, "single run"), "%s", out);
    free(out);
    free(err);
    /* experts 8: one Breakout run and nothing on Asterix. */
    write_run("runs/e8/breakout-s0", "minatar/breakout", 8, 3, 3, (double[]){1, 2, 3});
    char table[256];
    snprintf(table, sizeof table, "%s/norm.csv", tmpdir);
    FILE *f = fopen(table, "w");
    cr_assert_not_null(f);
    fprintf(f, "game,random,reference\nminatar/breakout,0,10\nminatar/asterix,0,10\n");
    fclose(f);
    char args[512];
    snprintf(args, sizeof args, "report runs --by network.num_experts --reps 1000 --normalize %s",
             table);
    cr_assert_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
    cr_expect(!strstr(out, "pool the raw returns"), "normalised: %s", out);
    cr_expect(strstr(out, "Note: group 8 has runs on 1 of the 2 tasks: its aggregates are over "
                          "those alone"), "%s", out);
    cr_expect(strstr(out, "Note: group 8 has 1 task with a single run"), "%s", out);
    cr_expect(!strstr(out, "group 1 has") && !strstr(out, "group 4 has"), "%s", out);
    cr_expect(!strstr(out, "budget"), "runs without run.training_steps: %s", out);
    free(out);
    free(err);
    /* Group 4's Breakout runs trained 3 x 1,000 and 3 x 2,000 agent steps;
     * its Asterix runs and group 1 have one budget each. */
    const char *steps[][2] = {{"e4/breakout-s0", "1000"}, {"e4/breakout-s1", "2000"},
                              {"e4/asterix-s0", "1000"},  {"e4/asterix-s1", "1000"},
                              {"e1/breakout-s0", "500"},  {"e1/breakout-s1", "500"}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/runs/%s/config.ini", tmpdir, steps[i][0]);
        f = fopen(path, "a");
        cr_assert_not_null(f);
        fprintf(f, "training_steps = %s\n", steps[i][1]);
        fclose(f);
    }
    cr_assert_eq(tessera(args, &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "Note: group 4, task minatar/breakout mixes runs of different budgets, "
                          "3000 to 6000 agent steps (run.iterations x run.training_steps)"),
              "%s", out);
    cr_expect_eq(count_of(out, "different budgets"), 1, "%s", out);
    free(out);
    free(err);
}

static void append_to_config(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/runs/%s/config.ini", tmpdir, rel);
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Replaces the first `from` in a run's config.ini with `to`. */
static void edit_config(const char *rel, const char *from, const char *to)
{
    char path[512];
    snprintf(path, sizeof path, "%s/runs/%s/config.ini", tmpdir, rel);
    char *text = slurp(path);
    cr_assert_not_null(text);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "%s has no '%s'", path, from);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    fclose(f);
    free(text);
}

/* A group's runs whose configs differ within a task in a setting that can
 * change a score are named, with two of the values, in one note per group;
 * the seed, threads, logging and checkpointing are not such settings, a key
 * a config.ini lacks counts as its default, values compare as tessera reads
 * them (0.99 = 0.98999999999999999, yes = true), a key given twice keeps
 * its last value, and --scale's key is what a scaling report pools. */
Test(report_cli, names_settings_that_differ_within_a_task, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 200", &out, &err), 0,
                 "stderr: %s", err);
    cr_expect(!strstr(out, "runs differ in"), "one configuration per group and task: %s", out);
    free(out);
    free(err);
    /* Without --by, experts 1 and 4 share each task. */
    cr_assert_eq(tessera("report runs --reps 200", &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "Note: in tasks minatar/asterix, minatar/breakout, runs differ in "
                          "network.num_experts (1 vs 4): their scores are not of one "
                          "configuration; --by one of those keys to tell them apart."),
              "%s", out);
    free(out);
    free(err);
    /* Unless the report scales over it. */
    cr_assert_eq(tessera("report runs --reps 200 --curve-reps 100 --plots figs --scale "
                         "network.num_experts", &out, &err), 0, "stderr: %s", err);
    cr_expect(!strstr(out, "runs differ in"), "%s", out);
    free(out);
    free(err);

    /* Group 1's second Asterix run: another discount, seed and threads.
     * Group 4's: the default discount written out, once spelled long and
     * given twice, double DQN spelled two ways, other logging. */
    edit_config("e1/asterix-s1", "seed = 0", "seed = 5\nthreads = 2");
    append_to_config("e1/asterix-s1", "[agent]\ngamma = 0.9\n");
    append_to_config("e4/asterix-s0", "log_every = 7\n[agent]\ngamma = 0.99\ndouble_dqn = yes\n");
    append_to_config("e4/asterix-s1", "[agent]\ngamma = 0.5\ngamma = 0.98999999999999999\n"
                                      "double_dqn = true\n");
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 200", &out, &err), 0,
                 "stderr: %s", err);
    cr_expect(strstr(out, "Note: group 1, in task minatar/asterix, runs differ in agent.gamma "
                          "(0.99 vs 0.9): their scores"), "%s", out);
    cr_expect_eq(count_of(out, "runs differ in"), 1, "%s", out);
    free(out);
    free(err);
    /* Six keys differ in group 4's Breakout runs: four named, two counted. */
    append_to_config("e4/breakout-s1", "[agent]\ngamma = 0.9\nreplay_capacity = 500\n"
                                       "batch_size = 7\nn_step = 2\nupdate_period = 3\n"
                                       "target_update_period = 9\n");
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 200", &out, &err), 0,
                 "stderr: %s", err);
    const char *note = strstr(out, "Note: group 4, in task minatar/breakout, runs differ in ");
    cr_expect(note && strstr(note, " and 2 more keys: their scores"), "%s", out);
    cr_expect_eq(count_of(out, "runs differ in"), 2, "%s", out);
    free(out);
    free(err);
}

Test(report_cli, an_unknown_by_key_names_the_nearest_key, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_expect_eq(tessera("report runs --by network.num_expert", &out, &err), 1);
    cr_expect(strstr(err, "--by: unknown key network.num_expert (did you mean "
                          "network.num_experts?); sections: env, network,"),
              "stderr: %s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("report runs --by experts", &out, &err), 2, "a malformed option");
    cr_expect(strstr(err, "--by 'experts': expected section.key, e.g. network.num_experts "
                          "(sections: env, network,"), "stderr: %s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("report runs --by net.num_experts", &out, &err), 1);
    cr_expect(strstr(err, "did you mean network.num_experts?"), "stderr: %s", err);
    free(out);
    free(err);
    /* Well formed but longer than the key buffers: unknown, not malformed. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "report runs --by network.%0100d", 7);
    cr_expect_eq(tessera(cmd, &out, &err), 1);
    cr_expect(strstr(err, "--by: unknown key network.0000"), "stderr: %s", err);
    cr_expect(strstr(err, "... (longer than any key); sections: env, network,"), "stderr: %s", err);
    free(out);
    free(err);
}

Test(report_cli, a_missing_directory_or_no_finished_run_is_an_error, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char *out, *err;
    cr_expect_eq(tessera("report no_such_dir", &out, &err), 1);
    cr_expect(strstr(err, "cannot read no_such_dir: No such file or directory"), "stderr: %s", err);
    free(out);
    free(err);
    cr_expect_eq(tessera("report runs --reps 1", &out, &err), 2);
    cr_expect(strstr(err, "--reps '1' is not an integer >= 100"), "stderr: %s", err);
    free(out);
    free(err);
    write_run("runs/stopped", "minatar/breakout", 1, 5, 2, (double[]){1, 2});
    cr_expect_eq(tessera("report runs", &out, &err), 1);
    cr_expect(strstr(err, "no finished run with an eval_return under runs (1 unfinished"),
              "stderr: %s", err);
    free(out);
    free(err);
}

Test(report_cli, csv_holds_the_numbers_of_the_tables, .init = make_tmpdir, .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 2000 --csv out.csv", &out,
                         &err), 0, "stderr: %s", err);
    char path[256];
    snprintf(path, sizeof path, "%s/out.csv", tmpdir);
    char *csv = slurp(path);
    cr_assert_not_null(csv);
    cr_expect(!strncmp(csv, "metric,group,versus,runs,versus_runs,tasks,value,ci_low,ci_high\n",
                       64), "%s", csv);
    const int64_t runs[] = {2, 2};
    tsr_score_matrix m = {2, runs, (double[]){6, 8, 2, 4}};
    tsr_estimate e[TSR_AGGREGATE_COUNT];
    tsr_stats_bootstrap_aggregates(&m, &(tsr_bootstrap_options){2000, 0.95, 0, false}, e);
    for (int k = 0; k < TSR_AGGREGATE_COUNT; k++) {
        char line[256];
        snprintf(line, sizeof line, "\n%s,1,,4,,2,%.9g,%.9g,%.9g\n", tsr_aggregate_names[k],
                 e[k].value, e[k].lo, e[k].hi);
        cr_expect(strstr(csv, line), "expected %s in:\n%s", line + 1, csv);
    }
    cr_expect(strstr(csv, "\nprobability_of_improvement,1,4,4,4,2,0,0,0\n"), "%s", csv);
    int lines = 0;
    for (const char *c = csv; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 1 + 2 * TSR_AGGREGATE_COUNT + 1, "%s", csv);
    free(csv);
    free(out);
    free(err);
}

static bool svg_holds(const char *path, const char *text)
{
    char *svg = slurp(path);
    bool holds = svg && strstr(svg, "<svg") && strstr(svg, text);
    free(svg);
    return holds;
}

Test(report_cli, plots_learning_and_scaling_curves_as_svg, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 500 --curve-reps 200 "
                         "--plots figs --scale params", &out, &err), 0, "stderr: %s", err);
    cr_expect(strstr(out, "Figures: figs/learning_curves.svg, figs/performance_profile.svg, "
                          "figs/scaling.svg"), "%s", out);
    char path[256];
    snprintf(path, sizeof path, "%s/figs/learning_curves.svg", tmpdir);
    cr_expect(svg_holds(path, "network.num_experts = 1"), "%s", path);
    cr_expect(svg_holds(path, "network.num_experts = 4"), "%s", path);
    cr_expect(svg_holds(path, "agent steps"), "%s", path);
    /* The curve's points: the IQM at each iteration over all 4 runs of a
     * group, against their mean agent steps (1003, 2003, 3003). Experts 1 at
     * iteration 1: {1, 1, 2, 3} -> mean(1, 2) = 1.5. */
    snprintf(path, sizeof path, "%s/figs/learning_curves.dat", tmpdir);
    char *dat = slurp(path);
    cr_assert_not_null(dat);
    cr_expect(strstr(dat, "# 1\n1003 1.5 "), "%s", dat);
    cr_expect(strstr(dat, "\n3003 13 "), "%s", dat);
    free(dat);
    /* Scaling against the parameter count of each run's network, built from
     * its config.ini: the MinAtar conv 3x3, 4 -> 16 channels (592 with
     * biases; Breakout and Asterix both have 4), SAME padding (the default),
     * so 10 x 10 x 16 = 1600 features, the default dense head 1600 -> 512
     * (819,712) -> 6 actions (3,078): 823,382. num_experts does not change a
     * dense head, so each group has one point there. */
    snprintf(path, sizeof path, "%s/figs/scaling.dat", tmpdir);
    dat = slurp(path);
    cr_assert_not_null(dat);
    cr_expect(strstr(dat, "# 1\n823382 5 "), "%s", dat);
    cr_expect(strstr(dat, "# 4\n823382 13 "), "%s", dat);
    free(dat);
    snprintf(path, sizeof path, "%s/figs/scaling.svg", tmpdir);
    cr_expect(svg_holds(path, "network.num_experts = 4"), "%s", path);
    cr_expect(svg_holds(path, "params"), "%s", path);
    /* The performance profile: the share of each group's final scores (1:
     * {6, 8, 2, 4}, 4: {14, 16, 10, 12}) above 101 thresholds from the
     * lowest final score, 2, to the highest, 16, with the curve resamples. */
    snprintf(path, sizeof path, "%s/figs/performance_profile.dat", tmpdir);
    dat = slurp(path);
    cr_assert_not_null(dat);
    const int64_t runs[] = {2, 2};
    tsr_score_matrix e1 = {2, runs, (double[]){6, 8, 2, 4}};
    tsr_estimate at2;
    tsr_stats_bootstrap_score_distribution(&e1, (const double[]){2}, 1,
                                           &(tsr_bootstrap_options){200, 0.95, 0, false}, &at2);
    char line[128];
    snprintf(line, sizeof line, "# 1\n2 0.75 %.9g %.9g\n", at2.lo, at2.hi);
    cr_expect(strstr(dat, line), "expected %s in:\n%s", line, dat);
    cr_expect(at2.lo < 0.75 && at2.hi == 1, "[%g, %g]", at2.lo, at2.hi);
    cr_expect(strstr(dat, "\n9 0 0 0\n"), "group 1 at tau 9 (the 51st): %s", dat);
    cr_expect(strstr(dat, "# 4\n2 1 1 1\n"), "%s", dat);
    cr_expect(strstr(dat, "\n9 1 1 1\n"), "group 4 at tau 9: %s", dat);
    cr_expect_eq(count_of(dat, "\n16 0 0 0\n"), 2, "both groups end at 0 at the highest score: %s",
                 dat);
    free(dat);
    snprintf(path, sizeof path, "%s/figs/performance_profile.svg", tmpdir);
    cr_expect(svg_holds(path, "network.num_experts = 4"), "%s", path);
    cr_expect(svg_holds(path, "score &gt; tau") || svg_holds(path, "score > tau"), "%s", path);
    free(out);
    free(err);
}

/* --profile-taus LO:HI fixes the profile's thresholds (a normalised score's
 * 0 to 2, say) instead of the lowest to the highest final score. */
Test(report_cli, profile_taus_set_the_thresholds_of_the_profile, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --by network.num_experts --reps 100 --curve-reps 100 "
                         "--plots figs --profile-taus 0:20", &out, &err), 0, "stderr: %s", err);
    free(out);
    free(err);
    char path[256];
    snprintf(path, sizeof path, "%s/figs/performance_profile.dat", tmpdir);
    char *dat = slurp(path);
    cr_assert_not_null(dat);
    /* 101 thresholds 0, 0.2, ..., 20: every score is above 0, none above 20;
     * at the 51st, 10, group 4 has {14, 16, 12} of {14, 16, 10, 12} above. */
    cr_expect(strstr(dat, "# 1\n0 1 1 1\n") && strstr(dat, "# 4\n0 1 1 1\n"), "%s", dat);
    cr_expect(strstr(dat, "\n10 0.75 "), "%s", dat);
    int rows = 0;
    for (const char *c = dat; *c; c++) rows += *c == '\n' && c[1] >= '0' && c[1] <= '9';
    cr_expect_eq(count_of(dat, "\n20 0 0 0\n"), 2, "%s", dat);
    cr_expect_eq(rows, 2 * 101, "%s", dat);
    free(dat);

    static const char *const bad[] = {"5",   "3:1",   "2:2", "a:b",
                                      "1:inf", "0:nan", "1:2:3", ":1", "-1e308:1e308"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "report runs --plots figs --profile-taus %s", bad[i]);
        cr_expect_eq(tessera(args, &out, &err), 2, "%s", bad[i]);
        cr_expect(strstr(err, "expected LO:HI, two finite numbers with LO < HI"), "%s: %s", bad[i],
                  err);
        free(out);
        free(err);
    }
    cr_expect_eq(tessera("report runs --profile-taus 0:2", &out, &err), 2);
    cr_expect(strstr(err, "--profile-taus sets the thresholds of performance_profile.svg and "
                          "needs --plots DIR"), "%s", err);
    free(out);
    free(err);
}

Test(report_cli, a_numeric_scale_key_draws_one_point_per_value, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_assert_eq(tessera("report runs --reps 500 --curve-reps 100 --plots figs --scale "
                         "network.num_experts", &out, &err), 0, "stderr: %s", err);
    char path[256];
    snprintf(path, sizeof path, "%s/figs/scaling.dat", tmpdir);
    char *dat = slurp(path);
    cr_assert_not_null(dat);
    cr_expect(strstr(dat, "# all\n1 5 "), "%s", dat);
    cr_expect(strstr(dat, "\n4 13 "), "%s", dat);
    free(dat);
    free(out);
    free(err);
    cr_expect_eq(tessera("report runs --plots figs --scale network.encoder", &out, &err), 1);
    cr_expect(strstr(err, "--scale network.encoder is not a numeric key"), "stderr: %s", err);
    free(out);
    free(err);
}

/* A figure file that cannot be written stops the report, naming it and why
 * (here the script's name is taken by a directory). */
Test(report_cli, an_unwritable_figure_file_is_named, .init = make_tmpdir, .fini = remove_tmpdir)
{
    write_runs();
    make_dirs("figs/performance_profile.gp");
    char *out, *err;
    cr_expect_eq(tessera("report runs --reps 100 --curve-reps 100 --plots figs", &out, &err), 1);
    cr_expect(strstr(err, "cannot write figs/performance_profile.gp: Is a directory"),
              "stderr: %s", err);
    free(out);
    free(err);
}

Test(report_cli, plots_without_gnuplot_say_which_package_to_install, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_runs();
    char *out, *err;
    cr_expect_eq(tessera_with_env("PATH=/nonexistent", "report runs --reps 100 --plots figs", &out,
                                  &err), 1);
    cr_expect(strstr(err, "install the Debian package gnuplot-nox"), "stderr: %s", err);
    free(out);
    free(err);
}
