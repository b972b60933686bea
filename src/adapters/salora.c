/* SaLoRA (METHODS.md 5): dW = s B diag(z) A with one hard-concrete gate z_i per rank component [L0].
 * Constants (also in adapter.h):
 *   HC_GAMMA = -0.1, HC_ZETA = 1.1, HC_BETA = 2/3   stretch interval and temperature of the hard-concrete gate
 *   HC_EPS = 1e-6                                    u ~ U(eps, 1 - eps), keeps log u, log(1 - u) finite
 *   training:   g = sigmoid((log u - log(1 - u) + log_alpha) / beta),  z = clamp(g (zeta - gamma) + gamma, 0, 1)
 *   evaluation: g = sigmoid(log_alpha),                                  z = clamp(g (zeta - gamma) + gamma, 0, 1)
 *   u is a pure function of (batch seed, layer, module, component), so backward and finite differences see the
 *   same gates. P(z_i != 0) = sigmoid(log_alpha_i - beta log(-gamma / zeta)).
 *   e = sum over all gates of P(z != 0) / (total rank)      (the expected-L0 fraction, in [0, 1])
 *   t = 1 - (1 - budget) min(1, step / (warmup total_steps)) (target fraction; budget in (0, 1])
 *   extra loss = lambda1 (e - t) + lambda2 (e - t)^2 + orth / n_modules * sum_modules (||A A^T - I||_F^2 +
 *   ||B^T B - I||_F^2); lambda1, lambda2 start at 0 and ascend in post_step by lambda_lr (e - t) and
 *   lambda_lr (e - t)^2. log_alpha starts at log_alpha_init (3.0). A components whose evaluation gate is 0 are
 *   removed at export and counted out of the learned rank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "adapters/adapter_impl.h"

#define HC_GAMMA (-0.1)
#define HC_ZETA 1.1
#define HC_BETA (2.0 / 3.0)
#define HC_EPS 1e-6

typedef struct {
    double lambda1, lambda2;
    float *gates; /* z and dz of every module (owned) */
} sal_state;

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

static int sal_reg(cl_adapter *ad, cl_params *p, cl_error *err) {
    sal_state *s = calloc(1, sizeof *s);
    if (!s) return cl_errf(err, CL_ENOMEM, "salora: out of memory");
    ad->priv = s;
    if (cl_ad_register_ab(ad, p, "lora_A.weight", "lora_B.weight", err)) return -1;
    char path[CL_PARAM_NAME_MAX - 32], name[CL_PARAM_NAME_MAX];
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        cl_adapter_module_path(ad->model, md->layer, md->m, path, sizeof path);
        snprintf(name, sizeof name, "%s.salora_log_alpha", path);
        int64_t sh = md->r;
        if (cl_params_add(p, name, 1, &sh, CL_PART_GATE, 0, &md->offE, err)) return -1;
    }
    return 0;
}

static int sal_bind(cl_adapter *ad, cl_error *err) {
    sal_state *s = ad->priv;
    cl_ad_bind_ab(ad);
    free(s->gates);
    s->gates = calloc((size_t)ad->n_mods * 2 * ad->o.r, sizeof(float));
    if (!s->gates) return cl_errf(err, CL_ENOMEM, "salora: out of memory");
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        md->E = ad->p->param + md->offE, md->dE = ad->p->grad + md->offE;
        md->z = s->gates + (size_t)k * 2 * md->r, md->dz = md->z + md->r;
    }
    return 0;
}

static void sal_init(cl_adapter *ad, cl_rng *rng) {
    cl_lora_vt.init(ad, rng); /* A kaiming-uniform, B = 0, as LoRA */
    for (int k = 0; k < ad->n_mods; k++)
        for (int i = 0; i < ad->mods[k].r; i++) ad->mods[k].E[i] = ad->o.salora_log_alpha_init;
    sal_state *s = ad->priv;
    s->lambda1 = s->lambda2 = 0;
}

static const float *sal_diag(cl_adapter *ad, cl_amod *md, int train) {
    for (int i = 0; i < md->r; i++) {
        double la = md->E[i], g, dg;
        if (train) {
            double u = cl_ad_uniform(ad->seed, 0x200000ull + (uint64_t)md->layer * CL_MOD_COUNT + md->m, (uint64_t)i);
            u = u < HC_EPS ? HC_EPS : u > 1 - HC_EPS ? 1 - HC_EPS : u;
            g = sigm((log(u) - log(1 - u) + la) / HC_BETA);
            dg = g * (1 - g) / HC_BETA;
        } else {
            g = sigm(la);
            dg = g * (1 - g);
        }
        double zp = g * (HC_ZETA - HC_GAMMA) + HC_GAMMA;
        md->z[i] = (float)(zp <= 0 ? 0 : zp >= 1 ? 1 : zp);
        md->dz[i] = (float)(zp > 0 && zp < 1 ? dg * (HC_ZETA - HC_GAMMA) : 0);
    }
    return md->z;
}

static void sal_diag_grad(cl_adapter *ad, cl_amod *md, const float *gdiag) {
    for (int i = 0; i < md->r; i++) md->dE[i] += gdiag[i] * md->dz[i];
}

static double expected_frac(const cl_adapter *ad) {
    double e = 0, R = 0, sh = HC_BETA * log(-HC_GAMMA / HC_ZETA);
    for (int k = 0; k < ad->n_mods; k++) {
        for (int i = 0; i < ad->mods[k].r; i++) e += sigm(ad->mods[k].E[i] - sh);
        R += ad->mods[k].r;
    }
    return e / R;
}

static double target_frac(const cl_adapter *ad) {
    double w = (double)ad->o.salora_warmup * (double)ad->total_steps;
    double f = w > 0 ? (double)ad->step / w : ad->total_steps > 0 ? 1.0 : 0.0; /* no post_step yet: t = 1 */
    if (f > 1) f = 1;
    return 1.0 - (1.0 - ad->o.salora_budget) * f;
}

static double sal_extra_loss(cl_adapter *ad, float scale) {
    sal_state *s = ad->priv;
    double e = expected_frac(ad), t = target_frac(ad), sh = HC_BETA * log(-HC_GAMMA / HC_ZETA), R = 0;
    for (int k = 0; k < ad->n_mods; k++) R += ad->mods[k].r;
    double lag = s->lambda1 * (e - t) + s->lambda2 * (e - t) * (e - t);
    double dl_de = s->lambda1 + 2 * s->lambda2 * (e - t);
    if (dl_de != 0)
        for (int k = 0; k < ad->n_mods; k++) {
            cl_amod *md = &ad->mods[k];
            for (int i = 0; i < md->r; i++) {
                double p = sigm(md->E[i] - sh);
                md->dE[i] += (float)(scale * dl_de * p * (1 - p) / R);
            }
        }
    double orth = 0;
    if (ad->o.salora_orth > 0) {
        float w = ad->o.salora_orth / (float)ad->n_mods;
        for (int k = 0; k < ad->n_mods; k++) {
            cl_amod *md = &ad->mods[k];
            orth += cl_orth_reg(md->A, md->B, md->dA, md->dB, md->r, md->d_in, md->d_out, 1, scale * w, NULL);
        }
        orth *= w;
    }
    return lag + orth;
}

static void sal_post_step(cl_adapter *ad, int64_t step, int64_t total) {
    sal_state *s = ad->priv;
    double e = expected_frac(ad), t = target_frac(ad);
    s->lambda1 += ad->o.salora_lambda_lr * (e - t);
    s->lambda2 += ad->o.salora_lambda_lr * (e - t) * (e - t);
}

static int sal_rank(const cl_adapter *ad, const cl_amod *md) {
    int n = 0;
    for (int i = 0; i < md->r; i++) {
        double zp = sigm(md->E[i]) * (HC_ZETA - HC_GAMMA) + HC_GAMMA;
        n += zp > 0;
    }
    return n;
}

/* kept components only: A rows, B columns times the gate and s / s' (s' = PEFT's scaling for rank r' with the same
 * lora_alpha), so a PEFT LoRA with rank_pattern r' and the same alpha reproduces dW exactly */
static int sal_export(cl_adapter *ad, cl_amod *md, cl_tensor_cb cb, void *user, cl_error *err) {
    sal_diag(ad, md, 0);
    int rk = sal_rank(ad, md);
    if (rk == 0) return 0;
    float snew = ad->o.rslora ? ad->o.alpha / sqrtf((float)rk) : ad->o.alpha / (float)rk;
    float *A = malloc((size_t)rk * md->d_in * sizeof(float)), *B = malloc((size_t)rk * md->d_out * sizeof(float));
    if (!A || !B) {
        free(A), free(B);
        return cl_errf(err, CL_ENOMEM, "salora export: out of memory");
    }
    int j = 0;
    for (int i = 0; i < md->r; i++) {
        if (!(md->z[i] > 0)) continue;
        memcpy(A + (size_t)j * md->d_in, md->A + (size_t)i * md->d_in, (size_t)md->d_in * sizeof(float));
        for (int o = 0; o < md->d_out; o++)
            B[(size_t)o * rk + j] = md->B[(size_t)o * md->r + i] * md->z[i] * (ad->s / snew);
        j++;
    }
    int rc = cl_ad_export_ab(ad, md, "lora_A.weight", "lora_B.weight", A, B, rk, cb, user, err);
    free(A), free(B);
    return rc;
}

static void sal_free(cl_adapter *ad) {
    sal_state *s = ad->priv;
    if (!s) return;
    free(s->gates);
    free(s);
    ad->priv = NULL;
}

int cl_adalora_budget(const cl_adapter *ad); /* adalora.c */

void cl_adapter_stats_get(const cl_adapter *ad, cl_adapter_stats *s) {
    memset(s, 0, sizeof *s);
    if (ad->o.method == CL_METHOD_SALORA && ad->priv && ad->p) {
        const sal_state *st = ad->priv;
        s->expected_frac = expected_frac(ad);
        s->target_frac = target_frac(ad);
        s->lambda1 = st->lambda1, s->lambda2 = st->lambda2;
    } else if (ad->o.method == CL_METHOD_ADALORA && ad->priv) {
        s->budget = cl_adalora_budget(ad);
    }
}

static size_t sal_state_n(const cl_adapter *ad) { (void)ad; return 2; }
static void sal_state_get(const cl_adapter *ad, double *out) {
    const sal_state *s = ad->priv;
    out[0] = s->lambda1, out[1] = s->lambda2;
}
static void sal_state_set(cl_adapter *ad, const double *in) {
    sal_state *s = ad->priv;
    s->lambda1 = in[0], s->lambda2 = in[1];
}

const cl_adapter_vt cl_salora_vt = {
    .reg = sal_reg, .bind = sal_bind, .init = sal_init, .diag = sal_diag, .diag_grad = sal_diag_grad,
    .extra_loss = sal_extra_loss, .post_step = sal_post_step, .export_mod = sal_export, .rank = sal_rank,
    .free = sal_free, .state_n = sal_state_n, .state_get = sal_state_get, .state_set = sal_state_set,
};
