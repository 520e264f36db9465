/* Run configs: every shipped preset loads and builds its agent; layered
 * files (`[config] base = ...`); the [agent], [optimizer] and [run] rules. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/files.h"
#include "tessera/tessera.h"

/* ---- every preset ----------------------------------------------------------- */

/* Loads every .ini under `dir` (recursively); in a game directory (anything
 * but base/ and networks/, which hold fragments and network examples) also
 * builds the agent for the configured environment. Counts into *loaded and
 * *built. sweeps/ holds sweep files, not run configs: test_sweep loads them. */
static void check_tree(const char *dir, bool build, int *loaded, int *built)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            if (!strcmp(e->d_name, "sweeps")) continue;
            bool game = strcmp(e->d_name, "base") && strcmp(e->d_name, "networks");
            check_tree(path, game, loaded, built);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini")) continue;
        tsr_run_config cfg;
        tsr_error err;
        cr_expect_eq(tsr_run_config_load(&schema, &cfg, path, NULL, 0, &err), TSR_STATUS_OK,
                     "%s", err.message);
        (*loaded)++;
        if (!build) continue;
        tsr_runner *runner;
        cr_expect_eq(tsr_runner_new(&runner, &cfg, true, &err), TSR_STATUS_OK, "%s: %s", path,
                     err.message);
        tsr_runner_free(runner);
        (*built)++;
    }
    closedir(d);
}

Test(presets, every_config_loads_and_every_game_preset_builds_its_agent)
{
    int loaded = 0, built = 0;
    check_tree(TSR_CONFIGS_DIR, false, &loaded, &built);
    /* 5 MinAtar games x 8 variants + 5 CartPole presets. */
    cr_expect_geq(built, 45, "%d presets built", built);
    cr_expect_geq(loaded, built + 9 + 8, "%d configs loaded", loaded);
}

Test(presets, the_minatar_dqn_preset_is_the_papers_settings)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    cr_assert_eq(tsr_run_config_load(&schema, &cfg, TSR_CONFIGS_DIR "/seaquest/dqn.ini", NULL, 0,
                                     &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_str_eq(cfg.env.name, "minatar/seaquest");
    cr_expect_eq(cfg.network.encoder, TSR_ENCODER_MINATAR);
    cr_expect_eq(cfg.network.padding, TSR_PADDING_VALID);
    cr_expect_eq(cfg.network.hidden, 128);
    cr_expect_eq(cfg.optimizer.kind, TSR_OPTIMIZER_RMSPROP);
    cr_expect(cfg.optimizer.centered);
    cr_expect_float_eq(cfg.optimizer.learning_rate, 2.5e-4, 1e-15);
    cr_expect_float_eq(cfg.optimizer.alpha, 0.95, 1e-15);
    cr_expect_float_eq(cfg.optimizer.eps, 0.01, 1e-15);
    cr_expect_eq(cfg.loss.kind, TSR_VALUE_LOSS_HUBER);
    cr_expect_eq(cfg.agent.batch_size, 32);
    cr_expect_eq(cfg.agent.replay_capacity, 100000);
    cr_expect_eq(cfg.agent.target_update_period, 1000);
    cr_expect_eq(cfg.agent.update_period, 1);
    cr_expect_eq(cfg.agent.min_replay_history, 5000);
    cr_expect_float_eq(cfg.agent.epsilon_train, 0.1, 1e-15);
    cr_expect_eq(cfg.agent.epsilon_decay_period, 100000);
    cr_expect_eq(cfg.run.iterations * cfg.run.training_steps, 5000000);
    cr_expect_eq(cfg.pruning.mode, TSR_PRUNE_MODE_NONE, "a run prunes only when asked");
    /* The Rainbow preset layers on it. */
    cr_assert_eq(tsr_run_config_load(&schema, &cfg, TSR_CONFIGS_DIR "/seaquest/rainbow.ini", NULL,
                                     0, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_str_eq(cfg.env.name, "minatar/seaquest");
    cr_expect_eq(cfg.agent.kind, TSR_AGENT_RAINBOW);
    cr_expect(cfg.agent.prioritized && cfg.agent.double_dqn && cfg.network.dueling &&
              cfg.network.noisy);
    cr_expect_eq(cfg.agent.n_step, 3);
    cr_expect_eq(cfg.loss.kind, TSR_VALUE_LOSS_C51);
    cr_expect_eq(cfg.optimizer.kind, TSR_OPTIMIZER_ADAM);
    /* DER as Dopamine's DER.gin (components.md §1.9), on MinAtar and CartPole. */
    static const char *const der[] = {TSR_CONFIGS_DIR "/seaquest/der.ini",
                                      TSR_CONFIGS_DIR "/cartpole/der.ini"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(tsr_run_config_load(&schema, &cfg, der[i], NULL, 0, &err), TSR_STATUS_OK,
                     "%s", err.message);
        cr_expect(cfg.agent.prioritized && cfg.agent.double_dqn && cfg.network.dueling &&
                      cfg.network.noisy, "%s", der[i]);
        cr_expect_eq(cfg.agent.n_step, 10, "%s", der[i]);
        cr_expect_eq(cfg.agent.min_replay_history, 1600, "%s", der[i]);
        cr_expect_eq(cfg.agent.update_period, 1, "%s", der[i]);
        cr_expect_eq(cfg.agent.target_update_period, 2000, "%s", der[i]);
        cr_expect_eq(cfg.agent.replay_capacity, 1000000, "%s: nothing overwritten", der[i]);
        cr_expect_float_eq(cfg.agent.epsilon_eval, 0.001, 1e-15, "%s", der[i]);
        cr_expect_eq(cfg.env.sticky_action_prob, 0.0, "%s: no sticky actions", der[i]);
        cr_expect_float_eq(cfg.optimizer.learning_rate, 1e-4, 1e-18, "%s", der[i]);
        cr_expect_float_eq(cfg.optimizer.eps, 1.5e-4, 1e-18, "%s", der[i]);
        cr_expect_eq(cfg.run.iterations * cfg.run.training_steps, 100000, "%s", der[i]);
        cr_expect_eq(cfg.run.evaluation_episodes, 100, "%s", der[i]);
    }
}

/* Every preset of one MinAtar game and of CartPole trains: one short
 * iteration with updates from step 40 and an evaluation episode (masks
 * every 8 updates, so the pruning presets prune within it). The
 * presets differ only in their game between the MinAtar directories, so
 * Breakout stands for the five. */
static int train_presets_in(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    int trained = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tsr_run_config cfg = tsr_test_load_run_config(
            path,
            TSR_TEST_OVERRIDES("run.iterations=1", "run.training_steps=120",
                               "run.evaluation_episodes=1", "run.max_episode_steps=40",
                               "agent.min_replay_history=40", "agent.update_period=1",
                               "pruning.update_freq=8"));
        tsr_runner *runner;
        tsr_error err;
        cr_assert_eq(tsr_runner_new(&runner, &cfg, true, &err), TSR_STATUS_OK, "%s: %s", path,
                     err.message);
        tsr_iteration_metrics m;
        cr_assert(tsr_runner_run_iteration(runner, &m, &err), "%s: %s", path, err.message);
        cr_expect_geq(m.gradient_updates, 70, "%s: %lld updates", path,
                      (long long)m.gradient_updates);
        cr_expect(isfinite(m.loss) && isfinite(m.mean_q) && isfinite(m.eval_return) &&
                      isfinite(m.train_return),
                  "%s: loss %g, mean Q %g, returns %g / %g", path, m.loss, m.mean_q,
                  m.train_return, m.eval_return);
        if (cfg.pruning.mode != TSR_PRUNE_MODE_NONE)
            cr_expect_gt(m.sparsity, 0.3, "%s prunes: sparsity %g", path, m.sparsity);
        tsr_runner_free(runner);
        trained++;
    }
    closedir(d);
    return trained;
}

Test(presets, every_breakout_and_cartpole_preset_trains_and_evaluates, .timeout = 240)
{
    cr_expect_eq(train_presets_in(TSR_CONFIGS_DIR "/breakout"), 8);
    cr_expect_eq(train_presets_in(TSR_CONFIGS_DIR "/cartpole"), 5);
}

/* A game's short name works as env.name and is stored in full, so runs of
 * one game carry one name whichever way it was given. */
Test(presets, a_short_game_name_is_stored_in_full)
{
    tsr_run_config cfg =
        tsr_test_load_run_config(NULL, TSR_TEST_OVERRIDES("env.name=seaquest"));
    cr_expect_str_eq(cfg.env.name, "minatar/seaquest");
    cfg = tsr_test_load_run_config(NULL, TSR_TEST_OVERRIDES("env.name=cartpole",
                                                             "network.encoder=mlp"));
    cr_expect_str_eq(cfg.env.name, "classic/cartpole");
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_error err;
    char *bad[] = {"env.name=pong"};
    cr_expect_eq(tsr_run_config_load(&schema, &cfg, NULL, bad, 1, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "unknown environment 'pong'") &&
                  strstr(err.message, "or the part after the '/'"),
              "%s", err.message);
}

/* ---- layered files ----------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void) { tsr_test_tmpdir_make(tmpdir, sizeof tmpdir, "presets"); }
static void remove_tmpdir(void) { tsr_test_tmpdir_remove(tmpdir); }

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0777);
    *slash = '/';
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static tsr_status load_tmp(const char *name, tsr_run_config *cfg, tsr_error *err)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return tsr_run_config_load(&schema, cfg, path, NULL, 0, err);
}

Test(presets, bases_load_first_in_order_relative_to_the_including_file,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    write_file("shared/a.ini", "[agent]\ngamma = 0.5\nbatch_size = 7\n");
    write_file("shared/b.ini", "[config]\nbase = a.ini\n\n[agent]\nbatch_size = 9\nn_step = 2\n");
    write_file("shared/c.ini", "[agent]\nn_step = 4\n");
    write_file("game/run.ini",
               "[agent]\nn_step = 5\n\n[config]\nbase = ../shared/b.ini, ../shared/c.ini\n");
    tsr_run_config cfg;
    tsr_error err;
    cr_assert_eq(load_tmp("game/run.ini", &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_float_eq(cfg.agent.gamma, 0.5, 1e-15); /* from a.ini through b.ini */
    cr_expect_eq(cfg.agent.batch_size, 9);           /* b.ini overrides its base */
    cr_expect_eq(cfg.agent.n_step, 5);               /* the file itself, wherever [config] is */
    write_file("game/run2.ini", "[config]\nbase = ../shared/b.ini, ../shared/c.ini\n");
    cr_assert_eq(load_tmp("game/run2.ini", &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(cfg.agent.n_step, 4); /* later bases override earlier ones */
}

Test(presets, a_missing_base_names_the_file_line_and_resolved_path, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_file("run.ini", "; comment\n[config]\nbase = nowhere/missing.ini\n");
    tsr_run_config cfg;
    tsr_error err;
    cr_expect_eq(load_tmp("run.ini", &cfg, &err), TSR_STATUS_IO);
    cr_expect(strstr(err.message, "run.ini:3: config.base file nowhere/missing.ini"), "%s",
              err.message);
    cr_expect(strstr(err.message, "No such file"), "%s", err.message);
}

Test(presets, a_cycle_of_bases_is_an_error_naming_the_chain, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_file("a.ini", "[config]\nbase = b.ini\n");
    write_file("b.ini", "[config]\nbase = a.ini\n");
    tsr_run_config cfg;
    tsr_error err;
    cr_expect_eq(load_tmp("a.ini", &cfg, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "config base cycle"), "%s", err.message);
    cr_expect(strstr(err.message, "a.ini -> ") && strstr(err.message, "b.ini -> "), "%s",
              err.message);
    write_file("self.ini", "[config]\nbase = self.ini\n");
    cr_expect_eq(load_tmp("self.ini", &cfg, &err), TSR_STATUS_INVALID_ARGUMENT);
}

Test(presets, bases_nest_at_most_eight_levels, .init = make_tmpdir, .fini = remove_tmpdir)
{
    /* l1 -> ... -> l9 is eight levels of bases (allowed); l0 -> ... -> l9 nine. */
    for (int i = 0; i <= 9; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "l%d.ini", i);
        if (i < 9) snprintf(text, sizeof text, "[config]\nbase = l%d.ini\n", i + 1);
        else snprintf(text, sizeof text, "[agent]\nn_step = 3\n");
        write_file(name, text);
    }
    tsr_run_config cfg;
    tsr_error err;
    cr_expect_eq(load_tmp("l1.ini", &cfg, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(cfg.agent.n_step, 3);
    cr_expect_eq(load_tmp("l0.ini", &cfg, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "nested more than 8 levels"), "%s", err.message);
}

Test(presets, the_config_section_takes_only_base, .init = make_tmpdir, .fini = remove_tmpdir)
{
    write_file("run.ini", "[config]\nbases = x.ini\n");
    tsr_run_config cfg;
    tsr_error err;
    cr_expect_eq(load_tmp("run.ini", &cfg, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "unknown key config.bases"), "%s", err.message);
}

Test(presets, an_error_in_a_base_names_the_base_file_and_line, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    write_file("base.ini", "[agent]\n\ngama = 0.9\n");
    write_file("run.ini", "[config]\nbase = base.ini\n");
    tsr_run_config cfg;
    tsr_error err;
    cr_expect_eq(load_tmp("run.ini", &cfg, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "base.ini:3: unknown key agent.gama (did you mean agent.gamma?)"),
              "%s", err.message);
}

/* ---- [agent], [optimizer], [run] ------------------------------------------------ */

static tsr_status load_overrides(char **overrides, int n, tsr_error *err)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    return tsr_run_config_load(&schema, &cfg, NULL, overrides, n, err);
}

Test(presets, agent_rules_across_keys_are_errors_naming_the_keys)
{
    tsr_error err;
    char *prioritized_dqn[] = {"agent.prioritized=true"};
    cr_expect_eq(load_overrides(prioritized_dqn, 1, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "agent.kind = rainbow"), "%s", err.message);
    char *bug_without_per[] = {"agent.dopamine_uniform_replay=true"};
    cr_expect_eq(load_overrides(bug_without_per, 1, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "google/dopamine#230"), "%s", err.message);
    char *small[] = {"agent.replay_capacity=40", "agent.batch_size=32", "agent.n_step=10"};
    cr_expect_eq(load_overrides(small, 3, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "agent.replay_capacity = 40 is too small"), "%s", err.message);
    char *decay[] = {"optimizer.kind=sgd", "optimizer.weight_decay=0.1"};
    cr_expect_eq(load_overrides(decay, 2, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "optimizer.weight_decay"), "%s", err.message);
    char *typo[] = {"optimizer.learning_rat=0.1"};
    cr_expect_eq(load_overrides(typo, 1, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "did you mean optimizer.learning_rate?"), "%s", err.message);
    char *threads[] = {"run.threads=0"};
    cr_expect_eq(load_overrides(threads, 1, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "run.threads = 0 is outside [1, 1024]"), "%s", err.message);
    char *fine[] = {"agent.kind=rainbow", "agent.prioritized=true",
                    "agent.dopamine_uniform_replay=true"};
    cr_expect_eq(load_overrides(fine, 3, &err), TSR_STATUS_OK, "%s", err.message);
}

Test(presets, the_expected_update_count_follows_the_loop)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    char *o[] = {"run.iterations=2", "run.training_steps=50", "agent.min_replay_history=10",
                 "agent.update_period=4"};
    cr_assert_eq(tsr_run_config_load(&schema, &cfg, NULL, o, 4, NULL), TSR_STATUS_OK);
    /* t in (10, 100) with t % 4 == 0: 12, 16, ..., 96 -> 22 updates. */
    cr_expect_eq(tsr_run_expected_updates(&cfg), 22);
}
