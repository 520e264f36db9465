/* pool_window.c — pooling window geometry. */
#include "pool_window.h"

#include <string.h>

#include "tessera/status.h"

void tsr_pool_window(const tsr_tensor *x, int kernel, int stride, tsr_padding padding,
                     tsr_pool_key *key, tsr_conv_geometry *geometry)
{
    TSR_ASSERT_MSG(kernel > 0 && stride > 0, "pooling with kernel %d, stride %d", kernel, stride);
    memset(key, 0, sizeof *key);
    key->kernel = kernel;
    key->stride = stride;
    key->n = x->shape[0];
    key->h = x->shape[1];
    key->w = x->shape[2];
    key->c = x->shape[3];
    tsr_conv_output_size(key->h, kernel, stride, padding, &key->out_h, &key->pad_top);
    tsr_conv_output_size(key->w, kernel, stride, padding, &key->out_w, &key->pad_left);
    int64_t after_h = (key->out_h - 1) * stride + kernel - key->h - key->pad_top;
    int64_t after_w = (key->out_w - 1) * stride + kernel - key->w - key->pad_left;
    key->pad_bottom = after_h > 0 ? after_h : 0;
    key->pad_right = after_w > 0 ? after_w : 0;
    TSR_ASSERT(key->pad_top < kernel && key->pad_left < kernel && key->pad_bottom < kernel &&
               key->pad_right < kernel);
    *geometry = (tsr_conv_geometry){
        .n = key->n, .h = key->h, .w = key->w, .c = key->c, .o = key->c,
        .kernel_h = kernel, .kernel_w = kernel,
        .out_h = key->out_h, .out_w = key->out_w, .stride = stride,
        .pad_top = key->pad_top, .pad_left = key->pad_left,
    };
}
