/* PEFT-format adapter loading, conversion matrices W^-1 A^T, W^-1 B, W^-1 B A, layer-by-layer subspace similarity
 * with a Gaussian baseline, adapter-vs-adapter similarity, and their JSON / safetensors / heat-map / Markdown
 * outputs (METHODS.md section 3). */
#include "analysis/conversion.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cjson/cJSON.h>

#include "analysis/heatmap.h"
#include "core/util.h"
#include "io/safetensors.h"

const char *const cl_an_type_names[CL_AN_NTYPES] = {"A", "B", "BA"};

/* cl_err_prefix that never reports success (CL_ENOMEM when err is NULL or carries no code). */
#define pfx(err, ...) (cl_err_prefix((err), __VA_ARGS__), (err) && (err)->code ? (int)(err)->code : (int)CL_ENOMEM)

void cl_an_opts_default(cl_an_opts *o) {
    memset(o, 0, sizeof *o);
    o->side = CL_SV_LEFT;
}

/* ------------------------------------------------------------------------------------------ adapter loading */

static cl_lora_pair *pair_at(cl_lora_adapter *a, int layer, cl_module m) {
    return &a->pairs[(size_t)layer * CL_MOD_COUNT + m];
}

const cl_lora_pair *cl_lora_adapter_get(const cl_lora_adapter *a, int layer, cl_module m) {
    if (!a || !a->pairs || layer < 0 || layer >= a->num_layers || (int)m < 0 || m >= CL_MOD_COUNT) return NULL;
    const cl_lora_pair *p = &a->pairs[(size_t)layer * CL_MOD_COUNT + m];
    return p->present ? p : NULL;
}

void cl_lora_adapter_free(cl_lora_adapter *a) {
    if (!a) return;
    if (a->pairs)
        for (int k = 0; k < a->num_layers * CL_MOD_COUNT; k++) {
            cl_free(a->pairs[k].a);
            cl_free(a->pairs[k].b);
        }
    free(a->pairs);
    memset(a, 0, sizeof *a);
}

/* Parsed tensor name: kind 'A', 'B' or 'E'. Returns 1 when NAME is a per-layer LoRA tensor, 0 when it is something
 * else (classifier, ...), -1 when it looks like a LoRA tensor but cannot be placed. */
static int parse_key(const char *name, int *layer, cl_module *mod, char *kind) {
    const char *lp = strstr(name, ".lora_");
    if (!lp) return 0;
    char k = lp[6];
    if (k != 'A' && k != 'B' && k != 'E') return 0; /* lora_embedding_*, lora_magnitude_vector, ... */
    const char *after = lp + 7;
    if (*after && *after != '.') return 0;
    *kind = k;
    const char *el = strstr(name, "layer.");
    while (el && el != name && el[-1] != '.') el = strstr(el + 1, "layer.");
    if (!el || el > lp) return -1;
    const char *num = el + 6;
    char *end;
    errno = 0;
    long l = strtol(num, &end, 10);
    if (end == num || *end != '.' || l < 0 || l >= CL_AN_MAX_LAYERS || errno) return -1;
    char path[256];
    size_t plen = (size_t)(lp - (end + 1));
    if (plen == 0 || plen >= sizeof path) return -1;
    memcpy(path, end + 1, plen);
    path[plen] = 0;
    if (cl_module_parse(path, mod) != 0) return -1;
    *layer = (int)l;
    return 1;
}

static int load_config(cl_lora_adapter *a, const char *path, cl_error *err) {
    char *txt = NULL;
    size_t len = 0;
    int rc = cl_read_file(path, &txt, &len, err);
    if (rc) return rc;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cl_errf(err, CL_EFORMAT, "%s: not a JSON object", path);
    }
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "peft_type")) && cJSON_IsString(v))
        snprintf(a->peft_type, sizeof a->peft_type, "%s", v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "r")) && cJSON_IsNumber(v)) a->r = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha")) && cJSON_IsNumber(v)) a->alpha = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "use_rslora")) && cJSON_IsBool(v)) a->rslora = cJSON_IsTrue(v);
    rc = 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "fan_in_fan_out")) && cJSON_IsTrue(v))
        rc = cl_errf(err, CL_EUNSUP,
                     "%s: fan_in_fan_out = true (Conv1D-style transposed weights) is not a BERT/RoBERTa "
                     "adapter; condlora reads nn.Linear adapters only",
                     path);
    else if (a->peft_type[0] && strcmp(a->peft_type, "LORA") && strcmp(a->peft_type, "ADALORA"))
        rc = cl_errf(err, CL_EUNSUP,
                     "%s: peft_type '%s' is not a LoRA-family adapter (expected LORA or ADALORA)", path,
                     a->peft_type);
    cJSON_Delete(j);
    return rc;
}

int cl_lora_adapter_load(cl_lora_adapter *a, const char *dir, cl_error *err) {
    memset(a, 0, sizeof *a);
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    char cfg[1200], st_path[1200];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", dir);
    int rc = load_config(a, cfg, err);
    if (rc) return rc;
    cl_safetensors st;
    memset(&st, 0, sizeof st);
    if ((rc = cl_st_open(&st, st_path, err))) return rc;
    /* pass 1: the layers present */
    int maxl = -1;
    for (int t = 0; t < st.n; t++) {
        int l;
        cl_module m;
        char k;
        int p = parse_key(st.t[t].name, &l, &m, &k);
        if (p < 0) {
            rc = cl_errf(err, CL_EFORMAT,
                         "%s: tensor '%s' looks like a LoRA weight but names no known layer and module "
                         "(expected ...encoder.layer.L.attention.self.query.lora_A.weight)",
                         st_path, st.t[t].name);
            goto fail;
        }
        if (p == 1 && l > maxl) maxl = l;
    }
    if (maxl < 0) {
        rc = cl_errf(err, CL_EMISSING,
                     "%s: no per-layer lora_A / lora_B tensors (is this a LoRA adapter? CondLoRA runs "
                     "must be exported with their materialised per-layer A and B)",
                     st_path);
        goto fail;
    }
    a->num_layers = maxl + 1;
    a->pairs = calloc((size_t)a->num_layers * CL_MOD_COUNT, sizeof *a->pairs);
    if (!a->pairs) {
        rc = cl_errf(err, CL_ENOMEM, "%s: out of memory", st_path);
        goto fail;
    }
    float *e_vals[CL_AN_MAX_LAYERS][CL_MOD_COUNT];
    int e_n[CL_AN_MAX_LAYERS][CL_MOD_COUNT];
    memset(e_vals, 0, sizeof e_vals);
    memset(e_n, 0, sizeof e_n);
    for (int t = 0; t < st.n; t++) {
        const cl_st_tensor *ten = &st.t[t];
        int l;
        cl_module m;
        char k;
        if (parse_key(ten->name, &l, &m, &k) != 1) continue;
        cl_lora_pair *p = pair_at(a, l, m);
        int ok2 = ten->ndim == 2 && ten->shape[0] > 0 && ten->shape[1] > 0 && ten->shape[0] <= (1 << 20) &&
                  ten->shape[1] <= (1 << 20);
        if (k == 'E') {
            if (!(ten->ndim == 1 || (ten->ndim == 2 && ten->shape[1] == 1)) || ten->shape[0] <= 0) {
                rc = cl_errf(err, CL_ESHAPE, "%s: tensor '%s': lora_E must be (r, 1) or (r)", st_path,
                             ten->name);
                goto fail_e;
            }
            e_n[l][m] = (int)ten->shape[0];
            e_vals[l][m] = cl_alloc((size_t)ten->numel, sizeof(float), err);
            if (!e_vals[l][m] || cl_st_to_f32(&st, ten, e_vals[l][m], err)) {
                rc = pfx(err, "%s: tensor '%s'", st_path, ten->name);
                goto fail_e;
            }
            continue;
        }
        if (!ok2) {
            rc = cl_errf(err, CL_ESHAPE, "%s: tensor '%s' must be a 2-D matrix", st_path, ten->name);
            goto fail_e;
        }
        float **dst = k == 'A' ? &p->a : &p->b;
        if (*dst) {
            rc = cl_errf(err, CL_EFORMAT,
                         "%s: tensor '%s': a second lora_%c for layer %d %s (several adapters in one "
                         "file are not supported)",
                         st_path, ten->name, k, l, cl_module_names[m]);
            goto fail_e;
        }
        *dst = cl_alloc((size_t)ten->numel, sizeof(float), err);
        if (!*dst || cl_st_to_f32(&st, ten, *dst, err)) {
            rc = pfx(err, "%s: tensor '%s'", st_path, ten->name);
            goto fail_e;
        }
        if (k == 'A') {
            p->r = (int)ten->shape[0];
            p->d_in = (int)ten->shape[1];
        } else {
            if (p->a && p->r != (int)ten->shape[1]) {
                rc = cl_errf(err, CL_ESHAPE, "%s: tensor '%s' is %lld x %lld but lora_A has rank %d",
                             st_path, ten->name, (long long)ten->shape[0], (long long)ten->shape[1], p->r);
                goto fail_e;
            }
            p->d_out = (int)ten->shape[0];
            if (!p->a) p->r = (int)ten->shape[1];
        }
    }
    for (int l = 0; l < a->num_layers; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            cl_lora_pair *p = pair_at(a, l, (cl_module)m);
            if (!p->a && !p->b) continue;
            if (!p->a || !p->b) {
                rc = cl_errf(err, CL_EMISSING, "%s: layer %d %s has lora_%c but no lora_%c", st_path, l,
                             cl_module_names[m], p->a ? 'A' : 'B', p->a ? 'B' : 'A');
                goto fail_e;
            }
            if (p->r != 0 && e_vals[l][m]) {
                if (e_n[l][m] != p->r) {
                    rc = cl_errf(err, CL_ESHAPE, "%s: layer %d %s: lora_E has %d entries, rank is %d",
                                 st_path, l, cl_module_names[m], e_n[l][m], p->r);
                    goto fail_e;
                }
                /* fold E into A and drop the components AdaLoRA pruned (E_i = 0): the rank is what is left */
                int kept = 0;
                for (int i = 0; i < p->r; i++) {
                    float e = e_vals[l][m][i];
                    if (e == 0.0f) continue;
                    for (int c = 0; c < p->d_in; c++)
                        p->a[(size_t)kept * p->d_in + c] = p->a[(size_t)i * p->d_in + c] * e;
                    kept++;
                }
                /* B's kept columns, in place (row-major d_out x r -> d_out x kept; writes never pass reads) */
                for (int t = 0; t < p->d_out; t++) {
                    int q = 0;
                    for (int i = 0; i < p->r; i++)
                        if (e_vals[l][m][i] != 0.0f) p->b[(size_t)t * kept + q++] = p->b[(size_t)t * p->r + i];
                }
                p->r = kept;
                a->has_e = 1;
                if (kept == 0) { /* every component pruned: the module is not adapted any more */
                    cl_free(p->a);
                    cl_free(p->b);
                    p->a = p->b = NULL;
                    continue;
                }
            }
            p->present = 1;
            a->mod_present[m] = 1;
        }
fail_e:
    for (int l = 0; l < CL_AN_MAX_LAYERS; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) cl_free(e_vals[l][m]);
    if (rc) goto fail;
    if (a->has_e || !strcmp(a->peft_type, "ADALORA")) a->r = 0; /* AdaLoRA's "r" is not its rank (init_r is) */
    if (a->r <= 0) /* no "r" in the config (or AdaLoRA): the largest rank found */
        for (int k = 0; k < a->num_layers * CL_MOD_COUNT; k++)
            if (a->pairs[k].present && a->pairs[k].r > a->r) a->r = a->pairs[k].r;
    cl_st_close(&st);
    return 0;
fail:
    cl_st_close(&st);
    cl_lora_adapter_free(a);
    return rc;
}

int cl_lora_adapter_check(const cl_lora_adapter *a, const cl_weights *model, cl_error *err) {
    if (a->num_layers > model->cfg.num_layers)
        return cl_errf(err, CL_ESHAPE,
                       "%s: the adapter has layer %d but the model has %d layers (maybe the adapter was "
                       "trained on another base model?)",
                       a->dir, a->num_layers - 1, model->cfg.num_layers);
    for (int l = 0; l < a->num_layers; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            const cl_lora_pair *p = cl_lora_adapter_get(a, l, (cl_module)m);
            if (!p) continue;
            const cl_linear *w = &model->layers[l].lin[m];
            if (p->d_in != w->d_in || p->d_out != w->d_out)
                return cl_errf(err, CL_ESHAPE,
                               "%s: layer %d %s: lora_A is %d x %d and lora_B %d x %d, but the model's "
                               "weight is %d x %d (maybe the adapter was trained on another base model?)",
                               a->dir, l, cl_module_names[m], p->r, p->d_in, p->d_out, p->r, w->d_out, w->d_in);
        }
    return 0;
}

/* ------------------------------------------------------------------------------------------------- helpers */

static void gaussian(cl_rng *g, double *x, size_t n) {
    for (size_t k = 0; k < n; k++) x[k] = cl_rng_normal(g);
}

/* Orthonormal basis (dim x k) of matrix type t for a matrix pair: A-type from X (rows x cols), etc. All bases are
 * stored with k columns. */
typedef struct {
    double *u;
    int dim, k;
} basis;

static int res_ij(int ij, int r) { return ij > 0 ? ij : r; }

static double phi_b(const basis *x, int i, const basis *y, int j) {
    return cl_phi_bases(x->dim, x->u, x->k, i, y->u, y->k, j);
}

static int check_ij(const char *what, int i, int j, int dim, cl_error *err) {
    if (i > dim || j > dim)
        return cl_errf(err, CL_EINVAL,
                       "%s: i = %d, j = %d but the singular vectors have only %d dimensions", what, i,
                       j, dim);
    return 0;
}

/* Basis of a dense rows x cols matrix. */
static int make_basis(basis *b, int rows, int cols, const double *m, cl_sv_side side, int k, const char *what,
                      cl_error *err) {
    b->dim = side == CL_SV_LEFT ? rows : cols;
    b->k = k;
    if (check_ij(what, k, k, b->dim, err)) return err ? err->code : CL_EINVAL;
    b->u = cl_alloc((size_t)b->dim * k, sizeof(double), err);
    if (!b->u) return pfx(err, "%s", what);
    if (cl_sv_basis(rows, cols, m, side, k, b->u, err)) return pfx(err, "%s", what);
    return 0;
}

/* Basis of L R^T (rows x cols, L rows x r, R cols x r). */
static int make_basis_lr(basis *b, int rows, int cols, int r, const double *l, const double *rm, cl_sv_side side,
                         int k, const char *what, cl_error *err) {
    b->dim = side == CL_SV_LEFT ? rows : cols;
    b->k = k;
    if (check_ij(what, k, k, b->dim, err)) return err ? err->code : CL_EINVAL;
    b->u = cl_alloc((size_t)b->dim * k, sizeof(double), err);
    if (!b->u) return pfx(err, "%s", what);
    if (cl_sv_basis_lowrank(rows, cols, r, l, rm, side, k, b->u, err)) return pfx(err, "%s", what);
    return 0;
}

static void free_bases(basis *b, int n) {
    if (!b) return;
    for (int k = 0; k < n; k++) cl_free(b[k].u);
    free(b);
}

static int kcols(const cl_an_opts *o, int r) {
    int i = res_ij(o->i, r), j = res_ij(o->j, r);
    return i > j ? i : j;
}

/* --------------------------------------------------------------------------------------------- conversion */

void cl_conv_result_free(cl_conv_result *res) {
    if (!res) return;
    for (int k = 0; k < res->nmod; k++) {
        cl_conv_module *cm = &res->mods[k];
        if (cm->e)
            for (int l = 0; l < cm->n; l++) {
                cl_free(cm->e[l].ca);
                cl_free(cm->e[l].cb);
                cl_free(cm->e[l].cba);
            }
        free(cm->e);
        for (int t = 0; t < CL_AN_NTYPES; t++) free(cm->phi[t]);
    }
    for (int t = 0; t < CL_AN_NTYPES; t++) free(res->base_phi[t]);
    memset(res, 0, sizeof *res);
}

/* One (layer, module): C_A, C_B (and C_BA) from one LU factorisation of W. */
static int convert_one(const cl_linear *w, const cl_lora_pair *p, int layer, cl_module m, int keep_cba,
                       cl_conv_entry *e, cl_error *err) {
    int d = w->d_out, r = p->r;
    e->layer = layer;
    e->d = d;
    e->r = r;
    char what[160];
    snprintf(what, sizeof what, "W0 of layer %d %s", layer, cl_module_names[m]);
    double *wd = cl_alloc((size_t)d * d, sizeof(double), err);
    double *rhs = cl_alloc((size_t)d * 2 * r, sizeof(double), err);
    e->ca = cl_alloc((size_t)d * r, sizeof(double), err);
    e->cb = cl_alloc((size_t)d * r, sizeof(double), err);
    if (keep_cba) e->cba = cl_alloc((size_t)d * d, sizeof(double), err);
    cl_lu lu;
    memset(&lu, 0, sizeof lu);
    int rc = 0;
    if (!wd || !rhs || !e->ca || !e->cb || (keep_cba && !e->cba)) {
        rc = pfx(err, "layer %d %s (d = %d, r = %d)", layer, cl_module_names[m], d, r);
        goto done;
    }
    for (size_t k = 0; k < (size_t)d * d; k++) wd[k] = w->w[k];
    for (int t = 0; t < d; t++)
        for (int c = 0; c < r; c++) {
            rhs[(size_t)t * 2 * r + c] = p->a[(size_t)c * d + t];     /* A^T */
            rhs[(size_t)t * 2 * r + r + c] = p->b[(size_t)t * r + c]; /* B */
        }
    if ((rc = cl_lu_factor(&lu, d, wd, what, err))) goto done;
    e->cond1 = cl_lu_cond(&lu);
    if ((rc = cl_lu_solve(&lu, 2 * r, rhs, rhs, err))) goto done;
    for (int t = 0; t < d; t++)
        for (int c = 0; c < r; c++) {
            e->ca[(size_t)t * r + c] = rhs[(size_t)t * 2 * r + c];
            e->cb[(size_t)t * r + c] = rhs[(size_t)t * 2 * r + r + c];
        }
    if (keep_cba) { /* C_BA = C_B A (= W^-1 B A) */
        double *ad = wd; /* reuse: A as double, r x d */
        for (size_t k = 0; k < (size_t)r * d; k++) ad[k] = p->a[k];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, r, 1.0, e->cb, r, ad, d, 0.0, e->cba, d);
    }
done:
    cl_lu_free(&lu);
    cl_free(wd);
    cl_free(rhs);
    return rc;
}

/* The three bases (C_A, C_B, C_BA) of a conversion entry; A^T as double is needed for C_BA = C_B (A^T)^T. */
static int entry_bases(const cl_conv_entry *e, const float *a, const cl_an_opts *o, basis out[CL_AN_NTYPES],
                       const char *what, cl_error *err) {
    int d = e->d, r = e->r, k = kcols(o, r);
    double *at = cl_alloc((size_t)d * r, sizeof(double), err);
    if (!at) return pfx(err, "%s", what);
    for (int t = 0; t < d; t++)
        for (int c = 0; c < r; c++) at[(size_t)t * r + c] = a[(size_t)c * d + t];
    int rc = make_basis(&out[CL_AN_A], d, r, e->ca, o->side, k, what, err);
    if (!rc) rc = make_basis(&out[CL_AN_B], d, r, e->cb, o->side, k, what, err);
    if (!rc) rc = make_basis_lr(&out[CL_AN_BA], d, d, r, e->cb, at, o->side, k, what, err);
    cl_free(at);
    return rc;
}

static int phi_matrix(basis *const *b, const int *ranks, int n, const cl_an_opts *o, double **out,
                      double *mean, cl_error *err) {
    for (int t = 0; t < CL_AN_NTYPES; t++) {
        out[t] = malloc(sizeof(double) * (size_t)(n * n > 0 ? n * n : 1));
        if (!out[t]) return cl_errf(err, CL_ENOMEM, "phi matrix (%d x %d): out of memory", n, n);
        for (int a = 0; a < n; a++)
            for (int c = 0; c < n; c++)
                out[t][(size_t)a * n + c] =
                    phi_b(&b[a][t], res_ij(o->i, ranks[a]), &b[c][t], res_ij(o->j, ranks[c]));
        mean[t] = cl_upper_mean(n, out[t]);
    }
    return 0;
}

int cl_conversion_run(const cl_weights *model, const cl_lora_adapter *ad, const cl_an_opts *o, cl_conv_result *res,
                      cl_error *err) {
    memset(res, 0, sizeof *res);
    res->i = o->i;
    res->j = o->j;
    res->side = o->side;
    res->seed = o->seed;
    if (o->i < 0 || o->j < 0)
        return cl_errf(err, CL_EINVAL, "options i = %d, j = %d must be >= 1 (or 0 for r)", o->i, o->j);
    int rc = cl_lora_adapter_check(ad, model, err);
    if (rc) return rc;
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        if (!ad->mod_present[m] || (o->module_mask && !(o->module_mask >> m & 1))) continue;
        const cl_linear *w0 = NULL;
        for (int l = 0; l < ad->num_layers && !w0; l++)
            if (cl_lora_adapter_get(ad, l, (cl_module)m)) w0 = &model->layers[l].lin[m];
        if (w0 && w0->d_out != w0->d_in)
            return cl_errf(err, CL_EUNSUP,
                           "%s: module %s: W0 is %d x %d, not square, so W0^-1 A^T and W0^-1 B are "
                           "undefined ([P1] analyses query and value); choose square modules with --modules",
                           ad->dir, cl_module_names[m], w0->d_out, w0->d_in);
    }
    basis **bases = NULL; /* per layer, 3 bases */
    int *ranks = NULL, nbases = 0;
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        if (!ad->mod_present[m] || (o->module_mask && !(o->module_mask >> m & 1))) continue;
        cl_conv_module *cm = &res->mods[res->nmod++];
        cm->mod = (cl_module)m;
        for (int l = 0; l < ad->num_layers; l++)
            if (cl_lora_adapter_get(ad, l, (cl_module)m)) cm->layers[cm->n++] = l;
        cm->e = calloc((size_t)cm->n, sizeof *cm->e);
        bases = calloc((size_t)cm->n, sizeof *bases);
        ranks = calloc((size_t)cm->n, sizeof *ranks);
        nbases = bases ? cm->n : 0;
        if (!cm->e || !bases || !ranks) {
            rc = cl_errf(err, CL_ENOMEM, "module %s: out of memory", cl_module_names[m]);
            goto fail;
        }
        for (int k = 0; k < cm->n; k++) {
            int l = cm->layers[k];
            const cl_lora_pair *p = cl_lora_adapter_get(ad, l, (cl_module)m);
            if ((rc = convert_one(&model->layers[l].lin[m], p, l, (cl_module)m, o->keep_cba, &cm->e[k], err))) {
                cl_err_prefix(err, "%s", ad->dir);
                goto fail;
            }
            bases[k] = calloc(CL_AN_NTYPES, sizeof(basis));
            if (!bases[k]) {
                rc = cl_errf(err, CL_ENOMEM, "out of memory");
                goto fail;
            }
            char what[160];
            snprintf(what, sizeof what, "layer %d %s", l, cl_module_names[m]);
            if ((rc = entry_bases(&cm->e[k], p->a, o, bases[k], what, err))) goto fail;
            ranks[k] = p->r;
        }
        cm->i = res_ij(o->i, cm->e[0].r);
        cm->j = res_ij(o->j, cm->e[0].r);
        cm->dim = o->side == CL_SV_LEFT ? cm->e[0].d : cm->e[0].r;
        if ((rc = phi_matrix(bases, ranks, cm->n, o, cm->phi, cm->mean, err))) goto fail;
        for (int k = 0; k < cm->n; k++) free_bases(bases[k], CL_AN_NTYPES);
        free(bases);
        free(ranks);
        bases = NULL;
        ranks = NULL;
        nbases = 0;
    }
    if (res->nmod == 0)
        return cl_errf(err, CL_EMISSING, "%s: none of the requested modules is adapted", ad->dir);
    /* Gaussian baseline: n matrices of the first module's shapes */
    {
        int n = 0;
        for (int k = 0; k < res->nmod; k++)
            if (res->mods[k].n > n) n = res->mods[k].n;
        int d = res->mods[0].e[0].d, r = res->mods[0].e[0].r;
        res->n_base = n;
        res->base_d = d;
        res->base_r = r;
        cl_rng g;
        cl_rng_seed(&g, o->seed);
        bases = calloc((size_t)n, sizeof *bases);
        ranks = calloc((size_t)n, sizeof *ranks);
        nbases = bases ? n : 0;
        double *x = cl_alloc((size_t)d * r * 3, sizeof(double), err);
        if (!bases || !ranks || !x) {
            cl_free(x);
            rc = cl_errf(err, CL_ENOMEM, "baseline: out of memory");
            goto fail;
        }
        for (int k = 0; k < n && !rc; k++) {
            bases[k] = calloc(CL_AN_NTYPES, sizeof(basis));
            if (!bases[k]) { rc = cl_errf(err, CL_ENOMEM, "baseline: out of memory"); break; }
            ranks[k] = r;
            int kc = kcols(o, r);
            gaussian(&g, x, (size_t)d * r * 3);
            rc = make_basis(&bases[k][CL_AN_A], d, r, x, o->side, kc, "Gaussian baseline (A)", err);
            if (!rc) rc = make_basis(&bases[k][CL_AN_B], d, r, x + (size_t)d * r, o->side, kc,
                                     "Gaussian baseline (B)", err);
            if (!rc) {
                gaussian(&g, x, (size_t)d * r * 2);
                rc = make_basis_lr(&bases[k][CL_AN_BA], d, d, r, x, x + (size_t)d * r, o->side, kc,
                                   "Gaussian baseline (BA)", err);
            }
        }
        cl_free(x);
        if (!rc) rc = phi_matrix(bases, ranks, n, o, res->base_phi, res->base_mean, err);
        if (rc) goto fail;
        int i = res_ij(o->i, r), j = res_ij(o->j, r), dim = o->side == CL_SV_LEFT ? d : r;
        res->expected_random = (double)i * j / ((double)dim * (i < j ? i : j));
        if (res->expected_random > 1) res->expected_random = 1;
        for (int k = 0; k < n; k++) free_bases(bases[k], CL_AN_NTYPES);
        free(bases);
        free(ranks);
    }
    return 0;
fail:
    if (bases) {
        for (int k = 0; k < nbases; k++) free_bases(bases[k], CL_AN_NTYPES);
        free(bases);
    }
    free(ranks);
    cl_conv_result_free(res);
    return rc;
}

/* --------------------------------------------------------------------------------------------- similarity */

void cl_sim_result_free(cl_sim_result *res) {
    if (!res) return;
    for (int k = 0; k < res->nmod; k++)
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            free(res->mods[k].phi[t]);
            free(res->mods[k].base[t]);
        }
    memset(res, 0, sizeof *res);
}

/* phi of the A (right), B (left) and BA (left) matrices of two pairs with the same shapes. */
static int pair_phi(int d_out, int d_in, int rx, const float *ax, const float *bx, int ry, const float *ay,
                    const float *by, const cl_an_opts *o, double out[CL_AN_NTYPES], const char *what, cl_error *err) {
    int rc = 0;
    basis b[2][CL_AN_NTYPES];
    memset(b, 0, sizeof b);
    const int rr[2] = {rx, ry};
    const float *as[2] = {ax, ay}, *bs[2] = {bx, by};
    for (int s = 0; s < 2 && !rc; s++) {
        int r = rr[s], kc = kcols(o, r);
        double *a = cl_alloc((size_t)r * d_in, sizeof(double), err), *at = cl_alloc((size_t)d_in * r, sizeof(double), err);
        double *bb = cl_alloc((size_t)d_out * r, sizeof(double), err);
        if (!a || !at || !bb) rc = pfx(err, "%s", what);
        if (!rc) {
            for (int i = 0; i < r; i++)
                for (int c = 0; c < d_in; c++) {
                    a[(size_t)i * d_in + c] = as[s][(size_t)i * d_in + c];
                    at[(size_t)c * r + i] = as[s][(size_t)i * d_in + c];
                }
            for (size_t k = 0; k < (size_t)d_out * r; k++) bb[k] = bs[s][k];
            rc = make_basis(&b[s][CL_AN_A], r, d_in, a, CL_SV_RIGHT, kc, what, err);
            if (!rc) rc = make_basis(&b[s][CL_AN_B], d_out, r, bb, CL_SV_LEFT, kc, what, err);
            if (!rc) rc = make_basis_lr(&b[s][CL_AN_BA], d_out, d_in, r, bb, at, CL_SV_LEFT, kc, what, err);
        }
        cl_free(a);
        cl_free(at);
        cl_free(bb);
    }
    if (!rc)
        for (int t = 0; t < CL_AN_NTYPES; t++) out[t] = phi_b(&b[0][t], res_ij(o->i, rx), &b[1][t], res_ij(o->j, ry));
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < CL_AN_NTYPES; t++) cl_free(b[s][t].u);
    return rc;
}

int cl_similarity_run(const cl_lora_adapter *x, const cl_lora_adapter *y, const cl_an_opts *o, cl_sim_result *res,
                      cl_error *err) {
    memset(res, 0, sizeof *res);
    res->i = o->i;
    res->j = o->j;
    res->seed = o->seed;
    if (o->i < 0 || o->j < 0)
        return cl_errf(err, CL_EINVAL, "options i = %d, j = %d must be >= 1 (or 0 for r)", o->i, o->j);
    cl_rng g;
    cl_rng_seed(&g, o->seed);
    int rc = 0;
    for (int m = 0; m < CL_MOD_COUNT; m++) {
        if (o->module_mask && !(o->module_mask >> m & 1)) continue;
        if (!x->mod_present[m] && !y->mod_present[m]) continue;
        if (x->mod_present[m] != y->mod_present[m]) {
            if (o->module_mask) {
                rc = cl_errf(err, CL_EMISSING, "module %s is adapted in %s but not in %s",
                             cl_module_names[m], x->mod_present[m] ? x->dir : y->dir,
                             x->mod_present[m] ? y->dir : x->dir);
                goto fail;
            }
            continue; /* compare what both adapt */
        }
        cl_sim_module *sm = &res->mods[res->nmod++];
        sm->mod = (cl_module)m;
        int nl = x->num_layers > y->num_layers ? x->num_layers : y->num_layers;
        for (int l = 0; l < nl; l++) {
            const cl_lora_pair *px = cl_lora_adapter_get(x, l, (cl_module)m), *py = cl_lora_adapter_get(y, l, (cl_module)m);
            if (!px && !py) continue;
            if (!px || !py) {
                rc = cl_errf(err, CL_EMISSING, "layer %d %s is adapted in %s but not in %s", l,
                             cl_module_names[m], px ? x->dir : y->dir, px ? y->dir : x->dir);
                goto fail;
            }
            if (px->d_in != py->d_in || px->d_out != py->d_out) {
                rc = cl_errf(err, CL_ESHAPE,
                               "layer %d %s: %s has a %d x %d weight, %s a %d x %d one (different base "
                               "models?)",
                               l, cl_module_names[m], x->dir, px->d_out, px->d_in, y->dir, py->d_out, py->d_in);
                goto fail;
            }
            sm->layers[sm->n++] = l;
        }
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            sm->phi[t] = malloc(sizeof(double) * (size_t)(sm->n ? sm->n : 1));
            sm->base[t] = malloc(sizeof(double) * (size_t)(sm->n ? sm->n : 1));
            if (!sm->phi[t] || !sm->base[t]) {
                rc = cl_errf(err, CL_ENOMEM, "similarity: out of memory");
                goto fail;
            }
        }
        for (int k = 0; k < sm->n; k++) {
            int l = sm->layers[k];
            const cl_lora_pair *px = cl_lora_adapter_get(x, l, (cl_module)m), *py = cl_lora_adapter_get(y, l, (cl_module)m);
            char what[160];
            snprintf(what, sizeof what, "similarity of layer %d %s", l, cl_module_names[m]);
            double v[CL_AN_NTYPES];
            if ((rc = pair_phi(px->d_out, px->d_in, px->r, px->a, px->b, py->r, py->a, py->b, o, v, what, err)))
                goto fail;
            for (int t = 0; t < CL_AN_NTYPES; t++) sm->phi[t][k] = v[t];
            /* random orthogonal baseline: Gaussian matrices of the same shapes */
            size_t na = (size_t)px->r * px->d_in + (size_t)px->d_out * px->r + (size_t)py->r * py->d_in +
                        (size_t)py->d_out * py->r;
            float *buf = cl_alloc(na, sizeof(float), err);
            if (!buf) { rc = pfx(err, "%s", what); goto fail; }
            for (size_t q = 0; q < na; q++) buf[q] = (float)cl_rng_normal(&g);
            float *ga = buf, *gb = ga + (size_t)px->r * px->d_in, *ha = gb + (size_t)px->d_out * px->r,
                  *hb = ha + (size_t)py->r * py->d_in;
            rc = pair_phi(px->d_out, px->d_in, px->r, ga, gb, py->r, ha, hb, o, v, what, err);
            cl_free(buf);
            if (rc) goto fail;
            for (int t = 0; t < CL_AN_NTYPES; t++) sm->base[t][k] = v[t];
            sm->d = px->d_in;
            sm->r = px->r;
        }
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            double s = 0, sb = 0;
            for (int k = 0; k < sm->n; k++) { s += sm->phi[t][k]; sb += sm->base[t][k]; }
            sm->mean[t] = sm->n ? s / sm->n : NAN;
            sm->base_mean[t] = sm->n ? sb / sm->n : NAN;
        }
    }
    if (res->nmod == 0) {
        rc = cl_errf(err, CL_EMISSING, "%s and %s adapt no module in common", x->dir, y->dir);
        goto fail;
    }
    return 0;
fail:
    cl_sim_result_free(res);
    return rc;
}

/* ------------------------------------------------------------------------------------------------ writers */

static const char *type_desc(int t) {
    return t == CL_AN_A ? "C_A = W0^-1 A^T" : t == CL_AN_B ? "C_B = W0^-1 B" : "C_BA = W0^-1 B A";
}

static void file_stem(char *buf, size_t n, const char *mod) {
    snprintf(buf, n, "%s", mod);
    for (char *c = buf; *c; c++)
        if (*c == '.') *c = '_';
}

static cJSON *matrix_json(const double *v, int n) {
    cJSON *rows = cJSON_CreateArray();
    for (int a = 0; rows && a < n; a++) cJSON_AddItemToArray(rows, cJSON_CreateDoubleArray(v + (size_t)a * n, n));
    return rows;
}

static int save_json(cJSON *root, const char *path, cl_error *err) {
    char *s = root ? cJSON_Print(root) : NULL;
    if (!s) return cl_errf(err, CL_ENOMEM, "%s: out of memory building the JSON", path);
    size_t len = strlen(s);
    int rc = cl_atomic_write(path, s, len, err);
    free(s);
    return rc;
}

/* The common tail of both analyses: unless an earlier step failed (rc), write OUT_DIR/JSON_NAME and
 * OUT_DIR/report.md; always free the JSON tree and the report. */
static int finish_outputs(int rc, cJSON *root, cl_sb *md, const char *out_dir, const char *json_name,
                          cl_error *err) {
    char path[1400];
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s", out_dir, json_name);
        rc = save_json(root, path, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/report.md", out_dir);
        rc = cl_sb_save(md, path, err);
    }
    cJSON_Delete(root);
    cl_sb_free(md);
    return rc;
}

static int write_map(const double *v, int rows, int cols, const char *const *rl, const char *const *cll,
                     const char *title, const char *xl, const char *yl, const char *out_dir, const char *stem,
                     cl_error *err) {
    /* three decimals when every value below the diagonal's 1 is small (e.g. random subspaces: r / d ~ 0.01) */
    double vmax_off = 0;
    for (int k = 0; k < rows * cols; k++)
        if (v[k] < 0.9999 && v[k] > vmax_off) vmax_off = v[k];
    cl_heatmap h = {rows, cols, v, rl, cll, title, xl, yl, 0.0, 1.0, vmax_off < 0.1 ? 3 : 2};
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.svg", out_dir, stem);
    int rc = cl_heatmap_svg(&h, path, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s.png", out_dir, stem);
    return cl_heatmap_png(&h, path, err);
}

static char **layer_labels(const int *layers, int n) {
    char **l = calloc((size_t)(n ? n : 1), sizeof *l);
    if (!l) return NULL;
    for (int k = 0; k < n; k++) {
        l[k] = malloc(12);
        if (!l[k]) {
            for (int q = 0; q < k; q++) free(l[q]);
            free(l);
            return NULL;
        }
        snprintf(l[k], 12, "%d", layers[k]);
    }
    return l;
}

static void free_labels(char **l, int n) {
    if (!l) return;
    for (int k = 0; k < n; k++) free(l[k]);
    free(l);
}

static void ij_text(char *buf, size_t n, int i, int j) {
    char a[16], b[16];
    if (i > 0) snprintf(a, sizeof a, "%d", i); else snprintf(a, sizeof a, "r");
    if (j > 0) snprintf(b, sizeof b, "%d", j); else snprintf(b, sizeof b, "r");
    snprintf(buf, n, "i=%s, j=%s", a, b);
}

int cl_conversion_write(const cl_conv_result *res, const cl_lora_adapter *ad, const char *model_dir,
                        const char *out_dir, cl_error *err) {
    int rc = cl_mkdir_p(out_dir, err);
    if (rc) return rc;
    char ij[64], path[1400], stem[96], title[256];
    ij_text(ij, sizeof ij, res->i, res->j);
    const char *side = cl_sv_side_name(res->side);
    /* conversion matrices */
    cl_st_writer *w = cl_st_writer_new();
    if (!w) return cl_errf(err, CL_ENOMEM, "%s: out of memory", out_dir);
    for (int k = 0; k < res->nmod && !rc; k++) {
        const cl_conv_module *cm = &res->mods[k];
        for (int l = 0; l < cm->n && !rc; l++) {
            const cl_conv_entry *e = &cm->e[l];
            char name[160];
            int64_t sh[2] = {e->d, e->r};
            snprintf(name, sizeof name, "%s.layer.%d.C_A", cl_module_names[cm->mod], e->layer);
            rc = cl_st_writer_add(w, name, CL_DT_F64, 2, sh, e->ca, err);
            snprintf(name, sizeof name, "%s.layer.%d.C_B", cl_module_names[cm->mod], e->layer);
            if (!rc) rc = cl_st_writer_add(w, name, CL_DT_F64, 2, sh, e->cb, err);
            if (!rc && e->cba) {
                int64_t s2[2] = {e->d, e->d};
                snprintf(name, sizeof name, "%s.layer.%d.C_BA", cl_module_names[cm->mod], e->layer);
                rc = cl_st_writer_add(w, name, CL_DT_F64, 2, s2, e->cba, err);
            }
        }
    }
    snprintf(path, sizeof path, "%s/conversion.safetensors", out_dir);
    if (!rc) rc = cl_st_writer_save(w, path, err);
    cl_st_writer_free(w);
    if (rc) return rc;

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "analysis", "conversion");
    cJSON_AddStringToObject(root, "adapter", ad->dir);
    cJSON_AddStringToObject(root, "model", model_dir ? model_dir : "");
    cJSON_AddStringToObject(root, "peft_type", ad->peft_type);
    cJSON_AddNumberToObject(root, "r", ad->r);
    cJSON_AddNumberToObject(root, "lora_alpha", ad->alpha);
    cJSON *opt = cJSON_AddObjectToObject(root, "options");
    if (res->i > 0) cJSON_AddNumberToObject(opt, "i", res->i); else cJSON_AddStringToObject(opt, "i", "r");
    if (res->j > 0) cJSON_AddNumberToObject(opt, "j", res->j); else cJSON_AddStringToObject(opt, "j", "r");
    cJSON_AddStringToObject(opt, "side", side);
    cJSON_AddNumberToObject(opt, "seed", (double)res->seed);
    cJSON_AddStringToObject(root, "summary_definition", "mean of the strict upper triangle of each phi matrix");
    cJSON_AddStringToObject(root, "matrices", "conversion.safetensors: <module>.layer.L.C_A (d x r), .C_B (d x r)"
                                              "[, .C_BA (d x d)], float64");
    cJSON *mods = cJSON_AddObjectToObject(root, "modules");
    cl_sb md = {0};
    cl_sb_printf(&md, "# Conversion matrices of a LoRA adapter (CondLoRA analysis)\n\n");
    cl_sb_printf(&md, "- adapter: `%s` (peft_type %s, r = %d, lora_alpha = %g%s)\n- base model: `%s`\n", ad->dir,
                 ad->peft_type[0] ? ad->peft_type : "?", ad->r, ad->alpha, ad->has_e ? ", AdaLoRA E folded into A" : "",
                 model_dir ? model_dir : "");
    cl_sb_printf(&md, "- conversion matrices per layer l: C_A = W0^-1 A^T, C_B = W0^-1 B, C_BA = W0^-1 B A (LU solves "
                      "in float64, LAPACK dgetrf/dgetrs; condition numbers from dgecon)\n");
    cl_sb_printf(&md, "- similarity: phi(X, Y, i, j) = ||U_X[:, :i]^T U_Y[:, :j]||_F^2 / min(i, j), %s singular "
                      "vectors, %s; summary = mean of the strict upper triangle\n",
                 side, ij);
    cl_sb_printf(&md, "- baseline: i.i.d. N(0, 1) matrices of shape %d x %d (seed %llu); expected phi of random "
                      "subspaces i j / (d min(i, j)) = %.4f\n\n",
                 res->base_d, res->base_r, (unsigned long long)res->seed, res->expected_random);
    cl_sb_printf(&md, "Layers are numbered as in the checkpoint's tensor names (0-based; [P1] counts from 1). Colour "
                      "scale 0..1 in every map.\n\n");
    cl_sb_printf(&md, "| module | layers | mean phi C_A | mean phi C_B | mean phi C_BA | cond(W0) min | cond(W0) max |\n"
                      "|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < res->nmod; k++) {
        const cl_conv_module *cm = &res->mods[k];
        double cmin = INFINITY, cmax = 0;
        for (int l = 0; l < cm->n; l++) {
            if (cm->e[l].cond1 < cmin) cmin = cm->e[l].cond1;
            if (cm->e[l].cond1 > cmax) cmax = cm->e[l].cond1;
        }
        cl_sb_printf(&md, "| %s | %d | %.4f | %.4f | %.4f | %.4g | %.4g |\n", cl_module_names[cm->mod], cm->n,
                     cm->mean[0], cm->mean[1], cm->mean[2], cmin, cmax);
    }
    cl_sb_printf(&md, "| Gaussian baseline | %d | %.4f | %.4f | %.4f | | |\n\n", res->n_base, res->base_mean[0],
                 res->base_mean[1], res->base_mean[2]);
    for (int k = 0; k < res->nmod && !rc; k++) {
        const cl_conv_module *cm = &res->mods[k];
        const char *mn = cl_module_names[cm->mod];
        cJSON *mj = cJSON_AddObjectToObject(mods, mn);
        cJSON *lay = cJSON_AddArrayToObject(mj, "layers"), *cond = cJSON_AddArrayToObject(mj, "cond1");
        for (int l = 0; l < cm->n; l++) {
            cJSON_AddItemToArray(lay, cJSON_CreateNumber(cm->layers[l]));
            cJSON_AddItemToArray(cond, cJSON_CreateNumber(cm->e[l].cond1));
        }
        cJSON_AddNumberToObject(mj, "d", cm->e[0].d);
        cJSON_AddNumberToObject(mj, "r", cm->e[0].r);
        cJSON *ph = cJSON_AddObjectToObject(mj, "phi"), *mean = cJSON_AddObjectToObject(mj, "mean");
        char **labels = layer_labels(cm->layers, cm->n);
        if (!labels) { rc = cl_errf(err, CL_ENOMEM, "out of memory"); break; }
        cl_sb_printf(&md, "## %s\n\n", mn);
        for (int t = 0; t < CL_AN_NTYPES && !rc; t++) {
            cJSON_AddItemToObject(ph, cl_an_type_names[t], matrix_json(cm->phi[t], cm->n));
            cJSON_AddNumberToObject(mean, cl_an_type_names[t], cm->mean[t]);
            file_stem(stem, sizeof stem, mn);
            snprintf(stem + strlen(stem), sizeof stem - strlen(stem), "_C_%s", cl_an_type_names[t]);
            snprintf(title, sizeof title, "%s  %s  phi(%s, %s)  mean %.4f", mn, type_desc(t), side, ij, cm->mean[t]);
            rc = write_map(cm->phi[t], cm->n, cm->n, (const char *const *)labels, (const char *const *)labels, title,
                           "layer", "layer", out_dir, stem, err);
            cl_sb_printf(&md, "![%s %s](%s.svg)\n\n[PNG](%s.png)\n\n", mn, type_desc(t), stem, stem);
        }
        free_labels(labels, cm->n);
    }
    if (!rc) {
        cJSON *bj = cJSON_AddObjectToObject(root, "baseline");
        cJSON *shape = cJSON_AddArrayToObject(bj, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(res->base_d));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(res->base_r));
        cJSON_AddStringToObject(bj, "kind", "i.i.d. N(0,1); BA: product of two Gaussian factors (d x r)(r x d)");
        cJSON_AddNumberToObject(bj, "n", res->n_base);
        cJSON_AddNumberToObject(bj, "expected_random", res->expected_random);
        cJSON *ph = cJSON_AddObjectToObject(bj, "phi"), *mean = cJSON_AddObjectToObject(bj, "mean");
        int *idx = malloc(sizeof(int) * (size_t)(res->n_base ? res->n_base : 1));
        char **labels = NULL;
        if (idx) {
            for (int k = 0; k < res->n_base; k++) idx[k] = k;
            labels = layer_labels(idx, res->n_base);
        }
        free(idx);
        if (!labels) rc = cl_errf(err, CL_ENOMEM, "out of memory");
        cl_sb_printf(&md, "## Gaussian baseline\n\n");
        for (int t = 0; t < CL_AN_NTYPES && !rc; t++) {
            cJSON_AddItemToObject(ph, cl_an_type_names[t], matrix_json(res->base_phi[t], res->n_base));
            cJSON_AddNumberToObject(mean, cl_an_type_names[t], res->base_mean[t]);
            snprintf(stem, sizeof stem, "baseline_C_%s", cl_an_type_names[t]);
            snprintf(title, sizeof title, "Gaussian baseline  %s  phi(%s, %s)  mean %.4f", type_desc(t), side, ij,
                     res->base_mean[t]);
            rc = write_map(res->base_phi[t], res->n_base, res->n_base, (const char *const *)labels,
                           (const char *const *)labels, title, "matrix", "matrix", out_dir, stem, err);
            cl_sb_printf(&md, "![baseline %s](%s.svg)\n\n[PNG](%s.png)\n\n", type_desc(t), stem, stem);
        }
        free_labels(labels, res->n_base);
    }
    return finish_outputs(rc, root, &md, out_dir, "conversion.json", err);
}

static const char *const sim_row_names[6] = {"A", "B", "dW", "random A", "random B", "random dW"};

void cl_similarity_print(const cl_sim_result *res, FILE *f) {
    char ij[64];
    ij_text(ij, sizeof ij, res->i, res->j);
    fprintf(f, "phi per layer (A: right singular vectors, B and dW = BA: left; %s)\n", ij);
    for (int k = 0; k < res->nmod; k++) {
        const cl_sim_module *sm = &res->mods[k];
        fprintf(f, "\n%-10s", cl_module_names[sm->mod]);
        for (int l = 0; l < sm->n; l++) fprintf(f, " %5d", sm->layers[l]);
        fprintf(f, " |  mean\n");
        for (int row = 0; row < 6; row++) {
            int t = row % 3;
            const double *v = row < 3 ? sm->phi[t] : sm->base[t];
            fprintf(f, "%-10s", sim_row_names[row]);
            for (int l = 0; l < sm->n; l++) fprintf(f, " %5.2f", v[l]);
            fprintf(f, " | %5.3f\n", row < 3 ? sm->mean[t] : sm->base_mean[t]);
        }
    }
}

int cl_similarity_write(const cl_sim_result *res, const char *label_x, const char *label_y, const char *out_dir,
                        cl_error *err) {
    int rc = cl_mkdir_p(out_dir, err);
    if (rc) return rc;
    char ij[64], stem[96], title[512];
    ij_text(ij, sizeof ij, res->i, res->j);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "analysis", "similarity");
    cJSON_AddStringToObject(root, "adapter_x", label_x);
    cJSON_AddStringToObject(root, "adapter_y", label_y);
    cJSON *opt = cJSON_AddObjectToObject(root, "options");
    if (res->i > 0) cJSON_AddNumberToObject(opt, "i", res->i); else cJSON_AddStringToObject(opt, "i", "r");
    if (res->j > 0) cJSON_AddNumberToObject(opt, "j", res->j); else cJSON_AddStringToObject(opt, "j", "r");
    cJSON_AddStringToObject(opt, "vectors", "A: right, B: left, BA: left");
    cJSON_AddNumberToObject(opt, "seed", (double)res->seed);
    cJSON_AddStringToObject(root, "baseline", "Gaussian matrices of the same shapes (uniformly random orthogonal "
                                              "singular subspaces)");
    cJSON *mods = cJSON_AddObjectToObject(root, "modules");
    cl_sb md = {0};
    cl_sb_printf(&md, "# Subspace similarity per layer\n\n- X: `%s`\n- Y: `%s`\n", label_x, label_y);
    cl_sb_printf(&md, "- phi(X_l, Y_l, i, j) with %s: A with right singular vectors, B and dW = B A with left ones "
                      "(as Table 3 of Kim et al. 2024); random rows: Gaussian matrices of the same shapes\n"
                      "- layers are numbered as in the checkpoint's tensor names (0-based; the paper counts from 1)\n\n",
                 ij);
    for (int k = 0; k < res->nmod && !rc; k++) {
        const cl_sim_module *sm = &res->mods[k];
        const char *mn = cl_module_names[sm->mod];
        cJSON *mj = cJSON_AddObjectToObject(mods, mn);
        cJSON *lay = cJSON_AddArrayToObject(mj, "layers");
        for (int l = 0; l < sm->n; l++) cJSON_AddItemToArray(lay, cJSON_CreateNumber(sm->layers[l]));
        cJSON *ph = cJSON_AddObjectToObject(mj, "phi"), *bs = cJSON_AddObjectToObject(mj, "random");
        cJSON *mean = cJSON_AddObjectToObject(mj, "mean"), *bmean = cJSON_AddObjectToObject(mj, "random_mean");
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            cJSON_AddItemToObject(ph, cl_an_type_names[t], cJSON_CreateDoubleArray(sm->phi[t], sm->n));
            cJSON_AddItemToObject(bs, cl_an_type_names[t], cJSON_CreateDoubleArray(sm->base[t], sm->n));
            cJSON_AddNumberToObject(mean, cl_an_type_names[t], sm->mean[t]);
            cJSON_AddNumberToObject(bmean, cl_an_type_names[t], sm->base_mean[t]);
        }
        /* Markdown table like Table 3 */
        cl_sb_printf(&md, "## %s\n\n| | ", mn);
        for (int l = 0; l < sm->n; l++) cl_sb_printf(&md, "%d | ", sm->layers[l]);
        cl_sb_printf(&md, "mean |\n|---|");
        for (int l = 0; l <= sm->n; l++) cl_sb_printf(&md, "---|");
        cl_sb_printf(&md, "\n");
        double *grid = malloc(sizeof(double) * 6 * (size_t)(sm->n ? sm->n : 1));
        char **labels = layer_labels(sm->layers, sm->n);
        if (!grid || !labels) {
            free(grid);
            free_labels(labels, sm->n);
            rc = cl_errf(err, CL_ENOMEM, "out of memory");
            break;
        }
        for (int row = 0; row < 6; row++) {
            int t = row % 3;
            const double *v = row < 3 ? sm->phi[t] : sm->base[t];
            cl_sb_printf(&md, "| %s | ", sim_row_names[row]);
            for (int l = 0; l < sm->n; l++) {
                cl_sb_printf(&md, "%.2f | ", v[l]);
                grid[(size_t)row * sm->n + l] = v[l];
            }
            cl_sb_printf(&md, "%.3f |\n", row < 3 ? sm->mean[t] : sm->base_mean[t]);
        }
        file_stem(stem, sizeof stem, mn);
        snprintf(stem + strlen(stem), sizeof stem - strlen(stem), "_similarity");
        snprintf(title, sizeof title, "%s  phi per layer (%s)  mean A %.3f  B %.3f  dW %.3f", mn, ij, sm->mean[0],
                 sm->mean[1], sm->mean[2]);
        rc = write_map(grid, 6, sm->n, sim_row_names, (const char *const *)labels, title, "layer", NULL, out_dir,
                       stem, err);
        cl_sb_printf(&md, "\n![%s similarity](%s.svg)\n\n[PNG](%s.png)\n\n", mn, stem, stem);
        free(grid);
        free_labels(labels, sm->n);
    }
    return finish_outputs(rc, root, &md, out_dir, "similarity.json", err);
}
