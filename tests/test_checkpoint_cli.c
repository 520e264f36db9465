/* Checkpoints through the `tessera` program, as a user meets them: a run
 * killed with SIGKILL mid-way and resumed ends exactly where the
 * uninterrupted run ends (metrics and the whole final checkpoint); Ctrl-C
 * and a resume without the replay; resuming a finished run; `tessera
 * inspect`; the file read back by h5ls and, where installed, by h5py. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/files.h"
#include "tessera/tessera.h"

static char tmpdir[64];

static void make_tmpdir(void) { tsr_test_tmpdir_make(tmpdir, sizeof tmpdir, "resume"); }
static void remove_tmpdir(void) { tsr_test_tmpdir_remove(tmpdir); }

static char *slurp(const char *path) { return tsr_test_slurp(path, NULL); }

static int run(const char *command, char **out, char **err)
{
    return tsr_test_run(tmpdir, command, out, err);
}

static int tessera(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s", TSR_TESSERA_EXE, args);
    return run(cmd, out, err);
}

/* Starts `tessera ARGS` in the background (its own process, no shell in
 * between, so a signal reaches it); output goes to LOG. */
static pid_t start(const char *args, const char *log)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec %s %s >%s 2>&1", TSR_TESSERA_EXE, args, log);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Waits (at most 120 s) until `path` exists. */
static void wait_for_file(const char *path, pid_t pid)
{
    for (int i = 0; i < 12000; i++) {
        if (access(path, F_OK) == 0) return;
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "the run ended before %s appeared", path);
        sleep_ms(10);
    }
    cr_assert_fail("%s did not appear", path);
}

/* Waits (at most 120 s) until the file `path` holds `text`. */
static void wait_for_text(const char *path, const char *text, pid_t pid)
{
    for (int i = 0; i < 12000; i++) {
        char *content = slurp(path);
        bool found = content && strstr(content, text);
        free(content);
        if (found) return;
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "the run ended before printing %s", text);
        sleep_ms(10);
    }
    cr_assert_fail("%s never held %s", path, text);
}

/* dir/metrics.csv without its wall-clock columns. */
static char *metrics_without_speed(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    return tsr_test_metrics_without_wall_clock(path);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *c = text; *c; c++) n += *c == '\n';
    return n;
}

/* ---- kill and resume -------------------------------------------------------- */

/* Three iterations straight through, and the same run killed with SIGKILL
 * `delay_ms` after its first checkpoint appeared, then resumed: the metric
 * files (less wall-clock speed) and every item of the final checkpoints are
 * equal. */
static void expect_resume_identity(const char *name, const char *config, long delay_ms)
{
    char common[2048], args[4096], full[256], killed[256], log[256];
    snprintf(common, sizeof common,
             "%s --quiet --threads 2 --seed 7 --set run.iterations=3 --set run.training_steps=700 "
             "--set run.evaluation_episodes=2 --set run.max_episode_steps=300 --set "
             "agent.min_replay_history=300 --set agent.replay_capacity=5000",
             config);
    snprintf(full, sizeof full, "%s/%s-full", tmpdir, name);
    snprintf(killed, sizeof killed, "%s/%s-killed", tmpdir, name);
    char *out, *err;
    snprintf(args, sizeof args, "train %s --run-dir %s", common, full);
    cr_assert_eq(tessera(args, &out, &err), 0, "%s", err);
    free(out);
    free(err);

    snprintf(args, sizeof args, "train %s --run-dir %s", common, killed);
    snprintf(log, sizeof log, "%s/%s-killed.log", tmpdir, name);
    pid_t pid = start(args, log);
    char first[512];
    snprintf(first, sizeof first, "%s/checkpoints/ckpt-000001.h5", killed);
    wait_for_file(first, pid);
    sleep_ms(delay_ms);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "%s: the run finished before it was killed; kill it sooner", name);

    snprintf(args, sizeof args, "train --resume %s --quiet", killed);
    cr_assert_eq(tessera(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "resuming ") && strstr(out, "iteration 3/3"), "%s", out);
    cr_expect(!strstr(err, "WARNING"), "%s", err);
    free(out);
    free(err);

    char *a = metrics_without_speed(full), *b = metrics_without_speed(killed);
    cr_expect_str_eq(a, b, "%s: metrics differ after the resume", name);
    cr_expect_eq(count_lines(b), 4, "header + 3 iterations:\n%s", b);
    free(a);
    free(b);
    snprintf(args, sizeof args, "h5diff %s/checkpoints/ckpt-000003.h5 %s/checkpoints/ckpt-000003.h5",
             full, killed);
    int code = run(args, &out, &err);
    cr_expect_eq(code, 0, "%s: the final checkpoints differ:\n%s", name, out);
    free(out);
    free(err);
}

Test(checkpoint_cli, a_minatar_dqn_run_killed_and_resumed_equals_the_uninterrupted_run,
     .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 240)
{
    /* Killed during iteration 2's training phase. */
    expect_resume_identity("breakout", TSR_CONFIGS_DIR "/breakout/dqn.ini", 50);
}

Test(checkpoint_cli, a_rainbow_run_killed_and_resumed_equals_the_uninterrupted_run,
     .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 240)
{
    /* Prioritized replay, n-step, noisy layers: killed right after the
     * first checkpoint, perhaps while the second is being written. */
    expect_resume_identity("rainbow", TSR_CONFIGS_DIR "/cartpole/rainbow.ini", 0);
}

/* ---- Ctrl-C, no replay, finished runs ------------------------------------------ */

Test(checkpoint_cli, ctrl_c_keeps_the_last_checkpoint_and_a_replayless_resume_warns,
     .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 240)
{
    char args[4096], dir[256], log[256], first[512];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    snprintf(log, sizeof log, "%s/run.log", tmpdir);
    snprintf(args, sizeof args,
             "train %s/cartpole/dqn.ini --quiet --run-dir %s --set run.iterations=40 "
             "--set run.training_steps=500 --set run.evaluation_episodes=1 "
             "--set agent.min_replay_history=200 --set run.checkpoint_replay=false",
             TSR_CONFIGS_DIR, dir);
    pid_t pid = start(args, log);
    snprintf(first, sizeof first, "%s/checkpoints/ckpt-000001.h5", dir);
    wait_for_file(first, pid);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "Ctrl-C exits with 130");
    char *text = slurp(log);
    cr_expect(strstr(text, "(interrupted)") && strstr(text, "tessera train --resume"), "%s", text);
    free(text);
    /* The interrupted iteration is printed, not logged: the files hold the
     * finished iterations, here at least the first. */
    char csv_path[512];
    snprintf(csv_path, sizeof csv_path, "%s/metrics.csv", dir);
    char *csv = slurp(csv_path);
    int rows = 0;
    for (const char *c = csv; *c; c++) rows += *c == '\n';
    rows -= 1;
    char last_checkpoint[512];
    snprintf(last_checkpoint, sizeof last_checkpoint, "%s/checkpoints/ckpt-%06d.h5", dir, rows);
    cr_expect_geq(rows, 1, "%s", csv);
    cr_expect_eq(access(last_checkpoint, F_OK), 0,
                 "every logged iteration (%d) has its checkpoint", rows);
    free(csv);

    char *out, *err;
    snprintf(args, sizeof args, "train --resume %s --quiet --set run.iterations=2", dir);
    cr_expect_eq(tessera(args, &out, &err), 2, "a resumed run's config is the checkpoint's");
    cr_expect(strstr(err, "takes only --threads and --quiet"), "%s", err);
    free(out);
    free(err);

    snprintf(args, sizeof args, "train --resume %s --quiet", dir);
    pid = start(args, log);
    wait_for_text(log, "WARNING", pid);
    kill(pid, SIGINT);
    waitpid(pid, &status, 0);
    text = slurp(log);
    cr_expect(strstr(text, "WARNING") && strstr(text, "EMPTY replay") &&
                  strstr(text, "NO LONGER the same run"),
              "a resume without the replay says so loudly:\n%s", text);
    free(text);
}

/* Ctrl-C in the evaluation phase (which the progress callback does not
 * see) stops the run after the current evaluation episode, as in training:
 * here ten million evaluation episodes would otherwise play on for minutes. */
Test(checkpoint_cli, ctrl_c_during_the_evaluation_stops_the_run, .init = make_tmpdir,
     .fini = remove_tmpdir, .timeout = 240)
{
    char args[4096], dir[256], log[256];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    snprintf(log, sizeof log, "%s/run.log", tmpdir);
    snprintf(args, sizeof args,
             "train %s/cartpole/dqn.ini --run-dir %s --set run.iterations=1 "
             "--set run.training_steps=200 --set run.log_every=64 "
             "--set run.evaluation_episodes=10000000 --set agent.min_replay_history=1000",
             TSR_CONFIGS_DIR, dir);
    pid_t pid = start(args, log);
    /* Step 128's progress line (64 set the rate's base): training ends soon after. */
    wait_for_text(log, "steps 128/200", pid);
    sleep_ms(1000);
    kill(pid, SIGINT);
    int status = 0;
    bool ended = false;
    for (int i = 0; i < 3000 && !ended; i++) {
        ended = waitpid(pid, &status, WNOHANG) == pid;
        if (!ended) sleep_ms(10);
    }
    if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    cr_assert(ended, "the run went on evaluating 30 s after Ctrl-C");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "Ctrl-C exits with 130");
    char *text = slurp(log);
    long long steps = 0;
    const char *line = strstr(text, "iteration 1/1: steps ");
    cr_assert_not_null(line, "%s", text);
    cr_assert_eq(sscanf(line, "iteration 1/1: steps %lld", &steps), 1);
    cr_expect_geq(steps, 200, "the training phase had ended: %s", line);
    cr_expect(strstr(line, "eval return -") && strstr(line, "(interrupted)"), "%s", text);
    free(text);
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-000001.h5", dir);
    cr_expect_neq(access(path, F_OK), 0, "the interrupted iteration is not checkpointed");
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *csv = slurp(path);
    cr_assert_not_null(csv);
    cr_expect_eq(count_lines(csv), 1, "only the header: %s", csv);
    free(csv);
}

/* A short CartPole run into `dir`: `iterations` of 300 agent steps, one
 * evaluation episode. Returns tessera's exit code, with its output. */
static int train_short(const char *dir, int iterations, char **out, char **err)
{
    char args[4096];
    snprintf(args, sizeof args,
             "train %s/cartpole/dqn.ini --quiet --run-dir %s --set run.iterations=%d "
             "--set run.training_steps=300 --set run.evaluation_episodes=1 "
             "--set agent.min_replay_history=100",
             TSR_CONFIGS_DIR, dir, iterations);
    return tessera(args, out, err);
}

/* Damage inside a checkpoint whose header stays intact: its online
 * parameters are gone. */
static void delete_online_params(const char *dir, int iteration)
{
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-%06d.h5", dir, iteration);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0, "%s", path);
    cr_assert_geq(H5Ldelete(f, "params/online", H5P_DEFAULT), 0);
    H5Fclose(f);
}

Test(checkpoint_cli, resuming_a_finished_run_changes_nothing_and_train_refuses_its_directory,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    char args[4096], dir[256];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    char *out, *err;
    cr_assert_eq(train_short(dir, 2, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    char *before = metrics_without_speed(dir);
    char resume[512];
    snprintf(resume, sizeof resume, "train --resume %s --quiet", dir);
    cr_expect_eq(tessera(resume, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "had finished all 2 iterations already"), "%s", out);
    free(out);
    free(err);
    char *after = metrics_without_speed(dir);
    cr_expect_str_eq(before, after);
    free(before);
    free(after);

    cr_expect_eq(train_short(dir, 2, &out, &err), 1);
    cr_expect(strstr(err, "already holds a run") && strstr(err, "--resume"), "%s", err);
    free(out);
    free(err);

    /* The newest checkpoint damaged: resume and eval fall back to the one before. */
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-000002.h5", dir);
    FILE *f = fopen(path, "wb");
    fputs("garbage", f);
    fclose(f);
    snprintf(args, sizeof args, "eval %s --episodes 2", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(err, "skipping checkpoint") && strstr(out, "ckpt-000001.h5"), "%s\n%s", out,
              err);
    free(out);
    free(err);
    cr_expect_eq(tessera(resume, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "resuming") && strstr(out, "iteration 2/2"), "%s", out);
    free(out);
    free(err);

    /* Every checkpoint damaged (the resume above rewrote the second): resume
     * refuses, and the metrics survive. */
    for (int it = 1; it <= 2; it++) {
        snprintf(path, sizeof path, "%s/checkpoints/ckpt-%06d.h5", dir, it);
        f = fopen(path, "wb");
        fputs("garbage", f);
        fclose(f);
    }
    before = metrics_without_speed(dir);
    cr_expect_eq(tessera(resume, &out, &err), 1, "%s", out);
    cr_expect(strstr(err, "none of the 2 checkpoints") && strstr(err, "Nothing was changed"), "%s",
              err);
    free(out);
    free(err);
    after = metrics_without_speed(dir);
    cr_expect_str_eq(before, after);
    free(before);
    free(after);

    snprintf(args, sizeof args, "train --resume %s/nowhere", tmpdir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "no checkpoint and no config.ini"), "%s", err);
    free(out);
    free(err);
}

/* Replaces the line starting with `key` in a text file. */
static void replace_line(const char *path, const char *key, const char *line)
{
    char *text = slurp(path);
    cr_assert_not_null(text, "%s", path);
    char *at = strstr(text, key);
    cr_assert_not_null(at, "%s has no %s", path, key);
    char *end = strchr(at, '\n');
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*s%s%s", (int)(at - text), text, line, end ? end : "\n");
    fclose(f);
    free(text);
}

Test(checkpoint_cli, eval_builds_the_agent_from_the_checkpoints_own_config, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char args[4096], dir[256], path[512], *out, *err;
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    cr_assert_eq(train_short(dir, 1, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    /* config.ini edited after training: another network and game. The
     * checkpoint's parameters still meet the network they were trained in. */
    snprintf(path, sizeof path, "%s/config.ini", dir);
    replace_line(path, "mlp_hidden = ", "mlp_hidden = 32");
    replace_line(path, "name = ", "name = minatar/breakout");
    snprintf(args, sizeof args, "eval %s --episodes 2", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "on classic/cartpole:"), "%s", out);
    cr_expect(strstr(err, "note:") && strstr(err, "minatar/breakout"), "%s", err);
    free(out);
    free(err);
}

/* A run started by an older tessera, whose metrics.csv lacks the columns
 * added since (they only ever go last), resumes with every row under
 * today's header: the old rows padded with empty cells. */
Test(checkpoint_cli, a_resume_brings_an_older_metrics_header_up_to_date, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char dir[256], path[512], args[600], *out, *err;
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    cr_assert_eq(train_short(dir, 2, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-000002.h5", dir);
    cr_assert_eq(unlink(path), 0);
    /* Drop the last two columns, as a tessera older than both wrote the file. */
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *csv = slurp(path);
    cr_assert_not_null(csv);
    FILE *f = fopen(path, "w");
    for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n")) {
        *strrchr(line, ',') = '\0';
        fprintf(f, "%.*s\n", (int)(strrchr(line, ',') - line), line);
    }
    fclose(f);
    free(csv);
    snprintf(args, sizeof args, "train --resume %s --quiet", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    csv = slurp(path);
    cr_assert_not_null(csv);
    int lines = 0;
    for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        int commas = 0;
        for (char *c = line; *c; c++) commas += *c == ',';
        cr_expect_eq(commas, 13, "line %d has %d columns: %s", lines, commas + 1, line);
        if (lines == 0)
            cr_expect(strstr(line, ",seconds,head_dormant_fraction,recent_return"), "%s", line);
        if (lines == 1) cr_expect(!strcmp(line + strlen(line) - 2, ",,"), "row 1 padded: %s", line);
    }
    cr_expect_eq(lines, 3);
    free(csv);
}

Test(checkpoint_cli, train_refuses_a_directory_that_holds_checkpoints, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* A stray high-numbered file there would have outranked, and with
     * run.checkpoint_keep = 1 removed, every checkpoint the new run wrote. */
    char dir[256], path[512], *out, *err;
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-000099.h5", dir);
    FILE *f = fopen(path, "w");
    fputs("junk!", f);
    fclose(f);
    cr_expect_eq(train_short(dir, 1, &out, &err), 1, "%s", out);
    cr_expect(strstr(err, "already holds checkpoint files") && strstr(err, "--resume"), "%s", err);
    free(out);
    free(err);
    snprintf(path, sizeof path, "%s/config.ini", dir);
    cr_expect_neq(access(path, F_OK), 0, "the refused run wrote its config");
}

Test(checkpoint_cli, a_failed_final_save_withdraws_the_last_metric_row, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* The final checkpoint cannot be written (a directory is in the way of
     * its temporary file): the run exits 1, and its metrics no longer say it
     * finished, so `tessera sweep` resumes it rather than skipping it. */
    char args[4096], dir[256], path[512], *out, *err;
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    snprintf(path, sizeof path, "mkdir -p %s/checkpoints/ckpt-000001.h5.tmp", dir);
    cr_assert_eq(system(path), 0);
    cr_expect_eq(train_short(dir, 1, &out, &err), 1, "%s", out);
    cr_expect(strstr(err, "checkpoint of iteration 1 failed") &&
                  strstr(err, "metric rows after iteration 0 (the newest checkpoint) are withdrawn"),
              "%s", err);
    free(out);
    free(err);
    int64_t last = -1;
    tsr_error e;
    cr_assert_eq(tsr_run_dir_last_iteration(dir, &last, &e), TSR_STATUS_OK, "%s", e.message);
    cr_expect_eq(last, 0);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *json = slurp(path);
    cr_expect_str_empty(json);
    free(json);

    /* With the way clear, a resume runs it to the end. */
    snprintf(path, sizeof path, "rmdir %s/checkpoints/ckpt-000001.h5.tmp", dir);
    cr_assert_eq(system(path), 0);
    snprintf(args, sizeof args, "train --resume %s --quiet", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    cr_assert_eq(tsr_run_dir_last_iteration(dir, &last, &e), TSR_STATUS_OK, "%s", e.message);
    cr_expect_eq(last, 1);
}

Test(checkpoint_cli, a_newest_checkpoint_that_opens_but_does_not_load_is_skipped,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    /* Damage inside the file (its header intact): the online parameters are
     * gone from the newest checkpoint. eval and --resume fall back to the one
     * before, and the resumed run redoes the iteration to the same metrics. */
    char args[4096], dir[256], *out, *err;
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    cr_assert_eq(train_short(dir, 2, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    char *before = metrics_without_speed(dir);
    delete_online_params(dir, 2);

    snprintf(args, sizeof args, "eval %s --episodes 1", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(err, "cannot load") && strstr(err, "falling back to") &&
                  strstr(err, "ckpt-000001.h5"), "%s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "train --resume %s --quiet", dir);
    cr_expect_eq(tessera(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(err, "falling back to") && strstr(out, "iteration 2/2"), "%s\n%s", out, err);
    free(out);
    free(err);
    char *after = metrics_without_speed(dir);
    cr_expect_str_eq(before, after);
    free(before);
    free(after);

    /* When no checkpoint loads, resume fails with the newest one's error. */
    for (int it = 1; it <= 2; it++) delete_online_params(dir, it);
    before = metrics_without_speed(dir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "no checkpoint loads (the newest:") && strstr(err, "ckpt-000002.h5") &&
                  strstr(err, "Nothing was changed"),
              "%s", err);
    free(out);
    free(err);
    after = metrics_without_speed(dir);
    cr_expect_str_eq(before, after);
    free(before);
    free(after);
}

/* ---- reading the file --------------------------------------------------------------- */

Test(checkpoint_cli, inspect_h5ls_and_h5py_read_the_documented_layout, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    char args[4096], dir[256], file[512];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    char *out, *err;
    snprintf(args, sizeof args,
             "train %s/breakout/dqn_gmp95.ini --quiet --run-dir %s --set run.iterations=1 "
             "--set run.training_steps=600 --set run.evaluation_episodes=1 "
             "--set agent.min_replay_history=100 --set pruning.step_units=updates "
             "--set pruning.start_step=0 --set pruning.end_step=200 --set pruning.update_freq=50",
             TSR_CONFIGS_DIR, dir);
    cr_assert_eq(tessera(args, &out, &err), 0, "%s", err);
    free(out);
    free(err);
    snprintf(file, sizeof file, "%s/checkpoints/ckpt-000001.h5", dir);

    snprintf(args, sizeof args, "inspect %s", dir);
    cr_assert_eq(tessera(args, &out, &err), 0, "%s", err);
    static const char *const inspect_lines[] = {
        "format tessera-checkpoint version 1",
        "iteration              1",
        "params/online/encoder/conv/weight",
        "(16, 4, 3, 3)",
        "zeros 0.9",
        "pruning/masks/head/hidden/weight",
        "optimizer/kind",
        "\"rmsprop\"",
        "[pruning]",
        "name = minatar/breakout",
    };
    for (size_t i = 0; i < sizeof inspect_lines / sizeof inspect_lines[0]; i++)
        cr_expect(strstr(out, inspect_lines[i]), "inspect lacks \"%s\":\n%s", inspect_lines[i], out);
    /* A uint8 mask (1 = kept) shows its share of zeros, the layer's sparsity,
     * as its weight does; and so does the replay's uint8 observation array. */
    static const char *const zero_lines[] = {"pruning/masks/head/hidden/weight",
                                             "params/online/head/hidden/weight",
                                             "replay/observations"};
    double shares[3];
    for (size_t i = 0; i < sizeof zero_lines / sizeof zero_lines[0]; i++) {
        const char *line = strstr(out, zero_lines[i]);
        cr_assert_not_null(line, "inspect lacks %s:\n%s", zero_lines[i], out);
        const char *field = strstr(line, "zeros ");
        cr_assert(field && field < strchr(line, '\n'), "%s shows no share of zeros:\n%s",
                  zero_lines[i], out);
        shares[i] = strtod(field + strlen("zeros "), NULL);
    }
    cr_expect(shares[0] > 0.9 && shares[0] == shares[1], "mask %g, weight %g", shares[0],
              shares[1]);
    cr_expect(shares[2] > 0.5 && shares[2] < 1, "replay/observations: %g", shares[2]);
    free(out);
    free(err);

    snprintf(args, sizeof args, "inspect %s/config.ini", dir);
    cr_expect_eq(tessera(args, &out, &err), 1);
    cr_expect(strstr(err, "is not an HDF5 file"), "%s", err);
    free(out);
    free(err);

    /* An integer array whose values cannot be read (stored in an external
     * file that is gone) is marked, and inspect exits 1. */
    char copy[512];
    snprintf(copy, sizeof copy, "%s/copy.h5", tmpdir);
    snprintf(args, sizeof args, "cp %s %s", file, copy);
    cr_assert_eq(system(args), 0);
    hid_t h5 = H5Fopen(copy, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(h5, 0);
    hsize_t n = 4096;
    hid_t space = H5Screate_simple(1, &n, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.bin", tmpdir);
    cr_assert_geq(H5Pset_external(dcpl, missing, 0, n), 0);
    cr_assert_geq(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), 0);
    hid_t ds = H5Dcreate2(h5, "replay/external", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl,
                          H5P_DEFAULT);
    cr_assert_geq(ds, 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    /* and an empty one is shown as such, not as a share of zeros */
    hsize_t none = 0;
    space = H5Screate_simple(1, &none, NULL);
    ds = H5Dcreate2(h5, "replay/empty", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                    H5P_DEFAULT);
    cr_assert_geq(ds, 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(h5);
    cr_assert_neq(access(missing, F_OK), 0, "HDF5 wrote the external file");
    snprintf(args, sizeof args, "inspect %s", copy);
    cr_expect_eq(tessera(args, &out, &err), 1);
    const char *line = strstr(out, "replay/external");
    cr_expect(line && strstr(line, "(unreadable)") && strstr(line, "(unreadable)") <
              strchr(line, '\n'), "%s", out);
    cr_expect(strstr(err, "1 dataset could not be read"), "%s", err);
    line = strstr(out, "replay/empty");
    cr_expect(line && strstr(line, "(0,)") && strstr(line, "(empty)") &&
              strstr(line, "(empty)") < strchr(line, '\n'), "%s", out);
    free(out);
    free(err);

    snprintf(args, sizeof args, "h5dump -a /format_version -a /complete %s", file);
    cr_assert_eq(run(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "(0): 1"), "%s", out);
    free(out);
    free(err);

    bool have_h5py = run("/usr/bin/python3 -c 'import h5py'", &out, &err) == 0;
    free(out);
    free(err);
    if (!have_h5py) cr_skip_test("h5py is not installed (python3-h5py): the h5ls checks ran");
    static const char script[] =
        "import sys, h5py\n"
        "f = h5py.File(sys.argv[1], 'r')\n"
        "fmt = f.attrs['format']\n"
        "assert (fmt.decode() if isinstance(fmt, bytes) else fmt) == 'tessera-checkpoint'\n"
        "assert int(f.attrs['format_version']) == 1 and int(f.attrs['complete']) == 1\n"
        "assert 'name = minatar/breakout' in f['config'][()].decode()\n"
        "assert int(f['counters/iteration'][()]) == 1\n"
        "w = f['params/online/encoder/conv/weight']\n"
        "assert w.shape == (16, 4, 3, 3) and w.dtype == 'float32', (w.shape, w.dtype)\n"
        "m = f['pruning/masks/encoder/conv/weight'][()]\n"
        "assert m.shape == w.shape and m.dtype == 'uint8'\n"
        "assert ((w[()] != 0) <= (m == 1)).all()\n"
        "assert f['optimizer/square_avg/head/output/weight'].shape == (6, 128)\n"
        "assert f['replay/observations'].shape[1] == 50\n"
        "print('h5py ok', f['counters/agent_steps'][()])\n";
    char script_path[256];
    snprintf(script_path, sizeof script_path, "%s/read.py", tmpdir);
    FILE *f = fopen(script_path, "w");
    cr_assert_not_null(f);
    fputs(script, f);
    fclose(f);
    snprintf(args, sizeof args, "/usr/bin/python3 %s %s", script_path, file);
    cr_expect_eq(run(args, &out, &err), 0, "h5py read failed:\n%s\n%s", out, err);
    cr_expect(strstr(out, "h5py ok"), "%s", out);
    free(out);
    free(err);
}
