/* network_config.c — the [network] section: keys, defaults, cross-checks. */
#include <stddef.h>
#include <string.h>

#include "tessera/network.h"
#include "tessera/status.h"

const char *const tsr_encoder_names[] = {"nature", "impala", "minatar", "mlp", NULL};
const char *const tsr_head_names[] = {"dense", "softmoe", "topk", NULL};
const char *const tsr_token_names[] = {"per_conv", "per_feature_map", "per_sample", "per_patch",
                                       "avg_pool", NULL};
const char *const tsr_mix_mode_names[] = {"full", "no_dispatch", "no_combine", "none", NULL};
const char *const tsr_padding_names[] = {"same", "valid", NULL};
const char *const tsr_network_init_names[] = {"dqn", "rainbow", "torch", NULL};

#define KEY(name, type, min, max, choices, def, help)                                         \
    {"network", #name, type, offsetof(tsr_network_config, name), min, max, choices, def, help}

static const tsr_config_key network_keys[] = {
    KEY(encoder, TSR_CONFIG_ENUM, 0, 0, tsr_encoder_names, "nature",
        "encoder: Nature DQN CNN, IMPALA ResNet (16, 32, 32 channels), MinAtar conv, or an MLP "
        "for vector observations"),
    KEY(width_scale, TSR_CONFIG_INT, 1, 64, NULL, "1", "multiplier of the encoder's channels"),
    KEY(padding, TSR_CONFIG_ENUM, 0, 0, tsr_padding_names, "same",
        "padding of the Nature and MinAtar convs (IMPALA is always same)"),
    KEY(head, TSR_CONFIG_ENUM, 0, 0, tsr_head_names, "dense",
        "dense: flatten -> dense(hidden) -> ReLU; softmoe / topk: tokens -> mixture of experts"),
    KEY(tokens, TSR_CONFIG_ENUM, 0, 0, tsr_token_names, "per_conv",
        "how the encoder output becomes tokens (MoE heads)"),
    KEY(patch_size, TSR_CONFIG_INT, 1, 64, NULL, "3", "per_patch / avg_pool: patch side"),
    KEY(patch_embedding, TSR_CONFIG_INT, 1, 65536, NULL, "32",
        "per_patch: token width (Dopamine: 32 in its IMPALA DQN MoE network, 64 in NatureDQNMoE "
        "and the Full Rainbow MoE networks)"),
    KEY(hidden, TSR_CONFIG_INT, 0, 1 << 20, NULL, "512",
        "hidden width of the dense head (0: none, the features go straight to the output, as "
        "Dopamine's MinAtar networks), or of each expert's MLP (at least 1)"),
    KEY(scale_hidden_by_experts, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "dense head: multiply the hidden width by num_experts (match the parameters)"),
    KEY(num_experts, TSR_CONFIG_INT, 1, 1024, NULL, "1",
        "experts E (softmoe with 1: tokenized single expert; Dopamine's ImpalaMoE and "
        "NatureDQNMoE default to 8, so set it with an MoE head)"),
    KEY(capacity_factor, TSR_CONFIG_DOUBLE, 1e-3, 1e3, NULL, "1.0",
        "slots (softmoe) or capacity (topk) per expert: ceil(tokens * c / E)"),
    KEY(router_normalization, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "softmoe: L2-normalise tokens and router columns, with a learned scale"),
    KEY(random_router, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "softmoe: a fresh N(0, 1) phi for each sample every pass; topk: fresh N(0, 1) scores "
        "for each token every pass, the top one the expert and its gate (RandomRouter); not "
        "learned"),
    KEY(mix_mode, TSR_CONFIG_ENUM, 0, 0, tsr_mix_mode_names, "full",
        "softmoe ablations: bypass dispatch and/or combine"),
    KEY(top_k, TSR_CONFIG_INT, 1, 1, NULL, "1", "topk: experts per token (top-1)"),
    KEY(noisy_routing, TSR_CONFIG_BOOL, 0, 0, NULL, "false", "topk: Gaussian noise on router logits"),
    KEY(routing_noise_std, TSR_CONFIG_DOUBLE, 0, 1e3, NULL, "1.0",
        "topk: the noise's std is this over num_experts"),
    KEY(importance_loss_weight, TSR_CONFIG_DOUBLE, 0, 1e3, NULL, "0",
        "topk: weight of the importance (CV squared) loss added to the training loss (0: off; "
        "Dopamine's labs/moes uses 1.0 when on)"),
    KEY(extra_dense, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "MoE heads: dense(hidden) + ReLU after flattening the tokens"),
    KEY(dueling, TSR_CONFIG_BOOL, 0, 0, NULL, "false", "dueling value and advantage streams"),
    KEY(noisy, TSR_CONFIG_BOOL, 0, 0, NULL, "false",
        "NoisyNet layers in the head and, with an MoE head, each expert's first layer, as "
        "Dopamine's Full Rainbow (MoE)"),
    KEY(noisy_sigma0, TSR_CONFIG_DOUBLE, 0, 10, NULL, "0.5",
        "noisy: sigma initialised to sigma0 / sqrt(fan_in) (0.5: Fortunato et al.; 0.1: "
        "Dopamine's NoisyNetwork, set by the rainbow and der presets)"),
    KEY(init, TSR_CONFIG_ENUM, 0, 0, tsr_network_init_names, "dqn",
        "encoder and head init: dqn = xavier-uniform; rainbow = variance_scaling(1/sqrt(3), "
        "fan_in); biases 0 with both; torch = PyTorch's default, weights and biases "
        "U(+-1/sqrt(fan_in)) (the MinAtar paper's code)"),
    KEY(mlp_hidden, TSR_CONFIG_STRING, 0, 0, NULL, "64, 64",
        "encoder = mlp: widths of its dense + ReLU layers before the head (vector observations)"),
};

int tsr_network_config_keys(size_t offset, tsr_config_key *out, int capacity)
{
    int n = (int)(sizeof network_keys / sizeof network_keys[0]);
    for (int i = 0; i < n && i < capacity; i++) {
        out[i] = network_keys[i];
        out[i].offset += offset;
    }
    return n;
}

tsr_status tsr_network_config_validate(const tsr_network_config *cfg, tsr_error *err)
{
    if (cfg->head == TSR_HEAD_TOPK && cfg->top_k > cfg->num_experts)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.top_k = %lld exceeds network.num_experts = %lld",
                             (long long)cfg->top_k, (long long)cfg->num_experts);
    if (cfg->head != TSR_HEAD_SOFTMOE && cfg->mix_mode != TSR_MOE_MIX_FULL)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.mix_mode applies to head = softmoe, not head = %s",
                             tsr_head_names[cfg->head]);
    if (cfg->head == TSR_HEAD_SOFTMOE && cfg->mix_mode == TSR_MOE_MIX_NONE &&
        (cfg->random_router || cfg->router_normalization))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.%s: mix_mode = none routes nothing, so it has no router "
                             "to randomise or normalise",
                             cfg->random_router ? "random_router" : "router_normalization");
    if (cfg->head == TSR_HEAD_TOPK && cfg->random_router &&
        (cfg->noisy_routing || cfg->importance_loss_weight > 0))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.%s: a random Top-1 router (network.random_router) has %s",
                             cfg->noisy_routing ? "noisy_routing" : "importance_loss_weight",
                             cfg->noisy_routing ? "no logits to add noise to"
                                                : "no probabilities for the importance loss "
                                                  "to balance");
    if (cfg->head == TSR_HEAD_DENSE && cfg->random_router)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.random_router applies to head = softmoe or topk, not "
                             "head = dense");
    if (cfg->head != TSR_HEAD_TOPK && cfg->importance_loss_weight > 0)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.importance_loss_weight applies to head = topk, not head = %s",
                             tsr_head_names[cfg->head]);
    if (cfg->head != TSR_HEAD_TOPK && cfg->noisy_routing)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.noisy_routing applies to head = topk, not head = %s",
                             tsr_head_names[cfg->head]);
    if (cfg->head != TSR_HEAD_SOFTMOE && cfg->router_normalization)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.router_normalization applies to head = softmoe, not head = %s",
                             tsr_head_names[cfg->head]);
    if (cfg->head != TSR_HEAD_DENSE && cfg->scale_hidden_by_experts)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.scale_hidden_by_experts widens head = dense (the MoE "
                             "heads' experts have network.hidden units), not head = %s",
                             tsr_head_names[cfg->head]);
    if (cfg->head != TSR_HEAD_DENSE && cfg->hidden < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.hidden = %lld: head = %s needs at least 1 unit per expert "
                             "(0, no hidden layer, is for head = dense)",
                             (long long)cfg->hidden, tsr_head_names[cfg->head]);
    if (cfg->head == TSR_HEAD_DENSE && cfg->extra_dense)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.extra_dense adds a dense layer after an MoE head; "
                             "head = dense has its hidden layer already");
    if (cfg->encoder == TSR_ENCODER_MLP && (cfg->width_scale != 1 || cfg->padding != TSR_PADDING_SAME))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.width_scale and network.padding apply to the conv encoders; "
                             "encoder = mlp takes its widths from network.mlp_hidden");
    if (cfg->head == TSR_HEAD_DENSE && cfg->tokens != TSR_TOKENS_PER_CONV)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.tokens applies to the MoE heads; head = dense flattens");
    if (cfg->init < 0 || cfg->init > 2)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.init = %d is not one of 0 (dqn), 1 (rainbow), 2 (torch)",
                             cfg->init);
    if (cfg->encoder == TSR_ENCODER_IMPALA && cfg->padding != TSR_PADDING_SAME)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.padding = valid is not available for encoder = impala "
                             "(its convs and pools are always same)");
    /* Checked whatever the encoder, so a typo in it still surfaces; a config
     * struct filled by hand may leave it empty when the encoder is not mlp. */
    if (cfg->encoder == TSR_ENCODER_MLP || cfg->mlp_hidden[0]) {
        int64_t widths[TSR_MLP_MAX_LAYERS];
        int count;
        tsr_status st = tsr_mlp_hidden_parse(cfg->mlp_hidden, widths, &count, err);
        if (st != TSR_STATUS_OK) return st;
    }
    if (cfg->encoder == TSR_ENCODER_MLP && cfg->head != TSR_HEAD_DENSE)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.head = %s needs an image encoder to make tokens; "
                             "encoder = mlp takes head = dense", tsr_head_names[cfg->head]);
    return TSR_STATUS_OK;
}
