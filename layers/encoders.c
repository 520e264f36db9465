/* encoders.c — the Nature DQN CNN, Dopamine's IMPALA ResNet and the MinAtar
 * conv (components.md §1.1, §6; minatar.md §6). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tessera/encoders.h"
#include "tessera/status.h"

/* ==== shared helpers ===================================================== */

/* "<prefix>/<suffix>" into a layer-name buffer; a name that does not fit is a
 * programming error (names come from code, not configs). */
static void join_name(char *out, size_t size, const char *prefix, const char *suffix)
{
    int written = snprintf(out, size, "%s/%s", prefix, suffix);
    TSR_ASSERT_MSG(written > 0 && (size_t)written < size, "layer name \"%s/%s\" is longer than %zu bytes",
                   prefix, suffix, size - 1);
}

static void set_name(char *out, const char *name)
{
    TSR_ASSERT(name != NULL);
    int written = snprintf(out, TSR_LAYER_NAME_BYTES, "%s", name);
    TSR_ASSERT_MSG(written >= 0 && written < TSR_LAYER_NAME_BYTES,
                   "layer name \"%s\" is longer than %d bytes", name, TSR_LAYER_NAME_BYTES - 1);
}

static tsr_status check_at_least(tsr_error *err, const char *layer, const char *name,
                                 const char *key, int64_t value, int64_t minimum)
{
    if (value >= minimum) return TSR_STATUS_OK;
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "%s \"%s\": %s = %lld is not allowed: it must be an integer >= %lld",
                         layer, name, key, (long long)value, (long long)minimum);
}

static tsr_status check_input(tsr_error *err, const char *layer, const char *name, int64_t h,
                              int64_t w, int64_t c)
{
    if (h >= 1 && w >= 1 && c >= 1) return TSR_STATUS_OK;
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "%s \"%s\": input %lldx%lldx%lld is not allowed: height, width and "
                         "channels must be >= 1",
                         layer, name, (long long)h, (long long)w, (long long)c);
}

static tsr_status check_padding(tsr_error *err, const char *layer, const char *name,
                                tsr_padding padding)
{
    if (padding == TSR_PADDING_SAME || padding == TSR_PADDING_VALID) return TSR_STATUS_OK;
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "%s \"%s\": padding %d is not allowed: use SAME or VALID", layer, name,
                         (int)padding);
}

static tsr_status encoder_init_spec(tsr_error *err, const char *layer, const char *name,
                                    tsr_encoder_init init, tsr_init_spec *spec)
{
    switch (init) {
    case TSR_ENCODER_INIT_XAVIER_UNIFORM:
        *spec = (tsr_init_spec){TSR_INIT_XAVIER_UNIFORM, 0.0};
        return TSR_STATUS_OK;
    case TSR_ENCODER_INIT_RAINBOW:
        *spec = (tsr_init_spec){TSR_INIT_VARIANCE_SCALING_UNIFORM, 1.0 / sqrt(3.0)};
        return TSR_STATUS_OK;
    case TSR_ENCODER_INIT_TORCH:
        *spec = (tsr_init_spec){TSR_INIT_TORCH, 0.0};
        return TSR_STATUS_OK;
    }
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "%s \"%s\": init %d is not allowed: use xavier_uniform, rainbow or torch", layer,
                         name, (int)init);
}

/* Output size of `count` convs applied in sequence along one axis. For VALID,
 * false when the input is too small, with the smallest input that works. */
static bool conv_chain(int64_t in, int count, const int64_t *kernel, const int64_t *stride,
                       tsr_padding padding, int64_t *out, int64_t *minimum)
{
    int64_t need = 1;
    for (int i = count - 1; i >= 0; i--) need = (need - 1) * stride[i] + kernel[i];
    *minimum = padding == TSR_PADDING_VALID ? need : 1;
    if (in < *minimum) return false;
    int64_t size = in;
    for (int i = 0; i < count; i++) tsr_conv_output_size(size, kernel[i], stride[i], padding, &size, NULL);
    *out = size;
    return true;
}

static tsr_status check_spatial(tsr_error *err, const char *layer, const char *name, int64_t h,
                                int64_t w, int count, const int64_t *kernel, const int64_t *stride,
                                tsr_padding padding, int64_t *out_h, int64_t *out_w)
{
    int64_t min_h, min_w;
    bool ok_h = conv_chain(h, count, kernel, stride, padding, out_h, &min_h);
    bool ok_w = conv_chain(w, count, kernel, stride, padding, out_w, &min_w);
    if (ok_h && ok_w) return TSR_STATUS_OK;
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "%s \"%s\": input %lldx%lld is too small for VALID padding: it needs at "
                         "least %lldx%lld (or use SAME padding)",
                         layer, name, (long long)h, (long long)w, (long long)min_h, (long long)min_w);
}

static void check_forward_input(const char *name, const tsr_image_shape *in, const tsr_tensor *x)
{
    char sx[96];
    TSR_ASSERT_MSG(x->ndim == 4 && x->shape[1] == in->h && x->shape[2] == in->w && x->shape[3] == in->c,
                   "%s expects (N, %lld, %lld, %lld) input, got %s", name, (long long)in->h,
                   (long long)in->w, (long long)in->c, tsr_tensor_shape_str(x, sx, sizeof sx));
}

/* ==== Nature DQN CNN ===================================================== */

static const int64_t nature_kernel[3] = {8, 4, 3};
static const int64_t nature_stride[3] = {4, 2, 1};

tsr_nature_options tsr_nature_options_default(void)
{
    return (tsr_nature_options){
        .channels = {32, 64, 64},
        .width_scale = 1,
        .padding = TSR_PADDING_SAME,
        .init = TSR_ENCODER_INIT_XAVIER_UNIFORM,
    };
}

tsr_status tsr_nature_encoder_init(tsr_nature_encoder *e, tsr_params *p, const char *name,
                                   int64_t h, int64_t w, int64_t c,
                                   const tsr_nature_options *options, tsr_error *err)
{
    static const char layer[] = "Nature encoder";
    tsr_nature_options o = options ? *options : tsr_nature_options_default();
    memset(e, 0, sizeof *e);
    set_name(e->name, name);
    tsr_status st;
    tsr_init_spec spec;
    if ((st = check_at_least(err, layer, name, "width_scale", o.width_scale, 1))) return st;
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "channels[%d]", i);
        if ((st = check_at_least(err, layer, name, key, o.channels[i], 1))) return st;
    }
    if ((st = check_input(err, layer, name, h, w, c))) return st;
    if ((st = check_padding(err, layer, name, o.padding))) return st;
    if ((st = encoder_init_spec(err, layer, name, o.init, &spec))) return st;
    int64_t out_h = 0, out_w = 0;
    if ((st = check_spatial(err, layer, name, h, w, 3, nature_kernel, nature_stride, o.padding,
                            &out_h, &out_w)))
        return st;

    int64_t in_channels = c;
    for (int i = 0; i < 3; i++) {
        char conv_name[TSR_LAYER_NAME_BYTES], suffix[16];
        snprintf(suffix, sizeof suffix, "conv%d", i + 1);
        join_name(conv_name, sizeof conv_name, name, suffix);
        int64_t out_channels = o.channels[i] * o.width_scale;
        tsr_conv2d_layer_init(&e->conv[i], p, conv_name, in_channels, out_channels, nature_kernel[i],
                              nature_stride[i], o.padding, true, true, spec);
        in_channels = out_channels;
    }
    e->input = (tsr_image_shape){h, w, c};
    e->output = (tsr_image_shape){out_h, out_w, in_channels};
    return TSR_STATUS_OK;
}

void tsr_nature_encoder_reset(tsr_nature_encoder *e, tsr_params *p, tsr_rng *rng)
{
    for (int i = 0; i < 3; i++) tsr_conv2d_layer_reset(&e->conv[i], p, rng);
}

tsr_tensor *tsr_nature_encoder_forward(tsr_nature_encoder *e, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x)
{
    check_forward_input(e->name, &e->input, x);
    for (int i = 0; i < 3; i++) x = tsr_conv2d_layer_forward(&e->conv[i], ctx, p, x);
    return x;
}

void tsr_nature_encoder_fini(tsr_nature_encoder *e)
{
    for (int i = 0; i < 3; i++) tsr_conv2d_layer_fini(&e->conv[i]);
}

tsr_image_shape tsr_nature_encoder_output_shape(const tsr_nature_encoder *e) { return e->output; }

/* ==== IMPALA ResNet ====================================================== */

tsr_impala_options tsr_impala_options_default(void)
{
    return (tsr_impala_options){.channels = {16, 32, 32}, .width_scale = 1, .num_blocks = 2};
}

tsr_status tsr_impala_encoder_init(tsr_impala_encoder *e, tsr_params *p, const char *name,
                                   int64_t h, int64_t w, int64_t c,
                                   const tsr_impala_options *options, tsr_error *err)
{
    static const char layer[] = "IMPALA encoder";
    tsr_impala_options o = options ? *options : tsr_impala_options_default();
    memset(e, 0, sizeof *e);
    set_name(e->name, name);
    tsr_status st;
    if ((st = check_at_least(err, layer, name, "width_scale", o.width_scale, 1))) return st;
    for (int i = 0; i < TSR_IMPALA_STACKS; i++) {
        char key[32];
        snprintf(key, sizeof key, "channels[%d]", i);
        if ((st = check_at_least(err, layer, name, key, o.channels[i], 1))) return st;
    }
    if (o.num_blocks < 0 || o.num_blocks > TSR_IMPALA_MAX_BLOCKS)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "%s \"%s\": num_blocks = %lld is not allowed: it must be in 0..%d",
                             layer, name, (long long)o.num_blocks, TSR_IMPALA_MAX_BLOCKS);
    if ((st = check_input(err, layer, name, h, w, c))) return st;

    /* Dopamine's Stack: the stack conv keeps Flax's xavier-uniform
     * kernel_init, the residual convs Flax's default LeCun-normal. */
    const tsr_init_spec stack_init = {TSR_INIT_XAVIER_UNIFORM, 0.0};
    const tsr_init_spec block_init = {TSR_INIT_LECUN_NORMAL, 0.0};
    e->num_blocks = o.num_blocks;
    int64_t in_channels = c, out_h = h, out_w = w;
    for (int s = 0; s < TSR_IMPALA_STACKS; s++) {
        char stack_name[TSR_LAYER_NAME_BYTES], conv_name[TSR_LAYER_NAME_BYTES], suffix[32];
        snprintf(suffix, sizeof suffix, "stack%d", s + 1);
        join_name(stack_name, sizeof stack_name, name, suffix);
        join_name(conv_name, sizeof conv_name, stack_name, "conv");
        int64_t ch = o.channels[s] * o.width_scale;
        tsr_impala_stack *stack = &e->stack[s];
        tsr_conv2d_layer_init(&stack->conv, p, conv_name, in_channels, ch, 3, 1, TSR_PADDING_SAME,
                              true, false, stack_init);
        for (int b = 0; b < o.num_blocks; b++)
            for (int k = 0; k < 2; k++) {
                snprintf(suffix, sizeof suffix, "block%d/conv%d", b + 1, k + 1);
                join_name(conv_name, sizeof conv_name, stack_name, suffix);
                /* ReLU -> conv1 (fused ReLU) -> conv2, then + the block input. */
                tsr_conv2d_layer_init(&stack->block[b][k], p, conv_name, ch, ch, 3, 1,
                                      TSR_PADDING_SAME, true, k == 0, block_init);
            }
        in_channels = ch;
        tsr_conv_output_size(out_h, 3, 2, TSR_PADDING_SAME, &out_h, NULL);
        tsr_conv_output_size(out_w, 3, 2, TSR_PADDING_SAME, &out_w, NULL);
    }
    e->input = (tsr_image_shape){h, w, c};
    e->output = (tsr_image_shape){out_h, out_w, in_channels};
    return TSR_STATUS_OK;
}

void tsr_impala_encoder_reset(tsr_impala_encoder *e, tsr_params *p, tsr_rng *rng)
{
    for (int s = 0; s < TSR_IMPALA_STACKS; s++) {
        tsr_conv2d_layer_reset(&e->stack[s].conv, p, rng);
        for (int b = 0; b < e->num_blocks; b++)
            for (int k = 0; k < 2; k++) tsr_conv2d_layer_reset(&e->stack[s].block[b][k], p, rng);
    }
}

tsr_tensor *tsr_impala_encoder_forward(tsr_impala_encoder *e, tsr_ctx *ctx, tsr_params *p,
                                       tsr_tensor *x)
{
    check_forward_input(e->name, &e->input, x);
    for (int s = 0; s < TSR_IMPALA_STACKS; s++) {
        tsr_impala_stack *stack = &e->stack[s];
        x = tsr_conv2d_layer_forward(&stack->conv, ctx, p, x);
        x = tsr_max_pool2d(ctx, x, 3, 2, TSR_PADDING_SAME);
        for (int b = 0; b < e->num_blocks; b++) {
            tsr_tensor *block_input = x;
            tsr_tensor *t = tsr_relu(ctx, x);
            t = tsr_conv2d_layer_forward(&stack->block[b][0], ctx, p, t);
            t = tsr_conv2d_layer_forward(&stack->block[b][1], ctx, p, t);
            x = tsr_add(ctx, t, block_input);
        }
    }
    return tsr_relu(ctx, x);
}

void tsr_impala_encoder_fini(tsr_impala_encoder *e)
{
    for (int s = 0; s < TSR_IMPALA_STACKS; s++) {
        tsr_conv2d_layer_fini(&e->stack[s].conv);
        for (int b = 0; b < e->num_blocks; b++)
            for (int k = 0; k < 2; k++) tsr_conv2d_layer_fini(&e->stack[s].block[b][k]);
    }
}

tsr_image_shape tsr_impala_encoder_output_shape(const tsr_impala_encoder *e) { return e->output; }

/* ==== MinAtar conv ======================================================= */

tsr_minatar_options tsr_minatar_options_default(void)
{
    return (tsr_minatar_options){
        .channels = 16,
        .width_scale = 1,
        .padding = TSR_PADDING_SAME,
        .init = TSR_ENCODER_INIT_XAVIER_UNIFORM,
    };
}

tsr_status tsr_minatar_encoder_init(tsr_minatar_encoder *e, tsr_params *p, const char *name,
                                    int64_t h, int64_t w, int64_t c,
                                    const tsr_minatar_options *options, tsr_error *err)
{
    static const char layer[] = "MinAtar encoder";
    static const int64_t kernel[1] = {3}, stride[1] = {1};
    tsr_minatar_options o = options ? *options : tsr_minatar_options_default();
    memset(e, 0, sizeof *e);
    set_name(e->name, name);
    tsr_status st;
    tsr_init_spec spec;
    if ((st = check_at_least(err, layer, name, "width_scale", o.width_scale, 1))) return st;
    if ((st = check_at_least(err, layer, name, "channels", o.channels, 1))) return st;
    if ((st = check_input(err, layer, name, h, w, c))) return st;
    if ((st = check_padding(err, layer, name, o.padding))) return st;
    if ((st = encoder_init_spec(err, layer, name, o.init, &spec))) return st;
    int64_t out_h = 0, out_w = 0;
    if ((st = check_spatial(err, layer, name, h, w, 1, kernel, stride, o.padding, &out_h, &out_w)))
        return st;
    char conv_name[TSR_LAYER_NAME_BYTES];
    join_name(conv_name, sizeof conv_name, name, "conv");
    int64_t out_channels = o.channels * o.width_scale;
    tsr_conv2d_layer_init(&e->conv, p, conv_name, c, out_channels, 3, 1, o.padding, true, true, spec);
    e->input = (tsr_image_shape){h, w, c};
    e->output = (tsr_image_shape){out_h, out_w, out_channels};
    return TSR_STATUS_OK;
}

void tsr_minatar_encoder_reset(tsr_minatar_encoder *e, tsr_params *p, tsr_rng *rng)
{
    tsr_conv2d_layer_reset(&e->conv, p, rng);
}

tsr_tensor *tsr_minatar_encoder_forward(tsr_minatar_encoder *e, tsr_ctx *ctx, tsr_params *p,
                                        tsr_tensor *x)
{
    check_forward_input(e->name, &e->input, x);
    return tsr_conv2d_layer_forward(&e->conv, ctx, p, x);
}

void tsr_minatar_encoder_fini(tsr_minatar_encoder *e) { tsr_conv2d_layer_fini(&e->conv); }

tsr_image_shape tsr_minatar_encoder_output_shape(const tsr_minatar_encoder *e) { return e->output; }
