/* LoRA (METHODS.md 1, PEFT semantics) and the low-rank core every method uses:
 *   U  (T, r)     = xs A^T,            xs = drop(x) in training (inverted dropout, p = lora_dropout), else x
 *   Ud (T, r)     = U * diag           (diag: SaLoRA gates / AdaLoRA E; LoRA, CondLoRA: ones)
 *   y  (T, d_out) += s * Ud B^T
 * Backward (G = dy): dB += s G^T Ud; GUd = s G B; ddiag = colsum(GUd * U); GU = GUd * diag; dA += GU^T xs;
 * dx += drop'(GU A). U and xs are recomputed in backward from the input the encoder keeps alive (the dropout mask
 * is a pure function of (seed, layer, module, element)), so nothing per module is stored between the passes. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "adapters/adapter_impl.h"

/* site of the dropout mask of (layer, module) */
static uint64_t drop_site(const cl_amod *md) { return 0x100000ull + (uint64_t)md->layer * CL_MOD_COUNT + md->m; }

static void dropout_x(const cl_adapter *ad, const cl_amod *md, const float *x, float *xs, int T) {
    float p = ad->o.dropout, sc = 1.0f / (1.0f - p);
    uint64_t site = drop_site(md);
    size_t n = (size_t)T * md->d_in;
    const uint64_t off = ad->row0 * (uint64_t)ad->S * (uint64_t)md->d_in; /* element 0 in the whole batch */
    for (size_t i = 0; i < n; i++) xs[i] = cl_ad_uniform(ad->seed, site, off + i) >= p ? x[i] * sc : 0.0f;
}

void cl_lowrank_forward(cl_adapter *ad, cl_amod *md, const float *x, float *y, int T, int train) {
    int r = md->r, din = md->d_in, dout = md->d_out;
    int drop = train && ad->o.dropout > 0;
    float *ws = cl_ad_scratch(ad, (size_t)T * r + (drop ? (size_t)T * din : 0));
    if (!ws) return;
    float *U = ws, *xs = ws + (size_t)T * r;
    const float *xin = x;
    if (drop) {
        dropout_x(ad, md, x, xs, T);
        xin = xs;
    }
    const float *diag = ad->vt->diag ? ad->vt->diag(ad, md, train) : NULL;
    /* U (T, r) = xin (T, din) A^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, r, din, 1.0f, xin, din, md->A, din, 0.0f, U, r);
    if (diag)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < r; i++) U[(size_t)t * r + i] *= diag[i];
    /* y (T, dout) += s U B^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, dout, r, md->s, U, r, md->B, r, 1.0f, y, dout);
    if (ad->vt->extra_fwd) ad->vt->extra_fwd(ad, md, x, y, T);
}

void cl_lowrank_backward(cl_adapter *ad, cl_amod *md, const float *x, const float *dy, float *dx, int T) {
    int r = md->r, din = md->d_in, dout = md->d_out;
    int drop = ad->o.dropout > 0;
    float *ws = cl_ad_scratch(ad, 3 * (size_t)T * r + (drop ? (size_t)T * din : 0));
    if (!ws) return;
    float *U = ws, *Ud = ws + (size_t)T * r, *GU = ws + 2 * (size_t)T * r, *xs = ws + 3 * (size_t)T * r;
    const float *xin = x;
    if (drop) {
        dropout_x(ad, md, x, xs, T);
        xin = xs;
    }
    /* the diag of the forward (SaLoRA keeps the sampled gates of the last training forward) */
    const float *diag = ad->vt->diag ? (md->z ? md->z : md->E) : NULL;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, r, din, 1.0f, xin, din, md->A, din, 0.0f, U, r);
    const float *Uuse = U;
    if (diag) {
        for (size_t k = 0; k < (size_t)T * r; k++) Ud[k] = U[k] * diag[k % r];
        Uuse = Ud;
    }
    /* dB (dout, r) += s dy^T Ud */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dout, r, T, md->s, dy, dout, Uuse, r, 1.0f, md->dB, r);
    /* GU (T, r) = s dy B */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, dout, md->s, dy, dout, md->B, r, 0.0f, GU, r);
    if (diag) {
        double gd[r];
        for (int i = 0; i < r; i++) gd[i] = 0;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < r; i++) gd[i] += (double)GU[(size_t)t * r + i] * U[(size_t)t * r + i];
        float g[r];
        for (int i = 0; i < r; i++) g[i] = (float)gd[i];
        ad->vt->diag_grad(ad, md, g);
        for (size_t k = 0; k < (size_t)T * r; k++) GU[k] *= diag[k % r];
    }
    /* dA (r, din) += GU^T xin */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, din, T, 1.0f, GU, r, xin, din, 1.0f, md->dA, din);
    /* dx (T, din) += drop'(GU A) */
    if (drop) {
        float p = ad->o.dropout, sc = 1.0f / (1.0f - p);
        uint64_t site = drop_site(md);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, din, r, 1.0f, GU, r, md->A, din, 0.0f, xs, din);
        size_t n = (size_t)T * din;
        const uint64_t off = ad->row0 * (uint64_t)ad->S * (uint64_t)din;
        for (size_t i = 0; i < n; i++)
            if (cl_ad_uniform(ad->seed, site, off + i) >= p) dx[i] += xs[i] * sc;
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, din, r, 1.0f, GU, r, md->A, din, 1.0f, dx, din);
    }
    if (ad->vt->backward_fold) ad->vt->backward_fold(ad, md);
    if (ad->vt->extra_bwd) ad->vt->extra_bwd(ad, md, x, dy, dx, T);
}

int cl_lowrank_delta(cl_adapter *ad, cl_amod *md, float *out, float beta) {
    int r = md->r, din = md->d_in, dout = md->d_out;
    float *BD = cl_ad_scratch(ad, (size_t)dout * r);
    if (!BD) return -1;
    const float *diag = ad->vt->diag ? ad->vt->diag(ad, md, 0) : NULL;
    for (int o = 0; o < dout; o++)
        for (int i = 0; i < r; i++) BD[(size_t)o * r + i] = md->B[(size_t)o * r + i] * (diag ? diag[i] : 1.0f);
    /* out (dout, din) = s BD A + beta out */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dout, din, r, md->s, BD, r, md->A, din, beta, out, din);
    return 0;
}

double cl_orth_reg(const float *A, const float *B, float *dA, float *dB, int r, int d_in, int d_out, int squared,
                   float wscale, int *nterms) {
    /* P = A A^T - I (r, r), Q = B^T B - I (r, r), computed in double (r is small) */
    double P[r * r], Q[r * r], val = 0;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            double a = 0, b = 0;
            for (int k = 0; k < d_in; k++) a += (double)A[(size_t)i * d_in + k] * A[(size_t)j * d_in + k];
            for (int k = 0; k < d_out; k++) b += (double)B[(size_t)k * r + i] * B[(size_t)k * r + j];
            P[i * r + j] = a - (i == j);
            Q[i * r + j] = b - (i == j);
        }
    double np = 0, nq = 0;
    for (int k = 0; k < r * r; k++) np += P[k] * P[k], nq += Q[k] * Q[k];
    /* squared: f = ||P||^2, df/dA = 4 P A; plain: f = ||P||, df/dA = 2 P A / ||P|| (0 when ||P|| = 0) */
    double ca, cb;
    if (squared) {
        val = np + nq;
        ca = cb = 4.0;
    } else {
        np = sqrt(np), nq = sqrt(nq);
        val = np + nq;
        ca = np > 0 ? 2.0 / np : 0.0;
        cb = nq > 0 ? 2.0 / nq : 0.0;
    }
    if (wscale != 0) {
        for (int i = 0; i < r; i++)
            for (int k = 0; k < d_in; k++) {
                double g = 0;
                for (int j = 0; j < r; j++) g += P[i * r + j] * A[(size_t)j * d_in + k];
                dA[(size_t)i * d_in + k] += (float)(wscale * ca * g);
            }
        for (int k = 0; k < d_out; k++)
            for (int i = 0; i < r; i++) {
                double g = 0;
                for (int j = 0; j < r; j++) g += B[(size_t)k * r + j] * Q[j * r + i];
                dB[(size_t)k * r + i] += (float)(wscale * cb * g);
            }
    }
    if (nterms) *nterms += 2;
    return val;
}

/* ---- LoRA ---------------------------------------------------------------------------------------------------- */
static int lora_reg(cl_adapter *ad, cl_params *p, cl_error *err) {
    return cl_ad_register_ab(ad, p, "lora_A.weight", "lora_B.weight", err);
}
static int lora_bind(cl_adapter *ad, cl_error *err) {
    cl_ad_bind_ab(ad);
    return 0;
}
/* PEFT: nn.init.kaiming_uniform_(A, a=sqrt(5)) -> bound = sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(d_in); B = 0 */
static void lora_init(cl_adapter *ad, cl_rng *rng) {
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        float bound = 1.0f / sqrtf((float)md->d_in);
        for (size_t i = 0; i < (size_t)md->r * md->d_in; i++)
            md->A[i] = (2.0f * cl_rng_uniformf(rng) - 1.0f) * bound;
        memset(md->B, 0, (size_t)md->d_out * md->r * sizeof(float));
    }
}
static int lora_export(cl_adapter *ad, cl_amod *md, cl_tensor_cb cb, void *user, cl_error *err) {
    return cl_ad_export_ab(ad, md, "lora_A.weight", "lora_B.weight", md->A, md->B, md->r, cb, user, err);
}

const cl_adapter_vt cl_lora_vt = {
    .reg = lora_reg, .bind = lora_bind, .init = lora_init, .export_mod = lora_export,
};
