/* CondLoRA [P1] (METHODS.md 2). One pair ThA_m, ThB_m (r, d) per module type, shared by every layer:
 *   A_l = ThA W_l^T (r, d)      B_l = W_l ThB^T (d, r)   (released code; paper option: B_l = W_l^T ThB^T)
 * materialised once per optimizer step (cl_adapter_materialise, 2 d^2 r multiply-adds per layer and module), then the
 * low-rank core of lora.c runs on (A_l, B_l). Backward: the core accumulates dA_l, dB_l into one scratch pair, which
 * is folded into the shared maps immediately after each layer's backward (no "finish" call needed):
 *   dThA += dA_l W_l        dThB += dB_l^T W_l   (paper form: dB_l^T W_l^T)
 * Variants of the released code: use_x type1 adds lambda_x Thx (r, d, zero-initialised, shared by all modules and
 * layers) to every A_l (dThx += lambda_x dA_l); type2 adds y[b,t] += lambda_x s (x[b,t] . c_b) w with c_b = x[b,0]
 * (the module's input at token 0 of sequence b) and one zero-initialised vector w (d) shared by all modules/layers.
 * Only square targets are accepted (cl_adapter_create refuses the others with a message naming target_modules). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "adapters/adapter_impl.h"

typedef struct {
    size_t offA[CL_MOD_COUNT], offB[CL_MOD_COUNT], offX, offW;
    int d[CL_MOD_COUNT];
    float *mat;          /* materialised A_l, B_l of every module (owned) */
    float *gA, *gB;      /* per-layer gradient scratch (r, d) and (d, r), zero between folds */
} cond_state;

static cond_state *st(cl_adapter *ad) { return ad->priv; }

static int cond_reg(cl_adapter *ad, cl_params *p, cl_error *err) {
    cond_state *s = calloc(1, sizeof *s);
    if (!s) return cl_errf(err, CL_ENOMEM, "condlora: out of memory");
    ad->priv = s;
    char name[CL_PARAM_NAME_MAX];
    int dx = 0;
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        if (!ad->type_used[m]) continue;
        int d = 0;
        for (int k = 0; k < ad->n_mods; k++)
            if (ad->mods[k].m == (cl_module)m) d = ad->mods[k].d_in;
        s->d[m] = d;
        if (dx && d != dx && ad->o.condlora_use_x)
            return cl_errf(err, CL_EUNSUP, "condlora_use_x: the shared Thx / w needs equal widths of all targets");
        dx = d;
        int64_t sh[2] = {ad->o.r, d};
        snprintf(name, sizeof name, "condlora.%s.theta_A", cl_module_names[m]);
        if (cl_params_add(p, name, 2, sh, CL_PART_ADAPTER, 1, &s->offA[m], err)) return -1;
        snprintf(name, sizeof name, "condlora.%s.theta_B", cl_module_names[m]);
        if (cl_params_add(p, name, 2, sh, CL_PART_ADAPTER, 1, &s->offB[m], err)) return -1;
    }
    if (ad->o.condlora_use_x == 1) {
        int64_t sh[2] = {ad->o.r, dx};
        if (cl_params_add(p, "condlora.theta_x", 2, sh, CL_PART_ADAPTER, 1, &s->offX, err)) return -1;
    } else if (ad->o.condlora_use_x == 2) {
        int64_t sh = dx;
        if (cl_params_add(p, "condlora.w_x", 1, &sh, CL_PART_ADAPTER, 1, &s->offW, err)) return -1;
    }
    return 0;
}

static int cond_bind(cl_adapter *ad, cl_error *err) {
    cond_state *s = st(ad);
    size_t tot = 0, dmax = 0;
    for (int k = 0; k < ad->n_mods; k++) {
        tot += 2 * (size_t)ad->mods[k].r * ad->mods[k].d_in;
        if ((size_t)ad->mods[k].d_in > dmax) dmax = (size_t)ad->mods[k].d_in;
    }
    cl_free(s->mat);
    s->mat = cl_zalloc(tot + 2 * (size_t)ad->o.r * dmax, sizeof(float), err);
    if (!s->mat) return cl_err_prefix(err, "condlora: materialised A_l, B_l");
    s->gA = s->mat + tot;
    s->gB = s->gA + (size_t)ad->o.r * dmax;
    float *q = s->mat;
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        md->A = q, q += (size_t)md->r * md->d_in;
        md->B = q, q += (size_t)md->r * md->d_in;
        md->dA = s->gA, md->dB = s->gB;
    }
    return 0;
}

static void cond_init(cl_adapter *ad, cl_rng *rng) {
    cond_state *s = st(ad);
    cl_params *p = ad->p;
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        if (!ad->type_used[m]) continue;
        size_t n = (size_t)ad->o.r * s->d[m];
        float bound = 1.0f / sqrtf((float)s->d[m]); /* kaiming_uniform(a = sqrt 5) of an (r, d) weight */
        float *A = p->param + s->offA[m];
        for (size_t i = 0; i < n; i++) A[i] = (2.0f * cl_rng_uniformf(rng) - 1.0f) * bound;
        memset(p->param + s->offB[m], 0, n * sizeof(float));
    }
    if (ad->o.condlora_use_x == 1) {
        const cl_param_tensor *t = cl_params_find(p, "condlora.theta_x");
        memset(p->param + t->offset, 0, t->numel * sizeof(float));
    } else if (ad->o.condlora_use_x == 2) {
        const cl_param_tensor *t = cl_params_find(p, "condlora.w_x");
        memset(p->param + t->offset, 0, t->numel * sizeof(float));
    }
}

static void cond_materialise(cl_adapter *ad) {
    cond_state *s = st(ad);
    const float *P = ad->p->param;
    int paper = ad->o.condlora_paper;
#pragma omp parallel for schedule(dynamic, 1) if (ad->n_mods > 1)
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        int d = md->d_in, r = md->r;
        const float *W = cl_ad_wbase(ad, md), *ThA = P + s->offA[md->m], *ThB = P + s->offB[md->m];
        /* A_l (r, d) = ThA (r, d) W^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, d, d, 1.0f, ThA, d, W, d, 0.0f, md->A, d);
        if (ad->o.condlora_use_x == 1) {
            const float *Thx = P + s->offX;
            float lx = ad->o.condlora_lambda_x;
            for (size_t i = 0; i < (size_t)r * d; i++) md->A[i] += lx * Thx[i];
        }
        /* B_l (d, r) = W ThB^T (code) | W^T ThB^T (paper) */
        cblas_sgemm(CblasRowMajor, paper ? CblasTrans : CblasNoTrans, CblasTrans, d, r, d, 1.0f, W, d, ThB, d, 0.0f,
                    md->B, r);
    }
}

static void cond_fold(cl_adapter *ad, cl_amod *md) {
    cond_state *s = st(ad);
    float *G = ad->p->grad;
    int d = md->d_in, r = md->r;
    const float *W = cl_ad_wbase(ad, md);
    /* dThA (r, d) += dA_l (r, d) W */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, d, d, 1.0f, md->dA, d, W, d, 1.0f, G + s->offA[md->m],
                d);
    /* dThB (r, d) += dB_l^T W (code) | dB_l^T W^T (paper) */
    cblas_sgemm(CblasRowMajor, CblasTrans, ad->o.condlora_paper ? CblasTrans : CblasNoTrans, r, d, d, 1.0f, md->dB, r,
                W, d, 1.0f, G + s->offB[md->m], d);
    if (ad->o.condlora_use_x == 1) {
        float *gx = G + s->offX, lx = ad->o.condlora_lambda_x;
        for (size_t i = 0; i < (size_t)r * d; i++) gx[i] += lx * md->dA[i];
    }
    memset(md->dA, 0, (size_t)r * d * sizeof(float));
    memset(md->dB, 0, (size_t)r * d * sizeof(float));
}

/* use_x type2: y[b,t] += lx s (x[b,t] . c_b) w, c_b = x[b,0] */
static int seq_len(const cl_adapter *ad, int T) { return ad->S > 0 && T % ad->S == 0 ? ad->S : T; }

static void cond_extra_fwd(cl_adapter *ad, cl_amod *md, const float *x, float *y, int T) {
    if (ad->o.condlora_use_x != 2) return;
    const float *w = ad->p->param + st(ad)->offW;
    int d = md->d_in, S = seq_len(ad, T);
    float c = ad->o.condlora_lambda_x * ad->s;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * d, *cb = x + (size_t)(t / S) * S * d;
        double a = 0;
        for (int i = 0; i < d; i++) a += (double)xt[i] * cb[i];
        float f = c * (float)a;
        for (int i = 0; i < d; i++) y[(size_t)t * d + i] += f * w[i];
    }
}

static void cond_extra_bwd(cl_adapter *ad, cl_amod *md, const float *x, const float *dy, float *dx, int T) {
    if (ad->o.condlora_use_x != 2) return;
    const float *w = ad->p->param + st(ad)->offW;
    float *gw = ad->p->grad + st(ad)->offW;
    int d = md->d_in, S = seq_len(ad, T);
    float c = ad->o.condlora_lambda_x * ad->s;
    for (int b = 0; b < T / S; b++) {
        const float *cb = x + (size_t)b * S * d;
        /* dc accumulates into dx[b, 0] after the loop (cb is read-only here) */
        double dc[d];
        for (int i = 0; i < d; i++) dc[i] = 0;
        for (int t = b * S; t < (b + 1) * S; t++) {
            const float *xt = x + (size_t)t * d, *g = dy + (size_t)t * d;
            double a = 0, gwt = 0;
            for (int i = 0; i < d; i++) a += (double)xt[i] * cb[i], gwt += (double)g[i] * w[i];
            for (int i = 0; i < d; i++) {
                gw[i] += c * (float)a * g[i];
                dx[(size_t)t * d + i] += c * (float)gwt * cb[i];
                dc[i] += c * gwt * xt[i];
            }
        }
        for (int i = 0; i < d; i++) dx[(size_t)b * S * d + i] += (float)dc[i];
    }
}

static int cond_export(cl_adapter *ad, cl_amod *md, cl_tensor_cb cb, void *user, cl_error *err) {
    if (ad->o.condlora_use_x == 2)
        return cl_errf(err, CL_EUNSUP, "condlora_use_x: the type2 variant has no PEFT LoRA equivalent to export");
    return cl_ad_export_ab(ad, md, "lora_A.weight", "lora_B.weight", md->A, md->B, md->r, cb, user, err);
}

static void cond_free(cl_adapter *ad) {
    cond_state *s = st(ad);
    if (!s) return;
    cl_free(s->mat);
    free(s);
    ad->priv = NULL;
}

const cl_adapter_vt cl_condlora_vt = {
    .reg = cond_reg, .bind = cond_bind, .init = cond_init, .materialise = cond_materialise,
    .backward_fold = cond_fold, .extra_fwd = cond_extra_fwd, .extra_bwd = cond_extra_bwd,
    .export_mod = cond_export, .free = cond_free,
};
