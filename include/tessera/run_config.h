/* run_config.h — the whole configuration of a run, one section per part.
 *
 *   [env]      which game and its options (env.h)
 *   [network]  the value network (network.h)
 *   [loss]     the value loss and its support (losses.h)
 *   [pruning]  gradual magnitude pruning (pruning.h)
 *
 * The schema lives in a caller-owned tsr_run_schema (no global tables are
 * built at run time); tsr_run_config_defaults gives every key its default.
 */
#ifndef TESSERA_RUN_CONFIG_H
#define TESSERA_RUN_CONFIG_H

#include "tessera/config.h"
#include "tessera/env.h"
#include "tessera/losses.h"
#include "tessera/network.h"
#include "tessera/pruning.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_env_config {
    char name[TSR_CONFIG_STRING_BYTES]; /* "minatar/breakout", "classic/cartpole", ... */
    double sticky_action_prob;
    bool difficulty_ramping;
    bool minimal_action_set;
    bool continuous;
    double continuous_threshold;
} tsr_env_config;

typedef struct tsr_run_config {
    tsr_env_config env;
    tsr_network_config network;
    tsr_value_loss_config loss;
    tsr_prune_config pruning;
} tsr_run_config;

enum { TSR_RUN_SCHEMA_MAX_KEYS = 256 };

typedef struct tsr_run_schema {
    tsr_config_key keys[TSR_RUN_SCHEMA_MAX_KEYS];
    tsr_config_schema schema;
} tsr_run_schema;

void tsr_run_schema_init(tsr_run_schema *s);
void tsr_run_config_defaults(const tsr_run_schema *s, tsr_run_config *cfg);
/* Loads `path` (NULL: defaults only), then applies the overrides in order,
 * then checks the cross-key rules. */
tsr_status tsr_run_config_load(const tsr_run_schema *s, tsr_run_config *cfg, const char *path,
                               char *const *overrides, int num_overrides, tsr_error *err);
/* The environment's game and options from the [env] section. */
tsr_status tsr_run_config_env(const tsr_run_config *cfg, tsr_env_game *game,
                              tsr_env_options *options, tsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
