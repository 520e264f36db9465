/* cli_util.c — see cli_util.h. */
#include "cli/cli_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tessera/checkpoint.h"
#include "tessera/status.h"

bool tsr_cli_is_help(const char *arg)
{
    return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

bool tsr_cli_parse_int(const char *text, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool tsr_cli_parse_count(const char *text, int64_t *out)
{
    long long v;
    if (!tsr_cli_parse_int(text, 1, LLONG_MAX, &v)) return false;
    *out = v;
    return true;
}

bool tsr_cli_config_key_form(const char *text, bool assignment)
{
    const char *dot = strchr(text, '.'), *eq = strchr(text, '=');
    if (!dot || dot == text || (eq && eq < dot)) return false;
    return assignment ? eq && eq > dot + 1 : !eq && dot[1] != '\0';
}

bool tsr_cli_make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    return mkdir(buf, 0777) == 0 || errno == EEXIST;
}

void tsr_cli_format_duration(double seconds, char *buf, size_t size)
{
    if (!isfinite(seconds) || seconds < 0) {
        snprintf(buf, size, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60) snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    else snprintf(buf, size, "%lds", s);
}

tsr_status tsr_cli_load_checkpoint_config(const tsr_run_schema *schema, tsr_run_config *cfg,
                                          const char *checkpoint, char *const *overrides,
                                          int num_overrides, tsr_error *err)
{
    char *text;
    tsr_status st = tsr_checkpoint_read_config(checkpoint, &text, err);
    if (st != TSR_STATUS_OK) return st;
    char name[4200];
    snprintf(name, sizeof name, "%s:/config", checkpoint);
    st = tsr_run_config_load_text(schema, cfg, text, name, overrides, num_overrides, err);
    tsr_free(text);
    return st;
}
