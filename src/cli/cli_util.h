/* cli_util.h — small helpers the `tessera` subcommands share. */
#ifndef TESSERA_CLI_UTIL_H
#define TESSERA_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/run_config.h"

/* True for "-h" and "--help": every subcommand then prints its usage on
 * stdout and exits 0 (on a usage error: stderr, exit 2). */
bool tsr_cli_is_help(const char *arg);
/* An option's integer value: all of `text`, decimal, in [min, max]. */
bool tsr_cli_parse_int(const char *text, long long min, long long max, long long *out);
/* A count: an integer >= 1. */
bool tsr_cli_parse_count(const char *text, int64_t *out);
/* Whether `text` has the form section.key (or, with `assignment`,
 * section.key=value): a nonempty section, a dot, a nonempty key. What the
 * config then makes of the key and the value is its own check. */
bool tsr_cli_config_key_form(const char *text, bool assignment);
/* mkdir -p: creates `path` and its missing parents; false (errno set) on failure. */
bool tsr_cli_make_dirs(const char *path);
/* "1h02m", "3m05s", "42s", or "?" for a negative or non-finite duration. */
void tsr_cli_format_duration(double seconds, char *buf, size_t size);

/* The config stored in a checkpoint (the run's own, whatever became of its
 * config.ini), with `overrides` applied; errors name "FILE:/config". */
tsr_status tsr_cli_load_checkpoint_config(const tsr_run_schema *schema, tsr_run_config *cfg,
                                          const char *checkpoint, char *const *overrides,
                                          int num_overrides, tsr_error *err);

#endif
