/* Adapters through the WHOLE encoder (issue 5's acceptance): the adapter hook installed in a full tiny encoder with
 * its classification head, trainable parameters in one cl_params buffer, exactly as training uses them.
 *   1. against PyTorch (scripts/gen_adapter_refs.py -> tests/data/adapters/refs.safetensors): the tiny RoBERTa
 *      fixture with PEFT LoRA (non-zero B) and with CondLoRA written directly in PyTorch (code and paper forms):
 *      logits (1e-5 absolute), loss, and the gradients of every A, B, ThA, ThB and head tensor (1e-4, scale-free:
 *      max|diff| / max|ref|);
 *   2. central finite differences of the full loss (task loss + the method's extra loss) w.r.t. every trainable
 *      tensor of every method (LoRA A/B; CondLoRA ThA/ThB code + paper, use_x type1 Thx, type2 w; SaLoRA A/B/log
 *      alpha with gate noise fixed by the batch seed and non-zero Lagrange multipliers; AdaLoRA A/B/E; the head),
 *      on the tiny RoBERTa and a tiny BERT (tests/data/encoder/bert_cls), dropout 0, a sample of coordinates per
 *      tensor. The tolerance is checked to be tight enough that the analytic gradient scaled by 1.01 fails;
 *   3. identity at initialisation (bitwise, LoRA and every CondLoRA form), merged == unmerged logits (1e-5) for all
 *      four methods, and unmerge restoring every W bit for bit. */
#include <math.h>
#include <string.h>
#include "adapters/adapter.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "model/encoder.h"
#include "test.h"
#include "ref.h"

#define REFS "tests/data/adapters/refs.safetensors"
#define REFS_MPNET "tests/data/adapters/refs_mpnet.safetensors"
#define TINY_ROBERTA "tests/data/adapters/tiny_roberta"
#define TINY_MPNET "tests/data/adapters/tiny_mpnet"
#define TINY_BERT "tests/data/encoder/bert_cls"

static cl_safetensors refs, refs_mpnet;
static int refs_ok, refs_mpnet_ok;

static int ref_i32(const cl_safetensors *st, const char *name, int32_t *out, size_t n) {
    const cl_st_tensor *t = cl_st_find(st, name);
    if (!t || t->numel != n) {
        CHECK(0, "reference tensor %s missing or of another size", name);
        return -1;
    }
    memcpy(out, t->data, n * 4);
    return 0;
}

/* ---- a whole encoder + head + adapter ------------------------------------------------------------------------ */
enum { MAXB = 4, MAXT = 24 };
typedef struct {
    cl_weights m;
    int model_ok;
    cl_adapter *ad;
    cl_params p;
    cl_head_params hp;
    cl_head_grads hg;
    cl_encoder *e;
    int32_t ids[MAXB * MAXT], types[MAXB * MAXT], len[MAXB], labels[MAXB];
    int B, T, has_types;
} rig;

/* the batch of the model's reference file: tiny RoBERTa -> refs.safetensors, tiny MPNet -> refs_mpnet.safetensors
 * (ids, attention_mask, labels); bert_cls -> its ref.safetensors (ids, token types, lengths, labels) */
static int rig_batch(rig *g, const char *dir) {
    int mp = !strcmp(dir, TINY_MPNET);
    if (mp || !strcmp(dir, TINY_ROBERTA)) {
        const cl_safetensors *r = mp ? &refs_mpnet : &refs;
        if (!(mp ? refs_mpnet_ok : refs_ok)) return -1;
        const cl_st_tensor *t = cl_st_find(r, "input_ids");
        if (!t || t->ndim != 2 || t->shape[0] > MAXB || t->shape[1] > MAXT) return -1;
        g->B = (int)t->shape[0], g->T = (int)t->shape[1], g->has_types = 0;
        const int n = g->B * g->T;
        int32_t mask[MAXB * MAXT];
        if (ref_i32(r, "input_ids", g->ids, n) || ref_i32(r, "attention_mask", mask, n) ||
            ref_i32(r, "labels", g->labels, g->B))
            return -1;
        for (int b = 0; b < g->B; b++) {
            g->len[b] = 0;
            for (int t2 = 0; t2 < g->T; t2++) g->len[b] += mask[b * g->T + t2];
        }
        return 0;
    }
    cl_safetensors st;
    cl_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    if (cl_st_open(&st, path, &err)) {
        CHECK(0, "%s", err.msg);
        return -1;
    }
    const cl_st_tensor *t = cl_st_find(&st, "input_ids");
    int rc = -1;
    if (t && t->ndim == 2 && t->shape[0] <= MAXB && t->shape[1] <= MAXT) {
        g->B = (int)t->shape[0], g->T = (int)t->shape[1], g->has_types = 1;
        size_t n = (size_t)g->B * g->T;
        rc = ref_i32(&st, "input_ids", g->ids, n) || ref_i32(&st, "token_type_ids", g->types, n) ||
             ref_i32(&st, "lengths", g->len, g->B) || ref_i32(&st, "labels", g->labels, g->B);
    } else {
        CHECK(0, "%s: batch shape", path);
    }
    cl_st_close(&st);
    return rc ? -1 : 0;
}

static void rig_free(rig *g) {
    cl_encoder_free(g->e);
    cl_adapter_free(g->ad);
    cl_params_free(&g->p);
    if (g->model_ok) cl_model_free(&g->m);
    memset(g, 0, sizeof *g);
}

/* 1: the BERT head trains its pooler too (condlora train --train-pooler 1) */
static int g_train_pooler = 0;

/* loads DIR with dropout 0; o == NULL: no adapter (head only) */
static int rig_make(rig *g, const char *dir, const cl_adapter_opts *o, uint64_t seed) {
    memset(g, 0, sizeof *g);
    cl_error err = {0};
    cl_load_opts lo = {0};
    cl_params_init(&g->p);
    if (rig_batch(g, dir)) goto fail;
    if (cl_model_load(&g->m, dir, &lo, &err)) goto fail;
    g->model_ok = 1;
    g->m.cfg.hidden_dropout = g->m.cfg.attention_dropout = 0.0f;
    g->m.cfg.classifier_dropout = -1.0f;
    if (o && (cl_adapter_create(&g->ad, o, &g->m, &err) || cl_adapter_register(g->ad, &g->p, &err))) goto fail;
    if (cl_head_register(&g->p, &g->m, g_train_pooler, &g->hp, &err) || cl_params_alloc(&g->p, &err)) goto fail;
    if (g->ad && cl_adapter_bind(g->ad, &g->p, &err)) goto fail;
    cl_head_bind(&g->p, &g->m, &g->hp, &g->hg);
    if (g->ad) cl_adapter_init(g->ad, seed);
    if (cl_encoder_new(&g->e, &g->m, g->B, g->T, 1, &err)) goto fail;
    return 0;
fail:
    CHECK(0, "%s: setup: %s", dir, err.msg);
    rig_free(g);
    return -1;
}

static cl_batch rig_bt(const rig *g) {
    return (cl_batch){g->ids, g->has_types ? g->types : NULL, g->len, g->B, g->T};
}

/* logits (copied into out, B * num_labels) of a forward; hook: 0 none, 1 the adapter's */
static int rig_logits(rig *g, int use_hook, int train, float *out) {
    cl_error err = {0};
    cl_lin_hook h;
    if (use_hook) {
        h = cl_adapter_hook(g->ad);
        cl_adapter_materialise(g->ad);
        if (cl_adapter_begin_batch(g->ad, g->B, g->T, 77, &err)) goto fail;
    }
    cl_batch bt = rig_bt(g);
    cl_fwd_opts fo = {.train = train, .seed = 5, .hook = use_hook ? &h : NULL};
    const float *lg;
    if (cl_encoder_forward(g->e, &bt, &fo, &lg, NULL, &err)) goto fail;
    memcpy(out, lg, sizeof(float) * g->B * g->m.cfg.num_labels);
    return 0;
fail:
    CHECK(0, "forward: %s", err.msg);
    return -1;
}

/* the full training objective: mean task loss + the method's extra loss; grads = 1 also accumulates its gradient
 * into g->p.grad (zeroed first). CondLoRA is re-materialised from the current parameters every time. */
static double rig_loss(rig *g, int grads, float *logits_out, float *task_out) {
    cl_error err = {0};
    cl_lin_hook h;
    if (grads) cl_params_zero_grad(&g->p);
    if (g->ad) {
        h = cl_adapter_hook(g->ad);
        cl_adapter_materialise(g->ad);
        if (cl_adapter_begin_batch(g->ad, g->B, g->T, 77, &err)) goto fail;
    }
    cl_batch bt = rig_bt(g);
    cl_fwd_opts fo = {.train = 1, .seed = 5, .hook = g->ad ? &h : NULL, .labels = g->labels};
    const float *lg;
    float loss;
    if (cl_encoder_forward(g->e, &bt, &fo, &lg, &loss, &err)) goto fail;
    if (logits_out) memcpy(logits_out, lg, sizeof(float) * g->B * g->m.cfg.num_labels);
    if (task_out) *task_out = loss;
    if (grads && cl_encoder_backward(g->e, 1.0f, &g->hg, &err)) goto fail;
    if (g->ad && cl_adapter_check(g->ad, &err)) goto fail;
    double L = loss;
    if (g->ad) L += cl_adapter_extra_loss(g->ad, grads ? 1.0f : 0.0f);
    return L;
fail:
    CHECK(0, "loss: %s", err.msg);
    return NAN;
}

/* max |a - b| / max |b| */
static double scale_free(const float *a, const float *b, size_t n) {
    double md = 0, mx = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)a[i] - b[i])), mx = fmax(mx, fabs((double)b[i]));
    return mx > 0 ? md / mx : md;
}
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double md = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)a[i] - b[i]));
    return md;
}

/* ---- 1. against PyTorch ---------------------------------------------------------------------------------------- */
static double worst_ref_logits, worst_ref_grad;

/* "condlora.query.theta_A" -> the reference's module name: the architecture's PEFT name ("query" / "q") */
static int ref_mod(const rig *g, const char *pname, char *mod, size_t n) {
    char tmp[32] = {0};
    const char *a = pname + strlen("condlora."), *dot = strchr(a, '.');
    cl_module m;
    if (!dot || dot - a >= 31) return -1;
    memcpy(tmp, a, (size_t)(dot - a));
    if (cl_module_parse(tmp, &m)) return -1;
    snprintf(mod, n, "%s", cl_model_arch(&g->m)->peft[m]);
    return 0;
}

static void ref_case(const char *dir, const cl_safetensors *rf, cl_method meth, int paper) {
    const char *pre = meth == CL_METHOD_LORA ? "lora." : paper ? "condp." : "cond.";
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, meth);
    o.r = 4, o.alpha = 8, o.target_modules = "query,value", o.condlora_paper = paper;
    rig g;
    if (rig_make(&g, dir, &o, 1)) return;
    const size_t nl = (size_t)g.B * g.m.cfg.num_labels;
    char key[CL_PARAM_NAME_MAX + 64];
    /* the reference's adapter values */
    int n_ad = 0;
    for (int k = 0; k < g.p.n; k++) {
        const cl_param_tensor *t = &g.p.t[k];
        if (t->part != CL_PART_ADAPTER) continue;
        if (meth == CL_METHOD_LORA) {
            snprintf(key, sizeof key, "lora.%s", t->name);
        } else {
            char mod[32];
            CHECK(!ref_mod(&g, t->name, mod, sizeof mod), "name %s", t->name);
            if (ref_mod(&g, t->name, mod, sizeof mod)) continue;
            snprintf(key, sizeof key, "%stheta.%s.%s", pre, mod, strstr(t->name, "theta_A") ? "A" : "B");
        }
        n_ad += !ref_load(rf, key, g.p.param + t->offset, t->numel);
    }
    CHECK(n_ad == (meth == CL_METHOD_LORA ? 8 : 4), "%s %s: %d adapter tensors set from the reference", dir, pre,
          n_ad);
    float lg[MAXB * 4], want[MAXB * 4], loss, wl;
    rig_loss(&g, 1, lg, &loss);
    snprintf(key, sizeof key, "%slogits", pre);
    if (!ref_load(rf, key, want, nl)) {
        double e = max_abs_diff(lg, want, nl);
        worst_ref_logits = fmax(worst_ref_logits, e);
        CHECK(e <= 1e-5, "%s %s logits differ from PyTorch by %.3g", dir, pre, e);
    }
    snprintf(key, sizeof key, "%sloss", pre);
    if (!ref_load(rf, key, &wl, 1)) CHECK_NEAR(loss, wl, 1e-5, "%s %s loss", dir, pre);
    /* the inference forward gives the same logits */
    float li[MAXB * 4];
    if (!rig_logits(&g, 1, 0, li)) CHECK(max_abs_diff(li, want, nl) <= 1e-5, "%s %s inference logits", dir, pre);
    /* gradients of every trainable tensor */
    int n_grad = 0;
    for (int k = 0; k < g.p.n; k++) {
        const cl_param_tensor *t = &g.p.t[k];
        if (meth == CL_METHOD_LORA || t->part == CL_PART_HEAD) {
            snprintf(key, sizeof key, "%sgrad.%s", pre, t->name);
        } else {
            char mod[32];
            if (ref_mod(&g, t->name, mod, sizeof mod)) continue;
            snprintf(key, sizeof key, "%sgrad.%s.%s", pre, mod, strstr(t->name, "theta_A") ? "A" : "B");
        }
        float *w = malloc(sizeof(float) * t->numel);
        if (!ref_load(rf, key, w, t->numel)) {
            double e = scale_free(g.p.grad + t->offset, w, t->numel);
            worst_ref_grad = fmax(worst_ref_grad, e);
            CHECK(e <= 1e-4, "%s %s gradient of %s: scale-free error %.3g vs PyTorch", dir, pre, t->name, e);
            n_grad++;
        }
        free(w);
    }
    CHECK(n_grad == g.p.n && n_grad == n_ad + 4, "%s %s: %d of %d gradients compared", dir, pre, n_grad, g.p.n);
    rig_free(&g);
}

static void ref_model(const char *dir, const cl_safetensors *rf) {
    /* the frozen model alone first */
    rig g;
    if (!rig_make(&g, dir, NULL, 0)) {
        float lg[MAXB * 4], want[MAXB * 4];
        const size_t nl = (size_t)g.B * g.m.cfg.num_labels;
        if (!rig_logits(&g, 0, 0, lg) && !ref_load(rf, "base.logits", want, nl))
            CHECK(max_abs_diff(lg, want, nl) <= 1e-5, "%s base logits differ by %.3g", dir,
                  max_abs_diff(lg, want, nl));
        rig_free(&g);
    }
    ref_case(dir, rf, CL_METHOD_LORA, 0);
    ref_case(dir, rf, CL_METHOD_CONDLORA, 0);
    ref_case(dir, rf, CL_METHOD_CONDLORA, 1);
}

TEST(whole_encoder_matches_pytorch) {
    if (!refs_ok) { CHECK(0, "%s missing", REFS); return; }
    if (!refs_mpnet_ok) { CHECK(0, "%s missing", REFS_MPNET); return; }
    ref_model(TINY_ROBERTA, &refs);
    /* MPNet: PEFT LoRA on q, v; the relative-attention bias scaled to std 2; a padded batch of T = 22 */
    ref_model(TINY_MPNET, &refs_mpnet);
    fprintf(stderr, "vs PyTorch: logits max abs err %.3g, gradients max scale-free err %.3g\n", worst_ref_logits,
            worst_ref_grad);
}

/* ---- 2. finite differences ------------------------------------------------------------------------------------- */
#define FD_TOL 7e-3   /* scale-free; a 1% error in the analytic gradient gives about 1e-2: checked per tensor below.
                       * Float noise sets the floor: tensors with max|g| ~ 1e-3 (AdaLoRA E of the last query) reach
                       * 3.1e-3 with OpenBLAS's Haswell kernels and 5.4e-3 with its SkylakeX kernels (the rounding of
                       * the frozen GEMMs differs), so the floor, not the gradient, decides between 4e-3 and 7e-3 */
#define FD_SAMPLES 10 /* coordinates per tensor */
static double worst_fd;

/* every trainable value random and non-zero (B, ThB, Thx, w too), the head kept as loaded. The scale keeps the
 * adapters' deltas comparable to W x as the width H grows (CondLoRA's A_l = ThA W^T, B_l = W ThB^T grow like
 * sqrt(H) each), so attention stays out of saturation and the loss is smooth at the finite-difference step. */
static void randomise(rig *g, uint64_t seed) {
    cl_rng rng;
    cl_rng_seed(&rng, seed);
    double H = g->m.cfg.hidden_size, sc = 0.3 * (H > 16 ? (g->ad && cl_adapter_method(g->ad) == CL_METHOD_CONDLORA
                                                               ? 16 / H : sqrt(16 / H)) : 1.0);
    for (int k = 0; k < g->p.n; k++) {
        const cl_param_tensor *t = &g->p.t[k];
        if (t->part == CL_PART_HEAD) continue;
        for (size_t i = 0; i < t->numel; i++) {
            float v = (float)(sc * cl_rng_normal(&rng));
            if (t->part == CL_PART_GATE) v = (float)(0.5 + 1.5 * cl_rng_normal(&rng));
            /* type2 adds lambda_x s (x . c_b) w with |x . c_b| ~ H: a small w keeps attention out of saturation */
            if (!strcmp(t->name, "condlora.w_x")) v *= 0.05f;
            /* AdaLoRA's delta is trilinear in (A, E, B): larger singular values lift dA, dB above float noise */
            if (strstr(t->name, "lora_E")) v *= 3.0f;
            g->p.param[t->offset + i] = v;
        }
    }
    if (g->ad) cl_adapter_materialise(g->ad);
}

static void fd_case(const char *what, const char *dir, const cl_adapter_opts *o, double eps) {
    rig g;
    if (rig_make(&g, dir, o, 3)) return;
    randomise(&g, 1000 + (uint64_t)o->method * 17 + (uint64_t)o->condlora_use_x * 5 + (uint64_t)o->condlora_paper);
    if (o->method == CL_METHOD_SALORA) { /* non-zero Lagrange multipliers: the L0 term has a gradient */
        for (int s = 0; s < 3; s++) cl_adapter_post_step(g.ad, 90 + s, 100);
        cl_adapter_stats st;
        cl_adapter_stats_get(g.ad, &st);
        CHECK(st.lambda1 != 0 && st.lambda2 != 0, "%s: multipliers moved (%g, %g)", what, st.lambda1, st.lambda2);
    }
    double L0 = rig_loss(&g, 1, NULL, NULL);
    CHECK(isfinite(L0), "%s: loss %g", what, L0);
    float *ga = malloc(sizeof(float) * g.p.numel);
    memcpy(ga, g.p.grad, sizeof(float) * g.p.numel);
    /* the extra loss must really be part of the objective for SaLoRA / AdaLoRA */
    if (o->method == CL_METHOD_SALORA || o->method == CL_METHOD_ADALORA) {
        double ex = cl_adapter_extra_loss(g.ad, 0.0f);
        CHECK(ex > 1e-3, "%s: extra loss %g", what, ex);
    }
    cl_rng rng;
    cl_rng_seed(&rng, 4242);
    int kinds[CL_PART_COUNT] = {0};
    for (int k = 0; k < g.p.n; k++) {
        const cl_param_tensor *t = &g.p.t[k];
        kinds[t->part]++;
        double md = 0, md1 = 0, mx = 0, mx2 = 0;
        /* w_x multiplies (x . c_b) ~ H: a smaller step keeps the type2 term in its smooth range */
        double t_eps = strcmp(t->name, "condlora.w_x") ? eps : eps / 10;
        int ns = t->numel < FD_SAMPLES ? (int)t->numel : FD_SAMPLES;
        for (int j = 0; j < ns; j++) {
            size_t i = ns == (int)t->numel ? (size_t)j : (size_t)cl_rng_below(&rng, t->numel);
            /* five-point central stencil: truncation O(eps^4), so eps can stay large against float rounding */
            float *w = &g.p.param[t->offset + i], w0 = *w;
            double l[4], eps = t_eps;
            static const double off[4] = {2, 1, -1, -2};
            for (int s = 0; s < 4; s++) {
                *w = (float)(w0 + off[s] * eps);
                l[s] = rig_loss(&g, 0, NULL, NULL);
            }
            *w = w0;
            double fd = (-l[0] + 8 * l[1] - 8 * l[2] + l[3]) / (12 * eps), an = ga[t->offset + i];
            md += (fd - an) * (fd - an), md1 += (fd - 1.01 * an) * (fd - 1.01 * an), mx2 += fd * fd;
            mx = fmax(mx, fabs(fd));
        }
        /* scale-free: ||g - g_fd|| / ||g_fd|| over the sampled coordinates of this tensor */
        double rel = mx2 > 0 ? sqrt(md / mx2) : INFINITY, rel1 = mx2 > 0 ? sqrt(md1 / mx2) : 0;
        worst_fd = fmax(worst_fd, rel);
        if (getenv("CL_TEST_VERBOSE"))
            fprintf(stderr, "  %-28s %-80s err %.2e (1%% off: %.2e) max|g| %.2e\n", what, t->name, rel, rel1, mx);
        CHECK(mx > 1e-6, "%s: %s: the sampled gradient is zero (%.3g): nothing tested", what, t->name, mx);
        CHECK(rel < FD_TOL, "%s: %s: scale-free gradient error %.3g vs central differences (max|g| %.3g)", what,
              t->name, rel, mx);
        CHECK(rel1 > FD_TOL, "%s: %s: a 1%% gradient error would pass (%.3g)", what, t->name, rel1);
    }
    CHECK(kinds[CL_PART_ADAPTER] > 0 && kinds[CL_PART_HEAD] > 0, "%s: adapter and head tensors checked", what);
    if (g_train_pooler) {
        int pooler = 0;
        for (int k = 0; k < g.p.n; k++) pooler += strstr(g.p.t[k].name, "bert.pooler.dense.") != NULL;
        CHECK(pooler == 2, "%s: pooler weight and bias checked (%d)", what, pooler);
    }
    CHECK(o->method != CL_METHOD_SALORA || kinds[CL_PART_GATE] > 0, "%s: gates checked", what);
    /* the loss after the perturbations is the loss before (parameters restored, CondLoRA re-materialised) */
    double L1 = rig_loss(&g, 0, NULL, NULL);
    CHECK(L1 == L0, "%s: loss %.9g after the checks, %.9g before", what, L1, L0);
    free(ga);
    rig_free(&g);
}

static void fd_method(const char *dir, const char *tag) {
    char what[96];
    cl_adapter_opts o;
    cl_adapter_opts_default(&o, CL_METHOD_LORA);
    o.r = 3, o.alpha = 6, o.target_modules = "query,value,intermediate.dense,output.dense";
    snprintf(what, sizeof what, "%s lora", tag);
    fd_case(what, dir, &o, 1e-2);
    if (!strcmp(tag, "bert")) { /* the pooler trained with the classifier */
        g_train_pooler = 1;
        snprintf(what, sizeof what, "%s lora + pooler", tag);
        fd_case(what, dir, &o, 1e-2);
        g_train_pooler = 0;
    }

    cl_adapter_opts_default(&o, CL_METHOD_CONDLORA);
    o.r = 3, o.alpha = 6, o.target_modules = "query,key,value,attention.output.dense";
    snprintf(what, sizeof what, "%s condlora code", tag);
    fd_case(what, dir, &o, 1e-2);
    o.condlora_paper = 1;
    snprintf(what, sizeof what, "%s condlora paper", tag);
    fd_case(what, dir, &o, 1e-2);
    o.condlora_paper = 0, o.condlora_use_x = 1;
    snprintf(what, sizeof what, "%s condlora use_x type1", tag);
    fd_case(what, dir, &o, 1e-2);
    o.condlora_use_x = 2;
    snprintf(what, sizeof what, "%s condlora use_x type2", tag);
    fd_case(what, dir, &o, 1e-2);

    cl_adapter_opts_default(&o, CL_METHOD_SALORA);
    o.r = 3, o.alpha = 6, o.target_modules = "query,value,output.dense";
    o.salora_budget = 0.3f, o.salora_lambda_lr = 2.0f, o.salora_orth = 0.1f;
    snprintf(what, sizeof what, "%s salora", tag);
    fd_case(what, dir, &o, 2e-2);

    cl_adapter_opts_default(&o, CL_METHOD_ADALORA);
    o.r = 4, o.ada_target_r = 2, o.alpha = 8, o.target_modules = "query,value,intermediate.dense";
    snprintf(what, sizeof what, "%s adalora", tag);
    fd_case(what, dir, &o, 2e-2);
}

TEST(fd_whole_encoder_roberta) { fd_method(TINY_ROBERTA, "roberta"); }
TEST(fd_whole_encoder_bert) { fd_method(TINY_BERT, "bert"); }
TEST(fd_whole_encoder_mpnet) { fd_method(TINY_MPNET, "mpnet"); }

/* ---- 3. identity at initialisation, merge / unmerge ----------------------------------------------------------- */
static void identity_case(const char *what, const char *dir, const cl_adapter_opts *o) {
    rig g;
    if (rig_make(&g, dir, o, 21)) return;
    float base[MAXB * 4], ad[MAXB * 4];
    size_t n = (size_t)g.B * g.m.cfg.num_labels;
    for (int train = 0; train < 2; train++) {
        if (rig_logits(&g, 0, train, base) || rig_logits(&g, 1, train, ad)) break;
        CHECK(memcmp(base, ad, n * sizeof(float)) == 0, "%s (%s forward): adapted logits differ from the base at "
              "initialisation by %.3g", what, train ? "training" : "inference", max_abs_diff(base, ad, n));
    }
    rig_free(&g);
}

TEST(identity_at_init_whole_encoder) {
    const char *dirs[3] = {TINY_ROBERTA, TINY_BERT, TINY_MPNET};
    for (int d = 0; d < 3; d++) {
        char what[96];
        cl_adapter_opts o;
        cl_adapter_opts_default(&o, CL_METHOD_LORA);
        o.target_modules = "query,key,value,attention.output.dense,intermediate.dense,output.dense", o.r = 4;
        snprintf(what, sizeof what, "%s lora", dirs[d]);
        identity_case(what, dirs[d], &o);
        cl_adapter_opts_default(&o, CL_METHOD_CONDLORA);
        o.target_modules = "query,key,value,attention.output.dense", o.r = 4;
        for (int v = 0; v < 4; v++) {
            o.condlora_paper = v == 1, o.condlora_use_x = v >= 2 ? v - 1 : 0;
            snprintf(what, sizeof what, "%s condlora paper %d use_x %d", dirs[d], o.condlora_paper, o.condlora_use_x);
            identity_case(what, dirs[d], &o);
        }
    }
}

static double worst_merge;

static void merge_case(const char *what, const char *dir, const cl_adapter_opts *o) {
    rig g;
    if (rig_make(&g, dir, o, 31)) return;
    randomise(&g, 555);
    size_t n = (size_t)g.B * g.m.cfg.num_labels;
    float base[MAXB * 4], un[MAXB * 4], mg[MAXB * 4], again[MAXB * 4];
    int L = g.m.cfg.num_layers;
    /* every linear weight before merging */
    size_t tot = 0;
    for (int l = 0; l < L; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) tot += (size_t)g.m.layers[l].lin[m].d_out * g.m.layers[l].lin[m].d_in;
    float *saved = malloc(tot * sizeof(float)), *q = saved;
    for (int l = 0; l < L; l++)
        for (int m = 0; m < CL_MOD_COUNT; m++) {
            const cl_linear *lin = &g.m.layers[l].lin[m];
            memcpy(q, lin->w, sizeof(float) * lin->d_out * lin->d_in), q += (size_t)lin->d_out * lin->d_in;
        }
    cl_error err = {0};
    if (rig_logits(&g, 0, 0, base) || rig_logits(&g, 1, 0, un)) goto done;
    CHECK(max_abs_diff(base, un, n) > 1e-3, "%s: the adapter changes the logits (%.3g): merge test not vacuous", what,
          max_abs_diff(base, un, n));
    if (cl_adapter_merge(g.ad, &err)) { CHECK(0, "%s: merge: %s", what, err.msg); goto done; }
    CHECK(cl_adapter_is_merged(g.ad), "%s merged", what);
    {   /* merged: plain encoder on the merged W (the hook, still installed, must add nothing) */
        if (rig_logits(&g, 0, 0, mg)) goto done;
        double e = max_abs_diff(mg, un, n);
        worst_merge = fmax(worst_merge, e);
        CHECK(e <= 1e-5, "%s: merged logits differ from unmerged by %.3g", what, e);
        if (rig_logits(&g, 1, 0, again)) goto done;
        CHECK(memcmp(again, mg, n * sizeof(float)) == 0, "%s: the hook adds something while merged", what);
    }
    CHECK(cl_adapter_unmerge(g.ad, &err) == 0, "%s: unmerge: %s", what, err.msg);
    {
        int bad = 0;
        q = saved;
        for (int l = 0; l < L; l++)
            for (int m = 0; m < CL_MOD_COUNT; m++) {
                const cl_linear *lin = &g.m.layers[l].lin[m];
                size_t k = (size_t)lin->d_out * lin->d_in;
                bad += memcmp(q, lin->w, sizeof(float) * k) != 0, q += k;
            }
        CHECK(bad == 0, "%s: %d weight matrices not restored bit for bit by unmerge", what, bad);
    }
    if (!rig_logits(&g, 1, 0, again))
        CHECK(memcmp(again, un, n * sizeof(float)) == 0, "%s: logits after unmerge differ from before merging", what);
    if (!rig_logits(&g, 0, 0, again))
        CHECK(memcmp(again, base, n * sizeof(float)) == 0, "%s: base logits after unmerge differ", what);
done:
    free(saved);
    rig_free(&g);
}

TEST(merge_unmerge_whole_encoder) {
    const char *dirs[3] = {TINY_ROBERTA, TINY_BERT, TINY_MPNET};
    for (int d = 0; d < 3; d++) {
        char what[96];
        for (int meth = 0; meth < CL_METHOD_COUNT; meth++) {
            cl_adapter_opts o;
            cl_adapter_opts_default(&o, (cl_method)meth);
            o.r = 4, o.alpha = 8;
            o.target_modules = meth == CL_METHOD_CONDLORA ? "query,key,value,attention.output.dense"
                                                          : "query,value,intermediate.dense,output.dense";
            if (meth == CL_METHOD_ADALORA) o.ada_target_r = 2;
            for (int paper = 0; paper < (meth == CL_METHOD_CONDLORA ? 3 : 1); paper++) {
                o.condlora_paper = paper == 1, o.condlora_use_x = paper == 2;
                snprintf(what, sizeof what, "%s %s%s", dirs[d], cl_method_names[meth],
                         paper == 1 ? " paper" : paper == 2 ? " use_x type1" : "");
                merge_case(what, dirs[d], &o);
            }
        }
    }
    fprintf(stderr, "merged vs unmerged logits: max abs diff %.3g\n", worst_merge);
}

int main(void) {
    cl_error err = {0};
    refs_ok = cl_st_open(&refs, REFS, &err) == 0;
    if (!refs_ok) fprintf(stderr, "%s: %s\n", REFS, err.msg);
    refs_mpnet_ok = cl_st_open(&refs_mpnet, REFS_MPNET, &err) == 0;
    if (!refs_mpnet_ok) fprintf(stderr, "%s: %s\n", REFS_MPNET, err.msg);
    RUN(whole_encoder_matches_pytorch);
    RUN(fd_whole_encoder_roberta);
    RUN(fd_whole_encoder_bert);
    RUN(fd_whole_encoder_mpnet);
    RUN(identity_at_init_whole_encoder);
    RUN(merge_unmerge_whole_encoder);
    fprintf(stderr, "finite differences: worst scale-free error %.3g (tolerance %.1g)\n", worst_fd, FD_TOL);
    cl_st_close(&refs);
    cl_st_close(&refs_mpnet);
    return tst_summary(__FILE__);
}
