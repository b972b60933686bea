/* safetensors: a validating reader over mmap and a writer the Python `safetensors` package reads.
 *
 * The reader validates what the reference implementation (Rust `safetensors` crate) validates:
 *  - 8-byte little-endian header length N, N <= 100,000,000 and 8 + N <= file size;
 *  - the header is UTF-8 JSON, an object; every entry except "__metadata__" has a known dtype string
 *    (BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64), a shape (array of non-negative integers)
 *    and data_offsets [BEGIN, END] (non-negative integers, BEGIN <= END);
 *  - sorted by offset, the tensors' byte ranges are contiguous from 0 with no gap or overlap;
 *  - END - BEGIN = product(shape) x dtype size, computed with overflow checks;
 *  - the last END + 8 + N equals the file size (no trailing bytes);
 *  - no duplicate names; "__metadata__", when present, is an object whose values are all strings.
 * Beyond the reference: duplicate __metadata__ keys, "\u0000" inside strings and more than CL_ST_MAX_DIMS dimensions
 * are refused; JSON nesting is limited to 128 levels (serde_json's limit). Like the reference, unknown fields in a
 * tensor entry are ignored and "__metadata__": null means no metadata.
 * Every failure returns CL_EFORMAT (or CL_EIO / CL_EMISSING for the file itself) with a message naming the file,
 * the tensor and the offending value. */
#ifndef CL_SAFETENSORS_H
#define CL_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef enum {
    CL_DT_BOOL, CL_DT_U8, CL_DT_I8, CL_DT_F8_E5M2, CL_DT_F8_E4M3, CL_DT_I16, CL_DT_U16, CL_DT_F16, CL_DT_BF16,
    CL_DT_I32, CL_DT_U32, CL_DT_F32, CL_DT_F64, CL_DT_I64, CL_DT_U64, CL_DT_COUNT
} cl_dtype;

const char *cl_dtype_name(cl_dtype dt);      /* "F32", ... */
size_t cl_dtype_size(cl_dtype dt);           /* bytes per element */
int cl_dtype_parse(const char *s, cl_dtype *out); /* 0 on success, -1 for an unknown string */

#define CL_ST_MAX_DIMS 8 /* condlora's own limit; more dimensions are refused with a clear message */

typedef struct {
    char *name;
    cl_dtype dtype;
    int ndim;
    int64_t shape[CL_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;  /* byte offsets relative to the data section */
    const uint8_t *data;  /* points into the mapping (may be unaligned) */
} cl_st_tensor;

typedef struct {
    char *path;
    uint8_t *map;   /* whole file (mmap'd, or the caller's buffer for cl_st_open_memory) */
    size_t size;
    int owns_map;   /* 1 when mmap'd by cl_st_open */
    uint64_t header_len;
    int n;               /* tensors, in header order */
    cl_st_tensor *t;
    int nmeta;           /* __metadata__ entries */
    char **meta_keys, **meta_vals;
} cl_safetensors;

/* Opens and validates PATH (read-only mmap). On failure *st is left empty (safe to cl_st_close). */
int cl_st_open(cl_safetensors *st, const char *path, cl_error *err);
/* Same validation over a caller-owned buffer (fuzzing, tests); NAME is used in messages. Buffer must outlive st. */
int cl_st_open_memory(cl_safetensors *st, const uint8_t *buf, size_t size, const char *name, cl_error *err);
void cl_st_close(cl_safetensors *st);

const cl_st_tensor *cl_st_find(const cl_safetensors *st, const char *name);
const char *cl_st_meta(const cl_safetensors *st, const char *key); /* NULL if absent */

/* Converts a floating tensor (F32, F16, BF16, F64) to F32 into out[numel]; other dtypes are refused. */
int cl_st_to_f32(const cl_safetensors *st, const cl_st_tensor *t, float *out, cl_error *err);
/* Exact conversions of one IEEE half / bfloat16 bit pattern (subnormals, infinities, NaN payloads kept). */
float cl_f16_to_f32(uint16_t h);
float cl_bf16_to_f32(uint16_t h);

/* Writer. Tensors are written ordered by dtype (descending in cl_dtype order, which is the reference's Dtype enum
 * order and groups dtypes by alignment: U64 I64 F64 F32 U32 I32 BF16 F16 ...) then by name, as the Python package
 * does; metadata entries in insertion order; the
 * header is padded with spaces to a multiple of 8. Data is copied at add time. Saving is crash-safe
 * (temporary file, fsync, rename). */
typedef struct cl_st_writer cl_st_writer;
cl_st_writer *cl_st_writer_new(void);
int cl_st_writer_add(cl_st_writer *w, const char *name, cl_dtype dt, int ndim, const int64_t *shape,
                     const void *data, cl_error *err);
int cl_st_writer_add_f32(cl_st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data,
                         cl_error *err);
int cl_st_writer_meta(cl_st_writer *w, const char *key, const char *value, cl_error *err);
int cl_st_writer_save(cl_st_writer *w, const char *path, cl_error *err);
void cl_st_writer_free(cl_st_writer *w);

#endif
