/* files.h — temporary directories, whole files and commands, for the tests
 * that run tessera as a user does (CLI tests) or write files of their own. */
#ifndef TESSERA_TEST_FILES_H
#define TESSERA_TEST_FILES_H

#include <stddef.h>

#include "tessera/run_config.h"

/* Creates a fresh directory /tmp/tessera_<name>_XXXXXX into `dir` (at least
 * 64 bytes) or fails the test. */
void tsr_test_tmpdir_make(char *dir, size_t size, const char *name);
/* Removes `dir` and everything in it, or fails the test. */
void tsr_test_tmpdir_remove(const char *dir);

/* A whole file, NUL-terminated and malloc'd, its length in *size (size may be
 * NULL); NULL when the file cannot be read. */
char *tsr_test_slurp(const char *path, size_t *size);

/* Runs `command` through the shell with stdout and stderr captured in files
 * in `dir`; *out and *err get their contents (malloc'd). Returns the exit
 * code; fails the test unless the command exited normally. */
int tsr_test_run(const char *dir, const char *command, char **out, char **err);

/* The metrics.csv at `path` without its wall-clock columns (steps_per_second
 * and seconds, found by name in the header), malloc'd: what two runs of the
 * same seed must agree on. Fails the test if the file or a column is missing. */
char *tsr_test_metrics_without_wall_clock(const char *path);

/* A run config from `path` (NULL: the schema's defaults; tsr_run_config_load)
 * with `overrides`, or fails the test with the loader's message. */
tsr_run_config tsr_test_load_run_config(const char *path, const char *const *overrides, int count);

/* TSR_TEST_OVERRIDES("run.seed=1", "agent.n_step=3") expands to the array and
 * its count, for tsr_test_load_run_config's last two arguments. */
#define TSR_TEST_OVERRIDES(...)                                                                   \
    (const char *const[]){__VA_ARGS__},                                                           \
        (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

#endif
