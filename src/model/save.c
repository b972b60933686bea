/* The model writer: a Hugging Face *ForSequenceClassification checkpoint from the architecture table's tensor list
 * (model/arch.c), which is also the loader's list, so what is written is exactly what loads back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/safetensors.h"
#include "model/model.h"

/* IEEE half / bfloat16 from float, round to nearest even (NaN kept quiet, overflow to infinity) */
static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* rounds to >= 65520: infinity */
    if (a < 0x38800000u) {                                            /* subnormal half (or zero) */
        float v;
        memcpy(&v, &a, 4);
        return (uint16_t)(sign | (uint16_t)lrintf(v * 16777216.0f)); /* v / 2^-24, nearest even */
    }
    uint32_t m = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u;          /* rebias 127 -> 15, round */
    return (uint16_t)(sign | (m >> 13));
}

typedef struct {
    cl_st_writer *w;
    cl_dtype dt;
    uint16_t *buf;
    size_t cap;
} writer;

static int put(writer *wr, const char *name, const float *data, int64_t d0, int64_t d1, cl_error *err) {
    int64_t sh[2] = {d0, d1};
    int nd = d1 ? 2 : 1;
    if (wr->dt == CL_DT_F32) return cl_st_writer_add_f32(wr->w, name, nd, sh, data, err);
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    if (n > wr->cap) {
        uint16_t *b = realloc(wr->buf, n * sizeof *b);
        if (!b) return cl_errf(err, CL_ENOMEM, "%s: out of memory", name);
        wr->buf = b, wr->cap = n;
    }
    for (size_t i = 0; i < n; i++) wr->buf[i] = wr->dt == CL_DT_F16 ? f32_to_f16(data[i]) : f32_to_bf16(data[i]);
    return cl_st_writer_add(wr->w, name, wr->dt, nd, sh, wr->buf, err);
}

typedef struct {
    writer wr;
    const cl_arch_desc *arch;
    cl_error *err;
} save_ctx;

static int save_one(void *user, const cl_model_tensor *t) {
    save_ctx *x = user;
    if (!*t->ptr) return 0; /* absent optional tensor (a pooler the checkpoint did not have) */
    char name[256];
    if (t->kind == CL_TENSOR_HEAD) snprintf(name, sizeof name, "%s", t->name);
    else snprintf(name, sizeof name, "%s.%s", x->arch->prefix, t->name);
    return put(&x->wr, name, *t->ptr, t->shape[0], t->ndim > 1 ? t->shape[1] : 0, x->err) ? -1 : 0;
}

int cl_model_save_weights(const cl_weights *m, const char *path, int dtype, cl_error *err) {
    if (dtype != CL_DT_F32 && dtype != CL_DT_F16 && dtype != CL_DT_BF16)
        return cl_errf(err, CL_EINVAL, "%s: the model writer writes F32, F16 or BF16", path);
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++)
            if (!m->layers[l].lin[k].w)
                return cl_errf(err, CL_EINVAL, "%s: layer %d %s has no fp32 weight (a bf16-mode model cannot be "
                               "saved)", path, l, cl_module_names[k]);
    save_ctx x = {{cl_st_writer_new(), (cl_dtype)dtype, NULL, 0}, cl_model_arch(m), err};
    if (!x.wr.w) return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    /* *ForSequenceClassification keeps the pooler only where its head uses it (BERT) */
    int rc = cl_model_tensors((cl_weights *)m, m->head, x.arch->pooler_in_seqcls, save_one, &x);
    if (rc && err && !err->code) rc = cl_errf(err, CL_EINVAL, "%s: unknown architecture", path);
    else if (rc) rc = err ? (int)err->code : CL_EIO;
    if (!rc) rc = cl_st_writer_meta(x.wr.w, "format", "pt", err);
    if (!rc) rc = cl_st_writer_save(x.wr.w, path, err);
    cl_st_writer_free(x.wr.w);
    free(x.wr.buf);
    return rc;
}
