/* commands.h — the `tessera` program's subcommands. Each takes the arguments
 * after its own name (argv[0] is the subcommand) and returns the exit code. */
#ifndef TESSERA_CLI_COMMANDS_H
#define TESSERA_CLI_COMMANDS_H

int tsr_cmd_version(int argc, char **argv);
int tsr_cmd_summary(int argc, char **argv);
int tsr_cmd_env(int argc, char **argv);
int tsr_cmd_train(int argc, char **argv);
int tsr_cmd_eval(int argc, char **argv);
int tsr_cmd_inspect(int argc, char **argv);
int tsr_cmd_report(int argc, char **argv);
int tsr_cmd_sweep(int argc, char **argv);
int tsr_cmd_keys(int argc, char **argv);

#endif
