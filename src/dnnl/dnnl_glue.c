/* dnnl_glue.c — engine, stream and the primitive cache. */
#include "dnnl/dnnl_glue.h"

#include <string.h>

#include "tessera/status.h"

void tsr_dnnl_init(tsr_dnnl *d)
{
    memset(d, 0, sizeof *d);
    TSR_DNNL_CHECK(dnnl_engine_create(&d->engine, dnnl_cpu, 0));
    TSR_DNNL_CHECK(dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags));
    d->capacity = 64;
    d->table = tsr_calloc(d->capacity, sizeof *d->table);
}

static void destroy_slot(tsr_dnnl_slot *s)
{
    for (int i = 0; i < s->nargs; i++) dnnl_memory_destroy(s->mem[i]);
    if (s->scratchpad) dnnl_memory_destroy(s->scratchpad);
    dnnl_primitive_destroy(s->primitive);
    tsr_free(s);
}

void tsr_dnnl_fini(tsr_dnnl *d)
{
    for (size_t i = 0; i < d->capacity; i++)
        if (d->table[i]) destroy_slot(d->table[i]);
    tsr_free(d->table);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
    memset(d, 0, sizeof *d);
}

const char *tsr_dnnl_status_name(dnnl_status_t status)
{
    switch (status) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out_of_memory";
    case dnnl_invalid_arguments: return "invalid_arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator_ends";
    case dnnl_runtime_error: return "runtime_error";
    case dnnl_not_required: return "not_required";
    }
    return "unknown";
}

static uint64_t fnv1a(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

tsr_dnnl_slot *tsr_dnnl_find(tsr_dnnl *d, const void *key, size_t key_bytes)
{
    TSR_ASSERT(key_bytes <= TSR_DNNL_KEY_BYTES);
    uint64_t h = fnv1a(key, key_bytes);
    for (size_t i = h & (d->capacity - 1);; i = (i + 1) & (d->capacity - 1)) {
        tsr_dnnl_slot *s = d->table[i];
        if (!s) return NULL;
        if (s->hash == h && s->key_bytes == key_bytes && !memcmp(s->key, key, key_bytes)) return s;
    }
}

static void place(tsr_dnnl_slot **table, size_t capacity, tsr_dnnl_slot *s)
{
    size_t i = s->hash & (capacity - 1);
    while (table[i]) i = (i + 1) & (capacity - 1);
    table[i] = s;
}

tsr_dnnl_slot *tsr_dnnl_insert(tsr_dnnl *d, const void *key, size_t key_bytes,
                               dnnl_primitive_desc_t pd, int nargs, const int *args)
{
    TSR_ASSERT(key_bytes <= TSR_DNNL_KEY_BYTES && nargs <= TSR_DNNL_MAX_ARGS);
    if (2 * (d->count + 1) > d->capacity) { /* keep the load under one half */
        size_t capacity = d->capacity * 2;
        tsr_dnnl_slot **table = tsr_calloc(capacity, sizeof *table);
        for (size_t i = 0; i < d->capacity; i++)
            if (d->table[i]) place(table, capacity, d->table[i]);
        tsr_free(d->table);
        d->table = table;
        d->capacity = capacity;
    }
    tsr_dnnl_slot *s = tsr_calloc(1, sizeof *s);
    s->hash = fnv1a(key, key_bytes);
    s->key_bytes = key_bytes;
    memcpy(s->key, key, key_bytes);
    TSR_DNNL_CHECK(dnnl_primitive_create(&s->primitive, pd));
    TSR_DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
    TSR_DNNL_CHECK(dnnl_primitive_get_primitive_desc(s->primitive, &s->pd));
    s->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        s->arg[i] = args[i];
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(s->pd, dnnl_query_exec_arg_md, args[i]);
        TSR_ASSERT_MSG(md, "primitive has no argument %d", args[i]);
        TSR_DNNL_CHECK(dnnl_memory_create(&s->mem[i], md, d->engine, DNNL_MEMORY_NONE));
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(s->pd, dnnl_query_scratchpad_md, 0);
    s->scratchpad_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (s->scratchpad_bytes)
        TSR_DNNL_CHECK(dnnl_memory_create(&s->scratchpad, smd, d->engine, DNNL_MEMORY_NONE));
    place(d->table, d->capacity, s);
    d->count++;
    return s;
}

void tsr_dnnl_execute(tsr_dnnl *d, tsr_dnnl_slot *slot, tsr_arena *arena, void *const *handles)
{
    dnnl_exec_arg_t args[TSR_DNNL_MAX_ARGS + 1];
    int n = 0;
    for (int i = 0; i < slot->nargs; i++) {
        TSR_DNNL_CHECK(dnnl_memory_set_data_handle(slot->mem[i], handles[i]));
        args[n++] = (dnnl_exec_arg_t){slot->arg[i], slot->mem[i]};
    }
    if (slot->scratchpad) {
        TSR_DNNL_CHECK(dnnl_memory_set_data_handle(slot->scratchpad,
                                                   tsr_arena_alloc(arena, slot->scratchpad_bytes)));
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, slot->scratchpad};
    }
    TSR_DNNL_CHECK(dnnl_primitive_execute(slot->primitive, d->stream, n, args));
    TSR_DNNL_CHECK(dnnl_stream_wait(d->stream));
    if (d->trace) d->trace(d->trace_user, slot, handles);
}

const dnnl_memory_desc_t *tsr_dnnl_slot_md(const tsr_dnnl_slot *slot, int arg)
{
    return dnnl_primitive_desc_query_md(slot->pd, dnnl_query_exec_arg_md, arg);
}

dnnl_memory_desc_t tsr_dnnl_md(int ndim, const int64_t *dims, dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t d;
    for (int i = 0; i < ndim; i++) d[i] = dims[i];
    TSR_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&md, ndim, d, dnnl_f32, tag));
    return md;
}

dnnl_memory_desc_t tsr_dnnl_md_any(int ndim, const int64_t *dims)
{
    return tsr_dnnl_md(ndim, dims, dnnl_format_tag_any);
}

dnnl_primitive_attr_t tsr_dnnl_attr(void)
{
    dnnl_primitive_attr_t attr;
    TSR_DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    TSR_DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    return attr;
}

/* ==== reorders and cached weight layouts ================================ */

uint64_t tsr_dnnl_md_hash(const dnnl_memory_desc_t *md)
{
    uint64_t h = 0xcbf29ce484222325ull;
#define MIX(value) (h = (h ^ (uint64_t)(value)) * 0x100000001b3ull)
    MIX(md->ndims);
    MIX(md->data_type);
    MIX(md->format_kind);
    MIX(md->offset0);
    for (int i = 0; i < md->ndims; i++) {
        MIX(md->dims[i]);
        MIX(md->padded_dims[i]);
        MIX(md->padded_offsets[i]);
    }
    if (md->format_kind == dnnl_blocked) {
        const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
        for (int i = 0; i < md->ndims; i++) MIX(b->strides[i]);
        MIX(b->inner_nblks);
        for (int i = 0; i < b->inner_nblks; i++) {
            MIX(b->inner_blks[i]);
            MIX(b->inner_idxs[i]);
        }
    }
    MIX(md->extra.flags);
#undef MIX
    return h;
}

typedef struct reorder_key {
    uint32_t family; /* "REOR" */
    int32_t sum;
    uint64_t from_hash, to_hash;
} reorder_key;

void tsr_dnnl_reorder(tsr_dnnl *d, tsr_arena *arena, const dnnl_memory_desc_t *from_md,
                      const dnnl_memory_desc_t *to_md, const void *from, void *to, bool sum)
{
    reorder_key key;
    memset(&key, 0, sizeof key);
    key.family = 0x524f4552u;
    key.sum = sum;
    key.from_hash = tsr_dnnl_md_hash(from_md);
    key.to_hash = tsr_dnnl_md_hash(to_md);
    tsr_dnnl_slot *slot = tsr_dnnl_find(d, &key, sizeof key);
    if (!slot) {
        dnnl_primitive_attr_t attr = tsr_dnnl_attr();
        if (sum) {
            dnnl_post_ops_t ops;
            TSR_DNNL_CHECK(dnnl_post_ops_create(&ops));
            TSR_DNNL_CHECK(dnnl_post_ops_append_sum(ops, 1.f));
            TSR_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
            dnnl_post_ops_destroy(ops);
        }
        dnnl_primitive_desc_t pd;
        TSR_DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, from_md, d->engine, to_md, d->engine, attr));
        dnnl_primitive_attr_destroy(attr);
        slot = tsr_dnnl_insert(d, &key, sizeof key, pd, 2, (int[]){DNNL_ARG_FROM, DNNL_ARG_TO});
    }
    TSR_ASSERT_MSG(dnnl_memory_desc_equal(tsr_dnnl_slot_md(slot, DNNL_ARG_FROM), from_md) &&
                       dnnl_memory_desc_equal(tsr_dnnl_slot_md(slot, DNNL_ARG_TO), to_md),
                   "reorder cache key collision");
    tsr_dnnl_execute(d, slot, arena, (void *[]){(void *)from, to});
}

void tsr_weight_cache_fini(tsr_weight_cache *cache)
{
    if (!cache) return;
    tsr_free(cache->data);
    memset(cache, 0, sizeof *cache);
}

bool tsr_weight_cache_version_used(const tsr_weight_cache *cache, const tsr_tensor *w)
{
    return tsr_weight_cache_is_current(cache, w) ||
           (cache->seen_source == w->data && cache->seen_version == w->version);
}

void tsr_weight_cache_mark_version_used(tsr_weight_cache *cache, const tsr_tensor *w)
{
    cache->seen_source = w->data;
    cache->seen_version = w->version;
}

bool tsr_weight_cache_is_current(const tsr_weight_cache *cache, const tsr_tensor *w)
{
    return cache && cache->data && cache->source == w->data && cache->version == w->version;
}

void *tsr_dnnl_weights_in_layout(tsr_dnnl *d, tsr_arena *arena, const tsr_tensor *w,
                                 const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                                 tsr_weight_cache *cache, bool refresh)
{
    if (dnnl_memory_desc_equal(plain, want)) return w->data;
    uint64_t hash = tsr_dnnl_md_hash(want);
    if (tsr_weight_cache_is_current(cache, w) && cache->layout_hash == hash) return cache->data;
    size_t bytes = dnnl_memory_desc_get_size(want);
    void *dst;
    if (cache && refresh) {
        if (cache->bytes < bytes) {
            /* Layer-owned and sized once per layout: not a per-step allocation. */
            tsr_free(cache->data);
            cache->data = tsr_aligned_alloc(TSR_ARENA_ALIGNMENT, bytes);
            cache->bytes = bytes;
        }
        cache->source = w->data;
        cache->version = w->version;
        cache->layout_hash = hash;
        dst = cache->data;
    } else {
        dst = tsr_arena_alloc(arena, bytes);
    }
    tsr_dnnl_reorder(d, arena, plain, want, w->data, dst, false);
    return dst;
}
