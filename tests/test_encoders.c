/* The Nature, IMPALA and MinAtar encoders: wiring against a naive reference,
 * finite differences through every option, output shapes on the real inputs,
 * parameter counts, initialisers and configuration errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support/allclose.h"
#include "support/gradcheck.h"
#include "tessera/tessera.h"

/* ==== a naive reference in plain double loops ============================ */

typedef struct image {
    int64_t n, h, w, c;
    double *d; /* (n, h, w, c) */
} image;

static image image_new(int64_t n, int64_t h, int64_t w, int64_t c)
{
    image im = {n, h, w, c, calloc((size_t)(n * h * w * c), sizeof(double))};
    cr_assert(im.d != NULL);
    return im;
}

static double *at(image *im, int64_t n, int64_t y, int64_t x, int64_t c)
{
    return &im->d[((n * im->h + y) * im->w + x) * im->c + c];
}

static image image_from(const tsr_tensor *t)
{
    image im = image_new(t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
    for (int64_t i = 0; i < tsr_tensor_numel(t); i++)
        im.d[i] = t->dtype == TSR_DTYPE_F64 ? tsr_f64(t)[i] : tsr_f32(t)[i];
    return im;
}

/* TF/Flax SAME: out = ceil(in / s), total padding max((out - 1) s + k - in, 0),
 * half of it (rounded down) before. */
static void same_geometry(int64_t in, int64_t k, int64_t s, int64_t *out, int64_t *before)
{
    *out = (in + s - 1) / s;
    int64_t total = (*out - 1) * s + k - in;
    *before = total > 0 ? total / 2 : 0;
}

/* w (O, C, k, k) and b (O) from a float64 parameter block. */
static image conv_naive(image x, const tsr_tensor *w, const tsr_tensor *b, int64_t stride, bool same,
                        bool relu)
{
    int64_t o_ch = w->shape[0], k = w->shape[2], oh, ow, ph = 0, pw = 0;
    if (same) {
        same_geometry(x.h, k, stride, &oh, &ph);
        same_geometry(x.w, k, stride, &ow, &pw);
    } else {
        oh = (x.h - k) / stride + 1;
        ow = (x.w - k) / stride + 1;
    }
    image y = image_new(x.n, oh, ow, o_ch);
    for (int64_t n = 0; n < x.n; n++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++)
                for (int64_t o = 0; o < o_ch; o++) {
                    double s = tsr_f64(b)[o];
                    for (int64_t c = 0; c < x.c; c++)
                        for (int64_t u = 0; u < k; u++)
                            for (int64_t v = 0; v < k; v++) {
                                int64_t yy = i * stride - ph + u, xx = j * stride - pw + v;
                                if (yy < 0 || yy >= x.h || xx < 0 || xx >= x.w) continue;
                                s += *at(&x, n, yy, xx, c) * tsr_f64(w)[((o * x.c + c) * k + u) * k + v];
                            }
                    *at(&y, n, i, j, o) = relu && s < 0 ? 0 : s;
                }
    return y;
}

/* 3x3 stride-2 SAME max pool over in-image positions. */
static image pool_naive(image x)
{
    int64_t oh, ow, ph, pw;
    same_geometry(x.h, 3, 2, &oh, &ph);
    same_geometry(x.w, 3, 2, &ow, &pw);
    image y = image_new(x.n, oh, ow, x.c);
    for (int64_t n = 0; n < x.n; n++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++)
                for (int64_t c = 0; c < x.c; c++) {
                    double m = -INFINITY;
                    for (int64_t u = 0; u < 3; u++)
                        for (int64_t v = 0; v < 3; v++) {
                            int64_t yy = i * 2 - ph + u, xx = j * 2 - pw + v;
                            if (yy < 0 || yy >= x.h || xx < 0 || xx >= x.w) continue;
                            if (*at(&x, n, yy, xx, c) > m) m = *at(&x, n, yy, xx, c);
                        }
                    *at(&y, n, i, j, c) = m;
                }
    return y;
}

static image relu_naive(image x)
{
    image y = image_new(x.n, x.h, x.w, x.c);
    for (int64_t i = 0; i < x.n * x.h * x.w * x.c; i++) y.d[i] = x.d[i] > 0 ? x.d[i] : 0;
    return y;
}

static void expect_image_close(const tsr_tensor *t, image ref, double tol, const char *what)
{
    cr_assert_eq(t->ndim, 4, "%s: rank", what);
    cr_assert(t->shape[0] == ref.n && t->shape[1] == ref.h && t->shape[2] == ref.w &&
                  t->shape[3] == ref.c,
              "%s: shape (%lld, %lld, %lld, %lld), reference (%lld, %lld, %lld, %lld)", what,
              (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
              (long long)t->shape[3], (long long)ref.n, (long long)ref.h, (long long)ref.w,
              (long long)ref.c);
    tsr_tensor r = tsr_tensor_view(ref.d, TSR_DTYPE_F64, 4, t->shape);
    tsr_test_allclose(t, &r, tol, tol, what);
}

/* ==== fixtures ============================================================ */

typedef enum kind { NATURE, IMPALA, MINATAR } kind;

typedef struct model {
    kind kind;
    tsr_params params;
    tsr_nature_encoder nature;
    tsr_impala_encoder impala;
    tsr_minatar_encoder minatar;
    tsr_tensor *x; /* the input the gradient checks perturb */
} model;

typedef struct spec {
    kind kind;
    int64_t h, w, c;
    tsr_nature_options nature;
    tsr_impala_options impala;
    tsr_minatar_options minatar;
} spec;

static void build(model *m, const spec *s, tsr_dtype dtype, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->kind = s->kind;
    tsr_params_init_dtype(&m->params, dtype);
    tsr_error err = {0};
    tsr_status st = TSR_STATUS_OK;
    switch (s->kind) {
    case NATURE: st = tsr_nature_encoder_init(&m->nature, &m->params, "enc", s->h, s->w, s->c, &s->nature, &err); break;
    case IMPALA: st = tsr_impala_encoder_init(&m->impala, &m->params, "enc", s->h, s->w, s->c, &s->impala, &err); break;
    case MINATAR: st = tsr_minatar_encoder_init(&m->minatar, &m->params, "enc", s->h, s->w, s->c, &s->minatar, &err); break;
    }
    cr_assert_eq(st, TSR_STATUS_OK, "init failed: %s", err.message);
    tsr_params_finalize(&m->params);
    tsr_rng rng;
    tsr_rng_init(&rng, seed, TSR_RNG_STREAM_INIT);
    switch (s->kind) {
    case NATURE: tsr_nature_encoder_reset(&m->nature, &m->params, &rng); break;
    case IMPALA: tsr_impala_encoder_reset(&m->impala, &m->params, &rng); break;
    case MINATAR: tsr_minatar_encoder_reset(&m->minatar, &m->params, &rng); break;
    }
    /* Non-zero biases, so that their gradients and placement are exercised. */
    for (int i = 0; i < m->params.count; i++)
        if (m->params.items[i].value.ndim == 1)
            tsr_test_fill_uniform(tsr_params_tensor(&m->params, i), -0.1, 0.1, seed * 100 + (uint64_t)i);
}

static void destroy(model *m)
{
    switch (m->kind) {
    case NATURE: tsr_nature_encoder_fini(&m->nature); break;
    case IMPALA: tsr_impala_encoder_fini(&m->impala); break;
    case MINATAR: tsr_minatar_encoder_fini(&m->minatar); break;
    }
    tsr_params_fini(&m->params);
    tsr_tensor_free(m->x);
}

static tsr_tensor *encode(model *m, tsr_ctx *ctx, tsr_tensor *x)
{
    switch (m->kind) {
    case NATURE: return tsr_nature_encoder_forward(&m->nature, ctx, &m->params, x);
    case IMPALA: return tsr_impala_encoder_forward(&m->impala, ctx, &m->params, x);
    case MINATAR: return tsr_minatar_encoder_forward(&m->minatar, ctx, &m->params, x);
    }
    return NULL;
}

static tsr_image_shape output_shape(const model *m)
{
    switch (m->kind) {
    case NATURE: return tsr_nature_encoder_output_shape(&m->nature);
    case IMPALA: return tsr_impala_encoder_output_shape(&m->impala);
    case MINATAR: return tsr_minatar_encoder_output_shape(&m->minatar);
    }
    return (tsr_image_shape){0, 0, 0};
}

static tsr_tensor *param(model *m, const char *name)
{
    int index = tsr_params_find(&m->params, name);
    cr_assert(index >= 0, "no parameter %s", name);
    return tsr_params_tensor(&m->params, index);
}

static spec nature_spec(int64_t h, int64_t c, int64_t scale, tsr_padding padding)
{
    spec s = {.kind = NATURE, .h = h, .w = h, .c = c, .nature = tsr_nature_options_default()};
    s.nature.width_scale = scale;
    s.nature.padding = padding;
    return s;
}

static spec impala_spec(int64_t h, int64_t c, int64_t scale)
{
    spec s = {.kind = IMPALA, .h = h, .w = h, .c = c, .impala = tsr_impala_options_default()};
    s.impala.width_scale = scale;
    return s;
}

static spec minatar_spec(int64_t h, int64_t c, int64_t scale, tsr_padding padding)
{
    spec s = {.kind = MINATAR, .h = h, .w = h, .c = c, .minatar = tsr_minatar_options_default()};
    s.minatar.width_scale = scale;
    s.minatar.padding = padding;
    return s;
}

/* ==== forward wiring against the naive reference ========================== */

static image nature_naive(model *m, image x, bool same)
{
    static const int64_t stride[3] = {4, 2, 1};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "enc/conv%d/weight", i + 1);
        tsr_tensor *w = param(m, name);
        snprintf(name, sizeof name, "enc/conv%d/bias", i + 1);
        image y = conv_naive(x, w, param(m, name), stride[i], same, true);
        if (i > 0) free(x.d);
        x = y;
    }
    return x;
}

static image impala_naive(model *m, image x, int blocks)
{
    image cur = x;
    bool owned = false;
    for (int s = 1; s <= 3; s++) {
        char w[64], b[64];
        snprintf(w, sizeof w, "enc/stack%d/conv/weight", s);
        snprintf(b, sizeof b, "enc/stack%d/conv/bias", s);
        image conv = conv_naive(cur, param(m, w), param(m, b), 1, true, false);
        if (owned) free(cur.d);
        cur = pool_naive(conv);
        owned = true;
        free(conv.d);
        for (int k = 1; k <= blocks; k++) {
            image r = relu_naive(cur);
            snprintf(w, sizeof w, "enc/stack%d/block%d/conv1/weight", s, k);
            snprintf(b, sizeof b, "enc/stack%d/block%d/conv1/bias", s, k);
            image h1 = conv_naive(r, param(m, w), param(m, b), 1, true, true);
            snprintf(w, sizeof w, "enc/stack%d/block%d/conv2/weight", s, k);
            snprintf(b, sizeof b, "enc/stack%d/block%d/conv2/bias", s, k);
            image h2 = conv_naive(h1, param(m, w), param(m, b), 1, true, false);
            for (int64_t i = 0; i < cur.n * cur.h * cur.w * cur.c; i++) h2.d[i] += cur.d[i];
            free(r.d);
            free(h1.d);
            free(cur.d);
            cur = h2;
        }
    }
    image out = relu_naive(cur);
    free(cur.d);
    return out;
}

static void check_against_naive(spec s, const char *what)
{
    model m;
    build(&m, &s, TSR_DTYPE_F64, 3);
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F64, 4, TSR_SHAPE(2, s.h, s.w, s.c));
    tsr_test_fill_uniform(x, -1, 1, 4);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_tensor *y = encode(&m, ctx, x);
    image xi = image_from(x), ref;
    if (s.kind == NATURE) ref = nature_naive(&m, xi, s.nature.padding == TSR_PADDING_SAME);
    else if (s.kind == IMPALA) ref = impala_naive(&m, xi, (int)s.impala.num_blocks);
    else ref = conv_naive(xi, param(&m, "enc/conv/weight"), param(&m, "enc/conv/bias"), 1,
                          s.minatar.padding == TSR_PADDING_SAME, true);
    expect_image_close(y, ref, 1e-12, what);
    tsr_image_shape out = output_shape(&m);
    cr_expect(out.h == ref.h && out.w == ref.w && out.c == ref.c, "%s: output_shape query", what);
    free(xi.d);
    free(ref.d);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(encoders, nature_forward_matches_a_naive_conv_stack_with_either_padding)
{
    spec s = nature_spec(40, 3, 1, TSR_PADDING_SAME);
    s.nature.channels[0] = 3, s.nature.channels[1] = 4, s.nature.channels[2] = 5;
    check_against_naive(s, "Nature SAME 40x40x3");
    s.nature.padding = TSR_PADDING_VALID;
    check_against_naive(s, "Nature VALID 40x40x3");
}

Test(encoders, impala_forward_matches_a_naive_resnet_with_relu_before_each_block_and_at_the_end)
{
    spec s = impala_spec(13, 3, 1);
    s.impala.channels[0] = 2, s.impala.channels[1] = 3, s.impala.channels[2] = 4;
    check_against_naive(s, "IMPALA 13x13x3, 2 blocks");
    s.impala.num_blocks = 1;
    check_against_naive(s, "IMPALA 13x13x3, 1 block");
    s.impala.num_blocks = 0;
    check_against_naive(s, "IMPALA 13x13x3, no blocks");
}

Test(encoders, minatar_forward_matches_a_naive_conv_with_either_padding)
{
    check_against_naive(minatar_spec(10, 7, 1, TSR_PADDING_SAME), "MinAtar SAME 10x10x7");
    check_against_naive(minatar_spec(10, 7, 1, TSR_PADDING_VALID), "MinAtar VALID 10x10x7");
}

/* The float32 oneDNN path agrees with the float64 reference on Atari inputs. */
Test(encoders, float32_onednn_forward_matches_the_float64_reference_at_84x84x4)
{
    spec specs[2] = {nature_spec(84, 4, 1, TSR_PADDING_SAME), impala_spec(84, 4, 1)};
    for (int k = 0; k < 2; k++) {
        model m32, m64;
        build(&m32, &specs[k], TSR_DTYPE_F32, 9);
        build(&m64, &specs[k], TSR_DTYPE_F64, 9);
        for (int i = 0; i < m32.params.count; i++)
            tsr_tensor_copy(tsr_params_tensor(&m64.params, i), tsr_params_tensor(&m32.params, i));
        tsr_tensor *x32 = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(2, 84, 84, 4));
        tsr_test_fill_uniform(x32, 0, 1, 10);
        tsr_tensor *x64 = tsr_tensor_new(TSR_DTYPE_F64, 4, x32->shape);
        tsr_tensor_copy(x64, x32);
        tsr_ctx *ctx = tsr_ctx_new(NULL);
        tsr_tensor *y32 = encode(&m32, ctx, x32);
        tsr_tensor *y64 = encode(&m64, ctx, x64);
        tsr_test_allclose(y32, y64, 1e-4, 1e-5, k ? "IMPALA" : "Nature");
        tsr_tensor_free(x32);
        tsr_tensor_free(x64);
        tsr_ctx_free(ctx);
        destroy(&m32);
        destroy(&m64);
    }
}

/* ==== finite differences =================================================== */

static tsr_tensor *encoder_objective(tsr_ctx *ctx, tsr_tensor *const *in, void *user)
{
    (void)in; /* perturbed in place: the forward reads m->x and the block */
    model *m = user;
    return encode(m, ctx, m->x);
}

/* Checks the input and every parameter, at most 16 tensors per gradcheck call. */
static void gradcheck_model(spec s, int64_t batch, const char *what)
{
    model m;
    build(&m, &s, TSR_DTYPE_F64, 21);
    m.x = tsr_tensor_new(TSR_DTYPE_F64, 4, TSR_SHAPE(batch, s.h, s.w, s.c));
    tsr_test_fill_uniform(m.x, -1, 1, 22);
    m.x->requires_grad = true;
    int next = 0;
    for (int call = 0; call == 0 || next < m.params.count; call++) {
        tsr_tensor *inputs[16];
        int count = 0;
        if (call == 0) inputs[count++] = m.x;
        else tsr_grad_reset(m.x, false);
        int first = next;
        while (count < 16 && next < m.params.count) {
            tsr_tensor *t = tsr_params_tensor(&m.params, next++);
            t->grad_epoch = 0; /* no stale epoch from an earlier call's context */
            inputs[count++] = t;
        }
        char label[160];
        snprintf(label, sizeof label, "%s (parameters %d..%d)", what, first, next - 1);
        tsr_test_gradcheck(encoder_objective, inputs, count, &m, NULL, label);
    }
    destroy(&m);
}

Test(encoders, nature_backward_matches_finite_differences_with_same_padding_at_width_1_and_2)
{
    for (int64_t scale = 1; scale <= 2; scale++) {
        spec s = nature_spec(12, 2, scale, TSR_PADDING_SAME);
        s.nature.channels[0] = 2, s.nature.channels[1] = 3, s.nature.channels[2] = 3;
        char what[64];
        snprintf(what, sizeof what, "Nature SAME 12x12x2 width %lld", (long long)scale);
        gradcheck_model(s, 2, what);
    }
}

Test(encoders, nature_backward_matches_finite_differences_with_valid_padding_and_rainbow_init)
{
    for (int64_t scale = 1; scale <= 2; scale++) {
        spec s = nature_spec(36, 1, scale, TSR_PADDING_VALID);
        s.nature.channels[0] = 2, s.nature.channels[1] = 3, s.nature.channels[2] = 3;
        s.nature.init = TSR_ENCODER_INIT_RAINBOW;
        char what[64];
        snprintf(what, sizeof what, "Nature VALID 36x36x1 width %lld", (long long)scale);
        gradcheck_model(s, 1, what);
    }
}

Test(encoders, impala_backward_matches_finite_differences_at_width_1_and_2)
{
    for (int64_t scale = 1; scale <= 2; scale++) {
        spec s = impala_spec(12, 2, scale);
        s.impala.channels[0] = 2, s.impala.channels[1] = 3, s.impala.channels[2] = 3;
        char what[64];
        snprintf(what, sizeof what, "IMPALA 12x12x2 width %lld", (long long)scale);
        gradcheck_model(s, 2, what);
    }
    spec s = impala_spec(12, 2, 1);
    s.impala.channels[0] = 2, s.impala.channels[1] = 2, s.impala.channels[2] = 3;
    s.impala.num_blocks = 1;
    gradcheck_model(s, 1, "IMPALA 12x12x2, 1 block");
}

Test(encoders, minatar_backward_matches_finite_differences_with_either_padding_at_width_1_and_2)
{
    for (int64_t scale = 1; scale <= 2; scale++)
        for (int pad = 0; pad < 2; pad++) {
            spec s = minatar_spec(6, 3, scale, pad ? TSR_PADDING_VALID : TSR_PADDING_SAME);
            s.minatar.channels = 2;
            if (scale == 2) s.minatar.init = TSR_ENCODER_INIT_RAINBOW;
            char what[64];
            snprintf(what, sizeof what, "MinAtar %s 6x6x3 width %lld", pad ? "VALID" : "SAME",
                     (long long)scale);
            gradcheck_model(s, 2, what);
        }
}

/* ==== output shapes on the real inputs =================================== */

static void expect_output(spec s, int64_t h, int64_t w, int64_t c, const char *what)
{
    model m;
    build(&m, &s, TSR_DTYPE_F32, 1);
    tsr_image_shape out = output_shape(&m);
    cr_expect(out.h == h && out.w == w && out.c == c, "%s: output_shape %lldx%lldx%lld, expected %lldx%lldx%lld",
              what, (long long)out.h, (long long)out.w, (long long)out.c, (long long)h, (long long)w,
              (long long)c);
    tsr_ctx *ctx = tsr_ctx_new(NULL);
    tsr_ctx_set_grad(ctx, false);
    for (int64_t batch = 1; batch <= 32; batch += 31) {
        tsr_ctx_begin_step(ctx);
        tsr_tensor *x = tsr_ctx_tensor(ctx, TSR_DTYPE_F32, 4, TSR_SHAPE(batch, s.h, s.w, s.c));
        tsr_tensor_fill(x, 0.5);
        tsr_tensor *y = encode(&m, ctx, x);
        cr_expect(y->ndim == 4 && y->shape[0] == batch && y->shape[1] == h && y->shape[2] == w &&
                      y->shape[3] == c,
                  "%s at batch %lld: forward gave (%lld, %lld, %lld, %lld)", what, (long long)batch,
                  (long long)y->shape[0], (long long)y->shape[1], (long long)y->shape[2],
                  (long long)y->shape[3]);
    }
    tsr_ctx_free(ctx);
    destroy(&m);
}

Test(encoders, atari_84x84x4_gives_nature_11x11x64_same_7x7x64_valid_and_impala_11x11x32)
{
    expect_output(nature_spec(84, 4, 1, TSR_PADDING_SAME), 11, 11, 64, "Nature SAME");
    expect_output(nature_spec(84, 4, 1, TSR_PADDING_VALID), 7, 7, 64, "Nature VALID");
    expect_output(impala_spec(84, 4, 1), 11, 11, 32, "IMPALA");
    expect_output(nature_spec(84, 4, 2, TSR_PADDING_SAME), 11, 11, 128, "Nature SAME width 2");
    expect_output(impala_spec(84, 4, 2), 11, 11, 64, "IMPALA width 2");
}

Test(encoders, minatar_10x10_gives_10x10x16_same_and_8x8x16_valid_for_every_game)
{
    static const int64_t channels[4] = {4, 6, 7, 10};
    for (int i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "MinAtar SAME 10x10x%lld", (long long)channels[i]);
        expect_output(minatar_spec(10, channels[i], 1, TSR_PADDING_SAME), 10, 10, 16, what);
        snprintf(what, sizeof what, "MinAtar VALID 10x10x%lld", (long long)channels[i]);
        expect_output(minatar_spec(10, channels[i], 1, TSR_PADDING_VALID), 8, 8, 16, what);
    }
    expect_output(minatar_spec(10, 4, 3, TSR_PADDING_SAME), 10, 10, 48, "MinAtar width 3");
}

/* ==== parameter counts ===================================================== */

static int64_t conv_params(int64_t in, int64_t out, int64_t k) { return out * in * k * k + out; }

Test(encoders, parameter_counts_equal_the_arithmetic)
{
    model m;
    /* Nature on 84x84x4: 32*4*8*8+32 + 64*32*4*4+64 + 64*64*3*3+64 = 8224 + 32832 + 36928 = 77984
     * (independent of padding). */
    build(&m, &(spec){.kind = NATURE, .h = 84, .w = 84, .c = 4, .nature = tsr_nature_options_default()},
          TSR_DTYPE_F32, 1);
    cr_expect_eq(tsr_params_count(&m.params), conv_params(4, 32, 8) + conv_params(32, 64, 4) + conv_params(64, 64, 3));
    cr_expect_eq(tsr_params_count(&m.params), 77984);
    destroy(&m);
    /* Width 2: 64*4*64+64 + 128*64*16+128 + 128*128*9+128 = 16448 + 131200 + 147584 = 295232. */
    spec s = nature_spec(84, 4, 2, TSR_PADDING_VALID);
    build(&m, &s, TSR_DTYPE_F32, 1);
    cr_expect_eq(tsr_params_count(&m.params), 295232);
    destroy(&m);
    /* IMPALA on 84x84x4, per stack conv(in, c) + 2 blocks x 2 conv(c, c), all 3x3:
     *   (16*4*9+16) + 4 (16*16*9+16) =   592 +  9280 =  9872
     *   (32*16*9+32) + 4 (32*32*9+32) = 4640 + 36992 = 41632
     *   (32*32*9+32) + 4 (32*32*9+32) = 9248 + 36992 = 46240   -> 97744 */
    build(&m, &(spec){.kind = IMPALA, .h = 84, .w = 84, .c = 4, .impala = tsr_impala_options_default()},
          TSR_DTYPE_F32, 1);
    int64_t expected = conv_params(4, 16, 3) + 4 * conv_params(16, 16, 3) + conv_params(16, 32, 3) +
                       4 * conv_params(32, 32, 3) + conv_params(32, 32, 3) + 4 * conv_params(32, 32, 3);
    cr_expect_eq(tsr_params_count(&m.params), expected);
    cr_expect_eq(tsr_params_count(&m.params), 97744);
    destroy(&m);
    /* IMPALA width 2 (32, 64, 64): (32*4*9+32) + 4 (32*32*9+32) + (64*32*9+64) + 4 (64*64*9+64)
     * + (64*64*9+64) + 4 (64*64*9+64) = 1184 + 36992 + 18496 + 147712 + 36928 + 147712 = 389024. */
    build(&m, &(spec){.kind = IMPALA, .h = 84, .w = 84, .c = 4,
                      .impala = {.channels = {16, 32, 32}, .width_scale = 2, .num_blocks = 2}},
          TSR_DTYPE_F32, 1);
    cr_expect_eq(tsr_params_count(&m.params), 389024);
    destroy(&m);
    /* MinAtar: 16*C*9 + 16 for each game's C. */
    static const int64_t channels[5] = {4, 4, 7, 10, 6};
    for (int i = 0; i < 5; i++) {
        build(&m, &(spec){.kind = MINATAR, .h = 10, .w = 10, .c = channels[i],
                          .minatar = tsr_minatar_options_default()},
              TSR_DTYPE_F32, 1);
        cr_expect_eq(tsr_params_count(&m.params), 16 * channels[i] * 9 + 16, "MinAtar C=%lld",
                     (long long)channels[i]);
        destroy(&m);
    }
}

Test(encoders, parameters_are_named_after_the_layer_and_kernels_are_prunable)
{
    model m;
    build(&m, &(spec){.kind = IMPALA, .h = 20, .w = 20, .c = 2, .impala = tsr_impala_options_default()},
          TSR_DTYPE_F32, 1);
    int w = tsr_params_find(&m.params, "enc/stack2/block1/conv2/weight");
    int b = tsr_params_find(&m.params, "enc/stack3/conv/bias");
    cr_assert(w >= 0 && b >= 0);
    cr_expect(m.params.items[w].flags & TSR_PARAM_PRUNABLE);
    cr_expect_not(m.params.items[b].flags & TSR_PARAM_PRUNABLE);
    cr_expect_eq(tsr_params_find(&m.params, "enc/stack1/block3/conv1/weight"), -1);
    /* 3 stacks x (1 + 2 x 2) convs, weight and bias each. */
    cr_expect_eq(m.params.count, 30);
    destroy(&m);
}

/* ==== initialisers ========================================================= */

typedef struct moments {
    double mean, variance, kurtosis, max_abs;
    int64_t n;
} moments;

static void accumulate(const tsr_tensor *t, double *s1, double *s2, double *max_abs, int64_t *n)
{
    for (int64_t i = 0; i < tsr_tensor_numel(t); i++) {
        double v = tsr_f32(t)[i];
        *s1 += v;
        *s2 += v * v;
        if (fabs(v) > *max_abs) *max_abs = fabs(v);
    }
    *n += tsr_tensor_numel(t);
}

static moments moments_of(tsr_tensor *const *ts, int count)
{
    double s1 = 0, s2 = 0, max_abs = 0;
    int64_t n = 0;
    for (int i = 0; i < count; i++) accumulate(ts[i], &s1, &s2, &max_abs, &n);
    moments m = {.mean = s1 / (double)n, .max_abs = max_abs, .n = n};
    m.variance = s2 / (double)n - m.mean * m.mean;
    double s4 = 0;
    for (int i = 0; i < count; i++)
        for (int64_t j = 0; j < tsr_tensor_numel(ts[i]); j++) {
            double d = tsr_f32(ts[i])[j] - m.mean;
            s4 += d * d * d * d;
        }
    m.kurtosis = s4 / (double)n / (m.variance * m.variance);
    return m;
}

static void expect_uniform(tsr_tensor *w, double bound, const char *what)
{
    moments m = moments_of(&w, 1);
    cr_expect(m.max_abs <= bound, "%s: |w| reaches %g, beyond the bound %g", what, m.max_abs, bound);
    cr_expect(fabs(m.variance / (bound * bound / 3) - 1) < 0.05, "%s: variance %g, expected %g", what,
              m.variance, bound * bound / 3);
    /* A uniform's kurtosis is 1.8 (a normal's is 3). */
    cr_expect(fabs(m.kurtosis - 1.8) < 0.1, "%s: kurtosis %g, a uniform has 1.8", what, m.kurtosis);
}

static void expect_zero(tsr_tensor *b, const char *what)
{
    for (int64_t i = 0; i < tsr_tensor_numel(b); i++)
        cr_expect_eq(tsr_f32(b)[i], 0.0f, "%s[%lld] = %g", what, (long long)i, tsr_f32(b)[i]);
}

Test(encoders, nature_kernels_are_xavier_uniform_or_rainbow_variance_scaling_with_zero_biases)
{
    model m;
    spec s = nature_spec(84, 4, 1, TSR_PADDING_SAME);
    build(&m, &s, TSR_DTYPE_F32, 5);
    tsr_init_zeros(param(&m, "enc/conv2/bias")); /* build() randomises biases: re-reset */
    tsr_rng rng;
    tsr_rng_init(&rng, 5, TSR_RNG_STREAM_INIT);
    tsr_nature_encoder_reset(&m.nature, &m.params, &rng);
    /* conv2 (64, 32, 4, 4): fan_in 512, fan_out 1024. */
    expect_uniform(param(&m, "enc/conv2/weight"), sqrt(6.0 / (512 + 1024)), "Nature conv2 xavier");
    expect_zero(param(&m, "enc/conv2/bias"), "Nature conv2 bias");
    destroy(&m);

    s.nature.init = TSR_ENCODER_INIT_RAINBOW;
    build(&m, &s, TSR_DTYPE_F32, 6);
    /* variance_scaling(1/sqrt(3), fan_in, uniform): U(-a, a), a = sqrt(3 (1/sqrt 3) / 512). */
    expect_uniform(param(&m, "enc/conv2/weight"), sqrt(sqrt(3.0) / 512), "Nature conv2 rainbow");
    destroy(&m);
}

Test(encoders, impala_stack_convs_are_xavier_and_residual_convs_lecun_normal)
{
    model m;
    spec s = impala_spec(84, 4, 1);
    build(&m, &s, TSR_DTYPE_F32, 7);
    tsr_rng rng;
    tsr_rng_init(&rng, 7, TSR_RNG_STREAM_INIT);
    tsr_impala_encoder_reset(&m.impala, &m.params, &rng); /* zero biases again */
    /* Stack 3's conv (32, 32, 3, 3): fan_in = fan_out = 288. */
    expect_uniform(param(&m, "enc/stack3/conv/weight"), sqrt(6.0 / 576), "IMPALA stack conv");
    expect_zero(param(&m, "enc/stack3/conv/bias"), "IMPALA stack conv bias");
    /* Its residual convs have the same fans, so the variance alone cannot
     * tell the two inits apart: LeCun-normal is a normal truncated at two
     * standard deviations, rescaled to variance exactly 1/fan_in. */
    tsr_tensor *res[4] = {param(&m, "enc/stack3/block1/conv1/weight"),
                          param(&m, "enc/stack3/block1/conv2/weight"),
                          param(&m, "enc/stack3/block2/conv1/weight"),
                          param(&m, "enc/stack3/block2/conv2/weight")};
    moments r = moments_of(res, 4);
    double std_untruncated = sqrt(1.0 / 288) / 0.87962566103423978;
    cr_expect(fabs(r.variance * 288 - 1) < 0.05, "residual variance %g, LeCun-normal has 1/288 = %g",
              r.variance, 1.0 / 288);
    cr_expect(fabs(r.mean) < 0.002, "residual mean %g", r.mean);
    cr_expect(r.max_abs <= 2 * std_untruncated + 1e-7, "residual |w| %g beyond the truncation %g",
              r.max_abs, 2 * std_untruncated);
    cr_expect(r.max_abs > sqrt(6.0 / 576), "residual |w| never exceeds the xavier bound: uniform?");
    /* Kurtosis of a normal truncated at 2 sigma: about 2.36 (uniform 1.8, normal 3). */
    cr_expect(fabs(r.kurtosis - 2.36) < 0.1, "residual kurtosis %g, truncated normal has 2.36", r.kurtosis);
    expect_zero(param(&m, "enc/stack3/block2/conv2/bias"), "IMPALA residual bias");
    destroy(&m);
}

Test(encoders, minatar_kernel_is_xavier_uniform)
{
    model m;
    spec s = minatar_spec(10, 10, 4, TSR_PADDING_SAME); /* (64, 10, 3, 3): enough samples */
    build(&m, &s, TSR_DTYPE_F32, 8);
    expect_uniform(param(&m, "enc/conv/weight"), sqrt(6.0 / (90 + 576)), "MinAtar xavier");
    destroy(&m);
}

/* ==== configuration errors ================================================ */

Test(encoders, bad_configuration_values_are_reported_with_the_value_and_what_is_allowed)
{
    tsr_params p;
    tsr_params_init(&p);
    tsr_error err = {0};
    tsr_nature_encoder nature;
    tsr_nature_options no = tsr_nature_options_default();
    no.width_scale = 0;
    cr_expect_eq(tsr_nature_encoder_init(&nature, &p, "enc", 84, 84, 4, &no, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "width_scale = 0") && strstr(err.message, ">= 1"), "%s", err.message);
    no = tsr_nature_options_default();
    no.padding = TSR_PADDING_VALID;
    cr_expect_eq(tsr_nature_encoder_init(&nature, &p, "enc", 20, 84, 4, &no, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "20x84") && strstr(err.message, "36x36"), "%s", err.message);
    no.padding = (tsr_padding)5;
    cr_expect_eq(tsr_nature_encoder_init(&nature, &p, "enc", 84, 84, 4, &no, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "padding 5") && strstr(err.message, "SAME or VALID"), "%s", err.message);
    no.padding = TSR_PADDING_VALID;
    cr_expect_eq(tsr_nature_encoder_init(&nature, &p, "enc", 36, 36, 4, &no, &err), TSR_STATUS_OK);

    tsr_impala_encoder impala;
    tsr_impala_options io = tsr_impala_options_default();
    io.num_blocks = 5;
    cr_expect_eq(tsr_impala_encoder_init(&impala, &p, "impala", 84, 84, 4, &io, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "num_blocks = 5") && strstr(err.message, "0..4"), "%s", err.message);
    io = tsr_impala_options_default();
    io.channels[1] = 0;
    cr_expect_eq(tsr_impala_encoder_init(&impala, &p, "impala", 84, 84, 4, &io, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "channels[1] = 0"), "%s", err.message);

    tsr_minatar_encoder minatar;
    tsr_minatar_options mo = tsr_minatar_options_default();
    mo.padding = TSR_PADDING_VALID;
    cr_expect_eq(tsr_minatar_encoder_init(&minatar, &p, "minatar", 2, 10, 4, &mo, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "3x3"), "%s", err.message);
    mo.init = (tsr_encoder_init)7;
    mo.padding = TSR_PADDING_SAME;
    cr_expect_eq(tsr_minatar_encoder_init(&minatar, &p, "minatar", 10, 10, 4, &mo, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    cr_expect(strstr(err.message, "init 7"), "%s", err.message);
    cr_expect_eq(tsr_minatar_encoder_init(&minatar, &p, "minatar", 10, 10, 0, NULL, &err),
                 TSR_STATUS_INVALID_ARGUMENT);
    /* Only the one successful init registered parameters. */
    cr_expect_eq(p.count, 6);
    tsr_params_fini(&p);
}

/* ==== training-step properties ============================================= */

Test(encoders, a_warm_impala_training_step_allocates_nothing)
{
    model m;
    spec s = impala_spec(84, 4, 1);
    build(&m, &s, TSR_DTYPE_F32, 11);
    tsr_ctx *ctx = tsr_ctx_new(&(tsr_ctx_options){.arena_bytes = 1 << 16});
    tsr_tensor *x = tsr_tensor_new(TSR_DTYPE_F32, 4, TSR_SHAPE(4, 84, 84, 4));
    tsr_test_fill_uniform(x, 0, 1, 12);
    uint64_t allocations = 0;
    for (int step = 0; step < 4; step++) {
        if (step == 2) allocations = tsr_arena_system_allocations(tsr_ctx_arena(ctx));
        tsr_ctx_begin_step(ctx);
        tsr_tensor *y = encode(&m, ctx, x);
        tsr_backward(ctx, tsr_mean_all(ctx, y));
    }
    cr_expect_eq(tsr_arena_system_allocations(tsr_ctx_arena(ctx)), allocations);
    tsr_tensor_free(x);
    tsr_ctx_free(ctx);
    destroy(&m);
}
