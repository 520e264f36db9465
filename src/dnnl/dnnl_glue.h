/* dnnl_glue.h — oneDNN engine, stream and the per-shape primitive cache.
 *
 * Every oneDNN primitive tessera runs is created once per (op, shape,
 * attributes) key and kept in the context's cache, together with one memory
 * object per execution argument. At execution only the data handles change
 * (dnnl_memory_set_data_handle), the scratchpad comes from the pass arena
 * (user scratchpad mode), and nothing is allocated. Weights that oneDNN wants
 * in a blocked layout are reordered by the op from the plain layout into a
 * copy the layer owns and refreshes when the parameters' version changes.
 *
 * oneDNN failures on descriptors tessera built itself are programming errors
 * and abort with oneDNN's status name and the call that failed.
 */
#ifndef TESSERA_DNNL_GLUE_H
#define TESSERA_DNNL_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "tessera/arena.h"
#include "tessera/ops.h"
#include "tessera/tensor.h"

enum { TSR_DNNL_KEY_BYTES = 192, TSR_DNNL_MAX_ARGS = 12 };

typedef struct tsr_dnnl_slot {
    uint64_t hash;
    size_t key_bytes;
    unsigned char key[TSR_DNNL_KEY_BYTES];
    dnnl_primitive_t primitive;
    const_dnnl_primitive_desc_t pd; /* owned by the primitive */
    int nargs;
    int arg[TSR_DNNL_MAX_ARGS];
    dnnl_memory_t mem[TSR_DNNL_MAX_ARGS];
    dnnl_memory_t scratchpad;
    size_t scratchpad_bytes;
} tsr_dnnl_slot;

/* Called after every execution with the slot and the data handles it ran on
 * (the scratchpad excluded): how a benchmark replays a step's primitives alone
 * to time them raw (bench/bench_workloads.c). */
typedef void (*tsr_dnnl_trace_fn)(void *user, const tsr_dnnl_slot *slot, void *const *handles);

typedef struct tsr_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    tsr_dnnl_slot **table; /* open addressing on the key hash */
    size_t capacity, count;
    tsr_dnnl_trace_fn trace; /* NULL: no tracing (the default) */
    void *trace_user;
} tsr_dnnl;

void tsr_dnnl_init(tsr_dnnl *d);
void tsr_dnnl_fini(tsr_dnnl *d);

/* Aborts with the status name when a oneDNN call fails. */
#define TSR_DNNL_CHECK(call)                                                          \
    do {                                                                              \
        dnnl_status_t tsr_dnnl_status_ = (call);                                      \
        if (tsr_dnnl_status_ != dnnl_success)                                         \
            tsr_assert_fail(#call, __FILE__, __LINE__, "oneDNN returned %s",          \
                            tsr_dnnl_status_name(tsr_dnnl_status_));                  \
    } while (0)

const char *tsr_dnnl_status_name(dnnl_status_t status);

/* The cached slot for `key`, or NULL when there is none yet. Keys are compared
 * byte for byte: build them from a zeroed struct. */
tsr_dnnl_slot *tsr_dnnl_find(tsr_dnnl *d, const void *key, size_t key_bytes);
/* Creates the primitive for `pd` (taking ownership of it: it is destroyed
 * here), one memory object for each execution argument in `args` (in the
 * order execute's handles will come), and caches it under `key`. The pd must
 * have been created with dnnl_scratchpad_mode_user. */
tsr_dnnl_slot *tsr_dnnl_insert(tsr_dnnl *d, const void *key, size_t key_bytes,
                               dnnl_primitive_desc_t pd, int nargs, const int *args);
/* Runs a slot with one data handle per argument (same order as at insert);
 * the scratchpad is taken from `arena`. */
void tsr_dnnl_execute(tsr_dnnl *d, tsr_dnnl_slot *slot, tsr_arena *arena, void *const *handles);

/* The memory descriptor a slot expects for execution argument `arg`. */
const dnnl_memory_desc_t *tsr_dnnl_slot_md(const tsr_dnnl_slot *slot, int arg);

/* A plain f32 memory descriptor with a format tag. */
dnnl_memory_desc_t tsr_dnnl_md(int ndim, const int64_t *dims, dnnl_format_tag_t tag);
/* An f32 descriptor with "any" layout, for oneDNN to choose. */
dnnl_memory_desc_t tsr_dnnl_md_any(int ndim, const int64_t *dims);
/* A primitive attribute in user-scratchpad mode; caller destroys it. */
dnnl_primitive_attr_t tsr_dnnl_attr(void);


/* ---- reorders and cached weight layouts (shared by conv and linear) ---- */


/* A hash of everything that decides where an element of a memory lives. */
uint64_t tsr_dnnl_md_hash(const dnnl_memory_desc_t *md);

/* to = from reordered between two layouts of the same dims; with `sum` the
 * result is added into `to`. The primitive is cached by both layouts. */
void tsr_dnnl_reorder(tsr_dnnl *d, tsr_arena *arena, const dnnl_memory_desc_t *from_md,
                      const dnnl_memory_desc_t *to_md, const void *from, void *to, bool sum);

/* The data of plain weight `w` (layout `plain`) in layout `want`: w's own
 * data when the two are equal; the cache when it holds w's current values
 * (same source pointer, version and layout); otherwise a fresh reorder — into
 * the cache when `refresh` (the cache's owner, the forward pass, asks) or into
 * the arena. The cache grows only when a layout needs more bytes. */
void *tsr_dnnl_weights_in_layout(tsr_dnnl *d, tsr_arena *arena, const tsr_tensor *w,
                                 const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                                 tsr_weight_cache *cache, bool refresh);

/* True when the cache holds w's current values (in whatever layout). */
bool tsr_weight_cache_is_current(const tsr_weight_cache *cache, const tsr_tensor *w);

#endif
