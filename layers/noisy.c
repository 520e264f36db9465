/* noisy.c — the NoisyNet linear layer with factorised Gaussian noise
 * (Fortunato et al. 2018, eqs. 8-11; Dopamine's NoisyNetwork). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/encoders.h"
#include "tessera/status.h"

void tsr_noisy_linear_init(tsr_noisy_linear *l, tsr_params *p, const char *name, int64_t in,
                           int64_t out, bool relu, double sigma0)
{
    TSR_ASSERT_MSG(in >= 1 && out >= 1, "noisy linear %s: in %lld, out %lld", name, (long long)in,
                   (long long)out);
    TSR_ASSERT_MSG(sigma0 >= 0 && isfinite(sigma0), "noisy linear %s: sigma0 %g", name, sigma0);
    memset(l, 0, sizeof *l);
    int written = snprintf(l->name, sizeof l->name, "%s", name);
    TSR_ASSERT_MSG(written >= 0 && (size_t)written < sizeof l->name, "layer name \"%s\" is too long",
                   name);
    l->in = in;
    l->out = out;
    l->relu = relu;
    l->sigma0 = sigma0;
    char pname[TSR_PARAM_NAME_BYTES];
    /* Both kernels are prunable, as under jaxpruner's default filter (every
     * tensor with ndim > 1; components.md §1.7). */
    snprintf(pname, sizeof pname, "%s/weight_mu", name);
    l->weight_mu = tsr_params_add(p, pname, 2, TSR_SHAPE(out, in), TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY);
    snprintf(pname, sizeof pname, "%s/weight_sigma", name);
    l->weight_sigma =
        tsr_params_add(p, pname, 2, TSR_SHAPE(out, in), TSR_PARAM_PRUNABLE | TSR_PARAM_DECAY);
    snprintf(pname, sizeof pname, "%s/bias_mu", name);
    l->bias_mu = tsr_params_add(p, pname, 1, TSR_SHAPE(out), 0);
    snprintf(pname, sizeof pname, "%s/bias_sigma", name);
    l->bias_sigma = tsr_params_add(p, pname, 1, TSR_SHAPE(out), 0);
}

void tsr_noisy_linear_reset(tsr_noisy_linear *l, tsr_params *p, tsr_rng *rng)
{
    /* U(-a, a) with a = sqrt(3 scale / fan_in) = 1/sqrt(in) at scale 1/3. */
    tsr_init_variance_scaling_uniform(tsr_params_tensor(p, l->weight_mu), 1.0 / 3.0, l->in, rng);
    tsr_init_variance_scaling_uniform(tsr_params_tensor(p, l->bias_mu), 1.0 / 3.0, l->in, rng);
    double sigma = l->sigma0 / sqrt((double)l->in);
    tsr_tensor_fill(tsr_params_tensor(p, l->weight_sigma), sigma);
    tsr_tensor_fill(tsr_params_tensor(p, l->bias_sigma), sigma);
}

double tsr_noisy_factor(tsr_rng *rng)
{
    double e = tsr_rng_normal(rng);
    return e < 0 ? -sqrt(-e) : sqrt(e);
}

/* count values f(e) = sgn(e) sqrt(|e|), e ~ N(0, 1), into an arena vector. */
static tsr_tensor *draw_noise(tsr_ctx *ctx, tsr_dtype dtype, int64_t count, tsr_rng *rng)
{
    tsr_tensor *t = tsr_ctx_tensor(ctx, dtype, 1, TSR_SHAPE(count));
    for (int64_t i = 0; i < count; i++) {
        double f = tsr_noisy_factor(rng);
        if (dtype == TSR_DTYPE_F64) tsr_f64(t)[i] = f;
        else tsr_f32(t)[i] = (float)f;
    }
    return t;
}

tsr_tensor *tsr_noisy_linear_forward(tsr_noisy_linear *l, tsr_ctx *ctx, tsr_params *p,
                                     tsr_tensor *x, const tsr_noise *noise)
{
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 2 && x->shape[1] == l->in, "%s expects (N, %lld) input, got %s",
                   l->name, (long long)l->in, tsr_tensor_shape_str(x, sx, sizeof sx));
    TSR_ASSERT_MSG(noise != NULL, "%s: a noisy layer needs a tsr_noise", l->name);
    tsr_tensor *mu_w = tsr_params_tensor(p, l->weight_mu);
    tsr_tensor *mu_b = tsr_params_tensor(p, l->bias_mu);
    int64_t n = x->shape[0];
    tsr_tensor *y;
    double flops;
    if (noise->means_only) {
        y = tsr_linear(ctx, x, mu_w, mu_b, l->relu, &l->cache_mu);
        flops = 2.0 * (double)n * (double)(l->in * l->out);
    } else {
        TSR_ASSERT_MSG(noise->rng != NULL, "%s: noise without an rng", l->name);
        tsr_tensor *eps_in = draw_noise(ctx, x->dtype, l->in, noise->rng);
        tsr_tensor *eps_out = draw_noise(ctx, x->dtype, l->out, noise->rng);
        tsr_tensor *sigma_w = tsr_params_tensor(p, l->weight_sigma);
        tsr_tensor *sigma_b = tsr_params_tensor(p, l->bias_sigma);
        /* b = mu_b + sigma_b . f(eps_out) */
        tsr_tensor *b = tsr_add(ctx, mu_b, tsr_mul(ctx, sigma_b, eps_out));
        /* x (mu_W + sigma_W . f(eps_out) f(eps_in)^T)^T
         *   = x mu_W^T + f(eps_out) . ((x . f(eps_in)) sigma_W^T):
         * two products with the plain parameters instead of forming an
         * (out, in) weight every forward (whose cached layouts could never
         * be reused). */
        tsr_tensor *mean = tsr_linear(ctx, x, mu_w, b, false, &l->cache_mu);
        tsr_tensor *scaled_x = tsr_mul(ctx, x, eps_in);
        tsr_tensor *perturbation = tsr_linear(ctx, scaled_x, sigma_w, NULL, false, &l->cache_sigma);
        y = tsr_add(ctx, mean, tsr_mul(ctx, perturbation, eps_out));
        if (l->relu) y = tsr_relu(ctx, y);
        flops = 4.0 * (double)n * (double)(l->in * l->out);
    }
    tsr_summary_record(ctx, l->name, y, 2 * (l->in * l->out + l->out), flops);
    return y;
}

void tsr_noisy_linear_fini(tsr_noisy_linear *l)
{
    tsr_weight_cache_fini(&l->cache_mu);
    tsr_weight_cache_fini(&l->cache_sigma);
}
