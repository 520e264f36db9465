/* tokenize.c — encoder outputs (N, h, w, C) as tokens (N, T, D)
 * (components.md §1.2; Dopamine labs/moes routing types). */
#include <stdio.h>
#include <string.h>

#include "tessera/encoders.h"
#include "tessera/status.h"

static const char *const token_kind_names[TSR_TOKEN_KIND_COUNT] = {
    [TSR_TOKENS_PER_CONV] = "per_conv",
    [TSR_TOKENS_PER_FEATURE_MAP] = "per_feature_map",
    [TSR_TOKENS_PER_SAMPLE] = "per_sample",
    [TSR_TOKENS_PER_PATCH] = "per_patch",
    [TSR_TOKENS_AVG_POOL] = "avg_pool",
};

const char *tsr_token_kind_name(tsr_token_kind kind)
{
    TSR_ASSERT_MSG((unsigned)kind < TSR_TOKEN_KIND_COUNT, "token kind %d", (int)kind);
    return token_kind_names[kind];
}

tsr_status tsr_token_kind_parse(const char *name, tsr_token_kind *kind, tsr_error *err)
{
    TSR_ASSERT(name != NULL && kind != NULL);
    for (int i = 0; i < TSR_TOKEN_KIND_COUNT; i++)
        if (strcmp(name, token_kind_names[i]) == 0) {
            *kind = (tsr_token_kind)i;
            return TSR_STATUS_OK;
        }
    return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                         "token kind \"%s\" is not known: use per_conv, per_feature_map, "
                         "per_sample, per_patch or avg_pool",
                         name);
}

tsr_tokenizer_options tsr_tokenizer_options_default(void)
{
    return (tsr_tokenizer_options){.kind = TSR_TOKENS_PER_CONV, .patch_size = 3, .embedding = 32};
}

static bool is_patch_kind(tsr_token_kind kind)
{
    return kind == TSR_TOKENS_PER_PATCH || kind == TSR_TOKENS_AVG_POOL;
}

tsr_status tsr_tokenizer_init(tsr_tokenizer *t, tsr_params *p, const char *name,
                              tsr_image_shape input, const tsr_tokenizer_options *options,
                              tsr_error *err)
{
    tsr_tokenizer_options o = options ? *options : tsr_tokenizer_options_default();
    memset(t, 0, sizeof *t);
    TSR_ASSERT(name != NULL);
    int written = snprintf(t->name, sizeof t->name, "%s", name);
    TSR_ASSERT_MSG(written >= 0 && (size_t)written < sizeof t->name, "layer name \"%s\" is too long",
                   name);
    if ((unsigned)o.kind >= TSR_TOKEN_KIND_COUNT)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "tokenizer \"%s\": kind %d is not allowed: use per_conv, "
                             "per_feature_map, per_sample, per_patch or avg_pool",
                             name, (int)o.kind);
    if (input.h < 1 || input.w < 1 || input.c < 1)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "tokenizer \"%s\": input %lldx%lldx%lld is not allowed: height, "
                             "width and channels must be >= 1",
                             name, (long long)input.h, (long long)input.w, (long long)input.c);
    t->kind = o.kind;
    t->input = input;
    int64_t positions = input.h * input.w;
    switch (o.kind) {
    case TSR_TOKENS_PER_CONV:
        t->tokens = positions;
        t->token_dim = input.c;
        break;
    case TSR_TOKENS_PER_FEATURE_MAP:
        t->tokens = input.c;
        t->token_dim = positions;
        break;
    case TSR_TOKENS_PER_SAMPLE:
        t->tokens = 1;
        t->token_dim = positions * input.c;
        break;
    case TSR_TOKENS_PER_PATCH:
    case TSR_TOKENS_AVG_POOL:
    case TSR_TOKEN_KIND_COUNT:
        break;
    }
    if (is_patch_kind(o.kind)) {
        int64_t side = input.h < input.w ? input.h : input.w;
        if (o.patch_size < 1 || o.patch_size > side)
            return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                 "tokenizer \"%s\": patch_size = %lld is not allowed for a "
                                 "%lldx%lld feature map: it must be in 1..%lld",
                                 name, (long long)o.patch_size, (long long)input.h,
                                 (long long)input.w, (long long)side);
        /* VALID patches: a remainder of rows or columns is dropped (11 with
         * patch 3 gives 3 patches per side), as in Flax. */
        int64_t rows = input.h / o.patch_size, cols = input.w / o.patch_size;
        t->patch_size = o.patch_size;
        t->tokens = rows * cols;
        t->token_dim = input.c;
        if (o.kind == TSR_TOKENS_PER_PATCH) {
            if (o.embedding < 1)
                return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                                     "tokenizer \"%s\": embedding = %lld is not allowed: it must "
                                     "be an integer >= 1",
                                     name, (long long)o.embedding);
            char conv_name[TSR_LAYER_NAME_BYTES];
            written = snprintf(conv_name, sizeof conv_name, "%s/embedding", name);
            TSR_ASSERT_MSG(written >= 0 && (size_t)written < sizeof conv_name,
                           "layer name \"%s/embedding\" is too long", name);
            /* Dopamine's nn.Conv(name='embedding'): bias, Flax's default
             * LeCun-normal kernel init, no activation. */
            tsr_conv2d_layer_init(&t->patch, p, conv_name, input.c, o.embedding, o.patch_size,
                                  o.patch_size, TSR_PADDING_VALID, true, false,
                                  (tsr_init_spec){TSR_INIT_LECUN_NORMAL, 0.0});
            t->token_dim = o.embedding;
        }
    }
    return TSR_STATUS_OK;
}

void tsr_tokenizer_reset(tsr_tokenizer *t, tsr_params *p, tsr_rng *rng)
{
    if (t->kind == TSR_TOKENS_PER_PATCH) tsr_conv2d_layer_reset(&t->patch, p, rng);
}

tsr_tensor *tsr_tokenizer_forward(tsr_tokenizer *t, tsr_ctx *ctx, tsr_params *p, tsr_tensor *x)
{
    char sx[96];
    const tsr_image_shape *in = &t->input;
    TSR_ASSERT_MSG(x->ndim == 4 && x->shape[1] == in->h && x->shape[2] == in->w && x->shape[3] == in->c,
                   "%s expects (N, %lld, %lld, %lld) input, got %s", t->name, (long long)in->h,
                   (long long)in->w, (long long)in->c, tsr_tensor_shape_str(x, sx, sizeof sx));
    int64_t n = x->shape[0];
    tsr_tensor *tokens = NULL;
    switch (t->kind) {
    case TSR_TOKENS_PER_CONV:
    case TSR_TOKENS_PER_SAMPLE:
        /* Channels-last: both are views of the same data. */
        tokens = tsr_reshape(ctx, x, 3, TSR_SHAPE(n, t->tokens, t->token_dim));
        break;
    case TSR_TOKENS_PER_FEATURE_MAP: {
        tsr_tensor *per_conv = tsr_reshape(ctx, x, 3, TSR_SHAPE(n, in->h * in->w, in->c));
        tokens = tsr_permute(ctx, per_conv, (const int[]){0, 2, 1});
        break;
    }
    case TSR_TOKENS_PER_PATCH:
    case TSR_TOKENS_AVG_POOL: {
        tsr_tensor *patches =
            t->kind == TSR_TOKENS_PER_PATCH
                ? tsr_conv2d_layer_forward(&t->patch, ctx, p, x)
                : tsr_avg_pool2d(ctx, x, (int)t->patch_size, (int)t->patch_size, TSR_PADDING_VALID);
        tokens = tsr_reshape(ctx, patches, 3, TSR_SHAPE(n, t->tokens, t->token_dim));
        break;
    }
    case TSR_TOKEN_KIND_COUNT: TSR_ASSERT_MSG(0, "token kind %d", (int)t->kind);
    }
    tsr_summary_record(ctx, t->name, tokens, 0, 0.0);
    return tokens;
}

void tsr_tokenizer_fini(tsr_tokenizer *t)
{
    if (t->kind == TSR_TOKENS_PER_PATCH) tsr_conv2d_layer_fini(&t->patch);
}

void tsr_tokenizer_token_shape(const tsr_tokenizer *t, int64_t *tokens, int64_t *token_dim)
{
    if (tokens) *tokens = t->tokens;
    if (token_dim) *token_dim = t->token_dim;
}
