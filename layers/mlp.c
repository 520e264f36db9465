/* mlp.c — the MLP encoder for vector observations (CartPole): dense + ReLU
 * layers, in the pattern of layers.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/network.h"
#include "tessera/status.h"

tsr_status tsr_mlp_hidden_parse(const char *text, int64_t *widths, int *count, tsr_error *err)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (!isdigit((unsigned char)*p))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "network.mlp_hidden = '%s' is not a list of positive widths "
                                 "(e.g. \"64, 64\")", text);
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 1 || v > (1 << 20))
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "network.mlp_hidden = '%s': each width must be in [1, %d]", text,
                                 1 << 20);
        if (n == TSR_MLP_MAX_LAYERS)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "network.mlp_hidden = '%s' has more than %d layers", text,
                                 TSR_MLP_MAX_LAYERS);
        widths[n++] = v;
        p = end;
        if (*p && *p != ' ' && *p != '\t' && *p != ',')
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "network.mlp_hidden = '%s' is not a list of positive widths "
                                 "(e.g. \"64, 64\")", text);
    }
    if (n == 0)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "network.mlp_hidden is empty: give 1 to %d widths (e.g. \"64, 64\")",
                             TSR_MLP_MAX_LAYERS);
    *count = n;
    return TSR_STATUS_OK;
}

tsr_status tsr_mlp_encoder_init(tsr_mlp_encoder *e, tsr_params *p, const char *name,
                                int64_t in_features, const int64_t *widths, int num_layers,
                                tsr_init_spec init, tsr_error *err)
{
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    if (in_features < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "mlp encoder \"%s\": %lld input features; it needs at least 1", name,
                             (long long)in_features);
    if (num_layers < 1 || num_layers > TSR_MLP_MAX_LAYERS)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "mlp encoder \"%s\": %d layers; it takes 1 to %d", name, num_layers,
                             TSR_MLP_MAX_LAYERS);
    for (int i = 0; i < num_layers; i++)
        if (widths[i] < 1)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "mlp encoder \"%s\": layer %d has width %lld; it must be >= 1",
                                 name, i + 1, (long long)widths[i]);
    e->in_features = in_features;
    int64_t in = in_features;
    for (int i = 0; i < num_layers; i++) {
        char layer[TSR_LAYER_NAME_BYTES];
        int written = snprintf(layer, sizeof layer, "%s/dense%d", name, i + 1);
        TSR_ASSERT_MSG(written > 0 && (size_t)written < sizeof layer, "layer name too long");
        tsr_linear_layer_init(&e->layers[i], p, layer, in, widths[i], true, true, init);
        in = widths[i];
    }
    e->num_layers = num_layers;
    e->out_features = in;
    return TSR_STATUS_OK;
}

void tsr_mlp_encoder_reset(tsr_mlp_encoder *e, tsr_params *p, tsr_rng *rng)
{
    for (int i = 0; i < e->num_layers; i++) tsr_linear_layer_reset(&e->layers[i], p, rng);
}

tsr_tensor *tsr_mlp_encoder_forward(tsr_mlp_encoder *e, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x)
{
    TSR_ASSERT_MSG(x->ndim == 2 && x->shape[1] == e->in_features,
                   "%s expects (N, %lld) input, got %d dims", e->name, (long long)e->in_features,
                   x->ndim);
    for (int i = 0; i < e->num_layers; i++) x = tsr_linear_layer_forward(&e->layers[i], ctx, p, x);
    return x;
}

void tsr_mlp_encoder_fini(tsr_mlp_encoder *e)
{
    for (int i = 0; i < e->num_layers; i++) tsr_linear_layer_fini(&e->layers[i]);
    e->num_layers = 0;
}
