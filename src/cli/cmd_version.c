/* cmd_version.c — `tessera version`. */
#include <stdio.h>

#include <oneapi/dnnl/dnnl.h>

#include "cli/cli_util.h"
#include "cli/commands.h"

int tsr_cmd_version(int argc, char **argv)
{
    if (argc > 1 && tsr_cli_is_help(argv[1])) {
        printf("usage: tessera version (or tessera --version)\n"
               "  prints the tessera and oneDNN versions\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "tessera version takes no arguments (got '%s')\n", argv[1]);
        return 2;
    }
    const dnnl_version_t *v = dnnl_version();
    printf("tessera %s\noneDNN %d.%d.%d (cpu runtime %s)\n", TESSERA_VERSION, v->major, v->minor,
           v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
    return 0;
}
