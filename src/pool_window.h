/* pool_window.h — the window geometry shared by max- and average-pooling. */
#ifndef TESSERA_POOL_WINDOW_H
#define TESSERA_POOL_WINDOW_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "tessera/ops.h"

/* The cache key of a pooling primitive; `op` tells the direction and kind. */
typedef struct tsr_pool_key {
    uint32_t op;
    int32_t kernel, stride;
    int32_t unused;
    int64_t n, h, w, c, out_h, out_w;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
} tsr_pool_key;

/* Output size and padding of a (kernel x kernel)/stride pooling of x
 * (N, H, W, C), as a zeroed key (op unset) and the reference kernels'
 * geometry. Every window holds at least one in-image position (true of SAME
 * and VALID), so no output comes from padding alone. */
void tsr_pool_window(const tsr_tensor *x, int kernel, int stride, tsr_padding padding,
                     tsr_pool_key *key, tsr_conv_geometry *geometry);

#endif
