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
#include <sys/stat.h>

const tsr_config_key *tsr_config_find(const tsr_config_schema *schema, const char *section,
                                      const char *name)
{
    for (int i = 0; i < schema->count; i++)
        if (!strcmp(schema->keys[i].section, section) && !strcmp(schema->keys[i].name, name))
            return &schema->keys[i];
    return NULL;
}

size_t tsr_config_edit_distance(const char *a, const char *b)
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
                                         const char *name, size_t *distance)
{
    char wanted[160];
    snprintf(wanted, sizeof wanted, "%s.%s", section, name);
    const tsr_config_key *best = NULL;
    size_t best_distance = SIZE_MAX;
    for (int i = 0; i < schema->count; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s.%s", schema->keys[i].section, schema->keys[i].name);
        size_t d = tsr_config_edit_distance(wanted, full);
        /* The same name in another section is the most likely slip. */
        if (!strcmp(schema->keys[i].name, name)) d = d < 2 ? d : 2;
        if (d < best_distance) {
            best_distance = d;
            best = &schema->keys[i];
        }
    }
    *distance = best_distance;
    return best;
}

/* "env, network, ..." : the schema's sections in order. */
static void list_sections(const tsr_config_schema *schema, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < schema->count && used < size; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(schema->keys[j].section, schema->keys[i].section);
        if (!seen)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
                                     schema->keys[i].section);
    }
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
        size_t distance;
        const tsr_config_key *near = nearest_key(schema, section, name, &distance);
        bool section_known = false;
        for (int i = 0; i < schema->count && !section_known; i++)
            section_known = !strcmp(schema->keys[i].section, section);
        /* A suggestion only when it is near: a third of the name's length
         * (at least 2 edits) away at most. */
        size_t length = strlen(section) + 1 + strlen(name);
        char hint[400] = "";
        if (near && distance <= (length / 3 > 2 ? length / 3 : 2)) {
            snprintf(hint, sizeof hint, " (did you mean %s.%s?)", near->section, near->name);
        } else if (!section_known) {
            char sections[256];
            list_sections(schema, sections, sizeof sections);
            snprintf(hint, sizeof hint, " (there is no section [%s]; sections: %s)", section,
                     sections);
        } else {
            snprintf(hint, sizeof hint, " (tessera keys %s lists that section's keys)", section);
        }
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
                                 "%s: %s.%s = %lld is outside [%.0f, %.0f]", origin, section, name,
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
    bool indented; /* the last line read starts with a space or a tab */
    int *set_at;   /* per schema key: the line of this file that set it, or 0 */
} load_state;

tsr_status tsr_config_fopen(const char *path, const char *what, FILE **out, tsr_error *err)
{
    *out = fopen(path, "r");
    if (!*out)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open %s %s: %s", what, path,
                             strerror(errno));
    /* fopen succeeds on a directory, whose reads then fail like an empty
     * file's: that would load as the defaults, silently. */
    struct stat sb;
    if (fstat(fileno(*out), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(*out);
        *out = NULL;
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "%s is a directory, not a %s",
                             path, what);
    }
    return TSR_STATUS_OK;
}

static load_state load_state_make(const tsr_config_schema *schema, void *target, const char *path,
                                  FILE *file, tsr_error *err)
{
    return (load_state){.schema = schema,
                        .target = target,
                        .path = path,
                        .file = file,
                        .err = err,
                        .status = TSR_STATUS_OK,
                        .set_at = tsr_calloc((size_t)schema->count + 1, sizeof(int))};
}

static char *read_line(char *str, int num, void *stream)
{
    load_state *st = stream;
    char *r = fgets(str, num, st->file);
    if (r) {
        st->line++;
        st->indented = r[0] == ' ' || r[0] == '\t';
    }
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
    /* inih reads an indented line after a key as more of that key's value,
     * and hands it over as the same key again: `iterations = 1` then an
     * indented `2` would quietly mean 2. A config value fits on one line, so
     * an indented line is refused, whatever inih made of it. */
    if (st->indented) {
        st->status = tsr_error_set(st->err, TSR_STATUS_FORMAT,
                                   "%s: indented line, which inih reads as %s.%s = '%s' (more "
                                   "of the key above, if there is one); config lines start at "
                                   "the line's start, and a value fits on one line",
                                   origin, section, name, value);
        return 0;
    }
    const tsr_config_key *key = tsr_config_find(st->schema, section, name);
    int index = key ? (int)(key - st->schema->keys) : -1;
    if (key && st->set_at[index]) {
        st->status = tsr_error_set(st->err, TSR_STATUS_INVALID_ARGUMENT,
                                   "%s: %s.%s is set a second time in this file (first at line %d)",
                                   origin, section, name, st->set_at[index]);
        return 0;
    }
    st->status = tsr_config_set(st->schema, st->target, section, name, value, origin, st->err);
    if (st->status != TSR_STATUS_OK) return 0;
    st->fail_line = 0;
    if (key) st->set_at[index] = st->line;
    return 1;
}

tsr_status tsr_config_load_file(const tsr_config_schema *schema, void *target, const char *path,
                                tsr_error *err)
{
    FILE *f;
    tsr_status st = tsr_config_fopen(path, "config file", &f, err);
    if (st != TSR_STATUS_OK) return st;
    st = tsr_config_load_stream(schema, target, f, path, err);
    fclose(f);
    return st;
}

tsr_status tsr_config_load_stream(const tsr_config_schema *schema, void *target, FILE *f,
                                  const char *path, tsr_error *err)
{
    load_state st = load_state_make(schema, target, path, f, err);
    int line = ini_parse_stream(read_line, &st, on_ini_entry, &st);
    tsr_free(st.set_at);
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

/* The shortest form that reads back as exactly `v` ("0.9", not
 * "0.90000000000000002"), positional between 1e-4 and 1e15 ("10", not
 * "1e+01"; "250000", not "2.5e+05"), with an exponent outside (6.25e-05). */
static void format_double(double v, char *buf, size_t size)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "%g", v);
        return;
    }
    bool positional = v == 0 || (fabs(v) >= 1e-4 && fabs(v) < 1e15);
    for (int digits = positional ? 0 : 1; digits <= 17; digits++) {
        if (positional) snprintf(buf, size, "%.*f", digits, v);
        else snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
    snprintf(buf, size, "%.17g", v);
}

const char *tsr_config_format_value(const tsr_config_key *key, const void *target, char *buf,
                                    size_t size)
{
    switch (key->type) {
    case TSR_CONFIG_INT: snprintf(buf, size, "%lld", (long long)*(const int64_t *)cfield(key, target)); break;
    case TSR_CONFIG_DOUBLE: format_double(*(const double *)cfield(key, target), buf, size); break;
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

/* ---- layered files: [config] base = ... ----------------------------------- */

/* The bases named by one file, collected before its own keys are applied. */
typedef struct base_list {
    const char *path;
    FILE *file;
    int line;
    char names[TSR_CONFIG_MAX_BASES][TSR_CONFIG_STRING_BYTES];
    int lines[TSR_CONFIG_MAX_BASES];
    int count;
    tsr_error *err;
    tsr_status status;
} base_list;

static char *read_base_line(char *str, int num, void *stream)
{
    base_list *b = stream;
    char *r = fgets(str, num, b->file);
    if (r) b->line++;
    return r;
}

static int on_base_entry(void *user, const char *section, const char *name, const char *value)
{
    base_list *b = user;
    if (strcmp(section, "config")) return 1;
    if (strcmp(name, "base")) {
        b->status = tsr_error_set(b->err, TSR_STATUS_INVALID_ARGUMENT,
                                  "%s:%d: unknown key config.%s (the [config] section takes only "
                                  "base = FILE[, FILE...])",
                                  b->path, b->line, name);
        return 0;
    }
    /* A comma-separated list, applied in order. */
    const char *p = value;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) last--;
        size_t len = (size_t)(last - p);
        if (b->count == TSR_CONFIG_MAX_BASES || len >= TSR_CONFIG_STRING_BYTES) {
            b->status = tsr_error_set(b->err, TSR_STATUS_INVALID_ARGUMENT,
                                      "%s:%d: config.base names more than %d files or a path "
                                      "longer than %d characters",
                                      b->path, b->line, TSR_CONFIG_MAX_BASES,
                                      TSR_CONFIG_STRING_BYTES - 1);
            return 0;
        }
        memcpy(b->names[b->count], p, len);
        b->names[b->count][len] = '\0';
        b->lines[b->count++] = b->line;
        p = end;
    }
    return 1;
}

/* The [config] section is read in the first pass; the second skips it. */
static int on_layered_entry(void *user, const char *section, const char *name, const char *value)
{
    if (!strcmp(section, "config")) return 1;
    return on_ini_entry(user, section, name, value);
}

/* Appends `text` to buf (size bytes, `*used` taken), truncating quietly. */
static void append_text(char *buf, size_t size, size_t *used, const char *text)
{
    size_t len = strlen(text);
    if (*used + 1 >= size) return;
    if (len > size - 1 - *used) len = size - 1 - *used;
    memcpy(buf + *used, text, len);
    *used += len;
    buf[*used] = '\0';
}

/* `chain` holds the canonical paths of the files being loaded, outermost first. */
static tsr_status load_layered(const tsr_config_schema *schema, void *target, const char *path,
                               char (*chain)[4096], int depth, tsr_error *err)
{
    char canonical[4096];
    if (!realpath(path, canonical))
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open config file %s: %s", path,
                             strerror(errno));
    for (int i = 0; i < depth; i++) {
        if (strcmp(chain[i], canonical)) continue;
        char cycle[TSR_ERROR_MESSAGE_SIZE] = "";
        size_t used = 0;
        for (int j = i; j < depth; j++) {
            append_text(cycle, sizeof cycle, &used, chain[j]);
            append_text(cycle, sizeof cycle, &used, " -> ");
        }
        append_text(cycle, sizeof cycle, &used, canonical);
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "config base cycle: %s", cycle);
    }
    if (depth > TSR_CONFIG_MAX_BASE_DEPTH)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: config bases are nested more than %d levels deep", path,
                             TSR_CONFIG_MAX_BASE_DEPTH);
    memcpy(chain[depth], canonical, sizeof canonical);

    base_list *bases = tsr_calloc(1, sizeof *bases);
    bases->path = path;
    bases->err = err;
    bases->status = TSR_STATUS_OK;
    tsr_status opened = tsr_config_fopen(path, "config file", &bases->file, err);
    if (opened != TSR_STATUS_OK) {
        tsr_free(bases);
        return opened;
    }
    int line = ini_parse_stream(read_base_line, bases, on_base_entry, bases);
    fclose(bases->file);
    tsr_status st = bases->status;
    if (st == TSR_STATUS_OK && line > 0)
        st = tsr_error_set(err, TSR_STATUS_FORMAT,
                           "%s:%d: not INI syntax (expected [section] or key = value)", path, line);
    /* Bases are relative to the directory of the file that names them. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    for (int i = 0; st == TSR_STATUS_OK && i < bases->count; i++) {
        char base_path[4096 + TSR_CONFIG_STRING_BYTES] = "";
        size_t used = 0;
        if (bases->names[i][0] != '/' && dir_len < 4096) {
            memcpy(base_path, path, dir_len);
            used = dir_len;
            base_path[used] = '\0';
        }
        append_text(base_path, sizeof base_path, &used, bases->names[i]);
        FILE *probe = fopen(base_path, "r");
        if (!probe) {
            st = tsr_error_set(err, TSR_STATUS_IO, "%s:%d: config.base file %s (%s) cannot be "
                               "opened: %s", path, bases->lines[i], bases->names[i], base_path,
                               strerror(errno));
            break;
        }
        fclose(probe);
        st = load_layered(schema, target, base_path, chain, depth + 1, err);
    }
    tsr_free(bases);
    if (st != TSR_STATUS_OK) return st;

    FILE *f;
    st = tsr_config_fopen(path, "config file", &f, err);
    if (st != TSR_STATUS_OK) return st;
    load_state ls = load_state_make(schema, target, path, f, err);
    line = ini_parse_stream(read_line, &ls, on_layered_entry, &ls);
    fclose(f);
    tsr_free(ls.set_at);
    if (line > 0 && (ls.status == TSR_STATUS_OK || line < ls.fail_line))
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "%s:%d: not INI syntax (expected [section] or key = value)", path, line);
    if (ls.status != TSR_STATUS_OK) return ls.status;
    if (line < 0) return tsr_error_set(err, TSR_STATUS_IO, "cannot read config file %s", path);
    return TSR_STATUS_OK;
}

tsr_status tsr_config_load_file_layered(const tsr_config_schema *schema, void *target,
                                        const char *path, tsr_error *err)
{
    char (*chain)[4096] = tsr_calloc(TSR_CONFIG_MAX_BASE_DEPTH + 1, sizeof *chain);
    tsr_status st = load_layered(schema, target, path, chain, 0, err);
    tsr_free(chain);
    return st;
}
