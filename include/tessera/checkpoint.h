/* checkpoint.h — HDF5 checkpoints: a run's whole state in one file, written
 * atomically, read back bit for bit (the layout: checkpoints/FORMAT.md).
 *
 * A checkpoint is written to "<path>.tmp", flushed, fsync'ed and renamed over
 * <path>, with the root attribute `complete` set last, so a kill at any moment
 * leaves either the previous file or the new complete one. Loading checks,
 * before it changes anything it is given, that the file exists, is HDF5, is a
 * tessera checkpoint of a format version this build reads, and is complete;
 * then every item is checked as it is read (a tensor of another shape is an
 * error naming the file, the tensor and both shapes).
 *
 * ONE VISITOR FOR BOTH DIRECTIONS. Each module that has state describes it
 * once, through a tsr_ckpt: the same call writes the item when the checkpoint
 * is being written and reads (and checks) it when it is being read. The first
 * failure is kept in the tsr_ckpt and every later call does nothing, so a
 * module's visitor is a plain list of calls; tsr_ckpt_status says how it went.
 * Paths are HDF5 paths relative to the file's root ("params/online/
 * encoder/conv1/weight"); intermediate groups are created as needed.
 */
#ifndef TESSERA_CHECKPOINT_H
#define TESSERA_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/params.h"
#include "tessera/rng.h"
#include "tessera/status.h"
#include "tessera/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version 1 is the layout of checkpoints/FORMAT.md. A file of a newer
 * version is refused; an older one would be read by a converter. */
enum { TSR_CHECKPOINT_FORMAT_VERSION = 1 };
#define TSR_CHECKPOINT_FORMAT_NAME "tessera-checkpoint"

/* ---- the visitor ----------------------------------------------------------- */

typedef struct tsr_ckpt tsr_ckpt;

/* Element types of checkpoint arrays beyond the tensor dtypes. */
typedef enum tsr_ckpt_type {
    TSR_CKPT_F32 = 0,
    TSR_CKPT_F64,
    TSR_CKPT_U8,
    TSR_CKPT_I32,
    TSR_CKPT_I64,
    TSR_CKPT_U64,
} tsr_ckpt_type;

enum { TSR_CKPT_COMPRESS = 1u << 0 }; /* chunked, deflate level 1 (replay arrays) */

bool tsr_ckpt_writing(const tsr_ckpt *c);
/* The first failure so far (TSR_STATUS_OK if none); its message is in the
 * tsr_error the checkpoint was opened with. */
tsr_status tsr_ckpt_status(const tsr_ckpt *c);
/* Reading: whether `path` exists in the file. Writing: false. */
bool tsr_ckpt_has(tsr_ckpt *c, const char *path);
/* Records a failure found by a visitor (a value that does not fit the object
 * being restored); printf-style, the file name is prefixed. */
void tsr_ckpt_fail(tsr_ckpt *c, tsr_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Scalars: written from *value, or read into it. */
void tsr_ckpt_i64(tsr_ckpt *c, const char *path, int64_t *value);
void tsr_ckpt_f64(tsr_ckpt *c, const char *path, double *value);
void tsr_ckpt_bool(tsr_ckpt *c, const char *path, bool *value);
/* An array of `shape` (ndim 1..5): reading checks the element type and the
 * shape and fills `data`. `flags`: TSR_CKPT_COMPRESS. */
void tsr_ckpt_array(tsr_ckpt *c, const char *path, tsr_ckpt_type type, int ndim,
                    const int64_t *shape, void *data, unsigned flags);
/* A tensor's contents at its own shape (contiguous; f32, f64, u8 or i32). */
void tsr_ckpt_tensor(tsr_ckpt *c, const char *path, tsr_tensor *t);
/* A random stream: <path>/state (4 x uint64) and <path>/spare_normal,
 * <path>/has_spare_normal. */
void tsr_ckpt_rng(tsr_ckpt *c, const char *path, tsr_rng *rng);
/* Every parameter of a float32 block under <group>/<parameter name>.
 * Reading requires exactly these parameters (a tensor missing from the file,
 * one of another shape, or tensors the network does not have are errors) and
 * bumps the block's version. */
void tsr_ckpt_params(tsr_ckpt *c, const char *group, tsr_params *params);
/* Text (the resolved config): written from *text; read into a new string
 * that the caller frees with tsr_free. */
void tsr_ckpt_text(tsr_ckpt *c, const char *path, char **text);

/* ---- files ------------------------------------------------------------------- */

/* Starts writing `path`: the data goes to "<path>.tmp" until tsr_ckpt_close
 * commits it. The root gets the format name and version and the tessera
 * version as attributes. */
tsr_status tsr_ckpt_create(tsr_ckpt **out, const char *path, tsr_error *err);
/* Opens `path` for reading after checking that it is a complete tessera
 * checkpoint of a version this build reads (errors name the file and what
 * is wrong with it: missing, not HDF5, truncated, foreign, newer, incomplete). */
tsr_status tsr_ckpt_open(tsr_ckpt **out, const char *path, tsr_error *err);
/* Writing: when every call succeeded, sets `complete`, flushes, fsyncs and
 * renames the temporary file over the path; on a failure removes it and
 * leaves any previous file at the path untouched. Reading: closes. Returns
 * the checkpoint's status (the first failure). */
tsr_status tsr_ckpt_close(tsr_ckpt *c);

/* ---- run directories ------------------------------------------------------------ */

/* Checkpoints of a run live in RUN_DIR/checkpoints/ckpt-<iteration, 6 digits>.h5. */
void tsr_checkpoint_path(const char *run_dir, int64_t iteration, char *out, size_t size);
/* The newest complete checkpoint of a run directory: the one with the
 * highest iteration that opens as a complete checkpoint (newer files that do
 * not are reported on `log`, which may be NULL, and skipped). Returns
 * TSR_STATUS_IO when the run has no checkpoint file, TSR_STATUS_FORMAT when
 * it has some but none is complete, with a message saying which, and
 * TSR_STATUS_BACKEND when its checkpoints directory cannot be read. */
tsr_status tsr_checkpoint_find_latest(const char *run_dir, char *path, size_t size,
                                      int64_t *iteration, FILE *log, tsr_error *err);
/* The same among the checkpoints of iterations below `before`: the one to
 * fall back to when the newest opens but its contents cannot be loaded. */
tsr_status tsr_checkpoint_find_latest_before(const char *run_dir, int64_t before, char *path,
                                             size_t size, int64_t *iteration, FILE *log,
                                             tsr_error *err);
/* After the checkpoint of iteration `newest` was written: removes all but
 * the newest `keep` (>= 1) checkpoint files up to iteration `newest` (which
 * is always kept), and stray temporary files of interrupted writes. Files of
 * later iterations (a directory reused by hand, or a damaged newer file a
 * resume skipped) are left alone: they never push out the checkpoint just
 * written. */
tsr_status tsr_checkpoint_remove_old(const char *run_dir, int64_t keep, int64_t newest,
                                     tsr_error *err);

/* Loads the online (`which` = "online") or target ("target") parameters of a
 * checkpoint into a network's parameter block, by name and shape: the one
 * call for evaluating or fine-tuning from another run. Nothing is changed
 * unless every tensor matches. */
tsr_status tsr_checkpoint_load_params(const char *path, const char *which, tsr_params *params,
                                      tsr_error *err);
/* The resolved config text stored in a checkpoint (free with tsr_free). */
tsr_status tsr_checkpoint_read_config(const char *path, char **text, tsr_error *err);
/* `tessera inspect`: the format attributes, the counters, every dataset with
 * its type, shape and (for numeric arrays) share of exact zeros, then the
 * config. */
tsr_status tsr_checkpoint_inspect(const char *path, FILE *out, tsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
