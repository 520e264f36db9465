#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "support/allclose.h"
#include "tessera/tensor.h"

Test(tensor, view_has_row_major_strides)
{
    float data[2 * 3 * 4];
    tsr_tensor t = tsr_tensor_view(data, TSR_DTYPE_F32, 3, TSR_SHAPE(2, 3, 4));
    cr_expect_eq(t.stride[0], 12);
    cr_expect_eq(t.stride[1], 4);
    cr_expect_eq(t.stride[2], 1);
    cr_expect_eq(tsr_tensor_numel(&t), 24);
    cr_expect_eq(tsr_tensor_nbytes(&t), 96);
    cr_expect(tsr_tensor_is_contiguous(&t));
}

Test(tensor, new_is_zeroed_aligned_and_freed_once)
{
    tsr_tensor *t = tsr_tensor_new(TSR_DTYPE_I32, 2, TSR_SHAPE(5, 7));
    cr_assert(t->owns_data);
    cr_expect_eq((uintptr_t)t->data % 64, 0);
    for (int i = 0; i < 35; i++) cr_expect_eq(tsr_i32(t)[i], 0);
    tsr_tensor_free(t);
}

Test(tensor, slice_and_permute_are_strided_views)
{
    double data[2 * 3 * 4];
    for (int i = 0; i < 24; i++) data[i] = i;
    tsr_tensor t = tsr_tensor_view(data, TSR_DTYPE_F64, 3, TSR_SHAPE(2, 3, 4));
    tsr_tensor s = tsr_tensor_slice(&t, 2, 1, 2); /* (2, 3, 2) */
    cr_expect_not(tsr_tensor_is_contiguous(&s));
    cr_expect_eq(tsr_tensor_get(&s, TSR_SHAPE(1, 2, 1)), 1 * 12 + 2 * 4 + 2);
    tsr_tensor p = tsr_tensor_permute(&t, (const int[]){2, 0, 1}); /* (4, 2, 3) */
    cr_expect_eq(p.shape[0], 4);
    cr_expect_eq(tsr_tensor_get(&p, TSR_SHAPE(3, 1, 2)), 1 * 12 + 2 * 4 + 3);
    double out[24];
    tsr_tensor c = tsr_tensor_view(out, TSR_DTYPE_F64, 3, TSR_SHAPE(4, 2, 3));
    tsr_tensor_copy(&c, &p);
    cr_expect_eq(out[1 * 6 + 0 * 3 + 2], data[0 * 12 + 2 * 4 + 1]);
}

Test(tensor, reshape_infers_one_dimension)
{
    float data[24];
    tsr_tensor t = tsr_tensor_view(data, TSR_DTYPE_F32, 3, TSR_SHAPE(2, 3, 4));
    tsr_tensor r = tsr_tensor_reshape(&t, 2, TSR_SHAPE(-1, 4));
    cr_expect_eq(r.shape[0], 6);
    cr_expect_eq(r.data, t.data);
}

Test(tensor, reshape_of_wrong_size_aborts, .signal = SIGABRT)
{
    float data[24];
    tsr_tensor t = tsr_tensor_view(data, TSR_DTYPE_F32, 3, TSR_SHAPE(2, 3, 4));
    tsr_tensor_reshape(&t, 2, TSR_SHAPE(5, 5));
}

Test(tensor, shape_string_names_every_dimension)
{
    float data[1];
    tsr_tensor t = tsr_tensor_view(data, TSR_DTYPE_F32, 4, TSR_SHAPE(32, 84, 84, 4));
    char buf[64];
    cr_expect_str_eq(tsr_tensor_shape_str(&t, buf, sizeof buf), "(32, 84, 84, 4)");
}

Test(tensor, copy_converts_dtypes)
{
    uint8_t src[4] = {0, 1, 128, 255};
    float dst[4];
    tsr_tensor s = tsr_tensor_view(src, TSR_DTYPE_U8, 1, TSR_SHAPE(4));
    tsr_tensor d = tsr_tensor_view(dst, TSR_DTYPE_F32, 1, TSR_SHAPE(4));
    tsr_tensor_copy(&d, &s);
    float expected[4] = {0, 1, 128, 255};
    tsr_test_allclose_f32(dst, expected, 4, 0, 0, "u8 -> f32 copy");
}
