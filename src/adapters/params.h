/* The contiguous trainable state: a registry of named tensors over ONE allocation, with grad and the AdamW moments
 * m, v in exactly the same layout (param[i], grad[i], m[i], v[i] belong to the same scalar). Adapters, the
 * classification head and SaLoRA gates / AdaLoRA singular values all live here.
 *
 * Life cycle: cl_params_init -> cl_params_add (any number; returns the tensor's offset) -> cl_params_alloc (all four
 * arrays zeroed) -> training (zero_grad, clip, adamw_step) -> cl_params_free. Offsets are stable; pointers are only
 * valid after cl_params_alloc. */
#ifndef CL_PARAMS_H
#define CL_PARAMS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/error.h"

/* Which part of the model a tensor belongs to (reported separately: "adapter", "head", "gate"). */
typedef enum { CL_PART_ADAPTER = 0, CL_PART_HEAD, CL_PART_GATE, CL_PART_COUNT } cl_param_part;
extern const char *const cl_param_part_names[CL_PART_COUNT];

#define CL_PARAM_NAME_MAX 192
#define CL_PARAM_MAX_DIMS 4

typedef struct {
    char name[CL_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[CL_PARAM_MAX_DIMS];
    size_t offset, numel; /* in floats; offsets are 16-float (64-byte) aligned */
    int decay;            /* 1: AdamW weight decay applies */
    cl_param_part part;
} cl_param_tensor;

typedef struct {
    int n, cap;
    cl_param_tensor *t;
    size_t numel;               /* total floats incl. alignment padding (padding stays 0 in all arrays) */
    uint64_t count[CL_PART_COUNT]; /* trainable scalars per part (no padding) */
    float *param, *grad, *m, *v;   /* NULL before cl_params_alloc */
    int64_t step;               /* AdamW steps taken (bias correction uses step after increment) */
} cl_params;

void cl_params_init(cl_params *p);
/* Registers NAME with SHAPE; *offset (may be NULL) receives its offset. Refused after alloc, for duplicate names,
 * non-positive dimensions, or ndim outside 1..CL_PARAM_MAX_DIMS. */
int cl_params_add(cl_params *p, const char *name, int ndim, const int64_t *shape, cl_param_part part, int decay,
                  size_t *offset, cl_error *err);
int cl_params_alloc(cl_params *p, cl_error *err);
void cl_params_free(cl_params *p);
const cl_param_tensor *cl_params_find(const cl_params *p, const char *name);
uint64_t cl_params_count_total(const cl_params *p);

/* Console report of the trainable counts per part, e.g.
 *   "trainable parameters: adapter 294,912 | head 592,130 | total 887,042" (gate shown only when non-zero) */
void cl_params_report(const cl_params *p, FILE *f);
/* "1,234,567" into buf */
void cl_format_count(uint64_t n, char *buf, size_t len);

void cl_params_zero_grad(cl_params *p);
/* sqrt(sum grad^2) over every tensor, accumulated in double */
double cl_params_grad_norm(const cl_params *p);
/* torch.nn.utils.clip_grad_norm_: total = grad_norm; coef = max_norm / (total + 1e-6); if coef < 1, grad *= coef.
 * Returns the norm before clipping. max_norm <= 0 only measures. */
double cl_params_clip_grad_norm(cl_params *p, double max_norm);
/* torch.optim.AdamW (amsgrad=False, maximize=False), exactly:
 *   step += 1; p *= 1 - lr * wd (tensors with decay=1 only);
 *   m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 *   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). */
void cl_params_adamw_step(cl_params *p, float lr, float beta1, float beta2, float eps, float weight_decay);

#endif
