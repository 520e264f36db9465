#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "tessera/arena.h"

Test(arena, allocations_are_aligned_and_disjoint)
{
    tsr_arena a;
    tsr_arena_init(&a, 4096);
    char *p = tsr_arena_alloc(&a, 1);
    char *q = tsr_arena_alloc(&a, 100);
    cr_expect_eq((uintptr_t)p % TSR_ARENA_ALIGNMENT, 0);
    cr_expect_eq((uintptr_t)q % TSR_ARENA_ALIGNMENT, 0);
    cr_expect_geq(q - p, 1);
    memset(q, 7, 100);
    tsr_arena_fini(&a);
}

Test(arena, overflow_during_warm_up_is_folded_into_one_block)
{
    tsr_arena a;
    tsr_arena_init(&a, 1024);
    for (int i = 0; i < 10; i++) memset(tsr_arena_alloc(&a, 1000), i, 1000);
    cr_expect_gt(tsr_arena_system_allocations(&a), 1);
    tsr_arena_reset(&a);
    uint64_t after_warm_up = tsr_arena_system_allocations(&a);
    cr_expect_geq(a.capacity, tsr_arena_high_water(&a));
    for (int step = 0; step < 50; step++) {
        for (int i = 0; i < 10; i++) tsr_arena_alloc(&a, 1000);
        tsr_arena_reset(&a);
    }
    cr_expect_eq(tsr_arena_system_allocations(&a), after_warm_up,
                 "steps after warm-up allocated from the system");
    tsr_arena_fini(&a);
}

Test(arena, high_water_mark_stops_growing_over_repeated_steps)
{
    tsr_arena a;
    tsr_arena_init(&a, 256);
    size_t marks[20];
    for (int step = 0; step < 20; step++) {
        /* The same sequence of requests every step, as a training step makes. */
        for (int i = 1; i <= 8; i++) tsr_arena_alloc(&a, (size_t)i * 333);
        marks[step] = tsr_arena_high_water(&a);
        tsr_arena_reset(&a);
    }
    for (int step = 2; step < 20; step++) cr_expect_eq(marks[step], marks[1]);
    tsr_arena_fini(&a);
}

Test(arena, tensors_have_their_shape_and_storage)
{
    tsr_arena a;
    tsr_arena_init(&a, 1 << 16);
    tsr_tensor *t = tsr_arena_tensor(&a, TSR_DTYPE_F32, 4, TSR_SHAPE(2, 10, 10, 4));
    cr_expect_eq(tsr_tensor_numel(t), 800);
    cr_expect_eq((uintptr_t)t->data % TSR_ARENA_ALIGNMENT, 0);
    memset(t->data, 0, tsr_tensor_nbytes(t));
    tsr_arena_fini(&a);
}
