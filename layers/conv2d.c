/* conv2d.c — the convolution layer (channels-last activations, OIHW weights). */
#include <stdio.h>
#include <string.h>

#include "tessera/layers.h"
#include "tessera/status.h"

void tsr_conv2d_layer_init(tsr_conv2d_layer *l, tsr_params *p, const char *name,
                           int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride,
                           tsr_padding padding, bool bias, bool relu, tsr_init_spec init)
{
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in_channels = in_channels;
    l->out_channels = out_channels;
    l->kernel = kernel;
    l->stride = stride;
    l->padding = padding;
    l->relu = relu;
    l->init = init;
    char pname[TSR_PARAM_NAME_BYTES];
    snprintf(pname, sizeof pname, "%s/weight", name);
    l->weight = tsr_params_add(p, pname, 4, TSR_SHAPE(out_channels, in_channels, kernel, kernel),
                               TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY);
    l->bias = -1;
    if (bias) {
        snprintf(pname, sizeof pname, "%s/bias", name);
        l->bias = tsr_params_add(p, pname, 1, TSR_SHAPE(out_channels), 0);
    }
}

void tsr_conv2d_layer_reset(tsr_conv2d_layer *l, tsr_params *p, tsr_rng *rng)
{
    tsr_init_apply(tsr_params_tensor(p, l->weight), l->init, 0, 0, rng);
    if (l->bias >= 0)
        tsr_init_bias(tsr_params_tensor(p, l->bias), l->init, tsr_params_tensor(p, l->weight), rng);
}

tsr_tensor *tsr_conv2d_layer_forward(tsr_conv2d_layer *l, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x)
{
    TSR_ASSERT_MSG(x->ndim == 4 && x->shape[3] == l->in_channels,
                   "%s expects (N, H, W, %lld) input", l->name, (long long)l->in_channels);
    tsr_tensor *b = l->bias >= 0 ? tsr_params_tensor(p, l->bias) : NULL;
    tsr_tensor *y = tsr_conv2d(ctx, x, tsr_params_tensor(p, l->weight), b, (int)l->stride,
                               l->padding, l->relu, &l->cache);
    int64_t weights = l->out_channels * l->in_channels * l->kernel * l->kernel;
    double positions = (double)(y->shape[0] * y->shape[1] * y->shape[2]);
    tsr_summary_record(ctx, l->name, y, weights + (b ? l->out_channels : 0),
                       2.0 * positions * (double)(l->in_channels * l->kernel * l->kernel) *
                           (double)l->out_channels);
    return y;
}

void tsr_conv2d_layer_fini(tsr_conv2d_layer *l) { tsr_weight_cache_fini(&l->cache); }
