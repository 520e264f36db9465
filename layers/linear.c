/* linear.c — the dense layer. */
#include <stdio.h>
#include <string.h>

#include "tessera/layers.h"
#include "tessera/status.h"

void tsr_linear_layer_init(tsr_linear_layer *l, tsr_params *p, const char *name, int64_t in,
                           int64_t out, bool bias, bool relu, tsr_init_spec init)
{
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in = in;
    l->out = out;
    l->relu = relu;
    l->init = init;
    char pname[TSR_PARAM_NAME_BYTES];
    snprintf(pname, sizeof pname, "%s/weight", name);
    l->weight = tsr_params_add(p, pname, 2, TSR_SHAPE(out, in), TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY);
    l->bias = -1;
    if (bias) {
        snprintf(pname, sizeof pname, "%s/bias", name);
        l->bias = tsr_params_add(p, pname, 1, TSR_SHAPE(out), 0);
    }
}

void tsr_linear_layer_reset(tsr_linear_layer *l, tsr_params *p, tsr_rng *rng)
{
    tsr_init_apply(tsr_params_tensor(p, l->weight), l->init, 0, 0, rng);
    if (l->bias >= 0)
        tsr_init_bias(tsr_params_tensor(p, l->bias), l->init, tsr_params_tensor(p, l->weight), rng);
}

tsr_tensor *tsr_linear_layer_forward(tsr_linear_layer *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x)
{
    TSR_ASSERT_MSG(x->ndim == 2 && x->shape[1] == l->in, "%s expects (N, %lld) input, got %d dims",
                   l->name, (long long)l->in, x->ndim);
    tsr_tensor *b = l->bias >= 0 ? tsr_params_tensor(p, l->bias) : NULL;
    tsr_tensor *y = tsr_linear(ctx, x, tsr_params_tensor(p, l->weight), b, l->relu, &l->cache);
    tsr_summary_record(ctx, l->name, y, l->in * l->out + (b ? l->out : 0),
                       2.0 * (double)x->shape[0] * (double)(l->in * l->out));
    return y;
}

void tsr_linear_layer_fini(tsr_linear_layer *l) { tsr_weight_cache_fini(&l->cache); }
