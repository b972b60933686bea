/* Encoder ops: forward/backward pairs (see ops.h for the shapes and the conventions). */
#include "model/ops.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* ---- dropout ---------------------------------------------------------------------------------------------- */
/* the hash and threshold live in ops.h (cl_dropout_mix64, ..), shared with bf16 mode's attention (gemm_bf16.c) */
static inline uint64_t mix64(uint64_t z) { return cl_dropout_mix64(z); }
static inline uint64_t drop_key(const cl_dropout *d) { return cl_dropout_key(d); }
static inline uint32_t drop_thr(float p) { return cl_dropout_thr(p); }
/* element i is kept when its 16-bit uniform is >= thr; one 64-bit hash serves four consecutive elements */
static inline int drop_keep(uint64_t key, uint32_t thr, uint64_t i) {
    uint64_t h = mix64(key + (i >> 2));
    return ((h >> ((i & 3) * 16)) & 0xffff) >= thr;
}

float cl_dropout_scale(const cl_dropout *d, uint64_t i) {
    if (!d || d->p <= 0.0f) return 1.0f;
    if (d->p >= 1.0f) return 0.0f;
    return drop_keep(drop_key(d), drop_thr(d->p), i) ? 1.0f / (1.0f - d->p) : 0.0f;
}

void cl_dropout_forward(float *y, const float *x, size_t n, const cl_dropout *d) {
    if (!d || d->p <= 0.0f) {
        if (y != x) memcpy(y, x, n * sizeof(float));
        return;
    }
    const uint64_t key = drop_key(d);
    const uint32_t thr = drop_thr(d->p);
    const float s = d->p >= 1.0f ? 0.0f : 1.0f / (1.0f - d->p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = drop_keep(key, thr, i) ? x[i] * s : 0.0f;
}

void cl_dropout_backward(float *dx, const float *dy, size_t n, const cl_dropout *d) {
    if (!d || d->p <= 0.0f) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
        return;
    }
    const uint64_t key = drop_key(d);
    const uint32_t thr = drop_thr(d->p);
    const float s = d->p >= 1.0f ? 0.0f : 1.0f / (1.0f - d->p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        if (drop_keep(key, thr, i)) dx[i] += dy[i] * s;
}

/* ---- embeddings ------------------------------------------------------------------------------------------- */
void cl_position_ids(int32_t *pos, const int32_t *ids, int B, int T, int pad_id) {
    for (int b = 0; b < B; b++) {
        int rank = 0;
        for (int t = 0; t < T; t++) {
            if (pad_id >= 0) {
                int tok = ids[(size_t)b * T + t] != pad_id;
                rank += tok;
                pos[(size_t)b * T + t] = tok ? pad_id + rank : pad_id;
            } else {
                pos[(size_t)b * T + t] = t;
            }
        }
    }
}

void cl_embed_forward(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                      const float *word_emb, const float *pos_emb, const float *type_emb, int N, int H) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *w = word_emb + (size_t)ids[n] * H;
        const float *p = pos_emb + (size_t)pos[n] * H;
        float *o = out + (size_t)n * H;
        if (!type_emb) {
            for (int i = 0; i < H; i++) o[i] = w[i] + p[i];
            continue;
        }
        const float *ty = type_emb + (size_t)(types ? types[n] : 0) * H;
        for (int i = 0; i < H; i++) o[i] = w[i] + ty[i] + p[i]; /* transformers' order: word + type, then + pos */
    }
}

void cl_embed_backward_word(float *dword, const float *dout, const int32_t *ids, int N, int H) {
    for (int n = 0; n < N; n++) {
        float *d = dword + (size_t)ids[n] * H;
        const float *g = dout + (size_t)n * H;
        for (int i = 0; i < H; i++) d[i] += g[i];
    }
}

/* ---- layer norm ------------------------------------------------------------------------------------------- */
static inline void ln_row(float *o, float *mean, float *rstd, const float *x, const float *w, const float *b, int C,
                          float eps) {
    double m = 0.0;
    for (int i = 0; i < C; i++) m += x[i];
    m /= C;
    double v = 0.0;
    for (int i = 0; i < C; i++) {
        double d = x[i] - m;
        v += d * d;
    }
    v /= C;
    float s = (float)(1.0 / sqrt(v + (double)eps));
    float mf = (float)m;
    for (int i = 0; i < C; i++) o[i] = (x[i] - mf) * s * w[i] + b[i];
    if (mean) *mean = mf;
    if (rstd) *rstd = s;
}

void cl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                          int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        ln_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL, inp + (size_t)n * C, w, b, C,
               eps);
}

void cl_residual_layernorm_forward(float *out, float *mean, float *rstd, float *inp, const float *resid,
                                   const float *x, const cl_dropout *drop, const float *w, const float *b, int N,
                                   int C, float eps) {
    const int dp = drop && drop->p > 0.0f;
    const uint64_t key = dp ? drop_key(drop) : 0;
    const uint32_t thr = dp ? drop_thr(drop->p) : 0;
    const float s = dp ? (drop->p >= 1.0f ? 0.0f : 1.0f / (1.0f - drop->p)) : 1.0f;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *in = inp + (size_t)n * C;
        const float *r = resid + (size_t)n * C, *xx = x + (size_t)n * C;
        if (dp) {
            const uint64_t base = (uint64_t)n * C;
            for (int i = 0; i < C; i++) in[i] = (drop_keep(key, thr, base + i) ? xx[i] * s : 0.0f) + r[i];
        } else {
            for (int i = 0; i < C; i++) in[i] = xx[i] + r[i];
        }
        ln_row(out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL, in, w, b, C, eps);
    }
}

void cl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        const float m = mean[n], s = rstd[n];
        double a = 0.0, bsum = 0.0; /* mean(dnorm), mean(dnorm * norm) */
        for (int i = 0; i < C; i++) {
            float nrm = (x[i] - m) * s;
            float dn = g[i] * w[i];
            a += dn;
            bsum += (double)dn * nrm;
        }
        const float am = (float)(a / C), bm = (float)(bsum / C);
        for (int i = 0; i < C; i++) {
            float nrm = (x[i] - m) * s;
            dx[i] += (g[i] * w[i] - am - nrm * bm) * s;
        }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < C; i++) {
            double sw = 0.0, sb = 0.0;
            for (int n = 0; n < N; n++) {
                float g = dout[(size_t)n * C + i];
                sw += (double)g * ((inp[(size_t)n * C + i] - mean[n]) * rstd[n]);
                sb += g;
            }
            if (dw) dw[i] += (float)sw;
            if (db) db[i] += (float)sb;
        }
    }
}

/* ---- linear ----------------------------------------------------------------------------------------------- */
void cl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC) {
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

void cl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        int N, int C, int OC) {
    if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            db[o] += (float)s;
        }
    }
}

/* ---- activations ------------------------------------------------------------------------------------------ */
#define CL_SQRT1_2 0.70710678118654752440f
#define CL_SQRT_2_PI 0.79788456080286535588f /* sqrt(2/pi) */
#define CL_INV_SQRT_2PI 0.39894228040143267794f

/* glibc's libmvec (2.35+) has 16- and 8-lane variants of erff, expf and tanhf; declaring them `omp declare simd`
 * lets the `omp simd` loops below call them (largest difference to the scalar functions seen: 8e-7 absolute for
 * GELU on [-8, 8]). Before, scalar erff alone was 13% of a MiniLM training step. */
#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float tanhf(float);

#pragma omp declare simd notinbranch
static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * CL_SQRT1_2)); }
#pragma omp declare simd notinbranch
static inline float gelu_tanh(float x) {
    float u = CL_SQRT_2_PI * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
#pragma omp declare simd notinbranch
static inline float gelu_erf_grad(float x) {
    return 0.5f * (1.0f + erff(x * CL_SQRT1_2)) + x * CL_INV_SQRT_2PI * expf(-0.5f * x * x);
}
#pragma omp declare simd notinbranch
static inline float gelu_tanh_grad(float x) {
    float u = CL_SQRT_2_PI * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    float du = CL_SQRT_2_PI * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

/* out[0..n) = act(x[0..n)) and g[0..n) *= act'(x[0..n)). Every element goes through the 16-lane libmvec
 * function (the tail through a zero-padded block), never the scalar one, so a value does not depend on where it
 * sits in memory (the vector and scalar variants can differ in the last bit). */
#define VB 16
#define ACT_BLOCKS(BODY)                                                                                           \
    do {                                                                                                           \
        size_t i0 = 0;                                                                                             \
        for (; i0 + VB <= n; i0 += VB) {                                                                           \
            float xb[VB] __attribute__((aligned(64))), yb[VB] __attribute__((aligned(64)));                         \
            memcpy(xb, x + i0, sizeof xb);                                                                         \
            _Pragma("omp simd aligned(xb, yb : 64) simdlen(16)") for (int i = 0; i < VB; i++) yb[i] = BODY;      \
            STORE(i0, VB);                                                                                         \
        }                                                                                                          \
        if (i0 < n) {                                                                                              \
            float xb[VB] __attribute__((aligned(64))) = {0}, yb[VB] __attribute__((aligned(64)));                   \
            memcpy(xb, x + i0, (n - i0) * sizeof(float));                                                          \
            _Pragma("omp simd aligned(xb, yb : 64) simdlen(16)") for (int i = 0; i < VB; i++) yb[i] = BODY;      \
            STORE(i0, n - i0);                                                                                     \
        }                                                                                                          \
    } while (0)

void cl_act_row(float *o, const float *x, size_t n, cl_act act) {
#define STORE(at, k) memcpy(o + (at), yb, (k) * sizeof(float))
    switch (act) {
    case CL_ACT_GELU_TANH: ACT_BLOCKS(gelu_tanh(xb[i])); break;
    case CL_ACT_RELU:
        for (size_t i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    default: ACT_BLOCKS(gelu_erf(xb[i]));
    }
#undef STORE
}

void cl_act_grad_row(float *g, const float *x, size_t n, cl_act act) {
#define STORE(at, k) for (size_t j = 0; j < (size_t)(k); j++) g[(at) + j] *= yb[j]
    switch (act) {
    case CL_ACT_GELU_TANH: ACT_BLOCKS(gelu_tanh_grad(xb[i])); break;
    case CL_ACT_RELU:
        for (size_t i = 0; i < n; i++) g[i] *= x[i] > 0.0f ? 1.0f : 0.0f;
        break;
    default: ACT_BLOCKS(gelu_erf_grad(xb[i]));
    }
#undef STORE
}

/* e[0..n) = exp(e[0..n) - mx), blocks as above; returns the sum, accumulated in index order */
static float exp_shift_row(float *e, size_t n, float mx) {
    const float *x = e;
#define STORE(at, k) memcpy(e + (at), yb, (k) * sizeof(float))
    ACT_BLOCKS(expf(xb[i] - mx));
#undef STORE
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) sum += e[i];
    return sum;
}

/* scalar forms through the same vector functions, so they equal the fused kernels bit for bit */
float cl_gelu(float x, cl_act act) {
    float y;
    cl_act_row(&y, &x, 1, act);
    return y;
}

float cl_gelu_grad(float x, cl_act act) {
    float g = 1.0f;
    cl_act_grad_row(&g, &x, 1, act);
    return g;
}

#define ACT_CHUNK 4096
void cl_act_forward(float *out, const float *inp, size_t n, cl_act act) {
    size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        size_t a = c * ACT_CHUNK, len = n - a < ACT_CHUNK ? n - a : ACT_CHUNK;
        cl_act_row(out + a, inp + a, len, act);
    }
}

void cl_act_grad_mul(float *g, const float *inp, size_t n, cl_act act) {
    size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        size_t a = c * ACT_CHUNK, len = n - a < ACT_CHUNK ? n - a : ACT_CHUNK;
        cl_act_grad_row(g + a, inp + a, len, act);
    }
}

void cl_act_backward(float *dinp, const float *dout, const float *inp, size_t n, cl_act act) {
    size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        size_t a = c * ACT_CHUNK, len = n - a < ACT_CHUNK ? n - a : ACT_CHUNK;
        float g[ACT_CHUNK];
        memcpy(g, dout + a, len * sizeof(float));
        cl_act_grad_row(g, inp + a, len, act);
        for (size_t i = 0; i < len; i++) dinp[a + i] += g[i];
    }
}

void cl_bias_act_forward(float *out, float *x, const float *bias, int N, int C, cl_act act) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *xr = x + (size_t)n * C, *o = out + (size_t)n * C;
        if (bias)
#pragma omp simd
            for (int i = 0; i < C; i++) xr[i] += bias[i];
        cl_act_row(o, xr, (size_t)C, act);
    }
}

void cl_tanh_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void cl_tanh_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += (1.0f - out[i] * out[i]) * dout[i];
}

/* ---- attention -------------------------------------------------------------------------------------------- */
void cl_rel_bias_table(float *relb, const float *w, int T, int NH, int buckets, int max_distance) {
    const int W = 2 * T - 1;
    for (int d = -(T - 1); d <= T - 1; d++) {
        const int bk = cl_rel_bucket(d, buckets, max_distance);
        for (int h = 0; h < NH; h++) relb[(size_t)h * W + d + T - 1] = w[(size_t)bk * NH + h];
    }
}

/* One head's probabilities P (T, T): softmax(q k^T scale + bias) over the first L keys, 0 past them. The forward
 * and the backward that recomputes them (att == NULL) both run this, so both see the same bits. relb: this head's
 * row of the bias table (2T - 1), or NULL. */
static void att_probs(float *P, const float *q, const float *k, const float *relb, int L, int T, int C, int HS,
                      float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, HS, scale, q, C, k, C, 0.0f, P, T);
    for (int i = 0; i < T; i++) {
        float *row = P + (size_t)i * T;
        if (relb) {
            const float *br = relb + (T - 1 - i); /* br[j]: key j of query i */
            for (int j = 0; j < L; j++) row[j] += br[j];
        }
        float mx = row[0];
        for (int j = 1; j < L; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = exp_shift_row(row, (size_t)L, mx);
        float inv = 1.0f / sum;
        for (int j = 0; j < L; j++) row[j] *= inv;
        for (int j = L; j < T; j++) row[j] = 0.0f;
    }
}

void cl_attention_forward(float *out, float *att, float *scratch, const float *q, const float *k, const float *v,
                          const float *relb, const int32_t *len, int B, int T, int NH, int HS,
                          const cl_dropout *drop, int nthreads) {
    const int C = NH * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    const cl_dropout_plan dp = cl_dropout_plan_of(drop);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH, L = len[b];
        float *tmp = scratch ? scratch + (size_t)omp_get_thread_num() * T * T : NULL;
        float *P = att ? att + (size_t)bh * T * T : tmp;
        const size_t off = (size_t)b * T * C + (size_t)h * HS;
        att_probs(P, q + off, k + off, relb ? relb + (size_t)h * (2 * T - 1) : NULL, L, T, C, HS, scale);
        const float *Pd = P;
        if (dp.on) {
            float *D = P == tmp ? P : tmp; /* inference: drop in place; training: keep att pre-dropout */
            const uint64_t base = (uint64_t)bh * T * T;
            for (int i = 0; i < T; i++)
                for (int j = 0; j < L; j++) {
                    uint64_t e = base + (uint64_t)i * T + j;
                    D[(size_t)i * T + j] = drop_keep(dp.key, dp.thr, e) ? P[(size_t)i * T + j] * dp.scale : 0.0f;
                }
            Pd = D;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, L, 1.0f, Pd, T, v + off, C, 0.0f, out + off, C);
    }
}

void cl_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                           const float *k, const float *v, const float *att, const float *relb, const int32_t *len,
                           int B, int T, int NH, int HS, const cl_dropout *drop, int nthreads) {
    const int C = NH * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    const cl_dropout_plan dp = cl_dropout_plan_of(drop);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH, L = len[b];
        float *dP = scratch + (size_t)omp_get_thread_num() * (att ? 2 : 3) * T * T;
        float *Pd = dP + (size_t)T * T;
        const size_t off = (size_t)b * T * C + (size_t)h * HS;
        const float *P = att ? att + (size_t)bh * T * T : Pd + (size_t)T * T;
        if (!att) att_probs(Pd + (size_t)T * T, q + off, k + off, relb ? relb + (size_t)h * (2 * T - 1) : NULL, L, T, C,
                            HS, scale);
        const uint64_t base = (uint64_t)bh * T * T;
        if (dp.on) {
            for (int i = 0; i < T; i++)
                for (int j = 0; j < L; j++) {
                    uint64_t e = base + (uint64_t)i * T + j;
                    Pd[(size_t)i * T + j] = drop_keep(dp.key, dp.thr, e) ? P[(size_t)i * T + j] * dp.scale : 0.0f;
                }
        }
        /* dPd (T, L) = dout_bh (T, HS) v_bh^T ; dv_bh (L, HS) += Pd^T dout_bh */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, HS, 1.0f, dout + off, C, v + off, C, 0.0f, dP, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, HS, T, 1.0f, dp.on ? Pd : P, T, dout + off, C, 1.0f,
                    dv + off, C);
        /* through dropout and softmax: dS = P * (dP - sum_j P dP) * scale */
        for (int i = 0; i < T; i++) {
            float *g = dP + (size_t)i * T;
            const float *p = P + (size_t)i * T;
            if (dp.on) {
                for (int j = 0; j < L; j++)
                    g[j] = drop_keep(dp.key, dp.thr, base + (uint64_t)i * T + j) ? g[j] * dp.scale : 0.0f;
            }
            float dot = 0.0f;
            for (int j = 0; j < L; j++) dot += p[j] * g[j];
            for (int j = 0; j < L; j++) g[j] = p[j] * (g[j] - dot) * scale;
        }
        /* dq_bh (T, HS) += dS k_bh ; dk_bh (L, HS) += dS^T q_bh */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, L, 1.0f, dP, T, k + off, C, 1.0f, dq + off, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, HS, T, 1.0f, dP, T, q + off, C, 1.0f, dk + off, C);
    }
}

/* ---- losses ----------------------------------------------------------------------------------------------- */
double cl_crossentropy_forward_backward(float *dlogits, const float *logits, const int32_t *labels, int B, int L,
                                        float scale) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * L;
        double mx = z[0];
        for (int j = 1; j < L; j++) mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < L; j++) sum += exp(z[j] - mx);
        double lse = mx + log(sum);
        total += lse - z[labels[b]];
        if (dlogits)
            for (int j = 0; j < L; j++)
                dlogits[(size_t)b * L + j] +=
                    (float)((exp(z[j] - lse) - (j == labels[b] ? 1.0 : 0.0)) * scale / B);
    }
    return total / B;
}

double cl_bce_logits_forward_backward(float *dlogits, const float *logits, const float *targets, size_t n,
                                      float scale) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = logits[i], y = targets[i];
        total += (x > 0 ? x : 0) - x * y + log1p(exp(-fabs(x)));
        if (dlogits) {
            double sg = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
            dlogits[i] += (float)((sg - y) * scale / (double)n);
        }
    }
    return n ? total / (double)n : NAN;
}

double cl_mse_forward_backward(float *dlogits, const float *logits, const float *targets, int B, float scale) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        double d = (double)logits[b] - targets[b];
        total += d * d;
        if (dlogits) dlogits[b] += (float)(2.0 * d * scale / B);
    }
    return total / B;
}
