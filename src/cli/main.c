/* main.c — the `tessera` command: dispatches to a subcommand by table. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"summary", tsr_cmd_summary, "summary CONFIG [...]    every layer of a network: shape, parameters, FLOPs"},
    {"version", tsr_cmd_version, "version                 print the tessera and oneDNN versions"},
    {"env", tsr_cmd_env, "env run NAME | env list play an environment with a random policy"},
    {"keys", tsr_cmd_keys, "keys [SECTION]          every config key: default, allowed values, meaning"},
    {"train", tsr_cmd_train, "train CONFIG [...]      train an agent (or --resume RUN_DIR); logs, checkpoints"},
    {"eval", tsr_cmd_eval, "eval RUN_DIR [...]      evaluate a run's newest checkpoint"},
    {"inspect", tsr_cmd_inspect, "inspect CHECKPOINT|DIR  counters, tensors and config of a checkpoint"},
    {"report", tsr_cmd_report, "report DIR... [...]     rliable metrics with bootstrap CIs over finished runs"},
    {"sweep", tsr_cmd_sweep, "sweep SWEEP [...]       run a grid of configs, games and seeds (resumable; mpirun)"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: tessera COMMAND [ARGS]   (tessera COMMAND --help: its options)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (tsr_cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) return tsr_cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tessera: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}
