/* expert.c — the expert MLP shared by Soft MoE and Top-1 MoE: dense(H) ->
 * ReLU -> dense(D) for each of E experts, all experts in one batched product.
 *
 * The experts' weights are stacked along a leading expert axis, so the rows
 * routed to expert e, x[e] (M, D), meet only that expert's weights:
 * h = relu(x W1[e]^T + b1[e]), y = h W2[e]^T + b2[e], one tsr_matmul over
 * the expert batch for each dense layer. */
#include <stdio.h>
#include <string.h>

#include "tessera/moe.h"
#include "tessera/status.h"

void tsr_expert_mlp_init(tsr_expert_mlp *l, tsr_params *p, const char *name, int64_t num_experts,
                         int64_t token_dim, int64_t hidden)
{
    TSR_ASSERT_MSG(num_experts > 0 && token_dim > 0 && hidden > 0,
                   "expert MLP %s: %lld experts, token width %lld, hidden %lld", name,
                   (long long)num_experts, (long long)token_dim, (long long)hidden);
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->num_experts = num_experts;
    l->token_dim = token_dim;
    l->hidden = hidden;
    char pname[TSR_PARAM_NAME_BYTES];
    unsigned weight_flags = TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY;
    snprintf(pname, sizeof pname, "%s/hidden/weight", name);
    l->hidden_weight = tsr_params_add(p, pname, 3, TSR_SHAPE(num_experts, hidden, token_dim),
                                      weight_flags);
    snprintf(pname, sizeof pname, "%s/hidden/bias", name);
    l->hidden_bias = tsr_params_add(p, pname, 2, TSR_SHAPE(num_experts, hidden), 0);
    snprintf(pname, sizeof pname, "%s/out/weight", name);
    l->out_weight = tsr_params_add(p, pname, 3, TSR_SHAPE(num_experts, token_dim, hidden),
                                   weight_flags);
    snprintf(pname, sizeof pname, "%s/out/bias", name);
    l->out_bias = tsr_params_add(p, pname, 2, TSR_SHAPE(num_experts, token_dim), 0);
}

void tsr_expert_mlp_reset(tsr_expert_mlp *l, tsr_params *p, tsr_rng *rng)
{
    /* Each expert is initialised like one Flax Dense kernel: the fans are one
     * expert's, not the stacked tensor's. */
    tsr_init_xavier_uniform(tsr_params_tensor(p, l->hidden_weight), l->token_dim, l->hidden, rng);
    tsr_init_xavier_uniform(tsr_params_tensor(p, l->out_weight), l->hidden, l->token_dim, rng);
    tsr_init_zeros(tsr_params_tensor(p, l->hidden_bias));
    tsr_init_zeros(tsr_params_tensor(p, l->out_bias));
}

tsr_tensor *tsr_expert_mlp_forward(tsr_expert_mlp *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                   tsr_tensor **hidden)
{
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 3 && x->shape[0] == l->num_experts && x->shape[2] == l->token_dim,
                   "%s expects (%lld, M, %lld) input, got %s", l->name, (long long)l->num_experts,
                   (long long)l->token_dim, tsr_tensor_shape_str(x, sx, sizeof sx));
    tsr_tensor *h = tsr_matmul(ctx, x, tsr_params_tensor(p, l->hidden_weight), false, true);
    h = tsr_batched_bias(ctx, h, tsr_params_tensor(p, l->hidden_bias), true);
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
    return l->num_experts * (2 * l->token_dim * l->hidden + l->hidden + l->token_dim);
}

void tsr_expert_mlp_fini(tsr_expert_mlp *l) { (void)l; }
