/* files.c — see files.h. */
#include "support/files.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void tsr_test_tmpdir_make(char *dir, size_t size, const char *name)
{
    cr_assert(size >= 64 && snprintf(dir, size, "/tmp/tessera_%s_XXXXXX", name) < (int)size);
    cr_assert_not_null(mkdtemp(dir), "cannot create %s", dir);
}

void tsr_test_tmpdir_remove(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

char *tsr_test_slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    buf[got] = '\0';
    if (size) *size = got;
    return buf;
}

/* The index of header cell `name` in the CSV header `csv` (up to its first
 * newline), or -1. */
static int csv_column(const char *csv, const char *name)
{
    size_t len = strlen(name);
    int column = 0;
    for (const char *cell = csv;; column++) {
        size_t width = strcspn(cell, ",\n");
        if (width == len && !strncmp(cell, name, len)) return column;
        if (cell[width] != ',') return -1;
        cell += width + 1;
    }
}

char *tsr_test_metrics_without_wall_clock(const char *path)
{
    char *csv = tsr_test_slurp(path, NULL);
    cr_assert_not_null(csv, "%s is missing", path);
    int speed = csv_column(csv, "steps_per_second"), seconds = csv_column(csv, "seconds");
    cr_assert(speed >= 0 && seconds >= 0, "%s lacks a steps_per_second or seconds column:\n%s",
              path, csv);
    char *out = malloc(strlen(csv) + 1), *o = out;
    int column = 0;
    for (const char *c = csv; *c; c++) {
        if (*c == '\n') column = 0;
        else if (*c == ',') column++;
        /* A dropped column loses its cells and the comma in front of each
         * (the first column is never dropped). */
        if (*c == '\n' || (column != speed && column != seconds)) *o++ = *c;
    }
    *o = '\0';
    free(csv);
    return out;
}

int tsr_test_run(const char *dir, const char *command, char **out, char **err)
{
    size_t len = strlen(command) + 2 * strlen(dir) + 64;
    char *cmd = malloc(len), out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", dir);
    snprintf(cmd, len, "%s >%s 2>%s", command, out_path, err_path);
    int status = system(cmd);
    cr_assert(WIFEXITED(status), "%s did not exit normally", cmd);
    free(cmd);
    *out = tsr_test_slurp(out_path, NULL);
    *err = tsr_test_slurp(err_path, NULL);
    cr_assert(*out && *err, "the output of %s was not captured", command);
    return WEXITSTATUS(status);
}

tsr_run_config tsr_test_load_run_config(const char *path, const char *const *overrides, int count)
{
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    tsr_run_config cfg;
    tsr_error err;
    cr_assert_eq(tsr_run_config_load(&schema, &cfg, path, (char *const *)overrides, count, &err),
                 TSR_STATUS_OK, "%s", err.message);
    return cfg;
}
