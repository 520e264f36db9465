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
