/* config.h — typed configuration from INI files and command-line overrides.
 *
 * A configuration is a C struct; a schema table lists every key it accepts
 * with its section, type, place in the struct, allowed values, default and a
 * line of help. The table is the single source of truth: defaults are parsed
 * from it, files and `--set section.key=value` overrides go through it, and
 * the resolved configuration is printed from it. Files are INI, read with
 * inih (Debian's libinih):
 *
 *     [network]
 *     encoder = impala      ; a comment (';' inline, ';' or '#' at a line's start)
 *     num_experts = 4
 *
 * Every error names the file and line (or the override), the key, the value
 * and what is allowed; an unknown key names the nearest valid key.
 */
#ifndef TESSERA_CONFIG_H
#define TESSERA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_config_type {
    TSR_CONFIG_INT = 0, /* int64_t */
    TSR_CONFIG_DOUBLE,  /* double */
    TSR_CONFIG_BOOL,    /* bool: true/false, yes/no, on/off, 1/0 */
    TSR_CONFIG_ENUM,    /* int: index into `choices` */
    TSR_CONFIG_STRING,  /* char[TSR_CONFIG_STRING_BYTES] */
} tsr_config_type;

enum { TSR_CONFIG_STRING_BYTES = 256 };

typedef struct tsr_config_key {
    const char *section;
    const char *name;
    tsr_config_type type;
    size_t offset;               /* of the field in the configuration struct */
    double min, max;             /* inclusive range of INT and DOUBLE values */
    const char *const *choices;  /* ENUM names, NULL-terminated */
    const char *default_value;   /* parsed like a file value */
    const char *help;
} tsr_config_key;

typedef struct tsr_config_schema {
    const tsr_config_key *keys;
    int count;
} tsr_config_schema;

/* Sets every key of `schema` in `target` to its default. */
void tsr_config_set_defaults(const tsr_config_schema *schema, void *target);
/* Parses `value` into key section.name. `origin` ("run.ini:12", "--set")
 * prefixes error messages. */
tsr_status tsr_config_set(const tsr_config_schema *schema, void *target, const char *section,
                          const char *name, const char *value, const char *origin, tsr_error *err);
/* Opens a file to read as `what` ("config file", "sweep file"); an error
 * (and *out NULL) when it cannot be opened or is a directory. */
tsr_status tsr_config_fopen(const char *path, const char *what, FILE **out, tsr_error *err);
/* Reads an INI file into `target` (keys not in the file keep their values). */
tsr_status tsr_config_load_file(const tsr_config_schema *schema, void *target, const char *path,
                                tsr_error *err);
/* The same from an open stream; `path` names it in error messages
 * ("checkpoint.h5:/config"). Base files are not followed. */
tsr_status tsr_config_load_stream(const tsr_config_schema *schema, void *target, FILE *f,
                                  const char *path, tsr_error *err);
/* Applies one "section.key=value" override. */
tsr_status tsr_config_apply_override(const tsr_config_schema *schema, void *target,
                                     const char *assignment, tsr_error *err);
/* Writes the resolved configuration as an INI file that loads back to it. */
void tsr_config_write(const tsr_config_schema *schema, const void *target, FILE *out);
/* The key entry for section.name, or NULL. */
const tsr_config_key *tsr_config_find(const tsr_config_schema *schema, const char *section,
                                      const char *name);
/* Levenshtein distance between two names (names over 63 characters count
 * as the longer length), for "did you mean ...?" suggestions. */
size_t tsr_config_edit_distance(const char *a, const char *b);
/* Formats the value of `key` in `target` as it would be written to a file. */
const char *tsr_config_format_value(const tsr_config_key *key, const void *target, char *buf,
                                    size_t size);

/* ---- layered files ---------------------------------------------------------
 * A file may start from others:
 *
 *     [config]
 *     base = ../base/minatar_dqn.ini, ../base/softmoe.ini
 *
 * Each base is read first, in order (paths relative to the directory of the
 * file that names them; each may name its own bases), then the file's own
 * keys override theirs. The [config] section takes only `base`. */
enum { TSR_CONFIG_MAX_BASE_DEPTH = 8, TSR_CONFIG_MAX_BASES = 8 };

/* tsr_config_load_file with bases. Errors: a base that cannot be opened
 * (naming the including file, its line and the resolved path), a cycle (the
 * chain of files), nesting deeper than TSR_CONFIG_MAX_BASE_DEPTH, and every
 * error of tsr_config_load_file. */
tsr_status tsr_config_load_file_layered(const tsr_config_schema *schema, void *target,
                                        const char *path, tsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
