/* PEFT adapter directories: cl_peft_load (PEFT 0.10's module matching, rank_pattern / alpha_pattern, tensor names)
 * and cl_peft_write_config (see peft_io.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "adapters/peft_io.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "adapters/adapter_impl.h"
#include "data/glue.h"
#include "core/jsonio.h"
#include "core/util.h"
#include "io/safetensors.h"

#define PFX "base_model.model."
#define PFX_LEN (sizeof PFX - 1)

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int cl_peft_resolve_dir(const char *path, char *out, size_t n, cl_error *err) {
    char p[4200];
    if (!path || !*path) return cl_errf(err, CL_EINVAL, "adapter: no directory given");
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return cl_errf(err, CL_EMISSING, "%s: not a directory (expected a PEFT adapter or a condlora run directory)",
                       path);
    snprintf(p, sizeof p, "%s/adapter_config.json", path);
    if (is_file(p)) {
        if ((size_t)snprintf(out, n, "%s", path) >= n) return cl_errf(err, CL_EINVAL, "%s: path too long", path);
        return 0;
    }
    snprintf(p, sizeof p, "%s/best/adapter_config.json", path);
    if (is_file(p)) {
        if ((size_t)snprintf(out, n, "%s/best", path) >= n) return cl_errf(err, CL_EINVAL, "%s: path too long", path);
        return 0;
    }
    return cl_errf(err, CL_EMISSING,
                   "%s: no adapter_config.json (nor best/adapter_config.json): not a PEFT adapter directory or a "
                   "condlora run directory",
                   path);
}

/* PEFT's saved name for an in-memory name: drop the "modules_to_save" and adapter-name "default" segments
 * (classifier.modules_to_save.default.weight -> classifier.weight, lora_A.default.weight -> lora_A.weight). */
static void norm_name(const char *in, char *out, size_t n) {
    size_t o = 0;
    const char *p = in;
    while (*p) {
        const char *e = strchr(p, '.');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int drop = (len == 15 && !strncmp(p, "modules_to_save", 15)) || (len == 7 && !strncmp(p, "default", 7));
        if (!drop && o + len + 2 < n) {
            if (o) out[o++] = '.';
            memcpy(out + o, p, len);
            o += len;
        }
        p += len + (e ? 1 : 0);
    }
    out[o < n ? o : n - 1] = 0;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* "bert.encoder.layer.3.attention.self.query": the module's name in *ForSequenceClassification */
static void mod_key(const cl_weights *model, int l, cl_module m, char *buf, size_t n) {
    char p[256];
    cl_adapter_module_path(model, l, m, p, sizeof p);
    snprintf(buf, n, "%s", p + PFX_LEN);
}

/* ---- regular expressions (Python re semantics for the patterns PEFT uses) ---------------------------------- */
/* 1: match, 0: none, -1: error (err set). full: re.fullmatch, else re.match (anchored at the start). grp: group 1
 * as an integer (-1 when it did not participate), may be NULL. */
static int rx(const char *pat, const char *subj, int full, long *grp, const char *where, cl_error *err) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_ANCHORED | (full ? PCRE2_ENDANCHORED : 0), &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[200];
        pcre2_get_error_message(ec, msg, sizeof msg);
        cl_errf(err, CL_EFORMAT, "%s: invalid regular expression '%.200s' (at offset %zu: %s)", where, pat,
                (size_t)eo, (const char *)msg);
        return -1;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        pcre2_code_free(re);
        cl_errf(err, CL_ENOMEM, "%s: out of memory", where);
        return -1;
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, strlen(subj), 0, 0, md, NULL), res;
    if (rc >= 0) {
        res = 1;
        if (grp) {
            *grp = -1;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (rc >= 2 && ov[2] != PCRE2_UNSET) *grp = strtol(subj + ov[2], NULL, 10);
        }
    } else if (rc == PCRE2_ERROR_NOMATCH) {
        res = 0;
    } else {
        cl_errf(err, CL_EFORMAT, "%s: regular expression '%.200s' failed on '%s' (pcre2 error %d)", where, pat, subj,
                rc);
        res = -1;
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return res;
}

/* ---- adapter_config.json -------------------------------------------------------------------------------------- */
typedef struct {
    const char *path;
    cJSON *root;
    int adalora;
    int r, init_r, target_r;
    float alpha;
    int rslora;
    const cJSON *target;  /* string, array of strings, or NULL (PEFT's default ["query", "value"]) */
    const cJSON *lt;      /* layers_to_transform: number, array of numbers, or NULL */
    const cJSON *lpat;    /* layers_pattern: string, array of strings, or NULL */
    const cJSON *rpat, *apat; /* rank_pattern, alpha_pattern: objects or NULL */
    int compat;           /* condlora's pre-PEFT-exact format */
    const char *c_method, *c_targets, *c_layers;
    const char *const *dflt;  /* the architecture's PEFT default target_modules (NULL-terminated) */
} pcfg;

static const cJSON *item(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int get_int(const pcfg *c, const char *k, int dflt, int *out, cl_error *err) {
    const cJSON *v = item(c->root, k);
    if (!v) return *out = dflt, 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return cl_errf(err, CL_EFORMAT, "%s: key '%s': expected an integer", c->path, k);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const pcfg *c, const char *k, float dflt, float *out, cl_error *err) {
    const cJSON *v = item(c->root, k);
    if (!v) return *out = dflt, 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return cl_errf(err, CL_EFORMAT, "%s: key '%s': expected a number", c->path, k);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_bool(const pcfg *c, const char *k, int *out, cl_error *err) {
    const cJSON *v = item(c->root, k);
    if (!v) return *out = 0, 0;
    if (!cJSON_IsBool(v)) return cl_errf(err, CL_EFORMAT, "%s: key '%s': expected true or false", c->path, k);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* v is one value that `is` accepts, or an array of such values (PEFT's "str | list[str]", "int | list[int]") */
static int one_or_list(const cJSON *v, cJSON_bool (*is)(const cJSON *)) {
    if (!cJSON_IsArray(v)) return is(v) != 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) if (!is(it)) return 0;
    return 1;
}

static int parse_config(pcfg *c, const char *path, cl_error *err) {
    memset(c, 0, sizeof *c);
    c->path = path;
    char *txt = NULL;
    size_t len = 0;
    int rc = cl_read_file(path, &txt, &len, err);
    if (rc) return rc;
    c->root = cJSON_ParseWithLength(txt, len);
    if (!c->root) {
        const char *ep = cJSON_GetErrorPtr();
        long off = ep && ep >= txt && ep <= txt + len ? (long)(ep - txt) : -1;
        free(txt);
        return cl_errf(err, CL_EFORMAT, "%s: not valid JSON (near byte %ld)", path, off);
    }
    free(txt);
    if (!cJSON_IsObject(c->root)) return cl_errf(err, CL_EFORMAT, "%s: not a JSON object", path);
    const cJSON *v = item(c->root, "peft_type");
    if (!v) return cl_errf(err, CL_EMISSING, "%s: key 'peft_type' is missing (not a PEFT adapter config)", path);
    if (!cJSON_IsString(v)) return cl_errf(err, CL_EFORMAT, "%s: key 'peft_type': expected a string", path);
    if (!strcmp(v->valuestring, "ADALORA")) c->adalora = 1;
    else if (strcmp(v->valuestring, "LORA"))
        return cl_errf(err, CL_EUNSUP, "%s: key 'peft_type': '%.60s' is not supported (LORA or ADALORA)", path,
                       v->valuestring);
    if ((rc = get_int(c, "r", 8, &c->r, err)) || (rc = get_num(c, "lora_alpha", 8, &c->alpha, err)) ||
        (rc = get_bool(c, "use_rslora", &c->rslora, err)))
        return rc;
    if (c->adalora && ((rc = get_int(c, "init_r", 12, &c->init_r, err)) ||
                       (rc = get_int(c, "target_r", 8, &c->target_r, err))))
        return rc;
    int r_used = c->adalora ? c->init_r : c->r;
    if (r_used <= 0)
        return cl_errf(err, CL_EFORMAT, "%s: key '%s': must be a positive integer (got %d)", path,
                       c->adalora ? "init_r" : "r", r_used);
    if (!(c->alpha > 0))
        return cl_errf(err, CL_EUNSUP, "%s: key 'lora_alpha': %g is not supported (must be > 0)", path,
                       (double)c->alpha);
    if ((v = item(c->root, "bias")) && (!cJSON_IsString(v) || strcmp(v->valuestring, "none")))
        return cl_errf(err, CL_EUNSUP, "%s: key 'bias': only \"none\" is supported (trained biases are not)", path);
    int dora = 0;
    if ((rc = get_bool(c, "use_dora", &dora, err))) return rc;
    if (dora) return cl_errf(err, CL_EUNSUP, "%s: key 'use_dora': DoRA adapters are not supported", path);
    if (item(c->root, "layer_replication"))
        return cl_errf(err, CL_EUNSUP, "%s: key 'layer_replication' is not supported", path);
    c->target = item(c->root, "target_modules");
    if (c->target) {
        if (!one_or_list(c->target, cJSON_IsString) || (cJSON_IsArray(c->target) && !cJSON_GetArraySize(c->target)))
            return cl_errf(err, CL_EFORMAT, "%s: key 'target_modules': expected a regex string or a non-empty list "
                                            "of module names", path);
    }
    c->lt = item(c->root, "layers_to_transform");
    if (c->lt) {
        if (!one_or_list(c->lt, cJSON_IsNumber))
            return cl_errf(err, CL_EFORMAT, "%s: key 'layers_to_transform': expected an integer or a list", path);
        if (cJSON_IsArray(c->lt) && cJSON_GetArraySize(c->lt) == 0) c->lt = NULL; /* PEFT: empty = all */
    }
    c->lpat = item(c->root, "layers_pattern");
    if (c->lpat) {
        if (!one_or_list(c->lpat, cJSON_IsString))
            return cl_errf(err, CL_EFORMAT, "%s: key 'layers_pattern': expected a string or a list", path);
        if ((cJSON_IsString(c->lpat) && !*c->lpat->valuestring) ||
            (cJSON_IsArray(c->lpat) && cJSON_GetArraySize(c->lpat) == 0))
            c->lpat = NULL;
    }
    if (c->target && cJSON_IsString(c->target) && (c->lt || c->lpat))
        return cl_errf(err, CL_EFORMAT, "%s: key 'layers_to_transform' / 'layers_pattern' cannot be used with a regex "
                                        "target_modules (as PEFT)", path);
    const char *pk[2] = {"rank_pattern", "alpha_pattern"};
    const cJSON **pp[2] = {&c->rpat, &c->apat};
    for (int k = 0; k < 2; k++) {
        *pp[k] = item(c->root, pk[k]);
        if (!*pp[k]) continue;
        if (!cJSON_IsObject(*pp[k])) return cl_errf(err, CL_EFORMAT, "%s: key '%s': expected an object", path, pk[k]);
        if (c->adalora && cJSON_GetArraySize(*pp[k]) > 0)
            return cl_errf(err, CL_EUNSUP, "%s: key '%s': an AdaLoRA %s is not supported", path, pk[k], pk[k]);
        const cJSON *it;
        cJSON_ArrayForEach(it, *pp[k]) {
            int ok = cJSON_IsNumber(it) && isfinite(it->valuedouble) &&
                     (k == 1 ? it->valuedouble > 0 : it->valuedouble == floor(it->valuedouble) && it->valuedouble > 0 &&
                                                         it->valuedouble < 1e6);
            if (!ok)
                return cl_errf(err, CL_EFORMAT, "%s: key '%s.%s': expected a positive %s", path, pk[k], it->string,
                               k ? "number" : "integer");
        }
    }
    /* condlora's format before cl_peft_write_config: a "condlora" object, no rank_pattern */
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(c->root, "condlora");
    if (cJSON_IsObject(cj) && !cJSON_HasObjectItem(c->root, "rank_pattern")) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(cj, "options"), *m = item(cj, "method");
        const cJSON *t = op ? item(op, "target_modules") : NULL, *l = op ? item(op, "layers") : NULL;
        if (!cJSON_IsString(m) || !cJSON_IsString(t) || (l && !cJSON_IsString(l)))
            return cl_errf(err, CL_EFORMAT, "%s: key 'condlora': expected method and options.target_modules strings",
                           path);
        c->compat = 1;
        c->c_method = m->valuestring;
        c->c_targets = t->valuestring;
        c->c_layers = l ? l->valuestring : "";
    }
    return 0;
}

/* PEFT 0.10 check_target_module_exists(config, key); layer: the key's layer index. 1 / 0 / -1 (error). */
static int target_found(const pcfg *c, const char *key, cl_error *err) {
    char where[4200];
    snprintf(where, sizeof where, "%s: key 'target_modules'", c->path);
    if (c->target && cJSON_IsString(c->target)) return rx(c->target->valuestring, key, 1, NULL, where, err);
    int n = 0, found = 0;
    if (c->target) n = cJSON_GetArraySize(c->target);
    else while (c->dflt && n < 3 && c->dflt[n]) n++;
    for (int i = 0; i < n && !found; i++) {
        const char *t = c->target ? cJSON_GetArrayItem(c->target, i)->valuestring : c->dflt[i];
        if (!strcmp(key, t)) return 1; /* named exactly: layers_to_transform does not apply */
    }
    size_t kl = strlen(key);
    for (int i = 0; i < n && !found; i++) {
        const char *t = c->target ? cJSON_GetArrayItem(c->target, i)->valuestring : c->dflt[i];
        size_t tl = strlen(t);
        found = tl + 1 <= kl && key[kl - tl - 1] == '.' && !strcmp(key + kl - tl, t);
    }
    if (!found || !c->lt) return found;
    long idx = -1;
    snprintf(where, sizeof where, "%s: key 'layers_pattern'", c->path);
    if (!c->lpat) {
        if (rx(".*\\.[^.]*\\.(\\d+)\\.", key, 0, &idx, where, err) < 0) return -1;
    } else {
        int np = cJSON_IsString(c->lpat) ? 1 : cJSON_GetArraySize(c->lpat);
        for (int i = 0; i < np; i++) {
            const char *p = cJSON_IsString(c->lpat) ? c->lpat->valuestring : cJSON_GetArrayItem(c->lpat, i)->valuestring;
            char pat[600];
            snprintf(pat, sizeof pat, ".*\\.%.500s\\.(\\d+)\\.", p);
            int m = rx(pat, key, 0, &idx, where, err);
            if (m < 0) return -1;
            if (m) break;
            idx = -1;
        }
    }
    if (idx < 0) return 0;
    if (cJSON_IsNumber(c->lt)) return (double)idx == c->lt->valuedouble;
    const cJSON *it;
    cJSON_ArrayForEach(it, c->lt) if ((double)idx == it->valuedouble) return 1;
    return 0;
}

/* PEFT 0.10 _create_and_replace: the first key K of rank_pattern, then alpha_pattern, with re.match(".*\.K$", key) */
static int pattern_lookup(const pcfg *c, const char *key, int *r, float *alpha, cl_error *err) {
    const cJSON *pats[2] = {c->rpat, c->apat};
    const char *names[2] = {"rank_pattern", "alpha_pattern"};
    for (int k = 0; k < 2; k++) {
        if (!pats[k]) continue;
        const cJSON *it;
        cJSON_ArrayForEach(it, pats[k]) {
            char pat[700], where[4200];
            snprintf(pat, sizeof pat, ".*\\.%.600s$", it->string);
            snprintf(where, sizeof where, "%s: key '%s'", c->path, names[k]);
            int m = rx(pat, key, 0, NULL, where, err);
            if (m < 0) return -1;
            if (!m) continue;
            const cJSON *rv = c->rpat ? cJSON_GetObjectItemCaseSensitive(c->rpat, it->string) : NULL;
            const cJSON *av = c->apat ? cJSON_GetObjectItemCaseSensitive(c->apat, it->string) : NULL;
            if (rv) *r = (int)rv->valuedouble;
            if (av) *alpha = (float)av->valuedouble;
            return 0;
        }
    }
    return 0;
}

/* ---- tensors of adapter_model.safetensors, by normalised name -------------------------------------------------- */
typedef struct {
    char name[CL_PARAM_NAME_MAX + 64];
    const cl_st_tensor *t;
    int used;
} ftensor;

static int index_file(const cl_safetensors *st, ftensor **out, cl_error *err) {
    ftensor *f = calloc((size_t)(st->n ? st->n : 1), sizeof *f);
    if (!f) return cl_errf(err, CL_ENOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->n; i++) {
        norm_name(st->t[i].name, f[i].name, sizeof f[i].name);
        f[i].t = &st->t[i];
        for (int j = 0; j < i; j++)
            if (!strcmp(f[j].name, f[i].name)) {
                int rc = cl_errf(err, CL_EFORMAT, "%s: tensors '%s' and '%s' are the same parameter", st->path,
                                 st->t[j].name, st->t[i].name);
                free(f);
                return rc;
            }
    }
    *out = f;
    return 0;
}

static ftensor *ffind(ftensor *f, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].name, name)) return &f[i];
    return NULL;
}

static int head_out_rows(const ftensor *f, int n) {
    for (int i = 0; i < n; i++)
        if ((!strcmp(f[i].name, PFX "classifier.weight") || !strcmp(f[i].name, PFX "classifier.out_proj.weight")) &&
            f[i].t->ndim == 2)
            return (int)f[i].t->shape[0];
    return 0;
}

int cl_peft_num_labels(const char *dir, int *num_labels, cl_error *err) {
    char d[4096], p[4200];
    *num_labels = 0;
    int rc = cl_peft_resolve_dir(dir, d, sizeof d, err);
    if (rc) return rc;
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    cl_safetensors st;
    if ((rc = cl_st_open(&st, p, err))) return rc;
    ftensor *f = NULL;
    if (!(rc = index_file(&st, &f, err))) *num_labels = head_out_rows(f, st.n);
    free(f);
    cl_st_close(&st);
    return rc;
}

/* ---- load ------------------------------------------------------------------------------------------------------- */
void cl_peft_free(cl_peft *pf) {
    if (!pf) return;
    cl_adapter_free(pf->ad); /* unmerges */
    if (pf->has_head && pf->model) {
        cl_linear *dn = cl_head_dense(pf->model);
        if (dn) dn->w = pf->saved_head[0], dn->b = pf->saved_head[1];
        pf->model->head_out.w = pf->saved_head[2], pf->model->head_out.b = pf->saved_head[3];
    }
    cl_params_free(&pf->P);
    free(pf);
}

/* Layer list "0,1,5" of the layers flagged in on[L] */
static void layer_list(const unsigned char *on, int L, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int l = 0; l < L && o + 12 < n; l++)
        if (on[l]) o += (size_t)snprintf(buf + o, n - o, "%s%d", o ? "," : "", l);
}

int cl_peft_load(cl_peft **out, const char *dir, cl_weights *model, cl_error *err) {
    *out = NULL;
    cl_peft *pf = calloc(1, sizeof *pf);
    if (!pf) return cl_errf(err, CL_ENOMEM, "adapter: out of memory");
    cl_params_init(&pf->P);
    pf->model = model;
    int rc = cl_peft_resolve_dir(dir, pf->dir, sizeof pf->dir, err);
    if (rc) {
        free(pf);
        return rc;
    }
    const int L = model->cfg.num_layers, NM = L * CL_MOD_COUNT;
    char cfg_path[4200], st_path[4200], key[256], name[CL_PARAM_NAME_MAX + 64];
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", pf->dir);
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", pf->dir);
    pcfg c;
    cl_safetensors st;
    memset(&st, 0, sizeof st);
    ftensor *ft = NULL;
    int *rank = calloc((size_t)(NM > 0 ? NM : 1), sizeof(int));
    float *alpha = calloc((size_t)(NM > 0 ? NM : 1), sizeof(float));
    cl_adapter *tmp = NULL;
    if (!rank || !alpha) {
        rc = cl_errf(err, CL_ENOMEM, "adapter: out of memory");
        goto fail;
    }
    if ((rc = parse_config(&c, cfg_path, err))) goto fail;
    snprintf(pf->peft_type, sizeof pf->peft_type, "%s", c.adalora ? "ADALORA" : "LORA");
    if (!is_file(st_path)) {
        char bin[4200];
        snprintf(bin, sizeof bin, "%s/adapter_model.bin", pf->dir);
        rc = cl_errf(err, CL_EMISSING, "%s: missing%s", st_path,
                     is_file(bin) ? " (adapter_model.bin is there: save the adapter with safe_serialization=True)" : "");
        goto fail;
    }
    if ((rc = cl_st_open(&st, st_path, err))) goto fail;
    if ((rc = index_file(&st, &ft, err))) goto fail;
    /* an adapter for another architecture */
    const cl_arch_desc *arch = cl_model_arch(model);
    for (int i = 0; i < st.n; i++) {
        const cl_arch_desc *other = cl_arch_by_peft_name(ft[i].name);
        if (other && other != arch) {
            rc = cl_errf(err, CL_EFORMAT, "%s: tensor '%s' belongs to a%s %s model, but the base model is %s (maybe "
                         "the wrong base model?)", st_path, st.t[i].name, other->name[0] == 'M' ? "n" : "",
                         other->name, arch->name);
            goto fail;
        }
    }
    if (!c.target && !arch->peft_default[0] && !c.compat) {
        rc = cl_errf(err, CL_EFORMAT, "%s: key 'target_modules' is null, and PEFT has no default target modules for "
                     "%s (model_type %s): PEFT refuses this config (\"Please specify `target_modules` in "
                     "`peft_config`\"); name the modules, e.g. [\"%s\", \"%s\"]", cfg_path, arch->name,
                     model->cfg.model_type, arch->peft[CL_MOD_QUERY], arch->peft[CL_MOD_VALUE]);
        goto fail;
    }
    c.dflt = arch->peft_default;

    /* which modules, with which rank and alpha */
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, c.adalora ? CL_METHOD_ADALORA : CL_METHOD_LORA);
    o.r = c.adalora ? c.init_r : c.r;
    o.alpha = c.alpha;
    o.rslora = c.rslora;
    if (c.adalora) o.ada_target_r = c.target_r > 0 && c.target_r <= o.r ? c.target_r : o.r;
    if (c.compat) {
        /* condlora's own option semantics, through a throw-away adapter */
        o.target_modules = c.c_targets;
        o.layers = c.c_layers;
        if ((rc = cl_adapter_create(&tmp, &o, model, err))) {
            cl_err_prefix(err, "%s: key 'condlora.options'", cfg_path);
            goto fail;
        }
        cl_adapter_ranks(tmp, rank);
        int salora = !strcmp(c.c_method, "salora"), any = 0;
        for (int i = 0; i < NM; i++) {
            alpha[i] = o.alpha;
            if (rank[i] < 0) rank[i] = 0;
            else if (salora) { /* the learned rank is the exported one; no tensors: rank 0 */
                cl_adapter_module_path(model, i / CL_MOD_COUNT, (cl_module)(i % CL_MOD_COUNT), name, sizeof name - 32);
                strcat(name, ".lora_A.weight");
                const ftensor *a = ffind(ft, st.n, name);
                rank[i] = a && a->t->ndim == 2 ? (int)a->t->shape[0] : 0;
            }
            any |= rank[i] > 0;
        }
        if (!any) {
            rc = cl_errf(err, CL_EMISSING, "%s: no adapter tensors (every module has rank 0)", st_path);
            goto fail;
        }
        cl_adapter_free(tmp);
        tmp = NULL;
    } else {
        int any = 0;
        for (int l = 0; l < L; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                int i = l * CL_MOD_COUNT + m;
                mod_key(model, l, (cl_module)m, key, sizeof key);
                int f = target_found(&c, key, err);
                if (f < 0) {
                    rc = err ? (int)err->code : CL_EFORMAT;
                    goto fail;
                }
                rank[i] = 0, alpha[i] = c.alpha;
                if (!f) continue;
                int r = o.r;
                float a = c.alpha;
                if ((rc = pattern_lookup(&c, key, &r, &a, err))) goto fail;
                rank[i] = r, alpha[i] = a;
                any = 1;
            }
        /* modules PEFT would adapt that condlora does not */
        const char *pre = arch->prefix;
        const char *extra[4] = {arch->pooler, arch->word_emb, arch->pos_emb, arch->type_emb};
        for (int k = 0; k < 4; k++) {
            if (!extra[k] || (k == 0 && (!arch->pooler_in_seqcls || !model->pooler.w))) continue;
            snprintf(key, sizeof key, "%s.%s", pre, extra[k]);
            int f = target_found(&c, key, err);
            if (f < 0) {
                rc = err ? (int)err->code : CL_EFORMAT;
                goto fail;
            }
            if (f) {
                rc = cl_errf(err, CL_EUNSUP,
                             "%s: key 'target_modules' selects '%s', which condlora does not adapt (only the encoder "
                             "layers' %s, %s, %s, %s, %s, %s)", cfg_path, key, arch->lin[0], arch->lin[1],
                             arch->lin[2], arch->lin[3], arch->lin[4], arch->lin[5]);
                goto fail;
            }
        }
        if (!any) {
            rc = cl_errf(err, CL_EFORMAT, "%s: key 'target_modules': no module of the %d-layer %s encoder matches "
                         "(its modules end in %s, %s, %s, %s, %s, %s)", cfg_path, L, arch->name, arch->peft[0],
                         arch->peft[1], arch->peft[2], arch->peft[3], arch->peft[4], arch->peft[5]);
            goto fail;
        }
    }
    int nmods = 0;
    for (int i = 0; i < NM; i++) nmods += rank[i] > 0;
    pf->n_modules = nmods;
    if (!c.adalora) {
        o.mod_rank = rank;
        o.mod_alpha = alpha;
        o.target_modules = NULL, o.layers = NULL;
    } else {
        /* AdaLoRA: target types x layers */
        int tg[CL_MOD_COUNT] = {0};
        unsigned char on[L > 0 ? L : 1];
        memset(on, 0, sizeof on);
        for (int i = 0; i < NM; i++)
            if (rank[i] > 0) tg[i % CL_MOD_COUNT] = 1, on[i / CL_MOD_COUNT] = 1;
        char tbuf[160] = "", lbuf[1024];
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            if (!tg[m]) continue;
            if (*tbuf) strcat(tbuf, ",");
            strcat(tbuf, cl_module_names[m]);
            for (int l = 0; l < L; l++)
                if (on[l] && !rank[l * CL_MOD_COUNT + m]) {
                    rc = cl_errf(err, CL_EUNSUP, "%s: an AdaLoRA adapter on some but not all of the selected layers' "
                                                 "'%s' modules is not supported", cfg_path, cl_module_names[m]);
                    goto fail;
                }
        }
        layer_list(on, L, lbuf, sizeof lbuf);
        if (strlen(tbuf) >= sizeof pf->targets || strlen(lbuf) >= sizeof pf->layers) {
            rc = cl_errf(err, CL_EINVAL, "%s: too many layers", cfg_path);
            goto fail;
        }
        strcpy(pf->targets, tbuf);
        strcpy(pf->layers, lbuf);
        o.target_modules = pf->targets;
        o.layers = pf->layers;
    }
    if ((rc = cl_adapter_create(&pf->ad, &o, model, err))) {
        cl_err_prefix(err, "%s", cfg_path);
        goto fail;
    }
    if ((rc = cl_adapter_register(pf->ad, &pf->P, err))) goto fail;
    /* the head, when the file has one */
    int file_rows = head_out_rows(ft, st.n), head_tensors = 0;
    int pooler_tensors = 0; /* a BERT head trained with its pooler (modules_to_save "pooler") */
    {
        char pp[160];
        snprintf(pp, sizeof pp, PFX "%s.%s.", arch->prefix, arch->pooler);
        for (int i = 0; i < st.n; i++) {
            head_tensors += !strncmp(ft[i].name, PFX "classifier.", PFX_LEN + 11);
            pooler_tensors += !strncmp(ft[i].name, pp, strlen(pp));
        }
    }
    if (head_tensors) {
        if (model->head == CL_HEAD_NONE) {
            rc = cl_errf(err, CL_EINVAL, "%s: the adapter carries a classification head (%d labels) but the base model "
                                         "has none (load it with num_labels = %d)", st_path, file_rows, file_rows);
            goto fail;
        }
        if (file_rows && file_rows != model->head_out.d_out) {
            rc = cl_errf(err, CL_ESHAPE, "%s: the adapter's head has %d labels but the model's has %d (load the base "
                                         "model with num_labels = %d)", st_path, file_rows, model->head_out.d_out,
                         file_rows);
            goto fail;
        }
        if ((rc = cl_head_register(&pf->P, model, pooler_tensors > 0, &pf->head, err)))
            goto fail;
    }
    if ((rc = cl_params_alloc(&pf->P, err))) goto fail;
    if ((rc = cl_adapter_bind(pf->ad, &pf->P, err))) goto fail;
    if (head_tensors) {
        cl_head_grads g;
        const cl_linear *dn = cl_head_dense(model);
        pf->saved_head[0] = dn ? dn->w : NULL, pf->saved_head[1] = dn ? dn->b : NULL;
        pf->saved_head[2] = model->head_out.w, pf->saved_head[3] = model->head_out.b;
        pf->has_head = 1;
        cl_head_bind(&pf->P, model, &pf->head, &g);
    }
    /* every tensor by name */
    for (int i = 0; i < pf->P.n; i++) {
        const cl_param_tensor *t = &pf->P.t[i];
        ftensor *f = ffind(ft, st.n, t->name);
        if (!f) {
            const char *why = t->part == CL_PART_HEAD ? "the file holds only part of the classification head"
                                                      : "adapter_config.json targets this module";
            rc = cl_errf(err, CL_EMISSING, "%s: tensor '%s' is missing (%s)", st_path, t->name, why);
            goto fail;
        }
        int same = f->t->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = f->t->shape[d] == t->shape[d];
        if (!same) {
            char got[96], want[96];
            fmt_shape(got, sizeof got, f->t->ndim, f->t->shape);
            fmt_shape(want, sizeof want, t->ndim, t->shape);
            rc = cl_errf(err, CL_ESHAPE, "%s: tensor '%s' has shape %s, expected %s (%s)", st_path, f->t->name, got,
                         want, t->part == CL_PART_HEAD ? "the base model's head" : "r of adapter_config.json and the "
                                                                                   "base model's dimensions");
            goto fail;
        }
        if ((rc = cl_st_to_f32(&st, f->t, pf->P.param + t->offset, err))) goto fail;
        f->used = 1;
    }
    for (int i = 0; i < st.n; i++)
        if (!ft[i].used) {
            rc = cl_errf(err, CL_EFORMAT, "%s: unexpected tensor '%s' (no module of adapter_config.json nor the "
                                          "classification head has this name)", st_path, st.t[i].name);
            goto fail;
        }
    cl_adapter_materialise(pf->ad);
    pf->num_labels = model->head == CL_HEAD_NONE ? 0 : model->head_out.d_out;
    free(ft);
    cl_st_close(&st);
    cJSON_Delete(c.root);
    free(rank), free(alpha);
    *out = pf;
    return 0;
fail:
    cl_adapter_free(tmp);
    free(ft);
    cl_st_close(&st);
    cJSON_Delete(c.root);
    free(rank), free(alpha);
    cl_peft_free(pf);
    return rc ? rc : CL_EFORMAT;
}

/* ---- write ------------------------------------------------------------------------------------------------------ */
/* A float option as the decimal a user typed (0.3, not 0.300000011920929), as runio.c. */
static double f32_json(float v) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", v);
    return strtod(b, NULL);
}

/* every option: the "adapter" object of run.json and condlora_adapter.json */
cJSON *cl_adapter_opts_json(const cl_adapter_opts *a) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", cl_method_names[a->method]);
    cJSON_AddStringToObject(j, "target_modules", a->target_modules && *a->target_modules ? a->target_modules
                                                                                         : "query,value");
    cJSON_AddStringToObject(j, "layers", a->layers ? a->layers : "");
    cJSON_AddNumberToObject(j, "r", a->r);
    cJSON_AddNumberToObject(j, "alpha", f32_json(a->alpha));
    cJSON_AddNumberToObject(j, "dropout", f32_json(a->dropout));
    cJSON_AddNumberToObject(j, "rslora", a->rslora);
    cJSON_AddNumberToObject(j, "condlora_paper", a->condlora_paper);
    cJSON_AddNumberToObject(j, "condlora_use_x", a->condlora_use_x);
    cJSON_AddNumberToObject(j, "condlora_lambda_x", f32_json(a->condlora_lambda_x));
    cJSON_AddNumberToObject(j, "salora_budget", f32_json(a->salora_budget));
    cJSON_AddNumberToObject(j, "salora_warmup", f32_json(a->salora_warmup));
    cJSON_AddNumberToObject(j, "salora_lambda_lr", f32_json(a->salora_lambda_lr));
    cJSON_AddNumberToObject(j, "salora_orth", f32_json(a->salora_orth));
    cJSON_AddNumberToObject(j, "salora_log_alpha_init", f32_json(a->salora_log_alpha_init));
    cJSON_AddNumberToObject(j, "ada_target_r", a->ada_target_r);
    cJSON_AddNumberToObject(j, "ada_tinit", a->ada_tinit);
    cJSON_AddNumberToObject(j, "ada_tfinal", a->ada_tfinal);
    cJSON_AddNumberToObject(j, "ada_deltaT", a->ada_deltaT);
    cJSON_AddNumberToObject(j, "ada_beta1", f32_json(a->ada_beta1));
    cJSON_AddNumberToObject(j, "ada_beta2", f32_json(a->ada_beta2));
    cJSON_AddNumberToObject(j, "ada_orth", f32_json(a->ada_orth));
    return j;
}

/* appends s to the growing string *buf (NULL on allocation failure) */
static void sb_add(char **buf, size_t *len, size_t *cap, const char *s) {
    if (!*buf) return;
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t nc = (*len + n + 1) * 2;
        char *b = realloc(*buf, nc);
        if (!b) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = b, *cap = nc;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* "attention.self.query" -> "attention\.self\.query" */
static void rx_escape(const char *s, char *out, size_t n) {
    size_t o = 0;
    for (; *s && o + 3 < n; s++) {
        if (*s == '.') out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = 0;
}

int cl_peft_write_config(const char *path, const cl_adapter *ad, const char *base_model, int train_pooler,
                         cl_error *err) {
    const cl_adapter_opts *a = &ad->o;
    const cl_weights *model = ad->model;
    const int L = ad->L, NM = L * CL_MOD_COUNT;
    int *rk = malloc((size_t)NM * sizeof(int));
    if (!rk) return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
    cl_adapter_ranks(ad, rk);
    /* the exported rank of each module: SaLoRA's and AdaLoRA's learned ones (both export plain LoRA) */
    for (int i = 0; i < NM; i++)
        if (rk[i] < 0) rk[i] = 0;
    int tg[CL_MOD_COUNT] = {0}, nl = 0, any = 0;
    unsigned char on[L > 0 ? L : 1];
    memset(on, 0, sizeof on);
    for (int i = 0; i < NM; i++)
        if (rk[i] > 0) tg[i % CL_MOD_COUNT] = 1, on[i / CL_MOD_COUNT] = 1, any = 1;
    for (int l = 0; l < L; l++) nl += on[l];
    /* a list of names works when the kept modules are all (type x layer) pairs and no entry also names a module
     * that is not kept (PEFT matches list entries as suffixes: BERT's "output.dense" also names
     * attention.output.dense) */
    const cl_arch_desc *arch = cl_model_arch(model);
    int product = 1;
    for (int l = 0; l < L; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++)
            if (on[l] && tg[m] && !rk[l * CL_MOD_COUNT + m]) product = 0;
    for (int m = 0; m < CL_MOD_COUNT && product; m++) {
        if (!tg[m]) continue;
        size_t tl = strlen(arch->peft[m]);
        for (int m2 = 0; m2 < CL_MOD_COUNT; m2++) {
            size_t pl = strlen(arch->lin[m2]);
            int suffix = !strcmp(arch->lin[m2], arch->peft[m]) ||
                         (pl > tl && arch->lin[m2][pl - tl - 1] == '.' && !strcmp(arch->lin[m2] + pl - tl, arch->peft[m]));
            if (suffix && !tg[m2]) product = 0;
        }
    }
    int as_list = any && product;

    cJSON *j = cJSON_CreateObject();
    char key[256];
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddStringToObject(j, "task_type", "SEQ_CLS");
    cJSON_AddStringToObject(j, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddNumberToObject(j, "r", a->r);
    cJSON_AddNumberToObject(j, "lora_alpha", f32_json(a->alpha));
    cJSON_AddNumberToObject(j, "lora_dropout", f32_json(a->dropout));
    cJSON_AddBoolToObject(j, "use_rslora", a->rslora);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 0);
    if (as_list) {
        cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
        for (int m = 0; m < CL_MOD_COUNT; m++)
            if (tg[m]) cJSON_AddItemToArray(tm, cJSON_CreateString(arch->peft[m]));
        if (nl < L) {
            cJSON *lt = cJSON_AddArrayToObject(j, "layers_to_transform");
            for (int l = 0; l < L; l++)
                if (on[l]) cJSON_AddItemToArray(lt, cJSON_CreateNumber(l));
        } else {
            cJSON_AddNullToObject(j, "layers_to_transform");
        }
    } else {
        /* re.fullmatch against e.g. "bert.encoder.layer.3.attention.self.query": exactly the kept modules */
        size_t len = 0, cap = 256;
        char *rxs = malloc(cap), esc[128];
        if (rxs) rxs[0] = 0;
        char lp[128];
        snprintf(key, sizeof key, "%s.", arch->layers);
        rx_escape(key, lp, sizeof lp);
        sb_add(&rxs, &len, &cap, "(?:.*\\.)?");
        sb_add(&rxs, &len, &cap, lp);
        sb_add(&rxs, &len, &cap, "(?:");
        const size_t skip = strlen(arch->prefix) + 1 + strlen(arch->layers) + 1; /* "bert.encoder.layer." */
        int first = 1;
        for (int l = 0; l < L; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                if (!rk[l * CL_MOD_COUNT + m]) continue;
                char mp[256];
                mod_key(model, l, (cl_module)m, mp, sizeof mp);
                rx_escape(mp + skip, esc, sizeof esc);
                if (!first) sb_add(&rxs, &len, &cap, "|");
                sb_add(&rxs, &len, &cap, esc);
                first = 0;
            }
        sb_add(&rxs, &len, &cap, ")");
        if (!rxs) {
            free(rk);
            cJSON_Delete(j);
            return cl_errf(err, CL_ENOMEM, "%s: out of memory", path);
        }
        cJSON_AddStringToObject(j, "target_modules", any ? rxs : "(?!)"); /* (?!) matches nothing */
        free(rxs);
        cJSON_AddNullToObject(j, "layers_to_transform");
    }
    cJSON *ms = cJSON_AddArrayToObject(j, "modules_to_save");
    cJSON_AddItemToArray(ms, cJSON_CreateString("classifier"));
    cJSON_AddItemToArray(ms, cJSON_CreateString("score"));
    if (train_pooler && !cl_head_layout_of(model->head)->dense) cJSON_AddItemToArray(ms, cJSON_CreateString("pooler"));
    {
        /* PEFT: rank_pattern / alpha_pattern keys K match a module when re.match(".*\.K$", name) */
        cJSON *rp = cJSON_AddObjectToObject(j, "rank_pattern"), *ap = cJSON_AddObjectToObject(j, "alpha_pattern");
        for (int i = 0; i < NM; i++) {
            int k = ad->mod_index[i];
            if (k < 0 || rk[i] <= 0) continue;
            const cl_amod *md = &ad->mods[k];
            mod_key(model, i / CL_MOD_COUNT, (cl_module)(i % CL_MOD_COUNT), key, sizeof key);
            const char *kk = key + strlen(arch->prefix) + 1; /* "encoder.layer.3.attention.self.query" */
            if (rk[i] != a->r) cJSON_AddNumberToObject(rp, kk, rk[i]);
            if (md->alpha != a->alpha) cJSON_AddNumberToObject(ap, kk, f32_json(md->alpha));
        }
    }
    free(rk);
    int rc = cl_json_save(j, path, err);
    cJSON_Delete(j);
    if (rc) return rc;
    /* condlora's own record beside it (PEFT 0.10 refuses unknown keys in adapter_config.json) */
    char side[4200];
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(side, sizeof side, "%.*s/condlora_adapter.json", (int)(slash - path), path);
    else snprintf(side, sizeof side, "condlora_adapter.json");
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", cl_method_names[a->method]);
    cJSON_AddItemToObject(j, "options", cl_adapter_opts_json(a));
    cJSON_AddStringToObject(j, "note", a->method == CL_METHOD_CONDLORA
                                           ? "CondLoRA exported as plain per-layer LoRA (A_l, B_l materialised)"
                                       : a->method == CL_METHOD_SALORA
                                           ? "SaLoRA exported as plain LoRA with the kept components (rank_pattern)"
                                       : a->method == CL_METHOD_ADALORA
                                           ? "AdaLoRA exported as plain LoRA: components with E != 0, A rows times E "
                                             "(rank_pattern)"
                                           : "");
    rc = cl_json_save(j, side, err);
    cJSON_Delete(j);
    return rc;
}

/* ---- label names ---- */
/* the L label names: DIR/labels.json's id2label (a condlora run's adapter), else the model config's id2label, else
 * the GLUE task's, else transformers' LABEL_k */
char **cl_peft_label_names(const char *adapter_dir, const cl_weights *m, const cl_glue_task *task, int L) {
    char **n = calloc((size_t)L, sizeof *n);
    if (!n) return NULL;
    cJSON *j = NULL, *i2l = NULL;
    if (adapter_dir) {
        char p[4200], *txt = NULL;
        size_t len = 0;
        cl_error e = {0};
        snprintf(p, sizeof p, "%s/labels.json", adapter_dir);
        if (access(p, R_OK) == 0 && !cl_read_file(p, &txt, &len, &e)) j = cJSON_ParseWithLength(txt, len);
        free(txt);
        i2l = j ? cJSON_GetObjectItemCaseSensitive(j, "id2label") : NULL;
        if (cJSON_GetArraySize(i2l) != L) i2l = NULL;
    }
    for (int k = 0; k < L; k++) {
        char key[24], def[32];
        snprintf(key, sizeof key, "%d", k);
        snprintf(def, sizeof def, "LABEL_%d", k);
        const cJSON *v = i2l ? cJSON_GetObjectItemCaseSensitive(i2l, key) : NULL;
        const char *nm = cJSON_IsString(v) ? v->valuestring
                         : m->cfg.id2label && m->cfg.num_labels == L && m->cfg.id2label[k] ? m->cfg.id2label[k]
                         : task && task->label_names && task->num_labels == L ? task->label_names[k]
                                                                               : def;
        n[k] = strdup(nm);
        if (!n[k]) {
            for (int i = 0; i < k; i++) free(n[i]);
            free(n);
            cJSON_Delete(j);
            return NULL;
        }
    }
    cJSON_Delete(j);
    return n;
}

int cl_peft_is_multi_label(const char *adapter_dir, const cl_weights *m) {
    if (adapter_dir) {
        char p[4200], *txt = NULL;
        size_t len = 0;
        cl_error e = {0};
        snprintf(p, sizeof p, "%s/labels.json", adapter_dir);
        if (access(p, R_OK) == 0 && !cl_read_file(p, &txt, &len, &e)) {
            cJSON *j = cJSON_ParseWithLength(txt, len);
            const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "problem_type");
            int have = cJSON_IsString(pt), multi = have && !strcmp(pt->valuestring, "multi_label_classification");
            cJSON_Delete(j);
            free(txt);
            if (have) return multi;
        }
    }
    return !strcmp(m->cfg.problem_type, "multi_label_classification");
}

void cl_peft_label_names_free(char **names, int L) {
    if (!names) return;
    for (int k = 0; k < L; k++) free(names[k]);
    free(names);
}
