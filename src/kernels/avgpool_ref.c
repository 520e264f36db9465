/* avgpool_ref.c — average-pooling reference kernels (templated on `real`).
 *
 * Channels-last (N, H, W, C). A window averages only the positions inside
 * the image: padding counts neither in the sum nor in the divisor (oneDNN's
 * pooling_avg_exclude_padding). Sums run in window order, in double. */
#include <string.h>

#include "kernels/encoder_kernels.h"
#include "kernels/real.h"

/* Below this many visited elements a kernel stays serial. */
#define PARALLEL_MIN_ELEMENTS ((int64_t)1 << 18)

/* The in-image part [lo, hi) of window position `o` along one axis. */
static void window(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t size,
                   int64_t *lo, int64_t *hi)
{
    int64_t start = o * stride - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + kernel > size ? size : start + kernel;
}

void TSR_FN(tsr_ref_avg_pool2d_fwd)(const tsr_conv_geometry *g, const real *x, real *y)
{
    const int64_t H = g->h, W = g->w, C = g->c, Ho = g->out_h, Wo = g->out_w;
    const int64_t work = g->n * Ho * Wo * C * g->kernel_h * g->kernel_w;
#pragma omp parallel for if (work >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            window(oh, g->stride, g->pad_top, g->kernel_h, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0, w1;
                window(ow, g->stride, g->pad_left, g->kernel_w, W, &w0, &w1);
                double inv = 1.0 / (double)((h1 - h0) * (w1 - w0));
                real *yrow = y + ((n * Ho + oh) * Wo + ow) * C;
                for (int64_t c = 0; c < C; c++) {
                    double sum = 0.0;
                    for (int64_t ih = h0; ih < h1; ih++)
                        for (int64_t iw = w0; iw < w1; iw++)
                            sum += (double)x[((n * H + ih) * W + iw) * C + c];
                    yrow[c] = (real)(sum * inv);
                }
            }
        }
    }
}

void TSR_FN(tsr_ref_avg_pool2d_bwd)(const tsr_conv_geometry *g, const real *dy, real *dx,
                                    bool accumulate)
{
    const int64_t H = g->h, W = g->w, C = g->c, Ho = g->out_h, Wo = g->out_w;
    const int64_t work = g->n * Ho * Wo * C * g->kernel_h * g->kernel_w;
    /* Each sample's dx is written by one thread, windows in output order. */
#pragma omp parallel for if (work >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        real *dxn = dx + n * H * W * C;
        if (!accumulate) memset(dxn, 0, (size_t)(H * W * C) * sizeof *dxn);
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0, h1;
            window(oh, g->stride, g->pad_top, g->kernel_h, H, &h0, &h1);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0, w1;
                window(ow, g->stride, g->pad_left, g->kernel_w, W, &w0, &w1);
                real inv = (real)(1.0 / (double)((h1 - h0) * (w1 - w0)));
                const real *dyrow = dy + ((n * Ho + oh) * Wo + ow) * C;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        real *dxrow = dxn + (ih * W + iw) * C;
                        for (int64_t c = 0; c < C; c++) dxrow[c] += dyrow[c] * inv;
                    }
            }
        }
    }
}
