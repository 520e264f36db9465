/* The configuration engine on a small schema of its own. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/config.h"

typedef struct demo {
    int64_t num_experts;
    double learning_rate;
    bool dueling;
    int encoder;
    char name[TSR_CONFIG_STRING_BYTES];
} demo;

static const char *const encoders[] = {"nature", "impala", "minatar", NULL};

static const tsr_config_key keys[] = {
    {"network", "num_experts", TSR_CONFIG_INT, offsetof(demo, num_experts), 1, 64, NULL, "4", ""},
    {"network", "encoder", TSR_CONFIG_ENUM, offsetof(demo, encoder), 0, 0, encoders, "impala", ""},
    {"network", "dueling", TSR_CONFIG_BOOL, offsetof(demo, dueling), 0, 0, NULL, "false", ""},
    {"optimizer", "learning_rate", TSR_CONFIG_DOUBLE, offsetof(demo, learning_rate), 0, 1, NULL,
     "6.25e-5", ""},
    {"run", "name", TSR_CONFIG_STRING, offsetof(demo, name), 0, 0, NULL, "demo run", ""},
};
static const tsr_config_schema schema = {keys, sizeof keys / sizeof keys[0]};

static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/tessera_config_%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

Test(config, defaults_come_from_the_schema)
{
    demo d;
    memset(&d, 0xff, sizeof d);
    tsr_config_set_defaults(&schema, &d);
    cr_expect_eq(d.num_experts, 4);
    cr_expect_eq(d.encoder, 1);
    cr_expect_not(d.dueling);
    cr_expect_eq(d.learning_rate, 6.25e-5);
    cr_expect_str_eq(d.name, "demo run");
}

Test(config, a_file_sets_typed_values)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    const char *path = write_file("; a comment\n# another\n[network]\nencoder = nature\nnum_experts = 8\n"
                                  "dueling = yes\n\n[optimizer]\nlearning_rate = 1e-4  ; inline\n");
    tsr_error err;
    cr_assert_eq(tsr_config_load_file(&schema, &d, path, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(d.encoder, 0);
    cr_expect_eq(d.num_experts, 8);
    cr_expect(d.dueling);
    cr_expect_eq(d.learning_rate, 1e-4);
    unlink(path);
}

/* fopen succeeds on a directory and its reads fail like an empty file's:
 * a directory given as a config must not load as the defaults. */
Test(config, a_directory_is_not_a_config_file)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    tsr_error err;
    cr_expect_eq(tsr_config_load_file(&schema, &d, "/tmp", &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "/tmp is a directory, not a config file"), "%s", err.message);
    cr_expect_eq(tsr_config_load_file_layered(&schema, &d, "/tmp", &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "is a directory"), "%s", err.message);
}

/* Numbers are written in the shortest form that reads back exactly. */
Test(config, doubles_are_written_short_and_read_back_exactly)
{
    static const double values[] = {0.9, 0.99, 6.25e-5, 1e-4, 0.1, 1.0 / 3.0, 0.95, 2.5e-4};
    static const struct {
        double value;
        const char *text;
    } exact[] = {{0.9, "0.9"}, {10, "10"}, {-10, "-10"}, {100, "100"}, {250000, "250000"},
                 {1800, "1800"}, {6.25e-5, "6.25e-05"}, {0.0001, "0.0001"}, {0, "0"},
                 {1e-10, "1e-10"}, {2.5e-4, "0.00025"}, {-0.5, "-0.5"}, {1e15, "1e+15"}};
    const tsr_config_key *key = &keys[3]; /* optimizer.learning_rate */
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        demo d;
        tsr_config_set_defaults(&schema, &d);
        d.learning_rate = values[i];
        char buf[64];
        tsr_config_format_value(key, &d, buf, sizeof buf);
        cr_expect_eq(strtod(buf, NULL), values[i], "%s does not read back as %.17g", buf, values[i]);
        if (i != 5) cr_expect_leq(strlen(buf), 8, "%s is not the short form", buf);
    }
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        demo d;
        tsr_config_set_defaults(&schema, &d);
        d.learning_rate = exact[i].value;
        char buf[64];
        tsr_config_format_value(key, &d, buf, sizeof buf);
        cr_expect_str_eq(buf, exact[i].text, "%.17g", exact[i].value);
    }
}

Test(config, an_unknown_key_names_the_nearest_valid_one_and_the_line)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    const char *path = write_file("[network]\nnum_expert = 8\n");
    tsr_error err;
    cr_assert_eq(tsr_config_load_file(&schema, &d, path, &err), TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, ":2: unknown key network.num_expert"), "%s", err.message);
    cr_expect(strstr(err.message, "did you mean network.num_experts?"), "%s", err.message);
    cr_expect_eq(d.num_experts, 4, "a failed load changed nothing it had not reached");
    unlink(path);
}

Test(config, a_key_in_the_wrong_section_is_suggested_in_the_right_one)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    tsr_error err;
    cr_assert_neq(tsr_config_apply_override(&schema, &d, "network.learning_rate=0.1", &err),
                  TSR_STATUS_OK);
    cr_expect(strstr(err.message, "did you mean optimizer.learning_rate?"), "%s", err.message);
}

Test(config, bad_values_name_the_key_the_value_and_what_is_allowed)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    tsr_error err;
    struct {
        const char *assignment, *expected;
    } cases[] = {
        {"network.num_experts=0", "network.num_experts = 0 is outside [1, 64]"},
        {"network.num_experts=4.5", "network.num_experts = '4.5' is not an integer"},
        {"network.encoder=resnet", "network.encoder = 'resnet' is not one of: nature, impala, minatar"},
        {"network.dueling=maybe", "network.dueling = 'maybe' is not a boolean"},
        {"optimizer.learning_rate=nan", "is not a finite number"},
        {"optimizer.learning_rate=2", "is outside [0, 1]"},
        {"learning_rate=2", "expected section.key=value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_eq(tsr_config_apply_override(&schema, &d, cases[i].assignment, &err),
                     TSR_STATUS_INVALID_ARGUMENT, "%s was accepted", cases[i].assignment);
        cr_expect(strstr(err.message, cases[i].expected), "%s: got '%s'", cases[i].assignment,
                  err.message);
    }
    cr_expect_eq(d.num_experts, 4);
    cr_expect_eq(d.encoder, 1);
}

Test(config, a_missing_file_and_broken_syntax_are_errors)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    tsr_error err;
    cr_expect_eq(tsr_config_load_file(&schema, &d, "/nonexistent/run.ini", &err), TSR_STATUS_IO);
    cr_expect(strstr(err.message, "/nonexistent/run.ini"), "%s", err.message);
    const char *path = write_file("[network\nencoder = nature\n");
    cr_expect_neq(tsr_config_load_file(&schema, &d, path, &err), TSR_STATUS_OK);
    cr_expect(strstr(err.message, ":1:"), "%s", err.message);
    unlink(path);
}

Test(config, an_indented_line_is_refused_not_read_as_more_of_the_value)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    tsr_error err;
    /* inih would hand "16" over as num_experts again: 16 experts, silently. */
    const char *path = write_file("[network]\nnum_experts = 8\n    16\n");
    cr_expect_eq(tsr_config_load_file(&schema, &d, path, &err), TSR_STATUS_FORMAT);
    cr_expect(strstr(err.message, ":3: indented line") && strstr(err.message, "network.num_experts"),
              "%s", err.message);
    /* An indented key is refused too, and an indented comment is fine. */
    tsr_config_set_defaults(&schema, &d);
    path = write_file("[network]\n  ; a comment\nnum_experts = 8\n  dueling = true\n");
    cr_expect_eq(tsr_config_load_file(&schema, &d, path, &err), TSR_STATUS_FORMAT);
    cr_expect(strstr(err.message, ":4: indented line"), "%s", err.message);
    tsr_config_set_defaults(&schema, &d);
    path = write_file("[network]\n  ; a comment\nnum_experts = 8 ; inline\n");
    cr_expect_eq(tsr_config_load_file_layered(&schema, &d, path, &err), TSR_STATUS_OK, "%s",
                 err.message);
    cr_expect_eq(d.num_experts, 8);
    unlink(path);
}

Test(config, a_key_set_twice_in_one_file_is_an_error_naming_both_lines)
{
    demo d;
    tsr_config_set_defaults(&schema, &d);
    tsr_error err;
    const char *path = write_file("[network]\nnum_experts = 8\ndueling = true\nnum_experts = 2\n");
    cr_expect_eq(tsr_config_load_file_layered(&schema, &d, path, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, ":4: network.num_experts is set a second time") &&
                  strstr(err.message, "first at line 2"),
              "%s", err.message);
    unlink(path);
}

Test(config, the_resolved_config_loads_back_to_itself)
{
    demo a, b;
    tsr_config_set_defaults(&schema, &a);
    tsr_error err;
    cr_assert_eq(tsr_config_apply_override(&schema, &a, "network.encoder=minatar", &err), TSR_STATUS_OK);
    cr_assert_eq(tsr_config_apply_override(&schema, &a, "optimizer.learning_rate=0.000123456789",
                                           &err), TSR_STATUS_OK);
    char path[64];
    snprintf(path, sizeof path, "/tmp/tessera_resolved_%d.ini", (int)getpid());
    FILE *f = fopen(path, "w");
    tsr_config_write(&schema, &a, f);
    fclose(f);
    memset(&b, 0, sizeof b);
    tsr_config_set_defaults(&schema, &b);
    cr_assert_eq(tsr_config_load_file(&schema, &b, path, &err), TSR_STATUS_OK, "%s", err.message);
    cr_expect_eq(b.encoder, a.encoder);
    cr_expect_eq(b.learning_rate, a.learning_rate);
    cr_expect_str_eq(b.name, a.name);
    unlink(path);
}
