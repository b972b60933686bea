/* The contiguous trainable buffer and its optimiser (see params.h). */
#include "adapters/params.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"

const char *const cl_param_part_names[CL_PART_COUNT] = {"adapter", "head", "gate"};

void cl_params_init(cl_params *p) { memset(p, 0, sizeof *p); }

int cl_params_add(cl_params *p, const char *name, int ndim, const int64_t *shape, cl_param_part part, int decay,
                  size_t *offset, cl_error *err) {
    if (p->param) return cl_errf(err, CL_EINVAL, "params: cannot register '%s' after allocation", name);
    if (!name || strlen(name) >= CL_PARAM_NAME_MAX)
        return cl_errf(err, CL_EINVAL, "params: tensor name missing or longer than %d bytes", CL_PARAM_NAME_MAX - 1);
    if (ndim < 1 || ndim > CL_PARAM_MAX_DIMS)
        return cl_errf(err, CL_EINVAL, "params: tensor '%s' has %d dimensions (1..%d allowed)", name, ndim,
                       CL_PARAM_MAX_DIMS);
    if ((unsigned)part >= CL_PART_COUNT) return cl_errf(err, CL_EINVAL, "params: tensor '%s': bad part", name);
    if (cl_params_find(p, name)) return cl_errf(err, CL_EINVAL, "params: duplicate tensor name '%s'", name);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return cl_errf(err, CL_EINVAL, "params: tensor '%s' dimension %d is %lld (must be > 0)", name, i,
                           (long long)shape[i]);
        if (!cl_mul_ok(numel, (uint64_t)shape[i], &numel) || numel > ((uint64_t)1 << 40))
            return cl_errf(err, CL_EINVAL, "params: tensor '%s' is too large", name);
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        cl_param_tensor *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) return cl_errf(err, CL_ENOMEM, "params: out of memory registering '%s'", name);
        p->t = t;
        p->cap = cap;
    }
    cl_param_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = (size_t)numel;
    t->offset = p->numel;
    t->decay = decay;
    t->part = part;
    p->numel += (t->numel + 15) & ~(size_t)15;
    p->count[part] += numel;
    if (offset) *offset = t->offset;
    return 0;
}

int cl_params_alloc(cl_params *p, cl_error *err) {
    if (p->param) return cl_errf(err, CL_EINVAL, "params: already allocated");
    size_t n = p->numel ? p->numel : 16;
    float *buf = cl_zalloc(4 * n, sizeof(float), err);
    if (!buf) return cl_err_prefix(err, "params (%zu floats x 4)", n);
    p->param = buf;
    p->grad = buf + n;
    p->m = buf + 2 * n;
    p->v = buf + 3 * n;
    p->step = 0;
    return 0;
}

void cl_params_free(cl_params *p) {
    if (p->param) cl_free(p->param);
    free(p->t);
    memset(p, 0, sizeof *p);
}

const cl_param_tensor *cl_params_find(const cl_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

uint64_t cl_params_count_total(const cl_params *p) {
    uint64_t s = 0;
    for (int i = 0; i < CL_PART_COUNT; i++) s += p->count[i];
    return s;
}

void cl_params_zero_grad(cl_params *p) {
    if (p->grad) memset(p->grad, 0, p->numel * sizeof(float));
}

double cl_params_grad_norm(const cl_params *p) {
    double s = 0;
    const float *g = p->grad;
    if (!g) return 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < p->numel; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

double cl_params_clip_grad_norm(cl_params *p, double max_norm) {
    double total = cl_params_grad_norm(p);
    if (max_norm > 0) {
        double coef = max_norm / (total + 1e-6);
        if (coef < 1.0) {
            float c = (float)coef;
            float *g = p->grad;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < p->numel; i++) g[i] *= c;
        }
    }
    return total;
}

void cl_params_adamw_step(cl_params *p, float lr, float beta1, float beta2, float eps, float weight_decay) {
    if (!p->param) return;
    p->step++;
    double bc1 = 1.0 - pow((double)beta1, (double)p->step);
    double bc2 = 1.0 - pow((double)beta2, (double)p->step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    for (int k = 0; k < p->n; k++) {
        const cl_param_tensor *t = &p->t[k];
        float *w = p->param + t->offset, *g = p->grad + t->offset, *m = p->m + t->offset, *v = p->v + t->offset;
        float decay = t->decay ? 1.0f - lr * weight_decay : 1.0f;
        size_t n = t->numel;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            w[i] *= decay;
            m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
            v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
            float denom = sqrtf(v[i]) / bc2_sqrt + eps;
            w[i] -= step_size * (m[i] / denom);
        }
    }
}

void cl_format_count(uint64_t n, char *buf, size_t len) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)n), j = 0;
    char out[48];
    for (int i = 0; i < k; i++) {
        if (i > 0 && (k - i) % 3 == 0) out[j++] = ',';
        out[j++] = tmp[i];
    }
    out[j] = 0;
    snprintf(buf, len, "%s", out);
}

void cl_params_report(const cl_params *p, FILE *f) {
    char a[48], h[48], g[48], t[48];
    cl_format_count(p->count[CL_PART_ADAPTER], a, sizeof a);
    cl_format_count(p->count[CL_PART_HEAD], h, sizeof h);
    cl_format_count(p->count[CL_PART_GATE], g, sizeof g);
    cl_format_count(cl_params_count_total(p), t, sizeof t);
    if (p->count[CL_PART_GATE]) fprintf(f, "trainable parameters: adapter %s | gate %s | head %s | total %s\n", a, g, h, t);
    else fprintf(f, "trainable parameters: adapter %s | head %s | total %s\n", a, h, t);
}
