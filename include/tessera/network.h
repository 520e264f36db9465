/* network.h — a value network described by one config block, built by one call.
 *
 *   encoder (Nature CNN | IMPALA ResNet | MinAtar conv, width-scaled)
 *     -> head: dense    flatten -> dense(hidden [x E]) -> ReLU (hidden 0: none)
 *              softmoe  tokens -> Soft MoE (E experts, E = 1: tokenized single expert)
 *                       -> flatten [-> dense(hidden) -> ReLU]
 *              topk     tokens -> Top-k MoE -> flatten [-> dense(hidden) -> ReLU]
 *     -> output: Q-values (N, A), or logits (N, A, K) over K atoms / bins;
 *        plain, dueling, NoisyNet or both.
 *
 * The [network] section of a config file maps onto tsr_network_config (see
 * tsr_network_config_keys for every key, its default and its range). An
 * online and a target network are two tsr_network built from one config.
 */
#ifndef TESSERA_NETWORK_H
#define TESSERA_NETWORK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/config.h"
#include "tessera/encoders.h"
#include "tessera/layers.h"
#include "tessera/moe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_encoder_kind {
    TSR_ENCODER_NATURE = 0,
    TSR_ENCODER_IMPALA,
    TSR_ENCODER_MINATAR,
    TSR_ENCODER_MLP, /* dense layers on (N, F) float observations (CartPole) */
} tsr_encoder_kind;

typedef enum tsr_head_kind {
    TSR_HEAD_DENSE = 0, /* the flatten baseline */
    TSR_HEAD_SOFTMOE,
    TSR_HEAD_TOPK,
} tsr_head_kind;


typedef struct tsr_network_config {
    int encoder;          /* tsr_encoder_kind */
    int64_t width_scale;  /* channel multiplier of the encoder */
    int padding;          /* tsr_padding of the Nature and MinAtar convs */
    int head;             /* tsr_head_kind */
    int tokens;           /* tsr_token_kind, encoders.h (MoE heads) */
    int64_t patch_size;
    int64_t patch_embedding;
    int64_t hidden;       /* dense hidden width (0: none), or expert hidden width (>= 1) */
    bool scale_hidden_by_experts; /* dense head: hidden x num_experts */
    int64_t num_experts;
    double capacity_factor;
    bool router_normalization;
    bool random_router;   /* Soft MoE: a fresh N(0,1) router each pass */
    int mix_mode;         /* tsr_moe_mix_mode, moe.h */
    int64_t top_k;
    bool noisy_routing;
    double routing_noise_std;
    double importance_loss_weight; /* Top-k load-balancing loss; 0: off */
    bool extra_dense;     /* MoE heads: dense(hidden) + ReLU after flatten */
    bool dueling;
    bool noisy;           /* NoisyNet layers in the head and the experts' first layer */
    double noisy_sigma0;  /* NoisyNet sigma init: sigma0 / sqrt(fan_in) */
    int init;             /* 0 "dqn": xavier-uniform; 1 "rainbow": variance scaling;
                           * 2 "torch": PyTorch's default, biases included */
    /* encoder = mlp: the widths of its dense + ReLU layers, "64, 64" (comma- or
     * space-separated, 1 to TSR_MLP_MAX_LAYERS of them). */
    char mlp_hidden[TSR_CONFIG_STRING_BYTES];
} tsr_network_config;

extern const char *const tsr_encoder_names[];  /* "nature", "impala", "minatar", "mlp" */
extern const char *const tsr_head_names[];     /* "dense", "softmoe", "topk" */
extern const char *const tsr_token_names[];    /* tsr_token_kind order */
extern const char *const tsr_mix_mode_names[]; /* tsr_moe_mix_mode order */
extern const char *const tsr_padding_names[];  /* "same", "valid" */
extern const char *const tsr_network_init_names[]; /* "dqn", "rainbow", "torch" */

/* The [network] keys, for a config schema: `offset` is that of the
 * tsr_network_config inside the caller's struct. Writes at most `capacity`
 * keys to `out` and returns how many there are. */
int tsr_network_config_keys(size_t offset, tsr_config_key *out, int capacity);
/* Cross-key checks a single key's range cannot express (e.g. top_k <= E). */
tsr_status tsr_network_config_validate(const tsr_network_config *cfg, tsr_error *err);

/* ---- the MLP encoder (vector observations) ---------------------------------- */

enum { TSR_MLP_MAX_LAYERS = 8 };

/* (N, F) -> dense(w_1) -> ReLU -> ... -> dense(w_L) -> ReLU -> (N, w_L): the
 * encoder for vector observations such as CartPole's 4 floats (Dopamine's
 * ClassicControlDQNNetwork stacks dense + ReLU layers the same way). Layers
 * are "<name>/dense1" ... "<name>/denseL", with biases; kernels use `init`. */
typedef struct tsr_mlp_encoder {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_linear_layer layers[TSR_MLP_MAX_LAYERS];
    int num_layers;
    int64_t in_features, out_features;
} tsr_mlp_encoder;

/* Parses a width list ("64, 64" or "64 64") into widths[TSR_MLP_MAX_LAYERS];
 * errors name network.mlp_hidden, the text and what is allowed. */
tsr_status tsr_mlp_hidden_parse(const char *text, int64_t *widths, int *count, tsr_error *err);
/* Errors: in_features below 1, a width below 1, no layer or more than
 * TSR_MLP_MAX_LAYERS. */
tsr_status tsr_mlp_encoder_init(tsr_mlp_encoder *e, tsr_params *p, const char *name,
                                int64_t in_features, const int64_t *widths, int num_layers,
                                tsr_init_spec init, tsr_error *err);
void tsr_mlp_encoder_reset(tsr_mlp_encoder *e, tsr_params *p, tsr_rng *rng);
/* x (N, in_features) float -> (N, out_features). */
tsr_tensor *tsr_mlp_encoder_forward(tsr_mlp_encoder *e, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x);
void tsr_mlp_encoder_fini(tsr_mlp_encoder *e);

/* ---- the network ---------------------------------------------------------- */

typedef struct tsr_network {
    tsr_network_config config;
    tsr_params params;
    tsr_image_shape input;
    int64_t num_actions, num_atoms; /* atoms 1: scalar Q-values */
    float input_scale;              /* uint8 observations are multiplied by it */
    tsr_nature_encoder nature;      /* the one config.encoder names is used */
    tsr_impala_encoder impala;
    tsr_minatar_encoder minatar;
    tsr_tokenizer tokenizer;        /* MoE heads */
    tsr_soft_moe soft_moe;
    tsr_topk_moe topk;
    tsr_head head;
    /* From the last forward (arena tensors, valid until the next step), for
     * diagnostics: the encoder output and the MoE layer's intermediates. */
    tsr_tensor *features;
    tsr_soft_moe_outputs soft_moe_outputs;
    tsr_topk_moe_outputs topk_outputs;
    tsr_mlp_encoder mlp;            /* encoder = mlp: input is (1, 1, F) */
} tsr_network;

/* The weight caches whose history picks a primitive (tsr_linear: plain matmul
 * on a version's first use, inner product from its second), with their
 * weights, in a fixed order; returns how many (at most max). */
typedef struct tsr_network_cache {
    tsr_weight_cache *cache;
    const tsr_tensor *weight;
} tsr_network_cache;
int tsr_network_linear_caches(tsr_network *net, tsr_network_cache *out, int max);

/* The head's hidden units on the last forward as (samples, units) rows, for
 * dormant-neuron statistics: an MoE head's expert hidden activations, all
 * experts and slots pooled (Dopamine's labs/moes statistic; H units), else
 * the dense head's hidden layer (N, hidden). False when the head has no
 * hidden layer (head = dense with hidden = 0) or nothing ran yet. */
bool tsr_network_head_hidden(const tsr_network *net, tsr_tensor *rows);

/* Builds the network for observations (h, w, c) and `num_actions` actions,
 * with `num_atoms` logits per action (1 for scalar Q-values), its parameters
 * in a `dtype` block (float32; float64 for gradient checks). uint8
 * observations are scaled by input_scale (1/255 for pixels, 1 for MinAtar's
 * binary planes). Errors name the offending key and value. */
tsr_status tsr_network_init(tsr_network *net, const tsr_network_config *cfg, tsr_image_shape input,
                            int64_t num_actions, int64_t num_atoms, float input_scale,
                            tsr_dtype dtype, tsr_error *err);
/* Draws initial parameters from `rng` (TSR_RNG_STREAM_INIT). */
void tsr_network_reset(tsr_network *net, tsr_rng *rng);
/* obs (N, h, w, c), uint8 or the parameters' float type -> Q-values (N, A) or
 * logits (N, A, K). `noise` drives NoisyNet layers and random routers (NULL
 * when the network has none). With encoder = mlp, obs may also be (N, F),
 * F = h w c (the network was built for input (1, 1, F)). */
tsr_tensor *tsr_network_forward(tsr_network *net, tsr_ctx *ctx, tsr_tensor *obs,
                                const tsr_noise *noise);
void tsr_network_fini(tsr_network *net);
/* Whether forward needs noise (noisy head, random router, noisy routing). */
bool tsr_network_uses_noise(const tsr_network *net);

/* Runs one forward at batch `batch` on zeros with a summary active and prints
 * every layer's output shape, parameters and forward FLOPs, and the totals. */
void tsr_network_print_summary(tsr_network *net, tsr_ctx *ctx, int64_t batch, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
