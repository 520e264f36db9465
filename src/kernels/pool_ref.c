/* pool_ref.c — max-pooling reference kernels (templated on `real`).
 *
 * Channels-last (N, H, W, C). A window only ever looks at positions inside the
 * image: padding is never a candidate, so SAME padding cannot select it. Ties
 * go to the first position in row-major window order. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/real.h"

/* Below this many compared elements a kernel stays serial. */
#define PARALLEL_MIN_ELEMENTS ((int64_t)1 << 18)

void TSR_FN(tsr_ref_max_pool2d_fwd)(const tsr_conv_geometry *g, const real *x, real *y,
                                    int32_t *argmax)
{
    const int64_t H = g->h, W = g->w, C = g->c, Ho = g->out_h, Wo = g->out_w;
    const int64_t work = g->n * Ho * Wo * C * g->kernel_h * g->kernel_w;
#pragma omp parallel for if (work >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t out = ((n * Ho + oh) * Wo + ow) * C;
                real *yrow = y + out;
                int32_t *arow = argmax ? argmax + out : NULL;
                bool first = true;
                for (int64_t kh = 0; kh < g->kernel_h; kh++) {
                    int64_t ih = oh * g->stride - g->pad_top + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                        int64_t iw = ow * g->stride - g->pad_left + kw;
                        if (iw < 0 || iw >= W) continue;
                        const real *xrow = x + ((n * H + ih) * W + iw) * C;
                        int32_t position = (int32_t)(ih * W + iw);
                        if (first) {
                            memcpy(yrow, xrow, (size_t)C * sizeof *yrow);
                            if (arow)
                                for (int64_t c = 0; c < C; c++) arow[c] = position;
                            first = false;
                            continue;
                        }
                        for (int64_t c = 0; c < C; c++) {
                            if (xrow[c] > yrow[c]) {
                                yrow[c] = xrow[c];
                                if (arow) arow[c] = position;
                            }
                        }
                    }
                }
            }
        }
    }
}

void TSR_FN(tsr_ref_max_pool2d_bwd)(const tsr_conv_geometry *g, const int32_t *argmax,
                                    const real *dy, real *dx, bool accumulate)
{
    const int64_t H = g->h, W = g->w, C = g->c, Ho = g->out_h, Wo = g->out_w;
    const int64_t work = g->n * H * W * C;
#pragma omp parallel for if (work >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        real *dxn = dx + n * H * W * C;
        if (!accumulate) memset(dxn, 0, (size_t)(H * W * C) * sizeof *dxn);
        for (int64_t p = 0; p < Ho * Wo; p++) {
            int64_t out = (n * Ho * Wo + p) * C;
            for (int64_t c = 0; c < C; c++) dxn[(int64_t)argmax[out + c] * C + c] += dy[out + c];
        }
    }
}

/* Channels are handled in blocks whose "already routed" flags live on the
 * stack; selects instead of branches keep the channel loop vectorizable. */
#define ROUTE_BLOCK 64

void TSR_FN(tsr_ref_max_pool2d_bwd_by_value)(const tsr_conv_geometry *g, const real *x,
                                             const real *y, const real *dy, real *dx,
                                             bool accumulate)
{
    const int64_t H = g->h, W = g->w, C = g->c, Ho = g->out_h, Wo = g->out_w;
    const int64_t work = g->n * H * W * C;
#pragma omp parallel for if (work >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        real *dxn = dx + n * H * W * C;
        const real *xn = x + n * H * W * C;
        if (!accumulate) memset(dxn, 0, (size_t)(H * W * C) * sizeof *dxn);
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t out = ((n * Ho + oh) * Wo + ow) * C;
                for (int64_t c0 = 0; c0 < C; c0 += ROUTE_BLOCK) {
                    int64_t cb = C - c0 < ROUTE_BLOCK ? C - c0 : ROUTE_BLOCK;
                    const real *restrict yb = y + out + c0, *restrict dyb = dy + out + c0;
                    int32_t routed[ROUTE_BLOCK]; /* 1 once this channel's dy is placed */
                    for (int64_t c = 0; c < cb; c++) routed[c] = 0;
                    for (int64_t kh = 0; kh < g->kernel_h; kh++) {
                        int64_t ih = oh * g->stride - g->pad_top + kh;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                            int64_t iw = ow * g->stride - g->pad_left + kw;
                            if (iw < 0 || iw >= W) continue;
                            const real *restrict xb = xn + (ih * W + iw) * C + c0;
                            real *restrict dxb = dxn + (ih * W + iw) * C + c0;
                            for (int64_t c = 0; c < cb; c++) {
                                int32_t take = (xb[c] == yb[c]) & (routed[c] == 0);
                                real d = dyb[c];
                                dxb[c] += take ? d : (real)0;
                                routed[c] |= take;
                            }
                        }
                    }
                }
            }
        }
    }
}
