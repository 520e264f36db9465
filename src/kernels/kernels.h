/* kernels.h — plain-C reference kernels, declared for both instantiations.
 *
 * Each kernel is written once against `real` (real.h) and exists as name_f32
 * and name_f64. They are the ground truth the oneDNN paths are checked
 * against, and the only path for float64. Contracts use the project's
 * dimension letters; every pointer is to contiguous data unless stated. An
 * `accumulate` flag means "add into the output" instead of overwriting it.
 */
#ifndef TESSERA_KERNELS_H
#define TESSERA_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

/* Geometry of a 2-D convolution or pooling window over channels-last images
 * (conv_ref.c, pool_ref.c): input (N, H, W, C), output (N, out_h, out_w, O)
 * with O = C for pooling, a square stride, and the leading padding; trailing
 * padding is whatever the output size implies, and padded positions are
 * zeros for convolution and never candidates for max pooling. */
typedef struct tsr_conv_geometry {
    int64_t n, h, w, c;         /* input (N, H, W, C) */
    int64_t o;                  /* output channels */
    int64_t kernel_h, kernel_w;
    int64_t out_h, out_w;
    int64_t stride;
    int64_t pad_top, pad_left;
} tsr_conv_geometry;

#define TSR_DECLARE_KERNELS(real, sfx)                                                      \
    /* y = max(x, 0) over n elements. */                                                     \
    void tsr_ref_relu_fwd##sfx(const real *x, real *y, int64_t n);                           \
    /* dx (=|+=) dy * (y > 0), from the forward output y. */                                 \
    void tsr_ref_relu_bwd##sfx(const real *y, const real *dy, real *dx, int64_t n,           \
                               bool accumulate);                                             \
    /* ---- eltwise_ref.c: binary ops, scale, u8 conversion ---- */                          \
    /* a (outer, inner), b (inner) broadcast over outer (outer 1: same shape):               \
     * y (=|+=) a + b, a - b, a * b. mul with accumulate also gives da = dy * b. */          \
    void tsr_ref_add_fwd##sfx(const real *a, const real *b, real *y, int64_t outer,          \
                              int64_t inner, bool accumulate);                               \
    void tsr_ref_sub_fwd##sfx(const real *a, const real *b, real *y, int64_t outer,          \
                              int64_t inner, bool accumulate);                               \
    void tsr_ref_mul_fwd##sfx(const real *a, const real *b, real *y, int64_t outer,          \
                              int64_t inner, bool accumulate);                               \
    /* db[j] (=|+=) alpha * sum_i dy[i, j], i ascending (the gradient of a                   \
     * broadcast b; outer 1 gives dx (=|+=) alpha * dy). */                                  \
    void tsr_ref_sum_rows##sfx(const real *dy, real *db, int64_t outer, int64_t inner,       \
                               real alpha, bool accumulate);                                 \
    /* db[j] (=|+=) sum_i dy[i, j] * a[i, j], i ascending. */                                \
    void tsr_ref_mul_bwd_b##sfx(const real *dy, const real *a, real *db, int64_t outer,      \
                                int64_t inner, bool accumulate);                             \
    /* y = alpha * x + beta, and dx (=|+=) alpha * dy, over n elements. */                   \
    void tsr_ref_scale_fwd##sfx(const real *x, real *y, int64_t n, real alpha, real beta);   \
    void tsr_ref_scale_bwd##sfx(const real *dy, real *dx, int64_t n, real alpha,             \
                                bool accumulate);                                            \
    /* y = scale * x over n elements (pixels to [0, 1]). */                                  \
    void tsr_ref_u8_to_real##sfx(const uint8_t *x, real *y, int64_t n, real scale);          \
    /* ---- shape_ref.c ---- */                                                              \
    /* dst (=|+=) src over n elements. */                                                    \
    void tsr_ref_copy##sfx(const real *src, real *dst, int64_t n, bool accumulate);          \
    /* rows x cols block: dst[r * dst_stride + c] (=|+=) src[r * src_stride + c]. */         \
    void tsr_ref_copy_rows##sfx(const real *src, int64_t src_stride, real *dst,              \
                                int64_t dst_stride, int64_t rows, int64_t cols,              \
                                bool accumulate);                                            \
    /* y contiguous of `shape` (ndim dims): y[i] (=|+=) x[sum_d i_d * x_stride[d]]. */       \
    void tsr_ref_permute##sfx(const real *x, real *y, int ndim, const int64_t *shape,        \
                              const int64_t *x_stride, bool accumulate);                     \
    /* ---- reduce_ref.c ---- */                                                             \
    /* x (outer, len, inner) -> y (outer, inner) = scale * sum over len (k                   \
     * ascending, in double). */                                                             \
    void tsr_ref_sum_axis##sfx(const real *x, real *y, int64_t outer, int64_t len,           \
                               int64_t inner, real scale);                                   \
    /* dx[o, k, i] (=|+=) scale * dy[o, i]. */                                               \
    void tsr_ref_sum_axis_bwd##sfx(const real *dy, real *dx, int64_t outer, int64_t len,     \
                                   int64_t inner, real scale, bool accumulate);              \
    /* y[0] = scale * sum of n elements: fixed chunks (a function of n only)                 \
     * summed in double, partials added in order: thread-count independent. */               \
    void tsr_ref_sum_all##sfx(const real *x, int64_t n, real scale, real *y);                \
    /* x (N, A, rest), index (N) in [0, A): y[n, r] = x[n, index[n], r]. */                  \
    void tsr_ref_gather_actions_fwd##sfx(const real *x, const int32_t *index, real *y,       \
                                         int64_t N, int64_t A, int64_t rest);                \
    /* dx[n, index[n], r] += dy[n, r]. */                                                    \
    void tsr_ref_gather_actions_bwd##sfx(const real *dy, const int32_t *index, real *dx,     \
                                         int64_t N, int64_t A, int64_t rest);                \
    /* ---- dense_ref.c ---- */                                                              \
    /* c (B, M, P) (=|+=) a (B, M, K) . b (B, K, P), c contiguous; operands given by         \
     * element strides {batch, row, column}, a batch stride of 0 broadcasts. */              \
    void tsr_ref_matmul##sfx(int64_t batch, int64_t m, int64_t k, int64_t p, const real *a,  \
                             const int64_t *a_stride, const real *b,                         \
                             const int64_t *b_stride, real *c, bool accumulate);                                      \
    /* y (N, out) = x (N, in) . w^T + bias, then max(., 0) if relu; w (out, in); bias        \
     * may be NULL. */                                                                       \
    void tsr_ref_linear_fwd##sfx(const real *x, const real *w, const real *bias, real *y,    \
                                 int64_t n, int64_t in, int64_t out, bool relu);             \
    /* dx (N, in) (=|+=) dy (N, out) . w (out, in). */                                       \
    void tsr_ref_linear_bwd_data##sfx(const real *dy, const real *w, real *dx, int64_t n,    \
                                      int64_t in, int64_t out, bool accumulate);             \
    /* dw (out, in) (=|+=) dy^T . x and dbias (out) (=|+=) column sums of dy, each by        \
     * its own flag; either output may be NULL. */                                           \
    void tsr_ref_linear_bwd_weights##sfx(const real *x, const real *dy, real *dw,            \
                                         real *dbias, int64_t n, int64_t in, int64_t out,    \
                                         bool accumulate_w, bool accumulate_b);              \
    /* dst (n) (=|+=) sum over b of src (batch, n), in batch order. */                       \
    void tsr_ref_sum_batches##sfx(const real *src, real *dst, int64_t batch, int64_t n,      \
                                  bool accumulate);                                          \
    /* dst += src over n elements. */                                                        \
    void tsr_ref_add_into##sfx(real *dst, const real *src, int64_t n);                       \
    /* ---- norm_ref.c: tensors seen as (outer, len, inner), reduced over len ---- */        \
    /* y = softmax(x) or log_softmax(x) over len (max-shifted, sums in double). */           \
    void tsr_ref_softmax_fwd##sfx(const real *x, real *y, int64_t outer, int64_t len,        \
                                  int64_t inner, bool log_softmax);                          \
    /* dx (=|+=) the input gradient, from the forward output y. */                           \
    void tsr_ref_softmax_bwd##sfx(const real *y, const real *dy, real *dx, int64_t outer,    \
                                  int64_t len, int64_t inner, bool log_softmax,              \
                                  bool accumulate);                                          \
    /* Layer norm of x (rows, width) over width; gamma and beta (width) may be NULL;         \
     * mean and (biased) variance (rows) are written unless NULL. */                         \
    void tsr_ref_layer_norm_fwd##sfx(const real *x, const real *gamma, const real *beta,     \
                                     real *y, real *mean, real *variance, int64_t rows,      \
                                     int64_t width, double eps);                             \
    /* From the forward's mean and variance: dx (rows, width), dgamma and dbeta              \
     * (width), each NULL when not wanted and (=|+=) by its own flag. gamma may be           \
     * NULL (ones). */                                                                       \
    void tsr_ref_layer_norm_bwd##sfx(const real *x, const real *gamma, const real *mean,     \
                                     const real *variance, const real *dy, real *dx,         \
                                     real *dgamma, real *dbeta, int64_t rows, int64_t width, \
                                     double eps, bool accumulate_x, bool accumulate_gamma,   \
                                     bool accumulate_beta);                                  \
    /* y = x / (||x||_2 + eps) over len. */                                                  \
    void tsr_ref_l2_normalize_fwd##sfx(const real *x, real *y, int64_t outer, int64_t len,   \
                                       int64_t inner, double eps);                           \
    /* dx (=|+=) the input gradient, from the forward input x. */                            \
    void tsr_ref_l2_normalize_bwd##sfx(const real *x, const real *dy, real *dx,              \
                                       int64_t outer, int64_t len, int64_t inner, double eps,\
                                       bool accumulate);                                     \
    /* ---- conv_ref.c: x (N, H, W, C), w (O, C, kH, kW), y (N, Ho, Wo, O) ---- */           \
    /* y = conv(x, w) + b (b (O) or NULL), then max(., 0) when relu. */                      \
    void tsr_ref_conv2d_fwd##sfx(const tsr_conv_geometry *g, const real *x, const real *w,   \
                                const real *b, real *y, bool relu);                          \
    /* dx (=|+=) the input gradient of dy through w. */                                      \
    void tsr_ref_conv2d_bwd_data##sfx(const tsr_conv_geometry *g, const real *dy,            \
                                     const real *w, real *dx, bool accumulate);              \
    /* dw (O, C, kH, kW) (=|+=) sum over (N, Ho, Wo) of dy * x, db (O) (=|+=) the            \
     * sum of dy; either may be NULL (skipped). Sums run in a fixed order. */                \
    void tsr_ref_conv2d_bwd_weights##sfx(const tsr_conv_geometry *g, const real *x,          \
                                        const real *dy, real *dw, real *db,                  \
                                        bool accumulate_w, bool accumulate_b);               \
    /* ---- pool_ref.c: x (N, H, W, C) -> y (N, Ho, Wo, C), O = C ---- */                    \
    /* Max over each window's in-image positions; argmax (N, Ho, Wo, C) int32,               \
     * or NULL, gets the chosen position as ih * W + iw (first maximum on ties). */          \
    void tsr_ref_max_pool2d_fwd##sfx(const tsr_conv_geometry *g, const real *x, real *y,     \
                                    int32_t *argmax);                                        \
    /* dx (=|+=) dy routed to the argmax positions. */                                       \
    void tsr_ref_max_pool2d_bwd##sfx(const tsr_conv_geometry *g, const int32_t *argmax,      \
                                    const real *dy, real *dx, bool accumulate);              \
    /* The same routing without an argmax: each window's dy goes to its first                \
     * in-image position (row-major window order) where x equals the window's y,             \
     * which is the forward's first maximum whoever computed y exactly (a max is             \
     * one of its inputs). A window whose y is NaN routes nothing. */                        \
    void tsr_ref_max_pool2d_bwd_by_value##sfx(const tsr_conv_geometry *g, const real *x,     \
                                             const real *y, const real *dy, real *dx,        \
                                             bool accumulate);

TSR_DECLARE_KERNELS(float, _f32)
TSR_DECLARE_KERNELS(double, _f64)

#undef TSR_DECLARE_KERNELS

#endif
