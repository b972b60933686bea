/* The adapter interface: options, validation, dispatch to the method tables, the encoder hook, merge / unmerge,
 * export names, and the classification head in the trainable buffer (see adapter.h). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "adapters/adapter_impl.h"

const char *const cl_method_names[CL_METHOD_COUNT] = {"lora", "condlora", "salora", "adalora"};

int cl_method_parse(const char *name, cl_method *out, cl_error *err) {
    for (int i = 0; i < CL_METHOD_COUNT; i++)
        if (name && !strcmp(name, cl_method_names[i])) {
            *out = (cl_method)i;
            return 0;
        }
    return cl_errf(err, CL_EUSAGE, "method: unknown method '%s' (expected lora, condlora, salora or adalora)",
                   name ? name : "(null)");
}

void cl_adapter_opts_default(cl_adapter_opts *o, cl_method method) {
    memset(o, 0, sizeof *o);
    o->method = method;
    o->r = method == CL_METHOD_ADALORA ? 12 : 8;
    o->alpha = 8;
    o->condlora_lambda_x = 0.5f;
    o->salora_budget = 0.5f;
    o->salora_warmup = 0.3f;
    o->salora_lambda_lr = 0.01f;
    o->salora_orth = 0.1f;
    o->salora_log_alpha_init = 3.0f;
    o->ada_target_r = 8;
    o->ada_tinit = 0;
    o->ada_tfinal = 0;
    o->ada_deltaT = 1;
    o->ada_beta1 = 0.85f;
    o->ada_beta2 = 0.85f;
    o->ada_orth = 0.5f;
}

/* ---- helpers ------------------------------------------------------------------------------------------------- */
static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
uint64_t cl_ad_hash(uint64_t seed, uint64_t site, uint64_t i) {
    return splitmix(splitmix(seed ^ splitmix(site)) + i);
}
float cl_ad_uniform(uint64_t seed, uint64_t site, uint64_t i) {
    return (float)(cl_ad_hash(seed, site, i) >> 40) * (1.0f / 16777216.0f);
}

float *cl_ad_scratch(cl_adapter *ad, size_t n) {
    if (n <= ad->ws_cap) return ad->ws;
    float *w = cl_alloc(n, sizeof(float), NULL);
    if (!w) {
        ad->ws_failed = 1;
        return NULL;
    }
    cl_free(ad->ws);
    ad->ws = w;
    ad->ws_cap = n;
    return w;
}

const float *cl_ad_wbase(const cl_adapter *ad, const cl_amod *md) {
    return md->w_saved ? md->w_saved : ad->model->layers[md->layer].lin[md->m].w;
}

void cl_adapter_module_path(const cl_weights *model, int layer, cl_module m, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "base_model.model.");
    if (o < n) cl_model_module_path(model, layer, m, buf + o, n - o);
}

int cl_ad_register_ab(cl_adapter *ad, cl_params *p, const char *sa, const char *sb, cl_error *err) {
    char path[CL_PARAM_NAME_MAX - 32], name[CL_PARAM_NAME_MAX];
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        cl_adapter_module_path(ad->model, md->layer, md->m, path, sizeof path);
        int64_t sha[2] = {md->r, md->d_in}, shb[2] = {md->d_out, md->r};
        snprintf(name, sizeof name, "%s.%s", path, sa);
        if (cl_params_add(p, name, 2, sha, CL_PART_ADAPTER, 1, &md->offA, err)) return -1;
        snprintf(name, sizeof name, "%s.%s", path, sb);
        if (cl_params_add(p, name, 2, shb, CL_PART_ADAPTER, 1, &md->offB, err)) return -1;
    }
    return 0;
}

void cl_ad_bind_ab(cl_adapter *ad) {
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        md->A = ad->p->param + md->offA, md->dA = ad->p->grad + md->offA;
        md->B = ad->p->param + md->offB, md->dB = ad->p->grad + md->offB;
    }
}

int cl_ad_export_ab(cl_adapter *ad, cl_amod *md, const char *sa, const char *sb, const float *A, const float *B,
                    int r, cl_tensor_cb cb, void *user, cl_error *err) {
    char path[CL_PARAM_NAME_MAX - 32], name[CL_PARAM_NAME_MAX];
    cl_adapter_module_path(ad->model, md->layer, md->m, path, sizeof path);
    int64_t sha[2] = {r, md->d_in}, shb[2] = {md->d_out, r};
    snprintf(name, sizeof name, "%s.%s", path, sa);
    if (cb(user, name, 2, sha, A, err)) return -1;
    snprintf(name, sizeof name, "%s.%s", path, sb);
    return cb(user, name, 2, shb, B, err) ? -1 : 0;
}

/* "0-5,11" -> flags; message names the option "layers" */
static int parse_layers(const char *s, int L, unsigned char *on, cl_error *err) {
    if (!s || !*s) {
        memset(on, 1, (size_t)L);
        return 0;
    }
    memset(on, 0, (size_t)L);
    const char *q = s;
    while (*q) {
        char *e;
        while (isspace((unsigned char)*q)) q++;
        long a = strtol(q, &e, 10), b;
        if (e == q) return cl_errf(err, CL_EINVAL, "layers: cannot parse '%s' (expected e.g. \"0-5,11\")", s);
        q = e;
        b = a;
        if (*q == '-') {
            q++;
            b = strtol(q, &e, 10);
            if (e == q) return cl_errf(err, CL_EINVAL, "layers: cannot parse '%s' (expected e.g. \"0-5,11\")", s);
            q = e;
        }
        if (a < 0 || b >= L || a > b)
            return cl_errf(err, CL_EINVAL, "layers: range %ld-%ld is outside the model's layers 0..%d", a, b, L - 1);
        for (long i = a; i <= b; i++) on[i] = 1;
        while (isspace((unsigned char)*q)) q++;
        if (*q == ',') q++;
        else if (*q) return cl_errf(err, CL_EINVAL, "layers: unexpected '%c' in '%s'", *q, s);
    }
    return 0;
}

static int parse_targets(const char *s, int *on, cl_error *err) {
    memset(on, 0, CL_MOD_COUNT * sizeof(int));
    if (!s || !*s) s = "query,value";
    char buf[512];
    if (strlen(s) >= sizeof buf) return cl_errf(err, CL_EINVAL, "target_modules: list too long");
    strcpy(buf, s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        cl_module m;
        if (cl_module_parse(tok, &m))
            return cl_errf(err, CL_EINVAL,
                           "target_modules: unknown module '%s' (expected query, key, value, attention.output.dense, "
                           "intermediate.dense or output.dense)",
                           tok);
        on[m] = 1;
        n++;
    }
    if (!n) return cl_errf(err, CL_EINVAL, "target_modules: empty list");
    return 0;
}

/* ---- create / free ------------------------------------------------------------------------------------------- */
int cl_adapter_create(cl_adapter **out, const cl_adapter_opts *o, cl_weights *model, cl_error *err) {
    *out = NULL;
    if ((unsigned)o->method >= CL_METHOD_COUNT) return cl_errf(err, CL_EUSAGE, "method: unknown method %d", o->method);
    if (o->r <= 0) return cl_errf(err, CL_EINVAL, "r: must be a positive integer (got %d)", o->r);
    if (!(o->alpha > 0) || !isfinite(o->alpha))
        return cl_errf(err, CL_EINVAL, "lora_alpha: must be > 0 (got %g)", (double)o->alpha);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return cl_errf(err, CL_EINVAL, "lora_dropout: must be in [0, 1) (got %g)", (double)o->dropout);
    if (o->method == CL_METHOD_SALORA) {
        if (!(o->salora_budget > 0 && o->salora_budget <= 1))
            return cl_errf(err, CL_EINVAL, "salora_budget: must be in (0, 1] (got %g)", (double)o->salora_budget);
        if (!(o->salora_warmup >= 0 && o->salora_warmup <= 1))
            return cl_errf(err, CL_EINVAL, "salora_warmup: must be in [0, 1] (got %g)", (double)o->salora_warmup);
        if (!(o->salora_lambda_lr >= 0) || !(o->salora_orth >= 0))
            return cl_errf(err, CL_EINVAL, "salora_lambda_lr / salora_orth: must be >= 0");
    }
    if (o->method == CL_METHOD_ADALORA) {
        if (o->ada_target_r <= 0 || o->ada_target_r > o->r)
            return cl_errf(err, CL_EINVAL, "ada_target_r: must be in 1..r (init_r = %d), got %d", o->r,
                           o->ada_target_r);
        if (o->ada_tinit < 0 || o->ada_tfinal < 0 || o->ada_deltaT <= 0)
            return cl_errf(err, CL_EINVAL, "ada_tinit / ada_tfinal must be >= 0 and ada_deltaT > 0");
        if (!(o->ada_beta1 > 0 && o->ada_beta1 < 1) || !(o->ada_beta2 > 0 && o->ada_beta2 < 1))
            return cl_errf(err, CL_EINVAL, "ada_beta1 / ada_beta2: must be in (0, 1)");
        if (!(o->ada_orth > 0)) return cl_errf(err, CL_EINVAL, "ada_orth: orth_reg_weight must be > 0 (as PEFT)");
    }
    if (o->method == CL_METHOD_CONDLORA) {
        if (o->condlora_use_x < 0 || o->condlora_use_x > 2)
            return cl_errf(err, CL_EINVAL, "condlora_use_x: must be 0 (off), 1 (type1) or 2 (type2), got %d",
                           o->condlora_use_x);
    }
    int L = model->cfg.num_layers;
    int tg[CL_MOD_COUNT];
    unsigned char on[L > 0 ? L : 1];
    if (L <= 0 || !model->layers) return cl_errf(err, CL_EINVAL, "adapter: the model has no layers");
    if ((o->mod_rank || o->mod_alpha) && o->method != CL_METHOD_LORA)
        return cl_errf(err, CL_EUNSUP, "rank_pattern / alpha_pattern: per-module ranks are only supported for lora");
    if (o->mod_rank) { /* per-module ranks replace target_modules x layers */
        for (int m = 0; m < CL_MOD_COUNT; m++) tg[m] = 1;
        memset(on, 1, (size_t)L);
    } else {
        if (parse_targets(o->target_modules, tg, err)) return -1;
        if (parse_layers(o->layers, L, on, err)) return -1;
    }

    cl_adapter *ad = calloc(1, sizeof *ad);
    if (!ad) return cl_errf(err, CL_ENOMEM, "adapter: out of memory");
    ad->o = *o;
    ad->model = model;
    ad->L = L;
    ad->vt = o->method == CL_METHOD_LORA       ? &cl_lora_vt
             : o->method == CL_METHOD_CONDLORA ? &cl_condlora_vt
             : o->method == CL_METHOD_SALORA   ? &cl_salora_vt
                                               : &cl_adalora_vt;
    ad->mod_index = malloc((size_t)L * CL_MOD_COUNT * sizeof(int));
    ad->mods = calloc((size_t)L * CL_MOD_COUNT, sizeof(cl_amod));
    if (!ad->mod_index || !ad->mods) {
        cl_adapter_free(ad);
        return cl_errf(err, CL_ENOMEM, "adapter: out of memory");
    }
    if (o->method == CL_METHOD_ADALORA) ad->s = o->alpha / ((float)o->r + 1e-5f); /* scaling / (ranknum + 1e-5) */
    else ad->s = o->rslora ? o->alpha / sqrtf((float)o->r) : o->alpha / (float)o->r;
    for (int l = 0; l < L; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            ad->mod_index[l * CL_MOD_COUNT + m] = -1;
            if (!on[l] || !tg[m]) continue;
            int rm = o->mod_rank ? o->mod_rank[l * CL_MOD_COUNT + m] : o->r;
            float am = o->mod_alpha ? o->mod_alpha[l * CL_MOD_COUNT + m] : o->alpha;
            if (rm == 0) continue;
            if (rm < 0 || !(am > 0) || !isfinite(am)) {
                cl_adapter_free(ad);
                return cl_errf(err, CL_EINVAL, "rank_pattern / alpha_pattern: layer %d '%s' has r %d, alpha %g (need "
                               "r >= 0, alpha > 0)", l, cl_module_names[m], rm, (double)am);
            }
            const cl_linear *lin = &model->layers[l].lin[m];
            if (!lin->w || lin->d_in <= 0 || lin->d_out <= 0) {
                cl_adapter_free(ad);
                return cl_errf(err, CL_EMISSING, "target_modules: '%s' is not present in layer %d of the model",
                               cl_module_names[m], l);
            }
            int dmin = lin->d_in < lin->d_out ? lin->d_in : lin->d_out;
            if (rm > dmin) {
                cl_adapter_free(ad);
                return cl_errf(err, CL_EINVAL, "r: %d is larger than the dimension of '%s' (%d x %d)", rm,
                               cl_module_names[m], lin->d_out, lin->d_in);
            }
            if (o->method == CL_METHOD_CONDLORA && lin->d_in != lin->d_out) {
                cl_adapter_free(ad);
                return cl_errf(err, CL_EUNSUP,
                               "target_modules: CondLoRA needs a square weight, but '%s' is %d x %d (A_l = ThA W^T "
                               "and B_l = W ThB^T are only defined for square W; use lora for FFN targets)",
                               cl_module_names[m], lin->d_out, lin->d_in);
            }
            cl_amod *md = &ad->mods[ad->n_mods];
            md->layer = l, md->m = (cl_module)m, md->d_in = lin->d_in, md->d_out = lin->d_out, md->r = rm;
            md->alpha = am;
            md->s = ad->s; /* per-module scale: LoRA with mod_rank / mod_alpha only */
            if (o->mod_rank || o->mod_alpha) md->s = o->rslora ? am / sqrtf((float)rm) : am / (float)rm;
            ad->mod_index[l * CL_MOD_COUNT + m] = ad->n_mods++;
            ad->type_used[m] = 1;
        }
    if (!ad->n_mods) {
        cl_adapter_free(ad);
        return cl_errf(err, CL_EINVAL, "layers: no (layer, target module) pair selected");
    }
    ad->o.mod_rank = NULL, ad->o.mod_alpha = NULL; /* the caller's arrays are not kept */
    ad->B = 0, ad->S = 0;
    *out = ad;
    return 0;
}

void cl_adapter_free(cl_adapter *ad) {
    if (!ad) return;
    if (ad->merged) cl_adapter_unmerge(ad, NULL);
    if (ad->vt && ad->vt->free) ad->vt->free(ad);
    if (ad->mods)
        for (int k = 0; k < ad->n_mods; k++) cl_free(ad->mods[k].w_saved);
    free(ad->mods);
    free(ad->mod_index);
    cl_free(ad->ws);
    free(ad);
}

cl_method cl_adapter_method(const cl_adapter *ad) { return ad->o.method; }

int cl_adapter_register(cl_adapter *ad, cl_params *p, cl_error *err) {
    if (ad->vt->reg(ad, p, err)) return cl_err_prefix(err, "adapter %s", cl_method_names[ad->o.method]);
    return 0;
}

int cl_adapter_bind(cl_adapter *ad, cl_params *p, cl_error *err) {
    if (!p->param) return cl_errf(err, CL_EINVAL, "adapter: bind before cl_params_alloc");
    ad->p = p;
    if (ad->vt->bind(ad, err)) return -1;
    cl_adapter_materialise(ad);
    return 0;
}

void cl_adapter_init(cl_adapter *ad, uint64_t seed) {
    cl_rng rng;
    cl_rng_seed(&rng, seed);
    ad->vt->init(ad, &rng);
    cl_adapter_materialise(ad);
}

void cl_adapter_materialise(cl_adapter *ad) {
    if (ad->vt->materialise && ad->p) ad->vt->materialise(ad);
}

void cl_adapter_set_row0(cl_adapter *ad, uint64_t row0) { ad->row0 = row0; }

int cl_adapter_begin_batch(cl_adapter *ad, int B, int S, uint64_t seed, cl_error *err) {
    if (B <= 0 || S <= 0) return cl_errf(err, CL_EINVAL, "adapter: batch geometry %d x %d", B, S);
    ad->B = B, ad->S = S, ad->seed = seed, ad->row0 = 0;
    size_t T = (size_t)B * S, dmax = 0;
    for (int k = 0; k < ad->n_mods; k++) {
        size_t d = (size_t)(ad->mods[k].d_in > ad->mods[k].d_out ? ad->mods[k].d_in : ad->mods[k].d_out);
        if (d > dmax) dmax = d;
    }
    size_t r = (size_t)ad->o.r;
    for (int k = 0; k < ad->n_mods; k++)
        if ((size_t)ad->mods[k].r > r) r = (size_t)ad->mods[k].r;
    size_t need = 3 * T * r + T * dmax + 2 * r * dmax + T + (size_t)B * dmax + 64;
    if (!cl_ad_scratch(ad, need)) {
        ad->ws_failed = 0;
        return cl_errf(err, CL_ENOMEM, "adapter: cannot allocate %zu floats of scratch", need);
    }
    return 0;
}

int cl_adapter_check(cl_adapter *ad, cl_error *err) {
    if (!ad->ws_failed) return 0;
    ad->ws_failed = 0;
    return cl_errf(err, CL_ENOMEM, "adapter: out of memory for scratch in a forward/backward pass");
}

/* ---- the hook ------------------------------------------------------------------------------------------------ */
static cl_amod *find_mod(cl_adapter *ad, int layer, cl_module m) {
    if (layer < 0 || layer >= ad->L || (unsigned)m >= CL_MOD_COUNT) return NULL;
    int k = ad->mod_index[layer * CL_MOD_COUNT + m];
    return k < 0 ? NULL : &ad->mods[k];
}
static int hook_adapted(void *ctx, int layer, cl_module m) {
    cl_adapter *ad = ctx;
    return !ad->merged && find_mod(ad, layer, m) != NULL;
}
static void hook_forward(void *ctx, int layer, cl_module m, const float *x, float *y, int T, int train) {
    cl_adapter *ad = ctx;
    cl_amod *md = find_mod(ad, layer, m);
    if (md && !ad->merged) cl_lowrank_forward(ad, md, x, y, T, train);
}
static void hook_backward(void *ctx, int layer, cl_module m, const float *x, const float *dy, float *dx, int T) {
    cl_adapter *ad = ctx;
    cl_amod *md = find_mod(ad, layer, m);
    if (md && !ad->merged) cl_lowrank_backward(ad, md, x, dy, dx, T);
}
cl_lin_hook cl_adapter_hook(cl_adapter *ad) {
    cl_lin_hook h = {.ctx = ad, .adapted = hook_adapted, .forward = hook_forward, .backward = hook_backward};
    return h;
}

double cl_adapter_extra_loss(cl_adapter *ad, float scale) {
    return ad->vt->extra_loss ? ad->vt->extra_loss(ad, scale) : 0.0;
}

size_t cl_adapter_state_size(const cl_adapter *ad) { return 2 + (ad->vt->state_n ? ad->vt->state_n(ad) : 0); }

void cl_adapter_state_get(const cl_adapter *ad, double *out) {
    out[0] = (double)ad->step, out[1] = (double)ad->total_steps;
    if (ad->vt->state_n && ad->vt->state_n(ad)) ad->vt->state_get(ad, out + 2);
}

void cl_adapter_state_set(cl_adapter *ad, const double *in) {
    ad->step = (int64_t)in[0], ad->total_steps = (int64_t)in[1];
    if (ad->vt->state_n && ad->vt->state_n(ad)) ad->vt->state_set(ad, in + 2);
}

void cl_adapter_post_step(cl_adapter *ad, int64_t step, int64_t total_steps) {
    ad->step = step;
    ad->total_steps = total_steps;
    if (ad->vt->post_step) ad->vt->post_step(ad, step, total_steps);
}

/* ---- merge --------------------------------------------------------------------------------------------------- */
int cl_adapter_merge(cl_adapter *ad, cl_error *err) {
    if (ad->merged) return cl_errf(err, CL_EINVAL, "adapter: already merged");
    if (!ad->p) return cl_errf(err, CL_EINVAL, "adapter: merge before bind");
    if (ad->o.method == CL_METHOD_CONDLORA && ad->o.condlora_use_x == 2)
        return cl_errf(err, CL_EUNSUP, "condlora_use_x: the type2 variant depends on each sequence's first token and "
                                       "cannot be merged into W");
    cl_adapter_materialise(ad);
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        cl_linear *lin = &ad->model->layers[md->layer].lin[md->m];
        size_t n = (size_t)md->d_out * md->d_in;
        md->w_saved = cl_alloc(n, sizeof(float), err);
        if (!md->w_saved) {
            for (int j = 0; j < k; j++) {
                cl_amod *mj = &ad->mods[j];
                memcpy(ad->model->layers[mj->layer].lin[mj->m].w, mj->w_saved,
                       (size_t)mj->d_out * mj->d_in * sizeof(float));
                cl_free(mj->w_saved);
                mj->w_saved = NULL;
            }
            return cl_err_prefix(err, "adapter merge");
        }
        memcpy(md->w_saved, lin->w, n * sizeof(float));
        if (cl_lowrank_delta(ad, md, lin->w, 1.0f)) return cl_errf(err, CL_ENOMEM, "adapter merge: out of memory");
    }
    ad->merged = 1;
    return 0;
}

int cl_adapter_unmerge(cl_adapter *ad, cl_error *err) {
    if (!ad->merged) return cl_errf(err, CL_EINVAL, "adapter: not merged");
    for (int k = 0; k < ad->n_mods; k++) {
        cl_amod *md = &ad->mods[k];
        memcpy(ad->model->layers[md->layer].lin[md->m].w, md->w_saved, (size_t)md->d_out * md->d_in * sizeof(float));
        cl_free(md->w_saved);
        md->w_saved = NULL;
    }
    ad->merged = 0;
    return 0;
}

int cl_adapter_is_merged(const cl_adapter *ad) { return ad->merged; }

/* ---- export, ranks ------------------------------------------------------------------------------------------- */
int cl_adapter_export(cl_adapter *ad, cl_tensor_cb cb, void *user, cl_error *err) {
    if (!ad->p) return cl_errf(err, CL_EINVAL, "adapter: export before bind");
    cl_adapter_materialise(ad);
    for (int k = 0; k < ad->n_mods; k++)
        if (ad->vt->export_mod(ad, &ad->mods[k], cb, user, err)) return -1;
    return 0;
}

int cl_adapter_ranks(const cl_adapter *ad, int *ranks) {
    int total = 0;
    for (int i = 0; i < ad->L * CL_MOD_COUNT; i++) {
        int k = ad->mod_index[i];
        ranks[i] = k < 0 ? -1 : (ad->vt->rank && ad->p ? ad->vt->rank(ad, &ad->mods[k]) : ad->mods[k].r);
        if (k >= 0) total += ranks[i];
    }
    return total;
}

int cl_adapter_full_rank(const cl_adapter *ad) {
    int full = 0;
    for (int k = 0; k < ad->n_mods; k++) full += ad->mods[k].r;
    return full;
}

void cl_adapter_rank_report(const cl_adapter *ad, FILE *f) {
    int n = ad->L * CL_MOD_COUNT;
    int *rk = malloc((size_t)n * sizeof(int));
    if (!rk) return;
    int total = cl_adapter_ranks(ad, rk), full = 0;
    for (int k = 0; k < ad->n_mods; k++) full += ad->mods[k].r;
    fprintf(f, "learned ranks (%s), %d of %d components kept:\n", cl_method_names[ad->o.method], total, full);
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        if (!ad->type_used[m]) continue;
        fprintf(f, "  %-24s", cl_module_names[m]);
        for (int l = 0; l < ad->L; l++) {
            int r = rk[l * CL_MOD_COUNT + m];
            if (r < 0) fprintf(f, "   -");
            else fprintf(f, " %3d", r);
        }
        fprintf(f, "\n");
    }
    free(rk);
}


/* ---- head ---------------------------------------------------------------------------------------------------- */
cl_linear *cl_head_dense(cl_weights *model) { return cl_model_head_dense(model); }

/* PEFT's names of the head: base_model.model. + the *ForSequenceClassification names of the architecture table */
int cl_head_register(cl_params *p, const cl_weights *model, int train_pooler, cl_head_params *h, cl_error *err) {
    memset(h, 0, sizeof *h);
    const cl_head_layout *hl = cl_head_layout_of(model->head);
    const cl_linear *ou = &model->head_out;
    if (!hl || !ou->w) return cl_errf(err, CL_EMISSING, "head: the model has no classification head (num_labels)");
    /* the dense layer is trained with the head, except the base model's pooler (CL_HEAD_POOLER) unless asked */
    const cl_linear *dn = hl->dense ? &model->head_dense : train_pooler ? &model->pooler : NULL;
    const cl_linear *lins[2] = {dn, ou};
    for (int k = 0; k < 4; k++) {
        const cl_linear *lin = lins[k / 2];
        if (!lin) continue;
        char tn[128], name[CL_PARAM_NAME_MAX];
        cl_model_head_tensor_name(model, k, tn, sizeof tn);
        if (!lin->w)
            return cl_errf(err, CL_EMISSING, "head: %s %s is missing", cl_model_arch(model)->name, tn);
        snprintf(name, sizeof name, "base_model.model.%s", tn);
        int64_t sh[2] = {lin->d_out, lin->d_in};
        if (cl_params_add(p, name, (k & 1) ? 1 : 2, sh, CL_PART_HEAD, !(k & 1), &h->off[k], err)) return -1;
        h->present[k] = 1;
    }
    return 0;
}

void cl_head_bind(cl_params *p, cl_weights *model, const cl_head_params *h, cl_head_grads *g) {
    memset(g, 0, sizeof *g);
    cl_linear *lins[2] = {cl_head_layout_of(model->head)->dense ? &model->head_dense : &model->pooler,
                          &model->head_out};
    float **gp[4] = {&g->dense_w, &g->dense_b, &g->out_w, &g->out_b};
    for (int i = 0; i < 4; i++) {
        if (!h->present[i]) continue;
        cl_linear *lin = lins[i / 2];
        float **src = (i % 2) ? &lin->b : &lin->w;
        size_t n = (i % 2) ? (size_t)lin->d_out : (size_t)lin->d_out * lin->d_in;
        float *dst = p->param + h->off[i];
        if (*src && *src != dst) memcpy(dst, *src, n * sizeof(float));
        *src = dst;
        *gp[i] = p->grad + h->off[i];
    }
}
