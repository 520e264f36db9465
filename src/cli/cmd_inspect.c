/* cmd_inspect.c — `tessera inspect CHECKPOINT|RUN_DIR`: what a checkpoint
 * holds (counters, every array with its shape and share of zeros, the config). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tessera/tessera.h"

int tsr_cmd_inspect(int argc, char **argv)
{
    bool help = argc == 2 && tsr_cli_is_help(argv[1]);
    if (argc != 2 || help) {
        fprintf(help ? stdout : stderr,
                "usage: tessera inspect CHECKPOINT|RUN_DIR\n"
                "  prints a checkpoint's counters, every tensor with its shape and share of\n"
                "  zeros, and its config; for a run directory, its newest checkpoint\n");
        return help ? 0 : 2;
    }
    char path[4700];
    snprintf(path, sizeof path, "%s", argv[1]);
    tsr_error err;
    struct stat sb;
    if (stat(argv[1], &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char probe[4700];
        snprintf(probe, sizeof probe, "%s/config.ini", argv[1]);
        bool run_dir = access(probe, F_OK) == 0;
        snprintf(probe, sizeof probe, "%s/checkpoints", argv[1]);
        if (!run_dir && access(probe, F_OK) != 0) {
            fprintf(stderr, "tessera inspect: %s is not a run directory (it has no config.ini "
                            "and no checkpoints/): give a run directory or a checkpoint file\n",
                    argv[1]);
            return 1;
        }
        int64_t iteration;
        if (tsr_checkpoint_find_latest(argv[1], path, sizeof path, &iteration, stderr, &err) !=
            TSR_STATUS_OK) {
            fprintf(stderr, "tessera inspect: %s\n", err.message);
            return 1;
        }
    }
    if (tsr_checkpoint_inspect(path, stdout, &err) != TSR_STATUS_OK) {
        fprintf(stderr, "tessera inspect: %s\n", err.message);
        return 1;
    }
    return 0;
}
