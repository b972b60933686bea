/* Adapters: parameter counts, option validation, identity at initialisation, merge / unmerge, export names,
 * SaLoRA component removal, AdamW / clipping and AdaLoRA's rank allocator against PyTorch / PEFT references
 * (scripts/gen_adapter_refs.py -> tests/data/adapters/refs.safetensors). */
#include <math.h>
#include <string.h>
#include "adapters/adapter.h"
#include "core/util.h"
#include "test.h"
#include "ref.h"

static float dummy_w[1];

/* roberta-base shapes without weights (registration only reads shapes and w != NULL) */
static void shape_model(cl_weights *m, cl_layer_weights *layers, int L, int H, int F, int labels) {
    memset(m, 0, sizeof *m);
    m->cfg.arch = CL_ARCH_ROBERTA;
    m->cfg.num_layers = L, m->cfg.hidden_size = H, m->cfg.intermediate_size = F;
    m->layers = layers;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            cl_linear *lin = &layers[l].lin[k];
            lin->w = dummy_w, lin->b = dummy_w;
            lin->d_out = k == CL_MOD_INTER ? F : H;
            lin->d_in = k == CL_MOD_OUT ? F : H;
        }
    m->head = CL_HEAD_DENSE;
    m->head_dense = (cl_linear){dummy_w, dummy_w, H, H};
    m->head_out = (cl_linear){dummy_w, dummy_w, labels, H};
}

/* a small model with random linear weights (allocated here) */
static int fake_model(cl_weights *m, int L, int H, int F, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg.arch = CL_ARCH_ROBERTA;
    m->cfg.num_layers = L, m->cfg.hidden_size = H, m->cfg.intermediate_size = F;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return -1;
    cl_rng rng;
    cl_rng_seed(&rng, seed);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) {
            cl_linear *lin = &m->layers[l].lin[k];
            lin->d_out = k == CL_MOD_INTER ? F : H;
            lin->d_in = k == CL_MOD_OUT ? F : H;
            lin->w = malloc(sizeof(float) * lin->d_out * lin->d_in);
            lin->b = calloc((size_t)lin->d_out, sizeof(float));
            if (!lin->w || !lin->b) return -1;
            for (int i = 0; i < lin->d_out * lin->d_in; i++) lin->w[i] = (float)(0.3 * cl_rng_normal(&rng));
        }
    return 0;
}
static void fake_model_free(cl_weights *m) {
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int k = 0; k < CL_MOD_COUNT; k++) free(m->layers[l].lin[k].w), free(m->layers[l].lin[k].b);
    free(m->layers);
}

TEST(param_counts_roberta_base) {
    static cl_layer_weights layers[12];
    cl_weights m;
    shape_model(&m, layers, 12, 768, 3072, 2);
    cl_method meths[2] = {CL_METHOD_LORA, CL_METHOD_CONDLORA};
    uint64_t want[2] = {294912, 24576};
    for (int i = 0; i < 2; i++) {
        cl_adapter_opts o;
        cl_adapter_opts_default(&o, meths[i]);
        cl_adapter *ad;
        cl_params p;
        cl_params_init(&p);
        cl_error err = {0};
        cl_head_params hp;
        int rc = cl_adapter_create(&ad, &o, &m, &err);
        CHECK(rc == 0, "%s", err.msg);
        if (rc) continue;
        CHECK(cl_adapter_register(ad, &p, &err) == 0, "%s", err.msg);
        CHECK(cl_head_register(&p, &m, 0, &hp, &err) == 0, "%s", err.msg);
        CHECK(p.count[CL_PART_ADAPTER] == want[i], "%s: %llu adapter parameters", cl_method_names[i],
              (unsigned long long)p.count[CL_PART_ADAPTER]);
        CHECK(p.count[CL_PART_HEAD] == 592130, "head %llu", (unsigned long long)p.count[CL_PART_HEAD]);
        char *txt = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&txt, &len);
        cl_params_report(&p, f);
        fclose(f);
        const char *want = i ? "adapter 24,576 | head 592,130 | total 616,706" : "adapter 294,912 | head 592,130 | total 887,042";
        CHECK(txt && strstr(txt, want), "console report '%s'", txt ? txt : "");
        free(txt);
        cl_adapter_free(ad);
        cl_params_free(&p);
    }
    /* roberta-large: 786,432 vs 32,768 (METHODS.md 2) */
    static cl_layer_weights big[24];
    shape_model(&m, big, 24, 1024, 4096, 2);
    for (int i = 0; i < 2; i++) {
        cl_adapter_opts o;
        cl_adapter_opts_default(&o, meths[i]);
        cl_adapter *ad;
        cl_params p;
        cl_params_init(&p);
        cl_error err = {0};
        if (cl_adapter_create(&ad, &o, &m, &err) || cl_adapter_register(ad, &p, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        CHECK(p.count[CL_PART_ADAPTER] == (i ? 32768u : 786432u), "large %llu",
              (unsigned long long)p.count[CL_PART_ADAPTER]);
        cl_adapter_free(ad);
        cl_params_free(&p);
    }
}

static void expect_refusal(cl_weights *m, const cl_adapter_opts *o, const char *option, const char *what) {
    cl_adapter *ad = NULL;
    cl_error err = {0};
    int rc = cl_adapter_create(&ad, o, m, &err);
    CHECK(rc != 0 && ad == NULL, "%s: accepted", what);
    CHECK(strstr(err.msg, option) != NULL, "%s: message '%s' does not name '%s'", what, err.msg, option);
    cl_adapter_free(ad);
}

TEST(bad_configs_refused) {
    cl_weights m;
    if (fake_model(&m, 2, 8, 12, 1)) { CHECK(0, "alloc"); return; }
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_LORA);
    o.r = 0; expect_refusal(&m, &o, "r:", "r = 0");
    o.r = -3; expect_refusal(&m, &o, "r:", "r < 0");
    o.r = 9; expect_refusal(&m, &o, "r:", "r > dimension");
    o.r = 4;
    o.alpha = 0; expect_refusal(&m, &o, "lora_alpha", "alpha = 0");
    o.alpha = -1; expect_refusal(&m, &o, "lora_alpha", "alpha < 0");
    o.alpha = 8;
    o.dropout = 1; expect_refusal(&m, &o, "lora_dropout", "dropout 1");
    o.dropout = 0;
    o.target_modules = "query,dense"; expect_refusal(&m, &o, "target_modules", "unknown target");
    o.target_modules = "query,value";
    o.layers = "0-2"; expect_refusal(&m, &o, "layers", "layer out of range");
    o.layers = "0,x"; expect_refusal(&m, &o, "layers", "bad layer list");
    o.layers = NULL;
    float *w = m.layers[1].lin[CL_MOD_VALUE].w;
    m.layers[1].lin[CL_MOD_VALUE].w = NULL;
    expect_refusal(&m, &o, "target_modules", "target missing from the model");
    m.layers[1].lin[CL_MOD_VALUE].w = w;
    cl_adapter_opts_default(&o, CL_METHOD_SALORA);
    o.salora_budget = 0; expect_refusal(&m, &o, "salora_budget", "budget 0");
    o.salora_budget = 1.5f; expect_refusal(&m, &o, "salora_budget", "budget > 1");
    o.salora_budget = -0.2f; expect_refusal(&m, &o, "salora_budget", "budget < 0");
    cl_adapter_opts_default(&o, CL_METHOD_CONDLORA);
    o.target_modules = "query,intermediate.dense"; expect_refusal(&m, &o, "target_modules", "condlora non-square");
    cl_adapter_opts_default(&o, CL_METHOD_ADALORA);
    o.r = 4, o.ada_target_r = 5; expect_refusal(&m, &o, "ada_target_r", "target_r > init_r");
    cl_method me;
    cl_error err = {0};
    CHECK(cl_method_parse("dora", &me, &err) != 0 && strstr(err.msg, "method"), "%s", err.msg);
    /* accepted edge: budget exactly 1 */
    cl_adapter_opts_default(&o, CL_METHOD_SALORA);
    o.salora_budget = 1.0f;
    cl_adapter *ad;
    CHECK(cl_adapter_create(&ad, &o, &m, &err) == 0, "%s", err.msg);
    cl_adapter_free(ad);
    fake_model_free(&m);
}

typedef struct {
    cl_weights m;
    cl_adapter *ad;
    cl_params p;
} setup;

static int setup_make(setup *s, cl_adapter_opts *o, int randomise) {
    cl_error err = {0};
    cl_params_init(&s->p);
    if (fake_model(&s->m, 2, 16, 24, 3)) return -1;
    if (cl_adapter_create(&s->ad, o, &s->m, &err) || cl_adapter_register(s->ad, &s->p, &err) ||
        cl_params_alloc(&s->p, &err) || cl_adapter_bind(s->ad, &s->p, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    cl_adapter_init(s->ad, 11);
    if (randomise) {
        cl_rng rng;
        cl_rng_seed(&rng, 99);
        for (size_t i = 0; i < s->p.numel; i++) s->p.param[i] = (float)(0.3 * cl_rng_normal(&rng));
        for (int k = 0; k < s->p.n; k++)
            if (strstr(s->p.t[k].name, "log_alpha"))
                for (size_t i = 0; i < s->p.t[k].numel; i++) s->p.param[s->p.t[k].offset + i] = 1.0f + (float)i;
        cl_adapter_materialise(s->ad);
    }
    return 0;
}
static void setup_free(setup *s) {
    cl_adapter_free(s->ad);
    cl_params_free(&s->p);
    fake_model_free(&s->m);
}

/* y (T, d_out) = x W^T (+ delta when the hook is active) for (l, m) */
static void lin_apply(setup *s, int l, cl_module m, const float *x, float *y, int T, int with_hook) {
    cl_linear *lin = &s->m.layers[l].lin[m];
    for (int t = 0; t < T; t++)
        for (int o = 0; o < lin->d_out; o++) {
            double a = 0;
            for (int i = 0; i < lin->d_in; i++) a += (double)x[t * lin->d_in + i] * lin->w[o * lin->d_in + i];
            y[t * lin->d_out + o] = (float)a;
        }
    if (with_hook) {
        cl_lin_hook h = cl_adapter_hook(s->ad);
        if (h.adapted(h.ctx, l, m)) h.forward(h.ctx, l, m, x, y, T, 0);
    }
}

TEST(identity_at_init) {
    cl_method meths[2] = {CL_METHOD_LORA, CL_METHOD_CONDLORA};
    for (int i = 0; i < 2; i++) {
        cl_adapter_opts o;
        cl_adapter_opts_default(&o, meths[i]);
        o.target_modules = meths[i] == CL_METHOD_LORA ? "query,value,intermediate.dense,output.dense"
                                                      : "query,key,value,attention.output.dense";
        setup s;
        if (setup_make(&s, &o, 0)) { CHECK(0, "setup"); continue; }
        float x[5 * 24], y0[5 * 24], y1[5 * 24];
        cl_rng rng;
        cl_rng_seed(&rng, 4);
        for (int k = 0; k < 5 * 24; k++) x[k] = (float)cl_rng_normal(&rng);
        int bad = 0;
        cl_lin_hook h = cl_adapter_hook(s.ad);
        cl_adapter_begin_batch(s.ad, 1, 5, 3, NULL);
        for (int l = 0; l < 2; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                if (!h.adapted(h.ctx, l, (cl_module)m)) continue;
                lin_apply(&s, l, (cl_module)m, x, y0, 5, 0);
                memcpy(y1, y0, sizeof y0);
                h.forward(h.ctx, l, (cl_module)m, x, y1, 5, 1);
                bad += memcmp(y0, y1, sizeof(float) * 5 * s.m.layers[l].lin[m].d_out) != 0;
            }
        CHECK(bad == 0, "%s: adapted output differs from the base at initialisation", cl_method_names[meths[i]]);
        /* LoRA's A follows kaiming-uniform: |A| <= 1/sqrt(d_in), B exactly 0 */
        if (meths[i] == CL_METHOD_LORA) {
            const cl_param_tensor *ta = cl_params_find(&s.p, "base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight");
            const cl_param_tensor *tb = cl_params_find(&s.p, "base_model.model.roberta.encoder.layer.0.attention.self.query.lora_B.weight");
            CHECK(ta && tb, "PEFT names");
            if (ta && tb) {
                float mx = 0, mb = 0;
                for (size_t k = 0; k < ta->numel; k++) mx = fmaxf(mx, fabsf(s.p.param[ta->offset + k]));
                for (size_t k = 0; k < tb->numel; k++) mb = fmaxf(mb, fabsf(s.p.param[tb->offset + k]));
                CHECK(mx <= 0.25f && mx > 0.2f, "max |A| = %g, bound 1/sqrt(16)", mx);
                CHECK(mb == 0, "B = 0");
            }
        }
        setup_free(&s);
    }
}

TEST(merge_unmerge) {
    for (int meth = 0; meth < CL_METHOD_COUNT; meth++) {
        cl_adapter_opts o;
        cl_adapter_opts_default(&o, (cl_method)meth);
        o.r = 4, o.ada_target_r = 2;
        o.target_modules = meth == CL_METHOD_CONDLORA ? "query,value,attention.output.dense" : "query,value,output.dense";
        setup s;
        if (setup_make(&s, &o, 1)) { CHECK(0, "setup"); continue; }
        float x[5 * 24], yu[5 * 24], ym[5 * 24];
        cl_rng rng;
        cl_rng_seed(&rng, 5);
        for (int k = 0; k < 5 * 24; k++) x[k] = (float)cl_rng_normal(&rng);
        size_t n = 0;
        for (int l = 0; l < 2; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) n += (size_t)s.m.layers[l].lin[m].d_out * s.m.layers[l].lin[m].d_in;
        float *saved = malloc(n * sizeof(float)), *q = saved;
        for (int l = 0; l < 2; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                cl_linear *lin = &s.m.layers[l].lin[m];
                memcpy(q, lin->w, sizeof(float) * lin->d_out * lin->d_in);
                q += lin->d_out * lin->d_in;
            }
        double worst = 0, ydelta = 0;
        cl_error err = {0};
        for (int l = 0; l < 2; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                lin_apply(&s, l, (cl_module)m, x, yu, 5, 1);
                float yb[5 * 24];
                lin_apply(&s, l, (cl_module)m, x, yb, 5, 0);
                CHECK(cl_adapter_merge(s.ad, &err) == 0, "%s", err.msg);
                lin_apply(&s, l, (cl_module)m, x, ym, 5, 1); /* hook inactive while merged */
                CHECK(cl_adapter_unmerge(s.ad, &err) == 0, "%s", err.msg);
                for (int k = 0; k < 5 * s.m.layers[l].lin[m].d_out; k++) {
                    worst = fmax(worst, fabs(yu[k] - ym[k]) / (1 + fabs(yu[k])));
                    ydelta = fmax(ydelta, fabs(yu[k] - yb[k]));
                }
            }
        CHECK(worst < 1e-5, "%s: merged vs unmerged %.3g", cl_method_names[meth], worst);
        CHECK(ydelta > 1e-3, "%s: the adapter changes the output (%g)", cl_method_names[meth], ydelta);
        q = saved;
        int same = 1;
        for (int l = 0; l < 2; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                cl_linear *lin = &s.m.layers[l].lin[m];
                same &= memcmp(q, lin->w, sizeof(float) * lin->d_out * lin->d_in) == 0;
                q += lin->d_out * lin->d_in;
            }
        CHECK(same, "%s: unmerge restores W bit for bit", cl_method_names[meth]);
        CHECK(cl_adapter_unmerge(s.ad, &err) != 0, "unmerge twice refused");
        free(saved);
        setup_free(&s);
    }
}

typedef struct {
    int n;
    char names[64][CL_PARAM_NAME_MAX];
    float *data[64];
    int64_t shape[64][2];
} collect;
static int collect_cb(void *user, const char *name, int ndim, const int64_t *shape, const float *data, cl_error *err) {
    collect *c = user;
    if (c->n >= 64) return cl_errf(err, CL_EINVAL, "too many");
    snprintf(c->names[c->n], CL_PARAM_NAME_MAX, "%s", name);
    size_t n = (size_t)shape[0] * (ndim > 1 ? shape[1] : 1);
    c->data[c->n] = malloc(n * sizeof(float));
    memcpy(c->data[c->n], data, n * sizeof(float));
    c->shape[c->n][0] = shape[0], c->shape[c->n][1] = ndim > 1 ? shape[1] : 1;
    c->n++;
    return 0;
}
static void collect_free(collect *c) {
    for (int i = 0; i < c->n; i++) free(c->data[i]);
}

TEST(export_condlora_materialised) {
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_CONDLORA);
    o.r = 3;
    setup s;
    if (setup_make(&s, &o, 1)) { CHECK(0, "setup"); return; }
    collect c = {0};
    cl_error err = {0};
    CHECK(cl_adapter_export(s.ad, collect_cb, &c, &err) == 0, "%s", err.msg);
    CHECK(c.n == 8, "%d tensors", c.n);
    CHECK(!strcmp(c.names[0], "base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight"), "%s",
          c.names[0]);
    CHECK(!strcmp(c.names[3], "base_model.model.roberta.encoder.layer.0.attention.self.value.lora_B.weight"), "%s",
          c.names[3]);
    /* A_l = ThA W^T and B_l = W ThB^T, recomputed here in double for layer 1 value */
    const cl_param_tensor *ta = cl_params_find(&s.p, "condlora.value.theta_A"), *tb = cl_params_find(&s.p, "condlora.value.theta_B");
    CHECK(ta && tb, "shared map names");
    if (ta && tb && c.n == 8) {
        const float *W = s.m.layers[1].lin[CL_MOD_VALUE].w, *ThA = s.p.param + ta->offset, *ThB = s.p.param + tb->offset;
        double ea = 0, eb = 0;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 16; j++) {
                double a = 0, b = 0;
                for (int k = 0; k < 16; k++) a += (double)ThA[i * 16 + k] * W[j * 16 + k], b += (double)W[j * 16 + k] * ThB[i * 16 + k];
                ea = fmax(ea, fabs(a - c.data[6][i * 16 + j]));
                eb = fmax(eb, fabs(b - c.data[7][j * 3 + i]));
            }
        CHECK(ea < 1e-5 && eb < 1e-5, "materialised A_l, B_l: %g %g", ea, eb);
    }
    collect_free(&c);
    setup_free(&s);
}

TEST(salora_removes_closed_components) {
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_SALORA);
    o.r = 4, o.target_modules = "query";
    setup s;
    if (setup_make(&s, &o, 1)) { CHECK(0, "setup"); return; }
    /* layer 0: components 1 and 3 closed (evaluation gate 0 needs sigmoid(la) < 1/12); layer 1: all open */
    const cl_param_tensor *t = cl_params_find(&s.p, "base_model.model.roberta.encoder.layer.0.attention.self.query.salora_log_alpha");
    CHECK(t != NULL, "gate name");
    if (!t) { setup_free(&s); return; }
    s.p.param[t->offset + 1] = -4.0f, s.p.param[t->offset + 3] = -2.5f, s.p.param[t->offset + 0] = 0.0f;
    int ranks[2 * CL_MOD_COUNT];
    int total = cl_adapter_ranks(s.ad, ranks);
    CHECK(ranks[0] == 2 && ranks[CL_MOD_COUNT] == 4 && total == 6, "ranks %d %d total %d", ranks[0], ranks[CL_MOD_COUNT], total);
    CHECK(ranks[1] == -1, "key not adapted");
    collect c = {0};
    cl_error err = {0};
    CHECK(cl_adapter_export(s.ad, collect_cb, &c, &err) == 0, "%s", err.msg);
    CHECK(c.n == 4 && c.shape[0][0] == 2 && c.shape[1][1] == 2, "exported rank %lld", (long long)c.shape[0][0]);
    /* the exported rank-2 LoRA with PEFT's scaling alpha / 2 gives the same dW as s B diag(z) A */
    if (c.n == 4) {
        float *dW = malloc(sizeof(float) * 256);
        cl_linear *lin = &s.m.layers[0].lin[CL_MOD_QUERY];
        float *w0 = malloc(sizeof(float) * 256);
        memcpy(w0, lin->w, sizeof(float) * 256);
        CHECK(cl_adapter_merge(s.ad, &err) == 0, "%s", err.msg);
        for (int k = 0; k < 256; k++) dW[k] = lin->w[k] - w0[k];
        cl_adapter_unmerge(s.ad, &err);
        double e = 0, mx = 0;
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 16; j++) {
                double a = 0;
                for (int k = 0; k < 2; k++) a += (double)c.data[1][i * 2 + k] * c.data[0][k * 16 + j];
                a *= o.alpha / 2.0;
                e = fmax(e, fabs(a - dW[i * 16 + j]));
                mx = fmax(mx, fabs(a));
            }
        CHECK(e < 1e-5 * (1 + mx) && mx > 0, "exported dW error %g (max %g)", e, mx);
        free(dW), free(w0);
    }
    collect_free(&c);
    setup_free(&s);
}

/* ---- references from PyTorch / PEFT ------------------------------------------------------------------------- */
#include "io/safetensors.h"
#define REFS "tests/data/adapters/refs.safetensors"


TEST(adamw_matches_torch) {
    cl_safetensors st;
    cl_error err = {0};
    if (cl_st_open(&st, REFS, &err)) { CHECK(0, "%s", err.msg); return; }
    cl_params p;
    cl_params_init(&p);
    int64_t sh = 37;
    CHECK(cl_params_add(&p, "w", 1, &sh, CL_PART_ADAPTER, 1, NULL, &err) == 0, "%s", err.msg);
    CHECK(cl_params_add(&p, "w", 1, &sh, CL_PART_ADAPTER, 1, NULL, &err) != 0, "duplicate name refused");
    CHECK(cl_params_alloc(&p, &err) == 0, "%s", err.msg);
    ref_load(&st, "adamw.p0", p.param, 37);
    for (int k = 1; k <= 3; k++) {
        char name[32];
        float want[37], norm;
        snprintf(name, sizeof name, "adamw.g%d", k);
        ref_load(&st, name, p.grad, 37);
        snprintf(name, sizeof name, "adamw.norm%d", k);
        ref_load(&st, name, &norm, 1);
        double n = cl_params_clip_grad_norm(&p, 0.5);
        CHECK(fabs(n - norm) <= 1e-5 * norm, "step %d: pre-clip norm %.9g, torch %.9g", k, n, (double)norm);
        cl_params_adamw_step(&p, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f);
        snprintf(name, sizeof name, "adamw.p%d", k);
        ref_load(&st, name, want, 37);
        double e = 0;
        for (int i = 0; i < 37; i++) e = fmax(e, fabs(p.param[i] - want[i]));
        CHECK(e < 2e-6, "step %d: AdamW parameters differ from torch by %g", k, e);
    }
    cl_params_free(&p);
    cl_st_close(&st);
}

/* PEFT's RankAllocator replayed: the same parameters and gradients at every step, the same E afterwards */
TEST(adalora_allocator_matches_peft) {
    cl_safetensors st;
    cl_error err = {0};
    if (cl_st_open(&st, REFS, &err)) { CHECK(0, "%s", err.msg); return; }
    cl_weights m;
    if (fake_model(&m, 2, 16, 24, 1)) { CHECK(0, "alloc"); cl_st_close(&st); return; }
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_ADALORA);
    o.r = 4, o.ada_target_r = 2, o.ada_tinit = 1, o.ada_tfinal = 2, o.ada_deltaT = 2;
    cl_adapter *ad = NULL;
    cl_params p;
    cl_params_init(&p);
    if (cl_adapter_create(&ad, &o, &m, &err) || cl_adapter_register(ad, &p, &err) || cl_params_alloc(&p, &err) ||
        cl_adapter_bind(ad, &p, &err)) {
        CHECK(0, "%s", err.msg);
        goto done;
    }
    cl_adapter_init(ad, 1);
    const int TOTAL = 10;
    {
        const cl_st_tensor *tb = cl_st_find(&st, "ada.budget"), *tm = cl_st_find(&st, "ada.maskind");
        CHECK(tb && tm && tb->numel == (uint64_t)TOTAL + 1, "budget reference");
        if (tb && tm) {
            const int32_t *b = (const int32_t *)tb->data, *mi = (const int32_t *)tm->data;
            for (int t = 0; t <= TOTAL; t++) {
                int mask, bud = cl_adalora_schedule(ad, t, TOTAL, &mask);
                int32_t wb, wm;
                memcpy(&wb, b + t, 4), memcpy(&wm, mi + t, 4);
                CHECK(bud == wb && mask == wm, "step %d: budget %d mask %d, PEFT %d %d", t, bud, mask, wb, wm);
            }
        }
    }
    int masked_seen = 0, kept_last = 0;
    for (int step = 1; step <= TOTAL; step++) {
        char name[256];
        for (int k = 0; k < p.n; k++) {
            const cl_param_tensor *t = &p.t[k];
            snprintf(name, sizeof name, "ada.s%d.p.%s", step, t->name);
            ref_load(&st, name, p.param + t->offset, t->numel);
            snprintf(name, sizeof name, "ada.s%d.g.%s", step, t->name);
            ref_load(&st, name, p.grad + t->offset, t->numel);
        }
        cl_adapter_post_step(ad, step, TOTAL);
        int mism = 0;
        for (int k = 0; k < p.n; k++) {
            const cl_param_tensor *t = &p.t[k];
            if (!strstr(t->name, "lora_E")) continue;
            float want[4];
            snprintf(name, sizeof name, "ada.s%d.E.%s", step, t->name);
            if (ref_load(&st, name, want, 4)) continue;
            for (int i = 0; i < 4; i++) {
                mism += want[i] != p.param[t->offset + i];
                masked_seen += want[i] == 0;
                if (step == TOTAL) kept_last += want[i] != 0;
            }
        }
        CHECK(mism == 0, "step %d: %d entries of E differ from PEFT after update_and_allocate", step, mism);
    }
    CHECK(masked_seen > 0, "the replay masks something");
    int ranks[2 * CL_MOD_COUNT];
    int total = cl_adapter_ranks(ad, ranks);
    CHECK(total == kept_last && total <= 2 * 4, "learned ranks sum to %d, PEFT keeps %d (budget 8, ties masked)",
          total, kept_last);
    /* orthogonal regulariser value (PEFT adds it to the loss in forward) */
    {
        float want;
        if (!ref_load(&st, "ada.orth", &want, 1)) {
            double v = cl_adapter_extra_loss(ad, 0.0f);
            CHECK(fabs(v - want) <= 1e-5 * fabs(want), "orth_reg_weight * mean ||cov - I||_F = %.9g, PEFT %.9g", v, (double)want);
        }
    }
done:
    cl_adapter_free(ad);
    cl_params_free(&p);
    fake_model_free(&m);
    cl_st_close(&st);
}
/* One linear layer against PyTorch: PEFT's lora.Linear (non-zero B) and the CondLoRA formulas written in PyTorch */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num) / (sqrt(den) + 1e-30);
}

static void single_case(const cl_safetensors *st, cl_method meth, int paper) {
    const char *pre = meth == CL_METHOD_LORA ? "single.lora." : paper ? "single.condp." : "single.cond.";
    cl_weights m;
    if (fake_model(&m, 2, 16, 24, 1)) { CHECK(0, "alloc"); return; }
    cl_linear *lin = &m.layers[1].lin[CL_MOD_VALUE];
    float x[80], R[80], y[80], dx[80], want[80], got[64];
    ref_load(st, "single.W", lin->w, 256);
    ref_load(st, "single.b", lin->b, 16);
    ref_load(st, "single.x", x, 80);
    ref_load(st, "single.R", R, 80);
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, meth);
    o.r = 4, o.alpha = 8, o.target_modules = "value", o.layers = "1", o.condlora_paper = paper;
    cl_adapter *ad = NULL;
    cl_params p;
    cl_params_init(&p);
    cl_error err = {0};
    if (cl_adapter_create(&ad, &o, &m, &err) || cl_adapter_register(ad, &p, &err) || cl_params_alloc(&p, &err) ||
        cl_adapter_bind(ad, &p, &err)) {
        CHECK(0, "%s", err.msg);
        goto done;
    }
    cl_adapter_init(ad, 1);
    const char *na = "base_model.model.roberta.encoder.layer.1.attention.self.value.lora_A.weight";
    const char *nb = "base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight";
    char key[256];
    const cl_param_tensor *ta = cl_params_find(&p, meth == CL_METHOD_LORA ? na : "condlora.value.theta_A");
    const cl_param_tensor *tb = cl_params_find(&p, meth == CL_METHOD_LORA ? nb : "condlora.value.theta_B");
    CHECK(ta && tb, "parameter names");
    if (!ta || !tb) goto done;
    snprintf(key, sizeof key, "%s%s", meth == CL_METHOD_LORA ? "lora." : "cond.theta.value.", meth == CL_METHOD_LORA ? na : "A");
    ref_load(st, key, p.param + ta->offset, ta->numel);
    snprintf(key, sizeof key, "%s%s", meth == CL_METHOD_LORA ? "lora." : "cond.theta.value.", meth == CL_METHOD_LORA ? nb : "B");
    ref_load(st, key, p.param + tb->offset, tb->numel);
    cl_adapter_materialise(ad);
    /* base: y = x W^T + b, dx = R W (double), then the hook adds its part */
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 16; i++) {
            double a = lin->b[i], g = 0;
            for (int k = 0; k < 16; k++) a += (double)x[t * 16 + k] * lin->w[i * 16 + k], g += (double)R[t * 16 + k] * lin->w[k * 16 + i];
            y[t * 16 + i] = (float)a, dx[t * 16 + i] = (float)g;
        }
    cl_lin_hook h = cl_adapter_hook(ad);
    CHECK(h.adapted(h.ctx, 1, CL_MOD_VALUE) && !h.adapted(h.ctx, 0, CL_MOD_VALUE), "layers option");
    cl_adapter_begin_batch(ad, 1, 5, 1, NULL);
    h.forward(h.ctx, 1, CL_MOD_VALUE, x, y, 5, 1);
    h.backward(h.ctx, 1, CL_MOD_VALUE, x, R, dx, 5);
    snprintf(key, sizeof key, "%sy", pre);
    if (!ref_load(st, key, want, 80)) CHECK(rel_err(y, want, 80) < 1e-6, "%s y rel err %.3g", pre, rel_err(y, want, 80));
    snprintf(key, sizeof key, "%sdx", pre);
    if (!ref_load(st, key, want, 80)) CHECK(rel_err(dx, want, 80) < 1e-5, "%s dx rel err %.3g", pre, rel_err(dx, want, 80));
    snprintf(key, sizeof key, "%s%s", pre, meth == CL_METHOD_LORA ? "dA" : "dThA");
    if (!ref_load(st, key, got, 64)) {
        double e = rel_err(p.grad + ta->offset, got, 64);
        CHECK(e < 1e-5, "%s gradient of A / ThA: rel err %.3g", pre, e);
    }
    snprintf(key, sizeof key, "%s%s", pre, meth == CL_METHOD_LORA ? "dB" : "dThB");
    if (!ref_load(st, key, got, 64)) {
        double e = rel_err(p.grad + tb->offset, got, 64);
        CHECK(e < 1e-5, "%s gradient of B / ThB: rel err %.3g", pre, e);
    }
done:
    cl_adapter_free(ad);
    cl_params_free(&p);
    fake_model_free(&m);
}

TEST(single_layer_matches_pytorch) {
    cl_safetensors st;
    cl_error err = {0};
    if (cl_st_open(&st, REFS, &err)) { CHECK(0, "%s", err.msg); return; }
    single_case(&st, CL_METHOD_LORA, 0);
    single_case(&st, CL_METHOD_CONDLORA, 0);
    single_case(&st, CL_METHOD_CONDLORA, 1);
    cl_st_close(&st);
}

int main(void) {
    RUN(param_counts_roberta_base);
    RUN(bad_configs_refused);
    RUN(identity_at_init);
    RUN(merge_unmerge);
    RUN(export_condlora_materialised);
    RUN(salora_removes_closed_components);
    RUN(adamw_matches_torch);
    RUN(adalora_allocator_matches_peft);
    RUN(single_layer_matches_pytorch);
    return tst_summary(__FILE__);
}
