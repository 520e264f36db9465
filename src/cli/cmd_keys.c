/* cmd_keys.c — `tessera keys [SECTION]`: every key of a run config with its
 * default, its allowed values and what it does, read from the run schema (so
 * it cannot drift from what `tessera train` accepts). */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

static int usage(FILE *out)
{
    fprintf(out, "usage: tessera keys [SECTION]\n"
                    "  every run-config key: default, allowed values, meaning (all sections, or "
                    "one)\n");
    return out == stdout ? 0 : 2;
}

/* "0 to 1", "one of: a, b", "true or false", "text". */
static void allowed(const tsr_config_key *k, char *buf, size_t size)
{
    switch (k->type) {
    case TSR_CONFIG_INT:
        snprintf(buf, size, "integer %.0f to %.0f", k->min, k->max);
        return;
    case TSR_CONFIG_DOUBLE:
        snprintf(buf, size, "number %g to %g", k->min, k->max);
        return;
    case TSR_CONFIG_BOOL:
        snprintf(buf, size, "true or false");
        return;
    case TSR_CONFIG_ENUM: {
        size_t used = (size_t)snprintf(buf, size, "one of:");
        for (int i = 0; k->choices[i] && used < size; i++)
            used += (size_t)snprintf(buf + used, size - used, "%s %s", i ? "," : "", k->choices[i]);
        return;
    }
    case TSR_CONFIG_STRING:
        snprintf(buf, size, "text");
        return;
    }
    snprintf(buf, size, "?");
}

int tsr_cmd_keys(int argc, char **argv)
{
    if (argc == 2 && tsr_cli_is_help(argv[1])) return usage(stdout);
    if (argc > 2) return usage(stderr);
    const char *only = argc == 2 ? argv[1] : NULL;
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    const tsr_config_schema *s = &schema.schema;
    char sections[512] = "";
    bool found = false;
    const char *section = NULL;
    for (int i = 0; i < s->count; i++) {
        const tsr_config_key *k = &s->keys[i];
        bool new_section = !section || strcmp(section, k->section);
        if (new_section) {
            size_t used = strlen(sections);
            snprintf(sections + used, sizeof sections - used, "%s%s", used ? ", " : "",
                     k->section);
        }
        section = k->section;
        if (only && strcmp(only, k->section)) continue;
        if (new_section) printf("%s[%s]\n", found ? "\n" : "", k->section);
        found = true;
        char range[512];
        allowed(k, range, sizeof range);
        printf("%s = %s\n    %s; %s\n", k->name, k->default_value, range, k->help);
    }
    if (!found) {
        fprintf(stderr, "tessera keys: no section '%s'; the sections are %s\n", only, sections);
        return 1;
    }
    return 0;
}
