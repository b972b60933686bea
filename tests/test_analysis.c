/* The analysis of [P1]: LAPACK solves and SVDs against NumPy, phi's identities and random expectation, conversion
 * matrices and layer-by-layer phi of PEFT adapters against NumPy (scripts/gen_analysis_refs.py ->
 * tests/data/analysis/), heat maps (valid SVG, PNG of the expected size and colours), and the CLI end to end. */
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <png.h>

#include "analysis/conversion.h"
#include "analysis/heatmap.h"
#include "analysis/linalg.h"
#include "core/error.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"

#define DATA "tests/data/analysis"

static cJSON *g_ref;

static cJSON *ref_get(const char *path) { /* "a/b/c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *j = g_ref;
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t && j; t = strtok_r(NULL, "/", &save))
        j = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, atoi(t)) : cJSON_GetObjectItemCaseSensitive(j, t);
    return j;
}

/* Reads a numeric array (flattening one level of nesting) into a malloc'd buffer; *n gets the count. */
static double *ref_vec(const char *path, int *n) {
    cJSON *j = ref_get(path);
    *n = 0;
    if (!j) return NULL;
    int cnt = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, j) cnt += cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 1;
    double *v = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    cJSON_ArrayForEach(e, j) {
        if (cJSON_IsArray(e)) {
            cJSON *f;
            cJSON_ArrayForEach(f, e) v[(*n)++] = f->valuedouble;
        } else {
            v[(*n)++] = e->valuedouble;
        }
    }
    return v;
}

static double ref_num(const char *path) {
    cJSON *j = ref_get(path);
    return j && cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

/* max_k |a_k - b_k| / max(1, |b_k|) */
static double rel_err(const double *a, const double *b, int n) {
    double m = 0;
    for (int k = 0; k < n; k++) {
        double e = fabs(a[k] - b[k]) / fmax(1.0, fabs(b[k]));
        if (!(e <= m)) m = e;
    }
    return m;
}

static void gauss(cl_rng *g, double *x, int n) {
    for (int k = 0; k < n; k++) x[k] = cl_rng_normal(g);
}

/* ------------------------------------------------------------------------------------------- phi identities */

TEST(phi_self_is_one_orthogonal_is_zero) {
    cl_rng g;
    cl_rng_seed(&g, 3);
    double x[20 * 4], y[10 * 6];
    gauss(&g, x, 80);
    cl_error err = {0};
    double p = -1;
    for (int side = 0; side < 2; side++)
        for (int i = 1; i <= 4; i++) {
            CHECK(cl_phi(20, 4, x, x, i, i, (cl_sv_side)side, &p, &err) == 0, "%s", err.msg);
            CHECK(fabs(p - 1.0) < 1e-12, "side %d i %d: phi %.15g", side, i, p);
        }
    /* nested subspaces: span of the first i is inside the span of the first j >= i */
    CHECK(cl_phi(20, 4, x, x, 2, 4, CL_SV_LEFT, &p, &err) == 0, "%s", err.msg);
    CHECK_NEAR(p, 1.0, 1e-12);
    /* orthogonal column spaces: X = [e1 e2 e3] scaled, Y = [e4 e5 e6] mixed */
    double a[10 * 3] = {0}, b[10 * 3] = {0};
    for (int c = 0; c < 3; c++) a[c * 3 + c] = 1.0 + c;
    for (int t = 3; t < 6; t++)
        for (int c = 0; c < 3; c++) b[t * 3 + c] = cl_rng_normal(&g);
    CHECK(cl_phi(10, 3, a, b, 3, 3, CL_SV_LEFT, &p, &err) == 0, "%s", err.msg);
    CHECK_NEAR(p, 0.0, 1e-12);
    /* right singular vectors: rows of A in span{e1, e2}, of B in span{e3, e4} */
    double ra[3 * 6] = {0}, rb[3 * 6] = {0};
    for (int r = 0; r < 3; r++) {
        ra[r * 6 + 0] = cl_rng_normal(&g); ra[r * 6 + 1] = cl_rng_normal(&g);
        rb[r * 6 + 2] = cl_rng_normal(&g); rb[r * 6 + 3] = cl_rng_normal(&g);
    }
    CHECK(cl_phi(3, 6, ra, rb, 2, 2, CL_SV_RIGHT, &p, &err) == 0, "%s", err.msg);
    CHECK_NEAR(p, 0.0, 1e-12);
    CHECK(cl_phi(3, 6, ra, ra, 2, 2, CL_SV_RIGHT, &p, &err) == 0, "%s", err.msg);
    CHECK_NEAR(p, 1.0, 1e-12);
    (void)y;
    /* out of range i */
    CHECK(cl_phi(20, 4, x, x, 21, 1, CL_SV_LEFT, &p, &err) != 0 && strstr(err.msg, "out of range"), "%s", err.msg);
}

TEST(phi_random_expectation) {
    /* E phi = i j / (d min(i, j)) for independent uniformly random subspaces (Gaussian matrices) */
    cl_rng g;
    cl_rng_seed(&g, 11);
    const int d = 32, n = 6, trials = 300;
    double x[32 * 6], y[32 * 6];
    cl_error err = {0};
    const int ij[3][2] = {{3, 5}, {6, 6}, {1, 4}};
    for (int c = 0; c < 3; c++) {
        int i = ij[c][0], j = ij[c][1];
        double s = 0, s2 = 0;
        int ok = 1;
        for (int t = 0; t < trials; t++) {
            gauss(&g, x, d * n);
            gauss(&g, y, d * n);
            double p;
            ok &= cl_phi(d, n, x, y, i, j, CL_SV_LEFT, &p, &err) == 0 && p >= 0 && p <= 1 + 1e-12;
            s += p;
            s2 += p * p;
        }
        CHECK(ok, "%s", err.msg);
        double mean = s / trials, sd = sqrt(fmax(s2 / trials - mean * mean, 0) / trials);
        double expect = (double)i * j / ((double)d * (i < j ? i : j));
        CHECK(fabs(mean - expect) < 4 * sd + 1e-3, "i %d j %d: mean %.4f expected %.4f (se %.4f)", i, j, mean,
              expect, sd);
    }
}

/* --------------------------------------------------------------------------------------- LAPACK vs NumPy */

TEST(lu_solve_and_cond_match_numpy) {
    int n1, n2, n3;
    double *w = ref_vec("linalg/W", &n1), *b = ref_vec("linalg/B", &n2), *xr = ref_vec("linalg/X", &n3);
    CHECK(n1 == 36 && n2 == 18 && n3 == 18, "reference sizes %d %d %d", n1, n2, n3);
    if (n1 != 36 || n2 != 18 || n3 != 18) { free(w); free(b); free(xr); return; }
    cl_lu lu;
    cl_error err = {0};
    CHECK(cl_lu_factor(&lu, 6, w, "W", &err) == 0, "%s", err.msg);
    double x[18];
    CHECK(cl_lu_solve(&lu, 3, b, x, &err) == 0, "%s", err.msg);
    CHECK(rel_err(x, xr, 18) < 1e-5, "solve rel err %g", rel_err(x, xr, 18));
    double c = cl_lu_cond(&lu), cr = ref_num("linalg/cond1");
    /* dgecon estimates ||W^-1||_1 from below (Hager/Higham): exact in practice for small matrices */
    CHECK(c <= cr * (1 + 1e-9) && c >= cr / 3, "cond %g vs numpy %g", c, cr);
    CHECK_NEAR(c / cr, 1.0, 1e-5, "dgecon estimate vs exact 1-norm condition number");
    cl_lu_free(&lu);
    /* x may alias b */
    memcpy(x, b, sizeof x);
    CHECK(cl_lu_factor(&lu, 6, w, "W", &err) == 0 && cl_lu_solve(&lu, 3, x, x, &err) == 0, "%s", err.msg);
    CHECK(rel_err(x, xr, 18) < 1e-5, "in %s", tst_current);
    cl_lu_free(&lu);
    free(w); free(b); free(xr);
}

TEST(lu_refuses_singular) {
    double w[16] = {1, 2, 3, 4, 2, 4, 6, 8, 0, 1, 0, 1, 5, 0, 1, 2}; /* row 1 = 2 * row 0 */
    cl_lu lu;
    cl_error err = {0};
    CHECK(cl_lu_factor(&lu, 4, w, "test W", &err) != 0, "singular matrix accepted");
    CHECK(strstr(err.msg, "singular") && strstr(err.msg, "test W"), "message: %s", err.msg);
    CHECK(lu.lu == NULL, "in %s", tst_current);
    /* numerically singular: rank 1 plus 1e-17 noise */
    double v[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) v[i * 3 + j] = (i + 1.0) * (j + 1.0) + (i == j ? 1e-17 : 0);
    CHECK(cl_lu_factor(&lu, 3, v, "near", &err) != 0 && strstr(err.msg, "singular"), "%s", err.msg);
    double z[4] = {0, 0, 0, 0};
    CHECK(cl_lu_factor(&lu, 2, z, "zero", &err) != 0 && strstr(err.msg, "singular"), "%s", err.msg);
    double nanm[4] = {1, 0, 0, NAN};
    CHECK(cl_lu_factor(&lu, 2, nanm, "nan", &err) != 0 && strstr(err.msg, "not finite"), "%s", err.msg);
}

TEST(svd_matches_numpy) {
    int n1, n2, n3, n4;
    double *m = ref_vec("linalg/M", &n1), *sv = ref_vec("linalg/M_sv", &n2), *ur = ref_vec("linalg/M_U", &n3),
           *vr = ref_vec("linalg/M_Vt", &n4);
    CHECK(n1 == 35 && n2 == 5 && n3 == 49 && n4 == 25, "reference sizes");
    if (n1 != 35 || n2 != 5 || n3 != 49 || n4 != 25) { free(m); free(sv); free(ur); free(vr); return; }
    double s[5], u[49], vt[25];
    cl_error err = {0};
    CHECK(cl_svd(7, 5, m, u, s, vt, &err) == 0, "%s", err.msg);
    CHECK(rel_err(s, sv, 5) < 1e-5, "singular values");
    /* singular vectors up to sign (the singular values are distinct) */
    double eu = 0, ev = 0;
    for (int c = 0; c < 5; c++) {
        double dot = 0;
        for (int t = 0; t < 7; t++) dot += u[t * 7 + c] * ur[t * 7 + c];
        double sg = dot < 0 ? -1 : 1;
        for (int t = 0; t < 7; t++) eu = fmax(eu, fabs(sg * u[t * 7 + c] - ur[t * 7 + c]));
        dot = 0;
        for (int t = 0; t < 5; t++) dot += vt[c * 5 + t] * vr[c * 5 + t];
        sg = dot < 0 ? -1 : 1;
        for (int t = 0; t < 5; t++) ev = fmax(ev, fabs(sg * vt[c * 5 + t] - vr[c * 5 + t]));
    }
    CHECK(eu < 1e-5 && ev < 1e-5, "U err %g, V err %g", eu, ev);
    /* the last two columns of the full U span the orthogonal complement: U^T U = I */
    double eo = 0;
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 7; b++) {
            double dot = 0;
            for (int t = 0; t < 7; t++) dot += u[t * 7 + a] * u[t * 7 + b];
            eo = fmax(eo, fabs(dot - (a == b)));
        }
    CHECK(eo < 1e-12, "U orthogonality %g", eo);
    double s2[5];
    CHECK(cl_svd(7, 5, m, NULL, s2, NULL, &err) == 0 && rel_err(s2, sv, 5) < 1e-12, "values-only SVD");
    free(m); free(sv); free(ur); free(vr);
}

TEST(phi_matches_numpy) {
    int n1, n2;
    double *p = ref_vec("linalg/P", &n1), *q = ref_vec("linalg/Q", &n2);
    CHECK(n1 == 35 && n2 == 35, "in %s", tst_current);
    cJSON *cases = ref_get("linalg/phi_cases"), *c;
    int count = 0;
    cl_error err = {0};
    cJSON_ArrayForEach(c, cases) {
        int i = cJSON_GetObjectItem(c, "i")->valueint, j = cJSON_GetObjectItem(c, "j")->valueint;
        cl_sv_side side;
        CHECK(cl_sv_side_parse(cJSON_GetObjectItem(c, "side")->valuestring, &side) == 0, "in %s", tst_current);
        double v = -1, r = cJSON_GetObjectItem(c, "phi")->valuedouble;
        CHECK(cl_phi(7, 5, p, q, i, j, side, &v, &err) == 0, "%s", err.msg);
        CHECK(fabs(v - r) < 1e-6, "i %d j %d side %s: %.9g vs numpy %.9g", i, j, cl_sv_side_name(side), v, r);
        count++;
    }
    CHECK(count == 6, "phi cases: %d", count);
    free(p); free(q);
}

TEST(lowrank_basis_matches_full_svd) {
    /* the factored SVD of L R^T spans the same top-k subspaces as the SVD of the formed product */
    cl_rng g;
    cl_rng_seed(&g, 5);
    const int m = 40, n = 30, r = 5;
    double l[40 * 5], rm[30 * 5], p[40 * 30], b1[40 * 5], b2[40 * 5];
    gauss(&g, l, m * r);
    gauss(&g, rm, n * r);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < r; k++) s += l[i * r + k] * rm[j * r + k];
            p[i * n + j] = s;
        }
    cl_error err = {0};
    for (int side = 0; side < 2; side++)
        for (int k = 1; k <= r; k++) {
            int dim = side ? n : m;
            CHECK(cl_sv_basis_lowrank(m, n, r, l, rm, (cl_sv_side)side, k, b1, &err) == 0, "%s", err.msg);
            CHECK(cl_sv_basis(m, n, p, (cl_sv_side)side, k, b2, &err) == 0, "%s", err.msg);
            CHECK(fabs(cl_phi_bases(dim, b1, k, k, b2, k, k) - 1.0) < 1e-9, "side %d k %d", side, k);
        }
}

/* ---------------------------------------------------------------------------------- adapters and conversion */

static int load_model(cl_weights *m) {
    cl_error err = {0};
    cl_load_opts lo = {0, 0, 0};
    int rc = cl_model_load(m, DATA "/tiny-bert", &lo, &err);
    CHECK(rc == 0, "%s", err.msg);
    return rc;
}

TEST(adapter_loads_peft_format) {
    cl_lora_adapter a;
    cl_error err = {0};
    CHECK(cl_lora_adapter_load(&a, DATA "/lora-a", &err) == 0, "%s", err.msg);
    CHECK(a.r == 4 && a.alpha == 8 && a.num_layers == 4 && !strcmp(a.peft_type, "LORA"), "in %s", tst_current);
    CHECK(a.mod_present[CL_MOD_QUERY] && a.mod_present[CL_MOD_VALUE] && !a.mod_present[CL_MOD_KEY], "in %s", tst_current);
    const cl_lora_pair *p = cl_lora_adapter_get(&a, 2, CL_MOD_VALUE);
    CHECK(p && p->r == 4 && p->d_in == 16 && p->d_out == 16, "in %s", tst_current);
    CHECK(cl_lora_adapter_get(&a, 2, CL_MOD_KEY) == NULL && cl_lora_adapter_get(&a, 9, CL_MOD_VALUE) == NULL, "in %s", tst_current);
    cl_lora_adapter_free(&a);
    CHECK(cl_lora_adapter_load(&a, DATA "/tiny-bert", &err) != 0 && strstr(err.msg, "adapter_config.json"),
          "%s", err.msg);
    CHECK(cl_lora_adapter_load(&a, DATA "/nonexistent", &err) != 0, "missing directory accepted");
}

TEST(conversion_matches_numpy) {
    cl_weights model;
    if (load_model(&model)) return;
    cl_lora_adapter a;
    cl_error err = {0};
    CHECK(cl_lora_adapter_load(&a, DATA "/lora-a", &err) == 0, "%s", err.msg);
    cl_an_opts o;
    cl_an_opts_default(&o);
    o.keep_cba = 1;
    cl_conv_result res;
    int rc = cl_conversion_run(&model, &a, &o, &res, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) { cl_lora_adapter_free(&a); cl_model_free(&model); return; }
    CHECK(res.nmod == 2 && res.mods[0].mod == CL_MOD_QUERY && res.mods[1].mod == CL_MOD_VALUE, "in %s", tst_current);
    char path[128];
    for (int k = 0; k < res.nmod; k++) {
        const cl_conv_module *cm = &res.mods[k];
        const char *mn = cl_module_names[cm->mod];
        CHECK(cm->n == 4, "in %s", tst_current);
        int n;
        snprintf(path, sizeof path, "conversion/modules/%s/cond1", mn);
        double *cond = ref_vec(path, &n);
        for (int l = 0; l < cm->n && n == 4; l++) {
            CHECK(cm->e[l].cond1 <= cond[l] * (1 + 1e-9) && cm->e[l].cond1 >= cond[l] / 3, "%s layer %d cond %g vs %g",
                  mn, l, cm->e[l].cond1, cond[l]);
            double *ra, *rb;
            int na, nb;
            snprintf(path, sizeof path, "conversion/modules/%s/C_A/%d", mn, l);
            ra = ref_vec(path, &na);
            snprintf(path, sizeof path, "conversion/modules/%s/C_B/%d", mn, l);
            rb = ref_vec(path, &nb);
            CHECK(na == 64 && nb == 64, "in %s", tst_current);
            if (na == 64 && nb == 64) {
                CHECK(rel_err(cm->e[l].ca, ra, 64) < 1e-5, "%s layer %d C_A err %g", mn, l,
                      rel_err(cm->e[l].ca, ra, 64));
                CHECK(rel_err(cm->e[l].cb, rb, 64) < 1e-5, "%s layer %d C_B err %g", mn, l,
                      rel_err(cm->e[l].cb, rb, 64));
            }
            free(ra);
            free(rb);
        }
        free(cond);
        snprintf(path, sizeof path, "conversion/modules/%s/C_BA_layer0", mn);
        double *rba = ref_vec(path, &n);
        CHECK(n == 256 && cm->e[0].cba && rel_err(cm->e[0].cba, rba, 256) < 1e-5, "C_BA layer 0");
        free(rba);
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            snprintf(path, sizeof path, "conversion/modules/%s/phi_%s", mn, cl_an_type_names[t]);
            double *rp = ref_vec(path, &n);
            CHECK(n == 16, "%s", path);
            double e = 0;
            for (int q = 0; q < 16 && n == 16; q++) e = fmax(e, fabs(cm->phi[t][q] - rp[q]));
            CHECK(e < 1e-6, "%s: max |diff| %g", path, e);
            /* summary: mean of the strict upper triangle */
            double s = 0;
            for (int i = 0; i < 4; i++)
                for (int j = i + 1; j < 4; j++) s += rp[i * 4 + j];
            CHECK(fabs(cm->mean[t] - s / 6) < 1e-6, "%s mean %.9g vs %.9g", path, cm->mean[t], s / 6);
            for (int i = 0; i < 4; i++) CHECK_NEAR(cm->phi[t][i * 5], 1.0, 1e-9, "diagonal");
            free(rp);
        }
    }
    /* the Gaussian baseline: diagonal 1, off-diagonal in [0, 1] */
    CHECK(res.n_base == 4 && res.base_d == 16 && res.base_r == 4, "in %s", tst_current);
    CHECK_NEAR(res.expected_random, 4.0 * 4 / (16.0 * 4), 1e-12);
    for (int t = 0; t < CL_AN_NTYPES; t++)
        for (int q = 0; q < 16; q++) {
            double v = res.base_phi[t][q];
            CHECK(q % 5 == 0 ? fabs(v - 1) < 1e-9 : (v >= 0 && v <= 1), "baseline %d %d: %g", t, q, v);
        }
    cl_conv_result_free(&res);

    /* a non-default setting: right singular vectors, i = 2, j = 3 */
    o.keep_cba = 0;
    o.side = CL_SV_RIGHT;
    o.i = 2;
    o.j = 3;
    o.module_mask = 1u << CL_MOD_VALUE;
    CHECK(cl_conversion_run(&model, &a, &o, &res, &err) == 0, "%s", err.msg);
    if (res.nmod == 1) {
        int n;
        double *rp = ref_vec("conversion/modules/value/phi_A_right_2_3", &n);
        double e = 0;
        for (int q = 0; q < 16 && n == 16; q++) e = fmax(e, fabs(res.mods[0].phi[CL_AN_A][q] - rp[q]));
        CHECK(n == 16 && e < 1e-6, "right 2 3: max |diff| %g", e);
        CHECK(res.mods[0].e[0].cba == NULL, "in %s", tst_current);
        free(rp);
    }
    cl_conv_result_free(&res);
    /* i beyond the dimension of the right singular vectors of C_A (r = 4) */
    o.i = 5;
    CHECK(cl_conversion_run(&model, &a, &o, &res, &err) != 0 && strstr(err.msg, "dimensions"), "%s", err.msg);
    cl_lora_adapter_free(&a);
    cl_model_free(&model);
}

TEST(adalora_folds_e_and_drops_pruned) {
    cl_weights model;
    if (load_model(&model)) return;
    cl_lora_adapter a;
    cl_error err = {0};
    CHECK(cl_lora_adapter_load(&a, DATA "/adalora", &err) == 0, "%s", err.msg);
    CHECK(!strcmp(a.peft_type, "ADALORA") && a.has_e && a.r == 4, "peft_type %s has_e %d r %d", a.peft_type,
          a.has_e, a.r);
    cl_an_opts o;
    cl_an_opts_default(&o);
    cl_conv_result res;
    int rc = cl_conversion_run(&model, &a, &o, &res, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (!rc && res.nmod == 1 && res.mods[0].n == 4) {
        int n;
        double *ranks = ref_vec("adalora/ranks", &n);
        for (int l = 0; l < 4 && n == 4; l++) {
            const cl_conv_entry *e = &res.mods[0].e[l];
            CHECK(e->r == (int)ranks[l], "layer %d rank %d vs %g", l, e->r, ranks[l]);
            char path[64];
            int na, nb;
            snprintf(path, sizeof path, "adalora/C_A/%d", l);
            double *ra = ref_vec(path, &na);
            snprintf(path, sizeof path, "adalora/C_B/%d", l);
            double *rb = ref_vec(path, &nb);
            CHECK(na == 16 * e->r && nb == 16 * e->r && rel_err(e->ca, ra, na) < 1e-5 && rel_err(e->cb, rb, nb) < 1e-5,
                  "layer %d conversion matrices", l);
            free(ra);
            free(rb);
        }
        free(ranks);
        for (int t = 0; t < 2; t++) {
            double *rp = ref_vec(t ? "adalora/phi_B" : "adalora/phi_A", &n);
            double e = 0;
            for (int q = 0; q < 16 && n == 16; q++) e = fmax(e, fabs(res.mods[0].phi[t][q] - rp[q]));
            CHECK(n == 16 && e < 1e-6, "AdaLoRA phi %s: max |diff| %g", cl_an_type_names[t], e);
            free(rp);
        }
    }
    if (!rc) cl_conv_result_free(&res);
    cl_lora_adapter_free(&a);
    cl_model_free(&model);
}

TEST(conversion_refuses_singular_and_non_square) {
    cl_weights model;
    if (load_model(&model)) return;
    cl_error err = {0};
    cl_lora_adapter a;
    CHECK(cl_lora_adapter_load(&a, DATA "/lora-ffn", &err) == 0, "%s", err.msg);
    cl_an_opts o;
    cl_an_opts_default(&o);
    cl_conv_result res;
    CHECK(cl_conversion_run(&model, &a, &o, &res, &err) != 0, "non-square accepted");
    CHECK(strstr(err.msg, "intermediate.dense") && strstr(err.msg, "not square"), "%s", err.msg);
    o.module_mask = 1u << CL_MOD_QUERY;
    CHECK(cl_conversion_run(&model, &a, &o, &res, &err) == 0, "%s", err.msg);
    CHECK(res.nmod == 1 && res.mods[0].n == 4, "in %s", tst_current);
    cl_conv_result_free(&res);
    cl_lora_adapter_free(&a);

    /* a singular W0 in layer 1 (a model copy whose layer 1 query weight has a zero row) */
    CHECK(cl_lora_adapter_load(&a, DATA "/lora-a", &err) == 0, "%s", err.msg);
    cl_weights bad = model;
    cl_layer_weights *lw = malloc(sizeof *lw * (size_t)model.cfg.num_layers);
    memcpy(lw, model.layers, sizeof *lw * (size_t)model.cfg.num_layers);
    bad.layers = lw;
    float w[256];
    memcpy(w, model.layers[1].lin[CL_MOD_QUERY].w, sizeof w);
    for (int c = 0; c < 16; c++) w[5 * 16 + c] = 0;
    lw[1].lin[CL_MOD_QUERY].w = w;
    cl_an_opts_default(&o);
    CHECK(cl_conversion_run(&bad, &a, &o, &res, &err) != 0, "singular W0 accepted");
    CHECK(strstr(err.msg, "singular") && strstr(err.msg, "layer 1 query"), "%s", err.msg);
    free(lw);
    /* shape mismatch with the model */
    cl_lora_adapter_free(&a);
    cl_model_free(&model);
}

TEST(similarity_matches_numpy) {
    cl_lora_adapter a, b;
    cl_error err = {0};
    CHECK(cl_lora_adapter_load(&a, DATA "/lora-a", &err) == 0, "%s", err.msg);
    CHECK(cl_lora_adapter_load(&b, DATA "/lora-b", &err) == 0, "%s", err.msg);
    cl_an_opts o;
    cl_an_opts_default(&o);
    cl_sim_result res;
    int rc = cl_similarity_run(&a, &b, &o, &res, &err);
    CHECK(rc == 0, "%s", err.msg);
    for (int k = 0; k < res.nmod && !rc; k++) {
        const cl_sim_module *sm = &res.mods[k];
        CHECK(sm->n == 4, "in %s", tst_current);
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            char path[128];
            int n;
            snprintf(path, sizeof path, "similarity/%s/%s", cl_module_names[sm->mod], cl_an_type_names[t]);
            double *rp = ref_vec(path, &n);
            CHECK(n == 4 && sm->n == 4 && rel_err(sm->phi[t], rp, 4) < 1e-6, "%s", path);
            for (int l = 0; l < sm->n; l++) CHECK(sm->base[t][l] >= 0 && sm->base[t][l] <= 1, "in %s", tst_current);
            free(rp);
        }
    }
    cl_sim_result_free(&res);
    /* an adapter with itself: 1 everywhere */
    CHECK(cl_similarity_run(&a, &a, &o, &res, &err) == 0, "%s", err.msg);
    for (int k = 0; k < res.nmod; k++)
        for (int t = 0; t < CL_AN_NTYPES; t++)
            for (int l = 0; l < res.mods[k].n; l++) CHECK_NEAR(res.mods[k].phi[t][l], 1.0, 1e-9);
    cl_sim_result_free(&res);
    cl_lora_adapter_free(&a);
    cl_lora_adapter_free(&b);
}

/* ------------------------------------------------------------------------------------------------ heat maps */

/* A small XML well-formedness check: balanced tags, quoted attributes, one root, only known entities. */
static int xml_ok(const char *s) {
    const char *stack[64];
    size_t lens[64];
    int depth = 0, roots = 0;
    const char *p = s;
    if (!strncmp(p, "<?xml", 5)) {
        p = strstr(p, "?>");
        if (!p) return 0;
        p += 2;
    }
    while (*p) {
        if (*p == '&') {
            if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&quot;", 6))
                return 0;
            p++;
            continue;
        }
        if (*p == '>') return 0;
        if (*p != '<') { p++; continue; }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t nl = strcspn(name, " \t\n/>");
        if (nl == 0) return 0;
        const char *q = name + nl;
        int in_quote = 0;
        while (*q && (in_quote || *q != '>')) {
            if (*q == '"') in_quote = !in_quote;
            else if (*q == '<' ) return 0;
            q++;
        }
        if (!*q) return 0;
        int selfclose = q[-1] == '/';
        if (closing) {
            if (depth == 0 || lens[depth - 1] != nl || strncmp(stack[depth - 1], name, nl)) return 0;
            depth--;
        } else if (!selfclose) {
            if (depth == 0) roots++;
            if (depth == 64) return 0;
            stack[depth] = name;
            lens[depth++] = nl;
        } else if (depth == 0) {
            roots++;
        }
        p = q + 1;
    }
    return depth == 0 && roots == 1;
}

static int count_str(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

TEST(heatmaps_svg_png) {
    char dir[] = "/tmp/cl_test_analysis_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "in %s", tst_current);
    double v[3 * 5];
    for (int k = 0; k < 15; k++) v[k] = k / 14.0;
    v[7] = NAN;
    const char *rl[3] = {"A", "B", "dW"};
    cl_heatmap h = {3, 5, v, rl, NULL, "test <map> & phi", "layer", "type", 0.0, 1.0, 2};
    char svg[256], png[256];
    snprintf(svg, sizeof svg, "%s/h.svg", dir);
    snprintf(png, sizeof png, "%s/h.png", dir);
    cl_error err = {0};
    CHECK(cl_heatmap_svg(&h, svg, &err) == 0, "%s", err.msg);
    CHECK(cl_heatmap_png(&h, png, &err) == 0, "%s", err.msg);
    char *txt = NULL;
    size_t len = 0;
    CHECK(cl_read_file(svg, &txt, &len, &err) == 0, "%s", err.msg);
    if (txt) {
        CHECK(xml_ok(txt), "SVG is not well-formed XML");
        CHECK(strstr(txt, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL, "in %s", tst_current);
        CHECK(count_str(txt, "class=\"cell\"") == 15, "cells: %d", count_str(txt, "class=\"cell\""));
        CHECK(strstr(txt, "test &lt;map&gt; &amp; phi") != NULL, "escaped title");
        CHECK(strstr(txt, ">0.50<") != NULL && strstr(txt, ">1.00<") != NULL, "values written in the cells");
        CHECK(strstr(txt, "class=\"colorbar\"") != NULL, "in %s", tst_current);
        free(txt);
    }
    /* PNG: size, colour of cells, text drawn inside cells */
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    int ok = png_image_begin_read_from_file(&img, png);
    CHECK(ok, "libpng cannot read %s: %s", png, img.message);
    if (ok) {
        int ew, eh;
        cl_heatmap_png_size(&h, &ew, &eh);
        CHECK((int)img.width == ew && (int)img.height == eh, "size %ux%u expected %dx%d", img.width, img.height, ew,
              eh);
        img.format = PNG_FORMAT_RGB;
        unsigned char *px = malloc(PNG_IMAGE_SIZE(img));
        CHECK(png_image_finish_read(&img, NULL, px, 0, NULL), "%s", img.message);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 5; c++) {
                int x0, y0, side;
                cl_heatmap_cell_rect(&h, r, c, &x0, &y0, &side);
                CHECK(x0 + side <= ew && y0 + side <= eh, "in %s", tst_current);
                const unsigned char *q = px + 3 * ((size_t)(y0 + 1) * img.width + x0 + 1);
                uint8_t rgb[3] = {200, 200, 200};
                double val = v[r * 5 + c];
                if (!isnan(val)) cl_colormap(val, rgb);
                CHECK(q[0] == rgb[0] && q[1] == rgb[1] && q[2] == rgb[2], "cell (%d,%d) colour", r, c);
                int text = 0; /* pixels of another colour in the cell: the value's digits */
                for (int y = y0; y < y0 + side; y++)
                    for (int x = x0; x < x0 + side; x++) {
                        const unsigned char *t = px + 3 * ((size_t)y * img.width + x);
                        text += t[0] != rgb[0] || t[1] != rgb[1] || t[2] != rgb[2];
                    }
                CHECK(isnan(val) ? text == 0 : text > 20, "cell (%d,%d): %d text pixels", r, c, text);
            }
        free(px);
    }
    /* bad scale refused, nothing written */
    cl_heatmap bad = h;
    bad.vmax = bad.vmin;
    char bp[256];
    snprintf(bp, sizeof bp, "%s/bad.png", dir);
    CHECK(cl_heatmap_png(&bad, bp, &err) != 0 && access(bp, F_OK) != 0, "%s", err.msg);
    /* the font covers printable ASCII */
    CHECK(cl_font5x7('0') && cl_font5x7('~') && !cl_font5x7(127) && !cl_font5x7('\n'), "in %s", tst_current);
    unlink(svg);
    unlink(png);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------------------------- CLI */

static int run_cmd(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *load_json(const char *path) {
    char *t = NULL;
    size_t len = 0;
    cl_error err = {0};
    if (cl_read_file(path, &t, &len, &err)) return NULL;
    cJSON *j = cJSON_ParseWithLength(t, len);
    free(t);
    return j;
}

TEST(cli_end_to_end) {
    const char *bin = getenv("CL_BIN");
    if (!bin) bin = "build/condlora";
    if (access(bin, X_OK) != 0) {
        SKIP("%s not built", bin);
        return;
    }
    char dir[] = "/tmp/cl_test_analysis_cli_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "in %s", tst_current);
    char cmd[1024], path[512];
    snprintf(cmd, sizeof cmd,
             "%s analyze conversion --model " DATA "/tiny-bert --adapter " DATA "/lora-a --out %s/conv >%s/out.txt 2>&1",
             bin, dir, dir);
    CHECK(run_cmd(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/conv/conversion.json", dir);
    cJSON *j = load_json(path);
    CHECK(j != NULL, "%s does not parse", path);
    if (j) {
        for (int t = 0; t < CL_AN_NTYPES; t++) {
            char rp[128];
            snprintf(rp, sizeof rp, "conversion/modules/value/phi_%s", cl_an_type_names[t]);
            int n;
            double *ref = ref_vec(rp, &n);
            cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "modules"),
                                                                                   "value"), "phi"),
                                           cl_an_type_names[t]);
            double e = 0;
            int cnt = 0;
            cJSON *row, *x;
            cJSON_ArrayForEach(row, m) cJSON_ArrayForEach(x, row) {
                if (cnt < n) e = fmax(e, fabs(x->valuedouble - ref[cnt]));
                cnt++;
            }
            CHECK(cnt == 16 && e < 1e-6, "JSON phi %s: %d values, max |diff| %g", cl_an_type_names[t], cnt, e);
            free(ref);
        }
        cJSON_Delete(j);
    }
    const char *files[] = {"report.md", "query_C_A.svg", "query_C_A.png", "value_C_BA.png", "baseline_C_B.svg",
                           "conversion.safetensors"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/conv/%s", dir, files[k]);
        CHECK(stat(path, &sb) == 0 && sb.st_size > 0, "%s missing", path);
    }
    /* the matrices file: C_A of value layer 3 equals NumPy's */
    cl_safetensors st;
    cl_error err = {0};
    snprintf(path, sizeof path, "%s/conv/conversion.safetensors", dir);
    if (cl_st_open(&st, path, &err) == 0) {
        const cl_st_tensor *t = cl_st_find(&st, "value.layer.3.C_A");
        int n;
        double *ref = ref_vec("conversion/modules/value/C_A/3", &n);
        CHECK(t && t->dtype == CL_DT_F64 && t->numel == 64 && n == 64, "value.layer.3.C_A");
        if (t && t->numel == 64 && n == 64) {
            double v[64];
            memcpy(v, t->data, sizeof v);
            CHECK(rel_err(v, ref, 64) < 1e-5, "in %s", tst_current);
        }
        free(ref);
        cl_st_close(&st);
    } else {
        CHECK(0, "%s", err.msg);
    }
    snprintf(path, sizeof path, "%s/conv/report.md", dir);
    char *md = NULL;
    size_t len;
    if (cl_read_file(path, &md, &len, &err) == 0) {
        CHECK(strstr(md, "![query C_A = W0^-1 A^T](query_C_A.svg)") != NULL, "report embeds the heat maps");
        free(md);
    }
    /* similarity, printed like Table 3 */
    snprintf(cmd, sizeof cmd,
             "%s analyze similarity --model " DATA "/tiny-bert --adapter " DATA "/lora-a --adapter " DATA
             "/lora-b --out %s/sim >%s/sim.txt 2>&1",
             bin, dir, dir);
    CHECK(run_cmd(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/sim/similarity.json", dir);
    j = load_json(path);
    CHECK(j != NULL, "in %s", tst_current);
    if (j) {
        int n;
        double *ref = ref_vec("similarity/query/BA", &n);
        cJSON *arr = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "modules"),
                                                                                 "query"), "phi"), "BA");
        CHECK(cJSON_GetArraySize(arr) == 4 && n == 4, "in %s", tst_current);
        for (int l = 0; l < 4 && n == 4; l++) CHECK_NEAR(cJSON_GetArrayItem(arr, l)->valuedouble, ref[l], 1e-6);
        free(ref);
        cJSON_Delete(j);
    }
    snprintf(path, sizeof path, "%s/sim/sim.txt", dir);
    char *txt = NULL;
    if (cl_read_file(path, &txt, &len, &err) == 0) {
        CHECK(strstr(txt, "random dW") && strstr(txt, "value"), "Table 3 print");
        free(txt);
    }
    /* refusals: non-square modules, a missing adapter */
    snprintf(cmd, sizeof cmd,
             "%s analyze conversion --model " DATA "/tiny-bert --adapter " DATA "/lora-ffn --out %s/ffn >%s/ffn.txt 2>&1",
             bin, dir, dir);
    CHECK(run_cmd(cmd) == 1, "non-square accepted");
    snprintf(path, sizeof path, "%s/ffn.txt", dir);
    if (cl_read_file(path, &txt, &len, &err) == 0) {
        CHECK(strstr(txt, "not square") != NULL, "%s", txt);
        free(txt);
    }
    snprintf(cmd, sizeof cmd, "%s analyze conversion --model " DATA "/tiny-bert --adapter " DATA
             "/lora-ffn --modules query --out %s/ffn >/dev/null 2>&1", bin, dir);
    CHECK(run_cmd(cmd) == 0, "--modules query");
    snprintf(cmd, sizeof cmd, "%s analyze conversion --model " DATA "/tiny-bert --adapter %s/none --out %s/x "
             ">/dev/null 2>&1", bin, dir, dir);
    CHECK(run_cmd(cmd) == 1, "missing adapter accepted");
    snprintf(cmd, sizeof cmd, "%s analyze conversion --adapter " DATA "/lora-a --out %s/x >/dev/null 2>&1", bin, dir);
    CHECK(run_cmd(cmd) == 2, "missing --model accepted");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(run_cmd(cmd) == 0, "in %s", tst_current);
}

int main(void) {
    char *txt = NULL;
    size_t len = 0;
    cl_error err = {0};
    if (cl_read_file(DATA "/ref.json", &txt, &len, &err) == 0) g_ref = cJSON_ParseWithLength(txt, len);
    free(txt);
    CHECK(g_ref != NULL, "%s/ref.json: run scripts/gen_analysis_refs.py (%s)", DATA, err.msg);
    if (!g_ref) return tst_summary(__FILE__);
    RUN(phi_self_is_one_orthogonal_is_zero);
    RUN(phi_random_expectation);
    RUN(lu_solve_and_cond_match_numpy);
    RUN(lu_refuses_singular);
    RUN(svd_matches_numpy);
    RUN(phi_matches_numpy);
    RUN(lowrank_basis_matches_full_svd);
    RUN(adapter_loads_peft_format);
    RUN(conversion_matches_numpy);
    RUN(adalora_folds_e_and_drops_pruned);
    RUN(conversion_refuses_singular_and_non_square);
    RUN(similarity_matches_numpy);
    RUN(heatmaps_svg_png);
    RUN(cli_end_to_end);
    cJSON_Delete(g_ref);
    return tst_summary(__FILE__);
}
