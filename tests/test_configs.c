/* Every shipped config under configs/ loads and builds its network. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "tessera/tessera.h"

static int check_dir(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    int checked = 0;
    tsr_run_schema schema;
    tsr_run_schema_init(&schema);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        tsr_run_config cfg;
        tsr_error err;
        cr_expect_eq(tsr_run_config_load(&schema, &cfg, path, NULL, 0, &err), TSR_STATUS_OK,
                     "%s", err.message);
        tsr_support support;
        cr_assert_eq(tsr_support_init(&support, &cfg.loss, &err), TSR_STATUS_OK, "%s", err.message);
        tsr_network net;
        /* The studies' networks take Atari-sized inputs; MinAtar ones are in
         * the game presets. */
        tsr_image_shape in = cfg.network.encoder == TSR_ENCODER_MINATAR
                                 ? (tsr_image_shape){10, 10, 4}
                                 : (tsr_image_shape){84, 84, 4};
        cr_expect_eq(tsr_network_init(&net, &cfg.network, in, 6, tsr_support_head_width(&support),
                                      1.0f / 255, TSR_DTYPE_F32, &err),
                     TSR_STATUS_OK, "%s: %s", path, err.message);
        tsr_network_fini(&net);
        tsr_support_fini(&support);
        checked++;
    }
    closedir(d);
    return checked;
}

Test(configs, every_network_example_loads_and_builds)
{
    cr_expect_geq(check_dir(TSR_CONFIGS_DIR "/networks"), 8);
}
