/* AdaLoRA (METHODS.md 6) with PEFT 0.10's definitions (peft/tuners/adalora/{layer,model}.py):
 *   delta = drop(x) (A * E)^T B^T * scaling / (ranknum + 1e-5), scaling = lora_alpha, ranknum = init_r;
 *   A (r, d_in), B (d_out, r), E (r, 1) ~ N(0, 0.02) (reset_lora_parameters);
 *   loss += orth_reg_weight * mean over every A and B of ||cov - I||_F, cov = A A^T | B^T B (AdaLoraModel.forward);
 *   RankAllocator, run by cl_adapter_post_step(step) = AdaLoraModel.update_and_allocate(global_step) (after the
 *   optimizer step, before zero_grad):
 *     ipt = |p * grad|; ema_ipt = b1 ema_ipt + (1 - b1) ipt; ema_unc = b2 ema_unc + (1 - b2) |ipt - ema_ipt|
 *       (for A, B and E; only while step < total - tfinal)
 *     budget: step <= tinit: init_bgt (no mask); step > total - tfinal: target_bgt (mask); else
 *       int((init_bgt - target_bgt) (1 - (step - tinit) / (total - tfinal - tinit))^3 + target_bgt), mask when
 *       step % deltaT == 0; init_bgt = r * modules, target_bgt = target_r * modules
 *     mask_to_budget: score_i = s(E)_i + mean_j s(A)_ij + mean_o s(B)_oi, s = ema_ipt * ema_unc; threshold = the
 *       (init_bgt - budget)-th smallest score over all modules (torch.kthvalue); E_i = 0 where score_i <= threshold
 *     at step == total - tfinal: forced mask, rank pattern kept, EMAs reset; later steps re-apply the pattern. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "adapters/adapter_impl.h"

typedef struct {
    float *ema_ipt, *ema_unc;   /* same layout as cl_params (only adapter tensors used) */
    unsigned char *pattern;     /* n_mods * r, 1 = kept */
    int have_pattern;
    int budget;
    float *scores;              /* n_mods * r */
} ada_state;

static int ada_reg(cl_adapter *ad, cl_params *p, cl_error *err) {
    ada_state *s = calloc(1, sizeof *s);
    if (!s) return cl_errf(err, CL_ENOMEM, "adalora: out of memory");
    ad->priv = s;
    if (cl_ad_register_ab(ad, p, "lora_A", "lora_B", err)) return -1;
    char path[CL_PARAM_NAME_MAX - 32], name[CL_PARAM_NAME_MAX];
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        cl_adapter_module_path(ad->model, md->layer, md->m, path, sizeof path);
        snprintf(name, sizeof name, "%s.lora_E", path);
        int64_t sh[2] = {md->r, 1};
        if (cl_params_add(p, name, 2, sh, CL_PART_ADAPTER, 1, &md->offE, err)) return -1;
    }
    s->budget = ad->o.r * ad->n_mods;
    return 0;
}

static int ada_bind(cl_adapter *ad, cl_error *err) {
    ada_state *s = ad->priv;
    cl_ad_bind_ab(ad);
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        md->E = ad->p->param + md->offE, md->dE = ad->p->grad + md->offE;
    }
    cl_free(s->ema_ipt);
    free(s->pattern);
    free(s->scores);
    s->ema_ipt = cl_zalloc(2 * ad->p->numel, sizeof(float), err);
    s->pattern = calloc((size_t)ad->n_mods * ad->o.r, 1);
    s->scores = calloc((size_t)ad->n_mods * ad->o.r, sizeof(float));
    if (!s->ema_ipt || !s->pattern || !s->scores) return cl_errf(err, CL_ENOMEM, "adalora: importance scores");
    s->ema_unc = s->ema_ipt + ad->p->numel;
    s->have_pattern = 0;
    return 0;
}

static void ada_init(cl_adapter *ad, cl_rng *rng) {
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        for (size_t i = 0; i < (size_t)md->r * md->d_in; i++) md->A[i] = 0.02f * (float)cl_rng_normal(rng);
        for (size_t i = 0; i < (size_t)md->d_out * md->r; i++) md->B[i] = 0.02f * (float)cl_rng_normal(rng);
        for (int i = 0; i < md->r; i++) md->E[i] = 0.02f * (float)cl_rng_normal(rng);
    }
    ada_state *s = ad->priv;
    memset(s->ema_ipt, 0, 2 * ad->p->numel * sizeof(float));
    s->have_pattern = 0;
    s->budget = ad->o.r * ad->n_mods;
}

static const float *ada_diag(cl_adapter *ad, cl_amod *md, int train) { return md->E; }
static void ada_diag_grad(cl_adapter *ad, cl_amod *md, const float *g) {
    for (int i = 0; i < md->r; i++) md->dE[i] += g[i];
}

static double ada_extra_loss(cl_adapter *ad, float scale) {
    int n = 2 * ad->n_mods;
    float w = ad->o.ada_orth / (float)n;
    double v = 0;
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        v += cl_orth_reg(md->A, md->B, md->dA, md->dB, md->r, md->d_in, md->d_out, 0, scale * w, NULL);
    }
    return v * w;
}

int cl_adalora_schedule(const cl_adapter *ad, int64_t step, int64_t total, int *mask_ind) {
    int init_bgt = ad->o.r * ad->n_mods, target_bgt = ad->o.ada_target_r * ad->n_mods;
    int64_t tinit = ad->o.ada_tinit, tfinal = ad->o.ada_tfinal;
    if (step <= tinit) {
        *mask_ind = 0;
        return init_bgt;
    }
    if (step > total - tfinal) {
        *mask_ind = 1;
        return target_bgt;
    }
    double mul = 1.0 - (double)(step - tinit) / (double)(total - tfinal - tinit);
    *mask_ind = step % ad->o.ada_deltaT == 0;
    return (int)((double)(init_bgt - target_bgt) * (mul * mul * mul) + target_bgt);
}

int cl_adalora_budget(const cl_adapter *ad) { return ((const ada_state *)ad->priv)->budget; }

static void update_ipt(cl_adapter *ad) {
    ada_state *s = ad->priv;
    float b1 = ad->o.ada_beta1, b2 = ad->o.ada_beta2;
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        size_t offs[3] = {md->offA, md->offB, md->offE};
        size_t ns[3] = {(size_t)md->r * md->d_in, (size_t)md->d_out * md->r, (size_t)md->r};
        for (int j = 0; j < 3; j++) {
            const float *p = ad->p->param + offs[j], *g = ad->p->grad + offs[j];
            float *ei = s->ema_ipt + offs[j], *eu = s->ema_unc + offs[j];
            for (size_t i = 0; i < ns[j]; i++) {
                float ipt = fabsf(p[i] * g[i]);
                ei[i] = b1 * ei[i] + (1 - b1) * ipt;
                eu[i] = b2 * eu[i] + (1 - b2) * fabsf(ipt - ei[i]);
            }
        }
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void mask_to_budget(cl_adapter *ad, int budget) {
    ada_state *s = ad->priv;
    int r = ad->o.r, n = ad->n_mods * r;
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        const float *iA = s->ema_ipt + md->offA, *uA = s->ema_unc + md->offA;
        const float *iB = s->ema_ipt + md->offB, *uB = s->ema_unc + md->offB;
        const float *iE = s->ema_ipt + md->offE, *uE = s->ema_unc + md->offE;
        for (int i = 0; i < r; i++) {
            double a = 0, b = 0;
            for (int j = 0; j < md->d_in; j++) a += (double)(iA[(size_t)i * md->d_in + j] * uA[(size_t)i * md->d_in + j]);
            for (int o = 0; o < md->d_out; o++) b += (double)(iB[(size_t)o * r + i] * uB[(size_t)o * r + i]);
            float fa = (float)(a / md->d_in), fb = (float)(b / md->d_out);
            s->scores[k * r + i] = iE[i] * uE[i] + (fa + fb);
        }
    }
    int kth = ad->o.r * ad->n_mods - budget;
    float thr = -INFINITY;
    if (kth > 0) {
        float *tmp = malloc((size_t)n * sizeof(float));
        if (!tmp) return;
        memcpy(tmp, s->scores, (size_t)n * sizeof(float));
        qsort(tmp, (size_t)n, sizeof(float), cmp_float);
        thr = tmp[kth - 1];
        free(tmp);
    }
    for (int k = 0; k < ad->n_mods; k++)
        for (int i = 0; i < r; i++) {
            int keep = !(s->scores[k * r + i] <= thr);
            s->pattern[k * r + i] = (unsigned char)keep;
            if (!keep) ad->mods[k].E[i] = 0.0f;
        }
    s->have_pattern = 1;
}

static void ada_post_step(cl_adapter *ad, int64_t step, int64_t total) {
    ada_state *s = ad->priv;
    int64_t tf = ad->o.ada_tfinal;
    int mask_ind;
    if (step < total - tf) {
        update_ipt(ad);
        s->budget = cl_adalora_schedule(ad, step, total, &mask_ind);
        if (mask_ind) mask_to_budget(ad, s->budget);
    } else if (step == total - tf) {
        s->budget = cl_adalora_schedule(ad, step, total, &mask_ind);
        mask_to_budget(ad, s->budget);
        memset(s->ema_ipt, 0, 2 * ad->p->numel * sizeof(float));
    } else if (s->have_pattern) {
        for (int k = 0; k < ad->n_mods; k++)
            for (int i = 0; i < ad->o.r; i++)
                if (!s->pattern[k * ad->o.r + i]) ad->mods[k].E[i] = 0.0f;
    }
}

static int ada_rank(const cl_adapter *ad, const cl_amod *md) {
    int n = 0;
    for (int i = 0; i < md->r; i++) n += md->E[i] != 0.0f;
    return n;
}

/* a plain PEFT LoRA (any LoRA user can load it): the components with E_i != 0 only, A rows times E_i, B columns
 * times s / s' (s = alpha / (init_r + 1e-5) as PEFT's AdaLoRA, s' = alpha / r' for the kept rank r'), so LoRA
 * with rank_pattern r' and the same lora_alpha gives exactly s B diag(E) A */
static int ada_export(cl_adapter *ad, cl_amod *md, cl_tensor_cb cb, void *user, cl_error *err) {
    int rk = ada_rank(ad, md);
    if (rk == 0) return 0;
    float snew = ad->o.alpha / (float)rk;
    float *A = malloc((size_t)rk * md->d_in * sizeof(float)), *B = malloc((size_t)rk * md->d_out * sizeof(float));
    if (!A || !B) {
        free(A), free(B);
        return cl_errf(err, CL_ENOMEM, "adalora export: out of memory");
    }
    int j = 0;
    for (int i = 0; i < md->r; i++) {
        if (md->E[i] == 0.0f) continue;
        for (int c = 0; c < md->d_in; c++) A[(size_t)j * md->d_in + c] = md->A[(size_t)i * md->d_in + c] * md->E[i];
        for (int o = 0; o < md->d_out; o++) B[(size_t)o * rk + j] = md->B[(size_t)o * md->r + i] * (md->s / snew);
        j++;
    }
    int rc = cl_ad_export_ab(ad, md, "lora_A.weight", "lora_B.weight", A, B, rk, cb, user, err);
    free(A), free(B);
    return rc;
}

static void ada_free(cl_adapter *ad) {
    ada_state *s = ad->priv;
    if (!s) return;
    cl_free(s->ema_ipt);
    free(s->pattern);
    free(s->scores);
    free(s);
    ad->priv = NULL;
}

/* EMAs of every scalar of cl_params (2 numel), the rank pattern (n_mods r), have_pattern, budget */
static size_t ada_state_n(const cl_adapter *ad) { return 2 * ad->p->numel + (size_t)ad->n_mods * ad->o.r + 2; }
static void ada_state_get(const cl_adapter *ad, double *out) {
    const ada_state *s = ad->priv;
    size_t n = 2 * ad->p->numel, np = (size_t)ad->n_mods * ad->o.r;
    for (size_t i = 0; i < n; i++) out[i] = s->ema_ipt[i]; /* ema_unc follows ema_ipt in one allocation */
    for (size_t i = 0; i < np; i++) out[n + i] = s->pattern[i];
    out[n + np] = s->have_pattern, out[n + np + 1] = s->budget;
}
static void ada_state_set(cl_adapter *ad, const double *in) {
    ada_state *s = ad->priv;
    size_t n = 2 * ad->p->numel, np = (size_t)ad->n_mods * ad->o.r;
    for (size_t i = 0; i < n; i++) s->ema_ipt[i] = (float)in[i];
    for (size_t i = 0; i < np; i++) s->pattern[i] = in[n + i] != 0;
    s->have_pattern = in[n + np] != 0, s->budget = (int)in[n + np + 1];
}

const cl_adapter_vt cl_adalora_vt = {
    .reg = ada_reg, .bind = ada_bind, .init = ada_init, .diag = ada_diag, .diag_grad = ada_diag_grad,
    .extra_loss = ada_extra_loss, .post_step = ada_post_step, .export_mod = ada_export, .rank = ada_rank,
    .free = ada_free, .state_n = ada_state_n, .state_get = ada_state_get, .state_set = ada_state_set,
};
