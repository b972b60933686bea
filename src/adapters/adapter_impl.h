/* Internals shared by the adapter methods (not part of the public API). */
#ifndef CL_ADAPTER_IMPL_H
#define CL_ADAPTER_IMPL_H
#include "adapters/adapter.h"
#include "core/util.h"

/* One adapted (layer, module). The low-rank delta of every method is
 *   y += s * ((drop(x) A^T) * diag) B^T        diag (r): 1 (LoRA, CondLoRA), SaLoRA gates z, AdaLoRA E. */
typedef struct {
    int layer;
    cl_module m;
    int d_in, d_out, r;
    float s, alpha;           /* this module's scale and lora_alpha (ad->s, o.alpha unless mod_rank / mod_alpha) */
    size_t offA, offB, offE;  /* offsets in cl_params (offE: AdaLoRA E or SaLoRA log_alpha) */
    float *A, *B, *dA, *dB;   /* (r, d_in), (d_out, r): params/grads, or CondLoRA's materialised A_l, B_l + scratch */
    float *E, *dE;            /* (r) AdaLoRA E / SaLoRA log_alpha and their gradients; NULL for LoRA, CondLoRA */
    float *z, *dz;            /* SaLoRA: gates of the last forward and dz/dlog_alpha (owned, r each) */
    float *w_saved;           /* pristine W while merged */
} cl_amod;

typedef struct {
    int (*reg)(cl_adapter *ad, cl_params *p, cl_error *err);
    int (*bind)(cl_adapter *ad, cl_error *err);
    void (*init)(cl_adapter *ad, cl_rng *rng);
    void (*materialise)(cl_adapter *ad);
    /* fill diag (r) for the forward; NULL diag pointer means all ones */
    const float *(*diag)(cl_adapter *ad, cl_amod *md, int train);
    /* receive d loss / d diag (r) after a backward */
    void (*diag_grad)(cl_adapter *ad, cl_amod *md, const float *gdiag);
    void (*backward_fold)(cl_adapter *ad, cl_amod *md); /* CondLoRA: fold dA_l, dB_l into the shared maps */
    void (*extra_fwd)(cl_adapter *ad, cl_amod *md, const float *x, float *y, int T);          /* use_x type2 */
    void (*extra_bwd)(cl_adapter *ad, cl_amod *md, const float *x, const float *dy, float *dx, int T);
    double (*extra_loss)(cl_adapter *ad, float scale);
    void (*post_step)(cl_adapter *ad, int64_t step, int64_t total);
    int (*export_mod)(cl_adapter *ad, cl_amod *md, cl_tensor_cb cb, void *user, cl_error *err);
    int (*rank)(const cl_adapter *ad, const cl_amod *md);
    void (*free)(cl_adapter *ad);
    /* method state outside cl_params that training changes, as doubles (checkpoints): count, get, set */
    size_t (*state_n)(const cl_adapter *ad);
    void (*state_get)(const cl_adapter *ad, double *out);
    void (*state_set)(cl_adapter *ad, const double *in);
} cl_adapter_vt;

struct cl_adapter {
    cl_adapter_opts o;
    const cl_adapter_vt *vt;
    cl_weights *model;
    cl_params *p;
    int L;
    int *mod_index;           /* (L * CL_MOD_COUNT): index into mods or -1 */
    int n_mods;
    cl_amod *mods;
    int type_used[CL_MOD_COUNT];
    float s;                  /* scale of the low-rank path */
    int B, S;
    uint64_t seed;
    uint64_t row0;            /* the batch is rows row0.. of a larger one of the same S (cl_adapter_set_row0) */
    float *ws;                /* scratch (floats) */
    size_t ws_cap;
    int ws_failed;
    int merged;
    int64_t step, total_steps;
    void *priv;               /* method state */
};

/* shared helpers (adapter.c) */
float *cl_ad_scratch(cl_adapter *ad, size_t n); /* NULL on failure (sets ws_failed) */
uint64_t cl_ad_hash(uint64_t seed, uint64_t site, uint64_t i);
float cl_ad_uniform(uint64_t seed, uint64_t site, uint64_t i); /* [0, 1), 24 bits */
const float *cl_ad_wbase(const cl_adapter *ad, const cl_amod *md); /* pristine W even while merged */
int cl_ad_register_ab(cl_adapter *ad, cl_params *p, const char *suffix_a, const char *suffix_b, cl_error *err);
void cl_ad_bind_ab(cl_adapter *ad);
int cl_ad_export_ab(cl_adapter *ad, cl_amod *md, const char *sa, const char *sb, const float *A, const float *B,
                    int r, cl_tensor_cb cb, void *user, cl_error *err);

/* the low-rank core (lora.c) */
void cl_lowrank_forward(cl_adapter *ad, cl_amod *md, const float *x, float *y, int T, int train);
void cl_lowrank_backward(cl_adapter *ad, cl_amod *md, const float *x, const float *dy, float *dx, int T);
/* dW (d_out, d_in) = s * B diag A into out (overwrite when beta = 0, add when beta = 1) */
int cl_lowrank_delta(cl_adapter *ad, cl_amod *md, float *out, float beta);
/* orthogonality regulariser of one module: squared (SaLoRA) or plain (AdaLoRA) Frobenius norms of A A^T - I and
 * B^T B - I; adds wscale * gradient; returns the value (sum of the two terms) */
double cl_orth_reg(const float *A, const float *B, float *dA, float *dB, int r, int d_in, int d_out, int squared,
                   float wscale, int *nterms);

extern const cl_adapter_vt cl_lora_vt, cl_condlora_vt, cl_salora_vt, cl_adalora_vt;

#endif
