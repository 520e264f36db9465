/* tensor.h — tensor views: a pointer, a dtype, a shape and strides.
 *
 * Dimension letters, fixed project-wide (shapes in comments use them):
 *   N batch          C channels        H, W spatial (rows, columns)
 *   A actions        K bins / atoms    E experts
 *   S slots          T tokens          D token width
 * Activations are channels-last: an image batch is (N, H, W, C). Weights are
 * stored plainly: conv weights (O, I, kH, kW) ("OIHW"), linear weights
 * (out, in). Gradients carry a `d` prefix (dx, dw).
 *
 * A tsr_tensor owns nothing unless it came from tsr_tensor_new, which has
 * tsr_tensor_free as its one release. Strides are counted in elements, not
 * bytes. The autograd fields (grad, grad_epoch, requires_grad) are managed by
 * the tape (see tape.h); a view made here starts with them cleared.
 */
#ifndef TESSERA_TENSOR_H
#define TESSERA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { TSR_MAX_DIMS = 5 };

typedef enum tsr_dtype {
    TSR_DTYPE_F32 = 0,
    TSR_DTYPE_F64, /* reference kernels only: finite-difference gradient checks */
    TSR_DTYPE_U8,  /* observations, pruning masks */
    TSR_DTYPE_I32, /* indices: actions, argmax, routing */
} tsr_dtype;

typedef struct tsr_tensor {
    void *data;
    tsr_dtype dtype;
    int ndim;
    int64_t shape[TSR_MAX_DIMS];
    int64_t stride[TSR_MAX_DIMS]; /* in elements */
    /* --- autograd, owned by the tape --- */
    struct tsr_tensor *grad;  /* same shape and dtype, contiguous; NULL until needed */
    uint64_t grad_epoch;      /* backward pass in which `grad` was last written */
    bool requires_grad;
    bool grad_in_arena;       /* `grad` was carved from the pass arena */
    bool owns_data;           /* set only by tsr_tensor_new */
    /* Incremented by whoever changes a parameter's values (optimizers, copies,
     * checkpoint loads); cached oneDNN weight layouts compare it. */
    uint64_t version;
} tsr_tensor;

size_t tsr_dtype_size(tsr_dtype dtype);
const char *tsr_dtype_name(tsr_dtype dtype);

/* A contiguous view of `data` (row-major strides). ndim in [0, TSR_MAX_DIMS];
 * ndim 0 is a scalar. */
tsr_tensor tsr_tensor_view(void *data, tsr_dtype dtype, int ndim, const int64_t *shape);
/* A heap tensor owning zeroed, 64-byte aligned storage. */
tsr_tensor *tsr_tensor_new(tsr_dtype dtype, int ndim, const int64_t *shape);
/* Frees a tensor from tsr_tensor_new (and its data). NULL is allowed. */
void tsr_tensor_free(tsr_tensor *t);

int64_t tsr_tensor_numel(const tsr_tensor *t);
size_t tsr_tensor_nbytes(const tsr_tensor *t); /* numel * dtype size */
bool tsr_tensor_is_contiguous(const tsr_tensor *t);
bool tsr_tensor_same_shape(const tsr_tensor *a, const tsr_tensor *b);
/* Writes "(32, 84, 84, 4)" into buf and returns buf. */
const char *tsr_tensor_shape_str(const tsr_tensor *t, char *buf, size_t size);

/* Views sharing t's data. reshape needs a contiguous t and the same element
 * count; one entry of `shape` may be -1 (inferred). slice narrows dimension
 * `dim` to [start, start + length). permute reorders dimensions: result dim i
 * is t's dim order[i] (a strided view; copy it to make it contiguous). */
tsr_tensor tsr_tensor_reshape(const tsr_tensor *t, int ndim, const int64_t *shape);
tsr_tensor tsr_tensor_slice(const tsr_tensor *t, int dim, int64_t start, int64_t length);
tsr_tensor tsr_tensor_permute(const tsr_tensor *t, const int *order);

/* Element access by multi-index, for tests and reference code (not hot paths). */
size_t tsr_tensor_offset(const tsr_tensor *t, const int64_t *index);
double tsr_tensor_get(const tsr_tensor *t, const int64_t *index);
void tsr_tensor_set(tsr_tensor *t, const int64_t *index, double value);

/* Copies src into dst element by element (same shape; any strides; dtypes may
 * differ: values are converted). */
void tsr_tensor_copy(tsr_tensor *dst, const tsr_tensor *src);
void tsr_tensor_fill(tsr_tensor *t, double value);
/* Fills a contiguous float32 or float64 tensor with std * N(0, 1) draws from
 * `rng` (tsr_rng_normal), in element order. */
struct tsr_rng;
void tsr_tensor_fill_normal(tsr_tensor *t, double std, struct tsr_rng *rng);

static inline float *tsr_f32(const tsr_tensor *t) { return (float *)t->data; }
static inline double *tsr_f64(const tsr_tensor *t) { return (double *)t->data; }
static inline uint8_t *tsr_u8(const tsr_tensor *t) { return (uint8_t *)t->data; }
static inline int32_t *tsr_i32(const tsr_tensor *t) { return (int32_t *)t->data; }

/* Shape literal helper: TSR_SHAPE(32, 84, 84, 4) -> (const int64_t[]){...}. */
#define TSR_SHAPE(...) ((const int64_t[]){__VA_ARGS__})

#ifdef __cplusplus
}
#endif

#endif
