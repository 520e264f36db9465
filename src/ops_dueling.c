/* ops_dueling.c — the dueling combination on the tape.
 *
 * oneDNN has no primitive for it and the tensors are tiny (N x A x K, at
 * most 32 x 18 x 51 = 29k elements), so both dtypes run dueling_ref.c. One
 * fused op instead of mean + broadcast-sub + broadcast-add: the broadcasts
 * run along the action axis, which tsr_add/tsr_sub do not broadcast over. */
#include "internal.h"
#include "kernels/encoder_kernels.h"
#include "tessera/ops_encoders.h"
#include "tessera/status.h"

typedef struct dueling_saved {
    tsr_tensor *value, *advantage, *q;
} dueling_saved;

static void dueling_backward(tsr_ctx *ctx, void *saved)
{
    dueling_saved *s = saved;
    bool acc_v = false, acc_a = false;
    tsr_tensor *dv = tsr_grad_acquire(ctx, s->value, TSR_GRAD_WRITE_ALL, &acc_v);
    tsr_tensor *da = tsr_grad_acquire(ctx, s->advantage, TSR_GRAD_WRITE_ALL, &acc_a);
    if (!dv && !da) return;
    tsr_tensor *dq = tsr_grad_get(ctx, s->q);
    int64_t n = s->q->shape[0], a = s->q->shape[1], k = s->q->shape[2];
    if (s->q->dtype == TSR_DTYPE_F64)
        tsr_ref_dueling_bwd_f64(tsr_f64(dq), dv ? tsr_f64(dv) : NULL, da ? tsr_f64(da) : NULL, n, a,
                                k, acc_v, acc_a);
    else
        tsr_ref_dueling_bwd_f32(tsr_f32(dq), dv ? tsr_f32(dv) : NULL, da ? tsr_f32(da) : NULL, n, a,
                                k, acc_v, acc_a);
}

tsr_tensor *tsr_dueling_combine(tsr_ctx *ctx, tsr_tensor *value, tsr_tensor *advantage)
{
    char sv[96], sa[96];
    TSR_ASSERT_MSG(value->ndim == 2 && advantage->ndim == 3 &&
                       value->shape[0] == advantage->shape[0] &&
                       value->shape[1] == advantage->shape[2],
                   "dueling of value %s and advantage %s: expected (N, K) and (N, A, K)",
                   tsr_tensor_shape_str(value, sv, sizeof sv),
                   tsr_tensor_shape_str(advantage, sa, sizeof sa));
    TSR_ASSERT_MSG(value->dtype == advantage->dtype &&
                       (value->dtype == TSR_DTYPE_F32 || value->dtype == TSR_DTYPE_F64),
                   "dueling of %s and %s", tsr_dtype_name(value->dtype),
                   tsr_dtype_name(advantage->dtype));
    TSR_ASSERT(tsr_tensor_is_contiguous(value) && tsr_tensor_is_contiguous(advantage));
    TSR_ASSERT_MSG(advantage->shape[1] > 0, "dueling over zero actions");
    int64_t n = advantage->shape[0], a = advantage->shape[1], k = advantage->shape[2];
    tsr_tensor *q = tsr_ctx_tensor(ctx, value->dtype, 3, advantage->shape);
    if (value->dtype == TSR_DTYPE_F64)
        tsr_ref_dueling_fwd_f64(tsr_f64(value), tsr_f64(advantage), tsr_f64(q), n, a, k);
    else
        tsr_ref_dueling_fwd_f32(tsr_f32(value), tsr_f32(advantage), tsr_f32(q), n, a, k);
    tsr_tensor *inputs[2] = {value, advantage};
    if (tsr_ctx_should_record(ctx, 2, inputs)) {
        dueling_saved *s = tsr_tape_push(ctx, q, dueling_backward, sizeof *s);
        *s = (dueling_saved){.value = value, .advantage = advantage, .q = q};
    }
    return q;
}
