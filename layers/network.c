/* network.c — encoder, tokens, mixture of experts and head, from one config. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/network.h"
#include "tessera/status.h"

/* network.init's kernels (and, for torch, biases) of the dense layers. */
static tsr_init_spec network_init_spec(int init)
{
    switch (init) {
    case 1: return tsr_head_init_rainbow();
    case 2: return (tsr_init_spec){TSR_INIT_TORCH, 0.0};
    default: return (tsr_init_spec){TSR_INIT_XAVIER_UNIFORM, 0.0};
    }
}

static tsr_status build_encoder(tsr_network *net, tsr_image_shape in, tsr_image_shape *out,
                                tsr_error *err)
{
    const tsr_network_config *c = &net->config;
    static const tsr_encoder_init encoder_inits[] = {
        TSR_ENCODER_INIT_XAVIER_UNIFORM, TSR_ENCODER_INIT_RAINBOW, TSR_ENCODER_INIT_TORCH};
    tsr_encoder_init init = encoder_inits[c->init];
    tsr_status s;
    switch ((tsr_encoder_kind)c->encoder) {
    case TSR_ENCODER_NATURE: {
        tsr_nature_options o = tsr_nature_options_default();
        o.width_scale = c->width_scale;
        o.padding = (tsr_padding)c->padding;
        o.init = init;
        s = tsr_nature_encoder_init(&net->nature, &net->params, "encoder", in.h, in.w, in.c, &o, err);
        if (s == TSR_STATUS_OK) *out = tsr_nature_encoder_output_shape(&net->nature);
        return s;
    }
    case TSR_ENCODER_IMPALA: {
        tsr_impala_options o = tsr_impala_options_default();
        o.width_scale = c->width_scale;
        s = tsr_impala_encoder_init(&net->impala, &net->params, "encoder", in.h, in.w, in.c, &o, err);
        if (s == TSR_STATUS_OK) *out = tsr_impala_encoder_output_shape(&net->impala);
        return s;
    }
    case TSR_ENCODER_MINATAR: {
        tsr_minatar_options o = tsr_minatar_options_default();
        o.width_scale = c->width_scale;
        o.padding = (tsr_padding)c->padding;
        o.init = init;
        s = tsr_minatar_encoder_init(&net->minatar, &net->params, "encoder", in.h, in.w, in.c, &o, err);
        if (s == TSR_STATUS_OK) *out = tsr_minatar_encoder_output_shape(&net->minatar);
        return s;
    }
    case TSR_ENCODER_MLP: {
        int64_t widths[TSR_MLP_MAX_LAYERS];
        int count = 0;
        s = tsr_mlp_hidden_parse(c->mlp_hidden, widths, &count, err);
        tsr_init_spec spec = network_init_spec(c->init);
        if (s == TSR_STATUS_OK)
            s = tsr_mlp_encoder_init(&net->mlp, &net->params, "encoder", in.h * in.w * in.c, widths,
                                     count, spec, err);
        if (s == TSR_STATUS_OK) *out = (tsr_image_shape){1, 1, net->mlp.out_features};
        return s;
    }
    }
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "network.encoder: unknown value %d",
                         c->encoder);
}

static tsr_status build_moe(tsr_network *net, tsr_image_shape features, int64_t *flat, tsr_error *err)
{
    const tsr_network_config *c = &net->config;
    tsr_tokenizer_options to = tsr_tokenizer_options_default();
    to.kind = (tsr_token_kind)c->tokens;
    to.patch_size = c->patch_size;
    to.embedding = c->patch_embedding;
    tsr_status s = tsr_tokenizer_init(&net->tokenizer, &net->params, "tokens", features, &to, err);
    if (s != TSR_STATUS_OK) return s;
    int64_t tokens, dim;
    tsr_tokenizer_token_shape(&net->tokenizer, &tokens, &dim);
    *flat = tokens * dim;
    if (c->head == TSR_HEAD_SOFTMOE) {
        tsr_soft_moe_config m = tsr_soft_moe_config_default();
        m.num_experts = c->num_experts;
        m.capacity_factor = c->capacity_factor;
        m.expert_hidden = c->hidden;
        m.normalization = c->router_normalization;
        m.use_random_phi = c->random_router;
        m.mix_mode = (tsr_moe_mix_mode)c->mix_mode;
        m.noisy_experts = c->noisy;
        m.noisy_sigma0 = c->noisy_sigma0;
        return tsr_soft_moe_init(&net->soft_moe, &net->params, "moe", tokens, dim, &m, err);
    }
    tsr_topk_moe_config m = tsr_topk_moe_config_default();
    m.num_experts = c->num_experts;
    m.num_selected = c->top_k;
    m.capacity_factor = c->capacity_factor;
    m.expert_hidden = c->hidden;
    m.noisy_routing = c->noisy_routing;
    m.random_router = c->random_router;
    m.noise_std = c->routing_noise_std;
    m.importance_loss = c->importance_loss_weight > 0;
    if (m.importance_loss) m.importance_weight = c->importance_loss_weight;
    m.noisy_experts = c->noisy;
    m.noisy_sigma0 = c->noisy_sigma0;
    return tsr_topk_moe_init(&net->topk, &net->params, "moe", tokens, dim, &m, err);
}

tsr_status tsr_network_init(tsr_network *net, const tsr_network_config *cfg, tsr_image_shape input,
                            int64_t num_actions, int64_t num_atoms, float input_scale,
                            tsr_dtype dtype, tsr_error *err)
{
    memset(net, 0, sizeof *net);
    tsr_status s = tsr_network_config_validate(cfg, err);
    if (s != TSR_STATUS_OK) return s;
    if (num_actions < 1 || num_atoms < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "a network needs at least one action and one atom (got %lld, %lld)",
                             (long long)num_actions, (long long)num_atoms);
    net->config = *cfg;
    net->input = input;
    net->num_actions = num_actions;
    net->num_atoms = num_atoms;
    net->input_scale = input_scale;
    tsr_params_init_dtype(&net->params, dtype);

    tsr_image_shape features = {0}; /* unset when the encoder fails */
    s = build_encoder(net, input, &features, err);
    int64_t flat = features.h * features.w * features.c;
    if (s == TSR_STATUS_OK && cfg->head != TSR_HEAD_DENSE) s = build_moe(net, features, &flat, err);
    if (s == TSR_STATUS_OK) {
        tsr_head_options h = tsr_head_options_default(num_actions);
        bool moe = cfg->head != TSR_HEAD_DENSE;
        h.hidden_units = moe && !cfg->extra_dense ? 0 : cfg->hidden;
        h.hidden_scale = !moe && cfg->scale_hidden_by_experts ? cfg->num_experts : 1;
        h.dueling = cfg->dueling;
        h.distributional = num_atoms > 1;
        h.num_atoms = num_atoms > 1 ? num_atoms : h.num_atoms;
        h.noisy = cfg->noisy;
        h.noisy_sigma0 = cfg->noisy_sigma0;
        h.init = network_init_spec(cfg->init);
        s = tsr_head_init(&net->head, &net->params, "head", flat, &h, err);
    }
    if (s != TSR_STATUS_OK) {
        tsr_network_fini(net);
        return s;
    }
    tsr_params_finalize(&net->params);
    return TSR_STATUS_OK;
}

void tsr_network_reset(tsr_network *net, tsr_rng *rng)
{
    tsr_params *p = &net->params;
    switch ((tsr_encoder_kind)net->config.encoder) {
    case TSR_ENCODER_NATURE: tsr_nature_encoder_reset(&net->nature, p, rng); break;
    case TSR_ENCODER_IMPALA: tsr_impala_encoder_reset(&net->impala, p, rng); break;
    case TSR_ENCODER_MINATAR: tsr_minatar_encoder_reset(&net->minatar, p, rng); break;
    case TSR_ENCODER_MLP: tsr_mlp_encoder_reset(&net->mlp, p, rng); break;
    }
    if (net->config.head != TSR_HEAD_DENSE) tsr_tokenizer_reset(&net->tokenizer, p, rng);
    if (net->config.head == TSR_HEAD_SOFTMOE) tsr_soft_moe_reset(&net->soft_moe, p, rng);
    if (net->config.head == TSR_HEAD_TOPK) tsr_topk_moe_reset(&net->topk, p, rng);
    tsr_head_reset(&net->head, p, rng);
    tsr_params_bump_version(p);
}

bool tsr_network_uses_noise(const tsr_network *net)
{
    const tsr_network_config *c = &net->config;
    return c->noisy || (c->head != TSR_HEAD_DENSE && c->random_router) ||
           (c->head == TSR_HEAD_TOPK && c->noisy_routing);
}

/* encoder = mlp: obs (N, F) or (N, h, w, c) with h w c = F, uint8 or float. */
static tsr_tensor *mlp_forward(tsr_network *net, tsr_ctx *ctx, tsr_tensor *obs,
                               const tsr_noise *noise)
{
    char shape[96];
    int64_t features = net->input.h * net->input.w * net->input.c;
    bool flat = obs->ndim == 2 && obs->shape[1] == features;
    bool image = obs->ndim == 4 && obs->shape[1] * obs->shape[2] * obs->shape[3] == features;
    TSR_ASSERT_MSG(flat || image, "mlp network for (N, %lld) observations got %s",
                   (long long)features, tsr_tensor_shape_str(obs, shape, sizeof shape));
    TSR_ASSERT_MSG(noise || !tsr_network_uses_noise(net), "this network needs noise");
    tsr_params *p = &net->params;
    tsr_tensor *x = obs;
    if (obs->dtype == TSR_DTYPE_U8) {
        x = tsr_u8_to_f32(ctx, obs, net->input_scale);
        if (p->dtype == TSR_DTYPE_F64) { /* gradient checks only */
            tsr_tensor *d = tsr_ctx_tensor(ctx, TSR_DTYPE_F64, x->ndim, x->shape);
            tsr_tensor_copy(d, x);
            x = d;
        }
    }
    if (image) x = tsr_reshape(ctx, x, 2, TSR_SHAPE(obs->shape[0], features));
    x = tsr_mlp_encoder_forward(&net->mlp, ctx, p, x);
    net->features = x;
    return tsr_head_forward(&net->head, ctx, p, x, noise);
}

tsr_tensor *tsr_network_forward(tsr_network *net, tsr_ctx *ctx, tsr_tensor *obs,
                                const tsr_noise *noise)
{
    if (net->config.encoder == TSR_ENCODER_MLP) return mlp_forward(net, ctx, obs, noise);
    char shape[96];
    TSR_ASSERT_MSG(obs->ndim == 4 && obs->shape[1] == net->input.h && obs->shape[2] == net->input.w &&
                       obs->shape[3] == net->input.c,
                   "network for (N, %lld, %lld, %lld) observations got %s", (long long)net->input.h,
                   (long long)net->input.w, (long long)net->input.c,
                   tsr_tensor_shape_str(obs, shape, sizeof shape));
    TSR_ASSERT_MSG(noise || !tsr_network_uses_noise(net), "this network needs noise");
    tsr_params *p = &net->params;
    tsr_tensor *x = obs;
    if (obs->dtype == TSR_DTYPE_U8) {
        x = tsr_u8_to_f32(ctx, obs, net->input_scale);
        if (p->dtype == TSR_DTYPE_F64) { /* gradient checks only */
            tsr_tensor *d = tsr_ctx_tensor(ctx, TSR_DTYPE_F64, 4, x->shape);
            tsr_tensor_copy(d, x);
            x = d;
        }
    }
    switch ((tsr_encoder_kind)net->config.encoder) {
    case TSR_ENCODER_NATURE: x = tsr_nature_encoder_forward(&net->nature, ctx, p, x); break;
    case TSR_ENCODER_IMPALA: x = tsr_impala_encoder_forward(&net->impala, ctx, p, x); break;
    case TSR_ENCODER_MINATAR: x = tsr_minatar_encoder_forward(&net->minatar, ctx, p, x); break;
    case TSR_ENCODER_MLP: break; /* mlp_forward */
    }
    net->features = x;
    if (net->config.head == TSR_HEAD_SOFTMOE) {
        x = tsr_tokenizer_forward(&net->tokenizer, ctx, p, x);
        x = tsr_soft_moe_forward_noise(&net->soft_moe, ctx, p, x, noise, &net->soft_moe_outputs);
    } else if (net->config.head == TSR_HEAD_TOPK) {
        x = tsr_tokenizer_forward(&net->tokenizer, ctx, p, x);
        x = tsr_topk_moe_forward_noise(&net->topk, ctx, p, x, noise, &net->topk_outputs);
    }
    return tsr_head_forward(&net->head, ctx, p, x, noise);
}

static int add_cache(tsr_network_cache *out, int n, int max, tsr_weight_cache *cache,
                     const tsr_tensor *weight)
{
    TSR_ASSERT_MSG(n < max, "more than %d linear weight caches", max);
    out[n] = (tsr_network_cache){cache, weight};
    return n + 1;
}

static int add_dense(tsr_network *net, tsr_head_dense *d, tsr_network_cache *out, int n, int max)
{
    tsr_params *p = &net->params;
    if (!d->noisy)
        return add_cache(out, n, max, &d->linear.cache, tsr_params_tensor(p, d->linear.weight));
    tsr_noisy_linear *l = &d->noisy_linear;
    n = add_cache(out, n, max, &l->cache_mu, tsr_params_tensor(p, l->weight_mu));
    return add_cache(out, n, max, &l->cache_sigma, tsr_params_tensor(p, l->weight_sigma));
}

int tsr_network_linear_caches(tsr_network *net, tsr_network_cache *out, int max)
{
    int n = 0;
    tsr_params *p = &net->params;
    if (net->config.encoder == TSR_ENCODER_MLP)
        for (int i = 0; i < net->mlp.num_layers; i++)
            n = add_cache(out, n, max, &net->mlp.layers[i].cache,
                          tsr_params_tensor(p, net->mlp.layers[i].weight));
    if (net->config.head == TSR_HEAD_TOPK && net->topk.router >= 0) /* none when random */
        n = add_cache(out, n, max, &net->topk.router_cache, tsr_params_tensor(p, net->topk.router));
    if (net->head.hidden > 0) n = add_dense(net, &net->head.hidden_layer, out, n, max);
    n = add_dense(net, &net->head.output, out, n, max);
    if (net->head.options.dueling) n = add_dense(net, &net->head.value, out, n, max);
    return n;
}

bool tsr_network_head_hidden(const tsr_network *net, tsr_tensor *rows)
{
    const tsr_tensor *h = net->config.head == TSR_HEAD_SOFTMOE ? net->soft_moe_outputs.hidden
                          : net->config.head == TSR_HEAD_TOPK  ? net->topk_outputs.hidden
                                                               : net->head.hidden_out;
    if (!h) return false;
    int64_t units = h->shape[h->ndim - 1];
    *rows = tsr_tensor_reshape(h, 2, (int64_t[]){tsr_tensor_numel(h) / units, units});
    return true;
}

void tsr_network_fini(tsr_network *net)
{
    tsr_nature_encoder_fini(&net->nature);
    tsr_impala_encoder_fini(&net->impala);
    tsr_minatar_encoder_fini(&net->minatar);
    tsr_mlp_encoder_fini(&net->mlp);
    tsr_tokenizer_fini(&net->tokenizer);
    tsr_soft_moe_fini(&net->soft_moe);
    tsr_topk_moe_fini(&net->topk);
    tsr_head_fini(&net->head);
    tsr_params_fini(&net->params);
}

static void print_shape(FILE *out, int ndim, const int64_t *shape)
{
    char buf[96];
    size_t used = 0;
    for (int i = 0; i < ndim && used < sizeof buf; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, i ? " x %lld" : "%lld",
                                 (long long)shape[i]);
    fprintf(out, "%-22s", buf);
}

void tsr_network_print_summary(tsr_network *net, tsr_ctx *ctx, int64_t batch, FILE *out)
{
    tsr_tensor *obs = tsr_tensor_new(TSR_DTYPE_U8, 4,
                                     TSR_SHAPE(batch, net->input.h, net->input.w, net->input.c));
    tsr_rng rng;
    tsr_rng_init(&rng, 0, TSR_RNG_STREAM_NOISE);
    tsr_noise noise = {.rng = &rng, .means_only = false};
    tsr_summary summary = {0};
    tsr_ctx_begin_step(ctx);
    bool was = tsr_ctx_set_grad(ctx, false);
    tsr_ctx_set_summary(ctx, &summary);
    tsr_tensor *y = tsr_network_forward(net, ctx, obs, &noise);
    tsr_ctx_set_summary(ctx, NULL);
    tsr_ctx_set_grad(ctx, was);

    fprintf(out, "%-34s %-22s %12s %16s\n", "layer", "output", "parameters", "forward FLOPs");
    fprintf(out, "%-34s ", "input");
    print_shape(out, 4, obs->shape);
    fprintf(out, "\n");
    int64_t params = 0;
    double flops = 0;
    for (int i = 0; i < summary.count; i++) {
        const tsr_summary_row *r = &summary.rows[i];
        fprintf(out, "%-34s ", r->name);
        print_shape(out, r->ndim, r->shape);
        fprintf(out, " %12lld %16.0f\n", (long long)r->params, r->flops);
        params += r->params;
        flops += r->flops;
    }
    fprintf(out, "%-34s ", "total");
    print_shape(out, y->ndim, y->shape);
    fprintf(out, " %12lld %16.0f\n", (long long)params, flops);
    if (params != tsr_params_count(&net->params))
        fprintf(out, "note: the rows count %lld parameters, the block holds %lld\n",
                (long long)params, (long long)tsr_params_count(&net->params));
    tsr_summary_fini(&summary);
    tsr_tensor_free(obs);
}
