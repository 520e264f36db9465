/* HDF5 checkpoints through the library: a round trip of every field (save,
 * load, save again gives the same file, and the loaded run continues exactly
 * as the saved one), the bad inputs (missing, not HDF5, truncated, foreign,
 * newer, incomplete, another network), atomic writes, the run directory's
 * newest-complete and keep-K rules, parameter loading into another run, and
 * resuming without a replay. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/files.h"
#include "tessera/tessera.h"

/* ---- helpers ---------------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void) { tsr_test_tmpdir_make(tmpdir, sizeof tmpdir, "ckpt"); }
static void remove_tmpdir(void) { tsr_test_tmpdir_remove(tmpdir); }

/* Short runs: 400 agent steps an iteration, updates from step 200, episodes
 * of at most 250 steps, a small replay. */
#define SHORT "run.iterations=3", "run.training_steps=400", "run.evaluation_episodes=1", \
              "run.max_episode_steps=250", "agent.min_replay_history=200",                   \
              "agent.replay_capacity=3000", "run.threads=1"

/* A preset ("cartpole/dqn") as a short run, with `extra` overrides after
 * SHORT's. */
static tsr_run_config short_config(const char *preset, const char *const *extra, int count)
{
    static const char *const base[] = {SHORT};
    enum { BASE = sizeof base / sizeof base[0] };
    const char *all[BASE + 8];
    cr_assert_leq(count, 8);
    for (int i = 0; i < BASE; i++) all[i] = base[i];
    for (int i = 0; i < count; i++) all[BASE + i] = extra[i];
    char path[256];
    snprintf(path, sizeof path, "%s/%s.ini", TSR_CONFIGS_DIR, preset);
    return tsr_test_load_run_config(path, all, BASE + count);
}

#define NO_EXTRA NULL, 0

static tsr_runner *new_runner(const tsr_run_config *cfg)
{
    tsr_runner *r;
    tsr_error err;
    cr_assert_eq(tsr_runner_new(&r, cfg, true, &err), TSR_STATUS_OK, "%s", err.message);
    return r;
}

static void save(tsr_runner *r, const char *path, bool with_replay)
{
    tsr_error err;
    cr_assert_eq(tsr_runner_save_checkpoint(r, path, with_replay, &err), TSR_STATUS_OK, "%s",
                 err.message);
}

static tsr_iteration_metrics iterate(tsr_runner *r)
{
    tsr_iteration_metrics m;
    tsr_error err;
    cr_assert(tsr_runner_run_iteration(r, &m, &err));
    return m;
}

/* Trains a runner of `cfg` for `iterations`, saves it as tmpdir/FILE into
 * `path` (256 bytes) and frees it. */
static void saved_run(const tsr_run_config *cfg, int iterations, const char *file,
                      bool with_replay, char *path)
{
    tsr_runner *r = new_runner(cfg);
    for (int i = 0; i < iterations; i++) iterate(r);
    snprintf(path, 256, "%s/%s", tmpdir, file);
    save(r, path, with_replay);
    tsr_runner_free(r);
}

/* h5diff's exit code: 0 when every dataset and attribute is equal, 1 when
 * something differs. */
static int h5diff(const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "h5diff %s %s >/dev/null 2>&1", a, b);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) <= 1, "%s failed (is hdf5-tools installed?)",
              cmd);
    return WEXITSTATUS(status);
}

static char *slurp(const char *path, size_t *size)
{
    char *data = tsr_test_slurp(path, size);
    cr_assert_not_null(data, "cannot read %s", path);
    return data;
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    size_t size;
    char *data = slurp(from, &size);
    write_bytes(to, data, size);
    free(data);
}

static bool same_metrics(const tsr_iteration_metrics *a, const tsr_iteration_metrics *b)
{
#define SAME(f) (a->f == b->f || (isnan((double)a->f) && isnan((double)b->f)))
    return SAME(iteration) && SAME(agent_steps) && SAME(gradient_updates) && SAME(episodes) &&
           SAME(iteration_episodes) && SAME(train_return) && SAME(loss) && SAME(mean_q) &&
           SAME(sparsity) && SAME(dormant_fraction) && SAME(head_dormant_fraction) &&
           SAME(eval_return) && SAME(recent_return);
#undef SAME
}

/* Both environments of two runners hold the same state, streams included. */
static void expect_same_envs(const tsr_runner *a, const tsr_runner *b, const char *config)
{
    for (int evaluation = 0; evaluation < 2; evaluation++) {
        const tsr_env *ea = tsr_runner_env(a, evaluation), *eb = tsr_runner_env(b, evaluation);
        cr_expect(!memcmp(tsr_env_state_bytes(ea), tsr_env_state_bytes(eb), tsr_env_state_size(ea)),
                  "%s: the %s environments differ", config, evaluation ? "evaluation" : "training");
    }
}

/* ---- round trip -------------------------------------------------------------- */

/* Runner A trains one iteration and is saved; runner B, built from the same
 * config, loads that file and saves it again: the two files are equal
 * item for item. Then both train on: the same metrics and the same state, so
 * the file held everything the run depends on. */
static void expect_round_trip(const char *config, tsr_run_config cfg)
{
    char p1[256], p2[256], p3[256], p4[256];
    snprintf(p1, sizeof p1, "%s/a1.h5", tmpdir);
    snprintf(p2, sizeof p2, "%s/b1.h5", tmpdir);
    snprintf(p3, sizeof p3, "%s/a2.h5", tmpdir);
    snprintf(p4, sizeof p4, "%s/b2.h5", tmpdir);
    tsr_runner *a = new_runner(&cfg);
    iterate(a);
    save(a, p1, true);
    tsr_runner *b = new_runner(&cfg);
    tsr_error err;
    bool replay_restored = false;
    cr_assert_eq(tsr_runner_load_checkpoint(b, p1, &replay_restored, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect(replay_restored);
    cr_expect_eq(tsr_runner_iteration(b), 1);
    save(b, p2, true);
    cr_expect_eq(h5diff(p1, p2), 0, "%s: saving a loaded checkpoint changed it", config);
    expect_same_envs(a, b, config);
    tsr_iteration_metrics ma = iterate(a), mb = iterate(b);
    cr_expect(same_metrics(&ma, &mb),
              "%s: the iteration after the load: loss %.9g / %.9g, return %.9g / %.9g", config,
              ma.loss, mb.loss, ma.train_return, mb.train_return);
    expect_same_envs(a, b, config);
    save(a, p3, true);
    save(b, p4, true);
    cr_expect_eq(h5diff(p3, p4), 0, "%s: the loaded run drifted from the saved one", config);
    tsr_runner_free(a);
    tsr_runner_free(b);
}

Test(checkpoint, a_rainbow_run_round_trips_and_continues_identically, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* Prioritized replay, 3-step returns, NoisyNet, C51, dueling, Adam. */
    expect_round_trip("breakout/rainbow", short_config("breakout/rainbow", NO_EXTRA));
}

Test(checkpoint, a_pruned_run_round_trips_with_its_masks, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* GMP with masks recomputed every 20 updates from update 50 on, centred
     * RMSProp: masks, schedule and optimizer state must all come back. */
    tsr_run_config cfg = short_config("seaquest/dqn_gmp95",
                                      TSR_TEST_OVERRIDES("pruning.step_units=updates",
                                                         "pruning.start_step=50",
                                                         "pruning.end_step=400",
                                                         "pruning.update_freq=20"));
    expect_round_trip("seaquest/dqn_gmp95", cfg);
    tsr_runner *r = new_runner(&cfg);
    tsr_iteration_metrics m = iterate(r);
    cr_expect_gt(m.sparsity, 0.05, "the masks are in force by the first checkpoint (%g)",
                 m.sparsity);
    tsr_runner_free(r);
}

Test(checkpoint, a_soft_moe_run_round_trips, .init = make_tmpdir, .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("asterix/dqn_softmoe",
                                      TSR_TEST_OVERRIDES("network.num_experts=2"));
    expect_round_trip("asterix/dqn_softmoe", cfg);
}

/* Top-1 routing with the reference's RandomRouter: no router weight, so no
 * router cache in the saved state, and the noise stream comes back. */
Test(checkpoint, a_random_router_top1_run_round_trips, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("breakout/dqn_top1moe",
                                      TSR_TEST_OVERRIDES("network.random_router=true"));
    expect_round_trip("breakout/dqn_top1moe", cfg);
}

/* ---- the documented layout ------------------------------------------------------ */

/* Which linear layers would take the cached layout next (a version's second
 * use) is part of the state: after a load it is as in the saved runner, so
 * a resumed run runs the same oneDNN primitives. */
static void expect_same_cache_state(tsr_network *a, tsr_network *b, const char *what)
{
    tsr_network_cache ca[64], cb[64];
    int n = tsr_network_linear_caches(a, ca, 64);
    cr_assert_eq(tsr_network_linear_caches(b, cb, 64), n);
    cr_assert_gt(n, 0);
    int used = 0;
    for (int i = 0; i < n; i++) {
        bool ua = tsr_weight_cache_version_used(ca[i].cache, ca[i].weight);
        used += ua;
        cr_expect_eq(tsr_weight_cache_version_used(cb[i].cache, cb[i].weight), ua,
                     "%s: cache %d", what, i);
    }
    cr_expect_gt(used, 0, "%s: the saved runner had used some version twice", what);
}

Test(checkpoint, the_linear_layers_primitive_choice_survives_a_load, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    static const char *const presets[] = {"cartpole/dqn", "cartpole/rainbow", "breakout/dqn_top1moe"};
    for (int k = 0; k < 3; k++) {
        tsr_run_config cfg = short_config(presets[k], NO_EXTRA);
        tsr_runner *a = new_runner(&cfg);
        iterate(a);
        char path[256];
        snprintf(path, sizeof path, "%s/cache-%d.h5", tmpdir, k);
        save(a, path, true);
        tsr_runner *b = new_runner(&cfg);
        tsr_error err;
        cr_assert_eq(tsr_runner_load_checkpoint(b, path, NULL, &err), TSR_STATUS_OK, "%s",
                     err.message);
        tsr_agent *agent_a = tsr_runner_agent(a), *agent_b = tsr_runner_agent(b);
        expect_same_cache_state(tsr_agent_online(agent_a), tsr_agent_online(agent_b), presets[k]);
        expect_same_cache_state(tsr_agent_target(agent_a), tsr_agent_target(agent_b), presets[k]);
        tsr_runner_free(a);
        tsr_runner_free(b);
    }
}

Test(checkpoint, items_are_at_the_paths_and_shapes_format_md_documents, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("breakout/dqn", NO_EXTRA);
    char path[256], cmd[512];
    saved_run(&cfg, 1, "c.h5", true, path);
    snprintf(cmd, sizeof cmd, "h5ls -r %s", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char listing[16384];
    size_t got = fread(listing, 1, sizeof listing - 1, p);
    listing[got] = '\0';
    cr_assert_eq(pclose(p), 0, "h5ls failed");
    /* Parameters in PyTorch's shapes: conv (O, I, kH, kW), linear (out, in). */
    static const char *const expected[] = {
        "/config                  Dataset {SCALAR}",
        "/counters/iteration      Dataset {SCALAR}",
        "/counters/agent_steps    Dataset {SCALAR}",
        "/counters/gradient_updates Dataset {SCALAR}",
        "/counters/episodes       Dataset {SCALAR}",
        "/params/online/encoder/conv/weight Dataset {16, 4, 3, 3}",
        "/params/online/head/hidden/weight Dataset {128, 1024}",
        "/params/online/head/output/weight Dataset {6, 128}",
        "/params/target/head/output/bias Dataset {6}",
        "/optimizer/square_avg/encoder/conv/weight Dataset {16, 4, 3, 3}",
        "/optimizer/grad_avg/head/output/weight Dataset {6, 128}",
        "/optimizer/step_count    Dataset {SCALAR}",
        "/rng/exploration/state   Dataset {4}",
        "/replay/rng/state",
        "/rng/train_env/state     Dataset {4}",
        "/rng/train_sticky/state  Dataset {4}",
        "/env/train/previous_action Dataset {SCALAR}",
        "/env/train/state         Dataset {",
        "/replay/observations     Dataset {3000, 50}", /* bit-packed 10x10x4 */
        "/replay/priorities       Dataset {3000}",
        "/runner/recent_returns   Dataset {100}",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        cr_expect(strstr(listing, expected[i]), "h5ls lacks \"%s\":\n%s", expected[i], listing);
    cr_expect(!strstr(listing, "/pruning"), "no pruning group without a pruner");
}

/* ---- bad inputs ----------------------------------------------------------------- */

/* Loads `path` into a fresh runner; the status, with the message in *err. */
static tsr_status try_load(const tsr_run_config *cfg, const char *path, tsr_error *err)
{
    tsr_runner *r = new_runner(cfg);
    tsr_status st = tsr_runner_load_checkpoint(r, path, NULL, err);
    tsr_runner_free(r);
    return st;
}

/* Rewrites (or with value < 0 removes) an integer root attribute. */
static void set_root_attr(const char *path, const char *name, long long value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    if (value >= 0) {
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_LLONG, &value);
        H5Aclose(a);
        H5Sclose(space);
    }
    H5Fclose(f);
}

/* Expects loading `path` to fail with TSR_STATUS_FORMAT or IO (damage), or
 * INVALID_ARGUMENT (a config the file does not fit), a message holding
 * `words` and the file's name, and the file unchanged. */
static void expect_refused(const tsr_run_config *cfg, const char *path, const char *words)
{
    size_t before_size, after_size;
    char *before = slurp(path, &before_size);
    tsr_error err;
    tsr_status st = try_load(cfg, path, &err);
    cr_expect(st == TSR_STATUS_FORMAT || st == TSR_STATUS_IO || st == TSR_STATUS_INVALID_ARGUMENT,
              "%s loaded (status %d)", path, st);
    cr_expect(strstr(err.message, words), "expected \"%s\" in: %s", words, err.message);
    cr_expect(strstr(err.message, path), "the message names the file: %s", err.message);
    char *after = slurp(path, &after_size);
    cr_expect(before_size == after_size && !memcmp(before, after, before_size),
              "loading changed %s", path);
    free(before);
    free(after);
}

Test(checkpoint, bad_files_get_clear_errors_and_are_left_untouched, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", NO_EXTRA);
    char good[256], path[256];
    saved_run(&cfg, 1, "good.h5", true, good);

    tsr_error err;
    snprintf(path, sizeof path, "%s/missing.h5", tmpdir);
    cr_expect_eq(try_load(&cfg, path, &err), TSR_STATUS_IO);
    cr_expect(strstr(err.message, "cannot open checkpoint") && strstr(err.message, path), "%s",
              err.message);

    snprintf(path, sizeof path, "%s/text.h5", tmpdir);
    write_bytes(path, "[run]\nseed = 1\n", 15);
    expect_refused(&cfg, path, "is not an HDF5 file");

    size_t size;
    char *bytes = slurp(good, &size);
    snprintf(path, sizeof path, "%s/truncated.h5", tmpdir);
    write_bytes(path, bytes, size / 2);
    expect_refused(&cfg, path, "truncated or corrupt");
    snprintf(path, sizeof path, "%s/header_only.h5", tmpdir);
    write_bytes(path, bytes, 600);
    expect_refused(&cfg, path, "truncated or corrupt");
    free(bytes);

    snprintf(path, sizeof path, "%s/foreign.h5", tmpdir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_refused(&cfg, path, "not a tessera checkpoint");

    snprintf(path, sizeof path, "%s/newer.h5", tmpdir);
    copy_file(good, path);
    set_root_attr(path, "format_version", TSR_CHECKPOINT_FORMAT_VERSION + 1);
    expect_refused(&cfg, path,
                   "format version 2; this tessera (" TESSERA_VERSION ") reads version 1");

    snprintf(path, sizeof path, "%s/incomplete.h5", tmpdir);
    copy_file(good, path);
    set_root_attr(path, "complete", -1);
    expect_refused(&cfg, path, "incomplete checkpoint");
}

/* Writes `value` at element `index` of a 1-d dataset of `path` (in its
 * own type, through a double). */
static void poke(const char *path, const char *dataset, hsize_t index, double value)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t ds = H5Dopen2(f, dataset, H5P_DEFAULT);
    cr_assert_geq(ds, 0, "%s has no %s", path, dataset);
    hid_t space = H5Dget_space(ds);
    if (H5Sget_simple_extent_ndims(space) > 0) {
        hsize_t one = 1;
        H5Sselect_elements(space, H5S_SELECT_SET, 1, &index);
        hid_t mem = H5Screate_simple(1, &one, NULL);
        cr_assert_geq(H5Dwrite(ds, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &value), 0);
        H5Sclose(mem);
    } else {
        cr_assert_geq(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value), 0);
    }
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
}

/* Edited or damaged contents that the counters alone do not reveal are
 * refused at load, naming what is wrong, instead of sending sampling
 * outside the replay's buffers (or an environment an invalid action). */
Test(checkpoint, inconsistent_replay_and_env_contents_are_refused, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", NO_EXTRA);
    char good[256], path[256];
    saved_run(&cfg, 1, "good.h5", true, good);
    static const struct {
        const char *dataset;
        hsize_t index;
        double value;
        const char *words;
    } cases[] = {
        {"replay/priorities", 0, -1.0, "priority that is not positive and finite"},
        {"replay/priorities", 1, NAN, "priority that is not positive and finite"},
        {"replay/flags", 0, 0.0, "an invalid slot with a priority"},
        {"replay/actions", 2, -3.0, "a negative action"},
        {"replay/actions", 3, 7.0, "holds an action outside the 2 of"},
        {"replay/num_valid", 0, 5.0, "valid slots but num_valid 5"},
        {"replay/add_count", 0, 3.0, "counters out of range"},
        {"replay/max_priority", 0, 0.0, "max_priority 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s/edited-%zu.h5", tmpdir, i);
        copy_file(good, path);
        poke(path, cases[i].dataset, cases[i].index, cases[i].value);
        expect_refused(&cfg, path, cases[i].words);
    }
    /* The previous action is in the env state and in a dataset of its own:
     * the two must agree. */
    hid_t f = H5Fopen(good, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "env/train/previous_action", H5P_DEFAULT);
    cr_assert_geq(ds, 0, "no env/train/previous_action");
    long long previous = 0;
    H5Dread(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &previous);
    H5Dclose(ds);
    H5Fclose(f);
    snprintf(path, sizeof path, "%s/edited-action.h5", tmpdir);
    copy_file(good, path);
    poke(path, "env/train/previous_action", 0, (double)(1 - previous));
    expect_refused(&cfg, path, "disagrees with the environment state");
}

Test(checkpoint, another_network_is_refused_naming_the_tensor_and_both_shapes,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", NO_EXTRA);
    char path[256];
    saved_run(&cfg, 0, "c.h5", true, path);

    tsr_run_config wider = short_config("cartpole/dqn", TSR_TEST_OVERRIDES("network.hidden=64"));
    expect_refused(&wider, path,
                   "tensor params/online/head/hidden/weight has shape (128, 128) in the file but "
                   "(64, 128) here");
    tsr_run_config sgd = short_config("cartpole/dqn", TSR_TEST_OVERRIDES("optimizer.kind=sgd"));
    expect_refused(&sgd, path, "holds the state of a adam optimizer with 2 state blocks");
    tsr_run_config bigger_replay =
        short_config("cartpole/dqn", TSR_TEST_OVERRIDES("agent.replay_capacity=4000"));
    expect_refused(&bigger_replay, path, "replay/observations has shape (3000, 16) in the file "
                                         "but (4000, 16) here");
    tsr_run_config breakout = short_config("breakout/dqn", NO_EXTRA);
    expect_refused(&breakout, path, "env/train/state is the state of another game");
}

Test(checkpoint, pruning_state_is_refused_by_a_run_that_does_not_prune, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    /* Masks every 10 updates: the short run's window holds some. */
    tsr_run_config pruned =
        short_config("breakout/dqn_gmp95", TSR_TEST_OVERRIDES("pruning.update_freq=10"));
    char path[256];
    saved_run(&pruned, 0, "c.h5", false, path);
    tsr_run_config dense = short_config(
        "breakout/dqn_gmp95", TSR_TEST_OVERRIDES("pruning.update_freq=10", "pruning.mode=none"));
    expect_refused(&dense, path, "holds pruning masks but this run does not prune");
    tsr_run_config later =
        short_config("breakout/dqn_gmp95",
                     TSR_TEST_OVERRIDES("pruning.update_freq=10", "pruning.start_fraction=0.5"));
    expect_refused(&later, path, "pruning: pruning schedule from update");
}

/* ---- loading parameters into another run ------------------------------------------ */

Test(checkpoint, parameters_load_into_another_run_in_one_call, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", TSR_TEST_OVERRIDES("run.seed=1"));
    tsr_runner *trained = new_runner(&cfg);
    iterate(trained);
    char path[256];
    snprintf(path, sizeof path, "%s/c.h5", tmpdir);
    save(trained, path, false);
    const tsr_params *source = &tsr_agent_online(tsr_runner_agent(trained))->params;

    /* An evaluation-only runner of another seed: other initial values, then
     * the checkpoint's after the one call. */
    tsr_run_config other = short_config("cartpole/dqn", TSR_TEST_OVERRIDES("run.seed=2"));
    tsr_runner *eval;
    tsr_error err;
    cr_assert_eq(tsr_runner_new(&eval, &other, false, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_params *dst = &tsr_agent_online(tsr_runner_agent(eval))->params;
    cr_assert_eq(dst->numel, source->numel);
    cr_expect_neq(memcmp(dst->values, source->values, dst->numel * sizeof(float)), 0);
    uint64_t version = dst->version;
    cr_assert_eq(tsr_checkpoint_load_params(path, "online", dst, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect_eq(memcmp(dst->values, source->values, dst->numel * sizeof(float)), 0);
    cr_expect_gt(dst->version, version, "cached weight layouts must refresh");
    cr_expect_eq(tsr_checkpoint_load_params(path, "both", dst, &err), TSR_STATUS_INVALID_ARGUMENT);

    /* A mismatch changes nothing: the encoder's tensors match, the head's
     * hidden layer does not. */
    tsr_run_config narrow = short_config("cartpole/dqn", TSR_TEST_OVERRIDES("network.hidden=64"));
    tsr_runner *mismatch;
    cr_assert_eq(tsr_runner_new(&mismatch, &narrow, false, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_params *m = &tsr_agent_online(tsr_runner_agent(mismatch))->params;
    float *before = malloc(m->numel * sizeof(float));
    memcpy(before, m->values, m->numel * sizeof(float));
    cr_expect_eq(tsr_checkpoint_load_params(path, "online", m, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "head/hidden/weight has shape (128, 128) in the file but "
                                  "(64, 128) here"), "%s", err.message);
    cr_expect_eq(memcmp(before, m->values, m->numel * sizeof(float)), 0,
                 "a refused load changed parameters");
    free(before);
    tsr_runner_free(mismatch);
    tsr_runner_free(eval);
    tsr_runner_free(trained);
}

/* ---- atomic writes and run directories -------------------------------------------- */

Test(checkpoint, a_failed_write_leaves_the_previous_checkpoint_intact, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", NO_EXTRA);
    tsr_runner *r = new_runner(&cfg);
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/c.h5", tmpdir);
    save(r, path, true);
    size_t size_before;
    char *before = slurp(path, &size_before);
    iterate(r);
    /* The temporary file cannot be created (a directory is in its way), as
     * when the disk fails mid-save: the write fails, the old file stays. */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(mkdir(tmp, 0700), 0);
    tsr_error err;
    cr_expect_neq(tsr_runner_save_checkpoint(r, path, true, &err), TSR_STATUS_OK);
    cr_expect(strstr(err.message, tmp), "%s", err.message);
    size_t size_after;
    char *after = slurp(path, &size_after);
    cr_expect(size_before == size_after && !memcmp(before, after, size_before));
    cr_expect_eq(try_load(&cfg, path, &err), TSR_STATUS_OK, "%s", err.message);
    free(before);
    free(after);
    tsr_runner_free(r);
}

Test(checkpoint, the_newest_complete_checkpoint_is_found_and_old_ones_removed,
     .init = make_tmpdir, .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", NO_EXTRA);
    tsr_runner *r = new_runner(&cfg);
    char dir[256], path[512], found[512];
    snprintf(dir, sizeof dir, "%s/checkpoints", tmpdir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    int64_t iteration = -1;
    tsr_error err;
    cr_expect_eq(tsr_checkpoint_find_latest(tmpdir, found, sizeof found, &iteration, NULL, &err),
                 TSR_STATUS_IO);
    cr_expect(strstr(err.message, "holds no complete checkpoint"), "%s", err.message);
    for (int it = 1; it <= 4; it++) {
        tsr_checkpoint_path(tmpdir, it, path, sizeof path);
        save(r, path, false);
    }
    /* Iteration 5 was killed mid-write (its .tmp) and iteration 6's file is
     * damaged: the newest complete one is 4. */
    tsr_checkpoint_path(tmpdir, 5, path, sizeof path);
    strcat(path, ".tmp");
    write_bytes(path, "\x89HDF\r\n\x1a\n", 8);
    tsr_checkpoint_path(tmpdir, 6, path, sizeof path);
    write_bytes(path, "\x89HDF\r\n\x1a\n", 8);
    char log_text[2048] = {0};
    FILE *log = fmemopen(log_text, sizeof log_text, "w");
    cr_assert_eq(tsr_checkpoint_find_latest(tmpdir, found, sizeof found, &iteration, log, &err),
                 TSR_STATUS_OK, "%s", err.message);
    fclose(log);
    cr_expect_eq(iteration, 4);
    cr_expect(strstr(found, "ckpt-000004.h5"), "%s", found);
    cr_expect(strstr(log_text, "skipping checkpoint") && strstr(log_text, "ckpt-000006.h5"), "%s",
              log_text);
    /* Checkpoint files of which none is complete are told apart from none. */
    char damaged[256];
    snprintf(damaged, sizeof damaged, "%s/damaged", tmpdir);
    snprintf(path, sizeof path, "%s/checkpoints", damaged);
    cr_assert_eq(mkdir(damaged, 0700), 0);
    cr_assert_eq(mkdir(path, 0700), 0);
    tsr_checkpoint_path(damaged, 3, path, sizeof path);
    write_bytes(path, "\x89HDF\r\n\x1a\n", 8);
    cr_expect_eq(tsr_checkpoint_find_latest(damaged, found, sizeof found, &iteration, NULL, &err),
                 TSR_STATUS_FORMAT);
    cr_expect(strstr(err.message, "none of the 1 checkpoint in"), "%s", err.message);

    /* A checkpointing directory that cannot be read is an error, not "no
     * checkpoint" (which would start a resumed run over): here
     * checkpoints is a file. */
    char unreadable[256];
    snprintf(unreadable, sizeof unreadable, "%s/unreadable", tmpdir);
    cr_assert_eq(mkdir(unreadable, 0700), 0);
    snprintf(path, sizeof path, "%s/checkpoints", unreadable);
    write_bytes(path, "x", 1);
    cr_expect_eq(tsr_checkpoint_find_latest(unreadable, found, sizeof found, &iteration, NULL,
                                            &err), TSR_STATUS_BACKEND);
    cr_expect(strstr(err.message, "cannot read") && strstr(err.message, "Not a directory"), "%s",
              err.message);

    /* Resumed from 4 past the damaged 6, the run has just written 4 again:
     * keep 2 keeps 4 and 3, and leaves 6 (a later iteration) alone. */
    cr_assert_eq(tsr_checkpoint_remove_old(tmpdir, 2, 4, &err), TSR_STATUS_OK, "%s", err.message);
    bool expected_present[7] = {false, false, false, true, true, false, true};
    for (int it = 1; it <= 6; it++) {
        tsr_checkpoint_path(tmpdir, it, path, sizeof path);
        cr_expect_eq(access(path, F_OK) == 0, expected_present[it], "ckpt %d", it);
    }
    tsr_checkpoint_path(tmpdir, 5, path, sizeof path);
    strcat(path, ".tmp");
    cr_expect_neq(access(path, F_OK), 0, "the stray temporary file is removed");
    /* A stray high-numbered file never pushes out the checkpoint just
     * written, even with keep 1. */
    tsr_checkpoint_path(tmpdir, 99, path, sizeof path);
    write_bytes(path, "junk!", 5);
    cr_assert_eq(tsr_checkpoint_remove_old(tmpdir, 1, 4, &err), TSR_STATUS_OK, "%s", err.message);
    tsr_checkpoint_path(tmpdir, 4, path, sizeof path);
    cr_expect_eq(access(path, F_OK), 0, "the newest checkpoint of the run was removed");
    tsr_checkpoint_path(tmpdir, 3, path, sizeof path);
    cr_expect_neq(access(path, F_OK), 0, "keep 1 removes the one before");
    tsr_runner_free(r);
}

/* ---- without the replay --------------------------------------------------------------- */

Test(checkpoint, a_checkpoint_without_its_replay_resumes_with_an_empty_one, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
    tsr_run_config cfg = short_config("cartpole/dqn", NO_EXTRA);
    tsr_runner *a = new_runner(&cfg);
    iterate(a);
    char path[256];
    snprintf(path, sizeof path, "%s/c.h5", tmpdir);
    save(a, path, false);
    tsr_runner *b = new_runner(&cfg);
    tsr_error err;
    bool replay_restored = true;
    cr_assert_eq(tsr_runner_load_checkpoint(b, path, &replay_restored, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect(!replay_restored);
    tsr_agent_counters ca = tsr_agent_get_counters(tsr_runner_agent(a));
    tsr_agent_counters cb = tsr_agent_get_counters(tsr_runner_agent(b));
    cr_expect_eq(cb.training_steps, ca.training_steps);
    cr_expect_eq(cb.updates, ca.updates);
    cr_expect_gt(ca.replay_add_count, 0);
    cr_expect_eq(cb.replay_add_count, 0, "the replay starts empty");
    tsr_runner_free(a);
    tsr_runner_free(b);
}
