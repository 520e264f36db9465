/* arena.c — bump allocation with warm-up overflow chunks. */
#include "tessera/arena.h"

#include <string.h>

#include "tessera/status.h"

struct tsr_arena_chunk {
    tsr_arena_chunk *next;
    size_t capacity, used;
    char *data;
};

static size_t align_up(size_t n) { return (n + TSR_ARENA_ALIGNMENT - 1) & ~(size_t)(TSR_ARENA_ALIGNMENT - 1); }

void tsr_arena_init(tsr_arena *arena, size_t initial_capacity)
{
    memset(arena, 0, sizeof *arena);
    arena->capacity = align_up(initial_capacity ? initial_capacity : 1u << 20);
    arena->base = tsr_aligned_alloc(TSR_ARENA_ALIGNMENT, arena->capacity);
    arena->system_allocations = 1;
}

static void free_overflow(tsr_arena *arena)
{
    for (tsr_arena_chunk *c = arena->overflow, *next; c; c = next) {
        next = c->next;
        tsr_free(c->data);
        tsr_free(c);
    }
    arena->overflow = NULL;
    arena->overflow_used = 0;
}

void tsr_arena_fini(tsr_arena *arena)
{
    free_overflow(arena);
    tsr_free(arena->base);
    memset(arena, 0, sizeof *arena);
}

void *tsr_arena_alloc(tsr_arena *arena, size_t bytes)
{
    bytes = align_up(bytes ? bytes : 1);
    void *p;
    if (arena->used + bytes <= arena->capacity) {
        p = arena->base + arena->used;
        arena->used += bytes;
    } else {
        tsr_arena_chunk *c = arena->overflow;
        if (!c || c->used + bytes > c->capacity) {
            c = tsr_malloc(sizeof *c);
            c->capacity = bytes > arena->capacity ? bytes : arena->capacity;
            c->used = 0;
            c->data = tsr_aligned_alloc(TSR_ARENA_ALIGNMENT, c->capacity);
            c->next = arena->overflow;
            arena->overflow = c;
            arena->system_allocations += 2;
        }
        p = c->data + c->used;
        c->used += bytes;
        arena->overflow_used += bytes;
    }
    size_t total = arena->used + arena->overflow_used;
    if (total > arena->high_water) arena->high_water = total;
    return p;
}

void *tsr_arena_zalloc(tsr_arena *arena, size_t bytes)
{
    void *p = tsr_arena_alloc(arena, bytes);
    memset(p, 0, bytes);
    return p;
}

void tsr_arena_reset(tsr_arena *arena)
{
    if (arena->overflow) {
        /* Warm-up outgrew the block: one block with headroom for the peak. */
        free_overflow(arena);
        tsr_free(arena->base);
        arena->capacity = align_up(arena->high_water + arena->high_water / 4);
        arena->base = tsr_aligned_alloc(TSR_ARENA_ALIGNMENT, arena->capacity);
        arena->system_allocations++;
    }
    arena->used = 0;
}

size_t tsr_arena_high_water(const tsr_arena *arena) { return arena->high_water; }

uint64_t tsr_arena_system_allocations(const tsr_arena *arena) { return arena->system_allocations; }

tsr_tensor *tsr_arena_tensor(tsr_arena *arena, tsr_dtype dtype, int ndim, const int64_t *shape)
{
    tsr_tensor *t = tsr_arena_alloc(arena, sizeof *t);
    *t = tsr_tensor_view(NULL, dtype, ndim, shape);
    t->data = tsr_arena_alloc(arena, tsr_tensor_nbytes(t));
    return t;
}
