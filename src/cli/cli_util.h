/* cli_util.h — small helpers the `tessera` subcommands share. */
#ifndef TESSERA_CLI_UTIL_H
#define TESSERA_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* mkdir -p: creates `path` and its missing parents; false (errno set) on failure. */
bool tsr_cli_make_dirs(const char *path);
/* "1h02m", "3m05s", "42s", or "?" for a negative or non-finite duration. */
void tsr_cli_format_duration(double seconds, char *buf, size_t size);

#endif
