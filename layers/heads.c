/* heads.c — value heads: Q, dueling, distributional, each optionally noisy
 * (components.md §1.1, §1.3; Dopamine's NatureDQNNetwork, RainbowNetwork and
 * FullRainbowNetwork heads, and labs/moes' widened BASELINE head). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/encoders.h"
#include "tessera/status.h"

tsr_head_options tsr_head_options_default(int64_t num_actions)
{
    return (tsr_head_options){
        .num_actions = num_actions,
        .hidden_units = 512,
        .hidden_scale = 1,
        .dueling = false,
        .distributional = false,
        .num_atoms = 51,
        .noisy = false,
        .noisy_sigma0 = TSR_NOISY_SIGMA0,
        .init = {TSR_INIT_XAVIER_UNIFORM, 0.0},
    };
}

tsr_init_spec tsr_head_init_rainbow(void)
{
    return (tsr_init_spec){TSR_INIT_VARIANCE_SCALING_UNIFORM, 1.0 / sqrt(3.0)};
}

/* ==== a dense layer that may be noisy ==================================== */

static void dense_init(tsr_head_dense *d, tsr_params *p, const char *head, const char *suffix,
                       int64_t in, int64_t out, bool relu, const tsr_head_options *o)
{
    char name[TSR_LAYER_NAME_BYTES];
    int written = snprintf(name, sizeof name, "%s/%s", head, suffix);
    TSR_ASSERT_MSG(written >= 0 && (size_t)written < sizeof name, "layer name \"%s/%s\" is too long",
                   head, suffix);
    d->noisy = o->noisy;
    if (o->noisy)
        tsr_noisy_linear_init(&d->noisy_linear, p, name, in, out, relu, o->noisy_sigma0);
    else
        tsr_linear_layer_init(&d->linear, p, name, in, out, true, relu, o->init);
}

static void dense_reset(tsr_head_dense *d, tsr_params *p, tsr_rng *rng)
{
    if (d->noisy) tsr_noisy_linear_reset(&d->noisy_linear, p, rng);
    else tsr_linear_layer_reset(&d->linear, p, rng);
}

static tsr_tensor *dense_forward(tsr_head_dense *d, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                                 const tsr_noise *noise)
{
    if (d->noisy) return tsr_noisy_linear_forward(&d->noisy_linear, ctx, p, x, noise);
    return tsr_linear_layer_forward(&d->linear, ctx, p, x);
}

static void dense_fini(tsr_head_dense *d)
{
    if (d->noisy) tsr_noisy_linear_fini(&d->noisy_linear);
    else tsr_linear_layer_fini(&d->linear);
}

static int64_t dense_params(const tsr_head_dense *d)
{
    if (d->noisy) return 2 * (d->noisy_linear.in * d->noisy_linear.out + d->noisy_linear.out);
    return d->linear.in * d->linear.out + (d->linear.bias >= 0 ? d->linear.out : 0);
}

/* ==== the head =========================================================== */

static tsr_status invalid(tsr_error *err, const char *name, const char *key, int64_t value,
                          const char *allowed)
{
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "head \"%s\": %s = %lld is not allowed: it must be %s", name, key,
                         (long long)value, allowed);
}

tsr_status tsr_head_init(tsr_head *h, tsr_params *p, const char *name, int64_t in_features,
                         const tsr_head_options *options, tsr_error *err)
{
    TSR_ASSERT(options != NULL && name != NULL);
    tsr_head_options o = *options;
    memset(h, 0, sizeof *h);
    int written = snprintf(h->name, sizeof h->name, "%s", name);
    TSR_ASSERT_MSG(written >= 0 && (size_t)written < sizeof h->name, "layer name \"%s\" is too long",
                   name);
    if (o.num_actions < 1) return invalid(err, name, "num_actions", o.num_actions, "an integer >= 1");
    if (in_features < 1) return invalid(err, name, "in_features", in_features, "an integer >= 1");
    if (o.hidden_units < 0)
        return invalid(err, name, "hidden_units", o.hidden_units, "an integer >= 0 (0: no hidden layer)");
    if (o.hidden_scale < 1) return invalid(err, name, "hidden_scale", o.hidden_scale, "an integer >= 1");
    if (o.distributional && o.num_atoms < 2)
        return invalid(err, name, "num_atoms", o.num_atoms, "an integer >= 2 for a distributional head");
    if (o.noisy && !(o.noisy_sigma0 >= 0 && isfinite(o.noisy_sigma0)))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "head \"%s\": noisy_sigma0 = %g is not allowed: it must be a finite "
                             "number >= 0",
                             name, o.noisy_sigma0);
    if (!o.noisy && o.init.kind != TSR_INIT_XAVIER_UNIFORM && o.init.kind != TSR_INIT_LECUN_NORMAL &&
        o.init.kind != TSR_INIT_VARIANCE_SCALING_UNIFORM && o.init.kind != TSR_INIT_ZEROS &&
        o.init.kind != TSR_INIT_TORCH)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "head \"%s\": init kind %d is not allowed: use xavier_uniform, "
                             "lecun_normal, variance_scaling_uniform, zeros or torch",
                             name, (int)o.init.kind);
    if (!o.distributional) o.num_atoms = 1;
    h->options = o;
    h->in_features = in_features;
    h->hidden = o.hidden_units * o.hidden_scale;

    int64_t features = in_features;
    if (h->hidden > 0) {
        dense_init(&h->hidden_layer, p, name, "hidden", features, h->hidden, true, &o);
        features = h->hidden;
    }
    int64_t outputs = o.num_actions * o.num_atoms;
    /* Dopamine's FullRainbowNetwork creates the advantage stream first. */
    dense_init(&h->output, p, name, o.dueling ? "advantage" : "output", features, outputs, false, &o);
    if (o.dueling) dense_init(&h->value, p, name, "value", features, o.num_atoms, false, &o);
    return TSR_STATUS_OK;
}

void tsr_head_reset(tsr_head *h, tsr_params *p, tsr_rng *rng)
{
    if (h->hidden > 0) dense_reset(&h->hidden_layer, p, rng);
    dense_reset(&h->output, p, rng);
    if (h->options.dueling) dense_reset(&h->value, p, rng);
}

tsr_tensor *tsr_head_forward(tsr_head *h, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x,
                             const tsr_noise *noise)
{
    char sx[96];
    int64_t features = 1;
    for (int i = 1; i < x->ndim; i++) features *= x->shape[i];
    TSR_ASSERT_MSG(x->ndim >= 2 && features == h->in_features,
                   "%s expects (N, %lld) features (or tokens of that size), got %s", h->name,
                   (long long)h->in_features, tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT_MSG(!h->options.noisy || noise != NULL, "%s is noisy and needs a tsr_noise", h->name);
    if (x->ndim > 2) x = tsr_flatten(ctx, x);
    h->hidden_out = NULL;
    if (h->hidden > 0) x = h->hidden_out = dense_forward(&h->hidden_layer, ctx, p, x, noise);

    int64_t n = x->shape[0], actions = h->options.num_actions, atoms = h->options.num_atoms;
    tsr_tensor *out = dense_forward(&h->output, ctx, p, x, noise);
    tsr_tensor *q = tsr_reshape(ctx, out, 3, TSR_SHAPE(n, actions, atoms));
    if (h->options.dueling) {
        tsr_tensor *value = dense_forward(&h->value, ctx, p, x, noise);
        q = tsr_dueling_combine(ctx, value, q);
    }
    if (!h->options.distributional) q = tsr_reshape(ctx, q, 2, TSR_SHAPE(n, actions));
    /* The output's shape; its parameters are in the dense layers' rows. */
    tsr_summary_record(ctx, h->name, q, 0, 0.0);
    return q;
}

void tsr_head_fini(tsr_head *h)
{
    if (h->hidden > 0) dense_fini(&h->hidden_layer);
    dense_fini(&h->output);
    if (h->options.dueling) dense_fini(&h->value);
}

int64_t tsr_head_param_count(const tsr_head *h)
{
    int64_t count = dense_params(&h->output);
    if (h->hidden > 0) count += dense_params(&h->hidden_layer);
    if (h->options.dueling) count += dense_params(&h->value);
    return count;
}
