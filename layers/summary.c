/* summary.c — per-layer rows collected during a forward pass, and initialisers. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tessera/layers.h"
#include "tessera/status.h"

void tsr_summary_fini(tsr_summary *s)
{
    tsr_free(s->rows);
    memset(s, 0, sizeof *s);
}

void tsr_ctx_set_summary(tsr_ctx *ctx, tsr_summary *summary) { ctx->summary = summary; }

void tsr_summary_record(tsr_ctx *ctx, const char *name, const tsr_tensor *output, int64_t params,
                        double flops)
{
    tsr_summary *s = ctx->summary;
    if (!s) return;
    if (s->count == s->capacity) {
        s->capacity = s->capacity ? 2 * s->capacity : 32;
        s->rows = tsr_realloc(s->rows, (size_t)s->capacity * sizeof *s->rows);
    }
    tsr_summary_row *row = &s->rows[s->count++];
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", name);
    row->ndim = output->ndim;
    memcpy(row->shape, output->shape, sizeof row->shape);
    row->params = params;
    row->flops = flops;
}

void tsr_init_apply(tsr_tensor *w, tsr_init_spec spec, int64_t fan_in, int64_t fan_out, tsr_rng *rng)
{
    if (spec.kind == TSR_INIT_ZEROS) {
        tsr_init_zeros(w);
        return;
    }
    int64_t fi = fan_in, fo = fan_out;
    if (fi <= 0 || fo <= 0) tsr_init_fans(w, &fi, &fo);
    switch (spec.kind) {
    case TSR_INIT_XAVIER_UNIFORM: tsr_init_xavier_uniform(w, fi, fo, rng); break;
    case TSR_INIT_LECUN_NORMAL: tsr_init_lecun_normal(w, fi, rng); break;
    case TSR_INIT_VARIANCE_SCALING_UNIFORM:
        tsr_init_variance_scaling_uniform(w, spec.scale, fi, rng);
        break;
    case TSR_INIT_TORCH: tsr_init_variance_scaling_uniform(w, 1.0 / 3.0, fi, rng); break;
    case TSR_INIT_ZEROS: break;
    }
}

void tsr_init_bias(tsr_tensor *b, tsr_init_spec spec, const tsr_tensor *w, tsr_rng *rng)
{
    if (spec.kind != TSR_INIT_TORCH) {
        tsr_init_zeros(b);
        return;
    }
    int64_t fan_in, fan_out;
    tsr_init_fans(w, &fan_in, &fan_out);
    tsr_init_variance_scaling_uniform(b, 1.0 / 3.0, fan_in, rng);
}
