/* config.c — schema-driven INI configuration (parsing by inih). */
#include "tessera/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const tsr_config_key *tsr_config_find(const tsr_config_schema *schema, const char *section,
                                      const char *name)
{
    for (int i = 0; i < schema->count; i++)
        if (!strcmp(schema->keys[i].section, section) && !strcmp(schema->keys[i].name, name))
            return &schema->keys[i];
    return NULL;
}

/* Edit distance between "a" and "b", for suggesting the nearest key. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return la > lb ? la : lb;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t above = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diagonal + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[lb];
}

/* The "section.name" of the schema key nearest to section.name. */
static const tsr_config_key *nearest_key(const tsr_config_schema *schema, const char *section,
                                         const char *name)
{
    char wanted[160];
    snprintf(wanted, sizeof wanted, "%s.%s", section, name);
    const tsr_config_key *best = NULL;
    size_t best_distance = SIZE_MAX;
    for (int i = 0; i < schema->count; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", schema->keys[i].section, schema->keys[i].name);
        size_t d = edit_distance(wanted, full);
        /* The same name in another section is the most likely slip. */
        if (!strcmp(schema->keys[i].name, name)) d = d < 2 ? d : 2;
        if (d < best_distance) {
            best_distance = d;
            best = &schema->keys[i];
        }
    }
    return best;
}

static void *field(const tsr_config_key *key, void *target) { return (char *)target + key->offset; }

static const void *cfield(const tsr_config_key *key, const void *target)
{
    return (const char *)target + key->offset;
}

static void list_choices(const tsr_config_key *key, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; key->choices[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", key->choices[i]);
}

tsr_status tsr_config_set(const tsr_config_schema *schema, void *target, const char *section,
                          const char *name, const char *value, const char *origin, tsr_error *err)
{
    const tsr_config_key *key = tsr_config_find(schema, section, name);
    if (!key) {
        const tsr_config_key *near = nearest_key(schema, section, name);
        char hint[200] = "";
        if (near) snprintf(hint, sizeof hint, " (did you mean %s.%s?)", near->section, near->name);
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "%s: unknown key %s.%s%s", origin,
                             section, name, hint);
    }
    char *end = NULL;
    switch (key->type) {
    case TSR_CONFIG_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "%s: %s.%s = '%s' is not an integer", origin, section, name, value);
        if ((double)v < key->min || (double)v > key->max)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "%s: %s.%s = %lld is outside [%.17g, %.17g]", origin, section, name,
                                 v, key->min, key->max);
        *(int64_t *)field(key, target) = v;
        return TSR_STATUS_OK;
    }
    case TSR_CONFIG_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "%s: %s.%s = '%s' is not a finite number", origin, section, name,
                                 value);
        if (v < key->min || v > key->max)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "%s: %s.%s = %g is outside [%g, %g]", origin, section, name, v,
                                 key->min, key->max);
        *(double *)field(key, target) = v;
        return TSR_STATUS_OK;
    }
    case TSR_CONFIG_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(value, yes[i])) {
                *(bool *)field(key, target) = true;
                return TSR_STATUS_OK;
            }
            if (!strcasecmp(value, no[i])) {
                *(bool *)field(key, target) = false;
                return TSR_STATUS_OK;
            }
        }
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: %s.%s = '%s' is not a boolean (true or false)", origin, section,
                             name, value);
    }
    case TSR_CONFIG_ENUM: {
        for (int i = 0; key->choices[i]; i++) {
            if (!strcmp(value, key->choices[i])) {
                *(int *)field(key, target) = i;
                return TSR_STATUS_OK;
            }
        }
        char choices[512];
        list_choices(key, choices, sizeof choices);
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: %s.%s = '%s' is not one of: %s", origin, section, name, value,
                             choices);
    }
    case TSR_CONFIG_STRING:
        if (strlen(value) >= TSR_CONFIG_STRING_BYTES)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "%s: %s.%s is longer than %d characters", origin, section, name,
                                 TSR_CONFIG_STRING_BYTES - 1);
        snprintf(field(key, target), TSR_CONFIG_STRING_BYTES, "%s", value);
        return TSR_STATUS_OK;
    }
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "%s: %s.%s has an unknown type", origin,
                         section, name);
}

void tsr_config_set_defaults(const tsr_config_schema *schema, void *target)
{
    for (int i = 0; i < schema->count; i++) {
        const tsr_config_key *k = &schema->keys[i];
        tsr_error err;
        tsr_status s = tsr_config_set(schema, target, k->section, k->name, k->default_value,
                                      "default", &err);
        TSR_ASSERT_MSG(s == TSR_STATUS_OK, "bad schema default: %s", err.message);
    }
}

/* Debian's inih is built without line numbers in its callback, so the file is
 * fed through a reader that counts lines: an entry's callback runs right
 * after its line was read. */
typedef struct load_state {
    const tsr_config_schema *schema;
    void *target;
    const char *path;
    FILE *file;
    int line;      /* lines read so far */
    int fail_line; /* line of the entry that failed, or 0 */
    tsr_error *err;
    tsr_status status;
} load_state;

static char *read_line(char *str, int num, void *stream)
{
    load_state *st = stream;
    char *r = fgets(str, num, st->file);
    if (r) st->line++;
    return r;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    load_state *st = user;
    char origin[320];
    snprintf(origin, sizeof origin, "%s:%d", st->path, st->line);
    st->fail_line = st->line;
    if (!section[0]) {
        st->status = tsr_error_set(st->err, TSR_STATUS_INVALID_ARGUMENT,
                                   "%s: key '%s' is outside any [section]", origin, name);
        return 0;
    }
    st->status = tsr_config_set(st->schema, st->target, section, name, value, origin, st->err);
    if (st->status == TSR_STATUS_OK) st->fail_line = 0;
    return st->status == TSR_STATUS_OK;
}

tsr_status tsr_config_load_file(const tsr_config_schema *schema, void *target, const char *path,
                                tsr_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open config file %s: %s", path,
                             strerror(errno));
    load_state st = {schema, target, path, f, 0, 0, err, TSR_STATUS_OK};
    int line = ini_parse_stream(read_line, &st, on_ini_entry, &st);
    fclose(f);
    /* inih reports its first error line; report whichever error came first. */
    if (line > 0 && (st.status == TSR_STATUS_OK || line < st.fail_line))
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "%s:%d: not INI syntax (expected [section] or key = value)", path, line);
    if (st.status != TSR_STATUS_OK) return st.status;
    if (line < 0) return tsr_error_set(err, TSR_STATUS_IO, "cannot read config file %s", path);
    return TSR_STATUS_OK;
}

tsr_status tsr_config_apply_override(const tsr_config_schema *schema, void *target,
                                     const char *assignment, tsr_error *err)
{
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "--set '%s': expected section.key=value", assignment);
    char section[64], name[96];
    size_t ls = (size_t)(dot - assignment), ln = (size_t)(eq - dot - 1);
    if (ls >= sizeof section || ln >= sizeof name)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "--set '%s': key too long",
                             assignment);
    memcpy(section, assignment, ls);
    section[ls] = '\0';
    memcpy(name, dot + 1, ln);
    name[ln] = '\0';
    return tsr_config_set(schema, target, section, name, eq + 1, "--set", err);
}

const char *tsr_config_format_value(const tsr_config_key *key, const void *target, char *buf,
                                    size_t size)
{
    switch (key->type) {
    case TSR_CONFIG_INT: snprintf(buf, size, "%lld", (long long)*(const int64_t *)cfield(key, target)); break;
    case TSR_CONFIG_DOUBLE: snprintf(buf, size, "%.17g", *(const double *)cfield(key, target)); break;
    case TSR_CONFIG_BOOL: snprintf(buf, size, "%s", *(const bool *)cfield(key, target) ? "true" : "false"); break;
    case TSR_CONFIG_ENUM: snprintf(buf, size, "%s", key->choices[*(const int *)cfield(key, target)]); break;
    case TSR_CONFIG_STRING: snprintf(buf, size, "%s", (const char *)cfield(key, target)); break;
    }
    return buf;
}

void tsr_config_write(const tsr_config_schema *schema, const void *target, FILE *out)
{
    const char *section = NULL;
    for (int i = 0; i < schema->count; i++) {
        const tsr_config_key *k = &schema->keys[i];
        if (!section || strcmp(section, k->section)) {
            fprintf(out, "%s[%s]\n", section ? "\n" : "", k->section);
            section = k->section;
        }
        char value[TSR_CONFIG_STRING_BYTES + 32];
        fprintf(out, "%s = %s\n", k->name, tsr_config_format_value(k, target, value, sizeof value));
    }
}
