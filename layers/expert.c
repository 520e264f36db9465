/* expert.c — the expert MLP shared by Soft MoE and Top-1 MoE: dense(H) ->
 * ReLU -> dense(D) for each of E experts, all experts in one batched product.
 *
 * The experts' weights are stacked along a leading expert axis, so the rows
 * routed to expert e, x[e] (M, D), meet only that expert's weights:
 * h = relu(x W1[e]^T + b1[e]), y = h W2[e]^T + b2[e], one tsr_matmul over
 * the expert batch for each dense layer. Noisy experts perturb W1 and b1
 * with each expert's own factorised noise (moe.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/moe.h"
#include "tessera/status.h"

static void init_layers(tsr_expert_mlp *l, tsr_params *p, const char *name, int64_t num_experts,
                        int64_t token_dim, int64_t hidden, bool noisy, double sigma0)
{
    TSR_ASSERT_MSG(num_experts > 0 && token_dim > 0 && hidden > 0,
                   "expert MLP %s: %lld experts, token width %lld, hidden %lld", name,
                   (long long)num_experts, (long long)token_dim, (long long)hidden);
    TSR_ASSERT_MSG(sigma0 >= 0 && isfinite(sigma0), "expert MLP %s: sigma0 %g", name, sigma0);
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->num_experts = num_experts;
    l->token_dim = token_dim;
    l->hidden = hidden;
    l->noisy = noisy;
    l->sigma0 = sigma0;
    l->hidden_weight_sigma = l->hidden_bias_sigma = -1;
    char pname[TSR_PARAM_NAME_BYTES];
    /* Every kernel (ndim > 1) is prunable, the sigmas too, as in noisy.c. */
    unsigned weight_flags = TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY;
    const char *w = noisy ? "weight_mu" : "weight", *b = noisy ? "bias_mu" : "bias";
    snprintf(pname, sizeof pname, "%s/hidden/%s", name, w);
    l->hidden_weight = tsr_params_add(p, pname, 3, TSR_SHAPE(num_experts, hidden, token_dim),
                                      weight_flags);
    if (noisy) {
        snprintf(pname, sizeof pname, "%s/hidden/weight_sigma", name);
        l->hidden_weight_sigma = tsr_params_add(
            p, pname, 3, TSR_SHAPE(num_experts, hidden, token_dim), weight_flags);
    }
    snprintf(pname, sizeof pname, "%s/hidden/%s", name, b);
    l->hidden_bias = tsr_params_add(p, pname, 2, TSR_SHAPE(num_experts, hidden), 0);
    if (noisy) {
        snprintf(pname, sizeof pname, "%s/hidden/bias_sigma", name);
        l->hidden_bias_sigma = tsr_params_add(p, pname, 2, TSR_SHAPE(num_experts, hidden), 0);
    }
    snprintf(pname, sizeof pname, "%s/out/weight", name);
    l->out_weight = tsr_params_add(p, pname, 3, TSR_SHAPE(num_experts, token_dim, hidden),
                                   weight_flags);
    snprintf(pname, sizeof pname, "%s/out/bias", name);
    l->out_bias = tsr_params_add(p, pname, 2, TSR_SHAPE(num_experts, token_dim), 0);
}

void tsr_expert_mlp_init(tsr_expert_mlp *l, tsr_params *p, const char *name, int64_t num_experts,
                         int64_t token_dim, int64_t hidden)
{
    init_layers(l, p, name, num_experts, token_dim, hidden, false, 0.0);
}

void tsr_expert_mlp_init_noisy(tsr_expert_mlp *l, tsr_params *p, const char *name,
                               int64_t num_experts, int64_t token_dim, int64_t hidden,
                               double sigma0)
{
    init_layers(l, p, name, num_experts, token_dim, hidden, true, sigma0);
}

void tsr_expert_mlp_reset(tsr_expert_mlp *l, tsr_params *p, tsr_rng *rng)
{
    /* Each expert is initialised like one Flax Dense kernel: the fans are one
     * expert's, not the stacked tensor's. */
    if (l->noisy) {
        /* U(-a, a) with a = sqrt(3 scale / fan_in) = 1/sqrt(D) at scale 1/3. */
        tsr_init_variance_scaling_uniform(tsr_params_tensor(p, l->hidden_weight), 1.0 / 3.0,
                                          l->token_dim, rng);
        tsr_init_variance_scaling_uniform(tsr_params_tensor(p, l->hidden_bias), 1.0 / 3.0,
                                          l->token_dim, rng);
        double sigma = l->sigma0 / sqrt((double)l->token_dim);
        tsr_tensor_fill(tsr_params_tensor(p, l->hidden_weight_sigma), sigma);
        tsr_tensor_fill(tsr_params_tensor(p, l->hidden_bias_sigma), sigma);
    } else {
        tsr_init_xavier_uniform(tsr_params_tensor(p, l->hidden_weight), l->token_dim, l->hidden,
                                rng);
        tsr_init_zeros(tsr_params_tensor(p, l->hidden_bias));
    }
    tsr_init_xavier_uniform(tsr_params_tensor(p, l->out_weight), l->hidden, l->token_dim, rng);
    tsr_init_zeros(tsr_params_tensor(p, l->out_bias));
}

/* The first layer's weight and bias for one forward: the means, or the means
 * plus each expert's scaled noise (differentiable in means and sigmas). */
static void first_layer(tsr_expert_mlp *l, tsr_ctx *ctx, tsr_params *p, const tsr_noise *noise,
                        tsr_tensor **weight, tsr_tensor **bias)
{
    *weight = tsr_params_tensor(p, l->hidden_weight);
    *bias = tsr_params_tensor(p, l->hidden_bias);
    if (!l->noisy) return;
    TSR_ASSERT_MSG(noise != NULL, "%s has noisy experts: pass a tsr_noise to the forward",
                   l->name);
    if (noise->means_only) return;
    TSR_ASSERT_MSG(noise->rng != NULL, "%s: noise without an rng", l->name);
    int64_t e = l->num_experts, h = l->hidden, d = l->token_dim;
    tsr_dtype dtype = (*weight)->dtype;
    tsr_tensor *weight_noise = tsr_ctx_tensor(ctx, dtype, 3, TSR_SHAPE(e, h, d));
    tsr_tensor *bias_noise = tsr_ctx_tensor(ctx, dtype, 2, TSR_SHAPE(e, h));
    double *in = tsr_arena_alloc(tsr_ctx_arena(ctx), (size_t)d * sizeof *in);
    for (int64_t k = 0; k < e; k++) {
        for (int64_t j = 0; j < d; j++) in[j] = tsr_noisy_factor(noise->rng);
        for (int64_t i = 0; i < h; i++) {
            double out = tsr_noisy_factor(noise->rng);
            int64_t row = (k * h + i) * d;
            if (dtype == TSR_DTYPE_F64) {
                for (int64_t j = 0; j < d; j++) tsr_f64(weight_noise)[row + j] = out * in[j];
                tsr_f64(bias_noise)[k * h + i] = out;
            } else {
                for (int64_t j = 0; j < d; j++)
                    tsr_f32(weight_noise)[row + j] = (float)(out * in[j]);
                tsr_f32(bias_noise)[k * h + i] = (float)out;
            }
        }
    }
    *weight = tsr_add(ctx, *weight,
                      tsr_mul(ctx, tsr_params_tensor(p, l->hidden_weight_sigma), weight_noise));
    *bias = tsr_add(ctx, *bias, tsr_mul(ctx, tsr_params_tensor(p, l->hidden_bias_sigma), bias_noise));
}

tsr_tensor *tsr_expert_mlp_forward(tsr_expert_mlp *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                   const tsr_noise *noise, tsr_tensor **hidden)
{
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 3 && x->shape[0] == l->num_experts && x->shape[2] == l->token_dim,
                   "%s expects (%lld, M, %lld) input, got %s", l->name, (long long)l->num_experts,
                   (long long)l->token_dim, tsr_tensor_shape_str(x, sx, sizeof sx));
    tsr_tensor *w1, *b1;
    first_layer(l, ctx, p, noise, &w1, &b1);
    tsr_tensor *h = tsr_matmul(ctx, x, w1, false, true);
    h = tsr_batched_bias(ctx, h, b1, true);
    tsr_tensor *y = tsr_matmul(ctx, h, tsr_params_tensor(p, l->out_weight), false, true);
    y = tsr_batched_bias(ctx, y, tsr_params_tensor(p, l->out_bias), false);
    if (hidden) *hidden = h;
    double rows = (double)(x->shape[0] * x->shape[1]);
    tsr_summary_record(ctx, l->name, y, tsr_expert_mlp_param_count(l),
                       2.0 * rows * 2.0 * (double)(l->token_dim * l->hidden));
    return y;
}

int64_t tsr_expert_mlp_param_count(const tsr_expert_mlp *l)
{
    int64_t first = l->token_dim * l->hidden + l->hidden;
    return l->num_experts * ((l->noisy ? 2 : 1) * first + l->hidden * l->token_dim + l->token_dim);
}

void tsr_expert_mlp_fini(tsr_expert_mlp *l) { (void)l; }
