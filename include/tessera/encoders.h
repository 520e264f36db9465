/* encoders.h — image encoders, tokenizers and value heads.
 *
 * Layers in the pattern of layers.h (hyperparameters + parameter indices +
 * weight caches; _init registers, _reset draws, _forward composes ops on the
 * tape, _fini frees caches; no activations are kept). The facts they follow
 * are in the reference spec (components.md §1.1-§1.3, §6; minatar.md §6):
 *
 *   encoders (N, H, W, C) -> (N, h, w, C')
 *     Nature DQN CNN   32@8x8/4, 64@4x4/2, 64@3x3/1, ReLU after each; SAME
 *                      (Dopamine/Flax: 84 -> 21 -> 11 -> 11) or VALID (Nature
 *                      paper, CleanRL: 84 -> 20 -> 9 -> 7)
 *     IMPALA ResNet    Dopamine's: three stacks of conv 3x3 -> max-pool 3x3/2
 *                      SAME -> 2 residual blocks, channels (16, 32, 32), final
 *                      ReLU (84 -> 42 -> 21 -> 11)
 *     MinAtar conv     16@3x3/1 + ReLU, SAME (Dopamine) or VALID (MinAtar's
 *                      own DQN: 10 -> 8)
 *   tokenizer (N, h, w, C) -> tokens (N, T, D)
 *   head (N, F) or (N, T, D) -> Q-values (N, A) or atom logits (N, A, K)
 *
 * Encoders take float pixels (divide uint8 frames by 255 first, as Dopamine
 * does inside its networks: tsr_u8_to_f32) in the parameter block's dtype.
 * Channel counts are the base channels times an integer width scale (Dopamine's
 * nn_scale). Hyperparameters a user configures are validated by _init, which
 * returns TSR_STATUS_INVALID_ARGUMENT with a message naming the value and what
 * is allowed; `options` may be NULL for the defaults.
 */
#ifndef TESSERA_ENCODERS_H
#define TESSERA_ENCODERS_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera/autograd.h"
#include "tessera/layers.h"
#include "tessera/ops.h"
#include "tessera/ops_encoders.h"
#include "tessera/params.h"
#include "tessera/rng.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The (h, w, C) of one channels-last image or feature map. */
typedef struct tsr_image_shape {
    int64_t h, w, c;
} tsr_image_shape;

/* Kernel initialisers of the Nature and MinAtar encoders (biases start at 0,
 * except with TSR_ENCODER_INIT_TORCH). */
typedef enum tsr_encoder_init {
    /* xavier-uniform: Dopamine's DQN networks (NatureDQNNetwork, MinatarDQNNetwork). */
    TSR_ENCODER_INIT_XAVIER_UNIFORM = 0,
    /* variance_scaling(1/sqrt(3), fan_in, uniform): Dopamine's RainbowNetwork, C51,
     * QR-DQN and IQN, and MinatarQuantileNetwork. */
    TSR_ENCODER_INIT_RAINBOW,
    /* PyTorch's default (TSR_INIT_TORCH), biases included: the MinAtar paper's
     * examples/dqn.py. */
    TSR_ENCODER_INIT_TORCH,
} tsr_encoder_init;

/* ==== Nature DQN CNN ==================================================== */

typedef struct tsr_nature_options {
    int64_t channels[3];   /* base channels of the three convs: {32, 64, 64} */
    int64_t width_scale;   /* >= 1, multiplies every channel count: 1 */
    tsr_padding padding;   /* TSR_PADDING_SAME (Dopamine) or TSR_PADDING_VALID */
    tsr_encoder_init init; /* TSR_ENCODER_INIT_XAVIER_UNIFORM */
} tsr_nature_options;

tsr_nature_options tsr_nature_options_default(void);

typedef struct tsr_nature_encoder {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_conv2d_layer conv[3]; /* "<name>/conv1" .. "<name>/conv3" */
    tsr_image_shape input, output;
} tsr_nature_encoder;

/* Errors: a width scale or channel count below 1, an input dimension below 1,
 * an input too small for VALID padding (the message gives the minimum, 36x36
 * for the default kernels), an unknown padding or init. */
tsr_status tsr_nature_encoder_init(tsr_nature_encoder *e, tsr_params *p, const char *name,
                                   int64_t h, int64_t w, int64_t c,
                                   const tsr_nature_options *options, tsr_error *err);
void tsr_nature_encoder_reset(tsr_nature_encoder *e, tsr_params *p, tsr_rng *rng);
/* x (N, h, w, c) as given to _init -> (N, h', w', C'). */
tsr_tensor *tsr_nature_encoder_forward(tsr_nature_encoder *e, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x);
void tsr_nature_encoder_fini(tsr_nature_encoder *e);
tsr_image_shape tsr_nature_encoder_output_shape(const tsr_nature_encoder *e);

/* ==== IMPALA ResNet (Dopamine's ImpalaEncoder) =========================== */

enum { TSR_IMPALA_STACKS = 3, TSR_IMPALA_MAX_BLOCKS = 4 };

typedef struct tsr_impala_options {
    int64_t channels[TSR_IMPALA_STACKS]; /* base channels per stack: {16, 32, 32} */
    int64_t width_scale;                 /* >= 1 (nn_scale): 1 */
    int64_t num_blocks;                  /* residual blocks per stack, 0..4: 2 */
} tsr_impala_options;

tsr_impala_options tsr_impala_options_default(void);

/* One stack: conv 3x3 SAME (xavier-uniform) -> max-pool 3x3/2 SAME ->
 * num_blocks x [ReLU -> conv 3x3 -> ReLU -> conv 3x3, + block input], the
 * residual convs LeCun-normal (Flax's default kernel init). All convs have
 * biases, initialised to 0. */
typedef struct tsr_impala_stack {
    tsr_conv2d_layer conv;                             /* "<name>/stack<i>/conv" */
    tsr_conv2d_layer block[TSR_IMPALA_MAX_BLOCKS][2]; /* "<name>/stack<i>/block<j>/conv<k>" */
} tsr_impala_stack;

typedef struct tsr_impala_encoder {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_impala_stack stack[TSR_IMPALA_STACKS];
    int64_t num_blocks;
    tsr_image_shape input, output;
} tsr_impala_encoder;

/* Errors: a width scale or channel count below 1, num_blocks outside 0..4, an
 * input dimension below 1. */
tsr_status tsr_impala_encoder_init(tsr_impala_encoder *e, tsr_params *p, const char *name,
                                   int64_t h, int64_t w, int64_t c,
                                   const tsr_impala_options *options, tsr_error *err);
void tsr_impala_encoder_reset(tsr_impala_encoder *e, tsr_params *p, tsr_rng *rng);
/* x (N, h, w, c) -> (N, ceil(h/8), ceil(w/8), channels[2] * width_scale), after a ReLU. */
tsr_tensor *tsr_impala_encoder_forward(tsr_impala_encoder *e, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x);
void tsr_impala_encoder_fini(tsr_impala_encoder *e);
tsr_image_shape tsr_impala_encoder_output_shape(const tsr_impala_encoder *e);

/* ==== MinAtar conv ======================================================= */

typedef struct tsr_minatar_options {
    int64_t channels;      /* base channels: 16 */
    int64_t width_scale;   /* >= 1: 1 */
    tsr_padding padding;   /* TSR_PADDING_SAME (Dopamine) or TSR_PADDING_VALID (MinAtar) */
    tsr_encoder_init init; /* TSR_ENCODER_INIT_XAVIER_UNIFORM */
} tsr_minatar_options;

tsr_minatar_options tsr_minatar_options_default(void);

typedef struct tsr_minatar_encoder {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_conv2d_layer conv; /* "<name>/conv" */
    tsr_image_shape input, output;
} tsr_minatar_encoder;

/* Errors as for the Nature encoder (VALID needs at least 3x3). */
tsr_status tsr_minatar_encoder_init(tsr_minatar_encoder *e, tsr_params *p, const char *name,
                                    int64_t h, int64_t w, int64_t c,
                                    const tsr_minatar_options *options, tsr_error *err);
void tsr_minatar_encoder_reset(tsr_minatar_encoder *e, tsr_params *p, tsr_rng *rng);
tsr_tensor *tsr_minatar_encoder_forward(tsr_minatar_encoder *e, tsr_ctx *ctx, tsr_params *p,
                                        tsr_tensor *x);
void tsr_minatar_encoder_fini(tsr_minatar_encoder *e);
tsr_image_shape tsr_minatar_encoder_output_shape(const tsr_minatar_encoder *e);

/* ==== tokenization ======================================================= */

/* How an encoder output (N, h, w, C) becomes tokens (N, T, D) (components.md
 * §1.2; Dopamine labs/moes routing_type). Tokens are per sample: T counts the
 * tokens of one observation. */
typedef enum tsr_token_kind {
    TSR_TOKENS_PER_CONV = 0,    /* T = h*w, D = C: a free reshape (PER_PIXEL, the default) */
    TSR_TOKENS_PER_FEATURE_MAP, /* T = C, D = h*w: the transpose (PER_FEATUREMAP) */
    TSR_TOKENS_PER_SAMPLE,      /* T = 1, D = h*w*C (PER_SAMPLE) */
    TSR_TOKENS_PER_PATCH,       /* a learned conv, kernel = stride = patch, VALID, `embedding`
                                 * outputs (bias, LeCun-normal, no ReLU), one token per
                                 * position: T = (h/p)(w/p), D = embedding (PER_PATCH) */
    TSR_TOKENS_AVG_POOL,        /* the average of each patch (VALID), one token per
                                 * position: T = (h/p)(w/p), D = C (PER_PATCH with
                                 * use_avg_pool_for_tokens) */
    TSR_TOKEN_KIND_COUNT
} tsr_token_kind;

/* "per_conv", "per_feature_map", "per_sample", "per_patch", "avg_pool". */
const char *tsr_token_kind_name(tsr_token_kind kind);
/* The kind called `name`; an unknown name is an error listing the valid ones. */
tsr_status tsr_token_kind_parse(const char *name, tsr_token_kind *kind, tsr_error *err);

typedef struct tsr_tokenizer_options {
    tsr_token_kind kind;  /* TSR_TOKENS_PER_CONV */
    int64_t patch_size;   /* patch kinds: 3 */
    int64_t embedding;    /* per-patch conv outputs: 32 (ImpalaMoE; NatureDQNMoE uses 64) */
} tsr_tokenizer_options;

tsr_tokenizer_options tsr_tokenizer_options_default(void);

typedef struct tsr_tokenizer {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_token_kind kind;
    int64_t patch_size;
    tsr_image_shape input;
    int64_t tokens, token_dim; /* T and D */
    tsr_conv2d_layer patch;    /* "<name>/embedding", per-patch only */
} tsr_tokenizer;

/* Errors: an unknown kind; for the patch kinds a patch size below 1 or above
 * the feature map, or an embedding below 1; an input dimension below 1. */
tsr_status tsr_tokenizer_init(tsr_tokenizer *t, tsr_params *p, const char *name,
                              tsr_image_shape input, const tsr_tokenizer_options *options,
                              tsr_error *err);
void tsr_tokenizer_reset(tsr_tokenizer *t, tsr_params *p, tsr_rng *rng);
/* x (N, h, w, C) -> (N, T, D). */
tsr_tensor *tsr_tokenizer_forward(tsr_tokenizer *t, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x);
void tsr_tokenizer_fini(tsr_tokenizer *t);
void tsr_tokenizer_token_shape(const tsr_tokenizer *t, int64_t *tokens, int64_t *token_dim);

/* ==== NoisyNet linear (Fortunato et al. 2018, factorised Gaussian) ======== */

/* Where a noisy layer's noise comes from in one forward. */
typedef struct tsr_noise {
    tsr_rng *rng;    /* the caller's TSR_RNG_STREAM_NOISE stream; unused when means_only */
    bool means_only; /* evaluation: W = mu_W, b = mu_b, and nothing is drawn */
} tsr_noise;

/* One factor f(e) = sgn(e) sqrt(|e|) of a fresh e ~ N(0, 1) from `rng` (the
 * noisy linear layer's and the noisy experts' draws). */
double tsr_noisy_factor(tsr_rng *rng);

/* y = x W^T + b with W = mu_W + sigma_W . (f(eps_out) f(eps_in)^T) and
 * b = mu_b + sigma_b . f(eps_out), f(e) = sgn(e) sqrt(|e|), eps ~ N(0, 1).
 * Each forward draws eps_in (in values) and then eps_out (out values), in
 * that order, with tsr_rng_normal; the noise is shared by the batch. It runs
 * factorised, without forming W: y = x mu_W^T + f(eps_out) . ((x . f(eps_in))
 * sigma_W^T) + b, which is differentiable in mu and sigma (the noise is not).
 * Init: mu ~ U(-1/sqrt(in), 1/sqrt(in)), sigma = sigma0 / sqrt(in), for
 * weights and biases alike. */
typedef struct tsr_noisy_linear {
    char name[TSR_LAYER_NAME_BYTES];
    int weight_mu, weight_sigma, bias_mu, bias_sigma; /* "<name>/weight_mu" etc. */
    int64_t in, out;
    bool relu;
    double sigma0;
    tsr_weight_cache cache_mu, cache_sigma;
} tsr_noisy_linear;

/* The Fortunato et al. sigma0 for factorised noise; Dopamine's NoisyNetwork
 * uses 0.1. */
#define TSR_NOISY_SIGMA0 0.5

/* Programming errors only (in, out >= 1, sigma0 >= 0); heads validate user values. */
void tsr_noisy_linear_init(tsr_noisy_linear *l, tsr_params *p, const char *name, int64_t in,
                           int64_t out, bool relu, double sigma0);
void tsr_noisy_linear_reset(tsr_noisy_linear *l, tsr_params *p, tsr_rng *rng);
/* x (N, in) -> (N, out); `noise` must not be NULL. */
tsr_tensor *tsr_noisy_linear_forward(tsr_noisy_linear *l, tsr_ctx *ctx, tsr_params *p,
                                     tsr_tensor *x, const tsr_noise *noise);
void tsr_noisy_linear_fini(tsr_noisy_linear *l);

/* ==== value heads ======================================================= */

typedef struct tsr_head_options {
    int64_t num_actions;  /* A >= 1 (required) */
    int64_t hidden_units; /* dense(hidden) -> ReLU before the output: 512; 0 leaves
                           * it out (Dopamine's MinAtar nets, the MoE heads) */
    int64_t hidden_scale; /* E >= 1, multiplies hidden_units (labs/moes
                           * scale_hidden_layer, the "match the parameters" control): 1 */
    bool dueling;         /* value + advantage streams: false */
    bool distributional;  /* K atom logits per action: false */
    int64_t num_atoms;    /* K >= 2 when distributional: 51 */
    bool noisy;           /* every dense layer of the head is a NoisyNet linear, the
                           * hidden one included (Dopamine's FullRainbowNetwork): false */
    double noisy_sigma0;  /* TSR_NOISY_SIGMA0 */
    tsr_init_spec init;   /* non-noisy kernels (biases start at 0): xavier-uniform
                           * (Dopamine's DQN); tsr_head_init_rainbow() for Rainbow/C51 */
} tsr_head_options;

tsr_head_options tsr_head_options_default(int64_t num_actions);
/* Dopamine's Rainbow/C51 kernel init: variance_scaling(1/sqrt(3), fan_in, uniform). */
tsr_init_spec tsr_head_init_rainbow(void);

/* A dense layer of a head: plain or noisy. */
typedef struct tsr_head_dense {
    bool noisy;
    tsr_linear_layer linear;
    tsr_noisy_linear noisy_linear;
} tsr_head_dense;

typedef struct tsr_head {
    char name[TSR_LAYER_NAME_BYTES];
    tsr_head_options options;
    int64_t in_features, hidden; /* hidden = hidden_units * hidden_scale, or 0 */
    tsr_head_dense hidden_layer; /* "<name>/hidden" */
    tsr_head_dense output;       /* "<name>/advantage" when dueling, else "<name>/output" */
    tsr_head_dense value;        /* "<name>/value", dueling only */
    /* The hidden layer's output (after the ReLU) of the last forward, an
     * arena tensor valid until the next step; NULL without a hidden layer. */
    tsr_tensor *hidden_out;
} tsr_head;

/* flatten -> [dense(hidden) -> ReLU] -> Q head:
 *   plain            dense(A)                       -> (N, A)
 *   distributional   dense(A K)                     -> (N, A, K) logits
 *   dueling          value dense(K), advantage dense(A K),
 *                    Q = V + A - mean_a A per atom  -> (N, A) or (N, A, K)
 * Errors: num_actions, in_features or hidden_scale below 1, hidden_units below
 * 0, num_atoms below 2 when distributional, a negative or non-finite sigma0. */
tsr_status tsr_head_init(tsr_head *h, tsr_params *p, const char *name, int64_t in_features,
                         const tsr_head_options *options, tsr_error *err);
void tsr_head_reset(tsr_head *h, tsr_params *p, tsr_rng *rng);
/* x (N, F) or (N, T, D) with F = T D = in_features. `noise` is used by noisy
 * heads (not NULL there; the layers draw in the order hidden, advantage/output,
 * value) and ignored otherwise. */
tsr_tensor *tsr_head_forward(tsr_head *h, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                             const tsr_noise *noise);
void tsr_head_fini(tsr_head *h);
/* Parameters the head registered (for tests and summaries). */
int64_t tsr_head_param_count(const tsr_head *h);

#ifdef __cplusplus
}
#endif

#endif
