/* arena.h — the pass arena: a bump allocator reset once per training step.
 *
 * Activations, saved tensors, tape entries, oneDNN scratchpads and activation
 * gradients are carved from the arena and never freed one by one. The first
 * steps (warm-up) may outgrow the main block; the overflow is served from
 * extra chunks, and the next reset folds everything into one main block sized
 * for the high-water mark. After warm-up a step therefore performs no system
 * allocation at all — tsr_arena_system_allocations() stops changing, which the
 * tests assert.
 */
#ifndef TESSERA_ARENA_H
#define TESSERA_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TSR_ARENA_ALIGNMENT = 64 };

typedef struct tsr_arena_chunk tsr_arena_chunk;

typedef struct tsr_arena {
    char *base;               /* main block */
    size_t capacity;          /* bytes in the main block */
    size_t used;              /* bytes used in the main block */
    tsr_arena_chunk *overflow; /* chunks taken since the last reset (warm-up only) */
    size_t overflow_used;     /* bytes handed out from overflow chunks */
    size_t high_water;        /* most bytes handed out in one pass, ever */
    uint64_t system_allocations; /* calls to the system allocator, ever */
} tsr_arena;

void tsr_arena_init(tsr_arena *arena, size_t initial_capacity);
void tsr_arena_fini(tsr_arena *arena);
/* `bytes` of uninitialised memory aligned to TSR_ARENA_ALIGNMENT. Never NULL. */
void *tsr_arena_alloc(tsr_arena *arena, size_t bytes);
void *tsr_arena_zalloc(tsr_arena *arena, size_t bytes);
/* Releases everything handed out; grows the main block if the pass overflowed. */
void tsr_arena_reset(tsr_arena *arena);
size_t tsr_arena_high_water(const tsr_arena *arena);
uint64_t tsr_arena_system_allocations(const tsr_arena *arena);
/* A contiguous tensor (struct and data) in the arena; data uninitialised. */
tsr_tensor *tsr_arena_tensor(tsr_arena *arena, tsr_dtype dtype, int ndim, const int64_t *shape);

#ifdef __cplusplus
}
#endif

#endif
