#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "support/allclose.h"
#include "tessera/tessera.h"

static void two_layer(tsr_params *p)
{
    tsr_params_init(p);
    tsr_params_add(p, "conv/weight", 4, TSR_SHAPE(16, 4, 3, 3), TSR_PARAM_PRUNABLE);
    tsr_params_add(p, "conv/bias", 1, TSR_SHAPE(16), 0);
    tsr_params_add(p, "q/weight", 2, TSR_SHAPE(6, 5), TSR_PARAM_PRUNABLE);
    tsr_params_finalize(p);
}

Test(params, tensors_are_views_into_one_aligned_block)
{
    tsr_params p;
    two_layer(&p);
    cr_expect_eq(p.count, 3);
    cr_expect_eq(tsr_params_count(&p), 576 + 16 + 30);
    for (int i = 0; i < p.count; i++) {
        tsr_tensor *t = tsr_params_tensor(&p, i);
        cr_expect_eq((uintptr_t)t->data % 64, 0, "%s is not aligned", p.items[i].name);
        cr_expect((float *)t->data >= tsr_params_values_f32(&p) &&
                  (float *)t->data < tsr_params_values_f32(&p) + p.numel);
        cr_expect(t->requires_grad);
        cr_expect_eq(t->grad->data, (void *)(tsr_params_grads_f32(&p) + p.items[i].offset));
    }
    cr_expect_eq(tsr_params_find(&p, "q/weight"), 2);
    cr_expect_eq(tsr_params_find(&p, "nope"), -1);
    tsr_params_fini(&p);
}

Test(params, copy_to_a_target_is_one_block_copy_and_bumps_its_version)
{
    tsr_params online, target;
    two_layer(&online);
    tsr_params_init_like(&target, &online);
    tsr_rng rng;
    tsr_rng_init(&rng, 1, TSR_RNG_STREAM_INIT);
    tsr_init_xavier_uniform(tsr_params_tensor(&online, 0), 36, 144, &rng);
    uint64_t before = tsr_params_tensor(&target, 0)->version;
    tsr_params_copy_values(&target, &online);
    cr_expect_neq(tsr_params_tensor(&target, 0)->version, before);
    cr_expect_eq(memcmp(target.values, online.values, online.numel * sizeof(float)), 0);
    tsr_params_fini(&online);
    tsr_params_fini(&target);
}

Test(params, settle_zeroes_only_gradients_not_written_this_step)
{
    tsr_params p;
    two_layer(&p);
    for (size_t i = 0; i < p.numel; i++) tsr_params_grads_f32(&p)[i] = 5.0f; /* stale values */
    tsr_params_tensor(&p, 1)->grad_epoch = 9;                /* written in step 9 */
    tsr_params_settle_grads(&p, 9);
    cr_expect_eq(tsr_f32(&p.items[0].grad)[0], 0.0f);
    cr_expect_eq(tsr_f32(&p.items[1].grad)[3], 5.0f);
    cr_expect_eq(tsr_f32(&p.items[2].grad)[29], 0.0f);
    tsr_params_fini(&p);
}

Test(params, clipping_scales_to_the_global_norm)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_params_add(&p, "a", 1, TSR_SHAPE(2), 0);
    tsr_params_add(&p, "b", 1, TSR_SHAPE(1), 0);
    tsr_params_finalize(&p);
    tsr_f32(&p.items[0].grad)[0] = 3, tsr_f32(&p.items[0].grad)[1] = 0;
    tsr_f32(&p.items[1].grad)[0] = 4; /* norm 5 */
    double norm = tsr_params_clip_grad_norm(&p, 1.0);
    cr_expect_float_eq(norm, 5.0, 1e-12);
    cr_expect_float_eq(tsr_f32(&p.items[0].grad)[0], 0.6f, 1e-6);
    cr_expect_float_eq(tsr_f32(&p.items[1].grad)[0], 0.8f, 1e-6);
    cr_expect_float_eq(tsr_params_clip_grad_norm(&p, 10.0), 1.0, 1e-6); /* no change */
    tsr_params_fini(&p);
}

Test(init, xavier_uniform_stays_in_its_limit_with_the_right_variance)
{
    tsr_tensor *w = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(64, 32, 4, 4));
    int64_t fan_in, fan_out;
    tsr_init_fans(w, &fan_in, &fan_out);
    cr_expect_eq(fan_in, 512);
    cr_expect_eq(fan_out, 1024);
    tsr_rng rng;
    tsr_rng_init(&rng, 3, TSR_RNG_STREAM_INIT);
    tsr_init_xavier_uniform(w, fan_in, fan_out, &rng);
    double limit = sqrt(6.0 / 1536), ss = 0;
    int64_t n = tsr_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_leq(fabsf(tsr_f32(w)[i]), limit);
        ss += tsr_f32(w)[i] * tsr_f32(w)[i];
    }
    cr_expect_lt(fabs(ss / n / (limit * limit / 3) - 1), 0.03); /* var of U(-a,a) = a^2/3 */
    tsr_tensor_free(w);
}

Test(init, lecun_normal_is_truncated_with_unit_fan_in_variance)
{
    tsr_tensor *w = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(32, 16, 3, 3));
    tsr_rng rng;
    tsr_rng_init(&rng, 4, TSR_RNG_STREAM_INIT);
    tsr_init_lecun_normal(w, 144, &rng);
    double std = sqrt(1.0 / 144), ss = 0;
    int64_t n = tsr_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_leq(fabsf(tsr_f32(w)[i]), 2 * std / 0.87962566103423978 + 1e-6);
        ss += tsr_f32(w)[i] * tsr_f32(w)[i];
    }
    cr_expect_lt(fabs(sqrt(ss / n) / std - 1), 0.03);
    tsr_tensor_free(w);
}

Test(init, variance_scaling_uniform_uses_the_fan_in_limit)
{
    tsr_tensor *w = tsr_tensor_new(TSR_DTYPE_F32, 2, TSR_SHAPE(512, 3136));
    tsr_rng rng;
    tsr_rng_init(&rng, 5, TSR_RNG_STREAM_INIT);
    double scale = 1.0 / sqrt(3.0); /* Dopamine's Rainbow/C51 networks */
    tsr_init_variance_scaling_uniform(w, scale, 3136, &rng);
    double limit = sqrt(3.0 * scale / 3136), maxabs = 0;
    int64_t n = tsr_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) maxabs = fmax(maxabs, fabsf(tsr_f32(w)[i]));
    cr_expect_leq(maxabs, limit);
    cr_expect_gt(maxabs, 0.99 * limit);
    tsr_init_zeros(w);
    cr_expect_eq(tsr_f32(w)[12345], 0.0f);
    tsr_tensor_free(w);
}

Test(params, float64_blocks_hold_double_views_for_gradient_checks)
{
    tsr_params p;
    tsr_params_init_dtype(&p, TSR_DTYPE_F64);
    int w = tsr_params_add(&p, "w", 2, TSR_SHAPE(3, 5), 0);
    tsr_params_finalize(&p);
    tsr_tensor *t = tsr_params_tensor(&p, w);
    cr_expect_eq(t->dtype, TSR_DTYPE_F64);
    cr_expect_eq(t->grad->dtype, TSR_DTYPE_F64);
    tsr_rng rng;
    tsr_rng_init(&rng, 1, 1);
    tsr_init_xavier_uniform(t, 5, 3, &rng);
    double limit = sqrt(6.0 / 8), sum = 0;
    for (int i = 0; i < 15; i++) {
        cr_expect_leq(fabs(tsr_f64(t)[i]), limit);
        sum += fabs(tsr_f64(t)[i]);
    }
    cr_expect_gt(sum, 0.0);
    tsr_params q;
    tsr_params_init_like(&q, &p);
    tsr_params_copy_values(&q, &p);
    cr_expect_eq(tsr_f64(tsr_params_tensor(&q, w))[7], tsr_f64(t)[7]);
    tsr_params_fini(&q);
    tsr_params_fini(&p);
}
