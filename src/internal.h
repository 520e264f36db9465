/* internal.h — the context's fields, shared by the core, layers and kernels.
 * Not installed; users go through autograd.h. */
#ifndef TESSERA_INTERNAL_H
#define TESSERA_INTERNAL_H

#include "dnnl/dnnl_glue.h"
#include "tessera/autograd.h"

typedef struct tsr_tape_entry {
    struct tsr_tape_entry *prev;
    tsr_tensor *output;
    tsr_backward_fn backward;
    void *saved;
} tsr_tape_entry;

struct tsr_ctx {
    tsr_arena arena;
    tsr_tape_entry *tape_tail;
    size_t tape_length;
    uint64_t epoch;
    bool grad_enabled;
    bool in_backward;
    tsr_backend backend;
    tsr_dnnl dnnl; /* engine, stream, primitive cache */
    struct tsr_summary *summary; /* collecting layer rows, or NULL */
};

/* True when this op should use its oneDNN path for tensors of `dtype`. */
static inline bool tsr_use_dnnl(const tsr_ctx *ctx, tsr_dtype dtype)
{
    return ctx->backend != TSR_BACKEND_REFERENCE && dtype == TSR_DTYPE_F32;
}

#endif
