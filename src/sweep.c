/* sweep.c — sweep files: parsing (inih), grid expansion, run names, and where
 * each run stands in its directory. */
#include "tessera/sweep.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== small owned strings and arrays ===================================== */

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tsr_malloc(n);
    memcpy(d, s, n);
    return d;
}

/* printf into a new string. */
static char *format_string(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_string(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    TSR_ASSERT(n >= 0);
    char *s = tsr_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void push_string(char ***items, int *count, char *owned)
{
    *items = tsr_realloc(*items, (size_t)(*count + 1) * sizeof **items);
    (*items)[(*count)++] = owned;
}

static void free_strings(char **items, int count)
{
    for (int i = 0; i < count; i++) tsr_free(items[i]);
    tsr_free(items);
}

void tsr_sweep_free(tsr_sweep *sweep)
{
    if (!sweep) return;
    tsr_free(sweep->path);
    tsr_free(sweep->base);
    tsr_free(sweep->out_dir);
    free_strings(sweep->games, sweep->num_games);
    for (int i = 0; i < sweep->num_axes; i++) {
        tsr_free(sweep->axes[i].key);
        tsr_free(sweep->axes[i].label);
        free_strings(sweep->axes[i].values, sweep->axes[i].num_values);
    }
    tsr_free(sweep->axes);
    free_strings(sweep->fixed, sweep->num_fixed);
    for (int i = 0; i < sweep->num_variants; i++) {
        tsr_free(sweep->variants[i].name);
        free_strings(sweep->variants[i].overrides, sweep->variants[i].num_overrides);
    }
    tsr_free(sweep->variants);
    for (int64_t i = 0; i < sweep->num_runs; i++) {
        tsr_free(sweep->runs[i].name);
        tsr_free(sweep->runs[i].dir);
        free_strings(sweep->runs[i].overrides, sweep->runs[i].num_overrides);
    }
    tsr_free(sweep->runs);
    tsr_free(sweep);
}

/* ==== parsing ============================================================= */

static const char *const sweep_keys[] = {"base", "games", "seeds", "threads", "out"};
enum { NUM_SWEEP_KEYS = sizeof sweep_keys / sizeof sweep_keys[0] };

/* Keys the [sweep] section owns: no axis, [set] or variant may set them. */
static const struct {
    const char *key, *instead;
} owned_keys[] = {
    {"env.name", "games = ..."},
    {"run.seed", "seeds = N"},
    {"run.threads", "threads = T"},
};

typedef struct parse_state {
    tsr_sweep *sweep;
    const tsr_run_schema *schema;
    tsr_run_config scratch; /* values are checked by parsing them into it */
    FILE *file;
    int line;               /* lines read so far */
    bool too_long;          /* a line did not fit inih's buffer */
    bool seen[NUM_SWEEP_KEYS];
    int base_line, games_line;
    char *base_given, *out_given;
    tsr_error *err;
    tsr_status status;
} parse_state;

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '+' || c == '-';
}

/* "variant NAME" -> NAME (leading and trailing blanks dropped) in buf, or
 * false when `section` is not a variant section. */
static bool variant_name(const char *section, char *buf, size_t size)
{
    if (strncmp(section, "variant", 7) || (section[7] != ' ' && section[7] != '\t')) return false;
    const char *p = section + 7;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    if (len >= size) len = size - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return true;
}

static int find_variant(const tsr_sweep *sweep, const char *name)
{
    for (int i = 0; i < sweep->num_variants; i++)
        if (!strcmp(sweep->variants[i].name, name)) return i;
    return -1;
}

static tsr_status fail(parse_state *st, tsr_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tsr_status fail(parse_state *st, tsr_status status, const char *fmt, ...)
{
    char message[TSR_ERROR_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    st->status = tsr_error_set(st->err, status, "%s:%d: %s", st->sweep->path, st->line, message);
    return st->status;
}

/* The index of variant `name`, added if new; -1 (and st->status set) when
 * the name cannot name a directory. */
static int add_variant(parse_state *st, const char *name)
{
    int found = find_variant(st->sweep, name);
    if (found >= 0) return found;
    bool valid = name[0] != '\0' && name[0] != '.' && name[0] != '-';
    for (const char *c = name; *c; c++) valid = valid && (is_name_char(*c) || *c == '=');
    if (!valid) {
        fail(st, TSR_STATUS_INVALID_ARGUMENT,
             "variant name '%s' may hold only letters, digits and . _ + - = (and may not start "
             "with . or -): it names run directories", name);
        return -1;
    }
    tsr_sweep *s = st->sweep;
    s->variants = tsr_realloc(s->variants, (size_t)(s->num_variants + 1) * sizeof *s->variants);
    s->variants[s->num_variants] = (tsr_sweep_variant){dup_string(name), NULL, 0};
    return s->num_variants++;
}

/* Registers [variant NAME] when its header is read, so that a variant with no
 * keys (the base unchanged) exists too: inih calls back only for keys. */
static void note_section_header(parse_state *st, const char *line)
{
    while (*line == ' ' || *line == '\t') line++;
    if (*line != '[' || st->status != TSR_STATUS_OK) return;
    const char *end = strchr(line, ']');
    if (!end) return;
    char section[256], name[256];
    size_t len = (size_t)(end - line - 1);
    if (len >= sizeof section) return; /* inih reports the line */
    memcpy(section, line + 1, len);
    section[len] = '\0';
    if (!variant_name(section, name, sizeof name)) return;
    if (find_variant(st->sweep, name) >= 0) {
        fail(st, TSR_STATUS_INVALID_ARGUMENT,
             "[variant %s] appears twice: give each variant one section", name);
        return;
    }
    add_variant(st, name);
}

/* inih reads lines through this, so errors can name the line. */
static char *read_line(char *str, int num, void *stream)
{
    parse_state *st = stream;
    char *r = fgets(str, num, st->file);
    if (!r) return NULL;
    size_t len = strlen(r);
    if (len == (size_t)num - 1 && r[len - 1] != '\n' && !feof(st->file)) {
        if (!st->too_long && st->status == TSR_STATUS_OK)
            st->status = tsr_error_set(st->err, TSR_STATUS_FORMAT,
                                       "%s:%d: line longer than %d characters; continue a list "
                                       "on indented lines below it",
                                       st->sweep->path, st->line + 1, num - 2);
        st->too_long = true;
        return NULL;
    }
    st->line++;
    note_section_header(st, r);
    return r;
}

/* inih strips an inline comment (" ; ...") from a key's line but not from
 * the continuation lines of a multi-line value: a list ends at one too. */
static bool at_comment(const char *p, const char *value)
{
    return *p == ';' && (p == value || p[-1] == ' ' || p[-1] == '\t');
}

/* Splits a comma-separated list; "quoted" items may hold commas. */
static tsr_status split_list(parse_state *st, const char *what, const char *value, char ***items,
                             int *count)
{
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        const char *start, *stop;
        if (*p == '"') {
            start = ++p;
            while (*p && *p != '"') p++;
            if (!*p) return fail(st, TSR_STATUS_FORMAT, "%s: unterminated quote", what);
            stop = p++;
            while (*p == ' ' || *p == '\t') p++;
            if (*p && *p != ',' && !at_comment(p, value))
                return fail(st, TSR_STATUS_FORMAT, "%s: expected ',' after a quoted value", what);
        } else {
            start = p;
            while (*p && *p != ',' && !at_comment(p, value)) p++;
            stop = p;
            while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t')) stop--;
        }
        if (stop == start)
            return fail(st, TSR_STATUS_FORMAT, "%s: empty value in the list '%s'", what, value);
        size_t len = (size_t)(stop - start);
        char *item = tsr_malloc(len + 1);
        memcpy(item, start, len);
        item[len] = '\0';
        push_string(items, count, item);
        if (*p != ',') return TSR_STATUS_OK;
        p++;
    }
}

/* Checks that "section.key" is a run config key settable from a sweep, and
 * splits it. */
static tsr_status check_run_key(parse_state *st, const char *where, const char *key,
                                char *section, size_t section_size, char *name, size_t name_size)
{
    const char *dot = strchr(key, '.');
    if (!dot) {
        char hint[160] = "";
        const tsr_config_schema *schema = &st->schema->schema;
        for (int i = 0; i < schema->count; i++)
            if (!strcmp(schema->keys[i].name, key)) {
                snprintf(hint, sizeof hint, " (did you mean %s.%s?)", schema->keys[i].section, key);
                break;
            }
        return fail(st, TSR_STATUS_INVALID_ARGUMENT,
                    "%s key '%s' needs its run config section: section.key%s", where, key, hint);
    }
    size_t ls = (size_t)(dot - key);
    if (ls >= section_size || strlen(dot + 1) >= name_size)
        return fail(st, TSR_STATUS_INVALID_ARGUMENT, "%s key '%s' is too long", where, key);
    memcpy(section, key, ls);
    section[ls] = '\0';
    snprintf(name, name_size, "%s", dot + 1);
    for (size_t i = 0; i < sizeof owned_keys / sizeof owned_keys[0]; i++)
        if (!strcmp(key, owned_keys[i].key))
            return fail(st, TSR_STATUS_INVALID_ARGUMENT,
                        "%s key %s is set by the [sweep] section: use %s there", where, key,
                        owned_keys[i].instead);
    return TSR_STATUS_OK;
}

/* Parses `value` into the scratch config, so an unknown key (with the
 * nearest one) or a bad value fails here with this file's line. */
static tsr_status check_run_value(parse_state *st, const char *section, const char *name,
                                  const char *value)
{
    char origin[4200];
    snprintf(origin, sizeof origin, "%s:%d", st->sweep->path, st->line);
    st->status = tsr_config_set(&st->schema->schema, &st->scratch, section, name, value, origin,
                                st->err);
    return st->status;
}

static bool has_override(char **overrides, int count, const char *key)
{
    size_t len = strlen(key);
    for (int i = 0; i < count; i++)
        if (!strncmp(overrides[i], key, len) && overrides[i][len] == '=') return true;
    return false;
}

static tsr_status on_sweep_key(parse_state *st, const char *name, const char *value)
{
    tsr_sweep *s = st->sweep;
    int k = 0;
    while (k < NUM_SWEEP_KEYS && strcmp(name, sweep_keys[k])) k++;
    if (k == NUM_SWEEP_KEYS) {
        const char *near = sweep_keys[0];
        size_t best = SIZE_MAX;
        for (int i = 0; i < NUM_SWEEP_KEYS; i++) {
            size_t d = tsr_config_edit_distance(name, sweep_keys[i]);
            if (d < best) {
                best = d;
                near = sweep_keys[i];
            }
        }
        return fail(st, TSR_STATUS_INVALID_ARGUMENT,
                    "unknown key sweep.%s (did you mean sweep.%s?); [sweep] takes base, games, "
                    "seeds, threads, out", name, near);
    }
    /* A repeated `games` continues the list (inih hands each indented
     * continuation line over as the same key again). */
    if (st->seen[k] && strcmp(name, "games"))
        return fail(st, TSR_STATUS_INVALID_ARGUMENT, "sweep.%s is given twice", name);
    st->seen[k] = true;
    if (!strcmp(name, "base")) {
        if (!value[0]) return fail(st, TSR_STATUS_INVALID_ARGUMENT, "sweep.base is empty");
        st->base_given = dup_string(value);
        st->base_line = st->line;
    } else if (!strcmp(name, "out")) {
        if (!value[0]) return fail(st, TSR_STATUS_INVALID_ARGUMENT, "sweep.out is empty");
        st->out_given = dup_string(value);
    } else if (!strcmp(name, "games")) {
        char **names = NULL;
        int count = 0;
        tsr_status status = split_list(st, "sweep.games", value, &names, &count);
        for (int i = 0; status == TSR_STATUS_OK && i < count; i++) {
            const char *full = NULL;
            for (int g = 0; g < TSR_ENV_GAME_COUNT && !full; g++) {
                const char *game = tsr_env_game_name((tsr_env_game)g);
                const char *slash = strrchr(game, '/');
                if (!strcmp(names[i], game) || (slash && !strcmp(names[i], slash + 1))) full = game;
            }
            if (!full) {
                char valid[512] = "";
                size_t used = 0;
                for (int g = 0; g < TSR_ENV_GAME_COUNT && used < sizeof valid; g++)
                    used += (size_t)snprintf(valid + used, sizeof valid - used, "%s%s",
                                             g ? ", " : "", tsr_env_game_name((tsr_env_game)g));
                status = fail(st, TSR_STATUS_INVALID_ARGUMENT,
                              "sweep.games: unknown game '%s'; valid: %s (or the part after "
                              "the '/')", names[i], valid);
                break;
            }
            for (int j = 0; j < s->num_games; j++)
                if (!strcmp(s->games[j], full))
                    status = fail(st, TSR_STATUS_INVALID_ARGUMENT,
                                  "sweep.games names %s twice", full);
            if (status == TSR_STATUS_OK) push_string(&s->games, &s->num_games, dup_string(full));
        }
        free_strings(names, count);
        st->games_line = st->line;
        return status;
    } else {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        const bool seeds = !strcmp(name, "seeds");
        const long long max = seeds ? 1000000 : 1024;
        if (errno || end == value || *end || v < 1 || v > max)
            return fail(st, TSR_STATUS_INVALID_ARGUMENT,
                        "sweep.%s = '%s' is not an integer in [1, %lld]", name, value, max);
        if (seeds) s->seeds = v;
        else s->threads = v;
    }
    return TSR_STATUS_OK;
}

static tsr_status on_axis(parse_state *st, const char *key, const char *value)
{
    tsr_sweep *s = st->sweep;
    char section[64], name[128];
    if (check_run_key(st, "axis", key, section, sizeof section, name, sizeof name)) return st->status;
    char what[256];
    snprintf(what, sizeof what, "axis %s", key);
    int a = 0;
    while (a < s->num_axes && strcmp(s->axes[a].key, key)) a++;
    if (a == s->num_axes) { /* new axis; a repeated key continues its list */
        s->axes = tsr_realloc(s->axes, (size_t)(s->num_axes + 1) * sizeof *s->axes);
        s->axes[s->num_axes++] = (tsr_sweep_axis){dup_string(key), NULL, NULL, 0};
    }
    tsr_sweep_axis *axis = &s->axes[a];
    int first = axis->num_values;
    if (split_list(st, what, value, &axis->values, &axis->num_values)) return st->status;
    /* Values compare as parsed: 0.9 and 0.90 are one value, twice. */
    const tsr_config_key *k = tsr_config_find(&st->schema->schema, section, name);
    for (int i = first; i < axis->num_values; i++) {
        if (check_run_value(st, section, name, axis->values[i])) return st->status;
        char value_i[TSR_CONFIG_STRING_BYTES + 32], value_j[TSR_CONFIG_STRING_BYTES + 32];
        tsr_config_format_value(k, &st->scratch, value_i, sizeof value_i);
        for (int j = 0; j < i; j++) {
            if (check_run_value(st, section, name, axis->values[j])) return st->status;
            tsr_config_format_value(k, &st->scratch, value_j, sizeof value_j);
            if (!strcmp(value_i, value_j))
                return fail(st, TSR_STATUS_INVALID_ARGUMENT, "axis %s lists %s twice ('%s' and '%s')",
                            key, value_i, axis->values[j], axis->values[i]);
        }
    }
    return TSR_STATUS_OK;
}

/* One "section.key = value" of [set] or of a variant. */
static tsr_status on_override(parse_state *st, const char *where, char ***overrides, int *count,
                              const char *key, const char *value)
{
    char section[64], name[128];
    if (check_run_key(st, where, key, section, sizeof section, name, sizeof name)) return st->status;
    if (check_run_value(st, section, name, value)) return st->status;
    if (has_override(*overrides, *count, key))
        return fail(st, TSR_STATUS_INVALID_ARGUMENT, "%s sets %s twice", where, key);
    push_string(overrides, count, format_string("%s=%s", key, value));
    return TSR_STATUS_OK;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    parse_state *st = user;
    if (st->status != TSR_STATUS_OK) return 0; /* only the first error is reported */
    tsr_sweep *s = st->sweep;
    char variant[256];
    if (!section[0])
        fail(st, TSR_STATUS_FORMAT, "key '%s' is outside any [section]", name);
    else if (!strcmp(section, "sweep"))
        on_sweep_key(st, name, value);
    else if (!strcmp(section, "axes"))
        on_axis(st, name, value);
    else if (!strcmp(section, "set"))
        on_override(st, "[set]", &s->fixed, &s->num_fixed, name, value);
    else if (variant_name(section, variant, sizeof variant)) {
        int v = add_variant(st, variant);
        if (v < 0) return 0;
        char where[300];
        snprintf(where, sizeof where, "[variant %s]", variant);
        on_override(st, where, &s->variants[v].overrides, &s->variants[v].num_overrides, name,
                    value);
    } else
        fail(st, TSR_STATUS_INVALID_ARGUMENT,
             "unknown section [%s]; a sweep file has [sweep], [axes], [set] and [variant NAME]",
             section);
    return st->status == TSR_STATUS_OK;
}

/* ==== expansion =========================================================== */

/* Appends `value` to a run name, keeping [A-Za-z0-9._+-], dropping blanks and
 * turning anything else into '_'. */
static void append_name_value(char *buf, size_t size, size_t *used, const char *value)
{
    for (const char *c = value; *c && *used + 1 < size; c++) {
        if (*c == ' ' || *c == '\t') continue;
        buf[(*used)++] = is_name_char(*c) ? *c : '_';
    }
    buf[*used] = '\0';
}

static void append_name_text(char *buf, size_t size, size_t *used, const char *text)
{
    int n = snprintf(buf + *used, size - *used, "%s", text);
    *used += (size_t)n < size - *used ? (size_t)n : size - *used - 1;
}

static int compare_names(const void *a, const void *b)
{
    const tsr_sweep_run *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Labels: the key's name, or section.name where two axes share a name. */
static void label_axes(tsr_sweep *s)
{
    for (int a = 0; a < s->num_axes; a++) {
        const char *name = strchr(s->axes[a].key, '.') + 1;
        bool shared = false;
        for (int b = 0; b < s->num_axes; b++)
            if (b != a && !strcmp(strchr(s->axes[b].key, '.') + 1, name)) shared = true;
        s->axes[a].label = dup_string(shared ? s->axes[a].key : name);
    }
}

static tsr_status check_conflicts(tsr_sweep *s, tsr_error *err)
{
    for (int a = 0; a < s->num_axes; a++) {
        const char *key = s->axes[a].key;
        if (has_override(s->fixed, s->num_fixed, key))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "%s: %s is both an axis and in [set]; keep one", s->path, key);
        for (int v = 0; v < s->num_variants; v++)
            if (has_override(s->variants[v].overrides, s->variants[v].num_overrides, key))
                return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                     "%s: %s is both an axis and set by [variant %s]; keep one",
                                     s->path, key, s->variants[v].name);
    }
    return TSR_STATUS_OK;
}

enum { MAX_RUNS = 1000000 };

static tsr_status count_runs(const tsr_sweep *s, int64_t *configs, tsr_error *err)
{
    double grid = s->num_variants ? s->num_variants : 1;
    for (int a = 0; a < s->num_axes; a++) grid *= s->axes[a].num_values;
    double runs = grid * (double)s->seeds * s->num_games;
    if (runs > MAX_RUNS)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: the grid has %.0f runs, more than %d", s->path, runs, MAX_RUNS);
    *configs = (int64_t)grid;
    return TSR_STATUS_OK;
}

static void expand_runs(tsr_sweep *s, int64_t configs)
{
    s->num_runs = s->seeds * s->num_games * configs;
    s->runs = tsr_calloc((size_t)s->num_runs, sizeof *s->runs);
    int *index = tsr_calloc((size_t)s->num_axes + 1, sizeof *index);
    int64_t r = 0;
    for (int64_t seed = 0; seed < s->seeds; seed++) {
        for (int g = 0; g < s->num_games; g++) {
            for (int64_t c = 0; c < configs; c++, r++) {
                /* c in mixed radix: variant slowest, then the axes in file order. */
                int64_t rest = c;
                for (int a = s->num_axes - 1; a >= 0; a--) {
                    index[a] = (int)(rest % s->axes[a].num_values);
                    rest /= s->axes[a].num_values;
                }
                tsr_sweep_run *run = &s->runs[r];
                run->variant = s->num_variants ? (int)rest : -1;
                run->seed = seed;
                run->game = s->games[g];

                char name[4096];
                size_t used = 0;
                name[0] = '\0';
                append_name_text(name, sizeof name, &used, strrchr(run->game, '/') + 1);
                if (run->variant >= 0) {
                    append_name_text(name, sizeof name, &used, "/");
                    append_name_text(name, sizeof name, &used, s->variants[run->variant].name);
                }
                for (int a = 0; a < s->num_axes; a++) {
                    append_name_text(name, sizeof name, &used, "/");
                    append_name_text(name, sizeof name, &used, s->axes[a].label);
                    append_name_text(name, sizeof name, &used, "=");
                    append_name_value(name, sizeof name, &used, s->axes[a].values[index[a]]);
                }
                char seed_part[48];
                snprintf(seed_part, sizeof seed_part, "/seed=%lld", (long long)seed);
                append_name_text(name, sizeof name, &used, seed_part);
                run->name = dup_string(name);
                run->dir = format_string("%s/%s", s->out_dir, name);

                for (int i = 0; i < s->num_fixed; i++)
                    push_string(&run->overrides, &run->num_overrides, dup_string(s->fixed[i]));
                if (run->variant >= 0) {
                    const tsr_sweep_variant *v = &s->variants[run->variant];
                    for (int i = 0; i < v->num_overrides; i++)
                        push_string(&run->overrides, &run->num_overrides,
                                    dup_string(v->overrides[i]));
                }
                for (int a = 0; a < s->num_axes; a++)
                    push_string(&run->overrides, &run->num_overrides,
                                format_string("%s=%s", s->axes[a].key,
                                              s->axes[a].values[index[a]]));
                push_string(&run->overrides, &run->num_overrides,
                            format_string("env.name=%s", run->game));
                push_string(&run->overrides, &run->num_overrides,
                            format_string("run.seed=%lld", (long long)seed));
                push_string(&run->overrides, &run->num_overrides,
                            format_string("run.threads=%lld", (long long)s->threads));
            }
        }
    }
    tsr_free(index);
}

static tsr_status check_unique_names(const tsr_sweep *s, tsr_error *err)
{
    const tsr_sweep_run **sorted = tsr_malloc((size_t)s->num_runs * sizeof *sorted);
    for (int64_t i = 0; i < s->num_runs; i++) sorted[i] = &s->runs[i];
    qsort(sorted, (size_t)s->num_runs, sizeof *sorted, compare_names);
    tsr_status st = TSR_STATUS_OK;
    for (int64_t i = 1; i < s->num_runs && st == TSR_STATUS_OK; i++)
        if (!strcmp(sorted[i - 1]->name, sorted[i]->name))
            st = tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                               "%s: two runs would both be named %s: axis values that differ "
                               "only in characters run names leave out", s->path, sorted[i]->name);
    tsr_free(sorted);
    return st;
}

/* ==== loading ============================================================= */

/* "configs/sweeps/smoke.ini" -> "smoke" */
static char *file_stem(const char *path)
{
    const char *file = strrchr(path, '/');
    file = file ? file + 1 : path;
    const char *dot = strrchr(file, '.');
    size_t len = dot && dot != file ? (size_t)(dot - file) : strlen(file);
    char *stem = tsr_malloc(len + 1);
    memcpy(stem, file, len);
    stem[len] = '\0';
    return stem;
}

static tsr_status parse_file(parse_state *st, const char *path, tsr_error *err)
{
    tsr_status opened = tsr_config_fopen(path, "sweep file", &st->file, err);
    if (opened != TSR_STATUS_OK) return opened;
    int line = ini_parse_stream(read_line, st, on_entry, st);
    fclose(st->file);
    if (st->status != TSR_STATUS_OK) return st->status;
    if (line > 0)
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "%s:%d: not INI syntax (expected [section] or key = value)", path,
                             line);
    if (line < 0) return tsr_error_set(err, TSR_STATUS_IO, "cannot read sweep file %s", path);
    return TSR_STATUS_OK;
}

/* Fills in the base, out directory and default games once the file is read. */
static tsr_status resolve(parse_state *st, const char *path, const char *out_dir, tsr_error *err)
{
    tsr_sweep *s = st->sweep;
    if (!st->base_given)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s: the [sweep] section needs base = RUN_CONFIG (relative to the "
                             "sweep file)", path);
    const char *slash = strrchr(path, '/');
    if (st->base_given[0] == '/' || !slash)
        s->base = dup_string(st->base_given);
    else
        s->base = format_string("%.*s/%s", (int)(slash - path), path, st->base_given);
    if (access(s->base, R_OK) != 0)
        return tsr_error_set(err, TSR_STATUS_IO, "%s:%d: sweep.base %s (%s) cannot be read: %s",
                             path, st->base_line, st->base_given, s->base, strerror(errno));
    if (out_dir) s->out_dir = dup_string(out_dir);
    else if (st->out_given) s->out_dir = dup_string(st->out_given);
    else {
        char *stem = file_stem(path);
        s->out_dir = format_string("runs/sweeps/%s", stem);
        tsr_free(stem);
    }
    size_t len = strlen(s->out_dir);
    while (len > 1 && s->out_dir[len - 1] == '/') s->out_dir[--len] = '\0';

    if (!s->num_games) { /* the base's own game */
        tsr_run_config_defaults(st->schema, &st->scratch);
        tsr_error base_err;
        if (tsr_config_load_file_layered(&st->schema->schema, &st->scratch, s->base, &base_err))
            return tsr_error_set(err, base_err.status, "%s: base: %s", path, base_err.message);
        tsr_env_game game;
        if (tsr_env_find_game(st->scratch.env.name, &game, &base_err))
            return tsr_error_set(err, base_err.status, "%s: base %s: %s", path, s->base,
                                 base_err.message);
        push_string(&s->games, &s->num_games, dup_string(tsr_env_game_name(game)));
    }
    for (int a = 0; a < s->num_axes; a++)
        TSR_ASSERT(s->axes[a].num_values > 0); /* split_list refuses empty lists */
    return TSR_STATUS_OK;
}

tsr_status tsr_sweep_run_config(const tsr_sweep *sweep, int64_t run, const tsr_run_schema *schema,
                                tsr_run_config *cfg, tsr_error *err)
{
    TSR_ASSERT_MSG(run >= 0 && run < sweep->num_runs, "run %lld of %lld", (long long)run,
                   (long long)sweep->num_runs);
    const tsr_sweep_run *r = &sweep->runs[run];
    return tsr_run_config_load(schema, cfg, sweep->base, r->overrides, r->num_overrides, err);
}

tsr_status tsr_sweep_load(tsr_sweep **out, const char *path, const char *out_dir, tsr_error *err)
{
    *out = NULL;
    tsr_sweep *s = tsr_calloc(1, sizeof *s);
    s->path = dup_string(path);
    s->seeds = 1;
    s->threads = 1;
    tsr_run_schema *schema = tsr_malloc(sizeof *schema);
    tsr_run_schema_init(schema);
    parse_state *st = tsr_calloc(1, sizeof *st);
    st->sweep = s;
    st->schema = schema;
    st->err = err;
    tsr_run_config_defaults(schema, &st->scratch);

    tsr_status status = parse_file(st, path, err);
    if (status == TSR_STATUS_OK) status = resolve(st, path, out_dir, err);
    if (status == TSR_STATUS_OK) status = check_conflicts(s, err);
    if (status == TSR_STATUS_OK) {
        int64_t configs = 0;
        status = count_runs(s, &configs, err);
        if (status == TSR_STATUS_OK) {
            label_axes(s);
            expand_runs(s, configs);
            status = check_unique_names(s, err);
        }
    }
    /* Every run's config must load before any run starts. */
    for (int64_t r = 0; status == TSR_STATUS_OK && r < s->num_runs; r++) {
        tsr_error run_err;
        if (tsr_sweep_run_config(s, r, schema, &st->scratch, &run_err))
            status = tsr_error_set(err, run_err.status, "%s: run %s: %s", path, s->runs[r].name,
                                   run_err.message);
    }
    tsr_free(st->base_given);
    tsr_free(st->out_given);
    tsr_free(st);
    tsr_free(schema);
    if (status != TSR_STATUS_OK) {
        tsr_sweep_free(s);
        return status;
    }
    *out = s;
    return TSR_STATUS_OK;
}

/* ==== run directories ===================================================== */

tsr_status tsr_run_dir_last_iteration(const char *run_dir, int64_t *iteration, tsr_error *err)
{
    *iteration = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return TSR_STATUS_OK;
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open %s: %s", path, strerror(errno));
    }
    char *line = NULL, *last = NULL;
    size_t capacity = 0;
    ssize_t len;
    int number = 0, last_number = 0;
    while ((len = getline(&line, &capacity, f)) > 0) {
        number++;
        /* The header, and a last row cut short (no newline yet), are not rows. */
        if (number == 1 || line[len - 1] != '\n' || len == 1) continue;
        tsr_free(last);
        last = dup_string(line);
        last_number = number;
    }
    free(line); /* getline's buffer comes from malloc */
    fclose(f);
    tsr_status st = TSR_STATUS_OK;
    if (last) {
        char *end;
        errno = 0;
        long long v = strtoll(last, &end, 10);
        if (errno || end == last || (*end != ',' && *end != '\n') || v < 0)
            st = tsr_error_set(err, TSR_STATUS_FORMAT,
                               "%s:%d: the row does not start with an iteration number", path,
                               last_number);
        else
            *iteration = v;
    }
    tsr_free(last);
    return st;
}

tsr_status tsr_sweep_run_state_get(const tsr_sweep *sweep, int64_t run,
                                   const tsr_run_schema *schema, tsr_sweep_run_state *state,
                                   tsr_error *err)
{
    const tsr_sweep_run *r = &sweep->runs[run];
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", r->dir);
    *state = TSR_SWEEP_RUN_NEW;
    if (access(path, F_OK) != 0) {
        if (errno == ENOENT) return TSR_STATUS_OK;
        return tsr_error_set(err, TSR_STATUS_IO, "cannot access %s: %s", path, strerror(errno));
    }
    tsr_run_config *stored = tsr_malloc(2 * sizeof *stored), *planned = stored + 1;
    tsr_error sub;
    tsr_status st = tsr_run_config_load(schema, stored, path, NULL, 0, &sub);
    if (st != TSR_STATUS_OK)
        st = tsr_error_set(err, st, "run %s: %s", r->name, sub.message);
    if (st == TSR_STATUS_OK) {
        st = tsr_sweep_run_config(sweep, run, schema, planned, &sub);
        if (st != TSR_STATUS_OK) st = tsr_error_set(err, st, "run %s: %s", r->name, sub.message);
    }
    /* run.threads may change between invocations (it is part of the plan, not
     * of the results' meaning); any other difference means the directory holds
     * another experiment. */
    for (int i = 0; st == TSR_STATUS_OK && i < schema->schema.count; i++) {
        const tsr_config_key *key = &schema->schema.keys[i];
        if (!strcmp(key->section, "run") && !strcmp(key->name, "threads")) continue;
        char a[TSR_CONFIG_STRING_BYTES + 32], b[TSR_CONFIG_STRING_BYTES + 32];
        tsr_config_format_value(key, stored, a, sizeof a);
        tsr_config_format_value(key, planned, b, sizeof b);
        if (strcmp(a, b))
            st = tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                               "%s has %s.%s = %s but the sweep %s gives %s: the directory holds "
                               "another experiment (restore the sweep file, or move the run "
                               "directory away)",
                               path, key->section, key->name, a, sweep->path, b);
    }
    /* `tessera train` writes a row once its iteration is complete (an
     * iteration cut short by Ctrl-C is printed, not written), then its
     * checkpoint. A run killed while saving its final checkpoint has its last
     * row and the checkpoint's temporary file, without the checkpoint: it is
     * unfinished (a resume redoes the last iteration and saves). Finished runs
     * whose checkpoints were deleted to save disk stay finished. */
    int64_t last = 0;
    if (st == TSR_STATUS_OK) st = tsr_run_dir_last_iteration(r->dir, &last, err);
    if (st == TSR_STATUS_OK) {
        char final[4400], cut[4500];
        tsr_checkpoint_path(r->dir, stored->run.iterations, final, sizeof final);
        snprintf(cut, sizeof cut, "%s.tmp", final);
        bool save_cut = access(cut, F_OK) == 0 && access(final, F_OK) != 0;
        *state = last >= stored->run.iterations && !save_cut ? TSR_SWEEP_RUN_FINISHED
                                                             : TSR_SWEEP_RUN_UNFINISHED;
    }
    tsr_free(stored);
    return st;
}
