/* checkpoint.c — the HDF5 side of checkpoints (checkpoint.h): the visitor's
 * reads and writes, atomic files, run directories, parameter loading and
 * `tessera inspect`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/checkpoint.h"

#ifndef TESSERA_VERSION
#error "TESSERA_VERSION is set by meson.build"
#endif

enum { PATH_BYTES = 4096 };

struct tsr_ckpt {
    hid_t file;
    hid_t lcpl;       /* link creation: intermediate groups */
    bool writing;
    bool check_only;  /* reading: check types and shapes, copy nothing */
    tsr_status status;
    tsr_error *err;
    char path[PATH_BYTES];     /* the checkpoint's name */
    char tmp_path[PATH_BYTES]; /* writing: where the data goes until close */
    H5E_auto2_t saved_handler; /* HDF5's own error printing, off while open */
    void *saved_data;
};

/* ==== errors ================================================================ */

void tsr_ckpt_fail(tsr_ckpt *c, tsr_status status, const char *fmt, ...)
{
    if (c->status != TSR_STATUS_OK) return;
    char message[TSR_ERROR_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    c->status = tsr_error_set(c->err, status, "checkpoint %s: %s", c->path, message);
}

bool tsr_ckpt_writing(const tsr_ckpt *c) { return c->writing; }
tsr_status tsr_ckpt_status(const tsr_ckpt *c) { return c->status; }

/* HDF5 prints its error stack by default; tessera reports its own messages. */
static void quiet_hdf5(H5E_auto2_t *handler, void **data)
{
    H5Eget_auto2(H5E_DEFAULT, handler, data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void restore_hdf5(H5E_auto2_t handler, void *data) { H5Eset_auto2(H5E_DEFAULT, handler, data); }

/* ==== types and shapes ========================================================= */

static hid_t memory_type(tsr_ckpt_type type)
{
    switch (type) {
    case TSR_CKPT_F32: return H5T_NATIVE_FLOAT;
    case TSR_CKPT_F64: return H5T_NATIVE_DOUBLE;
    case TSR_CKPT_U8: return H5T_NATIVE_UINT8;
    case TSR_CKPT_I32: return H5T_NATIVE_INT32;
    case TSR_CKPT_I64: return H5T_NATIVE_INT64;
    case TSR_CKPT_U64: return H5T_NATIVE_UINT64;
    }
    TSR_ASSERT_MSG(false, "checkpoint type %d", (int)type);
    return -1;
}

/* Little-endian file types, whatever the machine: files move between hosts. */
static hid_t file_type(tsr_ckpt_type type)
{
    switch (type) {
    case TSR_CKPT_F32: return H5T_IEEE_F32LE;
    case TSR_CKPT_F64: return H5T_IEEE_F64LE;
    case TSR_CKPT_U8: return H5T_STD_U8LE;
    case TSR_CKPT_I32: return H5T_STD_I32LE;
    case TSR_CKPT_I64: return H5T_STD_I64LE;
    case TSR_CKPT_U64: return H5T_STD_U64LE;
    }
    TSR_ASSERT_MSG(false, "checkpoint type %d", (int)type);
    return -1;
}

static const char *type_name(tsr_ckpt_type type)
{
    static const char *const names[] = {"float32", "float64", "uint8", "int32", "int64", "uint64"};
    return names[type];
}

static size_t type_size(tsr_ckpt_type type)
{
    static const size_t sizes[] = {4, 8, 1, 4, 8, 8};
    return sizes[type];
}

/* The class, size and signedness of a file type, as a tsr_ckpt_type, or -1. */
static int classify(hid_t type)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT) return size == 4 ? TSR_CKPT_F32 : size == 8 ? TSR_CKPT_F64 : -1;
    if (cls != H5T_INTEGER) return -1;
    bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    if (size == 1 && !is_signed) return TSR_CKPT_U8;
    if (size == 4 && is_signed) return TSR_CKPT_I32;
    if (size == 8) return is_signed ? TSR_CKPT_I64 : TSR_CKPT_U64;
    return -1;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    int n = snprintf(buf, size, "(");
    for (int i = 0; i < ndim && n < (int)size; i++)
        n += snprintf(buf + n, size - (size_t)n, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (n < (int)size) snprintf(buf + n, size - (size_t)n, ndim == 1 ? ",)" : ")");
    if (ndim == 0) snprintf(buf, size, "()");
}

/* Whether every component of `path` exists (H5Lexists needs the parents). */
static bool path_exists(hid_t file, const char *path)
{
    char prefix[PATH_BYTES];
    size_t len = strlen(path);
    if (len >= sizeof prefix) return false;
    for (size_t i = 0; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        if (i == 0) continue;
        memcpy(prefix, path, i);
        prefix[i] = '\0';
        if (H5Lexists(file, prefix, H5P_DEFAULT) <= 0) return false;
    }
    return true;
}

bool tsr_ckpt_has(tsr_ckpt *c, const char *path)
{
    return !c->writing && c->status == TSR_STATUS_OK && path_exists(c->file, path);
}

/* ==== datasets ================================================================= */

static void write_dataset(tsr_ckpt *c, const char *path, tsr_ckpt_type type, int ndim,
                          const int64_t *shape, const void *data, unsigned flags)
{
    hsize_t dims[TSR_MAX_DIMS], chunk[TSR_MAX_DIMS];
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = (hsize_t)shape[i];
        numel *= dims[i];
    }
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if ((flags & TSR_CKPT_COMPRESS) && ndim > 0 && numel > 0) {
        /* Chunks of about 1 MiB along the first axis. */
        size_t row = type_size(type);
        for (int i = 1; i < ndim; i++) row *= (size_t)dims[i];
        hsize_t rows = (hsize_t)((1u << 20) / (row ? row : 1));
        chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
        for (int i = 1; i < ndim; i++) chunk[i] = dims[i];
        H5Pset_chunk(dcpl, ndim, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 1);
    }
    hid_t ds = H5Dcreate2(c->file, path, file_type(type), space, c->lcpl, dcpl, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1
                       : numel == 0 ? 0
                                    : H5Dwrite(ds, memory_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                               data);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds < 0 || st < 0)
        tsr_ckpt_fail(c, TSR_STATUS_BACKEND, "HDF5 could not write %s (disk full?)", path);
}

static void read_dataset(tsr_ckpt *c, const char *path, tsr_ckpt_type type, int ndim,
                         const int64_t *shape, void *data)
{
    char want[128], have[128];
    format_shape(want, sizeof want, ndim, shape);
    if (!path_exists(c->file, path)) {
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "no %s %s in the file (expected %s %s)", path,
                      ndim ? "tensor" : "value", type_name(type), want);
        return;
    }
    hid_t ds = H5Dopen2(c->file, path, H5P_DEFAULT);
    if (ds < 0) {
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s is not a dataset", path);
        return;
    }
    hid_t ftype = H5Dget_type(ds);
    hid_t space = H5Dget_space(ds);
    int file_ndim = H5Sget_simple_extent_ndims(space);
    hsize_t dims[TSR_MAX_DIMS];
    int64_t file_shape[TSR_MAX_DIMS];
    bool shape_ok = file_ndim == ndim;
    if (file_ndim >= 0 && file_ndim <= TSR_MAX_DIMS) {
        H5Sget_simple_extent_dims(space, dims, NULL);
        for (int i = 0; i < file_ndim; i++) {
            file_shape[i] = (int64_t)dims[i];
            if (i < ndim && file_shape[i] != shape[i]) shape_ok = false;
        }
        format_shape(have, sizeof have, file_ndim, file_shape);
    } else {
        shape_ok = false;
        snprintf(have, sizeof have, "(%d dimensions)", file_ndim);
    }
    int file_class = classify(ftype);
    if (!shape_ok) {
        /* The run's config and the file disagree, rather than the file being
         * damaged: INVALID_ARGUMENT, so nobody falls back to older files of
         * the same run, which disagree the same way. */
        tsr_ckpt_fail(c, TSR_STATUS_INVALID_ARGUMENT,
                      "tensor %s has shape %s in the file but %s here (a checkpoint of a "
                      "different network or config?)",
                      path, have, want);
    } else if (file_class != (int)type) {
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "%s holds %s values; expected %s", path,
                      file_class < 0 ? "unsupported" : type_name((tsr_ckpt_type)file_class),
                      type_name(type));
    } else if (!c->check_only) {
        int64_t numel = 1;
        for (int i = 0; i < ndim; i++) numel *= shape[i];
        if (numel > 0 &&
            H5Dread(ds, memory_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
            tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "cannot read %s (the file is truncated or corrupt)",
                          path);
    }
    H5Sclose(space);
    H5Tclose(ftype);
    H5Dclose(ds);
}

void tsr_ckpt_array(tsr_ckpt *c, const char *path, tsr_ckpt_type type, int ndim,
                    const int64_t *shape, void *data, unsigned flags)
{
    TSR_ASSERT_MSG(ndim >= 0 && ndim <= TSR_MAX_DIMS, "checkpoint array %s of %d dims", path, ndim);
    if (c->status != TSR_STATUS_OK) return;
    if (c->writing) write_dataset(c, path, type, ndim, shape, data, flags);
    else read_dataset(c, path, type, ndim, shape, data);
}

void tsr_ckpt_i64(tsr_ckpt *c, const char *path, int64_t *value)
{
    tsr_ckpt_array(c, path, TSR_CKPT_I64, 0, NULL, value, 0);
}

void tsr_ckpt_f64(tsr_ckpt *c, const char *path, double *value)
{
    tsr_ckpt_array(c, path, TSR_CKPT_F64, 0, NULL, value, 0);
}

void tsr_ckpt_bool(tsr_ckpt *c, const char *path, bool *value)
{
    uint8_t byte = *value ? 1 : 0;
    tsr_ckpt_array(c, path, TSR_CKPT_U8, 0, NULL, &byte, 0);
    if (!c->writing && !c->check_only && c->status == TSR_STATUS_OK) *value = byte != 0;
}

static tsr_ckpt_type tensor_type(const tsr_tensor *t)
{
    switch (t->dtype) {
    case TSR_DTYPE_F32: return TSR_CKPT_F32;
    case TSR_DTYPE_F64: return TSR_CKPT_F64;
    case TSR_DTYPE_U8: return TSR_CKPT_U8;
    case TSR_DTYPE_I32: return TSR_CKPT_I32;
    }
    TSR_ASSERT_MSG(false, "tensor dtype %d", (int)t->dtype);
    return TSR_CKPT_F32;
}

void tsr_ckpt_tensor(tsr_ckpt *c, const char *path, tsr_tensor *t)
{
    TSR_ASSERT_MSG(tsr_tensor_is_contiguous(t), "checkpoint tensor %s is not contiguous", path);
    tsr_ckpt_array(c, path, tensor_type(t), t->ndim, t->shape, t->data, 0);
}

void tsr_ckpt_rng(tsr_ckpt *c, const char *path, tsr_rng *rng)
{
    char item[PATH_BYTES];
    tsr_rng copy = *rng;
    snprintf(item, sizeof item, "%s/state", path);
    tsr_ckpt_array(c, item, TSR_CKPT_U64, 1, TSR_SHAPE(4), copy.s, 0);
    snprintf(item, sizeof item, "%s/spare_normal", path);
    tsr_ckpt_f64(c, item, &copy.spare_normal);
    snprintf(item, sizeof item, "%s/has_spare_normal", path);
    tsr_ckpt_bool(c, item, &copy.has_spare_normal);
    if (!c->writing && !c->check_only && c->status == TSR_STATUS_OK) *rng = copy;
}

/* ---- parameter groups ---------------------------------------------------------- */

typedef struct count_state {
    int64_t datasets;
    char first_extra[PATH_BYTES];
    const tsr_params *params;
} count_state;

static herr_t count_dataset(hid_t group, const char *name, const H5L_info_t *info, void *user)
{
    (void)info;
    count_state *s = user;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return 0;
    if (H5Iget_type(obj) == H5I_DATASET) {
        s->datasets++;
        if (!s->first_extra[0] && tsr_params_find(s->params, name) < 0)
            snprintf(s->first_extra, sizeof s->first_extra, "%s", name);
    }
    H5Oclose(obj);
    return 0;
}

void tsr_ckpt_params(tsr_ckpt *c, const char *group, tsr_params *params)
{
    TSR_ASSERT_MSG(params->dtype == TSR_DTYPE_F32 && params->finalized,
                   "checkpoints hold finalized float32 parameter blocks");
    char path[PATH_BYTES];
    for (int i = 0; i < params->count && c->status == TSR_STATUS_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", group, params->items[i].name);
        tsr_ckpt_tensor(c, path, &params->items[i].value);
    }
    if (c->writing || c->status != TSR_STATUS_OK) return;
    /* Every tensor of the network was found; the file must hold no others. */
    count_state s = {.params = params};
    hid_t g = H5Gopen2(c->file, group, H5P_DEFAULT);
    if (g >= 0) {
        H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, count_dataset, &s);
        H5Gclose(g);
    }
    if (s.datasets != params->count)
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT,
                      "%s holds %" PRId64 " tensors (e.g. %s/%s) but this network has %d: a "
                      "checkpoint of a different network",
                      group, s.datasets, group, s.first_extra[0] ? s.first_extra : "?",
                      params->count);
    else if (!c->check_only)
        tsr_params_bump_version(params);
}

/* ---- text ------------------------------------------------------------------------ */

static hid_t string_type(size_t bytes)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, bytes ? bytes : 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}

static void write_text(tsr_ckpt *c, const char *path, const char *text)
{
    size_t len = strlen(text);
    hid_t type = string_type(len);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(c->file, path, type, space, c->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, len ? text : "");
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(type);
    if (ds < 0 || st < 0) tsr_ckpt_fail(c, TSR_STATUS_BACKEND, "HDF5 could not write %s", path);
}

/* Reads a fixed-length string dataset or attribute into a new string. */
static char *read_text(hid_t obj, bool attribute)
{
    hid_t type = attribute ? H5Aget_type(obj) : H5Dget_type(obj);
    if (type < 0) return NULL;
    char *text = NULL;
    if (H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type)) {
        size_t size = H5Tget_size(type);
        hid_t mem = string_type(size);
        text = tsr_calloc(size + 1, 1);
        herr_t st = attribute ? H5Aread(obj, mem, text)
                              : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, text);
        H5Tclose(mem);
        if (st < 0) {
            tsr_free(text);
            text = NULL;
        }
    }
    H5Tclose(type);
    return text;
}

void tsr_ckpt_text(tsr_ckpt *c, const char *path, char **text)
{
    if (c->status != TSR_STATUS_OK) return;
    if (c->writing) {
        write_text(c, path, *text);
        return;
    }
    hid_t ds = path_exists(c->file, path) ? H5Dopen2(c->file, path, H5P_DEFAULT) : -1;
    char *read = ds >= 0 ? read_text(ds, false) : NULL;
    if (ds >= 0) H5Dclose(ds);
    if (!read) {
        tsr_ckpt_fail(c, TSR_STATUS_FORMAT, "no readable text %s in the file", path);
        return;
    }
    *text = read;
}

/* ---- root attributes ------------------------------------------------------------- */

static bool write_attr_text(hid_t loc, const char *name, const char *value)
{
    hid_t type = string_type(strlen(value));
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = attr >= 0 && H5Awrite(attr, type, value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    return ok;
}

static bool write_attr_i64(hid_t loc, const char *name, int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return ok;
}

static bool read_attr_i64(hid_t loc, const char *name, int64_t *value)
{
    if (H5Aexists(loc, name) <= 0) return false;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (attr < 0) return false;
    hid_t type = H5Aget_type(attr);
    bool ok = H5Tget_class(type) == H5T_INTEGER && H5Aread(attr, H5T_NATIVE_INT64, value) >= 0;
    H5Tclose(type);
    H5Aclose(attr);
    return ok;
}

/* A new string with the text attribute `name`, or NULL. */
static char *read_attr_text(hid_t loc, const char *name)
{
    if (H5Aexists(loc, name) <= 0) return NULL;
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (attr < 0) return NULL;
    char *text = read_text(attr, true);
    H5Aclose(attr);
    return text;
}

/* ==== opening and closing ========================================================= */

static tsr_ckpt *ckpt_alloc(const char *path, bool writing, tsr_error *err)
{
    tsr_ckpt *c = tsr_calloc(1, sizeof *c);
    c->file = -1;
    c->lcpl = -1;
    c->writing = writing;
    c->err = err;
    snprintf(c->path, sizeof c->path, "%s", path);
    quiet_hdf5(&c->saved_handler, &c->saved_data);
    return c;
}

static void ckpt_release(tsr_ckpt *c)
{
    if (c->lcpl >= 0) H5Pclose(c->lcpl);
    if (c->file >= 0) H5Fclose(c->file);
    restore_hdf5(c->saved_handler, c->saved_data);
    tsr_free(c);
}

tsr_status tsr_ckpt_create(tsr_ckpt **out, const char *path, tsr_error *err)
{
    *out = NULL;
    if (strlen(path) + 5 >= PATH_BYTES)
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT, "checkpoint path too long: %s", path);
    tsr_ckpt *c = ckpt_alloc(path, true, err);
    snprintf(c->tmp_path, sizeof c->tmp_path, "%s.tmp", path);
    errno = 0; /* HDF5 does not always set it: 0 afterwards means no system error */
    c->file = H5Fcreate(c->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (c->file < 0) {
        tsr_status st = tsr_error_set(err, TSR_STATUS_IO, "cannot create checkpoint file %s: %s",
                                      c->tmp_path,
                                      errno ? strerror(errno) : "HDF5 refused to create it");
        ckpt_release(c);
        return st;
    }
    c->lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(c->lcpl, 1);
    if (!write_attr_text(c->file, "format", TSR_CHECKPOINT_FORMAT_NAME) ||
        !write_attr_i64(c->file, "format_version", TSR_CHECKPOINT_FORMAT_VERSION) ||
        !write_attr_text(c->file, "tessera_version", TESSERA_VERSION))
        tsr_ckpt_fail(c, TSR_STATUS_BACKEND, "HDF5 could not write the root attributes");
    *out = c;
    return TSR_STATUS_OK;
}

/* Checks the root of an open file; returns the failure or OK. */
static tsr_status check_root(tsr_ckpt *c)
{
    char *format = read_attr_text(c->file, "format");
    bool ours = format && !strcmp(format, TSR_CHECKPOINT_FORMAT_NAME);
    tsr_free(format);
    if (!ours)
        return tsr_error_set(c->err, TSR_STATUS_FORMAT,
                             "%s is an HDF5 file but not a tessera checkpoint (no root attribute "
                             "format = \"%s\")",
                             c->path, TSR_CHECKPOINT_FORMAT_NAME);
    int64_t version = 0, complete = 0;
    if (!read_attr_i64(c->file, "format_version", &version))
        return tsr_error_set(c->err, TSR_STATUS_FORMAT, "%s has no format_version attribute",
                             c->path);
    if (version > TSR_CHECKPOINT_FORMAT_VERSION || version < 1)
        return tsr_error_set(c->err, TSR_STATUS_FORMAT,
                             "%s has checkpoint format version %" PRId64
                             "; this tessera (%s) reads version %d: use a newer tessera",
                             c->path, version, TESSERA_VERSION, TSR_CHECKPOINT_FORMAT_VERSION);
    if (!read_attr_i64(c->file, "complete", &complete) || complete != 1)
        return tsr_error_set(c->err, TSR_STATUS_FORMAT,
                             "%s is an incomplete checkpoint (its write was interrupted)", c->path);
    return TSR_STATUS_OK;
}

tsr_status tsr_ckpt_open(tsr_ckpt **out, const char *path, tsr_error *err)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return tsr_error_set(err, TSR_STATUS_IO, "cannot open checkpoint %s: %s", path,
                             strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return tsr_error_set(err, TSR_STATUS_IO, "checkpoint %s is not a regular file", path);
    tsr_ckpt *c = ckpt_alloc(path, false, err);
    tsr_status st = TSR_STATUS_OK;
    htri_t is_hdf5 = H5Fis_hdf5(path);
    int fd = is_hdf5 < 0 ? open(path, O_RDONLY) : -1;
    if (is_hdf5 < 0 && fd < 0) {
        st = tsr_error_set(err, TSR_STATUS_IO, "cannot read checkpoint %s: %s", path,
                           strerror(errno));
    } else if (is_hdf5 <= 0) {
        st = tsr_error_set(err, TSR_STATUS_FORMAT,
                           "%s is not an HDF5 file (%lld bytes; not a tessera checkpoint, or "
                           "truncated to its first bytes)",
                           path, (long long)sb.st_size);
    } else {
        c->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (c->file < 0)
            st = tsr_error_set(err, TSR_STATUS_FORMAT,
                               "%s cannot be opened as HDF5 (%lld bytes): truncated or corrupt",
                               path, (long long)sb.st_size);
        else
            st = check_root(c);
    }
    if (fd >= 0) close(fd);
    if (st != TSR_STATUS_OK) {
        ckpt_release(c);
        return st;
    }
    *out = c;
    return TSR_STATUS_OK;
}

/* Flushes a written file to the disk. */
static bool sync_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Flushes the directory entry of `path` (its rename) to the disk. A file
 * system that cannot fsync a directory (EINVAL) has nothing more to offer
 * and counts as success. */
static bool sync_parent_dir(const char *path)
{
    char dir[PATH_BYTES];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = open(slash && !dir[0] ? "/" : dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return false;
    bool ok = fsync(fd) == 0 || errno == EINVAL;
    int saved = errno;
    close(fd);
    errno = saved;
    return ok;
}

tsr_status tsr_ckpt_close(tsr_ckpt *c)
{
    tsr_status st = c->status;
    tsr_error *err = c->err;
    if (!c->writing) {
        ckpt_release(c);
        return st;
    }
    if (st == TSR_STATUS_OK && !write_attr_i64(c->file, "complete", 1))
        st = tsr_error_set(err, TSR_STATUS_BACKEND, "checkpoint %s: cannot mark it complete",
                           c->path);
    if (st == TSR_STATUS_OK && H5Fflush(c->file, H5F_SCOPE_GLOBAL) < 0)
        st = tsr_error_set(err, TSR_STATUS_IO, "checkpoint %s: HDF5 flush failed", c->tmp_path);
    bool closed = H5Fclose(c->file) >= 0;
    c->file = -1;
    char path[PATH_BYTES], tmp[PATH_BYTES];
    snprintf(path, sizeof path, "%s", c->path);
    snprintf(tmp, sizeof tmp, "%s", c->tmp_path);
    ckpt_release(c);
    if (st == TSR_STATUS_OK && !closed)
        st = tsr_error_set(err, TSR_STATUS_IO, "checkpoint %s: closing failed (disk full?)", tmp);
    if (st == TSR_STATUS_OK && !sync_file(tmp))
        st = tsr_error_set(err, TSR_STATUS_IO, "checkpoint %s: fsync failed: %s", tmp,
                           strerror(errno));
    if (st == TSR_STATUS_OK && rename(tmp, path) != 0)
        st = tsr_error_set(err, TSR_STATUS_IO, "cannot rename %s to %s: %s", tmp, path,
                           strerror(errno));
    if (st != TSR_STATUS_OK) {
        unlink(tmp);
        return st;
    }
    /* Not durable, not saved: the caller treats it as a failed save (and
     * keeps the previous checkpoints), so the file goes too. */
    if (!sync_parent_dir(path)) {
        st = tsr_error_set(err, TSR_STATUS_IO, "checkpoint %s: fsync of its directory failed: %s",
                           path, strerror(errno));
        unlink(path);
        return st;
    }
    return TSR_STATUS_OK;
}

/* ==== run directories ============================================================== */

void tsr_checkpoint_path(const char *run_dir, int64_t iteration, char *out, size_t size)
{
    snprintf(out, size, "%s/checkpoints/ckpt-%06" PRId64 ".h5", run_dir, iteration);
}

/* Iteration numbers of the checkpoint files in RUN_DIR/checkpoints, sorted
 * newest first; with `tmp`, the stray "*.h5.tmp" files instead. No such
 * directory is no checkpoint; a directory that cannot be read is an error
 * (-1, errno set), never taken for an empty one. */
static int64_t list_checkpoints(const char *run_dir, bool tmp, int64_t **iterations)
{
    char dir[PATH_BYTES];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    *iterations = NULL;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    int64_t count = 0, capacity = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long it;
        int consumed = 0;
        if (sscanf(e->d_name, "ckpt-%lld.h5%n", &it, &consumed) != 1 || it < 0) continue;
        const char *rest = e->d_name + consumed;
        if (tmp ? strcmp(rest, ".tmp") : *rest != '\0') continue;
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            *iterations = tsr_realloc(*iterations, (size_t)capacity * sizeof **iterations);
        }
        (*iterations)[count++] = it;
    }
    closedir(d);
    for (int64_t i = 1; i < count; i++) /* newest first */
        for (int64_t j = i; j > 0 && (*iterations)[j] > (*iterations)[j - 1]; j--) {
            int64_t t = (*iterations)[j];
            (*iterations)[j] = (*iterations)[j - 1];
            (*iterations)[j - 1] = t;
        }
    return count;
}

tsr_status tsr_checkpoint_find_latest(const char *run_dir, char *path, size_t size,
                                      int64_t *iteration, FILE *log, tsr_error *err)
{
    return tsr_checkpoint_find_latest_before(run_dir, INT64_MAX, path, size, iteration, log, err);
}

tsr_status tsr_checkpoint_find_latest_before(const char *run_dir, int64_t before, char *path,
                                             size_t size, int64_t *iteration, FILE *log,
                                             tsr_error *err)
{
    int64_t *its;
    int64_t listed = list_checkpoints(run_dir, false, &its), count = 0;
    if (listed < 0)
        return tsr_error_set(err, TSR_STATUS_BACKEND, "cannot read %s/checkpoints: %s", run_dir,
                             strerror(errno));
    for (int64_t i = 0; i < listed; i++) {
        if (its[i] >= before) continue;
        count++;
        tsr_checkpoint_path(run_dir, its[i], path, size);
        tsr_ckpt *c;
        tsr_error why;
        if (tsr_ckpt_open(&c, path, &why) == TSR_STATUS_OK) {
            tsr_ckpt_close(c);
            *iteration = its[i];
            tsr_free(its);
            return TSR_STATUS_OK;
        }
        if (log) fprintf(log, "tessera: skipping checkpoint: %s\n", why.message);
    }
    tsr_free(its);
    if (count)
        return tsr_error_set(err, TSR_STATUS_FORMAT,
                             "none of the %lld checkpoint%s in %s/checkpoints is complete (see "
                             "the skipped files above)",
                             (long long)count, count == 1 ? "" : "s", run_dir);
    return tsr_error_set(err, TSR_STATUS_IO, "%s/checkpoints holds no complete checkpoint",
                         run_dir);
}

tsr_status tsr_checkpoint_remove_old(const char *run_dir, int64_t keep, int64_t newest,
                                     tsr_error *err)
{
    TSR_ASSERT_MSG(keep >= 1, "keep %" PRId64 " checkpoints", keep);
    char path[PATH_BYTES];
    tsr_status st = TSR_STATUS_OK;
    for (int pass = 0; pass < 2; pass++) {
        int64_t *its;
        int64_t count = list_checkpoints(run_dir, pass == 1, &its);
        if (count < 0)
            return tsr_error_set(err, TSR_STATUS_IO, "cannot list %s/checkpoints to remove old "
                                 "ones: %s", run_dir, strerror(errno));
        /* Newest first: skip files past `newest` (not this run's history:
         * left alone), then keep `keep` files, the first being `newest`. */
        int64_t kept = 0;
        for (int64_t i = 0; i < count; i++) {
            if (pass == 0 && (its[i] > newest || kept++ < keep)) continue;
            tsr_checkpoint_path(run_dir, its[i], path, sizeof path);
            if (pass == 1) strcat(path, ".tmp");
            if (unlink(path) != 0 && errno != ENOENT && st == TSR_STATUS_OK)
                st = tsr_error_set(err, TSR_STATUS_IO, "cannot remove old checkpoint %s: %s", path,
                                   strerror(errno));
        }
        tsr_free(its);
    }
    return st;
}

/* ==== parameters and config of a checkpoint ====================================== */

tsr_status tsr_checkpoint_load_params(const char *path, const char *which, tsr_params *params,
                                      tsr_error *err)
{
    if (strcmp(which, "online") && strcmp(which, "target"))
        return tsr_error_set(err, TSR_STATUS_INVALID_ARGUMENT,
                             "checkpoint parameters are \"online\" or \"target\", not \"%s\"",
                             which);
    char group[64];
    snprintf(group, sizeof group, "params/%s", which);
    tsr_ckpt *c;
    tsr_status st = tsr_ckpt_open(&c, path, err);
    if (st != TSR_STATUS_OK) return st;
    c->check_only = true; /* every tensor matches before any is copied */
    tsr_ckpt_params(c, group, params);
    c->check_only = false;
    tsr_ckpt_params(c, group, params);
    return tsr_ckpt_close(c);
}

tsr_status tsr_checkpoint_read_config(const char *path, char **text, tsr_error *err)
{
    *text = NULL;
    tsr_ckpt *c;
    tsr_status st = tsr_ckpt_open(&c, path, err);
    if (st != TSR_STATUS_OK) return st;
    tsr_ckpt_text(c, "config", text);
    return tsr_ckpt_close(c);
}

/* ==== inspect ======================================================================= */

typedef struct inspect_state {
    FILE *out;
    tsr_ckpt *c;
    int64_t unreadable; /* datasets whose values could not be read */
} inspect_state;

static hsize_t dims_numel(int ndim, const hsize_t *dims)
{
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= dims[i];
    return numel;
}

/* The share of exact zeros among a numeric dataset's values (NaN when they
 * cannot be read, or there are none): for a parameter its sparsity, for a
 * mask (1 = kept) the share pruned. Read as doubles, a block of leading-axis
 * rows at a time, so a large replay array needs no copy of its size. */
static double zero_share(hid_t ds, int ndim, const hsize_t *dims)
{
    hsize_t numel = dims_numel(ndim, dims);
    if (numel == 0) return NAN;
    hsize_t row = numel / dims[0]; /* values per leading-axis row */
    const hsize_t block = (hsize_t)1 << 20; /* values per read */
    hsize_t rows = row < block ? block / row : 1;
    if (rows > dims[0]) rows = dims[0];
    double *buf = tsr_malloc((size_t)(rows * row) * sizeof *buf);
    hid_t file_space = H5Dget_space(ds);
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    for (int i = 0; i < ndim; i++) count[i] = dims[i];
    double zeros = 0;
    for (hsize_t r = 0; r < dims[0] && !isnan(zeros); r += rows) {
        start[0] = r;
        count[0] = dims[0] - r < rows ? dims[0] - r : rows;
        hsize_t n = count[0] * row;
        hid_t mem_space = H5Screate_simple(1, &n, NULL);
        bool ok = file_space >= 0 && mem_space >= 0 &&
                  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
                  H5Dread(ds, H5T_NATIVE_DOUBLE, mem_space, file_space, H5P_DEFAULT, buf) >= 0;
        if (mem_space >= 0) H5Sclose(mem_space);
        if (!ok) {
            zeros = NAN;
            break;
        }
        for (hsize_t i = 0; i < n; i++) zeros += buf[i] == 0.0;
    }
    if (file_space >= 0) H5Sclose(file_space);
    tsr_free(buf);
    return zeros / (double)numel;
}

static herr_t inspect_one(hid_t group, const char *name, const H5L_info_t *info, void *user)
{
    (void)info;
    inspect_state *s = user;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) {
        fprintf(s->out, "  %-56s (cannot be opened)\n", name);
        s->unreadable++;
        return 0;
    }
    if (H5Iget_type(obj) != H5I_DATASET || !strcmp(name, "config")) {
        H5Oclose(obj);
        return 0;
    }
    hid_t type = H5Dget_type(obj), space = H5Dget_space(obj);
    int ndim = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    int64_t shape[H5S_MAX_RANK];
    if (ndim > 0) H5Sget_simple_extent_dims(space, dims, NULL);
    for (int i = 0; i < ndim; i++) shape[i] = (int64_t)dims[i];
    char shape_text[128];
    format_shape(shape_text, sizeof shape_text, ndim < 0 ? 0 : ndim, shape);
    int cls = classify(type);
    const char *tname = cls >= 0 ? type_name((tsr_ckpt_type)cls)
                                 : H5Tget_class(type) == H5T_STRING ? "string" : "other";
    if (ndim == 0 && cls >= 0) {
        double v = 0;
        if (H5Dread(obj, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0) {
            fprintf(s->out, "  %-56s %-8s %-22s = %.17g\n", name, tname, "scalar", v);
        } else {
            fprintf(s->out, "  %-56s %-8s %-22s (unreadable)\n", name, tname, "scalar");
            s->unreadable++;
        }
    } else if (ndim > 0 && cls >= 0 && dims_numel(ndim, dims) == 0) {
        fprintf(s->out, "  %-56s %-8s %-22s (empty)\n", name, tname, shape_text);
    } else if (ndim > 0 && cls >= 0) {
        double zeros = zero_share(obj, ndim, dims);
        if (isnan(zeros)) {
            fprintf(s->out, "  %-56s %-8s %-22s (unreadable)\n", name, tname, shape_text);
            s->unreadable++;
        } else {
            fprintf(s->out, "  %-56s %-8s %-22s zeros %.4f\n", name, tname, shape_text, zeros);
        }
    } else if (ndim == 0 && H5Tget_class(type) == H5T_STRING) {
        char *text = read_text(obj, false);
        if (text) {
            fprintf(s->out, "  %-56s %-8s %-22s = \"%s\"\n", name, tname, "scalar", text);
        } else {
            fprintf(s->out, "  %-56s %-8s %-22s (unreadable)\n", name, tname, "scalar");
            s->unreadable++;
        }
        tsr_free(text);
    } else {
        fprintf(s->out, "  %-56s %-8s %s\n", name, tname, shape_text);
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Oclose(obj);
    return 0;
}

static void print_counter(tsr_ckpt *c, FILE *out, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "counters/%s", name);
    int64_t v = 0;
    if (!tsr_ckpt_has(c, path)) return;
    tsr_ckpt_i64(c, path, &v);
    fprintf(out, "  %-22s %" PRId64 "\n", name, v);
}

tsr_status tsr_checkpoint_inspect(const char *path, FILE *out, tsr_error *err)
{
    tsr_ckpt *c;
    tsr_status st = tsr_ckpt_open(&c, path, err);
    if (st != TSR_STATUS_OK) return st;
    char *tessera_version = read_attr_text(c->file, "tessera_version");
    int64_t version = 0;
    read_attr_i64(c->file, "format_version", &version);
    fprintf(out, "checkpoint %s\n  format %s version %" PRId64 ", written by tessera %s\n", path,
            TSR_CHECKPOINT_FORMAT_NAME, version, tessera_version ? tessera_version : "?");
    tsr_free(tessera_version);
    fprintf(out, "\ncounters\n");
    static const char *const counters[] = {"iteration",    "agent_steps",
                                           "gradient_updates", "episodes",
                                           "training_steps",   "target_syncs",
                                           "replay_add_count"};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        print_counter(c, out, counters[i]);
    fprintf(out, "\ndatasets (name, type, shape, share of exact zeros for numeric arrays)\n");
    inspect_state s = {.out = out, .c = c};
    bool visited = H5Lvisit(c->file, H5_INDEX_NAME, H5_ITER_INC, inspect_one, &s) >= 0;
    char *config = NULL;
    tsr_ckpt_text(c, "config", &config);
    if (config) fprintf(out, "\nconfig\n%s", config);
    tsr_free(config);
    st = tsr_ckpt_close(c);
    if (st == TSR_STATUS_OK && !visited)
        st = tsr_error_set(err, TSR_STATUS_FORMAT, "%s: its datasets could not all be listed "
                           "(damaged file)", path);
    if (st == TSR_STATUS_OK && s.unreadable)
        st = tsr_error_set(err, TSR_STATUS_FORMAT, "%s: %" PRId64 " dataset%s could not be read "
                           "(damaged file; marked above)", path, s.unreadable,
                           s.unreadable == 1 ? "" : "s");
    return st;
}
