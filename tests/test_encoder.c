/* Encoder forward/backward against Hugging Face transformers (tests/data/encoder, scripts/gen_encoder_refs.py),
 * batch independence, thread-count independence, a finite-difference check of the training path (dropout on,
 * an adapter hook on every linear), bad input, and all-MiniLM-L6-v2 when it is in the cache. */
#include <omp.h>
#include <unistd.h>
#include <stdint.h>
#include "core/util.h"
#include "io/safetensors.h"
#include "model/encoder.h"
#include "model/ops.h"
#include "test.h"

#define DATA "tests/data/encoder"

typedef struct {
    cl_safetensors st;
    int ok;
} ref_file;

static int ref_open(ref_file *r, const char *path) {
    cl_error err = {0};
    r->ok = cl_st_open(&r->st, path, &err) == 0;
    if (!r->ok) fprintf(stderr, "cannot open %s: %s\n", path, err.msg);
    return r->ok;
}

/* copies a tensor (F32 or I32) into a fresh buffer; numel in *n */
static void *ref_get(ref_file *r, const char *name, size_t *n) {
    const cl_st_tensor *t = cl_st_find(&r->st, name);
    if (!t) return NULL;
    void *p = malloc(t->numel * 4 + 4);
    memcpy(p, t->data, t->numel * 4);
    if (n) *n = t->numel;
    return p;
}

/* max |a - b| / max |b| (norm-wise relative error) */
static double rel_err(const float *a, const float *b, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(b[i]));
        md = fmax(md, fabs((double)a[i] - b[i]));
    }
    return mx > 0 ? md / mx : md;
}
static double abs_err(const float *a, const float *b, size_t n) {
    double md = 0;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)a[i] - b[i]));
    return md;
}

static void zero_dropout(cl_weights *m) {
    m->cfg.hidden_dropout = m->cfg.attention_dropout = 0.0f;
    m->cfg.classifier_dropout = -1.0f;
}

static void check_model(const char *name) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, DATA "/%s", name);
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    ref_file r;
    if (!ref_open(&r, path)) {
        CHECK(0, "%s missing", path);
        return;
    }
    cl_weights m;
    cl_error err = {0};
    cl_load_opts lo = {0};
    if (cl_model_load(&m, dir, &lo, &err)) {
        CHECK(0, "load %s: %s", dir, err.msg);
        cl_st_close(&r.st);
        return;
    }
    zero_dropout(&m); /* the reference ran in eval mode; the training forward below must match it */
    size_t nids, nlen, nhs;
    int32_t *ids = ref_get(&r, "input_ids", &nids), *types = ref_get(&r, "token_type_ids", NULL);
    int32_t *len = ref_get(&r, "lengths", &nlen), *labels = ref_get(&r, "labels", NULL);
    float *targets = ref_get(&r, "targets", NULL), *rlog = ref_get(&r, "logits", NULL);
    float *mtargets = ref_get(&r, "multi_targets", NULL);
    float *rloss = ref_get(&r, "loss", NULL), *rhs = ref_get(&r, "hidden_states", &nhs);
    float *remb = ref_get(&r, "input_embeds_grad", NULL);
    const int B = (int)nlen, T = (int)(nids / nlen), H = m.cfg.hidden_size, NL = m.cfg.num_layers;
    const int L = m.head_out.d_out;
    CHECK(nhs == (size_t)(NL + 1) * B * T * H, "hidden_states numel");
    cl_encoder *e = NULL;
    CHECK(cl_encoder_new(&e, &m, B, T, 1, &err) == 0, "%s", err.msg);
    if (!e) goto done;
    cl_batch bt = {ids, m.type_emb ? types : NULL, len, B, T};
    float *hs = calloc(nhs, sizeof(float));
    cl_fwd_opts fo = {.labels = labels, .targets = targets, .multi_targets = mtargets, .hidden_states = hs};
    const float *logits;
    float loss;
    CHECK(cl_encoder_forward(e, &bt, &fo, &logits, &loss, &err) == 0, "%s", err.msg);
    CHECK(abs_err(logits, rlog, (size_t)B * L) <= 1e-5, "%s logits |diff| %.3g", name,
          abs_err(logits, rlog, (size_t)B * L));
    CHECK(fabs(loss - rloss[0]) <= 1e-5, "%s loss %.9g vs %.9g", name, loss, rloss[0]);
    for (int l = 0; l <= NL; l++) {
        size_t o = (size_t)l * B * T * H;
        double d = abs_err(hs + o, rhs + o, (size_t)B * T * H);
        CHECK(d <= 1e-5, "%s hidden state %d |diff| %.3g", name, l, d);
    }
    /* training forward (dropout 0) + backward: head gradients and d loss / d input embeddings */
    const cl_linear *dense = m.head == CL_HEAD_DENSE ? &m.head_dense : &m.pooler;
    float *gdw = calloc((size_t)H * H, 4), *gdb = calloc(H, 4), *gow = calloc((size_t)L * H, 4),
          *gob = calloc(L, 4);
    cl_head_grads g = {gdw, gdb, gow, gob};
    fo.train = 1;
    fo.seed = 7;
    fo.need_input_grad = 1;
    fo.hidden_states = NULL;
    CHECK(cl_encoder_forward(e, &bt, &fo, &logits, &loss, &err) == 0, "%s", err.msg);
    CHECK(abs_err(logits, rlog, (size_t)B * L) <= 1e-5, "%s training logits", name);
    CHECK(cl_encoder_backward(e, 1.0f, &g, &err) == 0, "%s", err.msg);
    const char *dn = m.head == CL_HEAD_DENSE ? "grad.classifier.dense" : "grad.pooler.dense";
    const char *on = m.head == CL_HEAD_DENSE ? "grad.classifier.out_proj" : "grad.classifier";
    struct { const char *suffix; float *got; size_t n; const char *base; } gs[] = {
        {".weight", gdw, (size_t)H * H, dn}, {".bias", gdb, (size_t)H, dn},
        {".weight", gow, (size_t)L * H, on}, {".bias", gob, (size_t)L, on}};
    for (int i = 0; i < 4; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s%s", gs[i].base, gs[i].suffix);
        float *ref = ref_get(&r, key, NULL);
        CHECK(ref != NULL, "%s: no %s", name, key);
        if (ref) CHECK(rel_err(gs[i].got, ref, gs[i].n) <= 1e-4, "%s %s rel err %.3g", name, key,
                       rel_err(gs[i].got, ref, gs[i].n));
        free(ref);
    }
    (void)dense;
    const float *demb = cl_encoder_input_grad(e);
    CHECK(demb != NULL, "input grad");
    if (demb) CHECK(rel_err(demb, remb, (size_t)B * T * H) <= 1e-4, "%s input embedding grad rel err %.3g", name,
                    rel_err(demb, remb, (size_t)B * T * H));

    /* batch independence: each example alone, at its own length, gives the same logits */
    float *blog = malloc((size_t)B * L * 4);
    memcpy(blog, rlog, (size_t)B * L * 4);
    cl_fwd_opts eo = {0};
    for (int b = 0; b < B; b++) {
        cl_batch one = {ids + (size_t)b * T, bt.type_ids ? types + (size_t)b * T : NULL, len + b, 1, len[b]};
        CHECK(cl_encoder_forward(e, &one, &eo, &logits, NULL, &err) == 0, "%s", err.msg);
        for (int j = 0; j < L; j++)
            CHECK(fabs(logits[j] - blog[(size_t)b * L + j]) <= 1e-5, "%s example %d alone: %.9g vs %.9g", name, b, logits[j], blog[(size_t)b * L + j]);
    }
    /* thread-count independence */
    int nt = omp_get_max_threads();
    float *l1 = malloc((size_t)B * L * 4);
    omp_set_num_threads(1);
    cl_encoder_forward(e, &bt, &eo, &logits, NULL, &err);
    memcpy(l1, logits, (size_t)B * L * 4);
    omp_set_num_threads(nt > 1 ? nt : 2);
    cl_encoder_forward(e, &bt, &eo, &logits, NULL, &err);
    CHECK(abs_err(l1, logits, (size_t)B * L) <= 1e-6, "%s: 1 vs %d threads", name, nt > 1 ? nt : 2);
    omp_set_num_threads(nt);
    free(l1);
    free(blog);
    free(gdw), free(gdb), free(gow), free(gob), free(hs);
    cl_encoder_free(e);
done:
    free(ids), free(types), free(len), free(labels), free(targets), free(mtargets), free(rlog), free(rloss), free(rhs), free(remb);
    cl_model_free(&m);
    cl_st_close(&r.st);
}

TEST(roberta_cls) { check_model("roberta_cls"); }
TEST(roberta_reg) { check_model("roberta_reg"); }
TEST(bert_cls) { check_model("bert_cls"); }
TEST(bert_reg_tanh) { check_model("bert_reg_tanh"); }
/* MPNet: relative-attention bias scaled to std 2 (a missing or transposed bias fails), one sequence of T >= 100 */
TEST(mpnet_cls) { check_model("mpnet_cls"); }
TEST(mpnet_reg) { check_model("mpnet_reg"); }
/* problem_type multi_label_classification: BCEWithLogitsLoss over B x num_labels */
TEST(roberta_multi) { check_model("roberta_multi"); }
TEST(mpnet_multi) { check_model("mpnet_multi"); }

/* ---- a toy low-rank adapter hook on every linear: checks call order and finite differences ---------------- */
#define R 2
typedef struct {
    int NL;
    float *A[8][CL_MOD_COUNT], *Bm[8][CL_MOD_COUNT];   /* (R, d_in), (d_out, R) */
    float *dA[8][CL_MOD_COUNT], *dB[8][CL_MOD_COUNT];
    int din[CL_MOD_COUNT], dout[CL_MOD_COUNT];
    int log[256], nlog, order_ok, skip_layer;
} toy;

static int toy_adapted(void *c, int l, cl_module m) {
    toy *t = c;
    return l != t->skip_layer || m == CL_MOD_VALUE;
}
static void toy_fwd(void *c, int l, cl_module m, const float *x, float *y, int T, int train) {
    toy *t = c;
    if (t->nlog < 256) t->log[t->nlog++] = l * CL_MOD_COUNT + m;
    for (int i = 0; i < T; i++)
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int k = 0; k < t->din[m]; k++) s += x[(size_t)i * t->din[m] + k] * t->A[l][m][r * t->din[m] + k];
            for (int o = 0; o < t->dout[m]; o++) y[(size_t)i * t->dout[m] + o] += (float)s * t->Bm[l][m][o * R + r];
        }
}
static void toy_bwd(void *c, int l, cl_module m, const float *x, const float *dy, float *dx, int T) {
    toy *t = c;
    int id = l * CL_MOD_COUNT + m;
    if (t->nlog <= 0 || t->log[--t->nlog] != id) t->order_ok = 0;
    const int di = t->din[m], dO = t->dout[m];
    for (int i = 0; i < T; i++) {
        float h[R], dh[R] = {0};
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int k = 0; k < di; k++) s += x[(size_t)i * di + k] * t->A[l][m][r * di + k];
            h[r] = (float)s;
        }
        for (int o = 0; o < dO; o++)
            for (int r = 0; r < R; r++) {
                t->dB[l][m][o * R + r] += dy[(size_t)i * dO + o] * h[r];
                dh[r] += dy[(size_t)i * dO + o] * t->Bm[l][m][o * R + r];
            }
        for (int r = 0; r < R; r++)
            for (int k = 0; k < di; k++) {
                t->dA[l][m][r * di + k] += dh[r] * x[(size_t)i * di + k];
                dx[(size_t)i * di + k] += dh[r] * t->A[l][m][r * di + k];
            }
    }
}

TEST(hook_finite_differences) {
    cl_weights m;
    cl_error err = {0};
    cl_load_opts lo = {0};
    if (cl_model_load(&m, DATA "/roberta_cls", &lo, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const int NL = m.cfg.num_layers, H = m.cfg.hidden_size;
    toy t = {.NL = NL, .order_ok = 1, .skip_layer = 0};
    cl_rng rng;
    cl_rng_seed(&rng, 5);
    for (int mo = 0; mo < CL_MOD_COUNT; mo++) {
        t.din[mo] = m.layers[0].lin[mo].d_in;
        t.dout[mo] = m.layers[0].lin[mo].d_out;
        for (int l = 0; l < NL; l++) {
            size_t na = (size_t)R * t.din[mo], nb = (size_t)t.dout[mo] * R;
            t.A[l][mo] = malloc(na * 4), t.Bm[l][mo] = malloc(nb * 4);
            t.dA[l][mo] = calloc(na, 4), t.dB[l][mo] = calloc(nb, 4);
            for (size_t i = 0; i < na; i++) t.A[l][mo][i] = (float)(0.2 * cl_rng_normal(&rng));
            for (size_t i = 0; i < nb; i++) t.Bm[l][mo][i] = (float)(0.2 * cl_rng_normal(&rng));
        }
    }
    cl_lin_hook hk = {&t, toy_adapted, toy_fwd, toy_bwd};
    enum { B = 3, T = 9 };
    int32_t ids[B * T], len[B] = {9, 5, 7}, labels[B] = {1, 0, 1};
    for (int i = 0; i < B * T; i++) ids[i] = (i % T) < len[i / T] ? 3 + (int)cl_rng_below(&rng, 60) : 1;
    cl_batch bt = {ids, NULL, len, B, T};
    cl_encoder *e = NULL;
    CHECK(cl_encoder_new(&e, &m, B, T, 1, &err) == 0, "%s", err.msg);
    if (!e) return;
    float *gow = calloc((size_t)2 * H, 4);
    cl_head_grads g = {.out_w = gow};
    cl_fwd_opts fo = {.train = 1, .seed = 42, .hook = &hk, .labels = labels, .need_input_grad = 1};
    float loss;
    CHECK(cl_encoder_forward(e, &bt, &fo, NULL, &loss, &err) == 0, "%s", err.msg);
    CHECK(cl_encoder_backward(e, 1.0f, &g, &err) == 0, "%s", err.msg);
    CHECK(t.order_ok && t.nlog == 0, "hook backward calls are the exact reverse of forward calls");
    const float *demb = cl_encoder_input_grad(e);
    /* d loss / d word_emb[id] = sum of the input gradient over the positions holding id */
    float *dword = calloc((size_t)m.cfg.vocab_size * H, 4);
    cl_embed_backward_word(dword, demb, ids, B * T, H);

    /* central differences, in the same dropout masks (same seed) */
    fo.hook = &hk;
    fo.need_input_grad = 0;
    double worst = 0;
    int nchk = 0;
    for (int trial = 0; trial < 24; trial++) {
        float *p, an;
        int kind = trial % 4, l = (trial / 4) % NL, mo = (trial * 5) % CL_MOD_COUNT;
        if (kind == 0) {
            size_t i = cl_rng_below(&rng, (size_t)R * t.din[mo]);
            p = &t.A[l][mo][i], an = t.dA[l][mo][i];
        } else if (kind == 1) {
            size_t i = cl_rng_below(&rng, (size_t)t.dout[mo] * R);
            p = &t.Bm[l][mo][i], an = t.dB[l][mo][i];
        } else if (kind == 2) {
            size_t i = cl_rng_below(&rng, (size_t)2 * H);
            p = &m.head_out.w[i], an = gow[i];
        } else {
            size_t i = (size_t)ids[cl_rng_below(&rng, 5)] * H + cl_rng_below(&rng, H);
            p = &m.word_emb[i], an = dword[i];
        }
        if (l == t.skip_layer && mo != CL_MOD_VALUE && kind < 2) continue;
        const float eps = 1e-2f, save = *p;
        float lp, lm;
        *p = save + eps;
        cl_encoder_forward(e, &bt, &fo, NULL, &lp, &err);
        *p = save - eps;
        cl_encoder_forward(e, &bt, &fo, NULL, &lm, &err);
        *p = save;
        double num = ((double)lp - lm) / (2 * eps);
        double d = fabs(num - an) / fmax(fmax(fabs(num), fabs(an)), 1e-3);
        worst = fmax(worst, d);
        nchk++;
        CHECK(d < 2e-2, "trial %d kind %d layer %d module %d: analytic %.6g numeric %.6g", trial, kind, l, mo, an,
              num);
    }
    CHECK(nchk > 10, "checked %d derivatives", nchk);
    if (getenv("CL_TEST_VERBOSE")) fprintf(stderr, "hook FD: worst scale-free error %.3g over %d\n", worst, nchk);
    for (int l = 0; l < NL; l++)
        for (int mo = 0; mo < CL_MOD_COUNT; mo++) free(t.A[l][mo]), free(t.Bm[l][mo]), free(t.dA[l][mo]), free(t.dB[l][mo]);
    free(gow), free(dword);
    cl_encoder_free(e);
    cl_model_free(&m);
}

TEST(dropout_is_seeded) {
    cl_weights m;
    cl_error err = {0};
    cl_load_opts lo = {0};
    if (cl_model_load(&m, DATA "/bert_cls", &lo, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    enum { B = 2, T = 6 };
    int32_t ids[B * T] = {2, 5, 6, 7, 8, 9, 2, 10, 11, 0, 0, 0}, len[B] = {6, 3};
    cl_batch bt = {ids, NULL, len, B, T};
    cl_encoder *e = NULL;
    CHECK(cl_encoder_new(&e, &m, B, T, 1, &err) == 0, "%s", err.msg);
    if (!e) return;
    float a[4], b[4], c[4], d[4];
    const float *lg;
    cl_fwd_opts fo = {.train = 1, .seed = 1};
    cl_encoder_forward(e, &bt, &fo, &lg, NULL, &err), memcpy(a, lg, sizeof a);
    cl_encoder_forward(e, &bt, &fo, &lg, NULL, &err), memcpy(b, lg, sizeof b);
    fo.seed = 2;
    cl_encoder_forward(e, &bt, &fo, &lg, NULL, &err), memcpy(c, lg, sizeof c);
    fo.train = 0;
    cl_encoder_forward(e, &bt, &fo, &lg, NULL, &err), memcpy(d, lg, sizeof d);
    CHECK(!memcmp(a, b, sizeof a), "same seed, same logits");
    CHECK(memcmp(a, c, sizeof a) != 0, "another seed, other logits");
    CHECK(memcmp(a, d, sizeof a) != 0, "dropout changes training logits");
    cl_encoder_free(e);
    cl_model_free(&m);
}

TEST(bad_input) {
    cl_weights m;
    cl_error err = {0};
    cl_load_opts lo = {0};
    if (cl_model_load(&m, DATA "/roberta_cls", &lo, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    cl_encoder *e = NULL, *inf = NULL;
    CHECK(cl_encoder_new(&e, &m, 2, 8, 0, &err) == 0, "%s", err.msg);
    CHECK(cl_encoder_new(&inf, &m, 2, 100, 0, &err) != 0 && strstr(err.msg, "positions"), "%s", err.msg);
    if (!e) return;
    int32_t ids[16] = {0, 5, 6, 2, 1, 1, 1, 1, 0, 9, 99999, 2, 1, 1, 1, 1}, len[2] = {4, 4}, lab[2] = {0, 5};
    cl_batch bt = {ids, NULL, len, 2, 8};
    CHECK(cl_encoder_forward(e, &bt, NULL, NULL, NULL, &err) != 0 && strstr(err.msg, "99999"), "%s", err.msg);
    ids[10] = 7;
    len[1] = 0;
    CHECK(cl_encoder_forward(e, &bt, NULL, NULL, NULL, &err) != 0 && strstr(err.msg, "length 0"), "%s", err.msg);
    len[1] = 4;
    cl_fwd_opts fo = {.labels = lab};
    CHECK(cl_encoder_forward(e, &bt, &fo, NULL, NULL, &err) != 0 && strstr(err.msg, "label 5"), "%s", err.msg);
    fo.labels = NULL;
    fo.train = 1;
    CHECK(cl_encoder_forward(e, &bt, &fo, NULL, NULL, &err) != 0 && strstr(err.msg, "inference"), "%s", err.msg);
    bt.T = 9;
    CHECK(cl_encoder_forward(e, &bt, NULL, NULL, NULL, &err) != 0, "T over the workspace");
    bt.T = 8;
    CHECK(cl_encoder_backward(e, 1.0f, NULL, &err) != 0, "backward without a training forward");
    cl_encoder_free(e);
    cl_model_free(&m);
}

/* A real model from the cache: ENV_VAR, $CONDLORA_CACHE/models/NAME, ~/.cache/condlora/models/NAME,
 * ../shared/models/NAME */
static int find_model(const char *name, const char *env_var, char *dir, size_t n) {
    const char *env = getenv(env_var), *home = getenv("HOME"), *cache = getenv("CONDLORA_CACHE");
    char cand[4][512];
    int k = 0;
    if (env) snprintf(cand[k++], 512, "%.500s", env);
    if (cache) snprintf(cand[k++], 512, "%.400s/models/%.60s", cache, name);
    if (home) snprintf(cand[k++], 512, "%.400s/.cache/condlora/models/%.60s", home, name);
    snprintf(cand[k++], 512, "%.400s/models/%.60s", tst_shared(), name);
    for (int i = 0; i < k; i++) {
        char p[600];
        snprintf(p, sizeof p, "%.500s/model.safetensors", cand[i]);
        FILE *f = fopen(p, "r");
        if (f) {
            fclose(f);
            snprintf(dir, n, "%.500s", cand[i]);
            return 1;
        }
    }
    return 0;
}

/* last hidden states of REF's sentences (tokenized by transformers) equal transformers', at every real token */
static void real_model(const char *name, const char *env_var, const char *ref_path, double tol) {
    char dir[512];
    ref_file r;
    FILE *f = fopen(ref_path, "rb");
    if (!f) {
        SKIP("no %s (scripts/gen_encoder_refs.py writes it)", ref_path);
        return;
    }
    fclose(f);
    if (!find_model(name, env_var, dir, sizeof dir)) {
        SKIP("%s not in the cache (scripts/fetch_model.sh %s puts it in ~/.cache/condlora/models; or set %s)", name,
             name, env_var);
        return;
    }
    if (!ref_open(&r, ref_path)) return;
    cl_weights m;
    cl_error err = {0};
    cl_load_opts lo = {0};
    if (cl_model_load(&m, dir, &lo, &err)) {
        CHECK(0, "%s", err.msg);
        cl_st_close(&r.st);
        return;
    }
    size_t nids, nlen;
    int32_t *ids = ref_get(&r, "input_ids", &nids), *types = ref_get(&r, "token_type_ids", NULL);
    int32_t *len = ref_get(&r, "lengths", &nlen);
    float *ref = ref_get(&r, "last_hidden_state", NULL);
    const int B = (int)nlen, T = (int)(nids / nlen), H = m.cfg.hidden_size;
    cl_encoder *e = NULL;
    CHECK(cl_encoder_new(&e, &m, B, T, 0, &err) == 0, "%s", err.msg);
    if (e) {
        cl_batch bt = {ids, types, len, B, T};
        CHECK(cl_encoder_forward(e, &bt, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
        const float *hs = cl_encoder_last_hidden(e);
        double worst = 0, big = 0;
        for (int b = 0; b < B; b++) { /* positions inside each sentence */
            worst = fmax(worst, abs_err(hs + (size_t)b * T * H, ref + (size_t)b * T * H, (size_t)len[b] * H));
            for (size_t i = 0; i < (size_t)len[b] * H; i++) big = fmax(big, fabs(ref[(size_t)b * T * H + i]));
        }
        CHECK(worst <= tol, "%s last hidden state |diff| %.3g (largest entry %.3g)", name, worst, big);
        if (getenv("CL_TEST_VERBOSE"))
            fprintf(stderr, "%s: %d sequences, max |diff| %.3g, largest entry %.3g\n", name, B, worst, big);
        cl_encoder_free(e);
    }
    free(ids), free(types), free(len), free(ref);
    cl_model_free(&m);
    cl_st_close(&r.st);
}

/* all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384): 16 SST-2 sentences */
TEST(minilm) { real_model("all-MiniLM-L6-v2", "CL_MINILM_DIR", DATA "/minilm_ref.safetensors", 1e-4); }
/* all-mpnet-base-v2 (MPNet, 12 layers, hidden 768): 6 RTE sentence pairs */
TEST(mpnet_real) { real_model("all-mpnet-base-v2", "CL_MPNET_DIR", DATA "/mpnet_ref.safetensors", 1e-4); }

/* MPNet's relative_position_bucket against transformers' for |d| <= 1024, and the (T, T) matrix orientation */
TEST(mpnet_buckets) {
    ref_file r;
    if (!ref_open(&r, DATA "/mpnet_buckets.safetensors")) {
        CHECK(0, "no buckets reference");
        return;
    }
    size_t n, n7;
    int32_t *rel = ref_get(&r, "relative_position", &n), *bk = ref_get(&r, "bucket", NULL);
    int32_t *m7 = ref_get(&r, "bucket_7x7", &n7);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += cl_rel_bucket(rel[i], 32, 128) != bk[i];
    CHECK(n == 2049 && bad == 0, "%d of %zu buckets differ", bad, n);
    bad = 0;
    for (int i = 0; i < 7; i++) /* row i: the query, column j: the key */
        for (int j = 0; j < 7; j++) bad += cl_rel_bucket(j - i, 32, 128) != m7[i * 7 + j];
    CHECK(n7 == 49 && bad == 0, "%d of the 7x7 buckets differ", bad);
    CHECK(cl_rel_bucket(5, 32, 128) == 21 && cl_rel_bucket(-5, 32, 128) == 5, "MPNET.md's example");
    /* the table the attention reads: relb[h][d + T - 1] = w[bucket(d), h] */
    const int T = 9, NH = 3;
    float w[32 * 3], relb[3 * 17];
    for (int i = 0; i < 32 * NH; i++) w[i] = (float)i;
    cl_rel_bias_table(relb, w, T, NH, 32, 128);
    bad = 0;
    for (int h = 0; h < NH; h++)
        for (int d = -(T - 1); d <= T - 1; d++) bad += relb[h * (2 * T - 1) + d + T - 1] != w[cl_rel_bucket(d, 32, 128) * NH + h];
    CHECK(bad == 0, "%d bias table entries differ", bad);
    free(rel), free(bk), free(m7);
    cl_st_close(&r.st);
}

/* MPNet without token types: nonzero type ids are refused with a message; all-zero ones are accepted */
TEST(mpnet_no_token_types) {
    cl_weights m;
    cl_error err = {0};
    cl_load_opts lo = {0};
    if (cl_model_load(&m, DATA "/mpnet_cls", &lo, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    CHECK(m.type_emb == NULL && m.cfg.type_vocab_size == 0 && m.rel_bias && m.cfg.rel_buckets == 32 &&
          m.head == CL_HEAD_DENSE && !m.pooler.w, "MPNet model shape");
    cl_encoder *e = NULL;
    CHECK(cl_encoder_new(&e, &m, 1, 4, 0, &err) == 0, "%s", err.msg);
    if (e) {
        int32_t ids[4] = {0, 7, 9, 2}, types[4] = {0, 0, 0, 0}, len[1] = {4};
        cl_batch bt = {ids, types, len, 1, 4};
        CHECK(cl_encoder_forward(e, &bt, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
        types[2] = 1;
        CHECK(cl_encoder_forward(e, &bt, NULL, NULL, NULL, &err) != 0 && strstr(err.msg, "no token types"), "%s",
              err.msg);
        cl_encoder_free(e);
    }
    /* 514 positions with padding_idx 1: sequences up to 512 */
    CHECK(cl_config_max_tokens(&m.cfg) == m.cfg.max_position - 2, "max tokens %d", cl_config_max_tokens(&m.cfg));
    cl_model_free(&m);
}

/* condlora predict --ids on a tiny model: one line of logits per row, equal to transformers' */
TEST(cli_predict) {
    const char *bin = getenv("CL_BIN");
    if (!bin) {
        SKIP("CL_BIN not set (make test sets it)");
        return;
    }
    ref_file r;
    if (!ref_open(&r, DATA "/bert_cls/ref.safetensors")) return;
    size_t nids, nlen;
    int32_t *ids = ref_get(&r, "input_ids", &nids), *types = ref_get(&r, "token_type_ids", NULL);
    int32_t *len = ref_get(&r, "lengths", &nlen);
    float *rlog = ref_get(&r, "logits", NULL);
    const int B = (int)nlen, T = (int)(nids / nlen);
    char in[64], cmd[512];
    snprintf(in, sizeof in, "/tmp/cl_predict_%d.tsv", (int)getpid());
    FILE *f = fopen(in, "w");
    fprintf(f, "header\tignored\n");
    for (int b = 0; b < B; b++) { /* pair columns: type-0 ids, then type-1 ids */
        for (int part = 0; part < 2; part++) {
            int first = 1;
            for (int t = 0; t < len[b]; t++)
                if (types[b * T + t] == part) fprintf(f, "%s%d", first ? "" : " ", ids[b * T + t]), first = 0;
            fputc(part ? '\n' : '\t', f);
        }
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s predict --model " DATA "/bert_cls --input %s --ids --text-columns 0,1 --skip-header", bin, in);
    FILE *p = popen(cmd, "r");
    int rows = 0;
    double a, b2;
    while (p && fscanf(p, "%lf %lf", &a, &b2) == 2) {
        if (rows < B) CHECK(fabs(a - rlog[rows * 2]) < 1e-5 && fabs(b2 - rlog[rows * 2 + 1]) < 1e-5, "row %d", rows);
        rows++;
    }
    CHECK(p && pclose(p) == 0, "%s", cmd);
    CHECK(rows == B, "%d rows of logits for %d inputs", rows, B);
    /* a bad id is reported with the file and line */
    f = fopen(in, "w");
    fprintf(f, "2 5 x7\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s predict --model " DATA "/bert_cls --input %s --ids 2>&1", bin, in);
    p = popen(cmd, "r");
    char buf[512] = {0};
    size_t got = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    (void)got;
    int st = p ? pclose(p) : -1;
    CHECK(st != 0 && strstr(buf, ":1:") && strstr(buf, "x7"), "error message: %s", buf);
    remove(in);
    free(ids), free(types), free(len), free(rlog);
    cl_st_close(&r.st);
}

int main(void) {
    RUN(roberta_cls);
    RUN(roberta_reg);
    RUN(bert_cls);
    RUN(bert_reg_tanh);
    RUN(mpnet_cls);
    RUN(mpnet_reg);
    RUN(roberta_multi);
    RUN(mpnet_multi);
    RUN(mpnet_buckets);
    RUN(mpnet_no_token_types);
    RUN(hook_finite_differences);
    RUN(dropout_is_seeded);
    RUN(bad_input);
    RUN(minilm);
    RUN(mpnet_real);
    RUN(cli_predict);
    return tst_summary(__FILE__);
}
