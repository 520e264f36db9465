/* conv_ref.c — direct 2-D convolution reference kernels (templated on `real`).
 *
 * Channels-last activations, plain OIHW weights, no im2col: every loop nest
 * keeps a contiguous channel run innermost. Work is split over the batch (or,
 * for the weight gradient, over output channels) so each thread writes
 * disjoint outputs and the order of every sum is fixed: results do not depend
 * on the thread count. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/real.h"

/* Below this many multiply-adds a kernel stays serial (tiny RL tensors). */
#define PARALLEL_MIN_MACS ((int64_t)1 << 20)

static int64_t conv_macs(const tsr_conv_geometry *g)
{
    return g->n * g->out_h * g->out_w * g->o * g->c * g->kernel_h * g->kernel_w;
}

void TSR_FN(tsr_ref_conv2d_fwd)(const tsr_conv_geometry *g, const real *x, const real *w,
                                const real *b, real *y, bool relu)
{
    const int64_t H = g->h, W = g->w, C = g->c, O = g->o, KH = g->kernel_h, KW = g->kernel_w;
    const int64_t Ho = g->out_h, Wo = g->out_w, KK = KH * KW;
#pragma omp parallel for if (conv_macs(g) >= PARALLEL_MIN_MACS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                real *yrow = y + ((n * Ho + oh) * Wo + ow) * O;
                for (int64_t o = 0; o < O; o++) {
                    real acc = b ? b[o] : 0;
                    const real *wo = w + o * C * KK;
                    for (int64_t kh = 0; kh < KH; kh++) {
                        int64_t ih = oh * g->stride - g->pad_top + kh;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t iw = ow * g->stride - g->pad_left + kw;
                            if (iw < 0 || iw >= W) continue;
                            const real *xrow = x + ((n * H + ih) * W + iw) * C;
                            const real *wk = wo + kh * KW + kw;
                            for (int64_t c = 0; c < C; c++) acc += xrow[c] * wk[c * KK];
                        }
                    }
                    yrow[o] = relu && !(acc > 0) ? 0 : acc;
                }
            }
        }
    }
}

void TSR_FN(tsr_ref_conv2d_bwd_data)(const tsr_conv_geometry *g, const real *dy, const real *w,
                                     real *dx, bool accumulate)
{
    const int64_t H = g->h, W = g->w, C = g->c, O = g->o, KH = g->kernel_h, KW = g->kernel_w;
    const int64_t Ho = g->out_h, Wo = g->out_w, KK = KH * KW;
#pragma omp parallel for if (conv_macs(g) >= PARALLEL_MIN_MACS) schedule(static)
    for (int64_t n = 0; n < g->n; n++) {
        real *dxn = dx + n * H * W * C;
        if (!accumulate) memset(dxn, 0, (size_t)(H * W * C) * sizeof *dxn);
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < Wo; ow++) {
                const real *dyrow = dy + ((n * Ho + oh) * Wo + ow) * O;
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * g->stride - g->pad_top + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < KW; kw++) {
                        int64_t iw = ow * g->stride - g->pad_left + kw;
                        if (iw < 0 || iw >= W) continue;
                        real *dxrow = dxn + (ih * W + iw) * C;
                        const real *wk = w + kh * KW + kw;
                        for (int64_t c = 0; c < C; c++) {
                            const real *wc = wk + c * KK;
                            real acc = 0;
                            for (int64_t o = 0; o < O; o++) acc += dyrow[o] * wc[o * C * KK];
                            dxrow[c] += acc;
                        }
                    }
                }
            }
        }
    }
}

void TSR_FN(tsr_ref_conv2d_bwd_weights)(const tsr_conv_geometry *g, const real *x, const real *dy,
                                        real *dw, real *db, bool accumulate_w, bool accumulate_b)
{
    const int64_t H = g->h, W = g->w, C = g->c, O = g->o, KH = g->kernel_h, KW = g->kernel_w;
    const int64_t Ho = g->out_h, Wo = g->out_w, KK = KH * KW;
    const int64_t positions = g->n * Ho * Wo;
    if (db) {
        /* One sum per output channel over (N, Ho, Wo), in order. */
        for (int64_t o = 0; o < O; o++) {
            real acc = 0;
            for (int64_t p = 0; p < positions; p++) acc += dy[p * O + o];
            db[o] = accumulate_b ? db[o] + acc : acc;
        }
    }
    if (!dw) return;
    /* Split over output channels: thread-private rows of dw, each summed over
     * (N, Ho, Wo) in the same order whatever the thread count. */
#pragma omp parallel for if (conv_macs(g) >= PARALLEL_MIN_MACS) schedule(static)
    for (int64_t o = 0; o < O; o++) {
        real *dwo = dw + o * C * KK;
        if (!accumulate_w) memset(dwo, 0, (size_t)(C * KK) * sizeof *dwo);
        for (int64_t n = 0; n < g->n; n++) {
            for (int64_t oh = 0; oh < Ho; oh++) {
                for (int64_t ow = 0; ow < Wo; ow++) {
                    real d = dy[((n * Ho + oh) * Wo + ow) * O + o];
                    for (int64_t kh = 0; kh < KH; kh++) {
                        int64_t ih = oh * g->stride - g->pad_top + kh;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t kw = 0; kw < KW; kw++) {
                            int64_t iw = ow * g->stride - g->pad_left + kw;
                            if (iw < 0 || iw >= W) continue;
                            const real *xrow = x + ((n * H + ih) * W + iw) * C;
                            real *wk = dwo + kh * KW + kw;
                            for (int64_t c = 0; c < C; c++) wk[c * KK] += d * xrow[c];
                        }
                    }
                }
            }
        }
    }
}
